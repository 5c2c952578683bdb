//! `audit`: every audit report over N audit events, each timed `runs` times.

use serde_json::Value;

use crate::client::{client, get_json, stream_stats};
use crate::corpus::audit::AuditGenerator;
use crate::scenarios::{load, time_runs, Ctx, Indexer};
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
    let indexer = Indexer::start(ctx, &[])?;
    let http = client()?;
    load(
        ctx,
        S,
        &http,
        &indexer,
        "audit",
        AuditGenerator::new(ctx.seed, 500.0),
        docs,
    )?;
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
        let mut rows = 0;
        let result = time_runs(runs, || {
            if let Some(answer) = get_json(&http, &url)? {
                rows = answer
                    .get("rows")
                    .and_then(Value::as_array)
                    .map_or(0, Vec::len);
            }
            Ok(())
        });
        match result {
            Ok(samples) => {
                report::percentiles(S, name, &samples);
                report::metric(S, &format!("{name}_rows"), rows as f64, "rows");
            }
            Err(e) => report::unavailable(S, name, &e.to_string()),
        }
    }
    Ok(())
}
