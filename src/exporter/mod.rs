//! Exporters: configuration, encoders x transports. One folder per transport.

pub mod file;
pub mod null;
pub mod terminal;

use crate::config::{ConfigError, PipelineConfig, StageConfig};

/// A transport failed to deliver a batch.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("{target}: {source}")]
    Io {
        target: String,
        #[source]
        source: std::io::Error,
    },
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
}

/// A validated exporter stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExporterConfig {
    pub export: Export,
    pub format: Format,
    /// Records per batch handed to the transport (upstream's `buffer`; 0 = per input batch).
    pub buffer: usize,
}

/// Keys an exporter stage understands in this build.
pub const KNOWN_KEYS: &[&str] = &["export", "format", "buffer", "file.path"];

impl ExporterConfig {
    pub fn from_stage(cfg: &PipelineConfig, st: &StageConfig) -> Result<Self, ConfigError> {
        let export = match st.get("export").unwrap_or("terminal").to_ascii_lowercase().as_str() {
            "terminal" | "" => Export::Terminal,
            "null" => Export::Null,
            "file" => Export::File {
                path: st.get("file.path").unwrap_or("./export.out").to_string(),
            },
            other @ ("syslog" | "kafka" | "es" | "findings" | "otel") => {
                return Err(cfg.error(
                    st,
                    Some("export"),
                    format!("the `{other}` exporter is not available in this build yet (supported: terminal, file, null)"),
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
        let buffer = match st.get("buffer") {
            None | Some("") => 0,
            Some(v) => v.trim().parse::<usize>().map_err(|_| {
                cfg.error(
                    st,
                    Some("buffer"),
                    format!("`{v}` is not a non-negative whole number"),
                )
            })?,
        };
        if let Export::File { path } = &export {
            if path.is_empty() {
                return Err(cfg.error(st, Some("file.path"), "must not be empty".into()));
            }
        }
        Ok(ExporterConfig {
            export,
            format,
            buffer,
        })
    }

    /// Opens the transport.
    pub fn open(&self) -> Result<Box<dyn Transport>, TransportError> {
        Ok(match &self.export {
            Export::Terminal => Box::new(terminal::TerminalTransport::new()),
            Export::Null => Box::new(null::NullTransport::default()),
            Export::File { path } => Box::new(file::FileTransport::open(path)?),
        })
    }
}
