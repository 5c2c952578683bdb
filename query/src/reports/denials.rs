//! Denied requests: `forbidden`, and `forbidden-bursts` (many denials across distinct resources
//! in a short window: the pattern of permission enumeration).

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};
use trawl_model::Timestamp;

use super::engine::{max_opt, min_opt, render, time_range, Ctx, Key, Order, Row, USER_KEYS};
use super::filter::{either, eq, COMPLETE};
use crate::error::Result;

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
    let groups = ctx.top_groups(&filter, &keys, &[], None)?;
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
    let window = request.burst_window.max(1);
    let keys = [
        USER_KEYS[0],
        USER_KEYS[1],
        Key::Window(window),
        Key::Str("resource"),
    ];
    let groups = ctx.groups(&filter, &keys, &[])?;
    // (user, impersonated user, window start) → the window's denials and distinct resources.
    let mut windows: BTreeMap<(&str, &str, i64), (Row, u64)> = BTreeMap::new();
    for g in &groups {
        let start = g.window().unwrap_or_default();
        let (row, distinct) = windows
            .entry((g.str("user"), g.str("impersonated_user"), start))
            .or_insert_with(|| {
                // The user columns and clauses; the counts and times add up below.
                let mut row = Row::of(g).user(g);
                row.count = 0;
                (row, 0)
            });
        row.count += g.count;
        row.first = min_opt(row.first, g.first);
        row.last = max_opt(row.last, g.last);
        if !g.str("resource").is_empty() {
            *distinct += 1;
        }
    }
    let mut rows = Vec::new();
    for ((_, _, start), (row, distinct)) in windows {
        if row.count < request.burst_min || distinct < request.burst_min_resources {
            continue;
        }
        let end = start.saturating_add(window);
        rows.push(
            row.column("window_start", json!(Timestamp(start).to_rfc3339()))
                .column("distinct_resources", json!(distinct))
                .clause(time_range(start, end)),
        );
    }
    Ok(render(&filter, rows, Order::ByCount, request.limit))
}
