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

pub(crate) struct PodFile {
    namespace: String,
    pod: String,
    dir: PathBuf,
    pub(crate) written: usize,
    rotations: usize,
}

impl PodFile {
    fn live(&self) -> PathBuf {
        self.dir.join("0.log")
    }
}

pub(crate) fn collector_config(pods_dir: &Path, data_dir: &Path, indexer: &str) -> String {
    format!(
        "[collector]\npods_dir = \"{}\"\ndata_dir = \"{}\"\nindexer_url = \"{indexer}\"\nnode_name = \"node-1\"\nbatch_max_wait_ms = 50\nrescan_interval_ms = 200\naudit_webhook = false\n",
        pods_dir.display(),
        data_dir.display()
    )
}

/// Appends `count` lines; every 4th line is written as two CRI partial fragments.
pub(crate) fn write_lines(pod: &mut PodFile, count: usize) {
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

/// Asserts that the index holds every line written to `pods`, each exactly once, with its
/// namespace and container.
pub(crate) fn assert_each_line_once(indexer: &Server, pods: &[PodFile]) {
    for pod in pods {
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
}

pub(crate) fn pod_files(pods_dir: &Path, count: usize) -> Vec<PodFile> {
    pod_files_named(pods_dir, "pod", count)
}

/// `count` pods named `<prefix><i>` in three namespaces.
pub(crate) fn pod_files_named(pods_dir: &Path, prefix: &str, count: usize) -> Vec<PodFile> {
    (0..count)
        .map(|i| {
            let namespace = format!("ns{}", i % 3);
            let pod = format!("{prefix}{i}");
            let dir = pods_dir
                .join(format!("{namespace}_{pod}_uid-{i}"))
                .join("app");
            fs::create_dir_all(&dir).unwrap();
            PodFile {
                namespace,
                pod,
                dir,
                written: 0,
                rotations: 0,
            }
        })
        .collect()
}

#[test]
fn every_line_exactly_once_through_rotations_collector_kills_and_an_indexer_outage() {
    let dir = tempfile::tempdir().unwrap();
    let pods_dir = dir.path().join("pods");
    let mut pods = pod_files(&pods_dir, PODS);

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

    assert_each_line_once(&indexer, &pods);
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

/// The value of a collector metric (0 when the series does not exist yet).
fn metric(server: &Server, series: &str) -> f64 {
    server.metric(series).unwrap_or(0.0)
}

/// Regression for issue 14: a collector pointed for a while at a URL that answers 404 (a typo
/// in the path), then restarted with the right URL, used to lose every line (0 of 4,000). Now
/// the batches are kept and retried, the collector says why and turns unready, and after the
/// restart every line is indexed exactly once.
#[test]
fn a_collector_pointed_at_a_404_then_at_the_right_url_indexes_every_line_once() {
    let dir = tempfile::tempdir().unwrap();
    let pods_dir = dir.path().join("pods");
    let mut pods = pod_files(&pods_dir, 4);
    let indexer = Server::start_role(
        "indexer",
        &dir.path().join("indexer"),
        "[indexer]\ncommit_interval_ms = 200\n",
    );
    let collector_dir = dir.path().join("collector");
    let wrong = collector_config(&pods_dir, &collector_dir, &format!("{}/typo", indexer.url))
        + "stuck_ready_after_secs = 1\n";
    let collector = Server::start_with_config("collector", &collector_dir, &wrong);
    for pod in pods.iter_mut() {
        write_lines(pod, 1000);
    }
    let refused = "trawl_collector_batches_refused_total{status=\"404\"}";
    wait_until(
        "the collector meets the 404s",
        Duration::from_secs(30),
        || metric(&collector, refused) >= 3.0,
    );
    wait_until(
        "the stuck collector turns unready",
        Duration::from_secs(30),
        || collector.get("/health/ready").status().as_u16() == 503,
    );
    wait_until(
        "the time stuck is published",
        Duration::from_secs(30),
        || metric(&collector, "trawl_collector_stuck_seconds") >= 1.0,
    );
    assert_eq!(
        metric(&collector, "trawl_collector_records_shipped_total"),
        0.0
    );
    assert_eq!(indexer.total("*", &[]), 0);
    collector.stop();

    let right = collector_config(&pods_dir, &collector_dir, &indexer.url);
    let collector = Server::start_with_config("collector", &collector_dir, &right);
    indexer.wait_total("*", 4000);
    assert_each_line_once(&indexer, &pods);
    // The refused batches were all kept: what ships now is what was read before, once.
    wait_until(
        "the collector counts 4000 shipped",
        Duration::from_secs(30),
        || metric(&collector, "trawl_collector_records_shipped_total") == 4000.0,
    );
    assert_eq!(collector.get("/health/ready").status().as_u16(), 200);
    collector.stop();
}

/// A deterministic incompressible text of `len` letters.
fn noise(len: usize, seed: u64) -> String {
    let mut x = seed;
    (0..len)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            char::from(b'a' + ((x >> 33) % 26) as u8)
        })
        .collect()
}

/// An indexer with a lowered `max_body_bytes`: the collector's batches are answered 413 and
/// split until they pass, every line indexed once; a line too large alone is kept in the
/// collector's dead-letter file (with its file, offset and reason) and counted.
#[test]
fn batches_over_the_indexers_body_limit_are_split_and_a_line_too_large_alone_is_dead_lettered() {
    let dir = tempfile::tempdir().unwrap();
    let pods_dir = dir.path().join("pods");
    let mut pods = pod_files(&pods_dir, 3);
    let indexer = Server::start_role(
        "indexer",
        &dir.path().join("indexer"),
        "[indexer]\ncommit_interval_ms = 200\nmax_body_bytes = 16384\n",
    );
    let collector_dir = dir.path().join("collector");
    // Batches of 256 KiB compress to well over the limit, but under the 8× the indexer reads
    // before it answers 413 (past that it resets the connection).
    let config =
        collector_config(&pods_dir, &collector_dir, &indexer.url) + "batch_max_bytes = 262144\n";
    for pod in pods.iter_mut() {
        write_lines(pod, 1500);
    }
    // One line that stays over the limit alone, between the others of pod0.
    let huge = format!("huge {}", noise(40_000, 7));
    let mut file = OpenOptions::new()
        .append(true)
        .open(pods[0].live())
        .unwrap();
    let huge_offset = file.metadata().unwrap().len();
    file.write_all(format!("2026-11-25T11:00:00.000000000Z stdout F {huge}\n").as_bytes())
        .unwrap();
    drop(file);
    write_lines(&mut pods[0], 500);
    let collector = Server::start_with_config("collector", &collector_dir, &config);

    indexer.wait_total("*", 5000);
    wait_until(
        "the dead letter is counted",
        Duration::from_secs(30),
        || {
            metric(
                &collector,
                "trawl_collector_dead_letter_records_total{reason=\"payload_too_large\"}",
            ) == 1.0
        },
    );
    assert!(metric(&collector, "trawl_collector_batches_split_total") >= 1.0);
    assert!(
        metric(
            &collector,
            "trawl_collector_batches_refused_total{status=\"413\"}"
        ) >= 2.0
    );
    assert_each_line_once(&indexer, &pods);
    assert_eq!(indexer.total("message:huge", &[]), 0);

    let dead = fs::read_to_string(collector_dir.join("dead-letter/dead-letter.ndjson")).unwrap();
    let dead: Vec<serde_json::Value> = dead
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(dead.len(), 1, "{dead:?}");
    let d = &dead[0];
    assert_eq!(d["stream"], "logs");
    assert_eq!(d["file"], pods[0].live().display().to_string());
    assert_eq!(d["offset"], huge_offset);
    let reason = d["reason"].as_str().unwrap();
    assert!(reason.starts_with("payload_too_large: "), "{reason}");
    let raw: serde_json::Value = serde_json::from_str(d["raw"].as_str().unwrap()).unwrap();
    assert_eq!(raw["message"], huge.as_str());
    assert_eq!(raw["pod"], "pod0");
    collector.stop();
}

/// Runs `trawl <args>`, each `CONFIG` in `args` replaced by the path of a file holding
/// `config`; returns whether it succeeded and its standard error. Fails if it is still running
/// after [`crate::support::START_TIMEOUT`] (a server that started when it should not have).
fn run_trawl(dir: &Path, args: &[&str], config: &str) -> (bool, String) {
    let path = dir.join(format!("run-{}.toml", args.join("-").replace('/', "_")));
    fs::write(&path, config).unwrap();
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_trawl"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("TRAWL_") {
            command.env_remove(key);
        }
    }
    for arg in args {
        if *arg == "CONFIG" {
            command.arg(&path);
        } else {
            command.arg(arg);
        }
    }
    let stderr_path = path.with_extension("stderr");
    let mut child = command
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(fs::File::create(&stderr_path).unwrap())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + crate::support::START_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("trawl {args:?} still runs with {config}");
        }
        std::thread::sleep(Duration::from_millis(25));
    };
    (status.success(), fs::read_to_string(&stderr_path).unwrap())
}

/// Configuration that cannot work is refused at start, naming the key, and `trawl config check
/// --role` says the same: a collector without `indexer_url` (it used to start and ship to its
/// own address), an `indexer_url` whose host does not parse, a searcher without indexers.
#[test]
fn a_collector_without_an_indexer_url_or_a_searcher_without_indexers_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let pods = dir.path().join("pods");
    let cases = [
        (
            "collector",
            format!("[collector]\npods_dir = \"{}\"\n", pods.display()),
            "`collector.indexer_url`: `trawl collector` needs the indexer to ship to",
        ),
        (
            "collector",
            format!(
                "[collector]\npods_dir = \"{}\"\nindexer_url = \"http://:7400\"\n",
                pods.display()
            ),
            "`collector.indexer_url`: `http://:7400` is not an http:// or https:// URL with a host: empty host",
        ),
        (
            "searcher",
            "[collector]\nenabled = false\n".to_string(),
            "`query.indexers`: `trawl searcher` needs at least one indexer",
        ),
        (
            "searcher",
            "[query]\nindexers = [\"http://indexer:port\"]\n".to_string(),
            "`query.indexers.0`: `http://indexer:port` is not an http:// or https:// URL with a host: invalid port number",
        ),
    ];
    for (role, config, expected) in cases {
        let data = dir.path().join("data");
        let (ok, stderr) = run_trawl(
            dir.path(),
            &[
                role,
                "--listen",
                "127.0.0.1:0",
                "--data-dir",
                data.to_str().unwrap(),
                "--config",
                "CONFIG",
            ],
            &config,
        );
        assert!(!ok, "trawl {role} started with {config}");
        assert!(stderr.contains(expected), "{role}: {stderr}");

        let (ok, stderr) = run_trawl(
            dir.path(),
            &["config", "check", "--role", role, "CONFIG"],
            &config,
        );
        assert!(!ok);
        assert!(
            stderr.contains(expected),
            "config check --role {role}: {stderr}"
        );
    }
    // Standalone needs no indexer_url: it ships to the port it bound.
    let (ok, stderr) = run_trawl(
        dir.path(),
        &["config", "check", "--role", "standalone", "CONFIG"],
        &format!("[collector]\npods_dir = \"{}\"\n", pods.display()),
    );
    assert!(ok, "{stderr}");
}
