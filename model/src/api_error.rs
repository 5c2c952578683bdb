//! The one error-code enum and the one JSON error envelope of every HTTP surface:
//! `{"error": {"code": "...", "message": "..."}}`, with the HTTP status decided by the code and
//! nowhere else. The same condition has the same code wherever it is answered (a 413 is
//! `payload_too_large` from ingest, the audit webhook and the query routes alike).
//!
//! The answer itself is built by [`ApiError`]'s `axum::response::IntoResponse`, behind this
//! crate's `axum` feature: the HTTP crates enable it, the rest of the model stays free of it.

use http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The closed set of error codes an HTTP answer can carry; each has one HTTP status.
/// Serialized as its snake_case name (`payload_too_large`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// A request that cannot be read (a body that is not JSON or does not decompress): 400.
    BadRequest,
    /// A query string that does not parse: 400.
    InvalidQuery,
    /// A parameter or body field that cannot be served as sent (`limit` too large, a bad
    /// time): 400.
    InvalidArgument,
    /// An aggregation that is not valid, or names a field it cannot aggregate on: 400.
    InvalidAggregation,
    /// No valid credentials: 401.
    Unauthorized,
    /// Credentials that do not allow this request: 403.
    Forbidden,
    /// A resource other than a stream that does not exist: 404.
    NotFound,
    /// A stream that is neither built in nor declared: 404.
    UnknownStream,
    /// A source's batch that starts past what the index holds (the answer carries the marks): 409.
    OffsetGap,
    /// A body over a size limit, compressed or once decompressed: 413.
    PayloadTooLarge,
    /// A `Content-Encoding` or `Content-Type` the endpoint does not take: 415.
    UnsupportedMediaType,
    /// Well formed but over the configured resource limits: 422.
    TooExpensive,
    /// No capacity within the wait; the answer says when to retry: 429.
    TooManyRequests,
    /// A server-side failure; details are logged, never answered: 500.
    Internal,
    /// Not ready yet, shutting down, or no peer answered: 503.
    Unavailable,
    /// The time budget ran out before any answer: 504.
    Timeout,
    /// The storage cannot be written; the answer says when to retry: 507.
    InsufficientStorage,
}

impl ErrorCode {
    /// Every code, for tables and tests.
    pub const ALL: [ErrorCode; 17] = [
        ErrorCode::BadRequest,
        ErrorCode::InvalidQuery,
        ErrorCode::InvalidArgument,
        ErrorCode::InvalidAggregation,
        ErrorCode::Unauthorized,
        ErrorCode::Forbidden,
        ErrorCode::NotFound,
        ErrorCode::UnknownStream,
        ErrorCode::OffsetGap,
        ErrorCode::PayloadTooLarge,
        ErrorCode::UnsupportedMediaType,
        ErrorCode::TooExpensive,
        ErrorCode::TooManyRequests,
        ErrorCode::Internal,
        ErrorCode::Unavailable,
        ErrorCode::Timeout,
        ErrorCode::InsufficientStorage,
    ];

    /// The HTTP status of this code.
    pub fn http_status(self) -> StatusCode {
        match self {
            ErrorCode::BadRequest
            | ErrorCode::InvalidQuery
            | ErrorCode::InvalidArgument
            | ErrorCode::InvalidAggregation => StatusCode::BAD_REQUEST,
            ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorCode::Forbidden => StatusCode::FORBIDDEN,
            ErrorCode::NotFound | ErrorCode::UnknownStream => StatusCode::NOT_FOUND,
            ErrorCode::OffsetGap => StatusCode::CONFLICT,
            ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::TooExpensive => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Timeout => StatusCode::GATEWAY_TIMEOUT,
            ErrorCode::InsufficientStorage => StatusCode::INSUFFICIENT_STORAGE,
        }
    }

    /// The code as it stands in the envelope: `payload_too_large`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::InvalidQuery => "invalid_query",
            ErrorCode::InvalidArgument => "invalid_argument",
            ErrorCode::InvalidAggregation => "invalid_aggregation",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::UnknownStream => "unknown_stream",
            ErrorCode::OffsetGap => "offset_gap",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::TooExpensive => "too_expensive",
            ErrorCode::TooManyRequests => "too_many_requests",
            ErrorCode::Internal => "internal",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Timeout => "timeout",
            ErrorCode::InsufficientStorage => "insufficient_storage",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `error` object of the envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What went wrong, for programs.
    pub code: ErrorCode,
    /// What went wrong, for people; never holds internals of a 5xx.
    pub message: String,
}

/// An error answer of the HTTP API. Serialized, it is the envelope
/// `{"error": {"code", "message"}, ...extra}`; answered (feature `axum`), it has the status of
/// its code and, where set, a `Retry-After` header.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiError {
    /// The code and the message.
    pub error: ErrorBody,
    /// Top-level keys beside `error` that some answers add (the marks of an `offset_gap`, the
    /// indexers that failed a fan-out).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
    /// Seconds for the `Retry-After` header (429, 503, 507).
    #[serde(skip)]
    pub retry_after_secs: Option<u64>,
    /// What a 5xx hides from the client: logged once when the answer is made.
    #[serde(skip)]
    pub cause: Option<String>,
}

impl ApiError {
    /// An answer with `code` and `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError {
            error: ErrorBody {
                code,
                message: message.into(),
            },
            extra: Map::new(),
            retry_after_secs: None,
            cause: None,
        }
    }

    /// A 400 `bad_request`.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::BadRequest, message)
    }

    /// A 404 `unknown_stream` naming the stream (cut to 64 characters: it comes from a request).
    pub fn unknown_stream(stream: &str) -> ApiError {
        ApiError::new(
            ErrorCode::UnknownStream,
            format!(
                "unknown stream `{}`",
                stream.chars().take(64).collect::<String>()
            ),
        )
    }

    /// A 500 `internal` whose answer says only to look at the log; `cause` is logged when the
    /// answer is made.
    pub fn internal(cause: impl std::fmt::Display) -> ApiError {
        let mut err = ApiError::new(ErrorCode::Internal, "internal error, see the server log");
        err.cause = Some(cause.to_string());
        err
    }

    /// Adds a top-level key beside `error`.
    pub fn with_extra(mut self, key: &str, value: Value) -> ApiError {
        self.extra.insert(key.to_string(), value);
        self
    }

    /// Sets the `Retry-After` header.
    pub fn retry_after(mut self, secs: u64) -> ApiError {
        self.retry_after_secs = Some(secs);
        self
    }

    /// The code.
    pub fn code(&self) -> ErrorCode {
        self.error.code
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.error.message
    }

    /// The HTTP status of the code.
    pub fn http_status(&self) -> StatusCode {
        self.error.code.http_status()
    }

    /// Sets the `Retry-After` header when the answer has one (for the protocol-shaped answers
    /// of other systems' agents, which carry it too).
    pub fn set_retry_after(&self, headers: &mut http::HeaderMap) {
        if let Some(secs) = self.retry_after_secs {
            headers.insert(http::header::RETRY_AFTER, http::HeaderValue::from(secs));
        }
    }

    /// The envelope as JSON.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

#[cfg(feature = "axum")]
impl axum::response::IntoResponse for ApiError {
    /// The envelope as a JSON answer with the code's status. A 5xx's cause is logged here, once;
    /// 4xx are the client's business and traced at debug level only.
    fn into_response(self) -> axum::response::Response {
        let status = self.http_status();
        if status.is_server_error() {
            tracing::error!(
                code = %self.error.code,
                cause = self.cause.as_deref().unwrap_or(&self.error.message),
                "request failed"
            );
        } else {
            tracing::debug!(code = %self.error.code, message = %self.error.message, "request refused");
        }
        let mut headers = http::HeaderMap::new();
        self.set_retry_after(&mut headers);
        (status, headers, axum::Json(self)).into_response()
    }
}

#[cfg(feature = "axum")]
impl From<axum::extract::rejection::BytesRejection> for ApiError {
    /// A body that could not be read: `payload_too_large` past the route's body limit,
    /// `bad_request` otherwise (axum's own answer would be plain text).
    fn from(rejection: axum::extract::rejection::BytesRejection) -> ApiError {
        let code = if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ErrorCode::PayloadTooLarge
        } else {
            ErrorCode::BadRequest
        };
        ApiError::new(code, rejection.body_text())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_code_has_its_name_and_status() {
        let statuses: Vec<(&str, u16)> = ErrorCode::ALL
            .iter()
            .map(|c| (c.as_str(), c.http_status().as_u16()))
            .collect();
        assert_eq!(
            statuses,
            [
                ("bad_request", 400),
                ("invalid_query", 400),
                ("invalid_argument", 400),
                ("invalid_aggregation", 400),
                ("unauthorized", 401),
                ("forbidden", 403),
                ("not_found", 404),
                ("unknown_stream", 404),
                ("offset_gap", 409),
                ("payload_too_large", 413),
                ("unsupported_media_type", 415),
                ("too_expensive", 422),
                ("too_many_requests", 429),
                ("internal", 500),
                ("unavailable", 503),
                ("timeout", 504),
                ("insufficient_storage", 507),
            ]
        );
        for code in ErrorCode::ALL {
            assert_eq!(serde_json::to_value(code).unwrap(), json!(code.as_str()));
            let back: ErrorCode = serde_json::from_value(json!(code.as_str())).unwrap();
            assert_eq!(back, code);
        }
    }

    #[test]
    fn the_envelope_with_extra_keys() {
        let err = ApiError::new(ErrorCode::OffsetGap, "resend")
            .with_extra("marks", json!({"a": 1}))
            .retry_after(3);
        assert_eq!(
            err.to_json(),
            json!({"error": {"code": "offset_gap", "message": "resend"}, "marks": {"a": 1}})
        );
        let back: ApiError = serde_json::from_value(err.to_json()).unwrap();
        assert_eq!(back.code(), ErrorCode::OffsetGap);
        assert_eq!(back.extra["marks"], json!({"a": 1}));
    }

    #[test]
    fn internal_causes_are_not_answered() {
        let err = ApiError::internal("/var/lib/trawl/wal: permission denied");
        assert_eq!(
            err.to_json(),
            json!({"error": {"code": "internal", "message": "internal error, see the server log"}})
        );
        assert_eq!(err.http_status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
