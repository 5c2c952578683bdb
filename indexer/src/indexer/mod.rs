//! The indexer: open and recover, ingest (validate, dedup by source marks, WAL, acknowledge),
//! and the background upkeep of splits (merges, retention, WAL truncation).
//!
//! ```text
//! mod.rs        the facade (`Indexer`), its shared state (`Inner`) and the answers of ingest
//! open.rs       open and recovery: streams, orphaned splits, WAL replay; streams created on
//!               first write
//! ingest.rs     ingest: validate, drop what the marks say is there, claim the resend window,
//!               queue for the WAL writer
//! wal_writer.rs the WAL thread: group commit, hand-off to the indexing threads, truncation
//! upkeep.rs     the upkeep thread: merges, retention, retired splits
//! local_copies.rs  dropping local copies of published splits past `local_splits_max_bytes`
//! ```

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
use crate::compat::shapes::{normalise_line, Normalised};
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

mod ingest;
mod local_copies;
mod open;
mod purge;
mod upkeep;
mod wal_writer;

use ingest::WalRequest;
pub use purge::Purged;
use upkeep::upkeep_round;
use wal_writer::{WalMsg, WalReply};

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
    /// The shared metastore could not be asked who owns a source: retry later.
    Metastore(String),
    /// The indexer is shutting down.
    ShuttingDown,
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
    /// Source ownership in a shared metastore (`postgres://`); unset on one machine.
    ownership: std::sync::OnceLock<Arc<crate::ownership::Ownership>>,
    /// With a shared tier: the splits of each stream published there (the publisher says),
    /// with the transaction each was published in when known.
    published: Mutex<HashMap<String, HashMap<String, Option<trawl_storage::seen::Committed>>>>,
    /// Held while the splits of a stream are replaced (merges, retention, purges), so that two
    /// replacements never work on the same splits.
    replacing: Mutex<()>,
    /// With a shared tier, merges are the cluster's merger's (see [`crate::cluster_merge`]):
    /// the upkeep thread merges nothing itself.
    cluster_merges: AtomicBool,
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
    /// Leaves merges to the cluster's merger (see [`crate::cluster_merge`]): from now on the
    /// upkeep thread merges none of this indexer's splits.
    pub fn set_cluster_merges(&self) {
        self.inner.cluster_merges.store(true, Ordering::SeqCst);
    }

    /// Makes delivery batches claim their sources in the shared metastore (see
    /// [`crate::ownership`]). Set once, before ingest starts; a second call changes nothing.
    pub fn set_ownership(&self, ownership: Arc<crate::ownership::Ownership>) {
        let _ = self.inner.ownership.set(ownership);
    }

    /// The source ownership of a shared metastore, if set.
    pub fn ownership(&self) -> Option<&Arc<crate::ownership::Ownership>> {
        self.inner.ownership.get()
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
        let mut snapshot = self.stream(stream)?.stream.snapshot(start, end);
        if let Some(published) = lock(&self.inner.published).get(stream) {
            for target in &mut snapshot.targets {
                if target.kind == trawl_index::TargetKind::Split {
                    target.published = published.get(&target.id).copied().flatten();
                }
            }
        }
        Ok(snapshot)
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

    /// Every stream's sealed splits as they are now, held open (their files stay while the
    /// handles live), with the names of its default fields, in stream name order.
    pub fn local_splits(&self) -> Vec<(String, Vec<String>, Vec<Arc<SplitHandle>>)> {
        stream_list(&self.inner)
            .into_iter()
            .map(|(name, entry)| {
                let fields = entry.stream.default_field_names();
                (name, fields, entry.stream.splits())
            })
            .collect()
    }

    /// The indexer's directory (`<data_dir>/indexer`).
    pub fn root(&self) -> &Path {
        &self.inner.root
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
