//! The collector: walks the loaded files in upstream's order and builds the policy set.
//!
//! Resolution follows upstream's compiler (two passes per file, one compiler for all files):
//! before a file's rules run, every list and macro the file defines takes its **last**
//! definition in that file; then the file is walked in order, each definition taking effect
//! where it stands, and each rule or filter is compiled **where it stands** against the lists
//! and macros in force. So a rule sees the nearest earlier definition in its file, or, when
//! the name is only defined after it in the file, the file's last one, or else what earlier
//! files left. Macros and nested lists expand at the rule, not at their definition.
//! A rule defined twice is two rules (both run), as upstream; Falco's `append`, `override`
//! and disable-only entries change the nearest earlier rule of that name.

mod draft;
mod exceptions;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::actions::ActionRegistry;
use super::compiler::{Compiler, Cond, ListDef, MacroDef};
use super::diag::{Code, Diags};
use super::ir::Pred;
use super::loader::{Entry, LoadedFiles, Merge};
use super::passes::{is_entity_macro, mark_record_macros, per_type, wrap_entity_parts};
use super::set::{Counts, EntityGate, Filter, PolicySet, Rule, NEXT_SET_ID};
use super::source::{PolicyError, Pos};
use draft::{build_rule, Draft};

/// Compiles what the loader read into a policy set. Problems go to `diags`; the set holds
/// every rule that compiled.
pub fn compile(loaded: &LoadedFiles, actions: &ActionRegistry, diags: &mut Diags) -> PolicySet {
    compile_with(loaded, actions, diags, CompileOptions::default())
}

/// How conditions compile.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CompileOptions {
    /// A rule or filter that needs a field SysFlow records do not carry is disabled (with a
    /// warning) instead of comparing the name as text.
    pub disable_unsupported: bool,
    /// Fields read as upstream's engine reads them (doubled flow counters, slot aliases, the
    /// op-flag name cache): `quirks: upstream`.
    pub quirks: bool,
}

/// As [`compile`], with `opts`.
pub fn compile_with(
    loaded: &LoadedFiles,
    actions: &ActionRegistry,
    diags: &mut Diags,
    opts: CompileOptions,
) -> PolicySet {
    let mut counts = Counts::default();
    let mut c = Compiler::new(diags);
    c.disable_unsupported = opts.disable_unsupported;
    c.quirks = opts.quirks;
    let mut drafts: Vec<Draft> = Vec::new();
    let mut rules: Vec<Option<Rule>> = Vec::new();
    let mut filters = Vec::new();
    let mut defined_macros: Vec<(String, Pos)> = Vec::new();
    let mut defined_lists: Vec<(String, Pos)> = Vec::new();
    let mut rule_names: HashMap<String, Pos> = HashMap::new();

    for file in &loaded.files {
        // Pass 1: each name the file defines takes its last definition in the file.
        let mut before_lists: HashMap<String, Option<ListDef>> = HashMap::new();
        let mut before_macros: HashMap<String, Option<MacroDef>> = HashMap::new();
        for e in &file.entries {
            match e {
                Entry::List(l) => {
                    before_lists
                        .entry(l.name.clone())
                        .or_insert_with(|| c.lists.get(&l.name).cloned());
                    let prev = c.lists.get(&l.name).cloned();
                    c.set_list(&l.name, Some(list_def(prev, l)));
                }
                Entry::Macro(m) => {
                    before_macros
                        .entry(m.name.clone())
                        .or_insert_with(|| c.macros.get(&m.name).cloned());
                    let prev = c.macros.get(&m.name).cloned();
                    match macro_def(prev, m) {
                        Ok(d) => c.set_macro(&m.name, Some(d)),
                        Err(e) => c.diags.error(e),
                    }
                }
                _ => {}
            }
        }
        // Pass 2: in file order.
        let mut seen: HashSet<String> = HashSet::new();
        for e in &file.entries {
            match e {
                Entry::List(l) => {
                    counts.lists += 1;
                    defined_lists.push((l.name.clone(), l.pos.clone()));
                    let prev = if seen.insert(format!("l:{}", l.name)) {
                        before_lists.get(&l.name).cloned().flatten()
                    } else {
                        c.lists.get(&l.name).cloned()
                    };
                    c.set_list(&l.name, Some(list_def(prev, l)));
                }
                Entry::Macro(m) => {
                    counts.macros += 1;
                    defined_macros.push((m.name.clone(), m.pos.clone()));
                    let prev = if seen.insert(format!("m:{}", m.name)) {
                        before_macros.get(&m.name).cloned().flatten()
                    } else {
                        c.macros.get(&m.name).cloned()
                    };
                    // Errors were reported in pass 1.
                    if let Ok(d) = macro_def(prev, m) {
                        c.set_macro(&m.name, Some(d));
                    }
                }
                Entry::Rule(r) => {
                    let earlier = drafts.iter().rposition(|d| d.name == r.name);
                    if r.is_change() || r.is_enable_only() {
                        let Some(i) = earlier else {
                            let what = if r.is_enable_only() {
                                "enables or disables"
                            } else {
                                "changes"
                            };
                            let snippet = String::new();
                            c.diags.warn(
                                Code::NoSuchEntry,
                                r.pos.clone(),
                                format!("entry {what} rule `{}`, which is not defined before it; ignored", r.name),
                                &snippet,
                            );
                            continue;
                        };
                        if let Err(e) = drafts[i].change(r) {
                            c.diags.error(e);
                            continue;
                        }
                        rules[i] = build_rule(&mut c, &drafts[i], actions, rules[i].take());
                        continue;
                    }
                    counts.rules += 1;
                    if let Some(first) = rule_names.get(&r.name) {
                        let snippet = String::new();
                        c.diags.warn(
                            Code::DuplicateRule,
                            r.pos.clone(),
                            format!("rule `{}` is also defined at {first}; both rules run (upstream's behaviour)", r.name),
                            &snippet,
                        );
                    } else {
                        rule_names.insert(r.name.clone(), r.pos.clone());
                    }
                    let d = Draft::new(r);
                    let rule = build_rule(&mut c, &d, actions, None);
                    drafts.push(d);
                    rules.push(rule);
                }
                Entry::Ast(r) => {
                    counts.rules += 1;
                    let d = Draft::ast(r);
                    let rule = build_rule(&mut c, &d, actions, None);
                    drafts.push(d);
                    rules.push(rule);
                }
                Entry::Filter(f) => {
                    counts.filters += 1;
                    if !f.enabled {
                        continue;
                    }
                    match c.compile_top(&Cond::Text(f.condition.clone())) {
                        Ok((pred, unsupported)) => {
                            if let Some((field, pos)) = unsupported {
                                c.diags.warn(
                                    Code::UnsupportedField,
                                    pos,
                                    format!("filter `{}` disabled: it needs the field `{field}`, which SysFlow records do not carry", f.name),
                                    "",
                                );
                                continue;
                            }
                            let pred = wrap_entity_parts(pred, &mut c.next_macro_id, false);
                            filters.push(Filter {
                                name: f.name.clone(),
                                per_type: per_type(&pred),
                                types: pred.possible_types(),
                                pred,
                            });
                        }
                        Err(e) => c.diags.error(e),
                    }
                }
            }
        }
    }
    // Lints: names defined and never used.
    let mut warned = HashSet::new();
    for (name, pos) in &defined_macros {
        if !c.used_macros.contains(name) && warned.insert(format!("m:{name}")) {
            c.diags.warn(
                Code::UnusedMacro,
                pos.clone(),
                format!("macro `{name}` is never used"),
                "",
            );
        }
    }
    for (name, pos) in &defined_lists {
        if !c.used_lists.contains(name) && warned.insert(format!("l:{name}")) {
            c.diags.warn(
                Code::UnusedList,
                pos.clone(),
                format!("list `{name}` is never used"),
                "",
            );
        }
    }
    let next_macro_id = c.next_macro_id;
    drop(c);
    dedup_warnings(diags);
    let rules: Vec<Rule> = rules.into_iter().flatten().collect();
    finish(rules, filters, counts, next_macro_id, diags)
}

/// A macro recompiled after a list changed warns again about the same place: one warning
/// per place and text.
fn dedup_warnings(diags: &mut Diags) {
    let mut seen = HashSet::new();
    diags
        .warnings
        .retain(|w| seen.insert((w.code, w.pos.clone(), w.message.clone())));
}

fn list_def(prev: Option<ListDef>, l: &super::loader::RawList) -> ListDef {
    match (l.merge, prev) {
        (Merge::Append, Some(mut p)) => {
            p.items.extend(l.items.iter().cloned());
            p.version.push(l.pos.clone());
            p
        }
        _ => ListDef {
            items: l.items.clone(),
            version: vec![l.pos.clone()],
        },
    }
}

fn macro_def(prev: Option<MacroDef>, m: &super::loader::RawMacro) -> Result<MacroDef, PolicyError> {
    Ok(match (m.merge, prev) {
        (Merge::Append, Some(mut p)) => {
            p.cond = p.cond.append(&m.condition)?;
            p.version.push(m.pos.clone());
            p
        }
        _ => MacroDef {
            cond: Cond::Text(m.condition.clone()),
            version: vec![m.pos.clone()],
        },
    })
}

fn finish(
    rules: Vec<Rule>,
    filters: Vec<Filter>,
    counts: Counts,
    macro_slots: usize,
    diags: &mut Diags,
) -> PolicySet {
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
    let mut per_record = vec![false; macro_slots];
    for p in rules
        .iter()
        .map(|r| &r.pred)
        .chain(filters.iter().map(|f| &f.pred))
    {
        mark_record_macros(p, &mut per_record);
    }
    let record_macros = (0..macro_slots).filter(|i| per_record[*i]).collect();
    let gated: Vec<bool> = rules
        .iter()
        .map(|r| r.enabled && is_entity_macro(&r.pred))
        .collect();
    let mut macro_slots = macro_slots;
    let entity_gate = (gated.iter().filter(|g| **g).count() >= EntityGate::MIN_RULES).then(|| {
        let preds: Vec<Pred> = rules
            .iter()
            .zip(&gated)
            .filter(|(_, g)| **g)
            .map(|(r, _)| r.pred.clone())
            .collect();
        let slot = macro_slots;
        macro_slots += 1;
        EntityGate {
            slot,
            pred: Pred::Macro(slot, Arc::new(Pred::Or(preds))),
            member: gated,
        }
    });
    PolicySet {
        rules,
        filters,
        index,
        counts,
        warnings: diags.warnings.clone(),
        macro_slots,
        record_macros,
        entity_gate,
        id: NEXT_SET_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
    }
}
