//! The query crate's error type and the one place where errors become HTTP status codes.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

/// What can go wrong while serving a query.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The query string does not parse; the message says where it failed.
    #[error("invalid query: {0}")]
    InvalidQuery(String),
    /// A request parameter or body field that cannot be served as sent (`limit` too large, a
    /// malformed time, an unknown body field, a bad cursor).
    #[error("{0}")]
    InvalidArgument(String),
    /// An aggregation request that is not valid Elasticsearch aggregation syntax, or that
    /// names a field it cannot aggregate on.
    #[error("invalid aggregation: {0}")]
    InvalidAggregation(String),
    /// The stream is neither built in nor declared in the configuration.
    #[error("unknown stream `{0}`")]
    UnknownStream(String),
    /// The request would use more memory or buckets than the configured limits allow.
    #[error("query too expensive: {0}")]
    TooExpensive(String),
    /// The query did not finish within its time budget (and not even a partial answer could be
    /// given in time).
    #[error("query timed out after {0} ms")]
    Timeout(u64),
    /// Anything else: an index that cannot be read, a worker that died. Details are logged,
    /// never sent to the client.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Result with the query crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// The closed set of outcomes a client can tell apart; each maps to one HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// The request is malformed: 400.
    BadRequest,
    /// The addressed resource (a stream) does not exist: 404.
    NotFound,
    /// Well-formed but over the configured resource limits: 422.
    TooExpensive,
    /// The time budget ran out before any answer: 504.
    Timeout,
    /// A server-side failure: 500.
    Internal,
}

impl ErrorCode {
    /// The HTTP status of this code.
    pub fn http_status(self) -> StatusCode {
        match self {
            ErrorCode::BadRequest => StatusCode::BAD_REQUEST,
            ErrorCode::NotFound => StatusCode::NOT_FOUND,
            ErrorCode::TooExpensive => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::Timeout => StatusCode::GATEWAY_TIMEOUT,
            ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl Error {
    /// Which class of error this is for the client.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::InvalidQuery(_) | Error::InvalidArgument(_) | Error::InvalidAggregation(_) => {
                ErrorCode::BadRequest
            }
            Error::UnknownStream(_) => ErrorCode::NotFound,
            Error::TooExpensive(_) => ErrorCode::TooExpensive,
            Error::Timeout(_) => ErrorCode::Timeout,
            Error::Internal(_) => ErrorCode::Internal,
        }
    }

    /// The machine-readable `code` of the JSON error body: finer than [`ErrorCode`], stable.
    pub fn code_name(&self) -> &'static str {
        match self {
            Error::InvalidQuery(_) => "invalid_query",
            Error::InvalidArgument(_) => "invalid_argument",
            Error::InvalidAggregation(_) => "invalid_aggregation",
            Error::UnknownStream(_) => "unknown_stream",
            Error::TooExpensive(_) => "too_expensive",
            Error::Timeout(_) => "timeout",
            Error::Internal(_) => "internal",
        }
    }

    /// The message shown to the client: the error itself for 4xx, a fixed text for 5xx so
    /// that paths and library internals never leak.
    pub fn public_message(&self) -> String {
        match self {
            Error::Internal(_) => "internal error, see the server log".to_string(),
            other => other.to_string(),
        }
    }
}

impl From<trawl_index::Error> for Error {
    fn from(err: trawl_index::Error) -> Self {
        match err {
            trawl_index::Error::UnknownStream(name) => Error::UnknownStream(name),
            trawl_index::Error::InvalidArgument(message) => Error::InvalidArgument(message),
            other => Error::Internal(other.to_string()),
        }
    }
}

impl From<trawl_model::Error> for Error {
    fn from(err: trawl_model::Error) -> Self {
        Error::InvalidArgument(err.to_string())
    }
}

impl IntoResponse for Error {
    /// `{"error": {"code": "...", "message": "..."}}` with the status of [`Error::code`].
    /// 5xx errors are logged here with their details; 4xx are the client's business and are
    /// only traced at debug level.
    fn into_response(self) -> Response {
        let code = self.code();
        if code == ErrorCode::Internal {
            tracing::error!(error = %self, "search failed");
        } else {
            tracing::debug!(error = %self, "search refused");
        }
        let body = serde_json::json!({
            "error": { "code": self.code_name(), "message": self.public_message() }
        });
        (code.http_status(), Json(body)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes() {
        let cases = [
            (Error::InvalidQuery("x".into()), 400, "invalid_query"),
            (Error::InvalidArgument("x".into()), 400, "invalid_argument"),
            (
                Error::InvalidAggregation("x".into()),
                400,
                "invalid_aggregation",
            ),
            (Error::UnknownStream("x".into()), 404, "unknown_stream"),
            (Error::TooExpensive("x".into()), 422, "too_expensive"),
            (Error::Timeout(5), 504, "timeout"),
            (Error::Internal("x".into()), 500, "internal"),
        ];
        for (err, status, name) in cases {
            assert_eq!(err.code().http_status().as_u16(), status, "{err}");
            assert_eq!(err.code_name(), name);
        }
    }

    #[test]
    fn internal_details_are_not_shown() {
        let err = Error::Internal("/var/lib/trawl/splits/x: permission denied".into());
        assert_eq!(err.public_message(), "internal error, see the server log");
        let err = Error::from(trawl_index::Error::UnknownStream("nope".into()));
        assert_eq!(err.public_message(), "unknown stream `nope`");
        assert_eq!(err.code(), ErrorCode::NotFound);
    }
}
