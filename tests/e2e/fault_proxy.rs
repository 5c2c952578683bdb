//! A fault proxy between a collector and an indexer: forwards every request, or answers every
//! one with a fixed status (a wrong URL's 404, a proxy's 502), or answers 413 to bodies over a
//! size (a proxy's body limit), switchable while the test runs.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// What the proxy does with the next requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Pass every request on to the indexer.
    Forward,
    /// Answer every request with this status, the indexer untouched.
    Refuse(u16),
    /// Answer 413 to a body larger than this many bytes (as sent, compressed), forward the
    /// others.
    MaxBody(usize),
}

struct ProxyState {
    mode: Mutex<Mode>,
    upstream: String,
    client: reqwest::Client,
    refused: AtomicUsize,
    too_large: AtomicUsize,
}

/// A running proxy; dropping it stops it.
pub struct FaultProxy {
    /// Base URL to give the collector as `collector.indexer_url`.
    pub url: String,
    state: Arc<ProxyState>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FaultProxy {
    /// Starts a proxy on 127.0.0.1:0 in front of `upstream` (`http://host:port`), in `mode`.
    pub fn start(upstream: &str, mode: Mode) -> FaultProxy {
        let state = Arc::new(ProxyState {
            mode: Mutex::new(mode),
            upstream: upstream.trim_end_matches('/').to_string(),
            client: reqwest::Client::new(),
            refused: AtomicUsize::new(0),
            too_large: AtomicUsize::new(0),
        });
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let app = axum::Router::new()
            .fallback(proxy)
            .with_state(state.clone());
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = stopped.await;
                    })
                    .await
                    .unwrap();
            });
        });
        FaultProxy {
            url,
            state,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Switches what the proxy does with the next requests.
    pub fn set(&self, mode: Mode) {
        *self.state.mode.lock().unwrap() = mode;
    }

    /// Requests answered by [`Mode::Refuse`].
    pub fn refused(&self) -> usize {
        self.state.refused.load(Ordering::SeqCst)
    }

    /// Requests answered 413 by [`Mode::MaxBody`].
    pub fn too_large(&self) -> usize {
        self.state.too_large.load(Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn proxy(State(state): State<Arc<ProxyState>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, 256 << 20).await {
        Ok(b) => b,
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    let mode = *state.mode.lock().unwrap();
    match mode {
        Mode::Refuse(status) => {
            state.refused.fetch_add(1, Ordering::SeqCst);
            let status = StatusCode::from_u16(status).unwrap();
            return (status, "refused by the test proxy").into_response();
        }
        Mode::MaxBody(max) if body.len() > max => {
            state.too_large.fetch_add(1, Ordering::SeqCst);
            // What nginx's client_max_body_size answers: not Trawl's JSON envelope.
            return (
                StatusCode::PAYLOAD_TOO_LARGE,
                "<html><body>413 Request Entity Too Large</body></html>",
            )
                .into_response();
        }
        _ => {}
    }
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let mut req = state
        .client
        .request(parts.method, format!("{}{path}", state.upstream))
        .body(body);
    for (name, value) in &parts.headers {
        if name != "host" && name != "content-length" {
            req = req.header(name, value);
        }
    }
    let answer = match req.send().await {
        Ok(a) => a,
        Err(e) => return (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    };
    let status = answer.status();
    let headers = answer.headers().clone();
    let bytes = answer.bytes().await.unwrap_or_default();
    let mut response = Response::new(Body::from(bytes));
    *response.status_mut() = status;
    for (name, value) in &headers {
        if name != "content-length" && name != "transfer-encoding" {
            response.headers_mut().insert(name, value.clone());
        }
    }
    response
}
