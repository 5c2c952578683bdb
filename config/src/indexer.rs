//! `[indexer]`: ingest limits, commits, splits, merges and housekeeping.

use serde::{Deserialize, Serialize};

/// `[indexer]` section. Used by `trawl indexer` and by `trawl standalone`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IndexerConfig {
    /// This indexer's name in a shared (PostgreSQL) metastore: the owner of the splits it
    /// publishes. Empty (the default): the host name, a pod's stable name in a StatefulSet.
    pub id: String,
    /// How often the hot index is committed (and becomes searchable). A stream may override it
    /// with `streams.<name>.commit_interval_ms`. Default 1000.
    pub commit_interval_ms: u64,
    /// The hot index is sealed into a split when it holds this many documents. Default 5000000.
    pub split_max_docs: u64,
    /// ... or when its oldest document was indexed this long ago. Default 600.
    pub split_max_age_secs: u64,
    /// Memory budget of the tantivy index writer (tantivy needs at least 15 MB per indexing
    /// thread). Default 128 MiB.
    pub writer_memory_bytes: usize,
    /// Indexing threads of the tantivy writer. 0 picks one per two cores (at least one, at
    /// most 4), and no more than `writer_memory_bytes` allows at 15 MB a thread. Default 0.
    pub indexing_threads: usize,
    /// Uncompressed size of a doc-store block: the unit compressed together, and what a hit
    /// decompresses to read its document. Larger blocks compress better and cost more per
    /// hit. Applies to indexes created from then on. Default 262144 (256 KiB).
    pub docstore_block_bytes: usize,
    /// zstd level of the doc store (1 to 22). Applies to indexes created from then on.
    /// Default 3.
    pub docstore_zstd_level: i32,
    /// Largest ingest request body as sent (compressed, if it is); larger answers 413.
    /// Default 32 MiB.
    pub max_body_bytes: usize,
    /// Largest ingest request body after decompression; larger answers 413. Default 128 MiB.
    pub max_decompressed_bytes: usize,
    /// Longest NDJSON line accepted; a longer line is rejected alone. Default 4 MiB.
    pub max_line_bytes: usize,
    /// Most records in one ingest request; more answers 413. Default 100000.
    pub max_records_per_batch: usize,
    /// Bound of the dead-letter store of each stream (the lines ingest refused, kept with their
    /// error under `<data_dir>/indexer/dead-letters/`); past it the oldest half is dropped.
    /// Default 64 MiB.
    pub dead_letter_max_bytes: u64,
    /// Ingest requests processed at once; further requests wait for a slot. Default 4.
    pub max_concurrent_ingest: usize,
    /// How long an ingest request waits for a slot before it is answered 429 with
    /// `Retry-After`. Default 5000.
    pub ingest_wait_ms: u64,
    /// Splits of one stream and time bucket are merged once the bucket holds this many.
    /// Default 8.
    pub merge_min_splits: usize,
    /// A merge never produces a split larger than this many documents. Default 20000000.
    pub merge_max_docs: u64,
    /// Width of the time buckets merges stay within, so time pruning keeps working.
    /// Default 86400 (one day).
    pub merge_bucket_secs: u64,
    /// How often retention, merge planning and garbage collection run. Default 60.
    pub janitor_interval_secs: u64,
    /// Source marks (the exactly-once positions per file) of sources not seen for this long are
    /// garbage-collected. Default 604800 (7 days).
    pub source_mark_ttl_secs: u64,
    /// Audit events deduplicated by (`audit_id`, `stage`) over the last this many events.
    /// Default 1000000.
    pub audit_dedup_window: usize,
    /// Whether ingesting into an undeclared stream creates it (with the defaults of a
    /// `[streams.<name>]` section). When `false`, such a request answers 404. Default `false`.
    pub auto_create_streams: bool,
    /// How long a push batch (`_bulk`, the NDJSON ingest API, OTLP, Loki push) is remembered
    /// after it was made durable: the same decoded body sent again to the same stream within
    /// this window is answered as the first time and not indexed again. Beyond it a resend is
    /// indexed again (at-least-once). At least 60. Default 3600 (one hour).
    pub batch_dedup_window_secs: u64,
    /// Streams no longer configured whose unsealed write-ahead log data may be dropped at start.
    /// Without its name here, a stream removed from the configuration while the log still holds
    /// records of it stops the start with an error naming it. Default empty.
    pub drop_unconfigured_streams: Vec<String>,
}

impl Default for IndexerConfig {
    fn default() -> Self {
        IndexerConfig {
            id: String::new(),
            commit_interval_ms: default_commit_interval_ms(),
            split_max_docs: default_split_max_docs(),
            split_max_age_secs: default_split_max_age_secs(),
            writer_memory_bytes: default_writer_memory_bytes(),
            indexing_threads: 0,
            docstore_block_bytes: default_docstore_block_bytes(),
            docstore_zstd_level: default_docstore_zstd_level(),
            max_body_bytes: default_max_body_bytes(),
            max_decompressed_bytes: default_max_decompressed_bytes(),
            max_line_bytes: default_max_line_bytes(),
            max_records_per_batch: default_max_records_per_batch(),
            dead_letter_max_bytes: default_dead_letter_max_bytes(),
            max_concurrent_ingest: default_max_concurrent_ingest(),
            ingest_wait_ms: default_ingest_wait_ms(),
            merge_min_splits: default_merge_min_splits(),
            merge_max_docs: default_merge_max_docs(),
            merge_bucket_secs: default_merge_bucket_secs(),
            janitor_interval_secs: default_janitor_interval_secs(),
            source_mark_ttl_secs: default_source_mark_ttl_secs(),
            audit_dedup_window: default_audit_dedup_window(),
            auto_create_streams: false,
            batch_dedup_window_secs: default_batch_dedup_window_secs(),
            drop_unconfigured_streams: Vec::new(),
        }
    }
}

fn default_commit_interval_ms() -> u64 {
    1000
}

fn default_split_max_docs() -> u64 {
    5_000_000
}

fn default_split_max_age_secs() -> u64 {
    600
}

fn default_writer_memory_bytes() -> usize {
    128 * 1024 * 1024
}

fn default_docstore_block_bytes() -> usize {
    256 * 1024
}

fn default_docstore_zstd_level() -> i32 {
    3
}

fn default_max_body_bytes() -> usize {
    32 * 1024 * 1024
}

fn default_max_decompressed_bytes() -> usize {
    128 * 1024 * 1024
}

fn default_dead_letter_max_bytes() -> u64 {
    64 * 1024 * 1024
}

fn default_max_line_bytes() -> usize {
    4 * 1024 * 1024
}

fn default_max_records_per_batch() -> usize {
    100_000
}

fn default_max_concurrent_ingest() -> usize {
    4
}

fn default_ingest_wait_ms() -> u64 {
    5000
}

fn default_merge_min_splits() -> usize {
    8
}

fn default_merge_max_docs() -> u64 {
    20_000_000
}

fn default_merge_bucket_secs() -> u64 {
    86_400
}

fn default_janitor_interval_secs() -> u64 {
    60
}

fn default_source_mark_ttl_secs() -> u64 {
    7 * 86_400
}

fn default_audit_dedup_window() -> usize {
    1_000_000
}

fn default_batch_dedup_window_secs() -> u64 {
    3600
}
