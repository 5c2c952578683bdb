//! The node's journal: the flat documents of the `journal` stream and their mapping from the
//! entries `journalctl -o json` prints (one JSON object a line, every value a string, or an
//! array of bytes where the text is not UTF-8).
//!
//! An entry is identified by its `__CURSOR`, so the same entry sent twice (a reader restarted
//! from an older cursor, a resend) is one document.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{Error, Result, Timestamp};

fn is_empty(s: &str) -> bool {
    s.is_empty()
}

/// One document of the `journal` stream.
///
/// The JSON form leaves out empty strings and `None`; unknown fields of a flat document are
/// refused, so a misspelt field is an error naming it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JournalEntry {
    /// `__REALTIME_TIMESTAMP`; absent in a flat document without one: the receive time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "is_empty")]
    pub cluster: String,
    /// The node (`_HOSTNAME` unless the collector stamped it).
    #[serde(default, skip_serializing_if = "is_empty")]
    pub node: String,
    /// `_SYSTEMD_UNIT` (`kubelet.service`); none for the kernel's messages.
    #[serde(default, skip_serializing_if = "is_empty")]
    pub unit: String,
    /// `SYSLOG_IDENTIFIER` (`kubelet`, `containerd`, `kernel`).
    #[serde(default, skip_serializing_if = "is_empty")]
    pub identifier: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<i64>,
    /// `PRIORITY`, syslog's 0 (emerg) to 7 (debug).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i64>,
    /// From `priority`: 0–2 `fatal`, 3 `error`, 4 `warn`, 5–6 `info`, 7 `debug`.
    #[serde(default, skip_serializing_if = "is_empty")]
    pub level: String,
    #[serde(default, skip_serializing_if = "is_empty")]
    pub message: String,
    /// `_BOOT_ID`.
    #[serde(default, skip_serializing_if = "is_empty")]
    pub boot_id: String,
    /// `__CURSOR`: where the entry is in the journal, and its identity.
    #[serde(default, skip_serializing_if = "is_empty")]
    pub cursor: String,
}

impl JournalEntry {
    /// The document's identity: its cursor; `None` without one (kept as sent).
    pub fn dedup_key(&self) -> Option<String> {
        (!self.cursor.is_empty()).then(|| self.cursor.clone())
    }
}

/// The level of a syslog priority (`None` outside 0–7).
pub fn level_of_priority(priority: i64) -> Option<&'static str> {
    Some(match priority {
        0..=2 => "fatal",
        3 => "error",
        4 => "warn",
        5 | 6 => "info",
        7 => "debug",
        _ => return None,
    })
}

/// Parses one line: an entry of `journalctl -o json` (it has `__CURSOR`,
/// `__REALTIME_TIMESTAMP` or `MESSAGE`) or a flat document. The error names what is wrong.
pub fn parse_journal_line(line: &[u8]) -> Result<JournalEntry> {
    let value: Value = serde_json::from_slice(line)
        .map_err(|e| Error::InvalidRecord(format!("invalid JSON: {e}")))?;
    let Value::Object(map) = value else {
        return Err(Error::InvalidRecord(
            "a journal entry must be a JSON object".to_string(),
        ));
    };
    let raw = ["__CURSOR", "__REALTIME_TIMESTAMP", "MESSAGE"]
        .iter()
        .any(|k| map.contains_key(*k));
    let mut entry = if raw {
        from_journalctl(&map)?
    } else {
        serde_json::from_value(Value::Object(map))
            .map_err(|e| Error::InvalidRecord(format!("invalid journal document: {e}")))?
    };
    if !entry.level.is_empty() {
        entry.level = crate::Level::normalise(&entry.level)
            .ok_or_else(|| {
                field_error(
                    "level",
                    "must be one of trace, debug, info, warn, error, fatal",
                )
            })?
            .as_str()
            .to_string();
    }
    if let Some(priority) = entry.priority {
        let level = level_of_priority(priority)
            .ok_or_else(|| field_error("priority", &format!("must be 0 to 7, not {priority}")))?;
        if entry.level.is_empty() {
            entry.level = level.to_string();
        }
    }
    Ok(entry)
}

fn field_error(key: &str, problem: &str) -> Error {
    Error::InvalidRecord(format!("field `{key}` {problem}"))
}

/// A journal field's text: a string, or an array of bytes (journalctl's form for text that is
/// not UTF-8, decoded lossily); empty when absent or `null`.
fn text(map: &Map<String, Value>, key: &str) -> Result<String> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Array(items)) => {
            let bytes: Option<Vec<u8>> = items
                .iter()
                .map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok()))
                .collect();
            bytes
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .ok_or_else(|| field_error(key, "must be a string or an array of bytes"))
        }
        Some(_) => Err(field_error(key, "must be a string or an array of bytes")),
    }
}

/// A journal field holding a decimal integer (journalctl writes numbers as strings).
fn integer(map: &Map<String, Value>, key: &str) -> Result<Option<i64>> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .map(Some)
            .ok_or_else(|| field_error(key, "must be an integer")),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => s
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| field_error(key, &format!("must be an integer, not {s:?}"))),
        Some(_) => Err(field_error(key, "must be an integer")),
    }
}

/// Maps a `journalctl -o json` entry; `cluster` and `node` may be stamped by whoever read it.
fn from_journalctl(map: &Map<String, Value>) -> Result<JournalEntry> {
    let timestamp = match integer(map, "__REALTIME_TIMESTAMP")? {
        Some(micros) => {
            Some(Timestamp(micros.checked_mul(1000).ok_or_else(|| {
                field_error("__REALTIME_TIMESTAMP", "is out of range")
            })?))
        }
        None => None,
    };
    let node = match text(map, "node")? {
        stamped if !stamped.is_empty() => stamped,
        _ => text(map, "_HOSTNAME")?,
    };
    Ok(JournalEntry {
        timestamp,
        cluster: text(map, "cluster")?,
        node,
        unit: text(map, "_SYSTEMD_UNIT")?,
        identifier: text(map, "SYSLOG_IDENTIFIER")?,
        pid: integer(map, "_PID")?,
        priority: integer(map, "PRIORITY")?,
        level: String::new(),
        message: text(map, "MESSAGE")?,
        boot_id: text(map, "_BOOT_ID")?,
        cursor: text(map, "__CURSOR")?,
    })
}

#[cfg(test)]
mod tests;
