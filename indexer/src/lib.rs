//! The indexer: accepts batches over HTTP, makes them durable in a write-ahead log before
//! acknowledging them, indexes them into a hot tantivy index committed every second, seals the
//! hot index into immutable splits recorded in a metastore, merges small splits and applies
//! retention.
//!
//! Exactly-once delivery from the collector rests on source marks (`marks`): per source, the
//! end of the contiguous prefix the index holds, moved in the same WAL entry as the records.

pub mod api;
mod doc;
mod entry;
mod error;
pub mod http;
mod indexer;
mod marks;
mod metastore;
pub mod metrics;
pub mod schema;
mod settings;
mod snapshot;
mod split;
mod stream;
mod wal;

pub use doc::{StreamKind, StreamSpec};
pub use error::{Error, Result};
pub use indexer::{Indexer, IngestError, IngestOutcome, LineError, StreamStats, TailBatch};
pub use metrics::Metrics;
pub use settings::{IndexerSettings, StorageFault};
pub use snapshot::{SearchTarget, StreamSnapshot};

#[cfg(test)]
mod tests;
