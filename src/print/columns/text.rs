//! Text columns rendered straight into the output: sysprint's time strings (Python's float
//! rounding included), op-flag strings, addresses, resources, environments.

use crate::encode::ecs::civil_from_days;
use crate::sysflow::names::*;

/// Text columns computed from numbers or joined strings, written where they are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Text<'a> {
    /// [`iso_time`].
    Time(i64),
    /// [`op_flags_str`].
    OpFlags(i32),
    /// A dotted IPv4 address (host byte order integer).
    Ip(i64),
    /// `sip:sport-dip:dport`.
    Endpoints(i32, i32, i32, i32),
    /// A path, and `, newpath` when there is one.
    Paths(&'a str, Option<&'a str>),
    /// Environment variables joined with `;` (empty ones and `=` left out).
    Env(&'a [String]),
    /// The resource type character.
    Char(i32),
}

impl Text<'_> {
    /// Whether the text is plain ASCII with no character that JSON escapes or CSV quotes.
    pub fn plain(&self) -> bool {
        matches!(
            self,
            Text::Time(_) | Text::OpFlags(_) | Text::Ip(_) | Text::Endpoints(..)
        )
    }

    /// Appends the text to `out`.
    pub fn write(&self, out: &mut Vec<u8>) {
        match *self {
            Text::Time(ns) => write_iso_time(ns, out),
            Text::OpFlags(f) => write_op_flags(f, out),
            Text::Ip(ip) => write_ip(ip, out),
            Text::Endpoints(sip, sport, dip, dport) => {
                let mut b = itoa::Buffer::new();
                write_ip(i64::from(sip), out);
                out.push(b':');
                out.extend_from_slice(b.format(sport).as_bytes());
                out.push(b'-');
                write_ip(i64::from(dip), out);
                out.push(b':');
                out.extend_from_slice(b.format(dport).as_bytes());
            }
            Text::Paths(p, np) => {
                out.extend_from_slice(p.as_bytes());
                if let Some(np) = np {
                    out.extend_from_slice(b", ");
                    out.extend_from_slice(np.as_bytes());
                }
            }
            Text::Env(env) => {
                let mut first = true;
                for e in env.iter().filter(|e| !e.is_empty() && e.as_str() != "=") {
                    if !first {
                        out.push(b';');
                    }
                    first = false;
                    out.extend_from_slice(e.as_bytes());
                }
            }
            Text::Char(c) => {
                if let Some(c) = char::from_u32(c as u32) {
                    let mut b = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
                }
            }
        }
    }
}

/// sysprint's op flags string: the entity operation names, or a positional mask
/// (`O A C W R N M S C T D`, a blank for an unset flag).
pub fn op_flags_str(flags: i32) -> String {
    let mut v = Vec::with_capacity(16);
    write_op_flags(flags, &mut v);
    String::from_utf8_lossy(&v).into_owned()
}

/// Appends [`op_flags_str`] to `out`.
pub fn write_op_flags(flags: i32, out: &mut Vec<u8>) {
    const NAMED: [&[(i32, &str)]; 2] = [
        &[
            (OP_MKDIR, "MKDIR"),
            (OP_RMDIR, "RMDIR"),
            (OP_LINK, "LINK"),
            (OP_SYMLINK, "SYMLINK"),
            (OP_UNLINK, "UNLINK"),
            (OP_RENAME, "RENAME"),
        ],
        &[
            (OP_CLONE, "CLONE"),
            (OP_EXEC, "EXEC"),
            (OP_EXIT, "EXIT"),
            (OP_SETUID, "SETUID"),
        ],
    ];
    for group in NAMED {
        let start = out.len();
        for (bit, name) in group {
            if flags & bit != 0 {
                out.extend_from_slice(name.as_bytes());
            }
        }
        if out.len() > start {
            return;
        }
    }
    const MASK: [(i32, u8); 11] = [
        (OP_OPEN, b'O'),
        (OP_ACCEPT, b'A'),
        (OP_CONNECT, b'C'),
        (OP_WRITE_SEND, b'W'),
        (OP_READ_RECV, b'R'),
        (OP_SETNS, b'N'),
        (OP_MMAP, b'M'),
        (OP_SHUTDOWN, b'S'),
        (OP_CLOSE, b'C'),
        (OP_TRUNCATE, b'T'),
        (OP_DIGEST, b'D'),
    ];
    out.extend(
        MASK.iter()
            .map(|(bit, c)| if flags & bit != 0 { *c } else { b' ' }),
    );
}

/// sysprint's time string: Python's `datetime.utcfromtimestamp(ns / 1e9).isoformat()`,
/// including its float rounding (half to even on the microseconds) and its omission of a
/// zero fraction.
pub fn iso_time(ns: i64) -> String {
    let mut v = Vec::with_capacity(26);
    write_iso_time(ns, &mut v);
    String::from_utf8_lossy(&v).into_owned()
}

thread_local! {
    /// The last second rendered and its `YYYY-MM-DDTHH:MM:SS` text: records come in time
    /// order, so most share it with the one before.
    static LAST_SECOND: std::cell::Cell<(i64, [u8; 19])> = const { std::cell::Cell::new((i64::MIN, [0; 19])) };
}

/// Appends [`iso_time`] to `out`.
pub fn write_iso_time(ns: i64, out: &mut Vec<u8>) {
    let t = ns as f64 / 1e9;
    let mut secs = t.trunc();
    let mut us = ((t - secs) * 1e6).round_ties_even();
    if us >= 1e6 {
        us -= 1e6;
        secs += 1.0;
    } else if us < 0.0 {
        us += 1e6;
        secs -= 1.0;
    }
    let secs = secs as i64;
    let pad = |out: &mut Vec<u8>, v: i64, width: usize| {
        let mut b = itoa::Buffer::new();
        let s = b.format(v);
        out.extend(std::iter::repeat_n(b'0', width.saturating_sub(s.len())));
        out.extend_from_slice(s.as_bytes());
    };
    let (last, text) = LAST_SECOND.get();
    if last == secs {
        out.extend_from_slice(&text);
    } else {
        let start = out.len();
        let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
        let (y, m, d) = civil_from_days(days);
        pad(out, y, 4);
        out.push(b'-');
        pad(out, i64::from(m), 2);
        out.push(b'-');
        pad(out, i64::from(d), 2);
        out.push(b'T');
        pad(out, sod / 3600, 2);
        out.push(b':');
        pad(out, sod / 60 % 60, 2);
        out.push(b':');
        pad(out, sod % 60, 2);
        // Years past 9999 (or before 0) are longer: not cached.
        if let Ok(t) = <[u8; 19]>::try_from(&out[start..]) {
            LAST_SECOND.set((secs, t));
        }
    }
    if us != 0.0 {
        out.push(b'.');
        pad(out, us as i64, 6);
    }
}
