//! The leniency step: upstream parses policies with a token grammar, so several shipped files
//! are not valid YAML (a top-level entry indented by a space, tabs, rule names with `: `).
//! They are repaired before the YAML parser runs, each repair a warning with file:line:col
//! (an error in strict mode).

use std::sync::Arc;

use super::diag::{Code, Warning};
use super::source::Pos;

/// Repairs upstream's irregular files; returns the text and one warning per repair.
pub fn leniency(file: &str, text: &str) -> (String, Vec<Warning>) {
    let fname: Arc<str> = Arc::from(file);
    let at = |line: usize, col: usize, message: String| Warning {
        code: Code::YamlRepair,
        pos: Pos {
            file: fname.clone(),
            line: line as u64,
            col: col as u64,
        },
        message,
    };
    let mut warnings = Vec::new();
    let mut out = String::with_capacity(text.len());
    const TOP: [&str; 7] = [
        "rule:",
        "macro:",
        "list:",
        "filter:",
        "drop:",
        "required_engine_version:",
        "required_plugin_versions:",
    ];
    let mut prev_indented = false;
    // Columns the current entry was moved left by the repair above.
    let mut shifted = 0usize;
    for (n, line) in text.split_inclusive('\n').enumerate() {
        let mut l = line.to_string();
        if l.contains('\t') {
            let col = l.find('\t').map(|c| c + 1).unwrap_or(1);
            warnings.push(at(
                n + 1,
                col,
                "tab replaced by a space (YAML does not allow tabs here)".into(),
            ));
            l = l.replace('\t', " ");
        }
        let trimmed = l.trim_start_matches(' ');
        let indent = l.len() - trimmed.len();
        let is_entry = |rest: &str| TOP.iter().any(|k| rest.trim_start().starts_with(k));
        if indent == 0 && trimmed.strip_prefix("- ").is_some_and(is_entry) {
            shifted = 0;
        }
        if (1..=3).contains(&indent) && trimmed.strip_prefix("- ").is_some_and(is_entry) {
            warnings.push(at(
                n + 1,
                1,
                format!("top-level entry indented by {indent} space(s); moved to column 1"),
            ));
            l = trimmed.to_string();
            shifted = indent;
        } else if shifted > 0 && indent == 2 + shifted {
            // The rest of a shifted entry moves with it.
            l = l[shifted..].to_string();
        }
        // A rule name containing ": " is not a plain YAML scalar; upstream keeps the raw text.
        if let Some(rest) = l.strip_prefix("- rule:") {
            let v = rest.trim();
            if v.contains(": ") && !v.starts_with(['"', '\'']) {
                warnings.push(at(n + 1, 9, "rule name containing `: ` quoted".into()));
                let nl = if l.ends_with('\n') { "\n" } else { "" };
                l = format!("- rule: '{}'{nl}", v.replace('\'', "''"));
            }
        }
        // A continuation line at column 1 inside an entry belongs to the value above it.
        let first = l.chars().next();
        if matches!(first, Some(c) if !c.is_whitespace() && c != '-' && c != '#') && prev_indented {
            warnings.push(at(
                n + 1,
                1,
                "continuation line at column 1 indented".into(),
            ));
            l = format!("    {l}");
        }
        if !l.trim().is_empty() {
            prev_indented = l.starts_with(' ') || l.starts_with("- ");
        }
        out.push_str(&l);
    }
    (out, warnings)
}
