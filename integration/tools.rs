//! Operator tools: `sfprint` against sysprint 0.6.1 on upstream traces (field by field), its
//! tree view (golden outputs), damaged input, S3 input from a real S3-compatible server
//! (moto), the progress bar under a pseudo-terminal, the systemd notify protocol, and the
//! Debian package.
//!
//! sysprint and moto_server come from PyPI through `.ci/peers` (target/tools); with
//! `CI=true` a missing one fails the test.

mod common;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::peers::{ci, free_tcp_port, server, wait_listening, Peer};
use common::upstream;
use serde_json::Value;

fn sfprint(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sfprint"))
        .args(args)
        .output()
        .expect("run sfprint")
}

fn sysprint(args: &[&str]) -> Option<Output> {
    let p = server("sysprint")?;
    Some(Command::new(p).args(args).output().expect("run sysprint"))
}

fn json_lines(out: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(out)
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn traces() -> Vec<PathBuf> {
    let inv = common::inventory();
    let mut v: Vec<PathBuf> = inv
        .iter()
        .map(|t| upstream().join(&t.path))
        .filter(|p| p.extension().is_some_and(|e| e == "sf"))
        .collect();
    v.sort();
    v.dedup();
    v
}

fn trace(name: &str) -> PathBuf {
    upstream().join("sf-processor/resources/traces").join(name)
}

/// The differences from sysprint that are on purpose (docs/compatibility.md, "sfprint"):
/// command lines are trimmed as upstream's processor does, Kubernetes messages lose their
/// trailing newline and NUL as upstream's processor does.
fn deliberate(key: &str, theirs: &Value, ours: &Value) -> bool {
    match (key, theirs, ours) {
        (
            "proc.args" | "pproc.args" | "proc.exe" | "pproc.exe",
            Value::String(a),
            Value::String(b),
        ) => a.trim() == b,
        ("k8s.msg", Value::String(a), Value::String(b)) => a.trim_end_matches(['\n', '\0']) == b,
        // One `version` in every layout: the export schema (sysprint: its flat layout's "4").
        ("version", Value::String(a), Value::Number(b)) => a == "4" && b.as_u64() == Some(5),
        _ => false,
    }
}

#[test]
fn flatjson_matches_sysprint_field_by_field_on_every_upstream_trace() {
    let mut compared = 0usize;
    let mut deliberate_diffs = BTreeMap::new();
    for t in traces() {
        let ts = t.to_str().unwrap();
        let Some(theirs) = sysprint(&["-o", "flatjson", ts]) else {
            return;
        };
        let ours = sfprint(&["-o", "flatjson", ts]);
        assert!(
            ours.status.success(),
            "{ts}: {}",
            String::from_utf8_lossy(&ours.stderr)
        );
        let (a, b) = (json_lines(&theirs.stdout), json_lines(&ours.stdout));
        assert_eq!(a.len(), b.len(), "{ts}: record count");
        for (i, (x, y)) in a.iter().zip(&b).enumerate() {
            let (x, y) = (x.as_object().unwrap(), y.as_object().unwrap());
            assert_eq!(
                x.keys().collect::<Vec<_>>(),
                y.keys().collect::<Vec<_>>(),
                "{ts} #{i}: keys"
            );
            for (k, v) in x {
                if v != &y[k] {
                    assert!(
                        deliberate(k, v, &y[k]),
                        "{ts} #{i} `{k}`: sysprint {v}, sfprint {}",
                        y[k]
                    );
                    *deliberate_diffs.entry(k.clone()).or_insert(0) += 1;
                }
            }
            compared += 1;
        }
    }
    // 26 traces, 112,000+ records (the inventory's events and flows).
    assert!(compared > 100_000, "only {compared} records compared");
    eprintln!("compared {compared} records; deliberate differences: {deliberate_diffs:?}");
}

/// Filters whose meaning sysprint's sfql and the policy language share (where they differ,
/// docs/compatibility.md says how).
const FILTERS: &[(&str, &str)] = &[
    (
        "mon.1531776742.sf",
        "sf.type = FF and sf.proc.exe = /usr/bin/python2.7",
    ),
    (
        "mon.1531776742.sf",
        "sf.type in (NF, PE) and sf.proc.pid > 18000",
    ),
    ("mon.1531776742.sf", "sf.pproc.name = dash"),
    ("k8s_small.sf", "sf.file.path contains /etc"),
    ("k8s_small.sf", "sf.net.dport = 8080"),
    ("shellshock.sf", "sf.proc.name = bash"),
    ("tcp.sf", "sf.proc.cmdline contains client"),
];

const FIELDS: &str = "ts_uts,type,proc.exe,proc.pid,pproc.pid,opflags,res,file.path,net.dport,flow.rbytes,container.id";

#[test]
fn json_with_fields_and_filters_matches_sysprint() {
    for (t, f) in FILTERS {
        let t = trace(t);
        let ts = t.to_str().unwrap();
        let Some(theirs) = sysprint(&["-o", "json", "-c", FIELDS, "-f", f, ts]) else {
            return;
        };
        let ours = sfprint(&["-o", "json", "-c", FIELDS, "-f", f, ts]);
        assert!(
            ours.status.success(),
            "{}",
            String::from_utf8_lossy(&ours.stderr)
        );
        let (a, b) = (json_lines(&theirs.stdout), json_lines(&ours.stdout));
        assert!(!a.is_empty(), "{ts} `{f}`: sysprint printed nothing");
        assert_eq!(a, b, "{ts} `{f}`");
    }
}

/// A minimal RFC 4180 reader (quoted fields, doubled quotes, CRLF).
fn csv_rows(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let (mut row, mut field) = (Vec::new(), String::new());
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\r') => {}
            (false, '\n') => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => field.push(c),
        }
    }
    rows
}

#[test]
fn csv_with_fields_and_filters_matches_sysprint() {
    let dir = tempfile::tempdir().unwrap();
    for (i, (t, f)) in FILTERS.iter().enumerate() {
        let t = trace(t);
        let ts = t.to_str().unwrap();
        let (pa, pb) = (
            dir.path().join(format!("a{i}.csv")),
            dir.path().join(format!("b{i}.csv")),
        );
        let fields = format!("{FIELDS},proc.tty,proc.args");
        let Some(theirs) = sysprint(&[
            "-o",
            "csv",
            "-w",
            pa.to_str().unwrap(),
            "-c",
            &fields,
            "-f",
            f,
            ts,
        ]) else {
            return;
        };
        assert!(theirs.status.success());
        let ours = sfprint(&[
            "-o",
            "csv",
            "-w",
            pb.to_str().unwrap(),
            "-c",
            &fields,
            "-f",
            f,
            ts,
        ]);
        assert!(
            ours.status.success(),
            "{}",
            String::from_utf8_lossy(&ours.stderr)
        );
        let b_text = std::fs::read_to_string(&pb).unwrap();
        assert!(b_text.contains("\r\n"), "RFC 4180 line ends");
        let (a, b) = (
            csv_rows(&std::fs::read_to_string(&pa).unwrap()),
            csv_rows(&b_text),
        );
        assert!(a.len() > 1, "{ts} `{f}`: sysprint wrote no rows");
        assert_eq!(a, b, "{ts} `{f}`");
    }
}

#[test]
fn json_without_fields_is_the_exporters_layout() {
    let t = trace("tcp.sf");
    let ours = json_lines(&sfprint(&["-o", "json", t.to_str().unwrap()]).stdout);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.json");
    let cfg = common::write_file(dir.path(), "p.json", &common::file_pipeline(&out));
    let run = common::run_quiet(&cfg, &t);
    assert!(run.status.success());
    assert_eq!(ours, common::read_json_lines(&out));
    assert_eq!(ours.len(), 10);
}

#[test]
fn list_names_every_column_and_attribute_with_a_type() {
    let o = sfprint(&["-l"]);
    assert!(o.status.success());
    let text = String::from_utf8(o.stdout).unwrap();
    for k in sfprocessor::print::columns::KEYS {
        assert!(
            text.lines()
                .any(|l| l.split_whitespace().next() == Some(k.name)
                    && l.split_whitespace().nth(1) == Some(k.ty)),
            "{}",
            k.name
        );
    }
    for (name, _) in sfprocessor::policy::attr::ATTRIBUTES {
        assert!(
            text.lines().any(|l| l.starts_with(&format!("{name} "))),
            "{name}"
        );
    }
}

#[test]
fn bad_columns_filters_and_paths_are_named() {
    let t = trace("tcp.sf");
    let ts = t.to_str().unwrap();
    let o = sfprint(&["-c", "proc.exe,no.such", ts]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown column `no.such`"));
    let o = sfprint(&["-f", "sf.proc.exe = (", ts]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("-f"));
    let o = sfprint(&["/no/such/trace.sf"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("/no/such/trace.sf"));
}

#[test]
fn a_damaged_trace_prints_what_it_can_and_names_the_damage() {
    let src = upstream().join("sf-apis/pynb/data/attacks/express/mon.1531776682.sf");
    let mut bytes = std::fs::read(&src).unwrap();
    let whole =
        json_lines(&sfprint(&["-o", "flatjson", "-c", "ts_uts", src.to_str().unwrap()]).stdout)
            .len();
    // Overwrite 4 KiB in the middle of the file (inside a block).
    let mid = bytes.len() / 2;
    for b in &mut bytes[mid..mid + 4096] {
        *b = 0xA5;
    }
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.sf");
    std::fs::write(&bad, &bytes).unwrap();
    let o = sfprint(&["-o", "flatjson", "-c", "ts_uts", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("bad.sf") && err.contains("block"), "{err}");
    let got = json_lines(&o.stdout).len();
    assert!(got > 0 && got < whole, "{got} of {whole}");
    // Blocks after the damage are read again: more than the records before it.
    assert!(got > whole / 2, "{got} of {whole}");
}

fn golden(name: &str, text: &str) {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("integration/golden")
        .join(name);
    if std::env::var_os("SFPRINT_BLESS").is_some() {
        std::fs::write(&p, text).unwrap();
    }
    let want = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    assert_eq!(
        text, want,
        "{name} (SFPRINT_BLESS=1 rewrites it; review the diff)"
    );
}

#[test]
fn tree_views_of_upstream_traces_match_their_golden_outputs() {
    let ri = upstream().join("sf-processor/resources/policies/runtimeintegrity");
    let cases: &[(&str, Vec<String>)] = &[
        ("tree-tcp.txt", vec![trace("tcp.sf").display().to_string()]),
        (
            "tree-shellshock-runtimeintegrity.txt",
            vec![
                "-p".into(),
                ri.display().to_string(),
                trace("shellshock.sf").display().to_string(),
            ],
        ),
        (
            "tree-mon.1531776742-runtimeintegrity.txt",
            vec![
                "-p".into(),
                ri.display().to_string(),
                trace("mon.1531776742.sf").display().to_string(),
            ],
        ),
    ];
    for (name, args) in cases {
        let mut a = vec!["-o", "tree"];
        a.extend(args.iter().map(String::as_str));
        let o = sfprint(&a);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let text = String::from_utf8(o.stdout).unwrap();
        assert!(
            text.lines().all(|l| l.chars().count() <= 80),
            "{name}: a line is wider than 80"
        );
        golden(name, &text);
    }
}

#[test]
fn tree_rules_match_what_the_agent_alerts() {
    // With upstream's quirks, the tree counts the alerts sfprocessor's default gives.
    let ri = upstream().join("sf-processor/resources/policies/runtimeintegrity");
    let t = trace("mon.1531776742.sf");
    let o = sfprint(&[
        "-o",
        "tree",
        "--quirks",
        "upstream",
        "-p",
        ri.to_str().unwrap(),
        t.to_str().unwrap(),
    ]);
    assert!(o.status.success());
    let text = String::from_utf8(o.stdout).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("alerts.json");
    let cfg = format!(
        r#"{{"pipeline":[{{"processor":"sysflowreader","handler":"flattener","in":"sysflow sysflowchan","out":"flat flattenerchan"}},
        {{"processor":"policyengine","in":"flat flattenerchan","out":"evt eventchan","policies":"{}","mode":"alert"}},
        {{"processor":"exporter","in":"evt eventchan","export":"file","format":"json","file.path":"{}"}}]}}"#,
        ri.display(),
        out.display()
    );
    let cfg = common::write_file(dir.path(), "p.json", &cfg);
    assert!(common::run_quiet(&cfg, &t).status.success());
    let matches: usize = common::read_json_lines(&out)
        .iter()
        .map(|r| r["policies"].as_array().map_or(0, |p| p.len()))
        .sum();
    assert!(matches > 0);
    assert!(
        text.lines()
            .next()
            .unwrap()
            .contains(&format!("{matches} rule matches")),
        "{}",
        text.lines().next().unwrap()
    );
}

/// moto's S3 server on a free loopback port, with a bucket holding `files` (uploaded with
/// boto3 from the same virtualenv).
fn s3_server(dir: &Path, bucket: &str, files: &[PathBuf]) -> Option<(Peer, u16)> {
    let moto = server("moto_server")?;
    let port = free_tcp_port();
    let peer = Peer::start(
        &moto,
        &[
            "-H".into(),
            "127.0.0.1".into(),
            "-p".into(),
            port.to_string(),
        ],
        &[port],
        &dir.join("moto.log"),
    );
    assert!(wait_listening(port));
    let python = std::fs::canonicalize(&moto)
        .unwrap()
        .with_file_name("python");
    let mut script = format!(
        "import boto3\ns3 = boto3.client('s3', endpoint_url='http://127.0.0.1:{port}', aws_access_key_id='testkey', aws_secret_access_key='testsecret-9f3a', region_name='us-east-1')\ns3.create_bucket(Bucket='{bucket}')\n"
    );
    for (i, f) in files.iter().enumerate() {
        script.push_str(&format!(
            "s3.upload_file('{}', '{bucket}', 'capture/{i:02}.sf')\n",
            f.display()
        ));
    }
    let o = Command::new(python).arg("-c").arg(script).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    Some((peer, port))
}

#[test]
fn traces_are_read_from_an_s3_bucket_on_a_real_s3_server() {
    let dir = tempfile::tempdir().unwrap();
    let files = vec![trace("tcp.sf"), trace("shellshock.sf"), trace("httpd.sf")];
    let Some((_peer, port)) = s3_server(dir.path(), "traces", &files) else {
        return;
    };
    let port = port.to_string();
    let local: Vec<&str> = files.iter().map(|f| f.to_str().unwrap()).collect();
    let mut want_args = vec!["-o", "flatjson", "-c", "ts_uts,type,proc.exe,res"];
    want_args.extend(&local);
    let want = json_lines(&sfprint(&want_args).stdout);
    assert_eq!(want.len(), 10 + 56 + 5);
    // Keys from the flags.
    let o = sfprint(&[
        "-i",
        "s3",
        "-e",
        "127.0.0.1",
        "-p",
        &port,
        "-a",
        "testkey",
        "-s",
        "testsecret-9f3a",
        "--log",
        "debug",
        "-o",
        "flatjson",
        "-c",
        "ts_uts,type,proc.exe,res",
        "traces",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(json_lines(&o.stdout), want);
    assert!(
        !String::from_utf8_lossy(&o.stderr).contains("testsecret-9f3a"),
        "the secret was logged"
    );
    // Keys from the environment; a missing bucket is named and the exit code says so.
    let o = Command::new(env!("CARGO_BIN_EXE_sfprint"))
        .args([
            "-i",
            "s3",
            "-e",
            "127.0.0.1",
            "--s3port",
            &port,
            "-o",
            "flatjson",
            "-c",
            "ts_uts",
            "traces",
            "nosuchbucket",
        ])
        .env("AWS_ACCESS_KEY_ID", "testkey")
        .env("AWS_SECRET_ACCESS_KEY", "testsecret-9f3a")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(json_lines(&o.stdout).len(), want.len());
    assert!(String::from_utf8_lossy(&o.stderr).contains("s3://nosuchbucket"));
}

/// Runs `program args` with stderr on a pseudo-terminal and stdout on a pipe; returns what
/// each received.
fn under_pty(program: &str, args: &[&str]) -> (Vec<u8>, Vec<u8>, i32) {
    use std::os::fd::{FromRawFd, OwnedFd};
    let (mut master, mut slave) = (0, 0);
    // SAFETY: openpty writes two descriptors; the name, termios and winsize are optional.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0, "openpty");
    // SAFETY: both descriptors were just opened and are owned here.
    let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(slave))
        .spawn()
        .unwrap();
    let mut term = std::fs::File::from(master);
    let reader = std::thread::spawn(move || {
        let mut all = Vec::new();
        let mut buf = [0u8; 4096];
        // EIO once the child (the last holder of the slave) has exited.
        while let Ok(n) = term.read(&mut buf) {
            if n == 0 {
                break;
            }
            all.extend_from_slice(&buf[..n]);
        }
        all
    });
    let mut out = Vec::new();
    child.stdout.take().unwrap().read_to_end(&mut out).unwrap();
    let status = child.wait().unwrap();
    (reader.join().unwrap(), out, status.code().unwrap_or(-1))
}

/// A directory of copies of an upstream trace, big enough for the bar to be drawn.
fn big_input(dir: &Path) -> PathBuf {
    let d = dir.join("in");
    std::fs::create_dir(&d).unwrap();
    for i in 0..8 {
        std::fs::copy(trace("mon.1531776742.sf"), d.join(format!("mon.{i}.sf"))).unwrap();
    }
    d
}

#[test]
fn a_progress_bar_is_drawn_on_a_terminal_only() {
    let dir = tempfile::tempdir().unwrap();
    let input = big_input(dir.path());
    let inp = input.to_str().unwrap();
    let sfp = env!("CARGO_BIN_EXE_sfprint");
    let (term, out, code) = under_pty(sfp, &["-o", "json", "-c", "ts_uts", inp]);
    assert_eq!(code, 0);
    let term = String::from_utf8_lossy(&term);
    assert!(
        term.contains("rec/s") && term.contains("alerts") && term.contains("MiB"),
        "{term}"
    );
    assert!(!out.contains(&0x1b), "escape codes on stdout");
    assert_eq!(json_lines(&out).len(), 8 * 20025);
    // Quiet: no bar. Not a terminal: no bar.
    let (term, _, _) = under_pty(sfp, &["--log", "quiet", "-o", "json", "-c", "ts_uts", inp]);
    assert!(!String::from_utf8_lossy(&term).contains("rec/s"));
    let o = sfprint(&["-o", "json", "-c", "ts_uts", inp]);
    assert!(!String::from_utf8_lossy(&o.stderr).contains("rec/s"));

    // The agent on files: the bar on stderr, the records on stdout.
    let cfg = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/pipeline.example.json");
    let sfproc = env!("CARGO_BIN_EXE_sfprocessor");
    let (term, out, code) = under_pty(
        sfproc,
        &["-config", cfg.to_str().unwrap(), "-log", "error", inp],
    );
    assert_eq!(code, 0, "{}", String::from_utf8_lossy(&term));
    assert!(String::from_utf8_lossy(&term).contains("rec/s"));
    assert!(!out.contains(&0x1b));
    assert_eq!(json_lines(&out).len(), 8 * 20025);
    let (term, _, _) = under_pty(
        sfproc,
        &["-config", cfg.to_str().unwrap(), "-log", "quiet", inp],
    );
    assert!(!String::from_utf8_lossy(&term).contains("rec/s"));
}

#[test]
fn under_systemd_the_agent_notifies_ready_pings_the_watchdog_and_says_stopping() {
    use std::os::unix::net::UnixDatagram;
    let dir = tempfile::tempdir().unwrap();
    let notify = dir.path().join("notify.sock");
    let rx = UnixDatagram::bind(&notify).unwrap();
    rx.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let sock = dir.path().join("agent.sock");
    let cfg = common::write_file(
        dir.path(),
        "p.json",
        &common::exporter_pipeline(r#""export": "null""#),
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_sfprocessor"))
        .args([
            "-config",
            cfg.to_str().unwrap(),
            "-driver",
            "socket",
            "-log",
            "error",
            sock.to_str().unwrap(),
        ])
        .env("NOTIFY_SOCKET", &notify)
        .env("WATCHDOG_USEC", "100000")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut got = Vec::new();
    let started = Instant::now();
    let mut buf = [0u8; 512];
    while started.elapsed() < Duration::from_secs(20) {
        let n = rx.recv(&mut buf).expect("a notification within 20 s");
        got.push(String::from_utf8_lossy(&buf[..n]).to_string());
        if got.iter().any(|m| m.starts_with("READY=1"))
            && got.iter().filter(|m| *m == "WATCHDOG=1").count() >= 3
        {
            break;
        }
    }
    assert!(got.iter().any(|m| m.starts_with("READY=1")), "{got:?}");
    assert!(
        got.iter().filter(|m| *m == "WATCHDOG=1").count() >= 3,
        "{got:?}"
    );
    // SIGTERM: the pipeline drains and says so.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let mut stopping = false;
    while let Ok(n) = rx.recv(&mut buf) {
        if buf[..n].starts_with(b"STOPPING=1") {
            stopping = true;
            break;
        }
    }
    assert!(child.wait().unwrap().success());
    assert!(stopping, "no STOPPING=1");
}

fn tool(name: &str) -> bool {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {name}"))
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found || !ci(),
        "CI=true: {name} is missing (.ci/run installs it)"
    );
    if !found {
        eprintln!("skipped: {name} is missing");
    }
    found
}

#[test]
fn the_debian_package_holds_both_tools_the_unit_and_the_config_as_conffiles() {
    if !tool("dpkg-deb") || !tool("systemd-analyze") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_sfprocessor"))
        .parent()
        .unwrap();
    assert!(bin_dir.join("sfprint").is_file());
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let o = Command::new(root.join("packaging/deb/build.sh"))
        .env("BIN_DIR", bin_dir)
        .env("OUT_DIR", dir.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let deb = PathBuf::from(String::from_utf8(o.stdout).unwrap().trim());
    let list = Command::new("dpkg-deb")
        .arg("-c")
        .arg(&deb)
        .output()
        .unwrap();
    let list = String::from_utf8(list.stdout).unwrap();
    for p in [
        "./usr/bin/sfprocessor",
        "./usr/bin/sfprint",
        "./lib/systemd/system/sfprocessor.service",
        "./etc/sfprocessor/pipeline.json",
        "./etc/logrotate.d/sfprocessor",
        "./usr/share/doc/sfprocessor/migrating.md",
    ] {
        assert!(list.lines().any(|l| l.ends_with(p)), "{p} missing:\n{list}");
    }
    let info = Command::new("dpkg-deb")
        .args(["-f"])
        .arg(&deb)
        .args(["Package", "Version"])
        .output()
        .unwrap();
    let info = String::from_utf8(info.stdout).unwrap();
    assert!(
        info.contains("Package: sfprocessor") && info.contains(env!("CARGO_PKG_VERSION")),
        "{info}"
    );
    let x = dir.path().join("x");
    let ctl = dir.path().join("ctl");
    assert!(Command::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(&x)
        .status()
        .unwrap()
        .success());
    assert!(Command::new("dpkg-deb")
        .arg("-e")
        .arg(&deb)
        .arg(&ctl)
        .status()
        .unwrap()
        .success());
    let conffiles = std::fs::read_to_string(ctl.join("conffiles")).unwrap();
    assert!(
        conffiles
            .lines()
            .any(|l| l == "/etc/sfprocessor/pipeline.json"),
        "{conffiles}"
    );
    // The packaged binaries run.
    let v = Command::new(x.join("usr/bin/sfprocessor"))
        .arg("-version")
        .output()
        .unwrap();
    assert!(v.status.success() && String::from_utf8_lossy(&v.stdout).starts_with("Version: "));
    let v = Command::new(x.join("usr/bin/sfprint"))
        .arg("-v")
        .output()
        .unwrap();
    assert!(v.status.success() && String::from_utf8_lossy(&v.stdout).starts_with("sfprint "));
    // The package creates its user and the log directory it owns; the log is rotated
    // (logrotate, SIGHUP to the agent).
    let postinst = std::fs::read_to_string(ctl.join("postinst")).unwrap();
    assert!(
        postinst.contains("adduser --system --group") && postinst.contains("sysflow"),
        "{postinst}"
    );
    assert!(postinst.contains("install -d -o sysflow -g sysflow -m 0750 /var/log/sysflow"));
    let rotate = std::fs::read_to_string(x.join("etc/logrotate.d/sfprocessor")).unwrap();
    assert!(
        rotate.contains("/var/log/sysflow/*.json") && rotate.contains("kill -s HUP sfprocessor"),
        "{rotate}"
    );
    assert!(conffiles
        .lines()
        .any(|l| l == "/etc/logrotate.d/sfprocessor"));
    // The packaged configuration is valid.
    let cfg = std::fs::read_to_string(x.join("etc/sfprocessor/pipeline.json")).unwrap();
    let logs = dir.path().join("log");
    std::fs::create_dir(&logs).unwrap();
    let cfg = cfg.replace("/var/log/sysflow", &logs.display().to_string());
    let cfg = common::write_file(dir.path(), "pipeline.json", &cfg);
    let t = Command::new(x.join("usr/bin/sfprocessor"))
        .args(["-config", cfg.to_str().unwrap(), "-test"])
        .output()
        .unwrap();
    assert!(t.status.success(), "{}", String::from_utf8_lossy(&t.stderr));
    // The unit verifies cleanly (pointed at the extracted binary, which must exist).
    let unit = std::fs::read_to_string(x.join("lib/systemd/system/sfprocessor.service")).unwrap();
    for key in [
        "Type=notify",
        "WatchdogSec=",
        "Restart=on-failure",
        "ProtectSystem=strict",
        "NoNewPrivileges=true",
        "RuntimeDirectory=sysflow",
        "User=sysflow",
        "LimitNOFILE=",
    ] {
        assert!(unit.contains(key), "{key}");
    }
    let udir = dir.path().join("units");
    std::fs::create_dir(&udir).unwrap();
    let upath = udir.join("sfprocessor.service");
    std::fs::write(
        &upath,
        unit.replace(
            "/usr/bin/sfprocessor",
            &x.join("usr/bin/sfprocessor").display().to_string(),
        ),
    )
    .unwrap();
    let v = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&upath)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&v.stderr);
    assert!(
        v.status.success() && err.trim().is_empty(),
        "systemd-analyze verify: {err}"
    );
}

/// The shipped unit's exposure as `systemd-analyze security --offline=true` rates it.
fn unit_exposure(unit: &Path) -> f64 {
    let o = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(unit)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
    text.lines()
        .find_map(|l| l.split("Overall exposure level for").nth(1))
        .and_then(|r| r.split(':').nth(1))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no exposure level in: {text}"))
}

#[test]
fn the_shipped_unit_runs_with_the_least_it_needs() {
    if !tool("systemd-analyze") {
        return;
    }
    let unit = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/systemd/sfprocessor.service");
    let level = unit_exposure(&unit);
    assert!(
        level <= 3.0,
        "exposure {level} (target: 3.0 or less, \"OK\")"
    );
}

#[test]
fn sfprint_first_hour_details() {
    let t = trace("mon.1531776742.sf");
    let ts = t.to_str().unwrap();
    // A filter naming an attribute that does not exist is an error, as an unknown -c column.
    let o = sfprint(&["-f", "sf.proc.nmae = bash", ts]);
    assert_eq!(o.status.code(), Some(2), "not zero matches");
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("-f:1:1: unknown attribute `sf.proc.nmae`"),
        "{e}"
    );
    // A syntax error names the column in the filter as given.
    let o = sfprint(&["-f", "sf.proc.name = bash and (", ts]);
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("-f:1:26: syntax error"), "{e}");
    let o = sfprint(&["-f", "sf.proc.name = \"x\\\"y\" and (", ts]);
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("-f:1:"), "{e}");
    // A missing path: said once, no table header, exit 1.
    let o = sfprint(&["/no/such/trace.sf"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(o.stdout.is_empty(), "no header for nothing");
    let e = String::from_utf8_lossy(&o.stderr);
    assert_eq!(e.matches("/no/such/trace.sf").count(), 1, "{e}");
    // The table shows the start time as CSV does (ISO), not raw nanoseconds.
    let table = String::from_utf8_lossy(&sfprint(&["-o", "str", ts]).stdout).into_owned();
    let csv = String::from_utf8_lossy(&sfprint(&["-o", "csv", "-c", "ts", ts]).stdout).into_owned();
    let first_ts = csv.lines().nth(1).unwrap().trim().to_string();
    assert!(first_ts.contains('T'), "{first_ts}");
    assert!(table.lines().nth(2).unwrap().contains(&first_ts), "{table}");
    // One `version` in every layout.
    let v = |fmt: &str| -> String {
        let o = sfprint(&["-o", fmt, "-c", "version", ts]);
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        out.lines()
            .nth(if fmt == "csv" { 1 } else { 0 })
            .unwrap()
            .to_string()
    };
    assert_eq!(v("flatjson"), r#"{"version":5}"#);
    assert_eq!(v("csv"), "5");
    let exporter = json_lines(&sfprint(&["-o", "json", ts]).stdout);
    assert_eq!(exporter[0]["version"], 5);
}
