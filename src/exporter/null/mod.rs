//! The null transport: counts and discards (benchmarks, dry runs).

use super::{Transport, TransportError};

#[derive(Default)]
pub struct NullTransport {
    pub records: u64,
    pub bytes: u64,
}

impl Transport for NullTransport {
    fn send(&mut self, payload: &[u8], records: usize) -> Result<(), TransportError> {
        self.records += records as u64;
        self.bytes += payload.len() as u64;
        Ok(())
    }
    fn flush(&mut self) -> Result<(), TransportError> {
        Ok(())
    }
    fn inline(&self) -> bool {
        true
    }
}
