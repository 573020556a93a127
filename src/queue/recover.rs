//! What a queue directory holds at start: the previous runs' segments, checked frame by frame.
//! A torn tail is cut, a damaged segment is set aside under a new name and its good frames
//! copied into its place, and every finding is reported with its file and offset.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::frame::{self, HeaderError, SEGMENT_HEADER};
use super::scan::{SegmentScan, Step, TailWhy};
use super::QueueError;

/// A segment file of the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegInfo {
    pub id: u64,
    /// Bytes in the file (header included).
    pub len: u64,
}

/// What was found at start.
#[derive(Debug, Default, Clone)]
pub struct Recovered {
    /// The segments still holding undelivered records, oldest first.
    pub segments: Vec<SegInfo>,
    /// The first undelivered record: segment id and offset.
    pub ack: (u64, u64),
    /// Undelivered records found.
    pub records: u64,
    /// Append time (Unix ms) of the oldest undelivered record.
    pub oldest_ms: u64,
    /// Torn tails cut (each lost the one record being written).
    pub torn: u64,
    /// Damaged stretches skipped (each lost at least one record).
    pub damaged: u64,
    /// One line per finding, for the log.
    pub findings: Vec<String>,
}

pub fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:020}.seg"))
}

pub fn ack_path(dir: &Path) -> PathBuf {
    dir.join("ack")
}

/// Segment ids in `dir`, ascending.
pub fn list_segments(dir: &Path) -> Result<Vec<u64>, QueueError> {
    let rd = fs::read_dir(dir).map_err(|e| QueueError::io(dir, "list", e))?;
    let mut ids = Vec::new();
    for e in rd {
        let e = e.map_err(|e| QueueError::io(dir, "list", e))?;
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(stem) = name.strip_suffix(".seg") {
            if let Ok(id) = stem.parse::<u64>() {
                ids.push(id);
            }
        }
    }
    ids.sort_unstable();
    Ok(ids)
}

/// The acknowledged position: segment id, offset, CRC32C of the 16 bytes before it.
pub fn encode_ack(seg: u64, off: u64) -> [u8; 20] {
    let mut b = [0u8; 20];
    b[..8].copy_from_slice(&seg.to_le_bytes());
    b[8..16].copy_from_slice(&off.to_le_bytes());
    let crc = crc32c::crc32c(&b[..16]);
    b[16..].copy_from_slice(&crc.to_le_bytes());
    b
}

/// Reads the ack file; `None` when it is missing or not intact (then everything on disk is
/// delivered again: at least once, never lost).
pub fn read_ack(dir: &Path) -> Option<(u64, u64)> {
    let b = fs::read(ack_path(dir)).ok()?;
    if b.len() < 20 || crc32c::crc32c(&b[..16]).to_le_bytes() != b[16..20] {
        return None;
    }
    let mut s = [0u8; 8];
    s.copy_from_slice(&b[..8]);
    let mut o = [0u8; 8];
    o.copy_from_slice(&b[8..16]);
    Some((u64::from_le_bytes(s), u64::from_le_bytes(o)))
}

/// Checks a segment's header; an unknown version stops the start (never misread).
pub fn check_header(path: &Path, f: &File, len: u64) -> Result<bool, QueueError> {
    if len < SEGMENT_HEADER {
        // Created and never written (a crash right after the create): nothing to read.
        return Ok(false);
    }
    let mut h = [0u8; SEGMENT_HEADER as usize];
    f.read_exact_at(&mut h, 0)
        .map_err(|e| QueueError::io(path, "read", e))?;
    match frame::check_segment_header(&h) {
        Ok(()) => Ok(true),
        Err(HeaderError::Version(v)) => Err(QueueError::Version {
            path: path.to_path_buf(),
            version: v,
        }),
        Err(HeaderError::NotASegment) => Err(QueueError::NotASegment {
            path: path.to_path_buf(),
        }),
    }
}

/// Scans the queue directory (already locked by the caller).
pub fn recover(dir: &Path) -> Result<Recovered, QueueError> {
    let ids = list_segments(dir)?;
    let mut out = Recovered::default();
    let mut ack = read_ack(dir);
    if ack.is_none() && ack_path(dir).exists() {
        out.findings.push(format!(
            "{}: not intact; every record on disk is delivered again",
            ack_path(dir).display()
        ));
    }
    let last = ids.last().copied();
    for &id in &ids {
        let path = segment_path(dir, id);
        if let Some((aseg, _)) = ack {
            if id < aseg {
                // Delivered; its deletion was cut short by a stop.
                fs::remove_file(&path).map_err(|e| QueueError::io(&path, "remove", e))?;
                continue;
            }
        }
        let f = File::open(&path).map_err(|e| QueueError::io(&path, "open", e))?;
        let len = f
            .metadata()
            .map_err(|e| QueueError::io(&path, "stat", e))?
            .len();
        if !check_header(&path, &f, len)? {
            drop(f);
            fs::remove_file(&path).map_err(|e| QueueError::io(&path, "remove", e))?;
            continue;
        }
        let start = match ack {
            Some((aseg, aoff)) if aseg == id => aoff.clamp(SEGMENT_HEADER, len),
            _ => SEGMENT_HEADER,
        };
        let mut scan = SegmentScan::new(f, start, len);
        let mut records = 0u64;
        let mut good: Vec<(u64, u64)> = Vec::new();
        let mut damaged = false;
        let mut cut_at = None;
        loop {
            let step = scan
                .next_step()
                .map_err(|e| QueueError::io(&path, "read", e))?;
            match step {
                Step::Frame { offset, frame } => {
                    if out.records == 0 && records == 0 {
                        out.oldest_ms = frame.ts_ms;
                    }
                    records += 1;
                    good.push((offset, frame.size as u64));
                }
                Step::End => break,
                Step::Tail {
                    offset,
                    bytes,
                    why: TailWhy::Cut,
                } if Some(id) == last => {
                    out.torn += 1;
                    out.findings.push(format!(
                        "{}: torn last record at offset {offset} ({bytes} bytes of a record whose write was cut): cut off, 1 record lost",
                        path.display()
                    ));
                    cut_at = Some(offset);
                    break;
                }
                Step::Tail { offset, bytes, why } => {
                    let what = match why {
                        TailWhy::Cut => "a record that runs past the end",
                        TailWhy::Damaged(b) => b.describe(),
                    };
                    if Some(id) == last && matches!(why, TailWhy::Damaged(_)) && records > 0 {
                        // Past the last good frame of the newest segment: a write that
                        // never finished (or a page the kernel never wrote) — a torn tail.
                        out.torn += 1;
                        out.findings.push(format!(
                            "{}: unreadable tail at offset {offset} ({bytes} bytes, {what}): cut off, at least 1 record lost",
                            path.display()
                        ));
                        cut_at = Some(offset);
                    } else {
                        out.damaged += 1;
                        damaged = true;
                        out.findings.push(format!(
                            "{}: damaged from offset {offset} to the end ({bytes} bytes, {what}): at least 1 record lost",
                            path.display()
                        ));
                    }
                    break;
                }
                Step::Damaged {
                    offset,
                    resumed,
                    why,
                } => {
                    out.damaged += 1;
                    damaged = true;
                    out.findings.push(format!(
                        "{}: damaged at offset {offset} ({}), {} bytes skipped to the next good record: at least 1 record lost",
                        path.display(),
                        why.describe(),
                        resumed - offset
                    ));
                }
            }
        }
        drop(scan);
        let len = if damaged {
            let new_len = set_aside(dir, id, &good)?;
            if ack.is_some_and(|(aseg, _)| aseg == id) {
                ack = Some((id, SEGMENT_HEADER));
                write_ack(dir, id, SEGMENT_HEADER)?;
            }
            new_len
        } else if let Some(at) = cut_at {
            let f = OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(|e| QueueError::io(&path, "open", e))?;
            f.set_len(at)
                .and_then(|_| f.sync_all())
                .map_err(|e| QueueError::io(&path, "truncate", e))?;
            at
        } else {
            len
        };
        out.records += records;
        out.segments.push(SegInfo { id, len });
    }
    out.ack = match (ack, out.segments.first()) {
        (Some((aseg, aoff)), Some(s)) if aseg == s.id => (aseg, aoff.max(SEGMENT_HEADER)),
        (_, Some(s)) => (s.id, SEGMENT_HEADER),
        (Some(a), None) => a,
        (None, None) => (0, SEGMENT_HEADER),
    };
    Ok(out)
}

/// Writes the ack position (not synced here).
pub fn write_ack(dir: &Path, seg: u64, off: u64) -> Result<(), QueueError> {
    let p = ack_path(dir);
    let f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(&p)
        .map_err(|e| QueueError::io(&p, "open", e))?;
    f.write_all_at(&encode_ack(seg, off), 0)
        .map_err(|e| QueueError::io(&p, "write", e))
}

/// Moves a damaged segment aside (`<id>.seg.damaged`, numbered if taken) and writes its good
/// frames (`good`: offset and size, in order) under its name. Returns the new length.
fn set_aside(dir: &Path, id: u64, good: &[(u64, u64)]) -> Result<u64, QueueError> {
    let path = segment_path(dir, id);
    let tmp = path.with_extension("seg.tmp");
    let src = File::open(&path).map_err(|e| QueueError::io(&path, "open", e))?;
    let mut out = File::create(&tmp).map_err(|e| QueueError::io(&tmp, "create", e))?;
    let mut len = SEGMENT_HEADER;
    out.write_all(&frame::segment_header())
        .map_err(|e| QueueError::io(&tmp, "write", e))?;
    let mut buf = Vec::new();
    for &(off, size) in good {
        buf.resize(size as usize, 0);
        src.read_exact_at(&mut buf, off)
            .map_err(|e| QueueError::io(&path, "read", e))?;
        out.write_all(&buf)
            .map_err(|e| QueueError::io(&tmp, "write", e))?;
        len += size;
    }
    out.sync_all()
        .map_err(|e| QueueError::io(&tmp, "sync", e))?;
    let mut aside = path.with_extension("seg.damaged");
    let mut n = 1;
    while aside.exists() {
        aside = path.with_extension(format!("seg.damaged.{n}"));
        n += 1;
    }
    fs::rename(&path, &aside).map_err(|e| QueueError::io(&path, "rename", e))?;
    fs::rename(&tmp, &path).map_err(|e| QueueError::io(&tmp, "rename", e))?;
    sync_dir(dir);
    tracing::warn!(segment = %path.display(), set_aside = %aside.display(), "damaged queue segment set aside; its good records stay queued");
    Ok(len)
}

/// Makes a directory's entries (created, renamed, removed files) durable. Best effort: a
/// file system that cannot sync a directory still has the files.
pub fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}
