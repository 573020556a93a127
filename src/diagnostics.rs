//! What a run could not read: damaged blocks, unreadable files. Collected by every node and
//! printed as the run's summary; any entry makes the process exit non-zero.

use std::sync::Mutex;

/// One problem with the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub file: String,
    /// Block index in the file, when the problem is inside a block.
    pub block: Option<u64>,
    /// Byte offset of the block in the file.
    pub offset: Option<u64>,
    /// Records lost, when known.
    pub records_lost: Option<u64>,
    pub reason: String,
}

impl std::fmt::Display for Skipped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(b) = self.block {
            write!(f, ": block {b}")?;
        }
        if let Some(o) = self.offset {
            write!(f, " (byte {o})")?;
        }
        write!(f, ": {}", self.reason)?;
        match (self.records_lost, self.block) {
            (Some(n), _) => write!(f, "; {n} records skipped"),
            (None, Some(_)) => write!(f, "; skipped up to the next sync marker"),
            // A whole file or directory entry: the reason says it all.
            (None, None) => Ok(()),
        }
    }
}

/// Shared collector of skipped input.
#[derive(Debug, Default)]
pub struct Diagnostics {
    skipped: Mutex<Vec<Skipped>>,
}

impl Diagnostics {
    pub fn report(&self, s: Skipped) {
        tracing::error!("{s}");
        if let Ok(mut v) = self.skipped.lock() {
            v.push(s);
        }
    }

    pub fn skipped(&self) -> Vec<Skipped> {
        self.skipped.lock().map(|v| v.clone()).unwrap_or_default()
    }

    pub fn is_clean(&self) -> bool {
        self.skipped.lock().map(|v| v.is_empty()).unwrap_or(false)
    }
}
