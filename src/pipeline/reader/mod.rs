//! The reader: decompresses and decodes blocks into datums. A bad block keeps the records
//! before the damage; the rest of that block is reported (file, block, records lost).

use std::sync::Arc;

use sfactors::{Node, NodeError};

use super::batch::{BlockJob, Blocks, Datums};
use crate::diagnostics::{Diagnostics, Skipped};
use crate::stats::{BadPacket, RateLimit, SocketStats};
use crate::sysflow::ocf::BlockLimits;
use crate::sysflow::stream::decode_packet_limited;
use crate::sysflow::trace::decode_block_into;
use crate::sysflow::{DecodeError, Decoded, SysFlow};

pub struct ReaderNode {
    diag: Arc<Diagnostics>,
    scratch: Vec<u8>,
    limits: BlockLimits,
    /// Union branches of record types the v5 model does not know.
    pub unknown: u64,
    /// Socket input: bad packets are counted here (not stored: a stream runs for months).
    socket: Arc<SocketStats>,
    log: RateLimit,
}

impl ReaderNode {
    pub fn new(diag: Arc<Diagnostics>, limits: BlockLimits, socket: Arc<SocketStats>) -> Self {
        ReaderNode {
            diag,
            scratch: Vec::new(),
            limits,
            unknown: 0,
            socket,
            log: RateLimit::new(5, std::time::Duration::from_secs(10)),
        }
    }

    /// Decodes a socket job packet by packet: a packet that does not decode as exactly one
    /// datum is counted, logged (rate-limited) and skipped; the others are kept.
    fn packets(&mut self, job: &BlockJob, datums: &mut Vec<SysFlow>) {
        let mut start = 0usize;
        for (i, len) in job.packets.iter().enumerate() {
            let end = start + *len as usize;
            let Some(bytes) = job.block.data.get(start..end) else {
                break;
            };
            match decode_packet_limited(&job.source.plan, bytes, self.limits.max_record) {
                Ok(Decoded::Record(r)) => datums.push(r),
                Ok(Decoded::Unknown(_)) => self.unknown += 1,
                Err(e) => {
                    let why = match e {
                        DecodeError::Oversize { .. } => BadPacket::Oversize,
                        _ => BadPacket::Decode,
                    };
                    self.socket.add_bad(why);
                    if let Some(suppressed) = self.log.allow() {
                        tracing::warn!(
                            reason = why.label(),
                            suppressed,
                            "socket packet skipped: {}: packet {}: {e}",
                            job.source.path,
                            job.block.index + i as u64
                        );
                    }
                }
            }
            start = end;
        }
    }
}

impl Node for ReaderNode {
    type In = Blocks;
    type Out = Datums;

    fn process(&mut self, input: Blocks, out: &mut Vec<Datums>) -> Result<(), NodeError> {
        // Not sized by the blocks' declared counts alone: those are input (a header can
        // declare millions of records). Each count is capped by its block's compressed size
        // (a datum takes at least one byte, and deflate expands at most about 1000x) and the
        // whole by the batch limit; each block then reserves by its inflated bytes.
        let hint: u64 = input
            .0
            .iter()
            .map(|j| {
                j.block
                    .count
                    .min((j.block.data.len() as u64).saturating_mul(1032))
            })
            .fold(0u64, |a, n| a.saturating_add(n));
        let mut datums = Vec::with_capacity(hint.min(1 << 16) as usize);
        // A driver batch comes from one driver.
        let driver = input.0.first().map(|j| j.source.driver).unwrap_or(0);
        let mut failed = None;
        for job in input.0 {
            if !job.packets.is_empty() {
                self.packets(&job, &mut datums);
                continue;
            }
            let o = decode_block_into(
                &job.source.plan,
                job.source.codec,
                &job.block,
                &mut self.scratch,
                &self.limits,
                &mut datums,
            );
            if o.unknown > 0 {
                if self.unknown == 0 {
                    tracing::warn!(file = %job.source.path, "records of unknown types skipped");
                }
                self.unknown += o.unknown;
            }
            if let Some(e) = o.error {
                let s = Skipped {
                    file: job.source.path.clone(),
                    block: Some(job.block.index),
                    offset: Some(job.block.offset),
                    records_lost: Some(o.lost),
                    reason: e.to_string(),
                };
                failed = Some(s.to_string());
                self.diag.report(s);
            }
        }
        // Shrink the scratch buffer if one huge block inflated it.
        if self.scratch.capacity() > 4 << 20 {
            self.scratch = Vec::new();
        }
        out.push(Datums(datums, driver));
        match failed {
            Some(reason) => Err(NodeError::new(reason)),
            None => Ok(()),
        }
    }

    fn reset(&mut self) {
        self.scratch = Vec::new();
    }
}
