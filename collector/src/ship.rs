//! The shipper: sends buffered batches to the indexer in order, advances checkpoints on
//! acknowledgement, and follows the indexer's marks when it reports a gap.
//!
//! Batches are sent in sequence order. Several may be in flight (`max_in_flight`), but never
//! two that share a source: a source's ranges must reach the indexer in order, or the second
//! would be a gap.
//!
//! A checkpoint never moves past a record the indexer has not durably accepted, or rejected by
//! line number, or that is in the dead-letter file. A batch refused as a whole is kept and
//! retried with capped backoff, whatever the status (a wrong URL's 404, a proxy's 4xx, 5xx, no
//! answer), logged once per distinct cause and then once a minute, counted by status, and past
//! `collector.stuck_ready_after_secs` the collector turns unready. A 413 splits the batch in
//! halves (by records, offsets chained) sent in order; a single record still refused as too
//! large, and the lines the indexer rejects by number, go to the dead-letter file
//! ([`crate::deadletter`]) before the checkpoint moves past them. See [`classify`].
//!
//! Checkpoints move in memory on every acknowledgement and are written to disk at most once per
//! [`CHECKPOINT_EVERY`] (and at shutdown): the file holds every source, so writing it for each
//! batch cost as much as reading the lines with a thousand files. A crash loses at most that
//! interval of checkpoint progress, which is re-read and dropped by the indexer's marks (its
//! ranges are below them), never lost.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use serde::Deserialize;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{debug, error, info, warn};

use crate::backoff::next_delay;
use crate::batch::Batch;
use crate::buffer::{decompress, Stored};
use crate::checkpoint::{unix_now, Position};
use crate::deadletter::{now_rfc3339, DeadLetters, DeadRecord};
use crate::error::Error;
use crate::shared::{lock, FollowerMsg, Shared, ShipMsg};

/// A 409 answered this many times for one batch: the remaining gaps are accepted knowingly
/// rather than looping.
const MAX_CONFLICT_ROUNDS: u32 = 4;
/// Time budget of one request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// While deliveries keep being refused for the same cause, it is logged again this often.
const STUCK_LOG_EVERY: Duration = Duration::from_secs(60);
/// Checkpoints are written at most this often; see the module docs.
pub const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// Where and how to ship.
#[derive(Debug, Clone)]
pub struct ShipConfig {
    /// Base URL of the indexer (`http://host:port`).
    pub indexer_url: String,
    /// Indexers to move to, in order, when the current one refuses or does not answer for
    /// `failover_after` (`collector.indexer_urls` past the first of this node's order).
    pub failover_urls: Vec<String>,
    pub failover_after: Duration,
    /// Bearer token, empty for none.
    pub token: String,
    /// PEM bundle of CAs trusted for an `https://` indexer, besides the public roots.
    pub ca_path: Option<std::path::PathBuf>,
    pub max_in_flight: usize,
    /// Where the records the indexer will never accept are kept.
    pub dead_letters: DeadLetters,
}

/// What came of one request; see [`classify`].
#[derive(Debug, PartialEq)]
enum Outcome {
    /// 2xx: durable in the index, but for the lines rejected by number.
    Acked(Answer),
    /// 409 with marks: a source starts past what the index holds.
    Gap(HashMap<String, u64>),
    /// 413: too large as a whole; split it.
    TooLarge(String),
    /// Refused as a whole or unanswered, for a `cause` that may pass: kept and retried.
    Retry {
        cause: String,
        after: Option<Duration>,
        message: String,
    },
}

/// The part of a 2xx ingest answer the collector reads: the lines refused by number.
#[derive(Debug, Default, PartialEq, Deserialize)]
struct Answer {
    #[serde(default)]
    rejected: usize,
    #[serde(default)]
    errors: Vec<LineError>,
}

#[derive(Debug, PartialEq, Deserialize)]
struct LineError {
    line: usize,
    #[serde(default)]
    message: String,
}

/// One part of a batch split after a 413, with its records.
#[derive(Debug)]
struct Part {
    batch: Batch,
    compressed: Vec<u8>,
}

impl Part {
    fn new(batch: Batch) -> Part {
        let compressed = batch.compress_records();
        Part { batch, compressed }
    }
}

#[derive(Debug)]
struct Slot {
    stored: Stored,
    in_flight: bool,
    conflicts: u32,
    /// After a 413: the parts still to send, in order, the first one next.
    parts: Option<VecDeque<Part>>,
    /// Records given up on, to write to the dead-letter file before the checkpoint moves.
    dead: Vec<DeadRecord>,
    /// Sources whose last records in this batch were dead-lettered: their next batch starts
    /// past the indexer's mark, knowingly.
    gap_after: HashSet<String>,
    /// Everything is acknowledged or given up on; only `dead` remains to be written.
    done: bool,
}

impl Slot {
    fn new(stored: Stored, conflicts: u32) -> Slot {
        Slot {
            stored,
            in_flight: false,
            conflicts,
            parts: None,
            dead: Vec::new(),
            gap_after: HashSet::new(),
            done: false,
        }
    }

    /// The batch as last sent (the first part, or the whole), with its records.
    fn sent(&self) -> std::io::Result<Batch> {
        match self.parts.as_ref().and_then(|p| p.front()) {
            Some(part) => Ok(part.batch.clone()),
            None => Ok(Batch {
                records: decompress(&self.stored.compressed)?,
                ..self.stored.batch.clone()
            }),
        }
    }
}

/// Deliveries refused for the same cause since `since`.
#[derive(Debug)]
struct Stuck {
    since: Instant,
    cause: String,
    logged: Instant,
    attempts: u64,
}

/// The shipper task's state.
pub struct Shipper {
    cfg: ShipConfig,
    client: reqwest::Client,
    shared: Arc<Shared>,
    rx: mpsc::UnboundedReceiver<ShipMsg>,
    reader: std::sync::mpsc::Sender<FollowerMsg>,
    queue: VecDeque<u64>,
    window: BTreeMap<u64, Slot>,
    in_flight: JoinSet<(u64, Outcome)>,
    gap_ok: HashSet<String>,
    /// Source → sequence number below which batches hold stale records of it (after a rewind).
    strip_below: HashMap<String, u64>,
    attempt: u32,
    retry_at: Option<Instant>,
    input_closed: bool,
    stuck: Option<Stuck>,
    /// Which indexer batches go to: 0 is `indexer_url`, `i` is `failover_urls[i - 1]`.
    target: usize,
    /// Since when the current indexer refuses or does not answer.
    failing_since: Option<Instant>,
    /// When checkpoints were last written.
    checkpoints_written: Option<Instant>,
    /// When the checkpoints acknowledged since the last write are due to be written.
    checkpoints_due: Option<Instant>,
}

impl Shipper {
    /// A shipper for the batches `queued` (already in the buffer) and those announced on `rx`.
    pub fn new(
        cfg: ShipConfig,
        shared: Arc<Shared>,
        rx: mpsc::UnboundedReceiver<ShipMsg>,
        reader: std::sync::mpsc::Sender<FollowerMsg>,
        queued: Vec<u64>,
    ) -> Result<Shipper, Error> {
        let client = http_client(cfg.ca_path.as_deref())?;
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
            stuck: None,
            target: 0,
            failing_since: None,
            checkpoints_written: None,
            checkpoints_due: None,
        })
    }

    fn window_size(&self) -> usize {
        self.cfg.max_in_flight.max(1) * 2 + 2
    }

    /// Ships until `stop` turns true and then, once the follower has stopped, for at most
    /// `drain` more while batches remain.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>, drain: Duration) {
        let mut deadline: Option<Instant> = None;
        loop {
            self.fill_window().await;
            self.settle_done().await;
            self.dispatch();
            if let Some(d) = deadline {
                let idle = self.queue.is_empty() && self.window.is_empty();
                if (idle && self.input_closed) || Instant::now() >= d {
                    return;
                }
            }
            let retry_at = self.retry_at;
            let checkpoints_due = self.checkpoints_due;
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
                _ = sleep_until(checkpoints_due), if checkpoints_due.is_some() => {
                    self.write_checkpoints().await;
                }
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
                self.window.insert(seq, Slot::new(stored, 0));
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
            if !slot.in_flight && !slot.done && free && in_flight < self.cfg.max_in_flight.max(1) {
                to_send.push(*seq);
                in_flight += 1;
            }
            busy.extend(ids);
        }
        let base = target_url(&self.cfg, self.target)
            .trim_end_matches('/')
            .to_string();
        for seq in to_send {
            let Some(slot) = self.window.get_mut(&seq) else {
                continue;
            };
            slot.in_flight = true;
            let gap_ok = &self.gap_ok;
            let gap_ok = |id: &str| gap_ok.contains(id);
            let body = match slot.parts.as_ref().and_then(|p| p.front()) {
                Some(part) => part.batch.wire_body(&part.compressed, &gap_ok),
                None => slot
                    .stored
                    .batch
                    .wire_body(&slot.stored.compressed, &gap_ok),
            };
            let url = format!("{base}/api/v1/{}/ingest", slot.stored.batch.stream);
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
            Outcome::Acked(answer) => {
                self.attempt = 0;
                self.recovered();
                self.accepted(seq, answer).await;
            }
            Outcome::Retry {
                cause,
                after,
                message,
            } => {
                self.refused(&cause, &message);
                self.fail_over_if_due();
                self.back_off(after);
            }
            Outcome::TooLarge(message) => {
                self.shared.metrics.refused("413");
                self.too_large(seq, &message).await;
            }
            Outcome::Gap(marks) => {
                self.attempt = 0;
                self.recovered();
                // A split batch is resent whole from its stripped stored form (and split again
                // if need be): the parts the indexer already has are dropped by its marks.
                if let Some(slot) = self.window.get_mut(&seq) {
                    slot.parts = None;
                    slot.dead.clear();
                    slot.gap_after.clear();
                }
                self.conflict(seq, marks).await;
            }
        }
    }

    /// A 2xx for batch `seq` (or its first part): the lines rejected by number are given up
    /// on (dead-lettered), the rest is durable.
    async fn accepted(&mut self, seq: u64, answer: Answer) {
        let Some(slot) = self.window.get_mut(&seq) else {
            return;
        };
        if answer.rejected > 0 {
            match slot.sent() {
                Ok(sent) => slot.dead.extend(rejected_records(&sent, &answer)),
                Err(e) => error!(seq, error = %e, rejected = answer.rejected,
                    "buffered batch undecodable: the lines the indexer rejected cannot be dead-lettered"),
            }
        }
        match slot.parts.as_mut() {
            Some(parts) => {
                if let Some(part) = parts.pop_front() {
                    for s in &part.batch.sources {
                        self.gap_ok.remove(&s.id);
                        slot.gap_after.remove(&s.id);
                    }
                }
                slot.done = parts.is_empty();
            }
            None => slot.done = true,
        }
        self.settle(seq).await;
    }

    /// A 413 for batch `seq` (or its first part): halves sent in order; a single record is
    /// given up on.
    async fn too_large(&mut self, seq: u64, message: &str) {
        let Some(slot) = self.window.get_mut(&seq) else {
            return;
        };
        if slot.parts.is_none() {
            let whole = match slot.sent() {
                Ok(b) => b,
                Err(e) => {
                    // Cannot happen for a batch read back with a valid checksum; retry rather
                    // than drop.
                    error!(seq, error = %e, "buffered batch undecodable, cannot split it");
                    self.back_off(None);
                    return;
                }
            };
            slot.parts = Some(VecDeque::from([Part::new(whole)]));
        }
        let Some(parts) = slot.parts.as_mut() else {
            return;
        };
        let Some(front) = parts.pop_front() else {
            return;
        };
        let n = front.batch.record_count();
        if n > 1 {
            self.shared.metrics.batches_split.inc();
            debug!(
                seq,
                records = n,
                "batch too large for the indexer, sent in two halves"
            );
            parts.push_front(Part::new(front.batch.slice(n / 2, n)));
            parts.push_front(Part::new(front.batch.slice(0, n / 2)));
        } else if let Some((source, offset, raw)) = front.batch.record(0) {
            warn!(seq, source = %source.id, file = %source.path, offset, message = %message,
                "the indexer refuses a single record as too large; it goes to the dead-letter file");
            slot.dead.push(DeadRecord {
                time: now_rfc3339(),
                stream: front.batch.stream.clone(),
                source: source.id.clone(),
                file: source.path.clone(),
                offset,
                reason: format!("payload_too_large: {message}"),
                raw: String::from_utf8_lossy(raw).into_owned(),
            });
            // What follows of this source starts past the indexer's mark, knowingly.
            self.gap_ok.insert(source.id.clone());
            let later = parts
                .iter()
                .any(|p| p.batch.sources.iter().any(|s| s.id == source.id));
            if !later {
                slot.gap_after.insert(source.id.clone());
            }
            slot.done = parts.is_empty();
            self.settle(seq).await;
        }
    }

    /// Once batch `seq` is done: writes its dead letters, then acknowledges it. When the write
    /// fails the batch stays, and the write is tried again after a backoff.
    async fn settle(&mut self, seq: u64) {
        let Some(slot) = self.window.get_mut(&seq) else {
            return;
        };
        if !slot.done {
            return;
        }
        if !slot.dead.is_empty() {
            let dead = std::mem::take(&mut slot.dead);
            let shared = self.shared.clone();
            let letters = self.cfg.dead_letters.clone();
            let (result, dead) = tokio::task::spawn_blocking(move || {
                let r = letters.append(&dead);
                (r, dead)
            })
            .await
            .unwrap_or_else(|e| {
                (
                    Err(Error::Start(format!("dead-letter task: {e}"))),
                    Vec::new(),
                )
            });
            match result {
                Ok(()) => {
                    for reason in ["payload_too_large", "rejected"] {
                        let n = dead.iter().filter(|d| d.reason.starts_with(reason)).count();
                        if n > 0 {
                            shared.metrics.dead_lettered(reason, n as u64);
                        }
                    }
                }
                Err(e) => {
                    error!(seq, error = %e, path = %self.cfg.dead_letters.current().display(),
                        "cannot write the dead-letter file; the batch is kept and the write retried");
                    self.shared.metrics.dead_letter_errors.inc();
                    if let Some(slot) = self.window.get_mut(&seq) {
                        slot.dead = dead;
                    }
                    self.back_off(None);
                    return;
                }
            }
        }
        if let Some(slot) = self.window.remove(&seq) {
            let gap_after = slot.gap_after;
            self.acknowledge(slot.stored, true).await;
            self.gap_ok.extend(gap_after);
        }
    }

    /// Settles the batches whose dead letters could not be written before.
    async fn settle_done(&mut self) {
        if self.retry_at.is_some() {
            return;
        }
        let done: Vec<u64> = self
            .window
            .iter()
            .filter(|(_, s)| s.done && !s.in_flight)
            .map(|(&seq, _)| seq)
            .collect();
        for seq in done {
            self.settle(seq).await;
            if self.retry_at.is_some() {
                return;
            }
        }
    }

    /// A delivery refused or unanswered for `cause`: counted, logged when the cause is new and
    /// then every [`STUCK_LOG_EVERY`], and the time stuck published for readiness.
    fn refused(&mut self, cause: &str, message: &str) {
        self.shared.metrics.refused(cause);
        let now = Instant::now();
        let stuck = self.stuck.get_or_insert_with(|| Stuck {
            since: now,
            cause: String::new(),
            logged: now,
            attempts: 0,
        });
        stuck.attempts += 1;
        let stuck_secs = now.duration_since(stuck.since).as_secs();
        if stuck.cause != cause || now.duration_since(stuck.logged) >= STUCK_LOG_EVERY {
            log_refusal(
                cause,
                message,
                target_url(&self.cfg, self.target),
                stuck_secs,
                stuck.attempts,
            );
            stuck.cause = cause.to_string();
            stuck.logged = now;
        }
        self.shared
            .metrics
            .stuck_seconds
            .set(i64::try_from(stuck_secs).unwrap_or(i64::MAX));
        // Set together with `self.stuck` and cleared with it in `recovered`.
        lock(&self.shared.stuck_since).get_or_insert_with(std::time::Instant::now);
    }

    /// The indexer batches go to now.
    fn current_url(&self) -> &str {
        target_url(&self.cfg, self.target)
    }

    /// After a refusal: once the current indexer has refused or not answered for
    /// `failover_after`, batches go to the next of `failover_urls` (round the list). The new
    /// indexer takes this node's sources over and answers a gap where the old one's published
    /// splits end; the batches are resent from there.
    fn fail_over_if_due(&mut self) {
        let now = Instant::now();
        let since = *self.failing_since.get_or_insert(now);
        if self.cfg.failover_urls.is_empty() || now.duration_since(since) < self.cfg.failover_after
        {
            return;
        }
        let from = self.current_url().to_string();
        self.target = (self.target + 1) % (self.cfg.failover_urls.len() + 1);
        self.failing_since = None;
        self.shared.metrics.failovers.inc();
        warn!(
            %from,
            to = %self.current_url(),
            failing_secs = now.duration_since(since).as_secs(),
            "the indexer keeps refusing or not answering: shipping to the next one"
        );
        // The next indexer is tried at once.
        self.attempt = 0;
    }

    /// The indexer answered: no longer stuck.
    fn recovered(&mut self) {
        self.failing_since = None;
        if let Some(stuck) = self.stuck.take() {
            info!(
                stuck_secs = stuck.since.elapsed().as_secs(),
                last_cause = %stuck.cause,
                attempts = stuck.attempts,
                "the indexer takes batches again"
            );
            self.shared.metrics.stuck_seconds.set(0);
            *lock(&self.shared.stuck_since) = None;
        }
    }

    fn back_off(&mut self, after: Option<Duration>) {
        self.shared.metrics.batches_retried.inc();
        let delay = next_delay(self.attempt, after);
        self.attempt = self.attempt.saturating_add(1);
        self.retry_at = Some(Instant::now() + delay);
    }

    /// The batch is settled (durable in the index, or its rest in the dead-letter file):
    /// advance checkpoints, free the buffer.
    async fn acknowledge(&mut self, stored: Stored, shipped: bool) {
        let records = stored.batch.record_count() as u64;
        for s in &stored.batch.sources {
            self.gap_ok.remove(&s.id);
        }
        let now = Instant::now();
        let write = self
            .checkpoints_written
            .is_none_or(|t| now.duration_since(t) >= CHECKPOINT_EVERY);
        if write {
            self.checkpoints_written = Some(now);
            self.checkpoints_due = None;
        } else if self.checkpoints_due.is_none() {
            self.checkpoints_due = self.checkpoints_written.map(|t| t + CHECKPOINT_EVERY);
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
            let snapshot = if write { checkpoints.snapshot() } else { None };
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

    /// Writes the checkpoints acknowledged since the last write.
    async fn write_checkpoints(&mut self) {
        self.checkpoints_due = None;
        self.checkpoints_written = Some(Instant::now());
        let shared = self.shared.clone();
        let _ = tokio::task::spawn_blocking(move || {
            let snapshot = lock(&shared.checkpoints).snapshot();
            if let Some((path, bytes)) = snapshot {
                if let Err(e) = crate::fsutil::write_atomic(&path, &bytes) {
                    lock(&shared.checkpoints).mark_dirty();
                    error!(error = %e, "cannot persist checkpoints");
                }
            }
        })
        .await;
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
                let msg = FollowerMsg::Rewind {
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
                self.window.insert(s, Slot::new(stored, slot.conflicts));
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

/// The indexer of `cfg` that `target` names: 0 is `indexer_url`, `i` is `failover_urls[i - 1]`.
fn target_url(cfg: &ShipConfig, target: usize) -> &str {
    match target.checked_sub(1) {
        None => &cfg.indexer_url,
        Some(i) => cfg.failover_urls.get(i).map_or(&cfg.indexer_url, |u| u),
    }
}

/// The order in which node `node` tries `urls`: rendezvous (highest random weight) hashing,
/// so that nodes spread evenly over the indexers, a node's order never changes while the list
/// does not, and removing one indexer moves only the nodes that shipped to it.
pub fn indexer_order(node: &str, urls: &[String]) -> Vec<String> {
    // FNV-1a: stable across builds and platforms, unlike std's `DefaultHasher`.
    fn weight(node: &str, url: &str) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in node.bytes().chain([0u8]).chain(url.bytes()) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        // A final mix, so that similar names do not give similar weights.
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^ (h >> 33)
    }
    let mut order: Vec<(u64, &String)> = urls.iter().map(|u| (weight(node, u), u)).collect();
    order.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(b.1)));
    order.into_iter().map(|(_, u)| u.clone()).collect()
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

/// Where the collector's own documents (Kubernetes Events, journal entries) go: NDJSON posted
/// to `<indexer>/api/v1/<stream>/ingest`, with the collector's token and CAs. With several
/// indexers, to the first of this node's order until it has been unavailable (not answering,
/// 5xx or 429) for `failover_after`, then to the next, as the log shipper does.
#[derive(Debug, Clone)]
pub struct StreamIngest {
    /// The ingest endpoint at each indexer, in this node's order.
    urls: Vec<String>,
    /// Bearer token; empty for none.
    token: String,
    http: reqwest::Client,
    failover_after: Duration,
    target: Arc<std::sync::Mutex<IngestTarget>>,
    /// Counts the moves to the next indexer (`trawl_collector_failovers_total`).
    failovers: Option<prometheus_client::metrics::counter::Counter>,
}

/// Which indexer a [`StreamIngest`] posts to, and since when it has been unavailable.
#[derive(Debug, Default)]
struct IngestTarget {
    current: usize,
    failing_since: Option<Instant>,
}

impl StreamIngest {
    /// The ingest endpoint of `stream` at each of `indexer_urls` (this node's order; at least
    /// one).
    pub(crate) fn new(
        indexer_urls: &[String],
        stream: &str,
        token: &str,
        ca_path: Option<&std::path::Path>,
        failover_after: Duration,
        failovers: prometheus_client::metrics::counter::Counter,
    ) -> Result<StreamIngest, Error> {
        let mut ingest = StreamIngest::with_client(indexer_urls, stream, http_client(ca_path)?)
            .failing_over(failover_after, failovers);
        ingest.token = token.to_string();
        Ok(ingest)
    }

    /// Moves to the next indexer once one has been unavailable for `after`, counted in
    /// `failovers`.
    pub(crate) fn failing_over(
        mut self,
        after: Duration,
        failovers: prometheus_client::metrics::counter::Counter,
    ) -> StreamIngest {
        self.failover_after = after;
        self.failovers = Some(failovers);
        self
    }

    /// The endpoint of `stream` at each of `indexer_urls` through `http`, without a token,
    /// failing over after the first unavailable answer.
    pub(crate) fn with_client(
        indexer_urls: &[String],
        stream: &str,
        http: reqwest::Client,
    ) -> StreamIngest {
        StreamIngest {
            urls: indexer_urls
                .iter()
                .map(|u| format!("{}/api/v1/{stream}/ingest", u.trim_end_matches('/')))
                .collect(),
            token: String::new(),
            http,
            failover_after: Duration::ZERO,
            target: Arc::default(),
            failovers: None,
        }
    }

    /// The endpoint posts go to now.
    pub fn url(&self) -> String {
        let current = lock(&self.target).current;
        self.urls.get(current).cloned().unwrap_or_default()
    }

    /// Posts `docs`, one a line, each with the `stamp` fields set (empty values left out).
    /// The indexer's answer on a 2xx; otherwise what went wrong.
    pub async fn post(
        &self,
        docs: &[serde_json::Value],
        stamp: &[(&str, &str)],
    ) -> Result<serde_json::Value, String> {
        let mut body = Vec::with_capacity(docs.len() * 512);
        for doc in docs {
            let mut doc = doc.clone();
            for (key, value) in stamp.iter().filter(|(_, v)| !v.is_empty()) {
                doc[*key] = serde_json::Value::String((*value).to_string());
            }
            // Writing a value to memory cannot fail.
            let _ = serde_json::to_writer(&mut body, &doc);
            body.push(b'\n');
        }
        let url = self.url();
        let mut request = self
            .http
            .post(&url)
            .header(reqwest::header::CONTENT_TYPE, "application/x-ndjson")
            .body(body);
        if !self.token.is_empty() {
            request = request.bearer_auth(&self.token);
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(err) => {
                self.unavailable();
                return Err(err.to_string());
            }
        };
        let status = response.status();
        if !status.is_success() {
            if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
                self.unavailable();
            }
            let text = response.text().await.unwrap_or_default();
            let shown: String = text.chars().take(300).collect();
            return Err(format!("the indexer answered {status}: {shown}"));
        }
        lock(&self.target).failing_since = None;
        Ok(response.json().await.unwrap_or(serde_json::Value::Null))
    }

    /// After an answer that says the indexer is unavailable: once it has been so for
    /// `failover_after`, posts go to the next indexer (round the list).
    fn unavailable(&self) {
        let now = Instant::now();
        let mut target = lock(&self.target);
        let since = *target.failing_since.get_or_insert(now);
        if self.urls.len() < 2 || now.duration_since(since) < self.failover_after {
            return;
        }
        let from = target.current;
        target.current = (from + 1) % self.urls.len();
        target.failing_since = None;
        if let Some(counter) = &self.failovers {
            counter.inc();
        }
        warn!(
            from = %self.urls[from],
            to = %self.urls[target.current],
            failing_secs = now.duration_since(since).as_secs(),
            "the indexer keeps refusing or not answering: posting to the next one"
        );
    }
}

/// The client that talks to the indexer: the request timeout, and the CAs of
/// `collector.ca_path` trusted besides the public roots.
pub(crate) fn http_client(ca_path: Option<&std::path::Path>) -> Result<reqwest::Client, Error> {
    let mut builder = reqwest::Client::builder().timeout(REQUEST_TIMEOUT);
    if let Some(path) = ca_path {
        for cert in read_ca_bundle(path)? {
            builder = builder.add_root_certificate(cert);
        }
    }
    builder
        .build()
        .map_err(|e| Error::Start(format!("http client: {e}")))
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
            return Outcome::Retry {
                cause: "unreachable".to_string(),
                after: None,
                message: error_chain(&e),
            }
        }
    };
    let status = resp.status();
    let retry_after = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    match resp.bytes().await {
        Ok(body) => classify(status, retry_after, &body),
        // The status came but not the body: a 2xx whose answer was cut is resent (the
        // indexer's marks drop what it has), never taken as accepted without its answer.
        Err(e) => Outcome::Retry {
            cause: "unreachable".to_string(),
            after: retry_after,
            message: format!("{status}, answer cut: {}", error_chain(&e)),
        },
    }
}

/// What the collector does with each answer of the indexer (the README's table):
///
/// - 2xx: acknowledged; the lines listed in `errors` were rejected by number and go to the
///   dead-letter file.
/// - 409 with `marks`: a gap; resend from the marks ([`Shipper::conflict`]).
/// - 413: split in halves and resent; a single record refused so goes to the dead-letter file.
/// - anything else (401, 403, 404, 408, 409 without marks, 425, 429, 507, other 4xx, 5xx, a
///   3xx not followed): kept and retried with capped backoff, after `Retry-After` when given.
///   None of them says that the records themselves can never be taken: a wrong URL, a proxy,
///   a token or an indexer being upgraded may all be fixed while the collector waits.
fn classify(status: StatusCode, retry_after: Option<Duration>, body: &[u8]) -> Outcome {
    match status.as_u16() {
        200..=299 => Outcome::Acked(serde_json::from_slice(body).unwrap_or_default()),
        409 => match serde_json::from_slice::<GapBody>(body) {
            Ok(gap) if !gap.marks.is_empty() => Outcome::Gap(gap.marks),
            _ => Outcome::Retry {
                cause: "409".to_string(),
                after: retry_after,
                message: text(body),
            },
        },
        413 => Outcome::TooLarge(text(body)),
        code => Outcome::Retry {
            cause: code.to_string(),
            after: retry_after,
            message: text(body),
        },
    }
}

/// The records of `sent` that `answer` lists as rejected (line 1 of the body is the envelope),
/// plus one entry counting those it rejected without listing them.
fn rejected_records(sent: &Batch, answer: &Answer) -> Vec<DeadRecord> {
    let time = now_rfc3339();
    let mut out = Vec::new();
    for e in &answer.errors {
        let Some((source, offset, raw)) = e.line.checked_sub(2).and_then(|i| sent.record(i)) else {
            continue;
        };
        out.push(DeadRecord {
            time: time.clone(),
            stream: sent.stream.clone(),
            source: source.id.clone(),
            file: source.path.clone(),
            offset,
            reason: format!("rejected by the indexer: {}", e.message),
            raw: String::from_utf8_lossy(raw).into_owned(),
        });
    }
    let unlisted = answer.rejected.saturating_sub(out.len());
    if unlisted > 0 {
        let first = sent.sources.first();
        out.push(DeadRecord {
            time,
            stream: sent.stream.clone(),
            source: first.map(|s| s.id.clone()).unwrap_or_default(),
            file: first.map(|s| s.path.clone()).unwrap_or_default(),
            offset: first.map_or(0, |s| s.start),
            reason: format!(
                "rejected by the indexer: {unlisted} more records of this batch, not listed in \
                 its answer (it lists the first ones only)"
            ),
            raw: String::new(),
        });
    }
    out
}

/// One log line for a cause of refusal, saying what to look at.
fn log_refusal(cause: &str, message: &str, url: &str, stuck_secs: u64, attempts: u64) {
    match cause {
        "401" | "403" => error!(status = cause, %url, stuck_secs, attempts, message = %message,
            "the indexer refuses the collector's token; set collector.token to a token with the ingest role; batches are kept and retried"),
        "404" => error!(status = cause, %url, stuck_secs, attempts, message = %message,
            "the indexer answers 404: is collector.indexer_url the indexer's base URL? batches are kept and retried"),
        "unreachable" => warn!(%url, stuck_secs, attempts, error = %message,
            "indexer unreachable; batches are kept and retried"),
        _ => error!(status = cause, %url, stuck_secs, attempts, message = %message,
            "the indexer refuses batches as a whole; they are kept and retried"),
    }
}

/// An error with its sources, on one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

fn text(body: &[u8]) -> String {
    String::from_utf8_lossy(&body[..body.len().min(512)]).into_owned()
}
