//! Upstream 0.7.0's reading of Sigma, the default (`quirks: upstream`).

use std::collections::HashMap;
use std::sync::Arc;

use rsigma_parser::{
    ConditionExpr, Detection, DetectionItem, Modifier, Quantifier, SelectorPattern, SigmaValue,
    StringPart,
};

use super::{and, base64_encode, modifier_name, or, shape, value_text, word, Converter};
use crate::policy::diag::Code;
use crate::policy::matcher::{GlobTok, Matcher};
use crate::policy::parser::{Atom, BinOp, Expr, Span};

/// Upstream 0.7.0's reading of Sigma (`core/policyengine/policy/sigma/compiler.go` over
/// sigma-go 0.5.1), the default (`quirks: upstream`): every map of a search given as a list
/// is ANDed; values are compared case-insensitively as literal text (no wildcards), split on
/// `,` like every upstream comparison; `re` and the modifiers it does not know are ignored;
/// `1 of`/`all of` a name without a wildcard, an unknown name and a keyword search are false;
/// `them` takes every search. Each place where this differs from the Sigma specification is
/// a `LOAD_SIGMA_UPSTREAM_MEANING` warning; `quirks: fixed` reads the specification's meaning.
impl Converter<'_> {
    fn upstream_note(&mut self, needle: &str, message: String) {
        let p = self.pos(needle);
        let snippet = self.line(&p);
        self.diags
            .warn(Code::SigmaUpstreamMeaning, p, message, &snippet);
    }

    pub(super) fn search_upstream(&mut self, name: &str, d: &Detection) -> Expr {
        match d {
            Detection::AllOf(items) => {
                and(items.iter().map(|i| self.item_upstream(name, i)).collect())
            }
            Detection::AnyOf(v) => {
                if v.len() > 1 {
                    self.upstream_note(
                        &format!("{name}:"),
                        format!("`{name}`: upstream ANDs the maps of a list (Sigma ORs them); `quirks: fixed` reads them as any-of"),
                    );
                }
                and(v.iter().map(|x| self.search_upstream(name, x)).collect())
            }
            Detection::And(v) => and(v.iter().map(|x| self.search_upstream(name, x)).collect()),
            Detection::Keywords(_) => {
                self.upstream_note(
                    &format!("{name}:"),
                    format!("`{name}`: keyword searches are not supported: false, as upstream (use field selectors)"),
                );
                Expr::Const(false)
            }
            Detection::ArrayMatch { .. } | Detection::Conditional { .. } => {
                self.error(
                    &format!("{name}:"),
                    format!("`{name}`: this detection form is not supported"),
                );
                Expr::Const(false)
            }
        }
    }

    fn item_upstream(&mut self, sel: &str, item: &DetectionItem) -> Expr {
        let Some(field) = item.field.name.as_deref() else {
            self.upstream_note(
                &format!("{sel}:"),
                format!("`{sel}`: keyword searches are not supported: false, as upstream"),
            );
            return Expr::Const(false);
        };
        let key = if item.field.modifiers.is_empty() {
            format!("{field}:")
        } else {
            format!("{field}|")
        };
        let Some(target) = self.target(field, &key) else {
            return Expr::Const(false);
        };
        let mut all = false;
        // Upstream's comparators (every one must hold) and transformers (any variant).
        let mut cmps: Vec<Option<Modifier>> = Vec::new();
        let mut transforms: Vec<Modifier> = Vec::new();
        for m in &item.field.modifiers {
            match m {
                Modifier::All => all = true,
                Modifier::Contains
                | Modifier::StartsWith
                | Modifier::EndsWith
                | Modifier::Gt
                | Modifier::Gte
                | Modifier::Lt
                | Modifier::Lte => cmps.push(Some(*m)),
                Modifier::WindAsh
                | Modifier::Base64
                | Modifier::Wide
                | Modifier::Utf16
                | Modifier::Utf16be => transforms.push(*m),
                Modifier::Base64Offset | Modifier::Cidr => {
                    // Upstream panics on these (its transformer is missing).
                    self.error(
                        &key,
                        format!(
                            "`{field}`: the Sigma modifier `{}` is not supported (upstream stops on it)",
                            modifier_name(*m)
                        ),
                    );
                    return Expr::Const(false);
                }
                other => {
                    let what = if *other == Modifier::Re {
                        "the value is compared as text, not as a regular expression".to_string()
                    } else {
                        "it has no effect".to_string()
                    };
                    self.upstream_note(
                        &key,
                        format!(
                            "`{field}`: upstream ignores the modifier `{}`: {what}; `quirks: fixed` applies it",
                            modifier_name(*other)
                        ),
                    );
                }
            }
        }
        if cmps.is_empty() {
            cmps.push(None);
        }
        let f = word(&target);
        let mut wild = false;
        let mut alts = Vec::new();
        for v in &item.values {
            let text = match v {
                SigmaValue::Null => String::new(),
                other => value_text(other),
            };
            wild |= matches!(v, SigmaValue::String(s) if s.parts.iter().any(|p| matches!(p, StringPart::Special(_))));
            let variants: Vec<String> = if transforms.is_empty() {
                vec![text]
            } else {
                transforms
                    .iter()
                    .flat_map(|t| match t {
                        Modifier::WindAsh => vec![text.clone(), text.replace('-', "/")],
                        Modifier::Base64 => vec![base64_encode(&text)],
                        _ => vec![text.clone()],
                    })
                    .collect()
            };
            alts.push(or(variants
                .iter()
                .map(|v| and(cmps.iter().map(|c| term_upstream(&f, *c, v)).collect()))
                .collect()));
        }
        if wild {
            self.upstream_note(
                &key,
                format!("`{field}`: upstream compares `*` and `?` literally (Sigma: wildcards); `quirks: fixed` reads them as wildcards"),
            );
        }
        if all {
            and(alts)
        } else {
            or(alts)
        }
    }

    pub(super) fn condition_upstream(
        &mut self,
        c: &ConditionExpr,
        named: &HashMap<&str, Expr>,
        names: &[&str],
    ) -> Expr {
        match c {
            ConditionExpr::And(v) => and(v
                .iter()
                .map(|x| self.condition_upstream(x, named, names))
                .collect()),
            ConditionExpr::Or(v) => or(v
                .iter()
                .map(|x| self.condition_upstream(x, named, names))
                .collect()),
            ConditionExpr::Not(x) => Expr::Not(Box::new(self.condition_upstream(x, named, names))),
            ConditionExpr::Identifier(id) => match named.get(id.as_str()) {
                Some(e) => e.clone(),
                None => {
                    self.upstream_note(
                        "condition:",
                        format!("the condition names `{id}`, which the detection does not define: false, as upstream"),
                    );
                    Expr::Const(false)
                }
            },
            ConditionExpr::Selector {
                quantifier,
                pattern,
            } => {
                let picked: Vec<Expr> = match pattern {
                    SelectorPattern::Them => {
                        names.iter().filter_map(|n| named.get(n).cloned()).collect()
                    }
                    SelectorPattern::Pattern(p) if p.contains('*') => {
                        let m = Matcher::glob(p, false);
                        names
                            .iter()
                            .filter(|n| m.is_match(n))
                            .filter_map(|n| named.get(n).cloned())
                            .collect()
                    }
                    SelectorPattern::Pattern(p) => {
                        self.upstream_note(
                            "condition:",
                            format!("`of {p}` without a wildcard is false in upstream (its compiler does not handle it); `quirks: fixed` reads Sigma's meaning"),
                        );
                        return Expr::Const(false);
                    }
                };
                match quantifier {
                    Quantifier::Any => or(picked),
                    Quantifier::All => and(picked),
                    Quantifier::Count(n) => {
                        self.error(
                            "condition:",
                            format!("`{n} of ...` is not supported (only `1 of` and `all of`)"),
                        );
                        Expr::Const(false)
                    }
                }
            }
        }
    }
}

/// One upstream comparison of `f` with a value: case-insensitive text (`None`: equality),
/// or a numeric comparison; the value's comma parts are alternatives, as upstream splits both
/// sides of every comparison on `,` (the field's parts are the matcher's business).
fn term_upstream(f: &Atom, cmp: Option<Modifier>, value: &str) -> Expr {
    let num = |op| Expr::Binary(f.clone(), op, word(value), Span::default());
    match cmp {
        Some(Modifier::Gt) => num(BinOp::Gt),
        Some(Modifier::Gte) => num(BinOp::Ge),
        Some(Modifier::Lt) => num(BinOp::Lt),
        Some(Modifier::Lte) => num(BinOp::Le),
        kind => or(value
            .split(',')
            .map(|part| {
                let t: Vec<GlobTok> = part.chars().map(GlobTok::Char).collect();
                Expr::Match(
                    f.clone(),
                    Arc::new(Matcher::from_toks(shape(t, kind), true)),
                    Span::default(),
                )
            })
            .collect()),
    }
}
