//! `export: syslog`: its keys, read from upstream's flat `syslog.*` settings.

use std::sync::Arc;

use super::{Framing, Proto, SyslogConfig, SyslogTransport};
use crate::config::ConfigError;
use crate::exporter::registry::{Ctx, Key, TransportConfig, TransportSpec};
use crate::exporter::{Transport, TransportError};

pub static SPEC: TransportSpec = TransportSpec {
    names: &["syslog"],
    keys: &[
        Key {
            names: &["syslog.proto"],
            default: "`tcp`",
            doc: "`udp`, `tcp` or `tls` (`tcp+tls` accepted).",
        },
        Key {
            names: &["syslog.host"],
            default: "`localhost`",
            doc: "server address.",
        },
        Key {
            names: &["syslog.port"],
            default: "`514`",
            doc: "server port.",
        },
        Key {
            names: &["syslog.tag"],
            default: "`sysflow`",
            doc: "written in the MSGID field, as upstream.",
        },
        Key {
            names: &["syslog.source"],
            default: "the host name (gethostname)",
            doc: "HOSTNAME field.",
        },
        Key {
            names: &["syslog.framing"],
            default: "`newline`",
            doc: "TCP/TLS framing: `newline` (as upstream) or `octet-counting` (RFC 6587).",
        },
        Key {
            names: &["syslog.cafile"],
            default: "system roots",
            doc: "PEM file of the CA that signed the server's certificate (TLS). The certificate and the host name are always verified.",
        },
    ],
    parse,
};

impl TransportConfig for SyslogConfig {
    fn kind(&self) -> &'static str {
        "syslog"
    }

    fn open(&self) -> Result<Box<dyn Transport>, TransportError> {
        Ok(Box::new(SyslogTransport::new(self.clone())))
    }

    fn target(&self) -> String {
        let proto = match self.proto {
            Proto::Udp => "udp",
            Proto::Tcp => "tcp",
            Proto::Tls => "tls",
        };
        format!("syslog {proto}://{}:{}", self.host, self.port)
    }

    fn is_network(&self) -> bool {
        true
    }
}

fn parse(ctx: &mut Ctx) -> Result<Arc<dyn TransportConfig>, ConfigError> {
    let (cfg, st) = (ctx.cfg, ctx.st);
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
    c.ca_file = ctx.file("syslog.cafile")?;
    Ok(Arc::new(c))
}
