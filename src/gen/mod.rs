//! Deterministic generator of realistic SysFlow streams: containers (optionally in pods),
//! process trees that clone, exec (MODIFIED process records) and exit, files with flows and
//! events, network flows and events, process flows and Kubernetes events. Used by tests,
//! benchmarks and the bundled example.

use std::collections::VecDeque;

use crate::sysflow::model::*;
use crate::sysflow::names::*;

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenConfig {
    pub seed: u64,
    /// Total records, entities included.
    pub records: u64,
    /// Emit pods, container pod ids and Kubernetes events.
    pub k8s: bool,
    pub containers: usize,
    /// Processes alive at once (bounded so long streams keep realistic churn).
    pub max_live_procs: usize,
    /// Header version to write.
    pub header_version: i64,
    /// Every new file gets a path of its own (a numbered suffix), so a long stream holds
    /// millions of distinct files (the soak benchmark); off, paths come from a small set.
    pub distinct_files: bool,
    /// Extra process churn, in steps per thousand turned into a spawn or an exit (half each):
    /// 0 (default) keeps the usual mix; the soak benchmark raises it so a long stream holds
    /// millions of distinct processes.
    pub churn_permille: u64,
}

impl Default for GenConfig {
    fn default() -> Self {
        GenConfig {
            seed: 1,
            records: 10_000,
            k8s: true,
            containers: 6,
            max_live_procs: 400,
            header_version: 5,
            distinct_files: false,
            churn_permille: 0,
        }
    }
}

/// SplitMix64: small, fast, deterministic.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x5DEE_CE66_D1CE_4E5B)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

const EXES: &[(&str, &str)] = &[
    ("/usr/bin/bash", "-c ./run.sh"),
    ("/usr/bin/python3", "app.py --port 8080"),
    ("/usr/sbin/nginx", "-g daemon off;"),
    ("/usr/bin/curl", "-s https://example.com/api"),
    ("/usr/bin/cat", "/etc/passwd"),
    ("/usr/bin/ls", "-la /tmp"),
    ("/usr/local/bin/node", "server.js"),
    ("/usr/bin/java", "-jar service.jar"),
    ("/usr/bin/grep", "-r TODO ."),
    ("/usr/sbin/sshd", "-D"),
    ("/usr/bin/tar", "xzf backup.tgz"),
    ("/usr/bin/wget", "http://10.0.0.5/payload"),
];
const PATHS: &[&str] = &[
    "/etc/passwd",
    "/etc/hosts",
    "/etc/ld.so.cache",
    "/lib/x86_64-linux-gnu/libc.so.6",
    "/var/log/app.log",
    "/tmp/upload.bin",
    "/home/app/.bashrc",
    "/proc/self/status",
    "/usr/share/zoneinfo/UTC",
    "/var/lib/data/db.sqlite",
    "/dev/null",
    "/root/.ssh/authorized_keys",
];
const USERS: &[(i32, &str)] = &[(0, "root"), (1000, "app"), (33, "www-data"), (999, "svc")];

struct LiveProc {
    oid: Oid,
    /// Distance from the container's root process.
    depth: u32,
    exe: usize,
    container: Option<usize>,
    files: Vec<Foid>,
    uid: usize,
}

/// Iterator over generated records.
pub struct Generator {
    cfg: GenConfig,
    rng: Rng,
    emitted: u64,
    queue: VecDeque<SysFlow>,
    ts: i64,
    next_pid: i64,
    live: Vec<LiveProc>,
    container_ids: Vec<String>,
    started: bool,
    /// Suffix of the next distinct file path.
    next_file: u64,
}

impl Generator {
    pub fn new(cfg: GenConfig) -> Self {
        let rng = Rng::new(cfg.seed);
        Generator {
            cfg,
            rng,
            emitted: 0,
            queue: VecDeque::new(),
            ts: 1_700_000_000_000_000_000,
            next_pid: 100,
            live: Vec::new(),
            container_ids: Vec::new(),
            started: false,
            next_file: 0,
        }
    }

    fn tick(&mut self) -> i64 {
        self.ts += 1 + self.rng.below(50_000) as i64;
        self.ts
    }

    fn foid(&mut self, path: &str, container: Option<usize>) -> Foid {
        let mut f = [0u8; 20];
        let mut h = xxhash_rust::xxh64::xxh64(path.as_bytes(), container.unwrap_or(99) as u64);
        for chunk in f.chunks_mut(8) {
            let b = h.to_le_bytes();
            chunk.copy_from_slice(&b[..chunk.len()]);
            h = h.rotate_left(17).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
        f
    }

    /// Queues a File record for `path` (in container `c`) and returns its id.
    fn file_record(&mut self, path: &str, c: Option<usize>, ts: i64) -> Foid {
        let unique;
        let path = if self.cfg.distinct_files {
            self.next_file += 1;
            unique = format!("{path}.{}", self.next_file);
            unique.as_str()
        } else {
            path
        };
        let foid = self.foid(path, c);
        self.queue.push_back(SysFlow::File(Box::new(File {
            state: ObjectState::Created,
            oid: foid,
            ts,
            restype: b'f' as i32,
            path: path.into(),
            container_id: c.map(|i| self.container_ids[i].clone()),
            parts: Default::default(),
        })));
        foid
    }

    fn start(&mut self) {
        self.started = true;
        let filename = format!("/mnt/data/sfgen-{}", self.cfg.seed);
        self.queue.push_back(SysFlow::Header(Box::new(Header {
            version: self.cfg.header_version,
            exporter: format!("sfgen-node-{}", self.cfg.seed % 100),
            ip: "10.1.2.3".into(),
            filename,
        })));
        for c in 0..self.cfg.containers {
            let id = format!("{:012x}", self.rng.next_u64() & 0xffff_ffff_ffff);
            let pod_id = if self.cfg.k8s && c % 2 == 0 {
                let pid = format!("pod-{c}-{:08x}", self.rng.next_u64() as u32);
                self.queue.push_back(SysFlow::Pod(Box::new(Pod {
                    ts: self.ts,
                    id: pid.clone(),
                    name: format!("web-{c}"),
                    node_name: "worker-1".into(),
                    host_ip: vec![0x0302010a],
                    internal_ip: vec![0x0000f40a | (((c as i64) + 2) << 24)],
                    namespace: "default".into(),
                    restart_count: (c % 3) as i64,
                    labels: vec![("app".into(), format!("web-{c}"))],
                    selectors: vec![("app".into(), format!("web-{c}"))],
                    services: vec![Service {
                        name: format!("web-{c}-svc"),
                        id: format!("svc-{c}"),
                        namespace: "default".into(),
                        port_list: vec![Port {
                            port: 80,
                            target_port: 8080,
                            node_port: 30080 + c as i32,
                            proto: "TCP".into(),
                        }],
                        cluster_ip: vec![0x0a00600a],
                    }],
                })));
                Some(pid)
            } else {
                None
            };
            self.queue.push_back(SysFlow::Container(Box::new(Container {
                id: id.clone(),
                name: format!("container-{c}"),
                image: format!("registry.local/app-{c}:1.{c}"),
                imageid: format!("sha256:{:016x}", self.rng.next_u64()),
                ctype: if c % 3 == 0 { 6 } else { 0 },
                privileged: c == 1,
                pod_id,
            })));
            self.container_ids.push(id);
        }
        // A root process per container plus one on the host.
        for c in (0..self.cfg.containers).map(Some).chain([None]) {
            let ts = self.tick();
            let oid = Oid {
                create_ts: ts,
                hpid: self.next_pid,
            };
            self.next_pid += 1;
            self.queue.push_back(SysFlow::Process(Box::new(Process {
                state: ObjectState::Reup,
                oid,
                poid: None,
                ts,
                exe: "/sbin/init".into(),
                exe_args: String::new(),
                uid: 0,
                user_name: "root".into(),
                gid: 0,
                group_name: "root".into(),
                tty: false,
                container_id: c.map(|i| self.container_ids[i].clone()),
                entry: true,
                cwd: "/".into(),
                env: vec!["PATH=/usr/bin:/bin".into()],
                cmdline: Default::default(),
            })));
            self.live.push(LiveProc {
                oid,
                depth: 0,
                exe: 9,
                container: c,
                files: Vec::new(),
                uid: 0,
            });
        }
    }

    fn process_record(
        &self,
        p: &LiveProc,
        parent: Option<Oid>,
        state: ObjectState,
        ts: i64,
    ) -> SysFlow {
        let (exe, args) = EXES[p.exe];
        let (uid, user) = USERS[p.uid];
        SysFlow::Process(Box::new(Process {
            state,
            oid: p.oid,
            poid: parent,
            ts,
            exe: exe.into(),
            exe_args: args.into(),
            uid,
            user_name: user.into(),
            gid: uid,
            group_name: user.into(),
            tty: p.uid == 0,
            container_id: p.container.map(|i| self.container_ids[i].clone()),
            entry: false,
            cwd: "/app".into(),
            env: vec!["HOME=/root".into(), format!("HOSTNAME=h{}", p.oid.hpid % 7)],
            cmdline: Default::default(),
        }))
    }

    /// Produces the next batch of records into the queue.
    fn step(&mut self) {
        let mut r = self.rng.below(1000);
        if self.cfg.churn_permille > 0 && self.rng.below(1000) < self.cfg.churn_permille {
            // 0: the spawn arm; 30: the exit arm.
            r = if self.rng.chance(50) { 0 } else { 30 };
        }
        let li = self.rng.below(self.live.len() as u64) as usize;
        let ts = self.tick();
        let tid = self.live[li].oid.hpid;
        match r {
            // Clone + exec a child (P CREATED, PE CLONE, P MODIFIED, PE EXEC).
            0..=29 if self.live.len() < self.cfg.max_live_procs => {
                // Real trees are shallow: deep parents hand the fork to their container root.
                let li = if self.live[li].depth >= 5 {
                    let c = self.live[li].container;
                    self.live
                        .iter()
                        .position(|p| p.depth == 0 && p.container == c)
                        .unwrap_or(li)
                } else {
                    li
                };
                let parent = self.live[li].oid;
                let child = LiveProc {
                    depth: self.live[li].depth + 1,
                    oid: Oid {
                        create_ts: ts,
                        hpid: self.next_pid,
                    },
                    exe: self.live[li].exe,
                    container: self.live[li].container,
                    files: Vec::new(),
                    uid: self.live[li].uid,
                };
                self.next_pid += 1;
                self.queue.push_back(self.process_record(
                    &child,
                    Some(parent),
                    ObjectState::Created,
                    ts,
                ));
                self.queue.push_back(SysFlow::ProcessEvent(ProcessEvent {
                    proc_oid: child.oid,
                    ts,
                    tid: child.oid.hpid,
                    op_flags: OP_CLONE,
                    args: vec![],
                    ret: 0,
                }));
                let mut child = child;
                child.exe = self.rng.below(EXES.len() as u64) as usize;
                child.uid = self.rng.below(USERS.len() as u64) as usize;
                let ts2 = self.tick();
                self.queue.push_back(self.process_record(
                    &child,
                    Some(parent),
                    ObjectState::Modified,
                    ts2,
                ));
                let args: Vec<String> = EXES[child.exe].1.split(' ').map(String::from).collect();
                self.queue.push_back(SysFlow::ProcessEvent(ProcessEvent {
                    proc_oid: child.oid,
                    ts: ts2,
                    tid: child.oid.hpid,
                    op_flags: OP_EXEC,
                    args,
                    ret: 0,
                }));
                self.live.push(child);
            }
            // Exit (never the roots, which are the first entries).
            30..=49 if li > self.cfg.containers && self.live.len() > self.cfg.containers + 2 => {
                let p = self.live.swap_remove(li);
                self.queue.push_back(SysFlow::ProcessEvent(ProcessEvent {
                    proc_oid: p.oid,
                    ts,
                    tid: p.oid.hpid,
                    op_flags: OP_EXIT,
                    args: vec![],
                    ret: self.rng.below(3) as i32,
                }));
            }
            // Setuid event.
            50..=54 => {
                let p = &self.live[li];
                self.queue.push_back(SysFlow::ProcessEvent(ProcessEvent {
                    proc_oid: p.oid,
                    ts,
                    tid,
                    op_flags: OP_SETUID,
                    args: vec!["0".into()],
                    ret: 0,
                }));
            }
            // File events (mkdir/unlink/rename with a new file).
            55..=84 => {
                let path = *self.rng.pick(PATHS);
                let c = self.live[li].container;
                let foid = self.file_record(path, c, ts);
                let (op, new) = match self.rng.below(3) {
                    0 => (OP_UNLINK, None),
                    1 => (OP_MKDIR, None),
                    _ => {
                        let nf = self.file_record(&format!("{path}.1"), c, ts);
                        (OP_RENAME, Some(nf))
                    }
                };
                self.queue.push_back(SysFlow::FileEvent(FileEvent {
                    proc_oid: self.live[li].oid,
                    ts,
                    tid,
                    op_flags: op,
                    file_oid: foid,
                    ret: 0,
                    new_file_oid: new,
                }));
            }
            // Network flows.
            85..=284 => {
                let dport = *self.rng.pick(&[80, 443, 53, 8080, 5432, 22]);
                let sport = 32768 + self.rng.below(28000) as i32;
                let r2 = self.rng.below(4);
                self.queue.push_back(SysFlow::NetworkFlow(NetworkFlow {
                    proc_oid: self.live[li].oid,
                    ts,
                    tid,
                    op_flags: OP_CONNECT
                        | OP_WRITE_SEND
                        | OP_READ_RECV
                        | if r2 == 0 { OP_CLOSE } else { 0 },
                    end_ts: ts + 1000 + self.rng.below(1_000_000) as i64,
                    sip: 0x0a00f40a,
                    sport,
                    dip: 0x0000000a | ((1 + self.rng.below(120) as i32) << 24),
                    dport,
                    proto: if dport == 53 { 17 } else { 6 },
                    fd: 3 + self.rng.below(60) as i32,
                    num_rrecv_ops: self.rng.below(20) as i64,
                    num_wsend_ops: self.rng.below(20) as i64,
                    num_rrecv_bytes: self.rng.below(1 << 20) as i64,
                    num_wsend_bytes: self.rng.below(1 << 16) as i64,
                }));
            }
            // Network events.
            285..=304 => {
                self.queue.push_back(SysFlow::NetworkEvent(NetworkEvent {
                    proc_oid: self.live[li].oid,
                    ts,
                    tid,
                    op_flags: if self.rng.chance(50) {
                        OP_CONNECT
                    } else {
                        OP_ACCEPT
                    },
                    sip: 0x0a00f40a,
                    sport: 40000 + self.rng.below(1000) as i32,
                    dip: 0x0100000a,
                    dport: 443,
                    proto: 6,
                    ret: 0,
                }));
            }
            // Process flows.
            305..=319 => {
                self.queue.push_back(SysFlow::ProcessFlow(ProcessFlow {
                    proc_oid: self.live[li].oid,
                    ts,
                    num_threads_cloned: self.rng.below(8) as i64,
                    op_flags: OP_CLONE | OP_EXIT,
                    end_ts: ts + 500_000,
                    num_threads_exited: self.rng.below(8) as i64,
                    num_clone_errors: 0,
                }));
            }
            // Kubernetes events.
            320..=324 if self.cfg.k8s => {
                self.queue.push_back(SysFlow::K8sEvent(K8sEvent {
                    kind: 2,
                    action: self.rng.below(3) as i32,
                    ts,
                    message: format!(
                        "{{\"kind\":\"Pod\",\"name\":\"web-{}\"}}",
                        self.rng.below(6)
                    ),
                }));
            }
            // File flows: most of a real trace.
            _ => {
                let c = self.live[li].container;
                let reuse = !self.live[li].files.is_empty() && self.rng.chance(85);
                let foid = if reuse {
                    let files = &self.live[li].files;
                    files[self.rng.below(files.len() as u64) as usize]
                } else {
                    let path = *self.rng.pick(PATHS);
                    let foid = self.file_record(path, c, ts);
                    let files = &mut self.live[li].files;
                    if files.len() < 8 {
                        files.push(foid);
                    }
                    foid
                };
                let write = self.rng.chance(30);
                self.queue.push_back(SysFlow::FileFlow(FileFlow {
                    proc_oid: self.live[li].oid,
                    ts,
                    tid,
                    op_flags: OP_OPEN | OP_CLOSE | if write { OP_WRITE_SEND } else { OP_READ_RECV },
                    open_flags: if write { O_WRONLY | O_CREAT } else { O_RDONLY } | O_CLOEXEC,
                    end_ts: ts + 2000,
                    file_oid: foid,
                    fd: 3 + self.rng.below(30) as i32,
                    num_rrecv_ops: if write {
                        0
                    } else {
                        1 + self.rng.below(10) as i64
                    },
                    num_wsend_ops: if write {
                        1 + self.rng.below(10) as i64
                    } else {
                        0
                    },
                    num_rrecv_bytes: if write {
                        0
                    } else {
                        self.rng.below(65536) as i64
                    },
                    num_wsend_bytes: if write {
                        self.rng.below(65536) as i64
                    } else {
                        0
                    },
                }));
            }
        }
    }
}

impl Iterator for Generator {
    type Item = SysFlow;

    fn next(&mut self) -> Option<SysFlow> {
        if self.emitted >= self.cfg.records {
            return None;
        }
        if !self.started {
            self.start();
        }
        while self.queue.is_empty() {
            self.step();
        }
        self.emitted += 1;
        self.queue.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::EntityCache;

    #[test]
    fn deterministic_and_complete() {
        let a: Vec<SysFlow> = Generator::new(GenConfig {
            seed: 7,
            records: 5000,
            ..Default::default()
        })
        .collect();
        let b: Vec<SysFlow> = Generator::new(GenConfig {
            seed: 7,
            records: 5000,
            ..Default::default()
        })
        .collect();
        assert_eq!(a.len(), 5000);
        assert_eq!(a, b);
        let mut kinds = std::collections::BTreeSet::new();
        for r in &a {
            kinds.insert(r.kind());
        }
        assert_eq!(kinds.len(), 12, "every record type appears: {kinds:?}");
        // Every event resolves its process and file in the cache.
        let mut cache = EntityCache::default();
        for r in a {
            cache.apply(r);
        }
        let s = cache.stats();
        assert_eq!((s.missing_process, s.missing_file), (0, 0), "{s:?}");
    }
}
