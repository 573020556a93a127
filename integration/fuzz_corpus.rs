//! Replays the fuzzers' committed corpora (`fuzz/corpus/<target>/`) through the same entry
//! points as the coverage-guided fuzzers (`sfprocessor::fuzzing`), with the stable toolchain:
//! every input the fuzzers kept (and every crash they once found, once fixed) must still run
//! without a panic. The fuzzers themselves run with cargo-fuzz on nightly (docs/operations.md).

use std::path::Path;
use std::time::{Duration, Instant};

fn replay(target: &str, run: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{}: empty corpus", dir.display());
    let start = Instant::now();
    for f in &files {
        let data = std::fs::read(f).unwrap();
        let t = Instant::now();
        let r = std::panic::catch_unwind(|| run(&data));
        assert!(r.is_ok(), "{}: panicked", f.display());
        // Not a speed check: an input that takes seconds is a hang the fuzzer missed.
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "{}: took {:?}",
            f.display(),
            t.elapsed()
        );
    }
    eprintln!("{target}: {} inputs in {:?}", files.len(), start.elapsed());
}

#[test]
fn socket_datum_corpus() {
    replay("socket_datum", sfprocessor::fuzzing::socket_datum);
}

#[test]
fn trace_file_corpus() {
    replay("trace_file", sfprocessor::fuzzing::trace_file);
}

#[test]
fn pipeline_config_corpus() {
    replay("pipeline_config", sfprocessor::fuzzing::pipeline_config);
}

#[test]
fn policy_text_corpus() {
    replay("policy_text", sfprocessor::fuzzing::policy_text);
}
