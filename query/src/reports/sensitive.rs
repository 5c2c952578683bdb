//! Sensitive access: `secret-access`, `token-requests`, `exec-attach`, `anonymous`,
//! `impersonation`.

use std::collections::BTreeSet;

use serde_json::{json, Map, Value};
use tantivy::TantivyError;
use trawl_index::StreamSnapshot;
use trawl_model::Timestamp;

use super::engine::{fold, render, Ctx, Key, KeyValue, Order, Row, USER_KEYS};
use super::filter::{any_of, either, eq, glob_match, COMPLETE};
use crate::error::{Error, Result};

type Rows = Result<Vec<Map<String, Value>>>;

/// The clause of an `allowed` request: a status below 400. Anything else (4xx, 5xx, or no
/// status at all, as a `Panic` may have) is `failed`.
const ALLOWED: &str = "status_code:<400";

/// Reads of secrets per user, namespace and outcome (`allowed` or `failed`), leaving out the
/// system components of [`super::ReportSettings`]: requests by a member of a system group are
/// excluded by the filter (the matching group names are looked up in the term dictionaries),
/// rows of system users are dropped.
pub(super) fn secret_access(ctx: &Ctx) -> Rows {
    let mut base = vec![
        COMPLETE.to_string(),
        eq("resource", "secrets"),
        any_of("verb", &["get", "list", "watch"]),
    ];
    for group in system_groups(ctx)? {
        base.push(format!("-{}", eq("user_groups", &group)));
    }
    let filter = ctx.filter(&base);
    let keys = [
        USER_KEYS[0],
        USER_KEYS[1],
        Key::Str("namespace"),
        Key::Int("status_code"),
    ];
    let groups = ctx.groups(&filter, &keys, &[])?;
    let rows = groups
        .iter()
        .filter(|g| !ctx.settings.is_system_user(g.str("user")))
        .map(|g| {
            let allowed = g.int("status_code").is_some_and(|code| code < 400);
            let (outcome, clause) = if allowed {
                ("allowed", ALLOWED.to_string())
            } else {
                ("failed", format!("-{ALLOWED}"))
            };
            Row::of(g)
                .user(g)
                .key(g, "namespace")
                .column("outcome", json!(outcome))
                .clause(clause)
        })
        .collect();
    Ok(render(
        &filter,
        fold(rows),
        Order::ByCount,
        ctx.request.limit,
    ))
}

/// The group names, among those of the targets (and of the other parts, through a searcher),
/// that match a system-group glob (a glob without `*` is its own name).
fn system_groups(ctx: &Ctx) -> Result<BTreeSet<String>> {
    let mut groups = BTreeSet::new();
    let mut wildcards = Vec::new();
    for glob in &ctx.settings.system_groups {
        if glob.contains('*') {
            wildcards.push(glob.clone());
        } else {
            groups.insert(glob.clone());
        }
    }
    if wildcards.is_empty() {
        return Ok(groups);
    }
    let (start, end) = (ctx.request.start, ctx.request.end);
    groups.extend(matching_terms(
        ctx.snapshot,
        "user_groups",
        &wildcards,
        start,
        end,
    )?);
    if let Some(remote) = ctx.remote {
        groups.extend(remote.terms("user_groups", &wildcards, start, end)?);
    }
    Ok(groups)
}

/// The terms of `field` in the targets of `snapshot` overlapping `[start, end)` that match one
/// of `globs`, read from the term dictionaries (no document is visited). A field the schema
/// lacks has none.
pub(crate) fn matching_terms(
    snapshot: &StreamSnapshot,
    field: &str,
    globs: &[String],
    start: Option<Timestamp>,
    end: Option<Timestamp>,
) -> Result<BTreeSet<String>> {
    let mut found = BTreeSet::new();
    let Ok(field) = snapshot.schema.get_field(field) else {
        return Ok(found);
    };
    let internal = |err: TantivyError| Error::Internal(format!("reading group names: {err}"));
    for target in snapshot.targets.iter().filter(|t| t.overlaps(start, end)) {
        for reader in target.searcher.segment_readers() {
            let index = reader.inverted_index(field).map_err(internal)?;
            let mut terms = index.terms().stream().map_err(|e| internal(e.into()))?;
            while terms.advance() {
                let Ok(name) = std::str::from_utf8(terms.key()) else {
                    continue;
                };
                if globs.iter().any(|glob| glob_match(glob, name)) {
                    found.insert(name.to_string());
                }
            }
        }
    }
    Ok(found)
}

/// Creations of service account tokens per user, namespace and service account (`name`).
pub(super) fn token_requests(ctx: &Ctx) -> Rows {
    let filter = ctx.filter(&[
        COMPLETE.to_string(),
        eq("resource", "serviceaccounts"),
        eq("subresource", "token"),
        eq("verb", "create"),
    ]);
    let keys = [
        USER_KEYS[0],
        USER_KEYS[1],
        Key::Str("namespace"),
        Key::Str("name"),
    ];
    let groups = ctx.top_groups(&filter, &keys, &[], None)?;
    let rows = groups
        .iter()
        .map(|g| Row::of(g).user(g).key(g, "namespace").key(g, "name"))
        .collect();
    Ok(render(&filter, rows, Order::ByCount, ctx.request.limit))
}

/// Sessions into pods per user, pod (`namespace`, `name`), `subresource`, `exec_container` and
/// `exec_command`. Exec, attach and port-forward are long-running: the API server logs them at
/// `ResponseStarted` (when the connection is upgraded) and again at `ResponseComplete` (when it
/// closes), and they are counted at `ResponseStarted`. Ephemeral containers are an ordinary
/// write, counted at completion.
pub(super) fn exec_attach(ctx: &Ctx) -> Rows {
    let sessions = format!(
        r#"(stage:"ResponseStarted" AND {})"#,
        any_of("subresource", &["exec", "attach", "portforward"])
    );
    let debug = format!(
        "({COMPLETE} AND {})",
        eq("subresource", "ephemeralcontainers")
    );
    let filter = ctx.filter(&[eq("resource", "pods"), either(&[sessions, debug])]);
    let fields = [
        "namespace",
        "name",
        "subresource",
        "exec_container",
        "exec_command",
    ];
    let mut keys = USER_KEYS.to_vec();
    keys.extend(fields.iter().map(|f| Key::Str(f)));
    let groups = ctx.top_groups(&filter, &keys, &[], None)?;
    let rows = groups
        .iter()
        .map(|g| {
            fields
                .iter()
                .fold(Row::of(g).user(g), |row, f| row.key(g, f))
        })
        .collect();
    Ok(render(&filter, rows, Order::ByCount, ctx.request.limit))
}

/// Requests of `system:anonymous` or of the `system:unauthenticated` group per user, verb,
/// `request_path` and `status_code` (`null` when absent); allowed requests (status below 400)
/// come first.
pub(super) fn anonymous(ctx: &Ctx) -> Rows {
    let filter = ctx.filter(&[
        COMPLETE.to_string(),
        either(&[
            eq("user", "system:anonymous"),
            eq("user_groups", "system:unauthenticated"),
        ]),
    ]);
    let keys = [
        USER_KEYS[0],
        USER_KEYS[1],
        Key::Str("verb"),
        Key::Str("request_path"),
        Key::Int("status_code"),
    ];
    let groups = ctx.top_groups(&filter, &keys, &[], Some(("status_code", &allowed_first)))?;
    let rows = groups
        .iter()
        .map(|g| {
            let code = g.int("status_code");
            let clause = match code {
                Some(code) => format!("status_code:{code}"),
                None => "-status_code:*".to_string(),
            };
            let mut row = Row::of(g)
                .user(g)
                .key(g, "verb")
                .key(g, "request_path")
                .column("status_code", json!(code))
                .clause(clause);
            row.priority = allowed_first(&KeyValue::Int(code));
            row
        })
        .collect();
    Ok(render(&filter, rows, Order::ByCount, ctx.request.limit))
}

/// Allowed requests (status below 400) first, by their `status_code`.
fn allowed_first(status_code: &KeyValue) -> u8 {
    u8::from(!matches!(status_code, KeyValue::Int(Some(code)) if *code < 400))
}

/// Requests that impersonated someone, per user, impersonated user, verb and resource.
pub(super) fn impersonation(ctx: &Ctx) -> Rows {
    let filter = ctx.filter(&[COMPLETE.to_string(), "impersonated_user:*".to_string()]);
    let keys = [
        USER_KEYS[0],
        USER_KEYS[1],
        Key::Str("verb"),
        Key::Str("resource"),
    ];
    let groups = ctx.top_groups(&filter, &keys, &[], None)?;
    let rows = groups
        .iter()
        .map(|g| Row::of(g).user(g).key(g, "verb").key(g, "resource"))
        .collect();
    Ok(render(&filter, rows, Order::ByCount, ctx.request.limit))
}
