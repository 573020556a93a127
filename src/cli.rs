//! Command line in upstream's Go style: single-dash long flags (`-config FILE`), also
//! `--config FILE` and `-config=FILE`.

use std::fmt;
use std::time::Duration;

/// Log levels upstream accepts (plus `debug`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
    /// Upstream's `health`: only the health messages (here: the first collector connection) —
    /// and, unlike upstream, errors too (docs/operations.md).
    Health,
    Quiet,
}

impl LogLevel {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.to_ascii_lowercase().as_str() {
            "trace" => LogLevel::Trace,
            "debug" => LogLevel::Debug,
            "info" => LogLevel::Info,
            "health" => LogLevel::Health,
            "warn" | "warning" => LogLevel::Warn,
            "error" => LogLevel::Error,
            "quiet" => LogLevel::Quiet,
            _ => return None,
        })
    }
    pub fn filter(self) -> &'static str {
        match self {
            LogLevel::Trace => "trace",
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
            LogLevel::Health => "error,health=info",
            LogLevel::Quiet => "off",
        }
    }
}

/// Parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cli {
    pub config: String,
    /// `-driver`: overrides the `drivers` entry of the configuration.
    pub driver: Option<String>,
    /// `-metrics ADDR`: the metrics listener (overrides `metrics.listen`).
    pub metrics: Option<String>,
    pub log: LogLevel,
    pub test: bool,
    /// `-strict`: policies refuse what upstream only tolerates (every such warning is an
    /// error), whatever the stages' `strict` key says.
    pub strict: bool,
    pub version: bool,
    pub help: bool,
    pub path: Option<String>,
    /// `-plugdir DIR` (upstream: Go processor plugins). Accepted so upstream's unit and image
    /// start unchanged; plugins are not loaded (see [`plugin_dir_warning`]).
    pub plugdir: Option<String>,
    /// `-driverdir DIR` (upstream: Go driver plugins), as `-plugdir`.
    pub driverdir: Option<String>,
    /// `-cpuprofile FILE`: a CPU profile of the run in pprof format, written at its end.
    pub cpuprofile: Option<String>,
    /// `-memprofile FILE`: the allocator's statistics at the end of the run.
    pub memprofile: Option<String>,
    /// `-traceprofile FILE`: Go's execution tracer has no counterpart; accepted, warned.
    pub traceprofile: Option<String>,
    /// `-perflog`: throughput lines on stderr at this interval (upstream: every 15 s).
    pub perflog: Option<Duration>,
    /// `-health URL`: probe a running agent's endpoint and exit (a container's HEALTHCHECK
    /// needs no curl).
    pub health: Option<String>,
}

/// Upstream's perf log interval.
pub const PERFLOG_INTERVAL: Duration = Duration::from_secs(15);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliError(pub String);

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

pub const USAGE: &str = "Usage: sfprocessor [-config FILE] [-driver file|socket] [-metrics ADDR] [-log trace|debug|info|warn|error|health|quiet] [-test] [-strict] [-version] [-perflog[=DUR]] [-cpuprofile FILE] [-memprofile FILE] [-traceprofile FILE] [-plugdir DIR] [-driverdir DIR] [-health URL] PATH

  PATH             file driver: a SysFlow trace file, or a directory of traces (read in name
                   order); socket driver: the Unix socket to listen on for the collector
  -config FILE     pipeline configuration (default: pipeline.json)
  -driver NAME     input driver: file or socket (default: every `drivers` entry of the
                   configuration, else file; with -driver, the entries of that name)
  -metrics ADDR    serve /metrics, /healthz and /readyz on ADDR (HOST:PORT, or :PORT for
                   127.0.0.1; default: the configuration's metrics.listen, else off)
  -log LEVEL       log level on stderr (default: info; health: errors and health
                   messages only)
  -test            validate the configuration and policies, list warnings and exit (non-zero
                   on any error); PATH is optional
  -strict          unknown configuration keys, and every policy warning about what
                   upstream only tolerates (unknown attributes and actions, repaired
                   YAML, ...), are errors
  -version         print the version and the schema versions (upstream's line)
  -perflog[=DUR]   log records/s per node on stderr every DUR (default 15s)
  -cpuprofile FILE write a CPU profile of the run (pprof format) when it ends
  -memprofile FILE write the allocator's statistics when the run ends
  -health URL      probe a running agent (e.g. http://127.0.0.1:9464/readyz): exit 0 when it
                   answers 2xx, 1 otherwise (a container HEALTHCHECK without curl)
  -traceprofile FILE, -plugdir DIR, -driverdir DIR
                   upstream's flags, accepted: Go plugins and Go's tracer do not exist
                   here (a warning says so)
Flags take one or two dashes, and `-flag=value` works too.";

fn parse_bool(flag: &str, v: &str) -> Result<bool, CliError> {
    match v {
        "true" | "1" | "t" | "T" | "TRUE" | "True" => Ok(true),
        "false" | "0" | "f" | "F" | "FALSE" | "False" => Ok(false),
        _ => Err(CliError(format!("invalid boolean value `{v}` for -{flag}"))),
    }
}

impl Cli {
    pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Cli, CliError> {
        let mut cli = Cli {
            config: "pipeline.json".into(),
            driver: None,
            metrics: None,
            log: LogLevel::Info,
            test: false,
            strict: false,
            version: false,
            help: false,
            path: None,
            plugdir: None,
            driverdir: None,
            cpuprofile: None,
            memprofile: None,
            traceprofile: None,
            perflog: None,
            health: None,
        };
        let mut it = args.into_iter();
        let mut positional = Vec::new();
        while let Some(arg) = it.next() {
            if arg == "--" {
                positional.extend(it.by_ref());
                break;
            }
            let Some(flag) = arg
                .strip_prefix("--")
                .or_else(|| arg.strip_prefix('-'))
                .filter(|f| !f.is_empty())
            else {
                positional.push(arg);
                continue;
            };
            let (name, inline) = match flag.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (flag, None),
            };
            let mut value = |n: &str| -> Result<String, CliError> {
                match &inline {
                    Some(v) => Ok(v.clone()),
                    None => it
                        .next()
                        .ok_or_else(|| CliError(format!("flag needs an argument: -{n}"))),
                }
            };
            match name {
                "config" => cli.config = value(name)?,
                "driver" => {
                    let d = value(name)?;
                    match d.as_str() {
                        "file" | "socket" => cli.driver = Some(d),
                        other => {
                            return Err(CliError(format!(
                                "unknown driver `{other}` (expected file or socket)"
                            )))
                        }
                    }
                }
                "metrics" => cli.metrics = Some(value(name)?),
                "log" => {
                    let l = value(name)?;
                    cli.log = LogLevel::parse(&l).ok_or_else(|| {
                        CliError(format!(
                            "invalid log level `{l}` (expected trace, debug, info, warn, error, health or quiet)"
                        ))
                    })?;
                }
                "test" => {
                    cli.test = inline
                        .as_deref()
                        .map(|v| parse_bool(name, v))
                        .transpose()?
                        .unwrap_or(true)
                }
                "strict" => {
                    cli.strict = inline
                        .as_deref()
                        .map(|v| parse_bool(name, v))
                        .transpose()?
                        .unwrap_or(true)
                }
                "version" => {
                    cli.version = inline
                        .as_deref()
                        .map(|v| parse_bool(name, v))
                        .transpose()?
                        .unwrap_or(true)
                }
                "plugdir" => cli.plugdir = Some(value(name)?),
                "driverdir" => cli.driverdir = Some(value(name)?),
                "cpuprofile" => cli.cpuprofile = Some(value(name)?),
                "memprofile" => cli.memprofile = Some(value(name)?),
                "traceprofile" => cli.traceprofile = Some(value(name)?),
                "health" => cli.health = Some(value(name)?),
                "perflog" => {
                    cli.perflog = match inline.as_deref() {
                        None => Some(PERFLOG_INTERVAL),
                        Some(v) => match parse_bool(name, v) {
                            Ok(true) => Some(PERFLOG_INTERVAL),
                            Ok(false) => None,
                            Err(_) => match humantime::parse_duration(v) {
                                Ok(d) if d >= Duration::from_millis(100) => Some(d),
                                _ => {
                                    return Err(CliError(format!(
                                        "invalid value `{v}` for -perflog (true, false or an interval of at least 100ms, e.g. 5s)"
                                    )))
                                }
                            },
                        },
                    }
                }
                "h" | "help" => cli.help = true,
                other => return Err(CliError(format!("flag provided but not defined: -{other}"))),
            }
        }
        match positional.len() {
            0 => {}
            1 => cli.path = positional.pop(),
            _ => {
                return Err(CliError(format!(
                    "expected one PATH, got {}: {}",
                    positional.len(),
                    positional.join(" ")
                )))
            }
        }
        Ok(cli)
    }
}

/// Where upstream's build and image keep their Go plugins: nothing to say about these.
const UPSTREAM_PLUGIN_DIRS: &[&str] = &[
    "../resources/plugins",
    "../resources/drivers",
    "/usr/local/sysflow/resources/plugins",
    "/usr/local/sysflow/resources/drivers",
];

/// What to say about `-plugdir`/`-driverdir` `dir`: nothing for upstream's default paths, a
/// missing or an empty directory (no plugin would be lost); otherwise which Go plugins it
/// holds, that they are not loaded, and what is built in instead.
pub fn plugin_dir_warning(flag: &str, dir: &str) -> Option<String> {
    let trimmed = dir.trim_end_matches('/');
    if trimmed.is_empty() || UPSTREAM_PLUGIN_DIRS.contains(&trimmed) {
        return None;
    }
    let entries = std::fs::read_dir(dir).ok()?;
    let mut plugins: Vec<String> = entries
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    if plugins.is_empty() {
        return None;
    }
    plugins.sort();
    let shown: Vec<&str> = plugins.iter().take(5).map(String::as_str).collect();
    let more = plugins.len().saturating_sub(shown.len());
    Some(format!(
        "-{flag} {dir}: Go plugins are not loaded by this build ({}{}); built in instead: drivers file and socket, handlers flattener and printer, processors sysflowreader, policyengine, exporter and example",
        shown.join(", "),
        if more > 0 { format!(" and {more} more") } else { String::new() }
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Cli, CliError> {
        Cli::parse(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn go_style_flags() {
        let c = p(&["-config", "a.json", "-log=debug", "--test", "trace.sf"]).unwrap();
        assert_eq!(c.config, "a.json");
        assert_eq!(c.log, LogLevel::Debug);
        assert!(c.test);
        assert!(!c.strict);
        assert_eq!(c.path.as_deref(), Some("trace.sf"));
        assert!(p(&["-strict", "-test"]).unwrap().strict);
        let c = p(&["-driver=socket", "-metrics", ":9464", "/run/sf.sock"]).unwrap();
        assert_eq!(c.driver.as_deref(), Some("socket"));
        assert_eq!(c.metrics.as_deref(), Some(":9464"));
        let c = p(&["--config=b.json", "-driver", "file", "-test=false", "x"]).unwrap();
        assert_eq!(c.config, "b.json");
        assert!(!c.test);
    }

    #[test]
    fn errors() {
        assert!(p(&["-driver", "kafka", "x"])
            .unwrap_err()
            .0
            .contains("unknown driver `kafka`"));
        assert!(p(&["-nope", "x"])
            .unwrap_err()
            .0
            .contains("not defined: -nope"));
        assert!(p(&["-log", "loud", "x"])
            .unwrap_err()
            .0
            .contains("invalid log level"));
        assert!(p(&["-config"]).unwrap_err().0.contains("needs an argument"));
        assert!(p(&["a", "b"]).unwrap_err().0.contains("expected one PATH"));
        assert!(p(&["-version"]).unwrap().version);
        assert!(p(&["-perflog=sometimes"])
            .unwrap_err()
            .0
            .contains("-perflog"));
    }

    #[test]
    fn upstreams_unit_and_image_flags_are_accepted() {
        // scripts/service/systemd/sysflow-processor.service of sf-processor 0.7.0.
        let c = p(&[
            "-log=error",
            "-driver=socket",
            "-config=/etc/sysflow/pipelines/pipeline.json",
            "-plugdir=/usr/local/sysflow/resources/plugins",
            "/var/run/sysflow.sock",
        ])
        .unwrap();
        assert_eq!(c.log, LogLevel::Error);
        assert_eq!(
            c.plugdir.as_deref(),
            Some("/usr/local/sysflow/resources/plugins")
        );
        assert_eq!(c.path.as_deref(), Some("/var/run/sysflow.sock"));
        // The image's CMD.
        let c = p(&[
            "-log",
            "health",
            "-driver",
            "socket",
            "-driverdir",
            "/d",
            "-plugdir",
            "/p",
            "-config",
            "/c.json",
            "/sock/sysflow.sock",
        ])
        .unwrap();
        assert_eq!(c.log, LogLevel::Health);
        assert_eq!(c.driverdir.as_deref(), Some("/d"));
        let c = p(&[
            "-cpuprofile",
            "cpu.pb",
            "-memprofile=mem.txt",
            "-traceprofile",
            "t.out",
            "-perflog",
            "x",
        ])
        .unwrap();
        assert_eq!(c.cpuprofile.as_deref(), Some("cpu.pb"));
        assert_eq!(c.memprofile.as_deref(), Some("mem.txt"));
        assert_eq!(c.traceprofile.as_deref(), Some("t.out"));
        assert_eq!(c.perflog, Some(PERFLOG_INTERVAL));
        assert_eq!(p(&["-perflog=false", "x"]).unwrap().perflog, None);
        assert_eq!(
            p(&["-perflog=2s", "x"]).unwrap().perflog,
            Some(Duration::from_secs(2))
        );
    }

    #[test]
    fn plugin_directories_warn_only_when_they_hold_plugins() {
        assert_eq!(plugin_dir_warning("plugdir", "../resources/plugins"), None);
        assert_eq!(plugin_dir_warning("plugdir", "/no/such/dir"), None);
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().to_str().unwrap().to_string();
        assert_eq!(plugin_dir_warning("plugdir", &dir), None, "empty");
        std::fs::write(d.path().join("dynamic.so"), b"").unwrap();
        let w = plugin_dir_warning("driverdir", &dir).expect("warns");
        assert!(w.contains("-driverdir"), "{w}");
        assert!(w.contains("dynamic.so"), "{w}");
        assert!(w.contains("not loaded"), "{w}");
    }
}
