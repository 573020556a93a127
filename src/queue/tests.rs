//! The disk queue on its own: order, acknowledgement, recovery, damage, bounds, the lock.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::time::Duration;

use super::recover::segment_path;
use super::*;
use crate::exporter::delivery::Payload;

fn cfg(dir: &Path) -> QueueConfig {
    QueueConfig {
        path: dir.to_path_buf(),
        maxbytes: QueueConfig::DEFAULT_MAXBYTES,
        sync: SyncPolicy::Never,
    }
}

/// Records `from..to` as one payload, each with a key and an id derived from its number.
fn payload(from: u64, to: u64) -> Payload {
    let mut p = Payload::new(Vec::new(), true);
    for i in from..to {
        p.push(format!("{{\"seq\":{i},\"pad\":\"{}\"}}", "x".repeat(200)).as_bytes());
        p.keys.push(i * 3);
        p.ids.push(i * 7);
    }
    p
}

fn seq(line: &[u8]) -> u64 {
    let s = std::str::from_utf8(line).unwrap();
    let a = s.find(':').unwrap() + 1;
    let b = s.find(',').unwrap();
    s[a..b].parse().unwrap()
}

/// Reads everything available (until a short wait finds nothing), without acknowledging.
fn read_all(r: &mut DiskReader) -> Vec<(u64, u64, u64)> {
    let mut out = Vec::new();
    while let Ok(p) = r.recv_timeout(Duration::from_millis(20), 64 << 10) {
        for (i, l) in p.iter().enumerate() {
            out.push((seq(l), p.keys[i], p.ids[i]));
        }
    }
    out
}

#[test]
fn records_come_back_in_order_with_keys_and_ids() {
    let d = tempfile::tempdir().unwrap();
    let mut q = DiskQueue::open(&cfg(d.path())).unwrap();
    for k in 0..10 {
        assert_eq!(
            q.writer.append(payload(k * 100, k * 100 + 100), true).0,
            Appended::Yes
        );
    }
    let got = read_all(&mut q.reader);
    assert_eq!(got.len(), 1000);
    for (i, (s, k, id)) in got.iter().enumerate() {
        assert_eq!((*s, *k, *id), (i as u64, i as u64 * 3, i as u64 * 7));
    }
    assert_eq!(q.stats.records.load(Ordering::Relaxed), 1000);
    q.reader.ack();
    assert_eq!(q.stats.records.load(Ordering::Relaxed), 0);
}

#[test]
fn unacknowledged_records_go_out_first_after_a_restart() {
    let d = tempfile::tempdir().unwrap();
    {
        let mut q = DiskQueue::open(&cfg(d.path())).unwrap();
        assert_eq!(q.writer.append(payload(0, 50), true).0, Appended::Yes);
        assert_eq!(q.writer.append(payload(50, 100), true).0, Appended::Yes);
        // 50 read and delivered, the rest read but not acknowledged: a crash now.
        // The first payload comes as appended (from memory), the rest as well.
        let p = q.reader.recv_timeout(Duration::from_millis(20), 1).unwrap();
        assert_eq!(p.records(), 50);
        q.reader.ack();
        assert_eq!(read_all(&mut q.reader).len(), 50);
        // Dropped without close: as a kill -9 leaves it.
    }
    let mut q = DiskQueue::open(&cfg(d.path())).unwrap();
    assert_eq!(q.stats.recovered.load(Ordering::Relaxed), 50);
    assert_eq!(q.writer.append(payload(100, 120), true).0, Appended::Yes);
    let got: Vec<u64> = read_all(&mut q.reader).iter().map(|g| g.0).collect();
    assert_eq!(got, (50..120).collect::<Vec<_>>());
}

#[test]
fn delivered_segments_are_deleted_and_the_cap_holds() {
    let d = tempfile::tempdir().unwrap();
    let mut c = cfg(d.path());
    c.maxbytes = 1 << 20; // segments of 128 KiB
    let mut q = DiskQueue::open(&c).unwrap();
    let mut next = 0;
    // Fill until full (drop_newest refuses).
    loop {
        match q.writer.append(payload(next, next + 20), false).0 {
            Appended::Yes => next += 20,
            Appended::Dropped => break,
            Appended::Stopped => unreachable!(),
        }
    }
    let bytes = q.stats.bytes.load(Ordering::Relaxed);
    assert!(bytes <= c.maxbytes, "{bytes} over the cap");
    assert!(q.stats.segments.load(Ordering::Relaxed) > 4);
    assert!(q.stats.full_events.load(Ordering::Relaxed) >= 1);
    let got = read_all(&mut q.reader);
    assert_eq!(got.len() as u64, next);
    q.reader.ack();
    assert_eq!(
        recover::list_segments(d.path()).unwrap().len(),
        1,
        "delivered segments deleted, the one appended to kept"
    );
    assert_eq!(
        q.writer.append(payload(next, next + 20), false).0,
        Appended::Yes
    );
}

#[test]
fn a_blocked_writer_goes_on_when_the_reader_acknowledges() {
    let d = tempfile::tempdir().unwrap();
    let mut c = cfg(d.path());
    c.maxbytes = 1 << 20;
    let DiskQueue {
        mut writer,
        mut reader,
        ..
    } = DiskQueue::open(&c).unwrap();
    let t = std::thread::spawn(move || {
        // Several times the cap: blocks until the reader makes room.
        for k in 0..300 {
            assert_eq!(
                writer.append(payload(k * 20, k * 20 + 20), true).0,
                Appended::Yes
            );
        }
        writer.close();
    });
    let mut n = 0u64;
    loop {
        match reader.recv_timeout(Duration::from_secs(5), 64 << 10) {
            Ok(p) => {
                for l in p.iter() {
                    assert_eq!(seq(l), n);
                    n += 1;
                }
                reader.ack();
            }
            Err(ReadError::Closed) => break,
            Err(ReadError::Timeout) => panic!("writer stalled at {n}"),
        }
    }
    t.join().unwrap();
    assert_eq!(n, 6000);
}

#[test]
fn a_torn_tail_is_cut_and_reported() {
    let d = tempfile::tempdir().unwrap();
    {
        let mut q = DiskQueue::open(&cfg(d.path())).unwrap();
        assert_eq!(q.writer.append(payload(0, 10), true).0, Appended::Yes);
    }
    let seg = segment_path(d.path(), 1);
    let len = std::fs::metadata(&seg).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(&seg)
        .unwrap()
        .set_len(len - 5)
        .unwrap();
    let mut q = DiskQueue::open(&cfg(d.path())).unwrap();
    assert_eq!(q.stats.torn.load(Ordering::Relaxed), 1);
    assert_eq!(q.stats.recovered.load(Ordering::Relaxed), 9);
    assert_eq!(q.writer.append(payload(10, 12), true).0, Appended::Yes);
    let got: Vec<u64> = read_all(&mut q.reader).iter().map(|g| g.0).collect();
    assert_eq!(got, vec![0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 11]);
}

#[test]
fn a_damaged_segment_is_set_aside_and_its_good_records_kept() {
    let d = tempfile::tempdir().unwrap();
    {
        let mut q = DiskQueue::open(&cfg(d.path())).unwrap();
        assert_eq!(q.writer.append(payload(0, 30), true).0, Appended::Yes);
    }
    let seg = segment_path(d.path(), 1);
    let len = std::fs::metadata(&seg).unwrap().len();
    let f = OpenOptions::new().write(true).open(&seg).unwrap();
    // A flipped byte inside a record in the middle.
    let mut b = [0u8; 1];
    let at = len / 2;
    std::fs::File::open(&seg)
        .unwrap()
        .read_exact_at(&mut b, at)
        .unwrap();
    f.write_all_at(&[b[0] ^ 0x20], at).unwrap();
    drop(f);
    let mut q = DiskQueue::open(&cfg(d.path())).unwrap();
    assert_eq!(q.stats.damaged.load(Ordering::Relaxed), 1);
    assert!(d.path().join("00000000000000000001.seg.damaged").exists());
    let got: Vec<u64> = read_all(&mut q.reader).iter().map(|g| g.0).collect();
    assert_eq!(got.len(), 29, "{got:?}");
    assert!(got.windows(2).all(|w| w[0] < w[1]));
    let inspection = inspect::inspect(d.path()).unwrap();
    assert_eq!(inspection.records, 29);
    assert_eq!(inspection.set_aside.len(), 1);
}

#[test]
fn a_second_user_of_the_directory_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let _first = DiskQueue::open(&cfg(d.path())).unwrap();
    let e = DiskQueue::open(&cfg(d.path())).err().unwrap();
    assert!(matches!(e, QueueError::Locked { .. }), "{e}");
    assert!(
        e.to_string()
            .contains(&format!("pid {}", std::process::id())),
        "{e}"
    );
}

#[test]
fn an_unknown_segment_version_is_refused_not_misread() {
    let d = tempfile::tempdir().unwrap();
    {
        let mut q = DiskQueue::open(&cfg(d.path())).unwrap();
        assert_eq!(q.writer.append(payload(0, 3), true).0, Appended::Yes);
    }
    let seg = segment_path(d.path(), 1);
    OpenOptions::new()
        .write(true)
        .open(&seg)
        .unwrap()
        .write_all_at(&[9], 7)
        .unwrap();
    let e = DiskQueue::open(&cfg(d.path())).err().unwrap();
    assert!(matches!(e, QueueError::Version { version: 9, .. }), "{e}");
    assert!(e.to_string().contains("version 9"), "{e}");
    // Nothing was changed: the segment is still there, as written.
    assert!(seg.exists());
}

#[test]
fn a_failing_disk_leaves_no_torn_record() {
    // A segment file that refuses writes past its start stands in for a full disk: the
    // writer is pointed at a read-only handle by replacing the file it appends to.
    let d = tempfile::tempdir().unwrap();
    let mut q = DiskQueue::open(&cfg(d.path())).unwrap();
    assert_eq!(q.writer.append(payload(0, 5), true).0, Appended::Yes);
    {
        let mut s = q.writer.q.lock();
        let ro = File::open(segment_path(d.path(), 1)).unwrap();
        s.writer = Some(Arc::new(ro));
    }
    assert_eq!(q.writer.append(payload(5, 10), false).0, Appended::Dropped);
    assert_eq!(q.stats.full_events.load(Ordering::Relaxed), 1);
    let got: Vec<u64> = read_all(&mut q.reader).iter().map(|g| g.0).collect();
    assert_eq!(got, vec![0, 1, 2, 3, 4]);
    let i = inspect::inspect(d.path()).unwrap();
    assert!(i.damage.is_empty(), "{:?}", i.damage);
}
