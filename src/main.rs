//! `sfprocessor`: reads SysFlow traces, runs the configured pipeline, exports the results.
//!
//! Exit codes: 0 success; 1 input was skipped (damaged blocks, unreadable files) or records
//! were not delivered (see the summary on stderr); 2 usage or configuration error; 3 a
//! pipeline node failed.

use std::path::Path;
use std::process::ExitCode;

use sfactors::StopFlag;
use sfprocessor::cli::{Cli, USAGE};
use sfprocessor::config::PipelineConfig;
use sfprocessor::pipeline::{self, driver::list_traces, RunOptions};

fn init_logging(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SFPROCESSOR_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

fn main() -> ExitCode {
    let cli = match Cli::parse(std::env::args().skip(1)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("sfprocessor: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if cli.help {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    if cli.version {
        println!(
            "sfprocessor {}\nreads SysFlow Avro schema versions 1 to 5 (including legacy pre-v1 traces)\nwrites JSON export schema {}",
            env!("CARGO_PKG_VERSION"),
            sfprocessor::encode::json::JSON_SCHEMA_VERSION
        );
        return ExitCode::SUCCESS;
    }
    init_logging(cli.log.filter());

    let env: Vec<(String, String)> = std::env::vars().collect();
    let cfg = match PipelineConfig::load(Path::new(&cli.config), &env) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("sfprocessor: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    let plan = match pipeline::plan(&cfg) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("sfprocessor: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    for w in &plan.warnings {
        tracing::warn!("{w}");
    }
    if cli.test {
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
            return ExitCode::from(1);
        }
        if let Some(p) = &cli.path {
            match list_traces(Path::new(p)) {
                Err(e) => {
                    eprintln!("sfprocessor: input error: {e}");
                    return ExitCode::from(2);
                }
                Ok(l) if !l.skipped.is_empty() => {
                    eprintln!(
                        "sfprocessor: input: {} entry(ies) would be skipped:",
                        l.skipped.len()
                    );
                    for s in &l.skipped {
                        eprintln!("  - {s}");
                    }
                    return ExitCode::from(1);
                }
                Ok(_) => {}
            }
        }
        return ExitCode::SUCCESS;
    }

    let Some(path) = cli.path.as_deref() else {
        eprintln!("sfprocessor: missing PATH\n\n{USAGE}");
        return ExitCode::from(2);
    };
    let files = match list_traces(Path::new(path)) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("sfprocessor: input error: {e}");
            return ExitCode::from(2);
        }
    };
    let outcome = pipeline::run(&plan, files, StopFlag::new(), RunOptions::default());
    summarize(&outcome)
}

/// Prints the end-of-run summary on stderr and picks the exit code.
fn summarize(outcome: &pipeline::RunOutcome) -> ExitCode {
    for m in &outcome.metrics {
        tracing::info!(
            node = %m.name,
            received = m.received_records,
            sent = m.sent_records,
            dropped = m.dropped_records,
            retried = m.retried_records,
            failed = m.failed_records,
            errors = m.errors,
            dead_letters = m.dead_letters,
            restarts = m.restarts,
            "node summary"
        );
    }
    if let Some(f) = &outcome.failure {
        eprintln!("sfprocessor: pipeline failed: {f}");
        return ExitCode::from(3);
    }
    let in_flight = outcome.in_flight();
    if outcome.abandoned {
        eprintln!(
            "sfprocessor: stopped by a signal; the pipeline had not drained {} after the drain timeout, so the run was abandoned",
            humantime::format_duration(pipeline::ABANDON_GRACE)
        );
        for (node, n) in &in_flight {
            eprintln!("  - {node}: {n} records not delivered (in flight when abandoned)");
        }
        let queued: u64 = outcome.metrics.iter().map(|m| m.queued).sum();
        if queued > 0 {
            eprintln!("  - {queued} batches still queued between stages were not processed");
        }
    }
    let undelivered: Vec<String> = outcome
        .metrics
        .iter()
        .filter(|m| m.dropped_records + m.failed_records > 0)
        .map(|m| {
            format!(
                "{}: {} records not delivered ({} failed, {} dropped)",
                m.name,
                m.dropped_records + m.failed_records,
                m.failed_records,
                m.dropped_records
            )
        })
        .collect();
    if !undelivered.is_empty() {
        eprintln!("sfprocessor: finished with undelivered records:");
        for u in &undelivered {
            eprintln!("  - {u}");
        }
    }
    if !outcome.skipped.is_empty() {
        eprintln!(
            "sfprocessor: finished with skipped input ({} problem(s)):",
            outcome.skipped.len()
        );
        for s in &outcome.skipped {
            eprintln!("  - {s}");
        }
        return ExitCode::from(1);
    }
    if !undelivered.is_empty() || outcome.abandoned {
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}
