//! Reading a segment's frames in order, a window at a time (the queue's memory stays bounded
//! whatever the segment size), with damage found and stepped over.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use super::frame::{self, Bad, Frame, Parse, FRAME_MAGIC};

/// Bytes read from the file at a time.
const WINDOW: usize = 256 << 10;

/// One step through a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// A good frame at file offset `offset`; its bytes are [`SegmentScan::bytes`] until the
    /// next step.
    Frame { offset: u64, frame: Frame },
    /// The readable end was reached on a frame boundary.
    End,
    /// The bytes from `offset` to the readable end are the start of a frame that was never
    /// finished (a write cut by a crash), or damage with no good frame after it.
    Tail {
        offset: u64,
        bytes: u64,
        why: TailWhy,
    },
    /// Damage at `offset`; reading goes on at `resumed`, the next good frame.
    Damaged { offset: u64, resumed: u64, why: Bad },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TailWhy {
    /// A frame that runs past the end.
    Cut,
    /// Bytes that are no frame, and no good frame after them.
    Damaged(Bad),
}

/// A forward reader over the frames of one segment file, from `start` up to `end`.
pub struct SegmentScan {
    file: File,
    /// File offset of `store[0]`.
    base: u64,
    /// Bytes read from the file: `store[..hi]` holds the file from `base`.
    store: Vec<u8>,
    hi: usize,
    /// Parse position within `store`.
    pos: usize,
    /// How far the file may be read (the writer's committed length).
    end: u64,
}

impl SegmentScan {
    pub fn new(file: File, start: u64, end: u64) -> Self {
        SegmentScan {
            file,
            base: start,
            store: Vec::new(),
            hi: 0,
            pos: 0,
            end,
        }
    }

    /// The offset of the next frame to read.
    pub fn position(&self) -> u64 {
        self.base + self.pos as u64
    }

    /// More of the file has been written and may be read.
    pub fn extend_to(&mut self, end: u64) {
        self.end = self.end.max(end);
    }

    /// The record of the frame the last step returned.
    pub fn record(&self, at: u64, f: &Frame) -> &[u8] {
        let s = (at - self.base) as usize + f.record_at;
        &self.store[s..s + f.record_len]
    }

    /// Makes sure `store[pos..hi]` holds `need` bytes, or everything up to `end` if fewer.
    /// The store keeps its size between windows (no zeroing per read).
    fn fill(&mut self, need: usize) -> io::Result<()> {
        let have = self.hi - self.pos;
        let left = self.end.saturating_sub(self.base + self.hi as u64);
        if have >= need || left == 0 {
            return Ok(());
        }
        if self.pos > 0 {
            self.store.copy_within(self.pos..self.hi, 0);
            self.base += self.pos as u64;
            self.hi -= self.pos;
            self.pos = 0;
        }
        let size = need.max(WINDOW);
        if self.store.len() < size {
            self.store.resize(size, 0);
        }
        let n = ((self.store.len() - self.hi) as u64).min(left) as usize;
        let old = self.hi;
        let mut got = 0;
        while got < n {
            match self.file.read_at(
                &mut self.store[old + got..old + n],
                self.base + (old + got) as u64,
            ) {
                Ok(0) => break,
                Ok(k) => got += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.hi = old + got;
                    return Err(e);
                }
            }
        }
        self.hi = old + got;
        // A file shorter than its recorded length (cut behind our back) reads as a short end.
        if got < n {
            self.end = self.base + self.hi as u64;
        }
        Ok(())
    }

    /// The next step.
    pub fn next_step(&mut self) -> io::Result<Step> {
        self.fill(frame::FRAME_HEADER)?;
        if self.pos == self.hi {
            return Ok(Step::End);
        }
        let offset = self.position();
        match frame::parse(&self.store[self.pos..self.hi]) {
            Parse::Frame(f) => {
                self.pos += f.size;
                Ok(Step::Frame { offset, frame: f })
            }
            Parse::Incomplete { need } => {
                self.fill(need)?;
                match frame::parse(&self.store[self.pos..self.hi]) {
                    Parse::Frame(f) => {
                        self.pos += f.size;
                        Ok(Step::Frame { offset, frame: f })
                    }
                    Parse::Incomplete { .. } => {
                        let bytes = self.end - offset;
                        self.pos = self.hi;
                        self.skip_to_end();
                        Ok(Step::Tail {
                            offset,
                            bytes,
                            why: TailWhy::Cut,
                        })
                    }
                    Parse::Bad(why) => self.resync(offset, why),
                }
            }
            Parse::Bad(why) => self.resync(offset, why),
        }
    }

    fn skip_to_end(&mut self) {
        self.base = self.end;
        self.hi = 0;
        self.pos = 0;
    }

    /// Looks for the next good frame after damage at `offset`.
    fn resync(&mut self, offset: u64, why: Bad) -> io::Result<Step> {
        self.pos += 1;
        loop {
            self.fill(frame::FRAME_HEADER)?;
            let Some(i) = memchr::memmem::find(&self.store[self.pos..self.hi], &FRAME_MAGIC) else {
                if self.base + self.hi as u64 >= self.end {
                    let bytes = self.end - offset;
                    self.skip_to_end();
                    return Ok(Step::Tail {
                        offset,
                        bytes,
                        why: TailWhy::Damaged(why),
                    });
                }
                // Keep the last byte: it may be the first half of a marker. `fill` either
                // reads more or, on a file shorter than `end`, moves `end` to what is there.
                self.pos = self.hi.saturating_sub(1).max(self.pos);
                self.fill(WINDOW)?;
                continue;
            };
            self.pos += i;
            let mut p = frame::parse(&self.store[self.pos..self.hi]);
            if let Parse::Incomplete { need } = p {
                self.fill(need)?;
                p = frame::parse(&self.store[self.pos..self.hi]);
            }
            match p {
                Parse::Frame(_) => {
                    return Ok(Step::Damaged {
                        offset,
                        resumed: self.position(),
                        why,
                    })
                }
                _ => self.pos += 1,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn segment(records: &[&[u8]]) -> Vec<u8> {
        let mut b = frame::segment_header().to_vec();
        for (i, r) in records.iter().enumerate() {
            frame::encode(&mut b, i as u64, Some(i as u64), None, r);
        }
        b
    }

    fn steps(bytes: &[u8]) -> Vec<Step> {
        let dir = tempdir();
        let path = dir.join("s");
        std::fs::File::create(&path)
            .unwrap()
            .write_all(bytes)
            .unwrap();
        let f = File::open(&path).unwrap();
        let mut s = SegmentScan::new(f, frame::SEGMENT_HEADER, bytes.len() as u64);
        let mut out = Vec::new();
        loop {
            let st = s.next_step().unwrap();
            out.push(st);
            if st == Step::End || matches!(st, Step::Tail { .. }) {
                break;
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
        out
    }

    fn tempdir() -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!(
            "sfq-scan-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn frames(st: &[Step]) -> usize {
        st.iter()
            .filter(|s| matches!(s, Step::Frame { .. }))
            .count()
    }

    #[test]
    fn a_clean_segment_reads_to_its_end() {
        let big = vec![b'x'; 300 << 10];
        let st = steps(&segment(&[b"a", &big, b"c"]));
        assert_eq!(frames(&st), 3);
        assert_eq!(st.last(), Some(&Step::End));
    }

    #[test]
    fn a_torn_last_frame_is_a_cut_tail() {
        let mut b = segment(&[b"one", b"two", b"three"]);
        let whole = b.len();
        b.truncate(whole - 3);
        let st = steps(&b);
        assert_eq!(frames(&st), 2);
        let Some(Step::Tail { offset, bytes, why }) = st.last().copied() else {
            panic!("{st:?}")
        };
        assert_eq!(why, TailWhy::Cut);
        assert_eq!(offset + bytes, b.len() as u64);
    }

    #[test]
    fn damage_in_the_middle_is_stepped_over() {
        let recs: Vec<Vec<u8>> = (0..50)
            .map(|i| format!("record {i}").into_bytes())
            .collect();
        let refs: Vec<&[u8]> = recs.iter().map(|r| r.as_slice()).collect();
        let mut b = segment(&refs);
        let mid = b.len() / 2;
        b[mid] ^= 0x40;
        let st = steps(&b);
        assert_eq!(frames(&st), 49, "{st:?}");
        assert!(st
            .iter()
            .any(|s| matches!(s, Step::Damaged { offset, .. } if *offset <= mid as u64)));
        assert_eq!(st.last(), Some(&Step::End));
    }

    #[test]
    fn zeroes_after_the_last_frame_are_a_damaged_tail() {
        let mut b = segment(&[b"one"]);
        b.extend_from_slice(&[0u8; 4096]);
        let st = steps(&b);
        assert_eq!(frames(&st), 1);
        assert!(matches!(
            st.last(),
            Some(Step::Tail {
                why: TailWhy::Damaged(_),
                bytes: 4096,
                ..
            })
        ));
    }
}
