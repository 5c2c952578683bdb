//! Walks the documents an export matches and hands them over in blocks of stored documents,
//! never holding more than one block of documents.
//!
//! Unsorted: target by target (in id order), segment by segment, in doc id order, pulling the
//! matching doc set a block at a time. Sorted: per segment, the (timestamp, doc id) pairs of the
//! matches (16 bytes each, never the documents), sorted, then a k-way merge over every segment
//! of every target in the total order of search hits — timestamp, then target id, segment
//! ordinal and doc id, ascending for `asc` and the exact reverse for `desc`.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use tantivy::query::Query;
use tantivy::schema::Field;
use tantivy::store::StoreReader;
use tantivy::{DateTime, DocId, DocSet, TantivyDocument, TERMINATED};
use trawl_index::SearchTarget;

use crate::error::{Error, Result};
use crate::export::raw::RawBlock;
use crate::query_text::weight;
use crate::request::SortOrder;
use crate::search::TIMESTAMP_FIELD;

/// Rows per block handed to the encoders (an Arrow record batch each).
pub const BLOCK_ROWS: usize = 8192;

/// Decompressed doc-store blocks an export keeps per segment. The searcher's own store readers
/// cache up to a hundred blocks per segment for the life of the split, so an export through
/// them would leave every block it touched cached — hundreds of megabytes over a large export.
/// The walk opens its own store reader per segment instead, and reads documents in doc order
/// (unsorted) or from a handful of runs at a time (sorted), so one or two blocks are enough.
const STORE_CACHE_BLOCKS: usize = 2;

/// Opens a segment's doc store for an export through the read contract's store reader
/// ([`SearchTarget::store_reader`]: positioned reads of the target's own file where it can).
pub(crate) fn store_reader(
    reader: &tantivy::SegmentReader,
    target: &SearchTarget,
) -> Result<tantivy::store::StoreReader> {
    target
        .store_reader(reader, STORE_CACHE_BLOCKS)
        .map_err(|e| internal(&target.id, e))
}

/// What the walk needs besides the targets.
pub(crate) struct WalkOptions<'a> {
    /// At most this many documents; all when `None`.
    pub limit: Option<u64>,
    /// Polled between blocks: when it says true the walk stops early (returns `Ok`).
    pub cancelled: &'a dyn Fn() -> bool,
}

/// Calls `emit` with blocks of at most [`BLOCK_ROWS`] matching documents of `targets` (already
/// in id order), in doc order. Returns how many documents were emitted.
pub(crate) fn walk_unsorted(
    targets: &[&SearchTarget],
    query: &dyn Query,
    options: &WalkOptions<'_>,
    emit: &mut dyn FnMut(&[TantivyDocument]) -> Result<()>,
) -> Result<u64> {
    let mut emitted = 0u64;
    let mut ids: Vec<DocId> = Vec::with_capacity(BLOCK_ROWS);
    let mut docs: Vec<TantivyDocument> = Vec::with_capacity(BLOCK_ROWS);
    for target in targets {
        let weight = weight(query, &target.searcher, &target.id)?;
        for reader in target.searcher.segment_readers() {
            let alive = reader.alive_bitset();
            let store = store_reader(reader, target)?;
            let mut scorer = weight
                .scorer(reader, 1.0)
                .map_err(|e| internal(&target.id, e))?;
            let mut doc = scorer.doc();
            while doc != TERMINATED {
                if (options.cancelled)() {
                    return Ok(emitted);
                }
                ids.clear();
                let room = remaining(options.limit, emitted).min(BLOCK_ROWS);
                while doc != TERMINATED && ids.len() < room {
                    if alive.is_none_or(|a| a.is_alive(doc)) {
                        ids.push(doc);
                    }
                    doc = scorer.advance();
                }
                docs.clear();
                for &id in &ids {
                    let stored = store.get(id).map_err(|e| internal(&target.id, e))?;
                    docs.push(stored);
                }
                if !docs.is_empty() {
                    emit(&docs)?;
                    emitted += docs.len() as u64;
                }
                if remaining(options.limit, emitted) == 0 {
                    return Ok(emitted);
                }
            }
        }
    }
    Ok(emitted)
}

/// Like [`walk_unsorted`], in the order of search hits for `sort`.
pub(crate) fn walk_sorted(
    targets: &[&SearchTarget],
    query: &dyn Query,
    sort: SortOrder,
    options: &WalkOptions<'_>,
    emit: &mut dyn FnMut(&[TantivyDocument]) -> Result<()>,
) -> Result<u64> {
    let desc = sort == SortOrder::Desc;
    let Some((mut runs, stores)) = sorted_runs(targets, query, desc, options)? else {
        return Ok(0);
    };
    let mut docs: Vec<TantivyDocument> = Vec::with_capacity(BLOCK_ROWS);
    merge_runs(&mut runs, desc, options, &mut |step| match step {
        Step::Doc(run, doc) => {
            let stored = stores
                .get(run.store)
                .ok_or_else(|| internal(&targets[run.target].id, "no such doc store"))?
                .get(doc)
                .map_err(|e| internal(&targets[run.target].id, e))?;
            docs.push(stored);
            Ok(())
        }
        Step::Flush => {
            emit(&docs)?;
            docs.clear();
            Ok(())
        }
    })
}

/// Like [`walk_sorted`], handing over blocks of stored documents read in place for `wanted`
/// ([`RawBlock`]), with the doc stores their rows name.
pub(crate) fn walk_sorted_raw(
    targets: &[&SearchTarget],
    query: &dyn Query,
    sort: SortOrder,
    options: &WalkOptions<'_>,
    wanted: &[Field],
    emit: &mut dyn FnMut(&mut RawBlock, &[&StoreReader]) -> Result<()>,
) -> Result<u64> {
    let desc = sort == SortOrder::Desc;
    let Some((mut runs, stores)) = sorted_runs(targets, query, desc, options)? else {
        return Ok(0);
    };
    let refs: Vec<&StoreReader> = stores.iter().collect();
    let mut block = RawBlock::with_capacity(BLOCK_ROWS, wanted.len());
    merge_runs(&mut runs, desc, options, &mut |step| match step {
        Step::Doc(run, doc) => {
            let target = &targets[run.target].id;
            let store = refs
                .get(run.store)
                .ok_or_else(|| internal(target, "no such doc store"))?;
            let bytes = store
                .get_document_bytes(doc)
                .map_err(|e| internal(target, e))?;
            let position =
                u32::try_from(run.store).map_err(|_| internal(target, "too many segments"))?;
            block.push(bytes, position, doc, wanted);
            Ok(())
        }
        Step::Flush => {
            emit(&mut block, &refs)?;
            block = RawBlock::with_capacity(BLOCK_ROWS, wanted.len());
            Ok(())
        }
    })
}

/// One sorted run per segment of `targets` holding matches, and each run's doc store (with
/// its own small cache); `None` when the export was cancelled meanwhile.
fn sorted_runs(
    targets: &[&SearchTarget],
    query: &dyn Query,
    desc: bool,
    options: &WalkOptions<'_>,
) -> Result<Option<(Vec<Run>, Vec<StoreReader>)>> {
    let mut runs: Vec<Run> = Vec::new();
    let mut stores = Vec::new();
    for (pos, target) in targets.iter().enumerate() {
        let weight = weight(query, &target.searcher, &target.id)?;
        for (ord, reader) in target.searcher.segment_readers().iter().enumerate() {
            if (options.cancelled)() {
                return Ok(None);
            }
            let ord = segment_ord(ord, &target.id)?;
            let column = reader
                .fast_fields()
                .column_opt::<DateTime>(TIMESTAMP_FIELD)
                .map_err(|e| internal(&target.id, e))?;
            let alive = reader.alive_bitset();
            let mut scorer = weight
                .scorer(reader, 1.0)
                .map_err(|e| internal(&target.id, e))?;
            let mut pairs: Vec<(i64, DocId)> = Vec::new();
            let mut doc = scorer.doc();
            while doc != TERMINATED {
                if alive.is_none_or(|a| a.is_alive(doc)) {
                    let ts = column
                        .as_ref()
                        .and_then(|c| c.first(doc))
                        .map_or(i64::MIN, DateTime::into_timestamp_nanos);
                    pairs.push((ts, doc));
                }
                doc = scorer.advance();
            }
            if pairs.is_empty() {
                continue;
            }
            pairs.sort_unstable();
            let next = if desc { pairs.len() - 1 } else { 0 };
            runs.push(Run {
                target: pos,
                segment: ord,
                store: stores.len(),
                pairs,
                next,
            });
            stores.push(store_reader(reader, target)?);
        }
    }
    Ok(Some((runs, stores)))
}

/// What the merge of the runs hands to its caller.
enum Step<'r> {
    /// The next document in order: its run and doc id.
    Doc(&'r Run, DocId),
    /// A block is complete (or the merge is over with some documents taken): hand it over.
    Flush,
}

/// Merges `runs` in the requested order, [`BLOCK_ROWS`] documents (or what `limit` leaves)
/// to a block; returns how many documents were taken.
fn merge_runs(
    runs: &mut [Run],
    desc: bool,
    options: &WalkOptions<'_>,
    step: &mut dyn FnMut(Step<'_>) -> Result<()>,
) -> Result<u64> {
    let mut heap: BinaryHeap<Head> = runs
        .iter()
        .enumerate()
        .filter_map(|(i, run)| run.head(i, desc))
        .collect();
    let mut emitted = 0u64;
    while !heap.is_empty() {
        if (options.cancelled)() {
            return Ok(emitted);
        }
        let room = remaining(options.limit, emitted).min(BLOCK_ROWS);
        let mut taken = 0;
        while taken < room {
            let Some(head) = heap.pop() else { break };
            let Some(run) = runs.get_mut(head.run) else {
                return Err(Error::Internal("a merge head past its runs".into()));
            };
            step(Step::Doc(run, head.key.3))?;
            taken += 1;
            if run.step(desc) {
                heap.extend(run.head(head.run, desc));
            }
        }
        if taken > 0 {
            step(Step::Flush)?;
            emitted += taken as u64;
        }
        if remaining(options.limit, emitted) == 0 {
            break;
        }
    }
    Ok(emitted)
}

/// The matches of one segment, sorted ascending by (timestamp, doc id).
struct Run {
    target: usize,
    segment: u32,
    /// The position of the segment's doc store among the walk's stores.
    store: usize,
    pairs: Vec<(i64, DocId)>,
    /// Index of the next pair to merge.
    next: usize,
}

impl Run {
    /// The run's next pair as a heap entry; `None` when the run is exhausted.
    fn head(&self, run: usize, desc: bool) -> Option<Head> {
        let &(ts, doc) = self.pairs.get(self.next)?;
        Some(Head {
            key: (ts, self.target, self.segment, doc),
            run,
            desc,
        })
    }

    /// Moves past the current pair; false when the run is exhausted.
    fn step(&mut self, desc: bool) -> bool {
        if desc {
            match self.next.checked_sub(1) {
                Some(next) => {
                    self.next = next;
                    true
                }
                None => {
                    self.next = self.pairs.len();
                    false
                }
            }
        } else {
            self.next += 1;
            self.next < self.pairs.len()
        }
    }
}

/// A run's next document in the merge heap; the heap pops the one that comes first in the
/// requested order.
struct Head {
    /// (timestamp, target position, segment ordinal, doc id).
    key: (i64, usize, u32, DocId),
    run: usize,
    desc: bool,
}

impl PartialEq for Head {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}

impl Eq for Head {}

impl PartialOrd for Head {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Head {
    fn cmp(&self, other: &Self) -> Ordering {
        // BinaryHeap pops the greatest: the largest key for desc, the smallest for asc.
        let order = self.key.cmp(&other.key);
        if self.desc {
            order
        } else {
            order.reverse()
        }
    }
}

pub(crate) fn remaining(limit: Option<u64>, emitted: u64) -> usize {
    match limit {
        None => usize::MAX,
        Some(limit) => usize::try_from(limit.saturating_sub(emitted)).unwrap_or(usize::MAX),
    }
}

fn segment_ord(ord: usize, target: &str) -> Result<u32> {
    u32::try_from(ord).map_err(|_| internal(target, "too many segments"))
}

fn internal(target: &str, err: impl std::fmt::Display) -> Error {
    Error::Internal(format!("exporting target `{target}`: {err}"))
}
