//! Running a plan: an actix System whose main future builds the actors, waits for every
//! node to finish (or one to fail), and watches for signals: the first starts a bounded
//! drain, a second ends it, and a run that still has not drained is abandoned.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use actix::prelude::*;
use sfactors::{Control, ControlEvent, MetricsSnapshot, RestartPolicy, StopFlag};

use super::build::{Builder, Input};
use super::live::Live;
use super::plan::PipelinePlan;
use crate::cache::CacheStats;
use crate::diagnostics::{Diagnostics, Skipped};
use crate::shutdown::Shutdown;

/// Tuning of a run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Records per driver batch (whole blocks).
    pub batch_records: u64,
    /// Batches in flight per edge.
    pub window: usize,
    pub restart: RestartPolicy,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            batch_records: 4096,
            window: 4,
            restart: RestartPolicy::default(),
        }
    }
}

/// How a run ended.
#[derive(Debug, Default)]
pub struct RunOutcome {
    pub metrics: Vec<MetricsSnapshot>,
    pub skipped: Vec<Skipped>,
    pub cache: CacheStats,
    /// Socket packets that were not used (bad, truncated, before a header).
    pub socket_bad_packets: u64,
    /// Set when a node escalated (the run stopped early).
    pub failure: Option<String>,
    /// Set when the run was stopped by a signal.
    pub interrupted: bool,
    /// Set when the pipeline had not drained `retry.drain_timeout` plus a grace period after
    /// a signal: the run was abandoned with records still in flight (see
    /// [`RunOutcome::in_flight`]); some threads may still be blocked.
    pub abandoned: bool,
}

impl RunOutcome {
    /// Records exported by all exporters.
    pub fn exported(&self) -> u64 {
        self.metrics
            .iter()
            .filter(|m| m.name.starts_with("exporter"))
            .map(|m| m.sent_records)
            .sum()
    }

    /// Per exporter: records it received that were neither delivered nor counted failed or
    /// dropped (non-zero only when the run was abandoned).
    pub fn in_flight(&self) -> Vec<(String, u64)> {
        self.metrics
            .iter()
            .filter(|m| m.name.starts_with("exporter"))
            .map(|m| {
                let settled = m.sent_records + m.failed_records + m.dropped_records;
                (m.name.clone(), m.received_records.saturating_sub(settled))
            })
            .filter(|(_, n)| *n > 0)
            .collect()
    }
}

/// How long after the drain timeout a run stopped by a signal is abandoned if a stage is
/// still blocked (a write that ignores its timeout, a terminal nobody reads).
pub const ABANDON_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// How the run's main future ended.
enum RunEnd {
    Done(Result<(), ControlEvent>),
    /// Not drained in time after a signal.
    Abandoned,
}

/// Runs `plan` over `input` until the input ends (or `stop` is set), draining every stage.
pub fn run(
    plan: &PipelinePlan,
    input: impl Into<Input>,
    stop: StopFlag,
    opts: RunOptions,
) -> RunOutcome {
    run_live(plan, input.into(), stop, opts, Live::new())
}

/// [`run`], registering every part in `live` (which the metrics endpoint reads meanwhile).
pub fn run_live(
    plan: &PipelinePlan,
    input: Input,
    stop: StopFlag,
    opts: RunOptions,
    live: Arc<Live>,
) -> RunOutcome {
    let diag = Arc::new(Diagnostics::default());
    let cache_stats = Arc::new(Mutex::new(CacheStats::default()));
    let mut arbiters: Vec<Arbiter> = Vec::new();
    let sys = System::new();
    let shutdown = Shutdown::new();
    let drain = plan.drain_timeout();
    let result: Result<RunEnd, String> = sys.block_on({
        let arbiters = &mut arbiters;
        let live = live.clone();
        let diag = diag.clone();
        let cache_stats = cache_stats.clone();
        let shutdown = shutdown.clone();
        let stop = stop.clone();
        let opts = &opts;
        async move {
            let (control, mut handle) = Control::new();
            let mut b = Builder {
                plan,
                opts,
                control,
                shutdown: shutdown.clone(),
                diag,
                cache_stats,
                live: live.clone(),
                stop: stop.clone(),
                arbiters,
                nodes: 0,
                reclaim: None,
                shared: None,
            };
            b.build(input).map_err(|e| e.to_string())?;
            let nodes = b.nodes;
            live.running.store(true, Ordering::Relaxed);
            // SIGHUP reopens output files (logrotate), for as long as the run lasts.
            actix::spawn(async {
                use tokio::signal::unix::{signal, SignalKind};
                let Ok(mut hup) = signal(SignalKind::hangup()) else {
                    return;
                };
                while hup.recv().await.is_some() {
                    crate::reopen::request();
                    tracing::info!("SIGHUP: output files are reopened before their next write");
                }
            });
            // A signal stops the driver and starts the drain clock; the pipeline then drains.
            // Should a stage still be blocked once the drain time and a grace period are
            // spent (a second signal ends the drain at once), the run is abandoned.
            let live_sig = live.clone();
            let watchdog = async move {
                let mut signals = Signals::new();
                signals.recv().await;
                live_sig.draining.store(true, Ordering::Relaxed);
                tracing::warn!(
                    "signal received: stopping input and draining the pipeline (at most {})",
                    humantime::format_duration(drain)
                );
                stop.stop();
                shutdown.signalled();
                tokio::select! {
                    _ = tokio::time::sleep(drain + ABANDON_GRACE) => {}
                    _ = signals.recv() => {
                        tracing::warn!("second signal: undelivered records are given up now");
                        shutdown.signalled();
                        tokio::time::sleep(ABANDON_GRACE).await;
                    }
                }
            };
            let end = tokio::select! {
                r = handle.wait(nodes) => RunEnd::Done(r),
                _ = watchdog => RunEnd::Abandoned,
            };
            Ok(end)
        }
    });
    live.running.store(false, Ordering::Relaxed);
    let abandoned = matches!(result, Ok(RunEnd::Abandoned));
    for a in &arbiters {
        a.stop();
    }
    if !abandoned {
        for a in arbiters {
            let _ = a.join();
        }
    }
    let failure = match result {
        Ok(RunEnd::Done(Ok(()))) => None,
        Ok(RunEnd::Done(Err(ControlEvent::Failed { node, reason }))) => {
            Some(format!("{node}: {reason}"))
        }
        Ok(RunEnd::Done(Err(ControlEvent::Finished(_)))) => None,
        Ok(RunEnd::Abandoned) => None,
        Err(e) => Some(e),
    };
    let cache = cache_stats.lock().map(|s| *s).unwrap_or_default();
    RunOutcome {
        metrics: live.snapshots(),
        skipped: diag.skipped(),
        cache,
        socket_bad_packets: live.socket.bad_total(),
        failure,
        interrupted: stop.is_stopped(),
        abandoned,
    }
}

/// SIGTERM and SIGINT, registered once so a second signal is not missed.
struct Signals {
    streams: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

impl Signals {
    fn new() -> Self {
        use tokio::signal::unix::{signal, SignalKind};
        let streams = match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(t), Ok(i)) => Some((t, i)),
            _ => None,
        };
        Signals { streams }
    }

    async fn recv(&mut self) {
        match &mut self.streams {
            Some((term, int)) => {
                tokio::select! {
                    _ = term.recv() => {},
                    _ = int.recv() => {},
                }
            }
            // Without signal handlers the run still ends at end of input.
            None => std::future::pending::<()>().await,
        }
    }
}
