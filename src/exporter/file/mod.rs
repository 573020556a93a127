//! The file transport: appends records to `file.path`, one per line. An existing file is never
//! truncated (upstream deletes it at start; see docs/compatibility.md).
//!
//! A process killed mid-write (SIGKILL, power loss) can leave a last line without its
//! newline. Appending onto it would glue the first new record to it, losing both; so at open
//! a torn tail is ended with a newline and reported with its byte offset. Every complete
//! record is then a line that parses as a JSON object, and the torn one is the only line that
//! does not (a strict prefix of a JSON object is never valid JSON).
//!
//! SIGHUP (logrotate's `postrotate`) reopens the file at its path before the next write
//! (`crate::reopen`), so a rotated file receives nothing after the signal.

use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom, Write};

use std::sync::Arc;

use super::registry::{Ctx, Key, TransportConfig, TransportSpec};
use super::{Transport, TransportError};
use crate::config::ConfigError;

pub static SPEC: TransportSpec = TransportSpec {
    names: &["file"],
    keys: &[Key {
        names: &["file.path"],
        default: "`./export.out`",
        doc: "the file records are appended to (never truncated); it must not be a directory, and its directory must exist (checked at validation).",
    }],
    parse: |ctx| {
        let path = ctx.st.get("file.path").unwrap_or("./export.out").to_string();
        check_file_path(ctx, &path)?;
        Ok(Arc::new(FileConfig { path }))
    },
};

/// `export: file`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileConfig {
    pub path: String,
}

impl TransportConfig for FileConfig {
    fn kind(&self) -> &'static str {
        "file"
    }

    fn open(&self) -> Result<Box<dyn Transport>, TransportError> {
        Ok(Box::new(FileTransport::open(&self.path)?))
    }

    fn target(&self) -> String {
        format!("file {}", self.path)
    }
}

/// `file.path` must name a file in an existing directory: found now (exit 2 at validation)
/// rather than when the exporter opens it mid-run.
fn check_file_path(ctx: &Ctx, path: &str) -> Result<(), ConfigError> {
    let (cfg, st) = (ctx.cfg, ctx.st);
    if path.trim().is_empty() {
        return Err(cfg.error(st, Some("file.path"), "must not be empty".into()));
    }
    let p = std::path::Path::new(path);
    if p.is_dir() {
        return Err(cfg.error(
            st,
            Some("file.path"),
            format!("`{path}` is a directory (expected a file to append to)"),
        ));
    }
    let parent = match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."),
    };
    if !parent.is_dir() {
        return Err(cfg.error(
            st,
            Some("file.path"),
            format!(
                "the directory `{}` does not exist (the exporter does not create it)",
                parent.display()
            ),
        ));
    }
    Ok(())
}

pub struct FileTransport {
    path: String,
    /// Unbuffered: each batch is one `write_all`, so nothing of a failed batch lingers in a
    /// buffer to be written (and delivered after being counted failed) by a later flush.
    out: std::fs::File,
    /// The reopen generation the file was opened at.
    generation: u64,
}

impl FileTransport {
    pub fn open(path: &str) -> Result<Self, TransportError> {
        let generation = crate::reopen::current();
        let open = |read: bool| {
            OpenOptions::new()
                .create(true)
                .append(true)
                .read(read)
                .open(path)
        };
        // Reading is only needed to check the tail; a file we may append to but not read
        // is still written (unchecked).
        let (f, readable) = match open(true) {
            Ok(f) => (f, true),
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => (
                open(false).map_err(|e| TransportError::Io {
                    target: path.to_string(),
                    source: e,
                })?,
                false,
            ),
            Err(e) => {
                return Err(TransportError::Io {
                    target: path.to_string(),
                    source: e,
                })
            }
        };
        let regular = f.metadata().map(|m| m.is_file()).unwrap_or(false);
        let mut t = FileTransport {
            path: path.to_string(),
            out: f,
            generation,
        };
        if !(readable && regular) {
            return Ok(t);
        }
        if let Some(torn) = t.end_torn_tail().map_err(|e| t.err(e))? {
            tracing::warn!(
                path = %t.path,
                offset = torn.offset,
                bytes = torn.len,
                "the file ends in a partial line (a previous run was stopped mid-write): it is ended with a newline and kept; new records start on the next line"
            );
        }
        Ok(t)
    }

    /// Finds a last line without its newline and ends it, so new records start on a line of
    /// their own.
    fn end_torn_tail(&mut self) -> std::io::Result<Option<TornTail>> {
        let Some(torn) = torn_tail(&mut self.out)? else {
            return Ok(None);
        };
        self.out.write_all(b"\n")?;
        Ok(Some(torn))
    }

    fn err(&self, e: std::io::Error) -> TransportError {
        TransportError::Io {
            target: self.path.clone(),
            source: e,
        }
    }
}

/// A last line without its newline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TornTail {
    /// Byte offset of the line's first byte (a lower bound if the line is longer than the
    /// part searched).
    pub offset: u64,
    /// Its length in bytes (from `offset`).
    pub len: u64,
}

/// How far back the start of a torn line is searched (a record is a few KiB).
const TORN_SEARCH: u64 = 1 << 20;

/// The torn last line of `f`, if the file does not end with a newline.
pub fn torn_tail(f: &mut std::fs::File) -> std::io::Result<Option<TornTail>> {
    let len = f.metadata()?.len();
    if len == 0 {
        return Ok(None);
    }
    let start = len.saturating_sub(TORN_SEARCH);
    f.seek(SeekFrom::Start(start))?;
    let mut tail = Vec::with_capacity((len - start) as usize);
    Read::by_ref(f).take(len - start).read_to_end(&mut tail)?;
    f.seek(SeekFrom::End(0))?;
    if tail.last() == Some(&b'\n') {
        return Ok(None);
    }
    let line_start = match tail.iter().rposition(|b| *b == b'\n') {
        Some(p) => start + p as u64 + 1,
        None => start,
    };
    Ok(Some(TornTail {
        offset: line_start,
        len: len - line_start,
    }))
}

impl Transport for FileTransport {
    /// A batch counts as sent once the OS has it. A failed write is cut back off the file, so
    /// a retry (or the next batch) does not follow half a line; a full disk or quota is
    /// retried (space can be freed), other errors fail the batch.
    fn send_batch(&mut self, batch: &super::Payload) -> Result<(), TransportError> {
        let payload = &batch.bytes;
        if self.generation != crate::reopen::current() {
            // Everything written so far is in the old file; the new one starts here.
            let _ = self.out.sync_data();
            *self = FileTransport::open(&self.path)?;
            tracing::info!(path = %self.path, "output file reopened (SIGHUP)");
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_torn_last_line_is_found_and_ended() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out.json");
        std::fs::write(&p, b"{\"a\":1}\n{\"b\":").unwrap();
        let mut f = OpenOptions::new().read(true).append(true).open(&p).unwrap();
        assert_eq!(
            torn_tail(&mut f).unwrap(),
            Some(TornTail { offset: 8, len: 5 })
        );
        let mut t = FileTransport::open(p.to_str().unwrap()).unwrap();
        t.send_batch(&crate::exporter::Payload::lines(b"{\"c\":3}\n".to_vec()))
            .unwrap();
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            "{\"a\":1}\n{\"b\":\n{\"c\":3}\n"
        );
        // Whole lines are left alone, and so is an empty file.
        let mut f = std::fs::File::open(&p).unwrap();
        assert_eq!(torn_tail(&mut f).unwrap(), None);
        let empty = dir.path().join("empty.json");
        std::fs::write(&empty, b"").unwrap();
        assert_eq!(
            torn_tail(&mut std::fs::File::open(&empty).unwrap()).unwrap(),
            None
        );
    }

    #[test]
    fn a_reopen_request_moves_the_next_write_to_a_new_file_at_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("events.json");
        let mut t = FileTransport::open(p.to_str().unwrap()).unwrap();
        t.send_batch(&crate::exporter::Payload::lines(b"{\"a\":1}\n".to_vec()))
            .unwrap();
        let rotated = dir.path().join("events.json.1");
        std::fs::rename(&p, &rotated).unwrap();
        t.send_batch(&crate::exporter::Payload::lines(b"{\"b\":2}\n".to_vec()))
            .unwrap();
        crate::reopen::request();
        t.send_batch(&crate::exporter::Payload::lines(b"{\"c\":3}\n".to_vec()))
            .unwrap();
        assert_eq!(
            std::fs::read_to_string(&rotated).unwrap(),
            "{\"a\":1}\n{\"b\":2}\n"
        );
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "{\"c\":3}\n");
    }
}
