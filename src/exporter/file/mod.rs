//! The file transport: appends records to `file.path`, one per line. An existing file is never
//! truncated (upstream deletes it at start; see docs/compatibility.md).

use std::fs::OpenOptions;
use std::io::{BufWriter, Write};

use super::{Transport, TransportError};

pub struct FileTransport {
    path: String,
    out: BufWriter<std::fs::File>,
}

impl FileTransport {
    pub fn open(path: &str) -> Result<Self, TransportError> {
        let f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| TransportError::Io {
                target: path.to_string(),
                source: e,
            })?;
        Ok(FileTransport {
            path: path.to_string(),
            out: BufWriter::with_capacity(1 << 20, f),
        })
    }

    fn err(&self, e: std::io::Error) -> TransportError {
        TransportError::Io {
            target: self.path.clone(),
            source: e,
        }
    }
}

impl Transport for FileTransport {
    /// A batch counts as sent once the OS has it (written and the buffer flushed).
    fn send(&mut self, payload: &[u8], _records: usize) -> Result<(), TransportError> {
        self.out.write_all(payload).map_err(|e| self.err(e))?;
        self.out.flush().map_err(|e| self.err(e))
    }
    fn flush(&mut self) -> Result<(), TransportError> {
        self.out.flush().map_err(|e| self.err(e))?;
        self.out.get_ref().sync_data().map_err(|e| self.err(e))
    }
}
