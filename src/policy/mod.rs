//! The policy engine: loader (YAML with a leniency step), condition parser, compiler with the
//! type index, value-based dispatch and the evaluation engine. The language is documented in
//! docs/policy-language.md.

pub mod actions;
pub mod attr;
pub mod compile;
pub mod dispatch;
pub mod engine;
pub mod loader;
pub mod parser;
