//! What travels between pipeline nodes: batches, never single records.

use std::sync::Arc;

use sfactors::BatchLen;

use crate::record::Record;
use crate::sysflow::ocf::{Codec, RawBlock};
use crate::sysflow::{DatumPlan, SysFlow};

/// A trace being read (or a socket connection): its name and the decode plan compiled from
/// its writer schema.
#[derive(Debug)]
pub struct TraceSource {
    pub path: String,
    pub plan: Arc<DatumPlan>,
    pub codec: Codec,
    /// The driver it came from (its index in the run's drivers): each driver's records keep
    /// entity tables of their own, so one collector's header cannot reset another's.
    pub driver: u16,
}

/// One compressed block and the trace it came from. From the socket driver, the block is
/// packets laid end to end (`packets` holds their lengths): each is one datum, decoded on its
/// own, so a bad packet costs only itself.
#[derive(Debug, Clone)]
pub struct BlockJob {
    pub source: Arc<TraceSource>,
    pub block: RawBlock,
    /// Lengths of the packets in `block.data` (socket input); empty for a container block.
    pub packets: Vec<u32>,
}

/// Driver -> reader.
#[derive(Debug, Clone, Default)]
pub struct Blocks(pub Vec<BlockJob>);

impl BatchLen for Blocks {
    fn batch_len(&self) -> usize {
        self.0.iter().map(|b| b.block.count as usize).sum()
    }
}

/// Reader -> flattener: decoded datums in stream order, and the driver they came from.
#[derive(Debug, Clone, Default)]
pub struct Datums(pub Vec<SysFlow>, pub u16);

impl Datums {
    /// Datums of the first (or only) driver.
    pub fn new(datums: Vec<SysFlow>) -> Self {
        Datums(datums, 0)
    }
}

impl BatchLen for Datums {
    fn batch_len(&self) -> usize {
        self.0.len()
    }
}

/// Flattener -> policy engine -> exporters. The second field is set when every record of
/// the batch belongs to one policy shard (see [`Part`]).
#[derive(Debug, Clone, Default)]
pub struct Records(pub Vec<Record>, pub Option<Part>);

impl Records {
    /// A batch not known to belong to one shard.
    pub fn new(records: Vec<Record>) -> Self {
        Records(records, None)
    }
}

/// Every record of a batch maps to shard `shard` of `of` by its process key: the flattener
/// splits its output this way when it feeds a sharded policy stage, so the router forwards
/// the batch whole instead of moving each record (248 bytes) into a new vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Part {
    pub shard: u32,
    pub of: u32,
}

impl BatchLen for Records {
    fn batch_len(&self) -> usize {
        self.0.len()
    }
}

/// A sink's (absent) output.
#[derive(Debug, Clone, Copy, Default)]
pub struct Nothing;

impl BatchLen for Nothing {
    fn batch_len(&self) -> usize {
        0
    }
}
