//! Conformance over every real trace in `../shared/upstream`: decoded record counts per type
//! match `derived/trace-inventory.json`.

mod common;

use common::{inventory, kind_for_inventory_name, upstream};
use sfprocessor::sysflow::trace::read_trace;
use sfprocessor::sysflow::Kind;

#[test]
fn every_trace_decodes_to_the_inventory_counts() {
    let inv = inventory();
    assert_eq!(inv.len(), 37, "the inventory lists 37 traces");
    let mut failures = Vec::new();
    for t in &inv {
        let path = upstream().join(&t.path);
        let summary = match read_trace(&path, |_| {}) {
            Ok(s) => s,
            Err(e) => {
                failures.push(format!("{}: {e}", t.path));
                continue;
            }
        };
        if !summary.damage.is_empty() {
            failures.push(format!("{}: damage {:?}", t.path, summary.damage));
        }
        assert_eq!(summary.blocks, t.blocks, "{}: block count", t.path);
        let mut expected = [0u64; 12];
        for (name, n) in &t.counts {
            let k = kind_for_inventory_name(name, &t.writer_schema_variant);
            expected[k as usize] += n;
        }
        for k in Kind::ALL {
            let got = summary.counts.get(k);
            if got != expected[k as usize] {
                failures.push(format!(
                    "{}: {:?} decoded {got}, inventory {}",
                    t.path, k, expected[k as usize]
                ));
            }
        }
        assert_eq!(summary.counts.total(), t.records, "{}: total", t.path);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
