//! The counters a core component reports, as a trait: the core stays free of the actor
//! runtime's types, and the pipeline glue (`pipeline::metrics`) maps them onto its per-node
//! metrics.

/// What a delivery path counts (names as in `docs/operations.md`).
pub trait Counters: Send + Sync {
    /// Records the target acknowledged.
    fn add_sent(&self, records: u64);
    /// Records refused on purpose (`when_full: drop_newest`).
    fn add_dropped(&self, records: u64);
    /// Records in an attempt that failed and was tried again.
    fn add_retried(&self, records: u64);
    /// Records that could not be delivered.
    fn add_failed(&self, records: u64);
    /// One error event (a failed batch, a failed flush).
    fn add_error(&self);
    /// Encoded bytes waiting in the delivery queue changed by `delta`.
    fn queue_bytes(&self, _delta: i64) {}
    /// A batch was acknowledged now.
    fn delivered_now(&self) {}
    /// An attempt to deliver failed (it may be retried).
    fn attempt_failed(&self) {}
    /// An attempt starts (`true`) or has ended (`false`): an attempt that lasts is a target
    /// that stopped acknowledging, which readiness reports.
    fn attempt_in_progress(&self, _busy: bool) {}
}

use std::sync::atomic::{AtomicU64, Ordering};

/// A plain set of [`Counters`], for tools and tests that run a core component on its own.
#[derive(Debug, Default)]
pub struct Tally {
    sent: AtomicU64,
    dropped: AtomicU64,
    retried: AtomicU64,
    failed: AtomicU64,
    errors: AtomicU64,
}

/// A copy of a [`Tally`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TallySnapshot {
    pub sent_records: u64,
    pub dropped_records: u64,
    pub retried_records: u64,
    pub failed_records: u64,
    pub errors: u64,
}

impl Tally {
    pub fn new() -> std::sync::Arc<Self> {
        std::sync::Arc::new(Tally::default())
    }

    pub fn snapshot(&self) -> TallySnapshot {
        TallySnapshot {
            sent_records: self.sent.load(Ordering::Relaxed),
            dropped_records: self.dropped.load(Ordering::Relaxed),
            retried_records: self.retried.load(Ordering::Relaxed),
            failed_records: self.failed.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
        }
    }
}

impl Counters for Tally {
    fn add_sent(&self, records: u64) {
        self.sent.fetch_add(records, Ordering::Relaxed);
    }
    fn add_dropped(&self, records: u64) {
        self.dropped.fetch_add(records, Ordering::Relaxed);
    }
    fn add_retried(&self, records: u64) {
        self.retried.fetch_add(records, Ordering::Relaxed);
    }
    fn add_failed(&self, records: u64) {
        self.failed.fetch_add(records, Ordering::Relaxed);
    }
    fn add_error(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
    }
}
