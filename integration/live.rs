//! The live agent (issue 11): the socket driver fed by the collector simulator (`sfgen
//! -socket`), the metrics endpoint read while it runs, and chaos against real processes — the
//! collector killed mid-stream, the exporter's target (rsyslog, a Kafka-API broker) down for
//! 20 s under a live stream, SIGTERM under load, hostile packets, a broken policy edit.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::agent::{events, file_config, finished, sample, simulator, tail, Agent};
use common::rsyslog::{peers_available, Rsyslog};
use common::{expected_lines, write_file, write_trace};
use sfprocessor::seqpacket::Client;
use sfprocessor::sysflow::writer::{encode_datum, schema, SchemaVersion};
use sfprocessor::sysflow::{Header, Oid, Process, SysFlow};

#[test]
fn a_trace_over_the_socket_is_exported_as_from_the_file_and_the_metrics_count_it() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("t.sf");
    write_trace(&trace, 31, 20_000, "deflate", SchemaVersion::V5);
    let want = expected_lines(dir.path(), &trace);
    let out = dir.path().join("out.json");
    let mut agent = Agent::start(dir.path(), &file_config(dir.path(), &out));
    let sent = finished(simulator(&agent.sock, &["-trace", trace.to_str().unwrap()]));
    // Every record plus the header.
    agent.wait_packets(sent + 1);
    // Read while the agent runs (it waits for the next collector).
    agent.wait_for("the exporter to deliver", Duration::from_secs(60), || {
        agent.metric(
            "sfprocessor_node_sent_records_total{node=\"exporter[2]\",stage=\"exporter\",exporter=\"file\"}",
        ) as usize
            == want.len()
    });
    let (_, m) = agent.get("/metrics");
    assert_eq!(
        sample(&m, "sfprocessor_socket_packets_total"),
        (sent + 1) as f64
    );
    assert_eq!(sample(&m, "sfprocessor_socket_connections_total"), 1.0);
    assert_eq!(sample(&m, "sfprocessor_entity_resets_total"), 1.0);
    assert_eq!(
        sample(
            &m,
            "sfprocessor_node_received_records_total{node=\"driver\",stage=\"driver\",exporter=\"\"}"
        ),
        (sent + 1) as f64
    );
    assert_eq!(
        sample(
            &m,
            "sfprocessor_socket_bad_packets_total{reason=\"decode\"}"
        ),
        0.0
    );
    assert_eq!(
        sample(
            &m,
            "sfprocessor_exporter_up{node=\"exporter[2]\",exporter=\"file\"}"
        ),
        1.0
    );
    assert!(sample(&m, "sfprocessor_process_resident_memory_bytes") > 0.0);
    assert_eq!(agent.get("/healthz").0, 200);
    assert_eq!(agent.get("/nope").0, 404);
    assert_eq!(agent.terminate(), 0, "{}", tail(&agent.log(), 20));
    let got: Vec<String> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(got, want, "same records, same order as the file driver");
    assert!(!agent.sock.exists(), "the socket file is removed at exit");
}

#[test]
fn a_collector_killed_mid_stream_reconnects_and_everything_read_is_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("t.sf");
    write_trace(&trace, 32, 20_000, "deflate", SchemaVersion::V5);
    let per_pass = expected_lines(dir.path(), &trace).len() as u64;
    let out = dir.path().join("out.json");
    let mut agent = Agent::start(dir.path(), &file_config(dir.path(), &out));
    // First connection: killed (SIGKILL) in the middle of the stream.
    let mut first = simulator(
        &agent.sock,
        &[
            "-trace",
            trace.to_str().unwrap(),
            "-loop",
            "50",
            "-rate",
            "20000",
        ],
    );
    agent.wait_packets(15_000);
    first.kill().unwrap();
    first.wait().unwrap();
    agent.wait_for(
        "the first connection to end",
        Duration::from_secs(30),
        || agent.metric("sfprocessor_socket_connected") == 0.0,
    );
    let read_first = agent.metric("sfprocessor_socket_packets_total") as u64;
    // Second connection: the whole trace.
    let sent = finished(simulator(&agent.sock, &["-trace", trace.to_str().unwrap()]));
    agent.wait_packets(read_first + sent + 1);
    let m = agent.get("/metrics").1;
    assert_eq!(sample(&m, "sfprocessor_socket_connections_total"), 2.0);
    assert!(
        sample(&m, "sfprocessor_entity_resets_total") >= 2.0,
        "each connection's header reset the tables"
    );
    assert_eq!(agent.terminate(), 0, "{}", tail(&agent.log(), 20));
    let m_flattened = {
        // What the flattener produced from everything read is what the file holds.
        let log = agent.log();
        log.lines()
            .find(|l| l.contains("node summary") && l.contains("node=flattener"))
            .and_then(|l| {
                l.split_whitespace()
                    .find_map(|w| w.strip_prefix("sent="))
                    .and_then(|v| v.parse::<u64>().ok())
            })
            .expect("flattener summary")
    };
    let got = events(&out);
    assert_eq!(got, m_flattened, "every record read was delivered");
    assert!(
        got >= per_pass,
        "the second connection's whole trace at least"
    );
    assert!(
        got < per_pass * 50,
        "the first connection was cut short ({got} records)"
    );
}

/// A syslog TCP exporter to `port` with a fast retry ladder.
fn syslog_config(dir: &Path, port: u16) -> PathBuf {
    write_file(
        dir,
        "syslog.json",
        &common::exporter_pipeline(&format!(
            r#""export":"syslog","syslog.proto":"tcp","syslog.host":"127.0.0.1","syslog.port":"{port}","retry.backoff":"50ms","retry.backoff.max":"1s""#
        )),
    )
}

#[test]
fn rsyslog_down_for_20_s_under_a_live_stream_slows_the_collector_and_loses_nothing() {
    if !peers_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("t.sf");
    write_trace(&trace, 33, 4_000, "deflate", SchemaVersion::V5);
    let per_pass = expected_lines(dir.path(), &trace).len();
    let mut rs = Rsyslog::new(dir.path());
    let mut agent = Agent::start(dir.path(), &syslog_config(dir.path(), rs.tcp));
    // 10 passes at 5,000 records/s: 8 s when nothing holds it back.
    let sim = simulator(
        &agent.sock,
        &[
            "-trace",
            trace.to_str().unwrap(),
            "-loop",
            "10",
            "-rate",
            "5000",
        ],
    );
    agent.wait_packets(3_000);
    rs.stop();
    let down = Instant::now();
    std::thread::sleep(Duration::from_secs(20));
    let read_during = agent.metric("sfprocessor_socket_packets_total");
    let mut sim = sim;
    assert!(
        sim.try_wait().unwrap().is_none(),
        "the collector was slowed by backpressure (still sending after {:?})",
        down.elapsed()
    );
    assert!(
        read_during < 40_000.0,
        "the agent stopped reading while the target was down ({read_during} packets)"
    );
    rs.start();
    let sent = finished(sim);
    agent.wait_packets(sent + 1);
    assert_eq!(agent.terminate(), 0, "{}", tail(&agent.log(), 20));
    let log = agent.log();
    assert!(log.contains("retrying"), "the outage was seen");
    let got = rs.bodies();
    let want = per_pass * 10;
    assert_eq!(
        sent as usize,
        4_000 * 10 - 10,
        "records other than the 10 headers"
    );
    let distinct = common::counts(got.iter().map(String::as_str));
    let expected = expected_lines(dir.path(), &trace);
    for l in &expected {
        assert!(
            distinct.get(l.as_str()).copied().unwrap_or(0) >= 10,
            "a record of every pass arrived ({} of {want} received)",
            got.len()
        );
    }
    assert!(got.len() >= want, "{} of {want}", got.len());
}

#[test]
fn a_kafka_broker_unresponsive_for_20_s_under_a_live_stream_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let Some((broker, port)) = common::peers::tansu(dir.path()) else {
        return;
    };
    let trace = dir.path().join("t.sf");
    write_trace(&trace, 34, 4_000, "deflate", SchemaVersion::V5);
    let expected = expected_lines(dir.path(), &trace);
    common::kafka::create_topic(port, "live", 2);
    let cfg = write_file(
        dir.path(),
        "kafka.json",
        &common::exporter_pipeline(&format!(
            r#""export":"kafka","kafka.config":{{"bootstrap.servers":"127.0.0.1:{port}"}},"kafka.topic":"live","buffer":"500","kafka.message.timeout.ms":"5000","retry.backoff.max":"1s""#
        )),
    );
    let mut agent = Agent::start(dir.path(), &cfg);
    let sim = simulator(
        &agent.sock,
        &[
            "-trace",
            trace.to_str().unwrap(),
            "-loop",
            "8",
            "-rate",
            "5000",
        ],
    );
    agent.wait_packets(3_000);
    // Down: frozen (SIGSTOP), so nothing it stored is lost; nothing is answered for 20 s.
    broker.pause();
    std::thread::sleep(Duration::from_secs(20));
    let mut sim = sim;
    assert!(
        sim.try_wait().unwrap().is_none(),
        "the collector was slowed by backpressure"
    );
    broker.resume();
    let sent = finished(sim);
    agent.wait_packets(sent + 1);
    assert_eq!(agent.terminate(), 0, "{}", tail(&agent.log(), 20));
    let want = expected.len() * 8;
    // Read the topic from the start until every record shows up 8 times: the broker may make
    // acknowledged messages readable a little later after it was frozen (bounded: 5 reads).
    let mut missing = 0;
    let mut n = 0;
    for _ in 0..5 {
        let got = common::kafka::consume(port, "live", want);
        n = got.len();
        let have = common::counts(got.iter().map(|m| m.payload.as_str()));
        missing = expected
            .iter()
            .filter(|l| have.get(l.as_str()).copied().unwrap_or(0) < 8)
            .count();
        if missing == 0 {
            break;
        }
        std::thread::sleep(Duration::from_secs(2));
    }
    assert_eq!(
        missing, 0,
        "every record of every pass arrived ({n} of {want} messages; {missing} records short)"
    );
}

#[test]
fn sigterm_under_live_load_drains_everything_read_and_exits_0() {
    if !peers_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("t.sf");
    write_trace(&trace, 35, 10_000, "deflate", SchemaVersion::V5);
    let rs_dir = dir.path().join("rs");
    std::fs::create_dir(&rs_dir).unwrap();
    let mut rs = Rsyslog::new(&rs_dir);
    let mut agent = Agent::start(dir.path(), &syslog_config(dir.path(), rs.tcp));
    let mut sim = simulator(
        &agent.sock,
        &[
            "-trace",
            trace.to_str().unwrap(),
            "-loop",
            "100",
            "-rate",
            "20000",
            "-no-reconnect",
        ],
    );
    agent.wait_packets(30_000);
    assert_eq!(agent.terminate(), 0, "{}", tail(&agent.log(), 20));
    let _ = sim.kill();
    let _ = sim.wait();
    let log = agent.log();
    let exported = log
        .lines()
        .find(|l| l.contains("node summary") && l.contains("node=exporter[2]"))
        .and_then(|l| {
            l.split_whitespace()
                .find_map(|w| w.strip_prefix("sent="))
                .and_then(|v| v.parse::<usize>().ok())
        })
        .expect("exporter summary");
    let flattened = log
        .lines()
        .find(|l| l.contains("node summary") && l.contains("node=flattener"))
        .and_then(|l| {
            l.split_whitespace()
                .find_map(|w| w.strip_prefix("sent="))
                .and_then(|v| v.parse::<usize>().ok())
        })
        .expect("flattener summary");
    assert_eq!(exported, flattened, "everything read was delivered: {log}");
    let got = rs.bodies();
    assert_eq!(
        got.len(),
        exported,
        "the receiver has every record the agent read"
    );
}

fn v5(r: &SysFlow) -> Vec<u8> {
    encode_datum(&schema(SchemaVersion::V5).unwrap(), r, SchemaVersion::V5).unwrap()
}

#[test]
fn garbage_truncated_and_huge_packets_are_counted_and_the_good_ones_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("t.sf");
    write_trace(&trace, 36, 2_000, "deflate", SchemaVersion::V5);
    let want = expected_lines(dir.path(), &trace);
    let out = dir.path().join("out.json");
    let agent = Agent::start(dir.path(), &file_config(dir.path(), &out));
    let good: Vec<(Vec<u8>, bool)> = sfprocessor::sim::trace_datums(&trace)
        .unwrap()
        .map(|d| d.unwrap())
        .collect();
    let c = Client::connect(&agent.sock).unwrap();
    c.set_send_buffer(8 << 20).unwrap();
    // A process with an environment of ~1 MiB: one valid packet just under packet.maxsize.
    let big = SysFlow::Process(Box::new(Process {
        oid: Oid {
            create_ts: 1,
            hpid: 999_999,
        },
        exe: "/usr/bin/big".into(),
        env: (0..9_200)
            .map(|i| format!("VAR{i:05}={}", "x".repeat(100)))
            .collect(),
        ..Default::default()
    }));
    let big = v5(&big);
    assert!(
        big.len() > 1_000_000 && big.len() <= 1 << 20,
        "{}",
        big.len()
    );
    let mut bad = 0u64;
    for (i, (d, _)) in good.iter().enumerate() {
        c.send(d).unwrap();
        if i % 200 == 100 {
            c.send(b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff garbage")
                .unwrap();
            c.send(&d[..d.len() / 2]).unwrap(); // a datum cut short
            let mut longer = d.clone();
            longer.extend_from_slice(b"trailing");
            c.send(&longer).unwrap();
            bad += 3;
        }
        if i == 500 {
            c.send(&big).unwrap();
            c.send(&vec![0u8; 2 << 20]).unwrap(); // over packet.maxsize
        }
    }
    drop(c);
    agent.wait_packets(good.len() as u64 + bad + 2);
    agent.wait_for(
        "the records to be exported",
        Duration::from_secs(60),
        || events(&out) as usize >= want.len(),
    );
    let m = agent.get("/metrics").1;
    assert_eq!(
        sample(
            &m,
            "sfprocessor_socket_bad_packets_total{reason=\"decode\"}"
        ),
        bad as f64
    );
    assert_eq!(
        sample(
            &m,
            "sfprocessor_socket_bad_packets_total{reason=\"truncated\"}"
        ),
        1.0
    );
    assert_eq!(agent.get("/readyz").0, 200, "still serving");
    let got: Vec<String> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(got, want, "every good record, in order");
    assert!(agent.log().contains("socket packet skipped"));
    let mut agent = agent;
    // Bad packets are counted (above); a stop whose every record was delivered is exit 0.
    assert_eq!(agent.terminate(), 0);
}

#[test]
fn a_header_with_an_unknown_version_closes_only_that_connection() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.json");
    let mut agent = Agent::start(dir.path(), &file_config(dir.path(), &out));
    let h = |version| {
        v5(&SysFlow::Header(Box::new(Header {
            version,
            exporter: "test".into(),
            ip: String::new(),
            filename: String::new(),
        })))
    };
    let c = Client::connect(&agent.sock).unwrap();
    c.send(&h(7)).unwrap();
    agent.wait_for("the version error", Duration::from_secs(30), || {
        agent.metric("sfprocessor_socket_bad_packets_total{reason=\"version\"}") == 1.0
    });
    // The next collector is served.
    let trace = dir.path().join("t.sf");
    write_trace(&trace, 37, 500, "deflate", SchemaVersion::V5);
    let sent = finished(simulator(&agent.sock, &["-trace", trace.to_str().unwrap()]));
    agent.wait_packets(sent + 2);
    assert_eq!(
        agent.terminate(),
        0,
        "a refused connection is counted, not an undelivered record"
    );
    assert!(agent.log().contains("schema version 7"));
    assert_eq!(
        events(&out) as usize,
        expected_lines(dir.path(), &trace).len()
    );
}

#[test]
fn a_broken_policy_edit_under_live_load_keeps_the_old_rules() {
    let dir = tempfile::tempdir().unwrap();
    let pol = dir.path().join("policies");
    std::fs::create_dir(&pol).unwrap();
    let rules = pol.join("rules.yaml");
    std::fs::write(
        &rules,
        "- rule: exec\n  desc: every exec\n  condition: sf.type = PE and sf.opflags = EXEC\n  priority: low\n  actions: [podname]\n",
    )
    .unwrap();
    let out = dir.path().join("alerts.json");
    let cfg = write_file(
        dir.path(),
        "pipeline.json",
        &format!(
            r#"{{"pipeline":[
 {{"processor":"sysflowreader","handler":"flattener","in":"sysflow sysflowchan","out":"flat flattenerchan"}},
 {{"processor":"policyengine","in":"flat flattenerchan","out":"evt eventchan","policies":"{}","mode":"alert","monitor":"local","monitor.interval":"200ms","concurrency":"2"}},
 {{"processor":"exporter","in":"evt eventchan","export":"file","file.path":"{}"}}]}}"#,
            pol.display(),
            out.display()
        ),
    );
    let trace = dir.path().join("t.sf");
    write_trace(&trace, 38, 5_000, "deflate", SchemaVersion::V5);
    let mut agent = Agent::start(dir.path(), &cfg);
    let mut sim = simulator(
        &agent.sock,
        &[
            "-trace",
            trace.to_str().unwrap(),
            "-loop",
            "100",
            "-rate",
            "10000",
        ],
    );
    let matches = |a: &Agent| {
        a.metric("sfprocessor_rule_matches_total{node=\"policyengine[1]\",rule=\"exec\"}")
    };
    agent.wait_for("alerts", Duration::from_secs(60), || matches(&agent) > 0.0);
    // The unknown action is upstream's warning, counted by code; evaluation time is sampled.
    assert_eq!(
        agent.metric(
            "sfprocessor_policy_warnings{node=\"policyengine[1]\",code=\"LOAD_UNKNOWN_ACTION\"}"
        ),
        1.0
    );
    agent.wait_for("sampled evaluation time", Duration::from_secs(60), || {
        agent.metric(
            "sfprocessor_rule_evaluation_nanoseconds_total{node=\"policyengine[1]\",rule=\"exec\"}",
        ) > 0.0
    });
    // A broken edit: the old rule must stay in force.
    std::fs::write(&rules, "- rule: exec\n  condition: sf.type = = PE\n").unwrap();
    agent.wait_for("the reload to fail", Duration::from_secs(30), || {
        agent.metric("sfprocessor_policy_reloads_total{node=\"policyengine[1]\",result=\"failed\"}")
            >= 1.0
    });
    let at_failure = matches(&agent);
    agent.wait_for(
        "alerts after the broken edit",
        Duration::from_secs(60),
        || matches(&agent) > at_failure + 100.0,
    );
    assert_eq!(
        agent.metric("sfprocessor_policy_reloads_total{node=\"policyengine[1]\",result=\"ok\"}"),
        0.0
    );
    let _ = sim.kill();
    let _ = sim.wait();
    assert_eq!(agent.terminate(), 0, "{}", tail(&agent.log(), 20));
    assert!(agent.log().contains("the previous rules stay in force"));
    let alerts = std::fs::read_to_string(&out).unwrap();
    let odd: Vec<&str> = alerts
        .lines()
        .filter(|l| !l.contains("\"id\":\"exec\""))
        .take(3)
        .collect();
    assert!(odd.is_empty(), "only the old rule's alerts: {odd:?}");
}
