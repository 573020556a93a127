//! sfprint: sysprint's successor. Prints and converts traces (`str`, `json`, `flatjson`,
//! `csv`), filters them with a policy-language condition (the engine's compiler, so every
//! attribute and operator works), and draws the process forest (`-o tree`). It reuses the
//! processor's decoder, entity cache and policy engine; only the formats are its own.

pub mod cli;
pub mod columns;
pub mod input;
pub mod output;
pub mod parallel;
pub mod s3;
pub mod tree;

use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use cli::{InputKind, Options};
use columns::{Column, DEFAULT_STR, FLAT_ORDER, K8S_EVENT_STR, KEYS};
use input::{Damage, ReadOptions};
use output::{ColumnsJson, Csv, ExporterJson, Format, RecordFormat, Table};

use crate::policy::attr::ATTRIBUTES;
use crate::policy::engine::{
    load_condition, load_policy_paths, Engine, LoadOptions, Mode, CONDITION_RULE,
};
use crate::progress::{self, Counters, Progress};

/// How a run ended.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Records printed (after the filter).
    pub records: u64,
    /// What could not be read (each is named on stderr; the exit code is then 1).
    pub damage: Vec<Damage>,
}

/// `-l`: every column with its type and description, then every policy attribute.
pub fn list(out: &mut impl Write) -> io::Result<()> {
    let rule = "-".repeat(30);
    writeln!(out, "{rule}\nList of attributes:\n{rule}")?;
    for k in KEYS {
        writeln!(out, "{:<40} {:<6} {}", k.name, k.ty, k.desc)?;
    }
    writeln!(
        out,
        "{rule}\nPolicy attributes (for -f, -c and -p rules):\n{rule}"
    )?;
    for (name, field) in ATTRIBUTES {
        let ty = match field.kind() {
            crate::policy::attr::Kind2::Int => "int",
            crate::policy::attr::Kind2::Str => "str",
            _ => "list",
        };
        let desc = attribute_desc(name, *field);
        writeln!(out, "{name:<40} {ty:<6} {desc}")?;
    }
    writeln!(out, "{rule}")
}

/// A policy attribute's description: the sysprint key it matches, or what it is an alias of.
fn attribute_desc(name: &str, field: crate::policy::attr::Field) -> String {
    let plain = name.strip_prefix("sf.").unwrap_or(name);
    if name.starts_with("sf.") {
        if let Some(k) = KEYS.iter().find(|k| k.name == plain) {
            return k.desc.to_string();
        }
        return match plain {
            "proc.oid" | "pproc.oid" => "Process object id (hash of PID and creation time)",
            "proc.aexe" => "Process ancestors executables",
            "proc.acmdline" => "Process ancestors command lines",
            "file.symlink" | "file.newsymlink" => "Symbolic link target of the (new) file",
            "file.oid" | "file.newoid" => "File object id",
            "file.newname" => "New file name",
            "file.newdirectory" => "New file directory",
            "pod.ts" => "Pod timestamp",
            "pod.nodename" => "Pod Node Name",
            "pod.namespace" => "Pod Namespace",
            "pod.restartcnt" => "Pod Restart Count",
            "ke.action" => "K8s Event Action",
            "ke.kind" => "K8s Event Component Type",
            "ke.message" => "K8s Event Message",
            "meta.schema" => "SysFlow schema version",
            "meta.tracename" => "SysFlow trace file name",
            "opflags" => "Operation flag names",
            "endts" => "Record end timestamp",
            "ts" => "Record start timestamp",
            _ => "Raw form upstream maps (reads as empty)",
        }
        .to_string();
    }
    match ATTRIBUTES
        .iter()
        .find(|(n, f)| n.starts_with("sf.") && *f == field)
    {
        Some((sf, _)) => format!("Falco alias of {sf}"),
        None => "Falco field".to_string(),
    }
}

/// The columns a format prints.
fn columns(o: &Options) -> Result<Option<Vec<Column>>, String> {
    let names: Vec<String> = match (&o.fields, o.all, o.format) {
        (_, _, Format::Tree) => return Ok(None),
        (_, true, _) => FLAT_ORDER.iter().map(|s| s.to_string()).collect(),
        (Some(f), false, _) => f.clone(),
        (None, false, Format::Json) => return Ok(None),
        (None, false, Format::Str) => {
            let mut v: Vec<String> = if o.k8s_events {
                K8S_EVENT_STR
            } else {
                DEFAULT_STR
            }
            .iter()
            .map(|s| s.to_string())
            .collect();
            if o.k8s {
                v.push("pod.name".to_string());
            }
            v
        }
        (None, false, _) => FLAT_ORDER.iter().map(|s| s.to_string()).collect(),
    };
    let mut cols = Vec::new();
    for n in names {
        cols.push(
            Column::resolve(&n)
                .ok_or_else(|| format!("-c: unknown column `{n}` (sfprint -l lists them)"))?,
        );
    }
    Ok(Some(cols))
}

fn terminal_width() -> usize {
    // SAFETY: TIOCGWINSZ writes a winsize into the struct passed; fds 0-2 may be anything.
    for fd in [1, 2, 0] {
        let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
        if unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) } == 0 && ws.ws_col > 0 {
            return usize::from(ws.ws_col);
        }
    }
    80
}

fn load_opts(o: &Options) -> LoadOptions {
    LoadOptions {
        fixed_quirks: !o.upstream_quirks,
        ..Default::default()
    }
}

/// A `-f` condition is checked strictly: an unknown attribute or macro there is a typo (it
/// would match nothing, or everything), so it is an error, as an unknown `-c` column is.
fn filter_opts(o: &Options) -> LoadOptions {
    LoadOptions {
        strict: true,
        ..load_opts(o)
    }
}

/// Runs sfprint with parsed options (not `-l`, `-h`, `-v`).
pub fn run(o: &Options) -> Result<Outcome, String> {
    let cols = columns(o)?;
    let filter = match &o.filter {
        Some(f) => Some(Engine::new(
            Arc::new(load_condition("-f", f, &filter_opts(o)).map_err(|e| format!("{e}"))?),
            Mode::Alert,
        )),
        None => None,
    };
    let rules = if o.policies.is_empty() {
        None
    } else {
        let paths: Vec<&Path> = o.policies.iter().map(PathBuf::as_path).collect();
        let set = load_policy_paths(&paths, &load_opts(o)).map_err(|e| format!("-p: {e}"))?;
        // The rule files' lint is sfprocessor -test's job; here it is a count.
        for w in &set.warnings {
            tracing::debug!("{w}");
        }
        if !set.warnings.is_empty() {
            tracing::info!(
                "-p: {} warnings while loading the policies (--log debug lists them)",
                set.warnings.len()
            );
        }
        Some(Engine::new(Arc::new(set), Mode::Enrich))
    };

    let mut outcome = Outcome::default();
    let mut downloads: Option<s3::Downloads> = None;
    let files = match o.input {
        InputKind::Local => {
            let paths: Vec<PathBuf> = o.paths.iter().map(PathBuf::from).collect();
            input::list_local(&paths, &mut outcome.damage)
        }
        InputKind::S3 => {
            let d = s3::download(&o.s3, &o.paths, &mut outcome.damage)?;
            let files = d.files.clone();
            downloads = Some(d);
            files
        }
    };

    // Nothing readable at all: the problems are the answer (no empty table header first).
    if files.is_empty() && !outcome.damage.is_empty() {
        return Ok(outcome);
    }
    let out: Box<dyn Write + Send> = match &o.file {
        Some(p) => Box::new(BufWriter::with_capacity(
            1 << 16,
            std::fs::File::create(p).map_err(|e| format!("-w {}: {e}", p.display()))?,
        )),
        None => Box::new(BufWriter::with_capacity(1 << 16, io::stdout())),
    };
    let array = o.file.is_some();
    let format: Option<Box<dyn RecordFormat>> = match (o.format, cols) {
        (Format::Tree, _) => None,
        (Format::Json, None) => Some(Box::new(ExporterJson::new(array))),
        (Format::Json, Some(c)) => Some(Box::new(ColumnsJson::new(c, true, array))),
        (Format::FlatJson, Some(c)) => Some(Box::new(ColumnsJson::new(c, false, array))),
        (Format::Csv, Some(c)) => Some(Box::new(Csv::new(c))),
        (_, Some(c)) => Some(Box::new(Table::new(c, terminal_width()))),
        (_, None) => return Err("no columns selected".into()),
    };
    let mut forest = format.is_none().then(tree::Forest::default);
    let (mut printer, mut tree_out) = match &format {
        Some(f) => {
            let workers = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
            (Some(parallel::Printer::start(&**f, out, workers)), None)
        }
        None => (None, Some(out)),
    };

    let counters = Counters::default();
    let bar = progress::wanted(o.quiet)
        .then(|| Progress::start(progress::total_bytes(&files), counters.sampler()));
    let mut memo = crate::policy::memo::Memo::default();
    let mut rule_memo = crate::policy::memo::Memo::default();
    let ropts = ReadOptions {
        upstream_quirks: o.upstream_quirks,
    };
    let mut idx = 0u64;
    let damage = input::read_records(&files, ropts, &counters.bytes, |mut rec, facts| {
        counters.records.fetch_add(1, Ordering::Relaxed);
        if let Some(f) = &filter {
            f.apply_memo(&mut rec, &mut memo);
            let keep = rec.policies.iter().any(|p| &*p.id == CONDITION_RULE);
            rec.policies.clear();
            rec.tags.clear();
            if !keep {
                return true;
            }
        }
        if let Some(r) = &rules {
            r.apply_memo(&mut rec, &mut rule_memo);
            if !rec.policies.is_empty() {
                counters
                    .alerts
                    .fetch_add(rec.policies.len() as u64, Ordering::Relaxed);
            }
        }
        let row = columns::Row { idx, facts: *facts };
        idx += 1;
        match (printer.as_mut(), forest.as_mut()) {
            (Some(p), _) => p.push(rec, row),
            (None, Some(t)) => {
                t.add(&rec);
                true
            }
            (None, None) => false,
        }
    });
    outcome.records = idx;
    outcome.damage.extend(damage.into_iter().map(|mut d| {
        // Downloaded objects are named by their bucket and key, not the temporary file.
        if let Some(dl) = &downloads {
            if let Some(i) = dl
                .files
                .iter()
                .position(|f| f.display().to_string() == d.file)
            {
                if let Some(n) = dl.names.get(i) {
                    d.file = n.clone();
                }
            }
        }
        d
    }));
    let written = match (printer.take(), forest.as_ref(), tree_out.as_mut()) {
        (Some(p), _, _) => p.finish(),
        (None, Some(t), Some(w)) => {
            let width = if o.file.is_none() && std::io::IsTerminal::is_terminal(&io::stdout()) {
                terminal_width()
            } else {
                80
            };
            t.print(w, width).and_then(|()| w.flush())
        }
        _ => Ok(()),
    };
    if let Some(b) = bar {
        b.finish();
    }
    match written {
        Ok(()) => Ok(outcome),
        // A closed pipe (`| head`) is the reader's choice, not an error.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(outcome),
        Err(e) => Err(format!("writing the output: {e}")),
    }
}
