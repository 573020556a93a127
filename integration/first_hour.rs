//! What a new user meets first (issue 26): a typo in a key named with its fix (and refused
//! under `-strict`), the agent's own health probe, the collector simulator waiting for a
//! socket out loud, the agent under the unit's user, group and umask, and the output file
//! rotated under load.

mod common;

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::agent::{events, file_config, simulator, tail, Agent};
use common::{expected_lines, sfprocessor, write_file, write_trace};
use sfprocessor::seqpacket::Client;
use sfprocessor::sysflow::writer::SchemaVersion;

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn a_typo_in_a_key_is_named_with_its_fix_and_strict_refuses_it() {
    let dir = tempfile::tempdir().unwrap();
    let pol = write_file(
        dir.path(),
        "p.yaml",
        "- rule: r\n  desc: d\n  condition: sf.type = PE\n  priority: low\n",
    );
    let cfg = write_file(
        dir.path(),
        "typo.json",
        &format!(
            r#"{{"pipeline":[
 {{"processor":"sysflowreader","handler":"flattener","in":"sysflow sysflowchan","out":"flat flattenerchan"}},
 {{"processor":"policyengine","in":"flat flattenerchan","out":"evt eventchan","polices":"{}","mode":"enrich"}},
 {{"processor":"exporter","in":"evt eventchan","export":"null","fromat":"ecs"}}]}}"#,
            pol.display()
        ),
    );
    // Upstream's meaning by default: warned, ignored, exit 0 — but named with the fix.
    let o = sfprocessor(&["-test", "-config", cfg.to_str().unwrap()], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains(
            "key `polices` is not used by this build and is ignored (did you mean `policies`?)"
        ),
        "{out}"
    );
    assert!(out.contains("(did you mean `format`?)"), "{out}");
    let lines: Vec<&str> = out.lines().collect();
    let last = lines.last().copied().unwrap_or_default();
    assert!(
        last.starts_with("2 warning(s)"),
        "the last line counts: {out}"
    );
    let before = lines[lines.len() - 2];
    assert!(
        before.contains("2 unknown key(s) look like a typo")
            && before.contains("`polices` (did you mean `policies`?)"),
        "said first: {out}"
    );
    // -strict: a configuration error, exit 2.
    let o = sfprocessor(&["-test", "-strict", "-config", cfg.to_str().unwrap()], &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stdout(&o));
    let e = stderr(&o);
    assert!(
        e.contains("key `polices`: unknown key (did you mean `policies`?)"),
        "{e}"
    );
    // The stage's own `strict` does the same for its keys.
    let strict = write_file(
        dir.path(),
        "strict.json",
        &std::fs::read_to_string(&cfg)
            .unwrap()
            .replace(r#""mode":"enrich""#, r#""mode":"enrich","strict":"true""#),
    );
    let o = sfprocessor(&["-test", "-config", strict.to_str().unwrap()], &[]);
    assert_eq!(o.status.code(), Some(2));
    // A stray top-level key too.
    let top = write_file(
        dir.path(),
        "top.json",
        &std::fs::read_to_string(&cfg).unwrap().replacen(
            "{\"pipeline\"",
            "{\"driver\":[],\"pipeline\"",
            1,
        ),
    );
    let o = sfprocessor(&["-test", "-config", top.to_str().unwrap()], &[]);
    assert!(
        stdout(&o).contains("did you mean `drivers`?"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn the_health_probe_needs_no_curl() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.json");
    let mut agent = Agent::start(dir.path(), &file_config(dir.path(), &out));
    let url = format!("http://127.0.0.1:{}/readyz", agent.port);
    let o = sfprocessor(&["-health", &url], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = sfprocessor(
        &["-health", &format!("http://127.0.0.1:{}/nope", agent.port)],
        &[],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("HTTP 404"), "{}", stderr(&o));
    assert_eq!(agent.terminate(), 0);
    let o = sfprocessor(&["-health", &url], &[]);
    assert_eq!(o.status.code(), Some(1), "nobody listens any more");
    let o = sfprocessor(&["-health", "https://x/"], &[]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn the_collector_simulator_says_what_it_waits_for() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("nobody-here.sock");
    let mut sim = Command::new(env!("CARGO_BIN_EXE_sfgen"))
        .arg("-socket")
        .arg(&sock)
        .args(["-records", "10"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    let _ = sim.kill();
    let o = sim.wait_with_output().unwrap();
    let e = stderr(&o);
    assert!(
        e.contains("waiting for an agent to listen on") && e.contains("nobody-here.sock"),
        "{e}"
    );
}

/// `KEY=value` of the unit file.
fn unit_value(unit: &str, key: &str) -> Option<String> {
    unit.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .map(str::to_string)
}

#[test]
fn the_agent_runs_as_the_units_unprivileged_user_and_only_its_group_reaches_the_socket() {
    // Root is needed to switch users; CI runs as root.
    // SAFETY: getuid has no preconditions.
    if unsafe { libc::getuid() } != 0 {
        assert!(!common::peers::ci(), "CI=true: this test needs root");
        eprintln!("skipped: needs root to run the agent as another user");
        return;
    }
    let unit = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("config/systemd/sfprocessor.service"),
    )
    .unwrap();
    assert_eq!(unit_value(&unit, "User").as_deref(), Some("sysflow"));
    let umask = u32::from_str_radix(&unit_value(&unit, "UMask").expect("UMask"), 8).unwrap();
    // The unit's user does not exist on a test machine: `nobody`/`nogroup` stand in for it
    // (an unprivileged system user and its own group), with the unit's umask.
    let (uid, gid) = (65534u32, 65534u32);
    let dir = tempfile::tempdir().unwrap();
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let base = dir.path().join("run");
    std::fs::create_dir(&base).unwrap();
    std::os::unix::fs::chown(&base, Some(uid), Some(gid)).unwrap();
    let trace = dir.path().join("t.sf");
    write_trace(&trace, 91, 2_000, "deflate", SchemaVersion::V5);
    let reference = dir.path().join("reference");
    std::fs::create_dir(&reference).unwrap();
    let want = expected_lines(&reference, &trace).len() as u64;
    let out = base.join("out.json");
    let cfg = file_config(dir.path(), &out);
    let mut agent = Agent::start_with(&base, &cfg, &[], move |c| {
        // SAFETY: plain system calls in the child before exec.
        unsafe {
            c.pre_exec(move || {
                libc::umask(umask as libc::mode_t);
                if libc::setgroups(0, std::ptr::null()) != 0
                    || libc::setgid(gid) != 0
                    || libc::setuid(uid) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    });
    let m = std::fs::metadata(&agent.sock).unwrap();
    assert_eq!(m.permissions().mode() & 0o777, 0o660);
    assert_eq!((m.uid(), m.gid()), (uid, gid));
    // Another unprivileged user, not in the group, cannot connect (inject events).
    let sock = agent.sock.clone();
    let mut stranger = Command::new(env!("CARGO_BIN_EXE_sfgen"));
    stranger
        .arg("-socket")
        .arg(&sock)
        .args(["-records", "5", "-no-reconnect"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // SAFETY: plain system calls in the child before exec.
    unsafe {
        stranger.pre_exec(|| {
            if libc::setgroups(0, std::ptr::null()) != 0
                || libc::setgid(65533) != 0
                || libc::setuid(65533) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let o = stranger.output().unwrap();
    assert!(!o.status.success(), "a stranger connected");
    assert!(stderr(&o).contains("ermission denied"), "{}", stderr(&o));
    // The collector (root here, or a member of the group) streams; the agent delivers.
    let c = Client::connect(&sock).expect("the collector connects");
    drop(c);
    let sim = simulator(&sock, &["-trace", trace.to_str().unwrap()]);
    common::agent::finished(sim);
    agent.wait_for("the records", Duration::from_secs(60), || {
        events(&out) >= want
    });
    assert_eq!(agent.terminate(), 0, "{}", tail(&agent.log(), 20));
    let m = std::fs::metadata(&out).unwrap();
    assert_eq!(m.uid(), uid, "written by the unprivileged user");
    assert_eq!(
        m.permissions().mode() & 0o777,
        0o666 & !umask,
        "created under the unit's umask"
    );
}

#[test]
fn rotating_the_output_file_under_load_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("t.sf");
    write_trace(&trace, 92, 4_000, "deflate", SchemaVersion::V5);
    let reference = dir.path().join("reference");
    std::fs::create_dir(&reference).unwrap();
    let per_pass = expected_lines(&reference, &trace).len();
    let out = dir.path().join("events.json");
    let mut agent = Agent::start(dir.path(), &file_config(dir.path(), &out));
    let passes = 30;
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
    agent.wait_for("records in the file", Duration::from_secs(60), || {
        events(&out) > 2_000
    });
    // What logrotate does with `create`: rename, then postrotate's SIGHUP.
    let rotated = dir.path().join("events.json.1");
    std::fs::rename(&out, &rotated).unwrap();
    common::agent::signal(agent.pid(), "-HUP");
    agent.wait_for("the reopen", Duration::from_secs(30), || {
        agent.log().contains("output file reopened")
    });
    let size_at_reopen = std::fs::metadata(&rotated).unwrap().len();
    let t = Instant::now();
    common::agent::finished(sim);
    agent.wait_for("every record", Duration::from_secs(120), || {
        events(&out) + events(&rotated) >= (per_pass * passes) as u64
    });
    assert_eq!(agent.terminate(), 0, "{}", tail(&agent.log(), 20));
    assert_eq!(
        std::fs::metadata(&rotated).unwrap().len(),
        size_at_reopen,
        "nothing written to the rotated file after the reopen ({:?} of streaming)",
        t.elapsed()
    );
    let a = common::read_json_lines(&rotated);
    let b = common::read_json_lines(&out);
    assert!(!a.is_empty() && !b.is_empty());
    assert_eq!(a.len() + b.len(), per_pass * passes, "0 lost, none twice");
}

#[test]
fn a_socket_that_cannot_be_created_is_named_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.json");
    let cfg = file_config(dir.path(), &out);
    // /proc takes no new files, whoever asks.
    let o = sfprocessor(
        &[
            "-config",
            cfg.to_str().unwrap(),
            "-driver",
            "socket",
            "/proc/sfprocessor-test.sock",
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(
        e.contains("/proc/sfprocessor-test.sock"),
        "the path is named: {e}"
    );
    let o = sfprocessor(
        &[
            "-test",
            "-config",
            cfg.to_str().unwrap(),
            "-driver",
            "socket",
            "/proc/sfprocessor-test.sock",
        ],
        &[],
    );
    assert_eq!(
        o.status.code(),
        Some(2),
        "-test does not say it would listen"
    );
    assert!(stderr(&o).contains("/proc"), "{}", stderr(&o));
}
