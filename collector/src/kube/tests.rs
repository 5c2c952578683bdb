//! The watches against recorded API responses (see `crate::tests::fake_api`): what the cache
//! attaches to records, the grace period after deletions, relists, label filters.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use serde_json::{json, Map, Value};
use tokio::sync::watch;

use super::*;
use crate::metrics::Metrics;
use crate::tests::fake_api::*;

const GRACE: Duration = Duration::from_secs(300);

/// Polls `cond` every 10 ms; panics with `what` after 20 s.
async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn labels(pairs: &[(&str, &str)]) -> Map<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect()
}

fn attrs(pairs: &[(&str, &str)]) -> Vec<(String, Value)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect()
}

struct Running {
    api: FakeApi,
    cache: Arc<MetaCache>,
    metrics: Metrics,
    _stop: watch::Sender<bool>,
}

async fn start(namespace_labels: bool) -> Running {
    let api = FakeApi::start().await;
    let cache = Arc::new(MetaCache::new(GRACE, namespace_labels));
    let metrics = Metrics::default();
    let (stop, stop_rx) = watch::channel(false);
    let settings = WatchSettings {
        node: "node-1".into(),
        annotations: vec!["trawl.io/team".to_string(), "absent.io/key".to_string()].into(),
    };
    tokio::spawn(run(
        api.client(),
        settings,
        cache.clone(),
        metrics.clone(),
        stop_rx,
    ));
    wait_for("the first pod list", || cache.pods_synced()).await;
    Running {
        api,
        cache,
        metrics,
        _stop: stop,
    }
}

fn web_enrichment(restart: u32, team: &str) -> Enrichment {
    Enrichment {
        labels: labels(&[
            ("app", "web"),
            ("app.kubernetes.io/name", "web"),
            ("pod-template-hash", "7c9f8d6b5d"),
            ("tier", "frontend"),
        ]),
        image: "registry.example.com/shop/web:1.4.2".into(),
        container_id: match restart {
            1 => "f0e1d2c3b4a5968778695a4b3c2d1e0ff0e1d2c3b4a5968778695a4b3c2d1e0f",
            0 => "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90",
            _ => "",
        }
        .into(),
        attributes: attrs(&[
            (OWNER_KIND, "ReplicaSet"),
            (OWNER_NAME, "web-7c9f8d6b5d"),
            (DEPLOYMENT_NAME, "web"),
            ("k8s.pod.annotations.trawl.io/team", team),
        ]),
    }
}

#[tokio::test]
async fn listed_pods_enrich_records_exactly() {
    let r = start(false).await;
    let cache = &r.cache;
    // Only this node's pods are asked for, in small pages; namespaces as metadata.
    let requests = r.api.requests();
    for expected in [
        "pods?fieldSelector=spec.nodeName=node-1&limit=50",
        "namespaces?limit=500",
    ] {
        assert!(requests.contains(&expected.to_string()), "{requests:?}");
    }
    assert_eq!(cache.pods_cached(), 4);

    // The current instance of `app` (1.log) and the one before it (0.log).
    assert_eq!(
        cache.enrichment(WEB_UID, "app", 1),
        Some(web_enrichment(1, "storefront"))
    );
    assert_eq!(
        cache.enrichment(WEB_UID, "app", 0),
        Some(web_enrichment(0, "storefront"))
    );
    let sidecar = cache.enrichment(WEB_UID, "istio-proxy", 0).unwrap();
    assert_eq!(sidecar.image, "docker.io/istio/proxyv2:1.24.1");
    assert_eq!(
        sidecar.container_id,
        "77aa88bb99cc00dd11ee22ff33aa44bb55cc66dd77ee88ff99aa00bb11cc22dd"
    );
    let init = cache.enrichment(WEB_UID, "migrate", 0).unwrap();
    assert_eq!(
        init.container_id,
        "3d2b1f0e9a8c7b6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1"
    );

    // A StatefulSet pod: the owner as is, no annotation chosen present.
    let db = cache.enrichment(DB_UID, "postgres", 0).unwrap();
    assert_eq!(
        db.attributes,
        attrs(&[(OWNER_KIND, "StatefulSet"), (OWNER_NAME, "db")])
    );
    assert_eq!(db.image, "docker.io/library/postgres:17.2");

    // A static pod: its log directory carries the config hash, found through the mirror pod.
    let apiserver = cache
        .enrichment(APISERVER_HASH, "kube-apiserver", 0)
        .unwrap();
    assert_eq!(apiserver.image, "registry.k8s.io/kube-apiserver:v1.33.1");
    assert_eq!(
        apiserver.labels,
        labels(&[("component", "kube-apiserver"), ("tier", "control-plane")])
    );
    assert_eq!(
        apiserver.attributes,
        attrs(&[(OWNER_KIND, "Node"), (OWNER_NAME, "node-1")])
    );
    assert_eq!(cache.pod(APISERVER_HASH).unwrap().uid, APISERVER_UID);

    // Unknown pods and containers.
    assert_eq!(cache.enrichment("no-such-uid", "app", 0), None);
    let unknown_container = cache.enrichment(WEB_UID, "gone", 0).unwrap();
    assert_eq!(unknown_container.image, "");
    assert_eq!(unknown_container.container_id, "");
    assert!(cache.namespace_exists("shop") && !cache.namespace_exists("nope"));
    assert_eq!(r.metrics.kube_watch_errors.get(), 0);
}

#[tokio::test]
async fn watch_events_update_delete_with_grace_and_relist() {
    let r = start(false).await;
    let (api, cache) = (&r.api, &r.cache);

    // ADDED then MODIFIED: a Job's pod, its container id once it runs.
    api.release_pod_events(2);
    wait_for("the job pod running", || {
        cache
            .enrichment(BATCH_UID, "report", 0)
            .is_some_and(|e| !e.container_id.is_empty())
    })
    .await;
    let batch = cache.enrichment(BATCH_UID, "report", 0).unwrap();
    assert_eq!(
        batch.attributes,
        attrs(&[
            (OWNER_KIND, "Job"),
            (OWNER_NAME, "nightly-report-29401920"),
            (CRONJOB_NAME, "nightly-report"),
        ])
    );
    assert_eq!(
        batch.container_id,
        "d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2"
    );

    // MODIFIED: an annotation changed; the generation moves so readers refresh.
    let generation = cache.generation();
    api.release_pod_events(3);
    wait_for("the web pod's new annotation", || {
        cache.enrichment(WEB_UID, "app", 1) == Some(web_enrichment(1, "checkout"))
    })
    .await;
    assert!(cache.generation() > generation);

    // BOOKMARK, then DELETED: the deleted pod is still there during the grace period.
    api.release_pod_events(5);
    wait_for("the db pod deleted", || cache.is_deleted(DB_UID)).await;
    let deleted_seen = Instant::now();
    assert!(cache.enrichment(DB_UID, "postgres", 0).is_some());
    assert_eq!(cache.evict_expired(deleted_seen), 0);
    assert!(cache.enrichment(DB_UID, "postgres", 0).is_some());
    // ... and gone after it, alone.
    assert_eq!(
        cache.evict_expired(deleted_seen + GRACE + Duration::from_secs(1)),
        1
    );
    assert_eq!(cache.enrichment(DB_UID, "postgres", 0), None);
    assert!(cache.enrichment(WEB_UID, "app", 1).is_some());
    assert!(cache.enrichment(BATCH_UID, "report", 0).is_some());

    // ERROR 410 (expired resource version): the watcher relists; the job pod is missing from
    // the new list, so it is treated as deleted (grace applies), the others stay.
    api.release_pod_events(6);
    wait_for("the relist", || cache.is_deleted(BATCH_UID)).await;
    assert_eq!(api.pod_lists(), 2);
    assert_eq!(r.metrics.kube_watch_restarts.get(), 1);
    assert!(!cache.is_deleted(WEB_UID));
    let relisted = Instant::now();
    assert!(cache.enrichment(BATCH_UID, "report", 0).is_some());
    assert_eq!(
        cache.evict_expired(relisted + GRACE + Duration::from_secs(1)),
        1
    );
    assert_eq!(cache.enrichment(BATCH_UID, "report", 0), None);
    assert_eq!(cache.pods_cached(), 3);
    assert_eq!(
        cache.enrichment(WEB_UID, "app", 1),
        Some(web_enrichment(1, "checkout"))
    );
}

#[tokio::test]
async fn namespace_labels_are_attached_when_asked() {
    let r = start(true).await;
    let (api, cache) = (&r.api, &r.cache);
    wait_for("namespaces listed", || cache.namespace_exists("shop")).await;
    let e = cache.enrichment(DB_UID, "postgres", 0).unwrap();
    assert_eq!(
        e.attributes,
        attrs(&[
            (OWNER_KIND, "StatefulSet"),
            (OWNER_NAME, "db"),
            ("k8s.namespace.labels.kubernetes.io/metadata.name", "shop"),
            ("k8s.namespace.labels.team", "commerce"),
        ])
    );
    let (_, version) = cache.pod_versioned(DB_UID).unwrap();
    api.release_namespace_events(1);
    wait_for("the namespace's new label", || {
        cache
            .enrichment(DB_UID, "postgres", 0)
            .is_some_and(|e| e.attributes.len() == 5)
    })
    .await;
    // The pod did not change, its enrichment did: readers see a new version.
    assert!(cache.pod_versioned(DB_UID).unwrap().1 > version);
    assert_eq!(
        cache.enrichment(DB_UID, "postgres", 0).unwrap().attributes[2],
        (
            "k8s.namespace.labels.cost-center".to_string(),
            json!("cc-42")
        )
    );
}

#[tokio::test]
async fn an_unreachable_api_is_retried_and_counted() {
    // A port nobody listens on: the watch fails, backs off, and the cache stays empty.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let client =
        kube::Client::try_from(kube::Config::new(format!("http://{addr}").parse().unwrap()))
            .unwrap();
    let cache = Arc::new(MetaCache::new(GRACE, false));
    let metrics = Metrics::default();
    let (stop, stop_rx) = watch::channel(false);
    let settings = WatchSettings {
        node: "node-1".into(),
        annotations: Vec::new().into(),
    };
    let task = tokio::spawn(run(
        client,
        settings,
        cache.clone(),
        metrics.clone(),
        stop_rx,
    ));
    wait_for("watch errors", || metrics.kube_watch_errors.get() >= 2).await;
    assert!(!cache.pods_synced());
    assert_eq!(cache.enrichment(WEB_UID, "app", 0), None);
    stop.send_replace(true);
    task.await.unwrap();
}

fn recorded_pods() -> Vec<PodMeta> {
    let list: Value = serde_json::from_str(include_str!("testdata/pods-list.json")).unwrap();
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let pod: Pod = serde_json::from_value(p.clone()).unwrap();
            PodMeta::from_pod(&pod, &[]).unwrap()
        })
        .collect()
}

fn filter(include: &[&str], exclude: &[&str]) -> PodFilter {
    let cc = trawl_config::CollectorConfig {
        include_pod_labels: include.iter().map(|s| s.to_string()).collect(),
        exclude_pod_labels: exclude.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    };
    PodFilter::from_config(&cc).unwrap().unwrap()
}

fn admitted(f: &PodFilter) -> Vec<String> {
    recorded_pods()
        .iter()
        .filter(|p| f.admits(p))
        .map(|p| p.name.clone())
        .collect()
}

#[test]
fn label_filters_include_and_exclude_exactly() {
    assert_eq!(
        admitted(&filter(&["app"], &[])),
        vec!["web-7c9f8d6b5d-x2x7k", "db-0"]
    );
    assert_eq!(
        admitted(&filter(&["app", "component"], &["trawl.io/collect=false"])),
        vec!["web-7c9f8d6b5d-x2x7k", "kube-apiserver-node-1"]
    );
    assert_eq!(
        admitted(&filter(&[], &["tier"])),
        vec!["db-0", "node-exporter-4xk9p"]
    );
    assert_eq!(
        admitted(&filter(
            &[
                "tier=frontend,app=web",
                "app.kubernetes.io/name=node-exporter"
            ],
            &[]
        )),
        vec!["web-7c9f8d6b5d-x2x7k", "node-exporter-4xk9p"]
    );
    assert_eq!(
        admitted(&filter(&["app!=web"], &["!tier"])),
        vec!["kube-apiserver-node-1"]
    );
    let none = trawl_config::CollectorConfig::default();
    assert_eq!(PodFilter::from_config(&none).unwrap(), None);
    let bad = trawl_config::CollectorConfig {
        exclude_pod_labels: vec!["a b".into()],
        ..Default::default()
    };
    assert_eq!(
        PodFilter::from_config(&bad).unwrap_err().to_string(),
        "invalid collector configuration: collector.exclude_pod_labels.0: `a b`: `a b` is not a label key"
    );
}

#[test]
fn managed_fields_and_status_are_not_kept() {
    let web = &recorded_pods()[0];
    assert_eq!(web.containers.len(), 3);
    assert_eq!(web.aliases, Vec::<String>::new());
    let text = format!("{web:?}");
    assert!(!text.contains("kube-controller-manager"), "{text}");
    assert!(!text.contains("10.244.1.23"), "{text}");
}
