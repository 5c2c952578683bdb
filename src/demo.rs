//! `trawl standalone --demo`: a synthetic cluster under the data directory, so that a newcomer
//! has live data to search at once. Pods in several namespaces write CRI log files (JSON and
//! text logs, partial lines, stack traces, restarts, rotations) that the real collector tails,
//! and an "API server" posts audit events to the real webhook and Kubernetes Events to the
//! `events` stream's ingest endpoint.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use serde_json::{json, Value};
use trawl_config::Config;
use trawl_model::Timestamp;

/// Where the demo's pods write, under the data directory.
pub fn pods_dir(config: &Config) -> PathBuf {
    config.data_dir.join("demo").join("pods")
}

/// Lines a file takes before the demo rotates it (by rename, as the kubelet does).
const ROTATE_LINES: u64 = 400;
/// Records written at start, spread over the last hour, so that searches find data at once.
const BACKFILL: u64 = 600;

/// A small deterministic generator (xorshift): the demo needs variety, not security.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

#[derive(Clone, Copy)]
enum Kind {
    JsonWeb,
    JavaText,
    Nginx,
    Klog,
}

struct Pod {
    namespace: &'static str,
    name: &'static str,
    uid: &'static str,
    container: &'static str,
    kind: Kind,
    restart: u32,
    lines: u64,
}

impl Pod {
    fn dir(&self, root: &Path) -> PathBuf {
        root.join(format!("{}_{}_{}", self.namespace, self.name, self.uid))
            .join(self.container)
    }

    fn file(&self, root: &Path) -> PathBuf {
        self.dir(root).join(format!("{}.log", self.restart))
    }
}

fn pods() -> Vec<Pod> {
    let pod = |namespace, name, uid, container, kind| Pod {
        namespace,
        name,
        uid,
        container,
        kind,
        restart: 0,
        lines: 0,
    };
    vec![
        pod(
            "shop",
            "web-7d9f8-x2k4p",
            "0b6f6c1e-1a2b-4c3d-9e8f-000000000001",
            "web",
            Kind::JsonWeb,
        ),
        pod(
            "shop",
            "web-7d9f8-q8m2z",
            "0b6f6c1e-1a2b-4c3d-9e8f-000000000002",
            "web",
            Kind::JsonWeb,
        ),
        pod(
            "payments",
            "checkout-5c7b9-hh2lk",
            "0b6f6c1e-1a2b-4c3d-9e8f-000000000003",
            "checkout",
            Kind::JavaText,
        ),
        pod(
            "shop",
            "nginx-ingress-6f5d-abcde",
            "0b6f6c1e-1a2b-4c3d-9e8f-000000000004",
            "controller",
            Kind::Nginx,
        ),
        pod(
            "kube-system",
            "coredns-5d78c-9xk2w",
            "0b6f6c1e-1a2b-4c3d-9e8f-000000000005",
            "coredns",
            Kind::Klog,
        ),
        pod(
            "monitoring",
            "prometheus-0",
            "0b6f6c1e-1a2b-4c3d-9e8f-000000000006",
            "prometheus",
            Kind::Klog,
        ),
    ]
}

/// Starts the synthetic cluster: a thread writing pod logs and a task posting audit events to
/// the webhook at `addr` and Kubernetes Events to its `events` stream. Both run until the
/// process exits.
pub fn start(config: &Config, addr: SocketAddr) -> anyhow::Result<()> {
    let root = pods_dir(config);
    fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
    std::thread::Builder::new()
        .name("demo-pods".into())
        .spawn(move || {
            if let Err(err) = run_pods(&root) {
                tracing::error!(%err, "demo pods stopped");
            }
        })?;
    tokio::spawn(run_api_server(addr));
    tracing::info!(
        "demo cluster started: pods write logs, the API server posts audit and Kubernetes events"
    );
    Ok(())
}

fn run_pods(root: &Path) -> std::io::Result<()> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut pods = pods();
    for pod in &pods {
        fs::create_dir_all(pod.dir(root))?;
    }
    let now = Timestamp::now().nanos();
    let hour = 3_600_000_000_000i64;
    for i in 0..BACKFILL {
        let ts = now - hour + (i as i64) * (hour / BACKFILL as i64);
        let idx = rng.below(pods.len() as u64) as usize;
        write_record(root, &mut pods[idx], &mut rng, ts)?;
    }
    loop {
        std::thread::sleep(Duration::from_millis(100));
        for _ in 0..rng.below(4) + 1 {
            let idx = rng.below(pods.len() as u64) as usize;
            write_record(root, &mut pods[idx], &mut rng, Timestamp::now().nanos())?;
        }
    }
}

fn write_record(root: &Path, pod: &mut Pod, rng: &mut Rng, ts: i64) -> std::io::Result<()> {
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(pod.file(root))?;
    let (stream, message) = message(pod.kind, rng);
    let mut out = String::new();
    for (n, line) in message.lines().enumerate() {
        let t = Timestamp(ts + n as i64 * 1000).to_rfc3339();
        // Now and then the runtime splits a long line into partial (P) fragments.
        if line.len() > 60 && rng.below(5) == 0 {
            let cut = line
                .char_indices()
                .map(|(i, _)| i)
                .find(|&i| i >= line.len() / 2)
                .unwrap_or(0);
            out.push_str(&format!("{t} {stream} P {}\n", &line[..cut]));
            out.push_str(&format!("{t} {stream} F {}\n", &line[cut..]));
        } else {
            out.push_str(&format!("{t} {stream} F {line}\n"));
        }
    }
    file.write_all(out.as_bytes())?;
    pod.lines += 1;
    if pod.lines.is_multiple_of(ROTATE_LINES) {
        // Rename rotation, as the kubelet does; now and then the container restarts instead.
        let rotated = pod.dir(root).join(format!(
            "{}.log.{}",
            pod.restart,
            Timestamp(ts).to_rfc3339().replace(':', "")
        ));
        fs::rename(pod.file(root), rotated)?;
        if rng.below(4) == 0 {
            pod.restart += 1;
        }
        File::create(pod.file(root))?;
        remove_old_rotations(&pod.dir(root))?;
    }
    Ok(())
}

/// Keeps the demo's disk use bounded: at most a few rotated files per container.
fn remove_old_rotations(dir: &Path) -> std::io::Result<()> {
    let mut rotated: Vec<PathBuf> = fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().contains(".log."))
        .collect();
    rotated.sort();
    while rotated.len() > 3 {
        let _ = fs::remove_file(rotated.remove(0));
    }
    Ok(())
}

fn message(kind: Kind, rng: &mut Rng) -> (&'static str, String) {
    const PATHS: &[&str] = &[
        "/api/cart",
        "/api/products",
        "/api/checkout",
        "/healthz",
        "/api/users/42",
    ];
    const METHODS: &[&str] = &["GET", "GET", "GET", "POST", "PUT", "DELETE"];
    match kind {
        Kind::JsonWeb => {
            let status = *rng.pick(&[200, 200, 200, 201, 304, 404, 500, 503]);
            let level = if status >= 500 { "error" } else if status >= 400 { "warn" } else { "info" };
            let msg = if status >= 500 { "upstream connection reset by peer" } else { "request handled" };
            let line = json!({
                "level": level, "msg": msg, "method": rng.pick(METHODS), "path": rng.pick(PATHS),
                "status": status, "latency_ms": rng.below(900) + 1,
                "trace_id": format!("{:032x}", rng.next() as u128 * 7919),
            });
            ("stdout", line.to_string())
        }
        Kind::JavaText => {
            if rng.below(8) == 0 {
                (
                    "stderr",
                    "2026-11-25 10:15:00,123 ERROR [http-nio-8080-exec-3] c.s.CheckoutService - payment failed: timeout after 3000 ms\n\
                     java.net.SocketTimeoutException: Read timed out\n\
                     \tat java.base/java.net.SocketInputStream.read(SocketInputStream.java:168)\n\
                     \tat com.shop.payments.Client.charge(Client.java:88)\n\
                     Caused by: java.io.IOException: connection reset"
                        .to_string(),
                )
            } else {
                let level = *rng.pick(&["INFO", "INFO", "INFO", "WARN", "DEBUG"]);
                ("stdout", format!("2026-11-25 10:15:00,123 {level} [main] c.s.CheckoutService - order {} processed in {} ms", rng.below(100_000), rng.below(400)))
            }
        }
        Kind::Nginx => (
            "stdout",
            format!(
                "10.0.{}.{} - - [25/Nov/2026:10:15:00 +0000] \"{} {} HTTP/1.1\" {} {} \"-\" \"Mozilla/5.0\"",
                rng.below(255),
                rng.below(255),
                rng.pick(METHODS),
                rng.pick(PATHS),
                rng.pick(&[200, 200, 301, 404, 502]),
                rng.below(20_000)
            ),
        ),
        Kind::Klog => {
            let (sev, text) = *rng.pick(&[
                ("I", "reflector.go:255] Listing and watching *v1.Pod from k8s.io/client-go"),
                ("I", "plugin/reload: Running configuration SHA512 = 591cf328"),
                ("W", "reflector.go:424] watch of *v1.Endpoints ended with: too old resource version"),
                ("E", "controller.go:114] error syncing 'shop/web': Operation cannot be fulfilled"),
            ]);
            ("stderr", format!("{sev}1125 10:15:00.123456       1 {text}"))
        }
    }
}

async fn run_api_server(addr: SocketAddr) {
    let client = reqwest::Client::new();
    let url = format!("http://{addr}/api/v1/audit/webhook");
    let events_url = format!("http://{addr}/api/v1/events/ingest");
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut kube = KubeEvents::default();
    let now = Timestamp::now().nanos();
    let hour = 3_600_000_000_000i64;
    let mut seq = 0u64;
    // Backfill an hour of history, then a few events every couple of seconds.
    let history: Vec<Value> = (0..200)
        .map(|i| {
            seq += 1;
            audit_event(&mut rng, seq, now - hour + i * (hour / 200))
        })
        .collect();
    post(&client, &url, history).await;
    let history: Vec<Value> = (0..60)
        .map(|i| kube.next(&mut rng, now - hour + i * (hour / 60)))
        .collect();
    post_kube_events(&client, &events_url, history).await;
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let events: Vec<Value> = (0..rng.below(5) + 1)
            .map(|_| {
                seq += 1;
                audit_event(&mut rng, seq, Timestamp::now().nanos())
            })
            .collect();
        post(&client, &url, events).await;
        if rng.below(3) == 0 {
            let event = kube.next(&mut rng, Timestamp::now().nanos());
            post_kube_events(&client, &events_url, vec![event]).await;
        }
    }
}

/// The demo's Kubernetes Events: what its pods and nodes go through, each Event object updated
/// in place (its count grows, a new resourceVersion) when the same thing happens again.
#[derive(Default)]
struct KubeEvents {
    /// Per kind of occurrence below: how many times it happened so far, and when first.
    counts: Vec<u64>,
    first: Vec<Option<i64>>,
    resource_version: u64,
}

impl KubeEvents {
    /// namespace, kind, name, container, reason, type, component, message.
    const KINDS: [[&'static str; 8]; 8] = [
        ["shop", "Pod", "web-7d9f8-x2k4p", "web", "Pulled", "Normal", "kubelet", "Container image \"registry.example.com/shop/web:2.4.1\" already present on machine"],
        ["shop", "Pod", "web-7d9f8-q8m2z", "web", "Unhealthy", "Warning", "kubelet", "Readiness probe failed: HTTP probe failed with statuscode: 503"],
        ["payments", "Pod", "checkout-5c7b9-hh2lk", "checkout", "BackOff", "Warning", "kubelet", "Back-off restarting failed container checkout in pod checkout-5c7b9-hh2lk_payments"],
        ["payments", "Pod", "checkout-5c7b9-hh2lk", "checkout", "Killing", "Normal", "kubelet", "Container checkout failed liveness probe, will be restarted"],
        ["monitoring", "Pod", "prometheus-0", "prometheus", "FailedScheduling", "Warning", "default-scheduler", "0/12 nodes are available: 3 Insufficient memory, 9 node(s) didn't match pod anti-affinity rules."],
        ["shop", "Deployment", "web", "", "ScalingReplicaSet", "Normal", "deployment-controller", "Scaled up replica set web-7d9f8 to 2"],
        ["", "Node", "node-2", "", "NodeHasDiskPressure", "Warning", "kubelet", "Node node-2 status is now: NodeHasDiskPressure"],
        ["kube-system", "Pod", "coredns-5d78c-9xk2w", "coredns", "Pulling", "Normal", "kubelet", "Pulling image \"registry.k8s.io/coredns/coredns:v1.11.1\""],
    ];

    /// The next update, at `ts`: a core v1 Event as `kubectl get events -o json` lists it.
    fn next(&mut self, rng: &mut Rng, ts: i64) -> Value {
        self.counts.resize(Self::KINDS.len(), 0);
        self.first.resize(Self::KINDS.len(), None);
        let i = rng.below(Self::KINDS.len() as u64) as usize;
        let [namespace, kind, name, container, reason, event_type, component, message] =
            Self::KINDS[i];
        self.counts[i] += 1;
        let first = *self.first[i].get_or_insert(ts);
        self.resource_version += 1;
        let mut object = json!({"kind": kind, "name": name, "uid": format!("demo-{kind}-{name}")});
        if !namespace.is_empty() {
            object["namespace"] = json!(namespace);
        }
        if !container.is_empty() {
            object["fieldPath"] = json!(format!("spec.containers{{{container}}}"));
        }
        let host = if component == "kubelet" { "node-2" } else { "" };
        json!({
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": format!("{name}.demo{i}"),
                "namespace": if namespace.is_empty() { "default" } else { namespace },
                "uid": format!("demo-event-{i}"),
                "resourceVersion": self.resource_version.to_string(),
            },
            "involvedObject": object,
            "reason": reason,
            "message": message,
            "type": event_type,
            "source": {"component": component, "host": host},
            "count": self.counts[i],
            "firstTimestamp": Timestamp(first).to_rfc3339(),
            "lastTimestamp": Timestamp(ts).to_rfc3339(),
        })
    }
}

async fn post_kube_events(client: &reqwest::Client, url: &str, events: Vec<Value>) {
    let body: String = events.iter().map(|e| format!("{e}\n")).collect();
    if let Err(err) = client.post(url).body(body).send().await {
        tracing::warn!(%err, "demo API server could not post Kubernetes events");
    }
}

async fn post(client: &reqwest::Client, url: &str, items: Vec<Value>) {
    let body = json!({"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": items});
    if let Err(err) = client.post(url).json(&body).send().await {
        tracing::warn!(%err, "demo API server could not post audit events");
    }
}

fn audit_event(rng: &mut Rng, seq: u64, ts: i64) -> Value {
    struct Who(&'static str, &'static [&'static str], &'static str);
    let people = [
        Who(
            "alice@example.com",
            &["devops", "system:authenticated"],
            "kubectl/v1.31.0",
        ),
        Who(
            "bob@example.com",
            &["developers", "system:authenticated"],
            "kubectl/v1.30.2",
        ),
        Who(
            "system:serviceaccount:kube-system:replicaset-controller",
            &["system:serviceaccounts"],
            "kube-controller-manager/v1.31.0",
        ),
        Who("system:kube-scheduler", &[], "kube-scheduler/v1.31.0"),
        Who(
            "system:anonymous",
            &["system:unauthenticated"],
            "curl/8.5.0",
        ),
    ];
    let who = rng.pick(&people);
    let (verb, resource, subresource, namespace, name, code) = *rng.pick(&[
        ("get", "secrets", "", "payments", "db-credentials", 200),
        ("list", "pods", "", "shop", "", 200),
        ("watch", "pods", "", "", "", 200),
        ("delete", "deployments", "", "shop", "web", 200),
        ("create", "pods", "exec", "shop", "web-7d9f8-x2k4p", 101),
        ("get", "secrets", "", "kube-system", "bootstrap-token", 403),
        ("patch", "deployments", "", "payments", "checkout", 200),
        ("create", "clusterrolebindings", "", "", "ops-admin", 201),
        ("list", "nodes", "", "", "", 403),
    ]);
    let uri = match (subresource, namespace.is_empty()) {
        ("exec", _) => format!("/api/v1/namespaces/{namespace}/pods/{name}/exec?command=sh&command=-c&command=ls&container=web"),
        (_, true) => format!("/api/v1/{resource}"),
        (_, false) => format!("/api/v1/namespaces/{namespace}/{resource}/{name}"),
    };
    let decision = if code == 403 { "forbid" } else { "allow" };
    let mut object_ref = json!({"resource": resource, "apiVersion": "v1"});
    if !namespace.is_empty() {
        object_ref["namespace"] = json!(namespace);
    }
    if !name.is_empty() {
        object_ref["name"] = json!(name);
    }
    if !subresource.is_empty() {
        object_ref["subresource"] = json!(subresource);
    }
    let stage = if subresource == "exec" {
        "ResponseStarted"
    } else {
        "ResponseComplete"
    };
    json!({
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": "Metadata",
        "auditID": format!("demo-{seq:08x}"),
        "stage": stage,
        "requestURI": uri,
        "verb": verb,
        "user": {"username": who.0, "groups": who.1},
        "sourceIPs": [format!("10.0.0.{}", 10 + rng.below(20))],
        "userAgent": who.2,
        "objectRef": object_ref,
        "responseStatus": {"code": code},
        "requestReceivedTimestamp": Timestamp(ts).to_rfc3339(),
        "stageTimestamp": Timestamp(ts + (rng.below(50) as i64 + 1) * 1_000_000).to_rfc3339(),
        "annotations": {
            "authorization.k8s.io/decision": decision,
            "authorization.k8s.io/reason": if code == 403 { "RBAC: access denied" } else { "RBAC: allowed by ClusterRoleBinding" },
        },
    })
}
