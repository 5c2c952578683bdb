//! The read contract between the indexer and query: what a search sees of a stream and where
//! it gets it from, without the write path (no WAL, no ingest).
//!
//! ```text
//! schema.rs    the tantivy schema of a stream, field and tokenizer names
//! snapshot.rs  StreamSnapshot: a stream's schema and its SearchTargets, each a hot index or a
//!              sealed split (TargetKind), pinned while a search reads them
//! source.rs    StreamSource: snapshots, live tail (TailBatch) and statistics (StreamStats) of
//!              every stream; implemented by the indexer, used by the query routes
//! store.rs     a segment's doc store read from the target's files (positioned reads)
//! error.rs     Error, Result
//! ```

mod error;
pub mod schema;
mod snapshot;
mod source;
mod store;

pub use error::{Error, Result};
pub use snapshot::{Committed, SearchTarget, StreamSnapshot, TargetKind};
pub use source::{StreamSource, StreamStats, TailBatch};
