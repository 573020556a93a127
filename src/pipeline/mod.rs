//! The pipeline: validates a configuration into a plan (stages and the channels between them)
//! and runs it as supervised actors: driver -> reader -> flattener -> policy engine(s) ->
//! exporter(s).

pub mod batch;
pub mod driver;
pub mod exporter;
pub mod flattener;
mod metrics;
pub mod monitor;
pub mod policy;
pub mod printer;
pub mod reader;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use actix::prelude::*;
use sfactors::{
    Control, ControlEvent, Downstream, Envelope, MetricsSnapshot, NodeActor, NodeMetrics, NodeSpec,
    RestartPolicy, SourceActor, StopFlag,
};

use crate::cache::{CacheLimits, CacheStats};
use crate::config::{ConfigError, PipelineConfig, StageConfig};
use crate::diagnostics::{Diagnostics, Skipped};
use crate::exporter::{ExporterConfig, KNOWN_KEYS as EXPORTER_KEYS};
use crate::policy::engine::{load_policies, Mode};
use crate::shutdown::Shutdown;
use crate::sysflow::ocf::BlockLimits;
use batch::Records;

/// Channel types of upstream's plugins.
pub const READER_IN: &str = "sysflowchan";
pub const READER_OUT: &str = "flattenerchan";
pub const POLICY_OUT: &str = "eventchan";

/// What a stage does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StageKind {
    /// `sysflowreader`: reader + flattener actors, then the handler.
    Reader(Handler),
    /// `policyengine`: policies, or a pass-through without them.
    Policy,
    Exporter(Box<ExporterConfig>),
    /// `example`: the built-in stand-in for upstream's example processor plugin.
    Example,
}

/// The `handler` of a `sysflowreader` stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handler {
    /// Records go to the stage's `out` channels.
    Flattener,
    /// Built-in stand-in for upstream's `printer` handler plugin: a log line per record, no
    /// output channel.
    Printer,
}

impl StageKind {
    pub fn is_reader(&self) -> bool {
        matches!(self, StageKind::Reader(_))
    }
}

/// A policy engine stage with policies.
#[derive(Clone)]
pub struct PolicyStage {
    pub handle: Arc<policy::PolicyHandle>,
    pub path: PathBuf,
    pub lenient: bool,
    /// Shard actors (`concurrency`).
    pub shards: usize,
    /// `monitor: local`: check interval.
    pub monitor: Option<std::time::Duration>,
}

impl std::fmt::Debug for PolicyStage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyStage")
            .field("path", &self.path)
            .field("shards", &self.shards)
            .field("monitor", &self.monitor)
            .finish()
    }
}

/// A validated stage.
#[derive(Debug, Clone)]
pub struct StagePlan {
    pub config: StageConfig,
    pub kind: StageKind,
    /// Policies of a `policyengine` stage (none: pass-through).
    pub policy: Option<PolicyStage>,
    /// Indexes of the stages that consume this stage's outputs.
    pub downstream: Vec<usize>,
    /// Number of stages producing into this stage's input.
    pub upstreams: usize,
}

/// A validated pipeline.
#[derive(Debug, Clone)]
pub struct PipelinePlan {
    pub stages: Vec<StagePlan>,
    /// What a trace block may hold (the reader stage's `block.maxsize`/`block.maxrecords`).
    pub block_limits: BlockLimits,
    /// Index of the reader stage the driver feeds.
    pub entry: usize,
    pub warnings: Vec<String>,
}

const READER_KEYS: &[&str] = &[
    "handler",
    "handlerlibpath",
    "filter.enabled",
    "filter.maxage",
    "block.maxsize",
    "block.maxrecords",
];

/// `block.maxsize` and `block.maxrecords` of the reader stage.
fn block_limits(cfg: &PipelineConfig, st: &StageConfig) -> Result<BlockLimits, ConfigError> {
    let d = BlockLimits::default();
    Ok(BlockLimits {
        max_inflated: cfg.bytes(st, "block.maxsize", d.max_inflated, 64 << 10, 1 << 30)?,
        max_records: cfg.count(st, "block.maxrecords", d.max_records, 1, 1 << 24)?,
    })
}
const POLICY_KEYS: &[&str] = &[
    "policies",
    "lenient",
    "mode",
    "monitor",
    "monitor.interval",
    "concurrency",
    "actiondir",
    "language",
    "config",
    "jsonschemaversion",
];

fn warn_unknown_keys(cfg: &PipelineConfig, st: &StageConfig, known: &[&str], w: &mut Vec<String>) {
    for s in st.settings.values() {
        let key = s.key.to_ascii_lowercase();
        let known_key = known.iter().any(|k| match k.strip_suffix('*') {
            Some(prefix) => key.starts_with(prefix),
            None => k.eq_ignore_ascii_case(&key),
        });
        if !known_key {
            w.push(format!(
                "{}: pipeline[{}] ({}): key `{}` is not used by this build and is ignored",
                cfg.file.display(),
                st.index,
                st.processor,
                s.key
            ));
        }
    }
}

fn parse_flag(cfg: &PipelineConfig, st: &StageConfig, key: &str) -> Result<bool, ConfigError> {
    match st.get(key).map(|v| v.trim().to_ascii_lowercase()) {
        None => Ok(false),
        Some(v) => match v.as_str() {
            "true" | "on" | "yes" | "1" => Ok(true),
            "false" | "off" | "no" | "0" | "" => Ok(false),
            _ => Err(cfg.error(st, Some(key), format!("`{v}` is not true or false"))),
        },
    }
}

/// Largest `concurrency` (policy shards).
const MAX_SHARDS: u64 = 64;

/// Parses a `policyengine` stage: policies (loaded and compiled now, so `-test` reports their
/// errors), mode, shards and monitor. Every key is checked whether or not the stage has
/// policies: a nonsense value is an error even where it would not be used.
fn policy_stage_of(
    cfg: &PipelineConfig,
    st: &StageConfig,
    warnings: &mut Vec<String>,
) -> Result<Option<PolicyStage>, ConfigError> {
    let lenient = parse_flag(cfg, st, "lenient")?;
    let has_policies = st.get("policies").is_some_and(|p| !p.trim().is_empty());
    let mode_text = st
        .get("mode")
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .unwrap_or(if has_policies { "alert" } else { "enrich" });
    let (mode, legacy) = Mode::parse(mode_text).ok_or_else(|| {
        cfg.error(
            st,
            Some("mode"),
            format!("unknown mode `{mode_text}` (expected alert, enrich, filter or bypass)"),
        )
    })?;
    let default_shards = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(5) as u64;
    let shards = cfg.count(st, "concurrency", default_shards, 1, MAX_SHARDS)? as usize;
    let monitor_kind = cfg.choice(st, "monitor", "none", &["none", "local"])?;
    let interval = cfg.duration(
        st,
        "monitor.interval",
        std::time::Duration::from_secs(30),
        std::time::Duration::from_millis(10),
        std::time::Duration::from_secs(24 * 3600),
        true,
    )?;
    let monitor = (monitor_kind == "local").then_some(interval);
    let Some(path) = st.get("policies").filter(|p| !p.trim().is_empty()) else {
        if mode == Mode::Alert {
            return Err(cfg.error(
                st,
                Some("mode"),
                "`alert` needs `policies` (without them every record would be dropped)".into(),
            ));
        }
        if legacy {
            warnings.push(format!(
                "{}: pipeline[{}] (policyengine): key `mode`: legacy mode `{mode_text}` without policies passes every record through",
                cfg.file.display(),
                st.index
            ));
        }
        return Ok(None);
    };
    if legacy {
        warnings.push(format!(
            "{}: pipeline[{}] (policyengine): key `mode`: legacy mode `{mode_text}` behaves as `enrich` (as upstream)",
            cfg.file.display(),
            st.index
        ));
    }
    let path = PathBuf::from(path);
    let set = load_policies(&path, lenient)
        .map_err(|e| cfg.error(st, Some("policies"), e.to_string()))?;
    warnings.extend(set.warnings.iter().cloned());
    Ok(Some(PolicyStage {
        handle: policy::PolicyHandle::new(set, mode),
        path,
        lenient,
        shards,
        monitor,
    }))
}

/// Validates `cfg`: processors, handlers, required keys, values and the channel graph.
pub fn plan(cfg: &PipelineConfig) -> Result<PipelinePlan, ConfigError> {
    let mut warnings = cfg.warnings.clone();
    if !cfg.drivers.is_empty() {
        return Err(ConfigError {
            file: cfg.file.display().to_string(),
            stage: None,
            key: Some("drivers".into()),
            message: "custom drivers are not supported by this build (use -driver file)".into(),
        });
    }
    if cfg.stages.is_empty() {
        return Err(ConfigError {
            file: cfg.file.display().to_string(),
            stage: None,
            key: Some("pipeline".into()),
            message: "no stages".into(),
        });
    }
    let mut stages = Vec::new();
    let mut limits = BlockLimits::default();
    for st in &cfg.stages {
        let mut policy_stage = None;
        let kind = match st.processor.as_str() {
            "sysflowreader" => {
                let handler = match st.handler.as_deref() {
                    Some("flattener") => Handler::Flattener,
                    Some("printer") => Handler::Printer,
                    None => {
                        return Err(cfg.error(
                            st,
                            Some("handler"),
                            "missing (expected `flattener` or `printer`)".into(),
                        ))
                    }
                    Some(h) => {
                        return Err(cfg.error(
                            st,
                            Some("handler"),
                            format!("handler `{h}` is not supported (plugins are not loaded; expected `flattener` or the built-in `printer`)"),
                        ))
                    }
                };
                if st.get("handlerlibpath").is_some() {
                    warnings.push(format!(
                        "{}: pipeline[{}] (sysflowreader): key `handlerlibpath`: plugins are not loaded; the built-in `{}` handler is used",
                        cfg.file.display(),
                        st.index,
                        st.handler.as_deref().unwrap_or_default()
                    ));
                }
                for (k, v) in &st.settings {
                    if k.starts_with("filter.") && k == "filter.enabled" && v.value == "on" {
                        warnings.push(format!(
                            "{}: pipeline[{}] (sysflowreader): key `filter.enabled`: the rate limiter is not implemented in this build; records are not filtered",
                            cfg.file.display(),
                            st.index
                        ));
                    }
                }
                warn_unknown_keys(cfg, st, READER_KEYS, &mut warnings);
                limits = block_limits(cfg, st)?;
                StageKind::Reader(handler)
            }
            "policyengine" => {
                policy_stage = policy_stage_of(cfg, st, &mut warnings)?;
                warn_unknown_keys(cfg, st, POLICY_KEYS, &mut warnings);
                StageKind::Policy
            }
            "exporter" => {
                let e = ExporterConfig::from_stage(cfg, st)?;
                warn_unknown_keys(cfg, st, EXPORTER_KEYS, &mut warnings);
                StageKind::Exporter(Box::new(e))
            }
            "example" => {
                warn_unknown_keys(cfg, st, &[], &mut warnings);
                StageKind::Example
            }
            other => {
                return Err(cfg.error(
                    st,
                    Some("processor"),
                    format!("unknown processor `{other}` (expected sysflowreader, policyengine, exporter or the built-in `example`; plugins are not loaded)"),
                ))
            }
        };
        let Some(input) = &st.input else {
            return Err(cfg.error(st, Some("in"), "missing (\"<channel> <type>\")".into()));
        };
        let (in_types, out_type): (&[&str], Option<&str>) = match kind {
            StageKind::Reader(Handler::Flattener) => (&[READER_IN], Some(READER_OUT)),
            StageKind::Reader(Handler::Printer) => (&[READER_IN], None),
            StageKind::Policy => (&[READER_OUT], Some(POLICY_OUT)),
            StageKind::Exporter(_) => (&[POLICY_OUT, READER_OUT], None),
            StageKind::Example => (&[READER_OUT], None),
        };
        if !in_types.contains(&input.ctype.as_str()) {
            return Err(cfg.error(
                st,
                Some("in"),
                format!(
                    "channel type `{}` does not fit this processor (expected {})",
                    input.ctype,
                    in_types.join(" or ")
                ),
            ));
        }
        match out_type {
            Some(t) => {
                if st.outputs.is_empty() {
                    return Err(cfg.error(st, Some("out"), format!("missing (\"<channel> {t}\")")));
                }
                for o in &st.outputs {
                    if o.ctype != t {
                        return Err(cfg.error(
                            st,
                            Some("out"),
                            format!(
                                "channel `{}` has type `{}`, this processor produces `{t}`",
                                o.name, o.ctype
                            ),
                        ));
                    }
                }
            }
            None => {
                if !st.outputs.is_empty() {
                    return Err(cfg.error(
                        st,
                        Some("out"),
                        match kind {
                            StageKind::Reader(Handler::Printer) => {
                                "the `printer` handler has no output channel".to_string()
                            }
                            _ => format!("`{}` has no output channel", st.processor),
                        },
                    ));
                }
            }
        }
        stages.push(StagePlan {
            config: st.clone(),
            kind,
            policy: policy_stage,
            downstream: Vec::new(),
            upstreams: 0,
        });
    }

    // Channels: each output is read by exactly one stage; each non-driver input is written.
    let mut consumers: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, s) in stages.iter().enumerate() {
        if let Some(inp) = &s.config.input {
            consumers.entry(inp.name.as_str()).or_default().push(i);
        }
    }
    let mut edges = Vec::new();
    for (i, s) in stages.iter().enumerate() {
        for o in &s.config.outputs {
            match consumers.get(o.name.as_str()).map(Vec::as_slice) {
                None | Some([]) => {
                    return Err(cfg.error(
                        &s.config,
                        Some("out"),
                        format!("dangling channel `{}`: no stage reads it", o.name),
                    ))
                }
                Some([c]) => {
                    let ct = &stages[*c]
                        .config
                        .input
                        .as_ref()
                        .map(|x| x.ctype.clone())
                        .unwrap_or_default();
                    if *ct != o.ctype {
                        return Err(cfg.error(
                            &stages[*c].config,
                            Some("in"),
                            format!(
                                "channel `{}` is declared `{ct}` here but `{}` by pipeline[{i}]",
                                o.name, o.ctype
                            ),
                        ));
                    }
                    edges.push((i, *c));
                }
                Some(many) => {
                    return Err(cfg.error(
                        &s.config,
                        Some("out"),
                        format!(
                        "channel `{}` is read by {} stages; use several `out` channels to fan out",
                        o.name,
                        many.len()
                    ),
                    ))
                }
            }
        }
    }
    for (from, to) in &edges {
        // A sharded policy stage feeds its consumers from every shard.
        let producers = stages[*from].policy.as_ref().map(|p| p.shards).unwrap_or(1);
        stages[*from].downstream.push(*to);
        stages[*to].upstreams += producers;
    }
    let readers: Vec<usize> = stages
        .iter()
        .enumerate()
        .filter(|(_, s)| s.kind.is_reader())
        .map(|(i, _)| i)
        .collect();
    let entry = match readers.as_slice() {
        [one] => *one,
        [] => {
            return Err(ConfigError {
                file: cfg.file.display().to_string(),
                stage: None,
                key: Some("pipeline".into()),
                message: "no `sysflowreader` stage to read the input".into(),
            })
        }
        [_, second, ..] => {
            return Err(cfg.error(
                &stages[*second].config,
                Some("processor"),
                "only one `sysflowreader` stage is supported".into(),
            ))
        }
    };
    for s in &stages {
        if !s.kind.is_reader() && s.upstreams == 0 {
            let name = s
                .config
                .input
                .as_ref()
                .map(|c| c.name.clone())
                .unwrap_or_default();
            return Err(cfg.error(
                &s.config,
                Some("in"),
                format!("dangling channel `{name}`: no stage writes it"),
            ));
        }
        if s.kind.is_reader() && s.upstreams > 0 {
            return Err(cfg.error(
                &s.config,
                Some("in"),
                "the reader's input comes from the driver, not from a stage".into(),
            ));
        }
    }
    Ok(PipelinePlan {
        stages,
        block_limits: limits,
        entry,
        warnings,
    })
}

/// Tuning of a run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Records per driver batch (whole blocks).
    pub batch_records: u64,
    /// Batches in flight per edge.
    pub window: usize,
    pub restart: RestartPolicy,
    pub cache: CacheLimits,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            batch_records: 4096,
            window: 4,
            restart: RestartPolicy::default(),
            cache: CacheLimits::default(),
        }
    }
}

/// How a run ended.
#[derive(Debug, Default)]
pub struct RunOutcome {
    pub metrics: Vec<MetricsSnapshot>,
    pub skipped: Vec<Skipped>,
    pub cache: CacheStats,
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

impl PipelinePlan {
    /// The longest `retry.drain_timeout` of the exporters: how long a drain may take.
    pub fn drain_timeout(&self) -> std::time::Duration {
        self.stages
            .iter()
            .filter_map(|s| match &s.kind {
                StageKind::Exporter(e) => Some(e.delivery.drain_timeout),
                _ => None,
            })
            .max()
            .unwrap_or_default()
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

type RecordsDown = Downstream<Records>;

/// What every node of a run shares: window, restart policy, control channel.
struct Starter<'a> {
    window: usize,
    restart: &'a RestartPolicy,
    control: &'a Control,
}

impl Starter<'_> {
    fn start<N: sfactors::Node>(
        &self,
        arbiter: &ArbiterHandle,
        node: N,
        metrics: Arc<NodeMetrics>,
        downstream: Vec<Downstream<N::Out>>,
        upstreams: usize,
    ) -> Addr<NodeActor<N>> {
        NodeActor::start(
            arbiter,
            NodeSpec {
                node,
                metrics,
                downstream,
                upstreams,
                window: self.window,
                policy: self.restart.clone(),
                control: self.control.clone(),
            },
            self.window,
        )
    }
}

/// Runs `plan` over `files` until the input ends (or `stop` is set), draining every stage.
pub fn run(
    plan: &PipelinePlan,
    files: driver::Listing,
    stop: StopFlag,
    opts: RunOptions,
) -> RunOutcome {
    let diag = Arc::new(Diagnostics::default());
    let cache_stats = Arc::new(Mutex::new(CacheStats::default()));
    let mut all_metrics: Vec<Arc<NodeMetrics>> = Vec::new();
    let mut arbiters: Vec<Arbiter> = Vec::new();
    let sys = System::new();
    let shutdown = Shutdown::new();
    let drain = plan.drain_timeout();
    let result: Result<RunEnd, String> = sys.block_on({
        let shutdown = shutdown.clone();
        let diag = diag.clone();
        let cache_stats = cache_stats.clone();
        let all_metrics = &mut all_metrics;
        let arbiters = &mut arbiters;
        let stop = stop.clone();
        async move {
            let (control, mut handle) = Control::new();
            let starter = Starter {
                window: opts.window,
                restart: &opts.restart,
                control: &control,
            };
            let mut spawn = |name: String| {
                let a = Arbiter::new();
                let h = a.handle();
                arbiters.push(a);
                let m = NodeMetrics::new(name);
                all_metrics.push(m.clone());
                (h, m)
            };
            let w = opts.window;
            let mut nodes = 0usize;
            // Start sinks first: a node needs its downstream addresses.
            let mut entries: HashMap<usize, RecordsDown> = HashMap::new();
            // Start consumers before producers: a node needs its downstream addresses. Each
            // pass starts every non-reader stage whose consumers are all running.
            let mut pending: Vec<usize> = (0..plan.stages.len())
                .filter(|i| *i != plan.entry)
                .collect();
            while !pending.is_empty() {
                let (ready, blocked): (Vec<usize>, Vec<usize>) = pending.iter().partition(|i| {
                    plan.stages[**i]
                        .downstream
                        .iter()
                        .all(|d| entries.contains_key(d))
                });
                if ready.is_empty() {
                    return Err("the channel graph has a cycle".to_string());
                }
                for i in ready {
                    let sp = &plan.stages[i];
                    let down: Vec<RecordsDown> =
                        sp.downstream.iter().map(|d| entries[d].clone()).collect();
                    let name = format!("{}[{}]", sp.config.processor, sp.config.index);
                    let (arb, metrics) = spawn(name);
                    let recipient = match &sp.kind {
                        StageKind::Exporter(ec) => {
                            let transport = match ec.open() {
                                Ok(t) => t,
                                Err(e) => return Err(format!("{}: {e}", metrics.name())),
                            };
                            let node = exporter::ExporterNode::new(
                                ec,
                                transport,
                                metrics.clone(),
                                shutdown.clone(),
                            );
                            starter
                                .start(&arb, node, metrics.clone(), vec![], sp.upstreams)
                                .recipient::<Envelope<Records>>()
                        }
                        StageKind::Example => starter
                            .start(
                                &arb,
                                printer::LogSinkNode::new(
                                    printer::LogSink::Example,
                                    metrics.clone(),
                                ),
                                metrics.clone(),
                                vec![],
                                sp.upstreams,
                            )
                            .recipient::<Envelope<Records>>(),
                        StageKind::Policy | StageKind::Reader(_) => match &sp.policy {
                            None => starter
                                .start(
                                    &arb,
                                    policy::PassThroughNode,
                                    metrics.clone(),
                                    down,
                                    sp.upstreams,
                                )
                                .recipient(),
                            Some(ps) if ps.shards == 1 => starter
                                .start(
                                    &arb,
                                    policy::PolicyNode::new(ps.handle.clone()),
                                    metrics.clone(),
                                    down,
                                    sp.upstreams,
                                )
                                .recipient(),
                            Some(ps) => {
                                // Router (this stage's metrics) -> N shards -> downstream.
                                let mut shard_downs = Vec::new();
                                for k in 0..ps.shards {
                                    let (sarb, sm) = spawn(format!(
                                        "{}[{}].shard{k}",
                                        sp.config.processor, sp.config.index
                                    ));
                                    let shard = starter.start(
                                        &sarb,
                                        policy::PolicyNode::new(ps.handle.clone()),
                                        sm.clone(),
                                        down.clone(),
                                        1,
                                    );
                                    nodes += 1;
                                    shard_downs.push(Downstream {
                                        recipient: shard.recipient(),
                                        metrics: sm,
                                    });
                                }
                                starter
                                    .start(
                                        &arb,
                                        policy::RouterNode::new(ps.shards),
                                        metrics.clone(),
                                        shard_downs,
                                        sp.upstreams,
                                    )
                                    .recipient()
                            }
                        },
                    };
                    if let Some(ps) = &sp.policy {
                        if let Some(interval) = ps.monitor {
                            let (marb, _) = spawn(format!(
                                "{}[{}].monitor",
                                sp.config.processor, sp.config.index
                            ));
                            monitor::PolicyMonitor::start(&marb, ps.clone(), interval);
                        }
                    }
                    nodes += 1;
                    entries.insert(i, Downstream { recipient, metrics });
                }
                pending = blocked;
            }
            // Reader stage: handler, flattener, reader, then the driver.
            let rp = &plan.stages[plan.entry];
            let down: Vec<RecordsDown> = if rp.kind == StageKind::Reader(Handler::Printer) {
                let (arb, pm) = spawn(format!("printer[{}]", rp.config.index));
                let node = printer::LogSinkNode::new(printer::LogSink::Printer, pm.clone());
                let p = starter.start(&arb, node, pm.clone(), vec![], 1);
                nodes += 1;
                vec![Downstream {
                    recipient: p.recipient(),
                    metrics: pm,
                }]
            } else {
                rp.downstream.iter().map(|d| entries[d].clone()).collect()
            };
            let (arb, fm) = spawn("flattener".to_string());
            let flat = starter.start(
                &arb,
                flattener::FlattenerNode::new(opts.cache, cache_stats.clone()),
                fm.clone(),
                down,
                1,
            );
            let (arb, rm) = spawn("reader".to_string());
            let reader = starter.start(
                &arb,
                reader::ReaderNode::new(diag.clone(), plan.block_limits),
                rm.clone(),
                vec![Downstream {
                    recipient: flat.recipient(),
                    metrics: fm,
                }],
                1,
            );
            let (arb, dm) = spawn("driver".to_string());
            SourceActor::start(
                &arb,
                driver::FileDriver::new(
                    files,
                    diag.clone(),
                    opts.batch_records,
                    shutdown.clone(),
                    plan.block_limits,
                ),
                dm,
                vec![Downstream {
                    recipient: reader.recipient(),
                    metrics: rm,
                }],
                w,
                control.clone(),
                stop.clone(),
            );
            nodes += 3;
            // A signal stops the driver and starts the drain clock; the pipeline then drains.
            // Should a stage still be blocked once the drain time and a grace period are
            // spent (a second signal ends the drain at once), the run is abandoned.
            let watchdog = {
                let stop = stop.clone();
                let shutdown = shutdown.clone();
                async move {
                    let mut signals = Signals::new();
                    signals.recv().await;
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
                }
            };
            tokio::select! {
                r = handle.wait(nodes) => Ok(RunEnd::Done(r)),
                _ = watchdog => Ok(RunEnd::Abandoned),
            }
        }
    });
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
        metrics: all_metrics.iter().map(|m| m.snapshot()).collect(),
        skipped: diag.skipped(),
        cache,
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
