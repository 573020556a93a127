use super::*;
use crate::record::PolicyMatch;
use crate::sysflow::names::OP_OPEN;
use std::net::{Ipv4Addr, Ipv6Addr};

fn ip4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

/// A SysFlow IPv4 int (little-endian octets).
fn sf_ip(a: u8, b: u8, c: u8, d: u8) -> i32 {
    i32::from_le_bytes([a, b, c, d])
}

#[test]
fn community_id_spec_vectors() {
    // The Community ID spec's reference vectors (corelight/community-id-spec baseline).
    let tcp = community_id(
        0,
        ip4(128, 232, 110, 120),
        ip4(66, 35, 250, 204),
        34855,
        80,
        6,
    );
    assert_eq!(tcp, "1:LQU9qZlK+B5F3KDmev6m5PMibrg=");
    // The reverse direction gives the same id.
    let rev = community_id(
        0,
        ip4(66, 35, 250, 204),
        ip4(128, 232, 110, 120),
        80,
        34855,
        6,
    );
    assert_eq!(rev, tcp);
    assert_eq!(
        community_id(0, ip4(8, 8, 8, 8), ip4(192, 168, 1, 52), 53, 54585, 17),
        "1:d/FP5EW3wiY1vCndhwleRRKHowQ="
    );
    assert_eq!(
        community_id(0, ip4(192, 168, 170, 8), ip4(192, 168, 170, 56), 7, 7, 132),
        "1:MP2EtRCAUIZvTw6MxJHLV7N7JDs="
    );
    // ICMP echo request and its reply.
    assert_eq!(
        community_id(0, ip4(192, 168, 0, 89), ip4(192, 168, 0, 1), 8, 0, 1),
        "1:X0snYXpgwiv9TZtqg64sgzUn6Dk="
    );
    assert_eq!(
        community_id(0, ip4(192, 168, 0, 1), ip4(192, 168, 0, 89), 0, 0, 1),
        "1:X0snYXpgwiv9TZtqg64sgzUn6Dk="
    );
    let v6 = |s: &str| IpAddr::V6(s.parse::<Ipv6Addr>().unwrap());
    assert_eq!(
        community_id(
            0,
            v6("2001:470:e5bf:dead:4957:2174:e82c:4887"),
            v6("2607:f8b0:400c:c03::1a"),
            63943,
            25,
            6
        ),
        "1:/qFaeAR+gFe1KYjMzVDsMv+wgU4="
    );
    assert_eq!(
        community_id(0, v6("fe80::260:97ff:fe07:69ea"), v6("ff02::1"), 134, 0, 58),
        "1:pkvHqCL88/tg1k4cPigmZXUtL00="
    );
}

fn record(event: Event) -> Record {
    Record {
        event,
        header: Arc::new(Header {
            version: 5,
            exporter: "node-1".into(),
            ip: "10.0.0.1".into(),
            filename: "/mnt/data/1".into(),
        }),
        process: Some(Arc::new(Process {
            oid: Oid {
                create_ts: 1_531_776_682_000_000_001,
                hpid: 42,
            },
            poid: Some(Oid {
                create_ts: 1_531_776_000_000_000_000,
                hpid: 1,
            }),
            exe: "/usr/bin/curl".into(),
            exe_args: "-s http://x".into(),
            uid: 1000,
            user_name: "alice".into(),
            gid: 100,
            group_name: "users".into(),
            ..Default::default()
        })),
        ancestors: Arc::from(vec![Arc::new(Process {
            oid: Oid {
                create_ts: 1_531_776_000_000_000_000,
                hpid: 1,
            },
            exe: "/bin/bash".into(),
            ..Default::default()
        })]),
        container: None,
        pod: None,
        file: None,
        new_file: None,
        policies: vec![],
        tags: vec![],
        op_names_net: false,
        frozen_lineage: None,
    }
}

fn encode(r: &Record) -> serde_json::Value {
    let mut out = Vec::new();
    EcsEncoder::new().encode(r, &mut out);
    serde_json::from_slice(&out)
        .unwrap_or_else(|e| panic!("invalid JSON {e}: {}", String::from_utf8_lossy(&out)))
}

fn pe(op_flags: i32, tid: i64) -> Record {
    record(Event::ProcessEvent(ProcessEvent {
        proc_oid: Oid {
            create_ts: 1_531_776_682_000_000_001,
            hpid: 42,
        },
        ts: 1_531_776_682_500_000_000,
        tid,
        op_flags,
        ..Default::default()
    }))
}

fn fe(op_flags: i32) -> Record {
    let mut r = record(Event::FileEvent(FileEvent {
        proc_oid: Oid {
            create_ts: 1,
            hpid: 42,
        },
        ts: 5,
        tid: 42,
        op_flags,
        ..Default::default()
    }));
    r.file = Some(Arc::new(File {
        restype: i32::from(b'f'),
        path: "/tmp/a.txt".into(),
        oid: [7; 20],
        ..Default::default()
    }));
    r.new_file = Some(Arc::new(File {
        restype: i32::from(b'f'),
        path: "/tmp/b.txt".into(),
        ..Default::default()
    }));
    r
}

fn ff(op_flags: i32, rbytes: i64, wbytes: i64) -> Record {
    let mut r = record(Event::FileFlow(FileFlow {
        ts: 10,
        end_ts: 25,
        tid: 42,
        op_flags,
        fd: 3,
        num_rrecv_bytes: rbytes,
        num_wsend_bytes: wbytes,
        ..Default::default()
    }));
    r.file = Some(Arc::new(File {
        restype: i32::from(b'f'),
        path: "/etc/passwd".into(),
        ..Default::default()
    }));
    r
}

#[test]
fn event_category_type_and_action_follow_op_flags() {
    let c = |r: &Record| classify(r);
    assert_eq!(c(&pe(OP_CLONE, 42)), ("process", "start", "process-start"));
    assert_eq!(
        c(&pe(OP_CLONE, 43)),
        ("process", "thread-start", "process-thread-start")
    );
    assert_eq!(c(&pe(OP_EXEC, 42)), ("process", "start", "process-start"));
    assert_eq!(c(&pe(OP_EXIT, 42)), ("process", "exit", "process-exit"));
    assert_eq!(
        c(&pe(OP_EXIT, 7)),
        ("process", "thread-exit", "process-thread-exit")
    );
    assert_eq!(
        c(&pe(OP_SETUID, 42)),
        ("process", "change", "process-change")
    );
    assert_eq!(
        c(&fe(OP_MKDIR)),
        ("directory", "creation", "directory-create")
    );
    assert_eq!(
        c(&fe(OP_RMDIR)),
        ("directory", "deletion", "directory-delete")
    );
    assert_eq!(c(&fe(OP_UNLINK)), ("file", "deletion", "file-delete"));
    assert_eq!(c(&fe(OP_SYMLINK)), ("file", "change", "file-link"));
    assert_eq!(c(&fe(OP_RENAME)), ("file", "change", "file-rename"));
    assert_eq!(
        c(&ff(OP_OPEN | OP_READ_RECV | OP_CLOSE, 10, 0)),
        ("file", "access", "file-access-read")
    );
    assert_eq!(
        c(&ff(OP_OPEN | OP_READ_RECV | OP_WRITE_SEND, 10, 5)),
        ("file", "change", "file-access-read-write")
    );
    // The write bit without written bytes or operations is no write.
    assert_eq!(
        c(&ff(OP_OPEN | OP_WRITE_SEND, 0, 0)),
        ("file", "access", "file-access")
    );
    let nf = record(Event::NetworkFlow(NetworkFlow::default()));
    assert_eq!(
        c(&nf),
        ("network", "connection", "network-connection-traffic")
    );
    let ke = record(Event::K8sEvent(K8sEvent {
        action: 2,
        ..Default::default()
    }));
    assert_eq!(
        c(&ke),
        ("orchestration", "deletion", "K8S_COMPONENT_DELETED")
    );
}

#[test]
fn kind_is_alert_only_when_a_rule_matched() {
    let mut r = pe(OP_EXEC, 42);
    let v = encode(&r);
    assert_eq!(v["event"]["kind"], "event");
    assert!(v["event"].get("reason").is_none() && v.get("tags").is_none());
    r.policies = vec![
        PolicyMatch {
            id: "first".into(),
            desc: "d".into(),
            priority: 0,
            tags: Arc::from(vec!["mitre:T1059".to_string()]),
        },
        PolicyMatch {
            id: "second".into(),
            desc: "d".into(),
            priority: 3,
            tags: Arc::from(vec!["exec".to_string()]),
        },
    ];
    r.tags = vec!["ctx".into()];
    let v = encode(&r);
    assert_eq!(v["event"]["kind"], "alert");
    assert_eq!(v["event"]["reason"], "first, second");
    assert_eq!(v["event"]["severity"], 3);
    assert_eq!(v["tags"], serde_json::json!(["ctx", "mitre:T1059", "exec"]));
    r.policies.truncate(1);
    // Informational rules still report upstream's lowest alert severity.
    assert_eq!(encode(&r)["event"]["severity"], 1);
}

#[test]
fn process_event_document() {
    let v = encode(&pe(OP_EXEC, 42));
    assert_eq!(v["@timestamp"], "2018-07-16T21:31:22.5Z");
    assert_eq!(v["agent"]["type"], "SysFlow");
    assert_eq!(v["ecs"]["version"], ECS_VERSION);
    assert_eq!(v["event"]["start"], v["@timestamp"]);
    assert_eq!(v["event"]["end"], v["@timestamp"]);
    assert_eq!(v["event"]["duration"], 0);
    assert_eq!(v["event"]["sf_type"], "PE");
    assert_eq!(v["event"]["sf_ret"], 0);
    assert_eq!(
        v["host"],
        serde_json::json!({"id":"node-1","ip":"10.0.0.1"})
    );
    let p = &v["process"];
    assert_eq!(p["executable"], "/usr/bin/curl");
    assert_eq!(p["name"], "curl");
    assert_eq!(p["command_line"], "/usr/bin/curl -s http://x");
    assert_eq!(p["args"], "-s http://x");
    assert_eq!(p["pid"], 42);
    assert_eq!(p["start"], "2018-07-16T21:31:22.000000001Z");
    assert_eq!(p["thread"]["id"], 42);
    assert_eq!(p["parent"]["name"], "bash");
    assert_eq!(p["parent"]["pid"], 1);
    assert_eq!(
        v["user"],
        serde_json::json!({"group":{"id":100,"name":"users"},"id":1000,"name":"alice"})
    );
}

#[test]
fn network_flow_document() {
    let r = record(Event::NetworkFlow(NetworkFlow {
        ts: 1_000_000_000,
        end_ts: 3_000_000_000,
        tid: 42,
        sip: sf_ip(128, 232, 110, 120),
        sport: 34855,
        dip: sf_ip(66, 35, 250, 204),
        dport: 80,
        proto: 6,
        num_rrecv_bytes: 100,
        num_rrecv_ops: 2,
        num_wsend_bytes: 10,
        num_wsend_ops: 1,
        ..Default::default()
    }));
    let v = encode(&r);
    assert_eq!(
        v["network"],
        serde_json::json!({"bytes":110,"community_id":"1:LQU9qZlK+B5F3KDmev6m5PMibrg=","iana_number":6,"transport":"tcp"})
    );
    assert_eq!(
        v["source"],
        serde_json::json!({"address":"128.232.110.120","bytes":10,"ip":"128.232.110.120","packets":1,"port":34855})
    );
    assert_eq!(v["destination"]["bytes"], 100);
    assert_eq!(v["destination"]["packets"], 2);
    assert_eq!(v["event"]["duration"], 2_000_000_000i64);
    assert_eq!(v["event"]["end"], "1970-01-01T00:00:03Z");
    assert!(v["event"].get("sf_ret").is_none());
}

#[test]
fn file_documents() {
    let v = encode(&ff(OP_OPEN | OP_READ_RECV, 10, 0));
    assert_eq!(
        v["file"],
        serde_json::json!({"directory":"/etc","name":"passwd","path":"/etc/passwd","type":"file"})
    );
    assert_eq!(
        v["sf_file_action"],
        serde_json::json!({"bytes_read":10,"bytes_written":0,"read_ops":0,"write_ops":0})
    );
    assert!(encode(&ff(OP_OPEN, 0, 0)).get("sf_file_action").is_none());
    let v = encode(&fe(OP_RENAME));
    assert_eq!(v["file"]["target_path"], "/tmp/b.txt");
    assert_eq!(v["event"]["sf_ret"], 0);
    let v = encode(&fe(OP_SYMLINK));
    assert_eq!(v["file"]["type"], "symlink");
    // A file without a path is named by its descriptor.
    let mut r = ff(OP_OPEN, 0, 0);
    r.file = None;
    let v = encode(&r);
    assert_eq!(
        v["file"],
        serde_json::json!({"directory":"/proc/0/fd","name":"3","path":"/proc/0/fd/3","type":"unknown"})
    );
    let mut r = fe(OP_MKDIR);
    r.file = Some(Arc::new(File {
        restype: i32::from(b'd'),
        path: "/tmp/d".into(),
        ..Default::default()
    }));
    assert_eq!(
        encode(&r)["file"],
        serde_json::json!({"directory":"/tmp/d","type":"dir"})
    );
}

#[test]
fn k8s_event_and_pod_documents() {
    let message =
        "{\"kind\":\"Pod\",\"items\":[{\"namespace\":\"default\",\"name\":\"web-1\"}]}\n\0";
    let mut r = record(Event::K8sEvent(K8sEvent {
        kind: 2,
        action: 0,
        ts: 7,
        message: message.into(),
    }));
    r.process = None;
    let v = encode(&r);
    assert_eq!(
        v["orchestrator"],
        serde_json::json!({"namespace":"default","resource":{"name":"web-1","type":"pod"},"type":"kubernetes"})
    );
    assert_eq!(v["event"]["original"], message);
    assert!(v.get("process").is_none() && v.get("user").is_none());

    let mut r = pe(OP_EXEC, 42);
    r.container = Some(Arc::new(Container {
        id: "c1".into(),
        name: " web ".into(),
        image: "nginx".into(),
        imageid: "sha".into(),
        ctype: 0,
        privileged: true,
        pod_id: Some("p1".into()),
    }));
    r.pod = Some(Arc::new(Pod {
        id: "p1".into(),
        name: "web-1".into(),
        namespace: "default".into(),
        host_ip: vec![i64::from(sf_ip(10, 0, 0, 1))],
        services: vec![Service {
            id: "s".into(),
            cluster_ip: vec![i64::from(sf_ip(10, 96, 0, 1))],
            port_list: vec![Port {
                port: 80,
                target_port: 8080,
                node_port: 0,
                proto: "TCP".into(),
            }],
            ..Default::default()
        }],
        ..Default::default()
    }));
    let v = encode(&r);
    assert_eq!(
        v["container"],
        serde_json::json!({"id":"c1","image":{"id":"sha","name":"nginx"},"name":"web","runtime":"DOCKER","sf_privileged":true})
    );
    assert_eq!(v["orchestrator"]["resource"]["type"], "pod");
    assert_eq!(v["pod"]["hostip"], serde_json::json!(["10.0.0.1"]));
    assert_eq!(
        v["service"][0]["clusterip"],
        serde_json::json!(["10.96.0.1"])
    );
    assert_eq!(v["service"][0]["ports"][0]["targetport"], 8080);
}

#[test]
fn unknown_process_and_invalid_header_ip() {
    let mut r = pe(OP_EXEC, 42);
    r.process = None;
    r.header = Arc::new(Header::default());
    let v = encode(&r);
    assert_eq!(
        v["process"],
        serde_json::json!({"pid":42,"start":"2018-07-16T21:31:22.000000001Z","thread":{"id":42}})
    );
    assert!(v.get("user").is_none());
    assert_eq!(v["host"], serde_json::json!({"id":""}));
}

#[test]
fn times_are_rfc3339_nano() {
    let t = |ts: i64| {
        let mut o = Vec::new();
        write_time(&mut o, ts);
        String::from_utf8(o).unwrap()
    };
    assert_eq!(t(0), "\"1970-01-01T00:00:00Z\"");
    assert_eq!(t(951_782_400_000_000_000), "\"2000-02-29T00:00:00Z\"");
    assert_eq!(
        t(1_795_425_302_123_456_000),
        "\"2026-11-23T09:15:02.123456Z\""
    );
    assert_eq!(t(-1), "\"1969-12-31T23:59:59.999999999Z\"");
    assert_eq!(t(1_000_000_010), "\"1970-01-01T00:00:01.00000001Z\"");
}

#[test]
fn ids_are_deterministic_and_tell_records_apart() {
    let a = ff(OP_OPEN, 1, 0);
    assert_eq!(doc_id(&a), doc_id(&a.clone()));
    assert_eq!(doc_id(&a).len(), 16);
    assert!(doc_id(&a)
        .bytes()
        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    // Counters are not part of the id (as upstream); time, thread, flags and file are.
    assert_eq!(doc_id(&a), doc_id(&ff(OP_OPEN, 2, 0)));
    assert_ne!(doc_id(&a), doc_id(&ff(OP_OPEN | OP_CLOSE, 1, 0)));
    let mut b = a.clone();
    if let Event::FileFlow(f) = &mut b.event {
        f.ts += 1;
    }
    assert_ne!(doc_id(&a), doc_id(&b));
    let mut c = a.clone();
    c.file = Some(Arc::new(File {
        oid: [1; 20],
        ..Default::default()
    }));
    assert_ne!(doc_id(&a), doc_id(&c));
    // Upstream's byte layout: node, container, then little-endian integers.
    let mut h = Xxh64::new(0);
    h.update(b"node-1");
    for v in [5i64, 42, 1, i64::from(OP_RENAME)] {
        h.update(&(v as u64).to_le_bytes());
    }
    h.update("07".repeat(20).as_bytes());
    assert_eq!(doc_id(&fe(OP_RENAME)), format!("{:016x}", h.digest()));
}
