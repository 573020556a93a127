//! Compiler: resolves lists and macros (any order, across files), turns conditions into
//! predicate trees over fields resolved at compile time, and infers the record types each rule
//! can match (the type index).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use aho_corasick::AhoCorasick;
use rustc_hash::FxHashSet;

use super::attr::{self, ref_value, Field, FieldRef, Kind2, Value};
use super::loader::{CondText, Entry, LoadedFiles, Merge, PolicyError, Pos};
use super::parser::{parse_condition, Atom, BinOp, Expr, Item, ListOp};
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
    fn new(text: &str, quoted: bool) -> Lit {
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

    fn any(&self, op: BinOp, v: &str) -> bool {
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
}

/// Per-shard evaluation state: the macro values of the current record and the dispatch
/// cache (condition sets specialised per dispatch key) of the policy set in force.
#[derive(Debug, Default)]
pub struct Memo {
    /// 0 unknown, 1 false, 2 true, per macro id.
    values: Vec<u8>,
    /// The [`PolicySet::id`] the buckets and values are for.
    set_id: u64,
    /// The entities of the previous record (held, so their addresses cannot be reused while
    /// compared): when the next record has the same ones, entity-only macros keep their values.
    entities: Option<Entities>,
    /// Parked entity-only values of recently seen processes, by process address.
    recent: Vec<Option<(Entities, Vec<u8>)>>,
    /// Records whose entities differed from the previous record's, and of those, how many
    /// found their entity-only values parked (diagnostics).
    pub switches: u64,
    pub restored: u64,
    /// Candidate rule positions of the current record (reused allocation).
    pub cands: Vec<u32>,
    buckets: rustc_hash::FxHashMap<(u8, i32, i32), Arc<Bucket>>,
}

/// Most dispatch keys kept per shard. Real traces have a few dozen (type × op flags × open
/// flags); past the cap, records of new keys use the per-type conditions (same result,
/// slower), so a stream of unusual flag combinations cannot grow memory without bound.
const MAX_BUCKETS: usize = 4096;

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
    pub index: super::dispatch::RuleIndex,
}

/// Fields whose value is fixed by a record's dispatch key.
const KEY_FIELDS: [Field; 7] = [
    Field::Type,
    Field::OpFlags,
    Field::EvtType,
    Field::EvtDir,
    Field::FileIsOpenWrite,
    Field::FileIsOpenRead,
    Field::FileOpenFlags,
];

/// The dispatch key of a record: type bit, op flags, open flags (file flows).
pub fn dispatch_key(bit: u8, rec: &Record) -> (u8, i32, i32) {
    let open = match &rec.event {
        crate::record::Event::FileFlow(f) => f.open_flags,
        _ => 0,
    };
    (bit, rec.event.op_flags(), open)
}

#[derive(Debug)]
struct Entities {
    process: Option<Arc<crate::sysflow::model::Process>>,
    ancestors: Arc<[Arc<crate::sysflow::model::Process>]>,
    container: Option<Arc<crate::sysflow::model::Container>>,
    pod: Option<Arc<crate::sysflow::model::Pod>>,
}

fn same<T: ?Sized>(a: &Option<Arc<T>>, b: &Option<Arc<T>>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => Arc::ptr_eq(a, b),
        (None, None) => true,
        _ => false,
    }
}

/// Slots of the per-process table of parked macro values.
const RECENT: usize = 256;

fn addr<T: ?Sized>(p: &Option<Arc<T>>) -> usize {
    p.as_ref()
        .map(|a| Arc::as_ptr(a) as *const u8 as usize)
        .unwrap_or(0)
}

impl Entities {
    fn slot(&self) -> usize {
        (addr(&self.process) >> 4) % RECENT
    }
    fn slot_of(rec: &Record) -> usize {
        (addr(&rec.process) >> 4) % RECENT
    }
    fn of(rec: &Record) -> Self {
        Entities {
            process: rec.process.clone(),
            ancestors: rec.ancestors.clone(),
            container: rec.container.clone(),
            pod: rec.pod.clone(),
        }
    }
    fn same_as(&self, rec: &Record) -> bool {
        same(&self.process, &rec.process)
            && Arc::ptr_eq(&self.ancestors, &rec.ancestors)
            && same(&self.container, &rec.container)
            && same(&self.pod, &rec.pod)
    }
}

impl Memo {
    /// Forgets everything built for another policy set (a hot reload swapped it).
    fn follow(&mut self, set: &PolicySet) {
        if self.set_id != set.id {
            self.buckets.clear();
            self.set_id = set.id;
            self.entities = None;
            self.recent.clear();
        }
    }

    /// Prepares for evaluating `rec` with `set`: forgets the macro values that depend on the
    /// event; entity-only values are kept when `rec` has the previous record's entities, and
    /// restored from a small per-process table when its process was seen recently (records
    /// of a few busy processes interleave).
    pub fn start(&mut self, set: &PolicySet, rec: &Record) {
        self.follow(set);
        if self.values.len() != set.macro_slots {
            self.entities = None;
            self.recent.clear();
        }
        if !self.entities.as_ref().is_some_and(|e| e.same_as(rec)) {
            self.switches += 1;
            if self.recent.is_empty() {
                self.recent.resize_with(RECENT, || None);
            }
            // Park the previous entities' values, then take the new ones' if parked.
            if let Some(prev) = self.entities.take() {
                let i = prev.slot();
                let values = std::mem::take(&mut self.values);
                self.recent[i] = Some((prev, values));
            }
            let i = Entities::slot_of(rec);
            match self.recent[i].take() {
                Some((e, values)) if e.same_as(rec) && values.len() == set.macro_slots => {
                    self.restored += 1;
                    self.values = values;
                    self.entities = Some(e);
                }
                other => {
                    if let Some((_, values)) = other {
                        self.values = values;
                    }
                    self.values.clear();
                    self.values.resize(set.macro_slots, 0);
                    self.entities = Some(Entities::of(rec));
                    return;
                }
            }
        }
        for &i in &set.record_macros {
            self.values[i] = 0;
        }
    }

    fn get(&self, id: usize) -> Option<bool> {
        match self.values.get(id) {
            Some(1) => Some(false),
            Some(2) => Some(true),
            _ => None,
        }
    }
    fn set(&mut self, id: usize, v: bool) {
        if id >= self.values.len() {
            self.values.resize(id + 1, 0);
        }
        self.values[id] = if v { 2 } else { 1 };
    }

    /// The bucket of `rec`'s dispatch key in `set`, built on first use; `None` when the
    /// cache is full and the key is new.
    pub fn bucket(&mut self, set: &PolicySet, bit: u8, rec: &Record) -> Option<Arc<Bucket>> {
        self.follow(set);
        let key = dispatch_key(bit, rec);
        if let Some(b) = self.buckets.get(&key) {
            return Some(b.clone());
        }
        if self.buckets.len() >= MAX_BUCKETS {
            return None;
        }
        let b = Arc::new(set.build_bucket(bit, rec));
        self.buckets.insert(key, b.clone());
        Some(b)
    }

    /// Dispatch keys built so far (diagnostics and tests).
    pub fn buckets(&self) -> usize {
        self.buckets.len()
    }
}

/// Patterns above this count are matched with Aho-Corasick.
const AC_MIN: usize = 2;

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
    fn types(&self) -> (TypeSet, TypeSet) {
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
            if !fields.is_empty() && fields.iter().all(|f| KEY_FIELDS.contains(f)) {
                Some(leaf.eval(probe))
            } else {
                None
            }
        })
    }

    /// Replaces the leaves `decide` settles by constants and folds constants away.
    fn fold(&self, decide: &dyn Fn(&Pred) -> Option<bool>) -> Pred {
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
    fn leaf_fields(&self) -> Vec<Field> {
        match self {
            Pred::Exists(f) | Pred::Cmp(f, _, _) | Pred::In(f, _) | Pred::Pmatch(f, _, _) => {
                vec![f.field]
            }
            Pred::FieldCmp(a, _, b) => vec![a.field, b.field],
            Pred::Type(_) => vec![Field::Type],
            Pred::StrCmp(f, ..) | Pred::StrIn(f, ..) | Pred::StrPmatch(f, ..) => vec![*f],
            Pred::OpMask(..) => vec![Field::OpFlags],
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

/// Rough evaluation cost, to test cheap conditions first (`and`/`or` are commutative for
/// these side-effect-free predicates, so the result is the same).
fn cost(p: &Pred) -> u32 {
    match p {
        Pred::Const(_) | Pred::Type(_) | Pred::OpMask(..) => 1,
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
    }
}

/// Merges `f op a or f op b` into one leaf `f op (a, b)` for the positive string operators:
/// a literal's parts are already "any of", so the meaning is the same and the field is read
/// once (e.g. seven `sf.file.directory startswith` alternatives in upstream's filters).
fn merge_or(v: Vec<Pred>) -> Vec<Pred> {
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
fn entity_only(p: &Pred) -> bool {
    match p {
        Pred::Const(_) => true,
        Pred::And(v) | Pred::Or(v) => v.iter().all(entity_only),
        Pred::Not(x) => entity_only(x),
        Pred::Macro(_, x) => entity_only(x),
        leaf => leaf
            .leaf_fields()
            .iter()
            .all(|f| attr::entity_field(*f) && !matches!(leaf, Pred::Type(_) | Pred::OpMask(..))),
    }
}

/// Wraps the parts of a condition that read only entity fields in memoised nodes, so they
/// are evaluated once per process (their value carries over between consecutive records of
/// the same entities) instead of once per record. Bit tests stay as they are (cheaper than
/// the memo).
fn wrap_entity_parts(p: Pred, next_id: &mut usize, as_macro: bool) -> Pred {
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
fn mark_record_macros(p: &Pred, per_record: &mut [bool]) {
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

fn cheapest_first(mut v: Vec<Pred>) -> Vec<Pred> {
    v.sort_by_key(cost);
    v
}

/// Replaces `sf.type`/`sf.opflags`/`evt.type` equality and `in` leaves by bit tests with the
/// same meaning (names compared exactly, as the string comparison would).
fn specialise(p: Pred) -> Pred {
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

fn specialise_bits(p: Pred) -> Pred {
    use crate::sysflow::names::op_flag_names;
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
        Field::OpFlags => {
            let mask = |kind: Kind| {
                (0..31)
                    .map(|b| 1i32 << b)
                    .filter(|bit| op_flag_names(*bit, kind).any(|n| names.iter().any(|x| x == n)))
                    .fold(0, |m, b| m | b)
            };
            Pred::OpMask(mask(Kind::NetworkFlow), mask(Kind::FileFlow))
        }
        _ => return p,
    };
    if negate {
        Pred::Not(Box::new(leaf))
    } else {
        leaf
    }
}

/// An action run on records a rule matched.
pub trait Action: Send + Sync {
    fn name(&self) -> &str;
    fn run(&self, rec: &mut Record);
}

/// A compiled rule.
#[derive(Clone)]
pub struct Rule {
    pub name: Arc<str>,
    pub desc: Arc<str>,
    pub priority: i64,
    pub tags: Arc<[String]>,
    pub actions: Vec<Arc<dyn Action>>,
    pub pred: Pred,
    /// Types the rule is evaluated for: inferred from the condition, intersected with
    /// `prefilter`.
    pub types: TypeSet,
    /// The `prefilter` types as written (all types when absent).
    pub prefilter: TypeSet,
    /// The condition specialised per record type (by type bit), what the engine evaluates.
    pub per_type: Arc<[Pred]>,
    pub enabled: bool,
    pub pos: Pos,
    /// Records this rule matched. Shared by every shard; carried over to the rule of the
    /// same name when the set is reloaded, so the count stays monotonic (a metrics counter).
    pub matches: Arc<std::sync::atomic::AtomicU64>,
}

impl std::fmt::Debug for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rule")
            .field("name", &self.name)
            .field("priority", &self.priority)
            .field("types", &self.types)
            .finish()
    }
}

/// A compiled `filter`/`drop` entry.
#[derive(Debug, Clone)]
pub struct Filter {
    pub name: String,
    pub pred: Pred,
    pub types: TypeSet,
    /// The condition specialised per record type (by type bit).
    pub per_type: Arc<[Pred]>,
}

/// `pred` specialised for each record type, in type-bit order.
pub fn per_type(pred: &Pred) -> Arc<[Pred]> {
    TYPES.iter().map(|k| pred.specialise_for(*k)).collect()
}

/// Entry counts of a loaded policy set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub rules: usize,
    pub macros: usize,
    pub lists: usize,
    pub filters: usize,
}

/// A compiled, indexed policy set.
#[derive(Debug, Clone, Default)]
pub struct PolicySet {
    pub rules: Vec<Rule>,
    pub filters: Vec<Filter>,
    /// Per type bit: indexes of the enabled rules that can match, in file order.
    pub index: [Vec<usize>; 7],
    pub counts: Counts,
    pub warnings: Vec<String>,
    /// Distinct compiled macros (the size of a [`Memo`]).
    pub macro_slots: usize,
    /// Macros whose value depends on the event (the others depend only on the process,
    /// its ancestry, container and pod, and carry over to the next record of the same
    /// entities).
    pub record_macros: Vec<usize>,
    /// Unique per compiled set (dispatch caches are rebuilt when it changes).
    pub id: u64,
}

static NEXT_SET_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl PolicySet {
    /// The filters and rules for records with `probe`'s dispatch key (type bit `bit`).
    pub fn build_bucket(&self, bit: u8, probe: &Record) -> Bucket {
        let b = bit as usize;
        let kind = probe.kind();
        let mut out = Bucket {
            drop: false,
            filters: Vec::new(),
            rules: Vec::new(),
            index: Default::default(),
        };
        for f in &self.filters {
            if !f.types.contains(kind) {
                continue;
            }
            match f.per_type[b].specialise_for_key(probe) {
                Pred::Const(false) => {}
                Pred::Const(true) => {
                    out.drop = true;
                    out.filters.clear();
                    return out;
                }
                p => out.filters.push(p),
            }
        }
        for &i in &self.index[b] {
            match self.rules[i].per_type[b].specialise_for_key(probe) {
                Pred::Const(false) => {}
                p => out.rules.push((i, p)),
            }
        }
        out.index = super::dispatch::RuleIndex::build(&out.rules);
        out
    }
}

/// Upstream's priority numbers (Informational 0, Low 1, Medium 2, High 3).
pub fn priority(name: &str) -> Option<i64> {
    Some(match name.trim().to_ascii_lowercase().as_str() {
        "informational" | "info" | "debug" | "notice" | "low" => 1,
        "medium" | "warning" => 2,
        "high" | "error" | "critical" | "emergency" | "alert" => 3,
        _ => return None,
    })
}

/// Named actions available to rules.
pub type ActionRegistry = HashMap<String, Arc<dyn Action>>;

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
    use crate::policy::loader::{load_text, LoadedFiles};
    use crate::record::Event;
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
