//! The socket driver (`-driver socket PATH`): the server the SysFlow collector streams to.
//!
//! It listens on a `SOCK_SEQPACKET` Unix socket at PATH, one collector connection at a time
//! (as upstream; a second one waits in the listen backlog), and receives one Avro datum per
//! packet. The first packet of a connection is a header naming the schema version; the
//! packets are handed to the reader in batches (decoding happens there, per packet), cut by
//! size or by the latency budget (`batch.latency`): the first packet of a batch starts it,
//! the driver sleeps while it lasts — packets queue in the kernel meanwhile — and then takes
//! everything queued at once. Every batch wakes each pipeline stage once, so at a collector's
//! usual rates (hundreds to tens of thousands of records/s) batches of a budget's worth of
//! records, not of one or two, are what keeps the agent's CPU low; at high rates batches fill
//! before the budget is spent and go at once (the budget adapts to the rate), and a stream
//! sparser than one packet per budget is handed on packet by packet (nothing to gather).
//! When the pipeline is full the driver stops receiving: the kernel queue fills and the
//! collector's sends block, so nothing is dropped inside the agent. A collector that
//! disconnects is waited for again; what was received from it is delivered first.
//!
//! * `driver.rs`: the driver itself, a state machine that never blocks: each step either
//!   produces a batch or says what it waits for (packets, a connection, the budget's end);
//! * `run.rs`: who does the waiting — a thread of its own ([`SocketDriver`] as a blocking
//!   source), or the live pipeline's shared thread ([`SocketSource`]: descriptor readiness
//!   and timers on that thread's reactor, so a batch reaches the reader without a
//!   cross-thread wake-up; a fast stream is read on a blocking-pool thread meanwhile).

use std::path::PathBuf;
use std::time::Duration;

use crate::config::{ConfigError, PipelineConfig, StageConfig};
use crate::seqpacket::SocketAccess;

mod driver;
mod run;

pub use driver::SocketDriver;
pub use run::SocketSource;

/// Keys of a `socket` entry in `drivers`.
pub const KEYS: &[&str] = &[
    "path",
    "schema.version",
    "packet.maxsize",
    "batch.maxage",
    "batch.latency",
    "mode",
    "group",
];

/// Settings of the socket driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketSettings {
    /// The socket path from the configuration (it wins over the command line's PATH).
    pub path: Option<PathBuf>,
    /// Decode every connection with this schema version, whatever its header says (and
    /// before any header).
    pub version: Option<i64>,
    /// Largest packet accepted whole; a larger one is reported as truncated.
    pub max_packet: usize,
    /// The latency budget: a batch is handed on once its first packet is this old (or it is
    /// full), whatever came meanwhile.
    pub latency: Duration,
    /// The socket file's mode and group (`mode`, `group`).
    pub access: SocketAccess,
}

impl Default for SocketSettings {
    fn default() -> Self {
        SocketSettings {
            path: None,
            version: None,
            max_packet: 1 << 20,
            latency: DEFAULT_LATENCY,
            access: SocketAccess::default(),
        }
    }
}

/// Default of `batch.latency`: the part of the 10 ms alert budget (collector's send to the
/// target's receipt) spent gathering a batch; the pipeline's hops and the exporter take the
/// rest.
pub const DEFAULT_LATENCY: Duration = Duration::from_millis(5);

/// Parses the settings of a `socket` entry of `drivers`.
pub fn settings(
    cfg: &PipelineConfig,
    d: &StageConfig,
    path: Option<PathBuf>,
) -> Result<SocketSettings, ConfigError> {
    let def = SocketSettings::default();
    let version = match cfg.choice(d, "schema.version", "", &["4", "5"])? {
        "" => None,
        v => v.parse::<i64>().ok(),
    };
    let mut access = SocketAccess::default();
    if let Some(m) = d.get("mode").map(str::trim).filter(|m| !m.is_empty()) {
        access.mode = u32::from_str_radix(m.trim_start_matches("0o"), 8)
            .ok()
            .filter(|m| *m <= 0o777)
            .ok_or_else(|| {
                cfg.error(
                    d,
                    Some("mode"),
                    format!("`{m}` is not an octal file mode (e.g. 0660)"),
                )
            })?;
        if access.mode & 0o002 != 0 {
            return Err(cfg.error(
                d,
                Some("mode"),
                format!("`{m}` lets every local user write to the socket (inject events); use a group instead (`group`)"),
            ));
        }
    }
    if let Some(g) = d.get("group").map(str::trim).filter(|g| !g.is_empty()) {
        access.group = Some(
            crate::seqpacket::group_id(g)
                .map_err(|e| cfg.error(d, Some("group"), e.to_string()))?,
        );
    }
    Ok(SocketSettings {
        access,
        path,
        version,
        max_packet: cfg.bytes(
            d,
            "packet.maxsize",
            def.max_packet as u64,
            64 << 10,
            64 << 20,
        )? as usize,
        // `batch.maxage` is this build's earlier name of the budget.
        latency: cfg.duration(
            d,
            if d.get("batch.latency").is_none() && d.get("batch.maxage").is_some() {
                "batch.maxage"
            } else {
                "batch.latency"
            },
            def.latency,
            Duration::from_micros(100),
            Duration::from_secs(1),
            false,
        )?,
    })
}
