//! The shape of traffic: `timeline` (requests per interval by status class) and `latency`
//! (percentiles per verb and resource).

use serde_json::{json, Map, Value};

use super::engine::{bucket_start, render, time_range, timestamp_metric, Ctx, Key, Order, Row};
use super::filter::COMPLETE;
use crate::error::{Error, Result};
use crate::search::TIMESTAMP_FIELD;

type Rows = Result<Vec<Map<String, Value>>>;

const SECOND: i64 = 1_000_000_000;

/// Intervals an automatic timeline picks from, in seconds.
const NICE_INTERVALS: [i64; 16] = [
    1, 5, 10, 15, 30, 60, 300, 600, 900, 1_800, 3_600, 10_800, 21_600, 43_200, 86_400, 604_800,
];

/// About this many intervals in an automatic timeline.
const AUTO_BUCKETS: i64 = 60;

/// The interval of an automatic timeline: the smallest nice interval giving at most about 60
/// intervals over `[start, end)`, whole days beyond a week; an hour when either bound is open.
pub(super) fn auto_interval(start: Option<i64>, end: Option<i64>) -> i64 {
    let (Some(start), Some(end)) = (start, end) else {
        return 3_600 * SECOND;
    };
    // Spans are positive, so `div_ceil` of unsigned integers serves.
    let span = end.saturating_sub(start).max(1).unsigned_abs();
    let wanted = span.div_ceil(AUTO_BUCKETS as u64).div_ceil(SECOND as u64);
    let wanted = i64::try_from(wanted).unwrap_or(i64::MAX);
    match NICE_INTERVALS.iter().find(|&&n| n >= wanted) {
        Some(n) => n * SECOND,
        None => (wanted.saturating_add(86_399) / 86_400).saturating_mul(86_400 * SECOND),
    }
}

/// Completed requests per interval (aligned on the epoch), with the count of each status
/// class (`2xx` to `5xx`; requests of class `1xx` or without a status count only in `count`).
/// When both bounds are given every interval of the range is a row, empty ones included.
pub(super) fn timeline(ctx: &Ctx) -> Rows {
    let request = ctx.request;
    let (start, end) = (request.start.map(|t| t.0), request.end.map(|t| t.0));
    let interval = request
        .interval
        .unwrap_or_else(|| auto_interval(start, end));
    let mut histogram = json!({
        "field": TIMESTAMP_FIELD,
        "fixed_interval": format!("{}s", interval / SECOND),
        "min_doc_count": 0,
    });
    if let (Some(start), Some(end)) = (start, end) {
        if start < end {
            let first = start.div_euclid(interval);
            let last = (end - 1).div_euclid(interval);
            let buckets = last - first + 1;
            if buckets > i64::from(ctx.group_cap()) {
                return Err(Error::TooExpensive(format!(
                    "a timeline of {buckets} intervals is more than the {} allowed: choose a \
                     longer `interval`",
                    ctx.group_cap()
                )));
            }
            let ms = |nanos: i64| nanos.div_euclid(1_000_000) as f64;
            histogram["extended_bounds"] = json!({"min": ms(start), "max": ms(end - 1)});
        }
    }
    let aggs = json!({
        "timeline": {
            "date_histogram": histogram,
            "aggs": {
                "classes": {"terms": {"field": "status_class", "size": 10}},
                "first": {"min": {"field": TIMESTAMP_FIELD}},
                "last": {"max": {"field": TIMESTAMP_FIELD}},
            }
        }
    });
    let filter = ctx.filter(&[COMPLETE.to_string()]);
    let result = ctx.aggregate(&filter, aggs)?;
    let mut rows = Vec::new();
    for bucket in result["timeline"]["buckets"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let start = bucket_start(bucket)?;
        let class = |name: &str| {
            bucket["classes"]["buckets"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|b| b["key"] == name)
                .and_then(|b| b["doc_count"].as_u64())
                .unwrap_or(0)
        };
        let mut row = Row {
            count: bucket["doc_count"].as_u64().unwrap_or(0),
            first: timestamp_metric(&bucket["first"]),
            last: timestamp_metric(&bucket["last"]),
            time: start,
            ..Row::default()
        }
        .column(
            "interval_start",
            json!(trawl_model::Timestamp(start).to_rfc3339()),
        )
        .clause(time_range(start, start.saturating_add(interval)));
        for name in ["2xx", "3xx", "4xx", "5xx"] {
            row = row.column(name, json!(class(name)));
        }
        rows.push(row);
    }
    Ok(render(&filter, rows, Order::ByTime, request.limit))
}

/// p50, p90 and p99 of `latency_ms` (estimates within about 1%, rounded to 0.01 ms; `null`
/// when no request of the row has a latency) per verb and resource.
pub(super) fn latency(ctx: &Ctx) -> Rows {
    let filter = ctx.filter(&[COMPLETE.to_string()]);
    let keys = [Key::Str("verb"), Key::Str("resource")];
    let extra = json!({
        "latency": {"percentiles": {"field": "latency_ms", "percents": [50.0, 90.0, 99.0], "keyed": false}}
    });
    let groups = ctx.groups(&filter, &keys, extra)?;
    let rows = groups
        .iter()
        .map(|g| {
            let percentile = |p: f64| {
                g.bucket["latency"]["values"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|v| v["key"].as_f64() == Some(p))
                    .and_then(|v| v["value"].as_f64())
                    .filter(|v| v.is_finite())
                    .map(|v| (v * 100.0).round() / 100.0)
            };
            Row::of(g)
                .key(g, "verb")
                .key(g, "resource")
                .column("p50", json!(percentile(50.0)))
                .column("p90", json!(percentile(90.0)))
                .column("p99", json!(percentile(99.0)))
        })
        .collect();
    Ok(render(&filter, rows, Order::ByCount, ctx.request.limit))
}
