//! The one place alerting meets query execution: a [`trawl_alerting::Searcher`] over this
//! process's indexer (`trawl standalone`: the same `trawl_query::search` the search route runs)
//! or over the searcher's fan-out (`trawl searcher`: the root search route, called in-process),
//! and the start of the engine.
//!
//! Alerting runs in `trawl standalone` and, when roles are split, in `trawl searcher` (which
//! sees every indexer and the shared tier); never in `trawl indexer`, whose data is only part
//! of the cluster's. Searchers sharing a PostgreSQL metastore take turns: the one holding the
//! `alerting` lease there evaluates and sends ([`LeaseLeader`]); without one, every searcher
//! given `[alerting]` evaluates.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::body::Body;
use axum::Router;
use prometheus_client::registry::Registry;
use serde_json::{json, Value};
use trawl_alerting::{Found, Search, SearchFuture, Searcher};
use trawl_config::Config;
use trawl_index::StreamSource;
use trawl_model::Timestamp;
use trawl_query::QueryLimits;

/// Largest search answer read from the searcher's route (samples are at most 100 hits).
const MAX_ANSWER_BYTES: usize = 64 << 20;

/// Searches this process's own data through the read contract (the indexer in standalone).
#[cfg_attr(not(feature = "indexer"), allow(dead_code))]
struct Local<S> {
    source: Arc<S>,
    limits: QueryLimits,
}

impl<S: StreamSource> Searcher for Local<S> {
    fn search(&self, search: Search) -> SearchFuture {
        let source = Arc::clone(&self.source);
        let limits = self.limits.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                let request = trawl_query::SearchRequest {
                    q: Some(search.query),
                    start: Some(search.start.to_rfc3339()),
                    end: Some(search.end.to_rfc3339()),
                    limit: Some(search.limit),
                    aggs: search.aggs,
                    ..trawl_query::SearchRequest::default()
                };
                let parsed = request
                    .parse(Timestamp::now(), &limits)
                    .map_err(|err| err.to_string())?;
                let snapshot = source
                    .snapshot(&search.stream, parsed.start, parsed.end)
                    .map_err(|err| err.to_string())?;
                let answer =
                    trawl_query::search(&snapshot, &parsed, &limits).map_err(|e| e.to_string())?;
                Ok(Found {
                    total: answer.total,
                    hits: answer.hits,
                    aggregations: answer.aggregations,
                    timed_out: answer.timed_out,
                })
            })
            .await
            .map_err(|err| format!("search task failed: {err}"))?
        })
    }
}

/// Searches through the searcher's own search route (fan-out to every indexer), in-process.
struct Root(Router);

impl Searcher for Root {
    fn search(&self, search: Search) -> SearchFuture {
        let router = self.0.clone();
        Box::pin(async move {
            use tower::ServiceExt;
            let body = json!({
                "q": search.query,
                "start": search.start.to_rfc3339(),
                "end": search.end.to_rfc3339(),
                "limit": search.limit,
                "aggs": search.aggs,
            });
            let request = axum::http::Request::post(format!("/api/v1/{}/search", search.stream))
                .header("content-type", "application/json")
                .body(Body::from(body.to_string()))
                .map_err(|err| err.to_string())?;
            let response = match router.oneshot(request).await {
                Ok(response) => response,
                Err(never) => match never {},
            };
            let status = response.status();
            let bytes = axum::body::to_bytes(response.into_body(), MAX_ANSWER_BYTES)
                .await
                .map_err(|err| err.to_string())?;
            let value: Value = serde_json::from_slice(&bytes).map_err(|err| err.to_string())?;
            if !status.is_success() {
                return Err(value["error"]["message"]
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("search answered {status}")));
            }
            Ok(Found {
                total: value["total"].as_u64().unwrap_or(0),
                hits: value["hits"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|hit| hit.as_object().cloned())
                    .collect(),
                aggregations: value.get("aggregations").cloned(),
                timed_out: value["timed_out"].as_bool().unwrap_or(false)
                    || value.get("partial").is_some(),
            })
        })
    }
}

/// A searcher over this process's own data: the indexer's, in `trawl standalone`.
#[cfg_attr(not(feature = "indexer"), allow(dead_code))]
pub fn local<S: StreamSource>(source: Arc<S>, config: &Config) -> Arc<dyn Searcher> {
    Arc::new(Local {
        source,
        limits: QueryLimits::from_config(&config.query),
    })
}

/// Name of the alerting lease in the metastore.
const ALERTING_LEASE: &str = "alerting";

/// Leadership by the `alerting` lease of a PostgreSQL metastore: this process leads while it
/// holds the lease, and stops a third of the term before the lease would lapse unrenewed (the
/// metastore away, or the lease taken), so that two processes never both lead. A process
/// that stops gives the lease up ([`LeaseLeader::release`]), so another takes it at its next
/// try instead of after the term.
pub struct LeaseLeader {
    since: Instant,
    /// Milliseconds after `since` until which this process leads.
    until_ms: AtomicU64,
    holder: String,
    /// The lease's term (`alerting.lease_secs`).
    term: Duration,
    metastore: trawl_storage::pg::PgMetastore,
    /// Whether the lease was given up for good; held across each try, so that no try takes
    /// the lease again after it was given up.
    released: tokio::sync::Mutex<bool>,
}

impl trawl_alerting::Leadership for LeaseLeader {
    fn is_leader(&self) -> bool {
        let now = u64::try_from(self.since.elapsed().as_millis()).unwrap_or(u64::MAX);
        now < self.until_ms.load(Ordering::Relaxed)
    }
}

impl LeaseLeader {
    /// Tries the lease now and every third of `term`, as `holder`, in the metastore at `uri`.
    fn start(uri: &str, holder: String, term: Duration) -> Arc<LeaseLeader> {
        let leader = Arc::new(LeaseLeader {
            since: Instant::now(),
            until_ms: AtomicU64::new(0),
            holder,
            term,
            metastore: trawl_storage::pg::PgMetastore::lazy(
                uri,
                Arc::new(trawl_storage::StorageMetrics::default()),
            ),
            released: tokio::sync::Mutex::new(false),
        });
        let task = Arc::clone(&leader);
        tokio::spawn(async move {
            let mut was_leader = false;
            loop {
                {
                    let released = task.released.lock().await;
                    if *released {
                        return;
                    }
                    task.try_once().await;
                }
                let leads = trawl_alerting::Leadership::is_leader(task.as_ref());
                if leads != was_leader {
                    tracing::info!(holder = task.holder, leads, "alerting leadership changed");
                    was_leader = leads;
                }
                tokio::time::sleep(task.term / 3).await;
            }
        });
        leader
    }

    async fn try_once(&self) {
        let asked = self.since.elapsed();
        match self
            .metastore
            .try_lease(ALERTING_LEASE, &self.holder, self.term)
            .await
        {
            Ok(true) => {
                let until = asked + self.term - self.term / 3;
                let until = u64::try_from(until.as_millis()).unwrap_or(u64::MAX);
                self.until_ms.store(until, Ordering::Relaxed);
            }
            Ok(false) => self.until_ms.store(0, Ordering::Relaxed),
            // Leading until the lease taken last would lapse.
            Err(err) => tracing::warn!(%err, "the alerting lease could not be renewed"),
        }
    }

    /// Stops leading and gives the lease up (this process is stopping).
    pub async fn release(&self) {
        let mut released = self.released.lock().await;
        *released = true;
        self.until_ms.store(0, Ordering::Relaxed);
        match self
            .metastore
            .release_lease(ALERTING_LEASE, &self.holder)
            .await
        {
            Ok(()) => tracing::info!(holder = self.holder, "gave the alerting lease up"),
            Err(err) => tracing::warn!(%err, "the alerting lease could not be given up"),
        }
    }
}

/// This process as a holder of the alerting lease, unique per process: in containers every
/// searcher may listen on 0.0.0.0:7400 as pid 1, so the host name and a random part tell them
/// apart.
fn lease_holder(external_url: &str) -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .unwrap_or_default();
    format!(
        "{host} {external_url} pid {} {:016x}",
        std::process::id(),
        rand::random::<u64>()
    )
}

/// Starts alerting when `[alerting]` lists rules, over `local` (standalone) or else the
/// searcher's fan-out (over `remote`, the shared tier, when there is one); answers the routes
/// of `GET /api/v1/rules` and `GET /api/v1/alerts`. A searcher with a PostgreSQL metastore
/// evaluates only while it holds the `alerting` lease (as its host name, `external_url`, its
/// pid and a random part: a holder of its own, whatever it listens on); the lease is returned,
/// to be given up when the process stops.
pub fn start(
    config: &Config,
    local: Option<Arc<dyn Searcher>>,
    remote: Option<Arc<trawl_query::remote::RemoteSplits>>,
    external_url: String,
    registry: &mut Registry,
) -> anyhow::Result<(Router, Option<Arc<LeaseLeader>>)> {
    let limits = QueryLimits::from_config(&config.query);
    let is_searcher = local.is_none();
    let searcher: Arc<dyn Searcher> = match local {
        Some(local) => local,
        None => {
            let mut settings = trawl_query::distributed::RootSettings::from_config(&config.query)?;
            settings.remote = remote;
            Arc::new(Root(
                trawl_query::distributed::root_routes(settings, limits)?.with_state(()),
            ))
        }
    };
    let lease = (is_searcher && config.metastore.is_postgres()).then(|| {
        let holder = lease_holder(&external_url);
        tracing::info!(%holder, "alerting runs while this searcher holds the alerting lease");
        LeaseLeader::start(
            &config.metastore.uri,
            holder,
            Duration::from_secs(config.alerting.lease_secs.max(3)),
        )
    });
    let leader: Arc<dyn trawl_alerting::Leadership> = match &lease {
        Some(lease) => lease.clone(),
        None => Arc::new(trawl_alerting::Always),
    };
    let settings = trawl_alerting::Settings {
        config: config.alerting.clone(),
        state_dir: config.data_dir.join("alerting"),
        external_url: if config.alerting.external_url.is_empty() {
            external_url
        } else {
            config.alerting.external_url.clone()
        },
    };
    let engine = trawl_alerting::Engine::start(settings, searcher, leader, registry)
        .context("starting alerting")?;
    Ok((engine.routes(), lease))
}

#[cfg(test)]
mod tests {
    #[test]
    fn two_processes_at_the_same_address_are_two_lease_holders() {
        let one = super::lease_holder("http://0.0.0.0:7400");
        let other = super::lease_holder("http://0.0.0.0:7400");
        assert_ne!(one, other);
        assert!(one.contains("http://0.0.0.0:7400 pid "), "{one}");
    }
}
