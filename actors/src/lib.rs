//! A small supervised-actor runtime on actix for batch pipelines.
//!
//! Why it exists: actix gives mailboxes and a `Supervisor` that restarts an actor while keeping
//! its mailbox, but it does not catch panics, has no restart budget, and its `send(..).await`
//! waits for the *handler result*, which would make a pipeline run in lock step. This crate adds:
//!
//! * [`Node`] / [`Source`] / [`AsyncSource`]: plain-Rust traits a pipeline stage implements
//!   (no actor types leak into the core); an `AsyncSource` waits without blocking, so it can
//!   share a thread with the nodes it feeds;
//! * [`NodeActor`]: the actor that owns a node, catches panics at the handler boundary, counts
//!   the failed batch as a dead letter and lets the actix `Supervisor` restart it with the
//!   **same mailbox** (queued batches survive), with exponential backoff and a restart budget
//!   that escalates to the pipeline when exceeded;
//! * [`Outbox`]: the data-path sender. Every downstream edge has a bounded window of batches in
//!   flight; when the window is full the sender awaits the oldest `send(..)` response, so a slow
//!   consumer slows its producer all the way back to the source (backpressure), while up to
//!   `window` batches overlap (pipelining across threads). Mailbox capacity is sized so a send
//!   never parks, which keeps batches in order.
//!
//! The crate knows nothing about SysFlow.

mod metrics;
mod node;
mod outbox;
mod pipeline;
mod restart;
mod source;

pub use metrics::{MetricsSnapshot, NodeMetrics};
pub use node::{panic_message, BatchLen, Envelope, Node, NodeActor, NodeError, NodeSpec};
pub use outbox::{Downstream, Outbox};
pub use pipeline::{Control, ControlEvent, PipelineHandle, StopFlag};
pub use restart::RestartPolicy;
pub use source::{AsyncSource, Blocking, Source, SourceActor, SourceStep, StepFuture};
