//! The corpus of the report tests: scripted incidents at known times and seeded background
//! traffic of a small cluster's API server, indexed into three in-RAM targets.

use serde_json::{json, Value};
use tantivy::indexer::NoMergePolicy;
use tantivy::{DateTime, Index, IndexWriter, TantivyDocument};
use trawl_index::schema::build_schema;
use trawl_index::{SearchTarget, StreamSnapshot, TargetKind};
use trawl_model::schema::{FieldKind, AUDIT_DEFAULT_FIELDS, AUDIT_FIELDS};
use trawl_model::{AuditEvent, Timestamp};

/// 2026-01-10T10:00:00Z.
pub(super) const T0: i64 = 1_768_039_200_000_000_000;
pub(super) const SEC: i64 = 1_000_000_000;
pub(super) const MIN: i64 = 60 * SEC;
/// The corpus spans two hours; reports run over `[START, END)`, which cuts both ends.
pub(super) const START: i64 = T0 + 5 * MIN;
pub(super) const END: i64 = T0 + 115 * MIN;

// ---------------------------------------------------------------------------------------------
// The generator.

/// splitmix64: a small seeded generator, so that the corpus is the same on every run.
pub(in crate::reports) struct Rng(pub(in crate::reports) u64);

impl Rng {
    pub(in crate::reports) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub(in crate::reports) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

#[derive(Clone, Copy)]
pub(super) struct Who {
    pub(super) user: &'static str,
    groups: &'static [&'static str],
    ip: &'static str,
    agent: &'static str,
}

const RS_CONTROLLER: Who = Who {
    user: "system:serviceaccount:kube-system:replicaset-controller",
    groups: &[
        "system:serviceaccounts",
        "system:serviceaccounts:kube-system",
        "system:authenticated",
    ],
    ip: "10.0.0.10",
    agent: "kube-controller-manager/v1.30.2 (linux/amd64) kubernetes/39683505/system:serviceaccount:kube-system:replicaset-controller",
};
pub(super) const KCM: Who = Who {
    user: "system:kube-controller-manager",
    groups: &["system:authenticated"],
    ip: "10.0.0.10",
    agent: "kube-controller-manager/v1.30.2 (linux/amd64) kubernetes/39683505/leader-election",
};
const NODE1: Who = Who {
    user: "system:node:node-1",
    groups: &["system:nodes", "system:authenticated"],
    ip: "10.0.1.1",
    agent: "kubelet/v1.30.2 (linux/amd64) kubernetes/39683505",
};
const NODE2: Who = Who {
    user: "system:node:node-2",
    groups: &["system:nodes", "system:authenticated"],
    ip: "10.0.1.2",
    agent: "kubelet/v1.30.2 (linux/amd64) kubernetes/39683505",
};
const PROMETHEUS: Who = Who {
    user: "system:serviceaccount:monitoring:prometheus",
    groups: &[
        "system:serviceaccounts",
        "system:serviceaccounts:monitoring",
        "system:authenticated",
    ],
    ip: "10.0.2.7",
    agent: "Prometheus/2.53.0",
};
pub(super) const ALICE: Who = Who {
    user: "alice@example.com",
    groups: &["devs", "system:authenticated"],
    ip: "192.168.1.20",
    agent: "kubectl/v1.30.1 (darwin/arm64) kubernetes/7c5f7d4",
};
pub(super) const BOB: Who = Who {
    user: "bob@example.com",
    groups: &["devs", "system:authenticated"],
    ip: "192.168.1.21",
    agent: "kubectl/v1.29.0 (linux/amd64) kubernetes/3f7a50f",
};
const CAROL: Who = Who {
    user: "carol@example.com",
    groups: &["system:authenticated"],
    ip: "203.0.113.9",
    agent: "python-requests/2.31.0",
};
const ADMIN: Who = Who {
    user: "kubernetes-admin",
    groups: &["system:masters", "system:authenticated"],
    ip: "192.168.1.2",
    agent: "kubectl/v1.30.1 (linux/amd64) kubernetes/7c5f7d4",
};
/// A user name that needs escaping in a query.
pub(super) const ODD: Who = Who {
    user: r#"o'brien "ops" \ team"#,
    groups: &["system:authenticated"],
    ip: "192.168.1.30",
    agent: "k9s/v0.32",
};
const ANON: Who = Who {
    user: "system:anonymous",
    groups: &["system:unauthenticated"],
    ip: "198.51.100.4",
    agent: "curl/8.5.0",
};
/// A request whose authentication failed: the API server knows no user.
const NOBODY: Who = Who {
    user: "",
    groups: &[],
    ip: "198.51.100.5",
    agent: "Go-http-client/1.1",
};

/// Which stages a request is logged at.
#[derive(Clone, Copy, PartialEq)]
enum Stages {
    /// `ResponseComplete` only (the policy omits `RequestReceived`).
    Complete,
    /// `RequestReceived` then `ResponseComplete`, one audit id.
    ReceivedComplete,
    /// A long-running request: `RequestReceived`, `ResponseStarted`, `ResponseComplete`.
    LongRunning,
    /// `RequestReceived` then `Panic`.
    Panic,
}

#[derive(Clone)]
struct Req {
    who: Who,
    verb: &'static str,
    group: &'static str,
    resource: &'static str,
    subresource: &'static str,
    namespace: String,
    name: String,
    /// A request URI of its own (non-resource requests, exec parameters).
    uri: Option<String>,
    code: Option<i64>,
    reason: &'static str,
    impersonate: &'static str,
    object: Option<Value>,
    stages: Stages,
}

fn req(who: Who, verb: &'static str, resource: &'static str, namespace: &str, name: &str) -> Req {
    Req {
        who,
        verb,
        group: "",
        resource,
        subresource: "",
        namespace: namespace.to_string(),
        name: name.to_string(),
        uri: None,
        code: Some(200),
        reason: "",
        impersonate: "",
        object: None,
        stages: Stages::Complete,
    }
}

fn path(path: &str) -> Req {
    Req {
        uri: Some(path.to_string()),
        ..req(ANON, "get", "", "", "")
    }
}

impl Req {
    fn code(mut self, code: i64) -> Req {
        self.code = Some(code);
        self
    }
    fn denied(mut self, reason: &'static str) -> Req {
        self.code = Some(403);
        self.reason = reason;
        self
    }
    fn group(mut self, group: &'static str) -> Req {
        self.group = group;
        self
    }
    fn sub(mut self, subresource: &'static str) -> Req {
        self.subresource = subresource;
        self
    }
    fn stages(mut self, stages: Stages) -> Req {
        self.stages = stages;
        self
    }
    fn who(mut self, who: Who) -> Req {
        self.who = who;
        self
    }
    fn object(mut self, object: Value) -> Req {
        self.object = Some(object);
        self
    }
    fn uri(mut self, uri: String) -> Req {
        self.uri = Some(uri);
        self
    }
}

struct Gen {
    rng: Rng,
    /// (target, event), events with derived fields filled.
    events: Vec<(usize, AuditEvent)>,
    next_id: u64,
}

impl Gen {
    /// Logs `r` received at `ts` (microsecond precision, as the API server writes).
    fn emit(&mut self, ts: i64, r: Req) {
        let ts = ts / 1_000 * 1_000;
        self.next_id += 1;
        let id = format!("{:08x}-0000-4000-8000-{:012x}", self.next_id, self.next_id);
        let latency_us = 1 + self.rng.below(if r.verb == "watch" {
            5_000_000
        } else {
            400_000
        }) as i64;
        let uri = r.uri.clone().unwrap_or_else(|| {
            let mut uri = if r.group.is_empty() {
                "/api/v1".to_string()
            } else {
                format!("/apis/{}/v1", r.group)
            };
            if !r.namespace.is_empty() {
                uri += &format!("/namespaces/{}", r.namespace);
            }
            uri += &format!("/{}", r.resource);
            if !r.name.is_empty() {
                uri += &format!("/{}", r.name);
            }
            if !r.subresource.is_empty() {
                uri += &format!("/{}", r.subresource);
            }
            if r.verb == "watch" {
                uri += "?watch=true&timeoutSeconds=300";
            }
            uri
        });
        let base = AuditEvent {
            timestamp: Timestamp(ts),
            audit_id: id,
            level: "Metadata".into(),
            verb: r.verb.into(),
            request_uri: uri,
            user: r.who.user.into(),
            user_groups: r.who.groups.iter().map(|g| g.to_string()).collect(),
            impersonated_user: r.impersonate.into(),
            source_ips: vec!["172.16.0.1".into(), r.who.ip.into()],
            user_agent: r.who.agent.into(),
            api_group: r.group.into(),
            api_version: if r.resource.is_empty() { "" } else { "v1" }.into(),
            resource: r.resource.into(),
            subresource: r.subresource.into(),
            namespace: r.namespace.clone(),
            name: r.name.clone(),
            request_object: r.object.clone(),
            ..AuditEvent::default()
        };
        let target = self.rng.below(3) as usize;
        let at = |stage: &str, after_us: i64, code: Option<i64>| {
            let mut ev = base.clone();
            ev.stage = stage.to_string();
            ev.stage_timestamp = Some(Timestamp(ts + after_us * 1_000));
            ev.status_code = code;
            if code.is_some() {
                let denied = code == Some(403);
                ev.decision = if denied { "forbid" } else { "allow" }.into();
                ev.reason = r.reason.into();
            }
            ev.fill_derived();
            ev
        };
        let push = |ev: AuditEvent, gen: &mut Gen| {
            // Stages of one request may land in different targets (splits cut by time).
            let t = if gen.rng.chance(20) {
                gen.rng.below(3) as usize
            } else {
                target
            };
            gen.events.push((t, ev));
        };
        match r.stages {
            Stages::Complete => push(at("ResponseComplete", latency_us, r.code), self),
            Stages::ReceivedComplete => {
                push(at("RequestReceived", 0, None), self);
                push(at("ResponseComplete", latency_us, r.code), self);
            }
            Stages::LongRunning => {
                push(at("RequestReceived", 0, None), self);
                push(at("ResponseStarted", latency_us / 10, r.code), self);
                push(at("ResponseComplete", latency_us, r.code), self);
            }
            Stages::Panic => {
                push(at("RequestReceived", 0, None), self);
                push(at("Panic", latency_us, r.code), self);
            }
        }
    }

    /// A random instant of the corpus's two hours.
    fn any_time(&mut self) -> i64 {
        T0 + self.rng.below(120 * 60 * 1_000_000) as i64 * 1_000
    }
}

fn pod_spec(privileged: bool, host_pid: bool, host_network: bool, host_path: bool) -> Value {
    let mut spec = json!({
        "containers": [{"name": "c", "image": "busybox", "securityContext": {"privileged": privileged}}],
        "hostPID": host_pid,
        "hostNetwork": host_network,
    });
    if host_path {
        spec["volumes"] = json!([{"name": "root", "hostPath": {"path": "/"}}]);
    }
    spec
}

/// The corpus: scripted incidents at known times, then background traffic at random.
pub(super) fn corpus() -> Vec<(usize, AuditEvent)> {
    let mut g = Gen {
        rng: Rng(0x7a11),
        events: Vec::new(),
        next_id: 0,
    };

    // Requests exactly at both bounds: the first counts, the second does not.
    g.emit(START, req(ALICE, "get", "pods", "shop", "web-0"));
    g.emit(END, req(ALICE, "get", "pods", "shop", "web-0"));
    // And just outside.
    g.emit(START - 1_000, req(ALICE, "get", "pods", "shop", "web-0"));

    // Carol enumerates her permissions: a burst of denials over distinct resources.
    let probes = [
        ("list", "secrets", "kube-system"),
        ("list", "pods", "kube-system"),
        ("list", "nodes", ""),
        ("list", "clusterroles", ""),
        ("get", "configmaps", "kube-system"),
        ("list", "deployments", "shop"),
        ("get", "secrets", "shop"),
        ("list", "pods", "shop"),
    ];
    for (i, (verb, resource, ns)) in probes.into_iter().enumerate() {
        let group = match resource {
            "deployments" => "apps",
            "clusterroles" => "rbac.authorization.k8s.io",
            _ => "",
        };
        let r = req(CAROL, verb, resource, ns, "").denied("").group(group);
        g.emit(T0 + 30 * MIN + 10 * SEC + i as i64 * 15 * SEC, r);
    }
    // A second, smaller burst straddling a window boundary.
    for (i, resource) in ["secrets", "pods", "services", "ingresses"]
        .into_iter()
        .enumerate()
    {
        g.emit(
            T0 + 64 * MIN + 30 * SEC + i as i64 * 20 * SEC,
            req(CAROL, "list", resource, "payments", "").denied(""),
        );
    }
    // An authentication failure: no user at all.
    for i in 0..3 {
        g.emit(
            T0 + 40 * MIN + i * SEC,
            path("/api/v1/namespaces/default/secrets")
                .who(NOBODY)
                .code(401),
        );
    }

    // Exec with a command, attach, port-forward, a debug container, a denied exec.
    g.emit(
        T0 + 20 * MIN,
        req(ALICE, "create", "pods", "shop", "web-1")
            .sub("exec")
            .code(101)
            .stages(Stages::LongRunning)
            .uri("/api/v1/namespaces/shop/pods/web-1/exec?command=sh&command=-c&command=cat%20%2Fetc%2Fpasswd&container=app&stdin=true&stdout=true&tty=true".into()),
    );
    g.emit(
        T0 + 21 * MIN,
        req(ALICE, "create", "pods", "shop", "web-1")
            .sub("exec")
            .code(101)
            .stages(Stages::LongRunning)
            .uri("/api/v1/namespaces/shop/pods/web-1/exec?command=sh&command=-c&command=cat%20%2Fetc%2Fpasswd&container=app&stdin=true&stdout=true&tty=true".into()),
    );
    g.emit(
        T0 + 22 * MIN,
        req(BOB, "create", "pods", "payments", "api-7d9f")
            .sub("attach")
            .code(101)
            .stages(Stages::LongRunning)
            .uri(
                "/api/v1/namespaces/payments/pods/api-7d9f/attach?container=api&stdin=true".into(),
            ),
    );
    g.emit(
        T0 + 23 * MIN,
        req(ALICE, "create", "pods", "shop", "db-0")
            .sub("portforward")
            .code(101)
            .stages(Stages::LongRunning),
    );
    g.emit(
        T0 + 24 * MIN,
        req(BOB, "patch", "pods", "payments", "api-7d9f")
            .sub("ephemeralcontainers")
            .stages(Stages::ReceivedComplete)
            .object(json!({"spec": {"ephemeralContainers": [{"name": "debugger", "image": "busybox", "securityContext": {"privileged": true}}]}})),
    );
    g.emit(
        T0 + 25 * MIN,
        req(CAROL, "create", "pods", "shop", "web-1")
            .sub("exec")
            .denied("")
            .stages(Stages::LongRunning)
            .uri("/api/v1/namespaces/shop/pods/web-1/exec?command=id&container=app".into()),
    );

    // Privileged pods: a root pod, a host-network daemon set, and a kubelet status update of
    // a host-network pod (not a spec write: never flagged).
    g.emit(
        T0 + 50 * MIN,
        req(BOB, "create", "pods", "default", "debug-node")
            .stages(Stages::ReceivedComplete)
            .code(201)
            .object(json!({"kind": "Pod", "spec": pod_spec(true, true, false, true)})),
    );
    g.emit(
        T0 + 51 * MIN,
        req(BOB, "patch", "pods", "default", "debug-node")
            .object(json!({"kind": "Pod", "spec": pod_spec(false, false, true, false)})),
    );
    g.emit(
        T0 + 52 * MIN,
        req(ADMIN, "create", "daemonsets", "monitoring", "node-exporter")
            .group("apps")
            .code(201)
            .object(json!({"kind": "DaemonSet", "spec": {"template": {"spec": pod_spec(false, false, true, true)}}})),
    );
    g.emit(
        T0 + 53 * MIN,
        req(NODE1, "patch", "pods", "monitoring", "node-exporter-x1")
            .sub("status")
            .object(json!({"kind": "Pod", "spec": pod_spec(false, false, true, false)})),
    );

    // RBAC: a cluster-admin binding, a view binding, a role update, a denied binding, a
    // deleted binding.
    let binding = |role_kind: &str, role: &str| json!({"kind": "ClusterRoleBinding", "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role}});
    g.emit(
        T0 + 60 * MIN,
        req(ALICE, "create", "clusterrolebindings", "", "alice-admin")
            .group("rbac.authorization.k8s.io")
            .code(201)
            .object(binding("ClusterRole", "cluster-admin")),
    );
    g.emit(
        T0 + 61 * MIN,
        req(ADMIN, "create", "rolebindings", "shop", "view-devs")
            .group("rbac.authorization.k8s.io")
            .code(201)
            .object(binding("ClusterRole", "view")),
    );
    g.emit(
        T0 + 62 * MIN,
        req(ADMIN, "update", "roles", "shop", "pod-reader").group("rbac.authorization.k8s.io"),
    );
    g.emit(
        T0 + 63 * MIN,
        req(BOB, "create", "clusterrolebindings", "", "bob-admin")
            .group("rbac.authorization.k8s.io")
            .denied("")
            .object(binding("ClusterRole", "cluster-admin")),
    );
    g.emit(
        T0 + 66 * MIN,
        req(ALICE, "delete", "clusterrolebindings", "", "alice-admin")
            .group("rbac.authorization.k8s.io"),
    );

    // Service account tokens: kubelets for their pods, a person for a CI bot.
    for i in 0..6 {
        let node = if i % 2 == 0 { NODE1 } else { NODE2 };
        g.emit(
            T0 + (10 + i * 15) * MIN,
            req(node, "create", "serviceaccounts", "shop", "default")
                .sub("token")
                .code(201),
        );
    }
    g.emit(
        T0 + 70 * MIN,
        req(ALICE, "create", "serviceaccounts", "ci", "ci-bot")
            .sub("token")
            .code(201),
    );

    // Deletions: more than ten pods by one user, a collection, a cluster-scoped namespace.
    for i in 0..13 {
        g.emit(
            T0 + 80 * MIN + i * SEC,
            req(ALICE, "delete", "pods", "shop", &format!("web-{i:02}")),
        );
    }
    g.emit(
        T0 + 80 * MIN + 30 * SEC,
        req(ALICE, "delete", "pods", "shop", "web-03"),
    );
    g.emit(
        T0 + 81 * MIN,
        req(BOB, "deletecollection", "events", "payments", ""),
    );
    g.emit(
        T0 + 82 * MIN,
        req(ADMIN, "delete", "namespaces", "", "old-team").stages(Stages::ReceivedComplete),
    );
    g.emit(
        T0 + 83 * MIN,
        req(BOB, "delete", "configmaps", "payments", "feature-flags").denied(""),
    );

    // Impersonation by the admin.
    for i in 0..4 {
        let mut r = req(ADMIN, "list", "pods", "shop", "");
        r.impersonate = "dave@example.com";
        g.emit(T0 + (90 + i) * MIN, r);
    }
    let mut r = req(ADMIN, "get", "secrets", "shop", "db-password").denied("");
    r.impersonate = "dave@example.com";
    g.emit(T0 + 95 * MIN, r);

    // Panics: one with a status, one without.
    g.emit(
        T0 + 45 * MIN,
        req(BOB, "get", "pods", "payments", "api-7d9f")
            .code(500)
            .stages(Stages::Panic),
    );
    let mut r = req(ALICE, "list", "configmaps", "shop", "").stages(Stages::Panic);
    r.code = None;
    g.emit(T0 + 46 * MIN, r);

    // An anonymous request that panicked before it had a status.
    let mut r = path("/version").stages(Stages::Panic);
    r.code = None;
    g.emit(T0 + 47 * MIN, r);

    // The odd user name.
    for i in 0..3 {
        g.emit(
            T0 + (30 + i) * MIN,
            req(ODD, "get", "secrets", "ops", "tls"),
        );
    }

    // Background traffic.
    let namespaces = ["shop", "payments", "monitoring", "kube-system"];
    let names = ["web-0", "web-1", "api-7d9f", "db-0", "cache"];
    let nonresource = [
        "/healthz",
        "/readyz",
        "/version",
        "/openapi/v2?timeout=32s",
        "/api",
        "/apis",
    ];
    for _ in 0..900 {
        let ts = g.any_time();
        let ns = g.rng.pick(&namespaces).to_string();
        let name = g.rng.pick(&names).to_string();
        let r = match g.rng.below(20) {
            0..=3 => req(RS_CONTROLLER, "watch", "pods", "", "").stages(Stages::LongRunning),
            4 => req(RS_CONTROLLER, "update", "replicasets", &ns, &name)
                .group("apps")
                .sub("status"),
            5 => req(KCM, "get", "secrets", "kube-system", "kcm-token"),
            6 => req(
                if g.rng.chance(50) { NODE1 } else { NODE2 },
                "get",
                "secrets",
                &ns,
                "db-password",
            ),
            7 => req(
                if g.rng.chance(50) { NODE1 } else { NODE2 },
                "get",
                "configmaps",
                &ns,
                "kube-root-ca.crt",
            ),
            8 => req(PROMETHEUS, "get", "", "", "")
                .uri("/metrics".into())
                .who(PROMETHEUS),
            9 => req(PROMETHEUS, "watch", "secrets", "monitoring", "").stages(Stages::LongRunning),
            10 | 11 => req(ALICE, "get", "pods", &ns, &name).stages(Stages::ReceivedComplete),
            12 => req(ALICE, "list", "secrets", &ns, ""),
            13 => req(BOB, "patch", "deployments", &ns, &name).group("apps"),
            14 => req(BOB, "get", "secrets", "kube-system", "admin-token").denied(""),
            15 => req(CAROL, "get", "pods", &ns, &name),
            16 => {
                let uri = *g.rng.pick(&nonresource);
                path(uri).code(if g.rng.chance(70) { 200 } else { 403 })
            }
            17 => req(ADMIN, "list", "nodes", "", ""),
            18 => req(ALICE, "get", "deployments", &ns, &name)
                .group("apps")
                .code(404),
            _ => req(BOB, "get", "pods", &ns, &name).code(if g.rng.chance(10) { 304 } else { 200 }),
        };
        g.emit(ts, r);
    }
    g.events
}

// ---------------------------------------------------------------------------------------------
// The index.

/// A tantivy document of the audit schema from an event, field by field as the indexer does.
fn document(schema: &tantivy::schema::Schema, ev: &AuditEvent) -> TantivyDocument {
    let Value::Object(map) = serde_json::to_value(ev).unwrap() else {
        unreachable!("an event serialises as an object")
    };
    let mut doc = TantivyDocument::new();
    for (name, value) in map {
        let def = AUDIT_FIELDS.iter().find(|d| d.name == name).unwrap();
        let field = schema.get_field(&name).unwrap();
        match def.kind {
            FieldKind::Timestamp => {
                let ts: Timestamp = serde_json::from_value(value).unwrap();
                doc.add_date(field, DateTime::from_timestamp_nanos(ts.0));
            }
            FieldKind::Keyword | FieldKind::Text => doc.add_text(field, value.as_str().unwrap()),
            FieldKind::KeywordList => {
                for item in value.as_array().unwrap() {
                    doc.add_text(field, item.as_str().unwrap());
                }
            }
            FieldKind::I64 => doc.add_i64(field, value.as_i64().unwrap()),
            FieldKind::Bool => doc.add_bool(field, value.as_bool().unwrap()),
            // Objects are stored and searchable; reports never read them.
            _ => {}
        }
    }
    doc
}

/// Three in-RAM targets; the first has two segments.
pub(super) fn snapshot(events: &[(usize, AuditEvent)]) -> StreamSnapshot {
    let schema = build_schema(AUDIT_FIELDS);
    let mut targets = Vec::new();
    for (t, id) in ["split-a", "split-b", "hot"].into_iter().enumerate() {
        let index = Index::create_in_ram(schema.clone());
        let mut writer: IndexWriter = index.writer_with_num_threads(1, 15_000_000).unwrap();
        writer.set_merge_policy(Box::new(NoMergePolicy));
        let mine: Vec<&AuditEvent> = events
            .iter()
            .filter(|(at, _)| *at == t)
            .map(|(_, ev)| ev)
            .collect();
        for (i, ev) in mine.iter().enumerate() {
            writer.add_document(document(&schema, ev)).unwrap();
            if t == 0 && i == mine.len() / 2 {
                writer.commit().unwrap();
            }
        }
        writer.commit().unwrap();
        let min = mine.iter().map(|e| e.timestamp).min();
        let max = mine.iter().map(|e| e.timestamp).max();
        let searcher = index.reader().unwrap().searcher();
        targets.push(SearchTarget::new(
            TargetKind::Split,
            id,
            searcher,
            min,
            max,
            None,
        ));
    }
    StreamSnapshot {
        stream: "audit".to_string(),
        default_fields: AUDIT_DEFAULT_FIELDS
            .iter()
            .map(|f| schema.get_field(f).unwrap())
            .collect(),
        schema,
        tokenizers: tantivy::tokenizer::TokenizerManager::default(),
        targets,
    }
}
