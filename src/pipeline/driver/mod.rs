//! The file driver: reads traces (a file, or a directory's files in name order) and hands
//! compressed blocks downstream. Damage is reported with file and block, and reading goes on
//! at the next sync marker or the next file.

use std::collections::VecDeque;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sfactors::{Source, SourceStep};

use super::batch::{BlockJob, Blocks, TraceSource};
use crate::diagnostics::{Diagnostics, Skipped};
use crate::sysflow::ocf::{Frame, OcfReader};
use crate::sysflow::DatumPlan;

/// Lists the traces under `path`: the file itself, or the regular files of a directory sorted
/// by name (not recursive).
pub fn list_traces(path: &Path) -> Result<Vec<PathBuf>, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if meta.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    if !meta.is_dir() {
        return Err(format!("{}: not a file or directory", path.display()));
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().map(|t| t.is_file()).unwrap_or(false))
        .map(|e| e.path())
        .collect();
    files.sort();
    Ok(files)
}

struct OpenTrace {
    source: Arc<TraceSource>,
    reader: OcfReader<BufReader<File>>,
}

/// Reads trace files block by block.
pub struct FileDriver {
    files: VecDeque<PathBuf>,
    current: Option<OpenTrace>,
    diag: Arc<Diagnostics>,
    /// Records per batch sent downstream (whole blocks are never split).
    batch_records: u64,
}

impl FileDriver {
    pub fn new(files: Vec<PathBuf>, diag: Arc<Diagnostics>, batch_records: u64) -> Self {
        FileDriver {
            files: files.into(),
            current: None,
            diag,
            batch_records: batch_records.max(1),
        }
    }

    fn open(&self, path: &Path) -> Result<OpenTrace, String> {
        let f = File::open(path).map_err(|e| e.to_string())?;
        let reader =
            OcfReader::open(BufReader::with_capacity(256 << 10, f)).map_err(|e| e.to_string())?;
        let plan =
            DatumPlan::compile(reader.schema_json()).map_err(|e| format!("writer schema: {e}"))?;
        tracing::debug!(file = %path.display(), codec = ?reader.codec(), "opened trace");
        Ok(OpenTrace {
            source: Arc::new(TraceSource {
                path: path.display().to_string(),
                plan,
                codec: reader.codec(),
            }),
            reader,
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
                            reason: format!("file skipped: {reason}"),
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
                    batch.0.push(BlockJob {
                        source: cur.source.clone(),
                        block,
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
                    let reason = match resumed_at {
                        Some(at) => format!("{reason}; resumed at byte {at}"),
                        None => format!("{reason}; no further sync marker, rest of file skipped"),
                    };
                    self.diag.report(Skipped {
                        file: cur.source.path.clone(),
                        block: Some(index),
                        offset: Some(offset),
                        records_lost: None,
                        reason,
                    });
                }
                Frame::End => {
                    self.current = None;
                    // Keep batches within one file boundary small enough; carry on to the next.
                }
            }
        }
        if batch.0.is_empty() {
            SourceStep::End
        } else {
            SourceStep::Batch(batch)
        }
    }
}
