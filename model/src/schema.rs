//! A description of each built-in stream's fields and their kinds, from which the indexer
//! builds its tantivy schema and the exporters their column types. Kept free of tantivy so
//! that the collector can depend on this crate.

use std::borrow::Cow;

/// How a field is indexed and stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    /// Nanosecond date, indexed and fast (the stream's time axis).
    Timestamp,
    /// Untokenised string, indexed, fast (aggregations, sorting) and stored.
    Keyword,
    /// Keyword that may hold several values (a JSON array of strings in the record).
    KeywordList,
    /// Tokenised full text with positions (phrase queries), stored.
    Text,
    /// Signed integer, indexed, fast and stored.
    I64,
    /// Unsigned integer, indexed, fast and stored.
    U64,
    /// Floating point, indexed, fast and stored.
    F64,
    /// Boolean, indexed, fast and stored.
    Bool,
    /// A JSON object, indexed with `expand_dots` (so `labels.app.kubernetes.io/name:web` works),
    /// its string values raw-tokenised and fast, stored.
    Json,
    /// A JSON object, stored and searchable with its string values tokenised like `message`.
    JsonText,
}

/// One field of a stream. The built-in tables borrow their names (so that they stay `const`);
/// the fields of operator-declared streams own theirs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldDef {
    pub name: Cow<'static, str>,
    pub kind: FieldKind,
}

impl FieldDef {
    /// A field with an owned (or static) name.
    pub fn new(name: impl Into<Cow<'static, str>>, kind: FieldKind) -> FieldDef {
        FieldDef {
            name: name.into(),
            kind,
        }
    }

    /// The field's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

const fn f(name: &'static str, kind: FieldKind) -> FieldDef {
    FieldDef {
        name: Cow::Borrowed(name),
        kind,
    }
}

/// The fields of the `logs` stream, in record order.
pub const LOG_FIELDS: &[FieldDef] = &[
    f("timestamp", FieldKind::Timestamp),
    f("cluster", FieldKind::Keyword),
    f("node", FieldKind::Keyword),
    f("namespace", FieldKind::Keyword),
    f("pod", FieldKind::Keyword),
    f("pod_uid", FieldKind::Keyword),
    f("container", FieldKind::Keyword),
    f("container_id", FieldKind::Keyword),
    f("image", FieldKind::Keyword),
    f("labels", FieldKind::Json),
    f("stream", FieldKind::Keyword),
    f("level", FieldKind::Keyword),
    f("message", FieldKind::Text),
    f("attributes", FieldKind::Json),
    f("file", FieldKind::Keyword),
    f("offset", FieldKind::U64),
];

/// The default search fields of the `logs` stream.
pub const LOG_DEFAULT_FIELDS: &[&str] = &["message"];

/// The fields of the `audit` stream, in document order (see [`crate::AuditEvent`]). Free text
/// that is read rather than grouped (`status_message`, `reason`) is `Text`; everything derived
/// for analytics is a keyword, flag or integer, so that it can be aggregated on fast fields.
pub const AUDIT_FIELDS: &[FieldDef] = &[
    f("timestamp", FieldKind::Timestamp),
    f("stage_timestamp", FieldKind::Timestamp),
    f("latency_ms", FieldKind::I64),
    f("audit_id", FieldKind::Keyword),
    f("stage", FieldKind::Keyword),
    f("level", FieldKind::Keyword),
    f("verb", FieldKind::Keyword),
    f("request_uri", FieldKind::Keyword),
    f("user", FieldKind::Keyword),
    f("user_groups", FieldKind::KeywordList),
    f("user_uid", FieldKind::Keyword),
    f("impersonated_user", FieldKind::Keyword),
    f("impersonated_groups", FieldKind::KeywordList),
    f("source_ips", FieldKind::KeywordList),
    f("user_agent", FieldKind::Keyword),
    f("api_group", FieldKind::Keyword),
    f("api_version", FieldKind::Keyword),
    f("resource", FieldKind::Keyword),
    f("subresource", FieldKind::Keyword),
    f("namespace", FieldKind::Keyword),
    f("name", FieldKind::Keyword),
    f("status_code", FieldKind::I64),
    f("status_message", FieldKind::Text),
    f("decision", FieldKind::Keyword),
    f("reason", FieldKind::Text),
    f("annotations", FieldKind::Json),
    f("request_object", FieldKind::Json),
    f("response_object", FieldKind::Json),
    f("cluster", FieldKind::Keyword),
    f("request_path", FieldKind::Keyword),
    f("exec_command", FieldKind::Keyword),
    f("exec_container", FieldKind::Keyword),
    f("privileged", FieldKind::Bool),
    f("host_pid", FieldKind::Bool),
    f("host_network", FieldKind::Bool),
    f("host_ipc", FieldKind::Bool),
    f("host_path", FieldKind::Bool),
    f("role_ref", FieldKind::Keyword),
    f("effective_user", FieldKind::Keyword),
    f("source_ip", FieldKind::Keyword),
    f("status_class", FieldKind::Keyword),
];

/// The default search fields of the `audit` stream.
pub const AUDIT_DEFAULT_FIELDS: &[&str] = &["request_uri", "user", "name"];

/// The `events` stream's fields (Kubernetes Events; see [`crate::events::KubeEvent`]).
pub const EVENT_FIELDS: &[FieldDef] = &[
    f("timestamp", FieldKind::Timestamp),
    f("first_seen", FieldKind::Timestamp),
    f("cluster", FieldKind::Keyword),
    f("type", FieldKind::Keyword),
    f("reason", FieldKind::Keyword),
    f("message", FieldKind::Text),
    f("namespace", FieldKind::Keyword),
    f("kind", FieldKind::Keyword),
    f("name", FieldKind::Keyword),
    f("uid", FieldKind::Keyword),
    f("field_path", FieldKind::Keyword),
    f("related_kind", FieldKind::Keyword),
    f("related_name", FieldKind::Keyword),
    f("reporting_controller", FieldKind::Keyword),
    f("reporting_instance", FieldKind::Keyword),
    f("action", FieldKind::Keyword),
    f("node", FieldKind::Keyword),
    f("count", FieldKind::I64),
    f("event_uid", FieldKind::Keyword),
    f("event_name", FieldKind::Keyword),
    f("resource_version", FieldKind::Keyword),
];

/// The `journal` stream's fields (the nodes' journald; see [`crate::journal::JournalEntry`]).
pub const JOURNAL_FIELDS: &[FieldDef] = &[
    f("timestamp", FieldKind::Timestamp),
    f("cluster", FieldKind::Keyword),
    f("node", FieldKind::Keyword),
    f("unit", FieldKind::Keyword),
    f("identifier", FieldKind::Keyword),
    f("pid", FieldKind::I64),
    f("priority", FieldKind::I64),
    f("level", FieldKind::Keyword),
    f("message", FieldKind::Text),
    f("boot_id", FieldKind::Keyword),
    f("cursor", FieldKind::Keyword),
];

/// What a term without a field name searches in `journal`.
pub const JOURNAL_DEFAULT_FIELDS: &[&str] = &["message"];

/// What a term without a field name searches in `events`: the note, then the reason and the
/// regarding object's name.
pub const EVENT_DEFAULT_FIELDS: &[&str] = &["message", "reason", "name"];

#[cfg(test)]
mod tests {
    use super::*;

    /// The table and the document agree: a fully populated event has exactly the fields of
    /// the table.
    #[test]
    fn audit_fields_match_the_document() {
        let x = || "x".to_string();
        let ev = crate::AuditEvent {
            timestamp: crate::Timestamp(1),
            stage_timestamp: Some(crate::Timestamp(1)),
            latency_ms: Some(1),
            audit_id: x(),
            stage: x(),
            level: x(),
            verb: x(),
            request_uri: x(),
            user: x(),
            user_groups: vec![x()],
            user_uid: x(),
            impersonated_user: x(),
            impersonated_groups: vec![x()],
            source_ips: vec![x()],
            user_agent: x(),
            api_group: x(),
            api_version: x(),
            resource: x(),
            subresource: x(),
            namespace: x(),
            name: x(),
            status_code: Some(1),
            status_message: x(),
            decision: x(),
            reason: x(),
            annotations: serde_json::Map::from_iter([(x(), serde_json::json!("x"))]),
            request_object: Some(serde_json::json!({})),
            response_object: Some(serde_json::json!({})),
            cluster: x(),
            request_path: x(),
            exec_command: x(),
            exec_container: x(),
            privileged: true,
            host_pid: true,
            host_network: true,
            host_ipc: true,
            host_path: true,
            role_ref: x(),
            effective_user: x(),
            source_ip: x(),
            status_class: x(),
        };
        assert_fields_match(
            serde_json::to_value(&ev).unwrap(),
            AUDIT_FIELDS,
            AUDIT_DEFAULT_FIELDS,
        );
    }

    /// A document with every field set has exactly the table's fields, and the default fields
    /// are among them.
    fn assert_fields_match(doc: serde_json::Value, table: &[FieldDef], defaults: &[&str]) {
        let mut in_doc: Vec<&str> = doc
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        let mut in_table: Vec<&str> = table.iter().map(|d| d.name()).collect();
        in_doc.sort_unstable();
        in_table.sort_unstable();
        assert_eq!(in_doc, in_table);
        for name in defaults {
            assert!(in_table.contains(name), "{name}");
        }
    }

    #[test]
    fn event_fields_match_the_document() {
        let x = || "x".to_string();
        let ev = crate::KubeEvent {
            timestamp: Some(crate::Timestamp(1)),
            first_seen: Some(crate::Timestamp(1)),
            cluster: x(),
            event_type: x(),
            reason: x(),
            message: x(),
            namespace: x(),
            kind: x(),
            name: x(),
            uid: x(),
            field_path: x(),
            related_kind: x(),
            related_name: x(),
            reporting_controller: x(),
            reporting_instance: x(),
            action: x(),
            node: x(),
            count: Some(1),
            event_uid: x(),
            event_name: x(),
            resource_version: x(),
        };
        assert_fields_match(
            serde_json::to_value(&ev).unwrap(),
            EVENT_FIELDS,
            EVENT_DEFAULT_FIELDS,
        );
    }

    #[test]
    fn journal_fields_match_the_document() {
        let x = || "x".to_string();
        let entry = crate::JournalEntry {
            timestamp: Some(crate::Timestamp(1)),
            cluster: x(),
            node: x(),
            unit: x(),
            identifier: x(),
            pid: Some(1),
            priority: Some(1),
            level: x(),
            message: x(),
            boot_id: x(),
            cursor: x(),
        };
        assert_fields_match(
            serde_json::to_value(&entry).unwrap(),
            JOURNAL_FIELDS,
            JOURNAL_DEFAULT_FIELDS,
        );
    }
}
