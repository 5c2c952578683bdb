//! Who and what is busiest: `top-users`, `top-resources`, `top-source-ips`,
//! `top-user-agents`.

use serde_json::{Map, Value};

use super::engine::{fold, render, Ctx, Key, Order, Row, USER_KEYS};
use super::filter::COMPLETE;
use crate::error::Result;

type Rows = Result<Vec<Map<String, Value>>>;

/// Requests per user (and impersonated user) with `errors`, those of status 400 and above.
/// Grouped by status class as well, then folded per user: still one pass.
pub(super) fn top_users(ctx: &Ctx) -> Rows {
    let filter = ctx.filter(&[COMPLETE.to_string()]);
    let keys = [USER_KEYS[0], USER_KEYS[1], Key::Str("status_class")];
    let groups = ctx.groups(&filter, &keys, &[])?;
    let rows = groups
        .iter()
        .map(|g| {
            let failed = matches!(g.str("status_class"), "4xx" | "5xx");
            Row::of(g)
                .user(g)
                .sum("errors", if failed { g.count } else { 0 })
        })
        .collect();
    Ok(render(
        &filter,
        fold(rows),
        Order::ByCount,
        ctx.request.limit,
    ))
}

/// Requests per resource and verb; non-resource requests have an empty `resource`.
pub(super) fn top_resources(ctx: &Ctx) -> Rows {
    by_keys(ctx, &["resource", "verb"])
}

/// Requests per source address (`source_ip`, the direct peer).
pub(super) fn top_source_ips(ctx: &Ctx) -> Rows {
    by_keys(ctx, &["source_ip"])
}

/// Requests per user agent.
pub(super) fn top_user_agents(ctx: &Ctx) -> Rows {
    by_keys(ctx, &["user_agent"])
}

/// Completed requests counted per combination of keyword `fields`.
fn by_keys(ctx: &Ctx, fields: &[&'static str]) -> Rows {
    let filter = ctx.filter(&[COMPLETE.to_string()]);
    let keys: Vec<Key> = fields.iter().map(|f| Key::Str(f)).collect();
    let groups = ctx.top_groups(&filter, &keys, &[], None)?;
    let rows = groups
        .iter()
        .map(|g| fields.iter().fold(Row::of(g), |row, f| row.key(g, f)))
        .collect();
    Ok(render(&filter, rows, Order::ByCount, ctx.request.limit))
}
