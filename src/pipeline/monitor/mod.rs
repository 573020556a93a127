//! The policy monitor (`monitor: local`): watches the policy path, and when its files changed
//! and then stayed unchanged for one interval (debounce), compiles the new set off the data
//! path and swaps it in between batches. A broken edit keeps the old rules running and
//! reports the error with its position.

use std::time::{Duration, SystemTime};

use actix::prelude::*;

use super::PolicyStage;
use crate::policy::engine::{load_policies, Language, Mode};
use crate::policy::files::policy_files;

/// What the files looked like: (path, modification time, length) of every policy file, or
/// why they cannot be listed (the path was deleted, or is now a FIFO or a device).
type Signature = Result<Vec<(std::path::PathBuf, Option<SystemTime>, u64)>, String>;

fn signature(stage: &PolicyStage) -> Signature {
    let mut files = policy_files(&stage.path).map_err(|e| e.to_string())?;
    // A Sigma stage also depends on its field-mapping file.
    if let Language::Sigma { config: Some(c) } = &stage.load.language {
        files.push(c.clone());
    }
    Ok(files
        .into_iter()
        .map(|f| {
            let m = std::fs::metadata(&f).ok();
            let mtime = m.as_ref().and_then(|m| m.modified().ok());
            let len = m.map(|m| m.len()).unwrap_or(0);
            (f, mtime, len)
        })
        .collect())
}

/// Files in `new` that `old` did not list, and the other way round.
fn file_changes(old: &Signature, new: &Signature) -> (Vec<String>, Vec<String>) {
    let names = |s: &Signature| -> Vec<String> {
        s.as_ref()
            .map(|v| v.iter().map(|(p, _, _)| p.display().to_string()).collect())
            .unwrap_or_default()
    };
    let (o, n) = (names(old), names(new));
    let added = n.iter().filter(|f| !o.contains(f)).cloned().collect();
    let removed = o.iter().filter(|f| !n.contains(f)).cloned().collect();
    (added, removed)
}

/// The monitor actor (supervised: a restart re-reads the current signature).
pub struct PolicyMonitor {
    stage: PolicyStage,
    interval: Duration,
    applied: Signature,
    pending: Option<Signature>,
}

impl PolicyMonitor {
    /// A monitor of `stage` whose current files are taken as applied.
    pub fn new(stage: PolicyStage, interval: Duration) -> Self {
        let applied = signature(&stage);
        PolicyMonitor {
            stage,
            interval,
            applied,
            pending: None,
        }
    }

    pub fn start(arbiter: &ArbiterHandle, stage: PolicyStage, interval: Duration) -> Addr<Self> {
        Supervisor::start_in_arbiter(arbiter, move |_| PolicyMonitor::new(stage, interval))
    }

    fn refused(&self, why: &str) {
        self.stage
            .handle
            .reloads
            .failed
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tracing::error!(
            path = %self.stage.path.display(),
            "policy reload refused, the previous rules stay in force: {why}"
        );
    }

    /// Looks at the files; once a change has settled, reloads. Every reload that does not
    /// take effect — the path deleted or replaced by something that is not a regular file,
    /// a file unreadable, a compile error, an empty alert set — is logged and counted
    /// (`sfprocessor_policy_reloads_total{result="failed"}`); files added or removed from a
    /// policy directory are named when the new set takes effect.
    pub fn check(&mut self) {
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
        let previous = std::mem::replace(&mut self.applied, now);
        if let Err(e) = &self.applied {
            self.refused(e);
            return;
        }
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
                let (added, removed) = file_changes(&previous, &self.applied);
                for f in &removed {
                    tracing::warn!(file = %f, "policy file removed: its rules are no longer applied");
                }
                for f in &added {
                    tracing::info!(file = %f, "policy file added");
                }
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
            Err(e) => self.refused(&e),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PipelineConfig;
    use std::sync::atomic::Ordering;

    const RULE: &str =
        "- rule: r\n  desc: d\n  condition: sf.proc.exe = /bin/a\n  output: o\n  priority: low\n";

    fn monitor(path: &std::path::Path) -> PolicyMonitor {
        let text = format!(
            r#"{{"pipeline":[
 {{"processor":"sysflowreader","handler":"flattener","in":"sysflow sysflowchan","out":"flat flattenerchan"}},
 {{"processor":"policyengine","in":"flat flattenerchan","out":"evt eventchan","policies":"{}"}},
 {{"processor":"exporter","in":"evt eventchan","export":"null"}}]}}"#,
            path.display()
        );
        let cfg = PipelineConfig::parse(&text, "m.json", &[]).unwrap();
        let plan = crate::pipeline::plan(&cfg).unwrap();
        let stage = plan.stages[1].policy.clone().unwrap();
        PolicyMonitor::new(stage, Duration::from_millis(10))
    }

    /// Two checks: one sees the change, the next (unchanged) acts on it.
    fn settle(m: &mut PolicyMonitor) {
        m.check();
        m.check();
    }

    fn counts(m: &PolicyMonitor) -> (u64, u64) {
        let r = &m.stage.handle.reloads;
        (
            r.ok.load(Ordering::Relaxed),
            r.failed.load(Ordering::Relaxed),
        )
    }

    #[test]
    fn every_refused_reload_is_counted_and_the_rules_stay() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("p.yaml");
        std::fs::write(&file, RULE).unwrap();
        let mut m = monitor(&file);
        let id = m.stage.handle.current().id;
        // Deleted.
        std::fs::remove_file(&file).unwrap();
        settle(&mut m);
        assert_eq!(counts(&m), (0, 1));
        // Replaced by a FIFO.
        let c = std::ffi::CString::new(file.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        settle(&mut m);
        assert_eq!(counts(&m), (0, 2));
        // Replaced by a directory holding nothing: an empty alert set is refused too.
        std::fs::remove_file(&file).unwrap();
        std::fs::create_dir(&file).unwrap();
        settle(&mut m);
        assert_eq!(counts(&m), (0, 3));
        assert_eq!(m.stage.handle.current().id, id, "previous rules in force");
        // Back to a regular file: reloaded.
        std::fs::remove_dir(&file).unwrap();
        std::fs::write(&file, RULE.replace("/bin/a", "/bin/b")).unwrap();
        settle(&mut m);
        assert_eq!(counts(&m), (1, 3));
        assert_ne!(m.stage.handle.current().id, id);
    }
}
