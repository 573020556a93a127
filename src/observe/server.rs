//! The HTTP listener: hyper (HTTP/1.1) on a thread of its own with a small tokio runtime, so
//! a slow scraper never touches the pipeline's threads.
//!
//! | Path | Answer |
//! |---|---|
//! | `/metrics` | 200, the OpenMetrics text of [`super::prometheus`] |
//! | `/healthz` | 200 `ok` while the process serves requests |
//! | `/readyz` | 200 `ready`, or 503 with the reasons (not running, socket not listening, an exporter failing) |

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use prometheus_client::registry::Registry;

use crate::pipeline::Live;

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
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!("metrics endpoint: accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let registry = registry.clone();
        let live = live.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let r = answer(&req, &registry, &live);
                async move { Ok::<_, Infallible>(r) }
            });
            let io = hyper_util::rt::TokioIo::new(stream);
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, svc)
                .await
            {
                tracing::debug!("metrics endpoint: connection: {e}");
            }
        });
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
