//! The compiler: resolves lists and macros, turns condition ASTs into the predicate IR over
//! fields resolved at compile time, and builds the policy set with its type index.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use aho_corasick::AhoCorasick;

use super::actions::ActionRegistry;
use super::attr::{self, FieldRef, Kind2};
use super::ir::{Lit, Pred, TypeSet, AC_MIN};
use super::loader::{CondText, Entry, LoadedFiles, Merge, PolicyError};
use super::parser::{parse_condition, Atom, BinOp, Expr, Item, ListOp};
use super::passes::{
    cheapest_first, mark_record_macros, merge_or, per_type, specialise, wrap_entity_parts,
};
use super::set::{priority, Counts, Filter, PolicySet, Rule, NEXT_SET_ID};

struct Compiler<'a> {
    lists: HashMap<String, Vec<String>>,
    macros: HashMap<String, CondText>,
    compiled_macros: HashMap<String, Pred>,
    macro_ids: HashMap<String, usize>,
    /// Next free memo slot (named macros and synthetic ones share the numbering).
    next_macro_id: usize,
    expanding: HashSet<String>,
    lenient: bool,
    warnings: &'a mut Vec<String>,
}

fn trim_bounding_quotes(s: &str) -> &str {
    let s = s.strip_prefix(['"', '\'']).unwrap_or(s);
    s.strip_suffix(['"', '\'']).unwrap_or(s)
}

impl Compiler<'_> {
    fn err(&self, cond: &CondText, offset: usize, message: String) -> PolicyError {
        PolicyError {
            pos: cond.pos_of(offset),
            message,
            snippet: cond.snippet(offset),
        }
    }

    fn expand_list(&self, name: &str, out: &mut Vec<String>, depth: usize) {
        match self.lists.get(name) {
            Some(items) if depth < 32 => {
                for i in items {
                    self.expand_list(i, out, depth + 1);
                }
            }
            _ => out.push(trim_bounding_quotes(name).to_string()),
        }
    }

    fn compile_cond(&mut self, cond: &CondText) -> Result<Pred, PolicyError> {
        let ast = parse_condition(&cond.text)
            .map_err(|e| self.err(cond, e.offset, format!("syntax error: {}", e.message)))?;
        self.compile_expr(&ast, cond)
    }

    fn field_of(&mut self, a: &Atom, cond: &CondText) -> Result<Option<FieldRef>, PolicyError> {
        let Atom::Word(w, span) = a else {
            return Ok(None);
        };
        if let Some(f) = attr::lookup_ref(w) {
            return Ok(Some(f));
        }
        if attr::looks_like_attribute(w) {
            let msg = format!("unknown attribute `{w}`");
            if self.lenient {
                let p = cond.pos_of(span.start);
                self.warnings.push(format!(
                    "{p}: {msg}; treated as the literal text `{w}` (upstream's behaviour)"
                ));
                return Ok(None);
            }
            return Err(self.err(cond, span.start, msg));
        }
        Ok(None)
    }

    fn compile_expr(&mut self, e: &Expr, cond: &CondText) -> Result<Pred, PolicyError> {
        Ok(match e {
            Expr::And(v) => Pred::And(cheapest_first(
                v.iter()
                    .map(|x| self.compile_expr(x, cond))
                    .collect::<Result<_, _>>()?,
            )),
            Expr::Or(v) => Pred::Or(cheapest_first(merge_or(
                v.iter()
                    .map(|x| self.compile_expr(x, cond))
                    .collect::<Result<_, _>>()?,
            ))),
            Expr::Not(x) => Pred::Not(Box::new(self.compile_expr(x, cond)?)),
            Expr::Ref(name, span) => {
                if let Some(p) = self.compiled_macros.get(name) {
                    return Ok(p.clone());
                }
                let Some(m) = self.macros.get(name).cloned() else {
                    let msg = format!("unknown macro `{name}`");
                    if self.lenient {
                        let p = cond.pos_of(span.start);
                        self.warnings.push(format!(
                            "{p}: {msg}; evaluates to false (upstream's behaviour)"
                        ));
                        return Ok(Pred::Const(false));
                    }
                    return Err(self.err(cond, span.start, msg));
                };
                if self.expanding.len() >= 64 {
                    return Err(self.err(
                        cond,
                        span.start,
                        format!("macro `{name}` is nested more than 64 macros deep"),
                    ));
                }
                if !self.expanding.insert(name.clone()) {
                    return Err(self.err(
                        cond,
                        span.start,
                        format!("macro `{name}` refers to itself"),
                    ));
                }
                let p = self.compile_cond(&m)?;
                // A macro that reads only entities is memoised as a whole; otherwise its
                // entity-only parts are.
                let p = wrap_entity_parts(p, &mut self.next_macro_id, true);
                self.expanding.remove(name);
                let id = match self.macro_ids.get(name) {
                    Some(id) => *id,
                    None => {
                        let id = self.next_macro_id;
                        self.next_macro_id += 1;
                        self.macro_ids.insert(name.clone(), id);
                        id
                    }
                };
                let p = Pred::Macro(id, Arc::new(p));
                self.compiled_macros.insert(name.clone(), p.clone());
                p
            }
            Expr::Exists(a, span) => match self.field_of(a, cond)? {
                Some(f) => Pred::Exists(f),
                None => {
                    if !self.lenient {
                        return Err(self.err(
                            cond,
                            span.start,
                            format!("`exists` needs an attribute, found `{}`", a.text()),
                        ));
                    }
                    Pred::Const(!a.text().is_empty())
                }
            },
            Expr::Binary(l, op, r, span) => {
                let lf = self.field_of(l, cond)?;
                let rf = match r {
                    Atom::Word(w, _) => attr::lookup_ref(w),
                    Atom::Quoted(..) => None,
                };
                match (lf, rf) {
                    (Some(lf), Some(rf)) => Pred::FieldCmp(lf, *op, rf),
                    (Some(lf), None) => {
                        let quoted = matches!(r, Atom::Quoted(..));
                        let lit = Lit::new(trim_bounding_quotes(r.text()), quoted);
                        if matches!(op, BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge)
                            && (lf.field.kind() != Kind2::Int
                                || quoted
                                || r.text().trim().parse::<i64>().is_err())
                        {
                            let p = cond.pos_of(span.start);
                            self.warnings.push(format!(
                                "{p}: numeric comparison of `{}` with `{}`: non-numbers compare as 0 (upstream's behaviour)",
                                l.text(),
                                r.text()
                            ));
                        }
                        specialise(Pred::Cmp(lf, *op, lit))
                    }
                    (None, _) => {
                        if !self.lenient {
                            return Err(self.err(
                                cond,
                                span.start,
                                format!("the left side of a comparison must be an attribute, found `{}`", l.text()),
                            ));
                        }
                        // Upstream compares the literal texts.
                        let a = trim_bounding_quotes(l.text());
                        let b = trim_bounding_quotes(r.text());
                        Pred::Const(match op {
                            BinOp::Eq => a == b,
                            BinOp::Ne => a != b,
                            BinOp::Contains => a.contains(b),
                            BinOp::IContains => a.to_lowercase().contains(&b.to_lowercase()),
                            BinOp::StartsWith => a.starts_with(b),
                            BinOp::EndsWith => a.ends_with(b),
                            _ => false,
                        })
                    }
                }
            }
            Expr::List(l, op, items, span) => {
                let mut values = Vec::new();
                for it in items {
                    match it {
                        Item::Atom(Atom::Word(w, _)) => self.expand_list(w, &mut values, 0),
                        Item::Atom(Atom::Quoted(q, _)) => values.push(q.clone()),
                        Item::Inline(v) => {
                            for a in v {
                                match a {
                                    Atom::Word(w, _) => self.expand_list(w, &mut values, 0),
                                    Atom::Quoted(q, _) => values.push(q.clone()),
                                }
                            }
                        }
                    }
                }
                let Some(f) = self.field_of(l, cond)? else {
                    if !self.lenient {
                        return Err(self.err(
                            cond,
                            span.start,
                            format!(
                                "the left side of `in`/`pmatch` must be an attribute, found `{}`",
                                l.text()
                            ),
                        ));
                    }
                    let a = trim_bounding_quotes(l.text());
                    return Ok(Pred::Const(match op {
                        ListOp::In => values.iter().any(|v| v == a),
                        ListOp::Pmatch => values.iter().any(|v| a.contains(v.as_str())),
                    }));
                };
                match op {
                    ListOp::In => specialise(Pred::In(
                        f,
                        Arc::new(
                            values
                                .iter()
                                .flat_map(|v| v.split(','))
                                .map(str::to_string)
                                .collect(),
                        ),
                    )),
                    ListOp::Pmatch => {
                        let values: Vec<String> = values
                            .iter()
                            .flat_map(|v| v.split(','))
                            .map(str::to_string)
                            .collect();
                        let ac = (values.len() > AC_MIN)
                            .then(|| AhoCorasick::new(&values).ok().map(Arc::new))
                            .flatten();
                        specialise(Pred::Pmatch(f, Arc::new(values), ac))
                    }
                }
            }
        })
    }
}

/// Compiles loaded files. `lenient` turns unknown attributes and macros into warnings with
/// upstream's behaviour (literal text / false) instead of errors.
pub fn compile(
    loaded: &LoadedFiles,
    actions: &ActionRegistry,
    lenient: bool,
) -> Result<PolicySet, PolicyError> {
    let mut warnings = loaded.warnings.clone();
    let mut counts = Counts::default();
    // Lists and macros first: they may be used before they are defined.
    let mut lists: HashMap<String, Vec<String>> = HashMap::new();
    let mut macros: HashMap<String, CondText> = HashMap::new();
    for e in &loaded.entries {
        match e {
            Entry::List(l) => {
                counts.lists += 1;
                let items = lists.entry(l.name.clone()).or_default();
                match l.merge {
                    Merge::Append => items.extend(l.items.iter().cloned()),
                    _ => *items = l.items.clone(),
                }
            }
            Entry::Macro(m) => {
                counts.macros += 1;
                match (m.merge, macros.get_mut(&m.name)) {
                    (Merge::Append, Some(prev)) => {
                        prev.text = format!("{} {}", prev.text, m.condition.text);
                    }
                    _ => {
                        macros.insert(m.name.clone(), m.condition.clone());
                    }
                }
            }
            _ => {}
        }
    }
    let mut c = Compiler {
        lists,
        macros,
        compiled_macros: HashMap::new(),
        macro_ids: HashMap::new(),
        next_macro_id: 0,
        expanding: HashSet::new(),
        lenient,
        warnings: &mut warnings,
    };
    let mut rules: Vec<Rule> = Vec::new();
    let mut filters = Vec::new();
    for e in &loaded.entries {
        match e {
            Entry::Rule(r) => {
                // `append`/`override` on a rule extends the earlier rule of that name.
                if r.merge != Merge::Define {
                    if let Some(prev) = rules.iter_mut().find(|x| *x.name == *r.name) {
                        if let Some(cond) = &r.condition {
                            let extra = c.compile_cond(cond)?;
                            prev.pred = match r.merge {
                                Merge::Replace => extra,
                                _ => Pred::And(vec![prev.pred.clone(), extra]),
                            };
                            prev.types = prev.pred.possible_types().and(prev.prefilter);
                            prev.per_type = per_type(&prev.pred);
                        }
                        continue;
                    }
                }
                counts.rules += 1;
                let Some(cond) = &r.condition else {
                    return Err(PolicyError {
                        pos: r.pos.clone(),
                        message: format!("rule `{}` has no condition", r.name),
                        snippet: String::new(),
                    });
                };
                let mut pred = c.compile_cond(cond)?;
                if let Some(exc) = &r.exceptions {
                    let exc_cond = CondText {
                        text: exc.clone(),
                        ..cond.clone()
                    };
                    pred = Pred::And(vec![pred, c.compile_cond(&exc_cond)?]);
                }
                let prio = match &r.priority {
                    Some(p) => priority(p).unwrap_or_else(|| {
                        c.warnings.push(format!(
                            "{}: rule `{}`: unknown priority `{p}`; using low",
                            r.pos, r.name
                        ));
                        1
                    }),
                    None => 1,
                };
                let mut acts = Vec::new();
                for a in &r.actions {
                    match actions.get(a) {
                        Some(x) => acts.push(x.clone()),
                        None if lenient => c.warnings.push(format!(
                            "{}: rule `{}`: unknown action `{a}` ignored (upstream's behaviour)",
                            r.pos, r.name
                        )),
                        None => {
                            return Err(PolicyError {
                                pos: r.pos.clone(),
                                message: format!("rule `{}`: unknown action `{a}`", r.name),
                                snippet: String::new(),
                            })
                        }
                    }
                }
                let mut prefilter = TypeSet::ALL;
                if !r.prefilter.is_empty() {
                    let mut pf = TypeSet::NONE;
                    for t in &r.prefilter {
                        match TypeSet::from_short(t) {
                            Some(s) => pf = pf.or(s),
                            None => {
                                return Err(PolicyError {
                                    pos: r.pos.clone(),
                                    message: format!(
                                        "rule `{}`: unknown prefilter type `{t}` (expected PE PF FE FF NE NF KE)",
                                        r.name
                                    ),
                                    snippet: String::new(),
                                })
                            }
                        }
                    }
                    prefilter = pf;
                }
                let pred = wrap_entity_parts(pred, &mut c.next_macro_id, false);
                let types = pred.possible_types().and(prefilter);
                rules.push(Rule {
                    name: Arc::from(r.name.as_str()),
                    desc: Arc::from(r.desc.trim()),
                    priority: prio,
                    tags: Arc::from(r.tags.clone()),
                    actions: acts,
                    per_type: per_type(&pred),
                    pred,
                    types,
                    prefilter,
                    enabled: r.enabled,
                    pos: r.pos.clone(),
                    matches: Default::default(),
                });
            }
            Entry::Filter(f) => {
                counts.filters += 1;
                if f.enabled {
                    let pred = wrap_entity_parts(
                        c.compile_cond(&f.condition)?,
                        &mut c.next_macro_id,
                        false,
                    );
                    let types = pred.possible_types();
                    filters.push(Filter {
                        name: f.name.clone(),
                        per_type: per_type(&pred),
                        pred,
                        types,
                    });
                }
            }
            _ => {}
        }
    }
    // Macros and lists that no rule used are still checked.
    let names: Vec<String> = c.macros.keys().cloned().collect();
    for n in names {
        if !c.compiled_macros.contains_key(&n) {
            let m = c.macros[&n].clone();
            let p = c.compile_cond(&m)?;
            c.compiled_macros.insert(n, p);
        }
    }
    let mut index: [Vec<usize>; 7] = Default::default();
    for (i, r) in rules.iter().enumerate() {
        if !r.enabled {
            continue;
        }
        for (b, slot) in index.iter_mut().enumerate() {
            if r.types.0 & (1 << b) != 0 {
                slot.push(i);
            }
        }
    }
    let macro_slots = c.next_macro_id;
    let mut per_record = vec![false; macro_slots];
    for p in rules
        .iter()
        .map(|r| &r.pred)
        .chain(filters.iter().map(|f| &f.pred))
    {
        mark_record_macros(p, &mut per_record);
    }
    let record_macros = (0..macro_slots).filter(|i| per_record[*i]).collect();
    Ok(PolicySet {
        rules,
        filters,
        index,
        counts,
        warnings,
        macro_slots,
        record_macros,
        id: NEXT_SET_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::actions;
    use crate::policy::ir::TypeSet;
    use crate::policy::loader::{load_text, LoadedFiles};
    use crate::record::{Event, Record};
    use crate::sysflow::model::*;

    fn rec(event: Event) -> Record {
        Record {
            event,
            header: Arc::new(Header {
                version: 5,
                exporter: "node-a".into(),
                ip: "10.0.0.1".into(),
                filename: "/data/trace-1".into(),
            }),
            process: Some(Arc::new(Process {
                oid: Oid {
                    create_ts: 100,
                    hpid: 42,
                },
                poid: Some(Oid {
                    create_ts: 50,
                    hpid: 7,
                }),
                exe: "/usr/bin/python3".into(),
                exe_args: "app.py --name=ünï,cöde".into(),
                uid: 1000,
                user_name: "alice".into(),
                tty: true,
                container_id: Some("c1".into()),
                ..Default::default()
            })),
            ancestors: Arc::from(vec![
                Arc::new(Process {
                    oid: Oid {
                        create_ts: 50,
                        hpid: 7,
                    },
                    exe: "/bin/bash".into(),
                    uid: 0,
                    ..Default::default()
                }),
                Arc::new(Process {
                    oid: Oid {
                        create_ts: 1,
                        hpid: 1,
                    },
                    exe: "/sbin/init".into(),
                    ..Default::default()
                }),
            ]),
            container: Some(Arc::new(Container {
                id: "c1".into(),
                name: "web".into(),
                image: "nginx:1".into(),
                ctype: 0,
                privileged: true,
                ..Default::default()
            })),
            pod: None,
            file: Some(Arc::new(File {
                oid: [1; 20],
                path: "/etc/passwd".into(),
                restype: b'f' as i32,
                ..Default::default()
            })),
            new_file: None,
            policies: vec![],
            tags: vec![],
        }
    }

    fn ff() -> Record {
        rec(Event::FileFlow(FileFlow {
            ts: 10,
            tid: 42,
            op_flags: crate::sysflow::names::OP_OPEN | crate::sysflow::names::OP_READ_RECV,
            open_flags: crate::sysflow::names::O_RDONLY,
            fd: 3,
            ..Default::default()
        }))
    }

    fn nf() -> Record {
        let mut r = rec(Event::NetworkFlow(NetworkFlow {
            sip: 0x0100007f,
            sport: 40000,
            dip: 0x0101a8c0,
            dport: 443,
            proto: 6,
            op_flags: crate::sysflow::names::OP_CONNECT | crate::sysflow::names::OP_WRITE_SEND,
            ..Default::default()
        }));
        r.file = None;
        r
    }

    /// Compiles `cond` (strict unless `lenient`) and evaluates it on `r`.
    fn eval_with(cond: &str, r: &Record, lenient: bool) -> Result<bool, String> {
        let text = format!(
            "- rule: t\n  desc: d\n  condition: '{}'\n",
            cond.replace('\'', "''")
        );
        let mut lf = LoadedFiles::default();
        load_text("t.yaml", &text, &mut lf).map_err(|e| e.to_string())?;
        let set = compile(&lf, &actions::registry(), lenient).map_err(|e| e.to_string())?;
        Ok(set.rules[0].pred.eval(r))
    }

    fn t(cond: &str, r: &Record) -> bool {
        eval_with(cond, r, false).unwrap_or_else(|e| panic!("{cond}: {e}"))
    }

    #[test]
    fn equality_and_negation() {
        let r = ff();
        assert!(t("sf.type = FF", &r));
        assert!(t("sf.type != PE", &r));
        assert!(t("sf.proc.name = python3", &r));
        assert!(t("sf.proc.uid = 1000", &r));
        assert!(
            !t("sf.proc.uid = 01000", &r),
            "string form of ints, as upstream"
        );
        assert!(t("sf.file.path = \"/etc/passwd\"", &r));
        assert!(t(
            "sf.container.name = web and sf.container.type = DOCKER",
            &r
        ));
        assert!(t("sf.container.privileged = 1", &r));
    }

    #[test]
    fn comma_parts_either_semantics() {
        let r = nf();
        assert!(t("sf.net.ip = 192.168.1.1", &r));
        assert!(t("sf.net.ip = 127.0.0.1", &r));
        assert!(!t("sf.net.ip != 127.0.0.1", &r), "!= means no part equals");
        assert!(t("sf.net.port = 443", &r));
        assert!(t("sf.net.dport = 443 and sf.net.sport > 1024", &r));
        assert!(t("sf.opflags = SEND", &r));
        assert!(
            t("evt.type = connect", &r),
            "Falco's lowercase names also match"
        );
        assert!(t("evt.type = CONNECT", &r));
        assert!(t("sf.proc.aname = bash and sf.proc.aname = init", &r));
        assert!(t("sf.proc.apid = 7", &r));
        // Values with commas split too (upstream): the args hold "ünï" and "cöde" parts.
        assert!(t("sf.proc.args endswith cöde", &r));
        // ...and so do literals: any part of one side equal to any part of the other.
        assert!(t("sf.proc.args = \"app.py --name=ünï,nomatch\"", &r));
        assert!(!t("sf.proc.args = \"nomatch,other\"", &r));
    }

    #[test]
    fn string_operators_with_unicode_and_case() {
        let r = ff();
        assert!(t("sf.proc.args contains ünï", &r));
        assert!(t("sf.proc.args icontains ÜNÏ", &r));
        assert!(!t("sf.proc.args contains ÜNÏ", &r));
        assert!(t("sf.proc.exe startswith /usr/", &r));
        assert!(t("sf.proc.exe endswith thon3", &r));
        assert!(t("sf.file.name = passwd and sf.file.directory = /etc", &r));
        assert!(t(
            "sf.file.is_open_read = true and sf.file.is_open_write = false",
            &r
        ));
        assert!(t("sf.file.openflags = RDONLY", &r));
    }

    #[test]
    fn numeric_comparisons_and_negative_numbers() {
        let r = ff();
        assert!(t("sf.file.fd >= 3 and sf.file.fd < 4", &r));
        assert!(t("sf.ret > -1", &r));
        assert!(t("sf.ret <= 0", &r));
        assert!(!t("sf.ret < -1", &r));
        // Upstream: strings and quoted numbers compare as 0.
        assert!(t("sf.proc.exe < 1", &r));
        assert!(t("sf.file.fd > '2' ", &r), "'2' counts as 0");
    }

    #[test]
    fn in_pmatch_lists_and_large_sets() {
        let r = ff();
        assert!(t("sf.proc.name in (bash, python3)", &r));
        assert!(t("sf.proc.name in ([sh, zsh], 'python3')", &r));
        assert!(!t("sf.proc.name in (python)", &r));
        assert!(t("sf.file.path pmatch (/etc/)", &r));
        let many: Vec<String> = (0..40).map(|i| format!("/nomatch{i}/")).collect();
        let cond = format!("sf.file.path pmatch ({}, passw)", many.join(", "));
        assert!(t(&cond, &r), "Aho-Corasick path");
        let cond = format!("sf.file.path pmatch ({})", many.join(", "));
        assert!(!t(&cond, &r));
        let set: Vec<String> = (0..100).map(|i| format!("p{i}")).collect();
        assert!(t(
            &format!("sf.proc.name in ({}, python3)", set.join(",")),
            &r
        ));
    }

    #[test]
    fn exists_and_missing_entities() {
        let mut r = ff();
        assert!(t("sf.pproc.name exists", &r));
        assert!(t("sf.container.id exists", &r));
        assert!(!t("sf.pod.id exists", &r), "no pod");
        r.process = None;
        r.ancestors = Arc::from(Vec::new());
        r.container = None;
        r.file = None;
        assert!(!t("sf.proc.name exists", &r));
        assert!(
            t("sf.proc.name = \"\"", &r),
            "empty values compare as empty strings"
        );
        assert!(!t("sf.pproc.pid exists", &r));
        assert!(t("sf.file.path = \"\" and sf.container.name = \"\"", &r));
    }

    #[test]
    fn parent_fields_and_falco_aliases() {
        let r = ff();
        assert!(t("sf.pproc.exe = /bin/bash and sf.pproc.pid = 7", &r));
        assert!(t(
            "proc.pname = bash and proc.name = python3 and user.name = alice",
            &r
        ));
        assert!(
            t("proc.tty = false", &r),
            "upstream: proc.tty reads the parent"
        );
        assert!(t("sf.proc.tty = true", &r));
        assert!(t("fd.name = passwd and fd.typechar = f", &r));
        assert!(t("sf.proc.exe != sf.pproc.exe", &r), "field against field");
        assert!(t("container.image = nginx:1", &r));
    }

    #[test]
    fn json_path_attributes() {
        let mut r = rec(Event::K8sEvent(K8sEvent {
            kind: 2,
            action: 0,
            ts: 5,
            message: r#"{"items":[{"namespace":"robot-shop","name":"web"}]}"#.into(),
        }));
        r.file = None;
        assert!(t("sf.ke.message[items.0.namespace] = robot-shop", &r));
        assert!(!t("sf.ke.message[items.1.namespace] exists", &r));
        assert!(t(
            "sf.ke.kind = K8S_PODS and sf.ke.action = K8S_COMPONENT_ADDED",
            &r
        ));
    }

    #[test]
    fn quotes_nested_and_escaped_forms() {
        let mut r = ff();
        Arc::make_mut(r.process.as_mut().unwrap()).exe = "75-system-update".into();
        assert!(t(r#"sf.proc.name startswith '"75-system-updat"'"#, &r));
    }

    #[test]
    fn strict_errors_and_lenient_warnings() {
        let r = ff();
        let e = eval_with("sf.proc.nmae = bash", &r, false).unwrap_err();
        assert!(
            e.contains("t.yaml:3:") && e.contains("unknown attribute `sf.proc.nmae`"),
            "{e}"
        );
        let e = eval_with("no_such_macro and sf.type = FF", &r, false).unwrap_err();
        assert!(e.contains("unknown macro `no_such_macro`"), "{e}");
        // Lenient: upstream's meaning (literal text / false).
        assert_eq!(eval_with("sf.proc.nmae = bash", &r, true), Ok(false));
        assert_eq!(eval_with("not no_such_macro", &r, true), Ok(true));
        let e = eval_with("sf.type = FF and (", &r, false).unwrap_err();
        assert!(e.contains("syntax error"), "{e}");
    }

    #[test]
    fn not_not_is_identity_over_many_conditions() {
        let recs = [ff(), nf()];
        let conds = [
            "sf.type = FF",
            "sf.net.ip = 127.0.0.1",
            "sf.proc.name in (bash, python3) and sf.file.fd > 2",
            "sf.opflags = READ or sf.opflags = SEND",
            "sf.pproc.name exists",
        ];
        for c in conds {
            for r in &recs {
                assert_eq!(t(c, r), t(&format!("not not ({c})"), r), "{c}");
                assert_eq!(!t(c, r), t(&format!("not ({c})"), r), "{c}");
            }
        }
    }

    #[test]
    fn macro_cycles_and_deep_chains_are_errors() {
        let mut text = String::from("- macro: a\n  condition: b\n- macro: b\n  condition: a\n");
        text.push_str("- rule: r\n  desc: d\n  condition: a\n");
        let mut lf = LoadedFiles::default();
        load_text("c.yaml", &text, &mut lf).unwrap();
        let e = compile(&lf, &actions::registry(), false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("refers to itself"), "{e}");
        let mut text = String::new();
        for i in 0..5000 {
            text.push_str(&format!("- macro: m{i}\n  condition: m{}\n", i + 1));
        }
        text.push_str(
            "- macro: m5000\n  condition: sf.type = PE\n- rule: r\n  desc: d\n  condition: m0\n",
        );
        let mut lf = LoadedFiles::default();
        load_text("deep.yaml", &text, &mut lf).unwrap();
        let e = compile(&lf, &actions::registry(), false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("nested more than 64"), "{e}");
    }

    #[test]
    fn merged_alternatives_mean_the_same() {
        let r = ff();
        for (merged, cond) in [
            (
                true,
                "sf.file.directory startswith /usr or sf.file.directory startswith /etc",
            ),
            (
                false,
                "sf.file.directory startswith /usr or sf.file.directory startswith /var",
            ),
            (
                true,
                "sf.proc.name = bash or sf.proc.name = python3 or sf.type = PE",
            ),
            (false, "sf.proc.name != python3 or sf.proc.name != python3"),
        ] {
            assert_eq!(t(cond, &r), merged, "{cond}");
        }
        let text = "- rule: t\n  desc: d\n  condition: sf.proc.name = a or sf.proc.name = b or sf.proc.name = c\n";
        let mut lf = LoadedFiles::default();
        load_text("t.yaml", text, &mut lf).unwrap();
        let set = compile(&lf, &actions::registry(), false).unwrap();
        // The condition reads only the process: it is wrapped in a memoised node.
        let inner = match &set.rules[0].pred {
            Pred::Macro(_, inner) => inner.as_ref(),
            other => other,
        };
        match inner {
            Pred::Or(v) => assert_eq!(v.len(), 1, "three leaves merged into one"),
            Pred::StrCmp(..) => {}
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn type_inference() {
        let types = |c: &str| {
            let text = format!("- rule: t\n  desc: d\n  condition: {c}\n");
            let mut lf = LoadedFiles::default();
            load_text("t.yaml", &text, &mut lf).unwrap();
            compile(&lf, &actions::registry(), false).unwrap().rules[0].types
        };
        let pe = TypeSet::of(Kind::ProcessEvent);
        let ff = TypeSet::of(Kind::FileFlow);
        assert_eq!(types("sf.type = PE"), pe);
        assert_eq!(types("sf.type = PE and sf.proc.name = x"), pe);
        assert_eq!(types("sf.type = PE or sf.type = FF"), pe.or(ff));
        assert_eq!(types("sf.type in (PE, FF)"), pe.or(ff));
        assert_eq!(types("not sf.type = PE"), pe.complement());
        assert_eq!(types("not (sf.type != PE)"), pe);
        // Process fields are empty for Kubernetes events: `= x` cannot hold there.
        assert_eq!(
            types("sf.proc.name = x"),
            TypeSet::of(Kind::K8sEvent).complement()
        );
        assert_eq!(types("sf.file.is_open_write = true"), ff);
        assert_eq!(types("sf.type = PE and sf.type = FF"), TypeSet::NONE);
    }
}
