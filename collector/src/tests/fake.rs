//! A fake indexer keeping per-source marks, and helpers.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::watch;
use trawl_model::codec::{decode_body, ndjson_lines, Encoding};

use crate::{Collector, CollectorHandle};

#[derive(Debug, Default)]
pub struct Index {
    pub marks: HashMap<String, u64>,
    pub records: HashMap<String, Vec<Value>>,
    pub unavailable: bool,
    pub conflicts: usize,
    pub refused_while_unavailable: usize,
    /// Answer every batch with this status (a wrong URL's 404, a proxy's 400...).
    pub refuse_with: Option<StatusCode>,
    /// Batches refused by `refuse_with`.
    pub refused: usize,
    /// 413 for a (compressed) body larger than this.
    pub max_body_bytes: Option<usize>,
    /// Bodies answered 413.
    pub too_large: usize,
    /// Lines whose message contains this are rejected by line number (the rest is taken).
    pub reject_containing: Option<String>,
}

#[derive(Deserialize)]
struct EnvSource {
    id: String,
    start: u64,
    end: u64,
    offsets: Vec<u64>,
    #[serde(default)]
    gap_ok: bool,
}

#[derive(Deserialize)]
struct Envelope {
    sources: Vec<EnvSource>,
}

pub type Shared = Arc<Mutex<Index>>;

async fn ingest(
    State(index): State<Shared>,
    UrlPath(stream): UrlPath<String>,
    body: Bytes,
) -> Response {
    let mut index = index.lock().unwrap();
    if index.unavailable {
        index.refused_while_unavailable += 1;
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [("retry-after", "0")],
            "busy",
        )
            .into_response();
    }
    if let Some(status) = index.refuse_with {
        index.refused += 1;
        return (status, "refused").into_response();
    }
    if index.max_body_bytes.is_some_and(|max| body.len() > max) {
        index.too_large += 1;
        return (
            StatusCode::PAYLOAD_TOO_LARGE,
            Json(json!({"error": {"code": "payload_too_large", "message": "body too large"}})),
        )
            .into_response();
    }
    let plain = decode_body(&body, Encoding::Zstd, 64 << 20).unwrap();
    let mut lines = ndjson_lines(&plain).map(|(_, l)| l);
    let env: Envelope = serde_json::from_slice(lines.next().unwrap()).unwrap();
    let records: Vec<Value> = lines.map(|l| serde_json::from_slice(l).unwrap()).collect();
    assert_eq!(
        records.len(),
        env.sources.iter().map(|s| s.offsets.len()).sum::<usize>()
    );
    let mut gaps = HashMap::new();
    for s in &env.sources {
        assert_eq!(s.start, s.offsets[0], "start is the first offset");
        assert!(
            s.offsets.windows(2).all(|w| w[0] < w[1]),
            "offsets increase"
        );
        assert!(*s.offsets.last().unwrap() < s.end);
        let mark = index.marks.get(&s.id).copied().unwrap_or(0);
        if s.start > mark && !s.gap_ok {
            gaps.insert(s.id.clone(), mark);
        }
    }
    if !gaps.is_empty() {
        index.conflicts += 1;
        return (
            StatusCode::CONFLICT,
            Json(json!({"error": {"code": "offset_gap", "message": "gap"}, "marks": gaps})),
        )
            .into_response();
    }
    let mut it = records.into_iter();
    let mut accepted = 0;
    let mut deduplicated = 0;
    let mut errors = Vec::new();
    // Line 1 of the body is the envelope.
    let mut line = 1;
    for s in &env.sources {
        let mark = index.marks.get(&s.id).copied().unwrap_or(0);
        for (i, &offset) in s.offsets.iter().enumerate() {
            let rec = it.next().unwrap();
            line += 1;
            let end = s.offsets.get(i + 1).copied().unwrap_or(s.end);
            assert!(offset < end);
            let poison = index
                .reject_containing
                .as_deref()
                .is_some_and(|p| rec["message"].as_str().is_some_and(|m| m.contains(p)));
            if end > mark && poison {
                errors.push(json!({"line": line, "message": "poisoned"}));
            } else if end > mark {
                if stream == "logs" {
                    serde_json::from_value::<trawl_model::LogRecord>(rec.clone()).unwrap();
                } else {
                    serde_json::from_value::<trawl_model::AuditEvent>(rec.clone()).unwrap();
                }
                index.records.entry(stream.clone()).or_default().push(rec);
                accepted += 1;
            } else {
                deduplicated += 1;
            }
        }
        let m = index.marks.entry(s.id.clone()).or_insert(0);
        *m = (*m).max(s.end);
    }
    Json(json!({"accepted": accepted, "rejected": errors.len(), "errors": errors, "deduplicated": deduplicated}))
        .into_response()
}

/// Starts the fake indexer on 127.0.0.1:0.
pub async fn start_indexer() -> (Shared, SocketAddr) {
    let index: Shared = Arc::default();
    let app = Router::new()
        .route("/api/v1/{stream}/ingest", post(ingest))
        .with_state(index.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (index, addr)
}

/// A configuration reading `root/pods` with data under `root/data`, tuned for quick tests.
pub fn config(root: &Path) -> trawl_config::Config {
    let mut c = trawl_config::Config {
        cluster: "test".into(),
        data_dir: root.join("data"),
        ..Default::default()
    };
    c.collector.pods_dir = root.join("pods");
    c.collector.node_name = "node-1".into();
    c.collector.batch_max_wait_ms = 20;
    c.collector.rescan_interval_ms = 100;
    c.collector.batch_max_bytes = 64 * 1024;
    c
}

pub async fn start(config: &trawl_config::Config, addr: SocketAddr) -> CollectorHandle {
    let (_tx, rx) = watch::channel(false);
    // The sender is dropped: the collector runs until its handle stops it.
    Collector::start(config, format!("http://{addr}"), rx)
        .await
        .unwrap()
}

/// Polls `cond` every 20 ms; panics with `what` after 20 s.
pub async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A CRI line: `<time> <stream> <tag> <message>\n`, with a unique time per `seq`.
pub fn cri(seq: u64, tag: char, message: &str) -> String {
    let secs = 1_795_000_000 + seq / 1_000_000_000;
    let nanos = seq % 1_000_000_000;
    let t = chrono::DateTime::from_timestamp(secs as i64, nanos as u32).unwrap();
    format!(
        "{} stdout {tag} {message}\n",
        t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
    )
}

/// How a line is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// One CRI `F` line, one write.
    Whole,
    /// A `P` fragment and an `F` fragment: one record.
    Fragments,
    /// One `F` line written in two writes (a partial physical line in between).
    SplitWrite,
}

/// One container's log directory, written like the kubelet and logrotate would.
pub struct PodLog {
    pub dir: std::path::PathBuf,
    pub namespace: String,
    pub pod: String,
    pub container: String,
    rotations: u32,
    /// Every message written, in order.
    pub expected: Vec<String>,
}

fn append(path: &Path, bytes: &[u8]) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(bytes).unwrap();
}

impl PodLog {
    pub fn new(pods: &Path, namespace: &str, pod: &str, uid: &str, container: &str) -> PodLog {
        let dir = pods
            .join(format!("{namespace}_{pod}_{uid}"))
            .join(container);
        std::fs::create_dir_all(&dir).unwrap();
        PodLog {
            dir,
            namespace: namespace.into(),
            pod: pod.into(),
            container: container.into(),
            rotations: 0,
            expected: Vec::new(),
        }
    }

    pub fn live(&self) -> std::path::PathBuf {
        self.dir.join("0.log")
    }

    /// Writes one record with message `msg`; `seq` gives unique timestamps.
    pub fn write(&mut self, seq: &mut u64, msg: &str, mode: WriteMode) {
        let live = self.live();
        *seq += 1;
        match mode {
            WriteMode::Whole => append(&live, cri(*seq, 'F', msg).as_bytes()),
            WriteMode::Fragments => {
                let cut = msg.len() / 2;
                let mut text = cri(*seq, 'P', &msg[..cut]);
                *seq += 1;
                text.push_str(&cri(*seq, 'F', &msg[cut..]));
                append(&live, text.as_bytes());
            }
            WriteMode::SplitWrite => {
                let line = cri(*seq, 'F', msg);
                let (a, b) = line.split_at(line.len() / 2);
                append(&live, a.as_bytes());
                append(&live, b.as_bytes());
            }
        }
        self.expected.push(msg.to_string());
    }

    fn rotated_name(&mut self) -> std::path::PathBuf {
        self.rotations += 1;
        self.dir
            .join(format!("0.log.20261125-10{:04}", self.rotations))
    }

    /// The kubelet's rotation: rename, then the runtime opens a new file.
    pub fn rotate_rename(&mut self) {
        let to = self.rotated_name();
        if self.live().exists() {
            std::fs::rename(self.live(), to).unwrap();
        }
    }

    /// logrotate's copytruncate: copy, then truncate the live file in place.
    pub fn copytruncate(&mut self) {
        let to = self.rotated_name();
        if self.live().exists() {
            std::fs::copy(self.live(), to).unwrap();
            std::fs::OpenOptions::new()
                .write(true)
                .open(self.live())
                .unwrap()
                .set_len(0)
                .unwrap();
        }
    }
}

/// Asserts that the index holds exactly the messages of `pods`, each once, with the right
/// namespace, pod and container.
pub fn assert_exactly_once(index: &Shared, pods: &[PodLog]) {
    let index = index.lock().unwrap();
    let records = index.records.get("logs").cloned().unwrap_or_default();
    let mut got: HashMap<String, usize> = HashMap::new();
    for r in &records {
        let msg = r["message"].as_str().unwrap().to_string();
        let pod = pods
            .iter()
            .find(|p| p.expected.contains(&msg))
            .unwrap_or_else(|| panic!("unexpected record {r}"));
        assert_eq!(r["namespace"], pod.namespace.as_str());
        assert_eq!(r["pod"], pod.pod.as_str());
        assert_eq!(r["container"], pod.container.as_str());
        assert_eq!(r["node"], "node-1");
        assert_eq!(r["cluster"], "test");
        *got.entry(msg).or_default() += 1;
    }
    let dups: Vec<_> = got.iter().filter(|(_, &n)| n > 1).collect();
    assert!(dups.is_empty(), "duplicates: {dups:?}");
    let expected: usize = pods.iter().map(|p| p.expected.len()).sum();
    let missing: Vec<_> = pods
        .iter()
        .flat_map(|p| p.expected.iter())
        .filter(|m| !got.contains_key(*m))
        .take(10)
        .collect();
    assert!(missing.is_empty(), "missing (first 10): {missing:?}");
    assert_eq!(records.len(), expected);
}

/// Number of `logs` records held.
pub fn count(index: &Shared) -> usize {
    index
        .lock()
        .unwrap()
        .records
        .get("logs")
        .map_or(0, Vec::len)
}

/// Waits until the index holds as many records as `pods` wrote; on timeout, reports what is
/// missing or duplicated.
pub async fn wait_for_all(index: &Shared, pods: &[PodLog]) {
    let total: usize = pods.iter().map(|p| p.expected.len()).sum();
    let deadline = Instant::now() + Duration::from_secs(20);
    while count(index) < total {
        if Instant::now() >= deadline {
            assert_exactly_once(index, pods);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
