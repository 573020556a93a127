//! The node trait and the supervised actor that runs it.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;

use crate::metrics::NodeMetrics;
use crate::outbox::{Downstream, Outbox};
use crate::pipeline::Control;
use crate::restart::{RestartDecision, RestartPolicy, RestartTracker};

/// Number of records in a batch, for the metrics.
pub trait BatchLen {
    fn batch_len(&self) -> usize;
}

impl<T> BatchLen for Vec<T> {
    fn batch_len(&self) -> usize {
        self.len()
    }
}

impl<T> BatchLen for Arc<Vec<T>> {
    fn batch_len(&self) -> usize {
        self.len()
    }
}

impl BatchLen for () {
    fn batch_len(&self) -> usize {
        0
    }
}

/// What travels on an edge: a batch, or the end-of-stream marker of one producer.
pub enum Envelope<T> {
    Batch(T),
    End,
}

impl<T> Message for Envelope<T> {
    type Result = ();
}

/// A failure of one batch that the node handled itself (no restart). Whatever the node put in
/// `out` before returning it is still forwarded; the error is counted and logged.
#[derive(Debug, Clone)]
pub struct NodeError {
    pub reason: String,
}

impl NodeError {
    pub fn new(reason: impl Into<String>) -> Self {
        NodeError {
            reason: reason.into(),
        }
    }
}

impl std::fmt::Display for NodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)
    }
}

/// A pipeline stage in plain Rust: batches in, batches out.
pub trait Node: Send + Unpin + 'static {
    type In: BatchLen + Send + 'static;
    type Out: BatchLen + Clone + Send + 'static;

    /// Processes one batch, pushing output batches to `out`.
    fn process(&mut self, input: Self::In, out: &mut Vec<Self::Out>) -> Result<(), NodeError>;

    /// Called once every producer has ended: flush buffered state.
    fn finish(&mut self, _out: &mut Vec<Self::Out>) -> Result<(), NodeError> {
        Ok(())
    }

    /// Called when the node is restarted after a panic; drop state that may be inconsistent.
    fn reset(&mut self) {}

    /// For routers: the downstream (by index) that output batch `position` of the last
    /// `process` call goes to. `None` (the default) sends every batch to every downstream.
    fn route(&self, _position: usize) -> Option<usize> {
        None
    }
}

/// The text of a caught panic (its `&str` or `String` payload).
pub fn panic_message(p: &Box<dyn Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic payload".to_string()
    }
}

/// Runs a [`Node`] under an actix `Supervisor`.
pub struct NodeActor<N: Node> {
    node: N,
    metrics: Arc<NodeMetrics>,
    outbox: Option<Outbox<N::Out>>,
    upstreams: usize,
    ended: usize,
    policy: RestartPolicy,
    tracker: RestartTracker,
    control: Control,
    escalated: bool,
}

/// Everything needed to start a node actor.
pub struct NodeSpec<N: Node> {
    pub node: N,
    pub metrics: Arc<NodeMetrics>,
    pub downstream: Vec<Downstream<N::Out>>,
    /// Number of producers feeding this node; it finishes after that many end markers.
    pub upstreams: usize,
    /// Batches in flight per outgoing edge.
    pub window: usize,
    pub policy: RestartPolicy,
    pub control: Control,
}

impl<N: Node> NodeActor<N> {
    /// Starts the node on `arbiter` under a supervisor. The mailbox holds
    /// `window * upstreams + 1` batches: every producer's window fits, so a producer never
    /// parks and order is kept.
    pub fn start(
        arbiter: &ArbiterHandle,
        spec: NodeSpec<N>,
        producer_window: usize,
    ) -> Addr<NodeActor<N>> {
        let capacity = producer_window.max(1) * spec.upstreams.max(1) + 1;
        Supervisor::start_in_arbiter(arbiter, move |ctx: &mut Context<NodeActor<N>>| {
            ctx.set_mailbox_capacity(capacity);
            NodeActor {
                outbox: Some(Outbox::new(
                    spec.downstream,
                    spec.window,
                    spec.metrics.clone(),
                )),
                node: spec.node,
                metrics: spec.metrics,
                upstreams: spec.upstreams.max(1),
                ended: 0,
                policy: spec.policy,
                tracker: RestartTracker::default(),
                control: spec.control,
                escalated: false,
            }
        })
    }

    /// Sends `out` downstream in order, then (if `end`) flushes and reports completion.
    fn forward(&mut self, out: Vec<N::Out>, end: bool) -> AtomicResponse<Self, ()> {
        let Some(mut outbox) = self.outbox.take() else {
            // Only possible if a previous forward never returned the outbox (it always does).
            return AtomicResponse::new(Box::pin(actix::fut::ready(())));
        };
        // Routes only for a node that routes (a policy shard's feeder): no allocation per
        // batch for the others.
        let routed = (0..out.len()).any(|i| self.node.route(i).is_some());
        let routes: Vec<Option<usize>> = if routed {
            (0..out.len()).map(|i| self.node.route(i)).collect()
        } else {
            Vec::new()
        };
        let fut = async move {
            let mut result = Ok(());
            for (i, batch) in out.into_iter().enumerate() {
                let r = match routes.get(i).copied().flatten() {
                    Some(to) => outbox.push_to(to, batch).await,
                    None => outbox.push(batch).await,
                };
                if let Err(e) = r {
                    result = Err(e);
                    break;
                }
            }
            if end && result.is_ok() {
                result = outbox.finish().await;
            }
            (outbox, result)
        };
        AtomicResponse::new(Box::pin(fut.into_actor(self).map(
            move |(outbox, result), act, _ctx| {
                act.outbox = Some(outbox);
                match result {
                    Ok(()) => {
                        if end {
                            act.control.finished(act.metrics.name());
                        }
                    }
                    Err(e) => {
                        act.metrics.add_error();
                        act.control.failed(
                            act.metrics.name(),
                            format!("downstream mailbox closed: {e}"),
                        );
                    }
                }
            },
        )))
    }
}

impl<N: Node> Actor for NodeActor<N> {
    type Context = Context<Self>;
}

/// Panics are restarted in place (see the handler); this covers the context being stopped by
/// anything else: actix restarts it with the same mailbox and the node drops its state.
impl<N: Node> Supervised for NodeActor<N> {
    fn restarting(&mut self, _ctx: &mut Context<Self>) {
        self.metrics.add_restart();
        self.node.reset();
    }
}

impl<N: Node> Handler<Envelope<N::In>> for NodeActor<N> {
    type Result = AtomicResponse<Self, ()>;

    fn handle(&mut self, env: Envelope<N::In>, _ctx: &mut Context<Self>) -> Self::Result {
        self.metrics.dec_queued();
        match env {
            Envelope::Batch(batch) => {
                let n = batch.batch_len() as u64;
                self.metrics.add_received(n);
                if self.escalated {
                    self.metrics.add_dropped(n);
                    return AtomicResponse::new(Box::pin(actix::fut::ready(())));
                }
                let mut out = Vec::new();
                let node = &mut self.node;
                match catch_unwind(AssertUnwindSafe(|| node.process(batch, &mut out))) {
                    Ok(Ok(())) => self.forward(out, false),
                    Ok(Err(e)) => {
                        self.metrics.add_error();
                        tracing::warn!(node = self.metrics.name(), error = %e, "batch failed");
                        self.forward(out, false)
                    }
                    Err(p) => {
                        let msg = panic_message(&p);
                        self.metrics.add_dead_letter();
                        self.metrics.add_dropped(n);
                        tracing::error!(
                            node = self.metrics.name(),
                            records = n,
                            "node panicked: {msg}; the batch is a dead letter"
                        );
                        match self.tracker.on_failure(&self.policy, Instant::now()) {
                            RestartDecision::Restart { backoff } => {
                                // Restart in place: the node drops its state and the handler
                                // holds the mailbox for the backoff. Stopping the actix context
                                // instead would drop the pending response futures (the
                                // producer would see a closed mailbox).
                                self.metrics.add_restart();
                                self.node.reset();
                                return AtomicResponse::new(Box::pin(actix::fut::wrap_future(
                                    tokio::time::sleep(backoff),
                                )));
                            }
                            RestartDecision::Escalate { restarts_in_window } => {
                                self.escalated = true;
                                self.control.failed(
                                    self.metrics.name(),
                                    format!(
                                        "panicked again after {restarts_in_window} restarts within {:?} (last panic: {msg})",
                                        self.policy.window
                                    ),
                                );
                            }
                        }
                        AtomicResponse::new(Box::pin(actix::fut::ready(())))
                    }
                }
            }
            Envelope::End => {
                self.ended += 1;
                if self.ended < self.upstreams {
                    return AtomicResponse::new(Box::pin(actix::fut::ready(())));
                }
                let mut out = Vec::new();
                let node = &mut self.node;
                match catch_unwind(AssertUnwindSafe(|| node.finish(&mut out))) {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        self.metrics.add_error();
                        tracing::warn!(node = self.metrics.name(), error = %e, "flush failed");
                    }
                    Err(p) => {
                        self.metrics.add_dead_letter();
                        self.control.failed(
                            self.metrics.name(),
                            format!("panicked while flushing: {}", panic_message(&p)),
                        );
                        out.clear();
                    }
                }
                self.forward(out, true)
            }
        }
    }
}
