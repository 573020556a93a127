//! systemd's notify protocol (`Type=notify`, `WatchdogSec=`): `READY=1` once the pipeline
//! runs, `WATCHDOG=1` at half the watchdog interval while the process is responsive, and
//! `STOPPING=1` when it drains. Without `NOTIFY_SOCKET` in the environment (not under
//! systemd, or another unit type) nothing is sent.
//!
//! The pinger reads the run's node table (the lock the metrics endpoint takes), so a process
//! wedged on it stops pinging and systemd restarts it.

use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crate::pipeline::Live;

/// A connection to the service manager's notification socket.
pub struct Notifier {
    sock: UnixDatagram,
    addr: SocketAddr,
}

impl Notifier {
    /// From `NOTIFY_SOCKET` (a path, or `@name` for an abstract socket).
    pub fn from_env() -> Option<Notifier> {
        let path = std::env::var_os("NOTIFY_SOCKET")?;
        let path = path.to_str()?;
        let addr = if let Some(name) = path.strip_prefix('@') {
            use std::os::linux::net::SocketAddrExt;
            SocketAddr::from_abstract_name(name.as_bytes()).ok()?
        } else {
            SocketAddr::from_pathname(path).ok()?
        };
        let sock = UnixDatagram::unbound().ok()?;
        Some(Notifier { sock, addr })
    }

    /// Sends one state line; a failure is logged once per call and otherwise ignored (the
    /// agent must not stop because the manager went away).
    pub fn send(&self, state: &str) {
        if let Err(e) = self.sock.send_to_addr(state.as_bytes(), &self.addr) {
            tracing::debug!("sd_notify {state}: {e}");
        }
    }
}

/// The watchdog interval systemd asked for (`WATCHDOG_USEC`, for this process if
/// `WATCHDOG_PID` names one).
pub fn watchdog_interval() -> Option<Duration> {
    if let Some(pid) = std::env::var_os("WATCHDOG_PID") {
        if pid.to_str()?.parse::<u32>().ok()? != std::process::id() {
            return None;
        }
    }
    let us: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    (us > 0).then(|| Duration::from_micros(us))
}

/// Tells the manager the agent is stopping (at the end of a run, in case the notifier thread
/// had no time to).
pub fn stopping() {
    if let Some(n) = Notifier::from_env() {
        n.send("STOPPING=1");
    }
}

/// Starts the notifier thread for a run: `READY=1` when `live` starts running, watchdog
/// pings meanwhile, `STOPPING=1` when it stops. Returns at once; `None` when not under a
/// notify-type unit.
pub fn spawn(live: Arc<Live>) -> Option<std::thread::JoinHandle<()>> {
    let n = Notifier::from_env()?;
    let watchdog = watchdog_interval();
    let tick = watchdog
        .map(|w| (w / 2).max(Duration::from_millis(10)))
        .unwrap_or(Duration::from_millis(200));
    std::thread::Builder::new()
        .name("sd-notify".into())
        .spawn(move || {
            let (mut ready, mut stopping) = (false, false);
            loop {
                // Taking the node table's lock: a wedged process stops here.
                let _ = live.snapshots().len();
                let running = live.running.load(Ordering::Relaxed);
                if running && !ready {
                    ready = true;
                    n.send("READY=1\nSTATUS=pipeline running");
                } else if (!running || live.draining.load(Ordering::Relaxed)) && ready && !stopping
                {
                    // Pings go on while the exporters drain: the unit's stop timeout bounds it.
                    stopping = true;
                    n.send("STOPPING=1\nSTATUS=draining");
                }
                if watchdog.is_some() {
                    n.send("WATCHDOG=1");
                }
                std::thread::sleep(tick);
            }
        })
        .ok()
}
