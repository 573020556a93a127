//! The `sfprocessor` program: command line to run, and the run to an exit code. `main.rs`
//! only parses the command line; everything here can be driven from a test.

pub mod check;
pub mod exit;
pub mod health;
pub mod summary;

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use sfactors::StopFlag;

pub use exit::Exit;

use crate::cli::{plugin_dir_warning, Cli, LogLevel, USAGE};
use crate::config::PipelineConfig;
use crate::observe::profile::{self, CpuProfile};
use crate::observe::server::MetricsServer;
use crate::observe::{configured_listen, parse_listen};
use crate::pipeline::driver::{list_traces, resolve_paths, DriverPlan};
use crate::pipeline::{self, RunOptions};
use crate::seqpacket::Listener;

/// Upstream's `-version` line (sf-processor 0.7.0 prints `Version: 0.7.0+1, Avro Schema
/// Version: 4, Export Schema Version: 5 (JSON), 8.2 (ECS)`), so scripts that parse it keep
/// working. The build number is `SFPROCESSOR_BUILD_NUMBER` at build time, else `1` as in
/// upstream's own builds; the Avro schema version is the reader model's (5).
pub fn version_line() -> String {
    format!(
        "Version: {}+{}, Avro Schema Version: {}, Export Schema Version: {} (JSON), {} (ECS)",
        env!("CARGO_PKG_VERSION"),
        option_env!("SFPROCESSOR_BUILD_NUMBER").unwrap_or("1"),
        crate::sysflow::READER_SCHEMA_VERSION,
        crate::encode::json::JSON_SCHEMA_VERSION,
        crate::encode::ecs::ECS_VERSION
    )
}

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

/// Warnings about upstream's flags that have no effect here.
fn flag_warnings(cli: &Cli) -> Vec<String> {
    let mut w = Vec::new();
    if let Some(d) = &cli.plugdir {
        w.extend(plugin_dir_warning("plugdir", d));
    }
    if let Some(d) = &cli.driverdir {
        w.extend(plugin_dir_warning("driverdir", d));
    }
    if let Some(f) = &cli.traceprofile {
        w.push(format!(
            "-traceprofile {f}: Go's execution tracer has no counterpart in this build; no trace is written (use -cpuprofile, -perflog or the metrics endpoint)"
        ));
    }
    w
}

/// Raises the soft limit on open descriptors to the hard limit (systemd's default soft limit
/// is 1,024): the data path — the collector's connections, the exporters' sockets and files —
/// should never be short of descriptors because of what else the process holds.
fn raise_fd_limit() {
    let mut l = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write one rlimit struct we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) == 0 && l.rlim_cur < l.rlim_max {
            l.rlim_cur = l.rlim_max;
            let _ = libc::setrlimit(libc::RLIMIT_NOFILE, &l);
        }
    }
}

/// Runs the program for `cli` (after `-help` and `-version`).
pub fn run(cli: Cli) -> Exit {
    init_logging(cli.log.filter());
    raise_fd_limit();
    let env: Vec<(String, String)> = std::env::vars().collect();
    let cfg = match PipelineConfig::load(Path::new(&cli.config), &env) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("sfprocessor: configuration error: {e}");
            return Exit::Config;
        }
    };
    let mut plan = match pipeline::plan_with(&cfg, cli.strict) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("sfprocessor: configuration error: {e}");
            return Exit::Config;
        }
    };
    if let Some(d) = &cli.driver {
        if let Err(e) = plan.with_cli_driver(d) {
            eprintln!("sfprocessor: {e}");
            return Exit::Config;
        }
    }
    plan.warnings.extend(flag_warnings(&cli));
    let paths = resolve_paths(
        &plan.drivers,
        cli.path.as_deref().map(Path::new),
        &mut plan.warnings,
    );
    let listen = match &cli.metrics {
        Some(v) => parse_listen(v).map_err(|e| format!("-metrics: {e}")),
        None => configured_listen(&cfg).map_err(|e| format!("configuration error: {e}")),
    };
    let listen = match listen {
        Ok(l) => l,
        Err(e) => {
            eprintln!("sfprocessor: {e}");
            return Exit::Config;
        }
    };
    for w in &plan.warnings {
        tracing::warn!("{w}");
    }
    if cli.test {
        return check::test_report(&cfg, &plan, &paths);
    }
    let Some(paths) = paths.into_iter().collect::<Option<Vec<PathBuf>>>() else {
        eprintln!("sfprocessor: missing PATH (a trace file or directory, or the socket path with -driver socket)\n\n{USAGE}");
        return Exit::Config;
    };
    if let Some(m) = &cli.memprofile {
        if let Err(e) = profile::check_writable("-memprofile", Path::new(m)) {
            eprintln!("sfprocessor: {e}");
            return Exit::Config;
        }
    }
    let mut inputs = Vec::new();
    for (driver, path) in plan.drivers.iter().zip(&paths) {
        match open_input(driver, path) {
            Ok(i) => inputs.push(i),
            Err((code, e)) => {
                eprintln!("sfprocessor: input error: {e}");
                return code;
            }
        }
    }
    let input = if inputs.len() == 1 {
        inputs.remove(0)
    } else {
        pipeline::Input::Many(inputs)
    };
    let live = pipeline::Live::new();
    if let Some(addr) = listen {
        match MetricsServer::start(addr, live.clone()) {
            Ok(srv) => eprintln!(
                "sfprocessor: metrics at http://{}/metrics (also /healthz, /readyz)",
                srv.addr()
            ),
            Err(e) => {
                // Busy, not misconfigured: another process may free the port, so a unit's
                // restart can succeed (exit 2 would stop systemd from retrying).
                eprintln!("sfprocessor: metrics listener {addr}: {e}");
                return Exit::Busy;
            }
        }
    }
    let cpu = match &cli.cpuprofile {
        Some(f) => match CpuProfile::start(Path::new(f)) {
            Ok(p) => Some(p),
            Err(e) => {
                eprintln!("sfprocessor: {e}");
                return Exit::Config;
            }
        },
        None => None,
    };
    if let Some(every) = cli.perflog {
        crate::observe::perflog::spawn(live.clone(), every);
    }
    // Under a `Type=notify` unit: READY=1 once running, watchdog pings.
    let notifier = crate::observe::sdnotify::spawn(live.clone());
    // A progress bar on a terminal for file runs (never for the live agent's socket).
    let bar = match &input {
        pipeline::Input::Files(listing)
            if crate::progress::wanted(matches!(cli.log, LogLevel::Quiet | LogLevel::Health)) =>
        {
            let l = live.clone();
            Some(crate::progress::Progress::start(
                crate::progress::total_bytes(&listing.files),
                move || {
                    let (records, alerts) = l.progress();
                    crate::progress::Sample {
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
        crate::observe::sdnotify::stopping();
    }
    if let Some(p) = cpu {
        match p.finish() {
            Ok(samples) => tracing::info!(
                samples,
                file = cli.cpuprofile.as_deref().unwrap_or_default(),
                "CPU profile written"
            ),
            Err(e) => eprintln!("sfprocessor: {e}"),
        }
    }
    if let Some(m) = &cli.memprofile {
        if let Err(e) = profile::write_heap_summary(Path::new(m)) {
            eprintln!("sfprocessor: {e}");
        }
    }
    summary::summarize(&outcome, &live)
}

/// What feeds the run: the traces under `path`, or the socket bound at `path`. A socket path
/// another listener holds is [`Exit::Busy`]; other errors are [`Exit::Config`].
fn open_input(driver: &DriverPlan, path: &Path) -> Result<pipeline::Input, (Exit, String)> {
    match driver {
        DriverPlan::File { .. } => list_traces(path)
            .map(pipeline::Input::Files)
            .map_err(|e| (Exit::Config, e.to_string())),
        DriverPlan::Socket(settings) => {
            let listener = Listener::bind_with(path, 16, &settings.access).map_err(|e| {
                let code = if e.kind() == std::io::ErrorKind::AddrInUse {
                    Exit::Busy
                } else {
                    Exit::Config
                };
                (code, format!("socket {}: {e}", path.display()))
            })?;
            Ok(pipeline::Input::Socket {
                listener,
                settings: settings.clone(),
            })
        }
    }
}
