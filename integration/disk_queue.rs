//! The disk queue (issue 28) through the agent as a process: a target down across a kill -9,
//! a torn and a damaged queue, the cap with `drop_newest`, a full file system, two agents on
//! one directory, a segment version this build does not know, Kafka keys kept on replay.

mod common;

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::agent::{finished, signal, simulator, tail, Agent};
use common::{expected_lines, sfprocessor, write_file, write_trace};
use sfprocessor::sysflow::writer::SchemaVersion;

fn syslog_disk_cfg(dir: &Path, name: &str, port: u16, queue: &Path, extra: &str) -> PathBuf {
    write_file(
        dir,
        name,
        &common::exporter_pipeline(&format!(
            r#""export":"syslog","syslog.proto":"tcp","syslog.host":"127.0.0.1","syslog.port":"{port}","retry.backoff":"50ms","retry.backoff.max":"200ms","queue.type":"disk","queue.path":"{}"{extra}"#,
            queue.display()
        )),
    )
}

fn file_disk_cfg(dir: &Path, name: &str, out: &Path, queue: &Path) -> PathBuf {
    write_file(
        dir,
        name,
        &common::exporter_pipeline(&format!(
            r#""export":"file","file.path":"{}","queue.type":"disk","queue.path":"{}""#,
            out.display(),
            queue.display()
        )),
    )
}

/// A generated trace, what it exports, and an rsyslog that is stopped: a target that is down.
struct Outage {
    dir: tempfile::TempDir,
    trace: PathBuf,
    expected: Vec<String>,
    rs: common::rsyslog::Rsyslog,
    queue: PathBuf,
}

impl Outage {
    fn new(seed: u64, records: u64) -> Outage {
        let dir = tempfile::tempdir().unwrap();
        let trace = dir.path().join("t.sf");
        write_trace(&trace, seed, records, "deflate", SchemaVersion::V5);
        let expected = expected_lines(dir.path(), &trace);
        let rs_dir = dir.path().join("rs");
        std::fs::create_dir(&rs_dir).unwrap();
        let mut rs = common::rsyslog::Rsyslog::new(&rs_dir);
        rs.stop();
        let queue = dir.path().join("queue");
        Outage {
            dir,
            trace,
            expected,
            rs,
            queue,
        }
    }
}

fn sfprint_queue(queue: &Path) -> (i32, String) {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_sfprint"))
        .arg("--queue")
        .arg(queue)
        .output()
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
    )
}

fn field(report: &str, name: &str) -> u64 {
    report
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no `{name}` in:\n{report}"))
}

/// Test a: the target is down, the collector streams N records, every one is in the queue,
/// the agent is killed with SIGKILL; the target comes back and an agent started with no input
/// delivers all N.
#[test]
fn a_backlog_survives_kill_9_and_goes_out_when_the_target_is_back() {
    if !common::rsyslog::peers_available() {
        return;
    }
    let Outage {
        dir,
        trace,
        expected,
        mut rs,
        queue,
    } = Outage::new(281, 3_000);
    let cfg = syslog_disk_cfg(dir.path(), "s.json", rs.tcp, &queue, "");
    let mut agent = Agent::start(dir.path(), &cfg);
    let sim = simulator(&agent.sock, &["-trace", trace.to_str().unwrap()]);
    finished(sim);
    let want = expected.len() as f64;
    let series =
        "sfprocessor_exporter_disk_queue_records{node=\"exporter[2]\",exporter=\"syslog\"}";
    agent.wait_for(
        "every record in the disk queue",
        Duration::from_secs(60),
        || agent.metric(series) == want,
    );
    let mut child = agent.child.take().unwrap();
    signal(child.id(), "-KILL");
    let _ = child.wait();
    let (code, report) = sfprint_queue(&queue);
    assert_eq!(code, 0, "{report}");
    assert_eq!(field(&report, "records"), expected.len() as u64, "{report}");

    rs.start();
    let mut agent = Agent::start(dir.path(), &cfg);
    agent.wait_for("the backlog delivered", Duration::from_secs(60), || {
        agent.metric(series) == 0.0
            && agent.metric("sfprocessor_exporter_disk_queue_recovered_records_total{node=\"exporter[2]\",exporter=\"syslog\"}") == want
    });
    assert_eq!(agent.terminate(), 0, "{}", tail(&agent.log(), 20));
    let got = rs.bodies();
    assert_eq!(
        common::counts(got.iter().map(String::as_str)),
        common::counts(expected.iter().map(String::as_str)),
        "all {} records delivered once, none lost",
        expected.len()
    );
}

/// SIGTERM with the target down: the backlog stays on disk, the summary says how many, exit 0;
/// the next start delivers it first, in order.
#[test]
fn sigterm_leaves_the_backlog_on_disk_and_the_next_start_sends_it_first() {
    if !common::rsyslog::peers_available() {
        return;
    }
    let Outage {
        dir,
        trace,
        expected,
        mut rs,
        queue,
    } = Outage::new(282, 2_000);
    let cfg = syslog_disk_cfg(
        dir.path(),
        "s.json",
        rs.tcp,
        &queue,
        r#","retry.drain_timeout":"1s""#,
    );
    // A file run: its input ends, delivery keeps failing, the drain timeout passes.
    let o = sfprocessor(
        &["-config", cfg.to_str().unwrap(), trace.to_str().unwrap()],
        &[],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(
        err.contains(&format!(
            "{} records left in the disk queue",
            expected.len()
        )),
        "{err}"
    );
    // `-test` shows the backlog (without touching the queue).
    let t = sfprocessor(&["-test", "-config", cfg.to_str().unwrap()], &[]);
    let out = String::from_utf8_lossy(&t.stdout);
    assert!(
        out.contains(&format!(
            "{} records queued in 1 segment(s)",
            expected.len()
        )),
        "{out}"
    );
    // The second run: the target is up; the previous run's records come first.
    rs.start();
    let o = sfprocessor(
        &["-config", cfg.to_str().unwrap(), trace.to_str().unwrap()],
        &[],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let got = rs.bodies();
    let mut want = expected.clone();
    want.extend(expected.iter().cloned());
    assert_eq!(got.len(), want.len());
    assert!(
        got == want,
        "the backlog first, in order, then the new run's records"
    );
}

/// Test c: a torn last record and a flipped byte in the middle of a segment are both found,
/// reported with positions (log, summary, `sfprint --queue`), and the rest is delivered.
#[test]
fn a_torn_and_a_damaged_queue_are_reported_and_the_rest_delivered() {
    if !common::rsyslog::peers_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("t.sf");
    write_trace(&trace, 283, 2_000, "deflate", SchemaVersion::V5);
    let expected = expected_lines(dir.path(), &trace);
    let queue = dir.path().join("queue");
    // Fill the queue: a syslog target that is not there, a short drain.
    let down = common::peers::free_tcp_port();
    let cfg = syslog_disk_cfg(
        dir.path(),
        "s.json",
        down,
        &queue,
        r#","retry.drain_timeout":"300ms""#,
    );
    let o = sfprocessor(
        &["-config", cfg.to_str().unwrap(), trace.to_str().unwrap()],
        &[],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let seg = queue.join("00000000000000000001.seg");
    let len = std::fs::metadata(&seg).unwrap().len();
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&seg)
        .unwrap();
    // A flipped byte a third of the way in, and the last record cut short.
    let at = len / 3;
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, at).unwrap();
    f.write_all_at(&[b[0] ^ 0x01], at).unwrap();
    f.set_len(len - 40).unwrap();
    drop(f);
    let (code, report) = sfprint_queue(&queue);
    assert_eq!(code, 1, "damage makes sfprint --queue exit 1:\n{report}");
    assert_eq!(field(&report, "damaged"), 2, "{report}");
    assert!(
        report.contains("checksum mismatch") || report.contains("frame"),
        "{report}"
    );
    assert!(report.contains("torn record"), "{report}");

    // Delivered to a file now (the queue holds encoded records, whatever the target).
    let out = dir.path().join("out.json");
    let cfg = file_disk_cfg(dir.path(), "f.json", &out, &queue);
    let empty = dir.path().join("empty.sf");
    write_trace(&empty, 284, 0, "deflate", SchemaVersion::V5);
    let o = sfprocessor(
        &[
            "-config",
            cfg.to_str().unwrap(),
            "-log",
            "warn",
            empty.to_str().unwrap(),
        ],
        &[],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("torn last record at offset") && err.contains("damaged at offset"),
        "both reported with positions: {err}"
    );
    assert!(
        err.contains("1 torn record(s) cut, 1 damaged stretch(es) skipped"),
        "{err}"
    );
    assert!(queue.join("00000000000000000001.seg.damaged").exists());
    let got: Vec<String> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    // The damaged record and the torn one are lost; every other record arrives, in order.
    assert_eq!(got.len(), expected.len() - 2, "{err}");
    let mut it = expected.iter();
    for g in &got {
        assert!(it.any(|e| e == g), "delivered out of order or altered: {g}");
    }
}

/// Runs 6,000 generated records into a disk queue of `maxbytes` with `drop_newest` and a
/// syslog target that is not there; returns the events the trace holds and the run's output.
fn overfill(dir: &Path, seed: u64, queue: &Path, maxbytes: &str) -> (u64, std::process::Output) {
    let trace = dir.join("t.sf");
    write_trace(&trace, seed, 6_000, "deflate", SchemaVersion::V5);
    let total = expected_lines(dir, &trace).len() as u64;
    let down = common::peers::free_tcp_port();
    let cfg = syslog_disk_cfg(
        dir,
        "s.json",
        down,
        queue,
        &format!(
            r#","retry.drain_timeout":"300ms","queue.maxbytes":"{maxbytes}","when_full":"drop_newest""#
        ),
    );
    let o = sfprocessor(
        &["-config", cfg.to_str().unwrap(), trace.to_str().unwrap()],
        &[],
    );
    (total, o)
}

/// Test d: `queue.maxbytes` with `drop_newest`: the queue stops at the cap, the rest is
/// counted dropped, nothing is torn.
#[test]
fn the_cap_drops_newest_and_counts_them() {
    let dir = tempfile::tempdir().unwrap();
    let queue = dir.path().join("queue");
    let (total, o) = overfill(dir.path(), 285, &queue, "1MiB");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(
        o.status.code(),
        Some(1),
        "dropped records make the run incomplete: {err}"
    );
    let (code, report) = sfprint_queue(&queue);
    assert_eq!(code, 0, "nothing torn: {report}");
    let queued = field(&report, "records");
    assert!(field(&report, "bytes") <= 1 << 20, "{report}");
    let dropped: u64 = err
        .split("records not delivered (")
        .nth(1)
        .and_then(|r| r.split(" dropped)").next())
        .and_then(|r| r.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no dropped count: {err}"));
    assert!(queued > 0 && dropped > 0, "{report}\n{err}");
    assert_eq!(
        queued + dropped,
        total,
        "every record queued or counted dropped"
    );
}

/// Runs `cmd path` as root: directly when we are root, else through `sudo -n` (a password-less
/// sudo, as `.ci/run` uses for its packages).
fn privileged(cmd: &[&str], path: &Path) -> bool {
    let run = |words: &[&str]| {
        std::process::Command::new(words[0])
            .args(&words[1..])
            .arg(path)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let mut sudo = vec!["sudo", "-n"];
    sudo.extend_from_slice(cmd);
    run(cmd) || run(&sudo)
}

/// Test d, the disk itself full: a 2 MiB tmpfs (needs root to mount; CI runs as root here).
/// `drop_newest` counts what did not fit; the queue holds no torn record.
#[test]
fn a_full_file_system_is_a_full_queue_and_leaves_nothing_torn() {
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("small");
    std::fs::create_dir(&mnt).unwrap();
    let mounted = privileged(&["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs"], &mnt);
    if !mounted {
        assert!(
            !common::peers::ci(),
            "CI=true: could not mount a tmpfs for the full-disk test"
        );
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    }
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            privileged(&["umount"], &self.0);
        }
    }
    let _u = Unmount(mnt.clone());
    let queue = mnt.join("queue");
    let (total, o) = overfill(dir.path(), 286, &queue, "64MiB");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    // Logged once per episode (an episode ends when a smaller write fits again).
    assert!(
        err.matches("disk queue write failed").count()
            <= err.matches("disk queue accepts records again").count() + 1,
        "{err}"
    );
    let (code, report) = sfprint_queue(&queue);
    assert_eq!(code, 0, "nothing torn: {report}");
    let queued = field(&report, "records");
    assert!(queued > 0 && queued < total, "{report}");
    assert!(
        err.contains(&format!("{} dropped)", total - queued)),
        "the rest counted dropped: {err}"
    );
}

/// Test e: a second agent on the same queue directory refuses to start, naming the holder.
#[test]
fn a_second_agent_on_the_same_queue_directory_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let queue = dir.path().join("queue");
    let out = dir.path().join("out.json");
    let cfg = file_disk_cfg(dir.path(), "f.json", &out, &queue);
    let mut first = Agent::start(dir.path(), &cfg);
    let trace = dir.path().join("t.sf");
    write_trace(&trace, 287, 100, "deflate", SchemaVersion::V5);
    let o = sfprocessor(
        &["-config", cfg.to_str().unwrap(), trace.to_str().unwrap()],
        &[],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(
        err.contains("in use by another agent or exporter")
            && err.contains(&format!("pid {}", first.pid())),
        "{err}"
    );
    // The first agent's queue is untouched and it still works.
    let sim = simulator(&first.sock, &["-trace", trace.to_str().unwrap()]);
    finished(sim);
    first.wait_for("records delivered", Duration::from_secs(30), || {
        common::agent::events(&out) > 0
    });
    assert_eq!(first.terminate(), 0, "{}", tail(&first.log(), 20));
}

/// Test f: a segment of another format version is refused with a clear error, never misread.
#[test]
fn a_segment_of_an_unknown_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let queue = dir.path().join("queue");
    std::fs::create_dir(&queue).unwrap();
    let mut seg = b"SFQUEUE\x02".to_vec();
    seg.extend_from_slice(&[0u8; 64]);
    std::fs::write(queue.join("00000000000000000007.seg"), &seg).unwrap();
    let out = dir.path().join("out.json");
    let cfg = file_disk_cfg(dir.path(), "f.json", &out, &queue);
    let trace = dir.path().join("t.sf");
    write_trace(&trace, 288, 10, "deflate", SchemaVersion::V5);
    let o = sfprocessor(
        &["-config", cfg.to_str().unwrap(), trace.to_str().unwrap()],
        &[],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(
        err.contains("00000000000000000007.seg: queue segment format version 2"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(queue.join("00000000000000000007.seg")).unwrap(),
        seg
    );
}

/// Keys and ids are kept through the queue: Kafka records replayed after a restart carry the
/// key they would have had (a consumer can de-duplicate by it).
#[test]
fn kafka_keys_survive_a_restart_through_the_disk_queue() {
    let dir = tempfile::tempdir().unwrap();
    let Some((mut broker, port)) = common::peers::tansu(dir.path()) else {
        assert!(
            !common::peers::ci(),
            "CI=true: the Kafka test broker is missing"
        );
        return;
    };
    let trace = dir.path().join("t.sf");
    write_trace(&trace, 289, 1_500, "deflate", SchemaVersion::V5);
    let n = expected_lines(dir.path(), &trace).len();
    let queue = dir.path().join("queue");
    let cfg_for = |topic: &str, name: &str, drain: &str| {
        write_file(
            dir.path(),
            name,
            &common::exporter_pipeline(&format!(
                r#""export":"kafka","kafka.config":{{"bootstrap.servers":"127.0.0.1:{port}"}},"kafka.topic":"{topic}","retry.backoff":"50ms","retry.drain_timeout":"{drain}","queue.type":"disk","queue.path":"{}""#,
                queue.display()
            )),
        )
    };
    // Straight through: the keys a healthy run gives.
    common::kafka::create_topic(port, "direct", 3);
    let o = sfprocessor(
        &[
            "-config",
            cfg_for("direct", "d.json", "30s").to_str().unwrap(),
            trace.to_str().unwrap(),
        ],
        &[],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let direct = common::kafka::consume(port, "direct", n);
    let (_, report) = sfprint_queue(&queue);
    assert_eq!(
        field(&report, "records"),
        0,
        "delivered and acknowledged: {report}"
    );
    // The broker down: everything stays in the queue; then replayed by an agent with no input.
    broker.stop();
    let o = sfprocessor(
        &[
            "-config",
            cfg_for("replayed", "r.json", "1s").to_str().unwrap(),
            trace.to_str().unwrap(),
        ],
        &[],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!("{n} records left in the disk queue")),
        "{err}"
    );
    broker.restart();
    common::kafka::create_topic(port, "replayed", 3);
    let empty = dir.path().join("empty.sf");
    write_trace(&empty, 290, 0, "deflate", SchemaVersion::V5);
    let o = sfprocessor(
        &[
            "-config",
            cfg_for("replayed", "r2.json", "30s").to_str().unwrap(),
            empty.to_str().unwrap(),
        ],
        &[],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let replayed = common::kafka::consume(port, "replayed", n);
    let keyed = |v: &[common::kafka::Consumed]| {
        let mut k: Vec<(Option<Vec<u8>>, Vec<u8>)> = v
            .iter()
            .map(|c| (c.key.clone(), c.payload.clone().into_bytes()))
            .collect();
        k.sort();
        k
    };
    assert_eq!(replayed.len(), n);
    assert!(
        keyed(&direct) == keyed(&replayed),
        "the same records with the same keys"
    );
}

/// The queued records of `queue`, as `sfprint --queue DIR --records` prints them.
fn queued_records(queue: &Path) -> Vec<String> {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_sfprint"))
        .args(["--queue"])
        .arg(queue)
        .arg("--records")
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// Test b: kill -9 at random moments of a steady live stream to Kafka, restarting each time.
/// At each kill the agent is frozen first (SIGSTOP) and its queue read: every record it had
/// appended is either already in Kafka or in that queue, and every one of those must reach
/// Kafka in the end. The loss per kill (records sent but never appended: in the socket, or
/// read and not yet appended) is printed (docs/operations.md quotes it).
#[test]
fn kill_9_during_a_steady_stream_loses_nothing_that_was_appended() {
    let dir = tempfile::tempdir().unwrap();
    let Some((_broker, port)) = common::peers::tansu(dir.path()) else {
        assert!(
            !common::peers::ci(),
            "CI=true: the Kafka test broker is missing"
        );
        return;
    };
    common::kafka::create_topic(port, "steady", 3);
    let queue = dir.path().join("queue");
    let cfg = write_file(
        dir.path(),
        "k.json",
        &common::exporter_pipeline(&format!(
            r#""export":"kafka","kafka.config":{{"bootstrap.servers":"127.0.0.1:{port}"}},"kafka.topic":"steady","retry.backoff":"50ms","queue.type":"disk","queue.path":"{}""#,
            queue.display()
        )),
    );
    let rounds = if common::peers::ci() { 3 } else { 10 };
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("kill moments seeded with {seed}");
    let mut appended: std::collections::HashSet<String> = Default::default();
    let mut sent: Vec<Vec<String>> = Vec::new();
    for k in 0..rounds {
        let trace = dir.path().join(format!("t{k}.sf"));
        write_trace(&trace, 400 + k, 4_000, "deflate", SchemaVersion::V5);
        sent.push(expected_lines(dir.path(), &trace));
        let mut agent = Agent::start(dir.path(), &cfg);
        let mut sim = simulator(
            &agent.sock,
            &["-trace", trace.to_str().unwrap(), "-rate", "10000"],
        );
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_millis(100 + seed % 250));
        let mut child = agent.child.take().unwrap();
        signal(child.id(), "-STOP");
        std::thread::sleep(Duration::from_millis(50));
        // Appended = acknowledged by Kafka (all of it is in the topic) + still queued.
        appended.extend(queued_records(&queue));
        signal(child.id(), "-KILL");
        let _ = child.wait();
        let _ = sim.kill();
        let _ = sim.wait();
    }
    let mut agent = Agent::start(dir.path(), &cfg);
    agent.wait_for("the queue emptied", Duration::from_secs(60), || {
        agent.metric(
            "sfprocessor_exporter_disk_queue_records{node=\"exporter[2]\",exporter=\"kafka\"}",
        ) == 0.0
    });
    assert_eq!(agent.terminate(), 0, "{}", tail(&agent.log(), 20));
    let all: usize = sent.iter().map(Vec::len).sum();
    let delivered: std::collections::HashSet<String> = common::kafka::consume(port, "steady", all)
        .into_iter()
        .map(|c| c.payload)
        .collect();
    let missing = appended.iter().filter(|r| !delivered.contains(*r)).count();
    assert_eq!(
        missing,
        0,
        "{missing} of {} records queued at a kill never reached Kafka",
        appended.len()
    );
    // The collector sends a round's records in order and the agent appends them in order:
    // what reached Kafka of a round is a prefix of it, and only its tail is lost (records in
    // the socket or read and not yet appended when the agent died).
    for (k, round) in sent.iter().enumerate() {
        let last = round.iter().rposition(|r| delivered.contains(r));
        let holes = last.map_or(0, |l| {
            round[..l]
                .iter()
                .filter(|r| !delivered.contains(*r))
                .count()
        });
        assert_eq!(
            holes, 0,
            "kill {k}: records missing before the last one delivered"
        );
        eprintln!(
            "kill {k}: {} of {} records delivered, a prefix; the {} after it were not appended (sent or not yet)",
            last.map_or(0, |l| l + 1),
            round.len(),
            round.len() - last.map_or(0, |l| l + 1)
        );
    }
}
