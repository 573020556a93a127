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

/// Text columns computed from numbers or joined strings, written where they are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Text<'a> {
    /// [`iso_time`].
    Time(i64),
    /// [`op_flags_str`].
    OpFlags(i32),
    /// A dotted IPv4 address (host byte order integer).
    Ip(i64),
    /// `sip:sport-dip:dport`.
    Endpoints(i32, i32, i32, i32),
    /// A path, and `, newpath` when there is one.
    Paths(&'a str, Option<&'a str>),
    /// Environment variables joined with `;` (empty ones and `=` left out).
    Env(&'a [String]),
    /// The resource type character.
    Char(i32),
}

impl Text<'_> {
    /// Whether the text is plain ASCII with no character that JSON escapes or CSV quotes.
    pub fn plain(&self) -> bool {
        matches!(
            self,
            Text::Time(_) | Text::OpFlags(_) | Text::Ip(_) | Text::Endpoints(..)
        )
    }

    /// Appends the text to `out`.
    pub fn write(&self, out: &mut Vec<u8>) {
        match *self {
            Text::Time(ns) => write_iso_time(ns, out),
            Text::OpFlags(f) => write_op_flags(f, out),
            Text::Ip(ip) => write_ip(ip, out),
            Text::Endpoints(sip, sport, dip, dport) => {
                let mut b = itoa::Buffer::new();
                write_ip(i64::from(sip), out);
                out.push(b':');
                out.extend_from_slice(b.format(sport).as_bytes());
                out.push(b'-');
                write_ip(i64::from(dip), out);
                out.push(b':');
                out.extend_from_slice(b.format(dport).as_bytes());
            }
            Text::Paths(p, np) => {
                out.extend_from_slice(p.as_bytes());
                if let Some(np) = np {
                    out.extend_from_slice(b", ");
                    out.extend_from_slice(np.as_bytes());
                }
            }
            Text::Env(env) => {
                let mut first = true;
                for e in env.iter().filter(|e| !e.is_empty() && e.as_str() != "=") {
                    if !first {
                        out.push(b';');
                    }
                    first = false;
                    out.extend_from_slice(e.as_bytes());
                }
            }
            Text::Char(c) => {
                if let Some(c) = char::from_u32(c as u32) {
                    let mut b = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
                }
            }
        }
    }
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

/// sysprint's op flags string: the entity operation names, or a positional mask
/// (`O A C W R N M S C T D`, a blank for an unset flag).
pub fn op_flags_str(flags: i32) -> String {
    let mut v = Vec::with_capacity(16);
    write_op_flags(flags, &mut v);
    String::from_utf8_lossy(&v).into_owned()
}

/// Appends [`op_flags_str`] to `out`.
pub fn write_op_flags(flags: i32, out: &mut Vec<u8>) {
    const NAMED: [&[(i32, &str)]; 2] = [
        &[
            (OP_MKDIR, "MKDIR"),
            (OP_RMDIR, "RMDIR"),
            (OP_LINK, "LINK"),
            (OP_SYMLINK, "SYMLINK"),
            (OP_UNLINK, "UNLINK"),
            (OP_RENAME, "RENAME"),
        ],
        &[
            (OP_CLONE, "CLONE"),
            (OP_EXEC, "EXEC"),
            (OP_EXIT, "EXIT"),
            (OP_SETUID, "SETUID"),
        ],
    ];
    for group in NAMED {
        let start = out.len();
        for (bit, name) in group {
            if flags & bit != 0 {
                out.extend_from_slice(name.as_bytes());
            }
        }
        if out.len() > start {
            return;
        }
    }
    const MASK: [(i32, u8); 11] = [
        (OP_OPEN, b'O'),
        (OP_ACCEPT, b'A'),
        (OP_CONNECT, b'C'),
        (OP_WRITE_SEND, b'W'),
        (OP_READ_RECV, b'R'),
        (OP_SETNS, b'N'),
        (OP_MMAP, b'M'),
        (OP_SHUTDOWN, b'S'),
        (OP_CLOSE, b'C'),
        (OP_TRUNCATE, b'T'),
        (OP_DIGEST, b'D'),
    ];
    out.extend(
        MASK.iter()
            .map(|(bit, c)| if flags & bit != 0 { *c } else { b' ' }),
    );
}

/// sysprint's time string: Python's `datetime.utcfromtimestamp(ns / 1e9).isoformat()`,
/// including its float rounding (half to even on the microseconds) and its omission of a
/// zero fraction.
pub fn iso_time(ns: i64) -> String {
    let mut v = Vec::with_capacity(26);
    write_iso_time(ns, &mut v);
    String::from_utf8_lossy(&v).into_owned()
}

thread_local! {
    /// The last second rendered and its `YYYY-MM-DDTHH:MM:SS` text: records come in time
    /// order, so most share it with the one before.
    static LAST_SECOND: std::cell::Cell<(i64, [u8; 19])> = const { std::cell::Cell::new((i64::MIN, [0; 19])) };
}

/// Appends [`iso_time`] to `out`.
pub fn write_iso_time(ns: i64, out: &mut Vec<u8>) {
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
    let pad = |out: &mut Vec<u8>, v: i64, width: usize| {
        let mut b = itoa::Buffer::new();
        let s = b.format(v);
        out.extend(std::iter::repeat_n(b'0', width.saturating_sub(s.len())));
        out.extend_from_slice(s.as_bytes());
    };
    let (last, text) = LAST_SECOND.get();
    if last == secs {
        out.extend_from_slice(&text);
    } else {
        let start = out.len();
        let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
        let (y, m, d) = civil_from_days(days);
        pad(out, y, 4);
        out.push(b'-');
        pad(out, i64::from(m), 2);
        out.push(b'-');
        pad(out, i64::from(d), 2);
        out.push(b'T');
        pad(out, sod / 3600, 2);
        out.push(b':');
        pad(out, sod / 60 % 60, 2);
        out.push(b':');
        pad(out, sod % 60, 2);
        // Years past 9999 (or before 0) are longer: not cached.
        if let Ok(t) = <[u8; 19]>::try_from(&out[start..]) {
            LAST_SECOND.set((secs, t));
        }
    }
    if us != 0.0 {
        out.push(b'.');
        pad(out, us as i64, 6);
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
        Version => st("4"),
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
