//! Validation of incoming records against their stream's fields, and their conversion into
//! tantivy documents. One code path serves ingest and WAL replay, so that a replay builds the
//! very documents the first pass built.

use serde_json::{Map, Value};
use tantivy::schema::{Field, OwnedValue, Schema};
use tantivy::{DateTime, TantivyDocument};
use trawl_config::{StreamConfig, TimestampFormat};
use trawl_model::path::take;
use trawl_model::schema::{FieldDef, FieldKind, LOG_DEFAULT_FIELDS, LOG_FIELDS};
use trawl_model::{Level, LogRecord, Timestamp};

use crate::schema::{build_generic_schema, build_schema, DYNAMIC_FIELD, ID_FIELD, TEXT_FIELD};

/// The name of every stream's time axis in the index.
const TIMESTAMP: &str = "timestamp";

/// How a stream's records are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamKind {
    /// Flat container log records.
    Logs,
    /// Kubernetes audit events, raw (`audit.k8s.io` Event) or flat; identified by
    /// `(audit_id, stage)`.
    Audit,
    /// Kubernetes Events, raw (`events.k8s.io/v1` or core v1 `Event`, or a watch event) or
    /// flat; identified by the Event object's uid and resourceVersion.
    Events,
    /// The nodes' journal entries (`journalctl -o json` or flat); identified by the cursor.
    Journal,
    /// Operator-declared JSON documents (`[streams.<name>]`): a timestamp taken from a named
    /// field, declared keyword and numeric fields, everything else in the dynamic JSON field.
    Generic,
}

/// Where the documents of a generic stream carry their time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimestampSource {
    /// The field (a dotted path reaches into nested objects: `event.created`).
    pub field: String,
    pub format: TimestampFormat,
}

/// The definition of a stream: its fields and how records are read.
#[derive(Debug, Clone)]
pub struct StreamSpec {
    pub name: String,
    pub kind: StreamKind,
    /// The typed fields, in record order (for a generic stream: `timestamp`, then the declared
    /// keyword and numeric fields; the dynamic and full-text fields are not listed).
    pub fields: Vec<FieldDef>,
    /// The fields a query term without a field name searches.
    pub default_fields: Vec<String>,
    /// Where a generic stream's documents carry their time; `None` for the built-in streams.
    pub timestamp: Option<TimestampSource>,
}

impl StreamSpec {
    /// A built-in stream: its name, how its records are read, its field table and the
    /// fields a bare word searches.
    fn builtin(
        name: &str,
        kind: StreamKind,
        fields: &[FieldDef],
        default_fields: &[&str],
    ) -> StreamSpec {
        StreamSpec {
            name: name.into(),
            kind,
            fields: fields.to_vec(),
            default_fields: default_fields.iter().map(|s| s.to_string()).collect(),
            timestamp: None,
        }
    }

    /// The built-in `logs` stream.
    pub fn logs() -> StreamSpec {
        let name = trawl_model::LOGS_STREAM;
        StreamSpec::builtin(name, StreamKind::Logs, LOG_FIELDS, LOG_DEFAULT_FIELDS)
    }

    /// The built-in `audit` stream.
    pub fn audit() -> StreamSpec {
        use trawl_model::schema::{AUDIT_DEFAULT_FIELDS, AUDIT_FIELDS};
        let name = trawl_model::AUDIT_STREAM;
        StreamSpec::builtin(name, StreamKind::Audit, AUDIT_FIELDS, AUDIT_DEFAULT_FIELDS)
    }

    /// The built-in `events` stream.
    pub fn events() -> StreamSpec {
        use trawl_model::schema::{EVENT_DEFAULT_FIELDS, EVENT_FIELDS};
        let name = trawl_model::EVENTS_STREAM;
        StreamSpec::builtin(name, StreamKind::Events, EVENT_FIELDS, EVENT_DEFAULT_FIELDS)
    }

    /// The built-in `journal` stream.
    pub fn journal() -> StreamSpec {
        use trawl_model::schema::{JOURNAL_DEFAULT_FIELDS, JOURNAL_FIELDS};
        let name = trawl_model::JOURNAL_STREAM;
        StreamSpec::builtin(
            name,
            StreamKind::Journal,
            JOURNAL_FIELDS,
            JOURNAL_DEFAULT_FIELDS,
        )
    }

    /// A generic stream declared by a `[streams.<name>]` section (or auto-created with its
    /// defaults). Keyword fields become raw-tokenised fast keywords, numeric fields fast `f64`s
    /// (dotted names such as `service.name` allowed); a declared name that collides with the
    /// index's own fields (`timestamp`, `_dynamic`, `_text`, `_id`) or with the timestamp field
    /// is an [`crate::Error::InvalidArgument`] naming it.
    ///
    /// Default fields that are declared fields are searched as such; a default field that is
    /// not declared (a dynamic path) cannot be a default field of the query parser, so the
    /// full text of the document is searched in its place. No default fields: the full text.
    pub fn generic(name: &str, config: &StreamConfig) -> crate::Result<StreamSpec> {
        let mut fields = vec![FieldDef::new(TIMESTAMP, FieldKind::Timestamp)];
        let declared = config
            .keyword_fields
            .iter()
            .map(|n| (n, FieldKind::Keyword))
            .chain(config.numeric_fields.iter().map(|n| (n, FieldKind::F64)));
        for (field, kind) in declared {
            let field = field.trim();
            let reserved = [TIMESTAMP, DYNAMIC_FIELD, TEXT_FIELD, ID_FIELD];
            if reserved.contains(&field) || field == config.timestamp_field {
                return Err(crate::Error::InvalidArgument(format!(
                    "streams.{name}: `{field}` cannot be declared as a keyword or numeric field \
                     (it is the timestamp or a reserved name)"
                )));
            }
            if field.is_empty() || fields.iter().any(|d| d.name() == field) {
                continue;
            }
            fields.push(FieldDef::new(field.to_string(), kind));
        }
        let mut default_fields: Vec<String> = Vec::new();
        let mut full_text = config.default_fields.is_empty();
        for wanted in &config.default_fields {
            if fields.iter().any(|d| d.name() == wanted) {
                default_fields.push(wanted.clone());
            } else {
                tracing::warn!(
                    stream = name,
                    field = %wanted,
                    "a default field that is not declared searches the full text instead"
                );
                full_text = true;
            }
        }
        if full_text {
            default_fields.push(TEXT_FIELD.to_string());
        }
        Ok(StreamSpec {
            name: name.to_string(),
            kind: StreamKind::Generic,
            fields,
            default_fields,
            timestamp: Some(TimestampSource {
                field: config.timestamp_field.trim().to_string(),
                format: config.timestamp_format,
            }),
        })
    }

    pub fn schema(&self) -> Schema {
        match self.kind {
            StreamKind::Generic => build_generic_schema(&self.fields),
            StreamKind::Logs | StreamKind::Audit | StreamKind::Events | StreamKind::Journal => {
                build_schema(&self.fields)
            }
        }
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
    /// A generic stream's time source, dynamic JSON field and full-text field.
    generic: Option<(TimestampSource, Field, Field)>,
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
            .map(|def| Ok((def.clone(), lookup(def.name())?)))
            .collect::<crate::Result<Vec<_>>>()?;
        let generic = match (&spec.kind, &spec.timestamp) {
            (StreamKind::Generic, Some(source)) => {
                Some((source.clone(), lookup(DYNAMIC_FIELD)?, lookup(TEXT_FIELD)?))
            }
            (StreamKind::Generic, None) => {
                return Err(crate::Error::InvalidArgument(format!(
                    "generic stream `{}` has no timestamp source",
                    spec.name
                )))
            }
            _ => None,
        };
        Ok(DocBuilder {
            kind: spec.kind,
            fields,
            timestamp: lookup(TIMESTAMP)?,
            id: lookup(ID_FIELD)?,
            generic,
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
            StreamKind::Events => {
                let event =
                    trawl_model::events::parse_event_line(line).map_err(|e| e.to_string())?;
                let id = event.dedup_key();
                match serde_json::to_value(&event) {
                    Ok(Value::Object(map)) => self.build(map, received_at, id),
                    _ => Err("Kubernetes event could not be converted".into()),
                }
            }
            StreamKind::Journal => {
                let entry =
                    trawl_model::journal::parse_journal_line(line).map_err(|e| e.to_string())?;
                let id = entry.dedup_key();
                match serde_json::to_value(&entry) {
                    Ok(Value::Object(map)) => self.build(map, received_at, id),
                    _ => Err("journal entry could not be converted".into()),
                }
            }
            StreamKind::Generic => {
                let map: Map<String, Value> =
                    serde_json::from_slice(line).map_err(|e| json_error(&e))?;
                self.build_generic(map, received_at)
            }
        }
    }

    /// A generic document: the timestamp from its source field, declared fields typed, every
    /// string value in the full-text field, the rest in the dynamic JSON field.
    fn build_generic(
        &self,
        mut map: Map<String, Value>,
        received_at: i64,
    ) -> Result<Prepared, String> {
        let Some((source, dynamic, text)) = &self.generic else {
            return Err("stream is not generic".into());
        };
        let timestamp = match take(&mut map, &source.field) {
            None | Some(Value::Null) => received_at,
            Some(value) => parse_timestamp(&value, source.format)
                .map_err(|e| format!("field `{}` {e}", source.field))?,
        };
        let mut doc = TantivyDocument::new();
        for (def, field) in &self.fields {
            if *field == self.timestamp {
                continue;
            }
            let Some(value) = take(&mut map, def.name()) else {
                continue;
            };
            let items = match value {
                Value::Null => continue,
                Value::Array(items) => items,
                other => vec![other],
            };
            for item in items {
                match (def.kind, item) {
                    (_, Value::Null) => {}
                    (FieldKind::Keyword, Value::String(s)) => {
                        doc.add_text(*text, &s);
                        doc.add_text(*field, s);
                    }
                    (FieldKind::Keyword, Value::Number(n)) => doc.add_text(*field, n.to_string()),
                    (FieldKind::Keyword, Value::Bool(b)) => doc.add_text(*field, b.to_string()),
                    (FieldKind::F64, Value::Number(n)) => {
                        doc.add_f64(*field, n.as_f64().unwrap_or(f64::NAN))
                    }
                    (FieldKind::F64, Value::String(s)) => match s.trim().parse::<f64>() {
                        Ok(n) if n.is_finite() => doc.add_f64(*field, n),
                        _ => return Err(format!("field `{}` must be a number", def.name)),
                    },
                    (FieldKind::F64, _) => {
                        return Err(format!("field `{}` must be a number", def.name))
                    }
                    _ => {
                        return Err(format!(
                            "field `{}` must be a string, number or boolean",
                            def.name
                        ))
                    }
                }
            }
        }
        let mut strings = Vec::new();
        for value in map.values() {
            collect_strings(value, &mut strings);
        }
        for s in strings {
            doc.add_text(*text, s);
        }
        if !map.is_empty() {
            doc.add_field_value(*dynamic, &json_object(map));
        }
        doc.add_date(self.timestamp, DateTime::from_timestamp_nanos(timestamp));
        Ok(Prepared {
            doc,
            timestamp,
            id: None,
        })
    }

    fn build(
        &self,
        map: Map<String, Value>,
        received_at: i64,
        id: Option<String>,
    ) -> Result<Prepared, String> {
        self.build_from(map, None, received_at, id)
    }

    /// A log record's document, built from the typed record rather than its JSON: the very
    /// document [`DocBuilder::prepare`] builds from `serde_json::to_vec(&record)` (a test holds
    /// them equal), without parsing the record a second time after the shippers' mapping.
    pub fn prepare_log(&self, record: LogRecord, received_at: i64) -> Result<Prepared, String> {
        if self.kind != StreamKind::Logs {
            return Err("stream does not hold log records".into());
        }
        let timestamp = record.timestamp.map(Timestamp::nanos);
        self.build_from(log_pairs(record), timestamp, received_at, None)
    }

    /// The document of `(field, value)` pairs; `timestamp` is a time axis value already read
    /// (a pair named `timestamp` sets it otherwise).
    fn build_from<K: AsRef<str>>(
        &self,
        pairs: impl IntoIterator<Item = (K, Value)>,
        mut timestamp: Option<i64>,
        received_at: i64,
        id: Option<String>,
    ) -> Result<Prepared, String> {
        let mut doc = TantivyDocument::new();
        for (key, value) in pairs {
            let key = key.as_ref();
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

/// The fields of a log record as its JSON holds them (the serde attributes of
/// [`LogRecord`]: empty strings and maps, no level and no offset left out), the time axis
/// excepted.
fn log_pairs(record: LogRecord) -> impl Iterator<Item = (&'static str, Value)> {
    let LogRecord {
        timestamp: _,
        cluster,
        node,
        namespace,
        pod,
        pod_uid,
        container,
        container_id,
        image,
        labels,
        stream,
        level,
        message,
        attributes,
        file,
        offset,
    } = record;
    let text = |name, s: String| (!s.is_empty()).then_some((name, Value::String(s)));
    let object = |name, m: Map<String, Value>| (!m.is_empty()).then_some((name, Value::Object(m)));
    // In the order of a parsed record's keys (`serde_json::Map` sorts them), so that the
    // document's values are in the same order as from `prepare`.
    [
        object("attributes", attributes),
        text("cluster", cluster),
        text("container", container),
        text("container_id", container_id),
        text("file", file),
        text("image", image),
        object("labels", labels),
        level.map(|l| ("level", Value::String(l.as_str().to_string()))),
        Some(("message", Value::String(message))),
        text("namespace", namespace),
        text("node", node),
        offset.map(|n| ("offset", Value::from(n))),
        text("pod", pod),
        text("pod_uid", pod_uid),
        text("stream", stream),
    ]
    .into_iter()
    .flatten()
}

/// Every string value of a JSON value, depth first.
fn collect_strings<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::String(s) => out.push(s),
        Value::Array(items) => items.iter().for_each(|v| collect_strings(v, out)),
        Value::Object(map) => map.values().for_each(|v| collect_strings(v, out)),
        _ => {}
    }
}

/// Reads a generic stream's timestamp; the error completes "field `x` ...".
fn parse_timestamp(value: &Value, format: TimestampFormat) -> Result<i64, String> {
    let scale: i128 = match format {
        TimestampFormat::Rfc3339 => {
            return match value {
                Value::String(s) => Timestamp::parse_rfc3339(s)
                    .map(Timestamp::nanos)
                    .map_err(|e| format!("is not an RFC 3339 date-time: {e}")),
                _ => Err("must be an RFC 3339 string".into()),
            }
        }
        TimestampFormat::UnixS => 1_000_000_000,
        TimestampFormat::UnixMs => 1_000_000,
        TimestampFormat::UnixNs => 1,
    };
    let text = match value {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.trim().to_string(),
        _ => return Err("must be a number (time since the Unix epoch)".into()),
    };
    let nanos = decimal_nanos(&text, scale)
        .ok_or_else(|| format!("must be a number (time since the Unix epoch), not {text:?}"))?;
    i64::try_from(nanos).map_err(|_| "is out of the range 1677..2262".to_string())
}

/// A decimal number of units as nanoseconds (`scale` nanoseconds per unit), exact for plain
/// decimals (`1795601700.25`); exponent forms go through `f64`.
fn decimal_nanos(text: &str, scale: i128) -> Option<i128> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    let plain = !whole.is_empty()
        && whole.len() <= 20
        && whole.bytes().all(|b| b.is_ascii_digit())
        && fraction.bytes().all(|b| b.is_ascii_digit());
    let nanos = if plain {
        let mut nanos = whole.parse::<i128>().ok()?.checked_mul(scale)?;
        let mut unit = scale;
        for digit in fraction.bytes() {
            unit /= 10;
            if unit == 0 {
                break;
            }
            nanos += i128::from(digit - b'0') * unit;
        }
        nanos
    } else {
        let value: f64 = digits.parse().ok()?;
        if !value.is_finite() || value.abs() > 1e30 {
            return None;
        }
        (value * scale as f64).round() as i128
    };
    Some(if negative { -nanos } else { nanos })
}

pub(crate) fn json_error(err: &serde_json::Error) -> String {
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
    use tantivy::Document as _;

    fn builder() -> (DocBuilder, Schema) {
        let spec = StreamSpec::logs();
        let schema = spec.schema();
        (DocBuilder::new(&spec, &schema).unwrap(), schema)
    }

    #[test]
    fn a_typed_log_record_builds_the_document_its_json_builds() {
        let (b, schema) = builder();
        let full: LogRecord = serde_json::from_str(
            r#"{"timestamp":"2026-11-25T10:15:00.000000001Z","cluster":"c","node":"n","namespace":"shop","pod":"p","pod_uid":"u","container":"web","container_id":"id","image":"img","labels":{"app":"web"},"stream":"stderr","level":"warn","message":"  hi  ","attributes":{"k":1,"o":{"x":"y"}},"file":"/f","offset":3}"#,
        )
        .unwrap();
        let bare = LogRecord {
            message: "only a message".into(),
            ..LogRecord::default()
        };
        let zero_offset = LogRecord {
            message: "m".into(),
            offset: Some(0),
            level: Some(Level::Error),
            ..LogRecord::default()
        };
        for record in [full, bare, zero_offset] {
            let json = serde_json::to_vec(&record).unwrap();
            let from_json = b.prepare(&json, 42).unwrap();
            let typed = b.prepare_log(record, 42).unwrap();
            assert_eq!(typed.timestamp, from_json.timestamp);
            assert_eq!(typed.id, from_json.id);
            assert_eq!(typed.doc.to_json(&schema), from_json.doc.to_json(&schema));
        }
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

    fn generic(config: StreamConfig) -> (DocBuilder, Schema) {
        let spec = StreamSpec::generic("web", &config).unwrap();
        let schema = spec.schema();
        (DocBuilder::new(&spec, &schema).unwrap(), schema)
    }

    #[test]
    fn generic_document_splits_into_typed_and_dynamic_fields() {
        let (b, schema) = generic(StreamConfig {
            timestamp_field: "event.time".into(),
            timestamp_format: TimestampFormat::UnixMs,
            keyword_fields: vec!["service.name".into(), "status".into()],
            numeric_fields: vec!["latency".into()],
            ..StreamConfig::default()
        });
        let p = b
            .prepare(
                br#"{"event":{"time":1795601700123,"kind":"http"},"service":{"name":"api","version":"1.2"},"status":200,"latency":"12.5","msg":"GET /x","tags":["a","b"]}"#,
                0,
            )
            .unwrap();
        assert_eq!(p.timestamp, 1_795_601_700_123_000_000);
        let f = |name| schema.get_field(name).unwrap();
        assert_eq!(
            p.doc.get_first(f("service.name")).and_then(|v| v.as_str()),
            Some("api")
        );
        assert_eq!(
            p.doc.get_first(f("status")).and_then(|v| v.as_str()),
            Some("200")
        );
        assert_eq!(
            p.doc.get_first(f("latency")).and_then(|v| v.as_f64()),
            Some(12.5)
        );
        let dynamic =
            serde_json::to_value(OwnedValue::from(p.doc.get_first(f(DYNAMIC_FIELD)).unwrap()))
                .unwrap();
        assert_eq!(
            dynamic,
            serde_json::json!({"event": {"kind": "http"}, "service": {"version": "1.2"},
                "msg": "GET /x", "tags": ["a", "b"]})
        );
        let mut text: Vec<&str> = p
            .doc
            .get_all(f(TEXT_FIELD))
            .filter_map(|v| v.as_str())
            .collect();
        text.sort_unstable();
        assert_eq!(text, ["1.2", "GET /x", "a", "api", "b", "http"]);
    }

    #[test]
    fn generic_timestamps_and_errors() {
        let formats = [
            (
                TimestampFormat::Rfc3339,
                r#""2026-11-25T10:15:00Z""#,
                1_795_601_700_000_000_000,
            ),
            (
                TimestampFormat::UnixS,
                "1795601700.25",
                1_795_601_700_250_000_000,
            ),
            (
                TimestampFormat::UnixS,
                r#""1795601700""#,
                1_795_601_700_000_000_000,
            ),
            (
                TimestampFormat::UnixNs,
                "1795601700000000007",
                1_795_601_700_000_000_007,
            ),
        ];
        for (format, value, nanos) in formats {
            let (b, _) = generic(StreamConfig {
                timestamp_format: format,
                ..StreamConfig::default()
            });
            let line = format!(r#"{{"timestamp":{value},"x":1}}"#);
            assert_eq!(
                b.prepare(line.as_bytes(), 0).unwrap().timestamp,
                nanos,
                "{value}"
            );
        }
        let (b, _) = generic(StreamConfig {
            numeric_fields: vec!["n".into()],
            ..StreamConfig::default()
        });
        assert_eq!(b.prepare(br#"{"x":1}"#, 42).unwrap().timestamp, 42);
        let cases: &[(&[u8], &str)] = &[
            (
                br#"{"timestamp":5}"#,
                "field `timestamp` must be an RFC 3339 string",
            ),
            (
                br#"{"timestamp":"soon"}"#,
                "field `timestamp` is not an RFC 3339 date-time",
            ),
            (br#"{"n":"many"}"#, "field `n` must be a number"),
            (br#"{"n":{"a":1}}"#, "field `n` must be a number"),
            (b"[1]", "not a JSON object"),
        ];
        for (line, expected) in cases {
            let err = b.prepare(line, 0).err().unwrap();
            assert!(err.contains(expected), "{err} lacks {expected}");
        }
    }

    #[test]
    fn generic_spec_refuses_reserved_names_and_defaults_to_full_text() {
        let err = StreamSpec::generic(
            "web",
            &StreamConfig {
                keyword_fields: vec!["_dynamic".into()],
                ..StreamConfig::default()
            },
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("`_dynamic` cannot be declared"),
            "{err}"
        );
        let spec = StreamSpec::generic("web", &StreamConfig::default()).unwrap();
        assert_eq!(spec.default_fields, [TEXT_FIELD]);
        let spec = StreamSpec::generic(
            "web",
            &StreamConfig {
                keyword_fields: vec!["user".into()],
                default_fields: vec!["user".into()],
                ..StreamConfig::default()
            },
        )
        .unwrap();
        assert_eq!(spec.default_fields, ["user"]);
        let names: Vec<&str> = spec.fields.iter().map(|d| d.name()).collect();
        assert_eq!(names, ["timestamp", "user"]);
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
