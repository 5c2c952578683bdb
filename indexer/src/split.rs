//! Sealed splits: immutable tantivy indexes, each described by a versioned meta file and
//! recorded in the metastore. A split's files are deleted only once the last search holding it
//! lets it go.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};
use tantivy::{Index, IndexReader, ReloadPolicy};

use crate::wal::sync_dir;
use crate::Result;

/// Version of the split format; bumped on any incompatible change.
pub const SPLIT_FORMAT_VERSION: u32 = 1;
/// Name of the meta file inside a split directory.
pub const SPLIT_META_FILE: &str = "trawl-split.json";

/// What the metastore records of a split.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitMeta {
    pub version: u32,
    pub id: String,
    pub stream: String,
    /// Smallest timestamp in the split, nanoseconds (inclusive).
    pub min_timestamp: i64,
    /// Largest timestamp in the split, nanoseconds (inclusive).
    pub max_timestamp: i64,
    pub docs: u64,
    pub bytes: u64,
    /// When the split was sealed or merged, nanoseconds.
    pub created_at: i64,
    /// How many merges produced it (0 for a sealed hot index).
    #[serde(default)]
    pub merge_level: u32,
    /// The splits a merge made it from (empty for a sealed hot index). Readers of the shared
    /// metastore use it to tell a merge's output from its inputs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parents: Vec<String>,
    /// Source marks the split's records bring the index to: per source (a collector's file),
    /// the end of the last delivery batch whose records it holds. A merge carries the largest
    /// of its inputs'. Published with the split, these are where a source's new owner resumes.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub marks: BTreeMap<String, u64>,
}

/// Merges source marks into `into`, keeping the larger end of each source.
pub fn merge_marks<'a>(
    into: &mut BTreeMap<String, u64>,
    from: impl IntoIterator<Item = (&'a String, &'a u64)>,
) {
    for (source, end) in from {
        let entry = into.entry(source.clone()).or_insert(0);
        *entry = (*entry).max(*end);
    }
}

/// Decompressed doc-store blocks each segment of an open split keeps cached. tantivy's default
/// (100) costs up to 100 × the block size per segment for as long as the split is open, which
/// across hundreds of splits is gigabytes; a page of hits touches a few blocks.
pub const DOC_STORE_CACHE_BLOCKS: usize = 8;

/// An open split. Dropping the last handle of a split marked deleted removes its files.
pub struct SplitHandle {
    pub meta: SplitMeta,
    pub index: Index,
    pub reader: IndexReader,
    pub dir: PathBuf,
    deleted: AtomicBool,
}

impl SplitHandle {
    /// Opens a split directory.
    pub fn open(dir: &Path, meta: SplitMeta) -> Result<SplitHandle> {
        let index = Index::open_in_dir(dir)?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .doc_store_cache_num_blocks(DOC_STORE_CACHE_BLOCKS)
            .try_into()?;
        Ok(SplitHandle {
            meta,
            index,
            reader,
            dir: dir.to_path_buf(),
            deleted: AtomicBool::new(false),
        })
    }

    /// Marks the split for deletion: its files go when the last handle is dropped.
    pub fn mark_deleted(&self) {
        self.deleted.store(true, Ordering::SeqCst);
    }
}

impl Drop for SplitHandle {
    fn drop(&mut self) {
        if self.deleted.load(Ordering::SeqCst) {
            if let Err(err) = fs::remove_dir_all(&self.dir) {
                tracing::warn!(split = %self.dir.display(), %err, "could not delete split files");
            }
        }
    }
}

/// Writes a split's meta file durably.
pub fn write_meta(dir: &Path, meta: &SplitMeta) -> Result<()> {
    let path = dir.join(SPLIT_META_FILE);
    let bytes = serde_json::to_vec_pretty(meta).map_err(std::io::Error::other)?;
    let tmp = dir.join(format!("{SPLIT_META_FILE}.tmp"));
    {
        use std::io::Write;
        let mut file = fs::File::create(&tmp)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
    }
    fs::rename(&tmp, &path)?;
    sync_dir(dir)?;
    Ok(())
}

/// Reads a split's meta file, if it has a valid one.
pub fn read_meta(dir: &Path) -> Option<SplitMeta> {
    let bytes = fs::read(dir.join(SPLIT_META_FILE)).ok()?;
    let meta: SplitMeta = serde_json::from_slice(&bytes).ok()?;
    (meta.version == SPLIT_FORMAT_VERSION).then_some(meta)
}

/// Total size of the files in a directory (not recursive: tantivy indexes are flat).
pub fn dir_bytes(dir: &Path) -> u64 {
    fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// The smallest and largest timestamp of an index's live documents, from the fast field.
pub fn time_range(reader: &IndexReader) -> Option<(i64, i64)> {
    let searcher = reader.searcher();
    let mut range: Option<(i64, i64)> = None;
    for segment in searcher.segment_readers() {
        if segment.num_docs() == 0 {
            continue;
        }
        let Ok(column) = segment.fast_fields().date("timestamp") else {
            continue;
        };
        let (min, max) = (
            column.min_value().into_timestamp_nanos(),
            column.max_value().into_timestamp_nanos(),
        );
        range = Some(match range {
            None => (min, max),
            Some((lo, hi)) => (lo.min(min), hi.max(max)),
        });
    }
    range
}
