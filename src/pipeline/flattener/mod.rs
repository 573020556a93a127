//! The flattener: keeps the entity cache and assembles one record per event or flow.

use sfactors::{Node, NodeError};

use super::batch::{Datums, Records};
use crate::cache::{CacheLimits, CacheStats, EntityCache};

pub struct FlattenerNode {
    cache: EntityCache,
    limits: CacheLimits,
    stats_sink: std::sync::Arc<std::sync::Mutex<CacheStats>>,
}

impl FlattenerNode {
    pub fn new(
        limits: CacheLimits,
        stats_sink: std::sync::Arc<std::sync::Mutex<CacheStats>>,
    ) -> Self {
        FlattenerNode {
            cache: EntityCache::new(limits),
            limits,
            stats_sink,
        }
    }

    fn publish_stats(&self) {
        if let Ok(mut s) = self.stats_sink.lock() {
            *s = self.cache.stats();
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
        self.cache = EntityCache::new(self.limits);
    }
}
