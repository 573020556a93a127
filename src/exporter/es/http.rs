//! An Elasticsearch server address and a client for it, over the shared HTTP client
//! (`crate::exporter::httpc`): one request at a time, basic auth, the address's path prefix.

use std::time::Duration;

use crate::exporter::httpc;
pub use httpc::Response;

/// An `es.addresses` entry that is not a server URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("`{url}`: only http:// and https:// are supported")]
    Scheme { url: String },
    #[error("`{url}`: unclosed `[` in the host")]
    Bracket { url: String },
    #[error("`{url}`: no host")]
    NoHost { url: String },
    #[error("`{url}`: `{port}` is not a port number")]
    Port { url: String, port: String },
}

/// One server address: `http://host:port/prefix` or `https://...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    pub tls: bool,
    pub host: String,
    pub port: u16,
    /// Path prefix without a trailing slash ("" for the root).
    pub prefix: String,
}

impl Url {
    pub fn parse(s: &str) -> Result<Url, UrlError> {
        let s = s.trim();
        let (tls, rest) = if let Some(r) = s.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = s.strip_prefix("http://") {
            (false, r)
        } else if s.contains("://") {
            return Err(UrlError::Scheme { url: s.into() });
        } else {
            (false, s)
        };
        let (hostport, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let (host, port) = if let Some(h) = hostport.strip_prefix('[') {
            let (h, p) = h
                .split_once(']')
                .ok_or_else(|| UrlError::Bracket { url: s.into() })?;
            (h.to_string(), p.strip_prefix(':'))
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (hostport.to_string(), None),
            }
        };
        if host.is_empty() {
            return Err(UrlError::NoHost { url: s.into() });
        }
        let port = match port {
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| UrlError::Port {
                    url: s.into(),
                    port: p.into(),
                })?,
            None if tls => 443,
            None => 80,
        };
        Ok(Url {
            tls,
            host,
            port,
            prefix: path.trim_end_matches('/').to_string(),
        })
    }
}

impl std::fmt::Display for Url {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.tls { "https" } else { "http" };
        write!(f, "{scheme}://{}:{}{}", self.host, self.port, self.prefix)
    }
}

/// Requests to one address.
pub struct Client {
    pub url: Url,
    auth: Option<String>,
    agent: ureq::Agent,
    timeout: Duration,
}

impl Client {
    pub fn new(
        url: Url,
        user: Option<&str>,
        password: Option<&str>,
        agent: ureq::Agent,
        timeout: Duration,
    ) -> Client {
        let auth = user.map(|u| {
            format!(
                "Basic {}",
                httpc::base64(format!("{u}:{}", password.unwrap_or("")).as_bytes())
            )
        });
        Client {
            url,
            auth,
            agent,
            timeout,
        }
    }

    /// Changes the request timeout (near the drain deadline).
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Sends one request to `path` under the address and reads the whole answer (up to 256
    /// MiB: a bulk response lists every item).
    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        content_type: &str,
        body: &[u8],
    ) -> Result<Response, httpc::HttpError> {
        let url = format!("{}{path}", self.url);
        let mut headers: Vec<(&str, &str)> = Vec::with_capacity(2);
        if !content_type.is_empty() {
            headers.push(("Content-Type", content_type));
        }
        if let Some(a) = &self.auth {
            headers.push(("Authorization", a));
        }
        httpc::request(
            &self.agent,
            method,
            &url,
            &headers,
            body,
            self.timeout,
            256 << 20,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = Url::parse("https://localhost:9200").unwrap();
        assert_eq!((u.tls, u.host.as_str(), u.port), (true, "localhost", 9200));
        let u = Url::parse("127.0.0.1:9201/es/").unwrap();
        assert_eq!((u.tls, u.port, u.prefix.as_str()), (false, 9201, "/es"));
        assert_eq!(Url::parse("http://h").unwrap().port, 80);
        assert_eq!(Url::parse("http://[::1]:9200").unwrap().host, "::1");
        assert!(Url::parse("ftp://h").is_err());
        assert!(Url::parse("http://h:x").is_err());
        assert!(Url::parse("http://:80").is_err());
    }
}
