//! A search request as the client sends it (query string or JSON body), its validation into a
//! [`ParsedRequest`], the limits that validation enforces, and the paging cursor.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tantivy::aggregation::agg_req::Aggregations;
use trawl_config::{QueryConfig, MAX_LIMIT_CEILING};
use trawl_model::Timestamp;

use crate::access::Scope;
use crate::error::{Error, Result};

/// The JSON body of a POST route: an empty (or all-whitespace) body is `T::default()`, any
/// content type is read as JSON (curl -d sends form encoding). A body past the route's limit
/// is [`Error::PayloadTooLarge`]; one that is not `T` an [`Error::InvalidArgument`].
pub(crate) fn json_or_default<T: DeserializeOwned + Default>(
    body: std::result::Result<Bytes, BytesRejection>,
) -> Result<T> {
    let body = body?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(&body)
        .map_err(|err| Error::InvalidArgument(format!("request body: {err}")))
}

/// Limits applied to every search, from the `[query]` configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryLimits {
    /// `limit` of a request that gives none.
    pub default_limit: usize,
    /// Largest `limit` accepted; more is an [`Error::InvalidArgument`]. Never above 10,000.
    pub max_limit: usize,
    /// Time budget of one search; a request's `timeout_ms` can only shorten it.
    pub timeout: Duration,
    /// Memory one aggregation request may use, summed over all the targets it visits.
    pub aggregation_memory_bytes: u64,
    /// Largest number of buckets an aggregation may return.
    pub aggregation_bucket_limit: u32,
    /// Most groups an audit report enumerates (its aggregations' bucket limit).
    pub report_group_limit: u32,
    /// How many targets are searched at once (threads per search).
    pub parallelism: usize,
}

impl Default for QueryLimits {
    fn default() -> Self {
        QueryLimits::from_config(&QueryConfig::default())
    }
}

impl QueryLimits {
    /// Limits from the `[query]` section; parallelism is the machine's, bucket limit tantivy's
    /// default (65,000).
    pub fn from_config(config: &QueryConfig) -> QueryLimits {
        let max_limit = config.max_limit.min(MAX_LIMIT_CEILING);
        QueryLimits {
            default_limit: config.default_limit.min(max_limit),
            max_limit,
            timeout: Duration::from_millis(config.timeout_ms.max(1)),
            aggregation_memory_bytes: config.aggregation_memory_bytes,
            aggregation_bucket_limit: tantivy::aggregation::DEFAULT_BUCKET_LIMIT,
            report_group_limit: config.report_group_limit.max(1),
            parallelism: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
        }
    }
}

/// Order of hits by timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SortOrder {
    /// Newest first (the default).
    #[default]
    Desc,
    /// Oldest first.
    Asc,
}

/// `fields` of a request: a comma-separated string (GET, or POST) or an array of names (POST).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum FieldList {
    /// `"timestamp,message"`.
    Joined(String),
    /// `["timestamp", "message"]`.
    List(Vec<String>),
}

impl FieldList {
    fn into_names(self) -> Vec<String> {
        let names: Vec<String> = match self {
            FieldList::Joined(text) => text.split(',').map(str::to_string).collect(),
            FieldList::List(list) => list,
        };
        names
            .into_iter()
            .map(|name| name.trim().to_string())
            .filter(|name| !name.is_empty())
            .collect()
    }
}

/// A search request: the query string of `GET /api/v1/{stream}/search` or the JSON body of
/// `POST`. Unknown parameters are refused, so that a typo (`limt=5`) is an error rather than
/// a silently different search.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchRequest {
    /// Query in the tantivy query-parser grammar; absent or empty means `*`.
    pub q: Option<String>,
    /// Inclusive lower time bound: RFC 3339 or `now[+-]N<unit>`.
    pub start: Option<String>,
    /// Exclusive upper time bound, same grammar as `start`.
    pub end: Option<String>,
    /// Largest number of hits to return; `0` answers only `total` (and `aggregations`).
    pub limit: Option<usize>,
    /// `desc` (default) or `asc` by timestamp.
    pub sort: Option<SortOrder>,
    /// Fields to return in each hit; all when absent.
    pub fields: Option<FieldList>,
    /// The `cursor` of a previous answer: continue strictly after its last hit.
    pub search_after: Option<String>,
    /// Elasticsearch aggregation syntax (POST only).
    #[serde(alias = "aggregations")]
    pub aggs: Option<serde_json::Value>,
    /// Time budget for this request; at most the configured one.
    pub timeout_ms: Option<u64>,
}

/// A validated search request, ready for [`crate::search`].
#[derive(Debug, Clone)]
pub struct ParsedRequest {
    /// The query text; `*` when the client gave none.
    pub query: String,
    /// Inclusive lower bound, nanosecond exact.
    pub start: Option<Timestamp>,
    /// Exclusive upper bound, nanosecond exact.
    pub end: Option<Timestamp>,
    /// Number of hits to return, at most `QueryLimits::max_limit`.
    pub limit: usize,
    /// Hit order.
    pub sort: SortOrder,
    /// Projection of hit fields; `None` returns every stored field.
    pub fields: Option<Vec<String>>,
    /// Position to continue after.
    pub search_after: Option<Cursor>,
    /// Aggregations to compute over every matching document (not only the returned hits).
    pub aggs: Option<Aggregations>,
    /// Time budget of the search.
    pub timeout: Duration,
    /// The records the caller may see ([`Scope::All`] unless the route sets the caller's):
    /// ANDed into the query whatever its text says.
    pub scope: Scope,
}

impl ParsedRequest {
    /// A request for `query` with every other parameter at its default.
    pub fn new(query: impl Into<String>, limits: &QueryLimits) -> ParsedRequest {
        ParsedRequest {
            query: query.into(),
            start: None,
            end: None,
            limit: limits.default_limit,
            sort: SortOrder::Desc,
            fields: None,
            search_after: None,
            aggs: None,
            timeout: limits.timeout,
            scope: Scope::All,
        }
    }
}

impl SearchRequest {
    /// Validates the request: parses times (with `now` as given), checks `limit` against the
    /// limits, parses the cursor and the aggregations. Every failure is a 400-class error whose
    /// message names the parameter.
    pub fn parse(self, now: Timestamp, limits: &QueryLimits) -> Result<ParsedRequest> {
        let query = match self.q.as_deref().map(str::trim) {
            None | Some("") => "*".to_string(),
            Some(text) => text.to_string(),
        };
        let time = |name: &str, text: Option<String>| -> Result<Option<Timestamp>> {
            text.filter(|t| !t.trim().is_empty())
                .map(|t| {
                    Timestamp::parse_expr(&t, now)
                        .map_err(|err| Error::InvalidArgument(format!("`{name}`: {err}")))
                })
                .transpose()
        };
        let start = time("start", self.start)?;
        let end = time("end", self.end)?;
        if let (Some(s), Some(e)) = (start, end) {
            if s > e {
                return Err(Error::InvalidArgument(format!(
                    "`start` ({s}) is after `end` ({e})"
                )));
            }
        }
        let limit = self.limit.unwrap_or(limits.default_limit);
        if limit > limits.max_limit {
            return Err(Error::InvalidArgument(format!(
                "`limit` {limit} exceeds the maximum of {}",
                limits.max_limit
            )));
        }
        let timeout = match self.timeout_ms {
            Some(0) => {
                return Err(Error::InvalidArgument(
                    "`timeout_ms` must be positive".to_string(),
                ))
            }
            Some(ms) => Duration::from_millis(ms).min(limits.timeout),
            None => limits.timeout,
        };
        let fields = self
            .fields
            .map(FieldList::into_names)
            .filter(|names| !names.is_empty());
        let search_after = self
            .search_after
            .filter(|c| !c.is_empty())
            .map(|c| Cursor::decode(&c))
            .transpose()?;
        let aggs = self.aggs.map(crate::aggs::parse_aggs).transpose()?;
        Ok(ParsedRequest {
            query,
            start,
            end,
            limit,
            sort: self.sort.unwrap_or_default(),
            fields,
            search_after,
            aggs,
            timeout,
            scope: Scope::All,
        })
    }
}

/// A position in the total order of hits: timestamp, then target id, segment ordinal and doc
/// id. The order is stable as long as the set of splits is (a merge or a hot-index commit may
/// renumber documents). Sent to clients as an opaque string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    /// The hit's timestamp in nanoseconds (`i64::MIN` for a document without one).
    pub timestamp: i64,
    /// The target (split id, or `hot`) the hit came from.
    pub target: String,
    /// The hit's segment ordinal in that target's searcher.
    pub segment: u32,
    /// The hit's doc id in that segment.
    pub doc: u32,
}

const CURSOR_VERSION: &str = "c1";

impl Cursor {
    /// The cursor's wire form: `c1.<timestamp>.<segment>.<doc>.<target>`.
    pub fn encode(&self) -> String {
        format!(
            "{CURSOR_VERSION}.{}.{}.{}.{}",
            self.timestamp, self.segment, self.doc, self.target
        )
    }

    /// Parses the wire form; anything else is an [`Error::InvalidArgument`].
    pub fn decode(text: &str) -> Result<Cursor> {
        let invalid = || {
            let shown: String = text.chars().take(80).collect();
            Error::InvalidArgument(format!(
                "`search_after`: `{shown}` is not a cursor returned by this server"
            ))
        };
        let mut parts = text.splitn(5, '.');
        if parts.next() != Some(CURSOR_VERSION) {
            return Err(invalid());
        }
        let timestamp = parts
            .next()
            .and_then(|p| p.parse().ok())
            .ok_or_else(invalid)?;
        let segment = parts
            .next()
            .and_then(|p| p.parse().ok())
            .ok_or_else(invalid)?;
        let doc = parts
            .next()
            .and_then(|p| p.parse().ok())
            .ok_or_else(invalid)?;
        let target = parts.next().filter(|t| !t.is_empty()).ok_or_else(invalid)?;
        Ok(Cursor {
            timestamp,
            target: target.to_string(),
            segment,
            doc,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> QueryLimits {
        QueryLimits::default()
    }

    fn now() -> Timestamp {
        Timestamp::parse_rfc3339("2026-01-01T00:00:00Z").unwrap()
    }

    #[test]
    fn defaults() {
        let parsed = SearchRequest::default().parse(now(), &limits()).unwrap();
        assert_eq!(parsed.query, "*");
        assert_eq!(parsed.limit, 100);
        assert_eq!(parsed.sort, SortOrder::Desc);
        assert_eq!(parsed.start, None);
        assert_eq!(parsed.end, None);
        assert_eq!(parsed.fields, None);
        assert!(parsed.aggs.is_none());
        assert_eq!(parsed.timeout, Duration::from_secs(30));
    }

    #[test]
    fn query_string_form() {
        let req: SearchRequest = serde_urlencoded_like(
            "q=level:error&start=now-15m&end=2026-01-01T00:00:00.000000001Z&limit=5&sort=asc&fields=timestamp,%20message,",
        );
        let parsed = req.parse(now(), &limits()).unwrap();
        assert_eq!(parsed.query, "level:error");
        assert_eq!(
            parsed.start,
            Some(Timestamp(now().0 - 15 * 60 * 1_000_000_000))
        );
        assert_eq!(parsed.end, Some(Timestamp(now().0 + 1)));
        assert_eq!(parsed.limit, 5);
        assert_eq!(parsed.sort, SortOrder::Asc);
        assert_eq!(
            parsed.fields,
            Some(vec!["timestamp".to_string(), "message".to_string()])
        );
    }

    /// Deserialises a query string the way axum's `Query` extractor does.
    fn serde_urlencoded_like(text: &str) -> SearchRequest {
        let uri: axum::http::Uri = format!("/?{text}").parse().unwrap();
        axum::extract::Query::<SearchRequest>::try_from_uri(&uri)
            .unwrap()
            .0
    }

    #[test]
    fn json_body_form() {
        let req: SearchRequest = serde_json::from_str(
            r#"{"q": "error", "limit": 0, "fields": ["pod", "level"], "aggs": {"l": {"terms": {"field": "level"}}}}"#,
        )
        .unwrap();
        let parsed = req.parse(now(), &limits()).unwrap();
        assert_eq!(parsed.limit, 0);
        assert_eq!(
            parsed.fields,
            Some(vec!["pod".to_string(), "level".to_string()])
        );
        assert_eq!(parsed.aggs.unwrap().len(), 1);
    }

    #[test]
    fn unknown_body_field_is_refused() {
        let err = serde_json::from_str::<SearchRequest>(r#"{"query": "x"}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field `query`"), "{err}");
    }

    #[test]
    fn limit_above_maximum_is_refused() {
        let req = SearchRequest {
            limit: Some(10_001),
            ..Default::default()
        };
        let err = req.parse(now(), &limits()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "`limit` 10001 exceeds the maximum of 10000"
        );
        let req = SearchRequest {
            limit: Some(10_000),
            ..Default::default()
        };
        assert_eq!(req.parse(now(), &limits()).unwrap().limit, 10_000);
    }

    #[test]
    fn bad_times_are_refused() {
        let req = SearchRequest {
            start: Some("yesterday".into()),
            ..Default::default()
        };
        let err = req.parse(now(), &limits()).unwrap_err();
        assert!(matches!(err, Error::InvalidArgument(_)));
        assert!(err
            .to_string()
            .starts_with("`start`: invalid time `yesterday`"));
        let req = SearchRequest {
            start: Some("now".into()),
            end: Some("now-1s".into()),
            ..Default::default()
        };
        assert!(req.parse(now(), &limits()).is_err());
    }

    #[test]
    fn timeout_is_capped_by_the_limit() {
        let req = SearchRequest {
            timeout_ms: Some(100_000),
            ..Default::default()
        };
        assert_eq!(
            req.parse(now(), &limits()).unwrap().timeout,
            Duration::from_secs(30)
        );
        let req = SearchRequest {
            timeout_ms: Some(250),
            ..Default::default()
        };
        assert_eq!(
            req.parse(now(), &limits()).unwrap().timeout,
            Duration::from_millis(250)
        );
    }

    #[test]
    fn cursor_round_trip() {
        let cursor = Cursor {
            timestamp: -5,
            target: "01JX.split.a".to_string(),
            segment: 2,
            doc: 77,
        };
        assert_eq!(cursor.encode(), "c1.-5.2.77.01JX.split.a");
        assert_eq!(Cursor::decode(&cursor.encode()).unwrap(), cursor);
        for bad in [
            "",
            "c1",
            "c2.1.2.3.x",
            "c1.x.2.3.t",
            "c1.1.2.3.",
            "c1.1.-2.3.t",
        ] {
            assert!(Cursor::decode(bad).is_err(), "{bad:?} accepted");
        }
    }
}
