//! Pipeline configuration in upstream's `pipeline.json` shape, with environment overrides and
//! validation that names the file, the stage and the key.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::Value;

pub mod suggest;
pub mod values;
pub mod vault;

/// A configuration error: where it is and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    /// The entry the error is about: section (`pipeline`, `drivers`), index and name.
    pub stage: Option<(&'static str, usize, String)>,
    pub key: Option<String>,
    pub message: String,
}

impl ConfigError {
    /// An error about the file as a whole (or a top-level key).
    pub fn top(file: impl Into<String>, key: Option<&str>, message: impl Into<String>) -> Self {
        ConfigError {
            file: file.into(),
            stage: None,
            key: key.map(str::to_string),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some((section, i, p)) = &self.stage {
            write!(f, ": {section}[{i}] ({p})")?;
        }
        if let Some(k) = &self.key {
            write!(f, ": key `{k}`")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

/// A channel reference: `"<name> <type>"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Channel {
    pub name: String,
    pub ctype: String,
}

/// One setting: the key as written (for messages) and its value as a string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    pub key: String,
    pub value: String,
    /// Set when the value came from an environment variable (its name).
    pub from_env: Option<String>,
}

/// One element of `pipeline` (or of `drivers`: then `processor` is the driver's name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageConfig {
    /// `pipeline` or `drivers`.
    pub section: &'static str,
    pub index: usize,
    pub processor: String,
    pub handler: Option<String>,
    pub input: Option<Channel>,
    pub outputs: Vec<Channel>,
    /// Other keys, by lowercase name.
    pub settings: BTreeMap<String, Setting>,
}

impl StageConfig {
    /// Looks a setting up case-insensitively.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.settings
            .get(&key.to_ascii_lowercase())
            .map(|s| s.value.as_str())
    }
}

/// A parsed `pipeline.json`.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    pub file: PathBuf,
    pub stages: Vec<StageConfig>,
    /// `drivers` entries (`driver` is the name; `out`, `path` and settings as for stages).
    pub drivers: Vec<StageConfig>,
    /// The top-level `metrics` object (`listen`), as settings.
    pub metrics: Option<StageConfig>,
    /// Warnings found while loading (legacy values).
    pub warnings: Vec<String>,
    /// Top-level keys this build does not know (checked with the stages' keys).
    pub unknown_top: Vec<String>,
}

/// What the key checks found beyond errors: the warnings, and the unknown keys that are a
/// near miss of a known one (`polices` for `policies`), which `-test` names first.
#[derive(Debug, Default, Clone)]
pub struct KeyFindings {
    pub warnings: Vec<String>,
    /// `` `polices` (did you mean `policies`?) `` per near miss.
    pub typos: Vec<String>,
}

/// Top-level keys of `pipeline.json`.
pub const TOP_KEYS: &[&str] = &["pipeline", "drivers", "metrics"];

/// Whether `key` is one of `known` (case-insensitively; `prefix.*` patterns match a prefix).
pub fn is_known(key: &str, known: &[&str]) -> bool {
    let key = key.to_ascii_lowercase();
    known.iter().any(|k| match k.strip_suffix('*') {
        Some(prefix) => key.starts_with(prefix),
        None => k.eq_ignore_ascii_case(&key),
    })
}

/// A setting's value as text; `None` for `null`, which is refused (upstream reads it as
/// "unset", which hides a typo or a templating mistake behind a default).
fn value_to_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null => None,
        // Objects/arrays (e.g. `kafka.config`) are kept as JSON text.
        other => Some(other.to_string()),
    }
}

/// A JSON document whose objects refuse duplicate keys: serde_json keeps the last of two
/// silently, so `"buffer": 10, ..., "buffer": 100000` would run with a value nobody sees.
struct NoDuplicates(Value);

impl<'de> serde::Deserialize<'de> for NoDuplicates {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = NoDuplicates;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_bool<E>(self, b: bool) -> Result<NoDuplicates, E> {
                Ok(NoDuplicates(Value::Bool(b)))
            }
            fn visit_i64<E>(self, n: i64) -> Result<NoDuplicates, E> {
                Ok(NoDuplicates(Value::from(n)))
            }
            fn visit_u64<E>(self, n: u64) -> Result<NoDuplicates, E> {
                Ok(NoDuplicates(Value::from(n)))
            }
            fn visit_f64<E>(self, n: f64) -> Result<NoDuplicates, E> {
                Ok(NoDuplicates(Value::from(n)))
            }
            fn visit_str<E>(self, s: &str) -> Result<NoDuplicates, E> {
                Ok(NoDuplicates(Value::String(s.to_string())))
            }
            fn visit_string<E>(self, s: String) -> Result<NoDuplicates, E> {
                Ok(NoDuplicates(Value::String(s)))
            }
            fn visit_unit<E>(self) -> Result<NoDuplicates, E> {
                Ok(NoDuplicates(Value::Null))
            }
            fn visit_none<E>(self) -> Result<NoDuplicates, E> {
                Ok(NoDuplicates(Value::Null))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<NoDuplicates, A::Error> {
                let mut items = Vec::new();
                while let Some(NoDuplicates(v)) = seq.next_element()? {
                    items.push(v);
                }
                Ok(NoDuplicates(Value::Array(items)))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<NoDuplicates, A::Error> {
                let mut m = serde_json::Map::new();
                while let Some(k) = map.next_key::<String>()? {
                    if m.contains_key(&k) {
                        return Err(serde::de::Error::custom(format!(
                            "duplicate key `{k}` in one object (upstream would keep the last silently)"
                        )));
                    }
                    let NoDuplicates(v) = map.next_value()?;
                    m.insert(k, v);
                }
                Ok(NoDuplicates(Value::Object(m)))
            }
        }
        d.deserialize_any(V)
    }
}

fn parse_channel(s: &str) -> Option<Channel> {
    let mut it = s.split_whitespace();
    let name = it.next()?;
    let ctype = it.next()?;
    if it.next().is_some() {
        return None;
    }
    Some(Channel {
        name: name.to_string(),
        ctype: ctype.to_string(),
    })
}

impl PipelineConfig {
    /// Reads and parses `path`, applies environment overrides from `env`.
    pub fn load(path: &Path, env: &[(String, String)]) -> Result<Self, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: file.clone(),
            stage: None,
            key: None,
            message: format!("cannot read: {e}"),
        })?;
        Self::parse(&text, &file, env)
    }

    /// Parses configuration text; `file` names it in errors.
    pub fn parse(text: &str, file: &str, env: &[(String, String)]) -> Result<Self, ConfigError> {
        let err = |key: Option<&str>, message: String| ConfigError::top(file, key, message);
        let NoDuplicates(root) = serde_json::from_str(text).map_err(|e| {
            let what = if e.is_data() {
                "invalid configuration"
            } else {
                "invalid JSON"
            };
            let text = e.to_string();
            let suffix = format!(" at line {} column {}", e.line(), e.column());
            let msg = text.strip_suffix(&suffix).unwrap_or(&text);
            err(
                None,
                format!("{what} at line {} column {}: {msg}", e.line(), e.column()),
            )
        })?;
        let obj = root
            .as_object()
            .ok_or_else(|| err(None, "top level must be a JSON object".into()))?;
        let warnings = Vec::new();
        let unknown_top: Vec<String> = obj
            .keys()
            .filter(|k| !TOP_KEYS.contains(&k.as_str()) && !k.starts_with('_'))
            .cloned()
            .collect();
        let list = obj
            .get("pipeline")
            .ok_or_else(|| err(Some("pipeline"), "missing".into()))?
            .as_array()
            .ok_or_else(|| err(Some("pipeline"), "must be a list of stages".into()))?;
        let mut stages = Vec::new();
        for (i, st) in list.iter().enumerate() {
            let mut stage = parse_entry(file, "pipeline", "processor", i, st)?;
            apply_env(&mut stage, env);
            stages.push(stage);
        }
        let drivers = match obj.get("drivers") {
            Some(Value::Array(a)) => a
                .iter()
                .enumerate()
                .map(|(i, d)| parse_entry(file, "drivers", "driver", i, d))
                .collect::<Result<Vec<_>, _>>()?,
            Some(_) => return Err(err(Some("drivers"), "must be a list".into())),
            None => Vec::new(),
        };
        let metrics = match obj.get("metrics") {
            None => None,
            Some(m @ Value::Object(_)) => {
                let mut e = parse_entry(file, "metrics", "", 0, m)?;
                e.processor = "metrics".into();
                apply_env(&mut e, env);
                Some(e)
            }
            Some(_) => {
                return Err(err(
                    Some("metrics"),
                    "must be an object, e.g. {\"listen\": \"127.0.0.1:9464\"}".into(),
                ))
            }
        };
        Ok(PipelineConfig {
            file: PathBuf::from(file),
            stages,
            drivers,
            metrics,
            warnings,
            unknown_top,
        })
    }

    /// Checks `st`'s keys against `known`: a key this build does not use is a warning, as
    /// upstream ignores it — naming the nearest known key of the stage when there is one
    /// (`did you mean \`policies\`?`) — or, with `strict`, a configuration error.
    pub fn check_keys(
        &self,
        st: &StageConfig,
        known: &[&str],
        strict: bool,
        found: &mut KeyFindings,
    ) -> Result<(), ConfigError> {
        for s in st.settings.values() {
            if is_known(&s.key, known) {
                continue;
            }
            let near = suggest::nearest(&s.key, known);
            let hint = near
                .map(|k| format!(" (did you mean `{k}`?)"))
                .unwrap_or_default();
            if strict {
                return Err(self.error(
                    st,
                    Some(&s.key),
                    format!("unknown key{hint} (strict: unknown keys are errors)"),
                ));
            }
            if near.is_some() {
                found.typos.push(format!("`{}`{hint}", s.key));
            }
            let at = match st.section {
                "metrics" => format!("{}: metrics", self.file.display()),
                section => format!(
                    "{}: {section}[{}] ({})",
                    self.file.display(),
                    st.index,
                    st.processor
                ),
            };
            found.warnings.push(format!(
                "{at}: key `{}` is not used by this build and is ignored{hint}",
                s.key
            ));
        }
        Ok(())
    }

    /// Checks the top-level keys, as [`PipelineConfig::check_keys`] does a stage's.
    pub fn check_top_keys(&self, strict: bool, found: &mut KeyFindings) -> Result<(), ConfigError> {
        for k in &self.unknown_top {
            let near = suggest::nearest(k, TOP_KEYS);
            let hint = near
                .map(|n| format!(" (did you mean `{n}`?)"))
                .unwrap_or_default();
            if strict {
                return Err(ConfigError::top(
                    self.file.display().to_string(),
                    Some(k),
                    format!("unknown top-level key{hint} (strict: unknown keys are errors)"),
                ));
            }
            if near.is_some() {
                found.typos.push(format!("`{k}`{hint}"));
            }
            found.warnings.push(format!(
                "{}: unknown top-level key `{k}` ignored{hint}",
                self.file.display()
            ));
        }
        Ok(())
    }

    pub fn error(&self, stage: &StageConfig, key: Option<&str>, message: String) -> ConfigError {
        ConfigError {
            file: self.file.display().to_string(),
            stage: match stage.section {
                "metrics" => None,
                section => Some((section, stage.index, stage.processor.clone())),
            },
            key: key.map(str::to_string),
            message,
        }
    }
}

/// One entry of `section`: its name under `name_key` (required unless empty), `in`, `out`,
/// `handler`, and the other keys as settings.
fn parse_entry(
    file: &str,
    section: &'static str,
    name_key: &str,
    i: usize,
    st: &Value,
) -> Result<StageConfig, ConfigError> {
    let so = st
        .as_object()
        .ok_or_else(|| ConfigError::top(file, None, format!("{section}[{i}] must be an object")))?;
    let err = |name: &str, key: Option<&str>, message: String| ConfigError {
        file: file.to_string(),
        stage: (!name_key.is_empty()).then(|| (section, i, name.to_string())),
        key: key.map(str::to_string),
        message,
    };
    let name = if name_key.is_empty() {
        String::new()
    } else {
        so.get(name_key)
            .and_then(Value::as_str)
            .ok_or_else(|| {
                err(
                    "?",
                    Some(name_key),
                    match name_key {
                        "processor" => "missing (a string naming the stage's processor)".into(),
                        _ => format!("missing (a string naming the {name_key})"),
                    },
                )
            })?
            .to_string()
    };
    let mut stage = StageConfig {
        section,
        index: i,
        processor: name.clone(),
        handler: None,
        input: None,
        outputs: Vec::new(),
        settings: BTreeMap::new(),
    };
    for (k, v) in so {
        match k.as_str() {
            k if k == name_key => {}
            "handler" if section == "pipeline" => stage.handler = v.as_str().map(str::to_string),
            "in" if section != "metrics" => {
                let s = v.as_str().ok_or_else(|| {
                    err(
                        &name,
                        Some("in"),
                        "must be a string \"<name> <type>\"".into(),
                    )
                })?;
                stage.input = Some(parse_channel(s).ok_or_else(|| {
                    err(
                        &name,
                        Some("in"),
                        format!("`{s}` is not of the form \"<name> <type>\""),
                    )
                })?);
            }
            "out" if section != "metrics" => {
                let items: Vec<&Value> = match v {
                    Value::Array(a) => a.iter().collect(),
                    other => vec![other],
                };
                for it in items {
                    let s = it.as_str().ok_or_else(|| {
                        err(
                            &name,
                            Some("out"),
                            "must be a string or a list of strings".into(),
                        )
                    })?;
                    stage.outputs.push(parse_channel(s).ok_or_else(|| {
                        err(
                            &name,
                            Some("out"),
                            format!("`{s}` is not of the form \"<name> <type>\""),
                        )
                    })?);
                }
            }
            other if other.starts_with('_') => {}
            other => {
                let value = value_to_string(v).ok_or_else(|| {
                    err(
                        &name,
                        Some(other),
                        "null is not a value (remove the key to use its default)".into(),
                    )
                })?;
                let lower = other.to_ascii_lowercase();
                if let Some(first) = stage.settings.get(&lower) {
                    return Err(err(
                        &name,
                        Some(other),
                        format!(
                            "given twice (as `{}` and `{other}`; keys are case-insensitive)",
                            first.key
                        ),
                    ));
                }
                stage.settings.insert(
                    lower,
                    Setting {
                        key: other.to_string(),
                        value,
                        from_env: None,
                    },
                );
            }
        }
    }
    Ok(stage)
}

/// Keys of this build with a `_` in their name: an environment variable, where `_` stands
/// for `.`, names them with a `.` there (`EXPORTER_WHEN_FULL` is `when.full`).
const UNDERSCORE_KEYS: &[&str] = &["when_full", "retry.drain_timeout"];

/// Applies `<PROCESSOR>_<KEY>` environment variables: `_` in the key becomes `.`, and the key
/// is matched case-insensitively, so `EXPORTER_SYSLOG_HOST` overrides `syslog.host` and
/// `EXPORTER_ES_BULK_NUMWORKERS` overrides `es.bulk.numWorkers`; a key written with `_`
/// (`when_full`) is matched too, so `EXPORTER_WHEN_FULL` overrides it.
fn apply_env(stage: &mut StageConfig, env: &[(String, String)]) {
    let prefix = format!("{}_", stage.processor.to_ascii_uppercase());
    for (name, value) in env {
        let Some(rest) = name.strip_prefix(&prefix) else {
            continue;
        };
        if rest.is_empty() {
            continue;
        }
        let dotted = rest.to_ascii_lowercase().replace('_', ".");
        let key = stage
            .settings
            .keys()
            .find(|k| k.replace('_', ".") == dotted)
            .cloned()
            .or_else(|| {
                UNDERSCORE_KEYS
                    .iter()
                    .find(|k| k.replace('_', ".") == dotted)
                    .map(|k| k.to_string())
            })
            .unwrap_or(dotted);
        let original = stage
            .settings
            .get(&key)
            .map(|s| s.key.clone())
            .unwrap_or_else(|| key.clone());
        stage.settings.insert(
            key,
            Setting {
                key: original,
                value: value.clone(),
                from_env: Some(name.clone()),
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CFG: &str = r#"{
      "pipeline":[
        {"processor":"sysflowreader","handler":"flattener","in":"sysflow sysflowchan","out":"flat flattenerchan"},
        {"processor":"exporter","in":"flat flattenerchan","export":"syslog","syslog.host":"a","es.bulk.numWorkers":1,"buffer":100,"flag":true,
         "kafka.config":{"bootstrap.servers":"k:1"}}
      ]}"#;

    #[test]
    fn parses_values_of_any_json_type() {
        let c = PipelineConfig::parse(CFG, "p.json", &[]).unwrap();
        assert_eq!(c.stages.len(), 2);
        let e = &c.stages[1];
        assert_eq!(e.get("buffer"), Some("100"));
        assert_eq!(e.get("flag"), Some("true"));
        assert_eq!(e.get("ES.BULK.NUMWORKERS"), Some("1"));
        assert_eq!(
            e.get("kafka.config"),
            Some(r#"{"bootstrap.servers":"k:1"}"#)
        );
        assert_eq!(
            c.stages[0].outputs,
            vec![Channel {
                name: "flat".into(),
                ctype: "flattenerchan".into()
            }]
        );
    }

    #[test]
    fn env_overrides_match_keys_case_insensitively() {
        let env = vec![
            ("EXPORTER_SYSLOG_HOST".to_string(), "127.0.0.1".to_string()),
            ("EXPORTER_ES_BULK_NUMWORKERS".to_string(), "4".to_string()),
            ("EXPORTER_SYSLOG_PORT".to_string(), "1514".to_string()),
            ("POLICYENGINE_MODE".to_string(), "enrich".to_string()),
        ];
        let c = PipelineConfig::parse(CFG, "p.json", &env).unwrap();
        let e = &c.stages[1];
        assert_eq!(e.get("syslog.host"), Some("127.0.0.1"));
        assert_eq!(e.get("es.bulk.numworkers"), Some("4"));
        assert_eq!(e.settings["es.bulk.numworkers"].key, "es.bulk.numWorkers");
        assert_eq!(e.get("syslog.port"), Some("1514"), "new keys are added");
        assert_eq!(c.stages[0].get("mode"), None, "other processors untouched");
        // Keys with `_` in their name.
        let env = vec![
            ("EXPORTER_WHEN_FULL".to_string(), "drop_newest".to_string()),
            ("EXPORTER_RETRY_DRAIN_TIMEOUT".to_string(), "5s".to_string()),
        ];
        let c = PipelineConfig::parse(CFG, "p.json", &env).unwrap();
        assert_eq!(c.stages[1].get("when_full"), Some("drop_newest"));
        assert_eq!(c.stages[1].get("retry.drain_timeout"), Some("5s"));
        assert_eq!(c.stages[1].get("when.full"), None);
    }

    #[test]
    fn errors_name_file_stage_and_key() {
        let e = PipelineConfig::parse(r#"{"pipeline":[{"in":"a b"}]}"#, "x.json", &[]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "x.json: pipeline[0] (?): key `processor`: missing (a string naming the stage's processor)"
        );
        let e = PipelineConfig::parse(
            r#"{"pipeline":[{"processor":"exporter","in":"abc"}]}"#,
            "x.json",
            &[],
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("pipeline[0] (exporter): key `in`"),
            "{e}"
        );
        let e = PipelineConfig::parse("{\"pipeline\": [", "x.json", &[]).unwrap_err();
        assert!(e.to_string().contains("invalid JSON at line 1"), "{e}");
    }
}
