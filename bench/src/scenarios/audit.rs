//! `audit`: every audit report over N audit events, each timed `runs` times.

use serde_json::Value;

use crate::client::{client, get_json, stream_stats};
use crate::corpus::audit::AuditGenerator;
use crate::scenarios::{load, loaded_indexer, time_runs, Ctx};
use crate::{report, Result};

const S: &str = "audit";

/// The reports of `GET /api/v1/audit/reports/{name}`.
pub const REPORTS: &[&str] = &[
    "top-users",
    "top-resources",
    "top-source-ips",
    "top-user-agents",
    "forbidden",
    "forbidden-bursts",
    "secret-access",
    "token-requests",
    "exec-attach",
    "deletions",
    "privileged-pods",
    "anonymous",
    "rbac-changes",
    "impersonation",
    "timeline",
    "latency",
];

/// Runs the scenario over 10M events (100k with `--quick`, `--docs` to choose).
pub fn run(ctx: &Ctx) -> Result<()> {
    let docs = ctx.docs_or(100_000, 10_000_000);
    let http = client()?;
    let indexer = loaded_indexer(ctx, S, &http, "audit", docs, |indexer| {
        load(
            ctx,
            S,
            &http,
            indexer,
            "audit",
            AuditGenerator::new(ctx.seed, 500.0),
            docs,
        )
        .map(drop)
    })?;
    let (bytes, _) = stream_stats(&http, indexer.url(), "audit")?;
    report::metric(S, "index_bytes", bytes as f64 / 1e6, "MB");
    let runs = ctx.runs();
    for name in REPORTS {
        let url = format!("{}/api/v1/audit/reports/{name}", indexer.url());
        match get_json(&http, &url) {
            Ok(None) => {
                report::unavailable(S, name, "404");
                continue;
            }
            Err(e) => {
                report::unavailable(S, name, &e.to_string());
                continue;
            }
            Ok(Some(_)) => {}
        }
        // Cold: every run a distinct query (a filter that excludes no event), so the per-split
        // aggregation cache never answers; this is the figure held against the goal.
        let mut rows = 0;
        let mut run = 0usize;
        let cold =
            time_runs(runs, || {
                run += 1;
                let q = format!("NOT user:\"bench-nobody-{run}\"");
                let answer = http.get(&url).query(&[("q", q.as_str())]).send()?;
                let answer: Value = serde_json::from_str(&answer.error_for_status()?.text()?)
                    .map_err(|e| crate::Error::Protocol {
                        what: url.clone(),
                        detail: e.to_string(),
                    })?;
                rows = answer
                    .get("rows")
                    .and_then(Value::as_array)
                    .map_or(0, Vec::len);
                Ok(())
            });
        // Repeated: the same request again, as a dashboard refreshes it; sealed splits answer
        // from the cache.
        let repeated = time_runs(runs, || get_json(&http, &url).map(drop));
        match (cold, repeated) {
            (Ok(cold), Ok(repeated)) => {
                report::percentiles(S, name, &cold);
                report::percentiles(S, &format!("{name}_repeated"), &repeated);
                report::metric(S, &format!("{name}_rows"), rows as f64, "rows");
            }
            (Err(e), _) | (_, Err(e)) => report::unavailable(S, name, &e.to_string()),
        }
    }
    Ok(())
}
