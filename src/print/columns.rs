//! sysprint's columns: the keys `-c` takes (`ts_uts`, `proc.exe`, `res`, ...), their table
//! headers, widths and descriptions, and the value each has in a record. The values follow
//! sysprint 0.6.1's flattener (`sysflow/formatter.py`), so a script that reads sysprint's
//! output reads ours; where a value differs on purpose it is listed in
//! `docs/compatibility.md` ("sfprint").
//!
//! Any policy attribute (`sf.proc.name`, `sf.file.directory`, ...) is a column too: its value
//! is what a condition reads ([`crate::policy::attr::value`]).

use std::borrow::Cow;

use super::input::FileFacts;
use crate::policy::attr::{self, Field, Value};
use crate::record::{Event, Record};
use crate::sysflow::model::*;
use crate::sysflow::names::*;

/// One of sysprint's keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    pub name: &'static str,
    pub header: &'static str,
    pub width: usize,
    pub ty: &'static str,
    pub desc: &'static str,
    /// sysprint only filters on these (it prints them empty); here they have values.
    pub query_only: bool,
    col: Col,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Col {
    Idx,
    Version,
    Type,
    State,
    OpFlags,
    OpFlagsBitmap,
    Ret,
    Ts,
    TsUts,
    EndTs,
    EndTsUts,
    ProcPid,
    ProcTid,
    ProcUid,
    ProcUser,
    ProcGid,
    ProcGroup,
    ProcCwd,
    ProcExe,
    ProcArgs,
    ProcTty,
    ProcEntry,
    ProcEnv,
    ProcCreateTs,
    PProcPid,
    PProcGid,
    PProcUid,
    PProcGroup,
    PProcTty,
    PProcEntry,
    PProcEnv,
    PProcUser,
    PProcCwd,
    PProcExe,
    PProcArgs,
    PProcCreateTs,
    FileFd,
    FilePath,
    FileNewPath,
    FileType,
    FileOpenFlags,
    NetProto,
    NetSport,
    NetDport,
    NetSip,
    NetDip,
    Res,
    FlowRBytes,
    FlowROps,
    FlowWBytes,
    FlowWOps,
    PfThreads,
    PfExits,
    PfErrors,
    ContId,
    ContName,
    ContImageId,
    ContImage,
    ContType,
    ContPrivileged,
    PodId,
    PodName,
    PodNodeName,
    PodHostIp,
    PodInternalIp,
    PodNs,
    PodRestarts,
    PodServices,
    NodeId,
    NodeIp,
    Filename,
    Schema,
    Tags,
    K8sAction,
    K8sKind,
    K8sMsg,
    /// Query-only keys: read through the policy attribute.
    Attr(Field),
}

macro_rules! keys {
    ($(($name:literal, $header:literal, $width:literal, $ty:literal, $desc:literal, $q:literal, $col:expr)),* $(,)?) => {
        /// Every key, in sysprint's `-l` order.
        pub const KEYS: &[Key] = &[$(Key { name: $name, header: $header, width: $width, ty: $ty, desc: $desc, query_only: $q, col: $col }),*];
    };
}

use Col::*;
keys![
    ("idx", "Rec #", 6, "int", "Record number", false, Idx),
    ("type", "T", 2, "str", "Record type", false, Type),
    ("state", "State", 12, "str", "Entity state", false, State),
    (
        "opflags",
        "Op Flags",
        14,
        "str",
        "Operation flags",
        false,
        OpFlags
    ),
    (
        "opflags_bitmap",
        "Op Flags",
        5,
        "int",
        "Operation flags bitmap",
        false,
        OpFlagsBitmap
    ),
    ("ret", "Ret", 4, "int", "Return code", false, Ret),
    (
        "ts",
        "Start Time",
        26,
        "str",
        "Record start time",
        false,
        Ts
    ),
    (
        "ts_uts",
        "Start Time",
        21,
        "int",
        "Records start timestamp",
        false,
        TsUts
    ),
    (
        "endts",
        "End Time",
        26,
        "str",
        "Record end time",
        false,
        EndTs
    ),
    (
        "endts_uts",
        "End Time",
        21,
        "int",
        "Record end timestamp",
        false,
        EndTsUts
    ),
    ("proc.pid", "PID", 8, "int", "Process PID", false, ProcPid),
    ("proc.tid", "TID", 8, "int", "Thread PID", false, ProcTid),
    (
        "proc.uid",
        "UID",
        5,
        "int",
        "Process user ID",
        false,
        ProcUid
    ),
    (
        "proc.user",
        "User",
        8,
        "str",
        "Process user name",
        false,
        ProcUser
    ),
    (
        "proc.gid",
        "GID",
        5,
        "int",
        "Process group ID",
        false,
        ProcGid
    ),
    (
        "proc.group",
        "Group",
        8,
        "str",
        "Process group name",
        false,
        ProcGroup
    ),
    (
        "proc.apid",
        "A. PIDs",
        20,
        "list",
        "Process ancestors PIDs",
        true,
        Attr(Field::ProcAPid)
    ),
    (
        "proc.aname",
        "A. Proc. Names",
        20,
        "list",
        "Process ancestors names",
        true,
        Attr(Field::ProcAName)
    ),
    (
        "proc.cwd",
        "Cwd",
        20,
        "str",
        "Current working directory",
        false,
        ProcCwd
    ),
    (
        "proc.exe",
        "Cmd",
        20,
        "str",
        "Process command/filename",
        false,
        ProcExe
    ),
    (
        "proc.args",
        "Args",
        20,
        "str",
        "Process command arguments",
        false,
        ProcArgs
    ),
    (
        "proc.name",
        "Proc. Name",
        20,
        "str",
        "Process name",
        true,
        Attr(Field::ProcName)
    ),
    (
        "proc.cmdline",
        "Cmd Line",
        20,
        "str",
        "Process command line",
        true,
        Attr(Field::ProcCmdline)
    ),
    (
        "proc.tty",
        "TTY",
        5,
        "bool",
        "Process TTY status",
        false,
        ProcTty
    ),
    (
        "proc.env",
        "Env",
        30,
        "str",
        "Process environment variables",
        false,
        ProcEnv
    ),
    (
        "proc.entry",
        "Entry",
        5,
        "bool",
        "Process container entrypoint",
        false,
        ProcEntry
    ),
    (
        "proc.createts",
        "Proc. Creation Time",
        21,
        "int",
        "Process creation timestamp",
        false,
        ProcCreateTs
    ),
    (
        "pproc.pid",
        "PPID",
        8,
        "int",
        "Parent process ID",
        false,
        PProcPid
    ),
    (
        "pproc.gid",
        "PGID",
        5,
        "int",
        "Parent process group ID",
        false,
        PProcGid
    ),
    (
        "pproc.uid",
        "PUID",
        5,
        "int",
        "Parent process user ID",
        false,
        PProcUid
    ),
    (
        "pproc.group",
        "PGroup",
        8,
        "str",
        "Parent process group name",
        false,
        PProcGroup
    ),
    (
        "pproc.tty",
        "PTTY",
        5,
        "bool",
        "Parent process TTY status",
        false,
        PProcTty
    ),
    (
        "pproc.env",
        "PEnv",
        30,
        "str",
        "Parent process environment variables",
        false,
        PProcEnv
    ),
    (
        "pproc.entry",
        "PEntry",
        5,
        "bool",
        "Parent process container entry",
        false,
        PProcEntry
    ),
    (
        "pproc.user",
        "PUser",
        8,
        "str",
        "Parent process user name",
        false,
        PProcUser
    ),
    (
        "pproc.cwd",
        "PCwd",
        20,
        "str",
        "Parent current working directory",
        false,
        PProcCwd
    ),
    (
        "pproc.exe",
        "PCmd",
        20,
        "str",
        "Parent process command/filename",
        false,
        PProcExe
    ),
    (
        "pproc.args",
        "PArgs",
        20,
        "str",
        "Parent process command arguments",
        false,
        PProcArgs
    ),
    (
        "pproc.name",
        "PProc. Name",
        20,
        "str",
        "Parent process name",
        true,
        Attr(Field::PProcName)
    ),
    (
        "pproc.cmdline",
        "PProc. Cmd Line",
        20,
        "str",
        "Parent process command line",
        true,
        Attr(Field::PProcCmdline)
    ),
    (
        "pproc.createts",
        "PProc. Creation Time",
        21,
        "int",
        "Parent process creation timestamp",
        false,
        PProcCreateTs
    ),
    (
        "file.fd",
        "FD",
        5,
        "int",
        "File descriptor number",
        false,
        FileFd
    ),
    ("file.path", "Path", 30, "str", "File path", false, FilePath),
    (
        "file.newpath",
        "New Path",
        30,
        "str",
        "New file path",
        false,
        FileNewPath
    ),
    (
        "file.name",
        "File Name",
        30,
        "str",
        "File name",
        true,
        Attr(Field::FileName)
    ),
    (
        "file.directory",
        "Dir",
        30,
        "str",
        "File directory",
        true,
        Attr(Field::FileDirectory)
    ),
    (
        "file.type",
        "File Type",
        8,
        "str",
        "File type",
        false,
        FileType
    ),
    (
        "file.is_open_write",
        "W",
        5,
        "bool",
        "File open with write flag",
        true,
        Attr(Field::FileIsOpenWrite)
    ),
    (
        "file.is_open_read",
        "R",
        5,
        "bool",
        "File open with read flag",
        true,
        Attr(Field::FileIsOpenRead)
    ),
    (
        "file.openflags",
        "Open Flags",
        5,
        "int",
        "File open flags",
        false,
        FileOpenFlags
    ),
    (
        "net.proto",
        "Proto",
        5,
        "int",
        "Network protocol",
        false,
        NetProto
    ),
    (
        "net.sport",
        "SPort",
        5,
        "int",
        "Source port",
        false,
        NetSport
    ),
    (
        "net.dport",
        "DPort",
        5,
        "int",
        "Destination port",
        false,
        NetDport
    ),
    (
        "net.port",
        "Port",
        5,
        "list",
        "Source or destination port",
        true,
        Attr(Field::NetPort)
    ),
    ("net.sip", "SIP", 16, "str", "Source IP", false, NetSip),
    ("net.dip", "DIP", 16, "str", "Destination IP", false, NetDip),
    (
        "net.ip",
        "IP",
        5,
        "list",
        "Source or destination IP",
        true,
        Attr(Field::NetIp)
    ),
    (
        "res",
        "Resource",
        45,
        "str",
        "File or network resource",
        false,
        Res
    ),
    (
        "flow.rbytes",
        "NoBRead",
        8,
        "int",
        "Flow bytes read/received",
        false,
        FlowRBytes
    ),
    (
        "flow.rops",
        "NoOpsRead",
        8,
        "int",
        "Flow operations read/received",
        false,
        FlowROps
    ),
    (
        "flow.wbytes",
        "NoBWrite",
        8,
        "int",
        "Flow bytes written/sent",
        false,
        FlowWBytes
    ),
    (
        "flow.wops",
        "NoOpsWrite",
        8,
        "int",
        "Flow operations written/sent",
        false,
        FlowWOps
    ),
    (
        "container.id",
        "Cont ID",
        12,
        "str",
        "Container ID",
        false,
        ContId
    ),
    (
        "container.name",
        "Cont Name",
        12,
        "str",
        "Container name",
        false,
        ContName
    ),
    (
        "container.imageid",
        "Image ID",
        12,
        "str",
        "Container image ID",
        false,
        ContImageId
    ),
    (
        "container.image",
        "Image Name",
        12,
        "str",
        "Container image name",
        false,
        ContImage
    ),
    (
        "container.type",
        "Cont Type",
        8,
        "str",
        "Container type",
        false,
        ContType
    ),
    (
        "container.privileged",
        "Privileged",
        5,
        "bool",
        "Container privilege status",
        false,
        ContPrivileged
    ),
    (
        "pf.nthreads",
        "NoThreads",
        8,
        "int",
        "Threads created",
        false,
        PfThreads
    ),
    (
        "pf.nexits",
        "NoThrExits",
        8,
        "int",
        "Threads exited",
        false,
        PfExits
    ),
    (
        "pf.nerrors",
        "NoThrErrs",
        8,
        "int",
        "Clone errors",
        false,
        PfErrors
    ),
    (
        "pod.id",
        "Pod Id",
        12,
        "str",
        "Pod Identifier",
        false,
        PodId
    ),
    ("pod.name", "Pod Name", 30, "str", "Pod Name", false, PodName),
    (
        "pod.nname",
        "Pod Node Name",
        12,
        "str",
        "Pod Node Name",
        false,
        PodNodeName
    ),
    (
        "pod.hostip",
        "Pod Host IP",
        16,
        "list",
        "Pod Host IP",
        false,
        PodHostIp
    ),
    (
        "pod.internalip",
        "Pod Intern IP",
        16,
        "list",
        "Pod Internal IP",
        false,
        PodInternalIp
    ),
    (
        "pod.ns",
        "Pod Namespace",
        12,
        "str",
        "Pod Namespace",
        false,
        PodNs
    ),
    (
        "pod.rstrtcnt",
        "Rstrt Cnt",
        9,
        "int",
        "Pod Restart Count",
        false,
        PodRestarts
    ),
    (
        "pod.services",
        "Pod Services",
        100,
        "list",
        "Pod Services",
        false,
        PodServices
    ),
    (
        "k8s.action",
        "K8s EV Action",
        25,
        "str",
        "K8s Event Action",
        false,
        K8sAction
    ),
    (
        "k8s.kind",
        "K8s EV Comp Type",
        26,
        "str",
        "K8s Event Component Type",
        false,
        K8sKind
    ),
    (
        "k8s.msg",
        "K8s EV Msg",
        100,
        "str",
        "K8s Event Message",
        false,
        K8sMsg
    ),
    (
        "node.id",
        "Node ID",
        12,
        "str",
        "Node identifier",
        false,
        NodeId
    ),
    (
        "node.ip",
        "Node IP",
        16,
        "str",
        "Node IP address",
        false,
        NodeIp
    ),
    (
        "tags",
        "Tags",
        10,
        "list",
        "Enrichment tags (and the rules that matched, with -p)",
        false,
        Tags
    ),
    (
        "schema",
        "SF Schema",
        8,
        "int",
        "SysFlow schema version",
        false,
        Schema
    ),
    (
        "version",
        "API version",
        8,
        "str",
        "sysprint's flat layout version",
        false,
        Version
    ),
    (
        "filename",
        "File name",
        15,
        "str",
        "SysFlow trace file name",
        false,
        Filename
    ),
];

/// The keys of sysprint's flat record (`-o flatjson` and `-o csv` without `-c`), in its order.
pub const FLAT_ORDER: &[&str] = &[
    "version",
    "type",
    "state",
    "opflags",
    "opflags_bitmap",
    "ret",
    "ts",
    "ts_uts",
    "endts",
    "endts_uts",
    "proc.pid",
    "proc.tid",
    "proc.uid",
    "proc.user",
    "proc.gid",
    "proc.group",
    "proc.cwd",
    "proc.exe",
    "proc.args",
    "proc.tty",
    "proc.entry",
    "proc.env",
    "proc.createts",
    "pproc.pid",
    "pproc.gid",
    "pproc.uid",
    "pproc.group",
    "pproc.tty",
    "pproc.entry",
    "pproc.env",
    "pproc.user",
    "pproc.cwd",
    "pproc.exe",
    "pproc.args",
    "pproc.createts",
    "file.fd",
    "file.path",
    "file.newpath",
    "file.type",
    "file.openflags",
    "net.proto",
    "net.sport",
    "net.dport",
    "net.sip",
    "net.dip",
    "res",
    "flow.rbytes",
    "flow.rops",
    "flow.wbytes",
    "flow.wops",
    "pf.nthreads",
    "pf.nexits",
    "pf.nerrors",
    "container.id",
    "container.name",
    "container.imageid",
    "container.image",
    "container.type",
    "container.privileged",
    "pod.id",
    "pod.name",
    "pod.nname",
    "pod.hostip",
    "pod.internalip",
    "pod.ns",
    "pod.rstrtcnt",
    "pod.services",
    "node.id",
    "node.ip",
    "filename",
    "schema",
    "tags",
    "k8s.action",
    "k8s.kind",
    "k8s.msg",
];

/// sysprint's default `str` columns.
pub const DEFAULT_STR: &[&str] = &[
    "ts_uts",
    "type",
    "proc.exe",
    "proc.args",
    "pproc.pid",
    "proc.pid",
    "proc.tid",
    "opflags",
    "res",
    "flow.rbytes",
    "flow.wbytes",
    "container.id",
];

/// sysprint's `-K` columns (Kubernetes events).
pub const K8S_EVENT_STR: &[&str] = &["ts_uts", "type", "k8s.action", "k8s.kind", "k8s.msg"];

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
        match self.source {
            Source::Key(c) => key_cell(c, rec, row),
            Source::Attr(f) => attr_cell(f, rec),
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
}

const EMPTY: Cell<'static> = Cell::Str(Cow::Borrowed(""));

fn st(s: &str) -> Cell<'_> {
    Cell::Str(Cow::Borrowed(s))
}

fn owned<'a>(s: String) -> Cell<'a> {
    Cell::Str(Cow::Owned(s))
}

fn attr_cell(f: Field, rec: &Record) -> Cell<'_> {
    match attr::value(f, rec) {
        Value::Int(i) => Cell::Int(i),
        Value::Bool(b) => Cell::Bool(b),
        Value::Str(s) => Cell::Str(s),
        Value::Multi(v) => Cell::List(v),
    }
}

/// sysprint's op flags string: the entity operation names, or a positional mask
/// (`O A C W R N M S C T D`, a blank for an unset flag).
pub fn op_flags_str(flags: i32) -> String {
    const NAMED: [[(i32, &str); 6]; 2] = [
        [
            (OP_MKDIR, "MKDIR"),
            (OP_RMDIR, "RMDIR"),
            (OP_LINK, "LINK"),
            (OP_SYMLINK, "SYMLINK"),
            (OP_UNLINK, "UNLINK"),
            (OP_RENAME, "RENAME"),
        ],
        [
            (OP_CLONE, "CLONE"),
            (OP_EXEC, "EXEC"),
            (OP_EXIT, "EXIT"),
            (OP_SETUID, "SETUID"),
            (0, ""),
            (0, ""),
        ],
    ];
    for group in NAMED {
        let s: String = group
            .iter()
            .filter(|(bit, _)| *bit != 0 && flags & bit != 0)
            .map(|(_, n)| *n)
            .collect();
        if !s.is_empty() {
            return s;
        }
    }
    const MASK: [(i32, char); 11] = [
        (OP_OPEN, 'O'),
        (OP_ACCEPT, 'A'),
        (OP_CONNECT, 'C'),
        (OP_WRITE_SEND, 'W'),
        (OP_READ_RECV, 'R'),
        (OP_SETNS, 'N'),
        (OP_MMAP, 'M'),
        (OP_SHUTDOWN, 'S'),
        (OP_CLOSE, 'C'),
        (OP_TRUNCATE, 'T'),
        (OP_DIGEST, 'D'),
    ];
    MASK.iter()
        .map(|(bit, c)| if flags & bit != 0 { *c } else { ' ' })
        .collect()
}

/// sysprint's time string: Python's `datetime.utcfromtimestamp(ns / 1e9).isoformat()`,
/// including its float rounding (half to even on the microseconds) and its omission of a
/// zero fraction.
pub fn iso_time(ns: i64) -> String {
    let t = ns as f64 / 1e9;
    let mut secs = t.trunc();
    let mut us = ((t - secs) * 1e6).round_ties_even();
    if us >= 1e6 {
        us -= 1e6;
        secs += 1.0;
    } else if us < 0.0 {
        us += 1e6;
        secs -= 1.0;
    }
    let secs = secs as i64;
    let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    let base = format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        sod / 3600,
        sod / 60 % 60,
        sod % 60
    );
    if us == 0.0 {
        base
    } else {
        format!("{base}.{:06}", us as i64)
    }
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
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

fn env_str(env: &[String]) -> String {
    env.iter()
        .filter(|e| !e.is_empty() && e.as_str() != "=")
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(";")
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

fn key_cell<'a>(c: Col, rec: &'a Record, row: &Row) -> Cell<'a> {
    let ev = &rec.event;
    let kind = rec.kind();
    let proc = rec.process.as_deref();
    let pproc = rec.ancestors.first().map(|p| &**p);
    let cont = rec.container.as_deref();
    let pod = rec.pod.as_deref();
    let is_ke = matches!(ev, Event::K8sEvent(_));
    let is_flow = matches!(
        ev,
        Event::NetworkFlow(_) | Event::FileFlow(_) | Event::ProcessFlow(_)
    );
    let is_evt = matches!(
        ev,
        Event::ProcessEvent(_) | Event::FileEvent(_) | Event::NetworkEvent(_)
    );
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
    let net = match ev {
        Event::NetworkFlow(n) => Some((n.proto, n.sip, n.sport, n.dip, n.dport)),
        Event::NetworkEvent(n) => Some((n.proto, n.sip, n.sport, n.dip, n.dport)),
        _ => None,
    };
    let pf = |f: fn(&ProcessFlow) -> i64| match ev {
        Event::ProcessFlow(p) => Cell::Int(f(p)),
        _ => Cell::Null,
    };
    match c {
        Idx => Cell::Int(row.idx as i64),
        Version => st("4"),
        Type => st(kind.short()),
        State => match (proc, rec.file.as_deref()) {
            (Some(p), _) => st(p.state.symbol()),
            (None, Some(f)) => st(f.state.symbol()),
            _ => EMPTY,
        },
        OpFlags if !is_ke => owned(op_flags_str(ev.op_flags())),
        OpFlagsBitmap if !is_ke => Cell::Int(i64::from(ev.op_flags())),
        OpFlags | OpFlagsBitmap => EMPTY,
        Ret => int_or_null(is_evt, i64::from(ev.ret())),
        Ts => owned(iso_time(ev.ts())),
        TsUts => Cell::Int(ev.ts()),
        EndTs if is_flow => owned(iso_time(ev.end_ts())),
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
        ProcEnv => proc.map_or(EMPTY, |p| owned(env_str(&p.env))),
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
        PProcEnv => pproc.map_or(EMPTY, |p| owned(env_str(&p.env))),
        FileFd => match ev {
            Event::NetworkFlow(n) => Cell::Int(i64::from(n.fd)),
            Event::FileFlow(f) => Cell::Int(i64::from(f.fd)),
            _ => EMPTY,
        },
        FilePath => st(rec.file.as_deref().map_or("", |f| &f.path)),
        FileNewPath => st(rec.new_file.as_deref().map_or("", |f| &f.path)),
        FileType => rec.file.as_deref().map_or(EMPTY, |f| {
            owned(
                char::from_u32(f.restype as u32)
                    .map(String::from)
                    .unwrap_or_default(),
            )
        }),
        FileOpenFlags => match ev {
            Event::FileFlow(f) => Cell::Int(i64::from(f.open_flags)),
            _ => EMPTY,
        },
        NetProto => net.map_or(EMPTY, |n| Cell::Int(i64::from(n.0))),
        NetSport => net.map_or(Cell::Null, |n| Cell::Int(i64::from(n.2))),
        NetDport => net.map_or(Cell::Null, |n| Cell::Int(i64::from(n.4))),
        NetSip => net.map_or(EMPTY, |n| owned(ip_string(i64::from(n.1)))),
        NetDip => net.map_or(EMPTY, |n| owned(ip_string(i64::from(n.3)))),
        Res => match kind {
            Kind::FileFlow | Kind::FileEvent => {
                let mut s = rec
                    .file
                    .as_deref()
                    .map_or(String::new(), |f| f.path.clone());
                if let Some(nf) = rec.new_file.as_deref() {
                    s.push_str(", ");
                    s.push_str(&nf.path);
                }
                owned(s)
            }
            Kind::NetworkFlow | Kind::NetworkEvent => net.map_or(EMPTY, |n| {
                owned(format!(
                    "{}:{}-{}:{}",
                    ip_string(i64::from(n.1)),
                    n.2,
                    ip_string(i64::from(n.3)),
                    n.4
                ))
            }),
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
