//! Who and what is busiest: `top-users`, `top-resources`, `top-source-ips`,
//! `top-user-agents`.

use serde_json::{Map, Value};

use std::collections::HashMap;

use super::engine::{render, Ctx, Group, Key, Order, Row, USER_KEYS};
use super::filter::COMPLETE;
use crate::error::Result;

type Rows = Result<Vec<Map<String, Value>>>;

/// The clause of the requests [`top_users`] counts as `errors`.
const FAILED: &str = r#"(status_class:"4xx" OR status_class:"5xx")"#;

/// Requests per user (and impersonated user) with `errors`, those of status 400 and above.
/// Two passes: the busiest users over every request, then every user's errors over the failed
/// ones only. (One pass grouped by status class too reads that column for every request: a
/// third of the report's time.)
pub(super) fn top_users(ctx: &Ctx) -> Rows {
    let filter = ctx.filter(&[COMPLETE.to_string()]);
    let keys = [USER_KEYS[0], USER_KEYS[1]];
    let top = ctx.top_groups(&filter, &keys, &[], None)?;
    let mut failing = filter.clone();
    failing.push(FAILED.to_string());
    let who = |g: &Group| {
        (
            g.str("cluster").to_string(),
            g.str("user").to_string(),
            g.str("impersonated_user").to_string(),
        )
    };
    let errors: HashMap<_, u64> = ctx
        .groups(&failing, &keys, &[])?
        .iter()
        .map(|g| (who(g), g.count))
        .collect();
    let rows = top
        .iter()
        .map(|g| {
            let failed = errors.get(&who(g)).copied().unwrap_or(0);
            Row::of(g).user(g).sum("errors", failed)
        })
        .collect();
    Ok(render(&filter, rows, Order::ByCount, ctx.request.limit))
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
