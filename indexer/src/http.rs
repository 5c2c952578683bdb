//! The indexer's HTTP routes: `POST /api/v1/{stream}/ingest` and `GET /api/v1/streams`.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::StreamExt;
use serde_json::json;
use tokio::sync::Semaphore;
use trawl_model::codec::{decode_body, Encoding};

use crate::api::{ApiError, ErrorCode};
use crate::{Indexer, IngestError};

/// Header that marks a body whose first line is the delivery envelope.
pub const DELIVERY_HEADER: &str = "x-trawl-delivery";

/// How far past the limit an oversized body is still read (and discarded) so that the client
/// sees the 413 instead of a reset connection; beyond this the connection is dropped.
const DRAIN_FACTOR: usize = 8;

#[derive(Clone)]
struct IngestState {
    indexer: Indexer,
    permits: Arc<Semaphore>,
}

/// The routes of the indexer role.
pub fn routes(indexer: Indexer) -> Router {
    let permits = Arc::new(Semaphore::new(indexer.settings().max_concurrent_ingest));
    Router::new()
        .route("/api/v1/{stream}/ingest", post(ingest))
        .route("/api/v1/streams", get(streams))
        .with_state(IngestState { indexer, permits })
}

async fn streams(State(state): State<IngestState>) -> Json<serde_json::Value> {
    let indexer = state.indexer.clone();
    let stats = tokio::task::spawn_blocking(move || indexer.stream_stats())
        .await
        .unwrap_or_default();
    Json(json!({ "streams": stats }))
}

async fn ingest(
    State(state): State<IngestState>,
    Path(stream): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match ingest_inner(&state, &stream, &headers, body).await {
        Ok(response) => response,
        Err(err) => err.into_response(),
    }
}

async fn ingest_inner(
    state: &IngestState,
    stream: &str,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let settings = state.indexer.settings();
    if !state.indexer.is_ready() {
        drain(body, settings.max_body_bytes).await;
        return Err(ApiError::new(ErrorCode::Unavailable, "indexer is not ready").retry_after(1));
    }
    if trawl_model::validate_stream_name(stream).is_err()
        || !state.indexer.stream_names().iter().any(|s| s == stream)
    {
        drain(body, settings.max_body_bytes).await;
        return Err(ApiError::unknown_stream(stream));
    }
    let encoding = headers
        .get(axum::http::header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("invalid"));
    let encoding = match Encoding::from_header(encoding) {
        Ok(e) => e,
        Err(err) => {
            drain(body, settings.max_body_bytes).await;
            return Err(ApiError::new(
                ErrorCode::UnsupportedMediaType,
                err.to_string(),
            ));
        }
    };
    let delivery = headers.contains_key(DELIVERY_HEADER);

    let _permit = match tokio::time::timeout(settings.ingest_wait, state.permits.acquire()).await {
        Ok(Ok(permit)) => permit,
        _ => {
            state.indexer.metrics().ingest_throttled.inc();
            drain(body, settings.max_body_bytes).await;
            return Err(ApiError::new(
                ErrorCode::TooManyRequests,
                "ingest is at capacity, retry later",
            )
            .retry_after(retry_secs(settings.ingest_wait)));
        }
    };

    let raw = read_limited(body, settings.max_body_bytes).await?;
    let limit = settings.max_decompressed_bytes;
    let decoded = tokio::task::spawn_blocking(move || decode_body(&raw, encoding, limit))
        .await
        .map_err(ApiError::internal)?
        .map_err(|err| match err {
            trawl_model::Error::TooLarge { .. } => {
                ApiError::new(ErrorCode::PayloadTooLarge, err.to_string())
            }
            other => ApiError::bad_request(other.to_string()),
        })?;

    match state.indexer.ingest(stream, decoded, delivery).await {
        Ok(outcome) => Ok(Json(outcome).into_response()),
        Err(IngestError::Gap(marks)) => Err(ApiError::new(
            ErrorCode::Conflict,
            "a source's batch starts past what the index holds: resend from its mark",
        )
        .with_code("offset_gap")
        .with_extra("marks", json!(marks))),
        Err(IngestError::BadEnvelope(message)) => Err(ApiError::bad_request(message)),
        Err(IngestError::TooManyRecords(message)) => {
            Err(ApiError::new(ErrorCode::PayloadTooLarge, message))
        }
        Err(IngestError::UnknownStream(s)) => Err(ApiError::unknown_stream(&s)),
        Err(IngestError::Storage(message)) => {
            tracing::warn!(%message, "ingest refused: storage unavailable");
            Err(ApiError::new(
                ErrorCode::InsufficientStorage,
                "the indexer cannot write to its storage, retry later",
            )
            .retry_after(5))
        }
        Err(IngestError::ShuttingDown) => {
            Err(ApiError::new(ErrorCode::Unavailable, "indexer is shutting down").retry_after(1))
        }
    }
}

fn retry_secs(wait: Duration) -> u64 {
    wait.as_secs().clamp(1, 30)
}

/// Reads a body up to `limit` bytes; past it, reads on (discarding) up to a bound and answers
/// 413, so that the client gets the answer rather than a reset.
async fn read_limited(body: Body, limit: usize) -> Result<Vec<u8>, ApiError> {
    let mut stream = body.into_data_stream();
    let mut buf = Vec::new();
    let mut total = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ApiError::bad_request(format!("reading the body: {e}")))?;
        total += chunk.len();
        if total > limit {
            let bound = limit.saturating_mul(DRAIN_FACTOR);
            while let Some(Ok(chunk)) = stream.next().await {
                total += chunk.len();
                if total > bound {
                    break;
                }
            }
            return Err(ApiError::new(
                ErrorCode::PayloadTooLarge,
                format!("body exceeds {limit} bytes"),
            ));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf)
}

async fn drain(body: Body, limit: usize) {
    let _ = read_limited(body, limit.saturating_mul(DRAIN_FACTOR)).await;
}
