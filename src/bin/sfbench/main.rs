//! `sfbench`: records/s and peak RSS per stage configuration, each stage in a fresh process so
//! its peak RSS is its own.
//!
//! Usage: sfbench [-records N] [-trace FILE] [-stage decode|cache|encode|pipeline|queue-drain|engine|alert|ruleprof|kafka-bare|kafka|es|syslog|socket|socket-vs-file|soak|latency|live-cpu|all]
//!                [-policies P1,P2] [-rules N] [-repeat N] [-rate N] [-seconds N] [-warmup N] [-agent PATH] [-latency]
//!
//! `live-cpu` (`live.rs`): the agent binary (`-agent`, default the `sfprocessor` beside this
//! one) as a process of its own fed by the simulator at `-rate` records/s for `-seconds`
//! (rate 0: idle): its CPU % of a core, µs per record and context switches per second;
//! `-warmup N` sends N seconds first and measures after them (the steady state: entity tables
//! and encoder caches full); `-latency` alerts to an rsyslogd and adds p50/p99/max latency.
//!
//! Live stages (`live.rs`): `socket` (the socket path: pass-through, JSON, null exporter, fed
//! by a simulator child that preloads the trace), `socket-vs-file` (that and `pipeline`
//! alternately, three times each, with the ratio), `soak` (`-records` generated records with
//! distinct files through the socket, RSS every million records), `latency` (`-rate`
//! records/s for `-seconds` to an rsyslogd started here, p50/p99/max from send to arrival).
//!
//! `engine`: policy evaluation only, over records already assembled in memory (the first
//! 1,000,000 of the trace, evaluated in a loop up to the trace's size), with the upstream
//! policies given by `-policies` (upstream's default mode; Sigma rules when `SFBENCH_SIGMA`
//! names a field-mapping config) or `-rules N` synthetic rules; `SFBENCH_BUCKETS=RULE` then
//! lists the dispatch buckets and the residual conditions of the rules it names. `alert`: the
//! full pipeline in alert mode with those policies (JSON, null exporter);
//! `SFBENCH_CONCURRENCY=N` sets its policy shards, and `SFBENCH_BATCH` / `SFBENCH_WINDOW` the
//! records per driver batch and batches in flight per edge of the pipeline stages.
//!
//! Stages: decode only; + entity cache and record assembly; + JSON encoding (all on one
//! thread); the full actor pipeline (pass-through policy engine, JSON, null exporter).
//! Without -trace, a trace of N records (default 5,000,000) is generated first (deflate, v5).
//! `-repeat N` with `-trace FILE` writes FILE's records N times over into one trace first (a
//! large trace with real content) and runs the stage on it.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

mod live;
mod queue;

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

/// CPU time (user + system) of this process so far, children excluded: for the socket
/// stage, the agent's own cost without the simulator's.
fn cpu_seconds() -> f64 {
    // SAFETY: getrusage fills the struct we pass; an all-zero rusage is valid to start from.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return 0.0;
    }
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(ru.ru_utime) + t(ru.ru_stime)
}

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
    // The first records, kept assembled to time the encoder alone afterwards.
    let mut kept: Vec<sfprocessor::record::Record> = Vec::new();
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
                                if kept.len() < ENCODE_ALONE {
                                    kept.push(r.clone());
                                }
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
        // The encoder alone, on one core: the kept records three times over, with a fresh
        // encoder (its entity caches fill as in a run).
        let mut enc = sfprocessor::encode::JsonEncoder::new();
        let mut out = 0u64;
        let t = Instant::now();
        for _ in 0..3 {
            for r in &kept {
                enc.encode(r, &mut buf);
                buf.push(b'\n');
                if buf.len() > 1 << 20 {
                    out += buf.len() as u64;
                    buf.clear();
                }
            }
        }
        out += buf.len() as u64;
        let secs = t.elapsed().as_secs_f64();
        let n = (kept.len() * 3) as f64;
        println!(
            "json_encoder events={} bytes_per_event={:.0} gb_per_sec={:.2} ns_per_event={:.0}",
            kept.len() * 3,
            out as f64 / n,
            out as f64 / secs / 1e9,
            secs / n * 1e9
        );
    }
    Ok(n)
}

/// Records kept to time the JSON encoder alone (`-stage encode`).
const ENCODE_ALONE: usize = 500_000;

/// Runs a pipeline configuration over `trace`; returns the records the driver read.
fn env_number(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

fn run_pipeline(cfg_text: &str, name: &str, trace: &Path) -> Result<(u64, u64), String> {
    let cfg = PipelineConfig::parse(cfg_text, name, &[]).map_err(|e| e.to_string())?;
    let plan = pipeline::plan(&cfg).map_err(|e| e.to_string())?;
    // SFBENCH_BATCH=N / SFBENCH_WINDOW=N: records per driver batch, batches in flight per edge.
    let mut opts = RunOptions::default();
    if let Some(n) = env_number("SFBENCH_BATCH") {
        opts.batch_records = n;
    }
    if let Some(n) = env_number("SFBENCH_WINDOW") {
        opts.window = n as usize;
    }
    let out = pipeline::run(&plan, vec![trace.to_path_buf()], StopFlag::new(), opts);
    if let Some(f) = out.failure {
        return Err(f);
    }
    let read = out
        .metrics
        .iter()
        .find(|m| m.name == "driver")
        .map(|m| m.received_records)
        .unwrap_or(0);
    Ok((read, out.exported()))
}

/// The first `limit` assembled records of `trace` and the number of records it holds.
fn records_in_memory(
    trace: &Path,
    limit: usize,
) -> Result<(Vec<sfprocessor::record::Record>, u64), String> {
    let mut recs = Vec::new();
    let mut cache = EntityCache::default();
    let mut total = 0u64;
    sfprocessor::sysflow::trace::read_trace(trace, |r| {
        total += 1;
        if recs.len() < limit {
            if let Some(rec) = cache.apply(r) {
                recs.push(rec);
            }
        }
    })
    .map_err(|e| e.to_string())?;
    Ok((recs, total))
}

fn pipeline_stage(trace: &Path) -> Result<u64, String> {
    // SFBENCH_QUEUE=disk[:SYNC]: the exporter's queue on disk (issue 28's benchmark).
    let qdir = queue::QueueDir::new("pipeline");
    let cfg = match queue::pipeline_queue_keys(&qdir.0) {
        Some(keys) => PIPELINE.replace(
            r#""format":"json"}"#,
            &format!(r#""format":"json"{keys}}}"#),
        ),
        None => PIPELINE.to_string(),
    };
    // Records read by the driver (entities included), for records/s like the other stages.
    Ok(run_pipeline(&cfg, "bench-pipeline.json", trace)?.0)
}

fn policy_set(policies: &str, rules: usize) -> Result<sfprocessor::policy::set::PolicySet, String> {
    use sfprocessor::policy::engine::{load_policy_paths, synthetic_rules, LoadOptions};
    if rules > 0 {
        let p = std::env::temp_dir().join(format!("sfbench-rules-{rules}.yaml"));
        std::fs::write(&p, synthetic_rules(rules)).map_err(|e| e.to_string())?;
        return load_policy_paths(&[p.as_path()], &LoadOptions::default())
            .map_err(|e| e.to_string());
    }
    let paths: Vec<PathBuf> = policies
        .split(',')
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .collect();
    let refs: Vec<&Path> = paths.iter().map(|p| p.as_path()).collect();
    // SFBENCH_SIGMA=CONFIG: the policies are Sigma rules with that field-mapping file.
    let opts = match std::env::var_os("SFBENCH_SIGMA") {
        Some(c) => LoadOptions {
            language: sfprocessor::policy::engine::Language::Sigma {
                config: Some(PathBuf::from(c)),
            },
            ..Default::default()
        },
        None => LoadOptions::default(),
    };
    // SFBENCH_QUIRKS=fixed: conditions read the record as recorded.
    let opts = LoadOptions {
        fixed_quirks: std::env::var("SFBENCH_QUIRKS").is_ok_and(|v| v == "fixed"),
        ..opts
    };
    load_policy_paths(&refs, &opts).map_err(|e| e.to_string())
}

/// Engine only: assemble up to 1M records in memory, then time evaluation alone.
fn engine_stage(trace: &Path, policies: &str, rules: usize) -> Result<(u64, f64), String> {
    use sfprocessor::policy::engine::{Engine, Mode};
    let set = policy_set(policies, rules)?;
    eprintln!(
        "engine: {} rules, {} filters, {} memo slots",
        set.counts.rules, set.counts.filters, set.macro_slots
    );
    let engine = Engine::new(std::sync::Arc::new(set), Mode::Enrich);
    let (mut recs, total) = records_in_memory(trace, 1_000_000)?;
    // At least 2M evaluations, so small traces measure the warm engine (as in a long run).
    let min: u64 = std::env::var("SFBENCH_MIN_EVALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000_000);
    let target = total.max(recs.len() as u64).max(min);
    let t = Instant::now();
    let mut n = 0u64;
    let mut matched = 0u64;
    let mut memo = sfprocessor::policy::memo::Memo::default();
    while n < target {
        for r in recs.iter_mut() {
            engine.apply_memo(r, &mut memo);
            matched += r.policies.len() as u64;
            r.policies.clear();
            r.tags.clear();
            n += 1;
            if n >= target {
                break;
            }
        }
    }
    eprintln!(
        "engine: {matched} rule matches; {} dispatch keys; entity switches {} (restored {})",
        memo.buckets(),
        memo.switches,
        memo.restored
    );
    if let Some(show) = std::env::var_os("SFBENCH_BUCKETS") {
        print_buckets(&engine, &memo, &recs, &show.to_string_lossy());
    }
    Ok((n, t.elapsed().as_secs_f64()))
}

/// `SFBENCH_BUCKETS`: each dispatch bucket the run built (records per key, rules, index
/// groups), and the residual conditions of the rules whose name contains `show` (or of every
/// rule of the bucket whose key prints as `show`, e.g. `(3, 1408, 1)`).
fn print_buckets(
    engine: &sfprocessor::policy::engine::Engine,
    memo: &sfprocessor::policy::memo::Memo,
    recs: &[sfprocessor::record::Record],
    show: &str,
) {
    use sfprocessor::policy::{ir::TypeSet, memo::dispatch_key};
    let mut per_key: std::collections::HashMap<(u8, i32, i32), u64> = Default::default();
    for r in recs {
        if let Some(bit) = TypeSet::bit(r.kind()) {
            *per_key.entry(dispatch_key(bit, r)).or_default() += 1;
        }
    }
    for (k, b) in memo.bucket_list() {
        eprintln!(
            "key {k:?}: {} records, drop {}, {} filters, {} rules, index {:?}",
            per_key.get(&k).copied().unwrap_or(0),
            b.drop,
            b.filters.len(),
            b.rules.len(),
            b.index
        );
        let whole = show == format!("{k:?}");
        for (i, p) in &b.rules {
            let name = &engine.set.rules[*i].name;
            if !show.is_empty() && (whole || name.contains(show)) {
                eprintln!("   {name}: {p:?}");
            }
        }
    }
}

/// Time per rule (diagnostics for rule authors and for tuning the engine).
fn rule_profile(trace: &Path, policies: &str, rules: usize) -> Result<(u64, f64), String> {
    let set = policy_set(policies, rules)?;
    let (recs, _) = records_in_memory(trace, 200_000)?;
    let t0 = Instant::now();
    let mut times: Vec<(f64, String, usize)> = Vec::new();
    for rule in &set.rules {
        let t = Instant::now();
        let mut hits = 0;
        for r in &recs {
            if rule.types.contains(r.kind()) && rule.pred.eval(r) {
                hits += 1;
            }
        }
        times.push((t.elapsed().as_secs_f64(), rule.name.to_string(), hits));
    }
    for flt in &set.filters {
        let t = Instant::now();
        let mut hits = 0;
        for r in &recs {
            if flt.types.contains(r.kind()) && flt.pred.eval(r) {
                hits += 1;
            }
        }
        times.push((
            t.elapsed().as_secs_f64(),
            format!("filter {}", flt.name),
            hits,
        ));
    }
    times.sort_by(|a, b| b.0.total_cmp(&a.0));
    for (secs, name, hits) in times.iter().take(15) {
        eprintln!(
            "{:>8.1} ns/record  {hits:>7} hits  {name}",
            secs * 1e9 / recs.len() as f64
        );
    }
    Ok((recs.len() as u64, t0.elapsed().as_secs_f64()))
}

fn alert_stage(trace: &Path, policies: &str) -> Result<u64, String> {
    let list: Vec<&str> = policies.split(',').filter(|p| !p.is_empty()).collect();
    // One policy stage per path is not what users run: copy the files into one directory.
    let dir = std::env::temp_dir().join("sfbench-policies");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    for (i, p) in list.iter().enumerate() {
        for f in
            sfprocessor::policy::files::policy_files(Path::new(p)).map_err(|e| e.to_string())?
        {
            let name = format!(
                "{i:02}-{}",
                f.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            );
            std::fs::copy(&f, dir.join(name)).map_err(|e| e.to_string())?;
        }
    }
    // SFBENCH_CONCURRENCY=N: the policy stage's `concurrency` (shards); default: one per core.
    let concurrency = match std::env::var("SFBENCH_CONCURRENCY") {
        Ok(n) => format!(r#","concurrency":"{n}""#),
        Err(_) => String::new(),
    };
    let cfg_text = format!(
        r#"{{"pipeline":[
 {{"processor":"sysflowreader","handler":"flattener","in":"sysflow sysflowchan","out":"flat flattenerchan"}},
 {{"processor":"policyengine","in":"flat flattenerchan","out":"evt eventchan","mode":"alert","policies":"{}"{concurrency}}},
 {{"processor":"exporter","in":"evt eventchan","export":"null","format":"json"}}]}}"#,
        dir.display()
    );
    let (read, exported) = run_pipeline(&cfg_text, "bench-alert.json", trace)?;
    eprintln!("alert: {exported} records exported");
    Ok(read)
}

/// Up to 500,000 records of `trace`, JSON-encoded (one line each), with their partition keys
/// and document ids, in batches of 1,000 as the exporter node hands them over.
fn encoded_batches(trace: &Path, ecs: bool) -> Result<Vec<sfprocessor::exporter::Payload>, String> {
    use sfprocessor::encode::{ecs::doc_id_hash, EcsEncoder, JsonEncoder};
    let (recs, _) = records_in_memory(trace, 500_000)?;
    let mut json = JsonEncoder::new();
    let mut e = EcsEncoder::new();
    let mut out = Vec::new();
    for chunk in recs.chunks(1000) {
        let mut p = sfprocessor::exporter::Payload::new(Vec::new(), true);
        for r in chunk {
            if ecs {
                e.encode(r, &mut p.bytes);
            } else {
                json.encode(r, &mut p.bytes);
            }
            p.end_record();
            p.keys
                .push(sfprocessor::pipeline::exporter::partition_key(r));
            p.ids.push(doc_id_hash(r));
        }
        out.push(p);
    }
    Ok(out)
}

fn bench_target() -> Result<String, String> {
    std::env::var("SFBENCH_TARGET").map_err(|_| {
        "set SFBENCH_TARGET (kafka: host:port, es: http://host:port, syslog: host:port)".to_string()
    })
}

/// A bare librdkafka producer (same settings as the exporter's defaults) sending the same
/// encoded messages with the same keys: produce everything, then flush. The yardstick for the
/// Kafka exporter.
fn kafka_bare_stage(trace: &Path) -> Result<(u64, f64), String> {
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    let batches = encoded_batches(trace, false)?;
    let mut c = rdkafka::ClientConfig::new();
    for (k, v) in sfprocessor::exporter::kafka::KafkaConfig::defaults() {
        c.set(k, v);
    }
    c.set("bootstrap.servers", bench_target()?);
    let p: BaseProducer = c.create().map_err(|e| e.to_string())?;
    let t = Instant::now();
    let mut n = 0u64;
    for b in &batches {
        for (i, line) in b.iter().enumerate() {
            let key = format!("{:016x}", b.keys[i]);
            let mut rec = BaseRecord::to("sfbench").payload(line).key(key.as_bytes());
            loop {
                match p.send(rec) {
                    Ok(()) => break,
                    Err((_, r)) => {
                        p.poll(Duration::from_millis(5));
                        rec = r;
                    }
                }
            }
            n += 1;
        }
        p.poll(Duration::ZERO);
    }
    p.flush(Duration::from_secs(120))
        .map_err(|e| e.to_string())?;
    Ok((n, t.elapsed().as_secs_f64()))
}

/// The exporter's delivery worker and transport (`kafka`, `es` or `syslog`) over the same
/// encoded batches; records/s counts acknowledged records only.
fn transport_stage(stage: &str, trace: &Path) -> Result<(u64, f64), String> {
    use sfprocessor::exporter::{delivery::Delivery, DeliveryConfig, Transport};
    let target = bench_target()?;
    let batches = encoded_batches(trace, stage == "es")?;
    let transport: Box<dyn Transport> = match stage {
        "kafka" => {
            let mut settings = sfprocessor::exporter::kafka::KafkaConfig::defaults();
            settings.insert("bootstrap.servers".into(), target);
            Box::new(sfprocessor::exporter::kafka::KafkaTransport::new(
                sfprocessor::exporter::kafka::KafkaConfig {
                    topic: "sfbench".into(),
                    settings,
                },
            ))
        }
        "es" => Box::new(
            sfprocessor::exporter::es::EsTransport::new(sfprocessor::exporter::es::EsConfig {
                addresses: vec![sfprocessor::exporter::es::http::Url::parse(&target)
                    .map_err(|e| e.to_string())?],
                index: "sfbench".into(),
                ..Default::default()
            })
            .map_err(|e| e.to_string())?,
        ),
        _ => {
            let (host, port) = target.rsplit_once(':').ok_or("SFBENCH_TARGET host:port")?;
            Box::new(sfprocessor::exporter::syslog::SyslogTransport::new(
                sfprocessor::exporter::syslog::SyslogConfig {
                    host: host.into(),
                    port: port.parse().map_err(|_| "port")?,
                    ..Default::default()
                },
            ))
        }
    };
    let buffer = std::env::var("SFBENCH_BUFFER")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let cfg = DeliveryConfig {
        buffer,
        ..Default::default()
    };
    let m = sfprocessor::counters::Tally::new();
    let mut d = Delivery::start(
        transport,
        &cfg,
        m.clone(),
        stage.to_string(),
        sfprocessor::shutdown::Shutdown::new(),
    );
    let t = Instant::now();
    for b in batches {
        d.submit(b).map_err(|e| e.to_string())?;
    }
    d.finish();
    let s = m.snapshot();
    if s.failed_records + s.dropped_records > 0 {
        return Err(format!(
            "{} records not delivered",
            s.failed_records + s.dropped_records
        ));
    }
    Ok((s.sent_records, t.elapsed().as_secs_f64()))
}

fn run_child(
    stage: &str,
    trace: &Path,
    policies: &str,
    rules: usize,
    la: &live::LiveArgs,
) -> Result<(), String> {
    let t = Instant::now();
    let (n, secs) = match stage {
        "socket" => live::socket_stage(trace)?,
        "socket-vs-file" => return socket_vs_file(trace),
        "soak" => live::soak_stage(la.records)?,
        "latency" => live::latency_stage(la.rate, la.seconds)?,
        "decode" => (
            decode_stage(trace, false, false)?,
            t.elapsed().as_secs_f64(),
        ),
        "cache" => (decode_stage(trace, true, false)?, t.elapsed().as_secs_f64()),
        "encode" => (decode_stage(trace, true, true)?, t.elapsed().as_secs_f64()),
        "pipeline" => (pipeline_stage(trace)?, t.elapsed().as_secs_f64()),
        "queue-drain" => queue::drain_stage(trace, la.records)?,
        "engine" => engine_stage(trace, policies, rules)?,
        "alert" => (alert_stage(trace, policies)?, t.elapsed().as_secs_f64()),
        "ruleprof" => rule_profile(trace, policies, rules)?,
        "kafka-bare" => kafka_bare_stage(trace)?,
        "kafka" | "es" | "syslog" => transport_stage(stage, trace)?,
        other => return Err(format!("unknown stage {other}")),
    };
    let cpu = cpu_seconds();
    println!(
        "{stage:<9} records={n} seconds={secs:.3} records_per_sec={:.0} peak_rss_mib={:.1} cpu_s={cpu:.2} records_per_cpu_sec={:.0}",
        n as f64 / secs,
        peak_rss_kib() as f64 / 1024.0,
        n as f64 / cpu.max(1e-9)
    );
    Ok(())
}

/// The file pipeline and the socket path on the same trace, alternately, three times each in
/// fresh processes; the ratio of the medians.
fn socket_vs_file(trace: &Path) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let rate = |stage: &str| -> Result<f64, String> {
        let o = Command::new(&exe)
            .args(["-stage", stage, "-trace"])
            .arg(trace)
            .output()
            .map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        print!("{text}");
        text.split_whitespace()
            .find_map(|w| w.strip_prefix("records_per_sec="))
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("{stage}: {}", String::from_utf8_lossy(&o.stderr)))
    };
    let (mut file, mut sock) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        file.push(rate("pipeline")?);
        sock.push(rate("socket")?);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (f, s) = (median(&mut file), median(&mut sock));
    println!(
        "socket-vs-file file_median={f:.0} socket_median={s:.0} ratio={:.3}",
        s / f
    );
    Ok(())
}

/// Writes `records` to `path` as a v5 trace (deflate), streaming.
fn write_records<R: std::borrow::Borrow<sfprocessor::sysflow::SysFlow>>(
    path: &Path,
    records: impl IntoIterator<Item = R>,
) -> Result<(), String> {
    let schema = schema(SchemaVersion::V5).map_err(|e| e.to_string())?;
    let f = std::fs::File::create(path).map_err(|e| e.to_string())?;
    let codec = avro_codec("deflate").ok_or("codec")?;
    let mut w = TraceWriter::new(
        &schema,
        SchemaVersion::V5,
        codec,
        std::io::BufWriter::new(f),
    );
    for r in records {
        w.append(r.borrow()).map_err(|e| e.to_string())?;
    }
    w.finish().map_err(|e| e.to_string())?;
    Ok(())
}

fn generate(path: &Path, records: u64) -> Result<(), String> {
    write_records(
        path,
        Generator::new(GenConfig {
            seed: 42,
            records,
            ..Default::default()
        }),
    )
}

/// A trace holding `src`'s records `times` times over (schema v5, deflate): a large trace with
/// the content of a real one, for pipeline benchmarks.
fn write_repeated(src: &Path, dst: &Path, times: usize) -> Result<(), String> {
    let mut recs = Vec::new();
    sfprocessor::sysflow::trace::read_trace(src, |r| recs.push(r)).map_err(|e| e.to_string())?;
    write_records(dst, std::iter::repeat_n(&recs, times).flatten())
}

fn main() -> ExitCode {
    let mut records: u64 = 5_000_000;
    let mut trace: Option<PathBuf> = None;
    let mut stage = "all".to_string();
    let mut policies = String::new();
    let mut rules = 0usize;
    let mut repeat = 0usize;
    let mut la = live::LiveArgs {
        rate: 50_000,
        seconds: 20,
        ..Default::default()
    };
    let mut records_given = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.trim_start_matches('-') {
            "records" => {
                records_given = true;
                records = args
                    .next()
                    .and_then(|v| v.replace('_', "").parse().ok())
                    .unwrap_or(records)
            }
            "rate" => la.rate = args.next().and_then(|v| v.parse().ok()).unwrap_or(la.rate),
            "seconds" => {
                la.seconds = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(la.seconds)
            }
            "socket" => la.socket = args.next().map(PathBuf::from),
            "distinct" => la.distinct = true,
            "stamp" => la.stamp = true,
            "agent" => la.agent = args.next().map(PathBuf::from),
            "warmup" => la.warmup = args.next().and_then(|v| v.parse().ok()).unwrap_or(0),
            "latency" => la.latency = true,
            "trace" => trace = args.next().map(PathBuf::from),
            "stage" => stage = args.next().unwrap_or(stage),
            "policies" => policies = args.next().unwrap_or_default(),
            "rules" => rules = args.next().and_then(|v| v.parse().ok()).unwrap_or(0),
            "repeat" => repeat = args.next().and_then(|v| v.parse().ok()).unwrap_or(0),
            other => {
                eprintln!("sfbench: unknown argument {other}");
                return ExitCode::from(2);
            }
        }
    }
    la.records = if records_given { records } else { 20_000_000 };
    // Stages that make their own records need no trace file.
    if stage == "simulate" {
        return match live::simulate(trace.as_deref(), &la) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("sfbench: simulate: {e}");
                ExitCode::from(1)
            }
        };
    }
    if stage == "live-cpu" {
        return match live::live_cpu_stage(&la) {
            Ok(_) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("sfbench: live-cpu: {e}");
                ExitCode::from(1)
            }
        };
    }
    if stage == "soak" || stage == "latency" {
        return match run_child(&stage, Path::new(""), &policies, rules, &la) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("sfbench: {stage}: {e}");
                ExitCode::from(1)
            }
        };
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
    let trace = if repeat > 1 {
        let name = trace
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let p = std::env::temp_dir().join(format!("sfbench-repeat-{repeat}-{name}"));
        if !p.exists() {
            eprintln!(
                "sfbench: writing {} {repeat} times into {}",
                trace.display(),
                p.display()
            );
            if let Err(e) = write_repeated(&trace, &p, repeat) {
                eprintln!("sfbench: {e}");
                return ExitCode::from(1);
            }
        }
        p
    } else {
        trace
    };
    if stage != "all" {
        return match run_child(&stage, &trace, &policies, rules, &la) {
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
