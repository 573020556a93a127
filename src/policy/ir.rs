//! The predicate IR and its evaluation: what a compiled condition is (a tree over fields
//! resolved at compile time, with literals prepared for their comparison), and how a record
//! is tested against it. Falco-style conditions and Sigma detections both compile to it.

use std::sync::Arc;

use aho_corasick::AhoCorasick;
use rustc_hash::FxHashSet;

use super::attr::{self, ref_value, Field, FieldRef, Kind2, Value};
use super::memo::{key_field, Memo};
use super::parser::BinOp;
use crate::record::Record;
use crate::sysflow::model::Kind;

/// Record types a rule can apply to, as a bit set over [`TYPES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TypeSet(pub u8);

/// Event and flow types, in bit order.
pub const TYPES: [Kind; 7] = [
    Kind::ProcessEvent,
    Kind::ProcessFlow,
    Kind::FileEvent,
    Kind::FileFlow,
    Kind::NetworkEvent,
    Kind::NetworkFlow,
    Kind::K8sEvent,
];

impl TypeSet {
    pub const ALL: TypeSet = TypeSet(0x7f);
    pub const NONE: TypeSet = TypeSet(0);
    pub fn bit(k: Kind) -> Option<u8> {
        TYPES.iter().position(|t| *t == k).map(|i| i as u8)
    }
    pub fn of(k: Kind) -> TypeSet {
        TypeSet(Self::bit(k).map(|b| 1 << b).unwrap_or(0))
    }
    pub fn from_short(s: &str) -> Option<TypeSet> {
        TYPES
            .iter()
            .find(|k| k.short().eq_ignore_ascii_case(s))
            .map(|k| Self::of(*k))
    }
    /// Exact (case-sensitive) type name, as `sf.type` compares.
    pub fn from_short_exact(s: &str) -> TypeSet {
        TYPES
            .iter()
            .find(|k| k.short() == s)
            .map(|k| Self::of(*k))
            .unwrap_or(TypeSet::NONE)
    }
    pub fn contains(self, k: Kind) -> bool {
        self.0 & Self::of(k).0 != 0
    }
    pub fn and(self, o: TypeSet) -> TypeSet {
        TypeSet(self.0 & o.0)
    }
    pub fn or(self, o: TypeSet) -> TypeSet {
        TypeSet(self.0 | o.0)
    }
    pub fn complement(self) -> TypeSet {
        TypeSet(!self.0 & 0x7f)
    }
}

/// A literal compared against a field, split on `,` once (upstream compares every comma
/// part of both sides).
#[derive(Debug, Clone)]
pub struct Lit {
    pub text: String,
    pub parts: Vec<String>,
    /// Parts lowercased once for `icontains`.
    pub lower: Vec<String>,
    /// The numeric value for `<`/`>` (a quoted number counts as 0, as upstream).
    pub int: i64,
    /// Set when the literal is a canonical integer: `=` on an integer field compares numbers.
    pub canonical_int: Option<i64>,
}

impl Lit {
    pub(crate) fn new(text: &str, quoted: bool) -> Lit {
        let parts: Vec<String> = text.split(',').map(str::to_string).collect();
        let int = if quoted {
            0
        } else {
            text.trim().parse().unwrap_or(0)
        };
        let canonical_int = text.parse::<i64>().ok().filter(|i| i.to_string() == text);
        Lit {
            text: text.to_string(),
            lower: parts.iter().map(|p| p.to_lowercase()).collect(),
            parts,
            int,
            canonical_int,
        }
    }

    pub(crate) fn any(&self, op: BinOp, v: &str) -> bool {
        if let [one] = self.parts.as_slice() {
            return match op {
                BinOp::Eq | BinOp::Ne => v == one,
                BinOp::Contains => v.contains(one.as_str()),
                BinOp::StartsWith => v.starts_with(one.as_str()),
                BinOp::EndsWith => v.ends_with(one.as_str()),
                BinOp::IContains => {
                    let l = &self.lower[0];
                    if v.is_ascii() && l.is_ascii() {
                        v.as_bytes()
                            .windows(l.len().max(1))
                            .any(|w| w.eq_ignore_ascii_case(l.as_bytes()))
                            || l.is_empty()
                    } else {
                        v.to_lowercase().contains(l.as_str())
                    }
                }
                _ => false,
            };
        }
        match op {
            BinOp::Eq | BinOp::Ne => self.parts.iter().any(|p| v == p),
            BinOp::Contains => self.parts.iter().any(|p| v.contains(p.as_str())),
            BinOp::IContains => {
                let lv = v.to_lowercase();
                self.lower.iter().any(|p| lv.contains(p.as_str()))
            }
            BinOp::StartsWith => self.parts.iter().any(|p| v.starts_with(p.as_str())),
            BinOp::EndsWith => self.parts.iter().any(|p| v.ends_with(p.as_str())),
            BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => false,
        }
    }
}

/// A compiled condition.
#[derive(Debug, Clone)]
pub enum Pred {
    Const(bool),
    And(Vec<Pred>),
    Or(Vec<Pred>),
    Not(Box<Pred>),
    Exists(FieldRef),
    Cmp(FieldRef, BinOp, Lit),
    FieldCmp(FieldRef, BinOp, FieldRef),
    /// `in` over literals: a hash set of the items' comma parts.
    In(FieldRef, Arc<FxHashSet<String>>),
    /// `pmatch` (any pattern contained in the value): Aho-Corasick for large sets.
    Pmatch(FieldRef, Arc<Vec<String>>, Option<Arc<AhoCorasick>>),
    /// An expanded macro, evaluated at most once per record (its value is memoised): rules
    /// share macros heavily (`open_write`, `file_read_or_file_opened_for_read`, ...).
    Macro(usize, Arc<Pred>),
    /// `sf.type` equal to / in a set of types: a bit test.
    Type(TypeSet),
    /// A string operator on a string field read by a direct accessor.
    StrCmp(Field, attr::StrGetter, BinOp, Lit),
    /// `in` on a string field read by a direct accessor.
    StrIn(Field, attr::StrGetter, Arc<FxHashSet<String>>),
    /// `pmatch` on a string field read by a direct accessor.
    StrPmatch(
        Field,
        attr::StrGetter,
        Arc<Vec<String>>,
        Option<Arc<AhoCorasick>>,
    ),
    /// `sf.opflags`/`evt.type` equal to / in names: a bit test on the op flags (mask for
    /// network flows, mask for the other types).
    OpMask(i32, i32),
    /// As `OpMask`, choosing the mask by the record's naming class (upstream's name cache,
    /// [`Record::op_names_net`]) instead of its type.
    OpMaskNames(i32, i32),
    /// A glob or regular expression on any comma part of the field (Falco `glob`, Sigma).
    Match(FieldRef, Arc<super::matcher::Matcher>),
}

/// Patterns above this count are matched with Aho-Corasick.
pub(crate) const AC_MIN: usize = 2;

fn int_op(op: BinOp, a: i64, b: i64) -> bool {
    match op {
        BinOp::Lt => a < b,
        BinOp::Le => a <= b,
        BinOp::Gt => a > b,
        BinOp::Ge => a >= b,
        _ => false,
    }
}

impl Pred {
    /// Evaluates on one record (no memo: for tests and compile-time folding).
    pub fn eval(&self, r: &Record) -> bool {
        self.eval_memo(r, &mut Memo::default())
    }

    /// Evaluates with `memo` holding the macro values already computed for this record.
    pub fn eval_memo(&self, r: &Record, memo: &mut Memo) -> bool {
        match self {
            Pred::Const(b) => *b,
            Pred::And(v) => v.iter().all(|p| p.eval_memo(r, memo)),
            Pred::Or(v) => v.iter().any(|p| p.eval_memo(r, memo)),
            Pred::Not(p) => !p.eval_memo(r, memo),
            Pred::Macro(id, inner) => match memo.get(*id) {
                Some(v) => v,
                None => {
                    let v = inner.eval_memo(r, memo);
                    memo.set(*id, v);
                    v
                }
            },
            Pred::Exists(f) => ref_value(f, r).is_set(),
            Pred::Cmp(f, op, lit) => match op {
                BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => {
                    int_op(*op, ref_value(f, r).as_int(), lit.int)
                }
                BinOp::Eq | BinOp::Ne => {
                    let eq = match lit.canonical_int {
                        Some(l) if f.path.is_none() && f.field.kind() == Kind2::Int => {
                            match ref_value(f, r) {
                                Value::Int(i) => i == l,
                                v => v.any_part(|s| lit.any(BinOp::Eq, s)),
                            }
                        }
                        _ => attr::any_part(f, r, &mut |s| lit.any(BinOp::Eq, s)),
                    };
                    eq == (*op == BinOp::Eq)
                }
                _ => attr::any_part(f, r, &mut |s| lit.any(*op, s)),
            },
            Pred::FieldCmp(l, op, rf) => {
                let (a, b) = (ref_value(l, r), ref_value(rf, r));
                match op {
                    BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => {
                        int_op(*op, a.as_int(), b.as_int())
                    }
                    BinOp::Ne => !a.any_part(|x| b.any_part(|y| x == y)),
                    BinOp::Eq => a.any_part(|x| b.any_part(|y| x == y)),
                    BinOp::Contains => a.any_part(|x| b.any_part(|y| x.contains(y))),
                    BinOp::IContains => a.any_part(|x| {
                        let lx = x.to_lowercase();
                        b.any_part(|y| lx.contains(&y.to_lowercase()))
                    }),
                    BinOp::StartsWith => a.any_part(|x| b.any_part(|y| x.starts_with(y))),
                    BinOp::EndsWith => a.any_part(|x| b.any_part(|y| x.ends_with(y))),
                }
            }
            Pred::In(f, set) => attr::any_part(f, r, &mut |s| set.contains(s)),
            Pred::Type(set) => set.contains(r.kind()),
            Pred::StrCmp(_, get, op, lit) => {
                let v = get(r);
                let hit = if v.contains(',') {
                    v.split(',').any(|p| lit.any(BinOp::Eq.max_op(*op), p))
                } else {
                    lit.any(BinOp::Eq.max_op(*op), v)
                };
                if *op == BinOp::Ne {
                    !hit
                } else {
                    hit
                }
            }
            Pred::StrIn(_, get, set) => {
                let v = get(r);
                if v.contains(',') {
                    v.split(',').any(|p| set.contains(p))
                } else {
                    set.contains(v)
                }
            }
            Pred::StrPmatch(_, get, pats, ac) => {
                let v = get(r);
                let one = |s: &str| match ac {
                    Some(ac) => ac.is_match(s),
                    None => pats.iter().any(|p| s.contains(p.as_str())),
                };
                if v.contains(',') {
                    v.split(',').any(one)
                } else {
                    one(v)
                }
            }
            Pred::OpMask(net, other) => {
                let mask = if r.kind() == Kind::NetworkFlow {
                    *net
                } else {
                    *other
                };
                r.event.op_flags() & mask != 0
            }
            Pred::Match(f, m) => attr::any_part(f, r, &mut |s| m.is_match(s)),
            Pred::OpMaskNames(net, other) => {
                let mask = if r.op_names_net { *net } else { *other };
                r.event.op_flags() & mask != 0
            }
            Pred::Pmatch(f, pats, ac) => match ac {
                Some(ac) => attr::any_part(f, r, &mut |s| ac.is_match(s)),
                None => attr::any_part(f, r, &mut |s| pats.iter().any(|p| s.contains(p.as_str()))),
            },
        }
    }

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

    /// The fields a leaf reads.
    pub(crate) fn leaf_fields(&self) -> Vec<Field> {
        match self {
            Pred::Exists(f)
            | Pred::Cmp(f, _, _)
            | Pred::In(f, _)
            | Pred::Pmatch(f, _, _)
            | Pred::Match(f, _) => {
                vec![f.field]
            }
            Pred::FieldCmp(a, _, b) => vec![a.field, b.field],
            Pred::Type(_) => vec![Field::Type],
            Pred::StrCmp(f, ..) | Pred::StrIn(f, ..) | Pred::StrPmatch(f, ..) => vec![*f],
            Pred::OpMask(..) => vec![Field::OpFlags],
            Pred::OpMaskNames(..) => vec![Field::QOpFlags],
            _ => Vec::new(),
        }
    }

    /// The record types this predicate can match.
    pub fn possible_types(&self) -> TypeSet {
        self.types().0
    }
}

trait OpExt {
    fn max_op(self, op: BinOp) -> BinOp;
}

impl OpExt for BinOp {
    /// The positive operator a leaf tests (`!=` tests `=` and negates).
    fn max_op(self, op: BinOp) -> BinOp {
        if op == BinOp::Ne {
            BinOp::Eq
        } else {
            op
        }
    }
}
