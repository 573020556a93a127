//! The assembled record that flows from the reader to the policy engine and the exporters: one
//! event or flow plus shared references to the entities it refers to.

use std::sync::Arc;

use crate::sysflow::model::*;

/// The event or flow of a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    ProcessEvent(ProcessEvent),
    NetworkFlow(NetworkFlow),
    FileFlow(FileFlow),
    FileEvent(FileEvent),
    NetworkEvent(NetworkEvent),
    ProcessFlow(ProcessFlow),
    K8sEvent(K8sEvent),
}

impl Event {
    /// Splits a decoded datum into an event, or gives the entity back. The entity is moved,
    /// not boxed: boxing would cost an allocation per entity record.
    #[allow(clippy::result_large_err)]
    pub fn from_sysflow(sf: SysFlow) -> Result<Event, SysFlow> {
        Ok(match sf {
            SysFlow::ProcessEvent(e) => Event::ProcessEvent(e),
            SysFlow::NetworkFlow(e) => Event::NetworkFlow(e),
            SysFlow::FileFlow(e) => Event::FileFlow(e),
            SysFlow::FileEvent(e) => Event::FileEvent(e),
            SysFlow::NetworkEvent(e) => Event::NetworkEvent(e),
            SysFlow::ProcessFlow(e) => Event::ProcessFlow(e),
            SysFlow::K8sEvent(e) => Event::K8sEvent(e),
            other => return Err(other),
        })
    }

    pub fn kind(&self) -> Kind {
        match self {
            Event::ProcessEvent(_) => Kind::ProcessEvent,
            Event::NetworkFlow(_) => Kind::NetworkFlow,
            Event::FileFlow(_) => Kind::FileFlow,
            Event::FileEvent(_) => Kind::FileEvent,
            Event::NetworkEvent(_) => Kind::NetworkEvent,
            Event::ProcessFlow(_) => Kind::ProcessFlow,
            Event::K8sEvent(_) => Kind::K8sEvent,
        }
    }

    /// The process the event belongs to (none for Kubernetes events).
    pub fn proc_oid(&self) -> Option<Oid> {
        match self {
            Event::ProcessEvent(e) => Some(e.proc_oid),
            Event::NetworkFlow(e) => Some(e.proc_oid),
            Event::FileFlow(e) => Some(e.proc_oid),
            Event::FileEvent(e) => Some(e.proc_oid),
            Event::NetworkEvent(e) => Some(e.proc_oid),
            Event::ProcessFlow(e) => Some(e.proc_oid),
            Event::K8sEvent(_) => None,
        }
    }

    pub fn ts(&self) -> i64 {
        match self {
            Event::ProcessEvent(e) => e.ts,
            Event::NetworkFlow(e) => e.ts,
            Event::FileFlow(e) => e.ts,
            Event::FileEvent(e) => e.ts,
            Event::NetworkEvent(e) => e.ts,
            Event::ProcessFlow(e) => e.ts,
            Event::K8sEvent(e) => e.ts,
        }
    }

    /// End time: flows carry one; a Kubernetes event ends when it starts; others have none (0).
    pub fn end_ts(&self) -> i64 {
        match self {
            Event::NetworkFlow(e) => e.end_ts,
            Event::FileFlow(e) => e.end_ts,
            Event::ProcessFlow(e) => e.end_ts,
            Event::K8sEvent(e) => e.ts,
            _ => 0,
        }
    }

    pub fn tid(&self) -> i64 {
        match self {
            Event::ProcessEvent(e) => e.tid,
            Event::NetworkFlow(e) => e.tid,
            Event::FileFlow(e) => e.tid,
            Event::FileEvent(e) => e.tid,
            Event::NetworkEvent(e) => e.tid,
            Event::ProcessFlow(_) | Event::K8sEvent(_) => 0,
        }
    }

    pub fn op_flags(&self) -> i32 {
        match self {
            Event::ProcessEvent(e) => e.op_flags,
            Event::NetworkFlow(e) => e.op_flags,
            Event::FileFlow(e) => e.op_flags,
            Event::FileEvent(e) => e.op_flags,
            Event::NetworkEvent(e) => e.op_flags,
            Event::ProcessFlow(e) => e.op_flags,
            Event::K8sEvent(_) => 0,
        }
    }

    /// Return code of events that have one (0 otherwise).
    pub fn ret(&self) -> i32 {
        match self {
            Event::ProcessEvent(e) => e.ret,
            Event::FileEvent(e) => e.ret,
            Event::NetworkEvent(e) => e.ret,
            _ => 0,
        }
    }
}

/// A policy that matched a record (filled by the policy engine).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyMatch {
    pub id: Arc<str>,
    pub desc: Arc<str>,
    pub priority: i64,
    pub tags: Arc<[String]>,
}

/// One output record. Entities are shared (`Arc`), never copied per record.
#[derive(Debug, Clone)]
pub struct Record {
    pub event: Event,
    pub header: Arc<Header>,
    pub process: Option<Arc<Process>>,
    /// Parent first, then grandparent, ... (the process itself is not included).
    pub ancestors: Arc<[Arc<Process>]>,
    pub container: Option<Arc<Container>>,
    pub pod: Option<Arc<Pod>>,
    pub file: Option<Arc<File>>,
    pub new_file: Option<Arc<File>>,
    /// Rules that matched, in policy file order.
    pub policies: Vec<PolicyMatch>,
    /// Tags added by actions (rule tags are listed with the policies).
    pub tags: Vec<String>,
    /// How upstream names this record's op flags in conditions: `SEND`/`RECV` (true) or
    /// `WRITE`/`READ`. Its own type decides (network flows), unless the flattener applies
    /// upstream's name cache (`quirks: upstream`), where the first record with the same flags
    /// value decides for every later one.
    pub op_names_net: bool,
    /// With `quirks: upstream`: the lineage (the process, then its parents) the process had
    /// at its first event since the last header, which is what upstream's conditions read
    /// for `sf.proc.a*` and `sf.pproc.*` (its process-tree cache). `None`: the current one.
    pub frozen_lineage: Option<Arc<[Arc<Process>]>>,
}

impl Record {
    /// A record of `event` with no entities resolved yet and no policy context.
    pub fn new(event: Event, header: Arc<Header>, no_ancestors: Arc<[Arc<Process>]>) -> Self {
        let op_names_net = matches!(event, Event::NetworkFlow(_));
        Record {
            event,
            header,
            process: None,
            ancestors: no_ancestors,
            container: None,
            pod: None,
            file: None,
            new_file: None,
            op_names_net,
            frozen_lineage: None,
            policies: Vec::new(),
            tags: Vec::new(),
        }
    }

    pub fn kind(&self) -> Kind {
        self.event.kind()
    }

    /// Routing key that keeps one process's records together (policy shards, Kafka keys).
    pub fn process_key(&self) -> u64 {
        match self.event.proc_oid() {
            Some(o) => (o.hpid as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ o.create_ts as u64,
            None => 0,
        }
    }
}
