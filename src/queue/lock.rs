//! The queue directory's lock: `flock(2)` on `DIR/lock`, held for as long as the queue is
//! open. The kernel drops it when the holder exits, however it exits (kill -9 included), so a
//! stale lock never keeps the next start out. (`File::try_lock` would do the same but needs
//! Rust 1.89, above this crate's MSRV.)

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

/// Takes the lock without waiting: `Ok(false)` when someone else holds it.
pub fn try_lock(f: &File, exclusive: bool) -> io::Result<bool> {
    let op = if exclusive {
        libc::LOCK_EX
    } else {
        libc::LOCK_SH
    } | libc::LOCK_NB;
    loop {
        // SAFETY: `flock` on a descriptor this `File` owns and keeps open for the call.
        let r = unsafe { libc::flock(f.as_raw_fd(), op) };
        if r == 0 {
            return Ok(true);
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EWOULDBLOCK) => return Ok(false),
            Some(libc::EINTR) => continue,
            _ => return Err(e),
        }
    }
}
