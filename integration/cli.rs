//! The command line: flags, configuration errors that name file/stage/key, `-test`,
//! `-version`, environment overrides, and draining on SIGTERM.

mod common;

use common::{file_pipeline, read_json_lines, sfprocessor, write_trace};
use sfprocessor::sysflow::writer::SchemaVersion;

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn version_names_the_schemas() {
    for flag in ["-version", "--version"] {
        let o = sfprocessor(&[flag], &[]);
        assert!(o.status.success());
        let s = stdout(&o);
        // Upstream's line, so scripts that parse it keep working.
        assert!(s.starts_with("Version: "), "{s}");
        assert!(s.contains(", Avro Schema Version: 5,"), "{s}");
        assert!(
            s.contains("Export Schema Version: 5 (JSON), 8.2 (ECS)"),
            "{s}"
        );
    }
}

fn check_config(text: &str) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad.json");
    std::fs::write(&p, text).unwrap();
    let o = sfprocessor(&["-test", "-config", p.to_str().unwrap()], &[]);
    (o.status.code().unwrap_or(-1), stderr(&o), stdout(&o))
}

const READER: &str = r#"{"processor":"sysflowreader","handler":"flattener","in":"sysflow sysflowchan","out":"flat flattenerchan"}"#;

#[test]
fn configuration_errors_name_file_stage_and_key() {
    let cases: &[(String, &str)] = &[
        (
            format!(r#"{{"pipeline":[{READER},{{"processor":"magic","in":"flat flattenerchan"}}]}}"#),
            "pipeline[1] (magic): key `processor`: unknown processor `magic`",
        ),
        (
            format!(r#"{{"pipeline":[{READER},{{"processor":"exporter","in":"other eventchan","export":"null"}}]}}"#),
            "pipeline[0] (sysflowreader): key `out`: dangling channel `flat`",
        ),
        (
            format!(r#"{{"pipeline":[{READER},{{"processor":"policyengine","in":"flat eventchan","out":"e eventchan"}},{{"processor":"exporter","in":"e eventchan"}}]}}"#),
            "pipeline[1] (policyengine): key `in`: channel type `eventchan` does not fit",
        ),
        (
            r#"{"pipeline":[{"processor":"sysflowreader","handler":"flattener","in":"sysflow sysflowchan"}]}"#.to_string(),
            "pipeline[0] (sysflowreader): key `out`: missing",
        ),
        (
            format!(r#"{{"pipeline":[{READER},{{"processor":"exporter","in":"flat flattenerchan","export":"file","buffer":"lots"}}]}}"#),
            "pipeline[1] (exporter): key `buffer`: `lots` is not a whole number from 0 to 1000000",
        ),
        (
            format!(r#"{{"pipeline":[{READER},{{"processor":"exporter","in":"flat flattenerchan","export":"carrier-pigeon"}}]}}"#),
            "pipeline[1] (exporter): key `export`: unknown exporter `carrier-pigeon`",
        ),
        (
            format!(r#"{{"pipeline":[{READER},{{"processor":"policyengine","in":"flat flattenerchan","out":"e eventchan","mode":"sometimes"}},{{"processor":"exporter","in":"e eventchan"}}]}}"#),
            "pipeline[1] (policyengine): key `mode`: unknown mode `sometimes`",
        ),
        (
            format!(r#"{{"pipeline":[{READER},{{"processor":"policyengine","in":"flat flattenerchan","out":"e eventchan","policies":"/nonexistent/p.yaml"}},{{"processor":"exporter","in":"e eventchan"}}]}}"#),
            "pipeline[1] (policyengine): key `policies`: /nonexistent/p.yaml",
        ),
        (
            r#"{"pipeline":[{"processor":"sysflowreader","handler":"fancy","in":"sysflow sysflowchan","out":"flat flattenerchan"}]}"#.to_string(),
            "pipeline[0] (sysflowreader): key `handler`: handler `fancy` is not supported (plugins are not loaded",
        ),
        (
            r#"{"pipeline":[{"processor":"sysflowreader","handler":"printer","in":"sysflow sysflowchan","out":"flat flattenerchan"},{"processor":"exporter","in":"flat flattenerchan","export":"null"}]}"#.to_string(),
            "pipeline[0] (sysflowreader): key `out`: the `printer` handler has no output channel",
        ),
        (
            format!(r#"{{"pipeline":[{READER},{{"processor":"example","in":"flat flattenerchan","out":"x flattenerchan"}}]}}"#),
            "pipeline[1] (example): key `out`: `example` has no output channel",
        ),
        (
            r#"{"pipeline": [ {"processor": "exporter", }"#.to_string(),
            "invalid JSON at line 1",
        ),
    ];
    for (text, want) in cases {
        let (code, err, _) = check_config(text);
        assert_eq!(code, 2, "{want}: {err}");
        assert!(err.contains("bad.json"), "names the file: {err}");
        assert!(err.contains(want), "expected `{want}` in: {err}");
    }
}

#[test]
fn test_flag_validates_and_lists_warnings() {
    let text = format!(
        r#"{{"pipeline":[{READER},{{"processor":"exporter","in":"flat flattenerchan","export":"null","colour":"blue"}}]}}"#
    );
    let (code, err, out) = check_config(&text);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("is valid: 2 stage(s), 1 warning(s)"), "{out}");
    assert!(out.contains("key `colour` is not used"), "{out}");
}

#[test]
fn upstream_configs_point_at_local_policies_through_the_environment() {
    let p = common::upstream().join("sf-processor/resources/pipelines/pipeline.terminal.json");
    // As shipped, the policy path does not exist here: a clear error naming the key.
    let o = sfprocessor(&["-test", "-config", p.to_str().unwrap()], &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("pipeline[1] (policyengine): key `policies`"),
        "{}",
        stderr(&o)
    );
    let filter =
        common::upstream().join("sf-processor/resources/policies/distribution/filter.yaml");
    let o = sfprocessor(
        &["-test", "-config", p.to_str().unwrap()],
        &[("POLICYENGINE_POLICIES", filter.to_str().unwrap())],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("21 rule(s), 84 macro(s), 42 list(s), 1 filter/drop(s)"),
        "{out}"
    );
    assert!(out.contains("Alert mode"), "{out}");
    assert!(
        out.contains("filter.yaml:227:"),
        "repairs are listed as warnings: {out}"
    );
    // A broken policy is an error with file:line:col.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "- rule: r\n  desc: d\n  condition: sf.type = PE and (sf.proc.name = x\n",
    )
    .unwrap();
    let o = sfprocessor(
        &["-test", "-config", p.to_str().unwrap()],
        &[("POLICYENGINE_POLICIES", bad.to_str().unwrap())],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("bad.yaml:3:"), "{}", stderr(&o));
    assert!(stderr(&o).contains("syntax error"), "{}", stderr(&o));
}

#[test]
fn environment_overrides_reach_the_exporter() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("t.sf");
    let recs = write_trace(&trace, 3, 2000, "snappy", SchemaVersion::V4);
    let events = recs.iter().filter(|r| r.kind().is_event_or_flow()).count();
    let cfg = dir.path().join("p.json");
    // The file names one path; the environment redirects it (key matched case-insensitively).
    std::fs::write(&cfg, file_pipeline(&dir.path().join("not-here.json"))).unwrap();
    let target = dir.path().join("from-env.json");
    let o = sfprocessor(
        &["-config", cfg.to_str().unwrap(), trace.to_str().unwrap()],
        &[("EXPORTER_FILE_PATH", target.to_str().unwrap())],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!dir.path().join("not-here.json").exists());
    assert_eq!(read_json_lines(&target).len(), events);
}

#[test]
fn file_exporter_appends_and_never_truncates() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("t.sf");
    let recs = write_trace(&trace, 4, 1500, "zstd", SchemaVersion::V5);
    let events = recs.iter().filter(|r| r.kind().is_event_or_flow()).count();
    let out = dir.path().join("out.json");
    let cfg = dir.path().join("p.json");
    std::fs::write(&cfg, file_pipeline(&out)).unwrap();
    for _ in 0..2 {
        let o = sfprocessor(
            &["-config", cfg.to_str().unwrap(), trace.to_str().unwrap()],
            &[],
        );
        assert!(o.status.success(), "{}", stderr(&o));
    }
    assert_eq!(read_json_lines(&out).len(), 2 * events);
}

#[test]
fn terminal_output_goes_to_stdout_and_logs_to_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("t.sf");
    let recs = write_trace(&trace, 5, 800, "deflate", SchemaVersion::V5);
    let events = recs.iter().filter(|r| r.kind().is_event_or_flow()).count();
    let cfg = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/pipeline.example.json");
    let o = sfprocessor(
        &[
            "-config",
            cfg.to_str().unwrap(),
            "-log",
            "info",
            trace.to_str().unwrap(),
        ],
        &[],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert_eq!(out.lines().count(), events);
    for l in out.lines() {
        serde_json::from_str::<serde_json::Value>(l).expect("stdout holds only JSON records");
    }
    assert!(stderr(&o).contains("node summary"));
}

#[test]
fn sigterm_stops_the_input_and_drains_what_was_read() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("big.sf");
    let recs = write_trace(&trace, 6, 200_000, "deflate", SchemaVersion::V5);
    let events = recs.iter().filter(|r| r.kind().is_event_or_flow()).count();
    let out = dir.path().join("out.json");
    let cfg = dir.path().join("p.json");
    std::fs::write(&cfg, file_pipeline(&out)).unwrap();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_sfprocessor"))
        .args([
            "-config",
            cfg.to_str().unwrap(),
            "-log",
            "warn",
            trace.to_str().unwrap(),
        ])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until output starts, then ask it to stop.
    // Up to 12,000 polls of 5 ms.
    let size = || std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
    let mut polls = 0;
    while size() == 0 && polls < 12_000 {
        polls += 1;
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert!(size() > 0, "no output");
    let pid = child.id() as i32;
    // SAFETY-free: `kill` through the shell utility, no libc binding needed.
    let st = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(
        o.status.code(),
        Some(0),
        "drained and exited cleanly: {err}"
    );
    assert!(err.contains("signal received"), "{err}");
    // Every line written is a complete record; the run stopped early.
    let lines = read_json_lines(&out);
    assert!(!lines.is_empty());
    assert!(
        lines.len() < events,
        "{} of {events}: the stop came too late to observe",
        lines.len()
    );
}

#[test]
fn the_bundled_example_runs_end_to_end() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let trace = root.join("config/example.sf");
    let summary = sfprocessor::sysflow::trace::read_trace(&trace, |_| {}).unwrap();
    let events: u64 = sfprocessor::sysflow::Kind::ALL
        .iter()
        .filter(|k| k.is_event_or_flow())
        .map(|k| summary.counts.get(*k))
        .sum();
    assert!(events > 0);
    let cfg = root.join("config/pipeline.example.json");
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
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).lines().count() as u64, events);
}

#[test]
fn several_outs_fan_out_to_every_exporter_and_fan_in_merges() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("t.sf");
    let recs = write_trace(&trace, 8, 3000, "deflate", SchemaVersion::V5);
    let events = recs.iter().filter(|r| r.kind().is_event_or_flow()).count();
    let (a, b) = (dir.path().join("a.json"), dir.path().join("b.json"));
    // reader tees into two policy stages; both write into one channel read by exporter A
    // (fan-in), and the reader also feeds exporter B directly.
    let cfg = format!(
        r#"{{"pipeline":[
 {{"processor":"sysflowreader","handler":"flattener","in":"sysflow sysflowchan","out":["p1 flattenerchan","p2 flattenerchan","direct flattenerchan"]}},
 {{"processor":"policyengine","in":"p1 flattenerchan","out":"merged eventchan"}},
 {{"processor":"policyengine","in":"p2 flattenerchan","out":"merged eventchan"}},
 {{"processor":"exporter","in":"merged eventchan","export":"file","file.path":"{}"}},
 {{"processor":"exporter","in":"direct flattenerchan","export":"file","file.path":"{}"}}]}}"#,
        a.display(),
        b.display()
    );
    let p = dir.path().join("p.json");
    std::fs::write(&p, cfg).unwrap();
    let o = sfprocessor(
        &["-config", p.to_str().unwrap(), trace.to_str().unwrap()],
        &[],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let la = read_json_lines(&a);
    let lb = read_json_lines(&b);
    assert_eq!(lb.len(), events, "the direct tee gets every record");
    assert_eq!(
        la.len(),
        2 * events,
        "both policy stages feed the merged channel"
    );
    // The direct copy keeps stream order.
    let ts: Vec<i64> = lb.iter().map(|l| l["ts"].as_i64().unwrap()).collect();
    let mut sorted = ts.clone();
    sorted.sort();
    assert_eq!(
        ts, sorted,
        "generated traces are in time order; so is the output"
    );
}

#[test]
fn records_an_exporter_cannot_deliver_are_counted_and_fail_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("t.sf");
    write_trace(&trace, 9, 1000, "deflate", SchemaVersion::V5);
    let cfg = dir.path().join("p.json");
    std::fs::write(&cfg, file_pipeline(&dir.path().join("unused.json"))).unwrap();
    // /dev/full accepts the open and fails every write (ENOSPC).
    let o = sfprocessor(
        &[
            "-config",
            cfg.to_str().unwrap(),
            "-log",
            "error",
            trace.to_str().unwrap(),
        ],
        &[("EXPORTER_FILE_PATH", "/dev/full")],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("records not delivered"),
        "{}",
        stderr(&o)
    );
}

/// Answers every HTTP request with 200 and `{}` (enough for the es healthcheck).
fn tiny_http_server() -> u16 {
    use std::io::{BufRead, BufReader, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for c in l.incoming().flatten() {
            let mut w = c.try_clone().unwrap();
            let mut r = BufReader::new(c);
            let mut line = String::new();
            while r.read_line(&mut line).unwrap_or(0) > 0 {
                if line == "\r\n" {
                    let _ = w.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}");
                }
                line.clear();
            }
        }
    });
    port
}

#[test]
fn upstream_pipeline_configs_start_unchanged_through_environment_overrides() {
    let up = common::upstream().join("sf-processor");
    let filter = up.join("resources/policies/distribution/filter.yaml");
    let syslog = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let syslog_port = syslog.local_addr().unwrap().port().to_string();
    let es = format!("http://127.0.0.1:{}", tiny_http_server());
    let policies = ("POLICYENGINE_POLICIES", filter.to_str().unwrap());
    // The Sigma bench config names the rules and the field mapping relative to upstream's
    // scripts/tests directory: point them at the shipped files.
    let sigma = up.join("resources/policies/sigma");
    let sigma_rules = sigma.join("rules/linux");
    let sigma_config = sigma.join("config/sysflow.yml");
    let runnable: &[(&str, Vec<(&str, &str)>)] = &[
        (
            "scripts/tests/pipeline.sigma.bench.json",
            vec![
                ("POLICYENGINE_POLICIES", sigma_rules.to_str().unwrap()),
                ("POLICYENGINE_CONFIG", sigma_config.to_str().unwrap()),
            ],
        ),
        ("scripts/tests/pipeline.falco.bench.json", vec![policies]),
        (
            "resources/pipelines/pipeline.distribution.json",
            vec![
                policies,
                ("EXPORTER_SYSLOG_HOST", "127.0.0.1"),
                ("EXPORTER_SYSLOG_PORT", &syslog_port),
            ],
        ),
        (
            "resources/pipelines/pipeline.local.json",
            vec![
                policies,
                ("EXPORTER_SYSLOG_HOST", "127.0.0.1"),
                ("EXPORTER_SYSLOG_PORT", &syslog_port),
            ],
        ),
        (
            "resources/pipelines/pipeline.elk.json",
            vec![policies, ("EXPORTER_ES_ADDRESSES", &es)],
        ),
        // Upstream 0.7.0 ignores the findings.* keys (its Findings exporter is gone): the
        // stage is the Elasticsearch exporter it names, with a warning here.
        (
            "resources/pipelines/pipeline.findings.json",
            vec![policies, ("EXPORTER_ES_ADDRESSES", &es)],
        ),
        ("resources/pipelines/pipeline.terminal.json", vec![policies]),
        (
            "plugins/actions/example/pipeline.actions.json",
            vec![policies],
        ),
        ("plugins/processors/example/pipeline.example.json", vec![]),
        ("plugins/handlers/printer/pipeline.printer.json", vec![]),
    ];
    assert_eq!(runnable.len(), 10);
    for (cfg, env) in runnable {
        let p = up.join(cfg);
        let o = sfprocessor(&["-test", "-config", p.to_str().unwrap()], env);
        assert_eq!(o.status.code(), Some(0), "{cfg}: {}", stderr(&o));
        let stages = std::fs::read_to_string(&p)
            .unwrap()
            .matches("\"processor\"")
            .count();
        assert!(
            stdout(&o).contains(&format!("is valid: {stages} stage(s)")),
            "{cfg}: {}",
            stdout(&o)
        );
        if cfg.contains("findings") {
            assert!(
                stdout(&o).contains("findings.* keys) is ignored"),
                "{}",
                stdout(&o)
            );
        }
    }
    // One of them runs for real: alerts of an upstream trace on the terminal.
    let trace = common::upstream().join("sf-apis/pynb/data/attacks/express/mon.1531776742.sf");
    let p = up.join("resources/pipelines/pipeline.terminal.json");
    let o = sfprocessor(
        &["-config", p.to_str().unwrap(), trace.to_str().unwrap()],
        &[policies],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let alerts = stdout(&o).lines().filter(|l| l.starts_with('{')).count();
    assert!(alerts > 100, "{alerts} alerts");
    // The others fail before starting, naming what this build does not support.
    for (cfg, want) in [
        (
            "resources/pipelines/pipeline.otel.json",
            "drivers[0] (otelkafka): key `driver`: driver `otelkafka` is not supported by this build (supported: file, socket)",
        ),
        (
            "resources/pipelines/pipeline.template.json",
            "unknown mode `alert|enrich",
        ),
    ] {
        let p = up.join(cfg);
        let o = sfprocessor(&["-test", "-config", p.to_str().unwrap()], &[policies]);
        assert_eq!(o.status.code(), Some(2), "{cfg}: {}", stderr(&o));
        assert!(stderr(&o).contains(want), "{cfg}: {}", stderr(&o));
    }
}

/// The messages a run logged at info level (the text after the level).
fn info_messages(o: &std::process::Output) -> Vec<String> {
    stderr(o)
        .lines()
        .filter_map(|l| l.split_once(" INFO ").map(|(_, m)| m.trim().to_string()))
        .collect()
}

#[test]
fn upstream_plugin_examples_run_as_built_ins_and_log_what_upstream_logs() {
    let up = common::upstream().join("sf-processor");
    let trace = common::upstream().join("sf-apis/pynb/data/attacks/express/mon.1531776742.sf");
    // What the trace holds, from the file exporter: the lines upstream's plugins print for it.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.json");
    let cfg = common::write_file(dir.path(), "file.json", &file_pipeline(&out));
    let o = common::run_quiet(&cfg, &trace);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let records = read_json_lines(&out);
    let exe = |r: &serde_json::Value| r["proc"]["exe"].as_str().unwrap().to_string();
    let mut printer_lines = Vec::new();
    let mut example_lines = Vec::new();
    for r in &records {
        let tid = &r["proc"]["tid"];
        match r["type"].as_str().unwrap() {
            "NF" => printer_lines.push(format!("NetworkFlow {}, {}", exe(r), r["net"]["dport"])),
            "FF" => printer_lines.push(format!("FileFlow {}, {}", exe(r), r["file"]["fd"])),
            "FE" => printer_lines.push(format!("FileEvt {}, {tid}", exe(r))),
            "PE" => {
                printer_lines.push(format!("ProcEvt {}, {tid}", exe(r)));
                example_lines.push(format!("Process Event: {}, {tid}", exe(r)));
            }
            other => panic!("record type {other} not expected in this trace"),
        }
    }
    assert!(example_lines.len() > 100, "{}", example_lines.len());
    for (cfg, want) in [
        (
            "plugins/handlers/printer/pipeline.printer.json",
            printer_lines,
        ),
        (
            "plugins/processors/example/pipeline.example.json",
            example_lines,
        ),
    ] {
        let p = up.join(cfg);
        let o = sfprocessor(
            &["-config", p.to_str().unwrap(), trace.to_str().unwrap()],
            &[],
        );
        assert_eq!(o.status.code(), Some(0), "{cfg}: {}", stderr(&o));
        assert!(stdout(&o).is_empty(), "{cfg}: nothing goes to stdout");
        let logged = info_messages(&o);
        let got: Vec<&str> = logged
            .iter()
            .map(String::as_str)
            .filter(|m| !m.starts_with("node summary"))
            .collect();
        assert_eq!(got.len(), want.len(), "{cfg}");
        assert_eq!(
            common::counts(got),
            common::counts(want.iter().map(String::as_str)),
            "{cfg}"
        );
    }
}

#[test]
fn the_null_exporter_consumes_and_counts_every_record_without_output() {
    let trace = common::upstream().join("sf-apis/pynb/data/attacks/express/mon.1531776742.sf");
    let dir = tempfile::tempdir().unwrap();
    let cfg = common::write_file(
        dir.path(),
        "null.json",
        &common::exporter_pipeline(r#""export":"null""#),
    );
    let o = sfprocessor(
        &["-config", cfg.to_str().unwrap(), trace.to_str().unwrap()],
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).is_empty());
    let summary = info_messages(&o)
        .into_iter()
        .find(|m| m.starts_with("node summary node=exporter"))
        .expect("an exporter summary");
    // Every event and flow record of the trace (entities are folded into them).
    let events: u64 = common::inventory()
        .into_iter()
        .find(|t| t.path.ends_with("mon.1531776742.sf"))
        .expect("trace in the inventory")
        .counts
        .iter()
        .filter(|(k, _)| k.contains(".flow.") || k.contains(".event."))
        .map(|(_, v)| *v)
        .sum();
    assert!(events > 20_000);
    assert!(summary.contains(&format!(" sent={events} ")), "{summary}");
    assert!(
        summary.contains(" dropped=0 retried=0 failed=0 "),
        "{summary}"
    );
}
