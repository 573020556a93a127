//! The policy monitor (`monitor: local`): watches the policy path, and when its files changed
//! and then stayed unchanged for one interval (debounce), compiles the new set off the data
//! path and swaps it in between batches. A broken edit keeps the old rules running and
//! reports the error with its position.

use std::time::{Duration, SystemTime};

use actix::prelude::*;

use super::PolicyStage;
use crate::policy::engine::{load_policies, Language, Mode};
use crate::policy::files::policy_files;

/// What the files looked like: (path, modification time, length) of every policy file.
type Signature = Vec<(std::path::PathBuf, Option<SystemTime>, u64)>;

fn signature(stage: &PolicyStage) -> Signature {
    let mut files = policy_files(&stage.path).unwrap_or_default();
    // A Sigma stage also depends on its field-mapping file.
    if let Language::Sigma { config: Some(c) } = &stage.load.language {
        files.push(c.clone());
    }
    files
        .into_iter()
        .map(|f| {
            let m = std::fs::metadata(&f).ok();
            let mtime = m.as_ref().and_then(|m| m.modified().ok());
            let len = m.map(|m| m.len()).unwrap_or(0);
            (f, mtime, len)
        })
        .collect()
}

/// The monitor actor (supervised: a restart re-reads the current signature).
pub struct PolicyMonitor {
    stage: PolicyStage,
    interval: Duration,
    applied: Signature,
    pending: Option<Signature>,
}

impl PolicyMonitor {
    pub fn start(arbiter: &ArbiterHandle, stage: PolicyStage, interval: Duration) -> Addr<Self> {
        let applied = signature(&stage);
        Supervisor::start_in_arbiter(arbiter, move |_| PolicyMonitor {
            stage,
            interval,
            applied,
            pending: None,
        })
    }

    fn check(&mut self) {
        let now = signature(&self.stage);
        if now == self.applied {
            self.pending = None;
            return;
        }
        // Debounce: act only once the files stopped changing for a whole interval.
        if self.pending.as_ref() != Some(&now) {
            self.pending = Some(now);
            return;
        }
        self.pending = None;
        self.applied = now;
        let loaded = load_policies(&self.stage.path, &self.stage.load).map_err(|e| e.to_string());
        let loaded = loaded.and_then(|set| {
            if self.stage.handle.mode == Mode::Alert {
                if let Some(e) = set.empty_for_alerts() {
                    return Err(e);
                }
            }
            Ok(set)
        });
        match loaded {
            Ok(set) => {
                tracing::info!(
                    path = %self.stage.path.display(),
                    rules = set.counts.rules,
                    macros = set.counts.macros,
                    lists = set.counts.lists,
                    filters = set.counts.filters,
                    "policies reloaded"
                );
                for w in &set.warnings {
                    tracing::warn!("{w}");
                }
                self.stage.handle.swap(set);
                self.stage
                    .handle
                    .reloads
                    .ok
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            Err(e) => {
                self.stage
                    .handle
                    .reloads
                    .failed
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::error!("policy reload failed, the previous rules stay in force: {e}");
            }
        }
    }
}

impl Actor for PolicyMonitor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(self.interval, |act, _| act.check());
    }
}

impl Supervised for PolicyMonitor {
    fn restarting(&mut self, _ctx: &mut Context<Self>) {
        self.applied = signature(&self.stage);
        self.pending = None;
    }
}
