//! `sfbench`: records/s and peak RSS per stage configuration, each stage in a fresh process so
//! its peak RSS is its own.
//!
//! Usage: sfbench [-records N] [-trace FILE] [-stage decode|cache|encode|pipeline|all]
//!
//! Stages: decode only; + entity cache and record assembly; + JSON encoding (all on one
//! thread); the full actor pipeline (pass-through policy engine, JSON, null exporter).
//! Without -trace, a trace of N records (default 5,000,000) is generated first (deflate, v5).

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

use sfactors::StopFlag;
use sfprocessor::cache::EntityCache;
use sfprocessor::config::PipelineConfig;
use sfprocessor::gen::{GenConfig, Generator};
use sfprocessor::pipeline::{self, RunOptions};
use sfprocessor::sysflow::ocf::{Frame, OcfReader};
use sfprocessor::sysflow::trace::decode_block;
use sfprocessor::sysflow::writer::{avro_codec, schema, SchemaVersion, TraceWriter};
use sfprocessor::sysflow::DatumPlan;

const PIPELINE: &str = r#"{"pipeline":[
 {"processor":"sysflowreader","handler":"flattener","in":"sysflow sysflowchan","out":"flat flattenerchan"},
 {"processor":"policyengine","in":"flat flattenerchan","out":"evt eventchan","mode":"enrich"},
 {"processor":"exporter","in":"evt eventchan","export":"null","format":"json"}]}"#;

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn decode_stage(trace: &Path, with_cache: bool, encode: bool) -> Result<u64, String> {
    let f = std::fs::File::open(trace).map_err(|e| e.to_string())?;
    let mut r = OcfReader::open(std::io::BufReader::with_capacity(256 << 10, f))
        .map_err(|e| e.to_string())?;
    let plan = DatumPlan::compile(r.schema_json()).map_err(|e| e.to_string())?;
    let codec = r.codec();
    let mut scratch = Vec::new();
    let mut cache = EntityCache::default();
    let mut n = 0u64;
    let mut events = 0u64;
    let mut enc = sfprocessor::encode::JsonEncoder::new();
    let mut buf: Vec<u8> = Vec::with_capacity(1 << 20);
    let mut bytes = 0u64;
    loop {
        match r.next_frame() {
            Frame::Block(b) => {
                let o = decode_block(&plan, codec, &b, &mut scratch);
                if let Some(e) = o.error {
                    return Err(format!("block {}: {e}", b.index));
                }
                n += o.records.len() as u64;
                if with_cache {
                    for rec in o.records {
                        if let Some(r) = cache.apply(rec) {
                            events += 1;
                            if encode {
                                enc.encode(&r, &mut buf);
                                buf.push(b'\n');
                                if buf.len() > 1 << 20 {
                                    bytes += buf.len() as u64;
                                    buf.clear();
                                }
                            }
                            std::hint::black_box(&r);
                        }
                    }
                } else {
                    std::hint::black_box(&o.records);
                }
            }
            Frame::Damaged { reason, .. } => return Err(reason),
            Frame::End => break,
        }
    }
    std::hint::black_box(events);
    if encode {
        bytes += buf.len() as u64;
        eprintln!(
            "encode: {events} events, {:.0} JSON bytes per event",
            bytes as f64 / events.max(1) as f64
        );
    }
    Ok(n)
}

fn pipeline_stage(trace: &Path) -> Result<u64, String> {
    let cfg =
        PipelineConfig::parse(PIPELINE, "bench-pipeline.json", &[]).map_err(|e| e.to_string())?;
    let plan = pipeline::plan(&cfg).map_err(|e| e.to_string())?;
    let out = pipeline::run(
        &plan,
        vec![trace.to_path_buf()],
        StopFlag::new(),
        RunOptions::default(),
    );
    if let Some(f) = out.failure {
        return Err(f);
    }
    // Records read by the driver (entities included), for records/s like the other stages.
    Ok(out
        .metrics
        .iter()
        .find(|m| m.name == "driver")
        .map(|m| m.received_records)
        .unwrap_or(0))
}

fn run_child(stage: &str, trace: &Path) -> Result<(), String> {
    let t = Instant::now();
    let n = match stage {
        "decode" => decode_stage(trace, false, false)?,
        "cache" => decode_stage(trace, true, false)?,
        "encode" => decode_stage(trace, true, true)?,
        "pipeline" => pipeline_stage(trace)?,
        other => return Err(format!("unknown stage {other}")),
    };
    let secs = t.elapsed().as_secs_f64();
    println!(
        "{stage:<9} records={n} seconds={secs:.3} records_per_sec={:.0} peak_rss_mib={:.1}",
        n as f64 / secs,
        peak_rss_kib() as f64 / 1024.0
    );
    Ok(())
}

fn generate(path: &Path, records: u64) -> Result<(), String> {
    let schema = schema(SchemaVersion::V5).map_err(|e| e.to_string())?;
    let f = std::fs::File::create(path).map_err(|e| e.to_string())?;
    let codec = avro_codec("deflate").ok_or("codec")?;
    let mut w = TraceWriter::new(
        &schema,
        SchemaVersion::V5,
        codec,
        std::io::BufWriter::new(f),
    );
    for r in Generator::new(GenConfig {
        seed: 42,
        records,
        ..Default::default()
    }) {
        w.append(&r).map_err(|e| e.to_string())?;
    }
    w.finish().map_err(|e| e.to_string())?;
    Ok(())
}

fn main() -> ExitCode {
    let mut records: u64 = 5_000_000;
    let mut trace: Option<PathBuf> = None;
    let mut stage = "all".to_string();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.trim_start_matches('-') {
            "records" => {
                records = args
                    .next()
                    .and_then(|v| v.replace('_', "").parse().ok())
                    .unwrap_or(records)
            }
            "trace" => trace = args.next().map(PathBuf::from),
            "stage" => stage = args.next().unwrap_or(stage),
            other => {
                eprintln!("sfbench: unknown argument {other}");
                return ExitCode::from(2);
            }
        }
    }
    let trace = match trace {
        Some(t) => t,
        None => {
            let p = std::env::temp_dir().join(format!("sfbench-{records}.sf"));
            if !p.exists() {
                eprintln!("sfbench: generating {records} records into {}", p.display());
                if let Err(e) = generate(&p, records) {
                    eprintln!("sfbench: {e}");
                    return ExitCode::from(1);
                }
            }
            p
        }
    };
    if stage != "all" {
        return match run_child(&stage, &trace) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("sfbench: {stage}: {e}");
                ExitCode::from(1)
            }
        };
    }
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("sfbench: {e}");
            return ExitCode::from(1);
        }
    };
    println!(
        "trace={} bytes={}",
        trace.display(),
        std::fs::metadata(&trace).map(|m| m.len()).unwrap_or(0)
    );
    for s in ["decode", "cache", "encode", "pipeline"] {
        let status = Command::new(&exe)
            .args(["-stage", s, "-trace"])
            .arg(&trace)
            .status();
        if !matches!(status, Ok(st) if st.success()) {
            eprintln!("sfbench: stage {s} failed");
            return ExitCode::from(1);
        }
    }
    ExitCode::SUCCESS
}
