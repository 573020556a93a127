//! Upstream's JSON layout (export schema 5), always valid JSON.
//!
//! Layout: `version`, then `endts`, `opflags`, `ret`, `ts`, `type`, then the sections in name
//! order (`container`, `file`, `flow`, `meta`, `net`, `node`, `pod`, `pproc`, `proc`; for
//! Kubernetes events `ke`, `meta`, `node`), then `policies` and `tags` when present. Fields in a
//! section are in name order. Differences from upstream are listed in `docs/compatibility.md`.

use std::sync::Arc;

use xxhash_rust::xxh64::Xxh64;

use crate::record::{Event, Record};
use crate::sysflow::model::*;
use crate::sysflow::names::{
    base_name, dir_name, is_open_read, is_open_write, op_flag_names, open_flag_names, write_ip,
};

/// Version of the exported JSON schema (upstream's `JSON_SCHEMA_VERSION`).
pub const JSON_SCHEMA_VERSION: u32 = 5;

/// Appends `s` as a JSON string (quoted, escaped).
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    write_str_body(out, s);
    out.push(b'"');
}

/// True when one of the 8 bytes of `w` is a control character, `"` or `\` (SWAR test; exact
/// for existence).
#[inline]
fn word_needs_escape(w: u64) -> bool {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let lt = w.wrapping_sub(LO * 0x20) & !w & HI;
    let q = w ^ (LO * 0x22);
    let eq_q = q.wrapping_sub(LO) & !q & HI;
    let bs = w ^ (LO * 0x5c);
    let eq_bs = bs.wrapping_sub(LO) & !bs & HI;
    (lt | eq_q | eq_bs) != 0
}

#[inline]
fn escape_of(b: u8) -> Option<&'static [u8]> {
    Some(match b {
        b'"' => b"\\\"",
        b'\\' => b"\\\\",
        b'\n' => b"\\n",
        b'\r' => b"\\r",
        b'\t' => b"\\t",
        0..=0x1f => {
            const CTRL: [&[u8]; 32] = [
                b"\\u0000", b"\\u0001", b"\\u0002", b"\\u0003", b"\\u0004", b"\\u0005", b"\\u0006",
                b"\\u0007", b"\\u0008", b"\\t", b"\\n", b"\\u000b", b"\\u000c", b"\\r", b"\\u000e",
                b"\\u000f", b"\\u0010", b"\\u0011", b"\\u0012", b"\\u0013", b"\\u0014", b"\\u0015",
                b"\\u0016", b"\\u0017", b"\\u0018", b"\\u0019", b"\\u001a", b"\\u001b", b"\\u001c",
                b"\\u001d", b"\\u001e", b"\\u001f",
            ];
            CTRL[b as usize]
        }
        _ => return None,
    })
}

/// Appends `s` escaped for the inside of a JSON string. Clean 8-byte words are skipped whole.
fn write_str_body(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    let mut start = 0;
    let mut i = 0;
    let flush = |out: &mut Vec<u8>, j: usize, start: &mut usize| {
        if let Some(e) = escape_of(bytes[j]) {
            out.extend_from_slice(&bytes[*start..j]);
            out.extend_from_slice(e);
            *start = j + 1;
        }
    };
    while i + 8 <= bytes.len() {
        let mut w = [0u8; 8];
        w.copy_from_slice(&bytes[i..i + 8]);
        if word_needs_escape(u64::from_le_bytes(w)) {
            for j in i..i + 8 {
                flush(out, j, &mut start);
            }
        }
        i += 8;
    }
    if i < bytes.len() {
        // The tail, padded with a byte that never needs escaping.
        let mut w = [b'A'; 8];
        w[..bytes.len() - i].copy_from_slice(&bytes[i..]);
        if word_needs_escape(u64::from_le_bytes(w)) {
            for j in i..bytes.len() {
                flush(out, j, &mut start);
            }
        }
    }
    out.extend_from_slice(&bytes[start..]);
}

/// Upstream's `sf.proc.oid`: xxhash64 of the decimal pid followed by the decimal create time,
/// as 16 lowercase hex digits.
pub fn oid_hash(hpid: i64, create_ts: i64) -> String {
    let mut h = Xxh64::new(0);
    let mut b = itoa::Buffer::new();
    h.update(b.format(hpid).as_bytes());
    h.update(b.format(create_ts).as_bytes());
    format!("{:016x}", h.digest())
}

/// Splits upstream's socket-style paths (`ffff...->ffff... /path`) into (path, symlink).
pub fn split_sym_path(orig: &str) -> (&str, &str) {
    if let Some((link, rest)) = orig.split_once(' ') {
        let is_hex_pair = |s: &str, sep: &str| {
            s.split_once(sep).is_some_and(|(a, b)| {
                !a.is_empty()
                    && a.bytes().all(|c| c.is_ascii_hexdigit())
                    && !b.is_empty()
                    && b.bytes().all(|c| c.is_ascii_hexdigit())
            })
        };
        if (is_hex_pair(link, "->") || is_hex_pair(link, "-\\u")) && !rest.is_empty() {
            return (rest.split(' ').next().unwrap_or(rest), link);
        }
    }
    (orig, "")
}

/// `sf.proc.cmdline`: exe and args joined by a space (no trailing space without args);
/// computed once per process.
pub fn cmdline(p: &Process) -> &str {
    p.cmdline.get_or_init(|| {
        if p.exe_args.is_empty() {
            p.exe.clone()
        } else {
            format!("{} {}", p.exe, p.exe_args)
        }
    })
}

/// Writes `cmdline(p)` as a JSON string without building it first.
fn write_cmdline(out: &mut Vec<u8>, p: &Process) {
    out.push(b'"');
    write_str_body(out, &p.exe);
    if !p.exe_args.is_empty() {
        out.push(b' ');
        write_str_body(out, &p.exe_args);
    }
    out.push(b'"');
}

fn write_hex(out: &mut Vec<u8>, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    for b in bytes {
        out.push(HEX[(b >> 4) as usize]);
        out.push(HEX[(b & 0xf) as usize]);
    }
    out.push(b'"');
}

pub(crate) struct W<'a> {
    pub(crate) out: &'a mut Vec<u8>,
    pub(crate) num: &'a mut itoa::Buffer,
    pub(crate) first: bool,
}

impl W<'_> {
    #[inline]
    pub(crate) fn key(&mut self, k: &str) {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        self.out.push(b'"');
        self.out.extend_from_slice(k.as_bytes());
        self.out.extend_from_slice(b"\":");
    }
    #[inline]
    pub(crate) fn int(&mut self, k: &str, v: i64) {
        self.key(k);
        self.out.extend_from_slice(self.num.format(v).as_bytes());
    }
    #[inline]
    pub(crate) fn boolean(&mut self, k: &str, v: bool) {
        self.key(k);
        self.out
            .extend_from_slice(if v { b"true" } else { b"false" });
    }
    #[inline]
    pub(crate) fn str(&mut self, k: &str, v: &str) {
        self.key(k);
        write_str(self.out, v);
    }
    pub(crate) fn str_list<'s>(&mut self, k: &str, items: impl Iterator<Item = &'s str>) {
        self.key(k);
        self.out.push(b'[');
        for (i, s) in items.enumerate() {
            if i > 0 {
                self.out.push(b',');
            }
            write_str(self.out, s);
        }
        self.out.push(b']');
    }
    pub(crate) fn ip_list(&mut self, k: &str, ips: &[i64]) {
        self.key(k);
        self.out.push(b'[');
        for (i, ip) in ips.iter().enumerate() {
            if i > 0 {
                self.out.push(b',');
            }
            self.out.push(b'"');
            write_ip(*ip, self.out);
            self.out.push(b'"');
        }
        self.out.push(b']');
    }
    pub(crate) fn section(&mut self, name: &str) {
        self.key(name);
        self.out.push(b'{');
        self.first = true;
    }
    pub(crate) fn end_section(&mut self) {
        self.out.push(b'}');
        self.first = false;
    }
}

/// Keeps pre-rendered JSON fragments of entities, keyed by the address of their `Arc`. The
/// entry holds a clone of the `Arc`, so the address cannot be reused while the entry lives.
/// Records of one process repeat the same process, ancestry, container and pod sections; they
/// are rendered once and copied after that.
pub(crate) struct FragCache<K, V> {
    map: rustc_hash::FxHashMap<(usize, usize), (K, V)>,
    cap: usize,
}

impl<K, V> FragCache<K, V> {
    pub(crate) fn new(cap: usize) -> Self {
        FragCache {
            map: Default::default(),
            cap,
        }
    }
    pub(crate) fn get_or_insert(
        &mut self,
        key: (usize, usize),
        keep: impl FnOnce() -> K,
        make: impl FnOnce() -> V,
    ) -> &V {
        // One hash lookup on a hit (the common case); a miss on a full cache clears it first.
        if self.map.len() >= self.cap && !self.map.contains_key(&key) {
            self.map.clear();
        }
        &self.map.entry(key).or_insert_with(|| (keep(), make())).1
    }
}

pub(crate) fn ptr<T: ?Sized>(a: &Arc<T>) -> usize {
    Arc::as_ptr(a) as *const u8 as usize
}

/// The rendered `pproc` section and the `proc` section around the per-event `tid`.
struct ProcFrag {
    pproc: Vec<u8>,
    head: Vec<u8>,
    tail: Vec<u8>,
}

type ProcKeep = (Arc<Process>, Arc<[Arc<Process>]>);

/// The parts of the `file` section that depend on the file entity alone, rendered once per
/// file (records of one file repeat them: a flow per read and write), escaped and ready to
/// copy around the event's own fields (`fd`, the open flags).
/// One allocation holds the four parts end to end: `,"file":{"directory":"…"`, then
/// `,"name":"…"` from `name`, `,"oid":"…"` from `oid`, and
/// `,"path":"…","symlink":"…","type":"…"}` from `tail`.
struct FileFrag {
    bytes: Vec<u8>,
    name: usize,
    oid: usize,
    tail: usize,
}

impl FileFrag {
    fn head(&self) -> &[u8] {
        &self.bytes[..self.name]
    }
    fn name(&self) -> &[u8] {
        &self.bytes[self.name..self.oid]
    }
    fn oid(&self) -> &[u8] {
        &self.bytes[self.oid..self.tail]
    }
    fn tail(&self) -> &[u8] {
        &self.bytes[self.tail..]
    }
}

/// The `new*` fields of a file section. Written in place for a record that has a new file
/// (a rename or link target, nearly always seen once: a cache of them never hit on the
/// traces measured); rendered once for the records that have none.
fn write_new_file(w: &mut W, nf: Option<&File>) {
    let (npath, nsym) = split_sym_path(path_of(nf));
    w.str("newdirectory", &dir_or_empty(npath));
    w.str("newname", base_or_empty(npath));
    w.key("newoid");
    match nf {
        Some(n) => write_hex(w.out, &n.oid),
        None => write_str(w.out, ""),
    }
    w.str("newpath", npath);
    w.str("newsymlink", nsym);
}

fn render_file(f: Option<&File>) -> FileFrag {
    let (path, sym) = split_sym_path(path_of(f));
    let (mut name, mut oid, mut tail) = (0, 0, 0);
    let bytes = render(|w| {
        w.section("file");
        w.str("directory", &dir_or_empty(path));
        name = w.out.len();
        w.str("name", base_or_empty(path));
        oid = w.out.len();
        w.key("oid");
        match f {
            Some(f) => write_hex(w.out, &f.oid),
            None => write_str(w.out, ""),
        }
        tail = w.out.len();
        w.str("path", path);
        w.str("symlink", sym);
        let t = f.and_then(|f| char::from_u32(f.restype as u32));
        let mut tb = [0u8; 4];
        w.str(
            "type",
            match t {
                Some(c) if f.is_some_and(|f| f.restype != 0) => c.encode_utf8(&mut tb),
                _ => "",
            },
        );
        w.end_section();
    });
    FileFrag {
        bytes,
        name,
        oid,
        tail,
    }
}

/// Name lists rendered once per flags value: `op_flag_names` per (flags, record kind),
/// `open_flag_names` per flags.
#[derive(Default)]
struct FlagLists {
    ops: rustc_hash::FxHashMap<(i32, u8), Vec<u8>>,
    opens: rustc_hash::FxHashMap<i32, Vec<u8>>,
}

/// Most distinct flag values remembered (they are bit sets: a few dozen occur).
const FLAG_LISTS: usize = 4096;

impl FlagLists {
    fn ops(&mut self, flags: i32, kind: Kind) -> &[u8] {
        if self.ops.len() >= FLAG_LISTS {
            self.ops.clear();
        }
        self.ops.entry((flags, kind as u8)).or_insert_with(|| {
            let mut out = Vec::with_capacity(32);
            write_str_array(&mut out, op_flag_names(flags, kind));
            out
        })
    }
    fn opens(&mut self, flags: i32) -> &[u8] {
        if self.opens.len() >= FLAG_LISTS {
            self.opens.clear();
        }
        self.opens.entry(flags).or_insert_with(|| {
            let mut out = Vec::with_capacity(32);
            write_str_array(&mut out, open_flag_names(flags));
            out
        })
    }
}

/// `["A","B"]`.
fn write_str_array<'s>(out: &mut Vec<u8>, items: impl Iterator<Item = &'s str>) {
    out.push(b'[');
    for (i, s) in items.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(out, s);
    }
    out.push(b']');
}

/// Encodes records as one JSON object each.
pub struct JsonEncoder {
    num: itoa::Buffer,
    procs: FragCache<ProcKeep, ProcFrag>,
    containers: FragCache<Arc<Container>, Vec<u8>>,
    pods: FragCache<Arc<Pod>, Vec<u8>>,
    headers: FragCache<Arc<Header>, (Vec<u8>, Vec<u8>)>,
    files: FragCache<Arc<File>, FileFrag>,
    flags: FlagLists,
    /// The `new*` fields when there is no new file (most records).
    no_new_file: Vec<u8>,
    /// The whole `file` section's entity parts when the record names no file.
    no_file: FileFrag,
}

impl Default for JsonEncoder {
    fn default() -> Self {
        JsonEncoder {
            num: itoa::Buffer::new(),
            procs: FragCache::new(2048),
            containers: FragCache::new(1024),
            pods: FragCache::new(1024),
            headers: FragCache::new(16),
            files: FragCache::new(4096),
            flags: FlagLists::default(),
            no_new_file: render(|w| write_new_file(w, None)),
            no_file: render_file(None),
        }
    }
}

/// Renders a fragment with a fresh writer; `first == false` so it starts with a comma.
pub(crate) fn render(f: impl FnOnce(&mut W)) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    let mut num = itoa::Buffer::new();
    let mut w = W {
        out: &mut out,
        num: &mut num,
        first: false,
    };
    f(&mut w);
    out
}

/// [`render`] when `cond` holds, else nothing.
pub(crate) fn render_if(cond: bool, f: impl FnOnce(&mut W)) -> Vec<u8> {
    if cond {
        render(f)
    } else {
        Vec::new()
    }
}

fn write_container(w: &mut W, c: &Container) {
    w.section("container");
    w.str("id", &c.id);
    w.str("image", c.image.trim());
    w.str("imageid", &c.imageid);
    w.str("name", c.name.trim());
    w.int("privileged", i64::from(c.privileged));
    let t = CONTAINER_TYPES.get(c.ctype as usize).copied().unwrap_or("");
    w.str("type", t.strip_prefix("CT_").unwrap_or(t));
    w.end_section();
}

fn write_pod(w: &mut W, pd: &Pod) {
    w.section("pod");
    w.ip_list("hostip", &pd.host_ip);
    w.str("id", &pd.id);
    w.ip_list("internalip", &pd.internal_ip);
    w.str("name", pd.name.trim());
    w.str("namespace", pd.namespace.trim());
    w.str("nodename", pd.node_name.trim());
    w.int("restartcnt", pd.restart_count);
    w.key("services");
    w.out.push(b'[');
    for (i, s) in pd.services.iter().enumerate() {
        if i > 0 {
            w.out.push(b',');
        }
        w.out.push(b'{');
        w.first = true;
        w.str("id", &s.id);
        w.str("name", &s.name);
        w.str("namespace", &s.namespace);
        w.ip_list("clusterIP", &s.cluster_ip);
        w.key("ports");
        w.out.push(b'[');
        for (j, p) in s.port_list.iter().enumerate() {
            if j > 0 {
                w.out.push(b',');
            }
            w.out.push(b'{');
            w.first = true;
            w.int("port", i64::from(p.port));
            w.int("targetport", i64::from(p.target_port));
            w.int("nodeport", i64::from(p.node_port));
            w.str("proto", &p.proto);
            w.out.push(b'}');
        }
        w.out.push(b']');
        w.out.push(b'}');
    }
    w.out.push(b']');
    w.first = false;
    w.int("ts", pd.ts);
    w.end_section();
}

/// The `pproc` section (empty when the process has no parent id).
fn write_pproc(w: &mut W, proc: Option<&Process>, ancestors: &[Arc<Process>]) {
    let Some(poid) = proc.and_then(|p| p.poid).filter(|o| o.hpid != 0) else {
        return;
    };
    let parent = ancestors.first().map(|p| p.as_ref());
    w.section("pproc");
    w.str("args", parent.map(|p| p.exe_args.as_str()).unwrap_or(""));
    w.key("cmdline");
    match parent {
        Some(p) => write_cmdline(w.out, p),
        None => write_str(w.out, ""),
    }
    w.int("createts", poid.create_ts);
    w.boolean("entry", parent.is_some_and(|p| p.entry));
    w.str("exe", parent.map(|p| p.exe.as_str()).unwrap_or(""));
    w.int("gid", parent.map(|p| i64::from(p.gid)).unwrap_or(0));
    w.str("group", parent.map(|p| p.group_name.as_str()).unwrap_or(""));
    w.str("name", parent.map(|p| base_or_empty(&p.exe)).unwrap_or(""));
    w.str("oid", &oid_hash(poid.hpid, poid.create_ts));
    w.int("pid", poid.hpid);
    w.boolean("tty", parent.is_some_and(|p| p.tty));
    w.int("uid", parent.map(|p| i64::from(p.uid)).unwrap_or(0));
    w.str("user", parent.map(|p| p.user_name.as_str()).unwrap_or(""));
    w.end_section();
}

/// The `proc` section up to and including `pid` (the event's `tid` follows).
fn write_proc_head(w: &mut W, proc: Option<&Process>, ancestors: &[Arc<Process>]) {
    w.section("proc");
    let lineage = || proc.into_iter().chain(ancestors.iter().map(|p| p.as_ref()));
    w.key("acmdline");
    w.out.push(b'[');
    for (i, p) in lineage().enumerate() {
        if i > 0 {
            w.out.push(b',');
        }
        write_cmdline(w.out, p);
    }
    w.out.push(b']');
    w.str_list("aexe", lineage().map(|p| p.exe.as_str()));
    w.str_list("aname", lineage().map(|p| base_or_empty(&p.exe)));
    w.key("apid");
    w.out.push(b'[');
    for (i, p) in lineage().enumerate() {
        if i > 0 {
            w.out.push(b',');
        }
        w.out.extend_from_slice(w.num.format(p.oid.hpid).as_bytes());
    }
    w.out.push(b']');
    w.str("args", proc.map(|p| p.exe_args.as_str()).unwrap_or(""));
    w.key("cmdline");
    match proc {
        Some(p) => write_cmdline(w.out, p),
        None => write_str(w.out, ""),
    }
    let oid = proc.map(|p| p.oid).unwrap_or_default();
    w.int("createts", oid.create_ts);
    w.boolean("entry", proc.is_some_and(|p| p.entry));
    w.str("exe", proc.map(|p| p.exe.as_str()).unwrap_or(""));
    w.int("gid", proc.map(|p| i64::from(p.gid)).unwrap_or(0));
    w.str("group", proc.map(|p| p.group_name.as_str()).unwrap_or(""));
    w.str("name", proc.map(|p| base_or_empty(&p.exe)).unwrap_or(""));
    w.str("oid", &oid_hash(oid.hpid, oid.create_ts));
    w.int("pid", oid.hpid);
}

/// The `proc` section after `tid`, closing it.
fn write_proc_tail(w: &mut W, proc: Option<&Process>) {
    w.boolean("tty", proc.is_some_and(|p| p.tty));
    w.int("uid", proc.map(|p| i64::from(p.uid)).unwrap_or(0));
    w.str("user", proc.map(|p| p.user_name.as_str()).unwrap_or(""));
    w.end_section();
}

impl JsonEncoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends the JSON object for `rec` to `out` (no trailing newline).
    pub fn encode(&mut self, rec: &Record, out: &mut Vec<u8>) {
        let kind = rec.kind();
        let ev = &rec.event;
        out.push(b'{');
        let JsonEncoder {
            num,
            procs,
            containers,
            pods,
            headers,
            files,
            flags,
            no_new_file,
            no_file,
        } = self;
        let (meta, node) = headers.get_or_insert(
            (ptr(&rec.header), 0),
            || rec.header.clone(),
            || {
                (
                    render(|w| write_meta(w, &rec.header)),
                    render(|w| write_node(w, &rec.header)),
                )
            },
        );
        let mut w = W {
            out,
            num,
            first: true,
        };
        w.int("version", i64::from(JSON_SCHEMA_VERSION));
        w.int("endts", ev.end_ts());
        w.key("opflags");
        w.out.extend_from_slice(flags.ops(ev.op_flags(), kind));
        w.int("ret", i64::from(ev.ret()));
        w.int("ts", ev.ts());
        w.str("type", kind.short());

        if let Event::K8sEvent(ke) = ev {
            w.section("k8s");
            w.str(
                "action",
                K8S_ACTIONS.get(ke.action as usize).copied().unwrap_or(""),
            );
            w.str(
                "kind",
                K8S_COMPONENTS.get(ke.kind as usize).copied().unwrap_or(""),
            );
            w.str("message", &ke.message);
            w.end_section();
            w.out.extend_from_slice(meta);
            w.out.extend_from_slice(node);
            finish(&mut w, rec);
            return;
        }

        // No read of the entity on a cache hit (an empty id renders as nothing): the
        // flattener's thread writes the count beside these fields for every record, and a
        // read here would pull that cache line across cores each time.
        if let Some(c) = &rec.container {
            let frag = containers.get_or_insert(
                (ptr(c), 0),
                || c.clone(),
                || render_if(!c.id.is_empty(), |w| write_container(w, c)),
            );
            w.out.extend_from_slice(frag);
        }

        if matches!(kind, Kind::FileFlow | Kind::FileEvent) {
            let (fd, open_flags) = match ev {
                Event::FileFlow(ff) => (ff.fd, ff.open_flags),
                _ => (0, 0),
            };
            // The entity parts come rendered (once per file), the event's fields between.
            let file = match &rec.file {
                Some(a) => files.get_or_insert((ptr(a), 0), || a.clone(), || render_file(Some(a))),
                None => &*no_file,
            };
            w.out.extend_from_slice(file.head());
            w.first = false;
            w.int("fd", i64::from(fd));
            w.boolean("is_open_read", is_open_read(open_flags));
            w.boolean("is_open_write", is_open_write(open_flags));
            w.out.extend_from_slice(file.name());
            match &rec.new_file {
                Some(a) => write_new_file(&mut w, Some(a)),
                None => w.out.extend_from_slice(no_new_file),
            }
            w.out.extend_from_slice(file.oid());
            w.key("openflags");
            w.out.extend_from_slice(flags.opens(open_flags));
            w.out.extend_from_slice(file.tail());
        }

        let counters = match ev {
            Event::FileFlow(f) => Some((
                f.num_rrecv_bytes,
                f.num_rrecv_ops,
                f.num_wsend_bytes,
                f.num_wsend_ops,
            )),
            Event::NetworkFlow(n) => Some((
                n.num_rrecv_bytes,
                n.num_rrecv_ops,
                n.num_wsend_bytes,
                n.num_wsend_ops,
            )),
            _ => None,
        };
        if let Some((rb, ro, wb, wo)) = counters {
            w.section("flow");
            w.int("rbytes", rb);
            w.int("rops", ro);
            w.int("wbytes", wb);
            w.int("wops", wo);
            w.end_section();
        }

        w.out.extend_from_slice(meta);

        let net = match ev {
            Event::NetworkFlow(n) => Some((n.sip, n.sport, n.dip, n.dport, n.proto)),
            Event::NetworkEvent(n) => Some((n.sip, n.sport, n.dip, n.dport, n.proto)),
            _ => None,
        };
        if let Some((sip, sport, dip, dport, proto)) = net {
            w.section("net");
            w.key("dip");
            w.out.push(b'"');
            write_ip(i64::from(dip), w.out);
            w.out.push(b'"');
            w.int("dport", i64::from(dport));
            w.ip_list("ip", &[i64::from(sip), i64::from(dip)]);
            w.key("port");
            w.out.push(b'[');
            w.out.extend_from_slice(w.num.format(sport).as_bytes());
            w.out.push(b',');
            w.out.extend_from_slice(w.num.format(dport).as_bytes());
            w.out.push(b']');
            w.int("proto", i64::from(proto));
            w.key("sip");
            w.out.push(b'"');
            write_ip(i64::from(sip), w.out);
            w.out.push(b'"');
            w.int("sport", i64::from(sport));
            w.end_section();
        }

        w.out.extend_from_slice(node);

        if let Some(pd) = &rec.pod {
            let frag = pods.get_or_insert(
                (ptr(pd), 0),
                || pd.clone(),
                || render_if(!pd.id.is_empty(), |w| write_pod(w, pd)),
            );
            w.out.extend_from_slice(frag);
        }

        let ancestors = &rec.ancestors;
        match &rec.process {
            Some(p) => {
                let frag = procs.get_or_insert(
                    (ptr(p), ptr(ancestors)),
                    || (p.clone(), ancestors.clone()),
                    || ProcFrag {
                        pproc: render(|w| write_pproc(w, Some(p), ancestors)),
                        head: render(|w| write_proc_head(w, Some(p), ancestors)),
                        tail: render(|w| write_proc_tail(w, Some(p))),
                    },
                );
                w.out.extend_from_slice(&frag.pproc);
                w.out.extend_from_slice(&frag.head);
                w.int("tid", ev.tid());
                w.out.extend_from_slice(&frag.tail);
            }
            None => {
                write_pproc(&mut w, None, ancestors);
                write_proc_head(&mut w, None, ancestors);
                w.int("tid", ev.tid());
                write_proc_tail(&mut w, None);
            }
        }

        finish(&mut w, rec);
    }
}

fn path_of(f: Option<&File>) -> &str {
    f.map(|f| f.path.trim()).unwrap_or("")
}

fn base_or_empty(path: &str) -> &str {
    if path.is_empty() {
        ""
    } else {
        base_name(path)
    }
}

fn dir_or_empty(path: &str) -> String {
    if path.is_empty() {
        String::new()
    } else {
        dir_name(path)
    }
}

fn write_meta(w: &mut W, h: &Header) {
    w.section("meta");
    w.int("schema", h.version);
    w.str("tracename", base_or_empty(&h.filename));
    w.end_section();
}

fn write_node(w: &mut W, h: &Header) {
    w.section("node");
    w.str("id", &h.exporter);
    w.str("ip", &h.ip);
    w.end_section();
}

fn finish(w: &mut W, rec: &Record) {
    if !rec.policies.is_empty() {
        w.key("policies");
        w.out.push(b'[');
        for (i, p) in rec.policies.iter().enumerate() {
            if i > 0 {
                w.out.push(b',');
            }
            w.out.push(b'{');
            w.first = true;
            w.str("id", &p.id);
            w.str("desc", &p.desc);
            w.int("priority", p.priority);
            w.out.push(b'}');
        }
        w.out.push(b']');
        w.first = false;
    }
    let rule_tags = rec.policies.iter().flat_map(|p| p.tags.iter());
    if !rec.tags.is_empty() || rec.policies.iter().any(|p| !p.tags.is_empty()) {
        let all: Vec<&str> = rec
            .tags
            .iter()
            .map(String::as_str)
            .chain(rule_tags.map(String::as_str))
            .collect();
        w.str_list("tags", all.into_iter());
    }
    w.out.push(b'}');
}

/// `format: json` in the format registry.
pub static SPEC: crate::exporter::registry::FormatSpec = crate::exporter::registry::FormatSpec {
    names: &["json", ""],
    new: || Box::new(JsonEncoder::new()),
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::PolicyMatch;
    use std::sync::Arc;

    fn record(event: Event) -> Record {
        Record {
            event,
            header: Arc::new(Header {
                version: 4,
                exporter: "node-1".into(),
                ip: "10.0.0.1".into(),
                filename: "/mnt/data/123".into(),
            }),
            process: Some(Arc::new(Process {
                oid: Oid {
                    create_ts: 100,
                    hpid: 42,
                },
                poid: Some(Oid {
                    create_ts: 50,
                    hpid: 1,
                }),
                exe: "/bin/cat".into(),
                exe_args: "\"quoted\" a\\b".into(),
                uid: 1000,
                user_name: "alice".into(),
                ..Default::default()
            })),
            ancestors: Arc::from(vec![Arc::new(Process {
                oid: Oid {
                    create_ts: 50,
                    hpid: 1,
                },
                exe: "/sbin/init".into(),
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
        JsonEncoder::new().encode(r, &mut out);
        serde_json::from_slice(&out)
            .unwrap_or_else(|e| panic!("invalid JSON {e}: {}", String::from_utf8_lossy(&out)))
    }

    #[test]
    fn network_flow_layout_and_values() {
        let r = record(Event::NetworkFlow(NetworkFlow {
            ts: 10,
            end_ts: 20,
            tid: 43,
            op_flags: crate::sysflow::names::OP_CONNECT | crate::sysflow::names::OP_WRITE_SEND,
            sip: 0x0100007f,
            sport: 5000,
            dip: 0x0101a8c0,
            dport: 80,
            proto: 6,
            num_rrecv_bytes: 7,
            num_wsend_bytes: 9,
            num_rrecv_ops: 1,
            num_wsend_ops: 2,
            ..Default::default()
        }));
        let mut out = Vec::new();
        JsonEncoder::new().encode(&r, &mut out);
        let text = String::from_utf8(out).unwrap();
        // Key order is part of the layout.
        assert!(text.starts_with(
            r#"{"version":5,"endts":20,"opflags":["CONNECT","SEND"],"ret":0,"ts":10,"type":"NF","flow":{"rbytes":7,"rops":1,"wbytes":9,"wops":2},"meta":{"schema":4,"tracename":"123"},"net":{"dip":"192.168.1.1","dport":80,"ip":["127.0.0.1","192.168.1.1"],"port":[5000,80],"proto":6,"sip":"127.0.0.1","sport":5000},"node":{"id":"node-1","ip":"10.0.0.1"},"pproc":"#
        ), "{text}");
        let v = encode(&r);
        assert_eq!(v["proc"]["args"], "\"quoted\" a\\b", "no quote trimming");
        assert_eq!(v["proc"]["aname"], serde_json::json!(["cat", "init"]));
        assert_eq!(v["proc"]["apid"], serde_json::json!([42, 1]));
        assert_eq!(v["pproc"]["exe"], "/sbin/init");
        assert_eq!(v["proc"]["tid"], 43);
        assert_eq!(v["proc"]["oid"], oid_hash(42, 100));
        assert!(v.get("policies").is_none() && v.get("tags").is_none());
    }

    #[test]
    fn missing_process_still_valid_json_with_empty_ancestry() {
        let mut r = record(Event::ProcessEvent(ProcessEvent::default()));
        r.process = None;
        r.ancestors = Arc::from(Vec::new());
        let v = encode(&r);
        assert_eq!(v["proc"]["aname"], serde_json::json!([]));
        assert!(v.get("pproc").is_none());
    }

    #[test]
    fn policies_and_tags() {
        let mut r = record(Event::ProcessEvent(ProcessEvent::default()));
        r.policies.push(PolicyMatch {
            id: "r1".into(),
            desc: "d".into(),
            priority: 2,
            tags: Arc::from(vec!["t1".to_string()]),
        });
        r.tags.push("ctx".into());
        let v = encode(&r);
        assert_eq!(
            v["policies"],
            serde_json::json!([{"id":"r1","desc":"d","priority":2}])
        );
        assert_eq!(v["tags"], serde_json::json!(["ctx", "t1"]));
    }

    #[test]
    fn pod_ip_arrays_have_commas() {
        let mut r = record(Event::ProcessEvent(ProcessEvent::default()));
        r.pod = Some(Arc::new(Pod {
            id: "p".into(),
            host_ip: vec![0x0100007f, 0x0200007f],
            services: vec![Service {
                id: "s".into(),
                cluster_ip: vec![1, 2],
                port_list: vec![Port::default(), Port::default()],
                ..Default::default()
            }],
            ..Default::default()
        }));
        let v = encode(&r);
        assert_eq!(
            v["pod"]["hostip"],
            serde_json::json!(["127.0.0.1", "127.0.0.2"])
        );
        assert_eq!(
            v["pod"]["services"][0]["ports"].as_array().unwrap().len(),
            2
        );
    }

    #[test]
    fn escaping_control_characters() {
        let mut out = Vec::new();
        write_str(&mut out, "a\u{1}b\"\n€");
        assert_eq!(String::from_utf8(out).unwrap(), "\"a\\u0001b\\\"\\n€\"");
    }

    #[test]
    fn renamed_file_has_new_fields_between_name_and_oid() {
        let mut r = record(Event::FileEvent(FileEvent {
            ts: 10,
            tid: 43,
            op_flags: crate::sysflow::names::OP_RENAME,
            ..Default::default()
        }));
        let file = |path: &str, b: u8| {
            Arc::new(File {
                oid: [b; 20],
                restype: i32::from(b'f'),
                path: path.into(),
                ..Default::default()
            })
        };
        r.file = Some(file("/tmp/a.txt", 1));
        r.new_file = Some(file("/var/b \"c\".txt", 0xab));
        let mut enc = JsonEncoder::new();
        let mut out = Vec::new();
        enc.encode(&r, &mut out);
        let text = String::from_utf8(out.clone()).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        let f = &v["file"];
        assert_eq!(f["name"], "a.txt");
        assert_eq!(f["newdirectory"], "/var");
        assert_eq!(f["newname"], "b \"c\".txt");
        assert_eq!(f["newpath"], "/var/b \"c\".txt");
        assert_eq!(f["newsymlink"], "");
        assert_eq!(f["newoid"], "ab".repeat(20));
        let at = |k: &str| text.find(k).unwrap();
        assert!(at("\"name\"") < at("\"newdirectory\"") && at("\"newsymlink\"") < at("\"oid\""));
        // Without a new file the same fields are there, empty; the file part is reused.
        r.new_file = None;
        let mut out2 = Vec::new();
        enc.encode(&r, &mut out2);
        let v2: serde_json::Value = serde_json::from_slice(&out2).unwrap();
        assert_eq!(v2["file"]["newpath"], "");
        assert_eq!(v2["file"]["newoid"], "");
        assert_eq!(v2["file"]["name"], "a.txt");
    }

    #[test]
    fn sym_paths() {
        assert_eq!(
            split_sym_path("ffff9ce0->ffff9ce1 /sock/x.sock"),
            ("/sock/x.sock", "ffff9ce0->ffff9ce1")
        );
        assert_eq!(split_sym_path("/a b/c"), ("/a b/c", ""));
    }
}

#[cfg(test)]
mod escape_tests {
    use super::*;

    #[test]
    fn swar_escaping_matches_serde_json_on_every_byte() {
        for b in 0u8..128 {
            for pos in 0..17 {
                let mut s = "abcdefghijklmnopq".to_string().into_bytes();
                s[pos] = b;
                let s = String::from_utf8(s).unwrap();
                let mut out = Vec::new();
                write_str(&mut out, &s);
                let back: String = serde_json::from_slice(&out)
                    .unwrap_or_else(|e| panic!("byte {b} at {pos}: {e}"));
                assert_eq!(back, s);
            }
        }
    }
}
