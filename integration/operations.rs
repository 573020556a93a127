//! Operations hardening (issue 25): upstream's own unit and image command lines, upstream's
//! flags, the metrics endpoint under a slowloris, what the kernel queued at SIGTERM, the
//! socket's mode and ownership, exit codes, `-test`'s socket check.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::agent::{events, file_config, finished, signal, simulator, tail, Agent};
use common::{expected_lines, sfprocessor, write_file, write_trace};
use sfprocessor::seqpacket::Client;
use sfprocessor::sysflow::writer::SchemaVersion;

/// Waits for `ok`, up to `limit`.
fn wait(what: &str, limit: Duration, ok: impl Fn() -> bool) {
    let t = Instant::now();
    while !ok() {
        assert!(t.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A child process killed when the test ends, whatever happens (a failed assertion must not
/// leave an agent running).
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Sends SIGTERM and waits for the exit code.
fn stop(child: &mut std::process::Child) -> i32 {
    signal(child.id(), "-TERM");
    let t = Instant::now();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st.code().unwrap_or(-1);
        }
        if t.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("no exit after SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs upstream's command line `line` (with `${VAR}` references, as systemd and the image's
/// shell expand them) through `sh`, streams a trace to its socket and checks every record was
/// exported.
fn upstream_line_runs(line: &str, env: &[(&str, String)], sock: &Path, out: &Path, dir: &Path) {
    let trace = dir.join("t.sf");
    write_trace(&trace, 71, 3_000, "deflate", SchemaVersion::V5);
    // In a directory of its own: it writes its own `file.json`.
    let reference = dir.join("reference");
    std::fs::create_dir_all(&reference).unwrap();
    let want = expected_lines(&reference, &trace);
    let _ = std::fs::remove_file(out);
    let log = dir.join("upstream-line.log");
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!("exec {line}"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = Reaped(cmd.spawn().unwrap());
    wait("the socket", Duration::from_secs(30), || {
        Client::connect(sock).is_ok()
    });
    finished(simulator(sock, &["-trace", trace.to_str().unwrap()]));
    wait("the records", Duration::from_secs(60), || {
        events(out) as usize >= want.len()
    });
    assert_eq!(
        stop(&mut child.0),
        0,
        "{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    assert_eq!(events(out) as usize, want.len());
}

#[test]
fn upstreams_systemd_unit_and_image_command_lines_start_and_process_records() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.json");
    let cfg = file_config(dir.path(), &out);
    let bin = common::sfprocessor_bin();
    let bin = bin.to_str().unwrap();
    // scripts/service/systemd/sysflow-processor.service of sf-processor 0.7.0, ExecStart.
    let unit = "/usr/bin/sfprocessor -log=error -driver=socket -config=${CONFIG_PATH} -plugdir=${PLUGIN_DIR} ${SOCKET}";
    let sock = dir.path().join("run/sysflow.sock");
    upstream_line_runs(
        &unit.replace("/usr/bin/sfprocessor", bin),
        &[
            ("CONFIG_PATH", cfg.display().to_string()),
            ("PLUGIN_DIR", "/usr/local/sysflow/resources/plugins".into()),
            ("SOCKET", sock.display().to_string()),
        ],
        &sock,
        &out,
        dir.path(),
    );
    // The image's CMD (Dockerfile of sf-processor 0.7.0), with its ENV defaults.
    let image = "/usr/local/sysflow/bin/sfprocessor ${LOG_LEVEL:+-log} ${LOG_LEVEL} ${DRIVER:+-driver} ${DRIVER} ${DRIVER_DIR:+-driverdir} ${DRIVER_DIR} ${PLUGIN_DIR:+-plugdir} ${PLUGIN_DIR} ${CONFIG_PATH:+-config} ${CONFIG_PATH} ${INPUT_PATH}";
    let sock = dir.path().join("sock/sysflow.sock");
    upstream_line_runs(
        &image.replace("/usr/local/sysflow/bin/sfprocessor", bin),
        &[
            ("LOG_LEVEL", "info".into()),
            ("DRIVER", "socket".into()),
            ("DRIVER_DIR", "/usr/local/sysflow/resources/drivers".into()),
            ("PLUGIN_DIR", "/usr/local/sysflow/resources/plugins".into()),
            ("CONFIG_PATH", cfg.display().to_string()),
            ("INPUT_PATH", sock.display().to_string()),
        ],
        &sock,
        &out,
        dir.path(),
    );
}

#[test]
fn a_plugin_directory_with_plugins_and_traceprofile_are_warned() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.json");
    let cfg = file_config(dir.path(), &out);
    let plugins = dir.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    let empty = dir.path().join("drivers");
    std::fs::create_dir(&empty).unwrap();
    let o = sfprocessor(
        &[
            "-test",
            "-config",
            cfg.to_str().unwrap(),
            "-plugdir",
            plugins.to_str().unwrap(),
            "-driverdir",
            empty.to_str().unwrap(),
        ],
        &[],
    );
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success());
    assert!(!text.contains("Go plugins"), "empty directories: {text}");
    std::fs::write(plugins.join("exporter.so"), b"\x7fELF").unwrap();
    let o = sfprocessor(
        &[
            "-test",
            "-config",
            cfg.to_str().unwrap(),
            "-plugdir",
            plugins.to_str().unwrap(),
            "-traceprofile",
            "t.out",
        ],
        &[],
    );
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{text}");
    assert!(
        text.contains("-plugdir") && text.contains("exporter.so") && text.contains("not loaded"),
        "{text}"
    );
    assert!(text.contains("-traceprofile t.out"), "{text}");
}

#[test]
fn version_is_upstreams_line() {
    let o = sfprocessor(&["-version"], &[]);
    assert!(o.status.success());
    let text = String::from_utf8_lossy(&o.stdout);
    let line = text.trim_end();
    assert_eq!(line.lines().count(), 1, "{text}");
    let rest = line.strip_prefix("Version: ").expect(line);
    let (version, rest) = rest.split_once(", ").expect(line);
    let (semver, build) = version.split_once('+').expect(version);
    assert_eq!(semver, env!("CARGO_PKG_VERSION"));
    assert!(!build.is_empty());
    assert_eq!(
        rest,
        "Avro Schema Version: 5, Export Schema Version: 5 (JSON), 8.2 (ECS)"
    );
}

#[test]
fn profiles_and_the_perf_log_are_written_at_the_end_of_a_file_run_and_after_sigterm() {
    use pprof::protos::Message;
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("t.sf");
    write_trace(&trace, 72, 100_000, "deflate", SchemaVersion::V5);
    let out = dir.path().join("out.json");
    let cfg = file_config(dir.path(), &out);
    let cpu = dir.path().join("cpu.pb.gz");
    let mem = dir.path().join("mem.txt");
    let o = sfprocessor(
        &[
            "-config",
            cfg.to_str().unwrap(),
            "-cpuprofile",
            cpu.to_str().unwrap(),
            "-memprofile",
            mem.to_str().unwrap(),
            "-perflog=100ms",
            "-log",
            "error",
            trace.to_str().unwrap(),
        ],
        &[],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let read_profile = |p: &Path| {
        let mut raw = Vec::new();
        flate2::read::GzDecoder::new(std::fs::File::open(p).unwrap())
            .read_to_end(&mut raw)
            .expect("gzip");
        pprof::protos::Profile::decode(raw.as_slice()).expect("a pprof profile")
    };
    let prof = read_profile(&cpu);
    let samples: i64 = prof.sample.iter().map(|s| s.value[0]).sum();
    assert!(samples > 0, "the run was sampled");
    assert!(
        prof.string_table.iter().any(|s| s.contains("sfprocessor")),
        "symbolised frames"
    );
    let m = std::fs::read_to_string(&mem).unwrap();
    assert!(
        m.contains("heap_in_use_bytes ") && m.contains("peak_rss_bytes "),
        "{m}"
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.lines()
            .any(|l| l.starts_with("[Perf] ") && l.contains(" rate (records/sec): ")),
        "perf log lines on stderr whatever -log says: {err}"
    );
    // The live agent stopped by SIGTERM writes its profile too.
    let cpu2 = dir.path().join("cpu2.pb.gz");
    let mut agent = Agent::start_with(
        dir.path(),
        &cfg,
        &["-cpuprofile", cpu2.to_str().unwrap()],
        |_| {},
    );
    let sent = finished(simulator(&agent.sock, &["-trace", trace.to_str().unwrap()]));
    agent.wait_packets(sent + 1);
    assert_eq!(agent.terminate(), 0, "{}", tail(&agent.log(), 20));
    let prof = read_profile(&cpu2);
    assert!(prof.sample.iter().map(|s| s.value[0]).sum::<i64>() > 0);
}

#[test]
fn log_health_shows_health_messages_and_errors_only() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.json");
    let cfg = file_config(dir.path(), &out);
    let trace = dir.path().join("t.sf");
    write_trace(&trace, 73, 500, "deflate", SchemaVersion::V5);
    let sock = dir.path().join("h.sock");
    let log = dir.path().join("health.log");
    let mut child = Reaped(
        Command::new(common::sfprocessor_bin())
            .args(["-log", "health", "-driver", "socket", "-config"])
            .arg(&cfg)
            .arg(&sock)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    wait("the socket", Duration::from_secs(30), || {
        Client::connect(&sock).is_ok()
    });
    finished(simulator(&sock, &["-trace", trace.to_str().unwrap()]));
    wait("the records", Duration::from_secs(30), || events(&out) > 0);
    assert_eq!(stop(&mut child.0), 0);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("accepted the collector's stream"), "{text}");
    assert!(
        !text.contains("node summary"),
        "info lines are not shown: {text}"
    );
}

#[test]
fn a_slowloris_on_the_metrics_port_starves_neither_the_collector_nor_healthz() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("t.sf");
    write_trace(&trace, 74, 4_000, "deflate", SchemaVersion::V5);
    let per_pass = expected_lines(dir.path(), &trace).len() as u64;
    let out = dir.path().join("out.json");
    // 256 descriptors at most, soft and hard: the agent cannot raise them.
    let agent = Agent::start_with(dir.path(), &file_config(dir.path(), &out), &[], |c| {
        // SAFETY: setrlimit in the child before exec; no allocation.
        unsafe {
            c.pre_exec(|| {
                let l = libc::rlimit {
                    rlim_cur: 256,
                    rlim_max: 256,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &l) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    });
    // More half-open connections than the agent has descriptors: each sends half a header
    // and waits.
    let mut held = Vec::new();
    for _ in 0..400 {
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", agent.port)) {
            let _ = s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ");
            held.push(s);
        }
    }
    assert!(held.len() > 256, "{} connections held", held.len());
    // The collector connects (three times: it reconnects between passes) and is served.
    let t = Instant::now();
    let sim = simulator(
        &agent.sock,
        &["-trace", trace.to_str().unwrap(), "-loop", "3"],
    );
    // /healthz answers while the slowloris holds its connections.
    for _ in 0..5 {
        let t0 = Instant::now();
        assert_eq!(agent.get("/healthz").0, 200, "{}", tail(&agent.log(), 20));
        assert!(
            t0.elapsed() < Duration::from_secs(3),
            "healthz took {:?}",
            t0.elapsed()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Bounded: on a starved agent the collector would wait for ever to connect.
    let mut sim = sim;
    let served = Instant::now();
    while sim.try_wait().unwrap().is_none() {
        if served.elapsed() > Duration::from_secs(60) {
            let _ = sim.kill();
            panic!("the collector was not served: {}", tail(&agent.log(), 20));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let sent = finished(sim);
    agent.wait_for("every record", Duration::from_secs(60), || {
        events(&out) >= per_pass * 3
    });
    assert!(
        t.elapsed() < Duration::from_secs(40),
        "the collector was served at once"
    );
    assert_eq!(events(&out), per_pass * 3, "nothing lost ({sent} sent)");
    drop(held);
    let mut agent = agent;
    assert_eq!(agent.terminate(), 0, "{}", tail(&agent.log(), 20));
}

#[test]
fn sigterm_right_after_the_collector_sent_delivers_what_the_kernel_queued() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("t.sf");
    write_trace(&trace, 75, 20_000, "deflate", SchemaVersion::V5);
    let want = expected_lines(dir.path(), &trace);
    let out = dir.path().join("out.json");
    let mut agent = Agent::start(dir.path(), &file_config(dir.path(), &out));
    let packets: Vec<Vec<u8>> = sfprocessor::sim::trace_datums(&trace)
        .unwrap()
        .map(|d| d.unwrap().0)
        .collect();
    let c = Client::connect(&agent.sock).unwrap();
    c.set_send_buffer(32 << 20).unwrap();
    let refs: Vec<&[u8]> = packets.iter().map(Vec::as_slice).collect();
    let (n, r) = c.send_many(&refs);
    r.unwrap();
    assert_eq!(n, packets.len());
    // Every packet is in the kernel's queue (or read): stop now.
    assert_eq!(agent.terminate(), 0, "{}", tail(&agent.log(), 20));
    assert_eq!(
        events(&out) as usize,
        want.len(),
        "every record the collector sent before SIGTERM: {}",
        tail(&agent.log(), 20)
    );
    drop(c);
}

#[test]
fn the_socket_has_its_mode_whatever_the_umask_and_only_its_own_file_is_removed() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.json");
    let cfg = file_config(dir.path(), &out);
    let mut first = Agent::start_with(dir.path(), &cfg, &[], |c| {
        // SAFETY: umask in the child before exec.
        unsafe {
            c.pre_exec(|| {
                libc::umask(0);
                Ok(())
            });
        }
    });
    let mode = std::fs::metadata(&first.sock).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o660, "not the umask's 0777");
    // The path is taken over by another listener (after the first one's file was removed).
    std::fs::remove_file(&first.sock).unwrap();
    let newer = sfprocessor::seqpacket::Listener::bind(&first.sock, 4).unwrap();
    assert_eq!(first.terminate(), 0);
    assert!(
        first.sock.exists(),
        "the newer listener's socket is left alone"
    );
    assert!(Client::connect(&first.sock).is_ok());
    drop(newer);
    // A mode in the driver's entry; a world-writable one is refused.
    let cfg_mode = |mode: &str| {
        write_file(
            dir.path(),
            "mode.json",
            &common::file_pipeline(&out).replacen(
                "{\"pipeline\":[",
                &format!(
                    "{{\"drivers\":[{{\"driver\":\"socket\",\"mode\":\"{mode}\"}}],\"pipeline\":["
                ),
                1,
            ),
        )
    };
    let third = dir.path().join("third");
    std::fs::create_dir(&third).unwrap();
    let mut a = Agent::start_with(&third, &cfg_mode("0600"), &[], |_| {});
    let mode = std::fs::metadata(&a.sock).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(a.terminate(), 0);
    let o = sfprocessor(
        &["-test", "-config", cfg_mode("0666").to_str().unwrap()],
        &[],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("every local user"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn a_busy_metrics_port_is_exit_4_and_test_checks_the_sockets_directory() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.json");
    let cfg = file_config(dir.path(), &out);
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let o = sfprocessor(
        &[
            "-config",
            cfg.to_str().unwrap(),
            "-driver",
            "socket",
            "-metrics",
            &format!("127.0.0.1:{port}"),
            dir.path().join("s.sock").to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(
        o.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // -test: a socket under a regular file cannot be created.
    let file = dir.path().join("plain");
    std::fs::write(&file, b"x").unwrap();
    let o = sfprocessor(
        &[
            "-test",
            "-config",
            cfg.to_str().unwrap(),
            "-driver",
            "socket",
            file.join("s.sock").to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("not a directory"), "{err}");
    let o = sfprocessor(
        &[
            "-test",
            "-config",
            cfg.to_str().unwrap(),
            "-driver",
            "socket",
            dir.path().join("new/dir/s.sock").to_str().unwrap(),
        ],
        &[],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// How long each outage lasts: the issue's 20 s (60 s for the syslog stall) by hand, less
/// under CI (still longer than every timeout that used to give up on the target).
fn outage(full: u64) -> Duration {
    if common::peers::ci() {
        Duration::from_secs((full / 4).max(12))
    } else {
        Duration::from_secs(full)
    }
}

/// Time until `/readyz` answers `want` (up to `limit`), or a failure naming `what`.
fn ready_within(agent: &Agent, want: u16, limit: Duration, what: &str) -> Duration {
    let t = Instant::now();
    loop {
        let (code, body) = agent.get("/readyz");
        if code == want {
            return t.elapsed();
        }
        assert!(
            t.elapsed() < limit,
            "{what}: /readyz still {code} after {limit:?}: {body}\n{}",
            tail(&agent.log(), 20)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A syslog TCP exporter to `port`, small batches, a fast retry ladder.
fn syslog_cfg(dir: &Path, port: u16) -> std::path::PathBuf {
    write_file(
        dir,
        "syslog.json",
        &common::exporter_pipeline(&format!(
            r#""export":"syslog","syslog.proto":"tcp","syslog.host":"127.0.0.1","syslog.port":"{port}","buffer":"200","retry.backoff":"50ms","retry.backoff.max":"1s""#
        )),
    )
}

#[test]
fn syslog_readiness_follows_a_frozen_and_a_stopped_server() {
    if !common::rsyslog::peers_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("t.sf");
    write_trace(&trace, 76, 4_000, "deflate", SchemaVersion::V5);
    let rs_dir = dir.path().join("rs");
    std::fs::create_dir(&rs_dir).unwrap();
    let mut rs = common::rsyslog::Rsyslog::new(&rs_dir);
    let mut agent = Agent::start(dir.path(), &syslog_cfg(dir.path(), rs.tcp));
    let mut sim = simulator(
        &agent.sock,
        &[
            "-trace",
            trace.to_str().unwrap(),
            "-loop",
            "1000",
            "-rate",
            "10000",
        ],
    );
    agent.wait_packets(5_000);
    ready_within(&agent, 200, Duration::from_secs(5), "streaming");
    // Frozen (SIGSTOP): writes stop progressing.
    rs.pause();
    let down = ready_within(&agent, 503, Duration::from_secs(5), "rsyslog frozen");
    std::thread::sleep(Duration::from_secs(6).saturating_sub(down));
    assert_eq!(
        agent.metric("sfprocessor_exporter_up{node=\"exporter[2]\",exporter=\"syslog\"}"),
        0.0
    );
    rs.resume();
    ready_within(&agent, 200, Duration::from_secs(5), "rsyslog resumed");
    agent.wait_packets(agent.metric("sfprocessor_socket_packets_total") as u64 + 5_000);
    // Stopped: connections refused.
    rs.stop();
    ready_within(&agent, 503, Duration::from_secs(5), "rsyslog stopped");
    std::thread::sleep(Duration::from_secs(6));
    rs.start();
    ready_within(&agent, 200, Duration::from_secs(5), "rsyslog restarted");
    let _ = sim.kill();
    let _ = sim.wait();
    assert_eq!(agent.terminate(), 0, "{}", tail(&agent.log(), 20));
}

#[test]
fn a_stalled_syslog_server_receives_no_cut_record_and_at_most_a_batch_twice() {
    if !common::rsyslog::peers_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("t.sf");
    write_trace(&trace, 77, 4_000, "deflate", SchemaVersion::V5);
    let reference = dir.path().join("reference");
    std::fs::create_dir(&reference).unwrap();
    let expected = expected_lines(&reference, &trace);
    let rs_dir = dir.path().join("rs");
    std::fs::create_dir(&rs_dir).unwrap();
    let mut rs = common::rsyslog::Rsyslog::new(&rs_dir);
    let mut agent = Agent::start(dir.path(), &syslog_cfg(dir.path(), rs.tcp));
    let passes = 40u64;
    let sim = simulator(
        &agent.sock,
        &[
            "-trace",
            trace.to_str().unwrap(),
            "-loop",
            &passes.to_string(),
            "-rate",
            "10000",
        ],
    );
    agent.wait_packets(5_000);
    rs.pause();
    std::thread::sleep(outage(60));
    rs.resume();
    let sent = finished(sim);
    agent.wait_packets(sent + passes);
    assert_eq!(agent.terminate(), 0, "{}", tail(&agent.log(), 20));
    let got = rs.bodies();
    for (i, b) in got.iter().enumerate() {
        assert!(
            serde_json::from_str::<serde_json::Value>(b).is_ok(),
            "message {i} is not whole JSON: {}",
            &b[..b.len().min(200)]
        );
    }
    let have = common::counts(got.iter().map(String::as_str));
    let missing = expected
        .iter()
        .filter(|l| have.get(l.as_str()).copied().unwrap_or(0) < passes as usize)
        .count();
    assert_eq!(missing, 0, "every record of every pass arrived");
    let extra = got.len() - expected.len() * passes as usize;
    assert!(
        extra <= 200,
        "{extra} duplicates: at most one batch (200) for the one outage"
    );
}

#[test]
fn kafka_readiness_follows_the_broker_and_nothing_is_lost_across_stop_kill_and_freeze() {
    let dir = tempfile::tempdir().unwrap();
    let Some(mut k) = common::peers::tansu_durable(dir.path()) else {
        return;
    };
    let port = k.port;
    let trace = dir.path().join("t.sf");
    write_trace(&trace, 78, 4_000, "deflate", SchemaVersion::V5);
    let reference = dir.path().join("reference");
    std::fs::create_dir(&reference).unwrap();
    let expected = expected_lines(&reference, &trace);
    common::kafka::create_topic(port, "ops", 2);
    let cfg = write_file(
        dir.path(),
        "kafka.json",
        &common::exporter_pipeline(&format!(
            r#""export":"kafka","kafka.config":{{"bootstrap.servers":"127.0.0.1:{port}"}},"kafka.topic":"ops","buffer":"500","retry.backoff.max":"1s""#
        )),
    );
    let mut agent = Agent::start(dir.path(), &cfg);
    let passes = 20u64;
    let sim = simulator(
        &agent.sock,
        &[
            "-trace",
            trace.to_str().unwrap(),
            "-loop",
            &passes.to_string(),
            "-rate",
            "2000",
        ],
    );
    agent.wait_packets(2_000);
    ready_within(&agent, 200, Duration::from_secs(10), "streaming");
    let length = outage(20);
    // A stop (connections closed, new ones refused) and a crash (connections reset, new ones
    // refused) are played by the forwarder in front of the broker: this broker's own kill -9
    // — and, now and then, its SIGTERM — loses messages it had acknowledged (see
    // `peers::DurableTansu`), which would hide what the agent loses. The freeze is the
    // broker's own SIGSTOP.
    for kind in ["stop", "crash", "SIGSTOP"] {
        match kind {
            "stop" => k.proxy.cut(),
            "crash" => k.proxy.crash(),
            _ => k.broker.pause(),
        }
        let down = ready_within(&agent, 503, Duration::from_secs(5), kind);
        std::thread::sleep(length.saturating_sub(down));
        match kind {
            "SIGSTOP" => k.broker.resume(),
            _ => k.proxy.restore(),
        }
        ready_within(
            &agent,
            200,
            Duration::from_secs(5),
            &format!("after {kind}"),
        );
    }
    let sent = finished(sim);
    agent.wait_packets(sent + passes);
    assert_eq!(agent.terminate(), 0, "{}", tail(&agent.log(), 20));
    let want = expected.len() * passes as usize;
    let got = common::kafka::consume(port, "ops", want);
    let have = common::counts(got.iter().map(|m| m.payload.as_str()));
    let missing: usize = expected
        .iter()
        .map(|l| (passes as usize).saturating_sub(have.get(l.as_str()).copied().unwrap_or(0)))
        .sum();
    assert_eq!(
        missing,
        0,
        "records lost across the outages ({} read, {want} sent, duplicates {})",
        got.len(),
        got.len() + missing - want
    );
}

/// Peak resident memory of process `pid`, in bytes.
fn peak_rss(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

#[test]
fn megabyte_records_cannot_amplify_memory() {
    use sfprocessor::sysflow::writer::{encode_datum, schema};
    use sfprocessor::sysflow::{Header, Oid, Process, SysFlow};
    let v5 = |r: &SysFlow| {
        encode_datum(&schema(SchemaVersion::V5).unwrap(), r, SchemaVersion::V5).unwrap()
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.json");
    // Tables bounded at 32 MiB for the second half of the test.
    let cfg = write_file(
        dir.path(),
        "mem.json",
        &common::file_pipeline(&out).replacen(
            r#""handler":"flattener","#,
            r#""handler":"flattener","cache.maxbytes":"32MiB","#,
            1,
        ),
    );
    let agent = Agent::start(dir.path(), &cfg);
    let c = Client::connect(&agent.sock).unwrap();
    c.set_send_buffer(8 << 20).unwrap();
    c.send(&v5(&SysFlow::Header(Box::new(Header {
        version: 5,
        exporter: "t".into(),
        ip: String::new(),
        filename: String::new(),
    }))))
    .unwrap();
    let proc_with = |i: i64, env: Vec<String>| {
        SysFlow::Process(Box::new(Process {
            oid: Oid {
                create_ts: i,
                hpid: i,
            },
            exe: "/bin/x".into(),
            env,
            ..Default::default()
        }))
    };
    // 1. 20 packets of a million empty strings each: 1 MB on the wire, 24 MB once decoded.
    let amplifier = v5(&proc_with(1, vec![String::new(); 1_000_000]));
    assert!(amplifier.len() < 1 << 20, "{}", amplifier.len());
    for _ in 0..20 {
        c.send(&amplifier).unwrap();
    }
    agent.wait_packets(21);
    agent.wait_for("the refusals", Duration::from_secs(30), || {
        agent.metric("sfprocessor_socket_bad_packets_total{reason=\"oversize\"}") == 20.0
    });
    let after_amplifier = peak_rss(agent.pid());
    // 2. 200 ordinary but large processes (1 MB of environment each): the tables stay
    // within cache.maxbytes by evicting the oldest.
    let big_env: Vec<String> = (0..9_000)
        .map(|i| format!("VAR{i:05}={}", "x".repeat(100)))
        .collect();
    for i in 0..200 {
        c.send(&v5(&proc_with(100 + i, big_env.clone()))).unwrap();
    }
    agent.wait_packets(221);
    agent.wait_for("the tables to settle", Duration::from_secs(60), || {
        agent.metric("sfprocessor_entity_evictions_total") > 0.0
    });
    let bytes = agent.metric("sfprocessor_entity_bytes");
    assert!(bytes > 0.0 && bytes <= (32 << 20) as f64, "{bytes}");
    let after_big = peak_rss(agent.pid());
    drop(c);
    let mut agent = agent;
    assert_eq!(agent.terminate(), 0, "{}", tail(&agent.log(), 20));
    eprintln!(
        "peak RSS: {} MiB after the amplifier, {} MiB after the large processes (tables {} MiB)",
        after_amplifier >> 20,
        after_big >> 20,
        bytes as u64 >> 20
    );
    // The documented bound (docs/operations.md): cache.maxbytes plus a fixed 96 MiB for the
    // program, one batch of packets and the receive slots.
    let bound = (32u64 << 20) + (96 << 20);
    assert!(
        after_amplifier < 96 << 20,
        "peak RSS {} MiB after the amplifier",
        after_amplifier >> 20
    );
    assert!(
        after_big < bound,
        "peak RSS {} MiB with 200 MB of processes",
        after_big >> 20
    );
}

#[test]
fn a_collector_reconnecting_in_a_loop_does_not_flood_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.json");
    let mut agent = Agent::start(dir.path(), &file_config(dir.path(), &out));
    for _ in 0..200 {
        let c = Client::connect(&agent.sock).unwrap();
        drop(c);
    }
    agent.wait_for("the connections", Duration::from_secs(30), || {
        agent.metric("sfprocessor_socket_connections_total") >= 200.0
    });
    assert_eq!(agent.terminate(), 0);
    let log = agent.log();
    let lines = log
        .lines()
        .filter(|l| l.contains("collector connected") || l.contains("collector disconnected"))
        .count();
    assert!(lines <= 25, "{lines} connection lines for 200 connections");
    assert!(
        log.contains("suppressed="),
        "the count of what was left out"
    );
}
