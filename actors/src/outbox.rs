//! The data-path sender: bounded in-flight window per edge, fan-out (tee), ordered delivery.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;

use actix::dev::RecipientRequest;
use actix::{MailboxError, Recipient};

use crate::metrics::NodeMetrics;
use crate::node::{BatchLen, Envelope};

/// One downstream node as seen by its producer.
pub struct Downstream<T: Send + 'static> {
    pub recipient: Recipient<Envelope<T>>,
    /// The receiver's metrics, so the producer can keep the receiver's queue gauge current.
    pub metrics: Arc<NodeMetrics>,
}

impl<T: Send + 'static> Clone for Downstream<T> {
    fn clone(&self) -> Self {
        Downstream {
            recipient: self.recipient.clone(),
            metrics: self.metrics.clone(),
        }
    }
}

struct Edge<T: Send + 'static> {
    ds: Downstream<T>,
    // Boxed: actix's request future is !Unpin and the actor state must be Unpin.
    inflight: VecDeque<Pin<Box<RecipientRequest<Envelope<T>>>>>,
}

/// Sends batches to every downstream node with at most `window` unacknowledged batches per
/// edge. `send(..)` enqueues synchronously (the mailbox is sized to never park the sender), so
/// order is kept; awaiting the oldest response when the window is full is what propagates
/// backpressure upstream.
pub struct Outbox<T: Send + 'static> {
    edges: Vec<Edge<T>>,
    window: usize,
    sender_metrics: Arc<NodeMetrics>,
}

impl<T: BatchLen + Clone + Send + 'static> Outbox<T> {
    pub fn new(downstream: Vec<Downstream<T>>, window: usize, sender: Arc<NodeMetrics>) -> Self {
        Outbox {
            edges: downstream
                .into_iter()
                .map(|ds| Edge {
                    ds,
                    inflight: VecDeque::new(),
                })
                .collect(),
            window: window.max(1),
            sender_metrics: sender,
        }
    }

    /// True when there is no downstream (a sink).
    pub fn is_empty(&self) -> bool {
        self.edges.is_empty()
    }

    /// Sends one batch to every downstream (cloned for all but the last), waiting for room.
    pub async fn push(&mut self, batch: T) -> Result<(), MailboxError> {
        let n = batch.batch_len() as u64;
        let last = self.edges.len().saturating_sub(1);
        let mut batch = Some(batch);
        for i in 0..self.edges.len() {
            let item = if i == last {
                batch.take()
            } else {
                batch.clone()
            };
            let Some(item) = item else { break };
            let window = self.window;
            let edge = &mut self.edges[i];
            while edge.inflight.len() >= window {
                if let Some(oldest) = edge.inflight.pop_front() {
                    oldest.await?;
                }
            }
            edge.ds.metrics.inc_queued();
            edge.inflight
                .push_back(Box::pin(edge.ds.recipient.send(Envelope::Batch(item))));
        }
        if !self.edges.is_empty() {
            self.sender_metrics.add_sent(n);
        }
        Ok(())
    }

    /// Sends one batch to downstream `to` only (routing, e.g. by key to shards).
    pub async fn push_to(&mut self, to: usize, batch: T) -> Result<(), MailboxError> {
        let n = batch.batch_len() as u64;
        if n == 0 {
            return Ok(());
        }
        let window = self.window;
        let Some(edge) = self.edges.get_mut(to) else {
            return Err(MailboxError::Closed);
        };
        while edge.inflight.len() >= window {
            if let Some(oldest) = edge.inflight.pop_front() {
                oldest.await?;
            }
        }
        edge.ds.metrics.inc_queued();
        edge.inflight
            .push_back(Box::pin(edge.ds.recipient.send(Envelope::Batch(batch))));
        self.sender_metrics.add_sent(n);
        Ok(())
    }

    /// Waits for every batch in flight to be handled.
    pub async fn drain(&mut self) -> Result<(), MailboxError> {
        for edge in &mut self.edges {
            while let Some(req) = edge.inflight.pop_front() {
                req.await?;
            }
        }
        Ok(())
    }

    /// Drains, then tells every downstream that this producer has ended, and waits for each
    /// downstream to have handled that end marker (which, for a node, means it has flushed and
    /// forwarded its own end marker).
    pub async fn finish(&mut self) -> Result<(), MailboxError> {
        self.drain().await?;
        for edge in &mut self.edges {
            edge.ds.metrics.inc_queued();
            edge.ds.recipient.send(Envelope::End).await?;
        }
        Ok(())
    }
}
