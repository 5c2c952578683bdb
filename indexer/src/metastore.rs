//! The metastore: which splits each stream has, how far each stream's sealed splits cover the
//! write-ahead log, and a snapshot of the source marks. One JSON file, replaced by atomic rename.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::json_file;
use crate::split::SplitMeta;
use crate::Result;

/// Version of the metastore format.
pub const METASTORE_VERSION: u32 = 1;

/// A source's delivery mark: the end of the contiguous prefix the index holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarkState {
    pub end: u64,
    /// Last time the mark moved, nanoseconds; marks idle for long are garbage-collected.
    pub updated_at: i64,
}

/// The metastore's content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetastoreState {
    pub version: u32,
    pub splits: Vec<SplitMeta>,
    /// Per stream: every WAL entry of the stream before this position is in a sealed split.
    pub sealed_lsn: BTreeMap<String, u64>,
    /// Source marks as of `marks_lsn`: replaying the WAL from there restores the current marks.
    pub marks: BTreeMap<String, MarkState>,
    pub marks_lsn: u64,
}

impl Default for MetastoreState {
    fn default() -> Self {
        MetastoreState {
            version: METASTORE_VERSION,
            splits: Vec::new(),
            sealed_lsn: BTreeMap::new(),
            marks: BTreeMap::new(),
            marks_lsn: 0,
        }
    }
}

/// The metastore file.
pub struct Metastore {
    path: PathBuf,
}

impl Metastore {
    pub fn new(dir: &Path) -> Metastore {
        Metastore {
            path: dir.join("metastore.json"),
        }
    }

    /// Loads the state; a missing file is an empty metastore, a corrupt or newer one an error.
    pub fn load(&self) -> Result<MetastoreState> {
        json_file::load(
            &self.path,
            "metastore",
            METASTORE_VERSION,
            |s: &MetastoreState| s.version,
        )
    }

    /// Replaces the state durably (see [`json_file::replace`]).
    pub fn store(&self, state: &MetastoreState) -> Result<()> {
        let bytes = serde_json::to_vec(state).map_err(std::io::Error::other)?;
        json_file::replace(&self.path, &bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_and_load() {
        let dir = tempfile::tempdir().unwrap();
        let store = Metastore::new(dir.path());
        assert_eq!(store.load().unwrap(), MetastoreState::default());
        let mut state = MetastoreState::default();
        state.sealed_lsn.insert("logs".into(), 42);
        state.marks.insert(
            "a".into(),
            MarkState {
                end: 7,
                updated_at: 1,
            },
        );
        store.store(&state).unwrap();
        assert_eq!(store.load().unwrap(), state);
        std::fs::write(dir.path().join("metastore.json"), b"{\"version\":99}").unwrap();
        assert!(store.load().is_err());
    }
}
