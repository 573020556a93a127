//! ECS documents of real upstream traces index cleanly under upstream's own Elasticsearch
//! mapping (`resources/mappings/ecs_mapping.json`): every field is mapped and every value fits
//! its mapped type. Alert documents are exactly the records rules matched; document ids are
//! deterministic and tell apart every pair of records that differ in what the id covers.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use serde_json::{Map, Value};

use common::{inventory, upstream};
use sfprocessor::cache::EntityCache;
use sfprocessor::encode::ecs::doc_id;
use sfprocessor::encode::EcsEncoder;
use sfprocessor::policy::engine::{load_policy_paths, Engine, LoadOptions, Mode};
use sfprocessor::policy::memo::Memo;
use sfprocessor::record::{Event, Record};
use sfprocessor::sysflow::trace::read_trace;

/// ECS fields upstream's encoder writes that its mapping does not declare, with their ECS 8.x
/// types. The mapping sets no `dynamic`, so Elasticsearch's default (`true`) would map them
/// on first sight; every other field is checked as if the mapping were strict, so that an
/// unmapped field fails this test.
const ECS_FIELDS_NOT_IN_MAPPING: &[(&str, &str)] =
    &[("process.thread.id", "long"), ("tags", "keyword")];

fn mapping() -> Value {
    let p = upstream().join("sf-processor/resources/mappings/ecs_mapping.json");
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).expect("mapping is JSON")
}

/// Checks documents against an Elasticsearch mapping.
struct Checker {
    root: Map<String, Value>,
    root_dynamic: Option<String>,
}

impl Checker {
    fn new(mapping: &Value) -> Self {
        let m = &mapping["mappings"];
        let mut root = m["properties"].as_object().expect("properties").clone();
        for (path, ty) in ECS_FIELDS_NOT_IN_MAPPING {
            let mut props = &mut root;
            let mut parts = path.split('.').peekable();
            while let Some(part) = parts.next() {
                if parts.peek().is_none() {
                    assert!(!props.contains_key(part), "{path} is mapped after all");
                    props.insert(part.to_string(), serde_json::json!({ "type": ty }));
                } else {
                    props = props
                        .entry(part)
                        .or_insert_with(|| serde_json::json!({ "properties": {} }))
                        .get_mut("properties")
                        .and_then(Value::as_object_mut)
                        .expect("an object mapping");
                }
            }
        }
        Checker {
            root,
            root_dynamic: dynamic_of(m),
        }
    }

    /// Problems of one document (empty when it indexes cleanly).
    fn check(&self, doc: &Value) -> Vec<String> {
        let mut errs = Vec::new();
        match doc.as_object() {
            Some(o) => self.object(o, &self.root, "", self.root_dynamic.as_deref(), &mut errs),
            None => errs.push("document is not an object".into()),
        }
        errs
    }

    fn object(
        &self,
        o: &Map<String, Value>,
        props: &Map<String, Value>,
        prefix: &str,
        dynamic: Option<&str>,
        errs: &mut Vec<String>,
    ) {
        for (k, v) in o {
            let path = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            match props.get(k) {
                Some(m) => self.value(v, m, &path, dynamic, errs),
                // `dynamic: true|runtime|false` accept unmapped fields (false ignores them);
                // without a setting the check is strict (see above).
                None if matches!(dynamic, Some("true" | "runtime" | "false")) => {}
                None => errs.push(format!("{path}: not in the mapping")),
            }
        }
    }

    fn value(
        &self,
        v: &Value,
        m: &Value,
        path: &str,
        dynamic: Option<&str>,
        errs: &mut Vec<String>,
    ) {
        if let Value::Array(items) = v {
            for item in items {
                if item.is_array() {
                    errs.push(format!("{path}: array inside an array"));
                } else {
                    self.value(item, m, path, dynamic, errs);
                }
            }
            return;
        }
        let ty = m.get("type").and_then(Value::as_str);
        match (ty, m.get("properties").and_then(Value::as_object)) {
            (None | Some("object" | "nested"), Some(props)) => match v.as_object() {
                Some(o) => {
                    let d = dynamic_of(m);
                    self.object(o, props, path, d.as_deref().or(dynamic), errs)
                }
                None => errs.push(format!("{path}: {v} is not an object")),
            },
            (Some(t), None) => leaf(v, t, path, errs),
            _ => errs.push(format!("{path}: unsupported mapping {m}")),
        }
    }
}

fn dynamic_of(m: &Value) -> Option<String> {
    match m.get("dynamic") {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Bool(b)) => Some(b.to_string()),
        _ => None,
    }
}

/// Whether a scalar fits a field type (no coercion: numbers must be JSON numbers, strings
/// strings).
fn leaf(v: &Value, ty: &str, path: &str, errs: &mut Vec<String>) {
    let int_in = |lo: i64, hi: i64| v.as_i64().is_some_and(|n| (lo..=hi).contains(&n));
    let ok = match ty {
        "keyword" | "text" | "wildcard" | "constant_keyword" | "match_only_text" => v.is_string(),
        "long" => v.as_i64().is_some(),
        "integer" => int_in(i32::MIN.into(), i32::MAX.into()),
        "short" => int_in(i16::MIN.into(), i16::MAX.into()),
        "byte" => int_in(i8::MIN.into(), i8::MAX.into()),
        "unsigned_long" => v.as_u64().is_some(),
        "float" | "double" | "half_float" | "scaled_float" => v.is_number(),
        "boolean" => v.is_boolean(),
        "ip" => v.as_str().is_some_and(|s| s.parse::<IpAddr>().is_ok()),
        "date" => v.as_str().and_then(parse_rfc3339).is_some(),
        // date_nanos holds 1970-01-01 to 2262-04-11.
        "date_nanos" => v
            .as_str()
            .and_then(parse_rfc3339)
            .is_some_and(|y| (1970..=2262).contains(&y)),
        _ => {
            errs.push(format!(
                "{path}: mapping type `{ty}` not handled by this test"
            ));
            return;
        }
    };
    if !ok {
        errs.push(format!("{path}: {v} does not fit `{ty}`"));
    }
}

/// The year of a strict RFC 3339 date-time (`2018-07-16T21:31:22.123456789Z`, offsets allowed),
/// or None.
fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let part = b.get(r)?;
        if part.iter().all(u8::is_ascii_digit) {
            std::str::from_utf8(part).ok()?.parse().ok()
        } else {
            None
        }
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') || b.get(10) != Some(&b'T') {
        return None;
    }
    if b.get(13) != Some(&b':') || b.get(16) != Some(&b':') {
        return None;
    }
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&mo)
        || d == 0
        || d > days[mo as usize - 1]
        || h > 23
        || mi > 59
        || sec > 59
    {
        return None;
    }
    let mut i = 19;
    if b.get(i) == Some(&b'.') {
        let digits = b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if !(1..=9).contains(&digits) {
            return None;
        }
        i += 1 + digits;
    }
    match &b[i..] {
        b"Z" => {}
        [s, ..] if (*s == b'+' || *s == b'-') && b.len() == i + 6 => {
            num(i + 1..i + 3).filter(|h| *h < 24)?;
            num(i + 4..i + 6).filter(|m| *m < 60)?;
            if b[i + 3] != b':' {
                return None;
            }
        }
        _ => return None,
    }
    Some(i64::from(y))
}

fn policies() -> PathBuf {
    upstream().join("sf-processor/resources/policies")
}

fn engine(mode: Mode) -> Engine {
    let filter = policies().join("distribution/filter.yaml");
    let ttps = policies().join("runtimeintegrity");
    let set = load_policy_paths(&[filter.as_path(), ttps.as_path()], &LoadOptions::default())
        .unwrap_or_else(|e| panic!("{e}"));
    Engine::new(Arc::new(set), mode)
}

fn trace_records(path: &std::path::Path) -> Vec<Record> {
    let mut cache = EntityCache::default();
    let mut out = Vec::new();
    read_trace(path, |r| {
        if let Some(rec) = cache.apply(r) {
            out.push(rec);
        }
    })
    .unwrap_or_else(|e| panic!("{e}"));
    out
}

/// Generated records add the types real traces lack (`NE`, `PF`) and more Kubernetes events.
fn generated_records() -> Vec<Record> {
    let mut cache = EntityCache::default();
    sfprocessor::gen::Generator::new(sfprocessor::gen::GenConfig {
        seed: 11,
        records: 30_000,
        ..Default::default()
    })
    .filter_map(|r| cache.apply(r))
    .collect()
}

/// What the document id covers (upstream's `encodeID`), spelled out independently of the
/// encoder.
fn id_key(r: &Record) -> String {
    let ev = &r.event;
    let container = match ev {
        Event::K8sEvent(_) => "",
        _ => r.container.as_ref().map(|c| c.id.as_str()).unwrap_or(""),
    };
    let extra = match ev {
        Event::FileFlow(_) | Event::FileEvent(_) => format!("{:?}", r.file.as_ref().map(|f| f.oid)),
        Event::NetworkFlow(n) => format!("{} {} {} {} {}", n.sip, n.sport, n.dip, n.dport, n.proto),
        Event::NetworkEvent(n) => {
            format!("{} {} {} {} {}", n.sip, n.sport, n.dip, n.dport, n.proto)
        }
        Event::K8sEvent(k) => format!("{} {} {}", k.action, k.kind, k.message),
        _ => String::new(),
    };
    format!(
        "{}|{container}|{}|{}|{}|{}|{extra}",
        r.header.exporter,
        ev.ts(),
        ev.tid(),
        ev.proc_oid().map(|o| o.create_ts).unwrap_or(0),
        ev.op_flags()
    )
}

#[derive(Default, Debug)]
struct Counts {
    records: usize,
    documents: usize,
    alerts: usize,
    with_policies: usize,
    distinct_ids: usize,
    distinct_keys: usize,
    by_type: BTreeMap<String, usize>,
    /// Documents with each top-level field (and `host.ip`, `process.parent`).
    sections: BTreeMap<String, usize>,
    /// Header addresses left out of `host.ip` because they are not IP addresses.
    not_ips: std::collections::BTreeSet<String>,
}

/// Encodes `recs`, checks every document, returns the counts and the problems found.
fn check_records(checker: &Checker, recs: &[Record]) -> (Counts, Vec<String>) {
    let mut c = Counts {
        records: recs.len(),
        ..Default::default()
    };
    let mut errs = Vec::new();
    let mut enc = EcsEncoder::new();
    let mut ids: HashMap<String, String> = HashMap::new();
    let mut id_set = HashSet::new();
    let mut out = Vec::new();
    let mut out2 = Vec::new();
    for (i, r) in recs.iter().enumerate() {
        out.clear();
        enc.encode(r, &mut out);
        // A fresh encoder (no cached fragments) writes the same bytes.
        if i % 97 == 0 {
            out2.clear();
            EcsEncoder::new().encode(r, &mut out2);
            if out != out2 {
                errs.push(format!("record {i}: encoding depends on encoder state"));
            }
        }
        let doc: Value = match serde_json::from_slice(&out) {
            Ok(v) => v,
            Err(e) => {
                errs.push(format!(
                    "record {i}: invalid JSON ({e}): {}",
                    String::from_utf8_lossy(&out)
                ));
                continue;
            }
        };
        c.documents += 1;
        for e in checker.check(&doc) {
            if errs.len() < 50 {
                errs.push(format!("record {i} ({}): {e}", r.kind().short()));
            }
        }
        let alert = doc["event"]["kind"] == "alert";
        let matched = !r.policies.is_empty();
        c.alerts += usize::from(alert);
        c.with_policies += usize::from(matched);
        if alert != matched || (!alert && doc["event"]["kind"] != "event") {
            errs.push(format!(
                "record {i}: event.kind {} with {} matches",
                doc["event"]["kind"],
                r.policies.len()
            ));
        }
        if doc["event"]["sf_type"] != r.kind().short() || doc["@timestamp"] != doc["event"]["start"]
        {
            errs.push(format!("record {i}: sf_type/@timestamp wrong: {doc}"));
        }
        *c.by_type.entry(r.kind().short().to_string()).or_default() += 1;
        let nested = [("host", "ip"), ("process", "parent")];
        let present = doc
            .as_object()
            .into_iter()
            .flat_map(|o| o.keys().cloned())
            .chain(
                nested
                    .iter()
                    .filter(|(a, b)| doc[*a].get(*b).is_some())
                    .map(|(a, b)| format!("{a}.{b}")),
            );
        for k in present {
            *c.sections.entry(k).or_default() += 1;
        }
        if doc["host"].get("ip").is_none() {
            c.not_ips.insert(r.header.ip.clone());
        }

        let id = doc_id(r);
        if id != doc_id(&r.clone()) {
            errs.push(format!("record {i}: id not deterministic"));
        }
        id_set.insert(id.clone());
        let key = id_key(r);
        match ids.get(&key) {
            Some(prev) if *prev != id => {
                errs.push(format!("record {i}: same id input, ids {prev} and {id}"))
            }
            Some(_) => {}
            None => {
                ids.insert(key, id);
            }
        }
    }
    c.distinct_keys = ids.len();
    c.distinct_ids = id_set.len();
    if c.distinct_ids != c.distinct_keys {
        errs.push(format!(
            "{} distinct id inputs gave {} distinct ids (hash collision)",
            c.distinct_keys, c.distinct_ids
        ));
    }
    if c.documents != c.records {
        errs.push(format!(
            "{} documents for {} records",
            c.documents, c.records
        ));
    }
    if c.alerts != c.with_policies {
        errs.push(format!(
            "{} alert documents, {} records with matches",
            c.alerts, c.with_policies
        ));
    }
    (c, errs)
}

#[test]
fn the_checker_rejects_what_elasticsearch_would_reject() {
    let checker = Checker::new(&mapping());
    let good = serde_json::json!({
        "@timestamp": "2018-07-16T21:31:22.5Z",
        "event": {"duration": 5, "severity": 3, "kind": "alert", "end": "2018-07-16T21:31:22Z"},
        "host": {"ip": "10.0.0.1"},
        "pod": {"hostip": ["10.0.0.1", "::1"]},
        "service": [{"ports": [{"port": 80}]}],
        "process": {"thread": {"id": 7}},
        "tags": ["a"]
    });
    assert_eq!(checker.check(&good), Vec::<String>::new());
    for (bad, why) in [
        (
            serde_json::json!({"network": {"protocol": "tcp"}}),
            "not in the mapping",
        ),
        (
            serde_json::json!({"event": {"duration": "5"}}),
            "does not fit `long`",
        ),
        (
            serde_json::json!({"event": {"severity": 70000}}),
            "does not fit `short`",
        ),
        (
            serde_json::json!({"host": {"ip": "NA"}}),
            "does not fit `ip`",
        ),
        (
            serde_json::json!({"@timestamp": "2018-07-16 21:31:22"}),
            "does not fit `date_nanos`",
        ),
        (
            serde_json::json!({"@timestamp": "1969-12-31T23:59:59Z"}),
            "does not fit `date_nanos`",
        ),
        (
            serde_json::json!({"container": {"sf_privileged": 1}}),
            "does not fit `boolean`",
        ),
        (serde_json::json!({"process": "x"}), "is not an object"),
        (
            serde_json::json!({"event": {"kind": null}}),
            "does not fit `keyword`",
        ),
        (
            serde_json::json!({"network": {"iana_number": "6"}}),
            "does not fit `short`",
        ),
    ] {
        let errs = checker.check(&bad);
        assert!(errs.iter().any(|e| e.contains(why)), "{bad}: {errs:?}");
    }
}

#[test]
fn ecs_documents_of_upstream_traces_index_under_the_upstream_mapping() {
    let checker = Checker::new(&mapping());
    let enrich = engine(Mode::Enrich);
    let alert = engine(Mode::Alert);
    let mut failures = Vec::new();
    let mut total = Counts::default();
    let mut report = Vec::new();
    let mut seen_types = BTreeMap::new();
    let mut sections = BTreeMap::new();
    let mut not_ips = std::collections::BTreeSet::new();
    let mut run = |name: &str, recs: Vec<Record>, failures: &mut Vec<String>| {
        // Every record as read, without policies: no alerts.
        let (r, errs) = check_records(&checker, &recs);
        failures.extend(errs.into_iter().map(|e| format!("{name} (all): {e}")));
        if r.distinct_ids != r.documents {
            failures.push(format!(
                "{name}: {} distinct ids for {} records",
                r.distinct_ids, r.documents
            ));
        }
        not_ips.extend(r.not_ips.iter().cloned());
        if r.alerts != 0 {
            failures.push(format!("{name}: {} alerts without policies", r.alerts));
        }
        // Enrich mode: every record not dropped, matches marked.
        let mut enriched = Vec::new();
        enrich.process(recs.clone(), &mut enriched, &mut Memo::default());
        let (c, errs) = check_records(&checker, &enriched);
        failures.extend(errs.into_iter().map(|e| format!("{name} (enrich): {e}")));
        // Alert mode: only matches, every document an alert.
        let mut alerts = Vec::new();
        alert.process(recs, &mut alerts, &mut Memo::default());
        let (a, errs) = check_records(&checker, &alerts);
        failures.extend(errs.into_iter().map(|e| format!("{name} (alert): {e}")));
        if a.alerts != a.documents {
            failures.push(format!(
                "{name}: alert mode wrote {} events",
                a.documents - a.alerts
            ));
        }
        report.push(format!(
            "{name}: {} documents ({} distinct ids) {:?}; enrich: {} documents, {} alerts, {} distinct ids; alert mode: {} documents",
            r.documents, r.distinct_ids, r.by_type, c.documents, c.alerts, c.distinct_ids, a.documents
        ));
        total.documents += r.documents;
        total.alerts += c.alerts + a.alerts;
        for (t, n) in &r.by_type {
            *seen_types.entry(t.clone()).or_insert(0) += n;
        }
        for (t, n) in &r.sections {
            *sections.entry(t.clone()).or_insert(0) += n;
        }
    };
    for t in inventory() {
        let recs = trace_records(&upstream().join(&t.path));
        run(&t.path, recs, &mut failures);
    }
    run("generated", generated_records(), &mut failures);
    eprintln!(
        "{}\nfields present (all records): {sections:?}\nheader addresses not written as host.ip: {not_ips:?}",
        report.join("\n")
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    for t in ["PE", "NF", "FF", "FE", "KE", "NE", "PF"] {
        assert!(
            seen_types.get(t).is_some_and(|n| *n > 0),
            "no {t} documents checked"
        );
    }
    assert!(total.alerts > 100, "only {} alert documents", total.alerts);
    assert!(total.documents > 100_000, "{} documents", total.documents);
    assert_eq!(seen_types.values().sum::<usize>(), total.documents);
}

#[test]
fn identical_records_get_identical_ids_and_documents() {
    let recs = trace_records(&upstream().join("sf-processor/resources/traces/k8s_small.sf"));
    let mut enc = EcsEncoder::new();
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for r in &recs {
        a.clear();
        b.clear();
        enc.encode(r, &mut a);
        enc.encode(&r.clone(), &mut b);
        assert_eq!(a, b);
        assert_eq!(doc_id(r), doc_id(&r.clone()));
    }
}

#[test]
fn kubernetes_events_name_the_resource_of_their_message() {
    let recs = trace_records(&upstream().join("sf-processor/resources/traces/k8s_small.sf"));
    let mut enc = EcsEncoder::new();
    let mut n = 0;
    for r in recs
        .iter()
        .filter(|r| matches!(r.event, Event::K8sEvent(_)))
    {
        let mut out = Vec::new();
        enc.encode(r, &mut out);
        let doc: Value = serde_json::from_slice(&out).expect("JSON");
        let o = &doc["orchestrator"];
        assert_eq!(o["type"], "kubernetes");
        assert_eq!(o["resource"]["type"], "pod", "{doc}");
        assert!(o["resource"]["name"]
            .as_str()
            .is_some_and(|s| !s.is_empty()));
        assert!(o["namespace"].as_str().is_some_and(|s| !s.is_empty()));
        assert_eq!(doc["event"]["category"], "orchestration");
        n += 1;
    }
    assert_eq!(n, 4);
}
