//! The audit webhook receiver: `POST /api/v1/audit/webhook` takes the API server's `EventList`,
//! spools the events durably, and only then answers 200.
//!
//! The spool is a directory of append-only segments (`<nanos>.jsonl`, one flat audit event a
//! line) that the reader tails like an audit log file, with the source id
//! `<node>/webhook/<segment>`: from the spool on, delivery is exactly once like any file.
//! (auditID, stage) pairs seen within the last [`DEDUP_WINDOW`] events are not spooled again.

use std::collections::{HashSet, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::json;
use tracing::{error, warn};
use trawl_model::codec::{decode_body, Encoding};

use crate::error::{Error, Result};
use crate::fsutil::{ensure_dir, sync_dir};
use crate::metrics::Metrics;
use crate::shared::{lock, ReaderMsg};

/// (auditID, stage) pairs remembered for deduplication.
pub const DEDUP_WINDOW: usize = 100_000;
/// A segment is closed past this size and a new one started.
const SEGMENT_MAX_BYTES: u64 = 64 * 1024 * 1024;
/// Largest request body accepted, compressed.
const MAX_BODY: usize = 64 * 1024 * 1024;
/// Largest request body accepted, decompressed.
const MAX_DECODED: usize = 256 * 1024 * 1024;

/// A bounded set of recently seen keys; the oldest is forgotten first.
#[derive(Debug)]
pub struct Dedup {
    set: HashSet<String>,
    order: VecDeque<String>,
    cap: usize,
}

impl Dedup {
    /// An empty window of `cap` keys.
    pub fn new(cap: usize) -> Dedup {
        Dedup {
            set: HashSet::new(),
            order: VecDeque::new(),
            cap: cap.max(1),
        }
    }

    /// Whether `key` is in the window.
    pub fn contains(&self, key: &str) -> bool {
        self.set.contains(key)
    }

    /// Adds `key`, forgetting the oldest past the capacity.
    pub fn insert(&mut self, key: String) {
        if self.set.insert(key.clone()) {
            self.order.push_back(key);
            while self.order.len() > self.cap {
                if let Some(old) = self.order.pop_front() {
                    self.set.remove(&old);
                }
            }
        }
    }
}

/// The append side of the spool.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    current: Option<(File, u64)>,
    last_name: u128,
}

impl Spool {
    /// Opens the spool directory (creating it). Appends always go to a segment started by this
    /// process, so a segment torn by a crash is never appended to.
    pub fn open(dir: &Path) -> Result<Spool> {
        ensure_dir(dir)?;
        Ok(Spool {
            dir: dir.to_path_buf(),
            current: None,
            last_name: 0,
        })
    }

    fn new_segment(&mut self) -> Result<(File, u64)> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let mut name = now.max(self.last_name + 1);
        let mut path = self.dir.join(format!("{name:020}.jsonl"));
        while path.exists() {
            name += 1;
            path = self.dir.join(format!("{name:020}.jsonl"));
        }
        self.last_name = name;
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        sync_dir(&self.dir)?;
        Ok((file, 0))
    }

    /// Appends `lines` (complete lines) and fsyncs them. On error the segment is abandoned, so
    /// that the next append starts clean after any torn write.
    pub fn append(&mut self, lines: &[u8]) -> Result<()> {
        if lines.is_empty() {
            return Ok(());
        }
        if self
            .current
            .as_ref()
            .is_none_or(|(_, size)| *size >= SEGMENT_MAX_BYTES)
        {
            self.current = Some(self.new_segment()?);
        }
        let Some((file, size)) = self.current.as_mut() else {
            return Ok(());
        };
        let res = file.write_all(lines).and_then(|()| file.sync_data());
        match res {
            Ok(()) => {
                *size += lines.len() as u64;
                Ok(())
            }
            Err(e) => {
                self.current = None;
                Err(Error::io(&self.dir, e))
            }
        }
    }
}

/// What the webhook handler needs.
pub struct WebhookState {
    inner: Mutex<(Spool, Dedup)>,
    cluster: String,
    metrics: Metrics,
    wake: Mutex<std::sync::mpsc::Sender<ReaderMsg>>,
}

impl WebhookState {
    /// The state for a spool in `dir`; `wake` tells the reader there is something to read.
    pub fn new(
        dir: &Path,
        cluster: String,
        metrics: Metrics,
        wake: std::sync::mpsc::Sender<ReaderMsg>,
    ) -> Result<WebhookState> {
        Ok(WebhookState {
            inner: Mutex::new((Spool::open(dir)?, Dedup::new(DEDUP_WINDOW))),
            cluster,
            metrics,
            wake: Mutex::new(wake),
        })
    }
}

/// The router serving `POST /api/v1/audit/webhook`.
pub fn router(state: Arc<WebhookState>) -> Router {
    Router::new()
        .route("/api/v1/audit/webhook", post(receive))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

fn error_response(status: StatusCode, code: &str, message: String) -> Response {
    (
        status,
        Json(json!({"error": {"code": code, "message": message}})),
    )
        .into_response()
}

async fn receive(
    State(state): State<Arc<WebhookState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let encoding = headers
        .get(axum::http::header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok());
    let encoding = match Encoding::from_header(encoding) {
        Ok(e) => e,
        Err(e) => {
            return error_response(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_encoding",
                e.to_string(),
            )
        }
    };
    let state2 = state.clone();
    let result = tokio::task::spawn_blocking(move || spool_events(&state2, &body, encoding)).await;
    match result {
        Ok(Ok((accepted, deduplicated, rejected))) => {
            if accepted > 0 {
                let _ = lock(&state.wake).send(ReaderMsg::Wake);
            }
            (
                StatusCode::OK,
                Json(json!({"accepted": accepted, "deduplicated": deduplicated, "rejected": rejected})),
            )
                .into_response()
        }
        Ok(Err(WebhookError::BadRequest(message))) => {
            error_response(StatusCode::BAD_REQUEST, "bad_request", message)
        }
        Ok(Err(WebhookError::TooLarge(message))) => {
            error_response(StatusCode::PAYLOAD_TOO_LARGE, "too_large", message)
        }
        Ok(Err(WebhookError::Internal(message))) => {
            error!(error = %message, "audit events could not be spooled");
            error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the events could not be stored; retry".to_string(),
            )
        }
        Err(e) => {
            error!(error = %e, "webhook task failed");
            error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal error".to_string(),
            )
        }
    }
}

enum WebhookError {
    BadRequest(String),
    TooLarge(String),
    Internal(String),
}

/// Decodes, deduplicates and spools; returns (accepted, deduplicated, rejected).
fn spool_events(
    state: &WebhookState,
    body: &[u8],
    encoding: Encoding,
) -> std::result::Result<(usize, usize, usize), WebhookError> {
    let plain = decode_body(body, encoding, MAX_DECODED).map_err(|e| match e {
        trawl_model::Error::TooLarge { .. } => WebhookError::TooLarge(e.to_string()),
        other => WebhookError::BadRequest(other.to_string()),
    })?;
    let items = trawl_model::audit::parse_event_list(&plain)
        .map_err(|e| WebhookError::BadRequest(e.to_string()))?;
    let mut rejected = 0;
    let mut events = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        match item {
            Ok(mut ev) => {
                if ev.cluster.is_empty() {
                    ev.cluster = state.cluster.clone();
                }
                events.push(ev);
            }
            Err(e) => {
                rejected += 1;
                state.metrics.parse_failures.inc();
                warn!(item = i, error = %e, "audit event of the webhook skipped");
            }
        }
    }
    // The lock spans check, write and insert, so that the same list posted twice at once is
    // spooled once.
    let mut inner = lock(&state.inner);
    let (spool, dedup) = &mut *inner;
    let mut lines = Vec::new();
    let mut keys = Vec::new();
    let mut deduplicated = 0;
    let mut batch_keys = HashSet::new();
    for ev in events {
        let key = ev.dedup_key();
        if dedup.contains(&key) || !batch_keys.insert(key.clone()) {
            deduplicated += 1;
            continue;
        }
        lines.extend(serde_json::to_vec(&ev).unwrap_or_default());
        lines.push(b'\n');
        keys.push(key);
    }
    spool
        .append(&lines)
        .map_err(|e| WebhookError::Internal(e.to_string()))?;
    let accepted = keys.len();
    for k in keys {
        dedup.insert(k);
    }
    state.metrics.webhook_events.inc_by(accepted as u64);
    state.metrics.webhook_duplicates.inc_by(deduplicated as u64);
    Ok((accepted, deduplicated, rejected))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dedup_window_is_bounded() {
        let mut d = Dedup::new(2);
        d.insert("a".into());
        d.insert("b".into());
        d.insert("a".into());
        assert!(d.contains("a") && d.contains("b"));
        d.insert("c".into());
        assert!(!d.contains("a"));
        assert!(d.contains("b") && d.contains("c"));
    }

    #[test]
    fn spool_appends_whole_lines_to_fresh_segments() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::open(dir.path()).unwrap();
        s.append(b"{\"a\":1}\n").unwrap();
        s.append(b"{\"a\":2}\n").unwrap();
        let mut s2 = Spool::open(dir.path()).unwrap();
        s2.append(b"{\"a\":3}\n").unwrap();
        let mut names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        names.sort();
        assert_eq!(names.len(), 2);
        assert_eq!(std::fs::read(&names[0]).unwrap(), b"{\"a\":1}\n{\"a\":2}\n");
        assert_eq!(std::fs::read(&names[1]).unwrap(), b"{\"a\":3}\n");
    }
}
