//! Validation: a `pipeline.json` (and the command line's driver choice) becomes a plan —
//! stages, the channels between them, the driver — or an error naming the file, the stage and
//! the key. Nothing runs here except the policy compiler, so `-test` reports policy errors.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use super::driver::{self, DriverPlan};
use super::policy;
use crate::cache::CacheLimits;
use crate::config::{ConfigError, KeyFindings, PipelineConfig, StageConfig};
use crate::exporter::ExporterConfig;
use crate::policy::engine::{load_policies, Language, LoadOptions, Mode};
use crate::sysflow::ocf::BlockLimits;

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
    pub load: LoadOptions,
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
    /// What feeds the reader (`drivers` entries or `-driver`; the file driver by default).
    /// Never empty.
    pub drivers: Vec<DriverPlan>,
    /// Entity table limits (the reader stage's `cache.*` keys).
    pub cache_limits: CacheLimits,
    /// What a trace block may hold (the reader stage's `block.maxsize`/`block.maxrecords`).
    pub block_limits: BlockLimits,
    /// A policy stage reads fields as upstream's engine does (`quirks: upstream`): the
    /// flattener applies upstream's op-flag name cache and process-tree cache.
    pub upstream_quirks: bool,
    /// `filter.enabled: on` of the reader stage: the rate limiter's window (`filter.maxage`).
    pub rate_limit: Option<std::time::Duration>,
    /// Index of the reader stage the driver feeds.
    pub entry: usize,
    pub warnings: Vec<String>,
    /// Unknown keys that are a near miss of a known one (also among `warnings`): `-test`
    /// names them first.
    pub typos: Vec<String>,
}

const READER_KEYS: &[&str] = &[
    "handler",
    "handlerlibpath",
    "filter.enabled",
    "filter.maxage",
    "block.maxsize",
    "block.maxrecords",
    "record.maxsize",
    "cache.maxbytes",
    "cache.maxprocesses",
    "cache.maxfiles",
    "cache.maxcontainers",
    "cache.maxpods",
    "cache.reapafter",
];

/// `cache.*` of the reader stage: entity table limits, so memory stays flat on a stream that
/// runs for months with process churn.
fn cache_limits(cfg: &PipelineConfig, st: &StageConfig) -> Result<CacheLimits, ConfigError> {
    let d = CacheLimits::default();
    let n = |key: &str, def: usize| -> Result<usize, ConfigError> {
        Ok(cfg.count(st, key, def as u64, 16, 1 << 26)? as usize)
    };
    Ok(CacheLimits {
        processes: n("cache.maxprocesses", d.processes)?,
        files: n("cache.maxfiles", d.files)?,
        containers: n("cache.maxcontainers", d.containers)?,
        pods: n("cache.maxpods", d.pods)?,
        exit_grace_records: cfg.count(st, "cache.reapafter", d.exit_grace_records, 0, 1 << 32)?,
        max_bytes: cfg.bytes(st, "cache.maxbytes", d.max_bytes as u64, 1 << 20, 1 << 40)? as usize,
    })
}

/// `block.maxsize` and `block.maxrecords` of the reader stage.
fn block_limits(cfg: &PipelineConfig, st: &StageConfig) -> Result<BlockLimits, ConfigError> {
    let d = BlockLimits::default();
    Ok(BlockLimits {
        max_inflated: cfg.bytes(st, "block.maxsize", d.max_inflated, 64 << 10, 1 << 30)?,
        max_records: cfg.count(st, "block.maxrecords", d.max_records, 1, 1 << 24)?,
        max_record: cfg.bytes(st, "record.maxsize", d.max_record as u64, 64 << 10, 1 << 30)?
            as usize,
    })
}
const POLICY_KEYS: &[&str] = &[
    "policies",
    "lenient",
    "strict",
    "unsupported",
    "quirks",
    "mode",
    "monitor",
    "monitor.interval",
    "concurrency",
    "actiondir",
    "language",
    "config",
    "jsonschemaversion",
];

/// Unknown keys of `st`: warnings (with the nearest known key) into `found`, or errors when
/// `strict`.
fn check_keys(
    cfg: &PipelineConfig,
    st: &StageConfig,
    known: &[&str],
    strict: bool,
    found: &mut KeyFindings,
) -> Result<(), ConfigError> {
    cfg.check_keys(st, known, strict, found)
}

/// `filter.enabled` and `filter.maxage` of the reader stage, as upstream reads them: the
/// limiter is on only for `on`; the window is whole seconds (default 24 h). A duration with a
/// unit (`10m`) is taken too, with a warning, since upstream would ignore it.
fn rate_limit_of(
    cfg: &PipelineConfig,
    st: &StageConfig,
    warnings: &mut Vec<String>,
) -> Result<Option<std::time::Duration>, ConfigError> {
    let at = |key: &str| {
        format!(
            "{}: pipeline[{}] (sysflowreader): key `{key}`",
            cfg.file.display(),
            st.index
        )
    };
    let enabled = st.get("filter.enabled").map(str::trim);
    match enabled {
        None | Some("off") => return Ok(None),
        Some("on") => {}
        Some(other) => {
            warnings.push(format!(
                "{}: `{other}` is neither on nor off; the rate limiter stays off (upstream's behaviour)",
                at("filter.enabled")
            ));
            return Ok(None);
        }
    }
    let maxage = match st.get("filter.maxage").map(str::trim) {
        None | Some("") => crate::ratelimit::DEFAULT_MAXAGE,
        Some(v) => match v.parse::<u64>() {
            Ok(0) => {
                return Err(cfg.error(
                    st,
                    Some("filter.maxage"),
                    "must be at least 1 second".into(),
                ))
            }
            Ok(n) if n <= 365 * 24 * 3600 => std::time::Duration::from_secs(n),
            Ok(_) => {
                return Err(cfg.error(
                    st,
                    Some("filter.maxage"),
                    "must be at most a year (in seconds)".into(),
                ))
            }
            Err(_) => match humantime::parse_duration(v) {
                Ok(d) if d >= std::time::Duration::from_secs(1) => {
                    warnings.push(format!(
                        "{}: `{v}` read as {}; upstream reads whole seconds only and would use 24h",
                        at("filter.maxage"),
                        humantime::format_duration(d)
                    ));
                    d
                }
                _ => {
                    return Err(cfg.error(
                        st,
                        Some("filter.maxage"),
                        format!("`{v}` is not a number of seconds"),
                    ))
                }
            },
        },
    };
    Ok(Some(maxage))
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
    strict_cli: bool,
    warnings: &mut Vec<String>,
) -> Result<Option<PolicyStage>, ConfigError> {
    // Upstream's meaning is the default; `strict` refuses what upstream only tolerates.
    // `lenient` (this build's older key) is accepted: lenient is now the default.
    let _lenient = parse_flag(cfg, st, "lenient")?;
    let strict = parse_flag(cfg, st, "strict")? || strict_cli;
    let unsupported = cfg.choice(st, "unsupported", "literal", &["literal", "disable"])?;
    let language = match cfg.choice(st, "language", "falco", &["falco", "sigma"])? {
        "sigma" => {
            let config = st
                .get("config")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(PathBuf::from);
            if config.is_none() {
                warnings.push(format!(
                    "{}: pipeline[{}] (policyengine): `language: sigma` without `config`: Sigma fields are not mapped (only `sf.*` attribute names match)",
                    cfg.file.display(),
                    st.index
                ));
            }
            Language::Sigma { config }
        }
        _ => Language::Falco,
    };
    let quirks = cfg.choice(st, "quirks", "upstream", &["upstream", "fixed"])?;
    let load = LoadOptions {
        strict,
        disable_unsupported: unsupported == "disable",
        language,
        fixed_quirks: quirks == "fixed",
    };
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
    let set =
        load_policies(&path, &load).map_err(|e| cfg.error(st, Some("policies"), e.to_string()))?;
    if mode == Mode::Alert {
        if let Some(e) = set.empty_for_alerts() {
            return Err(cfg.error(st, Some("policies"), format!("{}: {e}", path.display())));
        }
    }
    warnings.extend(set.warnings.iter().map(|w| w.to_string()));
    Ok(Some(PolicyStage {
        handle: policy::PolicyHandle::new(set, mode),
        path,
        load,
        shards,
        monitor,
    }))
}

/// Validates `cfg`: processors, handlers, required keys, values and the channel graph.
pub fn plan(cfg: &PipelineConfig) -> Result<PipelinePlan, ConfigError> {
    plan_with(cfg, false)
}

/// As [`plan`]; `strict` (the `-strict` flag) makes every policy stage strict.
pub fn plan_with(cfg: &PipelineConfig, strict: bool) -> Result<PipelinePlan, ConfigError> {
    let mut found = KeyFindings {
        warnings: cfg.warnings.clone(),
        typos: Vec::new(),
    };
    cfg.check_top_keys(strict, &mut found)?;
    let KeyFindings {
        mut warnings,
        mut typos,
    } = found;
    // Warnings of the key checks go to the same list, in stage order.
    let mut keys = |st: &StageConfig,
                    known: &[&str],
                    strict: bool,
                    warnings: &mut Vec<String>|
     -> Result<(), ConfigError> {
        let mut f = KeyFindings::default();
        check_keys(cfg, st, known, strict, &mut f)?;
        warnings.extend(f.warnings);
        typos.extend(f.typos);
        Ok(())
    };
    driver::check_names(cfg)?;
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
    let mut cache = CacheLimits::default();
    let mut rate_limit = None;
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
                rate_limit = rate_limit_of(cfg, st, &mut warnings)?;
                keys(st, READER_KEYS, strict, &mut warnings)?;
                limits = block_limits(cfg, st)?;
                cache = cache_limits(cfg, st)?;
                StageKind::Reader(handler)
            }
            "policyengine" => {
                if let Some(dir) = st.get("actiondir") {
                    // Upstream loads `*.so` action plugins from it (and ignores a missing one).
                    warnings.push(format!(
                        "{}: pipeline[{}] (policyengine): key `actiondir` (`{dir}`): Go action plugins are not loaded; rules may name the built-in actions ({})",
                        cfg.file.display(),
                        st.index,
                        {
                            let mut names: Vec<String> =
                                crate::policy::actions::registry().into_keys().collect();
                            names.sort();
                            names.join(", ")
                        }
                    ));
                }
                policy_stage = policy_stage_of(cfg, st, strict, &mut warnings)?;
                let stage_strict = strict || parse_flag(cfg, st, "strict")?;
                keys(st, POLICY_KEYS, stage_strict, &mut warnings)?;
                StageKind::Policy
            }
            "exporter" => {
                let e = ExporterConfig::from_stage(cfg, st, &mut warnings)?;
                keys(st, crate::exporter::registry::known_keys(), strict, &mut warnings)?;
                StageKind::Exporter(Box::new(e))
            }
            "example" => {
                keys(st, &[], strict, &mut warnings)?;
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
    let reader_in = stages[entry].config.input.as_ref().map(|c| c.name.as_str());
    let mut found = KeyFindings::default();
    let mut drivers = driver::plan_drivers(cfg, reader_in, strict, &mut found)?;
    warnings.extend(found.warnings);
    typos.extend(found.typos);
    if drivers.is_empty() {
        drivers.push(DriverPlan::default());
    }
    let upstream_quirks = stages
        .iter()
        .any(|s: &StagePlan| s.policy.as_ref().is_some_and(|p| !p.load.fixed_quirks));
    Ok(PipelinePlan {
        stages,
        drivers,
        cache_limits: cache,
        rate_limit,
        upstream_quirks,
        block_limits: limits,
        entry,
        warnings,
        typos,
    })
}

/// `-driver NAME` names no driver of this build.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown driver `{name}` (expected {})", driver::DRIVERS.join(" or "))]
pub struct UnknownDriver {
    pub name: String,
}

impl PipelinePlan {
    /// Applies the command line's `-driver NAME`: only the `drivers` entries of that name
    /// run (with their settings), or one such driver with default settings when there is
    /// none.
    pub fn with_cli_driver(&mut self, name: &str) -> Result<(), UnknownDriver> {
        let keep: Vec<DriverPlan> = self
            .drivers
            .iter()
            .filter(|d| d.name() == name)
            .cloned()
            .collect();
        self.drivers = if !keep.is_empty() {
            keep
        } else {
            vec![match name {
                "file" => DriverPlan::File { path: None },
                "socket" => DriverPlan::Socket(driver::SocketSettings::default()),
                other => {
                    return Err(UnknownDriver {
                        name: other.to_string(),
                    })
                }
            }]
        };
        Ok(())
    }

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
