//! Rule languages: each reads policy paths into the loader's entries — Falco-style entries
//! as written, or rules whose conditions are already ASTs (`loader::AstRule`) — which the
//! collector resolves and compiles alike. A new language is a module implementing
//! [`RuleLanguage`] and a `language` value choosing it (`engine::Language`).

use std::path::Path;

use super::diag::Diags;
use super::loader::LoadedFiles;

/// A rule language: from files to the loader's entries.
pub trait RuleLanguage {
    /// The `language` value that selects it.
    fn name(&self) -> &'static str;
    /// Reads `path` (a file or a directory) into `out`; problems go to `diags` with their
    /// file and position.
    fn load(&self, path: &Path, out: &mut LoadedFiles, diags: &mut Diags);
}

/// Falco-style policy files (upstream's language).
#[derive(Debug, Clone, Copy, Default)]
pub struct Falco;

impl RuleLanguage for Falco {
    fn name(&self) -> &'static str {
        "falco"
    }

    fn load(&self, path: &Path, out: &mut LoadedFiles, diags: &mut Diags) {
        super::loader::load_path(path, out, diags)
    }
}

/// Sigma rules, read with their field-mapping configuration.
impl RuleLanguage for super::sigma::SigmaConfig {
    fn name(&self) -> &'static str {
        "sigma"
    }

    fn load(&self, path: &Path, out: &mut LoadedFiles, diags: &mut Diags) {
        super::sigma::load_sigma_path(path, self, out, diags)
    }
}
