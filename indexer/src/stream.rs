//! One stream's storage: the hot index that takes new documents and commits every interval, the
//! thread that feeds it, and the sealed splits it turns into.
//!
//! Storage failures (the disk full) never end the indexing thread. A failed commit is redone on
//! a fresh writer from the documents kept since the last good commit, and a failed seal puts the
//! hot index back as it was; both are retried with backoff, and while either fails the stream
//! says so ([`Stream::storage_failing`]) so that ingest refuses new batches with 507.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tantivy::schema::{Field, Schema};
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term};
use trawl_model::Timestamp;

use crate::doc::{DocBuilder, Prepared, StreamSpec};
use crate::metrics::Metrics;
use crate::settings::{FaultPoint, WriterTuning, MIN_THREAD_MEMORY_BYTES};
use crate::split::{self, SplitHandle, SplitMeta, SPLIT_FORMAT_VERSION};
use crate::wal::sync_dir;
use crate::Result;
use crate::{SearchTarget, StreamSnapshot, TargetKind};

/// What the hot index's commit payload records.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CommitPayload {
    /// Every WAL entry of the stream before this position is in the hot index or a split.
    pub lsn: u64,
    /// The position of the first WAL entry in the hot index, if it holds any.
    pub first_lsn: Option<u64>,
    /// The source marks of the delivery batches the hot index holds (see [`SplitMeta::marks`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub marks: BTreeMap<String, u64>,
}

/// Work for a stream's indexing thread.
pub enum IndexOp {
    /// Documents of the WAL entry ending at `lsn_end`, and the source marks its batch advances.
    Add {
        lsn: u64,
        lsn_end: u64,
        docs: Vec<Prepared>,
        marks: Vec<(String, u64)>,
    },
    /// Commit now and answer once searchable.
    Flush(std::sync::mpsc::Sender<()>),
    /// Seal the hot index into a split now (tests and shutdown of an idle index).
    Seal(std::sync::mpsc::Sender<()>),
    /// Delete the documents of these sources from the hot index and commit; answers how many
    /// were deleted and the WAL position the hot index has taken (every deleted document came
    /// from an entry before it), or why the commit failed.
    Purge {
        sources: Vec<String>,
        done: std::sync::mpsc::Sender<std::result::Result<(u64, u64), String>>,
    },
    /// Commit and end the thread.
    Stop,
}

/// Settings of a stream's indexing.
#[derive(Debug, Clone)]
pub struct StreamSettings {
    pub commit_interval: Duration,
    pub split_max_docs: u64,
    pub split_max_age: Duration,
    pub writer_memory_bytes: usize,
    /// Writer threads and the doc-store format of new indexes.
    pub writer: WriterTuning,
    pub dedup_window: usize,
    /// Whether splits carry source marks ([`crate::IndexerSettings::split_marks`]).
    pub split_marks: bool,
    pub retention_max_age: Option<Duration>,
    pub retention_max_bytes: Option<u64>,
    /// Consulted before every hot-index commit and split seal (fault tests).
    pub fault: FaultPoint,
}

/// The hot index: the searcher side, shared with searches.
struct Hot {
    id: String,
    reader: IndexReader,
}

/// A stream's shared state.
pub struct Stream {
    pub spec: StreamSpec,
    pub schema: Schema,
    pub builder: DocBuilder,
    default_fields: Vec<Field>,
    dir: PathBuf,
    splits: RwLock<Vec<Arc<SplitHandle>>>,
    hot: RwLock<Hot>,
    /// Positions of the WAL entries handed to this stream and not yet sealed into a split,
    /// ascending; the front is what the WAL must keep. (After a restart, the front may stand for
    /// everything the hot index held since its first entry.)
    pub unsealed: Mutex<VecDeque<u64>>,
    /// How far the hot index's last commit covers the WAL.
    pub committed_lsn: Mutex<u64>,
    /// Set while the hot index cannot be committed or sealed (the disk full).
    storage_failing: AtomicBool,
}

impl Stream {
    /// Opens a stream's directory, its splits known to the metastore and its hot index (creating
    /// one if there is none). Returns the stream and the hot index's last commit payload.
    pub fn open(
        spec: StreamSpec,
        dir: &Path,
        splits: Vec<Arc<SplitHandle>>,
        writer: &WriterTuning,
    ) -> Result<(Stream, Index, CommitPayload)> {
        let schema = spec.schema();
        let builder = DocBuilder::new(&spec, &schema)?;
        let default_fields = spec
            .default_fields
            .iter()
            .filter_map(|name| schema.get_field(name).ok())
            .collect();
        fs::create_dir_all(dir.join("hot"))?;
        fs::create_dir_all(dir.join("splits"))?;
        let (hot_id, index) = open_or_create_hot(&dir.join("hot"), &schema, writer)?;
        let mut payload = committed_payload(&index)?;
        // A split sealed from a hot index keeps that index's last commit payload: every WAL
        // entry before its `lsn` is in it or in an older split. This covers a crash between
        // moving a hot index into the splits and recording it in the metastore (the split is
        // adopted at the next start, and the metastore's `sealed_lsn` is older): the WAL is not
        // replayed into the new hot index a second time.
        for split in &splits {
            if let Ok(sealed) = committed_payload(&split.index) {
                payload.lsn = payload.lsn.max(sealed.lsn);
            }
        }
        let reader = hot_reader(&index)?;
        let stream = Stream {
            spec,
            schema,
            builder,
            default_fields,
            dir: dir.to_path_buf(),
            splits: RwLock::new(splits),
            hot: RwLock::new(Hot { id: hot_id, reader }),
            unsealed: Mutex::new(VecDeque::new()),
            committed_lsn: Mutex::new(payload.lsn),
            storage_failing: AtomicBool::new(false),
        };
        Ok((stream, index, payload))
    }

    /// The targets a search over `[start, end)` must visit, pinned.
    pub fn snapshot(&self, start: Option<Timestamp>, end: Option<Timestamp>) -> StreamSnapshot {
        // Both locks are taken together so that a split being sealed is seen either as the hot
        // index or as the split, never both and never neither.
        let hot = read(&self.hot);
        let splits = read(&self.splits);
        let mut targets = Vec::with_capacity(splits.len() + 1);
        for split in splits.iter() {
            let target = SearchTarget::new(
                TargetKind::Split,
                split.meta.id.clone(),
                split.reader.searcher(),
                Some(Timestamp(split.meta.min_timestamp)),
                Some(Timestamp(split.meta.max_timestamp)),
                Some(split.clone() as Arc<dyn std::any::Any + Send + Sync>),
            )
            .with_dir(split.dir.clone())
            .with_parents(&split.meta.parents);
            if target.overlaps(start, end) {
                targets.push(target);
            }
        }
        let hot_searcher = hot.reader.searcher();
        if hot_searcher.num_docs() > 0 {
            targets.push(
                SearchTarget::new(
                    TargetKind::Hot,
                    hot.id.clone(),
                    hot_searcher,
                    None,
                    None,
                    None,
                )
                .with_dir(self.dir.join("hot").join(&hot.id)),
            );
        }
        StreamSnapshot {
            stream: self.spec.name.clone(),
            schema: self.schema.clone(),
            default_fields: self.default_fields.clone(),
            tokenizers: tantivy::tokenizer::TokenizerManager::default(),
            targets,
        }
    }

    /// The names of the fields a query term without a field name searches.
    pub fn default_field_names(&self) -> Vec<String> {
        self.default_fields
            .iter()
            .map(|f| self.schema.get_field_name(*f).to_string())
            .collect()
    }

    /// The sealed splits.
    pub fn splits(&self) -> Vec<Arc<SplitHandle>> {
        read(&self.splits).clone()
    }

    /// Documents and bytes of the hot index.
    pub fn hot_stats(&self) -> (u64, u64, Option<(i64, i64)>) {
        let hot = read(&self.hot);
        let docs = hot.reader.searcher().num_docs();
        let bytes = split::dir_bytes(&self.dir.join("hot").join(&hot.id));
        (docs, bytes, split::time_range(&hot.reader))
    }

    /// Replaces `old` splits by `new` ones in the searchable set, atomically.
    pub fn replace_splits(&self, old: &[String], new: Vec<Arc<SplitHandle>>) {
        let mut splits = write(&self.splits);
        splits.retain(|s| {
            let gone = old.contains(&s.meta.id);
            if gone {
                s.mark_deleted();
            }
            !gone
        });
        splits.extend(new);
    }

    pub fn splits_dir(&self) -> PathBuf {
        self.dir.join("splits")
    }

    /// Whether the last commit or seal of the hot index failed and is waiting for a retry:
    /// ingest refuses new batches meanwhile (507), so that what queues in memory stays bounded.
    pub fn storage_failing(&self) -> bool {
        self.storage_failing.load(Ordering::SeqCst)
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn hot_reader(index: &Index) -> Result<IndexReader> {
    Ok(index
        .reader_builder()
        .reload_policy(ReloadPolicy::Manual)
        .try_into()?)
}

/// Opens the hot index in `hot_dir` (there is at most one), or creates one.
fn open_or_create_hot(
    hot_dir: &Path,
    schema: &Schema,
    writer: &WriterTuning,
) -> Result<(String, Index)> {
    let mut existing: Vec<PathBuf> = fs::read_dir(hot_dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    existing.sort();
    while let Some(path) = existing.pop() {
        match Index::open_in_dir(&path) {
            // Written with another schema (the stream's fields changed, or a new version added
            // a hidden field): what it holds is in the WAL since the last seal, and is replayed
            // into a new hot index with the stream's schema.
            Ok(index) if index.schema() != *schema => {
                tracing::warn!(
                    dir = %path.display(),
                    "the hot index has another schema than its stream: rebuilt from the write-ahead log"
                );
                let _ = fs::remove_dir_all(&path);
            }
            Ok(index) => {
                let id = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                // Older leftovers cannot hold anything the WAL does not: a hot index is only
                // replaced after it was sealed.
                for stale in existing {
                    let _ = fs::remove_dir_all(stale);
                }
                return Ok((id, index));
            }
            Err(err) => {
                tracing::warn!(dir = %path.display(), %err, "discarding unreadable hot index");
                let _ = fs::remove_dir_all(&path);
            }
        }
    }
    create_hot(hot_dir, schema, writer)
}

fn create_hot(hot_dir: &Path, schema: &Schema, writer: &WriterTuning) -> Result<(String, Index)> {
    let id = ulid::Ulid::new().to_string().to_lowercase();
    let path = hot_dir.join(&id);
    fs::create_dir_all(&path)?;
    let index = Index::builder()
        .schema(schema.clone())
        .settings(writer.index_settings())
        .create_in_dir(&path)?;
    sync_dir(hot_dir)?;
    Ok((id, index))
}

/// A writer on `index` with the tuning's threads, as many as `memory_bytes` allows.
fn open_writer(
    index: &Index,
    tuning: &WriterTuning,
    memory_bytes: usize,
) -> tantivy::Result<IndexWriter> {
    let threads = tuning
        .threads
        .min(memory_bytes / MIN_THREAD_MEMORY_BYTES)
        .max(1);
    index.writer_with_num_threads(threads, memory_bytes)
}

/// Called by the indexing thread when it sealed a split, to record it in the metastore. Returns
/// only once the metastore is durable.
pub type OnSealed = Arc<dyn Fn(&str, &SplitMeta, u64) -> Result<()> + Send + Sync>;

/// First delay before a failed commit or seal is retried.
const RETRY_BASE: Duration = Duration::from_millis(100);
/// Longest delay between two retries: a disk that has room again is used within this long.
const RETRY_CAP: Duration = Duration::from_secs(2);

/// The delay before retry number `failures` (1 for the first): `RETRY_BASE * 2^(failures-1)`,
/// at most [`RETRY_CAP`].
fn retry_delay(failures: u32) -> Duration {
    let exp = failures.saturating_sub(1).min(16);
    RETRY_BASE.saturating_mul(1 << exp).min(RETRY_CAP)
}

/// The indexing thread of a stream: adds documents, commits every interval, seals by size or
/// age, and retries what failed. Runs until every sender of `ops` is gone or `Stop`.
pub fn run_indexing(
    stream: Arc<Stream>,
    index: Index,
    settings: StreamSettings,
    ops: Receiver<IndexOp>,
    metrics: Arc<Metrics>,
    on_sealed: OnSealed,
) {
    let mut state = match HotWriter::new(&stream, index, &settings) {
        Ok(state) => state,
        Err(err) => {
            tracing::error!(stream = %stream.spec.name, %err, "cannot open the hot index writer");
            return;
        }
    };
    let mut dedup = DedupWindow::new(settings.dedup_window);
    let ctx = Ctx {
        stream: &stream,
        settings: &settings,
        metrics: &metrics,
        on_sealed: &on_sealed,
    };
    loop {
        let op = match ops.recv_timeout(state.next_attempt_in(&settings)) {
            Ok(op) => Some(op),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        match op {
            Some(IndexOp::Add {
                lsn,
                lsn_end,
                docs,
                marks,
            }) => {
                if settings.split_marks {
                    state.note_marks(&marks);
                }
                if let Err(err) = state.add(&stream, lsn, lsn_end, docs, &mut dedup, &metrics) {
                    tracing::error!(stream = %stream.spec.name, %err, "indexing failed, the writer is redone at the next commit");
                }
            }
            Some(IndexOp::Flush(done)) => {
                state.attempt(&ctx, false);
                let _ = done.send(());
            }
            Some(IndexOp::Seal(done)) => {
                state.attempt(&ctx, true);
                let _ = done.send(());
            }
            Some(IndexOp::Purge { sources, done }) => {
                let result = state.purge(&ctx, &sources).map_err(|err| err.to_string());
                match result {
                    // The ids of what went may come again (the source claimed back): they
                    // must not be taken for copies of what is no longer there.
                    Ok((removed, _)) if removed > 0 => dedup.clear(),
                    Ok(_) => {}
                    Err(_) => state.attempt(&ctx, false),
                }
                let _ = done.send(result);
            }
            Some(IndexOp::Stop) => break,
            None => {}
        }
        if state.next_attempt_in(&settings).is_zero() {
            let due = state.docs >= settings.split_max_docs
                || (state.docs > 0 && state.created.elapsed() >= settings.split_max_age);
            state.attempt(&ctx, due);
        }
    }
    if let Err(err) = state.commit(&stream, &metrics, &settings.fault) {
        tracing::error!(stream = %stream.spec.name, %err, "final commit failed; the WAL replays it at the next start");
    }
}

/// What a commit or seal attempt needs besides the writer.
struct Ctx<'a> {
    stream: &'a Stream,
    settings: &'a StreamSettings,
    metrics: &'a Metrics,
    on_sealed: &'a OnSealed,
}

/// A document added since the last commit, kept to redo the commit if it fails.
struct Kept {
    id: Option<String>,
    doc: TantivyDocument,
}

/// The writing side of the hot index, owned by the indexing thread.
struct HotWriter {
    /// The hot index being written (to reopen a writer on it).
    index: Index,
    /// `None` after a failure took it; reopened by [`HotWriter::recover`].
    writer: Option<IndexWriter>,
    writer_memory_bytes: usize,
    tuning: WriterTuning,
    id_field: Field,
    docs: u64,
    dirty: bool,
    lsn: u64,
    /// Source marks of what the hot index holds, committed with it and given to its split.
    marks: BTreeMap<String, u64>,
    /// The documents added since the last good commit, in order. A commit that fails (a full
    /// disk kills tantivy's indexing workers and loses what they held) is redone from these on
    /// a fresh writer, so that what the WAL acknowledged reaches the index without a restart.
    /// Bounded: commits happen every interval, and ingest stops while they fail.
    uncommitted: Vec<Kept>,
    /// The writer lost documents or is gone: roll back and re-add `uncommitted` first.
    broken: bool,
    /// A commit attempt that failed: `(payload lsn, documents it covered)`. If its payload is
    /// found on disk after all, those documents are committed and must not be added again.
    failed_commit: Option<(u64, usize)>,
    /// Consecutive failed attempts, and when to retry.
    failures: u32,
    retry_at: Option<Instant>,
    created: Instant,
    last_commit: Instant,
}

impl HotWriter {
    fn new(stream: &Stream, index: Index, settings: &StreamSettings) -> Result<HotWriter> {
        let writer = open_writer(&index, &settings.writer, settings.writer_memory_bytes)?;
        let docs = index.reader()?.searcher().num_docs();
        let marks = committed_payload(&index)?.marks;
        Ok(HotWriter {
            index,
            id_field: stream.schema.get_field(crate::schema::ID_FIELD)?,
            writer: Some(writer),
            writer_memory_bytes: settings.writer_memory_bytes,
            tuning: settings.writer,
            docs,
            dirty: false,
            lsn: *lock(&stream.committed_lsn),
            marks,
            uncommitted: Vec::new(),
            broken: false,
            failed_commit: None,
            failures: 0,
            retry_at: None,
            created: Instant::now(),
            last_commit: Instant::now(),
        })
    }

    /// Records the marks of a batch added to the hot index.
    fn note_marks(&mut self, marks: &[(String, u64)]) {
        split::merge_marks(&mut self.marks, marks.iter().map(|(s, e)| (s, e)));
    }

    /// Deletes the documents of `sources` (by the hidden source field), those committed and
    /// those waiting for the next commit, forgets their marks, and commits. Returns how many
    /// documents went and the WAL position the hot index has taken.
    fn purge(&mut self, ctx: &Ctx<'_>, sources: &[String]) -> Result<(u64, u64)> {
        use tantivy::schema::Value;
        let stream = ctx.stream;
        let field = stream.schema.get_field(crate::schema::SOURCE_FIELD)?;
        if self.broken {
            // Deletes go to a writer that holds everything since the last commit.
            self.recover(stream)?;
        }
        let committed = read(&stream.hot).reader.searcher().num_docs();
        let of_source = |doc: &TantivyDocument| {
            doc.get_first(field)
                .and_then(|v| v.as_str())
                .is_some_and(|s| sources.iter().any(|p| p == s))
        };
        let before = committed + self.uncommitted.len() as u64;
        let waiting = self
            .uncommitted
            .iter()
            .filter(|k| of_source(&k.doc))
            .count();
        if waiting > 0 {
            // Taken out of the writer too: roll back to the last commit, add the others again.
            self.uncommitted.retain(|k| !of_source(&k.doc));
            self.broken = true;
            self.recover(stream)?;
        }
        let writer = self.writer.as_mut().ok_or_else(gone)?;
        for source in sources {
            writer.delete_term(tantivy::Term::from_field_text(field, source));
            self.marks.remove(source);
        }
        self.dirty = true;
        self.commit(stream, ctx.metrics, &ctx.settings.fault)?;
        let after = read(&stream.hot).reader.searcher().num_docs();
        Ok((before.saturating_sub(after), self.lsn))
    }

    /// How long until the next commit (or retry) is due.
    fn next_attempt_in(&self, settings: &StreamSettings) -> Duration {
        match self.retry_at {
            Some(at) => at.saturating_duration_since(Instant::now()),
            None => settings
                .commit_interval
                .saturating_sub(self.last_commit.elapsed()),
        }
    }

    fn add(
        &mut self,
        stream: &Stream,
        lsn: u64,
        lsn_end: u64,
        docs: Vec<Prepared>,
        dedup: &mut DedupWindow,
        metrics: &Metrics,
    ) -> Result<()> {
        let from = self.uncommitted.len();
        let (docs, sealed) = crate::audit_dedup::drop_sealed(stream, self.id_field, docs);
        if sealed > 0 {
            metrics.deduplicated(&stream.spec.name, sealed as u64);
        }
        for prepared in docs {
            if let Some(id) = &prepared.id {
                if !dedup.insert(id) {
                    metrics.deduplicated(&stream.spec.name, 1);
                    continue;
                }
            }
            self.uncommitted.push(Kept {
                id: prepared.id,
                doc: prepared.doc,
            });
        }
        // Kept before they are indexed: whatever happens to the writer, they are not lost.
        self.docs += (self.uncommitted.len() - from) as u64;
        self.dirty = true;
        self.lsn = lsn_end;
        let _ = lsn;
        if self.broken {
            return Ok(());
        }
        let id_field = self.id_field;
        let result = match self.writer.as_mut() {
            Some(writer) => feed(writer, id_field, &self.uncommitted[from..]),
            None => Err(gone()),
        };
        if result.is_err() {
            self.broken = true;
        }
        result
    }

    /// Rolls the writer back to the last commit (or opens a new one) and adds again what was
    /// added since.
    fn recover(&mut self, stream: &Stream) -> Result<()> {
        if let Some(mut writer) = self.writer.take() {
            match writer.rollback() {
                Ok(_) => self.writer = Some(writer),
                // The failed writer released its lock when it was dropped.
                Err(err) => {
                    tracing::warn!(stream = %stream.spec.name, %err, "hot index writer rollback failed, opening a new one")
                }
            }
        }
        if self.writer.is_none() {
            self.writer = Some(open_writer(
                &self.index,
                &self.tuning,
                self.writer_memory_bytes,
            )?);
        }
        if let Some((lsn, covered)) = self.failed_commit {
            let on_disk = committed_payload(&self.index)?;
            self.failed_commit = None;
            if on_disk.lsn == lsn {
                // The commit reported a failure but reached the disk: do not add it twice.
                self.uncommitted
                    .drain(..covered.min(self.uncommitted.len()));
                *lock(&stream.committed_lsn) = lsn;
                self.dirty = !self.uncommitted.is_empty();
            }
        }
        let id_field = self.id_field;
        if let Some(writer) = self.writer.as_mut() {
            feed(writer, id_field, &self.uncommitted)?;
        }
        self.broken = false;
        Ok(())
    }

    /// Commits (and seals when `seal`), then records the outcome: on failure the next attempt
    /// is scheduled with backoff and the stream is flagged as failing; on success the flag goes.
    fn attempt(&mut self, ctx: &Ctx<'_>, seal: bool) {
        let result = self
            .commit(ctx.stream, ctx.metrics, &ctx.settings.fault)
            .and_then(|()| if seal { self.seal(ctx) } else { Ok(()) });
        match result {
            Ok(()) => {
                if self.failures > 0 {
                    tracing::info!(stream = %ctx.stream.spec.name, failures = self.failures, "hot index storage works again");
                }
                self.failures = 0;
                self.retry_at = None;
                ctx.stream.storage_failing.store(false, Ordering::SeqCst);
            }
            Err(err) => {
                self.failures = self.failures.saturating_add(1);
                let delay = retry_delay(self.failures);
                self.retry_at = Some(Instant::now() + delay);
                ctx.stream.storage_failing.store(true, Ordering::SeqCst);
                tracing::error!(
                    stream = %ctx.stream.spec.name,
                    %err,
                    failures = self.failures,
                    retry_in_ms = delay.as_millis() as u64,
                    "hot index commit or seal failed, ingest refused until it works"
                );
            }
        }
    }

    fn commit(&mut self, stream: &Stream, metrics: &Metrics, fault: &FaultPoint) -> Result<()> {
        self.last_commit = Instant::now();
        if self.broken {
            self.recover(stream)?;
        }
        if !self.dirty {
            return Ok(());
        }
        let payload = serde_json::to_string(&CommitPayload {
            lsn: self.lsn,
            first_lsn: lock(&stream.unsealed).front().copied(),
            marks: self.marks.clone(),
        })
        .unwrap_or_default();
        let result = match self.writer.as_mut() {
            Some(writer) => fault.check().map_err(crate::Error::from).and_then(|()| {
                let mut prepared = writer.prepare_commit()?;
                prepared.set_payload(&payload);
                prepared.commit()?;
                Ok(())
            }),
            None => Err(gone()),
        };
        if let Err(err) = result {
            self.broken = true;
            self.failed_commit = Some((self.lsn, self.uncommitted.len()));
            return Err(err);
        }
        *lock(&stream.committed_lsn) = self.lsn;
        self.uncommitted.clear();
        self.dirty = false;
        read(&stream.hot).reader.reload()?;
        metrics.commit(&stream.spec.name);
        Ok(())
    }

    /// Turns the committed hot index into a split and starts a new one. On failure the hot index
    /// is left (or put back) as it was, to be sealed at a later attempt.
    fn seal(&mut self, ctx: &Ctx<'_>) -> Result<()> {
        let stream = ctx.stream;
        if self.docs == 0 {
            return Ok(());
        }
        ctx.settings.fault.check()?;
        // The next hot index first: if there is no room for it, nothing has changed yet.
        let (new_id, new_index) =
            create_hot(&stream.dir.join("hot"), &stream.schema, &self.tuning)?;
        let new_hot_dir = stream.dir.join("hot").join(&new_id);
        let new_reader = match hot_reader(&new_index) {
            Ok(reader) => reader,
            Err(err) => {
                discard_dir(&new_hot_dir);
                return Err(err);
            }
        };
        let writer = self.writer.take();
        // From here on the writer is gone: a failure reopens one on the same hot index.
        self.broken = true;
        let moved = match writer {
            Some(writer) => writer
                .wait_merging_threads()
                .map_err(crate::Error::from)
                .and_then(|()| self.move_to_split(ctx)),
            None => Err(gone()),
        };
        let (hot_id, handle, docs) = match moved {
            Ok(moved) => moved,
            Err(err) => {
                drop(new_reader);
                drop(new_index);
                discard_dir(&new_hot_dir);
                return Err(err);
            }
        };
        {
            let mut hot = write(&stream.hot);
            let mut splits = write(&stream.splits);
            splits.push(handle);
            *hot = Hot {
                id: new_id,
                reader: new_reader,
            };
        }
        {
            let mut unsealed = lock(&stream.unsealed);
            while unsealed.front().is_some_and(|&lsn| lsn < self.lsn) {
                unsealed.pop_front();
            }
        }
        self.index = new_index;
        self.docs = 0;
        self.marks.clear();
        self.created = Instant::now();
        // A new writer; if it cannot be opened now, the next commit attempt opens it.
        match open_writer(&self.index, &self.tuning, self.writer_memory_bytes) {
            Ok(writer) => {
                self.writer = Some(writer);
                self.broken = false;
            }
            Err(err) => {
                tracing::warn!(stream = %stream.spec.name, %err, "cannot open the new hot index writer yet")
            }
        }
        ctx.metrics.sealed(&stream.spec.name);
        tracing::info!(stream = %stream.spec.name, split = %hot_id, docs, "sealed split");
        Ok(())
    }

    /// Moves the hot index directory into the splits and records it in the metastore. On
    /// failure the directory is moved back; returns the split's id, handle and documents.
    fn move_to_split(&self, ctx: &Ctx<'_>) -> Result<(String, Arc<SplitHandle>, u64)> {
        let stream = ctx.stream;
        let (hot_id, reader) = {
            let hot = read(&stream.hot);
            (hot.id.clone(), hot.reader.clone())
        };
        reader.reload()?;
        let docs = reader.searcher().num_docs();
        let hot_dir = stream.dir.join("hot").join(&hot_id);
        let split_dir = stream.splits_dir().join(&hot_id);
        let (min_ts, max_ts) = split::time_range(&reader).unwrap_or((0, 0));
        let meta = SplitMeta {
            version: SPLIT_FORMAT_VERSION,
            id: hot_id.clone(),
            stream: stream.spec.name.clone(),
            min_timestamp: min_ts,
            max_timestamp: max_ts,
            docs,
            bytes: split::dir_bytes(&hot_dir),
            created_at: Timestamp::now().nanos(),
            merge_level: 0,
            parents: Vec::new(),
            marks: self.marks.clone(),
        };
        let meta_file = hot_dir.join(split::SPLIT_META_FILE);
        if let Err(err) = split::write_meta(&hot_dir, &meta) {
            let _ = fs::remove_file(&meta_file);
            return Err(err);
        }
        fs::rename(&hot_dir, &split_dir)?;
        let recorded = sync_dir(&stream.dir.join("hot"))
            .and_then(|()| sync_dir(&stream.splits_dir()))
            .map_err(crate::Error::from)
            .and_then(|()| SplitHandle::open(&split_dir, meta.clone()))
            .and_then(|handle| {
                // The metastore write is the point of no return.
                ctx.settings.fault.check()?;
                (ctx.on_sealed)(&stream.spec.name, &meta, self.lsn)?;
                Ok(handle)
            });
        match recorded {
            Ok(handle) => Ok((hot_id, Arc::new(handle), docs)),
            Err(err) => {
                // Not recorded: back to being the hot index, sealed at a later attempt.
                match fs::rename(&split_dir, &hot_dir) {
                    Ok(()) => {
                        let _ = fs::remove_file(hot_dir.join(split::SPLIT_META_FILE));
                    }
                    Err(undo) => tracing::error!(
                        stream = %stream.spec.name,
                        split = %hot_id,
                        err = %undo,
                        "cannot move an unrecorded split back to the hot index"
                    ),
                }
                Err(err)
            }
        }
    }
}

/// Adds kept documents to a writer, replacing earlier documents of the same identity.
fn feed(writer: &mut IndexWriter, id_field: Field, docs: &[Kept]) -> Result<()> {
    for kept in docs {
        if let Some(id) = &kept.id {
            writer.delete_term(Term::from_field_text(id_field, id));
        }
        writer.add_document(kept.doc.clone())?;
    }
    Ok(())
}

fn gone() -> crate::Error {
    crate::Error::InvalidArgument("the hot index writer is not open".into())
}

/// The payload of the last commit on disk.
fn committed_payload(index: &Index) -> Result<CommitPayload> {
    Ok(index
        .load_metas()?
        .payload
        .and_then(|p| serde_json::from_str::<CommitPayload>(&p).ok())
        .unwrap_or_default())
}

/// Removes a directory this thread created and no longer needs, best effort.
fn discard_dir(dir: &Path) {
    if let Err(err) = fs::remove_dir_all(dir) {
        tracing::warn!(dir = %dir.display(), %err, "could not remove an unused hot index");
    }
}

pub fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A bounded window of recently seen record identities: the oldest is forgotten first.
struct DedupWindow {
    capacity: usize,
    seen: HashSet<String>,
    order: VecDeque<String>,
}

impl DedupWindow {
    fn new(capacity: usize) -> DedupWindow {
        DedupWindow {
            capacity,
            seen: HashSet::new(),
            order: VecDeque::new(),
        }
    }

    /// Forgets every identity seen.
    fn clear(&mut self) {
        self.seen.clear();
        self.order.clear();
    }

    /// Returns false when the identity was seen within the window.
    fn insert(&mut self, id: &str) -> bool {
        if self.capacity == 0 {
            return true;
        }
        if self.seen.contains(id) {
            return false;
        }
        if self.order.len() >= self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
        self.seen.insert(id.to_string());
        self.order.push_back(id.to_string());
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delay_doubles_then_caps() {
        assert_eq!(retry_delay(1), Duration::from_millis(100));
        assert_eq!(retry_delay(2), Duration::from_millis(200));
        assert_eq!(retry_delay(4), Duration::from_millis(800));
        assert_eq!(retry_delay(6), RETRY_CAP);
        assert_eq!(retry_delay(u32::MAX), RETRY_CAP);
        assert_eq!(retry_delay(0), RETRY_BASE);
    }

    #[test]
    fn dedup_window_forgets_the_oldest() {
        let mut w = DedupWindow::new(2);
        assert!(w.insert("a"));
        assert!(!w.insert("a"));
        assert!(w.insert("b"));
        assert!(w.insert("c"));
        assert!(w.insert("a"), "a fell out of the window");
        assert!(!w.insert("c"));
    }
}
