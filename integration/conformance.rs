//! Conformance over every real trace in `../shared/upstream`: decoded record counts per type
//! match `derived/trace-inventory.json`.

mod common;

use common::{inventory, kind_for_inventory_name, upstream};
use sfprocessor::sysflow::trace::read_trace;
use sfprocessor::sysflow::Kind;

#[test]
fn every_trace_decodes_to_the_inventory_counts() {
    let inv = inventory();
    assert_eq!(inv.len(), 37, "the inventory lists 37 traces");
    let mut failures = Vec::new();
    for t in &inv {
        let path = upstream().join(&t.path);
        let summary = match read_trace(&path, |_| {}) {
            Ok(s) => s,
            Err(e) => {
                failures.push(format!("{}: {e}", t.path));
                continue;
            }
        };
        if !summary.damage.is_empty() {
            failures.push(format!("{}: damage {:?}", t.path, summary.damage));
        }
        assert_eq!(summary.blocks, t.blocks, "{}: block count", t.path);
        let mut expected = [0u64; 12];
        for (name, n) in &t.counts {
            let k = kind_for_inventory_name(name, &t.writer_schema_variant);
            expected[k as usize] += n;
        }
        for k in Kind::ALL {
            let got = summary.counts.get(k);
            if got != expected[k as usize] {
                failures.push(format!(
                    "{}: {:?} decoded {got}, inventory {}",
                    t.path, k, expected[k as usize]
                ));
            }
        }
        assert_eq!(summary.counts.total(), t.records, "{}: total", t.path);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

use sfactors::StopFlag;
use sfprocessor::config::PipelineConfig;
use sfprocessor::pipeline::{self, RunOptions};

fn event_count(t: &common::InventoryTrace) -> (u64, std::collections::BTreeMap<&'static str, u64>) {
    let mut total = 0;
    let mut by_type = std::collections::BTreeMap::new();
    for (name, n) in &t.counts {
        let k = kind_for_inventory_name(name, &t.writer_schema_variant);
        if k.is_event_or_flow() {
            total += n;
            *by_type.entry(k.short()).or_insert(0) += n;
        }
    }
    (total, by_type)
}

#[test]
fn the_pipeline_writes_one_valid_json_line_per_event_or_flow_of_every_trace() {
    let dir = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for (i, t) in inventory().iter().enumerate() {
        let out = dir.path().join(format!("out-{i}.json"));
        let cfg = PipelineConfig::parse(&common::file_pipeline(&out), "test.json", &[]).unwrap();
        let plan = pipeline::plan(&cfg).unwrap();
        let outcome = pipeline::run(
            &plan,
            vec![upstream().join(&t.path)],
            StopFlag::new(),
            RunOptions::default(),
        );
        assert!(
            outcome.failure.is_none(),
            "{}: {:?}",
            t.path,
            outcome.failure
        );
        assert!(
            outcome.skipped.is_empty(),
            "{}: {:?}",
            t.path,
            outcome.skipped
        );
        let lines = common::read_json_lines(&out);
        let (expected, by_type) = event_count(t);
        if lines.len() as u64 != expected {
            failures.push(format!(
                "{}: {} lines, {} events/flows",
                t.path,
                lines.len(),
                expected
            ));
            continue;
        }
        let mut got = std::collections::BTreeMap::new();
        for l in &lines {
            assert_eq!(l["version"], 5);
            assert!(l["proc"].is_object() || l["type"] == "KE", "{l}");
            *got.entry(l["type"].as_str().unwrap().to_string())
                .or_insert(0u64) += 1;
        }
        let by_type: std::collections::BTreeMap<String, u64> = by_type
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        if got != by_type {
            failures.push(format!("{}: types {got:?} != {by_type:?}", t.path));
        }
        assert_eq!(
            outcome.exported(),
            expected,
            "{}: exporter sent count",
            t.path
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_directory_is_read_in_name_order_with_entities_reset_per_trace() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.json");
    let traces = upstream().join("sf-processor/resources/traces");
    let cfg = PipelineConfig::parse(&common::file_pipeline(&out), "test.json", &[]).unwrap();
    let plan = pipeline::plan(&cfg).unwrap();
    let files = pipeline::driver::list_traces(&traces).unwrap();
    assert_eq!(files.files.len(), 8);
    assert!(files.skipped.is_empty(), "{:?}", files.skipped);
    let mut sorted = files.files.clone();
    sorted.sort();
    assert_eq!(files.files, sorted);
    let outcome = pipeline::run(&plan, files, StopFlag::new(), RunOptions::default());
    assert!(outcome.skipped.is_empty(), "{:?}", outcome.skipped);
    let expected: u64 = inventory()
        .iter()
        .filter(|t| t.path.starts_with("sf-processor/resources/traces/"))
        .map(|t| event_count(t).0)
        .sum();
    let lines = common::read_json_lines(&out);
    assert_eq!(lines.len() as u64, expected);
    // Every trace has a header, so each trace's records carry its own node id.
    let nodes: std::collections::BTreeSet<_> = lines
        .iter()
        .map(|l| l["node"]["id"].as_str().unwrap().to_string())
        .collect();
    assert!(
        nodes.contains("minikube") && nodes.contains("tests") && nodes.contains("myhost"),
        "{nodes:?}"
    );
    // No record of these traces misses its process.
    assert_eq!(outcome.cache.missing_process, 0);
}

#[test]
fn tcp_trace_known_values() {
    // tcp.sf: a client and a server exec'd from bash over TCP (see the upstream policy tests).
    let mut execs = Vec::new();
    let mut flows = 0;
    let mut cache = sfprocessor::cache::EntityCache::default();
    read_trace(
        &upstream().join("sf-processor/resources/traces/tcp.sf"),
        |r| {
            if let Some(rec) = cache.apply(r) {
                if let sfprocessor::record::Event::ProcessEvent(pe) = &rec.event {
                    if pe.op_flags & sfprocessor::sysflow::names::OP_EXEC != 0 {
                        execs.push(rec.process.as_ref().unwrap().exe.clone());
                    }
                }
                if rec.kind() == Kind::NetworkFlow {
                    flows += 1;
                }
            }
        },
    )
    .unwrap();
    assert_eq!(execs, ["./server", "./client"]);
    assert_eq!(flows, 2);
}

#[test]
fn generated_traces_round_trip_through_every_codec_and_schema() {
    use sfprocessor::sysflow::writer::{encode_datum, schema, SchemaVersion};
    use sfprocessor::sysflow::{DatumPlan, Decoded, SysFlow};
    let dir = tempfile::tempdir().unwrap();
    for version in [SchemaVersion::V4, SchemaVersion::V5] {
        for codec in ["null", "deflate", "snappy", "zstd"] {
            let p = dir.path().join(format!("{codec}-{}.sf", version.number()));
            let written = common::write_trace(&p, 21, 3000, codec, version);
            let mut read = Vec::new();
            let s = read_trace(&p, |r| read.push(r)).unwrap();
            assert!(s.damage.is_empty(), "{codec}: {:?}", s.damage);
            let expected: Vec<SysFlow> = written
                .into_iter()
                .map(|r| match (r, version) {
                    // v4 has no cwd/env: they decode to the v5 defaults.
                    (SysFlow::Process(mut p), SchemaVersion::V4) => {
                        p.cwd.clear();
                        p.env.clear();
                        SysFlow::Process(p)
                    }
                    (r, _) => r,
                })
                .collect();
            assert_eq!(read, expected, "{codec} v{}", version.number());
        }
        // Raw datums (the socket framing): one union value, no container.
        let sch = schema(version).unwrap();
        let plan = DatumPlan::compile_schema(&sch).unwrap();
        for r in sfprocessor::gen::Generator::new(sfprocessor::gen::GenConfig {
            seed: 5,
            records: 500,
            ..Default::default()
        }) {
            let bytes = encode_datum(&sch, &r, version).unwrap();
            let mut c = sfprocessor::sysflow::cursor::Cursor::new(&bytes);
            match plan.decode(&mut c).unwrap() {
                Decoded::Record(back) => assert_eq!(back.kind(), r.kind()),
                Decoded::Unknown(n) => panic!("unknown branch {n}"),
            }
            assert!(c.is_empty(), "datum fully consumed");
        }
    }
}

#[test]
fn every_writer_schema_variant_compiles() {
    let dir = upstream().join("derived/trace-writer-schemas");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        let text = std::fs::read_to_string(&p).unwrap();
        let plan = sfprocessor::sysflow::DatumPlan::compile(&text)
            .unwrap_or_else(|err| panic!("{}: {err}", p.display()));
        assert!(plan.branch_names().iter().any(|b| b.ends_with("SFHeader")));
        n += 1;
    }
    assert_eq!(n, 8);
}
