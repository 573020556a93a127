//! The syslog transport: one RFC 5424 message per record (facility daemon, severity alert, as
//! upstream), over UDP, TCP or TLS. TCP and TLS frame messages with a trailing newline (as
//! upstream) or, with `syslog.framing: octet-counting`, with RFC 6587 octet counting. TLS
//! verifies the server certificate against the system roots or `syslog.cafile` (upstream
//! skips verification).
//!
//! Plain syslog has no acknowledgements: a write that the kernel accepted may still be lost
//! if the server goes away before reading it. Two things narrow that window: before each
//! batch, a TCP/TLS connection is checked for a close from the server (a syslog server never
//! sends data, so anything readable means it is closing) and reconnected; and the messages
//! the server may not have read yet are kept and written again after a reconnect (see
//! `replay`). The price is that a server restart duplicates records (at-least-once).

mod config;
mod replay;

pub use config::SPEC;

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Payload, Transport, TransportError};
use crate::shutdown::Shutdown;

/// Connect timeout, and how long a server may stop reading before a warning says so.
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest a single write call blocks before `write_all` looks at the drain clock again.
const WRITE_SLICE: Duration = Duration::from_millis(200);
/// Shortest wait for progress before a write is given up at the drain deadline.
const MIN_ATTEMPT: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Udp,
    Tcp,
    Tls,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// Message followed by `\n` (upstream's framing).
    Newline,
    /// RFC 6587 octet counting: `LEN SP MSG`.
    OctetCounting,
}

/// `syslog.*` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyslogConfig {
    pub proto: Proto,
    pub host: String,
    pub port: u16,
    pub tag: String,
    /// HOSTNAME field (`syslog.source`); the machine's host name when empty.
    pub source: String,
    pub framing: Framing,
    /// PEM file of the CA(s) that sign the server certificate (TLS); system roots otherwise.
    pub ca_file: Option<String>,
}

impl Default for SyslogConfig {
    fn default() -> Self {
        SyslogConfig {
            proto: Proto::Tcp,
            host: "localhost".into(),
            port: 514,
            tag: "sysflow".into(),
            source: String::new(),
            framing: Framing::Newline,
            ca_file: None,
        }
    }
}

enum Conn {
    Udp(UdpSocket),
    Tcp(TcpStream),
    Tls(Box<native_tls::TlsStream<TcpStream>>),
}

pub struct SyslogTransport {
    cfg: SyslogConfig,
    target: String,
    conn: Option<Conn>,
    /// Header up to and including the timestamp's position is rebuilt per message; these
    /// parts are fixed.
    host_app_pid_tag: String,
    /// Framed messages the server may not have read yet, for a resend after a reconnect.
    replay: replay::Replay,
    /// The connection was found lost after writes that may not have arrived: the replay is
    /// written again on the next connection.
    lost: bool,
    frame: Vec<u8>,
    /// The drain deadline, once the input has ended: connects and writes then time out near
    /// it rather than after the full `IO_TIMEOUT`.
    deadline: Option<Instant>,
    /// The run's end-of-input clock and drain timeout, read while a write is blocked (the
    /// delivery worker cannot pass a deadline to a call that has not returned).
    clock: Option<(Arc<Shutdown>, Duration)>,
}

impl SyslogTransport {
    /// Does not connect: the first send (or `healthcheck`) does, so a target that is down at
    /// start is retried like any other outage.
    pub fn new(cfg: SyslogConfig) -> Self {
        let host = if cfg.source.is_empty() {
            local_hostname()
        } else {
            cfg.source.clone()
        };
        let target = format!(
            "syslog {}://{}:{}",
            match cfg.proto {
                Proto::Udp => "udp",
                Proto::Tcp => "tcp",
                Proto::Tls => "tls",
            },
            cfg.host,
            cfg.port
        );
        let field = |s: &str| -> String {
            let s: String = s.chars().filter(|c| c.is_ascii_graphic()).collect();
            if s.is_empty() {
                "-".into()
            } else {
                s
            }
        };
        let host_app_pid_tag = format!(
            "{} sfprocessor {} {}",
            field(&host),
            std::process::id(),
            field(&cfg.tag)
        );
        SyslogTransport {
            cfg,
            target,
            conn: None,
            host_app_pid_tag,
            replay: replay::Replay::default(),
            lost: false,
            frame: Vec::with_capacity(1 << 16),
            deadline: None,
            clock: None,
        }
    }

    fn unavailable(&self, reason: impl std::fmt::Display) -> TransportError {
        TransportError::Unavailable {
            target: self.target.clone(),
            reason: reason.to_string(),
        }
    }

    /// The drain deadline as of now: the shared clock's, else the last one passed in.
    fn current_deadline(&self) -> Option<Instant> {
        match &self.clock {
            Some((clock, timeout)) => clock.deadline(*timeout).or(self.deadline),
            None => self.deadline,
        }
    }

    /// The connect/write timeout: `IO_TIMEOUT`, or less once the drain deadline is near
    /// (never under a second, so a last attempt can still succeed).
    fn io_timeout(&self) -> Duration {
        match self.current_deadline() {
            None => IO_TIMEOUT,
            Some(d) => d
                .saturating_duration_since(Instant::now())
                .clamp(MIN_ATTEMPT, IO_TIMEOUT),
        }
    }

    fn connect(&mut self) -> Result<(), TransportError> {
        let addr = (self.cfg.host.as_str(), self.cfg.port)
            .to_socket_addrs()
            .map_err(|e| self.unavailable(format!("cannot resolve host: {e}")))?
            .next()
            .ok_or_else(|| self.unavailable("host has no address"))?;
        let conn = match self.cfg.proto {
            Proto::Udp => {
                let bind = if addr.is_ipv4() {
                    "0.0.0.0:0"
                } else {
                    "[::]:0"
                };
                let s = UdpSocket::bind(bind).map_err(|e| self.unavailable(e))?;
                s.connect(addr).map_err(|e| self.unavailable(e))?;
                Conn::Udp(s)
            }
            Proto::Tcp | Proto::Tls => {
                let s = TcpStream::connect_timeout(&addr, self.io_timeout())
                    .map_err(|e| self.unavailable(format!("connect: {e}")))?;
                // The TLS handshake gets the whole timeout; writes then block a slice at a
                // time (see `write_all`).
                let _ = s.set_write_timeout(Some(self.io_timeout()));
                let _ = s.set_nodelay(true);
                if self.cfg.proto == Proto::Tcp {
                    let _ = s.set_write_timeout(Some(WRITE_SLICE));
                    Conn::Tcp(s)
                } else {
                    let c = super::tls::connector(self.cfg.ca_file.as_deref()).map_err(|e| {
                        TransportError::Rejected {
                            target: self.target.clone(),
                            reason: format!("syslog.cafile {e}"),
                        }
                    })?;
                    let tls = c
                        .connect(&self.cfg.host, s)
                        .map_err(|e| self.unavailable(format!("TLS handshake: {e}")))?;
                    let _ = tls.get_ref().set_write_timeout(Some(WRITE_SLICE));
                    Conn::Tls(Box::new(tls))
                }
            }
        };
        self.conn = Some(conn);
        Ok(())
    }

    /// Whether the server has closed (or is closing) the stream connection.
    fn peer_closed(&mut self) -> bool {
        // Over TLS the server does send records (session tickets), so only an end of stream
        // or an error counts there; a plain syslog server never sends anything.
        let (tcp, data_means_closed) = match &self.conn {
            Some(Conn::Tcp(s)) => (s, true),
            Some(Conn::Tls(s)) => (s.get_ref(), false),
            _ => return false,
        };
        if tcp.set_nonblocking(true).is_err() {
            return true;
        }
        let mut b = [0u8; 1];
        let closed = match tcp.peek(&mut b) {
            Ok(0) => true,
            Ok(_) => data_means_closed,
            Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
        };
        let _ = tcp.set_nonblocking(false);
        closed
    }

    /// Writes `bytes` in calls that block at most [`WRITE_SLICE`] each, looking at the drain
    /// clock in between: once the drain deadline has passed (a signal during the write
    /// counts), the write is given up.
    ///
    /// A server that stopped reading (stalled, SIGSTOPped, overloaded) but whose connection
    /// is alive is waited for, however long: giving up and reconnecting would leave a
    /// message cut in two on the old connection, which the server reads when it resumes
    /// (invalid JSON), and the replay would duplicate everything after it. A connection the
    /// kernel gives up on (reset, retransmission timeout) ends the wait with an error. The
    /// wait shows in readiness (the attempt's age) and in a warning.
    fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        use std::io::ErrorKind;
        let mut off = 0;
        let mut progress = Instant::now();
        let mut warned = false;
        while off < bytes.len() {
            let r = match &mut self.conn {
                Some(Conn::Tcp(s)) => s.write(&bytes[off..]),
                Some(Conn::Tls(s)) => s.write(&bytes[off..]),
                _ => return Err(std::io::Error::other("not connected")),
            };
            match r {
                Ok(0) => return Err(ErrorKind::WriteZero.into()),
                Ok(n) => {
                    off += n;
                    progress = Instant::now();
                    if warned {
                        tracing::info!(target = %self.target, "the server reads again");
                        warned = false;
                    }
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    let stalled = progress.elapsed();
                    let past_deadline =
                        self.current_deadline().is_some_and(|d| Instant::now() >= d);
                    // A second at least, so a last attempt can still succeed.
                    if past_deadline && stalled >= MIN_ATTEMPT {
                        return Err(ErrorKind::TimedOut.into());
                    }
                    if stalled >= IO_TIMEOUT && !warned {
                        warned = true;
                        tracing::warn!(
                            target = %self.target,
                            stalled_s = stalled.as_secs(),
                            "the server stopped reading; waiting on the same connection (reconnecting would cut a message in two)"
                        );
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Frames every line of `payload` into `self.frame`.
    fn frame_lines(&mut self, batch: &Payload) {
        self.frame.clear();
        let ts = crate::timefmt::rfc3339_now();
        for line in batch.iter() {
            let start = self.frame.len();
            if self.cfg.framing == Framing::OctetCounting {
                // Placeholder; the length is known after the message.
                self.frame.extend_from_slice(b"0000000000 ");
            }
            let msg_start = self.frame.len();
            self.frame.extend_from_slice(b"<25>1 ");
            self.frame.extend_from_slice(ts.as_bytes());
            self.frame.push(b' ');
            self.frame
                .extend_from_slice(self.host_app_pid_tag.as_bytes());
            self.frame.extend_from_slice(b" - ");
            self.frame.extend_from_slice(line);
            match self.cfg.framing {
                Framing::Newline => self.frame.push(b'\n'),
                Framing::OctetCounting => {
                    let len = self.frame.len() - msg_start;
                    let prefix = format!("{len} ");
                    self.frame
                        .splice(start..msg_start, prefix.bytes())
                        .for_each(drop);
                }
            }
        }
    }

    /// TCP/TLS: the batch's messages in one write (replayed after a reconnect).
    fn send_stream(&mut self, batch: &Payload) -> Result<(), TransportError> {
        if self.conn.is_some() && self.peer_closed() {
            tracing::warn!(target = %self.target, "server closed the connection; reconnecting");
            self.conn = None;
            self.lost = true;
        }
        if self.conn.is_none() {
            self.connect()?;
        }
        if self.lost {
            let kept = self.replay.take();
            if !kept.is_empty() {
                tracing::warn!(target = %self.target, bytes = kept.len(), "resending the messages the server may not have read before the connection was lost");
                let r = self.write_all(&kept);
                // Kept either way: unread by this server too, or still to be resent.
                self.replay.wrote(kept, Instant::now(), self.kernel());
                if let Err(e) = r {
                    self.conn = None;
                    return Err(self.unavailable(e));
                }
            }
            self.lost = false;
        }
        self.frame_lines(batch);
        let frame = std::mem::take(&mut self.frame);
        let r = self.write_all(&frame);
        self.frame = frame;
        match r {
            Ok(()) => {
                self.replay
                    .wrote(self.frame.clone(), Instant::now(), self.kernel());
                Ok(())
            }
            Err(e) => {
                self.conn = None;
                self.lost = true;
                Err(self.unavailable(e))
            }
        }
    }

    /// One datagram per record. A record too large for a datagram fails alone (counted,
    /// logged); on a send error only the records not yet sent are handed back for a retry.
    fn send_udp(&mut self, batch: &Payload) -> Result<(), TransportError> {
        if self.conn.is_none() {
            self.connect()?;
        }
        let ts = crate::timefmt::rfc3339_now();
        let mut msg = Vec::new();
        let mut too_large = 0usize;
        for (i, line) in batch.iter().enumerate() {
            msg.clear();
            push_message(&mut msg, &ts, &self.host_app_pid_tag, line);
            let r = match &self.conn {
                Some(Conn::Udp(s)) => s.send(&msg).map(drop),
                _ => Err(std::io::Error::other("not connected")),
            };
            match r {
                Ok(()) => {}
                // EMSGSIZE: this record can never go out as one datagram.
                Err(e) if e.raw_os_error() == Some(90) => {
                    too_large += 1;
                    tracing::error!(target = %self.target, bytes = msg.len(), "record too large for a UDP datagram: not delivered");
                }
                Err(e) => {
                    self.conn = None;
                    let rest: Vec<usize> = (i..batch.records()).collect();
                    return Err(TransportError::Partial {
                        target: self.target.clone(),
                        reason: e.to_string(),
                        delivered: i - too_large,
                        failed: too_large,
                        rest: Box::new(batch.select(&rest)),
                    });
                }
            }
        }
        if too_large == 0 {
            return Ok(());
        }
        Err(TransportError::Partial {
            target: self.target.clone(),
            reason: "records too large for UDP".into(),
            delivered: batch.records() - too_large,
            failed: too_large,
            rest: Box::default(),
        })
    }

    /// The kernel's view of the stream connection, for the replay's bound.
    fn kernel(&self) -> Option<replay::Kernel> {
        match &self.conn {
            Some(Conn::Tcp(s)) => replay::kernel(s),
            Some(Conn::Tls(s)) => replay::kernel(s.get_ref()),
            _ => None,
        }
    }
}

impl Transport for SyslogTransport {
    fn send_batch(&mut self, batch: &Payload) -> Result<(), TransportError> {
        match self.cfg.proto {
            Proto::Udp => self.send_udp(batch),
            _ => self.send_stream(batch),
        }
    }

    fn set_drain_clock(&mut self, clock: Arc<Shutdown>, timeout: Duration) {
        self.clock = Some((clock, timeout));
    }

    fn set_deadline(&mut self, deadline: Option<Instant>) {
        self.deadline = deadline;
    }

    fn flush(&mut self) -> Result<(), TransportError> {
        let r = match &mut self.conn {
            Some(Conn::Tcp(s)) => s.flush(),
            Some(Conn::Tls(s)) => s.flush(),
            _ => Ok(()),
        };
        r.map_err(|e| self.unavailable(e))?;
        // Give the server a moment to read what is in flight, then close cleanly: a close
        // with unread data in the server's buffer would make its kernel discard it.
        if let Some(Conn::Tcp(s)) = &self.conn {
            let _ = s.shutdown(std::net::Shutdown::Write);
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let mut sink = [0u8; 256];
            let mut s = s;
            while let Ok(n) = s.read(&mut sink) {
                if n == 0 {
                    break;
                }
            }
        }
        if let Some(Conn::Tls(s)) = &mut self.conn {
            // close_notify, then the same wait for the server's close: closing with the
            // server's session tickets unread would reset the connection.
            let _ = s.shutdown();
            let _ = s.get_ref().shutdown(std::net::Shutdown::Write);
            let _ = s.get_ref().set_read_timeout(Some(Duration::from_secs(2)));
            let mut sink = [0u8; 256];
            while let Ok(n) = s.read(&mut sink) {
                if n == 0 {
                    break;
                }
            }
        }
        self.conn = None;
        Ok(())
    }

    fn healthcheck(&mut self) -> Result<(), TransportError> {
        self.connect()
    }
}

/// Appends one RFC 5424 message: PRI 25 (daemon.alert), version 1, timestamp, the fixed
/// HOSTNAME APP-NAME PROCID MSGID part, no structured data, the record.
fn push_message(out: &mut Vec<u8>, ts: &str, host_app_pid_tag: &str, line: &[u8]) {
    out.extend_from_slice(b"<25>1 ");
    out.extend_from_slice(ts.as_bytes());
    out.push(b' ');
    out.extend_from_slice(host_app_pid_tag.as_bytes());
    out.extend_from_slice(b" - ");
    out.extend_from_slice(line);
}

/// The machine's host name, from gethostname(2) (not `/proc/sys`, which a sandboxed unit's
/// `ProcSubset=pid` hides), else `$HOSTNAME`, else `-`.
fn local_hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates within it or
    // fails, and only the bytes before the first NUL are read.
    let r = unsafe { libc::gethostname(buf.as_mut_ptr() as *mut libc::c_char, buf.len()) };
    let name = (r == 0)
        .then(|| {
            let n = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
            String::from_utf8_lossy(&buf[..n]).trim().to_string()
        })
        .filter(|s| !s.is_empty());
    name.or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "-".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_become_rfc5424_messages_with_either_framing() {
        for framing in [Framing::Newline, Framing::OctetCounting] {
            let mut t = SyslogTransport::new(SyslogConfig {
                source: "node1".into(),
                tag: "sf tag".into(),
                framing,
                ..Default::default()
            });
            t.frame_lines(&Payload::lines(
                b"{\"a\":1}\n{\"b\":\"\xc3\xa9\"}\n".to_vec(),
            ));
            let text = String::from_utf8(t.frame.clone()).unwrap();
            let mut msgs = Vec::new();
            match framing {
                Framing::Newline => msgs.extend(text.lines().map(str::to_string)),
                Framing::OctetCounting => {
                    let mut rest = text.as_bytes();
                    while !rest.is_empty() {
                        let sp = rest.iter().position(|b| *b == b' ').unwrap();
                        let len: usize = std::str::from_utf8(&rest[..sp]).unwrap().parse().unwrap();
                        let msg = &rest[sp + 1..sp + 1 + len];
                        msgs.push(String::from_utf8(msg.to_vec()).unwrap());
                        rest = &rest[sp + 1 + len..];
                    }
                }
            }
            assert_eq!(msgs.len(), 2);
            let pid = std::process::id();
            for (m, body) in msgs.iter().zip(["{\"a\":1}", "{\"b\":\"é\"}"]) {
                let f: Vec<&str> = m.splitn(8, ' ').collect();
                assert_eq!(f[0], "<25>1", "{m}");
                assert!(f[1].ends_with('Z') && f[1].len() == 27, "{m}");
                assert_eq!(f[2], "node1");
                assert_eq!(f[3], "sfprocessor");
                assert_eq!(f[4], pid.to_string());
                // Spaces are not allowed in MSGID: removed.
                assert_eq!(f[5], "sftag");
                assert_eq!(f[6], "-");
                assert_eq!(f[7], body);
            }
        }
    }
}
