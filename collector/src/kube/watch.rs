//! The two watches feeding the cache — the pods of this node (`fieldSelector
//! spec.nodeName=<node>`, full objects: image and container ids live in spec and status) and
//! the namespaces (metadata only) — plus the timer evicting deleted pods after their grace
//! period. A failing watch is retried with exponential backoff and counted; it never stops the
//! collector.

use std::pin::pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, PartialObjectMeta};
use kube::runtime::watcher::{self, watcher, Event};
use kube::Client;
use serde_json::{Map, Value};
use tokio::sync::watch;
use tracing::{debug, info, warn};

use super::cache::MetaCache;
use super::pod::PodMeta;
use crate::metrics::Metrics;

/// Objects per list page: a node runs at most a few hundred pods, and a page of full pod
/// objects is decoded at once, so small pages bound the memory a relist takes.
const PAGE_SIZE: u32 = 50;
/// How often deleted pods past their grace period are evicted.
const EVICT_EVERY: Duration = Duration::from_secs(1);

/// What the watches need besides the client.
#[derive(Debug, Clone)]
pub struct WatchSettings {
    /// This node's name (the pods watched are those scheduled here).
    pub node: String,
    /// Annotation keys copied into records.
    pub annotations: Arc<[String]>,
}

/// Runs both watches and the eviction timer until `stop` turns `true` (or its sender is gone).
pub async fn run(
    client: Client,
    settings: WatchSettings,
    cache: Arc<MetaCache>,
    metrics: Metrics,
    mut stop: watch::Receiver<bool>,
) {
    let pods = watch_pods(client.clone(), &settings, &cache, &metrics);
    let namespaces = watch_namespaces(client, &cache, &metrics);
    let evict = async {
        let mut tick = tokio::time::interval(EVICT_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let evicted = cache.evict_expired(Instant::now());
            if evicted > 0 {
                debug!(evicted, "metadata of deleted pods evicted");
            }
            metrics
                .kube_pods_cached
                .set(i64::try_from(cache.pods_cached()).unwrap_or(i64::MAX));
        }
    };
    let stopped = async {
        while !*stop.borrow_and_update() {
            if stop.changed().await.is_err() {
                return;
            }
        }
    };
    tokio::select! {
        () = pods => {}
        () = namespaces => {}
        () = evict => {}
        () = stopped => {}
    }
}

/// Sleeps after the `failures`-th consecutive error of a watch, counting it.
async fn back_off(resource: &str, error: &watcher::Error, failures: &mut u32, metrics: &Metrics) {
    metrics.kube_watch_errors.inc();
    let delay = crate::backoff::next_delay(*failures, None);
    *failures = failures.saturating_add(1);
    let hint = match error {
        watcher::Error::InitialListFailed(kube::Error::Api(s))
        | watcher::Error::WatchStartFailed(kube::Error::Api(s))
            if s.code == 403 =>
        {
            " (the service account needs get, list and watch on pods and namespaces)"
        }
        _ => "",
    };
    warn!(resource, error = %error, retry_in_ms = delay.as_millis() as u64,
        "kubernetes watch failed{hint}; records carry path metadata meanwhile");
    tokio::time::sleep(delay).await;
}

async fn watch_pods(
    client: Client,
    settings: &WatchSettings,
    cache: &MetaCache,
    metrics: &Metrics,
) {
    let api: Api<Pod> = Api::all(client);
    let config = watcher::Config::default()
        .fields(&format!("spec.nodeName={}", settings.node))
        .page_size(PAGE_SIZE);
    let mut stream = pin!(watcher(api, config));
    let mut lists = 0u64;
    let mut failures = 0u32;
    while let Some(item) = stream.next().await {
        let event = match item {
            Ok(event) => event,
            Err(e) => {
                back_off("pods", &e, &mut failures, metrics).await;
                continue;
            }
        };
        failures = 0;
        let meta = |pod: &Pod| PodMeta::from_pod(pod, &settings.annotations);
        match event {
            Event::Init => {
                lists += 1;
                if lists > 1 {
                    metrics.kube_watch_restarts.inc();
                    info!(resource = "pods", "kubernetes watch relisting");
                }
                cache.pods_relist_started();
            }
            Event::InitApply(pod) | Event::Apply(pod) => {
                if let Some(m) = meta(&pod) {
                    cache.apply_pod(m);
                }
            }
            Event::Delete(pod) => {
                if let Some(m) = meta(&pod) {
                    debug!(namespace = %m.namespace, pod = %m.name, "pod deleted; metadata kept for the grace period");
                    cache.delete_pod(m, Instant::now());
                }
            }
            Event::InitDone => {
                cache.pods_relisted(Instant::now());
                info!(node = %settings.node, pods = cache.pods_cached(), "pods of this node listed");
            }
        }
        metrics
            .kube_pods_cached
            .set(i64::try_from(cache.pods_cached()).unwrap_or(i64::MAX));
    }
}

fn labels_of(ns: &PartialObjectMeta<Namespace>) -> Map<String, Value> {
    ns.metadata
        .labels
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect()
}

async fn watch_namespaces(client: Client, cache: &MetaCache, metrics: &Metrics) {
    // `PartialObjectMeta` makes kube ask for metadata only: namespace specs are not needed.
    let api: Api<PartialObjectMeta<Namespace>> = Api::all(client);
    let config = watcher::Config::default().page_size(PAGE_SIZE * 10);
    let mut stream = pin!(watcher(api, config));
    let mut lists = 0u64;
    let mut failures = 0u32;
    while let Some(item) = stream.next().await {
        let event = match item {
            Ok(event) => event,
            Err(e) => {
                back_off("namespaces", &e, &mut failures, metrics).await;
                continue;
            }
        };
        failures = 0;
        match event {
            Event::Init => {
                lists += 1;
                if lists > 1 {
                    metrics.kube_watch_restarts.inc();
                    info!(resource = "namespaces", "kubernetes watch relisting");
                }
                cache.namespaces_relist_started();
            }
            Event::InitApply(ns) | Event::Apply(ns) => {
                if let Some(name) = ns.metadata.name.as_deref() {
                    cache.apply_namespace(name, labels_of(&ns));
                }
            }
            Event::Delete(ns) => {
                if let Some(name) = ns.metadata.name.as_deref() {
                    cache.delete_namespace(name, Instant::now());
                }
            }
            Event::InitDone => cache.namespaces_relisted(Instant::now()),
        }
    }
}
