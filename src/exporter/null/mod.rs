//! The null transport: counts and discards (benchmarks, dry runs).

use std::sync::Arc;

use super::registry::{TransportConfig, TransportSpec};
use super::{Transport, TransportError};

pub static SPEC: TransportSpec = TransportSpec {
    names: &["null"],
    keys: &[],
    parse: |_| Ok(Arc::new(NullConfig)),
};

/// `export: null`: no keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NullConfig;

impl TransportConfig for NullConfig {
    fn kind(&self) -> &'static str {
        "null"
    }

    fn open(&self) -> Result<Box<dyn Transport>, TransportError> {
        Ok(Box::new(NullTransport::default()))
    }

    fn target(&self) -> String {
        "null".into()
    }
}

#[derive(Default)]
pub struct NullTransport {
    pub records: u64,
    pub bytes: u64,
}

impl Transport for NullTransport {
    fn send_batch(&mut self, batch: &super::Payload) -> Result<(), TransportError> {
        self.records += batch.records() as u64;
        self.bytes += batch.bytes.len() as u64;
        Ok(())
    }
    fn flush(&mut self) -> Result<(), TransportError> {
        Ok(())
    }
    fn inline(&self) -> bool {
        true
    }
}
