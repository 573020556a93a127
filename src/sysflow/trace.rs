//! Decoding of whole blocks and whole trace files, with damage accounting.

use std::path::Path;

use super::cursor::Cursor;
use super::model::{Kind, SysFlow};
use super::ocf::{BlockLimits, Codec, Frame, OcfReader, RawBlock};
use super::plan::{DatumPlan, Decoded};
use super::{DecodeError, TraceError};

/// The result of decoding one block: the records before any damage, and the damage.
#[derive(Debug, Default)]
pub struct BlockOutcome {
    pub records: Vec<SysFlow>,
    /// Union branches of types the v5 model does not know (skipped).
    pub unknown: u64,
    /// Damage inside the block; `records` holds what was decoded before it.
    pub error: Option<DecodeError>,
    /// Records the block declared but that could not be decoded.
    pub lost: u64,
}

/// Decompresses and decodes one block. Stops at the first bad datum: the records before it are
/// kept, the rest of the block is counted as lost (a datum boundary cannot be found again
/// inside an Avro block).
pub fn decode_block(
    plan: &DatumPlan,
    codec: Codec,
    block: &RawBlock,
    scratch: &mut Vec<u8>,
) -> BlockOutcome {
    decode_block_limited(plan, codec, block, scratch, &BlockLimits::default())
}

/// [`decode_block`] with the caller's limits on the inflated size and the record count.
pub fn decode_block_limited(
    plan: &DatumPlan,
    codec: Codec,
    block: &RawBlock,
    scratch: &mut Vec<u8>,
    limits: &BlockLimits,
) -> BlockOutcome {
    let mut records = Vec::new();
    let mut out = decode_block_into(plan, codec, block, scratch, limits, &mut records);
    out.records = records;
    out
}

/// [`decode_block_limited`] appending the records to `records` (the reader's batch), so a
/// batch of several blocks is decoded in place instead of block by block and then moved
/// again. The outcome's own `records` stays empty.
pub fn decode_block_into(
    plan: &DatumPlan,
    codec: Codec,
    block: &RawBlock,
    scratch: &mut Vec<u8>,
    limits: &BlockLimits,
    records: &mut Vec<SysFlow>,
) -> BlockOutcome {
    let mut out = BlockOutcome::default();
    if block.count > limits.max_records {
        out.error = Some(DecodeError::Codec(format!(
            "block declares {} records (limit {}: block.maxrecords)",
            block.count, limits.max_records
        )));
        out.lost = block.count;
        return out;
    }
    if let Err(e) = codec.decompress(&block.data, scratch, limits.max_inflated) {
        out.error = Some(e);
        out.lost = block.count;
        return out;
    }
    // Every datum takes at least one byte: the declared count cannot be trusted beyond that.
    records.reserve(block.count.min(scratch.len() as u64).min(1 << 16) as usize);
    let mut c = Cursor::with_limit(scratch, limits.max_record);
    let mut done = 0u64;
    while done < block.count {
        match plan.decode(&mut c) {
            Ok(Decoded::Record(r)) => records.push(r),
            Ok(Decoded::Unknown(_)) => out.unknown += 1,
            Err(e) => {
                out.error = Some(e);
                out.lost = block.count - done;
                return out;
            }
        }
        done += 1;
    }
    if !c.is_empty() {
        out.error = Some(DecodeError::Trailing(c.remaining()));
    }
    out
}

/// Per-kind record counts.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct KindCounts(pub [u64; 12]);

impl KindCounts {
    pub fn add(&mut self, k: Kind) {
        self.0[k as usize] += 1;
    }
    pub fn get(&self, k: Kind) -> u64 {
        self.0[k as usize]
    }
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }
}

/// One piece of damage found in a trace.
#[derive(Debug, Clone)]
pub struct Damage {
    pub block: u64,
    pub offset: u64,
    pub reason: String,
    /// Records lost, when the block header was readable.
    pub lost: Option<u64>,
}

/// Everything read from one trace file (used by tests, the bench and `-test`).
#[derive(Debug, Default)]
pub struct TraceSummary {
    pub counts: KindCounts,
    pub blocks: u64,
    pub unknown: u64,
    pub damage: Vec<Damage>,
    pub branch_names: Vec<String>,
}

/// Opens a trace: its container reader (with `limits`, buffered by `buffer` bytes) and the
/// decoding plan of its writer schema.
pub fn open_trace(
    path: &Path,
    limits: BlockLimits,
    buffer: usize,
) -> Result<(OcfReader<std::io::BufReader<std::fs::File>>, DatumPlan), TraceError> {
    let f = std::fs::File::open(path).map_err(|source| TraceError::Io {
        path: path.into(),
        source,
    })?;
    let mut r =
        OcfReader::open(std::io::BufReader::with_capacity(buffer, f)).map_err(|source| {
            TraceError::Container {
                path: path.into(),
                source,
            }
        })?;
    r.set_limits(limits);
    let plan = DatumPlan::compile(r.schema_json()).map_err(|source| TraceError::Schema {
        path: path.into(),
        source,
    })?;
    Ok((r, plan))
}

/// Reads a whole trace, calling `each` for every decoded record, and reports damage instead of
/// stopping at it.
pub fn read_trace(path: &Path, mut each: impl FnMut(SysFlow)) -> Result<TraceSummary, TraceError> {
    let (r, plan) = open_trace(path, BlockLimits::default(), 64 << 10)?;
    let mut r = r;
    let mut s = TraceSummary {
        branch_names: plan.branch_names().to_vec(),
        ..Default::default()
    };
    let codec = r.codec();
    let mut scratch = Vec::new();
    loop {
        match r.next_frame() {
            Frame::Block(b) => {
                s.blocks += 1;
                let o = decode_block(&plan, codec, &b, &mut scratch);
                s.unknown += o.unknown;
                for rec in o.records {
                    s.counts.add(rec.kind());
                    each(rec);
                }
                if let Some(e) = o.error {
                    s.damage.push(Damage {
                        block: b.index,
                        offset: b.offset,
                        reason: e.to_string(),
                        lost: Some(o.lost),
                    });
                }
            }
            Frame::Damaged {
                index,
                offset,
                reason,
                ..
            } => s.damage.push(Damage {
                block: index,
                offset,
                reason,
                lost: None,
            }),
            Frame::End => break,
        }
    }
    Ok(s)
}
