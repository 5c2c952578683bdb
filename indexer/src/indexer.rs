//! The indexer: open and recover, ingest (validate, dedup by source marks, WAL, acknowledge),
//! and the background upkeep of splits (merges, retention, WAL truncation).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;

use serde::Serialize;
use trawl_config::StreamConfig;
use trawl_model::codec::ndjson_lines;
use trawl_model::Timestamp;

use crate::catalog::Catalog;
use crate::compat::shapes::normalise_line;
use crate::dead_letter::{DeadLetter, DeadLetters};
use crate::dedup::{self, Lookup, Push, Window};
use crate::doc::{Prepared, StreamSpec};
use crate::entry::Batch;
use crate::marks::{Envelope, Marks, Plan};
use crate::metastore::{Metastore, MetastoreState, RetiredSplit};
use crate::metrics::Metrics;
use crate::retire::{self, Pins};
use crate::settings::{IndexerSettings, CRASH_AFTER_MERGE_PUBLISH, CRASH_AFTER_RETENTION_PUBLISH};
use crate::split::{self, SplitHandle, SplitMeta, SPLIT_FORMAT_VERSION};
use crate::stream::{lock, run_indexing, IndexOp, OnSealed, Stream};
use crate::wal::Wal;
use crate::{Error, Result, StreamSnapshot, StreamStats, TailBatch};

/// How many batches queue for one stream's indexing thread before the WAL writer waits: enough
/// to ride out a commit, small enough that memory stays bounded (a batch is at most a few MiB).
const INDEX_QUEUE_BATCHES: usize = 16;
/// At most this many queued appends share one fsync.
const GROUP_COMMIT_MAX: usize = 256;
/// How many refused lines an ingest answer lists (the count covers them all; the dead-letter
/// store keeps every one): with messages of at most [`MAX_ERROR_CHARS`], the answer stays
/// under the 4 KB an agent's `http` output reads.
const MAX_REPORTED_ERRORS: usize = 10;
/// The longest error message an ingest answer carries, in characters.
const MAX_ERROR_CHARS: usize = 200;

/// A line of an ingest body that was refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LineError {
    pub line: usize,
    pub message: String,
}

/// What ingest answers once the accepted records are durable.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct IngestOutcome {
    pub accepted: usize,
    pub rejected: usize,
    pub errors: Vec<LineError>,
    /// Records dropped because the index already held them (delivery batches only).
    pub deduplicated: usize,
    /// Lines (0-based, blank lines not counted) not written because their document id was
    /// already written (see [`Push::ids`]); for the `_bulk` answer, not part of this one.
    #[serde(skip)]
    pub conflicts: Vec<usize>,
    /// The batch was recognised as sent before (within the dedup window) and not written
    /// again; the rest of the outcome is the first answer's.
    #[serde(skip)]
    pub resent: bool,
}

/// Why an ingest was refused as a whole.
#[derive(Debug)]
pub enum IngestError {
    /// A source starts past its mark; nothing was taken. The marks of the batch's sources.
    Gap(BTreeMap<String, u64>),
    /// The delivery envelope is malformed.
    BadEnvelope(String),
    /// The stream does not exist.
    UnknownStream(String),
    /// The WAL could not be written (disk full, I/O error): retry later.
    Storage(String),
    /// The batch holds more records than `max_records_per_batch`.
    TooManyRecords(String),
    /// The indexer is shutting down.
    ShuttingDown,
}

struct WalRequest {
    stream: Arc<Stream>,
    payload: Vec<u8>,
    docs: Vec<Prepared>,
    advance: Vec<(String, u64)>,
    records: u64,
    bytes: u64,
    /// The push batch's fingerprint, settled in the resend window once durable.
    fingerprint: Option<u128>,
    /// Ids claimed by the batch, released if it is not written.
    claimed_ids: Vec<String>,
    reply: tokio::sync::oneshot::Sender<std::result::Result<u64, String>>,
}

/// What preparing an ingest came to.
enum Queued {
    /// The same batch is being written by another request: wait for it, then look again.
    Wait(tokio::sync::watch::Receiver<bool>),
    /// The batch is queued (or needs no write): the WAL's answer and the outcome.
    Reply(
        tokio::sync::oneshot::Receiver<std::result::Result<u64, String>>,
        IngestOutcome,
    ),
}

enum WalMsg {
    Append(WalRequest),
    /// Cut the WAL before what every stream still needs; snapshot the marks first.
    Truncate,
}

struct StreamEntry {
    stream: Arc<Stream>,
    tx: SyncSender<IndexOp>,
    /// New documents for live tail, sent only while somebody listens.
    tail: tokio::sync::broadcast::Sender<Arc<TailBatch>>,
}

/// How many batches a live-tail subscriber may fall behind before it is cut off: a batch is at
/// most a few MiB, and a client this far behind cannot catch up anyway.
const TAIL_QUEUE_BATCHES: usize = 256;

struct Inner {
    settings: IndexerSettings,
    /// Every stream by name. Streams are only ever added (on first write, when
    /// `auto_create_streams` is on), never removed while running.
    streams: RwLock<BTreeMap<String, Arc<StreamEntry>>>,
    /// Serialises the creation of streams on first write.
    creating: Mutex<()>,
    /// Definitions of the streams created on first write.
    catalog: Catalog,
    /// The indexer's directory (`<data_dir>/indexer`).
    root: PathBuf,
    /// Lets the indexing thread of a stream created later report its seals; taken at shutdown
    /// so that the upkeep thread sees its channel close.
    sealed_tx: Mutex<Option<Sender<()>>>,
    /// The slot the seal callbacks reach this `Inner` through.
    inner_slot: Arc<Mutex<Option<std::sync::Weak<Inner>>>>,
    metastore: Mutex<(Metastore, MetastoreState)>,
    /// Retired splits that searches may still hold (see [`retire`]).
    pins: Pins,
    marks: Mutex<Marks>,
    /// Push batches made durable lately, and ids written lately (see [`crate::dedup`]).
    resent: Mutex<Window>,
    wal_tx: Mutex<Option<Sender<WalMsg>>>,
    metrics: Arc<Metrics>,
    /// Every line ingest refused, per stream.
    dead_letters: DeadLetters,
    ready: AtomicBool,
    stopping: AtomicBool,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

/// A running indexer. Cheap to clone.
#[derive(Clone)]
pub struct Indexer {
    inner: Arc<Inner>,
}

impl Indexer {
    /// Opens the indexer's data directory, recovers splits and hot indexes, replays the WAL and
    /// starts the indexing, WAL and upkeep threads. Returns once what the WAL held is
    /// searchable.
    pub fn open(settings: IndexerSettings, metrics: Arc<Metrics>) -> Result<Indexer> {
        let root = settings.data_dir.join("indexer");
        fs::create_dir_all(&root)?;
        let metastore = Metastore::new(&root);
        let mut state = metastore.load()?;
        let catalog = Catalog::new(&root);
        let specs = stream_specs(&settings, &catalog)?;

        // Retired splits first: nothing pins them now, and none may be adopted as an orphan.
        let gone = retire::remove_unpinned(&root, &state.retired, |_| false);
        retire::forget(&mut state, &gone);
        adopt_orphans(&root, &specs, &mut state)?;
        metastore.store(&state)?;

        let mut streams = BTreeMap::new();
        let mut threads = Vec::new();
        let mut replay_from: HashMap<String, u64> = HashMap::new();
        let (sealed_tx, sealed_rx) = mpsc::channel::<()>();
        let inner_slot: Arc<Mutex<Option<std::sync::Weak<Inner>>>> = Arc::new(Mutex::new(None));
        for spec in specs {
            let name = spec.name.clone();
            let on_sealed = on_sealed_callback(inner_slot.clone(), sealed_tx.clone());
            let opened = open_stream(spec, &root, &state, &settings, &metrics, on_sealed)?;
            replay_from.insert(name.clone(), opened.replay_from);
            threads.push(opened.thread);
            streams.insert(name, opened.entry);
        }

        // Replay: everything past the point each stream's durable state covers.
        let from = replay_from
            .values()
            .copied()
            .chain([state.marks_lsn])
            .min()
            .unwrap_or(0);
        let (mut wal, entries) = Wal::open(&root.join("wal"), settings.wal_segment_bytes, from)?;
        wal.set_fault(settings.fault_point());
        let mut marks = Marks::from_snapshot(&state.marks);
        let now = Timestamp::now().nanos();
        let mut resent = Window::load(&root, window_nanos(&settings), now);
        let mut replayed = 0usize;
        let mut batches = Vec::new();
        let mut unconfigured = BTreeSet::new();
        for entry in entries {
            let batch = Batch::decode(&entry.payload)?;
            if !streams.contains_key(&batch.stream)
                && entry.lsn >= state.sealed_lsn.get(&batch.stream).copied().unwrap_or(0)
                && !batch.records.is_empty()
            {
                unconfigured.insert(batch.stream.clone());
            }
            batches.push((entry, batch));
        }
        crate::replay::check_unconfigured(&unconfigured, &settings.drop_unconfigured_streams)?;
        for (entry, batch) in batches {
            if entry.lsn >= state.marks_lsn {
                marks.commit(&batch.marks, Timestamp::now().nanos());
            }
            if let Some(fp) = batch.fingerprint {
                resent.restore(fp, batch.received_at, batch.conflicts.clone(), now);
            }
            let Some(target) = streams.get(&batch.stream) else {
                if unconfigured.contains(&batch.stream) {
                    tracing::warn!(
                        stream = %batch.stream,
                        records = batch.records.len(),
                        "unsealed records of an unconfigured stream dropped \
                         (indexer.drop_unconfigured_streams)"
                    );
                    metrics
                        .replay_dropped_records
                        .get_or_create(&crate::metrics::StreamLabel {
                            stream: batch.stream.clone(),
                        })
                        .inc_by(batch.records.len() as u64);
                }
                continue;
            };
            if entry.lsn < replay_from.get(&batch.stream).copied().unwrap_or(0) {
                continue;
            }
            let docs: Vec<Prepared> = crate::replay::batch_docs(&target.stream, &batch, &metrics);
            replayed += docs.len();
            lock(&target.stream.unsealed).push_back(entry.lsn);
            let op = IndexOp::Add {
                lsn: entry.lsn,
                lsn_end: entry.end,
                docs,
            };
            if target.tx.send(op).is_err() {
                return Err(Error::InvalidArgument("indexing thread died".into()));
            }
        }
        if replayed > 0 {
            tracing::info!(records = replayed, "replayed the write-ahead log");
        }
        metrics.wal_bytes.set(wal.disk_bytes() as i64);

        let (wal_tx, wal_rx) = mpsc::channel();
        let dead_letters =
            DeadLetters::new(&root.join("dead-letters"), settings.dead_letter_max_bytes);
        let inner = Arc::new(Inner {
            settings,
            streams: RwLock::new(streams),
            creating: Mutex::new(()),
            catalog,
            root,
            sealed_tx: Mutex::new(Some(sealed_tx)),
            inner_slot: inner_slot.clone(),
            metastore: Mutex::new((metastore, state)),
            pins: Pins::default(),
            marks: Mutex::new(marks),
            resent: Mutex::new(resent),
            wal_tx: Mutex::new(Some(wal_tx)),
            metrics,
            dead_letters,
            ready: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            threads: Mutex::new(threads),
        });
        *lock(&inner_slot) = Some(Arc::downgrade(&inner));
        let wal_inner = inner.clone();
        let wal_thread = std::thread::Builder::new()
            .name("wal".into())
            .spawn(move || run_wal(wal_inner, wal, wal_rx))?;
        let upkeep = Arc::downgrade(&inner);
        let upkeep_thread = std::thread::Builder::new()
            .name("upkeep".into())
            .spawn(move || run_upkeep(upkeep, sealed_rx))?;
        lock(&inner.threads).extend([wal_thread, upkeep_thread]);

        let indexer = Indexer { inner };
        indexer.flush();
        indexer.inner.ready.store(true, Ordering::SeqCst);
        Ok(indexer)
    }

    /// Whether the WAL was replayed and what it held is searchable.
    pub fn is_ready(&self) -> bool {
        self.inner.ready.load(Ordering::SeqCst) && !self.inner.stopping.load(Ordering::SeqCst)
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.metrics
    }

    pub fn settings(&self) -> &IndexerSettings {
        &self.inner.settings
    }

    /// The names of the streams.
    pub fn stream_names(&self) -> Vec<String> {
        read(&self.inner.streams).keys().cloned().collect()
    }

    /// Whether the stream exists.
    pub fn has_stream(&self, name: &str) -> bool {
        read(&self.inner.streams).contains_key(name)
    }

    /// Whether a write to an unknown stream creates it (`indexer.auto_create_streams`).
    pub fn auto_create_streams(&self) -> bool {
        self.inner.settings.auto_create_streams
    }

    /// The definition of a stream (its kind, fields and default fields).
    pub fn stream_spec(&self, name: &str) -> Result<StreamSpec> {
        Ok(self.stream(name)?.stream.spec.clone())
    }

    /// Makes sure a stream exists: an existing one is left as it is; an unknown one is created
    /// as a generic stream defined by `template` when `auto_create_streams` is on, its
    /// definition recorded durably before this returns (so that it is opened again after a
    /// restart). Unknown with auto-creation off: [`Error::UnknownStream`]; a name that is not a
    /// valid stream name: [`Error::InvalidArgument`].
    pub async fn ensure_stream(&self, name: &str, template: &StreamConfig) -> Result<()> {
        if self.has_stream(name) {
            return Ok(());
        }
        if !self.inner.settings.auto_create_streams {
            return Err(Error::UnknownStream(name.chars().take(64).collect()));
        }
        trawl_model::validate_stream_name(name)
            .map_err(|e| Error::InvalidArgument(e.to_string()))?;
        let this = self.clone();
        let name = name.to_string();
        let template = template.clone();
        tokio::task::spawn_blocking(move || this.create_stream(&name, &template))
            .await
            .map_err(|_| Error::InvalidArgument("stream creation was cancelled".into()))?
    }

    /// Creates a generic stream on first write (blocking: directories, catalog fsync, thread).
    fn create_stream(&self, name: &str, template: &StreamConfig) -> Result<()> {
        let inner = &self.inner;
        let _creating = lock(&inner.creating);
        if self.has_stream(name) {
            return Ok(());
        }
        if inner.stopping.load(Ordering::SeqCst) {
            return Err(Error::InvalidArgument(
                "the indexer is shutting down".into(),
            ));
        }
        let spec = StreamSpec::generic(name, template)?;
        inner.catalog.add(name, template)?;
        let sealed_tx = lock(&inner.sealed_tx)
            .clone()
            .ok_or_else(|| Error::InvalidArgument("the indexer is shutting down".into()))?;
        let on_sealed = on_sealed_callback(inner.inner_slot.clone(), sealed_tx);
        let opened = {
            let guard = lock(&inner.metastore);
            open_stream(
                spec,
                &inner.root,
                &guard.1,
                &inner.settings,
                &inner.metrics,
                on_sealed,
            )?
        };
        lock(&inner.threads).push(opened.thread);
        inner
            .streams
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(name.to_string(), opened.entry);
        tracing::info!(stream = name, "created a stream on first write");
        Ok(())
    }

    fn stream(&self, name: &str) -> Result<Arc<StreamEntry>> {
        read(&self.inner.streams)
            .get(name)
            .cloned()
            .ok_or_else(|| Error::UnknownStream(name.chars().take(64).collect()))
    }

    /// What a search over `[start, end)` of a stream must visit.
    pub fn snapshot(
        &self,
        stream: &str,
        start: Option<Timestamp>,
        end: Option<Timestamp>,
    ) -> Result<StreamSnapshot> {
        Ok(self.stream(stream)?.stream.snapshot(start, end))
    }

    /// Subscribes to the documents of a stream as they become durable (live tail). A receiver
    /// that falls more than a few hundred batches behind gets `Lagged`.
    pub fn subscribe(
        &self,
        stream: &str,
    ) -> Result<tokio::sync::broadcast::Receiver<Arc<TailBatch>>> {
        Ok(self.stream(stream)?.tail.subscribe())
    }

    /// A stream's schema and default fields, with no targets (for matching tailed documents).
    pub fn empty_snapshot(&self, stream: &str) -> Result<StreamSnapshot> {
        let mut snapshot = self.stream(stream)?.stream.snapshot(None, None);
        snapshot.targets.clear();
        Ok(snapshot)
    }

    /// Per-stream statistics for `GET /api/v1/streams`.
    pub fn stream_stats(&self) -> Vec<StreamStats> {
        stream_list(&self.inner)
            .into_iter()
            .map(|(name, entry)| {
                let splits = entry.stream.splits();
                let (hot_docs, hot_bytes, hot_range) = entry.stream.hot_stats();
                let mut min = hot_range.map(|r| r.0);
                let mut max = hot_range.map(|r| r.1);
                for s in &splits {
                    min = Some(min.map_or(s.meta.min_timestamp, |m| m.min(s.meta.min_timestamp)));
                    max = Some(max.map_or(s.meta.max_timestamp, |m| m.max(s.meta.max_timestamp)));
                }
                StreamStats {
                    name,
                    docs: hot_docs + splits.iter().map(|s| s.meta.docs).sum::<u64>(),
                    bytes: hot_bytes + splits.iter().map(|s| s.meta.bytes).sum::<u64>(),
                    splits: splits.len(),
                    min_timestamp: min.map(|t| Timestamp(t).to_rfc3339()),
                    max_timestamp: max.map(|t| Timestamp(t).to_rfc3339()),
                }
            })
            .collect()
    }

    /// Commits every stream's hot index now; returns once searchable.
    pub fn flush(&self) {
        self.to_every_stream(IndexOp::Flush);
    }

    /// Seals every stream's hot index into a split now.
    pub fn seal_all(&self) {
        self.to_every_stream(IndexOp::Seal);
    }

    /// Sends an op to every indexing thread and waits until each has done it.
    fn to_every_stream(&self, op: fn(mpsc::Sender<()>) -> IndexOp) {
        let waits: Vec<_> = stream_list(&self.inner)
            .into_iter()
            .filter_map(|(_, entry)| {
                let (tx, rx) = mpsc::channel();
                entry.tx.send(op(tx)).ok().map(|_| rx)
            })
            .collect();
        for rx in waits {
            let _ = rx.recv();
        }
    }

    /// Runs one round of merges and retention now (the upkeep thread does it periodically).
    pub fn run_upkeep_once(&self) -> Result<()> {
        upkeep_round(&self.inner)
    }

    /// The newest `limit` lines ingest refused in `stream`, newest first, and how many the
    /// dead-letter store holds.
    pub async fn dead_letters(
        &self,
        stream: &str,
        limit: usize,
    ) -> Result<(Vec<DeadLetter>, usize)> {
        self.stream(stream)?;
        let this = self.clone();
        let stream = stream.to_string();
        tokio::task::spawn_blocking(move || this.inner.dead_letters.list(&stream, limit))
            .await
            .map_err(|_| Error::InvalidArgument("the indexer is shutting down".into()))?
            .map_err(Error::from)
    }

    /// Ingests a decoded body and waits until it is durable. The outcome lists the first 10
    /// refused lines; every refused line goes to the dead-letter store.
    pub async fn ingest(
        &self,
        stream: &str,
        body: Vec<u8>,
        delivery: bool,
    ) -> std::result::Result<IngestOutcome, IngestError> {
        self.ingest_reporting(stream, body, delivery, MAX_REPORTED_ERRORS, Push::default())
            .await
    }

    /// [`Indexer::ingest`] of a push batch (no delivery envelope): a batch made durable within
    /// the dedup window before is answered as then (`resent` set) and not written again.
    pub async fn ingest_push(
        &self,
        stream: &str,
        body: Vec<u8>,
        push: Push,
    ) -> std::result::Result<IngestOutcome, IngestError> {
        self.ingest_reporting(stream, body, false, MAX_REPORTED_ERRORS, push)
            .await
    }

    /// [`Indexer::ingest_push`] listing every refused line (for the ingest routes that answer
    /// per record, such as `_bulk`).
    pub async fn ingest_every_error(
        &self,
        stream: &str,
        body: Vec<u8>,
        push: Push,
    ) -> std::result::Result<IngestOutcome, IngestError> {
        self.ingest_reporting(stream, body, false, usize::MAX, push)
            .await
    }

    async fn ingest_reporting(
        &self,
        stream: &str,
        body: Vec<u8>,
        delivery: bool,
        max_errors: usize,
        push: Push,
    ) -> std::result::Result<IngestOutcome, IngestError> {
        if self.inner.stopping.load(Ordering::SeqCst) {
            return Err(IngestError::ShuttingDown);
        }
        if !self.has_stream(stream) && self.inner.settings.auto_create_streams {
            match self.ensure_stream(stream, &StreamConfig::default()).await {
                Ok(()) => {}
                Err(Error::UnknownStream(s) | Error::InvalidArgument(s)) => {
                    return Err(IngestError::UnknownStream(s))
                }
                Err(err) => return Err(IngestError::Storage(err.to_string())),
            }
        }
        let job = Arc::new((stream.to_string(), body, push));
        loop {
            let this = self.clone();
            let job = job.clone();
            let queued = tokio::task::spawn_blocking(move || {
                let (stream, body, push) = &*job;
                this.prepare_and_queue(stream, body, delivery, max_errors, push)
            })
            .await
            .map_err(|_| IngestError::ShuttingDown)??;
            match queued {
                // Another request writes the same batch: once it is settled, look again (it is
                // then known, or forgotten and this request writes it).
                Queued::Wait(mut done) => {
                    let _ = done.wait_for(|durable| *durable).await;
                }
                Queued::Reply(rx, outcome) => {
                    return match rx.await {
                        Ok(Ok(_lsn)) => Ok(outcome),
                        Ok(Err(message)) => Err(IngestError::Storage(message)),
                        Err(_) => Err(IngestError::ShuttingDown),
                    }
                }
            }
        }
    }

    fn prepare_and_queue(
        &self,
        stream_name: &str,
        body: &[u8],
        delivery: bool,
        max_errors: usize,
        push: &Push,
    ) -> std::result::Result<Queued, IngestError> {
        let entry = self
            .stream(stream_name)
            .map_err(|_| IngestError::UnknownStream(stream_name.chars().take(64).collect()))?;
        let stream = entry.stream.clone();
        if stream.storage_failing() {
            return Err(IngestError::Storage(
                "the hot index cannot be committed or sealed".into(),
            ));
        }
        let received_at = Timestamp::now().nanos();
        let mut lines = ndjson_lines(body);
        let envelope = if delivery {
            let (_, first) = lines
                .next()
                .ok_or_else(|| IngestError::BadEnvelope("empty delivery batch".into()))?;
            Some(
                serde_json::from_slice::<Envelope>(first)
                    .map_err(|e| IngestError::BadEnvelope(format!("delivery envelope: {e}")))?,
            )
        } else {
            None
        };
        let lines: Vec<(usize, &[u8])> = lines.collect();
        let max_records = self.inner.settings.max_records_per_batch;
        if lines.len() > max_records {
            return Err(IngestError::TooManyRecords(format!(
                "batch holds {} records, more than the limit of {max_records}",
                lines.len()
            )));
        }
        if let Some(env) = &envelope {
            env.validate(lines.len())
                .map_err(IngestError::BadEnvelope)?;
        }
        let mut claim = ResendClaim {
            inner: self.inner.clone(),
            stream: stream_name.to_string(),
            fingerprint: None,
            ids: Vec::new(),
        };
        let mut known = None;
        if let (Some(surface), false) = (push.surface, delivery) {
            let fp = dedup::fingerprint(surface, stream_name, body, push.origin, &push.ids);
            match lock(&self.inner.resent).begin(fp, received_at) {
                Lookup::Pending(done) => return Ok(Queued::Wait(done)),
                Lookup::Known(conflicts) => known = Some(conflicts),
                Lookup::New => claim.fingerprint = Some(fp),
            }
        }

        let mut outcome = IngestOutcome::default();
        let mut valid = Vec::with_capacity(lines.len());
        let max_line = self.inner.settings.max_line_bytes;
        // Collector batches are records already; everything else is mapped onto them.
        let map_options = (!delivery).then(|| self.inner.settings.map_options(stream_name));
        let mut refused = Vec::new();
        let mut marks = lock(&self.inner.marks);
        let keep = match &envelope {
            None => None,
            Some(env) => match marks.plan(&env.sources) {
                Plan::Gap { marks } => return Err(IngestError::Gap(marks)),
                Plan::Take {
                    keep,
                    advance,
                    dropped,
                } => {
                    outcome.deduplicated = dropped;
                    Some((keep, advance))
                }
            },
        };
        // Validation runs under the marks lock only for delivery batches, whose order per source
        // matters; it is cheap next to the fsync that follows.
        for (i, (line_no, line)) in lines.iter().enumerate() {
            if keep.as_ref().is_some_and(|(keep, _)| !keep[i]) {
                continue;
            }
            let prepared = if line.len() > max_line {
                Err(format!(
                    "record of {} bytes exceeds max_line_bytes ({max_line})",
                    line.len()
                ))
            } else {
                let record = match map_options {
                    Some(options) => normalise_line(stream.spec.kind, line, options),
                    None => Ok(std::borrow::Cow::Borrowed(*line)),
                };
                record.and_then(|record| {
                    let doc = stream.builder.prepare(&record, received_at)?;
                    Ok((record, doc))
                })
            };
            match prepared {
                Ok((record, doc)) => valid.push((i, record, doc)),
                Err(message) => {
                    outcome.rejected += 1;
                    if outcome.errors.len() < max_errors {
                        outcome.errors.push(LineError {
                            line: *line_no,
                            message: message.chars().take(MAX_ERROR_CHARS).collect(),
                        });
                    }
                    refused.push(DeadLetter::new(*line_no, message, line));
                }
            }
        }
        let conflicts: Vec<u32> = match &known {
            Some(conflicts) => conflicts.to_vec(),
            None if !push.ids.is_empty() => {
                let ids: Vec<(usize, String)> = {
                    let valid_lines: HashSet<usize> = valid.iter().map(|(i, _, _)| *i).collect();
                    push.ids
                        .iter()
                        .filter(|(line, _)| valid_lines.contains(line))
                        .cloned()
                        .collect()
                };
                let exists = id_lookup(&stream);
                let mut window = lock(&self.inner.resent);
                let conflicts = window.claim_ids(stream_name, &ids, exists, received_at);
                if let Some(fp) = claim.fingerprint {
                    window.set_conflicts(fp, &conflicts);
                }
                claim.ids = ids
                    .into_iter()
                    .filter(|(line, _)| !conflicts.contains(&(*line as u32)))
                    .map(|(_, id)| id)
                    .collect();
                conflicts
            }
            None => Vec::new(),
        };
        outcome.conflicts = conflicts.iter().map(|&c| c as usize).collect();
        let id_field = stream.schema.get_field(crate::schema::ID_FIELD).ok();
        let mut ids_by_line = push.ids.iter().peekable();
        let mut records = Vec::with_capacity(valid.len());
        let mut docs = Vec::with_capacity(valid.len());
        let mut record_ids = Vec::new();
        let mut bytes = 0u64;
        for (i, line, mut doc) in valid {
            if conflicts.contains(&(i as u32)) {
                continue;
            }
            while let Some((id_line, id)) = ids_by_line.peek() {
                if *id_line > i {
                    break;
                }
                if *id_line == i {
                    if let Some(field) = id_field {
                        doc.doc.add_text(field, id);
                    }
                    record_ids.push((records.len() as u32, id.clone()));
                }
                ids_by_line.next();
            }
            bytes += line.len() as u64;
            records.push(line.into_owned());
            docs.push(doc);
        }
        outcome.accepted = docs.len();
        if known.is_some() {
            // Sent before and durable since: answered again, written once.
            outcome.resent = true;
            self.inner
                .metrics
                .resent(stream_name, outcome.accepted as u64);
            let (reply, rx) = tokio::sync::oneshot::channel();
            let _ = reply.send(Ok(0));
            return Ok(Queued::Reply(rx, outcome));
        }
        let advance = keep.map(|(_, advance)| advance).unwrap_or_default();
        if outcome.rejected > 0 {
            self.inner
                .metrics
                .rejected(stream_name, outcome.rejected as u64);
        }
        if outcome.deduplicated > 0 {
            self.inner
                .metrics
                .deduplicated(stream_name, outcome.deduplicated as u64);
        }
        let (reply, rx) = tokio::sync::oneshot::channel();
        if docs.is_empty() && advance.is_empty() {
            drop(marks);
            self.dead_letter(stream_name, &refused);
            let _ = reply.send(Ok(0));
            return Ok(Queued::Reply(rx, outcome));
        }
        let batch = Batch {
            stream: stream_name.to_string(),
            received_at,
            marks: advance.clone(),
            records,
            fingerprint: claim.fingerprint,
            conflicts,
            ids: record_ids,
        };
        let request = WalRequest {
            stream,
            payload: batch.encode(),
            docs,
            advance: advance.clone(),
            records: outcome.accepted as u64,
            bytes,
            fingerprint: claim.fingerprint,
            claimed_ids: std::mem::take(&mut claim.ids),
            reply,
        };
        let wal_tx = lock(&self.inner.wal_tx);
        let Some(tx) = wal_tx.as_ref() else {
            return Err(IngestError::ShuttingDown);
        };
        // Queued while the marks are locked, so the WAL order of a source's batches is the
        // order in which their marks were reserved.
        tx.send(WalMsg::Append(request))
            .map_err(|_| IngestError::ShuttingDown)?;
        marks.reserve(&advance);
        // The WAL thread settles (or forgets) the fingerprint from here on.
        claim.fingerprint = None;
        drop((marks, wal_tx));
        self.dead_letter(stream_name, &refused);
        Ok(Queued::Reply(rx, outcome))
    }

    /// Keeps refused lines in the dead-letter store, counted; a store that cannot be written
    /// is logged with the count of the letters lost (the answer still names the first ones).
    fn dead_letter(&self, stream: &str, refused: &[DeadLetter]) {
        if refused.is_empty() {
            return;
        }
        self.inner
            .metrics
            .dead_lettered(stream, refused.len() as u64);
        if let Err(err) = self.inner.dead_letters.record(stream, refused) {
            tracing::error!(stream, lines = refused.len(), %err, "refused lines could not be dead-lettered");
        }
    }

    /// Stops accepting ingest, drains the WAL queue, commits every stream and stops the
    /// threads. What was acknowledged is durable before this returns.
    pub fn shutdown(&self) {
        if self.inner.stopping.swap(true, Ordering::SeqCst) {
            return;
        }
        lock(&self.inner.wal_tx).take();
        let threads: Vec<_> = lock(&self.inner.threads).drain(..).collect();
        let (wal, others): (Vec<_>, Vec<_>) = threads
            .into_iter()
            .partition(|t| t.thread().name() == Some("wal"));
        // The WAL thread ends once its queue is drained (its sender is gone); only then are
        // the indexing threads told to stop, so that they index everything it handed over.
        for t in wal {
            let _ = t.join();
        }
        lock(&self.inner.sealed_tx).take();
        for (_, entry) in stream_list(&self.inner) {
            let _ = entry.tx.send(IndexOp::Stop);
        }
        // The upkeep thread wakes when the indexing threads (holding its channel's senders)
        // are gone, sees `stopping` and ends.
        for t in others {
            let _ = t.join();
        }
    }
}

/// A push batch's hold on the resend window while it is prepared: dropped before the batch is
/// queued (refused, nothing to write, an error), it forgets the pending fingerprint and the
/// claimed ids, so that a resend is written rather than waiting for nothing.
struct ResendClaim {
    inner: Arc<Inner>,
    stream: String,
    fingerprint: Option<u128>,
    ids: Vec<String>,
}

impl Drop for ResendClaim {
    fn drop(&mut self) {
        if self.fingerprint.is_none() && self.ids.is_empty() {
            return;
        }
        let mut window = lock(&self.inner.resent);
        if let Some(fp) = self.fingerprint {
            window.forget(fp);
        }
        window.release_ids(&self.stream, &self.ids);
    }
}

/// Whether a document id is in a stream's index (committed hot index or a split).
fn id_lookup(stream: &Stream) -> impl Fn(&str) -> bool {
    let snapshot = stream.snapshot(None, None);
    let field = stream.schema.get_field(crate::schema::ID_FIELD).ok();
    move |id: &str| {
        let Some(field) = field else { return false };
        let term = tantivy::Term::from_field_text(field, id);
        snapshot
            .targets
            .iter()
            .any(|t| t.searcher.doc_freq(&term).is_ok_and(|n| n > 0))
    }
}

/// The resend window's span in nanoseconds.
fn window_nanos(settings: &IndexerSettings) -> i64 {
    i64::try_from(settings.batch_dedup_window.as_nanos()).unwrap_or(i64::MAX)
}

fn stream_dir(root: &Path, name: &str) -> PathBuf {
    root.join("streams").join(name)
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The streams as they are now, so that no lock is held while working on them.
fn stream_list(inner: &Inner) -> Vec<(String, Arc<StreamEntry>)> {
    read(&inner.streams)
        .iter()
        .map(|(name, entry)| (name.clone(), entry.clone()))
        .collect()
}

/// The streams to open: the built-in ones, those declared in the configuration, and those
/// created on first write earlier (a declaration in the configuration wins over the catalog).
fn stream_specs(settings: &IndexerSettings, catalog: &Catalog) -> Result<Vec<StreamSpec>> {
    let mut specs = vec![StreamSpec::logs(), StreamSpec::audit()];
    let builtin = |name: &str| trawl_config::BUILTIN_STREAMS.contains(&name);
    for (name, config) in &settings.declared_streams {
        if !builtin(name) {
            specs.push(StreamSpec::generic(name, config)?);
        }
    }
    for (name, config) in catalog.load()?.streams {
        if !builtin(&name) && !settings.declared_streams.contains_key(&name) {
            specs.push(StreamSpec::generic(&name, &config)?);
        }
    }
    Ok(specs)
}

/// A stream opened with its indexing thread running.
struct OpenedStream {
    entry: Arc<StreamEntry>,
    thread: JoinHandle<()>,
    /// Where the WAL replay must start for this stream.
    replay_from: u64,
}

/// Opens a stream's splits and hot index and starts its indexing thread.
fn open_stream(
    spec: StreamSpec,
    root: &Path,
    state: &MetastoreState,
    settings: &IndexerSettings,
    metrics: &Arc<Metrics>,
    on_sealed: OnSealed,
) -> Result<OpenedStream> {
    let name = spec.name.clone();
    let dir = stream_dir(root, &name);
    let handles = open_splits(&dir, state, &name)?;
    let (stream, index, payload) = Stream::open(spec, &dir, handles, &settings.writer)?;
    let stream = Arc::new(stream);
    if let Some(first) = payload.first_lsn {
        lock(&stream.unsealed).push_back(first);
    }
    let sealed = state.sealed_lsn.get(&name).copied().unwrap_or(0);
    let (tx, rx) = mpsc::sync_channel(INDEX_QUEUE_BATCHES);
    let thread_stream = stream.clone();
    let thread_settings = settings.stream_settings(&name);
    let thread_metrics = metrics.clone();
    let thread = std::thread::Builder::new()
        .name(format!("index-{name}"))
        .spawn(move || {
            run_indexing(
                thread_stream,
                index,
                thread_settings,
                rx,
                thread_metrics,
                on_sealed,
            )
        })?;
    metrics.set_splits(&name, stream.splits().len());
    let (tail, _) = tokio::sync::broadcast::channel(TAIL_QUEUE_BATCHES);
    Ok(OpenedStream {
        entry: Arc::new(StreamEntry { stream, tx, tail }),
        thread,
        replay_from: sealed.max(payload.lsn),
    })
}

/// Splits present on disk but missing from the metastore are those a crash caught between
/// sealing and recording: adopt them. Orphaned merge outputs duplicate recorded splits: delete.
fn adopt_orphans(root: &Path, specs: &[StreamSpec], state: &mut MetastoreState) -> Result<()> {
    for spec in specs {
        let dir = stream_dir(root, &spec.name).join("splits");
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let id = entry.file_name().to_string_lossy().into_owned();
            if state.splits.iter().any(|s| s.id == id) || state.retired.iter().any(|r| r.id == id) {
                continue;
            }
            match split::read_meta(&path) {
                Some(meta) if meta.merge_level == 0 => {
                    tracing::warn!(split = %id, "adopting a sealed split missing from the metastore");
                    state.splits.push(meta);
                }
                _ => {
                    tracing::warn!(split = %id, "deleting an unrecorded split");
                    let _ = fs::remove_dir_all(&path);
                }
            }
        }
    }
    Ok(())
}

fn open_splits(dir: &Path, state: &MetastoreState, stream: &str) -> Result<Vec<Arc<SplitHandle>>> {
    let mut handles = Vec::new();
    for meta in state.splits.iter().filter(|s| s.stream == stream) {
        let path = dir.join("splits").join(&meta.id);
        match SplitHandle::open(&path, meta.clone()) {
            Ok(handle) => handles.push(Arc::new(handle)),
            Err(err) => {
                tracing::error!(split = %meta.id, %err, "a recorded split cannot be opened");
                return Err(err);
            }
        }
    }
    Ok(handles)
}

fn on_sealed_callback(
    slot: Arc<Mutex<Option<std::sync::Weak<Inner>>>>,
    sealed_tx: Sender<()>,
) -> OnSealed {
    Arc::new(move |stream: &str, meta: &SplitMeta, lsn: u64| {
        let inner = lock(&slot)
            .as_ref()
            .and_then(|w| w.upgrade())
            .ok_or_else(|| Error::InvalidArgument("indexer is gone".into()))?;
        {
            let mut guard = lock(&inner.metastore);
            let (store, state) = &mut *guard;
            let mut next = state.clone();
            next.splits.push(meta.clone());
            next.sealed_lsn.insert(stream.to_string(), lsn);
            store.store(&next)?;
            *state = next;
        }
        let _ = sealed_tx.send(());
        Ok(())
    })
}

/// The WAL thread: appends queued batches, one fsync per group, then hands the documents to the
/// indexing threads in log order and acknowledges.
fn run_wal(inner: Arc<Inner>, mut wal: Wal, rx: Receiver<WalMsg>) {
    while let Ok(first) = rx.recv() {
        let mut group = Vec::new();
        let mut truncate = false;
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            match msg {
                WalMsg::Append(req) => group.push(req),
                WalMsg::Truncate => truncate = true,
            }
            if group.len() < GROUP_COMMIT_MAX {
                next = rx.try_recv().ok();
            }
        }
        if !group.is_empty() {
            write_group(&inner, &mut wal, group, &rx);
        }
        if truncate {
            if let Err(err) = truncate_wal(&inner, &mut wal) {
                tracing::error!(%err, "write-ahead log truncation failed");
            }
        }
    }
    let _ = wal.sync();
}

fn write_group(inner: &Inner, wal: &mut Wal, group: Vec<WalRequest>, rx: &Receiver<WalMsg>) {
    let start = wal.end();
    let payloads: Vec<&[u8]> = group.iter().map(|r| r.payload.as_slice()).collect();
    let result = wal.append(&payloads).and_then(|p| wal.sync().map(|_| p));
    match result {
        Ok(positions) => {
            inner.metrics.wal_fsyncs.inc();
            inner.metrics.wal_bytes.set(wal.disk_bytes() as i64);
            {
                let mut marks = lock(&inner.marks);
                let now = Timestamp::now().nanos();
                for req in &group {
                    marks.commit(&req.advance, now);
                }
            }
            {
                let mut resent = lock(&inner.resent);
                for fp in group.iter().filter_map(|req| req.fingerprint) {
                    resent.settle(fp);
                }
            }
            for (req, (lsn, end)) in group.into_iter().zip(positions) {
                inner
                    .metrics
                    .ingested(&req.stream.spec.name, req.records, req.bytes);
                // Handed to the indexing thread before the acknowledgement, so that a flush
                // requested after it covers these records.
                if !req.docs.is_empty() {
                    lock(&req.stream.unsealed).push_back(lsn);
                    let entry = read(&inner.streams).get(&req.stream.spec.name).cloned();
                    if let Some(entry) = entry {
                        if entry.tail.receiver_count() > 0 {
                            let docs = req.docs.iter().map(|p| p.doc.clone()).collect();
                            let _ = entry.tail.send(Arc::new(TailBatch { docs }));
                        }
                        let op = IndexOp::Add {
                            lsn,
                            lsn_end: end,
                            docs: req.docs,
                        };
                        if entry.tx.send(op).is_err() {
                            tracing::error!(stream = %req.stream.spec.name, "indexing thread is gone");
                        }
                    }
                }
                let _ = req.reply.send(Ok(lsn));
            }
        }
        Err(err) => {
            wal.rollback(start);
            let message = format!("write-ahead log write failed: {err}");
            tracing::error!(%err, "write-ahead log write failed, refusing the batches queued");
            // Everything queued behind the failed group reserved marks that chain on it: fail
            // it too, under the marks lock so that nothing new chains meanwhile.
            let mut marks = lock(&inner.marks);
            let mut failed = group;
            while let Ok(msg) = rx.try_recv() {
                if let WalMsg::Append(req) = msg {
                    failed.push(req);
                }
            }
            marks.abort_pending();
            drop(marks);
            {
                let mut resent = lock(&inner.resent);
                for req in &failed {
                    if let Some(fp) = req.fingerprint {
                        resent.forget(fp);
                    }
                    resent.release_ids(&req.stream.spec.name, &req.claimed_ids);
                }
            }
            for req in failed {
                let _ = req.reply.send(Err(message.clone()));
            }
        }
    }
}

/// Snapshots the marks into the metastore, then deletes WAL segments no stream needs.
fn truncate_wal(inner: &Inner, wal: &mut Wal) -> Result<()> {
    let needed = stream_list(inner)
        .iter()
        .filter_map(|(_, e)| lock(&e.stream.unsealed).front().copied())
        .min()
        .unwrap_or(wal.end());
    // Before the entries that carried them may go: the window of resent batches.
    lock(&inner.resent).save()?;
    {
        let marks = lock(&inner.marks);
        let mut guard = lock(&inner.metastore);
        let (store, state) = &mut *guard;
        let mut next = state.clone();
        next.marks = marks.durable.iter().map(|(k, v)| (k.clone(), *v)).collect();
        next.marks_lsn = wal.end();
        store.store(&next)?;
        *state = next;
    }
    let freed = wal.truncate_before(needed)?;
    inner.metrics.wal_bytes.set(wal.disk_bytes() as i64);
    if freed > 0 {
        tracing::debug!(freed, "write-ahead log truncated");
    }
    Ok(())
}

/// The upkeep thread: after each seal, truncates the WAL; periodically merges and applies
/// retention.
fn run_upkeep(inner: std::sync::Weak<Inner>, sealed: Receiver<()>) {
    let interval = match inner.upgrade() {
        Some(i) => i.settings.janitor_interval,
        None => return,
    };
    let mut next_round = std::time::Instant::now() + interval;
    loop {
        let wait = next_round.saturating_duration_since(std::time::Instant::now());
        let got = sealed.recv_timeout(wait);
        let Some(inner) = inner.upgrade() else { return };
        if inner.stopping.load(Ordering::SeqCst) {
            return;
        }
        match got {
            Ok(()) => {
                if let Some(tx) = lock(&inner.wal_tx).as_ref() {
                    let _ = tx.send(WalMsg::Truncate);
                }
                continue;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => std::thread::sleep(wait),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        if std::time::Instant::now() >= next_round {
            if let Err(err) = upkeep_round(&inner) {
                tracing::error!(%err, "split upkeep failed");
            }
            next_round = std::time::Instant::now() + interval;
        }
    }
}

fn upkeep_round(inner: &Inner) -> Result<()> {
    sweep_retired(inner)?;
    let now = Timestamp::now().nanos();
    for (name, entry) in stream_list(inner) {
        apply_retention(inner, &name, &entry.stream, now)?;
        merge_stream(inner, &name, &entry.stream)?;
        inner.metrics.set_splits(&name, entry.stream.splits().len());
    }
    let ttl = inner.settings.source_mark_ttl.as_nanos() as i64;
    let dropped = lock(&inner.marks).gc(now.saturating_sub(ttl));
    if dropped > 0 {
        tracing::info!(dropped, "forgot the marks of long-idle sources");
    }
    Ok(())
}

/// Removes splits from the metastore and records them as retired, with the splits that replace
/// them, in one durable write; then from the searchable set. `crash_point` names the moment in
/// between for fault tests.
fn drop_splits(
    inner: &Inner,
    stream: &Stream,
    ids: &[String],
    add: Vec<Arc<SplitHandle>>,
    crash_point: &str,
) -> Result<()> {
    // Known as pinned before they are recorded as retired, so that no sweep removes the files
    // of a split that is still searchable or held by a search.
    let held: Vec<Arc<SplitHandle>> = stream
        .splits()
        .into_iter()
        .filter(|s| ids.contains(&s.meta.id))
        .collect();
    inner.pins.add(&held);
    drop(held);
    {
        let mut guard = lock(&inner.metastore);
        let (store, state) = &mut *guard;
        let mut next = state.clone();
        next.splits.retain(|s| !ids.contains(&s.id));
        next.splits.extend(add.iter().map(|h| h.meta.clone()));
        next.retired.extend(ids.iter().map(|id| RetiredSplit {
            stream: stream.spec.name.clone(),
            id: id.clone(),
        }));
        store.store(&next)?;
        *state = next;
    }
    inner.settings.crash_point(crash_point);
    stream.replace_splits(ids, add);
    // Those no search holds are gone now; the others go when their last search ends, and their
    // record is cleared at a later sweep.
    if let Err(err) = sweep_retired(inner) {
        tracing::warn!(stream = %stream.spec.name, %err, "could not clear the record of retired splits");
    }
    Ok(())
}

/// Removes the files of retired splits that nothing pins any more, then clears their record.
fn sweep_retired(inner: &Inner) -> Result<()> {
    let retired = lock(&inner.metastore).1.retired.clone();
    if retired.is_empty() {
        return Ok(());
    }
    let gone = retire::remove_unpinned(&inner.root, &retired, |id| inner.pins.pinned(id));
    if gone.is_empty() {
        return Ok(());
    }
    let mut guard = lock(&inner.metastore);
    let (store, state) = &mut *guard;
    let mut next = state.clone();
    if retire::forget(&mut next, &gone) {
        store.store(&next)?;
        *state = next;
    }
    Ok(())
}

fn apply_retention(inner: &Inner, name: &str, stream: &Stream, now: i64) -> Result<()> {
    let settings = inner.settings.stream_settings(name);
    let mut splits = stream.splits();
    let mut doomed: Vec<String> = Vec::new();
    if let Some(age) = settings.retention_max_age {
        let cutoff = now.saturating_sub(age.as_nanos() as i64);
        doomed.extend(
            splits
                .iter()
                .filter(|s| s.meta.max_timestamp < cutoff)
                .map(|s| s.meta.id.clone()),
        );
    }
    if let Some(max_bytes) = settings.retention_max_bytes {
        splits.retain(|s| !doomed.contains(&s.meta.id));
        splits.sort_by_key(|s| s.meta.max_timestamp);
        let mut total: u64 = splits.iter().map(|s| s.meta.bytes).sum();
        for s in &splits {
            if total <= max_bytes {
                break;
            }
            total -= s.meta.bytes;
            doomed.push(s.meta.id.clone());
        }
    }
    if doomed.is_empty() {
        return Ok(());
    }
    drop_splits(
        inner,
        stream,
        &doomed,
        Vec::new(),
        CRASH_AFTER_RETENTION_PUBLISH,
    )?;
    inner
        .metrics
        .splits_deleted_by_retention
        .get_or_create(&crate::metrics::StreamLabel {
            stream: name.to_string(),
        })
        .inc_by(doomed.len() as u64);
    tracing::info!(
        stream = name,
        splits = doomed.len(),
        "retention deleted splits"
    );
    Ok(())
}

/// Merges small splits of one time bucket into one, when a bucket holds enough of them.
fn merge_stream(inner: &Inner, name: &str, stream: &Stream) -> Result<()> {
    let s = &inner.settings;
    let bucket_nanos = s.merge_bucket.as_nanos().max(1) as i64;
    // Splits merge within a time bucket, and only with splits of the same index settings
    // (tantivy merges those only): a change of doc-store settings starts new groups.
    let mut buckets: BTreeMap<(i64, String), Vec<Arc<SplitHandle>>> = BTreeMap::new();
    for split in stream.splits() {
        if split.meta.docs < s.merge_max_docs {
            let settings = serde_json::to_string(split.index.settings()).unwrap_or_default();
            buckets
                .entry((split.meta.min_timestamp.div_euclid(bucket_nanos), settings))
                .or_default()
                .push(split);
        }
    }
    for (_, mut group) in buckets {
        if group.len() < s.merge_min_splits {
            continue;
        }
        group.sort_by_key(|h| h.meta.docs);
        let mut total = 0u64;
        group.retain(|h| {
            total += h.meta.docs;
            total <= s.merge_max_docs
        });
        if group.len() < 2 {
            continue;
        }
        merge_group(inner, name, stream, &group)?;
    }
    Ok(())
}

fn merge_group(
    inner: &Inner,
    name: &str,
    stream: &Stream,
    group: &[Arc<SplitHandle>],
) -> Result<()> {
    let id = ulid::Ulid::new().to_string().to_lowercase();
    let dir = stream.splits_dir().join(&id);
    fs::create_dir_all(&dir)?;
    let indexes: Vec<tantivy::Index> = group.iter().map(|h| h.index.clone()).collect();
    let directory = tantivy::directory::MmapDirectory::open(&dir)
        .map_err(|e| Error::InvalidArgument(format!("cannot open merge output: {e}")))?;
    let merged = match tantivy::indexer::merge_indices(&indexes, directory) {
        Ok(index) => index,
        Err(err) => {
            let _ = fs::remove_dir_all(&dir);
            return Err(err.into());
        }
    };
    let reader = merged.reader()?;
    let (min_ts, max_ts) = split::time_range(&reader).unwrap_or((0, 0));
    let meta = SplitMeta {
        version: SPLIT_FORMAT_VERSION,
        id: id.clone(),
        stream: name.to_string(),
        min_timestamp: min_ts,
        max_timestamp: max_ts,
        docs: reader.searcher().num_docs(),
        bytes: split::dir_bytes(&dir),
        created_at: Timestamp::now().nanos(),
        merge_level: group.iter().map(|h| h.meta.merge_level).max().unwrap_or(0) + 1,
    };
    split::write_meta(&dir, &meta)?;
    crate::wal::sync_dir(&stream.splits_dir())?;
    let handle = Arc::new(SplitHandle::open(&dir, meta)?);
    let old: Vec<String> = group.iter().map(|h| h.meta.id.clone()).collect();
    drop_splits(inner, stream, &old, vec![handle], CRASH_AFTER_MERGE_PUBLISH)?;
    inner
        .metrics
        .merges
        .get_or_create(&crate::metrics::StreamLabel {
            stream: name.to_string(),
        })
        .inc();
    tracing::info!(stream = name, split = %id, inputs = old.len(), "merged splits");
    Ok(())
}
