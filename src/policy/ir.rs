//! The predicate IR: what a compiled condition is (a tree over fields resolved at compile
//! time, with literals prepared for their comparison). Data only: how a record is tested
//! against it is `eval`, what is derived from it (types, specialisations) is `passes`.
//! Falco-style conditions and Sigma detections both compile to it.

use std::sync::Arc;

use aho_corasick::AhoCorasick;
use rustc_hash::FxHashSet;

use super::attr::{self, Field, FieldRef};
use super::parser::BinOp;
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

impl Pred {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_sets_are_bit_sets_over_the_event_and_flow_types() {
        let f = TypeSet::of(Kind::FileFlow);
        let p = TypeSet::of(Kind::ProcessEvent);
        assert!(f.contains(Kind::FileFlow) && !f.contains(Kind::ProcessEvent));
        assert_eq!(f.or(p).and(p), p);
        assert_eq!(f.complement().and(f), TypeSet::NONE);
        assert_eq!(f.or(f.complement()), TypeSet::ALL);
        assert_eq!(TypeSet::from_short("FF"), Some(f));
    }

    #[test]
    fn literals_keep_their_comma_parts_and_leaves_name_their_fields() {
        let l = Lit::new("a,b", true);
        assert!(l.any(BinOp::Eq, "b"));
        assert!(!l.any(BinOp::Eq, "a,b,c"));
        let exe = attr::lookup_ref("sf.proc.exe").unwrap();
        let leaf = Pred::Cmp(exe, BinOp::Eq, Lit::new("/bin/sh", false));
        assert_eq!(leaf.leaf_fields(), vec![Field::ProcExe]);
        assert!(Pred::And(vec![]).leaf_fields().is_empty());
    }
}
