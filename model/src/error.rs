//! The model's error type.

/// What can go wrong when decoding records, bodies or time expressions.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A `Content-Encoding` other than identity, zstd or gzip.
    #[error("unsupported content encoding `{0}`: use zstd, gzip or none")]
    UnsupportedEncoding(String),
    /// The body, once decompressed, is larger than the configured limit.
    #[error("body exceeds {limit} bytes once decompressed")]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The compressed body is truncated or not in the announced encoding.
    #[error("body could not be decompressed as {encoding}: {message}")]
    Corrupt {
        /// The encoding announced by the client.
        encoding: String,
        /// What the decoder said.
        message: String,
    },
    /// A record that is not valid for its stream.
    #[error("{0}")]
    InvalidRecord(String),
    /// A Kubernetes audit event with a required field missing, or a field of the wrong type or
    /// format; `field` is the field's path in the event (`auditID`, `user.groups`, ...).
    #[error("invalid audit event: `{field}` {problem}")]
    InvalidAuditEvent {
        /// The dotted path of the field in the Kubernetes `Event`.
        field: String,
        /// What is wrong with it: `is missing`, `must be a string`, ...
        problem: String,
    },
    /// A time expression that is neither RFC 3339 nor `now[+-]N<unit>`.
    #[error("invalid time `{0}`: expected RFC 3339 (2026-11-25T10:15:00Z) or now, now-15m, now+1h (units s, m, h, d, w)")]
    InvalidTime(String),
    /// A stream name that is not `[a-z0-9_-]{1,64}`.
    #[error("invalid stream name `{0}`: use 1 to 64 characters of a-z, 0-9, _ and -")]
    InvalidStreamName(String),
}

/// Result with the model's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
