//! The shape of traffic: `timeline` (requests per interval by status class) and `latency`
//! (percentiles per verb and resource).

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::engine::{max_opt, min_opt, render, time_range, Ctx, Key, Order, Row};
use super::filter::COMPLETE;
use super::group::{window_start, Extra, ExtraValue};
use crate::error::{Error, Result};

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
    let mut bounds = None;
    if let (Some(start), Some(end)) = (start, end) {
        if start < end {
            bounds = Some((
                window_start(start, interval),
                window_start(end - 1, interval),
            ));
        }
    }
    if let Some((first, last)) = bounds {
        check_windows(ctx, first, last, interval)?;
    }
    let filter = ctx.filter(&[COMPLETE.to_string()]);
    let keys = [Key::Window(interval), Key::Str("status_class")];
    // A window's row before any request is counted in it.
    let empty = |window: i64| Row {
        time: window,
        sums: CLASSES.iter().map(|c| (*c, 0)).collect(),
        ..Row::default()
    };
    let groups = ctx.groups(&filter, &keys, &[])?;
    let mut windows: BTreeMap<i64, Row> = BTreeMap::new();
    for g in &groups {
        let Some(window) = g.window() else { continue };
        let row = windows.entry(window).or_insert_with(|| empty(window));
        row.count += g.count;
        row.first = min_opt(row.first, g.first);
        row.last = max_opt(row.last, g.last);
        if let Some((_, n)) = row
            .sums
            .iter_mut()
            .find(|(c, _)| *c == g.str("status_class"))
        {
            *n += g.count;
        }
    }
    // Every window from the first to the last, empty ones included, as the range asks (or,
    // without one, as the events span).
    let span = bounds.or_else(|| Some((*windows.keys().next()?, *windows.keys().last()?)));
    if let Some((first, last)) = span {
        check_windows(ctx, first, last, interval)?;
        let mut window = first;
        while window <= last {
            windows.entry(window).or_insert_with(|| empty(window));
            window = window.saturating_add(interval);
        }
    }
    let rows = windows
        .into_iter()
        .map(|(window, mut row)| {
            let classes = std::mem::take(&mut row.sums);
            let row = row.column(
                "interval_start",
                json!(trawl_model::Timestamp(window).to_rfc3339()),
            );
            classes
                .into_iter()
                .fold(row, |row, (class, n)| row.column(class, json!(n)))
                .clause(time_range(window, window.saturating_add(interval)))
        })
        .collect();
    Ok(render(&filter, rows, Order::ByTime, request.limit))
}

/// p50, p90 and p99 of `latency_ms` (estimates within about 1%, rounded to 0.01 ms; `null`
/// when no request of the row has a latency) per verb and resource.
pub(super) fn latency(ctx: &Ctx) -> Rows {
    let filter = ctx.filter(&[COMPLETE.to_string()]);
    let keys = [Key::Str("verb"), Key::Str("resource")];
    let groups = ctx.top_groups(&filter, &keys, &[Extra::Sketch("latency_ms")], None)?;
    let rows = groups
        .iter()
        .map(|g| {
            let percentile = |p: f64| match g.extras.first() {
                Some(ExtraValue::Sketch(sketch)) => sketch
                    .quantile(p / 100.0)
                    .ok()
                    .flatten()
                    .filter(|v| v.is_finite())
                    .map(|v| (v * 100.0).round() / 100.0),
                _ => None,
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

/// The status classes a timeline row counts, as columns.
const CLASSES: [&str; 4] = ["2xx", "3xx", "4xx", "5xx"];

/// Refuses a timeline of more windows than a report may have groups.
fn check_windows(ctx: &Ctx, first: i64, last: i64, interval: i64) -> Result<()> {
    let windows = (i128::from(last) - i128::from(first)) / i128::from(interval) + 1;
    if windows > i128::from(ctx.group_cap()) {
        return Err(Error::TooExpensive(format!(
            "a timeline of {windows} intervals is more than the {} allowed: choose a longer \
             `interval`",
            ctx.group_cap()
        )));
    }
    Ok(())
}
