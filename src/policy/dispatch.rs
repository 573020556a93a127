//! Value-based rule dispatch inside a bucket: rules whose condition requires a field to equal
//! one of some literals, or to contain/start/end with one, are indexed by those literals, so a
//! record evaluates only the rules its values can satisfy (plus the rules without such a
//! requirement). Large rule sets that test process names, ports or paths then cost a few hash
//! lookups and one automaton scan per record instead of one test per rule.
//!
//! Rules that require a memoised entity-only macro (`sed_write`, `possibly_webserver`: a
//! condition on the process, its ancestry or container) are grouped by that macro instead: the
//! macro is one memo lookup for most records (its value carries over between records of the
//! same process), and when it is false none of its rules is looked at. In upstream's
//! `runtimeintegrity/` set, most file rules end in `open_write`, which on a read-only flow
//! reduces to `sed_write`.
//!
//! Rules whose whole condition is entity-only (upstream's Sigma rules, which run on every
//! record type and test only the process) stand behind the set's entity gate, one memoised
//! macro ORing them ([`EntityGate`]): a record of a process none of them matches costs one
//! memo lookup instead of one per rule.
//!
//! The index only preselects: every candidate's full condition is still evaluated, so an index
//! may return extra candidates (never miss one).

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use rustc_hash::FxHashMap;

use super::attr::{self, Field, Kind2, StrGetter, Value};
use super::eval::MacroCache;
use super::ir::Pred;
use super::parser::BinOp;
use super::passes::is_entity_macro;
use crate::record::Record;

/// Fewest rules sharing a requirement for an index group to pay off.
const MIN_GROUP: usize = 4;

/// Candidate preselection for the rules of one bucket (positions in the bucket's rule list).
#[derive(Debug, Default)]
pub struct RuleIndex {
    /// Rules evaluated for every record.
    always: Vec<u32>,
    groups: Vec<Group>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Anchor {
    Any,
    Start,
    End,
}

enum Group {
    /// A memoised entity-only macro the rules require to be true.
    Gate {
        id: usize,
        pred: Pred,
        rules: Vec<u32>,
    },
    /// String field equal to one of the literals (`=`, `in`).
    StrEq {
        get: StrGetter,
        map: FxHashMap<Box<str>, Vec<u32>>,
    },
    /// Integer field equal to a literal.
    IntEq {
        field: Field,
        map: FxHashMap<i64, Vec<u32>>,
        all: Vec<u32>,
    },
    /// String field containing / starting / ending with one of the patterns.
    Substr {
        get: StrGetter,
        anchor: Anchor,
        /// ASCII case-insensitive (`icontains`): non-ASCII values select every rule.
        fold: bool,
        ac: AhoCorasick,
        /// Rules per pattern id.
        rules: Vec<Vec<u32>>,
        all: Vec<u32>,
    },
}

impl std::fmt::Debug for Group {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Group::Gate { id, rules, .. } => write!(f, "Gate(macro {id}, {} rules)", rules.len()),
            Group::StrEq { map, .. } => write!(f, "StrEq({} values)", map.len()),
            Group::IntEq { field, map, .. } => write!(f, "IntEq({field:?}, {} values)", map.len()),
            Group::Substr { anchor, rules, .. } => {
                write!(f, "Substr({anchor:?}, {} patterns)", rules.len())
            }
        }
    }
}

/// Which index group a key belongs to: (kind, field, anchor, case folding, gate macro id).
type GroupId = (u8, Field, Anchor, bool, usize);

/// What a rule is indexed by: a required leaf's field and literals.
enum Key<'a> {
    /// A required memoised macro (the `Pred::Macro` node) over entity fields only.
    Gate(usize, &'a Pred),
    StrEq(Field, StrGetter, Vec<&'a str>),
    IntEq(Field, i64),
    Substr(Field, StrGetter, Anchor, bool, Vec<&'a str>),
}

impl Key<'_> {
    fn rank(&self) -> u8 {
        match self {
            Key::Gate(..) => 4,
            Key::StrEq(..) => 3,
            Key::IntEq(..) => 2,
            Key::Substr(..) => 1,
        }
    }
    fn group_id(&self) -> GroupId {
        match self {
            Key::StrEq(f, ..) => (0, *f, Anchor::Any, false, 0),
            Key::IntEq(f, _) => (1, *f, Anchor::Any, false, 0),
            Key::Substr(f, _, a, fold, _) => (2, *f, *a, *fold, 0),
            Key::Gate(id, _) => (3, Field::Type, Anchor::Any, false, *id),
        }
    }
}

/// The indexable requirement of a leaf, if any.
fn leaf_key(p: &Pred) -> Option<Key<'_>> {
    match p {
        Pred::StrCmp(f, g, op, lit) => {
            let parts: Vec<&str> = lit.parts.iter().map(String::as_str).collect();
            match op {
                BinOp::Eq => Some(Key::StrEq(*f, *g, parts)),
                BinOp::Contains => Some(Key::Substr(*f, *g, Anchor::Any, false, parts)),
                BinOp::StartsWith => Some(Key::Substr(*f, *g, Anchor::Start, false, parts)),
                BinOp::EndsWith => Some(Key::Substr(*f, *g, Anchor::End, false, parts)),
                BinOp::IContains if lit.lower.iter().all(|l| l.is_ascii()) => Some(Key::Substr(
                    *f,
                    *g,
                    Anchor::Any,
                    true,
                    lit.lower.iter().map(String::as_str).collect(),
                )),
                _ => None,
            }
        }
        Pred::StrIn(f, g, set) => {
            Some(Key::StrEq(*f, *g, set.iter().map(String::as_str).collect()))
        }
        Pred::StrPmatch(f, g, pats, _) => Some(Key::Substr(
            *f,
            *g,
            Anchor::Any,
            false,
            pats.iter().map(String::as_str).collect(),
        )),
        Pred::Cmp(r, BinOp::Eq, lit) if r.path.is_none() && r.field.kind() == Kind2::Int => {
            lit.canonical_int.map(|i| Key::IntEq(r.field, i))
        }
        _ => None,
    }
}

/// The best indexable leaf among the conjuncts `p` requires (through `and` and macros).
fn required_key(p: &Pred) -> Option<Key<'_>> {
    match p {
        // A negated macro (`not privileged_execution`) is usually true: not worth a gate.
        Pred::Macro(id, inner) if !matches!(**inner, Pred::Not(_)) && is_entity_macro(p) => {
            Some(Key::Gate(*id, p))
        }
        Pred::Macro(_, inner) => required_key(inner),
        Pred::And(v) => v
            .iter()
            .filter_map(required_key)
            .fold(None, |best: Option<Key>, k| match best {
                Some(b) if b.rank() >= k.rank() => Some(b),
                _ => Some(k),
            }),
        leaf => leaf_key(leaf),
    }
}

impl RuleIndex {
    /// Indexes `rules` (residual conditions, in bucket order); the set's entity gate, when
    /// it has one, stands before the rules it covers (a residual is the rule's condition
    /// specialised for the bucket's key, so it is false whenever the gate is).
    pub fn build(rules: &[(usize, Pred)], gate: Option<&EntityGate>) -> RuleIndex {
        let keys: Vec<Option<Key>> = rules
            .iter()
            .map(|(i, p)| match gate {
                Some(g) if g.member.get(*i) == Some(&true) => Some(Key::Gate(g.slot, &g.pred)),
                _ => required_key(p).filter(|k| !has_empty(k)),
            })
            .collect();
        let mut sizes: FxHashMap<GroupId, usize> = FxHashMap::default();
        for k in keys.iter().flatten() {
            *sizes.entry(k.group_id()).or_default() += 1;
        }
        let mut out = RuleIndex::default();
        let mut order: Vec<GroupId> = Vec::new();
        let mut members: FxHashMap<GroupId, Vec<(u32, &Key)>> = FxHashMap::default();
        for (pos, k) in keys.iter().enumerate() {
            let pos = pos as u32;
            match k {
                Some(k) if sizes[&k.group_id()] >= MIN_GROUP => {
                    let id = k.group_id();
                    if !members.contains_key(&id) {
                        order.push(id);
                    }
                    members.entry(id).or_default().push((pos, k));
                }
                _ => out.always.push(pos),
            }
        }
        for id in order {
            let list = &members[&id];
            if let Some(g) = Group::build(list) {
                out.groups.push(g);
            } else {
                out.always.extend(list.iter().map(|(p, _)| *p));
            }
        }
        out.always.sort_unstable();
        out
    }

    /// Whether the index preselects anything (else every rule is evaluated).
    pub fn is_active(&self) -> bool {
        !self.groups.is_empty()
    }

    /// Positions of the rules to evaluate for `rec`, sorted, without duplicates (`memo`: the
    /// record's macro values, which gates read and fill).
    pub fn candidates<C: MacroCache>(&self, rec: &Record, memo: &mut C, out: &mut Vec<u32>) {
        out.clear();
        out.extend_from_slice(&self.always);
        for g in &self.groups {
            g.candidates(rec, memo, out);
        }
        out.sort_unstable();
        out.dedup();
    }
}

fn has_empty(k: &Key) -> bool {
    match k {
        Key::Gate(..) | Key::StrEq(..) | Key::IntEq(..) => false,
        Key::Substr(.., pats) => pats.iter().any(|p| p.is_empty()),
    }
}

impl Group {
    fn build(list: &[(u32, &Key)]) -> Option<Group> {
        match list.first()?.1 {
            Key::Gate(id, pred) => Some(Group::Gate {
                id: *id,
                pred: (*pred).clone(),
                rules: list.iter().map(|(p, _)| *p).collect(),
            }),
            Key::StrEq(_, get, _) => {
                let mut map: FxHashMap<Box<str>, Vec<u32>> = FxHashMap::default();
                for (pos, k) in list {
                    if let Key::StrEq(_, _, vals) = k {
                        for v in vals {
                            let e = map.entry((*v).into()).or_default();
                            if e.last() != Some(pos) {
                                e.push(*pos);
                            }
                        }
                    }
                }
                Some(Group::StrEq { get: *get, map })
            }
            Key::IntEq(field, _) => {
                let mut map: FxHashMap<i64, Vec<u32>> = FxHashMap::default();
                for (pos, k) in list {
                    if let Key::IntEq(_, i) = k {
                        map.entry(*i).or_default().push(*pos);
                    }
                }
                Some(Group::IntEq {
                    field: *field,
                    map,
                    all: list.iter().map(|(p, _)| *p).collect(),
                })
            }
            Key::Substr(_, get, anchor, fold, _) => {
                let mut ids: FxHashMap<&str, usize> = FxHashMap::default();
                let mut pats: Vec<&str> = Vec::new();
                let mut rules: Vec<Vec<u32>> = Vec::new();
                for (pos, k) in list {
                    if let Key::Substr(.., vals) = k {
                        for v in vals {
                            let id = *ids.entry(v).or_insert_with(|| {
                                pats.push(v);
                                rules.push(Vec::new());
                                pats.len() - 1
                            });
                            if rules[id].last() != Some(pos) {
                                rules[id].push(*pos);
                            }
                        }
                    }
                }
                let ac = AhoCorasickBuilder::new()
                    .match_kind(MatchKind::Standard)
                    .ascii_case_insensitive(*fold)
                    .build(&pats)
                    .ok()?;
                Some(Group::Substr {
                    get: *get,
                    anchor: *anchor,
                    fold: *fold,
                    ac,
                    rules,
                    all: list.iter().map(|(p, _)| *p).collect(),
                })
            }
        }
    }

    fn candidates<C: MacroCache>(&self, rec: &Record, memo: &mut C, out: &mut Vec<u32>) {
        match self {
            Group::Gate { pred, rules, .. } => {
                if pred.eval_memo(rec, memo) {
                    out.extend_from_slice(rules);
                }
            }
            Group::StrEq { get, map } => {
                let v = get(rec);
                if v.contains(',') {
                    for part in v.split(',') {
                        if let Some(r) = map.get(part) {
                            out.extend_from_slice(r);
                        }
                    }
                } else if let Some(r) = map.get(v) {
                    out.extend_from_slice(r);
                }
            }
            Group::IntEq { field, map, all } => match attr::value(*field, rec) {
                Value::Int(i) => {
                    if let Some(r) = map.get(&i) {
                        out.extend_from_slice(r);
                    }
                }
                _ => out.extend_from_slice(all),
            },
            Group::Substr {
                get,
                anchor,
                fold,
                ac,
                rules,
                all,
            } => {
                let v = get(rec);
                if *fold && !v.is_ascii() {
                    out.extend_from_slice(all);
                    return;
                }
                let b = v.as_bytes();
                for m in ac.find_overlapping_iter(v) {
                    let ok = match anchor {
                        Anchor::Any => true,
                        Anchor::Start => m.start() == 0 || b[m.start() - 1] == b',',
                        Anchor::End => m.end() == b.len() || b[m.end()] == b',',
                    };
                    if ok {
                        out.extend_from_slice(&rules[m.pattern().as_usize()]);
                    }
                }
            }
        }
    }
}

/// The gate over entity-only rules: upstream's Sigma rules (their logsource is ignored, so
/// each applies to every record) test only the process, and without the gate every record
/// paid one memo lookup per rule. With it, a record of a process none of them matches pays
/// one. Built when at least [`EntityGate::MIN_RULES`] rules qualify.
#[derive(Debug, Clone)]
pub struct EntityGate {
    /// The memo slot of `pred`.
    pub slot: usize,
    /// `Pred::Macro(slot, Or(conditions))`.
    pub pred: Pred,
    /// By rule index: whether the rule is behind the gate.
    pub member: Vec<bool>,
}

impl EntityGate {
    pub const MIN_RULES: usize = 4;
}

/// The filters and rules of a policy set specialised for one dispatch key: what is left to
/// evaluate for a record with that key (rules that cannot match are gone).
#[derive(Debug)]
pub struct Bucket {
    /// A filter is true for every record with this key.
    pub drop: bool,
    pub filters: Vec<Pred>,
    /// (rule index, residual condition), in file order.
    pub rules: Vec<(usize, Pred)>,
    /// Value-based preselection of `rules`.
    pub index: RuleIndex,
}

/// The dispatch key of a record: type bit (with its op-flag naming class in the top bit),
/// op flags, open flags (file flows).
pub fn dispatch_key(bit: u8, rec: &Record) -> (u8, i32, i32) {
    let open = match &rec.event {
        crate::record::Event::FileFlow(f) => f.open_flags,
        _ => 0,
    };
    (
        bit | (u8::from(rec.op_names_net) << 7),
        rec.event.op_flags(),
        open,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::attr::{blank_record, str_getter};
    use crate::policy::eval::MacroValues;
    use crate::sysflow::model::Kind;
    use std::sync::Arc;

    use crate::policy::attr::process_record as proc_rec;

    #[test]
    fn dispatch_keys_hold_the_type_bit_op_flags_and_open_flags() {
        let mut r = blank_record(Kind::FileFlow);
        if let crate::record::Event::FileFlow(f) = &mut r.event {
            f.open_flags = 0o101;
        }
        let k = dispatch_key(3, &r);
        assert_eq!(k.0 & 0x7f, 3);
        assert_eq!(k.2, 0o101);
        assert_eq!(dispatch_key(3, &blank_record(Kind::ProcessEvent)).2, 0);
    }

    #[test]
    fn a_value_index_selects_the_rules_a_record_can_match() {
        let g = str_getter(Field::ProcExe).unwrap();
        let set = |v: &[&str]| {
            Arc::new(
                v.iter()
                    .map(|s| s.to_string())
                    .collect::<rustc_hash::FxHashSet<String>>(),
            )
        };
        let rules: Vec<(usize, Pred)> = ["/bin/sh", "/bin/bash", "/usr/bin/python3", "/bin/dash"]
            .iter()
            .enumerate()
            .map(|(i, exe)| (i, Pred::StrIn(Field::ProcExe, g, set(&[exe]))))
            .chain([(4, Pred::Const(true))])
            .collect();
        let idx = RuleIndex::build(&rules, None);
        assert!(idx.is_active());
        let mut out = Vec::new();
        idx.candidates(
            &proc_rec("/bin/bash"),
            &mut MacroValues::default(),
            &mut out,
        );
        assert_eq!(
            out,
            [1, 4],
            "the matching value's rule and the unindexed one"
        );
        idx.candidates(
            &proc_rec("/sbin/init"),
            &mut MacroValues::default(),
            &mut out,
        );
        assert_eq!(out, [4]);
    }
}
