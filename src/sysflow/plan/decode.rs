//! Running a [`DatumPlan`]: Avro binary read straight into the v5 structs.

use super::*;
use crate::sysflow::cursor::Cursor;
use crate::sysflow::DecodeError;

impl Skip {
    fn run(&self, c: &mut Cursor) -> Result<(), DecodeError> {
        match self {
            Skip::Null => Ok(()),
            Skip::Bool => c.boolean().map(|_| ()),
            Skip::Varint => c.long().map(|_| ()),
            Skip::Float => c.skip(4),
            Skip::Double => c.skip(8),
            Skip::Bytes => c.bytes().map(|_| ()),
            Skip::Fixed(n) => c.skip(*n),
            Skip::Array(item) => loop {
                let n = c.block_count()?;
                if n == 0 {
                    return Ok(());
                }
                for _ in 0..n {
                    item.run(c)?;
                }
            },
            Skip::Map(v) => loop {
                let n = c.block_count()?;
                if n == 0 {
                    return Ok(());
                }
                for _ in 0..n {
                    c.bytes()?;
                    v.run(c)?;
                }
            },
            Skip::Union(branches) => {
                let pos = c.pos();
                let b = c.long()?;
                let s = usize::try_from(b)
                    .ok()
                    .and_then(|i| branches.get(i))
                    .ok_or(DecodeError::Union { pos, branch: b })?;
                s.run(c)
            }
            Skip::Record(fields) => {
                for f in fields {
                    f.run(c)?;
                }
                Ok(())
            }
        }
    }
}

impl DatumPlan {
    /// Decodes one datum. On error nothing is returned (never a half-decoded record).
    pub fn decode(&self, c: &mut Cursor) -> Result<Decoded, DecodeError> {
        c.start_datum();
        let mut result = None;
        for f in &self.top {
            match f {
                TopField::Skip(s) => s.run(c)?,
                TopField::Rec(branches) => {
                    let pos = c.pos();
                    let b = c.long()?;
                    let branch = usize::try_from(b)
                        .ok()
                        .and_then(|i| branches.get(i))
                        .ok_or(DecodeError::Union { pos, branch: b })?;
                    result = Some(match branch {
                        Branch::Known { kind, steps } => {
                            Decoded::Record(decode_kind(*kind, steps, c)?)
                        }
                        Branch::Unknown { name, skip } => {
                            skip.run(c)?;
                            Decoded::Unknown(name.clone())
                        }
                        Branch::Other(skip) => {
                            skip.run(c)?;
                            Decoded::Unknown("non-record branch".to_string())
                        }
                    });
                }
            }
        }
        result.ok_or(DecodeError::Union {
            pos: c.pos(),
            branch: -1,
        })
    }
}

// ---- value readers -------------------------------------------------------------------------

fn mismatch(c: &Cursor) -> DecodeError {
    DecodeError::Plan { pos: c.pos() }
}

impl Conv {
    #[inline]
    fn long(&self, c: &mut Cursor) -> Result<i64, DecodeError> {
        match self {
            Conv::Long => c.long(),
            Conv::Enum(map) => {
                let pos = c.pos();
                let i = c.long()?;
                usize::try_from(i)
                    .ok()
                    .and_then(|i| map.get(i).copied().flatten())
                    .map(i64::from)
                    .ok_or(DecodeError::Enum { pos, index: i })
            }
            _ => Err(mismatch(c)),
        }
    }
    #[inline]
    fn int(&self, c: &mut Cursor) -> Result<i32, DecodeError> {
        let pos = c.pos();
        let v = self.long(c)?;
        i32::try_from(v).map_err(|_| DecodeError::IntRange { pos, value: v })
    }
    #[inline]
    fn boolean(&self, c: &mut Cursor) -> Result<bool, DecodeError> {
        match self {
            Conv::Bool => c.boolean(),
            _ => Err(mismatch(c)),
        }
    }
    #[inline]
    fn string(&self, c: &mut Cursor) -> Result<String, DecodeError> {
        match self {
            Conv::Str => c.string(),
            _ => Err(mismatch(c)),
        }
    }
    /// Reads an optional value: a union (with branch index) or a plain value.
    #[inline]
    fn opt<'c, T>(
        &self,
        c: &mut Cursor<'c>,
        read: impl FnOnce(&Conv, &mut Cursor<'c>) -> Result<T, DecodeError>,
    ) -> Result<Option<T>, DecodeError> {
        match self {
            Conv::Opt(branches) => {
                let pos = c.pos();
                let b = c.long()?;
                match usize::try_from(b).ok().and_then(|i| branches.get(i)) {
                    Some(None) => Ok(None),
                    Some(Some(inner)) => read(inner, c).map(Some),
                    None => Err(DecodeError::Union { pos, branch: b }),
                }
            }
            plain => read(plain, c).map(Some),
        }
    }
    #[inline]
    fn oid(&self, c: &mut Cursor) -> Result<Oid, DecodeError> {
        match self {
            Conv::Oid(fields) => {
                let mut oid = Oid::default();
                for f in fields {
                    match f {
                        Ok(0) => oid.create_ts = c.long()?,
                        Ok(_) => oid.hpid = c.long()?,
                        Err(skip) => skip.run(c)?,
                    }
                }
                Ok(oid)
            }
            _ => Err(mismatch(c)),
        }
    }
    #[inline]
    fn foid(&self, c: &mut Cursor) -> Result<Foid, DecodeError> {
        match self {
            Conv::Fixed(20) => {
                let mut f = [0u8; 20];
                f.copy_from_slice(c.take(20)?);
                Ok(f)
            }
            _ => Err(mismatch(c)),
        }
    }
    fn array<'c, T>(
        &self,
        c: &mut Cursor<'c>,
        read: impl Fn(&Conv, &mut Cursor<'c>) -> Result<T, DecodeError>,
    ) -> Result<Vec<T>, DecodeError> {
        let Conv::Array(item) = self else {
            return Err(mismatch(c));
        };
        let mut out = Vec::new();
        loop {
            let n = c.block_count()?;
            if n == 0 {
                return Ok(out);
            }
            out.reserve(n.min(4096));
            for _ in 0..n {
                c.charge(std::mem::size_of::<T>())?;
                out.push(read(item, c)?);
            }
        }
    }
    fn str_map(&self, c: &mut Cursor) -> Result<Vec<(String, String)>, DecodeError> {
        if !matches!(self, Conv::StrMap) {
            return Err(mismatch(c));
        }
        let mut out = Vec::new();
        loop {
            let n = c.block_count()?;
            if n == 0 {
                return Ok(out);
            }
            for _ in 0..n {
                let k = c.string()?;
                let v = c.string()?;
                out.push((k, v));
            }
        }
    }
    fn skip(&self, c: &mut Cursor) -> Result<(), DecodeError> {
        match self {
            Conv::Skip(s) => s.run(c),
            _ => Err(mismatch(c)),
        }
    }
    fn service(&self, c: &mut Cursor) -> Result<Service, DecodeError> {
        let Conv::Record(plan) = self else {
            return Err(mismatch(c));
        };
        if plan.nested != Nested::Service {
            return Err(mismatch(c));
        }
        let mut s = Service::default();
        for st in &plan.steps {
            match st.slot {
                0 => s.name = st.conv.string(c)?,
                1 => s.id = st.conv.string(c)?,
                2 => s.namespace = st.conv.string(c)?,
                3 => s.port_list = st.conv.array(c, |cv, c| cv.port(c))?,
                4 => s.cluster_ip = st.conv.array(c, |cv, c| cv.long(c))?,
                _ => st.conv.skip(c)?,
            }
        }
        Ok(s)
    }
    fn port(&self, c: &mut Cursor) -> Result<Port, DecodeError> {
        let Conv::Record(plan) = self else {
            return Err(mismatch(c));
        };
        if plan.nested != Nested::Port {
            return Err(mismatch(c));
        }
        let mut p = Port::default();
        for st in &plan.steps {
            match st.slot {
                0 => p.port = st.conv.int(c)?,
                1 => p.target_port = st.conv.int(c)?,
                2 => p.node_port = st.conv.int(c)?,
                3 => p.proto = st.conv.string(c)?,
                _ => st.conv.skip(c)?,
            }
        }
        Ok(p)
    }
}

fn decode_kind(kind: Kind, steps: &[Step], c: &mut Cursor) -> Result<SysFlow, DecodeError> {
    Ok(match kind {
        Kind::Header => {
            let mut h = Header::default();
            for s in steps {
                match s.slot {
                    0 => h.version = s.conv.long(c)?,
                    1 => h.exporter = s.conv.string(c)?,
                    2 => h.ip = s.conv.string(c)?,
                    3 => h.filename = s.conv.string(c)?,
                    _ => s.conv.skip(c)?,
                }
            }
            SysFlow::Header(Box::new(h))
        }
        Kind::Container => {
            let mut v = Container::default();
            for s in steps {
                match s.slot {
                    0 => v.id = s.conv.string(c)?,
                    1 => v.name = s.conv.string(c)?,
                    2 => v.image = s.conv.string(c)?,
                    3 => v.imageid = s.conv.string(c)?,
                    4 => v.ctype = s.conv.int(c)?,
                    5 => v.privileged = s.conv.boolean(c)?,
                    6 => v.pod_id = s.conv.opt(c, |cv, c| cv.string(c))?,
                    _ => s.conv.skip(c)?,
                }
            }
            SysFlow::Container(Box::new(v))
        }
        Kind::Process => {
            let mut v = Process::default();
            for s in steps {
                match s.slot {
                    0 => v.state = ObjectState::from_index(s.conv.int(c)?),
                    1 => v.oid = s.conv.oid(c)?,
                    2 => v.poid = s.conv.opt(c, |cv, c| cv.oid(c))?,
                    3 => v.ts = s.conv.long(c)?,
                    4 => v.exe = s.conv.string(c)?,
                    5 => v.exe_args = s.conv.string(c)?,
                    6 => v.uid = s.conv.int(c)?,
                    7 => v.user_name = s.conv.string(c)?,
                    8 => v.gid = s.conv.int(c)?,
                    9 => v.group_name = s.conv.string(c)?,
                    10 => v.tty = s.conv.boolean(c)?,
                    11 => v.container_id = s.conv.opt(c, |cv, c| cv.string(c))?,
                    12 => v.entry = s.conv.boolean(c)?,
                    13 => v.cwd = s.conv.string(c)?,
                    14 => v.env = s.conv.array(c, |cv, c| cv.string(c))?,
                    _ => s.conv.skip(c)?,
                }
            }
            SysFlow::Process(Box::new(v))
        }
        Kind::File => {
            let mut v = File::default();
            for s in steps {
                match s.slot {
                    0 => v.state = ObjectState::from_index(s.conv.int(c)?),
                    1 => v.oid = s.conv.foid(c)?,
                    2 => v.ts = s.conv.long(c)?,
                    3 => v.restype = s.conv.int(c)?,
                    4 => v.path = s.conv.string(c)?,
                    5 => v.container_id = s.conv.opt(c, |cv, c| cv.string(c))?,
                    _ => s.conv.skip(c)?,
                }
            }
            SysFlow::File(Box::new(v))
        }
        Kind::ProcessEvent => {
            let mut v = ProcessEvent::default();
            for s in steps {
                match s.slot {
                    0 => v.proc_oid = s.conv.oid(c)?,
                    1 => v.ts = s.conv.long(c)?,
                    2 => v.tid = s.conv.long(c)?,
                    3 => v.op_flags = s.conv.int(c)?,
                    4 => v.args = s.conv.array(c, |cv, c| cv.string(c))?,
                    5 => v.ret = s.conv.int(c)?,
                    _ => s.conv.skip(c)?,
                }
            }
            SysFlow::ProcessEvent(v)
        }
        Kind::NetworkFlow => {
            let mut v = NetworkFlow::default();
            for s in steps {
                match s.slot {
                    0 => v.proc_oid = s.conv.oid(c)?,
                    1 => v.ts = s.conv.long(c)?,
                    2 => v.tid = s.conv.long(c)?,
                    3 => v.op_flags = s.conv.int(c)?,
                    4 => v.end_ts = s.conv.long(c)?,
                    5 => v.sip = s.conv.int(c)?,
                    6 => v.sport = s.conv.int(c)?,
                    7 => v.dip = s.conv.int(c)?,
                    8 => v.dport = s.conv.int(c)?,
                    9 => v.proto = s.conv.int(c)?,
                    10 => v.fd = s.conv.int(c)?,
                    11 => v.num_rrecv_ops = s.conv.long(c)?,
                    12 => v.num_wsend_ops = s.conv.long(c)?,
                    13 => v.num_rrecv_bytes = s.conv.long(c)?,
                    14 => v.num_wsend_bytes = s.conv.long(c)?,
                    _ => s.conv.skip(c)?,
                }
            }
            SysFlow::NetworkFlow(v)
        }
        Kind::FileFlow => {
            let mut v = FileFlow::default();
            for s in steps {
                match s.slot {
                    0 => v.proc_oid = s.conv.oid(c)?,
                    1 => v.ts = s.conv.long(c)?,
                    2 => v.tid = s.conv.long(c)?,
                    3 => v.op_flags = s.conv.int(c)?,
                    4 => v.open_flags = s.conv.int(c)?,
                    5 => v.end_ts = s.conv.long(c)?,
                    6 => v.file_oid = s.conv.foid(c)?,
                    7 => v.fd = s.conv.int(c)?,
                    8 => v.num_rrecv_ops = s.conv.long(c)?,
                    9 => v.num_wsend_ops = s.conv.long(c)?,
                    10 => v.num_rrecv_bytes = s.conv.long(c)?,
                    11 => v.num_wsend_bytes = s.conv.long(c)?,
                    _ => s.conv.skip(c)?,
                }
            }
            SysFlow::FileFlow(v)
        }
        Kind::FileEvent => {
            let mut v = FileEvent::default();
            for s in steps {
                match s.slot {
                    0 => v.proc_oid = s.conv.oid(c)?,
                    1 => v.ts = s.conv.long(c)?,
                    2 => v.tid = s.conv.long(c)?,
                    3 => v.op_flags = s.conv.int(c)?,
                    4 => v.file_oid = s.conv.foid(c)?,
                    5 => v.ret = s.conv.int(c)?,
                    6 => v.new_file_oid = s.conv.opt(c, |cv, c| cv.foid(c))?,
                    _ => s.conv.skip(c)?,
                }
            }
            SysFlow::FileEvent(v)
        }
        Kind::NetworkEvent => {
            let mut v = NetworkEvent::default();
            for s in steps {
                match s.slot {
                    0 => v.proc_oid = s.conv.oid(c)?,
                    1 => v.ts = s.conv.long(c)?,
                    2 => v.tid = s.conv.long(c)?,
                    3 => v.op_flags = s.conv.int(c)?,
                    4 => v.sip = s.conv.int(c)?,
                    5 => v.sport = s.conv.int(c)?,
                    6 => v.dip = s.conv.int(c)?,
                    7 => v.dport = s.conv.int(c)?,
                    8 => v.proto = s.conv.int(c)?,
                    9 => v.ret = s.conv.int(c)?,
                    _ => s.conv.skip(c)?,
                }
            }
            SysFlow::NetworkEvent(v)
        }
        Kind::ProcessFlow => {
            let mut v = ProcessFlow::default();
            for s in steps {
                match s.slot {
                    0 => v.proc_oid = s.conv.oid(c)?,
                    1 => v.ts = s.conv.long(c)?,
                    2 => v.num_threads_cloned = s.conv.long(c)?,
                    3 => v.op_flags = s.conv.int(c)?,
                    4 => v.end_ts = s.conv.long(c)?,
                    5 => v.num_threads_exited = s.conv.long(c)?,
                    6 => v.num_clone_errors = s.conv.long(c)?,
                    _ => s.conv.skip(c)?,
                }
            }
            SysFlow::ProcessFlow(v)
        }
        Kind::Pod => {
            let mut v = Pod::default();
            for s in steps {
                match s.slot {
                    0 => v.ts = s.conv.long(c)?,
                    1 => v.id = s.conv.string(c)?,
                    2 => v.name = s.conv.string(c)?,
                    3 => v.node_name = s.conv.string(c)?,
                    4 => v.host_ip = s.conv.array(c, |cv, c| cv.long(c))?,
                    5 => v.internal_ip = s.conv.array(c, |cv, c| cv.long(c))?,
                    6 => v.namespace = s.conv.string(c)?,
                    7 => v.restart_count = s.conv.long(c)?,
                    8 => v.labels = s.conv.str_map(c)?,
                    9 => v.selectors = s.conv.str_map(c)?,
                    10 => v.services = s.conv.array(c, |cv, c| cv.service(c))?,
                    _ => s.conv.skip(c)?,
                }
            }
            SysFlow::Pod(Box::new(v))
        }
        Kind::K8sEvent => {
            let mut v = K8sEvent::default();
            for s in steps {
                match s.slot {
                    0 => v.kind = s.conv.int(c)?,
                    1 => v.action = s.conv.int(c)?,
                    2 => v.ts = s.conv.long(c)?,
                    3 => v.message = s.conv.string(c)?,
                    _ => s.conv.skip(c)?,
                }
            }
            // The collector ends messages with a newline and NULs; upstream's converter
            // strips any trailing run of them (so JSON paths into the message work).
            let keep = v.message.trim_end_matches(['\n', '\0']).len();
            v.message.truncate(keep);
            SysFlow::K8sEvent(v)
        }
    })
}
