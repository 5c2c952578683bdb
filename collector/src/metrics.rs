//! The collector's Prometheus metrics.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// At most this many files get their own `checkpoint_lag_bytes` series; past it, new files are
/// not given one (label cardinality stays bounded on nodes with very many files).
pub const MAX_LAG_SERIES: usize = 2000;

/// Label set of per-file series.
pub type FileLabel = Vec<(String, String)>;

/// Handles to every metric; cheap to clone (each is an `Arc` inside).
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    pub files_tailed: Gauge,
    pub bytes_read: Counter,
    pub records_read: Counter,
    pub records_shipped: Counter,
    pub batches_shipped: Counter,
    pub batches_retried: Counter,
    /// By `status`: the HTTP status, or `unreachable` when no answer came.
    pub batches_refused: Family<FileLabel, Counter>,
    pub batches_split: Counter,
    pub stuck_seconds: Gauge,
    /// By `reason`: `payload_too_large` or `rejected`.
    pub dead_letter_records: Family<FileLabel, Counter>,
    pub dead_letter_errors: Counter,
    pub batches_dropped: Counter,
    pub buffer_bytes: Gauge,
    pub checkpoint_lag_bytes: Family<FileLabel, Gauge>,
    pub parse_failures: Counter,
    pub rate_limited_records: Counter,
    pub offset_gaps: Counter,
    pub failovers: Counter,
    pub webhook_events: Counter,
    pub webhook_duplicates: Counter,
    pub backpressure_seconds: Counter<f64, std::sync::atomic::AtomicU64>,
    pub kube_pods_cached: Gauge,
    pub kube_watch_restarts: Counter,
    pub kube_watch_errors: Counter,
    pub pods_excluded_by_labels: Counter,
    pub events_leader: Gauge,
    pub events_shipped: Counter,
    pub events_relists: Counter,
    pub events_errors: Counter,
    pub journal_entries: Counter,
    pub journal_errors: Counter,
    lag_series: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Metrics {
    /// Registers every metric in `registry` under its conventional name
    /// (`trawl_collector_...`; counters get `_total` appended by the encoder). Long because it
    /// is the list of the collector's metrics with their help texts, one registration each.
    pub fn register(&self, registry: &mut Registry) {
        let r = registry;
        r.register(
            "trawl_collector_files_tailed",
            "Files currently open for tailing",
            self.files_tailed.clone(),
        );
        r.register(
            "trawl_collector_bytes_read",
            "Bytes read from log files",
            self.bytes_read.clone(),
        );
        r.register(
            "trawl_collector_records_read",
            "Records built from log files, audit logs and the webhook spool",
            self.records_read.clone(),
        );
        r.register(
            "trawl_collector_records_shipped",
            "Records acknowledged by the indexer",
            self.records_shipped.clone(),
        );
        r.register(
            "trawl_collector_batches_shipped",
            "Batches acknowledged by the indexer",
            self.batches_shipped.clone(),
        );
        r.register(
            "trawl_collector_batches_retried",
            "Batch deliveries retried after an error",
            self.batches_retried.clone(),
        );
        r.register(
            "trawl_collector_batches_refused",
            "Batch deliveries the indexer refused as a whole or did not answer, by status \
             (unreachable: no answer); each batch is kept and retried, or split after a 413",
            self.batches_refused.clone(),
        );
        r.register(
            "trawl_collector_batches_split",
            "Batches (or parts) split in two after a 413 and sent again",
            self.batches_split.clone(),
        );
        r.register(
            "trawl_collector_stuck_seconds",
            "How long the oldest unacknowledged batch has been refused or unanswered, as of \
             the last attempt (0 while the indexer takes batches)",
            self.stuck_seconds.clone(),
        );
        r.register(
            "trawl_collector_dead_letter_records",
            "Records the indexer will never accept, written to the dead-letter file, by reason \
             (payload_too_large: refused alone as too large; rejected: refused by line number)",
            self.dead_letter_records.clone(),
        );
        r.register(
            "trawl_collector_dead_letter_errors",
            "Failed writes of the dead-letter file (the batch is kept and the write retried)",
            self.dead_letter_errors.clone(),
        );
        r.register(
            "trawl_collector_batches_dropped",
            "Batches dropped because the disk buffer was full (drop_policy = drop_newest)",
            self.batches_dropped.clone(),
        );
        r.register(
            "trawl_collector_buffer_bytes",
            "Bytes of batches in the disk buffer awaiting acknowledgement",
            self.buffer_bytes.clone(),
        );
        r.register(
            "trawl_collector_checkpoint_lag_bytes",
            "Bytes of a file not yet acknowledged by the indexer",
            self.checkpoint_lag_bytes.clone(),
        );
        r.register(
            "trawl_collector_parse_failures",
            "Lines that did not parse (kept as raw records for container logs)",
            self.parse_failures.clone(),
        );
        r.register(
            "trawl_collector_rate_limited_records",
            "Records held back by a namespace rate limit",
            self.rate_limited_records.clone(),
        );
        r.register(
            "trawl_collector_offset_gaps",
            "Offset gaps the indexer reported that could not be filled (data lost)",
            self.offset_gaps.clone(),
        );
        r.register(
            "trawl_collector_failovers",
            "Times batches moved to the next of collector.indexer_urls",
            self.failovers.clone(),
        );
        r.register(
            "trawl_collector_webhook_events",
            "Audit events received on the webhook and spooled",
            self.webhook_events.clone(),
        );
        r.register(
            "trawl_collector_webhook_duplicates",
            "Audit events received on the webhook twice and ignored",
            self.webhook_duplicates.clone(),
        );
        r.register(
            "trawl_collector_backpressure_seconds",
            "Time reading was paused because the disk buffer was full",
            self.backpressure_seconds.clone(),
        );
        r.register(
            "trawl_collector_kubernetes_pods_cached",
            "Pods whose Kubernetes metadata is cached (deleted ones in their grace period included)",
            self.kube_pods_cached.clone(),
        );
        r.register(
            "trawl_collector_kubernetes_watch_restarts",
            "Relists of a Kubernetes watch after the first list (pods or namespaces)",
            self.kube_watch_restarts.clone(),
        );
        r.register(
            "trawl_collector_kubernetes_watch_errors",
            "Errors of the Kubernetes watches (each retried with backoff)",
            self.kube_watch_errors.clone(),
        );
        r.register(
            "trawl_collector_pods_excluded_by_labels",
            "Pods whose log files are not collected because of their labels",
            self.pods_excluded_by_labels.clone(),
        );
        r.register(
            "trawl_collector_events_leader",
            "1 while this collector holds the Kubernetes Events lease and collects the Events",
            self.events_leader.clone(),
        );
        r.register(
            "trawl_collector_events_shipped",
            "Kubernetes Event updates shipped to the indexer's events stream",
            self.events_shipped.clone(),
        );
        r.register(
            "trawl_collector_events_relists",
            "Lists of the cluster's Events (the first, and after a watch expired with 410 Gone)",
            self.events_relists.clone(),
        );
        r.register(
            "trawl_collector_journal_entries",
            "Journal entries shipped to the indexer's journal stream (acknowledged)",
            self.journal_entries.clone(),
        );
        r.register(
            "trawl_collector_journal_errors",
            "Errors reading the journal (journalctl ended, an unreadable line) or shipping it",
            self.journal_errors.clone(),
        );
        r.register(
            "trawl_collector_events_errors",
            "Errors of the Events watch, the lease or their shipping (each retried with backoff)",
            self.events_errors.clone(),
        );
    }

    /// Counts a refused or unanswered delivery under `status`.
    pub fn refused(&self, status: &str) {
        self.batches_refused
            .get_or_create(&vec![("status".to_string(), status.to_string())])
            .inc();
    }

    /// Counts `n` records written to the dead-letter file for `reason`.
    pub fn dead_lettered(&self, reason: &str, n: u64) {
        self.dead_letter_records
            .get_or_create(&vec![("reason".to_string(), reason.to_string())])
            .inc_by(n);
    }

    /// The label set of a file's series.
    pub fn file_label(path: &str) -> FileLabel {
        vec![("file".to_string(), path.to_string())]
    }

    /// Sets the lag of `path`, creating its series only below [`MAX_LAG_SERIES`].
    pub fn set_lag(&self, path: &str, lag: u64) {
        use std::sync::atomic::Ordering;
        let label = Metrics::file_label(path);
        let value = i64::try_from(lag).unwrap_or(i64::MAX);
        if let Some(g) = self.checkpoint_lag_bytes.get(&label) {
            g.set(value);
            return;
        }
        if self.lag_series.load(Ordering::Relaxed) < MAX_LAG_SERIES {
            self.lag_series.fetch_add(1, Ordering::Relaxed);
            self.checkpoint_lag_bytes.get_or_create(&label).set(value);
        }
    }

    /// Removes the lag series of a released file.
    pub fn clear_lag(&self, path: &str) {
        if self.checkpoint_lag_bytes.remove(&Metrics::file_label(path)) {
            self.lag_series
                .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_conventional_names() {
        let m = Metrics::default();
        let mut registry = Registry::default();
        m.register(&mut registry);
        m.bytes_read.inc_by(42);
        m.set_lag("/p/0.log", 7);
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry).unwrap();
        assert!(out.contains("trawl_collector_bytes_read_total 42"), "{out}");
        assert!(
            out.contains("trawl_collector_checkpoint_lag_bytes{file=\"/p/0.log\"} 7"),
            "{out}"
        );
        m.clear_lag("/p/0.log");
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry).unwrap();
        assert!(!out.contains("/p/0.log"));
    }
}
