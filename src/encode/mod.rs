//! Encoders: turn records into bytes for a transport.

pub mod ecs;
pub mod json;

pub use ecs::EcsEncoder;
pub use json::JsonEncoder;
