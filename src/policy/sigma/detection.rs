//! Searches and conditions: one walk for both readings, which differ only where noted
//! (`self.cfg.upstream`: upstream 0.7.0's; else the Sigma specification's).

use std::collections::HashMap;

use rsigma_parser::{ConditionExpr, Detection, DetectionItem, Quantifier, SelectorPattern};

use super::{and, or, Converter};
use crate::policy::matcher::Matcher;
use crate::policy::parser::Expr;

impl Converter<'_> {
    /// Where upstream was lax: a warning (upstream's meaning kept); by the specification: an
    /// error. Either way the construct is false.
    fn lax_or_error(&mut self, needle: &str, upstream: String, spec: String) -> Expr {
        if self.cfg.upstream {
            self.upstream_note(needle, upstream);
        } else {
            self.error(needle, spec);
        }
        Expr::Const(false)
    }

    /// An item's field, the text that finds it in the file (`Field:` / `Field|`) and the
    /// attribute it maps to; `None` (the item is false) for a keyword item or an unmapped
    /// field, each reported.
    pub(super) fn located(
        &mut self,
        sel: &str,
        item: &DetectionItem,
    ) -> Option<(String, String, String)> {
        let Some(field) = item.field.name.as_deref() else {
            self.lax_or_error(
                &format!("{sel}:"),
                format!("`{sel}`: keyword searches are not supported: false, as upstream"),
                format!("`{sel}`: keyword searches are not supported (use field selectors)"),
            );
            return None;
        };
        let key = if item.field.modifiers.is_empty() {
            format!("{field}:")
        } else {
            format!("{field}|")
        };
        let target = self.target(field, &key)?;
        Some((field.to_string(), key, target))
    }

    /// A named search: a map is all-of its fields; a list of maps is all-of them upstream,
    /// any-of them by the specification.
    pub(super) fn detection(&mut self, name: &str, d: &Detection) -> Expr {
        match d {
            Detection::AllOf(items) => and(items
                .iter()
                .map(|i| {
                    if self.cfg.upstream {
                        self.item_upstream(name, i)
                    } else {
                        self.item(name, i)
                    }
                })
                .collect()),
            Detection::AnyOf(v) => {
                let parts = v.iter().map(|x| self.detection(name, x)).collect();
                if !self.cfg.upstream {
                    return or(parts);
                }
                if v.len() > 1 {
                    self.upstream_note(
                        &format!("{name}:"),
                        format!("`{name}`: upstream ANDs the maps of a list (Sigma ORs them); `quirks: fixed` reads them as any-of"),
                    );
                }
                and(parts)
            }
            Detection::And(v) => and(v.iter().map(|x| self.detection(name, x)).collect()),
            Detection::Keywords(_) => self.lax_or_error(
                &format!("{name}:"),
                format!("`{name}`: keyword searches are not supported: false, as upstream (use field selectors)"),
                format!("`{name}`: keyword searches are not supported (use field selectors)"),
            ),
            Detection::ArrayMatch { .. } | Detection::Conditional { .. } => {
                self.error(
                    &format!("{name}:"),
                    format!("`{name}`: this detection form is not supported"),
                );
                Expr::Const(false)
            }
        }
    }

    /// A condition over the named searches. Upstream: `them` takes every search, a pattern
    /// needs a wildcard (`1 of x` is false) and matches as Go's `path.Match`; by the
    /// specification `them` skips `_` names.
    pub(super) fn condition(
        &mut self,
        c: &ConditionExpr,
        named: &HashMap<&str, Expr>,
        names: &[&str],
    ) -> Expr {
        match c {
            ConditionExpr::And(v) => {
                and(v.iter().map(|x| self.condition(x, named, names)).collect())
            }
            ConditionExpr::Or(v) => or(v.iter().map(|x| self.condition(x, named, names)).collect()),
            ConditionExpr::Not(x) => Expr::Not(Box::new(self.condition(x, named, names))),
            ConditionExpr::Identifier(id) => match named.get(id.as_str()) {
                Some(e) => e.clone(),
                None => self.lax_or_error(
                    "condition:",
                    format!("the condition names `{id}`, which the detection does not define: false, as upstream"),
                    format!("the condition names `{id}`, which the detection does not define"),
                ),
            },
            ConditionExpr::Selector {
                quantifier,
                pattern,
            } => {
                let upstream = self.cfg.upstream;
                let glob = match pattern {
                    SelectorPattern::Pattern(p) if upstream && !p.contains('*') => {
                        self.upstream_note(
                            "condition:",
                            format!("`of {p}` without a wildcard is false in upstream (its compiler does not handle it); `quirks: fixed` reads Sigma's meaning"),
                        );
                        return Expr::Const(false);
                    }
                    SelectorPattern::Pattern(p) if upstream => Some(Matcher::glob(p, false)),
                    _ => None,
                };
                let picked: Vec<Expr> = names
                    .iter()
                    .filter(|n| match (pattern, &glob) {
                        (SelectorPattern::Them, _) => upstream || !n.starts_with('_'),
                        (_, Some(m)) => m.is_match(n),
                        (SelectorPattern::Pattern(p), None) => {
                            rsigma_parser::detection_name_matches(p, n)
                        }
                    })
                    .filter_map(|n| named.get(n).cloned())
                    .collect();
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
