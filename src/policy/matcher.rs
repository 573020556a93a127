//! Pattern matchers for the leaves the plain string operators cannot express: globs (Falco's
//! `glob`, Sigma's wildcard values and case-insensitive matching) and regular expressions
//! (Sigma's `re`). Built once at compile time; matching allocates nothing for ASCII text.

/// One element of a glob pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GlobTok {
    /// A literal character (lowercased when the glob folds case).
    Char(char),
    /// `?`: any one character.
    Any,
    /// `*`: any run of characters.
    Star,
}

/// A compiled pattern.
#[derive(Debug, Clone)]
pub enum Matcher {
    Glob { toks: Vec<GlobTok>, fold_case: bool },
    Regex(regex::Regex),
}

impl PartialEq for Matcher {
    fn eq(&self, o: &Matcher) -> bool {
        match (self, o) {
            (Matcher::Regex(a), Matcher::Regex(b)) => a.as_str() == b.as_str(),
            (
                Matcher::Glob { toks, fold_case },
                Matcher::Glob {
                    toks: t2,
                    fold_case: f2,
                },
            ) => toks == t2 && fold_case == f2,
            _ => false,
        }
    }
}

impl Eq for Matcher {}

impl Matcher {
    /// A glob from Falco pattern text (`*`, `?`; `\` escapes the next character).
    pub fn glob(pattern: &str, fold_case: bool) -> Matcher {
        let mut toks = Vec::new();
        let mut it = pattern.chars();
        while let Some(c) = it.next() {
            toks.push(match c {
                '*' => GlobTok::Star,
                '?' => GlobTok::Any,
                '\\' => match it.next() {
                    Some(n) => GlobTok::Char(n),
                    None => GlobTok::Char('\\'),
                },
                c => GlobTok::Char(c),
            });
        }
        Matcher::from_toks(toks, fold_case)
    }

    /// A glob from tokens (case-folded here when `fold_case`).
    pub fn from_toks(toks: Vec<GlobTok>, fold_case: bool) -> Matcher {
        let mut out: Vec<GlobTok> = Vec::with_capacity(toks.len());
        for t in toks {
            match t {
                GlobTok::Char(c) if fold_case => {
                    out.extend(c.to_lowercase().map(GlobTok::Char));
                }
                // `**` is `*`.
                GlobTok::Star if out.last() == Some(&GlobTok::Star) => {}
                t => out.push(t),
            }
        }
        Matcher::Glob {
            toks: out,
            fold_case,
        }
    }

    pub fn is_match(&self, s: &str) -> bool {
        match self {
            Matcher::Regex(r) => r.is_match(s),
            Matcher::Glob { toks, fold_case } => {
                if s.is_ascii() {
                    // No allocation: bytes compared as characters (folded when asked).
                    let fold = *fold_case;
                    return glob_match(toks, s.as_bytes(), |c, b| {
                        let b = if fold { b.to_ascii_lowercase() } else { b };
                        c.is_ascii() && c as u32 == u32::from(b)
                    });
                }
                let chars: Vec<char> = if *fold_case {
                    s.chars().flat_map(char::to_lowercase).collect()
                } else {
                    s.chars().collect()
                };
                glob_match(toks, &chars, |c, x| c == x)
            }
        }
    }
}

/// Wildcard matching with backtracking to the last `*` (linear in practice, O(n·m) worst);
/// `eq` compares a pattern character with an element of `s`.
fn glob_match<T: Copy>(p: &[GlobTok], s: &[T], eq: impl Fn(char, T) -> bool) -> bool {
    let (mut pi, mut si) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        match p.get(pi) {
            Some(GlobTok::Star) => {
                star = Some((pi, si));
                pi += 1;
                continue;
            }
            Some(GlobTok::Any) => {
                pi += 1;
                si += 1;
                continue;
            }
            Some(GlobTok::Char(c)) if eq(*c, s[si]) => {
                pi += 1;
                si += 1;
                continue;
            }
            _ => {}
        }
        match star {
            Some((sp, ss)) => {
                pi = sp + 1;
                si = ss + 1;
                star = Some((sp, ss + 1));
            }
            None => return false,
        }
    }
    p[pi..].iter().all(|t| *t == GlobTok::Star)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        let m = |p: &str, s: &str| Matcher::glob(p, false).is_match(s);
        assert!(m("/etc/*", "/etc/passwd"));
        assert!(!m("/etc/*", "/usr/etc/passwd"));
        assert!(m("*.sh", "run.sh"));
        assert!(m("a?c", "abc") && !m("a?c", "abbc"));
        assert!(m("*a*b*c*", "xxaxxbxxcxx"));
        assert!(!m("*a*b*c", "xxaxxbxxcxx"));
        assert!(m("", "") && !m("", "x") && m("*", ""));
        assert!(m("\\*", "*") && !m("\\*", "x"));
        assert!(m("ünï*", "ünïcode") && !m("ünï?", "ünïcode"));
        let i = |p: &str, s: &str| Matcher::glob(p, true).is_match(s);
        assert!(i("*/BASH", "/bin/bash") && i("*ÜNÏ*", "xünïx"));
        assert!(!Matcher::glob("*/BASH", false).is_match("/bin/bash"));
    }

    #[test]
    fn regexes() {
        let r = Matcher::Regex(regex::Regex::new("(.){5,}").unwrap());
        assert!(r.is_match("abcdef") && !r.is_match("abc"));
    }
}
