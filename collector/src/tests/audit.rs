//! The audit webhook and audit log tailing.

use std::collections::HashMap;

use serde_json::{json, Value};

use super::fake::*;

fn event(id: &str, stage: &str) -> Value {
    json!({
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": "Metadata",
        "auditID": id,
        "stage": stage,
        "requestURI": "/api/v1/namespaces/shop/pods",
        "verb": "list",
        "user": {"username": "alice", "groups": ["system:authenticated"]},
        "sourceIPs": ["10.0.0.1"],
        "objectRef": {"resource": "pods", "namespace": "shop", "apiVersion": "v1"},
        "responseStatus": {"metadata": {}, "code": 200},
        "requestReceivedTimestamp": "2026-11-25T10:15:00.000000Z",
        "stageTimestamp": "2026-11-25T10:15:00.012000Z"
    })
}

fn audit_keys(index: &Shared) -> HashMap<String, usize> {
    let mut keys = HashMap::new();
    let i = index.lock().unwrap();
    for r in i.records.get("audit").into_iter().flatten() {
        let key = format!(
            "{}/{}",
            r["audit_id"].as_str().unwrap(),
            r["stage"].as_str().unwrap()
        );
        assert_eq!(r["cluster"], "test");
        *keys.entry(key).or_default() += 1;
    }
    keys
}

fn audit_count(index: &Shared) -> usize {
    index
        .lock()
        .unwrap()
        .records
        .get("audit")
        .map_or(0, Vec::len)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_duplicates_once_and_malformed_is_400() {
    let root = tempfile::tempdir().unwrap();
    let (index, addr) = start_indexer().await;
    let cfg = config(root.path());
    let handle = start(&cfg, addr).await;
    let app = handle.webhook_router();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!(
        "http://{}/api/v1/audit/webhook",
        listener.local_addr().unwrap()
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let client = reqwest::Client::new();

    let list = json!({
        "kind": "EventList",
        "apiVersion": "audit.k8s.io/v1",
        "items": [
            event("a1", "RequestReceived"),
            event("a1", "ResponseComplete"),
            event("a2", "ResponseComplete"),
            {"kind": "Event", "stage": "ResponseComplete"}
        ]
    });
    let first = client.post(&hook).json(&list).send().await.unwrap();
    assert_eq!(first.status(), 200);
    let body: Value = first.json().await.unwrap();
    assert_eq!(
        body,
        json!({"accepted": 3, "deduplicated": 0, "rejected": 1})
    );
    let second = client.post(&hook).json(&list).send().await.unwrap();
    assert_eq!(second.status(), 200);
    let body: Value = second.json().await.unwrap();
    assert_eq!(body["deduplicated"], 3);

    for bad in [&b"{not json"[..], b"[1,2]", br#"{"kind":"Pod"}"#] {
        let resp = client.post(&hook).body(bad.to_vec()).send().await.unwrap();
        assert_eq!(resp.status(), 400);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], "bad_request");
    }
    let gz = client
        .post(&hook)
        .header("content-encoding", "gzip")
        .body(b"not gzip".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(gz.status(), 400);

    // Too large, as sent (past 64 MiB) or once decompressed (past 256 MiB): the one code of
    // every 413.
    let bomb = zstd::encode_all(&vec![b' '; 257 << 20][..], 1).unwrap();
    let big = [("zstd", bomb), ("identity", vec![b' '; (64 << 20) + 1])];
    for (encoding, body) in big {
        let resp = client
            .post(&hook)
            .header("content-encoding", encoding)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 413, "{encoding}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(
            body["error"]["code"], "payload_too_large",
            "{encoding}: {body}"
        );
    }

    // Events after the bad requests still go through.
    let more = json!({"kind": "EventList", "items": [event("a3", "ResponseComplete")]});
    assert_eq!(
        client
            .post(&hook)
            .json(&more)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    wait_for("four audit events", || audit_count(&index) >= 4).await;
    handle.shutdown().await;
    let keys = audit_keys(&index);
    assert_eq!(keys.len(), 4, "{keys:?}");
    assert!(keys.values().all(|&n| n == 1), "{keys:?}");
    assert!(keys.contains_key("a1/RequestReceived"));
    assert!(keys.contains_key("a3/ResponseComplete"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_events_survive_a_crash_before_shipping() {
    let root = tempfile::tempdir().unwrap();
    let (index, addr) = start_indexer().await;
    index.lock().unwrap().unavailable = true;
    let cfg = config(root.path());
    let handle = start(&cfg, addr).await;
    let state_app = handle.webhook_router();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!(
        "http://{}/api/v1/audit/webhook",
        listener.local_addr().unwrap()
    );
    tokio::spawn(async move { axum::serve(listener, state_app).await.unwrap() });
    let items: Vec<Value> = (0..20)
        .map(|i| event(&format!("e{i}"), "ResponseComplete"))
        .collect();
    let list = json!({"kind": "EventList", "items": items});
    let resp = reqwest::Client::new()
        .post(&hook)
        .json(&list)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    handle.kill().await;
    index.lock().unwrap().unavailable = false;
    let handle = start(&cfg, addr).await;
    wait_for("the spooled events", || audit_count(&index) >= 20).await;
    handle.shutdown().await;
    let keys = audit_keys(&index);
    assert_eq!(keys.len(), 20);
    assert!(keys.values().all(|&n| n == 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_log_rotated_by_rename_is_drained() {
    let root = tempfile::tempdir().unwrap();
    let (index, addr) = start_indexer().await;
    let mut cfg = config(root.path());
    let audit_dir = root.path().join("kube");
    std::fs::create_dir_all(&audit_dir).unwrap();
    let audit_log = audit_dir.join("audit.log");
    cfg.collector.audit_log_paths = vec![audit_log.clone()];
    let handle = start(&cfg, addr).await;
    let write = |from: usize, to: usize| {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&audit_log)
            .unwrap();
        for i in from..to {
            let mut line =
                serde_json::to_vec(&event(&format!("r{i}"), "ResponseComplete")).unwrap();
            line.push(b'\n');
            f.write_all(&line).unwrap();
        }
        // A malformed line is skipped and counted, nothing else is affected.
        f.write_all(b"{garbage\n").unwrap();
    };
    write(0, 30);
    std::fs::rename(
        &audit_log,
        audit_dir.join("audit-2026-11-25T10-15-00.000.log"),
    )
    .unwrap();
    write(30, 60);
    std::fs::rename(
        &audit_log,
        audit_dir.join("audit-2026-11-25T10-16-00.000.log"),
    )
    .unwrap();
    write(60, 70);
    wait_for("seventy audit events", || audit_count(&index) >= 70).await;
    let failures = handle.metrics().parse_failures.get();
    handle.shutdown().await;
    let keys = audit_keys(&index);
    assert_eq!(keys.len(), 70);
    assert!(keys.values().all(|&n| n == 1));
    assert!(failures >= 3, "{failures}");
}
