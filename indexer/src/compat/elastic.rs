//! Elasticsearch `_bulk`: `POST|PUT /api/v1/_elastic/_bulk` and `/api/v1/_elastic/{index}/_bulk`.
//!
//! The body is NDJSON action/document pairs. `index` and `create` put a document into the
//! stream named by `_index` (or the path's index); `delete` and `update` are answered per item
//! with 400 naming the action, never dropped silently. An index name matching a pattern of
//! `query.elastic_index_patterns` (KubeSphere's daily `ks-logstash-log-<date>`, ...) writes to
//! that pattern's stream. Documents sent to `logs` are mapped from
//! the shapes of Fluent Bit, Vector, Filebeat and Trawl's own names by the ingest
//! ([`crate::compat::shapes`]); documents for `audit` are audit events; any other index is a generic stream. An unknown index answers
//! 404 `index_not_found_exception` per item, unless `indexer.auto_create_streams` is on (the
//! stream is then created with `@timestamp` as its time field).
//!
//! The answer has Elasticsearch's shape, made lean so that an agent's buffer holds it (Fluent
//! Bit reads 512 KiB: the answer to a 2 MB chunk of ~7,500 records is ~300 KB) — `{"took",
//! "errors", "items": [{"index": {"_index", "status"}}]}`; a failed item is whole,
//! `{"index": {"_index", "_id", "status", "error": {"type", "reason"}}}`; `filter_path` trims
//! it further as in Elasticsearch — and comes once every accepted document is durable. Every
//! answer carries `X-Elastic-Product: Elasticsearch`, which the official clients check.
//!
//! A request sent again within the dedup window is answered as the first time and not indexed
//! again ([`crate::dedup`]). An `_id` given by the client is kept with its document: a `create`
//! of an `_id` already written is a 409 `version_conflict_engine_exception` item, an `index` of
//! one is a 200 `noop` item; neither writes anything (documents are immutable).

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde_json::{json, Map, Value};
use trawl_config::StreamConfig;
use trawl_model::codec::ndjson_lines;
use trawl_model::elastic;

use crate::compat::filter_path;
use crate::dedup::{body_hash, Push, Surface};
use crate::http::{ingest_error, receive, IngestState};
use crate::Error;
use trawl_model::{ApiError, ErrorCode};

/// The product header the official Elasticsearch clients require on every answer.
pub const PRODUCT_HEADER: &str = "x-elastic-product";

/// The `_bulk` routes.
pub(crate) fn routes(state: IngestState) -> Router {
    Router::new()
        .route("/api/v1/_elastic/_bulk", post(bulk).put(bulk))
        .route(
            "/api/v1/_elastic/{index}/_bulk",
            post(bulk_index).put(bulk_index),
        )
        .with_state(state)
        .layer(middleware::map_response(product_header))
}

async fn product_header(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(PRODUCT_HEADER, HeaderValue::from_static("Elasticsearch"));
    response
}

async fn bulk(
    State(state): State<IngestState>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    run_bulk(state, None, params, headers, body).await
}

async fn bulk_index(
    State(state): State<IngestState>,
    Path(index): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    run_bulk(state, Some(index), params, headers, body).await
}

async fn run_bulk(
    state: IngestState,
    default_index: Option<String>,
    params: HashMap<String, String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let admit = || check_content_type(&headers);
    let received = match receive(&state, &headers, body, admit).await {
        Ok(received) => received,
        Err(err) => return api_error(err, &headers),
    };
    let mut items = match parse_bulk(&received.body, default_index.as_deref()) {
        Ok(items) => items,
        Err(reason) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                "illegal_argument_exception",
                &reason,
                None,
                &headers,
            )
        }
    };
    let origin = body_hash(&received.body);
    if let Err(err) = index_items(&state, &mut items, origin).await {
        return api_error(err, &headers);
    }
    drop(received);
    // `refresh=true` / `wait_for` (or present without a value): searchable before the answer.
    if params
        .get("refresh")
        .is_some_and(|v| v.is_empty() || v == "true" || v == "wait_for")
    {
        let indexer = state.indexer.clone();
        let _ = tokio::task::spawn_blocking(move || indexer.flush()).await;
    }
    let errors = items.iter().any(|item| item.failure.is_some());
    let took = started.elapsed().as_millis() as u64;
    let mut body = json!({
        "took": took,
        "errors": errors,
        "items": items.iter().map(BulkItem::to_json).collect::<Vec<_>>(),
    });
    if let Some(paths) = params.get("filter_path") {
        body = filter_path::apply(body, paths);
    }
    json_response(StatusCode::OK, &body, &headers)
}

/// Accepts what Elasticsearch accepts for `_bulk`: JSON, NDJSON and their vendor types
/// (`application/vnd.elasticsearch+x-ndjson; compatible-with=8`), or no type at all.
fn check_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let text = value.to_str().unwrap_or("");
    let mime = text
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match mime.as_str() {
        "application/json"
        | "application/x-ndjson"
        | "application/vnd.elasticsearch+json"
        | "application/vnd.elasticsearch+x-ndjson" => Ok(()),
        _ => Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            format!(
                "Content-Type header [{}] is not supported",
                text.chars().take(100).collect::<String>()
            ),
        )),
    }
}

/// An item of a bulk request and what became of it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct BulkItem {
    /// `index`, `create`, `delete` or `update`.
    pub action: String,
    pub index: String,
    pub id: String,
    /// Whether the client gave the `_id` (else it was generated).
    pub given_id: bool,
    /// The document line, for the items still to index.
    pub source: Option<Vec<u8>>,
    pub failure: Option<Failure>,
    /// An `index` of an `_id` already written: nothing written, answered `noop`.
    pub noop: bool,
}

/// Why an item failed: its HTTP status and Elasticsearch's error type and reason.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Failure {
    pub status: u16,
    pub kind: &'static str,
    pub reason: String,
}

impl Failure {
    fn new(status: u16, kind: &'static str, reason: impl Into<String>) -> Failure {
        Failure {
            status,
            kind,
            reason: reason.into(),
        }
    }
}

impl BulkItem {
    fn fail(&mut self, failure: Failure) {
        self.source = None;
        self.failure = Some(failure);
    }

    /// The item's answer. A success is lean (`_index` and `status`; no `_id`, `_version`,
    /// `_shards`, `_seq_no`, `_primary_term`, which the official clients and agents do not
    /// need), so that the answer to a large batch fits an agent's buffer; a failure is whole.
    fn to_json(&self) -> Value {
        let inner = match &self.failure {
            Some(f) => json!({
                "_index": self.index,
                "_id": self.id,
                "status": f.status,
                "error": {"type": f.kind, "reason": f.reason, "index": self.index},
            }),
            None if self.noop => json!({
                "_index": self.index,
                "_id": self.id,
                "result": "noop",
                "status": 200,
            }),
            None => json!({"_index": self.index, "status": 201}),
        };
        json!({ self.action.clone(): inner })
    }
}

/// Splits a bulk body into its items. A malformed action line (not a JSON object with one of
/// the four actions) or an action without its document line fails the whole request, as in
/// Elasticsearch; everything wrong with one item (no index, `delete`/`update`) is that item's
/// failure.
pub(crate) fn parse_bulk(
    body: &[u8],
    default_index: Option<&str>,
) -> Result<Vec<BulkItem>, String> {
    let mut lines = ndjson_lines(body);
    let mut items = Vec::new();
    while let Some((line_no, line)) = lines.next() {
        let action: Map<String, Value> = serde_json::from_slice(line).map_err(|e| {
            format!("Malformed action/metadata line [{line_no}], expected a JSON object: {e}")
        })?;
        let mut entries = action.into_iter();
        let (name, meta) = match (entries.next(), entries.next()) {
            (Some(entry), None) => entry,
            _ => {
                return Err(format!(
                    "Malformed action/metadata line [{line_no}], expected an object with exactly \
                     one action"
                ))
            }
        };
        if !["index", "create", "delete", "update"].contains(&name.as_str()) {
            return Err(format!(
                "Malformed action/metadata line [{line_no}], expected one of [create, delete, \
                 index, update] but found [{}]",
                name.chars().take(64).collect::<String>()
            ));
        }
        let Value::Object(meta) = meta else {
            return Err(format!(
                "Malformed action/metadata line [{line_no}], expected an object for [{name}]"
            ));
        };
        let index = meta
            .get("_index")
            .and_then(Value::as_str)
            .or(default_index)
            .unwrap_or("")
            .to_string();
        let given = match meta.get("_id") {
            Some(Value::String(id)) => Some(id.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        let given_id = given.is_some();
        let id = given.unwrap_or_else(|| ulid::Ulid::new().to_string().to_lowercase());
        let source = if name == "delete" {
            None
        } else {
            match lines.next() {
                Some((_, doc)) => Some(doc.to_vec()),
                None => {
                    return Err(format!(
                        "The bulk request must be terminated by a newline: action/metadata line \
                         [{line_no}] has no document line"
                    ))
                }
            }
        };
        let mut item = BulkItem {
            action: name.clone(),
            index,
            id,
            given_id,
            source,
            failure: None,
            noop: false,
        };
        if name == "delete" || name == "update" {
            item.fail(Failure::new(
                400,
                "illegal_argument_exception",
                format!(
                    "action [{name}] is not supported by Trawl's _bulk: documents are \
                     immutable, only [index] and [create] are accepted"
                ),
            ));
        } else if item.index.is_empty() {
            item.fail(Failure::new(
                400,
                "action_request_validation_exception",
                "Validation Failed: 1: index is missing;",
            ));
        }
        items.push(item);
    }
    if items.is_empty() {
        return Err("request body is required: the bulk request holds no action".into());
    }
    Ok(items)
}

/// The template of a stream created by `_bulk` on first write: Elasticsearch documents carry
/// their time in `@timestamp`.
fn bulk_stream_template() -> StreamConfig {
    StreamConfig {
        timestamp_field: "@timestamp".into(),
        ..StreamConfig::default()
    }
}

/// Indexes the pending items, one ingest per stream; marks each item's outcome. `origin` is
/// the hash of the request body: each stream's part of a request is one push batch,
/// recognised when the request is sent again.
async fn index_items(
    state: &IngestState,
    items: &mut [BulkItem],
    origin: u128,
) -> Result<(), ApiError> {
    // A daily index (`ks-logstash-log-2024.01.31`) writes to the stream its pattern names.
    let patterns = &state.indexer.settings().elastic_index_patterns;
    let mut by_stream: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, item) in items.iter().enumerate() {
        if item.failure.is_none() {
            let stream = elastic::route_index(patterns, &item.index).unwrap_or(&item.index);
            by_stream.entry(stream.to_string()).or_default().push(i);
        }
    }
    for (stream, members) in by_stream {
        if let Err(err) = state
            .indexer
            .ensure_stream(&stream, &bulk_stream_template())
            .await
        {
            let failure = match err {
                Error::UnknownStream(_) => Failure::new(
                    404,
                    "index_not_found_exception",
                    format!("no such index [{stream}]"),
                ),
                Error::InvalidArgument(reason) => Failure::new(
                    400,
                    "invalid_index_name_exception",
                    format!("Invalid index name [{stream}], {reason}"),
                ),
                other => return Err(ApiError::internal(other)),
            };
            for i in members {
                items[i].fail(failure.clone());
            }
            continue;
        }
        // The lines of this stream's body, and the item each line is.
        let mut body = Vec::new();
        let mut line_items = Vec::new();
        let mut push = Push {
            surface: Some(Surface::Bulk),
            origin: Some(origin),
            ids: Vec::new(),
        };
        for i in members {
            let Some(source) = items[i].source.take() else {
                continue;
            };
            match document_line(&source) {
                Ok(line) => {
                    body.extend_from_slice(&line);
                    body.push(b'\n');
                    if items[i].given_id {
                        push.ids.push((line_items.len(), items[i].id.clone()));
                    }
                    line_items.push(i);
                }
                Err(reason) => {
                    items[i].fail(Failure::new(400, "document_parsing_exception", reason))
                }
            }
        }
        if line_items.is_empty() {
            continue;
        }
        let outcome = state
            .indexer
            .ingest_every_error(&stream, body, push)
            .await
            .map_err(ingest_error)?;
        let mut refused = vec![None; line_items.len()];
        for error in outcome.errors {
            if let Some(slot) = error.line.checked_sub(1).and_then(|l| refused.get_mut(l)) {
                *slot = Some(error.message);
            }
        }
        for (i, refusal) in line_items.iter().zip(refused) {
            if let Some(reason) = refusal {
                items[*i].fail(Failure::new(400, "document_parsing_exception", reason));
            }
        }
        for line in outcome.conflicts {
            let Some(&i) = line_items.get(line) else {
                continue;
            };
            if items[i].action == "create" {
                let reason = format!(
                    "[{}]: version conflict, document already exists (current version [1])",
                    items[i].id
                );
                items[i].fail(Failure::new(
                    409,
                    "version_conflict_engine_exception",
                    reason,
                ));
            } else {
                items[i].noop = true;
            }
        }
    }
    Ok(())
}

/// The NDJSON line a document becomes in its stream: the document itself, once it is known to
/// be a JSON object; the ingest maps it onto the stream's record (for `logs`, the shippers'
/// aliases of [`crate::compat::shapes`]). The error is the item's reason.
pub(crate) fn document_line(source: &[u8]) -> Result<Vec<u8>, String> {
    serde_json::from_slice::<Map<String, Value>>(source)
        .map_err(|e| format!("failed to parse the document: {e}"))?;
    Ok(source.to_vec())
}

/// A whole-request refusal (readiness, capacity, limits, storage) in Elasticsearch's shape,
/// with the status and `Retry-After` of the indexer's answer.
fn api_error(err: ApiError, request: &HeaderMap) -> Response {
    let kind = match err.code() {
        ErrorCode::TooManyRequests => "es_rejected_execution_exception",
        ErrorCode::PayloadTooLarge => "content_too_long_exception",
        ErrorCode::UnsupportedMediaType => "media_type_header_exception",
        ErrorCode::Unavailable => "cluster_block_exception",
        ErrorCode::InsufficientStorage => "cluster_block_exception",
        ErrorCode::NotFound | ErrorCode::UnknownStream => "index_not_found_exception",
        ErrorCode::BadRequest => "parse_exception",
        _ => "exception",
    };
    error_response(
        err.http_status(),
        kind,
        err.message(),
        err.retry_after_secs,
        request,
    )
}

/// Elasticsearch's error body ([`elastic::error_body`]) with its status and `Retry-After`.
pub(crate) fn error_response(
    status: StatusCode,
    kind: &str,
    reason: &str,
    retry_after: Option<u64>,
    request: &HeaderMap,
) -> Response {
    let body = elastic::error_body(status.as_u16(), kind, reason, None);
    let mut response = json_response(status, &body, request);
    if let Some(secs) = retry_after {
        if let Ok(value) = HeaderValue::from_str(&secs.to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
    }
    response
}

/// A JSON answer, typed [`elastic::COMPAT_JSON`] when the client asked for the compatibility
/// mode in `Accept` or `Content-Type` (the official clients do), else `application/json`.
fn json_response(status: StatusCode, body: &Value, request: &HeaderMap) -> Response {
    let compat = [header::ACCEPT, header::CONTENT_TYPE].iter().any(|h| {
        request
            .get(h)
            .and_then(|v| v.to_str().ok())
            .is_some_and(elastic::asks_compat)
    });
    let content_type = if compat {
        elastic::COMPAT_JSON
    } else {
        "application/json"
    };
    (
        status,
        [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
        body.to_string(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_and_per_item_failures() {
        let body = br#"{"index":{"_index":"logs","_id":"a"}}
{"message":"one"}
{"create":{}}
{"message":"two"}
{"delete":{"_index":"logs","_id":"x"}}
{"update":{"_index":"logs","_id":"y"}}
{"doc":{"message":"changed"}}
{"index":{"_id":7}}
{"message":"three"}
"#;
        let items = parse_bulk(body, None).unwrap();
        let summary: Vec<(&str, &str, &str, Option<u16>)> = items
            .iter()
            .map(|i| {
                (
                    i.action.as_str(),
                    i.index.as_str(),
                    i.id.as_str(),
                    i.failure.as_ref().map(|f| f.status),
                )
            })
            .collect();
        assert_eq!(summary[0], ("index", "logs", "a", None));
        assert_eq!(summary[1].0, "create");
        assert_eq!(summary[1].3, Some(400)); // no index anywhere
        assert_eq!(summary[2], ("delete", "logs", "x", Some(400)));
        assert_eq!(summary[3], ("update", "logs", "y", Some(400)));
        assert_eq!(summary[4], ("index", "", "7", Some(400)));
        assert!(items[2]
            .failure
            .as_ref()
            .unwrap()
            .reason
            .contains("[delete]"));
        assert_eq!(
            items[0].source.as_deref(),
            Some(&br#"{"message":"one"}"#[..])
        );

        let with_default = parse_bulk(body, Some("web")).unwrap();
        assert_eq!(with_default[1].index, "web");
        assert_eq!(with_default[1].failure, None);
        assert_eq!(with_default[0].index, "logs");
        assert_eq!(with_default[1].id.len(), 26, "a generated id");
    }

    #[test]
    fn malformed_requests_fail_whole() {
        let cases: &[(&[u8], &str)] = &[
            (b"{\"index\":{}}", "has no document line"),
            (b"{\"upsert\":{}}\n{}\n", "but found [upsert]"),
            (b"not json\n{}\n", "Malformed action/metadata line [1]"),
            (b"{\"index\":{},\"create\":{}}\n{}\n", "exactly one action"),
            (b"\n\n", "holds no action"),
        ];
        for (body, expected) in cases {
            let err = parse_bulk(body, Some("logs")).unwrap_err();
            assert!(err.contains(expected), "{err}");
        }
    }

    #[test]
    fn item_answers_have_elasticsearch_shape() {
        let mut item = BulkItem {
            action: "create".into(),
            index: "logs".into(),
            id: "a".into(),
            given_id: true,
            source: None,
            failure: None,
            noop: false,
        };
        assert_eq!(
            item.to_json(),
            json!({"create": {"_index": "logs", "status": 201}})
        );
        item.noop = true;
        assert_eq!(
            item.to_json(),
            json!({"create": {"_index": "logs", "_id": "a", "result": "noop", "status": 200}})
        );
        item.fail(Failure::new(
            404,
            "index_not_found_exception",
            "no such index [x]",
        ));
        assert_eq!(
            item.to_json(),
            json!({"create": {"_index": "logs", "_id": "a", "status": 404,
                "error": {"type": "index_not_found_exception", "reason": "no such index [x]",
                    "index": "logs"}}})
        );
    }

    #[test]
    fn documents_are_json_objects() {
        let line = br#"{"log":"hi\n","kubernetes":{"pod_name":"p"}}"#;
        assert_eq!(document_line(line).unwrap(), line);
        assert!(document_line(b"[1]")
            .unwrap_err()
            .starts_with("failed to parse the document"));
    }
}
