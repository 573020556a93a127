//! The HTTP client of the transports that speak HTTP (Elasticsearch's bulk API, the webhook):
//! `ureq`, a maintained blocking client (its pool keeps connections alive between batches),
//! with native TLS as the other transports. The delivery worker already serialises requests,
//! so an async client would add a runtime and buy nothing.

use std::time::Duration;

use super::tls::TlsError;

/// TLS settings of one target.
#[derive(Debug, Clone, Copy, Default)]
pub struct Tls<'a> {
    /// PEM CA file trusted besides the system roots.
    pub ca_file: Option<&'a str>,
    /// Client certificate chain and PKCS#8 key (PEM files).
    pub client_cert: Option<(&'a str, &'a str)>,
    /// `false`: the server certificate and host name are not checked (an explicit opt-out).
    pub verify: bool,
}

/// One answer: its status, `Retry-After` (seconds form) and the start of its body.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub retry_after: Option<Duration>,
    pub body: Vec<u8>,
}

/// A request that got no answer.
#[derive(Debug, thiserror::Error)]
#[error("{}", describe(.0))]
pub struct HttpError(#[source] pub ureq::Error);

fn certs(path: &str) -> Result<Vec<ureq::tls::Certificate<'static>>, TlsError> {
    let pem = std::fs::read(path).map_err(|source| TlsError::Read {
        file: path.into(),
        source,
    })?;
    let certs: Vec<_> = ureq::tls::parse_pem(&pem)
        .filter_map(|i| match i {
            Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
            _ => None,
        })
        .collect();
    if certs.is_empty() {
        return Err(TlsError::Pem {
            file: path.into(),
            reason: "no PEM certificate".into(),
        });
    }
    Ok(certs)
}

/// Debian's system bundle, so a CA file adds to the roots rather than replacing them.
const SYSTEM_ROOTS: &str = "/etc/ssl/certs/ca-certificates.crt";

/// A client with `tls` and a default per-request `timeout` (connection included). Errors
/// name the file at fault.
pub fn agent(tls: Tls, timeout: Duration) -> Result<ureq::Agent, TlsError> {
    use ureq::tls::{ClientCert, PrivateKey, RootCerts, TlsConfig, TlsProvider};
    let mut b = TlsConfig::builder()
        .provider(TlsProvider::NativeTls)
        .disable_verification(!tls.verify);
    b = match tls.ca_file {
        Some(ca) => {
            let mut roots = certs(ca)?;
            roots.extend(certs(SYSTEM_ROOTS).unwrap_or_default());
            b.root_certs(RootCerts::new_with_certs(&roots))
        }
        None => b.root_certs(RootCerts::PlatformVerifier),
    };
    if let Some((cert, key)) = tls.client_cert {
        let chain = certs(cert)?;
        let pem = std::fs::read(key).map_err(|source| TlsError::Read {
            file: key.into(),
            source,
        })?;
        let key = PrivateKey::from_pem(&pem).map_err(|e| TlsError::Pem {
            file: key.into(),
            reason: e.to_string(),
        })?;
        b = b.client_cert(Some(ClientCert::new_with_certs(&chain, key)));
    }
    Ok(ureq::Agent::config_builder()
        .http_status_as_error(false)
        // A redirected POST changes meaning; a target that moved says so with its status.
        .max_redirects(0)
        .timeout_global(Some(timeout))
        .user_agent(concat!("sfprocessor/", env!("CARGO_PKG_VERSION")))
        .tls_config(b.build())
        .build()
        .into())
}

/// Whether an error is a connection the server closed under a request (a kept-alive
/// connection it had already dropped): worth one immediate second try.
fn dropped(e: &ureq::Error) -> bool {
    use std::io::ErrorKind::*;
    match e {
        ureq::Error::Io(io) => matches!(
            io.kind(),
            ConnectionReset | BrokenPipe | UnexpectedEof | ConnectionAborted
        ),
        _ => false,
    }
}

/// What an error says, with a TLS handshake named as such.
fn describe(e: &ureq::Error) -> String {
    match e {
        ureq::Error::NativeTls(t) => format!("TLS handshake: {t}"),
        ureq::Error::Timeout(t) => format!("timed out ({t})"),
        ureq::Error::Io(io) => io.to_string(),
        e => e.to_string(),
    }
}

/// Sends one request and reads at most `body_limit` bytes of the answer. A connection the
/// server dropped under the request is tried once more at once (the requests sent here are
/// safe to repeat: bulk `create`s with ids, webhook batches delivered at least once).
#[allow(clippy::too_many_arguments)]
pub fn request(
    agent: &ureq::Agent,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout: Duration,
    body_limit: u64,
) -> Result<Response, HttpError> {
    let once = || -> Result<Response, ureq::Error> {
        let mut req = ureq::http::Request::builder().method(method).uri(url);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(body)?;
        let req = agent
            .configure_request(req)
            .timeout_global(Some(timeout))
            .build();
        let mut resp = agent.run(req)?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        // Read up to the limit; what is past it is not needed (the connection is then not
        // reused, which costs a reconnect, never a wrong answer).
        let mut buf = Vec::new();
        let mut r = resp.body_mut().as_reader();
        let _ = std::io::Read::read_to_end(&mut std::io::Read::take(&mut r, body_limit), &mut buf);
        Ok(Response {
            status,
            retry_after,
            body: buf,
        })
    };
    match once() {
        Err(e) if dropped(&e) => {
            tracing::debug!(
                url,
                "connection dropped under the request ({e}); trying once more"
            );
            once().map_err(HttpError)
        }
        r => r.map_err(HttpError),
    }
}

/// Standard base64 with padding (the `Authorization: Basic` value).
pub fn base64(input: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for c in input.chunks(3) {
        let b = [c[0], *c.get(1).unwrap_or(&0), *c.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= c.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
        }
    }

    /// A server that answers once and closes: the answer's status, `Retry-After` and the
    /// start of its body come back; a missing CA file is named.
    #[test]
    fn an_answer_and_its_retry_after_come_back() {
        use std::io::{Read, Write};
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let t = std::thread::spawn(move || {
            let (mut c, _) = l.accept().unwrap();
            let mut buf = [0u8; 4096];
            let mut got = Vec::new();
            while !got.ends_with(b"\r\n\r\nabc") {
                let n = c.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
            c.write_all(b"HTTP/1.1 429 Slow\r\nRetry-After: 7\r\nContent-Length: 10\r\nConnection: close\r\n\r\n0123456789")
                .unwrap();
            String::from_utf8_lossy(&got).to_string()
        });
        let a = agent(
            Tls {
                verify: true,
                ..Default::default()
            },
            Duration::from_secs(5),
        )
        .unwrap();
        let r = request(
            &a,
            "POST",
            &format!("http://127.0.0.1:{port}/x"),
            &[("X-A", "1")],
            b"abc",
            Duration::from_secs(5),
            4,
        )
        .unwrap();
        assert_eq!(r.status, 429);
        assert_eq!(r.retry_after, Some(Duration::from_secs(7)));
        assert_eq!(r.body, b"0123");
        let sent = t.join().unwrap();
        assert!(sent.starts_with("POST /x HTTP/1.1\r\n"), "{sent}");
        assert!(sent.to_ascii_lowercase().contains("x-a: 1"), "{sent}");
        let e = agent(
            Tls {
                ca_file: Some("/nonexistent/ca.pem"),
                verify: true,
                ..Default::default()
            },
            Duration::from_secs(1),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("/nonexistent/ca.pem"), "{e}");
    }
}
