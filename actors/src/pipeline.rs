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
/// A source waiting on its reactor awaits [`StopFlag::stopped`] beside its descriptor rather
/// than waking every so often to look at the flag: an idle agent does not wake at all.
#[derive(Clone, Debug, Default)]
pub struct StopFlag(Arc<StopInner>);

#[derive(Debug, Default)]
struct StopInner {
    stopped: AtomicBool,
    notify: tokio::sync::Notify,
}

impl StopFlag {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn stop(&self) {
        self.0.stopped.store(true, Ordering::SeqCst);
        self.0.notify.notify_waiters();
    }
    pub fn is_stopped(&self) -> bool {
        self.0.stopped.load(Ordering::Relaxed)
    }
    /// Resolves once [`StopFlag::stop`] was called (at once if it was already).
    pub async fn stopped(&self) {
        loop {
            let notified = self.0.notify.notified();
            tokio::pin!(notified);
            // Registered before the flag is read, so a stop in between is not missed.
            notified.as_mut().enable();
            if self.0.stopped.load(Ordering::SeqCst) {
                return;
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::StopFlag;
    use std::time::Duration;

    #[actix_rt::test]
    async fn stopped_resolves_on_stop_and_at_once_after_it() {
        let flag = StopFlag::new();
        let waiter = flag.clone();
        let waiting = tokio::spawn(async move { waiter.stopped().await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished(), "resolved before stop");
        flag.stop();
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("stopped() did not resolve after stop()")
            .unwrap();
        tokio::time::timeout(Duration::from_secs(5), flag.stopped())
            .await
            .expect("stopped() after stop() did not resolve at once");
    }
}
