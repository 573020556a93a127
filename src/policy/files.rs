//! Finding and reading policy files without trusting them: a policy path names regular files
//! (symlinks followed) of at most [`MAX_POLICY_FILE`] bytes; a FIFO, a device or a huge file
//! is an error before anything is read (a FIFO would block the loader forever, a device or a
//! 4 GB file would fill memory), and text that is not UTF-8 names its first bad byte.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::source::{line_col, PolicyError, Pos};

/// Largest policy file read (upstream's whole shipped rule set is 160 KB).
pub const MAX_POLICY_FILE: u64 = 16 << 20;

/// Deepest directory nesting followed under a policy directory (a symlink loop ends here).
const MAX_DEPTH: usize = 16;

fn path_error(path: &Path, message: String) -> PolicyError {
    PolicyError {
        pos: Pos {
            file: Arc::from(path.display().to_string()),
            line: 0,
            col: 0,
        },
        message,
        snippet: String::new(),
    }
}

/// What a path is, if it may be read as a policy file.
fn check_regular(path: &Path, meta: &std::fs::Metadata) -> Result<(), PolicyError> {
    use std::os::unix::fs::FileTypeExt;
    let ft = meta.file_type();
    let kind = if ft.is_fifo() {
        "a FIFO"
    } else if ft.is_char_device() || ft.is_block_device() {
        "a device"
    } else if ft.is_socket() {
        "a socket"
    } else if !ft.is_file() {
        "not a regular file"
    } else if meta.len() > MAX_POLICY_FILE {
        return Err(path_error(
            path,
            format!(
                "policy file is {} bytes, more than the {} MiB limit",
                meta.len(),
                MAX_POLICY_FILE >> 20
            ),
        ));
    } else {
        return Ok(());
    };
    Err(path_error(
        path,
        format!("policy path is {kind}; policies must be regular files"),
    ))
}

/// Lists the policy files under `path`: the file itself (whatever its name), or the `.yaml`
/// and `.yml` regular files of a directory tree in lexical order of the full path. A special
/// file named directly, or with a policy extension inside a directory, is an error.
pub fn policy_files(path: &Path) -> Result<Vec<PathBuf>, PolicyError> {
    let meta = std::fs::metadata(path).map_err(|e| path_error(path, e.to_string()))?;
    if !meta.is_dir() {
        check_regular(path, &meta)?;
        return Ok(vec![path.to_path_buf()]);
    }
    let mut out = Vec::new();
    let mut stack = vec![(path.to_path_buf(), 0usize)];
    while let Some((dir, depth)) = stack.pop() {
        let rd = std::fs::read_dir(&dir).map_err(|e| path_error(&dir, e.to_string()))?;
        for e in rd.flatten() {
            let p = e.path();
            let Ok(m) = std::fs::metadata(&p) else {
                continue; // a dangling symlink: nothing to read
            };
            if m.is_dir() {
                if depth + 1 >= MAX_DEPTH {
                    return Err(path_error(
                        &p,
                        format!("policy directories nested more than {MAX_DEPTH} deep (a symlink loop?)"),
                    ));
                }
                stack.push((p, depth + 1));
            } else if matches!(p.extension().and_then(|x| x.to_str()), Some("yaml" | "yml")) {
                check_regular(&p, &m)?;
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Reads one policy file as UTF-8, at most [`MAX_POLICY_FILE`] bytes (checked again while
/// reading: the file may grow after it was listed).
pub fn read_policy_file(path: &Path) -> Result<String, PolicyError> {
    use std::os::unix::fs::OpenOptionsExt;
    let name = path.display().to_string();
    // Checked before opening (a FIFO blocks `open` until a writer comes), and opened
    // non-blocking in case the path was swapped for one since; the open file is checked again.
    let meta =
        std::fs::metadata(path).map_err(|e| path_error(path, format!("cannot read: {e}")))?;
    check_regular(path, &meta)?;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| path_error(path, format!("cannot read: {e}")))?;
    let meta = f
        .metadata()
        .map_err(|e| path_error(path, format!("cannot read: {e}")))?;
    check_regular(path, &meta)?;
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    f.take(MAX_POLICY_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| path_error(path, format!("cannot read: {e}")))?;
    if bytes.len() as u64 > MAX_POLICY_FILE {
        return Err(path_error(
            path,
            format!(
                "policy file grew past the {} MiB limit while it was read",
                MAX_POLICY_FILE >> 20
            ),
        ));
    }
    match String::from_utf8(bytes) {
        Ok(s) => Ok(s),
        Err(e) => {
            let good = e.utf8_error().valid_up_to();
            let bytes = e.into_bytes();
            // Valid up to `good`, so this prefix converts.
            let prefix = String::from_utf8_lossy(&bytes[..good]);
            let pos = line_col(&Arc::from(name.as_str()), &prefix, prefix.len());
            let snippet = prefix.rsplit('\n').next().unwrap_or("").to_string();
            Err(PolicyError {
                pos,
                message: format!(
                    "not UTF-8: byte 0x{:02x} at offset {good} is not valid UTF-8",
                    bytes[good]
                ),
                snippet,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_files_and_huge_files_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("rules.yaml");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let e = policy_files(&fifo).unwrap_err().to_string();
        assert!(e.contains("is a FIFO"), "{e}");
        let e = policy_files(dir.path()).unwrap_err().to_string();
        assert!(e.contains("rules.yaml") && e.contains("FIFO"), "{e}");
        let e = policy_files(Path::new("/dev/zero"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("is a device"), "{e}");
        let e = read_policy_file(Path::new("/dev/zero"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("is a device"), "{e}");
        // A sparse 4 GiB file: refused from its size, nothing read.
        let big = dir.path().join("big.yml");
        std::fs::File::create(&big)
            .unwrap()
            .set_len(4 << 30)
            .unwrap();
        let e = read_policy_file(&big).unwrap_err().to_string();
        assert!(e.contains("more than the 16 MiB limit"), "{e}");
    }

    #[test]
    fn non_utf8_names_the_first_bad_byte() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("p.yaml");
        std::fs::write(&p, b"- rule: r\n  desc: caf\xc3\xa9 \xff\xfe\n").unwrap();
        let e = read_policy_file(&p).unwrap_err();
        assert_eq!((e.pos.line, e.pos.col), (2, 14), "{e}");
        assert!(e.message.contains("byte 0xff at offset 24"), "{e}");
    }
}
