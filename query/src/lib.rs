//! Search over a stream's splits: a query in the tantivy grammar, bounded in time to the
//! nanosecond, run over every split (and the hot index) in parallel, merged into one exact total,
//! the newest (or oldest) hits as flat records with a paging cursor, and Elasticsearch-syntax
//! aggregations merged across splits. Served over HTTP by [`routes`].
//!
//! ```text
//! SearchRequest --parse--> ParsedRequest --search(snapshot)--> SearchResponse
//!   request.rs                               search.rs, aggs.rs, hit.rs
//! routes.rs: GET|POST /api/v1/{stream}/search over any trawl_index::StreamSource
//! error.rs:  Error -> trawl_model::ErrorCode -> HTTP status and {"error": {"code", "message"}}
//! ```

pub mod access;
mod aggs;
pub mod distributed;
mod dynamic;
pub mod elastic;
mod error;
pub mod export;
mod fanin;
mod fanin_elastic;
mod fanin_export;
mod fanin_reports;
mod hit;
mod leaf_cache;
mod query_text;
pub mod remote;
pub mod reports;
mod request;
mod routes;
mod search;
mod state;
pub mod stats;
pub mod story;
pub mod tail;
#[cfg(test)]
mod testutil;

pub use access::Scope;
pub use aggs::parse_aggs;
pub use error::{Error, ErrorCode, Result};
pub use hit::{list_fields, HitFormat};
pub use leaf_cache::CacheCounters;
pub use request::{Cursor, FieldList, ParsedRequest, QueryLimits, SearchRequest, SortOrder};
pub use routes::{routes, routes_with_observer, SearchObservation, SearchObserver};
pub use search::{
    merge_leaves, search, search_leaf, LeafHit, LeafRecord, LeafResponse, MergedHit,
    SearchResponse, TIMESTAMP_FIELD,
};

/// Hits and misses of the per-split aggregation cache of this process (for metrics).
pub fn leaf_cache_counters() -> CacheCounters {
    leaf_cache::LeafCache::global().counters()
}
