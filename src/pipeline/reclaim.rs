//! Records the policy engine does not emit, and those an exporter on a thread of its own has
//! encoded, go back to the flattener to be dropped there.
//!
//! Why: a record holds up to seven `Arc`s (header, process, lineage, container, pod, files).
//! The flattener increments their counts for every record; a shard dropping the record on
//! another core decrements them, so the cache line of each count moves between cores twice
//! per record, and the header's and container's (shared by nearly every record) are fought
//! over by every shard at once. In alert mode almost every record is dropped, and measured
//! on the repeated upstream trace this was about a fifth of the pipeline's CPU time
//! (`docs/performance.md`). Dropped on the flattener's thread, the counts stay in its cache,
//! and the batches' memory is freed by the thread that allocated it. In enrich mode, where
//! every record reaches the exporter, handing them back took the file pipeline on the
//! generated trace from 7.2–7.35 to 6.05–6.4 CPU seconds.
//!
//! Bounded: at most [`SLOTS`] batches wait; when full (or once the flattener is gone) the
//! shard drops the batch itself, as before.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};

use crate::record::Record;

/// Batches that may wait for the flattener.
pub const SLOTS: usize = 16;

/// The shards' and exporters' end.
#[derive(Clone)]
pub struct Reclaim(SyncSender<Vec<Record>>);

/// The flattener's end.
pub struct Reclaimer(Receiver<Vec<Record>>);

pub fn channel() -> (Reclaim, Reclaimer) {
    let (tx, rx) = sync_channel(SLOTS);
    (Reclaim(tx), Reclaimer(rx))
}

impl Reclaim {
    /// Hands `records` to the flattener, or drops them here if it cannot take them.
    pub fn give(&self, records: Vec<Record>) {
        if records.is_empty() {
            return;
        }
        match self.0.try_send(records) {
            Ok(()) => {}
            Err(TrySendError::Full(r)) | Err(TrySendError::Disconnected(r)) => drop(r),
        }
    }
}

impl Reclaimer {
    /// Drops every batch waiting; returns how many records that was.
    pub fn drain(&self) -> usize {
        let mut n = 0;
        while let Ok(batch) = self.0.try_recv() {
            n += batch.len();
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sysflow::model::Header;
    use std::sync::Arc;

    fn recs(n: usize, header: &Arc<Header>) -> Vec<Record> {
        (0..n)
            .map(|_| {
                Record::new(
                    crate::record::Event::ProcessEvent(Default::default()),
                    header.clone(),
                    Arc::from(Vec::new()),
                )
            })
            .collect()
    }

    #[test]
    fn batches_wait_for_the_flattener_up_to_the_bound() {
        let header = Arc::new(Header::default());
        let (tx, rx) = channel();
        for _ in 0..SLOTS + 3 {
            tx.give(recs(2, &header));
        }
        // The batches beyond the bound were dropped by the giver.
        assert_eq!(Arc::strong_count(&header), 1 + 2 * SLOTS);
        assert_eq!(rx.drain(), 2 * SLOTS);
        assert_eq!(Arc::strong_count(&header), 1);
        // Once the flattener is gone, the giver drops them.
        drop(rx);
        tx.give(recs(3, &header));
        assert_eq!(Arc::strong_count(&header), 1);
    }
}
