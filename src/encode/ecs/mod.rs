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

mod community_id;
#[cfg(test)]
mod tests;
mod time;

pub use community_id::community_id;
use community_id::write_community_id;
pub use time::{civil_from_days, write_time};

use super::json::{cmdline, ptr, render, render_if, split_sym_path, write_str, FragCache, W};
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

        // As in the JSON encoder: no read of the entity on a cache hit.
        if let Some(c) = &rec.container {
            let frag = containers.get_or_insert(
                (ptr(c), 0),
                || c.clone(),
                || render_if(!c.id.is_empty(), |w| write_container(w, c)),
            );
            w.out.extend_from_slice(frag);
        }
        if let Some(pd) = &rec.pod {
            let frag = pods.get_or_insert(
                (ptr(pd), 0),
                || pd.clone(),
                || render_if(!pd.id.is_empty(), |w| write_pod(w, pd)),
            );
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

/// `format: ecs` in the format registry.
pub static SPEC: crate::exporter::registry::FormatSpec = crate::exporter::registry::FormatSpec {
    names: &["ecs"],
    new: || Box::new(EcsEncoder::new()),
};
