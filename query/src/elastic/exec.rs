//! Runs a translated `_search` over the snapshots of one or more streams: exact count, the
//! first `from + size` hits in the requested sort order (timestamp, any numeric, date, boolean
//! or keyword fast field, `_doc`), `search_after`, and aggregations merged across every target.
//!
//! Order: the sort keys, then the position of the document (stream, target, segment, doc) in
//! the direction of the first key, so that equal keys keep a stable order.

use std::cmp::Ordering as CmpOrdering;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tantivy::aggregation::agg_req::Aggregations;
use tantivy::aggregation::intermediate_agg_result::IntermediateAggregationResults;
use tantivy::collector::SegmentCollector;
use tantivy::columnar::{Column, MonotonicallyMappableToU64, StrColumn};
use tantivy::query::{EnableScoring, Query};
use tantivy::schema::FieldType;
use tantivy::{DateTime, DocAddress, DocId, SegmentReader, TantivyDocument};
use trawl_index::{SearchTarget, StreamSnapshot};
use trawl_model::Timestamp;

use super::body::SortKey;
use super::dsl::canonical_field;
use super::error::{EsError, EsResult};
use crate::aggs::AggRun;
use crate::error::Error;
use crate::hit::{list_fields, HitFormat};
use crate::request::QueryLimits;
use crate::search::TIMESTAMP_FIELD;

/// What a sort key reads in one stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum KeySource {
    /// A numeric, date or boolean fast field, read as order-preserving `u64`.
    Num { field: String, kind: NumKind },
    /// A keyword fast field, read as per-segment term ordinals, compared as strings.
    Str { field: String },
    /// The document's position (`_doc`).
    Doc,
    /// A field the stream does not have (`unmapped_type` given): every document misses it.
    Missing,
}

/// How a [`KeySource::Num`] value maps back to JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NumKind {
    Date,
    U64,
    I64,
    F64,
    Bool,
}

/// A resolved sort key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Key {
    pub source: KeySource,
    pub asc: bool,
    pub missing_first: bool,
}

/// How a sort key orders values, whatever it reads: all a part's hits need to be merged with
/// another part's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct KeyOrder {
    pub asc: bool,
    pub missing_first: bool,
}

impl From<&Key> for KeyOrder {
    fn from(key: &Key) -> KeyOrder {
        KeyOrder {
            asc: key.asc,
            missing_first: key.missing_first,
        }
    }
}

/// The orders of a request's sort keys, as [`resolve_sort`] resolves them for any schema.
pub(crate) fn key_orders(sort: &[SortKey]) -> Vec<KeyOrder> {
    let orders: Vec<KeyOrder> = sort
        .iter()
        .filter(|k| k.field != "_score")
        .map(|k| KeyOrder {
            asc: k.asc,
            missing_first: !is_doc_key(&k.field) && k.missing_first,
        })
        .collect();
    if orders.is_empty() {
        return vec![KeyOrder {
            asc: false,
            missing_first: false,
        }];
    }
    orders
}

fn is_doc_key(field: &str) -> bool {
    field == "_doc" || field == "_shard_doc"
}

/// The sort keys of a request for one stream's schema. `_score` keys are dropped (no scores
/// are computed); no keys at all means newest first. A field that is not a fast keyword,
/// number, date or boolean is a 400, as is an unknown field without `unmapped_type`.
pub(crate) fn resolve_sort(sort: &[SortKey], snapshot: &StreamSnapshot) -> EsResult<Vec<Key>> {
    let mut keys = Vec::new();
    for key in sort.iter().filter(|k| k.field != "_score") {
        let source = if is_doc_key(&key.field) {
            KeySource::Doc
        } else {
            let name = canonical_field(&snapshot.schema, &snapshot.stream, &key.field);
            match snapshot.schema.get_field(&name) {
                Err(_) if key.unmapped_ok => KeySource::Missing,
                Err(_) => {
                    return Err(EsError {
                        status: axum::http::StatusCode::BAD_REQUEST,
                        kind: "query_shard_exception",
                        reason: format!("No mapping found for [{}] in order to sort on", key.field),
                        index: Some(snapshot.stream.clone()),
                    })
                }
                Ok(field) => {
                    let entry = snapshot.schema.get_field_entry(field);
                    let kind = match entry.field_type() {
                        FieldType::Date(_) => Some(NumKind::Date),
                        FieldType::U64(_) => Some(NumKind::U64),
                        FieldType::I64(_) => Some(NumKind::I64),
                        FieldType::F64(_) => Some(NumKind::F64),
                        FieldType::Bool(_) => Some(NumKind::Bool),
                        _ => None,
                    };
                    match (kind, entry.field_type()) {
                        _ if !entry.is_fast() => {
                            return Err(EsError::unsupported(format!(
                                "[sort] on field [{}] (a text field; sort on a keyword, number or date)",
                                key.field
                            )))
                        }
                        (Some(kind), _) => KeySource::Num { field: name, kind },
                        (None, FieldType::Str(_)) => KeySource::Str { field: name },
                        _ => {
                            return Err(EsError::unsupported(format!(
                                "[sort] on field [{}] (an object field)",
                                key.field
                            )))
                        }
                    }
                }
            }
        };
        keys.push(Key {
            source,
            asc: key.asc,
            missing_first: !is_doc_key(&key.field) && key.missing_first,
        });
    }
    if keys.is_empty() {
        keys.push(Key {
            source: KeySource::Num {
                field: TIMESTAMP_FIELD.to_string(),
                kind: NumKind::Date,
            },
            asc: false,
            missing_first: false,
        });
    }
    Ok(keys)
}

/// One stream of a search: its snapshot, its query, its sort keys and aggregations.
pub(crate) struct StreamPlan {
    pub snapshot: StreamSnapshot,
    pub query: Box<dyn Query>,
    pub keys: Vec<Key>,
    pub aggs: Option<Aggregations>,
}

/// What the search must produce.
pub(crate) struct ExecOptions {
    /// `from + size`: hits to keep in order.
    pub window: usize,
    /// The `search_after` values, one per sort key.
    pub search_after: Option<Vec<Value>>,
    /// When the search stops visiting segments and answers with what it has.
    pub deadline: Instant,
    /// Time bounds for skipping targets.
    pub start: Option<Timestamp>,
    pub end: Option<Timestamp>,
}

/// A hit: which stream and document, its record, its sort values (as the client sees them,
/// and as they compare with another part's hits).
pub(crate) struct Hit {
    pub stream: String,
    pub record: Map<String, Value>,
    pub sort: Vec<Value>,
    pub keys: Keys,
    /// Where the document is: target id, segment, doc (its `_id` is `<target>.<segment>.<doc>`).
    /// Equal keys are ordered by it (after the stream's place in the request), in the
    /// direction of the first key.
    pub at: (String, u32, DocId),
}

/// The outcome of [`execute`].
pub(crate) struct Outcome {
    pub total: u64,
    pub hits: Vec<Hit>,
    /// The aggregations of every target merged, not yet final (another part's may join them);
    /// `None` when no plan aggregates.
    pub intermediates: Option<IntermediateAggregationResults>,
    pub timed_out: bool,
    /// Targets searched, reported as shards.
    pub shards: usize,
}

/// A key value: `Num` for numbers and local keyword ordinals, `Str` for keywords once
/// resolved, `Doc` for `_doc` (target id, then segment and doc packed). A part's hits carry
/// them to the root that merges parts, so they travel (postcard).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) enum Val {
    Num(u64),
    Str(String),
    Doc(String, u64),
}

/// A document's values of the sort keys, in the keys' order.
pub(crate) type Keys = Vec<Option<Val>>;

/// Anything that orders like a sort key.
pub(crate) trait Ordered {
    fn order(&self) -> KeyOrder;
}

impl Ordered for Key {
    fn order(&self) -> KeyOrder {
        KeyOrder::from(self)
    }
}

impl Ordered for KeyOrder {
    fn order(&self) -> KeyOrder {
        *self
    }
}

pub(crate) fn cmp_keys<K: Ordered>(keys: &[K], a: &Keys, b: &Keys) -> CmpOrdering {
    for (key, (x, y)) in keys.iter().zip(a.iter().zip(b.iter())) {
        let KeyOrder { asc, missing_first } = key.order();
        let ord = match (x, y) {
            (None, None) => CmpOrdering::Equal,
            (None, Some(_)) if missing_first => CmpOrdering::Less,
            (None, Some(_)) => CmpOrdering::Greater,
            (Some(_), None) if missing_first => CmpOrdering::Greater,
            (Some(_), None) => CmpOrdering::Less,
            (Some(x), Some(y)) if asc => x.cmp(y),
            (Some(x), Some(y)) => y.cmp(x),
        };
        if ord != CmpOrdering::Equal {
            return ord;
        }
    }
    CmpOrdering::Equal
}

/// Runs the plans; the first error wins. Blocking and CPU-heavy.
pub(crate) fn execute(
    plans: &[StreamPlan],
    options: &ExecOptions,
    limits: &QueryLimits,
) -> EsResult<Outcome> {
    let Some(first) = plans.first() else {
        return Ok(Outcome {
            total: 0,
            hits: Vec::new(),
            intermediates: None,
            timed_out: false,
            shards: 0,
        });
    };
    let keys = &first.keys;
    let after = options
        .search_after
        .as_ref()
        .map(|values| after_keys(keys, values))
        .transpose()?;
    let runs: Vec<Option<AggRun>> = plans
        .iter()
        .map(|p| {
            p.aggs
                .as_ref()
                .map(|a| AggRun::new(a, limits, p.snapshot.tokenizers.clone()))
        })
        .collect();
    let mut targets: Vec<(usize, &SearchTarget)> = plans
        .iter()
        .enumerate()
        .flat_map(|(i, p)| {
            p.snapshot
                .targets
                .iter()
                .filter(|t| t.overlaps(options.start, options.end))
                .map(move |t| (i, t))
        })
        .collect();
    targets.sort_by(|a, b| (a.0, &a.1.id).cmp(&(b.0, &b.1.id)));

    let timed_out = AtomicBool::new(false);
    let job = Job {
        plans,
        runs: &runs,
        options,
        after: after.as_ref(),
        timed_out: &timed_out,
    };
    let visit: Vec<usize> = (0..targets.len()).collect();
    let results = crate::search::parallel_visit(&targets, &visit, limits.parallelism, |t| {
        search_target(&job, t.0, t.1)
    })?;

    let mut total = 0u64;
    let mut candidates: Vec<(Keys, usize, u32, DocId)> = Vec::new();
    let mut intermediates = Vec::new();
    for (pos, result) in results.into_iter().enumerate() {
        total += result.count;
        for (keys, segment, doc) in result.hits {
            candidates.push((keys, pos, segment, doc));
        }
        if let Some(agg) = result.aggs {
            intermediates.push(agg);
        }
    }
    let first_asc = keys.first().is_none_or(|k| k.asc);
    candidates.sort_by(|a, b| {
        cmp_keys(keys, &a.0, &b.0).then_with(|| {
            let ord = (a.1, a.2, a.3).cmp(&(b.1, b.2, b.3));
            if first_asc {
                ord
            } else {
                ord.reverse()
            }
        })
    });
    candidates.truncate(options.window);

    let hits = fetch_hits(plans, &targets, keys, candidates)?;

    let intermediates = if runs.iter().flatten().next().is_some() {
        Some(AggRun::merge(intermediates).map_err(EsError::from)?)
    } else {
        None
    };
    Ok(Outcome {
        total,
        hits,
        intermediates,
        timed_out: timed_out.load(Ordering::Relaxed),
        shards: targets.len(),
    })
}

/// The stored documents of the hits kept, in their order, each rendered in its stream's
/// format (built once a stream) with its sort values and an `_id` of target, segment and doc.
fn fetch_hits(
    plans: &[StreamPlan],
    targets: &[(usize, &SearchTarget)],
    keys: &[Key],
    candidates: Vec<(Keys, usize, u32, DocId)>,
) -> EsResult<Vec<Hit>> {
    let mut formats: Vec<Option<HitFormat>> = plans.iter().map(|_| None).collect();
    let mut hits = Vec::with_capacity(candidates.len());
    for (values, pos, segment, doc) in candidates {
        let (plan_index, target) = targets[pos];
        let plan = &plans[plan_index];
        let format = match &mut formats[plan_index] {
            Some(format) => format,
            slot => slot.insert(
                HitFormat::new(
                    &plan.snapshot.schema,
                    None,
                    &list_fields(&plan.snapshot.stream),
                )
                .map_err(EsError::from)?,
            ),
        };
        let stored: TantivyDocument = target
            .searcher
            .doc(DocAddress::new(segment, doc))
            .map_err(|e| internal(&target.id, e))?;
        hits.push(Hit {
            stream: plan.snapshot.stream.clone(),
            at: (target.id.clone(), segment, doc),
            record: format.to_json(&stored),
            sort: keys
                .iter()
                .zip(values.iter().cloned())
                .map(|(key, v)| sort_value(key, v))
                .collect(),
            keys: values,
        });
    }
    Ok(hits)
}

/// Shared by the workers.
struct Job<'a> {
    plans: &'a [StreamPlan],
    runs: &'a [Option<AggRun>],
    options: &'a ExecOptions,
    after: Option<&'a Keys>,
    timed_out: &'a AtomicBool,
}

#[derive(Default)]
struct TargetResult {
    count: u64,
    hits: Vec<(Keys, u32, DocId)>,
    aggs: Option<IntermediateAggregationResults>,
}

/// A sort key's reader over one segment.
enum KeyReader {
    Num(Column<u64>),
    Str(StrColumn),
    Doc,
    Missing,
}

impl KeyReader {
    fn open(source: &KeySource, reader: &SegmentReader) -> tantivy::Result<KeyReader> {
        let ff = reader.fast_fields();
        Ok(match source {
            KeySource::Num { field, kind } => {
                let column = match kind {
                    NumKind::Date => ff
                        .column_opt::<DateTime>(field)?
                        .map(Column::to_u64_monotonic),
                    NumKind::U64 => ff.column_opt::<u64>(field)?,
                    NumKind::I64 => ff.column_opt::<i64>(field)?.map(Column::to_u64_monotonic),
                    NumKind::F64 => ff.column_opt::<f64>(field)?.map(Column::to_u64_monotonic),
                    NumKind::Bool => ff.column_opt::<bool>(field)?.map(Column::to_u64_monotonic),
                };
                column.map_or(KeyReader::Missing, KeyReader::Num)
            }
            KeySource::Str { field } => ff.str(field)?.map_or(KeyReader::Missing, KeyReader::Str),
            KeySource::Doc => KeyReader::Doc,
            KeySource::Missing => KeyReader::Missing,
        })
    }

    /// The document's value: the smallest for ascending keys, the largest for descending
    /// (Elasticsearch's default `mode` for multi-valued fields).
    fn read(&self, doc: DocId, segment: u32, asc: bool, target: &str) -> Option<Val> {
        let pick =
            |values: &mut dyn Iterator<Item = u64>| if asc { values.min() } else { values.max() };
        match self {
            KeyReader::Num(column) => pick(&mut column.values_for_doc(doc)).map(Val::Num),
            KeyReader::Str(column) => pick(&mut column.term_ords(doc)).map(Val::Num),
            KeyReader::Doc => Some(Val::Doc(target.to_string(), pack(segment, doc))),
            KeyReader::Missing => None,
        }
    }

    /// A local value as it compares across segments and targets.
    fn globalize(&self, value: Option<Val>) -> Option<Val> {
        match (self, value) {
            (KeyReader::Str(column), Some(Val::Num(ord))) => {
                let mut text = String::new();
                match column.ord_to_str(ord, &mut text) {
                    Ok(true) => Some(Val::Str(text)),
                    _ => None,
                }
            }
            (_, value) => value,
        }
    }
}

fn pack(segment: u32, doc: DocId) -> u64 {
    (u64::from(segment) << 32) | u64::from(doc)
}

fn search_target(
    job: &Job<'_>,
    plan_index: usize,
    target: &SearchTarget,
) -> EsResult<TargetResult> {
    let plan = &job.plans[plan_index];
    let mut result = TargetResult::default();
    if Instant::now() >= job.options.deadline {
        job.timed_out.store(true, Ordering::Relaxed);
        return Ok(result);
    }
    let searcher = &target.searcher;
    let weight =
        plan.query
            .weight(EnableScoring::disabled_from_searcher(searcher))
            .map_err(|err| match err {
                tantivy::TantivyError::InvalidArgument(m)
                | tantivy::TantivyError::SchemaError(m) => EsError::parsing(m),
                tantivy::TantivyError::FieldNotFound(f) => {
                    EsError::parsing(format!("field [{f}] does not exist"))
                }
                other => internal(&target.id, other),
            })?;
    let window = job.options.window;
    let keys = &plan.keys;
    let run = job.runs[plan_index].as_ref();
    let has_str_key = keys
        .iter()
        .any(|k| matches!(k.source, KeySource::Str { .. }));
    let mut agg_parts = Vec::new();
    for (ord, reader) in searcher.segment_readers().iter().enumerate() {
        if Instant::now() >= job.options.deadline {
            job.timed_out.store(true, Ordering::Relaxed);
            break;
        }
        let segment = u32::try_from(ord).map_err(|_| internal(&target.id, "too many segments"))?;
        if window == 0 && run.is_none() {
            result.count += u64::from(weight.count(reader).map_err(|e| internal(&target.id, e))?);
            continue;
        }
        let readers = keys
            .iter()
            .map(|k| KeyReader::open(&k.source, reader))
            .collect::<tantivy::Result<Vec<_>>>()
            .map_err(|e| internal(&target.id, e))?;
        let mut collector = run
            .map(|r| r.segment_collector(segment, reader))
            .transpose()
            .map_err(EsError::from)?;
        let mut top = TopK::new(keys, window);
        let mut count = 0u64;
        crate::search::for_each_live_block(weight.as_ref(), reader, |docs| {
            count += docs.len() as u64;
            if let Some(c) = collector.as_mut() {
                c.collect_block(docs);
            }
            if window == 0 {
                return;
            }
            for &doc in docs {
                let values: Keys = readers
                    .iter()
                    .zip(keys)
                    .map(|(r, k)| r.read(doc, segment, k.asc, &target.id))
                    .collect();
                if let Some(after) = job.after {
                    if cmp_keys(keys, &values, after) != CmpOrdering::Greater {
                        continue;
                    }
                }
                top.push(values, doc);
            }
        })
        .map_err(|e| internal(&target.id, e))?;
        result.count += count;
        for (values, doc) in top.finish() {
            let values = if has_str_key {
                readers
                    .iter()
                    .zip(values)
                    .map(|(r, v)| r.globalize(v))
                    .collect()
            } else {
                values
            };
            result.hits.push((values, segment, doc));
        }
        if let Some(c) = collector {
            agg_parts.push(
                c.harvest()
                    .map_err(crate::aggs::map_agg_error)
                    .map_err(EsError::from)?,
            );
        }
    }
    if run.is_some() {
        result.aggs = Some(AggRun::merge(agg_parts).map_err(EsError::from)?);
    }
    Ok(result)
}

/// The best `k` documents of a segment under the sort keys (doc id breaks ties in the
/// direction of the first key).
struct TopK<'a> {
    keys: &'a [Key],
    k: usize,
    items: Vec<(Keys, DocId)>,
    /// The worst item kept after the last compaction: anything not better is dropped.
    bar: Option<(Keys, DocId)>,
}

impl<'a> TopK<'a> {
    fn new(keys: &'a [Key], k: usize) -> TopK<'a> {
        TopK {
            keys,
            k,
            items: Vec::new(),
            bar: None,
        }
    }

    fn cmp(&self, a: &(Keys, DocId), b: &(Keys, DocId)) -> CmpOrdering {
        let first_asc = self.keys.first().is_none_or(|k| k.asc);
        cmp_keys(self.keys, &a.0, &b.0).then_with(|| {
            if first_asc {
                a.1.cmp(&b.1)
            } else {
                b.1.cmp(&a.1)
            }
        })
    }

    fn push(&mut self, keys: Keys, doc: DocId) {
        let item = (keys, doc);
        if let Some(bar) = &self.bar {
            if self.cmp(&item, bar) != CmpOrdering::Less {
                return;
            }
        }
        self.items.push(item);
        if self.items.len() >= self.k.saturating_mul(2).max(64) {
            self.compact();
        }
    }

    fn compact(&mut self) {
        let mut items = std::mem::take(&mut self.items);
        items.sort_by(|a, b| self.cmp(a, b));
        items.truncate(self.k);
        if items.len() == self.k {
            self.bar = items.last().cloned();
        }
        self.items = items;
    }

    fn finish(mut self) -> Vec<(Keys, DocId)> {
        self.compact();
        self.items
    }
}

/// The `search_after` values as key values; a keyword key cannot continue (its values are
/// compared per segment by ordinal), which is a 400.
fn after_keys(keys: &[Key], values: &[Value]) -> EsResult<Keys> {
    if values.len() != keys.len() {
        return Err(EsError::illegal_argument(format!(
            "search_after has {} value(s) but sort has {}",
            values.len(),
            keys.len()
        )));
    }
    keys.iter()
        .zip(values)
        .map(|(key, value)| {
            if value.is_null() {
                return Ok(None);
            }
            let bad = || {
                EsError::illegal_argument(format!(
                    "search_after value {value} does not fit its sort key"
                ))
            };
            Ok(Some(match &key.source {
                KeySource::Num { kind, .. } => Val::Num(match kind {
                    NumKind::Date => match value {
                        Value::String(text) => Timestamp::parse_rfc3339(text)
                            .map_err(|_| bad())?
                            .0
                            .to_u64(),
                        _ => value.as_i64().ok_or_else(bad)?.to_u64(),
                    },
                    NumKind::U64 => value.as_u64().ok_or_else(bad)?,
                    NumKind::I64 => value.as_i64().ok_or_else(bad)?.to_u64(),
                    NumKind::F64 => value.as_f64().ok_or_else(bad)?.to_u64(),
                    NumKind::Bool => match value {
                        Value::Bool(b) => u64::from(*b),
                        _ => value.as_u64().filter(|n| *n <= 1).ok_or_else(bad)?,
                    },
                }),
                KeySource::Str { .. } => return Err(EsError::unsupported(
                    "[search_after] with a keyword sort key (sort by a timestamp, number or _doc)",
                )),
                KeySource::Doc => {
                    let text = value.as_str().ok_or_else(bad)?;
                    let (target, rest) = text
                        .rsplit_once('/')
                        .and_then(|(head, doc)| {
                            let (target, segment) = head.rsplit_once('/')?;
                            Some((
                                target,
                                (segment.parse::<u32>().ok()?, doc.parse::<u32>().ok()?),
                            ))
                        })
                        .ok_or_else(bad)?;
                    Val::Doc(target.to_string(), pack(rest.0, rest.1))
                }
                KeySource::Missing => return Ok(None),
            }))
        })
        .collect()
}

/// A key value as Elasticsearch shows it in a hit's `sort`: dates in nanoseconds (the fields
/// are `date_nanos`), numbers as numbers, booleans as 0/1, `_doc` as `target/segment/doc`.
fn sort_value(key: &Key, value: Option<Val>) -> Value {
    match (&key.source, value) {
        (_, None) => Value::Null,
        (KeySource::Num { kind, .. }, Some(Val::Num(n))) => match kind {
            NumKind::Date | NumKind::I64 => Value::from(i64::from_u64(n)),
            NumKind::U64 | NumKind::Bool => Value::from(n),
            NumKind::F64 => Value::from(f64::from_u64(n)),
        },
        (_, Some(Val::Str(s))) => Value::String(s),
        (_, Some(Val::Doc(target, packed))) => Value::String(format!(
            "{target}/{}/{}",
            packed >> 32,
            packed & 0xffff_ffff
        )),
        (_, Some(Val::Num(n))) => Value::from(n),
    }
}

fn internal(target: &str, err: impl std::fmt::Display) -> EsError {
    EsError::from(Error::Internal(format!(
        "searching target `{target}`: {err}"
    )))
}
