//! The metastore: which splits each stream has, which were replaced or removed and may still
//! have files on disk, how far each stream's sealed splits cover the write-ahead log, and a
//! snapshot of the source marks. One JSON file, replaced by atomic rename.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::json_file;
use crate::split::SplitMeta;
use crate::Result;

/// Version of the metastore format. 2 added `retired`.
pub const METASTORE_VERSION: u32 = 2;

/// Migrations of older metastore files, version 1 first (see [`json_file::load`]).
const MIGRATIONS: &[json_file::Migration] = &[v1_to_v2];

/// Version 1 had no record of retired splits: nothing was retired.
fn v1_to_v2(mut doc: serde_json::Value) -> std::result::Result<serde_json::Value, String> {
    doc.as_object_mut()
        .ok_or("the metastore is not a JSON object")?
        .insert("retired".into(), serde_json::Value::Array(Vec::new()));
    Ok(doc)
}

/// A split a merge replaced or retention removed, whose directory may still exist (a search or
/// export pins it, or a crash came before its removal). Recorded in the same write that takes
/// the split out of `splits`, so that a restart deletes its files instead of adopting them as
/// an orphan; the entry goes once the directory is gone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetiredSplit {
    pub stream: String,
    pub id: String,
}

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
    /// Splits taken out of `splits` whose directories may still exist.
    pub retired: Vec<RetiredSplit>,
    /// Per stream: every WAL entry of the stream before this position is in a sealed split.
    pub sealed_lsn: BTreeMap<String, u64>,
    /// Source marks as of `marks_lsn`: replaying the WAL from there restores the current marks.
    pub marks: BTreeMap<String, MarkState>,
    pub marks_lsn: u64,
    /// Sources taken over by another indexer whose records this one removed (see
    /// `Indexer::purge_sources`): at WAL replay, their records in entries before the position
    /// are dropped. Forgotten once the WAL no longer holds such entries.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub purged: BTreeMap<String, u64>,
}

impl Default for MetastoreState {
    fn default() -> Self {
        MetastoreState {
            version: METASTORE_VERSION,
            splits: Vec::new(),
            retired: Vec::new(),
            sealed_lsn: BTreeMap::new(),
            marks: BTreeMap::new(),
            marks_lsn: 0,
            purged: BTreeMap::new(),
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
        json_file::load(&self.path, "metastore", METASTORE_VERSION, MIGRATIONS)
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
        state.retired.push(RetiredSplit {
            stream: "logs".into(),
            id: "merged-away".into(),
        });
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

    #[test]
    fn a_version_1_metastore_loads_with_nothing_retired() {
        let dir = tempfile::tempdir().unwrap();
        let v1 = r#"{"version":1,"splits":[{"version":1,"id":"s1","stream":"logs","min_timestamp":1,"max_timestamp":2,"docs":3,"bytes":4,"created_at":5,"merge_level":0}],"sealed_lsn":{"logs":9},"marks":{"a":{"end":7,"updated_at":1}},"marks_lsn":8}"#;
        std::fs::write(dir.path().join("metastore.json"), v1).unwrap();
        let state = Metastore::new(dir.path()).load().unwrap();
        assert_eq!(state.version, METASTORE_VERSION);
        assert_eq!(state.splits.len(), 1);
        assert_eq!(state.splits[0].id, "s1");
        assert!(state.retired.is_empty());
        assert_eq!(state.sealed_lsn["logs"], 9);
        assert_eq!((state.marks["a"].end, state.marks_lsn), (7, 8));
    }
}
