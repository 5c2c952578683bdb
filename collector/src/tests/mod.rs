//! Crate-level tests: the collector against a fake indexer that implements the delivery
//! contract (source marks, 409 on gaps) in memory.
//!
//! - `fake`: the fake indexer and helpers (CRI lines, waiting for a condition)
//! - `delivery`: exactly-once through rotations and restarts, buffering through an outage
//! - `refusals`: batches refused as a whole (kept, retried, split after a 413), dead letters
//! - `audit`: the webhook (duplicates, malformed bodies) and audit log tailing
//! - `model`: proptest of the tailer against a simple model
//! - `fake_api`: a fake Kubernetes API server replaying recorded responses
//! - `kubernetes`: records enriched with pod metadata end to end, pod label filters
//! - `fake_events_api`: a fake Kubernetes API for Events and Leases (also used by the e2e tests)
//! - `events`: the cluster's Kubernetes Events under a Lease, resumed and relisted
//! - `journal`: the node's journal through a fake journalctl, after the saved cursor

mod audit;
mod delivery;
mod events;
pub(crate) mod fake;
pub(crate) mod fake_api;
pub(crate) mod fake_events_api;
mod journal;
mod kubernetes;
mod model;
mod refusals;
