//! What every report shares: the grouping of documents by several keys with their count, first
//! and last times and typed extras (one pass over the audit stream's fast fields, segments in
//! parallel: [`super::group`]), rows, their order, and the drill-down query of each row.

use std::cell::Cell;
use std::cmp::Reverse;
use std::collections::HashMap;
use std::sync::Arc;

use std::time::Instant;

use serde_json::{json, Map, Value};
use trawl_index::{SearchTarget, StreamSnapshot};
use trawl_model::Timestamp;

use super::filter::{eq, join};
use super::group::{self, Extra, ExtraValue, PassSpec, WireGroups};
use super::{ReportRequest, ReportSettings};
use crate::error::{Error, Result};
use crate::request::QueryLimits;
use crate::search::TIMESTAMP_FIELD;

/// Everything a report runs with.
pub(crate) struct Ctx<'a> {
    pub snapshot: &'a StreamSnapshot,
    pub request: &'a ReportRequest,
    pub settings: &'a ReportSettings,
    /// The caller's limits, with the aggregation bucket limit raised to the report group
    /// limit: a report enumerates every group of a day's events to make its rows exact.
    pub limits: QueryLimits,
    /// The pass's other parts, when a searcher runs the report: its indexers.
    pub remote: Option<&'a dyn RemoteGroups>,
    timed_out: Cell<bool>,
}

/// The other parts of a report's passes, besides the snapshot's own targets: what a searcher
/// asks its indexers for (each leaves out the splits the searcher reads itself).
pub(crate) trait RemoteGroups: Sync {
    /// Each part's groups of `pass`. Blocking: called from a report's own thread.
    fn groups(&self, pass: &PassSpec) -> Result<Vec<WireGroups>>;

    /// The values of the keyword `field` matching one of `globs` (`*` any run of characters)
    /// in the parts' documents of `[start, end)`.
    fn terms(
        &self,
        field: &str,
        globs: &[String],
        start: Option<Timestamp>,
        end: Option<Timestamp>,
    ) -> Result<Vec<String>>;
}

impl<'a> Ctx<'a> {
    pub fn new(
        snapshot: &'a StreamSnapshot,
        request: &'a ReportRequest,
        settings: &'a ReportSettings,
        limits: &QueryLimits,
    ) -> Ctx<'a> {
        Ctx {
            snapshot,
            request,
            settings,
            limits: QueryLimits {
                aggregation_bucket_limit: limits
                    .report_group_limit
                    .max(limits.aggregation_bucket_limit),
                ..limits.clone()
            },
            remote: None,
            timed_out: Cell::new(false),
        }
    }

    /// Whether some aggregation ran out of time (its answer covers only part of the targets).
    pub fn timed_out(&self) -> bool {
        self.timed_out.get()
    }

    /// The report's filter with the client's `q`: the query string of the aggregation, and
    /// the start of every row's query.
    pub fn filter(&self, base: &[String]) -> Vec<String> {
        let mut clauses = base.to_vec();
        if let Some(q) = &self.request.q {
            clauses.push(format!("({q})"));
        }
        clauses
    }

    /// The most groups a report enumerates. Groups are enumerated exhaustively so that every
    /// row is exact; a report with more groups is refused as too expensive.
    pub fn group_cap(&self) -> u32 {
        self.limits.aggregation_bucket_limit
    }

    /// Groups the documents of `[start, end)` matching `clauses` by `keys` (missing keywords
    /// are the empty string, missing integers `None`), with their count, first and last times
    /// and the `extras` (kept in [`Group::extras`], in order).
    pub fn groups(&self, clauses: &[String], keys: &[Key], extras: &[Extra]) -> Result<Vec<Group>> {
        Ok(self.group_set(clauses, keys, extras)?.all())
    }

    /// The `limit` groups of [`Ctx::groups`] that come first when each group is one row
    /// ordered by [`Order::ByCount`]: `priority` (of the value of its key field, smaller
    /// first), then the largest count, then the key values in key order (what [`Row::key`]
    /// and [`Row::user`] make the rows' tie-break). Only these are named: a report over a day
    /// of exec sessions may have hundreds of thousands of groups.
    pub fn top_groups(
        &self,
        clauses: &[String],
        keys: &[Key],
        extras: &[Extra],
        priority: Option<(&'static str, &RankOf)>,
    ) -> Result<Vec<Group>> {
        let set = self.group_set(clauses, keys, extras)?;
        let keys = self.keys_with_cluster(keys);
        let priority = priority.and_then(|(field, f)| {
            let slot = keys.iter().position(|k| k.field() == field)?;
            Some((slot, f))
        });
        Ok(set.top(self.request.limit, priority))
    }

    /// `keys`, after the `cluster` key when the report groups by cluster too.
    fn keys_with_cluster(&self, keys: &[Key]) -> Vec<Key> {
        if self.request.by_cluster {
            std::iter::once(Key::Str(CLUSTER_KEY))
                .chain(keys.iter().copied())
                .collect()
        } else {
            keys.to_vec()
        }
    }

    fn group_set(
        &self,
        clauses: &[String],
        keys: &[Key],
        extras: &[Extra],
    ) -> Result<group::GroupSet> {
        let request = self.request;
        // `group_by=cluster`: every group (and so every row, see [`Row::of`]) per cluster too.
        let keys = &self.keys_with_cluster(keys)[..];
        let text = join(clauses);
        let query = crate::query_text::build_query(
            self.snapshot,
            &text,
            request.start,
            request.end,
            &request.scope,
        )?;
        let pass = group::PassKey {
            query: &text,
            keys,
            extras,
            scope: serde_json::to_string(&request.scope).unwrap_or_default(),
            start: request.start,
            end: request.end,
        };
        let targets: Vec<&SearchTarget> = self
            .snapshot
            .targets
            .iter()
            .filter(|t| t.overlaps(request.start, request.end))
            .collect();
        // A searcher's other parts are asked while its own is grouped, and merged with it.
        let spec = self
            .remote
            .map(|_| PassSpec::new(&text, keys, extras, request.start, request.end));
        let remote_timed_out = Cell::new(false);
        let outcome = std::thread::scope(|scope| {
            let asked = self
                .remote
                .zip(spec.as_ref())
                .map(|(remote, spec)| scope.spawn(move || remote.groups(spec)));
            let others = || {
                let Some(asked) = asked else {
                    return Ok(Vec::new());
                };
                let answers = asked
                    .join()
                    .map_err(|_| Error::Internal("asking the indexers failed".into()))??;
                answers
                    .into_iter()
                    .map(|answer| {
                        if answer.timed_out {
                            remote_timed_out.set(true);
                        }
                        answer.into_target(keys, extras)
                    })
                    .collect::<Result<Vec<_>>>()
            };
            group::group(
                &targets,
                query.as_ref(),
                &pass,
                others,
                self.group_cap() as usize,
                self.limits.parallelism,
                Instant::now() + self.limits.timeout,
            )
        })?;
        self.timed_out
            .set(self.timed_out.get() || outcome.timed_out || remote_timed_out.get());
        Ok(outcome.groups)
    }
}

/// A report's rank of a key value before counts ([`Ctx::top_groups`]): smaller first.
pub(crate) type RankOf = dyn Fn(&KeyValue) -> u8;

/// A grouping key: a keyword or an integer fast field, or the fixed window of this many
/// nanoseconds the event's time falls in (its value is the window's start).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Key {
    Str(&'static str),
    Int(&'static str),
    Window(i64),
}

impl Key {
    pub(crate) fn field(self) -> &'static str {
        match self {
            Key::Str(field) | Key::Int(field) => field,
            Key::Window(_) => TIMESTAMP_FIELD,
        }
    }
}

/// The key `group_by=cluster` adds to every report's groups.
const CLUSTER_KEY: &str = "cluster";

/// `user` and `impersonated_user`: the keys of every report that groups by user.
pub(crate) const USER_KEYS: [Key; 2] = [Key::Str("user"), Key::Str("impersonated_user")];

/// The value of one key in one group.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum KeyValue {
    /// A keyword; empty when the documents do not have the field. Shared: a target names each
    /// value once.
    Str(Arc<str>),
    /// An integer; `None` when the documents do not have the field.
    Int(Option<i64>),
}

/// The documents sharing one combination of key values.
#[derive(Clone)]
pub(crate) struct Group {
    pub values: Vec<(Key, KeyValue)>,
    pub count: u64,
    pub first: Option<i64>,
    pub last: Option<i64>,
    /// What the grouping's extras gathered, in their order.
    pub extras: Vec<ExtraValue>,
}

impl Group {
    /// The keyword value of `field` ("" when absent or not a key).
    pub fn str(&self, field: &str) -> &str {
        self.values
            .iter()
            .find_map(|(key, value)| match value {
                KeyValue::Str(text) if key.field() == field => Some(text.as_ref()),
                _ => None,
            })
            .unwrap_or_default()
    }

    /// The start of the group's window ([`Key::Window`]).
    pub fn window(&self) -> Option<i64> {
        self.values
            .iter()
            .find_map(|(key, value)| match (key, value) {
                (Key::Window(_), KeyValue::Int(start)) => *start,
                _ => None,
            })
    }

    /// The integer value of `field`.
    pub fn int(&self, field: &str) -> Option<i64> {
        self.values.iter().find_map(|(key, value)| match value {
            KeyValue::Int(n) if key.field() == field => *n,
            _ => None,
        })
    }
}

/// `timestamp` in `[start, end)`, exact to the nanosecond.
pub(crate) fn time_range(start: i64, end: i64) -> String {
    format!(
        "{TIMESTAMP_FIELD}:[{} TO {}}}",
        Timestamp(start).to_rfc3339(),
        Timestamp(end).to_rfc3339()
    )
}

/// The `limit` groups that come first when each group is one row ordered by
/// [`Order::ByCount`]: `priority`, then the largest count, then the key values in key order.
/// The plain sort that [`Ctx::top_groups`] must agree with, kept as the tests' reference.
#[cfg(test)]
pub(crate) fn top(
    mut groups: Vec<Group>,
    limit: usize,
    priority: impl Fn(&Group) -> u8,
) -> Vec<Group> {
    if groups.len() <= limit {
        return groups;
    }
    let rank = |g: &Group| (priority(g), Reverse(g.count));
    let order = |a: &Group, b: &Group| {
        rank(a).cmp(&rank(b)).then_with(|| {
            a.values
                .iter()
                .map(|(_, v)| v)
                .cmp(b.values.iter().map(|(_, v)| v))
        })
    };
    if limit == 0 {
        return Vec::new();
    }
    groups.select_nth_unstable_by(limit - 1, order);
    groups.truncate(limit);
    groups
}

/// How rows are ordered before `limit` applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Order {
    /// [`Row::priority`] first, then the largest count, then the query text.
    ByCount,
    /// Oldest [`Row::time`] first.
    ByTime,
}

/// One row of a report before rendering.
#[derive(Debug, Clone, Default)]
pub(crate) struct Row {
    /// Group keys and report-specific columns.
    pub columns: Vec<(&'static str, Value)>,
    /// Columns that add up when rows with the same query fold into one.
    pub sums: Vec<(&'static str, u64)>,
    pub count: u64,
    pub first: Option<i64>,
    pub last: Option<i64>,
    /// What selects the row's events within the report's filter.
    pub clauses: Vec<String>,
    /// Rows of a smaller priority come first ([`Order::ByCount`]).
    pub priority: u8,
    /// The row's key values in order (absent ones empty): the tie-break between rows of the
    /// same priority and count.
    pub tie: Vec<String>,
    /// The row's time ([`Order::ByTime`]).
    pub time: i64,
}

impl Row {
    /// A row counting the group's events: without columns yet, but for `cluster` when the
    /// report groups by cluster too (`group_by=cluster`).
    pub fn of(group: &Group) -> Row {
        let row = Row {
            count: group.count,
            first: group.first,
            last: group.last,
            ..Row::default()
        };
        let by_cluster = group
            .values
            .iter()
            .any(|(key, _)| matches!(key, Key::Str(CLUSTER_KEY)));
        if by_cluster {
            row.key(group, CLUSTER_KEY)
        } else {
            row
        }
    }

    /// Adds a keyword key of the group as a column, and its clause.
    pub fn key(mut self, group: &Group, field: &'static str) -> Row {
        let value = group.str(field);
        self.clauses.push(eq(field, value));
        self.columns.push((field, Value::String(value.to_string())));
        self.tie.push(value.to_string());
        self
    }

    /// Adds `user` and, when the requests impersonated someone, `impersonated_user`.
    pub fn user(mut self, group: &Group) -> Row {
        self = self.key(group, "user");
        let impersonated = group.str("impersonated_user");
        self.clauses.push(eq("impersonated_user", impersonated));
        self.tie.push(impersonated.to_string());
        if !impersonated.is_empty() {
            self.columns
                .push(("impersonated_user", Value::String(impersonated.to_string())));
        }
        self
    }

    /// Adds a column that is not a key.
    pub fn column(mut self, name: &'static str, value: Value) -> Row {
        self.columns.push((name, value));
        self
    }

    /// Adds a clause that is not a column.
    pub fn clause(mut self, clause: String) -> Row {
        self.clauses.push(clause);
        self
    }

    /// Adds a column summed when rows fold.
    pub fn sum(mut self, name: &'static str, value: u64) -> Row {
        self.sums.push((name, value));
        self
    }

    fn absorb(&mut self, other: Row) {
        self.count += other.count;
        self.first = min_opt(self.first, other.first);
        self.last = max_opt(self.last, other.last);
        for (name, value) in other.sums {
            match self.sums.iter_mut().find(|(n, _)| *n == name) {
                Some((_, total)) => *total += value,
                None => self.sums.push((name, value)),
            }
        }
    }
}

pub(crate) fn min_opt(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

pub(crate) fn max_opt(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// Merges rows that select the same events (the same clauses): groups finer than the report's
/// rows, such as a status code folded into an outcome, become one row.
pub(crate) fn fold(rows: Vec<Row>) -> Vec<Row> {
    let mut merged: Vec<Row> = Vec::with_capacity(rows.len());
    let mut index: HashMap<Vec<String>, usize> = HashMap::with_capacity(rows.len());
    for row in rows {
        match index.get(&row.clauses) {
            Some(&at) => merged[at].absorb(row),
            None => {
                index.insert(row.clauses.clone(), merged.len());
                merged.push(row);
            }
        }
    }
    merged
}

/// Orders the rows, keeps `limit` and renders each as a flat JSON object: its columns,
/// `count`, the summed columns, `first_seen`, `last_seen` (RFC 3339, `null` for an empty time
/// bucket) and `query` (the report's `filter` and the row's clauses).
pub(crate) fn render(
    filter: &[String],
    mut rows: Vec<Row>,
    order: Order,
    limit: usize,
) -> Vec<Map<String, Value>> {
    let query_of = |row: &Row| {
        let mut clauses = filter.to_vec();
        clauses.extend(row.clauses.iter().cloned());
        join(&clauses)
    };
    let mut keyed: Vec<(String, Row)> = rows.drain(..).map(|r| (query_of(&r), r)).collect();
    match order {
        Order::ByCount => keyed.sort_by(|(qa, a), (qb, b)| {
            (a.priority, Reverse(a.count), &a.tie, qa).cmp(&(
                b.priority,
                Reverse(b.count),
                &b.tie,
                qb,
            ))
        }),
        Order::ByTime => keyed.sort_by(|(qa, a), (qb, b)| (a.time, qa).cmp(&(b.time, qb))),
    }
    keyed.truncate(limit);
    keyed
        .into_iter()
        .map(|(query, row)| {
            let mut out = Map::new();
            for (name, value) in row.columns {
                out.insert(name.to_string(), value);
            }
            out.insert("count".into(), json!(row.count));
            for (name, value) in row.sums {
                out.insert(name.to_string(), json!(value));
            }
            let time = |t: Option<i64>| t.map_or(Value::Null, |t| json!(Timestamp(t).to_rfc3339()));
            out.insert("first_seen".into(), time(row.first));
            out.insert("last_seen".into(), time(row.last));
            out.insert("query".into(), Value::String(query));
            out
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folding_sums_counts_and_widens_times() {
        let row = |count, first, last, errors| Row {
            count,
            first: Some(first),
            last: Some(last),
            clauses: vec!["user:\"a\"".into()],
            sums: vec![("errors", errors)],
            ..Row::default()
        };
        let other = Row {
            clauses: vec!["user:\"b\"".into()],
            count: 1,
            ..Row::default()
        };
        let folded = fold(vec![row(2, 10, 20, 0), other, row(3, 5, 15, 3)]);
        assert_eq!(folded.len(), 2);
        assert_eq!(folded[0].count, 5);
        assert_eq!((folded[0].first, folded[0].last), (Some(5), Some(20)));
        assert_eq!(folded[0].sums, vec![("errors", 3)]);
    }

    #[test]
    fn top_keeps_priority_then_count_then_key_values() {
        let group = |user: &str, count, code: Option<i64>| Group {
            values: vec![
                (Key::Str("user"), KeyValue::Str(Arc::from(user))),
                (Key::Int("status_code"), KeyValue::Int(code)),
            ],
            count,
            first: None,
            last: None,
            extras: Vec::new(),
        };
        let groups = vec![
            group("d", 1, Some(200)),
            group("b", 1, Some(403)),
            group("c", 9, Some(403)),
            group("a", 1, Some(403)),
            group("b", 1, None),
            group("e", 2, Some(200)),
        ];
        let allowed_first = |g: &Group| u8::from(g.int("status_code").is_none_or(|c| c >= 400));
        let mut kept: Vec<(String, Option<i64>)> = top(groups.clone(), 4, allowed_first)
            .iter()
            .map(|g| (g.str("user").to_string(), g.int("status_code")))
            .collect();
        kept.sort();
        // Allowed first (e, d), then the denied by count (c), then the ties by value: a
        // before b.
        assert_eq!(
            kept,
            [
                ("a".to_string(), Some(403)),
                ("c".to_string(), Some(403)),
                ("d".to_string(), Some(200)),
                ("e".to_string(), Some(200)),
            ]
        );
        assert_eq!(top(groups.clone(), 10, allowed_first).len(), 6);
        assert!(top(groups, 0, allowed_first).is_empty());
    }

    #[test]
    fn rendering_orders_and_limits() {
        let row = |user: &str, count, priority| Row {
            columns: vec![("user", json!(user))],
            clauses: vec![eq("user", user)],
            count,
            priority,
            ..Row::default()
        };
        let rows = vec![
            row("a", 1, 0),
            row("b", 5, 1),
            row("c", 3, 0),
            row("d", 3, 0),
        ];
        let out = render(&["x:1".to_string()], rows, Order::ByCount, 3);
        let users: Vec<&str> = out.iter().map(|r| r["user"].as_str().unwrap()).collect();
        assert_eq!(users, ["c", "d", "a"]);
        assert_eq!(out[0]["query"], json!("x:1 user:\"c\""));
        assert_eq!(out[0]["count"], json!(3));
        assert_eq!(out[0]["first_seen"], Value::Null);
    }
}
