//! Evaluation of the predicate IR on a record. Macro values are read and filled through a
//! [`MacroCache`]: the per-shard state (`memo`) keeps them across a record's rules and across
//! records of the same entities; a plain [`MacroValues`] serves one evaluation.

use super::attr::{self, ref_value, Kind2, Value};
use super::ir::Pred;
use super::parser::BinOp;
use crate::record::Record;
use crate::sysflow::model::Kind;

/// Where macro values live during an evaluation.
pub trait MacroCache {
    /// The value of macro `id` if already computed.
    fn get(&self, id: usize) -> Option<bool>;
    /// Records the value of macro `id`.
    fn set(&mut self, id: usize, v: bool);
}

/// Macro values of one evaluation (no reuse across records).
#[derive(Debug, Default, Clone)]
pub struct MacroValues(Vec<u8>);

impl MacroCache for MacroValues {
    fn get(&self, id: usize) -> Option<bool> {
        match self.0.get(id) {
            Some(1) => Some(false),
            Some(2) => Some(true),
            _ => None,
        }
    }
    fn set(&mut self, id: usize, v: bool) {
        if id >= self.0.len() {
            self.0.resize(id + 1, 0);
        }
        self.0[id] = if v { 2 } else { 1 };
    }
}

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
        self.eval_memo(r, &mut MacroValues::default())
    }

    /// Evaluates with `memo` holding the macro values already computed for this record.
    pub fn eval_memo<C: MacroCache + ?Sized>(&self, r: &Record, memo: &mut C) -> bool {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::attr::{blank_record, lookup_ref};
    use crate::policy::ir::Lit;
    use std::sync::Arc;

    use crate::policy::attr::process_record as proc_rec;

    #[test]
    fn leaves_and_connectives() {
        let exe = lookup_ref("sf.proc.exe").unwrap();
        let is_sh = Pred::Cmp(exe.clone(), BinOp::Eq, Lit::new("/bin/sh", false));
        let r = proc_rec("/bin/sh");
        assert!(is_sh.eval(&r));
        assert!(!is_sh.eval(&proc_rec("/bin/bash")));
        assert!(!Pred::Not(Box::new(is_sh.clone())).eval(&r));
        assert!(Pred::Or(vec![Pred::Const(false), is_sh.clone()]).eval(&r));
        assert!(!Pred::And(vec![Pred::Const(false), is_sh.clone()]).eval(&r));
        let ne = Pred::Cmp(exe.clone(), BinOp::Ne, Lit::new("/bin/sh", false));
        assert!(!ne.eval(&r));
        let starts = Pred::Cmp(exe.clone(), BinOp::StartsWith, Lit::new("/bin/", false));
        assert!(starts.eval(&proc_rec("/bin/bash")));
        assert!(!starts.eval(&proc_rec("/usr/bin/bash")));
        assert!(Pred::Exists(exe.clone()).eval(&r));
        assert!(!Pred::Exists(exe).eval(&blank_record(Kind::ProcessEvent)));
        let t = Pred::Type(crate::policy::ir::TypeSet::of(Kind::ProcessEvent));
        assert!(t.eval(&r));
        assert!(!t.eval(&blank_record(Kind::FileFlow)));
    }

    #[test]
    fn a_macro_is_computed_once_and_then_read_from_the_cache() {
        let m = Pred::Macro(3, Arc::new(Pred::Const(true)));
        let r = blank_record(Kind::ProcessEvent);
        let mut c = MacroValues::default();
        assert_eq!(c.get(3), None);
        assert!(m.eval_memo(&r, &mut c));
        assert_eq!(c.get(3), Some(true));
        let mut stale = MacroValues::default();
        stale.set(3, false);
        assert!(
            !m.eval_memo(&r, &mut stale),
            "a cached value wins over the inner predicate"
        );
    }
}
