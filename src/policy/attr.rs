//! Attributes: every `sf.*` name and Falco alias, resolved at compile time to a [`Field`], and
//! the accessor that reads a field from a record. Semantics follow upstream's field mapper;
//! decisions are written in `docs/policy-language.md`.

use std::borrow::Cow;
use std::sync::Arc;

use crate::encode::json::{cmdline, oid_hash, split_sym_path};
use crate::record::{Event, Record};
use crate::sysflow::model::*;
use crate::sysflow::names::*;

/// A record field a condition can read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    Type,
    OpFlags,
    /// Falco `evt.type`: op flag names plus Falco's lowercase syscall names.
    EvtType,
    Ret,
    Ts,
    EndTs,
    ProcOid,
    ProcPid,
    ProcName,
    ProcExe,
    ProcArgs,
    ProcUid,
    ProcUser,
    ProcTid,
    ProcGid,
    ProcGroup,
    ProcCreateTs,
    ProcTty,
    ProcEntry,
    ProcCmdline,
    ProcAName,
    ProcAExe,
    ProcACmdline,
    ProcAPid,
    PProcOid,
    PProcPid,
    PProcName,
    PProcExe,
    PProcArgs,
    PProcUid,
    PProcUser,
    PProcGid,
    PProcGroup,
    PProcCreateTs,
    PProcTty,
    PProcEntry,
    PProcCmdline,
    FileName,
    FilePath,
    FileSymlink,
    FileOid,
    FileDirectory,
    FileNewName,
    FileNewPath,
    FileNewSymlink,
    FileNewOid,
    FileNewDirectory,
    FileType,
    FileIsOpenWrite,
    FileIsOpenRead,
    FileFd,
    FileOpenFlags,
    NetProto,
    NetSport,
    NetDport,
    NetPort,
    NetSip,
    NetDip,
    NetIp,
    FlowRBytes,
    FlowROps,
    FlowWBytes,
    FlowWOps,
    ContainerId,
    ContainerName,
    ContainerImageId,
    ContainerImage,
    ContainerType,
    ContainerPrivileged,
    PodTs,
    PodId,
    PodName,
    PodNodeName,
    PodNamespace,
    PodRestartCount,
    PodHostIp,
    PodInternalIp,
    PodServices,
    KeAction,
    KeKind,
    KeMessage,
    NodeId,
    NodeIp,
    MetaSchema,
    MetaTraceName,
    /// Upstream's quirks, read by conditions in `quirks: upstream` mode (the default): the
    /// op flag names of upstream's name cache (see [`Record::op_names_net`]), ...
    QOpFlags,
    /// ... flow counters read through a shared slot (doubled; on file events the new file's
    /// timestamp and resource type) ...
    QFlowRBytes,
    QFlowROps,
    QFlowWBytes,
    QFlowWOps,
    /// ... and slot aliases: the file descriptor is the new file's state on file events, open
    /// flags read the source address on network flows, the source address reads the open
    /// flags on file flows.
    QFileFd,
    QFileOpenFlags,
    QFileIsOpenRead,
    QFileIsOpenWrite,
    QNetSip,
    QNetIp,
    /// A name upstream maps whose value its conditions cannot read (always "").
    Unreadable,
    /// Falco `evt.dir`: always both directions ("<,>").
    EvtDir,
}

use Field::*;

/// Every attribute name, `sf.*` first then the Falco aliases.
pub const ATTRIBUTES: &[(&str, Field)] = &[
    ("sf.type", Type),
    ("sf.opflags", OpFlags),
    ("sf.ret", Ret),
    ("sf.ts", Ts),
    ("sf.endts", EndTs),
    ("sf.proc.oid", ProcOid),
    ("sf.proc.pid", ProcPid),
    ("sf.proc.name", ProcName),
    ("sf.proc.exe", ProcExe),
    ("sf.proc.args", ProcArgs),
    ("sf.proc.uid", ProcUid),
    ("sf.proc.user", ProcUser),
    ("sf.proc.tid", ProcTid),
    ("sf.proc.gid", ProcGid),
    ("sf.proc.group", ProcGroup),
    ("sf.proc.createts", ProcCreateTs),
    ("sf.proc.tty", ProcTty),
    ("sf.proc.entry", ProcEntry),
    ("sf.proc.cmdline", ProcCmdline),
    ("sf.proc.aname", ProcAName),
    ("sf.proc.aexe", ProcAExe),
    ("sf.proc.acmdline", ProcACmdline),
    ("sf.proc.apid", ProcAPid),
    ("sf.pproc.oid", PProcOid),
    ("sf.pproc.pid", PProcPid),
    ("sf.pproc.name", PProcName),
    ("sf.pproc.exe", PProcExe),
    ("sf.pproc.args", PProcArgs),
    ("sf.pproc.uid", PProcUid),
    ("sf.pproc.user", PProcUser),
    ("sf.pproc.gid", PProcGid),
    ("sf.pproc.group", PProcGroup),
    ("sf.pproc.createts", PProcCreateTs),
    ("sf.pproc.tty", PProcTty),
    ("sf.pproc.entry", PProcEntry),
    ("sf.pproc.cmdline", PProcCmdline),
    ("sf.file.name", FileName),
    ("sf.file.path", FilePath),
    ("sf.file.symlink", FileSymlink),
    ("sf.file.oid", FileOid),
    ("sf.file.directory", FileDirectory),
    ("sf.file.newname", FileNewName),
    ("sf.file.newpath", FileNewPath),
    ("sf.file.newsymlink", FileNewSymlink),
    ("sf.file.newoid", FileNewOid),
    ("sf.file.newdirectory", FileNewDirectory),
    ("sf.file.type", FileType),
    ("sf.file.is_open_write", FileIsOpenWrite),
    ("sf.file.is_open_read", FileIsOpenRead),
    ("sf.file.fd", FileFd),
    ("sf.file.openflags", FileOpenFlags),
    ("sf.net.proto", NetProto),
    ("sf.net.sport", NetSport),
    ("sf.net.dport", NetDport),
    ("sf.net.port", NetPort),
    ("sf.net.sip", NetSip),
    ("sf.net.dip", NetDip),
    ("sf.net.ip", NetIp),
    ("sf.flow.rbytes", FlowRBytes),
    ("sf.flow.rops", FlowROps),
    ("sf.flow.wbytes", FlowWBytes),
    ("sf.flow.wops", FlowWOps),
    ("sf.container.id", ContainerId),
    ("sf.container.name", ContainerName),
    ("sf.container.imageid", ContainerImageId),
    ("sf.container.image", ContainerImage),
    ("sf.container.type", ContainerType),
    ("sf.container.privileged", ContainerPrivileged),
    ("sf.pod.ts", PodTs),
    ("sf.pod.id", PodId),
    ("sf.pod.name", PodName),
    ("sf.pod.nodename", PodNodeName),
    ("sf.pod.namespace", PodNamespace),
    ("sf.pod.restartcnt", PodRestartCount),
    ("sf.pod.hostip", PodHostIp),
    ("sf.pod.internalip", PodInternalIp),
    ("sf.pod.services", PodServices),
    // Upstream maps these raw-array forms too; its string reader gives "" for them.
    ("sf.pod.hostip+", Unreadable),
    ("sf.pod.internalip+", Unreadable),
    ("sf.pod.services+", Unreadable),
    ("sf.ke.action", KeAction),
    ("sf.ke.kind", KeKind),
    ("sf.ke.message", KeMessage),
    ("sf.node.id", NodeId),
    ("sf.node.ip", NodeIp),
    ("sf.meta.schema", MetaSchema),
    ("sf.meta.tracename", MetaTraceName),
    // Falco aliases (upstream's non-exported mappers).
    ("evt.type", EvtType),
    ("evt.rawres", Type),
    ("evt.res", Ret),
    ("evt.rawtime", Ts),
    ("evt.time", Ts),
    ("evt.dir", EvtDir),
    ("evt.is_open_read", FileIsOpenRead),
    ("evt.is_open_write", FileIsOpenWrite),
    ("evt.uid", ProcUid),
    ("evt.arg.uid", ProcUid),
    ("fd.typechar", FileType),
    ("fd.directory", FileDirectory),
    ("fd.name", FileName),
    ("fd.filename", FileName),
    ("fd.proto", NetProto),
    ("fd.lproto", NetProto),
    ("fd.l4proto", NetProto),
    ("fd.rproto", NetProto),
    ("fd.sproto", NetProto),
    ("fd.cproto", NetProto),
    ("fd.sport", NetSport),
    ("fd.dport", NetDport),
    ("fd.sip", NetSip),
    ("fd.dip", NetDip),
    ("fd.ip", NetIp),
    ("fd.port", NetPort),
    ("fd.num", FileFd),
    ("user.name", ProcUser),
    ("proc.pid", ProcPid),
    ("proc.tid", ProcTid),
    ("proc.gid", ProcGid),
    ("proc.uid", ProcUid),
    ("proc.group", ProcGroup),
    // Upstream reads the parent here; kept (see docs/policy-language.md).
    ("proc.tty", PProcTty),
    ("proc.user", ProcUser),
    ("proc.exe", ProcExe),
    ("proc.name", ProcName),
    ("proc.args", ProcArgs),
    // Upstream reads the parent's create time here; kept.
    ("proc.createtime", PProcCreateTs),
    ("proc.cmdline", ProcCmdline),
    ("proc.aname", ProcAName),
    ("proc.apid", ProcAPid),
    ("proc.ppid", PProcPid),
    ("proc.pgid", PProcGid),
    ("proc.puid", PProcUid),
    ("proc.pgroup", PProcGroup),
    ("proc.ptty", PProcTty),
    ("proc.puser", PProcUser),
    ("proc.pexe", PProcExe),
    ("proc.pargs", PProcArgs),
    ("proc.pcreatetime", PProcCreateTs),
    ("proc.pname", PProcName),
    ("proc.pcmdline", PProcCmdline),
    ("container.id", ContainerId),
    ("container.image.id", ContainerImageId),
    ("container.image", ContainerImage),
    ("container.name", ContainerName),
    ("container.type", ContainerType),
    ("container.privileged", ContainerPrivileged),
];

/// Looks an attribute up (exact, case-sensitive as upstream). `proc.aname[N]`-style indexed
/// names are not supported.
pub fn lookup(name: &str) -> Option<Field> {
    ATTRIBUTES.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
}

/// Whether `name` looks like an attribute (so an unknown one is an error, not a literal).
pub fn looks_like_attribute(name: &str) -> bool {
    const PREFIXES: [&str; 7] = ["sf.", "evt.", "fd.", "proc.", "user.", "container.", "ext."];
    PREFIXES.iter().any(|p| name.starts_with(p))
}

/// How a field is compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind2 {
    Int,
    Str,
    /// Several values; a comparison holds if it holds for any of them ("either").
    Multi,
}

impl Field {
    /// The field upstream's engine actually reads for `self` (its quirks, see [`Field::QOpFlags`]).
    pub fn upstream_quirk(self) -> Field {
        match self {
            OpFlags => QOpFlags,
            // Upstream's `evt.type` is its op-flag names (mapOpFlags): no Falco names.
            EvtType => QOpFlags,
            FlowRBytes => QFlowRBytes,
            FlowROps => QFlowROps,
            FlowWBytes => QFlowWBytes,
            FlowWOps => QFlowWOps,
            FileFd => QFileFd,
            FileOpenFlags => QFileOpenFlags,
            FileIsOpenRead => QFileIsOpenRead,
            FileIsOpenWrite => QFileIsOpenWrite,
            NetSip => QNetSip,
            NetIp => QNetIp,
            other => other,
        }
    }

    pub fn kind(self) -> Kind2 {
        match self {
            QFlowRBytes | QFlowROps | QFlowWBytes | QFlowWOps | QFileFd => Kind2::Int,
            QOpFlags | QFileOpenFlags | QNetIp => Kind2::Multi,
            Ret | Ts | EndTs | ProcPid | ProcUid | ProcTid | ProcGid | ProcCreateTs | PProcPid
            | PProcCreateTs | FileFd | NetProto | NetSport | NetDport | FlowRBytes | FlowROps
            | FlowWBytes | FlowWOps | ContainerPrivileged | PodTs | PodRestartCount
            | MetaSchema => Kind2::Int,
            PProcUid | PProcGid => Kind2::Str,
            OpFlags | EvtType | ProcAName | ProcAExe | ProcACmdline | ProcAPid | FileOpenFlags
            | NetPort | NetIp | PodHostIp | PodInternalIp | EvtDir => Kind2::Multi,
            _ => Kind2::Str,
        }
    }
}

/// A field's value in one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value<'a> {
    Int(i64),
    /// Compares as the string `true`/`false`, as the number 1/0; exists when true.
    Bool(bool),
    Str(Cow<'a, str>),
    Multi(Vec<Cow<'a, str>>),
}

impl Value<'_> {
    /// Upstream's `exists`: a non-zero, non-empty, non-false value.
    pub fn is_set(&self) -> bool {
        match self {
            Value::Int(i) => *i != 0,
            Value::Bool(b) => *b,
            Value::Str(s) => !s.is_empty(),
            Value::Multi(v) => v.iter().any(|s| !s.is_empty()),
        }
    }

    /// Upstream's numeric view (`MapInt`): integers as they are, booleans 1/0, everything
    /// else 0 (strings are not parsed).
    pub fn as_int(&self) -> i64 {
        match self {
            Value::Int(i) => *i,
            Value::Bool(b) => i64::from(*b),
            _ => 0,
        }
    }

    /// Calls `f` on every comma-separated part of the string form until it returns true
    /// (upstream splits every compared string on `,`).
    pub fn any_part(&self, mut f: impl FnMut(&str) -> bool) -> bool {
        match self {
            Value::Int(i) => f(itoa::Buffer::new().format(*i)),
            Value::Bool(b) => f(if *b { "true" } else { "false" }),
            Value::Str(s) => s.split(',').any(f),
            Value::Multi(v) => v.iter().any(|s| s.split(',').any(&mut f)),
        }
    }

    /// The string form (multi values joined with `,`), for JSON path queries.
    pub fn joined(&self) -> Cow<'_, str> {
        match self {
            Value::Int(i) => Cow::Owned(i.to_string()),
            Value::Bool(b) => Cow::Borrowed(if *b { "true" } else { "false" }),
            Value::Str(s) => Cow::Borrowed(s.as_ref()),
            Value::Multi(v) => Cow::Owned(v.join(",")),
        }
    }
}

fn bool_str(b: bool) -> Value<'static> {
    Value::Bool(b)
}

fn s(v: &str) -> Value<'_> {
    Value::Str(Cow::Borrowed(v))
}

fn path_base(p: &str) -> &str {
    if p.is_empty() {
        ""
    } else {
        base_name(p)
    }
}

const EVT_TYPES: [(i32, &str, &str); 20] = [
    (OP_MKDIR, "mkdir", "mkdir"),
    (OP_RMDIR, "rmdir", "rmdir"),
    (OP_LINK, "link", "link"),
    (OP_SYMLINK, "symlink", "symlink"),
    (OP_UNLINK, "unlink", "unlink"),
    (OP_RENAME, "rename", "rename"),
    (OP_CLONE, "clone", "clone"),
    (OP_EXEC, "execve", "execve"),
    (OP_EXIT, "exit", "exit"),
    (OP_SETUID, "setuid", "setuid"),
    (OP_OPEN, "open", "open"),
    (OP_ACCEPT, "accept", "accept"),
    (OP_CONNECT, "connect", "connect"),
    (OP_CLOSE, "close", "close"),
    (OP_WRITE_SEND, "write", "send"),
    (OP_READ_RECV, "read", "recv"),
    (OP_SETNS, "setns", "setns"),
    (OP_MMAP, "mmap", "mmap"),
    (OP_SHUTDOWN, "shutdown", "shutdown"),
    (OP_TRUNCATE, "truncate", "truncate"),
];

/// Whether `s` is one of Falco's lowercase event names this build gives `evt.type` (with
/// `quirks: fixed`; upstream's `evt.type` never holds them).
pub fn is_falco_evt_name(s: &str) -> bool {
    EVT_TYPES.iter().any(|(_, f, n)| *f == s || *n == s)
}

/// Reads `field` from `rec`.
pub fn value(field: Field, rec: &Record) -> Value<'_> {
    let ev = &rec.event;
    let p = rec.process.as_deref();
    let parent = parent_of(rec);
    let poid = p.and_then(|p| p.poid).unwrap_or_default();
    let file = rec.file.as_deref();
    let nfile = rec.new_file.as_deref();
    let net = || match ev {
        Event::NetworkFlow(n) => Some((n.sip, n.sport, n.dip, n.dport, n.proto)),
        Event::NetworkEvent(n) => Some((n.sip, n.sport, n.dip, n.dport, n.proto)),
        _ => None,
    };
    let fd_flags = || match ev {
        Event::FileFlow(f) => (f.fd, f.open_flags),
        Event::NetworkFlow(n) => (n.fd, 0),
        _ => (0, 0),
    };
    let lineage = || lineage_of(rec);
    let counters = || match ev {
        Event::FileFlow(f) => (
            f.num_rrecv_bytes,
            f.num_rrecv_ops,
            f.num_wsend_bytes,
            f.num_wsend_ops,
        ),
        Event::NetworkFlow(n) => (
            n.num_rrecv_bytes,
            n.num_rrecv_ops,
            n.num_wsend_bytes,
            n.num_wsend_ops,
        ),
        _ => (0, 0, 0, 0),
    };
    let c = rec.container.as_deref();
    let pod = rec.pod.as_deref();
    match field {
        Type => s(rec.kind().short()),
        OpFlags => Value::Multi(
            op_flag_names(ev.op_flags(), rec.kind())
                .map(Cow::Borrowed)
                .collect(),
        ),
        EvtType => {
            let mut v: Vec<Cow<str>> = op_flag_names(ev.op_flags(), rec.kind())
                .map(Cow::Borrowed)
                .collect();
            falco_evt_types(rec, &mut v);
            Value::Multi(v)
        }
        QOpFlags => {
            // Upstream's name cache: the record's naming class, not its type.
            let as_kind = if rec.op_names_net {
                Kind::NetworkFlow
            } else {
                Kind::FileFlow
            };
            let flags = ev.op_flags();
            Value::Multi(if rec.kind() == Kind::K8sEvent {
                Vec::new()
            } else {
                op_flag_names(flags, as_kind).map(Cow::Borrowed).collect()
            })
        }
        QFlowRBytes | QFlowROps | QFlowWBytes | QFlowWOps => {
            let (rb, ro, wb, wo) = counters();
            let fe = |f: fn(&crate::sysflow::model::File) -> i64| match ev {
                Event::FileEvent(_) => nfile.map(f).unwrap_or(0),
                _ => 0,
            };
            Value::Int(match field {
                QFlowRBytes => 2 * rb,
                QFlowWBytes => 2 * wb,
                QFlowROps => 2 * ro + 2 * fe(|f| f.ts),
                _ => 2 * wo + 2 * fe(|f| i64::from(f.restype)),
            })
        }
        QFileFd => Value::Int(match ev {
            Event::FileEvent(_) => nfile.map(|f| f.state as i64).unwrap_or(0),
            _ => i64::from(fd_flags().0),
        }),
        QFileOpenFlags | QFileIsOpenRead | QFileIsOpenWrite => {
            let flags = match ev {
                Event::NetworkFlow(n) => n.sip,
                _ => fd_flags().1,
            };
            match field {
                QFileIsOpenRead => bool_str(is_open_read(flags)),
                QFileIsOpenWrite => bool_str(is_open_write(flags)),
                _ => Value::Multi(open_flag_names(flags).map(Cow::Borrowed).collect()),
            }
        }
        QNetSip | QNetIp => {
            let (sip, dip) = match ev {
                Event::FileFlow(f) => (f.open_flags, 0),
                _ => net().map(|n| (n.0, n.2)).unwrap_or((0, 0)),
            };
            if field == QNetSip {
                Value::Str(Cow::Owned(ip_string(i64::from(sip))))
            } else {
                Value::Multi(vec![
                    Cow::Owned(ip_string(i64::from(sip))),
                    Cow::Owned(ip_string(i64::from(dip))),
                ])
            }
        }
        EvtDir => Value::Multi(vec![Cow::Borrowed(">"), Cow::Borrowed("<")]),
        Ret => Value::Int(i64::from(ev.ret())),
        Ts => Value::Int(ev.ts()),
        EndTs => Value::Int(ev.end_ts()),
        ProcOid => Value::Str(Cow::Owned(
            p.map(|p| oid_hash(p.oid.hpid, p.oid.create_ts))
                .unwrap_or_default(),
        )),
        ProcPid => Value::Int(p.map(|p| p.oid.hpid).unwrap_or(0)),
        ProcName => s(p.map(|p| path_base(&p.exe)).unwrap_or("")),
        ProcExe => s(p.map(|p| p.exe.as_str()).unwrap_or("")),
        ProcArgs => s(p.map(|p| p.exe_args.as_str()).unwrap_or("")),
        ProcUid => Value::Int(p.map(|p| i64::from(p.uid)).unwrap_or(0)),
        ProcUser => s(p.map(|p| p.user_name.as_str()).unwrap_or("")),
        ProcTid => Value::Int(ev.tid()),
        ProcGid => Value::Int(p.map(|p| i64::from(p.gid)).unwrap_or(0)),
        ProcGroup => s(p.map(|p| p.group_name.as_str()).unwrap_or("")),
        ProcCreateTs => Value::Int(p.map(|p| p.oid.create_ts).unwrap_or(0)),
        ProcTty => bool_str(p.is_some_and(|p| p.tty)),
        ProcEntry => bool_str(p.is_some_and(|p| p.entry)),
        ProcCmdline => Value::Str(Cow::Borrowed(p.map(cmdline).unwrap_or(""))),
        ProcAName => Value::Multi(
            lineage()
                .map(|a| Cow::Borrowed(path_base(&a.exe)))
                .collect(),
        ),
        ProcAExe => Value::Multi(lineage().map(|a| Cow::Borrowed(a.exe.as_str())).collect()),
        ProcACmdline => Value::Multi(lineage().map(|a| Cow::Borrowed(cmdline(a))).collect()),
        ProcAPid => Value::Multi(
            lineage()
                .map(|a| Cow::Owned(a.oid.hpid.to_string()))
                .collect(),
        ),
        PProcOid => Value::Str(Cow::Owned(if poid.hpid != 0 {
            oid_hash(poid.hpid, poid.create_ts)
        } else {
            String::new()
        })),
        PProcPid => Value::Int(poid.hpid),
        PProcName => s(parent.map(|p| path_base(&p.exe)).unwrap_or("")),
        PProcExe => s(parent.map(|p| p.exe.as_str()).unwrap_or("")),
        PProcArgs => s(parent.map(|p| p.exe_args.as_str()).unwrap_or("")),
        // Upstream's numeric view of the parent's uid/gid is 0 (they are int32 there); their
        // string form is the number. Kept so existing numeric conditions match as before.
        PProcUid => Value::Str(Cow::Owned(parent.map(|p| p.uid).unwrap_or(0).to_string())),
        PProcUser => s(parent.map(|p| p.user_name.as_str()).unwrap_or("")),
        PProcGid => Value::Str(Cow::Owned(parent.map(|p| p.gid).unwrap_or(0).to_string())),
        PProcGroup => s(parent.map(|p| p.group_name.as_str()).unwrap_or("")),
        PProcCreateTs => Value::Int(poid.create_ts),
        PProcTty => bool_str(parent.is_some_and(|p| p.tty)),
        PProcEntry => bool_str(parent.is_some_and(|p| p.entry)),
        PProcCmdline => Value::Str(Cow::Borrowed(parent.map(cmdline).unwrap_or(""))),
        FileName => s(file.map(file_name).unwrap_or("")),
        FilePath => s(file.map(file_path_of).unwrap_or("")),
        FileSymlink => s(split_sym_path(file.map(|f| f.path.trim()).unwrap_or("")).1),
        FileOid => Value::Str(Cow::Owned(file.map(|f| hex(&f.oid)).unwrap_or_default())),
        FileDirectory => s(file.map(file_dir).unwrap_or("")),
        FileNewName => s(nfile.map(file_name).unwrap_or("")),
        FileNewPath => s(nfile.map(file_path_of).unwrap_or("")),
        FileNewSymlink => s(split_sym_path(nfile.map(|f| f.path.trim()).unwrap_or("")).1),
        FileNewOid => Value::Str(Cow::Owned(nfile.map(|f| hex(&f.oid)).unwrap_or_default())),
        FileNewDirectory => s(nfile.map(file_dir).unwrap_or("")),
        FileType => Value::Str(Cow::Owned(
            file.filter(|f| f.restype != 0)
                .and_then(|f| char::from_u32(f.restype as u32))
                .map(|c| c.to_string())
                .unwrap_or_default(),
        )),
        FileIsOpenWrite => bool_str(is_open_write(fd_flags().1)),
        FileIsOpenRead => bool_str(is_open_read(fd_flags().1)),
        FileFd => Value::Int(i64::from(fd_flags().0)),
        FileOpenFlags => Value::Multi(open_flag_names(fd_flags().1).map(Cow::Borrowed).collect()),
        NetProto => Value::Int(net().map(|n| i64::from(n.4)).unwrap_or(0)),
        NetSport => Value::Int(net().map(|n| i64::from(n.1)).unwrap_or(0)),
        NetDport => Value::Int(net().map(|n| i64::from(n.3)).unwrap_or(0)),
        NetPort => {
            let (a, b) = net().map(|n| (n.1, n.3)).unwrap_or((0, 0));
            Value::Multi(vec![Cow::Owned(a.to_string()), Cow::Owned(b.to_string())])
        }
        NetSip => Value::Str(Cow::Owned(ip_string(i64::from(
            net().map(|n| n.0).unwrap_or(0),
        )))),
        NetDip => Value::Str(Cow::Owned(ip_string(i64::from(
            net().map(|n| n.2).unwrap_or(0),
        )))),
        NetIp => {
            let (a, b) = net().map(|n| (n.0, n.2)).unwrap_or((0, 0));
            Value::Multi(vec![
                Cow::Owned(ip_string(i64::from(a))),
                Cow::Owned(ip_string(i64::from(b))),
            ])
        }
        FlowRBytes => Value::Int(counters().0),
        FlowROps => Value::Int(counters().1),
        FlowWBytes => Value::Int(counters().2),
        FlowWOps => Value::Int(counters().3),
        ContainerId => s(c.map(|c| c.id.as_str()).unwrap_or("")),
        ContainerName => s(c.map(|c| c.name.trim()).unwrap_or("")),
        ContainerImageId => s(c.map(|c| c.imageid.as_str()).unwrap_or("")),
        ContainerImage => s(c.map(|c| c.image.trim()).unwrap_or("")),
        ContainerType => s(c
            .and_then(|c| CONTAINER_TYPES.get(c.ctype as usize))
            .map(|t| t.strip_prefix("CT_").unwrap_or(t))
            .unwrap_or("")),
        ContainerPrivileged => Value::Int(i64::from(c.is_some_and(|c| c.privileged))),

        PodTs => Value::Int(pod.map(|p| p.ts).unwrap_or(0)),
        PodId => s(pod.map(|p| p.id.as_str()).unwrap_or("")),
        PodName => s(pod.map(|p| p.name.trim()).unwrap_or("")),
        PodNodeName => s(pod.map(|p| p.node_name.trim()).unwrap_or("")),
        PodNamespace => s(pod.map(|p| p.namespace.trim()).unwrap_or("")),
        PodRestartCount => Value::Int(pod.map(|p| p.restart_count).unwrap_or(0)),
        PodHostIp => Value::Multi(
            pod.map(|p| {
                p.host_ip
                    .iter()
                    .map(|i| Cow::Owned(ip_string(*i)))
                    .collect()
            })
            .unwrap_or_default(),
        ),
        PodInternalIp => Value::Multi(
            pod.map(|p| {
                p.internal_ip
                    .iter()
                    .map(|i| Cow::Owned(ip_string(*i)))
                    .collect()
            })
            .unwrap_or_default(),
        ),
        PodServices => Value::Str(Cow::Owned(pod.map(services_json).unwrap_or_default())),
        Unreadable => s(""),
        KeAction => s(match ev {
            Event::K8sEvent(k) => K8S_ACTIONS.get(k.action as usize).copied().unwrap_or(""),
            _ => "",
        }),
        KeKind => s(match ev {
            Event::K8sEvent(k) => K8S_COMPONENTS.get(k.kind as usize).copied().unwrap_or(""),
            _ => "",
        }),
        KeMessage => s(match ev {
            Event::K8sEvent(k) => k.message.as_str(),
            _ => "",
        }),
        NodeId => s(&rec.header.exporter),
        NodeIp => s(&rec.header.ip),
        MetaSchema => Value::Int(rec.header.version),
        MetaTraceName => s(path_base(&rec.header.filename)),
    }
}

/// Falco's lowercase event names for the record's op flags (`execve`, `write`/`send`, ...).
fn falco_evt_types<'a>(rec: &Record, v: &mut Vec<Cow<'a, str>>) {
    let net = rec.kind() == Kind::NetworkFlow;
    let flags = rec.event.op_flags();
    v.extend(
        EVT_TYPES
            .iter()
            .filter(|(bit, _, _)| flags & bit == *bit)
            .map(|(_, f, n)| Cow::Borrowed(if net { *n } else { *f })),
    );
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// `sf.pod.services` as JSON (for `attr[jsonpath]`-style queries).
fn services_json(p: &Pod) -> String {
    let v: Vec<serde_json::Value> = p
        .services
        .iter()
        .map(|s| {
            serde_json::json!({
                "id": s.id, "name": s.name, "namespace": s.namespace,
                "clusterIP": s.cluster_ip.iter().map(|i| ip_string(*i)).collect::<Vec<_>>(),
                "ports": s.port_list.iter().map(|p| serde_json::json!({
                    "port": p.port, "targetport": p.target_port, "nodeport": p.node_port, "proto": p.proto
                })).collect::<Vec<_>>()
            })
        })
        .collect();
    serde_json::Value::Array(v).to_string()
}

/// A field, optionally with a gjson-style path into its JSON value (`sf.ke.message[a.0.b]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldRef {
    pub field: Field,
    pub path: Option<std::sync::Arc<[String]>>,
}

/// Resolves `name` (with an optional `[path]` suffix) to a field reference.
pub fn lookup_ref(name: &str) -> Option<FieldRef> {
    if let Some(f) = lookup(name) {
        return Some(FieldRef {
            field: f,
            path: None,
        });
    }
    let (base, rest) = name.split_once('[')?;
    let path = rest.strip_suffix(']')?;
    let field = lookup(base)?;
    Some(FieldRef {
        field,
        path: Some(
            path.split('.')
                .filter(|p| !p.is_empty())
                .map(str::to_string)
                .collect::<Vec<_>>()
                .into(),
        ),
    })
}

/// Reads a field reference: the field, or the string found at its JSON path ("" when the value
/// is not JSON or the path does not exist, as gjson).
pub fn ref_value<'a>(r: &FieldRef, rec: &'a Record) -> Value<'a> {
    let v = value(r.field, rec);
    let Some(path) = &r.path else {
        return v;
    };
    let json: serde_json::Value = match serde_json::from_str(&v.joined()) {
        Ok(j) => j,
        Err(_) => return Value::Str(Cow::Borrowed("")),
    };
    let mut cur = &json;
    for p in path.iter() {
        let next = match cur {
            serde_json::Value::Object(m) => m.get(p.as_str()),
            serde_json::Value::Array(a) => p.parse::<usize>().ok().and_then(|i| a.get(i)),
            _ => None,
        };
        match next {
            Some(n) => cur = n,
            None => return Value::Str(Cow::Borrowed("")),
        }
    }
    Value::Str(Cow::Owned(match cur {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    }))
}

/// Whether records of type `kind` can hold different values of `field`. When false, the
/// field's value is the same for every record of that type (a default, or a constant such as
/// `sf.type`), which lets the compiler decide a leaf for that type once.
pub fn populated(field: Field, kind: Kind) -> bool {
    use Kind::*;
    let k = kind;
    match field {
        Type | EvtDir | Unreadable => false,
        OpFlags | EvtType => k != K8sEvent,
        Ts => true,
        Ret => matches!(k, ProcessEvent | FileEvent | NetworkEvent),
        EndTs => matches!(k, NetworkFlow | FileFlow | ProcessFlow | K8sEvent),
        ProcTid => matches!(
            k,
            ProcessEvent | FileEvent | FileFlow | NetworkFlow | NetworkEvent
        ),
        ProcOid | ProcPid | ProcName | ProcExe | ProcArgs | ProcUid | ProcUser | ProcGid
        | ProcGroup | ProcCreateTs | ProcTty | ProcEntry | ProcCmdline | ProcAName | ProcAExe
        | ProcACmdline | ProcAPid | PProcOid | PProcPid | PProcName | PProcExe | PProcArgs
        | PProcUid | PProcUser | PProcGid | PProcGroup | PProcCreateTs | PProcTty | PProcEntry
        | PProcCmdline | ContainerId | ContainerName | ContainerImageId | ContainerImage
        | ContainerType | ContainerPrivileged | PodTs | PodId | PodName | PodNodeName
        | PodNamespace | PodRestartCount | PodHostIp | PodInternalIp | PodServices => k != K8sEvent,
        FileName | FilePath | FileSymlink | FileOid | FileDirectory | FileNewName | FileNewPath
        | FileNewSymlink | FileNewOid | FileNewDirectory | FileType => {
            matches!(k, FileFlow | FileEvent)
        }
        FileIsOpenWrite | FileIsOpenRead | FileOpenFlags => k == FileFlow,
        FileFd => matches!(k, FileFlow | NetworkFlow),
        NetProto | NetSport | NetDport | NetPort | NetSip | NetDip | NetIp => {
            matches!(k, NetworkFlow | NetworkEvent)
        }
        FlowRBytes | FlowROps | FlowWBytes | FlowWOps => matches!(k, FileFlow | NetworkFlow),
        QOpFlags => k != K8sEvent,
        QFlowRBytes | QFlowWBytes | QFileIsOpenRead | QFileIsOpenWrite | QFileOpenFlags => {
            matches!(k, FileFlow | NetworkFlow)
        }
        QFlowROps | QFlowWOps | QFileFd => matches!(k, FileFlow | NetworkFlow | FileEvent),
        QNetSip | QNetIp => matches!(k, NetworkFlow | NetworkEvent | FileFlow),
        KeAction | KeKind | KeMessage => k == K8sEvent,
        NodeId | NodeIp | MetaSchema | MetaTraceName => true,
    }
}

/// A record of type `kind` with no entities and a default event: the value of every field
/// that `kind` does not populate.
pub fn blank_record(kind: Kind) -> Record {
    let event = match kind {
        Kind::ProcessEvent => Event::ProcessEvent(Default::default()),
        Kind::NetworkFlow => Event::NetworkFlow(Default::default()),
        Kind::FileFlow => Event::FileFlow(Default::default()),
        Kind::FileEvent => Event::FileEvent(Default::default()),
        Kind::NetworkEvent => Event::NetworkEvent(Default::default()),
        Kind::ProcessFlow => Event::ProcessFlow(Default::default()),
        _ => Event::K8sEvent(Default::default()),
    };
    Record::new(
        event,
        std::sync::Arc::new(Header::default()),
        std::sync::Arc::from(Vec::new()),
    )
}

/// The directory of `path` without allocating when the path is already clean (the usual
/// case); otherwise Go's `filepath.Dir`.
fn dir_of(path: &str) -> Cow<'_, str> {
    if path.is_empty() {
        return Cow::Borrowed("");
    }
    // Clean when absolute and no `/` is followed by `/` or `.` (one pass).
    let b = path.as_bytes();
    let clean = b[0] == b'/'
        && !b
            .windows(2)
            .any(|w| w[0] == b'/' && (w[1] == b'/' || w[1] == b'.'));
    match (clean, path.rfind('/')) {
        (true, Some(0)) => Cow::Borrowed("/"),
        (true, Some(i)) => Cow::Borrowed(&path[..i]),
        _ => Cow::Owned(dir_name(path)),
    }
}

/// Calls `f` on every comma part of the field's string form until it returns true, without
/// collecting multi-valued fields (ancestry, op flags) into a vector first.
pub fn any_part(r: &FieldRef, rec: &Record, f: &mut dyn FnMut(&str) -> bool) -> bool {
    if r.path.is_none() {
        let lineage = || lineage_of(rec);
        match r.field {
            ProcAName => return lineage().any(|a| path_base(&a.exe).split(',').any(&mut *f)),
            ProcAExe => return lineage().any(|a| a.exe.split(',').any(&mut *f)),
            ProcAPid => {
                return lineage().any(|a| f(itoa::Buffer::new().format(a.oid.hpid)));
            }
            OpFlags => {
                return op_flag_names(rec.event.op_flags(), rec.kind()).any(&mut *f);
            }
            _ => {}
        }
    }
    ref_value(r, rec).any_part(f)
}

/// Whether `field` is read from the record's entities only (process, ancestry, container,
/// pod), not from the event: its value is the same for consecutive records that share them.
pub fn entity_field(field: Field) -> bool {
    matches!(
        field,
        ProcOid
            | ProcPid
            | ProcName
            | ProcExe
            | ProcArgs
            | ProcUid
            | ProcUser
            | ProcGid
            | ProcGroup
            | ProcCreateTs
            | ProcTty
            | ProcEntry
            | ProcCmdline
            | ProcAName
            | ProcAExe
            | ProcACmdline
            | ProcAPid
            | PProcOid
            | PProcPid
            | PProcName
            | PProcExe
            | PProcArgs
            | PProcUid
            | PProcUser
            | PProcGid
            | PProcGroup
            | PProcCreateTs
            | PProcTty
            | PProcEntry
            | PProcCmdline
            | ContainerId
            | ContainerName
            | ContainerImageId
            | ContainerImage
            | ContainerType
            | ContainerPrivileged
            | PodTs
            | PodId
            | PodName
            | PodNodeName
            | PodNamespace
            | PodRestartCount
            | PodHostIp
            | PodInternalIp
            | PodServices
    )
}

/// Direct accessor of a string field that borrows from the record (no `Value`, no
/// allocation): what the compiler uses for the common string leaves.
pub type StrGetter = for<'a> fn(&'a Record) -> &'a str;

fn proc_of(r: &Record) -> Option<&Process> {
    r.process.as_deref()
}
/// The process then its parents, as conditions see them: upstream's frozen lineage when the
/// record carries one (`quirks: upstream`), else the current one.
fn lineage_of(r: &Record) -> impl Iterator<Item = &Process> + '_ {
    let (head, tail): (Option<&Process>, &[Arc<Process>]) = match r.frozen_lineage.as_deref() {
        Some(f) => (None, f),
        None => (r.process.as_deref(), &r.ancestors),
    };
    head.into_iter().chain(tail.iter().map(|a| a.as_ref()))
}

fn parent_of(r: &Record) -> Option<&Process> {
    match &r.frozen_lineage {
        Some(f) => f.get(1).map(|a| a.as_ref()),
        None => r.ancestors.first().map(|a| a.as_ref()),
    }
}

/// The path parts of a file entity, computed on first use and kept with the entity (every
/// record of the file shares them).
fn file_parts(f: &File) -> &FileParts {
    f.parts.get_or_init(|| {
        let path = split_sym_path(f.path.trim()).0;
        FileParts {
            path: Piece::of(&f.path, path),
            name: Piece::of(&f.path, path_base(path)),
            dir: Piece::of(&f.path, &dir_of(path)),
        }
    })
}
/// `sf.file.path`: the path without the symlink prefix.
fn file_path_of(f: &File) -> &str {
    file_parts(f).path.get(&f.path)
}
fn file_name(f: &File) -> &str {
    file_parts(f).name.get(&f.path)
}
/// `sf.file.directory`: Go's `filepath.Dir` of the path ("" without a path).
fn file_dir(f: &File) -> &str {
    file_parts(f).dir.get(&f.path)
}
fn file_path(r: &Record) -> &str {
    r.file.as_deref().map(file_path_of).unwrap_or("")
}
fn new_file_path(r: &Record) -> &str {
    r.new_file.as_deref().map(file_path_of).unwrap_or("")
}

/// The direct accessor of `field`, when it is a plain string borrowed from the record.
pub fn str_getter(field: Field) -> Option<StrGetter> {
    Some(match field {
        ProcName => |r| proc_of(r).map(|p| path_base(&p.exe)).unwrap_or(""),
        ProcExe => |r| proc_of(r).map(|p| p.exe.as_str()).unwrap_or(""),
        ProcArgs => |r| proc_of(r).map(|p| p.exe_args.as_str()).unwrap_or(""),
        ProcCmdline => |r| proc_of(r).map(cmdline).unwrap_or(""),
        PProcCmdline => |r| parent_of(r).map(cmdline).unwrap_or(""),
        ProcUser => |r| proc_of(r).map(|p| p.user_name.as_str()).unwrap_or(""),
        ProcGroup => |r| proc_of(r).map(|p| p.group_name.as_str()).unwrap_or(""),
        PProcName => |r| parent_of(r).map(|p| path_base(&p.exe)).unwrap_or(""),
        PProcExe => |r| parent_of(r).map(|p| p.exe.as_str()).unwrap_or(""),
        PProcArgs => |r| parent_of(r).map(|p| p.exe_args.as_str()).unwrap_or(""),
        PProcUser => |r| parent_of(r).map(|p| p.user_name.as_str()).unwrap_or(""),
        PProcGroup => |r| parent_of(r).map(|p| p.group_name.as_str()).unwrap_or(""),
        FilePath => file_path,
        FileName => |r| r.file.as_deref().map(file_name).unwrap_or(""),
        FileNewPath => new_file_path,
        FileNewName => |r| r.new_file.as_deref().map(file_name).unwrap_or(""),
        FileDirectory => |r| r.file.as_deref().map(file_dir).unwrap_or(""),
        FileNewDirectory => |r| r.new_file.as_deref().map(file_dir).unwrap_or(""),
        ContainerId => |r| r.container.as_deref().map(|c| c.id.as_str()).unwrap_or(""),
        ContainerName => |r| r.container.as_deref().map(|c| c.name.trim()).unwrap_or(""),
        ContainerImage => |r| r.container.as_deref().map(|c| c.image.trim()).unwrap_or(""),
        ContainerImageId => |r| {
            r.container
                .as_deref()
                .map(|c| c.imageid.as_str())
                .unwrap_or("")
        },
        NodeId => |r| r.header.exporter.as_str(),
        NodeIp => |r| r.header.ip.as_str(),
        _ => return None,
    })
}

/// A process event of a process running `exe` (the policy modules' unit tests).
#[cfg(test)]
pub(crate) fn process_record(exe: &str) -> Record {
    let mut r = blank_record(Kind::ProcessEvent);
    r.process = Some(std::sync::Arc::new(crate::sysflow::model::Process {
        exe: exe.into(),
        ..Default::default()
    }));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_resolve_to_fields_and_blank_records_hold_nothing() {
        assert_eq!(lookup("sf.proc.exe"), Some(Field::ProcExe));
        assert_eq!(lookup("sf.no.such"), None);
        for k in [Kind::ProcessEvent, Kind::FileFlow, Kind::NetworkFlow] {
            let r = blank_record(k);
            assert_eq!(r.kind(), k);
            assert!(!value(Field::ProcExe, &r).is_set());
        }
        assert!(populated(Field::ProcExe, Kind::FileFlow));
        assert!(!populated(Field::Type, Kind::FileFlow));
        assert!(populated(Field::Ts, Kind::K8sEvent));
    }

    #[test]
    fn values_split_into_comma_parts() {
        let mut r = blank_record(Kind::ProcessEvent);
        r.process = Some(std::sync::Arc::new(crate::sysflow::model::Process {
            exe_args: "a,b".into(),
            ..Default::default()
        }));
        let f = lookup_ref("sf.proc.args").unwrap();
        let mut parts = Vec::new();
        any_part(&f, &r, &mut |s| {
            parts.push(s.to_string());
            false
        });
        assert_eq!(parts, ["a", "b"]);
    }
}
