//! Documents of the agents that ship container logs to Elasticsearch, mapped onto the `logs`
//! stream's record.
//!
//! | record field | Fluent Bit (`es` output, `kubernetes` filter) | Vector (`kubernetes_logs`) | Filebeat (`add_kubernetes_metadata`) |
//! |---|---|---|---|
//! | `timestamp` | `@timestamp` or `date` | `timestamp` (or `@timestamp`) | `@timestamp` |
//! | `message` | `log` (one trailing newline removed) | `message` | `message` |
//! | `stream` | `stream` | `stream` | `stream` |
//! | `namespace` | `kubernetes.namespace_name` | `kubernetes.pod_namespace` | `kubernetes.namespace` |
//! | `pod` | `kubernetes.pod_name` | `kubernetes.pod_name` | `kubernetes.pod.name` |
//! | `pod_uid` | `kubernetes.pod_id` | `kubernetes.pod_uid` | `kubernetes.pod.uid` |
//! | `container` | `kubernetes.container_name` | `kubernetes.container_name` | `kubernetes.container.name` |
//! | `container_id` | `kubernetes.docker_id` | `kubernetes.container_id` | `container.id` |
//! | `image` | `kubernetes.container_image` | `kubernetes.container_image` | `container.image.name` |
//! | `node` | `kubernetes.host` | `kubernetes.pod_node_name` | `kubernetes.node.name` |
//! | `labels` | `kubernetes.labels` | `kubernetes.pod_labels` | `kubernetes.labels` |
//! | `level` | `level` | `level` | `log.level` |
//! | `file`, `offset` | — | `file` | `log.file.path`, `log.offset` |
//!
//! Each path is looked up nested (`{"kubernetes": {"pod": {"name": ...}}}`) and dotted
//! (`{"kubernetes.pod.name": ...}`). A level not given by a field is detected from the message
//! (its JSON fields, or its text). Everything else the document holds — `kubernetes.annotations`,
//! `host`, `agent`, `ecs`, ... — is kept in `attributes`, together with the fields of a JSON
//! message (a document field wins over a message field of the same name).

use serde_json::{Map, Value};
use trawl_model::{LogRecord, Timestamp};

use crate::compat::level;

/// Maps one document onto a log record. The error says what is wrong with the document (for
/// the per-item error of `_bulk`).
pub fn log_record(mut doc: Map<String, Value>) -> Result<LogRecord, String> {
    let mut rec = LogRecord {
        timestamp: timestamp(&mut doc)?,
        ..LogRecord::default()
    };

    // Fluent Bit's `log` is the line; Filebeat's `log` is an object (`log.level`, ...).
    let line = match doc.get("log") {
        Some(Value::String(_)) => take(&mut doc, "log"),
        _ => None,
    };
    let text = match line {
        Some(line) => Some(strip_newline(json_text(line))),
        None => take(&mut doc, "message")
            .filter(|m| !m.is_null())
            .map(json_text),
    };
    rec.message = text.unwrap_or_default();

    rec.stream = take_string(&mut doc, &["stream"])?;
    rec.namespace = take_string(
        &mut doc,
        &[
            "kubernetes.namespace_name",
            "kubernetes.pod_namespace",
            "kubernetes.namespace",
        ],
    )?;
    rec.pod = take_string(&mut doc, &["kubernetes.pod_name", "kubernetes.pod.name"])?;
    rec.pod_uid = take_string(
        &mut doc,
        &[
            "kubernetes.pod_id",
            "kubernetes.pod_uid",
            "kubernetes.pod.uid",
        ],
    )?;
    rec.container = take_string(
        &mut doc,
        &["kubernetes.container_name", "kubernetes.container.name"],
    )?;
    rec.container_id = take_string(
        &mut doc,
        &[
            "kubernetes.docker_id",
            "kubernetes.container_id",
            "kubernetes.container.id",
            "container.id",
        ],
    )?;
    rec.image = take_string(
        &mut doc,
        &[
            "kubernetes.container_image",
            "kubernetes.container.image",
            "container.image.name",
        ],
    )?;
    rec.node = take_string(
        &mut doc,
        &[
            "kubernetes.host",
            "kubernetes.pod_node_name",
            "kubernetes.node.name",
        ],
    )?;
    rec.cluster = take_string(&mut doc, &["cluster", "kubernetes.cluster.name"])?;
    for path in ["kubernetes.labels", "kubernetes.pod_labels"] {
        match take(&mut doc, path) {
            Some(Value::Object(labels)) if rec.labels.is_empty() => rec.labels = labels,
            Some(Value::Null) | None => {}
            Some(other) => return Err(format!("field `{path}` must be an object, not {other}")),
        }
    }
    rec.file = take_string(&mut doc, &["log.file.path", "file"])?;
    rec.offset = match take(&mut doc, "log.offset").or_else(|| take(&mut doc, "offset")) {
        None | Some(Value::Null) => None,
        Some(value) => Some(value.as_u64().ok_or_else(|| {
            format!("field `offset` must be a non-negative integer, not {value}")
        })?),
    };

    let given_level = ["level", "log.level", "severity"]
        .iter()
        .find_map(|path| take(&mut doc, path).and_then(|v| level::value_level(&v)));
    let message_fields = json_fields(&rec.message);
    rec.level = given_level.or_else(|| match &message_fields {
        Some(fields) => level::json_level(fields),
        None => level::text_level(&rec.message),
    });

    let mut attributes = prune(doc);
    for (key, value) in message_fields.unwrap_or_default() {
        attributes.entry(key).or_insert(value);
    }
    rec.attributes = attributes;
    Ok(rec)
}

/// The document's time: `@timestamp`, `timestamp`, `date` or `time`. Strings are RFC 3339;
/// numbers are seconds, milliseconds, microseconds or nanoseconds since the epoch, told apart
/// by their magnitude. Absent: `None` (the time of ingestion).
fn timestamp(doc: &mut Map<String, Value>) -> Result<Option<Timestamp>, String> {
    for key in ["@timestamp", "timestamp", "date", "time"] {
        let Some(value) = doc.get(key) else { continue };
        let parsed = match value {
            Value::String(s) => Timestamp::parse_rfc3339(s)
                .map_err(|_| format!("field `{key}` is not an RFC 3339 date-time: {s:?}"))?,
            Value::Number(n) => {
                epoch_number(n).ok_or_else(|| format!("field `{key}` is not a time: {n}"))?
            }
            _ => continue,
        };
        doc.remove(key);
        return Ok(Some(parsed));
    }
    Ok(None)
}

/// Time since the epoch in the unit its magnitude suggests (seconds below 1e11, then
/// milliseconds below 1e14, microseconds below 1e17, else nanoseconds). Integers are scaled
/// exactly; a fraction is kept to the nanosecond.
fn epoch_number(n: &serde_json::Number) -> Option<Timestamp> {
    let value = n.as_f64()?;
    if !value.is_finite() || value < 0.0 {
        return None;
    }
    let scale: i128 = if value < 1e11 {
        1_000_000_000
    } else if value < 1e14 {
        1_000_000
    } else if value < 1e17 {
        1_000
    } else {
        1
    };
    let nanos = match n.as_u64() {
        Some(int) => i128::from(int) * scale,
        None => {
            let whole = value.trunc();
            whole as i128 * scale + ((value - whole) * scale as f64).round() as i128
        }
    };
    i64::try_from(nanos).ok().map(Timestamp)
}

fn strip_newline(mut line: String) -> String {
    if line.ends_with('\n') {
        line.pop();
        if line.ends_with('\r') {
            line.pop();
        }
    }
    line
}

fn json_text(value: Value) -> String {
    match value {
        Value::String(s) => s,
        other => other.to_string(),
    }
}

fn json_fields(message: &str) -> Option<Map<String, Value>> {
    if !message.trim_start().starts_with('{') {
        return None;
    }
    serde_json::from_str(message).ok()
}

/// The first of `paths` holding a string (numbers and booleans are taken as their text).
fn take_string(doc: &mut Map<String, Value>, paths: &[&str]) -> Result<String, String> {
    for path in paths {
        match take(doc, path) {
            None | Some(Value::Null) => continue,
            Some(Value::String(s)) => return Ok(s),
            Some(Value::Number(n)) => return Ok(n.to_string()),
            Some(Value::Bool(b)) => return Ok(b.to_string()),
            Some(other) => {
                return Err(format!(
                    "field `{path}` must be a string, not {}",
                    kind(&other)
                ))
            }
        }
    }
    Ok(String::new())
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
        _ => "a scalar",
    }
}

/// Removes the value at a dotted path, looked up as a key first and then through nested
/// objects; a parent object left empty is removed too.
pub(crate) fn take(map: &mut Map<String, Value>, path: &str) -> Option<Value> {
    if let Some(value) = map.remove(path) {
        return Some(value);
    }
    for (i, _) in path.match_indices('.') {
        let (head, rest) = (&path[..i], &path[i + 1..]);
        if let Some(Value::Object(inner)) = map.get_mut(head) {
            if let Some(value) = take(inner, rest) {
                if inner.is_empty() {
                    map.remove(head);
                }
                return Some(value);
            }
        }
    }
    None
}

/// Drops nulls and the empty objects left behind.
fn prune(map: Map<String, Value>) -> Map<String, Value> {
    map.into_iter()
        .filter_map(|(k, v)| match v {
            Value::Null => None,
            Value::Object(inner) => {
                let inner = prune(inner);
                (!inner.is_empty()).then_some((k, Value::Object(inner)))
            }
            other => Some((k, other)),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use trawl_model::Level;

    fn map(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => unreachable!(),
        }
    }

    #[test]
    fn fluent_bit_shape() {
        let doc = json!({
            "@timestamp": "2026-11-25T10:15:00.123Z",
            "log": "2026-11-25 10:15:00 ERROR db down\n",
            "stream": "stderr",
            "time": "2026-11-25T10:15:00.123456789Z",
            "kubernetes": {
                "pod_name": "web-1",
                "namespace_name": "shop",
                "pod_id": "uid-1",
                "labels": {"app": "web", "app.kubernetes.io/name": "web"},
                "annotations": {"prometheus.io/scrape": "true"},
                "host": "node-a",
                "container_name": "app",
                "docker_id": "abc",
                "container_hash": "sha256:1",
                "container_image": "shop/web:1.2"
            }
        });
        let rec = log_record(map(doc)).unwrap();
        assert_eq!(rec.timestamp, Some(Timestamp(1_795_601_700_123_000_000)));
        assert_eq!(rec.message, "2026-11-25 10:15:00 ERROR db down");
        assert_eq!(rec.stream, "stderr");
        assert_eq!(rec.namespace, "shop");
        assert_eq!(rec.pod, "web-1");
        assert_eq!(rec.pod_uid, "uid-1");
        assert_eq!(rec.container, "app");
        assert_eq!(rec.container_id, "abc");
        assert_eq!(rec.image, "shop/web:1.2");
        assert_eq!(rec.node, "node-a");
        assert_eq!(rec.level, Some(Level::Error));
        assert_eq!(
            Value::Object(rec.labels),
            json!({"app": "web", "app.kubernetes.io/name": "web"})
        );
        assert_eq!(
            Value::Object(rec.attributes),
            json!({
                "time": "2026-11-25T10:15:00.123456789Z",
                "kubernetes": {
                    "annotations": {"prometheus.io/scrape": "true"},
                    "container_hash": "sha256:1"
                }
            })
        );
    }

    #[test]
    fn fluent_bit_date_key_and_json_line() {
        let doc = json!({
            "date": 1_795_601_700.5,
            "log": "{\"level\":\"warn\",\"msg\":\"slow\",\"ms\":900}\r\n",
        });
        let rec = log_record(map(doc)).unwrap();
        assert_eq!(rec.timestamp, Some(Timestamp(1_795_601_700_500_000_000)));
        assert_eq!(
            rec.message,
            "{\"level\":\"warn\",\"msg\":\"slow\",\"ms\":900}"
        );
        assert_eq!(rec.level, Some(Level::Warn));
        assert_eq!(
            Value::Object(rec.attributes),
            json!({"level": "warn", "msg": "slow", "ms": 900})
        );
    }

    #[test]
    fn vector_shape() {
        let doc = json!({
            "message": "GET /healthz 200",
            "timestamp": "2026-11-25T10:15:00.000000001Z",
            "stream": "stdout",
            "source_type": "kubernetes_logs",
            "file": "/var/log/pods/shop_web-1_uid-1/app/0.log",
            "kubernetes": {
                "pod_namespace": "shop",
                "pod_name": "web-1",
                "pod_uid": "uid-1",
                "container_name": "app",
                "container_id": "containerd://abc",
                "container_image": "shop/web:1.2",
                "pod_labels": {"app": "web"},
                "pod_node_name": "node-a",
                "pod_ip": "10.0.0.7"
            }
        });
        let rec = log_record(map(doc)).unwrap();
        assert_eq!(rec.timestamp, Some(Timestamp(1_795_601_700_000_000_001)));
        assert_eq!(rec.message, "GET /healthz 200");
        assert_eq!(rec.namespace, "shop");
        assert_eq!(rec.pod, "web-1");
        assert_eq!(rec.pod_uid, "uid-1");
        assert_eq!(rec.container, "app");
        assert_eq!(rec.container_id, "containerd://abc");
        assert_eq!(rec.image, "shop/web:1.2");
        assert_eq!(rec.node, "node-a");
        assert_eq!(rec.file, "/var/log/pods/shop_web-1_uid-1/app/0.log");
        assert_eq!(rec.level, None);
        assert_eq!(Value::Object(rec.labels), json!({"app": "web"}));
        assert_eq!(
            Value::Object(rec.attributes),
            json!({"source_type": "kubernetes_logs", "kubernetes": {"pod_ip": "10.0.0.7"}})
        );
    }

    #[test]
    fn filebeat_shape() {
        let doc = json!({
            "@timestamp": "2026-11-25T10:15:00.250Z",
            "message": "level=info msg=started",
            "stream": "stdout",
            "log": {"level": "debug", "offset": 4096, "file": {"path": "/var/log/containers/web.log"}},
            "input": {"type": "container"},
            "container": {"id": "abc", "runtime": "containerd", "image": {"name": "shop/web:1.2"}},
            "kubernetes": {
                "namespace": "shop",
                "pod": {"name": "web-1", "uid": "uid-1", "ip": "10.0.0.7"},
                "container": {"name": "app"},
                "node": {"name": "node-a", "hostname": "node-a"},
                "labels": {"app": "web", "app_kubernetes_io/name": "web"}
            },
            "host": {"name": "node-a"},
            "agent": {"type": "filebeat", "version": "8.15.0"},
            "ecs": {"version": "8.0.0"}
        });
        let rec = log_record(map(doc)).unwrap();
        assert_eq!(rec.timestamp, Some(Timestamp(1_795_601_700_250_000_000)));
        assert_eq!(rec.message, "level=info msg=started");
        assert_eq!(rec.stream, "stdout");
        assert_eq!(rec.namespace, "shop");
        assert_eq!(rec.pod, "web-1");
        assert_eq!(rec.pod_uid, "uid-1");
        assert_eq!(rec.container, "app");
        assert_eq!(rec.container_id, "abc");
        assert_eq!(rec.image, "shop/web:1.2");
        assert_eq!(rec.node, "node-a");
        assert_eq!(rec.file, "/var/log/containers/web.log");
        assert_eq!(rec.offset, Some(4096));
        // The agent's own field wins over the text of the message.
        assert_eq!(rec.level, Some(Level::Debug));
        assert_eq!(
            Value::Object(rec.labels),
            json!({"app": "web", "app_kubernetes_io/name": "web"})
        );
        assert_eq!(
            Value::Object(rec.attributes),
            json!({
                "input": {"type": "container"},
                "container": {"runtime": "containerd"},
                "kubernetes": {"pod": {"ip": "10.0.0.7"}, "node": {"hostname": "node-a"}},
                "host": {"name": "node-a"},
                "agent": {"type": "filebeat", "version": "8.15.0"},
                "ecs": {"version": "8.0.0"}
            })
        );
    }

    #[test]
    fn dotted_keys_and_bad_fields() {
        let doc = json!({"kubernetes.pod.name": "web-1", "message": "x", "@timestamp": 1_795_601_700_123i64});
        let rec = log_record(map(doc)).unwrap();
        assert_eq!(rec.pod, "web-1");
        assert_eq!(rec.timestamp, Some(Timestamp(1_795_601_700_123_000_000)));
        assert!(rec.attributes.is_empty());

        let err = log_record(map(json!({"@timestamp": "yesterday"}))).unwrap_err();
        assert_eq!(
            err,
            "field `@timestamp` is not an RFC 3339 date-time: \"yesterday\""
        );
        let err = log_record(map(json!({"kubernetes": {"pod_name": ["a"]}}))).unwrap_err();
        assert_eq!(
            err,
            "field `kubernetes.pod_name` must be a string, not an array"
        );
        let err = log_record(map(json!({"kubernetes": {"labels": "x"}}))).unwrap_err();
        assert_eq!(
            err,
            "field `kubernetes.labels` must be an object, not \"x\""
        );
    }
}
