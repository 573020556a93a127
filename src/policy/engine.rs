//! Evaluation: drop filters first, then the rules of the record's type bucket in file order;
//! every matching rule is recorded; `alert` emits only matched records, `enrich` all of them.

use std::path::Path;
use std::sync::Arc;

use super::actions;
use super::compile::{compile, Memo, PolicySet, TypeSet};
use super::loader::{load_path, PolicyError};
use crate::record::{PolicyMatch, Record};

/// Output mode of the policy engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Only records that match at least one rule are emitted.
    Alert,
    /// Every record that is not dropped is emitted; matches add policies and tags.
    Enrich,
}

impl Mode {
    /// Parses a mode. Upstream's legacy `filter` and `bypass` behave as `enrich` (as upstream,
    /// which maps every unknown mode to enrich); the second value says a warning is due.
    pub fn parse(s: &str) -> Option<(Mode, bool)> {
        match s.trim().to_ascii_lowercase().as_str() {
            "alert" => Some((Mode::Alert, false)),
            "enrich" | "" => Some((Mode::Enrich, false)),
            "filter" | "bypass" => Some((Mode::Enrich, true)),
            _ => None,
        }
    }
}

/// Loads and compiles a policy path (file or directory).
pub fn load_policies(path: &Path, lenient: bool) -> Result<PolicySet, PolicyError> {
    let loaded = load_path(path)?;
    compile(&loaded, &actions::registry(), lenient)
}

/// Evaluates records against a compiled set.
#[derive(Clone)]
pub struct Engine {
    pub set: Arc<PolicySet>,
    pub mode: Mode,
}

impl Engine {
    pub fn new(set: Arc<PolicySet>, mode: Mode) -> Self {
        Engine { set, mode }
    }

    /// Applies the policies to one record; returns whether it is emitted.
    pub fn apply(&self, rec: &mut Record) -> bool {
        self.apply_memo(rec, &mut Memo::default())
    }

    /// As [`Engine::apply`], reusing `memo`'s allocation across records.
    pub fn apply_memo(&self, rec: &mut Record, memo: &mut Memo) -> bool {
        memo.reset(self.set.macro_slots);
        let kind = rec.kind();
        let Some(bit) = TypeSet::bit(kind) else {
            return false;
        };
        let b = bit as usize;
        for f in &self.set.filters {
            if f.types.contains(kind) && f.per_type[b].eval_memo(rec, memo) {
                return false;
            }
        }
        let mut matched = false;
        for &i in &self.set.index[bit as usize] {
            let rule = &self.set.rules[i];
            if rule.per_type[b].eval_memo(rec, memo) {
                matched = true;
                rec.policies.push(PolicyMatch {
                    id: rule.name.clone(),
                    desc: rule.desc.clone(),
                    priority: rule.priority,
                    tags: rule.tags.clone(),
                });
                for a in &rule.actions {
                    a.run(rec);
                }
            }
        }
        matched || self.mode == Mode::Enrich
    }

    /// Names of the rules that match `rec` when every enabled rule is evaluated (no index);
    /// the reference the type index is checked against.
    pub fn matches_without_index(&self, rec: &Record) -> Vec<Arc<str>> {
        let kind = rec.kind();
        if self.set.filters.iter().any(|f| f.pred.eval(rec)) {
            return Vec::new();
        }
        self.set
            .rules
            .iter()
            .filter(|r| r.enabled && r.prefilter.contains(kind) && r.pred.eval(rec))
            .map(|r| r.name.clone())
            .collect()
    }

    /// Processes a batch in order.
    pub fn process(&self, input: Vec<Record>, out: &mut Vec<Record>) {
        let mut memo = Memo::default();
        for mut r in input {
            if self.apply_memo(&mut r, &mut memo) {
                out.push(r);
            }
        }
    }
}

/// Loads and compiles several policy paths as one set (in the order given).
pub fn load_policy_paths(paths: &[&Path], lenient: bool) -> Result<PolicySet, PolicyError> {
    let mut all = super::loader::LoadedFiles::default();
    for p in paths {
        let l = load_path(p)?;
        all.entries.extend(l.entries);
        all.files.extend(l.files);
        all.warnings.extend(l.warnings);
    }
    compile(&all, &actions::registry(), lenient)
}

/// A synthetic rule set of `n` rules for benchmarks: each rule constrains the record type and
/// tests process, file or network values that real rules test; few of them match.
pub fn synthetic_rules(n: usize) -> String {
    let types = ["PE", "FF", "NF", "FE", "NE", "PF", "FF"];
    let mut out = String::from(
        "- list: shells\n  items: [bash, sh, zsh, dash, ksh]\n- macro: spawned_shell\n  condition: sf.type = PE and sf.opflags = EXEC and sf.proc.name in (shells)\n",
    );
    for i in 0..n {
        let t = types[i % types.len()];
        let cond = match i % 5 {
            0 => format!("sf.type = {t} and sf.proc.name in (tool{i}, helper{i}, svc{i}) and sf.proc.uid = {i}"),
            1 => format!("sf.type = {t} and sf.file.path startswith /opt/app{i}/ and not sf.proc.name = python3"),
            2 => format!("sf.type = {t} and sf.net.dport = {} and sf.proc.exe contains agent{i}", 10000 + i),
            3 => format!("sf.type = {t} and spawned_shell and sf.pproc.name = service{i}"),
            _ => format!("sf.type = {t} and sf.proc.args icontains --secret{i} and sf.container.name exists"),
        };
        out.push_str(&format!(
            "- rule: synthetic rule {i}\n  desc: synthetic\n  condition: {cond}\n  priority: medium\n"
        ));
    }
    out
}
