//! The local split cache (`[storage] cache_dir`, `cache_max_bytes`): whole split objects kept
//! on local disk, opened by mmap, least recently used out when the cache is over its bound.
//!
//! - **One fetch per split**: concurrent readers of a split that is not cached wait for the
//!   first one's download instead of starting their own.
//! - **Crash-safe**: a download goes to `tmp/` and is renamed into place only once whole and
//!   its footer read back; `tmp/` is emptied at start, and the files in place are adopted.
//! - **Safe against readers**: a split is removed only when no open directory holds it (an
//!   mmap survives its file's removal anyway), and is fetched again on its next use. A cache
//!   directory deleted under a running process is recreated on the next fetch.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};

use crate::bundle::BundleDirectory;
use crate::metrics::StorageMetrics;
use crate::object::ObjectStorage;
use crate::{Error, Result};

/// Suffix of a cached split's file.
const SUFFIX: &str = ".split";

/// A cached split held open: keeps its file from eviction while alive.
pub struct CachedSplit {
    pub directory: BundleDirectory,
    pub key: String,
    _pin: Arc<()>,
}

struct Entry {
    bytes: u64,
    last_used: u64,
    /// Alive while an opened split is in use.
    pin: Weak<()>,
}

#[derive(Default)]
struct State {
    entries: HashMap<String, Entry>,
    clock: u64,
    bytes: u64,
}

/// The cache. Cheap to share (`Arc`).
pub struct SplitCache {
    dir: PathBuf,
    max_bytes: u64,
    storage: ObjectStorage,
    state: Mutex<State>,
    /// Per key, the lock its single fetch holds.
    fetching: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    metrics: Arc<StorageMetrics>,
}

fn file_name(key: &str) -> String {
    // Keys are `splits/<stream>/<id>.split`: stream names and ids hold no `~`.
    format!("{}{SUFFIX}", key.trim_end_matches(SUFFIX).replace('/', "~"))
}

fn key_of(file_name: &str) -> Option<String> {
    Some(format!(
        "{}{SUFFIX}",
        file_name.strip_suffix(SUFFIX)?.replace('~', "/")
    ))
}

impl SplitCache {
    /// A cache in `dir` (created), adopting the splits already there, fetching from
    /// `storage`.
    pub fn open(dir: &Path, max_bytes: u64, storage: ObjectStorage) -> Result<SplitCache> {
        let io_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| Error::Io { path, source }
        };
        let tmp = dir.join("tmp");
        if tmp.exists() {
            fs::remove_dir_all(&tmp).map_err(io_err(&tmp))?;
        }
        fs::create_dir_all(&tmp).map_err(io_err(&tmp))?;
        let mut found = Vec::new();
        for entry in fs::read_dir(dir).map_err(io_err(dir))? {
            let entry = entry.map_err(io_err(dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(key) = key_of(&name) else { continue };
            let meta = entry.metadata().map_err(io_err(dir))?;
            found.push((meta.modified().ok(), key, meta.len()));
        }
        // Oldest first: they are the first out.
        found.sort();
        let metrics = storage.metrics().clone();
        let mut state = State::default();
        for (_, key, bytes) in found {
            state.clock += 1;
            state.bytes += bytes;
            state.entries.insert(
                key,
                Entry {
                    bytes,
                    last_used: state.clock,
                    pin: Weak::new(),
                },
            );
        }
        metrics
            .cache_bytes
            .store(state.bytes, std::sync::atomic::Ordering::Relaxed);
        let cache = SplitCache {
            dir: dir.to_path_buf(),
            max_bytes,
            storage,
            state: Mutex::new(state),
            fetching: Mutex::new(HashMap::new()),
            metrics,
        };
        cache.evict();
        Ok(cache)
    }

    /// The object storage it fetches from.
    pub fn storage(&self) -> &ObjectStorage {
        &self.storage
    }

    /// Bytes in the cache now.
    pub fn bytes(&self) -> u64 {
        lock(&self.state).bytes
    }

    /// Whether `key` is cached now.
    pub fn contains(&self, key: &str) -> bool {
        lock(&self.state).entries.contains_key(key)
    }

    /// The split object `key`, from the cache or fetched into it, opened.
    pub async fn open_split(&self, key: &str) -> Result<CachedSplit> {
        if let Some(split) = self.open_cached(key)? {
            StorageMetrics::add(&self.metrics.cache_hits, 1);
            return Ok(split);
        }
        let gate = {
            let mut fetching = lock(&self.fetching);
            fetching
                .entry(key.to_string())
                .or_insert_with(|| Arc::new(tokio::sync::Mutex::new(())))
                .clone()
        };
        let _held = gate.lock().await;
        // Another reader may have fetched it while this one waited.
        let result = match self.open_cached(key)? {
            Some(split) => {
                StorageMetrics::add(&self.metrics.cache_hits, 1);
                Ok(split)
            }
            None => {
                StorageMetrics::add(&self.metrics.cache_misses, 1);
                self.fetch(key).await
            }
        };
        lock(&self.fetching).remove(key);
        result
    }

    /// Opens `key` if it is cached and its file is still there (a file removed under the
    /// cache is forgotten, to be fetched again).
    fn open_cached(&self, key: &str) -> Result<Option<CachedSplit>> {
        let path = self.dir.join(file_name(key));
        let mut state = lock(&self.state);
        let State {
            entries,
            clock,
            bytes,
        } = &mut *state;
        let Some(entry) = entries.get_mut(key) else {
            return Ok(None);
        };
        match BundleDirectory::open(&path) {
            Ok(directory) => {
                *clock += 1;
                entry.last_used = *clock;
                let pin = match entry.pin.upgrade() {
                    Some(pin) => pin,
                    None => {
                        let pin = Arc::new(());
                        entry.pin = Arc::downgrade(&pin);
                        pin
                    }
                };
                Ok(Some(CachedSplit {
                    directory,
                    key: key.to_string(),
                    _pin: pin,
                }))
            }
            Err(e) => {
                tracing::warn!(key, error = %e, "cached split unreadable; fetching it again");
                *bytes -= entry.bytes;
                entries.remove(key);
                let _ = fs::remove_file(&path);
                self.metrics
                    .cache_bytes
                    .store(*bytes, std::sync::atomic::Ordering::Relaxed);
                Ok(None)
            }
        }
    }

    async fn fetch(&self, key: &str) -> Result<CachedSplit> {
        let tmp_dir = self.dir.join("tmp");
        fs::create_dir_all(&tmp_dir).map_err(|source| Error::Io {
            path: tmp_dir.clone(),
            source,
        })?;
        let name = file_name(key);
        let tmp = tmp_dir.join(format!("{name}.{}", std::process::id()));
        let bytes = match self.storage.download_to(key, &tmp).await {
            Ok(bytes) => bytes,
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                return Err(e);
            }
        };
        // Checked before it is put in place: a damaged download is never adopted.
        if let Err(e) = BundleDirectory::open(&tmp) {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        let path = self.dir.join(&name);
        fs::rename(&tmp, &path).map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
        {
            let mut state = lock(&self.state);
            state.clock += 1;
            let last_used = state.clock;
            state.bytes += bytes;
            if let Some(old) = state.entries.insert(
                key.to_string(),
                Entry {
                    bytes,
                    last_used,
                    pin: Weak::new(),
                },
            ) {
                state.bytes -= old.bytes;
            }
        }
        let split = self
            .open_cached(key)?
            .ok_or_else(|| Error::Format(format!("{key}: gone from the cache as it was added")))?;
        self.evict();
        Ok(split)
    }

    /// Removes `key` from the cache if no open directory holds it (a merge's inputs, marked
    /// once it is published, are read no more). Returns whether it was removed.
    pub fn remove(&self, key: &str) -> bool {
        let mut state = lock(&self.state);
        if state
            .entries
            .get(key)
            .is_none_or(|e| e.pin.strong_count() > 0)
        {
            return false;
        }
        if let Some(entry) = state.entries.remove(key) {
            state.bytes -= entry.bytes;
            let _ = fs::remove_file(self.dir.join(file_name(key)));
        }
        self.metrics
            .cache_bytes
            .store(state.bytes, std::sync::atomic::Ordering::Relaxed);
        true
    }

    /// Removes least recently used splits not in use until the cache is within its bound.
    fn evict(&self) {
        let mut state = lock(&self.state);
        while state.bytes > self.max_bytes {
            let victim = state
                .entries
                .iter()
                .filter(|(_, e)| e.pin.strong_count() == 0)
                .min_by_key(|(_, e)| e.last_used)
                .map(|(k, _)| k.clone());
            let Some(key) = victim else {
                // Everything cached is in use: over the bound until some is let go.
                break;
            };
            if let Some(entry) = state.entries.remove(&key) {
                state.bytes -= entry.bytes;
                let _ = fs::remove_file(self.dir.join(file_name(&key)));
                StorageMetrics::add(&self.metrics.cache_evictions, 1);
            }
        }
        self.metrics
            .cache_bytes
            .store(state.bytes, std::sync::atomic::Ordering::Relaxed);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::write_bundle;
    use object_store::memory::InMemory;
    use std::sync::atomic::Ordering;
    use tantivy::schema::{Schema, TEXT};
    use tantivy::{doc, Index};

    /// Uploads `n` one-document splits; returns their keys and one bundle's size.
    async fn splits(storage: &ObjectStorage, tmp: &Path, n: usize) -> (Vec<String>, u64) {
        let mut keys = Vec::new();
        let mut size = 0;
        for i in 0..n {
            let dir = tmp.join(format!("split{i}"));
            fs::create_dir_all(&dir).unwrap();
            let mut builder = Schema::builder();
            let body = builder.add_text_field("body", TEXT);
            let index = Index::create_in_dir(&dir, builder.build()).unwrap();
            let mut writer = index.writer_with_num_threads(1, 15_000_000).unwrap();
            writer
                .add_document(doc!(body => format!("doc {i}")))
                .unwrap();
            writer.commit().unwrap();
            drop(writer);
            let out = tmp.join(format!("split{i}.bundle"));
            size = write_bundle(&dir, &serde_json::json!({ "i": i }), &out).unwrap();
            let key = ObjectStorage::split_key("logs", &format!("s{i}"));
            storage.upload_file(&key, &out).await.unwrap();
            keys.push(key);
        }
        (keys, size)
    }

    #[tokio::test]
    async fn fetches_once_keeps_within_bound_and_survives_its_directory_deleted() {
        let tmp = tempfile::tempdir().unwrap();
        let metrics = Arc::new(StorageMetrics::default());
        let storage = ObjectStorage::from_store(Arc::new(InMemory::new()), metrics.clone());
        let (keys, size) = splits(&storage, tmp.path(), 4).await;
        let cache_dir = tmp.path().join("cache");
        // Room for two splits and a half.
        let cache = Arc::new(SplitCache::open(&cache_dir, size * 5 / 2, storage.clone()).unwrap());

        // Eight concurrent readers of one split: one download.
        let readers: Vec<_> = (0..8)
            .map(|_| {
                let cache = cache.clone();
                let key = keys[0].clone();
                tokio::spawn(async move { cache.open_split(&key).await.map(|s| s.key) })
            })
            .collect();
        for r in readers {
            assert_eq!(r.await.unwrap().unwrap(), keys[0]);
        }
        assert_eq!(metrics.downloads.load(Ordering::Relaxed), 1);
        assert_eq!(metrics.cache_misses.load(Ordering::Relaxed), 1);
        assert_eq!(metrics.cache_hits.load(Ordering::Relaxed), 7);

        // Hold split 0 open; fetch 1, 2, 3: the least recently used unpinned ones go.
        let held = cache.open_split(&keys[0]).await.unwrap();
        for key in &keys[1..] {
            let split = cache.open_split(key).await.unwrap();
            let index = Index::open(split.directory.clone()).unwrap();
            assert_eq!(index.reader().unwrap().searcher().num_docs(), 1);
        }
        assert!(cache.bytes() <= size * 5 / 2, "{} > bound", cache.bytes());
        assert!(cache.contains(&keys[0]), "a split in use is never evicted");
        assert!(cache.contains(&keys[3]));
        assert!(!cache.contains(&keys[1]));
        assert_eq!(metrics.cache_evictions.load(Ordering::Relaxed), 2);
        // The held split is still readable.
        let index = Index::open(held.directory.clone()).unwrap();
        assert_eq!(index.reader().unwrap().searcher().num_docs(), 1);
        drop(held);

        // The whole cache directory deleted while it serves: fetched again.
        fs::remove_dir_all(&cache_dir).unwrap();
        let split = cache.open_split(&keys[3]).await.unwrap();
        assert_eq!(split.directory.footer().meta, serde_json::json!({ "i": 3 }));
        assert!(cache_dir.join(file_name(&keys[3])).exists());

        // A restart adopts what is there and empties tmp/.
        fs::write(cache_dir.join("tmp").join("half.split.1"), b"partial").unwrap();
        drop(split);
        let reopened = SplitCache::open(&cache_dir, size * 5 / 2, storage.clone()).unwrap();
        assert!(reopened.contains(&keys[3]));
        assert_eq!(fs::read_dir(cache_dir.join("tmp")).unwrap().count(), 0);
        let before = metrics.downloads.load(Ordering::Relaxed);
        let open = reopened.open_split(&keys[3]).await.unwrap();
        assert_eq!(metrics.downloads.load(Ordering::Relaxed), before);

        // Removed on request only once nothing holds it open.
        assert!(!reopened.remove(&keys[3]), "in use");
        assert!(reopened.contains(&keys[3]));
        drop(open);
        assert!(reopened.remove(&keys[3]));
        assert!(!reopened.contains(&keys[3]));
        assert!(!cache_dir.join(file_name(&keys[3])).exists());
        assert_eq!(reopened.bytes(), 0);
        assert!(!reopened.remove(&keys[3]), "not cached");
    }

    #[tokio::test]
    async fn a_damaged_cached_file_is_fetched_again_and_a_missing_object_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        let metrics = Arc::new(StorageMetrics::default());
        let storage = ObjectStorage::from_store(Arc::new(InMemory::new()), metrics.clone());
        let (keys, _) = splits(&storage, tmp.path(), 1).await;
        let cache_dir = tmp.path().join("cache");
        let cache = SplitCache::open(&cache_dir, u64::MAX, storage.clone()).unwrap();
        drop(cache.open_split(&keys[0]).await.unwrap());
        fs::write(cache_dir.join(file_name(&keys[0])), b"garbage").unwrap();
        let split = cache.open_split(&keys[0]).await.unwrap();
        assert_eq!(split.directory.footer().meta, serde_json::json!({ "i": 0 }));
        assert_eq!(metrics.downloads.load(Ordering::Relaxed), 2);
        let missing = ObjectStorage::split_key("logs", "nope");
        assert!(matches!(
            cache.open_split(&missing).await,
            Err(Error::Object(object_store::Error::NotFound { .. }))
        ));
        assert!(!cache.contains(&missing));
        assert_eq!(fs::read_dir(cache_dir.join("tmp")).unwrap().count(), 0);
    }
}
