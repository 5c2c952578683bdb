//! Validation of incoming records against their stream's fields, and their conversion into
//! tantivy documents. One code path serves ingest and WAL replay, so that a replay builds the
//! very documents the first pass built.

use serde_json::{Map, Value};
use tantivy::schema::{Field, OwnedValue, Schema};
use tantivy::{DateTime, TantivyDocument};
use trawl_model::schema::{FieldDef, FieldKind, LOG_DEFAULT_FIELDS, LOG_FIELDS};
use trawl_model::{Level, Timestamp};

use crate::schema::{build_schema, ID_FIELD};

/// How a stream's records are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamKind {
    /// Flat container log records.
    Logs,
    /// Kubernetes audit events, raw (`audit.k8s.io` Event) or flat; identified by
    /// `(audit_id, stage)`.
    Audit,
}

/// The definition of a stream: its fields and how records are read.
#[derive(Debug, Clone)]
pub struct StreamSpec {
    pub name: String,
    pub kind: StreamKind,
    pub fields: &'static [FieldDef],
    pub default_fields: &'static [&'static str],
}

impl StreamSpec {
    /// The built-in `logs` stream.
    pub fn logs() -> StreamSpec {
        StreamSpec {
            name: trawl_model::LOGS_STREAM.into(),
            kind: StreamKind::Logs,
            fields: LOG_FIELDS,
            default_fields: LOG_DEFAULT_FIELDS,
        }
    }

    /// The built-in `audit` stream.
    pub fn audit() -> StreamSpec {
        StreamSpec {
            name: trawl_model::AUDIT_STREAM.into(),
            kind: StreamKind::Audit,
            fields: trawl_model::schema::AUDIT_FIELDS,
            default_fields: trawl_model::schema::AUDIT_DEFAULT_FIELDS,
        }
    }

    pub fn schema(&self) -> Schema {
        build_schema(self.fields)
    }
}

/// A validated record, ready to index.
pub struct Prepared {
    pub doc: TantivyDocument,
    /// The record's timestamp, nanoseconds (given or the receive time).
    #[allow(dead_code)]
    pub timestamp: i64,
    /// The record's identity where the stream has one: a second copy replaces the first.
    pub id: Option<String>,
}

/// Builds documents for one stream's schema.
pub struct DocBuilder {
    kind: StreamKind,
    fields: Vec<(FieldDef, Field)>,
    timestamp: Field,
    id: Field,
}

impl DocBuilder {
    pub fn new(spec: &StreamSpec, schema: &Schema) -> crate::Result<DocBuilder> {
        let lookup = |name: &str| {
            schema
                .get_field(name)
                .map_err(|_| crate::Error::InvalidArgument(format!("schema lacks field `{name}`")))
        };
        let fields = spec
            .fields
            .iter()
            .map(|def| Ok((*def, lookup(def.name)?)))
            .collect::<crate::Result<Vec<_>>>()?;
        Ok(DocBuilder {
            kind: spec.kind,
            fields,
            timestamp: lookup("timestamp")?,
            id: lookup(ID_FIELD)?,
        })
    }

    /// Validates one record and builds its document; `received_at` stands in for an absent
    /// timestamp. The error says what is wrong, for the ingest response.
    pub fn prepare(&self, line: &[u8], received_at: i64) -> Result<Prepared, String> {
        match self.kind {
            StreamKind::Logs => {
                let map: Map<String, Value> =
                    serde_json::from_slice(line).map_err(|e| json_error(&e))?;
                self.build(map, received_at, None)
            }
            StreamKind::Audit => {
                let event =
                    trawl_model::audit::parse_audit_line(line).map_err(|e| e.to_string())?;
                let id = event.dedup_key();
                match serde_json::to_value(&event) {
                    Ok(Value::Object(map)) => self.build(map, received_at, Some(id)),
                    _ => Err("audit event could not be converted".into()),
                }
            }
        }
    }

    fn build(
        &self,
        map: Map<String, Value>,
        received_at: i64,
        id: Option<String>,
    ) -> Result<Prepared, String> {
        let mut doc = TantivyDocument::new();
        let mut timestamp = None;
        for (key, value) in map {
            if value.is_null() {
                continue;
            }
            let Some((def, field)) = self.fields.iter().find(|(def, _)| def.name == key) else {
                return Err(format!(
                    "unknown field `{}`",
                    key.chars().take(64).collect::<String>()
                ));
            };
            let mismatch = |expected: &str| format!("field `{}` must be {expected}", def.name);
            match def.kind {
                FieldKind::Timestamp => {
                    let ts: Timestamp =
                        serde_json::from_value(value).map_err(|e| format!("field `{key}`: {e}"))?;
                    if *field == self.timestamp {
                        timestamp = Some(ts.nanos());
                    } else {
                        doc.add_date(*field, DateTime::from_timestamp_nanos(ts.nanos()));
                    }
                }
                FieldKind::Keyword | FieldKind::Text => {
                    let Value::String(text) = value else {
                        return Err(mismatch("a string"));
                    };
                    if self.kind == StreamKind::Logs && def.name == "level" {
                        let level = Level::normalise(&text).ok_or_else(|| {
                            "field `level` must be one of trace, debug, info, warn, error, fatal"
                                .to_string()
                        })?;
                        doc.add_text(*field, level.as_str());
                    } else {
                        doc.add_text(*field, text);
                    }
                }
                FieldKind::KeywordList => match value {
                    Value::String(text) => doc.add_text(*field, text),
                    Value::Array(items) => {
                        for item in items {
                            let Value::String(text) = item else {
                                return Err(mismatch("a list of strings"));
                            };
                            doc.add_text(*field, text);
                        }
                    }
                    _ => return Err(mismatch("a list of strings")),
                },
                FieldKind::I64 => {
                    let n = value.as_i64().ok_or_else(|| mismatch("an integer"))?;
                    doc.add_i64(*field, n);
                }
                FieldKind::U64 => {
                    let n = value
                        .as_u64()
                        .ok_or_else(|| mismatch("a non-negative integer"))?;
                    doc.add_u64(*field, n);
                }
                FieldKind::F64 => {
                    let n = value.as_f64().ok_or_else(|| mismatch("a number"))?;
                    doc.add_f64(*field, n);
                }
                FieldKind::Bool => {
                    let b = value.as_bool().ok_or_else(|| mismatch("true or false"))?;
                    doc.add_bool(*field, b);
                }
                FieldKind::Json | FieldKind::JsonText => {
                    let object = match value {
                        Value::Object(object) => object,
                        // A JSON-patch request body is a list: kept under `value` so that it
                        // stays stored and searchable.
                        other if self.kind == StreamKind::Audit => {
                            Map::from_iter([("value".to_string(), other)])
                        }
                        _ => return Err(mismatch("an object")),
                    };
                    if !object.is_empty() {
                        doc.add_field_value(*field, &json_object(object));
                    }
                }
            }
        }
        let timestamp = timestamp.unwrap_or(received_at);
        doc.add_date(self.timestamp, DateTime::from_timestamp_nanos(timestamp));
        if let Some(id) = &id {
            doc.add_text(self.id, id);
        }
        Ok(Prepared { doc, timestamp, id })
    }
}

fn json_error(err: &serde_json::Error) -> String {
    if err.is_data() {
        format!("not a JSON object: {err}")
    } else {
        format!("invalid JSON: {err}")
    }
}

/// Converts JSON to tantivy's value, keeping strings as strings (tantivy's own conversion turns
/// date-like strings into dates, which would change the text a user wrote).
fn json_value(value: Value) -> OwnedValue {
    match value {
        Value::Null => OwnedValue::Null,
        Value::Bool(b) => OwnedValue::Bool(b),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                OwnedValue::I64(i)
            } else if let Some(u) = n.as_u64() {
                OwnedValue::U64(u)
            } else {
                OwnedValue::F64(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Value::String(s) => OwnedValue::Str(s),
        Value::Array(items) => OwnedValue::Array(items.into_iter().map(json_value).collect()),
        Value::Object(object) => json_object(object),
    }
}

fn json_object(object: Map<String, Value>) -> OwnedValue {
    OwnedValue::Object(
        object
            .into_iter()
            .map(|(k, v)| (k, json_value(v)))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use tantivy::schema::Value as _;

    fn builder() -> (DocBuilder, Schema) {
        let spec = StreamSpec::logs();
        let schema = spec.schema();
        (DocBuilder::new(&spec, &schema).unwrap(), schema)
    }

    #[test]
    fn log_record_becomes_document() {
        let (b, schema) = builder();
        let p = b
            .prepare(
                br#"{"timestamp":"2026-11-25T10:15:00.000000001Z","namespace":"shop","level":"WARNING","message":"  hi  ","labels":{"app":"web"},"offset":3}"#,
                0,
            )
            .unwrap();
        assert_eq!(p.timestamp, 1_795_601_700_000_000_001);
        let level = schema.get_field("level").unwrap();
        assert_eq!(
            p.doc.get_first(level).and_then(|v| v.as_str()),
            Some("warn")
        );
        let message = schema.get_field("message").unwrap();
        assert_eq!(
            p.doc.get_first(message).and_then(|v| v.as_str()),
            Some("  hi  ")
        );
    }

    #[test]
    fn absent_timestamp_takes_receive_time() {
        let (b, _) = builder();
        assert_eq!(b.prepare(br#"{"message":"x"}"#, 77).unwrap().timestamp, 77);
    }

    #[test]
    fn bad_records_say_why() {
        let (b, _) = builder();
        let cases: &[(&[u8], &str)] = &[
            (b"{not json", "invalid JSON"),
            (b"[1,2]", "not a JSON object"),
            (br#"{"colour":"red"}"#, "unknown field `colour`"),
            (
                br#"{"offset":"7"}"#,
                "field `offset` must be a non-negative integer",
            ),
            (br#"{"labels":"x"}"#, "field `labels` must be an object"),
            (br#"{"timestamp":"yesterday"}"#, "field `timestamp`"),
            (br#"{"level":"loud"}"#, "field `level` must be one of"),
            (b"\xff\xfe", "invalid JSON"),
        ];
        for (line, expected) in cases {
            let err = b.prepare(line, 0).err().unwrap();
            assert!(err.contains(expected), "{err} lacks {expected}");
        }
    }
}
