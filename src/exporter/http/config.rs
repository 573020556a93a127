//! `export: http`: the webhook's keys.

use std::sync::Arc;
use std::time::Duration;

use super::HttpTransport;
use crate::config::vault::Secret;
use crate::config::ConfigError;
use crate::exporter::registry::{Ctx, Key, TransportConfig, TransportSpec};
use crate::exporter::{Transport, TransportError};

pub static SPEC: TransportSpec = TransportSpec {
    names: &["http"],
    keys: &[
        Key {
            names: &["http.url"],
            default: "— (required)",
            doc: "where batches are sent: an `http://` or `https://` URL.",
        },
        Key {
            names: &["http.method"],
            default: "`POST`",
            doc: "`POST`, `PUT` or `PATCH`.",
        },
        Key {
            names: &["http.headers"],
            default: "—",
            doc: "a JSON object of headers sent with every request: `{\"X-Source\":\"node-7\"}`.",
        },
        Key {
            names: &["http.header.*"],
            default: "—",
            doc: "one header as a flat key (`http.header.X-Api-Key: ...`), after `http.headers`. With `vault.secrets: true`, an empty value is read from the vault file of the same name (`/run/secrets/http.header.X-Api-Key`).",
        },
        Key {
            names: &["http.auth"],
            default: "`none`; `basic` with `http.username`, `bearer` with `http.token`",
            doc: "`none`, `basic` (`http.username`, `http.password`) or `bearer` (`http.token`). With `vault.secrets: true`, the password or token missing from the configuration is read from the vault.",
        },
        Key {
            names: &["http.username", "http.password", "http.token"],
            default: "none",
            doc: "the credentials of `http.auth` (never logged).",
        },
        Key {
            names: &["http.body"],
            default: "`ndjson`",
            doc: "`ndjson` (one record per line, `application/x-ndjson`) or `array` (one JSON array per batch, `application/json`).",
        },
        Key {
            names: &["http.compression"],
            default: "`none`",
            doc: "`none`, `gzip` or `zstd` (`Content-Encoding` set accordingly).",
        },
        Key {
            names: &["http.timeout"],
            default: "`30s`",
            doc: "(1ms – 10m) the longest one request may take, connection included; a request past it is retried.",
        },
        Key {
            names: &["http.cafile"],
            default: "system roots",
            doc: "PEM file of the CA that signed the server's certificate (`https://`).",
        },
        Key {
            names: &["http.certfile", "http.keyfile"],
            default: "none",
            doc: "a client certificate (PEM chain) and its PKCS#8 PEM key (`BEGIN PRIVATE KEY`), for servers that ask for one.",
        },
        Key {
            names: &["http.tls.verify"],
            default: "`true`",
            doc: "`false` skips the server certificate check, with a warning at every start.",
        },
    ],
    parse,
};

/// How a batch becomes a request body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// One record per line.
    Ndjson,
    /// One JSON array of the batch's records.
    Array,
}

/// Request body compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

/// A validated `http` exporter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpConfig {
    pub url: String,
    pub method: &'static str,
    /// Headers in the order given (values may be secrets: never printed).
    pub headers: Vec<(String, Secret)>,
    /// The `Authorization` header's value, when `http.auth` is not `none`.
    pub authorization: Option<Secret>,
    pub body: BodyKind,
    pub compression: Compression,
    pub timeout: Duration,
    pub ca_file: Option<String>,
    /// Client certificate chain and key files (PEM).
    pub client_cert: Option<(String, String)>,
    pub verify: bool,
}

impl HttpConfig {
    /// The URL without credentials, query or fragment, for logs and metrics labels.
    pub fn shown_url(&self) -> String {
        let u = self.url.split(['?', '#']).next().unwrap_or("");
        match u.split_once("://") {
            Some((scheme, rest)) => match rest.split_once('@') {
                Some((_, host)) => format!("{scheme}://{host}"),
                None => u.to_string(),
            },
            None => u.to_string(),
        }
    }

    /// `host:port` of the URL (default ports by scheme).
    pub fn authority(&self) -> Option<(String, u16)> {
        let (scheme, rest) = self.url.split_once("://")?;
        let host = rest.split(['/', '?', '#']).next()?;
        let host = host.rsplit('@').next()?;
        let default = if scheme.eq_ignore_ascii_case("https") {
            443
        } else {
            80
        };
        if let Some(h) = host.strip_prefix('[') {
            let (h, port) = h.split_once(']')?;
            let port = match port.strip_prefix(':') {
                Some(p) => p.parse().ok()?,
                None => default,
            };
            return Some((h.to_string(), port));
        }
        match host.rsplit_once(':') {
            Some((h, p)) => Some((h.to_string(), p.parse().ok()?)),
            None => Some((host.to_string(), default)),
        }
    }
}

impl TransportConfig for HttpConfig {
    fn kind(&self) -> &'static str {
        "http"
    }

    fn open(&self) -> Result<Box<dyn Transport>, TransportError> {
        Ok(Box::new(HttpTransport::new(self.clone())?))
    }

    fn target(&self) -> String {
        format!("http {}", self.shown_url())
    }

    fn is_network(&self) -> bool {
        true
    }

    /// A request waits for its answer before the next is sent: batches of a thousand keep
    /// a webhook busy without holding an alert long (the 1 s flush bounds it anyway).
    fn default_buffer(&self) -> Option<usize> {
        Some(1_000)
    }

    fn default_linger(&self) -> Duration {
        Duration::from_millis(5)
    }
}

/// A header name as HTTP allows it (a token).
fn valid_header_name(n: &str) -> bool {
    !n.is_empty()
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn parse(ctx: &mut Ctx) -> Result<Arc<dyn TransportConfig>, ConfigError> {
    let (cfg, st) = (ctx.cfg, ctx.st);
    let url = ctx
        .value("http.url")
        .ok_or_else(|| ctx.error("http.url", "missing: the URL to send batches to".into()))?
        .to_string();
    let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
    if !matches!(scheme.as_deref(), Some("http" | "https")) {
        return Err(ctx.error(
            "http.url",
            format!("`{url}` is not an http:// or https:// URL"),
        ));
    }
    let method = cfg.choice(st, "http.method", "POST", &["POST", "PUT", "PATCH"])?;
    let mut headers: Vec<(String, Secret)> = Vec::new();
    if let Some(text) = ctx.value("http.headers") {
        let bad = |e: String| {
            ctx.error(
                "http.headers",
                format!("must be a JSON object of header names and string values ({e})"),
            )
        };
        let v: serde_json::Value = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
        let serde_json::Value::Object(map) = v else {
            return Err(bad("not an object".into()));
        };
        for (k, v) in map {
            let serde_json::Value::String(v) = v else {
                return Err(bad(format!("`{k}` is not a string")));
            };
            headers.push((k, Secret::new(v)));
        }
    }
    for s in st.settings.values() {
        let Some(name) = s
            .key
            .get(..12)
            .filter(|p| p.eq_ignore_ascii_case("http.header."))
            .map(|_| &s.key[12..])
        else {
            continue;
        };
        let value = match (s.value.trim().is_empty(), ctx.vault) {
            (true, Some(v)) => v.read(cfg, st, &s.key)?,
            _ => Secret::new(s.value.trim()),
        };
        headers.push((name.to_string(), value));
    }
    for (k, v) in &headers {
        if !valid_header_name(k) {
            return Err(ctx.error("http.headers", format!("`{k}` is not a valid header name")));
        }
        if v.expose()
            .bytes()
            .any(|b| b == b'\r' || b == b'\n' || b == 0)
        {
            return Err(ctx.error(
                "http.headers",
                format!("the value of `{k}` holds a line break"),
            ));
        }
    }
    let implied = if st.get("http.token").is_some() {
        "bearer"
    } else if st.get("http.username").is_some() {
        "basic"
    } else {
        "none"
    };
    let auth = cfg.choice(st, "http.auth", implied, &["none", "basic", "bearer"])?;
    let secret = |key: &str| -> Result<Secret, ConfigError> {
        match (st.get(key), ctx.vault) {
            (Some(v), _) => Ok(Secret::new(v.trim())),
            (None, Some(v)) => v.read(cfg, st, key),
            (None, None) => Err(ctx.error(key, format!("missing: `http.auth: {auth}` needs it"))),
        }
    };
    let authorization = match auth {
        "basic" => {
            let user = secret("http.username")?;
            let pass = secret("http.password")?;
            let pair = format!("{}:{}", user.expose(), pass.expose());
            Some(Secret::new(format!(
                "Basic {}",
                crate::exporter::httpc::base64(pair.as_bytes())
            )))
        }
        "bearer" => Some(Secret::new(format!(
            "Bearer {}",
            secret("http.token")?.expose()
        ))),
        _ => None,
    };
    if authorization.is_some()
        && headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("authorization"))
    {
        return Err(ctx.error(
            "http.auth",
            "an `Authorization` header is also set in http.headers: keep one".into(),
        ));
    }
    let body = match cfg.choice(st, "http.body", "ndjson", &["ndjson", "array"])? {
        "array" => BodyKind::Array,
        _ => BodyKind::Ndjson,
    };
    let compression = match cfg.choice(st, "http.compression", "none", &["none", "gzip", "zstd"])? {
        "gzip" => Compression::Gzip,
        "zstd" => Compression::Zstd,
        _ => Compression::None,
    };
    let timeout = cfg.duration(
        st,
        "http.timeout",
        Duration::from_secs(30),
        Duration::from_millis(1),
        Duration::from_secs(600),
        false,
    )?;
    let verify = match cfg.choice(st, "http.tls.verify", "true", &["true", "false"])? {
        "false" => {
            ctx.warnings.push(format!(
                "{}: pipeline[{}] (exporter): http.tls.verify is false: the webhook's certificate is not checked, so alerts and credentials go to whoever answers at {url}",
                cfg.file.display(),
                st.index,
            ));
            false
        }
        _ => true,
    };
    let ca_file = ctx.file("http.cafile")?;
    let client_cert = match (ctx.file("http.certfile")?, ctx.file("http.keyfile")?) {
        (Some(c), Some(k)) => {
            let pem = std::fs::read(&k).unwrap_or_default();
            if !pem.windows(17).any(|w| w == b"BEGIN PRIVATE KEY") {
                return Err(ctx.error(
                    "http.keyfile",
                    format!("`{k}` is not a PKCS#8 PEM key (`BEGIN PRIVATE KEY`); convert it with `openssl pkcs8 -topk8 -nocrypt -in {k}`"),
                ));
            }
            Some((c, k))
        }
        (None, None) => None,
        (Some(_), None) => {
            return Err(ctx.error(
                "http.keyfile",
                "missing: http.certfile needs its key".into(),
            ))
        }
        (None, Some(_)) => {
            return Err(ctx.error(
                "http.certfile",
                "missing: http.keyfile needs its certificate".into(),
            ))
        }
    };
    Ok(Arc::new(HttpConfig {
        url,
        method,
        headers,
        authorization,
        body,
        compression,
        timeout,
        ca_file,
        client_cert,
        verify,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_show_without_credentials_and_give_their_authority() {
        let c = |url: &str| HttpConfig {
            url: url.into(),
            method: "POST",
            headers: vec![],
            authorization: None,
            body: BodyKind::Ndjson,
            compression: Compression::None,
            timeout: Duration::from_secs(1),
            ca_file: None,
            client_cert: None,
            verify: true,
        };
        let u = c("https://me:secret@hooks.example:8443/a/b?token=x");
        assert_eq!(u.shown_url(), "https://hooks.example:8443/a/b");
        assert_eq!(u.authority(), Some(("hooks.example".into(), 8443)));
        assert_eq!(c("http://h/x").authority(), Some(("h".into(), 80)));
        assert_eq!(c("https://[::1]/x").authority(), Some(("::1".into(), 443)));
        assert_eq!(c("http://[::1]:9/x").authority(), Some(("::1".into(), 9)));
    }
}
