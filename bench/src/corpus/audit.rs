//! Kubernetes audit events (audit.k8s.io/v1 `Event`, one JSON object per line) as an API server
//! emits them: controllers' service accounts watching and listing, kubelets updating status and
//! requesting tokens, people running get/apply/delete/exec, 403s with the authorizer's
//! annotations, secret reads, impersonation, anonymous probes, privileged pods and RBAC edits.

use std::fmt::Write as _;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::zipf::Zipf;
use super::{kube_suffix, push_json_str, uuid, Civil, LineSource, CORPUS_START_NS};

/// What kind of request an event records; the mix is what a busy cluster's audit log holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activity {
    ControllerWatch,
    ControllerList,
    ControllerUpdate,
    KubeletStatus,
    TokenRequest,
    PersonRead,
    PersonApply,
    PersonDelete,
    Exec,
    Forbidden,
    SecretRead,
    Impersonation,
    Anonymous,
    PrivilegedPod,
    RbacChange,
}

/// (activity, weight in ‰).
const MIX: &[(Activity, u32)] = &[
    (Activity::ControllerWatch, 180),
    (Activity::ControllerList, 170),
    (Activity::ControllerUpdate, 200),
    (Activity::KubeletStatus, 190),
    (Activity::TokenRequest, 30),
    (Activity::PersonRead, 80),
    (Activity::PersonApply, 30),
    (Activity::PersonDelete, 15),
    (Activity::Exec, 10),
    (Activity::Forbidden, 30),
    (Activity::SecretRead, 45),
    (Activity::Impersonation, 8),
    (Activity::Anonymous, 6),
    (Activity::PrivilegedPod, 3),
    (Activity::RbacChange, 3),
];

const CONTROLLERS: &[&str] = &[
    "replicaset-controller",
    "deployment-controller",
    "endpointslice-controller",
    "namespace-controller",
    "job-controller",
    "cronjob-controller",
    "daemon-set-controller",
    "statefulset-controller",
    "horizontal-pod-autoscaler",
    "generic-garbage-collector",
    "node-controller",
    "resourcequota-controller",
    "pv-protection-controller",
    "disruption-controller",
    "ttl-after-finished-controller",
    "endpoint-controller",
    "coredns",
    "cluster-autoscaler",
    "aws-node",
    "ingress-nginx",
    "cert-manager",
    "argocd-application-controller",
    "prometheus-operator",
    "external-dns",
];

const PEOPLE: &[&str] = &[
    "alice@example.com",
    "bob@example.com",
    "carol@example.com",
    "dave@example.com",
    "erin@example.com",
    "frank@example.com",
    "grace@example.com",
    "heidi@example.com",
    "ivan@example.com",
    "judy@example.com",
    "ci-deployer",
    "mallory@contractor.example.net",
];

const NAMESPACES: &[&str] = &[
    "kube-system",
    "payments",
    "checkout",
    "catalog",
    "frontend",
    "identity",
    "orders",
    "monitoring",
    "ingress-nginx",
    "cert-manager",
    "argocd",
    "data-pipeline",
    "ml-serving",
    "default",
    "staging-web",
    "batch-jobs",
];

/// (api group, version, resource, namespaced).
const RESOURCES: &[(&str, &str, &str, bool)] = &[
    ("", "v1", "pods", true),
    ("", "v1", "configmaps", true),
    ("", "v1", "services", true),
    ("", "v1", "endpoints", true),
    ("discovery.k8s.io", "v1", "endpointslices", true),
    ("apps", "v1", "deployments", true),
    ("apps", "v1", "replicasets", true),
    ("apps", "v1", "statefulsets", true),
    ("apps", "v1", "daemonsets", true),
    ("batch", "v1", "jobs", true),
    ("batch", "v1", "cronjobs", true),
    ("coordination.k8s.io", "v1", "leases", true),
    ("", "v1", "nodes", false),
    ("", "v1", "namespaces", false),
    ("", "v1", "persistentvolumeclaims", true),
    ("", "v1", "events", true),
    ("networking.k8s.io", "v1", "ingresses", true),
    ("autoscaling", "v2", "horizontalpodautoscalers", true),
    ("policy", "v1", "poddisruptionbudgets", true),
    ("cert-manager.io", "v1", "certificates", true),
    ("argoproj.io", "v1alpha1", "applications", true),
];

const KUBECTL_AGENTS: &[&str] = &[
    "kubectl/v1.31.2 (linux/amd64) kubernetes/5864a46",
    "kubectl/v1.30.4 (darwin/arm64) kubernetes/a51b3b7",
    "kubectl/v1.31.1 (windows/amd64) kubernetes/948afe5",
    "k9s/v0.32.5 (linux/amd64) kubernetes/$Format",
    "Lens/2024.11.131815",
    "helm/v3.16.2 (linux/amd64) kubernetes/$Format",
    "argocd/v2.13.0 (linux/amd64)",
];

/// One event under construction; written as Kubernetes writes it.
#[derive(Clone)]
struct Event {
    stage: &'static str,
    level: &'static str,
    verb: &'static str,
    uri: String,
    user: String,
    groups: Vec<String>,
    impersonated: Option<(String, Vec<String>)>,
    source_ip: String,
    agent: String,
    group: &'static str,
    version: &'static str,
    resource: &'static str,
    subresource: &'static str,
    namespace: String,
    name: String,
    code: u16,
    status_message: String,
    decision: &'static str,
    reason: String,
    request_object: Option<String>,
    received_ns: i64,
    latency_ns: i64,
}

/// Produces raw audit Event NDJSON, deterministically from a seed.
pub struct AuditGenerator {
    rng: StdRng,
    now_ns: i64,
    mean_gap_ns: f64,
    mix_total: u32,
    ns_zipf: Zipf,
    res_zipf: Zipf,
    ctl_zipf: Zipf,
    person_zipf: Zipf,
    nodes: Vec<String>,
    /// A second stage of the previous request, written next (RequestReceived then
    /// ResponseComplete share an audit id, as with the API server's default policy).
    pending: Option<(String, Event)>,
}

impl AuditGenerator {
    /// A generator emitting `events_per_sec` events per second of log time on average.
    pub fn new(seed: u64, events_per_sec: f64) -> AuditGenerator {
        let mut rng = StdRng::seed_from_u64(seed ^ 0xa0d1_7e5e);
        let nodes = (0..24)
            .map(|i| format!("ip-10-0-{}-{}.ec2.internal", 16 + i / 8, 10 + i * 7 % 240))
            .collect();
        let _ = kube_suffix(&mut rng, 1);
        AuditGenerator {
            rng,
            now_ns: CORPUS_START_NS,
            mean_gap_ns: 1e9 / events_per_sec.max(1e-3),
            mix_total: MIX.iter().map(|(_, w)| w).sum(),
            ns_zipf: Zipf::new(NAMESPACES.len(), 1.0),
            res_zipf: Zipf::new(RESOURCES.len(), 0.9),
            ctl_zipf: Zipf::new(CONTROLLERS.len(), 1.0),
            person_zipf: Zipf::new(PEOPLE.len(), 1.1),
            nodes,
            pending: None,
        }
    }

    fn activity(&mut self) -> Activity {
        let mut roll = self.rng.random_range(0..self.mix_total);
        for (activity, weight) in MIX {
            if roll < *weight {
                return *activity;
            }
            roll -= weight;
        }
        Activity::ControllerWatch
    }

    fn object_name(&mut self, resource: &str) -> String {
        let base =
            ["web", "api", "worker", "db", "cache", "gateway", "sync"][self.rng.random_range(0..7)];
        match resource {
            "pods" => format!(
                "{base}-{}-{}",
                super::hex(&mut self.rng, 9),
                kube_suffix(&mut self.rng, 5)
            ),
            "nodes" => self.nodes[self.rng.random_range(0..self.nodes.len())].clone(),
            "leases" => format!("{base}-leader"),
            "secrets" => match self.rng.random_range(0..4) {
                0 => format!("{base}-tls"),
                1 => format!("{base}-db-credentials"),
                2 => format!(
                    "sh.helm.release.v1.{base}.v{}",
                    self.rng.random_range(1..40)
                ),
                _ => format!("{base}-token-{}", kube_suffix(&mut self.rng, 5)),
            },
            _ => format!("{base}-{}", self.rng.random_range(1..40)),
        }
    }

    /// The next event: its time (exponential gaps), namespace and resource (Zipf), then one
    /// arm per activity of a cluster's day that sets what that activity changes. Long because
    /// the activities are a table written as code; read it arm by arm.
    fn build(&mut self) -> Event {
        let gap = -self.rng.random::<f64>().max(1e-12).ln() * self.mean_gap_ns;
        self.now_ns += gap as i64 + 1;
        let activity = self.activity();
        let ns = NAMESPACES[self.ns_zipf.sample(&mut self.rng)].to_string();
        let (mut group, mut version, mut resource, mut namespaced) =
            RESOURCES[self.res_zipf.sample(&mut self.rng)];
        let ip = format!(
            "10.0.{}.{}",
            self.rng.random_range(16..19),
            self.rng.random_range(10..250)
        );
        let mut e = Event {
            stage: "ResponseComplete",
            level: "Metadata",
            verb: "get",
            uri: String::new(),
            user: String::new(),
            groups: Vec::new(),
            impersonated: None,
            source_ip: ip,
            agent: String::new(),
            group,
            version,
            resource,
            subresource: "",
            namespace: String::new(),
            name: String::new(),
            code: 200,
            status_message: String::new(),
            decision: "allow",
            reason: String::new(),
            request_object: None,
            received_ns: self.now_ns,
            latency_ns: self.rng.random_range(800_000..40_000_000),
        };
        let controller = CONTROLLERS[self.ctl_zipf.sample(&mut self.rng)];
        let person = PEOPLE[self.person_zipf.sample(&mut self.rng)];
        let set_sa = |e: &mut Event, ns: &str, sa: &str| {
            e.user = format!("system:serviceaccount:{ns}:{sa}");
            e.groups = vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{ns}"),
                "system:authenticated".into(),
            ];
            e.agent = format!("kube-controller-manager/v1.31.2 (linux/amd64) kubernetes/5864a46/system:serviceaccount:{ns}:{sa}");
            e.reason = format!("RBAC: allowed by ClusterRoleBinding \"system:controller:{sa}\" of ClusterRole \"system:controller:{sa}\" to ServiceAccount \"{sa}/{ns}\"");
        };
        let set_person = |e: &mut Event, rng: &mut StdRng| {
            e.user = person.to_string();
            e.groups = if person == "ci-deployer" {
                vec!["ci:deployers".into(), "system:authenticated".into()]
            } else {
                vec![
                    "developers".into(),
                    "oidc:engineering".into(),
                    "system:authenticated".into(),
                ]
            };
            e.agent = KUBECTL_AGENTS[rng.random_range(0..KUBECTL_AGENTS.len())].to_string();
            e.source_ip = format!("203.0.113.{}", rng.random_range(1..60));
            e.reason = "RBAC: allowed by RoleBinding \"developers/edit\" of ClusterRole \"edit\" to Group \"developers\"".into();
        };
        match activity {
            Activity::ControllerWatch | Activity::ControllerList => {
                set_sa(&mut e, "kube-system", controller);
                e.verb = if activity == Activity::ControllerWatch {
                    "watch"
                } else {
                    "list"
                };
                if activity == Activity::ControllerWatch {
                    e.latency_ns = self.rng.random_range(60..600) * 1_000_000_000;
                    e.stage = "ResponseComplete";
                }
                if self.rng.random_bool(0.5) {
                    namespaced = false;
                }
            }
            Activity::ControllerUpdate => {
                set_sa(&mut e, "kube-system", controller);
                e.verb = ["update", "patch", "create", "update"][self.rng.random_range(0..4)];
                if e.verb == "create" {
                    e.code = 201;
                }
                if self.rng.random_bool(0.06) {
                    e.code = 409;
                    e.status_message = format!("Operation cannot be fulfilled on {resource}: the object has been modified; please apply your changes to the latest version and try again");
                }
            }
            Activity::KubeletStatus => {
                let node = self.nodes[self.rng.random_range(0..self.nodes.len())].clone();
                e.user = format!("system:node:{node}");
                e.groups = vec!["system:nodes".into(), "system:authenticated".into()];
                e.agent = "kubelet/v1.31.2 (linux/amd64) kubernetes/5864a46".to_string();
                e.source_ip = format!(
                    "10.0.{}.{}",
                    self.rng.random_range(16..19),
                    self.rng.random_range(10..250)
                );
                if self.rng.random_bool(0.5) {
                    (group, version, resource, namespaced) = ("", "v1", "pods", true);
                    e.subresource = "status";
                    e.verb = "patch";
                } else {
                    (group, version, resource, namespaced) =
                        ("coordination.k8s.io", "v1", "leases", true);
                    e.verb = "update";
                    e.namespace = "kube-node-lease".into();
                    e.name = node.clone();
                }
                e.reason = String::new();
            }
            Activity::TokenRequest => {
                let node = self.nodes[self.rng.random_range(0..self.nodes.len())].clone();
                e.user = format!("system:node:{node}");
                e.groups = vec!["system:nodes".into(), "system:authenticated".into()];
                e.agent = "kubelet/v1.31.2 (linux/amd64) kubernetes/5864a46".into();
                (group, version, resource, namespaced) = ("", "v1", "serviceaccounts", true);
                e.subresource = "token";
                e.verb = "create";
                e.code = 201;
                e.name = ["default", "app", "prometheus", "argocd-server"]
                    [self.rng.random_range(0..4)]
                .into();
                e.reason = String::new();
            }
            Activity::PersonRead => {
                set_person(&mut e, &mut self.rng);
                e.verb = ["get", "list", "list", "get", "watch"][self.rng.random_range(0..5)];
            }
            Activity::PersonApply => {
                set_person(&mut e, &mut self.rng);
                e.verb = ["patch", "create", "update"][self.rng.random_range(0..3)];
                e.level = "RequestResponse";
                e.code = if e.verb == "create" { 201 } else { 200 };
                e.request_object = Some(format!(
                    "{{\"kind\":\"{}\",\"apiVersion\":\"{}\",\"metadata\":{{\"annotations\":{{\"kubectl.kubernetes.io/last-applied-configuration\":\"\"}}}},\"spec\":{{\"replicas\":{}}}}}",
                    kind_of(resource), if group.is_empty() { version.to_string() } else { format!("{group}/{version}") }, self.rng.random_range(1..12)
                ));
            }
            Activity::PersonDelete => {
                set_person(&mut e, &mut self.rng);
                e.verb = if self.rng.random_bool(0.1) {
                    "deletecollection"
                } else {
                    "delete"
                };
            }
            Activity::Exec => {
                set_person(&mut e, &mut self.rng);
                (group, version, resource, namespaced) = ("", "v1", "pods", true);
                e.subresource =
                    ["exec", "exec", "attach", "portforward"][self.rng.random_range(0..4)];
                e.verb = if e.subresource == "portforward" {
                    "get"
                } else {
                    "create"
                };
                e.stage = "ResponseStarted";
                e.code = 101;
            }
            Activity::Forbidden => {
                if self.rng.random_bool(0.5) {
                    set_person(&mut e, &mut self.rng);
                } else {
                    let sa = ["default", "app", "ci-runner", "fluent-bit", "jenkins"]
                        [self.rng.random_range(0..5)];
                    set_sa(&mut e, &ns, sa);
                }
                e.verb = ["get", "list", "create", "delete", "watch"][self.rng.random_range(0..5)];
                e.code = 403;
                e.decision = "forbid";
                e.reason = String::new();
            }
            Activity::SecretRead => {
                if self.rng.random_bool(0.3) {
                    set_person(&mut e, &mut self.rng);
                } else {
                    set_sa(
                        &mut e,
                        &ns,
                        [
                            "argocd-application-controller",
                            "external-secrets",
                            "cert-manager",
                            "vault-agent",
                        ][self.rng.random_range(0..4)],
                    );
                }
                (group, version, resource, namespaced) = ("", "v1", "secrets", true);
                e.verb = ["get", "get", "list", "watch"][self.rng.random_range(0..4)];
            }
            Activity::Impersonation => {
                set_person(&mut e, &mut self.rng);
                let target = [
                    "system:serviceaccount:argocd:argocd-server",
                    "admin",
                    "system:serviceaccount:payments:app",
                ][self.rng.random_range(0..3)];
                e.impersonated = Some((target.into(), vec!["system:authenticated".into()]));
                e.verb = ["get", "list", "patch"][self.rng.random_range(0..3)];
            }
            Activity::Anonymous => {
                e.user = "system:anonymous".into();
                e.groups = vec!["system:unauthenticated".into()];
                e.agent = [
                    "curl/8.5.0",
                    "python-requests/2.32.3",
                    "Go-http-client/1.1",
                    "masscan/1.3",
                ][self.rng.random_range(0..4)]
                .into();
                e.source_ip = format!("198.51.100.{}", self.rng.random_range(1..250));
                e.verb = "get";
                if self.rng.random_bool(0.5) {
                    e.code = 403;
                    e.decision = "forbid";
                } else {
                    e.uri = ["/healthz", "/version", "/livez", "/readyz"]
                        [self.rng.random_range(0..4)]
                    .into();
                    e.resource = "";
                }
            }
            Activity::PrivilegedPod => {
                set_sa(&mut e, "kube-system", "replicaset-controller");
                (group, version, resource, namespaced) = ("", "v1", "pods", true);
                e.verb = "create";
                e.code = 201;
                e.level = "RequestResponse";
                let (privileged, host_network, host_path) = (
                    self.rng.random_bool(0.6),
                    self.rng.random_bool(0.4),
                    self.rng.random_bool(0.3),
                );
                let mut obj = String::from("{\"kind\":\"Pod\",\"apiVersion\":\"v1\",\"metadata\":{\"generateName\":\"node-agent-\",\"labels\":{\"app\":\"node-agent\"}},\"spec\":{");
                if host_network {
                    obj.push_str("\"hostNetwork\":true,\"hostPID\":true,");
                }
                if host_path {
                    obj.push_str("\"volumes\":[{\"name\":\"root\",\"hostPath\":{\"path\":\"/\",\"type\":\"\"}}],");
                }
                let _ = write!(obj, "\"containers\":[{{\"name\":\"agent\",\"image\":\"registry.example.com/node-agent:1.{}\",\"securityContext\":{{\"privileged\":{privileged}}}}}]}}}}", self.rng.random_range(0..30));
                e.request_object = Some(obj);
            }
            Activity::RbacChange => {
                set_person(&mut e, &mut self.rng);
                let (res, ns_ok) = [
                    ("clusterrolebindings", false),
                    ("rolebindings", true),
                    ("clusterroles", false),
                    ("roles", true),
                ][self.rng.random_range(0..4)];
                (group, version, resource, namespaced) =
                    ("rbac.authorization.k8s.io", "v1", res, ns_ok);
                e.verb = ["create", "update", "patch", "delete"][self.rng.random_range(0..4)];
                e.code = if e.verb == "create" { 201 } else { 200 };
                e.level = "RequestResponse";
                e.request_object = Some(format!("{{\"kind\":\"{}\",\"apiVersion\":\"rbac.authorization.k8s.io/v1\",\"metadata\":{{\"name\":\"tmp-debug-{}\"}},\"roleRef\":{{\"apiGroup\":\"rbac.authorization.k8s.io\",\"kind\":\"ClusterRole\",\"name\":\"cluster-admin\"}},\"subjects\":[{{\"kind\":\"User\",\"name\":\"{person}\"}}]}}", kind_of(res), self.rng.random_range(1..99)));
            }
        }
        if e.uri.is_empty() {
            e.group = group;
            e.version = version;
            e.resource = resource;
            if namespaced && e.namespace.is_empty() {
                e.namespace = ns;
            }
            let single = !matches!(e.verb, "list" | "watch" | "create" | "deletecollection")
                || !e.subresource.is_empty();
            if single && e.name.is_empty() {
                e.name = self.object_name(resource);
            }
            let mut uri = if group.is_empty() {
                format!("/api/{version}")
            } else {
                format!("/apis/{group}/{version}")
            };
            if !e.namespace.is_empty() {
                let _ = write!(uri, "/namespaces/{}", e.namespace);
            }
            let _ = write!(uri, "/{resource}");
            if !e.name.is_empty() {
                let _ = write!(uri, "/{}", e.name);
            }
            if !e.subresource.is_empty() {
                let _ = write!(uri, "/{}", e.subresource);
            }
            match (e.verb, e.subresource) {
                ("watch", _) => {
                    let _ = write!(uri, "?allowWatchBookmarks=true&resourceVersion={}&timeout=9m{}s&timeoutSeconds={}&watch=true", self.rng.random_range(1_000_000..90_000_000u32), self.rng.random_range(0..60), self.rng.random_range(300..600));
                }
                ("list", _) => {
                    let _ = write!(uri, "?limit=500&resourceVersion=0");
                }
                (_, "exec") => {
                    let cmd = [
                        ("sh", ""),
                        ("bash", ""),
                        ("cat", "&command=%2Fetc%2Fpasswd"),
                        ("env", ""),
                        ("psql", "&command=-U&command=postgres"),
                    ][self.rng.random_range(0..5)];
                    let _ = write!(
                        uri,
                        "?command={}{}&container=app&stdin=true&stdout=true&tty=true",
                        cmd.0, cmd.1
                    );
                }
                (_, "attach") => uri.push_str("?container=app&stderr=true&stdin=true&stdout=true"),
                ("patch", "") if e.user.contains('@') => {
                    uri.push_str("?fieldManager=kubectl-client-side-apply&fieldValidation=Strict")
                }
                _ => {}
            }
            e.uri = uri;
        }
        if e.code == 403 {
            e.status_message = format!(
                "{} is forbidden: User \"{}\" cannot {} resource \"{}\" in API group \"{}\"{}",
                if e.name.is_empty() {
                    e.resource.to_string()
                } else {
                    format!("{} \"{}\"", e.resource, e.name)
                },
                e.user,
                e.verb,
                e.resource,
                e.group,
                if e.namespace.is_empty() {
                    String::new()
                } else {
                    format!(" in the namespace \"{}\"", e.namespace)
                }
            );
        }
        e
    }

    /// Writes `e` as one line of the API server's audit JSON, field by field in the API
    /// server's order (a serializer would allocate a map per event): one statement a field,
    /// hence the length.
    fn write(&self, id: &str, e: &Event, out: &mut Vec<u8>) {
        use std::io::Write as _;
        out.extend_from_slice(
            b"{\"kind\":\"Event\",\"apiVersion\":\"audit.k8s.io/v1\",\"level\":\"",
        );
        out.extend_from_slice(e.level.as_bytes());
        out.extend_from_slice(b"\",\"auditID\":\"");
        out.extend_from_slice(id.as_bytes());
        out.extend_from_slice(b"\",\"stage\":\"");
        out.extend_from_slice(e.stage.as_bytes());
        out.extend_from_slice(b"\",\"requestURI\":");
        push_json_str(out, &e.uri);
        out.extend_from_slice(b",\"verb\":\"");
        out.extend_from_slice(e.verb.as_bytes());
        out.extend_from_slice(b"\",\"user\":{\"username\":");
        push_json_str(out, &e.user);
        if e.user.starts_with("system:serviceaccount:") || e.user.starts_with("system:node:") {
            out.extend_from_slice(b",\"uid\":\"");
            // Stable per user: derived from the name.
            let h = e.user.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x1000_0000_01b3)
            });
            let _ = write!(
                out,
                "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
                h >> 32,
                h & 0xffff,
                (h >> 16) & 0xfff,
                (h >> 4) & 0xfff,
                h & 0xffff_ffff_ffff
            );
            out.push(b'"');
        }
        out.extend_from_slice(b",\"groups\":[");
        for (i, g) in e.groups.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            push_json_str(out, g);
        }
        out.extend_from_slice(b"]}");
        if let Some((user, groups)) = &e.impersonated {
            out.extend_from_slice(b",\"impersonatedUser\":{\"username\":");
            push_json_str(out, user);
            out.extend_from_slice(b",\"groups\":[");
            for (i, g) in groups.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                push_json_str(out, g);
            }
            out.extend_from_slice(b"]}");
        }
        out.extend_from_slice(b",\"sourceIPs\":[");
        push_json_str(out, &e.source_ip);
        out.extend_from_slice(b"],\"userAgent\":");
        push_json_str(out, &e.agent);
        if !e.resource.is_empty() {
            out.extend_from_slice(b",\"objectRef\":{\"resource\":\"");
            out.extend_from_slice(e.resource.as_bytes());
            out.push(b'"');
            if !e.namespace.is_empty() {
                out.extend_from_slice(b",\"namespace\":");
                push_json_str(out, &e.namespace);
            }
            if !e.name.is_empty() {
                out.extend_from_slice(b",\"name\":");
                push_json_str(out, &e.name);
            }
            if !e.group.is_empty() {
                out.extend_from_slice(b",\"apiGroup\":\"");
                out.extend_from_slice(e.group.as_bytes());
                out.push(b'"');
            }
            out.extend_from_slice(b",\"apiVersion\":\"");
            out.extend_from_slice(e.version.as_bytes());
            out.push(b'"');
            if !e.subresource.is_empty() {
                out.extend_from_slice(b",\"subresource\":\"");
                out.extend_from_slice(e.subresource.as_bytes());
                out.push(b'"');
            }
            out.push(b'}');
        }
        if e.stage != "RequestReceived" {
            let _ = write!(
                out,
                ",\"responseStatus\":{{\"metadata\":{{}},\"code\":{}",
                e.code
            );
            if e.code >= 400 {
                out.extend_from_slice(b",\"status\":\"Failure\",\"message\":");
                push_json_str(out, &e.status_message);
                let reason = match e.code {
                    403 => "Forbidden",
                    409 => "Conflict",
                    _ => "InternalError",
                };
                let _ = write!(out, ",\"reason\":\"{reason}\"");
            }
            out.push(b'}');
        }
        if let Some(obj) = &e.request_object {
            out.extend_from_slice(b",\"requestObject\":");
            out.extend_from_slice(obj.as_bytes());
        }
        out.extend_from_slice(b",\"requestReceivedTimestamp\":\"");
        Civil::from_nanos(e.received_ns).rfc3339_micros(out);
        out.extend_from_slice(b"\",\"stageTimestamp\":\"");
        let stage_ns = if e.stage == "RequestReceived" {
            e.received_ns
        } else {
            e.received_ns + e.latency_ns
        };
        Civil::from_nanos(stage_ns).rfc3339_micros(out);
        out.extend_from_slice(b"\",\"annotations\":{\"authorization.k8s.io/decision\":\"");
        out.extend_from_slice(e.decision.as_bytes());
        out.extend_from_slice(b"\",\"authorization.k8s.io/reason\":");
        push_json_str(out, &e.reason);
        if e.level == "RequestResponse" && e.resource == "pods" {
            out.extend_from_slice(
                b",\"pod-security.kubernetes.io/enforce-policy\":\"privileged:latest\"",
            );
        }
        out.extend_from_slice(b"}}\n");
    }
}

fn kind_of(resource: &str) -> &'static str {
    match resource {
        "pods" => "Pod",
        "deployments" => "Deployment",
        "configmaps" => "ConfigMap",
        "services" => "Service",
        "clusterrolebindings" => "ClusterRoleBinding",
        "rolebindings" => "RoleBinding",
        "clusterroles" => "ClusterRole",
        "roles" => "Role",
        "statefulsets" => "StatefulSet",
        "daemonsets" => "DaemonSet",
        "ingresses" => "Ingress",
        _ => "Object",
    }
}

impl LineSource for AuditGenerator {
    fn next_line(&mut self, out: &mut Vec<u8>) {
        if let Some((id, event)) = self.pending.take() {
            self.write(&id, &event, out);
            return;
        }
        let event = self.build();
        let id = uuid(&mut self.rng);
        // A tenth of mutating requests also log their RequestReceived stage first.
        if matches!(event.verb, "create" | "update" | "patch" | "delete")
            && self.rng.random_bool(0.1)
        {
            let mut first = event.clone();
            first.stage = "RequestReceived";
            first.level = "Metadata";
            first.request_object = None;
            self.write(&id, &first, out);
            self.pending = Some((id, event));
            return;
        }
        self.write(&id, &event, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(n: usize) -> Vec<String> {
        let mut g = AuditGenerator::new(42, 1000.0);
        let mut out = Vec::new();
        for _ in 0..n {
            g.next_line(&mut out);
        }
        String::from_utf8(out)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn every_event_parses_with_the_model() {
        let lines = lines(5000);
        assert_eq!(lines.len(), 5000);
        let mut forbidden = 0;
        let mut secrets = 0;
        let mut exec = 0;
        for line in &lines {
            let event = trawl_model::audit::parse_audit_line(line.as_bytes())
                .unwrap_or_else(|e| panic!("{e}: {line}"));
            if event.status_code == Some(403) {
                forbidden += 1;
                assert_eq!(event.decision, "forbid");
            }
            if event.resource == "secrets" {
                secrets += 1;
            }
            if event.subresource == "exec" {
                exec += 1;
            }
        }
        assert!(forbidden > 50, "{forbidden}");
        assert!(secrets > 100, "{secrets}");
        assert!(exec > 5, "{exec}");
    }

    #[test]
    fn same_seed_same_bytes() {
        assert_eq!(lines(200), lines(200));
    }
}
