//! Kubernetes audit events: the flat documents of the `audit` stream, their mapping from
//! audit.k8s.io `Event` objects, and the fields derived from them for analytics.
//!
//! An input line is either a Kubernetes `Event` (audit.k8s.io/v1 or v1beta1, as the API server
//! writes it to its log file or posts it to a webhook) or an already-flat [`AuditEvent`]
//! document; [`parse_audit_line`] accepts both. The webhook's `EventList` body goes through
//! [`parse_event_list`], which reports each item's error on its own.

mod derive;
mod k8s;
mod percent;
#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{Error, Result, Timestamp};

/// Field names of the `audit` stream, as they appear in documents, queries and exports.
pub mod fields {
    pub const TIMESTAMP: &str = "timestamp";
    pub const STAGE_TIMESTAMP: &str = "stage_timestamp";
    pub const LATENCY_MS: &str = "latency_ms";
    pub const AUDIT_ID: &str = "audit_id";
    pub const STAGE: &str = "stage";
    pub const LEVEL: &str = "level";
    pub const VERB: &str = "verb";
    pub const REQUEST_URI: &str = "request_uri";
    pub const USER: &str = "user";
    pub const USER_GROUPS: &str = "user_groups";
    pub const USER_UID: &str = "user_uid";
    pub const IMPERSONATED_USER: &str = "impersonated_user";
    pub const IMPERSONATED_GROUPS: &str = "impersonated_groups";
    pub const SOURCE_IPS: &str = "source_ips";
    pub const USER_AGENT: &str = "user_agent";
    pub const API_GROUP: &str = "api_group";
    pub const API_VERSION: &str = "api_version";
    pub const RESOURCE: &str = "resource";
    pub const SUBRESOURCE: &str = "subresource";
    pub const NAMESPACE: &str = "namespace";
    pub const NAME: &str = "name";
    pub const STATUS_CODE: &str = "status_code";
    pub const STATUS_MESSAGE: &str = "status_message";
    pub const DECISION: &str = "decision";
    pub const REASON: &str = "reason";
    pub const ANNOTATIONS: &str = "annotations";
    pub const REQUEST_OBJECT: &str = "request_object";
    pub const RESPONSE_OBJECT: &str = "response_object";
    pub const CLUSTER: &str = "cluster";
    pub const REQUEST_PATH: &str = "request_path";
    pub const EXEC_COMMAND: &str = "exec_command";
    pub const EXEC_CONTAINER: &str = "exec_container";
    pub const PRIVILEGED: &str = "privileged";
    pub const HOST_PID: &str = "host_pid";
    pub const HOST_NETWORK: &str = "host_network";
    pub const HOST_IPC: &str = "host_ipc";
    pub const HOST_PATH: &str = "host_path";
    pub const ROLE_REF: &str = "role_ref";
    pub const EFFECTIVE_USER: &str = "effective_user";
    pub const SOURCE_IP: &str = "source_ip";
    pub const STATUS_CLASS: &str = "status_class";
}

fn is_false(v: &bool) -> bool {
    !*v
}

/// One document of the `audit` stream: one Kubernetes audit event at one stage.
///
/// The JSON form leaves out empty strings, empty lists and maps, `None` and `false`; a field
/// that is absent reads back as empty (or `false`). Unknown top-level fields are refused, so a
/// flat document with a misspelt field is an error naming it. The document is identified by
/// ([`audit_id`](Self::audit_id), [`stage`](Self::stage)): see [`AuditEvent::dedup_key`].
///
/// The fields from `request_path` on are derived from the others for analytics (see
/// [`AuditEvent::fill_derived`]); they are all keywords, booleans or integers, so that they can
/// be grouped and filtered on fast fields.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditEvent {
    /// When the API server received the request (`requestReceivedTimestamp`, or the legacy
    /// `timestamp` of old events that have no `requestReceivedTimestamp`).
    pub timestamp: Timestamp,
    /// When the event reached its stage (`stageTimestamp`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage_timestamp: Option<Timestamp>,
    /// `stage_timestamp - timestamp` in whole milliseconds, rounded down (a 12.9 ms request is
    /// 12). Absent when either time is absent or the stage precedes the reception (clock skew).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<i64>,
    /// `auditID`: one id per request, shared by all the stages of the request.
    pub audit_id: String,
    /// `RequestReceived`, `ResponseStarted`, `ResponseComplete` or `Panic`.
    pub stage: String,
    /// The policy level: `Metadata`, `Request` or `RequestResponse`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub level: String,
    /// The Kubernetes verb (`get`, `list`, `create`, ...); for non-resource requests, the
    /// lower-case HTTP method, as the API server gives it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub verb: String,
    /// The request URI as received, with its query string.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub request_uri: String,
    /// `user.username`: the authenticated user.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub user: String,
    /// `user.groups`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub user_groups: Vec<String>,
    /// `user.uid`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub user_uid: String,
    /// `impersonatedUser.username`: the user the request impersonated, if any.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub impersonated_user: String,
    /// `impersonatedUser.groups`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub impersonated_groups: Vec<String>,
    /// `sourceIPs`: the `X-Forwarded-For` addresses, then `X-Real-Ip`, then the peer address.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source_ips: Vec<String>,
    /// `userAgent`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub user_agent: String,
    /// `objectRef.apiGroup` (empty for the core group).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_group: String,
    /// `objectRef.apiVersion`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    /// `objectRef.resource` (`pods`, `secrets`, ...); empty for non-resource requests.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub resource: String,
    /// `objectRef.subresource` (`exec`, `status`, ...).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub subresource: String,
    /// `objectRef.namespace`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// `objectRef.name`; for a `create` whose `objectRef` has no name (a name generated from
    /// `generateName`), the name in `responseObject.metadata.name` when there is one.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// `responseStatus.code`; absent when the event has none (e.g. at `RequestReceived`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_code: Option<i64>,
    /// `responseStatus.message`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub status_message: String,
    /// The `authorization.k8s.io/decision` annotation: `allow` or `forbid`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub decision: String,
    /// The `authorization.k8s.io/reason` annotation.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// All the event's annotations.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub annotations: Map<String, Value>,
    /// `requestObject` as sent (level `Request` and up). Usually an object, but any JSON value
    /// (a JSON patch is an array).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_object: Option<Value>,
    /// `responseObject` (level `RequestResponse`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_object: Option<Value>,
    /// The cluster the event came from, stamped by the collector.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cluster: String,

    /// Derived: `request_uri` without its query string.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub request_path: String,
    /// Derived, for `pods/exec`: the `command` parameters of the URI, percent-decoded and
    /// joined by single spaces (`command=sh&command=-c&command=echo%20hi` is `sh -c echo hi`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub exec_command: String,
    /// Derived, for `pods/exec` and `pods/attach`: the first `container` parameter of the URI.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub exec_container: String,
    /// Derived: a create, update or patch of a pod or of a workload's pod template in which
    /// some container, init container or ephemeral container is `securityContext.privileged`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub privileged: bool,
    /// Derived: likewise, a pod spec with `hostPID: true`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub host_pid: bool,
    /// Derived: likewise, a pod spec with `hostNetwork: true`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub host_network: bool,
    /// Derived: likewise, a pod spec with `hostIPC: true`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub host_ipc: bool,
    /// Derived: likewise, a pod spec with a `hostPath` volume.
    #[serde(default, skip_serializing_if = "is_false")]
    pub host_path: bool,
    /// Derived, for rolebindings and clusterrolebindings: `<kind>/<name>` of the `roleRef`
    /// (`ClusterRole/cluster-admin`), from the request object or else the response object.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub role_ref: String,
    /// Derived: `impersonated_user` when there is one, else `user`: whose rights were used.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub effective_user: String,
    /// Derived: the last of `source_ips`, the address of the direct peer (the earlier ones come
    /// from headers the client controls).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub source_ip: String,
    /// Derived: `1xx` to `5xx` from `status_code`; empty when there is no code or it is outside
    /// 100..=599.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub status_class: String,
}

impl AuditEvent {
    /// Maps an audit.k8s.io/v1 or v1beta1 `Event` onto a flat document, derived fields
    /// included. Unknown fields of the event are ignored; `null` counts as absent.
    ///
    /// Errors ([`Error::InvalidAuditEvent`], naming the field): `auditID` or `stage` missing;
    /// neither `requestReceivedTimestamp` nor the legacy `timestamp`; a timestamp that is not RFC
    /// 3339; a field of the wrong JSON type (`user.groups` not a list of strings, ...); a `kind`
    /// other than `Event`.
    pub fn from_k8s_event(value: &Value) -> Result<AuditEvent> {
        k8s::from_k8s(value.clone())
    }

    /// [`AuditEvent::from_k8s_event`] taking the event by value, which spares copying the
    /// request and response objects.
    pub fn from_k8s_value(value: Value) -> Result<AuditEvent> {
        k8s::from_k8s(value)
    }

    /// The identity of the document, `<audit_id>/<stage>`: the same pair ingested twice is one
    /// document, while the stages of one request are distinct documents.
    pub fn dedup_key(&self) -> String {
        format!("{}/{}", self.audit_id, self.stage)
    }

    /// Fills the derived fields (and `latency_ms`, `decision` and `reason`) from the others,
    /// keeping any that are already set: a derived string is computed only when empty, a
    /// derived flag only turned on, never off. Idempotent.
    pub fn fill_derived(&mut self) {
        derive::fill(self);
    }
}

/// Parses one line of an audit log or of an NDJSON ingest body: a Kubernetes `Event` (it has
/// `auditID` or `"kind": "Event"`) or a flat [`AuditEvent`] document (it has `audit_id`).
/// Derived fields missing from a flat document are filled in.
///
/// Errors: invalid JSON; a line that is neither (the message names the fields looked for); the
/// errors of [`AuditEvent::from_k8s_event`]; for a flat document, a missing `timestamp`,
/// `audit_id` or `stage`, an unknown field, or a field of the wrong type.
pub fn parse_audit_line(line: &[u8]) -> Result<AuditEvent> {
    let value: Value = serde_json::from_slice(line)
        .map_err(|e| Error::InvalidRecord(format!("invalid JSON: {e}")))?;
    let Value::Object(map) = &value else {
        return Err(Error::InvalidRecord(
            "an audit event must be a JSON object".to_string(),
        ));
    };
    let is_k8s =
        map.contains_key("auditID") || map.get("kind").and_then(Value::as_str) == Some("Event");
    if is_k8s {
        return AuditEvent::from_k8s_value(value);
    }
    if map.contains_key(fields::AUDIT_ID) {
        return parse_flat(value);
    }
    Err(Error::InvalidRecord(
        "not an audit event: it has neither `auditID` (a Kubernetes audit Event) nor `audit_id` \
         (a flat audit document)"
            .to_string(),
    ))
}

fn parse_flat(value: Value) -> Result<AuditEvent> {
    let mut event: AuditEvent = serde_json::from_value(value)
        .map_err(|e| Error::InvalidRecord(format!("invalid audit document: {e}")))?;
    for (field, text) in [
        (fields::AUDIT_ID, &event.audit_id),
        (fields::STAGE, &event.stage),
    ] {
        if text.is_empty() {
            return Err(Error::InvalidRecord(format!(
                "invalid audit document: `{field}` is empty"
            )));
        }
    }
    event.fill_derived();
    Ok(event)
}

/// Parses the body the API server posts to an audit webhook: an audit.k8s.io `EventList`
/// (`{"kind": "EventList", "items": [...]}`), one result per item, in order.
///
/// The outer `Err` is for a body that is not an `EventList` at all (invalid JSON, not an
/// object, a `kind` other than `EventList`, `items` absent without `"kind": "EventList"`, or
/// `items` not a list); an `EventList` whose `items` is absent or `null` has no events. Each
/// item is mapped with [`AuditEvent::from_k8s_event`] and fails alone.
pub fn parse_event_list(body: &[u8]) -> Result<Vec<Result<AuditEvent>>> {
    let invalid = |problem: &str| Error::InvalidRecord(format!("invalid EventList: {problem}"));
    let value: Value =
        serde_json::from_slice(body).map_err(|e| invalid(&format!("invalid JSON: {e}")))?;
    let Value::Object(mut map) = value else {
        return Err(invalid("the body must be a JSON object"));
    };
    let is_list = match map.get("kind") {
        None | Some(Value::Null) => false,
        Some(Value::String(kind)) if kind == "EventList" => true,
        Some(_) => return Err(invalid("`kind` must be \"EventList\"")),
    };
    match map.remove("items") {
        Some(Value::Array(items)) => {
            Ok(items.into_iter().map(AuditEvent::from_k8s_value).collect())
        }
        Some(Value::Null) | None if is_list => Ok(Vec::new()),
        None => Err(invalid("`items` is missing")),
        Some(_) => Err(invalid("`items` must be a list")),
    }
}
