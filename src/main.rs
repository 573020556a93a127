//! `sfprocessor`: reads SysFlow traces, runs the configured pipeline, exports the results.
//!
//! Exit codes: 0 success; 1 input was skipped (damaged blocks, unreadable files) or records
//! were not delivered (see the summary on stderr); 2 usage or configuration error; 3 a
//! pipeline node failed.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::Ordering;

use sfactors::StopFlag;
use sfprocessor::cli::{Cli, USAGE};
use sfprocessor::config::PipelineConfig;
use sfprocessor::observe::server::MetricsServer;
use sfprocessor::observe::{configured_listen, parse_listen};
use sfprocessor::pipeline::driver::{list_traces, DriverPlan};
use sfprocessor::pipeline::{self, RunOptions};
use sfprocessor::seqpacket::Listener;
use sfprocessor::stats::BadPacket;

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
    let mut plan = match pipeline::plan_with(&cfg, cli.strict) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("sfprocessor: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(d) = &cli.driver {
        if let Err(e) = plan.with_cli_driver(d) {
            eprintln!("sfprocessor: {e}");
            return ExitCode::from(2);
        }
    }
    let listen = match &cli.metrics {
        Some(v) => parse_listen(v).map_err(|e| format!("-metrics: {e}")),
        None => configured_listen(&cfg).map_err(|e| format!("configuration error: {e}")),
    };
    let listen = match listen {
        Ok(l) => l,
        Err(e) => {
            eprintln!("sfprocessor: {e}");
            return ExitCode::from(2);
        }
    };
    for w in &plan.warnings {
        tracing::warn!("{w}");
    }
    let path = cli
        .path
        .as_deref()
        .map(PathBuf::from)
        .or_else(|| plan.driver.configured_path().cloned());
    if cli.test {
        return test_report(&cfg, &plan, path.as_deref());
    }
    let Some(path) = path else {
        eprintln!("sfprocessor: missing PATH (a trace file or directory, or the socket path with -driver socket)\n\n{USAGE}");
        return ExitCode::from(2);
    };
    let input = match open_input(&plan, &path) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("sfprocessor: input error: {e}");
            return ExitCode::from(2);
        }
    };
    let live = pipeline::Live::new();
    if let Some(addr) = listen {
        match MetricsServer::start(addr, live.clone()) {
            Ok(srv) => eprintln!(
                "sfprocessor: metrics at http://{}/metrics (also /healthz, /readyz)",
                srv.addr()
            ),
            Err(e) => {
                eprintln!("sfprocessor: metrics listener {addr}: {e}");
                return ExitCode::from(2);
            }
        }
    }
    // Under a `Type=notify` unit: READY=1 once running, watchdog pings.
    let notifier = sfprocessor::observe::sdnotify::spawn(live.clone());
    // A progress bar on a terminal for file runs (never for the live agent's socket).
    let bar = match &input {
        pipeline::Input::Files(listing)
            if sfprocessor::progress::wanted(cli.log == sfprocessor::cli::LogLevel::Quiet) =>
        {
            let l = live.clone();
            Some(sfprocessor::progress::Progress::start(
                sfprocessor::progress::total_bytes(&listing.files),
                move || {
                    let (records, alerts) = l.progress();
                    sfprocessor::progress::Sample {
                        bytes: l.bytes_read.load(Ordering::Relaxed),
                        records,
                        alerts,
                    }
                },
            ))
        }
        _ => None,
    };
    let outcome = pipeline::run_live(
        &plan,
        input,
        StopFlag::new(),
        RunOptions::default(),
        live.clone(),
    );
    if let Some(b) = bar {
        b.finish();
    }
    if notifier.is_some() {
        sfprocessor::observe::sdnotify::stopping();
    }
    summarize(&outcome, &live)
}

/// What feeds the run: the traces under `path`, or the socket bound at `path`.
fn open_input(plan: &pipeline::PipelinePlan, path: &Path) -> Result<pipeline::Input, String> {
    match &plan.driver {
        DriverPlan::File { .. } => list_traces(path).map(pipeline::Input::Files),
        DriverPlan::Socket(settings) => {
            let listener = Listener::bind(path, 16).map_err(|e| format!("socket: {e}"))?;
            Ok(pipeline::Input::Socket {
                listener,
                settings: settings.clone(),
            })
        }
    }
}

/// `-test`: the configuration is valid (it got this far), policies and warnings are listed,
/// network targets are contacted, and the input path is checked.
fn test_report(
    cfg: &PipelineConfig,
    plan: &pipeline::PipelinePlan,
    path: Option<&Path>,
) -> ExitCode {
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
    match (&plan.driver, path) {
        (DriverPlan::File { .. }, Some(p)) => match list_traces(p) {
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
        },
        (DriverPlan::Socket(_), Some(p)) => {
            // Not created by -test: only what would stop it from being created.
            if let Ok(m) = std::fs::symlink_metadata(p) {
                if !std::os::unix::fs::FileTypeExt::is_socket(&m.file_type()) {
                    eprintln!(
                            "sfprocessor: input error: socket: `{}` exists and is not a socket; it would not be deleted",
                            p.display()
                        );
                    return ExitCode::from(2);
                }
            }
            println!("socket driver: would listen on {}", p.display());
        }
        (_, None) => {}
    }
    ExitCode::SUCCESS
}

/// Per-rule match counts and evaluation time of each policy stage (log lines on stderr):
/// every rule that matched, and the ten slowest rules.
fn rule_summary(live: &pipeline::Live) {
    for p in live.policies() {
        let set = p.handle.current();
        let mut rows: Vec<(u64, u64, &str)> = set
            .rules
            .iter()
            .map(|r| {
                (
                    r.eval_nanos.load(Ordering::Relaxed),
                    r.matches.load(Ordering::Relaxed),
                    &*r.name,
                )
            })
            .collect();
        rows.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.cmp(&a.1)));
        for (i, (ns, matches, name)) in rows.iter().enumerate() {
            if *matches > 0 || i < 10 {
                tracing::info!(
                    node = %p.node,
                    rule = name,
                    matches,
                    eval_ms = format!("{:.3}", *ns as f64 / 1e6),
                    "rule summary"
                );
            }
        }
    }
}

/// Prints the end-of-run summary on stderr and picks the exit code.
fn summarize(outcome: &pipeline::RunOutcome, live: &pipeline::Live) -> ExitCode {
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
    rule_summary(live);
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
    if live.driver() == "socket" {
        let st = &live.socket;
        let bad = st.bad_total();
        eprintln!(
            "sfprocessor: socket: {} connection(s), {} packet(s), {} bad ({})",
            st.connections.load(Ordering::Relaxed),
            st.packets.load(Ordering::Relaxed),
            bad,
            BadPacket::ALL
                .iter()
                .map(|b| format!("{} {}", b.label(), st.bad(*b)))
                .collect::<Vec<_>>()
                .join(", ")
        );
        if bad > 0 && outcome.skipped.is_empty() {
            eprintln!("sfprocessor: finished with skipped input ({bad} socket packet(s) not used)");
            return ExitCode::from(1);
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
