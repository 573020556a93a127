//! An exporter stage's configuration: the transport's own keys (read by the transport named
//! in the registry), the format, and the delivery keys every transport shares.

use std::sync::Arc;
use std::time::Duration;

use super::delivery::{DeliveryConfig, WhenFull};
use super::registry::{self, Ctx, FormatSpec, TransportConfig};
use super::{Transport, TransportError};
use crate::config::vault::Vault;
use crate::config::{ConfigError, PipelineConfig, StageConfig};

/// A validated exporter stage.
#[derive(Clone)]
pub struct ExporterConfig {
    /// The transport's validated keys.
    pub transport: Arc<dyn TransportConfig>,
    /// The output format.
    pub format: &'static FormatSpec,
    /// Batching, queueing and retries (`buffer`, `when_full`, `retry.*`).
    pub delivery: DeliveryConfig,
}

impl std::fmt::Debug for ExporterConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExporterConfig")
            .field("transport", &self.transport)
            .field("format", &self.format.names[0])
            .field("delivery", &self.delivery)
            .finish()
    }
}

/// Two stages are the same when they write the same format the same way to the same target.
impl PartialEq for ExporterConfig {
    fn eq(&self, other: &Self) -> bool {
        format!("{:?}", self.transport) == format!("{:?}", other.transport)
            && std::ptr::eq(self.format, other.format)
            && self.delivery == other.delivery
    }
}

impl Eq for ExporterConfig {}

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
    export: &dyn TransportConfig,
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
            export.default_buffer().unwrap_or(d.buffer) as u64,
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
            export.default_linger(),
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

impl ExporterConfig {
    /// Validates an exporter stage; what upstream only tolerates goes to `warnings`.
    pub fn from_stage(
        cfg: &PipelineConfig,
        st: &StageConfig,
        warnings: &mut Vec<String>,
    ) -> Result<Self, ConfigError> {
        let vault = Vault::of(cfg, st)?;
        let export = st.get("export").unwrap_or("terminal").trim();
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
                export
            ));
        }
        let Some(spec) = registry::transport(export) else {
            let names = registry::expected(registry::transport_names());
            let other = export.to_ascii_lowercase();
            let msg = if registry::UNSUPPORTED_TRANSPORTS.contains(&other.as_str()) {
                format!(
                    "the `{other}` exporter is not supported by this build (supported: {names})"
                )
            } else {
                format!("unknown exporter `{other}` (expected {names})")
            };
            return Err(cfg.error(st, Some("export"), msg));
        };
        let mut ctx = Ctx {
            cfg,
            st,
            vault: vault.as_ref(),
            warnings,
        };
        let transport = (spec.parse)(&mut ctx)?;
        let name = st.get("format").unwrap_or("json").trim();
        let Some(format) = registry::format(name) else {
            let names = registry::expected(registry::format_names());
            let other = name.to_ascii_lowercase();
            let msg = if registry::UNSUPPORTED_FORMATS.contains(&other.as_str()) {
                format!("the `{other}` format is not supported by this build (supported: {names})")
            } else {
                format!("unknown format `{other}` (expected {names})")
            };
            return Err(cfg.error(st, Some("format"), msg));
        };
        let mut delivery = delivery_config(cfg, st, transport.as_ref())?;
        transport.delivery(&ctx, &mut delivery)?;
        Ok(ExporterConfig {
            transport,
            format,
            delivery,
        })
    }

    /// Opens the transport.
    pub fn open(&self) -> Result<Box<dyn Transport>, TransportError> {
        self.transport.open()
    }

    /// The transport's name (`export` value), a metrics label.
    pub fn kind(&self) -> &'static str {
        self.transport.kind()
    }

    /// Whether the transport talks to a network peer (what `-test` checks).
    pub fn is_network(&self) -> bool {
        self.transport.is_network()
    }

    /// Whether records need partition keys (one process, one partition).
    pub fn needs_keys(&self) -> bool {
        self.transport.needs_keys()
    }

    /// Whether records need document ids.
    pub fn needs_ids(&self) -> bool {
        self.transport.needs_ids()
    }

    /// A name for logs and messages (`file ./out.json`, `syslog tcp://host:514`, ...).
    pub fn target(&self) -> String {
        self.transport.target()
    }
}
