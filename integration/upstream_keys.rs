//! Upstream 0.7.0 keys this build used to refuse or ignore (issue 25, point 2): the secret
//! vault, parallel bulk workers and the bulk flush interval, Elasticsearch TLS verification
//! with its opt-out, several drivers at once, the file driver's configured path, `actiondir`,
//! and the `findings.*` keys.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::agent::{events, finished, simulator, tail};
use common::{expected_lines, sfprocessor, write_file, write_trace};
use sfprocessor::sysflow::writer::SchemaVersion;

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// What the fake Elasticsearch server saw.
#[derive(Default)]
struct Seen {
    auth: Mutex<Vec<String>>,
    docs: AtomicUsize,
    busy: AtomicUsize,
    most_busy: AtomicUsize,
}

/// A small Elasticsearch bulk API on loopback: `GET /` answers the banner, `POST /_bulk`
/// creates every document (after `delay`, counting requests in progress), over TLS when an
/// identity is given. Returns the port.
fn fake_es(delay: Duration, tls: Option<native_tls::TlsAcceptor>, seen: Arc<Seen>) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for c in l.incoming().flatten() {
            let seen = seen.clone();
            let tls = tls.clone();
            std::thread::spawn(move || {
                let stream: Box<dyn ReadWrite> = match tls {
                    Some(a) => match a.accept(c) {
                        Ok(s) => Box::new(s),
                        Err(_) => return,
                    },
                    None => Box::new(c),
                };
                serve(stream, delay, &seen);
            });
        }
    });
    port
}

trait ReadWrite: Read + Write + Send {}
impl<T: Read + Write + Send> ReadWrite for T {}

fn serve(stream: Box<dyn ReadWrite>, delay: Duration, seen: &Seen) {
    let mut r = BufReader::new(stream);
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let request = line.clone();
        let mut len = 0usize;
        loop {
            line.clear();
            if r.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if line == "\r\n" {
                break;
            }
            let lower = line.to_ascii_lowercase();
            if let Some(v) = lower.strip_prefix("content-length:") {
                len = v.trim().parse().unwrap_or(0);
            }
            if lower.starts_with("authorization:") {
                seen.auth
                    .lock()
                    .unwrap()
                    .push(line.split_once(':').unwrap().1.trim().to_string());
            }
        }
        let mut body = vec![0u8; len];
        if r.read_exact(&mut body).is_err() {
            return;
        }
        let answer = if request.starts_with("POST") {
            let now = seen.busy.fetch_add(1, Ordering::SeqCst) + 1;
            seen.most_busy.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(delay);
            seen.busy.fetch_sub(1, Ordering::SeqCst);
            let actions = body
                .split(|b| *b == b'\n')
                .filter(|l| !l.is_empty())
                .count()
                / 2;
            seen.docs.fetch_add(actions, Ordering::SeqCst);
            let items: Vec<&str> = (0..actions)
                .map(|_| r#"{"create":{"status":201}}"#)
                .collect();
            format!(r#"{{"errors":false,"items":[{}]}}"#, items.join(","))
        } else {
            r#"{"version":{"number":"8.11.0"}}"#.to_string()
        };
        let resp = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{answer}",
            answer.len()
        );
        if r.get_mut().write_all(resp.as_bytes()).is_err() {
            return;
        }
    }
}

/// An ES exporter pipeline with `extra` keys.
fn es_pipeline(url: &str, extra: &str) -> String {
    common::exporter_pipeline(&format!(
        r#""export":"es","es.addresses":"{url}","es.index":"sf"{extra}"#
    ))
}

fn base64(s: &str) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let b = s.as_bytes();
    let mut out = String::new();
    for c in b.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn vault_secrets_are_read_from_files_sent_and_never_shown() {
    let dir = tempfile::tempdir().unwrap();
    let seen = Arc::new(Seen::default());
    let port = fake_es(Duration::ZERO, None, seen.clone());
    let vault = dir.path().join("secrets");
    std::fs::create_dir(&vault).unwrap();
    std::fs::write(
        vault.join("es.username"),
        format!("{}\n", base64("elastic")),
    )
    .unwrap();
    std::fs::write(
        vault.join("es.password"),
        format!("{}\n", base64("Sup3rSecret")),
    )
    .unwrap();
    let cfg = write_file(
        dir.path(),
        "es.json",
        &es_pipeline(
            &format!("http://127.0.0.1:{port}"),
            &format!(
                r#","vault.secrets":"true","vault.path":"{}","vault.encoding":"base64""#,
                vault.display()
            ),
        ),
    );
    // -test contacts the server with the vault's credentials and shows neither.
    let o = sfprocessor(&["-test", "-config", cfg.to_str().unwrap()], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        seen.auth.lock().unwrap().first().map(String::as_str),
        Some(format!("Basic {}", base64("elastic:Sup3rSecret")).as_str())
    );
    let all = stdout(&o) + &stderr(&o);
    assert!(!all.contains("Sup3rSecret") && !all.contains(&base64("Sup3rSecret")));
    // A run sends them with every bulk request.
    let trace = dir.path().join("t.sf");
    write_trace(&trace, 81, 300, "deflate", SchemaVersion::V5);
    let o = sfprocessor(
        &["-config", cfg.to_str().unwrap(), trace.to_str().unwrap()],
        &[],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stderr(&o).contains("Sup3rSecret"));
    assert!(seen.docs.load(Ordering::SeqCst) > 0);
    assert!(seen
        .auth
        .lock()
        .unwrap()
        .iter()
        .all(|a| a == &format!("Basic {}", base64("elastic:Sup3rSecret"))));
    // A missing secret file and a missing vault directory are configuration errors.
    std::fs::remove_file(vault.join("es.username")).unwrap();
    let o = sfprocessor(&["-test", "-config", cfg.to_str().unwrap()], &[]);
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(
        e.contains("key `es.username`")
            && e.contains(&vault.join("es.username").display().to_string()),
        "{e}"
    );
    let cfg = write_file(
        dir.path(),
        "es2.json",
        &es_pipeline(
            &format!("http://127.0.0.1:{port}"),
            r#","vault.secrets":"true","vault.path":"/no/such/vault""#,
        ),
    );
    let o = sfprocessor(&["-test", "-config", cfg.to_str().unwrap()], &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("vault.path") && stderr(&o).contains("/no/such/vault"));
}

#[test]
fn bulk_workers_send_in_parallel_and_every_document_arrives_once() {
    let dir = tempfile::tempdir().unwrap();
    let seen = Arc::new(Seen::default());
    let port = fake_es(Duration::from_millis(150), None, seen.clone());
    let trace = dir.path().join("t.sf");
    write_trace(&trace, 82, 4_000, "deflate", SchemaVersion::V5);
    let reference = dir.path().join("reference");
    std::fs::create_dir(&reference).unwrap();
    let want = expected_lines(&reference, &trace).len();
    let cfg = write_file(
        dir.path(),
        "es.json",
        &es_pipeline(
            &format!("http://127.0.0.1:{port}"),
            r#","es.bulk.numWorkers":"4","es.bulk.flushTimeout":"100ms","buffer":"5000""#,
        ),
    );
    let o = sfprocessor(
        &["-config", cfg.to_str().unwrap(), trace.to_str().unwrap()],
        &[],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(seen.docs.load(Ordering::SeqCst), want);
    assert!(
        seen.most_busy.load(Ordering::SeqCst) >= 2,
        "bulk requests in flight at once: {}",
        seen.most_busy.load(Ordering::SeqCst)
    );
}

/// A self-signed certificate for 127.0.0.1: (PKCS#8 key, certificate) as PEM.
fn self_signed(dir: &Path) -> (Vec<u8>, Vec<u8>) {
    let (key, cert) = common::self_signed(dir);
    (std::fs::read(key).unwrap(), std::fs::read(cert).unwrap())
}

#[test]
fn elasticsearch_tls_is_verified_and_the_error_says_how_out() {
    if !common::rsyslog::peers_available() {
        return; // openssl makes the certificate
    }
    let dir = tempfile::tempdir().unwrap();
    let (key, cert) = self_signed(dir.path());
    let id = native_tls::Identity::from_pkcs8(&cert, &key).unwrap();
    let acceptor = native_tls::TlsAcceptor::new(id).unwrap();
    let seen = Arc::new(Seen::default());
    let port = fake_es(Duration::ZERO, Some(acceptor), seen);
    let url = format!("https://127.0.0.1:{port}");
    let cfg = write_file(dir.path(), "a.json", &es_pipeline(&url, ""));
    let o = sfprocessor(&["-test", "-config", cfg.to_str().unwrap()], &[]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains("es.cafile") && e.contains("es.tls.verify: false"),
        "the error names both ways out: {e}"
    );
    // Way out 1: the CA file.
    let ca = dir.path().join("cert.pem");
    let cfg = write_file(
        dir.path(),
        "b.json",
        &es_pipeline(&url, &format!(r#","es.cafile":"{}""#, ca.display())),
    );
    let o = sfprocessor(&["-test", "-config", cfg.to_str().unwrap()], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    // Way out 2: the explicit opt-out, warned.
    let cfg = write_file(
        dir.path(),
        "c.json",
        &es_pipeline(&url, r#","es.tls.verify":"false""#),
    );
    let o = sfprocessor(&["-test", "-config", cfg.to_str().unwrap()], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("es.tls.verify is false"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn a_socket_and_a_file_driver_feed_one_reader_with_their_own_counters() {
    let dir = tempfile::tempdir().unwrap();
    let file_trace = dir.path().join("f.sf");
    write_trace(&file_trace, 83, 2_000, "deflate", SchemaVersion::V5);
    let sock_trace = dir.path().join("s.sf");
    write_trace(&sock_trace, 84, 3_000, "deflate", SchemaVersion::V5);
    let (ra, rb) = (dir.path().join("ra"), dir.path().join("rb"));
    std::fs::create_dir(&ra).unwrap();
    std::fs::create_dir(&rb).unwrap();
    let mut want = expected_lines(&ra, &file_trace);
    want.extend(expected_lines(&rb, &sock_trace));
    want.sort();
    let out = dir.path().join("out.json");
    let sock = dir.path().join("live.sock");
    let cfg = write_file(
        dir.path(),
        "two.json",
        &common::file_pipeline(&out).replacen(
            "{\"pipeline\":[",
            &format!(
                r#"{{"drivers":[{{"driver":"socket","path":"{}"}},{{"driver":"file","path":"{}"}}],"pipeline":["#,
                sock.display(),
                file_trace.display()
            ),
            1,
        ),
    );
    // The drivers come from the configuration: no -driver, no PATH.
    let mut agent = common::agent::Agent::spawn(dir.path(), &cfg, &[], sock.clone(), |_| {});
    let sent = finished(simulator(&sock, &["-trace", sock_trace.to_str().unwrap()]));
    agent.wait_for("every record", Duration::from_secs(60), || {
        events(&out) as usize >= want.len()
    });
    let m = agent.get("/metrics").1;
    let received = |node: &str| {
        common::agent::sample(
            &m,
            &format!(
                "sfprocessor_node_sent_records_total{{node=\"{node}\",stage=\"driver\",exporter=\"\"}}"
            ),
        )
    };
    assert_eq!(
        received("driver[0]"),
        (sent + 1) as f64,
        "the socket's packets"
    );
    assert!(received("driver[1]") > 0.0, "the file's records");
    assert_eq!(agent.terminate(), 0, "{}", tail(&agent.log(), 20));
    let mut got: Vec<String> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    got.sort();
    assert_eq!(got.len(), want.len());
    assert!(
        got == want,
        "each driver's records assembled from its own entities"
    );
}

#[test]
fn two_collectors_on_two_sockets_keep_their_own_entity_tables() {
    let dir = tempfile::tempdir().unwrap();
    let (ta, tb) = (dir.path().join("a.sf"), dir.path().join("b.sf"));
    write_trace(&ta, 85, 3_000, "deflate", SchemaVersion::V5);
    write_trace(&tb, 86, 3_000, "deflate", SchemaVersion::V5);
    let (ra, rb) = (dir.path().join("ra"), dir.path().join("rb"));
    std::fs::create_dir(&ra).unwrap();
    std::fs::create_dir(&rb).unwrap();
    let mut want = expected_lines(&ra, &ta);
    want.extend(expected_lines(&rb, &tb));
    want.sort();
    let out = dir.path().join("out.json");
    let (sa, sb) = (dir.path().join("a.sock"), dir.path().join("b.sock"));
    let cfg = write_file(
        dir.path(),
        "two.json",
        &common::file_pipeline(&out).replacen(
            "{\"pipeline\":[",
            &format!(
                r#"{{"drivers":[{{"driver":"socket","path":"{}"}},{{"driver":"socket","path":"{}"}}],"pipeline":["#,
                sa.display(),
                sb.display()
            ),
            1,
        ),
    );
    let mut agent = common::agent::Agent::spawn(dir.path(), &cfg, &[], sa.clone(), |_| {});
    // Both collectors at once, interleaved at a modest rate: with shared tables each
    // header would reset the other's processes.
    let a = simulator(&sa, &["-trace", ta.to_str().unwrap(), "-rate", "3000"]);
    let b = simulator(&sb, &["-trace", tb.to_str().unwrap(), "-rate", "3000"]);
    finished(a);
    finished(b);
    agent.wait_for("every record", Duration::from_secs(60), || {
        events(&out) as usize >= want.len()
    });
    assert_eq!(agent.metric("sfprocessor_socket_listening"), 2.0);
    assert_eq!(agent.terminate(), 0, "{}", tail(&agent.log(), 20));
    let mut got: Vec<String> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    got.sort();
    assert_eq!(got.len(), want.len());
    assert!(got == want, "records assembled as from each trace alone");
}

#[test]
fn the_file_drivers_own_path_wins_actiondir_and_findings_are_warned() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("t.sf");
    write_trace(&trace, 87, 200, "deflate", SchemaVersion::V5);
    let out = dir.path().join("out.json");
    let cfg = write_file(
        dir.path(),
        "p.json",
        &common::file_pipeline(&out)
            .replacen(
                "{\"pipeline\":[",
                &format!(
                    r#"{{"drivers":[{{"driver":"file","path":"{}"}}],"pipeline":["#,
                    trace.display()
                ),
                1,
            )
            .replacen(
                r#""mode":"enrich""#,
                r#""mode":"enrich","actiondir":"../resources/actions""#,
                1,
            )
            .replacen(
                r#""format":"json""#,
                r#""format":"json","findings.region":"us-south""#,
                1,
            ),
    );
    // Upstream's precedence: the configuration's path is read, the command line's is not.
    let o = sfprocessor(
        &["-config", cfg.to_str().unwrap(), "/no/such/trace.sf"],
        &[],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(events(&out) > 0);
    let e = stderr(&o);
    assert!(e.contains("the configuration's path"), "{e}");
    assert!(
        e.contains("key `actiondir`") && e.contains("not loaded"),
        "{e}"
    );
    assert!(
        e.contains("findings.region") && e.contains("ignored"),
        "{e}"
    );
    let _ = sfprocessor(&["-test", "-config", cfg.to_str().unwrap()], &[]);
}
