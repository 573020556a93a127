//! Criterion benches of the hot path on a generated in-memory trace: block decoding, entity
//! cache + record assembly, and JSON encoding. The end-to-end figures come from `sfbench`
//! (see docs/performance.md).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

use sfprocessor::cache::EntityCache;
use sfprocessor::encode::JsonEncoder;
use sfprocessor::gen::{GenConfig, Generator};
use sfprocessor::sysflow::ocf::{Frame, OcfReader, RawBlock};
use sfprocessor::sysflow::trace::decode_block;
use sfprocessor::sysflow::writer::{avro_codec, schema, SchemaVersion, TraceWriter};
use sfprocessor::sysflow::DatumPlan;

const RECORDS: u64 = 50_000;

fn fixture() -> (DatumPlan, sfprocessor::sysflow::ocf::Codec, Vec<RawBlock>) {
    let s = schema(SchemaVersion::V5).expect("schema");
    let mut w = TraceWriter::new(
        &s,
        SchemaVersion::V5,
        avro_codec("deflate").expect("codec"),
        Vec::new(),
    );
    for r in Generator::new(GenConfig {
        seed: 9,
        records: RECORDS,
        ..Default::default()
    }) {
        w.append(&r).expect("append");
    }
    let bytes = w.finish().expect("finish");
    let mut r = OcfReader::open(&bytes[..]).expect("open");
    let plan = DatumPlan::compile(r.schema_json()).expect("plan");
    let codec = r.codec();
    let mut blocks = Vec::new();
    while let Frame::Block(b) = r.next_frame() {
        blocks.push(b);
    }
    (plan, codec, blocks)
}

fn benches(c: &mut Criterion) {
    let (plan, codec, blocks) = fixture();
    let mut g = c.benchmark_group("hot_path");
    g.throughput(Throughput::Elements(RECORDS));
    g.sample_size(20);
    g.bench_function("decode", |b| {
        let mut scratch = Vec::new();
        b.iter(|| {
            let mut n = 0;
            for blk in &blocks {
                n += decode_block(&plan, codec, blk, &mut scratch).records.len();
            }
            n
        })
    });
    g.bench_function("decode+cache", |b| {
        let mut scratch = Vec::new();
        b.iter(|| {
            let mut cache = EntityCache::default();
            let mut n = 0;
            for blk in &blocks {
                for r in decode_block(&plan, codec, blk, &mut scratch).records {
                    n += usize::from(cache.apply(r).is_some());
                }
            }
            n
        })
    });
    g.bench_function("decode+cache+json", |b| {
        let mut scratch = Vec::new();
        let mut out = Vec::with_capacity(1 << 20);
        b.iter(|| {
            let mut cache = EntityCache::default();
            let mut enc = JsonEncoder::new();
            let mut bytes = 0;
            for blk in &blocks {
                for r in decode_block(&plan, codec, blk, &mut scratch).records {
                    if let Some(rec) = cache.apply(r) {
                        enc.encode(&rec, &mut out);
                        bytes += out.len();
                        out.clear();
                    }
                }
            }
            bytes
        })
    });
    g.finish();
}

criterion_group!(hot_path, benches);
criterion_main!(hot_path);
