//! Typed, range-checked settings: every value is checked when the configuration is read, and
//! an error names the file, the stage, the key and the allowed range.

use std::time::Duration;

use super::{ConfigError, PipelineConfig, StageConfig};

fn fmt_duration(d: Duration) -> String {
    if d.is_zero() {
        "0s".into()
    } else {
        humantime::format_duration(d).to_string()
    }
}

/// Formats a byte count the way the settings accept it back (`16MiB`, `512KiB`, `100`).
pub fn fmt_bytes(n: u64) -> String {
    for (unit, shift) in [("GiB", 30), ("MiB", 20), ("KiB", 10)] {
        if n >= 1 << shift && n.is_multiple_of(1 << shift) {
            return format!("{}{unit}", n >> shift);
        }
    }
    n.to_string()
}

/// Parses `123`, `64KiB`, `16MiB`, `1GiB` (also `KB`/`MB`/`GB` and `k`/`m`/`g`, as powers of
/// two, and spaces before the unit).
pub fn parse_bytes(v: &str) -> Option<u64> {
    let v = v.trim();
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (num, unit) = v.split_at(split);
    let n: u64 = num.parse().ok()?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        _ => return None,
    };
    n.checked_mul(1u64 << shift)
}

impl PipelineConfig {
    /// The value of `key` parsed by `parse` and inside `min..=max` (`default` when unset or
    /// empty); otherwise an error whose text `expected` writes from the value.
    #[allow(clippy::too_many_arguments)]
    fn ranged<T: PartialOrd>(
        &self,
        st: &StageConfig,
        key: &str,
        default: T,
        min: T,
        max: T,
        parse: impl Fn(&str) -> Option<T>,
        expected: impl Fn(&str) -> String,
    ) -> Result<T, ConfigError> {
        let Some(v) = st.get(key).map(str::trim).filter(|v| !v.is_empty()) else {
            return Ok(default);
        };
        match parse(v) {
            Some(n) if n >= min && n <= max => Ok(n),
            _ => Err(self.error(st, Some(key), expected(v))),
        }
    }

    /// A whole number in `min..=max` (`default` when unset or empty).
    pub fn count(
        &self,
        st: &StageConfig,
        key: &str,
        default: u64,
        min: u64,
        max: u64,
    ) -> Result<u64, ConfigError> {
        self.ranged(
            st,
            key,
            default,
            min,
            max,
            |v| v.parse().ok(),
            |v| format!("`{v}` is not a whole number from {min} to {max}"),
        )
    }

    /// A size in bytes in `min..=max` (`16MiB`, `65536`).
    pub fn bytes(
        &self,
        st: &StageConfig,
        key: &str,
        default: u64,
        min: u64,
        max: u64,
    ) -> Result<u64, ConfigError> {
        self.ranged(st, key, default, min, max, parse_bytes, |v| {
            format!(
                "`{v}` is not a size from {} to {} (e.g. 512KiB, 16MiB)",
                fmt_bytes(min),
                fmt_bytes(max)
            )
        })
    }

    /// A duration in `min..=max`, written as humantime (`500ms`, `2s`, `1m`) or, when
    /// `bare_seconds`, also as a plain number of seconds (upstream's `monitor.interval`).
    pub fn duration(
        &self,
        st: &StageConfig,
        key: &str,
        default: Duration,
        min: Duration,
        max: Duration,
        bare_seconds: bool,
    ) -> Result<Duration, ConfigError> {
        let parse = |v: &str| match v.parse::<u64>() {
            Ok(secs) if bare_seconds => Some(Duration::from_secs(secs)),
            _ => humantime::parse_duration(v).ok(),
        };
        self.ranged(st, key, default, min, max, parse, |v| {
            format!(
                "`{v}` is not a duration from {} to {} (e.g. 500ms, 2s, 1m{})",
                fmt_duration(min),
                fmt_duration(max),
                if bare_seconds { ", or seconds" } else { "" }
            )
        })
    }

    /// One of `allowed` (case-insensitive), or `default` when unset or empty.
    pub fn choice<'a>(
        &self,
        st: &StageConfig,
        key: &str,
        default: &'a str,
        allowed: &[&'a str],
    ) -> Result<&'a str, ConfigError> {
        let Some(v) = st.get(key).map(str::trim).filter(|v| !v.is_empty()) else {
            return Ok(default);
        };
        allowed
            .iter()
            .find(|a| a.eq_ignore_ascii_case(v))
            .copied()
            .ok_or_else(|| {
                self.error(
                    st,
                    Some(key),
                    format!("unknown value `{v}` (expected {})", allowed.join(", ")),
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stage(kv: &str) -> PipelineConfig {
        let text =
            format!(r#"{{"pipeline":[{{"processor":"exporter","in":"a eventchan",{kv}}}]}}"#);
        PipelineConfig::parse(&text, "v.json", &[]).expect("parses")
    }

    #[test]
    fn bytes_parse_with_units_and_refuse_overflow() {
        assert_eq!(parse_bytes("16MiB"), Some(16 << 20));
        assert_eq!(parse_bytes("64 KiB"), Some(64 << 10));
        assert_eq!(parse_bytes("100"), Some(100));
        assert_eq!(parse_bytes("1g"), Some(1 << 30));
        assert_eq!(parse_bytes("18446744073709551615GiB"), None);
        assert_eq!(parse_bytes("lots"), None);
        assert_eq!(fmt_bytes(16 << 20), "16MiB");
        assert_eq!(fmt_bytes(1000), "1000");
    }

    #[test]
    fn out_of_range_values_name_the_key_and_the_range() {
        let c = stage(r#""queue":"18446744073709551615""#);
        let e = c.count(&c.stages[0], "queue", 4, 1, 256).unwrap_err();
        assert_eq!(
            e.to_string(),
            "v.json: pipeline[0] (exporter): key `queue`: `18446744073709551615` is not a whole number from 1 to 256"
        );
        let c = stage(r#""retry.backoff":"3000years""#);
        let e = c
            .duration(
                &c.stages[0],
                "retry.backoff",
                Duration::ZERO,
                Duration::ZERO,
                Duration::from_secs(600),
                false,
            )
            .unwrap_err();
        assert!(e.to_string().contains("from 0s to 10m"), "{e}");
        let c = stage(r#""monitor.interval":"45""#);
        let d = c
            .duration(
                &c.stages[0],
                "monitor.interval",
                Duration::ZERO,
                Duration::from_secs(1),
                Duration::from_secs(3600),
                true,
            )
            .unwrap();
        assert_eq!(d, Duration::from_secs(45));
    }
}
