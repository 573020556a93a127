//! `export: kafka`: its keys, read from upstream's `kafka.config` object and flat `kafka.*`
//! settings.

use std::sync::Arc;
use std::time::Duration;

use super::{KafkaConfig, KafkaTransport};
use crate::config::ConfigError;
use crate::exporter::registry::{Ctx, Key, TransportConfig, TransportSpec};
use crate::exporter::{Transport, TransportError};

pub static SPEC: TransportSpec = TransportSpec {
    names: &["kafka"],
    keys: &[
        Key {
            names: &["kafka.topic"],
            default: "— (required)",
            doc: "topic to write to.",
        },
        Key {
            names: &["kafka.config"],
            default: "—",
            doc: "a JSON object of librdkafka settings, as upstream: `{\"bootstrap.servers\":\"k1:9092,k2:9092\",\"compression.type\":\"zstd\"}`. `bootstrap.servers` is required (here or as a flat key).",
        },
        Key {
            names: &["kafka.*"],
            default: "—",
            doc: "any librdkafka setting as a flat key (`kafka.compression.type: lz4`, `kafka.security.protocol: ssl`, `kafka.linger.ms: 20`); applied after `kafka.config`. `kafka.brokers` is an alias of `bootstrap.servers`.",
        },
        Key {
            names: &["kafka.encoding"],
            default: "`json`",
            doc: "only `json` (upstream's `proto` belongs to the otel format, not supported).",
        },
    ],
    parse: |ctx| Ok(Arc::new(kafka_config(ctx)?)),
};

impl TransportConfig for KafkaConfig {
    fn kind(&self) -> &'static str {
        "kafka"
    }

    fn open(&self) -> Result<Box<dyn Transport>, TransportError> {
        Ok(Box::new(KafkaTransport::new(self.clone())))
    }

    fn target(&self) -> String {
        format!("kafka {}/{}", self.brokers(), self.topic)
    }

    fn is_network(&self) -> bool {
        true
    }

    fn needs_keys(&self) -> bool {
        true
    }

    /// A batch waits for its delivery reports before the next is sent, so small batches
    /// would leave the broker idle for a round trip each; 10,000 keeps the rate of a bare
    /// producer (docs/performance.md).
    fn default_buffer(&self) -> Option<usize> {
        Some(10_000)
    }

    fn default_linger(&self) -> Duration {
        Duration::from_millis(5)
    }
}

/// `kafka.config` (a JSON object, as upstream) and flat `kafka.<setting>` keys, over our
/// defaults. Every setting is checked by librdkafka now, so `-test` reports a misspelt one.
pub(crate) fn kafka_config(ctx: &Ctx) -> Result<KafkaConfig, ConfigError> {
    let (cfg, st, vault) = (ctx.cfg, ctx.st, ctx.vault);
    let mut settings = std::collections::BTreeMap::new();
    if let Some(text) = st
        .get("kafka.config")
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        let v: serde_json::Value = serde_json::from_str(text).map_err(|e| {
            cfg.error(
                st,
                Some("kafka.config"),
                format!("must be a JSON object of librdkafka settings ({e})"),
            )
        })?;
        let serde_json::Value::Object(map) = v else {
            return Err(cfg.error(
                st,
                Some("kafka.config"),
                "must be a JSON object of librdkafka settings".into(),
            ));
        };
        for (k, v) in map {
            let v = match v {
                serde_json::Value::String(s) => s,
                serde_json::Value::Number(n) => n.to_string(),
                serde_json::Value::Bool(b) => b.to_string(),
                other => {
                    return Err(cfg.error(
                        st,
                        Some("kafka.config"),
                        format!("setting `{k}`: `{other}` is not a string, number or boolean"),
                    ))
                }
            };
            settings.insert(k, v);
        }
    }
    for s in st.settings.values() {
        let key = s.key.to_ascii_lowercase();
        let Some(name) = key.strip_prefix("kafka.") else {
            continue;
        };
        match name {
            "config" | "topic" => {}
            "encoding" => {
                if !s.value.trim().eq_ignore_ascii_case("json") {
                    return Err(cfg.error(
                        st,
                        Some("kafka.encoding"),
                        format!(
                            "`{}` is not supported (proto belongs to the otel format, which this build does not have; use json)",
                            s.value.trim()
                        ),
                    ));
                }
            }
            "brokers" => {
                settings.insert("bootstrap.servers".into(), s.value.trim().to_string());
            }
            _ => {
                settings.insert(name.to_string(), s.value.trim().to_string());
            }
        }
    }
    // The user's settings win over our defaults; `delivery.timeout.ms` is librdkafka's alias
    // of `message.timeout.ms`, so our default for the one must not override the other.
    let user_timeout = ["message.timeout.ms", "delivery.timeout.ms"]
        .into_iter()
        .find(|k| settings.contains_key(*k));
    for (k, v) in KafkaConfig::defaults() {
        if k == "message.timeout.ms" && user_timeout.is_some() {
            continue;
        }
        settings.entry(k).or_insert(v);
    }
    if let Some(k) = user_timeout {
        if settings.get(k).is_some_and(|v| v.trim() == "0") {
            return Err(cfg.error(
                st,
                Some("kafka.config"),
                format!("`{k}` 0 (wait forever) is not supported: every message needs a delivery report in bounded time; failed messages are retried by the exporter (retry.*)"),
            ));
        }
    }
    // Secrets upstream's vault does not cover, read the same way when this stage has one:
    // the SASL password when SASL is on, the key password when a key file is named.
    if let Some(v) = vault {
        let protocol = settings
            .get("security.protocol")
            .map(|p| p.to_ascii_lowercase())
            .unwrap_or_default();
        if protocol.starts_with("sasl") && !settings.contains_key("sasl.password") {
            let s = v.read(cfg, st, "kafka.sasl.password")?;
            settings.insert("sasl.password".into(), s.expose().to_string());
        }
        if settings.contains_key("ssl.key.location") && !settings.contains_key("ssl.key.password") {
            let s = v.read(cfg, st, "kafka.ssl.key.password")?;
            settings.insert("ssl.key.password".into(), s.expose().to_string());
        }
    }
    if settings
        .get("bootstrap.servers")
        .is_none_or(|b| b.trim().is_empty())
    {
        return Err(cfg.error(
            st,
            Some("kafka.config"),
            "no brokers: set `bootstrap.servers` in kafka.config (or kafka.bootstrap.servers)"
                .into(),
        ));
    }
    let topic = st.get("kafka.topic").map(str::trim).unwrap_or("");
    if topic.is_empty() {
        return Err(cfg.error(
            st,
            Some("kafka.topic"),
            "missing: the topic to write to".into(),
        ));
    }
    let c = KafkaConfig {
        topic: topic.to_string(),
        settings,
    };
    c.validate()
        .map_err(|e| cfg.error(st, Some("kafka.config"), format!("librdkafka: {e}")))?;
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PipelineConfig;

    fn kafka(settings: &str) -> Result<KafkaConfig, ConfigError> {
        let text = format!(
            r#"{{"pipeline":[{{"processor":"exporter","in":"a eventchan","export":"kafka","kafka.topic":"t","kafka.config":{{"bootstrap.servers":"127.0.0.1:9"{settings}}}}}]}}"#
        );
        let cfg = PipelineConfig::parse(&text, "k.json", &[]).expect("parses");
        let mut w = Vec::new();
        kafka_config(&Ctx {
            cfg: &cfg,
            st: &cfg.stages[0],
            vault: None,
            warnings: &mut w,
        })
    }

    #[test]
    fn kafka_defaults_yield_to_the_users_settings_and_their_aliases() {
        let c = kafka("").unwrap();
        assert_eq!(c.settings["message.timeout.ms"], "30000");
        assert_eq!(c.settings["acks"], "all");
        let c = kafka(r#","acks":"1","delivery.timeout.ms":"5000""#).unwrap();
        assert_eq!(c.settings["acks"], "1");
        assert_eq!(c.settings["delivery.timeout.ms"], "5000");
        assert!(!c.settings.contains_key("message.timeout.ms"));
        for zero in ["message.timeout.ms", "delivery.timeout.ms"] {
            let e = kafka(&format!(r#","{zero}":0"#)).unwrap_err().to_string();
            assert!(e.contains(&format!("`{zero}` 0")), "{e}");
        }
    }
}
