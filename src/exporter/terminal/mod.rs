//! The terminal transport: records on stdout, one per line (stdout belongs to this exporter;
//! logs go to stderr).

use std::io::Write;

use std::sync::Arc;

use super::registry::{TransportConfig, TransportSpec};
use super::{Transport, TransportError};

/// The default transport (`export` unset or empty).
pub static SPEC: TransportSpec = TransportSpec {
    names: &["terminal", ""],
    keys: &[],
    parse: |_| Ok(Arc::new(TerminalConfig)),
};

/// `export: terminal`: no keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TerminalConfig;

impl TransportConfig for TerminalConfig {
    fn kind(&self) -> &'static str {
        "terminal"
    }

    fn open(&self) -> Result<Box<dyn Transport>, TransportError> {
        Ok(Box::new(TerminalTransport::new()))
    }

    fn target(&self) -> String {
        "terminal".into()
    }
}

pub struct TerminalTransport {
    out: std::io::Stdout,
}

impl TerminalTransport {
    pub fn new() -> Self {
        TerminalTransport {
            out: std::io::stdout(),
        }
    }
}

impl Default for TerminalTransport {
    fn default() -> Self {
        Self::new()
    }
}

fn io(e: std::io::Error) -> TransportError {
    TransportError::Io {
        target: "stdout".into(),
        source: e,
    }
}

impl Transport for TerminalTransport {
    fn send_batch(&mut self, batch: &super::Payload) -> Result<(), TransportError> {
        self.out.lock().write_all(&batch.bytes).map_err(io)
    }
    fn flush(&mut self) -> Result<(), TransportError> {
        self.out.lock().flush().map_err(io)
    }
}
