//! Exporters: configuration, encoders x transports. One folder per transport.

pub mod delivery;
pub mod es;
pub mod file;
mod handoff;
pub mod kafka;
pub mod null;
pub mod syslog;
pub mod terminal;
pub mod tls;

use std::sync::Arc;
use std::time::Duration;

use crate::config::vault::{Secret, Vault};
use crate::config::{ConfigError, PipelineConfig, StageConfig};
pub use delivery::{DeliveryConfig, Payload, WhenFull};
use es::EsConfig;
use kafka::KafkaConfig;
use syslog::{Framing, Proto, SyslogConfig};

/// A transport failed to deliver a batch.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// A local I/O error (file, terminal): not retried.
    #[error("{target}: {source}")]
    Io {
        target: String,
        #[source]
        source: std::io::Error,
    },
    /// The target cannot be reached now (refused, reset, timed out): retried.
    #[error("{target}: {reason}")]
    Unavailable { target: String, reason: String },
    /// The target refused the data, or the data can never be sent: not retried.
    #[error("{target}: {reason}")]
    Rejected { target: String, reason: String },
    /// Part of a batch was acknowledged (`delivered`), part refused for good (`failed`, already
    /// logged by the transport); `rest` can heal and is retried.
    #[error("{target}: {reason}")]
    Partial {
        target: String,
        reason: String,
        delivered: usize,
        failed: usize,
        rest: Box<Payload>,
    },
}

impl TransportError {
    /// Whether trying again later can succeed.
    pub fn retryable(&self) -> bool {
        matches!(
            self,
            TransportError::Unavailable { .. } | TransportError::Partial { .. }
        )
    }
}

/// Where encoded records go. `send` gets newline-terminated records; a batch counts as sent
/// only when `send` returns `Ok`.
pub trait Transport: Send {
    fn send(&mut self, payload: &[u8], records: usize) -> Result<(), TransportError>;
    /// Sends a batch with its per-record keys and ids; transports that use them override this.
    fn send_batch(&mut self, batch: &Payload) -> Result<(), TransportError> {
        self.send(&batch.bytes, batch.records)
    }
    fn flush(&mut self) -> Result<(), TransportError>;
    /// The drain deadline, once the input has ended: an attempt that would block past it (a
    /// target that accepts and never reads, a broker that never reports) should end near it
    /// instead. Transports whose attempts cannot block for long ignore it.
    fn set_deadline(&mut self, _deadline: Option<std::time::Instant>) {}
    /// The run's end-of-input clock and this exporter's drain timeout, for an attempt that
    /// is already blocked when the input ends (a write to a target that stopped reading):
    /// [`Transport::set_deadline`] only reaches the next attempt. Transports whose attempts
    /// cannot block for long ignore it.
    fn set_drain_clock(&mut self, _clock: Arc<crate::shutdown::Shutdown>, _timeout: Duration) {}
    /// Checks the target is usable (what `-test` runs).
    fn healthcheck(&mut self) -> Result<(), TransportError> {
        Ok(())
    }
    /// The exporter's live statistics, for a transport that learns its target's state
    /// outside of delivery attempts (librdkafka's broker states): it reports it there, and
    /// readiness follows it. Others ignore it.
    fn watch(&mut self, _stats: Arc<crate::stats::ExporterStats>) {}
    /// How often the delivery worker calls [`Transport::tick`] while it has nothing to send
    /// (`None`: never).
    fn tick_interval(&self) -> Option<Duration> {
        None
    }
    /// Housekeeping between batches (serving librdkafka's callbacks).
    fn tick(&mut self) {}
    /// Whether a send completes at once and can neither wait nor fail (the null transport):
    /// such a transport is driven on the exporter node's thread, without a delivery worker
    /// to wake for every batch.
    fn inline(&self) -> bool {
        false
    }
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    /// Elastic Common Schema documents.
    Ecs,
}

/// Transports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Export {
    Terminal,
    File { path: String },
    Null,
    Syslog(SyslogConfig),
    Kafka(KafkaConfig),
    Es(EsConfig),
}

/// A validated exporter stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExporterConfig {
    pub export: Export,
    pub format: Format,
    /// Batching, queueing and retries (`buffer`, `when_full`, `retry.*`).
    pub delivery: DeliveryConfig,
}

/// Keys an exporter stage understands in this build.
pub const KNOWN_KEYS: &[&str] = &[
    "export",
    "format",
    "buffer",
    "buffer.bytes",
    "linger",
    "when_full",
    "queue",
    "queue.type",
    "queue.path",
    "queue.maxbytes",
    "queue.sync",
    "retry.backoff",
    "retry.backoff.max",
    "retry.drain_timeout",
    "file.path",
    "syslog.proto",
    "syslog.host",
    "syslog.port",
    "syslog.tag",
    "syslog.source",
    "syslog.framing",
    "syslog.cafile",
    "kafka.*",
    "es.addresses",
    "es.index",
    "es.username",
    "es.password",
    "es.cafile",
    "es.bulk.numworkers",
    "es.bulk.flushbuffer",
    "es.bulk.flushtimeout",
    "es.tls.verify",
    "vault.secrets",
    "vault.path",
    "vault.encoding",
    // Upstream 0.7.0 reads none of these (its Findings exporter is gone); warned, not errors.
    "findings.*",
];

fn syslog_config(cfg: &PipelineConfig, st: &StageConfig) -> Result<SyslogConfig, ConfigError> {
    let mut c = SyslogConfig::default();
    if let Some(v) = st.get("syslog.proto") {
        c.proto = match v.trim().to_ascii_lowercase().as_str() {
            "udp" => Proto::Udp,
            "tcp" | "" => Proto::Tcp,
            "tls" | "tcp+tls" => Proto::Tls,
            other => {
                return Err(cfg.error(
                    st,
                    Some("syslog.proto"),
                    format!("unknown protocol `{other}` (expected udp, tcp or tls)"),
                ))
            }
        };
    }
    if let Some(v) = st.get("syslog.host") {
        if v.trim().is_empty() {
            return Err(cfg.error(st, Some("syslog.host"), "must not be empty".into()));
        }
        c.host = v.trim().to_string();
    }
    if let Some(v) = st.get("syslog.port") {
        c.port = v
            .trim()
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| {
                cfg.error(
                    st,
                    Some("syslog.port"),
                    format!("`{v}` is not a port number (1-65535)"),
                )
            })?;
    }
    if let Some(v) = st.get("syslog.tag") {
        c.tag = v.to_string();
    }
    if let Some(v) = st.get("syslog.source") {
        c.source = v.trim().to_string();
    }
    if let Some(v) = st.get("syslog.framing") {
        c.framing = match v.trim().to_ascii_lowercase().as_str() {
            "" | "newline" | "lf" => Framing::Newline,
            "octet-counting" | "octet_counting" | "octets" => Framing::OctetCounting,
            other => {
                return Err(cfg.error(
                    st,
                    Some("syslog.framing"),
                    format!("unknown framing `{other}` (expected newline or octet-counting)"),
                ))
            }
        };
    }
    if let Some(v) = st
        .get("syslog.cafile")
        .map(str::trim)
        .filter(|v| !v.is_empty())
    {
        if !std::path::Path::new(v).is_file() {
            return Err(cfg.error(
                st,
                Some("syslog.cafile"),
                format!("`{v}` is not a readable file"),
            ));
        }
        c.ca_file = Some(v.to_string());
    }
    Ok(c)
}

/// `kafka.config` (a JSON object, as upstream) and flat `kafka.<setting>` keys, over our
/// defaults. Every setting is checked by librdkafka now, so `-test` reports a misspelt one.
fn kafka_config(
    cfg: &PipelineConfig,
    st: &StageConfig,
    vault: Option<&Vault>,
) -> Result<KafkaConfig, ConfigError> {
    let mut settings = std::collections::BTreeMap::new();
    if let Some(text) = st
        .get("kafka.config")
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        let v: serde_json::Value = serde_json::from_str(text).map_err(|e| {
            cfg.error(
                st,
                Some("kafka.config"),
                format!("must be a JSON object of librdkafka settings ({e})"),
            )
        })?;
        let serde_json::Value::Object(map) = v else {
            return Err(cfg.error(
                st,
                Some("kafka.config"),
                "must be a JSON object of librdkafka settings".into(),
            ));
        };
        for (k, v) in map {
            let v = match v {
                serde_json::Value::String(s) => s,
                serde_json::Value::Number(n) => n.to_string(),
                serde_json::Value::Bool(b) => b.to_string(),
                other => {
                    return Err(cfg.error(
                        st,
                        Some("kafka.config"),
                        format!("setting `{k}`: `{other}` is not a string, number or boolean"),
                    ))
                }
            };
            settings.insert(k, v);
        }
    }
    for s in st.settings.values() {
        let key = s.key.to_ascii_lowercase();
        let Some(name) = key.strip_prefix("kafka.") else {
            continue;
        };
        match name {
            "config" | "topic" => {}
            "encoding" => {
                if !s.value.trim().eq_ignore_ascii_case("json") {
                    return Err(cfg.error(
                        st,
                        Some("kafka.encoding"),
                        format!(
                            "`{}` is not supported (proto belongs to the otel format, which this build does not have; use json)",
                            s.value.trim()
                        ),
                    ));
                }
            }
            "brokers" => {
                settings.insert("bootstrap.servers".into(), s.value.trim().to_string());
            }
            _ => {
                settings.insert(name.to_string(), s.value.trim().to_string());
            }
        }
    }
    // The user's settings win over our defaults; `delivery.timeout.ms` is librdkafka's alias
    // of `message.timeout.ms`, so our default for the one must not override the other.
    let user_timeout = ["message.timeout.ms", "delivery.timeout.ms"]
        .into_iter()
        .find(|k| settings.contains_key(*k));
    for (k, v) in KafkaConfig::defaults() {
        if k == "message.timeout.ms" && user_timeout.is_some() {
            continue;
        }
        settings.entry(k).or_insert(v);
    }
    if let Some(k) = user_timeout {
        if settings.get(k).is_some_and(|v| v.trim() == "0") {
            return Err(cfg.error(
                st,
                Some("kafka.config"),
                format!("`{k}` 0 (wait forever) is not supported: every message needs a delivery report in bounded time; failed messages are retried by the exporter (retry.*)"),
            ));
        }
    }
    // Secrets upstream's vault does not cover, read the same way when this stage has one:
    // the SASL password when SASL is on, the key password when a key file is named.
    if let Some(v) = vault {
        let protocol = settings
            .get("security.protocol")
            .map(|p| p.to_ascii_lowercase())
            .unwrap_or_default();
        if protocol.starts_with("sasl") && !settings.contains_key("sasl.password") {
            let s = v.read(cfg, st, "kafka.sasl.password")?;
            settings.insert("sasl.password".into(), s.expose().to_string());
        }
        if settings.contains_key("ssl.key.location") && !settings.contains_key("ssl.key.password") {
            let s = v.read(cfg, st, "kafka.ssl.key.password")?;
            settings.insert("ssl.key.password".into(), s.expose().to_string());
        }
    }
    if settings
        .get("bootstrap.servers")
        .is_none_or(|b| b.trim().is_empty())
    {
        return Err(cfg.error(
            st,
            Some("kafka.config"),
            "no brokers: set `bootstrap.servers` in kafka.config (or kafka.bootstrap.servers)"
                .into(),
        ));
    }
    let topic = st.get("kafka.topic").map(str::trim).unwrap_or("");
    if topic.is_empty() {
        return Err(cfg.error(
            st,
            Some("kafka.topic"),
            "missing: the topic to write to".into(),
        ));
    }
    let c = KafkaConfig {
        topic: topic.to_string(),
        settings,
    };
    c.validate()
        .map_err(|e| cfg.error(st, Some("kafka.config"), format!("librdkafka: {e}")))?;
    Ok(c)
}

fn es_config(
    cfg: &PipelineConfig,
    st: &StageConfig,
    vault: Option<&Vault>,
    warnings: &mut Vec<String>,
) -> Result<EsConfig, ConfigError> {
    let mut c = EsConfig::default();
    let addrs = st.get("es.addresses").unwrap_or("");
    for a in addrs.split(',').map(str::trim).filter(|a| !a.is_empty()) {
        c.addresses
            .push(es::http::Url::parse(a).map_err(|e| cfg.error(st, Some("es.addresses"), e))?);
    }
    if c.addresses.is_empty() {
        return Err(cfg.error(
            st,
            Some("es.addresses"),
            "missing: a comma-separated list of server URLs".into(),
        ));
    }
    if let Some(v) = st.get("es.index").map(str::trim).filter(|v| !v.is_empty()) {
        if v.chars()
            .any(|c| c.is_ascii_uppercase() || "\\/*?\"<>| ,#".contains(c))
        {
            return Err(cfg.error(
                st,
                Some("es.index"),
                format!("`{v}` is not a valid index name (lower case, none of \\/*?\"<>| ,#)"),
            ));
        }
        c.index = v.to_string();
    }
    // As upstream: with a vault, credentials missing from the configuration come from it.
    c.username = match (st.get("es.username"), vault) {
        (Some(u), _) => Some(Secret::new(u)),
        (None, Some(v)) => Some(v.read(cfg, st, "es.username")?),
        (None, None) => None,
    }
    .filter(|u| !u.is_empty());
    c.password = match (st.get("es.password"), vault) {
        (Some(p), _) => Some(Secret::new(p)),
        (None, Some(v)) => Some(v.read(cfg, st, "es.password")?),
        (None, None) => None,
    };
    match st
        .get("es.tls.verify")
        .map(|v| v.trim().to_ascii_lowercase())
        .as_deref()
    {
        None | Some("" | "true" | "on" | "yes" | "1") => {}
        Some("false" | "off" | "no" | "0") => {
            c.verify = false;
            warnings.push(format!(
                "{}: pipeline[{}] (exporter): es.tls.verify is false: the Elasticsearch server's certificate is not checked, so alerts and credentials go to whoever answers at {}",
                cfg.file.display(),
                st.index,
                st.get("es.addresses").unwrap_or_default()
            ));
        }
        Some(other) => {
            return Err(cfg.error(
                st,
                Some("es.tls.verify"),
                format!("`{other}` is not true or false"),
            ))
        }
    }
    if let Some(v) = st.get("es.cafile").map(str::trim).filter(|v| !v.is_empty()) {
        if !std::path::Path::new(v).is_file() {
            return Err(cfg.error(
                st,
                Some("es.cafile"),
                format!("`{v}` is not a readable file"),
            ));
        }
        c.ca_file = Some(v.to_string());
    }
    c.max_request_bytes = cfg.bytes(
        st,
        "es.bulk.flushBuffer",
        c.max_request_bytes as u64,
        1 << 10,
        256 << 20,
    )? as usize;
    // Upstream's 0 (its default) is one worker per core.
    let workers = cfg.count(st, "es.bulk.numWorkers", 0, 0, 64)? as usize;
    c.workers = match workers {
        0 => std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        n => n,
    };
    Ok(c)
}

/// Records per batch when `buffer` is not set. A Kafka or Elasticsearch batch waits for its
/// acknowledgements before the next is sent, so small batches would leave the target idle for
/// a round trip each; 10,000 keeps Kafka at the rate of a bare producer (docs/performance.md).
/// The 1 s idle flush bounds the latency either way.
fn default_buffer(export: &Export, base: usize) -> usize {
    match export {
        Export::Kafka(_) => 10_000,
        Export::Es(_) => 5_000,
        _ => base,
    }
}

/// `linger` when not set: none for the transports whose batch is what arrives (the socket
/// driver already gathers a latency budget's worth of records, and a wait here would only add
/// to the alert's latency and wake the worker once more per batch); 5 ms for Kafka and
/// Elasticsearch, whose batches wait for acknowledgements and gain from being fuller.
fn default_linger(export: &Export) -> Duration {
    match export {
        Export::Kafka(_) | Export::Es(_) => Duration::from_millis(5),
        _ => Duration::ZERO,
    }
}

/// Upper bounds of the delivery settings: beyond them a value is a mistake, not a tuning.
const MAX_BUFFER_RECORDS: u64 = 1_000_000;
const MAX_BUFFER_BYTES: u64 = 256 << 20;
const MAX_QUEUE: u64 = 256;
const MAX_BACKOFF: Duration = Duration::from_secs(600);
const MAX_BACKOFF_CAP: Duration = Duration::from_secs(3600);
const MAX_DRAIN: Duration = Duration::from_secs(3600);

/// `buffer`, `buffer.bytes`, `when_full`, `queue`, `retry.*`, range-checked.
fn delivery_config(
    cfg: &PipelineConfig,
    st: &StageConfig,
    export: &Export,
) -> Result<DeliveryConfig, ConfigError> {
    let d = DeliveryConfig::default();
    let when_full = match cfg.choice(
        st,
        "when_full",
        "block",
        &["block", "drop_newest", "drop-newest"],
    )? {
        "block" => WhenFull::Block,
        _ => WhenFull::DropNewest,
    };
    let backoff_initial = cfg.duration(
        st,
        "retry.backoff",
        d.backoff_initial,
        Duration::ZERO,
        MAX_BACKOFF,
        false,
    )?;
    let backoff_max = cfg.duration(
        st,
        "retry.backoff.max",
        d.backoff_max.max(backoff_initial),
        Duration::ZERO,
        MAX_BACKOFF_CAP,
        false,
    )?;
    if backoff_max < backoff_initial {
        return Err(cfg.error(
            st,
            Some("retry.backoff.max"),
            format!(
                "`{}` is below retry.backoff (`{}`): the cap must be at least the first delay",
                humantime::format_duration(backoff_max),
                humantime::format_duration(backoff_initial)
            ),
        ));
    }
    Ok(DeliveryConfig {
        buffer: cfg.count(
            st,
            "buffer",
            default_buffer(export, d.buffer) as u64,
            0,
            MAX_BUFFER_RECORDS,
        )? as usize,
        buffer_bytes: cfg.bytes(
            st,
            "buffer.bytes",
            d.buffer_bytes as u64,
            64 << 10,
            MAX_BUFFER_BYTES,
        )? as usize,
        idle_flush: d.idle_flush,
        linger: cfg.duration(
            st,
            "linger",
            default_linger(export),
            Duration::ZERO,
            Duration::from_secs(1),
            false,
        )?,
        when_full,
        queue: cfg.count(st, "queue", d.queue as u64, 1, MAX_QUEUE)? as usize,
        backoff_initial,
        backoff_max,
        drain_timeout: cfg.duration(
            st,
            "retry.drain_timeout",
            d.drain_timeout,
            Duration::ZERO,
            MAX_DRAIN,
            false,
        )?,
        disk: disk_queue_config(cfg, st)?,
    })
}

/// `queue.type`, `queue.path`, `queue.maxbytes`, `queue.sync` (docs/operations.md, "Disk
/// queue").
fn disk_queue_config(
    cfg: &PipelineConfig,
    st: &StageConfig,
) -> Result<Option<crate::queue::QueueConfig>, ConfigError> {
    use crate::queue::{QueueConfig, SyncPolicy};
    let disk = cfg.choice(st, "queue.type", "memory", &["memory", "disk"])? == "disk";
    let path = st.get("queue.path").map(str::trim).unwrap_or("");
    if !disk {
        for k in ["queue.path", "queue.maxbytes", "queue.sync"] {
            if st.get(k).is_some() {
                return Err(cfg.error(
                    st,
                    Some(k),
                    "applies to a disk queue only: set `queue.type` to `disk` (or remove it)"
                        .into(),
                ));
            }
        }
        return Ok(None);
    }
    if path.is_empty() {
        return Err(cfg.error(
            st,
            Some("queue.path"),
            "missing: `queue.type: disk` needs a directory for its segment files".into(),
        ));
    }
    let p = std::path::Path::new(path);
    if p.exists() && !p.is_dir() {
        return Err(cfg.error(
            st,
            Some("queue.path"),
            format!("`{path}` exists and is not a directory"),
        ));
    }
    let maxbytes = cfg.bytes(
        st,
        "queue.maxbytes",
        QueueConfig::DEFAULT_MAXBYTES,
        1 << 20,
        1 << 50,
    )?;
    let sync = match st.get("queue.sync").map(str::trim) {
        None | Some("") => QueueConfig::DEFAULT_SYNC,
        Some(v) if v.eq_ignore_ascii_case("always") || v.eq_ignore_ascii_case("batch") => {
            SyncPolicy::Always
        }
        Some(v) if v.eq_ignore_ascii_case("never") => SyncPolicy::Never,
        Some(_) => SyncPolicy::Every(cfg.duration(
            st,
            "queue.sync",
            Duration::from_secs(1),
            Duration::from_millis(1),
            Duration::from_secs(3600),
            false,
        )?),
    };
    Ok(Some(QueueConfig {
        path: p.to_path_buf(),
        maxbytes,
        sync,
    }))
}

/// `file.path` must name a file in an existing directory: found now (exit 2 at validation)
/// rather than when the exporter opens it mid-run.
fn check_file_path(cfg: &PipelineConfig, st: &StageConfig, path: &str) -> Result<(), ConfigError> {
    if path.trim().is_empty() {
        return Err(cfg.error(st, Some("file.path"), "must not be empty".into()));
    }
    let p = std::path::Path::new(path);
    if p.is_dir() {
        return Err(cfg.error(
            st,
            Some("file.path"),
            format!("`{path}` is a directory (expected a file to append to)"),
        ));
    }
    let parent = match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."),
    };
    if !parent.is_dir() {
        return Err(cfg.error(
            st,
            Some("file.path"),
            format!(
                "the directory `{}` does not exist (the exporter does not create it)",
                parent.display()
            ),
        ));
    }
    Ok(())
}

impl ExporterConfig {
    /// Validates an exporter stage; what upstream only tolerates goes to `warnings`.
    pub fn from_stage(
        cfg: &PipelineConfig,
        st: &StageConfig,
        warnings: &mut Vec<String>,
    ) -> Result<Self, ConfigError> {
        let vault = Vault::of(cfg, st)?;
        if let Some(s) = st
            .settings
            .values()
            .find(|s| s.key.to_ascii_lowercase().starts_with("findings."))
        {
            warnings.push(format!(
                "{}: pipeline[{}] (exporter): key `{}` (and the other findings.* keys) is ignored: upstream 0.7.0 reads none of them (its IBM Findings exporter was removed); this stage runs as `export: {}`",
                cfg.file.display(),
                st.index,
                s.key,
                st.get("export").unwrap_or("terminal")
            ));
        }
        let export = match st.get("export").unwrap_or("terminal").to_ascii_lowercase().as_str() {
            "terminal" | "" => Export::Terminal,
            "null" => Export::Null,
            "file" => Export::File {
                path: st.get("file.path").unwrap_or("./export.out").to_string(),
            },
            "syslog" => Export::Syslog(syslog_config(cfg, st)?),
            "kafka" => Export::Kafka(kafka_config(cfg, st, vault.as_ref())?),
            "es" => Export::Es(es_config(cfg, st, vault.as_ref(), warnings)?),
            other @ ("findings" | "otel") => {
                return Err(cfg.error(
                    st,
                    Some("export"),
                    format!("the `{other}` exporter is not supported by this build (supported: terminal, file, null, syslog, kafka, es)"),
                ))
            }
            other => {
                return Err(cfg.error(
                    st,
                    Some("export"),
                    format!("unknown exporter `{other}` (expected terminal, file, null, syslog, kafka or es)"),
                ))
            }
        };
        let format = match st
            .get("format")
            .unwrap_or("json")
            .to_ascii_lowercase()
            .as_str()
        {
            "json" | "" => Format::Json,
            "ecs" => Format::Ecs,
            other @ ("otel" | "occurrence") => {
                return Err(cfg.error(
                    st,
                    Some("format"),
                    format!(
                    "the `{other}` format is not supported by this build (supported: json, ecs)"
                ),
                ))
            }
            other => {
                return Err(cfg.error(
                    st,
                    Some("format"),
                    format!("unknown format `{other}` (expected json or ecs)"),
                ))
            }
        };
        let mut delivery = delivery_config(cfg, st, &export)?;
        if let Export::Es(_) = &export {
            // Upstream's bulk flush interval: a partial bulk waits at most this long. Without
            // it, the exporter's own idle flush (1 s) applies, not upstream's 30 s.
            if st.get("es.bulk.flushTimeout").is_some() {
                delivery.idle_flush = cfg.duration(
                    st,
                    "es.bulk.flushTimeout",
                    delivery.idle_flush,
                    Duration::from_millis(1),
                    Duration::from_secs(600),
                    false,
                )?;
            }
        }
        if let Export::File { path } = &export {
            check_file_path(cfg, st, path)?;
        }
        Ok(ExporterConfig {
            export,
            format,
            delivery,
        })
    }

    /// Opens the transport.
    pub fn open(&self) -> Result<Box<dyn Transport>, TransportError> {
        Ok(match &self.export {
            Export::Terminal => Box::new(terminal::TerminalTransport::new()),
            Export::Null => Box::new(null::NullTransport::default()),
            Export::File { path } => Box::new(file::FileTransport::open(path)?),
            Export::Syslog(c) => Box::new(syslog::SyslogTransport::new(c.clone())),
            Export::Kafka(c) => Box::new(kafka::KafkaTransport::new(c.clone())),
            Export::Es(c) => Box::new(es::EsTransport::new(c.clone())?),
        })
    }

    /// The transport's name (`export` value), a metrics label.
    pub fn kind(&self) -> &'static str {
        match self.export {
            Export::Terminal => "terminal",
            Export::File { .. } => "file",
            Export::Null => "null",
            Export::Syslog(_) => "syslog",
            Export::Kafka(_) => "kafka",
            Export::Es(_) => "es",
        }
    }

    /// Whether the transport talks to a network peer (what `-test` checks).
    pub fn is_network(&self) -> bool {
        matches!(
            self.export,
            Export::Syslog(_) | Export::Kafka(_) | Export::Es(_)
        )
    }

    /// Whether records need partition keys (one process, one partition).
    pub fn needs_keys(&self) -> bool {
        matches!(self.export, Export::Kafka(_))
    }

    /// Whether records need document ids.
    pub fn needs_ids(&self) -> bool {
        matches!(self.export, Export::Es(_))
    }

    /// A name for logs and messages (`file ./out.json`, `syslog tcp://host:514`, ...).
    pub fn target(&self) -> String {
        match &self.export {
            Export::Terminal => "terminal".into(),
            Export::Null => "null".into(),
            Export::File { path } => format!("file {path}"),
            Export::Syslog(c) => format!(
                "syslog {}://{}:{}",
                match c.proto {
                    Proto::Udp => "udp",
                    Proto::Tcp => "tcp",
                    Proto::Tls => "tls",
                },
                c.host,
                c.port
            ),
            Export::Kafka(c) => format!("kafka {}/{}", c.brokers(), c.topic),
            Export::Es(c) => format!(
                "es {}/{}",
                c.addresses
                    .iter()
                    .map(|u| u.to_string())
                    .collect::<Vec<_>>()
                    .join(","),
                c.index
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kafka(settings: &str) -> Result<KafkaConfig, ConfigError> {
        let text = format!(
            r#"{{"pipeline":[{{"processor":"exporter","in":"a eventchan","export":"kafka","kafka.topic":"t","kafka.config":{{"bootstrap.servers":"127.0.0.1:9"{settings}}}}}]}}"#
        );
        let cfg = PipelineConfig::parse(&text, "k.json", &[]).expect("parses");
        kafka_config(&cfg, &cfg.stages[0], None)
    }

    #[test]
    fn kafka_defaults_yield_to_the_users_settings_and_their_aliases() {
        let c = kafka("").unwrap();
        assert_eq!(c.settings["message.timeout.ms"], "30000");
        assert_eq!(c.settings["acks"], "all");
        let c = kafka(r#","acks":"1","delivery.timeout.ms":"5000""#).unwrap();
        assert_eq!(c.settings["acks"], "1");
        assert_eq!(c.settings["delivery.timeout.ms"], "5000");
        assert!(!c.settings.contains_key("message.timeout.ms"));
        for zero in ["message.timeout.ms", "delivery.timeout.ms"] {
            let e = kafka(&format!(r#","{zero}":0"#)).unwrap_err().to_string();
            assert!(e.contains(&format!("`{zero}` 0")), "{e}");
        }
    }
}
