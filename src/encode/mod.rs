//! Encoders: turn records into bytes for a transport.

pub mod json;

pub use json::JsonEncoder;
