//! A fake Kubernetes API server for the cluster's Events: the Events list (lists served in
//! turn), their watch (lines the test releases, each sent to the watches that start before
//! its resourceVersion, a 410 ERROR event likewise) and the Lease the collectors elect with
//! (create, read, replace with optimistic concurrency). Shared by the collector's tests
//! (`collector/src/tests/events.rs`) and the end-to-end test of `trawl standalone`
//! (`tests/e2e/kube_events.rs`, by `#[path]`): it uses only axum, tokio, futures and
//! serde_json, no item of either crate.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::sync::watch;

/// A core v1 Event of pod `name` at resourceVersion `rv`.
pub fn event(name: &str, uid: &str, rv: u64, count: u64) -> Value {
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

pub fn status(code: u16, reason: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": reason,
        "reason": reason, "code": code})
}

/// The fake API server's state.
#[derive(Default)]
pub struct Api {
    /// The lists served in turn (the last one again once they run out): items and version.
    lists: Vec<(Vec<Value>, u64)>,
    pub list_calls: usize,
    /// Watch events released so far, each sent to the watches that start before its
    /// resourceVersion (a 410 ERROR event too: to the watches of older versions only).
    watch: Vec<(u64, Value)>,
    /// The `resourceVersion` of every watch request, in order.
    pub watches_from: Vec<String>,
    pub lease: Option<Value>,
    lease_version: u64,
    pub lease_reads: usize,
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

/// The running fake API server.
pub struct FakeEventsApi {
    api: Shared,
    pub addr: SocketAddr,
}

impl FakeEventsApi {
    /// Starts the server on 127.0.0.1:0 (on the current tokio runtime), serving `lists` in
    /// turn: each a list's Events and its resourceVersion.
    pub async fn start(lists: Vec<(Vec<Value>, u64)>) -> FakeEventsApi {
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
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        FakeEventsApi { api, addr }
    }

    /// Releases a watch line, sent to the watches that start before `rv`.
    pub fn release(&self, rv: u64, value: Value) {
        let mut state = self.api.0.lock().unwrap();
        state.watch.push((rv, value));
        let n = state.watch.len();
        drop(state);
        self.api.1.send_replace(n);
    }

    /// Releases a watch event of `kind` (`ADDED`, `MODIFIED`, `DELETED`) of an Event.
    pub fn watch_event(&self, kind: &str, name: &str, uid: &str, rv: u64, count: u64) {
        self.release(
            rv,
            json!({"type": kind, "object": event(name, uid, rv, count)}),
        );
    }

    /// Releases a 410 Gone ERROR event for the watches that start before `rv`.
    pub fn expire(&self, rv: u64) {
        self.release(
            rv,
            json!({"type": "ERROR", "object": status(410, "Expired")}),
        );
    }

    /// A look at the server's state.
    pub fn state<T>(&self, f: impl FnOnce(&Api) -> T) -> T {
        f(&self.api.0.lock().unwrap())
    }

    /// Writes a kubeconfig file pointing at this server into `dir`.
    pub fn kubeconfig(&self, dir: &Path) -> PathBuf {
        write_kubeconfig(dir, self.addr)
    }
}

/// Writes `dir/kubeconfig`, whose current context reaches an API server at `addr` over plain
/// HTTP without credentials.
pub fn write_kubeconfig(dir: &Path, addr: SocketAddr) -> PathBuf {
    let path = dir.join("kubeconfig");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: http://{addr}\n\
             contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n\
             current-context: fake\nusers:\n- name: fake\n  user: {{}}\n"
        ),
    )
    .unwrap();
    path
}
