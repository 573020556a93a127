//! Optimisation passes over the IR: cheapest tests first, same-field alternatives merged,
//! entity-only parts memoised, comparisons specialised per field type and per record type.

use std::sync::Arc;

use super::attr::{self, Field, FieldRef, Kind2};
use super::ir::{Pred, TypeSet, TYPES};
use super::parser::BinOp;
use crate::record::Record;
use crate::sysflow::model::Kind;

/// Rough evaluation cost, to test cheap conditions first (`and`/`or` are commutative for
/// these side-effect-free predicates, so the result is the same).
pub(crate) fn cost(p: &Pred) -> u32 {
    match p {
        Pred::Const(_) | Pred::Type(_) | Pred::OpMask(..) | Pred::OpMaskNames(..) => 1,
        Pred::StrCmp(..) | Pred::StrIn(..) => 3,
        Pred::StrPmatch(..) => 5,
        Pred::Not(x) => cost(x),
        Pred::Macro(_, x) => cost(x),
        Pred::And(v) | Pred::Or(v) => v.iter().map(cost).sum::<u32>().saturating_add(1),
        Pred::Exists(f) | Pred::Cmp(f, _, _) | Pred::In(f, _) | Pred::Pmatch(f, _, _) => {
            let base = match f.field.kind() {
                Kind2::Int => 2,
                Kind2::Str => 4,
                Kind2::Multi => 8,
            };
            base + if f.path.is_some() { 20 } else { 0 }
        }
        Pred::FieldCmp(..) => 10,
        Pred::Match(..) => 12,
    }
}

/// Merges `f op a or f op b` into one leaf `f op (a, b)` for the positive string operators:
/// a literal's parts are already "any of", so the meaning is the same and the field is read
/// once (e.g. seven `sf.file.directory startswith` alternatives in upstream's filters).
pub(crate) fn merge_or(v: Vec<Pred>) -> Vec<Pred> {
    let mut out: Vec<Pred> = Vec::with_capacity(v.len());
    for p in v {
        if let Pred::StrCmp(f, g, op, lit) = &p {
            if *op != BinOp::Ne {
                if let Some(Pred::StrCmp(_, _, _, prev)) = out
                    .iter_mut()
                    .find(|q| matches!(q, Pred::StrCmp(f2, _, op2, _) if f2 == f && op2 == op))
                {
                    prev.parts.extend(lit.parts.iter().cloned());
                    prev.lower.extend(lit.lower.iter().cloned());
                    prev.text = format!("{},{}", prev.text, lit.text);
                    prev.canonical_int = None;
                    let _ = g;
                    continue;
                }
            }
        }
        out.push(p);
    }
    out
}

/// Whether `p` reads only entity fields (see [`attr::entity_field`]), so its value is the
/// same for every record of the same process, ancestry, container and pod.
pub(crate) fn entity_only(p: &Pred) -> bool {
    match p {
        Pred::Const(_) => true,
        Pred::And(v) | Pred::Or(v) => v.iter().all(entity_only),
        Pred::Not(x) => entity_only(x),
        Pred::Macro(_, x) => entity_only(x),
        leaf => leaf.leaf_fields().iter().all(|f| {
            attr::entity_field(*f)
                && !matches!(
                    leaf,
                    Pred::Type(_) | Pred::OpMask(..) | Pred::OpMaskNames(..)
                )
        }),
    }
}

/// Wraps the parts of a condition that read only entity fields in memoised nodes, so they
/// are evaluated once per process (their value carries over between consecutive records of
/// the same entities) instead of once per record. Bit tests stay as they are (cheaper than
/// the memo).
pub(crate) fn wrap_entity_parts(p: Pred, next_id: &mut usize, as_macro: bool) -> Pred {
    fn wrap(p: Pred, next_id: &mut usize) -> Pred {
        if matches!(p, Pred::Macro(..) | Pred::Const(_)) || cost(&p) < 3 {
            return p;
        }
        let id = *next_id;
        *next_id += 1;
        Pred::Macro(id, Arc::new(p))
    }
    fn go(p: Pred, next_id: &mut usize) -> Pred {
        let is_and = matches!(p, Pred::And(_));
        match p {
            Pred::And(v) | Pred::Or(v) => {
                let (ent, rest): (Vec<Pred>, Vec<Pred>) = v
                    .into_iter()
                    .partition(|x| entity_only(x) && !matches!(x, Pred::Const(_)));
                let mut out: Vec<Pred> = rest.into_iter().map(|x| go(x, next_id)).collect();
                if !ent.is_empty() {
                    let group = if ent.len() == 1 {
                        ent.into_iter().next().unwrap_or(Pred::Const(is_and))
                    } else if is_and {
                        Pred::And(ent)
                    } else {
                        Pred::Or(ent)
                    };
                    out.push(wrap(group, next_id));
                }
                if is_and {
                    Pred::And(cheapest_first(out))
                } else {
                    Pred::Or(cheapest_first(out))
                }
            }
            Pred::Not(x) => Pred::Not(Box::new(go(*x, next_id))),
            leaf => leaf,
        }
    }
    if entity_only(&p) {
        if as_macro {
            p
        } else {
            wrap(p, next_id)
        }
    } else {
        go(p, next_id)
    }
}

/// Marks the memo slots of `p` whose value depends on the event (reset for every record).
pub(crate) fn mark_record_macros(p: &Pred, per_record: &mut [bool]) {
    match p {
        Pred::And(v) | Pred::Or(v) => v.iter().for_each(|x| mark_record_macros(x, per_record)),
        Pred::Not(x) => mark_record_macros(x, per_record),
        Pred::Macro(id, x) => {
            if !entity_only(x) {
                if let Some(slot) = per_record.get_mut(*id) {
                    *slot = true;
                }
            }
            mark_record_macros(x, per_record);
        }
        _ => {}
    }
}

/// Whether `p` is a memoised macro that reads only entity fields: its value carries over
/// between records of the same process, so evaluating it is usually one memo lookup.
pub(crate) fn is_entity_macro(p: &Pred) -> bool {
    matches!(p, Pred::Macro(_, inner) if entity_only(inner))
}

/// Orders the operands of every `and`/`or` in a bucket's residual condition so that memoised
/// entity-only macros come first: after specialisation for a dispatch key, a rule such as
/// `open_write and bin_dir` on a read-only flow is `bin_dir and sed_write`, and `sed_write` is
/// one memo lookup for most records (its value carries over between records of the same
/// process) and false for nearly all, while `bin_dir` reads the file path every time. The
/// operands are side-effect free, so the order changes the cost, not the result.
pub(crate) fn memo_first(p: Pred) -> Pred {
    fn rank(p: &Pred) -> u32 {
        match p {
            Pred::Not(x) if is_entity_macro(x) => 0,
            p if is_entity_macro(p) => 0,
            other => cost(other).saturating_add(1),
        }
    }
    fn ordered(v: Vec<Pred>) -> Vec<Pred> {
        let mut v: Vec<Pred> = v.into_iter().map(memo_first).collect();
        v.sort_by_cached_key(rank);
        v
    }
    match p {
        Pred::And(v) => Pred::And(ordered(v)),
        Pred::Or(v) => Pred::Or(ordered(v)),
        Pred::Not(x) => Pred::Not(Box::new(memo_first(*x))),
        Pred::Macro(id, inner) => Pred::Macro(id, Arc::new(memo_first((*inner).clone()))),
        leaf => leaf,
    }
}

pub(crate) fn cheapest_first(mut v: Vec<Pred>) -> Vec<Pred> {
    // Cached: `cost` walks macro expansions, so it is computed once per operand.
    v.sort_by_cached_key(cost);
    v
}

/// Replaces `sf.type`/`sf.opflags`/`evt.type` equality and `in` leaves by bit tests with the
/// same meaning (names compared exactly, as the string comparison would).
pub(crate) fn specialise(p: Pred) -> Pred {
    let p = specialise_bits(p);
    match p {
        Pred::Cmp(FieldRef { field, path: None }, op, lit)
            if !matches!(op, BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge) =>
        {
            match attr::str_getter(field) {
                Some(g) => Pred::StrCmp(field, g, op, lit),
                None => Pred::Cmp(FieldRef { field, path: None }, op, lit),
            }
        }
        Pred::In(FieldRef { field, path: None }, set) => match attr::str_getter(field) {
            Some(g) => Pred::StrIn(field, g, set),
            None => Pred::In(FieldRef { field, path: None }, set),
        },
        Pred::Pmatch(FieldRef { field, path: None }, pats, ac) => match attr::str_getter(field) {
            Some(g) => Pred::StrPmatch(field, g, pats, ac),
            None => Pred::Pmatch(FieldRef { field, path: None }, pats, ac),
        },
        other => other,
    }
}

pub(crate) fn specialise_bits(p: Pred) -> Pred {
    let names: Vec<String> = match &p {
        Pred::Cmp(FieldRef { path: None, .. }, BinOp::Eq | BinOp::Ne, lit) => lit.parts.clone(),
        Pred::In(FieldRef { path: None, .. }, set) => set.iter().cloned().collect(),
        _ => return p,
    };
    let (field, negate) = match &p {
        Pred::Cmp(f, op, _) => (f.field, *op == BinOp::Ne),
        Pred::In(f, _) => (f.field, false),
        _ => return p,
    };
    let leaf = match field {
        Field::Type => Pred::Type(
            names
                .iter()
                .map(|n| TypeSet::from_short_exact(n))
                .fold(TypeSet::NONE, TypeSet::or),
        ),
        Field::OpFlags => Pred::OpMask(
            op_mask(&names, Kind::NetworkFlow),
            op_mask(&names, Kind::FileFlow),
        ),
        Field::QOpFlags => Pred::OpMaskNames(
            op_mask(&names, Kind::NetworkFlow),
            op_mask(&names, Kind::FileFlow),
        ),
        _ => return p,
    };
    if negate {
        Pred::Not(Box::new(leaf))
    } else {
        leaf
    }
}

/// The op flag bits whose names (as `kind` names them) are among `names`.
fn op_mask(names: &[String], kind: Kind) -> i32 {
    use crate::sysflow::names::op_flag_names;
    (0..31)
        .map(|b| 1i32 << b)
        .filter(|bit| op_flag_names(*bit, kind).any(|n| names.iter().any(|x| x == n)))
        .fold(0, |m, b| m | b)
}

/// `pred` specialised for each record type, in type-bit order.
pub fn per_type(pred: &Pred) -> Arc<[Pred]> {
    TYPES.iter().map(|k| pred.specialise_for(*k)).collect()
}

/// Fields whose value is fixed by a record's dispatch key.
pub(crate) const KEY_FIELDS: [Field; 8] = [
    Field::Type,
    Field::OpFlags,
    Field::EvtType,
    Field::QOpFlags,
    Field::EvtDir,
    Field::FileIsOpenWrite,
    Field::FileIsOpenRead,
    Field::FileOpenFlags,
];

/// Whether records of type `kind` with the same dispatch key have the same `field` value:
/// the key fields, and upstream's quirk reads of the open flags on file flows (on network
/// flows they read the source address, which the key does not hold).
pub(crate) fn key_field(field: Field, kind: Kind) -> bool {
    KEY_FIELDS.contains(&field)
        || (kind == Kind::FileFlow
            && matches!(
                field,
                Field::QFileIsOpenRead | Field::QFileIsOpenWrite | Field::QFileOpenFlags
            ))
}

/// What is derived from a predicate: the record types it can match, and its specialisations
/// for a record type or a dispatch key.
impl Pred {
    /// Record types for which this predicate can be true (`pos`) or false (`neg`).
    ///
    /// A leaf over fields that a record type does not populate has the same truth value on
    /// every record of that type (see [`attr::populated`]); it is evaluated once on a blank
    /// record of the type at compile time. This covers `sf.type` leaves and also, e.g.,
    /// `sf.file.is_open_write = true` (only file flows) or `sf.net.dport = 22`.
    pub(crate) fn types(&self) -> (TypeSet, TypeSet) {
        match self {
            Pred::Const(true) => (TypeSet::ALL, TypeSet::NONE),
            Pred::Const(false) => (TypeSet::NONE, TypeSet::ALL),
            Pred::And(v) => v.iter().fold((TypeSet::ALL, TypeSet::NONE), |(p, n), x| {
                let (xp, xn) = x.types();
                (p.and(xp), n.or(xn))
            }),
            Pred::Or(v) => v.iter().fold((TypeSet::NONE, TypeSet::ALL), |(p, n), x| {
                let (xp, xn) = x.types();
                (p.or(xp), n.and(xn))
            }),
            Pred::Not(x) => {
                let (p, n) = x.types();
                (n, p)
            }
            Pred::Macro(_, inner) => inner.types(),
            leaf => {
                let fields = leaf.leaf_fields();
                let (mut pos, mut neg) = (TypeSet::NONE, TypeSet::NONE);
                for (b, k) in TYPES.iter().enumerate() {
                    let bit = TypeSet(1 << b);
                    if fields.iter().any(|f| attr::populated(*f, *k)) {
                        pos = pos.or(bit);
                        neg = neg.or(bit);
                    } else if leaf.eval(&attr::blank_record(*k)) {
                        pos = pos.or(bit);
                    } else {
                        neg = neg.or(bit);
                    }
                }
                (pos, neg)
            }
        }
    }

    /// This predicate simplified for records of type `kind`: leaves over fields the type does
    /// not populate become constants, and constants fold away. Evaluating the result on a
    /// record of that type gives the same answer as evaluating `self`.
    pub fn specialise_for(&self, kind: Kind) -> Pred {
        self.fold(&|leaf: &Pred| {
            let fields = leaf.leaf_fields();
            if fields.iter().any(|f| attr::populated(*f, kind)) {
                None
            } else {
                Some(leaf.eval(&attr::blank_record(kind)))
            }
        })
    }

    /// This predicate simplified for records with the same dispatch key as `probe` (see
    /// [`dispatch_key`]): leaves that read only fields the key determines (type, op flags,
    /// open flags and what derives from them) are evaluated once on `probe` and fold away.
    pub fn specialise_for_key(&self, probe: &Record) -> Pred {
        self.fold(&|leaf: &Pred| {
            let fields = leaf.leaf_fields();
            let kind = probe.kind();
            if !fields.is_empty() && fields.iter().all(|f| key_field(*f, kind)) {
                Some(leaf.eval(probe))
            } else {
                None
            }
        })
    }

    /// Replaces the leaves `decide` settles by constants and folds constants away.
    pub(crate) fn fold(&self, decide: &dyn Fn(&Pred) -> Option<bool>) -> Pred {
        match self {
            Pred::And(v) => {
                let mut out = Vec::with_capacity(v.len());
                for x in v {
                    match x.fold(decide) {
                        Pred::Const(false) => return Pred::Const(false),
                        Pred::Const(true) => {}
                        p => out.push(p),
                    }
                }
                match out.len() {
                    0 => Pred::Const(true),
                    1 => out.pop().unwrap_or(Pred::Const(true)),
                    _ => Pred::And(out),
                }
            }
            Pred::Or(v) => {
                let mut out = Vec::with_capacity(v.len());
                for x in v {
                    match x.fold(decide) {
                        Pred::Const(true) => return Pred::Const(true),
                        Pred::Const(false) => {}
                        p => out.push(p),
                    }
                }
                match out.len() {
                    0 => Pred::Const(false),
                    1 => out.pop().unwrap_or(Pred::Const(false)),
                    _ => Pred::Or(out),
                }
            }
            Pred::Not(x) => match x.fold(decide) {
                Pred::Const(b) => Pred::Const(!b),
                p => Pred::Not(Box::new(p)),
            },
            Pred::Macro(id, inner) => match inner.fold(decide) {
                Pred::Const(b) => Pred::Const(b),
                p => Pred::Macro(*id, Arc::new(p)),
            },
            Pred::Const(b) => Pred::Const(*b),
            leaf => match decide(leaf) {
                Some(b) => Pred::Const(b),
                None => leaf.clone(),
            },
        }
    }

    /// The record types this predicate can match.
    pub fn possible_types(&self) -> TypeSet {
        self.types().0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::attr::{blank_record, lookup_ref};

    #[test]
    fn type_leaves_give_the_possible_types_and_fold_on_a_dispatch_key() {
        let t = Pred::Type(TypeSet::of(Kind::FileFlow));
        assert_eq!(t.possible_types(), TypeSet::of(Kind::FileFlow));
        let exe = Pred::Exists(lookup_ref("sf.proc.exe").unwrap());
        let p = Pred::And(vec![t.clone(), exe]);
        assert_eq!(p.possible_types(), TypeSet::of(Kind::FileFlow));
        // The type is part of the dispatch key: it folds away on a probe of that key.
        assert!(matches!(
            p.specialise_for_key(&blank_record(Kind::ProcessEvent)),
            Pred::Const(false)
        ));
        assert!(matches!(
            p.specialise_for_key(&blank_record(Kind::FileFlow)),
            Pred::Exists(_)
        ));
        // `sf.proc.exe` is not populated on Kubernetes events: the leaf is constant there.
        let k8s = Pred::Exists(lookup_ref("sf.proc.exe").unwrap());
        assert!(matches!(
            k8s.specialise_for(Kind::K8sEvent),
            Pred::Const(false)
        ));
    }

    #[test]
    fn key_fields_follow_upstreams_quirk_reads_on_file_flows_only() {
        assert!(key_field(Field::OpFlags, Kind::ProcessEvent));
        assert!(key_field(Field::QFileOpenFlags, Kind::FileFlow));
        assert!(!key_field(Field::QFileOpenFlags, Kind::NetworkFlow));
        assert!(!key_field(Field::ProcExe, Kind::FileFlow));
    }
}
