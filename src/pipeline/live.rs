//! What a pipeline exposes while it runs: every node's counters and the live statistics of
//! the socket, the exporters, the entity tables and the policy sets. The run registers its
//! parts here as it starts them; the metrics endpoint reads it at every scrape and the
//! end-of-run summary at the end. Nothing here is on the data path: the parts write their own
//! atomics, this only holds references to them.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use sfactors::{MetricsSnapshot, NodeMetrics};

use super::policy::PolicyHandle;
use crate::stats::{ExporterStats, SocketStats, TableStats};

/// One node, with the labels it is reported under.
#[derive(Clone)]
pub struct NodeEntry {
    pub metrics: Arc<NodeMetrics>,
    /// The stage's processor (`driver`, `sysflowreader`, `policyengine`, `exporter`, ...).
    pub stage: String,
    /// The exporter's transport (`syslog`, `kafka`, ...), empty for other nodes.
    pub exporter: String,
}

/// An exporter's delivery statistics, by node name.
#[derive(Clone)]
pub struct ExporterEntry {
    pub node: String,
    pub exporter: String,
    pub stats: Arc<ExporterStats>,
}

/// A policy stage.
#[derive(Clone)]
pub struct PolicyEntry {
    pub node: String,
    pub handle: Arc<PolicyHandle>,
}

/// The live view of one run.
#[derive(Default)]
pub struct Live {
    nodes: Mutex<Vec<NodeEntry>>,
    exporters: Mutex<Vec<ExporterEntry>>,
    policies: Mutex<Vec<PolicyEntry>>,
    pub socket: Arc<SocketStats>,
    pub tables: Arc<TableStats>,
    /// Which drivers feed the pipeline (`file`, `socket`), once started.
    drivers: Mutex<Vec<&'static str>>,
    /// Set while the pipeline runs (cleared when it has drained).
    pub running: AtomicBool,
    /// Set when a signal has started the drain (systemd is told `STOPPING=1`).
    pub draining: AtomicBool,
    /// Bytes of trace files read so far (the file driver; for the progress bar).
    pub bytes_read: Arc<std::sync::atomic::AtomicU64>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

impl Live {
    pub fn new() -> Arc<Self> {
        Arc::new(Live::default())
    }

    pub fn add_node(&self, metrics: Arc<NodeMetrics>, stage: &str, exporter: &str) {
        lock(&self.nodes).push(NodeEntry {
            metrics,
            stage: stage.to_string(),
            exporter: exporter.to_string(),
        });
    }

    pub fn add_exporter(&self, node: &str, exporter: &str, stats: Arc<ExporterStats>) {
        lock(&self.exporters).push(ExporterEntry {
            node: node.to_string(),
            exporter: exporter.to_string(),
            stats,
        });
    }

    pub fn add_policy(&self, node: &str, handle: Arc<PolicyHandle>) {
        lock(&self.policies).push(PolicyEntry {
            node: node.to_string(),
            handle,
        });
    }

    /// A driver of the run started.
    pub fn add_driver(&self, name: &'static str) {
        lock(&self.drivers).push(name);
    }

    /// The drivers' names (`socket`, `file+socket`, ...).
    pub fn driver(&self) -> String {
        lock(&self.drivers).join("+")
    }

    /// Socket drivers in the run.
    pub fn socket_drivers(&self) -> u64 {
        lock(&self.drivers)
            .iter()
            .filter(|d| **d == "socket")
            .count() as u64
    }

    /// Records the driver has read and records the policy stages have passed on (in alert
    /// mode, the alerts), for the progress bar.
    pub fn progress(&self) -> (u64, u64) {
        let (mut read, mut passed) = (0, 0);
        for n in lock(&self.nodes).iter() {
            let m = n.metrics.snapshot();
            match n.stage.as_str() {
                "driver" => read += m.sent_records,
                "policyengine" => passed += m.sent_records,
                _ => {}
            }
        }
        (read, passed)
    }

    pub fn nodes(&self) -> Vec<NodeEntry> {
        lock(&self.nodes).clone()
    }

    pub fn exporters(&self) -> Vec<ExporterEntry> {
        lock(&self.exporters).clone()
    }

    pub fn policies(&self) -> Vec<PolicyEntry> {
        lock(&self.policies).clone()
    }

    /// Every node's counters now.
    pub fn snapshots(&self) -> Vec<MetricsSnapshot> {
        lock(&self.nodes)
            .iter()
            .map(|n| n.metrics.snapshot())
            .collect()
    }

    /// Whether the agent is ready for traffic: the pipeline runs, the driver is reading
    /// (for the socket: listening or connected) and no exporter's last attempt failed. The
    /// reasons it is not, otherwise.
    pub fn readiness(&self) -> Result<(), Vec<String>> {
        let mut why = Vec::new();
        if !self.running.load(Ordering::Relaxed) {
            why.push("the pipeline is not running".to_string());
        }
        let sockets = self.socket_drivers();
        if sockets > 0 && self.socket.listening.load(Ordering::Relaxed) < sockets {
            why.push("the socket driver is not listening".to_string());
        }
        for e in self.exporters() {
            if let Some(r) = e.stats.down_reason() {
                why.push(format!("{} ({}): {r}", e.node, e.exporter));
            }
        }
        if why.is_empty() {
            Ok(())
        } else {
            Err(why)
        }
    }
}
