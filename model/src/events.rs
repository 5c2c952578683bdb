//! Kubernetes Events: the flat documents of the `events` stream and their mapping from the API's
//! `Event` objects, `events.k8s.io/v1` and the core `v1` one (which `kubectl get events`, the
//! kubelet and most exporters still write).
//!
//! An input line is a raw `Event` object of either version, a watch event wrapping one
//! (`{"type": "ADDED", "object": {...}}`), or an already-flat [`KubeEvent`] document;
//! [`parse_event_line`] accepts all three. An `Event` object is updated in place when the same
//! thing happens again (its `count` or `series.count` grows, its last time moves): each update
//! is a document of its own, identified by the object's uid and resourceVersion
//! ([`KubeEvent::dedup_key`]), so that a relist or a resend of the same update is one document.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{Error, Result, Timestamp};

/// Field names of the `events` stream, as they appear in documents, queries and exports.
pub mod fields {
    pub const TIMESTAMP: &str = "timestamp";
    pub const FIRST_SEEN: &str = "first_seen";
    pub const CLUSTER: &str = "cluster";
    pub const TYPE: &str = "type";
    pub const REASON: &str = "reason";
    pub const MESSAGE: &str = "message";
    pub const NAMESPACE: &str = "namespace";
    pub const KIND: &str = "kind";
    pub const NAME: &str = "name";
    pub const UID: &str = "uid";
    pub const FIELD_PATH: &str = "field_path";
    pub const RELATED_KIND: &str = "related_kind";
    pub const RELATED_NAME: &str = "related_name";
    pub const REPORTING_CONTROLLER: &str = "reporting_controller";
    pub const REPORTING_INSTANCE: &str = "reporting_instance";
    pub const ACTION: &str = "action";
    pub const NODE: &str = "node";
    pub const COUNT: &str = "count";
    pub const EVENT_UID: &str = "event_uid";
    pub const EVENT_NAME: &str = "event_name";
    pub const RESOURCE_VERSION: &str = "resource_version";
}

fn is_empty(s: &str) -> bool {
    s.is_empty()
}

/// One document of the `events` stream: one Kubernetes Event object at one update.
///
/// The JSON form leaves out empty strings and `None`; unknown fields of a flat document are
/// refused, so a misspelt field is an error naming it. `timestamp` is the latest time the event
/// was seen (`series.lastObservedTime`, `lastTimestamp`, else `eventTime`), `first_seen` the
/// first (`firstTimestamp`, else `eventTime`); the regarding object is `kind`, `namespace`,
/// `name`, `uid` and `field_path` (`spec.containers{app}` names the container).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubeEvent {
    /// Absent in a flat document: the receive time stands in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_seen: Option<Timestamp>,
    /// The cluster the event came from, stamped by whoever collected it.
    #[serde(default, skip_serializing_if = "is_empty")]
    pub cluster: String,
    /// `Normal` or `Warning`.
    #[serde(default, rename = "type", skip_serializing_if = "is_empty")]
    pub event_type: String,
    #[serde(default, skip_serializing_if = "is_empty")]
    pub reason: String,
    /// The note (`note` in events.k8s.io/v1, `message` in core v1).
    #[serde(default, skip_serializing_if = "is_empty")]
    pub message: String,
    #[serde(default, skip_serializing_if = "is_empty")]
    pub namespace: String,
    #[serde(default, skip_serializing_if = "is_empty")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "is_empty")]
    pub uid: String,
    #[serde(default, skip_serializing_if = "is_empty")]
    pub field_path: String,
    #[serde(default, skip_serializing_if = "is_empty")]
    pub related_kind: String,
    #[serde(default, skip_serializing_if = "is_empty")]
    pub related_name: String,
    #[serde(default, skip_serializing_if = "is_empty")]
    pub reporting_controller: String,
    #[serde(default, skip_serializing_if = "is_empty")]
    pub reporting_instance: String,
    #[serde(default, skip_serializing_if = "is_empty")]
    pub action: String,
    /// The node that reported it (`source.host`), where the reporter is a node's kubelet.
    #[serde(default, skip_serializing_if = "is_empty")]
    pub node: String,
    /// How many times it happened so far (`series.count`, `count`; 1 when neither is set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<i64>,
    /// The Event object's own uid and name (`metadata.uid`, `metadata.name`).
    #[serde(default, skip_serializing_if = "is_empty")]
    pub event_uid: String,
    #[serde(default, skip_serializing_if = "is_empty")]
    pub event_name: String,
    /// `metadata.resourceVersion`: which update of the object this document is.
    #[serde(default, skip_serializing_if = "is_empty")]
    pub resource_version: String,
}

impl KubeEvent {
    /// The identity of the document: one update of one Event object. The object's uid with its
    /// resourceVersion; without a resourceVersion (a flat document), the uid with the count and
    /// the time. `None` without a uid: such documents are kept as sent.
    pub fn dedup_key(&self) -> Option<String> {
        if self.event_uid.is_empty() {
            return None;
        }
        if !self.resource_version.is_empty() {
            return Some(format!("{}/{}", self.event_uid, self.resource_version));
        }
        Some(format!(
            "{}/{}/{}",
            self.event_uid,
            self.count.unwrap_or(1),
            self.timestamp.map_or(0, Timestamp::nanos)
        ))
    }
}

/// Parses one input line: a raw Event (either version), a watch event wrapping one, or a flat
/// document. The error names what is wrong, for the ingest answer.
pub fn parse_event_line(line: &[u8]) -> Result<KubeEvent> {
    let value: Value = serde_json::from_slice(line)
        .map_err(|e| Error::InvalidRecord(format!("invalid JSON: {e}")))?;
    let Value::Object(map) = value else {
        return Err(Error::InvalidRecord(
            "a Kubernetes event must be a JSON object".to_string(),
        ));
    };
    if let Some(object) = watch_object(&map)? {
        return from_k8s(object);
    }
    if is_k8s(&map) {
        return from_k8s(&map);
    }
    serde_json::from_value(Value::Object(map))
        .map_err(|e| Error::InvalidRecord(format!("invalid event document: {e}")))
}

/// The Event a watch event (`{"type": "ADDED", "object": {...}}`) carries; `None` for anything
/// else. A deletion is not an occurrence (the API server removes Events when their TTL ends),
/// so it is refused rather than indexed as one.
fn watch_object(map: &Map<String, Value>) -> Result<Option<&Map<String, Value>>> {
    let (Some(Value::String(kind)), Some(Value::Object(object))) =
        (map.get("type"), map.get("object"))
    else {
        return Ok(None);
    };
    match kind.as_str() {
        "ADDED" | "MODIFIED" => Ok(Some(object)),
        other => Err(Error::InvalidRecord(format!(
            "a watch event of type {other:?} carries no event occurrence (only ADDED and \
             MODIFIED do)"
        ))),
    }
}

/// Whether a document is a Kubernetes `Event` object rather than a flat document.
fn is_k8s(map: &Map<String, Value>) -> bool {
    ["involvedObject", "regarding", "metadata", "apiVersion"]
        .iter()
        .any(|key| map.contains_key(*key))
}

type Object = Map<String, Value>;

fn field_error(path: &str, problem: &str) -> Error {
    Error::InvalidRecord(format!("field `{path}` {problem}"))
}

/// The string at `path` (dotted); empty when absent or `null`.
fn string(map: &Object, path: &str) -> Result<String> {
    match crate::path::lookup(map, path) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(field_error(path, "must be a string")),
    }
}

/// The first non-empty string among `paths`.
fn first_string(map: &Object, paths: &[&str]) -> Result<String> {
    for path in paths {
        let text = string(map, path)?;
        if !text.is_empty() {
            return Ok(text);
        }
    }
    Ok(String::new())
}

/// The RFC 3339 time at `path`; `None` when absent, `null` or empty.
fn time(map: &Object, path: &str) -> Result<Option<Timestamp>> {
    let text = string(map, path)?;
    if text.is_empty() {
        return Ok(None);
    }
    Timestamp::parse_rfc3339(&text).map(Some).map_err(|_| {
        let shown: String = text.chars().take(64).collect();
        field_error(path, &format!("is not an RFC 3339 time: {shown:?}"))
    })
}

/// The integer at `path`; `None` when absent or `null`.
fn integer(map: &Object, path: &str) -> Result<Option<i64>> {
    match crate::path::lookup(map, path) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .map(Some)
            .ok_or_else(|| field_error(path, "must be an integer")),
        Some(_) => Err(field_error(path, "must be an integer")),
    }
}

/// Maps an `events.k8s.io/v1` or core `v1` Event. Where the two name a field differently, the
/// events.k8s.io name is read first (`regarding`, `note`, `reportingController`), then the core
/// one (`involvedObject`, `message`, `reportingComponent` or `source.component`) and the
/// `deprecated*` copies events.k8s.io keeps of it.
fn from_k8s(map: &Object) -> Result<KubeEvent> {
    let object = if map.contains_key("regarding") {
        "regarding"
    } else {
        "involvedObject"
    };
    let at = |key: &str| format!("{object}.{key}");
    let event_time = time(map, "eventTime")?;
    let last_observed = time(map, "series.lastObservedTime")?;
    let last = match time(map, "lastTimestamp")? {
        Some(t) => Some(t),
        None => time(map, "deprecatedLastTimestamp")?,
    };
    let first = match time(map, "firstTimestamp")? {
        Some(t) => Some(t),
        None => time(map, "deprecatedFirstTimestamp")?,
    };
    let timestamp = [event_time, last_observed, last]
        .into_iter()
        .flatten()
        .max()
        .or(first)
        .or(time(map, "metadata.creationTimestamp")?);
    let Some(timestamp) = timestamp else {
        return Err(Error::InvalidRecord(
            "the event has no time: none of eventTime, series.lastObservedTime, lastTimestamp, \
             firstTimestamp or metadata.creationTimestamp is set"
                .to_string(),
        ));
    };
    let count = match integer(map, "series.count")? {
        Some(n) => Some(n),
        None => match integer(map, "count")? {
            Some(n) => Some(n),
            None => integer(map, "deprecatedCount")?,
        },
    };
    // The regarding object's namespace only: the Event of a cluster-scoped object (a Node) lives
    // in `default` itself, and is found by the absence of this field, as in Elasticsearch.
    let namespace = string(map, &at("namespace"))?;
    Ok(KubeEvent {
        timestamp: Some(timestamp),
        first_seen: Some(first.or(event_time).unwrap_or(timestamp)),
        cluster: string(map, "cluster")?,
        event_type: string(map, "type")?,
        reason: string(map, "reason")?,
        message: first_string(map, &["note", "message"])?,
        namespace,
        kind: string(map, &at("kind"))?,
        name: string(map, &at("name"))?,
        uid: string(map, &at("uid"))?,
        field_path: string(map, &at("fieldPath"))?,
        related_kind: string(map, "related.kind")?,
        related_name: string(map, "related.name")?,
        reporting_controller: first_string(
            map,
            &[
                "reportingController",
                "reportingComponent",
                "source.component",
                "deprecatedSource.component",
            ],
        )?,
        reporting_instance: string(map, "reportingInstance")?,
        action: string(map, "action")?,
        node: first_string(map, &["source.host", "deprecatedSource.host"])?,
        count: Some(count.filter(|n| *n > 0).unwrap_or(1)),
        event_uid: string(map, "metadata.uid")?,
        event_name: string(map, "metadata.name")?,
        resource_version: string(map, "metadata.resourceVersion")?,
    })
}

#[cfg(test)]
mod tests;
