//! Encoders: turn records into bytes for a transport. Each format is registered in
//! `exporter::registry::FORMATS` with its [`RecordEncoder`].

pub mod ecs;
pub mod json;

pub use ecs::EcsEncoder;
pub use json::JsonEncoder;

use crate::record::Record;

/// An output format: one record in, its encoding appended to a buffer. The exporter node
/// records where each record ends (`exporter::Payload`), so transports never look for
/// separators and a binary encoding passes as well as a text one.
pub trait RecordEncoder: Send {
    /// Appends `rec`'s encoding to `out` (no separator).
    fn encode(&mut self, rec: &Record, out: &mut Vec<u8>);
    /// Whether the encoding is a line of text: the payload then puts a newline after each
    /// record, which the stream transports (file, terminal) write as they are.
    fn text(&self) -> bool {
        true
    }
}

impl RecordEncoder for JsonEncoder {
    fn encode(&mut self, rec: &Record, out: &mut Vec<u8>) {
        JsonEncoder::encode(self, rec, out)
    }
}

impl RecordEncoder for EcsEncoder {
    fn encode(&mut self, rec: &Record, out: &mut Vec<u8>) {
        EcsEncoder::encode(self, rec, out)
    }
}
