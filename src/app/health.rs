//! `-health URL`: one GET to a running agent's endpoint (`/readyz`, `/healthz`), for a
//! container's `HEALTHCHECK` in an image that has no curl. Plain HTTP on the agent's own
//! loopback listener; the answer's status decides the exit code.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use super::exit::Exit;

/// How long the probe may take in all.
const TIMEOUT: Duration = Duration::from_secs(5);

/// Why the probe has no status.
#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    #[error("`{url}`: only http:// URLs (the agent's metrics listener)")]
    Scheme { url: String },
    #[error("`{url}`: `{port}` is not a port")]
    Port { url: String, port: String },
    #[error("`{url}`: no host")]
    NoHost { url: String },
    #[error("{host}: {source}")]
    Resolve {
        host: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{host}: no address")]
    NoAddress { host: String },
    #[error("{addr}: {source}")]
    Io {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("{addr}: not an HTTP answer")]
    NotHttp { addr: std::net::SocketAddr },
}

/// `http://HOST:PORT/PATH` into its parts.
fn parse(url: &str) -> Result<(String, u16, String), HealthError> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| HealthError::Scheme { url: url.into() })?;
    let (hostport, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) => (
            h.trim_start_matches('[').trim_end_matches(']'),
            p.parse::<u16>().map_err(|_| HealthError::Port {
                url: url.into(),
                port: p.into(),
            })?,
        ),
        None => (hostport, 80),
    };
    if host.is_empty() {
        return Err(HealthError::NoHost { url: url.into() });
    }
    Ok((host.to_string(), port, path.to_string()))
}

/// GETs `url`; the status code, or why there is none.
pub fn get_status(url: &str) -> Result<u16, HealthError> {
    let (host, port, path) = parse(url)?;
    let addr = (host.as_str(), port)
        .to_socket_addrs()
        .map_err(|source| HealthError::Resolve {
            host: host.clone(),
            source,
        })?
        .next()
        .ok_or_else(|| HealthError::NoAddress { host: host.clone() })?;
    let io = |source| HealthError::Io { addr, source };
    let mut s = TcpStream::connect_timeout(&addr, TIMEOUT).map_err(io)?;
    let _ = s.set_read_timeout(Some(TIMEOUT));
    let _ = s.set_write_timeout(Some(TIMEOUT));
    let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).map_err(io)?;
    let mut head = [0u8; 64];
    let mut n = 0;
    while n < 12 {
        match s.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) => return Err(io(e)),
        }
    }
    let text = String::from_utf8_lossy(&head[..n]);
    text.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or(HealthError::NotHttp { addr })
}

/// The probe: exit 0 on a 2xx answer, 1 on any other answer or none, 2 on a bad URL.
pub fn probe(url: &str) -> Exit {
    if let Err(e) = parse(url) {
        eprintln!("sfprocessor: -health {e}");
        return Exit::Config;
    }
    match get_status(url) {
        Ok(code) if (200..300).contains(&code) => Exit::Ok,
        Ok(code) => {
            eprintln!("sfprocessor: -health {url}: HTTP {code}");
            Exit::Incomplete
        }
        Err(e) => {
            eprintln!("sfprocessor: -health {url}: {e}");
            Exit::Incomplete
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            parse("http://127.0.0.1:9464/readyz").unwrap(),
            ("127.0.0.1".into(), 9464, "/readyz".into())
        );
        assert_eq!(
            parse("http://[::1]:80").unwrap(),
            ("::1".into(), 80, "/".into())
        );
        assert!(parse("https://x/").is_err());
        assert!(parse("http://:9/").is_err());
        assert!(parse("http://h:port/").is_err());
    }
}
