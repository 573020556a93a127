//! `export: es`: its keys, read from upstream's flat `es.*` settings.

use std::sync::Arc;
use std::time::Duration;

use super::{EsConfig, EsTransport};
use crate::config::vault::Secret;
use crate::config::ConfigError;
use crate::exporter::registry::{Ctx, Key, TransportConfig, TransportSpec};
use crate::exporter::{DeliveryConfig, Transport, TransportError};

pub static SPEC: TransportSpec = TransportSpec {
    names: &["es"],
    keys: &[
        Key {
            names: &["es.addresses"],
            default: "— (required)",
            doc: "comma-separated server URLs (`http://` or `https://`); a connection failure moves to the next.",
        },
        Key {
            names: &["es.index"],
            default: "`sysflow`",
            doc: "index name (checked: lower case, no `\\/*?\"<>|`, space, comma or `#`).",
        },
        Key {
            names: &["es.username", "es.password"],
            default: "none",
            doc: "basic authentication (from the vault when `vault.secrets` is true and they are not here, as upstream).",
        },
        Key {
            names: &["es.cafile"],
            default: "system roots",
            doc: "PEM CA file for `https://` servers.",
        },
        Key {
            names: &["es.tls.verify"],
            default: "`true`",
            doc: "`false` skips the server certificate check, with a warning at every start (upstream never checks; here a failed check says so and names `es.cafile` and this key).",
        },
        Key {
            names: &["es.bulk.flushBuffer"],
            default: "`5000000`",
            doc: "largest bulk request body in bytes; a batch is split into several requests to fit.",
        },
        Key {
            names: &["es.bulk.flushTimeout"],
            default: "the exporter's 1 s",
            doc: "upstream's flush interval: a partial bulk waits at most this long (upstream's default is 30 s; here a partial batch goes within 1 s unless this key is set).",
        },
        Key {
            names: &["es.bulk.numWorkers"],
            default: "`0`",
            doc: "bulk requests sent at once (0: one per core, as upstream); a batch is split among them by document id, so one document always goes through one worker.",
        },
    ],
    parse,
};

impl TransportConfig for EsConfig {
    fn kind(&self) -> &'static str {
        "es"
    }

    fn open(&self) -> Result<Box<dyn Transport>, TransportError> {
        Ok(Box::new(EsTransport::new(self.clone())?))
    }

    fn target(&self) -> String {
        let addrs: Vec<String> = self.addresses.iter().map(|u| u.to_string()).collect();
        format!("es {}/{}", addrs.join(","), self.index)
    }

    fn is_network(&self) -> bool {
        true
    }

    fn needs_ids(&self) -> bool {
        true
    }

    /// A bulk waits for its per-item results before the next is sent (as Kafka).
    fn default_buffer(&self) -> Option<usize> {
        Some(5_000)
    }

    fn default_linger(&self) -> Duration {
        Duration::from_millis(5)
    }

    /// Upstream's bulk flush interval: a partial bulk waits at most this long. Without it,
    /// the exporter's own idle flush (1 s) applies, not upstream's 30 s.
    fn delivery(&self, ctx: &Ctx, d: &mut DeliveryConfig) -> Result<(), ConfigError> {
        if ctx.st.get("es.bulk.flushTimeout").is_some() {
            d.idle_flush = ctx.cfg.duration(
                ctx.st,
                "es.bulk.flushTimeout",
                d.idle_flush,
                Duration::from_millis(1),
                Duration::from_secs(600),
                false,
            )?;
        }
        Ok(())
    }
}

fn parse(ctx: &mut Ctx) -> Result<Arc<dyn TransportConfig>, ConfigError> {
    let (cfg, st, vault) = (ctx.cfg, ctx.st, ctx.vault);
    let mut c = EsConfig::default();
    let addrs = st.get("es.addresses").unwrap_or("");
    for a in addrs.split(',').map(str::trim).filter(|a| !a.is_empty()) {
        c.addresses.push(
            super::http::Url::parse(a)
                .map_err(|e| cfg.error(st, Some("es.addresses"), e.to_string()))?,
        );
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
            ctx.warnings.push(format!(
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
    c.ca_file = ctx.file("es.cafile")?;
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
    Ok(Arc::new(c))
}
