//! Sigma rules (`language: sigma`): files parsed by `rsigma-parser`, detections turned into
//! the policy AST (so they compile into the same predicate IR as Falco-style rules and get
//! the type index and value dispatch), fields renamed by the `config:` file's
//! `fieldmappings` (upstream's `sigma/config/sysflow.yml`).
//!
//! Two readings, because upstream's differs from the specification and its users' alerts
//! must not change: by default (`quirks: upstream`) upstream 0.7.0's (logsource ignored,
//! lists of maps ANDed, values literal text split on `,`, unknown modifiers ignored; see
//! `impl Converter` *upstream*), every difference a `LOAD_SIGMA_UPSTREAM_MEANING` warning;
//! with `quirks: fixed` the Sigma specification's (values case-insensitive unless `|cased`,
//! `*` and `?` wildcards, a list of maps "any of", the logsource category restricting the
//! record types). See docs/policy-language.md (Sigma) and docs/compatibility.md.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use rsigma_parser::{Level, Modifier, SigmaRule, SigmaString, SigmaValue, SpecialChar, StringPart};

use crate::policy::diag::{Code, Diags};
use crate::policy::files::read_policy_file;
use crate::policy::loader::{AstRule, Entry, LoadedFile, LoadedFiles};
use crate::policy::matcher::GlobTok;
use crate::policy::parser::{Atom, Expr, Span};
use crate::policy::source::{line_col, CondText, PolicyError, Pos};

/// The `config:` file: Sigma field name → SysFlow attribute.
#[derive(Debug, Clone, Default)]
pub struct SigmaConfig {
    pub fields: HashMap<String, String>,
    /// Read the rules as upstream 0.7.0 does (`quirks: upstream`, the default), else by the
    /// Sigma specification (`quirks: fixed`). See [`Converter::upstream`].
    pub upstream: bool,
}

#[derive(serde::Deserialize)]
struct ConfigFile {
    #[serde(default)]
    fieldmappings: HashMap<String, serde_json::Value>,
}

impl SigmaConfig {
    /// Reads a config file (only `fieldmappings` is used; a list maps to its first name, as
    /// upstream).
    pub fn load(path: &Path) -> Result<SigmaConfig, PolicyError> {
        let text = read_policy_file(path)?;
        let file: ConfigFile = serde_saphyr::from_str(&text).map_err(|e| PolicyError {
            pos: Pos {
                file: Arc::from(path.display().to_string()),
                line: 1,
                col: 1,
            },
            message: format!(
                "invalid Sigma config: {}",
                e.to_string().lines().next().unwrap_or("")
            ),
            snippet: String::new(),
        })?;
        let mut fields = HashMap::new();
        for (k, v) in file.fieldmappings {
            let target = match v {
                serde_json::Value::String(s) => s,
                serde_json::Value::Array(a) => match a.first() {
                    Some(serde_json::Value::String(s)) => s.clone(),
                    _ => continue,
                },
                _ => continue,
            };
            fields.insert(k, target.trim().to_string());
        }
        Ok(SigmaConfig {
            fields,
            upstream: false,
        })
    }
}

/// Upstream's priorities for Sigma levels (Informational 0 … Critical 4).
fn priority(level: Option<Level>) -> i64 {
    match level {
        Some(Level::Informational) | None => 0,
        Some(Level::Low) => 1,
        Some(Level::Medium) => 2,
        Some(Level::High) => 3,
        Some(Level::Critical) => 4,
    }
}

/// Loads every Sigma rule file under `path` into `out`.
pub fn load_sigma_path(path: &Path, cfg: &SigmaConfig, out: &mut LoadedFiles, diags: &mut Diags) {
    super::loader::for_each_file(
        path,
        "Sigma rule files (.yml or .yaml)",
        out,
        diags,
        |name, text, out, diags| load_sigma_text(name, text, cfg, out, diags),
    );
}

/// Loads one Sigma file's rules.
pub fn load_sigma_text(
    file: &str,
    text: &str,
    cfg: &SigmaConfig,
    out: &mut LoadedFiles,
    diags: &mut Diags,
) {
    let fname: Arc<str> = Arc::from(file);
    let source: Arc<str> = Arc::from(text);
    let mut loaded = LoadedFile {
        name: fname.clone(),
        entries: Vec::new(),
    };
    let at = |needle: &str, from: usize| -> Pos {
        match source.get(from..).and_then(|s| s.find(needle)) {
            Some(i) => line_col(&fname, &source, from + i),
            None => line_col(&fname, &source, from.min(source.len())),
        }
    };
    let collection = match rsigma_parser::parse_sigma_yaml(text) {
        Ok(c) => c,
        Err(e) => {
            diags.error(PolicyError {
                pos: Pos {
                    file: fname.clone(),
                    line: 1,
                    col: 1,
                },
                message: format!("invalid Sigma rule: {e}"),
                snippet: String::new(),
            });
            out.files.push(loaded);
            return;
        }
    };
    for e in &collection.errors {
        diags.error(PolicyError {
            pos: at("detection:", 0),
            message: format!("invalid Sigma rule: {e}"),
            snippet: String::new(),
        });
    }
    if !collection.correlations.is_empty() || !collection.filters.is_empty() {
        diags.warn(
            Code::UnknownKey,
            at("", 0),
            "Sigma correlation and filter documents are not supported; ignored".into(),
            "",
        );
    }
    for rule in &collection.rules {
        let start = rule
            .id
            .as_deref()
            .and_then(|id| source.find(id))
            .unwrap_or(0);
        let det_at = source[start.min(source.len())..]
            .find("detection:")
            .map(|i| start + i)
            .unwrap_or(start);
        let pos = line_col(&fname, &source, start);
        let mut conv = Converter {
            cfg,
            source: &source,
            fname: &fname,
            from: det_at,
            diags,
            failed: false,
        };
        let Some(conds) = conv.rule(rule) else {
            continue;
        };
        // Upstream makes one rule (named by the id) per condition of the list.
        for cond in conds {
            loaded.entries.push(Entry::Ast(Box::new(AstRule {
                name: rule.id.clone().unwrap_or_else(|| rule.title.clone()),
                desc: rule
                    .description
                    .clone()
                    .unwrap_or_else(|| rule.title.clone())
                    .trim()
                    .to_string(),
                priority: priority(rule.level),
                tags: rule.tags.clone(),
                condition: Arc::new(cond),
                at: CondText {
                    text: String::new(),
                    pos: line_col(&fname, &source, det_at),
                    byte_offset: None,
                    source: source.clone(),
                },
                pos: pos.clone(),
            })));
        }
    }
    out.files.push(loaded);
}

pub(super) struct Converter<'a> {
    cfg: &'a SigmaConfig,
    source: &'a str,
    fname: &'a Arc<str>,
    /// Where the rule's detection starts in the file (positions are searched from here).
    from: usize,
    diags: &'a mut Diags,
    failed: bool,
}

pub(super) fn word(t: &str) -> Atom {
    Atom::Word(t.to_string(), Span::default())
}

pub(super) fn and(mut v: Vec<Expr>) -> Expr {
    match v.len() {
        0 => Expr::Const(true),
        1 => v.remove(0),
        _ => Expr::And(v),
    }
}

pub(super) fn or(mut v: Vec<Expr>) -> Expr {
    match v.len() {
        0 => Expr::Const(false),
        1 => v.remove(0),
        _ => Expr::Or(v),
    }
}

impl Converter<'_> {
    pub(super) fn pos(&self, needle: &str) -> Pos {
        match self.source.get(self.from..).and_then(|s| s.find(needle)) {
            Some(i) => line_col(self.fname, self.source, self.from + i),
            None => line_col(self.fname, self.source, self.from),
        }
    }

    pub(super) fn line(&self, p: &Pos) -> String {
        self.source
            .lines()
            .nth(p.line.saturating_sub(1) as usize)
            .unwrap_or("")
            .trim_end()
            .to_string()
    }

    pub(super) fn error(&mut self, needle: &str, message: String) {
        let pos = self.pos(needle);
        let snippet = self.line(&pos);
        self.diags.error(PolicyError {
            pos,
            message,
            snippet,
        });
        self.failed = true;
    }

    /// The rule's conditions: one per condition of the list as upstream, else one (ORed).
    fn rule(&mut self, rule: &SigmaRule) -> Option<Vec<Expr>> {
        let det = &rule.detection;
        let mut named: HashMap<&str, Expr> = HashMap::new();
        let mut names: Vec<&str> = det.named.keys().map(String::as_str).collect();
        names.sort();
        for n in &names {
            let e = self.detection(n, &det.named[*n]);
            named.insert(n, e);
        }
        if det.timeframe.is_some() {
            self.diags.warn(
                Code::UnknownKey,
                self.pos("timeframe"),
                "Sigma `timeframe` is not supported; ignored (as upstream)".into(),
                "",
            );
        }
        let conds: Vec<Expr> = det
            .conditions
            .iter()
            .map(|c| self.condition(c, &named, &names))
            .collect();
        if self.cfg.upstream {
            // Upstream ignores the logsource: every rule runs on every record type.
            return (!self.failed).then_some(conds);
        }
        let mut body = or(conds);
        if let Some(types) = self.logsource(rule) {
            body = and(vec![types, body]);
        }
        (!self.failed).then(|| vec![body])
    }

    /// The SysFlow attribute a Sigma field maps to (`sf.` names stand for themselves); an
    /// unmapped field is warned about and its search never matches.
    pub(super) fn target(&mut self, field: &str, key: &str) -> Option<String> {
        match self.cfg.fields.get(field) {
            Some(t) => Some(t.clone()),
            None if field.starts_with("sf.") => Some(field.to_string()),
            None => {
                let p = self.pos(key);
                let snippet = self.line(&p);
                self.diags.warn(
                    Code::SigmaUnmappedField,
                    p,
                    format!("Sigma field `{field}` is not in the config's fieldmappings: the search never matches (upstream compares the name as literal text)"),
                    &snippet,
                );
                None
            }
        }
    }
}

pub(super) fn modifier_name(m: Modifier) -> String {
    serde_json::to_value(m)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| format!("{m:?}").to_lowercase())
}

pub(super) fn value_text(v: &SigmaValue) -> String {
    match v {
        SigmaValue::String(s) => s.original.clone(),
        SigmaValue::Integer(i) => i.to_string(),
        SigmaValue::Float(f) => f.to_string(),
        SigmaValue::Bool(b) => b.to_string(),
        SigmaValue::Null => String::new(),
    }
}

/// A Sigma string as glob tokens (its wildcards are `*`/`?`; escapes are already resolved).
pub(super) fn toks(s: &SigmaString) -> Vec<GlobTok> {
    let mut out = Vec::new();
    for p in &s.parts {
        match p {
            StringPart::Plain(t) => out.extend(t.chars().map(GlobTok::Char)),
            StringPart::Special(SpecialChar::WildcardMulti) => out.push(GlobTok::Star),
            StringPart::Special(SpecialChar::WildcardSingle) => out.push(GlobTok::Any),
        }
    }
    out
}

/// `contains`/`startswith`/`endswith` as wildcards around the value.
pub(super) fn shape(mut t: Vec<GlobTok>, kind: Option<Modifier>) -> Vec<GlobTok> {
    match kind {
        Some(Modifier::Contains) => {
            t.insert(0, GlobTok::Star);
            t.push(GlobTok::Star);
        }
        Some(Modifier::StartsWith) => t.push(GlobTok::Star),
        Some(Modifier::EndsWith) => t.insert(0, GlobTok::Star),
        _ => {}
    }
    t
}

/// Standard base64 (for the `base64` modifier).
pub(super) fn base64_encode(s: &str) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let b = s.as_bytes();
    let mut out = String::with_capacity(b.len().div_ceil(3) * 4);
    for c in b.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        out.push(T[(n >> 18) as usize & 63] as char);
        out.push(T[(n >> 12) as usize & 63] as char);
        out.push(if c.len() > 1 {
            T[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        out.push(if c.len() > 2 {
            T[n as usize & 63] as char
        } else {
            '='
        });
    }
    out
}

mod detection;
mod spec;
mod upstream;

#[cfg(test)]
mod tests;
