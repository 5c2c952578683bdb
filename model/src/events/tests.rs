//! The mapping of Event objects of both API versions, watch events and flat documents.

use serde_json::json;

use super::*;

fn ts(text: &str) -> Timestamp {
    Timestamp::parse_rfc3339(text).unwrap()
}

fn parse(value: serde_json::Value) -> Result<KubeEvent> {
    parse_event_line(value.to_string().as_bytes())
}

/// A core v1 Event as the kubelet writes it and `kubectl get events -o json` lists it.
fn core_backoff() -> serde_json::Value {
    json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "name": "web-7d4b9-x2x8q.17a3c0f2b1d4e5f6",
            "namespace": "shop",
            "uid": "0b6f3c9e-1d2a-4f5b-9c8d-7e6f5a4b3c2d",
            "resourceVersion": "918273",
            "creationTimestamp": "2026-11-25T10:00:00Z"
        },
        "involvedObject": {
            "kind": "Pod",
            "namespace": "shop",
            "name": "web-7d4b9-x2x8q",
            "uid": "5c1e2d3f-aaaa-bbbb-cccc-000000000001",
            "apiVersion": "v1",
            "resourceVersion": "918100",
            "fieldPath": "spec.containers{app}"
        },
        "reason": "BackOff",
        "message": "Back-off restarting failed container app in pod web-7d4b9-x2x8q_shop",
        "source": {"component": "kubelet", "host": "node-3"},
        "firstTimestamp": "2026-11-25T10:00:00Z",
        "lastTimestamp": "2026-11-25T10:04:30Z",
        "count": 5,
        "type": "Warning",
        "eventTime": null,
        "reportingComponent": "",
        "reportingInstance": ""
    })
}

/// An events.k8s.io/v1 Event of the scheduler, with a series.
fn v1_failed_scheduling() -> serde_json::Value {
    json!({
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": {
            "name": "batch-job-abcde.17a3c0f2b1d40000",
            "namespace": "jobs",
            "uid": "9e8d7c6b-0000-1111-2222-333344445555",
            "resourceVersion": "42"
        },
        "eventTime": "2026-11-25T09:00:00.123456Z",
        "series": {"count": 3, "lastObservedTime": "2026-11-25T09:10:00.654321Z"},
        "reportingController": "default-scheduler",
        "reportingInstance": "default-scheduler-control-plane-1",
        "action": "Scheduling",
        "reason": "FailedScheduling",
        "regarding": {"kind": "Pod", "namespace": "jobs", "name": "batch-job-abcde", "uid": "u-1"},
        "related": {"kind": "Node", "name": "node-2"},
        "note": "0/12 nodes are available: 12 Insufficient memory.",
        "type": "Warning",
        "deprecatedSource": {},
        "deprecatedFirstTimestamp": null,
        "deprecatedLastTimestamp": null,
        "deprecatedCount": 0
    })
}

#[test]
fn a_core_v1_event_maps_onto_the_stream_fields() {
    let event = parse(core_backoff()).unwrap();
    assert_eq!(
        event,
        KubeEvent {
            timestamp: Some(ts("2026-11-25T10:04:30Z")),
            first_seen: Some(ts("2026-11-25T10:00:00Z")),
            cluster: String::new(),
            event_type: "Warning".into(),
            reason: "BackOff".into(),
            message: "Back-off restarting failed container app in pod web-7d4b9-x2x8q_shop".into(),
            namespace: "shop".into(),
            kind: "Pod".into(),
            name: "web-7d4b9-x2x8q".into(),
            uid: "5c1e2d3f-aaaa-bbbb-cccc-000000000001".into(),
            field_path: "spec.containers{app}".into(),
            related_kind: String::new(),
            related_name: String::new(),
            reporting_controller: "kubelet".into(),
            reporting_instance: String::new(),
            action: String::new(),
            node: "node-3".into(),
            count: Some(5),
            event_uid: "0b6f3c9e-1d2a-4f5b-9c8d-7e6f5a4b3c2d".into(),
            event_name: "web-7d4b9-x2x8q.17a3c0f2b1d4e5f6".into(),
            resource_version: "918273".into(),
        }
    );
    assert_eq!(
        event.dedup_key().unwrap(),
        "0b6f3c9e-1d2a-4f5b-9c8d-7e6f5a4b3c2d/918273"
    );
}

#[test]
fn an_events_k8s_io_v1_event_takes_its_series_and_note() {
    let event = parse(v1_failed_scheduling()).unwrap();
    assert_eq!(
        event.timestamp,
        Some(ts("2026-11-25T09:10:00.654321Z")),
        "the series' last observation is the latest time"
    );
    assert_eq!(event.first_seen, Some(ts("2026-11-25T09:00:00.123456Z")));
    assert_eq!(event.count, Some(3));
    assert_eq!(
        event.message,
        "0/12 nodes are available: 12 Insufficient memory."
    );
    assert_eq!(
        (
            event.kind.as_str(),
            event.namespace.as_str(),
            event.name.as_str()
        ),
        ("Pod", "jobs", "batch-job-abcde")
    );
    assert_eq!(
        (event.related_kind.as_str(), event.related_name.as_str()),
        ("Node", "node-2")
    );
    assert_eq!(event.reporting_controller, "default-scheduler");
    assert_eq!(
        event.reporting_instance,
        "default-scheduler-control-plane-1"
    );
    assert_eq!(event.action, "Scheduling");
    assert_eq!(event.node, "", "an empty deprecatedSource names no node");
}

#[test]
fn without_a_series_or_count_an_event_happened_once_at_its_event_time() {
    let mut raw = v1_failed_scheduling();
    raw.as_object_mut().unwrap().remove("series");
    let event = parse(raw).unwrap();
    assert_eq!(event.count, Some(1), "deprecatedCount 0 means unset");
    assert_eq!(event.timestamp, Some(ts("2026-11-25T09:00:00.123456Z")));
    assert_eq!(event.first_seen, event.timestamp);
}

#[test]
fn watch_events_carry_their_object_and_deletions_are_refused() {
    let added = json!({"type": "ADDED", "object": core_backoff()});
    assert_eq!(parse(added).unwrap(), parse(core_backoff()).unwrap());
    let modified = json!({"type": "MODIFIED", "object": v1_failed_scheduling()});
    assert_eq!(parse(modified).unwrap().count, Some(3));
    let deleted = json!({"type": "DELETED", "object": core_backoff()});
    let err = parse(deleted).unwrap_err().to_string();
    assert!(err.contains("\"DELETED\""), "{err}");
}

#[test]
fn flat_documents_round_trip_and_misspelt_fields_are_named() {
    let event = parse(core_backoff()).unwrap();
    let flat = serde_json::to_value(&event).unwrap();
    assert_eq!(flat["type"], "Warning");
    assert!(
        flat.get("related_kind").is_none(),
        "empty fields are left out"
    );
    assert_eq!(parse(flat).unwrap(), event);

    let bare = parse(json!({"reason": "Started", "message": "Started container app"})).unwrap();
    assert_eq!(bare.timestamp, None, "the receive time stands in");
    assert_eq!(bare.dedup_key(), None);

    let err = parse(json!({"reason": "Started", "mesage": "x"}))
        .unwrap_err()
        .to_string();
    assert!(err.contains("mesage"), "{err}");
}

#[test]
fn bad_events_say_what_is_wrong() {
    let mut no_time = core_backoff();
    for key in ["firstTimestamp", "lastTimestamp"] {
        no_time.as_object_mut().unwrap().remove(key);
    }
    no_time["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("creationTimestamp");
    let err = parse(no_time).unwrap_err().to_string();
    assert!(err.contains("has no time"), "{err}");

    let mut bad_time = core_backoff();
    bad_time["lastTimestamp"] = json!("yesterday");
    let err = parse(bad_time).unwrap_err().to_string();
    assert!(
        err.contains("`lastTimestamp`") && err.contains("yesterday"),
        "{err}"
    );

    let mut bad_count = core_backoff();
    bad_count["count"] = json!("five");
    let err = parse(bad_count).unwrap_err().to_string();
    assert!(err.contains("`count` must be an integer"), "{err}");

    for line in [&b"[]"[..], b"{oops", b"42"] {
        assert!(parse_event_line(line).is_err());
    }
}

#[test]
fn identities_tell_updates_apart_and_fall_back_without_a_resource_version() {
    let first = parse(core_backoff()).unwrap();
    let mut raw = core_backoff();
    raw["metadata"]["resourceVersion"] = json!("918300");
    raw["count"] = json!(6);
    let update = parse(raw).unwrap();
    assert_ne!(first.dedup_key(), update.dedup_key());

    let flat = KubeEvent {
        event_uid: "e".into(),
        count: Some(2),
        timestamp: Some(Timestamp(7)),
        ..KubeEvent::default()
    };
    assert_eq!(flat.dedup_key().unwrap(), "e/2/7");
}

#[test]
fn the_event_of_a_cluster_scoped_object_has_no_namespace() {
    let raw = json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": "node-1.17a", "namespace": "default", "uid": "n-1", "resourceVersion": "5"},
        "involvedObject": {"kind": "Node", "name": "node-1", "uid": "node-1"},
        "reason": "NodeNotReady", "message": "Node node-1 status is now: NodeNotReady",
        "source": {"component": "node-controller"},
        "firstTimestamp": "2026-11-25T10:00:00Z", "lastTimestamp": "2026-11-25T10:00:00Z",
        "count": 1, "type": "Normal"
    });
    let event = parse(raw).unwrap();
    assert_eq!(event.namespace, "");
    assert_eq!(event.kind, "Node");
    assert_eq!(event.reporting_controller, "node-controller");
}
