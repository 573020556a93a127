//! Pipeline-level control: completion, escalation and the stop flag.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::mpsc;

/// Events nodes report to the pipeline (not the data path: a handful per run).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlEvent {
    /// The node received every end marker, flushed and forwarded its own.
    Finished(String),
    /// The node exceeded its restart budget or hit an unrecoverable error.
    Failed { node: String, reason: String },
}

/// Cloneable handle nodes use to report to the pipeline.
#[derive(Clone, Debug)]
pub struct Control {
    tx: mpsc::UnboundedSender<ControlEvent>,
}

impl Control {
    pub fn new() -> (Control, PipelineHandle) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Control { tx }, PipelineHandle { rx })
    }
    pub fn finished(&self, node: &str) {
        let _ = self.tx.send(ControlEvent::Finished(node.to_string()));
    }
    pub fn failed(&self, node: &str, reason: impl Into<String>) {
        let _ = self.tx.send(ControlEvent::Failed {
            node: node.to_string(),
            reason: reason.into(),
        });
    }
}

/// The pipeline owner's side: waits for all nodes to finish or one to fail.
pub struct PipelineHandle {
    rx: mpsc::UnboundedReceiver<ControlEvent>,
}

impl PipelineHandle {
    /// Waits until `nodes` distinct nodes have finished; returns the first failure instead if
    /// one is reported first.
    pub async fn wait(&mut self, nodes: usize) -> Result<(), ControlEvent> {
        let mut finished = std::collections::HashSet::new();
        while finished.len() < nodes {
            match self.rx.recv().await {
                Some(ControlEvent::Finished(n)) => {
                    finished.insert(n);
                }
                Some(failed @ ControlEvent::Failed { .. }) => return Err(failed),
                None => break,
            }
        }
        Ok(())
    }
}

/// Set by a signal handler (or a test) to make sources stop reading and drain the pipeline.
#[derive(Clone, Debug, Default)]
pub struct StopFlag(Arc<AtomicBool>);

impl StopFlag {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn stop(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    pub fn is_stopped(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}
