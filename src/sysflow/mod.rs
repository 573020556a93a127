//! SysFlow model and decoding: Avro container framing, schema-compiled datum decoding into the
//! v5 structs, and the names of flags and enums used by encoders and policies.

pub mod cursor;
pub mod model;
pub mod names;
pub mod ocf;
pub mod plan;
pub mod stream;
pub mod trace;
pub mod writer;

pub use model::*;
pub use plan::{DatumPlan, Decoded};

/// The SysFlow Avro schema version of the reader model every writer schema resolves to (and
/// that `sfgen` writes by default).
pub const READER_SCHEMA_VERSION: u32 = 5;

/// An Avro datum could not be decoded. Positions are byte offsets in the (decompressed) block or
/// packet.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("unexpected end of data at byte {pos}")]
    Eof { pos: usize },
    #[error("malformed varint at byte {pos}")]
    VarInt { pos: usize },
    #[error("int value {value} out of range at byte {pos}")]
    IntRange { pos: usize, value: i64 },
    #[error("invalid boolean byte {byte:#x} at byte {pos}")]
    Bool { pos: usize, byte: u8 },
    #[error("invalid length {len} at byte {pos}")]
    Length { pos: usize, len: i64 },
    #[error("union branch {branch} out of range at byte {pos}")]
    Union { pos: usize, branch: i64 },
    #[error("enum index {index} out of range at byte {pos}")]
    Enum { pos: usize, index: i64 },
    #[error("decode plan does not match the data at byte {pos}")]
    Plan { pos: usize },
    #[error("{0}")]
    Codec(String),
    #[error("{0} trailing bytes after the last record of the block")]
    Trailing(usize),
    #[error("record larger than {limit} bytes once decoded at byte {pos} (record.maxsize)")]
    Oversize { pos: usize, limit: usize },
}

/// A writer schema that cannot be resolved against the v5 model.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("{message}")]
pub struct SchemaError {
    pub message: String,
}

impl SchemaError {
    pub fn new(message: String) -> Self {
        SchemaError { message }
    }
}

/// A trace file or directory that cannot be read at all (damage inside a readable trace is
/// reported per block instead: `trace::Damage`).
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("{}: {source}", path.display())]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {source}", path.display())]
    Container {
        path: std::path::PathBuf,
        #[source]
        source: FrameError,
    },
    #[error("{}: writer schema: {source}", path.display())]
    Schema {
        path: std::path::PathBuf,
        #[source]
        source: SchemaError,
    },
    #[error("{}: not a regular file or directory ({kind})", path.display())]
    NotATrace {
        path: std::path::PathBuf,
        kind: &'static str,
    },
    #[error("{}: the directory is empty", path.display())]
    EmptyDirectory { path: std::path::PathBuf },
}

impl TraceError {
    /// The cause without the path (for messages that name the file already).
    pub fn reason(&self) -> String {
        match self {
            TraceError::Io { source, .. } => source.to_string(),
            TraceError::Container { source, .. } => source.to_string(),
            TraceError::Schema { source, .. } => format!("writer schema: {source}"),
            TraceError::NotATrace { kind, .. } => {
                format!("not a regular file or directory ({kind})")
            }
            TraceError::EmptyDirectory { .. } => "the directory is empty".into(),
        }
    }
}

/// Damage in the container framing.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("invalid header: {0}")]
    Header(String),
    #[error("truncated")]
    Truncated,
    #[error("corrupt framing: {0}")]
    Corrupt(String),
    #[error("I/O error: {0}")]
    Io(String),
}
