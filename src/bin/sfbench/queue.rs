//! Disk queue benchmarks (issue 28): the file pipeline through a disk queue (`SFBENCH_QUEUE`,
//! read by `pipeline_queue_keys`) and `-stage queue-drain`, a backlog delivered to a file.

use std::path::{Path, PathBuf};
use std::time::Instant;

use sfprocessor::exporter::delivery::Payload;
use sfprocessor::queue::{DiskQueue, QueueConfig, SyncPolicy};

/// A fresh queue directory for this process, removed by [`QueueDir`]'s drop.
pub struct QueueDir(pub PathBuf);

impl QueueDir {
    pub fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!("sfbench-queue-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        QueueDir(p)
    }
}

impl Drop for QueueDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The exporter keys `SFBENCH_QUEUE` asks for: unset (memory), `disk` (the default sync),
/// or `disk:SYNC` (`always`, `never`, a duration).
pub fn pipeline_queue_keys(dir: &Path) -> Option<String> {
    let v = std::env::var("SFBENCH_QUEUE").ok()?;
    let mut parts = v.splitn(2, ':');
    if parts.next()? != "disk" {
        return None;
    }
    let sync = parts
        .next()
        .map(|s| format!(r#","queue.sync":"{s}""#))
        .unwrap_or_default();
    Some(format!(
        r#","queue.type":"disk","queue.path":"{}","queue.maxbytes":"64GiB"{sync}"#,
        dir.display()
    ))
}

/// Fills a queue with `records` encoded records (the trace's first 100,000, round and
/// round), then times an agent with no input delivering them to a file. Returns (records,
/// seconds of the delivery).
pub fn drain_stage(trace: &Path, records: u64) -> Result<(u64, f64), String> {
    let dir = QueueDir::new("drain");
    // SFBENCH_DRAIN_OUT=PATH: the file target (default a temporary file; `/dev/null` times
    // the queue's side alone, without the disk writing the output).
    let out = std::env::var_os("SFBENCH_DRAIN_OUT")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::temp_dir().join(format!("sfbench-drain-{}.json", std::process::id()))
        });
    let scratch = !out.starts_with("/dev");
    if scratch {
        let _ = std::fs::remove_file(&out);
    }
    let (recs, _) = super::records_in_memory(trace, 100_000)?;
    if recs.is_empty() {
        return Err("no records in the trace".into());
    }
    let mut enc = sfprocessor::encode::JsonEncoder::new();
    let lines: Vec<Vec<u8>> = recs
        .iter()
        .map(|r| {
            let mut b = Vec::new();
            enc.encode(r, &mut b);
            b
        })
        .collect();
    drop(recs);
    let t = Instant::now();
    {
        let mut q = DiskQueue::open(&QueueConfig {
            path: dir.0.clone(),
            maxbytes: 1 << 50,
            sync: SyncPolicy::Never,
        })
        .map_err(|e| e.to_string())?;
        let mut p = Payload::new(Vec::new(), true);
        let mut n = 0u64;
        let mut i = 0usize;
        while n < records {
            p.push(&lines[i]);
            n += 1;
            i = (i + 1) % lines.len();
            if p.bytes.len() >= 512 << 10 || n == records {
                let full = std::mem::replace(&mut p, Payload::new(Vec::new(), true));
                if let (_, Some(back)) = q.writer.append(full, true) {
                    p = back;
                }
                p.clear();
            }
        }
        q.writer.close();
    }
    let bytes: u64 = std::fs::read_dir(&dir.0)
        .map_err(|e| e.to_string())?
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum();
    eprintln!(
        "queue-drain: {records} records ({:.1} GiB) queued in {:.1}s",
        bytes as f64 / (1u64 << 30) as f64,
        t.elapsed().as_secs_f64()
    );
    let empty = std::env::temp_dir().join(format!("sfbench-empty-{}.sf", std::process::id()));
    super::write_records::<sfprocessor::sysflow::SysFlow>(&empty, [])?;
    let cfg = format!(
        r#"{{"pipeline":[
 {{"processor":"sysflowreader","handler":"flattener","in":"sysflow sysflowchan","out":"flat flattenerchan"}},
 {{"processor":"policyengine","in":"flat flattenerchan","out":"evt eventchan","mode":"enrich"}},
 {{"processor":"exporter","in":"evt eventchan","export":"file","file.path":"{}","format":"json","queue.type":"disk","queue.path":"{}","queue.maxbytes":"64GiB"}}]}}"#,
        out.display(),
        dir.0.display()
    );
    let t = Instant::now();
    super::run_pipeline(&cfg, "bench-drain.json", &empty)?;
    let secs = t.elapsed().as_secs_f64();
    let written = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
    if scratch {
        let _ = std::fs::remove_file(&out);
    }
    let _ = std::fs::remove_file(&empty);
    let left = sfprocessor::queue::inspect::inspect(&dir.0)
        .map_err(|e| e.to_string())?
        .records;
    if left != 0 {
        return Err(format!("{left} records still queued after the drain"));
    }
    eprintln!(
        "queue-drain: delivered {:.1} GiB to a file",
        written as f64 / (1u64 << 30) as f64
    );
    Ok((records, secs))
}
