//! Avro object container file framing: header, blocks, sync markers, codecs.
//!
//! Why our own reader: apache-avro's `Reader` yields generic `Value`s and stops at the first
//! damaged block. A trace reader must stream (flat memory on multi-GB files), hand compressed
//! blocks to another thread, and resynchronise on the next sync marker after damage, naming the
//! file and block. apache-avro is still used to parse the embedded schema and to write traces.

use std::io::Read;

use super::cursor::Cursor;
use super::{DecodeError, FrameError};

/// Avro file magic.
pub const MAGIC: [u8; 4] = [b'O', b'b', b'j', 1];
/// What a block may hold. Sizes in a trace are input: a block header can declare any count
/// and a few compressed bytes can inflate to gigabytes, so both are capped and a block beyond
/// either is reported and skipped like any other damage. The defaults are far above what
/// writers produce (the collector's blocks hold at most ~1,400 records in ~80 KiB; ours 64
/// KiB) and keep a decompression bomb to a few tens of MiB (docs/operations.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockLimits {
    /// Largest decompressed block, in bytes (`block.maxsize`).
    pub max_inflated: u64,
    /// Most records a block may declare (`block.maxrecords`).
    pub max_records: u64,
    /// Most memory one decoded record may take (`record.maxsize`; see `Cursor`).
    pub max_record: usize,
}

impl Default for BlockLimits {
    fn default() -> Self {
        BlockLimits {
            max_inflated: 16 << 20,
            max_records: 1 << 16,
            max_record: super::cursor::DEFAULT_RECORD_LIMIT,
        }
    }
}

impl BlockLimits {
    /// Largest compressed block: compression never grows data by more than a small margin,
    /// so a compressed block larger than the inflated limit (plus that margin) cannot be
    /// within it.
    pub fn max_compressed(&self) -> u64 {
        self.max_inflated + self.max_inflated / 64 + (64 << 10)
    }
}

/// Block compression codecs of the Avro spec that SysFlow traces use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    Null,
    Deflate,
    Snappy,
    Zstandard,
}

impl Codec {
    pub fn parse(name: &str) -> Option<Codec> {
        match name {
            "null" | "" => Some(Codec::Null),
            "deflate" => Some(Codec::Deflate),
            "snappy" => Some(Codec::Snappy),
            "zstandard" => Some(Codec::Zstandard),
            _ => None,
        }
    }

    /// Decompresses one block into `out` (cleared first); more than `max` bytes is an error,
    /// found before more than `max` bytes are written.
    pub fn decompress(self, data: &[u8], out: &mut Vec<u8>, max: u64) -> Result<(), DecodeError> {
        out.clear();
        match self {
            Codec::Null => {
                if data.len() as u64 > max {
                    return Err(too_large("null", max));
                }
                out.extend_from_slice(data);
                Ok(())
            }
            Codec::Deflate => inflate(data, out, max),
            Codec::Snappy => {
                if data.len() < 4 {
                    return Err(DecodeError::Codec(
                        "snappy: block shorter than its CRC".into(),
                    ));
                }
                let (body, crc) = data.split_at(data.len() - 4);
                let n = snap::raw::decompress_len(body)
                    .map_err(|e| DecodeError::Codec(format!("snappy: {e}")))?;
                if n as u64 > max {
                    return Err(too_large("snappy", max));
                }
                out.resize(n, 0);
                snap::raw::Decoder::new()
                    .decompress(body, out)
                    .map_err(|e| DecodeError::Codec(format!("snappy: {e}")))?;
                let expected = u32::from_be_bytes([crc[0], crc[1], crc[2], crc[3]]);
                if crc32fast::hash(out) != expected {
                    return Err(DecodeError::Codec("snappy: CRC mismatch".into()));
                }
                Ok(())
            }
            Codec::Zstandard => {
                let d = zstd::stream::read::Decoder::new(data)
                    .map_err(|e| DecodeError::Codec(format!("zstandard: {e}")))?;
                bounded_read(d, out, "zstandard", max)
            }
        }
    }
}

fn too_large(codec: &str, max: u64) -> DecodeError {
    DecodeError::Codec(format!(
        "{codec}: block expands beyond {max} bytes (block.maxsize; a decompression bomb or a writer with huge blocks)"
    ))
}

/// Reads at most `max` bytes (plus one, to tell "exactly max" from "more"): a decompression
/// bomb is an error, not an allocation.
/// Raw deflate into `out`, at most `max` bytes. One inflate call per output buffer size
/// instead of the `Read` adapter's copy through its own buffer and small reads; like that
/// adapter, input that ends before the final block keeps what was inflated (the datum
/// decoder then reports the short block), and bytes after the final block are ignored.
fn inflate(data: &[u8], out: &mut Vec<u8>, max: u64) -> Result<(), DecodeError> {
    use flate2::{Decompress, FlushDecompress, Status};
    let mut d = Decompress::new(false);
    let limit = usize::try_from(max.saturating_add(1)).unwrap_or(usize::MAX);
    // The scratch buffer keeps its capacity between blocks; start from 4x the input.
    out.reserve(data.len().saturating_mul(4).min(limit));
    loop {
        if out.len() == out.capacity() {
            if out.len() >= limit {
                out.clear();
                return Err(too_large("deflate", max));
            }
            out.reserve(out.len().max(4096).min(limit - out.len()));
        }
        let consumed = d.total_in() as usize;
        let before = out.len();
        let status = d
            .decompress_vec(
                &data[consumed.min(data.len())..],
                out,
                FlushDecompress::None,
            )
            .map_err(|e| DecodeError::Codec(format!("deflate: {e}")))?;
        if out.len() as u64 > max {
            out.clear();
            return Err(too_large("deflate", max));
        }
        match status {
            Status::StreamEnd => return Ok(()),
            Status::Ok | Status::BufError => {
                let stalled = out.len() == before && d.total_in() as usize == consumed;
                // No progress with room left: the input ended inside the stream.
                if stalled && out.len() < out.capacity() {
                    return Ok(());
                }
            }
        }
    }
}

fn bounded_read(r: impl Read, out: &mut Vec<u8>, codec: &str, max: u64) -> Result<(), DecodeError> {
    let n = r
        .take(max.saturating_add(1))
        .read_to_end(out)
        .map_err(|e| DecodeError::Codec(format!("{codec}: {e}")))?;
    if n as u64 > max {
        out.clear();
        return Err(too_large(codec, max));
    }
    Ok(())
}

/// One compressed block as framed in the file.
#[derive(Debug, Clone)]
pub struct RawBlock {
    /// 0-based position of the block in the file.
    pub index: u64,
    /// Byte offset of the block in the file.
    pub offset: u64,
    /// Number of records the block declares.
    pub count: u64,
    pub data: Vec<u8>,
}

/// What the next framing step found.
#[derive(Debug)]
pub enum Frame {
    Block(RawBlock),
    /// Damage at block `index` (byte `offset`); `resumed_at` is where reading continues after
    /// the next sync marker, or `None` if none was found (end of file).
    Damaged {
        index: u64,
        offset: u64,
        reason: String,
        resumed_at: Option<u64>,
    },
    End,
}

/// Where reading went on after damage, for messages: the byte it resumed at, or that no
/// sync marker followed.
pub fn resume_note(resumed_at: Option<u64>) -> String {
    match resumed_at {
        Some(at) => format!("resumed at byte {at}"),
        None => "no further sync marker, rest of file skipped".to_string(),
    }
}

/// Streaming reader of an Avro object container file.
pub struct OcfReader<R: Read> {
    src: R,
    buf: Vec<u8>,
    start: usize,
    eof: bool,
    /// File offset of `buf[start]`.
    offset: u64,
    sync: [u8; 16],
    codec: Codec,
    schema: String,
    next_index: u64,
    done: bool,
    limits: BlockLimits,
}

const READ_CHUNK: usize = 256 << 10;

impl<R: Read> OcfReader<R> {
    /// Reads the file header: magic, metadata (`avro.schema`, `avro.codec`), sync marker.
    pub fn open(src: R) -> Result<Self, FrameError> {
        let mut r = OcfReader {
            src,
            buf: Vec::with_capacity(READ_CHUNK),
            start: 0,
            eof: false,
            offset: 0,
            sync: [0; 16],
            codec: Codec::Null,
            schema: String::new(),
            next_index: 0,
            done: false,
            limits: BlockLimits::default(),
        };
        r.fill(4)?;
        if r.available() < 4 || r.buf[r.start..r.start + 4] != MAGIC {
            return Err(FrameError::Header(
                "not an Avro object container file (wrong magic)".into(),
            ));
        }
        r.consume(4);
        let mut schema = None;
        let mut codec = None;
        loop {
            let n = r
                .read_long()
                .map_err(|e| FrameError::Header(format!("metadata: {e}")))?;
            if n == 0 {
                break;
            }
            let n = if n < 0 {
                r.read_long()
                    .map_err(|e| FrameError::Header(format!("metadata: {e}")))?;
                n.unsigned_abs()
            } else {
                n as u64
            };
            if n > 1024 {
                return Err(FrameError::Header(format!(
                    "metadata block declares {n} entries"
                )));
            }
            for _ in 0..n {
                let k = r.read_bytes(1 << 10)?;
                let v = r.read_bytes(16 << 20)?;
                match k.as_slice() {
                    b"avro.schema" => {
                        schema =
                            Some(String::from_utf8(v).map_err(|_| {
                                FrameError::Header("avro.schema is not UTF-8".into())
                            })?)
                    }
                    b"avro.codec" => {
                        let name = String::from_utf8_lossy(&v).into_owned();
                        codec = Some(Codec::parse(&name).ok_or_else(|| {
                            FrameError::Header(format!("unsupported codec `{name}`"))
                        })?);
                    }
                    _ => {}
                }
            }
        }
        r.fill(16)?;
        if r.available() < 16 {
            return Err(FrameError::Header(
                "truncated before the sync marker".into(),
            ));
        }
        r.sync.copy_from_slice(&r.buf[r.start..r.start + 16]);
        r.consume(16);
        r.schema = schema.ok_or_else(|| FrameError::Header("no avro.schema in metadata".into()))?;
        r.codec = codec.unwrap_or(Codec::Null);
        Ok(r)
    }

    /// Sets what a block may declare (the default is [`BlockLimits::default`]).
    pub fn set_limits(&mut self, limits: BlockLimits) {
        self.limits = limits;
    }

    pub fn schema_json(&self) -> &str {
        &self.schema
    }

    pub fn codec(&self) -> Codec {
        self.codec
    }

    fn available(&self) -> usize {
        self.buf.len() - self.start
    }

    fn consume(&mut self, n: usize) {
        self.start += n;
        self.offset += n as u64;
    }

    /// Ensures at least `n` bytes are buffered unless the file ends first.
    fn fill(&mut self, n: usize) -> Result<(), FrameError> {
        if self.available() >= n || self.eof {
            return Ok(());
        }
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        while self.buf.len() < n && !self.eof {
            // Grow by at most the bytes already read (doubling), never straight to `n`: `n`
            // can come from a block header, and a header that declares 64 MiB in a file of
            // 1 KiB must not allocate 64 MiB.
            let want = (n - self.buf.len()).clamp(READ_CHUNK, self.buf.len().max(READ_CHUNK));
            let old = self.buf.len();
            self.buf.resize(old + want, 0);
            let got = loop {
                match self.src.read(&mut self.buf[old..]) {
                    Ok(g) => break g,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        self.buf.truncate(old);
                        return Err(FrameError::Io(e.to_string()));
                    }
                }
            };
            self.buf.truncate(old + got);
            if got == 0 {
                self.eof = true;
            }
        }
        Ok(())
    }

    fn read_long(&mut self) -> Result<i64, FrameError> {
        self.fill(10)?;
        let avail = &self.buf[self.start..];
        let mut c = Cursor::new(avail);
        let v = c.long().map_err(|e| match e {
            DecodeError::Eof { .. } => FrameError::Truncated,
            other => FrameError::Corrupt(other.to_string()),
        })?;
        let used = c.pos();
        self.consume(used);
        Ok(v)
    }

    fn read_bytes(&mut self, max: usize) -> Result<Vec<u8>, FrameError> {
        let n = self.read_long()?;
        if n < 0 || n as u64 > max as u64 {
            return Err(FrameError::Header(format!("metadata value of {n} bytes")));
        }
        let n = n as usize;
        self.fill(n)?;
        if self.available() < n {
            return Err(FrameError::Truncated);
        }
        let v = self.buf[self.start..self.start + n].to_vec();
        self.consume(n);
        Ok(v)
    }

    /// Reads the next block, or reports damage and resynchronises on the next sync marker.
    pub fn next_frame(&mut self) -> Frame {
        if self.done {
            return Frame::End;
        }
        let index = self.next_index;
        let offset = self.offset;
        match self.try_block(index, offset) {
            Ok(Some(b)) => {
                self.next_index += 1;
                Frame::Block(b)
            }
            Ok(None) => {
                self.done = true;
                Frame::End
            }
            Err(reason) => {
                self.next_index += 1;
                // Search for the next sync marker after the start of the damaged block.
                let resumed_at = self.resync(offset);
                if resumed_at.is_none() {
                    self.done = true;
                }
                Frame::Damaged {
                    index,
                    offset,
                    reason,
                    resumed_at,
                }
            }
        }
    }

    fn try_block(&mut self, index: u64, offset: u64) -> Result<Option<RawBlock>, String> {
        self.fill(1).map_err(|e| e.to_string())?;
        if self.available() == 0 {
            return Ok(None);
        }
        let count = self.read_long().map_err(|e| format!("block header: {e}"))?;
        let size = self.read_long().map_err(|e| format!("block header: {e}"))?;
        if count < 0 || count as u64 > self.limits.max_records {
            return Err(format!(
                "block declares {count} records (limit {}: block.maxrecords)",
                self.limits.max_records
            ));
        }
        if size < 0 || size as u64 > self.limits.max_compressed() {
            return Err(format!(
                "block declares {size} compressed bytes (limit {}: block.maxsize)",
                self.limits.max_compressed()
            ));
        }
        let size = size as usize;
        self.fill(size + 16).map_err(|e| e.to_string())?;
        if self.available() < size + 16 {
            return Err(format!(
                "truncated: block declares {size} bytes plus the sync marker, {} left in the file",
                self.available()
            ));
        }
        let data = self.buf[self.start..self.start + size].to_vec();
        let sync_ok = self.buf[self.start + size..self.start + size + 16] == self.sync;
        if !sync_ok {
            return Err("sync marker mismatch after the block (block is damaged)".into());
        }
        self.consume(size + 16);
        Ok(Some(RawBlock {
            index,
            offset,
            count: count as u64,
            data,
        }))
    }

    /// Moves to just after the next sync marker found after file offset `after`; returns the new
    /// offset or `None` at end of file.
    fn resync(&mut self, after: u64) -> Option<u64> {
        // Rewind is impossible on a stream; we search from the current position, which is at
        // or after `after` (only the block header was consumed).
        let _ = after;
        loop {
            if self.fill(16 + READ_CHUNK).is_err() {
                return None;
            }
            let hay = &self.buf[self.start..];
            if let Some(p) = hay.windows(16).position(|w| w == self.sync) {
                self.consume(p + 16);
                return Some(self.offset);
            }
            if self.eof {
                let n = self.available();
                self.consume(n);
                return None;
            }
            // Keep the last 15 bytes: a marker may straddle the chunk boundary.
            let keep = 15.min(hay.len());
            let n = hay.len() - keep;
            self.consume(n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deflated(data: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn inflate_grows_its_buffer_and_keeps_the_limit() {
        // Highly compressible: the output outgrows the 4x first guess many times.
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 7) as u8).collect();
        let z = deflated(&data);
        let mut out = Vec::new();
        Codec::Deflate.decompress(&z, &mut out, 1 << 20).unwrap();
        assert_eq!(out, data);
        // Exactly at the limit passes; one byte less is refused and leaves nothing.
        Codec::Deflate
            .decompress(&z, &mut out, data.len() as u64)
            .unwrap();
        assert_eq!(out.len(), data.len());
        let e = Codec::Deflate
            .decompress(&z, &mut out, data.len() as u64 - 1)
            .unwrap_err();
        assert!(e.to_string().contains("block.maxsize"), "{e}");
        assert!(out.is_empty());
        // A reused buffer with room to spare gives the same bytes.
        let mut big = Vec::with_capacity(4 << 20);
        Codec::Deflate.decompress(&z, &mut big, 1 << 20).unwrap();
        assert_eq!(big, data);
    }

    #[test]
    fn truncated_or_corrupt_deflate_keeps_the_prefix_or_fails() {
        let data: Vec<u8> = (0..50_000u32).map(|i| (i * 31 % 251) as u8).collect();
        let z = deflated(&data);
        let mut out = Vec::new();
        // Input cut short: what inflated is kept (the datum decoder reports the short block).
        Codec::Deflate
            .decompress(&z[..z.len() / 2], &mut out, 1 << 20)
            .unwrap();
        assert!(!out.is_empty() && out.len() < data.len());
        assert_eq!(out[..], data[..out.len()]);
        // Bytes after the final block are ignored.
        let mut padded = z.clone();
        padded.extend_from_slice(b"trailing");
        Codec::Deflate
            .decompress(&padded, &mut out, 1 << 20)
            .unwrap();
        assert_eq!(out, data);
        // A reserved block type (binary 11) is an error, not a hang.
        let e = Codec::Deflate
            .decompress(&[0x07, 0, 0], &mut out, 1 << 20)
            .unwrap_err();
        assert!(e.to_string().starts_with("deflate"), "{e}");
        // Empty input: nothing inflated.
        Codec::Deflate.decompress(&[], &mut out, 1 << 20).unwrap();
        assert!(out.is_empty());
    }

    #[test]
    fn wrong_magic_is_a_header_error() {
        let e = OcfReader::open(&b"NOPE...."[..]).err().expect("must fail");
        assert!(e.to_string().contains("wrong magic"), "{e}");
        let e = OcfReader::open(&b""[..]).err().expect("must fail");
        assert!(e.to_string().contains("wrong magic"), "{e}");
    }
}
