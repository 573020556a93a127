//! Load diagnostics: coded warnings (like Falco's load result) and the bounded error list of
//! one load. Warnings that record a place where upstream is lax (it accepts the text with a
//! meaning of its own) become errors in strict mode; lint warnings (unused macros, rules that
//! can never match) stay warnings.

use std::fmt;

use super::source::{PolicyError, Pos};

/// What a warning is about. The code is stable text, shown in brackets and usable in scripts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Code {
    /// An irregular file repaired before the YAML parser (tab, indentation, quoting).
    YamlRepair,
    /// An attribute upstream does not know: compared as its literal text.
    UnknownField,
    /// A macro reference with no definition: false, as upstream.
    UnknownMacro,
    /// An action name no built-in provides: ignored, as upstream.
    UnknownAction,
    /// A priority name upstream does not know: low.
    UnknownPriority,
    /// A numeric comparison of a string or quoted value: compares as 0.
    NumericCompare,
    /// A comparison whose left side is not an attribute: the literal texts are compared.
    LiteralCompare,
    /// A Falco field the SysFlow model cannot provide: the rule is disabled.
    UnsupportedField,
    /// An entry key this build does not use.
    UnknownKey,
    /// A scalar where a list was expected (read as a one-item list).
    ScalarForList,
    /// A macro defined and never used.
    UnusedMacro,
    /// A list defined and never used.
    UnusedList,
    /// A rule name defined twice (both rules run, as upstream).
    DuplicateRule,
    /// A rule that cannot match any record type.
    NeverMatches,
    /// An `in` item that can never equal the field's value (`1:1024` style ranges).
    ImpossibleItem,
    /// `required_engine_version` / `required_plugin_versions`: noted, not enforced.
    Requirement,
    /// A change entry (append/override/disable) for a name not defined before it.
    NoSuchEntry,
    /// A Sigma field the config's `fieldmappings` does not name.
    SigmaUnmappedField,
    /// A Sigma construct upstream reads differently from the specification (`quirks:
    /// upstream`): lists of maps ANDed, literal wildcards, ignored modifiers, false selectors.
    SigmaUpstreamMeaning,
    /// `evt.type` compared with a Falco lowercase event name: false under `quirks: upstream`
    /// (upstream's `evt.type` holds SysFlow's names only).
    FalcoEventType,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Code::YamlRepair => "LOAD_YAML_REPAIR",
            Code::UnknownField => "LOAD_UNKNOWN_FIELD",
            Code::UnknownMacro => "LOAD_UNKNOWN_MACRO",
            Code::UnknownAction => "LOAD_UNKNOWN_ACTION",
            Code::UnknownPriority => "LOAD_UNKNOWN_PRIORITY",
            Code::NumericCompare => "LOAD_NUMERIC_COMPARE",
            Code::LiteralCompare => "LOAD_LITERAL_COMPARE",
            Code::UnsupportedField => "LOAD_UNSUPPORTED_FIELD",
            Code::UnknownKey => "LOAD_UNKNOWN_KEY",
            Code::ScalarForList => "LOAD_SCALAR_FOR_LIST",
            Code::UnusedMacro => "LOAD_UNUSED_MACRO",
            Code::UnusedList => "LOAD_UNUSED_LIST",
            Code::DuplicateRule => "LOAD_DUPLICATE_RULE",
            Code::NeverMatches => "LOAD_NEVER_MATCHES",
            Code::ImpossibleItem => "LOAD_IMPOSSIBLE_ITEM",
            Code::Requirement => "LOAD_REQUIREMENT_NOTED",
            Code::NoSuchEntry => "LOAD_NO_SUCH_ENTRY",
            Code::SigmaUnmappedField => "LOAD_SIGMA_UNMAPPED_FIELD",
            Code::SigmaUpstreamMeaning => "LOAD_SIGMA_UPSTREAM_MEANING",
            Code::FalcoEventType => "LOAD_FALCO_EVENT_TYPE",
        }
    }

    /// Whether the warning records upstream's laxness (strict mode refuses it).
    pub fn is_lax(self) -> bool {
        matches!(
            self,
            Code::YamlRepair
                | Code::UnknownField
                | Code::UnknownMacro
                | Code::UnknownAction
                | Code::UnknownPriority
                | Code::NumericCompare
                | Code::LiteralCompare
                | Code::UnsupportedField
                | Code::UnknownKey
                | Code::ScalarForList
                | Code::NoSuchEntry
                | Code::SigmaUnmappedField
                | Code::SigmaUpstreamMeaning
                | Code::FalcoEventType
        )
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A load warning: where, what, and its code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub code: Code,
    pub pos: Pos,
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} [{}]", self.pos, self.message, self.code)
    }
}

/// Most errors one load reports (the rest are counted).
pub const MAX_ERRORS: usize = 50;

/// Every error of one load (the first [`MAX_ERRORS`]), in the order found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadErrors {
    pub errors: Vec<PolicyError>,
    /// Errors found past the bound.
    pub more: usize,
}

impl LoadErrors {
    pub fn one(e: PolicyError) -> Self {
        LoadErrors {
            errors: vec![e],
            more: 0,
        }
    }
    /// The first error (there is always one).
    pub fn first(&self) -> Option<&PolicyError> {
        self.errors.first()
    }
}

impl fmt::Display for LoadErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.errors.len() + self.more;
        if n > 1 {
            writeln!(f, "{n} policy errors:")?;
        }
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        if self.more > 0 {
            write!(f, "\n... and {} more error(s) not shown", self.more)?;
        }
        Ok(())
    }
}

impl std::error::Error for LoadErrors {}

impl From<PolicyError> for LoadErrors {
    fn from(e: PolicyError) -> Self {
        LoadErrors::one(e)
    }
}

/// Collects one load's warnings and errors; in strict mode lax warnings are errors.
#[derive(Debug, Default)]
pub struct Diags {
    pub strict: bool,
    pub warnings: Vec<Warning>,
    pub errors: Vec<PolicyError>,
    pub more_errors: usize,
}

impl Diags {
    pub fn new(strict: bool) -> Self {
        Diags {
            strict,
            ..Default::default()
        }
    }

    /// Records a warning; in strict mode a lax one is recorded as an error instead (with the
    /// same position and text, and `snippet`).
    pub fn warn(&mut self, code: Code, pos: Pos, message: String, snippet: &str) {
        if self.strict && code.is_lax() {
            self.error(PolicyError {
                pos,
                message: format!("{message} (strict mode) [{code}]"),
                snippet: snippet.to_string(),
            });
        } else {
            self.warnings.push(Warning { code, pos, message });
        }
    }

    pub fn error(&mut self, e: PolicyError) {
        if self.errors.len() < MAX_ERRORS {
            self.errors.push(e);
        } else {
            self.more_errors += 1;
        }
    }

    pub fn has_errors(&self) -> bool {
        !self.errors.is_empty()
    }

    /// The errors, if any.
    pub fn into_result(&mut self) -> Result<(), LoadErrors> {
        if self.errors.is_empty() {
            return Ok(());
        }
        Err(LoadErrors {
            errors: std::mem::take(&mut self.errors),
            more: std::mem::take(&mut self.more_errors),
        })
    }

    /// Number of warnings per code (for the metrics and `-test`).
    pub fn count(&self, code: Code) -> usize {
        self.warnings.iter().filter(|w| w.code == code).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn pos(line: u64) -> Pos {
        Pos {
            file: Arc::from("p.yaml"),
            line,
            col: 3,
        }
    }

    #[test]
    fn strict_turns_lax_warnings_into_errors_only() {
        let mut d = Diags::new(true);
        d.warn(
            Code::UnknownField,
            pos(1),
            "unknown attribute `x.y`".into(),
            "x.y = 1",
        );
        d.warn(
            Code::UnusedMacro,
            pos(2),
            "macro `m` is never used".into(),
            "",
        );
        assert_eq!(d.warnings.len(), 1);
        assert_eq!(d.warnings[0].code, Code::UnusedMacro);
        let e = d.into_result().unwrap_err();
        assert_eq!(e.errors.len(), 1);
        let text = e.to_string();
        assert!(
            text.starts_with(
                "p.yaml:1:3: unknown attribute `x.y` (strict mode) [LOAD_UNKNOWN_FIELD]"
            ),
            "{text}"
        );
        assert!(text.contains("| x.y = 1"), "{text}");
        let mut d = Diags::new(false);
        d.warn(Code::UnknownField, pos(1), "unknown attribute".into(), "");
        assert!(d.into_result().is_ok());
        assert_eq!(d.count(Code::UnknownField), 1);
        assert_eq!(
            d.warnings[0].to_string(),
            "p.yaml:1:3: unknown attribute [LOAD_UNKNOWN_FIELD]"
        );
    }

    #[test]
    fn errors_are_bounded() {
        let mut d = Diags::new(false);
        for i in 0..(MAX_ERRORS as u64 + 7) {
            d.error(PolicyError {
                pos: pos(i + 1),
                message: "bad".into(),
                snippet: String::new(),
            });
        }
        let e = d.into_result().unwrap_err();
        assert_eq!(e.errors.len(), MAX_ERRORS);
        assert_eq!(e.more, 7);
        let text = e.to_string();
        assert!(text.starts_with("57 policy errors:"), "{text}");
        assert!(
            text.ends_with("... and 7 more error(s) not shown"),
            "{text}"
        );
    }
}
