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

use rsigma_parser::{
    ConditionExpr, Detection, DetectionItem, Level, Modifier, Quantifier, SelectorPattern,
    SigmaRule, SigmaString, SigmaValue, SpecialChar, StringPart,
};

use super::diag::{Code, Diags};
use super::files::read_policy_file;
use super::loader::{Entry, LoadedFile, LoadedFiles};
use super::matcher::{GlobTok, Matcher};
use super::parser::{Atom, BinOp, Expr, Span};
use super::source::{line_col, CondText, PolicyError, Pos};

/// A Sigma rule ready for the collector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigmaEntry {
    /// Upstream names the rule by the Sigma `id` (the title when there is none).
    pub name: String,
    pub desc: String,
    pub priority: i64,
    pub tags: Vec<String>,
    pub condition: Arc<Expr>,
    /// Where the detection starts (positions of the compiled condition).
    pub at: CondText,
    pub pos: Pos,
}

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
            loaded.entries.push(Entry::Sigma(Box::new(SigmaEntry {
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

struct Converter<'a> {
    cfg: &'a SigmaConfig,
    source: &'a str,
    fname: &'a Arc<str>,
    /// Where the rule's detection starts in the file (positions are searched from here).
    from: usize,
    diags: &'a mut Diags,
    failed: bool,
}

fn word(t: &str) -> Atom {
    Atom::Word(t.to_string(), Span::default())
}

fn and(mut v: Vec<Expr>) -> Expr {
    match v.len() {
        0 => Expr::Const(true),
        1 => v.remove(0),
        _ => Expr::And(v),
    }
}

fn or(mut v: Vec<Expr>) -> Expr {
    match v.len() {
        0 => Expr::Const(false),
        1 => v.remove(0),
        _ => Expr::Or(v),
    }
}

impl Converter<'_> {
    fn pos(&self, needle: &str) -> Pos {
        match self.source.get(self.from..).and_then(|s| s.find(needle)) {
            Some(i) => line_col(self.fname, self.source, self.from + i),
            None => line_col(self.fname, self.source, self.from),
        }
    }

    fn line(&self, p: &Pos) -> String {
        self.source
            .lines()
            .nth(p.line.saturating_sub(1) as usize)
            .unwrap_or("")
            .trim_end()
            .to_string()
    }

    fn error(&mut self, needle: &str, message: String) {
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
            let e = if self.cfg.upstream {
                self.search_upstream(n, &det.named[*n])
            } else {
                self.detection(n, &det.named[*n])
            };
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
        if self.cfg.upstream {
            // Upstream ignores the logsource: every rule runs on every record type.
            let conds: Vec<Expr> = det
                .conditions
                .iter()
                .map(|c| self.condition_upstream(c, &named, &names))
                .collect();
            return (!self.failed).then_some(conds);
        }
        let conds: Vec<Expr> = det
            .conditions
            .iter()
            .map(|c| self.condition(c, &named, &names))
            .collect();
        let mut body = or(conds);
        if let Some(types) = self.logsource(rule) {
            body = and(vec![types, body]);
        }
        (!self.failed).then(|| vec![body])
    }

    /// The record types a logsource category stands for.
    fn logsource(&mut self, rule: &SigmaRule) -> Option<Expr> {
        let eq = |f: &str, v: &str| Expr::Binary(word(f), BinOp::Eq, word(v), Span::default());
        let cat = rule.logsource.category.as_deref()?;
        Some(match cat {
            "process_creation" => and(vec![eq("sf.type", "PE"), eq("sf.opflags", "EXEC")]),
            "network_connection" => eq("sf.type", "NF"),
            "file_event" | "file_change" | "file_access" | "file_rename" | "file_delete" => {
                or(vec![eq("sf.type", "FF"), eq("sf.type", "FE")])
            }
            other => {
                let p = self.pos(other);
                self.diags.warn(
                    Code::UnknownKey,
                    p,
                    format!("logsource category `{other}` has no SysFlow record type; the rule applies to every record"),
                    "",
                );
                return None;
            }
        })
    }

    fn condition(
        &mut self,
        c: &ConditionExpr,
        named: &HashMap<&str, Expr>,
        names: &[&str],
    ) -> Expr {
        match c {
            ConditionExpr::And(v) => {
                and(v.iter().map(|x| self.condition(x, named, names)).collect())
            }
            ConditionExpr::Or(v) => or(v.iter().map(|x| self.condition(x, named, names)).collect()),
            ConditionExpr::Not(x) => Expr::Not(Box::new(self.condition(x, named, names))),
            ConditionExpr::Identifier(id) => match named.get(id.as_str()) {
                Some(e) => e.clone(),
                None => {
                    self.error(
                        "condition:",
                        format!("the condition names `{id}`, which the detection does not define"),
                    );
                    Expr::Const(false)
                }
            },
            ConditionExpr::Selector {
                quantifier,
                pattern,
            } => {
                let picked: Vec<Expr> = names
                    .iter()
                    .filter(|n| match pattern {
                        SelectorPattern::Them => !n.starts_with('_'),
                        SelectorPattern::Pattern(p) => rsigma_parser::detection_name_matches(p, n),
                    })
                    .filter_map(|n| named.get(n).cloned())
                    .collect();
                match quantifier {
                    Quantifier::Any => or(picked),
                    Quantifier::All => and(picked),
                    Quantifier::Count(n) => {
                        self.error(
                            "condition:",
                            format!("`{n} of ...` is not supported (only `1 of` and `all of`)"),
                        );
                        Expr::Const(false)
                    }
                }
            }
        }
    }

    fn detection(&mut self, name: &str, d: &Detection) -> Expr {
        match d {
            Detection::AllOf(items) => and(items.iter().map(|i| self.item(name, i)).collect()),
            Detection::AnyOf(v) => or(v.iter().map(|x| self.detection(name, x)).collect()),
            Detection::And(v) => and(v.iter().map(|x| self.detection(name, x)).collect()),
            Detection::Keywords(_) => {
                self.error(
                    &format!("{name}:"),
                    format!("`{name}`: keyword searches are not supported (use field selectors)"),
                );
                Expr::Const(false)
            }
            Detection::ArrayMatch { .. } | Detection::Conditional { .. } => {
                self.error(
                    &format!("{name}:"),
                    format!("`{name}`: this detection form is not supported"),
                );
                Expr::Const(false)
            }
        }
    }

    /// The SysFlow attribute a Sigma field maps to (`sf.` names stand for themselves); an
    /// unmapped field is warned about and its search never matches.
    fn target(&mut self, field: &str, key: &str) -> Option<String> {
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

    fn item(&mut self, sel: &str, item: &DetectionItem) -> Expr {
        let Some(field) = item.field.name.as_deref() else {
            self.error(
                &format!("{sel}:"),
                format!("`{sel}`: keyword searches are not supported (use field selectors)"),
            );
            return Expr::Const(false);
        };
        let key = if item.field.modifiers.is_empty() {
            format!("{field}:")
        } else {
            format!("{field}|")
        };
        let Some(target) = self.target(field, &key) else {
            return Expr::Const(false);
        };
        let mods = &item.field.modifiers;
        let mut kind = None;
        let (mut all, mut cased, mut re, mut exists, mut neq, mut windash, mut base64) =
            (false, false, false, false, false, false, false);
        let mut cmp = None;
        for m in mods {
            match m {
                Modifier::Contains | Modifier::StartsWith | Modifier::EndsWith => kind = Some(*m),
                Modifier::All => all = true,
                Modifier::Cased => cased = true,
                Modifier::Re => re = true,
                Modifier::IgnoreCase | Modifier::Multiline | Modifier::DotAll if re => {}
                Modifier::Exists => exists = true,
                Modifier::Neq => neq = true,
                Modifier::WindAsh => windash = true,
                Modifier::Base64 => base64 = true,
                Modifier::Gt => cmp = Some(BinOp::Gt),
                Modifier::Gte => cmp = Some(BinOp::Ge),
                Modifier::Lt => cmp = Some(BinOp::Lt),
                Modifier::Lte => cmp = Some(BinOp::Le),
                other => {
                    self.error(
                        &key,
                        format!(
                            "`{field}`: the Sigma modifier `{}` is not supported",
                            modifier_name(*other)
                        ),
                    );
                    return Expr::Const(false);
                }
            }
        }
        let f = word(&target);
        if exists {
            let want = !matches!(item.values.first(), Some(SigmaValue::Bool(false)));
            let e = Expr::Exists(f, Span::default());
            return if want { e } else { Expr::Not(Box::new(e)) };
        }
        let mut alts = Vec::new();
        for v in &item.values {
            let e = match v {
                SigmaValue::Null => Expr::Not(Box::new(Expr::Exists(f.clone(), Span::default()))),
                _ if cmp.is_some() => {
                    let text = value_text(v);
                    Expr::Binary(
                        f.clone(),
                        cmp.unwrap_or(BinOp::Eq),
                        word(&text),
                        Span::default(),
                    )
                }
                SigmaValue::String(s) if re => {
                    let flags = if mods.contains(&Modifier::IgnoreCase) {
                        "(?i)"
                    } else {
                        ""
                    };
                    match regex::RegexBuilder::new(&format!("{flags}{}", s.original))
                        .size_limit(1 << 20)
                        .build()
                    {
                        Ok(r) => {
                            Expr::Match(f.clone(), Arc::new(Matcher::Regex(r)), Span::default())
                        }
                        Err(e) => {
                            self.error(&key, format!("`{field}`: invalid regular expression: {e}"));
                            return Expr::Const(false);
                        }
                    }
                }
                SigmaValue::String(s) => {
                    let mut variants = vec![toks(s)];
                    if windash {
                        variants.push(
                            toks(s)
                                .into_iter()
                                .map(|t| {
                                    if t == GlobTok::Char('-') {
                                        GlobTok::Char('/')
                                    } else {
                                        t
                                    }
                                })
                                .collect(),
                        );
                    }
                    if base64 {
                        variants = vec![base64_encode(&s.original)
                            .chars()
                            .map(GlobTok::Char)
                            .collect()];
                    }
                    or(variants
                        .into_iter()
                        .map(|t| {
                            Expr::Match(
                                f.clone(),
                                Arc::new(Matcher::from_toks(shape(t, kind), !cased)),
                                Span::default(),
                            )
                        })
                        .collect())
                }
                other => {
                    let t: Vec<GlobTok> = value_text(other).chars().map(GlobTok::Char).collect();
                    Expr::Match(
                        f.clone(),
                        Arc::new(Matcher::from_toks(shape(t, kind), !cased)),
                        Span::default(),
                    )
                }
            };
            alts.push(if neq { Expr::Not(Box::new(e)) } else { e });
        }
        if all {
            and(alts)
        } else {
            or(alts)
        }
    }
}

/// Upstream 0.7.0's reading of Sigma (`core/policyengine/policy/sigma/compiler.go` over
/// sigma-go 0.5.1), the default (`quirks: upstream`): every map of a search given as a list
/// is ANDed; values are compared case-insensitively as literal text (no wildcards), split on
/// `,` like every upstream comparison; `re` and the modifiers it does not know are ignored;
/// `1 of`/`all of` a name without a wildcard, an unknown name and a keyword search are false;
/// `them` takes every search. Each place where this differs from the Sigma specification is
/// a `LOAD_SIGMA_UPSTREAM_MEANING` warning; `quirks: fixed` reads the specification's meaning.
impl Converter<'_> {
    fn upstream_note(&mut self, needle: &str, message: String) {
        let p = self.pos(needle);
        let snippet = self.line(&p);
        self.diags
            .warn(Code::SigmaUpstreamMeaning, p, message, &snippet);
    }

    fn search_upstream(&mut self, name: &str, d: &Detection) -> Expr {
        match d {
            Detection::AllOf(items) => {
                and(items.iter().map(|i| self.item_upstream(name, i)).collect())
            }
            Detection::AnyOf(v) => {
                if v.len() > 1 {
                    self.upstream_note(
                        &format!("{name}:"),
                        format!("`{name}`: upstream ANDs the maps of a list (Sigma ORs them); `quirks: fixed` reads them as any-of"),
                    );
                }
                and(v.iter().map(|x| self.search_upstream(name, x)).collect())
            }
            Detection::And(v) => and(v.iter().map(|x| self.search_upstream(name, x)).collect()),
            Detection::Keywords(_) => {
                self.upstream_note(
                    &format!("{name}:"),
                    format!("`{name}`: keyword searches are not supported: false, as upstream (use field selectors)"),
                );
                Expr::Const(false)
            }
            Detection::ArrayMatch { .. } | Detection::Conditional { .. } => {
                self.error(
                    &format!("{name}:"),
                    format!("`{name}`: this detection form is not supported"),
                );
                Expr::Const(false)
            }
        }
    }

    fn item_upstream(&mut self, sel: &str, item: &DetectionItem) -> Expr {
        let Some(field) = item.field.name.as_deref() else {
            self.upstream_note(
                &format!("{sel}:"),
                format!("`{sel}`: keyword searches are not supported: false, as upstream"),
            );
            return Expr::Const(false);
        };
        let key = if item.field.modifiers.is_empty() {
            format!("{field}:")
        } else {
            format!("{field}|")
        };
        let Some(target) = self.target(field, &key) else {
            return Expr::Const(false);
        };
        let mut all = false;
        // Upstream's comparators (every one must hold) and transformers (any variant).
        let mut cmps: Vec<Option<Modifier>> = Vec::new();
        let mut transforms: Vec<Modifier> = Vec::new();
        for m in &item.field.modifiers {
            match m {
                Modifier::All => all = true,
                Modifier::Contains
                | Modifier::StartsWith
                | Modifier::EndsWith
                | Modifier::Gt
                | Modifier::Gte
                | Modifier::Lt
                | Modifier::Lte => cmps.push(Some(*m)),
                Modifier::WindAsh
                | Modifier::Base64
                | Modifier::Wide
                | Modifier::Utf16
                | Modifier::Utf16be => transforms.push(*m),
                Modifier::Base64Offset | Modifier::Cidr => {
                    // Upstream panics on these (its transformer is missing).
                    self.error(
                        &key,
                        format!(
                            "`{field}`: the Sigma modifier `{}` is not supported (upstream stops on it)",
                            modifier_name(*m)
                        ),
                    );
                    return Expr::Const(false);
                }
                other => {
                    let what = if *other == Modifier::Re {
                        "the value is compared as text, not as a regular expression".to_string()
                    } else {
                        "it has no effect".to_string()
                    };
                    self.upstream_note(
                        &key,
                        format!(
                            "`{field}`: upstream ignores the modifier `{}`: {what}; `quirks: fixed` applies it",
                            modifier_name(*other)
                        ),
                    );
                }
            }
        }
        if cmps.is_empty() {
            cmps.push(None);
        }
        let f = word(&target);
        let mut wild = false;
        let mut alts = Vec::new();
        for v in &item.values {
            let text = match v {
                SigmaValue::Null => String::new(),
                other => value_text(other),
            };
            wild |= matches!(v, SigmaValue::String(s) if s.parts.iter().any(|p| matches!(p, StringPart::Special(_))));
            let variants: Vec<String> = if transforms.is_empty() {
                vec![text]
            } else {
                transforms
                    .iter()
                    .flat_map(|t| match t {
                        Modifier::WindAsh => vec![text.clone(), text.replace('-', "/")],
                        Modifier::Base64 => vec![base64_encode(&text)],
                        _ => vec![text.clone()],
                    })
                    .collect()
            };
            alts.push(or(variants
                .iter()
                .map(|v| and(cmps.iter().map(|c| term_upstream(&f, *c, v)).collect()))
                .collect()));
        }
        if wild {
            self.upstream_note(
                &key,
                format!("`{field}`: upstream compares `*` and `?` literally (Sigma: wildcards); `quirks: fixed` reads them as wildcards"),
            );
        }
        if all {
            and(alts)
        } else {
            or(alts)
        }
    }

    fn condition_upstream(
        &mut self,
        c: &ConditionExpr,
        named: &HashMap<&str, Expr>,
        names: &[&str],
    ) -> Expr {
        match c {
            ConditionExpr::And(v) => and(v
                .iter()
                .map(|x| self.condition_upstream(x, named, names))
                .collect()),
            ConditionExpr::Or(v) => or(v
                .iter()
                .map(|x| self.condition_upstream(x, named, names))
                .collect()),
            ConditionExpr::Not(x) => Expr::Not(Box::new(self.condition_upstream(x, named, names))),
            ConditionExpr::Identifier(id) => match named.get(id.as_str()) {
                Some(e) => e.clone(),
                None => {
                    self.upstream_note(
                        "condition:",
                        format!("the condition names `{id}`, which the detection does not define: false, as upstream"),
                    );
                    Expr::Const(false)
                }
            },
            ConditionExpr::Selector {
                quantifier,
                pattern,
            } => {
                let picked: Vec<Expr> = match pattern {
                    SelectorPattern::Them => {
                        names.iter().filter_map(|n| named.get(n).cloned()).collect()
                    }
                    SelectorPattern::Pattern(p) if p.contains('*') => {
                        let m = Matcher::glob(p, false);
                        names
                            .iter()
                            .filter(|n| m.is_match(n))
                            .filter_map(|n| named.get(n).cloned())
                            .collect()
                    }
                    SelectorPattern::Pattern(p) => {
                        self.upstream_note(
                            "condition:",
                            format!("`of {p}` without a wildcard is false in upstream (its compiler does not handle it); `quirks: fixed` reads Sigma's meaning"),
                        );
                        return Expr::Const(false);
                    }
                };
                match quantifier {
                    Quantifier::Any => or(picked),
                    Quantifier::All => and(picked),
                    Quantifier::Count(n) => {
                        self.error(
                            "condition:",
                            format!("`{n} of ...` is not supported (only `1 of` and `all of`)"),
                        );
                        Expr::Const(false)
                    }
                }
            }
        }
    }
}

/// One upstream comparison of `f` with a value: case-insensitive text (`None`: equality),
/// or a numeric comparison; the value's comma parts are alternatives, as upstream splits both
/// sides of every comparison on `,` (the field's parts are the matcher's business).
fn term_upstream(f: &Atom, cmp: Option<Modifier>, value: &str) -> Expr {
    let num = |op| Expr::Binary(f.clone(), op, word(value), Span::default());
    match cmp {
        Some(Modifier::Gt) => num(BinOp::Gt),
        Some(Modifier::Gte) => num(BinOp::Ge),
        Some(Modifier::Lt) => num(BinOp::Lt),
        Some(Modifier::Lte) => num(BinOp::Le),
        kind => or(value
            .split(',')
            .map(|part| {
                let t: Vec<GlobTok> = part.chars().map(GlobTok::Char).collect();
                Expr::Match(
                    f.clone(),
                    Arc::new(Matcher::from_toks(shape(t, kind), true)),
                    Span::default(),
                )
            })
            .collect()),
    }
}

fn modifier_name(m: Modifier) -> String {
    serde_json::to_value(m)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| format!("{m:?}").to_lowercase())
}

fn value_text(v: &SigmaValue) -> String {
    match v {
        SigmaValue::String(s) => s.original.clone(),
        SigmaValue::Integer(i) => i.to_string(),
        SigmaValue::Float(f) => f.to_string(),
        SigmaValue::Bool(b) => b.to_string(),
        SigmaValue::Null => String::new(),
    }
}

/// A Sigma string as glob tokens (its wildcards are `*`/`?`; escapes are already resolved).
fn toks(s: &SigmaString) -> Vec<GlobTok> {
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
fn shape(mut t: Vec<GlobTok>, kind: Option<Modifier>) -> Vec<GlobTok> {
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
fn base64_encode(s: &str) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_of_known_values() {
        assert_eq!(base64_encode("hello"), "aGVsbG8=");
        assert_eq!(base64_encode("ab"), "YWI=");
        assert_eq!(base64_encode("abc"), "YWJj");
    }
}
