//! `sfgen`: writes a deterministic, realistic SysFlow trace, or plays the collector: streams
//! a trace (or generated records) to the agent's socket as the collector does.
//!
//! Usage: sfgen [-seed N] [-records N] [-codec deflate|null|snappy|zstd] [-schema 5|4]
//!              [-no-k8s] [-distinct-files] -o FILE
//!        sfgen -socket PATH [-trace FILE] [-loop N] [-rate N] [-no-reconnect]
//!              [-seed N] [-records N] [-distinct-files]

use std::process::ExitCode;

use sfprocessor::gen::{GenConfig, Generator};
use sfprocessor::sysflow::writer::{avro_codec, schema, SchemaVersion, TraceWriter};

const USAGE: &str = "Usage: sfgen [-seed N] [-records N] [-codec deflate|null|snappy|zstd] [-schema 5|4] [-no-k8s] [-distinct-files] -o FILE
       sfgen -socket PATH [-trace FILE] [-loop N] [-rate N] [-no-reconnect] [-seed N] [-records N] [-distinct-files]

  -socket PATH     play the collector: connect to the agent's socket (SOCK_SEQPACKET), send a
                   header, then one record per packet; reconnect with the header again when
                   the agent goes away (unless -no-reconnect)
  -trace FILE      the records to send (default: generated records, -records of them)
  -loop N          send the trace N times (default 1)
  -rate N          records per second (default 0: as fast as the agent takes them)";

fn main() -> ExitCode {
    let mut cfg = GenConfig::default();
    let mut codec = "deflate".to_string();
    let mut version = SchemaVersion::V5;
    let mut out: Option<String> = None;
    let mut socket: Option<String> = None;
    let mut trace: Option<String> = None;
    let mut rate = 0u64;
    let mut loops = 1u64;
    let mut reconnect = true;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let flag = a.trim_start_matches('-');
        let (name, inline) = match flag.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (flag.to_string(), None),
        };
        let mut val = || inline.clone().or_else(|| args.next());
        let bad = |what: &str| {
            eprintln!("sfgen: {what}\n{USAGE}");
            ExitCode::from(2)
        };
        match name.as_str() {
            "seed" => match val().and_then(|v| v.parse().ok()) {
                Some(v) => cfg.seed = v,
                None => return bad("-seed needs a number"),
            },
            "records" => match val().and_then(|v| v.replace('_', "").parse().ok()) {
                Some(v) => cfg.records = v,
                None => return bad("-records needs a number"),
            },
            "codec" => match val() {
                Some(v) => codec = v,
                None => return bad("-codec needs a value"),
            },
            "schema" => match val().as_deref().and_then(SchemaVersion::parse) {
                Some(v) => version = v,
                None => return bad("-schema must be 4 or 5"),
            },
            "no-k8s" => cfg.k8s = false,
            "distinct-files" => cfg.distinct_files = true,
            "socket" => socket = val(),
            "trace" => trace = val(),
            "no-reconnect" => reconnect = false,
            "rate" => match val().and_then(|v| v.replace('_', "").parse().ok()) {
                Some(v) => rate = v,
                None => return bad("-rate needs a number of records per second"),
            },
            "loop" => match val().and_then(|v| v.parse().ok()).filter(|n| *n > 0) {
                Some(v) => loops = v,
                None => return bad("-loop needs a positive number"),
            },
            "o" | "out" => out = val(),
            "h" | "help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            other => return bad(&format!("unknown flag -{other}")),
        }
    }
    if let Some(path) = socket {
        return play(&path, trace.as_deref(), loops, rate, reconnect, cfg);
    }
    let Some(out) = out else {
        eprintln!("sfgen: missing -o FILE\n{USAGE}");
        return ExitCode::from(2);
    };
    let Some(codec) = avro_codec(&codec) else {
        eprintln!("sfgen: unknown codec `{codec}`\n{USAGE}");
        return ExitCode::from(2);
    };
    cfg.header_version = version.number();
    let schema = match schema(version) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("sfgen: internal schema error: {e}");
            return ExitCode::from(1);
        }
    };
    let file = match std::fs::File::create(&out) {
        Ok(f) => std::io::BufWriter::new(f),
        Err(e) => {
            eprintln!("sfgen: {out}: {e}");
            return ExitCode::from(1);
        }
    };
    let mut w = TraceWriter::new(&schema, version, codec, file);
    let n = cfg.records;
    for r in Generator::new(cfg) {
        if let Err(e) = w.append(&r) {
            eprintln!("sfgen: {out}: {e}");
            return ExitCode::from(1);
        }
    }
    if let Err(e) = w.finish() {
        eprintln!("sfgen: {out}: {e}");
        return ExitCode::from(1);
    }
    eprintln!("sfgen: wrote {n} records to {out}");
    ExitCode::SUCCESS
}

/// `-socket`: streams records to the agent's socket as the collector does.
fn play(
    path: &str,
    trace: Option<&str>,
    loops: u64,
    rate: u64,
    reconnect: bool,
    cfg: GenConfig,
) -> ExitCode {
    use sfprocessor::sim;
    let datums: Result<sim::Datums, String> = match trace {
        Some(t) => {
            // Fail early on a file that cannot be read at all.
            sim::trace_datums(std::path::Path::new(t)).map(|_| {
                let t = t.to_string();
                // The trace `loops` times over (opened one pass at a time), each pass starting
                // with its own header.
                Box::new((0..loops).flat_map(move |_| {
                    match sim::trace_datums(std::path::Path::new(&t)) {
                        Ok(d) => d,
                        Err(e) => Box::new(std::iter::once(Err(e))) as sim::Datums,
                    }
                })) as sim::Datums
            })
        }
        None => sim::generated_datums(cfg),
    };
    let datums = match datums {
        Ok(d) => d,
        Err(e) => {
            eprintln!("sfgen: {e}");
            return ExitCode::from(1);
        }
    };
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let start = std::time::Instant::now();
    match sim::replay(std::path::Path::new(path), datums, rate, reconnect, stop) {
        Ok(r) => {
            let secs = start.elapsed().as_secs_f64();
            eprintln!(
                "sfgen: the agent at {path} accepted {} records and {} headers in {} connection(s), {:.1} s, {:.0} records/s",
                r.records,
                r.headers,
                r.connections,
                secs,
                r.records as f64 / secs.max(1e-9)
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("sfgen: {e}");
            ExitCode::from(1)
        }
    }
}
