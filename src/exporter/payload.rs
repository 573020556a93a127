//! What the exporter node hands its transport: encoded records with their boundaries.

/// Encoded records and where each one ends, with what some transports need per record (keys
/// and ids, empty when the transport does not use them). The boundaries travel with the
/// bytes, so a transport that sends one message per record (Kafka, syslog, Elasticsearch, the
/// webhook) never searches for separators, and a binary format passes as well as text.
///
/// A text format (`newline`) has a newline after each record, outside its boundaries: the
/// stream transports (file, terminal) write `bytes` as they are.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Payload {
    pub bytes: Vec<u8>,
    /// End offset of each record in `bytes` (its newline, if any, excluded).
    ends: Vec<u32>,
    /// A newline follows each record.
    newline: bool,
    /// Partition keys (Kafka): one process's records share a key, so they stay in order in
    /// one partition.
    pub keys: Vec<u64>,
    /// Document ids (Elasticsearch `create`): a retried bulk cannot index a record twice.
    pub ids: Vec<u64>,
}

impl Payload {
    /// An empty payload writing into `bytes` (cleared); `newline` for a text format. The
    /// bounds get room for a record per 512 bytes of `bytes`' capacity at once, so a chunk
    /// does not grow them step by step.
    pub fn new(mut bytes: Vec<u8>, newline: bool) -> Self {
        bytes.clear();
        let ends = Vec::with_capacity((bytes.capacity() / 512).clamp(16, 4096));
        Payload {
            bytes,
            ends,
            newline,
            ..Default::default()
        }
    }

    /// Text records, each ended by a newline in `bytes` (tests and tools).
    pub fn lines(bytes: Vec<u8>) -> Self {
        let ends = memchr::memchr_iter(b'\n', &bytes)
            .map(|e| e as u32)
            .collect();
        Payload {
            bytes,
            ends,
            newline: true,
            ..Default::default()
        }
    }

    /// How many records it holds.
    pub fn records(&self) -> usize {
        self.ends.len()
    }

    /// Whether a newline follows each record.
    pub fn is_text(&self) -> bool {
        self.newline
    }

    /// Sets whether a newline follows each record; only while it is empty.
    pub fn set_text(&mut self, text: bool) {
        debug_assert!(self.ends.is_empty());
        if self.ends.is_empty() {
            self.newline = text;
        }
    }

    /// Ends the record being written at the end of `bytes` (the encoder just appended it).
    pub fn end_record(&mut self) {
        self.ends.push(self.bytes.len() as u32);
        if self.newline {
            self.bytes.push(b'\n');
        }
    }

    /// Appends one whole record.
    pub fn push(&mut self, record: &[u8]) {
        self.bytes.extend_from_slice(record);
        self.end_record();
    }

    /// Record `i`, without its newline.
    pub fn record(&self, i: usize) -> &[u8] {
        let start = match i {
            0 => 0,
            _ => self.ends[i - 1] as usize + self.newline as usize,
        };
        &self.bytes[start..self.ends[i] as usize]
    }

    /// The records in order, without their newlines.
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> {
        (0..self.records()).map(move |i| self.record(i))
    }

    /// The records at `idx` (ascending), with their keys and ids.
    pub fn select(&self, idx: &[usize]) -> Payload {
        let mut out = Payload::new(Vec::new(), self.newline);
        for &i in idx {
            if i >= self.records() {
                continue;
            }
            out.push(self.record(i));
            if let Some(k) = self.keys.get(i) {
                out.keys.push(*k);
            }
            if let Some(k) = self.ids.get(i) {
                out.ids.push(*k);
            }
        }
        out
    }

    /// Adds `other`'s records; gives back whichever byte buffer is left over (empty), for reuse.
    pub(crate) fn append(&mut self, mut other: Payload) -> Vec<u8> {
        if self.records() == 0 {
            let spare = std::mem::replace(self, other).bytes;
            return spare;
        }
        let base = self.bytes.len() as u32;
        self.bytes.append(&mut other.bytes);
        self.ends.extend(other.ends.iter().map(|e| e + base));
        self.keys.append(&mut other.keys);
        self.ids.append(&mut other.ids);
        other.bytes
    }

    /// Empties it, keeping its buffers.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.ends.clear();
        self.keys.clear();
        self.ids.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_keep_their_bounds_through_select_and_append() {
        let mut p = Payload::new(Vec::new(), false);
        for r in [&b"a\nb"[..], b"", b"ccc"] {
            p.push(r);
        }
        p.keys = vec![1, 2, 3];
        assert_eq!(p.records(), 3);
        assert_eq!(p.iter().collect::<Vec<_>>(), [&b"a\nb"[..], b"", b"ccc"]);
        let s = p.select(&[0, 2]);
        assert_eq!(s.iter().collect::<Vec<_>>(), [&b"a\nb"[..], b"ccc"]);
        assert_eq!(s.keys, [1, 3]);
        let mut q = Payload::lines(b"x\ny\n".to_vec());
        let mut t = Payload::lines(b"z\n".to_vec());
        t.keys.clear();
        let _ = q.append(t);
        assert_eq!(q.bytes, b"x\ny\nz\n");
        assert_eq!(q.iter().collect::<Vec<_>>(), [&b"x"[..], b"y", b"z"]);
        assert_eq!(q.select(&[1]).bytes, b"y\n");
    }
}
