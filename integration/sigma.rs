//! Sigma rules (`language: sigma`): upstream's 51 rules load with upstream's pipeline keys,
//! and on a generated trace named rules fire on the executions they describe while their near
//! misses do not (Sigma's matching: case-insensitive, lists of maps "any of", the logsource
//! category restricting the record types).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::upstream;
use sfprocessor::sysflow::model::*;
use sfprocessor::sysflow::names::{OP_EXEC, OP_OPEN, OP_READ_RECV};
use sfprocessor::sysflow::writer::{avro_codec, schema, SchemaVersion, TraceWriter};
use sfprocessor::sysflow::SysFlow;

fn sigma() -> PathBuf {
    upstream().join("sf-processor/resources/policies/sigma")
}

fn pipeline(out: &Path, extra: &str) -> String {
    format!(
        r#"{{"pipeline":[
 {{"processor":"sysflowreader","handler":"flattener","in":"sysflow sysflowchan","out":"flat flattenerchan"}},
 {{"processor":"policyengine","in":"flat flattenerchan","out":"evt eventchan","language":"sigma","policies":"{}","config":"{}","mode":"alert"{extra}}},
 {{"processor":"exporter","in":"evt eventchan","export":"file","file.path":"{}"}}]}}"#,
        sigma().join("rules/linux").display(),
        sigma().join("config/sysflow.yml").display(),
        out.display()
    )
}

#[test]
fn all_51_upstream_sigma_rules_load_with_upstream_keys() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = common::write_file(dir.path(), "p.json", &pipeline(&dir.path().join("o"), ""));
    let o = common::sfprocessor(
        &["-test", "-log", "error", "-config", cfg.to_str().unwrap()],
        &[],
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(out.contains("51 rule(s)"), "{out}");
    // Two rules search `LogonId`, which the shipped config does not map.
    assert_eq!(
        out.matches("[LOAD_SIGMA_UNMAPPED_FIELD]").count(),
        2,
        "{out}"
    );
    // `language` values other than falco and sigma are configuration errors.
    let bad = pipeline(&dir.path().join("o"), "")
        .replace(r#""language":"sigma""#, r#""language":"yara""#);
    let cfg = common::write_file(dir.path(), "bad.json", &bad);
    let o = common::sfprocessor(&["-test", "-config", cfg.to_str().unwrap()], &[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("key `language`") && err.contains("yara"),
        "{err}"
    );
}

/// A trace of processes, each executed once (a PE EXEC), children of `parent` when given;
/// the first process also reads a file (a flow no process_creation rule may alert on).
fn exec_trace(path: &Path, procs: &[(&str, &str, Option<usize>)]) {
    let schema = schema(SchemaVersion::V5).unwrap();
    let f = std::fs::File::create(path).unwrap();
    let mut w = TraceWriter::new(
        &schema,
        SchemaVersion::V5,
        avro_codec("deflate").unwrap(),
        f,
    );
    w.append(&SysFlow::Header(Header {
        version: 5,
        exporter: "node-a".into(),
        ip: "10.0.0.1".into(),
        filename: "sigma.sf".into(),
    }))
    .unwrap();
    let oid = |i: usize| Oid {
        create_ts: 1000 + i as i64,
        hpid: 100 + i as i64,
    };
    for (i, (exe, args, parent)) in procs.iter().enumerate() {
        w.append(&SysFlow::Process(Process {
            oid: oid(i),
            poid: parent.map(oid),
            ts: 1000 + i as i64,
            exe: exe.to_string(),
            exe_args: args.to_string(),
            user_name: "root".into(),
            ..Default::default()
        }))
        .unwrap();
        w.append(&SysFlow::ProcessEvent(ProcessEvent {
            proc_oid: oid(i),
            ts: 2000 + i as i64,
            tid: 100 + i as i64,
            op_flags: OP_EXEC,
            ..Default::default()
        }))
        .unwrap();
    }
    w.append(&SysFlow::File(File {
        oid: [7; 20],
        path: "/root/.bash_history".into(),
        restype: b'f' as i32,
        ..Default::default()
    }))
    .unwrap();
    w.append(&SysFlow::FileFlow(FileFlow {
        proc_oid: oid(0),
        ts: 3000,
        tid: 100,
        op_flags: OP_OPEN | OP_READ_RECV,
        file_oid: [7; 20],
        ..Default::default()
    }))
    .unwrap();
    w.finish().unwrap();
}

#[test]
fn named_sigma_rules_fire_on_their_executions_and_not_on_near_misses() {
    const BASE64_DECODE: &str = "e2072cab-8c9a-459b-b63c-40ae79e27031";
    const DISCOVERY: &str = "d3feb4ee-ff1d-4d3d-bd10-5b28a238cc72";
    const HISTORY_DELETE: &str = "1182f3b3-e716-4efa-99ab-d2685d04360f";
    const SCANNING: &str = "3e102cd9-a70d-4a7a-9508-403963092f31";
    const JAVA_CHILD: &str = "d292e0af-9a18-420c-9525-ec0ac3936892";
    // (exe, args, parent index): what each should fire is checked below.
    let procs: &[(&str, &str, Option<usize>)] = &[
        ("/usr/bin/base64", "-d /tmp/payload", None), // 0: base64 decode
        ("/usr/bin/base64", "/tmp/payload", None),    // 1: near miss (no -d)
        ("/USR/BIN/BASE64", "-D x", None),            // 2: case-insensitive
        ("/usr/bin/find", "/ -name id_rsa", None),    // 3: discovery
        ("/usr/bin/finder", "/", None),               // 4: near miss
        ("/bin/rm", "/root/.bash_history", None),     // 5: history (contains)
        ("/usr/bin/shred", "/root/notes.history", None), // 6: history (endswith: 2nd map)
        ("/bin/rm", "/tmp/notes", None),              // 7: near miss
        ("/usr/bin/nc", "10.0.0.9 80", None),         // 8: scanning (nc without l)
        ("/usr/bin/nc", "-l 4444", None),             // 9: near miss (listen flag)
        ("/usr/lib/jvm/bin/java", "-jar app.jar", None), // 10: a JVM ...
        ("/bin/sh", "-c id", Some(10)),               // 11: ... spawning a shell
        ("/usr/bin/python3", "app.py", None),         // 12: not a JVM ...
        ("/usr/bin/zsh", "-c id", Some(12)),          // 13: near miss
    ];
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("sigma.sf");
    exec_trace(&trace, procs);
    let out = dir.path().join("alerts.json");
    let cfg = common::write_file(dir.path(), "p.json", &pipeline(&out, ""));
    let o = common::run_quiet(&cfg, &trace);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let mut fired: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for l in common::read_json_lines(&out) {
        assert_eq!(
            l["type"], "PE",
            "process_creation rules alert on executions only: {l}"
        );
        let who = format!(
            "{} {}",
            l["proc"]["exe"].as_str().unwrap(),
            l["proc"]["args"].as_str().unwrap()
        );
        for p in l["policies"].as_array().unwrap() {
            fired
                .entry(p["id"].as_str().unwrap().to_string())
                .or_default()
                .push(who.clone());
        }
    }
    let got = |id: &str| fired.get(id).cloned().unwrap_or_default();
    assert_eq!(
        got(BASE64_DECODE),
        ["/usr/bin/base64 -d /tmp/payload", "/USR/BIN/BASE64 -D x"]
    );
    assert_eq!(got(DISCOVERY), ["/usr/bin/find / -name id_rsa"]);
    assert_eq!(
        got(HISTORY_DELETE),
        [
            "/bin/rm /root/.bash_history",
            "/usr/bin/shred /root/notes.history"
        ]
    );
    assert_eq!(got(SCANNING), ["/usr/bin/nc 10.0.0.9 80"]);
    assert_eq!(got(JAVA_CHILD), ["/bin/sh -c id"]);
    // Priorities follow the Sigma level (upstream: informational 0 ... critical 4).
    let lines = common::read_json_lines(&out);
    let java = lines
        .iter()
        .find(|l| l["proc"]["exe"] == "/bin/sh")
        .unwrap();
    let p = java["policies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == JAVA_CHILD)
        .unwrap();
    assert_eq!(p["priority"], 3, "level: high");
}

#[test]
fn a_changed_sigma_field_mapping_is_reloaded() {
    use sfprocessor::pipeline::{policy::PolicyHandle, PolicyStage};
    use sfprocessor::policy::engine::{load_policies, Language, LoadOptions, Mode};
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    std::fs::write(
        rules.join("r.yml"),
        "title: t\nid: r1\nlogsource:\n  category: process_creation\ndetection:\n  sel:\n    Image|endswith: /bash\n  condition: sel\n",
    )
    .unwrap();
    let config = dir.path().join("sysflow.yml");
    std::fs::write(&config, "fieldmappings:\n  Image: sf.proc.exe\n").unwrap();
    let load = LoadOptions {
        language: Language::Sigma {
            config: Some(config.clone()),
        },
        ..Default::default()
    };
    let set = load_policies(&rules, &load).unwrap();
    assert!(set.warnings.is_empty(), "{:?}", set.warnings);
    let handle = PolicyHandle::new(set, Mode::Alert);
    let stage = PolicyStage {
        handle: handle.clone(),
        path: rules.clone(),
        load,
        shards: 1,
        monitor: Some(std::time::Duration::from_millis(50)),
    };
    let sys = actix::System::new();
    sys.block_on(async move {
        let arb = actix::Arbiter::new();
        sfprocessor::pipeline::monitor::PolicyMonitor::start(
            &arb.handle(),
            stage,
            std::time::Duration::from_millis(50),
        );
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
        // The mapping no longer names Image: the reloaded set warns about it.
        std::fs::write(&config, "fieldmappings:\n  CommandLine: sf.proc.cmdline\n").unwrap();
        let mut reloaded = false;
        for _ in 0..200 {
            if handle
                .current()
                .warnings
                .iter()
                .any(|w| w.code == sfprocessor::policy::diag::Code::SigmaUnmappedField)
            {
                reloaded = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert!(reloaded, "the config edit was applied");
        arb.stop();
    });
}
