//! Elastic Common Schema (ECS 8.x) documents, as upstream's `ecs` format.
//!
//! One JSON object per record, with upstream's field set (`core/exporter/encoders/ecs.go`):
//! `@timestamp`, `agent`, `ecs`, `event`, `host`, then `container`, `orchestrator`, `pod`,
//! `service`, `file`, `sf_file_action`, `network`, `source`, `destination`, `process`, `user`
//! and `tags` where they apply. Members of an object are in name order, as Go's encoder writes
//! upstream's maps. The document id (upstream's `encodeID`, used as the Elasticsearch `_id`) is
//! not part of the document: see [`doc_id`].
//!
//! Deliberate differences from upstream (listed in `docs/compatibility.md`):
//! - `event.kind` is `alert` when a rule matched the record and `event` otherwise. Upstream
//!   reads a context flag (`Ctx.IsAlert()`) that nothing ever sets (`SetAlert` has no caller),
//!   so every upstream document says `event`, and alerts can only be told apart by
//!   `event.reason`; ECS defines `alert` for exactly this case (a detection rule fired), and
//!   SIEM views filter on it.
//! - `network.transport` instead of `network.protocol` for `tcp`/`udp`/...: that is the ECS
//!   field for the layer-4 protocol and the one upstream's own index mapping declares.
//! - `network.iana_number` is a number, not a string (upstream's mapping types it `short`).
//! - `host.ip` is left out when the header's address is not an IP address (old traces carry
//!   the schema default `NA`, which an `ip` field rejects).
//! - `process.parent` is left out when the process has no parent id (upstream writes a parent
//!   with pid 0 and a 1970 start time); names of empty paths are `""`, not Go's `.`.
//! - A record whose process is unknown has `process.pid`, `process.start` and
//!   `process.thread.id` from the event and no `user` (upstream writes uid/gid 0, i.e. root).
//! - `NE` and `PF` records (upstream never exports them) are encoded: network events like
//!   network flows without byte counts and with `event.sf_ret`; process flows as
//!   `process`/`info` events.

use std::net::IpAddr;
use std::sync::Arc;

use xxhash_rust::xxh64::Xxh64;

use super::json::{cmdline, ptr, render, split_sym_path, write_str, FragCache, W};
use crate::record::{Event, Record};
use crate::sysflow::model::*;
use crate::sysflow::names::{
    base_name, dir_name, write_ip, OP_ACCEPT, OP_CLONE, OP_CLOSE, OP_CONNECT, OP_EXEC, OP_EXIT,
    OP_LINK, OP_MKDIR, OP_READ_RECV, OP_RENAME, OP_RMDIR, OP_SETUID, OP_SHUTDOWN, OP_SYMLINK,
    OP_UNLINK, OP_WRITE_SEND,
};

/// `ecs.version` written by default: upstream's build sets `SYSFLOW_ECS_VERSION=8.2`
/// (`makefile.manifest.inc`), which its exporter config passes through unchanged.
pub const ECS_VERSION: &str = "8.2";

/// `agent.type` (upstream's `ECS_AGENT_TYPE`).
pub const ECS_AGENT_TYPE: &str = "SysFlow";

/// Upstream's lowest alert severity (`policy.Low`): `event.severity` is never below it.
const SEVERITY_LOW: i64 = 1;

type ProcKeep = (Arc<Process>, Arc<[Arc<Process>]>);

/// The rendered `process` section up to the thread id, and the `user` section.
struct ProcFrag {
    head: Vec<u8>,
    user: Vec<u8>,
}

/// Encodes records as ECS documents.
///
/// Sections that only depend on an entity (host, container, pod, process and user) are
/// rendered once per entity and copied for every record that shares it; file directories are
/// computed once per file.
pub struct EcsEncoder {
    /// `,"agent":{...},"ecs":{...}`, the same for every record.
    agent_ecs: Vec<u8>,
    num: itoa::Buffer,
    hosts: FragCache<Arc<Header>, Vec<u8>>,
    procs: FragCache<ProcKeep, ProcFrag>,
    containers: FragCache<Arc<Container>, Vec<u8>>,
    pods: FragCache<Arc<Pod>, Vec<u8>>,
    dirs: FragCache<Arc<File>, String>,
}

impl Default for EcsEncoder {
    fn default() -> Self {
        Self::with_versions(env!("CARGO_PKG_VERSION"), ECS_VERSION)
    }
}

impl EcsEncoder {
    /// An encoder writing this program's version as `agent.version` and [`ECS_VERSION`].
    pub fn new() -> Self {
        Self::default()
    }

    /// An encoder with explicit `agent.version` and `ecs.version` (upstream's `version` and
    /// `ecsversion` exporter settings).
    pub fn with_versions(agent_version: &str, ecs_version: &str) -> Self {
        let agent_ecs = render(|w| {
            w.section("agent");
            w.str("type", ECS_AGENT_TYPE);
            w.str("version", agent_version);
            w.end_section();
            w.section("ecs");
            w.str("version", ecs_version);
            w.end_section();
        });
        EcsEncoder {
            agent_ecs,
            num: itoa::Buffer::new(),
            hosts: FragCache::new(16),
            procs: FragCache::new(2048),
            containers: FragCache::new(1024),
            pods: FragCache::new(1024),
            dirs: FragCache::new(4096),
        }
    }

    /// Appends the ECS document for `rec` to `out` (one JSON object, no trailing newline).
    pub fn encode(&mut self, rec: &Record, out: &mut Vec<u8>) {
        let EcsEncoder {
            agent_ecs,
            num,
            hosts,
            procs,
            containers,
            pods,
            dirs,
        } = self;
        let ev = &rec.event;
        out.extend_from_slice(b"{\"@timestamp\":");
        write_time(out, ev.ts());
        out.extend_from_slice(agent_ecs);
        let mut w = W {
            out,
            num,
            first: false,
        };
        write_event(&mut w, rec);
        let host = hosts.get_or_insert(
            (ptr(&rec.header), 0),
            || rec.header.clone(),
            || render(|w| write_host(w, &rec.header)),
        );
        w.out.extend_from_slice(host);

        if let Event::K8sEvent(ke) = ev {
            write_k8s_orchestrator(&mut w, &ke.message);
            finish(&mut w, rec);
            return;
        }

        if let Some(c) = rec.container.as_ref().filter(|c| !c.id.is_empty()) {
            let frag = containers.get_or_insert(
                (ptr(c), 0),
                || c.clone(),
                || render(|w| write_container(w, c)),
            );
            w.out.extend_from_slice(frag);
        }
        if let Some(pd) = rec.pod.as_ref().filter(|p| !p.id.is_empty()) {
            let frag =
                pods.get_or_insert((ptr(pd), 0), || pd.clone(), || render(|w| write_pod(w, pd)));
            w.out.extend_from_slice(frag);
        }

        match ev {
            Event::FileFlow(ff) => {
                write_file(&mut w, dirs, rec, ff.fd, ff.op_flags);
                let (rb, ro, wb, wo) = (
                    ff.num_rrecv_bytes,
                    ff.num_rrecv_ops,
                    ff.num_wsend_bytes,
                    ff.num_wsend_ops,
                );
                if rb > 0 || ro > 0 || wb > 0 || wo > 0 {
                    w.section("sf_file_action");
                    w.int("bytes_read", rb);
                    w.int("bytes_written", wb);
                    w.int("read_ops", ro);
                    w.int("write_ops", wo);
                    w.end_section();
                }
            }
            Event::FileEvent(fe) => write_file(&mut w, dirs, rec, 0, fe.op_flags),
            Event::NetworkFlow(nf) => write_network(
                &mut w,
                (nf.sip, nf.sport, nf.dip, nf.dport, nf.proto),
                Some((
                    nf.num_rrecv_bytes,
                    nf.num_rrecv_ops,
                    nf.num_wsend_bytes,
                    nf.num_wsend_ops,
                )),
            ),
            Event::NetworkEvent(ne) => {
                write_network(&mut w, (ne.sip, ne.sport, ne.dip, ne.dport, ne.proto), None)
            }
            _ => {}
        }

        let tid = ev.tid();
        match &rec.process {
            Some(p) => {
                let ancestors = &rec.ancestors;
                let frag = procs.get_or_insert(
                    (ptr(p), ptr(ancestors)),
                    || (p.clone(), ancestors.clone()),
                    || ProcFrag {
                        head: render(|w| write_process_head(w, p, ancestors)),
                        user: render(|w| write_user(w, p)),
                    },
                );
                w.out.extend_from_slice(&frag.head);
                w.out.extend_from_slice(w.num.format(tid).as_bytes());
                w.out.extend_from_slice(b"}}");
                w.out.extend_from_slice(&frag.user);
            }
            None => {
                // Only the event's own process id is known.
                let oid = ev.proc_oid().unwrap_or_default();
                w.section("process");
                w.int("pid", oid.hpid);
                time(&mut w, "start", oid.create_ts);
                w.section("thread");
                w.int("id", tid);
                w.end_section();
                w.end_section();
            }
        }
        finish(&mut w, rec);
    }
}

/// The `event` section.
fn write_event(w: &mut W, rec: &Record) {
    let ev = &rec.event;
    let (category, ty, action) = classify(rec);
    let start = ev.ts();
    let end = match ev.end_ts() {
        0 => start,
        e => e,
    };
    w.section("event");
    w.str("action", action);
    w.str("category", category);
    w.int("duration", end.wrapping_sub(start));
    time(w, "end", end);
    // Deliberately not upstream's: `alert` exactly when a rule matched (upstream's flag is
    // never set, so it always wrote `event`; see the module notes).
    w.str(
        "kind",
        if rec.policies.is_empty() {
            "event"
        } else {
            "alert"
        },
    );
    if let Event::K8sEvent(ke) = ev {
        w.str("original", &ke.message);
    }
    if !rec.policies.is_empty() {
        w.key("reason");
        let mut reason = String::new();
        for (i, p) in rec.policies.iter().enumerate() {
            if i > 0 {
                reason.push_str(", ");
            }
            reason.push_str(&p.id);
        }
        write_str(w.out, &reason);
        let severity = rec
            .policies
            .iter()
            .map(|p| p.priority)
            .fold(SEVERITY_LOW, i64::max);
        w.int("severity", severity);
    }
    if matches!(
        ev,
        Event::ProcessEvent(_) | Event::FileEvent(_) | Event::NetworkEvent(_)
    ) {
        w.int("sf_ret", i64::from(ev.ret()));
    }
    w.str("sf_type", rec.kind().short());
    time(w, "start", start);
    w.str("type", ty);
    w.end_section();
}

/// `event.category`, `event.type` and `event.action` of a record, as upstream's
/// `encodeNetworkFlow`, `encodeFileFlow`, `encodeFileEvent`, `encodeProcessEvent` and
/// `encodeK8sEvent` set them (network events and process flows: see the module notes).
pub fn classify(rec: &Record) -> (&'static str, &'static str, &'static str) {
    let has = |flags: i32, bit: i32| flags & bit == bit;
    match &rec.event {
        Event::NetworkFlow(_) => ("network", "connection", "network-connection-traffic"),
        Event::FileFlow(ff) => {
            let read =
                has(ff.op_flags, OP_READ_RECV) && (ff.num_rrecv_bytes > 0 || ff.num_rrecv_ops > 0);
            let write =
                has(ff.op_flags, OP_WRITE_SEND) && (ff.num_wsend_bytes > 0 || ff.num_wsend_ops > 0);
            match (read, write) {
                (false, false) => ("file", "access", "file-access"),
                (true, false) => ("file", "access", "file-access-read"),
                (false, true) => ("file", "change", "file-access-write"),
                (true, true) => ("file", "change", "file-access-read-write"),
            }
        }
        Event::FileEvent(fe) => {
            let f = fe.op_flags;
            if has(f, OP_MKDIR) {
                ("directory", "creation", "directory-create")
            } else if has(f, OP_RMDIR) {
                ("directory", "deletion", "directory-delete")
            } else if has(f, OP_UNLINK) {
                ("file", "deletion", "file-delete")
            } else if has(f, OP_SYMLINK) || has(f, OP_LINK) {
                ("file", "change", "file-link")
            } else if has(f, OP_RENAME) {
                ("file", "change", "file-rename")
            } else {
                ("file", "change", "file-change")
            }
        }
        Event::ProcessEvent(pe) => {
            let f = pe.op_flags;
            let thread = pe.proc_oid.hpid != pe.tid;
            if has(f, OP_EXIT) {
                if thread {
                    ("process", "thread-exit", "process-thread-exit")
                } else {
                    ("process", "exit", "process-exit")
                }
            } else if (has(f, OP_CLONE) || has(f, OP_EXEC)) && thread {
                ("process", "thread-start", "process-thread-start")
            } else if !has(f, OP_CLONE) && !has(f, OP_EXEC) && has(f, OP_SETUID) {
                ("process", "change", "process-change")
            } else {
                ("process", "start", "process-start")
            }
        }
        Event::K8sEvent(ke) => {
            let ty = match ke.action {
                0 => "creation",
                1 => "change",
                2 => "deletion",
                3 => "error",
                _ => "info",
            };
            let action = K8S_ACTIONS.get(ke.action as usize).copied().unwrap_or("");
            ("orchestration", ty, action)
        }
        Event::NetworkEvent(ne) => {
            let f = ne.op_flags;
            if has(f, OP_CONNECT) {
                ("network", "start", "network-connect")
            } else if has(f, OP_ACCEPT) {
                ("network", "start", "network-accept")
            } else if has(f, OP_CLOSE) {
                ("network", "end", "network-close")
            } else if has(f, OP_SHUTDOWN) {
                ("network", "end", "network-shutdown")
            } else {
                ("network", "connection", "network-connection")
            }
        }
        Event::ProcessFlow(_) => ("process", "info", "process-flow"),
    }
}

fn write_host(w: &mut W, h: &Header) {
    w.section("host");
    w.str("id", &h.exporter);
    if h.ip.parse::<IpAddr>().is_ok() {
        w.str("ip", &h.ip);
    }
    w.end_section();
}

fn write_container(w: &mut W, c: &Container) {
    w.section("container");
    w.str("id", &c.id);
    if !c.imageid.is_empty() {
        w.section("image");
        w.str("id", &c.imageid);
        w.str("name", c.image.trim());
        w.end_section();
    }
    w.str("name", c.name.trim());
    let t = CONTAINER_TYPES.get(c.ctype as usize).copied().unwrap_or("");
    w.str("runtime", t.strip_prefix("CT_").unwrap_or(t));
    w.boolean("sf_privileged", c.privileged);
    w.end_section();
}

/// `orchestrator`, `pod` and `service` of a record in a pod.
fn write_pod(w: &mut W, pd: &Pod) {
    write_orchestrator(w, pd.namespace.trim(), pd.name.trim(), "pod");
    w.section("pod");
    w.ip_list("hostip", &pd.host_ip);
    w.str("id", &pd.id);
    w.ip_list("internalip", &pd.internal_ip);
    w.str("name", pd.name.trim());
    w.str("namespace", pd.namespace.trim());
    w.str("nodename", pd.node_name.trim());
    w.int("restartcnt", pd.restart_count);
    time(w, "ts", pd.ts);
    w.end_section();
    if pd.services.is_empty() {
        return;
    }
    w.key("service");
    w.out.push(b'[');
    for (i, s) in pd.services.iter().enumerate() {
        if i > 0 {
            w.out.push(b',');
        }
        w.out.push(b'{');
        w.first = true;
        w.ip_list("clusterip", &s.cluster_ip);
        w.str("id", &s.id);
        w.str("name", &s.name);
        w.str("namespace", &s.namespace);
        w.key("ports");
        w.out.push(b'[');
        for (j, p) in s.port_list.iter().enumerate() {
            if j > 0 {
                w.out.push(b',');
            }
            w.out.push(b'{');
            w.first = true;
            w.int("nodeport", i64::from(p.node_port));
            w.int("port", i64::from(p.port));
            w.str("proto", &p.proto);
            w.int("targetport", i64::from(p.target_port));
            w.out.push(b'}');
        }
        w.out.push(b']');
        w.out.push(b'}');
    }
    w.out.push(b']');
    w.first = false;
}

fn write_orchestrator(w: &mut W, namespace: &str, name: &str, resource_type: &str) {
    w.section("orchestrator");
    w.str("namespace", namespace);
    w.section("resource");
    w.str("name", name);
    w.str("type", resource_type);
    w.end_section();
    w.str("type", "kubernetes");
    w.end_section();
}

/// The `orchestrator` of a Kubernetes event, read from its JSON message as upstream does with
/// gjson (`items.0.namespace`, `items.0.name`, lowercased `kind`; missing values are `""`).
fn write_k8s_orchestrator(w: &mut W, message: &str) {
    // The first JSON value of the message: collectors end it with a newline and a NUL byte,
    // which gjson skips too.
    let msg: Option<serde_json::Value> = serde_json::Deserializer::from_str(message)
        .into_iter()
        .next()
        .and_then(Result::ok);
    let msg = msg.as_ref();
    let item = msg.and_then(|m| m.get("items")).and_then(|i| i.get(0));
    let namespace = gjson_string(item.and_then(|i| i.get("namespace")));
    let name = gjson_string(item.and_then(|i| i.get("name")));
    let kind = gjson_string(msg.and_then(|m| m.get("kind"))).to_lowercase();
    write_orchestrator(w, &namespace, &name, &kind);
}

/// gjson's `Result.String()`: strings as they are, other values as JSON text, missing and
/// `null` as `""`.
fn gjson_string(v: Option<&serde_json::Value>) -> std::borrow::Cow<'_, str> {
    match v {
        None | Some(serde_json::Value::Null) => "".into(),
        Some(serde_json::Value::String(s)) => s.as_str().into(),
        Some(other) => other.to_string().into(),
    }
}

/// The `file` section of file flows and file events (upstream's `encodeFile`, plus
/// `target_path` for links and renames).
fn write_file(
    w: &mut W,
    dirs: &mut FragCache<Arc<File>, String>,
    rec: &Record,
    fd: i32,
    op_flags: i32,
) {
    let f = rec.file.as_deref();
    let (path, _) = split_sym_path(f.map(|f| f.path.trim()).unwrap_or(""));
    let ty = if op_flags & OP_SYMLINK == OP_SYMLINK {
        "symlink"
    } else {
        match f.map(|f| f.restype).unwrap_or(0) {
            0x66 => "file",   // 'f'
            0x64 => "dir",    // 'd'
            0x75 => "socket", // 'u'
            0x70 => "pipe",   // 'p'
            _ => "unknown",
        }
    };
    let target = matches!(rec.event, Event::FileEvent(_))
        && op_flags & (OP_SYMLINK | OP_LINK | OP_RENAME) != 0
        && op_flags & (OP_MKDIR | OP_RMDIR | OP_UNLINK) == 0;
    let fd_path;
    let mut fd_name = itoa::Buffer::new();
    let (fpath, name) = if path.is_empty() {
        let pid = rec.event.proc_oid().unwrap_or_default().hpid;
        fd_path = format!("/proc/{pid}/fd/{fd}");
        (fd_path.as_str(), fd_name.format(fd))
    } else {
        (path, base_name(path))
    };
    w.section("file");
    if ty == "dir" {
        w.str("directory", fpath);
    } else {
        w.key("directory");
        match rec.file.as_ref().filter(|_| !path.is_empty()) {
            // The directory of a file entity's path, computed once per entity.
            Some(a) => {
                let dir = dirs.get_or_insert((ptr(a), 0), || a.clone(), || dir_name(path));
                write_str(w.out, dir);
            }
            None => write_str(w.out, &dir_name(fpath)),
        }
        w.str("name", name);
        if fpath != name {
            w.str("path", fpath);
        }
    }
    if target {
        let n = rec.new_file.as_deref();
        let (npath, _) = split_sym_path(n.map(|f| f.path.trim()).unwrap_or(""));
        w.str("target_path", npath);
    }
    w.str("type", ty);
    w.end_section();
}

/// Upstream's `sfgo.GetProto`.
fn transport(proto: i32) -> &'static str {
    match proto {
        6 => "tcp",
        17 => "udp",
        1 => "icmp",
        254 => "raw",
        _ => "",
    }
}

/// `network`, `source` and `destination`; `counters` (rbytes, rops, wbytes, wops) for flows.
fn write_network(
    w: &mut W,
    (sip, sport, dip, dport, proto): (i32, i32, i32, i32, i32),
    counters: Option<(i64, i64, i64, i64)>,
) {
    w.section("network");
    if let Some((rb, _, wb, _)) = counters {
        w.int("bytes", rb.wrapping_add(wb));
    }
    w.key("community_id");
    w.out.push(b'"');
    write_community_id(
        w.out,
        0,
        IpAddr::from((sip as u32).to_le_bytes()),
        IpAddr::from((dip as u32).to_le_bytes()),
        sport as u16,
        dport as u16,
        proto as u8,
    );
    w.out.push(b'"');
    w.int("iana_number", i64::from(proto));
    w.str("transport", transport(proto));
    w.end_section();
    let endpoint = |w: &mut W, name: &str, ip: i32, port: i32, bytes_ops: Option<(i64, i64)>| {
        w.section(name);
        w.key("address");
        write_quoted_ip(w.out, ip);
        if let Some((b, _)) = bytes_ops {
            w.int("bytes", b);
        }
        w.key("ip");
        write_quoted_ip(w.out, ip);
        if let Some((_, o)) = bytes_ops {
            w.int("packets", o);
        }
        w.int("port", i64::from(port));
        w.end_section();
    };
    // The source sends (writes), the destination receives.
    endpoint(w, "source", sip, sport, counters.map(|c| (c.2, c.3)));
    endpoint(w, "destination", dip, dport, counters.map(|c| (c.0, c.1)));
}

fn write_quoted_ip(out: &mut Vec<u8>, ip: i32) {
    out.push(b'"');
    write_ip(i64::from(ip), out);
    out.push(b'"');
}

fn name_of(exe: &str) -> &str {
    if exe.is_empty() {
        ""
    } else {
        base_name(exe)
    }
}

/// The `process` section up to the thread id: `...,"thread":{"id":` (the event's tid and
/// `}}` follow).
fn write_process_head(w: &mut W, p: &Process, ancestors: &[Arc<Process>]) {
    w.section("process");
    w.str("args", &p.exe_args);
    w.str("command_line", cmdline(p));
    w.str("executable", &p.exe);
    w.str("name", name_of(&p.exe));
    if let Some(poid) = p.poid.filter(|o| o.hpid != 0) {
        let parent = ancestors.first().map(|a| a.as_ref());
        w.section("parent");
        w.str("args", parent.map(|a| a.exe_args.as_str()).unwrap_or(""));
        w.str("command_line", parent.map(cmdline).unwrap_or(""));
        let pexe = parent.map(|a| a.exe.as_str()).unwrap_or("");
        w.str("executable", pexe);
        w.str("name", name_of(pexe));
        w.int("pid", poid.hpid);
        time(w, "start", poid.create_ts);
        w.end_section();
    }
    w.int("pid", p.oid.hpid);
    time(w, "start", p.oid.create_ts);
    w.section("thread");
    w.key("id");
}

fn write_user(w: &mut W, p: &Process) {
    w.section("user");
    w.section("group");
    w.int("id", i64::from(p.gid));
    if !p.group_name.is_empty() {
        w.str("name", &p.group_name);
    }
    w.end_section();
    w.int("id", i64::from(p.uid));
    if !p.user_name.is_empty() {
        w.str("name", &p.user_name);
    }
    w.end_section();
}

/// Action tags, then the tags of the rules that matched (upstream's `extracTags`); closes the
/// document.
fn finish(w: &mut W, rec: &Record) {
    let rule_tags = rec.policies.iter().flat_map(|p| p.tags.iter());
    if !rec.tags.is_empty() || rec.policies.iter().any(|p| !p.tags.is_empty()) {
        w.str_list("tags", rec.tags.iter().chain(rule_tags).map(String::as_str));
    }
    w.out.push(b'}');
}

fn time(w: &mut W, k: &str, ts: i64) {
    w.key(k);
    write_time(w.out, ts);
}

/// Appends `ts` (nanoseconds since the epoch) as a quoted RFC 3339 UTC time with the
/// fraction's trailing zeros removed, as Go's `time.RFC3339Nano` (upstream's `ToIsoTimeStr`):
/// `2018-07-16T21:31:22.123456Z`, `1970-01-01T00:00:00Z`.
pub fn write_time(out: &mut Vec<u8>, ts: i64) {
    let secs = ts.div_euclid(1_000_000_000);
    let nanos = ts.rem_euclid(1_000_000_000) as u32;
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400) as u32;
    let two = |out: &mut Vec<u8>, v: u32| {
        out.push(b'0' + (v / 10) as u8);
        out.push(b'0' + (v % 10) as u8);
    };
    out.push(b'"');
    // Nanosecond timestamps span the years 1677 to 2262: always four digits.
    let y = y.clamp(0, 9999) as u32;
    two(out, y / 100);
    two(out, y % 100);
    out.push(b'-');
    two(out, m);
    out.push(b'-');
    two(out, d);
    out.push(b'T');
    two(out, sod / 3600);
    out.push(b':');
    two(out, sod / 60 % 60);
    out.push(b':');
    two(out, sod % 60);
    if nanos != 0 {
        let mut digits = [0u8; 9];
        let mut n = nanos;
        for d in digits.iter_mut().rev() {
            *d = b'0' + (n % 10) as u8;
            n /= 10;
        }
        let len = 9 - digits.iter().rev().take_while(|&&c| c == b'0').count();
        out.push(b'.');
        out.extend_from_slice(&digits[..len]);
    }
    out.extend_from_slice(b"Z\"");
}

/// (year, month, day) of a day count since 1970-01-01 (proleptic Gregorian calendar).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// The document id of a record: upstream's `encodeID`, xxhash64 (seed 0) over the node id, the
/// container id, then as 8-byte little-endian integers the time stamp, thread id, process
/// creation time and op flags, then for file records the file's object id (40 hex digits), for
/// network records source ip, source port, destination ip, destination port and protocol (as
/// 8-byte integers), for Kubernetes events action, kind (8-byte integers) and the message.
/// 16 lowercase hex digits.
///
/// The process creation time is the event's process id's, which equals upstream's (the
/// process entity's) whenever the process is known. Network events (not exported upstream)
/// hash like network flows.
pub fn doc_id(rec: &Record) -> String {
    format!("{:016x}", doc_id_hash(rec))
}

/// [`doc_id`] as a number.
pub fn doc_id_hash(rec: &Record) -> u64 {
    let mut h = Xxh64::new(0);
    let ev = &rec.event;
    let int = |h: &mut Xxh64, v: i64| h.update(&(v as u64).to_le_bytes());
    h.update(rec.header.exporter.as_bytes());
    if !matches!(ev, Event::K8sEvent(_)) {
        if let Some(c) = &rec.container {
            h.update(c.id.as_bytes());
        }
    }
    int(&mut h, ev.ts());
    int(&mut h, ev.tid());
    int(&mut h, ev.proc_oid().map(|o| o.create_ts).unwrap_or(0));
    int(&mut h, i64::from(ev.op_flags()));
    match ev {
        Event::FileFlow(_) | Event::FileEvent(_) => {
            if let Some(f) = &rec.file {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                let mut hex = [0u8; 40];
                for (i, b) in f.oid.iter().enumerate() {
                    hex[2 * i] = HEX[(b >> 4) as usize];
                    hex[2 * i + 1] = HEX[(b & 0xf) as usize];
                }
                h.update(&hex);
            }
        }
        Event::NetworkFlow(n) => {
            for v in [n.sip, n.sport, n.dip, n.dport, n.proto] {
                int(&mut h, i64::from(v));
            }
        }
        Event::NetworkEvent(n) => {
            for v in [n.sip, n.sport, n.dip, n.dport, n.proto] {
                int(&mut h, i64::from(v));
            }
        }
        Event::K8sEvent(ke) => {
            int(&mut h, i64::from(ke.action));
            int(&mut h, i64::from(ke.kind));
            h.update(ke.message.as_bytes());
        }
        Event::ProcessEvent(_) | Event::ProcessFlow(_) => {}
    }
    h.digest()
}

// ---- Community ID v1 ----

/// ICMP type pairs that make a two-way "connection" (request and reply); the counterpart type
/// serves as the destination port. Other ICMP types are one-way.
fn icmp_counterpart(proto: u8, ty: u8) -> Option<u8> {
    let pairs: &[(u8, u8)] = match proto {
        1 => &[(8, 0), (13, 14), (15, 16), (10, 9), (17, 18)],
        58 => &[(128, 129), (133, 134), (135, 136), (130, 131), (144, 145)],
        _ => return None,
    };
    pairs.iter().find_map(|&(a, b)| {
        if ty == a {
            Some(b)
        } else if ty == b {
            Some(a)
        } else {
            None
        }
    })
}

/// The Community ID (version 1) of a flow: `"1:"` and the base64 of the SHA-1 of seed (2 bytes,
/// big endian), the two addresses, protocol, a zero byte and the two ports (2 bytes each,
/// big endian), with the endpoints ordered (smaller address first; for equal addresses the
/// smaller port first) unless the flow is one-way ICMP. ICMP types and codes stand in for the
/// ports. See <https://github.com/corelight/community-id-spec>; this follows `gommunityid`,
/// which upstream uses (ports are always hashed).
pub fn community_id(
    seed: u16,
    src: IpAddr,
    dst: IpAddr,
    sport: u16,
    dport: u16,
    proto: u8,
) -> String {
    let mut out = Vec::with_capacity(30);
    write_community_id(&mut out, seed, src, dst, sport, dport, proto);
    String::from_utf8(out).unwrap_or_default()
}

fn write_community_id(
    out: &mut Vec<u8>,
    seed: u16,
    src: IpAddr,
    dst: IpAddr,
    mut sport: u16,
    mut dport: u16,
    proto: u8,
) {
    let mut one_way = false;
    if proto == 1 || proto == 58 {
        let (ty, code) = (sport as u8, dport as u8);
        sport = u16::from(ty);
        match icmp_counterpart(proto, ty) {
            Some(c) => dport = u16::from(c),
            None => {
                dport = u16::from(code);
                one_way = true;
            }
        }
    }
    // Addresses as gommunityid writes them: 4 bytes for IPv4 (also IPv4-mapped IPv6),
    // 16 otherwise; IPv4 orders before IPv6.
    fn bytes(ip: IpAddr) -> ([u8; 16], usize) {
        let mut b = [0u8; 16];
        let v4 = match ip {
            IpAddr::V4(a) => Some(a),
            IpAddr::V6(a) => a.to_ipv4_mapped(),
        };
        match (v4, ip) {
            (Some(a), _) => {
                b[..4].copy_from_slice(&a.octets());
                (b, 4)
            }
            (None, IpAddr::V6(a)) => (a.octets(), 16),
            (None, IpAddr::V4(_)) => (b, 4),
        }
    }
    let (mut s, mut d) = (bytes(src), bytes(dst));
    let key = |x: &([u8; 16], usize)| (x.1, x.0);
    let ordered = key(&s) < key(&d) || (key(&s) == key(&d) && sport < dport);
    if !one_way && !ordered {
        std::mem::swap(&mut s, &mut d);
        std::mem::swap(&mut sport, &mut dport);
    }
    let mut buf = [0u8; 40];
    let mut n = 0;
    let mut put = |bytes: &[u8]| {
        buf[n..n + bytes.len()].copy_from_slice(bytes);
        n += bytes.len();
    };
    put(&seed.to_be_bytes());
    put(&s.0[..s.1]);
    put(&d.0[..d.1]);
    put(&[proto, 0]);
    put(&sport.to_be_bytes());
    put(&dport.to_be_bytes());
    out.extend_from_slice(b"1:");
    base64(out, &sha1(&buf[..n]));
}

/// Standard base64 with padding.
fn base64(out: &mut Vec<u8>, data: &[u8]) {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let v = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((v >> (18 - 6 * i)) & 0x3f) as usize]);
            } else {
                out.push(b'=');
            }
        }
    }
}

/// SHA-1 (FIPS 180-4) of a short message.
fn sha1(data: &[u8]) -> [u8; 20] {
    let mut h: [u32; 5] = [
        0x6745_2301,
        0xEFCD_AB89,
        0x98BA_DCFE,
        0x1032_5476,
        0xC3D2_E1F0,
    ];
    let mut blocks = data.chunks_exact(64);
    for block in &mut blocks {
        sha1_block(&mut h, block);
    }
    let rest = blocks.remainder();
    let mut tail = [0u8; 128];
    tail[..rest.len()].copy_from_slice(rest);
    tail[rest.len()] = 0x80;
    let len = if rest.len() < 56 { 64 } else { 128 };
    let bits = (data.len() as u64).wrapping_mul(8);
    tail[len - 8..len].copy_from_slice(&bits.to_be_bytes());
    for block in tail[..len].chunks_exact(64) {
        sha1_block(&mut h, block);
    }
    let mut out = [0u8; 20];
    for (o, v) in out.chunks_exact_mut(4).zip(h) {
        o.copy_from_slice(&v.to_be_bytes());
    }
    out
}

fn sha1_block(h: &mut [u32; 5], block: &[u8]) {
    let mut w = [0u32; 80];
    for (wi, c) in w.iter_mut().zip(block.chunks_exact(4)) {
        *wi = u32::from_be_bytes([c[0], c[1], c[2], c[3]]);
    }
    for i in 16..80 {
        w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
    }
    let [mut a, mut b, mut c, mut d, mut e] = *h;
    for (i, wi) in w.iter().enumerate() {
        let (f, k) = match i {
            0..=19 => ((b & c) | (!b & d), 0x5A82_7999),
            20..=39 => (b ^ c ^ d, 0x6ED9_EBA1),
            40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1B_BCDC),
            _ => (b ^ c ^ d, 0xCA62_C1D6),
        };
        let t = a
            .rotate_left(5)
            .wrapping_add(f)
            .wrapping_add(e)
            .wrapping_add(k)
            .wrapping_add(*wi);
        e = d;
        d = c;
        c = b.rotate_left(30);
        b = a;
        a = t;
    }
    for (x, v) in h.iter_mut().zip([a, b, c, d, e]) {
        *x = x.wrapping_add(v);
    }
}

#[cfg(test)]
mod tests {
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
    fn sha1_and_base64_known_answers() {
        let hex = |d: [u8; 20]| d.iter().map(|b| format!("{b:02x}")).collect::<String>();
        assert_eq!(hex(sha1(b"")), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
        assert_eq!(
            hex(sha1(b"abc")),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(
            hex(sha1(
                b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"
            )),
            "84983e441c3bd26ebaae4aa1f95129e5e54670f1"
        );
        let b64 = |d: &[u8]| {
            let mut o = Vec::new();
            base64(&mut o, d);
            String::from_utf8(o).unwrap()
        };
        assert_eq!(b64(b"f"), "Zg==");
        assert_eq!(b64(b"fo"), "Zm8=");
        assert_eq!(b64(b"foo"), "Zm9v");
        assert_eq!(b64(b"foobar"), "Zm9vYmFy");
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
}
