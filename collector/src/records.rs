//! Building the records shipped: container log records and audit events, as JSON.

use crate::identity::PodFile;
use crate::jsonw::{write_record, FileParts, Line};
use crate::kube::Enrichment;
use crate::parse::Assembled;
use crate::redact::Redactor;

/// What every record of this node carries.
#[derive(Debug, Clone, Default)]
pub struct Stamp {
    /// `cluster` from the configuration.
    pub cluster: String,
    /// This node's name.
    pub node: String,
}

/// Attribute set on a chunk of a record longer than `max_line_bytes`.
pub const SPLIT_ATTRIBUTE: &str = "trawl.split";
/// Attribute set on a line that did not parse (its raw text is the message).
pub const MALFORMED_ATTRIBUTE: &str = "trawl.malformed";

/// The JSON of the [`LogRecord`] for `rec`, read from `path`, with the pod's Kubernetes
/// metadata when known (`meta`: labels, image, container id; its attributes win over fields of
/// a JSON line with the same key). The message is redacted before enrichment, so that secrets
/// reach neither `message` nor `attributes`. The follower writes with [`write_log_record`] and
/// the [`FileParts`] of each file kept; this builds them for one record.
pub fn log_record(
    stamp: &Stamp,
    pod: &PodFile,
    meta: Option<&Enrichment>,
    path: &str,
    rec: &Assembled,
    redactor: Option<&Redactor>,
) -> Vec<u8> {
    let parts = FileParts::new(stamp, pod, meta, path);
    let mut out = Vec::new();
    write_log_record(&mut out, &parts, rec, redactor);
    out
}

/// Appends the JSON of the record for `rec` to `out`, with `parts`, what every record of its
/// file holds; see [`log_record`] and [`crate::jsonw`].
pub fn write_log_record(
    out: &mut Vec<u8>,
    parts: &FileParts,
    rec: &Assembled,
    redactor: Option<&Redactor>,
) {
    let message = match redactor {
        Some(r) => r.redact(&rec.message),
        None => std::borrow::Cow::Borrowed(rec.message.as_str()),
    };
    let line = Line {
        timestamp: rec.timestamp,
        stream: rec.stream.as_str(),
        message: &message,
        split: rec.split,
        malformed: rec.malformed,
        offset: rec.start,
    };
    write_record(out, parts, &line);
}

/// The record as it was built before [`crate::jsonw`]: a [`LogRecord`] with its maps,
/// serialised by serde. The simple path the direct writer is checked against.
#[cfg(test)]
pub(crate) fn log_record_serde(
    stamp: &Stamp,
    pod: &PodFile,
    meta: Option<&Enrichment>,
    path: &str,
    rec: &Assembled,
    redactor: Option<&Redactor>,
) -> Vec<u8> {
    use serde_json::Value;
    use trawl_model::LogRecord;
    let message = match redactor {
        Some(r) => r.redact(&rec.message).into_owned(),
        None => rec.message.clone(),
    };
    let enrichment = crate::parse::enrich(&message);
    let mut attributes = enrichment.attributes;
    if rec.split {
        attributes.insert(SPLIT_ATTRIBUTE.to_string(), Value::Bool(true));
    }
    if rec.malformed {
        attributes.insert(MALFORMED_ATTRIBUTE.to_string(), Value::Bool(true));
    }
    let (container_id, image, labels) = match meta {
        Some(m) => {
            for (k, v) in &m.attributes {
                attributes.insert(k.clone(), v.clone());
            }
            (m.container_id.clone(), m.image.clone(), m.labels.clone())
        }
        None => Default::default(),
    };
    let record = LogRecord {
        timestamp: Some(rec.timestamp),
        cluster: stamp.cluster.clone(),
        node: stamp.node.clone(),
        namespace: pod.namespace.clone(),
        pod: pod.pod.clone(),
        pod_uid: pod.pod_uid.clone(),
        container: pod.container.clone(),
        container_id,
        image,
        labels,
        stream: rec.stream.as_str().to_string(),
        level: enrichment.level,
        message,
        attributes,
        file: path.to_string(),
        offset: Some(rec.start),
    };
    serde_json::to_vec(&record).unwrap_or_default()
}

/// The JSON of the audit event on one line of an audit log or of the webhook spool, with
/// `cluster` stamped when the event has none. Errors say why the line is not an event.
pub fn audit_record(stamp: &Stamp, line: &[u8]) -> Result<Vec<u8>, trawl_model::Error> {
    let mut event = trawl_model::audit::parse_audit_line(line)?;
    if event.cluster.is_empty() {
        event.cluster = stamp.cluster.clone();
    }
    Ok(serde_json::to_vec(&event).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::StdStream;
    use trawl_model::LogRecord;
    use trawl_model::Timestamp;

    fn pod() -> PodFile {
        PodFile {
            namespace: "shop".into(),
            pod: "web-1".into(),
            pod_uid: "u1".into(),
            container: "app".into(),
            restart: 0,
            rotated: false,
        }
    }

    fn assembled(message: &str) -> Assembled {
        Assembled {
            timestamp: Timestamp(1_000_000_000),
            stream: StdStream::Stderr,
            message: message.to_string(),
            start: 42,
            end: 100,
            split: false,
            malformed: false,
        }
    }

    #[test]
    fn log_record_fields() {
        let stamp = Stamp {
            cluster: "prod".into(),
            node: "n1".into(),
        };
        let json = log_record(
            &stamp,
            &pod(),
            None,
            "/p/0.log",
            &assembled("  ERROR x  "),
            None,
        );
        let rec: LogRecord = serde_json::from_slice(&json).unwrap();
        assert_eq!(rec.message, "  ERROR x  ");
        assert_eq!(rec.namespace, "shop");
        assert_eq!(rec.stream, "stderr");
        assert_eq!(rec.offset, Some(42));
        assert_eq!(rec.node, "n1");
        assert_eq!(rec.cluster, "prod");
        assert_eq!(rec.file, "/p/0.log");
        assert_eq!(rec.timestamp, Some(Timestamp(1_000_000_000)));
    }

    /// The model's table of level cases, as tailed lines: the collector detects what the
    /// compat path detects.
    #[test]
    fn levels_of_lines_follow_the_models_table() {
        for (message, want) in trawl_model::level::cases::CASES {
            let json = log_record(
                &Stamp::default(),
                &pod(),
                None,
                "f",
                &assembled(message),
                None,
            );
            let rec: LogRecord = serde_json::from_slice(&json).unwrap();
            assert_eq!(rec.level, *want, "{message:?}");
        }
    }

    #[test]
    fn redaction_happens_before_enrichment() {
        let r = Redactor::new(&[("pw", r#"hunter2"#, "[REDACTED]")]).unwrap();
        let mut a = assembled(r#"{"level":"warn","pw":"hunter2"}"#);
        a.split = true;
        let json = log_record(&Stamp::default(), &pod(), None, "f", &a, Some(&r));
        let text = String::from_utf8(json).unwrap();
        assert!(!text.contains("hunter2"), "{text}");
        let rec: LogRecord = serde_json::from_str(&text).unwrap();
        assert_eq!(rec.level, Some(trawl_model::Level::Warn));
        assert_eq!(rec.attributes["pw"], "[REDACTED]");
        assert_eq!(rec.attributes[SPLIT_ATTRIBUTE], true);
    }

    #[test]
    fn audit_lines() {
        let stamp = Stamp {
            cluster: "prod".into(),
            node: "n1".into(),
        };
        let line = br#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"a1","stage":"ResponseComplete","requestURI":"/api/v1/pods","verb":"list","user":{"username":"alice"},"requestReceivedTimestamp":"2026-11-25T10:15:00.000000Z","stageTimestamp":"2026-11-25T10:15:00.010000Z"}"#;
        let json = audit_record(&stamp, line).unwrap();
        let ev: trawl_model::AuditEvent = serde_json::from_slice(&json).unwrap();
        assert_eq!(ev.audit_id, "a1");
        assert_eq!(ev.cluster, "prod");
        assert!(audit_record(&stamp, b"not json").is_err());
    }
}
