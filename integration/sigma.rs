//! Sigma rules (`language: sigma`): upstream's 51 rules load with upstream's pipeline keys,
//! and on a generated trace named rules fire on the executions they describe while their near
//! misses do not, read as upstream 0.7.0 does by default (logsource ignored, lists of maps
//! ANDed) and by the Sigma specification with `quirks: fixed` (lists of maps "any of", the
//! logsource category restricting the record types).

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
    // Where upstream's reading differs from Sigma's, by default: five searches given as lists
    // of maps (ANDed) and one `re` (ignored); none with `quirks: fixed`.
    assert_eq!(
        out.matches("[LOAD_SIGMA_UPSTREAM_MEANING]").count(),
        6,
        "{out}"
    );
    let fixed = common::write_file(
        dir.path(),
        "fixed.json",
        &pipeline(&dir.path().join("o"), r#","quirks":"fixed""#),
    );
    let o = common::sfprocessor(
        &["-test", "-log", "error", "-config", fixed.to_str().unwrap()],
        &[],
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(out.contains("51 rule(s)"), "{out}");
    assert_eq!(out.matches("[LOAD_SIGMA_UPSTREAM_MEANING]").count(), 0);
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
    w.append(&SysFlow::Header(Box::new(Header {
        version: 5,
        exporter: "node-a".into(),
        ip: "10.0.0.1".into(),
        filename: "sigma.sf".into(),
    })))
    .unwrap();
    let oid = |i: usize| Oid {
        create_ts: 1000 + i as i64,
        hpid: 100 + i as i64,
    };
    for (i, (exe, args, parent)) in procs.iter().enumerate() {
        w.append(&SysFlow::Process(Box::new(Process {
            oid: oid(i),
            poid: parent.map(oid),
            ts: 1000 + i as i64,
            exe: exe.to_string(),
            exe_args: args.to_string(),
            user_name: "root".into(),
            ..Default::default()
        })))
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
    w.append(&SysFlow::File(Box::new(File {
        oid: [7; 20],
        path: "/root/.bash_history".into(),
        restype: b'f' as i32,
        ..Default::default()
    })))
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

const BASE64_DECODE: &str = "e2072cab-8c9a-459b-b63c-40ae79e27031";
const DISCOVERY: &str = "d3feb4ee-ff1d-4d3d-bd10-5b28a238cc72";
const HISTORY_DELETE: &str = "1182f3b3-e716-4efa-99ab-d2685d04360f";
const SCANNING: &str = "3e102cd9-a70d-4a7a-9508-403963092f31";
const JAVA_CHILD: &str = "d292e0af-9a18-420c-9525-ec0ac3936892";

/// (exe, args, parent index): what each fires is checked by the tests below.
const PROCS: &[(&str, &str, Option<usize>)] = &[
    ("/usr/bin/base64", "-d /tmp/payload", None), // 0: base64 decode (also reads a file)
    ("/usr/bin/base64", "/tmp/payload", None),    // 1: near miss (no -d)
    ("/USR/BIN/BASE64", "-D x", None),            // 2: case-insensitive
    ("/usr/bin/find", "/ -name id_rsa", None),    // 3: discovery
    ("/usr/bin/finder", "/", None),               // 4: near miss
    ("/bin/rm", "/root/.bash_history", None),     // 5: history (contains, and endswith)
    ("/usr/bin/shred", "/root/notes.history", None), // 6: history (endswith: 2nd map only)
    ("/bin/rm", "/tmp/notes", None),              // 7: near miss
    ("/usr/bin/nc", "10.0.0.9 80", None),         // 8: scanning (nc without l)
    ("/usr/bin/nc", "-l 4444", None),             // 9: near miss (listen flag)
    ("/usr/lib/jvm/bin/java", "-jar app.jar", None), // 10: a JVM ...
    ("/bin/sh", "-c id", Some(10)),               // 11: ... spawning a shell
    ("/usr/bin/python3", "app.py", None),         // 12: not a JVM ...
    ("/usr/bin/zsh", "-c id", Some(12)),          // 13: near miss
];

/// Runs the 51 rules over [`PROCS`]: rule id → "TYPE exe args" of each alert, and the lines.
fn fired(extra: &str) -> (BTreeMap<String, Vec<String>>, Vec<serde_json::Value>) {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("sigma.sf");
    exec_trace(&trace, PROCS);
    let out = dir.path().join("alerts.json");
    let cfg = common::write_file(dir.path(), "p.json", &pipeline(&out, extra));
    let o = common::run_quiet(&cfg, &trace);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let lines = common::read_json_lines(&out);
    let mut fired: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for l in &lines {
        let who = format!(
            "{} {} {}",
            l["type"].as_str().unwrap(),
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
    (fired, lines)
}

#[test]
fn named_sigma_rules_fire_on_their_executions_and_not_on_near_misses() {
    // Sigma's meaning (`quirks: fixed`): the logsource selects executions, a list of maps is
    // any-of.
    let (fired, lines) = fired(r#","quirks":"fixed""#);
    let got = |id: &str| fired.get(id).cloned().unwrap_or_default();
    assert_eq!(
        got(BASE64_DECODE),
        [
            "PE /usr/bin/base64 -d /tmp/payload",
            "PE /USR/BIN/BASE64 -D x"
        ]
    );
    assert_eq!(got(DISCOVERY), ["PE /usr/bin/find / -name id_rsa"]);
    assert_eq!(
        got(HISTORY_DELETE),
        [
            "PE /bin/rm /root/.bash_history",
            "PE /usr/bin/shred /root/notes.history"
        ]
    );
    assert_eq!(got(SCANNING), ["PE /usr/bin/nc 10.0.0.9 80"]);
    assert_eq!(got(JAVA_CHILD), ["PE /bin/sh -c id"]);
    assert!(
        lines.iter().all(|l| l["type"] == "PE"),
        "process_creation rules alert on executions only"
    );
    // Priorities follow the Sigma level (upstream: informational 0 ... critical 4).
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
fn by_default_sigma_rules_read_as_upstream() {
    // Upstream 0.7.0 (`quirks: upstream`, the default): the logsource is ignored (the file
    // flow of the decoding process alerts too), the maps of a list are ANDed (`shred` with
    // only the second map's `endswith` does not fire), values stay case-insensitive.
    let (fired, lines) = fired("");
    let got = |id: &str| fired.get(id).cloned().unwrap_or_default();
    assert_eq!(
        got(BASE64_DECODE),
        [
            "PE /usr/bin/base64 -d /tmp/payload",
            "PE /USR/BIN/BASE64 -D x",
            "FF /usr/bin/base64 -d /tmp/payload"
        ]
    );
    assert_eq!(got(DISCOVERY), ["PE /usr/bin/find / -name id_rsa"]);
    assert_eq!(got(HISTORY_DELETE), ["PE /bin/rm /root/.bash_history"]);
    assert_eq!(got(SCANNING), ["PE /usr/bin/nc 10.0.0.9 80"]);
    assert_eq!(got(JAVA_CHILD), ["PE /bin/sh -c id"]);
    assert_eq!(lines.iter().filter(|l| l["type"] == "FF").count(), 1);
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
