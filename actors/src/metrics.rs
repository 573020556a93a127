//! Per-node counters with one set of names for every node (see `docs/operations.md`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Counters every node reports. All are monotonic except `queued`, a gauge of batches sent to
/// the node and not yet handled (its queue depth).
#[derive(Debug, Default)]
pub struct NodeMetrics {
    name: String,
    received_batches: AtomicU64,
    received_records: AtomicU64,
    sent_records: AtomicU64,
    dropped_records: AtomicU64,
    retried_records: AtomicU64,
    failed_records: AtomicU64,
    errors: AtomicU64,
    dead_letters: AtomicU64,
    restarts: AtomicU64,
    queued: AtomicU64,
}

/// A point-in-time copy of [`NodeMetrics`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetricsSnapshot {
    pub name: String,
    pub received_batches: u64,
    pub received_records: u64,
    pub sent_records: u64,
    /// Dropped on purpose (e.g. an exporter's `when_full: drop_newest`).
    pub dropped_records: u64,
    /// Records in delivery attempts that failed and were tried again.
    pub retried_records: u64,
    /// Records that could not be delivered.
    pub failed_records: u64,
    pub errors: u64,
    pub dead_letters: u64,
    pub restarts: u64,
    pub queued: u64,
}

impl NodeMetrics {
    pub fn new(name: impl Into<String>) -> Arc<Self> {
        Arc::new(NodeMetrics {
            name: name.into(),
            ..Default::default()
        })
    }
    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn add_received(&self, records: u64) {
        self.received_batches.fetch_add(1, Ordering::Relaxed);
        self.received_records.fetch_add(records, Ordering::Relaxed);
    }
    pub fn add_sent(&self, records: u64) {
        self.sent_records.fetch_add(records, Ordering::Relaxed);
    }
    pub fn add_dropped(&self, records: u64) {
        self.dropped_records.fetch_add(records, Ordering::Relaxed);
    }
    pub fn add_retried(&self, records: u64) {
        self.retried_records.fetch_add(records, Ordering::Relaxed);
    }
    pub fn add_failed(&self, records: u64) {
        self.failed_records.fetch_add(records, Ordering::Relaxed);
    }
    pub fn add_error(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
    }
    pub fn add_dead_letter(&self) {
        self.dead_letters.fetch_add(1, Ordering::Relaxed);
    }
    pub fn add_restart(&self) {
        self.restarts.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn inc_queued(&self) {
        self.queued.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn dec_queued(&self) {
        // Saturating: a gauge must never wrap even if an envelope was dropped unhandled.
        let _ = self
            .queued
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                Some(v.saturating_sub(1))
            });
    }
    pub fn snapshot(&self) -> MetricsSnapshot {
        MetricsSnapshot {
            name: self.name.clone(),
            received_batches: self.received_batches.load(Ordering::Relaxed),
            received_records: self.received_records.load(Ordering::Relaxed),
            sent_records: self.sent_records.load(Ordering::Relaxed),
            dropped_records: self.dropped_records.load(Ordering::Relaxed),
            retried_records: self.retried_records.load(Ordering::Relaxed),
            failed_records: self.failed_records.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            dead_letters: self.dead_letters.load(Ordering::Relaxed),
            restarts: self.restarts.load(Ordering::Relaxed),
            queued: self.queued.load(Ordering::Relaxed),
        }
    }
}
