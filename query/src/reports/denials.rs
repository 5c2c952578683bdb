//! Denied requests: `forbidden`, and `forbidden-bursts` (many denials across distinct resources
//! in a short window: the pattern of permission enumeration).

use serde_json::{json, Map, Value};
use trawl_model::Timestamp;

use super::engine::{
    bucket_start, check_complete, render, time_range, timestamp_metric, Ctx, Key, Order, Row,
    USER_KEYS,
};
use super::filter::{either, eq, COMPLETE};
use crate::error::Result;
use crate::search::TIMESTAMP_FIELD;

type Rows = Result<Vec<Map<String, Value>>>;

/// What a denial is: status 401 or 403, or the authorizer's `forbid` decision.
fn denied() -> Vec<String> {
    vec![
        COMPLETE.to_string(),
        either(&[
            "status_code:401".to_string(),
            "status_code:403".to_string(),
            eq("decision", "forbid"),
        ]),
    ]
}

/// Denied requests per user, resource and verb.
pub(super) fn forbidden(ctx: &Ctx) -> Rows {
    let filter = ctx.filter(&denied());
    let keys = [
        USER_KEYS[0],
        USER_KEYS[1],
        Key::Str("resource"),
        Key::Str("verb"),
    ];
    let groups = ctx.groups(&filter, &keys, Value::Null)?;
    let rows = groups
        .iter()
        .map(|g| Row::of(g).user(g).key(g, "resource").key(g, "verb"))
        .collect();
    Ok(render(&filter, rows, Order::ByCount, ctx.request.limit))
}

/// Per user, the windows (of `window`, aligned on the epoch) holding at least `min` denials
/// across at least `min_resources` distinct resources (non-resource requests count towards
/// `min` but are not a resource). Rows: `user`, `window_start`, `count`,
/// `distinct_resources`; the row's query bounds the window with a `timestamp` range.
pub(super) fn forbidden_bursts(ctx: &Ctx) -> Rows {
    let request = ctx.request;
    let filter = ctx.filter(&denied());
    let cap = ctx.group_cap();
    let window_seconds = request.burst_window / 1_000_000_000;
    let aggs = json!({
        "users": {
            "multi_terms": ctx.multi_terms(&USER_KEYS),
            "aggs": {
                "windows": {
                    "date_histogram": {
                        "field": TIMESTAMP_FIELD,
                        "fixed_interval": format!("{window_seconds}s"),
                        "min_doc_count": 1,
                    },
                    "aggs": {
                        "resources": {"terms": {"field": "resource", "size": cap, "segment_size": cap}},
                        "first": {"min": {"field": TIMESTAMP_FIELD}},
                        "last": {"max": {"field": TIMESTAMP_FIELD}},
                    }
                }
            }
        }
    });
    let result = ctx.aggregate(&filter, aggs)?;
    let users = ctx.parse_groups(&result["users"], &USER_KEYS)?;
    let mut rows = Vec::new();
    for user in &users {
        let windows = user.bucket["windows"]["buckets"].as_array();
        for window in windows.into_iter().flatten() {
            let count = window["doc_count"].as_u64().unwrap_or(0);
            check_complete(&window["resources"], cap)?;
            let distinct = window["resources"]["buckets"]
                .as_array()
                .map_or(0, |b| b.len() as u64);
            if count < request.burst_min || distinct < request.burst_min_resources {
                continue;
            }
            let start = bucket_start(window)?;
            let end = start.saturating_add(request.burst_window);
            let mut row = Row::of(user).user(user);
            row.count = count;
            row.first = timestamp_metric(&window["first"]);
            row.last = timestamp_metric(&window["last"]);
            rows.push(
                row.column("window_start", json!(Timestamp(start).to_rfc3339()))
                    .column("distinct_resources", json!(distinct))
                    .clause(time_range(start, end)),
            );
        }
    }
    Ok(render(&filter, rows, Order::ByCount, request.limit))
}
