//! What a stream connection may not have delivered yet, kept for a resend after a reconnect.
//!
//! Syslog has no acknowledgements, and a TCP acknowledgement only says the server's kernel has
//! the bytes, not that the server read them: when a server exits, whatever sits unread in its
//! receive buffer (and unsent in ours) is discarded. A slow server can hold megabytes there,
//! written long before the connection is found lost, so a fixed time window is not enough.
//! The kernel does tell us two things that bound it: how much of what we wrote is still in our
//! send queue, and the largest receive window the server has advertised (its receive buffer,
//! which is all it can hold unread). Messages are kept while they are within that bound, or
//! were written in the last two seconds, whichever keeps more.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Messages written this recently are always kept.
const WINDOW: Duration = Duration::from_secs(2);
/// Most bytes kept, whatever the kernel says (a bound on memory).
const MAX_BYTES: usize = 64 << 20;
/// The kernel's figures are estimates (the window is payload the server's buffer can still
/// take, and the buffer grows under load): keep this many times what they say.
const MARGIN: usize = 2;

/// A connection's state as the kernel reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Kernel {
    /// Bytes written but not yet acknowledged by the server's kernel (sent or not).
    pub unacked: usize,
    /// The receive window the server advertised last, in bytes.
    pub peer_window: usize,
}

#[derive(Default)]
pub struct Replay {
    entries: VecDeque<(Instant, Vec<u8>)>,
    bytes: usize,
    /// Largest receive window any server connection has advertised.
    max_peer_window: usize,
    /// Bytes that may still be unread, from the last kernel report.
    at_risk: usize,
}

impl Replay {
    /// Records `frame` as written at `now`, with the kernel's view of the connection right
    /// after the write (None where the platform does not report it: the time window alone).
    pub fn wrote(&mut self, frame: Vec<u8>, now: Instant, kernel: Option<Kernel>) {
        if let Some(k) = kernel {
            self.max_peer_window = self.max_peer_window.max(k.peer_window);
            self.at_risk = k.unacked.saturating_add(self.max_peer_window);
        }
        self.bytes += frame.len();
        self.entries.push_back((now, frame));
        let keep = self.at_risk.saturating_mul(MARGIN);
        while let Some((t, b)) = self.entries.front() {
            let rest = self.bytes - b.len();
            let old = now.duration_since(*t) > WINDOW;
            if self.bytes > MAX_BYTES || (old && rest >= keep) {
                self.bytes = rest;
                self.entries.pop_front();
            } else {
                break;
            }
        }
    }

    /// Everything kept, oldest first, to be written again on a new connection; the replay
    /// starts empty (what is written next is recorded again).
    pub fn take(&mut self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.bytes);
        for (_, b) in self.entries.drain(..) {
            out.extend_from_slice(&b);
        }
        self.bytes = 0;
        out
    }

    /// Bytes kept.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.bytes
    }
}

/// The kernel's view of a TCP connection (Linux `TCP_INFO`).
#[cfg(target_os = "linux")]
pub fn kernel(s: &std::net::TcpStream) -> Option<Kernel> {
    use std::os::fd::AsRawFd;
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: `info` is a plain C struct as large as `len` says; the kernel writes at most
    // `len` bytes into it and sets `len` to what it wrote.
    let r = unsafe {
        libc::getsockopt(
            s.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    // `tcpi_snd_wnd` came with Linux 5.4; older kernels fill less of the struct.
    let needed = std::mem::offset_of!(libc::tcp_info, tcpi_snd_wnd) + 4;
    if r != 0 || (len as usize) < needed {
        return None;
    }
    let unacked = (info.tcpi_unacked as usize).saturating_mul(info.tcpi_snd_mss as usize);
    Some(Kernel {
        unacked: unacked.saturating_add(info.tcpi_notsent_bytes as usize),
        peer_window: info.tcpi_snd_wnd as usize,
    })
}

#[cfg(not(target_os = "linux"))]
pub fn kernel(_: &std::net::TcpStream) -> Option<Kernel> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(r: &mut Replay, n: usize, size: usize, at: Instant, k: Option<Kernel>) {
        for i in 0..n {
            r.wrote(vec![b'a' + (i % 26) as u8; size], at, k);
        }
    }

    #[test]
    fn recent_messages_are_kept_whatever_the_kernel_says() {
        let mut r = Replay::default();
        let t = Instant::now();
        frames(&mut r, 100, 1000, t, Some(Kernel::default()));
        assert_eq!(r.len(), 100_000);
        let all = r.take();
        assert_eq!(all.len(), 100_000);
        assert_eq!(&all[..2], b"aa");
        assert_eq!(r.len(), 0);
    }

    #[test]
    fn older_messages_are_kept_while_the_server_may_not_have_read_them() {
        let mut r = Replay::default();
        let t = Instant::now();
        // A server with a 10,000-byte window, and 3,000 bytes not acknowledged.
        let k = Kernel {
            unacked: 3_000,
            peer_window: 10_000,
        };
        frames(&mut r, 100, 1000, t, Some(k));
        // Three seconds later one more write: everything older than the window goes except
        // what the bound keeps (2 x 13,000 bytes), counted back from the newest.
        frames(&mut r, 1, 1000, t + Duration::from_secs(3), Some(k));
        assert!(r.len() >= 26_000 && r.len() < 27_000, "{}", r.len());
        // The largest window seen counts, even if the server advertises less later.
        let small = Kernel {
            unacked: 0,
            peer_window: 100,
        };
        frames(&mut r, 1, 1000, t + Duration::from_secs(4), Some(small));
        assert!(r.len() >= 20_000 && r.len() < 21_000, "{}", r.len());
    }

    #[test]
    fn without_kernel_figures_the_time_window_alone_counts() {
        let mut r = Replay::default();
        let t = Instant::now();
        frames(&mut r, 10, 1000, t, None);
        frames(&mut r, 1, 1000, t + Duration::from_secs(3), None);
        assert_eq!(r.len(), 1000);
    }

    #[test]
    fn memory_is_bounded() {
        let mut r = Replay::default();
        let huge = Kernel {
            unacked: usize::MAX,
            peer_window: usize::MAX,
        };
        frames(&mut r, 70, 1 << 20, Instant::now(), Some(huge));
        assert!(r.len() <= MAX_BYTES && r.len() > MAX_BYTES - (1 << 20));
    }

    #[test]
    fn the_kernel_reports_a_live_connection() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let k = kernel(&c);
        if cfg!(target_os = "linux") {
            // A fresh connection: nothing unacknowledged, the listener's initial window.
            let k = k.expect("TCP_INFO");
            assert_eq!(k.unacked, 0);
            assert!(k.peer_window > 0);
        }
    }
}
