//! The exporter node: encodes records and queues them for its delivery worker, which owns the
//! transport (batching, retries, idle flush: `exporter::delivery`). Nothing is dropped
//! silently: records are counted as sent only once acknowledged, and as dropped or failed
//! otherwise.

use std::sync::Arc;

use sfactors::{Node, NodeError, NodeMetrics};

use super::batch::{Nothing, Records};
use crate::encode::JsonEncoder;
use crate::exporter::delivery::{Delivery, Payload};
use crate::exporter::{ExporterConfig, Transport};

pub struct ExporterNode {
    encoder: JsonEncoder,
    delivery: Delivery,
}

impl ExporterNode {
    pub fn new(
        cfg: &ExporterConfig,
        transport: Box<dyn Transport>,
        metrics: Arc<NodeMetrics>,
    ) -> Self {
        ExporterNode {
            encoder: JsonEncoder::new(),
            delivery: Delivery::start(transport, &cfg.delivery, metrics, cfg.target()),
        }
    }
}

impl Node for ExporterNode {
    type In = Records;
    type Out = Nothing;

    fn process(&mut self, input: Records, _out: &mut Vec<Nothing>) -> Result<(), NodeError> {
        if input.0.is_empty() {
            return Ok(());
        }
        let mut bytes = Vec::with_capacity(input.0.len() * 1600);
        for rec in &input.0 {
            self.encoder.encode(rec, &mut bytes);
            bytes.push(b'\n');
        }
        self.delivery
            .submit(Payload {
                bytes,
                records: input.0.len(),
            })
            .map_err(NodeError::new)
    }

    fn finish(&mut self, _out: &mut Vec<Nothing>) -> Result<(), NodeError> {
        self.delivery.finish();
        Ok(())
    }
}
