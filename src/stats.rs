//! Live statistics of the parts that are not plain pipeline nodes: the socket stream, the
//! exporters' delivery, the entity tables, the policy sets. Plain atomics written on the data
//! path and read at any time (the metrics endpoint, the end-of-run summary), so observing a
//! running agent costs it nothing but a few relaxed increments.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::counters::Counters;

/// Why a socket packet was not used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadPacket {
    /// Not a valid datum of the connection's schema (or bytes left over after one).
    Decode,
    /// Larger than `packet.maxsize`: the kernel cut it.
    Truncated,
    /// Data before any header, with no `schema.version` to decode it by.
    NoHeader,
    /// A header announcing a schema version this build cannot read (the connection closes).
    Version,
    /// A datum that would take more than `record.maxsize` once decoded.
    Oversize,
}

impl BadPacket {
    pub const ALL: [BadPacket; 5] = [
        BadPacket::Decode,
        BadPacket::Truncated,
        BadPacket::NoHeader,
        BadPacket::Version,
        BadPacket::Oversize,
    ];

    pub fn label(self) -> &'static str {
        match self {
            BadPacket::Decode => "decode",
            BadPacket::Truncated => "truncated",
            BadPacket::NoHeader => "no_header",
            BadPacket::Version => "version",
            BadPacket::Oversize => "oversize",
        }
    }
}

/// The socket drivers' counters (every socket driver of a run adds to the same ones; their
/// records are counted apart by their node's counters).
#[derive(Debug, Default)]
pub struct SocketStats {
    /// Sockets that exist and accept connections.
    pub listening: AtomicU64,
    /// Collectors connected now.
    pub connected: AtomicU64,
    pub connections: AtomicU64,
    pub packets: AtomicU64,
    pub bytes: AtomicU64,
    pub headers: AtomicU64,
    bad: [AtomicU64; 5],
}

impl SocketStats {
    pub fn add_bad(&self, why: BadPacket) {
        self.bad[why as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn bad(&self, why: BadPacket) -> u64 {
        self.bad[why as usize].load(Ordering::Relaxed)
    }

    pub fn bad_total(&self) -> u64 {
        BadPacket::ALL.iter().map(|b| self.bad(*b)).sum()
    }
}

/// How long a delivery attempt may wait for its acknowledgement before the exporter reads
/// as down: a healthy Kafka broker or syslog server acknowledges a batch in milliseconds, so
/// seconds without one is a target that stopped (killed, SIGSTOPped, partitioned).
pub const STALL: Duration = Duration::from_secs(3);

/// An exporter's delivery, beyond the node counters: what waits in its queue, when the target
/// last acknowledged something, whether its last attempt succeeded, whether an attempt is
/// waiting for its acknowledgement and since when, and what the transport itself knows of
/// its target (librdkafka's broker states).
#[derive(Debug)]
pub struct ExporterStats {
    queue_bytes: AtomicI64,
    /// Unix time in milliseconds of the last acknowledged batch (0: none yet).
    last_success_ms: AtomicU64,
    /// The last attempt failed (cleared by a success).
    failing: AtomicBool,
    /// Milliseconds since `epoch` when the attempt in progress started (0: none).
    attempt_since_ms: AtomicU64,
    epoch: Instant,
    /// The transport reports its target down (no broker up), with the reason.
    link_down: Mutex<Option<String>>,
    /// The disk queue's statistics (`queue.type: disk`).
    disk: std::sync::OnceLock<std::sync::Arc<crate::queue::QueueStats>>,
}

impl Default for ExporterStats {
    fn default() -> Self {
        ExporterStats {
            queue_bytes: AtomicI64::new(0),
            last_success_ms: AtomicU64::new(0),
            failing: AtomicBool::new(false),
            attempt_since_ms: AtomicU64::new(0),
            epoch: Instant::now(),
            link_down: Mutex::new(None),
            disk: std::sync::OnceLock::new(),
        }
    }
}

impl ExporterStats {
    /// Attaches the exporter's disk queue (once).
    pub fn set_disk_queue(&self, q: std::sync::Arc<crate::queue::QueueStats>) {
        let _ = self.disk.set(q);
    }

    /// The exporter's disk queue, if it has one.
    pub fn disk_queue(&self) -> Option<&crate::queue::QueueStats> {
        self.disk.get().map(|q| q.as_ref())
    }

    pub fn queue_bytes(&self) -> u64 {
        self.queue_bytes.load(Ordering::Relaxed).max(0) as u64
    }

    /// Seconds since the Unix epoch of the last acknowledged batch.
    pub fn last_success(&self) -> Option<f64> {
        match self.last_success_ms.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(ms as f64 / 1000.0),
        }
    }

    /// Why the target is not taking data now, if it is not: the last attempt failed, an
    /// attempt has waited longer than [`STALL`] for its acknowledgement, or the transport
    /// reports its target down.
    pub fn down_reason(&self) -> Option<String> {
        if self.failing.load(Ordering::Relaxed) {
            return Some("the last delivery attempt failed".into());
        }
        if let Some(age) = self.attempt_age() {
            if age >= STALL {
                return Some(format!(
                    "a delivery attempt has waited {:.1}s for the target's acknowledgement",
                    age.as_secs_f64()
                ));
            }
        }
        match self.link_down.lock() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Whether the target is taking data (see [`ExporterStats::down_reason`]).
    pub fn up(&self) -> bool {
        self.down_reason().is_none()
    }

    /// How long the attempt in progress has waited.
    pub fn attempt_age(&self) -> Option<Duration> {
        match self.attempt_since_ms.load(Ordering::Relaxed) {
            0 => None,
            since => {
                let now = self.epoch.elapsed().as_millis() as u64;
                Some(Duration::from_millis(now.saturating_sub(since)))
            }
        }
    }

    pub fn add_queue_bytes(&self, delta: i64) {
        self.queue_bytes.fetch_add(delta, Ordering::Relaxed);
    }

    pub fn succeeded(&self) {
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(1);
        self.last_success_ms.store(ms.max(1), Ordering::Relaxed);
        self.failing.store(false, Ordering::Relaxed);
    }

    pub fn failed_attempt(&self) {
        self.failing.store(true, Ordering::Relaxed);
    }

    pub fn attempt_in_progress(&self, busy: bool) {
        let v = if busy {
            (self.epoch.elapsed().as_millis() as u64).max(1)
        } else {
            0
        };
        self.attempt_since_ms.store(v, Ordering::Relaxed);
    }

    /// What the transport knows of its target: `Some(reason)` when it is down, `None` when
    /// it is up again.
    pub fn set_link_down(&self, reason: Option<String>) {
        match self.link_down.lock() {
            Ok(mut g) => *g = reason,
            Err(p) => *p.into_inner() = reason,
        }
    }
}

/// Counters of a delivery path: the node's counters plus the exporter's own statistics.
pub struct DeliveryCounters<C: Counters> {
    pub node: std::sync::Arc<C>,
    pub exporter: std::sync::Arc<ExporterStats>,
}

impl<C: Counters> Counters for DeliveryCounters<C> {
    fn add_sent(&self, records: u64) {
        self.node.add_sent(records)
    }
    fn add_dropped(&self, records: u64) {
        self.node.add_dropped(records)
    }
    fn add_retried(&self, records: u64) {
        self.exporter.failed_attempt();
        self.node.add_retried(records)
    }
    fn add_failed(&self, records: u64) {
        self.node.add_failed(records)
    }
    fn add_error(&self) {
        self.node.add_error()
    }
    fn queue_bytes(&self, delta: i64) {
        self.exporter.add_queue_bytes(delta)
    }
    fn delivered_now(&self) {
        self.exporter.succeeded()
    }
    fn attempt_failed(&self) {
        self.exporter.failed_attempt()
    }
    fn attempt_in_progress(&self, busy: bool) {
        self.exporter.attempt_in_progress(busy)
    }
}

/// Entity tables: sizes now, and what left them other than by a header reset.
#[derive(Debug, Default)]
pub struct TableStats {
    pub processes: AtomicU64,
    pub files: AtomicU64,
    pub containers: AtomicU64,
    pub pods: AtomicU64,
    /// Bytes the tables hold (`cache.maxbytes`).
    pub bytes: AtomicU64,
    pub evictions: AtomicU64,
    pub reaped: AtomicU64,
    /// Header records (each resets the tables).
    pub resets: AtomicU64,
    /// Records dropped by the rate limiter (`filter.enabled`).
    pub rate_limited: AtomicU64,
}

/// A policy stage's reloads.
#[derive(Debug, Default)]
pub struct ReloadStats {
    pub ok: AtomicU64,
    pub failed: AtomicU64,
}

/// At most a few messages per interval: a stream of bad packets must not flood the log.
#[derive(Debug)]
pub struct RateLimit {
    state: Mutex<(Option<Instant>, u32, u64)>,
    burst: u32,
    interval: Duration,
}

impl RateLimit {
    /// `burst` messages, then one per `interval` (which reports how many were suppressed).
    pub fn new(burst: u32, interval: Duration) -> Self {
        RateLimit {
            state: Mutex::new((None, 0, 0)),
            burst,
            interval,
        }
    }

    /// `Some(suppressed)` when a message may be logged now (with the number left out since
    /// the last one), `None` when it should be left out.
    pub fn allow(&self) -> Option<u64> {
        let mut g = match self.state.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let (window, sent, suppressed) = &mut *g;
        let now = Instant::now();
        if window.is_none_or(|w| now.duration_since(w) >= self.interval) {
            *window = Some(now);
            *sent = 0;
        }
        if *sent < self.burst {
            *sent += 1;
            let s = *suppressed;
            *suppressed = 0;
            Some(s)
        } else {
            *suppressed += 1;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_limit_lets_a_burst_through_then_counts_what_it_left_out() {
        let r = RateLimit::new(2, Duration::from_millis(50));
        assert_eq!(r.allow(), Some(0));
        assert_eq!(r.allow(), Some(0));
        assert_eq!(r.allow(), None);
        assert_eq!(r.allow(), None);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(r.allow(), Some(2), "reports the two left out");
    }

    #[test]
    fn an_exporter_is_up_until_an_attempt_fails_and_again_after_a_success() {
        let s = ExporterStats::default();
        assert!(s.up());
        assert_eq!(s.last_success(), None);
        s.failed_attempt();
        assert!(!s.up());
        s.succeeded();
        assert!(s.up());
        assert!(s.last_success().is_some());
        s.set_link_down(Some("all brokers down".into()));
        assert_eq!(s.down_reason().as_deref(), Some("all brokers down"));
        s.set_link_down(None);
        assert!(s.up());
    }

    #[test]
    fn an_attempt_waiting_past_the_stall_time_reads_as_down() {
        // A clock started a minute ago, so an attempt can be dated before "now".
        let s = ExporterStats {
            epoch: Instant::now()
                .checked_sub(Duration::from_secs(60))
                .expect("uptime"),
            ..Default::default()
        };
        s.attempt_in_progress(true);
        assert!(s.up(), "a fresh attempt is fine");
        let now = s.epoch.elapsed().as_millis() as u64;
        s.attempt_since_ms
            .store(now - STALL.as_millis() as u64 - 10, Ordering::Relaxed);
        let r = s.down_reason().expect("down");
        assert!(r.contains("waited"), "{r}");
        s.attempt_in_progress(false);
        assert!(s.up());
    }
}
