//! Policy file loading, the first stage of Falco's staged loader (reader → collector →
//! compiler): YAML through a real parser (serde-saphyr) after the leniency step, each entry
//! read into a raw form that keeps what was written (an absent key is `None`, so append,
//! override and disable-only entries can change exactly the keys they name). Errors do not
//! stop the load: every bad entry and file is reported (bounded), the rest is kept.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;
use serde_saphyr::Spanned;

use super::diag::{Code, Diags};
use super::files::{policy_files, read_policy_file};
use super::leniency::leniency;
pub use super::source::{CondText, PolicyError, Pos};

/// A rule a rule language other than Falco's produced with its condition already parsed
/// (a Sigma detection): the collector compiles it beside the Falco-style rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AstRule {
    /// The rule's name (upstream names a Sigma rule by its `id`, else its title).
    pub name: String,
    pub desc: String,
    pub priority: i64,
    pub tags: Vec<String>,
    pub condition: Arc<super::parser::Expr>,
    /// Where the condition's text starts (positions of the compiled condition).
    pub at: CondText,
    pub pos: Pos,
}

/// One entry of a policy file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Rule(RawRule),
    Macro(RawMacro),
    List(RawList),
    /// `filter:` or `drop:` entries remove matching records before rules run.
    Filter(RawFilter),
    /// A rule of another rule language (Sigma), its condition already an AST.
    Ast(Box<AstRule>),
}

/// How an entry changes an earlier one of the same name (Falco `append`/`override`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Merge {
    #[default]
    Define,
    Append,
    Replace,
}

/// A Falco exception as written: `fields` (one name or a list), `comps`, `values`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawException {
    pub name: String,
    pub fields: Vec<String>,
    /// `fields` was a single name (values are then the items of one `in`).
    pub single: bool,
    pub comps: Vec<String>,
    pub values: Vec<Value>,
    pub pos: Pos,
}

/// A `rule` entry. `None` means the key was not written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawRule {
    pub name: String,
    pub desc: Option<String>,
    pub condition: Option<CondText>,
    pub output: Option<String>,
    pub priority: Option<String>,
    pub tags: Option<Vec<String>>,
    pub prefilter: Option<Vec<String>>,
    pub enabled: Option<bool>,
    pub actions: Option<Vec<String>>,
    pub exceptions: Option<Vec<RawException>>,
    /// `append: true`.
    pub append: bool,
    /// `override: {key: append|replace}`.
    pub overrides: Vec<(String, Merge)>,
    pub pos: Pos,
}

impl RawRule {
    /// How `key` of this entry changes the rule defined before it: `Define` for a new rule.
    pub fn merge_of(&self, key: &str) -> Merge {
        if let Some((_, m)) = self.overrides.iter().find(|(k, _)| k == key) {
            return *m;
        }
        if self.append {
            Merge::Append
        } else if self.overrides.is_empty() {
            Merge::Define
        } else {
            // Not named in `override`: left as it was.
            Merge::Replace
        }
    }

    /// A change entry: appends to or overrides an earlier rule of the same name.
    pub fn is_change(&self) -> bool {
        self.append || !self.overrides.is_empty()
    }

    /// Falco's disable-only form: `- rule: X` with `enabled` and nothing else.
    pub fn is_enable_only(&self) -> bool {
        self.enabled.is_some()
            && self.condition.is_none()
            && self.desc.is_none()
            && self.output.is_none()
            && self.priority.is_none()
            && self.exceptions.is_none()
            && !self.is_change()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawMacro {
    pub name: String,
    pub condition: CondText,
    pub merge: Merge,
    pub pos: Pos,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawList {
    pub name: String,
    pub items: Vec<String>,
    pub merge: Merge,
    pub pos: Pos,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawFilter {
    pub name: String,
    pub condition: CondText,
    pub enabled: bool,
    pub pos: Pos,
}

/// The entries of one file, in file order.
#[derive(Debug, Clone, Default)]
pub struct LoadedFile {
    pub name: Arc<str>,
    pub entries: Vec<Entry>,
}

/// Everything loaded from the policy paths, file by file in load order.
#[derive(Debug, Clone, Default)]
pub struct LoadedFiles {
    pub files: Vec<LoadedFile>,
    pub paths: Vec<PathBuf>,
}

impl LoadedFiles {
    /// Every entry, in load order.
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.files.iter().flat_map(|f| f.entries.iter())
    }
}

fn as_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn as_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) => match s.trim_matches(['"', '\'']).to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" | "1" | "t" => Some(true),
            "false" | "no" | "off" | "0" | "f" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// Keys each entry kind uses; others are warned about.
const RULE_KEYS: &[&str] = &[
    "rule",
    "desc",
    "condition",
    "output",
    "priority",
    "tags",
    "prefilter",
    "enabled",
    "action",
    "actions",
    "exceptions",
    "append",
    "override",
    "source",
    "warn_evttypes",
    "skip-if-unknown-filter",
    "capture",
    "capture_duration",
];
const MACRO_KEYS: &[&str] = &["macro", "condition", "append", "override", "source", "desc"];
const LIST_KEYS: &[&str] = &["list", "items", "append", "override", "source", "desc"];
const FILTER_KEYS: &[&str] = &["filter", "drop", "condition", "enabled", "desc"];

/// Reads one file's entries into `out`, errors and warnings into `diags`.
struct FileReader<'a> {
    fname: Arc<str>,
    source: Arc<str>,
    diags: &'a mut Diags,
}

type Map = BTreeMap<String, Spanned<Value>>;

impl FileReader<'_> {
    fn pos_of(&self, v: &Spanned<Value>) -> Pos {
        Pos {
            file: self.fname.clone(),
            line: v.referenced.line(),
            col: v.referenced.column(),
        }
    }

    fn line(&self, line: u64) -> String {
        self.source
            .lines()
            .nth(line.saturating_sub(1) as usize)
            .unwrap_or("")
            .trim_end()
            .to_string()
    }

    fn error(&mut self, pos: Pos, message: String) {
        let snippet = self.line(pos.line);
        self.diags.error(PolicyError {
            pos,
            message,
            snippet,
        });
    }

    fn warn(&mut self, code: Code, pos: Pos, message: String) {
        let snippet = self.line(pos.line);
        self.diags.warn(code, pos, message, &snippet);
    }

    fn cond(&self, v: &Spanned<Value>) -> CondText {
        CondText {
            text: as_string(&v.value),
            pos: self.pos_of(v),
            byte_offset: v.referenced.span().byte_offset(),
            source: self.source.clone(),
        }
    }

    /// A list value; a scalar is a one-item list, with a warning.
    fn list(&mut self, m: &Map, key: &str) -> Option<Vec<String>> {
        let v = m.get(key)?;
        Some(match &v.value {
            Value::Array(a) => a.iter().map(as_string).collect(),
            Value::Null => Vec::new(),
            other => {
                let s = as_string(other);
                let pos = self.pos_of(v);
                self.warn(
                    Code::ScalarForList,
                    pos,
                    format!(
                        "`{key}` should be a list; the scalar `{s}` is read as a one-item list"
                    ),
                );
                vec![s]
            }
        })
    }

    fn string(&self, m: &Map, key: &str) -> Option<String> {
        m.get(key).map(|v| as_string(&v.value))
    }

    fn unknown_keys(&mut self, m: &Map, known: &[&str], what: &str) {
        for (k, v) in m {
            if !known.contains(&k.as_str()) {
                let pos = self.pos_of(v);
                self.warn(
                    Code::UnknownKey,
                    pos,
                    format!("{what}: key `{k}` is not used and is ignored"),
                );
            }
        }
    }

    fn enabled(&mut self, m: &Map) -> Option<bool> {
        let v = m.get("enabled")?;
        match as_bool(&v.value) {
            Some(b) => Some(b),
            None => {
                let pos = self.pos_of(v);
                self.warn(
                    Code::UnknownKey,
                    pos,
                    format!(
                        "`enabled` is not true or false (`{}`); the entry stays enabled (upstream's behaviour)",
                        as_string(&v.value)
                    ),
                );
                Some(true)
            }
        }
    }

    /// `append:` and `override:` of an entry.
    fn merges(&mut self, m: &Map, main_key: &str) -> (bool, Vec<(String, Merge)>) {
        let append = match m.get("append") {
            None => false,
            Some(v) => match as_bool(&v.value) {
                Some(b) => b,
                None => {
                    let pos = self.pos_of(v);
                    self.error(
                        pos,
                        format!(
                            "`append` must be true or false, found `{}`",
                            as_string(&v.value)
                        ),
                    );
                    false
                }
            },
        };
        let mut overrides = Vec::new();
        if let Some(o) = m.get("override") {
            match &o.value {
                Value::Object(map) => {
                    for (k, v) in map {
                        let how = match as_string(v).trim() {
                            "append" => Merge::Append,
                            "replace" => Merge::Replace,
                            other => {
                                let pos = self.pos_of(o);
                                self.error(
                                    pos,
                                    format!(
                                        "`override.{k}` must be append or replace, found `{other}`"
                                    ),
                                );
                                continue;
                            }
                        };
                        overrides.push((k.clone(), how));
                    }
                }
                other => {
                    let pos = self.pos_of(o);
                    self.error(
                        pos,
                        format!(
                            "`override` must be a mapping of keys to append|replace, found `{}`",
                            as_string(other)
                        ),
                    );
                }
            }
        }
        if append && !overrides.is_empty() {
            let pos = self.pos_of(&m[main_key]);
            self.error(
                pos,
                "`append` and `override` cannot be used together".into(),
            );
        }
        (append, overrides)
    }

    fn exceptions(&mut self, v: &Spanned<Value>) -> Option<Vec<RawException>> {
        let pos = self.pos_of(v);
        let Value::Array(excs) = &v.value else {
            self.error(pos, "`exceptions` must be a list".into());
            return None;
        };
        let mut out = Vec::new();
        for e in excs {
            let Value::Object(m) = e else {
                self.error(pos.clone(), "each exception must be a mapping".into());
                continue;
            };
            let name = m.get("name").map(as_string).unwrap_or_default();
            let (fields, single) = match m.get("fields") {
                Some(Value::String(f)) => (vec![f.clone()], true),
                Some(Value::Array(a)) => (a.iter().map(as_string).collect(), false),
                // Appending values to an exception defined earlier.
                None => (Vec::new(), false),
                Some(other) => {
                    self.error(
                        pos.clone(),
                        format!(
                            "exception `{name}`: `fields` must be a name or a list, found `{}`",
                            as_string(other)
                        ),
                    );
                    continue;
                }
            };
            let comps = match m.get("comps") {
                Some(Value::Array(a)) => a.iter().map(as_string).collect(),
                Some(Value::String(s)) => vec![s.clone()],
                _ => Vec::new(),
            };
            let values = match m.get("values") {
                Some(Value::Array(a)) => a.clone(),
                None | Some(Value::Null) => Vec::new(),
                Some(_) => {
                    self.error(
                        pos.clone(),
                        format!("exception `{name}`: `values` must be a list"),
                    );
                    continue;
                }
            };
            for k in m.keys() {
                if !matches!(k.as_str(), "name" | "fields" | "comps" | "values") {
                    self.warn(
                        Code::UnknownKey,
                        pos.clone(),
                        format!("exception `{name}`: key `{k}` is not used and is ignored"),
                    );
                }
            }
            out.push(RawException {
                name,
                fields,
                single,
                comps,
                values,
                pos: pos.clone(),
            });
        }
        Some(out)
    }

    fn entry(&mut self, m: &Map, out: &mut Vec<Entry>) {
        let entry_pos = m.values().next().map(|v| self.pos_of(v)).unwrap_or(Pos {
            file: self.fname.clone(),
            line: 1,
            col: 1,
        });
        if let Some(name) = m.get("rule") {
            self.unknown_keys(m, RULE_KEYS, "rule");
            let (append, overrides) = self.merges(m, "rule");
            let exceptions = match m.get("exceptions") {
                Some(v) => self.exceptions(v),
                None => None,
            };
            let mut actions = self.list(m, "actions");
            if let Some(more) = self.list(m, "action") {
                actions.get_or_insert_with(Vec::new).extend(more);
            }
            out.push(Entry::Rule(RawRule {
                name: as_string(&name.value),
                desc: self.string(m, "desc"),
                condition: m.get("condition").map(|c| self.cond(c)),
                output: self.string(m, "output"),
                priority: self.string(m, "priority"),
                tags: self.list(m, "tags"),
                prefilter: self.list(m, "prefilter"),
                enabled: self.enabled(m),
                actions,
                exceptions,
                append,
                overrides,
                pos: self.pos_of(name),
            }));
        } else if let Some(name) = m.get("macro") {
            self.unknown_keys(m, MACRO_KEYS, "macro");
            let (append, overrides) = self.merges(m, "macro");
            let Some(c) = m.get("condition") else {
                let pos = self.pos_of(name);
                self.error(
                    pos,
                    format!("macro `{}` has no condition", as_string(&name.value)),
                );
                return;
            };
            out.push(Entry::Macro(RawMacro {
                name: as_string(&name.value),
                condition: self.cond(c),
                merge: merge_for(append, &overrides, "condition"),
                pos: self.pos_of(name),
            }));
        } else if let Some(name) = m.get("list") {
            self.unknown_keys(m, LIST_KEYS, "list");
            let (append, overrides) = self.merges(m, "list");
            out.push(Entry::List(RawList {
                name: as_string(&name.value),
                items: self.list(m, "items").unwrap_or_default(),
                merge: merge_for(append, &overrides, "items"),
                pos: self.pos_of(name),
            }));
        } else if let Some(name) = m.get("filter").or_else(|| m.get("drop")) {
            self.unknown_keys(m, FILTER_KEYS, "filter");
            let Some(c) = m.get("condition") else {
                let pos = self.pos_of(name);
                self.error(
                    pos,
                    format!("filter `{}` has no condition", as_string(&name.value)),
                );
                return;
            };
            let enabled = self.enabled(m).unwrap_or(true);
            out.push(Entry::Filter(RawFilter {
                name: as_string(&name.value),
                condition: self.cond(c),
                enabled,
                pos: self.pos_of(name),
            }));
        } else if let Some(v) = m
            .get("required_engine_version")
            .or_else(|| m.get("required_plugin_versions"))
        {
            let key = if m.contains_key("required_engine_version") {
                "required_engine_version"
            } else {
                "required_plugin_versions"
            };
            let pos = self.pos_of(v);
            let shown = match &v.value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            self.warn(
                Code::Requirement,
                pos,
                format!("`{key}: {shown}` noted, not enforced"),
            );
        } else {
            let keys: Vec<&str> = m.keys().map(String::as_str).collect();
            self.error(
                entry_pos,
                format!(
                    "entry is not a rule, macro, list, filter or drop (keys: {})",
                    keys.join(", ")
                ),
            );
        }
    }
}

fn merge_for(append: bool, overrides: &[(String, Merge)], key: &str) -> Merge {
    if let Some((_, m)) = overrides.iter().find(|(k, _)| k == key) {
        return *m;
    }
    if append {
        Merge::Append
    } else {
        Merge::Define
    }
}

/// Loads one file's text: its entries are appended to `out` as one file; problems go to
/// `diags` (a YAML error drops the file, a bad entry drops that entry).
pub fn load_text(file: &str, text: &str, out: &mut LoadedFiles, diags: &mut Diags) {
    let fname: Arc<str> = Arc::from(file);
    let (repaired, repairs) = leniency(file, text);
    for w in repairs {
        let snippet = text
            .lines()
            .nth(w.pos.line.saturating_sub(1) as usize)
            .unwrap_or("")
            .to_string();
        diags.warn(w.code, w.pos, w.message, &snippet);
    }
    let source: Arc<str> = Arc::from(repaired.as_str());
    let mut loaded = LoadedFile {
        name: fname.clone(),
        entries: Vec::new(),
    };
    if !repaired.trim().is_empty() {
        match serde_saphyr::from_str::<Option<Vec<Map>>>(&repaired) {
            Ok(docs) => {
                let mut r = FileReader {
                    fname: fname.clone(),
                    source: source.clone(),
                    diags,
                };
                for m in docs.unwrap_or_default() {
                    r.entry(&m, &mut loaded.entries);
                }
            }
            Err(e) => {
                let msg = e.to_string();
                // serde-saphyr reports "line L column C: ..." first.
                let (line, col) = parse_line_col(&msg).unwrap_or((1, 1));
                let snippet = repaired
                    .lines()
                    .nth(line.saturating_sub(1) as usize)
                    .unwrap_or("")
                    .trim_end()
                    .to_string();
                let first = msg.lines().next().unwrap_or(&msg).to_string();
                diags.error(PolicyError {
                    pos: Pos {
                        file: fname,
                        line,
                        col,
                    },
                    message: format!("invalid YAML: {}", first.trim_start_matches("error: ")),
                    snippet,
                });
            }
        }
    }
    out.files.push(loaded);
}

fn parse_line_col(msg: &str) -> Option<(u64, u64)> {
    let i = msg.find("line ")?;
    let rest = &msg[i + 5..];
    let line: u64 = rest
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()?;
    let j = rest.find("column ")?;
    let col: u64 = rest[j + 7..]
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()?;
    Some((line, col))
}

/// Loads every policy file under `path` into `out` (a path problem is an error in `diags`).
pub fn load_path(path: &Path, out: &mut LoadedFiles, diags: &mut Diags) {
    for_each_file(path, "policy files (.yaml or .yml)", out, diags, load_text);
}

/// Lists the files under `path` (an error when there are none), reads each and hands its
/// text to `load` (Falco-style and Sigma files share this walk).
pub fn for_each_file(
    path: &Path,
    what: &str,
    out: &mut LoadedFiles,
    diags: &mut Diags,
    mut load: impl FnMut(&str, &str, &mut LoadedFiles, &mut Diags),
) {
    let files = match policy_files(path) {
        Ok(f) => f,
        Err(e) => return diags.error(e),
    };
    if files.is_empty() {
        diags.error(PolicyError {
            pos: Pos {
                file: Arc::from(path.display().to_string()),
                line: 0,
                col: 0,
            },
            message: format!("no {what} found"),
            snippet: String::new(),
        });
    }
    for f in &files {
        match read_policy_file(f) {
            Ok(text) => load(&f.display().to_string(), &text, out, diags),
            Err(e) => diags.error(e),
        }
    }
    out.paths.extend(files);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(file: &str, text: &str) -> (LoadedFiles, Diags) {
        let mut out = LoadedFiles::default();
        let mut d = Diags::new(false);
        load_text(file, text, &mut out, &mut d);
        (out, d)
    }

    #[test]
    fn repairs_are_reported_with_positions() {
        let text =
            "- list: a\n  items: [x]\n - list: b\n  items: [y]\n- macro: m\n  condition: a =\tb\n";
        let (out, d) = load("f.yaml", text);
        let w: Vec<String> = d.warnings.iter().map(|w| w.to_string()).collect();
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(
            w[0].starts_with("f.yaml:3:1: top-level entry indented"),
            "{w:?}"
        );
        assert!(w[1].starts_with("f.yaml:6:17: tab replaced"), "{w:?}");
        assert!(w[1].ends_with("[LOAD_YAML_REPAIR]"), "{w:?}");
        assert_eq!(out.files[0].entries.len(), 3);
        // Strict: the same repairs are errors.
        let mut out = LoadedFiles::default();
        let mut d = Diags::new(true);
        load_text("f.yaml", text, &mut out, &mut d);
        assert_eq!(d.errors.len(), 2);
    }

    #[test]
    fn yaml_forms_and_keys() {
        let text = r#"
- required_engine_version: 0.26.0
- required_plugin_versions:
    - name: k8saudit
      version: 0.1.0
- list: l
  items:
    - a
    - "b c"
- macro: m
  condition: >
    sf.type = PE
    and sf.proc.name in (l)
- rule: r
  desc: d
  condition: m and not sf.proc.name = x
  priority: high
  tags: t1
  prefilter: [PE]
  enabled: false
  colour: blue
  action: [now]
  exceptions:
    - name: e
      fields: [sf.proc.name, sf.proc.uid]
      comps: [=, in]
      values: [[bash, [0, 1]]]
- list: l
  items: [d]
  override:
    items: append
- rule: r
  enabled: true
- drop: noisy
  condition: sf.proc.exe = /bin/true
"#;
        let (out, d) = load("p.yaml", text);
        assert!(d.errors.is_empty(), "{:?}", d.errors);
        let e = &out.files[0].entries;
        assert!(matches!(&e[0], Entry::List(l) if l.items == ["a", "b c"]));
        match &e[1] {
            Entry::Macro(m) => {
                assert_eq!(
                    m.condition.text.trim(),
                    "sf.type = PE and sf.proc.name in (l)"
                );
                assert_eq!(
                    m.condition.pos.line, 12,
                    "the folded text starts on the next line"
                );
            }
            o => panic!("{o:?}"),
        }
        match &e[2] {
            Entry::Rule(r) => {
                assert_eq!(r.enabled, Some(false));
                assert_eq!(r.tags.as_deref(), Some(&["t1".to_string()][..]));
                assert_eq!(r.actions.as_deref(), Some(&["now".to_string()][..]));
                let x = &r.exceptions.as_ref().unwrap()[0];
                assert_eq!(x.fields, ["sf.proc.name", "sf.proc.uid"]);
                assert_eq!(x.comps, ["=", "in"]);
                assert!(!r.is_change() && !r.is_enable_only());
            }
            o => panic!("{o:?}"),
        }
        assert!(matches!(&e[3], Entry::List(l) if l.merge == Merge::Append));
        assert!(matches!(&e[4], Entry::Rule(r) if r.is_enable_only()));
        assert!(matches!(&e[5], Entry::Filter(f) if f.name == "noisy"));
        let codes: Vec<Code> = d.warnings.iter().map(|w| w.code).collect();
        assert_eq!(
            codes,
            [
                Code::Requirement,
                Code::Requirement,
                Code::UnknownKey,
                Code::ScalarForList
            ],
            "{:?}",
            d.warnings
        );
        assert!(d.warnings[2].to_string().contains("key `colour`"));
    }

    #[test]
    fn every_bad_entry_is_reported_and_the_rest_kept() {
        let text = "- rule: a\n  desc: d\n  condition: sf.type = PE\n  append: maybe\n- something: else\n- macro: m\n- rule: b\n  desc: d\n  condition: sf.type = FF\n";
        let (out, d) = load("bad.yaml", text);
        let errs: Vec<String> = d.errors.iter().map(|e| e.to_string()).collect();
        assert_eq!(errs.len(), 3, "{errs:?}");
        assert!(errs[0].starts_with("bad.yaml:4:"), "{errs:?}");
        assert!(
            errs[1].starts_with("bad.yaml:5:") && errs[1].contains("not a rule"),
            "{errs:?}"
        );
        assert!(
            errs[2].starts_with("bad.yaml:6:") && errs[2].contains("no condition"),
            "{errs:?}"
        );
        assert_eq!(out.files[0].entries.len(), 2, "rules a and b are kept");
    }

    #[test]
    fn yaml_errors_have_line_column_and_snippet() {
        let (_, d) = load("bad.yaml", "- rule: r\n  desc: [unclosed\n");
        let e = &d.errors[0];
        assert_eq!(&*e.pos.file, "bad.yaml");
        assert!(e.pos.line >= 2, "{e}");
        assert!(e.to_string().contains("invalid YAML"), "{e}");
    }

    #[test]
    fn positions_inside_folded_conditions() {
        let text = "- macro: m\n  condition: >\n    a = 1\n    and b = 2 ORR\n";
        let (out, _) = load("m.yaml", text);
        let Entry::Macro(m) = &out.files[0].entries[0] else {
            panic!()
        };
        let off = m.condition.text.find("ORR").unwrap();
        let p = m.condition.pos_of(off);
        assert_eq!((p.line, p.col), (4, 15));
    }
}
