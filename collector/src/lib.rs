//! The node agent: finds container log files and Kubernetes audit logs, follows them through
//! rotations, parses CRI and docker lines, receives the audit webhook, and ships records to the
//! indexer exactly once (checkpoints advance only on acknowledgement; a bounded disk buffer
//! holds what the indexer has not taken yet).
//!
//! ```text
//! discovery ─▶ follower thread (follow, parse, records, batches) ─▶ disk buffer ─▶ shipper ─▶ indexer
//!  webhook ─▶ spool (fsync) ─▶ follower thread                     checkpoints ◀── acknowledgements
//!  API server ─▶ kube (watches, cache) ─▶ follower thread: labels, image, owner; label filters
//! ```

pub mod backoff;
pub mod batch;
pub mod buffer;
pub mod checkpoint;
mod collector;
pub mod deadletter;
pub mod discovery;
mod error;
mod follower;
mod fsutil;
pub mod identity;
pub mod journal;
pub mod jsonw;
pub mod kube;
pub mod metrics;
pub mod multiline;
pub mod parse;
pub mod ratelimit;
pub mod records;
pub mod redact;
mod shared;
mod ship;
pub mod webhook;

#[cfg(test)]
mod tests;

pub use collector::{Collector, CollectorHandle, Readiness};
pub use error::{Error, Result};
pub use metrics::Metrics;
pub use ship::indexer_order;
