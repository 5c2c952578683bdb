//! A fake Kubernetes API server replaying recorded responses (`src/kube/testdata/`): pod and
//! namespace lists, and watch streams of newline-delimited events that the test releases one
//! by one. A watch resumes after the `resourceVersion` it asks for, as the real server does.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::Value;
use tokio::sync::watch;

const PODS_LIST: &str = include_str!("../kube/testdata/pods-list.json");
const PODS_RELIST: &str = include_str!("../kube/testdata/pods-relist.json");
const PODS_WATCH: &str = include_str!("../kube/testdata/pods-watch.ndjson");
const NAMESPACES_LIST: &str = include_str!("../kube/testdata/namespaces-list.json");
const NAMESPACES_WATCH: &str = include_str!("../kube/testdata/namespaces-watch.ndjson");

/// Uids and names of the recorded pods.
pub const WEB_UID: &str = "5f1c2a9e-8b7d-4c3a-9e21-0d6f4b8a1c11";
pub const DB_UID: &str = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d";
pub const APISERVER_UID: &str = "c7d8e9f0-1a2b-4c3d-8e4f-5a6b7c8d9e0f";
/// The static pod's hash: the uid in its log directory name.
pub const APISERVER_HASH: &str = "6f0e1d2c3b4a59687f8e9d0c1b2a3948";
pub const EXPORTER_UID: &str = "2b4d6f8a-0c2e-4f6a-8c0e-2a4c6e8a0c2e";
pub const BATCH_UID: &str = "e3f5a7c9-1b3d-4f5a-9c1e-3a5c7e9a1c3e";

/// One recorded watch stream: its lines with their resource versions, and how many of them
/// the test has released.
struct Recorded {
    lines: Vec<(u64, String)>,
    released: watch::Sender<usize>,
}

impl Recorded {
    fn new(ndjson: &str) -> Recorded {
        let mut rv = 0;
        let lines = ndjson
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap();
                if let Some(r) = v["object"]["metadata"]["resourceVersion"]
                    .as_str()
                    .and_then(|r| r.parse().ok())
                {
                    rv = r;
                }
                (rv, format!("{l}\n"))
            })
            .collect();
        Recorded {
            lines,
            released: watch::channel(0).0,
        }
    }
}

struct Api {
    pod_lists: Vec<&'static str>,
    pod_list_calls: AtomicUsize,
    pods: Recorded,
    namespaces: Recorded,
    requests: Mutex<Vec<String>>,
}

/// The running fake API server.
pub struct FakeApi {
    pub addr: SocketAddr,
    api: Arc<Api>,
}

fn json(body: &'static str) -> Response {
    ([(CONTENT_TYPE, "application/json")], body).into_response()
}

/// A watch response: the released lines past `from`, then each line as it is released.
fn stream(api: Arc<Api>, pods: bool, from: u64) -> Response {
    let rx = if pods {
        api.pods.released.subscribe()
    } else {
        api.namespaces.released.subscribe()
    };
    let body = futures::stream::unfold((api, rx, 0usize), move |(api, mut rx, mut i)| async move {
        loop {
            let recorded = if pods { &api.pods } else { &api.namespaces };
            let released = *rx.borrow_and_update();
            while i < released.min(recorded.lines.len()) {
                let (rv, line) = &recorded.lines[i];
                i += 1;
                if *rv > from {
                    let chunk = Ok::<_, std::io::Error>(Bytes::from(line.clone()));
                    return Some((chunk, (api, rx, i)));
                }
            }
            rx.changed().await.ok()?;
        }
    });
    (
        [(CONTENT_TYPE, "application/json")],
        Body::from_stream(body),
    )
        .into_response()
}

async fn pods(State(api): State<Arc<Api>>, Query(q): Query<HashMap<String, String>>) -> Response {
    record(&api, "pods", &q);
    if q.get("watch").map(String::as_str) == Some("true") {
        let from = q
            .get("resourceVersion")
            .and_then(|r| r.parse().ok())
            .unwrap_or(0);
        return stream(api, true, from);
    }
    let n = api.pod_list_calls.fetch_add(1, Ordering::SeqCst);
    json(api.pod_lists[n.min(api.pod_lists.len() - 1)])
}

async fn namespaces(
    State(api): State<Arc<Api>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    record(&api, "namespaces", &q);
    if q.get("watch").map(String::as_str) == Some("true") {
        let from = q
            .get("resourceVersion")
            .and_then(|r| r.parse().ok())
            .unwrap_or(0);
        return stream(api, false, from);
    }
    json(NAMESPACES_LIST)
}

fn record(api: &Api, resource: &str, q: &HashMap<String, String>) {
    let mut keys: Vec<_> = q.iter().map(|(k, v)| format!("{k}={v}")).collect();
    keys.sort();
    api.requests
        .lock()
        .unwrap()
        .push(format!("{resource}?{}", keys.join("&")));
}

impl FakeApi {
    /// Starts the server on 127.0.0.1:0; no watch event is released yet.
    pub async fn start() -> FakeApi {
        let api = Arc::new(Api {
            pod_lists: vec![PODS_LIST, PODS_RELIST],
            pod_list_calls: AtomicUsize::new(0),
            pods: Recorded::new(PODS_WATCH),
            namespaces: Recorded::new(NAMESPACES_WATCH),
            requests: Mutex::new(Vec::new()),
        });
        let app = Router::new()
            .route("/api/v1/pods", get(pods))
            .route("/api/v1/namespaces", get(namespaces))
            .with_state(api.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        FakeApi { addr, api }
    }

    /// Releases the first `n` recorded pod watch events.
    pub fn release_pod_events(&self, n: usize) {
        self.api.pods.released.send_replace(n);
    }

    /// Releases the first `n` recorded namespace watch events.
    pub fn release_namespace_events(&self, n: usize) {
        self.api.namespaces.released.send_replace(n);
    }

    /// Pod lists served so far.
    pub fn pod_lists(&self) -> usize {
        self.api.pod_list_calls.load(Ordering::SeqCst)
    }

    /// The requests received, as `resource?sorted query`.
    pub fn requests(&self) -> Vec<String> {
        self.api.requests.lock().unwrap().clone()
    }

    /// A client of this server.
    pub fn client(&self) -> kube::Client {
        let url = format!("http://{}", self.addr).parse().unwrap();
        kube::Client::try_from(kube::Config::new(url)).unwrap()
    }

    /// Writes a kubeconfig file pointing at this server into `dir`.
    pub fn kubeconfig(&self, dir: &Path) -> PathBuf {
        super::fake_events_api::write_kubeconfig(dir, self.addr)
    }
}
