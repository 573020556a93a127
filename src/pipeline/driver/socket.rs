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
//! before the budget is spent and go at once (the budget adapts to the rate). When the
//! pipeline is full the driver stops receiving: the kernel queue fills and the collector's
//! sends block, so nothing is dropped inside the agent. A collector that disconnects is
//! waited for again; what was received from it is delivered first.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sfactors::{Source, SourceStep, StopFlag};

use crate::config::{ConfigError, PipelineConfig, StageConfig};
use crate::pipeline::batch::{BlockJob, Blocks, TraceSource};
use crate::seqpacket::{Conn, Listener, Received, RecvSlots, SocketAccess};
use crate::shutdown::Shutdown;
use crate::stats::{BadPacket, RateLimit, SocketStats};
use crate::sysflow::ocf::{Codec, RawBlock};
use crate::sysflow::stream::{header_version, StreamSchemas};

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

/// How long the driver waits in one poll for a first packet or a connection (a stop request
/// is seen within it).
const IDLE_WAIT: Duration = Duration::from_millis(250);

/// After a stop request, how long the driver keeps reading what the collector sends before it
/// closes the connection (the queue normally runs dry within milliseconds).
const DRAIN_READ_LIMIT: Duration = Duration::from_secs(2);

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

/// The socket driver. `next` blocks its own arbiter thread (polls with short timeouts so a
/// stop request is seen within 100 ms).
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
}

impl SocketDriver {
    pub fn new(
        listener: Listener,
        settings: SocketSettings,
        stop: StopFlag,
        shutdown: Arc<Shutdown>,
        stats: Arc<SocketStats>,
        batch_records: usize,
    ) -> Result<Self, String> {
        let schemas = StreamSchemas::builtin().map_err(|e| e.to_string())?;
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
                    data: Vec::with_capacity(64 << 10),
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

    /// Receives until a batch is ready, the connection ends, or the stop flag is set.
    fn step(&mut self) -> Option<SourceStep<Blocks>> {
        if self.stop.is_stopped() {
            return self.drain_step();
        }
        let Some(c) = self.conn.as_mut() else {
            match self.listener.accept(Duration::from_millis(100)) {
                Ok(Some(conn)) => self.adopt(conn),
                Ok(None) => {}
                Err(e) => {
                    if let Some(suppressed) = self.conn_log.allow() {
                        tracing::error!(suppressed, "accept failed: {e}");
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
            return None;
        };
        let Some(started) = self.started else {
            // A steady stream: rather than wake at its next packet (within a millisecond at
            // a thousand records a second) and then sleep out the budget — two wake-ups per
            // batch — sleep the budget first and take what came (one). A stream that went
            // quiet is then waited for in the kernel.
            if self.steady {
                self.steady = false;
                std::thread::sleep(self.settings.latency);
                // Everything that queued meanwhile (it is a budget old already).
                while self.batch_len < self.batch_records {
                    let Some(c) = self.conn.as_mut() else { break };
                    match c.conn.recv_many(&mut self.slots, Duration::ZERO) {
                        Ok(Received::Packets(_)) => self.take_packets(),
                        Ok(Received::Idle) => break,
                        Ok(Received::Closed) => self.close("disconnected"),
                        Err(e) => self.close(&format!("connection failed ({e})")),
                    }
                }
                if self.batch_len > 0 {
                    self.fast = self.batch_len >= self.fast_batch();
                    self.steady = self.conn.is_some() && !self.fast;
                    return Some(SourceStep::Batch(self.take_batch()));
                }
                return None;
            }
            // No batch open: wait in the kernel for the first packet.
            match c.conn.recv_many(&mut self.slots, IDLE_WAIT) {
                Ok(Received::Packets(_)) => self.take_packets(),
                Ok(Received::Idle) => {}
                Ok(Received::Closed) => self.close("disconnected"),
                Err(e) => self.close(&format!("connection failed ({e})")),
            }
            if self.batch_len >= self.batch_records {
                return Some(SourceStep::Batch(self.take_batch()));
            }
            return None;
        };
        // A batch is open. A fast stream is read as it comes (waiting in the kernel, not
        // asleep: the sender's queue is bounded, and a sleeping reader would hold it back);
        // otherwise the latency budget is spent asleep while the kernel queues the packets,
        // and everything queued is taken at once.
        let deadline = started + self.settings.latency;
        let now = Instant::now();
        let mut ended = false;
        if self.fast {
            let c = self.conn.as_mut()?;
            match c
                .conn
                .recv_many(&mut self.slots, deadline.saturating_duration_since(now))
            {
                Ok(Received::Packets(_)) => self.take_packets(),
                Ok(Received::Idle) => {}
                Ok(Received::Closed) => {
                    self.close("disconnected");
                    ended = true;
                }
                Err(e) => {
                    self.close(&format!("connection failed ({e})"));
                    ended = true;
                }
            }
        } else {
            if now < deadline {
                std::thread::sleep(deadline - now);
            }
            while self.batch_len < self.batch_records {
                let Some(c) = self.conn.as_mut() else { break };
                match c.conn.recv_many(&mut self.slots, Duration::ZERO) {
                    Ok(Received::Packets(_)) => self.take_packets(),
                    Ok(Received::Idle) => break,
                    Ok(Received::Closed) => {
                        self.close("disconnected");
                        ended = true;
                    }
                    Err(e) => {
                        self.close(&format!("connection failed ({e})"));
                        ended = true;
                    }
                }
            }
        }
        let full = self.batch_len >= self.batch_records;
        if full || ended || Instant::now() >= deadline {
            // A budget's worth this large would hold the sender back while asleep.
            self.fast = self.batch_len >= self.fast_batch();
            // Cut by the budget with packets still coming, at a modest rate: the next batch
            // is gathered by sleeping the budget first.
            self.steady = !full && !ended && !self.fast;
            if self.batch_len > 0 {
                return Some(SourceStep::Batch(self.take_batch()));
            }
        }
        None
    }

    /// Packets per budget from which the stream is read as it comes rather than asleep: a
    /// quarter of a full batch (at the default budget, about 200,000 records/s).
    fn fast_batch(&self) -> usize {
        (self.batch_records / 4).max(1)
    }
}

impl Source for SocketDriver {
    type Out = Blocks;

    /// After a stop request the driver reads what the kernel queued, then ends itself.
    fn drains_on_stop(&self) -> bool {
        true
    }

    fn next(&mut self) -> SourceStep<Blocks> {
        loop {
            if let Some(step) = self.step() {
                return step;
            }
        }
    }
}

impl Drop for SocketDriver {
    fn drop(&mut self) {
        self.stop_listening();
        self.set_connected(false);
    }
}
