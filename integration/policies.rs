//! Upstream's policy files load (with the leniency step for their irregular YAML and the
//! lenient mode for their typo attributes), with the entry counts upstream loads; alerts on
//! upstream traces; the type index never changes results.

mod common;
mod upstream_alerts;

use std::path::PathBuf;
use std::sync::Arc;

use common::upstream;
use sfprocessor::cache::EntityCache;
use sfprocessor::policy::diag::Code;
use sfprocessor::policy::engine::{load_policies, Engine, LoadOptions, Mode};
use sfprocessor::policy::memo::Memo;
use sfprocessor::record::Record;
use sfprocessor::sysflow::trace::read_trace;

fn policies() -> PathBuf {
    upstream().join("sf-processor/resources/policies")
}

/// (file, rules, filters, lists, macros): upstream's counts (a list or macro defined twice
/// counts twice).
const COUNTS: &[(&str, usize, usize, usize, usize)] = &[
    ("distribution/filter.yaml", 21, 1, 42, 84),
    ("runtimeintegrity/globals.yaml", 0, 1, 4, 3),
    ("runtimeintegrity/path.yaml", 1, 0, 0, 0),
    ("runtimeintegrity/runtimeintegrity.yaml", 26, 0, 67, 53),
    ("runtimeintegrity/ttps.yaml", 52, 0, 86, 59),
    ("tests/falco.yaml", 61, 0, 112, 298),
    ("tests/unit_test_contains.yaml", 2, 0, 0, 0),
    ("tests/unit_test_eq.yaml", 1, 0, 0, 0),
    ("tests/unit_test_ge.yaml", 1, 0, 0, 0),
    ("tests/unit_test_gt.yaml", 1, 0, 0, 0),
    ("tests/unit_test_le.yaml", 1, 0, 0, 0),
    ("tests/unit_test_lt.yaml", 1, 0, 0, 0),
    ("tests/unit_test_startswith.yaml", 1, 0, 0, 0),
    ("tests/unit_test_unary.yaml", 1, 0, 0, 0),
    ("tests/unit_test_sfmap.yaml", 1, 0, 0, 0),
    ("tests/unit_test_networkflow.yaml", 1, 0, 0, 0),
    ("tests/unit_test_fileflow.yaml", 1, 0, 0, 0),
    ("tests/unit_test_in.yaml", 1, 0, 1, 1),
    ("tests/unit_test_pmatch.yaml", 1, 0, 1, 1),
    ("tests/unit_test_macro.yaml", 1, 0, 0, 1),
    ("tests/unit_test_logic.yaml", 2, 0, 1, 1),
    ("tests/unit_test_simple.yaml", 6, 0, 0, 0),
];

fn strict() -> LoadOptions {
    LoadOptions {
        strict: true,
        ..Default::default()
    }
}

#[test]
fn all_23_upstream_policy_files_load_by_default_with_upstream_counts() {
    let mut failures = Vec::new();
    let mut n = 0;
    for (file, rules, filters, lists, macros) in COUNTS {
        n += 1;
        match load_policies(&policies().join(file), &LoadOptions::default()) {
            Ok(set) => {
                let c = set.counts;
                if (c.rules, c.filters, c.lists, c.macros) != (*rules, *filters, *lists, *macros) {
                    failures.push(format!(
                        "{file}: rules/filters/lists/macros {}/{}/{}/{} != {rules}/{filters}/{lists}/{macros}",
                        c.rules, c.filters, c.lists, c.macros
                    ));
                }
            }
            Err(e) => failures.push(format!("{file}: {e}")),
        }
    }
    n += 1;
    let example = upstream().join("sf-processor/plugins/actions/example/policy.yaml");
    match load_policies(&example, &strict()) {
        Ok(set) => assert_eq!(set.counts.rules, 1),
        Err(e) => failures.push(format!("example policy: {e}")),
    }
    assert_eq!(n, 23);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn directories_load_recursively_in_lexical_order() {
    let ri = load_policies(
        &policies().join("runtimeintegrity"),
        &LoadOptions::default(),
    )
    .unwrap();
    assert_eq!((ri.counts.rules, ri.counts.filters), (79, 1));
    let tests = load_policies(&policies().join("tests"), &LoadOptions::default()).unwrap();
    assert_eq!(tests.counts.rules, 84);
    let dist = load_policies(&policies().join("distribution"), &LoadOptions::default()).unwrap();
    assert_eq!((dist.counts.rules, dist.counts.filters), (21, 1));
}

#[test]
fn irregular_files_load_with_coded_warnings_and_strict_mode_refuses_them() {
    let ttps = policies().join("runtimeintegrity/ttps.yaml");
    let set = load_policies(&ttps, &LoadOptions::default()).unwrap();
    let w: Vec<String> = set.warnings.iter().map(|w| w.to_string()).collect();
    let w = w.join("\n");
    assert!(
        w.contains("ttps.yaml:47:1: top-level entry indented"),
        "{w}"
    );
    assert!(w.contains("rule name containing `: ` quoted"), "{w}");
    assert!(w.contains("unknown attribute `sf.poc.name`"), "{w}");
    assert!(
        w.contains("unknown attribute `sf.file.typechar`; compared as the literal text"),
        "upstream has no sf.file.typechar: {w}"
    );
    let e = load_policies(&ttps, &strict()).unwrap_err();
    let text = e.to_string();
    assert!(e.errors.len() > 5, "every error of the load: {text}");
    assert!(text.contains("ttps.yaml:"), "{text}");
    assert!(
        text.contains("(strict mode) [LOAD_UNKNOWN_FIELD]"),
        "{text}"
    );
    // path.yaml's `podname` action: upstream warns and goes on.
    let path = policies().join("runtimeintegrity/path.yaml");
    let set = load_policies(&path, &LoadOptions::default()).unwrap();
    assert!(
        set.warnings
            .iter()
            .any(|w| w.code == Code::UnknownAction && w.message.contains("`podname`")),
        "{:?}",
        set.warnings
    );
    let filter = policies().join("distribution/filter.yaml");
    let set = load_policies(&filter, &LoadOptions::default()).unwrap();
    assert!(set
        .warnings
        .iter()
        .any(|w| w.to_string().contains("filter.yaml:227:") && w.message.contains("tab")));
    assert!(
        load_policies(&filter, &strict()).is_err(),
        "the tabs are repairs"
    );
}

fn records(trace: &str) -> Vec<Record> {
    let mut cache = EntityCache::default();
    let mut out = Vec::new();
    read_trace(&upstream().join(trace), |r| {
        if let Some(rec) = cache.apply(r) {
            out.push(rec);
        }
    })
    .unwrap();
    out
}

fn inline_policy(text: &str) -> sfprocessor::policy::set::PolicySet {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("p.yaml");
    std::fs::write(&p, text).unwrap();
    load_policies(&p, &LoadOptions::default()).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn tcp_trace_exec_rule_alerts_exactly_server_and_client() {
    let set = inline_policy(
        "- rule: exec\n  desc: process executions\n  condition: sf.type = PE and sf.opflags = EXEC\n  priority: high\n",
    );
    let engine = Engine::new(Arc::new(set), Mode::Alert);
    let mut out = Vec::new();
    engine.process(
        records("sf-processor/resources/traces/tcp.sf"),
        &mut out,
        &mut Memo::default(),
    );
    let exes: Vec<String> = out
        .iter()
        .map(|r| r.process.as_ref().unwrap().exe.clone())
        .collect();
    assert_eq!(exes, ["./server", "./client"]);
    assert!(out
        .iter()
        .all(|r| r.policies.len() == 1 && r.policies[0].priority == 3));
}

#[test]
fn enrich_mode_keeps_everything_and_drop_filters_remove_first() {
    let set = inline_policy(
        "- drop: no-files\n  condition: sf.type = FF\n- rule: net\n  desc: d\n  condition: sf.type = NF\n  tags: [network]\n",
    );
    let all = records("sf-processor/resources/traces/tcp.sf");
    let ff = all
        .iter()
        .filter(|r| r.kind() == sfprocessor::sysflow::Kind::FileFlow)
        .count();
    let nf = all
        .iter()
        .filter(|r| r.kind() == sfprocessor::sysflow::Kind::NetworkFlow)
        .count();
    let engine = Engine::new(Arc::new(set), Mode::Enrich);
    let mut out = Vec::new();
    engine.process(all.clone(), &mut out, &mut Memo::default());
    assert_eq!(out.len(), all.len() - ff);
    let tagged: Vec<_> = out.iter().filter(|r| !r.policies.is_empty()).collect();
    assert_eq!(tagged.len(), nf);
    assert_eq!(&*tagged[0].policies[0].tags, ["network".to_string()]);
}

#[test]
fn the_type_index_gives_the_same_matches_as_evaluating_every_rule() {
    // Synthetic sets exercise the value-based dispatch (many rules on the same fields).
    let dir = tempfile::tempdir().unwrap();
    let synthetic = |n: usize| {
        let p = dir.path().join(format!("synthetic-{n}.yaml"));
        std::fs::write(&p, sfprocessor::policy::engine::synthetic_rules(n)).unwrap();
        load_policies(&p, &LoadOptions::default()).unwrap()
    };
    // Rules that require an entity-only macro are grouped behind it (a gate): true for
    // some processes of the stream, false for the others (a group needs at least 4 rules
    // that apply to a record type).
    let gated = || {
        let p = dir.path().join("gated.yaml");
        let mut text =
            String::from("- macro: shell_proc\n  condition: sf.proc.name in (bash, sh, python3)\n");
        for (i, cond) in [
            "sf.type = FF and shell_proc and sf.file.path startswith /etc",
            "sf.type in (FF, FE) and sf.file.path contains tmp and shell_proc",
            "shell_proc and sf.net.dport in (443, 80)",
            "shell_proc and (sf.file.path endswith .conf or sf.opflags = EXEC)",
            "sf.proc.args contains \"-c\" and shell_proc",
            "not shell_proc and sf.opflags = EXEC",
            "shell_proc and sf.file.path startswith /usr",
            "shell_proc and sf.proc.uid = 0",
            "shell_proc and not sf.file.path contains lib",
        ]
        .iter()
        .enumerate()
        {
            text.push_str(&format!(
                "- rule: gated {i}\n  desc: d\n  condition: {cond}\n  priority: low\n"
            ));
        }
        std::fs::write(&p, text).unwrap();
        load_policies(&p, &LoadOptions::default()).unwrap()
    };
    let sets = [
        load_policies(&policies().join("distribution"), &LoadOptions::default()).unwrap(),
        load_policies(
            &policies().join("runtimeintegrity"),
            &LoadOptions::default(),
        )
        .unwrap(),
        load_policies(&policies().join("tests"), &LoadOptions::default()).unwrap(),
        synthetic(100),
        synthetic(1000),
        gated(),
        // Upstream's Sigma rules as upstream reads them: each tests only the process and
        // applies to every record type, so the set's entity gate stands before all of them.
        load_policies(
            &policies().join("sigma/rules"),
            &LoadOptions {
                language: sfprocessor::policy::engine::Language::Sigma {
                    config: Some(policies().join("sigma/config/sysflow.yml")),
                },
                ..Default::default()
            },
        )
        .unwrap(),
    ];
    let mut recs = records("sf-processor/resources/traces/mon.1531776712.sf");
    recs.extend(records("sf-processor/resources/traces/k8s_small.sf"));
    // Generated records add every type (PF, NE, KE) the traces lack.
    let mut cache = EntityCache::default();
    for r in sfprocessor::gen::Generator::new(sfprocessor::gen::GenConfig {
        seed: 77,
        records: 20_000,
        ..Default::default()
    }) {
        if let Some(rec) = cache.apply(r) {
            recs.push(rec);
        }
    }
    let n_sets = sets.len();
    for (k, set) in sets.into_iter().enumerate() {
        if k == n_sets - 1 {
            let gate = set
                .entity_gate
                .as_ref()
                .expect("the Sigma set has an entity gate");
            assert_eq!(gate.member.iter().filter(|m| **m).count(), 51);
        }
        let engine = Engine::new(Arc::new(set), Mode::Enrich);
        // One memo across the stream, as a shard keeps it: dispatch buckets, the value
        // index and entity-only values carried between records are all in play.
        let mut memo = Memo::default();
        let mut set_matches = 0;
        for r in &recs {
            let mut indexed = r.clone();
            engine.apply_memo(&mut indexed, &mut memo);
            let got: Vec<_> = indexed.policies.iter().map(|p| p.id.clone()).collect();
            let expected = engine.matches_without_index(r);
            assert_eq!(got, expected, "record {:?}", r.event);
            set_matches += got.len();
        }
        assert!(set_matches > 0, "each rule set matches something");
        assert!(memo.buckets() > 1);
        let gates = memo
            .bucket_list()
            .iter()
            .filter(|(_, b)| format!("{:?}", b.index).contains("Gate("))
            .count();
        if k == 1 || k >= n_sets - 2 {
            // runtimeintegrity/ (sed_write behind open_write), the gated set and Sigma.
            assert!(
                gates > 0,
                "set {k}: no bucket indexes by an entity-only macro"
            );
        }
    }
}

fn run_cli(cfg: &str, trace: &std::path::Path, dir: &std::path::Path) -> (i32, String) {
    let p = dir.join("pipeline.json");
    std::fs::write(&p, cfg).unwrap();
    let o = common::sfprocessor(
        &[
            "-config",
            p.to_str().unwrap(),
            "-log",
            "warn",
            trace.to_str().unwrap(),
        ],
        &[],
    );
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn policy_pipeline(policies: &std::path::Path, out: &std::path::Path, extra: &str) -> String {
    format!(
        r#"{{"pipeline":[
 {{"processor":"sysflowreader","handler":"flattener","in":"sysflow sysflowchan","out":"flat flattenerchan"}},
 {{"processor":"policyengine","in":"flat flattenerchan","out":"evt eventchan","policies":"{}"{extra}}},
 {{"processor":"exporter","in":"evt eventchan","export":"file","file.path":"{}"}}]}}"#,
        policies.display(),
        out.display()
    )
}

#[test]
fn alert_mode_end_to_end_with_the_example_action() {
    let dir = tempfile::tempdir().unwrap();
    let pol = dir.path().join("p.yaml");
    std::fs::write(
        &pol,
        "- rule: exec\n  desc: process executions\n  condition: sf.type = PE and sf.opflags = EXEC\n  priority: high\n  tags: [exec, mitre:T1059]\n  actions: [now]\n",
    )
    .unwrap();
    let out = dir.path().join("out.json");
    let trace = upstream().join("sf-processor/resources/traces/tcp.sf");
    let (code, err) = run_cli(
        &policy_pipeline(&pol, &out, r#","mode":"alert""#),
        &trace,
        dir.path(),
    );
    assert_eq!(code, 0, "{err}");
    let mut lines = common::read_json_lines(&out);
    assert_eq!(lines.len(), 2);
    // Shards keep each process in order; two processes may come out in either order.
    lines.sort_by_key(|l| l["ts"].as_i64().unwrap());
    assert_eq!(lines[0]["proc"]["exe"], "./server");
    assert_eq!(lines[1]["proc"]["exe"], "./client");
    assert_eq!(
        lines[0]["policies"],
        serde_json::json!([{"id": "exec", "desc": "process executions", "priority": 3}])
    );
    let tags: Vec<&str> = lines[0]["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert!(tags[0].starts_with("now_in_nanos:"), "{tags:?}");
    assert_eq!(&tags[1..], ["exec", "mitre:T1059"]);
}

#[test]
fn shards_keep_each_process_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("t.sf");
    let recs = common::write_trace(
        &trace,
        31,
        40_000,
        "deflate",
        sfprocessor::sysflow::writer::SchemaVersion::V5,
    );
    let events = recs.iter().filter(|r| r.kind().is_event_or_flow()).count();
    let pol = dir.path().join("p.yaml");
    std::fs::write(
        &pol,
        "- rule: all\n  desc: everything\n  condition: sf.ts > 0\n",
    )
    .unwrap();
    let out = dir.path().join("out.json");
    let (code, err) = run_cli(
        &policy_pipeline(&pol, &out, r#","mode":"enrich","concurrency":4"#),
        &trace,
        dir.path(),
    );
    assert_eq!(code, 0, "{err}");
    let lines = common::read_json_lines(&out);
    assert_eq!(lines.len(), events, "nothing lost across shards");
    let mut last: std::collections::HashMap<String, i64> = Default::default();
    let mut interleaved = false;
    let mut prev_pid = String::new();
    for l in &lines {
        let key = l["proc"]["oid"].as_str().unwrap_or("").to_string();
        let ts = l["ts"].as_i64().unwrap();
        if let Some(p) = last.get(&key) {
            assert!(ts >= *p, "process {key} out of order: {ts} after {p}");
        }
        if key != prev_pid {
            interleaved = true;
        }
        prev_pid = key.clone();
        last.insert(key, ts);
        assert_eq!(l["policies"][0]["id"], "all");
    }
    assert!(
        interleaved && last.len() > 10,
        "many processes went through the shards"
    );
}

#[test]
fn the_monitor_swaps_valid_edits_and_keeps_the_rules_on_a_broken_one() {
    use sfprocessor::pipeline::{policy::PolicyHandle, PolicyStage};
    let dir = tempfile::tempdir().unwrap();
    let pol = dir.path().join("p.yaml");
    std::fs::write(&pol, "- rule: one\n  desc: d\n  condition: sf.type = PE\n").unwrap();
    let set = load_policies(&pol, &LoadOptions::default()).unwrap();
    let handle = PolicyHandle::new(set, Mode::Alert);
    let stage = PolicyStage {
        handle: handle.clone(),
        path: pol.clone(),
        load: LoadOptions::default(),
        shards: 1,
        monitor: Some(std::time::Duration::from_millis(50)),
    };
    let sys = actix::System::new();
    sys.block_on(async move {
        let arb = actix::Arbiter::new();
        sfprocessor::pipeline::monitor::PolicyMonitor::start(
            &arb.handle(),
            stage,
            std::time::Duration::from_millis(50),
        );
        let wait_for = |n: usize| {
            let handle = handle.clone();
            async move {
                for _ in 0..200 {
                    if handle.current().counts.rules == n {
                        return true;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
                false
            }
        };
        // A valid edit with a second rule is picked up.
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
        std::fs::write(
            &pol,
            "- rule: one\n  desc: d\n  condition: sf.type = PE\n- rule: two\n  desc: d\n  condition: sf.type = NF\n",
        )
        .unwrap();
        assert!(wait_for(2).await, "the valid edit was applied");
        // A broken edit keeps the two rules.
        std::fs::write(&pol, "- rule: broken\n  desc: d\n  condition: sf.type = = PE\n").unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(400)).await;
        assert_eq!(handle.current().counts.rules, 2, "previous rules stay in force");
        // Hostile edits keep them too: exponential macros (refused by the budget), a set with
        // no enabled rule (alert mode would drop everything), a FIFO in place of the file.
        let mut bomb = String::from("- macro: m0\n  condition: sf.proc.name = a\n");
        for i in 1..=40 {
            bomb.push_str(&format!("- macro: m{i}\n  condition: m{p} or m{p}\n", p = i - 1));
        }
        bomb.push_str("- rule: r\n  desc: d\n  condition: m40\n");
        let disabled = "- rule: off\n  desc: d\n  condition: sf.type = PE\n  enabled: false\n";
        for text in [bomb.as_str(), disabled] {
            std::fs::write(&pol, text).unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(400)).await;
            assert_eq!(handle.current().counts.rules, 2, "previous rules stay in force");
        }
        let failed = handle.reloads.failed.load(std::sync::atomic::Ordering::Relaxed);
        assert!(failed >= 3, "{failed} failed reloads counted");
        std::fs::remove_file(&pol).unwrap();
        let c = std::ffi::CString::new(pol.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        tokio::time::sleep(std::time::Duration::from_millis(400)).await;
        assert_eq!(handle.current().counts.rules, 2, "a FIFO is refused, not read");
        std::fs::remove_file(&pol).unwrap();
        // Fixing it again is picked up.
        std::fs::write(&pol, "- rule: three\n  desc: d\n  condition: sf.type = FF\n").unwrap();
        assert!(wait_for(1).await);
        assert_eq!(&*handle.current().rules[0].name, "three");
        arb.stop();
    });
}

#[test]
fn path_yaml_new_pod_rule_fires_on_k8s_small_with_upstreams_message_cleaning() {
    // k8s_small.sf has 4 K8s events (3 pod MODIFIED, 1 pod ADDED); the ADDED one's message,
    // once its trailing newline/NULs are stripped as upstream's converter does, is JSON whose
    // items.0.namespace is robot-shop (counted independently with fastavro).
    let set = load_policies(
        &policies().join("runtimeintegrity/path.yaml"),
        &LoadOptions::default(),
    )
    .unwrap();
    let engine = Engine::new(Arc::new(set), Mode::Alert);
    let mut out = Vec::new();
    let recs = records("sf-processor/resources/traces/k8s_small.sf");
    let kes: Vec<&Record> = recs
        .iter()
        .filter(|r| matches!(r.event, sfprocessor::record::Event::K8sEvent(_)))
        .collect();
    assert_eq!(kes.len(), 4);
    for r in &kes {
        let sfprocessor::record::Event::K8sEvent(ke) = &r.event else {
            unreachable!()
        };
        assert!(!ke.message.ends_with(['\n', '\0']), "message cleaned");
        serde_json::from_str::<serde_json::Value>(&ke.message).expect("the message is JSON");
    }
    engine.process(recs, &mut out, &mut Memo::default());
    assert_eq!(out.len(), 1);
    assert_eq!(&*out[0].policies[0].id, "New pod in namespace robot-shop");
}

#[test]
fn test_flag_loads_upstreams_runtime_integrity_set_unchanged_and_strict_refuses_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.json");
    let cfg = policy_pipeline(&policies().join("runtimeintegrity"), &out, "");
    let p = dir.path().join("pipeline.json");
    std::fs::write(&p, &cfg).unwrap();
    // No input path: -test validates the configuration and the policies alone.
    let o = common::sfprocessor(
        &["-config", p.to_str().unwrap(), "-log", "error", "-test"],
        &[],
    );
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(stdout.contains("79 rule(s)"), "{stdout}");
    assert!(
        stdout.contains("[LOAD_UNKNOWN_ACTION]") && stdout.contains("`podname`"),
        "{stdout}"
    );
    assert!(stdout.contains("[LOAD_UNKNOWN_FIELD]"), "{stdout}");
    let o = common::sfprocessor(
        &[
            "-config",
            p.to_str().unwrap(),
            "-log",
            "error",
            "-test",
            "-strict",
        ],
        &[],
    );
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("policy errors:") && stderr.contains("(strict mode)"),
        "{stderr}"
    );
    // The `strict` key does the same.
    let cfg = policy_pipeline(
        &policies().join("runtimeintegrity"),
        &out,
        r#","strict":"true""#,
    );
    std::fs::write(&p, &cfg).unwrap();
    let o = common::sfprocessor(
        &["-config", p.to_str().unwrap(), "-log", "error", "-test"],
        &[],
    );
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn hostile_policy_paths_are_errors_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.json");
    let p = dir.path().join("pipeline.json");
    let run = |policies: &std::path::Path, extra: &str| {
        std::fs::write(&p, policy_pipeline(policies, &out, extra)).unwrap();
        let o = common::sfprocessor(
            &["-config", p.to_str().unwrap(), "-log", "error", "-test"],
            &[],
        );
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let fifo = dir.path().join("fifo.yaml");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let (code, err) = run(&fifo, "");
    assert_eq!(code, Some(2));
    assert!(err.contains("is a FIFO"), "{err}");
    let (code, err) = run(std::path::Path::new("/dev/null"), "");
    assert_eq!(code, Some(2));
    assert!(err.contains("is a device"), "{err}");
    let big = dir.path().join("big.yaml");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(4 << 30)
        .unwrap();
    let (code, err) = run(&big, "");
    assert_eq!(code, Some(2));
    assert!(err.contains("more than the 16 MiB limit"), "{err}");
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        b"- rule: r\n  desc: \xff\n  condition: sf.type = PE\n",
    )
    .unwrap();
    let (code, err) = run(&bad, "");
    assert_eq!(code, Some(2));
    assert!(err.contains("bad.yaml:2:9: not UTF-8"), "{err}");
    let off = dir.path().join("off.yaml");
    std::fs::write(
        &off,
        "- rule: r\n  desc: d\n  condition: sf.type = PE\n  enabled: false\n",
    )
    .unwrap();
    let (code, err) = run(&off, "");
    assert_eq!(code, Some(2));
    assert!(err.contains("no enabled rule"), "{err}");
    // In enrich mode an empty set is fine.
    let (code, err) = run(&off, r#","mode":"enrich""#);
    assert_eq!(code, Some(0), "{err}");
}

#[test]
fn rate_limiter_passes_each_semantic_key_once_per_window_as_upstream() {
    // Expected counts follow upstream's flattener filter (semanticHash: exe, args, uid, gid,
    // opflags, tty; + sip, dip, dport, proto for network flows; + the path for file records;
    // Kubernetes events never limited), recomputed independently from the traces with
    // fastavro: (trace, records without the limiter, records with it).
    let dir = tempfile::tempdir().unwrap();
    for (trace, all, limited) in [
        ("k8s_small.sf", 5247, 1066),
        ("shellshock.sf", 56, 40),
        ("1621959914", 5822, 3897),
    ] {
        let trace = upstream().join("sf-processor/resources/traces").join(trace);
        for (filter, want) in [("off", all), ("on", limited)] {
            let out = dir.path().join(format!("out-{filter}.json"));
            let _ = std::fs::remove_file(&out);
            let cfg = format!(
                r#"{{"pipeline":[
 {{"processor":"sysflowreader","handler":"flattener","in":"sysflow sysflowchan","out":"flat flattenerchan","filter.enabled":"{filter}","filter.maxage":"3600"}},
 {{"processor":"exporter","in":"flat flattenerchan","export":"file","file.path":"{}"}}]}}"#,
                out.display()
            );
            let (code, err) = run_cli(&cfg, &trace, dir.path());
            assert_eq!(code, 0, "{err}");
            let n = common::read_json_lines(&out).len();
            assert_eq!(n, want, "{} filter {filter}", trace.display());
        }
    }
}

/// Alerts (records with at least one match) and matches per rule of a policy path over
/// `traces`, through the whole pipeline (so the flattener applies upstream's op-flag name
/// cache), one shard so the cache sees the trace order.
fn alerts(
    policies: &std::path::Path,
    traces: &[PathBuf],
    extra: &str,
) -> (usize, std::collections::BTreeMap<String, usize>) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.json");
    let cfg = policy_pipeline(policies, &out, &format!(r#","concurrency":"1"{extra}"#));
    let mut n = 0;
    let mut per_rule = std::collections::BTreeMap::new();
    for t in traces {
        let _ = std::fs::remove_file(&out);
        let (code, err) = run_cli(&cfg, t, dir.path());
        assert_eq!(code, 0, "{}: {err}", t.display());
        if !out.exists() {
            continue;
        }
        for l in common::read_json_lines(&out) {
            n += 1;
            for p in l["policies"].as_array().unwrap() {
                *per_rule
                    .entry(p["id"].as_str().unwrap().to_string())
                    .or_insert(0) += 1;
            }
        }
    }
    (n, per_rule)
}

#[test]
fn the_op_flag_name_cache_gives_upstreams_file_modified_alerts() {
    // Figures of the Go sf-processor 0.7.0 built from source (issue 12):
    // distribution/filter.yaml on k8s_small.sf gives 78 "File Modified" alerts fewer than a
    // type-true reading of `sf.opflags = WRITE` (236), because upstream's op-flag name cache
    // shows those write flows as SEND.
    let k8s = [upstream().join("sf-processor/resources/traces/k8s_small.sf")];
    let filter = policies().join("distribution/filter.yaml");
    let (_, upstream_meaning) = alerts(&filter, &k8s, "");
    assert_eq!(upstream_meaning["File Modified"], 158);
    let (_, fixed) = alerts(&filter, &k8s, r#","quirks":"fixed""#);
    assert_eq!(fixed["File Modified"], 236);
    for (rule, n) in &fixed {
        if rule != "File Modified" {
            assert_eq!(upstream_meaning.get(rule), Some(n), "{rule}");
        }
    }
}

/// The 27 upstream traces upstream 0.7.0 can read (not the 10 legacy pre-v1 ones).
fn readable_traces() -> Vec<PathBuf> {
    let traces: Vec<PathBuf> = common::inventory()
        .iter()
        .filter(|t| !t.writer_schema_variant.starts_with("legacy"))
        .map(|t| upstream().join(&t.path))
        .collect();
    assert_eq!(traces.len(), 27);
    traces
}

/// Runs `path` over the readable traces and compares alert records and per-rule matches with
/// upstream's (`want`, from [`upstream_alerts`]).
fn pinned(path: &std::path::Path, extra: &str, want: (usize, &[(&str, usize)])) {
    let (n, per_rule) = alerts(path, &readable_traces(), extra);
    let want_rules: std::collections::BTreeMap<String, usize> =
        want.1.iter().map(|(id, n)| (id.to_string(), *n)).collect();
    assert_eq!((n, &per_rule), (want.0, &want_rules), "{}", path.display());
}

#[test]
fn upstreams_runtimeintegrity_directory_gives_upstreams_alerts_per_rule() {
    // Each rule resolved against the nearest earlier definitions of its lists and macros.
    pinned(
        &policies().join("runtimeintegrity"),
        "",
        upstream_alerts::RUNTIMEINTEGRITY_DIR,
    );
}

#[test]
fn upstreams_runtimeintegrity_and_ttps_files_alone_give_upstreams_alerts_per_rule() {
    let ri = policies().join("runtimeintegrity");
    pinned(
        &ri.join("runtimeintegrity.yaml"),
        "",
        upstream_alerts::RUNTIMEINTEGRITY_YAML,
    );
    pinned(&ri.join("ttps.yaml"), "", upstream_alerts::TTPS_YAML);
}

#[test]
fn upstreams_filter_and_test_rules_give_upstreams_alerts_per_rule() {
    // filter.yaml through upstream's op-flag name cache; tests/ has the unit tests and
    // falco.yaml, which alerts on nothing: it compares `evt.type` with Falco's lowercase
    // names, and upstream's `evt.type` holds SysFlow's (with those names matching, 41
    // records here).
    pinned(
        &policies().join("distribution/filter.yaml"),
        "",
        upstream_alerts::FILTER_YAML,
    );
    pinned(&policies().join("tests"), "", upstream_alerts::TESTS_DIR);
}

#[test]
fn upstreams_sigma_rules_give_upstreams_alerts() {
    // Upstream ignores the logsource (a process_creation rule alerts on every record of a
    // matching process) and ANDs lists of maps.
    let sigma = policies().join("sigma");
    let extra = format!(
        r#","language":"sigma","config":"{}""#,
        sigma.join("config/sysflow.yml").display()
    );
    pinned(&sigma.join("rules"), &extra, upstream_alerts::SIGMA_RULES);
}

#[test]
fn conditions_see_upstreams_process_tree_cache_unless_quirks_are_fixed() {
    use sfprocessor::sysflow::model::*;
    use sfprocessor::sysflow::names::{OP_EXEC, OP_OPEN, OP_READ_RECV};
    use sfprocessor::sysflow::writer::{avro_codec, schema, SchemaVersion, TraceWriter};
    use sfprocessor::sysflow::SysFlow;
    // The child's first event comes before its parent's record; later the child execs
    // another program (a MODIFIED record). Upstream's process-tree cache keeps the lineage of
    // the first event: no parent, and the child's first program.
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("tree.sf");
    let schema = schema(SchemaVersion::V5).unwrap();
    let f = std::fs::File::create(&trace).unwrap();
    let mut w = TraceWriter::new(&schema, SchemaVersion::V5, avro_codec("null").unwrap(), f);
    let child = Oid {
        create_ts: 20,
        hpid: 2,
    };
    let parent = Oid {
        create_ts: 10,
        hpid: 1,
    };
    let proc_rec = |oid: Oid, poid: Option<Oid>, exe: &str, state: ObjectState| {
        SysFlow::Process(Box::new(Process {
            state,
            oid,
            poid,
            exe: exe.into(),
            ..Default::default()
        }))
    };
    let read = |ts: i64| {
        SysFlow::FileFlow(FileFlow {
            proc_oid: child,
            ts,
            op_flags: OP_OPEN | OP_READ_RECV,
            file_oid: [3; 20],
            ..Default::default()
        })
    };
    for r in [
        SysFlow::Header(Box::new(Header {
            version: 5,
            ..Default::default()
        })),
        proc_rec(
            child,
            Some(parent),
            "/usr/bin/python3",
            ObjectState::Created,
        ),
        SysFlow::ProcessEvent(ProcessEvent {
            proc_oid: child,
            ts: 30,
            op_flags: OP_EXEC,
            ..Default::default()
        }),
        proc_rec(parent, None, "/bin/bash", ObjectState::Created),
        SysFlow::File(Box::new(File {
            oid: [3; 20],
            path: "/etc/passwd".into(),
            restype: b'f' as i32,
            ..Default::default()
        })),
        read(40),
        proc_rec(child, Some(parent), "/usr/bin/perl", ObjectState::Modified),
        read(50),
    ] {
        w.append(&r).unwrap();
    }
    w.finish().unwrap();
    let pol = dir.path().join("p.yaml");
    std::fs::write(
        &pol,
        "- rule: under bash\n  desc: d\n  condition: sf.type = FF and sf.pproc.name = bash\n- rule: python lineage\n  desc: d\n  condition: sf.type = FF and sf.proc.aname = python3\n",
    )
    .unwrap();
    let (_, upstream_meaning) = alerts(&pol, std::slice::from_ref(&trace), "");
    assert_eq!(
        upstream_meaning.get("under bash"),
        None,
        "the parent came after the first event"
    );
    assert_eq!(
        upstream_meaning.get("python lineage"),
        Some(&2),
        "the first program stays"
    );
    let (_, fixed) = alerts(&pol, &[trace], r#","quirks":"fixed""#);
    assert_eq!(fixed.get("under bash"), Some(&2));
    assert_eq!(fixed.get("python lineage"), Some(&1));
}
