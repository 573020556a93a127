//! Looking into a queue directory from the command line (`sfprint -queue DIR`): what is
//! queued, how old, and what is damaged — read-only, so it can look at a running agent's
//! queue (records appended meanwhile may be missed, never altered).

use std::fs::File;
use std::path::Path;

use super::frame::SEGMENT_HEADER;
use super::recover::{check_header, list_segments, read_ack, segment_path};
use super::scan::{SegmentScan, Step, TailWhy};
use super::QueueError;

/// What a queue directory holds.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Inspection {
    pub segments: usize,
    /// Undelivered records.
    pub records: u64,
    /// Bytes of the segment files.
    pub bytes: u64,
    /// Append times (Unix ms) of the oldest and newest undelivered records.
    pub oldest_ms: Option<u64>,
    pub newest_ms: Option<u64>,
    /// The first undelivered record (segment id, offset), from the ack file.
    pub ack: Option<(u64, u64)>,
    /// Damaged stretches and torn tails, one line each with file and offset.
    pub damage: Vec<String>,
    /// Segments set aside as damaged by an earlier start.
    pub set_aside: Vec<String>,
    /// Whether an agent holds the queue now.
    pub locked: bool,
}

/// Reads every undelivered frame of the queue in `dir`.
pub fn inspect(dir: &Path) -> Result<Inspection, QueueError> {
    inspect_records(dir, |_| {})
}

/// [`inspect`], handing each undelivered record (as the exporter encoded it) to `each`.
pub fn inspect_records(dir: &Path, mut each: impl FnMut(&[u8])) -> Result<Inspection, QueueError> {
    if !dir.is_dir() {
        return Err(QueueError::io(
            dir,
            "open",
            std::io::Error::new(std::io::ErrorKind::NotFound, "no such queue directory"),
        ));
    }
    let mut out = Inspection {
        ack: read_ack(dir),
        ..Default::default()
    };
    if let Ok(f) = File::open(dir.join("lock")) {
        out.locked = matches!(super::lock::try_lock(&f, false), Ok(false));
    }
    for e in std::fs::read_dir(dir)
        .map_err(|e| QueueError::io(dir, "list", e))?
        .flatten()
    {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.contains(".seg.damaged") {
            out.set_aside.push(name);
        }
    }
    out.set_aside.sort();
    for id in list_segments(dir)? {
        if out.ack.is_some_and(|(a, _)| id < a) {
            continue;
        }
        let path = segment_path(dir, id);
        let f = File::open(&path).map_err(|e| QueueError::io(&path, "open", e))?;
        let len = f
            .metadata()
            .map_err(|e| QueueError::io(&path, "stat", e))?
            .len();
        out.segments += 1;
        out.bytes += len;
        if !check_header(&path, &f, len)? {
            continue;
        }
        let start = match out.ack {
            Some((a, off)) if a == id => off.clamp(SEGMENT_HEADER, len),
            _ => SEGMENT_HEADER,
        };
        let mut scan = SegmentScan::new(f, start, len);
        loop {
            match scan
                .next_step()
                .map_err(|e| QueueError::io(&path, "read", e))?
            {
                Step::Frame { offset, frame } => {
                    each(scan.record(offset, &frame));
                    out.records += 1;
                    out.oldest_ms.get_or_insert(frame.ts_ms);
                    out.newest_ms = Some(frame.ts_ms);
                }
                Step::End => break,
                Step::Tail { offset, bytes, why } => {
                    out.damage.push(format!(
                        "{}: offset {offset}: {} ({bytes} bytes to the end)",
                        path.display(),
                        match why {
                            TailWhy::Cut => "torn record",
                            TailWhy::Damaged(b) => b.describe(),
                        }
                    ));
                    break;
                }
                Step::Damaged {
                    offset,
                    resumed,
                    why,
                } => out.damage.push(format!(
                    "{}: offset {offset}: {} ({} bytes skipped)",
                    path.display(),
                    why.describe(),
                    resumed - offset
                )),
            }
        }
    }
    Ok(out)
}
