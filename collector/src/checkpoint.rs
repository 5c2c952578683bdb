//! Checkpoints: per source, how far the indexer has acknowledged, persisted crash-safely.
//!
//! A checkpoint holds two offsets (see [`crate::parse`]'s module docs on offsets):
//! `acked`, the end of the last acknowledged record, and `resume`, a line boundary from which
//! re-reading the file with a fresh assembler yields every record ending after `acked` (records
//! ending at or before it are discarded). Both move only when the indexer acknowledges a batch.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::fsutil::write_atomic;

/// Checkpoints of sources not seen for this long are forgotten.
pub const GC_AFTER_SECS: u64 = 7 * 24 * 3600;

/// Where one source stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Position {
    /// Line boundary to re-read from.
    pub resume: u64,
    /// End of the last acknowledged record; re-read records ending at or before it are dropped.
    pub acked: u64,
}

/// One source's checkpoint, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    #[serde(flatten)]
    pub position: Position,
    /// The file the source was last read from (for operators; lookups go by source id).
    #[serde(default)]
    pub path: String,
    /// Unix seconds when the source's file was last seen; drives garbage collection.
    #[serde(default)]
    pub last_seen: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct FileFormat {
    version: u32,
    sources: BTreeMap<String, Checkpoint>,
}

/// The checkpoints of every source, kept in memory and written to one JSON file.
#[derive(Debug)]
pub struct CheckpointStore {
    path: PathBuf,
    sources: BTreeMap<String, Checkpoint>,
    dirty: bool,
}

impl CheckpointStore {
    /// Loads `path`, or starts empty if it does not exist. A file that does not parse is an
    /// [`Error::Corrupt`]: starting over silently would re-read everything (harmless for the
    /// index, which drops what it has, but slow), so the operator decides.
    pub fn load(path: &Path) -> Result<CheckpointStore> {
        let sources = match std::fs::read(path) {
            Ok(bytes) => {
                let file: FileFormat =
                    serde_json::from_slice(&bytes).map_err(|e| Error::Corrupt {
                        path: path.to_path_buf(),
                        message: e.to_string(),
                    })?;
                file.sources
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(Error::io(path, e)),
        };
        Ok(CheckpointStore {
            path: path.to_path_buf(),
            sources,
            dirty: false,
        })
    }

    /// The position of `source`, if it has one.
    pub fn get(&self, source: &str) -> Option<Position> {
        self.sources.get(source).map(|c| c.position)
    }

    /// Records an acknowledgement: `acked` only moves forward (an older acknowledgement arriving
    /// late changes nothing).
    pub fn acknowledge(&mut self, source: &str, position: Position, path: &str, now: u64) {
        let entry = self
            .sources
            .entry(source.to_string())
            .or_insert_with(|| Checkpoint {
                position: Position::default(),
                path: String::new(),
                last_seen: now,
            });
        if position.acked >= entry.position.acked {
            entry.position = position;
            if !path.is_empty() {
                entry.path = path.to_string();
            }
            entry.last_seen = now;
            self.dirty = true;
        }
    }

    /// Moves `source` back (the indexer has less than we thought: a 409 mark below our
    /// checkpoint).
    pub fn rewind(&mut self, source: &str, position: Position) {
        if let Some(entry) = self.sources.get_mut(source) {
            if position.acked < entry.position.acked {
                entry.position = position;
                self.dirty = true;
            }
        }
    }

    /// Notes that `source`'s file still exists (not persisted by itself).
    pub fn touch(&mut self, source: &str, now: u64) {
        if let Some(entry) = self.sources.get_mut(source) {
            entry.last_seen = now;
        }
    }

    /// Forgets sources not seen for [`GC_AFTER_SECS`]; returns how many.
    pub fn gc(&mut self, now: u64) -> usize {
        let before = self.sources.len();
        self.sources
            .retain(|_, c| now.saturating_sub(c.last_seen) < GC_AFTER_SECS);
        let removed = before - self.sources.len();
        if removed > 0 {
            self.dirty = true;
        }
        removed
    }

    /// Marks the checkpoints as changed (a write of a snapshot failed and must be retried).
    pub fn mark_dirty(&mut self) {
        self.dirty = true;
    }

    /// Whether there are changes not yet persisted.
    pub fn is_dirty(&self) -> bool {
        self.dirty
    }

    /// The serialized file content, clearing the dirty flag; `None` when nothing changed.
    /// Split from the write so that the lock is not held during the fsync.
    pub fn snapshot(&mut self) -> Option<(PathBuf, Vec<u8>)> {
        if !self.dirty {
            return None;
        }
        self.dirty = false;
        let file = FileFormat {
            version: 1,
            sources: self.sources.clone(),
        };
        let bytes = serde_json::to_vec_pretty(&file).unwrap_or_default();
        Some((self.path.clone(), bytes))
    }

    /// Persists the checkpoints now if they changed (write temporary, fsync, rename).
    pub fn persist(&mut self) -> Result<()> {
        match self.snapshot() {
            Some((path, bytes)) => write_atomic(&path, &bytes).inspect_err(|_| self.dirty = true),
            None => Ok(()),
        }
    }

    /// Number of sources with a checkpoint.
    pub fn len(&self) -> usize {
        self.sources.len()
    }

    /// Whether no source has a checkpoint.
    pub fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }
}

/// Unix seconds now.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(resume: u64, acked: u64) -> Position {
        Position { resume, acked }
    }

    #[test]
    fn persists_and_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("checkpoints.json");
        let mut store = CheckpointStore::load(&path).unwrap();
        assert!(store.is_empty());
        store.acknowledge("n/u/c/1", pos(90, 100), "/p/0.log", 10);
        store.persist().unwrap();
        assert!(!store.is_dirty());
        let again = CheckpointStore::load(&path).unwrap();
        assert_eq!(again.get("n/u/c/1"), Some(pos(90, 100)));
        assert_eq!(again.get("other"), None);
    }

    #[test]
    fn acknowledgements_only_move_forward() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = CheckpointStore::load(&dir.path().join("c.json")).unwrap();
        store.acknowledge("s", pos(200, 200), "", 1);
        store.acknowledge("s", pos(100, 100), "", 1);
        assert_eq!(store.get("s"), Some(pos(200, 200)));
        store.rewind("s", pos(0, 50));
        assert_eq!(store.get("s"), Some(pos(0, 50)));
    }

    #[test]
    fn gc_forgets_old_sources() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = CheckpointStore::load(&dir.path().join("c.json")).unwrap();
        store.acknowledge("old", pos(1, 1), "", 0);
        store.acknowledge("new", pos(1, 1), "", GC_AFTER_SECS);
        assert_eq!(store.gc(GC_AFTER_SECS + 1), 1);
        assert_eq!(store.get("old"), None);
        assert!(store.get("new").is_some());
    }

    #[test]
    fn corrupt_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.json");
        std::fs::write(&path, b"{not json").unwrap();
        assert!(matches!(
            CheckpointStore::load(&path),
            Err(Error::Corrupt { .. })
        ));
    }
}
