//! Exporters: configuration, encoders x transports. One folder per transport.

pub mod delivery;
pub mod file;
pub mod null;
pub mod syslog;
pub mod terminal;

use std::time::Duration;

use crate::config::{ConfigError, PipelineConfig, StageConfig};
pub use delivery::{DeliveryConfig, WhenFull};
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
}

impl TransportError {
    /// Whether trying again later can succeed.
    pub fn retryable(&self) -> bool {
        matches!(self, TransportError::Unavailable { .. })
    }
}

/// Where encoded records go. `send` gets newline-terminated records; a batch counts as sent
/// only when `send` returns `Ok`.
pub trait Transport: Send {
    fn send(&mut self, payload: &[u8], records: usize) -> Result<(), TransportError>;
    fn flush(&mut self) -> Result<(), TransportError>;
    /// Checks the target is usable (what `-test` runs).
    fn healthcheck(&mut self) -> Result<(), TransportError> {
        Ok(())
    }
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
}

/// Transports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Export {
    Terminal,
    File { path: String },
    Null,
    Syslog(SyslogConfig),
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
    "when_full",
    "queue",
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
];

fn duration_key(
    cfg: &PipelineConfig,
    st: &StageConfig,
    key: &str,
    default: Duration,
) -> Result<Duration, ConfigError> {
    match st.get(key).map(str::trim) {
        None | Some("") => Ok(default),
        Some(v) => humantime::parse_duration(v).map_err(|e| {
            cfg.error(
                st,
                Some(key),
                format!("`{v}` is not a duration ({e}; e.g. 500ms, 2s, 1m)"),
            )
        }),
    }
}

fn count_key(
    cfg: &PipelineConfig,
    st: &StageConfig,
    key: &str,
    default: usize,
) -> Result<usize, ConfigError> {
    match st.get(key).map(str::trim) {
        None | Some("") => Ok(default),
        Some(v) => v.parse::<usize>().map_err(|_| {
            cfg.error(
                st,
                Some(key),
                format!("`{v}` is not a non-negative whole number"),
            )
        }),
    }
}

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

impl ExporterConfig {
    pub fn from_stage(cfg: &PipelineConfig, st: &StageConfig) -> Result<Self, ConfigError> {
        let export = match st.get("export").unwrap_or("terminal").to_ascii_lowercase().as_str() {
            "terminal" | "" => Export::Terminal,
            "null" => Export::Null,
            "file" => Export::File {
                path: st.get("file.path").unwrap_or("./export.out").to_string(),
            },
            "syslog" => Export::Syslog(syslog_config(cfg, st)?),
            other @ ("kafka" | "es" | "findings" | "otel") => {
                return Err(cfg.error(
                    st,
                    Some("export"),
                    format!("the `{other}` exporter is not available in this build yet (supported: terminal, file, null, syslog)"),
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
            other @ ("ecs" | "otel" | "occurrence") => {
                return Err(cfg.error(
                    st,
                    Some("format"),
                    format!(
                        "the `{other}` format is not available in this build yet (supported: json)"
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
        let d = DeliveryConfig::default();
        let when_full = match st.get("when_full").map(|v| v.trim().to_ascii_lowercase()) {
            None => d.when_full,
            Some(v) => match v.as_str() {
                "" | "block" => WhenFull::Block,
                "drop_newest" | "drop-newest" => WhenFull::DropNewest,
                other => {
                    return Err(cfg.error(
                        st,
                        Some("when_full"),
                        format!("unknown value `{other}` (expected block or drop_newest)"),
                    ))
                }
            },
        };
        let delivery = DeliveryConfig {
            buffer: count_key(cfg, st, "buffer", d.buffer)?,
            idle_flush: d.idle_flush,
            when_full,
            queue: count_key(cfg, st, "queue", d.queue)?.max(1),
            backoff_initial: duration_key(cfg, st, "retry.backoff", d.backoff_initial)?,
            backoff_max: duration_key(cfg, st, "retry.backoff.max", d.backoff_max)?,
            drain_timeout: duration_key(cfg, st, "retry.drain_timeout", d.drain_timeout)?,
        };
        if let Export::File { path } = &export {
            if path.is_empty() {
                return Err(cfg.error(st, Some("file.path"), "must not be empty".into()));
            }
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
        })
    }

    /// Whether the transport talks to a network peer (what `-test` checks).
    pub fn is_network(&self) -> bool {
        matches!(self.export, Export::Syslog(_))
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
        }
    }
}
