//! Counters of object storage, the split cache and the metastore, read by the role that
//! exports `/metrics`.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters shared by [`crate::ObjectStorage`], [`crate::SplitCache`] and
/// [`crate::PgMetastore`]. All monotonic but the cache's current bytes.
#[derive(Debug, Default)]
pub struct StorageMetrics {
    pub uploads: AtomicU64,
    pub upload_bytes: AtomicU64,
    pub upload_errors: AtomicU64,
    pub downloads: AtomicU64,
    pub download_bytes: AtomicU64,
    /// Requests made to object storage (every GET, ranged GET, PUT, part, HEAD, LIST, DELETE).
    pub requests: AtomicU64,
    /// Splits opened by range (footer and hotcache from the object's tail), not fetched whole.
    pub ranged_opens: AtomicU64,
    /// Requests those openings made (1 to 3 each).
    pub ranged_open_requests: AtomicU64,
    /// Ranged reads of opened splits past their hotcache, and their bytes.
    pub range_reads: AtomicU64,
    pub range_read_bytes: AtomicU64,
    /// Splits opened by range waiting for, or in, their whole download into the cache.
    pub cache_fills_pending: AtomicU64,
    /// Searches whose list of published splits was kept from an earlier one (no change
    /// notified since), and those that read it from the metastore.
    pub published_list_hits: AtomicU64,
    pub published_list_misses: AtomicU64,
    /// 1 while a searcher listens for changes of the published splits (and so keeps lists).
    pub published_list_listening: AtomicU64,
    pub cache_hits: AtomicU64,
    pub cache_misses: AtomicU64,
    pub cache_evictions: AtomicU64,
    /// Bytes in the cache now.
    pub cache_bytes: AtomicU64,
    pub metastore_calls: AtomicU64,
    pub metastore_errors: AtomicU64,
    /// Sum of metastore call latencies, microseconds (with `metastore_calls`, the mean).
    pub metastore_micros: AtomicU64,
    /// Splits marked by the cluster's retention (the holder of its lease).
    pub retention_marked: AtomicU64,
    /// Merges the cluster's merger published (the holder of its lease), and the splits they
    /// replaced.
    pub cluster_merges: AtomicU64,
    pub cluster_merge_inputs: AtomicU64,
    /// Notices that another indexer took a source of this one over.
    pub takeover_notices: AtomicU64,
    /// Publisher rounds refused because another live process publishes under the same
    /// indexer id.
    pub duplicate_id_refusals: AtomicU64,
    /// 1 while the publisher holds the lease on its indexer id, else 0.
    pub id_lease_held: AtomicU64,
}

impl StorageMetrics {
    /// Adds `n` to `counter`.
    pub fn inc(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

impl StorageMetrics {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// A counter's value.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}
