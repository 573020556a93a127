//! The HTTP listener: hyper (HTTP/1.1) on a thread of its own with a small tokio runtime, so
//! a slow scraper never touches the pipeline's threads.
//!
//! | Path | Answer |
//! |---|---|
//! | `/metrics` | 200, the OpenMetrics text of [`super::prometheus`] |
//! | `/healthz` | 200 `ok` while the process serves requests |
//! | `/readyz` | 200 `ready`, or 503 with the reasons (not running, socket not listening, an exporter failing) |
//!
//! Any local user can connect, so the endpoint is bounded in what it can cost the agent: at
//! most [`MAX_CONNECTIONS`] connections at a time (descriptors stay for the data path: the
//! collector's socket and the exporters), a request's headers must arrive within
//! [`HEADER_TIMEOUT`], and a connection lives at most [`CONNECTION_TIMEOUT`]. When every slot
//! is taken, the oldest connection is closed to make room (a slowloris holds old connections;
//! a probe sends its request at once and is answered in milliseconds).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use prometheus_client::registry::Registry;

use crate::pipeline::Live;
use crate::stats::RateLimit;

/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 64;
/// How long a request's headers may take to arrive (also an idle keep-alive connection's
/// life between requests).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest life of one connection, whatever it does.
pub const CONNECTION_TIMEOUT: Duration = Duration::from_secs(30);

/// The connections being served, oldest first.
#[derive(Default)]
struct Slots {
    open: VecDeque<(u64, tokio::task::AbortHandle)>,
    next: u64,
}

fn lock(m: &Mutex<Slots>) -> std::sync::MutexGuard<'_, Slots> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// Makes room for one more connection: at the cap, the oldest one is closed. A probe (a
/// scraper, `/healthz`) sends its request as soon as it connects and is answered within
/// milliseconds, so the connections that are old when the cap is reached are the ones that
/// hold a slot without asking for anything.
fn make_room(slots: &Mutex<Slots>, max: usize) {
    let mut s = lock(slots);
    while s.open.len() >= max {
        match s.open.pop_front() {
            Some((_, h)) => h.abort(),
            None => break,
        }
    }
}

/// A running listener; it serves until the process exits.
pub struct MetricsServer {
    addr: SocketAddr,
}

impl MetricsServer {
    /// Binds `addr` now (so a port in use is an error at start) and serves on a new thread.
    pub fn start(addr: SocketAddr, live: Arc<Live>) -> std::io::Result<MetricsServer> {
        let std_listener = std::net::TcpListener::bind(addr)?;
        std_listener.set_nonblocking(true)?;
        let local = std_listener.local_addr()?;
        let registry = Arc::new(super::prometheus::registry(live.clone()));
        std::thread::Builder::new()
            .name("metrics http".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_io()
                    .enable_time()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        tracing::error!("metrics endpoint: cannot start its runtime: {e}");
                        return;
                    }
                };
                rt.block_on(serve(std_listener, registry, live));
            })?;
        Ok(MetricsServer { addr: local })
    }

    /// The bound address (the real port when 0 was asked for).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

async fn serve(std_listener: std::net::TcpListener, registry: Arc<Registry>, live: Arc<Live>) {
    let listener = match tokio::net::TcpListener::from_std(std_listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("metrics endpoint: {e}");
            return;
        }
    };
    let slots = Arc::new(Mutex::new(Slots::default()));
    let log = RateLimit::new(3, Duration::from_secs(60));
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                // Out of descriptors (EMFILE) or the like: back off, say so once in a while.
                if let Some(suppressed) = log.allow() {
                    tracing::warn!(suppressed, "metrics endpoint: accept: {e}");
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if lock(&slots).open.len() >= MAX_CONNECTIONS {
            if let Some(suppressed) = log.allow() {
                tracing::warn!(
                    suppressed,
                    "metrics endpoint: {MAX_CONNECTIONS} connections open; closing the oldest"
                );
            }
            make_room(&slots, MAX_CONNECTIONS);
        }
        let registry = registry.clone();
        let live = live.clone();
        let id = {
            let mut s = lock(&slots);
            s.next += 1;
            s.next
        };
        let done = slots.clone();
        let task = tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let r = answer(&req, &registry, &live);
                async move { Ok::<_, Infallible>(r) }
            });
            let io = hyper_util::rt::TokioIo::new(stream);
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(io, svc);
            match tokio::time::timeout(CONNECTION_TIMEOUT, conn).await {
                Ok(Err(e)) => tracing::debug!("metrics endpoint: connection: {e}"),
                Err(_) => tracing::debug!(
                    "metrics endpoint: connection closed after {CONNECTION_TIMEOUT:?}"
                ),
                Ok(Ok(())) => {}
            }
            lock(&done).open.retain(|(i, _)| *i != id);
        });
        lock(&slots).open.push_back((id, task.abort_handle()));
    }
}

fn text(status: StatusCode, content_type: &str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    if let Ok(v) = hyper::header::HeaderValue::from_str(content_type) {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r
}

fn answer(req: &Request<Incoming>, registry: &Registry, live: &Live) -> Response<Full<Bytes>> {
    const PLAIN: &str = "text/plain; charset=utf-8";
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            PLAIN,
            "only GET and HEAD\n".into(),
        );
    }
    match req.uri().path() {
        "/metrics" => text(
            StatusCode::OK,
            super::prometheus::CONTENT_TYPE,
            super::prometheus::render(registry),
        ),
        "/healthz" => text(StatusCode::OK, PLAIN, "ok\n".into()),
        "/readyz" => match live.readiness() {
            Ok(()) => text(StatusCode::OK, PLAIN, "ready\n".into()),
            Err(why) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                PLAIN,
                format!("not ready:\n{}\n", why.join("\n")),
            ),
        },
        _ => text(
            StatusCode::NOT_FOUND,
            PLAIN,
            "not found (try /metrics, /healthz or /readyz)\n".into(),
        ),
    }
}
