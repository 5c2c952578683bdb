//! A split opened from object storage by range, without fetching it whole: the tail of the
//! object (its footer and hotcache) in one request, then only the byte ranges a search
//! touches.
//!
//! - **Opening** reads the last [`FIRST_TAIL_BYTES`] of the object (a suffix range, so its
//!   size need not be known). That holds the trailer, the footer and, for all but very large
//!   splits, the hotcache; when it does not, one more request reads what is missing before it
//!   (two more if the footer alone is longer). So a split opens in 1 request, at most 3.
//! - **Reads** that fall in the hotcache are served from it. Any other read is one ranged GET,
//!   and what was fetched is kept (up to [`MEMO_MAX_BYTES`] per split, oldest out) for the
//!   reads that follow: tantivy reads a column or a postings list whole and then slices it.
//! - **tantivy reads synchronously**: a read that must go to object storage blocks its thread
//!   on the runtime the directory was opened on. Search threads (`spawn_blocking`) may do
//!   that; an async task must open and search through it in `spawn_blocking` too.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tantivy::directory::error::OpenReadError;
use tantivy::directory::{Directory, FileHandle, OwnedBytes};
use tantivy::HasLen;
use tokio::runtime::{Handle, RuntimeFlavor};

use crate::bundle::{parse_footer, parse_trailer, read_only_methods, BundleFooter, TRAILER_LEN};
use crate::metrics::StorageMetrics;
use crate::object::ObjectStorage;
use crate::{Error, Result};

/// Bytes of the object's tail read to open it.
pub const FIRST_TAIL_BYTES: u64 = 1 << 20;
/// Bytes fetched by range kept per open split for the reads that follow.
pub const MEMO_MAX_BYTES: usize = 16 << 20;

/// A read-only tantivy directory over one split object in object storage.
#[derive(Clone)]
pub struct RangedDirectory {
    files: Arc<HashMap<PathBuf, Arc<RangedFile>>>,
    footer: Arc<BundleFooter>,
    /// Requests made to open it (1 to 3).
    open_requests: u32,
}

impl std::fmt::Debug for RangedDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RangedDirectory")
            .field("files", &self.footer.files.len())
            .field("hotcache", &self.footer.hotcache.len())
            .finish()
    }
}

/// The object a directory reads from, and what it has fetched.
struct Source {
    storage: ObjectStorage,
    key: String,
    runtime: Handle,
    memo: Mutex<Memo>,
}

#[derive(Default)]
struct Memo {
    /// Ranges of the object fetched, oldest first.
    entries: VecDeque<(Range<u64>, OwnedBytes)>,
    bytes: usize,
}

/// One file of the split: its place in the object and its hotcache slices.
struct RangedFile {
    source: Arc<Source>,
    start: u64,
    len: usize,
    /// `(range in the file, bytes)`, in order.
    hot: Vec<(Range<usize>, OwnedBytes)>,
}

impl std::fmt::Debug for RangedFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RangedFile")
            .field("key", &self.source.key)
            .field("start", &self.start)
            .field("len", &self.len)
            .finish()
    }
}

impl RangedDirectory {
    /// Opens the split object `key` by reading its tail. Must be called within a tokio
    /// runtime: later reads block on it.
    ///
    /// `at_most`, if known, is a size the object has at least (the metastore's `bytes`, the
    /// split's files without the footer): the first read asks for no more than that. S3
    /// answers a suffix longer than the object with the whole object, but some S3-protocol
    /// servers (s3s-fs 0.14) fail it.
    pub async fn open(
        storage: &ObjectStorage,
        key: &str,
        at_most: Option<u64>,
    ) -> Result<RangedDirectory> {
        let first = at_most.map_or(FIRST_TAIL_BYTES, |n| n.min(FIRST_TAIL_BYTES));
        RangedDirectory::open_with_tail(storage, key, first).await
    }

    /// [`RangedDirectory::open`], reading `first_tail` bytes first.
    pub async fn open_with_tail(
        storage: &ObjectStorage,
        key: &str,
        first_tail: u64,
    ) -> Result<RangedDirectory> {
        let metrics = storage.metrics().clone();
        let (tail, total) = storage
            .get_suffix(key, first_tail.max(TRAILER_LEN as u64))
            .await?;
        let mut requests = 1;
        // `bytes` holds the object's bytes from `have` to its end.
        let mut have = total - tail.len() as u64;
        let mut bytes = tail.to_vec();
        let footer_len = parse_trailer(&bytes)?;
        let footer_start = BundleFooter::tail_range(total, footer_len)
            .ok_or_else(|| Error::Format("the footer is longer than the bundle".into()))?
            .start;
        if footer_start < have {
            read_before(storage, key, footer_start, &mut bytes, &mut have).await?;
            requests += 1;
        }
        let footer = parse_footer(&bytes[(footer_start - have) as usize..])?;
        footer.check(footer_start)?;
        let hot_start = footer.hotcache_start(footer_start);
        if hot_start < have {
            read_before(storage, key, hot_start, &mut bytes, &mut have).await?;
            requests += 1;
        }
        let bytes = OwnedBytes::new(bytes);
        let source = Arc::new(Source {
            storage: storage.clone(),
            key: key.to_string(),
            runtime: Handle::current(),
            memo: Mutex::default(),
        });
        let mut hot_by_file: HashMap<&str, Vec<(Range<usize>, OwnedBytes)>> = HashMap::new();
        for hot in &footer.hotcache {
            let at = (hot.at - have) as usize;
            let len = (hot.end - hot.start) as usize;
            hot_by_file.entry(hot.file.as_str()).or_default().push((
                hot.start as usize..hot.end as usize,
                bytes.slice(at..at + len),
            ));
        }
        let mut files = HashMap::with_capacity(footer.files.len());
        for file in &footer.files {
            let mut hot = hot_by_file.remove(file.name.as_str()).unwrap_or_default();
            hot.sort_by_key(|(range, _)| range.start);
            files.insert(
                PathBuf::from(&file.name),
                Arc::new(RangedFile {
                    source: source.clone(),
                    start: file.start,
                    len: (file.end - file.start) as usize,
                    hot,
                }),
            );
        }
        StorageMetrics::add(&metrics.ranged_opens, 1);
        StorageMetrics::add(&metrics.ranged_open_requests, requests as u64);
        Ok(RangedDirectory {
            files: Arc::new(files),
            footer: Arc::new(footer),
            open_requests: requests,
        })
    }

    /// The bundle's footer.
    pub fn footer(&self) -> &BundleFooter {
        &self.footer
    }

    /// Requests made to open it.
    pub fn open_requests(&self) -> u32 {
        self.open_requests
    }

    fn file(&self, path: &Path) -> std::result::Result<&Arc<RangedFile>, OpenReadError> {
        self.files
            .get(path)
            .ok_or_else(|| OpenReadError::FileDoesNotExist(path.to_path_buf()))
    }
}

/// Prepends to `bytes` (the object's bytes from `*have` on) its bytes from `from`.
async fn read_before(
    storage: &ObjectStorage,
    key: &str,
    from: u64,
    bytes: &mut Vec<u8>,
    have: &mut u64,
) -> Result<()> {
    let range = from..*have;
    let before = storage.get_range(key, range.clone()).await?;
    if before.len() as u64 != range.end - range.start {
        return Err(Error::Format(format!(
            "{key}: {} bytes read for the range {range:?}",
            before.len()
        )));
    }
    let mut joined = Vec::with_capacity(before.len() + bytes.len());
    joined.extend_from_slice(&before);
    joined.append(bytes);
    *bytes = joined;
    *have = from;
    Ok(())
}

impl HasLen for RangedFile {
    fn len(&self) -> usize {
        self.len
    }
}

impl FileHandle for RangedFile {
    fn read_bytes(&self, range: Range<usize>) -> io::Result<OwnedBytes> {
        if range.start > range.end || range.end > self.len {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("range {range:?} outside a file of {} bytes", self.len),
            ));
        }
        if range.is_empty() {
            return Ok(OwnedBytes::empty());
        }
        // The last hot slice starting at or before the range.
        let at = self.hot.partition_point(|(r, _)| r.start <= range.start);
        if let Some((hot, bytes)) = at.checked_sub(1).and_then(|i| self.hot.get(i)) {
            if range.end <= hot.end {
                return Ok(bytes.slice(range.start - hot.start..range.end - hot.start));
            }
        }
        let start = self.start + range.start as u64;
        self.source.read(start..start + range.len() as u64)
    }
}

impl Source {
    fn read(&self, range: Range<u64>) -> io::Result<OwnedBytes> {
        {
            let memo = self.memo.lock().unwrap_or_else(|p| p.into_inner());
            for (have, bytes) in memo.entries.iter().rev() {
                if have.start <= range.start && range.end <= have.end {
                    let from = (range.start - have.start) as usize;
                    let to = (range.end - have.start) as usize;
                    return Ok(bytes.slice(from..to));
                }
            }
        }
        let metrics = self.storage.metrics().clone();
        let fetched = block_on(
            &self.runtime,
            self.storage.get_range(&self.key, range.clone()),
        )
        .map_err(|e| io::Error::other(format!("{}: reading {range:?}: {e}", self.key)))?;
        if fetched.len() as u64 != range.end - range.start {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "{}: {} bytes read for the range {range:?}",
                    self.key,
                    fetched.len()
                ),
            ));
        }
        StorageMetrics::add(&metrics.range_reads, 1);
        StorageMetrics::add(&metrics.range_read_bytes, fetched.len() as u64);
        let bytes = OwnedBytes::new(fetched.to_vec());
        let mut memo = self.memo.lock().unwrap_or_else(|p| p.into_inner());
        memo.bytes += bytes.len();
        memo.entries.push_back((range, bytes.clone()));
        while memo.bytes > MEMO_MAX_BYTES && memo.entries.len() > 1 {
            if let Some((_, old)) = memo.entries.pop_front() {
                memo.bytes -= old.len();
            }
        }
        Ok(bytes)
    }
}

/// Runs `future` to completion on `runtime` from synchronous code: directly outside any
/// runtime or on a `spawn_blocking` thread, through `block_in_place` on a worker of a
/// multi-threaded runtime, and on a helper thread under a current-thread runtime (whose own
/// thread is the one blocked).
fn block_on<F>(runtime: &Handle, future: F) -> F::Output
where
    F: Future + Send,
    F::Output: Send,
{
    match Handle::try_current() {
        Err(_) => runtime.block_on(future),
        Ok(current) if current.runtime_flavor() == RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(|| runtime.block_on(future))
        }
        Ok(_) => {
            std::thread::scope(
                |scope| match scope.spawn(|| runtime.block_on(future)).join() {
                    Ok(output) => output,
                    Err(panic) => std::panic::resume_unwind(panic),
                },
            )
        }
    }
}

impl Directory for RangedDirectory {
    fn get_file_handle(
        &self,
        path: &Path,
    ) -> std::result::Result<Arc<dyn FileHandle>, OpenReadError> {
        Ok(self.file(path)?.clone())
    }

    fn exists(&self, path: &Path) -> std::result::Result<bool, OpenReadError> {
        Ok(self.files.contains_key(path))
    }

    fn atomic_read(&self, path: &Path) -> std::result::Result<Vec<u8>, OpenReadError> {
        let file = self.file(path)?;
        let bytes = file
            .read_bytes(0..file.len)
            .map_err(|io_error| OpenReadError::IoError {
                io_error: Arc::new(io_error),
                filepath: path.to_path_buf(),
            })?;
        Ok(bytes.as_slice().to_vec())
    }

    read_only_methods!();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::{write_bundle, BundleDirectory};
    use object_store::memory::InMemory;
    use std::fs;
    use std::sync::atomic::Ordering;
    use tantivy::collector::{Count, TopDocs};
    use tantivy::query::QueryParser;
    use tantivy::schema::{Schema, Value, FAST, INDEXED, STORED, STRING, TEXT};
    use tantivy::{doc, Index, Order, TantivyDocument};

    /// A sealed split of 3,000 documents in 3 segments: a text body, a keyword, a fast
    /// timestamp.
    fn split(dir: &Path) {
        let mut builder = Schema::builder();
        let body = builder.add_text_field("body", TEXT | STORED);
        let level = builder.add_text_field("level", STRING | STORED | FAST);
        let ts = builder.add_i64_field("ts", INDEXED | FAST | STORED);
        let index = Index::create_in_dir(dir, builder.build()).unwrap();
        let mut writer = index.writer_with_num_threads(1, 15_000_000).unwrap();
        writer.set_merge_policy(Box::new(tantivy::indexer::NoMergePolicy));
        for i in 0..3_000i64 {
            let level_value = if i % 7 == 0 { "error" } else { "info" };
            writer
                .add_document(doc!(
                    body => format!("request {i} from host-{} took {} ms", i % 13, i % 101),
                    level => level_value,
                    ts => i,
                ))
                .unwrap();
            if i % 1_000 == 999 {
                writer.commit().unwrap();
            }
        }
        writer.wait_merging_threads().unwrap();
    }

    /// What the same searches find through `index`: counts, the newest five errors' bodies.
    fn answers(index: &Index) -> (usize, usize, Vec<String>) {
        let schema = index.schema();
        let body = schema.get_field("body").unwrap();
        let level = schema.get_field("level").unwrap();
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .unwrap();
        let searcher: tantivy::Searcher = tantivy::IndexReader::searcher(&reader);
        let parser = QueryParser::for_index(index, vec![body, level]);
        let phrase = parser.parse_query("\"from host-3\"").unwrap();
        let errors = parser.parse_query("level:error").unwrap();
        let newest: Vec<(Option<i64>, tantivy::DocAddress)> = searcher
            .search(
                &errors,
                &TopDocs::with_limit(5).order_by_fast_field("ts", Order::Desc),
            )
            .unwrap();
        let bodies = newest
            .into_iter()
            .map(|(_, address)| {
                let doc: TantivyDocument = searcher.doc(address).unwrap();
                doc.get_first(body)
                    .and_then(|v| v.as_str())
                    .unwrap()
                    .to_string()
            })
            .collect();
        (
            searcher.search(&phrase, &Count).unwrap(),
            searcher.search(&errors, &Count).unwrap(),
            bodies,
        )
    }

    use tantivy::ReloadPolicy;

    async fn uploaded(tmp: &Path, storage: &ObjectStorage) -> (String, std::path::PathBuf) {
        let dir = tmp.join("split");
        fs::create_dir(&dir).unwrap();
        split(&dir);
        let out = tmp.join("s.split");
        write_bundle(&dir, &serde_json::json!({"id": "s"}), &out).unwrap();
        let key = ObjectStorage::split_key("logs", "s");
        storage.upload_file(&key, &out).await.unwrap();
        (key, out)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_split_opens_in_one_request_and_answers_as_the_whole_object_does() {
        let tmp = tempfile::tempdir().unwrap();
        let metrics = Arc::new(StorageMetrics::default());
        let storage = ObjectStorage::from_store(Arc::new(InMemory::new()), metrics.clone());
        let (key, out) = uploaded(tmp.path(), &storage).await;
        let expected = answers(&Index::open(BundleDirectory::open(&out).unwrap()).unwrap());
        assert_eq!(expected.0, 231, "3000 / 13, rounded up");
        assert_eq!(expected.1, 429, "3000 / 7, rounded up");
        assert_eq!(expected.2[0], "request 2996 from host-6 took 67 ms");

        let requests = || metrics.requests.load(Ordering::Relaxed);
        let before = requests();
        let dir = RangedDirectory::open(&storage, &key, None).await.unwrap();
        assert_eq!(requests() - before, 1, "the tail holds footer and hotcache");
        assert_eq!(dir.open_requests(), 1);
        assert!(!dir.footer().hotcache.is_empty());
        assert_eq!(dir.footer().meta, serde_json::json!({"id": "s"}));

        // Opening the index, its segments, term dictionaries and doc stores: no request.
        let opened = {
            let dir = dir.clone();
            tokio::task::spawn_blocking(move || {
                let index = Index::open(dir).unwrap();
                let reader: tantivy::IndexReader = index
                    .reader_builder()
                    .reload_policy(ReloadPolicy::Manual)
                    .try_into()
                    .unwrap();
                let searcher = reader.searcher();
                let body = index.schema().get_field("body").unwrap();
                for segment in searcher.segment_readers() {
                    segment.inverted_index(body).unwrap();
                    segment.get_store_reader(0).unwrap();
                }
                (index, searcher.segment_readers().len())
            })
            .await
            .unwrap()
        };
        assert_eq!(opened.1, 3);
        assert_eq!(requests() - before, 1, "opened from the hotcache alone");

        // Searching reads by range: the same answers, and the object never fetched whole.
        let index = opened.0;
        let got = tokio::task::spawn_blocking(move || answers(&index))
            .await
            .unwrap();
        assert_eq!(got, expected);
        assert_eq!(metrics.downloads.load(Ordering::Relaxed), 0);
        let reads = metrics.range_reads.load(Ordering::Relaxed);
        assert_eq!(requests() - before, 1 + reads);
        let object = fs::metadata(&out).unwrap().len();
        assert!(
            metrics.range_read_bytes.load(Ordering::Relaxed) < object / 10,
            "a search reads the few parts of the split it touches"
        );

        // The same searches again: what was fetched is reused.
        let index = Index::open(dir).unwrap();
        let again = tokio::task::spawn_blocking(move || answers(&index))
            .await
            .unwrap();
        assert_eq!(again, expected);
        assert_eq!(metrics.range_reads.load(Ordering::Relaxed), reads);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_short_first_read_takes_at_most_three_requests_and_old_bundles_still_open() {
        let tmp = tempfile::tempdir().unwrap();
        let metrics = Arc::new(StorageMetrics::default());
        let storage = ObjectStorage::from_store(Arc::new(InMemory::new()), metrics.clone());
        let (key, out) = uploaded(tmp.path(), &storage).await;
        let expected = answers(&Index::open(BundleDirectory::open(&out).unwrap()).unwrap());

        // A first read of the trailer alone: then the footer, then the hotcache.
        let dir = RangedDirectory::open_with_tail(&storage, &key, 0)
            .await
            .unwrap();
        assert_eq!(dir.open_requests(), 3);
        let index = Index::open(dir).unwrap();
        let got = tokio::task::spawn_blocking(move || answers(&index))
            .await
            .unwrap();
        assert_eq!(got, expected);

        // A version 1 bundle (no hotcache): opened in one request, everything read by range.
        let bytes = fs::read(&out).unwrap();
        let footer = crate::bundle::read_footer_from_file(&out).unwrap();
        let data_end = footer.files.last().unwrap().end as usize;
        let old = BundleFooter {
            version: 1,
            hotcache: Vec::new(),
            ..footer
        };
        let footer_bytes = serde_json::to_vec(&old).unwrap();
        let mut v1 = bytes[..data_end].to_vec();
        v1.extend_from_slice(&footer_bytes);
        v1.extend_from_slice(&(footer_bytes.len() as u64).to_le_bytes());
        v1.extend_from_slice(&1u32.to_le_bytes());
        v1.extend_from_slice(crate::bundle::BUNDLE_MAGIC);
        let v1_path = tmp.path().join("v1.split");
        fs::write(&v1_path, &v1).unwrap();
        let v1_key = ObjectStorage::split_key("logs", "v1");
        storage.upload_file(&v1_key, &v1_path).await.unwrap();
        let mapped = answers(&Index::open(BundleDirectory::open(&v1_path).unwrap()).unwrap());
        assert_eq!(mapped, expected);
        let dir = RangedDirectory::open(&storage, &v1_key, None)
            .await
            .unwrap();
        assert_eq!(dir.open_requests(), 1);
        assert!(dir.footer().hotcache.is_empty());
        let index = Index::open(dir).unwrap();
        let got = tokio::task::spawn_blocking(move || answers(&index))
            .await
            .unwrap();
        assert_eq!(got, expected);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_missing_or_foreign_object_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        let metrics = Arc::new(StorageMetrics::default());
        let storage = ObjectStorage::from_store(Arc::new(InMemory::new()), metrics);
        let missing = ObjectStorage::split_key("logs", "nope");
        assert!(matches!(
            RangedDirectory::open(&storage, &missing, None).await,
            Err(Error::Object(object_store::Error::NotFound { .. }))
        ));
        let foreign = tmp.path().join("foreign");
        fs::write(&foreign, vec![7u8; 4096]).unwrap();
        let key = ObjectStorage::split_key("logs", "foreign");
        storage.upload_file(&key, &foreign).await.unwrap();
        assert!(matches!(
            RangedDirectory::open(&storage, &key, None).await,
            Err(Error::Format(_))
        ));
    }
}
