//! Exporters: formats x transports. One folder per transport, each named once in
//! `registry` (its keys, its configuration, its opening); `config` reads an exporter stage.

mod config;
pub mod delivery;
pub mod es;
pub mod file;
mod handoff;
pub mod http;
pub mod httpc;
pub mod kafka;
pub mod null;
pub mod payload;
pub mod registry;
pub mod syslog;
pub mod terminal;
pub mod tls;

use std::sync::Arc;
use std::time::Duration;

pub use config::ExporterConfig;
pub use delivery::{DeliveryConfig, WhenFull};
pub use payload::Payload;

/// A transport failed to deliver a batch.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// A local I/O error (file, terminal): not retried.
    #[error("{target}: {source}")]
    Io {
        target: String,
        #[source]
        source: std::io::Error,
    },
    /// The target cannot be reached now (refused, reset, timed out): retried.
    #[error("{target}: {reason}")]
    Unavailable { target: String, reason: String },
    /// The target refused the data, or the data can never be sent: not retried.
    #[error("{target}: {reason}")]
    Rejected { target: String, reason: String },
    /// Part of a batch was acknowledged (`delivered`), part refused for good (`failed`, already
    /// logged by the transport); `rest` can heal and is retried.
    #[error("{target}: {reason}")]
    Partial {
        target: String,
        reason: String,
        delivered: usize,
        failed: usize,
        rest: Box<Payload>,
    },
}

impl TransportError {
    /// Whether trying again later can succeed.
    pub fn retryable(&self) -> bool {
        matches!(
            self,
            TransportError::Unavailable { .. } | TransportError::Partial { .. }
        )
    }
}

/// Where encoded records go. A batch counts as sent only when `send_batch` returns `Ok`.
pub trait Transport: Send {
    /// Sends a batch: its records (with their boundaries), keys and ids.
    fn send_batch(&mut self, batch: &Payload) -> Result<(), TransportError>;
    fn flush(&mut self) -> Result<(), TransportError>;
    /// The drain deadline, once the input has ended: an attempt that would block past it (a
    /// target that accepts and never reads, a broker that never reports) should end near it
    /// instead. Transports whose attempts cannot block for long ignore it.
    fn set_deadline(&mut self, _deadline: Option<std::time::Instant>) {}
    /// The run's end-of-input clock and this exporter's drain timeout, for an attempt that
    /// is already blocked when the input ends (a write to a target that stopped reading):
    /// [`Transport::set_deadline`] only reaches the next attempt. Transports whose attempts
    /// cannot block for long ignore it.
    fn set_drain_clock(&mut self, _clock: Arc<crate::shutdown::Shutdown>, _timeout: Duration) {}
    /// Checks the target is usable (what `-test` runs).
    fn healthcheck(&mut self) -> Result<(), TransportError> {
        Ok(())
    }
    /// The exporter's live statistics, for a transport that learns its target's state
    /// outside of delivery attempts (librdkafka's broker states): it reports it there, and
    /// readiness follows it. Others ignore it.
    fn watch(&mut self, _stats: Arc<crate::stats::ExporterStats>) {}
    /// How often the delivery worker calls [`Transport::tick`] while it has nothing to send
    /// (`None`: never).
    fn tick_interval(&self) -> Option<Duration> {
        None
    }
    /// Housekeeping between batches (serving librdkafka's callbacks).
    fn tick(&mut self) {}
    /// Whether a send completes at once and can neither wait nor fail (the null transport):
    /// such a transport is driven on the exporter node's thread, without a delivery worker
    /// to wake for every batch.
    fn inline(&self) -> bool {
        false
    }
}
