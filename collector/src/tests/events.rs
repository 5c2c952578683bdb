//! The cluster's Kubernetes Events against a fake API server (`fake_events_api`) and a fake
//! indexer that keeps what it is sent: the lease holder lists, ships, watches and saves the
//! resourceVersion; a restart resumes from it without listing; a watch answering 410 Gone is
//! followed by a new list; a second collector waits while the lease is held and takes it over
//! once its term passed unrenewed.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::sync::watch;

use super::fake_events_api::{event, FakeEventsApi};
use crate::kube::events::{run, EventsSettings};
use crate::metrics::Metrics;
use crate::ship::StreamIngest;

/// What the fake indexer was sent, a line each.
type Received = Arc<Mutex<Vec<Value>>>;

/// How many requests the fake indexer still answers 503 (an indexer replaying its WAL).
type Refuse = Arc<std::sync::atomic::AtomicUsize>;

async fn ingest(State((received, refuse)): State<(Received, Refuse)>, body: Bytes) -> Response {
    use std::sync::atomic::Ordering;
    if refuse
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        return axum::http::StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let mut received = received.lock().unwrap();
    let mut n = 0;
    for line in body.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        received.push(serde_json::from_slice(line).unwrap());
        n += 1;
    }
    Json(json!({"accepted": n, "rejected": 0})).into_response()
}

/// The fake API server and the fake indexer.
struct Fakes {
    api: FakeEventsApi,
    /// A client of the fake API, made from a kubeconfig as `collector.kubernetes.kubeconfig`.
    client: kube::Client,
    received: Received,
    refuse: Refuse,
    indexer_url: String,
    _dir: tempfile::TempDir,
}

async fn fakes(lists: Vec<(Vec<Value>, u64)>) -> Fakes {
    let api = FakeEventsApi::start(lists).await;
    let dir = tempfile::tempdir().unwrap();
    let config = trawl_config::KubernetesConfig {
        kubeconfig: Some(api.kubeconfig(dir.path())),
        ..Default::default()
    };
    let client = crate::kube::client(&config).await.unwrap();
    let received: Received = Arc::default();
    let refuse: Refuse = Arc::default();
    let indexer = Router::new()
        .route("/api/v1/events/ingest", post(ingest))
        .with_state((received.clone(), refuse.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let indexer_addr: SocketAddr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, indexer).await.unwrap() });
    Fakes {
        api,
        client,
        received,
        refuse,
        indexer_url: format!("http://{indexer_addr}"),
        _dir: dir,
    }
}

impl Fakes {
    fn uids(&self) -> Vec<String> {
        self.received
            .lock()
            .unwrap()
            .iter()
            .map(|e| {
                format!(
                    "{}@{}",
                    e["metadata"]["uid"].as_str().unwrap(),
                    e["metadata"]["resourceVersion"].as_str().unwrap()
                )
            })
            .collect()
    }

    /// Starts a collector of Events as `identity`, saving under `dir`; dropping the returned
    /// sender stops it.
    fn start(
        &self,
        identity: &str,
        dir: &Path,
        lease: Duration,
        metrics: &Metrics,
    ) -> watch::Sender<bool> {
        let settings = EventsSettings {
            identity: identity.to_string(),
            lease_namespace: "trawl".into(),
            lease_name: "trawl-events".into(),
            lease,
            state_path: dir.join("events.json"),
            ingest: StreamIngest::with_client(
                std::slice::from_ref(&self.indexer_url),
                "events",
                reqwest::Client::new(),
            ),
            cluster: "prod".into(),
        };
        let (stop, stop_rx) = watch::channel(false);
        tokio::spawn(run(self.client.clone(), settings, metrics.clone(), stop_rx));
        stop
    }
}

/// Polls `cond` every 10 ms; panics with `what` after 20 s.
async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn saved(dir: &Path) -> String {
    let value: Value =
        serde_json::from_slice(&std::fs::read(dir.join("events.json")).unwrap()).unwrap();
    value["resource_version"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn the_lease_holder_lists_watches_ships_and_saves_where_it_is() {
    let fakes = fakes(vec![(
        vec![event("web-1", "e-1", 90, 1), event("db-0", "e-2", 95, 3)],
        100,
    )])
    .await;
    let dir = tempfile::tempdir().unwrap();
    let metrics = Metrics::default();
    let _stop = fakes.start("node-a", dir.path(), Duration::from_secs(15), &metrics);
    wait_for("the list shipped", || fakes.uids().len() == 2).await;
    assert_eq!(fakes.uids(), ["e-1@90", "e-2@95"]);
    wait_for("the watch from the list's version", || {
        fakes.api.state(|s| s.watches_from.clone()) == ["100"]
    })
    .await;
    assert_eq!(saved(dir.path()), "100");
    // An update of e-1, a deletion (nothing happened) and a new Event.
    fakes.api.watch_event("MODIFIED", "web-1", "e-1", 101, 2);
    fakes.api.watch_event("DELETED", "db-0", "e-2", 102, 3);
    fakes.api.watch_event("ADDED", "web-2", "e-3", 103, 1);
    wait_for("the watched events shipped", || fakes.uids().len() == 4).await;
    assert_eq!(fakes.uids(), ["e-1@90", "e-2@95", "e-1@101", "e-3@103"]);
    wait_for("the version saved", || saved(dir.path()) == "103").await;
    let received = fakes.received.lock().unwrap().clone();
    assert!(
        received.iter().all(|e| e["cluster"] == "prod"),
        "cluster stamped"
    );
    let lease = fakes.api.state(|s| s.lease.clone()).unwrap();
    assert_eq!(lease["spec"]["holderIdentity"], "node-a");
    assert_eq!(lease["spec"]["leaseDurationSeconds"], 15);
    assert_eq!(metrics.events_leader.get(), 1);
    assert_eq!(metrics.events_relists.get(), 1);
    assert_eq!(metrics.events_shipped.get(), 4);
}

#[tokio::test]
async fn an_indexer_briefly_unavailable_gets_the_same_list_again_without_a_relist() {
    let fakes = fakes(vec![
        (vec![event("web-1", "e-1", 90, 1)], 100),
        (vec![event("web-1", "e-1", 99, 2)], 110),
    ])
    .await;
    fakes.refuse.store(2, std::sync::atomic::Ordering::SeqCst);
    let dir = tempfile::tempdir().unwrap();
    let metrics = Metrics::default();
    let _stop = fakes.start("node-a", dir.path(), Duration::from_secs(15), &metrics);
    wait_for("the list shipped", || fakes.uids().len() == 1).await;
    assert_eq!(fakes.uids(), ["e-1@90"], "the first list, sent again");
    wait_for("the watch", || {
        fakes.api.state(|s| s.watches_from.clone()) == ["100"]
    })
    .await;
    assert_eq!(fakes.api.state(|s| s.list_calls), 1);
    assert_eq!(metrics.events_relists.get(), 1);
    assert_eq!(metrics.events_errors.get(), 2);
}

#[tokio::test]
async fn a_restart_resumes_from_the_saved_version_and_a_410_lists_again() {
    let fakes = fakes(vec![(vec![event("web-1", "e-1", 190, 4)], 200)]).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("events.json"),
        r#"{"resource_version":"150"}"#,
    )
    .unwrap();
    fakes.api.watch_event("ADDED", "old", "e-0", 140, 1);
    fakes.api.watch_event("ADDED", "web-1", "e-1", 160, 3);
    let metrics = Metrics::default();
    let _stop = fakes.start("node-a", dir.path(), Duration::from_secs(15), &metrics);
    // No list: the watch starts where the last run stopped, and only what came since ships.
    wait_for("the event after the saved version", || {
        fakes.uids().len() == 1
    })
    .await;
    assert_eq!(fakes.uids(), ["e-1@160"]);
    assert_eq!(fakes.api.state(|s| s.list_calls), 0);
    assert_eq!(fakes.api.state(|s| s.watches_from.clone()), ["150"]);
    wait_for("the version saved", || saved(dir.path()) == "160").await;
    // The version expires: the API says 410 Gone in the stream; the collector lists again and
    // watches from the new list's version.
    fakes.api.expire(170);
    wait_for("the relist shipped", || fakes.uids().len() == 2).await;
    assert_eq!(fakes.uids(), ["e-1@160", "e-1@190"]);
    wait_for("the watch from the relist's version", || {
        fakes.api.state(|s| s.watches_from.clone()) == ["150", "200"]
    })
    .await;
    assert_eq!(fakes.api.state(|s| s.list_calls), 1);
    assert_eq!(metrics.events_relists.get(), 1);
    assert_eq!(saved(dir.path()), "200");
}

#[tokio::test]
async fn a_second_collector_waits_for_the_lease_and_takes_it_over_when_unrenewed() {
    let fakes = fakes(vec![(vec![event("web-1", "e-1", 10, 1)], 20)]).await;
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (metrics_a, metrics_b) = (Metrics::default(), Metrics::default());
    let lease = Duration::from_secs(2);
    let stop_a = fakes.start("node-a", dir_a.path(), lease, &metrics_a);
    wait_for("node-a holds the lease", || {
        metrics_a.events_leader.get() == 1
    })
    .await;
    let _stop_b = fakes.start("node-b", dir_b.path(), lease, &metrics_b);
    // node-b reads the lease again and again (every third of the term) and stays out.
    let reads = fakes.api.state(|s| s.lease_reads);
    wait_for("node-b tried several times", || {
        fakes.api.state(|s| s.lease_reads) >= reads + 6
    })
    .await;
    assert_eq!(metrics_b.events_leader.get(), 0);
    assert_eq!(
        fakes.api.state(|s| s.list_calls),
        1,
        "only the holder lists"
    );
    assert_eq!(
        fakes.api.state(|s| s.lease.clone()).unwrap()["spec"]["holderIdentity"],
        "node-a"
    );
    // node-a stops (its pod is gone): once the term passed unrenewed, node-b takes over.
    drop(stop_a);
    wait_for("node-b holds the lease", || {
        metrics_b.events_leader.get() == 1
    })
    .await;
    let lease = fakes.api.state(|s| s.lease.clone()).unwrap();
    assert_eq!(lease["spec"]["holderIdentity"], "node-b");
    assert_eq!(lease["spec"]["leaseTransitions"], 1);
    wait_for("node-b lists", || fakes.api.state(|s| s.list_calls) == 2).await;
}
