//! SysFlow processor core: decoding, entity cache and record assembly, encoders, pipeline
//! configuration. Plain Rust; the actor runtime lives in the `sfactors` crate and the thin
//! pipeline nodes in [`pipeline`].

pub mod sysflow;
