//! `sfgen`: writes a deterministic, realistic SysFlow trace.
//!
//! Usage: sfgen [-seed N] [-records N] [-codec deflate|null|snappy|zstd] [-schema 5|4]
//!              [-no-k8s] -o FILE

use std::process::ExitCode;

use sfprocessor::gen::{GenConfig, Generator};
use sfprocessor::sysflow::writer::{avro_codec, schema, SchemaVersion, TraceWriter};

const USAGE: &str = "Usage: sfgen [-seed N] [-records N] [-codec deflate|null|snappy|zstd] [-schema 5|4] [-no-k8s] -o FILE";

fn main() -> ExitCode {
    let mut cfg = GenConfig::default();
    let mut codec = "deflate".to_string();
    let mut version = SchemaVersion::V5;
    let mut out: Option<String> = None;
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
            "o" | "out" => out = val(),
            "h" | "help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            other => return bad(&format!("unknown flag -{other}")),
        }
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
