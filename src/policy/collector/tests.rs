//! The collector's tests: conditions end to end (load, resolve, compile, evaluate).

use super::*;
use crate::policy::actions;
use crate::policy::diag::Code;
use crate::policy::diag::Diags;
use crate::policy::ir::Pred;
use crate::policy::ir::TypeSet;
use crate::policy::loader::{load_text, LoadedFiles};
use crate::policy::set::PolicySet;
use crate::record::{Event, Record};
use crate::sysflow::model::*;
use std::sync::Arc;

fn rec(event: Event) -> Record {
    Record {
        event,
        header: Arc::new(Header {
            version: 5,
            exporter: "node-a".into(),
            ip: "10.0.0.1".into(),
            filename: "/data/trace-1".into(),
        }),
        process: Some(Arc::new(Process {
            oid: Oid {
                create_ts: 100,
                hpid: 42,
            },
            poid: Some(Oid {
                create_ts: 50,
                hpid: 7,
            }),
            exe: "/usr/bin/python3".into(),
            exe_args: "app.py --name=ünï,cöde".into(),
            uid: 1000,
            user_name: "alice".into(),
            tty: true,
            container_id: Some("c1".into()),
            ..Default::default()
        })),
        ancestors: Arc::from(vec![
            Arc::new(Process {
                oid: Oid {
                    create_ts: 50,
                    hpid: 7,
                },
                exe: "/bin/bash".into(),
                uid: 0,
                ..Default::default()
            }),
            Arc::new(Process {
                oid: Oid {
                    create_ts: 1,
                    hpid: 1,
                },
                exe: "/sbin/init".into(),
                ..Default::default()
            }),
        ]),
        container: Some(Arc::new(Container {
            id: "c1".into(),
            name: "web".into(),
            image: "nginx:1".into(),
            ctype: 0,
            privileged: true,
            ..Default::default()
        })),
        pod: None,
        file: Some(Arc::new(File {
            oid: [1; 20],
            path: "/etc/passwd".into(),
            restype: b'f' as i32,
            ..Default::default()
        })),
        new_file: None,
        policies: vec![],
        tags: vec![],
        op_names_net: false,
        frozen_lineage: None,
    }
}

fn ff() -> Record {
    rec(Event::FileFlow(FileFlow {
        ts: 10,
        tid: 42,
        op_flags: crate::sysflow::names::OP_OPEN | crate::sysflow::names::OP_READ_RECV,
        open_flags: crate::sysflow::names::O_RDONLY,
        fd: 3,
        ..Default::default()
    }))
}

fn nf() -> Record {
    let mut r = rec(Event::NetworkFlow(NetworkFlow {
        sip: 0x0100007f,
        sport: 40000,
        dip: 0x0101a8c0,
        dport: 443,
        proto: 6,
        op_flags: crate::sysflow::names::OP_CONNECT | crate::sysflow::names::OP_WRITE_SEND,
        ..Default::default()
    }));
    r.file = None;
    r
}

/// Loads and compiles `text` as file `file` (strict unless `lenient`).
fn set_of(file: &str, text: &str, lenient: bool) -> Result<PolicySet, String> {
    let mut lf = LoadedFiles::default();
    let mut d = Diags::new(!lenient);
    load_text(file, text, &mut lf, &mut d);
    let set = compile(&lf, &actions::registry(), &mut d);
    d.into_result().map_err(|e| e.to_string())?;
    Ok(set)
}

/// Compiles `cond` (strict unless `lenient`) and evaluates it on `r`.
fn eval_with(cond: &str, r: &Record, lenient: bool) -> Result<bool, String> {
    let text = format!(
        "- rule: t\n  desc: d\n  condition: '{}'\n",
        cond.replace('\'', "''")
    );
    let set = set_of("t.yaml", &text, lenient)?;
    Ok(set.rules[0].pred.eval(r))
}

fn t(cond: &str, r: &Record) -> bool {
    eval_with(cond, r, false).unwrap_or_else(|e| panic!("{cond}: {e}"))
}

#[test]
fn equality_and_negation() {
    let r = ff();
    assert!(t("sf.type = FF", &r));
    assert!(t("sf.type != PE", &r));
    assert!(t("sf.proc.name = python3", &r));
    assert!(t("sf.proc.uid = 1000", &r));
    assert!(
        !t("sf.proc.uid = 01000", &r),
        "string form of ints, as upstream"
    );
    assert!(t("sf.file.path = \"/etc/passwd\"", &r));
    assert!(t(
        "sf.container.name = web and sf.container.type = DOCKER",
        &r
    ));
    assert!(t("sf.container.privileged = 1", &r));
}

#[test]
fn comma_parts_either_semantics() {
    let r = nf();
    assert!(t("sf.net.ip = 192.168.1.1", &r));
    assert!(t("sf.net.ip = 127.0.0.1", &r));
    assert!(!t("sf.net.ip != 127.0.0.1", &r), "!= means no part equals");
    assert!(t("sf.net.port = 443", &r));
    assert!(t("sf.net.dport = 443 and sf.net.sport > 1024", &r));
    assert!(t("sf.opflags = SEND", &r));
    assert!(
        t("evt.type = connect", &r),
        "Falco's lowercase names also match"
    );
    assert!(t("evt.type = CONNECT", &r));
    assert!(t("sf.proc.aname = bash and sf.proc.aname = init", &r));
    assert!(t("sf.proc.apid = 7", &r));
    // Values with commas split too (upstream): the args hold "ünï" and "cöde" parts.
    assert!(t("sf.proc.args endswith cöde", &r));
    // ...and so do literals: any part of one side equal to any part of the other.
    assert!(t("sf.proc.args = \"app.py --name=ünï,nomatch\"", &r));
    assert!(!t("sf.proc.args = \"nomatch,other\"", &r));
}

#[test]
fn string_operators_with_unicode_and_case() {
    let r = ff();
    assert!(t("sf.proc.args contains ünï", &r));
    assert!(t("sf.proc.args icontains ÜNÏ", &r));
    assert!(!t("sf.proc.args contains ÜNÏ", &r));
    assert!(t("sf.proc.exe startswith /usr/", &r));
    assert!(t("sf.proc.exe endswith thon3", &r));
    assert!(t("sf.file.name = passwd and sf.file.directory = /etc", &r));
    assert!(t(
        "sf.file.is_open_read = true and sf.file.is_open_write = false",
        &r
    ));
    assert!(t("sf.file.openflags = RDONLY", &r));
}

#[test]
fn numeric_comparisons_and_negative_numbers() {
    let r = ff();
    assert!(t("sf.file.fd >= 3 and sf.file.fd < 4", &r));
    assert!(t("sf.ret > -1", &r));
    assert!(t("sf.ret <= 0", &r));
    assert!(!t("sf.ret < -1", &r));
    // Upstream: strings and quoted numbers compare as 0.
    let lax = |c: &str| eval_with(c, &r, true).unwrap();
    assert!(lax("sf.proc.exe < 1"));
    assert!(lax("sf.file.fd > '2' "), "'2' counts as 0");
    assert!(
        eval_with("sf.proc.exe < 1", &r, false)
            .unwrap_err()
            .contains("LOAD_NUMERIC_COMPARE"),
        "strict refuses it"
    );
}

#[test]
fn in_pmatch_lists_and_large_sets() {
    let r = ff();
    assert!(t("sf.proc.name in (bash, python3)", &r));
    assert!(t("sf.proc.name in ([sh, zsh], 'python3')", &r));
    assert!(!t("sf.proc.name in (python)", &r));
    assert!(t("sf.file.path pmatch (/etc/)", &r));
    let many: Vec<String> = (0..40).map(|i| format!("/nomatch{i}/")).collect();
    let cond = format!("sf.file.path pmatch ({}, passw)", many.join(", "));
    assert!(t(&cond, &r), "Aho-Corasick path");
    let cond = format!("sf.file.path pmatch ({})", many.join(", "));
    assert!(!t(&cond, &r));
    let set: Vec<String> = (0..100).map(|i| format!("p{i}")).collect();
    assert!(t(
        &format!("sf.proc.name in ({}, python3)", set.join(",")),
        &r
    ));
}

#[test]
fn exists_and_missing_entities() {
    let mut r = ff();
    assert!(t("sf.pproc.name exists", &r));
    assert!(t("sf.container.id exists", &r));
    assert!(!t("sf.pod.id exists", &r), "no pod");
    r.process = None;
    r.ancestors = Arc::from(Vec::new());
    r.container = None;
    r.file = None;
    assert!(!t("sf.proc.name exists", &r));
    assert!(
        t("sf.proc.name = \"\"", &r),
        "empty values compare as empty strings"
    );
    assert!(!t("sf.pproc.pid exists", &r));
    assert!(t("sf.file.path = \"\" and sf.container.name = \"\"", &r));
}

#[test]
fn parent_fields_and_falco_aliases() {
    let r = ff();
    assert!(t("sf.pproc.exe = /bin/bash and sf.pproc.pid = 7", &r));
    assert!(t(
        "proc.pname = bash and proc.name = python3 and user.name = alice",
        &r
    ));
    assert!(
        t("proc.tty = false", &r),
        "upstream: proc.tty reads the parent"
    );
    assert!(t("sf.proc.tty = true", &r));
    assert!(t("fd.name = passwd and fd.typechar = f", &r));
    assert!(t("sf.proc.exe != sf.pproc.exe", &r), "field against field");
    assert!(t("container.image = nginx:1", &r));
}

#[test]
fn json_path_attributes() {
    let mut r = rec(Event::K8sEvent(K8sEvent {
        kind: 2,
        action: 0,
        ts: 5,
        message: r#"{"items":[{"namespace":"robot-shop","name":"web"}]}"#.into(),
    }));
    r.file = None;
    assert!(t("sf.ke.message[items.0.namespace] = robot-shop", &r));
    assert!(!t("sf.ke.message[items.1.namespace] exists", &r));
    assert!(t(
        "sf.ke.kind = K8S_PODS and sf.ke.action = K8S_COMPONENT_ADDED",
        &r
    ));
}

#[test]
fn quotes_nested_and_escaped_forms() {
    let mut r = ff();
    Arc::make_mut(r.process.as_mut().unwrap()).exe = "75-system-update".into();
    assert!(t(r#"sf.proc.name startswith '"75-system-updat"'"#, &r));
}

#[test]
fn strict_errors_and_lenient_warnings() {
    let r = ff();
    let e = eval_with("sf.proc.nmae = bash", &r, false).unwrap_err();
    assert!(
        e.contains("t.yaml:3:") && e.contains("unknown attribute `sf.proc.nmae`"),
        "{e}"
    );
    assert!(e.contains("(strict mode) [LOAD_UNKNOWN_FIELD]"), "{e}");
    let e = eval_with("no_such_macro and sf.type = FF", &r, false).unwrap_err();
    assert!(e.contains("unknown macro `no_such_macro`"), "{e}");
    // Lenient: upstream's meaning (literal text / false).
    assert_eq!(eval_with("sf.proc.nmae = bash", &r, true), Ok(false));
    assert_eq!(eval_with("not no_such_macro", &r, true), Ok(true));
    let e = eval_with("sf.type = FF and (", &r, false).unwrap_err();
    assert!(e.contains("syntax error"), "{e}");
}

#[test]
fn not_not_is_identity_over_many_conditions() {
    let recs = [ff(), nf()];
    let conds = [
        "sf.type = FF",
        "sf.net.ip = 127.0.0.1",
        "sf.proc.name in (bash, python3) and sf.file.fd > 2",
        "sf.opflags = READ or sf.opflags = SEND",
        "sf.pproc.name exists",
    ];
    for c in conds {
        for r in &recs {
            assert_eq!(t(c, r), t(&format!("not not ({c})"), r), "{c}");
            assert_eq!(!t(c, r), t(&format!("not ({c})"), r), "{c}");
        }
    }
}

#[test]
fn macro_cycles_and_deep_chains_are_errors() {
    let mut text = String::from("- macro: a\n  condition: b\n- macro: b\n  condition: a\n");
    text.push_str("- rule: r\n  desc: d\n  condition: a\n");
    let e = set_of("c.yaml", &text, false).unwrap_err();
    assert!(e.contains("refers to itself"), "{e}");
    let mut text = String::new();
    for i in 0..5000 {
        text.push_str(&format!("- macro: m{i}\n  condition: m{}\n", i + 1));
    }
    text.push_str(
        "- macro: m5000\n  condition: sf.type = PE\n- rule: r\n  desc: d\n  condition: m0\n",
    );
    let e = set_of("deep.yaml", &text, false).unwrap_err();
    assert!(e.contains("nested more than 64"), "{e}");
}

#[test]
fn merged_alternatives_mean_the_same() {
    let r = ff();
    for (merged, cond) in [
        (
            true,
            "sf.file.directory startswith /usr or sf.file.directory startswith /etc",
        ),
        (
            false,
            "sf.file.directory startswith /usr or sf.file.directory startswith /var",
        ),
        (
            true,
            "sf.proc.name = bash or sf.proc.name = python3 or sf.type = PE",
        ),
        (false, "sf.proc.name != python3 or sf.proc.name != python3"),
    ] {
        assert_eq!(t(cond, &r), merged, "{cond}");
    }
    let text = "- rule: t\n  desc: d\n  condition: sf.proc.name = a or sf.proc.name = b or sf.proc.name = c\n";
    let set = set_of("t.yaml", text, false).unwrap();
    // The condition reads only the process: it is wrapped in a memoised node.
    let inner = match &set.rules[0].pred {
        Pred::Macro(_, inner) => inner.as_ref(),
        other => other,
    };
    match inner {
        Pred::Or(v) => assert_eq!(v.len(), 1, "three leaves merged into one"),
        Pred::StrCmp(..) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn type_inference() {
    let types = |c: &str| {
        let text = format!("- rule: t\n  desc: d\n  condition: {c}\n");
        set_of("t.yaml", &text, true).unwrap().rules[0].types
    };
    let pe = TypeSet::of(Kind::ProcessEvent);
    let ff = TypeSet::of(Kind::FileFlow);
    assert_eq!(types("sf.type = PE"), pe);
    assert_eq!(types("sf.type = PE and sf.proc.name = x"), pe);
    assert_eq!(types("sf.type = PE or sf.type = FF"), pe.or(ff));
    assert_eq!(types("sf.type in (PE, FF)"), pe.or(ff));
    assert_eq!(types("not sf.type = PE"), pe.complement());
    assert_eq!(types("not (sf.type != PE)"), pe);
    // Process fields are empty for Kubernetes events: `= x` cannot hold there.
    assert_eq!(
        types("sf.proc.name = x"),
        TypeSet::of(Kind::K8sEvent).complement()
    );
    assert_eq!(types("sf.file.is_open_write = true"), ff);
    assert_eq!(types("sf.type = PE and sf.type = FF"), TypeSet::NONE);
}

/// Names of the rules of `set` matching `r`, in order.
fn matching(set: &PolicySet, r: &Record) -> Vec<String> {
    set.rules
        .iter()
        .filter(|x| x.enabled && x.pred.eval(r))
        .map(|x| x.name.to_string())
        .collect()
}

#[test]
fn rules_see_the_nearest_earlier_definition_as_upstream() {
    // python3 is the process of `ff()`.
    let text = "
- list: l
  items: [bash]
- macro: m
  condition: sf.proc.name in (l)
- rule: r1
  desc: d
  condition: m
- list: l
  items: [python3]
- rule: r2
  desc: d
  condition: m
- rule: r0
  desc: d
  condition: later
- macro: later
  condition: sf.proc.name = bash
- macro: later
  condition: sf.proc.name = python3
";
    let set = set_of("n.yaml", text, true).unwrap();
    // r1 sees l = [bash]; r2 the nearer [python3] (the macro expands at the rule); r0
    // uses `later` before any definition: the file's last one.
    assert_eq!(matching(&set, &ff()), ["r2", "r0"]);
    // Across files: a second file's rules see the first file's last definitions unless
    // the second file redefines them (then its last definition, even before it).
    let mut lf = LoadedFiles::default();
    let mut d = Diags::new(false);
    load_text(
        "a.yaml",
        "- list: l\n  items: [bash]\n- list: l\n  items: [python3]\n",
        &mut lf,
        &mut d,
    );
    load_text(
            "b.yaml",
            "- rule: early\n  desc: d\n  condition: sf.proc.name in (l)\n- list: l\n  items: [zsh]\n- rule: late\n  desc: d\n  condition: sf.proc.name in (l)\n- list: l\n  items: [bash]\n",
            &mut lf,
            &mut d,
        );
    load_text(
        "c.yaml",
        "- rule: c\n  desc: d\n  condition: sf.proc.name in (l)\n",
        &mut lf,
        &mut d,
    );
    let set = compile(&lf, &actions::registry(), &mut d);
    assert!(d.errors.is_empty());
    let mut r = ff();
    assert!(
        matching(&set, &r).is_empty(),
        "early sees b's last [bash], late [zsh], c [bash]"
    );
    Arc::make_mut(r.process.as_mut().unwrap()).exe = "/bin/zsh".into();
    assert_eq!(matching(&set, &r), ["late"]);
    Arc::make_mut(r.process.as_mut().unwrap()).exe = "/bin/bash".into();
    assert_eq!(matching(&set, &r), ["early", "c"]);
}

#[test]
fn duplicate_rules_both_run_and_are_warned() {
    let text = "- rule: r\n  desc: d\n  condition: sf.type = FF\n- rule: r\n  desc: e\n  condition: sf.proc.name = python3\n";
    let set = set_of("d.yaml", text, true).unwrap();
    assert_eq!(matching(&set, &ff()), ["r", "r"]);
    assert!(set.warnings.iter().any(|w| w.code == Code::DuplicateRule
        && w.to_string()
            .starts_with("d.yaml:4:9: rule `r` is also defined at d.yaml:1:9")));
}

#[test]
fn falco_append_override_exceptions_and_disable_only() {
    let text = "
- required_plugin_versions:
    - name: json
      version: 0.7.0
- rule: r
  desc: base
  condition: sf.type = FF
  priority: low
  tags: [a]
- rule: r
  append: true
  condition: and sf.proc.name = python3
  tags: [b]
- rule: other
  desc: d
  condition: sf.type = FF
  exceptions:
    - name: py
      fields: [sf.proc.name, sf.file.path]
      comps: [=, startswith]
      values: [[python3, /etc/]]
- rule: third
  desc: d
  condition: sf.type = PE
- rule: third
  override:
    condition: replace
    priority: replace
  condition: sf.type = FF or sf.type = NF
  priority: high
- rule: fourth
  desc: d
  condition: sf.type = FF
- rule: fourth
  enabled: false
- rule: fifth
  desc: d
  condition: sf.type = FF
  exceptions:
    - name: names
      fields: sf.proc.name
      values: [bash]
- rule: fifth
  override:
    exceptions: append
  exceptions:
    - name: names
      values: [python3]
";
    let set = set_of("f.yaml", text, true).unwrap();
    assert_eq!(set.counts.rules, 5, "change entries are not rules");
    let r = ff();
    assert_eq!(matching(&set, &r), ["r", "third"]);
    let r0 = &set.rules[0];
    assert_eq!(&*r0.tags, ["a".to_string(), "b".to_string()]);
    assert_eq!(set.rules[2].priority, 3);
    assert!(!set.rules[3].enabled, "disable-only entry");
    let mut other = ff();
    Arc::make_mut(other.process.as_mut().unwrap()).exe = "/bin/sh".into();
    assert_eq!(matching(&set, &other), ["other", "third", "fifth"]);
    // A change entry without a rule before it is a lax warning.
    let e = set_of("g.yaml", "- rule: ghost\n  enabled: false\n", false).unwrap_err();
    assert!(e.contains("LOAD_NO_SUCH_ENTRY"), "{e}");
    let e = set_of("g.yaml", "- rule: r\n  desc: d\n  condition: sf.type = FF\n- rule: r\n  append: true\n  condition: sf.proc.name = x\n", true).unwrap_err();
    assert!(e.contains("must start with `and` or `or`"), "{e}");
}

#[test]
fn unknown_actions_priorities_and_unsupported_fields_warn() {
    let text = "- rule: a\n  desc: d\n  condition: sf.type = FF\n  priority: loud\n  actions: [podname, now]\n- rule: k\n  desc: d\n  condition: sf.type = FF and k8s.ns.name = default\n";
    // By default the name is literal text, as upstream: the rule runs.
    let set = set_of("w.yaml", text, true).unwrap();
    assert!(set.rules[1].enabled);
    let w = set
        .warnings
        .iter()
        .find(|w| w.code == Code::UnsupportedField)
        .unwrap();
    assert!(w.message.contains("compared as the literal text"), "{w}");
    let mut lf = LoadedFiles::default();
    let mut d = Diags::new(false);
    load_text("w.yaml", text, &mut lf, &mut d);
    let opts = CompileOptions {
        disable_unsupported: true,
        ..Default::default()
    };
    let set = compile_with(&lf, &actions::registry(), &mut d, opts);
    let codes: Vec<Code> = set.warnings.iter().map(|w| w.code).collect();
    assert!(codes.contains(&Code::UnknownPriority), "{codes:?}");
    assert!(codes.contains(&Code::UnknownAction), "{codes:?}");
    assert_eq!(
        set.rules[0].actions.len(),
        1,
        "`now` kept, `podname` ignored"
    );
    assert!(set.rules[0].enabled);
    assert!(
        !set.rules[1].enabled,
        "needs a field SysFlow does not carry"
    );
    let w = set
        .warnings
        .iter()
        .find(|w| w.code == Code::UnsupportedField)
        .unwrap();
    assert!(w.to_string().starts_with("w.yaml:8:"), "{w}");
    assert!(w.message.contains("`k8s.ns.name`"), "{w}");
    let e = set_of("w.yaml", text, false).unwrap_err();
    assert!(e.contains("3 policy errors"), "{e}");
}

#[test]
fn expansion_budget_refuses_exponential_macros_and_lists_quickly() {
    // Each macro uses the previous one twice: 2^40 nodes expanded.
    let mut text = String::from("- macro: m0\n  condition: sf.proc.name = a\n");
    for i in 1..=40 {
        text.push_str(&format!(
            "- macro: m{i}\n  condition: m{p} or m{p}\n",
            p = i - 1
        ));
    }
    text.push_str("- rule: r\n  desc: d\n  condition: m40\n");
    let t0 = std::time::Instant::now();
    let e = set_of("x.yaml", &text, true).unwrap_err();
    assert!(e.contains("refused by the expansion budget"), "{e}");
    assert!(
        t0.elapsed() < std::time::Duration::from_secs(20),
        "{:?}",
        t0.elapsed()
    );
    let mut text = String::from("- list: l0\n  items: [a, b]\n");
    for i in 1..=40 {
        text.push_str(&format!("- list: l{i}\n  items: [l{p}, l{p}]\n", p = i - 1));
    }
    text.push_str("- rule: r\n  desc: d\n  condition: sf.proc.name in (l40)\n");
    let e = set_of("y.yaml", &text, true).unwrap_err();
    assert!(e.contains("more than 100000 items"), "{e}");
    let e = set_of("z.yaml", "- list: a\n  items: [b]\n- list: b\n  items: [a]\n- rule: r\n  desc: d\n  condition: sf.proc.name in (a)\n", true).unwrap_err();
    assert!(e.contains("list `a` refers to itself"), "{e}");
}

#[test]
fn lints_unused_and_impossible() {
    let text = "- list: unused_l\n  items: [x]\n- macro: unused_m\n  condition: sf.type = PE\n- rule: r\n  desc: d\n  condition: sf.type = PE and sf.type = FF\n- rule: p\n  desc: d\n  condition: sf.net.dport in (80, 1:1024)\n";
    let set = set_of("l.yaml", text, false).unwrap();
    let codes: Vec<Code> = set.warnings.iter().map(|w| w.code).collect();
    for c in [
        Code::UnusedList,
        Code::UnusedMacro,
        Code::NeverMatches,
        Code::ImpossibleItem,
    ] {
        assert!(codes.contains(&c), "{c:?} in {codes:?}");
    }
}

#[test]
fn falco_operators_glob_intersects_bytes_and_escaped_quotes() {
    let r = ff();
    assert!(t("sf.file.path glob '/etc/*'", &r));
    assert!(t("sf.file.path glob '/etc/pass??'", &r));
    assert!(!t("sf.file.path glob '/usr/*'", &r));
    assert!(
        !t("sf.file.path glob '/ETC/*'", &r),
        "glob is case-sensitive"
    );
    assert!(t("sf.proc.aname intersects (init, zsh)", &r));
    assert!(!t("sf.proc.aname intersects (zsh, fish)", &r));
    // 2f657463 is "/etc".
    assert!(t("sf.file.path bstartswith 2f657463", &r));
    assert!(t("sf.file.path bcontains 706173", &r));
    assert!(!t("sf.file.path bcontains 7a7a", &r));
    assert!(
        eval_with("sf.file.path bcontains 7g", &r, true).is_err(),
        "not hex"
    );
    let mut q = ff();
    Arc::make_mut(q.process.as_mut().unwrap()).exe_args = r#"say "hi""#.into();
    assert!(t(r#"sf.proc.args = "say \"hi\"""#, &q));
    assert!(t(
        r#"sf.proc.args contains '\'' or sf.proc.args endswith "\"""#,
        &q
    ));
}

/// One rule with condition `cond` (YAML text as written), compiled with or without
/// upstream's quirks.
fn compile_q(cond: &str, quirks: bool) -> (PolicySet, Diags) {
    let text = format!("- rule: t\n  desc: d\n  condition: {cond}\n");
    let mut lf = LoadedFiles::default();
    let mut d = Diags::new(false);
    load_text("q.yaml", &text, &mut lf, &mut d);
    let opts = CompileOptions {
        quirks,
        ..Default::default()
    };
    let set = compile_with(&lf, &actions::registry(), &mut d, opts);
    (set, d)
}

#[test]
fn upstream_quirks_in_conditions_and_the_fixed_meaning() {
    let eval_q = |cond: &str, r: &Record, quirks: bool| {
        let (set, d) = compile_q(&format!("'{cond}'"), quirks);
        assert!(d.errors.is_empty(), "{:?}", d.errors);
        set.rules[0].pred.eval(r)
    };
    let mut f = ff();
    if let Event::FileFlow(x) = &mut f.event {
        x.num_rrecv_bytes = 100;
    }
    // Doubled flow counters.
    assert!(eval_q("sf.flow.rbytes = 200", &f, true));
    assert!(eval_q("sf.flow.rbytes = 100", &f, false));
    // Open flags read the source address on network flows (0x0100007f: bit 0 set).
    let n = nf();
    assert!(eval_q("sf.file.is_open_read = true", &n, true));
    assert!(!eval_q("sf.file.is_open_read = true", &n, false));
    // The source address reads the open flags on file flows (O_RDONLY = 1).
    assert!(eval_q("sf.net.sip = 1.0.0.0", &f, true));
    assert!(!eval_q("sf.net.sip = 1.0.0.0", &f, false));
    // The op-flag name cache: a file flow whose flags value was first named for a
    // network flow reads SEND, not WRITE.
    let mut w = ff();
    if let Event::FileFlow(x) = &mut w.event {
        x.op_flags = crate::sysflow::names::OP_WRITE_SEND;
    }
    assert!(eval_q("sf.opflags = WRITE", &w, true));
    w.op_names_net = true;
    assert!(eval_q("sf.opflags = SEND", &w, true));
    assert!(!eval_q("sf.opflags = WRITE", &w, true));
    assert!(
        eval_q("sf.opflags = WRITE", &w, false),
        "fixed: the record's own type"
    );
    // `evt.type` is upstream's op-flag names: Falco's lowercase names only with `fixed`.
    assert!(eval_q("evt.type = CONNECT", &n, true));
    assert!(!eval_q("evt.type = connect", &n, true));
    assert!(!eval_q("evt.type in (execve, connect)", &n, true));
    assert!(eval_q("evt.type = connect", &n, false));
    assert!(eval_q("evt.type in (execve, connect)", &n, false));
    // ... and the user is told, at the comparison's position.
    let codes = |cond: &str, quirks: bool| {
        compile_q(cond, quirks)
            .1
            .warnings
            .iter()
            .map(|w| (w.code, w.pos.line, w.pos.col))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        codes("sf.type = NF and evt.type in (open, CONNECT)", true),
        [(Code::FalcoEventType, 3, 31)]
    );
    assert_eq!(codes("evt.type = execve", false), []);
    assert_eq!(codes("evt.type = EXEC", true), []);
}

#[test]
fn every_attribute_upstream_maps_resolves() {
    let r = ff();
    // The raw-array pod forms read as "" upstream; evt.arg.uid is the process uid.
    assert!(t(
        "sf.pod.hostip+ = \"\" and not sf.pod.services+ exists",
        &r
    ));
    assert!(t("evt.arg.uid = 1000", &r));
}
