//! The reader: decompresses and decodes blocks into datums. A bad block keeps the records
//! before the damage; the rest of that block is reported (file, block, records lost).

use std::sync::Arc;

use sfactors::{Node, NodeError};

use super::batch::{Blocks, Datums};
use crate::diagnostics::{Diagnostics, Skipped};
use crate::sysflow::trace::decode_block;

pub struct ReaderNode {
    diag: Arc<Diagnostics>,
    scratch: Vec<u8>,
    /// Union branches of record types the v5 model does not know.
    pub unknown: u64,
}

impl ReaderNode {
    pub fn new(diag: Arc<Diagnostics>) -> Self {
        ReaderNode {
            diag,
            scratch: Vec::new(),
            unknown: 0,
        }
    }
}

impl Node for ReaderNode {
    type In = Blocks;
    type Out = Datums;

    fn process(&mut self, input: Blocks, out: &mut Vec<Datums>) -> Result<(), NodeError> {
        let mut datums = Vec::with_capacity(input.0.iter().map(|b| b.block.count as usize).sum());
        let mut failed = None;
        for job in input.0 {
            let o = decode_block(
                &job.source.plan,
                job.source.codec,
                &job.block,
                &mut self.scratch,
            );
            if o.unknown > 0 {
                if self.unknown == 0 {
                    tracing::warn!(file = %job.source.path, "records of unknown types skipped");
                }
                self.unknown += o.unknown;
            }
            datums.extend(o.records);
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
        if self.scratch.capacity() > 64 << 20 {
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
