//! The Kafka exporter against real Kafka-API brokers from PyPI (through `.ci/peers`): tansu
//! (in-memory storage; every test) and noida-db's Kafka API (end to end). Consumers `assign()`
//! every partition from offset 0 (tansu's group join waits half the session timeout).

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::kafka::{consume, create_topic, LiveConsumer};
use common::peers;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use sfprocessor::sysflow::writer::SchemaVersion;

fn trace() -> PathBuf {
    common::upstream().join("sf-apis/pynb/data/attacks/express/mon.1531776742.sf")
}

fn kafka_exporter(port: u16, topic: &str, extra: &str) -> String {
    common::exporter_pipeline(&format!(
        r#""export":"kafka","kafka.config":{{"bootstrap.servers":"127.0.0.1:{port}"}},"kafka.topic":"{topic}"{extra}"#
    ))
}

#[test]
fn every_record_reaches_the_topic_keyed_by_process_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let Some((_broker, port)) = peers::tansu(dir.path()) else {
        return;
    };
    every_record_reaches_the_topic(dir.path(), port);
}

#[test]
fn every_record_reaches_noida_dbs_kafka_api() {
    let dir = tempfile::tempdir().unwrap();
    let Some((_broker, port, _es)) = peers::noida(dir.path()) else {
        return;
    };
    every_record_reaches_the_topic(dir.path(), port);
}

/// All 20,025 records of the trace on a 3-partition topic (zstd): exactly the file exporter's
/// lines, one key per process, each process in one partition and in order.
fn every_record_reaches_the_topic(dir: &std::path::Path, port: u16) {
    create_topic(port, "sysflow", 3);
    let expected = common::expected_lines(dir, &trace());
    assert_eq!(expected.len(), 20_025);
    let cfg = common::write_file(
        dir,
        "kafka.json",
        &kafka_exporter(port, "sysflow", r#","kafka.compression.type":"zstd""#),
    );
    let o = common::run_quiet(&cfg, &trace());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let got = consume(port, "sysflow", expected.len());
    assert_eq!(
        got.len(),
        expected.len(),
        "one message per record, no duplicates"
    );
    assert_eq!(
        common::counts(got.iter().map(|m| m.payload.as_str())),
        common::counts(expected.iter().map(String::as_str)),
        "the broker holds exactly the records the file exporter writes"
    );
    // One key, one partition; within it, the file's order.
    let mut part_of_key: HashMap<&[u8], i32> = HashMap::new();
    let mut by_key: BTreeMap<Vec<u8>, Vec<&str>> = BTreeMap::new();
    for m in &got {
        let k = m.key.as_deref().expect("every message has a key");
        assert_eq!(k.len(), 16);
        let p = *part_of_key.entry(k).or_insert(m.partition);
        assert_eq!(p, m.partition, "a process's messages share a partition");
        by_key.entry(k.to_vec()).or_default().push(&m.payload);
    }
    let partitions: std::collections::HashSet<i32> = got.iter().map(|m| m.partition).collect();
    assert!(partitions.len() > 1, "keys spread over partitions");
    assert!(by_key.len() > 50, "one key per process: {}", by_key.len());
    let position: HashMap<&str, usize> = expected
        .iter()
        .enumerate()
        .map(|(i, l)| (l.as_str(), i))
        .collect();
    for msgs in by_key.values() {
        let pos: Vec<usize> = msgs.iter().map(|m| position[m]).collect();
        assert!(
            pos.windows(2).all(|w| w[0] <= w[1]),
            "a process's records keep their order"
        );
    }
}

#[test]
fn test_flag_fails_when_the_broker_is_down() {
    let dir = tempfile::tempdir().unwrap();
    let port = peers::free_tcp_port();
    let cfg = common::write_file(dir.path(), "down.json", &kafka_exporter(port, "t", ""));
    let o = common::sfprocessor(&["-config", cfg.to_str().unwrap(), "-test"], &[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("kafka 127.0.0.1:{port}"))
            && err.contains("cannot read cluster metadata"),
        "{err}"
    );
}

#[test]
fn bad_kafka_settings_are_config_errors_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    for (extra, want) in [
        (r#","kafka.no.such.setting":"1""#, "no.such.setting"),
        (r#","kafka.acks":"several""#, "acks"),
        (r#","kafka.encoding":"proto""#, "kafka.encoding"),
    ] {
        let cfg = common::write_file(dir.path(), "bad.json", &kafka_exporter(9, "t", extra));
        let o = common::sfprocessor(&["-config", cfg.to_str().unwrap(), "-test"], &[]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{extra}: {err}");
        assert!(
            err.contains("pipeline[2] (exporter)") && err.contains(want),
            "{err}"
        );
    }
    let cfg = common::write_file(
        dir.path(),
        "notopic.json",
        &common::exporter_pipeline(
            r#""export":"kafka","kafka.config":{"bootstrap.servers":"127.0.0.1:9"}"#,
        ),
    );
    let o = common::sfprocessor(&["-config", cfg.to_str().unwrap(), "-test"], &[]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("key `kafka.topic`"));
}

#[test]
fn a_broker_down_at_start_gets_every_record_once_it_is_up() {
    let dir = tempfile::tempdir().unwrap();
    if peers::server("tansu").is_none() {
        return;
    }
    let expected = common::expected_lines(dir.path(), &trace());
    let port = peers::free_tcp_port();
    let cfg = common::write_file(dir.path(), "late.json", &kafka_exporter(port, "late", ""));
    let child = Command::new(env!("CARGO_BIN_EXE_sfprocessor"))
        .args(["-config", cfg.to_str().unwrap(), "-log", "warn"])
        .arg(trace())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let _broker = peers::tansu_on(dir.path(), port).expect("tansu");
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let got = consume(port, "late", expected.len());
    assert_eq!(
        common::counts(got.iter().map(|m| m.payload.as_str())),
        common::counts(expected.iter().map(String::as_str))
    );
}

fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill").args([sig, &pid.to_string()]).status();
}

#[test]
fn a_broker_killed_and_restarted_mid_stream_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let Some((mut broker, port)) = peers::tansu(dir.path()) else {
        return;
    };
    let trace = dir.path().join("gen.sf");
    common::write_trace(&trace, 11, 80_000, "deflate", SchemaVersion::V5);
    let expected = common::expected_lines(dir.path(), &trace);
    create_topic(port, "chaos", 2);
    let live = LiveConsumer::start(port, "chaos");
    let cfg = common::write_file(
        dir.path(),
        "chaos.json",
        &kafka_exporter(
            port,
            "chaos",
            r#","buffer":"500","kafka.message.timeout.ms":"3000","retry.backoff.max":"500ms""#,
        ),
    );
    let log = dir.path().join("agent.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_sfprocessor"))
        .args(["-config", cfg.to_str().unwrap(), "-log", "info"])
        .arg(&trace)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let pid = child.id();
    // Twice: let records flow, freeze the agent, let the consumer read everything the broker
    // holds, kill the broker (SIGKILL: its memory is gone), let the agent run into the
    // outage, start the broker again.
    for round in 0..2 {
        let before = live.read.load(Ordering::SeqCst);
        // Up to 400 polls of 25 ms for 3,000 more messages.
        let mut polls = 0;
        while live.read.load(Ordering::SeqCst) < before + 3_000 && polls < 400 {
            polls += 1;
            std::thread::sleep(Duration::from_millis(25));
        }
        signal(pid, "-STOP");
        // The agent is frozen, so the broker gets nothing new: the consumer has read all it
        // holds once its count stays put for a second (up to 300 polls of 100 ms).
        let mut last = usize::MAX;
        let mut stable = 0;
        for _ in 0..300 {
            std::thread::sleep(Duration::from_millis(100));
            let now = live.read.load(Ordering::SeqCst);
            stable = if now == last { stable + 1 } else { 0 };
            last = now;
            if stable >= 10 {
                break;
            }
        }
        assert!(stable >= 10, "round {round}: the consumer kept reading");
        assert!(
            live.read_gen.load(Ordering::SeqCst) as i64 >= high_watermarks(port, "chaos"),
            "round {round}: the consumer read less than the broker holds"
        );
        broker.stop();
        signal(pid, "-CONT");
        std::thread::sleep(Duration::from_millis(1500));
        broker.restart();
        live.generation.fetch_add(1, Ordering::SeqCst);
    }
    // Up to 1,200 polls of 100 ms for the run to end.
    let mut status = None;
    for _ in 0..1200 {
        status = child.try_wait().unwrap();
        if status.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let err = std::fs::read_to_string(&log).unwrap_or_default();
    let tail: String = err
        .lines()
        .filter(|l| !l.contains("librdkafka"))
        .rev()
        .take(15)
        .collect::<Vec<_>>()
        .join("\n");
    let Some(status) = status else {
        let _ = child.kill();
        panic!("the run did not end; last log lines:\n{tail}");
    };
    assert!(status.success(), "{tail}");
    assert!(err.contains("retrying"), "the outage was noticed: {err}");
    // Up to 400 polls of 50 ms for the consumer to read the rest.
    let mut polls = 0;
    while live.read.load(Ordering::SeqCst) < expected.len() && polls < 400 {
        polls += 1;
        std::thread::sleep(Duration::from_millis(50));
    }
    live.stop.store(true, Ordering::SeqCst);
    let got = live.handle.join().unwrap();
    let got_counts = common::counts(got.iter().map(String::as_str));
    let want = common::counts(expected.iter().map(String::as_str));
    let lost: usize = want
        .iter()
        .map(|(line, n)| n.saturating_sub(got_counts.get(line).copied().unwrap_or(0)))
        .sum();
    assert_eq!(lost, 0, "records lost; sfprocessor said: {err}");
    assert!(
        got_counts.keys().all(|l| want.contains_key(l)),
        "nothing but the trace's records"
    );
    eprintln!(
        "restart test: {} records, {} messages read ({} duplicates, at-least-once)",
        expected.len(),
        got.len(),
        got.len() - expected.len()
    );
}

/// Sum of the partitions' high watermarks (messages stored so far); 0 when unreachable.
fn high_watermarks(port: u16, topic: &str) -> i64 {
    let c: BaseConsumer = match ClientConfig::new()
        .set("bootstrap.servers", format!("127.0.0.1:{port}"))
        .set("group.id", "watermarks")
        .create()
    {
        Ok(c) => c,
        Err(_) => return 0,
    };
    let parts = c
        .fetch_metadata(Some(topic), Duration::from_secs(2))
        .ok()
        .and_then(|md| {
            md.topics()
                .iter()
                .find(|t| t.name() == topic)
                .map(|t| t.partitions().len() as i32)
        })
        .unwrap_or(0);
    (0..parts)
        .map(|p| {
            c.fetch_watermarks(topic, p, Duration::from_secs(2))
                .map(|(_, hi)| hi)
                .unwrap_or(0)
        })
        .sum()
}
