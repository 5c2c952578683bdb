//! The search contract alerting runs on: a query over a stream and a time range, answered with
//! a total, hits and Elasticsearch-shaped aggregations, as `POST /api/v1/{stream}/search` does.

use std::future::Future;
use std::pin::Pin;

use serde_json::{Map, Value};
use trawl_model::Timestamp;

/// One search.
#[derive(Debug, Clone, PartialEq)]
pub struct Search {
    /// The stream.
    pub stream: String,
    /// The query, in the query grammar.
    pub query: String,
    /// Inclusive lower bound.
    pub start: Timestamp,
    /// Exclusive upper bound.
    pub end: Timestamp,
    /// Hits wanted (newest first); 0 for counts and aggregations only.
    pub limit: usize,
    /// Aggregations in Elasticsearch syntax.
    pub aggs: Option<Value>,
}

/// Its answer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Found {
    /// Exact number of matching events.
    pub total: u64,
    /// The newest hits, flat records.
    pub hits: Vec<Map<String, Value>>,
    /// Aggregation results, when asked for.
    pub aggregations: Option<Value>,
    /// The search ran out of time: the answer is partial.
    pub timed_out: bool,
}

/// What [`Searcher::search`] returns.
pub type SearchFuture = Pin<Box<dyn Future<Output = Result<Found, String>> + Send>>;

/// Runs searches for the engine. Errors are one readable line (a bad query says where).
pub trait Searcher: Send + Sync + 'static {
    /// Runs `search`; CPU-heavy work belongs on a blocking thread, not in the future.
    fn search(&self, search: Search) -> SearchFuture;
}
