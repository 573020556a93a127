//! Entity cache and record assembly (upstream's reader tables + flattener).
//!
//! Entities are kept as `Arc`s so a record shares them instead of copying strings. Tables are
//! reset on every header (as upstream) and also bounded, so a stream that runs for months with
//! process churn keeps flat memory:
//! * a process that exited (a process event with the EXIT flag) is dropped once
//!   `exit_grace_records` further records have passed and none of its children is still held
//!   (so the ancestry of a living process is never cut);
//! * when a table still grows past its limit, the oldest tenth of its entries (by last update)
//!   is evicted and counted;
//! * when the tables together hold more than `max_bytes` (strings and arrays included: see
//!   `footprint`), the oldest tenth of the heaviest table is evicted, and again, until they
//!   fit.

mod footprint;

use std::collections::VecDeque;
use std::sync::Arc;

use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

use crate::record::{Event, Record};
use crate::sysflow::model::*;
use footprint::Footprint;

/// Size limits of the entity tables.
#[derive(Debug, Clone, Copy)]
pub struct CacheLimits {
    pub processes: usize,
    pub files: usize,
    pub containers: usize,
    pub pods: usize,
    /// Records that pass between a process's exit and its removal (late flows still resolve).
    pub exit_grace_records: u64,
    /// Bytes the four tables may hold together (`cache.maxbytes`).
    pub max_bytes: usize,
}

impl Default for CacheLimits {
    fn default() -> Self {
        CacheLimits {
            processes: 65_536,
            files: 131_072,
            containers: 16_384,
            pods: 16_384,
            exit_grace_records: 100_000,
            max_bytes: DEFAULT_MAX_BYTES,
        }
    }
}

/// Default of `cache.maxbytes`: room for the default 65,536 processes with an environment of
/// about 2 KiB each, and the other tables at a fraction of their entry limits.
pub const DEFAULT_MAX_BYTES: usize = 256 << 20;

/// Counters of what the cache could not resolve or had to drop.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Events whose process was not in the cache (their process fields are empty).
    pub missing_process: u64,
    /// Flows/events whose file was not in the cache.
    pub missing_file: u64,
    /// Processes whose container was not in the cache.
    pub missing_container: u64,
    /// Containers whose pod was not in the cache.
    pub missing_pod: u64,
    /// Ancestry walks cut short by a `poid` cycle.
    pub ancestry_cycles: u64,
    /// Entities evicted by the size limits.
    pub evicted: u64,
    /// Exited processes removed after their grace period.
    pub reaped: u64,
    /// Header records seen (each resets the tables).
    pub headers: u64,
}

/// Longest ancestry chain we follow (a guard in addition to the cycle check).
const MAX_ANCESTRY: usize = 256;

struct ProcSlot {
    /// By object state: CREATED, MODIFIED, REUP. Lookup prefers MODIFIED > CREATED > REUP.
    states: [Option<Arc<Process>>; 3],
    /// What the states hold, in bytes.
    bytes: usize,
    last_ts: i64,
    /// Cached ancestry (parents) and the generation it was computed at.
    chain: Option<(u64, Arc<[Arc<Process>]>)>,
    /// Upstream's process-tree cache (`quirks: upstream`): the lineage (the process, then its
    /// parents) as it was at the process's first event, kept until the slot goes.
    frozen: Option<Arc<[Arc<Process>]>>,
    /// The parent this slot was counted under (its first `poid` found in the cache).
    counted_parent: Option<Oid>,
    /// Slots that name this process as their counted parent.
    children: u32,
    exited: bool,
    /// The exit grace period has passed; remove as soon as `children` is 0.
    reapable: bool,
}

impl ProcSlot {
    fn best(&self) -> Option<&Arc<Process>> {
        self.states[ObjectState::Modified as usize]
            .as_ref()
            .or(self.states[ObjectState::Created as usize].as_ref())
            .or(self.states[ObjectState::Reup as usize].as_ref())
    }
}

struct Stamped<T> {
    value: Arc<T>,
    last_ts: i64,
    bytes: usize,
}

impl<T: Footprint> Stamped<T> {
    fn new(value: Arc<T>, last_ts: i64) -> Self {
        let bytes = value.footprint();
        Stamped {
            value,
            last_ts,
            bytes,
        }
    }
}

/// The tables, as indexes of [`EntityCache::bytes`].
const PROCS: usize = 0;
const FILES: usize = 1;
const CONTAINERS: usize = 2;
const PODS: usize = 3;

/// The reader's entity tables.
pub struct EntityCache {
    header: Arc<Header>,
    containers: HashMap<String, Stamped<Container>>,
    pods: HashMap<String, Stamped<Pod>>,
    procs: HashMap<Oid, ProcSlot>,
    files: HashMap<Foid, Stamped<File>>,
    /// Bumped when a change can alter a cached ancestry chain (a process with children was
    /// updated, or a parent that was missing arrived), so chains are recomputed.
    generation: u64,
    /// Parents that ancestry walks looked for and did not find.
    missing_parents: HashSet<Oid>,
    /// Exited processes waiting out their grace period: (oid, record sequence of the exit).
    exits: VecDeque<(Oid, u64)>,
    /// Records applied so far.
    seq: u64,
    limits: CacheLimits,
    stats: CacheStats,
    /// Bytes held per table (`PROCS`, `FILES`, `CONTAINERS`, `PODS`).
    bytes: [usize; 4],
    empty_chain: Arc<[Arc<Process>]>,
    /// Records carry the lineage of each process's first event (upstream's process-tree
    /// cache) for conditions.
    freeze_lineage: bool,
    /// The entities the last event resolved for its process. Runs of events of one process
    /// are the common case (a flow per file it touches), and the tables only change on
    /// entity records, reaps and headers, which clear this: the next event of that process
    /// then clones these instead of repeating three table lookups and a container-id hash.
    last: Option<(Oid, Resolved)>,
    /// How the memo is doing, so it costs nothing where it does not pay: storing an entry
    /// clones its `Arc`s and replacing it drops them (about eight atomic operations), which
    /// on a stream that interleaves processes buys nothing (8 hits in 4.2 M lookups on the
    /// generated trace, against 4.1 M of 4.5 M on upstream's). `last_hit`: the entry in
    /// `last` was used; `memo_pays`: the entry before it was. While it does not pay, an
    /// entry is stored only at the second event in a row of one process (`prev`).
    last_hit: bool,
    memo_pays: bool,
    prev: Option<Oid>,
}

/// What [`EntityCache::assemble`] looks up for a process (see `EntityCache::last`).
#[derive(Clone)]
struct Resolved {
    process: Arc<Process>,
    ancestors: Arc<[Arc<Process>]>,
    frozen: Option<Arc<[Arc<Process>]>>,
    container: Option<Arc<Container>>,
    pod: Option<Arc<Pod>>,
    /// Named but not in the tables (counted again for every record, as without the memo).
    missing_container: bool,
    missing_pod: bool,
}

impl Default for EntityCache {
    fn default() -> Self {
        Self::new(CacheLimits::default())
    }
}

/// Makes room, once, for twice a table's limit. A table at its limit loses a tenth to
/// eviction and fills up again, leaving tombstones; hashbrown then rehashes in place only
/// while it is at most half full, and otherwise doubles — which it did once, late in a
/// months-long stream, holding both tables at the moment of the copy (a step of 10 MB in the
/// soak benchmark at the default file limit). Reserving when the table is half way to its
/// limit, while the table is still small, gets that growth done early and cheaply, and
/// keeps every later rehash in place.
fn ensure_room<K: Eq + std::hash::Hash, V>(map: &mut HashMap<K, V>, limit: usize) {
    let want = limit.saturating_mul(2);
    if map.len() >= limit / 2 && map.capacity() < want {
        map.reserve(want - map.len());
    }
}

/// Removes the oldest tenth of `map` (at least one entry); returns the entries removed and
/// the bytes they held.
fn evict_oldest<K: Clone + Eq + std::hash::Hash, V>(
    map: &mut HashMap<K, V>,
    ts: impl Fn(&V) -> i64,
    bytes: impl Fn(&V) -> usize,
) -> (u64, usize) {
    if map.is_empty() {
        return (0, 0);
    }
    let n = (map.len() / 10).max(1);
    let mut by_age: Vec<(i64, K)> = map.iter().map(|(k, v)| (ts(v), k.clone())).collect();
    by_age.select_nth_unstable_by_key(n - 1, |(t, _)| *t);
    let mut freed = 0;
    for (_, k) in by_age.into_iter().take(n) {
        if let Some(v) = map.remove(&k) {
            freed += bytes(&v);
        }
    }
    (n as u64, freed)
}

impl EntityCache {
    pub fn new(limits: CacheLimits) -> Self {
        EntityCache {
            header: Arc::new(Header {
                version: 0,
                exporter: String::new(),
                ip: String::new(),
                filename: String::new(),
            }),
            containers: HashMap::default(),
            pods: HashMap::default(),
            procs: HashMap::default(),
            files: HashMap::default(),
            generation: 0,
            missing_parents: HashSet::default(),
            exits: VecDeque::new(),
            seq: 0,
            limits,
            stats: CacheStats::default(),
            bytes: [0; 4],
            empty_chain: Arc::from(Vec::new()),
            last: None,
            last_hit: false,
            memo_pays: true,
            prev: None,
            freeze_lineage: false,
        }
    }

    /// Records carry the lineage each process had at its first event since the last header
    /// (`Record::frozen_lineage`), as upstream's process-tree cache gives it to conditions.
    pub fn with_frozen_lineage(mut self, on: bool) -> Self {
        self.freeze_lineage = on;
        self
    }

    pub fn stats(&self) -> CacheStats {
        self.stats
    }

    /// Number of processes, files, containers and pods held.
    pub fn sizes(&self) -> (usize, usize, usize, usize) {
        (
            self.procs.len(),
            self.files.len(),
            self.containers.len(),
            self.pods.len(),
        )
    }

    /// Drops every entity (a header starts a new trace or a collector reconnect).
    pub fn reset(&mut self) {
        self.last = None;
        self.containers.clear();
        self.pods.clear();
        self.procs.clear();
        self.files.clear();
        self.missing_parents.clear();
        self.exits.clear();
        self.bytes = [0; 4];
        self.generation += 1;
    }

    /// Bytes the tables hold now (an estimate: strings, arrays and the entities' structs).
    pub fn bytes(&self) -> usize {
        self.bytes.iter().sum()
    }

    /// Evicts from the heaviest table until the tables fit in `max_bytes` (or that table
    /// holds a single entity: the one just added may be alone larger than the limit).
    fn enforce_bytes(&mut self) {
        while self.bytes() > self.limits.max_bytes {
            let Some(t) = (0..4).max_by_key(|t| self.bytes[*t]) else {
                return;
            };
            let len = match t {
                PROCS => self.procs.len(),
                FILES => self.files.len(),
                CONTAINERS => self.containers.len(),
                _ => self.pods.len(),
            };
            if len <= 1 {
                return;
            }
            let (n, freed) = match t {
                PROCS => evict_oldest(&mut self.procs, |s| s.last_ts, |s| s.bytes),
                FILES => evict_oldest(&mut self.files, |s| s.last_ts, |s| s.bytes),
                CONTAINERS => evict_oldest(&mut self.containers, |s| s.last_ts, |s| s.bytes),
                _ => evict_oldest(&mut self.pods, |s| s.last_ts, |s| s.bytes),
            };
            self.bytes[t] = self.bytes[t].saturating_sub(freed);
            self.stats.evicted += n;
            self.last = None;
        }
    }

    /// Applies one datum: entities update the tables (returning `None`), events and flows come
    /// back as assembled records.
    pub fn apply(&mut self, sf: SysFlow) -> Option<Record> {
        self.seq += 1;
        if let Some((_, at)) = self.exits.front() {
            if at + self.limits.exit_grace_records <= self.seq {
                self.reap();
            }
        }
        let ev = match Event::from_sysflow(sf) {
            Ok(ev) => ev,
            Err(entity) => {
                self.update(entity);
                return None;
            }
        };
        Some(self.assemble(ev))
    }

    fn update(&mut self, entity: SysFlow) {
        self.last = None;
        match entity {
            SysFlow::Header(h) => {
                self.stats.headers += 1;
                self.reset();
                self.header = Arc::from(h);
            }
            SysFlow::Container(c) => {
                ensure_room(&mut self.containers, self.limits.containers);
                if self.containers.len() >= self.limits.containers {
                    let (n, freed) = evict_oldest(&mut self.containers, |s| s.last_ts, |s| s.bytes);
                    self.stats.evicted += n;
                    self.bytes[CONTAINERS] = self.bytes[CONTAINERS].saturating_sub(freed);
                }
                let ts = self.generation as i64;
                let entry: Stamped<Container> = Stamped::new(Arc::from(c), ts);
                self.bytes[CONTAINERS] += entry.bytes;
                if let Some(old) = self.containers.insert(entry.value.id.clone(), entry) {
                    self.bytes[CONTAINERS] = self.bytes[CONTAINERS].saturating_sub(old.bytes);
                }
                self.enforce_bytes();
            }
            SysFlow::Pod(p) => {
                ensure_room(&mut self.pods, self.limits.pods);
                if self.pods.len() >= self.limits.pods {
                    let (n, freed) = evict_oldest(&mut self.pods, |s| s.last_ts, |s| s.bytes);
                    self.stats.evicted += n;
                    self.bytes[PODS] = self.bytes[PODS].saturating_sub(freed);
                }
                let ts = p.ts;
                let entry: Stamped<Pod> = Stamped::new(Arc::from(p), ts);
                self.bytes[PODS] += entry.bytes;
                if let Some(old) = self.pods.insert(entry.value.id.clone(), entry) {
                    self.bytes[PODS] = self.bytes[PODS].saturating_sub(old.bytes);
                }
                self.enforce_bytes();
            }
            SysFlow::Process(mut p) => {
                // Upstream trims exe and args once when the process arrives.
                trim_in_place(&mut p.exe);
                trim_in_place(&mut p.exe_args);
                let state = p.state as usize;
                let ts = p.ts;
                let oid = p.oid;
                let weight = p.footprint();
                if let Some(slot) = self.procs.get_mut(&oid) {
                    slot.last_ts = slot.last_ts.max(ts);
                    let old = slot.states[state].replace(Arc::from(p));
                    let old = old.map_or(0, |o| o.footprint());
                    slot.bytes = (slot.bytes + weight).saturating_sub(old);
                    self.bytes[PROCS] = (self.bytes[PROCS] + weight).saturating_sub(old);
                    slot.chain = None;
                    slot.exited = false;
                    slot.reapable = false;
                    if slot.children > 0 {
                        self.generation += 1;
                    }
                    self.enforce_bytes();
                    return;
                }
                ensure_room(&mut self.procs, self.limits.processes);
                if self.procs.len() >= self.limits.processes {
                    let (n, freed) = evict_oldest(&mut self.procs, |s| s.last_ts, |s| s.bytes);
                    self.stats.evicted += n;
                    self.bytes[PROCS] = self.bytes[PROCS].saturating_sub(freed);
                }
                if self.missing_parents.remove(&oid) {
                    self.generation += 1;
                }
                let counted_parent = p.poid.filter(|pp| match self.procs.get_mut(pp) {
                    Some(parent) => {
                        parent.children += 1;
                        true
                    }
                    None => false,
                });
                let mut states = [None, None, None];
                states[state] = Some(Arc::from(p));
                self.bytes[PROCS] += weight;
                self.procs.insert(
                    oid,
                    ProcSlot {
                        states,
                        bytes: weight,
                        last_ts: ts,
                        chain: None,
                        frozen: None,
                        counted_parent,
                        children: 0,
                        exited: false,
                        reapable: false,
                    },
                );
                self.enforce_bytes();
            }
            SysFlow::File(f) => {
                ensure_room(&mut self.files, self.limits.files);
                if !self.files.contains_key(&f.oid) && self.files.len() >= self.limits.files {
                    let (n, freed) = evict_oldest(&mut self.files, |s| s.last_ts, |s| s.bytes);
                    self.stats.evicted += n;
                    self.bytes[FILES] = self.bytes[FILES].saturating_sub(freed);
                }
                let ts = f.ts;
                let entry: Stamped<File> = Stamped::new(Arc::from(f), ts);
                self.bytes[FILES] += entry.bytes;
                if let Some(old) = self.files.insert(entry.value.oid, entry) {
                    self.bytes[FILES] = self.bytes[FILES].saturating_sub(old.bytes);
                }
                self.enforce_bytes();
            }
            // Events never reach here (split off in `apply`).
            _ => {}
        }
    }

    fn process(&self, oid: &Oid) -> Option<Arc<Process>> {
        self.procs.get(oid).and_then(|s| s.best().cloned())
    }

    /// Parents of `oid`, nearest first, following `poid` with a cycle guard.
    ///
    /// A chain recomputed after a generation change that holds the very same parents as the
    /// one before is the one before (same `Arc`): a generation bumps for any parent's update,
    /// and consumers key their work on the chain's address (the JSON encoder renders a
    /// process's `pproc` section once per process and chain). Measured on the live stream:
    /// 27 % of process sections re-rendered before, as every chain changed address.
    fn ancestry(&mut self, oid: &Oid) -> Arc<[Arc<Process>]> {
        let generation = self.generation;
        let previous = match self.procs.get(oid) {
            Some(slot) => match &slot.chain {
                Some((g, chain)) if *g == generation => return chain.clone(),
                Some((_, chain)) => Some(chain.clone()),
                None => None,
            },
            None => return self.empty_chain.clone(),
        };
        let mut chain: Vec<Arc<Process>> = Vec::with_capacity(8);
        let mut seen: Vec<Oid> = vec![*oid];
        let mut cur = self.process(oid).and_then(|p| p.poid);
        while let Some(parent) = cur {
            if seen.contains(&parent) || chain.len() >= MAX_ANCESTRY {
                self.stats.ancestry_cycles += 1;
                break;
            }
            let Some(p) = self.process(&parent) else {
                if self.missing_parents.len() < 65_536 {
                    self.missing_parents.insert(parent);
                }
                break;
            };
            seen.push(parent);
            cur = p.poid;
            chain.push(p);
        }
        let chain: Arc<[Arc<Process>]> = match previous {
            _ if chain.is_empty() => self.empty_chain.clone(),
            Some(prev)
                if prev.len() == chain.len()
                    && prev.iter().zip(&chain).all(|(a, b)| Arc::ptr_eq(a, b)) =>
            {
                prev
            }
            _ => Arc::from(chain),
        };
        if let Some(slot) = self.procs.get_mut(oid) {
            slot.chain = Some((generation, chain.clone()));
        }
        chain
    }

    /// The lineage `oid` had at its first event (recorded now if this is it).
    fn frozen(
        &mut self,
        oid: &Oid,
        p: &Arc<Process>,
        ancestors: &Arc<[Arc<Process>]>,
    ) -> Arc<[Arc<Process>]> {
        let Some(slot) = self.procs.get_mut(oid) else {
            return Arc::from(vec![p.clone()]);
        };
        slot.frozen
            .get_or_insert_with(|| {
                std::iter::once(p.clone())
                    .chain(ancestors.iter().cloned())
                    .collect()
            })
            .clone()
    }

    fn file(&mut self, foid: &Foid) -> Option<Arc<File>> {
        match self.files.get(foid) {
            Some(f) => Some(f.value.clone()),
            None => {
                self.stats.missing_file += 1;
                None
            }
        }
    }

    /// The process `oid` and its lineage, container and pod, counting what is missing.
    fn resolve(&mut self, oid: &Oid) -> Option<Resolved> {
        let Some(p) = self.process(oid) else {
            self.stats.missing_process += 1;
            return None;
        };
        let ancestors = self.ancestry(oid);
        let frozen = self
            .freeze_lineage
            .then(|| self.frozen(oid, &p, &ancestors));
        let mut r = Resolved {
            process: p.clone(),
            ancestors,
            frozen,
            container: None,
            pod: None,
            missing_container: false,
            missing_pod: false,
        };
        if let Some(cid) = &p.container_id {
            match self.containers.get(cid) {
                Some(c) => {
                    let c = c.value.clone();
                    if let Some(pid) = &c.pod_id {
                        match self.pods.get(pid) {
                            Some(pd) => r.pod = Some(pd.value.clone()),
                            None => r.missing_pod = true,
                        }
                    }
                    r.container = Some(c);
                }
                None => r.missing_container = true,
            }
        }
        self.stats.missing_container += u64::from(r.missing_container);
        self.stats.missing_pod += u64::from(r.missing_pod);
        Some(r)
    }

    fn assemble(&mut self, event: Event) -> Record {
        if let Event::ProcessEvent(pe) = &event {
            if pe.op_flags & crate::sysflow::names::OP_EXIT != 0 {
                if let Some(slot) = self.procs.get_mut(&pe.proc_oid) {
                    if !slot.exited {
                        slot.exited = true;
                        self.exits.push_back((pe.proc_oid, self.seq));
                    }
                }
            }
        }
        let resolved = match event.proc_oid() {
            Some(oid) => {
                let run = self.prev.replace(oid) == Some(oid);
                match &self.last {
                    Some((o, r)) if *o == oid => {
                        self.stats.missing_container += u64::from(r.missing_container);
                        self.stats.missing_pod += u64::from(r.missing_pod);
                        self.last_hit = true;
                        Some(r.clone())
                    }
                    held => {
                        if held.is_some() {
                            self.memo_pays = self.last_hit;
                        }
                        let r = self.resolve(&oid);
                        if let Some(r) = &r {
                            if self.memo_pays || run {
                                self.last = Some((oid, r.clone()));
                                self.last_hit = false;
                            }
                        }
                        r
                    }
                }
            }
            None => None,
        };
        let mut rec = match resolved {
            Some(r) => {
                let mut rec = Record::new(event, self.header.clone(), r.ancestors);
                rec.process = Some(r.process);
                rec.frozen_lineage = r.frozen;
                rec.container = r.container;
                rec.pod = r.pod;
                rec
            }
            None => Record::new(event, self.header.clone(), self.empty_chain.clone()),
        };
        match &rec.event {
            Event::FileFlow(ff) => {
                let foid = ff.file_oid;
                rec.file = self.file(&foid);
            }
            Event::FileEvent(fe) => {
                let (foid, newf) = (fe.file_oid, fe.new_file_oid);
                rec.file = self.file(&foid);
                if let Some(n) = newf {
                    rec.new_file = self.file(&n);
                }
            }
            _ => {}
        }
        rec
    }
}

impl EntityCache {
    /// Removes exited processes whose grace period is over and that no held process names as
    /// parent; a removal can make its own parent removable.
    fn reap(&mut self) {
        self.last = None;
        while let Some(&(oid, at)) = self.exits.front() {
            if at + self.limits.exit_grace_records > self.seq {
                break;
            }
            self.exits.pop_front();
            let mut cur = Some(oid);
            let mut first = true;
            while let Some(o) = cur.take() {
                let Some(slot) = self.procs.get_mut(&o) else {
                    break;
                };
                if first {
                    if !slot.exited {
                        break; // re-created after its exit
                    }
                    slot.reapable = true;
                    first = false;
                }
                if !(slot.exited && slot.reapable && slot.children == 0) {
                    break;
                }
                let parent = slot.counted_parent;
                if let Some(gone) = self.procs.remove(&o) {
                    self.bytes[PROCS] = self.bytes[PROCS].saturating_sub(gone.bytes);
                }
                self.stats.reaped += 1;
                if let Some(p) = parent.and_then(|p| self.procs.get_mut(&p).map(|s| (p, s))) {
                    p.1.children = p.1.children.saturating_sub(1);
                    cur = Some(p.0);
                }
            }
        }
    }
}

fn trim_in_place(s: &mut String) {
    let t = s.trim();
    if t.len() != s.len() {
        *s = t.to_string();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proc(hpid: i64, parent: Option<i64>, exe: &str, state: ObjectState) -> SysFlow {
        SysFlow::Process(Box::new(Process {
            state,
            oid: Oid { create_ts: 1, hpid },
            poid: parent.map(|p| Oid {
                create_ts: 1,
                hpid: p,
            }),
            exe: exe.to_string(),
            ..Default::default()
        }))
    }

    fn pe(hpid: i64) -> SysFlow {
        SysFlow::ProcessEvent(ProcessEvent {
            proc_oid: Oid { create_ts: 1, hpid },
            ..Default::default()
        })
    }

    #[test]
    fn modified_wins_over_created_and_reup() {
        let mut c = EntityCache::default();
        assert!(c
            .apply(proc(10, None, "/a-reup", ObjectState::Reup))
            .is_none());
        assert_eq!(c.apply(pe(10)).unwrap().process.unwrap().exe, "/a-reup");
        c.apply(proc(10, None, "/a-created", ObjectState::Created));
        assert_eq!(c.apply(pe(10)).unwrap().process.unwrap().exe, "/a-created");
        c.apply(proc(10, None, "/a-modified", ObjectState::Modified));
        c.apply(proc(10, None, "/a-created-again", ObjectState::Created));
        assert_eq!(c.apply(pe(10)).unwrap().process.unwrap().exe, "/a-modified");
    }

    #[test]
    fn ancestry_follows_poid_and_survives_cycles() {
        let mut c = EntityCache::default();
        c.apply(proc(1, None, "/init", ObjectState::Created));
        c.apply(proc(2, Some(1), "/bash", ObjectState::Created));
        c.apply(proc(3, Some(2), "/ls", ObjectState::Created));
        let r = c.apply(pe(3)).unwrap();
        let names: Vec<_> = r.ancestors.iter().map(|p| p.exe.as_str()).collect();
        assert_eq!(names, ["/bash", "/init"]);
        // A MODIFIED parent is seen by the child's cached chain.
        c.apply(proc(2, Some(1), "/zsh", ObjectState::Modified));
        let r = c.apply(pe(3)).unwrap();
        assert_eq!(r.ancestors[0].exe, "/zsh");
        // A cycle 5 -> 6 -> 5 terminates.
        c.apply(proc(5, Some(6), "/x", ObjectState::Created));
        c.apply(proc(6, Some(5), "/y", ObjectState::Created));
        let r = c.apply(pe(5)).unwrap();
        assert_eq!(r.ancestors.len(), 1);
        assert_eq!(c.stats().ancestry_cycles, 1);
    }

    #[test]
    fn an_unchanged_chain_keeps_its_address_across_generations() {
        let mut c = EntityCache::default();
        c.apply(proc(1, None, "/init", ObjectState::Created));
        c.apply(proc(2, Some(1), "/bash", ObjectState::Created));
        c.apply(proc(3, Some(2), "/ls", ObjectState::Created));
        c.apply(proc(7, Some(1), "/sshd", ObjectState::Created));
        c.apply(proc(8, Some(7), "/sh", ObjectState::Created));
        let before = c.apply(pe(3)).unwrap().ancestors;
        // 7 has a child: its update starts a new generation, every chain is recomputed.
        let g = c.generation;
        c.apply(proc(7, Some(1), "/sshd2", ObjectState::Modified));
        assert!(c.generation > g);
        let after = c.apply(pe(3)).unwrap().ancestors;
        assert!(Arc::ptr_eq(&before, &after), "same parents, same chain");
        assert_eq!(c.apply(pe(8)).unwrap().ancestors[0].exe, "/sshd2");
        // A parent of 3 changes: a new chain, with the new parent.
        c.apply(proc(2, Some(1), "/zsh", ObjectState::Modified));
        let changed = c.apply(pe(3)).unwrap().ancestors;
        assert!(!Arc::ptr_eq(&before, &changed));
        assert_eq!(changed[0].exe, "/zsh");
        assert_eq!(changed[1].exe, "/init");
    }

    #[test]
    fn missing_entities_give_empty_fields_and_counters() {
        let mut c = EntityCache::default();
        let r = c.apply(pe(42)).unwrap();
        assert!(r.process.is_none());
        assert!(r.ancestors.is_empty());
        let ff = SysFlow::FileFlow(FileFlow {
            proc_oid: Oid {
                create_ts: 1,
                hpid: 42,
            },
            file_oid: [7; 20],
            ..Default::default()
        });
        let r = c.apply(ff).unwrap();
        assert!(r.file.is_none());
        let s = c.stats();
        assert_eq!((s.missing_process, s.missing_file), (2, 1));
    }

    fn with_container(hpid: i64, exe: &str, cid: &str) -> SysFlow {
        SysFlow::Process(Box::new(Process {
            state: ObjectState::Created,
            oid: Oid { create_ts: 1, hpid },
            exe: exe.to_string(),
            container_id: Some(cid.to_string()),
            ..Default::default()
        }))
    }

    /// The last-process memo: a run of one process's events reuses what the first resolved,
    /// an entity record in between is seen by the next event, and missing entities are still
    /// counted per record.
    #[test]
    fn runs_of_one_process_see_every_entity_update() {
        let mut c = EntityCache::default();
        c.apply(with_container(7, "/a", "c1"));
        let first = c.apply(pe(7)).unwrap();
        let second = c.apply(pe(7)).unwrap();
        assert!(Arc::ptr_eq(
            first.process.as_ref().unwrap(),
            second.process.as_ref().unwrap()
        ));
        assert!(first.container.is_none());
        assert_eq!(c.stats().missing_container, 2);
        // The container arrives: the next event of the same process has it.
        c.apply(SysFlow::Container(Box::new(Container {
            id: "c1".into(),
            name: "web".into(),
            ..Default::default()
        })));
        let r = c.apply(pe(7)).unwrap();
        assert_eq!(r.container.as_ref().map(|c| c.name.as_str()), Some("web"));
        assert_eq!(c.stats().missing_container, 2);
        // A MODIFIED record of the process between two of its events.
        c.apply(proc(7, None, "/b", ObjectState::Modified));
        assert_eq!(c.apply(pe(7)).unwrap().process.unwrap().exe, "/b");
        // Another process in between, then back.
        c.apply(proc(8, Some(7), "/child", ObjectState::Created));
        let r = c.apply(pe(8)).unwrap();
        assert_eq!(r.process.unwrap().exe, "/child");
        assert_eq!(r.ancestors[0].exe, "/b");
        assert_eq!(c.apply(pe(7)).unwrap().process.unwrap().exe, "/b");
        // A header drops everything, the memo included.
        c.apply(SysFlow::Header(Box::default()));
        assert!(c.apply(pe(7)).unwrap().process.is_none());
    }

    /// The memo stops storing (cloning) entries that are never used on a stream that
    /// interleaves processes, and takes them up again at a run of one process.
    #[test]
    fn the_memo_is_kept_only_while_it_pays() {
        let mut c = EntityCache::default();
        for hpid in 1..=3 {
            c.apply(proc(hpid, None, "/x", ObjectState::Created));
        }
        // References to a process's entity besides the table's, this probe's and `held`
        // records': 1 while the memo holds it.
        let memo = |c: &EntityCache, hpid: i64, held: usize| {
            let p = c.process(&Oid { create_ts: 1, hpid }).unwrap();
            Arc::strong_count(&p) - 2 - held
        };
        let mut kept = Vec::new();
        kept.push(c.apply(pe(1)).unwrap());
        assert_eq!(memo(&c, 1, 1), 1, "the first entry is stored");
        // The entry for 1 is not used by the next event: from here on misses do not store.
        kept.push(c.apply(pe(2)).unwrap());
        assert_eq!(memo(&c, 2, 1), 0);
        kept.push(c.apply(pe(3)).unwrap());
        assert_eq!(memo(&c, 3, 1), 0);
        kept.push(c.apply(pe(2)).unwrap());
        assert_eq!(memo(&c, 2, 2), 0);
        // A run of 2: its second event stores an entry, its third uses it.
        kept.push(c.apply(pe(2)).unwrap());
        assert_eq!(memo(&c, 2, 3), 1, "stored at the second event of a run");
        let third = c.apply(pe(2)).unwrap();
        assert!(Arc::ptr_eq(
            kept[4].process.as_ref().unwrap(),
            third.process.as_ref().unwrap()
        ));
        kept.push(third);
        assert_eq!(memo(&c, 2, 4), 1);
        // That entry was used: the next miss stores again without waiting for a run.
        kept.push(c.apply(pe(3)).unwrap());
        assert_eq!(memo(&c, 3, 2), 1);
        assert_eq!(memo(&c, 2, 4), 0);
        assert!(kept.iter().all(|r| r.process.is_some()));
    }

    fn exit(hpid: i64) -> SysFlow {
        SysFlow::ProcessEvent(ProcessEvent {
            proc_oid: Oid { create_ts: 1, hpid },
            op_flags: crate::sysflow::names::OP_EXIT,
            ..Default::default()
        })
    }

    #[test]
    fn exited_processes_are_reaped_after_grace_but_never_under_a_living_child() {
        let mut c = EntityCache::new(CacheLimits {
            exit_grace_records: 3,
            ..Default::default()
        });
        c.apply(proc(1, None, "/init", ObjectState::Created));
        c.apply(proc(2, Some(1), "/bash", ObjectState::Created));
        c.apply(proc(3, Some(2), "/ls", ObjectState::Created));
        c.apply(exit(2)); // bash exits while ls lives
        for _ in 0..5 {
            c.apply(pe(3));
        }
        assert_eq!(c.sizes().0, 3, "bash is kept: ls still names it as parent");
        let r = c.apply(pe(3)).unwrap();
        assert_eq!(
            r.ancestors.len(),
            2,
            "ancestry of the living child is intact"
        );
        c.apply(exit(3));
        for _ in 0..5 {
            c.apply(pe(1));
        }
        assert_eq!(c.sizes().0, 1, "ls reaped, then bash with it; init stays");
        assert_eq!(c.stats().reaped, 2);
    }

    #[test]
    fn header_resets_and_limits_evict() {
        let mut c = EntityCache::new(CacheLimits {
            processes: 10,
            ..Default::default()
        });
        for i in 0..25 {
            c.apply(proc(i, None, "/p", ObjectState::Created));
        }
        assert!(c.sizes().0 <= 10);
        assert!(c.stats().evicted >= 15);
        c.apply(SysFlow::Header(Box::default()));
        assert_eq!(c.sizes(), (0, 0, 0, 0));
        assert_eq!(c.bytes(), 0);
    }

    #[test]
    fn the_tables_are_bounded_in_bytes_too() {
        let limit = 8 << 20;
        let mut c = EntityCache::new(CacheLimits {
            max_bytes: limit,
            ..Default::default()
        });
        // Processes with 1 MiB of environment each: far under the entry limit.
        for i in 0..40 {
            let mut p = match proc(i, None, "/p", ObjectState::Created) {
                SysFlow::Process(p) => p,
                _ => unreachable!(),
            };
            p.env = vec!["E=".repeat(512); 1024];
            c.apply(SysFlow::Process(p));
            assert!(c.bytes() <= limit, "{} bytes after {i}", c.bytes());
        }
        assert!(c.sizes().0 >= 4 && c.sizes().0 < 10, "{:?}", c.sizes());
        assert!(c.stats().evicted >= 30);
        // Replacing a state accounts for what it replaced.
        let before = c.bytes();
        c.apply(proc(39, None, "/p", ObjectState::Modified));
        assert!(c.bytes() > before, "the new state adds its bytes");
        c.apply(exit(39));
        for i in 0..200 {
            c.apply(proc(1000 + i, None, "/q", ObjectState::Created));
        }
        let (n, _, _, _) = c.sizes();
        assert!(c.bytes() >= n * std::mem::size_of::<Process>());
    }
}
