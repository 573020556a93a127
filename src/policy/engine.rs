//! Evaluation: drop filters first, then the rules of the record's type bucket in file order;
//! every matching rule is recorded; `alert` emits only matched records, `enrich` all of them.

use std::path::Path;
use std::sync::Arc;

use super::actions;
use super::compile::{compile, PolicySet, TypeSet};
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
        let kind = rec.kind();
        let Some(bit) = TypeSet::bit(kind) else {
            return false;
        };
        for f in &self.set.filters {
            if f.types.contains(kind) && f.pred.eval(rec) {
                return false;
            }
        }
        let mut matched = false;
        for &i in &self.set.index[bit as usize] {
            let rule = &self.set.rules[i];
            if rule.pred.eval(rec) {
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
        for mut r in input {
            if self.apply(&mut r) {
                out.push(r);
            }
        }
    }
}
