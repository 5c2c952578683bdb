//! Splits a merge replaced or retention removed: the metastore records them (`retired`) in the
//! same atomic write that takes them out of the published set, their directories are deleted
//! once no search or export pins them (or at the next start, after a crash), and their record is
//! cleared once the directory is gone. A restart therefore never adopts them again as orphans.

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};

use crate::metastore::{MetastoreState, RetiredSplit};
use crate::split::SplitHandle;
use crate::stream::lock;
use crate::wal::sync_dir;

/// The directory of split `id` of `stream` under the indexer's directory `root`.
pub(crate) fn split_dir(root: &Path, stream: &str, id: &str) -> PathBuf {
    root.join("streams").join(stream).join("splits").join(id)
}

/// Whether a recorded name can be used as one path component (a damaged metastore must not make
/// the indexer delete anything outside its splits).
fn plain_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\\'])
}

/// Handles of retired splits that searches may still hold, by split id: their directories are
/// removed when the last handle drops ([`SplitHandle`]'s `Drop`), not by the sweep.
#[derive(Default)]
pub(crate) struct Pins(Mutex<HashMap<String, Weak<SplitHandle>>>);

impl Pins {
    /// Remembers the handles just taken out of a stream's searchable set.
    pub(crate) fn add(&self, handles: &[Arc<SplitHandle>]) {
        let mut pins = lock(&self.0);
        pins.retain(|_, weak| weak.strong_count() > 0);
        for handle in handles {
            pins.insert(handle.meta.id.clone(), Arc::downgrade(handle));
        }
    }

    /// Whether a search or export still holds split `id`.
    pub(crate) fn pinned(&self, id: &str) -> bool {
        lock(&self.0)
            .get(id)
            .is_some_and(|weak| weak.strong_count() > 0)
    }
}

/// Deletes the directories of the retired splits that nothing pins, and makes the deletions
/// durable. Returns the retired entries whose directory is gone (their record can be cleared).
/// A directory that cannot be removed is logged and kept, to be tried again at the next sweep.
pub(crate) fn remove_unpinned(
    root: &Path,
    retired: &[RetiredSplit],
    pinned: impl Fn(&str) -> bool,
) -> Vec<RetiredSplit> {
    let mut gone = Vec::new();
    let mut touched: BTreeSet<PathBuf> = BTreeSet::new();
    for entry in retired {
        if !plain_name(&entry.stream) || !plain_name(&entry.id) {
            tracing::warn!(stream = %entry.stream, split = %entry.id, "ignoring a retired split with an invalid name");
            gone.push(entry.clone());
            continue;
        }
        if pinned(&entry.id) {
            continue;
        }
        let dir = split_dir(root, &entry.stream, &entry.id);
        match fs::remove_dir_all(&dir) {
            Ok(()) => {
                tracing::info!(stream = %entry.stream, split = %entry.id, "removed the files of a retired split");
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => {
                tracing::warn!(split = %dir.display(), %err, "could not delete the files of a retired split");
                continue;
            }
        }
        if let Some(parent) = dir.parent().filter(|p| p.exists()) {
            touched.insert(parent.to_path_buf());
        }
        gone.push(entry.clone());
    }
    // The record is cleared only once the removal is durable: a directory that came back after
    // a power cut would otherwise be adopted as an orphan.
    for parent in &touched {
        if let Err(err) = sync_dir(parent) {
            tracing::warn!(dir = %parent.display(), %err, "could not sync a splits directory");
            gone.retain(|e| split_dir(root, &e.stream, &e.id).parent() != Some(parent.as_path()));
        }
    }
    gone
}

/// Clears the record of the retired splits in `gone`; returns whether the state changed.
pub(crate) fn forget(state: &mut MetastoreState, gone: &[RetiredSplit]) -> bool {
    let before = state.retired.len();
    state.retired.retain(|entry| !gone.contains(entry));
    state.retired.len() != before
}

#[cfg(test)]
mod tests {
    use super::*;

    fn retired(stream: &str, id: &str) -> RetiredSplit {
        RetiredSplit {
            stream: stream.into(),
            id: id.into(),
        }
    }

    #[test]
    fn unpinned_directories_are_removed_and_their_record_cleared() {
        let root = tempfile::tempdir().unwrap();
        for id in ["a", "b"] {
            let dir = split_dir(root.path(), "logs", id);
            fs::create_dir_all(&dir).unwrap();
            fs::write(dir.join("f"), b"x").unwrap();
        }
        let mut state = MetastoreState {
            retired: vec![
                retired("logs", "a"),
                retired("logs", "b"),
                retired("logs", "already-gone"),
                retired("logs", ".."),
            ],
            ..MetastoreState::default()
        };
        let gone = remove_unpinned(root.path(), &state.retired, |id| id == "b");
        assert!(!split_dir(root.path(), "logs", "a").exists());
        assert!(split_dir(root.path(), "logs", "b").exists(), "b is pinned");
        assert!(root.path().join("streams").join("logs").exists());
        assert!(forget(&mut state, &gone));
        assert_eq!(state.retired, vec![retired("logs", "b")]);
        let gone = remove_unpinned(root.path(), &state.retired, |_| false);
        assert!(forget(&mut state, &gone));
        assert!(state.retired.is_empty());
        assert!(!split_dir(root.path(), "logs", "b").exists());
        assert!(!forget(&mut state, &gone));
    }
}
