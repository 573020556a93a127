//! The flattener: keeps the entity cache and assembles one record per event or flow.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use sfactors::{Node, NodeError};

use super::batch::{Datums, Part, Records};
use super::policy::shard_of;
use super::reclaim::Reclaimer;
use crate::cache::{CacheLimits, CacheStats, EntityCache};
use crate::ratelimit::RateLimiter;
use crate::record::Record;
use crate::stats::TableStats;

pub struct FlattenerNode {
    /// The entity tables of the first driver (the only one, usually).
    cache: EntityCache,
    /// Those of the other drivers, by driver index - 1: a collector's header resets only its
    /// own tables.
    more: Vec<EntityCache>,
    limits: CacheLimits,
    stats_sink: Arc<Mutex<CacheStats>>,
    /// Table sizes and evictions, published after every batch for the metrics endpoint.
    live: Arc<TableStats>,
    /// Counters of caches replaced after a panic (added to the current cache's).
    carried: CacheStats,
    /// `filter.enabled: on`: upstream's rate limiter, after record assembly.
    limiter: Option<RateLimiter>,
    /// Dropped by limiters replaced after a panic.
    carried_limited: u64,
    /// Upstream's op-flag name cache (`quirks: upstream`): per flags value, whether its
    /// names were first rendered for a network flow (SEND/RECV) or not (WRITE/READ).
    op_names: Option<OpNameCache>,
    /// Upstream's quirks are on (the cache is rebuilt with them after a panic).
    quirks: bool,
    /// Shards of the sharded policy stage this node feeds (1: one batch per input batch).
    shards: usize,
    /// Records the policy engine did not emit, dropped here (`super::reclaim`).
    reclaimer: Option<Reclaimer>,
}

/// Upstream renders op flag names once per flags value (its cache key is the value as a
/// Unicode scalar; values that are not scalars share one key) and reuses the first
/// rendering for every record type. Here the first record in trace order decides, which is
/// what upstream's engine sees when one worker reads the trace in order.
#[derive(Default)]
pub struct OpNameCache {
    first: rustc_hash::FxHashMap<u32, bool>,
}

impl OpNameCache {
    pub fn apply(&mut self, rec: &mut crate::record::Record) {
        let flags = rec.event.op_flags() as u32;
        let key = if char::from_u32(flags).is_some() {
            flags
        } else {
            u32::MAX
        };
        rec.op_names_net = *self.first.entry(key).or_insert(rec.op_names_net);
    }
}

impl FlattenerNode {
    pub fn new(
        limits: CacheLimits,
        stats_sink: Arc<Mutex<CacheStats>>,
        live: Arc<TableStats>,
    ) -> Self {
        FlattenerNode {
            cache: EntityCache::new(limits),
            more: Vec::new(),
            limits,
            stats_sink,
            live,
            carried: CacheStats::default(),
            limiter: None,
            carried_limited: 0,
            op_names: None,
            quirks: false,
            shards: 1,
            reclaimer: None,
        }
    }

    /// Drops the records the policy engine hands back through `r` (before each batch).
    pub fn with_reclaimer(mut self, r: Reclaimer) -> Self {
        self.reclaimer = Some(r);
        self
    }

    /// Feeding a policy stage of `shards` shards: each output batch holds one shard's
    /// records (marked with its [`Part`]), so the router does not move them again.
    pub fn with_shards(mut self, shards: usize) -> Self {
        self.shards = shards.max(1);
        self
    }

    /// With upstream's op-flag name cache and process-tree cache for conditions (`quirks:
    /// upstream` on a policy stage).
    pub fn with_upstream_quirks(mut self, on: bool) -> Self {
        self.op_names = on.then(OpNameCache::default);
        self.quirks = on;
        self.cache = EntityCache::new(self.limits).with_frozen_lineage(on);
        self
    }

    /// With upstream's rate limiter (`filter.maxage` window).
    pub fn with_rate_limit(mut self, maxage: Option<std::time::Duration>) -> Self {
        self.limiter = maxage.map(RateLimiter::new);
        self
    }

    fn limited(&self) -> u64 {
        self.carried_limited + self.limiter.as_ref().map(|l| l.dropped).unwrap_or(0)
    }

    /// The entity tables of driver `index`.
    fn cache_of(&mut self, index: u16) -> &mut EntityCache {
        let Some(i) = (index as usize).checked_sub(1) else {
            return &mut self.cache;
        };
        while self.more.len() <= i {
            self.more
                .push(EntityCache::new(self.limits).with_frozen_lineage(self.quirks));
        }
        &mut self.more[i]
    }

    /// Every driver's tables.
    fn caches(&self) -> impl Iterator<Item = &EntityCache> {
        std::iter::once(&self.cache).chain(self.more.iter())
    }

    /// Statistics summed over every driver's tables.
    fn stats(&self) -> CacheStats {
        let mut t = CacheStats::default();
        for c in self.caches() {
            let s = c.stats();
            t.missing_process += s.missing_process;
            t.missing_file += s.missing_file;
            t.missing_container += s.missing_container;
            t.missing_pod += s.missing_pod;
            t.evicted += s.evicted;
            t.reaped += s.reaped;
            t.headers += s.headers;
        }
        t
    }

    fn publish_stats(&self) {
        let s = self.stats();
        let (mut p, mut f, mut c, mut d, mut bytes) = (0, 0, 0, 0, 0);
        for cache in self.caches() {
            let (a, b, x, y) = cache.sizes();
            p += a;
            f += b;
            c += x;
            d += y;
            bytes += cache.bytes();
        }
        let t = &self.live;
        t.processes.store(p as u64, Ordering::Relaxed);
        t.files.store(f as u64, Ordering::Relaxed);
        t.containers.store(c as u64, Ordering::Relaxed);
        t.pods.store(d as u64, Ordering::Relaxed);
        t.bytes.store(bytes as u64, Ordering::Relaxed);
        t.evictions
            .store(s.evicted + self.carried.evicted, Ordering::Relaxed);
        t.reaped
            .store(s.reaped + self.carried.reaped, Ordering::Relaxed);
        t.resets
            .store(s.headers + self.carried.headers, Ordering::Relaxed);
        t.rate_limited.store(self.limited(), Ordering::Relaxed);
        if let Ok(mut sink) = self.stats_sink.lock() {
            *sink = s;
        }
    }
}

impl Node for FlattenerNode {
    type In = Datums;
    type Out = Records;

    fn process(&mut self, input: Datums, out: &mut Vec<Records>) -> Result<(), NodeError> {
        if let Some(r) = &self.reclaimer {
            r.drain();
        }
        let shards = self.shards;
        let mut parts: Vec<Vec<Record>> = (0..shards)
            .map(|_| Vec::with_capacity(input.0.len() / shards + 1))
            .collect();
        // One clock reading per batch, as the limiter's own `filter` does.
        let now = std::time::Instant::now();
        let source = input.1;
        for sf in input.0 {
            let Some(mut r) = self.cache_of(source).apply(sf) else {
                continue;
            };
            if let Some(c) = &mut self.op_names {
                c.apply(&mut r);
            }
            if let Some(l) = &mut self.limiter {
                if !l.admit_at(&r, now) {
                    continue;
                }
            }
            let k = if shards > 1 { shard_of(&r, shards) } else { 0 };
            parts[k].push(r);
        }
        for (k, recs) in parts.into_iter().enumerate() {
            if recs.is_empty() {
                continue;
            }
            let part = (shards > 1).then_some(Part {
                shard: k as u32,
                of: shards as u32,
            });
            out.push(Records(recs, part));
        }
        self.publish_stats();
        Ok(())
    }

    fn finish(&mut self, _out: &mut Vec<Records>) -> Result<(), NodeError> {
        if let Some(r) = &self.reclaimer {
            r.drain();
        }
        self.publish_stats();
        if self.limiter.is_some() {
            tracing::info!(
                dropped = self.limited(),
                "rate limiter: records dropped as repeats within filter.maxage"
            );
        }
        let s = self.stats();
        if s.missing_process + s.missing_file + s.missing_container + s.missing_pod > 0 {
            tracing::warn!(
                missing_process = s.missing_process,
                missing_file = s.missing_file,
                missing_container = s.missing_container,
                missing_pod = s.missing_pod,
                "records referred to entities not in the trace; their fields are empty"
            );
        }
        Ok(())
    }

    /// After a panic the cache may be inconsistent: start over (the next header or entity
    /// records refill it).
    fn reset(&mut self) {
        self.publish_stats();
        let s = self.stats();
        self.carried.evicted += s.evicted;
        self.carried.reaped += s.reaped;
        self.carried.headers += s.headers;
        self.cache = EntityCache::new(self.limits).with_frozen_lineage(self.quirks);
        self.more.clear();
        if let Some(l) = &mut self.limiter {
            self.carried_limited += l.dropped;
            l.dropped = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sysflow::model::{Oid, Process, ProcessEvent};
    use crate::sysflow::SysFlow;

    fn node(shards: usize, maxage: Option<std::time::Duration>) -> FlattenerNode {
        FlattenerNode::new(
            CacheLimits::default(),
            Arc::default(),
            Arc::new(TableStats::default()),
        )
        .with_rate_limit(maxage)
        .with_shards(shards)
    }

    fn datums() -> Vec<SysFlow> {
        let mut v: Vec<SysFlow> = (0..4)
            .map(|hpid| {
                SysFlow::Process(Box::new(Process {
                    oid: Oid { create_ts: 1, hpid },
                    // One executable: the limiter's key is the same for every process.
                    exe: "/bin/same".to_string(),
                    ..Default::default()
                }))
            })
            .collect();
        v.extend((0..20).map(|i| {
            SysFlow::ProcessEvent(ProcessEvent {
                proc_oid: Oid {
                    create_ts: 1,
                    hpid: i % 4,
                },
                ts: i,
                ..Default::default()
            })
        }));
        v
    }

    #[test]
    fn feeding_shards_splits_each_batch_by_process_in_order() {
        let mut out = Vec::new();
        node(2, None)
            .process(Datums::new(datums()), &mut out)
            .unwrap();
        assert!(out.len() <= 2);
        let mut n = 0;
        for b in &out {
            let p = b.1.expect("marked with its shard");
            assert_eq!(p.of, 2);
            assert!(b.0.iter().all(|r| shard_of(r, 2) == p.shard as usize));
            let ts: Vec<i64> = b.0.iter().map(|r| r.event.ts()).collect();
            assert!(ts.windows(2).all(|w| w[0] < w[1]), "{ts:?}");
            n += b.0.len();
        }
        assert_eq!(n, 20);
        // One consumer: one batch in input order, not marked.
        let mut out = Vec::new();
        node(1, None)
            .process(Datums::new(datums()), &mut out)
            .unwrap();
        assert_eq!(out.len(), 1);
        assert!(out[0].1.is_none());
        let ts: Vec<i64> = out[0].0.iter().map(|r| r.event.ts()).collect();
        assert_eq!(ts, (0..20).collect::<Vec<_>>());
    }

    #[test]
    fn the_rate_limiter_sees_records_in_input_order_when_splitting() {
        // Every record has the same key (same executable, flags and ids): within the window
        // only the first in input order passes, though the processes are on both shards.
        let maxage = Some(std::time::Duration::from_secs(3600));
        let mut split = Vec::new();
        node(2, maxage)
            .process(Datums::new(datums()), &mut split)
            .unwrap();
        let mut whole = Vec::new();
        node(1, maxage)
            .process(Datums::new(datums()), &mut whole)
            .unwrap();
        let mut a: Vec<i64> = split
            .iter()
            .flat_map(|b| b.0.iter().map(|r| r.event.ts()))
            .collect();
        a.sort();
        let b: Vec<i64> = whole[0].0.iter().map(|r| r.event.ts()).collect();
        assert_eq!(a, b);
        assert_eq!(b, [0]);
    }
}
