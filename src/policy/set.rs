//! A compiled policy set: rules, filters, the type index and the counts `-test` prints.

use std::sync::Arc;

use super::actions::Action;
use super::diag::Warning;
use super::dispatch::Bucket;
pub use super::dispatch::EntityGate;
use super::ir::{Pred, TypeSet};
use super::source::Pos;
use crate::record::Record;

/// A compiled rule.
#[derive(Clone)]
pub struct Rule {
    pub name: Arc<str>,
    pub desc: Arc<str>,
    pub priority: i64,
    pub tags: Arc<[String]>,
    pub actions: Vec<Arc<dyn Action>>,
    pub pred: Pred,
    /// Types the rule is evaluated for: inferred from the condition, intersected with
    /// `prefilter`.
    pub types: TypeSet,
    /// The `prefilter` types as written (all types when absent).
    pub prefilter: TypeSet,
    /// The condition specialised per record type (by type bit), what the engine evaluates.
    pub per_type: Arc<[Pred]>,
    pub enabled: bool,
    pub pos: Pos,
    /// Records this rule matched. Shared by every shard; carried over to the rule of the
    /// same name when the set is reloaded, so the count stays monotonic (a metrics counter).
    pub matches: Arc<std::sync::atomic::AtomicU64>,
    /// Nanoseconds spent evaluating this rule's condition (sampled: see the engine), shared
    /// and carried over like `matches`.
    pub eval_nanos: Arc<std::sync::atomic::AtomicU64>,
}

impl std::fmt::Debug for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rule")
            .field("name", &self.name)
            .field("priority", &self.priority)
            .field("types", &self.types)
            .finish()
    }
}

/// A compiled `filter`/`drop` entry.
#[derive(Debug, Clone)]
pub struct Filter {
    pub name: String,
    pub pred: Pred,
    pub types: TypeSet,
    /// The condition specialised per record type (by type bit).
    pub per_type: Arc<[Pred]>,
}

/// Entry counts of a loaded policy set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub rules: usize,
    pub macros: usize,
    pub lists: usize,
    pub filters: usize,
}

/// A compiled, indexed policy set.
#[derive(Debug, Clone, Default)]
pub struct PolicySet {
    pub rules: Vec<Rule>,
    pub filters: Vec<Filter>,
    /// Per type bit: indexes of the enabled rules that can match, in file order.
    pub index: [Vec<usize>; 7],
    pub counts: Counts,
    pub warnings: Vec<Warning>,
    /// Distinct compiled macros (the size of a [`Memo`]).
    pub macro_slots: usize,
    /// Macros whose value depends on the event (the others depend only on the process,
    /// its ancestry, container and pod, and carry over to the next record of the same
    /// entities).
    pub record_macros: Vec<usize>,
    /// Unique per compiled set (dispatch caches are rebuilt when it changes).
    pub id: u64,
    /// One memoised macro ORing the rules whose whole condition depends only on the entities
    /// (process, ancestry, container, pod), and which rules those are: while it is false for
    /// a process, none of them is looked at (see [`EntityGate`]).
    pub entity_gate: Option<EntityGate>,
}

pub(crate) static NEXT_SET_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl PolicySet {
    /// Number of warnings per code, in code order.
    pub fn warning_counts(&self) -> Vec<(&'static str, usize)> {
        let mut m: std::collections::BTreeMap<&'static str, usize> = Default::default();
        for w in &self.warnings {
            *m.entry(w.code.as_str()).or_default() += 1;
        }
        m.into_iter().collect()
    }

    /// Why this set cannot serve alert mode (no enabled rule: every record would be
    /// dropped), if so.
    pub fn empty_for_alerts(&self) -> Option<String> {
        if self.rules.iter().any(|r| r.enabled) {
            return None;
        }
        Some(format!(
            "no enabled rule ({} rule(s) loaded); alert mode would drop every record",
            self.rules.len()
        ))
    }

    /// The filters and rules for records with `probe`'s dispatch key (type bit `bit`): what
    /// a shard caches per key (`memo::Memo::bucket`).
    pub fn bucket_for(&self, bit: u8, probe: &Record) -> Bucket {
        let b = bit as usize;
        let kind = probe.kind();
        let mut out = Bucket {
            drop: false,
            filters: Vec::new(),
            rules: Vec::new(),
            index: Default::default(),
        };
        for f in &self.filters {
            if !f.types.contains(kind) {
                continue;
            }
            match super::passes::memo_first(f.per_type[b].specialise_for_key(probe)) {
                Pred::Const(false) => {}
                Pred::Const(true) => {
                    out.drop = true;
                    out.filters.clear();
                    return out;
                }
                p => out.filters.push(p),
            }
        }
        for &i in &self.index[b] {
            match super::passes::memo_first(self.rules[i].per_type[b].specialise_for_key(probe)) {
                Pred::Const(false) => {}
                p => out.rules.push((i, p)),
            }
        }
        out.index = super::dispatch::RuleIndex::build(&out.rules, self.entity_gate.as_ref());
        out
    }
}

/// Upstream's priority numbers (Informational 0, Low 1, Medium 2, High 3).
pub fn priority(name: &str) -> Option<i64> {
    Some(match name.trim().to_ascii_lowercase().as_str() {
        "informational" | "info" | "debug" | "notice" | "low" => 1,
        "medium" | "warning" => 2,
        "high" | "error" | "critical" | "emergency" | "alert" => 3,
        _ => return None,
    })
}
