//! Helpers shared by the integration tests: where `../shared/upstream` is and what the trace
//! inventory says.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use sfprocessor::sysflow::Kind;

/// `../shared/upstream`, relative to the project root.
pub fn upstream() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/upstream")
}

pub struct InventoryTrace {
    pub path: String,
    pub writer_schema_variant: String,
    pub blocks: u64,
    pub records: u64,
    pub counts: BTreeMap<String, u64>,
}

pub fn inventory() -> Vec<InventoryTrace> {
    let p = upstream().join("derived/trace-inventory.json");
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let v: serde_json::Value = serde_json::from_str(&text).expect("inventory is JSON");
    v.as_array()
        .expect("inventory is a list")
        .iter()
        .map(|t| InventoryTrace {
            path: t["path"].as_str().expect("path").to_string(),
            writer_schema_variant: t["writer_schema_variant"]
                .as_str()
                .unwrap_or("")
                .to_string(),
            blocks: t["blocks"].as_u64().expect("blocks"),
            records: t["records"].as_u64().expect("records"),
            counts: t["counts"]
                .as_object()
                .expect("counts")
                .iter()
                .map(|(k, n)| (k.clone(), n.as_u64().expect("count")))
                .collect(),
        })
        .collect()
}

/// The kind a record counted under writer name `name` decodes to. Legacy pre-v1 files call the
/// process event `ProcessFlow` (see docs/compatibility.md); everything else maps by name.
pub fn kind_for_inventory_name(name: &str, variant: &str) -> Kind {
    let short = name.rsplit('.').next().unwrap_or(name);
    match short {
        "SFHeader" => Kind::Header,
        "Container" => Kind::Container,
        "Process" => Kind::Process,
        "File" => Kind::File,
        "ProcessEvent" => Kind::ProcessEvent,
        "NetworkFlow" => Kind::NetworkFlow,
        "FileFlow" => Kind::FileFlow,
        "FileEvent" => Kind::FileEvent,
        "NetworkEvent" => Kind::NetworkEvent,
        "ProcessFlow" if variant.starts_with("legacy") => Kind::ProcessEvent,
        "ProcessFlow" => Kind::ProcessFlow,
        "Pod" => Kind::Pod,
        "K8sEvent" => Kind::K8sEvent,
        other => panic!("unknown record name {other}"),
    }
}
