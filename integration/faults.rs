//! Faults found by probing the agent (issue 13): a shutdown that must end whatever the target
//! does, sizes in the input that must not be trusted, a torn output line, configuration values
//! that must be range-checked, and directory entries that must not be skipped silently.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{file_pipeline, read_json_lines, sfprocessor, write_file, write_trace};
use sfprocessor::sysflow::ocf::{Frame, OcfReader};
use sfprocessor::sysflow::writer::SchemaVersion;

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A syslog TCP exporter pipeline with a short drain.
fn syslog_pipeline(dir: &Path, port: u16, drain: &str) -> PathBuf {
    write_file(
        dir,
        "syslog.json",
        &common::exporter_pipeline(&format!(
            r#""export":"syslog","syslog.proto":"tcp","syslog.host":"127.0.0.1","syslog.port":"{port}","retry.backoff":"50ms","retry.backoff.max":"500ms","retry.drain_timeout":"{drain}""#
        )),
    )
}

fn spawn(cfg: &Path, trace: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_sfprocessor"))
        .args([
            "-config",
            cfg.to_str().unwrap(),
            "-log",
            "info",
            trace.to_str().unwrap(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sfprocessor")
}

/// Waits for `child` up to `limit`; a child still running then is killed and the test fails
/// (the hang this file is about).
fn wait_bounded(mut child: Child, limit: Duration, what: &str) -> (Output, Duration) {
    let start = Instant::now();
    loop {
        match child.try_wait().expect("wait") {
            Some(_) => {
                let o = child.wait_with_output().expect("output");
                return (o, start.elapsed());
            }
            None if start.elapsed() > limit => {
                let _ = child.kill();
                let o = child.wait_with_output().expect("output");
                panic!(
                    "{what}: still running {limit:?} after the stop; killed. stderr:\n{}",
                    stderr(&o)
                );
            }
            None => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

fn sigterm(child: &Child) {
    let st = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(st.success());
}

/// The exporter's summary line: received and sent, and what the closing summary says was not
/// delivered.
fn exporter_counts(err: &str) -> (u64, u64, u64) {
    let field = |line: &str, name: &str| -> u64 {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{name}=")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name}= in `{line}`"))
    };
    let line = err
        .lines()
        .find(|l| l.contains("node summary") && l.contains("node=exporter"))
        .unwrap_or_else(|| panic!("no exporter summary in:\n{err}"));
    let undelivered = err
        .lines()
        .find_map(|l| {
            let rest = l.trim().strip_prefix("- exporter[2]: ")?;
            rest.split_whitespace().next()?.parse().ok()
        })
        .unwrap_or(0);
    (field(line, "received"), field(line, "sent"), undelivered)
}

/// A port with nothing listening on it.
fn closed_port() -> u16 {
    common::peers::free_tcp_port()
}

#[test]
fn sigterm_ends_the_run_within_the_drain_timeout_when_the_target_is_down() {
    let dir = tempfile::tempdir().unwrap();
    // Far more than the delivery queue and the pipeline's windows hold.
    let trace = dir.path().join("t.sf");
    write_trace(&trace, 21, 60_000, "deflate", SchemaVersion::V5);
    let cfg = syslog_pipeline(dir.path(), closed_port(), "3s");
    let child = spawn(&cfg, &trace);
    // Let it fill the pipeline and start retrying.
    std::thread::sleep(Duration::from_secs(2));
    sigterm(&child);
    // Drain 3 s + the syslog transport's backoff slice: well under 30 s when bounded.
    let (o, took) = wait_bounded(child, Duration::from_secs(40), "target down");
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("signal received"), "{err}");
    assert!(err.contains("records not delivered"), "{err}");
    let (received, sent, undelivered) = exporter_counts(&err);
    assert_eq!(sent, 0, "{err}");
    assert!(received > 0, "{err}");
    assert_eq!(
        undelivered, received,
        "every record it got is counted: {err}"
    );
    eprintln!("stopped {took:?} after SIGTERM");
}

#[test]
fn sigterm_ends_the_run_within_the_drain_timeout_when_the_target_never_reads() {
    let dir = tempfile::tempdir().unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // Accepts every connection and never reads from it.
    let held = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let h = held.clone();
    std::thread::spawn(move || {
        for s in listener.incoming().flatten() {
            h.lock().unwrap().push(s);
        }
    });
    let trace = dir.path().join("t.sf");
    write_trace(&trace, 22, 120_000, "deflate", SchemaVersion::V5);
    let cfg = syslog_pipeline(dir.path(), port, "3s");
    let child = spawn(&cfg, &trace);
    // Until the listener has a connection and the kernel buffers are full.
    let start = Instant::now();
    while held.lock().unwrap().is_empty() && start.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        !held.lock().unwrap().is_empty(),
        "the exporter never connected"
    );
    std::thread::sleep(Duration::from_secs(3));
    sigterm(&child);
    let (o, took) = wait_bounded(child, Duration::from_secs(40), "target never reads");
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    // The blocked write itself gave up at the drain deadline: the run did not need the
    // watchdog that abandons a pipeline still blocked 5 s after it.
    assert!(!err.contains("abandoned"), "{err}");
    let (received, sent, undelivered) = exporter_counts(&err);
    assert!(undelivered > 0, "{err}");
    assert!(
        sent + undelivered <= received,
        "sent {sent} + undelivered {undelivered} > received {received}: {err}"
    );
    eprintln!(
        "stopped {took:?} after SIGTERM; {sent} written to the kernel, {undelivered} not delivered"
    );
}

#[test]
fn the_end_of_input_with_the_target_down_ends_within_the_drain_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("t.sf");
    // Small enough to fit in the pipeline: the driver reaches the end of the input.
    write_trace(&trace, 23, 300, "deflate", SchemaVersion::V5);
    let cfg = syslog_pipeline(dir.path(), closed_port(), "2s");
    let child = spawn(&cfg, &trace);
    let (o, _) = wait_bounded(child, Duration::from_secs(40), "end of input, target down");
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    let (received, sent, undelivered) = exporter_counts(&err);
    assert_eq!((sent, undelivered), (0, received), "{err}");
}

// ---- sizes read from the input -------------------------------------------------------------

/// The raw pieces of a trace: header bytes (through the sync marker), the sync marker, and
/// each block's framed bytes (count, size, data, sync).
struct Pieces {
    header: Vec<u8>,
    sync: [u8; 16],
    blocks: Vec<Vec<u8>>,
    events_per_block: Vec<u64>,
}

fn zigzag(v: i64, out: &mut Vec<u8>) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

fn pieces(path: &Path) -> Pieces {
    let bytes = std::fs::read(path).unwrap();
    let mut r = OcfReader::open(&bytes[..]).unwrap();
    let plan = sfprocessor::sysflow::DatumPlan::compile(r.schema_json()).unwrap();
    let codec = r.codec();
    let mut blocks = Vec::new();
    let mut events_per_block = Vec::new();
    let mut scratch = Vec::new();
    let mut first = None;
    loop {
        match r.next_frame() {
            Frame::Block(b) => {
                first.get_or_insert(b.offset as usize);
                let o = sfprocessor::sysflow::trace::decode_block(&plan, codec, &b, &mut scratch);
                events_per_block.push(
                    o.records
                        .iter()
                        .filter(|r| r.kind().is_event_or_flow())
                        .count() as u64,
                );
                let mut framed = Vec::new();
                zigzag(b.count as i64, &mut framed);
                zigzag(b.data.len() as i64, &mut framed);
                framed.extend_from_slice(&b.data);
                blocks.push(framed);
            }
            Frame::Damaged { reason, .. } => panic!("fixture damaged: {reason}"),
            Frame::End => break,
        }
    }
    let start = first.expect("a block");
    let mut sync = [0u8; 16];
    sync.copy_from_slice(&bytes[start - 16..start]);
    for b in &mut blocks {
        b.extend_from_slice(&sync);
    }
    Pieces {
        header: bytes[..start].to_vec(),
        sync,
        blocks,
        events_per_block,
    }
}

/// A raw DEFLATE stream of `n` zero bytes.
fn deflate_zeros(n: usize) -> Vec<u8> {
    let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
    let chunk = vec![0u8; 1 << 20];
    let mut left = n;
    while left > 0 {
        let k = left.min(chunk.len());
        e.write_all(&chunk[..k]).unwrap();
        left -= k;
    }
    e.finish().unwrap()
}

/// Runs sfprocessor under an address-space limit (`RLIMIT_AS`), as a small container would.
fn run_limited(args: &[&str], limit_bytes: u64) -> Output {
    use std::os::unix::process::CommandExt;
    let mut c = Command::new(env!("CARGO_BIN_EXE_sfprocessor"));
    c.args(args);
    // SAFETY: setrlimit is async-signal-safe and only touches the child's own limits.
    unsafe {
        c.pre_exec(move || {
            let lim = libc::rlimit {
                rlim_cur: limit_bytes as libc::rlim_t,
                rlim_max: limit_bytes as libc::rlim_t,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    c.output().expect("run sfprocessor")
}

/// Good block, hostile block, good block: the hostile one is reported and skipped, the good
/// ones are delivered, all under a 1 GiB address-space limit.
fn hostile_block_is_skipped(hostile: impl FnOnce(&[u8; 16]) -> Vec<u8>, expect: &str) {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.sf");
    write_trace(&good, 24, 3_000, "deflate", SchemaVersion::V5);
    let p = pieces(&good);
    assert!(p.blocks.len() >= 3, "fixture needs 3 blocks");
    let mut bytes = p.header.clone();
    bytes.extend_from_slice(&p.blocks[0]);
    bytes.extend_from_slice(&hostile(&p.sync));
    for b in &p.blocks[1..] {
        bytes.extend_from_slice(b);
    }
    let trace = dir.path().join("hostile.sf");
    std::fs::write(&trace, &bytes).unwrap();
    let out = dir.path().join("out.json");
    let cfg = write_file(dir.path(), "p.json", &file_pipeline(&out));
    let o = run_limited(
        &[
            "-config",
            cfg.to_str().unwrap(),
            "-log",
            "warn",
            trace.to_str().unwrap(),
        ],
        1 << 30,
    );
    let err = stderr(&o);
    assert_eq!(
        o.status.code(),
        Some(1),
        "damage is reported, no abort: {err}"
    );
    assert!(err.contains("block 1"), "the hostile block is named: {err}");
    assert!(err.contains(expect), "{err}");
    let want: u64 = p.events_per_block.iter().sum();
    assert_eq!(
        read_json_lines(&out).len() as u64,
        want,
        "every good block is delivered: {err}"
    );
}

#[test]
fn a_block_declaring_64_mi_records_is_skipped_without_allocating_for_them() {
    hostile_block_is_skipped(
        |sync| {
            let mut b = Vec::new();
            zigzag(64 << 20, &mut b);
            let data = deflate_zeros(1000);
            zigzag(data.len() as i64, &mut b);
            b.extend_from_slice(&data);
            b.extend_from_slice(sync);
            b
        },
        "67108864 records",
    );
}

#[test]
fn a_deflate_bomb_is_skipped_at_the_inflated_size_limit() {
    hostile_block_is_skipped(
        |sync| {
            // 1 GiB of zeros in about 1 MB: inflated, it would decode as empty headers.
            let data = deflate_zeros(1 << 30);
            assert!(data.len() < 2 << 20);
            let mut b = Vec::new();
            zigzag(1000, &mut b);
            zigzag(data.len() as i64, &mut b);
            b.extend_from_slice(&data);
            b.extend_from_slice(sync);
            b
        },
        "block.maxsize",
    );
}

#[test]
fn a_block_larger_than_the_file_allocates_only_what_the_file_holds() {
    // A header that declares a block of 8 MiB in a file of a few KiB: reported as truncated,
    // and reading resumes at the sync marker after it.
    hostile_block_is_skipped(
        |sync| {
            let mut b = Vec::new();
            zigzag(10, &mut b);
            zigzag(8 << 20, &mut b);
            b.extend_from_slice(&[7u8; 100]);
            b.extend_from_slice(sync);
            b
        },
        "truncated",
    );
}

// ---- torn output ---------------------------------------------------------------------------

#[test]
fn the_file_exporter_never_appends_onto_a_torn_last_line() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("t.sf");
    let recs = write_trace(&trace, 25, 500, "deflate", SchemaVersion::V5);
    let events = recs.iter().filter(|r| r.kind().is_event_or_flow()).count();
    let out = dir.path().join("out.json");
    // What a SIGKILL mid-write leaves: a whole record, then half of one.
    let torn = r#"{"version":5,"endts":0,"opflags":["EXE"#;
    std::fs::write(&out, format!("{{\"a\":1}}\n{torn}")).unwrap();
    let cfg = write_file(dir.path(), "p.json", &file_pipeline(&out));
    let o = sfprocessor(
        &[
            "-config",
            cfg.to_str().unwrap(),
            "-log",
            "warn",
            trace.to_str().unwrap(),
        ],
        &[],
    );
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("partial line"), "{err}");
    assert!(
        err.contains("offset=8"),
        "the torn line's byte offset: {err}"
    );
    let text = std::fs::read_to_string(&out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], r#"{"a":1}"#);
    assert_eq!(lines[1], torn, "the torn tail is kept on a line of its own");
    // Every other line is a whole record: exactly the run's events.
    let parsed: Vec<serde_json::Value> = lines[2..]
        .iter()
        .map(|l| serde_json::from_str(l).expect("whole record"))
        .collect();
    assert_eq!(parsed.len(), events);
    assert!(serde_json::from_str::<serde_json::Value>(lines[1]).is_err());
}

// ---- configuration -------------------------------------------------------------------------

/// `-test` on a pipeline whose exporter has `exporter` settings (JSON members).
fn check_exporter(dir: &Path, name: &str, exporter: &str) -> (i32, String) {
    let cfg = write_file(dir, name, &common::exporter_pipeline(exporter));
    let o = sfprocessor(&["-test", "-config", cfg.to_str().unwrap()], &[]);
    (o.status.code().unwrap_or(-1), stderr(&o))
}

#[test]
fn every_delivery_value_is_range_checked_when_the_configuration_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o.json");
    let file = format!(r#""export":"file","file.path":"{}""#, out.display());
    let cases: &[(&str, &str, &str)] = &[
        (
            r#""queue":"18446744073709551615""#,
            "queue",
            "from 1 to 256",
        ),
        (r#""queue":"0""#, "queue", "from 1 to 256"),
        (
            r#""buffer":"18446744073709551615""#,
            "buffer",
            "from 0 to 1000000",
        ),
        (
            r#""buffer.bytes":"8GiB""#,
            "buffer.bytes",
            "from 64KiB to 256MiB",
        ),
        (
            r#""retry.backoff":"3000years""#,
            "retry.backoff",
            "from 0s to 10m",
        ),
        (
            r#""retry.backoff":"10s","retry.backoff.max":"1s""#,
            "retry.backoff.max",
            "below retry.backoff",
        ),
        (
            r#""retry.drain_timeout":"-1s""#,
            "retry.drain_timeout",
            "from 0s to 1h",
        ),
        (r#""when_full":"maybe""#, "when_full", "expected block"),
    ];
    for (i, (kv, key, range)) in cases.iter().enumerate() {
        let (code, err) =
            check_exporter(dir.path(), &format!("c{i}.json"), &format!("{file},{kv}"));
        assert_eq!(code, 2, "{kv}: {err}");
        assert!(
            err.contains(&format!("c{i}.json: pipeline[2] (exporter): key `{key}`")),
            "{kv}: {err}"
        );
        assert!(err.contains(range), "{kv}: {err}");
    }
    // Values in range still load.
    let (code, err) = check_exporter(
        dir.path(),
        "ok.json",
        &format!(
            r#"{file},"queue":"256","buffer":"1000000","buffer.bytes":"1MiB","retry.backoff":"0s","retry.backoff.max":"1h""#
        ),
    );
    assert_eq!(code, 0, "{err}");
}

#[test]
fn null_values_duplicate_keys_and_bad_paths_are_configuration_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (code, err) = check_exporter(dir.path(), "null.json", r#""export":null"#);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("key `export`: null is not a value"), "{err}");

    let (code, err) = check_exporter(
        dir.path(),
        "dup.json",
        r#""export":"null","buffer":"10","buffer":"100000""#,
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("duplicate key `buffer`"), "{err}");
    assert!(err.contains("line 4 column"), "with its position: {err}");

    let (code, err) = check_exporter(
        dir.path(),
        "case.json",
        r#""export":"null","Buffer":"10","buffer":"100""#,
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("given twice"), "{err}");

    let (code, err) = check_exporter(
        dir.path(),
        "dir.json",
        &format!(r#""export":"file","file.path":"{}""#, dir.path().display()),
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("key `file.path`") && err.contains("is a directory"),
        "{err}"
    );

    let (code, err) = check_exporter(
        dir.path(),
        "missing.json",
        &format!(
            r#""export":"file","file.path":"{}/no/such/dir/out.json""#,
            dir.path().display()
        ),
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("does not exist"), "{err}");
}

#[test]
fn policy_engine_keys_are_checked_even_without_policies() {
    let dir = tempfile::tempdir().unwrap();
    for (i, (kv, key)) in [
        (r#""concurrency":"-3""#, "concurrency"),
        (r#""concurrency":"1000""#, "concurrency"),
        (r#""mode":"sometimes""#, "mode"),
        (
            r#""monitor":"local","monitor.interval":"soon""#,
            "monitor.interval",
        ),
        (r#""monitor":"remote""#, "monitor"),
        (r#""strict":"maybe""#, "strict"),
        (r#""unsupported":"explode""#, "unsupported"),
    ]
    .iter()
    .enumerate()
    {
        let text = format!(
            r#"{{"pipeline":[
 {{"processor":"sysflowreader","handler":"flattener","in":"sysflow sysflowchan","out":"flat flattenerchan"}},
 {{"processor":"policyengine","in":"flat flattenerchan","out":"evt eventchan",{kv}}},
 {{"processor":"exporter","in":"evt eventchan","export":"null"}}]}}"#
        );
        let cfg = write_file(dir.path(), &format!("p{i}.json"), &text);
        let o = sfprocessor(&["-test", "-config", cfg.to_str().unwrap()], &[]);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{kv}: {err}");
        assert!(
            err.contains(&format!("pipeline[1] (policyengine): key `{key}`")),
            "{kv}: {err}"
        );
    }
}

#[test]
fn block_limits_are_reader_keys_with_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let text = r#"{"pipeline":[
 {"processor":"sysflowreader","handler":"flattener","in":"sysflow sysflowchan","out":"flat flattenerchan","block.maxsize":"2GiB"},
 {"processor":"exporter","in":"flat flattenerchan","export":"null"}]}"#;
    let cfg = write_file(dir.path(), "p.json", text);
    let o = sfprocessor(&["-test", "-config", cfg.to_str().unwrap()], &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("key `block.maxsize`"), "{}", stderr(&o));
}

// ---- directory input -----------------------------------------------------------------------

#[test]
fn a_directory_of_symlinks_is_read_and_whatever_is_skipped_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let traces = dir.path().join("traces");
    std::fs::create_dir(&traces).unwrap();
    let real = dir.path().join("real.sf");
    let recs = write_trace(&real, 26, 800, "deflate", SchemaVersion::V5);
    let events = recs.iter().filter(|r| r.kind().is_event_or_flow()).count();
    std::os::unix::fs::symlink(&real, traces.join("a-link.sf")).unwrap();
    let out = dir.path().join("out.json");
    let cfg = write_file(dir.path(), "p.json", &file_pipeline(&out));
    let run = |path: &Path| {
        sfprocessor(
            &[
                "-config",
                cfg.to_str().unwrap(),
                "-log",
                "error",
                path.to_str().unwrap(),
            ],
            &[],
        )
    };
    // Only a symlink to a good trace: read, exit 0.
    let o = run(&traces);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(read_json_lines(&out).len(), events);

    // A FIFO, a subdirectory and a dangling link beside it: named, exit 1; the trace is read.
    std::fs::remove_file(&out).unwrap();
    let fifo = traces.join("b-fifo");
    let st = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(st.success());
    std::fs::create_dir(traces.join("c-subdir")).unwrap();
    std::os::unix::fs::symlink(dir.path().join("gone.sf"), traces.join("d-dangling.sf")).unwrap();
    let o = run(&traces);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("b-fifo: not read: a FIFO"), "{err}");
    assert!(err.contains("c-subdir: not read: a directory"), "{err}");
    assert!(
        err.contains("d-dangling.sf: not read: a symbolic link to nothing"),
        "{err}"
    );
    assert_eq!(read_json_lines(&out).len(), events);

    // `-test` with the directory says the same before a run.
    let o = sfprocessor(
        &[
            "-test",
            "-config",
            cfg.to_str().unwrap(),
            traces.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("would be skipped"), "{}", stderr(&o));
}

#[test]
fn rate_limiter_window_is_checked() {
    let dir = tempfile::tempdir().unwrap();
    for (i, (v, code, text)) in [
        ("0", 2, "must be at least 1 second"),
        ("soon", 2, "is not a number of seconds"),
        ("10m", 0, "read as 10m; upstream reads whole seconds only"),
    ]
    .iter()
    .enumerate()
    {
        let cfg = format!(
            r#"{{"pipeline":[
 {{"processor":"sysflowreader","handler":"flattener","in":"sysflow sysflowchan","out":"flat flattenerchan","filter.enabled":"on","filter.maxage":"{v}"}},
 {{"processor":"exporter","in":"flat flattenerchan","export":"null"}}]}}"#
        );
        let cfg = write_file(dir.path(), &format!("r{i}.json"), &cfg);
        let o = sfprocessor(&["-test", "-config", cfg.to_str().unwrap()], &[]);
        let all = format!("{}{}", String::from_utf8_lossy(&o.stdout), stderr(&o));
        assert_eq!(o.status.code(), Some(*code), "{v}: {all}");
        assert!(all.contains(text), "{v}: {all}");
    }
}
