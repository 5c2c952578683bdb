//! Audit deduplication by (audit_id, stage) across seals and restarts: events posted to the
//! webhook and to the audit ingest endpoint are sealed into a split, the server is killed
//! (SIGKILL) and restarted, and the same events resent through either path are not indexed
//! again, while a new stage of a known audit id is.

use std::time::Duration;

use reqwest::blocking::Client;
use serde_json::{json, Value};

use crate::support::{json_of, ndjson, wait_until, Server};

const SEALED: &str = "trawl_indexer_splits_sealed_total{stream=\"audit\"}";

fn event(id: &str, stage: &str, second: u32) -> Value {
    json!({
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata",
        "auditID": id, "stage": stage, "verb": "get",
        "requestURI": "/api/v1/namespaces/shop/configmaps/app",
        "user": {"username": "alice"}, "sourceIPs": ["10.0.0.1"],
        "objectRef": {"resource": "configmaps", "namespace": "shop", "name": "app", "apiVersion": "v1"},
        "responseStatus": {"code": 200},
        "requestReceivedTimestamp": format!("2026-11-25T10:20:{second:02}.000000Z"),
        "stageTimestamp": format!("2026-11-25T10:20:{second:02}.003000Z"),
    })
}

/// Posts an EventList to the webhook; returns its answer.
fn webhook(server: &Server, events: &[Value]) -> Value {
    let list = json!({"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": events});
    let resp = Client::new()
        .post(server.at("/api/v1/audit/webhook"))
        .json(&list)
        .send()
        .unwrap();
    let (status, body) = json_of(resp);
    assert_eq!(status.as_u16(), 200, "webhook answered {body}");
    body
}

/// Posts events as NDJSON to the audit ingest endpoint; returns its answer.
fn ingest(server: &Server, events: &[Value]) -> Value {
    let lines: Vec<String> = events.iter().map(Value::to_string).collect();
    let (status, body) = server.ingest_raw("audit", ndjson(&lines), None);
    assert_eq!(status.as_u16(), 200, "ingest answered {body}");
    body
}

fn total(server: &Server, q: &str) -> u64 {
    server.search("audit", &[("q", q), ("limit", "0")])["total"]
        .as_u64()
        .unwrap()
}

#[test]
fn audit_events_resent_after_a_seal_and_a_kill_are_indexed_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // The hot index is sealed once it holds the six events, not before.
    let config = format!(
        "[indexer]\ncommit_interval_ms = 100\nsplit_max_docs = 6\nsplit_max_age_secs = 3600\n\n\
         [collector]\npods_dir = \"{}\"\nnode_name = \"cp-1\"\nbatch_max_wait_ms = 50\n",
        dir.path().join("no-pods").display()
    );
    let by_webhook = [
        event("w-1", "RequestReceived", 1),
        event("w-1", "ResponseComplete", 1),
        event("w-2", "ResponseComplete", 2),
    ];
    let by_ingest = [
        event("i-1", "RequestReceived", 3),
        event("i-1", "ResponseComplete", 3),
        event("i-2", "ResponseComplete", 4),
    ];

    let server = Server::start_with_config("standalone", &data, &config);
    assert_eq!(webhook(&server, &by_webhook)["accepted"], 3);
    assert_eq!(ingest(&server, &by_ingest)["accepted"], 3);
    wait_until(
        "the six events are sealed into one split",
        Duration::from_secs(30),
        || server.metric(SEALED) == Some(1.0) && total(&server, "*") == 6,
    );
    server.kill9();

    let server = Server::start_with_config("standalone", &data, &config);
    assert_eq!(total(&server, "*"), 6);
    // The webhook knows its events again (rebuilt from its spool).
    let again = webhook(&server, &by_webhook);
    assert_eq!(
        (&again["accepted"], &again["deduplicated"]),
        (&json!(0), &json!(3)),
        "{again}"
    );
    // The indexer finds the sealed first copies, whichever path the resend takes.
    ingest(&server, &by_ingest);
    ingest(&server, &by_webhook);
    // New stages of known audit ids, one per path; the ingest one comes last, so once it is
    // searchable every resend before it has been through the indexer.
    assert_eq!(
        webhook(&server, &[event("w-2", "RequestReceived", 2)])["accepted"],
        1
    );
    assert_eq!(
        ingest(&server, &[event("i-2", "RequestReceived", 4)])["accepted"],
        1
    );
    wait_until(
        "the two new stages are searchable",
        Duration::from_secs(30),
        || {
            ["w-2", "i-2"]
                .iter()
                .all(|id| total(&server, &format!("audit_id:{id} AND stage:RequestReceived")) == 1)
        },
    );
    assert_eq!(total(&server, "*"), 8);
    for (id, count) in [("w-1", 2), ("w-2", 2), ("i-1", 2), ("i-2", 2)] {
        assert_eq!(total(&server, &format!("audit_id:{id}")), count, "{id}");
    }
    server.kill9();

    // And once more after another kill: the same eight.
    let server = Server::start_with_config("standalone", &data, &config);
    ingest(&server, &by_ingest);
    ingest(&server, &[event("i-3", "ResponseComplete", 5)]);
    wait_until(
        "the sentinel event is searchable",
        Duration::from_secs(30),
        || total(&server, "audit_id:i-3") == 1,
    );
    assert_eq!(total(&server, "*"), 9);
}
