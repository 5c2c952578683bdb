//! Ingest in the formats of other systems' agents: Elasticsearch `_bulk` (Fluent Bit, Vector,
//! Filebeat, the official clients), OTLP/HTTP logs (OpenTelemetry SDKs and Collector) and Loki
//! push (Promtail, Grafana Alloy). Each decodes its body, maps what it holds onto a stream's
//! records and hands them to [`crate::Indexer::ingest`], so that the answer comes once the
//! records are durable; each is admitted like the native ingest route (readiness, body limits,
//! 429 when at capacity).
//!
//! ```text
//! elastic.rs  POST|PUT /api/v1/_elastic/_bulk, /api/v1/_elastic/{index}/_bulk
//! filter_path.rs  Elasticsearch's response filtering (`filter_path`)
//! shapes.rs   every ingest line -> its stream's record (the shippers' aliases of
//!             trawl_model::shippers; level detection is trawl_model::level)
//! otlp.rs     POST /v1/logs (protobuf, JSON)
//! loki.rs     POST /loki/api/v1/push (JSON, snappy protobuf)
//! ```

use axum::Router;

use crate::http::IngestState;

pub mod elastic;
pub mod filter_path;
pub mod loki;
pub mod otlp;
pub mod shapes;
#[cfg(test)]
mod tests;

/// Every compatibility route, on the indexer's ingest state.
pub(crate) fn routes(state: IngestState) -> Router {
    Router::new()
        .merge(elastic::routes(state.clone()))
        .merge(otlp::routes(state.clone()))
        .merge(loki::routes(state))
}
