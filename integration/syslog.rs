//! The syslog exporter against a real rsyslog (Debian's `rsyslog` + `rsyslog-gnutls`, which
//! `.ci/run` installs): each test starts its own `rsyslogd` on free loopback ports (TCP, UDP,
//! TLS with a self-signed certificate made with openssl) writing every message to a file, and
//! stops it by PID. With `CI=true` a missing rsyslogd or openssl fails the test; elsewhere the
//! test says why it is skipped.

mod common;

use common::peers::free_tcp_port;
use common::rsyslog::{peers_available, Rsyslog};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use sfprocessor::sysflow::writer::SchemaVersion;

fn pipeline(dir: &Path, name: &str, exporter: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, common::exporter_pipeline(exporter)).unwrap();
    p
}

#[test]
fn tcp_tls_and_octet_counting_deliver_every_record_in_order() {
    if !peers_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let trace = common::upstream().join("sf-processor/resources/traces/mon.1531776742.sf");
    let expected = common::expected_lines(dir.path(), &trace);
    assert!(expected.len() > 10_000);
    let ca = dir.path().join("cert.pem");
    for (name, exporter) in [
        ("tcp", "\"syslog.proto\":\"tcp\",\"syslog.port\":\"{tcp}\"".to_string()),
        (
            "tcp octet-counting",
            "\"syslog.proto\":\"tcp\",\"syslog.port\":\"{tcp}\",\"syslog.framing\":\"octet-counting\"".to_string(),
        ),
        (
            "tls",
            format!(
                "\"syslog.proto\":\"tls\",\"syslog.port\":\"{{tls}}\",\"syslog.cafile\":\"{}\"",
                ca.display()
            ),
        ),
    ] {
        let mut rs = Rsyslog::new(dir.path());
        let _ = std::fs::remove_file(&rs.out);
        let exporter = exporter
            .replace("{tcp}", &rs.tcp.to_string())
            .replace("{tls}", &rs.tls.to_string());
        let cfg = pipeline(
            dir.path(),
            "syslog.json",
            &format!("\"export\":\"syslog\",\"syslog.host\":\"127.0.0.1\",{exporter}"),
        );
        let o = common::run_quiet(&cfg, &trace);
        assert!(o.status.success(), "{name}: {}", String::from_utf8_lossy(&o.stderr));
        let got = rs.bodies();
        assert_eq!(got.len(), expected.len(), "{name}: every record, once");
        assert!(got == expected, "{name}: same content, same order");
    }
}

#[test]
fn udp_delivers_alerts() {
    if !peers_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let trace = common::upstream().join("sf-processor/resources/traces/tcp.sf");
    let expected = common::expected_lines(dir.path(), &trace);
    let mut rs = Rsyslog::new(dir.path());
    let cfg = pipeline(
        dir.path(),
        "udp.json",
        &format!(
            "\"export\":\"syslog\",\"syslog.proto\":\"udp\",\"syslog.host\":\"127.0.0.1\",\"syslog.port\":\"{}\"",
            rs.udp
        ),
    );
    let o = common::run_quiet(&cfg, &trace);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // rsyslog may still be reading datagrams: wait until the file stops growing.
    let mut last = 0;
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(100));
        let n = std::fs::metadata(&rs.out).map(|m| m.len()).unwrap_or(0);
        if n == last && n > 0 {
            break;
        }
        last = n;
    }
    let got = rs.bodies();
    assert_eq!(
        common::counts(got.iter().map(String::as_str)),
        common::counts(expected.iter().map(String::as_str)),
        "UDP on loopback, few records: all arrive"
    );
}

#[test]
fn a_tls_server_with_an_untrusted_certificate_is_refused() {
    if !peers_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let rs = Rsyslog::new(dir.path());
    // No cafile: the self-signed certificate is not in the system roots.
    let cfg = pipeline(
        dir.path(),
        "tls.json",
        &format!(
            "\"export\":\"syslog\",\"syslog.proto\":\"tls\",\"syslog.host\":\"127.0.0.1\",\"syslog.port\":\"{}\"",
            rs.tls
        ),
    );
    let o = common::sfprocessor(&["-config", cfg.to_str().unwrap(), "-test"], &[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("healthcheck failed") && err.contains("TLS handshake"),
        "{err}"
    );
}

#[test]
fn test_flag_reports_a_target_that_is_down() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_tcp_port();
    let cfg = pipeline(
        dir.path(),
        "down.json",
        &format!(
            "\"export\":\"syslog\",\"syslog.proto\":\"tcp\",\"syslog.host\":\"127.0.0.1\",\"syslog.port\":\"{port}\""
        ),
    );
    let o = common::sfprocessor(&["-config", cfg.to_str().unwrap(), "-test"], &[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("syslog tcp://127.0.0.1:{port}")) && err.contains("connect"),
        "{err}"
    );
}

#[test]
fn a_server_down_at_start_and_restarted_mid_stream_loses_nothing() {
    if !peers_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("gen.sf");
    common::write_trace(&trace, 9, 60_000, "deflate", SchemaVersion::V5);
    let expected = common::expected_lines(dir.path(), &trace);
    let mut rs = Rsyslog::new(dir.path());
    // Down at start: the exporter retries until the server is there.
    rs.stop();
    let cfg = pipeline(
        dir.path(),
        "restart.json",
        &format!(
            "\"export\":\"syslog\",\"syslog.proto\":\"tcp\",\"syslog.host\":\"127.0.0.1\",\"syslog.port\":\"{}\",\"buffer\":\"200\"",
            rs.tcp
        ),
    );
    let child = Command::new(env!("CARGO_BIN_EXE_sfprocessor"))
        .args(["-config", cfg.to_str().unwrap(), "-log", "warn"])
        .arg(&trace)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    rs.start();
    // Restart twice while records flow (the file grows as rsyslog writes).
    for _ in 0..2 {
        let size = || std::fs::metadata(&rs.out).map(|m| m.len()).unwrap_or(0);
        let start = size();
        // Up to 12,000 polls of 5 ms for 4 MB more output.
        let mut polls = 0;
        while size() < start + 4_000_000 && polls < 12_000 {
            polls += 1;
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(
            size() >= start + 4_000_000,
            "no progress while the server ran"
        );
        rs.stop();
        std::thread::sleep(Duration::from_millis(300));
        rs.start();
    }
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("retrying"), "the outage was noticed: {err}");
    let got = rs.bodies();
    // Which of the sent records never arrived (positions in sending order).
    let mut have = common::counts(got.iter().map(String::as_str));
    let missing: Vec<usize> = expected
        .iter()
        .enumerate()
        .filter_map(|(i, l)| match have.get_mut(l.as_str()) {
            Some(n) if *n > 0 => {
                *n -= 1;
                None
            }
            _ => Some(i),
        })
        .collect();
    assert!(
        missing.is_empty(),
        "{} records lost (positions {:?}..={:?}; {} received, {} sent); exporter log:\n{err}",
        missing.len(),
        missing.first(),
        missing.last(),
        got.len(),
        expected.len()
    );
    assert!(got.len() >= expected.len());
    let _ = std::io::stderr().flush();
}
