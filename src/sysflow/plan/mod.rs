//! Schema-compiled decoding: a writer schema is compiled once into a plan that reads Avro
//! binary straight into the v5 structs (no generic Avro value per record).
//!
//! Resolution follows Avro's rules where they apply (fields matched by name, missing fields
//! take the v5 defaults, enums mapped by symbol name, int promoted to long, logical types read
//! as their underlying long) plus the SysFlow-specific mappings for the legacy pre-v1 files
//! (see `docs/compatibility.md`):
//! * a legacy `ProcessFlow` that carries `args`/`ret`/`tid` is what v1 renamed `ProcessEvent`,
//!   so it decodes as a `ProcessEvent`;
//! * legacy `Process.type` (enum `ActionType`) is the v1 `state`;
//! * legacy `ProcessFlow.type` (enum `EventType` CLONE/EXEC/EXIT) becomes the op flag bit.
//!
//! `compile.rs` turns a writer schema into a plan (checked against the v5 field tables);
//! `decode.rs` runs a plan over the bytes of one datum. The plan's types are here.

use super::model::*;

mod compile;
mod decode;

pub use compile::kind_by_record_name;

/// How to step over a writer value we do not keep.
#[derive(Debug, Clone)]
enum Skip {
    Null,
    Bool,
    Varint,
    Float,
    Double,
    Bytes,
    Fixed(usize),
    Array(Box<Skip>),
    Map(Box<Skip>),
    Union(Vec<Skip>),
    Record(Vec<Skip>),
}

/// Target types of v5 fields.
#[derive(Debug, Clone, Copy)]
enum Ty {
    Long,
    Int,
    Bool,
    Str,
    OptStr,
    Oid,
    OptOid,
    Foid,
    OptFoid,
    Enum(&'static [&'static str]),
    StrArray,
    LongArray,
    StrMap,
    Services,
    Ports,
}

/// A compiled conversion from a writer value to a target field.
#[derive(Debug, Clone)]
enum Conv {
    Long,
    Bool,
    Str,
    /// Union: per branch, `None` for null or the conversion of the value.
    Opt(Vec<Option<Conv>>),
    /// OID record: per writer field, 0 = createTS, 1 = hpid, or skip.
    Oid(Vec<Result<u8, Skip>>),
    Fixed(usize),
    /// Writer enum index -> target value; `None` for a symbol the target does not know.
    Enum(Vec<Option<i32>>),
    Array(Box<Conv>),
    StrMap,
    Record(Box<RecordPlan>),
    Skip(Skip),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Nested {
    Service,
    Port,
}

#[derive(Debug, Clone)]
struct RecordPlan {
    nested: Nested,
    steps: Vec<Step>,
}

#[derive(Debug, Clone)]
struct Step {
    slot: u8,
    conv: Conv,
}

/// One branch of the writer's `rec` union.
#[derive(Debug, Clone)]
enum Branch {
    Known {
        kind: Kind,
        steps: Vec<Step>,
    },
    /// A record type the v5 model does not know: skipped and counted by the caller.
    Unknown {
        name: String,
        skip: Skip,
    },
    /// A non-record branch (e.g. `null`): skipped.
    Other(Skip),
}

#[derive(Debug, Clone)]
enum TopField {
    Rec(Vec<Branch>),
    Skip(Skip),
}

/// A writer schema compiled against the v5 model.
#[derive(Debug, Clone)]
pub struct DatumPlan {
    top: Vec<TopField>,
    /// Writer record names of the union branches, in order.
    branch_names: Vec<String>,
}

/// The result of decoding one datum. Not boxed: unknown branches are rare, records are not.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Decoded {
    Record(SysFlow),
    /// A union branch of a type the model does not know (its writer name).
    Unknown(String),
}
