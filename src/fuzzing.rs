//! Entry points for the coverage-guided fuzzers (`fuzz/`, cargo-fuzz) and for the test that
//! replays their corpora with the stable toolchain (`integration/fuzz_corpus.rs`). Each takes
//! arbitrary bytes and must never panic, hang or allocate beyond what the bytes can back;
//! errors are fine (they are the expected answer to garbage).

use std::sync::OnceLock;

use crate::cache::EntityCache;
use crate::config::PipelineConfig;
use crate::encode::JsonEncoder;
use crate::sysflow::ocf::{BlockLimits, Frame, OcfReader};
use crate::sysflow::stream::{decode_packet, header_version, StreamSchemas};
use crate::sysflow::trace::decode_block_limited;
use crate::sysflow::{DatumPlan, Decoded};

fn schemas() -> &'static StreamSchemas {
    static S: OnceLock<StreamSchemas> = OnceLock::new();
    S.get_or_init(|| StreamSchemas::builtin().expect("built-in schemas compile"))
}

/// Splits `data` into packets: each is a 2-byte little-endian length then that many bytes
/// (what is left at the end is the last packet).
fn packets(mut data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    while data.len() >= 2 {
        let n = u16::from_le_bytes([data[0], data[1]]) as usize;
        let rest = &data[2..];
        let n = n.min(rest.len());
        out.push(&rest[..n]);
        data = &rest[n..];
    }
    if !data.is_empty() {
        out.push(data);
    }
    out
}

/// The socket datum path: packets as the socket driver hands them to the reader (the first
/// byte picks the schema the connection starts with, 4 or 5), each decoded alone, the records
/// applied to the entity tables and encoded as JSON, as the pipeline does.
pub fn socket_datum(data: &[u8]) {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let s = schemas();
    let mut plan = s.plan(if first & 1 == 0 { 5 } else { 4 });
    let mut cache = EntityCache::default();
    let mut enc = JsonEncoder::new();
    let mut out = Vec::new();
    for p in packets(rest) {
        if let Some(Ok(v)) = header_version(p) {
            match s.plan(v) {
                Some(next) => plan = Some(next),
                // An unknown version closes the connection: nothing more is decoded.
                None => return,
            }
        }
        let Some(pl) = &plan else { continue };
        if let Ok(Decoded::Record(r)) = decode_packet(pl, p) {
            if let Some(rec) = cache.apply(r) {
                out.clear();
                enc.encode(&rec, &mut out);
            }
        }
    }
}

/// The trace reader: container framing, block limits (small ones, so the fuzzer reaches
/// them), decoding, the entity tables and the JSON encoder.
pub fn trace_file(data: &[u8]) {
    let Ok(mut r) = OcfReader::open(data) else {
        return;
    };
    let limits = BlockLimits {
        max_inflated: 1 << 20,
        max_records: 4096,
        max_record: 1 << 20,
    };
    r.set_limits(limits);
    let Ok(plan) = DatumPlan::compile(r.schema_json()) else {
        return;
    };
    let codec = r.codec();
    let mut scratch = Vec::new();
    let mut cache = EntityCache::default();
    let mut enc = JsonEncoder::new();
    let mut out = Vec::new();
    // A damaged file resynchronises block by block; bound the work per input anyway.
    for _ in 0..10_000 {
        match r.next_frame() {
            Frame::Block(b) => {
                let o = decode_block_limited(&plan, codec, &b, &mut scratch, &limits);
                for rec in o.records {
                    if let Some(rec) = cache.apply(rec) {
                        out.clear();
                        enc.encode(&rec, &mut out);
                    }
                }
            }
            Frame::Damaged { .. } => {}
            Frame::End => return,
        }
    }
}

/// The `pipeline.json` parser and validator. Configurations that name policy files are only
/// parsed, not planned: planning would read whatever path the fuzzer wrote.
pub fn pipeline_config(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let env = [("EXPORTER_BUFFER".to_string(), "10".to_string())];
    let Ok(cfg) = PipelineConfig::parse(&text, "fuzz.json", &env) else {
        return;
    };
    let reads_files = cfg.stages.iter().any(|s| {
        s.get("policies").is_some()
            || s.get("syslog.cafile").is_some()
            || s.get("es.cafile").is_some()
    });
    if !reads_files {
        let _ = crate::pipeline::plan(&cfg);
    }
    let _ = crate::observe::configured_listen(&cfg);
}

/// The policy loader and compiler: the first byte picks the language (even: Falco-style
/// YAML, odd: a Sigma rule), the rest is the file text. Loaded and compiled in the default
/// mode (every warning path runs) and, for Falco text, in strict mode too.
pub fn policy_text(data: &[u8]) {
    use crate::policy::{actions, collector, diag::Diags, loader, sigma};
    let Some((&lang, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    for strict in [false, true] {
        let mut diags = Diags::new(strict);
        let mut files = loader::LoadedFiles::default();
        if lang % 2 == 0 {
            loader::load_text("fuzz.yaml", &text, &mut files, &mut diags);
        } else {
            let mut cfg = sigma::SigmaConfig {
                upstream: !strict,
                ..Default::default()
            };
            cfg.fields.insert("Image".into(), "sf.proc.exe".into());
            cfg.fields
                .insert("CommandLine".into(), "sf.proc.cmdline".into());
            sigma::load_sigma_text("fuzz.yml", &text, &cfg, &mut files, &mut diags);
        }
        let opts = collector::CompileOptions {
            quirks: !strict,
            disable_unsupported: strict,
        };
        let set = collector::compile_with(&files, &actions::registry(), &mut diags, opts);
        // Evaluate what compiled on one record of each type.
        for k in crate::policy::ir::TYPES {
            let r = crate::policy::attr::blank_record(k);
            for rule in &set.rules {
                let _ = rule.pred.eval(&r);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets_split_by_length_prefix() {
        assert_eq!(
            packets(&[2, 0, 7, 8, 1, 0, 9]),
            vec![&[7u8, 8][..], &[9][..]]
        );
        assert_eq!(packets(&[9, 0, 1]), vec![&[1u8][..]]);
        assert_eq!(packets(&[5]), vec![&[5u8][..]]);
        // Garbage never panics.
        socket_datum(&[0, 255, 255, 0, 0, 0]);
        trace_file(b"Obj\x01garbage");
        pipeline_config(br#"{"pipeline":[{"processor":"exporter","queue":"1e99"}]}"#);
        policy_text(b"\x00- rule: r\n  desc: d\n  condition: (((\n");
        policy_text(b"\x01title: t\ndetection:\n  s:\n    Image|cidr: x\n  condition: s\n");
    }
}
