//! The indexer's Prometheus metrics.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StreamLabel {
    pub stream: String,
}

/// Counters and gauges of ingest, the WAL, commits, splits and merges.
#[derive(Default)]
pub struct Metrics {
    pub records_ingested: Family<StreamLabel, Counter>,
    pub bytes_ingested: Family<StreamLabel, Counter>,
    pub records_rejected: Family<StreamLabel, Counter>,
    pub records_dead_lettered: Family<StreamLabel, Counter>,
    pub records_deduplicated: Family<StreamLabel, Counter>,
    pub ingest_throttled: Counter,
    pub sources_taken_over: Counter,
    pub wal_bytes: Gauge,
    pub wal_fsyncs: Counter,
    pub commits: Family<StreamLabel, Counter>,
    pub splits: Family<StreamLabel, Gauge>,
    pub splits_sealed: Family<StreamLabel, Counter>,
    pub merges: Family<StreamLabel, Counter>,
    pub splits_deleted_by_retention: Family<StreamLabel, Counter>,
    /// Published splits whose local copy was dropped (the shared tier keeps them).
    pub local_copies_dropped: Family<StreamLabel, Counter>,
    pub batches_resent: Family<StreamLabel, Counter>,
    pub records_resent: Family<StreamLabel, Counter>,
    pub replay_unfit_records: Family<StreamLabel, Counter>,
    pub replay_dropped_records: Family<StreamLabel, Counter>,
    /// Records held unpublished of sources another indexer took over, removed.
    pub records_purged: Family<StreamLabel, Counter>,
}

fn label(stream: &str) -> StreamLabel {
    StreamLabel {
        stream: stream.to_string(),
    }
}

impl Metrics {
    /// Registers every metric under the `trawl_indexer` prefix.
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("trawl_indexer");
        r.register(
            "records_ingested",
            "Records made durable by ingest",
            self.records_ingested.clone(),
        );
        r.register(
            "bytes_ingested",
            "Bytes of accepted records",
            self.bytes_ingested.clone(),
        );
        r.register(
            "records_rejected",
            "Records refused at ingest",
            self.records_rejected.clone(),
        );
        r.register(
            "records_dead_lettered",
            "Refused records written to the dead-letter store",
            self.records_dead_lettered.clone(),
        );
        r.register(
            "records_deduplicated",
            "Records dropped because the index already held them",
            self.records_deduplicated.clone(),
        );
        r.register(
            "ingest_throttled",
            "Ingest requests answered 429",
            self.ingest_throttled.clone(),
        );
        r.register(
            "sources_taken_over",
            "Sources this indexer took over from another in the shared metastore",
            self.sources_taken_over.clone(),
        );
        r.register(
            "wal_bytes",
            "Bytes held by the write-ahead log",
            self.wal_bytes.clone(),
        );
        r.register(
            "wal_fsyncs",
            "Write-ahead log fsyncs",
            self.wal_fsyncs.clone(),
        );
        r.register("commits", "Hot index commits", self.commits.clone());
        r.register("splits", "Published splits", self.splits.clone());
        r.register(
            "splits_sealed",
            "Hot indexes sealed into splits",
            self.splits_sealed.clone(),
        );
        r.register("merges", "Split merges", self.merges.clone());
        r.register(
            "splits_deleted_by_retention",
            "Splits deleted by retention",
            self.splits_deleted_by_retention.clone(),
        );
        r.register(
            "local_copies_dropped",
            "Published splits whose local copy was dropped past storage.local_splits_max_bytes",
            self.local_copies_dropped.clone(),
        );
        r.register(
            "batches_resent",
            "Push batches recognised as resent within the dedup window and not indexed again",
            self.batches_resent.clone(),
        );
        r.register(
            "records_resent",
            "Records of push batches recognised as resent, not indexed again",
            self.records_resent.clone(),
        );
        r.register(
            "replay_unfit_records",
            "Acknowledged records that no longer fit their stream at WAL replay, indexed raw",
            self.replay_unfit_records.clone(),
        );
        r.register(
            "replay_dropped_records",
            "Unsealed records of unconfigured streams dropped at start \
             (indexer.drop_unconfigured_streams)",
            self.replay_dropped_records.clone(),
        );
        r.register(
            "records_purged",
            "Records of sources another indexer took over, removed from what this indexer held \
             unpublished (its hot index, unpublished splits, or its WAL at replay): the new \
             owner read them again",
            self.records_purged.clone(),
        );
    }

    pub fn purged(&self, stream: &str, records: u64) {
        self.records_purged
            .get_or_create(&label(stream))
            .inc_by(records);
    }

    pub fn resent(&self, stream: &str, records: u64) {
        self.batches_resent.get_or_create(&label(stream)).inc();
        self.records_resent
            .get_or_create(&label(stream))
            .inc_by(records);
    }

    pub fn replay_unfit(&self, stream: &str, records: u64) {
        self.replay_unfit_records
            .get_or_create(&label(stream))
            .inc_by(records);
    }

    pub fn ingested(&self, stream: &str, records: u64, bytes: u64) {
        self.records_ingested
            .get_or_create(&label(stream))
            .inc_by(records);
        self.bytes_ingested
            .get_or_create(&label(stream))
            .inc_by(bytes);
    }

    pub fn rejected(&self, stream: &str, records: u64) {
        self.records_rejected
            .get_or_create(&label(stream))
            .inc_by(records);
    }

    pub fn dead_lettered(&self, stream: &str, records: u64) {
        self.records_dead_lettered
            .get_or_create(&label(stream))
            .inc_by(records);
    }

    pub fn deduplicated(&self, stream: &str, records: u64) {
        self.records_deduplicated
            .get_or_create(&label(stream))
            .inc_by(records);
    }

    pub fn commit(&self, stream: &str) {
        self.commits.get_or_create(&label(stream)).inc();
    }

    pub fn sealed(&self, stream: &str) {
        self.splits_sealed.get_or_create(&label(stream)).inc();
    }

    pub fn set_splits(&self, stream: &str, count: usize) {
        self.splits.get_or_create(&label(stream)).set(count as i64);
    }
}
