//! Actions: named operations a rule runs on the records it matched. Names resolve when the
//! policies load (an unknown name is a load error).

use std::collections::HashMap;
use std::sync::Arc;

use super::compile::{Action, ActionRegistry};
use crate::record::Record;

/// Upstream's example action: tags the record with the current time in nanoseconds.
pub struct Now;

impl Action for Now {
    fn name(&self) -> &str {
        "now"
    }
    fn run(&self, rec: &mut Record) {
        let ns = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        rec.tags.push(format!("now_in_nanos:{ns}"));
    }
}

/// The built-in actions.
pub fn registry() -> ActionRegistry {
    let mut r: ActionRegistry = HashMap::new();
    let now: Arc<dyn Action> = Arc::new(Now);
    r.insert(now.name().to_string(), now);
    r
}
