//! Removing what this indexer holds unpublished of sources another indexer took over.
//!
//! When a collector fails over, the new owner of its sources resumes them at the marks their
//! published splits carry, and the collector reads the files again from there (see
//! [`crate::ownership`]). What the old owner had acknowledged past those marks, and not
//! published, is then delivered twice: once to the old owner (in its WAL, hot index or an
//! unpublished split) and once to the new one. The old owner removes its copy here, found by
//! the hidden source field every delivered record carries, before it publishes anything more:
//!
//! - the hot index: the documents are deleted and the deletion committed;
//! - unpublished splits holding any: each is rewritten without them (a new split replacing the
//!   old one, as a merge does; the old one was never published);
//! - the WAL: the position before which the sources' records are dropped at a replay is kept in
//!   the local metastore (`purged`), for as long as the WAL holds such entries.
//!
//! Published splits are never touched: what they hold is below the marks the new owner resumed
//! at. In a shared tier only published splits merge, so an unpublished split holds unpublished
//! records only.

use tantivy::directory::OwnedBytes;
use tantivy::fastfield::{write_alive_bitset, AliveBitSet};
use tantivy::schema::IndexRecordOption;
use tantivy::{BitSet, DocSet, SegmentReader, Term, TERMINATED};

use super::*;

/// What [`Indexer::purge_sources`] removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Purged {
    /// Documents removed, from hot indexes and splits.
    pub records: u64,
    /// Unpublished splits rewritten (or dropped, when nothing was left of them).
    pub splits: usize,
}

/// The crash point between a purged split's durable replacement and its swap in memory.
const CRASH_AFTER_PURGE_PUBLISH: &str = "crash_after_purge_publish";

impl Indexer {
    /// Tells which splits of `stream` are published to the shared tier, with the transaction
    /// each was published in when known (the publisher does, after each round): only those
    /// merge, only the others are purged, and a root that listed them leaves them out.
    pub fn set_published(
        &self,
        stream: &str,
        ids: impl IntoIterator<Item = (String, Option<trawl_storage::seen::Committed>)>,
    ) {
        lock(&self.inner.published).insert(stream.to_string(), ids.into_iter().collect());
    }

    /// The sources this indexer has marks for (its local marks table).
    pub fn mark_sources(&self) -> Vec<String> {
        lock(&self.inner.marks).durable.keys().cloned().collect()
    }

    /// Removes every record of `sources` this indexer holds and has not published (see the
    /// module's documentation). Blocks: call it off the async runtime. Idempotent: a source
    /// purged twice loses nothing more.
    pub fn purge_sources(&self, sources: &[String]) -> Result<Purged> {
        let mut purged = Purged::default();
        if sources.is_empty() {
            return Ok(purged);
        }
        // Every batch acknowledged before now reaches its indexing thread before the purge.
        self.wal_barrier()?;
        let mut replayed_before = 0u64;
        for (name, entry) in stream_list(&self.inner) {
            let (tx, rx) = mpsc::channel();
            entry
                .tx
                .send(IndexOp::Purge {
                    sources: sources.to_vec(),
                    done: tx,
                })
                .map_err(|_| Error::InvalidArgument("indexing thread gone".into()))?;
            let (hot, lsn) = rx
                .recv()
                .map_err(|_| Error::InvalidArgument("indexing thread gone".into()))?
                .map_err(|err| Error::Io(std::io::Error::other(err)))?;
            replayed_before = replayed_before.max(lsn);
            let mut records = hot;
            let _replacing = lock(&self.inner.replacing);
            let published = lock(&self.inner.published)
                .get(&name)
                .cloned()
                .unwrap_or_default();
            for split in entry.stream.splits() {
                if published.contains_key(&split.meta.id) {
                    continue;
                }
                let marked = sources.iter().any(|s| split.meta.marks.contains_key(s));
                let (alive, removed) = without_sources(&split, sources)?;
                if removed == 0 && !marked {
                    continue;
                }
                replace_split(&self.inner, &entry.stream, &split, sources, alive)?;
                records += removed;
                purged.splits += 1;
            }
            if records > 0 {
                self.inner.metrics.purged(&name, records);
            }
            purged.records += records;
        }
        {
            let mut guard = lock(&self.inner.metastore);
            let (store, state) = &mut *guard;
            let mut next = state.clone();
            for source in sources {
                let before = next.purged.entry(source.clone()).or_insert(0);
                *before = (*before).max(replayed_before);
            }
            store.store(&next)?;
            *state = next;
        }
        if purged.records > 0 || purged.splits > 0 {
            tracing::info!(
                sources = sources.len(),
                records = purged.records,
                splits = purged.splits,
                "removed the unpublished records of sources another indexer took over"
            );
        }
        Ok(purged)
    }

    /// [`Indexer::purge_sources`] on a blocking thread.
    pub async fn purge_sources_off_runtime(&self, sources: Vec<String>) -> Result<Purged> {
        if sources.is_empty() {
            return Ok(Purged::default());
        }
        let indexer = self.clone();
        tokio::task::spawn_blocking(move || indexer.purge_sources(&sources))
            .await
            .map_err(|err| Error::Io(std::io::Error::other(err)))?
    }

    /// Returns once every batch queued for the WAL before it is durable and handed to its
    /// indexing thread.
    fn wal_barrier(&self) -> Result<()> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        {
            let wal_tx = lock(&self.inner.wal_tx);
            let tx = wal_tx
                .as_ref()
                .ok_or_else(|| Error::InvalidArgument("the indexer is shutting down".into()))?;
            tx.send(WalMsg::Barrier(reply))
                .map_err(|_| Error::InvalidArgument("the indexer is shutting down".into()))?;
        }
        match rx.blocking_recv() {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(err)) => Err(Error::Io(std::io::Error::other(err))),
            Err(_) => Err(Error::InvalidArgument(
                "the indexer is shutting down".into(),
            )),
        }
    }
}

/// The alive documents of each segment of `split` once those of `sources` are taken out, in
/// the order of its searchable segments, and how many that takes out.
fn without_sources(split: &SplitHandle, sources: &[String]) -> Result<(Vec<BitSet>, u64)> {
    let field = split
        .index
        .schema()
        .get_field(crate::schema::SOURCE_FIELD)
        .ok();
    let mut alive = Vec::new();
    let mut removed = 0u64;
    for segment in split.index.searchable_segments()? {
        let reader = SegmentReader::open(&segment)?;
        let max = reader.max_doc();
        let mut bits = BitSet::with_max_value_and_full(max);
        if let Some(deleted) = reader.alive_bitset() {
            for doc in 0..max {
                if deleted.is_deleted(doc) {
                    bits.remove(doc);
                }
            }
        }
        if let Some(field) = field {
            let inverted = reader.inverted_index(field)?;
            for source in sources {
                let term = Term::from_field_text(field, source);
                let Some(mut postings) = inverted.read_postings(&term, IndexRecordOption::Basic)?
                else {
                    continue;
                };
                let mut doc = postings.doc();
                while doc != TERMINATED {
                    if bits.contains(doc) {
                        bits.remove(doc);
                        removed += 1;
                    }
                    doc = postings.advance();
                }
            }
        }
        alive.push(bits);
    }
    Ok((alive, removed))
}

/// Replaces `split` by a copy holding only its `alive` documents and without the marks of
/// `sources` (or by nothing, when no document is left), durably, as a merge replaces its
/// inputs.
fn replace_split(
    inner: &Inner,
    stream: &Stream,
    split: &SplitHandle,
    sources: &[String],
    alive: Vec<BitSet>,
) -> Result<()> {
    let old = vec![split.meta.id.clone()];
    let left: u64 = alive.iter().map(|b| b.len() as u64).sum();
    if left == 0 {
        return upkeep::drop_splits(inner, stream, &old, Vec::new(), CRASH_AFTER_PURGE_PUBLISH);
    }
    let segments = split.index.searchable_segments()?;
    let mut filters = Vec::with_capacity(alive.len());
    for bits in &alive {
        let mut bytes = Vec::new();
        write_alive_bitset(bits, &mut bytes)?;
        filters.push(Some(AliveBitSet::open(OwnedBytes::new(bytes))));
    }
    let mut marks = split.meta.marks.clone();
    for source in sources {
        marks.remove(source);
    }
    let settings = split.index.settings().clone();
    upkeep::replace_by_output(
        inner,
        stream,
        &old,
        split.meta.merge_level,
        marks,
        CRASH_AFTER_PURGE_PUBLISH,
        |directory| {
            tantivy::indexer::merge_filtered_segments(&segments, settings, filters, directory)
        },
    )?;
    Ok(())
}
