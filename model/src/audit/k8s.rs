//! The mapping of audit.k8s.io/v1 and v1beta1 `Event` objects onto flat [`AuditEvent`]s.
//!
//! Works on a `serde_json::Value` rather than a typed struct so that every error can name the
//! offending field by its path in the event (`user.groups`, `responseStatus.code`).

use serde_json::{Map, Value};

use super::AuditEvent;
use crate::{Error, Result, Timestamp};

/// Set by the API server's authorizer on every authorized (or refused) request.
pub(super) const DECISION_ANNOTATION: &str = "authorization.k8s.io/decision";
/// Set beside [`DECISION_ANNOTATION`]: why the authorizer decided so (often empty).
pub(super) const REASON_ANNOTATION: &str = "authorization.k8s.io/reason";

type Object = Map<String, Value>;

fn field_error(prefix: &str, key: &str, problem: &str) -> Error {
    let field = if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    };
    Error::InvalidAuditEvent {
        field,
        problem: problem.to_string(),
    }
}

/// The string at `key`; empty when absent or `null`.
fn string(map: &Object, prefix: &str, key: &str) -> Result<String> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(field_error(prefix, key, "must be a string")),
    }
}

/// The string at `key`, which must be present and not empty.
fn required_string(map: &Object, key: &str) -> Result<String> {
    let text = string(map, "", key)?;
    if text.is_empty() {
        return Err(field_error("", key, "is missing"));
    }
    Ok(text)
}

/// The list of strings at `key`; empty when absent or `null`.
fn strings(map: &Object, prefix: &str, key: &str) -> Result<Vec<String>> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| match item {
                Value::String(s) => Ok(s.clone()),
                _ => Err(field_error(prefix, key, "must be a list of strings")),
            })
            .collect(),
        Some(_) => Err(field_error(prefix, key, "must be a list of strings")),
    }
}

/// The object at `key`; `None` when absent or `null`.
fn object<'a>(map: &'a Object, prefix: &str, key: &str) -> Result<Option<&'a Object>> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(inner)) => Ok(Some(inner)),
        Some(_) => Err(field_error(prefix, key, "must be an object")),
    }
}

/// The RFC 3339 time at `key`; `None` when absent, `null` or empty.
fn time(map: &Object, key: &str) -> Result<Option<Timestamp>> {
    let text = string(map, "", key)?;
    if text.is_empty() {
        return Ok(None);
    }
    Timestamp::parse_rfc3339(&text).map(Some).map_err(|_| {
        let shown: String = text.chars().take(64).collect();
        field_error("", key, &format!("is not an RFC 3339 time: {shown:?}"))
    })
}

pub(super) fn from_k8s(value: Value) -> Result<AuditEvent> {
    let Value::Object(mut event) = value else {
        return Err(Error::InvalidRecord(
            "an audit event must be a JSON object".to_string(),
        ));
    };
    match event.get("kind") {
        None | Some(Value::Null) => {}
        Some(Value::String(kind)) if kind == "Event" => {}
        Some(_) => return Err(field_error("", "kind", "must be \"Event\"")),
    }

    let audit_id = required_string(&event, "auditID")?;
    let stage = required_string(&event, "stage")?;
    // v1beta1 events carry both the legacy `timestamp` (seconds) and, from Kubernetes 1.10,
    // `requestReceivedTimestamp` (microseconds): prefer the precise one.
    let timestamp = match time(&event, "requestReceivedTimestamp")? {
        Some(ts) => ts,
        None => time(&event, "timestamp")?.ok_or_else(|| {
            field_error(
                "",
                "requestReceivedTimestamp",
                "is missing (and there is no legacy `timestamp`)",
            )
        })?,
    };
    let stage_timestamp = time(&event, "stageTimestamp")?;

    let (user, user_groups, user_uid) = match object(&event, "", "user")? {
        Some(u) => (
            string(u, "user", "username")?,
            strings(u, "user", "groups")?,
            string(u, "user", "uid")?,
        ),
        None => (String::new(), Vec::new(), String::new()),
    };
    let (impersonated_user, impersonated_groups) = match object(&event, "", "impersonatedUser")? {
        Some(u) => (
            string(u, "impersonatedUser", "username")?,
            strings(u, "impersonatedUser", "groups")?,
        ),
        None => (String::new(), Vec::new()),
    };

    let mut out = AuditEvent {
        timestamp,
        stage_timestamp,
        audit_id,
        stage,
        level: string(&event, "", "level")?,
        verb: string(&event, "", "verb")?,
        request_uri: string(&event, "", "requestURI")?,
        user,
        user_groups,
        user_uid,
        impersonated_user,
        impersonated_groups,
        source_ips: strings(&event, "", "sourceIPs")?,
        user_agent: string(&event, "", "userAgent")?,
        ..AuditEvent::default()
    };

    if let Some(r) = object(&event, "", "objectRef")? {
        const P: &str = "objectRef";
        out.api_group = string(r, P, "apiGroup")?;
        out.api_version = string(r, P, "apiVersion")?;
        out.resource = string(r, P, "resource")?;
        out.subresource = string(r, P, "subresource")?;
        out.namespace = string(r, P, "namespace")?;
        out.name = string(r, P, "name")?;
    }

    if let Some(status) = object(&event, "", "responseStatus")? {
        out.status_code = match status.get("code") {
            None | Some(Value::Null) => None,
            Some(code) => Some(
                code.as_i64()
                    .ok_or_else(|| field_error("responseStatus", "code", "must be an integer"))?,
            ),
        };
        out.status_message = string(status, "responseStatus", "message")?;
    }

    if let Some(annotations) = object(&event, "", "annotations")? {
        out.annotations = annotations.clone();
    }

    out.request_object = event.remove("requestObject").filter(|v| !v.is_null());
    out.response_object = event.remove("responseObject").filter(|v| !v.is_null());

    // A create with `generateName` has no name in its objectRef: the name the server chose is
    // only in the response.
    if out.name.is_empty() && out.verb == "create" && out.subresource.is_empty() {
        if let Some(name) = out
            .response_object
            .as_ref()
            .and_then(|o| o.pointer("/metadata/name"))
            .and_then(Value::as_str)
        {
            out.name = name.to_string();
        }
    }

    out.fill_derived();
    Ok(out)
}
