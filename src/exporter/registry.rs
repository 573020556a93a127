//! The registries of transports (`export`) and formats (`format`): each lives in its own
//! folder and is named here once. The exporter stage's known keys, the "expected ..." lists
//! of its error messages and the key tables of `docs/configuration.md` all come from these
//! lists (a test checks the tables), so adding a transport or a format is one folder plus one
//! line below.

use std::fmt;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use super::{DeliveryConfig, Transport, TransportError};
use crate::config::vault::Vault;
use crate::config::{ConfigError, PipelineConfig, StageConfig};
use crate::encode::RecordEncoder;

/// One documented configuration key: a row of its table in `docs/configuration.md`.
#[derive(Debug, Clone, Copy)]
pub struct Key {
    /// The key, or several sharing a row (`es.username`, `es.password`); a name ending in
    /// `.*` stands for any key under that prefix.
    pub names: &'static [&'static str],
    /// The default as the docs print it (`—` when there is none).
    pub default: &'static str,
    /// The meaning, as the docs print it.
    pub doc: &'static str,
}

/// What a transport's configuration parser gets: the stage, its vault and the warnings list.
pub struct Ctx<'a> {
    pub cfg: &'a PipelineConfig,
    pub st: &'a StageConfig,
    pub vault: Option<&'a Vault>,
    pub warnings: &'a mut Vec<String>,
}

impl Ctx<'_> {
    /// A configuration error about `key` of this stage.
    pub fn error(&self, key: &str, msg: String) -> ConfigError {
        self.cfg.error(self.st, Some(key), msg)
    }

    /// The trimmed value of `key`, when set and not empty.
    pub fn value(&self, key: &str) -> Option<&str> {
        self.st.get(key).map(str::trim).filter(|v| !v.is_empty())
    }

    /// `key` must name a readable file when set.
    pub fn file(&self, key: &str) -> Result<Option<String>, ConfigError> {
        match self.value(key) {
            None => Ok(None),
            Some(v) if std::path::Path::new(v).is_file() => Ok(Some(v.to_string())),
            Some(v) => Err(self.error(key, format!("`{v}` is not a readable file"))),
        }
    }
}

/// A transport's validated configuration: everything the exporter needs to know about it.
pub trait TransportConfig: fmt::Debug + Send + Sync {
    /// The `export` value (a metrics label).
    fn kind(&self) -> &'static str;
    /// Opens the transport.
    fn open(&self) -> Result<Box<dyn Transport>, TransportError>;
    /// A name for logs and messages (`file ./out.json`, `syslog tcp://host:514`, ...).
    fn target(&self) -> String;
    /// Whether it talks to a network peer (what `-test` checks).
    fn is_network(&self) -> bool {
        false
    }
    /// Whether records need partition keys (one process, one partition).
    fn needs_keys(&self) -> bool {
        false
    }
    /// Whether records need document ids.
    fn needs_ids(&self) -> bool {
        false
    }
    /// Records per batch when `buffer` is not set (`None`: the exporter's default).
    fn default_buffer(&self) -> Option<usize> {
        None
    }
    /// `linger` when not set.
    fn default_linger(&self) -> Duration {
        Duration::ZERO
    }
    /// Adjusts the delivery settings from the transport's own keys (Elasticsearch's
    /// `es.bulk.flushTimeout` is its idle flush).
    fn delivery(&self, _ctx: &Ctx, _d: &mut DeliveryConfig) -> Result<(), ConfigError> {
        Ok(())
    }
}

/// One transport of the registry.
pub struct TransportSpec {
    /// Its `export` names (the first is the canonical one).
    pub names: &'static [&'static str],
    /// Its keys, in the order the docs list them.
    pub keys: &'static [Key],
    /// Reads and checks its keys.
    pub parse: fn(&mut Ctx) -> Result<Arc<dyn TransportConfig>, ConfigError>,
}

/// Every transport this build has: the one list to extend.
pub static TRANSPORTS: &[&TransportSpec] = &[
    &super::terminal::SPEC,
    &super::file::SPEC,
    &super::null::SPEC,
    &super::syslog::SPEC,
    &super::kafka::SPEC,
    &super::es::SPEC,
    &super::http::SPEC,
];

/// Upstream's transports and formats this build does not have: named as such, not "unknown".
pub const UNSUPPORTED_TRANSPORTS: &[&str] = &["findings", "otel"];
pub const UNSUPPORTED_FORMATS: &[&str] = &["otel", "occurrence"];

/// One output format of the registry.
pub struct FormatSpec {
    /// Its `format` names (the first is the canonical one).
    pub names: &'static [&'static str],
    /// A new encoder (one per exporter node).
    pub new: fn() -> Box<dyn RecordEncoder>,
}

/// Every format this build has.
pub static FORMATS: &[&FormatSpec] = &[&crate::encode::json::SPEC, &crate::encode::ecs::SPEC];

/// The transport named `name` (case-insensitive).
pub fn transport(name: &str) -> Option<&'static TransportSpec> {
    TRANSPORTS
        .iter()
        .copied()
        .find(|t| t.names.iter().any(|n| n.eq_ignore_ascii_case(name)))
}

/// The format named `name` (case-insensitive).
pub fn format(name: &str) -> Option<&'static FormatSpec> {
    FORMATS
        .iter()
        .copied()
        .find(|f| f.names.iter().any(|n| n.eq_ignore_ascii_case(name)))
}

/// `a, b, c or d`: the canonical names, for "expected ..." messages.
pub fn expected<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let names: Vec<&str> = names.collect();
    match names.split_last() {
        None => String::new(),
        Some((last, [])) => last.to_string(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

/// The transports' canonical names.
pub fn transport_names() -> impl Iterator<Item = &'static str> {
    TRANSPORTS.iter().map(|t| t.names[0])
}

/// The formats' canonical names.
pub fn format_names() -> impl Iterator<Item = &'static str> {
    FORMATS.iter().map(|f| f.names[0])
}

/// Keys of every exporter stage, whatever its transport.
pub static COMMON_KEYS: &[Key] = &[
    Key {
        names: &["export"],
        default: "`terminal`",
        doc: "the transport (see below).",
    },
    Key {
        names: &["format"],
        default: "`json`",
        doc: "the output format: `json` or `ecs` (see `output-formats.md`).",
    },
    Key {
        names: &["vault.secrets", "vault.path", "vault.encoding"],
        default: "off",
        doc: "secrets read from files (see *Secrets* in `operations.md`).",
    },
    Key {
        names: &["findings.*"],
        default: "—",
        doc: "upstream 0.7.0 reads none of these (its Findings exporter is gone): ignored with a warning.",
    },
];

/// The delivery keys (batching, queueing, retries) of every transport.
pub static DELIVERY_KEYS: &[Key] = &[
    Key {
        names: &["buffer"],
        default: "`0`; Kafka `10000`, es `5000`, http `1000`",
        doc: "(0 – 1,000,000) records gathered into one batch for the transport (0: each chunk as it comes; the exporter hands its delivery worker about 512 KiB of encoded records at a time). A partial batch goes out at the latest 1 s after its first record arrived (upstream's 1 s flush), however steadily records trickle in, so a rare alert is not held back by a large `buffer`. Kafka and Elasticsearch batches wait for their acknowledgements, hence the larger defaults (see `performance.md`).",
    },
    Key {
        names: &["buffer.bytes"],
        default: "`16MiB`",
        doc: "(64KiB – 256MiB) a batch is sent once it holds this many encoded bytes, whatever `buffer` says: the memory bound of a batch (a `buffer` of 1,000,000 records would otherwise hold about 1 GB).",
    },
    Key {
        names: &["linger"],
        default: "`0s`; Kafka, es and http `5ms`",
        doc: "(0s – 1s) a partial batch is sent once nothing more arrived for this long (a live stream between bursts): alert latency. Under load the queue never empties, so batches stay full.",
    },
    Key {
        names: &["when_full"],
        default: "`block`",
        doc: "the delivery queue is full (the target is slow or down): `block` waits, which backs the whole pipeline up to the reader (bounded memory, nothing lost); `drop_newest` drops the incoming records and counts them as `dropped`.",
    },
    Key {
        names: &["queue"],
        default: "`4`",
        doc: "(1 – 256) chunks (about 512 KiB of encoded records each) the delivery queue holds.",
    },
    Key {
        names: &["queue.type"],
        default: "`memory`",
        doc: "`memory` or `disk`: with `disk` the records wait in segment files until the target acknowledged them, and survive a crash of the agent and outages longer than memory absorbs (`operations.md`, *Disk queue*).",
    },
    Key {
        names: &["queue.path"],
        default: "—",
        doc: "(required with `queue.type: disk`) the queue's directory, created if missing; one exporter of one agent per directory (a second is refused at start). Set without `queue.type: disk`, it is an error.",
    },
    Key {
        names: &["queue.maxbytes"],
        default: "`1GiB`",
        doc: "(1MiB – 1PiB; `disk` only) disk the queue may take; at the cap `when_full` applies.",
    },
    Key {
        names: &["queue.sync"],
        default: "`1s`",
        doc: "(`disk` only) `always` (`fdatasync` per appended batch), a duration (1ms – 1h; synced at that interval by a thread of its own), or `never` (the kernel's writeback): what survives a kernel crash or power loss (`operations.md`).",
    },
    Key {
        names: &["retry.backoff"],
        default: "`100ms`",
        doc: "(0s – 10m) first retry delay after a failed send that can heal (connection refused/reset, timeout, a full disk); doubled per attempt (at least 1 ms, so `0s` does not spin), with jitter (each delay is drawn from [d/2, d]).",
    },
    Key {
        names: &["retry.backoff.max"],
        default: "`30s`",
        doc: "(at least `retry.backoff`, at most 1h) cap of the retry delay.",
    },
    Key {
        names: &["retry.drain_timeout"],
        default: "`30s`",
        doc: "(0s – 1h) after the input ended (end of the traces, SIGTERM), how long undelivered batches keep being retried before they are counted as `failed` (exit code 1); once it has passed, a target that is failing gets no further attempt (queued batches are counted `failed` at once), and after a signal no target does, so shutdown keeps to it whatever the target does (see `operations.md`, *Signals and shutdown*). While the input runs, a batch is retried until delivered.",
    },
];

/// Every key an exporter stage understands, whatever its transport: the union, so a
/// configuration that names another transport's keys (upstream's do) loads without warnings.
pub fn known_keys() -> &'static [&'static str] {
    static KEYS: LazyLock<Vec<&'static str>> = LazyLock::new(|| {
        COMMON_KEYS
            .iter()
            .chain(DELIVERY_KEYS)
            .chain(TRANSPORTS.iter().flat_map(|t| t.keys))
            .flat_map(|k| k.names.iter().copied())
            .collect()
    });
    &KEYS
}

/// The markdown table of `keys`, as `docs/configuration.md` holds it.
pub fn table(keys: &[Key]) -> String {
    let mut out = String::from("| Key | Default | Meaning |\n|---|---|---|\n");
    for k in keys {
        let names: Vec<String> = k
            .names
            .iter()
            .map(|n| match n.strip_suffix(".*") {
                Some(p) => format!("`{p}.<setting>`"),
                None => format!("`{n}`"),
            })
            .collect();
        out.push_str(&format!(
            "| {} | {} | {} |\n",
            names.join(", "),
            k.default,
            k.doc
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tables of `docs/configuration.md` are the registry's: every transport's keys,
    /// the delivery keys, the common keys, each under its heading. `SFP_BLESS_DOCS=1`
    /// rewrites them from the registry.
    #[test]
    fn docs_tables_match_the_registry() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/configuration.md");
        let mut text = std::fs::read_to_string(path).expect("docs/configuration.md");
        let mut sections: Vec<(String, &[Key])> = vec![
            ("### Exporter keys (every transport)".into(), COMMON_KEYS),
            (
                "### Exporter delivery (every transport)".into(),
                DELIVERY_KEYS,
            ),
        ];
        for t in TRANSPORTS.iter().filter(|t| !t.keys.is_empty()) {
            sections.push((format!("(`export: {}`)", t.names[0]), t.keys));
        }
        let bless = std::env::var_os("SFP_BLESS_DOCS").is_some();
        let mut wrong = Vec::new();
        for (heading, keys) in sections {
            let Some(h) = text.find(&heading) else {
                wrong.push(format!("no section `{heading}`"));
                continue;
            };
            let want = table(keys);
            let start = h + text[h..]
                .find("| Key |")
                .expect("a table after the heading");
            let end = start
                + text[start..]
                    .find("\n\n")
                    .map(|e| e + 1)
                    .unwrap_or(text.len() - start);
            if text[start..end] != want {
                wrong.push(format!("{heading}: expected\n{want}"));
                if bless {
                    text.replace_range(start..end, &want);
                }
            }
        }
        if bless {
            std::fs::write(path, &text).expect("write docs");
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    #[test]
    fn names_are_unique_and_lookups_ignore_case() {
        let mut seen = std::collections::HashSet::new();
        for n in TRANSPORTS.iter().flat_map(|t| t.names) {
            assert!(seen.insert(n.to_ascii_lowercase()), "{n} twice");
        }
        assert_eq!(transport("SYSLOG").unwrap().names[0], "syslog");
        assert_eq!(format("ECS").unwrap().names[0], "ecs");
        assert!(transport("otel").is_none());
        let keys = known_keys();
        for k in [
            "export",
            "buffer",
            "syslog.port",
            "kafka.*",
            "es.bulk.numWorkers",
            "http.url",
        ] {
            assert!(keys.contains(&k), "{k} missing");
        }
        assert_eq!(expected(["a", "b", "c"].into_iter()), "a, b or c");
    }
}
