//! `SOCK_SEQPACKET` Unix sockets, the collector's transport: one datagram-like packet per
//! record, reliable and ordered. The standard library has stream and datagram Unix sockets
//! only, so this module wraps the few system calls needed (socket, bind, listen, accept4,
//! connect, poll, send, recvmmsg) in safe types; every `unsafe` block says why it is sound.
//!
//! Receiving is batched with `recvmmsg` (one system call for up to `slots` packets) into
//! slots of `max_packet` bytes each. The slots are one zeroed allocation whose pages become
//! resident only when a packet is written into them, so a 1 MiB limit per packet costs the
//! size of the packets actually received, not 1 MiB per slot. `MSG_TRUNC` makes the kernel
//! report the real length of a packet larger than its slot: truncation is detected and
//! reported, never silent.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A `sockaddr_un` for `path`, or an error if the path does not fit (108 bytes on Linux).
fn sockaddr(path: &Path) -> io::Result<(libc::sockaddr_un, libc::socklen_t)> {
    // SAFETY: sockaddr_un is plain old data; all-zero is a valid (empty) address.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let bytes = path.as_os_str().as_bytes();
    if bytes.is_empty() || bytes.len() >= addr.sun_path.len() || bytes.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "socket path `{}` must be 1 to {} bytes without NUL",
                path.display(),
                addr.sun_path.len() - 1
            ),
        ));
    }
    for (d, s) in addr.sun_path.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    let len = std::mem::size_of::<libc::sa_family_t>() + bytes.len() + 1;
    Ok((addr, len as libc::socklen_t))
}

fn seqpacket_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain system call; the result is checked before it is wrapped.
    let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Waits up to `timeout` for `events` on `fd`; returns the events that occurred (0 on
/// timeout). EINTR counts as a timeout (the caller re-checks its stop flag and polls again).
pub fn poll(fd: RawFd, events: libc::c_short, timeout: Duration) -> io::Result<libc::c_short> {
    let mut p = libc::pollfd {
        fd,
        events,
        revents: 0,
    };
    // Rounded up: a wait of a fraction of a millisecond is a wait, not a spin.
    let ms = timeout.as_micros().div_ceil(1000).min(i32::MAX as u128) as libc::c_int;
    // SAFETY: `p` is one valid pollfd for the duration of the call.
    let r = unsafe { libc::poll(&mut p, 1, ms) };
    if r < 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::Interrupted {
            return Ok(0);
        }
        return Err(e);
    }
    Ok(if r == 0 { 0 } else { p.revents })
}

/// Whether something at `path` accepts connections (a live listener).
fn someone_listening(path: &Path) -> bool {
    Client::connect(path).is_ok()
}

/// Who may connect to a listening socket: its mode, and the group that owns it (the
/// collector's, when the agent runs as its own user). The default is the owner and the
/// process's group (0660), whatever the umask.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketAccess {
    pub mode: u32,
    /// A group id (resolved from a name when the configuration is read).
    pub group: Option<u32>,
}

impl Default for SocketAccess {
    fn default() -> Self {
        SocketAccess {
            mode: 0o660,
            group: None,
        }
    }
}

/// Process-wide umask while a socket is bound: the file is created owner-only, so nobody can
/// connect in the moment before its mode and group are set.
fn with_private_umask<T>(f: impl FnOnce() -> T) -> T {
    // SAFETY: umask only swaps the process's file creation mask.
    let old = unsafe { libc::umask(0o177) };
    let r = f();
    // SAFETY: as above, restoring the previous mask.
    unsafe { libc::umask(old) };
    r
}

/// `path` as a C string for the libc calls that take one.
fn c_path(path: &Path) -> io::Result<std::ffi::CString> {
    std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))
}

/// Resolves a group name (or a numeric id) to its id.
pub fn group_id(name: &str) -> io::Result<u32> {
    if let Ok(id) = name.parse::<u32>() {
        return Ok(id);
    }
    let c = std::ffi::CString::new(name)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "group name contains NUL"))?;
    let mut buf = vec![0 as libc::c_char; 16 << 10];
    // SAFETY: group is plain old data filled by getgrnam_r.
    let mut grp: libc::group = unsafe { std::mem::zeroed() };
    let mut out: *mut libc::group = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call; `buf` holds the strings `grp` points to.
    let r =
        unsafe { libc::getgrnam_r(c.as_ptr(), &mut grp, buf.as_mut_ptr(), buf.len(), &mut out) };
    if r != 0 {
        return Err(io::Error::from_raw_os_error(r));
    }
    if out.is_null() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("no group named `{name}`"),
        ));
    }
    Ok(grp.gr_gid)
}

/// Checks a listener could be created at `path` without creating it (`-test`): the path fits
/// a socket address, nothing but a stale socket is in the way, and the directory (or the
/// nearest existing parent it would be created in) takes a socket — probed by binding one
/// there and removing it at once.
pub fn check_bindable(path: &Path) -> io::Result<()> {
    sockaddr(path)?;
    if let Ok(m) = std::fs::symlink_metadata(path) {
        if !m.file_type().is_socket() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!(
                    "`{}` exists and is not a socket; it would not be deleted",
                    path.display()
                ),
            ));
        }
        if someone_listening(path) {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!(
                    "`{}`: another process is listening on this socket",
                    path.display()
                ),
            ));
        }
    }
    let mut dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    while !dir.exists() {
        match dir.parent().filter(|d| !d.as_os_str().is_empty()) {
            Some(p) => dir = p.to_path_buf(),
            None => {
                dir = PathBuf::from(".");
                break;
            }
        }
    }
    if !dir.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::NotADirectory,
            format!("`{}` is not a directory", dir.display()),
        ));
    }
    let probe = dir.join(format!(".sfprocessor-test-{}.sock", std::process::id()));
    let (addr, len) = sockaddr(&probe).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("`{}`: path too long for a socket", dir.display()),
        )
    })?;
    let fd = seqpacket_socket()?;
    // SAFETY: `addr` is a valid sockaddr_un of `len` bytes.
    let r = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            &addr as *const libc::sockaddr_un as *const libc::sockaddr,
            len,
        )
    };
    if r < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!("`{}` cannot hold a socket: {e}", dir.display()),
        ));
    }
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// A listening socket at a path; the path is removed when the listener is dropped, if it is
/// still this listener's socket.
#[derive(Debug)]
pub struct Listener {
    fd: OwnedFd,
    path: PathBuf,
    /// Device and inode of the socket file this listener created: at the end only that file
    /// is removed, never one another agent bound at the same path since.
    identity: Option<(u64, u64)>,
}

impl Listener {
    /// [`Listener::bind_with`] and the default access (0660).
    pub fn bind(path: &Path, backlog: i32) -> io::Result<Listener> {
        Self::bind_with(path, backlog, &SocketAccess::default())
    }

    /// Creates the socket at `path` with `access`: the directory is created if missing; a
    /// stale socket is replaced; anything else at `path` (a file, a directory, a live
    /// listener) is refused rather than deleted.
    pub fn bind_with(path: &Path, backlog: i32, access: &SocketAccess) -> io::Result<Listener> {
        match std::fs::symlink_metadata(path) {
            Ok(m) if m.file_type().is_socket() => {
                if someone_listening(path) {
                    return Err(io::Error::new(
                        io::ErrorKind::AddrInUse,
                        format!(
                            "`{}`: another process is listening on this socket",
                            path.display()
                        ),
                    ));
                }
                std::fs::remove_file(path)?;
            }
            Ok(m) => {
                let what = if m.is_dir() {
                    "a directory"
                } else if m.file_type().is_symlink() {
                    "a symbolic link"
                } else if m.is_file() {
                    "a regular file"
                } else {
                    "not a socket"
                };
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!(
                        "`{}` exists and is {what}; refusing to delete it (remove it or choose another path)",
                        path.display()
                    ),
                ));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if !dir.exists() {
                use std::os::unix::fs::DirBuilderExt;
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o755)
                    .create(dir)?;
            }
        }
        let (addr, len) = sockaddr(path)?;
        let fd = seqpacket_socket()?;
        // SAFETY: `addr` is a valid sockaddr_un of `len` bytes.
        let r = with_private_umask(|| unsafe {
            libc::bind(
                fd.as_raw_fd(),
                &addr as *const libc::sockaddr_un as *const libc::sockaddr,
                len,
            )
        });
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        let identity = std::fs::symlink_metadata(path).ok().map(|m| {
            use std::os::unix::fs::MetadataExt;
            (m.dev(), m.ino())
        });
        let listener = Listener {
            fd,
            path: path.to_path_buf(),
            identity,
        };
        let cpath = c_path(path)?;
        if let Some(gid) = access.group {
            // SAFETY: a valid C path; uid -1 leaves the owner as it is.
            if unsafe { libc::chown(cpath.as_ptr(), u32::MAX, gid) } < 0 {
                let e = io::Error::last_os_error();
                return Err(io::Error::new(
                    e.kind(),
                    format!("cannot give the socket to group {gid}: {e}"),
                ));
            }
        }
        // SAFETY: a valid C path.
        if unsafe { libc::chmod(cpath.as_ptr(), access.mode as libc::mode_t) } < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: plain system call on our descriptor.
        if unsafe { libc::listen(listener.fd.as_raw_fd(), backlog) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(listener)
    }

    /// Stops taking connections: the socket file is removed (if still ours), so a collector
    /// reconnecting meanwhile gets "no such file" rather than a queue nobody will read.
    /// Connections already accepted or queued are not affected.
    pub fn unlink(&mut self) {
        self.remove_own_file();
        self.identity = None;
    }

    fn remove_own_file(&self) {
        use std::os::unix::fs::MetadataExt;
        let Some((dev, ino)) = self.identity else {
            return;
        };
        if std::fs::symlink_metadata(&self.path)
            .is_ok_and(|m| m.file_type().is_socket() && m.dev() == dev && m.ino() == ino)
        {
            let _ = std::fs::remove_file(&self.path);
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Waits up to `timeout` for a connection to accept (without accepting it).
    pub fn wait(&self, timeout: Duration) -> io::Result<bool> {
        Ok(poll(self.fd.as_raw_fd(), libc::POLLIN, timeout)? != 0)
    }

    /// Waits up to `timeout` for a connection.
    pub fn accept(&self, timeout: Duration) -> io::Result<Option<Conn>> {
        if poll(self.fd.as_raw_fd(), libc::POLLIN, timeout)? == 0 {
            return Ok(None);
        }
        // SAFETY: a null address is allowed (we do not need the peer's address).
        let fd = unsafe {
            libc::accept4(
                self.fd.as_raw_fd(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                libc::SOCK_CLOEXEC,
            )
        };
        if fd < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(None),
                // The peer went away between poll and accept.
                io::ErrorKind::ConnectionAborted => Ok(None),
                _ => Err(e),
            };
        }
        // SAFETY: `fd` is a new descriptor that nothing else owns.
        Ok(Some(Conn {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        }))
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        // Only our own socket: if another agent bound the path since, leave it.
        self.remove_own_file();
    }
}

/// Packets one `recvmmsg` takes at most (its headers live on the stack).
pub const MAX_SLOTS: usize = 32;

/// Receive buffers for [`Conn::recv_many`]: `slots` packets of at most `max_packet` bytes.
/// The default has no slots (a placeholder while the real ones are lent out).
#[derive(Default)]
pub struct RecvSlots {
    buf: Vec<u8>,
    slot: usize,
    lens: Vec<usize>,
    truncated: Vec<bool>,
    /// Received by the last call.
    count: usize,
}

impl RecvSlots {
    pub fn new(slots: usize, max_packet: usize) -> Self {
        let slots = slots.clamp(1, MAX_SLOTS);
        let slot = max_packet.max(1);
        RecvSlots {
            // Zeroed: the allocator maps fresh pages, which stay untouched (not resident)
            // until a packet is written into them.
            buf: vec![0u8; slots * slot],
            slot,
            lens: vec![0; slots],
            truncated: vec![false; slots],
            count: 0,
        }
    }

    /// Packets one receive takes at most.
    pub fn capacity(&self) -> usize {
        self.lens.len()
    }

    /// Packets of the last receive: `Ok(bytes)`, or `Err(real_len)` for a packet larger than
    /// its slot (its bytes were cut by the kernel: it cannot be used).
    pub fn packets(&self) -> impl Iterator<Item = Result<&[u8], usize>> {
        (0..self.count).map(move |i| {
            if self.truncated[i] {
                Err(self.lens[i])
            } else {
                let start = i * self.slot;
                Ok(&self.buf[start..start + self.lens[i]])
            }
        })
    }

    /// Gives the memory of slots that held large packets back to the kernel, so one burst
    /// of big packets does not stay resident.
    pub fn trim(&mut self, above: usize) {
        let page = 4096usize;
        for i in 0..self.count {
            if self.lens[i] <= above {
                continue;
            }
            let start = (self.buf.as_ptr() as usize + i * self.slot).div_ceil(page) * page;
            let end = (self.buf.as_ptr() as usize + i * self.slot + self.lens[i].min(self.slot))
                / page
                * page;
            if end > start {
                // SAFETY: [start, end) is page-aligned and inside `buf`, which we own; after
                // MADV_DONTNEED private anonymous pages read back as zeros, a valid u8 value.
                unsafe {
                    libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED);
                }
            }
        }
    }
}

/// What a receive found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    /// `n` packets are in the slots.
    Packets(usize),
    /// Nothing arrived within the timeout.
    Idle,
    /// The peer closed the connection (after everything it sent was read).
    Closed,
}

/// One accepted connection.
#[derive(Debug)]
pub struct Conn {
    fd: OwnedFd,
}

impl Conn {
    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Waits up to `timeout` for packets or the peer's hang-up (without receiving).
    pub fn wait(&self, timeout: Duration) -> io::Result<bool> {
        Ok(poll(self.fd.as_raw_fd(), libc::POLLIN | libc::POLLRDHUP, timeout)? != 0)
    }

    /// Waits up to `timeout` for packets, then receives as many as are queued (up to the
    /// number of slots) with one `recvmmsg`.
    pub fn recv_many(&mut self, slots: &mut RecvSlots, timeout: Duration) -> io::Result<Received> {
        slots.count = 0;
        if slots.lens.is_empty() {
            return Ok(Received::Idle);
        }
        // While packets keep coming, one system call per batch: poll only when the queue
        // is empty.
        match self.recv_now(slots)? {
            // Nothing queued and no wait asked for. (A peer that hung up reads as the end
            // of the stream, not as nothing queued, so no poll is needed to tell.)
            Received::Idle if timeout.is_zero() => return Ok(Received::Idle),
            Received::Idle => {}
            other => return Ok(other),
        }
        if poll(self.fd.as_raw_fd(), libc::POLLIN | libc::POLLRDHUP, timeout)? == 0 {
            return Ok(Received::Idle);
        }
        self.recv_now(slots)
    }

    /// Whether the peer has hung up (its data may still be queued).
    fn hung_up(&self) -> bool {
        poll(self.fd.as_raw_fd(), libc::POLLRDHUP, Duration::ZERO)
            .is_ok_and(|ev| ev & (libc::POLLRDHUP | libc::POLLHUP) != 0)
    }

    /// One `recvmmsg` without waiting.
    fn recv_now(&mut self, slots: &mut RecvSlots) -> io::Result<Received> {
        let n = slots.lens.len().min(MAX_SLOTS);
        let base = slots.buf.as_mut_ptr();
        // On the stack: a receive per batch allocates nothing.
        let mut iovs = [libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        }; MAX_SLOTS];
        for (i, iov) in iovs.iter_mut().enumerate().take(n) {
            // SAFETY (pointer arithmetic): i * slot < buf.len().
            iov.iov_base = unsafe { base.add(i * slots.slot) } as *mut libc::c_void;
            iov.iov_len = slots.slot;
        }
        // SAFETY: mmsghdr is plain old data; zero is "no name, no control data".
        let mut msgs: [libc::mmsghdr; MAX_SLOTS] = unsafe { std::mem::zeroed() };
        for (m, iov) in msgs.iter_mut().zip(iovs.iter_mut()).take(n) {
            m.msg_hdr.msg_iov = iov as *mut libc::iovec;
            m.msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: `msgs` holds `n` headers, each pointing at one iovec into `slots.buf`
        // (alive and exclusively borrowed for the call); MSG_TRUNC makes msg_len the real
        // packet length; MSG_DONTWAIT: an empty queue is EAGAIN, not a wait.
        let got = unsafe {
            libc::recvmmsg(
                self.fd.as_raw_fd(),
                msgs.as_mut_ptr(),
                n as libc::c_uint,
                libc::MSG_DONTWAIT | libc::MSG_TRUNC,
                std::ptr::null_mut(),
            )
        };
        if got < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(Received::Idle),
                io::ErrorKind::ConnectionReset => Ok(Received::Closed),
                _ => Err(e),
            };
        }
        let mut count = 0;
        let mut hup = None;
        for m in msgs.iter().take(got as usize) {
            let len = m.msg_len as usize;
            // At the end of the stream every further receive returns 0: an empty "packet"
            // after the peer hung up is the end, not data.
            if len == 0 && *hup.get_or_insert_with(|| self.hung_up()) {
                break;
            }
            slots.lens[count] = len;
            slots.truncated[count] = m.msg_hdr.msg_flags & libc::MSG_TRUNC != 0 || len > slots.slot;
            count += 1;
        }
        slots.count = count;
        if count == 0 {
            return Ok(if got > 0 {
                Received::Closed
            } else {
                Received::Idle
            });
        }
        Ok(Received::Packets(count))
    }
}

/// The sending side (the collector's, and the simulator's).
#[derive(Debug)]
pub struct Client {
    fd: OwnedFd,
}

impl Client {
    pub fn connect(path: &Path) -> io::Result<Client> {
        let (addr, len) = sockaddr(path)?;
        let fd = seqpacket_socket()?;
        // SAFETY: `addr` is a valid sockaddr_un of `len` bytes.
        let r = unsafe {
            libc::connect(
                fd.as_raw_fd(),
                &addr as *const libc::sockaddr_un as *const libc::sockaddr,
                len,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Client { fd })
    }

    /// Asks for a send buffer of `bytes` (a packet cannot exceed it). A privileged process
    /// (the collector runs as root) gets it whatever `net.core.wmem_max` says; others get at
    /// most that.
    pub fn set_send_buffer(&self, bytes: usize) -> io::Result<()> {
        let v = bytes.min(i32::MAX as usize) as libc::c_int;
        let set = |opt: libc::c_int| {
            // SAFETY: `v` is a valid c_int for the duration of the call.
            unsafe {
                libc::setsockopt(
                    self.fd.as_raw_fd(),
                    libc::SOL_SOCKET,
                    opt,
                    &v as *const libc::c_int as *const libc::c_void,
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            }
        };
        if set(libc::SO_SNDBUFFORCE) == 0 || set(libc::SO_SNDBUF) == 0 {
            return Ok(());
        }
        Err(io::Error::last_os_error())
    }

    /// Sends several packets with one system call (`sendmmsg`), waiting while the
    /// receiver's queue is full; returns how many went out before an error, with the error.
    pub fn send_many(&self, packets: &[&[u8]]) -> (usize, io::Result<()>) {
        let mut iovs: Vec<libc::iovec> = packets
            .iter()
            .map(|p| libc::iovec {
                iov_base: p.as_ptr() as *mut libc::c_void,
                iov_len: p.len(),
            })
            .collect();
        let mut msgs: Vec<libc::mmsghdr> = iovs
            .iter_mut()
            .map(|iov| {
                // SAFETY: msghdr is plain old data; zero is "no name, no control data".
                let mut h: libc::msghdr = unsafe { std::mem::zeroed() };
                h.msg_iov = iov as *mut libc::iovec;
                h.msg_iovlen = 1;
                libc::mmsghdr {
                    msg_hdr: h,
                    msg_len: 0,
                }
            })
            .collect();
        let mut done = 0usize;
        while done < msgs.len() {
            // SAFETY: each header points at one iovec over a packet borrowed for the call.
            let r = unsafe {
                libc::sendmmsg(
                    self.fd.as_raw_fd(),
                    msgs[done..].as_mut_ptr(),
                    (msgs.len() - done) as libc::c_uint,
                    libc::MSG_NOSIGNAL,
                )
            };
            if r < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return (done, Err(e));
            }
            done += r as usize;
        }
        (done, Ok(()))
    }

    /// Sends one packet, waiting while the receiver's queue is full (that wait is the
    /// backpressure a collector sees). A receiver that went away is `BrokenPipe` /
    /// `ConnectionReset` (no SIGPIPE).
    pub fn send(&self, packet: &[u8]) -> io::Result<()> {
        loop {
            // SAFETY: `packet` is valid for `packet.len()` bytes during the call.
            let r = unsafe {
                libc::send(
                    self.fd.as_raw_fd(),
                    packet.as_ptr() as *const libc::c_void,
                    packet.len(),
                    libc::MSG_NOSIGNAL,
                )
            };
            if r >= 0 {
                return Ok(());
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets_of_any_size_up_to_the_slot_arrive_whole_and_larger_ones_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let l = Listener::bind(&path, 4).unwrap();
        let c = Client::connect(&path).unwrap();
        c.set_send_buffer(4 << 20).unwrap();
        let mut conn = l.accept(Duration::from_secs(5)).unwrap().expect("accepted");
        let big = vec![7u8; 200 << 10];
        c.send(b"one").unwrap();
        c.send(&big).unwrap();
        c.send(b"three").unwrap();
        let mut slots = RecvSlots::new(8, 100 << 10);
        let mut got = Vec::new();
        while got.len() < 3 {
            match conn.recv_many(&mut slots, Duration::from_secs(5)).unwrap() {
                Received::Packets(_) => {
                    got.extend(slots.packets().map(|p| p.map(|b| b.to_vec())));
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(got[0].as_deref(), Ok(&b"one"[..]));
        assert_eq!(
            got[1],
            Err(200 << 10),
            "real length of the truncated packet"
        );
        assert_eq!(got[2].as_deref(), Ok(&b"three"[..]));
        drop(c);
        assert_eq!(
            conn.recv_many(&mut slots, Duration::from_secs(5)).unwrap(),
            Received::Closed
        );
    }

    #[test]
    fn bind_refuses_what_is_not_a_stale_socket() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, b"data").unwrap();
        let e = Listener::bind(&file, 4).unwrap_err();
        assert!(e.to_string().contains("regular file"), "{e}");
        assert!(file.exists(), "never deleted");
        let e = Listener::bind(dir.path(), 4).unwrap_err();
        assert!(e.to_string().contains("directory"), "{e}");
        // A live listener is not stolen; a stale socket is replaced.
        let path = dir.path().join("nested/dir/s.sock");
        let l = Listener::bind(&path, 4).unwrap();
        let e = Listener::bind(&path, 4).unwrap_err();
        assert!(e.to_string().contains("another process"), "{e}");
        drop(l);
        // A socket file nobody listens on (std's listener leaves its file behind).
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        assert!(path.exists());
        let _l2 = Listener::bind(&path, 4).expect("stale socket replaced");
    }

    #[test]
    fn the_socket_gets_its_mode_whatever_the_umask() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        // SAFETY: test-local umask change, restored below.
        let old = unsafe { libc::umask(0) };
        let l = Listener::bind(&path, 4);
        unsafe { libc::umask(old) };
        let _l = l.unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o660);
        let p2 = dir.path().join("t.sock");
        let _l2 = Listener::bind_with(
            &p2,
            4,
            &SocketAccess {
                mode: 0o600,
                group: Some(group_id(&unsafe { libc::getgid() }.to_string()).unwrap()),
            },
        )
        .unwrap();
        let mode = std::fs::metadata(&p2).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(group_id("no-such-group-sfprocessor").is_err());
        assert_eq!(group_id("root").unwrap(), 0);
    }

    #[test]
    fn only_the_listeners_own_socket_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let first = Listener::bind(&path, 4).unwrap();
        // Another agent takes the path over (here: the file is replaced by a new socket).
        std::fs::remove_file(&path).unwrap();
        let second = Listener::bind(&path, 4).unwrap();
        drop(first);
        assert!(path.exists(), "the second agent's socket stays");
        assert!(Client::connect(&path).is_ok());
        drop(second);
        assert!(!path.exists());
    }

    #[test]
    fn bindability_is_checked_without_creating_the_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/s.sock");
        check_bindable(&path).unwrap();
        assert!(!path.exists() && !dir.path().join("a").exists());
        let file = dir.path().join("f");
        std::fs::write(&file, b"x").unwrap();
        assert!(
            check_bindable(&file.join("s.sock")).is_err(),
            "a file as directory"
        );
        assert!(check_bindable(&file).is_err(), "not a socket");
        let long = dir.path().join("x".repeat(120));
        assert!(check_bindable(&long).is_err());
        let live = dir.path().join("live.sock");
        let _l = Listener::bind(&live, 4).unwrap();
        let e = check_bindable(&live).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse);
    }
}
