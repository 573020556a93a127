//! Elasticsearch / OpenSearch transport: the bulk API over HTTP(S).
//!
//! Each record is a `create` action with a deterministic document id (a hash of the record's
//! identity, as upstream's ECS encoder computes it), so a bulk request that is sent again —
//! because the response was lost, or the server answered 429 — cannot index a record twice:
//! the second `create` gets 409 and counts as delivered. Every item's result is read:
//! created (or already there) counts as sent, 429 and 5xx items are handed back to the
//! delivery worker to be retried (only them), anything else (a mapping error, say) is
//! counted as failed and logged with the server's reason.

mod config;
pub mod http;

pub use config::SPEC;

use std::collections::HashMap;
use std::time::Duration;

use serde::Deserialize;

use super::{Payload, Transport, TransportError};
use crate::config::vault::Secret;
use http::{Client, Url};

/// A validated `es` exporter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EsConfig {
    pub addresses: Vec<Url>,
    pub index: String,
    pub username: Option<Secret>,
    pub password: Option<Secret>,
    pub ca_file: Option<String>,
    /// `es.tls.verify: false`: the server certificate is not checked (warned at every start).
    pub verify: bool,
    /// Largest bulk request body in bytes (`es.bulk.flushBuffer`); a batch is split to fit.
    pub max_request_bytes: usize,
    /// Per-request I/O timeout.
    pub timeout: Duration,
    /// Bulk requests in flight at once (`es.bulk.numWorkers`; upstream's 0 is one per core).
    pub workers: usize,
}

impl Default for EsConfig {
    fn default() -> Self {
        EsConfig {
            addresses: Vec::new(),
            index: "sysflow".into(),
            username: None,
            password: None,
            ca_file: None,
            verify: true,
            max_request_bytes: 5_000_000,
            timeout: Duration::from_secs(30),
            workers: 1,
        }
    }
}

/// What an error about a TLS handshake adds: the two ways out.
const TLS_HINT: &str = "the server certificate could not be verified: set es.cafile to the CA that signed it, or es.tls.verify: false to skip verification (alerts and credentials then go to whoever answers)";

#[derive(Deserialize)]
struct BulkResponse {
    #[serde(default)]
    items: Vec<HashMap<String, BulkItem>>,
}

#[derive(Deserialize)]
struct BulkItem {
    status: u16,
    #[serde(default)]
    error: Option<serde_json::Value>,
}

/// How one item (or a whole request) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Delivered,
    Retry,
    Failed,
}

fn outcome(status: u16) -> Outcome {
    match status {
        200..=299 | 409 => Outcome::Delivered,
        429 | 500..=599 => Outcome::Retry,
        _ => Outcome::Failed,
    }
}

pub struct EsTransport {
    cfg: EsConfig,
    /// One per `es.bulk.numWorkers`: its own connections, one per address.
    workers: Vec<Worker>,
    target: String,
    /// The drain deadline, once the input has ended (see `Worker::apply_deadline`).
    deadline: Option<std::time::Instant>,
}

/// One bulk sender: a connection per address, and the address in use (it moves on after a
/// connection failure).
struct Worker {
    clients: Vec<Client>,
    current: usize,
}

/// What every worker reads.
struct Shared<'a> {
    cfg: &'a EsConfig,
    target: &'a str,
    deadline: Option<std::time::Instant>,
}

impl EsTransport {
    pub fn new(cfg: EsConfig) -> Result<Self, TransportError> {
        let target = format!(
            "es {}/{}",
            cfg.addresses
                .iter()
                .map(|u| u.to_string())
                .collect::<Vec<_>>()
                .join(","),
            cfg.index
        );
        let tls = super::httpc::Tls {
            ca_file: cfg.ca_file.as_deref(),
            client_cert: None,
            verify: cfg.verify,
        };
        // One client per worker: each keeps its own connection per address.
        let mut workers = Vec::new();
        for _ in 0..cfg.workers.max(1) {
            let agent =
                super::httpc::agent(tls, cfg.timeout).map_err(|e| TransportError::Rejected {
                    target: target.clone(),
                    reason: format!("es.cafile {e}"),
                })?;
            workers.push(Worker {
                clients: cfg
                    .addresses
                    .iter()
                    .map(|u| {
                        Client::new(
                            u.clone(),
                            cfg.username.as_ref().map(Secret::expose),
                            cfg.password.as_ref().map(Secret::expose),
                            agent.clone(),
                            cfg.timeout,
                        )
                    })
                    .collect(),
                current: 0,
            });
        }
        Ok(EsTransport {
            cfg,
            workers,
            target,
            deadline: None,
        })
    }
}

/// Appends the bulk lines of record `i`.
fn action(index: &str, body: &mut Vec<u8>, batch: &Payload, i: usize, doc: &[u8]) {
    body.extend_from_slice(b"{\"create\":{\"_index\":");
    crate::encode::json::write_str(body, index);
    if let Some(id) = batch.ids.get(i) {
        let mut hex = [0u8; 16];
        super::kafka::hex16(*id, &mut hex);
        body.extend_from_slice(b",\"_id\":\"");
        body.extend_from_slice(&hex);
        body.push(b'"');
    }
    body.extend_from_slice(b"}}\n");
    body.extend_from_slice(doc);
    body.push(b'\n');
}

impl Worker {
    /// Near the drain deadline a request times out sooner (whole seconds, at least one), so
    /// a server that stalls cannot hold the shutdown for a whole request timeout.
    fn apply_deadline(&mut self, sh: &Shared) {
        let Some(d) = sh.deadline else { return };
        let left = d.saturating_duration_since(std::time::Instant::now());
        let t = Duration::from_secs(left.as_secs().max(1))
            .min(sh.cfg.timeout.max(Duration::from_secs(1)));
        for c in &mut self.clients {
            c.set_timeout(t);
        }
    }

    /// Sends one bulk request; on a connection failure the next address gets the next try.
    fn post(
        &mut self,
        sh: &Shared,
        path: &str,
        ctype: &str,
        body: &[u8],
    ) -> Result<http::Response, String> {
        self.apply_deadline(sh);
        let n = self.clients.len();
        let c = self
            .clients
            .get_mut(self.current % n.max(1))
            .ok_or("no es.addresses")?;
        match c.request("POST", path, ctype, body) {
            Ok(r) => Ok(r),
            Err(e) => {
                let msg = with_tls_hint(format!("{}: {e}", c.url));
                self.current = (self.current + 1) % n.max(1);
                Err(msg)
            }
        }
    }

    /// Sends the records `idx` of `batch`, as many bulk requests as `es.bulk.flushBuffer`
    /// needs, and writes each record's outcome. Returns the first reason something was not
    /// delivered.
    fn send(&mut self, sh: &Shared, batch: &Payload, idx: &[usize], out: &mut [Outcome]) -> String {
        let lines: Vec<&[u8]> = batch.iter().collect();
        let mut body = Vec::with_capacity(batch.bytes.len() / 4 + idx.len() * 80);
        let mut part: Vec<usize> = Vec::new();
        let mut reason = String::new();
        for &i in idx {
            let before = body.len();
            action(&sh.cfg.index, &mut body, batch, i, lines[i]);
            if body.len() > sh.cfg.max_request_bytes && !part.is_empty() {
                // Send what fits, start the next request with this record.
                let tail = body.split_off(before);
                let r = self.bulk(sh, batch, &part, &body, out);
                if reason.is_empty() {
                    reason = r;
                }
                body = tail;
                part.clear();
            }
            part.push(i);
        }
        if !part.is_empty() {
            let r = self.bulk(sh, batch, &part, &body, out);
            if reason.is_empty() {
                reason = r;
            }
        }
        reason
    }

    /// Sends records `idx` (one bulk request) and sorts them by outcome.
    fn bulk(
        &mut self,
        sh: &Shared,
        batch: &Payload,
        idx: &[usize],
        body: &[u8],
        out: &mut [Outcome],
    ) -> String {
        let mark = |out: &mut [Outcome], o: Outcome| {
            for i in idx {
                out[*i] = o;
            }
        };
        let resp = match self.post(sh, "/_bulk", "application/x-ndjson", body) {
            Ok(r) => r,
            Err(e) => {
                mark(out, Outcome::Retry);
                return format!("bulk request failed: {e}");
            }
        };
        if resp.status == 413 && idx.len() > 1 {
            // Request too large for the server: send each half on its own.
            tracing::warn!(target = %sh.target, records = idx.len(), bytes = body.len(), "bulk request too large (HTTP 413): splitting it; consider a smaller es.bulk.flushBuffer");
            let lines: Vec<&[u8]> = batch.iter().collect();
            let (a, b) = idx.split_at(idx.len() / 2);
            let mut reason = String::new();
            for half in [a, b] {
                let mut part = Vec::new();
                for &i in half {
                    action(&sh.cfg.index, &mut part, batch, i, lines[i]);
                }
                let r = self.bulk(sh, batch, half, &part, out);
                if reason.is_empty() {
                    reason = r;
                }
            }
            return reason;
        }
        if !(200..300).contains(&resp.status) {
            // Request-level statuses: a 409 here is not a per-document "already indexed".
            let o = match resp.status {
                409 => Outcome::Failed,
                s => outcome(s),
            };
            let text = String::from_utf8_lossy(&resp.body[..resp.body.len().min(300)]).to_string();
            if o == Outcome::Failed {
                tracing::error!(target = %sh.target, records = idx.len(), status = resp.status, "bulk request refused: {text}");
            }
            mark(out, o);
            return format!("bulk request answered HTTP {}: {text}", resp.status);
        }
        let parsed: BulkResponse = match serde_json::from_slice(&resp.body) {
            Ok(p) => p,
            Err(e) => {
                mark(out, Outcome::Retry);
                return format!("unreadable bulk response: {e}");
            }
        };
        if parsed.items.len() != idx.len() {
            mark(out, Outcome::Retry);
            return format!(
                "bulk response has {} items for {} actions",
                parsed.items.len(),
                idx.len()
            );
        }
        let mut reason = String::new();
        for (k, item) in parsed.items.iter().enumerate() {
            let i = idx[k];
            let Some(it) = item.values().next() else {
                out[i] = Outcome::Retry;
                continue;
            };
            out[i] = outcome(it.status);
            if out[i] != Outcome::Delivered {
                let err = it.error.as_ref().map(|e| e.to_string()).unwrap_or_default();
                if out[i] == Outcome::Failed {
                    let id = batch
                        .ids
                        .get(i)
                        .map(|v| format!("{v:016x}"))
                        .unwrap_or_default();
                    tracing::error!(target = %sh.target, id = %id, status = it.status, "document refused: {err}");
                }
                if reason.is_empty() {
                    reason = format!("item status {}: {err}", it.status);
                }
            }
        }
        reason
    }
}

/// A TLS handshake that failed on the certificate says how to fix it.
fn with_tls_hint(msg: String) -> String {
    let lower = msg.to_ascii_lowercase();
    if lower.contains("tls handshake") && lower.contains("certificate") {
        format!("{msg} ({TLS_HINT})")
    } else {
        msg
    }
}

/// Which worker sends record `i`: by document id, so one document always goes through one
/// worker (its retries cannot overtake each other); round robin without ids.
fn worker_of(batch: &Payload, i: usize, workers: usize) -> usize {
    match batch.ids.get(i) {
        Some(id) => (*id % workers as u64) as usize,
        None => i % workers,
    }
}

impl Transport for EsTransport {
    fn set_deadline(&mut self, deadline: Option<std::time::Instant>) {
        self.deadline = deadline;
    }

    fn send_batch(&mut self, batch: &Payload) -> Result<(), TransportError> {
        let mut out = vec![Outcome::Retry; batch.records()];
        let n = self.workers.len().max(1);
        let mut parts: Vec<Vec<usize>> = vec![Vec::new(); n];
        for i in 0..batch.records() {
            parts[worker_of(batch, i, n)].push(i);
        }
        let sh = Shared {
            cfg: &self.cfg,
            target: &self.target,
            deadline: self.deadline,
        };
        let reason = if n == 1 || batch.records() < 2 * n {
            // One worker (or too few records to share): no thread.
            let all: Vec<usize> = (0..batch.records()).collect();
            self.workers[0].send(&sh, batch, &all, &mut out)
        } else {
            // Every worker sends its share at once, on a thread of its own; outcomes are
            // per record, so the shares merge without ordering concerns.
            let results: Vec<(Vec<(usize, Outcome)>, String)> = std::thread::scope(|scope| {
                let handles: Vec<_> = self
                    .workers
                    .iter_mut()
                    .zip(parts.iter())
                    .map(|(w, idx)| {
                        let sh = &sh;
                        scope.spawn(move || {
                            let mut local = vec![Outcome::Retry; batch.records()];
                            let r = w.send(sh, batch, idx, &mut local);
                            (idx.iter().map(|i| (*i, local[*i])).collect::<Vec<_>>(), r)
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| {
                        h.join()
                            .unwrap_or_else(|_| (Vec::new(), "a bulk worker panicked".into()))
                    })
                    .collect()
            });
            let mut reason = String::new();
            for (outcomes, r) in results {
                for (i, o) in outcomes {
                    out[i] = o;
                }
                if reason.is_empty() {
                    reason = r;
                }
            }
            reason
        };
        let delivered = out.iter().filter(|o| **o == Outcome::Delivered).count();
        if delivered == batch.records() {
            return Ok(());
        }
        let failed = out.iter().filter(|o| **o == Outcome::Failed).count();
        let retry: Vec<usize> = (0..batch.records())
            .filter(|i| out[*i] == Outcome::Retry)
            .collect();
        Err(TransportError::Partial {
            target: self.target.clone(),
            reason,
            delivered,
            failed,
            rest: Box::new(batch.select(&retry)),
        })
    }

    fn flush(&mut self) -> Result<(), TransportError> {
        Ok(())
    }

    /// Asks every address for the cluster banner (checks reachability and credentials).
    fn healthcheck(&mut self) -> Result<(), TransportError> {
        let mut errors = Vec::new();
        let Some(w) = self.workers.first_mut() else {
            return Ok(());
        };
        for c in &mut w.clients {
            match c.request("GET", "/", "", b"") {
                Ok(r) if r.status == 200 => return Ok(()),
                Ok(r) if r.status == 401 || r.status == 403 => {
                    return Err(TransportError::Rejected {
                        target: format!("es {}", c.url),
                        reason: format!(
                            "authentication failed (HTTP {}): check es.username and es.password",
                            r.status
                        ),
                    })
                }
                Ok(r) => errors.push(format!("{}: HTTP {}", c.url, r.status)),
                Err(e) => errors.push(with_tls_hint(format!("{}: {e}", c.url))),
            }
        }
        Err(TransportError::Unavailable {
            target: self.target.clone(),
            reason: format!("no address answered: {}", errors.join("; ")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn item_statuses() {
        assert_eq!(outcome(201), Outcome::Delivered);
        assert_eq!(
            outcome(409),
            Outcome::Delivered,
            "already indexed by an earlier try"
        );
        assert_eq!(outcome(429), Outcome::Retry);
        assert_eq!(outcome(503), Outcome::Retry);
        assert_eq!(outcome(400), Outcome::Failed);
    }

    #[test]
    fn a_document_always_goes_through_the_same_worker() {
        let mut p = Payload::lines(b"a\nb\nc\n".to_vec());
        p.ids = vec![7, 8, 7];
        assert_eq!(worker_of(&p, 0, 4), worker_of(&p, 2, 4));
        assert_eq!(worker_of(&p, 1, 4), 0);
        assert!(
            with_tls_hint("x: TLS handshake: certificate verify failed".into())
                .contains("es.cafile")
        );
        assert_eq!(with_tls_hint("x: refused".into()), "x: refused");
    }
}
