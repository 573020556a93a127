//! SysFlow processor core: decoding, entity cache and record assembly, encoders, pipeline
//! configuration. Plain Rust; the actor runtime lives in the `sfactors` crate and the thin
//! pipeline nodes in [`pipeline`].

pub mod app;
pub mod cache;
pub mod cli;
pub mod config;
pub mod counters;
pub mod diagnostics;
pub mod encode;
pub mod exporter;
pub mod fuzzing;
pub mod gen;
pub mod observe;
pub mod pipeline;
pub mod policy;
pub mod print;
pub mod progress;
pub mod queue;
pub mod ratelimit;
pub mod record;
pub mod reopen;
pub mod seqpacket;
pub mod shutdown;
pub mod sim;
pub mod stats;
pub mod sysflow;
pub mod timefmt;
