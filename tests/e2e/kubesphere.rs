//! KubeSphere's ks-apiserver as an Elasticsearch client of the real binary: documents in the
//! shapes KubeSphere's writers give them (Fluent Bit's `es` output with the `kubernetes`
//! filter into `ks-logstash-log-<date>`, kube-auditing's events into
//! `ks-logstash-auditing-<date>`, the events exporter's core v1 `Event` objects into
//! `ks-logstash-events-<date>`) sent with `_bulk`, then the exact request bodies of
//! ks-apiserver's logging, auditing and events clients (`pkg/simple/client/{logging,auditing,
//! events}/elasticsearch`, v3.4) on the daily index lists they resolve, one test per client
//! method; counts, histogram buckets, sorted pages and `_source` shapes against a ground truth
//! computed here. Also: the version `GET /` reports to its version probe, `hits.total` by
//! client major, what is refused (scroll, audit fields Trawl does not keep) and a
//! namespace-scoped token on these paths.

use std::collections::BTreeSet;
use std::time::Duration;

use reqwest::blocking::{Client, RequestBuilder};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::{json_of, wait_until, Server, SEARCHABLE_TIMEOUT};

/// 2026-01-14T00:00:00Z, in seconds: the fixtures span the night to the 15th (two daily
/// indices).
const DAY_14: i64 = 1_768_348_800;
/// The first log line: 2026-01-14T23:00:00Z.
const START: i64 = DAY_14 + 23 * 3600;
const MINUTE: i64 = 60;
const LOGS: usize = 120;
const EVENTS: usize = 60;
/// Kubernetes Events (the events stream), besides the audit events above.
const KEVENTS: usize = 48;

/// What ks-apiserver's go-elasticsearch v7 client sends as `User-Agent`.
const UA_V7: &str = "go-elasticsearch/7.3.0 (linux amd64; Go 1.20.14)";
/// The v6 client's, which ks-apiserver also uses to probe the version.
const UA_V6: &str = "go-elasticsearch/6.8.2 (linux amd64; Go 1.20.14)";

// --- time formatting (a two-day window, no date library in the tests) ----------------------

/// `secs.nanos` as RFC 3339 at `offset_hours` (`Z` for 0), nine fractional digits when
/// `nanos` is given, none otherwise.
fn rfc3339(secs: i64, nanos: Option<u32>, offset_hours: i64) -> String {
    let local = secs + offset_hours * 3600;
    let day = (local - DAY_14).div_euclid(86_400);
    let of_day = (local - DAY_14).rem_euclid(86_400);
    let frac = nanos.map_or(String::new(), |n| format!(".{n:09}"));
    let zone = if offset_hours == 0 {
        "Z".to_string()
    } else {
        format!("{:+03}:00", offset_hours)
    };
    format!(
        "2026-01-{:02}T{:02}:{:02}:{:02}{frac}{zone}",
        14 + day,
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60
    )
}

/// The daily index names ks-apiserver's `ResolveIndexNames` searches for `[start, end]`:
/// `<prefix>-yyyy.MM.dd` of every UTC day from `end` back to `start`.
fn daily_indices(prefix: &str, start: i64, end: i64) -> String {
    let first = (start - DAY_14).div_euclid(86_400);
    let last = (end - DAY_14).div_euclid(86_400);
    (first..=last)
        .rev()
        .map(|d| format!("{prefix}-2026.01.{:02}", 14 + d))
        .collect::<Vec<_>>()
        .join(",")
}

// --- the fixtures, and their ground truth --------------------------------------------------

/// A pod of the log fixture: name, namespace, container, node.
const PODS: [(&str, &str, &str, &str); 6] = [
    ("web-5d8f7b9c6d-x2x4k", "demo", "nginx", "node-1"),
    ("web-5d8f7b9c6d-qz7mn", "demo", "nginx", "node-2"),
    ("db-0", "default", "postgres", "node-1"),
    ("db-1", "default", "postgres", "node-2"),
    (
        "agent-7kq2w",
        "kubesphere-logging-system",
        "fluent-bit",
        "node-1",
    ),
    ("webhook-server-abc12", "demo", "webhook", "node-2"),
];

/// One log line as KubeSphere's Fluent Bit ships it.
#[derive(Debug, Clone)]
struct Log {
    secs: i64,
    nanos: u32,
    pod: &'static str,
    namespace: &'static str,
    container: &'static str,
    node: &'static str,
    docker_id: String,
    log: String,
}

fn logs() -> Vec<Log> {
    (0..LOGS)
        .map(|i| {
            let (pod, namespace, container, node) = PODS[i % PODS.len()];
            // `db-0`'s container restarts half-way: a second container id.
            let restart = usize::from(pod == "db-0" && i >= LOGS / 2);
            let log = match i % 4 {
                0 => "GET /healthz HTTP/1.1 200".to_string(),
                1 => "connection refused: dial tcp 10.0.0.5:5432".to_string(),
                2 => "Warning: disk pressure on node".to_string(),
                _ => format!("request {i} served in {i}ms"),
            };
            Log {
                secs: START + i as i64 * MINUTE,
                nanos: 1000 * i as u32 + 7,
                pod,
                namespace,
                container,
                node,
                docker_id: format!("{:064x}", (i % PODS.len()) * 10 + restart),
                log,
            }
        })
        .collect()
}

impl Log {
    fn time(&self) -> String {
        rfc3339(self.secs, Some(self.nanos), 0)
    }

    fn index(&self) -> String {
        daily_indices("ks-logstash-log", self.secs, self.secs)
    }

    /// The document Fluent Bit's `es` output sends: the CRI parser's `log` (with its newline)
    /// and `time`, the `kubernetes` filter's metadata, and `@timestamp` (`Time_Key`, ms).
    fn document(&self) -> Value {
        json!({
            "@timestamp": rfc3339(self.secs, Some(self.nanos / 1_000_000 * 1_000_000), 0),
            "log": format!("{}\n", self.log),
            "stream": "stdout",
            "time": self.time(),
            "kubernetes": {
                "pod_name": self.pod,
                "namespace_name": self.namespace,
                "pod_id": format!("uid-{}", self.pod),
                "labels": {"app": self.pod.split('-').next().unwrap()},
                "host": self.node,
                "container_name": self.container,
                "docker_id": self.docker_id,
                "container_image": format!("docker.io/library/{}:1", self.container),
            }
        })
    }

    /// `_source` as ks-apiserver reads it back (Fluent Bit's names; the line's trailing
    /// newline is not kept).
    fn source(&self) -> Value {
        json!({
            "log": self.log,
            "stream": "stdout",
            "time": self.time(),
            "kubernetes": {
                "pod_name": self.pod,
                "namespace_name": self.namespace,
                "pod_id": format!("uid-{}", self.pod),
                "labels": {"app": self.pod.split('-').next().unwrap()},
                "host": self.node,
                "container_name": self.container,
                "docker_id": self.docker_id,
                "container_image": format!("docker.io/library/{}:1", self.container),
            }
        })
    }
}

/// One audit event as KubeSphere's kube-auditing writes it (its Go struct without JSON tags).
#[derive(Debug, Clone)]
struct Audit {
    secs: i64,
    id: String,
    namespace: &'static str,
    verb: &'static str,
    level: &'static str,
    user: &'static str,
    group: &'static str,
    ip: String,
    resource: &'static str,
    subresource: &'static str,
    name: String,
    code: i64,
}

fn audits() -> Vec<Audit> {
    (0..EVENTS)
        .map(|i| Audit {
            secs: START + i as i64 * 2 * MINUTE + 30,
            id: format!("0b6f2c1e-0000-4000-8000-{i:012}"),
            namespace: ["demo", "default", "kube-system"][i % 3],
            verb: ["get", "list", "create", "delete", "patch"][i % 5],
            level: ["Metadata", "Request", "RequestResponse"][(i / 3) % 3],
            user: [
                "admin",
                "alice",
                "system:serviceaccount:kube-system:generic-garbage-collector",
            ][(i / 2) % 3],
            group: ["dev-team", "ops-team"][i % 2],
            ip: format!("10.0.{}.{}", i % 4, 10 + i),
            resource: ["pods", "deployments", "secrets", "configmaps"][i % 4],
            subresource: if i % 6 == 0 { "log" } else { "" },
            name: format!("obj-{}", i % 7),
            code: [200, 201, 403, 404, 200][i % 5],
        })
        .collect()
}

impl Audit {
    fn time(&self) -> String {
        rfc3339(self.secs, Some(0), 0)
    }

    fn index(&self) -> String {
        daily_indices("ks-logstash-auditing", self.secs, self.secs)
    }

    fn document(&self) -> Value {
        json!({
            "Devops": "",
            "Workspace": "system-workspace",
            "Cluster": "",
            "Message": "",
            "Level": self.level,
            "AuditID": self.id,
            "Stage": "ResponseComplete",
            "RequestURI": format!("/api/v1/namespaces/{}/{}/{}", self.namespace, self.resource, self.name),
            "Verb": self.verb,
            "User": {"Username": self.user, "UID": format!("uid-{}", self.user), "Groups": ["system:authenticated", self.group], "Extra": null},
            "ImpersonatedUser": null,
            "SourceIPs": [self.ip],
            "UserAgent": "kubectl/v1.28.2",
            "ObjectRef": {"Resource": self.resource, "Namespace": self.namespace, "Name": self.name,
                "UID": "", "APIGroup": "", "APIVersion": "v1", "ResourceVersion": "", "Subresource": self.subresource},
            "ResponseStatus": {"metadata": {}, "status": if self.code >= 400 { "Failure" } else { "" }, "code": self.code},
            "RequestObject": null,
            "ResponseObject": null,
            "RequestReceivedTimestamp": rfc3339(self.secs, Some(0), 0).replace(".000000000", ".000000"),
            "StageTimestamp": rfc3339(self.secs, Some(5_000_000), 0).replace("005000000", "005000"),
            "Annotations": null
        })
    }
}

/// One Kubernetes Event as KubeSphere's events exporter writes it: the core v1 `Event`.
#[derive(Debug, Clone)]
struct KEvent {
    /// `lastTimestamp`.
    secs: i64,
    count: i64,
    /// The regarding object's namespace; empty for a cluster-scoped one (a Node).
    namespace: &'static str,
    kind: &'static str,
    name: &'static str,
    reason: &'static str,
    etype: &'static str,
    message: String,
    uid: String,
}

/// The objects the events are about: namespace, kind, name.
const OBJECTS: [(&str, &str, &str); 8] = [
    ("demo", "Pod", "web-5d8f7b9c6d-x2x4k"),
    ("demo", "Pod", "web-5d8f7b9c6d-qz7mn"),
    ("default", "Pod", "db-0"),
    ("default", "StatefulSet", "db"),
    ("demo", "Deployment", "web"),
    ("demo", "ReplicaSet", "web-5d8f7b9c6d"),
    ("", "Node", "node-1"),
    ("kube-system", "Pod", "coredns-7db6d8ff4d-abcde"),
];

fn kevents() -> Vec<KEvent> {
    (0..KEVENTS)
        .map(|i| {
            let (namespace, kind, name) = OBJECTS[i % OBJECTS.len()];
            let (reason, etype, message) = match (kind, i % 4) {
                ("Pod", 0) => (
                    "BackOff",
                    "Warning",
                    format!("Back-off restarting failed container app in pod {name}"),
                ),
                ("Pod", 1) => (
                    "Unhealthy",
                    "Warning",
                    "Liveness probe failed: HTTP probe failed with statuscode: 500".to_string(),
                ),
                ("Pod", 2) => (
                    "Pulled",
                    "Normal",
                    "Container image \"nginx:1.25\" already present on machine".to_string(),
                ),
                ("Pod", _) => (
                    "FailedScheduling",
                    "Warning",
                    "0/12 nodes are available: 12 Insufficient memory.".to_string(),
                ),
                ("Deployment", _) => (
                    "ScalingReplicaSet",
                    "Normal",
                    "Scaled up replica set web-5d8f7b9c6d to 2".to_string(),
                ),
                ("Node", _) => (
                    "NodeNotReady",
                    "Normal",
                    "Node node-1 status is now: NodeNotReady".to_string(),
                ),
                _ => (
                    "SuccessfulCreate",
                    "Normal",
                    format!("create Pod {name}-{i} in {kind} {name} successful"),
                ),
            };
            KEvent {
                secs: START + i as i64 * 3 * MINUTE + 15,
                count: 1 + (i % 4) as i64,
                namespace,
                kind,
                name,
                reason,
                etype,
                message,
                uid: format!("e0e0e0e0-0000-4000-8000-{i:012}"),
            }
        })
        .collect()
}

impl KEvent {
    fn index(&self) -> String {
        daily_indices("ks-logstash-events", self.secs, self.secs)
    }

    fn last(&self) -> String {
        rfc3339(self.secs, None, 0)
    }

    fn first(&self) -> String {
        rfc3339(self.secs - (self.count - 1) * MINUTE, None, 0)
    }

    fn object_uid(&self) -> String {
        format!("uid-{}-{}", self.kind, self.name)
    }

    fn component(&self) -> &'static str {
        match self.kind {
            "Pod" if self.reason == "FailedScheduling" => "default-scheduler",
            "Pod" => "kubelet",
            "Node" => "node-controller",
            "Deployment" => "deployment-controller",
            _ => "statefulset-controller",
        }
    }

    /// The `Event` as the exporter writes it, with the nulls and empty strings of Go's encoder.
    fn document(&self) -> Value {
        let mut object = json!({"kind": self.kind, "name": self.name, "uid": self.object_uid(),
            "apiVersion": "v1", "resourceVersion": "4242"});
        if !self.namespace.is_empty() {
            object["namespace"] = json!(self.namespace);
        }
        json!({
            "kind": "Event",
            "apiVersion": "v1",
            "metadata": {
                "name": format!("{}.{:016x}", self.name, self.secs),
                "namespace": if self.namespace.is_empty() { "default" } else { self.namespace },
                "uid": self.uid,
                "resourceVersion": format!("{}", 7000 + self.secs - START),
                "creationTimestamp": self.first(),
            },
            "involvedObject": object,
            "reason": self.reason,
            "message": self.message,
            "source": {"component": self.component(), "host": if self.component() == "kubelet" { "node-2" } else { "" }},
            "firstTimestamp": self.first(),
            "lastTimestamp": self.last(),
            "count": self.count,
            "type": self.etype,
            "eventTime": null,
            "reportingComponent": "",
            "reportingInstance": ""
        })
    }
}

// --- the server ----------------------------------------------------------------------------

fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// A request as go-elasticsearch sends it: its `User-Agent`, a JSON body.
fn es(request: RequestBuilder, agent: &str, body: &Value) -> (StatusCode, Value) {
    json_of(
        request
            .header("user-agent", agent)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .unwrap(),
    )
}

/// ks-apiserver's v7 `Search`: `POST /<indices>/_search?ignore_unavailable=true&
/// track_total_hits=true`.
fn ks_search(server: &Server, indices: &str, body: &Value) -> Value {
    let (status, answer) = ks_search_raw(server, indices, body, None);
    assert_eq!(status, StatusCode::OK, "{body} answered {answer}");
    answer
}

fn ks_search_raw(
    server: &Server,
    indices: &str,
    body: &Value,
    token: Option<&str>,
) -> (StatusCode, Value) {
    let url = server.at(&format!(
        "/api/v1/_elastic/{indices}/_search?ignore_unavailable=true&track_total_hits=true"
    ));
    es(authorized(client().post(url), token), UA_V7, body)
}

/// The tokens of a server with `[auth]`: one to write with, one to read everything with.
#[derive(Clone, Copy)]
struct Tokens {
    ingest: &'static str,
    admin: &'static str,
}

fn authorized(request: RequestBuilder, token: Option<&str>) -> RequestBuilder {
    match token {
        Some(token) => request.bearer_auth(token),
        None => request,
    }
}

/// Every fixture document as a `_bulk` item (action line, document line), as Fluent Bit sends
/// them (`_type` included): logs, audit events, Kubernetes Events.
fn bulk_items() -> Vec<(Value, Value)> {
    let mut items = Vec::new();
    for log in logs() {
        items.push((
            json!({"index": {"_index": log.index(), "_type": "_doc"}}),
            log.document(),
        ));
    }
    for audit in audits() {
        items.push((
            json!({"create": {"_index": audit.index(), "_type": "_doc"}}),
            audit.document(),
        ));
    }
    for event in kevents() {
        items.push((
            json!({"index": {"_index": event.index(), "_type": "_doc"}}),
            event.document(),
        ));
    }
    items
}

fn bulk_body<'a>(items: impl IntoIterator<Item = &'a (Value, Value)>) -> String {
    let mut body = String::new();
    for (action, document) in items {
        body.push_str(&action.to_string());
        body.push('\n');
        body.push_str(&document.to_string());
        body.push('\n');
    }
    body
}

/// The fixtures through `_bulk`, and a wait until every document counts.
fn start(extra_config: &str, tokens: Option<Tokens>) -> (tempfile::TempDir, Server) {
    let tmp = tempfile::tempdir().unwrap();
    let config = format!("[indexer]\ncommit_interval_ms = 200\n{extra_config}");
    let server = Server::start(&tmp.path().join("data"), &config);
    let items = bulk_items();
    // The first Event twice, as a relist sends it again: one document.
    let first_event = &items[LOGS + EVENTS];
    let body = bulk_body(items.iter().chain(std::iter::once(first_event)));
    let request = client()
        .post(server.at("/api/v1/_elastic/_bulk"))
        .header("content-type", "application/x-ndjson")
        .body(body);
    let (status, answer) = json_of(
        authorized(request, tokens.map(|t| t.ingest))
            .send()
            .unwrap(),
    );
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["errors"], json!(false), "{answer}");
    assert_eq!(
        answer["items"].as_array().unwrap().len(),
        LOGS + EVENTS + KEVENTS + 1
    );
    assert_eq!(
        answer["items"][0]["index"]["_index"],
        json!("ks-logstash-log-2026.01.14")
    );
    wait_for_every_document(&server, tokens.map(|t| t.admin));
    (tmp, server)
}

/// Waits until `_count` counts every fixture document on `server`.
fn wait_for_every_document(server: &Server, token: Option<&str>) {
    for (pattern, expected) in [
        ("ks-logstash-log*", LOGS),
        ("ks-logstash-auditing*", EVENTS),
        ("ks-logstash-events*", KEVENTS),
    ] {
        wait_until(
            &format!("{expected} documents in {pattern}"),
            SEARCHABLE_TIMEOUT,
            || {
                let request =
                    client().post(server.at(&format!("/api/v1/_elastic/{pattern}/_count")));
                let (_, answer) = json_of(authorized(request, token).send().unwrap());
                answer["count"] == json!(expected)
            },
        );
    }
}

// --- the request bodies of ks-apiserver's clients -------------------------------------------

/// The logging client's query (`parseToQueryPart`) for a search filter; empty parts are left
/// out as its builder leaves them out.
#[derive(Default)]
struct LogFilter {
    /// Namespace and the creation time before which its logs are hidden (`None`: Go's zero time).
    namespaces: Vec<(&'static str, Option<i64>)>,
    workloads: Vec<&'static str>,
    pods: Vec<&'static str>,
    containers: Vec<&'static str>,
    workload_search: Vec<&'static str>,
    pod_search: Vec<&'static str>,
    container_search: Vec<&'static str>,
    log_search: Vec<&'static str>,
    start: i64,
    end: i64,
}

/// Go's zero `time.Time` as JSON, which ks-apiserver sends for a namespace without creation
/// time.
const GO_ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// A workload's pods as ks-apiserver's logging client matches them (`podNameRegex`, short
/// names): a Deployment's `<w>-<rs hash>-<5>`, a StatefulSet's `<w>-<n>`, a DaemonSet's or
/// Job's `<w>-<5>`.
fn workload_regex(workload: &str) -> String {
    format!("{workload}-[bcdfghjklmnpqrstvwxz2456789]{{1,10}}-[a-z0-9]{{5}}|{workload}-[0-9]+|{workload}-[a-z0-9]{{5}}")
}

/// A `bool` whose `should` holds one `kind` clause on `field` per value, `minimum_should_match`
/// 1 (`AppendMultiShould`); `None` without values.
fn any_of(kind: &str, field: &str, values: &[&str]) -> Option<Value> {
    if values.is_empty() {
        return None;
    }
    let should: Vec<Value> = values
        .iter()
        .map(|v| json!({ kind: { field: v } }))
        .collect();
    Some(json!({"bool": {"should": should, "minimum_should_match": 1}}))
}

/// A `range` as the Go builder writes it: Go times marshalled in RFC 3339 with the server's
/// zone (here +08:00, ks-apiserver's usual Asia/Shanghai).
fn go_time(secs: i64) -> String {
    rfc3339(secs, None, 8)
}

fn log_query(f: &LogFilter) -> Value {
    let mut filter = Vec::new();
    if !f.namespaces.is_empty() {
        let should: Vec<Value> = f
            .namespaces
            .iter()
            .map(|(ns, created)| {
                let since = created.map_or(GO_ZERO_TIME.to_string(), go_time);
                json!({"bool": {"filter": [
                    {"match_phrase": {"kubernetes.namespace_name.keyword": ns}},
                    {"range": {"time": {"gte": since}}}
                ]}})
            })
            .collect();
        filter.push(json!({"bool": {"should": should, "minimum_should_match": 1}}));
    }
    if !f.workloads.is_empty() {
        let should: Vec<Value> = f
            .workloads
            .iter()
            .map(|w| json!({"regexp": {"kubernetes.pod_name.keyword": workload_regex(w)}}))
            .collect();
        filter.push(json!({"bool": {"should": should, "minimum_should_match": 1}}));
    }
    filter.extend(any_of(
        "match_phrase",
        "kubernetes.pod_name.keyword",
        &f.pods,
    ));
    filter.extend(any_of(
        "match_phrase",
        "kubernetes.container_name.keyword",
        &f.containers,
    ));
    filter.extend(any_of(
        "match_phrase_prefix",
        "kubernetes.pod_name",
        &f.workload_search,
    ));
    filter.extend(any_of(
        "match_phrase_prefix",
        "kubernetes.pod_name",
        &f.pod_search,
    ));
    filter.extend(any_of(
        "match_phrase_prefix",
        "kubernetes.container_name",
        &f.container_search,
    ));
    filter.extend(any_of("match_phrase_prefix", "log", &f.log_search));
    filter.push(json!({"range": {"time": {"gte": go_time(f.start), "lte": go_time(f.end)}}}));
    json!({"bool": {"filter": filter}})
}

/// The ground truth of a [`LogFilter`].
fn log_matches(f: &LogFilter, log: &Log) -> bool {
    let t = log.secs;
    (f.namespaces.is_empty()
        || f.namespaces
            .iter()
            .any(|(ns, created)| *ns == log.namespace && created.is_none_or(|c| t >= c)))
        && (f.workloads.is_empty()
            || f.workloads.iter().any(|w| {
                let rest = log.pod.strip_prefix(&format!("{w}-")).unwrap_or("");
                // The fixture's pod names: `<rs hash>-<5>`, `<n>` or `<5>` after the workload.
                !rest.is_empty()
                    && (rest.chars().all(|c| c.is_ascii_digit())
                        || (rest.len() == 5 && !rest.contains('-'))
                        || rest.len() == 16 && rest.as_bytes()[10] == b'-')
            }))
        && (f.pods.is_empty() || f.pods.contains(&log.pod))
        && (f.containers.is_empty() || f.containers.contains(&log.container))
        && (f.workload_search.is_empty()
            || f.workload_search.iter().any(|p| log.pod.starts_with(p)))
        && (f.pod_search.is_empty() || f.pod_search.iter().any(|p| log.pod.starts_with(p)))
        && (f.container_search.is_empty()
            || f.container_search
                .iter()
                .any(|p| log.container.starts_with(p)))
        && (f.log_search.is_empty()
            || f.log_search.iter().any(|search| {
                // The search's words, the last a prefix, in a row in the line's words.
                let words = |text: &str| -> Vec<String> {
                    text.split(|c: char| !c.is_alphanumeric())
                        .filter(|w| !w.is_empty())
                        .map(str::to_lowercase)
                        .collect()
                };
                let line = words(&log.log);
                let search = words(search);
                let (last, phrase) = search.split_last().unwrap();
                line.windows(search.len()).any(|win| {
                    win[..phrase.len()] == phrase[..] && win[phrase.len()].starts_with(last)
                })
            }))
        && t >= f.start
        && t <= f.end
}

fn matching_logs(f: &LogFilter) -> Vec<Log> {
    logs().into_iter().filter(|l| log_matches(f, l)).collect()
}

/// Three namespaces' pods over 100 minutes: three pages of the fixture. `demo` was created at
/// 23:30 (its older logs are hidden); `default` has no creation time (Go's zero time).
fn paged_filter() -> LogFilter {
    LogFilter {
        namespaces: vec![("demo", Some(START + 30 * MINUTE)), ("default", None)],
        pods: vec!["web-5d8f7b9c6d-x2x4k", "db-0", "agent-7kq2w"],
        start: START + 10 * MINUTE,
        end: START + 110 * MINUTE,
        ..LogFilter::default()
    }
}

fn full_day() -> LogFilter {
    LogFilter {
        start: START - 3600,
        end: START + 3 * 3600,
        ..LogFilter::default()
    }
}

fn log_indices(f: &LogFilter) -> String {
    daily_indices("ks-logstash-log", f.start, f.end)
}

/// `SearchLogs`: the page `[from, from + size)` in `order` by `time`.
fn search_logs(server: &Server, f: &LogFilter, from: usize, size: usize, order: &str) -> Value {
    let body =
        json!({"query": log_query(f), "sort": [{"time": order}], "from": from, "size": size});
    ks_search(server, &log_indices(f), &body)
}

fn expected_page(f: &LogFilter, from: usize, size: usize, order: &str) -> Vec<Value> {
    let mut all = matching_logs(f);
    all.sort_by_key(|l| (l.secs, l.nanos));
    if order == "desc" {
        all.reverse();
    }
    all.iter().skip(from).take(size).map(Log::source).collect()
}

fn sources(answer: &Value) -> Vec<Value> {
    answer["hits"]["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["_source"].clone())
        .collect()
}

/// The buckets Elasticsearch's `date_histogram` of `width` seconds answers for documents at
/// `times` (in order): every bucket from the first document's to the last one's, empty ones
/// included, as `[key in ms, doc_count]`.
fn expected_buckets(times: &[i64], width: i64) -> Vec<Value> {
    let bucket = |secs: i64| secs.div_euclid(width) * width;
    let (Some(first), Some(last)) = (times.first(), times.last()) else {
        return Vec::new();
    };
    let (first, last) = (bucket(*first), bucket(*last));
    (0..=(last - first) / width)
        .map(|k| {
            let key = first + k * width;
            json!([
                key * 1000,
                times.iter().filter(|t| bucket(**t) == key).count()
            ])
        })
        .collect()
}

/// The aggregation `name`'s buckets, as `[key, doc_count]`.
fn buckets(answer: &Value, name: &str) -> Vec<Value> {
    answer["aggregations"][name]["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| json!([b["key"], b["doc_count"]]))
        .collect()
}

// --- logging client -------------------------------------------------------------------------

#[test]
fn ks_logging_search_logs_pages_by_namespace_and_pod() {
    let (_tmp, server) = start("", None);
    let filter = paged_filter();
    let total = matching_logs(&filter).len();
    assert!(total > 25, "three pages of the fixture: {total}");
    for (from, size, order) in [(0, 10, "desc"), (5, 10, "desc"), (20, 10, "asc")] {
        let answer = search_logs(&server, &filter, from, size, order);
        assert_eq!(
            answer["hits"]["total"],
            json!({"value": total, "relation": "eq"})
        );
        assert_eq!(sources(&answer), expected_page(&filter, from, size, order));
        assert_eq!(answer["hits"]["hits"][0]["_index"], json!("logs"));
    }
}

#[test]
fn ks_logging_count_logs_by_interval() {
    let (_tmp, server) = start("", None);
    let filter = LogFilter {
        namespaces: vec![("demo", None)],
        containers: vec!["nginx"],
        ..full_day()
    };
    let body = json!({
        "query": log_query(&filter),
        "aggs": {"date_histogram_aggregation": {"date_histogram": {"field": "time", "interval": "15m"}}},
        "size": 0
    });
    let answer = ks_search(&server, &log_indices(&filter), &body);
    let matching = matching_logs(&filter);
    assert_eq!(answer["hits"]["total"]["value"], json!(matching.len()));
    assert_eq!(answer["hits"]["hits"], json!([]));
    // 15-minute buckets from the first to the last line, in milliseconds.
    let times: Vec<i64> = matching.iter().map(|l| l.secs).collect();
    let expected = expected_buckets(&times, 900);
    assert_eq!(buckets(&answer, "date_histogram_aggregation"), expected);
    assert_eq!(expected.len(), 8, "two hours of 15-minute buckets");
}

#[test]
fn ks_logging_get_current_stats_counts_containers() {
    let (_tmp, server) = start("", None);
    for filter in [
        full_day(),
        LogFilter {
            namespaces: vec![("default", None), ("kubesphere-logging-system", None)],
            ..full_day()
        },
    ] {
        let body = json!({
            "query": log_query(&filter),
            "aggs": {"cardinality_aggregation": {"cardinality": {"field": "kubernetes.docker_id.keyword"}}},
            "size": 0
        });
        let answer = ks_search(&server, &log_indices(&filter), &body);
        let matching = matching_logs(&filter);
        let containers: BTreeSet<&str> = matching.iter().map(|l| l.docker_id.as_str()).collect();
        assert_eq!(answer["hits"]["total"]["value"], json!(matching.len()));
        assert_eq!(
            answer["aggregations"]["cardinality_aggregation"]["value"],
            json!(containers.len())
        );
    }
}

#[test]
fn ks_logging_workload_pod_container_filters_and_searches() {
    let (_tmp, server) = start("", None);
    let cases = [
        // Workload filters: regexps on the pod name (`webhook-server-...` is no `web` pod).
        LogFilter {
            workloads: vec!["web", "db"],
            ..full_day()
        },
        LogFilter {
            workloads: vec!["agent"],
            ..full_day()
        },
        // Keyword searches: one-word `match_phrase_prefix` on the keyword fields.
        LogFilter {
            workload_search: vec!["webh"],
            ..full_day()
        },
        LogFilter {
            pod_search: vec!["db-"],
            ..full_day()
        },
        LogFilter {
            container_search: vec!["post", "flu"],
            ..full_day()
        },
        LogFilter {
            containers: vec!["postgres"],
            namespaces: vec![("default", None)],
            ..full_day()
        },
        // Log searches: a word prefix, and phrases whose last word is a prefix.
        LogFilter {
            log_search: vec!["refus"],
            ..full_day()
        },
        LogFilter {
            log_search: vec!["disk pres", "GET /heal"],
            namespaces: vec![("demo", None)],
            ..full_day()
        },
    ];
    for filter in cases {
        let expected = expected_page(&filter, 0, 200, "asc");
        assert!(!expected.is_empty(), "{}", log_query(&filter));
        let answer = search_logs(&server, &filter, 0, 200, "asc");
        assert_eq!(
            answer["hits"]["total"]["value"],
            json!(expected.len()),
            "{}",
            log_query(&filter)
        );
        assert_eq!(sources(&answer), expected, "{}", log_query(&filter));
    }
}

// --- auditing client ------------------------------------------------------------------------

/// One filter kind of the auditing client: its clause, and which events it keeps.
struct AuditCase {
    name: &'static str,
    clause: Value,
    keeps: fn(&Audit) -> bool,
}

fn audit_cases() -> Vec<AuditCase> {
    let should = |items: Vec<Value>| json!({"bool": {"should": items, "minimum_should_match": 1}});
    vec![
        AuditCase {
            name: "namespace map (with creation time)",
            clause: should(vec![json!({"bool": {"filter": [
                {"match_phrase": {"ObjectRef.Namespace.keyword": "demo"}},
                {"range": {"RequestReceivedTimestamp": {"gte": go_time(START + 40 * MINUTE)}}}
            ]}})]),
            keeps: |a| a.namespace == "demo" && a.secs >= START + 40 * MINUTE,
        },
        AuditCase {
            name: "namespaces",
            clause: should(vec![
                json!({"match_phrase": {"ObjectRef.Namespace.keyword": "default"}}),
                json!({"match_phrase": {"ObjectRef.Namespace.keyword": "kube-system"}}),
            ]),
            keeps: |a| a.namespace != "demo",
        },
        AuditCase {
            name: "namespace fuzzy",
            clause: should(vec![
                json!({"wildcard": {"ObjectRef.Namespace.keyword": "*syst*"}}),
            ]),
            keeps: |a| a.namespace == "kube-system",
        },
        AuditCase {
            name: "names",
            clause: should(vec![
                json!({"match_phrase": {"ObjectRef.Name.keyword": "obj-3"}}),
            ]),
            keeps: |a| a.name == "obj-3",
        },
        AuditCase {
            name: "name fuzzy",
            clause: should(vec![
                json!({"wildcard": {"ObjectRef.Name.keyword": "*j-5*"}}),
            ]),
            keeps: |a| a.name == "obj-5",
        },
        AuditCase {
            name: "verbs",
            clause: should(vec![
                json!({"match_phrase": {"Verb.keyword": "create"}}),
                json!({"match_phrase": {"Verb.keyword": "delete"}}),
            ]),
            keeps: |a| a.verb == "create" || a.verb == "delete",
        },
        AuditCase {
            name: "levels",
            clause: should(vec![
                json!({"match_phrase": {"Level.keyword": "RequestResponse"}}),
            ]),
            keeps: |a| a.level == "RequestResponse",
        },
        AuditCase {
            name: "source ip fuzzy",
            clause: should(vec![
                json!({"wildcard": {"SourceIPs.keyword": "*10.0.2.*"}}),
            ]),
            keeps: |a| a.ip.starts_with("10.0.2."),
        },
        AuditCase {
            name: "users",
            clause: should(vec![
                json!({"match_phrase": {"User.Username.keyword": "alice"}}),
            ]),
            keeps: |a| a.user == "alice",
        },
        AuditCase {
            name: "user fuzzy",
            clause: should(vec![
                json!({"wildcard": {"User.Username.keyword": "*garbage*"}}),
            ]),
            keeps: |a| a.user.contains("garbage"),
        },
        AuditCase {
            name: "group fuzzy",
            clause: should(vec![json!({"wildcard": {"User.Groups.keyword": "*ops*"}})]),
            keeps: |a| a.group == "ops-team",
        },
        AuditCase {
            name: "resources",
            clause: should(vec![
                json!({"match_phrase_prefix": {"ObjectRef.Resource": "secrets"}}),
                json!({"match_phrase_prefix": {"ObjectRef.Resource": "config"}}),
            ]),
            keeps: |a| a.resource == "secrets" || a.resource == "configmaps",
        },
        AuditCase {
            name: "subresources",
            clause: should(vec![
                json!({"match_phrase_prefix": {"ObjectRef.Subresource": "log"}}),
            ]),
            keeps: |a| a.subresource == "log",
        },
        AuditCase {
            name: "response codes",
            clause: should(vec![json!({"terms": {"ResponseStatus.code": [403, 404]}})]),
            keeps: |a| a.code == 403 || a.code == 404,
        },
    ]
}

/// The auditing client's query: the case's clause and the time range.
fn audit_query(clause: &Value, start: i64, end: i64) -> Value {
    json!({"bool": {"filter": [
        clause,
        {"range": {"RequestReceivedTimestamp": {"gte": go_time(start), "lte": go_time(end)}}}
    ]}})
}

const AUDIT_FROM: i64 = START + 10 * MINUTE;
const AUDIT_TO: i64 = START + 100 * MINUTE;

fn audit_indices() -> String {
    daily_indices("ks-logstash-auditing", AUDIT_FROM, AUDIT_TO)
}

fn in_window(a: &Audit) -> bool {
    a.secs >= AUDIT_FROM && a.secs <= AUDIT_TO
}

#[test]
fn ks_auditing_search_with_each_filter_kind() {
    let (_tmp, server) = start("", None);
    for case in audit_cases() {
        let mut expected: Vec<Audit> = audits()
            .into_iter()
            .filter(|a| in_window(a) && (case.keeps)(a))
            .collect();
        expected.reverse();
        assert!(!expected.is_empty(), "{}", case.name);
        let body = json!({
            "query": audit_query(&case.clause, AUDIT_FROM, AUDIT_TO),
            "sort": [{"RequestReceivedTimestamp": "desc"}],
            "from": 0,
            "size": 100
        });
        let answer = ks_search(&server, &audit_indices(), &body);
        assert_eq!(
            answer["hits"]["total"]["value"],
            json!(expected.len()),
            "{}",
            case.name
        );
        let ids: Vec<&str> = answer["hits"]["hits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["_source"]["AuditID"].as_str().unwrap())
            .collect();
        let want: Vec<&str> = expected.iter().map(|a| a.id.as_str()).collect();
        assert_eq!(ids, want, "{}", case.name);
    }
    // `_source` in kube-auditing's shape, which the console reads as it is.
    let one = &audits()[12];
    let body = json!({
        "query": audit_query(&json!({"bool": {"should": [{"match_phrase": {"AuditID.keyword": one.id}}], "minimum_should_match": 1}}), AUDIT_FROM, AUDIT_TO),
        "sort": [{"RequestReceivedTimestamp": "desc"}], "from": 0, "size": 10
    });
    let answer = ks_search(&server, &audit_indices(), &body);
    assert_eq!(
        answer["hits"]["hits"][0]["_source"],
        json!({
            "AuditID": one.id,
            "Stage": "ResponseComplete",
            "Level": one.level,
            "Verb": one.verb,
            "RequestURI": format!("/api/v1/namespaces/{}/{}/{}", one.namespace, one.resource, one.name),
            "User": {"Username": one.user, "UID": format!("uid-{}", one.user), "Groups": ["system:authenticated", one.group]},
            "SourceIPs": [one.ip],
            "UserAgent": "kubectl/v1.28.2",
            "ObjectRef": {"Resource": one.resource, "Namespace": one.namespace, "Name": one.name,
                "APIVersion": "v1", "Subresource": one.subresource},
            "ResponseStatus": {"code": one.code},
            "RequestReceivedTimestamp": one.time(),
            "StageTimestamp": rfc3339(one.secs, Some(5_000_000), 0),
        })
    );
}

#[test]
fn ks_auditing_count_over_time_and_statistics() {
    let (_tmp, server) = start("", None);
    for case in audit_cases().into_iter().take(4) {
        let expected: Vec<Audit> = audits()
            .into_iter()
            .filter(|a| in_window(a) && (case.keeps)(a))
            .collect();
        // CountOverTime.
        let body = json!({
            "query": audit_query(&case.clause, AUDIT_FROM, AUDIT_TO),
            "aggs": {"date_histogram_aggregation": {"date_histogram": {"field": "RequestReceivedTimestamp", "interval": "30m"}}},
            "size": 0
        });
        let answer = ks_search(&server, &audit_indices(), &body);
        assert_eq!(answer["hits"]["total"]["value"], json!(expected.len()));
        let times: Vec<i64> = expected.iter().map(|a| a.secs).collect();
        assert_eq!(
            buckets(&answer, "date_histogram_aggregation"),
            expected_buckets(&times, 1800),
            "{}",
            case.name
        );
        // StatisticsOnResources.
        let body = json!({
            "query": audit_query(&case.clause, AUDIT_FROM, AUDIT_TO),
            "aggs": {"cardinality_aggregation": {"cardinality": {"field": "AuditID.keyword"}}},
            "size": 0
        });
        let answer = ks_search(&server, &audit_indices(), &body);
        assert_eq!(answer["hits"]["total"]["value"], json!(expected.len()));
        assert_eq!(
            answer["aggregations"]["cardinality_aggregation"]["value"],
            json!(expected.len()),
            "{}",
            case.name
        );
    }
}

#[test]
fn ks_auditing_fields_trawl_does_not_keep_are_refused() {
    let (_tmp, server) = start("", None);
    for (field, value) in [
        ("ResponseStatus.status.keyword", "Failure"),
        ("Workspace.keyword", "system-workspace"),
    ] {
        let clause = json!({"bool": {"should": [{"match_phrase": {field: value}}], "minimum_should_match": 1}});
        let body = json!({"query": audit_query(&clause, AUDIT_FROM, AUDIT_TO), "size": 10});
        let (status, answer) = ks_search_raw(&server, &audit_indices(), &body, None);
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        assert_eq!(
            answer["error"]["reason"],
            json!(format!(
                "field [{field}] (trawl's audit stream does not keep it) is not supported by trawl"
            ))
        );
    }
}

// --- events client, versions, refusals, scopes ------------------------------------------------

/// One filter kind of the events client (`parseToQueryPart`): its clause, and which events it
/// keeps.
struct EventCase {
    name: &'static str,
    clause: Value,
    keeps: fn(&KEvent) -> bool,
}

fn event_cases() -> Vec<EventCase> {
    let should = |items: Vec<Value>| json!({"bool": {"should": items, "minimum_should_match": 1}});
    vec![
        EventCase {
            name: "namespace map (with creation time) and cluster-scoped objects",
            clause: should(vec![
                json!({"bool": {"filter": [
                    {"match_phrase": {"involvedObject.namespace.keyword": "demo"}},
                    {"range": {"lastTimestamp": {"gte": go_time(START + 40 * MINUTE)}}}
                ]}}),
                json!({"bool": {"must_not": [{"exists": {"field": "involvedObject.namespace"}}]}}),
            ]),
            keeps: |e| {
                (e.namespace == "demo" && e.secs >= START + 40 * MINUTE) || e.namespace.is_empty()
            },
        },
        EventCase {
            name: "object names",
            clause: should(vec![
                json!({"match_phrase": {"involvedObject.name.keyword": "db-0"}}),
                json!({"match_phrase": {"involvedObject.name.keyword": "web"}}),
            ]),
            keeps: |e| e.name == "db-0" || e.name == "web",
        },
        EventCase {
            name: "object name fuzzy",
            clause: should(vec![
                json!({"match_phrase_prefix": {"involvedObject.name": "web-5d8f"}}),
            ]),
            keeps: |e| e.name.starts_with("web-5d8f"),
        },
        EventCase {
            // As Elasticsearch's text mapping does, the case of the kind is ignored.
            name: "object kinds",
            clause: should(vec![
                json!({"match_phrase": {"involvedObject.kind": "pod"}}),
                json!({"match_phrase": {"involvedObject.kind": "Node"}}),
            ]),
            keeps: |e| e.kind == "Pod" || e.kind == "Node",
        },
        EventCase {
            name: "reasons",
            clause: should(vec![
                json!({"match_phrase": {"reason": "BackOff"}}),
                json!({"match_phrase": {"reason": "unhealthy"}}),
            ]),
            keeps: |e| e.reason == "BackOff" || e.reason == "Unhealthy",
        },
        EventCase {
            name: "reason fuzzy",
            clause: should(vec![json!({"wildcard": {"reason": "*ailed*"}})]),
            keeps: |e| e.reason.contains("ailed"),
        },
        EventCase {
            name: "message fuzzy",
            clause: should(vec![
                json!({"match_phrase_prefix": {"message": "Liveness probe fail"}}),
            ]),
            keeps: |e| e.message.starts_with("Liveness probe failed"),
        },
        EventCase {
            name: "type",
            clause: should(vec![json!({"match_phrase": {"type": "Warning"}})]),
            keeps: |e| e.etype == "Warning",
        },
    ]
}

/// The events client's query: the case's clause and the time range on `lastTimestamp`.
fn event_query(clause: &Value, start: i64, end: i64) -> Value {
    json!({"bool": {"filter": [
        clause,
        {"range": {"lastTimestamp": {"gte": go_time(start), "lte": go_time(end)}}}
    ]}})
}

const EVENTS_FROM: i64 = START + 20 * MINUTE;
const EVENTS_TO: i64 = START + 130 * MINUTE;

fn event_indices() -> String {
    daily_indices("ks-logstash-events", EVENTS_FROM, EVENTS_TO)
}

fn expected_events(case: &EventCase) -> Vec<KEvent> {
    kevents()
        .into_iter()
        .filter(|e| e.secs >= EVENTS_FROM && e.secs <= EVENTS_TO && (case.keeps)(e))
        .collect()
}

#[test]
fn ks_events_search_with_each_filter_kind() {
    let (_tmp, server) = start("", None);
    for case in event_cases() {
        let expected = expected_events(&case);
        assert!(!expected.is_empty(), "{}", case.name);
        for (order, from, size) in [("desc", 0, 100), ("asc", 2, 3)] {
            let body = json!({
                "from": from, "size": size,
                "query": event_query(&case.clause, EVENTS_FROM, EVENTS_TO),
                "sort": [{"lastTimestamp": {"order": order}}]
            });
            let answer = ks_search(&server, &event_indices(), &body);
            assert_eq!(
                answer["hits"]["total"]["value"],
                json!(expected.len()),
                "{}",
                case.name
            );
            let mut want: Vec<&str> = expected.iter().map(|e| e.uid.as_str()).collect();
            if order == "desc" {
                want.reverse();
            }
            let want: Vec<&str> = want.into_iter().skip(from).take(size).collect();
            let got: Vec<&str> = answer["hits"]["hits"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| h["_source"]["metadata"]["uid"].as_str().unwrap())
                .collect();
            assert_eq!(got, want, "{} {order}", case.name);
        }
    }
    // `_source` is the core v1 `Event` ks-apiserver decodes, with what it carried.
    let one = &kevents()[17];
    let clause = json!({"bool": {"should": [{"match_phrase": {"metadata.uid.keyword": one.uid}}], "minimum_should_match": 1}});
    let body = json!({"query": event_query(&clause, EVENTS_FROM, EVENTS_TO), "size": 10});
    let answer = ks_search(&server, &event_indices(), &body);
    assert_eq!(answer["hits"]["total"]["value"], json!(1));
    assert_eq!(answer["hits"]["hits"][0]["_index"], json!("events"));
    let source = &answer["hits"]["hits"][0]["_source"];
    let sent = one.document();
    assert_eq!(
        source["involvedObject"]["kind"],
        sent["involvedObject"]["kind"]
    );
    assert_eq!(
        source["involvedObject"]["name"],
        sent["involvedObject"]["name"]
    );
    assert_eq!(
        source["involvedObject"]["namespace"],
        sent["involvedObject"]["namespace"]
    );
    assert_eq!(
        source["involvedObject"]["uid"],
        sent["involvedObject"]["uid"]
    );
    for key in ["reason", "message", "type", "count"] {
        assert_eq!(source[key], sent[key], "{key}");
    }
    assert_eq!(source["metadata"]["name"], sent["metadata"]["name"]);
    assert_eq!(
        source["metadata"]["resourceVersion"],
        sent["metadata"]["resourceVersion"]
    );
    assert_eq!(source["source"]["component"], sent["source"]["component"]);
    assert_eq!(
        source["lastTimestamp"],
        json!(rfc3339(one.secs, Some(0), 0))
    );
    assert_eq!(
        source["firstTimestamp"],
        json!(rfc3339(one.secs - (one.count - 1) * MINUTE, Some(0), 0))
    );
}

#[test]
fn ks_events_count_over_time_and_statistics_on_resources() {
    let (_tmp, server) = start("", None);
    for case in event_cases() {
        let expected = expected_events(&case);
        // CountOverTime: 15-minute buckets of `lastTimestamp` (the client's default interval).
        let body = json!({
            "query": event_query(&case.clause, EVENTS_FROM, EVENTS_TO),
            "aggs": {"events_count_over_lasttimestamp": {"date_histogram": {"field": "lastTimestamp", "interval": "15m"}}},
            "size": 0
        });
        let answer = ks_search(&server, &event_indices(), &body);
        assert_eq!(
            answer["hits"]["total"]["value"],
            json!(expected.len()),
            "{}",
            case.name
        );
        let times: Vec<i64> = expected.iter().map(|e| e.secs).collect();
        assert_eq!(
            buckets(&answer, "events_count_over_lasttimestamp"),
            expected_buckets(&times, 900),
            "{}",
            case.name
        );
        // StatisticsOnResources: the events and the distinct objects they are about.
        let body = json!({
            "query": event_query(&case.clause, EVENTS_FROM, EVENTS_TO),
            "aggs": {"resources_count": {"cardinality": {"field": "involvedObject.uid.keyword"}}},
            "size": 0
        });
        let answer = ks_search(&server, &event_indices(), &body);
        let objects: BTreeSet<String> = expected.iter().map(KEvent::object_uid).collect();
        assert_eq!(answer["hits"]["total"]["value"], json!(expected.len()));
        assert_eq!(
            answer["aggregations"]["resources_count"]["value"],
            json!(objects.len()),
            "{}",
            case.name
        );
    }
}

#[test]
fn ks_version_probe_total_shapes_and_scroll() {
    let (_tmp, server) = start("", None);
    // ks-apiserver probes `GET /` with its v6 client and accepts 5, 6 and 7.
    for (agent, number) in [(UA_V6, "6.8.23"), (UA_V7, "7.17.0"), ("python", "8.11.0")] {
        let response = client()
            .get(server.at("/api/v1/_elastic/"))
            .header("user-agent", agent)
            .send()
            .unwrap();
        let (status, info) = json_of(response);
        assert_eq!(status, StatusCode::OK);
        assert_eq!(info["version"]["number"], json!(number));
    }
    // The v6 client reads `hits.total` as a number.
    let filter = full_day();
    let body = json!({"query": log_query(&filter), "size": 0});
    let url = format!(
        "/api/v1/_elastic/{}/_search?ignore_unavailable=true",
        log_indices(&filter)
    );
    let (status, answer) = es(client().post(server.at(&url)), UA_V6, &body);
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["hits"]["total"], json!(LOGS));
    // The log export scrolls: refused, naming it.
    let (status, answer) = es(
        client().post(server.at(&format!("{url}&scroll=1m"))),
        UA_V7,
        &json!({"query": log_query(&filter), "size": 1000}),
    );
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        answer["error"]["reason"],
        json!("[scroll] (page with search_after instead) is not supported by trawl")
    );
}

#[test]
fn ks_queries_with_a_namespace_scoped_token_see_only_its_namespace() {
    let tokens = Tokens {
        ingest: "ks-ingest-token-0123456789abcdef",
        admin: "ks-admin-token-0123456789abcdef",
    };
    let demo = "ks-demo-token-0123456789abcdef";
    let config = format!(
        "[[auth.tokens]]\nname = \"fluent-bit\"\nhash = \"{}\"\nrole = \"ingest\"\n\n\
         [[auth.tokens]]\nname = \"ops\"\nhash = \"{}\"\nrole = \"admin\"\n\n\
         [[auth.tokens]]\nname = \"demo\"\nhash = \"{}\"\nrole = \"read\"\nnamespaces = [\"demo\"]\n",
        crate::auth::token_hash(tokens.ingest),
        crate::auth::token_hash(tokens.admin),
        crate::auth::token_hash(demo),
    );
    let (_tmp, server) = start(&config, Some(tokens));
    let filter = full_day();
    // A search without namespace filter: the token's namespace only, in hits and aggregations.
    let body = json!({
        "query": log_query(&filter),
        "aggs": {"cardinality_aggregation": {"cardinality": {"field": "kubernetes.docker_id.keyword"}}},
        "sort": [{"time": "asc"}], "from": 0, "size": 200
    });
    let (status, answer) = ks_search_raw(&server, &log_indices(&filter), &body, Some(demo));
    assert_eq!(status, StatusCode::OK, "{answer}");
    let expected: Vec<Value> = logs()
        .iter()
        .filter(|l| l.namespace == "demo")
        .map(Log::source)
        .collect();
    assert_eq!(sources(&answer), expected);
    let containers: BTreeSet<String> = logs()
        .into_iter()
        .filter(|l| l.namespace == "demo")
        .map(|l| l.docker_id)
        .collect();
    assert_eq!(
        answer["aggregations"]["cardinality_aggregation"]["value"],
        json!(containers.len())
    );
    // The audit search likewise (events about objects of `demo`).
    let all = json!({"bool": {"should": [{"wildcard": {"Verb.keyword": "*"}}], "minimum_should_match": 1}});
    let (status, answer) = ks_search_raw(
        &server,
        &audit_indices(),
        &json!({"query": audit_query(&all, AUDIT_FROM, AUDIT_TO), "size": 100}),
        Some(demo),
    );
    assert_eq!(status, StatusCode::OK, "{answer}");
    let want = audits()
        .iter()
        .filter(|a| in_window(a) && a.namespace == "demo")
        .count();
    assert_eq!(answer["hits"]["total"]["value"], json!(want));
    let namespaces: BTreeSet<&str> = answer["hits"]["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["_source"]["ObjectRef"]["Namespace"].as_str().unwrap())
        .collect();
    assert_eq!(namespaces, BTreeSet::from(["demo"]));
    // And the events search: `demo`'s objects only, no cluster-scoped object's events.
    let all =
        json!({"bool": {"should": [{"wildcard": {"reason": "*"}}], "minimum_should_match": 1}});
    let (status, answer) = ks_search_raw(
        &server,
        &event_indices(),
        &json!({"query": event_query(&all, EVENTS_FROM, EVENTS_TO), "size": 100}),
        Some(demo),
    );
    assert_eq!(status, StatusCode::OK, "{answer}");
    let want = kevents()
        .iter()
        .filter(|e| e.secs >= EVENTS_FROM && e.secs <= EVENTS_TO && e.namespace == "demo")
        .count();
    assert_eq!(answer["hits"]["total"]["value"], json!(want));
    let namespaces: BTreeSet<&str> = answer["hits"]["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            h["_source"]["involvedObject"]["namespace"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(namespaces, BTreeSet::from(["demo"]));
}

// --- through a searcher ---------------------------------------------------------------------

/// An answer without what differs between deployments: `took`, the hits' `_id` (a position in
/// a split), the shard counts.
fn steady(mut answer: Value) -> Value {
    if let Some(object) = answer.as_object_mut() {
        object.remove("took");
        object.remove("_shards");
    }
    if let Some(hits) = answer["hits"]["hits"].as_array_mut() {
        for hit in hits {
            if let Some(hit) = hit.as_object_mut() {
                hit.remove("_id");
            }
        }
    }
    answer
}

/// Moving KubeSphere to a cluster deployment is still one URL: its documents `_bulk`-ed to two
/// indexers (alternately, as two nodes' Fluent Bits would), and ks-apiserver's queries sent to
/// a searcher over both answer as one server holding every document answers them. One indexer
/// down: the other's documents, with the missing part counted as a failed shard.
#[test]
fn ks_queries_through_a_searcher_over_two_indexers_answer_as_one_server() {
    let (_whole_dir, whole) = start("", None);
    let tmp = tempfile::tempdir().unwrap();
    let config = "[indexer]\ncommit_interval_ms = 200\n";
    let a = Server::start_role("indexer", &tmp.path().join("a"), config);
    let b = Server::start_role("indexer", &tmp.path().join("b"), config);
    let items = bulk_items();
    for (server, parity) in [(&a, 0), (&b, 1)] {
        let body = bulk_body(
            items
                .iter()
                .enumerate()
                .filter(|(i, _)| i % 2 == parity)
                .map(|(_, item)| item),
        );
        let (status, answer) = json_of(
            client()
                .post(server.at("/api/v1/_elastic/_bulk"))
                .header("content-type", "application/x-ndjson")
                .body(body)
                .send()
                .unwrap(),
        );
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(answer["errors"], json!(false), "{answer}");
    }
    let root = Server::start_role(
        "searcher",
        &tmp.path().join("root"),
        &format!("[query]\nindexers = [\"{}\", \"{}\"]\n", a.url, b.url),
    );
    // The searcher's own `_count` sees every document of both.
    wait_for_every_document(&root, None);

    let mut searches: Vec<(String, Value)> = Vec::new();
    let filter = paged_filter();
    for (from, size, order) in [(0, 10, "desc"), (5, 10, "desc"), (20, 10, "asc")] {
        let body = json!({"query": log_query(&filter), "sort": [{"time": order}], "from": from, "size": size});
        searches.push((log_indices(&filter), body));
    }
    let day = full_day();
    searches.push((
        log_indices(&day),
        json!({
            "query": log_query(&day),
            "aggs": {"date_histogram_aggregation": {"date_histogram": {"field": "time", "interval": "15m"}}},
            "size": 0
        }),
    ));
    searches.push((
        log_indices(&day),
        json!({
            "query": log_query(&day),
            "aggs": {"cardinality_aggregation": {"cardinality": {"field": "kubernetes.docker_id.keyword"}}},
            "size": 0
        }),
    ));
    for case in audit_cases() {
        let query = audit_query(&case.clause, AUDIT_FROM, AUDIT_TO);
        searches.push((
            audit_indices(),
            json!({"query": query, "sort": [{"RequestReceivedTimestamp": "desc"}], "from": 0, "size": 100}),
        ));
        searches.push((
            audit_indices(),
            json!({"query": query, "size": 0, "aggs": {
                "date_histogram_aggregation": {"date_histogram": {"field": "RequestReceivedTimestamp", "interval": "30m"}},
                "cardinality_aggregation": {"cardinality": {"field": "AuditID.keyword"}}
            }}),
        ));
    }
    for case in event_cases() {
        for (order, from, size) in [("desc", 0, 100), ("asc", 2, 3)] {
            searches.push((
                event_indices(),
                json!({
                    "from": from, "size": size,
                    "query": event_query(&case.clause, EVENTS_FROM, EVENTS_TO),
                    "sort": [{"lastTimestamp": {"order": order}}]
                }),
            ));
        }
    }
    let mut hits_compared = 0;
    for (indices, body) in &searches {
        let expected = ks_search(&whole, indices, body);
        let answered = ks_search(&root, indices, body);
        assert_eq!(answered["_shards"]["failed"], json!(0), "{body}");
        assert_eq!(
            steady(answered),
            steady(expected.clone()),
            "{indices} {body}"
        );
        hits_compared += expected["hits"]["hits"].as_array().unwrap().len();
    }
    assert!(searches.len() > 20, "{} searches", searches.len());
    assert!(hits_compared > 200, "{hits_compared} hits compared");
    // And against the ground truth, not only the other server.
    let answer = ks_search(&root, &log_indices(&filter), &searches[0].1);
    assert_eq!(sources(&answer), expected_page(&filter, 0, 10, "desc"));

    // The version probe and `_cat/indices` of the searcher, as ks-apiserver and people see them.
    let (status, info) = es(
        client().get(root.at("/api/v1/_elastic/")),
        UA_V6,
        &Value::Null,
    );
    assert_eq!(status, StatusCode::OK);
    assert_eq!(info["version"]["number"], json!("6.8.23"));
    let (_, cat) = json_of(
        client()
            .get(root.at("/api/v1/_elastic/_cat/indices?format=json&h=index,docs.count"))
            .send()
            .unwrap(),
    );
    let counted: u64 = cat
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["docs.count"].as_str().unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(counted, (LOGS + EVENTS + KEVENTS) as u64, "{cat}");

    // One indexer down: the other's documents, and one failed shard saying which.
    let only_a = ks_search(&a, "ks-logstash-log*", &json!({"size": 0}));
    b.kill9();
    let answer = ks_search(&root, "ks-logstash-log*", &json!({"size": 0}));
    assert_eq!(answer["hits"]["total"], only_a["hits"]["total"]);
    assert_eq!(answer["_shards"]["failed"], json!(1), "{answer}");
}
