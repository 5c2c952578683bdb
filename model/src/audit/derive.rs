//! The fields of an [`AuditEvent`] derived for analytics: the path and exec parameters of the
//! URI, the host-level privileges a pod spec asks for, the role a binding grants, who acted,
//! from where, and with what class of outcome.

use serde_json::Value;

use super::k8s::{DECISION_ANNOTATION, REASON_ANNOTATION};
use super::percent::decode_query_component;
use super::AuditEvent;

/// Fills what is empty (or `false`) and can be derived; see [`AuditEvent::fill_derived`].
pub(super) fn fill(ev: &mut AuditEvent) {
    if ev.latency_ms.is_none() {
        ev.latency_ms = ev
            .stage_timestamp
            .map(|stage| stage.nanos().saturating_sub(ev.timestamp.nanos()))
            .filter(|nanos| *nanos >= 0)
            .map(|nanos| nanos / 1_000_000);
    }
    for (target, key) in [
        (&mut ev.decision, DECISION_ANNOTATION),
        (&mut ev.reason, REASON_ANNOTATION),
    ] {
        if target.is_empty() {
            if let Some(text) = ev.annotations.get(key).and_then(Value::as_str) {
                *target = text.to_string();
            }
        }
    }

    let (path, query) = match ev.request_uri.split_once('?') {
        Some((path, query)) => (path, query),
        None => (ev.request_uri.as_str(), ""),
    };
    if ev.request_path.is_empty() {
        ev.request_path = path.to_string();
    }
    let pods = ev.resource == "pods" && ev.api_group.is_empty();
    if pods && ev.subresource == "exec" && ev.exec_command.is_empty() {
        let command: Vec<String> = query_values(query, "command").collect();
        ev.exec_command = command.join(" ");
    }
    if pods
        && (ev.subresource == "exec" || ev.subresource == "attach")
        && ev.exec_container.is_empty()
    {
        ev.exec_container = query_values(query, "container").next().unwrap_or_default();
    }

    let flags = pod_flags(ev);
    ev.privileged |= flags.privileged;
    ev.host_pid |= flags.host_pid;
    ev.host_network |= flags.host_network;
    ev.host_ipc |= flags.host_ipc;
    ev.host_path |= flags.host_path;

    if ev.role_ref.is_empty() {
        ev.role_ref = role_ref(ev);
    }
    if ev.effective_user.is_empty() {
        ev.effective_user = if ev.impersonated_user.is_empty() {
            ev.user.clone()
        } else {
            ev.impersonated_user.clone()
        };
    }
    if ev.source_ip.is_empty() {
        ev.source_ip = ev.source_ips.last().cloned().unwrap_or_default();
    }
    if ev.status_class.is_empty() {
        ev.status_class = match ev.status_code {
            Some(code @ 100..=599) => format!("{}xx", code / 100),
            _ => String::new(),
        };
    }
}

/// The decoded values of parameter `name` in a query string, in order, as Go's
/// `url.ParseQuery` (which the API server uses) reads them: `&`-separated `key=value` pairs,
/// `+` for a space, `%XX` escapes.
fn query_values<'a>(query: &'a str, name: &'a str) -> impl Iterator<Item = String> + 'a {
    query.split('&').filter_map(move |pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (decode_query_component(key) == name).then(|| decode_query_component(value))
    })
}

/// What a pod spec asks of its node.
#[derive(Debug, Default, PartialEq, Eq)]
struct PodFlags {
    privileged: bool,
    host_pid: bool,
    host_network: bool,
    host_ipc: bool,
    host_path: bool,
}

/// The flags of the pod specs an event writes: a create, update or patch of a pod (or of its
/// `ephemeralcontainers`, as `kubectl debug` does) or of a workload with a pod template. Other
/// subresources are left out on purpose: the kubelet updates `pods/status` with the whole pod,
/// which would flag every host-network system pod at every status change. The request object
/// is read when it is an object (a JSON patch is a list), else the response object.
fn pod_flags(ev: &AuditEvent) -> PodFlags {
    let mut flags = PodFlags::default();
    if !matches!(ev.verb.as_str(), "create" | "update" | "patch") {
        return flags;
    }
    let group = ev.api_group.as_str();
    let pointer = match (ev.resource.as_str(), ev.subresource.as_str()) {
        ("pods", "" | "ephemeralcontainers") if group.is_empty() => "/spec",
        ("replicationcontrollers", "") if group.is_empty() => "/spec/template/spec",
        ("podtemplates", "") if group.is_empty() => "/template/spec",
        ("deployments" | "replicasets" | "daemonsets", "")
            if group == "apps" || group == "extensions" =>
        {
            "/spec/template/spec"
        }
        ("statefulsets", "") if group == "apps" => "/spec/template/spec",
        ("jobs", "") if group == "batch" => "/spec/template/spec",
        ("cronjobs", "") if group == "batch" => "/spec/jobTemplate/spec/template/spec",
        _ => return flags,
    };
    let Some(object) = [&ev.request_object, &ev.response_object]
        .into_iter()
        .flatten()
        .find(|v| v.is_object())
    else {
        return flags;
    };
    if let Some(spec) = object.pointer(pointer) {
        scan_pod_spec(spec, &mut flags);
    } else if ev.subresource == "ephemeralcontainers" {
        // Before Kubernetes 1.22 the subresource took an `EphemeralContainers` object, with the
        // containers at its top level.
        scan_pod_spec(object, &mut flags);
    }
    flags
}

fn scan_pod_spec(spec: &Value, flags: &mut PodFlags) {
    let is_true = |v: Option<&Value>| v.and_then(Value::as_bool) == Some(true);
    flags.host_pid |= is_true(spec.get("hostPID"));
    flags.host_network |= is_true(spec.get("hostNetwork"));
    flags.host_ipc |= is_true(spec.get("hostIPC"));
    if let Some(volumes) = spec.get("volumes").and_then(Value::as_array) {
        flags.host_path |= volumes
            .iter()
            .any(|v| v.get("hostPath").is_some_and(Value::is_object));
    }
    for key in ["containers", "initContainers", "ephemeralContainers"] {
        if let Some(containers) = spec.get(key).and_then(Value::as_array) {
            flags.privileged |= containers
                .iter()
                .any(|c| is_true(c.pointer("/securityContext/privileged")));
        }
    }
}

/// `<kind>/<name>` of the binding's `roleRef`, from the request object or else the response
/// object; empty when neither has a `roleRef` with both.
fn role_ref(ev: &AuditEvent) -> String {
    let binding = matches!(ev.resource.as_str(), "rolebindings" | "clusterrolebindings")
        && ev.subresource.is_empty()
        && ev.api_group == "rbac.authorization.k8s.io";
    if !binding {
        return String::new();
    }
    [&ev.request_object, &ev.response_object]
        .into_iter()
        .flatten()
        .find_map(|object| {
            let role = object.get("roleRef")?;
            let kind = role.get("kind").and_then(Value::as_str)?;
            let name = role.get("name").and_then(Value::as_str)?;
            (!kind.is_empty() && !name.is_empty()).then(|| format!("{kind}/{name}"))
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn query_values_in_order_decoded() {
        let q = "command=sh&command=-c&command=echo%20hi+there&container=app&stdin=true";
        assert_eq!(
            query_values(q, "command").collect::<Vec<_>>(),
            ["sh", "-c", "echo hi there"]
        );
        assert_eq!(query_values(q, "container").collect::<Vec<_>>(), ["app"]);
        assert_eq!(query_values(q, "tty").count(), 0);
        assert_eq!(query_values("", "command").count(), 0);
        // A key without `=` has the empty value; an encoded key is decoded before comparing.
        assert_eq!(
            query_values("command&comm%61nd=x", "command").collect::<Vec<_>>(),
            ["", "x"]
        );
    }

    fn pod_event(verb: &str, resource: &str, group: &str, object: Value) -> AuditEvent {
        AuditEvent {
            verb: verb.to_string(),
            resource: resource.to_string(),
            api_group: group.to_string(),
            request_object: Some(object),
            ..AuditEvent::default()
        }
    }

    #[test]
    fn pod_spec_flags_each() {
        let spec = json!({"spec": {
            "hostPID": true, "hostIPC": true, "hostNetwork": false,
            "volumes": [{"name": "a", "emptyDir": {}}, {"name": "b", "hostPath": {"path": "/"}}],
            "initContainers": [{"name": "i", "securityContext": {"privileged": true}}],
            "containers": [{"name": "c"}]
        }});
        let flags = pod_flags(&pod_event("create", "pods", "", spec));
        assert_eq!(
            flags,
            PodFlags {
                privileged: true,
                host_pid: true,
                host_network: false,
                host_ipc: true,
                host_path: true
            }
        );
    }

    #[test]
    fn pod_flags_only_for_writes_of_pod_specs() {
        let privileged =
            json!({"spec": {"containers": [{"securityContext": {"privileged": true}}]}});
        assert!(pod_flags(&pod_event("create", "pods", "", privileged.clone())).privileged);
        assert!(pod_flags(&pod_event("patch", "pods", "", privileged.clone())).privileged);
        assert!(!pod_flags(&pod_event("get", "pods", "", privileged.clone())).privileged);
        assert!(
            !pod_flags(&pod_event(
                "create",
                "pods",
                "example.com",
                privileged.clone()
            ))
            .privileged
        );
        let mut status = pod_event("update", "pods", "", privileged.clone());
        status.subresource = "status".to_string();
        assert!(!pod_flags(&status).privileged);
        // A deployment's own spec is not a pod spec.
        assert!(!pod_flags(&pod_event("create", "deployments", "apps", privileged)).privileged);
    }

    #[test]
    fn pod_flags_of_workload_templates() {
        let template = json!({"template": {"spec": {"hostNetwork": true}}});
        for (resource, group) in [
            ("deployments", "apps"),
            ("deployments", "extensions"),
            ("daemonsets", "apps"),
            ("statefulsets", "apps"),
            ("replicasets", "apps"),
            ("jobs", "batch"),
            ("replicationcontrollers", ""),
        ] {
            let ev = pod_event("create", resource, group, json!({"spec": template}));
            assert!(pod_flags(&ev).host_network, "{resource}");
        }
        let cron = json!({"spec": {"jobTemplate": {"spec": template}}});
        assert!(pod_flags(&pod_event("create", "cronjobs", "batch", cron)).host_network);
        assert!(pod_flags(&pod_event("create", "podtemplates", "", template)).host_network);
    }

    #[test]
    fn pod_flags_of_ephemeral_containers() {
        let legacy = json!({"kind": "EphemeralContainers", "ephemeralContainers": [
            {"name": "debugger", "securityContext": {"privileged": true}}]});
        let mut ev = pod_event("update", "pods", "", legacy);
        ev.subresource = "ephemeralcontainers".to_string();
        assert!(pod_flags(&ev).privileged);
        ev.request_object = Some(json!({"spec": {"ephemeralContainers": [
            {"name": "debugger", "securityContext": {"privileged": true}}]}}));
        assert!(pod_flags(&ev).privileged);
    }

    #[test]
    fn pod_flags_fall_back_to_the_response_object() {
        let mut ev = pod_event("patch", "pods", "", json!([{"op": "add"}]));
        ev.response_object = Some(json!({"spec": {"hostIPC": true}}));
        assert!(pod_flags(&ev).host_ipc);
        ev.request_object = None;
        assert!(pod_flags(&ev).host_ipc);
    }

    #[test]
    fn role_ref_from_request_or_response() {
        let mut ev = pod_event(
            "create",
            "rolebindings",
            "rbac.authorization.k8s.io",
            json!({"roleRef": {"kind": "Role", "name": "reader"}}),
        );
        assert_eq!(role_ref(&ev), "Role/reader");
        ev.request_object = Some(json!({"kind": "DeleteOptions"}));
        ev.response_object =
            Some(json!({"roleRef": {"kind": "ClusterRole", "name": "cluster-admin"}}));
        assert_eq!(role_ref(&ev), "ClusterRole/cluster-admin");
        ev.resource = "roles".to_string();
        assert_eq!(role_ref(&ev), "");
    }

    #[test]
    fn status_class_and_source_ip_and_latency() {
        let mut ev = AuditEvent {
            status_code: Some(101),
            source_ips: vec!["10.0.0.9".into(), "192.168.1.2".into()],
            timestamp: crate::Timestamp(1_000_000_000),
            stage_timestamp: Some(crate::Timestamp(1_012_999_999)),
            ..AuditEvent::default()
        };
        fill(&mut ev);
        assert_eq!(ev.status_class, "1xx");
        assert_eq!(ev.source_ip, "192.168.1.2");
        assert_eq!(ev.latency_ms, Some(12));
        for (code, class) in [
            (Some(204), "2xx"),
            (Some(503), "5xx"),
            (Some(99), ""),
            (None, ""),
        ] {
            let mut ev = AuditEvent {
                status_code: code,
                ..AuditEvent::default()
            };
            fill(&mut ev);
            assert_eq!(ev.status_class, class, "{code:?}");
        }
        // Clock skew: a stage before the reception has no latency.
        let mut ev = AuditEvent {
            timestamp: crate::Timestamp(5),
            stage_timestamp: Some(crate::Timestamp(4)),
            ..AuditEvent::default()
        };
        fill(&mut ev);
        assert_eq!(ev.latency_ms, None);
    }
}
