//! `range` queries (dates with Elasticsearch's rounding, numbers and keywords through the
//! query parser), and the time bounds a query puts on every match, used to skip splits.

use std::ops::Bound;

use serde_json::{Map, Value};
use tantivy::query::{EmptyQuery, Query, RangeQuery};
use tantivy::query_grammar::{UserInputAst, UserInputBound, UserInputLeaf};
use tantivy::schema::{Field, FieldType};
use tantivy::{DateTime, Term};
use trawl_model::Timestamp;

use super::{one_field, scalar_text, utc, Translator};
use crate::elastic::datemath::{parse_date, parse_time_zone, DatePeriod};
use crate::elastic::error::{EsError, EsResult};
use crate::search::TIMESTAMP_FIELD;

impl Translator<'_> {
    pub(super) fn range(&self, body: &Value) -> EsResult<Box<dyn Query>> {
        let (name, spec) = one_field(body, "range")?;
        let spec = spec
            .as_object()
            .ok_or_else(|| EsError::parsing("[range] bounds must be an object"))?;
        let bounds = RangeSpec::parse(spec)?;
        let Some(resolved) = self.resolve(name)? else {
            return Ok(Box::new(EmptyQuery));
        };
        if !resolved.json {
            if let FieldType::Date(_) = self.field_type(resolved.field) {
                let (lower, upper) = bounds.date_bounds(self.now)?;
                return Ok(date_range(resolved.field, lower, upper));
            }
        }
        let bound = |b: &Option<(Value, bool)>| -> EsResult<UserInputBound> {
            Ok(match b {
                None => UserInputBound::Unbounded,
                Some((v, true)) => UserInputBound::Inclusive(scalar_text(v)?),
                Some((v, false)) => UserInputBound::Exclusive(scalar_text(v)?),
            })
        };
        let ast = UserInputAst::Leaf(Box::new(UserInputLeaf::Range {
            field: Some(resolved.full.clone()),
            lower: bound(&bounds.lower)?,
            upper: bound(&bounds.upper)?,
        }));
        self.build_ast(ast)
    }
}

/// The bounds of a `range` query as given: `gt`/`gte`/`lt`/`lte` (or the legacy
/// `from`/`to`/`include_lower`/`include_upper`), `format` and `time_zone`.
pub(crate) struct RangeSpec {
    /// Lower bound and whether it is inclusive.
    pub lower: Option<(Value, bool)>,
    /// Upper bound and whether it is inclusive.
    pub upper: Option<(Value, bool)>,
    pub format: Option<String>,
    pub time_zone: Option<String>,
}

impl RangeSpec {
    pub(crate) fn parse(spec: &Map<String, Value>) -> EsResult<RangeSpec> {
        let mut range = RangeSpec {
            lower: None,
            upper: None,
            format: None,
            time_zone: None,
        };
        let mut include_lower = true;
        let mut include_upper = true;
        let mut from = None;
        let mut to = None;
        for (key, value) in spec {
            let bound = (!value.is_null()).then(|| value.clone());
            match key.as_str() {
                "gte" => range.lower = bound.map(|v| (v, true)),
                "gt" => range.lower = bound.map(|v| (v, false)),
                "lte" => range.upper = bound.map(|v| (v, true)),
                "lt" => range.upper = bound.map(|v| (v, false)),
                "from" => from = bound,
                "to" => to = bound,
                "include_lower" => include_lower = value.as_bool().unwrap_or(true),
                "include_upper" => include_upper = value.as_bool().unwrap_or(true),
                "format" => range.format = value.as_str().map(str::to_string),
                "time_zone" => range.time_zone = value.as_str().map(str::to_string),
                "boost" | "_name" => {}
                "relation" => {
                    if !value
                        .as_str()
                        .is_some_and(|r| r.eq_ignore_ascii_case("intersects"))
                    {
                        return Err(EsError::unsupported(
                            "[range] [relation] other than intersects",
                        ));
                    }
                }
                other => {
                    return Err(EsError::parsing(format!(
                        "[range] query does not support [{other}]"
                    )))
                }
            }
        }
        if let Some(v) = from {
            range.lower = Some((v, include_lower));
        }
        if let Some(v) = to {
            range.upper = Some((v, include_upper));
        }
        Ok(range)
    }

    /// Nanosecond bounds for a date field, with Elasticsearch's rounding: `gte x` is at the
    /// start of `x`'s period, `gt x` and `lte x` after its end, `lt x` before its start.
    pub(crate) fn date_bounds(&self, now: i64) -> EsResult<(Bound<i64>, Bound<i64>)> {
        let zone = match &self.time_zone {
            Some(zone) => parse_time_zone(zone)?,
            None => utc(),
        };
        let period = |v: &Value| -> EsResult<DatePeriod> {
            parse_date(v, self.format.as_deref(), now, zone)
        };
        let lower = match &self.lower {
            None => Bound::Unbounded,
            Some((v, true)) => Bound::Included(period(v)?.start),
            Some((v, false)) => Bound::Included(period(v)?.next),
        };
        let upper = match &self.upper {
            None => Bound::Unbounded,
            Some((v, true)) => Bound::Excluded(period(v)?.next),
            Some((v, false)) => Bound::Excluded(period(v)?.start),
        };
        Ok((lower, upper))
    }
}

/// The time bounds every document matching `query` lies in, from the `range` clauses on the
/// timestamp that all matches must satisfy (the query itself, or `must`/`filter` clauses of
/// `bool`s, recursively). Used to skip splits; the query still applies the ranges exactly.
/// Malformed ranges are ignored here and reported by the translation.
pub(crate) fn time_bounds(
    query: Option<&Value>,
    now: Timestamp,
) -> (Option<Timestamp>, Option<Timestamp>) {
    let mut start: Option<i64> = None;
    let mut end: Option<i64> = None;
    if let Some(query) = query {
        collect_bounds(query, now.0, &mut start, &mut end);
    }
    (start.map(Timestamp), end.map(Timestamp))
}

fn collect_bounds(query: &Value, now: i64, start: &mut Option<i64>, end: &mut Option<i64>) {
    let Some(object) = query.as_object() else {
        return;
    };
    if let Some(range) = object.get("range").and_then(Value::as_object) {
        for (name, spec) in range {
            let base = name.strip_suffix(".keyword").unwrap_or(name);
            if base != TIMESTAMP_FIELD && base != "@timestamp" {
                continue;
            }
            let Some(Ok(spec)) = spec.as_object().map(RangeSpec::parse) else {
                continue;
            };
            let Ok((lower, upper)) = spec.date_bounds(now) else {
                continue;
            };
            if let Bound::Included(s) = lower {
                *start = Some(start.map_or(s, |c| c.max(s)));
            }
            if let Bound::Excluded(e) = upper {
                *end = Some(end.map_or(e, |c| c.min(e)));
            }
        }
    }
    if let Some(b) = object.get("bool").and_then(Value::as_object) {
        for key in ["must", "filter"] {
            match b.get(key) {
                Some(Value::Array(items)) => {
                    for item in items {
                        collect_bounds(item, now, start, end);
                    }
                }
                Some(item @ Value::Object(_)) => collect_bounds(item, now, start, end),
                _ => {}
            }
        }
    }
    if let Some(inner) = object.get("constant_score").and_then(|c| c.get("filter")) {
        collect_bounds(inner, now, start, end);
    }
}
pub(super) fn date_range(field: Field, lower: Bound<i64>, upper: Bound<i64>) -> Box<dyn Query> {
    let term = |ns: i64| Term::from_field_date(field, DateTime::from_timestamp_nanos(ns));
    let map = |b: Bound<i64>| match b {
        Bound::Included(ns) => Bound::Included(term(ns)),
        Bound::Excluded(ns) => Bound::Excluded(term(ns)),
        Bound::Unbounded => Bound::Unbounded,
    };
    if let (Bound::Included(l), Bound::Excluded(u)) = (lower, upper) {
        if l >= u {
            return Box::new(EmptyQuery);
        }
    }
    Box::new(RangeQuery::new(map(lower), map(upper)))
}
