//! Dropping the local copies of published splits (`[storage] local_splits_max_bytes`).
//!
//! With a shared tier, a split the indexer published lives in object storage and searchers
//! read it there. The indexer's own copy serves only its own API and its merges, so it keeps
//! copies up to a bound and drops the oldest beyond it: its volume holds the WAL, the hot
//! index, what is not published yet and that bound.
//!
//! A drop is a publisher's decision recorded before it is carried out: the publisher first
//! moves the splits from "published" to "being dropped" in `publisher.json`, then the indexer
//! retires them as a merge retires its inputs (one durable write of its metastore; the files
//! go once no search holds them), then the publisher clears them. A split being dropped is
//! published, never new and never gone: a crash anywhere in between leaves it so, and the next
//! round finishes the drop. Had the indexer gone first, the next round would publish its
//! removal; had the publisher only forgotten it, the next round would take it for new.

use super::upkeep::drop_splits;
use super::*;
use crate::settings::CRASH_BEFORE_LOCAL_DROP;

/// Crash point right after the indexer's metastore recorded a drop, before the splits leave
/// the searchable set.
const CRASH_AFTER_LOCAL_DROP: &str = "crash_after_local_drop";

impl Indexer {
    /// Drops the local copies of the splits `ids` of `stream` that are still local and
    /// published (a merge may have replaced some meanwhile: those are left out). `record` is
    /// called first with the ids dropped, under the lock merges take, and must make the drop
    /// durable on the publisher's side; an error from it drops nothing. Returns the ids dropped.
    pub fn drop_local_copies<E: From<Error>>(
        &self,
        stream: &str,
        ids: &[String],
        record: impl FnOnce(&[String]) -> std::result::Result<(), E>,
    ) -> std::result::Result<Vec<String>, E> {
        let entry = self.stream(stream)?;
        let _replacing = lock(&self.inner.replacing);
        let published = lock(&self.inner.published)
            .get(stream)
            .cloned()
            .unwrap_or_default();
        let dropping: Vec<String> = entry
            .stream
            .splits()
            .iter()
            .map(|s| s.meta.id.clone())
            .filter(|id| ids.contains(id) && published.contains_key(id))
            .collect();
        if dropping.is_empty() {
            return Ok(dropping);
        }
        record(&dropping)?;
        self.inner.settings.crash_point(CRASH_BEFORE_LOCAL_DROP);
        drop_splits(
            &self.inner,
            &entry.stream,
            &dropping,
            Vec::new(),
            CRASH_AFTER_LOCAL_DROP,
        )?;
        if let Some(set) = lock(&self.inner.published).get_mut(stream) {
            set.retain(|id, _| !dropping.contains(id));
        }
        self.inner
            .metrics
            .local_copies_dropped
            .get_or_create(&crate::metrics::StreamLabel {
                stream: stream.to_string(),
            })
            .inc_by(dropping.len() as u64);
        self.inner
            .metrics
            .set_splits(stream, entry.stream.splits().len());
        tracing::info!(
            stream,
            splits = dropping.len(),
            "dropped the local copies of published splits (the shared tier keeps them)"
        );
        Ok(dropping)
    }
}

/// Crash point between the local swap of a cluster merge's inputs for its output and the
/// publisher's record of it.
const CRASH_AFTER_MERGE_ADOPTED: &str = "crash_after_merge_adopted";

impl Indexer {
    /// Takes the split written in `dir` (an output of the cluster's merger, published already)
    /// as a local split, in place of the local copies of its inputs (`meta.parents`), in one
    /// durable write of the local metastore. Returns the inputs whose copies it replaced.
    /// The publisher records the swap in `publisher.json` after: a crash in between leaves the
    /// output local and published (the next round adopts it) and the inputs recorded but gone
    /// (the next round publishes their removal again, which finds them marked already).
    pub fn adopt_merge(&self, dir: &Path, meta: SplitMeta) -> Result<Vec<String>> {
        let entry = self.stream(&meta.stream)?;
        let _replacing = lock(&self.inner.replacing);
        let splits_dir = entry.stream.splits_dir();
        fs::create_dir_all(&splits_dir)?;
        let target = splits_dir.join(&meta.id);
        fs::rename(dir, &target)?;
        crate::wal::sync_dir(&splits_dir)?;
        let parents = meta.parents.clone();
        let handle = Arc::new(SplitHandle::open(&target, meta)?);
        let local: Vec<String> = entry
            .stream
            .splits()
            .iter()
            .map(|s| s.meta.id.clone())
            .filter(|id| parents.contains(id))
            .collect();
        drop_splits(
            &self.inner,
            &entry.stream,
            &local,
            vec![handle],
            CRASH_AFTER_MERGE_ADOPTED,
        )?;
        self.inner
            .metrics
            .set_splits(&entry.stream.spec.name, entry.stream.splits().len());
        Ok(local)
    }
}
