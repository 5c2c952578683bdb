//! The payload of a write-ahead log entry: one accepted batch of one stream.
//!
//! The accepted records are kept as the validated JSON lines they arrived as, so that the hot
//! path never serialises a record twice; a replay validates them again with the same code and
//! the batch's receive time standing in for absent timestamps, which makes the replay produce
//! exactly the documents the first pass produced.

use crate::{Error, Result};

const VERSION: u8 = 1;

/// One batch as logged.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Batch {
    pub stream: String,
    /// When the batch was received (nanoseconds), the timestamp of records that have none.
    pub received_at: i64,
    /// Source marks this batch advances: `(source_id, new end)`.
    pub marks: Vec<(String, u64)>,
    /// The accepted records, one JSON document each.
    pub records: Vec<Vec<u8>>,
}

impl Batch {
    pub fn encode(&self) -> Vec<u8> {
        let size = 32
            + self.stream.len()
            + self.marks.iter().map(|(s, _)| s.len() + 12).sum::<usize>()
            + self.records.iter().map(|r| r.len() + 4).sum::<usize>();
        let mut out = Vec::with_capacity(size);
        out.push(VERSION);
        put_bytes(&mut out, self.stream.as_bytes());
        out.extend_from_slice(&self.received_at.to_le_bytes());
        out.extend_from_slice(&(self.marks.len() as u32).to_le_bytes());
        for (source, end) in &self.marks {
            put_bytes(&mut out, source.as_bytes());
            out.extend_from_slice(&end.to_le_bytes());
        }
        out.extend_from_slice(&(self.records.len() as u32).to_le_bytes());
        for record in &self.records {
            put_bytes(&mut out, record);
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Batch> {
        let mut r = Reader { bytes, pos: 0 };
        let version = r.u8()?;
        if version != VERSION {
            return Err(corrupt(format!("unknown batch version {version}")));
        }
        let stream = r.string()?;
        let received_at = i64::from_le_bytes(r.array()?);
        let n_marks = r.u32()? as usize;
        let mut marks = Vec::with_capacity(n_marks.min(1 << 16));
        for _ in 0..n_marks {
            let source = r.string()?;
            marks.push((source, u64::from_le_bytes(r.array()?)));
        }
        let n_records = r.u32()? as usize;
        let mut records = Vec::with_capacity(n_records.min(1 << 20));
        for _ in 0..n_records {
            records.push(r.bytes()?.to_vec());
        }
        Ok(Batch {
            stream,
            received_at,
            marks,
            records,
        })
    }
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

fn corrupt(message: String) -> Error {
    Error::Io(std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("write-ahead log entry: {message}"),
    ))
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.bytes.len())
            .ok_or_else(|| corrupt("truncated".into()))?;
        let slice = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn bytes(&mut self) -> Result<&'a [u8]> {
        let len = self.u32()? as usize;
        self.take(len)
    }

    fn string(&mut self) -> Result<String> {
        String::from_utf8(self.bytes()?.to_vec()).map_err(|_| corrupt("invalid utf-8".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let batch = Batch {
            stream: "logs".into(),
            received_at: -5,
            marks: vec![("node/uid/c/abc".into(), 42), ("x".into(), u64::MAX)],
            records: vec![b"{\"message\":\"a\"}".to_vec(), Vec::new()],
        };
        assert_eq!(Batch::decode(&batch.encode()).unwrap(), batch);
    }

    #[test]
    fn truncated_payload_is_an_error() {
        let batch = Batch {
            stream: "logs".into(),
            records: vec![b"{}".to_vec()],
            ..Batch::default()
        };
        let bytes = batch.encode();
        for cut in 0..bytes.len() {
            assert!(Batch::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
    }
}
