//! Upstream's secret vault (`vault.secrets`, `vault.path`, `vault.encoding` of an exporter
//! stage): a secret missing from the configuration is read from a file named after its key
//! (`/run/secrets/es.password`), as Docker and Kubernetes mount secrets. The value is
//! trimmed, optionally base64-decoded, and kept in a [`Secret`], which never prints itself.

use std::fmt;
use std::path::PathBuf;

use super::{ConfigError, PipelineConfig, StageConfig};

/// Where upstream looks when `vault.path` is not set.
pub const DEFAULT_PATH: &str = "/run/secrets";

/// A credential: its `Debug` and `Display` print `***`, so no log line, error or `-test`
/// output can show it.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// An exporter stage's vault, when `vault.secrets` is `true`.
#[derive(Debug, Clone)]
pub struct Vault {
    dir: PathBuf,
    base64: bool,
}

impl Vault {
    /// The stage's vault, if it has one. Its directory must exist now (as upstream checks).
    pub fn of(cfg: &PipelineConfig, st: &StageConfig) -> Result<Option<Vault>, ConfigError> {
        let on = st
            .get("vault.secrets")
            .map(|v| v.trim().eq_ignore_ascii_case("true"))
            .unwrap_or(false);
        let encoding = cfg.choice(st, "vault.encoding", "none", &["none", "base64"])?;
        if !on {
            return Ok(None);
        }
        let dir = PathBuf::from(
            st.get("vault.path")
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .unwrap_or(DEFAULT_PATH),
        );
        if !dir.is_dir() {
            return Err(cfg.error(
                st,
                Some("vault.path"),
                format!(
                    "`{}` is not a directory (vault.secrets is true: secrets are read from files there)",
                    dir.display()
                ),
            ));
        }
        Ok(Some(Vault {
            dir,
            base64: encoding == "base64",
        }))
    }

    /// The secret `key` (the file `<vault.path>/<key>`), trimmed and decoded. A missing or
    /// unreadable file is an error naming the key and the path, never the content.
    pub fn read(
        &self,
        cfg: &PipelineConfig,
        st: &StageConfig,
        key: &str,
    ) -> Result<Secret, ConfigError> {
        let path = self.dir.join(key);
        let raw = std::fs::read(&path).map_err(|e| {
            cfg.error(
                st,
                Some(key),
                format!(
                    "not in the configuration, and the vault file `{}` cannot be read: {}",
                    path.display(),
                    e.kind()
                ),
            )
        })?;
        let text = String::from_utf8(raw).map_err(|_| {
            cfg.error(
                st,
                Some(key),
                format!("the vault file `{}` is not UTF-8 text", path.display()),
            )
        })?;
        let text = text.trim();
        if !self.base64 {
            return Ok(Secret::new(text));
        }
        let bytes = decode_base64(text).ok_or_else(|| {
            cfg.error(
                st,
                Some(key),
                format!(
                    "the vault file `{}` is not base64 (vault.encoding: base64)",
                    path.display()
                ),
            )
        })?;
        String::from_utf8(bytes).map(Secret::new).map_err(|_| {
            cfg.error(
                st,
                Some(key),
                format!(
                    "the vault file `{}` decodes to bytes that are not UTF-8 text",
                    path.display()
                ),
            )
        })
    }
}

/// Standard base64 (padding optional), as Go's `base64.StdEncoding` reads it.
fn decode_base64(s: &str) -> Option<Vec<u8>> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let s = s.trim_end_matches('=').as_bytes();
    if s.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    for chunk in s.chunks(4) {
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            n |= val(*c)? << (18 - 6 * i);
        }
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stage(dir: &std::path::Path, encoding: &str) -> PipelineConfig {
        let text = format!(
            r#"{{"pipeline":[{{"processor":"exporter","in":"a eventchan","export":"es","vault.secrets":"true","vault.path":"{}","vault.encoding":"{encoding}"}}]}}"#,
            dir.display()
        );
        PipelineConfig::parse(&text, "v.json", &[]).unwrap()
    }

    #[test]
    fn secrets_are_read_trimmed_decoded_and_never_printed() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("es.password"), "s3cret\n").unwrap();
        let cfg = stage(d.path(), "none");
        let v = Vault::of(&cfg, &cfg.stages[0]).unwrap().unwrap();
        let s = v.read(&cfg, &cfg.stages[0], "es.password").unwrap();
        assert_eq!(s.expose(), "s3cret");
        assert_eq!(format!("{s:?} {s}"), "*** ***");
        std::fs::write(d.path().join("es.password"), " czNjcmV0 ").unwrap();
        let cfg = stage(d.path(), "base64");
        let v = Vault::of(&cfg, &cfg.stages[0]).unwrap().unwrap();
        let s = v.read(&cfg, &cfg.stages[0], "es.password").unwrap();
        assert_eq!(s.expose(), "s3cret");
        let e = v
            .read(&cfg, &cfg.stages[0], "es.username")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("key `es.username`") && e.contains("es.username`"),
            "{e}"
        );
        assert!(!e.contains("s3cret"));
    }

    #[test]
    fn a_missing_vault_directory_is_an_error_naming_it() {
        let cfg = stage(std::path::Path::new("/no/such/vault"), "none");
        let e = Vault::of(&cfg, &cfg.stages[0]).unwrap_err().to_string();
        assert!(
            e.contains("vault.path") && e.contains("/no/such/vault"),
            "{e}"
        );
    }

    #[test]
    fn base64_as_go_reads_it() {
        assert_eq!(decode_base64("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(decode_base64("aGVsbG8").unwrap(), b"hello");
        assert_eq!(decode_base64("").unwrap(), b"");
        assert!(decode_base64("a$==").is_none());
    }
}
