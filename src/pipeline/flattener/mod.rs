//! The flattener: keeps the entity cache and assembles one record per event or flow.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use sfactors::{Node, NodeError};

use super::batch::{Datums, Records};
use crate::cache::{CacheLimits, CacheStats, EntityCache};
use crate::stats::TableStats;

pub struct FlattenerNode {
    cache: EntityCache,
    limits: CacheLimits,
    stats_sink: Arc<Mutex<CacheStats>>,
    /// Table sizes and evictions, published after every batch for the metrics endpoint.
    live: Arc<TableStats>,
    /// Counters of caches replaced after a panic (added to the current cache's).
    carried: CacheStats,
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
        }
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
            if let Some(r) = self.cache.apply(sf) {
                recs.push(r);
            }
        }
        if !recs.is_empty() {
            out.push(Records(recs));
        }
        self.publish_stats();
        Ok(())
    }

    fn finish(&mut self, _out: &mut Vec<Records>) -> Result<(), NodeError> {
        self.publish_stats();
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
        self.cache = EntityCache::new(self.limits);
    }
}
