//! Trawl's data model: the records that flow from collector to index (container log lines,
//! Kubernetes audit events, Kubernetes Events and journal entries), their field names, the time grammar of the
//! HTTP API and the wire codec (NDJSON, optionally zstd- or gzip-compressed), and the error envelope every HTTP
//! surface answers. No I/O and no async here.

pub mod api_error;
pub mod audit;
pub mod codec;
pub mod elastic;
mod error;
pub mod events;
pub mod journal;
pub mod level;
pub mod log;
pub mod path;
pub mod schema;
pub mod shippers;
pub mod time;

pub use api_error::{ApiError, ErrorCode};
pub use audit::AuditEvent;
pub use error::{Error, Result};
pub use events::KubeEvent;
pub use journal::JournalEntry;
pub use log::{Level, LogRecord};
pub use time::Timestamp;

/// The built-in stream of container logs.
pub const LOGS_STREAM: &str = "logs";
/// The built-in stream of Kubernetes audit events.
pub const AUDIT_STREAM: &str = "audit";
/// The built-in stream of Kubernetes Events.
pub const EVENTS_STREAM: &str = "events";
/// The built-in stream of the nodes' journal entries.
pub const JOURNAL_STREAM: &str = "journal";

/// Checks that a stream name is safe to use as a path component and in URLs: 1 to 64 characters
/// of `[a-z0-9_-]`, starting with a letter or digit. Anything else (`..`, `/`, upper case) is
/// refused, so that a name taken from a request can never escape the data directory.
pub fn validate_stream_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidStreamName(name.chars().take(80).collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_names() {
        assert!(validate_stream_name("logs").is_ok());
        assert!(validate_stream_name("app-logs_2").is_ok());
        for bad in ["", "..", "a/b", "Logs", "-x", "x y", &"a".repeat(65)] {
            assert!(validate_stream_name(bad).is_err(), "{bad:?} accepted");
        }
    }
}
