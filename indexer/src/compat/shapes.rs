//! Per-line mapping of what ingest receives onto its stream's records, before validation and
//! the WAL: a `logs` line in any shipper's shape (Fluent Bit, Vector, Filebeat, Trawl's own
//! names; see [`trawl_model::shippers`]) becomes a `logs` record, a flat audit document written
//! with `@timestamp` gets its `timestamp`, and KubeSphere's kube-auditing event (`AuditID`,
//! `User.Username`, ...) becomes the audit.k8s.io/v1 event it wraps. Every ingest surface goes through it (the native
//! ingest API, `_bulk`, Loki push, OTLP), except the batches of Trawl's own collector, which
//! are records already and are never rewritten.

use std::borrow::Cow;

use serde::Serialize;
use serde_json::{Map, Value};
use trawl_model::shippers::{self, MapOptions};
use trawl_model::LogRecord;

use crate::doc::{json_error, StreamKind};

/// A line mapped onto its stream's record: the bytes the WAL keeps (so that a replay builds the
/// very record the first pass built) and, for a `logs` line, the typed record they encode, so
/// that its document is built without parsing the line again.
pub(crate) struct Normalised<'a> {
    pub bytes: Cow<'a, [u8]>,
    pub log: Option<LogRecord>,
}

impl<'a> Normalised<'a> {
    /// The line as it came: validated, not rewritten.
    pub(crate) fn as_it_came(line: &'a [u8]) -> Normalised<'a> {
        Normalised {
            bytes: Cow::Borrowed(line),
            log: None,
        }
    }

    /// `value` encoded as the line the WAL keeps, without a typed record.
    fn encoded(value: &impl Serialize) -> Result<Normalised<'a>, String> {
        let bytes = serde_json::to_vec(value)
            .map_err(|e| format!("the record could not be encoded: {e}"))?;
        Ok(Normalised {
            bytes: Cow::Owned(bytes),
            log: None,
        })
    }
}

/// The line `line` becomes in a stream of `kind`. The error (not JSON, not an object, no
/// message) is the line's rejection.
pub(crate) fn normalise_line<'a>(
    kind: StreamKind,
    line: &'a [u8],
    options: MapOptions,
) -> Result<Normalised<'a>, String> {
    match kind {
        StreamKind::Logs => {
            let doc: Map<String, Value> =
                serde_json::from_slice(line).map_err(|e| json_error(&e))?;
            let record = shippers::log_record(doc, options)?;
            let mut normalised = Normalised::encoded(&record)?;
            normalised.log = Some(record);
            Ok(normalised)
        }
        StreamKind::Audit => {
            // Only a flat document written with `@timestamp` changes; anything else is
            // validated as it came.
            let Ok(mut doc) = serde_json::from_slice::<Map<String, Value>>(line) else {
                return Ok(Normalised::as_it_came(line));
            };
            // KubeSphere's kube-auditing writes the event under its Go names (`AuditID`).
            if shippers::is_kube_auditing(&doc) {
                return Normalised::encoded(&shippers::kube_auditing_to_k8s(&doc));
            }
            if doc.contains_key("timestamp") || !doc.contains_key("@timestamp") {
                return Ok(Normalised::as_it_came(line));
            }
            shippers::audit_aliases(&mut doc);
            Normalised::encoded(&doc)
        }
        // Raw Event objects, journal entries and flat documents alike are read by the stream's
        // document builder.
        StreamKind::Events | StreamKind::Journal | StreamKind::Generic => {
            Ok(Normalised::as_it_came(line))
        }
    }
}

/// A body that is one JSON array (Fluent Bit's `http` output with `Format json`, Vector's
/// `http` sink with its default framing) as NDJSON, one element a line; any other body as it
/// came (an array that does not parse stays one line, refused as not an object).
pub(crate) fn json_array_as_ndjson(body: Vec<u8>) -> Vec<u8> {
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'[') {
        return body;
    }
    let Ok(items) = serde_json::from_slice::<Vec<Value>>(&body) else {
        return body;
    };
    let mut out = Vec::with_capacity(body.len());
    for item in items {
        // Writing a parsed value to memory cannot fail.
        let _ = serde_json::to_writer(&mut out, &item);
        out.push(b'\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logs(line: &str) -> Result<String, String> {
        normalise_line(StreamKind::Logs, line.as_bytes(), MapOptions::default())
            .map(|l| String::from_utf8(l.bytes.into_owned()).unwrap())
    }

    /// The model's table of level cases, as messages of agents' documents without a level
    /// field: the compat path detects what the collector detects.
    #[test]
    fn levels_of_messages_follow_the_models_table() {
        for (message, want) in trawl_model::level::cases::CASES {
            let line = serde_json::json!({ "message": message }).to_string();
            let record: trawl_model::LogRecord =
                serde_json::from_str(&logs(&line).unwrap()).unwrap();
            assert_eq!(record.level, *want, "{message:?}");
        }
    }

    #[test]
    fn agent_lines_become_records_and_bad_ones_say_why() {
        // Fluent Bit's `http` output, `Format json_lines` (regression: `unknown field `log``).
        assert_eq!(
            logs(r#"{"date":1795601700.5,"time":"2026-11-25T10:15:00.500000001Z","stream":"stdout","_p":"F","log":"hello\n"}"#)
                .unwrap(),
            r#"{"timestamp":"2026-11-25T10:15:00.500000001Z","stream":"stdout","message":"hello"}"#
        );
        assert!(logs("{oops").unwrap_err().starts_with("invalid JSON"));
        assert!(logs("[1]").unwrap_err().starts_with("not a JSON object"));
        assert!(logs(r#"{"namespace":"x"}"#)
            .unwrap_err()
            .starts_with("no message"));
        let audit = normalise_line(
            StreamKind::Audit,
            br#"{"@timestamp":"2026-11-25T10:15:00Z","audit_id":"a","stage":"ResponseComplete"}"#,
            MapOptions::default(),
        )
        .unwrap();
        assert!(audit.log.is_none());
        let audit: Value = serde_json::from_slice(&audit.bytes).unwrap();
        assert_eq!(audit["timestamp"], "2026-11-25T10:15:00Z");
        assert!(audit.get("@timestamp").is_none());
        assert_eq!(
            json_array_as_ndjson(b" [{\"a\":1},\n {\"b\":[2]}]".to_vec()),
            b"{\"a\":1}\n{\"b\":[2]}\n"
        );
        assert_eq!(json_array_as_ndjson(b"[oops".to_vec()), b"[oops");
        assert_eq!(json_array_as_ndjson(b"{}\n".to_vec()), b"{}\n");
        let generic = br#"{"log":"x"}"#;
        assert_eq!(
            normalise_line(StreamKind::Generic, generic, MapOptions::default())
                .unwrap()
                .bytes,
            &generic[..]
        );
    }
}
