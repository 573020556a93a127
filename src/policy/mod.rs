//! The policy engine, in stages: the loader reads YAML files (with a leniency step) into raw
//! entries, the parser turns condition text into an AST with spans, the compiler resolves
//! lists and macros and builds the predicate IR (`ir`), the passes optimise it, the set holds
//! the compiled rules with their type index, and the engine evaluates records with a per-shard
//! memo. The language is documented in docs/policy-language.md.

pub mod actions;
pub mod attr;
pub mod collector;
pub mod compiler;
pub mod diag;
pub mod dispatch;
pub mod engine;
pub mod eval;
pub mod files;
pub mod ir;
pub mod language;
pub mod leniency;
pub mod loader;
pub mod matcher;
pub mod memo;
pub mod parser;
pub mod passes;
pub mod set;
pub mod sigma;
pub mod source;
