//! Names of op flags, open flags, IP addresses: the strings users see in output and policies.

use super::model::Kind;

pub const OP_CLONE: i32 = 1 << 0;
pub const OP_EXEC: i32 = 1 << 1;
pub const OP_EXIT: i32 = 1 << 2;
pub const OP_SETUID: i32 = 1 << 3;
pub const OP_SETNS: i32 = 1 << 4;
pub const OP_ACCEPT: i32 = 1 << 5;
pub const OP_CONNECT: i32 = 1 << 6;
pub const OP_OPEN: i32 = 1 << 7;
pub const OP_READ_RECV: i32 = 1 << 8;
pub const OP_WRITE_SEND: i32 = 1 << 9;
pub const OP_CLOSE: i32 = 1 << 10;
pub const OP_TRUNCATE: i32 = 1 << 11;
pub const OP_SHUTDOWN: i32 = 1 << 12;
pub const OP_MMAP: i32 = 1 << 13;
pub const OP_DIGEST: i32 = 1 << 14;
pub const OP_MKDIR: i32 = 1 << 15;
pub const OP_RMDIR: i32 = 1 << 16;
pub const OP_LINK: i32 = 1 << 17;
pub const OP_UNLINK: i32 = 1 << 18;
pub const OP_SYMLINK: i32 = 1 << 19;
pub const OP_RENAME: i32 = 1 << 20;

/// Op flag names in upstream's listing order. For network flows the read/write bits are named
/// RECV/SEND, otherwise READ/WRITE.
pub fn op_flag_names(flags: i32, kind: Kind) -> impl Iterator<Item = &'static str> {
    let net = kind == Kind::NetworkFlow;
    const ORDER: [(i32, &str, &str); 21] = [
        (OP_MKDIR, "MKDIR", "MKDIR"),
        (OP_RMDIR, "RMDIR", "RMDIR"),
        (OP_LINK, "LINK", "LINK"),
        (OP_SYMLINK, "SYMLINK", "SYMLINK"),
        (OP_UNLINK, "UNLINK", "UNLINK"),
        (OP_RENAME, "RENAME", "RENAME"),
        (OP_CLONE, "CLONE", "CLONE"),
        (OP_EXEC, "EXEC", "EXEC"),
        (OP_EXIT, "EXIT", "EXIT"),
        (OP_SETUID, "SETUID", "SETUID"),
        (OP_OPEN, "OPEN", "OPEN"),
        (OP_ACCEPT, "ACCEPT", "ACCEPT"),
        (OP_CONNECT, "CONNECT", "CONNECT"),
        (OP_CLOSE, "CLOSE", "CLOSE"),
        (OP_WRITE_SEND, "WRITE", "SEND"),
        (OP_READ_RECV, "READ", "RECV"),
        (OP_SETNS, "SETNS", "SETNS"),
        (OP_MMAP, "MMAP", "MMAP"),
        (OP_SHUTDOWN, "SHUTDOWN", "SHUTDOWN"),
        (OP_TRUNCATE, "TRUNCATE", "TRUNCATE"),
        (OP_DIGEST, "DIGEST", "DIGEST"),
    ];
    ORDER
        .iter()
        .filter(move |(bit, _, _)| flags & bit == *bit)
        .map(move |(_, file, netname)| if net { *netname } else { *file })
}

pub const O_RDONLY: i32 = 1 << 0;
pub const O_WRONLY: i32 = 1 << 1;
pub const O_RDWR: i32 = O_RDONLY | O_WRONLY;
pub const O_CREAT: i32 = 1 << 2;
pub const O_APPEND: i32 = 1 << 3;
pub const O_DSYNC: i32 = 1 << 4;
pub const O_EXCL: i32 = 1 << 5;
pub const O_NONBLOCK: i32 = 1 << 6;
pub const O_SYNC: i32 = 1 << 7;
pub const O_TRUNC: i32 = 1 << 8;
pub const O_DIRECT: i32 = 1 << 9;
pub const O_DIRECTORY: i32 = 1 << 10;
pub const O_LARGEFILE: i32 = 1 << 11;
pub const O_CLOEXEC: i32 = 1 << 12;

/// Open flag names in upstream's listing order (`NONE` when no bit is set).
pub fn open_flag_names(flags: i32) -> impl Iterator<Item = &'static str> {
    const ORDER: [(i32, &str); 14] = [
        (O_RDONLY, "RDONLY"),
        (O_WRONLY, "WRONLY"),
        (O_RDWR, "RDWR"),
        (O_CREAT, "CREAT"),
        (O_EXCL, "EXCL"),
        (O_TRUNC, "TRUNC"),
        (O_APPEND, "APPEND"),
        (O_NONBLOCK, "NONBLOCK"),
        (O_DSYNC, "DSYNC"),
        (O_DIRECT, "DIRECT"),
        (O_LARGEFILE, "LARGEFILE"),
        (O_DIRECTORY, "DIRECTORY"),
        (O_CLOEXEC, "CLOEXEC"),
        (O_SYNC, "SYNC"),
    ];
    let none = (flags == 0).then_some("NONE");
    none.into_iter().chain(
        ORDER
            .iter()
            .filter(move |(bit, _)| flags & bit == *bit)
            .map(|(_, n)| *n),
    )
}

pub fn is_open_read(flags: i32) -> bool {
    flags & O_RDONLY != 0
}

pub fn is_open_write(flags: i32) -> bool {
    flags & O_WRONLY != 0
}

/// Writes an IPv4 address stored little-endian in an int (SysFlow's layout) as dotted quad.
pub fn write_ip(ip: i64, out: &mut Vec<u8>) {
    let mut b = itoa::Buffer::new();
    for i in 0..4 {
        if i > 0 {
            out.push(b'.');
        }
        out.extend_from_slice(b.format((ip >> (8 * i)) & 0xff).as_bytes());
    }
}

pub fn ip_string(ip: i64) -> String {
    let mut v = Vec::with_capacity(15);
    write_ip(ip, &mut v);
    String::from_utf8(v).unwrap_or_default()
}

/// The last path component, as Go's `filepath.Base` (upstream's `sf.*.name`).
pub fn base_name(path: &str) -> &str {
    if path.is_empty() {
        return ".";
    }
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        return "/";
    }
    match trimmed.rfind('/') {
        Some(i) => &trimmed[i + 1..],
        None => trimmed,
    }
}

/// The directory part, as Go's `filepath.Dir` (upstream's `sf.file.directory`).
pub fn dir_name(path: &str) -> String {
    let dir = match path.rfind('/') {
        Some(i) => &path[..=i],
        None => "",
    };
    clean_path(dir)
}

/// Go's `filepath.Clean` (lexical).
fn clean_path(p: &str) -> String {
    if p.is_empty() {
        return ".".to_string();
    }
    let rooted = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            s => parts.push(s),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn op_flags_follow_upstream_order_and_record_type() {
        let f = OP_OPEN | OP_READ_RECV | OP_WRITE_SEND | OP_CLOSE;
        assert_eq!(
            op_flag_names(f, Kind::FileFlow).collect::<Vec<_>>(),
            ["OPEN", "CLOSE", "WRITE", "READ"]
        );
        assert_eq!(
            op_flag_names(f, Kind::NetworkFlow).collect::<Vec<_>>(),
            ["OPEN", "CLOSE", "SEND", "RECV"]
        );
        assert_eq!(op_flag_names(0, Kind::ProcessEvent).count(), 0);
    }

    #[test]
    fn open_flags() {
        assert_eq!(open_flag_names(0).collect::<Vec<_>>(), ["NONE"]);
        assert_eq!(
            open_flag_names(O_RDWR | O_CREAT).collect::<Vec<_>>(),
            ["RDONLY", "WRONLY", "RDWR", "CREAT"]
        );
    }

    #[test]
    fn ips_are_little_endian() {
        assert_eq!(ip_string(0x0100007f), "127.0.0.1");
        assert_eq!(ip_string(-1), "255.255.255.255");
    }

    #[test]
    fn paths_like_go() {
        assert_eq!(base_name("/usr/bin/ls"), "ls");
        assert_eq!(base_name(""), ".");
        assert_eq!(base_name("/"), "/");
        assert_eq!(dir_name("/usr/bin/ls"), "/usr/bin");
        assert_eq!(dir_name("ls"), ".");
        assert_eq!(dir_name("/ls"), "/");
        assert_eq!(dir_name("/a/b/../c"), "/a");
    }
}
