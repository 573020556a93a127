//! The expression compiler: a condition ([`Cond`]: text from a file, or an AST built by the
//! loader for exceptions and Sigma detections) becomes the predicate IR over fields resolved
//! at compile time, against the lists and macros in force at that point of the load (see
//! [`super::collector`] for upstream's resolution order). Expansion is budgeted: a condition
//! whose macros and lists expand past [`MAX_CONDITION_NODES`] / [`MAX_LIST_ITEMS`] is an
//! error, found before any pass walks the expanded tree.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use aho_corasick::AhoCorasick;

use super::attr::{self, FieldRef, Kind2};
use super::diag::{Code, Diags};
use super::ir::{Lit, Pred, AC_MIN};
use super::parser::{parse_condition, Atom, BinOp, Expr, Item, ListOp, Span};
use super::passes::{cheapest_first, merge_or, specialise, wrap_entity_parts};
use super::source::{CondText, PolicyError, Pos};

/// Most nodes one condition may expand to (macros expanded in place). Upstream's largest
/// rule expands to a few hundred; exponential macros hit this at once.
pub const MAX_CONDITION_NODES: u64 = 100_000;

/// Most nodes all conditions of one load may expand to together (bounds compile time).
pub const MAX_TOTAL_NODES: u64 = 4_000_000;

/// Most items one `in`/`pmatch` may expand to (lists of lists expanded in place).
pub const MAX_LIST_ITEMS: usize = 100_000;

/// Deepest macro nesting (a macro using a macro using ...).
pub const MAX_MACRO_DEPTH: usize = 64;

/// A condition to compile.
#[derive(Debug, Clone, PartialEq)]
pub enum Cond {
    /// Condition text as written in a file.
    Text(CondText),
    /// An AST built by the loader (exceptions, Sigma); the text gives positions.
    Ast(Arc<Expr>, CondText),
    And(Vec<Cond>),
    Or(Vec<Cond>),
    Not(Box<Cond>),
}

impl Cond {
    /// Where the condition starts.
    pub fn pos(&self) -> Pos {
        match self {
            Cond::Text(c) | Cond::Ast(_, c) => c.pos.clone(),
            Cond::And(v) | Cond::Or(v) => v.first().map(Cond::pos).unwrap_or_else(Pos::unknown),
            Cond::Not(x) => x.pos(),
        }
    }

    /// `self` extended by Falco-style appended text: `and ...` / `or ...` combine with the
    /// earlier condition; text without a leading operator is an error (Falco would paste
    /// the texts together into a syntax error).
    pub fn append(self, extra: &CondText) -> Result<Cond, PolicyError> {
        let t = extra.text.trim_start();
        let lead = extra.text.len() - t.len();
        for (kw, and) in [("and", true), ("or", false)] {
            if let Some(rest) = t.strip_prefix(kw) {
                if rest.starts_with(|c: char| c.is_whitespace() || c == '(') {
                    let piece = CondText {
                        text: format!("{}{}", " ".repeat(lead + kw.len()), rest),
                        ..extra.clone()
                    };
                    return Ok(if and {
                        Cond::And(vec![self, Cond::Text(piece)])
                    } else {
                        Cond::Or(vec![self, Cond::Text(piece)])
                    });
                }
            }
        }
        Err(PolicyError {
            pos: extra.pos.clone(),
            message: "an appended condition must start with `and` or `or`".into(),
            snippet: extra.snippet(0),
        })
    }
}

/// A list as defined at some point of the load.
#[derive(Debug, Clone, PartialEq)]
pub struct ListDef {
    pub items: Vec<String>,
    /// Positions of the entries that made it (a change makes a new version).
    pub version: Vec<Pos>,
}

/// A macro as defined at some point of the load.
#[derive(Debug, Clone, PartialEq)]
pub struct MacroDef {
    pub cond: Cond,
    pub version: Vec<Pos>,
}

/// A compiled macro, valid while no list or macro changes.
#[derive(Debug, Clone)]
struct Compiled {
    pred: Pred,
    unsupported: Option<(String, Pos)>,
}

/// Compiles conditions against the lists and macros in force.
pub struct Compiler<'a> {
    pub lists: HashMap<String, ListDef>,
    pub macros: HashMap<String, MacroDef>,
    cache: HashMap<String, Compiled>,
    /// Expanded node count per memo slot of a named macro.
    sizes: HashMap<usize, u64>,
    /// Next free memo slot (named macros and synthetic ones share the numbering).
    pub next_macro_id: usize,
    expanding: Vec<String>,
    /// Nodes compiled so far in this load (against [`MAX_TOTAL_NODES`]).
    total_nodes: u64,
    pub diags: &'a mut Diags,
    pub used_macros: HashSet<String>,
    pub used_lists: HashSet<String>,
    /// A field of the condition being compiled that the SysFlow model cannot provide.
    unsupported: Option<(String, Pos)>,
    /// Rules needing such a field are disabled (else the name is literal text, as upstream).
    pub disable_unsupported: bool,
    /// Conditions read fields as upstream's engine does (`quirks: upstream`, the default;
    /// see [`super::attr::Field::upstream_quirk`]).
    pub quirks: bool,
}

fn trim_bounding_quotes(s: &str) -> &str {
    let s = s.strip_prefix(['"', '\'']).unwrap_or(s);
    s.strip_suffix(['"', '\'']).unwrap_or(s)
}

/// Falco field classes: a name under one of these that this build does not map needs data
/// SysFlow records do not carry (Kubernetes audit, thread tables, ...).
const FALCO_CLASSES: &[&str] = &[
    "evt.",
    "proc.",
    "thread.",
    "fd.",
    "fdlist.",
    "user.",
    "group.",
    "container.",
    "k8s.",
    "ka.",
    "jevt.",
    "syscall.",
    "fs.",
    "span.",
    "mesos.",
    "k8smeta.",
    "proc.aname[",
    "gen.",
];

impl<'a> Compiler<'a> {
    pub fn new(diags: &'a mut Diags) -> Self {
        Compiler {
            lists: HashMap::new(),
            macros: HashMap::new(),
            cache: HashMap::new(),
            sizes: HashMap::new(),
            next_macro_id: 0,
            expanding: Vec::new(),
            total_nodes: 0,
            diags,
            used_macros: HashSet::new(),
            used_lists: HashSet::new(),
            unsupported: None,
            disable_unsupported: false,
            quirks: false,
        }
    }

    /// Upstream's `evt.type` holds SysFlow's names only: a comparison with Falco's lowercase
    /// names is false there (and here by default), which the user should see.
    fn falco_evt_note(&mut self, l: &Atom, values: &[&str], cond: &CondText, span: Span) {
        if !self.quirks || l.text() != "evt.type" {
            return;
        }
        if let Some(v) = values.iter().find(|v| attr::is_falco_evt_name(v)) {
            self.warn(
                Code::FalcoEventType,
                cond,
                span,
                format!(
                    "`evt.type` holds SysFlow's event names (EXEC, OPEN, ...): `{v}` never matches, as upstream; `quirks: fixed` also gives Falco's names"
                ),
            );
        }
    }

    /// `name` resolved to a field, with upstream's quirks when they are on.
    fn lookup(&self, name: &str) -> Option<FieldRef> {
        attr::lookup_ref(name).map(|mut f| {
            if self.quirks {
                f.field = f.field.upstream_quirk();
            }
            f
        })
    }

    /// Sets list `name`; compiled macros are dropped when its value changes.
    pub fn set_list(&mut self, name: &str, def: Option<ListDef>) {
        let changed = self.lists.get(name).map(|d| &d.version) != def.as_ref().map(|d| &d.version);
        if changed {
            self.cache.clear();
            match def {
                Some(d) => self.lists.insert(name.to_string(), d),
                None => self.lists.remove(name),
            };
        }
    }

    /// Sets macro `name`; compiled macros are dropped when its value changes.
    pub fn set_macro(&mut self, name: &str, def: Option<MacroDef>) {
        let changed = self.macros.get(name).map(|d| &d.version) != def.as_ref().map(|d| &d.version);
        if changed {
            self.cache.clear();
            match def {
                Some(d) => self.macros.insert(name.to_string(), d),
                None => self.macros.remove(name),
            };
        }
    }

    fn err(cond: &CondText, offset: usize, message: String) -> PolicyError {
        PolicyError {
            pos: cond.pos_of(offset),
            message,
            snippet: cond.snippet(offset),
        }
    }

    fn warn(&mut self, code: Code, cond: &CondText, span: Span, message: String) {
        let pos = cond.pos_of(span.start);
        let snippet = cond.snippet(span.start);
        self.diags.warn(code, pos, message, &snippet);
    }

    /// Nodes of `p` with every named macro expanded in place (without walking the
    /// expansion: named macros carry their size).
    fn size(&self, p: &Pred) -> u64 {
        match p {
            Pred::And(v) | Pred::Or(v) => v
                .iter()
                .fold(1u64, |acc, x| acc.saturating_add(self.size(x))),
            Pred::Not(x) => self.size(x).saturating_add(1),
            Pred::Macro(id, inner) => match self.sizes.get(id) {
                Some(n) => *n,
                None => self.size(inner).saturating_add(1),
            },
            _ => 1,
        }
    }

    fn check_size(&self, p: &Pred, cond: &CondText, span: Span) -> Result<(), PolicyError> {
        let n = self.size(p);
        if n > MAX_CONDITION_NODES {
            return Err(Self::err(
                cond,
                span.start,
                format!(
                    "condition expands to more than {MAX_CONDITION_NODES} nodes (macros expanded in place: {n}); refused by the expansion budget"
                ),
            ));
        }
        Ok(())
    }

    /// Compiles a whole condition (a rule's or a filter's). Returns the predicate and, when
    /// it reads a field the model cannot provide, that field.
    pub fn compile_top(
        &mut self,
        cond: &Cond,
    ) -> Result<(Pred, Option<(String, Pos)>), PolicyError> {
        self.unsupported = None;
        let p = self.compile(cond)?;
        let n = self.size(&p);
        self.total_nodes = self.total_nodes.saturating_add(n);
        if self.total_nodes > MAX_TOTAL_NODES {
            return Err(PolicyError {
                pos: cond.pos(),
                message: format!(
                    "the policy set expands to more than {MAX_TOTAL_NODES} condition nodes; refused by the expansion budget"
                ),
                snippet: String::new(),
            });
        }
        Ok((p, self.unsupported.take()))
    }

    fn compile(&mut self, cond: &Cond) -> Result<Pred, PolicyError> {
        match cond {
            Cond::Text(t) => {
                let ast = parse_condition(&t.text)
                    .map_err(|e| Self::err(t, e.offset, format!("syntax error: {}", e.message)))?;
                self.compile_expr(&ast, t)
            }
            Cond::Ast(ast, t) => self.compile_expr(ast, t),
            Cond::And(v) => Ok(Pred::And(cheapest_first(
                v.iter()
                    .map(|c| self.compile(c))
                    .collect::<Result<_, _>>()?,
            ))),
            Cond::Or(v) => Ok(Pred::Or(cheapest_first(merge_or(
                v.iter()
                    .map(|c| self.compile(c))
                    .collect::<Result<_, _>>()?,
            )))),
            Cond::Not(x) => Ok(Pred::Not(Box::new(self.compile(x)?))),
        }
    }

    /// Expands `name` (a list name or a literal) into `out`, within the item budget.
    fn expand_list(
        &mut self,
        name: &str,
        out: &mut Vec<String>,
        stack: &mut Vec<String>,
        cond: &CondText,
        span: Span,
    ) -> Result<(), PolicyError> {
        let key = trim_bounding_quotes(name);
        let Some(def) = self.lists.get(name).or_else(|| self.lists.get(key)) else {
            out.push(key.to_string());
            return self.check_items(out, cond, span);
        };
        let list_name = if self.lists.contains_key(name) {
            name
        } else {
            key
        };
        if stack.iter().any(|s| s == list_name) {
            return Err(Self::err(
                cond,
                span.start,
                format!("list `{list_name}` refers to itself"),
            ));
        }
        if stack.len() >= MAX_MACRO_DEPTH {
            return Err(Self::err(
                cond,
                span.start,
                format!("list `{list_name}` is nested more than {MAX_MACRO_DEPTH} lists deep"),
            ));
        }
        self.used_lists.insert(list_name.to_string());
        let items = def.items.clone();
        stack.push(list_name.to_string());
        for i in &items {
            self.expand_list(i, out, stack, cond, span)?;
        }
        stack.pop();
        Ok(())
    }

    fn check_items(&self, out: &[String], cond: &CondText, span: Span) -> Result<(), PolicyError> {
        if out.len() > MAX_LIST_ITEMS {
            return Err(Self::err(
                cond,
                span.start,
                format!("the list expands to more than {MAX_LIST_ITEMS} items (lists expanded in place); refused by the expansion budget"),
            ));
        }
        Ok(())
    }

    fn field_of(&mut self, a: &Atom, cond: &CondText) -> Option<FieldRef> {
        let Atom::Word(w, span) = a else {
            return None;
        };
        if let Some(f) = self.lookup(w) {
            return Some(f);
        }
        if w.starts_with("sf.") {
            self.warn(
                Code::UnknownField,
                cond,
                *span,
                format!("unknown attribute `{w}`; compared as the literal text `{w}` (upstream's behaviour)"),
            );
        } else if FALCO_CLASSES.iter().any(|p| w.starts_with(p)) {
            if self.disable_unsupported {
                if self.unsupported.is_none() {
                    self.unsupported = Some((w.clone(), cond.pos_of(span.start)));
                }
            } else {
                self.warn(
                    Code::UnsupportedField,
                    cond,
                    *span,
                    format!("`{w}` is not a field SysFlow records carry; compared as the literal text `{w}` (upstream's behaviour; `unsupported: disable` disables such rules)"),
                );
            }
        }
        None
    }

    fn compile_expr(&mut self, e: &Expr, cond: &CondText) -> Result<Pred, PolicyError> {
        Ok(match e {
            Expr::And(v) => {
                let parts: Vec<Pred> = v
                    .iter()
                    .map(|x| self.compile_expr(x, cond))
                    .collect::<Result<_, _>>()?;
                let p = Pred::And(parts);
                self.check_size(&p, cond, Span::default())?;
                match p {
                    Pred::And(parts) => Pred::And(cheapest_first(parts)),
                    other => other,
                }
            }
            Expr::Or(v) => {
                let parts: Vec<Pred> = v
                    .iter()
                    .map(|x| self.compile_expr(x, cond))
                    .collect::<Result<_, _>>()?;
                let p = Pred::Or(parts);
                self.check_size(&p, cond, Span::default())?;
                match p {
                    Pred::Or(parts) => Pred::Or(cheapest_first(merge_or(parts))),
                    other => other,
                }
            }
            Expr::Not(x) => Pred::Not(Box::new(self.compile_expr(x, cond)?)),
            Expr::Ref(name, span) => self.macro_ref(name, *span, cond)?,
            Expr::Const(b) => Pred::Const(*b),
            Expr::Match(l, m, _) => match self.field_of(l, cond) {
                Some(f) => Pred::Match(f, m.clone()),
                // Upstream: an unknown attribute is its own text.
                None => Pred::Const(m.is_match(l.text())),
            },
            Expr::Exists(a, _) => match self.field_of(a, cond) {
                Some(f) => Pred::Exists(f),
                // Upstream: an unknown attribute is its own (non-empty) text.
                None => Pred::Const(!a.text().is_empty()),
            },
            Expr::Binary(l, op, r, span) => {
                let lf = self.field_of(l, cond);
                let rf = match r {
                    Atom::Word(w, _) => self.lookup(w),
                    Atom::Quoted(..) => None,
                };
                match (lf, rf) {
                    (Some(lf), Some(rf)) => Pred::FieldCmp(lf, *op, rf),
                    (Some(lf), None) => {
                        let quoted = matches!(r, Atom::Quoted(..));
                        // Quoted strings are already unquoted by the parser (nested quotes,
                        // escapes); a bare word loses bounding quotes as upstream.
                        let text = if quoted {
                            r.text()
                        } else {
                            trim_bounding_quotes(r.text())
                        };
                        let lit = Lit::new(text, quoted);
                        if matches!(op, BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge)
                            && (lf.field.kind() != Kind2::Int
                                || quoted
                                || r.text().trim().parse::<i64>().is_err())
                        {
                            self.warn(
                                Code::NumericCompare,
                                cond,
                                *span,
                                format!(
                                    "numeric comparison of `{}` with `{}`: non-numbers compare as 0 (upstream's behaviour)",
                                    l.text(),
                                    r.text()
                                ),
                            );
                        }
                        self.falco_evt_note(l, &[text], cond, *span);
                        specialise(Pred::Cmp(lf, *op, lit))
                    }
                    (None, _) if is_attr_name(l.text()) => Pred::Const(literal_compare(l, *op, r)),
                    (None, _) => {
                        self.warn(
                            Code::LiteralCompare,
                            cond,
                            *span,
                            format!(
                                "the left side `{}` is not an attribute: the literal texts are compared (upstream's behaviour)",
                                l.text()
                            ),
                        );
                        Pred::Const(literal_compare(l, *op, r))
                    }
                }
            }
            Expr::List(l, op, items, span) => {
                let mut values = Vec::new();
                let mut stack = Vec::new();
                for it in items {
                    match it {
                        Item::Atom(Atom::Word(w, s)) => {
                            self.expand_list(w, &mut values, &mut stack, cond, *s)?
                        }
                        Item::Atom(Atom::Quoted(q, _)) => values.push(q.clone()),
                        Item::Inline(v) => {
                            for a in v {
                                match a {
                                    Atom::Word(w, s) => {
                                        self.expand_list(w, &mut values, &mut stack, cond, *s)?
                                    }
                                    Atom::Quoted(q, _) => values.push(q.clone()),
                                }
                            }
                        }
                    }
                    self.check_items(&values, cond, *span)?;
                }
                let Some(f) = self.field_of(l, cond) else {
                    if !is_attr_name(l.text()) {
                        self.warn(
                        Code::LiteralCompare,
                        cond,
                        *span,
                        format!(
                            "the left side `{}` of `in`/`pmatch` is not an attribute: the literal text is compared (upstream's behaviour)",
                            l.text()
                        ),
                    );
                    }
                    let a = trim_bounding_quotes(l.text());
                    return Ok(Pred::Const(match op {
                        ListOp::In => values.iter().any(|v| v == a),
                        ListOp::Pmatch => values.iter().any(|v| a.contains(v.as_str())),
                    }));
                };
                let values: Vec<String> = values
                    .iter()
                    .flat_map(|v| v.split(','))
                    .map(str::to_string)
                    .collect();
                if *op == ListOp::In && f.field.kind() == Kind2::Int && f.path.is_none() {
                    if let Some(bad) = values.iter().find(|v| v.trim().parse::<i64>().is_err()) {
                        self.warn(
                            Code::ImpossibleItem,
                            cond,
                            *span,
                            format!(
                                "`{}` is a number; the item `{bad}` can never equal it (ranges such as `1:1024` are not supported)",
                                l.text()
                            ),
                        );
                    }
                }
                if *op == ListOp::In {
                    let v: Vec<&str> = values.iter().map(String::as_str).collect();
                    self.falco_evt_note(l, &v, cond, *span);
                }
                match op {
                    ListOp::In => specialise(Pred::In(f, Arc::new(values.into_iter().collect()))),
                    ListOp::Pmatch => {
                        let ac = (values.len() > AC_MIN)
                            .then(|| AhoCorasick::new(&values).ok().map(Arc::new))
                            .flatten();
                        specialise(Pred::Pmatch(f, Arc::new(values), ac))
                    }
                }
            }
        })
    }

    fn macro_ref(&mut self, name: &str, span: Span, cond: &CondText) -> Result<Pred, PolicyError> {
        self.used_macros.insert(name.to_string());
        if let Some(c) = self.cache.get(name) {
            if self.unsupported.is_none() {
                self.unsupported = c.unsupported.clone();
            }
            return Ok(c.pred.clone());
        }
        let Some(def) = self.macros.get(name).cloned() else {
            self.warn(
                Code::UnknownMacro,
                cond,
                span,
                format!("unknown macro `{name}`; evaluates to false (upstream's behaviour)"),
            );
            return Ok(Pred::Const(false));
        };
        if self.expanding.len() >= MAX_MACRO_DEPTH {
            return Err(Self::err(
                cond,
                span.start,
                format!("macro `{name}` is nested more than {MAX_MACRO_DEPTH} macros deep"),
            ));
        }
        if self.expanding.iter().any(|m| m == name) {
            return Err(Self::err(
                cond,
                span.start,
                format!("macro `{name}` refers to itself"),
            ));
        }
        self.expanding.push(name.to_string());
        let outer = self.unsupported.take();
        let r = self.compile(&def.cond);
        let inner_unsupported = self.unsupported.take();
        self.unsupported = outer.or_else(|| inner_unsupported.clone());
        self.expanding.pop();
        let p = r?;
        let size = self.size(&p);
        if size > MAX_CONDITION_NODES {
            return Err(Self::err(
                cond,
                span.start,
                format!(
                    "macro `{name}` expands to more than {MAX_CONDITION_NODES} nodes ({size}); refused by the expansion budget"
                ),
            ));
        }
        // A macro that reads only entities is memoised as a whole; otherwise its
        // entity-only parts are.
        let p = wrap_entity_parts(p, &mut self.next_macro_id, true);
        let id = self.next_macro_id;
        self.next_macro_id += 1;
        self.sizes.insert(id, size.saturating_add(1));
        let p = Pred::Macro(id, Arc::new(p));
        self.cache.insert(
            name.to_string(),
            Compiled {
                pred: p.clone(),
                unsupported: inner_unsupported,
            },
        );
        Ok(p)
    }
}

/// Whether `w` names an attribute (known or not): the compiler has already warned about an
/// unknown one.
fn is_attr_name(w: &str) -> bool {
    w.starts_with("sf.") || FALCO_CLASSES.iter().any(|p| w.starts_with(p))
}

/// Upstream's comparison of two literal texts (an unknown attribute is its own text): string
/// operators on the texts, numeric ones on their integer values (0 when not integers).
fn literal_compare(l: &Atom, op: BinOp, r: &Atom) -> bool {
    let a = trim_bounding_quotes(l.text());
    let b = trim_bounding_quotes(r.text());
    let int = |x: &Atom| match x {
        Atom::Word(w, _) => w.trim().parse::<i64>().unwrap_or(0),
        Atom::Quoted(..) => 0,
    };
    let any = |f: &dyn Fn(&str, &str) -> bool| a.split(',').any(|x| b.split(',').any(|y| f(x, y)));
    match op {
        BinOp::Eq => any(&|x, y| x == y),
        BinOp::Ne => !any(&|x, y| x == y),
        BinOp::Contains => any(&|x, y| x.contains(y)),
        BinOp::IContains => any(&|x, y| x.to_lowercase().contains(&y.to_lowercase())),
        BinOp::StartsWith => any(&|x, y| x.starts_with(y)),
        BinOp::EndsWith => any(&|x, y| x.ends_with(y)),
        BinOp::Lt => int(l) < int(r),
        BinOp::Le => int(l) <= int(r),
        BinOp::Gt => int(l) > int(r),
        BinOp::Ge => int(l) >= int(r),
    }
}
