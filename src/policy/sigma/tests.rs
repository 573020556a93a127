use std::sync::Arc;

use super::*;
use crate::policy::actions;
use crate::policy::collector::{compile_with, CompileOptions};
use crate::policy::set::PolicySet;
use crate::record::{Event, Record};
use crate::sysflow::model::*;
use crate::sysflow::names::{OP_EXEC, OP_OPEN, OP_READ_RECV};

#[test]
fn base64_of_known_values() {
    assert_eq!(base64_encode("hello"), "aGVsbG8=");
    assert_eq!(base64_encode("ab"), "YWI=");
    assert_eq!(base64_encode("abc"), "YWJj");
}

/// A record of process `exe args`: an execution (`PE` EXEC) or a file read (`FF`).
fn rec(exe: &str, args: &str, exec: bool) -> Record {
    let event = if exec {
        Event::ProcessEvent(ProcessEvent {
            op_flags: OP_EXEC,
            ..Default::default()
        })
    } else {
        Event::FileFlow(FileFlow {
            op_flags: OP_OPEN | OP_READ_RECV,
            ..Default::default()
        })
    };
    Record {
        event,
        header: Arc::new(Header::default()),
        process: Some(Arc::new(Process {
            exe: exe.into(),
            exe_args: args.into(),
            ..Default::default()
        })),
        ancestors: Arc::from(Vec::new()),
        container: None,
        pod: None,
        file: (!exec).then(|| {
            Arc::new(File {
                path: "/etc/hosts".into(),
                restype: b'f' as i32,
                ..Default::default()
            })
        }),
        new_file: None,
        policies: vec![],
        tags: vec![],
        op_names_net: false,
        frozen_lineage: None,
    }
}

/// Loads one Sigma rule file (`detection` and what follows it) as upstream (`upstream`) or by
/// the specification, and compiles it.
fn load(detection: &str, upstream: bool) -> (PolicySet, Diags) {
    let text = format!(
        "title: t\nid: r1\nlogsource:\n  category: process_creation\n  product: linux\ndetection:\n{detection}"
    );
    let mut cfg = SigmaConfig {
        upstream,
        ..Default::default()
    };
    cfg.fields.insert("Image".into(), "sf.proc.exe".into());
    cfg.fields
        .insert("CommandLine".into(), "sf.proc.cmdline".into());
    let mut files = LoadedFiles::default();
    let mut diags = Diags::new(false);
    load_sigma_text("r.yml", &text, &cfg, &mut files, &mut diags);
    let opts = CompileOptions {
        quirks: upstream,
        ..Default::default()
    };
    let set = compile_with(&files, &actions::registry(), &mut diags, opts);
    (set, diags)
}

/// How many of the set's rules match `r`.
fn hits(set: &PolicySet, r: &Record) -> usize {
    set.rules.iter().filter(|x| x.pred.eval(r)).count()
}

fn codes(d: &Diags) -> Vec<(Code, u64)> {
    d.warnings.iter().map(|w| (w.code, w.pos.line)).collect()
}

#[test]
fn upstream_ignores_the_logsource_and_sigma_does_not() {
    let det = "  sel:\n    Image|endswith: /base64\n  condition: sel\n";
    let flow = rec("/usr/bin/base64", "-d x", false);
    let exec = rec("/usr/bin/base64", "-d x", true);
    let (up, d) = load(det, true);
    assert!(d.errors.is_empty() && d.warnings.is_empty(), "{d:?}");
    assert_eq!((hits(&up, &exec), hits(&up, &flow)), (1, 1));
    let (spec, _) = load(det, false);
    assert_eq!((hits(&spec, &exec), hits(&spec, &flow)), (1, 0));
}

#[test]
fn upstream_ands_the_maps_of_a_list_and_says_so() {
    let det = "  sel:\n    - CommandLine|contains: history\n    - CommandLine|endswith: .txt\n  condition: sel\n";
    let only_second = rec("/bin/rm", "notes.txt", true);
    let both = rec("/bin/rm", "history.txt", true);
    let (up, d) = load(det, true);
    assert_eq!((hits(&up, &only_second), hits(&up, &both)), (0, 1));
    assert_eq!(codes(&d), [(Code::SigmaUpstreamMeaning, 7)]);
    let (spec, d) = load(det, false);
    assert_eq!((hits(&spec, &only_second), hits(&spec, &both)), (1, 1));
    assert!(d.warnings.is_empty(), "{:?}", d.warnings);
}

#[test]
fn upstream_values_are_literal_case_insensitive_text_split_on_commas() {
    // `*` is a wildcard only for Sigma; upstream compares it as text, case-insensitively, and
    // splits the value (and the field) on `,` as every upstream comparison does.
    let det = "  sel:\n    CommandLine|contains: 'a*b'\n  condition: sel\n";
    let star = rec("/bin/x", "A*B", true);
    let wild = rec("/bin/x", "aXXb", true);
    let (up, d) = load(det, true);
    assert_eq!((hits(&up, &star), hits(&up, &wild)), (1, 0));
    assert_eq!(codes(&d), [(Code::SigmaUpstreamMeaning, 8)]);
    let (spec, _) = load(det, false);
    assert_eq!((hits(&spec, &star), hits(&spec, &wild)), (1, 1));
    let det = "  sel:\n    Image|endswith: '/nc,/ncat'\n  condition: sel\n";
    let (up, _) = load(det, true);
    assert_eq!(hits(&up, &rec("/usr/bin/ncat", "", true)), 1);
    assert_eq!(hits(&up, &rec("/usr/bin/nc", "", true)), 1);
    let (spec, _) = load(det, false);
    assert_eq!(hits(&spec, &rec("/usr/bin/ncat", "", true)), 0);
}

#[test]
fn upstream_ignores_re_and_unknown_modifiers() {
    let det = "  sel:\n    Image|re: '/usr/bin/.*'\n  condition: sel\n";
    let (up, d) = load(det, true);
    assert_eq!(hits(&up, &rec("/usr/bin/find", "", true)), 0);
    assert_eq!(
        hits(&up, &rec("/USR/BIN/.*", "", true)),
        1,
        "the text itself"
    );
    assert_eq!(codes(&d), [(Code::SigmaUpstreamMeaning, 8)]);
    let (spec, _) = load(det, false);
    assert_eq!(hits(&spec, &rec("/usr/bin/find", "", true)), 1);
    // `cased` has no effect upstream: still case-insensitive.
    let det = "  sel:\n    Image|cased: /BIN/X\n  condition: sel\n";
    let (up, _) = load(det, true);
    assert_eq!(hits(&up, &rec("/bin/x", "", true)), 1);
    let (spec, _) = load(det, false);
    assert_eq!(hits(&spec, &rec("/bin/x", "", true)), 0);
    // Upstream stops on `cidr`: an error naming the rule file here, in both readings.
    let det = "  sel:\n    CommandLine|cidr: 10.0.0.0/8\n  condition: sel\n";
    for upstream in [true, false] {
        let (_, d) = load(det, upstream);
        assert!(
            d.errors
                .iter()
                .any(|e| e.pos.line == 8 && e.message.contains("cidr")),
            "{:?}",
            d.errors
        );
    }
}

#[test]
fn upstream_selectors_conditions_and_names() {
    let exec = rec("/usr/bin/find", "/", true);
    // `1 of x` without a wildcard is false upstream (its compiler has no case for it).
    let det = "  sel:\n    Image|endswith: /find\n  condition: 1 of sel\n";
    let (up, d) = load(det, true);
    assert_eq!(hits(&up, &exec), 0);
    assert_eq!(
        codes(&d),
        [(Code::SigmaUpstreamMeaning, 9), (Code::NeverMatches, 2)]
    );
    let (spec, _) = load(det, false);
    assert_eq!(hits(&spec, &exec), 1);
    // `1 of them` takes every search upstream, `_` names included.
    let det = "  sel:\n    Image|endswith: /none\n  _other:\n    Image|endswith: /find\n  condition: 1 of them\n";
    let (up, _) = load(det, true);
    assert_eq!(hits(&up, &exec), 1);
    let (spec, _) = load(det, false);
    assert_eq!(hits(&spec, &exec), 0);
    // An undefined name is false upstream (an error by the specification).
    let det = "  sel:\n    Image|endswith: /find\n  condition: sel or nosuch\n";
    let (up, d) = load(det, true);
    assert_eq!(hits(&up, &exec), 1);
    assert!(d.errors.is_empty(), "{:?}", d.errors);
    assert_eq!(codes(&d), [(Code::SigmaUpstreamMeaning, 9)]);
    let (_, d) = load(det, false);
    assert!(!d.errors.is_empty());
    // Several conditions: one rule each upstream (both alert), one ORed rule by the spec.
    let det = "  sel:\n    Image|endswith: /find\n  usr:\n    Image|startswith: /usr\n  condition:\n    - sel\n    - usr\n";
    let (up, _) = load(det, true);
    assert_eq!((up.rules.len(), hits(&up, &exec)), (2, 2));
    assert!(up.rules.iter().all(|r| &*r.name == "r1"));
    let (spec, _) = load(det, false);
    assert_eq!((spec.rules.len(), hits(&spec, &exec)), (1, 1));
}

#[test]
fn upstream_windash_and_all() {
    let det = "  sel:\n    CommandLine|windash|contains: ' -x'\n  condition: sel\n";
    let (up, _) = load(det, true);
    assert_eq!(hits(&up, &rec("/bin/t", "a -x", true)), 1);
    assert_eq!(hits(&up, &rec("/bin/t", "a /x", true)), 1);
    assert_eq!(hits(&up, &rec("/bin/t", "a x", true)), 0);
    let det = "  sel:\n    CommandLine|contains|all:\n      - aa\n      - bb\n  condition: sel\n";
    let (up, _) = load(det, true);
    assert_eq!(hits(&up, &rec("/bin/t", "aa bb", true)), 1);
    assert_eq!(hits(&up, &rec("/bin/t", "aa", true)), 0);
}
