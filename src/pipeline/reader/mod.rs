//! The reader: decompresses and decodes blocks into datums. A bad block keeps the records
//! before the damage; the rest of that block is reported (file, block, records lost).

use std::sync::Arc;

use sfactors::{Node, NodeError};

use super::batch::{Blocks, Datums};
use crate::diagnostics::{Diagnostics, Skipped};
use crate::sysflow::ocf::BlockLimits;
use crate::sysflow::trace::decode_block_limited;

pub struct ReaderNode {
    diag: Arc<Diagnostics>,
    scratch: Vec<u8>,
    limits: BlockLimits,
    /// Union branches of record types the v5 model does not know.
    pub unknown: u64,
}

impl ReaderNode {
    pub fn new(diag: Arc<Diagnostics>, limits: BlockLimits) -> Self {
        ReaderNode {
            diag,
            scratch: Vec::new(),
            limits,
            unknown: 0,
        }
    }
}

impl Node for ReaderNode {
    type In = Blocks;
    type Out = Datums;

    fn process(&mut self, input: Blocks, out: &mut Vec<Datums>) -> Result<(), NodeError> {
        // Not sized by the blocks' declared counts: those are input (a header can declare
        // millions of records); each block's own vector is sized by its inflated bytes.
        let mut datums = Vec::new();
        let mut failed = None;
        for job in input.0 {
            let o = decode_block_limited(
                &job.source.plan,
                job.source.codec,
                &job.block,
                &mut self.scratch,
                &self.limits,
            );
            if o.unknown > 0 {
                if self.unknown == 0 {
                    tracing::warn!(file = %job.source.path, "records of unknown types skipped");
                }
                self.unknown += o.unknown;
            }
            if datums.is_empty() {
                datums = o.records;
            } else {
                datums.extend(o.records);
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
        out.push(Datums(datums));
        match failed {
            Some(reason) => Err(NodeError::new(reason)),
            None => Ok(()),
        }
    }

    fn reset(&mut self) {
        self.scratch = Vec::new();
    }
}
