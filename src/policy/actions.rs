//! Actions: named operations a rule runs on the records it matched. Names resolve when the
//! policies load (an unknown name is a load error).

use std::collections::HashMap;
use std::sync::Arc;

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

/// An action run on records a rule matched.
pub trait Action: Send + Sync {
    fn name(&self) -> &str;
    fn run(&self, rec: &mut Record);
}

/// Named actions available to rules.
pub type ActionRegistry = HashMap<String, Arc<dyn Action>>;
