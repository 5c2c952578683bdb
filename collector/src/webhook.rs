//! The audit webhook receiver: `POST /api/v1/audit/webhook` takes the API server's `EventList`,
//! spools the events durably, and only then answers 200.
//!
//! The spool is a directory of append-only segments (`<nanos>.jsonl`, one flat audit event a
//! line) that the follower follows like an audit log file, with the source id
//! `<node>/webhook/<segment>`: from the spool on, delivery is exactly once like any file.
//! (auditID, stage) pairs seen within the last [`DEDUP_WINDOW`] events are not spooled again,
//! across restarts too: the window is kept in a key log beside the segments ([`KEYS_FILE`]) and
//! rebuilt at start from it and from the segments still in the spool.

use std::collections::{HashSet, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::json;
use tracing::{error, warn};
use trawl_model::codec::{decode_body, Encoding};
use trawl_model::{ApiError, ErrorCode};

use crate::error::{Error, Result};
use crate::fsutil::{ensure_dir, sync_dir, write_atomic};
use crate::metrics::Metrics;
use crate::shared::{lock, FollowerMsg};

/// (auditID, stage) pairs remembered for deduplication.
pub const DEDUP_WINDOW: usize = 100_000;
/// The key log in the spool directory: the dedup window's keys, one a line, oldest first. Not a
/// `.jsonl` name, so the follower does not take it for a segment.
pub const KEYS_FILE: &str = "dedup-keys.log";
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

    /// The keys in the window, oldest first.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.order.iter().map(String::as_str)
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

    /// Whether the next append starts a new segment (the current one becomes complete, and
    /// may be removed once delivered).
    pub fn starts_segment(&self) -> bool {
        self.current
            .as_ref()
            .is_none_or(|(_, size)| *size >= SEGMENT_MAX_BYTES)
    }

    /// Appends `lines` (complete lines) and fsyncs them. On error the segment is abandoned, so
    /// that the next append starts clean after any torn write.
    pub fn append(&mut self, lines: &[u8]) -> Result<()> {
        if lines.is_empty() {
            return Ok(());
        }
        if self.starts_segment() {
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

/// The key of a spooled event (a line of a segment).
#[derive(serde::Deserialize)]
struct SpooledKey {
    audit_id: String,
    stage: String,
}

/// The durable side of the dedup window: an append-only log of keys, compacted to the window
/// when it grows past twice its capacity.
///
/// Appends are not fsynced one by one: until a segment is complete its own lines carry its
/// keys (the window is rebuilt from the segments at start), and the log is fsynced before a new
/// segment begins ([`KeyLog::before_new_segment`]), so before any complete segment can be
/// delivered and removed.
#[derive(Debug)]
pub struct KeyLog {
    path: PathBuf,
    file: Option<File>,
    lines: usize,
    /// A write failed: the log is rewritten whole before it is used again.
    stale: bool,
}

impl KeyLog {
    /// Rebuilds `dedup` from the key log and the segments in `dir` (oldest first), then
    /// rewrites the log as the window, durably.
    pub fn open(dir: &Path, dedup: &mut Dedup) -> Result<KeyLog> {
        let path = dir.join(KEYS_FILE);
        match File::open(&path) {
            Ok(file) => {
                let mut reader = BufReader::new(file);
                let mut line = String::new();
                loop {
                    line.clear();
                    let n = reader
                        .read_line(&mut line)
                        .map_err(|e| Error::io(&path, e))?;
                    // A last line without its newline was torn by a crash: its events are
                    // still in their segment.
                    if n == 0 || !line.ends_with('\n') {
                        break;
                    }
                    let key = line.trim_end_matches('\n');
                    if !key.is_empty() {
                        dedup.insert(key.to_string());
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(&path, e)),
        }
        let mut segments: Vec<PathBuf> = fs::read_dir(dir)
            .map_err(|e| Error::io(dir, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
            .collect();
        segments.sort();
        for segment in segments {
            let file = File::open(&segment).map_err(|e| Error::io(&segment, e))?;
            for line in BufReader::new(file).split(b'\n') {
                let line = line.map_err(|e| Error::io(&segment, e))?;
                if let Ok(key) = serde_json::from_slice::<SpooledKey>(&line) {
                    dedup.insert(format!("{}/{}", key.audit_id, key.stage));
                }
            }
        }
        let mut log = KeyLog {
            path,
            file: None,
            lines: 0,
            stale: true,
        };
        log.rewrite(dedup)?;
        Ok(log)
    }

    /// Replaces the log with the keys of `dedup`, durably, and reopens it for appends.
    fn rewrite(&mut self, dedup: &Dedup) -> Result<()> {
        self.file = None;
        let mut bytes = Vec::new();
        let mut lines = 0;
        for key in dedup.keys() {
            bytes.extend_from_slice(key.as_bytes());
            bytes.push(b'\n');
            lines += 1;
        }
        write_atomic(&self.path, &bytes)?;
        let file = OpenOptions::new()
            .append(true)
            .open(&self.path)
            .map_err(|e| Error::io(&self.path, e))?;
        self.file = Some(file);
        self.lines = lines;
        self.stale = false;
        Ok(())
    }

    /// Makes the log durable before a new segment begins; an error refuses the batch.
    fn before_new_segment(&mut self, dedup: &Dedup) -> Result<()> {
        match self.file.as_ref() {
            Some(file) if !self.stale => file.sync_data().map_err(|e| Error::io(&self.path, e)),
            _ => self.rewrite(dedup),
        }
    }

    /// Records the keys of a spooled batch (already in `dedup`). A failure is logged and the
    /// log rewritten at its next use: the batch is spooled already, and its segment holds the
    /// keys until then.
    fn append(&mut self, keys: &[String], dedup: &Dedup) {
        let result = if self.stale || self.lines + keys.len() > 2 * dedup.cap {
            self.rewrite(dedup)
        } else {
            let mut bytes = Vec::new();
            for key in keys {
                bytes.extend_from_slice(key.as_bytes());
                bytes.push(b'\n');
            }
            match self.file.as_mut() {
                Some(file) => file.write_all(&bytes).map_err(|e| Error::io(&self.path, e)),
                None => Err(Error::io(&self.path, std::io::Error::other("not open"))),
            }
            .map(|()| self.lines += keys.len())
        };
        if let Err(e) = result {
            self.stale = true;
            warn!(error = %e, "the webhook's dedup key log could not be written; it is rewritten at its next use");
        }
    }
}

/// What the webhook handler needs.
pub struct WebhookState {
    inner: Mutex<(Spool, Dedup, KeyLog)>,
    cluster: String,
    metrics: Metrics,
    wake: Mutex<std::sync::mpsc::Sender<FollowerMsg>>,
}

impl WebhookState {
    /// The state for a spool in `dir`, its dedup window rebuilt from what the spool keeps;
    /// `wake` tells the follower there is something to read.
    pub fn new(
        dir: &Path,
        cluster: String,
        metrics: Metrics,
        wake: std::sync::mpsc::Sender<FollowerMsg>,
    ) -> Result<WebhookState> {
        let spool = Spool::open(dir)?;
        let mut dedup = Dedup::new(DEDUP_WINDOW);
        let keys = KeyLog::open(dir, &mut dedup)?;
        Ok(WebhookState {
            inner: Mutex::new((spool, dedup, keys)),
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

async fn receive(
    State(state): State<Arc<WebhookState>>,
    headers: HeaderMap,
    body: std::result::Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(rejection) => return ApiError::from(rejection).into_response(),
    };
    let encoding = headers
        .get(axum::http::header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok());
    let encoding = match Encoding::from_header(encoding) {
        Ok(e) => e,
        Err(e) => {
            return ApiError::new(ErrorCode::UnsupportedMediaType, e.to_string()).into_response()
        }
    };
    let state2 = state.clone();
    let result = tokio::task::spawn_blocking(move || spool_events(&state2, &body, encoding)).await;
    match result {
        Ok(Ok((accepted, deduplicated, rejected))) => {
            if accepted > 0 {
                let _ = lock(&state.wake).send(FollowerMsg::Wake);
            }
            (
                StatusCode::OK,
                Json(json!({"accepted": accepted, "deduplicated": deduplicated, "rejected": rejected})),
            )
                .into_response()
        }
        Ok(Err(WebhookError::BadRequest(message))) => {
            ApiError::bad_request(message).into_response()
        }
        Ok(Err(WebhookError::TooLarge(message))) => {
            ApiError::new(ErrorCode::PayloadTooLarge, message).into_response()
        }
        Ok(Err(WebhookError::Internal(message))) => {
            error!(error = %message, "audit events could not be spooled");
            ApiError::new(ErrorCode::Internal, "the events could not be stored; retry")
                .into_response()
        }
        Err(e) => ApiError::internal(format!("webhook task failed: {e}")).into_response(),
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
    let (spool, dedup, key_log) = &mut *inner;
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
    if !lines.is_empty() && spool.starts_segment() {
        key_log
            .before_new_segment(dedup)
            .map_err(|e| WebhookError::Internal(e.to_string()))?;
    }
    spool
        .append(&lines)
        .map_err(|e| WebhookError::Internal(e.to_string()))?;
    let accepted = keys.len();
    for k in &keys {
        dedup.insert(k.clone());
    }
    if !keys.is_empty() {
        key_log.append(&keys, dedup);
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

    fn event_list(events: &[(&str, &str)]) -> Vec<u8> {
        let items: Vec<serde_json::Value> = events
            .iter()
            .map(|(id, stage)| {
                json!({
                    "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata",
                    "auditID": id, "stage": stage, "verb": "get",
                    "requestURI": "/api/v1/namespaces/shop/pods/web",
                    "user": {"username": "alice"},
                    "requestReceivedTimestamp": "2026-11-25T10:00:00.000000Z",
                    "stageTimestamp": "2026-11-25T10:00:00.001000Z",
                })
            })
            .collect();
        serde_json::to_vec(
            &json!({"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": items}),
        )
        .unwrap()
    }

    fn state(dir: &Path) -> WebhookState {
        let (tx, _rx) = std::sync::mpsc::channel();
        WebhookState::new(dir, "c1".into(), Metrics::default(), tx).unwrap()
    }

    fn post(state: &WebhookState, events: &[(&str, &str)]) -> (usize, usize, usize) {
        match spool_events(state, &event_list(events), Encoding::Identity) {
            Ok(counts) => counts,
            Err(_) => panic!("the events were not spooled"),
        }
    }

    fn segments(dir: &Path) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
            .collect();
        out.sort();
        out
    }

    #[test]
    fn dedup_survives_restarts_and_delivered_segments() {
        let dir = tempfile::tempdir().unwrap();
        let events = [("a1", "ResponseComplete"), ("a2", "ResponseComplete")];
        assert_eq!(post(&state(dir.path()), &events), (2, 0, 0));
        // A restart: the window comes back from the spool.
        let second = state(dir.path());
        assert_eq!(post(&second, &events), (0, 2, 0));
        // A new stage of a known audit id is a new event.
        assert_eq!(post(&second, &[("a1", "RequestReceived")]), (1, 0, 0));
        drop(second);
        // The segments were delivered and removed: the key log still knows them.
        for segment in segments(dir.path()) {
            fs::remove_file(segment).unwrap();
        }
        let third = state(dir.path());
        assert_eq!(
            post(
                &third,
                &[
                    ("a1", "ResponseComplete"),
                    ("a1", "RequestReceived"),
                    ("a2", "ResponseComplete")
                ]
            ),
            (0, 3, 0)
        );
        assert_eq!(post(&third, &[("a3", "ResponseComplete")]), (1, 0, 0));
    }

    #[test]
    fn key_log_ignores_a_torn_last_line_and_stays_bounded() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(KEYS_FILE), "k0\nk1\nk2-torn").unwrap();
        let mut dedup = Dedup::new(3);
        let mut log = KeyLog::open(dir.path(), &mut dedup).unwrap();
        assert!(dedup.contains("k0") && dedup.contains("k1"));
        assert!(!dedup.contains("k2-torn") && !dedup.contains("k2"));
        for i in 2..20 {
            let key = format!("k{i}");
            dedup.insert(key.clone());
            log.append(&[key], &dedup);
            let lines = fs::read_to_string(dir.path().join(KEYS_FILE))
                .unwrap()
                .lines()
                .count();
            assert!(lines <= 6, "{lines} lines in the key log of a window of 3");
        }
        let mut rebuilt = Dedup::new(3);
        KeyLog::open(dir.path(), &mut rebuilt).unwrap();
        assert_eq!(rebuilt.keys().collect::<Vec<_>>(), ["k17", "k18", "k19"]);
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
