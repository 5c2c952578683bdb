//! The `events` stream through the real binary: Kubernetes Event objects of both API versions
//! and watch events ingested as a watcher or `kubectl get events -o json` gives them, each
//! update one document however often it is resent (also across a SIGKILL), and the
//! `pod-failures` report over them: rows equal to a ground truth computed here, each row's
//! query finding exactly its documents. And the nodes' journal entries, once each by cursor.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use crate::support::{json_of, wait_until, Server, SEARCHABLE_TIMEOUT};

/// 2026-11-25T10:00:00Z in seconds: the fixture's first event.
const T0: i64 = 1_795_600_800;

/// One update of one Event object: which object, its reason and type, its count at this
/// update and when.
#[derive(Debug, Clone)]
struct Update {
    namespace: &'static str,
    kind: &'static str,
    name: &'static str,
    reason: &'static str,
    event_type: &'static str,
    /// The Event object's own uid: one per (object, reason, container) as the kubelet keys them.
    uid: String,
    count: i64,
    resource_version: u64,
    secs: i64,
    node: &'static str,
}

fn rfc3339(secs: i64) -> String {
    let of_day = secs - T0 + 10 * 3600;
    format!(
        "2026-11-25T{:02}:{:02}:{:02}Z",
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60
    )
}

/// What happens to a small cluster over an hour: a crash-looping pod (its BackOff Event updated
/// 12 times), a pod that cannot be scheduled, an image that cannot be pulled, probes failing
/// on two containers of one pod (two Event objects), a normal life (Scheduled, Pulled,
/// Started) that is no failure, and a Node's event that is about no pod.
/// One Event object's updates: namespace, kind, name, reason, type, the Event's uid, how many
/// updates, the reporting node, the first update's time after `T0` and the seconds between.
type Series = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    i64,
    &'static str,
    i64,
    i64,
);

fn updates() -> Vec<Update> {
    #[rustfmt::skip]
    const SERIES: [Series; 10] = [
        ("shop", "Pod", "web-7d9f8-x2k4p", "BackOff", "Warning", "ev-backoff-web", 12, "node-1", 60, 120),
        ("shop", "Pod", "web-7d9f8-x2k4p", "Scheduled", "Normal", "ev-sched-web", 1, "", 0, 1),
        ("shop", "Pod", "web-7d9f8-x2k4p", "Started", "Normal", "ev-started-web", 3, "node-1", 30, 600),
        ("jobs", "Pod", "report-28391-abcde", "FailedScheduling", "Warning", "ev-fs-report", 4, "", 100, 300),
        ("jobs", "Pod", "etl-0", "Failed", "Warning", "ev-pull-etl", 2, "node-2", 200, 60),
        ("jobs", "Pod", "etl-0", "BackOff", "Normal", "ev-pullbackoff-etl", 5, "node-2", 400, 60),
        ("shop", "Pod", "cart-0", "Unhealthy", "Warning", "ev-probe-cart-app", 3, "node-2", 900, 30),
        ("shop", "Pod", "cart-0", "Unhealthy", "Warning", "ev-probe-cart-sidecar", 2, "node-2", 950, 30),
        ("", "Node", "node-2", "NodeHasDiskPressure", "Warning", "ev-node-2", 1, "node-2", 1200, 1),
        ("shop", "Deployment", "web", "ScalingReplicaSet", "Normal", "ev-scale-web", 2, "", 10, 5),
    ];
    let mut out = Vec::new();
    let mut rv = 1000;
    for (namespace, kind, name, reason, event_type, uid, times, node, start, every) in SERIES {
        for i in 0..times {
            rv += 1;
            out.push(Update {
                namespace,
                kind,
                name,
                reason,
                event_type,
                uid: uid.to_string(),
                count: i + 1,
                resource_version: rv,
                secs: T0 + start + i * every,
                node,
            });
        }
    }
    out
}

/// The update as the API server gives it: core v1 for most, events.k8s.io/v1 for the
/// scheduler's (as recent schedulers write them), every third one inside a watch event.
fn raw(u: &Update, i: usize) -> Value {
    let object = if u.reason == "FailedScheduling" {
        json!({
            "apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": format!("{}.{}", u.name, u.uid), "namespace": u.namespace,
                "uid": u.uid, "resourceVersion": u.resource_version.to_string()},
            "eventTime": rfc3339(T0 + 100),
            "series": {"count": u.count, "lastObservedTime": rfc3339(u.secs)},
            "reportingController": "default-scheduler", "reportingInstance": "default-scheduler-cp-1",
            "action": "Scheduling", "reason": u.reason,
            "regarding": {"kind": u.kind, "namespace": u.namespace, "name": u.name, "uid": format!("uid-{}", u.name)},
            "note": "0/12 nodes are available: 12 Insufficient memory.", "type": u.event_type
        })
    } else {
        let mut regarding =
            json!({"kind": u.kind, "name": u.name, "uid": format!("uid-{}", u.name)});
        if !u.namespace.is_empty() {
            regarding["namespace"] = json!(u.namespace);
        }
        json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": format!("{}.{}", u.name, u.uid),
                "namespace": if u.namespace.is_empty() { "default" } else { u.namespace },
                "uid": u.uid, "resourceVersion": u.resource_version.to_string()},
            "involvedObject": regarding, "reason": u.reason,
            "message": format!("{} of {}", u.reason, u.name),
            "source": {"component": "kubelet", "host": u.node},
            "firstTimestamp": rfc3339(u.secs - (u.count - 1) * 60), "lastTimestamp": rfc3339(u.secs),
            "count": u.count, "type": u.event_type, "eventTime": null
        })
    };
    if i.is_multiple_of(3) {
        json!({"type": if u.count == 1 { "ADDED" } else { "MODIFIED" }, "object": object})
    } else {
        object
    }
}

fn lines(updates: &[(usize, Update)]) -> Vec<String> {
    updates
        .iter()
        .map(|(i, u)| raw(u, *i).to_string())
        .collect()
}

/// Ingests an Event of its own (`uid`) and waits until it is searchable.
fn sentinel(server: &Server, uid: &str) {
    let line = json!({"apiVersion": "v1", "kind": "Event",
        "metadata": {"uid": uid, "resourceVersion": "1"},
        "involvedObject": {"kind": "Pod", "namespace": "shop", "name": "sentinel"},
        "reason": "Pulled", "type": "Normal", "lastTimestamp": rfc3339(T0 + 3000)});
    server.ingest_plain("events", &[line.to_string()]);
    wait_until(
        &format!("sentinel {uid} searchable"),
        SEARCHABLE_TIMEOUT,
        || events_total(server, &format!("event_uid:{uid}")) == 1,
    );
}

/// A `pod-failures` row as computed here: updates, the largest count of each Event object,
/// the nodes, the first and last time.
type Expected = (u64, BTreeMap<String, i64>, BTreeSet<String>, i64, i64);

fn events_total(server: &Server, q: &str) -> u64 {
    let body = server.search("events", &[("q", q), ("limit", "0")]);
    body["total"].as_u64().unwrap()
}

#[test]
fn events_of_both_versions_are_one_document_per_update_across_resends_and_a_kill() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let server = Server::start(&data, "[indexer]\ncommit_interval_ms = 200\n");
    let all: Vec<(usize, Update)> = updates().into_iter().enumerate().collect();
    let answer = server.ingest_plain("events", &lines(&all));
    assert_eq!(answer["accepted"], json!(all.len()), "{answer}");
    assert_eq!(answer["rejected"], json!(0), "{answer}");
    // A relist: every object again at its latest resourceVersion, in another batch.
    let mut latest: BTreeMap<String, (usize, Update)> = BTreeMap::new();
    for (i, u) in &all {
        latest.insert(u.uid.clone(), (*i, u.clone()));
    }
    let relist: Vec<(usize, Update)> = latest.values().cloned().collect();
    server.ingest_plain("events", &lines(&relist));
    // Batches are committed in order: once a later one is searchable, the relist is too.
    sentinel(&server, "s-1");
    assert_eq!(events_total(&server, "*"), all.len() as u64 + 1);
    server.kill9();

    // After a SIGKILL, the relist once more (reversed), and the first update alone in its
    // core v1 form (it came inside a watch event): still one document per update.
    let server = Server::start(&data, "[indexer]\ncommit_interval_ms = 200\n");
    let mut again = relist.clone();
    again.reverse();
    server.ingest_plain("events", &lines(&again));
    server.ingest_plain("events", &[raw(&all[0].1, 1).to_string()]);
    sentinel(&server, "s-2");
    assert_eq!(events_total(&server, "*"), all.len() as u64 + 2);
    // The fields of both versions.
    let fs = server.search(
        "events",
        &[("q", "reason:FailedScheduling"), ("limit", "1")],
    );
    let hit = &fs["hits"][0];
    assert_eq!(hit["reporting_controller"], "default-scheduler");
    assert_eq!(hit["count"], 4);
    assert_eq!(hit["timestamp"], "2026-11-25T10:16:40.000000000Z");
    assert_eq!(hit["first_seen"], "2026-11-25T10:01:40.000000000Z");
    let node = server.search("events", &[("q", "kind:Node"), ("limit", "1")]);
    assert!(node["hits"][0].get("namespace").is_none());
    assert_eq!(
        events_total(&server, "type:Warning AND namespace:shop"),
        12 + 3 + 2
    );
    server.stop();
}

#[test]
fn pod_failures_report_counts_each_pod_and_reason_and_its_queries_find_them() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(
        &tmp.path().join("data"),
        "[indexer]\ncommit_interval_ms = 200\n",
    );
    let all: Vec<(usize, Update)> = updates().into_iter().enumerate().collect();
    server.ingest_plain("events", &lines(&all));
    wait_until("every update searchable", SEARCHABLE_TIMEOUT, || {
        events_total(&server, "*") == all.len() as u64
    });
    let range = [
        ("start", "2026-11-25T09:00:00Z"),
        ("end", "2026-11-25T12:00:00Z"),
    ];
    let url = |q: &str| {
        let params: Vec<String> = range.iter().map(|(k, v)| format!("{k}={v}")).collect();
        server.at(&format!(
            "/api/v1/events/reports/pod-failures?{}{q}",
            params.join("&")
        ))
    };
    let (status, answer) = json_of(reqwest::blocking::get(url("")).unwrap());
    assert_eq!(status, reqwest::StatusCode::OK, "{answer}");

    // The ground truth: failure reasons of pods, per namespace, pod and reason.
    let failures = ["BackOff", "Failed", "FailedScheduling", "Unhealthy"];
    let mut want: BTreeMap<(String, String, String), Expected> = BTreeMap::new();
    for (_, u) in &all {
        if u.kind != "Pod" || !failures.contains(&u.reason) {
            continue;
        }
        let row = want
            .entry((
                u.namespace.to_string(),
                u.name.to_string(),
                u.reason.to_string(),
            ))
            .or_insert((0, BTreeMap::new(), BTreeSet::new(), i64::MAX, i64::MIN));
        row.0 += 1;
        let max = row.1.entry(u.uid.clone()).or_insert(0);
        *max = (*max).max(u.count);
        if !u.node.is_empty() {
            row.2.insert(u.node.to_string());
        }
        row.3 = row.3.min(u.secs);
        row.4 = row.4.max(u.secs);
    }
    let rows = answer["rows"].as_array().unwrap();
    assert_eq!(rows.len(), want.len(), "{answer}");
    let mut got = BTreeMap::new();
    for row in rows {
        let key = (
            row["namespace"].as_str().unwrap().to_string(),
            row["pod"].as_str().unwrap().to_string(),
            row["reason"].as_str().unwrap().to_string(),
        );
        got.insert(key, row.clone());
    }
    for (key, (count, maxes, nodes, first, last)) in &want {
        let row = &got[key];
        assert_eq!(row["count"], json!(count), "{key:?}");
        assert_eq!(
            row["occurrences"],
            json!(maxes.values().sum::<i64>()),
            "{key:?}"
        );
        assert_eq!(row["nodes"], json!(nodes), "{key:?}");
        assert_eq!(
            row["first_seen"],
            json!(rfc3339(*first).replace('Z', ".000000000Z"))
        );
        assert_eq!(
            row["last_seen"],
            json!(rfc3339(*last).replace('Z', ".000000000Z"))
        );
        // The row's query finds exactly its documents.
        let q = row["query"].as_str().unwrap();
        let found = server.search(
            "events",
            &[
                ("q", q),
                ("start", range[0].1),
                ("end", range[1].1),
                ("limit", "0"),
            ],
        );
        assert_eq!(found["total"], json!(count), "{q}");
    }
    // Ordered by count: the crash loop first.
    assert_eq!(rows[0]["pod"], "web-7d9f8-x2k4p");
    assert_eq!(rows[0]["occurrences"], 12);
    // Two probe Event objects of one pod are one row that adds their counts.
    let cart = &got[&(
        "shop".to_string(),
        "cart-0".to_string(),
        "Unhealthy".to_string(),
    )];
    assert_eq!(cart["occurrences"], 5);

    // `q` narrows; the report lives under its stream's path only.
    let (_, narrowed) = json_of(reqwest::blocking::get(url("&q=namespace:jobs")).unwrap());
    let pods: BTreeSet<&str> = narrowed["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["pod"].as_str().unwrap())
        .collect();
    assert_eq!(pods, BTreeSet::from(["etl-0", "report-28391-abcde"]));
    let (status, wrong) =
        json_of(reqwest::blocking::get(server.at("/api/v1/audit/reports/pod-failures")).unwrap());
    assert_eq!(status, reqwest::StatusCode::NOT_FOUND);
    let message = wrong["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("unknown report `pod-failures`; the reports are: top-users,")
            && message.ends_with(", timeline, latency"),
        "{message}"
    );
    let (status, wrong) =
        json_of(reqwest::blocking::get(server.at("/api/v1/events/reports/forbidden")).unwrap());
    assert_eq!(status, reqwest::StatusCode::NOT_FOUND);
    assert_eq!(
        wrong["error"]["message"],
        "unknown report `forbidden`; the reports are: pod-failures"
    );
    server.stop();
}

/// `journalctl -o json` lines of a node (kubelet, containerd, the kernel's OOM killer) into the
/// `journal` stream: levels from priorities, units, and each entry once by its cursor when the
/// same entries come again in another batch (a reader restarted from an older cursor).
#[test]
fn journal_entries_from_journalctl_are_indexed_once_by_cursor() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(
        &tmp.path().join("data"),
        "[indexer]\ncommit_interval_ms = 200\n",
    );
    let entry = |i: u64, unit: &str, identifier: &str, priority: u8, message: &str| {
        let mut e = json!({
            "__CURSOR": format!("s=ab12;i={i:x};b=boot1;m={i:x};t={i:x};x=00"),
            "__REALTIME_TIMESTAMP": format!("{}", 1_795_601_700_000_000u64 + i * 1_000_000),
            "_BOOT_ID": "boot1", "_HOSTNAME": "node-3", "PRIORITY": priority.to_string(),
            "SYSLOG_IDENTIFIER": identifier, "MESSAGE": message, "_PID": "812"
        });
        if !unit.is_empty() {
            e["_SYSTEMD_UNIT"] = json!(unit);
        }
        e.to_string()
    };
    let lines = vec![
        entry(1, "kubelet.service", "kubelet", 6, "Started kubelet"),
        entry(2, "kubelet.service", "kubelet", 4, "Readiness probe failed"),
        entry(
            3,
            "containerd.service",
            "containerd",
            3,
            "failed to pull image",
        ),
        entry(
            4,
            "",
            "kernel",
            3,
            "Memory cgroup out of memory: Killed process 4242 (java)",
        ),
        entry(5, "kubelet.service", "kubelet", 7, "SyncLoop (PLEG)"),
    ];
    let answer = server.ingest_plain("journal", &lines);
    assert_eq!(answer["accepted"], json!(5), "{answer}");
    // Entries 3 to 5 again, with a new one: only the new one adds a document.
    let mut again = lines[2..].to_vec();
    again.push(entry(6, "kubelet.service", "kubelet", 6, "SyncLoop (ADD)"));
    server.ingest_plain("journal", &again);
    let total = |q: &str| -> u64 {
        let body = server.search("journal", &[("q", q), ("limit", "0")]);
        body["total"].as_u64().unwrap()
    };
    wait_until("the new entry searchable", SEARCHABLE_TIMEOUT, || {
        total("message:ADD") == 1
    });
    assert_eq!(total("*"), 6);
    assert_eq!(total("level:error"), 2);
    assert_eq!(total("unit:\"kubelet.service\""), 4);
    assert_eq!(total("identifier:kernel AND node:\"node-3\""), 1);
    let hit = server.search("journal", &[("q", "identifier:kernel"), ("limit", "1")]);
    assert_eq!(hit["hits"][0]["priority"], 3);
    assert_eq!(
        hit["hits"][0]["timestamp"],
        "2026-11-25T10:15:04.000000000Z"
    );
    assert!(hit["hits"][0].get("unit").is_none());
    server.stop();
}

/// A pod's story: its logs, its Events and its node's journal over one range, in one answer
/// ordered by time, each source's part with the query that finds it.
#[test]
fn a_pods_story_holds_its_logs_events_and_its_nodes_journal_in_time_order() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(
        &tmp.path().join("data"),
        "[indexer]\ncommit_interval_ms = 200\n",
    );
    let at = |secs: i64| rfc3339(T0 + secs);
    let logs = [
        json!({"timestamp": at(10), "namespace": "shop", "pod": "web-1", "container": "app", "node": "node-1", "message": "starting"}),
        json!({"timestamp": at(40), "namespace": "shop", "pod": "web-1", "container": "app", "node": "node-1", "level": "error", "message": "java.lang.OutOfMemoryError: Java heap space"}),
        json!({"timestamp": at(20), "namespace": "shop", "pod": "web-2", "container": "app", "node": "node-2", "message": "another pod"}),
    ];
    let log_lines: Vec<String> = logs.iter().map(|l| l.to_string()).collect();
    server.ingest_plain("logs", &log_lines);
    let backoff = Update {
        namespace: "shop",
        kind: "Pod",
        name: "web-1",
        reason: "BackOff",
        event_type: "Warning",
        uid: "ev-web-1".into(),
        count: 1,
        resource_version: 7,
        secs: T0 + 60,
        node: "node-1",
    };
    server.ingest_plain("events", &[raw(&backoff, 1).to_string()]);
    let journal = |secs: i64, node: &str, cursor: &str, message: &str| {
        json!({"__CURSOR": cursor, "__REALTIME_TIMESTAMP": format!("{}", (T0 + secs) * 1_000_000),
            "_HOSTNAME": node, "PRIORITY": "3", "SYSLOG_IDENTIFIER": "kernel", "MESSAGE": message})
        .to_string()
    };
    let journal_lines = [
        journal(
            50,
            "node-1",
            "c-1",
            "Memory cgroup out of memory: Killed process 4242 (java)",
        ),
        journal(55, "node-2", "c-2", "not this node"),
    ];
    server.ingest_plain("journal", &journal_lines);
    wait_until("every part searchable", SEARCHABLE_TIMEOUT, || {
        events_total(&server, "*") == 1
            && server.search("journal", &[("q", "*"), ("limit", "0")])["total"] == 2
            && server.search("logs", &[("q", "*"), ("limit", "0")])["total"] == 3
    });
    let story_url = |server: &Server| {
        server.at(&format!(
            "/api/v1/pods/shop/web-1/story?start={}&end={}",
            at(0),
            at(3600)
        ))
    };
    let (status, story) = json_of(reqwest::blocking::get(story_url(&server)).unwrap());
    assert_eq!(status, reqwest::StatusCode::OK, "{story}");
    assert_eq!(story["nodes"], json!(["node-1"]));
    let told: Vec<(String, String)> = story["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let text = e["message"].as_str().unwrap_or_default();
            (
                e["stream"].as_str().unwrap().to_string(),
                text.chars().take(20).collect(),
            )
        })
        .collect();
    let want: Vec<(String, String)> = [
        ("logs", "starting"),
        ("logs", "java.lang.OutOfMemor"),
        ("journal", "Memory cgroup out of"),
        ("events", "BackOff of web-1"),
    ]
    .iter()
    .map(|(s, m)| (s.to_string(), m.to_string()))
    .collect();
    assert_eq!(told, want);
    assert_eq!(story["sources"]["logs"]["total"], 2);
    assert_eq!(story["sources"]["journal"]["query"], "(node:\"node-1\")");
    assert_eq!(
        story["sources"]["events"]["query"],
        "namespace:\"shop\" AND kind:Pod AND name:\"web-1\""
    );

    // Through a searcher over two indexers, the logs on one and the Events and the journal on
    // the other: the same story.
    let a = Server::start_role("indexer", &tmp.path().join("a"), "");
    let b = Server::start_role("indexer", &tmp.path().join("b"), "");
    a.ingest_plain("logs", &log_lines);
    b.ingest_plain("events", &[raw(&backoff, 1).to_string()]);
    b.ingest_plain("journal", &journal_lines);
    wait_until(
        "every part searchable on its indexer",
        SEARCHABLE_TIMEOUT,
        || {
            b.search("events", &[("q", "*"), ("limit", "0")])["total"] == 1
                && b.search("journal", &[("q", "*"), ("limit", "0")])["total"] == 2
                && a.search("logs", &[("q", "*"), ("limit", "0")])["total"] == 3
        },
    );
    let root = Server::start_role(
        "searcher",
        &tmp.path().join("root"),
        &format!("[query]\nindexers = [\"{}\", \"{}\"]\n", a.url, b.url),
    );
    let (status, merged) = json_of(reqwest::blocking::get(story_url(&root)).unwrap());
    assert_eq!(status, reqwest::StatusCode::OK, "{merged}");
    for key in ["namespace", "pod", "nodes", "sources"] {
        assert_eq!(merged[key], story[key], "{key}");
    }
    let without_ids = |story: &Value| -> Vec<Value> {
        story["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                let mut e = e.clone();
                e.as_object_mut().unwrap().remove("_id");
                e
            })
            .collect()
    };
    assert_eq!(without_ids(&merged), without_ids(&story));
    assert_eq!(merged.get("partial"), None, "{merged}");
    // One indexer down: the story says it is partial.
    b.kill9();
    let (status, partial) = json_of(reqwest::blocking::get(story_url(&root)).unwrap());
    assert_eq!(status, reqwest::StatusCode::OK, "{partial}");
    assert_eq!(partial["partial"], true, "{partial}");
    assert_eq!(partial["sources"]["logs"]["total"], 2, "{partial}");
    server.stop();
}

/// The node's journal through the collector of `trawl standalone` (a fake journalctl: recorded
/// entries, `--after-cursor`, `--follow`), across a SIGKILL: every entry indexed once.
#[test]
fn journal_entries_through_the_collector_across_a_sigkill_are_each_indexed_once() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(tmp.path().join("pods")).unwrap();
    let entries = tmp.path().join("journal.ndjson");
    let write = |from: u64, to: u64| {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&entries)
            .unwrap();
        for i in from..to {
            let line = json!({"__CURSOR": format!("s=e2e;i={i}"),
                "__REALTIME_TIMESTAMP": format!("{}", (T0 as u64 + i) * 1_000_000),
                "_SYSTEMD_UNIT": "kubelet.service", "SYSLOG_IDENTIFIER": "kubelet",
                "PRIORITY": if i % 10 == 0 { "3" } else { "6" }, "MESSAGE": format!("kubelet line {i}")});
            writeln!(file, "{line}").unwrap();
        }
    };
    write(0, 2000);
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("collector/src/tests/fake-journalctl.sh");
    let config = format!(
        "[indexer]\ncommit_interval_ms = 200\n[collector]\npods_dir = \"{}\"\nnode_name = \"node-j\"\n\
         audit_webhook = false\n[collector.journal]\nenabled = true\nbatch_max_entries = 50\n\
         command = [\"sh\", \"{}\", \"{}\"]\n",
        tmp.path().join("pods").display(),
        script.display(),
        entries.display()
    );
    let total = |server: &Server, q: &str| -> u64 {
        let body = server.search("journal", &[("q", q), ("limit", "0")]);
        body["total"].as_u64().unwrap()
    };
    let server = Server::start_with_config("standalone", &data, &config);
    wait_until("some entries indexed", SEARCHABLE_TIMEOUT, || {
        total(&server, "*") > 0
    });
    server.kill9();
    write(2000, 2500);
    let server = Server::start_with_config("standalone", &data, &config);
    wait_until("every entry indexed", SEARCHABLE_TIMEOUT, || {
        total(&server, "*") >= 2500
    });
    // Once the last entry is searchable, everything sent before it is: exactly once each.
    wait_until("the last entry", SEARCHABLE_TIMEOUT, || {
        total(&server, "cursor:\"s=e2e;i=2499\"") == 1
    });
    assert_eq!(total(&server, "*"), 2500);
    assert_eq!(total(&server, "level:error"), 250);
    assert_eq!(
        total(&server, "node:\"node-j\" AND unit:\"kubelet.service\""),
        2500
    );
    let calls = std::fs::read_to_string(tmp.path().join("journal.ndjson.args")).unwrap();
    let calls: Vec<&str> = calls.lines().collect();
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert!(calls[1].contains("--after-cursor=s=e2e;i="), "{}", calls[1]);
    server.stop();
}
