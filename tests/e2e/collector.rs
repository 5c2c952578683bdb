//! The collector end to end: real `trawl collector` and `trawl indexer` processes, pod log
//! files rotated by rename and by copytruncate while they are written, the collector SIGKILLed
//! and restarted, the indexer down for a while: every line is indexed exactly once, whole.

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support::{free_port, wait_until, Server};

const PODS: usize = 6;
const LINES_PER_POD: usize = 1500;

struct PodFile {
    namespace: String,
    pod: String,
    dir: PathBuf,
    written: usize,
    rotations: usize,
}

impl PodFile {
    fn live(&self) -> PathBuf {
        self.dir.join("0.log")
    }
}

fn collector_config(pods_dir: &Path, data_dir: &Path, indexer: &str) -> String {
    format!(
        "[collector]\npods_dir = \"{}\"\ndata_dir = \"{}\"\nindexer_url = \"{indexer}\"\nnode_name = \"node-1\"\nbatch_max_wait_ms = 50\nrescan_interval_ms = 200\naudit_webhook = false\n",
        pods_dir.display(),
        data_dir.display()
    )
}

/// Appends `count` lines; every 4th line is written as two CRI partial fragments.
fn write_lines(pod: &mut PodFile, count: usize) {
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(pod.live())
        .unwrap();
    let mut out = String::new();
    for _ in 0..count {
        let n = pod.written;
        let ts = format!("2026-11-25T10:{:02}:{:02}.{:09}Z", (n / 60) % 60, n % 60, n);
        let text = format!("{} line {n} of the test  with  spaces", pod.pod);
        if n.is_multiple_of(4) {
            let (a, b) = text.split_at(text.len() / 2);
            out.push_str(&format!("{ts} stdout P {a}\n{ts} stdout F {b}\n"));
        } else {
            out.push_str(&format!("{ts} stderr F {text}\n"));
        }
        pod.written += 1;
    }
    file.write_all(out.as_bytes()).unwrap();
}

/// Rotation by rename (the kubelet's way) or by copytruncate (logrotate's).
fn rotate(pod: &mut PodFile) {
    pod.rotations += 1;
    let rotated = pod
        .dir
        .join(format!("0.log.2026112510{:04}", pod.rotations));
    if pod.rotations.is_multiple_of(2) {
        fs::rename(pod.live(), &rotated).unwrap();
    } else {
        fs::copy(pod.live(), &rotated).unwrap();
        OpenOptions::new()
            .write(true)
            .open(pod.live())
            .unwrap()
            .set_len(0)
            .unwrap();
    }
}

#[test]
fn every_line_exactly_once_through_rotations_collector_kills_and_an_indexer_outage() {
    let dir = tempfile::tempdir().unwrap();
    let pods_dir = dir.path().join("pods");
    let mut pods: Vec<PodFile> = (0..PODS)
        .map(|i| {
            let namespace = format!("ns{}", i % 3);
            let pod = format!("pod{i}");
            let pod_dir = pods_dir
                .join(format!("{namespace}_{pod}_uid-{i}"))
                .join("app");
            fs::create_dir_all(&pod_dir).unwrap();
            PodFile {
                namespace,
                pod,
                dir: pod_dir,
                written: 0,
                rotations: 0,
            }
        })
        .collect();

    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let indexer_dir = dir.path().join("indexer");
    let indexer_config = "[indexer]\ncommit_interval_ms = 200\n[collector]\nenabled = false\n";
    let mut indexer = Some(Server::start_listening(
        "indexer",
        &indexer_dir,
        indexer_config,
        &listen,
    ));
    let url = format!("http://{listen}");
    let collector_dir = dir.path().join("collector");
    let config = collector_config(&pods_dir, &collector_dir, &url);
    let mut collector = Some(Server::start_with_config(
        "collector",
        &collector_dir,
        &config,
    ));

    let rounds = 30;
    for round in 0..rounds {
        for pod in pods.iter_mut() {
            write_lines(pod, LINES_PER_POD / rounds);
            if round % 5 == 4 {
                rotate(pod);
            }
        }
        if round % 7 == 3 {
            // The collector dies without warning and comes back.
            collector.take().unwrap().kill9();
            collector = Some(Server::start_with_config(
                "collector",
                &collector_dir,
                &config,
            ));
        }
        if round == 12 {
            indexer.take().unwrap().kill9();
        }
        if (12..18).contains(&round) {
            // The indexer stays away a while: the collector keeps reading into its buffer.
            std::thread::sleep(Duration::from_millis(250));
        }
        if round == 18 {
            indexer = Some(Server::start_listening(
                "indexer",
                &indexer_dir,
                indexer_config,
                &listen,
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let indexer = indexer.unwrap();
    let expected = (PODS * LINES_PER_POD) as u64;
    wait_until("every line is indexed", Duration::from_secs(90), || {
        indexer.total("*", &[]) >= expected
    });
    // A little longer, so that a late duplicate would show.
    collector.take().unwrap().stop();
    indexer.wait_total("*", expected);

    for pod in &pods {
        let answer = indexer.search(
            "logs",
            &[
                ("q", &format!("pod:{}", pod.pod)),
                ("limit", "10000"),
                ("fields", "message,namespace,container,pod_uid"),
            ],
        );
        let hits = answer["hits"].as_array().unwrap();
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        for hit in hits {
            assert_eq!(hit["namespace"], pod.namespace.as_str());
            assert_eq!(hit["container"], "app");
            *seen
                .entry(hit["message"].as_str().unwrap().to_string())
                .or_default() += 1;
        }
        let duplicates: Vec<_> = seen.iter().filter(|(_, &n)| n > 1).collect();
        assert!(
            duplicates.is_empty(),
            "{}: duplicated {duplicates:?}",
            pod.pod
        );
        for n in 0..pod.written {
            let text = format!("{} line {n} of the test  with  spaces", pod.pod);
            assert!(seen.contains_key(&text), "{}: line {n} missing", pod.pod);
        }
        assert_eq!(hits.len(), pod.written, "{}", pod.pod);
    }
    println!(
        "collector e2e: {} lines written across {PODS} pods, {} indexed, each once",
        expected,
        indexer.total("*", &[])
    );
}

#[test]
fn webhook_event_list_posted_twice_is_indexed_once_and_garbage_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = format!(
        "[collector]\npods_dir = \"{}\"\nnode_name = \"cp-1\"\nbatch_max_wait_ms = 50\n[indexer]\ncommit_interval_ms = 100\n",
        dir.path().join("no-pods-yet").display()
    );
    let server = Server::start_with_config("standalone", &data, &config);
    let event = |id: &str, stage: &str, verb: &str| {
        serde_json::json!({
            "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata",
            "auditID": id, "stage": stage, "verb": verb,
            "requestURI": "/api/v1/namespaces/shop/secrets/db",
            "user": {"username": "alice"}, "sourceIPs": ["10.0.0.1"],
            "objectRef": {"resource": "secrets", "namespace": "shop", "name": "db", "apiVersion": "v1"},
            "responseStatus": {"code": 200},
            "requestReceivedTimestamp": "2026-11-25T10:15:00.000000Z",
            "stageTimestamp": "2026-11-25T10:15:00.002000Z"
        })
    };
    let list = serde_json::json!({"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": [
        event("a-1", "RequestReceived", "get"),
        event("a-1", "ResponseComplete", "get"),
        event("a-2", "ResponseComplete", "delete"),
    ]});
    let client = reqwest::blocking::Client::new();
    for _ in 0..2 {
        let resp = client
            .post(server.at("/api/v1/audit/webhook"))
            .json(&list)
            .send()
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200);
    }
    let bad = client
        .post(server.at("/api/v1/audit/webhook"))
        .body("{\"kind\": \"EventList\", \"items\": [")
        .send()
        .unwrap();
    assert_eq!(bad.status().as_u16(), 400);
    let body: serde_json::Value = bad.json().unwrap();
    assert!(body["error"]["message"].is_string(), "{body}");

    wait_until(
        "the audit events are searchable",
        Duration::from_secs(30),
        || server.search("audit", &[("q", "*"), ("limit", "0")])["total"] == 3,
    );
    // Still three after a further commit: the second posting added nothing.
    let again = client
        .post(server.at("/api/v1/audit/webhook"))
        .json(&serde_json::json!({"kind": "EventList", "items": [event("a-3", "ResponseComplete", "list")]}))
        .send()
        .unwrap();
    assert_eq!(again.status().as_u16(), 200);
    wait_until(
        "the sentinel event is searchable",
        Duration::from_secs(30),
        || server.search("audit", &[("q", "audit_id:a-3"), ("limit", "0")])["total"] == 1,
    );
    assert_eq!(
        server.search("audit", &[("q", "*"), ("limit", "0")])["total"],
        4
    );
    assert_eq!(
        server.search("audit", &[("q", "verb:delete"), ("limit", "0")])["total"],
        1
    );
}
