//! Drivers: what feeds the reader. The file driver reads traces; the socket driver is the
//! server the collector streams to. Which ones run is part of the plan: every `drivers`
//! entry of `pipeline.json` (`-driver NAME` keeps the entries of that name, or one with
//! default settings), else the file driver.

mod file;
pub mod socket;

use std::path::PathBuf;

pub use file::{list_traces, FileDriver, Listing};
pub use socket::{SocketDriver, SocketSettings, SocketSource};

use crate::config::{ConfigError, KeyFindings, PipelineConfig};

/// Driver names this build knows.
pub const DRIVERS: &[&str] = &["file", "socket"];

/// The driver of a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DriverPlan {
    /// Trace files; `path` from the `drivers` entry (it wins over the command line's PATH).
    File {
        path: Option<PathBuf>,
    },
    Socket(SocketSettings),
}

impl Default for DriverPlan {
    fn default() -> Self {
        DriverPlan::File { path: None }
    }
}

impl DriverPlan {
    pub fn name(&self) -> &'static str {
        match self {
            DriverPlan::File { .. } => "file",
            DriverPlan::Socket(_) => "socket",
        }
    }

    /// The input path from the configuration, if it names one.
    pub fn configured_path(&self) -> Option<&PathBuf> {
        match self {
            DriverPlan::File { path } => path.as_ref(),
            DriverPlan::Socket(s) => s.path.as_ref(),
        }
    }
}

const FILE_KEYS: &[&str] = &["path"];

/// The `drivers` entries name drivers this build has (checked first: a pipeline built for
/// another driver fails on that, not on its channel types).
pub fn check_names(cfg: &PipelineConfig) -> Result<(), ConfigError> {
    for d in &cfg.drivers {
        if !DRIVERS.contains(&d.processor.as_str()) {
            return Err(cfg.error(
                d,
                Some("driver"),
                format!(
                    "driver `{}` is not supported by this build (supported: {})",
                    d.processor,
                    DRIVERS.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

/// The `drivers` entries (upstream 0.5.1+ runs every one of them): each `file` or
/// `socket`, whose `out` (if given) is the reader's input channel. Unknown keys are warnings.
/// Several entries feed the one reader; each keeps its own counters and entity tables.
pub fn plan_drivers(
    cfg: &PipelineConfig,
    reader_in: Option<&str>,
    strict: bool,
    found: &mut KeyFindings,
) -> Result<Vec<DriverPlan>, ConfigError> {
    let mut plans = Vec::new();
    for d in &cfg.drivers {
        for o in &d.outputs {
            if o.ctype != super::READER_IN {
                return Err(cfg.error(
                    d,
                    Some("out"),
                    format!(
                        "channel type `{}` does not fit a driver (expected {})",
                        o.ctype,
                        super::READER_IN
                    ),
                ));
            }
            if reader_in.is_some_and(|r| r != o.name) {
                return Err(cfg.error(
                    d,
                    Some("out"),
                    format!(
                        "channel `{}` is not the reader's input (`{}`)",
                        o.name,
                        reader_in.unwrap_or_default()
                    ),
                ));
            }
        }
        let path = d
            .get("path")
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(PathBuf::from);
        let plan = match d.processor.as_str() {
            "file" => {
                cfg.check_keys(d, FILE_KEYS, strict, found)?;
                DriverPlan::File { path }
            }
            "socket" => {
                cfg.check_keys(d, socket::KEYS, strict, found)?;
                DriverPlan::Socket(socket::settings(cfg, d, path)?)
            }
            other => {
                return Err(cfg.error(
                    d,
                    Some("driver"),
                    format!(
                        "driver `{other}` is not supported by this build (supported: {})",
                        DRIVERS.join(", ")
                    ),
                ))
            }
        };
        plans.push(plan);
    }
    let sockets: Vec<&PathBuf> = plans
        .iter()
        .filter_map(|p| match p {
            DriverPlan::Socket(s) => s.path.as_ref(),
            _ => None,
        })
        .collect();
    for (i, a) in sockets.iter().enumerate() {
        if sockets[..i].contains(a) {
            return Err(ConfigError::top(
                cfg.file.display().to_string(),
                Some("drivers"),
                format!("two socket drivers listen on `{}`", a.display()),
            ));
        }
    }
    Ok(plans)
}

/// Where each driver reads: its own `path` from the configuration wins over the command
/// line's PATH (upstream's precedence for the file driver; upstream ignores `path` for the
/// socket driver — said in a warning when both are given and differ), and PATH goes to the
/// drivers without one. `None` for a driver that has neither.
pub fn resolve_paths(
    drivers: &[DriverPlan],
    cli: Option<&std::path::Path>,
    warnings: &mut Vec<String>,
) -> Vec<Option<PathBuf>> {
    drivers
        .iter()
        .enumerate()
        .map(|(i, d)| match (d.configured_path(), cli) {
            (Some(own), Some(c)) => {
                if own.as_path() != c {
                    warnings.push(format!(
                        "drivers[{i}] ({}): the configuration's path `{}` is read, not the command line's `{}`{}",
                        d.name(),
                        own.display(),
                        c.display(),
                        match d {
                            DriverPlan::Socket(_) => " (upstream uses the command line's for a socket)",
                            DriverPlan::File { .. } => " (upstream's precedence)",
                        }
                    ));
                }
                Some(own.clone())
            }
            (Some(own), None) => Some(own.clone()),
            (None, Some(c)) => Some(c.to_path_buf()),
            (None, None) => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::plan;

    const STAGES: &str = r#""pipeline":[
 {"processor":"sysflowreader","handler":"flattener","in":"sysflow sysflowchan","out":"flat flattenerchan"},
 {"processor":"exporter","in":"flat flattenerchan","export":"null"}]"#;

    fn planned(drivers: &str) -> Result<crate::pipeline::PipelinePlan, ConfigError> {
        let text = format!(r#"{{{STAGES},"drivers":[{drivers}]}}"#);
        let cfg = PipelineConfig::parse(&text, "d.json", &[]).expect("parses");
        plan(&cfg)
    }

    #[test]
    fn a_socket_entry_with_settings_becomes_the_driver() {
        let p = planned(
            r#"{"driver":"socket","out":"sysflow sysflowchan","path":"/run/sf.sock","schema.version":"4","packet.maxsize":"2MiB"}"#,
        )
        .unwrap();
        let DriverPlan::Socket(s) = &p.drivers[0] else {
            panic!("{:?}", p.drivers)
        };
        assert_eq!(
            s.path.as_deref(),
            Some(std::path::Path::new("/run/sf.sock"))
        );
        assert_eq!(s.version, Some(4));
        assert_eq!(s.max_packet, 2 << 20);
        assert_eq!(p.drivers[0].configured_path(), s.path.as_ref());
    }

    #[test]
    fn several_drivers_run_side_by_side_and_paths_resolve_as_upstream() {
        let p = planned(
            r#"{"driver":"socket","path":"/run/a.sock"},{"driver":"file","path":"/traces"},{"driver":"socket"}"#,
        )
        .unwrap();
        assert_eq!(p.drivers.len(), 3);
        let mut w = Vec::new();
        let paths = resolve_paths(&p.drivers, Some(std::path::Path::new("/cli")), &mut w);
        assert_eq!(
            paths,
            vec![
                Some(PathBuf::from("/run/a.sock")),
                Some(PathBuf::from("/traces")),
                Some(PathBuf::from("/cli"))
            ]
        );
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w[1].contains("upstream's precedence"), "{w:?}");
        let e = planned(r#"{"driver":"socket","path":"/a"},{"driver":"socket","path":"/a"}"#)
            .unwrap_err();
        assert!(e.to_string().contains("two socket drivers"), "{e}");
    }

    #[test]
    fn driver_entries_are_checked() {
        let e = planned(r#"{"driver":"socket","out":"other sysflowchan"}"#).unwrap_err();
        assert!(
            e.to_string().contains("drivers[0] (socket): key `out`"),
            "{e}"
        );
        let e = planned(r#"{"driver":"socket","schema.version":"3"}"#).unwrap_err();
        assert!(e.to_string().contains("key `schema.version`"), "{e}");
        let e = planned(r#"{"driver":"otelkafka"}"#).unwrap_err();
        assert!(e.to_string().contains("not supported"), "{e}");
        let text = format!(r#"{{{STAGES},"drivers":[{{"path":"/x"}}]}}"#);
        let e = PipelineConfig::parse(&text, "d.json", &[]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "d.json: drivers[0] (?): key `driver`: missing (a string naming the driver)"
        );
    }

    #[test]
    fn the_command_line_driver_wins_and_keeps_matching_settings() {
        let mut p =
            planned(r#"{"driver":"socket","schema.version":"5"},{"driver":"file"}"#).unwrap();
        p.with_cli_driver("socket").unwrap();
        assert_eq!(p.drivers.len(), 1);
        assert!(matches!(&p.drivers[0], DriverPlan::Socket(s) if s.version == Some(5)));
        p.with_cli_driver("file").unwrap();
        assert_eq!(p.drivers, vec![DriverPlan::File { path: None }]);
        assert!(p.with_cli_driver("kafka").is_err());
        let mut p = planned("").unwrap();
        assert_eq!(p.drivers, vec![DriverPlan::default()]);
        p.with_cli_driver("socket").unwrap();
        assert_eq!(
            p.drivers,
            vec![DriverPlan::Socket(SocketSettings::default())]
        );
    }
}
