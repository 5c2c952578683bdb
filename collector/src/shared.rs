//! State shared by the follower thread, the shipper task and the webhook handler.

use std::sync::{Mutex, MutexGuard};

use crate::buffer::DiskBuffer;
use crate::checkpoint::CheckpointStore;
use crate::metrics::Metrics;

/// Checkpoints, disk buffer and metrics. The mutexes are held for short, bounded operations
/// (one file write at most).
#[derive(Debug)]
pub struct Shared {
    pub checkpoints: Mutex<CheckpointStore>,
    pub buffer: Mutex<DiskBuffer>,
    pub metrics: Metrics,
    /// Since when the shipper's deliveries have all been refused or unanswered (`None` while
    /// the indexer takes batches); readiness reads it.
    pub stuck_since: Mutex<Option<std::time::Instant>>,
}

/// Locks `m`, going on with the data if a holder panicked (the state is still consistent:
/// every update is a single assignment or a completed file operation).
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A message to the follower thread.
#[derive(Debug)]
pub enum FollowerMsg {
    /// A file-system notification.
    Fs(crate::discovery::FsEvent),
    /// Something to read (the webhook spooled events).
    Wake,
    /// The indexer has `source` only up to `mark`: re-read it from there. The reply is the
    /// sequence number of the first batch sealed after the rewind (older batches hold stale
    /// records of the source), or `None` if the file can no longer be read.
    Rewind {
        source: String,
        mark: u64,
        reply: tokio::sync::oneshot::Sender<Option<u64>>,
    },
    /// Stop; with `seal`, the open batches are sealed into the buffer first.
    Stop { seal: bool },
}

/// A message to the shipper.
#[derive(Debug)]
pub enum ShipMsg {
    /// Batch `seq` is in the buffer.
    Batch(u64),
    /// Batches of these sources were dropped (buffer full): their next batch may leave a gap.
    GapOk(Vec<String>),
}
