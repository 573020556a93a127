//! sysprint's columns: the keys `-c` takes (`ts_uts`, `proc.exe`, `res`, ...), their table
//! headers, widths and descriptions, and the value each has in a record. The values follow
//! sysprint 0.6.1's flattener (`sysflow/formatter.py`), so a script that reads sysprint's
//! output reads ours; where a value differs on purpose it is listed in
//! `docs/compatibility.md` ("sfprint").
//!
//! Any policy attribute (`sf.proc.name`, `sf.file.directory`, ...) is a column too: its value
//! is what a condition reads ([`crate::policy::attr::value`]).

mod keys;
mod text;

use std::borrow::Cow;

pub use keys::{Key, DEFAULT_STR, FLAT_ORDER, K8S_EVENT_STR, KEYS};
pub use text::{iso_time, op_flags_str, write_iso_time, write_op_flags, Text};

use super::input::FileFacts;
use crate::policy::attr::{self, Field, Value};
use crate::record::{Event, Record};
use crate::sysflow::model::*;
use crate::sysflow::names::*;
use keys::Col::{self, *};

/// A selected column: one of sysprint's keys or a policy attribute.
#[derive(Debug, Clone)]
pub struct Column {
    pub name: String,
    pub header: String,
    pub width: usize,
    source: Source,
}

#[derive(Debug, Clone, Copy)]
enum Source {
    Key(Col),
    Attr(Field),
}

impl Column {
    /// Resolves `name`: a sysprint key, else a policy attribute (`sf.*` or a Falco alias).
    pub fn resolve(name: &str) -> Option<Column> {
        if let Some(k) = KEYS.iter().find(|k| k.name == name) {
            let source = match k.col {
                Attr(f) => Source::Attr(f),
                c => Source::Key(c),
            };
            return Some(Column {
                name: name.to_string(),
                header: k.header.to_string(),
                width: k.width,
                source,
            });
        }
        attr::lookup(name).map(|f| Column {
            name: name.to_string(),
            header: name.to_string(),
            width: 20,
            source: Source::Attr(f),
        })
    }

    /// This column's value in `rec` (`row`: its number in the output and its file's facts).
    pub fn cell<'a>(&self, rec: &'a Record, row: &Row) -> Cell<'a> {
        self.cell_in(&Ctx::new(rec), row)
    }

    /// [`Column::cell`] with the record's context computed once for all its columns.
    pub fn cell_in<'a>(&self, x: &Ctx<'a>, row: &Row) -> Cell<'a> {
        match self.source {
            Source::Key(c) => key_cell(c, x, row),
            Source::Attr(f) => attr_cell(f, x.rec),
        }
    }
}

/// Where a record stands: its number in the output, and what its file's schema holds.
#[derive(Debug, Clone, Copy, Default)]
pub struct Row {
    pub idx: u64,
    pub facts: FileFacts,
}

/// A column value, typed as sysprint's JSON types it (`None` is `null`, `''` is empty text).
#[derive(Debug, Clone, PartialEq)]
pub enum Cell<'a> {
    Null,
    Str(Cow<'a, str>),
    Int(i64),
    Bool(bool),
    /// A list of strings (IP addresses, tags, ancestors).
    List(Vec<Cow<'a, str>>),
    /// Structured values (pod services), already as JSON.
    Json(serde_json::Value),
    /// Text rendered straight into the output (no allocation per record).
    Text(Text<'a>),
}

const EMPTY: Cell<'static> = Cell::Str(Cow::Borrowed(""));

fn st(s: &str) -> Cell<'_> {
    Cell::Str(Cow::Borrowed(s))
}

fn attr_cell(f: Field, rec: &Record) -> Cell<'_> {
    match attr::value(f, rec) {
        Value::Int(i) => Cell::Int(i),
        Value::Bool(b) => Cell::Bool(b),
        Value::Str(s) => Cell::Str(s),
        Value::Multi(v) => Cell::List(v),
    }
}

fn ips(v: &[i64]) -> Cell<'static> {
    Cell::List(v.iter().map(|ip| Cow::Owned(ip_string(*ip))).collect())
}

fn services(pod: &Pod) -> serde_json::Value {
    use serde_json::json;
    pod.services
        .iter()
        .map(|s| {
            json!({
                "name": s.name,
                "id": s.id,
                "namespace": s.namespace,
                "portList": s.port_list.iter().map(|p| json!({
                    "port": p.port, "targetPort": p.target_port,
                    "nodePort": p.node_port, "proto": p.proto,
                })).collect::<Vec<_>>(),
                "clusterIP": s.cluster_ip.iter().map(|ip| ip_string(*ip)).collect::<Vec<_>>(),
            })
        })
        .collect()
}

/// What every column of a record reads, computed once per record.
#[derive(Clone, Copy)]
pub struct Ctx<'a> {
    rec: &'a Record,
    ev: &'a Event,
    kind: Kind,
    proc: Option<&'a Process>,
    pproc: Option<&'a Process>,
    cont: Option<&'a Container>,
    pod: Option<&'a Pod>,
    is_ke: bool,
    is_flow: bool,
    is_evt: bool,
    net: Option<(i32, i32, i32, i32, i32)>,
}

impl<'a> Ctx<'a> {
    pub fn new(rec: &'a Record) -> Ctx<'a> {
        let ev = &rec.event;
        Ctx {
            rec,
            ev,
            kind: rec.kind(),
            proc: rec.process.as_deref(),
            pproc: rec.ancestors.first().map(|p| &**p),
            cont: rec.container.as_deref(),
            pod: rec.pod.as_deref(),
            is_ke: matches!(ev, Event::K8sEvent(_)),
            is_flow: matches!(
                ev,
                Event::NetworkFlow(_) | Event::FileFlow(_) | Event::ProcessFlow(_)
            ),
            is_evt: matches!(
                ev,
                Event::ProcessEvent(_) | Event::FileEvent(_) | Event::NetworkEvent(_)
            ),
            net: match ev {
                Event::NetworkFlow(n) => Some((n.proto, n.sip, n.sport, n.dip, n.dport)),
                Event::NetworkEvent(n) => Some((n.proto, n.sip, n.sport, n.dip, n.dport)),
                _ => None,
            },
        }
    }
}

fn key_cell<'a>(c: Col, x: &Ctx<'a>, row: &Row) -> Cell<'a> {
    let Ctx {
        rec,
        ev,
        kind,
        proc,
        pproc,
        cont,
        pod,
        is_ke,
        is_flow,
        is_evt,
        net,
    } = *x;
    let int_or_null = |cond: bool, v: i64| if cond { Cell::Int(v) } else { Cell::Null };
    let p_int = |f: fn(&Process) -> i64| proc.map_or(Cell::Null, |p| Cell::Int(f(p)));
    let pp_int = |f: fn(&Process) -> i64| pproc.map_or(Cell::Null, |p| Cell::Int(f(p)));
    let counters = |f: fn(i64, i64, i64, i64) -> i64| match ev {
        Event::NetworkFlow(n) => Cell::Int(f(
            n.num_rrecv_bytes,
            n.num_rrecv_ops,
            n.num_wsend_bytes,
            n.num_wsend_ops,
        )),
        Event::FileFlow(n) => Cell::Int(f(
            n.num_rrecv_bytes,
            n.num_rrecv_ops,
            n.num_wsend_bytes,
            n.num_wsend_ops,
        )),
        _ => Cell::Null,
    };
    let pf = |f: fn(&ProcessFlow) -> i64| match ev {
        Event::ProcessFlow(p) => Cell::Int(f(p)),
        _ => Cell::Null,
    };
    match c {
        Idx => Cell::Int(row.idx as i64),
        Version => Cell::Int(i64::from(crate::encode::json::JSON_SCHEMA_VERSION)),
        Type => st(kind.short()),
        State => match (proc, rec.file.as_deref()) {
            (Some(p), _) => st(p.state.symbol()),
            (None, Some(f)) => st(f.state.symbol()),
            _ => EMPTY,
        },
        OpFlags if !is_ke => Cell::Text(Text::OpFlags(ev.op_flags())),
        OpFlagsBitmap if !is_ke => Cell::Int(i64::from(ev.op_flags())),
        OpFlags | OpFlagsBitmap => EMPTY,
        Ret => int_or_null(is_evt, i64::from(ev.ret())),
        Ts => Cell::Text(Text::Time(ev.ts())),
        TsUts => Cell::Int(ev.ts()),
        EndTs if is_flow => Cell::Text(Text::Time(ev.end_ts())),
        EndTs => EMPTY,
        EndTsUts => int_or_null(is_flow, ev.end_ts()),
        ProcPid => p_int(|p| p.oid.hpid),
        ProcTid => int_or_null(
            !matches!(ev, Event::ProcessFlow(_) | Event::K8sEvent(_)),
            ev.tid(),
        ),
        ProcUid => p_int(|p| i64::from(p.uid)),
        ProcGid => p_int(|p| i64::from(p.gid)),
        ProcCreateTs => p_int(|p| p.oid.create_ts),
        ProcUser => st(proc.map_or("", |p| &p.user_name)),
        ProcGroup => st(proc.map_or("", |p| &p.group_name)),
        ProcCwd => st(proc.map_or("", |p| &p.cwd)),
        ProcExe => st(proc.map_or("", |p| &p.exe)),
        ProcArgs => st(proc.map_or("", |p| &p.exe_args)),
        ProcTty => proc.map_or(EMPTY, |p| Cell::Bool(p.tty)),
        ProcEntry if !row.facts.proc_entry => EMPTY,
        ProcEntry => proc.map_or(EMPTY, |p| Cell::Bool(p.entry)),
        ProcEnv => proc.map_or(EMPTY, |p| Cell::Text(Text::Env(&p.env))),
        PProcPid => pp_int(|p| p.oid.hpid),
        PProcGid => pp_int(|p| i64::from(p.gid)),
        PProcUid => pp_int(|p| i64::from(p.uid)),
        // sysprint writes '' (not null) for a missing parent's creation time.
        PProcCreateTs => pproc.map_or(EMPTY, |p| Cell::Int(p.oid.create_ts)),
        PProcGroup => st(pproc.map_or("", |p| &p.group_name)),
        PProcUser => st(pproc.map_or("", |p| &p.user_name)),
        PProcCwd => st(pproc.map_or("", |p| &p.cwd)),
        PProcExe => st(pproc.map_or("", |p| &p.exe)),
        PProcArgs => st(pproc.map_or("", |p| &p.exe_args)),
        PProcTty => pproc.map_or(EMPTY, |p| Cell::Bool(p.tty)),
        PProcEntry if !row.facts.proc_entry => EMPTY,
        PProcEntry => pproc.map_or(EMPTY, |p| Cell::Bool(p.entry)),
        PProcEnv => pproc.map_or(EMPTY, |p| Cell::Text(Text::Env(&p.env))),
        FileFd => match ev {
            Event::NetworkFlow(n) => Cell::Int(i64::from(n.fd)),
            Event::FileFlow(f) => Cell::Int(i64::from(f.fd)),
            _ => EMPTY,
        },
        FilePath => st(rec.file.as_deref().map_or("", |f| &f.path)),
        FileNewPath => st(rec.new_file.as_deref().map_or("", |f| &f.path)),
        FileType => rec
            .file
            .as_deref()
            .map_or(EMPTY, |f| Cell::Text(Text::Char(f.restype))),
        FileOpenFlags => match ev {
            Event::FileFlow(f) => Cell::Int(i64::from(f.open_flags)),
            _ => EMPTY,
        },
        NetProto => net.map_or(EMPTY, |n| Cell::Int(i64::from(n.0))),
        NetSport => net.map_or(Cell::Null, |n| Cell::Int(i64::from(n.2))),
        NetDport => net.map_or(Cell::Null, |n| Cell::Int(i64::from(n.4))),
        NetSip => net.map_or(EMPTY, |n| Cell::Text(Text::Ip(i64::from(n.1)))),
        NetDip => net.map_or(EMPTY, |n| Cell::Text(Text::Ip(i64::from(n.3)))),
        Res => match kind {
            Kind::FileFlow | Kind::FileEvent => Cell::Text(Text::Paths(
                rec.file.as_deref().map_or("", |f| &f.path),
                rec.new_file.as_deref().map(|f| f.path.as_str()),
            )),
            Kind::NetworkFlow | Kind::NetworkEvent => {
                net.map_or(EMPTY, |n| Cell::Text(Text::Endpoints(n.1, n.2, n.3, n.4)))
            }
            _ => EMPTY,
        },
        FlowRBytes => counters(|rb, _, _, _| rb),
        FlowROps => counters(|_, ro, _, _| ro),
        FlowWBytes => counters(|_, _, wb, _| wb),
        FlowWOps => counters(|_, _, _, wo| wo),
        PfThreads => pf(|p| p.num_threads_cloned),
        PfExits => pf(|p| p.num_threads_exited),
        PfErrors => pf(|p| p.num_clone_errors),
        ContId => st(cont.map_or("", |c| &c.id)),
        ContName => st(cont.map_or("", |c| &c.name)),
        ContImageId => st(cont.map_or("", |c| &c.imageid)),
        ContImage => st(cont.map_or("", |c| &c.image)),
        ContType => st(cont.map_or("", |c| {
            CONTAINER_TYPES.get(c.ctype as usize).copied().unwrap_or("")
        })),
        ContPrivileged => cont.map_or(EMPTY, |c| Cell::Bool(c.privileged)),
        PodId => st(pod.map_or("", |p| &p.id)),
        PodName => st(pod.map_or("", |p| &p.name)),
        PodNodeName => st(pod.map_or("", |p| &p.node_name)),
        PodNs => st(pod.map_or("", |p| &p.namespace)),
        PodHostIp => pod.map_or(EMPTY, |p| ips(&p.host_ip)),
        PodInternalIp => pod.map_or(EMPTY, |p| ips(&p.internal_ip)),
        PodRestarts => pod.map_or(Cell::Null, |p| Cell::Int(p.restart_count)),
        PodServices => pod.map_or(EMPTY, |p| Cell::Json(services(p))),
        NodeId => st(&rec.header.exporter),
        NodeIp if !row.facts.header_ip => EMPTY,
        NodeIp => st(&rec.header.ip),
        Filename => st(&rec.header.filename),
        Schema => Cell::Int(rec.header.version),
        Tags => Cell::List(
            rec.policies
                .iter()
                .map(|p| Cow::Borrowed(&*p.id))
                .chain(rec.tags.iter().map(|t| Cow::Borrowed(t.as_str())))
                .collect(),
        ),
        K8sAction | K8sKind | K8sMsg => match ev {
            Event::K8sEvent(ke) => match c {
                K8sAction => st(K8S_ACTIONS.get(ke.action as usize).copied().unwrap_or("")),
                K8sKind => st(K8S_COMPONENTS.get(ke.kind as usize).copied().unwrap_or("")),
                _ => st(&ke.message),
            },
            _ => EMPTY,
        },
        Attr(f) => attr_cell(f, rec),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn op_flags_strings_follow_sysprint() {
        assert_eq!(op_flags_str(OP_EXEC), "EXEC");
        assert_eq!(op_flags_str(OP_CLONE | OP_EXEC), "CLONEEXEC");
        assert_eq!(op_flags_str(OP_RENAME | OP_EXEC), "RENAME");
        assert_eq!(
            op_flags_str(OP_OPEN | OP_READ_RECV | OP_CLOSE),
            "O   R   C  "
        );
        assert_eq!(op_flags_str(0), "           ");
    }

    #[test]
    fn times_round_like_python_floats() {
        // sysprint prints 2018-07-16T21:31:22.020689 for this timestamp (float rounding).
        assert_eq!(iso_time(1531776682020689243), "2018-07-16T21:31:22.020689");
        assert_eq!(iso_time(0), "1970-01-01T00:00:00");
        assert_eq!(iso_time(1_000_000_000), "1970-01-01T00:00:01");
        assert_eq!(iso_time(-1_000), "1969-12-31T23:59:59.999999");
        assert_eq!(iso_time(951_782_400_000_000_000), "2000-02-29T00:00:00");
    }

    #[test]
    fn every_key_resolves_and_attributes_too() {
        for k in KEYS {
            assert!(Column::resolve(k.name).is_some(), "{}", k.name);
        }
        for k in FLAT_ORDER.iter().chain(DEFAULT_STR) {
            assert!(KEYS.iter().any(|x| x.name == *k), "{k}");
        }
        assert!(Column::resolve("sf.proc.aname").is_some());
        assert!(Column::resolve("no.such").is_none());
    }
}
