//! The disk buffer: sealed batches waiting for acknowledgement, one fsync'd file each.
//!
//! Every sealed batch goes through the buffer, so that what was read survives a restart of the
//! collector while the indexer is away; a batch file is deleted once the indexer acknowledges
//! it. The buffer is bounded by `buffer_max_bytes`: when full, reading pauses (or, with the
//! `drop_newest` policy, new batches are dropped and counted).
//!
//! File `<seq:020>.batch`: the magic line `TRAWLBATCH1`, a JSON header line
//! `{"stream","crc","sources":[...]}` and the zstd-compressed records; `crc` is the CRC-32 of the
//! compressed records, so a torn or damaged file is detected and skipped, never sent.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::batch::{Batch, SourceMeta, Zstd};
use crate::error::{Error, Result};
use crate::fsutil::{ensure_dir, sync_dir, write_atomic};

const MAGIC: &[u8] = b"TRAWLBATCH1\n";

#[derive(Serialize, Deserialize)]
struct Header {
    stream: String,
    crc: u32,
    sources: Vec<SourceMeta>,
}

/// A batch read back from the buffer.
#[derive(Debug, Clone)]
pub struct Stored {
    /// Its sequence number: batches are sent in this order.
    pub seq: u64,
    /// The batch, with `records` empty (they stay compressed in `compressed`).
    pub batch: Batch,
    /// The zstd frame of the records.
    pub compressed: Vec<u8>,
}

/// The on-disk queue of batches.
#[derive(Debug)]
pub struct DiskBuffer {
    dir: PathBuf,
    max_bytes: u64,
    bytes: u64,
    next_seq: u64,
    sizes: std::collections::BTreeMap<u64, u64>,
    zstd: Zstd,
}

impl DiskBuffer {
    /// Opens (creating) the buffer in `dir`, bounded by `max_bytes`. Leftover temporary files
    /// are removed.
    pub fn open(dir: &Path, max_bytes: u64) -> Result<DiskBuffer> {
        ensure_dir(dir)?;
        let mut sizes = std::collections::BTreeMap::new();
        let entries = fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.ends_with(".tmp") {
                let _ = fs::remove_file(&path);
                continue;
            }
            let Some(seq) = name
                .strip_suffix(".batch")
                .and_then(|s| s.parse::<u64>().ok())
            else {
                continue;
            };
            let len = entry.metadata().map(|m| m.len()).unwrap_or(0);
            sizes.insert(seq, len);
        }
        let bytes = sizes.values().sum();
        let next_seq = sizes.keys().next_back().map_or(1, |s| s + 1);
        Ok(DiskBuffer {
            dir: dir.to_path_buf(),
            max_bytes,
            bytes,
            next_seq,
            sizes,
            zstd: Zstd::default(),
        })
    }

    fn path(&self, seq: u64) -> PathBuf {
        self.dir.join(format!("{seq:020}.batch"))
    }

    /// The sequence numbers held, oldest first.
    pub fn seqs(&self) -> Vec<u64> {
        self.sizes.keys().copied().collect()
    }

    /// The sequence number the next [`DiskBuffer::push`] will get.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Bytes of batch files held.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Whether another batch may be added.
    pub fn has_room(&self) -> bool {
        self.bytes < self.max_bytes
    }

    /// Writes `batch` durably (fsync of the file and of the directory) and returns its sequence
    /// number.
    pub fn push(&mut self, batch: &Batch) -> Result<u64> {
        let seq = self.next_seq;
        let compressed = batch.compress_records_with(&mut self.zstd);
        let len = self.write(seq, batch, &compressed)?;
        self.next_seq += 1;
        self.sizes.insert(seq, len);
        self.bytes += len;
        Ok(seq)
    }

    fn write(&self, seq: u64, batch: &Batch, compressed: &[u8]) -> Result<u64> {
        let header = Header {
            stream: batch.stream.clone(),
            crc: crc32fast::hash(compressed),
            sources: batch.sources.clone(),
        };
        let mut bytes = MAGIC.to_vec();
        bytes.extend(serde_json::to_vec(&header).unwrap_or_default());
        bytes.push(b'\n');
        bytes.extend_from_slice(compressed);
        write_atomic(&self.path(seq), &bytes)?;
        Ok(bytes.len() as u64)
    }

    /// Reads batch `seq`. A file that is damaged is an [`Error::Corrupt`] (the caller drops it).
    pub fn read(&self, seq: u64) -> Result<Stored> {
        let path = self.path(seq);
        let bytes = fs::read(&path).map_err(|e| Error::io(&path, e))?;
        let corrupt = |message: &str| Error::Corrupt {
            path: path.clone(),
            message: message.to_string(),
        };
        let rest = bytes
            .strip_prefix(MAGIC)
            .ok_or_else(|| corrupt("not a batch file"))?;
        let nl = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or_else(|| corrupt("no header"))?;
        let header: Header =
            serde_json::from_slice(&rest[..nl]).map_err(|e| corrupt(&e.to_string()))?;
        let compressed = rest[nl + 1..].to_vec();
        if crc32fast::hash(&compressed) != header.crc {
            return Err(corrupt("checksum mismatch"));
        }
        Ok(Stored {
            seq,
            batch: Batch {
                stream: header.stream,
                sources: header.sources,
                records: Vec::new(),
            },
            compressed,
        })
    }

    /// Reads only the sources of batch `seq` (for start-up, without loading the records).
    pub fn read_sources(&self, seq: u64) -> Result<(String, Vec<SourceMeta>)> {
        use std::io::BufRead;
        let path = self.path(seq);
        let file = fs::File::open(&path).map_err(|e| Error::io(&path, e))?;
        let mut reader = std::io::BufReader::new(file);
        let mut magic = Vec::new();
        reader
            .read_until(b'\n', &mut magic)
            .map_err(|e| Error::io(&path, e))?;
        let mut line = Vec::new();
        reader
            .read_until(b'\n', &mut line)
            .map_err(|e| Error::io(&path, e))?;
        if magic != MAGIC {
            return Err(Error::Corrupt {
                path,
                message: "not a batch file".to_string(),
            });
        }
        let header: Header = serde_json::from_slice(&line).map_err(|e| Error::Corrupt {
            path: path.clone(),
            message: e.to_string(),
        })?;
        Ok((header.stream, header.sources))
    }

    /// Replaces batch `seq` by `batch` (records uncompressed), or removes it if it has no
    /// records left. Returns the new stored form.
    pub fn rewrite(&mut self, seq: u64, batch: &Batch) -> Result<Option<Stored>> {
        if batch.record_count() == 0 {
            self.remove(seq)?;
            return Ok(None);
        }
        let compressed = batch.compress_records_with(&mut self.zstd);
        let len = self.write(seq, batch, &compressed)?;
        if let Some(old) = self.sizes.insert(seq, len) {
            self.bytes -= old;
        }
        self.bytes += len;
        Ok(Some(Stored {
            seq,
            batch: Batch {
                stream: batch.stream.clone(),
                sources: batch.sources.clone(),
                records: Vec::new(),
            },
            compressed,
        }))
    }

    /// Deletes batch `seq` (acknowledged, or dropped).
    pub fn remove(&mut self, seq: u64) -> Result<()> {
        let path = self.path(seq);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(&path, e)),
        }
        if let Some(len) = self.sizes.remove(&seq) {
            self.bytes -= len;
        }
        sync_dir(&self.dir)
    }
}

/// Decompresses stored records.
pub fn decompress(compressed: &[u8]) -> std::io::Result<Vec<u8>> {
    zstd::stream::decode_all(compressed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::BatchBuilder;

    fn batch(n: u64) -> Batch {
        let mut b = BatchBuilder::new("logs");
        for i in 0..n {
            b.push("s", "/f", i * 10, i * 10 + 10, br#"{"message":"x"}"#);
        }
        b.seal(&|_| Some(n * 10)).unwrap()
    }

    #[test]
    fn push_read_remove_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut buf = DiskBuffer::open(dir.path(), 1 << 20).unwrap();
        let a = buf.push(&batch(2)).unwrap();
        let b = buf.push(&batch(3)).unwrap();
        assert_eq!((a, b), (1, 2));
        let stored = buf.read(b).unwrap();
        let (stream, sources) = buf.read_sources(b).unwrap();
        assert_eq!(stream, "logs");
        assert_eq!(sources, stored.batch.sources);
        assert_eq!(stored.batch.sources[0].offsets, vec![0, 10, 20]);
        assert_eq!(decompress(&stored.compressed).unwrap(), batch(3).records);
        let total = buf.bytes();
        buf.remove(a).unwrap();
        assert!(buf.bytes() < total);
        let again = DiskBuffer::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(again.seqs(), vec![2]);
        assert_eq!(again.bytes(), buf.bytes());
        assert_eq!(again.next_seq(), 3);
    }

    #[test]
    fn damaged_file_is_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let mut buf = DiskBuffer::open(dir.path(), 1 << 20).unwrap();
        let seq = buf.push(&batch(2)).unwrap();
        let path = buf.path(seq);
        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        fs::write(&path, bytes).unwrap();
        assert!(matches!(buf.read(seq), Err(Error::Corrupt { .. })));
    }

    #[test]
    fn room_and_rewrite() {
        let dir = tempfile::tempdir().unwrap();
        let mut buf = DiskBuffer::open(dir.path(), 10).unwrap();
        assert!(buf.has_room());
        let seq = buf.push(&batch(1)).unwrap();
        assert!(!buf.has_room());
        let mut b = batch(1);
        b.strip_source("s");
        assert!(buf.rewrite(seq, &b).unwrap().is_none());
        assert_eq!(buf.bytes(), 0);
        assert!(buf.seqs().is_empty());
    }
}
