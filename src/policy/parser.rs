//! Condition parser (nom): Falco/SysFlow condition text → AST with byte spans.
//!
//! Grammar (upstream's `Sfpl.g4`, precedence `or` < `and` < `not`):
//! ```text
//! expr   := and ("or" and)*
//! and    := term ("and" term)*
//! term   := "not" term | "(" expr ")" | "exists" atom
//!         | atom "exists"
//!         | atom ("in" | "pmatch") "(" item ("," item)* ")"
//!         | atom binop atom
//!         | ident                      -- a macro reference
//! item   := atom | "[" atom ("," atom)* ","? "]"
//! binop  := "=" | "!=" | "<" | "<=" | ">" | ">=" | contains | icontains | startswith | endswith
//! ```
//! Strings may be quoted with `"` or `'`, and upstream's nested form `'"text"'` is the string
//! `text`.

use nom::branch::alt;
use nom::bytes::complete::{tag, take_while, take_while1};
use nom::character::complete::{char, multispace0};
use nom::combinator::{opt, recognize};
use nom::sequence::pair;
use nom::{IResult, Parser};

/// Byte range in the condition text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

/// An operand: a bare word (attribute, list or literal) or a quoted string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Atom {
    Word(String, Span),
    Quoted(String, Span),
}

impl Atom {
    pub fn text(&self) -> &str {
        match self {
            Atom::Word(s, _) | Atom::Quoted(s, _) => s,
        }
    }
    pub fn span(&self) -> Span {
        match self {
            Atom::Word(_, s) | Atom::Quoted(_, s) => *s,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Contains,
    IContains,
    StartsWith,
    EndsWith,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListOp {
    In,
    Pmatch,
}

/// An item inside `in (...)`: a single atom (maybe a list name) or an inline `[a, b]` list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    Atom(Atom),
    Inline(Vec<Atom>),
}

/// Condition AST.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
    /// A bare identifier: a macro reference.
    Ref(String, Span),
    Exists(Atom, Span),
    Binary(Atom, BinOp, Atom, Span),
    List(Atom, ListOp, Vec<Item>, Span),
    /// A pattern match: Falco's `glob`, and Sigma's wildcard, case-insensitive and regular
    /// expression values (built by the Sigma compiler).
    Match(Atom, std::sync::Arc<super::matcher::Matcher>, Span),
    /// A constant (Sigma: a search over a field the mapping does not know).
    Const(bool),
}

/// A parse error at a byte offset of the condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub offset: usize,
    pub message: String,
}

type Res<'a, T> = IResult<&'a str, T>;

struct Ctx<'a> {
    full: &'a str,
    /// Current nesting of `(` and `not`; bounded so hostile input cannot exhaust the stack.
    depth: std::cell::Cell<u32>,
}

/// Deepest nesting of parentheses and `not` accepted.
const MAX_DEPTH: u32 = 64;

impl<'a> Ctx<'a> {
    fn off(&self, rest: &str) -> usize {
        self.full.len() - rest.len()
    }
}

fn ws(i: &str) -> Res<'_, &str> {
    multispace0(i)
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | '/' | '*' | ':' | '+' | '~' | '@' | '%')
}

/// A keyword followed by a non-word character.
fn keyword<'a>(kw: &'static str) -> impl Fn(&'a str) -> Res<'a, &'a str> {
    move |i: &'a str| {
        let (rest, k) = tag(kw)(i)?;
        if rest
            .chars()
            .next()
            .is_some_and(|c| is_word_char(c) || c == '[')
        {
            return Err(nom::Err::Error(nom::error::Error::new(
                i,
                nom::error::ErrorKind::Tag,
            )));
        }
        Ok((rest, k))
    }
}

/// A bare word: identifiers with `.`, `-`, `/`, `*`, `:` and bracketed arguments
/// (`proc.aname[2]`, `jevt.value[/a/b]`), paths and numbers (optionally negative).
fn word(i: &str) -> Res<'_, &str> {
    recognize(pair(
        opt(char('-')),
        nom::multi::many1_count(alt((
            take_while1(is_word_char),
            recognize((
                char('['),
                take_while(|c: char| c != ']' && c != '\n'),
                char(']'),
            )),
        ))),
    ))
    .parse(i)
}

/// A quoted string; the nested `'"x"'` form yields `x`. A backslash before the quote
/// character escapes it (Falco's `"a \"b\""`); other backslashes are kept as written.
fn quoted(i: &str) -> Res<'_, String> {
    let q = match i.chars().next() {
        Some(c @ ('"' | '\'')) => c,
        _ => {
            return Err(nom::Err::Error(nom::error::Error::new(
                i,
                nom::error::ErrorKind::Char,
            )))
        }
    };
    let body = &i[1..];
    let mut out = String::new();
    let mut escaped_any = false;
    let mut chars = body.char_indices();
    while let Some((idx, c)) = chars.next() {
        if c == '\\' && body[idx + 1..].starts_with(q) {
            out.push(q);
            escaped_any = true;
            chars.next();
            continue;
        }
        if c == q {
            let mut s = out.as_str();
            // Nested quotes: '"x"' or "'x'".
            if !escaped_any && s.len() >= 2 {
                let (f, l) = (s.as_bytes()[0], s.as_bytes()[s.len() - 1]);
                if f == l && (f == b'"' || f == b'\'') && f != q as u8 {
                    s = &s[1..s.len() - 1];
                }
            }
            return Ok((&body[idx + 1..], s.to_string()));
        }
        out.push(c);
    }
    Err(nom::Err::Failure(nom::error::Error::new(
        i,
        nom::error::ErrorKind::Char,
    )))
}

const KEYWORDS: &[&str] = &[
    "and",
    "or",
    "not",
    "in",
    "pmatch",
    "exists",
    "contains",
    "icontains",
    "startswith",
    "endswith",
    "glob",
    "intersects",
    "bcontains",
    "bstartswith",
];

fn atom<'a>(c: &Ctx<'a>, i: &'a str) -> Res<'a, Atom> {
    let (i, _) = ws(i)?;
    let start = c.off(i);
    if let Ok((rest, s)) = quoted(i) {
        return Ok((
            rest,
            Atom::Quoted(
                s,
                Span {
                    start,
                    end: c.off(rest),
                },
            ),
        ));
    }
    // Falco's event-direction literals `<` and `>` (e.g. `evt.dir = <`).
    if let Some(c @ ('<' | '>')) = i.chars().next() {
        let rest = &i[1..];
        if !rest.starts_with('=') {
            return Ok((
                rest,
                Atom::Word(
                    c.to_string(),
                    Span {
                        start,
                        end: start + 1,
                    },
                ),
            ));
        }
    }
    let (rest, w) = word(i)?;
    if KEYWORDS.contains(&w) {
        return Err(nom::Err::Error(nom::error::Error::new(
            i,
            nom::error::ErrorKind::Tag,
        )));
    }
    Ok((
        rest,
        Atom::Word(
            w.to_string(),
            Span {
                start,
                end: c.off(rest),
            },
        ),
    ))
}

fn binop(i: &str) -> Res<'_, BinOp> {
    let (i, _) = ws(i)?;
    alt((
        tag("!=").map(|_| BinOp::Ne),
        tag("<=").map(|_| BinOp::Le),
        tag(">=").map(|_| BinOp::Ge),
        tag("=").map(|_| BinOp::Eq),
        tag("<").map(|_| BinOp::Lt),
        tag(">").map(|_| BinOp::Gt),
        keyword("icontains").map(|_| BinOp::IContains),
        keyword("contains").map(|_| BinOp::Contains),
        keyword("startswith").map(|_| BinOp::StartsWith),
        keyword("endswith").map(|_| BinOp::EndsWith),
    ))
    .parse(i)
}

fn item<'a>(c: &Ctx<'a>, i: &'a str) -> Res<'a, Item> {
    let (i, _) = ws(i)?;
    if let Some(rest) = i.strip_prefix('[') {
        let mut items = Vec::new();
        let mut i = rest;
        loop {
            let (r, _) = ws(i)?;
            if let Some(r) = r.strip_prefix(']') {
                return Ok((r, Item::Inline(items)));
            }
            let (r, a) = atom(c, r)?;
            items.push(a);
            let (r, _) = ws(r)?;
            i = r.strip_prefix(',').unwrap_or(r);
            if i.len() == r.len() && !r.starts_with(']') {
                return Err(nom::Err::Failure(nom::error::Error::new(
                    r,
                    nom::error::ErrorKind::Char,
                )));
            }
        }
    }
    let (i, a) = atom(c, i)?;
    Ok((i, Item::Atom(a)))
}

fn term<'a>(c: &Ctx<'a>, i: &'a str) -> Res<'a, Expr> {
    let (i, _) = ws(i)?;
    if c.depth.get() >= MAX_DEPTH {
        return Err(nom::Err::Failure(nom::error::Error::new(
            i,
            nom::error::ErrorKind::TooLarge,
        )));
    }
    c.depth.set(c.depth.get() + 1);
    let r = term_inner(c, i);
    c.depth.set(c.depth.get() - 1);
    r
}

fn term_inner<'a>(c: &Ctx<'a>, i: &'a str) -> Res<'a, Expr> {
    let start = c.off(i);
    if let Ok((rest, _)) = keyword("not")(i) {
        let (rest, t) = term(c, rest)?;
        return Ok((rest, Expr::Not(Box::new(t))));
    }
    if let Some(rest) = i.strip_prefix('(') {
        let (rest, e) = expr(c, rest)?;
        let (rest, _) = ws(rest)?;
        return match rest.strip_prefix(')') {
            Some(r) => Ok((r, e)),
            None => Err(nom::Err::Failure(nom::error::Error::new(
                rest,
                nom::error::ErrorKind::Char,
            ))),
        };
    }
    if let Ok((rest, _)) = keyword("exists")(i) {
        let (rest, a) = atom(c, rest)?;
        return Ok((
            rest,
            Expr::Exists(
                a,
                Span {
                    start,
                    end: c.off(rest),
                },
            ),
        ));
    }
    let (rest, lhs) = atom(c, i)?;
    let (r2, _) = ws(rest)?;
    if let Ok((r, _)) = keyword("exists")(r2) {
        return Ok((
            r,
            Expr::Exists(
                lhs,
                Span {
                    start,
                    end: c.off(r),
                },
            ),
        ));
    }
    // Falco's `glob`: the value is a pattern.
    if let Ok((r, _)) = keyword("glob")(r2) {
        let (r, rhs) = cut(atom(c, r))?;
        let m = super::matcher::Matcher::glob(rhs.text(), false);
        return Ok((
            r,
            Expr::Match(
                lhs,
                std::sync::Arc::new(m),
                Span {
                    start,
                    end: c.off(r),
                },
            ),
        ));
    }
    // Falco's byte operators: the value is hexadecimal.
    for (kw, op) in [
        ("bcontains", BinOp::Contains),
        ("bstartswith", BinOp::StartsWith),
    ] {
        if let Ok((r, _)) = keyword(kw)(r2) {
            let (r, rhs) = cut(atom(c, r))?;
            let Some(text) = unhex(rhs.text()) else {
                return Err(nom::Err::Failure(nom::error::Error::new(
                    r2,
                    nom::error::ErrorKind::HexDigit,
                )));
            };
            let span = rhs.span();
            return Ok((
                r,
                Expr::Binary(
                    lhs,
                    op,
                    Atom::Quoted(text, span),
                    Span {
                        start,
                        end: c.off(r),
                    },
                ),
            ));
        }
    }
    let list_op = keyword("in")(r2)
        .map(|(r, _)| (r, ListOp::In))
        .or_else(|_| keyword("intersects")(r2).map(|(r, _)| (r, ListOp::In)))
        .or_else(|_| keyword("pmatch")(r2).map(|(r, _)| (r, ListOp::Pmatch)));
    if let Ok((r, op)) = list_op {
        let (r, _) = ws(r)?;
        let Some(mut r) = r.strip_prefix('(') else {
            return Err(nom::Err::Failure(nom::error::Error::new(
                r,
                nom::error::ErrorKind::Char,
            )));
        };
        let mut items = Vec::new();
        loop {
            let (r1, _) = ws(r)?;
            if let Some(r1) = r1.strip_prefix(')') {
                return Ok((
                    r1,
                    Expr::List(
                        lhs,
                        op,
                        items,
                        Span {
                            start,
                            end: c.off(r1),
                        },
                    ),
                ));
            }
            let (r1, it) = cut(item(c, r1))?;
            items.push(it);
            let (r1, _) = ws(r1)?;
            r = match r1.strip_prefix(',') {
                Some(x) => x,
                None if r1.starts_with(')') => r1,
                None => {
                    return Err(nom::Err::Failure(nom::error::Error::new(
                        r1,
                        nom::error::ErrorKind::Char,
                    )))
                }
            };
        }
    }
    if let Ok((r, op)) = binop(r2) {
        let (r, rhs) = cut(atom(c, r))?;
        return Ok((
            r,
            Expr::Binary(
                lhs,
                op,
                rhs,
                Span {
                    start,
                    end: c.off(r),
                },
            ),
        ));
    }
    match lhs {
        Atom::Word(w, s) => Ok((rest, Expr::Ref(w, s))),
        Atom::Quoted(..) => Err(nom::Err::Failure(nom::error::Error::new(
            i,
            nom::error::ErrorKind::Verify,
        ))),
    }
}

/// Hex text (`68656c6c6f`) as a string of those bytes (lossy for non-UTF-8 bytes).
fn unhex(h: &str) -> Option<String> {
    if !h.len().is_multiple_of(2) || h.is_empty() {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..h.len())
        .step_by(2)
        .map(|i| h.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok()))
        .collect();
    Some(String::from_utf8_lossy(&bytes?).into_owned())
}

/// An error after a keyword is final: the condition cannot be read another way.
fn cut<T>(r: Res<'_, T>) -> Res<'_, T> {
    r.map_err(|e| match e {
        nom::Err::Error(x) => nom::Err::Failure(x),
        other => other,
    })
}

/// `sub (kw sub)*`, folded into `make` when there is more than one operand.
fn chain<'a>(
    c: &Ctx<'a>,
    i: &'a str,
    kw: &'static str,
    sub: fn(&Ctx<'a>, &'a str) -> Res<'a, Expr>,
    make: fn(Vec<Expr>) -> Expr,
) -> Res<'a, Expr> {
    let (mut i, first) = sub(c, i)?;
    let mut terms = vec![first];
    loop {
        let (r, _) = ws(i)?;
        let Ok((r, _)) = keyword(kw)(r) else { break };
        let (r, t) = cut(sub(c, r))?;
        terms.push(t);
        i = r;
    }
    let e = if terms.len() == 1 {
        terms.pop().unwrap_or_else(|| make(Vec::new()))
    } else {
        make(terms)
    };
    Ok((i, e))
}

fn and_expr<'a>(c: &Ctx<'a>, i: &'a str) -> Res<'a, Expr> {
    chain(c, i, "and", term, Expr::And)
}

fn expr<'a>(c: &Ctx<'a>, i: &'a str) -> Res<'a, Expr> {
    chain(c, i, "or", and_expr, Expr::Or)
}

fn describe(rest: &str) -> String {
    let snippet: String = rest.chars().take(24).collect();
    if snippet.is_empty() {
        "unexpected end of condition".to_string()
    } else {
        format!("unexpected `{snippet}`")
    }
}

/// Parses a whole condition.
pub fn parse_condition(text: &str) -> Result<Expr, ParseError> {
    let c = Ctx {
        full: text,
        depth: std::cell::Cell::new(0),
    };
    match expr(&c, text) {
        Ok((rest, e)) => {
            let (rest, _) = ws(rest).unwrap_or((rest, ""));
            if rest.is_empty() {
                Ok(e)
            } else {
                Err(ParseError {
                    offset: c.off(rest),
                    message: describe(rest),
                })
            }
        }
        Err(nom::Err::Error(e) | nom::Err::Failure(e)) => Err(ParseError {
            offset: c.off(e.input),
            message: if e.code == nom::error::ErrorKind::TooLarge {
                format!("nesting deeper than {MAX_DEPTH} levels")
            } else {
                describe(e.input)
            },
        }),
        Err(nom::Err::Incomplete(_)) => Err(ParseError {
            offset: text.len(),
            message: "unexpected end of condition".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Expr {
        parse_condition(s).unwrap_or_else(|e| panic!("{s}: {e:?}"))
    }

    fn w(s: &str) -> String {
        s.to_string()
    }

    #[test]
    fn precedence_not_and_or() {
        let e = p("a or b and not c");
        match e {
            Expr::Or(v) => {
                assert!(matches!(&v[0], Expr::Ref(n, _) if n == "a"));
                match &v[1] {
                    Expr::And(x) => {
                        assert!(matches!(&x[0], Expr::Ref(n, _) if n == "b"));
                        assert!(matches!(&x[1], Expr::Not(_)));
                    }
                    other => panic!("{other:?}"),
                }
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn operators_and_operands() {
        match p("sf.proc.exe = /bin/sh") {
            Expr::Binary(Atom::Word(a, _), BinOp::Eq, Atom::Word(b, _), _) => {
                assert_eq!((a, b), (w("sf.proc.exe"), w("/bin/sh")))
            }
            o => panic!("{o:?}"),
        }
        assert!(
            matches!(p("sf.ret < -1"), Expr::Binary(_, BinOp::Lt, Atom::Word(ref n, _), _) if n == "-1")
        );
        assert!(
            matches!(p("x icontains 'A b'"), Expr::Binary(_, BinOp::IContains, Atom::Quoted(ref s, _), _) if s == "A b")
        );
        assert!(
            matches!(p("x != \"\""), Expr::Binary(_, BinOp::Ne, Atom::Quoted(ref s, _), _) if s.is_empty())
        );
        assert!(matches!(p("sf.pproc.name exists"), Expr::Exists(..)));
        assert!(matches!(p("exists sf.pproc.name"), Expr::Exists(..)));
        assert!(
            matches!(p("evt.dir=<"), Expr::Binary(_, BinOp::Eq, Atom::Word(ref d, _), _) if d == "<")
        );
        assert!(
            matches!(p("proc.aname[2] = bash"), Expr::Binary(Atom::Word(ref a, _), ..) if a == "proc.aname[2]")
        );
    }

    #[test]
    fn lists_inline_and_named() {
        match p("sf.proc.name in (bash, [sh, 'zsh'], shell_binaries)") {
            Expr::List(_, ListOp::In, items, _) => {
                assert_eq!(items.len(), 3);
                assert!(matches!(&items[1], Item::Inline(v) if v.len() == 2));
            }
            o => panic!("{o:?}"),
        }
        assert!(matches!(
            p("x pmatch (a)"),
            Expr::List(_, ListOp::Pmatch, _, _)
        ));
        assert!(matches!(p("x in ()"), Expr::List(_, _, ref v, _) if v.is_empty()));
    }

    #[test]
    fn nested_quotes_are_one_string() {
        match p(r#"x startswith '"75-system-updat"'"#) {
            Expr::Binary(_, BinOp::StartsWith, Atom::Quoted(s, _), _) => {
                assert_eq!(s, "75-system-updat")
            }
            o => panic!("{o:?}"),
        }
    }

    #[test]
    fn keywords_need_boundaries() {
        // `contains_x` is an identifier, `android` starts with `and`.
        assert!(matches!(p("android"), Expr::Ref(ref n, _) if n == "android"));
        assert!(matches!(p("notme or x"), Expr::Or(_)));
    }

    #[test]
    fn errors_have_offsets() {
        let e = parse_condition("a and (b or").unwrap_err();
        assert_eq!(e.message, "unexpected end of condition");
        let e = parse_condition("a = 'unterminated").unwrap_err();
        assert_eq!(e.offset, 4);
        let e = parse_condition("a b").unwrap_err();
        assert_eq!(e.offset, 2);
        assert!(parse_condition("x in (a b)").is_err());
        assert!(parse_condition("").is_err());
    }

    #[test]
    fn hostile_input_is_an_error_not_a_crash() {
        let deep = format!("{}a{}", "(".repeat(100_000), ")".repeat(100_000));
        let e = parse_condition(&deep).unwrap_err();
        assert!(e.message.contains("nesting deeper"), "{e:?}");
        let nots = format!("{}a", "not ".repeat(100_000));
        assert!(parse_condition(&nots).is_err());
        // Arbitrary byte soup never panics.
        let alphabet = [
            "a", " ", "(", ")", "'", "\"", "=", "in", "[", "]", ",", "and", "or", "not", "!", "<",
            "é", "\t",
        ];
        let mut seed = 7u64;
        for _ in 0..3000 {
            let mut s = String::new();
            for _ in 0..(seed % 40) {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                s.push_str(alphabet[(seed >> 33) as usize % alphabet.len()]);
            }
            let _ = parse_condition(&s);
        }
    }

    #[test]
    fn spans_point_into_the_text() {
        let text = "a = 1 and sf.proc.name = bash";
        match p(text) {
            Expr::And(v) => match &v[1] {
                Expr::Binary(a, _, _, s) => {
                    assert_eq!(&text[s.start..s.end], "sf.proc.name = bash");
                    assert_eq!(&text[a.span().start..a.span().end], "sf.proc.name");
                }
                o => panic!("{o:?}"),
            },
            o => panic!("{o:?}"),
        }
    }
}
