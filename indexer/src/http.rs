//! The indexer's HTTP routes: `POST /api/v1/{stream}/ingest`, `GET /api/v1/streams` (unscoped,
//! for builds without the query role), `GET /api/v1/{stream}/dead-letters`, and the
//! ingest routes of other systems' agents (Elasticsearch `_bulk`, OTLP/HTTP logs, Loki push;
//! see [`crate::compat`]). Every ingest route is admitted the same way ([`receive`]): readiness,
//! `Content-Encoding`, a slot among `max_concurrent_ingest` (429 with `Retry-After` after
//! `ingest_wait`), and the body limits before and after decompression (413).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::StreamExt;
use serde_json::json;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use trawl_model::codec::{decode_body, Encoding};

use crate::{Indexer, IngestError, Push, Surface};
use trawl_model::{ApiError, ErrorCode};

/// Header that marks a body whose first line is the delivery envelope.
pub const DELIVERY_HEADER: &str = "x-trawl-delivery";

/// How far past the limit an oversized body is still read (and discarded) so that the client
/// sees the 413 instead of a reset connection; beyond this the connection is dropped.
const DRAIN_FACTOR: usize = 8;

/// What every ingest handler shares: the indexer and the ingest slots.
#[derive(Clone)]
pub(crate) struct IngestState {
    pub(crate) indexer: Indexer,
    permits: Arc<Semaphore>,
}

/// The ingest routes of the indexer role.
pub fn routes(indexer: Indexer) -> Router {
    let permits = Arc::new(Semaphore::new(indexer.settings().max_concurrent_ingest));
    let state = IngestState { indexer, permits };
    Router::new()
        .route("/api/v1/{stream}/ingest", post(ingest))
        .route("/api/v1/{stream}/dead-letters", get(dead_letters))
        .with_state(state.clone())
        .merge(crate::compat::routes(state))
}

/// `GET /api/v1/streams` with the whole streams' totals, for a build without the query role
/// (which answers it scoped to the caller's namespaces instead).
pub fn streams_routes(indexer: Indexer) -> Router {
    Router::new()
        .route("/api/v1/streams", get(streams))
        .with_state(indexer)
}

/// A request body admitted for ingest: decoded from its `Content-Encoding`, within the limits,
/// and holding an ingest slot until dropped.
pub(crate) struct Received {
    pub(crate) body: Vec<u8>,
    _permit: OwnedSemaphorePermit,
}

/// Admits an ingest request: 503 while not ready, then `admit`'s own refusal (unknown stream,
/// unsupported content type), 415 for an unknown `Content-Encoding`, 429 with `Retry-After`
/// when no slot frees up within `ingest_wait`, 413 past `max_body_bytes` or (decompressed)
/// `max_decompressed_bytes`, 400 for a body that does not decompress. A refused body is read
/// and discarded up to a bound, so that the client sees the answer rather than a reset.
pub(crate) async fn receive(
    state: &IngestState,
    headers: &HeaderMap,
    body: Body,
    admit: impl FnOnce() -> Result<(), ApiError>,
) -> Result<Received, ApiError> {
    let settings = state.indexer.settings();
    if !state.indexer.is_ready() {
        drain(body, settings.max_body_bytes).await;
        return Err(ApiError::new(ErrorCode::Unavailable, "indexer is not ready").retry_after(1));
    }
    if let Err(err) = admit() {
        drain(body, settings.max_body_bytes).await;
        return Err(err);
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
    let permit =
        match tokio::time::timeout(settings.ingest_wait, state.permits.clone().acquire_owned())
            .await
        {
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
    Ok(Received {
        body: decoded,
        _permit: permit,
    })
}

/// The answer of [`Indexer::ingest`]'s refusals, shared by the ingest routes.
pub(crate) fn ingest_error(err: IngestError) -> ApiError {
    match err {
        IngestError::Gap(marks) => ApiError::new(
            ErrorCode::OffsetGap,
            "a source's batch starts past what the index holds: resend from its mark",
        )
        .with_extra("marks", json!(marks)),
        IngestError::BadEnvelope(message) => ApiError::bad_request(message),
        IngestError::TooManyRecords(message) => ApiError::new(ErrorCode::PayloadTooLarge, message),
        IngestError::UnknownStream(s) => ApiError::unknown_stream(&s),
        IngestError::Storage(message) => {
            tracing::warn!(%message, "ingest refused: storage unavailable");
            ApiError::new(
                ErrorCode::InsufficientStorage,
                "the indexer cannot write to its storage, retry later",
            )
            .retry_after(5)
        }
        IngestError::Metastore(message) => {
            tracing::warn!(%message, "ingest refused: the shared metastore is unreachable");
            ApiError::new(
                ErrorCode::Unavailable,
                "the indexer cannot reach its metastore to claim a new source, retry later",
            )
            .retry_after(2)
        }
        IngestError::ShuttingDown => {
            ApiError::new(ErrorCode::Unavailable, "indexer is shutting down").retry_after(1)
        }
    }
}

async fn streams(State(indexer): State<Indexer>) -> Json<serde_json::Value> {
    let stats = tokio::task::spawn_blocking(move || indexer.stream_stats())
        .await
        .unwrap_or_default();
    Json(json!({ "streams": stats }))
}

/// How many dead letters one listing returns by default, and at most.
const DEAD_LETTERS_DEFAULT: usize = 100;
const DEAD_LETTERS_MAX: usize = 10_000;

/// `GET /api/v1/{stream}/dead-letters?limit=`: the newest lines ingest refused, newest first,
/// `{"stream", "total", "dead_letters": [{"time", "line", "error", "raw"}]}` (`total`: how many
/// the store holds).
async fn dead_letters(
    State(state): State<IngestState>,
    Path(stream): Path<String>,
    Query(params): Query<std::collections::HashMap<String, String>>,
) -> Response {
    let limit = match params.get("limit").map(|l| l.trim().parse::<usize>()) {
        None => DEAD_LETTERS_DEFAULT,
        Some(Ok(limit)) if limit <= DEAD_LETTERS_MAX => limit,
        Some(_) => {
            return ApiError::bad_request(format!(
                "`limit` must be an integer from 0 to {DEAD_LETTERS_MAX}"
            ))
            .into_response()
        }
    };
    match state.indexer.dead_letters(&stream, limit).await {
        Ok((letters, total)) => {
            Json(json!({"stream": stream, "total": total, "dead_letters": letters})).into_response()
        }
        Err(crate::Error::UnknownStream(s)) => ApiError::unknown_stream(&s).into_response(),
        Err(err) => ApiError::internal(err).into_response(),
    }
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
    let indexer = &state.indexer;
    let admit = || {
        let known = trawl_model::validate_stream_name(stream).is_ok()
            && (indexer.has_stream(stream) || indexer.auto_create_streams());
        if known {
            Ok(())
        } else {
            Err(ApiError::unknown_stream(stream))
        }
    };
    let received = receive(state, headers, body, admit).await?;
    let delivery = headers.contains_key(DELIVERY_HEADER);
    let indexer = &state.indexer;
    let result = if delivery {
        indexer.ingest(stream, received.body, true).await
    } else {
        // A batch without delivery envelope is recognised when sent again; a body that is one
        // JSON array is taken as its elements.
        let body = crate::compat::shapes::json_array_as_ndjson(received.body);
        indexer
            .ingest_push(stream, body, Push::from(Surface::Ingest))
            .await
    };
    match result {
        Ok(outcome) => Ok(Json(outcome).into_response()),
        Err(err) => Err(ingest_error(err)),
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
