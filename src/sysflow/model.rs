//! The SysFlow schema v5 model as typed structs. Every writer-schema variant decodes into these.

/// Process identifier: monotonic creation time plus host PID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct Oid {
    pub create_ts: i64,
    pub hpid: i64,
}

/// File identifier: a 20-byte hash.
pub type Foid = [u8; 20];

/// Object state of entities. The numeric values are the v5 enum indexes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(u8)]
pub enum ObjectState {
    #[default]
    Created = 0,
    Modified = 1,
    Reup = 2,
}

impl ObjectState {
    pub fn from_index(i: i32) -> Self {
        match i {
            1 => ObjectState::Modified,
            2 => ObjectState::Reup,
            _ => ObjectState::Created,
        }
    }
    pub fn symbol(self) -> &'static str {
        match self {
            ObjectState::Created => "CREATED",
            ObjectState::Modified => "MODIFIED",
            ObjectState::Reup => "REUP",
        }
    }
}

/// Symbols of the v5 `ContainerType` enum, by index.
pub const CONTAINER_TYPES: [&str; 10] = [
    "CT_DOCKER",
    "CT_LXC",
    "CT_LIBVIRT_LXC",
    "CT_MESOS",
    "CT_RKT",
    "CT_CUSTOM",
    "CT_CRI",
    "CT_CONTAINERD",
    "CT_CRIO",
    "CT_BPM",
];

/// Symbols of the v5 `K8sComponent` enum, by index.
pub const K8S_COMPONENTS: [&str; 10] = [
    "K8S_NODES",
    "K8S_NAMESPACES",
    "K8S_PODS",
    "K8S_REPLICATIONCONTROLLERS",
    "K8S_SERVICES",
    "K8S_EVENTS",
    "K8S_REPLICASETS",
    "K8S_DAEMONSETS",
    "K8S_DEPLOYMENTS",
    "K8S_UNKNOWN",
];

/// Symbols of the v5 `K8sAction` enum, by index.
pub const K8S_ACTIONS: [&str; 6] = [
    "K8S_COMPONENT_ADDED",
    "K8S_COMPONENT_MODIFIED",
    "K8S_COMPONENT_DELETED",
    "K8S_COMPONENT_ERROR",
    "K8S_COMPONENT_NONEXISTENT",
    "K8S_COMPONENT_UNKNOWN",
];

/// Symbols of the v5 `SFObjectState` enum, by index.
pub const OBJECT_STATES: [&str; 3] = ["CREATED", "MODIFIED", "REUP"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub version: i64,
    pub exporter: String,
    pub ip: String,
    pub filename: String,
}

impl Default for Header {
    /// Avro defaults of the v5 reader schema (`version = 5`, `ip = "NA"`).
    fn default() -> Self {
        Header {
            version: 5,
            exporter: String::new(),
            ip: "NA".to_string(),
            filename: String::new(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Container {
    pub id: String,
    pub name: String,
    pub image: String,
    pub imageid: String,
    /// Index into [`CONTAINER_TYPES`].
    pub ctype: i32,
    pub privileged: bool,
    pub pod_id: Option<String>,
}

/// A lazily computed value derived from an entity (not part of the Avro record): computed on
/// first use, shared by every record that holds the entity, ignored by equality.
#[derive(Clone)]
pub struct Derived<T = String>(std::sync::OnceLock<T>);

impl<T> Default for Derived<T> {
    fn default() -> Self {
        Derived(std::sync::OnceLock::new())
    }
}

impl<T> Derived<T> {
    pub fn get_or_init(&self, f: impl FnOnce() -> T) -> &T {
        self.0.get_or_init(f)
    }
}

impl<T> PartialEq for Derived<T> {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl<T> Eq for Derived<T> {}

impl<T> std::fmt::Debug for Derived<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Derived")
    }
}

/// A piece of an entity's string: a byte range of it, or an owned string when the piece is
/// not a substring (e.g. a cleaned directory).
#[derive(Debug, Clone)]
pub enum Piece {
    Range(u32, u32),
    Owned(Box<str>),
}

impl Piece {
    /// `part` as a range of `base` when it lies inside it, else a copy.
    pub fn of(base: &str, part: &str) -> Piece {
        let off = (part.as_ptr() as usize).wrapping_sub(base.as_ptr() as usize);
        match off.checked_add(part.len()) {
            Some(end) if off <= base.len() && end <= base.len() && end <= u32::MAX as usize => {
                Piece::Range(off as u32, end as u32)
            }
            _ => Piece::Owned(part.into()),
        }
    }

    /// The piece's text (`base` is the string it was made from).
    pub fn get<'a>(&'a self, base: &'a str) -> &'a str {
        match self {
            Piece::Range(a, b) => base.get(*a as usize..*b as usize).unwrap_or(""),
            Piece::Owned(s) => s,
        }
    }
}

/// The parts of a file path that policies read (path without the symlink prefix, base name,
/// directory), derived once per file entity.
#[derive(Debug, Clone)]
pub struct FileParts {
    pub path: Piece,
    pub name: Piece,
    pub dir: Piece,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Process {
    pub state: ObjectState,
    pub oid: Oid,
    pub poid: Option<Oid>,
    pub ts: i64,
    pub exe: String,
    pub exe_args: String,
    pub uid: i32,
    pub user_name: String,
    pub gid: i32,
    pub group_name: String,
    pub tty: bool,
    pub container_id: Option<String>,
    pub entry: bool,
    pub cwd: String,
    pub env: Vec<String>,
    /// `exe` and `exe_args` joined, computed once (policies and JSON read it often).
    pub cmdline: Derived,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct File {
    pub state: ObjectState,
    pub oid: Foid,
    pub ts: i64,
    /// ASCII resource type character (`f`, `d`, `4`, `6`, `u`, `p`, ...).
    pub restype: i32,
    pub path: String,
    pub container_id: Option<String>,
    /// Path parts read by policies, computed once.
    pub parts: Derived<FileParts>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcessEvent {
    pub proc_oid: Oid,
    pub ts: i64,
    pub tid: i64,
    pub op_flags: i32,
    pub args: Vec<String>,
    pub ret: i32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkFlow {
    pub proc_oid: Oid,
    pub ts: i64,
    pub tid: i64,
    pub op_flags: i32,
    pub end_ts: i64,
    pub sip: i32,
    pub sport: i32,
    pub dip: i32,
    pub dport: i32,
    pub proto: i32,
    pub fd: i32,
    pub num_rrecv_ops: i64,
    pub num_wsend_ops: i64,
    pub num_rrecv_bytes: i64,
    pub num_wsend_bytes: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileFlow {
    pub proc_oid: Oid,
    pub ts: i64,
    pub tid: i64,
    pub op_flags: i32,
    pub open_flags: i32,
    pub end_ts: i64,
    pub file_oid: Foid,
    pub fd: i32,
    pub num_rrecv_ops: i64,
    pub num_wsend_ops: i64,
    pub num_rrecv_bytes: i64,
    pub num_wsend_bytes: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileEvent {
    pub proc_oid: Oid,
    pub ts: i64,
    pub tid: i64,
    pub op_flags: i32,
    pub file_oid: Foid,
    pub ret: i32,
    pub new_file_oid: Option<Foid>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkEvent {
    pub proc_oid: Oid,
    pub ts: i64,
    pub tid: i64,
    pub op_flags: i32,
    pub sip: i32,
    pub sport: i32,
    pub dip: i32,
    pub dport: i32,
    pub proto: i32,
    pub ret: i32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcessFlow {
    pub proc_oid: Oid,
    pub ts: i64,
    pub num_threads_cloned: i64,
    pub op_flags: i32,
    pub end_ts: i64,
    pub num_threads_exited: i64,
    pub num_clone_errors: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Port {
    pub port: i32,
    pub target_port: i32,
    pub node_port: i32,
    pub proto: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Service {
    pub name: String,
    pub id: String,
    pub namespace: String,
    pub port_list: Vec<Port>,
    pub cluster_ip: Vec<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pod {
    pub ts: i64,
    pub id: String,
    pub name: String,
    pub node_name: String,
    pub host_ip: Vec<i64>,
    pub internal_ip: Vec<i64>,
    pub namespace: String,
    pub restart_count: i64,
    pub labels: Vec<(String, String)>,
    pub selectors: Vec<(String, String)>,
    pub services: Vec<Service>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct K8sEvent {
    /// Index into [`K8S_COMPONENTS`].
    pub kind: i32,
    /// Index into [`K8S_ACTIONS`].
    pub action: i32,
    pub ts: i64,
    pub message: String,
}

/// One decoded SysFlow datum (the v5 `SysFlow.rec` union). Events and flows, almost every
/// record of a trace, are stored inline; the entities (a few per cent of the records, up to
/// 264 bytes for a process) are boxed, so every datum is as small as the largest flow and
/// moving one through decoding and batching copies 112 bytes, not 264.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SysFlow {
    Header(Box<Header>),
    Container(Box<Container>),
    Process(Box<Process>),
    File(Box<File>),
    ProcessEvent(ProcessEvent),
    NetworkFlow(NetworkFlow),
    FileFlow(FileFlow),
    FileEvent(FileEvent),
    NetworkEvent(NetworkEvent),
    ProcessFlow(ProcessFlow),
    Pod(Box<Pod>),
    K8sEvent(K8sEvent),
}

/// The kinds of [`SysFlow`] values, in the v5 union order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Header,
    Container,
    Process,
    File,
    ProcessEvent,
    NetworkFlow,
    FileFlow,
    FileEvent,
    NetworkEvent,
    ProcessFlow,
    Pod,
    K8sEvent,
}

impl Kind {
    pub const ALL: [Kind; 12] = [
        Kind::Header,
        Kind::Container,
        Kind::Process,
        Kind::File,
        Kind::ProcessEvent,
        Kind::NetworkFlow,
        Kind::FileFlow,
        Kind::FileEvent,
        Kind::NetworkEvent,
        Kind::ProcessFlow,
        Kind::Pod,
        Kind::K8sEvent,
    ];

    /// The Avro record name in the v5 schema.
    pub fn record_name(self) -> &'static str {
        match self {
            Kind::Header => "sysflow.entity.SFHeader",
            Kind::Container => "sysflow.entity.Container",
            Kind::Process => "sysflow.entity.Process",
            Kind::File => "sysflow.entity.File",
            Kind::ProcessEvent => "sysflow.event.ProcessEvent",
            Kind::NetworkFlow => "sysflow.flow.NetworkFlow",
            Kind::FileFlow => "sysflow.flow.FileFlow",
            Kind::FileEvent => "sysflow.event.FileEvent",
            Kind::NetworkEvent => "sysflow.event.NetworkEvent",
            Kind::ProcessFlow => "sysflow.flow.ProcessFlow",
            Kind::Pod => "sysflow.entity.Pod",
            Kind::K8sEvent => "sysflow.event.K8sEvent",
        }
    }

    /// The short type name used in output and policies (`sf.type`).
    pub fn short(self) -> &'static str {
        match self {
            Kind::Header => "H",
            Kind::Container => "C",
            Kind::Process => "P",
            Kind::File => "F",
            Kind::ProcessEvent => "PE",
            Kind::NetworkFlow => "NF",
            Kind::FileFlow => "FF",
            Kind::FileEvent => "FE",
            Kind::NetworkEvent => "NE",
            Kind::ProcessFlow => "PF",
            Kind::Pod => "PD",
            Kind::K8sEvent => "KE",
        }
    }

    /// Events and flows become output records; entities only feed the cache.
    pub fn is_event_or_flow(self) -> bool {
        !matches!(
            self,
            Kind::Header | Kind::Container | Kind::Process | Kind::File | Kind::Pod
        )
    }
}

impl SysFlow {
    pub fn kind(&self) -> Kind {
        match self {
            SysFlow::Header(_) => Kind::Header,
            SysFlow::Container(_) => Kind::Container,
            SysFlow::Process(_) => Kind::Process,
            SysFlow::File(_) => Kind::File,
            SysFlow::ProcessEvent(_) => Kind::ProcessEvent,
            SysFlow::NetworkFlow(_) => Kind::NetworkFlow,
            SysFlow::FileFlow(_) => Kind::FileFlow,
            SysFlow::FileEvent(_) => Kind::FileEvent,
            SysFlow::NetworkEvent(_) => Kind::NetworkEvent,
            SysFlow::ProcessFlow(_) => Kind::ProcessFlow,
            SysFlow::Pod(_) => Kind::Pod,
            SysFlow::K8sEvent(_) => Kind::K8sEvent,
        }
    }
}
