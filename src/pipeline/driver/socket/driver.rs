//! The socket driver's state machine (see the module documentation).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sfactors::{SourceStep, StopFlag};

use super::SocketSettings;
use crate::pipeline::batch::{BlockJob, Blocks, TraceSource};
use crate::seqpacket::{Conn, Listener, Received, RecvSlots};
use crate::shutdown::Shutdown;
use crate::stats::{BadPacket, RateLimit, SocketStats};
use crate::sysflow::ocf::{Codec, RawBlock};
use crate::sysflow::stream::{header_version, StreamSchemas};

/// On a thread of its own, how long the driver waits in one poll for a first packet (a stop
/// request is seen within it). On the shared thread the wait ends with the stop request.
pub(super) const IDLE_WAIT: Duration = Duration::from_millis(250);

/// After a stop request, how long the driver keeps reading what the collector sends before it
/// closes the connection (the queue normally runs dry within milliseconds).
const DRAIN_READ_LIMIT: Duration = Duration::from_secs(2);

/// On a thread of its own, how long the driver waits for a connection in one go (a stop
/// request is seen within it); also the pause after a failed accept.
pub(super) const ACCEPT_WAIT: Duration = Duration::from_millis(100);

/// Slots per receive: up to 32 packets per system call, within 32 MiB of (mostly untouched)
/// receive buffer.
fn slots_for(max_packet: usize) -> usize {
    ((32usize << 20) / max_packet.max(1)).clamp(1, 32)
}

struct Connection {
    conn: Conn,
    id: u64,
    /// Packets received on this connection (their index names them in messages).
    packets: u64,
    bytes: u64,
    /// The decode plan in force (from the last header, or the forced version).
    source: Option<Arc<TraceSource>>,
}

/// The socket driver. Its steps never block (see [`SocketDriver::advance`]); the runners in
/// `run.rs` wait between them, with timeouts short enough that a stop request is seen within
/// 250 ms.
pub struct SocketDriver {
    listener: Listener,
    settings: SocketSettings,
    schemas: StreamSchemas,
    conn: Option<Connection>,
    slots: RecvSlots,
    stop: StopFlag,
    shutdown: Arc<Shutdown>,
    stats: Arc<SocketStats>,
    batch_records: usize,
    next_id: u64,
    log: RateLimit,
    /// Connection and accept messages: a collector that reconnects in a loop (or a local
    /// user who connects and disconnects) must not flood the log.
    conn_log: RateLimit,
    /// Set once a stop was asked for (when): the socket file is gone and what the kernel
    /// queued is being read.
    draining: Option<Instant>,
    /// This driver counts in the shared listening and connected gauges.
    is_listening: bool,
    is_connected: bool,
    /// Which driver of the run this is (records of different drivers keep separate entity
    /// tables).
    index: u16,
    /// The batch being gathered and when its first packet came.
    batch: Blocks,
    batch_len: usize,
    started: Option<Instant>,
    /// The last batch held a quarter of a full one or more: the stream is read as it comes.
    fast: bool,
    /// The last batch was cut by the budget: the next is gathered by sleeping the budget.
    steady: bool,
    /// Asleep for a steady stream's budget until then.
    wake_at: Option<Instant>,
    /// The last budget caught a single packet: packets are handed on as they come.
    sparse: bool,
    /// When the last batch was handed on.
    last_cut: Option<Instant>,
    /// Bytes to reserve for the next batch's packets.
    block_hint: usize,
}

impl SocketDriver {
    pub fn new(
        listener: Listener,
        settings: SocketSettings,
        stop: StopFlag,
        shutdown: Arc<Shutdown>,
        stats: Arc<SocketStats>,
        batch_records: usize,
    ) -> Result<Self, crate::sysflow::SchemaError> {
        let schemas = StreamSchemas::builtin()?;
        stats.listening.fetch_add(1, Ordering::Relaxed);
        tracing::info!(path = %listener.path().display(), "listening for the collector");
        Ok(SocketDriver {
            slots: RecvSlots::new(slots_for(settings.max_packet), settings.max_packet),
            listener,
            settings,
            schemas,
            conn: None,
            stop,
            shutdown,
            stats,
            batch_records: batch_records.max(1),
            next_id: 0,
            log: RateLimit::new(5, Duration::from_secs(10)),
            conn_log: RateLimit::new(10, Duration::from_secs(10)),
            draining: None,
            is_listening: true,
            is_connected: false,
            index: 0,
            batch: Blocks::default(),
            batch_len: 0,
            started: None,
            fast: false,
            steady: false,
            wake_at: None,
            sparse: false,
            last_cut: None,
            block_hint: 64 << 10,
        })
    }

    /// This driver's index among the run's drivers.
    pub fn with_index(mut self, index: u16) -> Self {
        self.index = index;
        self
    }

    fn take_batch(&mut self) -> Blocks {
        self.batch_len = 0;
        self.started = None;
        // The next batch's buffer is sized for a batch like this one (a few hundred bytes at
        // a slow rate, not 64 KiB), with room to grow.
        let bytes: usize = self.batch.0.iter().map(|j| j.block.data.len()).sum();
        self.block_hint = (bytes + bytes / 4).clamp(1 << 10, 64 << 10);
        std::mem::take(&mut self.batch)
    }

    /// A rate-limited warning about a packet not used.
    fn bad(&self, why: BadPacket, detail: std::fmt::Arguments) {
        self.stats.add_bad(why);
        if let Some(suppressed) = self.log.allow() {
            tracing::warn!(
                reason = why.label(),
                suppressed,
                "socket packet skipped: {detail}"
            );
        }
    }

    fn source_for(&self, id: u64, version: i64) -> Option<Arc<TraceSource>> {
        let plan = self.schemas.plan(version)?;
        Some(Arc::new(TraceSource {
            path: format!(
                "socket {} (connection {id}, schema {version})",
                self.listener.path().display()
            ),
            plan,
            codec: Codec::Null,
            driver: self.index,
        }))
    }

    fn close(&mut self, why: &str) {
        if let Some(c) = self.conn.take() {
            if let Some(suppressed) = self.conn_log.allow() {
                tracing::info!(
                    connection = c.id,
                    packets = c.packets,
                    bytes = c.bytes,
                    suppressed,
                    "collector {why}; waiting for the next connection"
                );
            }
        }
        self.set_connected(false);
    }

    /// This driver's share of the connected gauge.
    fn set_connected(&mut self, on: bool) {
        if on != self.is_connected {
            self.is_connected = on;
            if on {
                self.stats.connected.fetch_add(1, Ordering::Relaxed);
            } else {
                self.stats.connected.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }

    /// This driver's share of the listening gauge (it only ever stops listening).
    fn stop_listening(&mut self) {
        if self.is_listening {
            self.is_listening = false;
            self.stats.listening.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Takes a new connection: counted, announced (rate-limited), its decode plan set when
    /// the schema version is forced.
    fn adopt(&mut self, conn: Conn) {
        let id = self.next_id;
        self.next_id += 1;
        let first = self.stats.connections.fetch_add(1, Ordering::Relaxed) == 0;
        self.set_connected(true);
        if first {
            tracing::info!(target: "health", connection = id, "accepted the collector's stream");
        } else if let Some(suppressed) = self.conn_log.allow() {
            tracing::info!(connection = id, suppressed, "collector connected");
        }
        let source = self.settings.version.and_then(|v| self.source_for(id, v));
        self.conn = Some(Connection {
            conn,
            id,
            packets: 0,
            bytes: 0,
            source,
        });
    }

    /// Copies the packets of the last receive into the batch.
    fn take_packets(&mut self) {
        // The slots are lent out while their packets are copied into the batch.
        let mut slots = std::mem::take(&mut self.slots);
        for p in slots.packets() {
            match p {
                Ok(bytes) => self.push(bytes),
                Err(real) => {
                    let (id, index) = self
                        .conn
                        .as_mut()
                        .map(|c| {
                            c.packets += 1;
                            (c.id, c.packets - 1)
                        })
                        .unwrap_or_default();
                    self.stats.packets.fetch_add(1, Ordering::Relaxed);
                    self.bad(
                        BadPacket::Truncated,
                        format_args!(
                            "connection {id}, packet {index}: {real} bytes, more than packet.maxsize ({})",
                            self.settings.max_packet
                        ),
                    );
                }
            }
        }
        slots.trim(256 << 10);
        self.slots = slots;
    }

    /// After a stop request: no new connection can reach the socket (its file is removed),
    /// and everything the kernel already queued — on the current connection, then on any
    /// connection waiting in the backlog — is read until the queue is empty and handed on.
    /// SOCK_SEQPACKET discards unread packets when the socket is closed, so closing at once
    /// would lose records the collector believes were sent.
    fn drain_step(&mut self) -> Option<SourceStep<Blocks>> {
        self.stop_listening();
        let since = *self.draining.get_or_insert_with(|| {
            self.listener.unlink();
            Instant::now()
        });
        if self.batch_len >= self.batch_records {
            return Some(SourceStep::Batch(self.take_batch()));
        }
        // A collector that keeps sending would keep the queue from ever running dry: what
        // comes after this long is left to it (the connection closes, its sends fail).
        if since.elapsed() > DRAIN_READ_LIMIT {
            self.close("connection closed: the agent is stopping (still sending after the drain read limit)");
        }
        if let Some(c) = self.conn.as_mut() {
            match c.conn.recv_many(&mut self.slots, Duration::ZERO) {
                Ok(Received::Packets(_)) => {
                    self.take_packets();
                    return None;
                }
                Ok(Received::Idle) => self.close("connection closed: the agent is stopping"),
                Ok(Received::Closed) => self.close("disconnected"),
                Err(e) => self.close(&format!("connection failed ({e})")),
            }
            return None;
        }
        if since.elapsed() <= DRAIN_READ_LIMIT {
            if let Ok(Some(conn)) = self.listener.accept(Duration::ZERO) {
                self.adopt(conn);
                return None;
            }
        }
        if self.batch_len > 0 {
            return Some(SourceStep::Batch(self.take_batch()));
        }
        self.shutdown.input_ended();
        Some(SourceStep::End)
    }

    /// Appends one packet of the current connection to the batch.
    fn push(&mut self, packet: &[u8]) {
        let Some(c) = self.conn.as_mut() else { return };
        let index = c.packets;
        c.packets += 1;
        c.bytes += packet.len() as u64;
        self.stats.packets.fetch_add(1, Ordering::Relaxed);
        self.stats
            .bytes
            .fetch_add(packet.len() as u64, Ordering::Relaxed);
        if let Some(h) = header_version(packet) {
            let id = c.id;
            match h {
                Err(e) => {
                    self.bad(
                        BadPacket::Decode,
                        format_args!("connection {id}, packet {index}: header: {e}"),
                    );
                    return;
                }
                Ok(v) => {
                    self.stats.headers.fetch_add(1, Ordering::Relaxed);
                    let want = self.settings.version.unwrap_or(v);
                    match self.source_for(id, want) {
                        Some(s) => {
                            if let Some(c) = self.conn.as_mut() {
                                c.source = Some(s);
                            }
                        }
                        None => {
                            self.stats.add_bad(BadPacket::Version);
                            tracing::error!(
                                connection = id,
                                "the collector announces schema version {v}, which this build cannot read (known: {:?}; set schema.version in the socket driver's entry to force one); closing the connection",
                                self.schemas.versions()
                            );
                            self.close("sent an unknown schema version");
                            return;
                        }
                    }
                }
            }
        }
        let Some(c) = self.conn.as_ref() else { return };
        let Some(source) = c.source.clone() else {
            let id = c.id;
            self.bad(
                BadPacket::NoHeader,
                format_args!(
                    "connection {id}, packet {index}: data before the first header (no schema version known)"
                ),
            );
            return;
        };
        let offset = c.bytes - packet.len() as u64;
        let same = self
            .batch
            .0
            .last()
            .is_some_and(|j| Arc::ptr_eq(&j.source, &source));
        if !same {
            self.batch.0.push(BlockJob {
                source,
                block: RawBlock {
                    index,
                    offset,
                    count: 0,
                    data: Vec::with_capacity(self.block_hint),
                },
                packets: Vec::new(),
            });
        }
        if let Some(j) = self.batch.0.last_mut() {
            j.block.data.extend_from_slice(packet);
            j.block.count += 1;
            j.packets.push(packet.len() as u32);
        }
        self.batch_len += 1;
        self.started.get_or_insert_with(Instant::now);
    }

    /// Takes what the kernel has queued, up to a full batch, without waiting. True when the
    /// connection ended meanwhile.
    fn take_queued(&mut self) -> bool {
        while self.batch_len < self.batch_records {
            let Some(c) = self.conn.as_mut() else {
                return true;
            };
            match c.conn.recv_many(&mut self.slots, Duration::ZERO) {
                Ok(Received::Packets(n)) => {
                    self.take_packets();
                    // Fewer than asked for: the queue was empty (no second call to learn it).
                    if n < self.slots.capacity() {
                        return false;
                    }
                }
                Ok(Received::Idle) => return false,
                Ok(Received::Closed) => {
                    self.close("disconnected");
                    return true;
                }
                Err(e) => {
                    self.close(&format!("connection failed ({e})"));
                    return true;
                }
            }
        }
        false
    }

    /// Hands the gathered batch on and sets how the next one is gathered: a batch of a
    /// quarter of a full one or more means a fast stream (read as it comes: a reader asleep
    /// for the budget would hold the sender back); one cut by the budget with packets still
    /// coming means a steady stream (the next budget is slept first); a budget that caught a
    /// single packet means a sparse one (packets are handed on as they come).
    fn cut(&mut self, by_budget: bool, ended: bool) -> SourceStep<Blocks> {
        self.fast = self.batch_len >= self.fast_batch();
        self.sparse = by_budget && self.batch_len == 1;
        self.steady = by_budget && !ended && !self.fast && !self.sparse && self.conn.is_some();
        self.last_cut = Some(Instant::now());
        SourceStep::Batch(self.take_batch())
    }

    /// One step that never blocks: a batch (or the end), or what the driver waits for before
    /// the next step.
    pub(super) fn advance(&mut self) -> Advance {
        loop {
            if self.stop.is_stopped() {
                if let Some(step) = self.drain_step() {
                    return Advance::Step(step);
                }
                continue;
            }
            if self.conn.is_none() {
                match self.listener.accept(Duration::ZERO) {
                    Ok(Some(conn)) => {
                        self.adopt(conn);
                        continue;
                    }
                    Ok(None) => return Advance::Wait(Wait::Connection),
                    Err(e) => {
                        if let Some(suppressed) = self.conn_log.allow() {
                            tracing::error!(suppressed, "accept failed: {e}");
                        }
                        return Advance::Wait(Wait::Until(Instant::now() + ACCEPT_WAIT));
                    }
                }
            }
            let now = Instant::now();
            // A steady stream: rather than wake at its next packet (within a millisecond at a
            // thousand records a second) and then sleep out the budget — two wake-ups per
            // batch — the budget is slept first and what came meanwhile is taken (one). A
            // stream that went quiet is then waited for in the kernel.
            if let Some(at) = self.wake_at {
                if now < at {
                    return Advance::Wait(Wait::Until(at));
                }
                self.wake_at = None;
                let ended = self.take_queued();
                if self.batch_len > 0 {
                    return Advance::Step(self.cut(true, ended));
                }
                continue;
            }
            if self.steady {
                self.steady = false;
                self.wake_at = Some(now + self.settings.latency);
                continue;
            }
            let Some(started) = self.started else {
                // No batch open: what is queued now, or a wait in the kernel for it.
                let Some(c) = self.conn.as_mut() else {
                    continue;
                };
                match c.conn.recv_many(&mut self.slots, Duration::ZERO) {
                    Ok(Received::Packets(n)) => {
                        self.take_packets();
                        if self.batch_len >= self.batch_records {
                            return Advance::Step(self.cut(false, false));
                        }
                        // A sparse stream's packet goes at once, unless the stream has
                        // picked up (more than one packet queued, or the last hand-off was
                        // within a budget): then a batch is gathered again.
                        if self.sparse && self.batch_len > 0 {
                            let recent = self
                                .last_cut
                                .is_some_and(|t| t.elapsed() < self.settings.latency);
                            if n == 1 && !recent {
                                let step = self.cut(false, false);
                                self.sparse = true;
                                return Advance::Step(step);
                            }
                            self.sparse = false;
                        }
                    }
                    Ok(Received::Idle) => {
                        // Nothing queued right after a batch: not a fast stream any more.
                        self.fast = false;
                        return Advance::Wait(Wait::Packets(None));
                    }
                    Ok(Received::Closed) => self.close("disconnected"),
                    Err(e) => self.close(&format!("connection failed ({e})")),
                }
                continue;
            };
            // A batch is open. A fast stream is read as it comes (waiting in the kernel, not
            // asleep: the sender's queue is bounded, and a sleeping reader would hold it
            // back); otherwise the latency budget is spent asleep while the kernel queues
            // the packets, and everything queued is taken at once.
            let deadline = started + self.settings.latency;
            let ended = if self.fast {
                let Some(c) = self.conn.as_mut() else {
                    return Advance::Step(self.cut(false, true));
                };
                match c.conn.recv_many(&mut self.slots, Duration::ZERO) {
                    Ok(Received::Packets(_)) => {
                        self.take_packets();
                        false
                    }
                    Ok(Received::Idle) if now < deadline => {
                        return Advance::Wait(Wait::Packets(Some(deadline - now)));
                    }
                    Ok(Received::Idle) => false,
                    Ok(Received::Closed) => {
                        self.close("disconnected");
                        true
                    }
                    Err(e) => {
                        self.close(&format!("connection failed ({e})"));
                        true
                    }
                }
            } else {
                if now < deadline {
                    return Advance::Wait(Wait::Until(deadline));
                }
                self.take_queued()
            };
            let full = self.batch_len >= self.batch_records;
            if full || ended || Instant::now() >= deadline {
                if self.batch_len > 0 {
                    return Advance::Step(self.cut(!full, ended));
                }
                self.started = None;
            }
        }
    }

    /// Packets per budget from which the stream is read as it comes rather than asleep: a
    /// quarter of a full batch (at the default budget, about 200,000 records/s).
    fn fast_batch(&self) -> usize {
        (self.batch_records / 4).max(1)
    }

    /// Whether the stream is fast (its batches fill within the budget): the shared-thread
    /// runner then reads it on a blocking-pool thread, in parallel with the pipeline.
    pub(super) fn is_fast(&self) -> bool {
        self.fast && !self.stop.is_stopped()
    }

    /// The connection waited on.
    pub(super) fn connection(&self) -> Option<&Conn> {
        self.conn.as_ref().map(|c| &c.conn)
    }

    pub(super) fn listener(&self) -> &Listener {
        &self.listener
    }

    pub(super) fn stop_flag(&self) -> &StopFlag {
        &self.stop
    }
}

/// What the driver waits for before its next step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Wait {
    /// Packets on the connection, or its end, for at most this long (`None`: with no time
    /// limit — but a stop request ends the wait).
    Packets(Option<Duration>),
    /// A connection on the listener (a stop request ends the wait).
    Connection,
    /// Nothing until then (the latency budget runs).
    Until(Instant),
}

/// One step of the driver.
pub(super) enum Advance {
    Step(SourceStep<Blocks>),
    Wait(Wait),
}

impl Drop for SocketDriver {
    fn drop(&mut self) {
        self.stop_listening();
        self.set_connected(false);
    }
}
