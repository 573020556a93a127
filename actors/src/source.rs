//! Sources (the heads of pipelines) and the actor that runs them.
//!
//! Two kinds: a [`Source`] blocks its own arbiter thread while it waits (file reads), and an
//! [`AsyncSource`] waits without blocking, so it can share an arbiter with the nodes it
//! feeds. The second matters for a live stream at a modest rate: a batch handed to a node on
//! the same thread costs no cross-thread wake-up, and each wake-up (a few microseconds of
//! CPU on a virtual machine) is per batch, not per record.

use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use actix::prelude::*;

use crate::metrics::NodeMetrics;
use crate::node::{panic_message, BatchLen};
use crate::outbox::{Downstream, Outbox};
use crate::pipeline::{Control, StopFlag};

/// What a source produced on one step.
pub enum SourceStep<T> {
    Batch(T),
    /// No more input.
    End,
}

/// The head of a pipeline (a driver). `next` may block its own arbiter thread (file reads).
pub trait Source: Send + Unpin + 'static {
    type Out: BatchLen + Clone + Send + 'static;
    fn next(&mut self) -> SourceStep<Self::Out>;
    /// Whether the source ends by itself once the stop flag is set (returning what it still
    /// holds, then `End`). A source that does (a socket with packets already queued in the
    /// kernel) keeps being called after a stop request; the others are ended at once.
    fn drains_on_stop(&self) -> bool {
        false
    }
}

/// The next step of an [`AsyncSource`].
pub type StepFuture<'a, T> = Pin<Box<dyn Future<Output = SourceStep<T>> + 'a>>;

/// A source that waits without blocking its thread (a timer, a descriptor's readiness), so
/// the nodes on its arbiter run meanwhile. Work that would block is its own to move off the
/// thread (e.g. `tokio::task::spawn_blocking`).
pub trait AsyncSource: Unpin + 'static {
    type Out: BatchLen + Clone + Send + 'static;
    fn next(&mut self) -> StepFuture<'_, Self::Out>;
    /// As [`Source::drains_on_stop`].
    fn drains_on_stop(&self) -> bool {
        false
    }
}

/// A blocking [`Source`] seen as an [`AsyncSource`] (it still blocks its thread).
pub struct Blocking<S>(pub S);

impl<S: Source> AsyncSource for Blocking<S> {
    type Out = S::Out;
    fn next(&mut self) -> StepFuture<'_, S::Out> {
        let step = self.0.next();
        Box::pin(std::future::ready(step))
    }
    fn drains_on_stop(&self) -> bool {
        self.0.drains_on_stop()
    }
}

/// A future whose panics come out as `Err(payload)` instead of unwinding through the
/// arbiter; it notes whether it ever had to wait (`pending`).
struct CatchUnwind<'a, F> {
    inner: F,
    pending: &'a mut bool,
}

impl<F: Future + Unpin> Future for CatchUnwind<'_, F> {
    type Output = std::thread::Result<F::Output>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let inner = &mut self.inner;
        match catch_unwind(AssertUnwindSafe(|| Pin::new(&mut *inner).poll(cx))) {
            Ok(Poll::Pending) => {
                *self.pending = true;
                Poll::Pending
            }
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Err(p) => Poll::Ready(Err(p)),
        }
    }
}

/// Runs a source: pulls batches until the source ends or the stop flag is set, then sends
/// the end marker downstream and reports completion. A panic in the source ends it (counted
/// as a dead letter): its input cannot be resumed at a known place.
pub struct SourceActor<S: AsyncSource> {
    parts: Option<(S, Outbox<S::Out>)>,
    metrics: Arc<NodeMetrics>,
    control: Control,
    stop: StopFlag,
}

impl<S: Source> SourceActor<Blocking<S>> {
    /// Starts a blocking source on `arbiter` (which it then has to itself while it waits).
    pub fn start(
        arbiter: &ArbiterHandle,
        source: S,
        metrics: Arc<NodeMetrics>,
        downstream: Vec<Downstream<S::Out>>,
        window: usize,
        control: Control,
        stop: StopFlag,
    ) -> Addr<SourceActor<Blocking<S>>> {
        SourceActor::start_async(
            arbiter,
            Blocking(source),
            metrics,
            downstream,
            window,
            control,
            stop,
        )
    }
}

impl<S: AsyncSource> SourceActor<S> {
    /// Starts a source that waits without blocking, on `arbiter` (which it can share with
    /// nodes). The source registers what it waits for with that thread's reactor when it
    /// first runs there, not when it is built.
    pub fn start_async(
        arbiter: &ArbiterHandle,
        source: S,
        metrics: Arc<NodeMetrics>,
        downstream: Vec<Downstream<S::Out>>,
        window: usize,
        control: Control,
        stop: StopFlag,
    ) -> Addr<SourceActor<S>>
    where
        S: Send,
    {
        Actor::start_in_arbiter(arbiter, move |_ctx| SourceActor {
            parts: Some((source, Outbox::new(downstream, window, metrics.clone()))),
            metrics,
            control,
            stop,
        })
    }
}

impl<S: AsyncSource> Actor for SourceActor<S> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let Some((mut source, mut outbox)) = self.parts.take() else {
            return;
        };
        let stop = self.stop.clone();
        let metrics = self.metrics.clone();
        let control = self.control.clone();
        let fut = async move {
            let name = metrics.name().to_string();
            loop {
                if stop.is_stopped() && !source.drains_on_stop() {
                    tracing::info!(node = %name, "stop requested: draining the pipeline");
                    break;
                }
                let src = &mut source;
                // Moved into the closure (FnOnce): the future it returns borrows the source.
                let call = move || {
                    let s = src;
                    s.next()
                };
                let mut waited = false;
                let step = match catch_unwind(AssertUnwindSafe(call)) {
                    Ok(inner) => {
                        CatchUnwind {
                            inner,
                            pending: &mut waited,
                        }
                        .await
                    }
                    Err(p) => Err(p),
                };
                match step {
                    Ok(SourceStep::Batch(b)) => {
                        metrics.add_received(b.batch_len() as u64);
                        if let Err(e) = outbox.push(b).await {
                            control.failed(&name, format!("downstream mailbox closed: {e}"));
                            return;
                        }
                        // Let other tasks on this arbiter (and signal handling) run, unless
                        // they just did while the source waited (a yield costs the thread a
                        // wake-up of its own).
                        if !waited {
                            tokio::task::yield_now().await;
                        }
                    }
                    Ok(SourceStep::End) => break,
                    Err(p) => {
                        metrics.add_dead_letter();
                        tracing::error!(node = %name, "source panicked: {}", panic_message(&p));
                        break;
                    }
                }
            }
            match outbox.finish().await {
                Ok(()) => control.finished(&name),
                Err(e) => control.failed(&name, format!("downstream mailbox closed: {e}")),
            }
        };
        ctx.spawn(actix::fut::wrap_future(fut));
    }
}
