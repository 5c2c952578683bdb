//! Container log records: the documents of the `logs` stream.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::Timestamp;

/// Field names of the `logs` stream, as they appear in records, queries and exports.
pub mod fields {
    pub const TIMESTAMP: &str = "timestamp";
    pub const CLUSTER: &str = "cluster";
    pub const NODE: &str = "node";
    pub const NAMESPACE: &str = "namespace";
    pub const POD: &str = "pod";
    pub const POD_UID: &str = "pod_uid";
    pub const CONTAINER: &str = "container";
    pub const CONTAINER_ID: &str = "container_id";
    pub const IMAGE: &str = "image";
    pub const LABELS: &str = "labels";
    pub const STREAM: &str = "stream";
    pub const LEVEL: &str = "level";
    pub const MESSAGE: &str = "message";
    pub const ATTRIBUTES: &str = "attributes";
    pub const FILE: &str = "file";
    pub const OFFSET: &str = "offset";
}

/// A normalised severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
    Fatal,
}

impl Level {
    /// The lower-case name stored in the index.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
            Level::Fatal => "fatal",
        }
    }

    /// Normalises the many spellings found in the wild (`WARNING`, `err`, `CRITICAL`, `panic`,
    /// `notice`, syslog and bunyan numbers, ...); `None` when the text is not a level.
    pub fn normalise(text: &str) -> Option<Level> {
        let lower = text.trim().to_ascii_lowercase();
        Some(match lower.as_str() {
            "trace" | "trc" | "finest" | "finer" | "10" => Level::Trace,
            "debug" | "dbg" | "d" | "fine" | "config" | "20" | "7" => Level::Debug,
            "info" | "inf" | "i" | "information" | "informational" | "notice" | "30" | "6"
            | "5" => Level::Info,
            "warn" | "warning" | "wrn" | "w" | "40" | "4" => Level::Warn,
            "error" | "err" | "e" | "eror" | "severe" | "50" | "3" => Level::Error,
            "fatal" | "crit" | "critical" | "panic" | "dpanic" | "alert" | "emerg"
            | "emergency" | "f" | "60" | "2" | "1" | "0" => Level::Fatal,
            _ => return None,
        })
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Level {
    type Err = ();
    fn from_str(s: &str) -> Result<Level, ()> {
        Level::normalise(s).ok_or(())
    }
}

/// One container log record. Empty strings and maps are left out of the JSON form.
///
/// Unknown top-level fields are refused rather than silently dropped: put free-form data in
/// `attributes`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogRecord {
    /// When the line was written (the runtime's timestamp), nanosecond precision. Absent at
    /// ingest means the time of ingestion.
    #[serde(default)]
    pub timestamp: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cluster: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub node: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pod: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pod_uid: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub container: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub container_id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub image: String,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub labels: Map<String, Value>,
    /// `stdout` or `stderr`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub stream: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<Level>,
    /// The line exactly as the container wrote it, without the line terminator.
    #[serde(default)]
    pub message: String,
    /// The fields of a JSON log line.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub attributes: Map<String, Value>,
    /// The file the line was read from.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub file: String,
    /// The byte offset of the record's first line in `file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
}

impl LogRecord {
    /// The record's text field named `field` (`namespace`, `pod`, `pod_uid`, `container`,
    /// `container_id`, `image`, `node`, `cluster`, `stream`, `file`), to fill from a shipper's
    /// key or label; `None` for any other name.
    pub fn text_field_mut(&mut self, field: &str) -> Option<&mut String> {
        Some(match field {
            "namespace" => &mut self.namespace,
            "pod" => &mut self.pod,
            "pod_uid" => &mut self.pod_uid,
            "container" => &mut self.container,
            "container_id" => &mut self.container_id,
            "image" => &mut self.image,
            "node" => &mut self.node,
            "cluster" => &mut self.cluster,
            "stream" => &mut self.stream,
            "file" => &mut self.file,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_spellings() {
        assert_eq!(Level::normalise("WARNING"), Some(Level::Warn));
        assert_eq!(Level::normalise("Err"), Some(Level::Error));
        assert_eq!(Level::normalise("CRITICAL"), Some(Level::Fatal));
        assert_eq!(Level::normalise("notice"), Some(Level::Info));
        assert_eq!(Level::normalise("30"), Some(Level::Info));
        assert_eq!(Level::normalise("verbose-ish"), None);
    }

    #[test]
    fn record_json_round_trip() {
        let line = r#"{"timestamp":"2026-11-25T10:15:00.123456789Z","namespace":"shop","pod":"web-1","stream":"stdout","level":"info","message":"  spaced  ","attributes":{"status":200},"offset":7}"#;
        let rec: LogRecord = serde_json::from_str(line).unwrap();
        assert_eq!(rec.message, "  spaced  ");
        assert_eq!(rec.offset, Some(7));
        assert_eq!(serde_json::to_string(&rec).unwrap(), line);
    }

    #[test]
    fn unknown_field_is_named() {
        let err = serde_json::from_str::<LogRecord>(r#"{"message":"x","colour":"red"}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("colour"), "{err}");
    }
}
