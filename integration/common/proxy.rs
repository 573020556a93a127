//! A TCP forwarder between a client and a server, that a test can cut as a crash would: every
//! connection dropped and the port refusing connections until it is restored. A broker killed
//! with -9 looks like that to its clients; cutting the forwarder instead leaves the broker's
//! own durability out of the measurement (what it acknowledged stays stored), so a test counts
//! what the client lost, not what the server did.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct Proxy {
    pub port: u16,
    target: u16,
    /// Bumped by `cut`: connections of an older generation stop.
    generation: Arc<AtomicU64>,
    up: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
    listener: Option<std::thread::JoinHandle<()>>,
}

impl Proxy {
    /// Forwards `127.0.0.1:port` (a free port) to `127.0.0.1:target`.
    pub fn start(port: u16, target: u16) -> Proxy {
        let mut p = Proxy {
            port,
            target,
            generation: Arc::new(AtomicU64::new(0)),
            up: Arc::new(AtomicBool::new(false)),
            open: Arc::new(Mutex::new(Vec::new())),
            listener: None,
        };
        p.restore();
        p
    }

    /// Drops every connection at once, each with a reset as a killed process's kernel sends
    /// when data was unread, and stops listening (connections are refused).
    pub fn crash(&mut self) {
        for s in self.open.lock().unwrap().iter() {
            set_linger_zero(s);
        }
        self.cut();
    }

    /// Closes every connection (FIN, as a server that stops) and stops listening.
    pub fn cut(&mut self) {
        self.up.store(false, Ordering::SeqCst);
        self.generation.fetch_add(1, Ordering::SeqCst);
        // Unblock the accept loop so it sees `up` false and closes the listener.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(h) = self.listener.take() {
            let _ = h.join();
        }
        for s in self.open.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    /// Listens again.
    pub fn restore(&mut self) {
        let l = loop {
            match TcpListener::bind(("127.0.0.1", self.port)) {
                Ok(l) => break l,
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        };
        self.up.store(true, Ordering::SeqCst);
        let (up, generation, open, target) = (
            self.up.clone(),
            self.generation.clone(),
            self.open.clone(),
            self.target,
        );
        self.listener = Some(std::thread::spawn(move || {
            for c in l.incoming() {
                if !up.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = c else { continue };
                let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                    continue;
                };
                let gen = generation.load(Ordering::SeqCst);
                {
                    let mut o = open.lock().unwrap();
                    o.push(client.try_clone().unwrap());
                    o.push(server.try_clone().unwrap());
                }
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    let generation = generation.clone();
                    std::thread::spawn(move || {
                        let mut buf = vec![0u8; 64 << 10];
                        loop {
                            let n = match from.read(&mut buf) {
                                Ok(0) | Err(_) => break,
                                Ok(n) => n,
                            };
                            if generation.load(Ordering::SeqCst) != gen
                                || to.write_all(&buf[..n]).is_err()
                            {
                                break;
                            }
                        }
                        let _ = to.shutdown(Shutdown::Both);
                        let _ = from.shutdown(Shutdown::Both);
                    });
                }
            }
        }));
    }
}

/// `SO_LINGER` 0: closing the socket resets the connection.
fn set_linger_zero(s: &TcpStream) {
    use std::os::fd::AsRawFd;
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket descriptor and a linger struct of the size given.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &l as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
    }
}
