//! The dead-letter file: records the indexer will never accept, kept on the node as JSON lines
//! so that the checkpoint can move past them without losing them.
//!
//! `<collector data dir>/dead-letter/dead-letter.ndjson`, one object a line:
//! `{"time","stream","source","file","offset","reason","raw"}` (`offset` is the record's
//! envelope offset in its file, `raw` the record as it would have been sent). The files are
//! bounded by `collector.dead_letter_max_bytes`: when the current file would pass half of it, it
//! becomes `dead-letter.1.ndjson` (replacing the older one) and a new one starts. Every append
//! is fsync'd before the shipper advances a checkpoint past what it holds.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::fsutil::{ensure_dir, sync_dir};

const CURRENT: &str = "dead-letter.ndjson";
const PREVIOUS: &str = "dead-letter.1.ndjson";

/// One record given up on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeadRecord {
    /// RFC 3339 UTC time it was given up on.
    pub time: String,
    pub stream: String,
    /// The source id (see [`crate::identity`]).
    pub source: String,
    /// The file it was read from.
    pub file: String,
    /// Its envelope offset in the file.
    pub offset: u64,
    /// Why the indexer will never take it, with the indexer's own words.
    pub reason: String,
    /// The record as the collector built it (one JSON object).
    pub raw: String,
}

/// The append-only, size-bounded pair of dead-letter files.
#[derive(Debug, Clone)]
pub struct DeadLetters {
    dir: PathBuf,
    max_bytes: u64,
}

impl DeadLetters {
    /// The dead-letter files in `dir` (created when first written), bounded by `max_bytes`.
    pub fn new(dir: &Path, max_bytes: u64) -> DeadLetters {
        DeadLetters {
            dir: dir.to_path_buf(),
            max_bytes: max_bytes.max(2),
        }
    }

    /// The file being written.
    pub fn current(&self) -> PathBuf {
        self.dir.join(CURRENT)
    }

    /// Appends `records` and syncs them to disk. A single line longer than half the bound has
    /// its `raw` cut (at a character boundary) so that it fits, and says so in `reason`.
    pub fn append(&self, records: &[DeadRecord]) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        ensure_dir(&self.dir)?;
        let half = self.max_bytes / 2;
        let path = self.current();
        let mut size = fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let mut file = open_append(&path)?;
        for record in records {
            let line = line_within(record, half);
            if size > 0 && size + line.len() as u64 > half {
                file.sync_data().map_err(|e| Error::io(&path, e))?;
                fs::rename(&path, self.dir.join(PREVIOUS)).map_err(|e| Error::io(&path, e))?;
                sync_dir(&self.dir)?;
                file = open_append(&path)?;
                size = 0;
            }
            file.write_all(&line).map_err(|e| Error::io(&path, e))?;
            size += line.len() as u64;
        }
        file.sync_data().map_err(|e| Error::io(&path, e))?;
        sync_dir(&self.dir)
    }
}

fn open_append(path: &Path) -> Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| Error::io(path, e))
}

/// The JSON line of `record`, its `raw` cut so that the line stays within `max` bytes.
fn line_within(record: &DeadRecord, max: u64) -> Vec<u8> {
    let encode = |r: &DeadRecord| {
        let mut line = serde_json::to_vec(r).unwrap_or_default();
        line.push(b'\n');
        line
    };
    let line = encode(record);
    if line.len() as u64 <= max {
        return line;
    }
    let mut cut = record.clone();
    // JSON escaping can grow text up to six times; cut by the overshoot and check again.
    let over = usize::try_from(line.len() as u64 - max).unwrap_or(usize::MAX);
    let mut keep = cut.raw.len().saturating_sub(over.saturating_add(64));
    loop {
        while !cut.raw.is_char_boundary(keep) {
            keep -= 1;
        }
        cut.raw.truncate(keep);
        cut.reason = format!(
            "{}; raw text cut to {keep} of {} bytes to fit collector.dead_letter_max_bytes",
            record.reason,
            record.raw.len()
        );
        let line = encode(&cut);
        if line.len() as u64 <= max || keep == 0 {
            return line;
        }
        keep /= 2;
    }
}

/// Now as RFC 3339 UTC with milliseconds.
pub fn now_rfc3339() -> String {
    trawl_model::Timestamp::now().to_rfc3339()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(n: usize, raw_len: usize) -> DeadRecord {
        DeadRecord {
            time: "2026-12-03T07:00:00Z".into(),
            stream: "logs".into(),
            source: "node/uid/app/fp".into(),
            file: "/var/log/pods/x/app/0.log".into(),
            offset: n as u64 * 100,
            reason: "payload_too_large: body exceeds 10 bytes".into(),
            raw: format!("{{\"message\":\"{}\"}}", "é".repeat(raw_len / 2)),
        }
    }

    fn lines(path: &Path) -> Vec<serde_json::Value> {
        fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn appends_json_lines_and_rotates_within_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        let dl = DeadLetters::new(dir.path(), 4096);
        for n in 0..40 {
            dl.append(&[record(n, 100)]).unwrap();
            let total: u64 = [CURRENT, PREVIOUS]
                .iter()
                .map(|f| {
                    fs::metadata(dir.path().join(f))
                        .map(|m| m.len())
                        .unwrap_or(0)
                })
                .sum();
            assert!(total <= 4096, "{total}");
        }
        let current = lines(&dir.path().join(CURRENT));
        let previous = lines(&dir.path().join(PREVIOUS));
        assert!(!current.is_empty() && !previous.is_empty());
        // The newest records are kept, in order, and the oldest were dropped whole.
        let offsets: Vec<u64> = previous
            .iter()
            .chain(&current)
            .map(|r| r["offset"].as_u64().unwrap())
            .collect();
        assert_eq!(*offsets.last().unwrap(), 3900);
        assert!(offsets.windows(2).all(|w| w[1] == w[0] + 100));
        assert_eq!(
            current[0]["reason"],
            "payload_too_large: body exceeds 10 bytes"
        );
        assert_eq!(current[0]["stream"], "logs");
    }

    #[test]
    fn a_record_larger_than_the_bound_is_cut_and_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let dl = DeadLetters::new(dir.path(), 4096);
        dl.append(&[record(1, 10_000)]).unwrap();
        let len = fs::metadata(dl.current()).unwrap().len();
        assert!(len <= 2048, "{len}");
        let got = lines(&dl.current());
        assert_eq!(got.len(), 1);
        let reason = got[0]["reason"].as_str().unwrap();
        assert!(reason.contains("raw text cut to"), "{reason}");
        assert!(got[0]["raw"]
            .as_str()
            .unwrap()
            .starts_with("{\"message\":\"éé"));
    }
}
