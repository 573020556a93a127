//! Glue between the core's [`Counters`] and the actor runtime's per-node metrics.

use sfactors::NodeMetrics;

use crate::counters::Counters;

impl Counters for NodeMetrics {
    fn add_sent(&self, records: u64) {
        NodeMetrics::add_sent(self, records)
    }
    fn add_dropped(&self, records: u64) {
        NodeMetrics::add_dropped(self, records)
    }
    fn add_retried(&self, records: u64) {
        NodeMetrics::add_retried(self, records)
    }
    fn add_failed(&self, records: u64) {
        NodeMetrics::add_failed(self, records)
    }
    fn add_error(&self) {
        NodeMetrics::add_error(self)
    }
}
