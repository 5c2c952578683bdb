//! The journal reader against a fake journalctl (`fake-journalctl.sh`: recorded entries, the
//! `--after-cursor` it is given, `--follow` by tailing) and a fake indexer: entries shipped
//! with the node stamped, the cursor saved once acknowledged, a restart resuming after it, and
//! batches the indexer refuses retried without reading further.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};
use tokio::sync::watch;

use crate::journal::{arguments, run, JournalSettings};
use crate::metrics::Metrics;
use crate::ship::StreamIngest;

/// The fake: `sh <script> <entries file>` as the command.
fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src/tests/fake-journalctl.sh")
}

fn entry(i: u32, unit: &str, message: &str) -> String {
    json!({"__CURSOR": format!("s=1;i={i}"), "__REALTIME_TIMESTAMP": format!("{}", 1_795_601_700_000_000u64 + u64::from(i)),
        "_SYSTEMD_UNIT": unit, "SYSLOG_IDENTIFIER": "kubelet", "PRIORITY": "6",
        "MESSAGE": message, "_HOSTNAME": "ip-10-0-0-1"})
    .to_string()
}

/// Three entries: two of the kubelet, one of containerd.
fn first_three() -> [String; 3] {
    [
        entry(1, "kubelet.service", "Started kubelet"),
        entry(2, "kubelet.service", "probe failed"),
        entry(3, "containerd.service", "pulled"),
    ]
}

fn append(file: &Path, lines: &[String]) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)
        .unwrap();
    for line in lines {
        writeln!(f, "{line}").unwrap();
    }
}

/// The fake indexer: the entries it acknowledged, how many requests it refuses first (503),
/// and whether it answers 400 instead.
#[derive(Default)]
struct Indexer {
    received: Mutex<Vec<Value>>,
    refuse: AtomicUsize,
    bad_request: std::sync::atomic::AtomicBool,
}

async fn ingest(State(indexer): State<Arc<Indexer>>, body: Bytes) -> Response {
    if indexer.bad_request.load(Ordering::SeqCst) {
        return (StatusCode::BAD_REQUEST, "bad batch").into_response();
    }
    if indexer
        .refuse
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        return (StatusCode::SERVICE_UNAVAILABLE, "try later").into_response();
    }
    let mut received = indexer.received.lock().unwrap();
    for line in body.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        received.push(serde_json::from_slice(line).unwrap());
    }
    axum::Json(json!({"accepted": 1})).into_response()
}

async fn indexer() -> (Arc<Indexer>, String) {
    let state = Arc::new(Indexer::default());
    let app = Router::new()
        .route("/api/v1/journal/ingest", post(ingest))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (state, format!("http://{addr}"))
}

fn settings(dir: &Path, entries: &Path, indexer_url: &str) -> JournalSettings {
    JournalSettings {
        command: vec![
            "sh".into(),
            script().display().to_string(),
            entries.display().to_string(),
        ],
        units: vec!["kubelet.service".into(), "containerd.service".into()],
        kernel: true,
        batch_max_entries: 2,
        state_path: dir.join("journal.json"),
        ingest: StreamIngest::with_client(
            &[indexer_url.to_string()],
            "journal",
            reqwest::Client::new(),
        ),
        node: "node-1".into(),
        cluster: "prod".into(),
    }
}

async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn cursors(indexer: &Indexer) -> Vec<String> {
    indexer
        .received
        .lock()
        .unwrap()
        .iter()
        .map(|e| e["__CURSOR"].as_str().unwrap().to_string())
        .collect()
}

fn saved(dir: &Path) -> Option<String> {
    let value: Value =
        serde_json::from_slice(&std::fs::read(dir.join("journal.json")).ok()?).ok()?;
    value["cursor"].as_str().map(str::to_string)
}

#[test]
fn journalctl_is_asked_for_json_after_the_cursor_with_units_or_the_kernel() {
    let s = settings(Path::new("/x"), Path::new("/x/entries"), "http://i");
    let args = arguments(&s, Some("s=1;i=4"));
    assert_eq!(
        args[..2],
        [script().display().to_string(), "/x/entries".to_string()]
    );
    assert_eq!(
        args[2..].join(" "),
        "-o json --follow --no-pager --after-cursor=s=1;i=4 \
         _SYSTEMD_UNIT=kubelet.service _SYSTEMD_UNIT=containerd.service + _TRANSPORT=kernel"
    );
    let kernel_only = JournalSettings {
        units: Vec::new(),
        ..s
    };
    assert_eq!(
        arguments(&kernel_only, None)[2..].join(" "),
        "-o json --follow --no-pager _TRANSPORT=kernel"
    );
}

#[tokio::test]
async fn entries_ship_once_acknowledged_and_a_restart_resumes_after_the_saved_cursor() {
    let dir = tempfile::tempdir().unwrap();
    let entries = dir.path().join("entries.ndjson");
    append(&entries, &first_three());
    let (indexer, url) = indexer().await;
    // The first two requests are refused: the entries wait, nothing is skipped.
    indexer.refuse.store(2, Ordering::SeqCst);
    let metrics = Metrics::default();
    let (stop, stop_rx) = watch::channel(false);
    tokio::spawn(run(
        settings(dir.path(), &entries, &url),
        metrics.clone(),
        stop_rx,
    ));
    wait_for("three entries", || cursors(&indexer).len() == 3).await;
    assert_eq!(cursors(&indexer), ["s=1;i=1", "s=1;i=2", "s=1;i=3"]);
    wait_for("the cursor saved", || {
        saved(dir.path()).as_deref() == Some("s=1;i=3")
    })
    .await;
    let first = indexer.received.lock().unwrap()[0].clone();
    assert_eq!(
        (first["node"].as_str(), first["cluster"].as_str()),
        (Some("node-1"), Some("prod"))
    );
    assert_eq!(metrics.journal_entries.get(), 3);
    assert!(
        metrics.journal_errors.get() >= 2,
        "the refusals are counted"
    );
    // A new entry while following.
    append(&entries, &[entry(4, "kubelet.service", "SyncLoop")]);
    wait_for("the followed entry", || cursors(&indexer).len() == 4).await;
    wait_for("its cursor saved", || {
        saved(dir.path()).as_deref() == Some("s=1;i=4")
    })
    .await;
    drop(stop);

    // Restarted: journalctl is asked for what follows the saved cursor, and only that ships.
    append(&entries, &[entry(5, "containerd.service", "stopped")]);
    let (_stop, stop_rx) = watch::channel(false);
    tokio::spawn(run(
        settings(dir.path(), &entries, &url),
        metrics.clone(),
        stop_rx,
    ));
    wait_for("the entry after the cursor", || {
        cursors(&indexer).len() == 5
    })
    .await;
    assert_eq!(cursors(&indexer)[4], "s=1;i=5");
    let calls = std::fs::read_to_string(dir.path().join("entries.ndjson.args")).unwrap();
    let calls: Vec<&str> = calls.lines().collect();
    assert_eq!(calls.len(), 2);
    assert!(!calls[0].contains("--after-cursor"), "{}", calls[0]);
    assert!(calls[1].contains("--after-cursor=s=1;i=4"), "{}", calls[1]);
}

#[tokio::test]
async fn entries_go_to_the_next_indexer_once_the_first_is_unavailable_for_long() {
    let dir = tempfile::tempdir().unwrap();
    let entries = dir.path().join("entries.ndjson");
    append(&entries, &first_three());
    let (first, first_url) = indexer().await;
    let (second, second_url) = indexer().await;
    first.refuse.store(usize::MAX, Ordering::SeqCst);
    let metrics = Metrics::default();
    let mut s = settings(dir.path(), &entries, &first_url);
    s.ingest = StreamIngest::with_client(
        &[first_url.clone(), second_url.clone()],
        "journal",
        reqwest::Client::new(),
    )
    .failing_over(Duration::from_millis(200), metrics.failovers.clone());
    let (_stop, stop_rx) = watch::channel(false);
    tokio::spawn(run(s, metrics.clone(), stop_rx));
    wait_for("three entries on the second", || {
        cursors(&second).len() == 3
    })
    .await;
    assert_eq!(cursors(&second), ["s=1;i=1", "s=1;i=2", "s=1;i=3"]);
    assert!(cursors(&first).is_empty());
    assert_eq!(metrics.failovers.get(), 1);
    wait_for("the cursor saved", || {
        saved(dir.path()).as_deref() == Some("s=1;i=3")
    })
    .await;
}

#[tokio::test]
async fn a_refused_batch_does_not_move_to_another_indexer_an_unanswered_one_does() {
    let (first, first_url) = indexer().await;
    let (second, second_url) = indexer().await;
    let failovers = prometheus_client::metrics::counter::Counter::default();
    let ingest = StreamIngest::with_client(
        &[first_url.clone(), second_url.clone()],
        "journal",
        reqwest::Client::new(),
    )
    .failing_over(Duration::ZERO, failovers.clone());
    let doc = [json!({"__CURSOR": "c"})];
    // 400: the batch is at fault, not the indexer.
    first.bad_request.store(true, Ordering::SeqCst);
    let err = ingest.post(&doc, &[]).await.unwrap_err();
    assert!(err.contains("400"), "{err}");
    assert_eq!(ingest.url(), format!("{first_url}/api/v1/journal/ingest"));
    // 503: unavailable, and with no wait configured, the next post goes to the second.
    first.bad_request.store(false, Ordering::SeqCst);
    first.refuse.store(1, Ordering::SeqCst);
    let err = ingest.post(&doc, &[]).await.unwrap_err();
    assert!(err.contains("503"), "{err}");
    assert_eq!(ingest.url(), format!("{second_url}/api/v1/journal/ingest"));
    ingest.post(&doc, &[]).await.unwrap();
    assert_eq!(second.received.lock().unwrap().len(), 1);
    assert_eq!(failovers.get(), 1);
    // Nobody at the first address: that post fails, the next goes to the second.
    let dead = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let ingest = StreamIngest::with_client(
        &[dead.clone(), second_url.clone()],
        "journal",
        reqwest::Client::new(),
    )
    .failing_over(Duration::ZERO, failovers.clone());
    ingest.post(&doc, &[]).await.unwrap_err();
    ingest.post(&doc, &[]).await.unwrap();
    assert_eq!(second.received.lock().unwrap().len(), 2);
    assert_eq!(failovers.get(), 2);
    assert!(first.received.lock().unwrap().is_empty());
}
