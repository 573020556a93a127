//! Falco exceptions as an AST (`and not (...)` on the rule), built from the entries as written.

use serde_json::Value;

use crate::policy::loader::RawException;
use crate::policy::parser::{Atom, BinOp, Expr, Item, ListOp, Span};
use crate::policy::source::{PolicyError, Pos};

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn list_op(comp: &str) -> Option<ListOp> {
    match comp {
        "in" => Some(ListOp::In),
        "pmatch" => Some(ListOp::Pmatch),
        _ => None,
    }
}

fn bin_op(comp: &str) -> Option<BinOp> {
    Some(match comp {
        "=" | "==" => BinOp::Eq,
        "!=" => BinOp::Ne,
        "<" => BinOp::Lt,
        "<=" => BinOp::Le,
        ">" => BinOp::Gt,
        ">=" => BinOp::Ge,
        "contains" => BinOp::Contains,
        "icontains" => BinOp::IContains,
        "startswith" => BinOp::StartsWith,
        "endswith" => BinOp::EndsWith,
        _ => return None,
    })
}

/// Falco exceptions as an AST: `not (t1 or t2 ...)`, each value tuple the conjunction of
/// `field comp value`; with a single `fields` name, one `field comp (values...)`.
pub(super) fn exceptions_ast(excs: &[RawException]) -> Result<Option<Expr>, PolicyError> {
    let s = Span::default();
    let word = |t: &str| Atom::Word(t.to_string(), s);
    let item = |v: &Value| -> Vec<Item> {
        match v {
            Value::Array(a) => a.iter().map(|x| Item::Atom(word(&value_text(x)))).collect(),
            x => vec![Item::Atom(word(&value_text(x)))],
        }
    };
    let leaf = |field: &str, comp: &str, v: &Value, pos: &Pos| -> Result<Expr, PolicyError> {
        if let Some(op) = list_op(comp) {
            return Ok(Expr::List(word(field), op, item(v), s));
        }
        let Some(op) = bin_op(comp) else {
            return Err(PolicyError {
                pos: pos.clone(),
                message: format!("exception comparison `{comp}` is not supported"),
                snippet: String::new(),
            });
        };
        Ok(Expr::Binary(
            word(field),
            op,
            Atom::Quoted(value_text(v), s),
            s,
        ))
    };
    let mut alts = Vec::new();
    for e in excs {
        if e.fields.is_empty() {
            if e.values.is_empty() {
                continue;
            }
            return Err(PolicyError {
                pos: e.pos.clone(),
                message: format!("exception `{}` has values but no `fields`", e.name),
                snippet: String::new(),
            });
        }
        if e.single {
            let comp = e.comps.first().map(String::as_str).unwrap_or("in");
            if !e.values.is_empty() {
                let all = Value::Array(e.values.clone());
                alts.push(leaf(&e.fields[0], comp, &all, &e.pos)?);
            }
            continue;
        }
        for tuple in &e.values {
            let vals: Vec<Value> = match tuple {
                Value::Array(a) => a.clone(),
                other => vec![other.clone()],
            };
            let mut parts = Vec::new();
            for (i, f) in e.fields.iter().enumerate() {
                let comp = e.comps.get(i).map(String::as_str).unwrap_or("=");
                let Some(v) = vals.get(i) else { continue };
                parts.push(leaf(f, comp, v, &e.pos)?);
            }
            match parts.len() {
                0 => {}
                1 => alts.extend(parts),
                _ => alts.push(Expr::And(parts)),
            }
        }
    }
    Ok(match alts.len() {
        0 => None,
        1 => Some(Expr::Not(Box::new(alts.remove(0)))),
        _ => Some(Expr::Not(Box::new(Expr::Or(alts)))),
    })
}
