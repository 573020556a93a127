//! The file driver: reads traces (a file, or a directory's files in name order) and hands
//! compressed blocks downstream. Damage is reported with file and block, and reading goes on
//! at the next sync marker or the next file.

use std::collections::VecDeque;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sfactors::{Source, SourceStep};

use crate::diagnostics::{Diagnostics, Skipped};
use crate::pipeline::batch::{BlockJob, Blocks, TraceSource};
use crate::shutdown::Shutdown;
use crate::sysflow::ocf::{resume_note, BlockLimits, Frame, OcfReader};
use crate::sysflow::trace::open_trace;
use crate::sysflow::TraceError;

/// What a file input holds: the traces to read, and what was left out (named in the run's
/// summary, which then exits 1).
#[derive(Debug, Clone, Default)]
pub struct Listing {
    pub files: Vec<PathBuf>,
    pub skipped: Vec<Skipped>,
}

impl From<Vec<PathBuf>> for Listing {
    fn from(files: Vec<PathBuf>) -> Self {
        Listing {
            files,
            skipped: Vec::new(),
        }
    }
}

/// Lists the traces under `path`: the file itself, or the regular files of a directory sorted
/// by name (not recursive). Symbolic links are followed; anything else in the directory (a
/// subdirectory, a FIFO, a socket, a device, a dangling link) is listed as skipped rather
/// than read (a FIFO could block the run for ever) or ignored without a word.
pub fn list_traces(path: &Path) -> Result<Listing, TraceError> {
    let io = |source| TraceError::Io {
        path: path.into(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if meta.is_file() {
        return Ok(vec![path.to_path_buf()].into());
    }
    if !meta.is_dir() {
        return Err(TraceError::NotATrace {
            path: path.into(),
            kind: kind_of(&meta),
        });
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(io)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(io)?;
    if entries.is_empty() {
        return Err(TraceError::EmptyDirectory { path: path.into() });
    }
    entries.sort();
    let mut listing = Listing::default();
    for p in entries {
        let why = match std::fs::metadata(&p) {
            Ok(m) if m.is_file() => {
                listing.files.push(p);
                continue;
            }
            Ok(m) => format!("not read: {}", kind_of(&m)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                "not read: a symbolic link to nothing".to_string()
            }
            Err(e) => format!("not read: {e}"),
        };
        listing.skipped.push(Skipped {
            file: p.display().to_string(),
            block: None,
            offset: None,
            records_lost: None,
            reason: why,
        });
    }
    Ok(listing)
}

/// What a non-regular file is, for messages.
fn kind_of(m: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = m.file_type();
    if t.is_dir() {
        "a directory (directories are not searched recursively)"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_block_device() || t.is_char_device() {
        "a device"
    } else {
        "not a regular file"
    }
}

struct OpenTrace {
    source: Arc<TraceSource>,
    reader: OcfReader<BufReader<File>>,
    /// File size at open (progress).
    len: u64,
}

/// Reads trace files block by block.
pub struct FileDriver {
    files: VecDeque<PathBuf>,
    current: Option<OpenTrace>,
    diag: Arc<Diagnostics>,
    /// Records per batch sent downstream (whole blocks are never split).
    batch_records: u64,
    /// Told when the last file has been read: the drain clock starts then.
    shutdown: Arc<Shutdown>,
    limits: BlockLimits,
    /// Bytes read so far: the files done, plus the position in the current one.
    bytes_read: Arc<std::sync::atomic::AtomicU64>,
    bytes_done: u64,
    /// Which driver of the run this is.
    index: u16,
}

impl FileDriver {
    /// Reads `listing`'s files; what it skipped is reported now.
    pub fn new(
        listing: Listing,
        diag: Arc<Diagnostics>,
        batch_records: u64,
        shutdown: Arc<Shutdown>,
        limits: BlockLimits,
        bytes_read: Arc<std::sync::atomic::AtomicU64>,
    ) -> Self {
        for s in listing.skipped {
            diag.report(s);
        }
        FileDriver {
            files: listing.files.into(),
            current: None,
            diag,
            batch_records: batch_records.max(1),
            shutdown,
            limits,
            bytes_read,
            bytes_done: 0,
            index: 0,
        }
    }

    /// This driver's index among the run's drivers.
    pub fn with_index(mut self, index: u16) -> Self {
        self.index = index;
        self
    }

    fn open(&self, path: &Path) -> Result<OpenTrace, TraceError> {
        let len = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        let (reader, plan) = open_trace(path, self.limits, 256 << 10)?;
        tracing::debug!(file = %path.display(), codec = ?reader.codec(), "opened trace");
        Ok(OpenTrace {
            source: Arc::new(TraceSource {
                path: path.display().to_string(),
                plan: Arc::new(plan),
                codec: reader.codec(),
                driver: self.index,
            }),
            reader,
            len,
        })
    }
}

impl Source for FileDriver {
    type Out = Blocks;

    fn next(&mut self) -> SourceStep<Blocks> {
        let mut batch = Blocks::default();
        let mut records = 0u64;
        loop {
            if self.current.is_none() {
                let Some(path) = self.files.pop_front() else {
                    break;
                };
                match self.open(&path) {
                    Ok(t) => self.current = Some(t),
                    Err(reason) => {
                        self.diag.report(Skipped {
                            file: path.display().to_string(),
                            block: None,
                            offset: None,
                            records_lost: None,
                            reason: format!("file skipped: {}", reason.reason()),
                        });
                        continue;
                    }
                }
            }
            let Some(cur) = self.current.as_mut() else {
                continue;
            };
            match cur.reader.next_frame() {
                Frame::Block(block) => {
                    records += block.count;
                    self.bytes_read.store(
                        self.bytes_done + block.offset + block.data.len() as u64,
                        std::sync::atomic::Ordering::Relaxed,
                    );
                    batch.0.push(BlockJob {
                        source: cur.source.clone(),
                        block,
                        packets: Vec::new(),
                    });
                    if records >= self.batch_records {
                        break;
                    }
                }
                Frame::Damaged {
                    index,
                    offset,
                    reason,
                    resumed_at,
                } => {
                    let reason = format!("{reason}; {}", resume_note(resumed_at));
                    self.diag.report(Skipped {
                        file: cur.source.path.clone(),
                        block: Some(index),
                        offset: Some(offset),
                        records_lost: None,
                        reason,
                    });
                }
                Frame::End => {
                    self.bytes_done += cur.len;
                    self.bytes_read
                        .store(self.bytes_done, std::sync::atomic::Ordering::Relaxed);
                    self.current = None;
                    // Keep batches within one file boundary small enough; carry on to the next.
                }
            }
        }
        if batch.0.is_empty() {
            self.shutdown.input_ended();
            SourceStep::End
        } else {
            SourceStep::Batch(batch)
        }
    }
}
