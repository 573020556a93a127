//! The policy engine nodes: a router that shards records by process (so each process's
//! records stay in order), shard nodes that evaluate the current policy set, and a
//! pass-through when no policies are configured.

use std::sync::{Arc, RwLock};

use sfactors::{Node, NodeError};

use super::batch::{Part, Records};
use super::reclaim::Reclaim;
use crate::policy::engine::{Engine, Mode};
use crate::policy::memo::Memo;
use crate::policy::set::PolicySet;
use crate::record::Record;
use crate::stats::ReloadStats;

/// The policy set in force, swapped atomically by the monitor between batches.
pub struct PolicyHandle {
    current: RwLock<Arc<PolicySet>>,
    pub mode: Mode,
    /// Hot reloads that took effect, and those refused (the previous set stayed).
    pub reloads: ReloadStats,
}

impl PolicyHandle {
    pub fn new(set: PolicySet, mode: Mode) -> Arc<Self> {
        Arc::new(PolicyHandle {
            current: RwLock::new(Arc::new(set)),
            mode,
            reloads: ReloadStats::default(),
        })
    }

    pub fn current(&self) -> Arc<PolicySet> {
        match self.current.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Replaces the policy set; batches already being evaluated finish with the old one.
    /// A rule that keeps its name keeps its match counter.
    pub fn swap(&self, mut set: PolicySet) {
        let old = self.current();
        for r in &mut set.rules {
            if let Some(prev) = old.rules.iter().find(|p| p.name == r.name) {
                r.matches = prev.matches.clone();
            }
        }
        let new = Arc::new(set);
        match self.current.write() {
            Ok(mut g) => *g = new,
            Err(p) => *p.into_inner() = new,
        }
    }
}

/// Every record goes on unchanged (no policies configured).
#[derive(Default)]
pub struct PassThroughNode;

impl Node for PassThroughNode {
    type In = Records;
    type Out = Records;

    fn process(&mut self, input: Records, out: &mut Vec<Records>) -> Result<(), NodeError> {
        out.push(input);
        Ok(())
    }
}

/// Evaluates the policies on each batch.
pub struct PolicyNode {
    handle: Arc<PolicyHandle>,
    /// Macro values and the dispatch cache, kept across batches (rebuilt when the set swaps).
    memo: Memo,
    /// Where the records not emitted go to be dropped (the flattener's thread).
    reclaim: Option<Reclaim>,
}

impl PolicyNode {
    pub fn new(handle: Arc<PolicyHandle>) -> Self {
        PolicyNode {
            handle,
            memo: Memo::default(),
            reclaim: None,
        }
    }

    /// Records not emitted are handed to `reclaim` instead of being dropped here.
    pub fn with_reclaim(mut self, reclaim: Reclaim) -> Self {
        self.reclaim = Some(reclaim);
        self
    }
}

impl Node for PolicyNode {
    type In = Records;
    type Out = Records;

    fn process(&mut self, input: Records, out: &mut Vec<Records>) -> Result<(), NodeError> {
        let engine = Engine::new(self.handle.current(), self.handle.mode);
        let kept = match &self.reclaim {
            Some(reclaim) => {
                // In order; what stays in `records` is what was not emitted.
                let mut records = input.0;
                let memo = &mut self.memo;
                let kept: Vec<Record> = records
                    .extract_if(.., |r| engine.apply_memo(r, memo))
                    .collect();
                reclaim.give(records);
                kept
            }
            None => {
                let mut kept = Vec::with_capacity(input.0.len());
                engine.process(input.0, &mut kept, &mut self.memo);
                kept
            }
        };
        if !kept.is_empty() {
            out.push(Records::new(kept));
        }
        Ok(())
    }
}

/// The policy shard (of `shards`) that a record goes to: one process's records stay on one
/// shard, in order.
pub fn shard_of(r: &Record, shards: usize) -> usize {
    (r.process_key() % shards.max(1) as u64) as usize
}

/// Splits `records` into `shards` batches by [`shard_of`], each marked with its [`Part`].
pub fn split_by_shard(records: Vec<Record>, shards: usize) -> Vec<Records> {
    let shards = shards.max(1);
    let mut parts: Vec<Vec<Record>> = (0..shards)
        .map(|_| Vec::with_capacity(records.len() / shards + 1))
        .collect();
    for r in records {
        parts[shard_of(&r, shards)].push(r);
    }
    parts
        .into_iter()
        .enumerate()
        .map(|(k, v)| {
            let part = Part {
                shard: k as u32,
                of: shards as u32,
            };
            Records(v, Some(part))
        })
        .collect()
}

/// Splits batches by process key across `shards` downstream shard nodes.
pub struct RouterNode {
    shards: usize,
}

impl RouterNode {
    pub fn new(shards: usize) -> Self {
        RouterNode {
            shards: shards.max(1),
        }
    }
}

impl Node for RouterNode {
    type In = Records;
    type Out = Records;

    fn process(&mut self, input: Records, out: &mut Vec<Records>) -> Result<(), NodeError> {
        // Already split for this many shards (by the flattener): forward it whole; the
        // empty batches before it are not sent (output `i` goes to shard `i`).
        if let Some(p) = input.1 {
            if p.of as usize == self.shards && (p.shard as usize) < self.shards {
                out.extend((0..p.shard).map(|_| Records::default()));
                out.push(input);
                return Ok(());
            }
        }
        out.extend(split_by_shard(input.0, self.shards));
        Ok(())
    }

    /// Output `i` goes to shard `i`.
    fn route(&self, position: usize) -> Option<usize> {
        Some(position)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sysflow::model::{Header, Oid, ProcessEvent};
    use std::sync::Arc;

    fn rec(hpid: i64, ts: i64) -> Record {
        let ev = crate::record::Event::ProcessEvent(ProcessEvent {
            proc_oid: Oid { create_ts: 1, hpid },
            ts,
            ..Default::default()
        });
        Record::new(ev, Arc::new(Header::default()), Arc::from(Vec::new()))
    }

    fn ts(b: &Records) -> Vec<i64> {
        b.0.iter().map(|r| r.event.ts()).collect()
    }

    /// Records in input order, a process's records on one shard.
    fn batch() -> Vec<Record> {
        (0..40).map(|i| rec(i % 5, i)).collect()
    }

    #[test]
    fn a_batch_is_split_by_process_in_order() {
        let mut router = RouterNode::new(3);
        let mut out = Vec::new();
        router.process(Records::new(batch()), &mut out).unwrap();
        assert_eq!(out.len(), 3);
        let mut all: Vec<i64> = Vec::new();
        for (k, b) in out.iter().enumerate() {
            assert!(b.0.iter().all(|r| shard_of(r, 3) == k));
            let t = ts(b);
            assert!(t.windows(2).all(|w| w[0] < w[1]), "order kept: {t:?}");
            all.extend(t);
            assert_eq!(router.route(k), Some(k));
        }
        all.sort();
        assert_eq!(all, (0..40).collect::<Vec<_>>());
    }

    #[test]
    fn a_batch_split_for_the_same_shards_goes_on_whole() {
        let mut router = RouterNode::new(3);
        for part in split_by_shard(batch(), 3) {
            let shard = part.1.unwrap().shard as usize;
            let want = ts(&part);
            let mut out = Vec::new();
            router.process(part, &mut out).unwrap();
            // Empty batches before it (not sent), then the batch itself at its shard.
            assert_eq!(out.len(), shard + 1);
            assert!(out[..shard].iter().all(|b| b.0.is_empty()));
            assert_eq!(ts(&out[shard]), want);
        }
        // Split for another shard count: split again, nothing lost.
        let mut router = RouterNode::new(2);
        let mut n = 0;
        for part in split_by_shard(batch(), 3) {
            let mut out = Vec::new();
            router.process(part, &mut out).unwrap();
            for (k, b) in out.iter().enumerate() {
                assert!(b.0.iter().all(|r| shard_of(r, 2) == k));
                n += b.0.len();
            }
        }
        assert_eq!(n, 40);
    }
}
