//! The indexer's settings, resolved from the configuration.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use trawl_config::{Config, StreamConfig};

use crate::stream::StreamSettings;

/// A hook that fails storage writes on demand, for fault tests (disk full). Returns the error
/// the next storage write (WAL append or fsync, hot-index commit, split seal, metastore record)
/// should fail with, or `None` to let it through.
pub type StorageFault = Arc<dyn Fn() -> Option<std::io::Error> + Send + Sync>;

/// The environment variable of the test hook: when it names a directory, every storage write of
/// the indexer fails with "no space left on device" while a file `enospc` exists in it, and the
/// process aborts at a crash point whose file ([`CRASH_AFTER_MERGE_PUBLISH`],
/// [`CRASH_AFTER_RETENTION_PUBLISH`]) exists in it. A test hook only (the end-to-end fault tests use it to fill the disk of a real `trawl indexer`);
/// unset, storage writes pay nothing for it.
pub const TEST_FAULT_DIR_ENV: &str = "TRAWL_TEST_FAULT_DIR";

/// The name of the file whose presence in the fault directory fills the disk.
pub const ENOSPC_FILE: &str = "enospc";

/// A hook called at named crash points, for fault tests: the end-to-end tests make it abort the
/// process there ([`crash_file_hook`]), unit tests record what the disk holds at that moment.
pub type CrashHook = Arc<dyn Fn(&str) + Send + Sync>;

/// Crash point right after the metastore recorded a merge (its output published, its inputs
/// retired), before the inputs leave the searchable set and their files are removed. Also the
/// name of the file in the [`TEST_FAULT_DIR_ENV`] directory that makes the process abort there.
pub const CRASH_AFTER_MERGE_PUBLISH: &str = "crash_after_merge_publish";

/// Crash point right after the metastore recorded the splits retention removes, before their
/// files are. Also the name of the fault file that makes the process abort there.
pub const CRASH_AFTER_RETENTION_PUBLISH: &str = "crash_after_retention_publish";

/// Crash point of the publisher right after a split's object was uploaded, before the publish
/// that makes it visible: the row stays staged, the object unpublished. Also the name of the
/// fault file that makes the process abort there.
pub const CRASH_AFTER_UPLOAD: &str = "crash_after_upload";

/// Crash point of the cluster's merger right after its merge is published, before it keeps
/// the output locally. Also the name of the fault file that makes the process abort there.
pub const CRASH_AFTER_CLUSTER_MERGE_PUBLISH: &str = "crash_after_cluster_merge_publish";

/// Crash point between the publisher's record that a published split's local copy is dropped
/// (`publisher.json`) and the indexer's (see `indexer::local_copies`). Also the name of the
/// fault file that makes the process abort there.
pub const CRASH_BEFORE_LOCAL_DROP: &str = "crash_before_local_drop";

/// The hook of [`TEST_FAULT_DIR_ENV`] for crash points: the process aborts (no destructor, no
/// shutdown: what a kill -9 leaves) at a point whose file exists in `dir`.
pub fn crash_file_hook(dir: PathBuf) -> CrashHook {
    Arc::new(move |point: &str| {
        if dir.join(point).exists() {
            tracing::error!(point, "test fault: aborting the process at a crash point");
            std::process::abort();
        }
    })
}

/// Where a storage write consults the fault hook, if one is set. Cloning shares the hook.
#[derive(Clone, Default)]
pub struct FaultPoint(Option<StorageFault>);

impl FaultPoint {
    pub fn new(hook: Option<StorageFault>) -> FaultPoint {
        FaultPoint(hook)
    }

    /// The error the write about to happen must fail with, if the hook says so.
    pub fn injected(&self) -> Option<std::io::Error> {
        self.0.as_ref().and_then(|hook| hook())
    }

    /// `Err` with the injected error, if any.
    pub fn check(&self) -> std::io::Result<()> {
        match self.injected() {
            Some(err) => Err(err),
            None => Ok(()),
        }
    }
}

impl std::fmt::Debug for FaultPoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "FaultPoint(set)"
        } else {
            "FaultPoint(none)"
        })
    }
}

/// The hook of [`TEST_FAULT_DIR_ENV`]: storage writes fail with `StorageFull` while
/// `<dir>/enospc` exists (one `stat` per write).
pub fn enospc_file_hook(dir: PathBuf) -> StorageFault {
    let flag = dir.join(ENOSPC_FILE);
    Arc::new(move || {
        flag.exists().then(|| {
            std::io::Error::new(
                std::io::ErrorKind::StorageFull,
                format!(
                    "no space left on device (test fault: {} exists)",
                    flag.display()
                ),
            )
        })
    })
}

/// A stream's own settings where its `[streams.<name>]` section gives them.
#[derive(Debug, Clone, Default)]
pub struct StreamOverrides {
    pub commit_interval: Option<Duration>,
    pub retention_max_age: Option<Duration>,
    pub retention_max_bytes: Option<u64>,
}

/// The least writer memory tantivy accepts per indexing thread.
pub(crate) const MIN_THREAD_MEMORY_BYTES: usize = 15_000_000;

/// The indexing threads of a writer on a machine of `cores` cores: one per two cores, at
/// least one, at most four. The other half of the cores parse and convert the requests, write
/// the WAL and merge: on two cores, two indexing threads cost 22–30 % more CPU than one for the
/// same ingest rate (each commit then writes two segments, and their term dictionaries and
/// merges are built twice; BENCHMARKS.md, twelfth session).
pub fn default_threads(cores: usize) -> usize {
    (cores / 2).clamp(1, 4)
}

/// How a stream's tantivy writer runs and what its indexes' doc store looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriterTuning {
    /// Indexing threads wanted (at least 1); a writer gets fewer when its memory does not
    /// allow them.
    pub threads: usize,
    pub docstore_block_bytes: usize,
    pub docstore_zstd_level: i32,
}

impl WriterTuning {
    /// Resolves `threads` (0: [`default_threads`] of this machine's cores).
    pub fn new(
        threads: usize,
        docstore_block_bytes: usize,
        docstore_zstd_level: i32,
    ) -> WriterTuning {
        let threads = match threads {
            0 => default_threads(std::thread::available_parallelism().map_or(1, |n| n.get())),
            n => n,
        };
        WriterTuning {
            threads,
            docstore_block_bytes: docstore_block_bytes.max(4096),
            docstore_zstd_level: docstore_zstd_level.clamp(1, 22),
        }
    }

    /// The settings a new index is created with.
    pub fn index_settings(&self) -> tantivy::IndexSettings {
        tantivy::IndexSettings {
            docstore_compression: tantivy::store::Compressor::Zstd(
                tantivy::store::ZstdCompressor {
                    compression_level: Some(self.docstore_zstd_level),
                },
            ),
            docstore_blocksize: self.docstore_block_bytes,
            ..tantivy::IndexSettings::default()
        }
    }
}

/// Everything the indexer needs to know, with durations and sizes resolved.
#[derive(Clone)]
pub struct IndexerSettings {
    pub data_dir: PathBuf,
    pub commit_interval: Duration,
    pub split_max_docs: u64,
    pub split_max_age: Duration,
    pub writer_memory_bytes: usize,
    /// The tantivy writer's threads and doc-store format.
    pub writer: WriterTuning,
    pub max_body_bytes: usize,
    pub max_decompressed_bytes: usize,
    pub max_line_bytes: usize,
    pub max_records_per_batch: usize,
    /// Bound of each stream's dead-letter store.
    pub dead_letter_max_bytes: u64,
    pub max_concurrent_ingest: usize,
    pub ingest_wait: Duration,
    pub merge_min_splits: usize,
    pub merge_max_docs: u64,
    pub merge_bucket: Duration,
    pub janitor_interval: Duration,
    pub source_mark_ttl: Duration,
    pub dedup_window: usize,
    pub wal_segment_bytes: u64,
    /// Per-stream overrides.
    pub streams: BTreeMap<String, StreamOverrides>,
    /// The `[streams.<name>]` sections, built-in streams included (the indexer opens every
    /// other one as a generic stream).
    pub declared_streams: BTreeMap<String, StreamConfig>,
    /// Whether a write to an unknown stream creates it (`indexer.auto_create_streams`).
    pub auto_create_streams: bool,
    /// Whether splits carry the source marks of their records (`SplitMeta::marks`): only
    /// with a shared tier (`[storage] uri`), whose publisher hands them to the metastore. On
    /// one machine they would only grow the commit payloads and the metastore file.
    pub split_marks: bool,
    /// How long a push batch is recognised when sent again (`indexer.batch_dedup_window_secs`).
    pub batch_dedup_window: Duration,
    /// Streams whose unsealed WAL records may be dropped when they are no longer configured.
    pub drop_unconfigured_streams: Vec<String>,
    /// Index name patterns of `_bulk` and the streams they write to
    /// (`query.elastic_index_patterns`: one table for both halves of the Elasticsearch API).
    pub elastic_index_patterns: BTreeMap<String, String>,
    /// Fails storage writes on demand (fault tests); `None` in production.
    pub storage_fault: Option<StorageFault>,
    /// Called at the crash points (fault tests); `None` in production.
    pub crash_hook: Option<CrashHook>,
}

impl IndexerSettings {
    /// Resolves the settings from a validated configuration.
    pub fn from_config(config: &Config) -> IndexerSettings {
        let c = &config.indexer;
        let streams = config
            .streams
            .iter()
            .map(|(name, s)| {
                (
                    name.clone(),
                    StreamOverrides {
                        commit_interval: s.commit_interval_ms.map(Duration::from_millis),
                        retention_max_age: s.retention_max_age_secs.map(Duration::from_secs),
                        retention_max_bytes: s.retention_max_bytes,
                    },
                )
            })
            .collect();
        IndexerSettings {
            data_dir: config.data_dir.clone(),
            commit_interval: Duration::from_millis(c.commit_interval_ms.max(1)),
            split_max_docs: c.split_max_docs.max(1),
            split_max_age: Duration::from_secs(c.split_max_age_secs.max(1)),
            writer_memory_bytes: c.writer_memory_bytes.max(MIN_THREAD_MEMORY_BYTES),
            writer: WriterTuning::new(
                c.indexing_threads,
                c.docstore_block_bytes,
                c.docstore_zstd_level,
            ),
            max_body_bytes: c.max_body_bytes,
            max_decompressed_bytes: c.max_decompressed_bytes,
            max_line_bytes: c.max_line_bytes,
            max_records_per_batch: c.max_records_per_batch,
            dead_letter_max_bytes: c.dead_letter_max_bytes,
            max_concurrent_ingest: c.max_concurrent_ingest.max(1),
            ingest_wait: Duration::from_millis(c.ingest_wait_ms),
            merge_min_splits: c.merge_min_splits.max(2),
            merge_max_docs: c.merge_max_docs,
            merge_bucket: Duration::from_secs(c.merge_bucket_secs.max(1)),
            janitor_interval: Duration::from_secs(c.janitor_interval_secs.max(1)),
            source_mark_ttl: Duration::from_secs(c.source_mark_ttl_secs),
            dedup_window: c.audit_dedup_window,
            wal_segment_bytes: 64 << 20,
            streams,
            declared_streams: config.streams.clone(),
            auto_create_streams: c.auto_create_streams,
            split_marks: !config.storage.uri.trim().is_empty(),
            batch_dedup_window: Duration::from_secs(c.batch_dedup_window_secs),
            drop_unconfigured_streams: c.drop_unconfigured_streams.clone(),
            elastic_index_patterns: config.query.elastic_index_patterns.clone(),
            storage_fault: None,
            crash_hook: None,
        }
    }

    /// Installs the [`TEST_FAULT_DIR_ENV`] hook when `dir` is given (the binary passes the
    /// variable's value); `None` leaves the settings as they are.
    pub fn with_test_fault_dir(mut self, dir: Option<PathBuf>) -> IndexerSettings {
        if let Some(dir) = dir {
            tracing::warn!(dir = %dir.display(), "storage fault hook installed (a test setting)");
            self.storage_fault = Some(enospc_file_hook(dir.clone()));
            self.crash_hook = Some(crash_file_hook(dir));
        }
        self
    }

    /// Calls the crash hook, if one is set, at crash point `point`.
    pub fn crash_point(&self, point: &str) {
        if let Some(hook) = &self.crash_hook {
            hook(point);
        }
    }

    /// The fault point every storage write consults.
    pub fn fault_point(&self) -> FaultPoint {
        FaultPoint::new(self.storage_fault.clone())
    }

    /// How the lines of a `logs`-shaped stream are mapped onto records
    /// (`streams.<name>.unwrap_agent_json`).
    pub fn map_options(&self, stream: &str) -> trawl_model::shippers::MapOptions {
        trawl_model::shippers::MapOptions {
            unwrap_agent_json: self
                .declared_streams
                .get(stream)
                .is_none_or(|s| s.unwrap_agent_json),
        }
    }

    /// The settings of one stream's indexing.
    pub fn stream_settings(&self, stream: &str) -> StreamSettings {
        let o = self.streams.get(stream).cloned().unwrap_or_default();
        StreamSettings {
            commit_interval: o.commit_interval.unwrap_or(self.commit_interval),
            split_max_docs: self.split_max_docs,
            split_max_age: self.split_max_age,
            writer_memory_bytes: self.writer_memory_bytes,
            writer: self.writer,
            dedup_window: self.dedup_window,
            split_marks: self.split_marks,
            retention_max_age: o.retention_max_age,
            retention_max_bytes: o.retention_max_bytes,
            fault: self.fault_point(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_indexing_threads_are_one_per_two_cores_between_one_and_four() {
        let threads: Vec<usize> = [1, 2, 3, 4, 6, 8, 16, 64]
            .into_iter()
            .map(default_threads)
            .collect();
        assert_eq!(threads, [1, 1, 1, 2, 3, 4, 4, 4]);
        assert_eq!(WriterTuning::new(3, 4096, 3).threads, 3);
    }

    #[test]
    fn the_enospc_file_turns_the_fault_on_and_off() {
        let dir = tempfile::tempdir().unwrap();
        let point = FaultPoint::new(Some(enospc_file_hook(dir.path().to_path_buf())));
        assert!(point.check().is_ok());
        std::fs::write(dir.path().join(ENOSPC_FILE), b"").unwrap();
        let err = point.check().unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::StorageFull);
        std::fs::remove_file(dir.path().join(ENOSPC_FILE)).unwrap();
        assert!(point.check().is_ok());
        assert!(FaultPoint::default().check().is_ok());
    }
}
