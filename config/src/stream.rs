//! `[streams.<name>]`: retention and schema of one stream.

use serde::{Deserialize, Serialize};

/// Names of the streams every installation has; their schemas are fixed.
pub const BUILTIN_STREAMS: [&str; 2] = ["logs", "audit"];

/// `[streams.<name>]` section. For the built-in streams (`logs`, `audit`) only retention,
/// `commit_interval_ms` and `unwrap_agent_json` may be set; the schema keys are for declared streams (generic JSON
/// documents, e.g. from `_bulk` or OTLP).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StreamConfig {
    /// Splits whose newest document is older than this are deleted. Unset (the default): off.
    pub retention_max_age_secs: Option<u64>,
    /// When the stream's index bytes exceed this, its oldest splits are deleted. Unset (the
    /// default): off.
    pub retention_max_bytes: Option<u64>,
    /// Commit interval of this stream. Unset (the default): `indexer.commit_interval_ms`.
    pub commit_interval_ms: Option<u64>,
    /// Field of each document holding its timestamp. Default `timestamp`.
    pub timestamp_field: String,
    /// How `timestamp_field` is written. Default `rfc3339`.
    pub timestamp_format: TimestampFormat,
    /// Fields indexed as raw keywords (exact match, aggregations, sorting). Default none.
    pub keyword_fields: Vec<String>,
    /// Fields indexed as numbers (ranges, aggregations). Default none.
    pub numeric_fields: Vec<String>,
    /// Fields a query term without a field name searches. Empty (the default) searches the
    /// document's full text.
    pub default_fields: Vec<String>,
    /// `logs`-shaped streams: a message that is an agent's JSON object (it has a string `log`
    /// or a `message`, e.g. Fluent Bit's `Line_Format json` on Loki) is unwrapped: that
    /// field becomes the message, the others fill the record and its attributes. Records a
    /// Trawl collector ships are never unwrapped. Default true.
    pub unwrap_agent_json: bool,
}

impl Default for StreamConfig {
    fn default() -> Self {
        StreamConfig {
            retention_max_age_secs: None,
            retention_max_bytes: None,
            commit_interval_ms: None,
            timestamp_field: default_timestamp_field(),
            timestamp_format: TimestampFormat::default(),
            keyword_fields: Vec::new(),
            numeric_fields: Vec::new(),
            default_fields: Vec::new(),
            unwrap_agent_json: true,
        }
    }
}

/// How a declared stream's timestamp field is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimestampFormat {
    /// An RFC 3339 string, e.g. `2024-05-01T12:00:00.123Z`. The default.
    #[default]
    Rfc3339,
    /// Seconds since the Unix epoch (integer or fractional).
    UnixS,
    /// Milliseconds since the Unix epoch.
    UnixMs,
    /// Nanoseconds since the Unix epoch.
    UnixNs,
}

fn default_timestamp_field() -> String {
    "timestamp".to_string()
}
