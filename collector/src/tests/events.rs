//! The cluster's Kubernetes Events against a fake API server (Events list and watch, Leases)
//! and a fake indexer that keeps what it is sent: the lease holder lists, ships, watches and
//! saves the resourceVersion; a restart resumes from it without listing; a watch answering
//! 410 Gone is followed by a new list; a second collector waits while the lease is held and
//! takes it over once its term passed unrenewed.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::sync::watch;

use crate::kube::events::{run, EventsSettings};
use crate::metrics::Metrics;

/// A core v1 Event of pod `name` at resourceVersion `rv`.
fn event(name: &str, uid: &str, rv: u64, count: u64) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": format!("{name}.17a"), "namespace": "shop", "uid": uid,
            "resourceVersion": rv.to_string()},
        "involvedObject": {"kind": "Pod", "namespace": "shop", "name": name},
        "reason": "BackOff", "message": "Back-off restarting failed container",
        "source": {"component": "kubelet", "host": "node-1"},
        "lastTimestamp": "2026-11-25T10:00:00Z", "count": count, "type": "Warning"
    })
}

fn status(code: u16, reason: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": reason,
        "reason": reason, "code": code})
}

/// The fake API server's state.
#[derive(Default)]
struct Api {
    /// The lists served in turn (the last one again once they run out): items and version.
    lists: Vec<(Vec<Value>, u64)>,
    list_calls: usize,
    /// Watch events released so far, each sent to the watches that start before its
    /// resourceVersion (a 410 ERROR event too: to the watches of older versions only).
    watch: Vec<(u64, Value)>,
    /// The `resourceVersion` of every watch request, in order.
    watches_from: Vec<String>,
    lease: Option<Value>,
    lease_version: u64,
    lease_reads: usize,
}

type Shared = Arc<(Mutex<Api>, watch::Sender<usize>)>;

async fn events(State(api): State<Shared>, Query(q): Query<HashMap<String, String>>) -> Response {
    if q.get("watch").map(String::as_str) == Some("true") {
        let from: u64 = q
            .get("resourceVersion")
            .and_then(|r| r.parse().ok())
            .unwrap_or(0);
        api.0
            .lock()
            .unwrap()
            .watches_from
            .push(q.get("resourceVersion").cloned().unwrap_or_default());
        let rx = api.1.subscribe();
        let body =
            futures::stream::unfold((api, rx, 0usize), move |(api, mut rx, mut i)| async move {
                loop {
                    let line = {
                        let state = api.0.lock().unwrap();
                        let mut line = None;
                        while i < state.watch.len() {
                            let (rv, value) = &state.watch[i];
                            i += 1;
                            if *rv > from {
                                line = Some(format!("{value}\n"));
                                break;
                            }
                        }
                        line
                    };
                    if let Some(line) = line {
                        return Some((Ok::<_, std::io::Error>(Bytes::from(line)), (api, rx, i)));
                    }
                    rx.changed().await.ok()?;
                }
            });
        return Body::from_stream(body).into_response();
    }
    let mut state = api.0.lock().unwrap();
    let n = state.list_calls.min(state.lists.len() - 1);
    state.list_calls += 1;
    let (items, version) = state.lists[n].clone();
    Json(json!({"apiVersion": "v1", "kind": "EventList",
        "metadata": {"resourceVersion": version.to_string()}, "items": items}))
    .into_response()
}

async fn get_lease(
    State(api): State<Shared>,
    UrlPath((_, _)): UrlPath<(String, String)>,
) -> Response {
    let mut state = api.0.lock().unwrap();
    state.lease_reads += 1;
    match &state.lease {
        Some(lease) => Json(lease.clone()).into_response(),
        None => (StatusCode::NOT_FOUND, Json(status(404, "NotFound"))).into_response(),
    }
}

async fn create_lease(
    State(api): State<Shared>,
    UrlPath(_): UrlPath<String>,
    Json(mut lease): Json<Value>,
) -> Response {
    let mut state = api.0.lock().unwrap();
    if state.lease.is_some() {
        return (StatusCode::CONFLICT, Json(status(409, "AlreadyExists"))).into_response();
    }
    state.lease_version += 1;
    lease["metadata"]["resourceVersion"] = json!(state.lease_version.to_string());
    state.lease = Some(lease.clone());
    (StatusCode::CREATED, Json(lease)).into_response()
}

async fn replace_lease(
    State(api): State<Shared>,
    UrlPath((_, _)): UrlPath<(String, String)>,
    Json(mut lease): Json<Value>,
) -> Response {
    let mut state = api.0.lock().unwrap();
    let current = state
        .lease
        .as_ref()
        .map(|l| l["metadata"]["resourceVersion"].clone());
    if current != Some(lease["metadata"]["resourceVersion"].clone()) {
        return (StatusCode::CONFLICT, Json(status(409, "Conflict"))).into_response();
    }
    state.lease_version += 1;
    lease["metadata"]["resourceVersion"] = json!(state.lease_version.to_string());
    state.lease = Some(lease.clone());
    Json(lease).into_response()
}

/// What the fake indexer was sent, a line each.
type Received = Arc<Mutex<Vec<Value>>>;

async fn ingest(State(received): State<Received>, body: Bytes) -> Response {
    let mut received = received.lock().unwrap();
    let mut n = 0;
    for line in body.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        received.push(serde_json::from_slice(line).unwrap());
        n += 1;
    }
    Json(json!({"accepted": n, "rejected": 0})).into_response()
}

struct Fakes {
    api: Shared,
    api_addr: SocketAddr,
    received: Received,
    ingest_url: String,
}

async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

async fn fakes(lists: Vec<(Vec<Value>, u64)>) -> Fakes {
    let api: Shared = Arc::new((
        Mutex::new(Api {
            lists,
            ..Api::default()
        }),
        watch::channel(0).0,
    ));
    let leases = "/apis/coordination.k8s.io/v1/namespaces/{ns}/leases";
    let app = Router::new()
        .route("/api/v1/events", get(events))
        .route(leases, post(create_lease))
        .route(
            &format!("{leases}/{{name}}"),
            get(get_lease).put(replace_lease),
        )
        .with_state(api.clone());
    let api_addr = serve(app).await;
    let received: Received = Arc::default();
    let indexer = Router::new()
        .route("/api/v1/events/ingest", post(ingest))
        .with_state(received.clone());
    let indexer_addr = serve(indexer).await;
    Fakes {
        api,
        api_addr,
        received,
        ingest_url: format!("http://{indexer_addr}/api/v1/events/ingest"),
    }
}

impl Fakes {
    fn client(&self) -> kube::Client {
        let url = format!("http://{}", self.api_addr).parse().unwrap();
        kube::Client::try_from(kube::Config::new(url)).unwrap()
    }

    fn release(&self, rv: u64, value: Value) {
        let mut state = self.api.0.lock().unwrap();
        state.watch.push((rv, value));
        let n = state.watch.len();
        drop(state);
        self.api.1.send_replace(n);
    }

    /// Releases a watch event of `kind` (`ADDED`, `MODIFIED`, `DELETED`) of an Event.
    fn watch_event(&self, kind: &str, name: &str, uid: &str, rv: u64, count: u64) {
        self.release(
            rv,
            json!({"type": kind, "object": event(name, uid, rv, count)}),
        );
    }

    fn state<T>(&self, f: impl FnOnce(&Api) -> T) -> T {
        f(&self.api.0.lock().unwrap())
    }

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
            ingest_url: self.ingest_url.clone(),
            token: String::new(),
            cluster: "prod".into(),
            http: reqwest::Client::new(),
        };
        let (stop, stop_rx) = watch::channel(false);
        tokio::spawn(run(self.client(), settings, metrics.clone(), stop_rx));
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
        fakes.state(|s| s.watches_from.clone()) == ["100"]
    })
    .await;
    assert_eq!(saved(dir.path()), "100");
    // An update of e-1, a deletion (nothing happened) and a new Event.
    fakes.watch_event("MODIFIED", "web-1", "e-1", 101, 2);
    fakes.watch_event("DELETED", "db-0", "e-2", 102, 3);
    fakes.watch_event("ADDED", "web-2", "e-3", 103, 1);
    wait_for("the watched events shipped", || fakes.uids().len() == 4).await;
    assert_eq!(fakes.uids(), ["e-1@90", "e-2@95", "e-1@101", "e-3@103"]);
    wait_for("the version saved", || saved(dir.path()) == "103").await;
    let received = fakes.received.lock().unwrap().clone();
    assert!(
        received.iter().all(|e| e["cluster"] == "prod"),
        "cluster stamped"
    );
    let lease = fakes.state(|s| s.lease.clone()).unwrap();
    assert_eq!(lease["spec"]["holderIdentity"], "node-a");
    assert_eq!(lease["spec"]["leaseDurationSeconds"], 15);
    assert_eq!(metrics.events_leader.get(), 1);
    assert_eq!(metrics.events_relists.get(), 1);
    assert_eq!(metrics.events_shipped.get(), 4);
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
    fakes.watch_event("ADDED", "old", "e-0", 140, 1);
    fakes.watch_event("ADDED", "web-1", "e-1", 160, 3);
    let metrics = Metrics::default();
    let _stop = fakes.start("node-a", dir.path(), Duration::from_secs(15), &metrics);
    // No list: the watch starts where the last run stopped, and only what came since ships.
    wait_for("the event after the saved version", || {
        fakes.uids().len() == 1
    })
    .await;
    assert_eq!(fakes.uids(), ["e-1@160"]);
    assert_eq!(fakes.state(|s| s.list_calls), 0);
    assert_eq!(fakes.state(|s| s.watches_from.clone()), ["150"]);
    wait_for("the version saved", || saved(dir.path()) == "160").await;
    // The version expires: the API says 410 Gone in the stream; the collector lists again and
    // watches from the new list's version.
    fakes.release(
        170,
        json!({"type": "ERROR", "object": status(410, "Expired")}),
    );
    wait_for("the relist shipped", || fakes.uids().len() == 2).await;
    assert_eq!(fakes.uids(), ["e-1@160", "e-1@190"]);
    wait_for("the watch from the relist's version", || {
        fakes.state(|s| s.watches_from.clone()) == ["150", "200"]
    })
    .await;
    assert_eq!(fakes.state(|s| s.list_calls), 1);
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
    let reads = fakes.state(|s| s.lease_reads);
    wait_for("node-b tried several times", || {
        fakes.state(|s| s.lease_reads) >= reads + 6
    })
    .await;
    assert_eq!(metrics_b.events_leader.get(), 0);
    assert_eq!(fakes.state(|s| s.list_calls), 1, "only the holder lists");
    assert_eq!(
        fakes.state(|s| s.lease.clone()).unwrap()["spec"]["holderIdentity"],
        "node-a"
    );
    // node-a stops (its pod is gone): once the term passed unrenewed, node-b takes over.
    drop(stop_a);
    wait_for("node-b holds the lease", || {
        metrics_b.events_leader.get() == 1
    })
    .await;
    let lease = fakes.state(|s| s.lease.clone()).unwrap();
    assert_eq!(lease["spec"]["holderIdentity"], "node-b");
    assert_eq!(lease["spec"]["leaseTransitions"], 1);
    wait_for("node-b lists", || fakes.state(|s| s.list_calls) == 2).await;
}
