//! The payload of a write-ahead log entry: one accepted batch of one stream.
//!
//! The accepted records are kept as the validated JSON lines they arrived as, so that the hot
//! path never serialises a record twice; a replay validates them again with the same code and
//! the batch's receive time standing in for absent timestamps, which makes the replay produce
//! exactly the documents the first pass produced.
//!
//! Version 2 adds what a push batch needs to be recognised when it is sent again (its
//! fingerprint and the lines refused as already written, see [`crate::dedup`]) and the document
//! ids given by the client. Version 3 adds which source each record of a delivery batch was
//! read from ([`Batch::sources`]). Versions 1 and 2 are still read.

use crate::{Error, Result};

const VERSION: u8 = 3;
/// The first version, without fingerprint and ids.
const VERSION_1: u8 = 1;
/// Without the records' sources.
const VERSION_2: u8 = 2;

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
    /// The source of each record of a delivery batch, in runs: `(source_id, records)` in
    /// record order. Empty for push batches (and entries before version 3).
    pub sources: Vec<(String, u32)>,
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
        out.extend_from_slice(&(self.sources.len() as u32).to_le_bytes());
        for (source, records) in &self.sources {
            put_bytes(&mut out, source.as_bytes());
            out.extend_from_slice(&records.to_le_bytes());
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Batch> {
        let mut r = Reader { bytes, pos: 0 };
        let version = r.u8()?;
        if !(VERSION_1..=VERSION).contains(&version) {
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
        if version == VERSION_2 {
            return Ok(batch);
        }
        let n_sources = r.u32()? as usize;
        batch.sources = Vec::with_capacity(n_sources.min(1 << 16));
        for _ in 0..n_sources {
            let source = r.string()?;
            batch.sources.push((source, r.u32()?));
        }
        Ok(batch)
    }

    /// The source of each record, by index (`None` where the batch does not say).
    pub fn record_sources(&self) -> impl Iterator<Item = Option<&str>> + '_ {
        self.sources
            .iter()
            .flat_map(|(source, n)| std::iter::repeat_n(Some(source.as_str()), *n as usize))
            .chain(std::iter::repeat(None))
            .take(self.records.len())
    }

    /// The batch without the records of the sources `drop` selects, their document ids
    /// renumbered; how many records were left out.
    pub fn without_sources(mut self, drop: impl Fn(&str) -> bool) -> (Batch, usize) {
        let keep: Vec<bool> = self
            .record_sources()
            .map(|source| source.is_none_or(|s| !drop(s)))
            .collect();
        let dropped = keep.iter().filter(|k| !**k).count();
        if dropped == 0 {
            return (self, 0);
        }
        // New index of each kept record.
        let mut new_index = Vec::with_capacity(keep.len());
        let mut next = 0u32;
        for k in &keep {
            new_index.push(k.then_some(next));
            next += u32::from(*k);
        }
        let mut i = 0;
        self.records.retain(|_| {
            i += 1;
            keep[i - 1]
        });
        self.ids = self
            .ids
            .into_iter()
            .filter_map(|(record, id)| Some((new_index.get(record as usize).copied()??, id)))
            .collect();
        self.sources.retain(|(source, _)| !drop(source));
        // The batch no longer advances those sources' marks in what it is indexed into.
        self.marks.retain(|(source, _)| !drop(source));
        (self, dropped)
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
            ..batch.clone()
        };
        assert_eq!(Batch::decode(&push.encode()).unwrap(), push);
        let delivery = Batch {
            sources: vec![("node/uid/c/abc".into(), 1), ("x".into(), 1)],
            ..batch
        };
        assert_eq!(Batch::decode(&delivery.encode()).unwrap(), delivery);
    }

    #[test]
    fn version_2_entries_are_read() {
        let batch = Batch {
            stream: "logs".into(),
            records: vec![b"{}".to_vec()],
            fingerprint: Some(3),
            ids: vec![(0, "i".into())],
            ..Batch::default()
        };
        let mut v2 = batch.encode();
        v2.truncate(v2.len() - 4); // no sources
        v2[0] = VERSION_2;
        assert_eq!(Batch::decode(&v2).unwrap(), batch);
    }

    #[test]
    fn records_of_dropped_sources_are_left_out_with_their_ids_renumbered() {
        let batch = Batch {
            stream: "logs".into(),
            marks: vec![("a".into(), 10), ("b".into(), 20)],
            records: ["a0", "a1", "b0", "b1", "b2", "c0"]
                .iter()
                .map(|r| r.as_bytes().to_vec())
                .collect(),
            ids: vec![
                (1, "id-a1".into()),
                (3, "id-b1".into()),
                (5, "id-c0".into()),
            ],
            sources: vec![("a".into(), 2), ("b".into(), 3), ("c".into(), 1)],
            ..Batch::default()
        };
        let sources: Vec<Option<&str>> = batch.record_sources().collect();
        assert_eq!(
            sources,
            [
                Some("a"),
                Some("a"),
                Some("b"),
                Some("b"),
                Some("b"),
                Some("c")
            ]
        );
        let (kept, dropped) = batch.clone().without_sources(|s| s == "b");
        assert_eq!(dropped, 3);
        let records: Vec<&[u8]> = kept.records.iter().map(Vec::as_slice).collect();
        assert_eq!(records, [&b"a0"[..], b"a1", b"c0"]);
        assert_eq!(
            kept.ids,
            [(1, "id-a1".to_string()), (2, "id-c0".to_string())]
        );
        assert_eq!(kept.sources, [("a".to_string(), 2), ("c".to_string(), 1)]);
        assert_eq!(kept.marks, [("a".to_string(), 10)]);
        let (same, none) = batch.clone().without_sources(|s| s == "z");
        assert_eq!((same, none), (batch.clone(), 0));
        // A batch that does not say (push, or an older entry): nothing is left out.
        let push = Batch {
            sources: Vec::new(),
            ..batch
        };
        assert_eq!(push.clone().without_sources(|_| true), (push, 0));
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
        v1.truncate(v1.len() - 13); // no fingerprint, conflicts, ids, sources
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
