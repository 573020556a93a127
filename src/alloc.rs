//! The memory allocator: mimalloc, with its purge delay shortened.
//!
//! Why not the system allocator: a pipeline allocates records and their entities on the
//! flattener's thread and frees them, a batch at a time, after the exporter has encoded them.
//! glibc's per-thread caches hold 7 chunks of a size, so every bulk free overflowed them into
//! the arena's bins and every allocation after it went through the slow path
//! (`_int_malloc`, `malloc_consolidate`, `unlink_chunk`): on the generated 5 M-record trace
//! the allocator was 18 % of the flattener's thread, four times its share when each record
//! is dropped as soon as it is made. mimalloc's free lists per page have no such bound; the
//! enrich pipeline used a quarter less CPU (`docs/performance.md`).
//!
//! Why a shorter purge delay: mimalloc gives memory it no longer uses back to the system
//! after a delay (1 s by default in v3). Pages freed by one batch were kept while the next
//! ones were allocated, and the peak RSS of the alert pipeline rose from 56–58 to 69–73 MiB.
//! At 50 ms it is 59–60 MiB for no measurable CPU. `MIMALLOC_PURGE_DELAY` in the
//! environment still wins, like every other `MIMALLOC_*` option.

use std::ffi::{c_void, CStr};
use std::os::raw::{c_char, c_int, c_long};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc's `mimalloc.h` (the same index in v2 and v3).
const MI_OPTION_PURGE_DELAY: c_int = 15;

/// Milliseconds after which freed memory goes back to the system.
pub const PURGE_DELAY_MS: c_long = 50;

type OutputFn = unsafe extern "C" fn(msg: *const c_char, arg: *mut c_void);

extern "C" {
    // Part of mimalloc's public C API (`mimalloc.h`), linked in by `libmimalloc-sys`.
    fn mi_option_set(option: c_int, value: c_long);
    fn mi_option_get(option: c_int) -> c_long;
    fn mi_process_info(
        elapsed_msecs: *mut usize,
        user_msecs: *mut usize,
        system_msecs: *mut usize,
        current_rss: *mut usize,
        peak_rss: *mut usize,
        current_commit: *mut usize,
        peak_commit: *mut usize,
        page_faults: *mut usize,
    );
    fn mi_stats_print_out(out: Option<OutputFn>, arg: *mut c_void);
}

/// Applies this program's allocator settings; call first thing in `main`. The purge delay is
/// read at each purge, so setting it after the first allocations is effective.
pub fn tune() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: a plain setter of mimalloc's option table; any value is valid.
        unsafe { mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS) };
    }
}

/// The purge delay in effect (ms).
pub fn purge_delay_ms() -> c_long {
    // SAFETY: a plain getter of mimalloc's option table.
    unsafe { mi_option_get(MI_OPTION_PURGE_DELAY) }
}

/// The allocator's own account of the process, as `name value` lines: memory committed now
/// and at its peak, RSS as it sees it, page faults; then mimalloc's statistics table (what a
/// release build of it counts).
pub fn stats_text() -> String {
    let mut f = [0usize; 8];
    let [elapsed, user, system, rss, peak_rss, commit, peak_commit, faults] = &mut f;
    // SAFETY: every pointer is to a live, writable usize.
    unsafe {
        mi_process_info(
            elapsed,
            user,
            system,
            rss,
            peak_rss,
            commit,
            peak_commit,
            faults,
        );
    }
    let mut out = format!(
        "allocator mimalloc\ncommitted_bytes {}\npeak_committed_bytes {}\nallocator_rss_bytes {}\nallocator_peak_rss_bytes {}\npage_faults {}\npurge_delay_ms {}\n# mimalloc statistics:\n",
        f[5],
        f[6],
        f[3],
        f[4],
        f[7],
        purge_delay_ms()
    );
    unsafe extern "C" fn collect(msg: *const c_char, arg: *mut c_void) {
        if msg.is_null() || arg.is_null() {
            return;
        }
        // SAFETY: `arg` is the `String` passed below, alive for the call; mimalloc passes a
        // NUL-terminated message.
        let (out, msg) = unsafe { (&mut *(arg as *mut String), CStr::from_ptr(msg)) };
        out.push_str(&msg.to_string_lossy());
    }
    let mut table = String::new();
    // SAFETY: `collect` only appends to `table`, which outlives the call.
    unsafe { mi_stats_print_out(Some(collect), (&mut table as *mut String).cast()) };
    out.push_str(&table);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tune_sets_the_purge_delay_unless_the_environment_does() {
        let before = purge_delay_ms();
        tune();
        let expected = match std::env::var("MIMALLOC_PURGE_DELAY") {
            Ok(v) => v.parse::<c_long>().unwrap_or(before),
            Err(_) => PURGE_DELAY_MS,
        };
        assert_eq!(purge_delay_ms(), expected);
        // The allocator in use is mimalloc: a block it handed out is one it knows.
        let b = Box::new([0u8; 64]);
        extern "C" {
            fn mi_is_in_heap_region(p: *const std::ffi::c_void) -> bool;
        }
        // SAFETY: a query on an address; it does not dereference it.
        assert!(unsafe { mi_is_in_heap_region(b.as_ptr().cast()) });
    }

    #[test]
    fn the_stats_name_the_committed_memory() {
        let v: Vec<u8> = vec![1; 4 << 20];
        let s = stats_text();
        let committed: usize = s
            .lines()
            .find_map(|l| l.strip_prefix("committed_bytes "))
            .and_then(|v| v.parse().ok())
            .unwrap();
        assert!(committed >= v.len(), "{s}");
        assert!(s.contains("purge_delay_ms "), "{s}");
    }
}
