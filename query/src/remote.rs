//! A searcher's own leaf over the shared tier: the published splits of the PostgreSQL
//! metastore, opened from object storage through the local split cache. The indexers are
//! asked only for what these do not cover ([`Excluded`]): every search sends them the ids of
//! the splits the searcher searched itself ([`EXCLUDE_SPLITS_KEY`]) and the snapshot each
//! stream's list was read under ([`EXCLUDE_SEEN_KEY`]). An indexer skips those splits, any
//! split made from one of them by a merge (its `parents`), and any copy of a split whose
//! publish the list saw (see `trawl_storage::seen`: the list covers it, even when a merge of
//! merges no longer names it), so that each record is counted once whichever side holds it.
//!
//! The list of a stream's published splits is read from the metastore and kept while the
//! metastore's notifications (`LISTEN`, sent by every publish, merge and retention mark in its
//! transaction) say it has not changed, at most [`LIST_MAX_AGE`]; without a listening
//! connection it is read at each search (one query). So a merge published since is seen at
//! once; an
//! indexer's merged split of which only some inputs are in the range is left out rightly, for
//! its documents in the range come from those inputs; splits stay open between searches while the bytes
//! of those open stay within three quarters of the cache's bound.
//!
//! A split that is not in the cache is opened **by range** ([`RangedDirectory`]: the object's
//! tail, footer and hotcache in one request) and searched reading only what the search
//! touches, so a cold search does not wait for whole objects. Once the search has answered,
//! those splits are downloaded whole into the cache, one at a time, in the background
//! ([`RemoteSplits::fill_cache`]); the next search that finds one cached reopens it from
//! there (memory-mapped, as fast as an indexer's own split).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tantivy::directory::Directory;
use tantivy::{Index, IndexReader, ReloadPolicy};
use trawl_index::{SearchTarget, StreamSnapshot, TargetKind};
use trawl_model::Timestamp;
use trawl_storage::cache::CachedSplit;
use trawl_storage::pg::{watch_published, PublishedChange, PublishedListing, SplitRecord};
use trawl_storage::{
    ObjectStorage, PgMetastore, PgSnapshot, RangedDirectory, SplitCache, StorageMetrics,
};

use crate::error::Error;

/// Key of the leaf search body listing the splits the root searched itself.
pub const EXCLUDE_SPLITS_KEY: &str = "exclude_splits";

/// Key of the leaf search body with, per stream, the snapshot the root's list of published
/// splits was read under (`system/timeline/xmin:xmax:xip,...`, see [`PgSnapshot`]): an indexer
/// leaves out its copies of the splits whose publish that list saw.
pub const EXCLUDE_SEEN_KEY: &str = "exclude_seen";

/// Decompressed doc-store blocks cached per segment of an open split (as the indexer's).
const DOC_STORE_CACHE_BLOCKS: usize = 8;

/// How long a stream's published list is kept even without a notification of a change.
pub const LIST_MAX_AGE: Duration = Duration::from_secs(60);

/// The published splits per stream, kept while no notification says they changed.
#[derive(Default)]
struct ListCache {
    /// Whether the notifications connection listens now: nothing is kept while it does not.
    listening: bool,
    /// Bumped whenever listening starts or stops: what was kept before is dropped.
    epoch: u64,
    /// Per stream, the notifications of a change seen.
    changes: HashMap<String, u64>,
    lists: HashMap<String, Kept<Arc<PublishedListing>>>,
    /// Notifications of a change to any stream seen.
    all_changes: u64,
    /// The streams that have splits, kept as a list is and dropped at any stream's change.
    names: Option<Kept<Vec<String>>>,
}

/// Something read from the metastore and kept: the token it was read under (see
/// [`ListCache::token`]) and when.
struct Kept<T> {
    token: (u64, u64),
    at: Instant,
    value: T,
}

impl<T: Clone> Kept<T> {
    /// Something read under `token`, to keep if the cache listens and `now` (the token where
    /// it stands now) is still `token`.
    fn read(listening: bool, token: (u64, u64), now: (u64, u64), value: T) -> Option<Kept<T>> {
        (listening && token == now).then(|| Kept {
            token,
            at: Instant::now(),
            value,
        })
    }

    /// The value, while the cache listens, nothing changed since (`now` is its token) and it
    /// is younger than [`LIST_MAX_AGE`].
    fn current(&self, listening: bool, now: (u64, u64)) -> Option<T> {
        (listening && self.token == now && self.at.elapsed() < LIST_MAX_AGE)
            .then(|| self.value.clone())
    }
}

impl ListCache {
    fn apply(&mut self, change: PublishedChange) {
        match change {
            PublishedChange::Stream(stream) => {
                self.lists.remove(&stream);
                *self.changes.entry(stream).or_default() += 1;
                self.all_changes += 1;
                self.names = None;
            }
            PublishedChange::Listening | PublishedChange::Lost => {
                self.listening = change == PublishedChange::Listening;
                self.epoch += 1;
                self.lists.clear();
                self.names = None;
            }
        }
    }

    /// Where the stream names stand now ([`ListCache::token`] for every stream at once).
    fn names_token(&self) -> (u64, u64) {
        (self.epoch, self.all_changes)
    }

    fn names(&self) -> Option<Vec<String>> {
        self.names
            .as_ref()?
            .current(self.listening, self.names_token())
    }

    fn keep_names(&mut self, token: (u64, u64), names: Vec<String>) {
        if let Some(kept) = Kept::read(self.listening, token, self.names_token(), names) {
            self.names = Some(kept);
        }
    }

    /// Where `stream` stands now: a list read from here on may be kept if this is unchanged
    /// once it is read.
    fn token(&self, stream: &str) -> (u64, u64) {
        (self.epoch, self.changes.get(stream).copied().unwrap_or(0))
    }

    fn get(&self, stream: &str) -> Option<Arc<PublishedListing>> {
        self.lists
            .get(stream)?
            .current(self.listening, self.token(stream))
    }

    fn keep(&mut self, stream: &str, token: (u64, u64), listing: Arc<PublishedListing>) {
        if let Some(kept) = Kept::read(self.listening, token, self.token(stream), listing) {
            self.lists.insert(stream.to_string(), kept);
        }
    }
}

struct OpenSplit {
    record: SplitRecord,
    reader: IndexReader,
    default_fields: Vec<String>,
    last_used: AtomicU64,
    /// The cached file it is opened from (pinned while open), or `None` if opened by range.
    _cached: Option<CachedSplit>,
}

impl OpenSplit {
    fn ranged(&self) -> bool {
        self._cached.is_none()
    }
}

/// The published splits of the shared tier, for a searcher.
pub struct RemoteSplits {
    metastore: PgMetastore,
    cache: Arc<SplitCache>,
    open: Mutex<HashMap<String, Arc<OpenSplit>>>,
    clock: AtomicU64,
    max_open_bytes: u64,
    /// Splits opened by range, to be downloaded into the cache: `true` once started.
    pending: Arc<Mutex<HashMap<String, bool>>>,
    metrics: Arc<StorageMetrics>,
    lists: Arc<Mutex<ListCache>>,
    watcher: tokio::task::JoinHandle<()>,
    range_read_concurrency: usize,
    export_whole_min_records: u64,
}

impl Drop for RemoteSplits {
    fn drop(&mut self) {
        self.watcher.abort();
    }
}

impl RemoteSplits {
    /// Opens the cache of `config`'s `[storage]`; the metastore is connected to on first use.
    pub async fn connect(
        config: &trawl_config::Config,
        metrics: Arc<StorageMetrics>,
    ) -> crate::Result<RemoteSplits> {
        let internal =
            |what: &str, e: trawl_storage::Error| Error::Internal(format!("{what}: {e}"));
        let storage = ObjectStorage::open(&config.storage, metrics.clone())
            .map_err(|e| internal("opening [storage]", e))?;
        let cache = SplitCache::open(&config.cache_dir(), config.storage.cache_max_bytes, storage)
            .map_err(|e| internal("opening the split cache", e))?;
        let cache = Arc::new(cache);
        // Connected on the first search: a searcher starts while PostgreSQL is away.
        let metastore = PgMetastore::lazy(&config.metastore.uri, metrics.clone());
        let lists = Arc::new(Mutex::new(ListCache::default()));
        let watcher = {
            let lists = lists.clone();
            let metrics = metrics.clone();
            watch_published(
                &config.metastore.uri,
                Duration::from_secs(1),
                move |change| {
                    let listening = u64::from(change != PublishedChange::Lost);
                    lock(&lists).apply(change);
                    metrics
                        .published_list_listening
                        .store(listening, Ordering::Relaxed);
                },
            )
        };
        Ok(RemoteSplits {
            metastore,
            cache,
            open: Mutex::new(HashMap::new()),
            clock: AtomicU64::new(0),
            max_open_bytes: config.storage.cache_max_bytes / 4 * 3,
            pending: Arc::default(),
            metrics,
            lists,
            watcher,
            range_read_concurrency: config.storage.range_read_concurrency.max(1),
            export_whole_min_records: config.storage.export_whole_min_records,
        })
    }

    /// Records past which an export downloads the splits it exports whole (`[storage]
    /// export_whole_min_records`).
    pub fn export_whole_min_records(&self) -> u64 {
        self.export_whole_min_records
    }

    /// Splits searched at once while some are read by range (`[storage]
    /// range_read_concurrency`).
    pub fn range_read_concurrency(&self) -> usize {
        self.range_read_concurrency
    }

    /// The streams the metastore has splits of.
    pub async fn streams(&self) -> crate::Result<Vec<String>> {
        if let Some(names) = lock(&self.lists).names() {
            return Ok(names);
        }
        let token = lock(&self.lists).names_token();
        let names = self
            .metastore
            .streams()
            .await
            .map_err(|e| Error::Internal(format!("metastore: {e}")))?;
        lock(&self.lists).keep_names(token, names.clone());
        Ok(names)
    }

    /// The published splits of `stream` now that may hold documents in `[start, end)`.
    pub async fn published(
        &self,
        stream: &str,
        start: Option<Timestamp>,
        end: Option<Timestamp>,
    ) -> crate::Result<Listed> {
        let (kept, listening) = {
            let lists = lock(&self.lists);
            (lists.get(stream), lists.listening)
        };
        if kept.is_none() && !listening {
            // Nothing could be kept: the metastore bounds the list by the range itself.
            StorageMetrics::inc(&self.metrics.published_list_misses, 1);
            let listing = self
                .metastore
                .published_listing(stream, start.map(|t| t.0), end.map(|t| t.0))
                .await
                .map_err(|e| Error::Internal(format!("metastore: {e}")))?;
            return Ok(Listed {
                stream: stream.to_string(),
                records: listing.records,
                seen: listing.seen,
            });
        }
        let all = match kept {
            Some(listing) => {
                StorageMetrics::inc(&self.metrics.published_list_hits, 1);
                listing
            }
            None => {
                StorageMetrics::inc(&self.metrics.published_list_misses, 1);
                let token = lock(&self.lists).token(stream);
                let listing = Arc::new(
                    self.metastore
                        .published_listing(stream, None, None)
                        .await
                        .map_err(|e| Error::Internal(format!("metastore: {e}")))?,
                );
                lock(&self.lists).keep(stream, token, listing.clone());
                listing
            }
        };
        // As `published_listing` bounds them: any overlap with the range.
        Ok(Listed {
            stream: stream.to_string(),
            records: all
                .records
                .iter()
                .filter(|r| {
                    start.is_none_or(|s| r.max_timestamp >= s.0)
                        && end.is_none_or(|e| r.min_timestamp < e.0)
                })
                .cloned()
                .collect(),
            seen: all.seen.clone(),
        })
    }

    /// The published splits of `stream` in `[start, end)`, and their snapshot
    /// ([`RemoteSplits::published`], then [`RemoteSplits::snapshot`]): the part of a searcher
    /// that reads them itself, and the records the indexers are told to leave out.
    pub async fn open_published(
        &self,
        stream: &str,
        start: Option<Timestamp>,
        end: Option<Timestamp>,
    ) -> crate::Result<(Listed, Option<(StreamSnapshot, bool)>)> {
        let listed = self.published(stream, start, end).await?;
        let opened = self.snapshot(stream, &listed.records, start, end).await?;
        Ok((listed, opened))
    }

    /// A snapshot of the splits of `records` that may hold documents in `[start, end)`,
    /// opened (from the cache, or by range), or `None` if none does; and whether any was
    /// opened by range (its search then waits on object storage more than on the CPU).
    pub async fn snapshot(
        &self,
        stream: &str,
        records: &[SplitRecord],
        start: Option<Timestamp>,
        end: Option<Timestamp>,
    ) -> crate::Result<Option<(StreamSnapshot, bool)>> {
        self.snapshot_opening(stream, records, start, end, false)
            .await
    }

    /// [`RemoteSplits::snapshot`] with every split opened from the cache, those not there
    /// downloaded whole first (at once): for a reader of most of their documents, such as a
    /// large export, which by range would make a request per doc-store block.
    pub async fn snapshot_whole(
        &self,
        stream: &str,
        records: &[SplitRecord],
        start: Option<Timestamp>,
        end: Option<Timestamp>,
    ) -> crate::Result<Option<StreamSnapshot>> {
        Ok(self
            .snapshot_opening(stream, records, start, end, true)
            .await?
            .map(|(snapshot, _)| snapshot))
    }

    async fn snapshot_opening(
        &self,
        stream: &str,
        records: &[SplitRecord],
        start: Option<Timestamp>,
        end: Option<Timestamp>,
        whole: bool,
    ) -> crate::Result<Option<(StreamSnapshot, bool)>> {
        let opening = records.iter().filter(|record| {
            start.is_none_or(|s| record.max_timestamp >= s.0)
                && end.is_none_or(|e| record.min_timestamp < e.0)
        });
        let opened =
            futures::future::try_join_all(opening.map(|record| self.open_split(record, whole)))
                .await?;
        self.close_least_used();
        // The newest split's schema and default fields: the stream's current ones.
        let Some(newest) = opened.iter().max_by_key(|s| s.record.created_at) else {
            return Ok(None);
        };
        let ranged = opened.iter().any(|s| s.ranged());
        let schema = newest.reader.searcher().schema().clone();
        let default_fields = newest
            .default_fields
            .iter()
            .filter_map(|name| schema.get_field(name).ok())
            .collect();
        let targets = opened
            .iter()
            .map(|split| {
                SearchTarget::new(
                    TargetKind::Split,
                    split.record.split_id.clone(),
                    split.reader.searcher(),
                    Some(Timestamp(split.record.min_timestamp)),
                    Some(Timestamp(split.record.max_timestamp)),
                    Some(split.clone() as Arc<dyn std::any::Any + Send + Sync>),
                )
            })
            .collect();
        Ok(Some((
            StreamSnapshot {
                stream: stream.to_string(),
                schema,
                default_fields,
                tokenizers: tantivy::tokenizer::TokenizerManager::default(),
                targets,
            },
            ranged,
        )))
    }

    /// The split of `record`, open: from the cache, else by range, or (`whole`) downloaded
    /// into the cache first.
    async fn open_split(&self, record: &SplitRecord, whole: bool) -> crate::Result<Arc<OpenSplit>> {
        let now = self.clock.fetch_add(1, Ordering::Relaxed);
        let key = &record.object_key;
        if let Some(split) = lock(&self.open).get(key) {
            // One opened by range is reopened from the cache once it is there (or when it is
            // wanted whole).
            if !split.ranged() || !(whole || self.cache.contains(key)) {
                split.last_used.store(now, Ordering::Relaxed);
                return Ok(split.clone());
            }
        }
        let failed = |e: String| {
            Error::Internal(format!(
                "split {} of {}: {e}",
                record.split_id, record.stream
            ))
        };
        let (directory, footer_meta, cached): (Box<dyn Directory>, _, _) = if whole
            || self.cache.contains(key)
        {
            let cached = self
                .cache
                .open_split(key)
                .await
                .map_err(|e| failed(e.to_string()))?;
            let meta = cached.directory.footer().meta.clone();
            (Box::new(cached.directory.clone()), meta, Some(cached))
        } else {
            let directory = RangedDirectory::open(self.cache.storage(), key, Some(record.bytes))
                .await
                .map_err(|e| failed(e.to_string()))?;
            let meta = directory.footer().meta.clone();
            (Box::new(directory), meta, None)
        };
        let default_fields = footer_meta["default_fields"]
            .as_array()
            .map(|names| {
                names
                    .iter()
                    .filter_map(|n| n.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        // A split opened by range may read object storage while it opens: off the runtime.
        let reader = tokio::task::spawn_blocking(move || -> tantivy::Result<IndexReader> {
            Index::open(directory)?
                .reader_builder()
                .reload_policy(ReloadPolicy::Manual)
                .doc_store_cache_num_blocks(DOC_STORE_CACHE_BLOCKS)
                .try_into()
        })
        .await
        .map_err(|e| failed(e.to_string()))?
        .map_err(|e| failed(e.to_string()))?;
        if cached.is_none() {
            let mut pending = lock(&self.pending);
            pending.entry(key.clone()).or_insert(false);
            self.metrics
                .cache_fills_pending
                .store(pending.len() as u64, Ordering::Relaxed);
        }
        let split = Arc::new(OpenSplit {
            record: record.clone(),
            reader,
            default_fields,
            last_used: AtomicU64::new(now),
            _cached: cached,
        });
        lock(&self.open).insert(key.clone(), split.clone());
        Ok(split)
    }

    /// Downloads into the cache, one at a time in the background, the splits opened by range
    /// and not yet on their way; the searches after find them there. A failed download is
    /// tried again after the split's next opening by range.
    pub fn fill_cache(&self) {
        let keys: Vec<String> = {
            let mut pending = lock(&self.pending);
            pending
                .iter_mut()
                .filter(|(_, started)| !**started)
                .map(|(key, started)| {
                    *started = true;
                    key.clone()
                })
                .collect()
        };
        if keys.is_empty() {
            return;
        }
        let cache = self.cache.clone();
        let pending = self.pending.clone();
        let metrics = self.metrics.clone();
        tokio::spawn(async move {
            for key in keys {
                if let Err(err) = cache.open_split(&key).await {
                    tracing::warn!(key, %err, "a split read by range could not be cached");
                }
                let mut pending = lock(&pending);
                pending.remove(&key);
                metrics
                    .cache_fills_pending
                    .store(pending.len() as u64, Ordering::Relaxed);
            }
        });
    }

    /// Closes the least recently used open splits while those open hold more than their share
    /// of the cache (a search holding one keeps it until it ends).
    fn close_least_used(&self) {
        let mut open = lock(&self.open);
        let mut total: u64 = open.values().map(|s| s.record.bytes).sum();
        if total <= self.max_open_bytes {
            return;
        }
        let mut by_age: Vec<(u64, String, u64)> = open
            .iter()
            .map(|(k, s)| {
                (
                    s.last_used.load(Ordering::Relaxed),
                    k.clone(),
                    s.record.bytes,
                )
            })
            .collect();
        by_age.sort();
        for (_, key, bytes) in by_age {
            if total <= self.max_open_bytes {
                break;
            }
            open.remove(&key);
            total -= bytes;
        }
    }
}

/// A stream's published splits in a range, as this searcher listed them.
#[derive(Debug, Clone)]
pub struct Listed {
    pub stream: String,
    pub records: Vec<SplitRecord>,
    /// Which publishes the listing saw.
    pub seen: PgSnapshot,
}

/// What the indexers leave out of a leaf search because the searcher covered it itself: the
/// splits it listed and their ancestors ([`EXCLUDE_SPLITS_KEY`]), and per stream which
/// publishes its list saw ([`EXCLUDE_SEEN_KEY`]).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Excluded {
    #[serde(
        rename = "exclude_splits",
        default,
        skip_serializing_if = "HashSet::is_empty"
    )]
    pub ids: HashSet<String>,
    #[serde(
        rename = "exclude_seen",
        default,
        skip_serializing_if = "HashMap::is_empty"
    )]
    pub seen: HashMap<String, PgSnapshot>,
}

impl Excluded {
    /// What the searcher that listed `lists` covers.
    pub fn of<'a>(lists: impl IntoIterator<Item = &'a Listed>) -> Excluded {
        let mut excluded = Excluded::default();
        for listed in lists {
            excluded.add(listed);
        }
        excluded
    }

    /// Adds what the searcher that listed `listed` covers.
    pub fn add(&mut self, listed: &Listed) {
        self.ids.extend(exclusion_ids(&listed.records));
        self.seen.insert(listed.stream.clone(), listed.seen.clone());
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty() && self.seen.is_empty()
    }

    /// Adds both keys to a leaf request's JSON body (nothing when empty).
    pub fn add_to(&self, body: &mut serde_json::Value) {
        if self.is_empty() {
            return;
        }
        let mut ids: Vec<&String> = self.ids.iter().collect();
        ids.sort_unstable();
        body[EXCLUDE_SPLITS_KEY] = serde_json::json!(ids);
        body[EXCLUDE_SEEN_KEY] = serde_json::json!(self.seen);
    }

    /// Takes both keys out of a leaf request's JSON body.
    pub fn remove_from(body: &mut serde_json::Value) {
        if let Some(object) = body.as_object_mut() {
            object.remove(EXCLUDE_SPLITS_KEY);
            object.remove(EXCLUDE_SEEN_KEY);
        }
    }

    /// Whether the indexer's `target` of `stream` must be left out of a leaf search: the root
    /// searched it itself (its id, or a merge input's: a merge the root's list predates), or
    /// its copy of a split whose publish the root's list of the stream saw.
    pub fn covers(&self, stream: &str, target: &SearchTarget) -> bool {
        target.kind == TargetKind::Split
            && (self.ids.contains(&target.id)
                || target.parents.iter().any(|p| self.ids.contains(p))
                || target
                    .published
                    .is_some_and(|commit| self.seen.get(stream).is_some_and(|s| s.sees(&commit))))
    }
}

/// The split ids a searcher sends the indexers ([`EXCLUDE_SPLITS_KEY`]) for the published
/// splits `records` it covers itself: theirs and their ancestors' (`parents`, as the published
/// list names them: every merge input still recorded). An indexer may still hold a copy of a
/// merge input until its next publisher round after the cluster's merger published the
/// merge: that copy's records are in the merge's output.
pub fn exclusion_ids<'a>(records: impl IntoIterator<Item = &'a SplitRecord>) -> Vec<String> {
    let mut ids = Vec::new();
    let mut seen = HashSet::new();
    for record in records {
        for id in std::iter::once(&record.split_id).chain(&record.parents) {
            if seen.insert(id.as_str()) {
                ids.push(id.clone());
            }
        }
    }
    ids
}

/// Takes [`EXCLUDE_SPLITS_KEY`] and [`EXCLUDE_SEEN_KEY`] (what a searcher covered itself) out
/// of a leaf request's JSON body; nothing when absent. Errors: a value that is not a list of
/// split ids, or not a map of streams to snapshots (400).
pub(crate) fn take_excluded(body: &mut serde_json::Value) -> crate::Result<Excluded> {
    fn take<T: serde::de::DeserializeOwned + Default>(
        body: &mut serde_json::Value,
        key: &str,
    ) -> crate::Result<T> {
        match body.as_object_mut().and_then(|o| o.remove(key)) {
            Some(value) => serde_json::from_value(value)
                .map_err(|err| Error::InvalidArgument(format!("request body: `{key}`: {err}"))),
            None => Ok(T::default()),
        }
    }
    Ok(Excluded {
        ids: take(body, EXCLUDE_SPLITS_KEY)?,
        seen: take(body, EXCLUDE_SEEN_KEY)?,
    })
}

/// Leaves what `excluded` covers (see [`Excluded::covers`]) out of `snapshot`.
pub(crate) fn leave_out(snapshot: &mut StreamSnapshot, excluded: &Excluded) {
    if !excluded.is_empty() {
        let StreamSnapshot {
            stream, targets, ..
        } = snapshot;
        targets.retain(|t| !excluded.covers(stream, t));
    }
}

/// `work` on the shared tier, failed when it has not answered within `budget`.
pub(crate) async fn within<T>(
    budget: Duration,
    work: impl std::future::Future<Output = crate::Result<T>>,
) -> crate::Result<T> {
    tokio::time::timeout(budget, work)
        .await
        .unwrap_or_else(|_| {
            Err(Error::Internal(format!(
                "the shared tier did not answer within {} ms",
                budget.as_millis()
            )))
        })
}

/// `mutex` locked; a lock poisoned by a panicking holder is taken all the same (what it
/// guards is left consistent between statements).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::snapshot;
    use trawl_index::Committed;

    fn record(id: &str) -> SplitRecord {
        SplitRecord {
            stream: "logs".into(),
            split_id: id.into(),
            state: trawl_storage::pg::SplitState::Published,
            object_key: ObjectStorage::split_key("logs", id),
            min_timestamp: 1,
            max_timestamp: 2,
            docs: 1,
            bytes: 1,
            created_at: 1,
            merge_level: 0,
            indexer: "a".into(),
            parents: Vec::new(),
            meta: serde_json::Value::Null,
        }
    }

    #[test]
    fn exclusion_ids_name_each_split_and_merge_input_once() {
        let mut merged = record("m");
        merged.parents = vec!["a".into(), "b".into()];
        let mut other = record("n");
        other.parents = vec!["b".into(), "c".into()];
        assert_eq!(
            exclusion_ids(&[record("x"), merged, other]),
            ["x", "m", "a", "b", "n", "c"]
        );
        assert!(exclusion_ids(&[]).is_empty());
    }

    #[test]
    fn a_published_list_is_kept_only_while_listening_and_until_its_stream_changes() {
        let ids = |list: Option<Arc<PublishedListing>>| {
            list.map(|l| {
                l.records
                    .iter()
                    .map(|r| r.split_id.clone())
                    .collect::<Vec<_>>()
            })
        };
        let listing = |ids: &[&str]| {
            Arc::new(PublishedListing {
                records: ids.iter().map(|id| record(id)).collect(),
                seen: "7/1/1:1:".parse().unwrap(),
            })
        };
        let mut lists = ListCache::default();
        // Not listening: nothing is kept.
        let token = lists.token("logs");
        lists.keep("logs", token, listing(&["s1"]));
        assert_eq!(ids(lists.get("logs")), None);
        lists.apply(PublishedChange::Listening);
        let token = lists.token("logs");
        lists.keep("logs", token, listing(&["s1"]));
        assert_eq!(ids(lists.get("logs")), Some(vec!["s1".to_string()]));
        // Another stream's change leaves it; its own drops it.
        lists.apply(PublishedChange::Stream("audit".into()));
        assert_eq!(ids(lists.get("logs")), Some(vec!["s1".to_string()]));
        // A list read before a change and kept after it is stale: refused.
        let token = lists.token("logs");
        lists.apply(PublishedChange::Stream("logs".into()));
        assert_eq!(ids(lists.get("logs")), None);
        lists.keep("logs", token, listing(&["s1"]));
        assert_eq!(ids(lists.get("logs")), None);
        let token = lists.token("logs");
        lists.keep("logs", token, listing(&["s1", "s2"]));
        assert_eq!(ids(lists.get("logs")).map(|l| l.len()), Some(2));
        // The connection lost: everything dropped, and nothing kept until it listens again
        // (changes may have been missed meanwhile).
        lists.apply(PublishedChange::Lost);
        assert_eq!(ids(lists.get("logs")), None);
        let token = lists.token("logs");
        lists.keep("logs", token, listing(&["s1"]));
        assert_eq!(ids(lists.get("logs")), None);
        lists.apply(PublishedChange::Listening);
        lists.keep("logs", token, listing(&["s1"]));
        assert_eq!(
            ids(lists.get("logs")),
            None,
            "read before listening resumed"
        );
    }

    #[test]
    fn the_stream_names_are_kept_only_while_listening_and_until_any_stream_changes() {
        let names = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let mut lists = ListCache::default();
        let token = lists.names_token();
        lists.keep_names(token, names(&["logs"]));
        assert_eq!(lists.names(), None, "not listening");
        lists.apply(PublishedChange::Listening);
        let token = lists.names_token();
        lists.keep_names(token, names(&["logs"]));
        assert_eq!(lists.names(), Some(names(&["logs"])));
        // A first split of a new stream is a change of that stream: every name is read again.
        lists.apply(PublishedChange::Stream("events".into()));
        assert_eq!(lists.names(), None);
        // Names read before a change and kept after it are stale: refused.
        let token = lists.names_token();
        lists.apply(PublishedChange::Stream("logs".into()));
        lists.keep_names(token, names(&["logs"]));
        assert_eq!(lists.names(), None);
        let token = lists.names_token();
        lists.keep_names(token, names(&["events", "logs"]));
        assert_eq!(lists.names(), Some(names(&["events", "logs"])));
        lists.apply(PublishedChange::Lost);
        assert_eq!(lists.names(), None);
        let token = lists.names_token();
        lists.apply(PublishedChange::Listening);
        lists.keep_names(token, names(&["logs"]));
        assert_eq!(lists.names(), None, "read before listening resumed");
    }

    #[test]
    fn a_split_is_left_out_when_it_or_a_merge_input_of_it_was_searched_by_the_root() {
        let target = snapshot().targets.remove(0);
        assert_eq!(target.kind, TargetKind::Split);
        let set = |ids: &[&str]| Excluded {
            ids: ids.iter().map(|s| s.to_string()).collect(),
            seen: HashMap::new(),
        };
        let id = target.id.clone();
        assert!(set(&[&id]).covers("logs", &target));
        assert!(!set(&["other"]).covers("logs", &target));
        let merged = target.with_parents(&["s1".to_string(), "s2".to_string()]);
        assert!(
            set(&["s2"]).covers("logs", &merged),
            "the root holds an input"
        );
        assert!(!set(&["s3"]).covers("logs", &merged));
        let mut hot = merged.clone();
        hot.kind = TargetKind::Hot;
        assert!(
            !set(&[&id, "s1"]).covers("logs", &hot),
            "a hot index is never left out"
        );
    }

    /// An indexer's copy of a split whose publish the root's list of the stream saw is left
    /// out whatever the ids say (the list covers it: listed, merged, or dropped by retention);
    /// one published after the list was read, or never recorded, is not.
    #[test]
    fn a_copy_is_left_out_when_the_roots_list_saw_its_publish() {
        let mut target = snapshot().targets.remove(0);
        let seen = |stream: &str, snapshot: &str| Excluded {
            ids: HashSet::new(),
            seen: HashMap::from([(stream.to_string(), snapshot.parse().unwrap())]),
        };
        assert!(
            !seen("logs", "7/1/100:110:").covers("logs", &target),
            "no xid"
        );
        let at = |xid: u64| {
            Some(Committed {
                system: 7,
                timeline: 1,
                xid,
            })
        };
        target.published = at(99);
        assert!(seen("logs", "7/1/100:110:").covers("logs", &target));
        assert!(
            !seen("audit", "7/1/100:110:").covers("logs", &target),
            "another stream's list"
        );
        assert!(
            !seen("logs", "7/2/100:110:").covers("logs", &target),
            "another timeline"
        );
        assert!(
            !seen("logs", "8/1/100:110:").covers("logs", &target),
            "another cluster"
        );
        target.published = at(104);
        assert!(seen("logs", "7/1/100:110:").covers("logs", &target));
        assert!(
            !seen("logs", "7/1/100:110:104").covers("logs", &target),
            "in progress when the list was read"
        );
        target.published = at(110);
        assert!(
            !seen("logs", "7/1/100:110:").covers("logs", &target),
            "published after the list was read"
        );
        let mut hot = target.clone();
        hot.kind = TargetKind::Hot;
        hot.published = at(1);
        assert!(!seen("logs", "7/1/100:110:").covers("logs", &hot));
    }

    #[test]
    fn what_is_covered_travels_in_the_leaf_body_and_back() {
        let mut merged = record("m");
        merged.parents = vec!["a".into()];
        let lists = [
            Listed {
                stream: "logs".into(),
                records: vec![merged, record("x")],
                seen: "7/1/7:9:8".parse().unwrap(),
            },
            Listed {
                stream: "audit".into(),
                records: Vec::new(),
                seen: "7/1/7:7:".parse().unwrap(),
            },
        ];
        let excluded = Excluded::of(&lists);
        let mut body = serde_json::json!({"q": "*"});
        excluded.add_to(&mut body);
        assert_eq!(
            body,
            serde_json::json!({
                "q": "*",
                "exclude_splits": ["a", "m", "x"],
                "exclude_seen": {"logs": "7/1/7:9:8", "audit": "7/1/7:7:"},
            })
        );
        assert_eq!(take_excluded(&mut body).unwrap(), excluded);
        assert_eq!(body, serde_json::json!({"q": "*"}));
        assert!(take_excluded(&mut body).unwrap().is_empty());
        for bad in [
            serde_json::json!({"exclude_splits": "a"}),
            serde_json::json!({"exclude_seen": ["7/1/7:9:"]}),
            serde_json::json!({"exclude_seen": {"logs": "7/1/9:7:"}}),
            serde_json::json!({"exclude_seen": {"logs": "7:9:"}}),
        ] {
            let mut bad = bad;
            let err = take_excluded(&mut bad).unwrap_err();
            assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
        }
        let mut empty = serde_json::json!({});
        Excluded::default().add_to(&mut empty);
        assert_eq!(empty, serde_json::json!({}));
    }
}
