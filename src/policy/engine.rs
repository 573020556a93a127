//! Evaluation: drop filters first, then the rules of the record's type bucket in file order;
//! every matching rule is recorded; `alert` emits only matched records, `enrich` all of them.

use std::path::Path;
use std::sync::Arc;

use super::actions;
use super::collector::compile_with;
use super::diag::{Diags, LoadErrors};
use super::ir::Pred;
use super::ir::TypeSet;
use super::language::{Falco, RuleLanguage};
use super::loader::LoadedFiles;
use super::memo::{Memo, TIME_SAMPLE};
use super::set::PolicySet;
use crate::record::{PolicyMatch, Record};

/// Output mode of the policy engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Only records that match at least one rule are emitted.
    Alert,
    /// Every record that is not dropped is emitted; matches add policies and tags.
    Enrich,
}

impl Mode {
    /// Parses a mode. Upstream's legacy `filter` and `bypass` behave as `enrich` (as upstream,
    /// which maps every unknown mode to enrich); the second value says a warning is due.
    pub fn parse(s: &str) -> Option<(Mode, bool)> {
        match s.trim().to_ascii_lowercase().as_str() {
            "alert" => Some((Mode::Alert, false)),
            "enrich" | "" => Some((Mode::Enrich, false)),
            "filter" | "bypass" => Some((Mode::Enrich, true)),
            _ => None,
        }
    }
}

/// How a policy set is loaded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// Every warning about upstream's laxness is an error (`strict` key, `-strict` flag).
    pub strict: bool,
    /// A rule that needs a field SysFlow records do not carry is disabled (`unsupported:
    /// disable`); by default the name compares as literal text, as upstream.
    pub disable_unsupported: bool,
    /// `language`: Falco-style files, or Sigma rules with their field-mapping config.
    pub language: Language,
    /// `quirks: fixed`: conditions read the record as recorded instead of as upstream's
    /// engine does (doubled flow counters, slot aliases, the op-flag name cache).
    pub fixed_quirks: bool,
}

/// The rule language of a policy stage (`language`, `config`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Language {
    #[default]
    Falco,
    /// Sigma rules; `config` is the field-mapping file (none: fields must be attributes).
    Sigma { config: Option<std::path::PathBuf> },
}

/// Loads and compiles a policy path (file or directory). Every error of the load is
/// reported (bounded); warnings are in the set.
pub fn load_policies(path: &Path, opts: &LoadOptions) -> Result<PolicySet, LoadErrors> {
    load_policy_paths(&[path], opts)
}

/// Evaluates records against a compiled set.
#[derive(Clone)]
pub struct Engine {
    pub set: Arc<PolicySet>,
    pub mode: Mode,
}

impl Engine {
    pub fn new(set: Arc<PolicySet>, mode: Mode) -> Self {
        Engine { set, mode }
    }

    /// Applies the policies to one record; returns whether it is emitted.
    pub fn apply(&self, rec: &mut Record) -> bool {
        self.apply_memo(rec, &mut Memo::default())
    }

    /// As [`Engine::apply`], with `memo` kept across records (it holds the dispatch cache:
    /// reuse one per shard).
    pub fn apply_memo(&self, rec: &mut Record, memo: &mut Memo) -> bool {
        memo.start(&self.set, rec);
        let kind = rec.kind();
        let Some(bit) = TypeSet::bit(kind) else {
            return false;
        };
        memo.ticks = memo.ticks.wrapping_add(1);
        let timed = memo.ticks.is_multiple_of(TIME_SAMPLE);
        let matched = match memo.bucket(&self.set, bit, rec) {
            Some(bucket) => {
                if bucket.drop || bucket.filters.iter().any(|f| f.eval_memo(rec, memo)) {
                    return false;
                }
                let mut matched = false;
                if bucket.index.is_active() {
                    let mut cands = std::mem::take(&mut memo.cands);
                    bucket.index.candidates(rec, memo, &mut cands);
                    for &pos in &cands {
                        let (i, p) = &bucket.rules[pos as usize];
                        if self.eval_rule(*i, p, rec, memo, timed) {
                            matched = true;
                            self.record_match(*i, rec);
                        }
                    }
                    memo.cands = cands;
                } else {
                    for (i, p) in &bucket.rules {
                        if self.eval_rule(*i, p, rec, memo, timed) {
                            matched = true;
                            self.record_match(*i, rec);
                        }
                    }
                }
                matched
            }
            None => {
                // Dispatch cache full: the per-type conditions (same result).
                let b = bit as usize;
                for f in &self.set.filters {
                    if f.types.contains(kind) && f.per_type[b].eval_memo(rec, memo) {
                        return false;
                    }
                }
                let mut matched = false;
                for &i in &self.set.index[b] {
                    if self.eval_rule(i, &self.set.rules[i].per_type[b], rec, memo, timed) {
                        matched = true;
                        self.record_match(i, rec);
                    }
                }
                matched
            }
        };
        matched || self.mode == Mode::Enrich
    }

    /// Evaluates rule `i`'s condition `p`; `timed`: adds the (scaled) time to the rule's
    /// evaluation counter.
    #[inline]
    fn eval_rule(&self, i: usize, p: &Pred, rec: &Record, memo: &mut Memo, timed: bool) -> bool {
        if !timed {
            return p.eval_memo(rec, memo);
        }
        let t = std::time::Instant::now();
        let r = p.eval_memo(rec, memo);
        let ns = t.elapsed().as_nanos() as u64;
        self.set.rules[i].eval_nanos.fetch_add(
            ns.saturating_mul(TIME_SAMPLE),
            std::sync::atomic::Ordering::Relaxed,
        );
        r
    }

    fn record_match(&self, i: usize, rec: &mut Record) {
        let rule = &self.set.rules[i];
        rule.matches
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        rec.policies.push(PolicyMatch {
            id: rule.name.clone(),
            desc: rule.desc.clone(),
            priority: rule.priority,
            tags: rule.tags.clone(),
        });
        for a in &rule.actions {
            a.run(rec);
        }
    }

    /// Names of the rules that match `rec` when every enabled rule is evaluated (no index);
    /// the reference the type index is checked against.
    pub fn matches_without_index(&self, rec: &Record) -> Vec<Arc<str>> {
        let kind = rec.kind();
        if self.set.filters.iter().any(|f| f.pred.eval(rec)) {
            return Vec::new();
        }
        self.set
            .rules
            .iter()
            .filter(|r| r.enabled && r.prefilter.contains(kind) && r.pred.eval(rec))
            .map(|r| r.name.clone())
            .collect()
    }

    /// Processes a batch in order (`memo`: the shard's evaluation state).
    pub fn process(&self, input: Vec<Record>, out: &mut Vec<Record>, memo: &mut Memo) {
        for mut r in input {
            if self.apply_memo(&mut r, memo) {
                out.push(r);
            }
        }
    }
}

/// Loads and compiles several policy paths as one set (in the order given).
pub fn load_policy_paths(paths: &[&Path], opts: &LoadOptions) -> Result<PolicySet, LoadErrors> {
    let mut diags = Diags::new(opts.strict);
    let mut all = LoadedFiles::default();
    let language: Box<dyn RuleLanguage> = match &opts.language {
        Language::Falco => Box::new(Falco),
        Language::Sigma { config } => {
            let mut cfg = match config {
                Some(c) => super::sigma::SigmaConfig::load(c)?,
                None => super::sigma::SigmaConfig::default(),
            };
            cfg.upstream = !opts.fixed_quirks;
            Box::new(cfg)
        }
    };
    for p in paths {
        language.load(p, &mut all, &mut diags);
    }
    compile_loaded(&all, diags, opts)
}

/// Compiles loaded files with the built-in actions; every error of the load and the compile
/// is reported.
fn compile_loaded(
    all: &LoadedFiles,
    mut diags: Diags,
    opts: &LoadOptions,
) -> Result<PolicySet, LoadErrors> {
    let copts = super::collector::CompileOptions {
        disable_unsupported: opts.disable_unsupported,
        quirks: !opts.fixed_quirks,
    };
    let set = compile_with(all, &actions::registry(), &mut diags, copts);
    diags.into_result()?;
    Ok(set)
}

/// Name of the one rule [`load_condition`] compiles.
pub const CONDITION_RULE: &str = "condition";

/// Compiles one condition (sfprint's `-f`) as a set of one rule named [`CONDITION_RULE`].
/// Errors name the file `label`.
pub fn load_condition(
    label: &str,
    condition: &str,
    opts: &LoadOptions,
) -> Result<PolicySet, LoadErrors> {
    let mut diags = Diags::new(opts.strict);
    let mut all = LoadedFiles::default();
    // A JSON string is a YAML double-quoted scalar: any text survives as the condition.
    let quoted = serde_json::Value::String(condition.to_string()).to_string();
    let text = format!(
        "- rule: {CONDITION_RULE}\n  desc: {label}\n  condition: {quoted}\n  output: {label}\n  priority: low\n"
    );
    super::loader::load_text(label, &text, &mut all, &mut diags);
    // Errors point into the condition as given (line 1, its column), not into the wrapper.
    for f in &mut all.files {
        for e in &mut f.entries {
            if let super::loader::Entry::Rule(r) = e {
                if r.condition.is_some() {
                    r.condition = Some(super::source::CondText::standalone(label, condition));
                }
            }
        }
    }
    compile_loaded(&all, diags, opts)
}

/// A synthetic rule set of `n` rules for benchmarks: each rule constrains the record type and
/// tests process, file or network values that real rules test; about one rule in twenty
/// names values the generator produces (so some rules match), the others do not.
pub fn synthetic_rules(n: usize) -> String {
    let types = ["PE", "FF", "NF", "FE", "NE", "PF", "FF"];
    const NAMES: [&str; 5] = ["curl", "cat", "bash", "python3", "tar"];
    const PORTS: [u32; 6] = [80, 443, 53, 8080, 5432, 22];
    let mut out = String::from(
        "- list: shells\n  items: [bash, sh, zsh, dash, ksh]\n- macro: spawned_shell\n  condition: sf.type = PE and sf.opflags = EXEC and sf.proc.name in (shells)\n",
    );
    for i in 0..n {
        let t = types[i % types.len()];
        let real = (i / 5) % 20 == 0;
        let name = NAMES[i % NAMES.len()];
        let cond = match (i % 5, real) {
            (0, false) => format!("sf.type = {t} and sf.proc.name in (tool{i}, helper{i}, svc{i}) and sf.proc.uid = {i}"),
            (0, true) => format!("sf.type = {t} and sf.proc.name in (tool{i}, {name}) and sf.proc.uid >= 0"),
            (1, false) => format!("sf.type = {t} and sf.file.path startswith /opt/app{i}/ and not sf.proc.name = python3"),
            (1, true) => format!("sf.type = {t} and sf.file.path startswith /etc/ and not sf.proc.name = tool{i}"),
            (2, false) => format!("sf.type = {t} and sf.net.dport = {} and sf.proc.exe contains agent{i}", 10000 + i),
            (2, true) => format!("sf.type = {t} and sf.net.dport = {} and sf.proc.exe contains /usr/", PORTS[i % PORTS.len()]),
            (3, false) => format!("sf.type = {t} and spawned_shell and sf.pproc.name = service{i}"),
            (3, true) => format!("sf.type = {t} and spawned_shell and sf.pproc.name = {name}"),
            (_, false) => format!("sf.type = {t} and sf.proc.args icontains --secret{i} and sf.container.name exists"),
            (_, true) => format!("sf.type = {t} and sf.proc.args icontains {name} and sf.container.name exists"),
        };
        out.push_str(&format!(
            "- rule: synthetic rule {i}\n  desc: synthetic\n  condition: {cond}\n  priority: medium\n"
        ));
    }
    out
}
