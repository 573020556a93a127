//! The disk queue (`queue.type: disk`): encoded records between an exporter node and its
//! delivery worker, kept in segment files until the target acknowledged them, so what the
//! agent accepted survives its own crash and a target outage longer than memory absorbs.
//!
//! Why our own and not a crate: the persistent queues on crates.io (e.g. `yaque`, `queue-file`)
//! delete a record when it is *read*, or keep one file with no per-record checksum; here a
//! record leaves the queue only when the exporter's target acknowledged it, a torn tail and a
//! damaged stretch must be told apart and reported with positions, and a record carries its
//! Kafka key and Elasticsearch document id through a restart. The format (`frame.rs`) is
//! small; CRC32C comes from the `crc32c` crate (hardware instructions where present).
//!
//! Layout of the directory: `lock` (held with `flock` while an agent uses the queue; holds its
//! pid), `ack` (the first undelivered record: segment and offset, with a CRC), and segments
//! `<id>.seg`, appended by the writer and deleted once every record in them was acknowledged.
//! A damaged segment found at start is kept as `<id>.seg.damaged` for inspection.
//!
//! Writer and reader share one lock-protected state; the writer appends each payload with one
//! `pwrite` (a failed or short write is cut back, so no torn record is left behind), the
//! reader reads frames back in windows and acknowledges whole batches.

pub mod frame;
pub mod inspect;
mod lock;
pub mod recover;
pub mod scan;

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::exporter::delivery::Payload;
use recover::{segment_path, sync_dir, SegInfo};
use scan::{SegmentScan, Step};

/// When appended records are forced to stable storage (`queue.sync`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncPolicy {
    /// `fdatasync` after every appended batch and every acknowledgement.
    Always,
    /// At most this long after a record was appended.
    Every(Duration),
    /// Left to the kernel's writeback.
    Never,
}

/// A disk queue's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueConfig {
    pub path: PathBuf,
    /// Disk the segments may take (`queue.maxbytes`).
    pub maxbytes: u64,
    pub sync: SyncPolicy,
}

impl QueueConfig {
    pub const DEFAULT_MAXBYTES: u64 = 1 << 30;
    pub const DEFAULT_SYNC: SyncPolicy = SyncPolicy::Every(Duration::from_secs(1));

    /// Bytes after which the writer starts a new segment: small enough that acknowledged
    /// records free disk in steps well under the cap, large enough to keep files few.
    pub fn segment_bytes(&self) -> u64 {
        (self.maxbytes / 8).clamp(64 << 10, 32 << 20)
    }
}

/// Why a queue could not be used.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("queue directory {path}: in use by another agent or exporter{}", holder.map(|p| format!(" (pid {p})")).unwrap_or_default())]
    Locked { path: PathBuf, holder: Option<u32> },
    #[error("{path}: {op}: {source}")]
    Io {
        path: PathBuf,
        op: &'static str,
        source: io::Error,
    },
    #[error("{path}: queue segment format version {version}; this build reads version {} only (refused rather than misread; deliver it with the build that wrote it)", frame::VERSION)]
    Version { path: PathBuf, version: u8 },
    #[error("{path}: not a queue segment (no SFQUEUE header)")]
    NotASegment { path: PathBuf },
}

impl QueueError {
    pub fn io(path: &Path, op: &'static str, source: io::Error) -> Self {
        QueueError::Io {
            path: path.to_path_buf(),
            op,
            source,
        }
    }
}

/// What a disk queue reports (the metrics endpoint, the end-of-run summary).
#[derive(Debug, Default)]
pub struct QueueStats {
    pub path: String,
    /// Bytes the segment files take.
    pub bytes: AtomicU64,
    /// Records appended and not yet acknowledged.
    pub records: AtomicU64,
    pub segments: AtomicU64,
    /// Append time (Unix ms) of the oldest unacknowledged record; 0 when empty.
    pub oldest_ms: AtomicU64,
    /// Records found on disk at start.
    pub recovered: AtomicU64,
    pub torn: AtomicU64,
    pub damaged: AtomicU64,
    /// Appends refused because the queue was full (`drop_newest`) or the disk failed.
    pub full_events: AtomicU64,
}

impl QueueStats {
    /// Age of the oldest unacknowledged record.
    pub fn oldest_age(&self) -> Duration {
        match self.oldest_ms.load(Ordering::Relaxed) {
            0 => Duration::ZERO,
            ms => Duration::from_millis(now_ms().saturating_sub(ms)),
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

struct State {
    /// Segment files, oldest first; the last is the one appended to.
    segs: VecDeque<SegInfo>,
    /// The file appended to (the last of `segs`), once this run appended.
    writer: Option<Arc<File>>,
    next_id: u64,
    ack: (u64, u64),
    bytes: u64,
    records: u64,
    writer_closed: bool,
    reader_closed: bool,
    /// Appended (or acknowledged) data not yet synced.
    dirty: bool,
    last_sync: Instant,
    /// In a full episode (logged once when it starts).
    full: bool,
    /// The latest appended payloads, for a reader that has caught up.
    hot: VecDeque<Hot>,
    /// Segments the writer has left since the last sync, not yet synced.
    unsynced: Vec<(u64, Arc<File>)>,
}

/// An appended payload kept in memory: a reader whose position is its start takes it as is
/// instead of reading its frames back from the file (the data is on disk either way; this
/// only saves the copy back, the parse and the checksum on the common path, where the worker
/// keeps up with the node).
struct Hot {
    /// Append time (Unix ms).
    ts: u64,
    seg: u64,
    start: u64,
    end: u64,
    payload: Payload,
}

/// Payloads kept for the reader (about 512 KiB each).
const HOT_MAX: usize = 4;

struct Shared {
    dir: PathBuf,
    cfg: QueueConfig,
    state: Mutex<State>,
    /// Signalled when records are appended or the writer closes.
    appended: Condvar,
    /// Signalled when disk is freed or the reader closes.
    freed: Condvar,
    stats: Arc<QueueStats>,
    ack_file: File,
    _lock: File,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn publish(&self, s: &State) {
        self.stats.bytes.store(s.bytes, Ordering::Relaxed);
        self.stats.records.store(s.records, Ordering::Relaxed);
        self.stats
            .segments
            .store(s.segs.len() as u64, Ordering::Relaxed);
        if s.records == 0 {
            self.stats.oldest_ms.store(0, Ordering::Relaxed);
        }
    }

    /// Syncs the segment appended to and the ack file, if due under the policy.
    fn sync_if_due(&self, force: bool) {
        let (file, older, due) = {
            let mut s = self.lock();
            let due = s.dirty
                && match self.cfg.sync {
                    SyncPolicy::Always => true,
                    SyncPolicy::Every(d) => force || s.last_sync.elapsed() >= d,
                    SyncPolicy::Never => false,
                };
            let mut older = Vec::new();
            if due {
                s.dirty = false;
                s.last_sync = Instant::now();
                let acked = s.ack.0;
                older = std::mem::take(&mut s.unsynced);
                older.retain(|(id, _)| *id >= acked);
            }
            (s.writer.clone(), older, due)
        };
        if due {
            for (_, f) in older {
                if let Err(e) = f.sync_data() {
                    tracing::error!(queue = %self.dir.display(), "queue sync failed: {e}");
                }
            }
            if let Some(f) = file {
                if let Err(e) = f.sync_data() {
                    tracing::error!(queue = %self.dir.display(), "queue sync failed: {e}");
                }
            }
            let _ = self.ack_file.sync_data();
        }
    }
}

/// Writes frames (head, record, head, record, ...) at `at` with `pwritev`, straight from the
/// payload: one copy, into the page cache, instead of two. A short write goes on where it
/// stopped.
fn write_frames(
    f: &File,
    at: u64,
    heads: &[u8],
    spans: &[(usize, usize, usize, usize)],
    records: &[u8],
) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // Two slices per record, under the kernel's IOV_MAX (1024).
    const PER_CALL: usize = 500;
    let mut pos = at;
    for chunk in spans.chunks(PER_CALL) {
        let mut iov: Vec<libc::iovec> = Vec::with_capacity(chunk.len() * 2);
        let mut total = 0usize;
        for &(h0, h1, r0, rl) in chunk {
            iov.push(libc::iovec {
                iov_base: heads[h0..h1].as_ptr() as *mut libc::c_void,
                iov_len: h1 - h0,
            });
            iov.push(libc::iovec {
                iov_base: records[r0..r0 + rl].as_ptr() as *mut libc::c_void,
                iov_len: rl,
            });
            total += h1 - h0 + rl;
        }
        // SAFETY: every iovec points into `heads` or `records`, both borrowed for the call
        // and not written meanwhile; the kernel only reads them.
        let w = unsafe {
            libc::pwritev(
                f.as_raw_fd(),
                iov.as_ptr(),
                iov.len() as libc::c_int,
                pos as libc::off_t,
            )
        };
        if w < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                // Nothing written: this chunk again, the simple way.
                write_rest(f, pos, 0, chunk, heads, records)?;
                pos += total as u64;
                continue;
            }
            return Err(e);
        }
        let w = w as usize;
        if w < total {
            write_rest(f, pos, w, chunk, heads, records)?;
        }
        pos += total as u64;
    }
    Ok(())
}

/// The bytes of `chunk` after its first `done`, written with `write_all_at`.
fn write_rest(
    f: &File,
    at: u64,
    done: usize,
    chunk: &[(usize, usize, usize, usize)],
    heads: &[u8],
    records: &[u8],
) -> io::Result<()> {
    let mut rest = Vec::new();
    for &(h0, h1, r0, rl) in chunk {
        rest.extend_from_slice(&heads[h0..h1]);
        rest.extend_from_slice(&records[r0..r0 + rl]);
    }
    f.write_all_at(&rest[done..], at + done as u64)
}

/// `queue.sync: <duration>`: a thread of its own syncs what was appended at that interval,
/// so neither the node appending nor the worker delivering waits for the disk. It ends with
/// the queue.
fn spawn_syncer(q: std::sync::Weak<Shared>, every: Duration) {
    let r = std::thread::Builder::new()
        .name("queue sync".into())
        .spawn(move || loop {
            std::thread::sleep(every);
            match q.upgrade() {
                Some(q) => q.sync_if_due(false),
                None => return,
            }
        });
    if let Err(e) = r {
        tracing::error!(
            "could not start the disk queue's sync thread (records are synced only at stop): {e}"
        );
    }
}

/// An open disk queue: the writer for the exporter node, the reader for the delivery worker.
pub struct DiskQueue {
    pub writer: DiskWriter,
    pub reader: DiskReader,
    pub stats: Arc<QueueStats>,
}

/// The exporter node's side.
pub struct DiskWriter {
    q: Arc<Shared>,
    /// Frame heads of the payload being appended.
    buf: Vec<u8>,
    /// Per record: its head's span in `buf`, its span in the payload.
    heads: Vec<(usize, usize, usize, usize)>,
}

/// The delivery worker's side.
pub struct DiskReader {
    q: Arc<Shared>,
    /// Where the next record is read: segment id and offset.
    read: (u64, u64),
    /// The open segment `read.0`.
    scan: Option<SegmentScan>,
    /// Records read since the last acknowledgement.
    unacked: u64,
    /// A buffer for the next read from the files.
    spare: Option<Vec<u8>>,
}

/// What became of an append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    Yes,
    /// Refused: the queue is full or the disk failed, and `when_full` is `drop_newest`.
    Dropped,
    /// Refused: the queue is full and the worker stopped reading (shutdown).
    Stopped,
}

impl DiskQueue {
    /// Opens (creating if needed) and locks the directory, then recovers what the previous
    /// run left: its records are read first.
    pub fn open(cfg: &QueueConfig) -> Result<DiskQueue, QueueError> {
        let dir = cfg.path.clone();
        fs::create_dir_all(&dir).map_err(|e| QueueError::io(&dir, "create", e))?;
        let lock_path = dir.join("lock");
        let mut lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(|e| QueueError::io(&lock_path, "open", e))?;
        match lock::try_lock(&lock, true) {
            Ok(true) => {}
            Ok(false) => {
                return Err(QueueError::Locked {
                    path: dir.clone(),
                    holder: fs::read_to_string(&lock_path)
                        .ok()
                        .and_then(|s| s.trim().parse().ok()),
                })
            }
            Err(e) => return Err(QueueError::io(&lock_path, "lock", e)),
        }
        let _ = lock.set_len(0);
        let _ = lock.write_all_at(format!("{}\n", std::process::id()).as_bytes(), 0);
        let _ = lock.flush();

        let found = recover::recover(&dir)?;
        for f in &found.findings {
            tracing::warn!(queue = %dir.display(), "{f}");
        }
        if found.records > 0 {
            tracing::info!(queue = %dir.display(), records = found.records, segments = found.segments.len(), "undelivered records from the previous run are delivered first");
        }
        let ack_path = recover::ack_path(&dir);
        let ack_file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&ack_path)
            .map_err(|e| QueueError::io(&ack_path, "open", e))?;
        ack_file
            .write_all_at(&recover::encode_ack(found.ack.0, found.ack.1), 0)
            .map_err(|e| QueueError::io(&ack_path, "write", e))?;
        let stats = Arc::new(QueueStats {
            path: dir.display().to_string(),
            ..Default::default()
        });
        stats.recovered.store(found.records, Ordering::Relaxed);
        stats.torn.store(found.torn, Ordering::Relaxed);
        stats.damaged.store(found.damaged, Ordering::Relaxed);
        stats.oldest_ms.store(found.oldest_ms, Ordering::Relaxed);
        let next_id = found.segments.last().map(|s| s.id + 1).unwrap_or(1);
        let bytes = found.segments.iter().map(|s| s.len).sum();
        let state = State {
            segs: found.segments.into_iter().collect(),
            writer: None,
            next_id,
            ack: found.ack,
            bytes,
            records: found.records,
            writer_closed: false,
            reader_closed: false,
            dirty: false,
            last_sync: Instant::now(),
            full: false,
            hot: VecDeque::new(),
            unsynced: Vec::new(),
        };
        let q = Arc::new(Shared {
            dir,
            cfg: cfg.clone(),
            state: Mutex::new(state),
            appended: Condvar::new(),
            freed: Condvar::new(),
            stats: stats.clone(),
            ack_file,
            _lock: lock,
        });
        q.publish(&q.lock());
        if let SyncPolicy::Every(d) = cfg.sync {
            spawn_syncer(Arc::downgrade(&q), d);
        }
        Ok(DiskQueue {
            writer: DiskWriter {
                q: q.clone(),
                buf: Vec::new(),
                heads: Vec::new(),
            },
            reader: DiskReader {
                read: found.ack,
                q,
                scan: None,
                unacked: 0,
                spare: None,
            },
            stats,
        })
    }
}

impl DiskWriter {
    /// Appends a payload's records (keys and ids with them). With `block`, a full queue (or a
    /// failing disk) waits for room; otherwise the records are refused, for the caller to
    /// count. An appended payload is also kept in memory for the reader (see [`Hot`]); a
    /// refused one is handed back.
    pub fn append(&mut self, p: Payload, block: bool) -> (Appended, Option<Payload>) {
        if p.records() == 0 {
            return (Appended::Yes, Some(p));
        }
        let ts = now_ms();
        // Frame heads here; the records are written from the payload itself (`pwritev`).
        self.buf.clear();
        self.heads.clear();
        let mut n = 0u64;
        for (i, rec) in p.iter().enumerate() {
            let at = self.buf.len();
            frame::encode_head(
                &mut self.buf,
                ts,
                p.keys.get(i).copied(),
                p.ids.get(i).copied(),
                !p.is_text(),
                rec,
            );
            let off = rec.as_ptr() as usize - p.bytes.as_ptr() as usize;
            self.heads.push((at, self.buf.len(), off, rec.len()));
            n += (self.buf.len() - at + rec.len()) as u64;
        }
        let q = self.q.clone();
        let mut s = q.lock();
        loop {
            if s.reader_closed && s.bytes > 0 && s.bytes + n > q.cfg.maxbytes {
                return (Appended::Stopped, Some(p));
            }
            let room = s.bytes == 0 || s.bytes + n <= q.cfg.maxbytes;
            let wrote = if room {
                let (r, back) = Self::write(&q, &self.buf, &self.heads, &p.bytes, n, s);
                s = back;
                match r {
                    Ok(at) => Some(at),
                    Err(e) => {
                        if !s.full {
                            tracing::error!(queue = %q.dir.display(), "disk queue write failed, treated as full until a write succeeds: {e}");
                        }
                        None
                    }
                }
            } else {
                if !s.full {
                    tracing::warn!(queue = %q.dir.display(), bytes = s.bytes, maxbytes = q.cfg.maxbytes, "disk queue full (queue.maxbytes)");
                }
                None
            };
            if let Some((seg, start)) = wrote {
                if s.full {
                    tracing::info!(queue = %q.dir.display(), "disk queue accepts records again");
                    s.full = false;
                }
                if s.records == 0 {
                    q.stats.oldest_ms.store(ts, Ordering::Relaxed);
                }
                s.records += p.records() as u64;
                if s.hot.len() >= HOT_MAX {
                    s.hot.pop_front();
                }
                s.hot.push_back(Hot {
                    ts,
                    seg,
                    start,
                    end: start + n,
                    payload: p,
                });
                q.publish(&s);
                drop(s);
                q.appended.notify_all();
                if q.cfg.sync == SyncPolicy::Always {
                    q.sync_if_due(true);
                }
                return (Appended::Yes, None);
            }
            s.full = true;
            q.stats.full_events.fetch_add(1, Ordering::Relaxed);
            if !block {
                return (Appended::Dropped, Some(p));
            }
            // Room comes from acknowledgements; a failing disk is tried again now and then.
            s = q
                .freed
                .wait_timeout(s, Duration::from_millis(200))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Writes `self.buf` at the end of the current segment (starting one when needed) and
    /// returns where it went. The write itself runs without the lock: this is the only writer,
    /// and the reader reads a segment only up to its published length. A failed write is cut
    /// back to where it started.
    fn write<'a>(
        q: &'a Shared,
        heads: &[u8],
        spans: &[(usize, usize, usize, usize)],
        records: &[u8],
        n: u64,
        mut s: MutexGuard<'a, State>,
    ) -> (io::Result<(u64, u64)>, MutexGuard<'a, State>) {
        let need_new = match (&s.writer, s.segs.back()) {
            (Some(_), Some(last)) => last.len >= q.cfg.segment_bytes(),
            _ => true,
        };
        if need_new {
            if let Err(e) = Self::rotate(q, &mut s) {
                return (Err(e), s);
            }
        }
        let (Some(f), Some(last)) = (s.writer.clone(), s.segs.back()) else {
            return (Err(io::Error::other("no segment to append to")), s);
        };
        let (seg, at) = (last.id, last.len);
        drop(s);
        let r = write_frames(&f, at, heads, spans, records);
        if r.is_err() {
            // Leave no partial frame behind.
            let _ = f.set_len(at);
        }
        let mut s = q.lock();
        if let Err(e) = r {
            return (Err(e), s);
        }
        if let Some(last) = s.segs.back_mut() {
            last.len += n;
        }
        s.bytes += n;
        s.dirty = true;
        (Ok((seg, at)), s)
    }

    /// Starts a new segment (the previous one is synced first unless `sync: never`).
    fn rotate(q: &Shared, s: &mut State) -> io::Result<()> {
        let id = s.next_id;
        let path = segment_path(&q.dir, id);
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)?;
        let header = frame::segment_header();
        if let Err(e) = f.write_all_at(&header, 0) {
            drop(f);
            let _ = fs::remove_file(&path);
            return Err(e);
        }
        if q.cfg.sync != SyncPolicy::Never {
            // The previous segment is synced with the next sync, unless its records were
            // delivered by then (then there is nothing left in it to keep).
            if let (Some(old), Some(last)) = (s.writer.take(), s.segs.back()) {
                s.unsynced.push((last.id, old));
            }
            sync_dir(&q.dir);
        }
        s.next_id += 1;
        s.writer = Some(Arc::new(f));
        s.segs.push_back(SegInfo {
            id,
            len: header.len() as u64,
        });
        s.bytes += header.len() as u64;
        Ok(())
    }

    /// No more appends: the reader ends once it has read everything.
    pub fn close(&mut self) {
        {
            let mut s = self.q.lock();
            s.writer_closed = true;
        }
        self.q.appended.notify_all();
        self.q.sync_if_due(true);
    }
}

/// Why the reader returned no records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadError {
    Timeout,
    /// The writer closed and everything was read.
    Closed,
}

impl DiskReader {
    /// Reads up to about `max_bytes` of records, waiting up to `wait` for the first.
    pub fn recv_timeout(&mut self, wait: Duration, max_bytes: usize) -> Result<Payload, ReadError> {
        let until = Instant::now() + wait;
        let mut out = Payload::default();
        // Records read back go into a buffer sized for the whole read at once (and reused:
        // see `give_back`): growing one from empty per batch reallocated and faulted fresh
        // pages in every time.
        let mut spare = self.spare.take().unwrap_or_default();
        spare.clear();
        spare.reserve(max_bytes + (64 << 10));
        out.bytes = spare;
        loop {
            if out.records() == 0 {
                if let Some(p) = self.take_hot() {
                    self.spare = Some(std::mem::take(&mut out.bytes));
                    return Ok(p);
                }
            }
            match self.read_some(&mut out, max_bytes) {
                Ok(more) => {
                    if out.records() > 0 && (!more || out.bytes.len() >= max_bytes) {
                        return Ok(out);
                    }
                    if more {
                        continue;
                    }
                }
                Err(e) => {
                    tracing::error!(queue = %self.q.dir.display(), "disk queue read failed: {e}");
                    // Try again after a pause rather than spin.
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
            if out.records() > 0 {
                return Ok(out);
            }
            // Nothing to read now: wait for an append (or the writer's end).
            let q = self.q.clone();
            let s = q.lock();
            if self.caught_up(&s) {
                if s.writer_closed {
                    self.spare = Some(std::mem::take(&mut out.bytes));
                    return Err(ReadError::Closed);
                }
                let now = Instant::now();
                if now >= until {
                    self.spare = Some(std::mem::take(&mut out.bytes));
                    return Err(ReadError::Timeout);
                }
                let _ = q.appended.wait_timeout(s, until - now);
            }
        }
    }

    /// The payload that starts at the read position, if it is still in memory; entries the
    /// reader has passed are dropped.
    fn take_hot(&mut self) -> Option<Payload> {
        let mut s = self.q.lock();
        while s
            .hot
            .front()
            .is_some_and(|h| (h.seg, h.end) <= self.read && h.seg <= self.read.0)
        {
            s.hot.pop_front();
        }
        let h = s.hot.front()?;
        let at_start = h.seg == self.read.0 && h.start == self.read.1;
        // A reader at the very end of the previous segment goes on with the next one.
        let next_seg = h.start == frame::SEGMENT_HEADER
            && h.seg > self.read.0
            && s.segs
                .iter()
                .position(|g| g.id == self.read.0)
                .is_some_and(|i| {
                    s.segs[i].len <= self.read.1 && s.segs.get(i + 1).is_some_and(|g| g.id == h.seg)
                });
        if !at_start && !next_seg {
            return None;
        }
        let h = s.hot.pop_front()?;
        drop(s);
        if self.unacked == 0 {
            self.q.stats.oldest_ms.store(h.ts, Ordering::Relaxed);
        }
        self.read = (h.seg, h.end);
        self.scan = None;
        self.unacked += h.payload.records() as u64;
        Some(h.payload)
    }

    /// A delivered batch's buffer, for the next read from the files; `None` if one is kept
    /// already (the caller reuses or frees it).
    pub fn give_back(&mut self, bytes: Vec<u8>) -> Option<Vec<u8>> {
        if self.spare.is_some() {
            return Some(bytes);
        }
        self.spare = Some(bytes);
        None
    }

    /// Whether everything appended so far was read.
    fn caught_up(&self, s: &State) -> bool {
        match s.segs.back() {
            None => true,
            Some(last) => self.read.0 == last.id && self.read.1 >= last.len,
        }
    }

    /// Reads frames into `out`; `Ok(true)` when more may be read at once.
    fn read_some(&mut self, out: &mut Payload, max_bytes: usize) -> io::Result<bool> {
        // Which segment, and how far it may be read.
        let (end, seg_len, next) = {
            let s = self.q.lock();
            let Some(front) = s.segs.front() else {
                return Ok(false);
            };
            if self.read.0 < front.id {
                self.read = (front.id, frame::SEGMENT_HEADER);
                self.scan = None;
            }
            let Some(idx) = s.segs.iter().position(|g| g.id == self.read.0) else {
                return Ok(false);
            };
            // Up to the first payload still in memory: that one is taken as is.
            let mut end = s.segs[idx].len;
            if let Some(h) = s.hot.front() {
                if h.seg == self.read.0 && h.start >= self.read.1 {
                    end = end.min(h.start);
                }
            }
            (end, s.segs[idx].len, s.segs.get(idx + 1).map(|g| g.id))
        };
        let id = self.read.0;
        if self.scan.is_none() {
            let f = File::open(segment_path(&self.q.dir, id))?;
            self.scan = Some(SegmentScan::new(
                f,
                self.read.1.max(frame::SEGMENT_HEADER),
                end,
            ));
        }
        let Some(scan) = self.scan.as_mut() else {
            return Ok(false);
        };
        scan.extend_to(end);
        let first = self.unacked == 0 && out.records() == 0;
        let mut more = true;
        while out.bytes.len() < max_bytes {
            match scan.next_step()? {
                Step::Frame { offset, frame } => {
                    if out.records() == 0 {
                        if first {
                            self.q.stats.oldest_ms.store(frame.ts_ms, Ordering::Relaxed);
                        }
                        // (A payload keeps its first record's kind: the bounds hold either way.)
                        out.set_text(!frame.binary);
                    }
                    out.push(scan.record(offset, &frame));
                    if let Some(k) = frame.key {
                        out.keys.push(k);
                    }
                    if let Some(i) = frame.id {
                        out.ids.push(i);
                    }
                    self.unacked += 1;
                }
                Step::End => {
                    more = false;
                    break;
                }
                Step::Tail { offset, bytes, .. } => {
                    // Damage after start (the disk changed under us): count it, go on.
                    self.q.stats.damaged.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(segment = %segment_path(&self.q.dir, id).display(), offset, bytes, "queue segment damaged while queued: the rest of it is lost");
                }
                Step::Damaged {
                    offset,
                    resumed,
                    why,
                } => {
                    self.q.stats.damaged.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(segment = %segment_path(&self.q.dir, id).display(), offset, skipped = resumed - offset, "queue segment damaged while queued ({}): at least 1 record lost", why.describe());
                }
            }
        }
        self.read.1 = scan.position();
        if !more {
            // At the end of a sealed segment (a newer one exists): go on with the next.
            if let Some(n) = next {
                if self.read.1 >= seg_len {
                    self.read = (n, frame::SEGMENT_HEADER);
                    self.scan = None;
                    return Ok(true);
                }
            }
        }
        Ok(more)
    }

    /// Everything read so far was delivered (or counted failed): it leaves the queue, and
    /// segments wholly behind the read position are deleted.
    pub fn ack(&mut self) {
        let q = self.q.clone();
        let mut s = q.lock();
        if s.ack == self.read && self.unacked == 0 {
            return;
        }
        s.ack = self.read;
        s.records = s.records.saturating_sub(self.unacked);
        self.unacked = 0;
        while s.segs.front().is_some_and(|g| g.id < self.read.0) {
            let Some(g) = s.segs.pop_front() else { break };
            let path = segment_path(&q.dir, g.id);
            if let Err(e) = fs::remove_file(&path) {
                tracing::error!(segment = %path.display(), "could not delete a delivered queue segment: {e}");
            }
            s.bytes = s.bytes.saturating_sub(g.len);
        }
        if let Err(e) = q
            .ack_file
            .write_all_at(&recover::encode_ack(self.read.0, self.read.1), 0)
        {
            tracing::error!(queue = %q.dir.display(), "could not record delivered records (they may be delivered again after a restart): {e}");
        }
        s.dirty = true;
        q.publish(&s);
        drop(s);
        q.freed.notify_all();
        if q.cfg.sync == SyncPolicy::Always {
            q.sync_if_due(true);
        }
    }

    /// The worker stops reading (shutdown): what is left stays on disk. Returns how many
    /// records that is.
    pub fn close(&mut self) -> u64 {
        let q = self.q.clone();
        let mut s = q.lock();
        s.reader_closed = true;
        let left = s.records;
        drop(s);
        q.freed.notify_all();
        q.sync_if_due(true);
        left
    }

    /// Records appended and not acknowledged now.
    pub fn backlog(&self) -> u64 {
        self.q.lock().records
    }
}

#[cfg(test)]
mod tests;
