//! Kafka transport (librdkafka, bundled build).
//!
//! Every record is one message. A batch counts as sent only when librdkafka's delivery
//! reports say so: `send_batch` produces the batch and serves delivery reports until each of
//! its messages is acknowledged or has failed. Failed messages are sorted into those that can
//! heal (broker down, leader moving, timed out) — handed back to the delivery worker, which
//! retries only them — and those that never will (too large, not authorised), counted as
//! failed. With `enable.idempotence` (the default here) librdkafka's own retries cannot
//! duplicate; a message re-sent by the worker after a timeout can (at-least-once).
//!
//! The message key is a hash of the record's node and process identity, so one process's
//! alerts land in one partition, in order.

mod config;
pub use config::SPEC;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::ClientContext;

use super::{Payload, Transport, TransportError};
use crate::stats::ExporterStats;

/// A validated `kafka` exporter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaConfig {
    pub topic: String,
    /// librdkafka settings: our defaults, then `kafka.config`, then flat `kafka.<setting>` keys.
    pub settings: BTreeMap<String, String>,
}

impl KafkaConfig {
    /// Defaults that differ from librdkafka's: every in-sync replica acknowledges, no
    /// duplicates from librdkafka's own retries, a message timeout short enough that the
    /// delivery worker's backoff and drain deadline stay in charge during a long outage, and
    /// reconnects at least every second (librdkafka backs off to 10 s), so a broker that comes
    /// back is written to — and reads as ready — within a second or two.
    pub fn defaults() -> BTreeMap<String, String> {
        [
            ("client.id", "sfprocessor"),
            ("acks", "all"),
            ("enable.idempotence", "true"),
            ("message.timeout.ms", "30000"),
            ("reconnect.backoff.max.ms", "1000"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    pub fn brokers(&self) -> &str {
        self.settings
            .get("bootstrap.servers")
            .map(String::as_str)
            .unwrap_or("")
    }

    fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        for (k, v) in &self.settings {
            c.set(k, v);
        }
        c
    }

    /// Checks every setting with librdkafka itself (unknown names, bad values), without
    /// connecting.
    pub fn validate(&self) -> Result<(), KafkaError> {
        self.client_config().create_native_config().map(|_| ())
    }
}

/// Delivery outcomes of the messages in flight, indexed by their position in the batch.
#[derive(Default)]
struct Reports {
    acked: Vec<usize>,
    failed: Vec<(usize, KafkaError)>,
}

struct Ctx {
    reports: Mutex<Reports>,
    /// Where the broker state goes (readiness), when the exporter is watched.
    link: Option<Arc<ExporterStats>>,
}

/// Names of the brokers librdkafka reports UP, from its statistics: the placeholder entries of
/// `bootstrap.servers` (`host:port/bootstrap`) count too, a live connection is a live one.
fn brokers_up(stats: &rdkafka::Statistics) -> usize {
    stats.brokers.values().filter(|b| b.state == "UP").count()
}

/// librdkafka reports every refused connection during an outage; the delivery worker already
/// says what matters (retrying, delivered after retrying, failed), so these go to debug.
impl ClientContext for Ctx {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, log_message: &str) {
        use rdkafka::config::RDKafkaLogLevel::*;
        match level {
            Emerg | Alert | Critical => {
                tracing::error!(facility = fac, "librdkafka: {log_message}")
            }
            _ => tracing::debug!(facility = fac, "librdkafka: {log_message}"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::debug!("librdkafka: {error}: {reason}");
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::AllBrokersDown) {
            if let Some(l) = &self.link {
                l.set_link_down(Some(format!("all brokers are down ({reason})")));
            }
        }
    }

    /// librdkafka's statistics (every `statistics.interval.ms`): the broker connections'
    /// states. No broker UP is a target that is down, even with nothing to deliver; one UP
    /// again clears it.
    fn stats(&self, statistics: rdkafka::Statistics) {
        if let Some(l) = &self.link {
            if brokers_up(&statistics) > 0 {
                l.set_link_down(None);
            } else {
                l.set_link_down(Some("no broker connection is up".into()));
            }
        }
    }
}

impl ProducerContext for Ctx {
    type DeliveryOpaque = Box<usize>;

    fn delivery(&self, result: &DeliveryResult<'_>, idx: Self::DeliveryOpaque) {
        let mut r = match self.reports.lock() {
            Ok(r) => r,
            Err(p) => p.into_inner(),
        };
        match result {
            Ok(_) => r.acked.push(*idx),
            Err((e, _)) => r.failed.push((*idx, e.clone())),
        }
    }
}

pub struct KafkaTransport {
    cfg: KafkaConfig,
    producer: Option<BaseProducer<Ctx>>,
    target: String,
    /// The drain deadline, once the input has ended: waiting for delivery reports stops near
    /// it (unreported messages are then failed, or retried by the worker if time is left).
    deadline: Option<std::time::Instant>,
    /// The exporter's statistics, once watched: broker states go there.
    link: Option<Arc<ExporterStats>>,
}

/// How often librdkafka reports broker states when the exporter is watched (unless
/// `statistics.interval.ms` is set).
const STATS_INTERVAL_MS: &str = "1000";

/// Errors that resending can never fix.
fn permanent(e: &KafkaError) -> bool {
    use RDKafkaErrorCode::*;
    matches!(
        e.rdkafka_error_code(),
        Some(
            MessageSizeTooLarge
                | InvalidMessageSize
                | InvalidMessage
                | InvalidRecord
                | TopicAuthorizationFailed
                | ClusterAuthorizationFailed
                | InvalidTopic
                | InvalidRequiredAcks
                | MessageBatchTooLarge
                | UnsupportedForMessageFormat
        )
    )
}

fn producer_state_lost(e: &KafkaError) -> bool {
    use RDKafkaErrorCode::*;
    matches!(
        e.rdkafka_error_code(),
        Some(
            ProducerFenced
                | InvalidProducerEpoch
                | UnknownProducerId
                | OutOfOrderSequenceNumber
                | InvalidProducerIdMapping
                | DuplicateSequenceNumber
                | Fatal
        )
    )
}

impl KafkaTransport {
    pub fn new(cfg: KafkaConfig) -> Self {
        let target = format!("kafka {}/{}", cfg.brokers(), cfg.topic);
        KafkaTransport {
            cfg,
            producer: None,
            target,
            deadline: None,
            link: None,
        }
    }

    fn unavailable(&self, reason: String) -> TransportError {
        TransportError::Unavailable {
            target: self.target.clone(),
            reason,
        }
    }

    /// The producer, created on first use and again after a fatal error (an idempotent
    /// producer that lost its sequence state cannot go on).
    fn producer(&mut self) -> Result<&BaseProducer<Ctx>, TransportError> {
        if let Some(p) = &self.producer {
            if let Some((code, reason)) = p.client().fatal_error() {
                tracing::warn!(target = %self.target, "producer hit a fatal error ({code:?}: {reason}); starting a new one");
                self.producer = None;
            }
        }
        if self.producer.is_none() {
            let ctx = Ctx {
                reports: Mutex::new(Reports::default()),
                link: self.link.clone(),
            };
            let mut config = self.cfg.client_config();
            if self.link.is_some() && !self.cfg.settings.contains_key("statistics.interval.ms") {
                config.set("statistics.interval.ms", STATS_INTERVAL_MS);
            }
            let p = config
                .create_with_context::<_, BaseProducer<Ctx>>(ctx)
                .map_err(|e| TransportError::Rejected {
                    target: self.target.clone(),
                    reason: format!("cannot create the producer: {e}"),
                })?;
            self.producer = Some(p);
        }
        self.producer
            .as_ref()
            .ok_or_else(|| self.unavailable("no producer".into()))
    }

    fn take_reports(p: &BaseProducer<Ctx>) -> Reports {
        let mut r = match p.context().reports.lock() {
            Ok(r) => r,
            Err(e) => e.into_inner(),
        };
        std::mem::take(&mut *r)
    }

    fn settled(p: &BaseProducer<Ctx>) -> usize {
        match p.context().reports.lock() {
            Ok(r) => r.acked.len() + r.failed.len(),
            Err(e) => {
                let r = e.into_inner();
                r.acked.len() + r.failed.len()
            }
        }
    }
}

impl Transport for KafkaTransport {
    /// Starts the producer now (it connects in the background), so broker states reach
    /// readiness before the first record does.
    fn watch(&mut self, stats: Arc<ExporterStats>) {
        self.link = Some(stats);
        self.producer = None;
        if let Err(e) = self.producer() {
            tracing::warn!(target = %self.target, "{e}");
        }
    }

    fn tick_interval(&self) -> Option<Duration> {
        self.link.as_ref().map(|_| Duration::from_millis(500))
    }

    /// Serves librdkafka's error and statistics callbacks while no batch is in flight.
    fn tick(&mut self) {
        if let Some(p) = &self.producer {
            p.poll(Duration::ZERO);
        }
    }

    fn set_deadline(&mut self, deadline: Option<std::time::Instant>) {
        self.deadline = deadline;
    }

    fn send_batch(&mut self, batch: &Payload) -> Result<(), TransportError> {
        let topic = self.cfg.topic.clone();
        let target = self.target.clone();
        let timeout = self_timeout(&self.cfg) + Duration::from_secs(5);
        let drain = self.deadline;
        let p = self.producer()?;
        Self::take_reports(p);
        let mut produced = 0usize;
        // Messages librdkafka refused to queue at all (too large, ...).
        let mut refused: Vec<(usize, KafkaError)> = Vec::new();
        let mut key = [0u8; 16];
        for (i, line) in batch.iter().enumerate() {
            let mut rec = BaseRecord::with_opaque_to(&topic, Box::new(i)).payload(line);
            if let Some(k) = batch.keys.get(i) {
                hex16(*k, &mut key);
                rec = rec.key(&key[..]);
            }
            loop {
                match p.send(rec) {
                    Ok(()) => {
                        produced += 1;
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                        // librdkafka's queue is full: serve delivery reports, which frees it.
                        p.poll(Duration::from_millis(5));
                        rec = r;
                    }
                    Err((e, _)) => {
                        refused.push((i, e));
                        break;
                    }
                }
            }
        }
        // Each produced message gets exactly one delivery report, at the latest after
        // `message.timeout.ms`; should librdkafka still owe some after that (and a margin),
        // the producer is replaced and the unreported messages are sent again.
        let now = std::time::Instant::now();
        let deadline = match drain {
            Some(d) => (now + timeout).min(d.max(now + Duration::from_secs(1))),
            None => now + timeout,
        };
        while Self::settled(p) < produced && std::time::Instant::now() < deadline {
            p.poll(Duration::from_millis(50));
        }
        let stuck = Self::settled(p) < produced;
        let mut r = Self::take_reports(p);
        r.failed.append(&mut refused);
        if stuck {
            tracing::warn!(target = %target, "delivery reports overdue; starting a new producer");
            let mut reported = vec![false; batch.records()];
            for i in r.acked.iter().chain(r.failed.iter().map(|(i, _)| i)) {
                if let Some(x) = reported.get_mut(*i) {
                    *x = true;
                }
            }
            for (i, done) in reported.iter().enumerate() {
                if !done {
                    r.failed.push((
                        i,
                        KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut),
                    ));
                }
            }
            self.producer = None;
        }
        if r.failed.is_empty() {
            return Ok(());
        }
        // A broker that lost its producer state (restarted without it) fences or rejects the
        // idempotent producer for good: the retry goes through a new one.
        if r.failed.iter().any(|(_, e)| producer_state_lost(e)) {
            tracing::warn!(target = %target, "the broker lost this producer's state; starting a new producer");
            self.producer = None;
        } else if r.acked.is_empty()
            && r.failed
                .iter()
                .all(|(_, e)| e.rdkafka_error_code() == Some(RDKafkaErrorCode::MessageTimedOut))
        {
            // Nothing got through in a whole message timeout: the producer's view of the
            // cluster may be stale (a broker restarted without the topic's partitions, a
            // partition that is gone). A new producer starts from fresh metadata.
            tracing::warn!(target = %target, "no message acknowledged within the message timeout; starting a new producer");
            self.producer = None;
        }
        r.failed.sort_by_key(|(i, _)| *i);
        let mut retry = Vec::new();
        let mut failed = 0usize;
        let mut reason = String::new();
        for (i, e) in &r.failed {
            if permanent(e) {
                failed += 1;
                tracing::error!(target = %target, record = *i, "message refused for good: {e}");
            } else {
                retry.push(*i);
            }
            if reason.is_empty() {
                reason = format!(
                    "{} of {} messages not delivered: {e}",
                    r.failed.len(),
                    batch.records()
                );
            }
        }
        Err(TransportError::Partial {
            target,
            reason,
            delivered: r.acked.len(),
            failed,
            rest: Box::new(batch.select(&retry)),
        })
    }

    fn flush(&mut self) -> Result<(), TransportError> {
        if let Some(p) = &self.producer {
            p.flush(Duration::from_secs(10))
                .map_err(|e| self.unavailable(format!("flush: {e}")))?;
        }
        Ok(())
    }

    /// Connects and reads the cluster metadata for the topic (authentication included).
    fn healthcheck(&mut self) -> Result<(), TransportError> {
        let topic = self.cfg.topic.clone();
        let brokers = self.cfg.brokers().to_string();
        let p = self.producer()?;
        let md = p
            .client()
            .fetch_metadata(Some(&topic), Duration::from_secs(5))
            .map_err(|e| TransportError::Unavailable {
                target: format!("kafka {brokers}"),
                reason: format!("cannot read cluster metadata from the brokers: {e}"),
            })?;
        if md.brokers().is_empty() {
            return Err(self.unavailable("the cluster reports no brokers".into()));
        }
        if let Some(t) = md.topics().iter().find(|t| t.name() == topic) {
            if let Some(e) = t.error() {
                let code = RDKafkaErrorCode::from(e);
                if code != RDKafkaErrorCode::LeaderNotAvailable {
                    return Err(self.unavailable(format!("topic `{topic}`: {code}")));
                }
            }
        }
        Ok(())
    }
}

/// `message.timeout.ms` as configured (librdkafka's default 300 s otherwise).
fn self_timeout(cfg: &KafkaConfig) -> Duration {
    let ms = cfg
        .settings
        .get("message.timeout.ms")
        .or_else(|| cfg.settings.get("delivery.timeout.ms"))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(300_000);
    Duration::from_millis(ms)
}

/// Lower-case hex of a 64-bit key or id, fixed width (no allocation: runs per record).
pub(crate) fn hex16(v: u64, out: &mut [u8; 16]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (i, b) in out.iter_mut().enumerate() {
        *b = HEX[((v >> (60 - 4 * i)) & 0xf) as usize];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_fixed_width_hex() {
        let mut k = [0u8; 16];
        hex16(0xab, &mut k);
        assert_eq!(&k, b"00000000000000ab");
        hex16(u64::MAX, &mut k);
        assert_eq!(&k, b"ffffffffffffffff");
    }

    #[test]
    fn librdkafka_validates_settings() {
        let mut settings = KafkaConfig::defaults();
        settings.insert("bootstrap.servers".into(), "127.0.0.1:9".into());
        let mut c = KafkaConfig {
            topic: "t".into(),
            settings,
        };
        assert!(c.validate().is_ok());
        c.settings.insert("compression.type".into(), "zstd".into());
        assert!(c.validate().is_ok());
        c.settings.insert("no.such.setting".into(), "1".into());
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("no.such.setting"), "{e}");
    }
}
