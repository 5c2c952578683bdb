//! The body of an Elasticsearch `_search` (and `_count`): its options validated into a
//! [`SearchBody`], `sort` and `_source` specifications, and the rewrite of Elasticsearch
//! aggregations into the dialect tantivy accepts (legacy `interval`, `calendar_interval`,
//! `format`, numeric strings, `@timestamp`) plus the fixes to apply to their results.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Map, Value};
use tantivy::schema::Schema;

use super::datemath::parse_date;
use super::dsl::canonical_field;
use super::error::{EsError, EsResult};
use crate::request::QueryLimits;

/// Elasticsearch's default `size`.
const DEFAULT_SIZE: usize = 10;

/// Keys of a search body that do not change which documents match or how they are returned
/// here (highlighting and scoring details): accepted and ignored, because Grafana and Kibana
/// send them with every query.
const IGNORED_KEYS: &[&str] = &[
    "highlight",
    "version",
    "seq_no_primary_term",
    "explain",
    "profile",
    "stored_fields",
    "track_scores",
    "min_score",
    "indices_boost",
    "batched_reduce_size",
];

/// A validated `_search` body.
#[derive(Debug, Clone)]
pub(crate) struct SearchBody {
    /// The `query` object; `None` is `match_all`.
    pub query: Option<Value>,
    /// Hits to return.
    pub size: usize,
    /// Hits to skip.
    pub from: usize,
    /// Sort keys in order; empty means the default, newest first.
    pub sort: Vec<SortKey>,
    /// Whether the client gave `sort` (hits then carry their `sort` values).
    pub explicit_sort: bool,
    /// Which record fields `_source` shows.
    pub source: SourceFilter,
    /// `docvalue_fields` and `fields`: names (as the client wrote them) and formats.
    pub fields: Vec<FieldRequest>,
    /// Sort values of the hit to continue strictly after.
    pub search_after: Option<Vec<Value>>,
    /// How `hits.total` is reported.
    pub track_total_hits: TrackTotalHits,
    /// The aggregations as sent (Elasticsearch syntax); rewritten per stream by
    /// [`rewrite_aggs`].
    pub aggs: Option<Value>,
    /// A time budget shorter than the configured one.
    pub timeout: Option<Duration>,
}

/// One `sort` key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SortKey {
    /// The field as the client named it (`@timestamp`, `_doc`, `_score`, `level.keyword`).
    pub field: String,
    /// Ascending when true.
    pub asc: bool,
    /// Documents without a value come first (`missing: _first`); last by default.
    pub missing_first: bool,
    /// Whether a field the stream lacks is accepted (Elasticsearch's `unmapped_type`).
    pub unmapped_ok: bool,
}

/// `track_total_hits`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TrackTotalHits {
    /// Exact total (`true`, the default here: counting is exact anyway).
    Exact,
    /// No `hits.total` in the answer (`false`).
    Off,
    /// At most this many counted, then `"relation": "gte"`.
    UpTo(u64),
}

/// `_source` filtering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SourceFilter {
    /// `_source: false` leaves it out.
    pub enabled: bool,
    /// Field patterns to keep (`*` wildcards); empty keeps all.
    pub includes: Vec<String>,
    /// Field patterns to drop.
    pub excludes: Vec<String>,
}

impl Default for SourceFilter {
    fn default() -> Self {
        SourceFilter {
            enabled: true,
            includes: Vec::new(),
            excludes: Vec::new(),
        }
    }
}

impl SourceFilter {
    /// Whether a record field (by our name) is shown. Patterns are mapped like field names
    /// (`@timestamp` is `timestamp`) before matching.
    pub(crate) fn keeps(&self, name: &str, schema: &Schema, stream: &str) -> bool {
        let matches = |pattern: &String| {
            glob_match(pattern, name) || glob_match(&canonical_field(schema, stream, pattern), name)
        };
        self.enabled
            && (self.includes.is_empty() || self.includes.iter().any(matches))
            && !self.excludes.iter().any(matches)
    }
}

impl SourceFilter {
    /// Whether a field of a `_source` in a writer's shape (`log`, `kubernetes`) is shown: the
    /// patterns match the names as written.
    pub(crate) fn keeps_as_written(&self, name: &str) -> bool {
        let matches = |pattern: &String| glob_match(pattern, name);
        self.enabled
            && (self.includes.is_empty() || self.includes.iter().any(matches))
            && !self.excludes.iter().any(matches)
    }
}

/// A `docvalue_fields` / `fields` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FieldRequest {
    /// The name as requested; the answer's `fields` uses it as key.
    pub name: String,
    /// `epoch_millis`, `epoch_second`, or anything else (RFC 3339 for dates).
    pub format: Option<String>,
}

pub(crate) use trawl_model::elastic::glob_match;

impl SearchBody {
    /// Validates a search body (an empty body is `match_all`); `params` are the URL's
    /// parameters, which may also give `size`, `from`, `q`, `sort`, `track_total_hits`,
    /// `_source`. Unknown body keys are a 400 naming the key, as in Elasticsearch.
    pub(crate) fn parse(
        body: &Value,
        params: &BTreeMap<String, String>,
        limits: &QueryLimits,
    ) -> EsResult<SearchBody> {
        let empty = Map::new();
        let object = match body {
            Value::Null => &empty,
            Value::Object(object) => object,
            other => {
                return Err(EsError::parsing(format!(
                    "the search body must be an object, not {other}"
                )))
            }
        };
        let mut parsed = SearchBody {
            query: None,
            size: DEFAULT_SIZE,
            from: 0,
            sort: Vec::new(),
            explicit_sort: false,
            source: SourceFilter::default(),
            fields: Vec::new(),
            search_after: None,
            track_total_hits: TrackTotalHits::Exact,
            aggs: None,
            timeout: None,
        };
        for (key, value) in object {
            match key.as_str() {
                "query" => parsed.query = Some(value.clone()),
                "size" => parsed.size = as_count(value, "size")?,
                "from" => parsed.from = as_count(value, "from")?,
                "sort" => {
                    parsed.sort = parse_sort(value)?;
                    parsed.explicit_sort = true;
                }
                "_source" => parsed.source = parse_source(value)?,
                "docvalue_fields" | "fields" => parsed.fields.extend(parse_fields(value, key)?),
                "search_after" => {
                    let values = value.as_array().ok_or_else(|| {
                        EsError::parsing("[search_after] must be an array of sort values")
                    })?;
                    parsed.search_after = Some(values.clone());
                }
                "track_total_hits" => parsed.track_total_hits = parse_track(value)?,
                "aggs" | "aggregations" => {
                    if !value.as_object().is_some_and(|o| o.is_empty()) {
                        parsed.aggs = Some(value.clone());
                    }
                }
                "timeout" => {
                    let text = value
                        .as_str()
                        .ok_or_else(|| EsError::parsing("[timeout] must be a string like 30s"))?;
                    parsed.timeout = Some(parse_duration(text)?);
                }
                "script_fields" | "runtime_mappings" => {
                    if !value.as_object().is_some_and(|o| o.is_empty()) {
                        return Err(EsError::unsupported(format!("[{key}] (scripts)")));
                    }
                }
                "terminate_after" if value.as_u64() == Some(0) => {}
                k if IGNORED_KEYS.contains(&k) => {}
                "post_filter" | "collapse" | "suggest" | "rescore" | "pit" | "knn" | "script"
                | "terminate_after" | "slice" | "ext" => {
                    return Err(EsError::unsupported(format!("[{key}]")))
                }
                other => {
                    return Err(EsError::parsing(format!(
                        "Unknown key for a START_OBJECT in [{other}]."
                    )))
                }
            }
        }
        parsed.apply_params(params)?;
        let window = parsed.from.saturating_add(parsed.size);
        if window > limits.max_limit {
            return Err(EsError::illegal_argument(format!(
                "Result window is too large, from + size must be less than or equal to: [{}] but was [{window}]",
                limits.max_limit
            )));
        }
        if parsed.search_after.is_some() && parsed.from > 0 {
            return Err(EsError::illegal_argument(
                "[from] parameter must be set to 0 when [search_after] is used",
            ));
        }
        Ok(parsed)
    }

    /// URL parameters of a URI search; they override the body as in Elasticsearch.
    fn apply_params(&mut self, params: &BTreeMap<String, String>) -> EsResult<()> {
        for (key, value) in params {
            let v = Value::String(value.clone());
            match key.as_str() {
                "q" => {
                    let mut qs = Map::new();
                    qs.insert("query".into(), v);
                    if let Some(df) = params.get("df") {
                        qs.insert("default_field".into(), Value::String(df.clone()));
                    }
                    if let Some(op) = params.get("default_operator") {
                        qs.insert("default_operator".into(), Value::String(op.clone()));
                    }
                    let mut q = Map::new();
                    q.insert("query_string".into(), Value::Object(qs));
                    self.query = Some(Value::Object(q));
                }
                "size" => self.size = as_count(&v, "size")?,
                "from" => self.from = as_count(&v, "from")?,
                "track_total_hits" => {
                    self.track_total_hits = match value.as_str() {
                        "true" => TrackTotalHits::Exact,
                        "false" => TrackTotalHits::Off,
                        n => parse_track(&Value::String(n.to_string()))?,
                    }
                }
                "sort" => {
                    let keys: Vec<Value> = value
                        .split(',')
                        .map(|part| match part.split_once(':') {
                            Some((f, o)) => serde_json::json!({ f: o }),
                            None => Value::String(part.to_string()),
                        })
                        .collect();
                    self.sort = parse_sort(&Value::Array(keys))?;
                    self.explicit_sort = true;
                }
                "_source" => {
                    self.source = match value.as_str() {
                        "true" => SourceFilter::default(),
                        "false" => parse_source(&Value::Bool(false))?,
                        list => parse_source(&Value::Array(
                            list.split(',')
                                .map(|s| Value::String(s.to_string()))
                                .collect(),
                        ))?,
                    }
                }
                "_source_includes" => {
                    self.source.includes = value.split(',').map(str::to_string).collect()
                }
                "_source_excludes" => {
                    self.source.excludes = value.split(',').map(str::to_string).collect()
                }
                "timeout" => self.timeout = Some(parse_duration(value)?),
                "scroll" => {
                    return Err(EsError::unsupported(
                        "[scroll] (page with search_after instead)",
                    ))
                }
                // Transport and shard-routing options that mean nothing for one node.
                _ => {}
            }
        }
        Ok(())
    }
}

/// A non-negative integer (Grafana sometimes sends them as strings).
pub(crate) fn as_count(value: &Value, name: &str) -> EsResult<usize> {
    let n = match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    n.and_then(|n| usize::try_from(n).ok()).ok_or_else(|| {
        EsError::parsing(format!(
            "[{name}] must be a non-negative integer, not {value}"
        ))
    })
}

fn parse_track(value: &Value) -> EsResult<TrackTotalHits> {
    match value {
        Value::Bool(true) => Ok(TrackTotalHits::Exact),
        Value::Bool(false) => Ok(TrackTotalHits::Off),
        other => {
            let n = as_count(other, "track_total_hits")?;
            Ok(TrackTotalHits::UpTo(n as u64))
        }
    }
}

/// `30s`, `500ms`, `1m`.
fn parse_duration(text: &str) -> EsResult<Duration> {
    let text = text.trim();
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let amount: u64 = text[..digits]
        .parse()
        .map_err(|_| EsError::parsing(format!("failed to parse time value [{text}]")))?;
    let ms = match &text[digits..] {
        "ms" => amount,
        "s" => amount.saturating_mul(1000),
        "m" => amount.saturating_mul(60_000),
        "h" => amount.saturating_mul(3_600_000),
        _ => {
            return Err(EsError::parsing(format!(
                "failed to parse time value [{text}]"
            )))
        }
    };
    Ok(Duration::from_millis(ms.max(1)))
}

/// `"f"`, `{"f": "desc"}`, `{"f": {"order": "desc", "missing": "_first", "unmapped_type":
/// "long"}}`, or an array of those.
fn parse_sort(value: &Value) -> EsResult<Vec<SortKey>> {
    let items: Vec<&Value> = match value {
        Value::Array(items) => items.iter().collect(),
        other => vec![other],
    };
    let mut keys = Vec::with_capacity(items.len());
    for item in items {
        match item {
            Value::String(field) => {
                // Elasticsearch: `_score` sorts descending by default, everything else ascending.
                let asc = field != "_score";
                keys.push(SortKey {
                    field: field.clone(),
                    asc,
                    missing_first: false,
                    unmapped_ok: false,
                });
            }
            Value::Object(object) => {
                for (field, spec) in object {
                    let mut key = SortKey {
                        field: field.clone(),
                        asc: field != "_score",
                        missing_first: false,
                        unmapped_ok: false,
                    };
                    match spec {
                        Value::String(order) => key.asc = parse_order(order)?,
                        Value::Object(options) => {
                            for (name, option) in options {
                                match (name.as_str(), option) {
                                    ("order", Value::String(order)) => {
                                        key.asc = parse_order(order)?
                                    }
                                    ("missing", Value::String(m)) if m == "_first" => {
                                        key.missing_first = true
                                    }
                                    ("missing", Value::String(m)) if m == "_last" => {
                                        key.missing_first = false
                                    }
                                    ("unmapped_type", _) => key.unmapped_ok = true,
                                    ("format" | "numeric_type" | "mode", _) => {}
                                    ("nested" | "script" | "missing", _) => {
                                        return Err(EsError::unsupported(format!(
                                            "[sort] option [{name}]"
                                        )))
                                    }
                                    _ => {
                                        return Err(EsError::parsing(format!(
                                            "[sort] unknown option [{name}] for field [{field}]"
                                        )))
                                    }
                                }
                            }
                        }
                        other => {
                            return Err(EsError::parsing(format!(
                                "[sort] malformed value for [{field}]: {other}"
                            )))
                        }
                    }
                    if field == "_script" || field == "_geo_distance" {
                        return Err(EsError::unsupported(format!("[sort] on [{field}]")));
                    }
                    keys.push(key);
                }
            }
            other => return Err(EsError::parsing(format!("[sort] malformed: {other}"))),
        }
    }
    Ok(keys)
}

fn parse_order(order: &str) -> EsResult<bool> {
    match order.to_ascii_lowercase().as_str() {
        "asc" => Ok(true),
        "desc" => Ok(false),
        other => Err(EsError::parsing(format!("[sort] unknown order [{other}]"))),
    }
}

fn parse_source(value: &Value) -> EsResult<SourceFilter> {
    let strings = |v: &Value, what: &str| -> EsResult<Vec<String>> {
        match v {
            Value::String(s) => Ok(vec![s.clone()]),
            Value::Array(items) => items
                .iter()
                .map(|i| {
                    i.as_str().map(str::to_string).ok_or_else(|| {
                        EsError::parsing(format!("[_source] {what} must be strings"))
                    })
                })
                .collect(),
            other => Err(EsError::parsing(format!(
                "[_source] malformed {what}: {other}"
            ))),
        }
    };
    match value {
        Value::Bool(enabled) => Ok(SourceFilter {
            enabled: *enabled,
            ..SourceFilter::default()
        }),
        Value::String(_) | Value::Array(_) => Ok(SourceFilter {
            includes: strings(value, "includes")?,
            ..SourceFilter::default()
        }),
        Value::Object(object) => {
            let mut filter = SourceFilter::default();
            for (key, v) in object {
                match key.as_str() {
                    "includes" | "include" => filter.includes = strings(v, "includes")?,
                    "excludes" | "exclude" => filter.excludes = strings(v, "excludes")?,
                    other => {
                        return Err(EsError::parsing(format!("[_source] unknown key [{other}]")))
                    }
                }
            }
            Ok(filter)
        }
        other => Err(EsError::parsing(format!("[_source] malformed: {other}"))),
    }
}

fn parse_fields(value: &Value, key: &str) -> EsResult<Vec<FieldRequest>> {
    let items = value
        .as_array()
        .ok_or_else(|| EsError::parsing(format!("[{key}] must be an array")))?;
    items
        .iter()
        .map(|item| match item {
            Value::String(name) => Ok(FieldRequest {
                name: name.clone(),
                format: None,
            }),
            Value::Object(object) => Ok(FieldRequest {
                name: object
                    .get("field")
                    .and_then(Value::as_str)
                    .ok_or_else(|| EsError::parsing(format!("[{key}] entries need a [field]")))?
                    .to_string(),
                format: object
                    .get("format")
                    .and_then(Value::as_str)
                    .map(str::to_string),
            }),
            other => Err(EsError::parsing(format!("[{key}] malformed entry {other}"))),
        })
        .collect()
}

/// What each named aggregation of a request needs done to its result, by name.
pub(crate) type AggFixes = BTreeMap<String, AggFix>;

/// What to change in an aggregation's result so that it reads as Elasticsearch's.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct AggFix {
    /// A `date_histogram`: integer keys, and `key_as_string` in this format when given.
    pub date_format: Option<Option<String>>,
    /// A `cardinality` or `value_count`: its `value` is an integer (Elasticsearch's clients,
    /// KubeSphere's among them, decode it into an integer type).
    pub integer_value: bool,
    /// The fixes of the sub-aggregations, by name.
    pub children: AggFixes,
}

/// The aggregation types tantivy computes (Elasticsearch names).
const AGG_TYPES: &[&str] = &[
    "terms",
    "date_histogram",
    "histogram",
    "range",
    "stats",
    "extended_stats",
    "percentiles",
    "cardinality",
    "avg",
    "min",
    "max",
    "sum",
    "value_count",
    "top_hits",
];

/// Rewrites Elasticsearch aggregations for one stream into what tantivy accepts: field names
/// mapped (`@timestamp`, `.keyword`), `date_histogram`'s legacy `interval` and whole-unit
/// `calendar_interval` as `fixed_interval`, `format` and `time_zone: UTC` removed (applied to
/// the results by [`fix_agg_results`]), numbers given as strings made numbers, date-math
/// bounds made milliseconds. Aggregation types tantivy does not compute are a 400 naming them.
pub(crate) fn rewrite_aggs(
    aggs: &Value,
    schema: &Schema,
    stream: &str,
    now: i64,
) -> EsResult<(Value, AggFixes)> {
    let object = aggs
        .as_object()
        .ok_or_else(|| EsError::parsing("[aggs] must be an object of named aggregations"))?;
    let mut out = Map::new();
    let mut fixes = BTreeMap::new();
    for (name, spec) in object {
        let spec = spec
            .as_object()
            .ok_or_else(|| EsError::parsing(format!("aggregation [{name}] must be an object")))?;
        let mut rewritten = Map::new();
        let mut fix = AggFix::default();
        for (key, body) in spec {
            match key.as_str() {
                "aggs" | "aggregations" => {
                    let (sub, sub_fixes) = rewrite_aggs(body, schema, stream, now)?;
                    if !sub.as_object().is_some_and(Map::is_empty) {
                        rewritten.insert("aggs".into(), sub);
                    }
                    fix.children = sub_fixes;
                }
                "meta" => {}
                kind if AGG_TYPES.contains(&kind) => {
                    let mut body = body.as_object().cloned().ok_or_else(|| {
                        EsError::parsing(format!("[{kind}] aggregation [{name}] must be an object"))
                    })?;
                    if let Some(Value::String(field)) = body.get("field") {
                        let mapped = canonical_field(schema, stream, field);
                        body.insert("field".into(), Value::String(mapped));
                    }
                    if body.contains_key("script") {
                        return Err(EsError::unsupported(format!(
                            "[script] in aggregation [{name}]"
                        )));
                    }
                    fix.integer_value = matches!(kind, "cardinality" | "value_count");
                    match kind {
                        "date_histogram" => {
                            fix.date_format = Some(rewrite_date_histogram(&mut body, name, now)?)
                        }
                        "histogram" => {
                            numberize(&mut body, &["interval", "min_doc_count", "offset"]);
                            for bounds in ["extended_bounds", "hard_bounds"] {
                                if let Some(Value::Object(b)) = body.get_mut(bounds) {
                                    numberize(b, &["min", "max"]);
                                }
                            }
                        }
                        "terms" => {
                            numberize(
                                &mut body,
                                &["size", "shard_size", "min_doc_count", "segment_size"],
                            );
                            if let Some(Value::Object(order)) = body.get_mut("order") {
                                if let Some(v) = order.remove("_term") {
                                    order.insert("_key".into(), v);
                                }
                            }
                        }
                        "percentiles" => {
                            if let Some(Value::Array(percents)) = body.get_mut("percents") {
                                for p in percents.iter_mut() {
                                    numberize_value(p);
                                }
                            }
                        }
                        _ => {}
                    }
                    rewritten.insert(kind.to_string(), Value::Object(body));
                }
                other => {
                    return Err(EsError::unsupported(format!("[{other}] aggregation")));
                }
            }
        }
        out.insert(name.clone(), Value::Object(rewritten));
        fixes.insert(name.clone(), fix);
    }
    Ok((Value::Object(out), fixes))
}

/// Returns the requested key format (`None` when none was given).
fn rewrite_date_histogram(
    body: &mut Map<String, Value>,
    name: &str,
    now: i64,
) -> EsResult<Option<String>> {
    let format = match body.remove("format") {
        None => None,
        Some(Value::String(f)) => Some(f),
        Some(other) => {
            return Err(EsError::parsing(format!(
                "[date_histogram] [{name}] format must be a string, not {other}"
            )))
        }
    };
    if let Some(zone) = body.remove("time_zone") {
        let zone = zone.as_str().unwrap_or_default();
        let offset = super::datemath::parse_time_zone(zone)?;
        if offset.local_minus_utc() != 0 {
            return Err(EsError::unsupported(format!(
                "[date_histogram] [time_zone] [{zone}] (only UTC)"
            )));
        }
    }
    let mut legacy = None;
    for key in ["interval", "calendar_interval"] {
        if let Some(v) = body.remove(key) {
            legacy = Some((key, v));
        }
    }
    if let Some((key, v)) = legacy {
        let text = match &v {
            Value::Number(n) => format!("{n}ms"),
            Value::String(s) => s.clone(),
            other => {
                return Err(EsError::parsing(format!(
                    "[date_histogram] [{key}] malformed: {other}"
                )))
            }
        };
        let (fixed, offset) = fixed_interval(&text).ok_or_else(|| {
            EsError::unsupported(format!(
                "[date_histogram] {key} [{text}] (calendar months, quarters and years)"
            ))
        })?;
        body.insert("fixed_interval".into(), Value::String(fixed));
        if let Some(offset) = offset {
            if body.contains_key("offset") {
                return Err(EsError::unsupported(
                    "[date_histogram] weekly interval together with [offset]",
                ));
            }
            body.insert("offset".into(), Value::String(offset.to_string()));
        }
    }
    numberize(body, &["min_doc_count"]);
    for bounds in ["extended_bounds", "hard_bounds"] {
        if let Some(Value::Object(b)) = body.get_mut(bounds) {
            for key in ["min", "max"] {
                let Some(v) = b.get(key).cloned() else {
                    continue;
                };
                let ms = match &v {
                    Value::Number(_) => continue,
                    _ => {
                        let period = parse_date(
                            &v,
                            format.as_deref().filter(|f| is_date_format(f)),
                            now,
                            utc(),
                        )?;
                        period.start / 1_000_000
                    }
                };
                b.insert(key.into(), Value::from(ms));
            }
        }
    }
    Ok(format)
}

fn is_date_format(format: &str) -> bool {
    format.split("||").all(|f| {
        matches!(
            f,
            "epoch_millis" | "epoch_second" | "strict_date_optional_time" | "date_optional_time"
        )
    })
}

fn utc() -> chrono::FixedOffset {
    chrono::FixedOffset::east_opt(0).unwrap_or_else(|| unreachable!("zero is a valid offset"))
}

/// An interval Elasticsearch accepts (`10s`, `1m`, `minute`, `1d`, `1w`, `week`, `500ms`) as
/// tantivy's `fixed_interval`, plus the offset that aligns weeks on Mondays. `None` for
/// months, quarters and years (not a fixed length).
fn fixed_interval(text: &str) -> Option<(String, Option<&'static str>)> {
    let text = text.trim();
    let named = match text {
        "second" => Some("1s"),
        "minute" => Some("1m"),
        "hour" => Some("1h"),
        "day" => Some("1d"),
        "week" => Some("1w"),
        _ => None,
    };
    let text = named.unwrap_or(text);
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let amount: u64 = text[..digits].parse().ok()?;
    match &text[digits..] {
        "ms" | "s" | "m" | "h" | "d" => Some((text.to_string(), None)),
        // 1970-01-01 was a Thursday: four days later, buckets start on Mondays.
        "w" => Some((format!("{}d", amount.checked_mul(7)?), Some("4d"))),
        _ => None,
    }
}

fn numberize(object: &mut Map<String, Value>, keys: &[&str]) {
    for key in keys {
        if let Some(v) = object.get_mut(*key) {
            numberize_value(v);
        }
    }
}

fn numberize_value(value: &mut Value) {
    if let Value::String(s) = value {
        if let Ok(n) = s.trim().parse::<u64>() {
            *value = Value::from(n);
        } else if let Ok(f) = s.trim().parse::<f64>() {
            if let Some(n) = serde_json::Number::from_f64(f) {
                *value = Value::Number(n);
            }
        }
    }
}

/// Applies the [`AggFix`]es to finished aggregation results: `date_histogram` keys become
/// integers (milliseconds), and `key_as_string` follows the requested `format`
/// (`epoch_millis`, `epoch_second`; RFC 3339 otherwise).
pub(crate) fn fix_agg_results(results: &mut Value, fixes: &AggFixes) {
    let Some(object) = results.as_object_mut() else {
        return;
    };
    for (name, fix) in fixes {
        let Some(result) = object.get_mut(name) else {
            continue;
        };
        if fix.integer_value {
            if let Some(value) = result.get("value").and_then(Value::as_f64) {
                result["value"] = Value::from(value.round() as i64);
            }
        }
        let buckets: Vec<&mut Value> = match result.get_mut("buckets") {
            Some(Value::Array(items)) => items.iter_mut().collect(),
            Some(Value::Object(items)) => items.values_mut().collect(),
            _ => Vec::new(),
        };
        for bucket in buckets {
            if let Some(format) = &fix.date_format {
                if let Some(key) = bucket.get("key").and_then(Value::as_f64) {
                    let ms = key as i64;
                    bucket["key"] = Value::from(ms);
                    match format.as_deref() {
                        Some("epoch_millis") => {
                            bucket["key_as_string"] = Value::String(ms.to_string())
                        }
                        Some("epoch_second") => {
                            bucket["key_as_string"] = Value::String((ms / 1000).to_string())
                        }
                        _ => {}
                    }
                }
            }
            fix_agg_results(bucket, &fix.children);
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use trawl_index::schema::build_schema;
    use trawl_model::schema::LOG_FIELDS;

    use super::*;

    fn parse(body: Value) -> EsResult<SearchBody> {
        SearchBody::parse(&body, &BTreeMap::new(), &QueryLimits::default())
    }

    #[test]
    fn defaults_and_options() {
        let b = parse(Value::Null).unwrap();
        assert_eq!((b.size, b.from), (10, 0));
        assert!(b.sort.is_empty() && !b.explicit_sort);
        let b = parse(json!({
            "size": "5", "from": 2,
            "sort": [{"@timestamp": {"order": "desc", "unmapped_type": "boolean"}}, {"_doc": {"order": "desc"}}, "pod"],
            "_source": {"includes": ["pod", "lev*"], "excludes": ["level"]},
            "docvalue_fields": ["@timestamp", {"field": "offset", "format": "use_field_mapping"}],
            "track_total_hits": 100, "highlight": {"fields": {"*": {}}}, "script_fields": {}
        }))
        .unwrap();
        assert_eq!((b.size, b.from), (5, 2));
        assert_eq!(b.sort.len(), 3);
        assert_eq!(
            b.sort[0],
            SortKey {
                field: "@timestamp".into(),
                asc: false,
                missing_first: false,
                unmapped_ok: true
            }
        );
        assert!(b.sort[2].asc);
        assert_eq!(b.track_total_hits, TrackTotalHits::UpTo(100));
        assert_eq!(b.fields.len(), 2);
        let schema = build_schema(LOG_FIELDS);
        assert!(b.source.keeps("pod", &schema, "logs"));
        assert!(!b.source.keeps("level", &schema, "logs"));
        assert!(!b.source.keeps("message", &schema, "logs"));
    }

    #[test]
    fn refusals() {
        let err = parse(json!({"from": 9990, "size": 11})).unwrap_err();
        assert_eq!(err.kind, "illegal_argument_exception");
        let err = parse(json!({"collapse": {"field": "pod"}})).unwrap_err();
        assert_eq!(err.reason, "[collapse] is not supported by trawl");
        let err = parse(json!({"script_fields": {"x": {}}})).unwrap_err();
        assert_eq!(
            err.reason,
            "[script_fields] (scripts) is not supported by trawl"
        );
        let err = parse(json!({"qeury": {}})).unwrap_err();
        assert_eq!(err.kind, "parsing_exception");
        assert_eq!(err.reason, "Unknown key for a START_OBJECT in [qeury].");
        let err = parse(json!({"sort": [{"pod": {"order": "sideways"}}]})).unwrap_err();
        assert_eq!(err.reason, "[sort] unknown order [sideways]");
    }

    #[test]
    fn grafana_date_histogram_is_rewritten() {
        let schema = build_schema(LOG_FIELDS);
        let aggs = json!({"2": {
            "date_histogram": {"interval": "30s", "field": "@timestamp", "min_doc_count": "0",
                "extended_bounds": {"min": 1699999980000i64, "max": "1700000040000"}, "format": "epoch_millis"},
            "aggs": {"3": {"terms": {"field": "level.keyword", "size": "10", "order": {"_term": "asc"}}}}
        }});
        let (rewritten, fixes) = rewrite_aggs(&aggs, &schema, "logs", 0).unwrap();
        assert_eq!(
            rewritten,
            json!({"2": {
                "date_histogram": {"fixed_interval": "30s", "field": "timestamp", "min_doc_count": 0,
                    "extended_bounds": {"min": 1699999980000i64, "max": 1700000040000i64}},
                "aggs": {"3": {"terms": {"field": "level", "size": 10, "order": {"_key": "asc"}}}}
            }})
        );
        assert_eq!(
            fixes["2"].date_format,
            Some(Some("epoch_millis".to_string()))
        );
        let mut results = json!({"2": {"buckets": [{"key": 1699999980000.0, "key_as_string": "2023-11-14T22:13:00Z", "doc_count": 1, "3": {"buckets": []}}]}});
        fix_agg_results(&mut results, &fixes);
        assert_eq!(results["2"]["buckets"][0]["key"], json!(1699999980000i64));
        assert_eq!(
            results["2"]["buckets"][0]["key_as_string"],
            json!("1699999980000")
        );
    }

    #[test]
    fn calendar_intervals() {
        assert_eq!(fixed_interval("minute"), Some(("1m".to_string(), None)));
        assert_eq!(fixed_interval("1w"), Some(("7d".to_string(), Some("4d"))));
        assert_eq!(fixed_interval("1M"), None);
        assert_eq!(fixed_interval("quarter"), None);
        let schema = build_schema(LOG_FIELDS);
        let err = rewrite_aggs(
            &json!({"m": {"date_histogram": {"field": "timestamp", "calendar_interval": "month"}}}),
            &schema,
            "logs",
            0,
        )
        .unwrap_err();
        assert_eq!(err.reason, "[date_histogram] calendar_interval [month] (calendar months, quarters and years) is not supported by trawl");
        let err = rewrite_aggs(
            &json!({"g": {"geohash_grid": {"field": "x"}}}),
            &schema,
            "logs",
            0,
        )
        .unwrap_err();
        assert_eq!(
            err.reason,
            "[geohash_grid] aggregation is not supported by trawl"
        );
        assert_eq!(err.status.as_u16(), 400);
    }
}
