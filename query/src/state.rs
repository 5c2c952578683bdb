//! The state of every family of query routes (search, export, tail, reports, the
//! Elasticsearch API): the source of snapshots, the query limits, and what the family adds.

use std::sync::Arc;

use crate::request::QueryLimits;

/// What a route family's handlers share; cloned per request. `Clone` is written out because a
/// derive would ask `S: Clone` of the source, which is shared behind its `Arc` and need not be.
pub(crate) struct AppState<S: ?Sized, X = ()> {
    /// Where snapshots of a stream come from.
    pub(crate) source: Arc<S>,
    /// The limits of every request.
    pub(crate) limits: QueryLimits,
    /// What the family adds: the search observer, the report settings, the tail's shutdown.
    pub(crate) extra: X,
}

impl<S: ?Sized, X: Clone> Clone for AppState<S, X> {
    fn clone(&self) -> Self {
        AppState {
            source: Arc::clone(&self.source),
            limits: self.limits.clone(),
            extra: self.extra.clone(),
        }
    }
}
