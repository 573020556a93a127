//! Command line in upstream's Go style: single-dash long flags (`-config FILE`), also
//! `--config FILE` and `-config=FILE`.

use std::fmt;

/// Log levels upstream accepts (plus `debug`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
    Quiet,
}

impl LogLevel {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.to_ascii_lowercase().as_str() {
            "trace" => LogLevel::Trace,
            "debug" => LogLevel::Debug,
            "info" | "health" => LogLevel::Info,
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
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliError(pub String);

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

pub const USAGE: &str = "Usage: sfprocessor [-config FILE] [-driver file|socket] [-metrics ADDR] [-log trace|debug|info|warn|error|quiet] [-test] [-strict] [-version] PATH

  PATH             file driver: a SysFlow trace file, or a directory of traces (read in name
                   order); socket driver: the Unix socket to listen on for the collector
  -config FILE     pipeline configuration (default: pipeline.json)
  -driver NAME     input driver: file or socket (default: the `drivers` entry of the
                   configuration, else file)
  -metrics ADDR    serve /metrics, /healthz and /readyz on ADDR (HOST:PORT, or :PORT for
                   127.0.0.1; default: the configuration's metrics.listen, else off)
  -log LEVEL       log level on stderr (default: info)
  -test            validate the configuration and policies, list warnings and exit (non-zero
                   on any error); PATH is optional
  -strict          policies: every warning about what upstream only tolerates (unknown
                   attributes and actions, repaired YAML, ...) is an error
  -version         print the version and the schema versions read and written
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
                            "invalid log level `{l}` (expected trace, debug, info, warn, error or quiet)"
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
    }
}
