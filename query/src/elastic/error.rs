//! Errors of the Elasticsearch-compatible API in Elasticsearch's own shape:
//! `{"error": {"root_cause": [{"type", "reason"}], "type", "reason"}, "status": n}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::Value;

use crate::error::{Error, ErrorCode};

/// An error answered to an Elasticsearch client: an Elasticsearch exception type, a reason and
/// an HTTP status. Built from the crate's [`Error`] (whose [`ErrorCode`] decides the status)
/// or directly for what only this API can refuse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}: {reason}")]
pub struct EsError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The Elasticsearch exception type (`parsing_exception`, `index_not_found_exception`, ...).
    pub kind: &'static str,
    /// What went wrong, for a person.
    pub reason: String,
    /// The index the error is about, when there is one (`index_not_found_exception`).
    pub index: Option<String>,
}

/// Result with an [`EsError`].
pub type EsResult<T> = std::result::Result<T, EsError>;

impl EsError {
    /// A construct of the query DSL, an aggregation or a request option that Trawl does not
    /// implement: 400 `parsing_exception` "[`what`] ... is not supported by trawl".
    pub fn unsupported(what: impl std::fmt::Display) -> EsError {
        EsError::parsing(format!("{what} is not supported by trawl"))
    }

    /// A malformed request body or query: 400 `parsing_exception`.
    pub fn parsing(reason: impl Into<String>) -> EsError {
        EsError {
            status: StatusCode::BAD_REQUEST,
            kind: "parsing_exception",
            reason: reason.into(),
            index: None,
        }
    }

    /// A well-formed request with a value that cannot be served: 400
    /// `illegal_argument_exception`.
    pub fn illegal_argument(reason: impl Into<String>) -> EsError {
        EsError {
            status: StatusCode::BAD_REQUEST,
            kind: "illegal_argument_exception",
            reason: reason.into(),
            index: None,
        }
    }

    /// An index (stream) that does not exist: 404 `index_not_found_exception`.
    pub fn index_not_found(index: &str) -> EsError {
        let shown: String = index.chars().take(80).collect();
        EsError {
            status: StatusCode::NOT_FOUND,
            kind: "index_not_found_exception",
            reason: format!("no such index [{shown}]"),
            index: Some(shown),
        }
    }

    /// The error body Elasticsearch answers with.
    pub fn body(&self) -> Value {
        trawl_model::elastic::error_body(
            self.status.as_u16(),
            self.kind,
            &self.reason,
            self.index.as_deref(),
        )
    }
}

impl IntoResponse for EsError {
    /// The error body with its status; 4xx are the client's business (debug level), 5xx were
    /// logged where they were mapped.
    fn into_response(self) -> Response {
        if self.status.is_client_error() {
            tracing::debug!(kind = self.kind, reason = %self.reason, "elasticsearch request refused");
        }
        (self.status, Json(self.body())).into_response()
    }
}

/// The exception types this API answers with.
const KINDS: &[&str] = &[
    "exception",
    "illegal_argument_exception",
    "index_not_found_exception",
    "parsing_exception",
    "query_shard_exception",
    "resource_not_found_exception",
    "search_phase_execution_exception",
    "too_many_buckets_exception",
];

impl EsError {
    /// The error another Trawl process answered in this shape (an indexer refusing a searcher's
    /// part of a search), to be passed on to the client as it was. A body that is not such an
    /// error keeps the status, with the body's text as the reason.
    pub fn from_answer(status: StatusCode, body: &[u8]) -> EsError {
        let parsed: Option<Value> = serde_json::from_slice(body).ok();
        let error = parsed.as_ref().map(|v| &v["error"]);
        let kind = error
            .and_then(|e| e["type"].as_str())
            .and_then(|t| KINDS.iter().find(|k| **k == t))
            .copied()
            .unwrap_or("exception");
        let reason = error
            .and_then(|e| e["reason"].as_str())
            .map(str::to_string)
            .unwrap_or_else(|| String::from_utf8_lossy(body).chars().take(400).collect());
        EsError {
            status,
            kind,
            reason,
            index: error.and_then(|e| e["index"].as_str()).map(str::to_string),
        }
    }
}

impl From<Error> for EsError {
    /// Maps the search engine's errors: bad queries are `parsing_exception`, bad arguments and
    /// aggregations `illegal_argument_exception`, an unknown stream `index_not_found_exception`,
    /// limits `too_many_buckets_exception`-like 400s... 5xx are logged here once and never show
    /// their details.
    fn from(err: Error) -> EsError {
        let status = err.code().http_status();
        let reason = err.public_message();
        match (&err, err.code()) {
            (Error::UnknownStream(name), _) => EsError::index_not_found(name),
            (Error::InvalidQuery(_), _) => EsError::parsing(reason),
            (Error::InvalidAggregation(_), _) => EsError::illegal_argument(reason),
            (_, ErrorCode::InvalidArgument) => EsError::illegal_argument(reason),
            (_, ErrorCode::TooExpensive) => EsError {
                status,
                kind: "too_many_buckets_exception",
                reason,
                index: None,
            },
            (_, ErrorCode::Timeout) => EsError {
                status,
                kind: "search_phase_execution_exception",
                reason,
                index: None,
            },
            (_, ErrorCode::NotFound) => EsError {
                status,
                kind: "resource_not_found_exception",
                reason,
                index: None,
            },
            (_, _) => {
                tracing::error!(error = %err, "elasticsearch-compatible search failed");
                EsError {
                    status,
                    kind: "exception",
                    reason,
                    index: None,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn unsupported_construct_body() {
        let err = EsError::unsupported("[fuzzy] query");
        assert_eq!(
            err.body(),
            json!({
                "error": {
                    "root_cause": [{"type": "parsing_exception", "reason": "[fuzzy] query is not supported by trawl"}],
                    "type": "parsing_exception",
                    "reason": "[fuzzy] query is not supported by trawl"
                },
                "status": 400
            })
        );
    }

    #[test]
    fn unknown_index_is_404() {
        let err = EsError::from(Error::UnknownStream("nope".into()));
        assert_eq!(err.status, StatusCode::NOT_FOUND);
        assert_eq!(
            err.body()["error"]["type"],
            json!("index_not_found_exception")
        );
        assert_eq!(err.body()["error"]["index"], json!("nope"));
        assert_eq!(
            err.body()["error"]["root_cause"][0]["reason"],
            json!("no such index [nope]")
        );
    }

    #[test]
    fn an_answered_error_is_passed_on_as_it_was() {
        let err = EsError::index_not_found("logs-x");
        let again = EsError::from_answer(err.status, err.body().to_string().as_bytes());
        assert_eq!(again, err);
        let odd = EsError::from_answer(StatusCode::BAD_REQUEST, b"not json");
        assert_eq!(
            (odd.status, odd.kind, odd.reason.as_str()),
            (StatusCode::BAD_REQUEST, "exception", "not json")
        );
    }

    #[test]
    fn internal_errors_hide_details() {
        let err = EsError::from(Error::Internal("/secret/path".into()));
        assert_eq!(err.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(err.reason, "internal error, see the server log");
    }
}
