//! The cluster's Kubernetes Events, collected by one collector of the cluster at a time and
//! shipped to the indexer's `events` stream.
//!
//! ```text
//! every collector ──try the Lease every third of its term──▶ coordination.k8s.io/v1 Lease
//! the holder ──list Events (pages), then watch from the list's resourceVersion──▶ API server
//!            ──NDJSON of Event objects (cluster stamped)──▶ POST /api/v1/events/ingest
//!            ──resourceVersion of what the indexer acknowledged──▶ <data>/events.json
//! ```
//!
//! The holder resumes from the resourceVersion it saved, so a restart neither lists nor ships
//! the cluster's Events again; when the API answers 410 Gone (the version is too old), it
//! lists again. What a relist or a resend ships twice is one document in the index, which
//! identifies each update of an Event by its uid and resourceVersion. A holder that cannot
//! renew its lease stops watching; another collector takes the lease over once its term has
//! passed without renewal. Nothing here blocks the log files' delivery.

use std::path::PathBuf;
use std::pin::pin;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, ListParams, PostParams, WatchEvent, WatchParams};
use kube::Client;
use serde_json::{json, Value};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::metrics::Metrics;
use crate::ship::StreamIngest;

/// Events per page of a list, and at most per request to the indexer.
const PAGE: u32 = 500;
/// Attempts to ship one batch of Events before the collection starts over (and lists again).
const SHIP_ATTEMPTS: u32 = 6;

/// How long shipped-but-unflushed watch events wait for more before they are sent.
const FLUSH_AFTER: Duration = Duration::from_secs(1);
/// The server-side timeout of one watch request; the watch is then resumed.
const WATCH_TIMEOUT_SECS: u32 = 290;

/// What the Events collection needs besides the API client.
#[derive(Debug, Clone)]
pub struct EventsSettings {
    /// Who holds the lease: this collector's node name.
    pub identity: String,
    pub lease_namespace: String,
    pub lease_name: String,
    /// The lease's term: renewed every third of it, taken over once it passed unrenewed.
    pub lease: Duration,
    /// Where the last acknowledged resourceVersion is kept.
    pub state_path: PathBuf,
    /// The indexer's `events` stream.
    pub ingest: StreamIngest,
    /// Stamped on every Event as `cluster`.
    pub cluster: String,
}

/// Why collecting stopped.
#[derive(Debug)]
enum Stop {
    /// The watched resourceVersion is too old (410 Gone): list again.
    Gone,
    /// Anything else: retried with backoff.
    Failed(String),
}

/// Runs until `stop` turns `true`: tries the lease, and while holding it collects the Events.
pub async fn run(
    client: Client,
    settings: EventsSettings,
    metrics: Metrics,
    mut stop: watch::Receiver<bool>,
) {
    let leases: Api<Lease> = Api::namespaced(client.clone(), &settings.lease_namespace);
    let retry = (settings.lease / 3).max(Duration::from_millis(100));
    let mut failures = 0u32;
    loop {
        match acquire(&leases, &settings).await {
            Ok(true) => {
                info!(lease = %settings.lease_name, "holding the Events lease: collecting the cluster's Kubernetes Events");
                metrics.events_leader.set(1);
                let collect = collect(&client, &settings, &metrics);
                let renew = renew(&leases, &settings, retry);
                tokio::select! {
                    () = collect => {}
                    lost = renew => warn!(reason = %lost, "lost the Events lease: stopped collecting Events"),
                    _ = stop.changed() => {
                        metrics.events_leader.set(0);
                        return;
                    }
                }
                metrics.events_leader.set(0);
                failures = 0;
            }
            Ok(false) => failures = 0,
            Err(err) => {
                metrics.events_errors.inc();
                failures = failures.saturating_add(1);
                warn!(error = %err, "cannot read or take the Events lease");
            }
        }
        let delay = if failures > 0 {
            crate::backoff::next_delay(failures, Some(retry))
        } else {
            retry
        };
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            _ = stop.changed() => return,
        }
    }
}

/// The current time as the API writes `MicroTime`.
fn micro_now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Takes or renews the lease: `Ok(true)` when this collector holds it afterwards. A lease held
/// by another collector is taken over only once its term passed without renewal; two
/// collectors racing for it are told apart by the resourceVersion (a 409 loses).
async fn acquire(leases: &Api<Lease>, s: &EventsSettings) -> Result<bool, String> {
    let now = micro_now();
    let term = i64::try_from(s.lease.as_secs()).unwrap_or(i64::MAX).max(1);
    let current = match leases.get_opt(&s.lease_name).await {
        Ok(current) => current,
        Err(err) => return Err(err.to_string()),
    };
    let Some(current) = current else {
        let lease: Lease = serde_json::from_value(json!({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": s.lease_name, "namespace": s.lease_namespace},
            "spec": {"holderIdentity": s.identity, "leaseDurationSeconds": term,
                     "acquireTime": now, "renewTime": now, "leaseTransitions": 0}
        }))
        .map_err(|e| e.to_string())?;
        return match leases.create(&PostParams::default(), &lease).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
            Err(err) => Err(err.to_string()),
        };
    };
    let mut value = serde_json::to_value(&current).map_err(|e| e.to_string())?;
    let spec = &value["spec"];
    let holder = spec["holderIdentity"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let mine = holder == s.identity;
    let renewed = spec["renewTime"]
        .as_str()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc));
    let held_for = spec["leaseDurationSeconds"].as_i64().unwrap_or(term);
    let expired = renewed.is_none_or(|t| t + chrono::Duration::seconds(held_for) < Utc::now());
    if !mine && !holder.is_empty() && !expired {
        return Ok(false);
    }
    let transitions = spec["leaseTransitions"].as_i64().unwrap_or(0);
    let spec = &mut value["spec"];
    spec["renewTime"] = json!(now);
    spec["leaseDurationSeconds"] = json!(term);
    if !mine {
        spec["holderIdentity"] = json!(s.identity);
        spec["acquireTime"] = json!(now);
        spec["leaseTransitions"] = json!(transitions + 1);
    }
    let lease: Lease = serde_json::from_value(value).map_err(|e| e.to_string())?;
    match leases
        .replace(&s.lease_name, &PostParams::default(), &lease)
        .await
    {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
        Err(err) => Err(err.to_string()),
    }
}

/// Renews the lease every `every` while it is held; returns why it is no longer held.
async fn renew(leases: &Api<Lease>, s: &EventsSettings, every: Duration) -> String {
    let mut failing_since: Option<tokio::time::Instant> = None;
    loop {
        tokio::time::sleep(every).await;
        match acquire(leases, s).await {
            Ok(true) => failing_since = None,
            Ok(false) => return "another collector holds it".to_string(),
            Err(err) => {
                // Unrenewed past its term, the lease may be another's: stop before that.
                let since = *failing_since.get_or_insert_with(tokio::time::Instant::now);
                if since.elapsed() + every >= s.lease {
                    return format!("not renewed for a term: {err}");
                }
            }
        }
    }
}

/// Where the saved resourceVersion is kept in the state file.
const VERSION_KEY: &str = "resource_version";

/// The saved resourceVersion, if any.
fn load_version(s: &EventsSettings) -> Option<String> {
    crate::fsutil::read_position(&s.state_path, VERSION_KEY)
}

fn save_version(s: &EventsSettings, version: &str) -> Result<(), String> {
    crate::fsutil::save_position(&s.state_path, VERSION_KEY, version).map_err(|e| e.to_string())
}

/// Lists and watches for as long as the lease is held: after 410 Gone it lists again, after
/// any other failure it retries with backoff.
async fn collect(client: &Client, s: &EventsSettings, metrics: &Metrics) {
    let api: Api<Event> = Api::all(client.clone());
    let mut failures = 0u32;
    loop {
        let from = match load_version(s) {
            Some(version) => Ok(version),
            None => relist(&api, s, metrics).await,
        };
        let outcome = match from {
            Ok(from) => watch_from(&api, &from, s, metrics).await,
            Err(stop) => Err(stop),
        };
        match outcome {
            Ok(()) => failures = 0,
            Err(Stop::Gone) => {
                info!("the Events watch expired (410 Gone): listing them again");
                if let Err(err) = std::fs::remove_file(&s.state_path) {
                    if err.kind() != std::io::ErrorKind::NotFound {
                        warn!(error = %err, "cannot remove the saved Events resourceVersion");
                    }
                }
                failures = 0;
            }
            Err(Stop::Failed(err)) => {
                metrics.events_errors.inc();
                failures = failures.saturating_add(1);
                let delay = crate::backoff::next_delay(failures, None);
                warn!(error = %err, retry_in_ms = delay.as_millis() as u64, "collecting Kubernetes Events failed");
                tokio::time::sleep(delay).await;
            }
        }
    }
}

/// Lists every Event page by page, ships each page, saves the list's resourceVersion and
/// returns it (the watch starts there).
async fn relist(api: &Api<Event>, s: &EventsSettings, metrics: &Metrics) -> Result<String, Stop> {
    metrics.events_relists.inc();
    let mut continue_token: Option<String> = None;
    loop {
        let mut params = ListParams::default().limit(PAGE);
        if let Some(token) = &continue_token {
            params = params.continue_token(token);
        }
        let page = api.list(&params).await.map_err(|e| match e {
            kube::Error::Api(status) if status.code == 410 => Stop::Gone,
            other => Stop::Failed(format!("listing Events: {other}")),
        })?;
        let events: Vec<Value> = page
            .items
            .iter()
            .filter_map(|e| serde_json::to_value(e).ok())
            .collect();
        ship(s, metrics, events).await?;
        continue_token = page.metadata.continue_.filter(|t| !t.is_empty());
        if continue_token.is_none() {
            let version = page.metadata.resource_version.unwrap_or_default();
            save_version(s, &version).map_err(Stop::Failed)?;
            return Ok(version);
        }
    }
}

/// Watches from `from`, shipping what comes in small batches and saving the resourceVersion
/// of what the indexer acknowledged; returns at the end of one watch request.
async fn watch_from(
    api: &Api<Event>,
    from: &str,
    s: &EventsSettings,
    metrics: &Metrics,
) -> Result<(), Stop> {
    let params = WatchParams::default().timeout(WATCH_TIMEOUT_SECS);
    let stream = api.watch(&params, from).await.map_err(|e| match e {
        kube::Error::Api(status) if status.code == 410 => Stop::Gone,
        other => Stop::Failed(format!("watching Events: {other}")),
    })?;
    let mut stream = pin!(stream);
    let mut batch: Vec<Value> = Vec::new();
    let mut version: Option<String> = None;
    loop {
        let next = if batch.is_empty() {
            stream.next().await.map(Some)
        } else {
            match tokio::time::timeout(FLUSH_AFTER, stream.next()).await {
                Ok(next) => next.map(Some),
                Err(_) => Some(None),
            }
        };
        let event = match next {
            // The request ended (its timeout): ship what is left and resume.
            None => break,
            // Nothing new for a while: ship what came.
            Some(None) => {
                flush(s, metrics, &mut batch, version.as_deref()).await?;
                continue;
            }
            Some(Some(event)) => event,
        };
        match event {
            Ok(WatchEvent::Added(e) | WatchEvent::Modified(e)) => {
                version = e.metadata.resource_version.clone().or(version);
                if let Ok(value) = serde_json::to_value(&e) {
                    batch.push(value);
                }
            }
            // An Event deleted at the end of its time-to-live: nothing happened.
            Ok(WatchEvent::Deleted(e)) => {
                version = e.metadata.resource_version.clone().or(version);
            }
            Ok(WatchEvent::Bookmark(b)) => version = Some(b.metadata.resource_version),
            Ok(WatchEvent::Error(status)) if status.code == 410 => {
                flush(s, metrics, &mut batch, version.as_deref()).await?;
                return Err(Stop::Gone);
            }
            Ok(WatchEvent::Error(status)) => {
                flush(s, metrics, &mut batch, version.as_deref()).await?;
                return Err(Stop::Failed(format!("Events watch: {}", status.message)));
            }
            Err(err) => {
                flush(s, metrics, &mut batch, version.as_deref()).await?;
                return Err(Stop::Failed(format!("Events watch: {err}")));
            }
        }
        if batch.len() >= PAGE as usize {
            flush(s, metrics, &mut batch, version.as_deref()).await?;
        }
    }
    flush(s, metrics, &mut batch, version.as_deref()).await
}

/// Ships `batch` and then saves `version` (what the watch has seen up to its last event).
async fn flush(
    s: &EventsSettings,
    metrics: &Metrics,
    batch: &mut Vec<Value>,
    version: Option<&str>,
) -> Result<(), Stop> {
    ship(s, metrics, std::mem::take(batch)).await?;
    if let Some(version) = version {
        save_version(s, version).map_err(Stop::Failed)?;
    }
    Ok(())
}

/// Posts Events to the indexer, `cluster` stamped on each; only a 2xx counts.
async fn ship(s: &EventsSettings, metrics: &Metrics, events: Vec<Value>) -> Result<(), Stop> {
    if events.is_empty() {
        return Ok(());
    }
    // A few attempts before giving up: an indexer briefly away (replaying its WAL, a disk
    // full for a moment) must not cost a relist of every Event of the cluster.
    let mut attempt = 0u32;
    let answer = loop {
        match s.ingest.post(&events, &[("cluster", &s.cluster)]).await {
            Ok(answer) => break answer,
            Err(e) if attempt + 1 >= SHIP_ATTEMPTS => {
                return Err(Stop::Failed(format!("shipping Events: {e}")))
            }
            Err(e) => {
                attempt += 1;
                metrics.events_errors.inc();
                let delay = crate::backoff::next_delay(attempt, None);
                warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "shipping Events failed; sending them again");
                tokio::time::sleep(delay).await;
            }
        }
    };
    if let Some(rejected) = answer["rejected"].as_u64().filter(|n| *n > 0) {
        // Kept in the indexer's dead-letter store with their error.
        warn!(
            rejected,
            "the indexer refused some Events (see its dead letters)"
        );
    }
    metrics.events_shipped.inc_by(events.len() as u64);
    Ok(())
}
