//! Walks the documents an export matches and hands them over in blocks of stored documents,
//! never holding more than one block of documents.
//!
//! Unsorted: target by target (in id order), segment by segment, in doc id order, pulling the
//! matching doc set a block at a time. Sorted: per segment, the (timestamp, doc id) pairs of the
//! matches (16 bytes each, never the documents), sorted, then a k-way merge over every segment
//! of every target in the total order of search hits — timestamp, then target id, segment
//! ordinal and doc id, ascending for `asc` and the exact reverse for `desc`. An export of more
//! than [`WINDOW_ROWS`] matches is sorted a window of time at a time, so that its memory stays
//! flat ([`sorted_walk`]).

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
    let mut docs: Vec<TantivyDocument> = Vec::with_capacity(BLOCK_ROWS);
    sorted_walk(
        targets,
        query,
        sort,
        options,
        &mut |step, stores| match step {
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
        },
    )
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
    let mut block = RawBlock::with_capacity(BLOCK_ROWS, wanted.len());
    sorted_walk(
        targets,
        query,
        sort,
        options,
        &mut |step, stores| match step {
            Step::Doc(run, doc) => {
                let target = &targets[run.target].id;
                let store = stores
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
                let refs: Vec<&StoreReader> = stores.iter().collect();
                emit(&mut block, &refs)?;
                block = RawBlock::with_capacity(BLOCK_ROWS, wanted.len());
                Ok(())
            }
        },
    )
}

/// Matches a sorted export sorts at a time (16 bytes each, 16 MiB): more are cut into windows
/// of time holding about this many, each read, sorted and merged in turn, so that memory stays
/// flat however many documents the export holds.
const WINDOW_ROWS: usize = 1 << 20;

/// Buckets of the time histogram that places the windows' bounds.
const BUCKETS: u64 = 1 << 14;

#[cfg(test)]
thread_local! {
    /// Tests cut sorted exports into small windows on their thread.
    pub(crate) static WINDOW_ROWS_FOR_TESTS: std::cell::Cell<Option<usize>> =
        const { std::cell::Cell::new(None) };
    /// Windows the sorted walks of this thread read.
    pub(crate) static WINDOWS_FOR_TESTS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

fn window_rows() -> usize {
    #[cfg(test)]
    if let Some(rows) = WINDOW_ROWS_FOR_TESTS.with(std::cell::Cell::get) {
        return rows;
    }
    WINDOW_ROWS
}

/// A segment of a sorted walk that holds matches.
struct Part<'t> {
    target: usize,
    segment: u32,
    reader: &'t tantivy::SegmentReader,
    column: Option<tantivy::columnar::Column<DateTime>>,
    /// The position of its doc store among the walk's stores.
    store: usize,
    /// The first and last histogram bucket its matches fall in: a window outside them is not
    /// read again from this segment.
    buckets: (usize, usize),
}

/// The time histogram's buckets: documents without a time in the first, then `BUCKETS`
/// equal spans from `lo` to `hi`; bucket order is time order.
#[derive(Clone, Copy)]
struct Buckets {
    lo: i64,
    span: u128,
}

impl Buckets {
    fn of(&self, ts: i64) -> usize {
        if ts < self.lo {
            return 0;
        }
        let at = (ts as i128 - self.lo as i128) as u128 * u128::from(BUCKETS) / self.span;
        1 + at.min(u128::from(BUCKETS) - 1) as usize
    }
}

/// Walks the matches of `targets` in the requested order, handing each document and each full
/// block to `step` (a last, short block too) with the doc stores of the segments with matches
/// (in the positions [`Run::store`] names); returns how many documents were handed over.
///
/// A first pass over every segment's matches counts them in a time histogram and keeps their
/// (timestamp, doc id) pairs while they fit [`WINDOW_ROWS`]. Then either those pairs are sorted
/// and merged at once, or the histogram's buckets are cut into windows holding at most
/// [`WINDOW_ROWS`] matches each (a bucket over it alone), and each window in turn is read again,
/// sorted and merged: one more pass per window over the segments whose matches reach it,
/// instead of memory that grows with the export.
fn sorted_walk(
    targets: &[&SearchTarget],
    query: &dyn Query,
    sort: SortOrder,
    options: &WalkOptions<'_>,
    step: &mut dyn FnMut(Step<'_>, &[StoreReader]) -> Result<()>,
) -> Result<u64> {
    let desc = sort == SortOrder::Desc;
    let mut stores: Vec<StoreReader> = Vec::new();
    let budget = window_rows();
    let weights = targets
        .iter()
        .map(|target| weight(query, &target.searcher, &target.id))
        .collect::<Result<Vec<_>>>()?;
    // Every segment's time column, and the time span they cover.
    let mut parts: Vec<Part<'_>> = Vec::new();
    let (mut lo, mut hi) = (i64::MAX, i64::MIN);
    for (pos, target) in targets.iter().enumerate() {
        for (ord, reader) in target.searcher.segment_readers().iter().enumerate() {
            let column = reader
                .fast_fields()
                .column_opt::<DateTime>(TIMESTAMP_FIELD)
                .map_err(|e| internal(&target.id, e))?;
            if let Some(column) = &column {
                lo = lo.min(column.min_value().into_timestamp_nanos());
                hi = hi.max(column.max_value().into_timestamp_nanos());
            }
            parts.push(Part {
                target: pos,
                segment: segment_ord(ord, &target.id)?,
                reader,
                column,
                store: usize::MAX,
                buckets: (usize::MAX, 0),
            });
        }
    }
    let buckets = Buckets {
        lo,
        span: (hi as i128 - lo as i128).max(0) as u128 + 1,
    };
    // One pass: the histogram, and every segment's pairs while they fit the budget.
    let mut counts = vec![0u64; BUCKETS as usize + 1];
    let mut first: Vec<(Vec<(i64, DocId)>, u64)> = Vec::with_capacity(parts.len());
    let mut held = 0usize;
    let mut fits = true;
    for part in &mut parts {
        if (options.cancelled)() {
            return Ok(0);
        }
        let mut pairs = Vec::new();
        let mut matches = 0u64;
        let mut span = part.buckets;
        scan(targets, &weights, part, &mut |ts, doc| {
            let bucket = buckets.of(ts);
            counts[bucket] += 1;
            span = (span.0.min(bucket), span.1.max(bucket));
            matches += 1;
            if !fits {
                return;
            }
            if held < budget {
                pairs.push((ts, doc));
                held += 1;
            } else {
                fits = false;
                pairs = Vec::new();
            }
        })?;
        part.buckets = span;
        if !fits {
            first.iter_mut().for_each(|(p, _)| *p = Vec::new());
        }
        first.push((pairs, matches));
    }
    // Only the segments with matches keep a part and a doc store.
    let mut kept = Vec::new();
    let mut kept_pairs = Vec::new();
    for (mut part, (pairs, matches)) in parts.into_iter().zip(first) {
        if matches > 0 {
            part.store = stores.len();
            stores.push(store_reader(part.reader, targets[part.target])?);
            kept.push(part);
            kept_pairs.push(pairs);
        }
    }
    let parts = kept;
    // The windows: runs of buckets holding at most the budget (a bucket over it alone).
    let mut windows: Vec<(usize, usize)> = Vec::new();
    if fits {
        windows.push((0, counts.len()));
    } else {
        let (mut start, mut sum) = (0usize, 0u64);
        for (at, &n) in counts.iter().enumerate() {
            if sum > 0 && sum + n > budget as u64 {
                windows.push((start, at));
                (start, sum) = (at, 0);
            }
            sum += n;
        }
        windows.push((start, counts.len()));
    }
    if desc {
        windows.reverse();
    }
    let mut emitted = 0u64;
    let mut filled = 0usize;
    let mut single = fits.then_some(kept_pairs);
    for (from, to) in windows {
        if (options.cancelled)() || remaining(options.limit, emitted) == 0 {
            break;
        }
        #[cfg(test)]
        WINDOWS_FOR_TESTS.with(|w| w.set(w.get() + 1));
        let mut runs: Vec<Run> = Vec::new();
        let held = match single.take() {
            Some(held) => held,
            None => {
                let mut held = Vec::with_capacity(parts.len());
                for part in &parts {
                    let mut pairs = Vec::new();
                    if !reaches(part.buckets, (from, to)) {
                        held.push(pairs);
                        continue;
                    }
                    scan(targets, &weights, part, &mut |ts, doc| {
                        if (from..to).contains(&buckets.of(ts)) {
                            pairs.push((ts, doc));
                        }
                    })?;
                    held.push(pairs);
                }
                held
            }
        };
        for (part, mut pairs) in parts.iter().zip(held) {
            if pairs.is_empty() {
                continue;
            }
            pairs.sort_unstable();
            let next = if desc { pairs.len() - 1 } else { 0 };
            runs.push(Run {
                target: part.target,
                segment: part.segment,
                store: part.store,
                pairs,
                next,
            });
        }
        let left = options.limit.map(|limit| limit.saturating_sub(emitted));
        emitted += merge_runs(&mut runs, desc, left, options, &mut filled, &mut |s| {
            step(s, &stores)
        })?;
    }
    if filled > 0 && !(options.cancelled)() {
        step(Step::Flush, &stores)?;
    }
    Ok(emitted)
}

/// Whether matches in the buckets `span` (first and last, inclusive) may fall in the window
/// of buckets `from..to`.
fn reaches(span: (usize, usize), (from, to): (usize, usize)) -> bool {
    span.0 < to && span.1 >= from
}

/// Calls `each` with the (timestamp, doc id) of every live match of `part` (a document without
/// a time has `i64::MIN`: first in ascending order).
fn scan(
    targets: &[&SearchTarget],
    weights: &[Box<dyn tantivy::query::Weight>],
    part: &Part<'_>,
    each: &mut dyn FnMut(i64, DocId),
) -> Result<()> {
    let target = &targets[part.target].id;
    let alive = part.reader.alive_bitset();
    let mut scorer = weights[part.target]
        .scorer(part.reader, 1.0)
        .map_err(|e| internal(target, e))?;
    let mut doc = scorer.doc();
    while doc != TERMINATED {
        if alive.is_none_or(|a| a.is_alive(doc)) {
            let ts = part
                .column
                .as_ref()
                .and_then(|c| c.first(doc))
                .map_or(i64::MIN, DateTime::into_timestamp_nanos);
            each(ts, doc);
        }
        doc = scorer.advance();
    }
    Ok(())
}

/// What the merge of the runs hands to its caller.
enum Step<'r> {
    /// The next document in order: its run and doc id.
    Doc(&'r Run, DocId),
    /// A block is complete (or the walk is over with some documents taken): hand it over.
    Flush,
}

/// Merges `runs` in the requested order, at most `left` documents (all when `None`), adding
/// them to the block being filled (`filled` documents so far) and flushing every full one;
/// returns how many documents were taken.
fn merge_runs(
    runs: &mut [Run],
    desc: bool,
    left: Option<u64>,
    options: &WalkOptions<'_>,
    filled: &mut usize,
    step: &mut dyn FnMut(Step<'_>) -> Result<()>,
) -> Result<u64> {
    let mut heap: BinaryHeap<Head> = runs
        .iter()
        .enumerate()
        .filter_map(|(i, run)| run.head(i, desc))
        .collect();
    let mut taken = 0u64;
    while left.is_none_or(|left| taken < left) {
        if *filled == 0 && (options.cancelled)() {
            return Ok(taken);
        }
        let Some(head) = heap.pop() else { break };
        let Some(run) = runs.get_mut(head.run) else {
            return Err(Error::Internal("a merge head past its runs".into()));
        };
        step(Step::Doc(run, head.key.3))?;
        taken += 1;
        *filled += 1;
        if *filled == BLOCK_ROWS {
            step(Step::Flush)?;
            *filled = 0;
        }
        if run.step(desc) {
            heap.extend(run.head(head.run, desc));
        }
    }
    Ok(taken)
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

#[cfg(test)]
mod tests {
    use super::reaches;

    #[test]
    fn a_segment_is_read_again_for_the_windows_its_buckets_reach() {
        // Buckets 3 to 5 against windows of buckets.
        assert!(reaches((3, 5), (0, 4)));
        assert!(reaches((3, 5), (5, 9)));
        assert!(reaches((3, 5), (4, 5)));
        assert!(reaches((3, 5), (0, 100)));
        assert!(!reaches((3, 5), (0, 3)));
        assert!(!reaches((3, 5), (6, 9)));
        // One bucket.
        assert!(reaches((7, 7), (7, 8)));
        assert!(!reaches((7, 7), (8, 9)));
    }
}
