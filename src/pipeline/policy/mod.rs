//! The policy engine nodes: a router that shards records by process (so each process's
//! records stay in order), shard nodes that evaluate the current policy set, and a
//! pass-through when no policies are configured.

use std::sync::{Arc, RwLock};

use sfactors::{Node, NodeError};

use super::batch::Records;
use crate::policy::engine::{Engine, Mode};
use crate::policy::memo::Memo;
use crate::policy::set::PolicySet;
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
}

impl PolicyNode {
    pub fn new(handle: Arc<PolicyHandle>) -> Self {
        PolicyNode {
            handle,
            memo: Memo::default(),
        }
    }
}

impl Node for PolicyNode {
    type In = Records;
    type Out = Records;

    fn process(&mut self, input: Records, out: &mut Vec<Records>) -> Result<(), NodeError> {
        let engine = Engine::new(self.handle.current(), self.handle.mode);
        let mut kept = Vec::with_capacity(input.0.len());
        engine.process(input.0, &mut kept, &mut self.memo);
        if !kept.is_empty() {
            out.push(Records(kept));
        }
        Ok(())
    }
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
        let mut parts: Vec<Vec<crate::record::Record>> = (0..self.shards)
            .map(|_| Vec::with_capacity(input.0.len() / self.shards + 1))
            .collect();
        for r in input.0 {
            let k = (r.process_key() % self.shards as u64) as usize;
            parts[k].push(r);
        }
        out.extend(parts.into_iter().map(Records));
        Ok(())
    }

    /// Output `i` goes to shard `i`.
    fn route(&self, position: usize) -> Option<usize> {
        Some(position)
    }
}
