//! Upstream 0.7.0's reading of Sigma, the default (`quirks: upstream`).

use std::sync::Arc;

use rsigma_parser::{DetectionItem, Modifier, SigmaValue, StringPart};

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
    pub(super) fn upstream_note(&mut self, needle: &str, message: String) {
        let p = self.pos(needle);
        let snippet = self.line(&p);
        self.diags
            .warn(Code::SigmaUpstreamMeaning, p, message, &snippet);
    }

    pub(super) fn item_upstream(&mut self, sel: &str, item: &DetectionItem) -> Expr {
        let Some((field, key, target)) = self.located(sel, item) else {
            return Expr::Const(false);
        };
        let field = field.as_str();
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
            let text = value_text(v);
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
