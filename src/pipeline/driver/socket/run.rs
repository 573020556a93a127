//! Who waits between the socket driver's steps: a thread of its own, or the live pipeline's
//! shared thread.

use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use sfactors::{AsyncSource, Source, SourceStep, StepFuture};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use super::driver::{Advance, SocketDriver, Wait, ACCEPT_WAIT, IDLE_WAIT};
use crate::pipeline::batch::Blocks;
use crate::seqpacket::poll;

/// On a thread of its own, the waits block it (also the blocking-pool runs of
/// [`SocketSource`]).
impl Source for SocketDriver {
    type Out = Blocks;

    /// After a stop request the driver reads what the kernel queued, then ends itself.
    fn drains_on_stop(&self) -> bool {
        true
    }

    fn next(&mut self) -> SourceStep<Blocks> {
        loop {
            match self.advance() {
                Advance::Step(step) => return step,
                Advance::Wait(w) => self.block_on(w),
            }
        }
    }
}

impl SocketDriver {
    fn block_on(&self, w: Wait) {
        let waited = match w {
            Wait::Packets(t) => match self.connection() {
                Some(c) => c.wait(t.unwrap_or(IDLE_WAIT)).map(|_| ()),
                None => Ok(()),
            },
            Wait::Connection => self.listener().wait(ACCEPT_WAIT).map(|_| ()),
            Wait::Until(at) => {
                std::thread::sleep(at.saturating_duration_since(Instant::now()));
                Ok(())
            }
        };
        if let Err(e) = waited {
            // Not expected on descriptors the driver owns; never a busy loop either way.
            tracing::debug!("socket wait failed: {e}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// The socket driver on the live pipeline's shared thread: its waits are timers and
/// descriptor readiness on that thread's reactor, so the nodes run while it waits and a
/// batch reaches the reader without waking another thread. A fast stream (batches that
/// fill within the budget) is read on a blocking-pool thread instead, so reading overlaps
/// with the pipeline's work as it did on a thread of its own.
pub struct SocketSource {
    /// The driver (away while a blocking-pool thread runs it).
    driver: Option<Box<SocketDriver>>,
    /// The next step of a fast stream, already being read on a blocking-pool thread.
    ahead: Option<PoolStep>,
    /// Registration failed (no reactor): every step runs on the blocking pool.
    blocking: bool,
}

/// A driver step running on a blocking-pool thread, and the driver it borrowed.
type PoolStep = tokio::task::JoinHandle<(Box<SocketDriver>, SourceStep<Blocks>)>;

impl SocketSource {
    pub fn new(driver: SocketDriver) -> Self {
        SocketSource {
            driver: Some(Box::new(driver)),
            ahead: None,
            blocking: false,
        }
    }

    async fn step(&mut self) -> SourceStep<Blocks> {
        loop {
            if self.ahead.is_some() {
                return self.on_pool().await;
            }
            let Some(driver) = self.driver.as_mut() else {
                return SourceStep::End;
            };
            if driver.is_fast() || self.blocking {
                return self.on_pool().await;
            }
            match driver.advance() {
                Advance::Step(step) => return step,
                Advance::Wait(w) => self.wait(w).await,
            }
        }
    }

    /// One blocking step on a blocking-pool thread; this thread runs the nodes meanwhile.
    /// While the stream stays fast, the step after it starts reading at once: this thread
    /// may be busy with the last batch for milliseconds before it asks for the next, and a
    /// socket nobody reads for that long blocks the collector (its queue is bounded).
    async fn on_pool(&mut self) -> SourceStep<Blocks> {
        let running = match self.ahead.take() {
            Some(h) => h,
            None => {
                let Some(driver) = self.driver.take() else {
                    return SourceStep::End;
                };
                spawn_step(driver)
            }
        };
        match running.await {
            Ok((driver, step)) => {
                if matches!(step, SourceStep::Batch(_)) && driver.is_fast() {
                    self.ahead = Some(spawn_step(driver));
                } else {
                    self.driver = Some(driver);
                }
                step
            }
            // The actor counts the panic (a dead letter) and ends the source.
            Err(e) => match e.try_into_panic() {
                Ok(p) => std::panic::resume_unwind(p),
                Err(_) => SourceStep::End,
            },
        }
    }

    /// Waits as the driver asks. A descriptor is registered with the reactor only for the
    /// wait on it: a socket registered while the driver sleeps out a budget would wake the
    /// thread at every packet (the reactor is edge-triggered, and each packet is an edge).
    async fn wait(&mut self, w: Wait) {
        let Some(driver) = self.driver.as_ref() else {
            return;
        };
        let (fd, events, timeout) = match w {
            Wait::Until(at) => return tokio::time::sleep_until(at.into()).await,
            Wait::Packets(t) => match driver.connection() {
                Some(c) => (c.raw_fd(), libc::POLLIN | libc::POLLRDHUP, t),
                None => return,
            },
            Wait::Connection => (driver.listener().raw_fd(), libc::POLLIN, None),
        };
        // SAFETY: the descriptor belongs to the driver, which is borrowed (so cannot close
        // it) for as long as this registration lives: it is dropped at the end of the wait.
        let registered =
            unsafe { AsyncFd::register_with_interest(Watched(fd), Interest::READABLE) };
        match registered {
            Ok(afd) => {
                let stop = driver.stop_flag();
                let ready = tokio::select! {
                    r = readable(&afd, events, timeout) => r,
                    _ = stop.stopped() => true,
                };
                if !ready {
                    self.blocking = true;
                }
            }
            Err(e) => {
                tracing::warn!(
                    "socket driver: cannot wait on the shared thread ({}); reading on a thread of its own",
                    e.into_parts().1
                );
                self.blocking = true;
            }
        }
    }
}

/// Runs one driver step on a blocking-pool thread.
fn spawn_step(mut driver: Box<SocketDriver>) -> PoolStep {
    tokio::task::spawn_blocking(move || {
        let step = Source::next(&mut *driver);
        (driver, step)
    })
}

/// A descriptor borrowed for one wait (not closed when dropped).
struct Watched(RawFd);

impl AsRawFd for Watched {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}

/// Waits until `fd` has `events`, for at most `timeout` if there is one (an idle connection
/// or listener is waited for with no timer at all: an idle agent does not wake). Readiness
/// the reactor reported is checked with a zero-timeout poll before it is believed (a report
/// can be stale). False when the reactor cannot be waited on any more.
async fn readable(fd: &AsyncFd<Watched>, events: libc::c_short, timeout: Option<Duration>) -> bool {
    let wait = async {
        loop {
            let Ok(mut guard) = fd.readable().await else {
                return false;
            };
            let now = guard.try_io(
                |inner| match poll(inner.as_raw_fd(), events, Duration::ZERO) {
                    Ok(0) => Err(std::io::ErrorKind::WouldBlock.into()),
                    other => other.map(|_| ()),
                },
            );
            if now.is_ok() {
                return true;
            }
        }
    };
    match timeout {
        Some(t) => tokio::time::timeout(t, wait).await.unwrap_or(true),
        None => wait.await,
    }
}

impl AsyncSource for SocketSource {
    type Out = Blocks;

    fn drains_on_stop(&self) -> bool {
        true
    }

    fn next(&mut self) -> StepFuture<'_, Blocks> {
        Box::pin(self.step())
    }
}
