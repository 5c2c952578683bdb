//! Search over a stream snapshot: parse the query, bound it in time, visit the targets in
//! parallel (exact count, the top `limit` by timestamp, aggregation intermediates), merge, and
//! load stored documents for the final hits only.
//!
//! Hits follow one total order: timestamp, then target id, segment ordinal and doc id —
//! ascending for `sort=asc`, the exact reverse for `sort=desc`. A [`Cursor`] names a position
//! in that order, so paging with `search_after` neither skips nor repeats a document while the
//! set of splits stays the same.

use std::cmp::Ordering as CmpOrdering;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use serde::Serialize;
use serde_json::{Map, Value};
use tantivy::aggregation::intermediate_agg_result::IntermediateAggregationResults;
use tantivy::collector::SegmentCollector;
use tantivy::columnar::Column;
use tantivy::query::{EnableScoring, Query, Weight};
use tantivy::{DateTime, DocAddress, DocId, SegmentReader, TantivyDocument, TantivyError};
use trawl_index::{SearchTarget, StreamSnapshot};

use crate::aggs::AggRun;
use crate::error::{Error, Result};
use crate::hit::{list_fields, HitFormat};
use crate::request::{Cursor, ParsedRequest, QueryLimits, SortOrder};

/// The field every stream orders and bounds its documents by.
pub const TIMESTAMP_FIELD: &str = "timestamp";

/// The answer to a search; a distributed search's merged answer holds [`MergedHit`]s.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SearchResponse<H = Map<String, Value>> {
    /// Exact number of documents matching the query and time bounds, over all targets searched
    /// (independent of `limit` and `search_after`).
    pub total: u64,
    /// The hits, flat records in the requested order; empty when `limit` is 0.
    pub hits: Vec<H>,
    /// Wall-clock time of the search in milliseconds.
    pub took_ms: u64,
    /// Elasticsearch-shaped aggregation results, when aggregations were requested.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aggregations: Option<Value>,
    /// Position of the last hit: pass it as `search_after` to continue. Present whenever hits
    /// were returned and the answer is complete.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// The time budget ran out: totals, hits and aggregations cover only what was searched.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub timed_out: bool,
}

/// Runs `req` over the snapshot's targets that overlap its time bounds.
///
/// Errors: [`Error::InvalidQuery`] for a query that does not parse (the message says where),
/// [`Error::InvalidArgument`] for an unknown projected field, [`Error::InvalidAggregation`] or
/// [`Error::TooExpensive`] for aggregations, [`Error::Internal`] when an index cannot be read.
/// When the time budget runs out the answer is partial and says so (`timed_out`), not an
/// error. Blocking and CPU-heavy: call it from a blocking thread.
pub fn search(
    snapshot: &StreamSnapshot,
    req: &ParsedRequest,
    limits: &QueryLimits,
) -> Result<SearchResponse> {
    let started = Instant::now();
    let executed = execute(snapshot, req, limits)?;
    let cursor = match executed.hits.last() {
        Some(hit) if !executed.timed_out => Some(hit.key.cursor().encode()),
        _ => None,
    };
    let aggregations = match (&executed.agg_run, executed.intermediates) {
        (Some(run), Some(merged)) => Some(run.finish(merged)?),
        _ => None,
    };
    Ok(SearchResponse {
        total: executed.total,
        hits: executed.hits.into_iter().map(|h| h.record).collect(),
        took_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        aggregations,
        cursor,
        timed_out: executed.timed_out,
    })
}

/// One hit with its position in the global hit order.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct LeafHit {
    pub timestamp: i64,
    pub target: String,
    pub segment: u32,
    pub doc: u32,
    /// The flat record.
    pub record: LeafRecord,
}

/// A leaf hit's flat record. It travels as JSON text (the leaf answer is binary; JSON values
/// do not travel in it), so an indexer's hit arrives as [`LeafRecord::Text`]; the root's own
/// leaf keeps the record it built ([`LeafRecord::Parsed`]) and never writes it out and reads
/// it back.
#[derive(Debug, Clone, PartialEq)]
pub enum LeafRecord {
    Parsed(Map<String, Value>),
    Text(String),
}

impl Serialize for LeafRecord {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        match self {
            LeafRecord::Parsed(map) => serializer
                .serialize_str(&serde_json::to_string(map).map_err(serde::ser::Error::custom)?),
            LeafRecord::Text(text) => serializer.serialize_str(text),
        }
    }
}

impl<'de> serde::Deserialize<'de> for LeafRecord {
    fn deserialize<D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> std::result::Result<Self, D::Error> {
        String::deserialize(deserializer).map(LeafRecord::Text)
    }
}

/// A hit of a merged answer: a record built here, or an indexer's JSON text written out as it
/// came (checked to be JSON, not parsed into values only to be written again).
#[derive(Debug, Clone)]
pub enum MergedHit {
    Parsed(Map<String, Value>),
    Raw(Box<serde_json::value::RawValue>),
}

impl Serialize for MergedHit {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        match self {
            MergedHit::Parsed(map) => map.serialize(serializer),
            MergedHit::Raw(raw) => raw.serialize(serializer),
        }
    }
}

impl MergedHit {
    fn of(record: LeafRecord) -> Result<MergedHit> {
        match record {
            LeafRecord::Parsed(map) => Ok(MergedHit::Parsed(map)),
            LeafRecord::Text(text) => match serde_json::value::RawValue::from_string(text) {
                Ok(raw) if raw.get().trim_start().starts_with('{') => Ok(MergedHit::Raw(raw)),
                _ => Err(Error::Internal("a leaf answered a malformed record".into())),
            },
        }
    }
}

impl LeafHit {
    fn cursor(&self) -> Cursor {
        Cursor {
            timestamp: self.timestamp,
            target: self.target.clone(),
            segment: self.segment,
            doc: self.doc,
        }
    }

    /// The key of the global hit order for `sort`, smaller first.
    pub fn order_key(&self) -> (i64, &str, u32, u32) {
        (self.timestamp, &self.target, self.segment, self.doc)
    }
}

/// What an indexer answers a root searcher: hits with their order keys and aggregation
/// intermediate results, to be merged with the other indexers' (postcard-encoded).
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
pub struct LeafResponse {
    pub total: u64,
    pub hits: Vec<LeafHit>,
    pub aggregations: Option<IntermediateAggregationResults>,
    pub timed_out: bool,
}

/// Runs `req` as one leaf of a distributed search: like [`search`], but hits keep their order
/// keys and aggregations stay intermediate, so that a root can merge leaves exactly.
pub fn search_leaf(
    snapshot: &StreamSnapshot,
    req: &ParsedRequest,
    limits: &QueryLimits,
) -> Result<LeafResponse> {
    let executed = execute(snapshot, req, limits)?;
    Ok(LeafResponse {
        total: executed.total,
        hits: executed
            .hits
            .into_iter()
            .map(|h| LeafHit {
                record: LeafRecord::Parsed(h.record),
                ..h.key
            })
            .collect(),
        aggregations: executed.intermediates,
        timed_out: executed.timed_out,
    })
}

/// Merges leaf answers into the final answer of a distributed search.
pub fn merge_leaves(
    leaves: Vec<LeafResponse>,
    req: &ParsedRequest,
    limits: &QueryLimits,
    tokenizers: tantivy::tokenizer::TokenizerManager,
) -> Result<SearchResponse<MergedHit>> {
    let started = Instant::now();
    let mut total = 0;
    let mut timed_out = false;
    let mut hits = Vec::new();
    let mut intermediates = Vec::new();
    for leaf in leaves {
        total += leaf.total;
        timed_out |= leaf.timed_out;
        hits.extend(leaf.hits);
        intermediates.extend(leaf.aggregations);
    }
    match req.sort {
        SortOrder::Asc => hits.sort_by(|a, b| a.order_key().cmp(&b.order_key())),
        SortOrder::Desc => hits.sort_by(|a, b| b.order_key().cmp(&a.order_key())),
    }
    hits.truncate(req.limit);
    let cursor = match hits.last() {
        Some(hit) if !timed_out => Some(hit.cursor().encode()),
        _ => None,
    };
    let aggregations = match &req.aggs {
        Some(aggs) => {
            let run = AggRun::new(aggs, limits, tokenizers);
            Some(run.finish(AggRun::merge(intermediates)?)?)
        }
        None => None,
    };
    let records = hits
        .into_iter()
        .map(|h| MergedHit::of(h.record))
        .collect::<Result<Vec<_>>>()?;
    Ok(SearchResponse {
        total,
        hits: records,
        took_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        aggregations,
        cursor,
        timed_out,
    })
}

/// A hit of [`execute`]: its place in the order, and its record.
struct ExecutedHit {
    key: LeafHit,
    record: Map<String, Value>,
}

/// The merged outcome of a search over a snapshot's targets.
struct Executed {
    total: u64,
    hits: Vec<ExecutedHit>,
    intermediates: Option<IntermediateAggregationResults>,
    agg_run: Option<AggRun>,
    timed_out: bool,
}

fn execute(
    snapshot: &StreamSnapshot,
    req: &ParsedRequest,
    limits: &QueryLimits,
) -> Result<Executed> {
    let started = Instant::now();
    let deadline = started + req.timeout;
    let query = build_query(snapshot, req)?;
    let format = HitFormat::new(
        &snapshot.schema,
        req.fields.as_deref(),
        &list_fields(&snapshot.stream),
    )?;
    let aggs = req
        .aggs
        .as_ref()
        .map(|aggs| AggRun::new(aggs, limits, snapshot.tokenizers.clone()));

    // Targets in id order: the tie-break of the hit order and of cursors.
    let mut targets: Vec<&SearchTarget> = snapshot
        .targets
        .iter()
        .filter(|t| t.overlaps(req.start, req.end))
        .collect();
    targets.sort_by(|a, b| a.id.cmp(&b.id));

    let plan = Plan {
        query: query.as_ref(),
        req,
        aggs: aggs.as_ref(),
        deadline,
        timed_out: AtomicBool::new(false),
        bound: AtomicU64::new(u64::MAX),
    };
    let results = run_parallel(&plan, &targets, limits.parallelism)?;

    let mut total = 0u64;
    let mut candidates: Vec<(GlobalKey, usize, u32, DocId)> = Vec::new();
    let mut intermediates = Vec::new();
    for (pos, result) in results.into_iter().enumerate() {
        total += result.count;
        let target_rank = match req.sort {
            SortOrder::Asc => pos,
            SortOrder::Desc => targets.len() - 1 - pos,
        };
        for (segment, rank) in result.hits {
            let (ts_rank, doc_rank) = split_rank(rank);
            let seg_rank = match req.sort {
                SortOrder::Asc => segment,
                SortOrder::Desc => !segment,
            };
            let doc = decode_doc(doc_rank, req.sort);
            candidates.push((
                (ts_rank, target_rank, seg_rank, doc_rank),
                pos,
                segment,
                doc,
            ));
        }
        if let Some(agg) = result.aggs {
            intermediates.push(agg);
        }
    }
    candidates.sort_unstable_by_key(|c| c.0);
    candidates.truncate(req.limit);

    let mut hits = Vec::with_capacity(candidates.len());
    for &((ts_rank, ..), pos, segment, doc) in &candidates {
        let target = targets[pos];
        let stored: TantivyDocument = target
            .searcher
            .doc(DocAddress::new(segment, doc))
            .map_err(|err| internal(&target.id, err))?;
        hits.push(ExecutedHit {
            key: LeafHit {
                timestamp: decode_ts(ts_rank, req.sort),
                target: target.id.clone(),
                segment,
                doc,
                record: LeafRecord::Text(String::new()),
            },
            record: format.to_json(&stored),
        });
    }
    let intermediates = match &aggs {
        Some(_) => Some(AggRun::merge(intermediates)?),
        None => None,
    };
    let timed_out = plan.timed_out.load(Ordering::Relaxed);
    Ok(Executed {
        total,
        hits,
        intermediates,
        agg_run: aggs,
        timed_out,
    })
}

/// Position of a hit in the requested order: (timestamp rank, target rank, segment rank, doc
/// rank), smaller first.
type GlobalKey = (u64, usize, u32, u32);

/// What every worker shares.
struct Plan<'a> {
    query: &'a dyn Query,
    req: &'a ParsedRequest,
    aggs: Option<&'a AggRun>,
    deadline: Instant,
    timed_out: AtomicBool,
    /// A timestamp rank no hit of the answer is worse than: the worst of some segment's full
    /// `limit` hits (any segment's best `limit` bound the answer's). A segment whose best
    /// possible rank is worse is only counted. `u64::MAX` until a segment filled its `limit`.
    bound: AtomicU64,
}

impl Plan<'_> {
    /// Whether the time budget is spent; records it when it is.
    fn expired(&self) -> bool {
        if Instant::now() >= self.deadline {
            self.timed_out.store(true, Ordering::Relaxed);
            true
        } else {
            false
        }
    }

    /// Whether no document of a segment whose best timestamp rank is `best` can make the
    /// answer's hits: hits are wanted, no aggregation needs the documents, and `best` is worse
    /// than the bound.
    fn only_count(&self, best: Option<u64>) -> bool {
        self.req.limit > 0
            && self.aggs.is_none()
            && best.is_some_and(|best| best > self.bound.load(Ordering::Relaxed))
    }

    /// Lowers the bound with a segment's hits (best first) when they fill `limit`.
    fn tighten(&self, hits: &[u128]) {
        let worst = self
            .req
            .limit
            .checked_sub(1)
            .and_then(|last| hits.get(last));
        if let Some(&worst) = worst {
            self.bound.fetch_min(split_rank(worst).0, Ordering::Relaxed);
        }
    }
}

/// What one target yields.
#[derive(Default)]
struct TargetResult {
    count: u64,
    /// (segment ordinal, segment rank), best first, at most `limit`.
    hits: Vec<(u32, u128)>,
    aggs: Option<IntermediateAggregationResults>,
}

/// Parses the query text, adds the time bounds and restricts it to the request's scope.
fn build_query(snapshot: &StreamSnapshot, req: &ParsedRequest) -> Result<Box<dyn Query>> {
    crate::query_text::build_query(snapshot, &req.query, req.start, req.end, &req.scope)
}

/// Searches the targets on up to `parallelism` threads, each pulling the next target when done
/// with one. When hits are wanted, the targets that may hold the best ones go first, so that
/// the plan's bound prunes the rest.
fn run_parallel(
    plan: &Plan<'_>,
    targets: &[&SearchTarget],
    parallelism: usize,
) -> Result<Vec<TargetResult>> {
    let mut visit: Vec<usize> = (0..targets.len()).collect();
    if plan.req.limit > 0 && plan.aggs.is_none() {
        // Unknown bounds (a growing hot index) first: it holds the newest documents.
        match plan.req.sort {
            SortOrder::Desc => visit.sort_by_key(|&i| {
                std::cmp::Reverse(targets[i].max_timestamp.map_or(i64::MAX, |t| t.0))
            }),
            SortOrder::Asc => {
                visit.sort_by_key(|&i| targets[i].min_timestamp.map_or(i64::MIN, |t| t.0))
            }
        }
    }
    parallel_visit(targets, &visit, parallelism, |target| {
        search_target(plan, target)
    })
}

/// Runs `work` on every item on up to `parallelism` threads, each pulling the next item when
/// done with one, in the order of `visit` (a permutation of their positions). Results come
/// back in item order. The first error wins and stops the others from starting new items. A
/// panic inside `work` (tantivy on a damaged split) fails that item with
/// [`Error::Internal`], never the process or the thread pool. The one executor of every
/// search that visits targets (the search API, the reports, the Elasticsearch API); `E` is the
/// caller's error type.
pub(crate) fn parallel_visit<I: Sync, T: Send, E: Send + From<Error>>(
    items: &[I],
    visit: &[usize],
    parallelism: usize,
    work: impl Fn(&I) -> std::result::Result<T, E> + Sync,
) -> std::result::Result<Vec<T>, E> {
    let workers = parallelism.max(1).min(items.len());
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let slots: Mutex<Vec<Option<std::result::Result<T, E>>>> =
        Mutex::new((0..items.len()).map(|_| None).collect());
    let worker = || loop {
        let n = next.fetch_add(1, Ordering::Relaxed);
        let Some(&i) = visit.get(n) else { break };
        if failed.load(Ordering::Relaxed) {
            break;
        }
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(&items[i])))
            .unwrap_or_else(|_| {
                Err(E::from(Error::Internal(
                    "a search worker panicked".to_string(),
                )))
            });
        if result.is_err() {
            failed.store(true, Ordering::Relaxed);
        }
        if let Ok(mut slots) = slots.lock() {
            slots[i] = Some(result);
        }
    };
    if workers <= 1 {
        worker();
    } else {
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..workers).map(|_| scope.spawn(worker)).collect();
            for handle in handles {
                if handle.join().is_err() {
                    failed.store(true, Ordering::Relaxed);
                }
            }
        });
    }
    let slots = slots
        .into_inner()
        .map_err(|_| E::from(Error::Internal("a search worker panicked".to_string())))?;
    let mut results = Vec::with_capacity(slots.len());
    let mut first_error = None;
    let mut not_started = false;
    for slot in slots {
        match slot {
            Some(Ok(result)) => results.push(result),
            Some(Err(err)) => {
                first_error.get_or_insert(err);
            }
            // Not started: another item failed (its error is the answer), or a worker panicked.
            None => not_started = true,
        }
    }
    match first_error {
        Some(err) => Err(err),
        None if not_started => Err(E::from(Error::Internal(
            "a search worker failed".to_string(),
        ))),
        None => Ok(results),
    }
}

/// The query's weight on one target, scoring disabled. A query that does not fit the target's
/// schema is [`Error::InvalidQuery`].
pub(crate) fn weight_on(query: &dyn Query, target: &SearchTarget) -> Result<Box<dyn Weight>> {
    query
        .weight(EnableScoring::disabled_from_searcher(&target.searcher))
        .map_err(|err| match err {
            TantivyError::InvalidArgument(message) | TantivyError::SchemaError(message) => {
                Error::InvalidQuery(message)
            }
            TantivyError::FieldNotFound(field) => {
                Error::InvalidQuery(format!("field `{field}` does not exist"))
            }
            other => internal(&target.id, other),
        })
}

/// Count, top hits and aggregation intermediates of one target; the deadline is checked before
/// every segment.
fn search_target(plan: &Plan<'_>, target: &SearchTarget) -> Result<TargetResult> {
    let mut result = TargetResult::default();
    if plan.expired() {
        return Ok(result);
    }
    let cache_key = plan
        .aggs
        .and_then(|_| crate::leaf_cache::LeafCache::key(target, plan.req));
    if let Some(cached) = cache_key
        .as_deref()
        .and_then(|key| crate::leaf_cache::LeafCache::global().get(key))
    {
        result.count = cached.count;
        result.aggs = Some(cached.aggs);
        return Ok(result);
    }
    let mut complete = true;
    let searcher = &target.searcher;
    let weight = weight_on(plan.query, target)?;
    let limit = plan.req.limit;
    let mut agg_parts = Vec::new();
    // The segments that may hold the best hits first, so that the bound prunes the others.
    let prune = limit > 0 && plan.aggs.is_none();
    let mut segments: Vec<(usize, &SegmentReader, Option<u64>)> = searcher
        .segment_readers()
        .iter()
        .enumerate()
        .map(|(ord, reader)| {
            let best = prune.then(|| best_rank(reader, plan.req.sort)).flatten();
            (ord, reader, best)
        })
        .collect();
    if prune {
        segments.sort_by_key(|(_, _, best)| best.unwrap_or(0));
    }
    for (ord, reader, best) in segments {
        if plan.expired() {
            complete = false;
            break;
        }
        let ord = u32::try_from(ord).map_err(|_| internal(&target.id, "too many segments"))?;
        if (limit == 0 && plan.aggs.is_none()) || plan.only_count(best) {
            result.count += u64::from(weight.count(reader).map_err(|e| internal(&target.id, e))?);
            continue;
        }
        let mut hits =
            TopByTime::new(plan.req, target, ord, reader).map_err(|e| internal(&target.id, e))?;
        let mut aggs = plan
            .aggs
            .map(|run| run.segment_collector(ord, reader))
            .transpose()?;
        collect_segment(weight.as_ref(), reader, &mut hits, &mut aggs)
            .map_err(|e| internal(&target.id, e))?;
        result.count += hits.count;
        let ranks = hits.harvest();
        plan.tighten(&ranks);
        result
            .hits
            .extend(ranks.into_iter().map(|rank| (ord, rank)));
        if let Some(aggs) = aggs {
            agg_parts.push(aggs.harvest().map_err(crate::aggs::map_agg_error)?);
        }
    }
    // Keep the target's best `limit` across its segments.
    result.hits.sort_unstable_by(|a, b| {
        let (ta, da) = split_rank(a.1);
        let (tb, db) = split_rank(b.1);
        let seg = |s: u32| match plan.req.sort {
            SortOrder::Asc => s,
            SortOrder::Desc => !s,
        };
        (ta, seg(a.0), da).cmp(&(tb, seg(b.0), db))
    });
    result.hits.truncate(limit);
    if plan.aggs.is_some() {
        let aggs = AggRun::merge(agg_parts)?;
        if let (Some(key), true) = (cache_key, complete) {
            crate::leaf_cache::LeafCache::global().put(key, result.count, &aggs);
        }
        result.aggs = Some(aggs);
    }
    Ok(result)
}

/// Feeds the segment's matching live documents to both collectors, a block at a time.
fn collect_segment(
    weight: &dyn Weight,
    reader: &SegmentReader,
    hits: &mut TopByTime,
    aggs: &mut Option<tantivy::aggregation::AggregationSegmentCollector>,
) -> tantivy::Result<()> {
    for_each_live_block(weight, reader, |docs| {
        hits.collect_block(docs);
        if let Some(aggs) = aggs.as_mut() {
            aggs.collect_block(docs);
        }
    })
}

/// [`for_each_live_block`] in batches of up to `batch` documents instead of tantivy's blocks of
/// 64: a loop over several columns per batch (the reports' grouping) pays its per-call costs
/// once per batch.
pub(crate) fn for_each_live_batch(
    weight: &dyn Weight,
    reader: &SegmentReader,
    batch: usize,
    mut f: impl FnMut(&[DocId]),
) -> tantivy::Result<()> {
    let mut pending: Vec<DocId> = Vec::with_capacity(batch + 64);
    for_each_live_block(weight, reader, |docs| {
        pending.extend_from_slice(docs);
        if pending.len() >= batch {
            f(&pending);
            pending.clear();
        }
    })?;
    if !pending.is_empty() {
        f(&pending);
    }
    Ok(())
}

/// Feeds `f` the segment's matching documents that are not deleted, a block at a time.
pub(crate) fn for_each_live_block(
    weight: &dyn Weight,
    reader: &SegmentReader,
    mut f: impl FnMut(&[DocId]),
) -> tantivy::Result<()> {
    let alive = reader.alive_bitset();
    let mut live: Vec<DocId> = Vec::new();
    weight.for_each_no_score(reader, &mut |docs| match alive {
        Some(alive) => {
            live.clear();
            live.extend(docs.iter().copied().filter(|d| alive.is_alive(*d)));
            f(&live)
        }
        None => f(docs),
    })
}

/// Counts a segment's matches and keeps the best `limit` of those after the cursor.
///
/// A document's rank packs (timestamp rank, doc rank) into a `u128` so that a smaller rank
/// comes first in the requested order: ascending order uses the values, descending their
/// bitwise complements.
struct TopByTime {
    column: Option<Column<DateTime>>,
    sort: SortOrder,
    limit: usize,
    /// Only documents ranked at or above this are after the cursor.
    min_rank: u128,
    /// Max-heap of the best ranks so far: its top is the worst kept.
    heap: BinaryHeap<u128>,
    count: u64,
    buffer: Vec<Option<DateTime>>,
}

impl TopByTime {
    fn new(
        req: &ParsedRequest,
        target: &SearchTarget,
        ord: u32,
        reader: &SegmentReader,
    ) -> tantivy::Result<TopByTime> {
        let column = if req.limit > 0 {
            reader
                .fast_fields()
                .column_opt::<DateTime>(TIMESTAMP_FIELD)?
        } else {
            None
        };
        let min_rank = req.search_after.as_ref().map_or(0, |cursor| {
            min_rank_after(cursor, req.sort, &target.id, ord)
        });
        Ok(TopByTime {
            column,
            sort: req.sort,
            limit: req.limit,
            min_rank,
            heap: BinaryHeap::with_capacity(req.limit.min(1024) + 1),
            count: 0,
            buffer: Vec::new(),
        })
    }

    fn collect_block(&mut self, docs: &[DocId]) {
        self.count += docs.len() as u64;
        if self.limit == 0 {
            return;
        }
        self.buffer.clear();
        self.buffer.resize(docs.len(), None);
        if let Some(column) = &self.column {
            column.first_vals(docs, &mut self.buffer);
        }
        for (&doc, ts) in docs.iter().zip(&self.buffer) {
            let ts = ts.map_or(i64::MIN, DateTime::into_timestamp_nanos);
            let rank = pack_rank(ts_rank(ts, self.sort), doc_rank(doc, self.sort));
            if rank < self.min_rank {
                continue;
            }
            if self.heap.len() < self.limit {
                self.heap.push(rank);
            } else if let Some(mut worst) = self.heap.peek_mut() {
                if rank < *worst {
                    *worst = rank;
                }
            }
        }
    }

    /// The kept ranks, best first.
    fn harvest(self) -> Vec<u128> {
        self.heap.into_sorted_vec()
    }
}

/// The best timestamp rank a document of the segment may have; `None` when the segment has no
/// timestamp column to tell.
fn best_rank(reader: &SegmentReader, sort: SortOrder) -> Option<u64> {
    let column = reader
        .fast_fields()
        .column_opt::<DateTime>(TIMESTAMP_FIELD)
        .ok()??;
    // Documents without a timestamp rank as `i64::MIN`.
    let sparse = !matches!(
        column.get_cardinality(),
        tantivy::columnar::Cardinality::Full
    );
    let best = match sort {
        SortOrder::Desc => column.max_value().into_timestamp_nanos(),
        SortOrder::Asc if sparse => i64::MIN,
        SortOrder::Asc => column.min_value().into_timestamp_nanos(),
    };
    Some(ts_rank(best, sort))
}

/// The smallest rank a document of segment `ord` of `target` may have to come strictly after
/// `cursor` in the `sort` order.
fn min_rank_after(cursor: &Cursor, sort: SortOrder, target: &str, ord: u32) -> u128 {
    let cursor_ts = u128::from(ts_rank(cursor.timestamp, sort));
    let mut position = target
        .cmp(cursor.target.as_str())
        .then(ord.cmp(&cursor.segment));
    if sort == SortOrder::Desc {
        position = position.reverse();
    }
    match position {
        // A later segment: every document at the cursor's timestamp is after it.
        CmpOrdering::Greater => cursor_ts << 32,
        // An earlier segment: only later timestamps are.
        CmpOrdering::Less => (cursor_ts + 1) << 32,
        // The cursor's own segment: later documents at the same timestamp are too.
        CmpOrdering::Equal => {
            pack_rank(ts_rank(cursor.timestamp, sort), doc_rank(cursor.doc, sort)) + 1
        }
    }
}

fn ts_rank(ts: i64, sort: SortOrder) -> u64 {
    // Flipping the sign bit maps i64 order onto u64 order.
    let ordered = (ts as u64) ^ (1 << 63);
    match sort {
        SortOrder::Asc => ordered,
        SortOrder::Desc => !ordered,
    }
}

fn decode_ts(rank: u64, sort: SortOrder) -> i64 {
    let ordered = match sort {
        SortOrder::Asc => rank,
        SortOrder::Desc => !rank,
    };
    (ordered ^ (1 << 63)) as i64
}

fn doc_rank(doc: DocId, sort: SortOrder) -> u32 {
    match sort {
        SortOrder::Asc => doc,
        SortOrder::Desc => !doc,
    }
}

fn decode_doc(rank: u32, sort: SortOrder) -> DocId {
    doc_rank(rank, sort)
}

fn pack_rank(ts_rank: u64, doc_rank: u32) -> u128 {
    (u128::from(ts_rank) << 32) | u128::from(doc_rank)
}

fn split_rank(rank: u128) -> (u64, u32) {
    ((rank >> 32) as u64, rank as u32)
}

pub(crate) fn internal(target: &str, err: impl std::fmt::Display) -> Error {
    Error::Internal(format!("searching target `{target}`: {err}"))
}

#[cfg(test)]
mod tests;
