//! Tests of the audit model against fixtures in `model/tests/fixtures/audit/`, written after
//! events of real API servers (v1, v1beta1, webhook `EventList` bodies).

use serde_json::{json, Value};

use super::*;

macro_rules! fixture {
    ($name:literal) => {
        include_str!(concat!("../../tests/fixtures/audit/", $name))
    };
}

/// Parses every line of a fixture, which must all be valid.
fn parse_all(text: &str) -> Vec<AuditEvent> {
    text.lines()
        .map(|line| parse_audit_line(line.as_bytes()).unwrap())
        .collect()
}

fn parse_one(text: &str) -> AuditEvent {
    let mut events = parse_all(text);
    assert_eq!(events.len(), 1);
    events.remove(0)
}

fn ts(text: &str) -> Timestamp {
    Timestamp::parse_rfc3339(text).unwrap()
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// The fixture's first line as a JSON value, to be altered by a test.
fn fixture_value(text: &str) -> Value {
    serde_json::from_str(text.lines().next().unwrap()).unwrap()
}

fn audit_field_error(err: Error) -> (String, String) {
    match err {
        Error::InvalidAuditEvent { field, problem } => (field, problem),
        other => panic!("expected InvalidAuditEvent, got {other:?}"),
    }
}

#[test]
fn resource_request_maps_every_field() {
    let ev = parse_one(fixture!("pod_create_privileged.json"));
    assert_eq!(ev.timestamp, ts("2026-11-25T10:15:00.123456Z"));
    assert_eq!(ev.stage_timestamp, Some(ts("2026-11-25T10:15:00.135999Z")));
    assert_eq!(ev.latency_ms, Some(12));
    assert_eq!(ev.audit_id, "6d3c7a1e-2b7f-4c39-9f1e-0a8f5d2c1b01");
    assert_eq!(ev.stage, "ResponseComplete");
    assert_eq!(ev.level, "RequestResponse");
    assert_eq!(ev.verb, "create");
    assert_eq!(
        ev.request_uri,
        "/api/v1/namespaces/shop/pods?fieldManager=kubectl-client-side-apply&fieldValidation=Strict"
    );
    assert_eq!(ev.request_path, "/api/v1/namespaces/shop/pods");
    assert_eq!(ev.user, "dev@example.com");
    assert_eq!(ev.user_groups, strings(&["devs", "system:authenticated"]));
    assert_eq!(ev.user_uid, "u-1234");
    assert_eq!(ev.impersonated_user, "");
    assert_eq!(ev.effective_user, "dev@example.com");
    assert_eq!(ev.source_ips, strings(&["192.168.49.1"]));
    assert_eq!(ev.source_ip, "192.168.49.1");
    assert_eq!(
        ev.user_agent,
        "kubectl/v1.31.2 (linux/amd64) kubernetes/5864a46"
    );
    assert_eq!((ev.api_group.as_str(), ev.api_version.as_str()), ("", "v1"));
    assert_eq!(
        (ev.resource.as_str(), ev.subresource.as_str()),
        ("pods", "")
    );
    assert_eq!(
        (ev.namespace.as_str(), ev.name.as_str()),
        ("shop", "debug-tools")
    );
    assert_eq!(ev.status_code, Some(201));
    assert_eq!(ev.status_class, "2xx");
    assert_eq!(ev.status_message, "");
    assert_eq!(ev.decision, "allow");
    assert_eq!(
        ev.reason,
        "RBAC: allowed by RoleBinding \"devs/shop\" of ClusterRole \"edit\" to Group \"devs\""
    );
    assert_eq!(ev.annotations.len(), 3);
    assert_eq!(
        ev.annotations["pod-security.kubernetes.io/enforce-policy"],
        "privileged:latest"
    );
    assert_eq!(
        ev.request_object
            .as_ref()
            .unwrap()
            .pointer("/spec/containers/1/securityContext/privileged"),
        Some(&json!(true))
    );
    assert_eq!(
        ev.response_object
            .as_ref()
            .unwrap()
            .pointer("/status/phase"),
        Some(&json!("Pending"))
    );
    assert_eq!(ev.cluster, "");
    // The privileged container is the second one.
    assert!(ev.privileged);
    assert!(!ev.host_pid && !ev.host_network && !ev.host_ipc && !ev.host_path);
    assert_eq!(ev.exec_command, "");
    assert_eq!(ev.role_ref, "");
    assert_eq!(
        ev.dedup_key(),
        "6d3c7a1e-2b7f-4c39-9f1e-0a8f5d2c1b01/ResponseComplete"
    );
}

#[test]
fn non_resource_request_keeps_the_http_verb() {
    let ev = parse_one(fixture!("nonresource_healthz.json"));
    let reason =
        "RBAC: allowed by ClusterRoleBinding \"system:public-info-viewer\" of ClusterRole \
                  \"system:public-info-viewer\" to Group \"system:unauthenticated\"";
    let expected = AuditEvent {
        timestamp: ts("2026-11-25T10:18:00Z"),
        stage_timestamp: Some(ts("2026-11-25T10:18:00.0009Z")),
        latency_ms: Some(0),
        audit_id: "3b9e0f12-7c6d-4a5b-8e9f-0a1b2c3d4e04".into(),
        stage: "ResponseComplete".into(),
        level: "Metadata".into(),
        verb: "get".into(),
        request_uri: "/healthz?verbose".into(),
        user: "system:anonymous".into(),
        user_groups: strings(&["system:unauthenticated"]),
        source_ips: strings(&["10.244.0.1"]),
        user_agent: "kube-probe/1.31".into(),
        status_code: Some(200),
        decision: "allow".into(),
        reason: reason.into(),
        annotations: json!({
            "authorization.k8s.io/decision": "allow",
            "authorization.k8s.io/reason": reason,
        })
        .as_object()
        .unwrap()
        .clone(),
        request_path: "/healthz".into(),
        effective_user: "system:anonymous".into(),
        source_ip: "10.244.0.1".into(),
        status_class: "2xx".into(),
        ..AuditEvent::default()
    };
    assert_eq!(ev, expected);
}

#[test]
fn json_form_leaves_out_empty_fields() {
    let ev = parse_one(fixture!("nonresource_healthz.json"));
    let text = serde_json::to_string(&ev).unwrap();
    let expected = concat!(
        r#"{"timestamp":"2026-11-25T10:18:00.000000000Z","#,
        r#""stage_timestamp":"2026-11-25T10:18:00.000900000Z","latency_ms":0,"#,
        r#""audit_id":"3b9e0f12-7c6d-4a5b-8e9f-0a1b2c3d4e04","stage":"ResponseComplete","#,
        r#""level":"Metadata","verb":"get","request_uri":"/healthz?verbose","#,
        r#""user":"system:anonymous","user_groups":["system:unauthenticated"],"#,
        r#""source_ips":["10.244.0.1"],"user_agent":"kube-probe/1.31","status_code":200,"#,
        r#""decision":"allow","reason":"RBAC: allowed by ClusterRoleBinding \"system:public-info-viewer\" of ClusterRole \"system:public-info-viewer\" to Group \"system:unauthenticated\"","#,
        r#""annotations":{"authorization.k8s.io/decision":"allow","authorization.k8s.io/reason":"RBAC: allowed by ClusterRoleBinding \"system:public-info-viewer\" of ClusterRole \"system:public-info-viewer\" to Group \"system:unauthenticated\""},"#,
        r#""request_path":"/healthz","effective_user":"system:anonymous","#,
        r#""source_ip":"10.244.0.1","status_class":"2xx"}"#
    );
    assert_eq!(text, expected);
}

#[test]
fn flat_json_round_trip_of_every_fixture() {
    for text in [
        fixture!("pod_create_privileged.json"),
        fixture!("pod_create_hostpath.json"),
        fixture!("daemonset_hostnetwork.json"),
        fixture!("impersonation.json"),
        fixture!("exec.json"),
        fixture!("clusterrolebinding_cluster_admin.json"),
        fixture!("request_stages.json"),
        fixture!("v1beta1_legacy_timestamp.json"),
        fixture!("panic.json"),
    ] {
        for ev in parse_all(text) {
            let flat = serde_json::to_vec(&ev).unwrap();
            assert_eq!(parse_audit_line(&flat).unwrap(), ev, "{}", ev.audit_id);
        }
    }
}

#[test]
fn from_k8s_event_agrees_with_parse_audit_line() {
    let text = fixture!("impersonation.json");
    let value = fixture_value(text);
    assert_eq!(AuditEvent::from_k8s_event(&value).unwrap(), parse_one(text));
}

#[test]
fn impersonation_sets_effective_user() {
    let ev = parse_one(fixture!("impersonation.json"));
    assert_eq!(ev.user, "alice");
    assert_eq!(ev.user_uid, "alice-uid");
    assert_eq!(
        ev.impersonated_user,
        "system:serviceaccount:kube-system:default"
    );
    assert_eq!(
        ev.impersonated_groups,
        strings(&[
            "system:serviceaccounts",
            "system:serviceaccounts:kube-system"
        ])
    );
    assert_eq!(
        ev.effective_user,
        "system:serviceaccount:kube-system:default"
    );
    // The last address is the peer's; the first came from X-Forwarded-For.
    assert_eq!(ev.source_ips, strings(&["203.0.113.7", "10.0.0.5"]));
    assert_eq!(ev.source_ip, "10.0.0.5");
    assert_eq!(ev.name, "");
    assert_eq!(ev.request_path, "/api/v1/namespaces/kube-system/secrets");
    assert_eq!(ev.latency_ms, Some(20));
}

#[test]
fn forbidden_request_has_decision_and_reason() {
    let ev = parse_one(fixture!("forbidden.json"));
    assert_eq!(ev.status_code, Some(403));
    assert_eq!(ev.status_class, "4xx");
    assert_eq!(
        ev.status_message,
        "secrets \"bootstrap-token-abcdef\" is forbidden: User \"system:serviceaccount:shop:web\" \
         cannot get resource \"secrets\" in API group \"\" in the namespace \"kube-system\""
    );
    assert_eq!(ev.decision, "forbid");
    assert_eq!(ev.reason, "no RBAC policy matched");
    assert_eq!(ev.name, "bootstrap-token-abcdef");
}

#[test]
fn panic_stage() {
    let ev = parse_one(fixture!("panic.json"));
    assert_eq!(ev.stage, "Panic");
    assert_eq!(ev.status_code, Some(500));
    assert_eq!(ev.status_class, "5xx");
    assert_eq!(
        ev.status_message,
        "APIServer panic'd: runtime error: invalid memory address or nil pointer dereference"
    );
    assert_eq!(ev.api_group, "example.com");
    assert_eq!(ev.latency_ms, Some(250));
    assert_eq!(ev.dedup_key(), "e5f6a7b8-c9d0-4e1f-a2b3-c4d5e6f7a807/Panic");
}

#[test]
fn stages_of_one_request_have_distinct_dedup_keys() {
    let events = parse_all(fixture!("request_stages.json"));
    assert_eq!(events.len(), 2);
    let (received, complete) = (&events[0], &events[1]);
    assert_eq!(received.audit_id, complete.audit_id);
    assert_eq!(
        received.dedup_key(),
        "f0e1d2c3-b4a5-4968-8776-655443322108/RequestReceived"
    );
    assert_eq!(
        complete.dedup_key(),
        "f0e1d2c3-b4a5-4968-8776-655443322108/ResponseComplete"
    );
    assert_eq!(received.status_code, None);
    assert_eq!(received.status_class, "");
    assert_eq!(received.decision, "");
    assert_eq!(received.latency_ms, Some(0));
    assert_eq!(complete.status_code, Some(200));
    assert_eq!(complete.latency_ms, Some(7));
    assert_eq!(complete.decision, "allow");
}

#[test]
fn exec_command_and_container_from_the_uri() {
    let events = parse_all(fixture!("exec.json"));
    assert_eq!(events[0].exec_command, "ls -la");
    assert_eq!(events[0].exec_container, "app");
    assert_eq!(
        events[0].request_path,
        "/api/v1/namespaces/shop/pods/web-7c9d-abcde/exec"
    );
    assert_eq!(events[0].subresource, "exec");
    assert_eq!(events[0].status_class, "1xx");
    // %20 and + are spaces, %3E %2F %26 are `>` `/` `&`; the first container wins.
    assert_eq!(events[1].exec_command, "sh -c echo hi > /tmp/x && id");
    assert_eq!(events[1].exec_container, "app");
    assert!(!events[1].privileged);
}

#[test]
fn attach_has_a_container_but_no_command() {
    let mut value = fixture_value(fixture!("exec.json"));
    value["objectRef"]["subresource"] = json!("attach");
    value["requestURI"] =
        json!("/api/v1/namespaces/shop/pods/web-7c9d-abcde/attach?container=app&command=x");
    let ev = AuditEvent::from_k8s_event(&value).unwrap();
    assert_eq!(ev.exec_container, "app");
    assert_eq!(ev.exec_command, "");
}

#[test]
fn host_path_pod_created_with_generate_name() {
    let ev = parse_one(fixture!("pod_create_hostpath.json"));
    assert!(ev.host_path);
    assert!(!ev.privileged && !ev.host_network && !ev.host_pid && !ev.host_ipc);
    // objectRef has no name: the generated one comes from the response.
    assert_eq!(ev.name, "log-shipper-6f7d8-x2kqp");
    assert_eq!(ev.source_ip, "::1");
}

#[test]
fn host_network_daemonset_template() {
    let ev = parse_one(fixture!("daemonset_hostnetwork.json"));
    assert!(ev.host_network);
    assert!(ev.host_pid);
    assert!(!ev.privileged && !ev.host_path && !ev.host_ipc);
    assert_eq!(
        (ev.api_group.as_str(), ev.resource.as_str()),
        ("apps", "daemonsets")
    );
    assert_eq!(ev.response_object, None);
    let flat = serde_json::to_string(&ev).unwrap();
    assert!(
        flat.contains(r#""host_pid":true,"host_network":true,"#),
        "{flat}"
    );
    assert!(!flat.contains("privileged"), "{flat}");
}

#[test]
fn clusterrolebinding_to_cluster_admin() {
    let ev = parse_one(fixture!("clusterrolebinding_cluster_admin.json"));
    assert_eq!(ev.role_ref, "ClusterRole/cluster-admin");
    assert_eq!(ev.resource, "clusterrolebindings");
    assert_eq!(ev.name, "backdoor");
    assert_eq!(ev.namespace, "");
    assert_eq!(ev.source_ip, "198.51.100.23");

    // With only the response object (a delete's request object is DeleteOptions).
    let mut value = fixture_value(fixture!("clusterrolebinding_cluster_admin.json"));
    value["verb"] = json!("delete");
    value["requestObject"] = json!({"kind": "DeleteOptions", "apiVersion": "v1"});
    let ev = AuditEvent::from_k8s_event(&value).unwrap();
    assert_eq!(ev.role_ref, "ClusterRole/cluster-admin");
}

#[test]
fn v1beta1_legacy_timestamp() {
    let ev = parse_one(fixture!("v1beta1_legacy_timestamp.json"));
    assert_eq!(ev.timestamp, ts("2018-03-01T09:00:05Z"));
    assert_eq!(ev.stage_timestamp, None);
    assert_eq!(ev.latency_ms, None);
    assert_eq!(ev.name, "foo");
    assert_eq!(ev.status_class, "2xx");

    // When both are there, requestReceivedTimestamp (more precise) wins.
    let mut value = fixture_value(fixture!("v1beta1_legacy_timestamp.json"));
    value["requestReceivedTimestamp"] = json!("2018-03-01T09:00:05.250000Z");
    value["stageTimestamp"] = json!("2018-03-01T09:00:05.260000Z");
    let ev = AuditEvent::from_k8s_event(&value).unwrap();
    assert_eq!(ev.timestamp, ts("2018-03-01T09:00:05.25Z"));
    assert_eq!(ev.latency_ms, Some(10));
}

#[test]
fn malformed_json_is_an_error() {
    let err = parse_audit_line(fixture!("malformed.json").as_bytes()).unwrap_err();
    assert!(
        matches!(&err, Error::InvalidRecord(m) if m.starts_with("invalid JSON: ")),
        "{err:?}"
    );
    assert!(parse_audit_line(b"").is_err());
    let err = parse_audit_line(b"[1, 2]").unwrap_err();
    assert_eq!(err.to_string(), "an audit event must be a JSON object");
}

#[test]
fn missing_audit_id_is_named() {
    let err = parse_audit_line(fixture!("missing_audit_id.json").as_bytes()).unwrap_err();
    assert_eq!(err.to_string(), "invalid audit event: `auditID` is missing");
    assert_eq!(
        audit_field_error(err),
        ("auditID".to_string(), "is missing".to_string())
    );
}

#[test]
fn neither_kind_of_document_is_refused() {
    // The shape of a deliberately broken sample of the Falco test suite.
    let err = parse_audit_line(br#"{"kind": 0}"#).unwrap_err();
    assert_eq!(
        err.to_string(),
        "not an audit event: it has neither `auditID` (a Kubernetes audit Event) nor `audit_id` \
         (a flat audit document)"
    );
    // `kind: Event` alone makes it a Kubernetes event, which then lacks its auditID.
    let err = parse_audit_line(br#"{"kind": "Event"}"#).unwrap_err();
    assert_eq!(audit_field_error(err).0, "auditID");
}

#[test]
fn field_errors_name_the_field() {
    let base = fixture_value(fixture!("forbidden.json"));
    let cases: [(&str, Value, &str, &str); 9] = [
        (
            "/requestReceivedTimestamp",
            json!("yesterday"),
            "requestReceivedTimestamp",
            "is not an RFC 3339 time: \"yesterday\"",
        ),
        (
            "/stageTimestamp",
            json!("2026-13-01T00:00:00Z"),
            "stageTimestamp",
            "is not an RFC 3339 time: \"2026-13-01T00:00:00Z\"",
        ),
        (
            "/user/groups",
            json!("devs"),
            "user.groups",
            "must be a list of strings",
        ),
        (
            "/user/username",
            json!(7),
            "user.username",
            "must be a string",
        ),
        (
            "/responseStatus/code",
            json!("403"),
            "responseStatus.code",
            "must be an integer",
        ),
        (
            "/objectRef",
            json!("secrets"),
            "objectRef",
            "must be an object",
        ),
        (
            "/sourceIPs",
            json!([1]),
            "sourceIPs",
            "must be a list of strings",
        ),
        ("/stage", json!(""), "stage", "is missing"),
        ("/kind", json!("Pod"), "kind", "must be \"Event\""),
    ];
    for (pointer, replacement, field, problem) in cases {
        let mut value = base.clone();
        *value.pointer_mut(pointer).unwrap() = replacement;
        let err = AuditEvent::from_k8s_event(&value).unwrap_err();
        assert_eq!(
            audit_field_error(err),
            (field.to_string(), problem.to_string()),
            "{pointer}"
        );
    }

    let mut value = base.clone();
    let event = value.as_object_mut().unwrap();
    event.remove("requestReceivedTimestamp");
    let err = AuditEvent::from_k8s_event(&value).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid audit event: `requestReceivedTimestamp` is missing (and there is no legacy \
         `timestamp`)"
    );
}

#[test]
fn nulls_and_unknown_fields_of_k8s_events_are_accepted() {
    let mut value = fixture_value(fixture!("forbidden.json"));
    value["objectRef"]["subresource"] = Value::Null;
    value["impersonatedUser"] = Value::Null;
    value["requestObject"] = Value::Null;
    value["somethingNew"] = json!({"x": 1});
    value["user"]["extra"] = json!({"scopes": ["a"]});
    let ev = AuditEvent::from_k8s_event(&value).unwrap();
    assert_eq!(ev.subresource, "");
    assert_eq!(ev.request_object, None);
    assert_eq!(ev.status_code, Some(403));
}

#[test]
fn response_status_without_code_leaves_status_absent() {
    let mut value = fixture_value(fixture!("forbidden.json"));
    value["responseStatus"] = json!({"metadata": {}, "status": "Success"});
    let ev = AuditEvent::from_k8s_event(&value).unwrap();
    assert_eq!(ev.status_code, None);
    assert_eq!(ev.status_class, "");
    assert!(!serde_json::to_string(&ev).unwrap().contains("status_code"));
}

#[test]
fn flat_document_gets_its_derived_fields() {
    let line = br#"{"timestamp":"2026-11-25T10:15:00Z","audit_id":"abc","stage":"ResponseStarted","verb":"create","request_uri":"/api/v1/namespaces/a/pods/p/exec?command=id&container=c","resource":"pods","subresource":"exec","user":"bob","source_ips":["10.1.1.1"],"status_code":101}"#;
    let ev = parse_audit_line(line).unwrap();
    assert_eq!(ev.exec_command, "id");
    assert_eq!(ev.exec_container, "c");
    assert_eq!(ev.request_path, "/api/v1/namespaces/a/pods/p/exec");
    assert_eq!(ev.effective_user, "bob");
    assert_eq!(ev.source_ip, "10.1.1.1");
    assert_eq!(ev.status_class, "1xx");
    assert_eq!(ev.dedup_key(), "abc/ResponseStarted");
}

#[test]
fn flat_document_keeps_derived_fields_it_has() {
    let line = br#"{"timestamp":1,"audit_id":"abc","stage":"ResponseComplete","user":"bob","effective_user":"carol","privileged":true}"#;
    let ev = parse_audit_line(line).unwrap();
    assert_eq!(ev.timestamp, Timestamp(1));
    assert_eq!(ev.effective_user, "carol");
    assert!(ev.privileged);
}

#[test]
fn flat_document_errors_name_the_field() {
    let cases: [(&[u8], &str); 4] = [
        (
            br#"{"audit_id":"a","stage":"ResponseComplete"}"#,
            "missing field `timestamp`",
        ),
        (
            br#"{"timestamp":1,"audit_id":"a"}"#,
            "missing field `stage`",
        ),
        (
            br#"{"timestamp":1,"audit_id":"a","stage":"x","colour":"red"}"#,
            "unknown field `colour`",
        ),
        (
            br#"{"timestamp":1,"audit_id":"","stage":"x"}"#,
            "`audit_id` is empty",
        ),
    ];
    for (line, needle) in cases {
        let err = parse_audit_line(line).unwrap_err().to_string();
        assert!(err.starts_with("invalid audit document: "), "{err}");
        assert!(err.contains(needle), "{err} lacks {needle}");
    }
}

#[test]
fn event_list_reports_each_item() {
    let results = parse_event_list(fixture!("event_list.json").as_bytes()).unwrap();
    assert_eq!(results.len(), 3);
    assert_eq!(
        results[0].as_ref().unwrap().audit_id,
        "3b9e0f12-7c6d-4a5b-8e9f-0a1b2c3d4e04"
    );
    assert_eq!(
        results[1].as_ref().unwrap_err().to_string(),
        "invalid audit event: `auditID` is missing"
    );
    assert_eq!(results[2].as_ref().unwrap().status_code, Some(403));
}

#[test]
fn event_list_body_errors() {
    for (body, message) in [
        (&b"not json"[..], "invalid EventList: invalid JSON: "),
        (b"[]", "invalid EventList: the body must be a JSON object"),
        (
            br#"{"kind":"Event","auditID":"x"}"#,
            "invalid EventList: `kind` must be \"EventList\"",
        ),
        (
            br#"{"apiVersion":"audit.k8s.io/v1"}"#,
            "invalid EventList: `items` is missing",
        ),
        (
            br#"{"kind":"EventList","items":{}}"#,
            "invalid EventList: `items` must be a list",
        ),
    ] {
        let err = parse_event_list(body).unwrap_err().to_string();
        assert!(err.starts_with(message), "{err}");
    }
    // The API server sends `"items": null` for an empty batch.
    for body in [
        &br#"{"kind":"EventList","apiVersion":"audit.k8s.io/v1","metadata":{},"items":null}"#[..],
        br#"{"kind":"EventList"}"#,
        br#"{"items":[]}"#,
    ] {
        assert!(parse_event_list(body).unwrap().is_empty());
    }
}
