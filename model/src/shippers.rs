//! The shippers' field aliases: what Fluent Bit, Vector, Filebeat (and clients writing Trawl's
//! own field names) send, mapped onto the `logs` stream's record. One table, [`LOG_ALIASES`],
//! serves every ingest surface (the native ingest API, `_bulk`, Loki push, OTLP) and the
//! Elasticsearch query translator ([`log_field`]), so that a field accepted on ingest under an
//! agent's name is found under that name in a query too.
//!
//! | record field | Trawl | Fluent Bit (`kubernetes` filter) | Vector (`kubernetes_logs`) | Filebeat (ECS) |
//! |---|---|---|---|---|
//! | `timestamp` | `timestamp` | `time` (CRI, ns), `@timestamp`, `date` | `timestamp` | `@timestamp` |
//! | `message` | `message` | `log` (one trailing newline removed) | `message` | `message` |
//! | `stream` | `stream` | `stream` | `stream` | `stream` |
//! | `namespace` | `namespace` | `kubernetes.namespace_name` | `kubernetes.pod_namespace` | `kubernetes.namespace` |
//! | `pod` | `pod` | `kubernetes.pod_name` | `kubernetes.pod_name` | `kubernetes.pod.name` |
//! | `pod_uid` | `pod_uid` | `kubernetes.pod_id` | `kubernetes.pod_uid` | `kubernetes.pod.uid` |
//! | `container` | `container` | `kubernetes.container_name` | `kubernetes.container_name` | `kubernetes.container.name` |
//! | `container_id` | `container_id` | `kubernetes.docker_id` | `kubernetes.container_id` | `container.id` |
//! | `image` | `image` | `kubernetes.container_image` | `kubernetes.container_image` | `container.image.name` |
//! | `node` | `node` | `kubernetes.host` | `kubernetes.pod_node_name` | `kubernetes.node.name` |
//! | `labels` | `labels` | `kubernetes.labels` | `kubernetes.pod_labels` | `kubernetes.labels` |
//! | `level` | `level` | `level` | `level` | `log.level` |
//! | `file`, `offset` | `file`, `offset` | — | `file` | `log.file.path`, `log.offset` |
//!
//! Each path is looked up dotted (`{"kubernetes.pod.name": ...}`) and nested
//! (`{"kubernetes": {"pod": {"name": ...}}}`); the first key of a field holding a value of the
//! field's type wins. A value of the wrong type (Filebeat's `container` object, a `level` that
//! is no level, a time that does not parse) is not an error: it stays where it was and lands
//! in `attributes` with everything else the document holds. Agent artefacts are dropped
//! (Fluent Bit's CRI partial flag `_p`, and every time key that parsed). A document is refused
//! only when it has no message (neither `message` nor a string `log`).
//!
//! A message that is itself an agent's JSON object (it has a string `log` or a `message`: a
//! docker json-file line, Fluent Bit's `Line_Format json` on Loki, ...) is unwrapped when
//! [`MapOptions::unwrap_agent_json`] is on: its `log`/`message` becomes the message, its other
//! fields fill the record's fields still empty and the attributes (up to three layers). Then the level, when no
//! field gave it, is detected from the message ([`crate::level`]), and the fields of a JSON
//! message join the attributes (a document field wins over a message field of the same name).

use serde_json::{Map, Value};

use crate::path::{lookup, take};
use crate::{level, LogRecord, Timestamp};

/// A record field and the keys agents write it under, in order of preference: Trawl's own
/// name first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Alias {
    pub field: &'static str,
    pub keys: &'static [&'static str],
}

const fn alias(field: &'static str, keys: &'static [&'static str]) -> Alias {
    Alias { field, keys }
}

/// OpenTelemetry resource attributes (the `k8s.*` and `container.*` semantic conventions) and
/// the `logs` record field each fills on OTLP ingest. Besides these, `k8s.pod.labels.<name>`
/// ([`OTLP_POD_LABEL_PREFIX`]) fills `labels`, and [`OTLP_IMAGE_TAG`] joins `image` as
/// `name:tag`; every other resource attribute lands in `attributes`.
pub const OTLP_RESOURCE_FIELDS: &[(&str, &str)] = &[
    ("k8s.namespace.name", "namespace"),
    ("k8s.pod.name", "pod"),
    ("k8s.pod.uid", "pod_uid"),
    ("k8s.container.name", "container"),
    ("k8s.node.name", "node"),
    ("k8s.cluster.name", "cluster"),
    ("container.id", "container_id"),
    ("container.image.name", "image"),
];

/// The resource attribute prefix of a pod label on OTLP ingest (`k8s.pod.labels.app`).
pub const OTLP_POD_LABEL_PREFIX: &str = "k8s.pod.labels.";

/// The resource attribute of an image's tag on OTLP ingest.
pub const OTLP_IMAGE_TAG: &str = "container.image.tag";

/// The record field an OTLP resource attribute fills, if any ([`OTLP_RESOURCE_FIELDS`]).
pub fn otlp_resource_field(key: &str) -> Option<&'static str> {
    OTLP_RESOURCE_FIELDS
        .iter()
        .find(|(attribute, _)| *attribute == key)
        .map(|(_, field)| *field)
}

/// Loki stream labels and the `logs` record field each fills on Loki push: Trawl's own names
/// first, then Promtail's and Grafana Alloy's `kubernetes_sd` relabelling, the OpenTelemetry
/// collector's Loki exporter (`k8s_*`) and Fluent Bit's `loki` output (`*_name`). A label that
/// fills no field, or whose field is already filled, stays a label.
pub const LOKI_LABEL_ALIASES: &[Alias] = &[
    alias(
        "namespace",
        &[
            "namespace",
            "k8s_namespace_name",
            "kubernetes_namespace",
            "namespace_name",
        ],
    ),
    alias(
        "pod",
        &["pod", "k8s_pod_name", "kubernetes_pod_name", "pod_name"],
    ),
    alias("pod_uid", &["pod_uid", "k8s_pod_uid", "kubernetes_pod_uid"]),
    alias(
        "container",
        &[
            "container",
            "k8s_container_name",
            "kubernetes_container_name",
            "container_name",
        ],
    ),
    alias(
        "node",
        &["node", "node_name", "k8s_node_name", "kubernetes_node_name"],
    ),
    alias("cluster", &["cluster", "k8s_cluster_name"]),
    alias("image", &["image", "container_image"]),
    alias("stream", &["stream"]),
    alias("file", &["filename"]),
];

/// Loki labels that give a record's level when it has none yet (Grafana's `detected_level`
/// among them); a value that is no level stays a label.
pub const LOKI_LEVEL_LABELS: &[&str] = &["level", "detected_level", "severity", "lvl"];

/// The record field a Loki stream label fills, if any ([`LOKI_LABEL_ALIASES`]).
pub fn loki_label_field(label: &str) -> Option<&'static str> {
    LOKI_LABEL_ALIASES
        .iter()
        .find(|alias| alias.keys.contains(&label))
        .map(|alias| alias.field)
}

/// The `logs` stream's fields and the keys of each agent that hold them (see the module docs).
pub const LOG_ALIASES: &[Alias] = &[
    alias("timestamp", &["timestamp", "time", "@timestamp", "date"]),
    alias("message", &["log", "message"]),
    alias("stream", &["stream"]),
    alias(
        "namespace",
        &[
            "namespace",
            "kubernetes.namespace_name",
            "kubernetes.pod_namespace",
            "kubernetes.namespace",
            "k8s.namespace.name",
        ],
    ),
    alias(
        "pod",
        &[
            "pod",
            "kubernetes.pod_name",
            "kubernetes.pod.name",
            "k8s.pod.name",
        ],
    ),
    alias(
        "pod_uid",
        &[
            "pod_uid",
            "kubernetes.pod_id",
            "kubernetes.pod_uid",
            "kubernetes.pod.uid",
            "k8s.pod.uid",
        ],
    ),
    alias(
        "container",
        &[
            "container",
            "kubernetes.container_name",
            "kubernetes.container.name",
            "k8s.container.name",
        ],
    ),
    alias(
        "container_id",
        &[
            "container_id",
            "kubernetes.docker_id",
            "kubernetes.container_id",
            "kubernetes.container.id",
            "container.id",
        ],
    ),
    alias(
        "image",
        &[
            "image",
            "kubernetes.container_image",
            "kubernetes.container.image",
            "container.image.name",
        ],
    ),
    alias(
        "node",
        &[
            "node",
            "kubernetes.host",
            "kubernetes.pod_node_name",
            "kubernetes.node.name",
            "k8s.node.name",
        ],
    ),
    alias(
        "cluster",
        &["cluster", "kubernetes.cluster.name", "k8s.cluster.name"],
    ),
    alias(
        "labels",
        &["labels", "kubernetes.labels", "kubernetes.pod_labels"],
    ),
    alias("level", &["level", "log.level", "severity"]),
    alias("file", &["file", "log.file.path"]),
    alias("offset", &["offset", "log.offset"]),
    alias("attributes", &["attributes"]),
];

/// Object-path prefixes that map onto the `labels` object (`kubernetes.labels.app` is
/// `labels.app`).
pub const LOG_PREFIX_ALIASES: &[(&str, &str)] = &[
    ("kubernetes.labels.", "labels."),
    ("kubernetes.pod_labels.", "labels."),
];

/// Keys of an agent's own bookkeeping, dropped: Fluent Bit's CRI parser keeps the partial-line
/// flag as `_p`.
pub const AGENT_ARTEFACTS: &[&str] = &["_p"];

/// The `logs` field an agent's key stands for in a query (`kubernetes.pod_name` is `pod`,
/// `kubernetes.labels.app` is `labels.app`); `None` for a key no agent uses for a record field.
/// Trawl's own names map onto themselves.
pub fn log_field(key: &str) -> Option<String> {
    if let Some(alias) = LOG_ALIASES.iter().find(|a| a.keys.contains(&key)) {
        return Some(alias.field.to_string());
    }
    LOG_PREFIX_ALIASES
        .iter()
        .find_map(|(theirs, ours)| key.strip_prefix(theirs).map(|rest| format!("{ours}{rest}")))
}

/// How many layers of agents' JSON [`log_record`] unwraps from a message.
const MAX_UNWRAP: usize = 3;

/// How [`log_record`] maps a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MapOptions {
    /// Unwrap a message that is an agent's JSON object (see the module docs). On by default;
    /// `streams.<name>.unwrap_agent_json = false` turns it off.
    pub unwrap_agent_json: bool,
}

impl Default for MapOptions {
    fn default() -> MapOptions {
        MapOptions {
            unwrap_agent_json: true,
        }
    }
}

/// Maps one document (an agent's, or a record in Trawl's own names) onto a log record, by the
/// rules of the module docs. The only error is a document without a message; its text says
/// so, for the ingest answer and the dead-letter store.
pub fn log_record(doc: Map<String, Value>, options: MapOptions) -> Result<LogRecord, String> {
    let mut rec = map_fields(doc).ok_or_else(|| {
        "no message: a record needs a `message` (or an agent's string `log`)".to_string()
    })?;
    if options.unwrap_agent_json {
        // An agent's line may wrap another's (Vector's event on Loki wrapping an application's
        // JSON line): a few layers, never unbounded.
        for _ in 0..MAX_UNWRAP {
            match agent_json(&rec.message).and_then(map_fields) {
                Some(inner) => fill_from(&mut rec, inner),
                None => break,
            }
        }
    }
    let fields = json_object(&rec.message);
    if rec.level.is_none() {
        rec.level = match &fields {
            Some(fields) => level::json_level(fields),
            None => level::text_level(&rec.message),
        };
    }
    for (key, value) in fields.unwrap_or_default() {
        rec.attributes.entry(key).or_insert(value);
    }
    Ok(rec)
}

/// The keys of a field in [`LOG_ALIASES`].
fn keys(field: &str) -> &'static [&'static str] {
    LOG_ALIASES
        .iter()
        .find(|a| a.field == field)
        .map_or(&[], |a| a.keys)
}

/// The record fields of a document, without level detection or unwrapping; `None` when it has
/// no message.
fn map_fields(mut doc: Map<String, Value>) -> Option<LogRecord> {
    let message = take_message(&mut doc)?;
    let mut rec = LogRecord {
        timestamp: take_time(&mut doc),
        message,
        ..LogRecord::default()
    };
    for (field, slot) in string_fields(&mut rec) {
        *slot = take_string(&mut doc, keys(field));
    }
    rec.labels = take_object(&mut doc, keys("labels"));
    rec.level = take_first(&mut doc, keys("level"), level::value_level);
    rec.offset = take_first(&mut doc, keys("offset"), Value::as_u64);
    let explicit = take_object(&mut doc, keys("attributes"));
    for key in AGENT_ARTEFACTS {
        doc.remove(*key);
    }
    let mut attributes = prune(doc);
    attributes.extend(explicit);
    rec.attributes = attributes;
    Some(rec)
}

/// The string fields of a record with their names, for filling them alike.
fn string_fields(rec: &mut LogRecord) -> [(&'static str, &mut String); 10] {
    [
        ("stream", &mut rec.stream),
        ("namespace", &mut rec.namespace),
        ("pod", &mut rec.pod),
        ("pod_uid", &mut rec.pod_uid),
        ("container", &mut rec.container),
        ("container_id", &mut rec.container_id),
        ("image", &mut rec.image),
        ("node", &mut rec.node),
        ("cluster", &mut rec.cluster),
        ("file", &mut rec.file),
    ]
}

/// Fills what `outer` lacks from the record an unwrapped message made: the message itself,
/// then every field still empty; attributes merged, `outer`'s winning.
fn fill_from(outer: &mut LogRecord, mut inner: LogRecord) {
    outer.message = std::mem::take(&mut inner.message);
    outer.timestamp = outer.timestamp.or(inner.timestamp);
    outer.level = outer.level.or(inner.level);
    outer.offset = outer.offset.or(inner.offset);
    if outer.labels.is_empty() {
        outer.labels = std::mem::take(&mut inner.labels);
    }
    let inner_attributes = std::mem::take(&mut inner.attributes);
    for ((_, slot), (_, value)) in string_fields(outer)
        .into_iter()
        .zip(string_fields(&mut inner))
    {
        if slot.is_empty() {
            *slot = std::mem::take(value);
        }
    }
    for (key, value) in inner_attributes {
        outer.attributes.entry(key).or_insert(value);
    }
}

/// The message: a string `log` (Fluent Bit's line, one trailing newline removed), else a
/// non-null `message` (a non-string as its JSON text). Filebeat's `log` object stays.
fn take_message(doc: &mut Map<String, Value>) -> Option<String> {
    if let Some(Value::String(_)) = doc.get("log") {
        if let Some(Value::String(line)) = doc.remove("log") {
            return Some(strip_newline(line));
        }
    }
    match doc.remove("message") {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => Some(text),
        Some(other) => Some(other.to_string()),
    }
}

/// An agent's JSON object in a message: a JSON object with a string `log` or a `message`.
fn agent_json(message: &str) -> Option<Map<String, Value>> {
    let fields = json_object(message)?;
    let agent = matches!(fields.get("log"), Some(Value::String(_)))
        || fields.get("message").is_some_and(|m| !m.is_null());
    agent.then_some(fields)
}

fn json_object(message: &str) -> Option<Map<String, Value>> {
    if !message.trim_start().starts_with('{') {
        return None;
    }
    serde_json::from_str(message).ok()
}

/// The record's time from the first time key that parses (RFC 3339 strings; numbers as epoch
/// seconds, milliseconds, microseconds or nanoseconds by magnitude). Every key that parsed is
/// removed (agents repeat the time under several keys); one that does not parse stays.
fn take_time(doc: &mut Map<String, Value>) -> Option<Timestamp> {
    let mut found = None;
    for key in keys("timestamp") {
        let parsed = match lookup(doc, key) {
            Some(Value::String(s)) => Timestamp::parse_rfc3339(s).ok(),
            Some(Value::Number(n)) => epoch_number(n),
            _ => None,
        };
        if let Some(ts) = parsed {
            take(doc, key);
            found = found.or(Some(ts));
        }
    }
    found
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

/// The first of `paths` holding a scalar, as text; other values stay where they are.
fn take_string(doc: &mut Map<String, Value>, paths: &[&str]) -> String {
    take_first(doc, paths, |value| match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    })
    .unwrap_or_default()
}

/// The first of `paths` holding an object; other values stay where they are.
fn take_object(doc: &mut Map<String, Value>, paths: &[&str]) -> Map<String, Value> {
    take_first(doc, paths, |value| value.as_object().cloned()).unwrap_or_default()
}

/// The first of `paths` whose value `read` accepts, removed from the document; values `read`
/// refuses stay (they end in the attributes).
fn take_first<T>(
    doc: &mut Map<String, Value>,
    paths: &[&str],
    read: impl Fn(&Value) -> Option<T>,
) -> Option<T> {
    for path in paths {
        if let Some(found) = lookup(doc, path).and_then(&read) {
            take(doc, path);
            return Some(found);
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

/// Flat audit documents sent in an agent's habit: `@timestamp` for a missing `timestamp`.
pub fn audit_aliases(doc: &mut Map<String, Value>) {
    if !doc.contains_key("timestamp") {
        if let Some(value) = doc.remove("@timestamp") {
            doc.insert("timestamp".into(), value);
        }
    }
}

/// The `logs` fields under the names KubeSphere's Fluent Bit writes them (its `es` output
/// with the `kubernetes` filter), which ks-apiserver decodes from `_source`.
pub const FLUENT_BIT_NAMES: &[(&str, &str)] = &[
    ("timestamp", "time"),
    ("message", "log"),
    ("stream", "stream"),
    ("namespace", "kubernetes.namespace_name"),
    ("pod", "kubernetes.pod_name"),
    ("pod_uid", "kubernetes.pod_id"),
    ("container", "kubernetes.container_name"),
    ("container_id", "kubernetes.docker_id"),
    ("image", "kubernetes.container_image"),
    ("node", "kubernetes.host"),
    ("labels", "kubernetes.labels"),
];

/// An `audit` field, the path KubeSphere's kube-auditing writes it under (its Go struct
/// marshalled without JSON tags: `AuditID`, `User.Username`, ...), and the path of the
/// audit.k8s.io/v1 `Event` that holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditAlias {
    pub field: &'static str,
    pub kubesphere: &'static str,
    pub k8s: &'static str,
}

const fn audit_alias(
    field: &'static str,
    kubesphere: &'static str,
    k8s: &'static str,
) -> AuditAlias {
    AuditAlias {
        field,
        kubesphere,
        k8s,
    }
}

/// KubeSphere's audit event names (kube-auditing's `Event`, as ks-apiserver's auditing client
/// queries them) of the `audit` stream's fields.
pub const KUBE_AUDITING_ALIASES: &[AuditAlias] = &[
    audit_alias(
        "timestamp",
        "RequestReceivedTimestamp",
        "requestReceivedTimestamp",
    ),
    audit_alias("stage_timestamp", "StageTimestamp", "stageTimestamp"),
    audit_alias("audit_id", "AuditID", "auditID"),
    audit_alias("stage", "Stage", "stage"),
    audit_alias("level", "Level", "level"),
    audit_alias("verb", "Verb", "verb"),
    audit_alias("request_uri", "RequestURI", "requestURI"),
    audit_alias("user", "User.Username", "user.username"),
    audit_alias("user_uid", "User.UID", "user.uid"),
    audit_alias("user_groups", "User.Groups", "user.groups"),
    audit_alias(
        "impersonated_user",
        "ImpersonatedUser.Username",
        "impersonatedUser.username",
    ),
    audit_alias(
        "impersonated_groups",
        "ImpersonatedUser.Groups",
        "impersonatedUser.groups",
    ),
    audit_alias("source_ips", "SourceIPs", "sourceIPs"),
    audit_alias("user_agent", "UserAgent", "userAgent"),
    audit_alias("api_group", "ObjectRef.APIGroup", "objectRef.apiGroup"),
    audit_alias(
        "api_version",
        "ObjectRef.APIVersion",
        "objectRef.apiVersion",
    ),
    audit_alias("resource", "ObjectRef.Resource", "objectRef.resource"),
    audit_alias(
        "subresource",
        "ObjectRef.Subresource",
        "objectRef.subresource",
    ),
    audit_alias("namespace", "ObjectRef.Namespace", "objectRef.namespace"),
    audit_alias("name", "ObjectRef.Name", "objectRef.name"),
    audit_alias("status_code", "ResponseStatus.code", "responseStatus.code"),
    audit_alias(
        "status_message",
        "ResponseStatus.message",
        "responseStatus.message",
    ),
    audit_alias("annotations", "Annotations", "annotations"),
    audit_alias("request_object", "RequestObject", "requestObject"),
    audit_alias("response_object", "ResponseObject", "responseObject"),
];

/// Fields of kube-auditing's events that the `audit` stream does not keep: a query naming one
/// is refused (it could only ever match nothing), never answered with a silent 0.
pub const KUBE_AUDITING_NOT_KEPT: &[&str] = &[
    "Workspace",
    "Devops",
    "Cluster",
    "Message",
    "HostName",
    "HostIP",
    "ResponseStatus.status",
    "ResponseStatus.reason",
    "ObjectRef.UID",
    "ObjectRef.ResourceVersion",
    "User.Extra",
];

/// The `audit` field a kube-auditing name stands for in a query (`User.Username` is `user`).
pub fn audit_field(key: &str) -> Option<&'static str> {
    KUBE_AUDITING_ALIASES
        .iter()
        .find(|a| a.kubesphere == key)
        .map(|a| a.field)
}

/// Whether a document is one of kube-auditing's events (it has `AuditID`).
pub fn is_kube_auditing(doc: &Map<String, Value>) -> bool {
    doc.contains_key("AuditID")
}

/// A kube-auditing event as the audit.k8s.io/v1 `Event` it wraps (`AuditID` → `auditID`,
/// `User.Username` → `user.username`, ...); what the `audit` stream does not keep is left out.
pub fn kube_auditing_to_k8s(doc: &Map<String, Value>) -> Map<String, Value> {
    let mut out = Map::new();
    for alias in KUBE_AUDITING_ALIASES {
        if let Some(value) = lookup(doc, alias.kubesphere).filter(|v| !v.is_null()) {
            crate::path::insert(&mut out, alias.k8s, value.clone());
        }
    }
    out
}

/// An `events` field, the path of the core v1 `Event` that holds it (what KubeSphere's events
/// exporter writes and ks-apiserver's events client queries: `involvedObject.name`,
/// `lastTimestamp`, ...) and the path of the events.k8s.io/v1 `Event` that holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventAlias {
    pub field: &'static str,
    pub core: &'static str,
    pub v1: &'static str,
}

const fn event_alias(field: &'static str, core: &'static str, v1: &'static str) -> EventAlias {
    EventAlias { field, core, v1 }
}

/// The `events` stream's fields under the names of the two `Event` versions.
pub const EVENT_ALIASES: &[EventAlias] = &[
    event_alias("timestamp", "lastTimestamp", "series.lastObservedTime"),
    event_alias("first_seen", "firstTimestamp", "eventTime"),
    event_alias("type", "type", "type"),
    event_alias("reason", "reason", "reason"),
    event_alias("message", "message", "note"),
    event_alias(
        "namespace",
        "involvedObject.namespace",
        "regarding.namespace",
    ),
    event_alias("kind", "involvedObject.kind", "regarding.kind"),
    event_alias("name", "involvedObject.name", "regarding.name"),
    event_alias("uid", "involvedObject.uid", "regarding.uid"),
    event_alias(
        "field_path",
        "involvedObject.fieldPath",
        "regarding.fieldPath",
    ),
    event_alias("related_kind", "related.kind", "related.kind"),
    event_alias("related_name", "related.name", "related.name"),
    event_alias(
        "reporting_controller",
        "source.component",
        "reportingController",
    ),
    event_alias(
        "reporting_instance",
        "reportingInstance",
        "reportingInstance",
    ),
    event_alias("action", "action", "action"),
    event_alias("node", "source.host", "deprecatedSource.host"),
    event_alias("count", "count", "series.count"),
    event_alias("event_uid", "metadata.uid", "metadata.uid"),
    event_alias("event_name", "metadata.name", "metadata.name"),
    event_alias(
        "resource_version",
        "metadata.resourceVersion",
        "metadata.resourceVersion",
    ),
];

/// Further core v1 names of `events` fields: the Event's own namespace (the regarding object's,
/// for every namespaced object) and the newer name of the reporting component.
const EVENT_CORE_EXTRA: &[(&str, &str)] = &[
    ("namespace", "metadata.namespace"),
    ("reporting_controller", "reportingComponent"),
];

/// The `events` field a name of either `Event` version stands for in a query
/// (`involvedObject.name` and `regarding.name` are `name`).
pub fn event_field(key: &str) -> Option<&'static str> {
    EVENT_ALIASES
        .iter()
        .find(|a| a.core == key || a.v1 == key)
        .map(|a| a.field)
        .or_else(|| {
            EVENT_CORE_EXTRA
                .iter()
                .find(|(_, path)| *path == key)
                .map(|(field, _)| *field)
        })
}

/// A flat `logs`, `audit` or `events` record (Trawl's field names) in the shape KubeSphere's
/// writers give it: Fluent Bit's names for `logs`, kube-auditing's for `audit`, the core v1
/// `Event`'s for `events` (what its events exporter writes); fields with no such
/// name, and empty ones (a record does not tell an empty field from an absent one), are left
/// out, and any other stream's record is returned as it is.
pub fn kubesphere_source(stream: &str, record: &Map<String, Value>) -> Map<String, Value> {
    let names: Vec<(&str, &str)> = match stream {
        crate::LOGS_STREAM => FLUENT_BIT_NAMES.to_vec(),
        crate::AUDIT_STREAM => KUBE_AUDITING_ALIASES
            .iter()
            .map(|a| (a.field, a.kubesphere))
            .collect(),
        crate::EVENTS_STREAM => EVENT_ALIASES
            .iter()
            .map(|a| (a.field, a.core))
            .chain(EVENT_CORE_EXTRA.iter().copied())
            .collect(),
        _ => return record.clone(),
    };
    let mut out = Map::new();
    for (field, path) in names {
        let empty = |v: &&Value| match v {
            Value::Null => true,
            Value::String(s) => s.is_empty(),
            Value::Array(items) => items.is_empty(),
            Value::Object(fields) => fields.is_empty(),
            _ => false,
        };
        if let Some(value) = record.get(field).filter(|v| !empty(v)) {
            crate::path::insert(&mut out, path, value.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests;
