//! sfprint's command line: sysprint's options (argparse style: `-o json`, `-ojson`,
//! `--output json`, `--output=json`), plus `-o tree`, `-p`/`--policies`, `--quirks` and
//! `--log`.
//!
//! sysprint's `-p` is the S3 port; the tree view's `-p` names policies. A `-p` value that is
//! a port number is the port, anything else is a policy path (`--s3port` and `--policies`
//! are the unambiguous spellings).

use std::path::PathBuf;

use super::output::Format;

pub const USAGE: &str =
    "usage: sfprint [-h] [-i {local,s3}] [-o {str,flatjson,json,csv,tree}] [-w FILE]
               [-c FIELDS] [-f FILTER] [-l] [-k | -K] [-A] [-p POLICIES]
               [-e S3ENDPOINT] [-p S3PORT] [-a S3ACCESSKEY] [-s S3SECRETKEY]
               [--secure [SECURE]] [--quirks {fixed,upstream}] [--log LEVEL] [-v]
               path [path ...]

sfprint: prints and converts SysFlow traces (the successor of sysprint).

positional arguments:
  path                  trace files or directories (bucket names with -i s3)

options:
  -h, --help            show this help message and exit
  -i, --input {local,s3}
                        input type (default: local)
  -o, --output {str,flatjson,json,csv,tree}
                        output format (default: str); json without -c is the exporter's
                        layout; tree prints the process forest
  -w, --file FILE       output file path (json and flatjson write one JSON array)
  -c, --fields FIELDS   comma-separated columns: sysprint keys (see -l) or policy
                        attributes (sf.proc.name, ...)
  -f, --filter FILTER   a condition in the policy language (sf.type = PE and ...)
  -l, --list            list every column and attribute with its type and description
  -k, --k8s             add the pod name to the default columns
  -K, --k8sevents       Kubernetes event columns
  -A, --allfields       every column
  -p, --policies PATH   policy file or directory: rules that matched show in the tree
                        and in the tags column (a number here is the S3 port)
  --quirks {fixed,upstream}
                        how -f and -p conditions read records (default: fixed, the record
                        as recorded; upstream: as sfprocessor's default, upstream's quirks)
  -e, --s3endpoint HOST S3 server address
  --s3port PORT         S3 server port (also -p PORT)
  -a, --s3accesskey KEY S3 access key (default: $AWS_ACCESS_KEY_ID)
  -s, --s3secretkey KEY S3 secret key (default: $AWS_SECRET_ACCESS_KEY)
  --secure [SECURE]     use TLS for S3 (yes/no, true/false; bare: yes)
  --log LEVEL           stderr log level: error, warn, info, quiet (quiet also hides
                        the progress bar)
  --queue DIR           inspect an exporter's disk queue directory (queue.path): records,
                        bytes, oldest and newest, damage; exit 1 if damage was found
  --records             with --queue: print the queued records instead, one per line
  -v, --version         print version information";

/// Where traces come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InputKind {
    #[default]
    Local,
    S3,
}

/// S3 connection settings (sysprint's flags; the keys fall back to the usual environment
/// variables, and are never printed).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct S3Args {
    pub endpoint: Option<String>,
    pub port: Option<u16>,
    pub access_key: Option<String>,
    pub secret_key: Option<String>,
    pub secure: bool,
}

impl std::fmt::Debug for S3Args {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Args")
            .field("endpoint", &self.endpoint)
            .field("port", &self.port)
            .field("access_key", &self.access_key.as_ref().map(|_| "<set>"))
            .field("secret_key", &self.secret_key.as_ref().map(|_| "<set>"))
            .field("secure", &self.secure)
            .finish()
    }
}

/// Parsed options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub input: InputKind,
    pub format: Format,
    pub file: Option<PathBuf>,
    pub fields: Option<Vec<String>>,
    pub filter: Option<String>,
    pub list: bool,
    pub k8s: bool,
    pub k8s_events: bool,
    pub all: bool,
    pub policies: Vec<PathBuf>,
    pub upstream_quirks: bool,
    pub quiet: bool,
    /// `--queue DIR`: inspect a disk queue directory instead of printing traces.
    pub queue: Option<PathBuf>,
    /// `--records` with `--queue`: print the queued records, one per line.
    pub queue_records: bool,
    pub log: String,
    pub s3: S3Args,
    pub paths: Vec<String>,
    pub help: bool,
    pub version: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            input: InputKind::Local,
            format: Format::Str,
            file: None,
            fields: None,
            filter: None,
            list: false,
            k8s: false,
            k8s_events: false,
            all: false,
            policies: Vec::new(),
            upstream_quirks: false,
            quiet: false,
            queue: None,
            queue_records: false,
            log: "warn".to_string(),
            s3: S3Args::default(),
            paths: Vec::new(),
            help: false,
            version: false,
        }
    }
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "yes" | "true" | "t" | "y" | "1" => Some(true),
        "no" | "false" | "f" | "n" | "0" => Some(false),
        _ => None,
    }
}

/// Long option names and whether each takes a value.
const LONG: &[(&str, char, bool)] = &[
    ("help", 'h', false),
    ("input", 'i', true),
    ("output", 'o', true),
    ("file", 'w', true),
    ("fields", 'c', true),
    ("filter", 'f', true),
    ("list", 'l', false),
    ("k8s", 'k', false),
    ("k8sevents", 'K', false),
    ("allfields", 'A', false),
    ("s3endpoint", 'e', true),
    ("s3accesskey", 'a', true),
    ("s3secretkey", 's', true),
    ("version", 'v', false),
];

impl Options {
    /// Parses the arguments after the program name.
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Options, String> {
        let mut o = Options::default();
        let mut args = args.into_iter().peekable();
        let mut only_paths = false;
        while let Some(a) = args.next() {
            if only_paths || a == "-" || !a.starts_with('-') {
                o.paths.push(a);
                continue;
            }
            if a == "--" {
                only_paths = true;
                continue;
            }
            // (option, inline value)
            let (name, inline): (String, Option<String>) = if let Some(long) = a.strip_prefix("--")
            {
                let (n, v) = match long.split_once('=') {
                    Some((n, v)) => (n, Some(v.to_string())),
                    None => (long, None),
                };
                match n {
                    "records" => {
                        o.queue_records = true;
                        continue;
                    }
                    "secure" => {
                        let v = match v {
                            Some(v) => Some(v),
                            None => args.next_if(|x| parse_bool(x).is_some()),
                        };
                        o.s3.secure = match v {
                            Some(v) => parse_bool(&v).ok_or_else(|| {
                                format!("--secure: boolean value expected, got `{v}`")
                            })?,
                            None => true,
                        };
                        continue;
                    }
                    "policies" | "s3port" | "quirks" | "log" | "queue" => (n.to_string(), v),
                    _ => match LONG.iter().find(|(l, _, _)| *l == n) {
                        Some((_, c, _)) => (c.to_string(), v),
                        None => return Err(format!("unrecognized arguments: {a}")),
                    },
                }
            } else if a == "-log" {
                ("log".to_string(), None)
            } else {
                // Short options; flags may be grouped (-kA), a value may be attached (-ojson).
                let mut chars = a[1..].chars();
                let mut name = None;
                while let Some(c) = chars.next() {
                    let takes = matches!(c, 'i' | 'o' | 'w' | 'c' | 'f' | 'e' | 'p' | 'a' | 's');
                    if takes {
                        let rest: String = chars.by_ref().collect();
                        name = Some((c.to_string(), (!rest.is_empty()).then_some(rest)));
                        break;
                    }
                    o.flag(c)
                        .map_err(|_| format!("unrecognized arguments: {a}"))?;
                }
                match name {
                    Some(n) => n,
                    None => continue,
                }
            };
            let takes_value = !matches!(name.as_str(), "h" | "l" | "k" | "K" | "A" | "v");
            if !takes_value {
                o.flag(name.chars().next().unwrap_or('?'))?;
                continue;
            }
            let value = match inline {
                Some(v) => v,
                None => args
                    .next()
                    .ok_or_else(|| format!("argument -{name}: expected one argument"))?,
            };
            o.set(&name, value)?;
        }
        if o.k8s && o.k8s_events {
            return Err("argument -K/--k8sevents: not allowed with argument -k/--k8s".into());
        }
        if !o.help && !o.version && !o.list && o.queue.is_none() && o.paths.is_empty() {
            return Err("the following arguments are required: path".into());
        }
        Ok(o)
    }

    fn flag(&mut self, c: char) -> Result<(), String> {
        match c {
            'h' => self.help = true,
            'l' => self.list = true,
            'k' => self.k8s = true,
            'K' => self.k8s_events = true,
            'A' => self.all = true,
            'v' => self.version = true,
            _ => return Err(format!("unknown option -{c}")),
        }
        Ok(())
    }

    fn set(&mut self, name: &str, v: String) -> Result<(), String> {
        match name {
            "i" => {
                self.input = match v.as_str() {
                    "local" => InputKind::Local,
                    "s3" => InputKind::S3,
                    _ => return Err(format!("argument -i/--input: invalid choice: '{v}' (choose from 'local', 's3')")),
                }
            }
            "o" => {
                self.format = Format::parse(&v).ok_or_else(|| {
                    format!("argument -o/--output: invalid choice: '{v}' (choose from 'str', 'flatjson', 'json', 'csv', 'tree')")
                })?
            }
            "w" => self.file = Some(PathBuf::from(v)),
            "c" => {
                self.fields = Some(
                    v.split(',')
                        .map(|s| s.trim().to_string())
                        .filter(|s| !s.is_empty())
                        .collect(),
                )
            }
            "f" => self.filter = Some(v),
            "e" => self.s3.endpoint = Some(v),
            "a" => self.s3.access_key = Some(v),
            "s" => self.s3.secret_key = Some(v),
            "p" => match v.parse::<u16>() {
                Ok(port) => self.s3.port = Some(port),
                Err(_) => self.policies.push(PathBuf::from(v)),
            },
            "policies" => self.policies.push(PathBuf::from(v)),
            "queue" => self.queue = Some(PathBuf::from(v)),
            "s3port" => {
                self.s3.port = Some(
                    v.parse()
                        .map_err(|_| format!("--s3port: not a port number: `{v}`"))?,
                )
            }
            "quirks" => {
                self.upstream_quirks = match v.as_str() {
                    "upstream" => true,
                    "fixed" => false,
                    _ => return Err(format!("--quirks: expected fixed or upstream, got `{v}`")),
                }
            }
            "log" => {
                if !matches!(v.as_str(), "trace" | "debug" | "info" | "warn" | "error" | "quiet") {
                    return Err(format!(
                        "--log: expected trace, debug, info, warn, error or quiet, got `{v}`"
                    ));
                }
                self.quiet = v == "quiet";
                self.log = if self.quiet { "error".to_string() } else { v };
            }
            _ => return Err(format!("unknown option -{name}")),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(a: &[&str]) -> Result<Options, String> {
        Options::parse(a.iter().map(|s| s.to_string()))
    }

    #[test]
    fn sysprint_spellings_parse() {
        let o = p(&[
            "-o",
            "json",
            "-c",
            "proc.exe,ts_uts",
            "-f",
            "sf.type = PE",
            "t.sf",
        ])
        .unwrap();
        assert_eq!(o.format, Format::Json);
        assert_eq!(o.fields.unwrap(), vec!["proc.exe", "ts_uts"]);
        assert_eq!(o.filter.as_deref(), Some("sf.type = PE"));
        assert_eq!(o.paths, vec!["t.sf"]);
        let o = p(&["-ocsv", "--file=out.csv", "-kA", "--", "-odd.sf"]).unwrap();
        assert_eq!(o.format, Format::Csv);
        assert_eq!(o.file, Some(PathBuf::from("out.csv")));
        assert!(o.k8s && o.all);
        assert_eq!(o.paths, vec!["-odd.sf"]);
    }

    #[test]
    fn p_is_a_port_or_policies() {
        let o = p(&[
            "-i",
            "s3",
            "-e",
            "localhost",
            "-p",
            "9000",
            "--secure",
            "false",
            "b",
        ])
        .unwrap();
        assert_eq!(o.s3.port, Some(9000));
        assert!(!o.s3.secure);
        assert!(o.policies.is_empty());
        let o = p(&["-o", "tree", "-p", "rules/", "--secure", "t.sf"]).unwrap();
        assert_eq!(o.policies, vec![PathBuf::from("rules/")]);
        assert!(o.s3.secure);
        assert_eq!(o.paths, vec!["t.sf"]);
    }

    #[test]
    fn errors_name_the_argument() {
        assert!(p(&["-o", "xml", "t"])
            .unwrap_err()
            .contains("invalid choice: 'xml'"));
        assert!(p(&["-k", "-K", "t"]).unwrap_err().contains("not allowed"));
        assert!(p(&[]).unwrap_err().contains("required: path"));
        assert!(p(&["-l"]).is_ok());
        assert!(p(&["-x", "t"]).unwrap_err().contains("unrecognized"));
        let o = p(&["-s", "hunter2", "-a", "key", "b"]).unwrap();
        assert!(!format!("{o:?}").contains("hunter2"));
    }
}
