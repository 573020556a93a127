//! Delivery: a worker thread that owns the transport, gathers encoded records into batches of
//! `buffer` records or `buffer_bytes` bytes (or whatever arrived within the idle flush
//! interval), and sends each batch until the transport acknowledges it — retrying the errors
//! that can heal (a target restarting, a connection refused) with exponential backoff and
//! jitter up to a cap.
//!
//! Between the exporter node and the worker is a bounded queue: with `when_full: block` (the
//! default) a full queue makes the node wait, which stops its mailbox and, through the
//! pipeline's bounded windows, the reader; with `drop_newest` the incoming records are
//! counted as dropped instead. Memory is bounded either way: the queue holds at most
//! `queue` encoded chunks (the exporter node submits about 512 KiB at a time) and a batch at
//! most `buffer_bytes`.
//!
//! Only acknowledged batches count as sent. Shutdown is bounded by `drain_timeout`, counted
//! from the moment the input ended ([`Shutdown`]), which the worker reads directly — not from
//! the end marker, which waits behind the queue it cannot empty while the target is down.
//! After the deadline nothing is retried; a target that failed since is not tried again (its
//! queued records are counted failed at once, which unblocks the pipeline behind it); after
//! a signal nothing new is attempted at all.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::handoff::{self, RecvError, SendError};
pub use super::payload::Payload;
use super::{Transport, TransportError};
use crate::counters::Counters;
use crate::queue::{Appended, DiskQueue, DiskReader, DiskWriter, ReadError};
use crate::shutdown::Shutdown;

/// What to do when the delivery queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenFull {
    /// Wait (backpressure to the driver).
    Block,
    /// Drop the incoming records, counted.
    DropNewest,
}

/// Delivery settings of an exporter stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryConfig {
    /// Records per batch handed to the transport (0: each encoded chunk of about 512 KiB as it comes).
    pub buffer: usize,
    /// A batch is sent once it holds this many encoded bytes, whatever `buffer` says: the
    /// memory bound of a batch.
    pub buffer_bytes: usize,
    /// A partial batch is sent after this long without reaching `buffer` records.
    pub idle_flush: Duration,
    /// A partial batch is sent when nothing more arrived for this long (`linger`).
    pub linger: Duration,
    pub when_full: WhenFull,
    /// Payloads (encoded chunks) the queue holds.
    pub queue: usize,
    /// First retry delay; doubles per failed attempt up to `backoff_max`.
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// How long undelivered batches keep being retried after the input ended.
    pub drain_timeout: Duration,
    /// `queue.type: disk`: records wait in segment files instead of memory.
    pub disk: Option<crate::queue::QueueConfig>,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            buffer: 0,
            buffer_bytes: 16 << 20,
            idle_flush: Duration::from_secs(1),
            linger: Duration::from_millis(5),
            when_full: WhenFull::Block,
            queue: 4,
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(30),
            drain_timeout: Duration::from_secs(30),
            disk: None,
        }
    }
}

/// Records could not be handed to the delivery worker.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    #[error("{target}: delivery already finished")]
    Finished { target: String },
    #[error("{target}: delivery worker stopped")]
    Stopped { target: String },
}

/// The producer side, held by the exporter node.
pub struct Delivery {
    tx: Option<handoff::Sender<Payload>>,
    /// The worker of a transport that never waits ([`Transport::inline`]), driven by
    /// `submit` on the node's thread: each payload is sent at once.
    inline: Option<Box<Worker>>,
    /// The run's end-of-input clock; `finish` marks the input ended if nobody did.
    shutdown: Arc<Shutdown>,
    worker: Option<JoinHandle<()>>,
    when_full: WhenFull,
    metrics: Arc<dyn Counters>,
    target: String,
    /// Emptied batch buffers coming back from the worker (see [`Delivery::buffer`]).
    recycled: Receiver<Vec<u8>>,
    /// The disk queue's writing side (`queue.type: disk`), instead of `tx`.
    disk: Option<DiskWriter>,
    /// A payload buffer kept after its records went to disk.
    spare: Option<Vec<u8>>,
}

/// Emptied buffers the worker hands back; a few are enough for the node to always find one.
const RECYCLED: usize = 2;
/// Larger buffers are not handed back (the node encodes into chunks of well under this).
const RECYCLE_MAX_BYTES: usize = 4 << 20;
/// Bytes the worker reads from a disk queue at a time (as the node's chunks in memory).
const DISK_READ_BYTES: usize = 1 << 20;

impl Delivery {
    /// Starts the worker thread for `transport`. `shutdown` is the run's end-of-input clock
    /// (shared by every exporter of a pipeline).
    pub fn start(
        transport: Box<dyn Transport>,
        cfg: &DeliveryConfig,
        metrics: Arc<dyn Counters>,
        target: String,
        shutdown: Arc<Shutdown>,
    ) -> Delivery {
        Self::start_with(transport, cfg, metrics, target, shutdown, None)
    }

    /// [`Delivery::start`] with an opened disk queue (`queue.type: disk`): the node appends
    /// to it and the worker reads from it, acknowledging what the target acknowledged.
    pub fn start_with(
        transport: Box<dyn Transport>,
        cfg: &DeliveryConfig,
        metrics: Arc<dyn Counters>,
        target: String,
        shutdown: Arc<Shutdown>,
        queue: Option<DiskQueue>,
    ) -> Delivery {
        let (recycle, recycled) = sync_channel::<Vec<u8>>(RECYCLED);
        let mut d = Delivery {
            tx: None,
            inline: None,
            shutdown: shutdown.clone(),
            worker: None,
            when_full: cfg.when_full,
            metrics: metrics.clone(),
            target: target.clone(),
            recycled,
            disk: None,
            spare: None,
        };
        let mut worker = Worker::new(
            transport,
            cfg.clone(),
            metrics,
            target.clone(),
            shutdown,
            recycle,
        );
        // Where the worker's payloads come from: the disk queue, the node's own thread (a
        // transport that never waits), or the in-memory hand-off.
        let rx = if let Some(q) = queue {
            d.disk = Some(q.writer);
            worker.disk = Some(q.reader);
            None
        } else if worker.transport.inline() {
            d.inline = Some(Box::new(worker));
            return d;
        } else {
            let (tx, rx) = handoff::bounded::<Payload>(cfg.queue.max(1));
            d.tx = Some(tx);
            Some(rx)
        };
        d.worker = std::thread::Builder::new()
            .name(format!("delivery {target}"))
            .spawn(move || worker.run(rx))
            .ok();
        d
    }

    /// An empty buffer with room for `capacity` bytes, reusing one the worker has finished
    /// with when there is one. Encoded batches are megabytes: a fresh allocation per batch,
    /// freed on the worker's thread, left the allocator holding tens of MiB of free heap
    /// (measured on the pipeline benchmark with 6 MB payloads: 70 MiB peak RSS, and 20 %
    /// slower than with reuse).
    pub fn buffer(&mut self, capacity: usize) -> Vec<u8> {
        if let Some(mut b) = self.spare.take() {
            b.reserve(capacity);
            return b;
        }
        match self.recycled.try_recv() {
            Ok(mut b) => {
                b.reserve(capacity);
                b
            }
            Err(_) => Vec::with_capacity(capacity),
        }
    }

    /// Queues encoded records (waits or drops when the queue is full, per `when_full`).
    pub fn submit(&mut self, p: Payload) -> Result<(), SubmitError> {
        if let Some(d) = self.disk.as_mut() {
            let n = p.records() as u64;
            let (r, back) = d.append(p, self.when_full == WhenFull::Block);
            match r {
                Appended::Yes => {}
                Appended::Dropped => {
                    self.metrics.add_dropped(n);
                    tracing::warn!(target = %self.target, records = n, "disk queue full: records dropped (when_full: drop_newest)");
                }
                Appended::Stopped => {
                    self.metrics.add_failed(n);
                    self.metrics.add_error();
                    tracing::error!(target = %self.target, records = n, "records not delivered: the disk queue is full and delivery has stopped");
                }
            }
            if let Some(p) = back {
                let mut b = p.bytes;
                b.clear();
                self.spare = Some(b);
            }
            return Ok(());
        }
        if let Some(w) = self.inline.as_mut() {
            w.take(p);
            w.ship();
            return Ok(());
        }
        let Some(tx) = &self.tx else {
            return Err(SubmitError::Finished {
                target: self.target.clone(),
            });
        };
        let n = p.records() as u64;
        let bytes = p.bytes.len() as i64;
        let r = match self.when_full {
            WhenFull::Block => tx.send(p).map_err(|_| SubmitError::Stopped {
                target: self.target.clone(),
            }),
            WhenFull::DropNewest => match tx.try_send(p) {
                Ok(()) => Ok(()),
                Err(SendError::Full(_)) => {
                    self.metrics.add_dropped(n);
                    tracing::warn!(target = %self.target, records = n, "delivery queue full: records dropped (when_full: drop_newest)");
                    return Ok(());
                }
                Err(SendError::Closed(_)) => Err(SubmitError::Stopped {
                    target: self.target.clone(),
                }),
            },
        };
        if r.is_ok() {
            self.metrics.queue_bytes(bytes);
        }
        r
    }

    /// Ends the input and waits for the worker to deliver (or give up on) what is queued.
    pub fn finish(&mut self) {
        self.shutdown.all_input_ended();
        if let Some(w) = self.inline.take() {
            w.finish();
        }
        if let Some(d) = self.disk.as_mut() {
            d.close();
        }
        self.tx = None;
        if let Some(w) = self.worker.take() {
            if w.join().is_err() {
                tracing::error!(target = %self.target, "delivery worker panicked");
            }
        }
    }
}

impl Drop for Delivery {
    fn drop(&mut self) {
        self.finish();
    }
}

struct Worker {
    transport: Box<dyn Transport>,
    cfg: DeliveryConfig,
    metrics: Arc<dyn Counters>,
    target: String,
    batch: Payload,
    /// When the first record of `batch` arrived.
    batch_started: Option<Instant>,
    /// When the last payload arrived.
    last_arrival: Instant,
    shutdown: Arc<Shutdown>,
    /// The drain deadline, once the input has ended (handed to the transport once).
    deadline: Option<Instant>,
    /// Whether the last attempt was acknowledged: after the deadline only a target that is
    /// still accepting data gets more.
    healthy: bool,
    rng: u64,
    /// Where emptied batch buffers go back to the node.
    recycle: SyncSender<Vec<u8>>,
    /// The disk queue's reading side: batches come from it and are acknowledged to it.
    disk: Option<DiskReader>,
    /// Delivery stopped with records left in the disk queue (for the next start).
    left_on_disk: bool,
}

impl Worker {
    fn new(
        transport: Box<dyn Transport>,
        cfg: DeliveryConfig,
        metrics: Arc<dyn Counters>,
        target: String,
        shutdown: Arc<Shutdown>,
        recycle: SyncSender<Vec<u8>>,
    ) -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9e37_79b9_7f4a_7c15);
        let mut transport = transport;
        transport.set_drain_clock(shutdown.clone(), cfg.drain_timeout);
        Worker {
            transport,
            cfg,
            metrics,
            target,
            batch: Payload::default(),
            batch_started: None,
            last_arrival: Instant::now(),
            shutdown,
            deadline: None,
            healthy: true,
            rng: seed | 1,
            recycle,
            disk: None,
            left_on_disk: false,
        }
    }

    fn run(mut self, rx: Option<handoff::Receiver<Payload>>) {
        loop {
            if self.left_on_disk {
                break;
            }
            // A partial batch goes out `idle_flush` after its first record arrived, however
            // steadily records keep trickling in: that bounds an alert's latency (and what a
            // crash could take with it) even when `buffer` is large and alerts are rare.
            // And when the input pauses for `linger` (a live stream between bursts), the
            // partial batch goes at once: an alert reaches its target in milliseconds.
            let tick = self.transport.tick_interval();
            let wait = match self.batch_started {
                Some(t) => self
                    .cfg
                    .idle_flush
                    .saturating_sub(t.elapsed())
                    .min(self.cfg.linger.saturating_sub(self.last_arrival.elapsed())),
                None => tick.unwrap_or(Duration::from_secs(3600)),
            };
            let got = match (&rx, self.disk.as_mut()) {
                (Some(rx), _) => rx.recv_timeout(wait),
                (None, Some(d)) => {
                    let room = self.cfg.buffer_bytes.saturating_sub(self.batch.bytes.len());
                    d.recv_timeout(wait, room.clamp(64 << 10, DISK_READ_BYTES))
                        .map_err(|e| match e {
                            ReadError::Timeout => RecvError::Timeout,
                            ReadError::Closed => RecvError::Closed,
                        })
                }
                (None, None) => Err(RecvError::Closed),
            };
            match got {
                Ok(p) => {
                    if self.disk.is_none() {
                        self.metrics.queue_bytes(-(p.bytes.len() as i64));
                    }
                    self.take(p);
                    let old = self
                        .batch_started
                        .is_some_and(|t| t.elapsed() >= self.cfg.idle_flush);
                    if self.batch.records() >= self.cfg.buffer
                        || self.batch.bytes.len() >= self.cfg.buffer_bytes
                        || old
                    {
                        self.ship();
                    }
                }
                Err(RecvError::Timeout) => {
                    self.ship();
                    if tick.is_some() {
                        self.transport.tick();
                    }
                }
                Err(RecvError::Closed) => break,
            }
        }
        self.finish();
    }

    /// Adds a payload to the batch.
    fn take(&mut self, p: Payload) {
        self.last_arrival = Instant::now();
        if self.batch.records() == 0 {
            self.batch_started = Some(Instant::now());
        }
        let spare = self.batch.append(p);
        self.recycle(spare);
    }

    /// The input ended: the last batch goes (within the drain deadline), then the flush.
    fn finish(mut self) {
        self.shutdown.all_input_ended();
        self.drain_deadline();
        if !self.left_on_disk {
            self.ship();
        }
        if let Err(e) = self.transport.flush() {
            tracing::error!(target = %self.target, "flush failed: {e}");
        }
        if let Some(d) = self.disk.as_mut() {
            let left = d.close();
            if left > 0 {
                tracing::warn!(target = %self.target, records = left, "records left in the disk queue: they are delivered at the next start");
            }
        }
    }

    /// Delivery stops with the batch undelivered: with a disk queue its records stay there
    /// (not acknowledged) for the next start; `true` then. Without one, `false`.
    fn leave_on_disk(&mut self) -> bool {
        if self.disk.is_none() {
            return false;
        }
        self.left_on_disk = true;
        self.reset_batch();
        true
    }

    /// The batch was delivered or counted failed: with a disk queue it leaves the queue.
    fn acknowledge(&mut self) {
        if let Some(d) = self.disk.as_mut() {
            d.ack();
        }
    }

    /// Empties the batch and hands its buffer back to the node (dropped when the node has
    /// enough already).
    fn reset_batch(&mut self) {
        let bytes = std::mem::take(&mut self.batch).bytes;
        self.recycle(bytes);
    }

    /// Hands an emptied buffer back to the node, unless it is unused or much larger than the
    /// node's chunks (a gathered Kafka/ES batch): those are freed.
    fn recycle(&mut self, mut bytes: Vec<u8>) {
        if bytes.capacity() == 0 {
            return;
        }
        // With a disk queue, the reader's next read from the files takes it first.
        if let Some(d) = self.disk.as_mut() {
            match d.give_back(bytes) {
                None => return,
                Some(b) => bytes = b,
            }
        }
        if bytes.capacity() <= RECYCLE_MAX_BYTES {
            bytes.clear();
            let _ = self.recycle.try_send(bytes);
        }
    }

    /// Jitter: a delay drawn uniformly from [d/2, d].
    fn jitter(&mut self, d: Duration) -> Duration {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let frac = (self.rng % 1000) as f64 / 1000.0;
        d.mul_f64(0.5 + 0.5 * frac)
    }

    /// When retrying stops: `drain_timeout` after the input ended (or at once after a second
    /// signal), `None` while it goes on. The transport learns it too, so an attempt that
    /// blocks (a target that accepts and never reads) ends near it.
    fn drain_deadline(&mut self) -> Option<Instant> {
        let d = self.shutdown.deadline(self.cfg.drain_timeout);
        if d != self.deadline {
            self.deadline = d;
            self.transport.set_deadline(d);
        }
        self.deadline
    }

    /// Counts the batch failed without an attempt.
    fn give_up(&mut self, why: &str) {
        let n = self.batch.records();
        self.metrics.add_failed(n as u64);
        self.metrics.add_error();
        tracing::error!(target = %self.target, records = n, "records not delivered: {why}");
        self.reset_batch();
    }

    /// Sends the gathered batch until acknowledged or given up. A transport that delivers
    /// part of a batch (Kafka delivery reports, Elasticsearch bulk items) reports the rest,
    /// and only the rest is retried.
    fn ship(&mut self) {
        self.batch_started = None;
        if self.batch.records() == 0 {
            return;
        }
        if self
            .drain_deadline()
            .is_some_and(|d| Instant::now() >= d && (!self.healthy || self.shutdown.strict()))
        {
            // The drain time is spent and the target is failing (or a signal asked for a
            // bounded stop): what is still queued is not tried at all, so shutdown keeps to
            // `drain_timeout` instead of one full attempt per queued batch.
            if self.leave_on_disk() {
                return;
            }
            let why = if self.healthy {
                "stopped by a signal and the drain timeout passed"
            } else {
                "the target is failing and the drain timeout passed"
            };
            self.give_up(why);
            return;
        }
        let mut delay = self.cfg.backoff_initial.min(self.cfg.backoff_max);
        let mut failures = 0u32;
        loop {
            let n = self.batch.records();
            self.metrics.attempt_in_progress(true);
            let attempt = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.transport.send_batch(&self.batch)
            }));
            self.metrics.attempt_in_progress(false);
            // A transport that panics fails its batch (counted) instead of taking the worker
            // and everything queued behind it down uncounted.
            let attempt = attempt.unwrap_or_else(|p| {
                Err(TransportError::Rejected {
                    target: self.target.clone(),
                    reason: format!("transport panicked: {}", sfactors::panic_message(&p)),
                })
            });
            let err = match attempt {
                Ok(()) => {
                    self.healthy = true;
                    self.metrics.add_sent(n as u64);
                    self.metrics.delivered_now();
                    if failures > 0 {
                        tracing::info!(target = %self.target, records = n, attempts = failures + 1, "delivered after retrying");
                    }
                    break;
                }
                Err(TransportError::Partial {
                    target,
                    reason,
                    delivered,
                    failed,
                    rest,
                }) => {
                    self.metrics.add_sent(delivered as u64);
                    if delivered > 0 {
                        self.metrics.delivered_now();
                    }
                    if failed > 0 {
                        self.metrics.add_failed(failed as u64);
                        self.metrics.add_error();
                    }
                    if rest.records() == 0 {
                        self.healthy = true;
                        break;
                    }
                    self.batch = *rest;
                    TransportError::Unavailable { target, reason }
                }
                Err(e) => e,
            };
            self.healthy = false;
            self.metrics.attempt_failed();
            let n = self.batch.records();
            let give_up = !err.retryable()
                || self
                    .drain_deadline()
                    .is_some_and(|d| Instant::now() + delay > d);
            if give_up {
                if err.retryable() && self.leave_on_disk() {
                    return;
                }
                self.metrics.add_failed(n as u64);
                self.metrics.add_error();
                tracing::error!(target = %self.target, records = n, "records not delivered: {err}");
                break;
            }
            failures += 1;
            self.metrics.add_retried(n as u64);
            if failures == 1 || failures.is_power_of_two() {
                tracing::warn!(target = %self.target, records = n, attempt = failures, "delivery failed, retrying: {err}");
            }
            let d = self.jitter(delay);
            self.sleep(d);
            // At least 1 ms, so a zero initial backoff still grows instead of spinning.
            delay = (delay * 2)
                .max(Duration::from_millis(1))
                .min(self.cfg.backoff_max.max(Duration::from_millis(1)));
        }
        self.reset_batch();
        self.acknowledge();
    }

    /// Sleeps `d` between retries, in slices, so a drain that starts meanwhile (a signal)
    /// is noticed within 100 ms rather than after a long backoff.
    fn sleep(&mut self, d: Duration) {
        let until = Instant::now() + d;
        loop {
            let now = Instant::now();
            if now >= until {
                return;
            }
            if self.drain_deadline().is_some_and(|dl| dl <= now) {
                return;
            }
            std::thread::sleep((until - now).min(Duration::from_millis(100)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::counters::Tally;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    /// Fails the first `fail` sends (retryable or not), records what it accepted.
    struct Flaky {
        fail: usize,
        retryable: bool,
        calls: Arc<AtomicUsize>,
        got: Arc<Mutex<Vec<u8>>>,
    }

    impl Transport for Flaky {
        fn send_batch(&mut self, batch: &Payload) -> Result<(), TransportError> {
            let payload = &batch.bytes;
            let c = self.calls.fetch_add(1, Ordering::SeqCst);
            if c < self.fail {
                return Err(if self.retryable {
                    TransportError::Unavailable {
                        target: "flaky".into(),
                        reason: "down".into(),
                    }
                } else {
                    TransportError::Rejected {
                        target: "flaky".into(),
                        reason: "bad".into(),
                    }
                });
            }
            self.got.lock().unwrap().extend_from_slice(payload);
            Ok(())
        }
        fn flush(&mut self) -> Result<(), TransportError> {
            Ok(())
        }
    }

    fn fast() -> DeliveryConfig {
        DeliveryConfig {
            backoff_initial: Duration::from_millis(1),
            backoff_max: Duration::from_millis(4),
            drain_timeout: Duration::from_millis(200),
            ..Default::default()
        }
    }

    fn run(fail: usize, retryable: bool, cfg: DeliveryConfig) -> (Arc<Tally>, Vec<u8>, usize) {
        let calls = Arc::new(AtomicUsize::new(0));
        let got = Arc::new(Mutex::new(Vec::new()));
        let m = Tally::new();
        let t = Flaky {
            fail,
            retryable,
            calls: calls.clone(),
            got: got.clone(),
        };
        let mut d = Delivery::start(
            Box::new(t),
            &cfg,
            m.clone(),
            "flaky".into(),
            Shutdown::new(),
        );
        for i in 0..3 {
            d.submit(Payload::lines(format!("r{i}\n").into_bytes()))
                .unwrap();
        }
        d.finish();
        let bytes = got.lock().unwrap().clone();
        (m, bytes, calls.load(Ordering::SeqCst))
    }

    #[test]
    fn retryable_errors_are_retried_until_acknowledged() {
        let (m, got, calls) = run(5, true, fast());
        assert_eq!(String::from_utf8(got).unwrap(), "r0\nr1\nr2\n");
        let s = m.snapshot();
        assert_eq!(s.sent_records, 3);
        assert_eq!(s.failed_records, 0);
        assert_eq!(s.retried_records, 5);
        assert_eq!(calls, 8);
    }

    #[test]
    fn permanent_errors_fail_the_batch_without_retrying() {
        let (m, got, _) = run(1, false, fast());
        let s = m.snapshot();
        assert_eq!(s.failed_records, 1);
        assert_eq!(s.sent_records, 2);
        assert_eq!(s.retried_records, 0);
        assert_eq!(String::from_utf8(got).unwrap(), "r1\nr2\n");
    }

    #[test]
    fn a_target_that_never_returns_fails_after_the_drain_timeout() {
        let (m, got, _) = run(usize::MAX, true, fast());
        let s = m.snapshot();
        assert!(got.is_empty());
        assert_eq!(s.sent_records, 0);
        assert_eq!(s.failed_records, 3);
        assert!(s.retried_records > 0);
    }

    #[test]
    fn buffer_gathers_records_into_one_batch() {
        let cfg = DeliveryConfig {
            buffer: 3,
            ..fast()
        };
        let (m, got, calls) = run(0, true, cfg);
        assert_eq!(calls, 1, "three records, one batch");
        assert_eq!(String::from_utf8(got).unwrap(), "r0\nr1\nr2\n");
        assert_eq!(m.snapshot().sent_records, 3);
    }

    /// A delivery to a transport that accepts everything, with a 50 ms idle flush.
    fn idle_flushing(buffer: usize) -> (Delivery, Arc<Tally>) {
        let m = Tally::new();
        let t = Flaky {
            fail: 0,
            retryable: true,
            calls: Arc::new(AtomicUsize::new(0)),
            got: Arc::new(Mutex::new(Vec::new())),
        };
        let cfg = DeliveryConfig {
            buffer,
            idle_flush: Duration::from_millis(50),
            ..fast()
        };
        let d = Delivery::start(
            Box::new(t),
            &cfg,
            m.clone(),
            "flaky".into(),
            Shutdown::new(),
        );
        (d, m)
    }

    #[test]
    fn a_partial_batch_is_sent_after_the_idle_interval() {
        let (mut d, m) = idle_flushing(1000);
        d.submit(Payload::lines(b"only\n".to_vec())).unwrap();
        // Not finished: only the idle flush can deliver it.
        // Up to 500 polls of 10 ms.
        let mut polls = 0;
        while m.snapshot().sent_records == 0 && polls < 500 {
            polls += 1;
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(m.snapshot().sent_records, 1);
        d.finish();
    }

    /// Accepts every send, but each send first waits until the test opens the gate.
    struct Gated {
        entered: std::sync::mpsc::Sender<()>,
        gate: Arc<(Mutex<bool>, std::sync::Condvar)>,
        got: Arc<Mutex<Vec<u8>>>,
    }

    impl Transport for Gated {
        fn send_batch(&mut self, batch: &Payload) -> Result<(), TransportError> {
            let payload = &batch.bytes;
            let _ = self.entered.send(());
            let (open, cv) = &*self.gate;
            let mut o = open.lock().unwrap();
            while !*o {
                o = cv.wait(o).unwrap();
            }
            self.got.lock().unwrap().extend_from_slice(payload);
            Ok(())
        }
        fn flush(&mut self) -> Result<(), TransportError> {
            Ok(())
        }
    }

    /// The test's side of a gated delivery.
    struct GatedPeer {
        metrics: Arc<Tally>,
        /// A message per send the worker entered.
        entered: std::sync::mpsc::Receiver<()>,
        gate: Arc<(Mutex<bool>, std::sync::Condvar)>,
        got: Arc<Mutex<Vec<u8>>>,
    }

    impl GatedPeer {
        fn open(&self) {
            let (o, cv) = &*self.gate;
            *o.lock().unwrap() = true;
            cv.notify_all();
        }

        fn delivered(&self) -> String {
            String::from_utf8(self.got.lock().unwrap().clone()).unwrap()
        }
    }

    /// A delivery with a queue of one batch whose transport stays closed until `open`.
    fn gated(when_full: WhenFull) -> (Delivery, GatedPeer) {
        let (tx, entered) = std::sync::mpsc::channel();
        let gate = Arc::new((Mutex::new(false), std::sync::Condvar::new()));
        let got = Arc::new(Mutex::new(Vec::new()));
        let t = Gated {
            entered: tx,
            gate: gate.clone(),
            got: got.clone(),
        };
        let metrics = Tally::new();
        let cfg = DeliveryConfig {
            queue: 1,
            when_full,
            ..fast()
        };
        let d = Delivery::start(
            Box::new(t),
            &cfg,
            metrics.clone(),
            "gated".into(),
            Shutdown::new(),
        );
        (
            d,
            GatedPeer {
                metrics,
                entered,
                gate,
                got,
            },
        )
    }

    fn rec(i: usize) -> Payload {
        Payload::lines(format!("r{i}\n").into_bytes())
    }

    #[test]
    fn drop_newest_counts_what_a_full_queue_refuses_and_delivers_the_rest() {
        let (mut d, peer) = gated(WhenFull::DropNewest);
        d.submit(rec(0)).unwrap();
        peer.entered.recv().unwrap(); // r0 is in flight; the worker waits in send
        let (done, submitted) = std::sync::mpsc::channel();
        let producer = std::thread::spawn(move || {
            for i in 1..10 {
                d.submit(rec(i)).unwrap();
            }
            let _ = done.send(());
            d
        });
        // With a broken drop_newest the producer would wait for the closed transport.
        let waited = submitted.recv_timeout(Duration::from_secs(30));
        peer.open();
        let mut d = producer.join().unwrap();
        assert!(waited.is_ok(), "drop_newest never waits");
        // r1 waited in the queue (capacity 1); r2..r9 were refused.
        assert_eq!(peer.metrics.snapshot().dropped_records, 8);
        d.finish();
        assert_eq!(peer.delivered(), "r0\nr1\n");
        let s = peer.metrics.snapshot();
        assert_eq!(
            (s.sent_records, s.dropped_records, s.failed_records),
            (2, 8, 0)
        );
    }

    #[test]
    fn block_makes_the_producer_wait_and_loses_nothing() {
        let (mut d, peer) = gated(WhenFull::Block);
        let submitted = Arc::new(AtomicUsize::new(0));
        let s2 = submitted.clone();
        let producer = std::thread::spawn(move || {
            for i in 0..10 {
                d.submit(rec(i)).unwrap();
                s2.fetch_add(1, Ordering::SeqCst);
            }
            d.finish();
        });
        peer.entered.recv().unwrap(); // r0 is in flight
                                      // r1 fits the queue; r2 cannot be queued while the transport is closed. The pause
                                      // gives the producer time to run ahead if blocking were broken.
        std::thread::sleep(Duration::from_millis(200));
        assert!(submitted.load(Ordering::SeqCst) <= 2, "the producer waits");
        assert_eq!(peer.metrics.snapshot().dropped_records, 0);
        peer.open();
        producer.join().unwrap();
        let want: String = (0..10).map(|i| format!("r{i}\n")).collect();
        assert_eq!(peer.delivered(), want);
        let s = peer.metrics.snapshot();
        assert_eq!((s.sent_records, s.dropped_records), (10, 0));
    }

    #[test]
    fn a_trickle_of_records_still_goes_out_within_the_idle_interval() {
        let (mut d, m) = idle_flushing(1_000_000);
        // A record every 10 ms (more often than the idle interval) for up to 5 s: the first
        // ones must be delivered long before the buffer could ever fill.
        let mut i = 0;
        while m.snapshot().sent_records == 0 && i < 500 {
            d.submit(rec(i)).unwrap();
            std::thread::sleep(Duration::from_millis(10));
            i += 1;
        }
        assert!(
            m.snapshot().sent_records > 0,
            "nothing sent after {i} records"
        );
        d.finish();
        assert_eq!(m.snapshot().sent_records, i as u64);
    }

    struct Panicky;

    impl Transport for Panicky {
        fn send_batch(&mut self, batch: &Payload) -> Result<(), TransportError> {
            let payload = &batch.bytes;
            if payload.starts_with(b"boom") {
                panic!("transport bug");
            }
            Ok(())
        }
        fn flush(&mut self) -> Result<(), TransportError> {
            Ok(())
        }
    }

    #[test]
    fn a_panicking_transport_fails_its_batch_and_the_worker_goes_on() {
        let m = Tally::new();
        // A drain long enough for the panic hook (a backtrace can take a while).
        let cfg = DeliveryConfig {
            drain_timeout: Duration::from_secs(60),
            ..fast()
        };
        let mut d = Delivery::start(
            Box::new(Panicky),
            &cfg,
            m.clone(),
            "panicky".into(),
            Shutdown::new(),
        );
        d.submit(Payload::lines(b"ok\n".to_vec())).unwrap();
        d.submit(Payload::lines(b"boom\n".to_vec())).unwrap();
        d.submit(Payload::lines(b"ok\nok\n".to_vec())).unwrap();
        d.finish();
        let s = m.snapshot();
        assert_eq!((s.sent_records, s.failed_records), (3, 1));
    }

    #[test]
    fn delivered_buffers_come_back_for_reuse() {
        let (mut d, peer) = gated(WhenFull::Block);
        peer.open();
        let mut b = d.buffer(1000);
        let cap = b.capacity();
        assert!(cap >= 1000);
        b.extend_from_slice(b"r0\n");
        d.submit(Payload::lines(b)).unwrap();
        // Up to 500 polls of 10 ms for the worker to send it and hand the buffer back.
        let mut polls = 0;
        while peer.metrics.snapshot().sent_records == 0 && polls < 500 {
            polls += 1;
            std::thread::sleep(Duration::from_millis(10));
        }
        let mut again = d.buffer(10);
        for _ in 0..500 {
            if again.capacity() >= cap {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
            again = d.buffer(10);
        }
        assert!(again.is_empty());
        assert!(again.capacity() >= cap, "the sent batch's buffer is reused");
        d.finish();
        assert_eq!(peer.delivered(), "r0\n");
    }

    /// Accepts every batch, slowly.
    struct Slow {
        got: Arc<AtomicUsize>,
    }

    impl Transport for Slow {
        fn send_batch(&mut self, batch: &Payload) -> Result<(), TransportError> {
            let records = batch.records();
            std::thread::sleep(Duration::from_millis(30));
            self.got.fetch_add(records, Ordering::SeqCst);
            Ok(())
        }
        fn flush(&mut self) -> Result<(), TransportError> {
            Ok(())
        }
    }

    fn slow_run(signal: bool) -> (crate::counters::TallySnapshot, usize) {
        let m = Tally::new();
        let got = Arc::new(AtomicUsize::new(0));
        let shutdown = Shutdown::new();
        let cfg = DeliveryConfig {
            queue: 16,
            drain_timeout: Duration::from_millis(50),
            ..fast()
        };
        let mut d = Delivery::start(
            Box::new(Slow { got: got.clone() }),
            &cfg,
            m.clone(),
            "slow".into(),
            shutdown.clone(),
        );
        for i in 0..10 {
            d.submit(rec(i)).unwrap();
        }
        if signal {
            shutdown.signalled();
        }
        d.finish();
        (m.snapshot(), got.load(Ordering::SeqCst))
    }

    #[test]
    fn a_slow_but_accepting_target_is_drained_to_the_end_after_the_end_of_input() {
        // Ten batches of 30 ms each take far longer than the 50 ms drain: all are delivered,
        // since the target keeps accepting.
        let (s, got) = slow_run(false);
        assert_eq!((s.sent_records, s.failed_records, got), (10, 0, 10));
    }

    #[test]
    fn after_a_signal_nothing_new_is_attempted_once_the_drain_timeout_passed() {
        let (s, got) = slow_run(true);
        assert_eq!(s.sent_records as usize, got);
        assert!(s.failed_records > 0, "{s:?}");
        assert_eq!(s.sent_records + s.failed_records, 10, "{s:?}");
    }
}
