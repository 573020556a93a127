//! A small blocking HTTP/1.1 client: what the bulk API needs (one request at a time on a
//! keep-alive connection, `Content-Length` or chunked responses, basic auth, TLS with
//! verification), and nothing else. The delivery worker already serialises requests, so an
//! async client would add a runtime and buy nothing.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

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
    pub fn parse(s: &str) -> Result<Url, String> {
        let s = s.trim();
        let (tls, rest) = if let Some(r) = s.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = s.strip_prefix("http://") {
            (false, r)
        } else if s.contains("://") {
            return Err(format!("`{s}`: only http:// and https:// are supported"));
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
                .ok_or_else(|| format!("`{s}`: unclosed `[` in the host"))?;
            (h.to_string(), p.strip_prefix(':'))
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (hostport.to_string(), None),
            }
        };
        if host.is_empty() {
            return Err(format!("`{s}`: no host"));
        }
        let port = match port {
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| format!("`{s}`: `{p}` is not a port number"))?,
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

trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

pub struct Client {
    pub url: Url,
    auth: Option<String>,
    tls: Option<native_tls::TlsConnector>,
    timeout: Duration,
    conn: Option<BufReader<Box<dyn Stream>>>,
}

impl Client {
    pub fn new(
        url: Url,
        user: Option<&str>,
        password: Option<&str>,
        tls: Option<native_tls::TlsConnector>,
        timeout: Duration,
    ) -> Client {
        let auth = user.map(|u| {
            format!(
                "Basic {}",
                base64(format!("{u}:{}", password.unwrap_or("")).as_bytes())
            )
        });
        Client {
            url,
            auth,
            tls,
            timeout,
            conn: None,
        }
    }

    /// Changes the I/O timeout; a kept-alive connection is dropped so the next request
    /// connects with it.
    pub fn set_timeout(&mut self, timeout: Duration) {
        if timeout != self.timeout {
            self.timeout = timeout;
            self.conn = None;
        }
    }

    fn connect(&self) -> std::io::Result<BufReader<Box<dyn Stream>>> {
        let addr = (self.url.host.as_str(), self.url.port)
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| std::io::Error::other("host has no address"))?;
        let s = TcpStream::connect_timeout(&addr, self.timeout)?;
        s.set_read_timeout(Some(self.timeout))?;
        s.set_write_timeout(Some(self.timeout))?;
        let _ = s.set_nodelay(true);
        let stream: Box<dyn Stream> = match (&self.tls, self.url.tls) {
            (Some(c), true) => Box::new(
                c.connect(&self.url.host, s)
                    .map_err(|e| std::io::Error::other(format!("TLS handshake: {e}")))?,
            ),
            _ => Box::new(s),
        };
        Ok(BufReader::with_capacity(64 * 1024, stream))
    }

    /// Sends one request and reads the whole response. A kept-alive connection the server
    /// closed in the meantime is replaced once, transparently (the request had not been
    /// read by anyone: it failed before a status line came back).
    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        content_type: &str,
        body: &[u8],
    ) -> std::io::Result<Response> {
        let reused = self.conn.is_some();
        match self.try_request(method, path, content_type, body) {
            // A timeout (TimedOut, or WouldBlock as Linux reports socket timeouts) means the
            // server is slow, not that the connection went stale: no immediate second try.
            Err(e)
                if reused
                    && !matches!(
                        e.kind(),
                        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
                    ) =>
            {
                tracing::debug!(target = %self.url, "kept-alive connection failed ({e}); reconnecting");
                self.conn = None;
                self.try_request(method, path, content_type, body)
            }
            r => r,
        }
    }

    fn try_request(
        &mut self,
        method: &str,
        path: &str,
        content_type: &str,
        body: &[u8],
    ) -> std::io::Result<Response> {
        if self.conn.is_none() {
            self.conn = Some(self.connect()?);
        }
        let mut head = format!(
            "{method} {}{path} HTTP/1.1\r\nHost: {}:{}\r\nUser-Agent: sfprocessor\r\nAccept: application/json\r\nContent-Length: {}\r\n",
            self.url.prefix,
            self.url.host,
            self.url.port,
            body.len()
        );
        if !content_type.is_empty() {
            head.push_str(&format!("Content-Type: {content_type}\r\n"));
        }
        if let Some(a) = &self.auth {
            head.push_str(&format!("Authorization: {a}\r\n"));
        }
        head.push_str("\r\n");
        let r = (|| {
            let conn = self
                .conn
                .as_mut()
                .ok_or_else(|| std::io::Error::other("not connected"))?;
            let w = conn.get_mut();
            w.write_all(head.as_bytes())?;
            w.write_all(body)?;
            w.flush()?;
            read_response(conn)
        })();
        match r {
            Ok((resp, keep)) => {
                if !keep {
                    self.conn = None;
                }
                Ok(resp)
            }
            Err(e) => {
                self.conn = None;
                Err(e)
            }
        }
    }
}

fn bad(msg: impl Into<String>) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, msg.into())
}

/// Reads a response; also says whether the connection can be reused.
fn read_response<R: BufRead>(r: &mut R) -> std::io::Result<(Response, bool)> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "connection closed before a response",
        ));
    }
    let mut parts = line.split_whitespace();
    let version = parts.next().unwrap_or("");
    let status = parts
        .next()
        .and_then(|s| s.parse::<u16>().ok())
        .filter(|_| version.starts_with("HTTP/1."))
        .ok_or_else(|| bad(format!("not an HTTP response: {:?}", line.trim_end())))?;
    let mut length: Option<usize> = None;
    let mut chunked = false;
    let mut keep = version == "HTTP/1.1";
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Err(bad("connection closed in the response headers"));
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let Some((name, value)) = l.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(
                value
                    .parse()
                    .map_err(|_| bad(format!("bad Content-Length `{value}`")))?,
            );
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.to_ascii_lowercase().contains("chunked");
        } else if name.eq_ignore_ascii_case("connection") {
            let v = value.to_ascii_lowercase();
            if v.contains("close") {
                keep = false;
            } else if v.contains("keep-alive") {
                keep = true;
            }
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            line.clear();
            r.read_line(&mut line)?;
            let size_text = line.trim().split(';').next().unwrap_or("");
            let size = usize::from_str_radix(size_text, 16)
                .map_err(|_| bad(format!("bad chunk size `{size_text}`")))?;
            if size == 0 {
                // Trailers, then the empty line.
                loop {
                    line.clear();
                    if r.read_line(&mut line)? == 0 || line.trim().is_empty() {
                        break;
                    }
                }
                break;
            }
            let start = body.len();
            let end = start
                .checked_add(size)
                .filter(|e| *e <= MAX_RESPONSE_BYTES)
                .ok_or_else(|| too_large(&size.to_string()))?;
            body.resize(end, 0);
            r.read_exact(&mut body[start..])?;
            line.clear();
            r.read_line(&mut line)?;
        }
    } else if let Some(n) = length {
        if n > MAX_RESPONSE_BYTES {
            return Err(too_large(&n.to_string()));
        }
        body.resize(n, 0);
        r.read_exact(&mut body)?;
    } else if status >= 200 && status != 204 && status != 304 {
        r.by_ref()
            .take(MAX_RESPONSE_BYTES as u64 + 1)
            .read_to_end(&mut body)?;
        if body.len() > MAX_RESPONSE_BYTES {
            return Err(too_large("more"));
        }
        keep = false;
    }
    Ok((Response { status, body }, keep))
}

/// Largest response body read. Sizes come from the server: a broken server or proxy must get
/// an error, not an allocation failure or an arithmetic overflow.
pub const MAX_RESPONSE_BYTES: usize = 256 << 20;

fn too_large(size: &str) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("response body of {size} bytes is over the {MAX_RESPONSE_BYTES}-byte limit"),
    )
}

/// Standard base64 with padding (for basic auth).
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

    #[test]
    fn responses_with_length_chunks_and_close() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
        let (r, keep) = read_response(&mut &raw[..]).unwrap();
        assert_eq!(
            (r.status, r.body.as_slice(), keep),
            (200, &b"hello"[..], true)
        );
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n";
        let (r, _) = read_response(&mut &raw[..]).unwrap();
        assert_eq!(r.body, b"abcde");
        let raw = b"HTTP/1.0 500 Oops\r\n\r\nbody";
        let (r, keep) = read_response(&mut &raw[..]).unwrap();
        assert_eq!(
            (r.status, r.body.as_slice(), keep),
            (500, &b"body"[..], false)
        );
        assert!(read_response(&mut &b"SSH-2.0\r\n"[..]).is_err());
        assert!(read_response(&mut &b""[..]).is_err());
    }

    #[test]
    fn sizes_from_the_server_cannot_overflow_or_exhaust_memory() {
        for raw in [
            &b"HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551615\r\n\r\nhi"[..],
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\nabc\r\n0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\nfffffffffffffffe\r\nde\r\n0\r\n\r\n",
        ] {
            match read_response(&mut &raw[..]) {
                Err(e) => assert!(e.to_string().contains("limit"), "{e}"),
                Ok((r, _)) => panic!("accepted a body of {} bytes", r.body.len()),
            }
        }
    }
}
