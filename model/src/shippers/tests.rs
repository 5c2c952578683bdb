//! The table of the shippers' document shapes and what each becomes.

use serde_json::{json, Value};

use super::*;
use crate::Level;

fn map(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => unreachable!(),
    }
}

fn record(doc: Value) -> LogRecord {
    log_record(map(doc), MapOptions::default()).unwrap()
}

/// The record as JSON, for whole-record comparisons.
fn as_json(rec: &LogRecord) -> Value {
    serde_json::to_value(rec).unwrap()
}

/// One case per shape: a document and the record it becomes, in full.
#[test]
fn every_shape_lands_on_the_record_fields() {
    let cases: Vec<(&str, Value, Value)> = vec![
        (
            "Fluent Bit es/http (kubernetes filter, CRI parser)",
            json!({
                "@timestamp": "2026-11-25T10:15:00.123Z",
                "date": 1_795_601_700.123,
                "time": "2026-11-25T10:15:00.123456789Z",
                "log": "2026-11-25 10:15:00 ERROR db down\n",
                "stream": "stderr",
                "_p": "F",
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
            }),
            json!({
                "timestamp": "2026-11-25T10:15:00.123456789Z",
                "node": "node-a", "namespace": "shop", "pod": "web-1", "pod_uid": "uid-1",
                "container": "app", "container_id": "abc", "image": "shop/web:1.2",
                "labels": {"app": "web", "app.kubernetes.io/name": "web"},
                "stream": "stderr", "level": "error",
                "message": "2026-11-25 10:15:00 ERROR db down",
                "attributes": {"kubernetes": {
                    "annotations": {"prometheus.io/scrape": "true"},
                    "container_hash": "sha256:1"
                }}
            }),
        ),
        (
            "Vector kubernetes_logs",
            json!({
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
            }),
            json!({
                "timestamp": "2026-11-25T10:15:00.000000001Z",
                "node": "node-a", "namespace": "shop", "pod": "web-1", "pod_uid": "uid-1",
                "container": "app", "container_id": "containerd://abc", "image": "shop/web:1.2",
                "labels": {"app": "web"}, "stream": "stdout",
                "message": "GET /healthz 200",
                "attributes": {"source_type": "kubernetes_logs", "kubernetes": {"pod_ip": "10.0.0.7"}},
                "file": "/var/log/pods/shop_web-1_uid-1/app/0.log"
            }),
        ),
        (
            "Filebeat (ECS, add_kubernetes_metadata)",
            json!({
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
                    "labels": {"app": "web"}
                },
                "host": {"name": "node-a"},
                "agent": {"type": "filebeat", "version": "8.15.0"},
                "ecs": {"version": "8.0.0"}
            }),
            json!({
                "timestamp": "2026-11-25T10:15:00.250000000Z",
                "node": "node-a", "namespace": "shop", "pod": "web-1", "pod_uid": "uid-1",
                "container": "app", "container_id": "abc", "image": "shop/web:1.2",
                "labels": {"app": "web"}, "stream": "stdout",
                // The agent's own field wins over the text of the message.
                "level": "debug",
                "message": "level=info msg=started",
                "attributes": {
                    "input": {"type": "container"},
                    "container": {"runtime": "containerd"},
                    "kubernetes": {"pod": {"ip": "10.0.0.7"}, "node": {"hostname": "node-a"}},
                    "host": {"name": "node-a"},
                    "agent": {"type": "filebeat", "version": "8.15.0"},
                    "ecs": {"version": "8.0.0"}
                },
                "file": "/var/log/containers/web.log",
                "offset": 4096
            }),
        ),
        (
            "Trawl's own field names (regression: they landed under attributes.*)",
            json!({
                "timestamp": "2026-11-25T10:15:00.5Z",
                "namespace": "hdfs", "pod": "datanode-0", "container": "dn",
                "level": "WARNING", "message": "slow block report",
                "labels": {"app": "hdfs"}, "attributes": {"seq": 7},
                "file": "/var/log/pods/x/dn/0.log", "offset": 100
            }),
            json!({
                "timestamp": "2026-11-25T10:15:00.500000000Z",
                "namespace": "hdfs", "pod": "datanode-0", "container": "dn",
                "labels": {"app": "hdfs"}, "level": "warn", "message": "slow block report",
                "attributes": {"seq": 7}, "file": "/var/log/pods/x/dn/0.log", "offset": 100
            }),
        ),
        (
            "Fluent Bit http json_lines: epoch seconds in `date`, CRI fields, unknown keys",
            json!({
                "date": 1_795_601_700.5,
                "log": "{\"level\":\"warn\",\"msg\":\"slow\",\"ms\":900}\r\n",
                "colour": "red"
            }),
            json!({
                "timestamp": "2026-11-25T10:15:00.500000000Z",
                "level": "warn",
                "message": "{\"level\":\"warn\",\"msg\":\"slow\",\"ms\":900}",
                "attributes": {"colour": "red", "level": "warn", "msg": "slow", "ms": 900}
            }),
        ),
        (
            "wrong types stay in the attributes instead of refusing the line",
            json!({
                "message": "x",
                "@timestamp": "yesterday",
                "level": "loud",
                "offset": "7",
                "kubernetes": {"pod_name": ["a"], "labels": "x"},
                "labels": "not an object"
            }),
            json!({
                "message": "x",
                "attributes": {
                    "@timestamp": "yesterday", "level": "loud", "offset": "7",
                    "kubernetes": {"pod_name": ["a"], "labels": "x"}, "labels": "not an object"
                }
            }),
        ),
        (
            "dotted keys and epoch milliseconds",
            json!({"kubernetes.pod.name": "web-1", "message": "x", "@timestamp": 1_795_601_700_123i64}),
            json!({"timestamp": "2026-11-25T10:15:00.123000000Z", "pod": "web-1", "message": "x"}),
        ),
    ];
    for (name, doc, want) in cases {
        let rec = record(doc);
        let mut got = as_json(&rec);
        if got["timestamp"].is_null() {
            got.as_object_mut().unwrap().remove("timestamp");
        }
        assert_eq!(got, want, "{name}");
    }
}

#[test]
fn agent_json_in_a_message_is_unwrapped_unless_turned_off() {
    // Fluent Bit's loki output with `Line_Format json`, after the Loki labels were mapped.
    let line = r#"{"time":"2026-11-25T10:15:00.123456789Z","stream":"stderr","_p":"F","log":"E1125 10:15:00.123456 1 main.go:1] boom\n"}"#;
    let doc = json!({"timestamp": "2026-11-25T10:15:00.123456789Z", "namespace": "shop", "message": line});
    let rec = record(doc.clone());
    assert_eq!(rec.message, "E1125 10:15:00.123456 1 main.go:1] boom");
    assert_eq!(rec.level, Some(Level::Error));
    assert_eq!(rec.stream, "stderr");
    assert_eq!(rec.namespace, "shop");
    assert_eq!(rec.timestamp, Some(Timestamp(1_795_601_700_123_456_789)));
    assert!(rec.attributes.is_empty(), "{:?}", rec.attributes);

    // An application's JSON with a `message`: its message and fields.
    let rec = record(json!({"message": r#"{"message":"started","level":"info","port":80}"#}));
    assert_eq!(rec.message, "started");
    assert_eq!(rec.level, Some(Level::Info));
    assert_eq!(Value::Object(rec.attributes), json!({"port": 80}));

    let off = MapOptions {
        unwrap_agent_json: false,
    };
    let rec = log_record(map(doc), off).unwrap();
    assert_eq!(rec.message, line);
    assert_eq!(rec.stream, "");
    assert_eq!(rec.level, None);
    assert_eq!(rec.attributes["_p"], json!("F"));
}

#[test]
fn only_a_line_without_message_is_refused() {
    for doc in [
        json!({}),
        json!({"namespace": "x"}),
        json!({"message": null}),
        json!({"log": {"level": "info"}}),
    ] {
        let err = log_record(map(doc.clone()), MapOptions::default()).unwrap_err();
        assert_eq!(
            err, "no message: a record needs a `message` (or an agent's string `log`)",
            "{doc}"
        );
    }
    assert_eq!(record(json!({"message": ""})).message, "");
    assert_eq!(record(json!({"message": {"a": 1}})).message, r#"{"a":1}"#);
}

#[test]
fn query_field_names_map_like_ingest() {
    let cases = [
        ("kubernetes.namespace_name", Some("namespace")),
        ("kubernetes.namespace", Some("namespace")),
        ("container.image.name", Some("image")),
        ("kubernetes.container_image", Some("image")),
        ("log", Some("message")),
        ("log.level", Some("level")),
        ("log.file.path", Some("file")),
        ("@timestamp", Some("timestamp")),
        ("namespace", Some("namespace")),
        ("kubernetes.labels.app", Some("labels.app")),
        (
            "kubernetes.pod_labels.app.kubernetes.io/name",
            Some("labels.app.kubernetes.io/name"),
        ),
        ("colour", None),
    ];
    for (key, want) in cases {
        assert_eq!(log_field(key).as_deref(), want, "{key}");
    }
    // Every key of the table maps onto its field: ingest and queries agree.
    for alias in LOG_ALIASES {
        for key in alias.keys {
            assert_eq!(log_field(key).as_deref(), Some(alias.field), "{key}");
        }
    }
}

/// kube-auditing's Go names become the audit.k8s.io/v1 event, and an `audit` record goes back
/// to kube-auditing's names (empty fields left out); a logs record to Fluent Bit's.
#[test]
fn kubesphere_shapes_round_trip() {
    let Value::Object(doc) = json!({
        "Workspace": "ws", "AuditID": "a1", "Stage": "ResponseComplete", "Verb": "get",
        "User": {"Username": "alice", "Groups": ["g"], "Extra": null},
        "ObjectRef": {"Namespace": "demo", "Resource": "pods", "Subresource": ""},
        "ResponseStatus": {"metadata": {}, "status": "Failure", "code": 404},
        "RequestReceivedTimestamp": "2026-01-14T23:00:30.000000Z"
    }) else {
        unreachable!()
    };
    assert!(is_kube_auditing(&doc));
    assert_eq!(
        Value::Object(kube_auditing_to_k8s(&doc)),
        json!({"auditID": "a1", "stage": "ResponseComplete", "verb": "get",
            "user": {"username": "alice", "groups": ["g"]},
            "objectRef": {"namespace": "demo", "resource": "pods", "subresource": ""},
            "responseStatus": {"code": 404},
            "requestReceivedTimestamp": "2026-01-14T23:00:30.000000Z"})
    );
    assert_eq!(audit_field("User.Username"), Some("user"));
    assert_eq!(audit_field("ResponseStatus.code"), Some("status_code"));
    assert_eq!(audit_field("Workspace"), None);
    let Value::Object(record) = json!({"audit_id": "a1", "user": "alice", "user_groups": ["g"],
        "namespace": "demo", "subresource": "", "status_code": 404, "annotations": {}})
    else {
        unreachable!()
    };
    assert_eq!(
        Value::Object(kubesphere_source("audit", &record)),
        json!({"AuditID": "a1", "User": {"Username": "alice", "Groups": ["g"]},
            "ObjectRef": {"Namespace": "demo"}, "ResponseStatus": {"code": 404}})
    );
    let Value::Object(record) = json!({"message": "hi", "timestamp": "t", "pod": "p",
        "namespace": "n", "level": "info"})
    else {
        unreachable!()
    };
    assert_eq!(
        Value::Object(kubesphere_source("logs", &record)),
        json!({"log": "hi", "time": "t", "kubernetes": {"pod_name": "p", "namespace_name": "n"}})
    );
}

#[test]
fn loki_labels_and_otlp_resource_attributes_name_record_fields() {
    for (label, field) in [
        ("namespace", Some("namespace")),
        ("k8s_namespace_name", Some("namespace")),
        ("kubernetes_pod_name", Some("pod")),
        ("pod_name", Some("pod")),
        ("k8s_pod_uid", Some("pod_uid")),
        ("container_name", Some("container")),
        ("node_name", Some("node")),
        ("k8s_cluster_name", Some("cluster")),
        ("container_image", Some("image")),
        ("filename", Some("file")),
        ("stream", Some("stream")),
        ("level", None),
        ("app", None),
    ] {
        assert_eq!(loki_label_field(label), field, "Loki label {label}");
    }
    for (attribute, field) in [
        ("k8s.namespace.name", Some("namespace")),
        ("k8s.pod.uid", Some("pod_uid")),
        ("container.id", Some("container_id")),
        ("container.image.name", Some("image")),
        (OTLP_IMAGE_TAG, None),
        ("service.name", None),
    ] {
        assert_eq!(
            otlp_resource_field(attribute),
            field,
            "resource attribute {attribute}"
        );
    }
    // Every field either table names is one the record can be filled through.
    let mut rec = LogRecord::default();
    for field in LOKI_LABEL_ALIASES
        .iter()
        .map(|alias| alias.field)
        .chain(OTLP_RESOURCE_FIELDS.iter().map(|(_, field)| *field))
    {
        let slot = rec.text_field_mut(field);
        assert!(slot.is_some(), "{field} is not a text field of the record");
    }
}

/// An `events` record given back in the core v1 shape (what ks-apiserver's events client
/// decodes) reads as the same event again, and every name of either version finds its field.
#[test]
fn events_records_go_back_to_core_v1_events_and_names_find_their_fields() {
    let raw = json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": "web-1.17a", "namespace": "shop", "uid": "e-1", "resourceVersion": "9"},
        "involvedObject": {"kind": "Pod", "namespace": "shop", "name": "web-1", "uid": "p-1",
                           "fieldPath": "spec.containers{app}"},
        "reason": "Unhealthy", "message": "Liveness probe failed: HTTP probe failed with statuscode: 500",
        "source": {"component": "kubelet", "host": "node-1"},
        "firstTimestamp": "2026-11-25T10:00:00Z", "lastTimestamp": "2026-11-25T10:01:00Z",
        "count": 4, "type": "Warning"
    });
    let event = crate::events::parse_event_line(raw.to_string().as_bytes()).unwrap();
    let flat = map(serde_json::to_value(&event).unwrap());
    let core = kubesphere_source(crate::EVENTS_STREAM, &flat);
    assert_eq!(core["involvedObject"]["name"], "web-1");
    assert_eq!(core["involvedObject"]["fieldPath"], "spec.containers{app}");
    assert_eq!(core["metadata"]["namespace"], "shop");
    assert_eq!(
        core["source"],
        json!({"component": "kubelet", "host": "node-1"})
    );
    assert_eq!(core["reportingComponent"], "kubelet");
    assert_eq!(core["lastTimestamp"], "2026-11-25T10:01:00.000000000Z");
    assert_eq!(core["count"], 4);
    let again =
        crate::events::parse_event_line(Value::Object(core).to_string().as_bytes()).unwrap();
    assert_eq!(again, event);

    for (name, field) in [
        ("involvedObject.namespace", "namespace"),
        ("regarding.namespace", "namespace"),
        ("metadata.namespace", "namespace"),
        ("involvedObject.uid", "uid"),
        ("lastTimestamp", "timestamp"),
        ("note", "message"),
        ("message", "message"),
        ("reportingComponent", "reporting_controller"),
        ("source.component", "reporting_controller"),
        ("series.count", "count"),
    ] {
        assert_eq!(event_field(name), Some(field), "{name}");
    }
    assert_eq!(event_field("involvedObject.apiVersion"), None);
}
