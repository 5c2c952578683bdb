//! The payload of a write-ahead log entry: one accepted batch of one stream.
//!
//! The accepted records are kept as the validated JSON lines they arrived as, so that the hot
//! path never serialises a record twice; a replay validates them again with the same code and
//! the batch's receive time standing in for absent timestamps, which makes the replay produce
//! exactly the documents the first pass produced.
//!
//! Version 2 adds what a push batch needs to be recognised when it is sent again (its
//! fingerprint and the lines refused as already written, see [`crate::dedup`]) and the document
//! ids given by the client; version 1 entries are still read.

use crate::{Error, Result};

const VERSION: u8 = 2;
/// The first version, without fingerprint and ids.
const VERSION_1: u8 = 1;

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
    /// The fingerprint of a push batch (resend detection); `None` for delivery batches.
    pub fingerprint: Option<u128>,
    /// Lines of the push batch refused as already written (their id was known), 0-based.
    pub conflicts: Vec<u32>,
    /// Document ids given by the client: `(index in records, id)`.
    pub ids: Vec<(u32, String)>,
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
        match self.fingerprint {
            Some(fp) => {
                out.push(1);
                out.extend_from_slice(&fp.to_le_bytes());
            }
            None => out.push(0),
        }
        out.extend_from_slice(&(self.conflicts.len() as u32).to_le_bytes());
        for line in &self.conflicts {
            out.extend_from_slice(&line.to_le_bytes());
        }
        out.extend_from_slice(&(self.ids.len() as u32).to_le_bytes());
        for (record, id) in &self.ids {
            out.extend_from_slice(&record.to_le_bytes());
            put_bytes(&mut out, id.as_bytes());
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Batch> {
        let mut r = Reader { bytes, pos: 0 };
        let version = r.u8()?;
        if version != VERSION && version != VERSION_1 {
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
        let mut batch = Batch {
            stream,
            received_at,
            marks,
            records,
            ..Batch::default()
        };
        if version == VERSION_1 {
            return Ok(batch);
        }
        if r.u8()? == 1 {
            batch.fingerprint = Some(u128::from_le_bytes(r.array()?));
        }
        let n_conflicts = r.u32()? as usize;
        batch.conflicts = Vec::with_capacity(n_conflicts.min(1 << 20));
        for _ in 0..n_conflicts {
            batch.conflicts.push(r.u32()?);
        }
        let n_ids = r.u32()? as usize;
        batch.ids = Vec::with_capacity(n_ids.min(1 << 20));
        for _ in 0..n_ids {
            let record = r.u32()?;
            batch.ids.push((record, r.string()?));
        }
        Ok(batch)
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
            ..Batch::default()
        };
        assert_eq!(Batch::decode(&batch.encode()).unwrap(), batch);
        let push = Batch {
            fingerprint: Some(u128::MAX - 1),
            conflicts: vec![0, 7],
            ids: vec![(1, "id-1".into())],
            ..batch
        };
        assert_eq!(Batch::decode(&push.encode()).unwrap(), push);
    }

    #[test]
    fn version_1_entries_are_read() {
        let batch = Batch {
            stream: "logs".into(),
            received_at: 9,
            marks: vec![("s".into(), 3)],
            records: vec![b"{}".to_vec()],
            ..Batch::default()
        };
        let mut v1 = batch.encode();
        v1.truncate(v1.len() - 9); // no fingerprint, conflicts, ids
        v1[0] = VERSION_1;
        assert_eq!(Batch::decode(&v1).unwrap(), batch);
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
