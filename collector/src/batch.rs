//! Batches: records of many sources with the delivery envelope that travels beside them.
//!
//! The wire form (decompressed) is one NDJSON body: first the envelope
//! `{"sources":[{"id","start","end","offsets":[...]}]}`, then the records, grouped by source in
//! envelope order (the first `offsets.len()` records belong to `sources[0]`, and so on).
//!
//! Envelope offsets chain: a record's envelope offset is the `end` of the record before it from
//! the same source (its first line's file offset for the first record read), so that one
//! source's ranges are contiguous across batches and `end` values, strictly increasing, are what
//! the indexer's marks compare. The record's own `offset` field is its first line's offset.

use std::collections::HashMap;
use std::time::Instant;

use serde::{Deserialize, Serialize};

/// zstd level of batch bodies. On the bench's log corpus in 1 MiB blocks level 1 compresses at
/// 568 MB/s against level 3's 353, for bodies 6 % larger; the indexer decompresses either as
/// fast.
const ZSTD_LEVEL: i32 = 1;

/// One source's part of a batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceMeta {
    /// The source id (see [`crate::identity`]).
    pub id: String,
    /// Envelope offset of the first record (the end of what the indexer had before).
    pub start: u64,
    /// End of the last record.
    pub end: u64,
    /// Envelope offset of each record.
    pub offsets: Vec<u64>,
    /// The line boundary to resume from once this batch is acknowledged (not sent).
    pub resume: u64,
    /// The file read (for checkpoints; not sent).
    #[serde(default)]
    pub path: String,
}

/// A sealed batch: its sources and the NDJSON of its records (without the envelope).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// `logs` or `audit`.
    pub stream: String,
    pub sources: Vec<SourceMeta>,
    /// The records, one JSON object a line, grouped as the sources are.
    pub records: Vec<u8>,
}

#[derive(Serialize)]
struct EnvelopeSource<'a> {
    id: &'a str,
    start: u64,
    end: u64,
    offsets: &'a [u64],
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    gap_ok: bool,
}

#[derive(Serialize)]
struct Envelope<'a> {
    sources: Vec<EnvelopeSource<'a>>,
}

impl Batch {
    /// Number of records.
    pub fn record_count(&self) -> usize {
        self.sources.iter().map(|s| s.offsets.len()).sum()
    }

    /// The envelope line (with its `'\n'`); sources in `gap_ok` carry `"gap_ok": true`, which
    /// tells the indexer to accept a gap before them knowingly.
    pub fn envelope(&self, gap_ok: &dyn Fn(&str) -> bool) -> Vec<u8> {
        let env = Envelope {
            sources: self
                .sources
                .iter()
                .map(|s| EnvelopeSource {
                    id: &s.id,
                    start: s.start,
                    end: s.end,
                    offsets: &s.offsets,
                    gap_ok: gap_ok(&s.id),
                })
                .collect(),
        };
        let mut line = serde_json::to_vec(&env).unwrap_or_default();
        line.push(b'\n');
        line
    }

    /// zstd of the records alone, as stored in the disk buffer.
    pub fn compress_records(&self) -> Vec<u8> {
        trawl_model::codec::zstd_compress(&self.records, ZSTD_LEVEL)
    }

    /// [`Batch::compress_records`] with a context kept from batch to batch.
    pub fn compress_records_with(&self, zstd: &mut Zstd) -> Vec<u8> {
        zstd.compress(&self.records)
    }

    /// The request body: the compressed envelope frame followed by the stored records frame
    /// (concatenated zstd frames decode as one stream).
    pub fn wire_body(&self, compressed_records: &[u8], gap_ok: &dyn Fn(&str) -> bool) -> Vec<u8> {
        let mut body = trawl_model::codec::zstd_compress(&self.envelope(gap_ok), ZSTD_LEVEL);
        body.extend_from_slice(compressed_records);
        body
    }

    /// Record `i` in body order: its source, its envelope offset and its JSON (without the
    /// `'\n'`). `None` past the end. Needs `records` (not the stored, compressed form).
    pub fn record(&self, i: usize) -> Option<(&SourceMeta, u64, &[u8])> {
        let mut first = 0;
        let source = self.sources.iter().find(|s| {
            first += s.offsets.len();
            i < first
        })?;
        let offset = source.offsets[i - (first - source.offsets.len())];
        let line = self.records.split(|&b| b == b'\n').nth(i)?;
        Some((source, offset, line))
    }

    /// Records `[from, to)` in body order as a batch of their own, for sending a batch in
    /// parts: each source keeps its records in the range with their offsets; its `start` is the
    /// envelope offset of its first one and its `end` that of the record after its last (the
    /// source's own `end` when the range holds its last record), so that consecutive parts
    /// chain exactly as the whole batch did. Needs `records`.
    pub fn slice(&self, from: usize, to: usize) -> Batch {
        let mut sources = Vec::new();
        let mut first = 0;
        for s in &self.sources {
            let (lo, hi) = (first, first + s.offsets.len());
            first = hi;
            let (a, b) = (from.max(lo), to.min(hi));
            if a >= b {
                continue;
            }
            let (a, b) = (a - lo, b - lo);
            let end = s.offsets.get(b).copied().unwrap_or(s.end);
            sources.push(SourceMeta {
                id: s.id.clone(),
                start: s.offsets[a],
                end,
                offsets: s.offsets[a..b].to_vec(),
                resume: if b == s.offsets.len() { s.resume } else { end },
                path: s.path.clone(),
            });
        }
        let mut records = Vec::new();
        for line in self
            .records
            .split(|&b| b == b'\n')
            .skip(from)
            .take(to.saturating_sub(from))
        {
            records.extend_from_slice(line);
            records.push(b'\n');
        }
        Batch {
            stream: self.stream.clone(),
            sources,
            records,
        }
    }

    /// Removes the records of `source`; returns whether it was there.
    pub fn strip_source(&mut self, source: &str) -> bool {
        self.retain_records(|id, _| id != source)
    }

    /// Removes the records of `source` whose envelope offset is below `mark`, fixing the
    /// source's `start` (the indexer has them already).
    pub fn strip_below(&mut self, source: &str, mark: u64) -> bool {
        let changed = self.retain_records(|id, offset| id != source || offset >= mark);
        if let Some(s) = self.sources.iter_mut().find(|s| s.id == source) {
            if let Some(&first) = s.offsets.first() {
                s.start = first;
            }
        }
        changed
    }

    /// Keeps the records for which `keep(source, envelope_offset)` holds; sources left without
    /// records are removed. Returns whether anything was removed.
    fn retain_records(&mut self, keep: impl Fn(&str, u64) -> bool) -> bool {
        let mut lines = self.records.split(|&b| b == b'\n');
        let mut records = Vec::with_capacity(self.records.len());
        let mut sources = Vec::with_capacity(self.sources.len());
        let mut changed = false;
        for mut source in std::mem::take(&mut self.sources) {
            let mut offsets = Vec::with_capacity(source.offsets.len());
            for &offset in &source.offsets {
                let line = lines.next().unwrap_or_default();
                if keep(&source.id, offset) {
                    offsets.push(offset);
                    records.extend_from_slice(line);
                    records.push(b'\n');
                } else {
                    changed = true;
                }
            }
            if !offsets.is_empty() {
                source.offsets = offsets;
                sources.push(source);
            }
        }
        self.sources = sources;
        self.records = records;
        changed
    }
}

/// A zstd compression context kept for the batches compressed one after another (a context
/// made for each 1 MiB batch sets up its tables each time). Its frames are the bytes a fresh
/// context gives.
#[derive(Default)]
pub struct Zstd(Option<zstd::bulk::Compressor<'static>>);

impl Zstd {
    /// `data` compressed at the batches' level.
    pub fn compress(&mut self, data: &[u8]) -> Vec<u8> {
        if self.0.is_none() {
            self.0 = zstd::bulk::Compressor::new(ZSTD_LEVEL).ok();
        }
        match self.0.as_mut().map(|c| c.compress(data)) {
            Some(Ok(frame)) => frame,
            _ => trawl_model::codec::zstd_compress(data, ZSTD_LEVEL),
        }
    }
}

impl std::fmt::Debug for Zstd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Zstd")
    }
}

#[derive(Debug)]
struct Chunk {
    meta: SourceMeta,
    body: Vec<u8>,
}

/// Accumulates records of one stream until the batch is full or old enough.
#[derive(Debug)]
pub struct BatchBuilder {
    stream: &'static str,
    chunks: Vec<Chunk>,
    index: HashMap<String, usize>,
    bytes: usize,
    opened: Option<Instant>,
}

impl BatchBuilder {
    /// An empty builder for `stream`.
    pub fn new(stream: &'static str) -> BatchBuilder {
        BatchBuilder {
            stream,
            chunks: Vec::new(),
            index: HashMap::new(),
            bytes: 0,
            opened: None,
        }
    }

    /// Adds one serialized record of `source` with envelope range `[offset, end)`.
    pub fn push(&mut self, source: &str, path: &str, offset: u64, end: u64, record: &[u8]) {
        // Records come in runs of one source: the last chunk is compared before hashing.
        let last = self.chunks.len().checked_sub(1);
        let i = match last.filter(|&i| self.chunks[i].meta.id == source) {
            Some(i) => i,
            None => match self.index.get(source) {
                Some(&i) => i,
                None => {
                    self.chunks.push(Chunk {
                        meta: SourceMeta {
                            id: source.to_string(),
                            start: offset,
                            end,
                            offsets: Vec::new(),
                            resume: 0,
                            path: path.to_string(),
                        },
                        body: Vec::new(),
                    });
                    self.index.insert(source.to_string(), self.chunks.len() - 1);
                    self.chunks.len() - 1
                }
            },
        };
        let chunk = &mut self.chunks[i];
        chunk.meta.offsets.push(offset);
        chunk.meta.end = end;
        chunk.body.extend_from_slice(record);
        chunk.body.push(b'\n');
        self.bytes += record.len() + 1;
        self.opened.get_or_insert_with(Instant::now);
    }

    /// Bytes of NDJSON held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// When the first record of the open batch was added.
    pub fn opened(&self) -> Option<Instant> {
        self.opened
    }

    /// Whether no record is held.
    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    /// The source ids in the open batch.
    pub fn sources(&self) -> impl Iterator<Item = &str> {
        self.chunks.iter().map(|c| c.meta.id.as_str())
    }

    /// Drops the records of `source` (it is being re-read from an earlier offset).
    pub fn strip_source(&mut self, source: &str) {
        if let Some(i) = self.index.remove(source) {
            let chunk = self.chunks.remove(i);
            self.bytes -= chunk.body.len();
            self.index = self
                .chunks
                .iter()
                .enumerate()
                .map(|(i, c)| (c.meta.id.clone(), i))
                .collect();
            if self.chunks.is_empty() {
                self.opened = None;
            }
        }
    }

    /// Takes the open batch, with each source's resume offset given by `resume` (a source it
    /// says nothing of, finished, resumes at its end); `None` when empty.
    pub fn seal(&mut self, resume: &dyn Fn(&str) -> Option<u64>) -> Option<Batch> {
        if self.chunks.is_empty() {
            return None;
        }
        let mut records = Vec::with_capacity(self.bytes);
        let mut sources = Vec::with_capacity(self.chunks.len());
        for mut chunk in self.chunks.drain(..) {
            chunk.meta.resume = resume(&chunk.meta.id).unwrap_or(chunk.meta.end);
            records.extend_from_slice(&chunk.body);
            sources.push(chunk.meta);
        }
        self.index.clear();
        self.bytes = 0;
        self.opened = None;
        Some(Batch {
            stream: self.stream.to_string(),
            sources,
            records,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A kept context gives the frames a fresh one gives, batch after batch.
    #[test]
    fn a_kept_zstd_context_compresses_as_a_fresh_one() {
        let mut zstd = Zstd::default();
        for n in [0usize, 1, 100, 5_000, 300_000, 10] {
            let records: Vec<u8> = (0..n)
                .flat_map(|i| format!("{{\"n\":{i},\"m\":\"line {}\"}}\n", i % 7).into_bytes())
                .collect();
            let batch = Batch {
                stream: "logs".into(),
                sources: Vec::new(),
                records,
            };
            assert_eq!(
                batch.compress_records_with(&mut zstd),
                batch.compress_records(),
                "{n}"
            );
        }
    }
    use trawl_model::codec::{decode_body, ndjson_lines, Encoding};

    fn sample() -> Batch {
        let mut b = BatchBuilder::new("logs");
        b.push("a", "/a", 0, 10, br#"{"message":"a1"}"#);
        b.push("b", "/b", 5, 9, br#"{"message":"b1"}"#);
        b.push("a", "/a", 10, 25, br#"{"message":"a2"}"#);
        b.seal(&|id| if id == "a" { Some(25) } else { None })
            .unwrap()
    }

    #[test]
    fn groups_records_by_source() {
        let batch = sample();
        assert_eq!(batch.stream, "logs");
        assert_eq!(batch.sources.len(), 2);
        assert_eq!(batch.sources[0].id, "a");
        assert_eq!((batch.sources[0].start, batch.sources[0].end), (0, 25));
        assert_eq!(batch.sources[0].offsets, vec![0, 10]);
        assert_eq!(batch.sources[0].resume, 25);
        assert_eq!(batch.sources[1].offsets, vec![5]);
        assert_eq!(
            batch.records,
            b"{\"message\":\"a1\"}\n{\"message\":\"a2\"}\n{\"message\":\"b1\"}\n"
        );
        assert_eq!(batch.record_count(), 3);
    }

    #[test]
    fn wire_body_decodes_to_envelope_then_records() {
        let batch = sample();
        let body = batch.wire_body(&batch.compress_records(), &|id| id == "b");
        let plain = decode_body(&body, Encoding::Zstd, 1 << 20).unwrap();
        let lines: Vec<_> = ndjson_lines(&plain).map(|(_, l)| l.to_vec()).collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(
            String::from_utf8(lines[0].clone()).unwrap(),
            r#"{"sources":[{"id":"a","start":0,"end":25,"offsets":[0,10]},{"id":"b","start":5,"end":9,"offsets":[5],"gap_ok":true}]}"#
        );
        assert_eq!(lines[3], br#"{"message":"b1"}"#);
    }

    #[test]
    fn stripping_sources_and_prefixes() {
        let mut batch = sample();
        assert!(batch.strip_below("a", 10));
        assert_eq!(batch.sources[0].offsets, vec![10]);
        assert_eq!(batch.sources[0].start, 10);
        assert!(batch.strip_source("b"));
        assert_eq!(batch.sources.len(), 1);
        assert_eq!(batch.records, b"{\"message\":\"a2\"}\n");
        assert!(!batch.strip_source("b"));
        assert!(batch.strip_source("a"));
        assert_eq!(batch.record_count(), 0);
    }

    #[test]
    fn slices_chain_like_the_whole_batch() {
        let batch = sample();
        // Body order: a1 (a@0), a2 (a@10), b1 (b@5).
        let (src, offset, line) = batch.record(1).unwrap();
        assert_eq!(
            (src.id.as_str(), offset, line),
            ("a", 10, &br#"{"message":"a2"}"#[..])
        );
        assert_eq!(batch.record(2).unwrap().1, 5);
        assert!(batch.record(3).is_none());

        let first = batch.slice(0, 1);
        assert_eq!(first.sources.len(), 1);
        let a = &first.sources[0];
        assert_eq!(
            (a.start, a.end, a.offsets.clone(), a.resume),
            (0, 10, vec![0], 10)
        );
        assert_eq!(first.records, b"{\"message\":\"a1\"}\n");

        let rest = batch.slice(1, 3);
        assert_eq!(rest.sources.len(), 2);
        let a = &rest.sources[0];
        assert_eq!(
            (a.start, a.end, a.offsets.clone(), a.resume),
            (10, 25, vec![10], 25)
        );
        let b = &rest.sources[1];
        assert_eq!((b.start, b.end, b.offsets.clone()), (5, 9, vec![5]));
        assert_eq!(
            rest.records,
            b"{\"message\":\"a2\"}\n{\"message\":\"b1\"}\n"
        );
        assert_eq!(
            first.record_count() + rest.record_count(),
            batch.record_count()
        );
        assert_eq!(batch.slice(0, 3), batch);
    }

    #[test]
    fn builder_strip_and_reuse() {
        let mut b = BatchBuilder::new("audit");
        assert!(b.seal(&|_| Some(0)).is_none());
        b.push("a", "", 0, 1, b"{}");
        b.push("b", "", 0, 1, b"{}");
        b.strip_source("a");
        assert_eq!(b.sources().collect::<Vec<_>>(), vec!["b"]);
        assert_eq!(b.bytes(), 3);
        b.push("a", "", 1, 2, b"{}");
        let batch = b.seal(&|_| Some(0)).unwrap();
        assert_eq!(batch.sources[1].id, "a");
        assert!(b.is_empty() && b.opened().is_none());
    }
}
