//! Observing a running agent: Prometheus metrics (`/metrics`), liveness (`/healthz`) and
//! readiness (`/readyz`) over HTTP, bound to loopback unless told otherwise.

pub mod perflog;
pub mod profile;
pub mod prometheus;
pub mod sdnotify;
pub mod server;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use crate::config::{ConfigError, PipelineConfig};

/// Parses a listen address: `HOST:PORT`, `:PORT` or `PORT` (loopback), `[::1]:PORT`.
/// `off` or empty disables the listener (`None`).
pub fn parse_listen(v: &str) -> Result<Option<SocketAddr>, String> {
    let v = v.trim();
    if v.is_empty() || v.eq_ignore_ascii_case("off") || v.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    let loopback = |port: &str| -> Result<Option<SocketAddr>, String> {
        port.parse::<u16>()
            .map(|p| Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), p)))
            .map_err(|_| format!("`{v}` is not a port number"))
    };
    if let Some(port) = v.strip_prefix(':') {
        return loopback(port);
    }
    if v.chars().all(|c| c.is_ascii_digit()) {
        return loopback(v);
    }
    v.parse::<SocketAddr>().map(Some).map_err(|_| {
        format!("`{v}` is not an address (HOST:PORT, :PORT or PORT; e.g. 127.0.0.1:9464)")
    })
}

/// The `metrics` section of `pipeline.json`: `{"listen": "127.0.0.1:9464"}`.
pub fn configured_listen(cfg: &PipelineConfig) -> Result<Option<SocketAddr>, ConfigError> {
    let Some(m) = &cfg.metrics else {
        return Ok(None);
    };
    for s in m.settings.values() {
        if !s.key.eq_ignore_ascii_case("listen") {
            return Err(cfg.error(
                m,
                Some(&format!("metrics.{}", s.key)),
                "unknown key (expected listen)".into(),
            ));
        }
    }
    match m.get("listen") {
        None => Ok(None),
        Some(v) => parse_listen(v).map_err(|e| cfg.error(m, Some("metrics.listen"), e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses_default_to_loopback() {
        assert_eq!(
            parse_listen(":9464").unwrap(),
            Some("127.0.0.1:9464".parse().unwrap())
        );
        assert_eq!(
            parse_listen("9464").unwrap(),
            Some("127.0.0.1:9464".parse().unwrap())
        );
        assert_eq!(
            parse_listen("0.0.0.0:1").unwrap(),
            Some("0.0.0.0:1".parse().unwrap())
        );
        assert_eq!(
            parse_listen("[::1]:80").unwrap(),
            Some("[::1]:80".parse().unwrap())
        );
        assert_eq!(parse_listen("off").unwrap(), None);
        assert!(parse_listen("localhost:x").is_err());
        assert!(parse_listen(":99999").is_err());
    }
}
