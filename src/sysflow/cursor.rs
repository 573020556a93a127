//! Bounds-checked reader of Avro binary encoding. Every read returns an error on malformed
//! input; nothing here can panic on input bytes.

use super::DecodeError;

/// A position in a byte slice holding Avro binary data.
///
/// It also keeps the memory the datum being decoded will take (strings: their bytes and
/// their `String`; array items: their size), against a limit: Avro's smallest items are one
/// byte (an empty string, a zero), which decode into 24-byte values, so a 1 MiB packet of
/// empty strings would become 24 MiB of `Vec<String>`. A datum past the limit is refused
/// ([`DecodeError::Oversize`]) before the memory is taken.
pub struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Bytes the current datum takes so far, and the most it may take.
    used: usize,
    limit: usize,
}

/// The default limit on what one decoded record may take (`record.maxsize`): four times a
/// 1 MiB packet of ordinary strings.
pub const DEFAULT_RECORD_LIMIT: usize = 4 << 20;

impl<'a> Cursor<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Self::with_limit(buf, DEFAULT_RECORD_LIMIT)
    }

    /// A cursor whose datums may each take at most `limit` bytes once decoded.
    pub fn with_limit(buf: &'a [u8], limit: usize) -> Self {
        Cursor {
            buf,
            pos: 0,
            used: 0,
            limit,
        }
    }

    /// A new datum starts: its memory is counted from zero.
    #[inline]
    pub fn start_datum(&mut self) {
        self.used = 0;
    }

    /// Counts `bytes` of decoded memory for the current datum.
    #[inline]
    pub fn charge(&mut self, bytes: usize) -> Result<(), DecodeError> {
        self.used = self.used.saturating_add(bytes);
        if self.used > self.limit {
            return Err(DecodeError::Oversize {
                pos: self.pos,
                limit: self.limit,
            });
        }
        Ok(())
    }

    pub fn pos(&self) -> usize {
        self.pos
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    /// Reads a zig-zag varint (Avro `int` and `long` share this encoding).
    #[inline]
    pub fn long(&mut self) -> Result<i64, DecodeError> {
        let mut value: u64 = 0;
        let mut shift = 0u32;
        let start = self.pos;
        loop {
            let Some(&b) = self.buf.get(self.pos) else {
                return Err(DecodeError::Eof { pos: self.pos });
            };
            self.pos += 1;
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                break;
            }
            shift += 7;
            if shift > 63 {
                return Err(DecodeError::VarInt { pos: start });
            }
        }
        Ok(((value >> 1) as i64) ^ -((value & 1) as i64))
    }

    /// Reads an Avro `int`, rejecting values outside `i32`.
    #[inline]
    pub fn int(&mut self) -> Result<i32, DecodeError> {
        let start = self.pos;
        let v = self.long()?;
        i32::try_from(v).map_err(|_| DecodeError::IntRange {
            pos: start,
            value: v,
        })
    }

    #[inline]
    pub fn boolean(&mut self) -> Result<bool, DecodeError> {
        let Some(&b) = self.buf.get(self.pos) else {
            return Err(DecodeError::Eof { pos: self.pos });
        };
        self.pos += 1;
        match b {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(DecodeError::Bool {
                pos: self.pos - 1,
                byte: b,
            }),
        }
    }

    /// Reads exactly `n` bytes.
    #[inline]
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.remaining() < n {
            return Err(DecodeError::Eof {
                pos: self.buf.len(),
            });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// Reads a length prefix, rejecting negative or impossible lengths.
    #[inline]
    pub fn len_prefix(&mut self) -> Result<usize, DecodeError> {
        let pos = self.pos;
        let n = self.long()?;
        if n < 0 || n as u64 > self.remaining() as u64 {
            return Err(DecodeError::Length { pos, len: n });
        }
        Ok(n as usize)
    }

    #[inline]
    pub fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let n = self.len_prefix()?;
        self.take(n)
    }

    /// Reads a string. Invalid UTF-8 is replaced rather than rejected: a collector that wrote a
    /// bad byte in a path must not cost the whole block.
    #[inline]
    pub fn string(&mut self) -> Result<String, DecodeError> {
        let b = self.bytes()?;
        self.charge(b.len() + std::mem::size_of::<String>())?;
        Ok(match std::str::from_utf8(b) {
            Ok(s) => s.to_owned(),
            Err(_) => String::from_utf8_lossy(b).into_owned(),
        })
    }

    #[inline]
    pub fn skip(&mut self, n: usize) -> Result<(), DecodeError> {
        self.take(n).map(|_| ())
    }

    /// Reads the item count of the next array/map block. A negative count is followed by the
    /// block size in bytes (which we do not need). Returns 0 at the end of the array.
    #[inline]
    pub fn block_count(&mut self) -> Result<usize, DecodeError> {
        let pos = self.pos;
        let n = self.long()?;
        let n = if n < 0 {
            let _size = self.long()?;
            n.checked_neg().ok_or(DecodeError::Length { pos, len: n })?
        } else {
            n
        };
        // Every item takes at least one byte except null/empty records; cap by remaining bytes
        // to refuse absurd counts before allocating.
        if n as u64
            > (self.remaining() as u64)
                .saturating_mul(8)
                .saturating_add(8)
        {
            return Err(DecodeError::Length { pos, len: n });
        }
        Ok(n as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_datum_past_its_memory_limit_is_refused_before_the_memory_is_taken() {
        // 1,000 empty strings: 1,000 bytes of input, 24,000 bytes decoded.
        let data = vec![0u8; 1000];
        let mut c = Cursor::with_limit(&data, 10_000);
        c.start_datum();
        let mut n = 0;
        let e = loop {
            match c.string() {
                Ok(_) => n += 1,
                Err(e) => break e,
            }
        };
        assert!(
            matches!(e, DecodeError::Oversize { limit: 10_000, .. }),
            "{e}"
        );
        assert_eq!(n, 10_000 / 24);
        // The next datum starts from zero.
        c.start_datum();
        assert!(c.string().is_ok());
    }

    #[test]
    fn zigzag_values() {
        // 0 -> 0, -1 -> 1, 1 -> 2, -64 -> 127, 64 -> [0x80, 0x01]
        let data = [0u8, 1, 2, 127, 0x80, 0x01];
        let mut c = Cursor::new(&data);
        assert_eq!(c.long().unwrap(), 0);
        assert_eq!(c.long().unwrap(), -1);
        assert_eq!(c.long().unwrap(), 1);
        assert_eq!(c.long().unwrap(), -64);
        assert_eq!(c.long().unwrap(), 64);
        assert!(c.is_empty());
    }

    #[test]
    fn truncated_and_overlong_input_is_an_error() {
        assert!(matches!(
            Cursor::new(&[0x80]).long(),
            Err(DecodeError::Eof { .. })
        ));
        assert!(matches!(
            Cursor::new(&[0xff; 11]).long(),
            Err(DecodeError::VarInt { .. })
        ));
        // A string claiming 100 bytes with 2 available.
        assert!(matches!(
            Cursor::new(&[200, b'a', b'b']).string(),
            Err(DecodeError::Length { .. })
        ));
        assert!(matches!(
            Cursor::new(&[3]).string(),
            Err(DecodeError::Length { .. })
        ));
        assert!(matches!(
            Cursor::new(&[2]).boolean(),
            Err(DecodeError::Bool { .. })
        ));
    }
}
