//! The Elasticsearch-compatible query API under `/api/v1/_elastic`: what Grafana's
//! Elasticsearch data source, Kibana-style tools and the official clients need to connect and
//! search a stream as if it were an index.
//!
//! ```text
//! routes.rs    GET /  _search  _msearch  _count  _mapping  _field_caps  _cat/indices
//!              _cluster/health  /{index}; content types and the X-Elastic-Product header
//! body.rs      the search body: size, from, sort, _source, fields, search_after, aggs rewrite
//! dsl/         the query DSL -> tantivy queries (one stream's schema); time bounds for pruning
//! datemath.rs  epoch_millis, ISO dates, `now-15m/m`, `||` anchors, range rounding
//! exec.rs      search over one or more streams: count, sorted top hits, aggregations
//! part.rs      a search in parts (one node's, each indexer's for a searcher) and their merge
//! mapping.rs   Elasticsearch field types, _field_caps, _cat/indices, index patterns
//! error.rs     {"error": {"root_cause", "type", "reason"}, "status"} (the body itself is
//!              trawl_model::elastic's, shared with the indexer's _bulk)
//! ```
//!
//! Differences from Elasticsearch, by design: hits have no score (`_score` and `max_score`
//! are null, sorting by `_score` is the default order: newest first); `_id`s are positions
//! (`<split>.<segment>.<doc>`), not stable identities; `_source` holds the stream's own flat
//! fields (`timestamp`, `namespace`, ...), while `@timestamp`, `.keyword` sub-fields and
//! Fluent Bit / Vector / Filebeat `kubernetes.*` names are accepted wherever a field is named
//! and returned under the requested name in `fields`/`docvalue_fields`. Constructs Trawl
//! does not implement are refused with a 400 naming them, never ignored.

mod body;
mod datemath;
mod dsl;
mod error;
mod exec;
mod mapping;
pub(crate) mod part;
mod routes;

use trawl_index::StreamSource;

pub(crate) use body::SearchBody;
pub use error::{EsError, EsResult};
pub(crate) use mapping::{resolve_indices, Chosen};
pub use part::{LEAF_ELASTIC_SCHEMAS_PATH, LEAF_ELASTIC_SEARCH_PATH};
pub(crate) use routes::{router_of, within_budget, Backend, SearchCall};
pub use routes::{routes, ElasticSettings};

/// Parses a `range` bound of a date field as a `range` query does: `value` (a string or a
/// number) in `format` (`||`-separated alternatives; the default without one), with date math
/// and `time_zone` applied, `now` the request's clock in nanoseconds. Answers the period the
/// bound denotes, `[start, next)` in nanoseconds. Anything unparsable is a 400-class
/// [`EsError`], never a panic (the fuzz target `es_datemath` checks it).
pub fn parse_date_bound(
    value: &serde_json::Value,
    format: Option<&str>,
    time_zone: Option<&str>,
    now: i64,
) -> EsResult<(i64, i64)> {
    let zone = match time_zone {
        Some(zone) => datemath::parse_time_zone(zone)?,
        None => datemath::parse_time_zone("UTC")?,
    };
    let period = datemath::parse_date(value, format, now, zone)?;
    Ok((period.start, period.next))
}

/// A stream as `_cat/indices` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexInfo {
    /// The stream name.
    pub name: String,
    /// Documents searchable now.
    pub docs: u64,
    /// Index bytes on disk.
    pub bytes: u64,
}

/// Every stream of `source` as `_cat/indices` shows it, in name order.
fn indices<S: StreamSource + ?Sized>(source: &S) -> Vec<IndexInfo> {
    let mut infos: Vec<IndexInfo> = source
        .stream_stats()
        .into_iter()
        .map(|s| IndexInfo {
            name: s.name,
            docs: s.docs,
            bytes: s.bytes,
        })
        .collect();
    infos.sort_by(|a, b| a.name.cmp(&b.name));
    infos
}

#[cfg(test)]
mod tests;
