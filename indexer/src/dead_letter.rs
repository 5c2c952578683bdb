//! The dead-letter store: every line an ingest refused, kept with its error, its line number
//! and the time, so that nothing refused is dropped without a trace. Each stream has two NDJSON
//! files under `<data_dir>/indexer/dead-letters/` (`<stream>.ndjson` and the older
//! `<stream>.1.ndjson`), each at most half of `indexer.dead_letter_max_bytes`: when the current
//! one is full it replaces the older one, so the store keeps the newest letters within its
//! bound. Listed by `GET /api/v1/{stream}/dead-letters` and `trawl dead-letters <stream>`.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use trawl_model::Timestamp;

/// The longest raw line kept whole; a longer one is cut there (and marked `truncated`), so that
/// one huge refused line cannot push every other letter out of the store.
const MAX_RAW_BYTES: usize = 64 * 1024;

/// One refused line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// When it was refused (RFC 3339).
    pub time: String,
    /// Its 1-based line number in the request body.
    pub line: usize,
    /// Why it was refused.
    pub error: String,
    /// The line as received (invalid UTF-8 replaced by U+FFFD).
    pub raw: String,
    /// Whether `raw` was cut at 64 KiB.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

impl DeadLetter {
    /// A letter for a line refused now.
    pub fn new(line: usize, error: String, raw: &[u8]) -> DeadLetter {
        let truncated = raw.len() > MAX_RAW_BYTES;
        let raw = String::from_utf8_lossy(&raw[..raw.len().min(MAX_RAW_BYTES)]).into_owned();
        DeadLetter {
            time: Timestamp::now().to_rfc3339(),
            line,
            error,
            raw,
            truncated,
        }
    }
}

/// The dead-letter files of every stream.
pub struct DeadLetters {
    dir: PathBuf,
    /// Bound of one file: half the store's.
    file_bytes: u64,
    /// Serialises appends and rotations (ingest requests run in parallel).
    lock: Mutex<()>,
}

impl DeadLetters {
    /// The store under `dir`, bounded to `max_bytes` per stream (created on the first letter).
    pub fn new(dir: &Path, max_bytes: u64) -> DeadLetters {
        DeadLetters {
            dir: dir.to_path_buf(),
            file_bytes: (max_bytes / 2).max(1),
            lock: Mutex::new(()),
        }
    }

    fn paths(&self, stream: &str) -> (PathBuf, PathBuf) {
        (
            self.dir.join(format!("{stream}.ndjson")),
            self.dir.join(format!("{stream}.1.ndjson")),
        )
    }

    /// Appends letters to a stream's store, moving the current file aside first when they would
    /// take it past its bound.
    pub fn record(&self, stream: &str, letters: &[DeadLetter]) -> io::Result<()> {
        if letters.is_empty() {
            return Ok(());
        }
        let mut encoded = Vec::new();
        for letter in letters {
            serde_json::to_writer(&mut encoded, letter)?;
            encoded.push(b'\n');
        }
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        fs::create_dir_all(&self.dir)?;
        let (current, older) = self.paths(stream);
        let size = fs::metadata(&current).map_or(0, |m| m.len());
        if size > 0 && size + encoded.len() as u64 > self.file_bytes {
            fs::rename(&current, &older)?;
        }
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&current)?;
        file.write_all(&encoded)
    }

    /// The newest `limit` letters of a stream, newest first, and how many the store holds.
    pub fn list(&self, stream: &str, limit: usize) -> io::Result<(Vec<DeadLetter>, usize)> {
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let (current, older) = self.paths(stream);
        let mut letters = Vec::new();
        for path in [older, current] {
            let text = match fs::read(&path) {
                Ok(bytes) => bytes,
                Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
                Err(err) => return Err(err),
            };
            // A line torn by a crash mid-append is skipped, not an error.
            letters.extend(
                text.split(|&b| b == b'\n')
                    .filter_map(|line| serde_json::from_slice::<DeadLetter>(line).ok()),
            );
        }
        let total = letters.len();
        letters.reverse();
        letters.truncate(limit);
        Ok((letters, total))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn letter(i: usize) -> DeadLetter {
        DeadLetter {
            time: "2026-11-25T10:00:00Z".into(),
            line: i,
            error: "invalid JSON".into(),
            raw: format!("{{oops {i}"),
            truncated: false,
        }
    }

    #[test]
    fn letters_are_listed_newest_first_within_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        let one = serde_json::to_vec(&letter(10)).unwrap().len() as u64 + 1;
        // Room for four letters per file, eight in the store.
        let store = DeadLetters::new(dir.path(), one * 8);
        for i in 10..30 {
            store.record("logs", &[letter(i)]).unwrap();
        }
        let (newest, total) = store.list("logs", 3).unwrap();
        assert_eq!(
            newest.iter().map(|l| l.line).collect::<Vec<_>>(),
            [29, 28, 27]
        );
        // The current file holds 26..29 (it was moved aside when 26 came); the older 22..25.
        assert_eq!(total, 8);
        let (all, _) = store.list("logs", 100).unwrap();
        assert_eq!(
            all.iter().map(|l| l.line).collect::<Vec<_>>(),
            (22..30).rev().collect::<Vec<_>>()
        );
        assert_eq!(store.list("audit", 10).unwrap(), (Vec::new(), 0));
    }

    #[test]
    fn long_and_binary_lines_are_kept_readable() {
        let mut raw = vec![b'x'; MAX_RAW_BYTES + 10];
        raw[0] = 0xff;
        let l = DeadLetter::new(3, "too long".into(), &raw);
        assert!(l.truncated);
        assert!(l.raw.starts_with('\u{fffd}'));
        assert_eq!(l.raw.len(), MAX_RAW_BYTES - 1 + '\u{fffd}'.len_utf8());
    }
}
