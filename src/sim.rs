//! A collector simulator: sends SysFlow records to the agent's socket exactly as the
//! collector's socket writer does — a `SOCK_SEQPACKET` connection, a header first, one Avro
//! datum per packet, and after the server goes away a new connection that starts with the
//! header again. Tests and benchmarks drive the socket driver with it; `sfgen -socket` is its
//! command line.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::gen::{GenConfig, Generator};
use crate::seqpacket::Client;
use crate::sysflow::cursor::Cursor;
use crate::sysflow::ocf::{BlockLimits, Frame, OcfReader};
use crate::sysflow::plan::{DatumPlan, Decoded};
use crate::sysflow::writer::{encode_datum, schema, DatumEncoder, SchemaVersion};
use crate::sysflow::SysFlow;

/// What a simulated collector did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SimReport {
    /// Connections made (the first and every reconnect).
    pub connections: u64,
    /// Packets the server's socket accepted (headers included).
    pub packets: u64,
    /// Of those, records other than headers.
    pub records: u64,
    /// Headers sent (one per connection, plus the stream's own).
    pub headers: u64,
}

/// One collector connection with reconnects.
pub struct Collector {
    path: PathBuf,
    header: Vec<u8>,
    client: Option<Client>,
    reconnect: bool,
    stop: Arc<AtomicBool>,
    pub report: SimReport,
}

/// Errors that mean "the server went away": reconnect.
fn server_gone(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::NotConnected
            | io::ErrorKind::NotFound
    )
}

impl Collector {
    /// `header` is the datum sent first on every connection. With `reconnect`, a server
    /// that goes away (or is not there yet) is waited for until `stop` is set.
    pub fn new(path: &Path, header: Vec<u8>, reconnect: bool, stop: Arc<AtomicBool>) -> Self {
        Collector {
            path: path.to_path_buf(),
            header,
            client: None,
            reconnect,
            stop,
            report: SimReport::default(),
        }
    }

    /// The header sent on the next connection (a stream that announces a new one).
    pub fn set_header(&mut self, header: Vec<u8>) {
        self.header = header;
    }

    fn connect(&mut self) -> io::Result<()> {
        let mut wait = Duration::from_millis(10);
        let since = std::time::Instant::now();
        let mut said = false;
        loop {
            match Client::connect(&self.path) {
                Ok(c) => {
                    // Large packets (environment arrays) need a send buffer to match.
                    let _ = c.set_send_buffer(4 << 20);
                    c.send(&self.header)?;
                    self.report.connections += 1;
                    self.report.packets += 1;
                    self.report.headers += 1;
                    self.client = Some(c);
                    return Ok(());
                }
                Err(e) if self.reconnect && server_gone(&e) => {
                    if self.stop.load(Ordering::Relaxed) {
                        return Err(e);
                    }
                    // A socket that is not there yet (the agent not started, a wrong path)
                    // is waited for, and said so after a second rather than in silence.
                    if !said && since.elapsed() >= Duration::from_secs(1) {
                        said = true;
                        eprintln!(
                            "sfgen: waiting for an agent to listen on {} ({e}); start `sfprocessor -driver socket {}` or check the path",
                            self.path.display(),
                            self.path.display()
                        );
                    }
                    std::thread::sleep(wait);
                    wait = (wait * 2).min(Duration::from_millis(500));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Sends one datum (a record that is not the connection's header). Waits while the
    /// server's queue is full (backpressure); reconnects and sends it again after the header
    /// if the server went away.
    pub fn send(&mut self, datum: &[u8], is_header: bool) -> io::Result<()> {
        loop {
            if self.client.is_none() {
                self.connect()?;
            }
            let Some(c) = &self.client else { continue };
            match c.send(datum) {
                Ok(()) => {
                    self.report.packets += 1;
                    if is_header {
                        self.report.headers += 1;
                    } else {
                        self.report.records += 1;
                    }
                    return Ok(());
                }
                Err(e) if self.reconnect && server_gone(&e) => {
                    self.client = None;
                    if self.stop.load(Ordering::Relaxed) {
                        return Err(e);
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Sends records (no headers) with as few system calls as possible: the packets the
    /// agent sees are the same as with [`Collector::send`]; reconnects as `send` does.
    pub fn send_many(&mut self, datums: &[&[u8]]) -> io::Result<()> {
        let mut rest = datums;
        while !rest.is_empty() {
            if self.client.is_none() {
                self.connect()?;
            }
            let Some(c) = &self.client else { continue };
            let (n, r) = c.send_many(rest);
            self.report.packets += n as u64;
            self.report.records += n as u64;
            rest = &rest[n..];
            match r {
                Ok(()) => {}
                Err(e) if self.reconnect && server_gone(&e) => {
                    self.client = None;
                    if self.stop.load(Ordering::Relaxed) {
                        return Err(e);
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Connects now (sending the header), rather than with the first record.
    pub fn open(&mut self) -> io::Result<()> {
        if self.client.is_none() {
            self.connect()?;
        }
        Ok(())
    }

    /// Closes the connection (the server sees the end of the stream).
    pub fn close(&mut self) {
        self.client = None;
    }
}

/// A stream of datums to send, and whether each is a header.
pub type Datums = Box<dyn Iterator<Item = Result<(Vec<u8>, bool), String>>>;

/// The datums of a trace file, in order. Schema v4 and v5 traces are sent byte for byte as
/// written; older ones are decoded and re-encoded as v5 (the socket stream carries v4/v5).
pub fn trace_datums(path: &Path) -> Result<Datums, String> {
    let f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut r = OcfReader::open(std::io::BufReader::new(f))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    r.set_limits(BlockLimits::default());
    let plan = DatumPlan::compile(r.schema_json())
        .map_err(|e| format!("{}: writer schema: {e}", path.display()))?;
    let codec = r.codec();
    let v5 = schema(SchemaVersion::V5).map_err(|e| e.to_string())?;
    let name = path.display().to_string();
    let mut raw: Option<bool> = None;
    let mut pending: std::collections::VecDeque<(Vec<u8>, bool)> = Default::default();
    let mut scratch = Vec::new();
    let mut done = false;
    Ok(Box::new(std::iter::from_fn(move || loop {
        if let Some(d) = pending.pop_front() {
            return Some(Ok(d));
        }
        if done {
            return None;
        }
        match r.next_frame() {
            Frame::Block(b) => {
                if let Err(e) = codec.decompress(&b.data, &mut scratch, 64 << 20) {
                    return Some(Err(format!("{name}: block {}: {e}", b.index)));
                }
                let mut c = Cursor::new(&scratch);
                for _ in 0..b.count {
                    let start = c.pos();
                    let d = match plan.decode(&mut c) {
                        Ok(d) => d,
                        Err(e) => return Some(Err(format!("{name}: block {}: {e}", b.index))),
                    };
                    let Decoded::Record(rec) = d else { continue };
                    let is_header = matches!(rec, SysFlow::Header(_));
                    // Decide once, from the first header: is this a v4/v5 stream?
                    let keep = *raw.get_or_insert(match &rec {
                        SysFlow::Header(h) => h.version == 4 || h.version == 5,
                        _ => false,
                    });
                    let bytes = if keep {
                        scratch[start..c.pos()].to_vec()
                    } else {
                        let mut rec = rec;
                        if let SysFlow::Header(h) = &mut rec {
                            h.version = 5;
                        }
                        match encode_datum(&v5, &rec, SchemaVersion::V5) {
                            Ok(b) => b,
                            Err(e) => return Some(Err(format!("{name}: re-encoding: {e}"))),
                        }
                    };
                    pending.push_back((bytes, is_header));
                }
            }
            Frame::Damaged { index, reason, .. } => {
                return Some(Err(format!("{name}: block {index}: {reason}")))
            }
            Frame::End => done = true,
        }
    })))
}

/// Generated records (v5 datums).
pub fn generated_datums(cfg: GenConfig) -> Result<Datums, String> {
    let v5 = schema(SchemaVersion::V5).map_err(|e| e.to_string())?;
    let mut enc = DatumEncoder::new(&v5, SchemaVersion::V5).map_err(|e| e.to_string())?;
    Ok(Box::new(Generator::new(cfg).map(move |r| {
        let h = matches!(r, SysFlow::Header(_));
        enc.encode(&r).map(|b| (b, h)).map_err(|e| e.to_string())
    })))
}

/// Paces sends to `rate` per second (0: as fast as the server takes them).
pub struct Pace {
    rate: u64,
    start: Instant,
    sent: u64,
}

impl Pace {
    pub fn new(rate: u64) -> Self {
        Pace {
            rate,
            start: Instant::now(),
            sent: 0,
        }
    }

    /// Call before each send: sleeps until it is due.
    pub fn wait(&mut self) {
        if self.rate == 0 {
            return;
        }
        let due = self.start + Duration::from_secs_f64(self.sent as f64 / self.rate as f64);
        let now = Instant::now();
        if due > now + Duration::from_micros(200) {
            std::thread::sleep(due - now);
        }
        self.sent += 1;
    }
}

/// Sends every datum of `datums` to `path` at `rate` records/s, the first header of the stream
/// also being the header of every reconnect. Stops early when `stop` is set.
pub fn replay(
    path: &Path,
    mut datums: Datums,
    rate: u64,
    reconnect: bool,
    stop: Arc<AtomicBool>,
) -> Result<SimReport, String> {
    let first = match datums.next() {
        Some(Ok((d, true))) => d,
        Some(Ok((_, false))) => return Err("the stream does not start with a header".into()),
        Some(Err(e)) => return Err(e),
        None => return Err("nothing to send".into()),
    };
    let mut c = Collector::new(path, first, reconnect, stop.clone());
    c.open().map_err(|e| format!("{}: {e}", path.display()))?;
    let mut pace = Pace::new(rate);
    for d in datums {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let (bytes, is_header) = d?;
        pace.wait();
        if is_header {
            c.set_header(bytes.clone());
        }
        c.send(&bytes, is_header)
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    c.close();
    Ok(c.report)
}
