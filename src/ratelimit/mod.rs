//! The rate limiter (`filter.enabled: on`, `filter.maxage`): upstream's flattener filter.
//! Records with the same semantic key (process exe, args, uid, gid, op flags, tty; plus the
//! source and destination address, destination port and protocol of a network flow, or the
//! file path of a file flow or event) pass once, then are dropped until `maxage` after the
//! key was **first** seen (a fixed window per key, wall clock, as upstream); the next one
//! passes and starts a new window. Kubernetes events are never limited (upstream sends them
//! around the filter).
//!
//! Unlike upstream's map, the table is bounded ([`RateLimiter::with_capacity`]): when full,
//! the oldest key is forgotten early, so its next record passes (more records, never fewer).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use rustc_hash::FxHashMap;
use xxhash_rust::xxh64::Xxh64;

use crate::record::{Event, Record};

/// Upstream's default window.
pub const DEFAULT_MAXAGE: Duration = Duration::from_secs(24 * 3600);

/// Keys remembered at most (about 40 bytes each).
pub const DEFAULT_CAPACITY: usize = 1 << 20;

/// A key's window: when it was first seen.
pub struct RateLimiter {
    maxage: Duration,
    capacity: usize,
    seen: FxHashMap<u64, Instant>,
    order: VecDeque<(u64, Instant)>,
    /// Records dropped so far.
    pub dropped: u64,
    /// Keys forgotten early because the table was full.
    pub forgotten: u64,
}

/// The key upstream's `semanticHash` is computed from (the same fields, in the same order).
pub fn semantic_key(rec: &Record) -> Option<u64> {
    let mut h = Xxh64::new(0);
    let (exe, args, uid, gid, tty) = match &rec.process {
        Some(p) => (
            p.exe.as_str(),
            p.exe_args.as_str(),
            i64::from(p.uid),
            i64::from(p.gid),
            i64::from(p.tty),
        ),
        None => ("", "", 0, 0, 0),
    };
    h.update(exe.as_bytes());
    h.update(args.as_bytes());
    for v in [uid, gid, i64::from(rec.event.op_flags()), tty] {
        h.update(&v.to_le_bytes());
    }
    match &rec.event {
        Event::K8sEvent(_) => return None,
        Event::NetworkFlow(f) => net_key(&mut h, f.sip, f.dip, f.dport, f.proto),
        Event::NetworkEvent(f) => net_key(&mut h, f.sip, f.dip, f.dport, f.proto),
        Event::FileFlow(_) | Event::FileEvent(_) => {
            if let Some(f) = &rec.file {
                h.update(f.path.as_bytes());
            }
        }
        Event::ProcessEvent(_) | Event::ProcessFlow(_) => {}
    }
    Some(h.digest())
}

/// Network records add their addresses, destination port and protocol (not the source port).
fn net_key(h: &mut Xxh64, sip: i32, dip: i32, dport: i32, proto: i32) {
    for v in [sip, dip, dport, proto] {
        h.update(&i64::from(v).to_le_bytes());
    }
}

impl RateLimiter {
    pub fn new(maxage: Duration) -> Self {
        Self::with_capacity(maxage, DEFAULT_CAPACITY)
    }

    pub fn with_capacity(maxage: Duration, capacity: usize) -> Self {
        RateLimiter {
            maxage,
            capacity: capacity.max(1),
            seen: FxHashMap::default(),
            order: VecDeque::new(),
            dropped: 0,
            forgotten: 0,
        }
    }

    /// Whether `rec` passes at time `now` (and records its key).
    pub fn admit_at(&mut self, rec: &Record, now: Instant) -> bool {
        let Some(key) = semantic_key(rec) else {
            return true;
        };
        // Forget the keys whose window ended.
        while let Some(&(k, first)) = self.order.front() {
            if now.saturating_duration_since(first) < self.maxage {
                break;
            }
            self.order.pop_front();
            if self.seen.get(&k) == Some(&first) {
                self.seen.remove(&k);
            }
        }
        if self.seen.contains_key(&key) {
            self.dropped += 1;
            return false;
        }
        if self.seen.len() >= self.capacity {
            while let Some((k, first)) = self.order.pop_front() {
                if self.seen.get(&k) == Some(&first) {
                    self.seen.remove(&k);
                    self.forgotten += 1;
                    break;
                }
            }
        }
        self.seen.insert(key, now);
        self.order.push_back((key, now));
        true
    }

    /// Keeps the records that pass now.
    pub fn filter(&mut self, recs: &mut Vec<Record>) {
        let now = Instant::now();
        recs.retain(|r| self.admit_at(r, now));
    }

    /// Keys remembered.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sysflow::model::*;
    use std::sync::Arc;

    fn rec(exe: &str, event: Event, path: &str) -> Record {
        let mut r = Record::new(event, Arc::new(Header::default()), Arc::from(Vec::new()));
        r.process = Some(Arc::new(Process {
            exe: exe.into(),
            exe_args: "-x".into(),
            uid: 1,
            ..Default::default()
        }));
        r.file = Some(Arc::new(File {
            path: path.into(),
            ..Default::default()
        }));
        r
    }

    fn ff(exe: &str, path: &str) -> Record {
        rec(
            exe,
            Event::FileFlow(FileFlow {
                op_flags: 1 << 7,
                ..Default::default()
            }),
            path,
        )
    }

    #[test]
    fn a_key_passes_once_per_window_from_its_first_sighting() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut l = RateLimiter::new(Duration::from_secs(10));
        assert!(l.admit_at(&ff("/bin/cat", "/etc/passwd"), t0));
        assert!(!l.admit_at(&ff("/bin/cat", "/etc/passwd"), t0 + s));
        assert!(
            l.admit_at(&ff("/bin/cat", "/etc/shadow"), t0 + s),
            "other path"
        );
        assert!(
            l.admit_at(&ff("/bin/ls", "/etc/passwd"), t0 + s),
            "other exe"
        );
        // Seen again inside the window: still the first sighting's window (not sliding).
        assert!(!l.admit_at(&ff("/bin/cat", "/etc/passwd"), t0 + 9 * s));
        assert!(l.admit_at(&ff("/bin/cat", "/etc/passwd"), t0 + 10 * s));
        assert!(!l.admit_at(&ff("/bin/cat", "/etc/passwd"), t0 + 11 * s));
        assert_eq!(l.dropped, 3);
        // Kubernetes events are never limited.
        let ke = rec("", Event::K8sEvent(K8sEvent::default()), "");
        assert!(l.admit_at(&ke, t0) && l.admit_at(&ke, t0));
    }

    #[test]
    fn network_flows_key_on_addresses_but_not_the_source_port() {
        let t0 = Instant::now();
        let nf = |sport: i32, dport: i32| {
            rec(
                "/usr/bin/curl",
                Event::NetworkFlow(NetworkFlow {
                    sip: 1,
                    dip: 2,
                    sport,
                    dport,
                    proto: 6,
                    ..Default::default()
                }),
                "",
            )
        };
        let mut l = RateLimiter::new(Duration::from_secs(10));
        assert!(l.admit_at(&nf(40000, 443), t0));
        assert!(!l.admit_at(&nf(40001, 443), t0), "sport is not in the key");
        assert!(l.admit_at(&nf(40001, 80), t0));
    }

    #[test]
    fn the_table_is_bounded_and_forgets_the_oldest_key() {
        let t0 = Instant::now();
        let mut l = RateLimiter::with_capacity(Duration::from_secs(10), 2);
        assert!(l.admit_at(&ff("/a", "/1"), t0));
        assert!(l.admit_at(&ff("/a", "/2"), t0));
        assert!(l.admit_at(&ff("/a", "/3"), t0));
        assert_eq!((l.len(), l.forgotten), (2, 1));
        assert!(
            l.admit_at(&ff("/a", "/1"), t0),
            "forgotten early: passes again"
        );
        assert!(!l.admit_at(&ff("/a", "/3"), t0));
    }
}
