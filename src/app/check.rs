//! `-test`: validate the configuration and the policies, contact the exporters' targets and
//! check the input path, without running anything.

use std::path::{Path, PathBuf};

use super::exit::Exit;
use crate::config::PipelineConfig;
use crate::pipeline::driver::{list_traces, DriverPlan};
use crate::pipeline::{self};

/// `-test`: the configuration is valid (it got this far), policies and warnings are listed,
/// network targets are contacted, and the input path is checked. The last line counts the
/// warnings; the line before it names the unknown keys that look like typos of known ones.
pub fn test_report(
    cfg: &PipelineConfig,
    plan: &pipeline::PipelinePlan,
    paths: &[Option<PathBuf>],
) -> Exit {
    let code = checks(cfg, plan, paths);
    if !plan.typos.is_empty() {
        println!(
            "warning: {} unknown key(s) look like a typo of a known key, so that setting is not applied: {}",
            plan.typos.len(),
            plan.typos.join(", ")
        );
    }
    println!(
        "{} warning(s){}",
        plan.warnings.len(),
        if plan.warnings.is_empty() {
            ""
        } else {
            " (listed above; -strict makes unknown keys and lax policy constructs errors)"
        }
    );
    code
}

fn checks(cfg: &PipelineConfig, plan: &pipeline::PipelinePlan, paths: &[Option<PathBuf>]) -> Exit {
    println!(
        "configuration {} is valid: {} stage(s), {} warning(s)",
        cfg.file.display(),
        plan.stages.len(),
        plan.warnings.len()
    );
    for sp in &plan.stages {
        if let Some(ps) = &sp.policy {
            let set = ps.handle.current();
            let c = set.counts;
            println!(
                    "pipeline[{}] (policyengine): {} rule(s), {} macro(s), {} list(s), {} filter/drop(s) from {} ({:?} mode, {} shard(s))",
                    sp.config.index,
                    c.rules,
                    c.macros,
                    c.lists,
                    c.filters,
                    ps.path.display(),
                    ps.handle.mode,
                    ps.shards
                );
        }
    }
    for w in &plan.warnings {
        println!("warning: {w}");
    }
    // Exporter targets: connect (and handshake) now, so a wrong address or a target that
    // is down is found before deployment.
    let mut unhealthy = 0;
    for sp in &plan.stages {
        if let pipeline::StageKind::Exporter(ec) = &sp.kind {
            if let Some(q) = &ec.delivery.disk {
                if let Err(code) = check_queue(sp.config.index, &q.path) {
                    return code;
                }
            }
            if !ec.is_network() {
                continue;
            }
            let r = ec.open().and_then(|mut t| t.healthcheck());
            match r {
                Ok(()) => println!(
                    "pipeline[{}] (exporter): {} is reachable",
                    sp.config.index,
                    ec.target()
                ),
                Err(e) => {
                    unhealthy += 1;
                    eprintln!(
                        "sfprocessor: pipeline[{}] (exporter): healthcheck failed: {e}",
                        sp.config.index
                    );
                }
            }
        }
    }
    if unhealthy > 0 {
        return Exit::Incomplete;
    }
    for (driver, path) in plan.drivers.iter().zip(paths) {
        if let Err(code) = check_input(driver, path.as_deref()) {
            return code;
        }
    }
    Exit::Ok
}

/// A disk queue's directory: what it holds (read-only: an agent may be running on it), or
/// why it cannot be used (exit 2).
fn check_queue(index: usize, dir: &Path) -> Result<(), Exit> {
    if !dir.exists() {
        let parent = dir.parent().filter(|p| !p.as_os_str().is_empty());
        if parent.is_some_and(|p| !p.is_dir()) {
            eprintln!(
                "sfprocessor: pipeline[{index}] (exporter): queue.path {}: its parent directory does not exist",
                dir.display()
            );
            return Err(Exit::Config);
        }
        println!(
            "pipeline[{index}] (exporter): disk queue {} (created at start)",
            dir.display()
        );
        return Ok(());
    }
    match crate::queue::inspect::inspect(dir) {
        Ok(i) => {
            println!(
                "pipeline[{index}] (exporter): disk queue {}: {} records queued in {} segment(s){}{}",
                dir.display(),
                i.records,
                i.segments,
                if i.locked { ", in use by a running agent" } else { "" },
                if i.damage.is_empty() {
                    String::new()
                } else {
                    format!(", {} damaged place(s) (see sfprint --queue)", i.damage.len())
                }
            );
            Ok(())
        }
        Err(e) => {
            eprintln!("sfprocessor: pipeline[{index}] (exporter): {e}");
            Err(Exit::Config)
        }
    }
}

/// What would stop a driver from reading `path`.
fn check_input(driver: &DriverPlan, path: Option<&Path>) -> Result<(), Exit> {
    match (driver, path) {
        (DriverPlan::File { .. }, Some(p)) => match list_traces(p) {
            Err(e) => {
                eprintln!("sfprocessor: input error: {e}");
                Err(Exit::Config)
            }
            Ok(l) if !l.skipped.is_empty() => {
                eprintln!(
                    "sfprocessor: input: {} entry(ies) would be skipped:",
                    l.skipped.len()
                );
                for s in &l.skipped {
                    eprintln!("  - {s}");
                }
                Err(Exit::Incomplete)
            }
            Ok(_) => Ok(()),
        },
        (DriverPlan::Socket(_), Some(p)) => {
            // Not created by -test: only what would stop it from being created.
            if let Err(e) = crate::seqpacket::check_bindable(p) {
                eprintln!("sfprocessor: input error: socket: {e}");
                // Another agent listening there is busy, as at start (exit 4).
                return Err(if e.kind() == std::io::ErrorKind::AddrInUse {
                    Exit::Busy
                } else {
                    Exit::Config
                });
            }
            println!("socket driver: would listen on {}", p.display());
            Ok(())
        }
        (_, None) => Ok(()),
    }
}
