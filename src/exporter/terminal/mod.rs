//! The terminal transport: records on stdout, one per line (stdout belongs to this exporter;
//! logs go to stderr).

use std::io::Write;

use super::{Transport, TransportError};

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
    fn send(&mut self, payload: &[u8], _records: usize) -> Result<(), TransportError> {
        self.out.lock().write_all(payload).map_err(io)
    }
    fn flush(&mut self) -> Result<(), TransportError> {
        self.out.lock().flush().map_err(io)
    }
}
