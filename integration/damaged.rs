//! Damaged traces: the records before the damage are delivered, the damage is reported with
//! file and block, reading goes on at the next block / sync marker / file, and the run exits
//! non-zero with a summary of what was skipped.

mod common;

use std::path::{Path, PathBuf};

use common::{file_pipeline, read_json_lines, sfprocessor, write_trace};
use sfprocessor::sysflow::ocf::{Frame, OcfReader};
use sfprocessor::sysflow::writer::SchemaVersion;
use sfprocessor::sysflow::{DatumPlan, SysFlow};

/// Layout of one block: where its data starts, its size and how many events it holds.
#[derive(Debug, Clone)]
struct BlockInfo {
    data_start: usize,
    size: usize,
    events: u64,
}

fn varint_len(v: i64) -> usize {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    let mut n = 1;
    while z >= 0x80 {
        z >>= 7;
        n += 1;
    }
    n
}

fn blocks(path: &Path) -> Vec<BlockInfo> {
    let f = std::fs::File::open(path).unwrap();
    let mut r = OcfReader::open(std::io::BufReader::new(f)).unwrap();
    let plan = DatumPlan::compile(r.schema_json()).unwrap();
    let codec = r.codec();
    let mut out = Vec::new();
    let mut scratch = Vec::new();
    loop {
        match r.next_frame() {
            Frame::Block(b) => {
                let o = sfprocessor::sysflow::trace::decode_block(&plan, codec, &b, &mut scratch);
                assert!(o.error.is_none());
                let events = o
                    .records
                    .iter()
                    .filter(|r| r.kind().is_event_or_flow())
                    .count() as u64;
                out.push(BlockInfo {
                    data_start: b.offset as usize
                        + varint_len(b.count as i64)
                        + varint_len(b.data.len() as i64),
                    size: b.data.len(),
                    events,
                });
            }
            Frame::Damaged { reason, .. } => panic!("fixture damaged: {reason}"),
            Frame::End => break,
        }
    }
    out
}

fn events(recs: &[SysFlow]) -> u64 {
    recs.iter().filter(|r| r.kind().is_event_or_flow()).count() as u64
}

struct Fixture {
    _dir: tempfile::TempDir,
    dir: PathBuf,
    trace: PathBuf,
    bytes: Vec<u8>,
    blocks: Vec<BlockInfo>,
    total_events: u64,
}

fn fixture(codec: &str) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace.sf");
    let recs = write_trace(&trace, 11, 30_000, codec, SchemaVersion::V5);
    let blocks = blocks(&trace);
    assert!(
        blocks.len() >= 5,
        "fixture needs several blocks, got {}",
        blocks.len()
    );
    Fixture {
        dir: dir.path().to_path_buf(),
        _dir: dir,
        bytes: std::fs::read(&trace).unwrap(),
        trace,
        blocks,
        total_events: events(&recs),
    }
}

/// Runs the CLI over `input`; returns (exit code, stderr, exported lines).
fn run(fx: &Fixture, input: &Path) -> (i32, String, Vec<serde_json::Value>) {
    let out = fx.dir.join(format!(
        "out-{}.json",
        input.file_name().unwrap().to_string_lossy()
    ));
    let cfg = fx.dir.join("pipeline.json");
    std::fs::write(&cfg, file_pipeline(&out)).unwrap();
    let o = sfprocessor(
        &[
            "-config",
            cfg.to_str().unwrap(),
            "-log",
            "error",
            input.to_str().unwrap(),
        ],
        &[],
    );
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stderr).into_owned(),
        read_json_lines(&out),
    )
}

#[test]
fn undamaged_fixture_exports_everything_and_exits_zero() {
    let fx = fixture("deflate");
    let (code, err, lines) = run(&fx, &fx.trace);
    assert_eq!(code, 0, "{err}");
    assert_eq!(lines.len() as u64, fx.total_events);
}

#[test]
fn truncated_mid_block_keeps_earlier_blocks_and_reports_the_block() {
    let fx = fixture("deflate");
    let k = 3;
    let b = &fx.blocks[k];
    let cut = fx.dir.join("truncated.sf");
    std::fs::write(&cut, &fx.bytes[..b.data_start + b.size / 2]).unwrap();
    let (code, err, lines) = run(&fx, &cut);
    assert_eq!(code, 1, "{err}");
    let before: u64 = fx.blocks[..k].iter().map(|b| b.events).sum();
    assert_eq!(
        lines.len() as u64,
        before,
        "exactly the blocks before the damage"
    );
    assert!(err.contains("truncated.sf: block 3"), "{err}");
    assert!(err.contains("truncated"), "{err}");
    assert!(err.contains("skipped"), "{err}");
}

fn flip_block(fx: &Fixture, k: usize, name: &str) -> PathBuf {
    let b = &fx.blocks[k];
    let mut bytes = fx.bytes.clone();
    let mid = b.data_start + b.size / 2;
    for byte in &mut bytes[mid..mid + 200.min(b.size / 3)] {
        *byte = 0xff;
    }
    let p = fx.dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn flipped_bytes_in_an_uncompressed_block_keep_the_records_before_them() {
    let fx = fixture("null");
    let k = 2;
    let p = flip_block(&fx, k, "flipped-null.sf");
    let (code, err, lines) = run(&fx, &p);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("flipped-null.sf: block 2"), "{err}");
    let others: u64 = fx.total_events - fx.blocks[k].events;
    let n = lines.len() as u64;
    assert!(
        n > others,
        "records of block 2 before the damage are delivered ({n} <= {others})"
    );
    assert!(n < fx.total_events);
    assert!(err.contains("records skipped"), "{err}");
}

#[test]
fn flipped_bytes_in_a_deflate_block_lose_only_that_block() {
    let fx = fixture("deflate");
    let k = 2;
    let p = flip_block(&fx, k, "flipped-deflate.sf");
    let (code, err, lines) = run(&fx, &p);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("flipped-deflate.sf: block 2"), "{err}");
    let others: u64 = fx.total_events - fx.blocks[k].events;
    let n = lines.len() as u64;
    assert!(
        n >= others && n < fx.total_events,
        "{n} vs {others}..{}",
        fx.total_events
    );
}

#[test]
fn a_damaged_sync_marker_resumes_at_the_next_one() {
    let fx = fixture("deflate");
    let k = 1;
    let b = &fx.blocks[k];
    let mut bytes = fx.bytes.clone();
    for byte in &mut bytes[b.data_start + b.size..b.data_start + b.size + 16] {
        *byte ^= 0x5a;
    }
    let p = fx.dir.join("badsync.sf");
    std::fs::write(&p, bytes).unwrap();
    let (code, err, lines) = run(&fx, &p);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("badsync.sf: block 1"), "{err}");
    assert!(err.contains("sync marker"), "{err}");
    assert!(err.contains("resumed at byte"), "{err}");
    // Block 0 is delivered; reading resumes after the next intact marker (after block 2).
    let expected: u64 = fx.blocks[0].events + fx.blocks[3..].iter().map(|b| b.events).sum::<u64>();
    assert_eq!(lines.len() as u64, expected);
}

#[test]
fn a_file_with_the_wrong_magic_is_skipped_and_the_next_file_is_read() {
    let fx = fixture("deflate");
    let d = fx.dir.join("traces");
    std::fs::create_dir(&d).unwrap();
    std::fs::write(d.join("a.sf"), &fx.bytes).unwrap();
    let mut bad = fx.bytes.clone();
    bad[0] = b'X';
    std::fs::write(d.join("b.sf"), bad).unwrap();
    std::fs::write(d.join("c.sf"), &fx.bytes).unwrap();
    let (code, err, lines) = run(&fx, &d);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("b.sf: file skipped"), "{err}");
    assert!(err.contains("wrong magic"), "{err}");
    assert_eq!(lines.len() as u64, 2 * fx.total_events);
}

#[test]
fn garbage_files_never_panic_the_decoder() {
    // A cheap stand-in for fuzzing: mutate the fixture at many positions and decode it all.
    let fx = fixture("null");
    let mut seed = 0x1234_5678u64;
    for i in 0..300 {
        let mut bytes = fx.bytes.clone();
        for _ in 0..(1 + i % 5) {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let pos = (seed >> 33) as usize % bytes.len();
            bytes[pos] = (seed >> 17) as u8;
        }
        if i % 7 == 0 {
            let cut = (seed >> 20) as usize % bytes.len();
            bytes.truncate(cut);
        }
        let p = fx.dir.join("mutant.sf");
        std::fs::write(&p, &bytes).unwrap();
        let r = std::panic::catch_unwind(|| {
            let _ = sfprocessor::sysflow::trace::read_trace(&p, |_| {});
        });
        assert!(r.is_ok(), "decoder panicked on mutant {i}");
    }
}
