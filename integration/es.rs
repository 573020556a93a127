//! The Elasticsearch exporter: end to end against noida-db (Elasticsearch 8 API) and
//! osmem-server (OpenSearch API), from PyPI through `.ci/peers`; and against a small fake
//! bulk server inside the test for what real peers will not do on demand: HTTP 500, 429,
//! per-item failures, a stall, bad credentials.

mod common;

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::peers;
use serde_json::Value;
use sfprocessor::sysflow::writer::SchemaVersion;

fn trace() -> PathBuf {
    common::upstream().join("sf-apis/pynb/data/attacks/express/mon.1531776742.sf")
}

fn filter_policy() -> PathBuf {
    common::upstream().join("sf-processor/resources/policies/distribution/filter.yaml")
}

/// Alert-mode pipeline with upstream's filter policy, ECS to the exporter `exporter`.
fn alert_pipeline(exporter: &str) -> String {
    format!(
        r#"{{"pipeline":[
 {{"processor":"sysflowreader","handler":"flattener","in":"sysflow sysflowchan","out":"flat flattenerchan"}},
 {{"processor":"policyengine","in":"flat flattenerchan","out":"evt eventchan","mode":"alert","policies":"{}"}},
 {{"processor":"exporter","in":"evt eventchan","format":"ecs",{exporter}}}]}}"#,
        filter_policy().display()
    )
}

fn es_exporter(url: &str, index: &str, extra: &str) -> String {
    format!(r#""export":"es","es.addresses":"{url}","es.index":"{index}","buffer":"500"{extra}"#)
}

/// The ECS documents the file exporter writes for `trace` (the reference).
fn expected_docs(dir: &Path, trace: &Path) -> Vec<Value> {
    let out = dir.join("expected.ecs.json");
    let cfg = common::write_file(
        dir,
        "file.json",
        &alert_pipeline(&format!(
            r#""export":"file","file.path":"{}""#,
            out.display()
        )),
    );
    let o = common::sfprocessor(
        &["-config", cfg.to_str().unwrap(), trace.to_str().unwrap()],
        &[],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    common::read_json_lines(&out)
}

fn http(port: u16, method: &str, path: &str, body: &str) -> (u16, Value) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    let status: u16 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    let mut len = None;
    let mut chunked = false;
    loop {
        line.clear();
        r.read_line(&mut line).unwrap();
        let l = line.trim_end().to_ascii_lowercase();
        if l.is_empty() {
            break;
        }
        if let Some(v) = l.strip_prefix("content-length:") {
            len = v.trim().parse::<usize>().ok();
        }
        if l.starts_with("transfer-encoding:") && l.contains("chunked") {
            chunked = true;
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            line.clear();
            r.read_line(&mut line).unwrap();
            let n = usize::from_str_radix(line.trim(), 16).unwrap();
            if n == 0 {
                break;
            }
            let start = body.len();
            body.resize(start + n, 0);
            r.read_exact(&mut body[start..]).unwrap();
            line.clear();
            r.read_line(&mut line).unwrap();
        }
    } else if let Some(n) = len {
        body.resize(n, 0);
        r.read_exact(&mut body).unwrap();
    } else {
        r.read_to_end(&mut body).unwrap();
    }
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// Every document of `index` (refreshed first), by id.
fn all_docs(port: u16, index: &str) -> HashMap<String, Value> {
    http(port, "POST", &format!("/{index}/_refresh"), "");
    let (status, v) = http(
        port,
        "POST",
        &format!("/{index}/_search"),
        r#"{"size":10000,"query":{"match_all":{}}}"#,
    );
    assert_eq!(status, 200, "{v}");
    v["hits"]["hits"]
        .as_array()
        .expect("hits")
        .iter()
        .map(|h| {
            (
                h["_id"].as_str().expect("_id").to_string(),
                h["_source"].clone(),
            )
        })
        .collect()
}

fn end_to_end(port: u16, name: &str) {
    let dir = tempfile::tempdir().unwrap();
    let expected = expected_docs(dir.path(), &trace());
    assert!(expected.len() > 1000, "{}", expected.len());
    // The index carries upstream's own ECS mapping: documents must index under it.
    let mapping = std::fs::read_to_string(
        common::upstream().join("sf-processor/resources/mappings/ecs_mapping.json"),
    )
    .unwrap();
    let (status, v) = http(port, "PUT", "/sysflow-alerts", &mapping);
    assert!(status == 200, "{name}: create index: {status} {v}");
    let url = format!("http://127.0.0.1:{port}");
    let cfg = common::write_file(
        dir.path(),
        "es.json",
        &alert_pipeline(&es_exporter(&url, "sysflow-alerts", "")),
    );
    let o = common::sfprocessor(&["-config", cfg.to_str().unwrap(), "-test"], &[]);
    assert!(
        o.status.success(),
        "{name}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let run = || {
        let o = common::sfprocessor(
            &["-config", cfg.to_str().unwrap(), trace().to_str().unwrap()],
            &[],
        );
        let err = String::from_utf8_lossy(&o.stderr).to_string();
        assert!(o.status.success(), "{name}: {err}");
        err
    };
    run();
    let docs = all_docs(port, "sysflow-alerts");
    assert_eq!(docs.len(), expected.len(), "{name}: one document per alert");
    let mut want: Vec<String> = expected.iter().map(Value::to_string).collect();
    let mut got: Vec<String> = docs.values().map(Value::to_string).collect();
    want.sort();
    got.sort();
    assert!(
        want == got,
        "{name}: stored documents equal the encoded ones"
    );
    for d in docs.values() {
        assert_eq!(d["event"]["kind"], "alert", "{name}");
    }
    // The same trace again: `create` with the same ids indexes nothing twice.
    let err = run();
    assert!(!err.contains("undelivered"), "{err}");
    assert_eq!(
        all_docs(port, "sysflow-alerts").len(),
        expected.len(),
        "{name}: a resent document is not duplicated"
    );
}

#[test]
fn alerts_index_into_elasticsearch_api_noida() {
    let dir = tempfile::tempdir().unwrap();
    let Some((_peer, _, es)) = peers::noida(dir.path()) else {
        return;
    };
    end_to_end(es, "noida-db");
}

#[test]
fn alerts_index_into_opensearch_api_osmem() {
    let dir = tempfile::tempdir().unwrap();
    let Some((_peer, port)) = peers::osmem(dir.path()) else {
        return;
    };
    end_to_end(port, "osmem-server");
}

/// What the fake bulk server does with a request.
#[derive(Default)]
struct Script {
    /// Answer the first N bulk requests with HTTP 500.
    fail_500: usize,
    /// Then answer the next N with HTTP 429.
    fail_429: usize,
    /// Items whose id hashes to 0 mod this are refused for good (400); 0: none.
    reject_mod: u64,
    /// Items whose id hashes to 0 mod this get 429 the first time; 0: none.
    throttle_mod: u64,
    /// While set, requests wait (a stalled target).
    stall: Arc<AtomicBool>,
    /// Required basic-auth header value, if any.
    auth: Option<String>,
    /// Bulk bodies larger than this get HTTP 413; 0: no limit.
    max_body: usize,
}

#[derive(Default)]
struct Seen {
    requests: usize,
    stored: HashMap<String, String>,
    creates: usize,
    rejected: HashSet<String>,
    throttled: HashSet<String>,
    all_ids: HashSet<String>,
    /// `create`s whose id was stored already (409), same document or not.
    conflicts: usize,
    /// Requests answered 413.
    too_large: usize,
}

fn id_hash(id: &str) -> u64 {
    u64::from_str_radix(id, 16).unwrap_or(0) >> 3
}

/// A fake bulk server on a free port.
fn fake_server(script: Script) -> (u16, Arc<Mutex<Seen>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let s2 = seen.clone();
    let script = Arc::new(script);
    std::thread::spawn(move || {
        for c in l.incoming().flatten() {
            let seen = s2.clone();
            let script = script.clone();
            std::thread::spawn(move || serve(c, &script, &seen));
        }
    });
    (port, seen)
}

fn serve(c: TcpStream, script: &Script, seen: &Mutex<Seen>) {
    let mut w = c.try_clone().unwrap();
    let mut r = BufReader::new(c);
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
        let mut len = 0;
        let mut auth = None;
        loop {
            let mut h = String::new();
            if r.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            let (k, v) = h.split_once(':').unwrap();
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().unwrap();
            }
            if k.eq_ignore_ascii_case("authorization") {
                auth = Some(v.trim().to_string());
            }
        }
        let mut body = vec![0; len];
        if r.read_exact(&mut body).is_err() {
            return;
        }
        // Up to 600 waits of 50 ms while stalled.
        for _ in 0..600 {
            if !script.stall.load(Ordering::SeqCst) {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let (status, resp) = answer(script, seen, &path, auth.as_deref(), &body);
        let _ = write!(
            w,
            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{resp}",
            resp.len()
        );
    }
}

fn answer(
    script: &Script,
    seen: &Mutex<Seen>,
    path: &str,
    auth: Option<&str>,
    body: &[u8],
) -> (u16, String) {
    if script.auth.is_some() && script.auth.as_deref() != auth {
        return (401, r#"{"error":"unauthorized"}"#.into());
    }
    if path == "/" {
        return (200, r#"{"version":{"number":"8.15.0"}}"#.into());
    }
    let mut s = seen.lock().unwrap();
    s.requests += 1;
    if script.max_body > 0 && body.len() > script.max_body {
        s.too_large += 1;
        return (413, r#"{"error":"request entity too large"}"#.into());
    }
    let text = String::from_utf8_lossy(body).to_string();
    let lines: Vec<&str> = text.lines().collect();
    for pair in lines.chunks(2) {
        let action: Value = serde_json::from_str(pair[0]).unwrap();
        s.all_ids
            .insert(action["create"]["_id"].as_str().unwrap().to_string());
    }
    if s.requests <= script.fail_500 {
        return (500, r#"{"error":"boom"}"#.into());
    }
    if s.requests <= script.fail_500 + script.fail_429 {
        return (429, r#"{"error":"too many requests"}"#.into());
    }
    let mut items = Vec::new();
    for pair in lines.chunks(2) {
        let action: Value = serde_json::from_str(pair[0]).unwrap();
        let id = action["create"]["_id"].as_str().unwrap().to_string();
        assert_eq!(action["create"]["_index"], "fake");
        let doc = pair[1].to_string();
        serde_json::from_str::<Value>(&doc).expect("document is JSON");
        s.creates += 1;
        let h = id_hash(&id);
        let status = if script.reject_mod > 0 && h.is_multiple_of(script.reject_mod) {
            s.rejected.insert(id.clone());
            400
        } else if script.throttle_mod > 0
            && h % script.throttle_mod == 1
            && s.throttled.insert(id.clone())
        {
            429
        } else if s.stored.contains_key(&id) {
            s.conflicts += 1;
            409
        } else {
            s.stored.insert(id.clone(), doc);
            201
        };
        let err = if status >= 300 {
            r#","error":{"type":"mapper_parsing_exception","reason":"injected"}"#
        } else {
            ""
        };
        items.push(format!(
            r#"{{"create":{{"_index":"fake","_id":"{id}","status":{status}{err}}}}}"#
        ));
    }
    (
        200,
        format!(
            r#"{{"took":1,"errors":true,"items":[{}]}}"#,
            items.join(",")
        ),
    )
}

fn undelivered(err: &str) -> Option<(usize, usize)> {
    // "exporter[2]: N records not delivered (F failed, D dropped)"
    let l = err
        .lines()
        .find(|l| l.contains("records not delivered ("))?;
    let n = |after: &str| -> usize {
        let i = l.find(after).unwrap();
        l[..i]
            .split(|c: char| !c.is_ascii_digit())
            .rfind(|s| !s.is_empty())
            .unwrap()
            .parse()
            .unwrap()
    };
    Some((n(" failed"), n(" dropped")))
}

/// Runs the alert pipeline on the trace into the fake server's index `fake` (`extra`: more
/// exporter keys); the output and its stderr.
fn alerts_to_fake(dir: &Path, port: u16, extra: &str) -> (std::process::Output, String) {
    let cfg = common::write_file(
        dir,
        "fake.json",
        &alert_pipeline(&es_exporter(
            &format!("http://127.0.0.1:{port}"),
            "fake",
            extra,
        )),
    );
    let o = common::sfprocessor(
        &["-config", cfg.to_str().unwrap(), trace().to_str().unwrap()],
        &[],
    );
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    (o, err)
}

#[test]
fn http_500_429_and_item_failures_retry_only_what_can_heal() {
    let dir = tempfile::tempdir().unwrap();
    let expected = expected_docs(dir.path(), &trace());
    let (port, seen) = fake_server(Script {
        fail_500: 2,
        fail_429: 2,
        reject_mod: 97,
        throttle_mod: 5,
        ..Default::default()
    });
    let (o, err) = alerts_to_fake(
        dir.path(),
        port,
        r#","retry.backoff":"10ms","retry.backoff.max":"50ms""#,
    );
    let s = seen.lock().unwrap();
    assert_eq!(s.all_ids.len(), expected.len(), "one id per alert");
    assert!(!s.rejected.is_empty() && !s.throttled.is_empty());
    // Everything but the refused items is stored, once.
    assert_eq!(s.stored.len() + s.rejected.len(), expected.len());
    assert!(s.stored.keys().all(|id| !s.rejected.contains(id)));
    let mut want: Vec<String> = expected.iter().map(Value::to_string).collect();
    let mut got: Vec<String> = s
        .stored
        .values()
        .map(|d| serde_json::from_str::<Value>(d).unwrap().to_string())
        .collect();
    want.sort();
    got.sort();
    assert!(got.iter().all(|d| want.binary_search(d).is_ok()));
    // Refused items are counted as failed (exit 1, named), not retried forever.
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert_eq!(undelivered(&err), Some((s.rejected.len(), 0)), "{err}");
    assert!(err.contains("document refused"), "{err}");
    assert!(err.contains("retrying"), "{err}");
    // Only items that could heal were sent again: the refused ones once each.
    assert!(
        s.creates <= expected.len() + s.throttled.len() + 4 * 500,
        "creates {} for {} alerts",
        s.creates,
        expected.len()
    );
}

#[test]
fn a_bulk_request_too_large_for_the_server_is_split_until_it_fits() {
    let dir = tempfile::tempdir().unwrap();
    let expected = expected_docs(dir.path(), &trace());
    let (port, seen) = fake_server(Script {
        max_body: 64 * 1024,
        ..Default::default()
    });
    let (o, err) = alerts_to_fake(dir.path(), port, "");
    assert_eq!(o.status.code(), Some(0), "{err}");
    let s = seen.lock().unwrap();
    assert!(
        s.too_large > 0,
        "the default bulk size is over the fake limit"
    );
    assert!(err.contains("HTTP 413"), "{err}");
    assert_eq!(s.stored.len(), expected.len(), "every alert stored");
    assert_eq!(s.conflicts, 0, "each stored once, no duplicate creates");
}

#[test]
fn test_flag_reports_bad_credentials_and_an_unreachable_server() {
    let dir = tempfile::tempdir().unwrap();
    let (port, _) = fake_server(Script {
        auth: Some(format!(
            "Basic {}",
            sfprocessor::exporter::httpc::base64(b"elastic:right")
        )),
        ..Default::default()
    });
    let url = format!("http://127.0.0.1:{port}");
    for (pw, code, want) in [
        ("right", 0, "is reachable"),
        ("wrong", 1, "authentication failed"),
    ] {
        let cfg = common::write_file(
            dir.path(),
            "auth.json",
            &alert_pipeline(&es_exporter(
                &url,
                "fake",
                &format!(r#","es.username":"elastic","es.password":"{pw}""#),
            )),
        );
        let o = common::sfprocessor(&["-config", cfg.to_str().unwrap(), "-test"], &[]);
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        assert_eq!(o.status.code(), Some(code), "{all}");
        assert!(all.contains(want), "{all}");
    }
    let down = peers::free_tcp_port();
    let cfg = common::write_file(
        dir.path(),
        "down.json",
        &alert_pipeline(&es_exporter(&format!("http://127.0.0.1:{down}"), "x", "")),
    );
    let o = common::sfprocessor(&["-config", cfg.to_str().unwrap(), "-test"], &[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("127.0.0.1:{down}")) && err.contains("no address answered"),
        "{err}"
    );
}

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

#[test]
fn a_stalled_target_makes_the_pipeline_wait_with_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    // 300,000 records (about 250,000 events and flows, all exported: pass-through policy
    // engine): far more than fits in the pipeline's windows and the delivery queue.
    let trace = dir.path().join("big.sf");
    common::write_trace(&trace, 5, 300_000, "deflate", SchemaVersion::V5);
    // Records the pipeline exports (the trace's events and flows; entities are folded in).
    let exported = common::expected_lines(dir.path(), &trace).len();
    assert!(exported > 200_000, "{exported}");
    let stall = Arc::new(AtomicBool::new(true));
    let (port, seen) = fake_server(Script {
        stall: stall.clone(),
        ..Default::default()
    });
    let cfg = common::write_file(
        dir.path(),
        "stall.json",
        &common::exporter_pipeline(&format!(
            r#""export":"es","es.addresses":"http://127.0.0.1:{port}","es.index":"fake","buffer":"1000""#
        ))
        .replace(r#""format":"json""#, r#""format":"ecs""#),
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_sfprocessor"))
        .args(["-config", cfg.to_str().unwrap(), "-log", "warn"])
        .arg(&trace)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    // Stalled for 40 samples of 100 ms: memory stays bounded while nothing is acknowledged.
    let mut peak = 0;
    for _ in 0..40 {
        std::thread::sleep(Duration::from_millis(100));
        peak = peak.max(rss_kib(pid).unwrap_or(0));
    }
    assert!(child.try_wait().unwrap().is_none(), "still waiting");
    let stored_while_stalled = seen.lock().unwrap().stored.len();
    assert_eq!(stored_while_stalled, 0);
    assert!(
        peak < 160 * 1024,
        "RSS {peak} KiB while the target stalled: the pipeline must wait, not buffer"
    );
    stall.store(false, Ordering::SeqCst);
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    let s = seen.lock().unwrap();
    assert_eq!(s.stored.len(), exported, "resumed: every record delivered");
    assert_eq!(s.conflicts, 0, "nothing sent twice");
}
