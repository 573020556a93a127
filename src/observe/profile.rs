//! Upstream's profiling flags. `-cpuprofile FILE`: a sampling CPU profile of the whole run
//! (every thread, 99 Hz, SIGPROF-based, by the `pprof` crate) written as a gzip-compressed
//! pprof protobuf when the run ends — at the end of the input or after SIGTERM's drain, since
//! both return through `main` — readable by `go tool pprof` as upstream's are.
//!
//! `-memprofile FILE`: this build uses the system allocator (glibc), which has no sampling
//! heap profiler; a pprof heap profile would need jemalloc as the allocator, whose
//! footprint and speed differ from what runs in production. So the file holds the
//! allocator's statistics at the end of the run instead (`mallinfo2` figures, peak and
//! current RSS, and glibc's `malloc_info` XML per arena): what the heap holds and what it
//! keeps, documented in docs/operations.md.

use std::io::Write;
use std::path::{Path, PathBuf};

/// A profile could not be taken or written.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("-cpuprofile: cannot start the profiler: {0}")]
    Start(String),
    #[error("-cpuprofile: cannot build the profile: {0}")]
    Report(String),
    #[error("{flag} {path}: {source}")]
    Write {
        flag: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Samples per second: prime, so sampling does not beat in step with periodic work.
const FREQUENCY: i32 = 99;

/// A CPU profile being taken.
pub struct CpuProfile {
    guard: pprof::ProfilerGuard<'static>,
    path: PathBuf,
}

impl CpuProfile {
    /// Starts sampling now; the file is created at once, so a path that cannot be written is
    /// a start error rather than a lost profile.
    pub fn start(path: &Path) -> Result<CpuProfile, ProfileError> {
        std::fs::File::create(path).map_err(|source| ProfileError::Write {
            flag: "-cpuprofile",
            path: path.to_path_buf(),
            source,
        })?;
        let guard = pprof::ProfilerGuardBuilder::default()
            .frequency(FREQUENCY)
            .blocklist(&["libc", "libgcc", "pthread", "vdso"])
            .build()
            .map_err(|e| ProfileError::Start(e.to_string()))?;
        Ok(CpuProfile {
            guard,
            path: path.to_path_buf(),
        })
    }

    /// Stops sampling and writes the profile (pprof protobuf, gzip-compressed as Go writes
    /// it). Returns the number of samples.
    pub fn finish(self) -> Result<u64, ProfileError> {
        use pprof::protos::Message;
        let report = self
            .guard
            .report()
            .build()
            .map_err(|e| ProfileError::Report(e.to_string()))?;
        let samples: u64 = report.data.values().map(|n| *n as u64).sum();
        let profile = report
            .pprof()
            .map_err(|e| ProfileError::Report(e.to_string()))?;
        let mut raw = Vec::new();
        profile
            .encode(&mut raw)
            .map_err(|e| ProfileError::Report(e.to_string()))?;
        let write = |path: &Path| -> std::io::Result<()> {
            let f = std::fs::File::create(path)?;
            let mut gz = flate2::write::GzEncoder::new(f, flate2::Compression::default());
            gz.write_all(&raw)?;
            gz.finish()?.sync_all()
        };
        write(&self.path).map_err(|source| ProfileError::Write {
            flag: "-cpuprofile",
            path: self.path.clone(),
            source,
        })?;
        Ok(samples)
    }
}

/// Checks `-memprofile`'s path can be written (at start, so a typo is found before the run).
pub fn check_writable(flag: &'static str, path: &Path) -> Result<(), ProfileError> {
    std::fs::File::create(path)
        .map(drop)
        .map_err(|source| ProfileError::Write {
            flag,
            path: path.to_path_buf(),
            source,
        })
}

/// `VmHWM` and `VmRSS` of this process, in bytes.
fn rss() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .map(|kb| kb * 1024)
            .unwrap_or(0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// The allocator's statistics now, as text (see the module doc).
pub fn heap_summary() -> String {
    let (peak, now) = rss();
    let mut out = String::from(
        "# sfprocessor -memprofile: allocator statistics at the end of the run.\n\
         # Not a pprof heap profile: this build uses glibc's allocator, which has no sampling\n\
         # heap profiler (docs/operations.md, \"Profiling\").\n",
    );
    out.push_str(&format!("peak_rss_bytes {peak}\nrss_bytes {now}\n"));
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallinfo2 takes no arguments and returns a plain struct.
        let m = unsafe { libc::mallinfo2() };
        out.push_str(&format!(
            "heap_arena_bytes {}\nheap_in_use_bytes {}\nheap_free_bytes {}\nheap_releasable_bytes {}\nmmap_bytes {}\nmmap_regions {}\n",
            m.arena, m.uordblks, m.fordblks, m.keepcost, m.hblkhd, m.hblks
        ));
        if let Some(xml) = malloc_info() {
            out.push_str("# glibc malloc_info:\n");
            out.push_str(&xml);
        }
    }
    out
}

/// glibc's `malloc_info` XML, through a memory stream.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn malloc_info() -> Option<String> {
    let mut buf: *mut libc::c_char = std::ptr::null_mut();
    let mut len: libc::size_t = 0;
    // SAFETY: open_memstream allocates `buf` and updates `buf`/`len` on fflush/fclose; both
    // outlive the stream. The stream is closed before `buf` is read and freed.
    unsafe {
        let f = libc::open_memstream(&mut buf, &mut len);
        if f.is_null() {
            return None;
        }
        let r = libc::malloc_info(0, f);
        libc::fclose(f);
        if buf.is_null() {
            return None;
        }
        let text = std::slice::from_raw_parts(buf as *const u8, len);
        let s = (r == 0).then(|| String::from_utf8_lossy(text).into_owned());
        libc::free(buf as *mut libc::c_void);
        s
    }
}

/// Writes [`heap_summary`] to `path`.
pub fn write_heap_summary(path: &Path) -> Result<(), ProfileError> {
    std::fs::write(path, heap_summary()).map_err(|source| ProfileError::Write {
        flag: "-memprofile",
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_heap_summary_has_the_allocators_figures() {
        let s = heap_summary();
        assert!(s.contains("peak_rss_bytes "), "{s}");
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        {
            assert!(s.contains("heap_in_use_bytes "), "{s}");
            assert!(s.contains("<malloc version="), "{s}");
        }
    }
}
