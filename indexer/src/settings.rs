//! The indexer's settings, resolved from the configuration.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use trawl_config::Config;

use crate::stream::StreamSettings;

/// A hook that fails storage writes on demand, for fault tests (disk full). Returns the error
/// the next WAL write should fail with, or `None` to let it through.
pub type StorageFault = Arc<dyn Fn() -> Option<std::io::Error> + Send + Sync>;

/// A stream's own settings where its `[streams.<name>]` section gives them.
#[derive(Debug, Clone, Default)]
pub struct StreamOverrides {
    pub commit_interval: Option<Duration>,
    pub retention_max_age: Option<Duration>,
    pub retention_max_bytes: Option<u64>,
}

/// Everything the indexer needs to know, with durations and sizes resolved.
#[derive(Clone)]
pub struct IndexerSettings {
    pub data_dir: PathBuf,
    pub commit_interval: Duration,
    pub split_max_docs: u64,
    pub split_max_age: Duration,
    pub writer_memory_bytes: usize,
    pub max_body_bytes: usize,
    pub max_decompressed_bytes: usize,
    pub max_line_bytes: usize,
    pub max_records_per_batch: usize,
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
    pub storage_fault: Option<StorageFault>,
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
            writer_memory_bytes: c.writer_memory_bytes.max(15_000_000),
            max_body_bytes: c.max_body_bytes,
            max_decompressed_bytes: c.max_decompressed_bytes,
            max_line_bytes: c.max_line_bytes,
            max_records_per_batch: c.max_records_per_batch,
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
            storage_fault: None,
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
            dedup_window: self.dedup_window,
            retention_max_age: o.retention_max_age,
            retention_max_bytes: o.retention_max_bytes,
        }
    }
}
