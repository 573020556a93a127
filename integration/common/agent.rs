//! The live agent as a process: `sfprocessor -driver socket` with its metrics endpoint on a
//! free port and stderr in a file, and the collector simulator (`sfgen -socket`).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::peers::free_tcp_port;

/// The agent on a socket, with its metrics endpoint on a free port; stderr goes to a file.
pub struct Agent {
    pub child: Option<Child>,
    pub sock: PathBuf,
    pub port: u16,
    pub log: PathBuf,
}

impl Agent {
    pub fn start(dir: &Path, cfg: &Path) -> Agent {
        Self::start_with(dir, cfg, &[], |_| {})
    }

    /// [`Agent::start`] with more arguments (before PATH) and a last word on the command
    /// (environment, limits).
    pub fn start_with(
        dir: &Path,
        cfg: &Path,
        args: &[&str],
        tweak: impl FnOnce(&mut Command),
    ) -> Agent {
        let sock = dir.join("sock/sysflow.sock");
        let mut all = vec!["-driver", "socket"];
        all.extend_from_slice(args);
        all.push(sock.to_str().unwrap());
        Self::spawn(dir, cfg, &all, sock.clone(), tweak)
    }

    /// The agent with exactly `args` after `-config` and `-metrics` (drivers and paths from
    /// the configuration, say); `sock` is the socket it will listen on.
    pub fn spawn(
        dir: &Path,
        cfg: &Path,
        args: &[&str],
        sock: PathBuf,
        tweak: impl FnOnce(&mut Command),
    ) -> Agent {
        let port = free_tcp_port();
        let log = dir.join("agent.log");
        let mut cmd = Command::new(super::sfprocessor_bin());
        cmd.args(["-config", cfg.to_str().unwrap()])
            .args(["-metrics", &format!("127.0.0.1:{port}"), "-log", "info"])
            .args(args)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        tweak(&mut cmd);
        let child = cmd.spawn().expect("start the agent");
        let a = Agent {
            child: Some(child),
            sock,
            port,
            log,
        };
        a.wait_for("the agent to listen", Duration::from_secs(30), || {
            a.get("/readyz").0 == 200 && a.sock.exists()
        });
        a
    }

    /// The agent's PID.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// GET `path` on the metrics endpoint: (status, body); (0, "") when unreachable.
    pub fn get(&self, path: &str) -> (u16, String) {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return (0, String::new());
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
        let req = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
        if s.write_all(req.as_bytes()).is_err() {
            return (0, String::new());
        }
        let mut resp = String::new();
        let _ = s.read_to_string(&mut resp);
        let status = resp
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = resp.split_once("\r\n\r\n").map(|x| x.1).unwrap_or("");
        (status, body.to_string())
    }

    /// The value of the sample `series` (name and labels as exposed), 0 when absent.
    pub fn metric(&self, series: &str) -> f64 {
        let (_, body) = self.get("/metrics");
        sample(&body, series)
    }

    pub fn wait_for(&self, what: &str, limit: Duration, ok: impl Fn() -> bool) {
        let t = Instant::now();
        while !ok() {
            assert!(
                t.elapsed() < limit,
                "timed out waiting for {what}; agent log:\n{}",
                tail(&self.log(), 30)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until the agent has taken `packets` packets off the socket.
    pub fn wait_packets(&self, packets: u64) {
        self.wait_for(
            &format!("{packets} packets"),
            Duration::from_secs(120),
            || self.metric("sfprocessor_socket_packets_total") as u64 >= packets,
        );
    }

    /// SIGTERM, then the exit code (killed and failed after 60 s).
    pub fn terminate(&mut self) -> i32 {
        let mut c = self.child.take().expect("running");
        signal(c.id(), "-TERM");
        let t = Instant::now();
        loop {
            if let Some(st) = c.try_wait().unwrap() {
                return st.code().unwrap_or(-1);
            }
            if t.elapsed() > Duration::from_secs(60) {
                let _ = c.kill();
                panic!(
                    "the agent did not stop after SIGTERM:\n{}",
                    tail(&self.log(), 30)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub fn sample(body: &str, series: &str) -> f64 {
    body.lines()
        .find_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            (name == series).then(|| value.parse().ok())?
        })
        .unwrap_or(0.0)
}

pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

pub fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill").args([sig, &pid.to_string()]).status();
}

/// `sfgen -socket` as a process (so a test can kill it).
pub fn simulator(sock: &Path, args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_sfgen"))
        .arg("-socket")
        .arg(sock)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start sfgen")
}

/// Waits for the simulator to finish; returns the records it says the agent accepted.
pub fn finished(c: Child) -> u64 {
    let o = c.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "sfgen: {err}");
    err.split("accepted ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("sfgen did not report: {err}"))
}

pub fn file_config(dir: &Path, out: &Path) -> PathBuf {
    super::write_file(dir, "file.json", &super::file_pipeline(out))
}

pub fn events(path: &Path) -> u64 {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .count() as u64
}
