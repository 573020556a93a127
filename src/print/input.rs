//! Reading traces for sfprint: local files and directories (and files fetched from S3, see
//! [`super::s3`]) decoded with the processor's decoder and assembled with its entity cache,
//! one record at a time. Damage is collected, not fatal: the rest of the file is read (from
//! the next sync marker) and the other files too.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::cache::EntityCache;
use crate::pipeline::flattener::OpNameCache;
use crate::record::Record;
use crate::sysflow::ocf::{resume_note, Frame, OcfReader};
use crate::sysflow::trace::decode_block;
use crate::sysflow::DatumPlan;

/// Something in the input that could not be read, named for stderr.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    pub file: String,
    pub message: String,
}

impl std::fmt::Display for Damage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.file, self.message)
    }
}

/// The trace files under `paths`, in sysprint's order: a file as given; a directory's
/// regular files (not recursive) by the number their names' digits form, then by name.
/// Paths that are neither are reported as damage.
pub fn list_local(paths: &[PathBuf], damage: &mut Vec<Damage>) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for p in paths {
        match crate::pipeline::driver::list_traces(p) {
            Ok(listing) => {
                let mut files = listing.files;
                if files.len() > 1 {
                    files.sort_by_cached_key(|f| {
                        let name = f.file_name().map(|n| n.to_string_lossy().into_owned());
                        let digits: String = name
                            .iter()
                            .flat_map(|n| n.chars())
                            .filter(char::is_ascii_digit)
                            .collect();
                        (digits.parse::<u128>().ok(), name)
                    });
                }
                out.extend(files);
                damage.extend(listing.skipped.into_iter().map(|s| Damage {
                    file: s.file,
                    message: s.reason,
                }));
            }
            Err(e) => {
                // The damage line names the path: the message is the cause alone.
                damage.push(Damage {
                    file: p.display().to_string(),
                    message: e.reason(),
                })
            }
        }
    }
    out
}

/// Counts the bytes read through it (for the progress bar).
struct Counting<R> {
    inner: R,
    bytes: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bytes.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// What the writer schema of a file holds that sysprint shows differently when absent (it
/// prints `''` for a field the file does not have; the decoder fills in the default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileFacts {
    pub proc_entry: bool,
    pub header_ip: bool,
}

impl Default for FileFacts {
    fn default() -> Self {
        FileFacts {
            proc_entry: true,
            header_ip: true,
        }
    }
}

impl FileFacts {
    /// Reads the facts from a writer schema (Avro JSON).
    pub fn of_schema(schema: &str) -> FileFacts {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(schema) else {
            return FileFacts::default();
        };
        FileFacts {
            proc_entry: has_field(&v, "Process", "entry"),
            header_ip: has_field(&v, "SFHeader", "ip"),
        }
    }
}

/// Whether a record type named `record` (with any namespace) in `v` has field `field`.
fn has_field(v: &serde_json::Value, record: &str, field: &str) -> bool {
    use serde_json::Value as V;
    match v {
        V::Array(a) => a.iter().any(|x| has_field(x, record, field)),
        V::Object(o) => {
            let named = o.get("type").and_then(V::as_str) == Some("record")
                && o.get("name")
                    .and_then(V::as_str)
                    .is_some_and(|n| n.rsplit('.').next() == Some(record));
            if named {
                if let Some(V::Array(fs)) = o.get("fields") {
                    if fs
                        .iter()
                        .any(|f| f.get("name").and_then(V::as_str) == Some(field))
                    {
                        return true;
                    }
                }
            }
            o.values().any(|x| has_field(x, record, field))
        }
        _ => false,
    }
}

/// How records are assembled.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReadOptions {
    /// Upstream's quirks as the agent's default (`quirks: upstream`): the process-tree cache
    /// and the op-flag name cache, so `-p` rules match what `sfprocessor` alerts.
    pub upstream_quirks: bool,
}

/// Reads `files` in order and calls `each` with every record; `each` returns false to stop
/// (an output error). `bytes` counts the bytes read. Returns the damage seen.
pub fn read_records(
    files: &[PathBuf],
    opts: ReadOptions,
    bytes: &Arc<AtomicU64>,
    mut each: impl FnMut(Record, &FileFacts) -> bool,
) -> Vec<Damage> {
    let mut damage = Vec::new();
    for f in files {
        if !read_file(f, opts, bytes, &mut each, &mut damage) {
            break;
        }
    }
    damage
}

fn read_file(
    path: &Path,
    opts: ReadOptions,
    bytes: &Arc<AtomicU64>,
    each: &mut impl FnMut(Record, &FileFacts) -> bool,
    damage: &mut Vec<Damage>,
) -> bool {
    let name = path.display().to_string();
    let mut fail = |message: String| {
        damage.push(Damage {
            file: name.clone(),
            message,
        })
    };
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) => {
            fail(e.to_string());
            return true;
        }
    };
    let src = Counting {
        inner: BufReader::with_capacity(256 << 10, file),
        bytes: bytes.clone(),
    };
    let mut reader = match OcfReader::open(src) {
        Ok(r) => r,
        Err(e) => {
            fail(format!("not a SysFlow trace: {e}"));
            return true;
        }
    };
    let plan = match DatumPlan::compile(reader.schema_json()) {
        Ok(p) => p,
        Err(e) => {
            fail(format!("writer schema: {e}"));
            return true;
        }
    };
    let codec = reader.codec();
    let facts = FileFacts::of_schema(reader.schema_json());
    let mut cache = EntityCache::default().with_frozen_lineage(opts.upstream_quirks);
    let mut op_names = opts.upstream_quirks.then(OpNameCache::default);
    let mut scratch = Vec::new();
    loop {
        match reader.next_frame() {
            Frame::Block(b) => {
                let o = decode_block(&plan, codec, &b, &mut scratch);
                for sf in o.records {
                    if let Some(mut rec) = cache.apply(sf) {
                        if let Some(c) = op_names.as_mut() {
                            c.apply(&mut rec);
                        }
                        if !each(rec, &facts) {
                            return false;
                        }
                    }
                }
                if let Some(e) = o.error {
                    fail(format!(
                        "block {} at byte {}: {e} ({} records lost)",
                        b.index, b.offset, o.lost
                    ));
                }
            }
            Frame::Damaged {
                index,
                offset,
                reason,
                resumed_at,
            } => fail(format!(
                "block {index} at byte {offset}: {reason}; {}",
                resume_note(resumed_at)
            )),
            Frame::End => return true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_facts_find_fields_by_record_name() {
        let s = r#"{"type":"record","name":"SysFlow","namespace":"sysflow","fields":[{"name":"rec","type":[
            {"type":"record","name":"SFHeader","namespace":"sysflow.entity","fields":[{"name":"version","type":"long"}]},
            {"type":"record","name":"Process","fields":[{"name":"entry","type":"boolean"}]}]}]}"#;
        let f = FileFacts::of_schema(s);
        assert!(f.proc_entry);
        assert!(!f.header_ip);
        assert_eq!(FileFacts::of_schema("not json"), FileFacts::default());
    }
}
