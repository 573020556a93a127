//! The Sigma specification's reading (`quirks: fixed`): the logsource category selects record
//! types, `*`/`?` are wildcards, a list of maps is any-of, the modifiers apply.

use std::sync::Arc;

use rsigma_parser::{DetectionItem, Modifier, SigmaRule, SigmaValue};

use super::{and, base64_encode, modifier_name, or, shape, toks, value_text, word, Converter};
use crate::policy::diag::Code;
use crate::policy::matcher::{GlobTok, Matcher};
use crate::policy::parser::{BinOp, Expr, Span};

impl Converter<'_> {
    /// The record types a logsource category stands for.
    pub(super) fn logsource(&mut self, rule: &SigmaRule) -> Option<Expr> {
        let eq = |f: &str, v: &str| Expr::Binary(word(f), BinOp::Eq, word(v), Span::default());
        let cat = rule.logsource.category.as_deref()?;
        Some(match cat {
            "process_creation" => and(vec![eq("sf.type", "PE"), eq("sf.opflags", "EXEC")]),
            "network_connection" => eq("sf.type", "NF"),
            "file_event" | "file_change" | "file_access" | "file_rename" | "file_delete" => {
                or(vec![eq("sf.type", "FF"), eq("sf.type", "FE")])
            }
            other => {
                let p = self.pos(other);
                self.diags.warn(
                    Code::UnknownKey,
                    p,
                    format!("logsource category `{other}` has no SysFlow record type; the rule applies to every record"),
                    "",
                );
                return None;
            }
        })
    }

    pub(super) fn item(&mut self, sel: &str, item: &DetectionItem) -> Expr {
        let Some((field, key, target)) = self.located(sel, item) else {
            return Expr::Const(false);
        };
        let field = field.as_str();
        let mods = &item.field.modifiers;
        let mut kind = None;
        let (mut all, mut cased, mut re, mut exists, mut neq, mut windash, mut base64) =
            (false, false, false, false, false, false, false);
        let mut cmp = None;
        for m in mods {
            match m {
                Modifier::Contains | Modifier::StartsWith | Modifier::EndsWith => kind = Some(*m),
                Modifier::All => all = true,
                Modifier::Cased => cased = true,
                Modifier::Re => re = true,
                Modifier::IgnoreCase | Modifier::Multiline | Modifier::DotAll if re => {}
                Modifier::Exists => exists = true,
                Modifier::Neq => neq = true,
                Modifier::WindAsh => windash = true,
                Modifier::Base64 => base64 = true,
                Modifier::Gt => cmp = Some(BinOp::Gt),
                Modifier::Gte => cmp = Some(BinOp::Ge),
                Modifier::Lt => cmp = Some(BinOp::Lt),
                Modifier::Lte => cmp = Some(BinOp::Le),
                other => {
                    self.error(
                        &key,
                        format!(
                            "`{field}`: the Sigma modifier `{}` is not supported",
                            modifier_name(*other)
                        ),
                    );
                    return Expr::Const(false);
                }
            }
        }
        let f = word(&target);
        if exists {
            let want = !matches!(item.values.first(), Some(SigmaValue::Bool(false)));
            let e = Expr::Exists(f, Span::default());
            return if want { e } else { Expr::Not(Box::new(e)) };
        }
        let mut alts = Vec::new();
        for v in &item.values {
            let e = match v {
                SigmaValue::Null => Expr::Not(Box::new(Expr::Exists(f.clone(), Span::default()))),
                _ if cmp.is_some() => {
                    let text = value_text(v);
                    Expr::Binary(
                        f.clone(),
                        cmp.unwrap_or(BinOp::Eq),
                        word(&text),
                        Span::default(),
                    )
                }
                SigmaValue::String(s) if re => {
                    let flags = if mods.contains(&Modifier::IgnoreCase) {
                        "(?i)"
                    } else {
                        ""
                    };
                    match regex::RegexBuilder::new(&format!("{flags}{}", s.original))
                        .size_limit(1 << 20)
                        .build()
                    {
                        Ok(r) => {
                            Expr::Match(f.clone(), Arc::new(Matcher::Regex(r)), Span::default())
                        }
                        Err(e) => {
                            self.error(&key, format!("`{field}`: invalid regular expression: {e}"));
                            return Expr::Const(false);
                        }
                    }
                }
                SigmaValue::String(s) => {
                    let mut variants = vec![toks(s)];
                    if windash {
                        variants.push(
                            toks(s)
                                .into_iter()
                                .map(|t| {
                                    if t == GlobTok::Char('-') {
                                        GlobTok::Char('/')
                                    } else {
                                        t
                                    }
                                })
                                .collect(),
                        );
                    }
                    if base64 {
                        variants = vec![base64_encode(&s.original)
                            .chars()
                            .map(GlobTok::Char)
                            .collect()];
                    }
                    or(variants
                        .into_iter()
                        .map(|t| {
                            Expr::Match(
                                f.clone(),
                                Arc::new(Matcher::from_toks(shape(t, kind), !cased)),
                                Span::default(),
                            )
                        })
                        .collect())
                }
                other => {
                    let t: Vec<GlobTok> = value_text(other).chars().map(GlobTok::Char).collect();
                    Expr::Match(
                        f.clone(),
                        Arc::new(Matcher::from_toks(shape(t, kind), !cased)),
                        Span::default(),
                    )
                }
            };
            alts.push(if neq { Expr::Not(Box::new(e)) } else { e });
        }
        if all {
            and(alts)
        } else {
            or(alts)
        }
    }
}
