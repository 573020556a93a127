//! The policy engine (work in progress): condition parser so far. See docs/policy-language.md
//! for what is finished.

pub mod actions;
pub mod attr;
pub mod compile;
pub mod engine;
pub mod loader;
pub mod parser;
