//! Per-shard evaluation state: macro values memoised per record (and, for macros that read
//! only the process, its ancestry, container and pod, across records of the same entities),
//! and the dispatch cache of buckets by record type and operation.

use std::sync::Arc;

pub use super::dispatch::{dispatch_key, Bucket};
use super::eval::MacroCache;
use super::set::PolicySet;
use crate::record::Record;

/// Per-shard evaluation state: the macro values of the current record and the dispatch
/// cache (condition sets specialised per dispatch key) of the policy set in force.
#[derive(Debug, Default)]
pub struct Memo {
    /// 0 unknown, 1 false, 2 true, per macro id.
    values: Vec<u8>,
    /// The [`PolicySet::id`] the buckets and values are for.
    set_id: u64,
    /// The entities of the previous record (held, so their addresses cannot be reused while
    /// compared): when the next record has the same ones, entity-only macros keep their values.
    entities: Option<Entities>,
    /// Parked entity-only values of recently seen processes, by process address.
    recent: Vec<Option<(Entities, Vec<u8>)>>,
    /// Records whose entities differed from the previous record's, and of those, how many
    /// found their entity-only values parked (diagnostics).
    pub switches: u64,
    pub restored: u64,
    /// Candidate rule positions of the current record (reused allocation).
    pub cands: Vec<u32>,
    /// Records seen by this shard: one in [`TIME_SAMPLE`] has its rule evaluations timed.
    pub ticks: u64,
    buckets: rustc_hash::FxHashMap<(u8, i32, i32), Arc<Bucket>>,
}

/// Most dispatch keys kept per shard. Real traces have a few dozen (type × op flags × open
/// flags); past the cap, records of new keys use the per-type conditions (same result,
/// slower), so a stream of unusual flag combinations cannot grow memory without bound.
pub(crate) const MAX_BUCKETS: usize = 4096;

/// One record in this many has each rule evaluation timed (the time, scaled by this factor,
/// goes to the rule's `eval_nanos`): timing every evaluation would cost more than most rules.
pub const TIME_SAMPLE: u64 = 1024;

#[derive(Debug)]
struct Entities {
    process: Option<Arc<crate::sysflow::model::Process>>,
    ancestors: Arc<[Arc<crate::sysflow::model::Process>]>,
    container: Option<Arc<crate::sysflow::model::Container>>,
    pod: Option<Arc<crate::sysflow::model::Pod>>,
}

fn same<T: ?Sized>(a: &Option<Arc<T>>, b: &Option<Arc<T>>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => Arc::ptr_eq(a, b),
        (None, None) => true,
        _ => false,
    }
}

/// Slots of the per-process table of parked macro values.
pub(crate) const RECENT: usize = 256;

fn addr<T: ?Sized>(p: &Option<Arc<T>>) -> usize {
    p.as_ref()
        .map(|a| Arc::as_ptr(a) as *const u8 as usize)
        .unwrap_or(0)
}

impl Entities {
    pub(crate) fn slot(&self) -> usize {
        (addr(&self.process) >> 4) % RECENT
    }
    pub(crate) fn slot_of(rec: &Record) -> usize {
        (addr(&rec.process) >> 4) % RECENT
    }
    pub(crate) fn of(rec: &Record) -> Self {
        Entities {
            process: rec.process.clone(),
            ancestors: rec.ancestors.clone(),
            container: rec.container.clone(),
            pod: rec.pod.clone(),
        }
    }
    pub(crate) fn same_as(&self, rec: &Record) -> bool {
        same(&self.process, &rec.process)
            && Arc::ptr_eq(&self.ancestors, &rec.ancestors)
            && same(&self.container, &rec.container)
            && same(&self.pod, &rec.pod)
    }
}

impl Memo {
    /// Forgets everything built for another policy set (a hot reload swapped it).
    pub(crate) fn follow(&mut self, set: &PolicySet) {
        if self.set_id != set.id {
            self.buckets.clear();
            self.set_id = set.id;
            self.entities = None;
            self.recent.clear();
        }
    }

    /// Prepares for evaluating `rec` with `set`: forgets the macro values that depend on the
    /// event; entity-only values are kept when `rec` has the previous record's entities, and
    /// restored from a small per-process table when its process was seen recently (records
    /// of a few busy processes interleave).
    pub fn start(&mut self, set: &PolicySet, rec: &Record) {
        self.follow(set);
        if self.values.len() != set.macro_slots {
            self.entities = None;
            self.recent.clear();
        }
        if !self.entities.as_ref().is_some_and(|e| e.same_as(rec)) {
            self.switches += 1;
            if self.recent.is_empty() {
                self.recent.resize_with(RECENT, || None);
            }
            // Park the previous entities' values, then take the new ones' if parked.
            if let Some(prev) = self.entities.take() {
                let i = prev.slot();
                let values = std::mem::take(&mut self.values);
                self.recent[i] = Some((prev, values));
            }
            let i = Entities::slot_of(rec);
            match self.recent[i].take() {
                Some((e, values)) if e.same_as(rec) && values.len() == set.macro_slots => {
                    self.restored += 1;
                    self.values = values;
                    self.entities = Some(e);
                }
                other => {
                    if let Some((_, values)) = other {
                        self.values = values;
                    }
                    self.values.clear();
                    self.values.resize(set.macro_slots, 0);
                    self.entities = Some(Entities::of(rec));
                    return;
                }
            }
        }
        for &i in &set.record_macros {
            self.values[i] = 0;
        }
    }

    /// The bucket of `rec`'s dispatch key in `set`, built on first use; `None` when the
    /// cache is full and the key is new.
    pub fn bucket(&mut self, set: &PolicySet, bit: u8, rec: &Record) -> Option<Arc<Bucket>> {
        self.follow(set);
        let key = dispatch_key(bit, rec);
        if let Some(b) = self.buckets.get(&key) {
            return Some(b.clone());
        }
        if self.buckets.len() >= MAX_BUCKETS {
            return None;
        }
        let b = Arc::new(set.bucket_for(bit, rec));
        self.buckets.insert(key, b.clone());
        Some(b)
    }

    /// Dispatch keys built so far (diagnostics and tests).
    pub fn buckets(&self) -> usize {
        self.buckets.len()
    }

    /// The buckets built so far with their dispatch keys (diagnostics: `sfbench`).
    pub fn bucket_list(&self) -> Vec<((u8, i32, i32), Arc<Bucket>)> {
        let mut v: Vec<_> = self.buckets.iter().map(|(k, b)| (*k, b.clone())).collect();
        v.sort_by_key(|(k, _)| *k);
        v
    }
}

/// The shard's macro values, kept across a record's rules (and entity-only ones across
/// records of the same entities: [`Memo::start`]).
impl MacroCache for Memo {
    fn get(&self, id: usize) -> Option<bool> {
        match self.values.get(id) {
            Some(1) => Some(false),
            Some(2) => Some(true),
            _ => None,
        }
    }
    fn set(&mut self, id: usize, v: bool) {
        if id >= self.values.len() {
            self.values.resize(id + 1, 0);
        }
        self.values[id] = if v { 2 } else { 1 };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macro_values_are_tristate_and_grow_on_demand() {
        let mut m = Memo::default();
        assert_eq!(MacroCache::get(&m, 5), None);
        MacroCache::set(&mut m, 5, false);
        MacroCache::set(&mut m, 1, true);
        assert_eq!(MacroCache::get(&m, 5), Some(false));
        assert_eq!(MacroCache::get(&m, 1), Some(true));
        assert_eq!(MacroCache::get(&m, 0), None);
        assert_eq!(m.buckets(), 0);
    }

    #[test]
    fn records_of_the_same_entities_share_a_slot() {
        let a = crate::policy::attr::blank_record(crate::sysflow::model::Kind::ProcessEvent);
        let e = Entities::of(&a);
        assert!(e.same_as(&a));
        assert_eq!(e.slot(), Entities::slot_of(&a));
        let mut b = a.clone();
        b.process = Some(Arc::new(crate::sysflow::model::Process::default()));
        assert!(!e.same_as(&b));
    }
}
