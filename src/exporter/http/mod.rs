//! The webhook transport (`export: http`): each batch is one HTTP request, its body the
//! batch's records as NDJSON or one JSON array, optionally compressed. The answer decides:
//! 2xx delivered; 408, 429 and 5xx retried (no earlier than the server's `Retry-After`);
//! connection failures and timeouts retried; any other status refused for good (counted
//! `failed`, the start of the server's answer logged). A request whose answer was lost is
//! sent again, so a receiver may see a batch twice (at-least-once, as every transport here).
//!
//! Requests go through the shared HTTP client (`super::httpc`), as Elasticsearch's.

mod config;

use std::borrow::Cow;
use std::io::Write;
use std::time::{Duration, Instant};

pub use config::{BodyKind, Compression, HttpConfig, SPEC};

use super::{httpc, Payload, Transport, TransportError};

/// The most of a refused answer's body kept for the log.
const BODY_IN_LOG: u64 = 512;
/// The longest `Retry-After` honoured: a server asking for more is asked again then.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);
/// How often a `Retry-After` wait looks at the drain clock.
const RETRY_AFTER_SLICE: Duration = Duration::from_millis(200);

pub struct HttpTransport {
    cfg: HttpConfig,
    agent: ureq::Agent,
    target: String,
    /// No request before this (a `Retry-After` answer).
    not_before: Option<Instant>,
    /// The drain deadline, once the input has ended.
    deadline: Option<Instant>,
    /// The run's end-of-input clock and drain timeout: a `Retry-After` wait looks at it, so
    /// a signal during a long wait still stops within the drain timeout.
    clock: Option<(std::sync::Arc<crate::shutdown::Shutdown>, Duration)>,
}

impl HttpTransport {
    pub fn new(cfg: HttpConfig) -> Result<Self, TransportError> {
        let target = format!("http {}", cfg.shown_url());
        let tls = httpc::Tls {
            ca_file: cfg.ca_file.as_deref(),
            client_cert: cfg
                .client_cert
                .as_ref()
                .map(|(c, k)| (c.as_str(), k.as_str())),
            verify: cfg.verify,
        };
        let agent = httpc::agent(tls, cfg.timeout).map_err(|e| TransportError::Rejected {
            target: target.clone(),
            reason: format!("TLS settings: {e}"),
        })?;
        Ok(HttpTransport {
            cfg,
            agent,
            target,
            not_before: None,
            deadline: None,
            clock: None,
        })
    }

    /// The request body of `batch` (compressed if configured).
    fn build_body<'a>(&self, batch: &'a Payload) -> Result<Cow<'a, [u8]>, TransportError> {
        // A text payload is NDJSON already: sent (or compressed) as it is, not copied.
        if self.cfg.body == BodyKind::Ndjson && batch.is_text() {
            return self.compress(Cow::Borrowed(&batch.bytes));
        }
        let mut body = Vec::with_capacity(batch.bytes.len() + 2);
        match self.cfg.body {
            BodyKind::Ndjson => {
                for r in batch.iter() {
                    body.extend_from_slice(r);
                    body.push(b'\n');
                }
            }
            BodyKind::Array => {
                body.push(b'[');
                for (i, r) in batch.iter().enumerate() {
                    if i > 0 {
                        body.push(b',');
                    }
                    body.extend_from_slice(r);
                }
                body.push(b']');
            }
        }
        self.compress(Cow::Owned(body))
    }

    /// The body compressed as configured (as it is without compression).
    fn compress<'a>(&self, body: Cow<'a, [u8]>) -> Result<Cow<'a, [u8]>, TransportError> {
        let fail = |e: std::io::Error| TransportError::Rejected {
            target: self.target.clone(),
            reason: format!("compressing the body: {e}"),
        };
        match self.cfg.compression {
            Compression::None => Ok(body),
            Compression::Gzip => {
                let mut z = flate2::write::GzEncoder::new(
                    Vec::with_capacity(body.len() / 4),
                    flate2::Compression::fast(),
                );
                z.write_all(&body).map_err(fail)?;
                z.finish().map(Cow::Owned).map_err(fail)
            }
            Compression::Zstd => zstd::bulk::compress(&body, 3).map(Cow::Owned).map_err(fail),
        }
    }

    /// The drain deadline as of now: the shared clock's, else the last one passed in.
    fn drain_deadline(&self) -> Option<Instant> {
        match &self.clock {
            Some((clock, timeout)) => clock.deadline(*timeout).or(self.deadline),
            None => self.deadline,
        }
    }

    /// Waits out a `Retry-After`, in slices, giving up once it would end past the drain
    /// deadline (which a signal can set while it waits).
    fn wait_turn(&mut self) -> Result<(), TransportError> {
        let Some(t) = self.not_before else {
            return Ok(());
        };
        loop {
            let now = Instant::now();
            if t <= now {
                self.not_before = None;
                return Ok(());
            }
            if self.drain_deadline().is_some_and(|d| d < t) {
                return Err(TransportError::Unavailable {
                    target: self.target.clone(),
                    reason: "the server asked to wait (Retry-After) past the drain deadline".into(),
                });
            }
            std::thread::sleep((t - now).min(RETRY_AFTER_SLICE));
        }
    }

    fn unavailable(&self, reason: String) -> TransportError {
        TransportError::Unavailable {
            target: self.target.clone(),
            reason,
        }
    }
}

impl Transport for HttpTransport {
    fn send_batch(&mut self, batch: &Payload) -> Result<(), TransportError> {
        if batch.records() == 0 {
            return Ok(());
        }
        self.wait_turn()?;
        let content_type = match self.cfg.body {
            BodyKind::Ndjson => "application/x-ndjson",
            BodyKind::Array => "application/json",
        };
        let encoding = match self.cfg.compression {
            Compression::None => None,
            Compression::Gzip => Some("gzip"),
            Compression::Zstd => Some("zstd"),
        };
        let timeout = match self.drain_deadline() {
            Some(d) => self.cfg.timeout.min(
                d.saturating_duration_since(Instant::now())
                    .max(Duration::from_millis(100)),
            ),
            None => self.cfg.timeout,
        };
        let body = self.build_body(batch)?;
        let mut headers: Vec<(&str, &str)> = vec![("Content-Type", content_type)];
        if let Some(e) = encoding {
            headers.push(("Content-Encoding", e));
        }
        if let Some(a) = &self.cfg.authorization {
            headers.push(("Authorization", a.expose()));
        }
        for (k, v) in &self.cfg.headers {
            headers.push((k.as_str(), v.expose()));
        }
        let resp = httpc::request(
            &self.agent,
            self.cfg.method,
            &self.cfg.url,
            &headers,
            &body,
            timeout,
            BODY_IN_LOG,
        )
        .map_err(|e| self.unavailable(e.to_string()))?;
        if (200..300).contains(&resp.status) {
            return Ok(());
        }
        let status = resp.status;
        let text = String::from_utf8_lossy(&resp.body).trim().to_string();
        let reason = if text.is_empty() {
            format!("HTTP {status}")
        } else {
            format!("HTTP {status}: {text}")
        };
        match status {
            408 | 429 | 500..=599 => {
                if let Some(w) = resp.retry_after {
                    self.not_before = Some(Instant::now() + w.min(MAX_RETRY_AFTER));
                }
                Err(self.unavailable(reason))
            }
            _ => Err(TransportError::Rejected {
                target: self.target.clone(),
                reason,
            }),
        }
    }

    fn flush(&mut self) -> Result<(), TransportError> {
        Ok(())
    }

    fn set_deadline(&mut self, deadline: Option<Instant>) {
        self.deadline = deadline;
    }

    fn set_drain_clock(
        &mut self,
        clock: std::sync::Arc<crate::shutdown::Shutdown>,
        timeout: Duration,
    ) {
        self.clock = Some((clock, timeout));
    }

    /// A TCP connection to the URL's host and port (a webhook need not answer anything but
    /// its own requests, so no request is made).
    fn healthcheck(&mut self) -> Result<(), TransportError> {
        use std::net::ToSocketAddrs;
        let Some((host, port)) = self.cfg.authority() else {
            return Err(self.unavailable("the URL has no host".into()));
        };
        let addrs = (host.as_str(), port)
            .to_socket_addrs()
            .map_err(|e| self.unavailable(format!("{host}: {e}")))?;
        let mut last = None;
        for a in addrs {
            match std::net::TcpStream::connect_timeout(
                &a,
                self.cfg.timeout.min(Duration::from_secs(5)),
            ) {
                Ok(_) => return Ok(()),
                Err(e) => last = Some(e),
            }
        }
        Err(self.unavailable(match last {
            Some(e) => e.to_string(),
            None => format!("{host}: no address"),
        }))
    }
}
