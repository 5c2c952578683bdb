//! A search in parts. Each part (one node's streams, or a searcher's own part of the shared
//! tier) plans and runs the search over what it holds and answers an [`EsPart`]: its count,
//! its first `from + size` hits rendered with their sort keys, its aggregations still
//! intermediate, and the names of every stream it holds. [`answer`] merges parts into the
//! Elasticsearch answer: hits in the global order, totals summed, aggregations merged then
//! finished once. One node's search is the case of one part.
//!
//! A searcher sends the request to every indexer as a [`LeafRequest`] (`POST
//! /api/v1/_leaf/elastic/search`); the part travels back in postcard, JSON values as text.

use std::collections::BTreeMap;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use tantivy::aggregation::agg_req::Aggregations;
use tantivy::aggregation::intermediate_agg_result::IntermediateAggregationResults;
use tantivy::schema::Schema;
use trawl_index::StreamSnapshot;
use trawl_model::Timestamp;

use super::body::{
    fix_agg_results, rewrite_aggs, AggFixes, FieldRequest, SearchBody, TrackTotalHits,
};
use super::dsl::{canonical_field, time_bounds, Translator};
use super::error::{EsError, EsResult};
use super::exec::{
    cmp_keys, execute, key_orders, resolve_sort, ExecOptions, Hit, Keys, StreamPlan,
};
use super::mapping::Chosen;
use crate::access::Scope;
use crate::aggs::AggRun;
use crate::error::Error;
use crate::request::QueryLimits;

/// Path of the part of an Elasticsearch search every indexer answers a searcher.
pub const LEAF_ELASTIC_SEARCH_PATH: &str = "/api/v1/_leaf/elastic/search";

/// Path of the schemas of named streams every indexer answers a searcher:
/// `{"streams": [names]}` in, `{name: schema}` out for the streams it holds.
pub const LEAF_ELASTIC_SCHEMAS_PATH: &str = "/api/v1/_leaf/elastic/schemas";

/// How one search answers beyond its body: `hits.total` as a number or an object, and whether
/// index names that are no stream are skipped (`ignore_unavailable`).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Answering {
    pub total_as_int: bool,
    pub ignore_unavailable: bool,
}

/// A searcher's request for an indexer's part of a search: the request as the client sent it,
/// the searcher's clock (so that every part reads `now` alike), the caller's scope and the
/// splits the searcher searched itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct LeafRequest {
    pub index: String,
    pub body: Value,
    pub params: BTreeMap<String, String>,
    /// Nanoseconds since the epoch.
    pub now: i64,
    #[serde(default)]
    pub scope: Option<Scope>,
    /// What the searcher covers itself (`exclude_splits`, `exclude_seen`).
    #[serde(flatten)]
    pub excluded: crate::remote::Excluded,
}

/// What one part of a search found.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct EsPart {
    /// Every stream the part holds, for resolving index expressions over all parts.
    pub names: Vec<String>,
    pub total: u64,
    /// Targets searched (splits and hot indexes), reported as shards.
    pub shards: u64,
    pub timed_out: bool,
    /// The part's first `from + size` hits in order.
    pub hits: Vec<PartHit>,
    pub aggs: Option<PartAggs>,
}

/// A hit rendered for the client, with the sort keys it merges by and, for equal keys, its
/// stream and place (target id, segment, doc).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct PartHit {
    pub keys: Keys,
    pub stream: String,
    pub at: (String, u32, u32),
    #[serde(with = "json_text")]
    pub hit: Value,
}

/// A part's aggregations: the request as its first stream rewrote it, the fixes of their
/// results, and the results still intermediate.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct PartAggs {
    #[serde(with = "json_text")]
    pub rewritten: Value,
    pub fixes: AggFixes,
    pub results: IntermediateAggregationResults,
}

/// JSON values as text: postcard is not self-describing.
mod json_text {
    use serde::{Deserialize, Deserializer, Serializer};
    use serde_json::Value;

    pub fn serialize<S: Serializer>(value: &Value, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&value.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Value, D::Error> {
        let text = String::deserialize(deserializer)?;
        serde_json::from_str(&text).map_err(serde::de::Error::custom)
    }
}

/// The time bounds a request's query implies, resolved at `now`.
pub(crate) fn bounds(
    parsed: &SearchBody,
    now: Timestamp,
) -> (Option<Timestamp>, Option<Timestamp>) {
    time_bounds(parsed.query.as_ref(), now)
}

/// Runs one part: the `chosen` streams this part holds (`snapshots` gives each one's
/// targets, `None` for one it does not hold), their hits rendered. Blocking and CPU-heavy.
#[allow(clippy::too_many_arguments)]
pub(crate) fn search_part(
    snapshots: &dyn Fn(&str) -> EsResult<Option<StreamSnapshot>>,
    names: Vec<String>,
    chosen: &[Chosen],
    parsed: &SearchBody,
    now: Timestamp,
    deadline: Instant,
    scope: &Scope,
    limits: &QueryLimits,
) -> EsResult<EsPart> {
    let streams: Vec<String> = chosen.iter().map(|c| c.stream.clone()).collect();
    let (start, end) = bounds(parsed, now);
    let (plans, rewrite) = plan_streams(snapshots, &streams, now, parsed, scope)?;
    let options = ExecOptions {
        window: parsed.from + parsed.size,
        search_after: parsed.search_after.clone(),
        deadline,
        start,
        end,
    };
    let outcome = execute(&plans, &options, limits)?;
    let schemas: Vec<(String, Schema)> = plans
        .iter()
        .map(|p| (p.snapshot.stream.clone(), p.snapshot.schema.clone()))
        .collect();
    let hits = outcome
        .hits
        .into_iter()
        .map(|mut hit| {
            let shaped = chosen.iter().any(|c| c.routed && c.stream == hit.stream);
            let keys = std::mem::take(&mut hit.keys);
            let (stream, at) = (hit.stream.clone(), hit.at.clone());
            PartHit {
                keys,
                stream,
                at,
                hit: render_hit(hit, parsed, &schemas, shaped),
            }
        })
        .collect();
    let aggs = match (outcome.intermediates, rewrite) {
        (Some(results), Some((rewritten, fixes))) => Some(PartAggs {
            rewritten,
            fixes,
            results,
        }),
        _ => None,
    };
    Ok(EsPart {
        names,
        total: outcome.total,
        shards: outcome.shards as u64,
        timed_out: outcome.timed_out,
        hits,
        aggs,
    })
}

/// A part that could not answer: who, and why (shown in `_shards.failures`).
#[derive(Debug, Clone)]
pub(crate) struct FailedPart {
    pub node: String,
    pub reason: String,
}

/// The Elasticsearch answer of `parts` merged: hits in the order of the request's sort keys,
/// from `from` on (equal keys in the order of their streams in `streams`, the streams the
/// request names, then of their target id, segment and doc, in the direction of the first
/// key: the order one node holding every target gives them); totals and shards summed;
/// aggregations merged, finished as the first part that aggregated rewrote them. Parts that
/// failed count as failed shards.
pub(crate) fn answer(
    parts: Vec<EsPart>,
    streams: &[String],
    failed: &[FailedPart],
    parsed: &SearchBody,
    answering: Answering,
    started: Instant,
    limits: &QueryLimits,
) -> EsResult<Value> {
    let orders = key_orders(&parsed.sort);
    let first_asc = orders.first().is_none_or(|o| o.asc);
    let mut total = 0u64;
    let mut shards = 0u64;
    let mut timed_out = false;
    let mut candidates: Vec<PartHit> = Vec::new();
    let mut finishing: Option<Rewrite> = None;
    let mut results = Vec::new();
    for part in parts {
        total += part.total;
        shards += part.shards;
        timed_out |= part.timed_out;
        candidates.extend(part.hits);
        if let Some(aggs) = part.aggs {
            finishing.get_or_insert((aggs.rewritten, aggs.fixes));
            results.push(aggs.results);
        }
    }
    let place = |hit: &PartHit| streams.iter().position(|s| *s == hit.stream);
    candidates.sort_by(|a, b| {
        cmp_keys(&orders, &a.keys, &b.keys).then_with(|| {
            let ord = (place(a), &a.at).cmp(&(place(b), &b.at));
            if first_asc {
                ord
            } else {
                ord.reverse()
            }
        })
    });
    let hits: Vec<Value> = candidates
        .into_iter()
        .take(parsed.from + parsed.size)
        .skip(parsed.from)
        .map(|hit| hit.hit)
        .collect();
    let mut hits_object = Map::new();
    if let Some(total) = hits_total(&parsed.track_total_hits, total, answering) {
        hits_object.insert("total".into(), total);
    }
    hits_object.insert("max_score".into(), Value::Null);
    hits_object.insert("hits".into(), Value::Array(hits));
    let failures: Vec<Value> = failed
        .iter()
        .map(|f| {
            json!({
                "shard": -1,
                "index": null,
                "node": f.node,
                "reason": {"type": "node_unavailable_exception", "reason": f.reason},
            })
        })
        .collect();
    let mut shards_object = json!({
        "total": shards + failed.len() as u64,
        "successful": shards,
        "skipped": 0,
        "failed": failed.len(),
    });
    if !failures.is_empty() {
        shards_object["failures"] = Value::Array(failures);
    }
    let mut answer = json!({
        "took": u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        "timed_out": timed_out,
        "_shards": shards_object,
        "hits": hits_object,
    });
    match finishing {
        Some((rewritten, fixes)) => {
            let aggs = parse_rewritten(rewritten)?;
            let run = AggRun::new(
                &aggs,
                limits,
                tantivy::tokenizer::TokenizerManager::default(),
            );
            let merged = AggRun::merge(results).map_err(EsError::from)?;
            let mut aggregations = run.finish(merged).map_err(EsError::from)?;
            fix_agg_results(&mut aggregations, &fixes);
            answer["aggregations"] = aggregations;
        }
        // No stream to aggregate over (a pattern that matched nothing).
        None if parsed.aggs.is_some() => answer["aggregations"] = json!({}),
        None => {}
    }
    Ok(answer)
}

/// One plan a stream: its snapshot over the time bounds, the query translated and restricted
/// to the caller's namespaces, the sort keys and the aggregations rewritten for its schema.
/// Also the aggregations as the first stream rewrote them, with the fixes their results need
/// (every stream of one search is asked the same aggregations). Streams without a snapshot
/// (`None`: this part holds none of them) are left out.
fn plan_streams(
    snapshots: &dyn Fn(&str) -> EsResult<Option<StreamSnapshot>>,
    streams: &[String],
    now: Timestamp,
    parsed: &SearchBody,
    scope: &Scope,
) -> EsResult<(Vec<StreamPlan>, Option<Rewrite>)> {
    let mut plans = Vec::with_capacity(streams.len());
    let mut rewrite = None;
    for stream in streams {
        let Some(snapshot) = snapshots(stream)? else {
            continue;
        };
        let translator = Translator::new(&snapshot, now);
        // The caller's namespaces, whatever the request's query says.
        let query = scope.restrict(
            &snapshot.schema,
            translator.translate(parsed.query.as_ref())?.query,
        );
        let keys = resolve_sort(&parsed.sort, &snapshot)?;
        let aggs = match &parsed.aggs {
            Some(aggs) => {
                let (rewritten, agg_fixes) = rewrite_aggs(aggs, &snapshot.schema, stream, now.0)?;
                let parsed = parse_rewritten(rewritten.clone())?;
                rewrite.get_or_insert((rewritten, agg_fixes));
                Some(parsed)
            }
            None => None,
        };
        plans.push(StreamPlan {
            snapshot,
            query,
            keys,
            aggs,
        });
    }
    Ok((plans, rewrite))
}

/// Aggregations as rewritten for one stream's schema, and the fixes of their results.
type Rewrite = (Value, AggFixes);

/// Aggregations as rewritten for a schema, parsed for tantivy.
fn parse_rewritten(rewritten: Value) -> EsResult<Aggregations> {
    crate::aggs::parse_aggs(rewritten).map_err(|err| match err {
        Error::InvalidAggregation(m) => EsError::parsing(format!("[aggs] {m}")),
        other => EsError::from(other),
    })
}

/// `hits.total` as the request asked (`track_total_hits`): none, a bare number for the clients
/// that expect one (go-elasticsearch before 7, see [`Answering`]), or `{value, relation}` with
/// `gte` once a limit is passed.
pub(crate) fn hits_total(
    track: &TrackTotalHits,
    total: u64,
    answering: Answering,
) -> Option<Value> {
    match track {
        TrackTotalHits::Off => None,
        _ if answering.total_as_int => Some(json!(total)),
        TrackTotalHits::UpTo(limit) if total > *limit => {
            Some(json!({"value": limit, "relation": "gte"}))
        }
        TrackTotalHits::Exact | TrackTotalHits::UpTo(_) => {
            Some(json!({"value": total, "relation": "eq"}))
        }
    }
}

/// A hit in Elasticsearch's shape: `_source` filtered, `fields` for `docvalue_fields` and
/// `fields` under the names requested, `sort` when the client sorted. `shaped`: the stream was
/// named through an index pattern, and `_source` has the KubeSphere writers' names.
fn render_hit(hit: Hit, parsed: &SearchBody, schemas: &[(String, Schema)], shaped: bool) -> Value {
    let schema = schemas
        .iter()
        .find(|(name, _)| *name == hit.stream)
        .map(|(_, s)| s);
    let mut out = Map::new();
    out.insert("_index".into(), Value::String(hit.stream.clone()));
    let (target, segment, doc) = &hit.at;
    out.insert(
        "_id".into(),
        Value::String(format!("{target}.{segment}.{doc}")),
    );
    out.insert("_score".into(), Value::Null);
    if let Some(schema) = schema {
        if parsed.source.enabled {
            let source: Map<String, Value> = if shaped {
                trawl_model::shippers::kubesphere_source(&hit.stream, &hit.record)
                    .into_iter()
                    .filter(|(name, _)| parsed.source.keeps_as_written(name))
                    .collect()
            } else {
                hit.record
                    .iter()
                    .filter(|(name, _)| parsed.source.keeps(name, schema, &hit.stream))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            };
            out.insert("_source".into(), Value::Object(source));
        }
        let fields = requested_fields(&hit.record, &parsed.fields, schema, &hit.stream);
        if !fields.is_empty() {
            out.insert("fields".into(), Value::Object(fields));
        }
    }
    if parsed.explicit_sort {
        out.insert("sort".into(), Value::Array(hit.sort));
    }
    Value::Object(out)
}

/// `fields` / `docvalue_fields` of one hit: each requested name (patterns allowed) with its
/// values as an array; dates formatted as asked (`epoch_millis`, `epoch_second`, RFC 3339).
fn requested_fields(
    record: &Map<String, Value>,
    requests: &[FieldRequest],
    schema: &Schema,
    stream: &str,
) -> Map<String, Value> {
    let mut out = Map::new();
    for request in requests {
        let matches: Vec<(String, &Value)> = if request.name.contains('*') {
            record
                .iter()
                .filter(|(k, _)| super::body::glob_match(&request.name, k))
                .map(|(k, v)| (k.clone(), v))
                .collect()
        } else {
            let name = canonical_field(schema, stream, &request.name);
            record
                .get(&name)
                .map(|v| vec![(request.name.clone(), v)])
                .unwrap_or_default()
        };
        for (name, value) in matches {
            let values: Vec<Value> = match value {
                Value::Array(items) => items.clone(),
                other => vec![other.clone()],
            };
            let values = values
                .into_iter()
                .map(|v| format_value(v, request.format.as_deref()))
                .collect();
            out.insert(name, Value::Array(values));
        }
    }
    out
}

/// A date string in an epoch format when one is asked for; anything else unchanged.
fn format_value(value: Value, format: Option<&str>) -> Value {
    let Some(format @ ("epoch_millis" | "epoch_second")) = format else {
        return value;
    };
    let Some(nanos) = value
        .as_str()
        .and_then(|s| Timestamp::parse_rfc3339(s).ok())
        .map(|t| t.0)
    else {
        return value;
    };
    if format == "epoch_millis" {
        Value::from(nanos.div_euclid(1_000_000))
    } else {
        Value::from(nanos.div_euclid(1_000_000_000))
    }
}
