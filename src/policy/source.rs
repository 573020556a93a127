//! Positions in policy files: where an entry or a condition starts, the error type that names
//! file:line:col with a snippet, and condition text that maps its byte offsets back to the file.

use std::fmt;
use std::sync::Arc;

/// A position in a policy file (1-based line and column).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Pos {
    pub file: Arc<str>,
    pub line: u64,
    pub col: u64,
}

impl Pos {
    /// A position for what has no place in a file.
    pub fn unknown() -> Pos {
        Pos {
            file: Arc::from(""),
            line: 0,
            col: 0,
        }
    }
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.col)
    }
}

/// A load or compile error: where, what, and the offending text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    pub pos: Pos,
    pub message: String,
    pub snippet: String,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.pos, self.message)?;
        if !self.snippet.is_empty() {
            write!(f, "\n    | {}", self.snippet)?;
        }
        Ok(())
    }
}

impl std::error::Error for PolicyError {}

/// A condition as written, with where its text starts in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CondText {
    pub text: String,
    pub pos: Pos,
    /// Byte offset of the value in the (repaired) file text, to locate errors inside it.
    pub byte_offset: Option<u64>,
    /// The file text, shared, to map an offset in `text` to a line and column.
    pub source: Arc<str>,
}

impl CondText {
    /// A condition given on its own (a command line's `-f`): it is its own source, so every
    /// position is its line and column as typed.
    pub fn standalone(label: &str, text: &str) -> Self {
        CondText {
            text: text.to_string(),
            pos: Pos {
                file: Arc::from(label),
                line: 1,
                col: 1,
            },
            byte_offset: Some(0),
            source: Arc::from(text),
        }
    }

    /// The file position of byte `offset` of the condition text: found by searching the
    /// offending token in the file from where the value starts (folded scalars change
    /// whitespace, not tokens).
    pub fn pos_of(&self, offset: usize) -> Pos {
        if self.byte_offset == Some(0) && *self.source == *self.text {
            // Standalone: the offset is the position.
            let mut at = offset.min(self.text.len());
            while !self.text.is_char_boundary(at) {
                at -= 1;
            }
            return line_col(&self.file_name(), &self.source, at);
        }
        let token: String = self.text[offset.min(self.text.len())..]
            .chars()
            .take_while(|c| !c.is_whitespace())
            .take(32)
            .collect();
        let start = self.byte_offset.unwrap_or(0) as usize;
        if !token.is_empty() && start <= self.source.len() {
            if let Some(i) = self.source[start..].find(&token) {
                return line_col(&self.file_name(), &self.source, start + i);
            }
        }
        self.pos.clone()
    }

    fn file_name(&self) -> Arc<str> {
        self.pos.file.clone()
    }

    /// A one-line snippet of the condition around `offset`.
    pub fn snippet(&self, offset: usize) -> String {
        let off = offset.min(self.text.len());
        let from = self.text[..off]
            .char_indices()
            .rev()
            .nth(30)
            .map(|(i, _)| i)
            .unwrap_or(0);
        let tail: String = self.text[off..].chars().take(40).collect();
        let head = &self.text[from..off];
        format!("{}{}", head, tail).replace(['\n', '\t'], " ")
    }
}

pub fn line_col(file: &Arc<str>, text: &str, byte: usize) -> Pos {
    let before = &text[..byte.min(text.len())];
    let line = before.matches('\n').count() as u64 + 1;
    let col = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count())
        .unwrap_or(0) as u64
        + 1;
    Pos {
        file: file.clone(),
        line,
        col,
    }
}
