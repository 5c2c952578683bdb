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
    let http = client()?;
    let indexer = match &ctx.keep_data {
        None => {
            let indexer = Indexer::start(ctx, &[])?;
            load_audit(ctx, &http, &indexer, docs)?;
            indexer
        }
        Some(dir) => {
            // A kept load is reused only when it is the same corpus.
            let marker = dir.join("bench-audit-load");
            let wanted = format!("docs={docs} seed={}\n", ctx.seed);
            let loaded = std::fs::read_to_string(&marker).ok();
            if loaded.is_none()
                && dir.exists()
                && dir.read_dir().map_err(crate::Error::Io)?.next().is_some()
            {
                return Err(crate::Error::Child(format!(
                    "{} is not empty and holds no bench load: choose another --keep-data",
                    dir.display()
                )));
            }
            if loaded.as_ref().is_some_and(|l| *l != wanted) {
                return Err(crate::Error::Child(format!(
                    "{} holds a load of {}, not of {}: choose another --keep-data",
                    dir.display(),
                    loaded.unwrap_or_default().trim(),
                    wanted.trim()
                )));
            }
            let indexer = Indexer::start_kept(ctx, &[], &dir.join("data"))?;
            if loaded.is_none() {
                load_audit(ctx, &http, &indexer, docs)?;
                std::fs::write(&marker, wanted).map_err(crate::Error::Io)?;
            } else {
                report::info(S, "kept_data", &dir.display().to_string());
                let took = crate::client::wait_total(
                    &http,
                    indexer.url(),
                    "audit",
                    docs,
                    std::time::Duration::from_millis(250),
                    std::time::Duration::from_secs(300),
                )?;
                report::metric(S, "reopen", took.as_secs_f64(), "s");
            }
            indexer
        }
    };
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

fn load_audit(
    ctx: &Ctx,
    http: &reqwest::blocking::Client,
    indexer: &Indexer,
    docs: u64,
) -> Result<()> {
    load(
        ctx,
        S,
        http,
        indexer,
        "audit",
        AuditGenerator::new(ctx.seed, 500.0),
        docs,
    )
    .map(drop)
}
