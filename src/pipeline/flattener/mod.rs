//! The flattener: keeps the entity cache and assembles one record per event or flow.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use sfactors::{Node, NodeError};

use super::batch::{Datums, Records};
use crate::cache::{CacheLimits, CacheStats, EntityCache};
use crate::ratelimit::RateLimiter;
use crate::stats::TableStats;

pub struct FlattenerNode {
    cache: EntityCache,
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
            limits,
            stats_sink,
            live,
            carried: CacheStats::default(),
            limiter: None,
            carried_limited: 0,
            op_names: None,
            quirks: false,
        }
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

    fn publish_stats(&self) {
        let s = self.cache.stats();
        let (p, f, c, d) = self.cache.sizes();
        let t = &self.live;
        t.processes.store(p as u64, Ordering::Relaxed);
        t.files.store(f as u64, Ordering::Relaxed);
        t.containers.store(c as u64, Ordering::Relaxed);
        t.pods.store(d as u64, Ordering::Relaxed);
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
        let mut recs = Vec::with_capacity(input.0.len());
        for sf in input.0 {
            if let Some(mut r) = self.cache.apply(sf) {
                if let Some(c) = &mut self.op_names {
                    c.apply(&mut r);
                }
                recs.push(r);
            }
        }
        if let Some(l) = &mut self.limiter {
            l.filter(&mut recs);
        }
        if !recs.is_empty() {
            out.push(Records(recs));
        }
        self.publish_stats();
        Ok(())
    }

    fn finish(&mut self, _out: &mut Vec<Records>) -> Result<(), NodeError> {
        self.publish_stats();
        if self.limiter.is_some() {
            tracing::info!(
                dropped = self.limited(),
                "rate limiter: records dropped as repeats within filter.maxage"
            );
        }
        let s = self.cache.stats();
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
        let s = self.cache.stats();
        self.carried.evicted += s.evicted;
        self.carried.reaped += s.reaped;
        self.carried.headers += s.headers;
        self.cache = EntityCache::new(self.limits).with_frozen_lineage(self.quirks);
        if let Some(l) = &mut self.limiter {
            self.carried_limited += l.dropped;
            l.dropped = 0;
        }
    }
}
