//! The file transport: appends records to `file.path`, one per line. An existing file is never
//! truncated (upstream deletes it at start; see docs/compatibility.md).

use std::fs::OpenOptions;
use std::io::Write;

use super::{Transport, TransportError};

pub struct FileTransport {
    path: String,
    /// Unbuffered: each batch is one `write_all`, so nothing of a failed batch lingers in a
    /// buffer to be written (and delivered after being counted failed) by a later flush.
    out: std::fs::File,
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
            out: f,
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
    /// A batch counts as sent once the OS has it. A failed write is cut back off the file, so
    /// a retry (or the next batch) does not follow half a line; a full disk or quota is
    /// retried (space can be freed), other errors fail the batch.
    fn send(&mut self, payload: &[u8], _records: usize) -> Result<(), TransportError> {
        let before = self.out.metadata().map(|m| m.len()).ok();
        let Err(e) = self.out.write_all(payload) else {
            return Ok(());
        };
        if let Some(len) = before {
            if let Err(t) = self.out.set_len(len) {
                tracing::error!(path = %self.path, "could not cut a partly written batch off the file: {t}");
            }
        }
        Err(match e.kind() {
            std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded => {
                TransportError::Unavailable {
                    target: self.path.clone(),
                    reason: e.to_string(),
                }
            }
            _ => self.err(e),
        })
    }
    fn flush(&mut self) -> Result<(), TransportError> {
        self.out.sync_data().map_err(|e| self.err(e))
    }
}
