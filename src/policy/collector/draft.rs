//! A rule as its entries define it (a definition, then Falco's append/override/enable
//! entries), and how a draft becomes a compiled rule at its point of the load.

use std::sync::Arc;

use super::exceptions::exceptions_ast;
use crate::policy::actions::ActionRegistry;
use crate::policy::compiler::{Compiler, Cond};
use crate::policy::diag::Code;
use crate::policy::ir::TypeSet;
use crate::policy::loader::{Merge, RawException, RawRule};
use crate::policy::passes::{per_type, wrap_entity_parts};
use crate::policy::set::{priority, Rule};
use crate::policy::source::{CondText, PolicyError, Pos};

/// A rule as the entries so far define it.
#[derive(Clone)]
pub(super) struct Draft {
    pub(super) name: String,
    desc: String,
    cond: Option<Cond>,
    output: String,
    priority: Option<String>,
    /// A priority given as a number (Sigma levels).
    priority_num: Option<i64>,
    tags: Vec<String>,
    prefilter: Vec<String>,
    enabled: bool,
    actions: Vec<String>,
    exceptions: Vec<RawException>,
    pos: Pos,
}

impl Draft {
    pub(super) fn new(r: &RawRule) -> Draft {
        Draft {
            name: r.name.clone(),
            desc: r.desc.clone().unwrap_or_default(),
            cond: r.condition.clone().map(Cond::Text),
            output: r.output.clone().unwrap_or_default(),
            priority: r.priority.clone(),
            priority_num: None,
            tags: r.tags.clone().unwrap_or_default(),
            prefilter: r.prefilter.clone().unwrap_or_default(),
            enabled: r.enabled.unwrap_or(true),
            actions: r.actions.clone().unwrap_or_default(),
            exceptions: r.exceptions.clone().unwrap_or_default(),
            pos: r.pos.clone(),
        }
    }

    pub(super) fn ast(s: &crate::policy::loader::AstRule) -> Draft {
        Draft {
            name: s.name.clone(),
            desc: s.desc.clone(),
            cond: Some(Cond::Ast(s.condition.clone(), s.at.clone())),
            output: String::new(),
            priority: None,
            priority_num: Some(s.priority),
            tags: s.tags.clone(),
            prefilter: Vec::new(),
            enabled: true,
            actions: Vec::new(),
            exceptions: Vec::new(),
            pos: s.pos.clone(),
        }
    }

    /// Applies an append/override entry.
    pub(super) fn change(&mut self, r: &RawRule) -> Result<(), PolicyError> {
        if let Some(c) = &r.condition {
            self.cond = Some(match (r.merge_of("condition"), self.cond.take()) {
                (Merge::Append, Some(prev)) => prev.append(c)?,
                _ => Cond::Text(c.clone()),
            });
        }
        let text = |mine: &mut String, new: &Option<String>, key: &str| {
            if let Some(n) = new {
                match r.merge_of(key) {
                    Merge::Append => {
                        if !mine.is_empty() {
                            mine.push(' ');
                        }
                        mine.push_str(n);
                    }
                    _ => *mine = n.clone(),
                }
            }
        };
        text(&mut self.desc, &r.desc, "desc");
        text(&mut self.output, &r.output, "output");
        if let Some(p) = &r.priority {
            self.priority = Some(p.clone());
        }
        if let Some(t) = &r.tags {
            match r.merge_of("tags") {
                Merge::Append => self.tags.extend(t.iter().cloned()),
                _ => self.tags = t.clone(),
            }
        }
        if let Some(e) = r.enabled {
            self.enabled = e;
        }
        if let Some(a) = &r.actions {
            self.actions.extend(a.iter().cloned());
        }
        if let Some(excs) = &r.exceptions {
            match r.merge_of("exceptions") {
                Merge::Append => {
                    for e in excs {
                        match self.exceptions.iter_mut().find(|x| x.name == e.name) {
                            Some(x) => x.values.extend(e.values.iter().cloned()),
                            None => self.exceptions.push(e.clone()),
                        }
                    }
                }
                _ => self.exceptions = excs.clone(),
            }
        }
        Ok(())
    }
}

/// Compiles a draft at this point of the load. `old` (the rule before a change) gives its
/// match counter, so a changed rule keeps counting where it was.
pub(super) fn build_rule(
    c: &mut Compiler<'_>,
    d: &Draft,
    actions: &ActionRegistry,
    old: Option<Rule>,
) -> Option<Rule> {
    let Some(cond) = &d.cond else {
        c.diags.error(PolicyError {
            pos: d.pos.clone(),
            message: format!("rule `{}` has no condition", d.name),
            snippet: String::new(),
        });
        return None;
    };
    let mut cond = cond.clone();
    match exceptions_ast(&d.exceptions) {
        Ok(Some(ast)) => {
            let text = CondText {
                text: String::new(),
                pos: d.pos.clone(),
                byte_offset: None,
                source: Arc::from(""),
            };
            cond = Cond::And(vec![cond, Cond::Ast(Arc::new(ast), text)]);
        }
        Ok(None) => {}
        Err(e) => {
            c.diags.error(e);
            return None;
        }
    }
    let (pred, unsupported) = match c.compile_top(&cond) {
        Ok(x) => x,
        Err(e) => {
            c.diags.error(e);
            return None;
        }
    };
    let mut enabled = d.enabled;
    if let Some((field, pos)) = unsupported {
        c.diags.warn(
            Code::UnsupportedField,
            pos,
            format!(
                "rule `{}` disabled: it needs the field `{field}`, which SysFlow records do not carry",
                d.name
            ),
            "",
        );
        enabled = false;
    }
    let prio = match &d.priority {
        _ if d.priority_num.is_some() => d.priority_num.unwrap_or(1),
        Some(p) => priority(p).unwrap_or_else(|| {
            c.diags.warn(
                Code::UnknownPriority,
                d.pos.clone(),
                format!("rule `{}`: unknown priority `{p}`; using low", d.name),
                "",
            );
            1
        }),
        None => 1,
    };
    let mut acts = Vec::new();
    for a in &d.actions {
        match actions.get(a) {
            Some(x) => acts.push(x.clone()),
            None => c.diags.warn(
                Code::UnknownAction,
                d.pos.clone(),
                format!(
                    "rule `{}`: unknown action identifier `{a}`; ignored (upstream's behaviour)",
                    d.name
                ),
                "",
            ),
        }
    }
    let mut prefilter = TypeSet::ALL;
    if !d.prefilter.is_empty() {
        let mut pf = TypeSet::NONE;
        for t in &d.prefilter {
            match TypeSet::from_short(t) {
                Some(s) => pf = pf.or(s),
                None => {
                    c.diags.error(PolicyError {
                        pos: d.pos.clone(),
                        message: format!(
                            "rule `{}`: unknown prefilter type `{t}` (expected PE PF FE FF NE NF KE)",
                            d.name
                        ),
                        snippet: String::new(),
                    });
                    return None;
                }
            }
        }
        prefilter = pf;
    }
    let pred = wrap_entity_parts(pred, &mut c.next_macro_id, false);
    let types = pred.possible_types().and(prefilter);
    if types == TypeSet::NONE && enabled {
        c.diags.warn(
            Code::NeverMatches,
            d.pos.clone(),
            format!(
                "rule `{}` can never match: no record type satisfies its condition and prefilter",
                d.name
            ),
            "",
        );
    }
    Some(Rule {
        name: Arc::from(d.name.as_str()),
        desc: Arc::from(d.desc.trim()),
        priority: prio,
        tags: Arc::from(d.tags.clone()),
        actions: acts,
        per_type: per_type(&pred),
        pred,
        types,
        prefilter,
        enabled,
        pos: d.pos.clone(),
        matches: old.map(|o| o.matches).unwrap_or_default(),
        eval_nanos: Default::default(),
    })
}
