//! The exporter node: encodes records and hands them to its transport. A batch that the
//! transport rejects is counted as failed and reported (nothing is dropped silently).

use std::sync::Arc;

use sfactors::{Node, NodeError, NodeMetrics};

use super::batch::{Nothing, Records};
use crate::encode::JsonEncoder;
use crate::exporter::{ExporterConfig, Transport};

pub struct ExporterNode {
    encoder: JsonEncoder,
    transport: Box<dyn Transport>,
    buf: Vec<u8>,
    pending: usize,
    buffer: usize,
    metrics: Arc<NodeMetrics>,
}

impl ExporterNode {
    pub fn new(
        cfg: &ExporterConfig,
        transport: Box<dyn Transport>,
        metrics: Arc<NodeMetrics>,
    ) -> Self {
        ExporterNode {
            encoder: JsonEncoder::new(),
            transport,
            buf: Vec::with_capacity(1 << 20),
            pending: 0,
            buffer: cfg.buffer,
            metrics,
        }
    }

    fn ship(&mut self) -> Result<(), NodeError> {
        if self.pending == 0 {
            return Ok(());
        }
        let n = self.pending;
        self.pending = 0;
        let r = self.transport.send(&self.buf, n);
        self.buf.clear();
        match r {
            Ok(()) => {
                self.metrics.add_sent(n as u64);
                Ok(())
            }
            Err(e) => {
                self.metrics.add_dropped(n as u64);
                Err(NodeError::new(format!("{n} records not delivered: {e}")))
            }
        }
    }
}

impl Node for ExporterNode {
    type In = Records;
    type Out = Nothing;

    fn process(&mut self, input: Records, _out: &mut Vec<Nothing>) -> Result<(), NodeError> {
        for rec in &input.0 {
            self.encoder.encode(rec, &mut self.buf);
            self.buf.push(b'\n');
            self.pending += 1;
        }
        if self.pending >= self.buffer {
            self.ship()?;
        }
        Ok(())
    }

    fn finish(&mut self, _out: &mut Vec<Nothing>) -> Result<(), NodeError> {
        self.ship()?;
        self.transport
            .flush()
            .map_err(|e| NodeError::new(format!("flush failed: {e}")))
    }
}
