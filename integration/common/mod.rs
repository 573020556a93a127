//! Helpers shared by the integration tests: where `../shared/upstream` is and what the trace
//! inventory says.
#![allow(dead_code)]

pub mod agent;
pub mod kafka;
pub mod peers;
pub mod proxy;
pub mod rsyslog;

use std::collections::BTreeMap;
use std::path::PathBuf;

use sfprocessor::sysflow::Kind;

/// `../shared/upstream`, relative to the project root.
pub fn upstream() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/upstream")
}

pub struct InventoryTrace {
    pub path: String,
    pub writer_schema_variant: String,
    pub blocks: u64,
    pub records: u64,
    pub counts: BTreeMap<String, u64>,
}

pub fn inventory() -> Vec<InventoryTrace> {
    let p = upstream().join("derived/trace-inventory.json");
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let v: serde_json::Value = serde_json::from_str(&text).expect("inventory is JSON");
    v.as_array()
        .expect("inventory is a list")
        .iter()
        .map(|t| InventoryTrace {
            path: t["path"].as_str().expect("path").to_string(),
            writer_schema_variant: t["writer_schema_variant"]
                .as_str()
                .unwrap_or("")
                .to_string(),
            blocks: t["blocks"].as_u64().expect("blocks"),
            records: t["records"].as_u64().expect("records"),
            counts: t["counts"]
                .as_object()
                .expect("counts")
                .iter()
                .map(|(k, n)| (k.clone(), n.as_u64().expect("count")))
                .collect(),
        })
        .collect()
}

/// The kind a record counted under writer name `name` decodes to. Legacy pre-v1 files call the
/// process event `ProcessFlow` (see docs/compatibility.md); everything else maps by name.
pub fn kind_for_inventory_name(name: &str, variant: &str) -> Kind {
    let short = name.rsplit('.').next().unwrap_or(name);
    match sfprocessor::sysflow::plan::kind_by_record_name(short) {
        Some(Kind::ProcessFlow) if variant.starts_with("legacy") => Kind::ProcessEvent,
        Some(k) => k,
        None => panic!("unknown record name {short}"),
    }
}

use sfprocessor::gen::{GenConfig, Generator};
use sfprocessor::sysflow::writer::{avro_codec, schema, SchemaVersion, TraceWriter};

/// Writes a generated trace and returns the records written.
pub fn write_trace(
    path: &std::path::Path,
    seed: u64,
    records: u64,
    codec: &str,
    version: SchemaVersion,
) -> Vec<sfprocessor::sysflow::SysFlow> {
    let schema = schema(version).expect("schema");
    let recs: Vec<_> = Generator::new(GenConfig {
        seed,
        records,
        header_version: version.number(),
        ..Default::default()
    })
    .collect();
    let f = std::fs::File::create(path).expect("create trace");
    let mut w = TraceWriter::new(&schema, version, avro_codec(codec).expect("codec"), f);
    for r in &recs {
        w.append(r).expect("append");
    }
    w.finish().expect("finish");
    recs
}

/// A pipeline config: pass-through policy engine, JSON to the exporter whose keys are
/// `exporter` (JSON members, e.g. `"export":"null"`).
pub fn exporter_pipeline(exporter: &str) -> String {
    format!(
        r#"{{"pipeline":[
 {{"processor":"sysflowreader","handler":"flattener","in":"sysflow sysflowchan","out":"flat flattenerchan"}},
 {{"processor":"policyengine","in":"flat flattenerchan","out":"evt eventchan","mode":"enrich"}},
 {{"processor":"exporter","in":"evt eventchan","format":"json",{exporter}}}]}}"#
    )
}

/// A pipeline config writing JSON to `out` through a pass-through policy engine.
pub fn file_pipeline(out: &std::path::Path) -> String {
    exporter_pipeline(&format!(
        r#""export":"file","file.path":"{}""#,
        out.display()
    ))
}

/// Reads an exported file: every line must be a JSON object.
pub fn read_json_lines(path: &std::path::Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str(l).unwrap_or_else(|e| {
                panic!(
                    "{}: line {}: invalid JSON ({e}): {l}",
                    path.display(),
                    i + 1
                )
            })
        })
        .collect()
}

/// The `sfprocessor` binary under test: this build's, or `SF_TEST_SFPROCESSOR` (to show that
/// a test fails on an older build).
pub fn sfprocessor_bin() -> PathBuf {
    std::env::var_os("SF_TEST_SFPROCESSOR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_sfprocessor")))
}

/// Runs the `sfprocessor` binary.
pub fn sfprocessor(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut c = std::process::Command::new(sfprocessor_bin());
    c.args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run sfprocessor")
}

/// Writes `text` to `dir/name` and returns the path.
pub fn write_file(dir: &std::path::Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write test file");
    p
}

/// What the file exporter writes for `trace` (pass-through policy engine, JSON): the reference
/// for what a network peer must receive.
pub fn expected_lines(dir: &std::path::Path, trace: &std::path::Path) -> Vec<String> {
    let out = dir.join("expected.json");
    let _ = std::fs::remove_file(&out);
    let cfg = write_file(dir, "file.json", &file_pipeline(&out));
    let o = sfprocessor(
        &["-config", cfg.to_str().unwrap(), trace.to_str().unwrap()],
        &[],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::read_to_string(&out)
        .expect("expected output")
        .lines()
        .map(str::to_string)
        .collect()
}

/// Runs `sfprocessor -config cfg -log warn trace`.
pub fn run_quiet(cfg: &std::path::Path, trace: &std::path::Path) -> std::process::Output {
    sfprocessor(
        &[
            "-config",
            cfg.to_str().unwrap(),
            "-log",
            "warn",
            trace.to_str().unwrap(),
        ],
        &[],
    )
}

/// How many times each line occurs.
pub fn counts<'a>(
    lines: impl IntoIterator<Item = &'a str>,
) -> std::collections::HashMap<&'a str, usize> {
    let mut m = std::collections::HashMap::new();
    for l in lines {
        *m.entry(l).or_default() += 1;
    }
    m
}

/// A self-signed certificate for 127.0.0.1 (and localhost) made with openssl, valid two days:
/// `(key, certificate)`, PEM files `key.pem` and `cert.pem` in `dir` (the key is PKCS#8).
pub fn self_signed(dir: &std::path::Path) -> (PathBuf, PathBuf) {
    let key = dir.join("key.pem");
    let cert = dir.join("cert.pem");
    let st = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args(["-subj", "/CN=127.0.0.1"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl (.ci/run installs it)");
    assert!(st.success(), "openssl could not make a certificate");
    (key, cert)
}
