//! Policy file loading: YAML through a real parser (serde-saphyr), after a leniency step that
//! repairs what upstream's token grammar tolerates and YAML does not (a top-level entry
//! indented by a space, tabs), reporting each repair as a warning with file:line:col.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;
use serde_saphyr::Spanned;

/// A position in a policy file (1-based line and column).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pos {
    pub file: Arc<str>,
    pub line: u64,
    pub col: u64,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.col)
    }
}

/// A load or compile error: where, what, and the offending text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    pub pos: Pos,
    pub message: String,
    pub snippet: String,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.pos, self.message)?;
        if !self.snippet.is_empty() {
            write!(f, "\n    | {}", self.snippet)?;
        }
        Ok(())
    }
}

impl std::error::Error for PolicyError {}

/// A condition as written, with where its text starts in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CondText {
    pub text: String,
    pub pos: Pos,
    /// Byte offset of the value in the (repaired) file text, to locate errors inside it.
    pub byte_offset: Option<u64>,
    /// The file text, shared, to map an offset in `text` to a line and column.
    pub source: Arc<str>,
}

impl CondText {
    /// The file position of byte `offset` of the condition text: found by searching the
    /// offending token in the file from where the value starts (folded scalars change
    /// whitespace, not tokens).
    pub fn pos_of(&self, offset: usize) -> Pos {
        let token: String = self.text[offset.min(self.text.len())..]
            .chars()
            .take_while(|c| !c.is_whitespace())
            .take(32)
            .collect();
        let start = self.byte_offset.unwrap_or(0) as usize;
        if !token.is_empty() && start <= self.source.len() {
            if let Some(i) = self.source[start..].find(&token) {
                return line_col(&self.file_name(), &self.source, start + i);
            }
        }
        self.pos.clone()
    }

    fn file_name(&self) -> Arc<str> {
        self.pos.file.clone()
    }

    /// A one-line snippet of the condition around `offset`.
    pub fn snippet(&self, offset: usize) -> String {
        let off = offset.min(self.text.len());
        let from = self.text[..off]
            .char_indices()
            .rev()
            .nth(30)
            .map(|(i, _)| i)
            .unwrap_or(0);
        let tail: String = self.text[off..].chars().take(40).collect();
        let head = &self.text[from..off];
        format!("{}{}", head, tail).replace(['\n', '\t'], " ")
    }
}

fn line_col(file: &Arc<str>, text: &str, byte: usize) -> Pos {
    let before = &text[..byte.min(text.len())];
    let line = before.matches('\n').count() as u64 + 1;
    let col = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count())
        .unwrap_or(0) as u64
        + 1;
    Pos {
        file: file.clone(),
        line,
        col,
    }
}

/// One entry of a policy file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Rule(RawRule),
    Macro(RawMacro),
    List(RawList),
    /// `filter:` or `drop:` entries remove matching records before rules run.
    Filter(RawFilter),
    RequiredEngineVersion(String),
}

/// How an entry changes an earlier one of the same name (Falco `append`/`override`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Merge {
    #[default]
    Define,
    Append,
    Replace,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawRule {
    pub name: String,
    pub desc: String,
    pub condition: Option<CondText>,
    pub output: String,
    pub priority: Option<String>,
    pub tags: Vec<String>,
    pub prefilter: Vec<String>,
    pub enabled: bool,
    pub actions: Vec<String>,
    /// Exceptions already turned into condition text (`and not (...)`).
    pub exceptions: Option<String>,
    pub merge: Merge,
    pub pos: Pos,
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

/// Everything loaded from a policy path, in file order.
#[derive(Debug, Clone, Default)]
pub struct LoadedFiles {
    pub entries: Vec<Entry>,
    pub files: Vec<PathBuf>,
    pub warnings: Vec<String>,
}

/// Lists the policy files under `path`: the file, or `.yaml`/`.yml` files of a directory tree
/// in lexical order.
pub fn policy_files(path: &Path) -> Result<Vec<PathBuf>, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if meta.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut out = Vec::new();
    let mut stack = vec![path.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let rd = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if matches!(p.extension().and_then(|x| x.to_str()), Some("yaml" | "yml")) {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Repairs upstream's irregular files; returns the text and one warning per repair.
pub fn leniency(file: &str, text: &str) -> (String, Vec<String>) {
    let mut warnings = Vec::new();
    let mut out = String::with_capacity(text.len());
    const TOP: [&str; 6] = [
        "rule:",
        "macro:",
        "list:",
        "filter:",
        "drop:",
        "required_engine_version:",
    ];
    let mut prev_indented = false;
    // Columns the current entry was moved left by the repair above.
    let mut shifted = 0usize;
    for (n, line) in text.split_inclusive('\n').enumerate() {
        let mut l = line.to_string();
        if l.contains('\t') {
            let col = l.find('\t').map(|c| c + 1).unwrap_or(1);
            warnings.push(format!(
                "{file}:{}:{col}: tab replaced by a space (YAML does not allow tabs here)",
                n + 1
            ));
            l = l.replace('\t', " ");
        }
        let trimmed = l.trim_start_matches(' ');
        let indent = l.len() - trimmed.len();
        let is_entry = |rest: &str| TOP.iter().any(|k| rest.trim_start().starts_with(k));
        if indent == 0 && trimmed.strip_prefix("- ").is_some_and(is_entry) {
            shifted = 0;
        }
        if (1..=3).contains(&indent) && trimmed.strip_prefix("- ").is_some_and(is_entry) {
            warnings.push(format!(
                "{file}:{}:1: top-level entry indented by {indent} space(s); moved to column 1",
                n + 1
            ));
            l = trimmed.to_string();
            shifted = indent;
        } else if shifted > 0 && indent == 2 + shifted {
            // The rest of a shifted entry moves with it.
            l = l[shifted..].to_string();
        }
        // A rule name containing ": " is not a plain YAML scalar; upstream keeps the raw text.
        if let Some(rest) = l.strip_prefix("- rule:") {
            let v = rest.trim();
            if v.contains(": ") && !v.starts_with(['"', '\'']) {
                warnings.push(format!(
                    "{file}:{}:9: rule name containing `: ` quoted",
                    n + 1
                ));
                let nl = if l.ends_with('\n') { "\n" } else { "" };
                l = format!("- rule: '{}'{nl}", v.replace('\'', "''"));
            }
        }
        // A continuation line at column 1 inside an entry belongs to the value above it.
        let first = l.chars().next();
        if matches!(first, Some(c) if !c.is_whitespace() && c != '-' && c != '#') && prev_indented {
            warnings.push(format!(
                "{file}:{}:1: continuation line at column 1 indented",
                n + 1
            ));
            l = format!("    {l}");
        }
        if !l.trim().is_empty() {
            prev_indented = l.starts_with(' ') || l.starts_with("- ");
        }
        out.push_str(&l);
    }
    (out, warnings)
}

fn as_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn as_list(v: &Value) -> Vec<String> {
    match v {
        Value::Array(a) => a.iter().map(as_string).collect(),
        Value::Null => Vec::new(),
        Value::String(s) if s.trim().starts_with('[') => s
            .trim()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .split(',')
            .map(|x| x.trim().to_string())
            .filter(|x| !x.is_empty())
            .collect(),
        other => vec![as_string(other)],
    }
}

fn as_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) => match s.to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" => Some(true),
            "false" | "no" | "off" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// Turns Falco `exceptions` into condition text: each value tuple is a conjunction of
/// `field comp value`; the rule gets `and not (t1 or t2 ...)`.
fn exceptions_text(v: &Value) -> Result<Option<String>, String> {
    let Value::Array(excs) = v else {
        return Err("`exceptions` must be a list".into());
    };
    let mut alts = Vec::new();
    for e in excs {
        let Value::Object(m) = e else {
            return Err("each exception must be a mapping".into());
        };
        let values = m.get("values").cloned().unwrap_or(Value::Array(vec![]));
        let Value::Array(values) = values else {
            continue;
        };
        match m.get("fields") {
            Some(Value::String(field)) => {
                let comp = m.get("comps").map(as_string).unwrap_or_else(|| "in".into());
                let items: Vec<String> = values.iter().map(|x| quote(&as_string(x))).collect();
                if !items.is_empty() {
                    alts.push(format!("{field} {comp} ({})", items.join(", ")));
                }
            }
            Some(Value::Array(fields)) => {
                let fields: Vec<String> = fields.iter().map(as_string).collect();
                let comps: Vec<String> = match m.get("comps") {
                    Some(c) => as_list(c),
                    None => vec!["=".into(); fields.len()],
                };
                for tuple in values {
                    let vals: Vec<Value> = match tuple {
                        Value::Array(a) => a,
                        other => vec![other],
                    };
                    let mut parts = Vec::new();
                    for (i, f) in fields.iter().enumerate() {
                        let comp = comps.get(i).map(String::as_str).unwrap_or("=");
                        let Some(val) = vals.get(i) else { continue };
                        let rhs = match val {
                            Value::Array(a) => format!(
                                "({})",
                                a.iter()
                                    .map(|x| quote(&as_string(x)))
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                            x if comp == "in" || comp == "pmatch" => {
                                format!("({})", quote(&as_string(x)))
                            }
                            x => quote(&as_string(x)),
                        };
                        parts.push(format!("{f} {comp} {rhs}"));
                    }
                    if !parts.is_empty() {
                        alts.push(format!("({})", parts.join(" and ")));
                    }
                }
            }
            _ => return Err("an exception needs `fields`".into()),
        }
    }
    Ok((!alts.is_empty()).then(|| format!("not ({})", alts.join(" or "))))
}

fn quote(s: &str) -> String {
    if s.contains('"') {
        format!("'{s}'")
    } else {
        format!("\"{s}\"")
    }
}

fn merge_of(m: &BTreeMap<String, Spanned<Value>>, key: &str) -> Merge {
    if let Some(o) = m.get("override") {
        if let Value::Object(o) = &o.value {
            if let Some(v) = o.get(key).or_else(|| o.values().next()) {
                return match as_string(v).as_str() {
                    "replace" => Merge::Replace,
                    _ => Merge::Append,
                };
            }
        }
    }
    match m.get("append").and_then(|v| as_bool(&v.value)) {
        Some(true) => Merge::Append,
        _ => Merge::Define,
    }
}

/// Loads one file's text.
pub fn load_text(file: &str, text: &str, out: &mut LoadedFiles) -> Result<(), PolicyError> {
    let fname: Arc<str> = Arc::from(file);
    let (repaired, warnings) = leniency(file, text);
    out.warnings.extend(warnings);
    let source: Arc<str> = Arc::from(repaired.as_str());
    let docs: Vec<BTreeMap<String, Spanned<Value>>> = if repaired.trim().is_empty() {
        Vec::new()
    } else {
        match serde_saphyr::from_str::<Option<Vec<BTreeMap<String, Spanned<Value>>>>>(&repaired) {
            Ok(v) => v.unwrap_or_default(),
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
                return Err(PolicyError {
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
    };
    for m in docs {
        let first_loc = m.values().next().map(|v| v.referenced);
        let pos_of = |v: &Spanned<Value>| Pos {
            file: fname.clone(),
            line: v.referenced.line(),
            col: v.referenced.column(),
        };
        let entry_pos = first_loc
            .map(|l| Pos {
                file: fname.clone(),
                line: l.line(),
                col: l.column(),
            })
            .unwrap_or(Pos {
                file: fname.clone(),
                line: 1,
                col: 1,
            });
        let err = |pos: Pos, message: String| PolicyError {
            snippet: source
                .lines()
                .nth(pos.line.saturating_sub(1) as usize)
                .unwrap_or("")
                .trim_end()
                .to_string(),
            pos,
            message,
        };
        let cond = |v: &Spanned<Value>| CondText {
            text: as_string(&v.value),
            pos: pos_of(v),
            byte_offset: v.referenced.span().byte_offset(),
            source: source.clone(),
        };
        let get = |k: &str| m.get(k);
        if let Some(name) = get("rule") {
            let enabled = match get("enabled") {
                Some(v) => as_bool(&v.value).ok_or_else(|| {
                    err(
                        pos_of(v),
                        format!(
                            "`enabled` must be true or false, found `{}`",
                            as_string(&v.value)
                        ),
                    )
                })?,
                None => true,
            };
            let exceptions = match get("exceptions") {
                Some(v) => exceptions_text(&v.value).map_err(|e| err(pos_of(v), e))?,
                None => None,
            };
            let mut actions = get("actions")
                .map(|v| as_list(&v.value))
                .unwrap_or_default();
            if let Some(a) = get("action") {
                actions.extend(as_list(&a.value));
            }
            out.entries.push(Entry::Rule(RawRule {
                name: as_string(&name.value),
                desc: get("desc").map(|v| as_string(&v.value)).unwrap_or_default(),
                condition: get("condition").map(cond),
                output: get("output")
                    .map(|v| as_string(&v.value))
                    .unwrap_or_default(),
                priority: get("priority").map(|v| as_string(&v.value)),
                tags: get("tags").map(|v| as_list(&v.value)).unwrap_or_default(),
                prefilter: get("prefilter")
                    .map(|v| as_list(&v.value))
                    .unwrap_or_default(),
                enabled,
                actions,
                exceptions,
                merge: merge_of(&m, "condition"),
                pos: pos_of(name),
            }));
        } else if let Some(name) = get("macro") {
            let c = get("condition").ok_or_else(|| {
                err(
                    pos_of(name),
                    format!("macro `{}` has no condition", as_string(&name.value)),
                )
            })?;
            out.entries.push(Entry::Macro(RawMacro {
                name: as_string(&name.value),
                condition: cond(c),
                merge: merge_of(&m, "condition"),
                pos: pos_of(name),
            }));
        } else if let Some(name) = get("list") {
            out.entries.push(Entry::List(RawList {
                name: as_string(&name.value),
                items: get("items").map(|v| as_list(&v.value)).unwrap_or_default(),
                merge: merge_of(&m, "items"),
                pos: pos_of(name),
            }));
        } else if let Some(name) = get("filter").or_else(|| get("drop")) {
            let c = get("condition").ok_or_else(|| {
                err(
                    pos_of(name),
                    format!("filter `{}` has no condition", as_string(&name.value)),
                )
            })?;
            let enabled = get("enabled")
                .and_then(|v| as_bool(&v.value))
                .unwrap_or(true);
            out.entries.push(Entry::Filter(RawFilter {
                name: as_string(&name.value),
                condition: cond(c),
                enabled,
                pos: pos_of(name),
            }));
        } else if let Some(v) = get("required_engine_version") {
            out.entries
                .push(Entry::RequiredEngineVersion(as_string(&v.value)));
        } else {
            let keys: Vec<&str> = m.keys().map(String::as_str).collect();
            return Err(err(
                entry_pos,
                format!(
                    "entry is not a rule, macro, list, filter or drop (keys: {})",
                    keys.join(", ")
                ),
            ));
        }
    }
    Ok(())
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

/// Loads every policy file under `path`.
pub fn load_path(path: &Path) -> Result<LoadedFiles, PolicyError> {
    let files = policy_files(path).map_err(|e| PolicyError {
        pos: Pos {
            file: Arc::from(path.display().to_string()),
            line: 0,
            col: 0,
        },
        message: e,
        snippet: String::new(),
    })?;
    let mut out = LoadedFiles::default();
    for f in &files {
        let name = f.display().to_string();
        let text = std::fs::read_to_string(f).map_err(|e| PolicyError {
            pos: Pos {
                file: Arc::from(name.as_str()),
                line: 0,
                col: 0,
            },
            message: format!("cannot read: {e}"),
            snippet: String::new(),
        })?;
        load_text(&name, &text, &mut out)?;
    }
    out.files = files;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repairs_are_reported_with_positions() {
        let text =
            "- list: a\n  items: [x]\n - list: b\n  items: [y]\n- macro: m\n  condition: a =\tb\n";
        let (fixed, w) = leniency("f.yaml", text);
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(
            w[0].starts_with("f.yaml:3:1: top-level entry indented"),
            "{w:?}"
        );
        assert!(w[1].starts_with("f.yaml:6:17: tab replaced"), "{w:?}");
        let mut out = LoadedFiles::default();
        load_text("f.yaml", &fixed, &mut out).unwrap();
        assert_eq!(out.entries.len(), 3);
    }

    #[test]
    fn yaml_forms_and_keys() {
        let text = r#"
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
  tags: [t1, t2]
  prefilter: [PE]
  enabled: false
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
- drop: noisy
  condition: sf.proc.exe = /bin/true
"#;
        let mut out = LoadedFiles::default();
        load_text("p.yaml", text, &mut out).unwrap();
        let e = &out.entries;
        assert!(matches!(&e[0], Entry::List(l) if l.items == ["a", "b c"]));
        match &e[1] {
            Entry::Macro(m) => {
                assert_eq!(
                    m.condition.text.trim(),
                    "sf.type = PE and sf.proc.name in (l)"
                );
                assert_eq!(
                    m.condition.pos.line, 8,
                    "the folded text starts on the next line"
                );
            }
            o => panic!("{o:?}"),
        }
        match &e[2] {
            Entry::Rule(r) => {
                assert!(!r.enabled);
                assert_eq!(r.tags, ["t1", "t2"]);
                assert_eq!(r.actions, ["now"]);
                assert_eq!(
                    r.exceptions.as_deref(),
                    Some(r#"not ((sf.proc.name = "bash" and sf.proc.uid in ("0", "1")))"#)
                );
            }
            o => panic!("{o:?}"),
        }
        assert!(matches!(&e[3], Entry::List(l) if l.merge == Merge::Append));
        assert!(matches!(&e[4], Entry::Filter(f) if f.name == "noisy"));
    }

    #[test]
    fn yaml_errors_have_line_column_and_snippet() {
        let mut out = LoadedFiles::default();
        let e = load_text("bad.yaml", "- rule: r\n  desc: [unclosed\n", &mut out).unwrap_err();
        assert_eq!(&*e.pos.file, "bad.yaml");
        assert!(e.pos.line >= 2, "{e}");
        assert!(e.to_string().contains("invalid YAML"), "{e}");
        let e = load_text("bad.yaml", "- something: else\n", &mut out).unwrap_err();
        assert!(e.to_string().starts_with("bad.yaml:1:"), "{e}");
    }

    #[test]
    fn positions_inside_folded_conditions() {
        let text = "- macro: m\n  condition: >\n    a = 1\n    and b = 2 ORR\n";
        let mut out = LoadedFiles::default();
        load_text("m.yaml", text, &mut out).unwrap();
        let Entry::Macro(m) = &out.entries[0] else {
            panic!()
        };
        let off = m.condition.text.find("ORR").unwrap();
        let p = m.condition.pos_of(off);
        assert_eq!((p.line, p.col), (4, 15));
    }
}
