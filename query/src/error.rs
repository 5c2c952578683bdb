//! The query crate's error type; each error says its [`ErrorCode`], which decides the HTTP
//! status and the envelope (`trawl_model::ApiError`).

use axum::response::{IntoResponse, Response};
use trawl_model::ApiError;
pub use trawl_model::ErrorCode;

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
    /// A request body over the route's size limit.
    #[error("{0}")]
    PayloadTooLarge(String),
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

impl Error {
    /// The code of the error answer, which decides its HTTP status.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::InvalidQuery(_) => ErrorCode::InvalidQuery,
            Error::InvalidArgument(_) => ErrorCode::InvalidArgument,
            Error::InvalidAggregation(_) => ErrorCode::InvalidAggregation,
            Error::PayloadTooLarge(_) => ErrorCode::PayloadTooLarge,
            Error::UnknownStream(_) => ErrorCode::UnknownStream,
            Error::TooExpensive(_) => ErrorCode::TooExpensive,
            Error::Timeout(_) => ErrorCode::Timeout,
            Error::Internal(_) => ErrorCode::Internal,
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

impl From<axum::extract::rejection::BytesRejection> for Error {
    /// A body that could not be read: too large past the route's limit, else a bad argument.
    fn from(rejection: axum::extract::rejection::BytesRejection) -> Self {
        let message = format!("request body: {}", rejection.body_text());
        if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            Error::PayloadTooLarge(message)
        } else {
            Error::InvalidArgument(message)
        }
    }
}

impl From<axum::extract::rejection::QueryRejection> for Error {
    /// A query string that does not parse into the route's parameters.
    fn from(rejection: axum::extract::rejection::QueryRejection) -> Self {
        Error::InvalidArgument(format!("query string: {}", rejection.body_text()))
    }
}

impl From<trawl_model::Error> for Error {
    fn from(err: trawl_model::Error) -> Self {
        Error::InvalidArgument(err.to_string())
    }
}

impl From<Error> for ApiError {
    /// The envelope of the error; a 5xx keeps its details as the logged cause only.
    fn from(err: Error) -> ApiError {
        let mut answer = ApiError::new(err.code(), err.public_message());
        if let Error::Internal(_) = err {
            answer.cause = Some(err.to_string());
        }
        answer
    }
}

impl IntoResponse for Error {
    /// `{"error": {"code": "...", "message": "..."}}` with the status of [`Error::code`].
    fn into_response(self) -> Response {
        ApiError::from(self).into_response()
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
            (Error::PayloadTooLarge("x".into()), 413, "payload_too_large"),
            (Error::UnknownStream("x".into()), 404, "unknown_stream"),
            (Error::TooExpensive("x".into()), 422, "too_expensive"),
            (Error::Timeout(5), 504, "timeout"),
            (Error::Internal("x".into()), 500, "internal"),
        ];
        for (err, status, name) in cases {
            assert_eq!(err.code().http_status().as_u16(), status, "{err}");
            assert_eq!(err.code().as_str(), name);
        }
    }

    #[test]
    fn internal_details_are_not_shown() {
        let err = Error::Internal("/var/lib/trawl/splits/x: permission denied".into());
        assert_eq!(err.public_message(), "internal error, see the server log");
        let err = Error::from(trawl_index::Error::UnknownStream("nope".into()));
        assert_eq!(err.public_message(), "unknown stream `nope`");
        assert_eq!(err.code(), ErrorCode::UnknownStream);
    }
}
