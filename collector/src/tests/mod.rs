//! Crate-level tests: the collector against a fake indexer that implements the delivery
//! contract (source marks, 409 on gaps) in memory.
//!
//! - `fake`: the fake indexer and helpers (CRI lines, waiting for a condition)
//! - `delivery`: exactly-once through rotations and restarts, buffering through an outage
//! - `audit`: the webhook (duplicates, malformed bodies) and audit log tailing
//! - `model`: proptest of the tailer against a simple model

mod audit;
mod delivery;
mod fake;
mod model;
