//! The on-disk layout of a queue segment: an 8-byte header (`SFQUEUE` and a format version),
//! then one frame per record.
//!
//! A frame is a 12-byte header — magic `SQ`, flags, a zero byte, the body's length (u32 LE)
//! and a CRC32C (u32 LE) over the first 8 header bytes and the body — then the body: the time
//! it was appended (Unix milliseconds, u64 LE), the record's partition key and document id
//! when the flags say so (u64 LE each), and the encoded record.
//!
//! Why per-record frames with a magic: a torn write loses at most the record being written,
//! and after a damaged stretch the reader finds the next good frame by looking for the magic
//! and checking the CRC, instead of giving up the rest of the segment. The CRC covers the
//! length too, so a flipped length cannot make the reader skip good frames unnoticed.

/// First bytes of every segment file.
pub const SEGMENT_MAGIC: &[u8; 7] = b"SFQUEUE";
/// The segment format this build writes and reads. A segment with another version is
/// refused, never read as this one.
pub const VERSION: u8 = 1;
/// Bytes before the first frame of a segment.
pub const SEGMENT_HEADER: u64 = 8;
/// First two bytes of every frame.
pub const FRAME_MAGIC: [u8; 2] = *b"SQ";
/// Bytes before a frame's body.
pub const FRAME_HEADER: usize = 12;
/// The largest body accepted (a record well above any `record.maxsize`): a larger length is
/// damage, not a record.
pub const MAX_BODY: usize = 256 << 20;

const F_KEY: u8 = 1;
const F_ID: u8 = 2;
/// The record is binary (no newline after it when read back); text records, the only kind
/// before binary formats existed, leave it clear.
const F_BIN: u8 = 4;

/// The segment header this build writes.
pub fn segment_header() -> [u8; SEGMENT_HEADER as usize] {
    let mut h = [0u8; SEGMENT_HEADER as usize];
    h[..7].copy_from_slice(SEGMENT_MAGIC);
    h[7] = VERSION;
    h
}

/// Why a segment header is not one this build reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderError {
    /// Not a queue segment at all.
    NotASegment,
    /// A queue segment of another format version.
    Version(u8),
}

/// Checks a segment's first bytes.
pub fn check_segment_header(h: &[u8]) -> Result<(), HeaderError> {
    if h.len() < SEGMENT_HEADER as usize || &h[..7] != SEGMENT_MAGIC {
        return Err(HeaderError::NotASegment);
    }
    if h[7] != VERSION {
        return Err(HeaderError::Version(h[7]));
    }
    Ok(())
}

/// Appends a frame's header and metadata for `record` to `out` — everything but the record
/// itself, whose bytes follow it on disk (written from where they are, not copied here).
pub fn encode_head(
    out: &mut Vec<u8>,
    ts_ms: u64,
    key: Option<u64>,
    id: Option<u64>,
    binary: bool,
    record: &[u8],
) {
    let flags = if key.is_some() { F_KEY } else { 0 }
        | if id.is_some() { F_ID } else { 0 }
        | if binary { F_BIN } else { 0 };
    let body = 8 + 8 * (key.is_some() as usize + id.is_some() as usize) + record.len();
    let start = out.len();
    out.extend_from_slice(&FRAME_MAGIC);
    out.push(flags);
    out.push(0);
    out.extend_from_slice(&(body as u32).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&ts_ms.to_le_bytes());
    if let Some(k) = key {
        out.extend_from_slice(&k.to_le_bytes());
    }
    if let Some(i) = id {
        out.extend_from_slice(&i.to_le_bytes());
    }
    let crc = crc32c::crc32c_append(
        crc32c::crc32c_append(
            crc32c::crc32c(&out[start..start + 8]),
            &out[start + FRAME_HEADER..],
        ),
        record,
    );
    out[start + 8..start + 12].copy_from_slice(&crc.to_le_bytes());
}

/// Appends one frame to `out`.
pub fn encode(out: &mut Vec<u8>, ts_ms: u64, key: Option<u64>, id: Option<u64>, record: &[u8]) {
    encode_head(out, ts_ms, key, id, false, record);
    out.extend_from_slice(record);
}

/// A frame read back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    /// Bytes the frame takes, header included.
    pub size: usize,
    pub ts_ms: u64,
    pub key: Option<u64>,
    pub id: Option<u64>,
    /// A binary record (no newline after it when read back).
    pub binary: bool,
    /// Where the record starts within the parsed bytes, and its length.
    pub record_at: usize,
    pub record_len: usize,
}

/// What the bytes at a position hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parse {
    Frame(Frame),
    /// A plausible frame that runs past the bytes given: `need` bytes in all.
    Incomplete {
        need: usize,
    },
    /// Not a frame: damage.
    Bad(Bad),
}

/// Why the bytes at a position are not a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bad {
    Magic,
    Header,
    Checksum,
}

impl Bad {
    pub fn describe(self) -> &'static str {
        match self {
            Bad::Magic => "no frame marker",
            Bad::Header => "impossible frame header",
            Bad::Checksum => "checksum mismatch",
        }
    }
}

/// Parses the frame at the start of `buf`.
pub fn parse(buf: &[u8]) -> Parse {
    if buf.len() < 2 {
        return Parse::Incomplete { need: FRAME_HEADER };
    }
    if buf[..2] != FRAME_MAGIC {
        return Parse::Bad(Bad::Magic);
    }
    if buf.len() < FRAME_HEADER {
        return Parse::Incomplete { need: FRAME_HEADER };
    }
    let flags = buf[2];
    let body = u32::from_le_bytes([buf[4], buf[5], buf[6], buf[7]]) as usize;
    let fixed = 8 + 8 * ((flags & F_KEY != 0) as usize + (flags & F_ID != 0) as usize);
    if flags & !(F_KEY | F_ID | F_BIN) != 0 || buf[3] != 0 || body < fixed || body > MAX_BODY {
        return Parse::Bad(Bad::Header);
    }
    let size = FRAME_HEADER + body;
    if buf.len() < size {
        return Parse::Incomplete { need: size };
    }
    let want = u32::from_le_bytes([buf[8], buf[9], buf[10], buf[11]]);
    let got = crc32c::crc32c_append(crc32c::crc32c(&buf[..8]), &buf[FRAME_HEADER..size]);
    if want != got {
        return Parse::Bad(Bad::Checksum);
    }
    let u64_at = |at: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&buf[at..at + 8]);
        u64::from_le_bytes(b)
    };
    let mut at = FRAME_HEADER;
    let ts_ms = u64_at(at);
    at += 8;
    let key = (flags & F_KEY != 0).then(|| {
        at += 8;
        u64_at(at - 8)
    });
    let id = (flags & F_ID != 0).then(|| {
        at += 8;
        u64_at(at - 8)
    });
    Parse::Frame(Frame {
        size,
        ts_ms,
        key,
        id,
        binary: flags & F_BIN != 0,
        record_at: at,
        record_len: size - at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_reads_back_with_its_key_and_id() {
        let mut b = Vec::new();
        encode(&mut b, 7, Some(11), None, b"{\"a\":1}");
        encode(&mut b, 8, None, Some(12), b"xyz");
        let Parse::Frame(f) = parse(&b) else {
            panic!("first frame")
        };
        assert_eq!((f.ts_ms, f.key, f.id), (7, Some(11), None));
        assert_eq!(&b[f.record_at..f.record_at + f.record_len], b"{\"a\":1}");
        let Parse::Frame(g) = parse(&b[f.size..]) else {
            panic!("second frame")
        };
        assert_eq!((g.ts_ms, g.key, g.id, g.record_len), (8, None, Some(12), 3));
        assert_eq!(f.size + g.size, b.len());
    }

    #[test]
    fn the_layout_is_the_documented_one() {
        let mut b = Vec::new();
        encode(&mut b, 5, Some(6), None, b"rec");
        assert_eq!(&b[..4], b"SQ\x01\x00", "magic, flags (key), zero");
        assert_eq!(&b[4..8], &(8u32 + 8 + 3).to_le_bytes(), "body length");
        assert_eq!(&b[12..20], &5u64.to_le_bytes(), "append time");
        assert_eq!(&b[20..28], &6u64.to_le_bytes(), "key");
        assert_eq!(&b[28..], b"rec");
        let mut crc_input = b[..8].to_vec();
        crc_input.extend_from_slice(&b[12..]);
        assert_eq!(&b[8..12], &crc32c::crc32c(&crc_input).to_le_bytes());
    }

    #[test]
    fn every_single_flipped_bit_is_caught() {
        let mut b = Vec::new();
        encode(&mut b, 1, Some(2), Some(3), b"record");
        for i in 0..b.len() * 8 {
            let mut c = b.clone();
            c[i / 8] ^= 1 << (i % 8);
            assert!(
                !matches!(parse(&c), Parse::Frame(_)),
                "bit {i} flipped and still read as a frame"
            );
        }
    }

    #[test]
    fn a_cut_frame_is_incomplete_not_bad() {
        let mut b = Vec::new();
        encode(&mut b, 1, None, None, b"0123456789");
        for cut in 0..b.len() {
            assert!(
                matches!(parse(&b[..cut]), Parse::Incomplete { .. }),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn unknown_versions_are_refused() {
        let mut h = segment_header();
        assert_eq!(check_segment_header(&h), Ok(()));
        h[7] = 2;
        assert_eq!(check_segment_header(&h), Err(HeaderError::Version(2)));
        assert_eq!(
            check_segment_header(b"garbage!"),
            Err(HeaderError::NotASegment)
        );
    }
}
