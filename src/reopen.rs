//! SIGHUP: output files are reopened (logrotate's `postrotate`). The signal handler bumps a
//! generation; a file transport compares it with the one it opened at before each write, so
//! the first record after the signal goes to a file opened anew at the configured path and
//! nothing more is written to the rotated one.

use std::sync::atomic::{AtomicU64, Ordering};

static GENERATION: AtomicU64 = AtomicU64::new(0);

/// Asks every file transport to reopen its file before its next write.
pub fn request() {
    GENERATION.fetch_add(1, Ordering::SeqCst);
}

/// The current generation (a transport reopens when it differs from its own).
pub fn current() -> u64 {
    GENERATION.load(Ordering::SeqCst)
}
