//! An rsyslogd of each test's own (Debian's `rsyslog` + `rsyslog-gnutls`, which `.ci/run`
//! installs) on free loopback ports (TCP, UDP, TLS with a self-signed certificate made with
//! openssl), writing every message to a file, stopped by PID. With `CI=true` a missing
//! rsyslogd or openssl fails the test; elsewhere the test says why it is skipped.

use std::net::{TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::peers::{ci, free_tcp_port};

/// Whether the peer programs exist; panics under CI when they do not.
pub fn peers_available() -> bool {
    let have = |p: &str| {
        Command::new(p)
            .arg("-v")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok()
    };
    let ok = have("rsyslogd") && have("openssl");
    if !ok {
        assert!(
            !ci(),
            "CI=true: rsyslogd and openssl must be installed (.ci/run installs them)"
        );
        eprintln!("skipped: rsyslogd or openssl not installed (run .ci/run, or apt-get install rsyslog rsyslog-gnutls openssl)");
    }
    ok
}

pub fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An rsyslogd of our own, listening on loopback and writing raw messages to `out`.
pub struct Rsyslog {
    pub dir: PathBuf,
    pub conf: PathBuf,
    pub out: PathBuf,
    pub tcp: u16,
    pub udp: u16,
    pub tls: u16,
    pub child: Option<Child>,
}

impl Rsyslog {
    pub fn new(dir: &Path) -> Rsyslog {
        let (key, ca) = super::self_signed(dir);
        let (tcp, udp, tls) = (free_tcp_port(), free_udp_port(), free_tcp_port());
        let out = dir.join("received.log");
        let work = dir.join("work");
        std::fs::create_dir_all(&work).unwrap();
        let conf = dir.join("rsyslog.conf");
        std::fs::write(
            &conf,
            format!(
                r#"global(workDirectory="{work}" maxMessageSize="256k"
       defaultNetstreamDriverCAFile="{ca}" defaultNetstreamDriverCertFile="{ca}"
       defaultNetstreamDriverKeyFile="{key}")
# rsyslog drops what is still queued 1.5 s after a SIGTERM by default; a restart that must
# not lose accepted messages needs a longer drain (docs/operations.md says so).
main_queue(queue.timeoutShutdown="60000")
module(load="imtcp")
module(load="imudp")
input(type="imtcp" address="127.0.0.1" port="{tcp}")
input(type="imtcp" address="127.0.0.1" port="{tls}" streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="anon")
input(type="imudp" address="127.0.0.1" port="{udp}")
template(name="raw" type="string" string="%rawmsg%\n")
*.* action(type="omfile" file="{out}" template="raw")
"#,
                work = work.display(),
                ca = ca.display(),
                key = key.display(),
                out = out.display(),
            ),
        )
        .unwrap();
        let mut r = Rsyslog {
            dir: dir.to_path_buf(),
            conf,
            out,
            tcp,
            udp,
            tls,
            child: None,
        };
        r.start();
        r
    }

    pub fn start(&mut self) {
        let child = Command::new("rsyslogd")
            .arg("-n")
            .arg("-f")
            .arg(&self.conf)
            .arg("-i")
            .arg(self.dir.join("rsyslogd.pid"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start rsyslogd");
        self.child = Some(child);
        // Wait (up to 400 polls of 50 ms) until both stream ports accept.
        let listening = || {
            TcpStream::connect(("127.0.0.1", self.tcp)).is_ok()
                && TcpStream::connect(("127.0.0.1", self.tls)).is_ok()
        };
        let mut polls = 0;
        while !listening() && polls < 400 {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(st)) = c.try_wait() {
                    panic!("rsyslogd exited at start: {st}");
                }
            }
            polls += 1;
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(listening(), "rsyslogd did not listen");
    }

    /// SIGTERM (rsyslogd writes out its queue, up to the 60 s configured above) and wait.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(c.id().to_string())
                .status();
            let t = Instant::now();
            while t.elapsed() < Duration::from_secs(60) {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Freezes rsyslogd (SIGSTOP): its connections stay open and nothing is read.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Continues a frozen rsyslogd (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    /// SIGKILL: what it held unwritten is gone.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn signal(&self, sig: &str) {
        if let Some(c) = &self.child {
            let _ = Command::new("kill")
                .arg(sig)
                .arg(c.id().to_string())
                .status();
        }
    }

    /// The JSON bodies received so far (the MSG part of each RFC 5424 line), after stopping.
    pub fn bodies(&mut self) -> Vec<String> {
        self.stop();
        let text = std::fs::read_to_string(&self.out).unwrap_or_default();
        text.lines()
            .filter(|l| !l.is_empty())
            .map(|l| {
                let f: Vec<&str> = l.splitn(8, ' ').collect();
                assert_eq!(f.len(), 8, "not an RFC 5424 line: {l}");
                assert_eq!(f[0], "<25>1", "facility daemon, severity alert: {l}");
                assert_eq!(f[3], "sfprocessor");
                assert_eq!(f[5], "sysflow", "the tag is the MSGID, as upstream");
                f[7].to_string()
            })
            .collect()
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        self.resume();
        self.stop();
    }
}
