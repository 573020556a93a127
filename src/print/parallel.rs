//! Formatting on every core: the reading thread hands batches of records to formatter
//! threads, and one writer puts their bytes out in the order read. Formatting is most of
//! sfprint's work (dozens of columns per record), decoding the rest, so on two cores the
//! output comes about twice as fast as from one thread. Memory stays bounded: a few batches
//! are in flight at a time.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};

use super::columns::Row;
use super::output::RecordFormat;
use crate::record::Record;

/// Records per batch.
const BATCH: usize = 1024;

/// A batch handed to a formatter: its sequence number and records.
type Batch = (u64, Vec<(Record, Row)>);

/// Feeds records to the formatter threads; [`Printer::finish`] waits for the output.
pub struct Printer {
    batch: Vec<(Record, Row)>,
    seq: u64,
    to_workers: Option<SyncSender<Batch>>,
    threads: Vec<std::thread::JoinHandle<()>>,
    writer: Option<std::thread::JoinHandle<io::Result<()>>>,
    failed: Arc<AtomicBool>,
}

impl Printer {
    /// Starts `workers` formatter threads (at least one) and the writer on `out`.
    pub fn start(
        format: &dyn RecordFormat,
        mut out: Box<dyn Write + Send>,
        workers: usize,
    ) -> Printer {
        let (to_workers, from_reader) = sync_channel::<Batch>(workers * 2);
        let from_reader = Arc::new(Mutex::new(from_reader));
        let (to_writer, from_workers) = sync_channel::<(u64, Vec<u8>)>(workers * 2);
        let failed = Arc::new(AtomicBool::new(false));
        // Written buffers come back for reuse: no allocation (nor mmap) per batch.
        let (recycle, reuse) = sync_channel::<Vec<u8>>(workers * 4 + 4);
        let reuse = Arc::new(Mutex::new(reuse));
        let mut threads = Vec::new();
        for _ in 0..workers.max(1) {
            let rx = from_reader.clone();
            let tx = to_writer.clone();
            let reuse = reuse.clone();
            let mut f = format.fresh();
            threads.push(std::thread::spawn(move || {
                while let Some((seq, recs)) = next(&rx) {
                    let mut buf = lock(&reuse).try_recv().unwrap_or_default();
                    for (r, row) in &recs {
                        f.record(r, row, &mut buf);
                    }
                    if tx.send((seq, buf)).is_err() {
                        return;
                    }
                }
            }));
        }
        drop(to_writer);
        let mut head = Vec::new();
        format.start(&mut head);
        let fmt_end = format.fresh();
        let flag = failed.clone();
        let writer = std::thread::spawn(move || {
            let r = write_in_order(&mut *out, head, from_workers, fmt_end, recycle);
            if r.is_err() {
                flag.store(true, Ordering::Relaxed);
            }
            r
        });
        Printer {
            batch: Vec::with_capacity(BATCH),
            seq: 0,
            to_workers: Some(to_workers),
            threads,
            writer: Some(writer),
            failed,
        }
    }

    /// Queues one record; false once the output has failed (the reader should stop).
    pub fn push(&mut self, rec: Record, row: Row) -> bool {
        self.batch.push((rec, row));
        if self.batch.len() >= BATCH {
            self.flush();
        }
        !self.failed.load(Ordering::Relaxed)
    }

    fn flush(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let b = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH));
        if let Some(tx) = &self.to_workers {
            if tx.send((self.seq, b)).is_err() {
                self.failed.store(true, Ordering::Relaxed);
            }
        }
        self.seq += 1;
    }

    /// Formats and writes what is queued, then the format's end; the first write error.
    pub fn finish(mut self) -> io::Result<()> {
        self.flush();
        self.to_workers = None;
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        match self.writer.take().map(|w| w.join()) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(io::Error::other("the output thread failed")),
            None => Ok(()),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

fn next(rx: &Mutex<Receiver<Batch>>) -> Option<Batch> {
    lock(rx).recv().ok()
}

/// Writes `head`, then the batches in sequence order as they arrive, then the end.
fn write_in_order(
    out: &mut dyn Write,
    head: Vec<u8>,
    from: Receiver<(u64, Vec<u8>)>,
    fmt: Box<dyn RecordFormat>,
    recycle: SyncSender<Vec<u8>>,
) -> io::Result<()> {
    out.write_all(&head)?;
    let mut pending: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    let mut want = 0u64;
    for (seq, buf) in from {
        pending.insert(seq, buf);
        while let Some(mut buf) = pending.remove(&want) {
            out.write_all(&buf)?;
            want += 1;
            buf.clear();
            let _ = recycle.try_send(buf);
        }
    }
    let mut tail = Vec::new();
    fmt.end(want > 0, &mut tail);
    out.write_all(&tail)?;
    out.flush()
}
