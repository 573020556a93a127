//! The exporter node: encodes records and queues them for its delivery worker, which owns the
//! transport (batching, retries, idle flush: `exporter::delivery`). Nothing is dropped
//! silently: records are counted as sent only once acknowledged, and as dropped or failed
//! otherwise.

use std::sync::Arc;

use sfactors::{Node, NodeError};

use super::batch::{Nothing, Records};
use super::reclaim::Reclaim;
use crate::counters::Counters;
use crate::encode::RecordEncoder;
use crate::exporter::delivery::{Delivery, Payload};
use crate::exporter::{ExporterConfig, Transport};
use crate::record::Record;
use crate::shutdown::Shutdown;

pub struct ExporterNode {
    encoder: Box<dyn RecordEncoder>,
    /// The encoder's records are text lines.
    text: bool,
    keys: bool,
    ids: bool,
    delivery: Delivery,
    /// Encoded records go back to the flattener to be dropped there (`super::reclaim`).
    reclaim: Option<Reclaim>,
}

impl ExporterNode {
    pub fn new(
        cfg: &ExporterConfig,
        transport: Box<dyn Transport>,
        counters: Arc<dyn Counters>,
        shutdown: Arc<Shutdown>,
        queue: Option<crate::queue::DiskQueue>,
    ) -> Self {
        let encoder = (cfg.format.new)();
        ExporterNode {
            text: encoder.text(),
            encoder,
            keys: cfg.needs_keys(),
            ids: cfg.needs_ids(),
            delivery: Delivery::start_with(
                transport,
                &cfg.delivery,
                counters,
                cfg.target(),
                shutdown,
                queue,
            ),
            reclaim: None,
        }
    }

    /// Hands each encoded batch to `reclaim` instead of dropping it here: on its own thread
    /// the exporter would otherwise decrement, record after record, the entity counts the
    /// flattener increments on another core, and free memory another thread allocated.
    pub fn with_reclaim(mut self, reclaim: Reclaim) -> Self {
        self.reclaim = Some(reclaim);
        self
    }
}

/// The partition key of a record: its node and process identity (pid and creation time), so
/// one process's records keep their order in one partition. Records without a process
/// (Kubernetes events) share their node's key.
pub fn partition_key(rec: &Record) -> u64 {
    let mut h = xxhash_rust::xxh64::Xxh64::new(0);
    h.update(rec.header.exporter.as_bytes());
    if let Some(p) = &rec.process {
        h.update(&p.oid.hpid.to_le_bytes());
        h.update(&p.oid.create_ts.to_le_bytes());
    }
    h.digest()
}

/// Encoded records are handed to the delivery worker in chunks of about this many bytes
/// rather than one payload per input batch (4,096 records are ~6 MB of JSON): what waits in
/// the delivery queue, in flight and in the recycled buffers stays a few MiB.
const CHUNK_BYTES: usize = 512 << 10;

impl ExporterNode {
    fn payload(&mut self) -> Payload {
        Payload::new(self.delivery.buffer(CHUNK_BYTES + (64 << 10)), self.text)
    }
}

impl Node for ExporterNode {
    type In = Records;
    type Out = Nothing;

    fn process(&mut self, input: Records, _out: &mut Vec<Nothing>) -> Result<(), NodeError> {
        if input.0.is_empty() {
            return Ok(());
        }
        let mut p = self.payload();
        for rec in &input.0 {
            if p.bytes.len() >= CHUNK_BYTES {
                let full = std::mem::replace(&mut p, self.payload());
                self.delivery
                    .submit(full)
                    .map_err(|e| NodeError::new(e.to_string()))?;
            }
            self.encoder.encode(rec, &mut p.bytes);
            p.end_record();
            if self.keys {
                p.keys.push(partition_key(rec));
            }
            if self.ids {
                p.ids.push(crate::encode::ecs::doc_id_hash(rec));
            }
        }
        if let Some(r) = &self.reclaim {
            r.give(input.0);
        }
        // The input was not empty, so `p` holds at least its last record.
        self.delivery
            .submit(p)
            .map_err(|e| NodeError::new(e.to_string()))
    }

    fn finish(&mut self, _out: &mut Vec<Nothing>) -> Result<(), NodeError> {
        self.delivery.finish();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PipelineConfig;
    use crate::counters::Tally;
    use crate::sysflow::model::Header;

    /// An exporter given a reclaim channel encodes and delivers the batch, then hands the
    /// records to the flattener's end instead of dropping them.
    #[test]
    fn encoded_batches_go_back_to_the_flattener() {
        let cfg = PipelineConfig::parse(
            r#"{"pipeline":[{"processor":"exporter","in":"evt eventchan","export":"null","format":"json"}]}"#,
            "t.json",
            &[],
        )
        .unwrap();
        let ec = ExporterConfig::from_stage(&cfg, &cfg.stages[0], &mut Vec::new()).unwrap();
        let tally = Arc::new(Tally::default());
        let (reclaim, reclaimer) = crate::pipeline::reclaim::channel();
        let mut node = ExporterNode::new(
            &ec,
            ec.open().unwrap(),
            tally.clone(),
            Shutdown::new(),
            None,
        )
        .with_reclaim(reclaim);
        let header = Arc::new(Header::default());
        let batch: Vec<Record> = (0..3)
            .map(|_| {
                Record::new(
                    crate::record::Event::ProcessEvent(Default::default()),
                    header.clone(),
                    Arc::from(Vec::new()),
                )
            })
            .collect();
        node.process(Records::new(batch), &mut Vec::new()).unwrap();
        node.finish(&mut Vec::new()).unwrap();
        assert_eq!(tally.snapshot().sent_records, 3);
        // The three records wait in the channel, not dropped by the exporter (whose encoder
        // keeps one more reference, to the header section it rendered).
        drop(node);
        assert_eq!(Arc::strong_count(&header), 4);
        assert_eq!(reclaimer.drain(), 3);
        assert_eq!(Arc::strong_count(&header), 1);
    }
}
