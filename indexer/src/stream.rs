//! One stream's storage: the hot index that takes new documents and commits every interval, the
//! thread that feeds it, and the sealed splits it turns into.

use std::collections::{HashSet, VecDeque};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tantivy::schema::{Field, Schema};
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, Term};
use trawl_model::Timestamp;

use crate::doc::{DocBuilder, Prepared, StreamSpec};
use crate::metrics::Metrics;
use crate::snapshot::{SearchTarget, StreamSnapshot};
use crate::split::{self, SplitHandle, SplitMeta, SPLIT_FORMAT_VERSION};
use crate::wal::sync_dir;
use crate::Result;

/// What the hot index's commit payload records.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct CommitPayload {
    /// Every WAL entry of the stream before this position is in the hot index or a split.
    pub lsn: u64,
    /// The position of the first WAL entry in the hot index, if it holds any.
    pub first_lsn: Option<u64>,
}

/// Work for a stream's indexing thread.
pub enum IndexOp {
    /// Documents of the WAL entry ending at `lsn_end`.
    Add {
        lsn: u64,
        lsn_end: u64,
        docs: Vec<Prepared>,
    },
    /// Commit now and answer once searchable.
    Flush(std::sync::mpsc::Sender<()>),
    /// Seal the hot index into a split now (tests and shutdown of an idle index).
    Seal(std::sync::mpsc::Sender<()>),
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
    pub dedup_window: usize,
    pub retention_max_age: Option<Duration>,
    pub retention_max_bytes: Option<u64>,
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
}

impl Stream {
    /// Opens a stream's directory, its splits known to the metastore and its hot index (creating
    /// one if there is none). Returns the stream and the hot index's last commit payload.
    pub fn open(
        spec: StreamSpec,
        dir: &Path,
        splits: Vec<Arc<SplitHandle>>,
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
        let (hot_id, index) = open_or_create_hot(&dir.join("hot"), &schema)?;
        let payload = index
            .load_metas()?
            .payload
            .and_then(|p| serde_json::from_str::<CommitPayload>(&p).ok())
            .unwrap_or_default();
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
                split.meta.id.clone(),
                split.reader.searcher(),
                Some(Timestamp(split.meta.min_timestamp)),
                Some(Timestamp(split.meta.max_timestamp)),
                Some(split.clone() as Arc<dyn std::any::Any + Send + Sync>),
            );
            if target.overlaps(start, end) {
                targets.push(target);
            }
        }
        let hot_searcher = hot.reader.searcher();
        if hot_searcher.num_docs() > 0 {
            targets.push(SearchTarget::new(
                hot.id.clone(),
                hot_searcher,
                None,
                None,
                None,
            ));
        }
        StreamSnapshot {
            stream: self.spec.name.clone(),
            schema: self.schema.clone(),
            default_fields: self.default_fields.clone(),
            tokenizers: tantivy::tokenizer::TokenizerManager::default(),
            targets,
        }
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
fn open_or_create_hot(hot_dir: &Path, schema: &Schema) -> Result<(String, Index)> {
    let mut existing: Vec<PathBuf> = fs::read_dir(hot_dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    existing.sort();
    while let Some(path) = existing.pop() {
        match Index::open_in_dir(&path) {
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
    create_hot(hot_dir, schema)
}

fn create_hot(hot_dir: &Path, schema: &Schema) -> Result<(String, Index)> {
    let id = ulid::Ulid::new().to_string().to_lowercase();
    let path = hot_dir.join(&id);
    fs::create_dir_all(&path)?;
    let index = Index::builder()
        .schema(schema.clone())
        .settings(index_settings())
        .create_in_dir(&path)?;
    sync_dir(hot_dir)?;
    Ok((id, index))
}

/// Doc store compressed with zstd in 64 KiB blocks: log lines repeat a lot across a block, so a
/// larger block than tantivy's 16 KiB default compresses markedly better for little retrieval
/// cost (a hit reads one block).
fn index_settings() -> tantivy::IndexSettings {
    tantivy::IndexSettings {
        docstore_compression: tantivy::store::Compressor::Zstd(tantivy::store::ZstdCompressor {
            compression_level: Some(3),
        }),
        docstore_blocksize: 64 * 1024,
        ..tantivy::IndexSettings::default()
    }
}

/// Called by the indexing thread when it sealed a split, to record it in the metastore. Returns
/// only once the metastore is durable.
pub type OnSealed = Arc<dyn Fn(&str, &SplitMeta, u64) -> Result<()> + Send + Sync>;

/// The indexing thread of a stream: adds documents, commits every interval, seals by size or
/// age. Runs until every sender of `ops` is gone.
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
    loop {
        let timeout = settings
            .commit_interval
            .saturating_sub(state.last_commit.elapsed());
        let op = match ops.recv_timeout(timeout) {
            Ok(op) => Some(op),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        let result = match op {
            Some(IndexOp::Add { lsn, lsn_end, docs }) => {
                state.add(&stream, lsn, lsn_end, docs, &mut dedup, &metrics)
            }
            Some(IndexOp::Flush(done)) => {
                let r = state.commit(&stream, &metrics);
                let _ = done.send(());
                r
            }
            Some(IndexOp::Seal(done)) => {
                let r = state
                    .commit(&stream, &metrics)
                    .and_then(|_| state.seal(&stream, &settings, &metrics, &on_sealed));
                let _ = done.send(());
                r
            }
            Some(IndexOp::Stop) => break,
            None => Ok(()),
        };
        if let Err(err) = result {
            tracing::error!(stream = %stream.spec.name, %err, "indexing failed");
        }
        if state.last_commit.elapsed() >= settings.commit_interval {
            if let Err(err) = state.commit(&stream, &metrics) {
                tracing::error!(stream = %stream.spec.name, %err, "commit failed");
            }
            let due = state.docs >= settings.split_max_docs
                || (state.docs > 0 && state.created.elapsed() >= settings.split_max_age);
            if due {
                if let Err(err) = state.seal(&stream, &settings, &metrics, &on_sealed) {
                    tracing::error!(stream = %stream.spec.name, %err, "sealing a split failed");
                }
            }
        }
    }
    if let Err(err) = state.commit(&stream, &metrics) {
        tracing::error!(stream = %stream.spec.name, %err, "final commit failed");
    }
}

/// The writing side of the hot index, owned by the indexing thread.
struct HotWriter {
    writer: Option<IndexWriter>,
    id_field: Field,
    docs: u64,
    dirty: bool,
    lsn: u64,
    created: Instant,
    last_commit: Instant,
}

impl HotWriter {
    fn new(stream: &Stream, index: Index, settings: &StreamSettings) -> Result<HotWriter> {
        let writer = index.writer_with_num_threads(1, settings.writer_memory_bytes)?;
        let docs = index.reader()?.searcher().num_docs();
        Ok(HotWriter {
            id_field: stream.schema.get_field(crate::schema::ID_FIELD)?,
            writer: Some(writer),
            docs,
            dirty: false,
            lsn: *lock(&stream.committed_lsn),
            created: Instant::now(),
            last_commit: Instant::now(),
        })
    }

    fn writer(&mut self) -> Result<&mut IndexWriter> {
        self.writer.as_mut().ok_or_else(|| {
            crate::Error::InvalidArgument("hot index writer is gone after a failed seal".into())
        })
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
        let id_field = self.id_field;
        let writer = self.writer()?;
        let mut added = 0u64;
        for prepared in docs {
            if let Some(id) = &prepared.id {
                if !dedup.insert(id) {
                    metrics.deduplicated(&stream.spec.name, 1);
                    continue;
                }
                writer.delete_term(Term::from_field_text(id_field, id));
            }
            writer.add_document(prepared.doc)?;
            added += 1;
        }
        self.docs += added;
        self.dirty = true;
        self.lsn = lsn_end;
        let _ = lsn;
        Ok(())
    }

    fn commit(&mut self, stream: &Stream, metrics: &Metrics) -> Result<()> {
        self.last_commit = Instant::now();
        if !self.dirty {
            return Ok(());
        }
        let payload = serde_json::to_string(&CommitPayload {
            lsn: self.lsn,
            first_lsn: lock(&stream.unsealed).front().copied(),
        })
        .unwrap_or_default();
        let writer = self.writer()?;
        let mut prepared = writer.prepare_commit()?;
        prepared.set_payload(&payload);
        prepared.commit()?;
        read(&stream.hot).reader.reload()?;
        *lock(&stream.committed_lsn) = self.lsn;
        self.dirty = false;
        metrics.commit(&stream.spec.name);
        Ok(())
    }

    /// Turns the hot index into a split and starts a new one.
    fn seal(
        &mut self,
        stream: &Stream,
        settings: &StreamSettings,
        metrics: &Metrics,
        on_sealed: &OnSealed,
    ) -> Result<()> {
        if self.docs == 0 {
            return Ok(());
        }
        let Some(writer) = self.writer.take() else {
            return Ok(());
        };
        writer.wait_merging_threads()?;
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
        };
        split::write_meta(&hot_dir, &meta)?;
        fs::rename(&hot_dir, &split_dir)?;
        sync_dir(&stream.dir.join("hot"))?;
        sync_dir(&stream.splits_dir())?;
        on_sealed(&stream.spec.name, &meta, self.lsn)?;
        let handle = Arc::new(SplitHandle::open(&split_dir, meta)?);

        let (new_id, index) = create_hot(&stream.dir.join("hot"), &stream.schema)?;
        let new_reader = hot_reader(&index)?;
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
        self.writer = Some(index.writer_with_num_threads(1, settings.writer_memory_bytes)?);
        self.docs = 0;
        self.created = Instant::now();
        metrics.sealed(&stream.spec.name);
        tracing::info!(stream = %stream.spec.name, split = %hot_id, docs, "sealed split");
        Ok(())
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
