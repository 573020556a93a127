//! The webhook transport (`export: http`) end to end: the agent runs on an upstream trace and
//! posts to a real HTTP/1.1 server written here (threads, keep-alive, gzip and zstd bodies),
//! which counts records, checks credentials, and misbehaves on demand: 429/503 bursts with
//! `Retry-After`, connections reset before any answer, a 400, a slow answer.

mod common;

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn trace() -> PathBuf {
    common::upstream().join("sf-apis/pynb/data/attacks/express/mon.1531776742.sf")
}

/// What the server does with one request.
#[derive(Clone, Debug)]
enum Act {
    /// Answers this status, with an optional `Retry-After` and body.
    Status(u16, Option<u64>, &'static str),
    /// Closes the connection without answering (after reading the request).
    Reset,
}

/// One request as the server read it.
#[derive(Clone, Debug)]
struct Req {
    at: Instant,
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    /// The body after undoing `Content-Encoding`.
    body: Vec<u8>,
    /// The status answered (0: reset).
    answered: u16,
}

impl Req {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct State {
    /// Acts for the next requests, in order; then 200.
    script: VecDeque<Act>,
    /// Sleep before each answer.
    delay: Duration,
    reqs: Vec<Req>,
}

/// The test's webhook: a thread per connection, requests served in order.
struct Server {
    port: u16,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
}

impl Server {
    fn start(script: Vec<Act>, delay: Duration) -> Server {
        Self::start_with(script, delay, None)
    }

    /// An HTTPS server with `tls`'s certificate.
    fn start_with(
        script: Vec<Act>,
        delay: Duration,
        tls: Option<native_tls::TlsAcceptor>,
    ) -> Server {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(State {
            script: script.into(),
            delay,
            reqs: Vec::new(),
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp) = (state.clone(), stop.clone());
        std::thread::spawn(move || {
            for c in l.incoming() {
                if sp.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(c) = c else { continue };
                let st = st.clone();
                let tls = tls.clone();
                std::thread::spawn(move || match tls {
                    None => serve(c, st),
                    Some(t) => {
                        if let Ok(c) = t.accept(c) {
                            serve(c, st)
                        }
                    }
                });
            }
        });
        Server { port, state, stop }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn https_url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.port)
    }

    fn reqs(&self) -> Vec<Req> {
        self.state.lock().unwrap().reqs.clone()
    }

    /// The records of the requests answered 2xx, in order.
    fn delivered(&self) -> Vec<serde_json::Value> {
        let mut out = Vec::new();
        for r in self
            .reqs()
            .iter()
            .filter(|r| (200..300).contains(&r.answered))
        {
            out.extend(records_of(r));
        }
        out
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// A request body's records: NDJSON lines, or the elements of one JSON array.
fn records_of(r: &Req) -> Vec<serde_json::Value> {
    let text = std::str::from_utf8(&r.body).expect("UTF-8 body");
    if r.header("content-type") == Some("application/json") {
        match serde_json::from_str(text).expect("a JSON array body") {
            serde_json::Value::Array(a) => a,
            other => panic!("not an array: {other}"),
        }
    } else {
        text.lines()
            .map(|l| serde_json::from_str(l).expect("an NDJSON line"))
            .collect()
    }
}

fn serve<S: Read + Write>(c: S, st: Arc<Mutex<State>>) {
    let mut r = BufReader::new(c);
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or("").to_string();
        let path = parts.next().unwrap_or("").to_string();
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            if r.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.push((k.trim().to_string(), v.trim().to_string()));
            }
        }
        let get = |n: &str| {
            headers
                .iter()
                .find(|(k, _): &&(String, String)| k.eq_ignore_ascii_case(n))
                .map(|(_, v)| v.clone())
        };
        let len: usize = get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut raw = vec![0u8; len];
        if r.read_exact(&mut raw).is_err() {
            return;
        }
        let body = match get("content-encoding").as_deref() {
            Some("gzip") => {
                let mut out = Vec::new();
                flate2::read::GzDecoder::new(&raw[..])
                    .read_to_end(&mut out)
                    .expect("gzip body");
                out
            }
            Some("zstd") => zstd::decode_all(&raw[..]).expect("zstd body"),
            _ => raw,
        };
        let (act, delay) = {
            let mut s = st.lock().unwrap();
            (s.script.pop_front(), s.delay)
        };
        std::thread::sleep(delay);
        let act = act.unwrap_or(Act::Status(200, None, "{\"ok\":true}"));
        let answered = match &act {
            Act::Status(s, ..) => *s,
            Act::Reset => 0,
        };
        st.lock().unwrap().reqs.push(Req {
            at: Instant::now(),
            method,
            path,
            headers,
            body,
            answered,
        });
        match act {
            Act::Reset => return,
            Act::Status(s, retry, text) => {
                let retry = retry
                    .map(|r| format!("Retry-After: {r}\r\n"))
                    .unwrap_or_default();
                let msg = format!(
                    "HTTP/1.1 {s} X\r\n{retry}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{text}",
                    text.len()
                );
                if r.get_mut().write_all(msg.as_bytes()).is_err() {
                    return;
                }
            }
        }
    }
}

/// An enrich pipeline (every record) posting JSON to the webhook with `keys` added.
fn config(dir: &Path, keys: &str) -> PathBuf {
    common::write_file(
        dir,
        "webhook.json",
        &common::exporter_pipeline(&format!(r#""export":"http",{keys}"#)),
    )
}

fn run(cfg: &Path) -> std::process::Output {
    common::sfprocessor(
        &[
            "-config",
            cfg.to_str().unwrap(),
            "-log",
            "warn",
            trace().to_str().unwrap(),
        ],
        &[],
    )
}

/// The records the file exporter writes for the trace, parsed.
fn expected(dir: &Path) -> Vec<serde_json::Value> {
    common::expected_lines(dir, &trace())
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn every_record_arrives_once_as_ndjson_with_basic_auth_headers_and_gzip() {
    let dir = tempfile::tempdir().unwrap();
    let want = expected(dir.path());
    let srv = Server::start(vec![], Duration::ZERO);
    let cfg = config(
        dir.path(),
        &format!(
            r#""http.url":"{}","http.username":"sf","http.password":"pa55","http.headers":{{"X-Source":"node-7"}},"http.header.X-Api-Key":"k1","http.compression":"gzip","buffer":"300""#,
            srv.url("/hook?team=a")
        ),
    );
    let o = run(&cfg);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let reqs = srv.reqs();
    // Batches of about `buffer` records (a batch ships once it holds at least that many).
    assert!(reqs.len() > 10, "{} requests", reqs.len());
    for r in &reqs {
        assert_eq!(r.method, "POST");
        assert_eq!(r.path, "/hook?team=a");
        // base64("sf:pa55")
        assert_eq!(r.header("authorization"), Some("Basic c2Y6cGE1NQ=="));
        assert_eq!(r.header("x-source"), Some("node-7"));
        assert_eq!(r.header("x-api-key"), Some("k1"));
        assert_eq!(r.header("content-encoding"), Some("gzip"));
        assert_eq!(r.header("content-type"), Some("application/x-ndjson"));
        assert!(!records_of(r).is_empty());
    }
    assert_eq!(srv.delivered(), want);
}

#[test]
fn array_bodies_with_zstd_and_a_bearer_token_from_the_vault() {
    let dir = tempfile::tempdir().unwrap();
    let want = expected(dir.path());
    let vault = dir.path().join("secrets");
    std::fs::create_dir(&vault).unwrap();
    std::fs::write(vault.join("http.token"), "t0ken\n").unwrap();
    let srv = Server::start(vec![], Duration::ZERO);
    let cfg = config(
        dir.path(),
        &format!(
            r#""http.url":"{}","http.auth":"bearer","http.body":"array","http.compression":"zstd","http.method":"PUT","vault.secrets":"true","vault.path":"{}""#,
            srv.url("/"),
            vault.display()
        ),
    );
    let o = run(&cfg);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for r in srv.reqs() {
        assert_eq!(r.method, "PUT");
        assert_eq!(r.header("authorization"), Some("Bearer t0ken"));
        assert_eq!(r.header("content-type"), Some("application/json"));
    }
    assert_eq!(srv.delivered(), want);
}

#[test]
fn bursts_of_429_and_503_are_retried_no_earlier_than_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let want = expected(dir.path());
    let srv = Server::start(
        vec![
            Act::Status(429, Some(1), "slow down"),
            Act::Status(503, None, "busy"),
            Act::Status(429, Some(1), "slow down"),
            Act::Status(500, None, "oops"),
        ],
        Duration::ZERO,
    );
    let cfg = config(
        dir.path(),
        &format!(r#""http.url":"{}","retry.backoff":"10ms""#, srv.url("/")),
    );
    let o = run(&cfg);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let reqs = srv.reqs();
    let answered: Vec<u16> = reqs.iter().map(|r| r.answered).take(5).collect();
    assert_eq!(answered, [429, 503, 429, 500, 200]);
    // The request after each 429 came at least the second it asked for later.
    for i in [0, 2] {
        let gap = reqs[i + 1].at - reqs[i].at;
        assert!(gap >= Duration::from_millis(900), "request {i}: {gap:?}");
    }
    assert_eq!(srv.delivered(), want);
}

#[test]
fn connections_reset_before_an_answer_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let want = expected(dir.path());
    let srv = Server::start(vec![Act::Reset, Act::Reset, Act::Reset], Duration::ZERO);
    let cfg = config(
        dir.path(),
        &format!(r#""http.url":"{}","retry.backoff":"10ms""#, srv.url("/")),
    );
    let o = run(&cfg);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        srv.reqs().iter().filter(|r| r.answered == 0).count(),
        3,
        "three resets"
    );
    assert_eq!(srv.delivered(), want);
}

#[test]
fn a_400_fails_its_batch_only_and_logs_the_answer() {
    let dir = tempfile::tempdir().unwrap();
    let want = expected(dir.path());
    let srv = Server::start(
        vec![Act::Status(400, None, "{\"error\":\"field x is bad\"}")],
        Duration::ZERO,
    );
    let cfg = config(
        dir.path(),
        &format!(r#""http.url":"{}","buffer":"100""#, srv.url("/")),
    );
    let o = run(&cfg);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("HTTP 400") && err.contains("field x is bad"),
        "{err}"
    );
    let reqs = srv.reqs();
    assert_eq!(reqs.iter().filter(|r| r.answered == 400).count(), 1);
    let refused = records_of(&reqs[0]).len();
    let got = srv.delivered();
    assert_eq!(got.len() + refused, want.len());
    assert_eq!(got[..], want[refused..]);
}

#[test]
fn a_slow_webhook_backs_the_pipeline_up_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let want = expected(dir.path());
    let srv = Server::start(vec![], Duration::from_millis(150));
    let cfg = config(
        dir.path(),
        &format!(
            r#""http.url":"{}","buffer":"500","queue":"1""#,
            srv.url("/")
        ),
    );
    let t = Instant::now();
    let o = run(&cfg);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let n = srv.reqs().len();
    assert!(n > 10, "{n} requests");
    // Each request waited its 150 ms: the run took at least that long per request.
    assert!(t.elapsed() >= Duration::from_millis(150) * n as u32);
    assert_eq!(srv.delivered(), want);
}

#[test]
fn test_flag_reaches_the_webhook_and_names_it_when_down() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(vec![], Duration::ZERO);
    let up = config(dir.path(), &format!(r#""http.url":"{}""#, srv.url("/h")));
    let o = common::sfprocessor(&["-config", up.to_str().unwrap(), "-test"], &[]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let port = common::peers::free_tcp_port();
    let down = config(
        dir.path(),
        &format!(
            r#""http.url":"http://127.0.0.1:{port}/h","http.password":"hidden-pw","http.username":"u""#
        ),
    );
    let o = common::sfprocessor(&["-config", down.to_str().unwrap(), "-test"], &[]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(o.status.code(), Some(1), "{text}");
    assert!(
        text.contains(&format!("http://127.0.0.1:{port}/h")),
        "{text}"
    );
    assert!(!text.contains("hidden-pw"), "{text}");
}

#[test]
fn configuration_errors_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    for (keys, key, what) in [
        (
            r#""http.method":"GET","http.url":"http://h/""#,
            "http.method",
            "GET",
        ),
        (
            r#""http.compression":"br","http.url":"http://h/""#,
            "http.compression",
            "br",
        ),
        (r#""http.url":"ftp://h/""#, "http.url", "ftp://h/"),
        (r#""http.timeout":"0s""#, "http.url", "missing"),
        (
            r#""http.url":"http://h/","http.auth":"basic""#,
            "http.username",
            "missing",
        ),
        (
            r#""http.url":"http://h/","http.headers":"{\"a b\":\"x\"}""#,
            "http.headers",
            "a b",
        ),
    ] {
        let cfg = config(dir.path(), keys);
        let o = common::sfprocessor(&["-config", cfg.to_str().unwrap(), "-test"], &[]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{keys}: {err}");
        assert!(err.contains(key) && err.contains(what), "{keys}: {err}");
    }
}

#[test]
fn https_is_verified_against_the_ca_file_and_a_client_certificate_loads() {
    let dir = tempfile::tempdir().unwrap();
    let want = expected(dir.path());
    let (key, cert) = common::self_signed(dir.path());
    let id = native_tls::Identity::from_pkcs8(
        &std::fs::read(&cert).unwrap(),
        &std::fs::read(&key).unwrap(),
    )
    .unwrap();
    let srv = Server::start_with(
        vec![],
        Duration::ZERO,
        Some(native_tls::TlsAcceptor::new(id).unwrap()),
    );
    // Not signed by a system root: refused, counted failed, the log says why.
    let cfg = config(
        dir.path(),
        &format!(
            r#""http.url":"{}","retry.drain_timeout":"1s","retry.backoff":"50ms""#,
            srv.https_url("/")
        ),
    );
    let o = run(&cfg);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    assert!(srv.delivered().is_empty());
    // With the CA file (and the same pair as a client certificate, which this server does
    // not ask for: it must load and not get in the way).
    let cfg = config(
        dir.path(),
        &format!(
            r#""http.url":"{}","http.cafile":"{}","http.certfile":"{}","http.keyfile":"{}""#,
            srv.https_url("/"),
            cert.display(),
            cert.display(),
            key.display()
        ),
    );
    let o = run(&cfg);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(srv.delivered(), want);
}

#[test]
fn a_long_retry_after_does_not_hold_the_shutdown_past_the_drain_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(
        (0..50)
            .map(|_| Act::Status(429, Some(300), "come back in five minutes"))
            .collect(),
        Duration::ZERO,
    );
    let cfg = config(
        dir.path(),
        &format!(
            r#""http.url":"{}","retry.drain_timeout":"1s""#,
            srv.url("/")
        ),
    );
    let t = Instant::now();
    let o = run(&cfg);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        t.elapsed() < Duration::from_secs(60),
        "waited {:?} for a 300 s Retry-After",
        t.elapsed()
    );
    assert!(err.contains("not delivered"), "{err}");
}
