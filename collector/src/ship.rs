//! The shipper: sends buffered batches to the indexer in order, advances checkpoints on
//! acknowledgement, and follows the indexer's marks when it reports a gap.
//!
//! Batches are sent in sequence order. Several may be in flight (`max_in_flight`), but never
//! two that share a source: a source's ranges must reach the indexer in order, or the second
//! would be a gap.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use serde::Deserialize;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{error, warn};

use crate::backoff::next_delay;
use crate::buffer::{decompress, Stored};
use crate::checkpoint::{unix_now, Position};
use crate::error::Error;
use crate::shared::{lock, ReaderMsg, Shared, ShipMsg};

/// A 409 answered this many times for one batch: the remaining gaps are accepted knowingly
/// rather than looping.
const MAX_CONFLICT_ROUNDS: u32 = 4;
/// Time budget of one request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Where and how to ship.
#[derive(Debug, Clone)]
pub struct ShipConfig {
    /// Base URL of the indexer (`http://host:port`).
    pub indexer_url: String,
    /// Bearer token, empty for none.
    pub token: String,
    /// PEM bundle of CAs trusted for an `https://` indexer, besides the public roots.
    pub ca_path: Option<std::path::PathBuf>,
    pub max_in_flight: usize,
}

/// What came of one request.
#[derive(Debug)]
enum Outcome {
    Acked,
    Gap(HashMap<String, u64>),
    Retry(Option<Duration>),
    Unauthorized(StatusCode),
    Refused(StatusCode, String),
}

#[derive(Debug)]
struct Slot {
    stored: Stored,
    in_flight: bool,
    conflicts: u32,
}

/// The shipper task's state.
pub struct Shipper {
    cfg: ShipConfig,
    client: reqwest::Client,
    shared: Arc<Shared>,
    rx: mpsc::UnboundedReceiver<ShipMsg>,
    reader: std::sync::mpsc::Sender<ReaderMsg>,
    queue: VecDeque<u64>,
    window: BTreeMap<u64, Slot>,
    in_flight: JoinSet<(u64, Outcome)>,
    gap_ok: HashSet<String>,
    /// Source → sequence number below which batches hold stale records of it (after a rewind).
    strip_below: HashMap<String, u64>,
    attempt: u32,
    retry_at: Option<Instant>,
    input_closed: bool,
}

impl Shipper {
    /// A shipper for the batches `queued` (already in the buffer) and those announced on `rx`.
    pub fn new(
        cfg: ShipConfig,
        shared: Arc<Shared>,
        rx: mpsc::UnboundedReceiver<ShipMsg>,
        reader: std::sync::mpsc::Sender<ReaderMsg>,
        queued: Vec<u64>,
    ) -> Result<Shipper, Error> {
        let mut builder = reqwest::Client::builder().timeout(REQUEST_TIMEOUT);
        if let Some(path) = &cfg.ca_path {
            for cert in read_ca_bundle(path)? {
                builder = builder.add_root_certificate(cert);
            }
        }
        let client = builder
            .build()
            .map_err(|e| Error::Start(format!("http client: {e}")))?;
        Ok(Shipper {
            cfg,
            client,
            shared,
            rx,
            reader,
            queue: queued.into(),
            window: BTreeMap::new(),
            in_flight: JoinSet::new(),
            gap_ok: HashSet::new(),
            strip_below: HashMap::new(),
            attempt: 0,
            retry_at: None,
            input_closed: false,
        })
    }

    fn window_size(&self) -> usize {
        self.cfg.max_in_flight.max(1) * 2 + 2
    }

    /// Ships until `stop` turns true and then, once the reader has stopped, for at most
    /// `drain` more while batches remain.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>, drain: Duration) {
        let mut deadline: Option<Instant> = None;
        loop {
            self.fill_window().await;
            self.dispatch();
            if let Some(d) = deadline {
                let idle = self.queue.is_empty() && self.window.is_empty();
                if (idle && self.input_closed) || Instant::now() >= d {
                    return;
                }
            }
            let retry_at = self.retry_at;
            let receiving = !self.input_closed;
            tokio::select! {
                msg = self.rx.recv(), if receiving => match msg {
                    Some(ShipMsg::Batch(seq)) => self.queue.push_back(seq),
                    Some(ShipMsg::GapOk(sources)) => self.gap_ok.extend(sources),
                    None => self.input_closed = true,
                },
                Some(res) = self.in_flight.join_next(), if !self.in_flight.is_empty() => {
                    if let Ok((seq, outcome)) = res {
                        self.handle(seq, outcome).await;
                    }
                }
                _ = sleep_until(retry_at), if retry_at.is_some() => self.retry_at = None,
                changed = stop.changed(), if deadline.is_none() => {
                    // A dropped sender means the handle is gone: stop as well.
                    if changed.is_err() || *stop.borrow() {
                        deadline = Some(Instant::now() + drain);
                    }
                }
                _ = tokio::time::sleep(Duration::from_millis(100)), if deadline.is_some() => {}
            }
        }
    }

    /// Loads the next queued batches into the window, applying pending strips.
    async fn fill_window(&mut self) {
        while self.window.len() < self.window_size() {
            let Some(seq) = self.queue.pop_front() else {
                return;
            };
            let shared = self.shared.clone();
            let stale: Vec<String> = self
                .strip_below
                .iter()
                .filter(|(_, &below)| seq < below)
                .map(|(s, _)| s.clone())
                .collect();
            let loaded = tokio::task::spawn_blocking(move || {
                let mut buffer = lock(&shared.buffer);
                let stored = match buffer.read(seq) {
                    Ok(s) => s,
                    Err(e) => {
                        error!(seq, error = %e, "buffered batch unreadable, dropped");
                        let _ = buffer.remove(seq);
                        shared.metrics.buffer_bytes.set(buffer.bytes() as i64);
                        return None;
                    }
                };
                if stale
                    .iter()
                    .any(|s| stored.batch.sources.iter().any(|m| &m.id == s))
                {
                    return strip_stored(&mut buffer, stored, |b| {
                        for s in &stale {
                            b.strip_source(s);
                        }
                    });
                }
                Some(stored)
            })
            .await
            .ok()
            .flatten();
            if let Some(stored) = loaded {
                self.window.insert(
                    seq,
                    Slot {
                        stored,
                        in_flight: false,
                        conflicts: 0,
                    },
                );
            }
        }
    }

    /// Starts sends for the batches whose sources no earlier pending batch holds.
    fn dispatch(&mut self) {
        if self.retry_at.is_some() {
            return;
        }
        let mut busy: HashSet<&str> = HashSet::new();
        let mut in_flight = self.window.values().filter(|s| s.in_flight).count();
        let mut to_send = Vec::new();
        for (seq, slot) in &self.window {
            let ids = slot.stored.batch.sources.iter().map(|s| s.id.as_str());
            let free = slot
                .stored
                .batch
                .sources
                .iter()
                .all(|s| !busy.contains(s.id.as_str()));
            if !slot.in_flight && free && in_flight < self.cfg.max_in_flight.max(1) {
                to_send.push(*seq);
                in_flight += 1;
            }
            busy.extend(ids);
        }
        for seq in to_send {
            let Some(slot) = self.window.get_mut(&seq) else {
                continue;
            };
            slot.in_flight = true;
            let gap_ok = &self.gap_ok;
            let body = slot
                .stored
                .batch
                .wire_body(&slot.stored.compressed, &|id| gap_ok.contains(id));
            let url = format!(
                "{}/api/v1/{}/ingest",
                self.cfg.indexer_url.trim_end_matches('/'),
                slot.stored.batch.stream
            );
            let mut req = self
                .client
                .post(url)
                .header("content-type", "application/x-ndjson")
                .header("content-encoding", "zstd")
                .header("x-trawl-delivery", "1")
                .body(body);
            if !self.cfg.token.is_empty() {
                req = req.bearer_auth(&self.cfg.token);
            }
            self.in_flight.spawn(async move { (seq, send(req).await) });
        }
    }

    async fn handle(&mut self, seq: u64, outcome: Outcome) {
        let Some(slot) = self.window.get_mut(&seq) else {
            return;
        };
        slot.in_flight = false;
        match outcome {
            Outcome::Acked => {
                self.attempt = 0;
                if let Some(slot) = self.window.remove(&seq) {
                    self.acknowledge(slot.stored, true).await;
                }
            }
            Outcome::Retry(after) => self.back_off(after),
            Outcome::Unauthorized(status) => {
                error!(%status, "the indexer refuses the collector's token; set collector.token to a token with the ingest role");
                self.back_off(None);
            }
            Outcome::Refused(status, message) => {
                error!(%status, seq, message = %message, "the indexer refused a batch as a whole; it is dropped");
                self.shared.metrics.batches_rejected.inc();
                if let Some(slot) = self.window.remove(&seq) {
                    for s in &slot.stored.batch.sources {
                        self.gap_ok.insert(s.id.clone());
                    }
                    self.acknowledge(slot.stored, false).await;
                }
            }
            Outcome::Gap(marks) => {
                self.attempt = 0;
                self.conflict(seq, marks).await;
            }
        }
    }

    fn back_off(&mut self, after: Option<Duration>) {
        self.shared.metrics.batches_retried.inc();
        let delay = next_delay(self.attempt, after);
        self.attempt = self.attempt.saturating_add(1);
        self.retry_at = Some(Instant::now() + delay);
    }

    /// The batch is durable in the index (or dropped): advance checkpoints, free the buffer.
    async fn acknowledge(&mut self, stored: Stored, shipped: bool) {
        let records = stored.batch.record_count() as u64;
        for s in &stored.batch.sources {
            self.gap_ok.remove(&s.id);
        }
        let shared = self.shared.clone();
        let result = tokio::task::spawn_blocking(move || {
            let now = unix_now();
            let mut checkpoints = lock(&shared.checkpoints);
            for s in &stored.batch.sources {
                let position = Position {
                    resume: s.resume,
                    acked: s.end,
                };
                checkpoints.acknowledge(&s.id, position, &s.path, now);
            }
            let snapshot = checkpoints.snapshot();
            drop(checkpoints);
            if let Some((path, bytes)) = snapshot {
                if let Err(e) = crate::fsutil::write_atomic(&path, &bytes) {
                    lock(&shared.checkpoints).mark_dirty();
                    error!(error = %e, "cannot persist checkpoints");
                }
            }
            let mut buffer = lock(&shared.buffer);
            if let Err(e) = buffer.remove(stored.seq) {
                warn!(error = %e, "cannot remove acknowledged batch");
            }
            shared.metrics.buffer_bytes.set(buffer.bytes() as i64);
        })
        .await;
        if result.is_ok() && shipped {
            self.shared.metrics.records_shipped.inc_by(records);
            self.shared.metrics.batches_shipped.inc();
        }
    }

    /// 409: the indexer lacks data before some ranges. Drop what it has; re-read what it
    /// misses where the file still exists; otherwise accept the gap knowingly.
    async fn conflict(&mut self, seq: u64, marks: HashMap<String, u64>) {
        let Some(slot) = self.window.get_mut(&seq) else {
            return;
        };
        slot.conflicts += 1;
        let give_up = slot.conflicts >= MAX_CONFLICT_ROUNDS;
        let ranges: Vec<(String, u64, u64)> = slot
            .stored
            .batch
            .sources
            .iter()
            .map(|s| (s.id.clone(), s.start, s.end))
            .collect();
        let mut already_there: Vec<(String, u64)> = Vec::new();
        let mut rewound: Vec<(String, u64)> = Vec::new();
        for (id, start, end) in ranges {
            let Some(&mark) = marks.get(&id) else {
                continue;
            };
            if give_up {
                warn!(source = %id, mark, start, "offset gap still reported, accepted");
                self.shared.metrics.offset_gaps.inc();
                self.gap_ok.insert(id);
            } else if mark > start {
                already_there.push((id, mark.min(end)));
            } else if mark < start {
                let (tx, rx) = oneshot::channel();
                let msg = ReaderMsg::Rewind {
                    source: id.clone(),
                    mark,
                    reply: tx,
                };
                let next = match self.reader.send(msg) {
                    Ok(()) => rx.await.ok().flatten(),
                    Err(_) => None,
                };
                match next {
                    Some(next_seq) => {
                        self.strip_below.insert(id.clone(), next_seq);
                        rewound.push((id, next_seq));
                    }
                    None => {
                        error!(source = %id, mark, start, "the indexer misses data this collector can no longer read; gap accepted");
                        self.shared.metrics.offset_gaps.inc();
                        self.gap_ok.insert(id);
                    }
                }
            }
        }
        if already_there.is_empty() && rewound.is_empty() {
            return;
        }
        // Strip from this batch and from every loaded batch the rewound sources' stale records.
        let seqs: Vec<u64> = self.window.keys().copied().collect();
        for s in seqs {
            let strip: Vec<String> = rewound
                .iter()
                .filter(|(_, next)| s < *next)
                .map(|(id, _)| id.clone())
                .collect();
            let below: Vec<(String, u64)> = if s == seq {
                already_there.clone()
            } else {
                Vec::new()
            };
            let Some(slot) = self.window.get(&s) else {
                continue;
            };
            let holds = |id: &str| slot.stored.batch.sources.iter().any(|m| m.id == id);
            if slot.in_flight
                || (!strip.iter().any(|id| holds(id)) && !below.iter().any(|(id, _)| holds(id)))
            {
                continue;
            }
            let Some(slot) = self.window.remove(&s) else {
                continue;
            };
            let shared = self.shared.clone();
            let updated = tokio::task::spawn_blocking(move || {
                let mut buffer = lock(&shared.buffer);
                let out = strip_stored(&mut buffer, slot.stored, |b| {
                    for id in &strip {
                        b.strip_source(id);
                    }
                    for (id, mark) in &below {
                        b.strip_below(id, *mark);
                    }
                });
                shared.metrics.buffer_bytes.set(buffer.bytes() as i64);
                out
            })
            .await
            .ok()
            .flatten();
            if let Some(stored) = updated {
                self.window.insert(
                    s,
                    Slot {
                        stored,
                        in_flight: false,
                        conflicts: slot.conflicts,
                    },
                );
            }
        }
    }
}

/// Applies `f` to the decompressed batch and stores the result (removing it when empty).
fn strip_stored(
    buffer: &mut crate::buffer::DiskBuffer,
    stored: Stored,
    f: impl FnOnce(&mut crate::batch::Batch),
) -> Option<Stored> {
    let mut batch = stored.batch;
    batch.records = match decompress(&stored.compressed) {
        Ok(r) => r,
        Err(e) => {
            error!(seq = stored.seq, error = %e, "buffered batch undecodable, dropped");
            let _ = buffer.remove(stored.seq);
            return None;
        }
    };
    f(&mut batch);
    match buffer.rewrite(stored.seq, &batch) {
        Ok(s) => s,
        Err(e) => {
            error!(seq = stored.seq, error = %e, "cannot rewrite buffered batch");
            None
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[derive(Deserialize)]
struct GapBody {
    #[serde(default)]
    marks: HashMap<String, u64>,
}

/// The certificates of the PEM bundle at `path` (`collector.ca_path`); a configuration error
/// naming the file when it cannot be read or holds no certificate.
fn read_ca_bundle(path: &std::path::Path) -> Result<Vec<reqwest::Certificate>, Error> {
    let pem = std::fs::read(path)
        .map_err(|e| Error::Config(format!("collector.ca_path {}: {e}", path.display())))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
        Error::Config(format!(
            "collector.ca_path {}: malformed PEM: {e}",
            path.display()
        ))
    })?;
    if certs.is_empty() {
        return Err(Error::Config(format!(
            "collector.ca_path {}: no PEM certificate found",
            path.display()
        )));
    }
    Ok(certs)
}

async fn send(req: reqwest::RequestBuilder) -> Outcome {
    let resp = match req.send().await {
        Ok(r) => r,
        Err(e) => {
            warn!(error = %e, "indexer unreachable, will retry");
            return Outcome::Retry(None);
        }
    };
    let status = resp.status();
    let retry_after = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let body = resp.bytes().await.unwrap_or_default();
    match status.as_u16() {
        200..=299 => Outcome::Acked,
        409 => match serde_json::from_slice::<GapBody>(&body) {
            Ok(gap) if !gap.marks.is_empty() => Outcome::Gap(gap.marks),
            _ => Outcome::Refused(status, text(&body)),
        },
        401 | 403 => Outcome::Unauthorized(status),
        408 | 425 | 429 | 507 => Outcome::Retry(retry_after),
        500..=599 => Outcome::Retry(retry_after),
        _ => Outcome::Refused(status, text(&body)),
    }
}

fn text(body: &[u8]) -> String {
    String::from_utf8_lossy(&body[..body.len().min(512)]).into_owned()
}
