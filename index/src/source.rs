//! Where the query side gets a stream's searchable state from: one trait for snapshots, live
//! tail and statistics, implemented by the indexer over its own hot indexes and splits.

use std::sync::Arc;

use serde::Serialize;
use tokio::sync::broadcast;
use trawl_model::Timestamp;

use crate::{Result, StreamSnapshot};

/// The documents of one durable batch, for live tail.
pub struct TailBatch {
    pub docs: Vec<tantivy::TantivyDocument>,
}

/// Statistics of a stream (`GET /api/v1/streams`, `_cat/indices`).
#[derive(Debug, Clone, Serialize)]
pub struct StreamStats {
    pub name: String,
    pub docs: u64,
    /// Index bytes on disk: the hot index and the splits, not the WAL.
    pub bytes: u64,
    pub splits: usize,
    pub min_timestamp: Option<String>,
    pub max_timestamp: Option<String>,
}

/// The streams a process can search: the one contract the query routes (search, export,
/// reports, tail, statistics, the Elasticsearch API) read through. Implemented by the indexer
/// (its hot indexes and splits); the query crate does not know its type.
///
/// Methods may block (opening splits, reading sizes): callers call them on a blocking thread.
/// An unknown stream is [`crate::Error::UnknownStream`] (answered 404).
pub trait StreamSource: Send + Sync + 'static {
    /// The targets of `stream` that may hold documents in `[start, end)`, pinned for as long
    /// as the snapshot is held.
    fn snapshot(
        &self,
        stream: &str,
        start: Option<Timestamp>,
        end: Option<Timestamp>,
    ) -> Result<StreamSnapshot>;

    /// A stream's schema, default fields and tokenizers, with no targets (for parsing a query
    /// or matching tailed documents without opening splits).
    fn schema_snapshot(&self, stream: &str) -> Result<StreamSnapshot> {
        // An empty time range: no split needs to be visited.
        let never = Some(Timestamp(i64::MIN));
        let mut snapshot = self.snapshot(stream, never, never)?;
        snapshot.targets.clear();
        Ok(snapshot)
    }

    /// A receiver of the stream's batches as they become durable (live tail). A receiver that
    /// falls too far behind gets `Lagged`.
    fn subscribe(&self, stream: &str) -> Result<broadcast::Receiver<Arc<TailBatch>>>;

    /// Every stream's statistics, unscoped, in name order.
    fn stream_stats(&self) -> Vec<StreamStats>;
}
