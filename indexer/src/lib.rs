//! The indexer: accepts batches over HTTP, makes them durable in a write-ahead log before
//! acknowledging them, indexes them into a hot tantivy index committed every second, seals the
//! hot index into immutable splits recorded in a metastore, merges small splits and applies
//! retention.
//!
//! Exactly-once delivery from the collector rests on source marks (`marks`): per source, the
//! end of the contiguous prefix the index holds, moved in the same WAL entry as the records.

mod audit_dedup;
mod catalog;
pub mod cluster_merge;
pub mod compat;
pub mod dead_letter;
pub mod dedup;
mod doc;
mod entry;
mod error;
pub mod http;
mod indexer;
mod json_file;
mod marks;
mod metastore;
pub mod metrics;
pub mod ownership;
pub mod publish;
mod read;
mod replay;
mod retire;
mod settings;
pub mod split;
mod stream;
mod wal;

pub use dedup::{Push, Surface};
pub use doc::{StreamKind, StreamSpec, TimestampSource};
pub use error::{Error, Result};
pub use indexer::{Indexer, IngestError, IngestOutcome, LineError, Purged};
pub use metrics::Metrics;
pub use settings::{
    CrashHook, IndexerSettings, StorageFault, WriterTuning, CRASH_AFTER_MERGE_PUBLISH,
    CRASH_AFTER_RETENTION_PUBLISH, CRASH_AFTER_UPLOAD, CRASH_BEFORE_LOCAL_DROP, ENOSPC_FILE,
    TEST_FAULT_DIR_ENV,
};
/// The read contract ([`trawl_index`]), which the indexer implements (`read.rs`).
pub use trawl_index::{schema, SearchTarget, StreamSnapshot, StreamStats, TailBatch, TargetKind};

/// Fuzzing entry point, not an API: validates each NDJSON line of `body` as a record of the
/// built-in stream `stream` (`logs`, `audit`, `events` or `journal`; any other name is `None`) exactly as ingest
/// does, and returns how many lines were accepted. Never panics on any input.
#[doc(hidden)]
pub fn fuzz_prepare_lines(stream: &str, body: &[u8]) -> Option<usize> {
    let spec = match stream {
        "logs" => StreamSpec::logs(),
        "audit" => StreamSpec::audit(),
        "events" => StreamSpec::events(),
        "journal" => StreamSpec::journal(),
        _ => return None,
    };
    let builder = doc::DocBuilder::new(&spec, &spec.schema()).ok()?;
    let received_at = 1_795_600_800_000_000_000;
    Some(
        trawl_model::codec::ndjson_lines(body)
            .filter(|(_, line)| builder.prepare(line, received_at).is_ok())
            .count(),
    )
}

#[cfg(test)]
mod crash_tests;
#[cfg(test)]
mod disk_full_tests;
#[cfg(test)]
mod tests;
