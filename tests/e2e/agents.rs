//! Agent traffic replayed: every fixture under tests/fixtures/agents/ (a directory with a
//! `requests.ndjson`, recorded from a real agent or hand-written from its documented output)
//! is sent, request by request, to a fresh `trawl standalone`, and must land every record
//! exactly once: the stream holds exactly `records` documents, and each sample of
//! `expect.json` is found exactly once with its message, level, namespace, pod and timestamp.
//! The same binary also shows that a `_bulk` document in Trawl's own field names, and a line of
//! Fluent Bit's `http` output on the native ingest API, land on the record fields, and that a
//! refused line is listed in the dead-letter store.

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use reqwest::blocking::Client;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::{json_of, ndjson, Server};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/agents");

/// Every directory below `dir` that holds a `requests.ndjson`, sorted.
fn fixture_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    entries.sort();
    for path in entries {
        if path.join("requests.ndjson").is_file() {
            found.push(path.clone());
        }
        found.extend(fixture_dirs(&path));
    }
    found
}

fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap()
}

/// Sends one recorded request as it was recorded (method, path, query, headers, body).
fn replay(server: &Server, request: &Value) -> (StatusCode, String) {
    let text = |key: &str| request[key].as_str().unwrap_or_default().to_string();
    let body = base64::engine::general_purpose::STANDARD
        .decode(text("body_base64"))
        .unwrap();
    let mut url = server.at(&text("path"));
    if !text("query").is_empty() {
        url = format!("{url}?{}", text("query"));
    }
    let method = reqwest::Method::from_bytes(text("method").as_bytes()).unwrap();
    let mut builder = client().request(method, url).body(body);
    for (name, value) in request["headers"].as_object().unwrap() {
        // The length and the hop-by-hop headers belong to the new connection.
        if ["content-length", "host", "connection", "transfer-encoding"]
            .contains(&name.to_ascii_lowercase().as_str())
        {
            continue;
        }
        builder = builder.header(name, value.as_str().unwrap());
    }
    let response = builder.send().unwrap();
    let status = response.status();
    (status, response.text().unwrap_or_default())
}

/// Every record of a stream, through the NDJSON export.
fn export_all(server: &Server, stream: &str) -> Vec<Value> {
    let response = client()
        .get(server.at(&format!("/api/v1/{stream}/export")))
        .query(&[("q", "*"), ("format", "ndjson")])
        .send()
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response
        .text()
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A record ingested after everything else: once it is searchable, everything acknowledged
/// before it is too (one stream is committed in WAL order).
fn wait_for_sentinel(server: &Server, stream: &str, marker: &str) {
    let line = json!({"message": marker}).to_string();
    let answer = server.ingest_plain(stream, &[line]);
    assert_eq!(answer["accepted"], 1, "{answer}");
    crate::support::wait_until(
        &format!("the sentinel of {stream}"),
        Duration::from_secs(30),
        || {
            let hits = server.search(stream, &[("q", marker), ("limit", "0")]);
            hits["total"] == 1
        },
    );
}

#[test]
fn every_agent_fixture_lands_every_record_exactly_once() {
    let dirs = fixture_dirs(Path::new(FIXTURES));
    assert!(
        dirs.len() >= 4,
        "fixtures missing under {FIXTURES}: {dirs:?}"
    );
    for dir in dirs {
        let name = dir.strip_prefix(FIXTURES).unwrap().display().to_string();
        let expect: Value =
            serde_json::from_slice(&std::fs::read(dir.join("expect.json")).unwrap()).unwrap();
        let stream = expect["stream"].as_str().unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let server = Server::start(
            &tmp.path().join("data"),
            "[indexer]\ncommit_interval_ms = 100\n",
        );
        let requests = std::fs::read_to_string(dir.join("requests.ndjson")).unwrap();
        for (i, line) in requests
            .lines()
            .filter(|l| !l.trim().is_empty())
            .enumerate()
        {
            let request: Value = serde_json::from_str(line).unwrap();
            let (status, body) = replay(&server, &request);
            assert!(
                status.is_success(),
                "{name}: request {} answered {status}: {body}",
                i + 1
            );
            assert!(
                !body.contains("\"errors\":true") && !body.contains("\"rejected\":1"),
                "{name}: request {} refused records: {body}",
                i + 1
            );
        }
        wait_for_sentinel(&server, stream, "replaysentinel");
        let records: Vec<Value> = export_all(&server, stream)
            .into_iter()
            .filter(|r| r["message"] != "replaysentinel")
            .collect();
        assert_eq!(
            records.len() as u64,
            expect["records"].as_u64().unwrap(),
            "{name}: documents in {stream}"
        );
        for sample in expect["samples"].as_array().unwrap() {
            let found: Vec<&Value> = records
                .iter()
                .filter(|r| r["message"] == sample["message"])
                .collect();
            assert_eq!(found.len(), 1, "{name}: {sample} found {found:?}");
            for (key, want) in sample.as_object().unwrap() {
                assert_eq!(&found[0][key], want, "{name}: `{key}` of {}", found[0]);
            }
        }
    }
}

/// Regression (issue 14, point 8): `_bulk` documents in Trawl's own field names landed under
/// `attributes.*`, so `namespace:hdfs` found none of them.
#[test]
fn bulk_documents_in_trawl_names_land_on_their_fields() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(
        &tmp.path().join("data"),
        "[indexer]\ncommit_interval_ms = 100\n",
    );
    let body = [
        json!({"index": {"_index": "logs"}}),
        json!({"timestamp": "2026-11-25T10:15:00.000000001Z", "namespace": "hdfs",
               "pod": "datanode-0", "container": "dn", "level": "warn",
               "message": "slow block report", "labels": {"app": "hdfs"}}),
        json!({"index": {"_index": "audit"}}),
        json!({"@timestamp": "2026-11-25T10:15:01Z", "audit_id": "a-1",
               "stage": "ResponseComplete", "verb": "delete", "namespace": "hdfs",
               "resource": "pods", "name": "datanode-0", "user": "alice", "status_code": 200}),
    ]
    .iter()
    .map(|v| v.to_string() + "\n")
    .collect::<String>();
    let (status, answer) = json_of(
        client()
            .post(server.at("/api/v1/_elastic/_bulk?refresh=true"))
            .header("content-type", "application/x-ndjson")
            .body(body)
            .send()
            .unwrap(),
    );
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["errors"], false, "{answer}");
    for (stream, q) in [
        ("logs", "namespace:hdfs AND pod:datanode-0 AND level:warn"),
        ("audit", "namespace:hdfs AND verb:delete AND user:alice"),
    ] {
        let hits = server.search(stream, &[("q", q)]);
        assert_eq!(hits["total"], 1, "{stream}: {q}: {hits}");
    }
    let hit = &server.search("logs", &[("q", "namespace:hdfs")])["hits"][0];
    assert_eq!(hit["message"], "slow block report");
    assert_eq!(hit["timestamp"], "2026-11-25T10:15:00.000000001Z");
    assert!(hit.get("attributes").is_none(), "{hit}");
    // The Elasticsearch side finds it under Trawl's names and the shippers' alike.
    for q in [
        "namespace:hdfs",
        "kubernetes.namespace_name:hdfs",
        "kubernetes.pod.name:datanode-0",
    ] {
        let (status, answer) = json_of(
            client()
                .post(server.at("/api/v1/_elastic/logs/_search"))
                .json(&json!({"query": {"query_string": {"query": q}}}))
                .send()
                .unwrap(),
        );
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(answer["hits"]["total"]["value"], 1, "{q}: {answer}");
    }
}

/// Regression (issue 23): every line of Fluent Bit's `http` output was refused on the native
/// ingest API (`unknown field `log``), and the answer listed each refused line, past the 4 KB
/// the agent reads. Now the agent's lines land; a bad line is refused alone, the answer names
/// at most ten, and every refused line is in the dead-letter store.
#[test]
fn native_ingest_maps_agent_lines_and_dead_letters_the_rest() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(
        &tmp.path().join("data"),
        "[indexer]\ncommit_interval_ms = 100\n",
    );
    let mut lines: Vec<String> = (0..3)
        .map(|i| {
            json!({"date": 1_795_601_700.5 + f64::from(i), "time": format!("2026-11-25T10:15:0{i}.500000001Z"),
                   "stream": "stdout", "_p": "F", "log": format!("fbhttp line {i} ERROR boom\n"),
                   "kubernetes": {"namespace_name": "shop", "pod_name": "web-1"}})
            .to_string()
        })
        .collect();
    for i in 0..40 {
        lines.push(format!("{{not json {i}"));
    }
    let (status, answer) = server.ingest_raw("logs", ndjson(&lines), None);
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(
        (answer["accepted"].as_u64(), answer["rejected"].as_u64()),
        (Some(3), Some(40))
    );
    let errors = answer["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 10, "{answer}");
    assert_eq!(errors[0]["line"], 4);
    assert!(
        answer.to_string().len() < 4096,
        "{} bytes",
        answer.to_string().len()
    );
    server.wait_total("fbhttp", 3);
    let hits = server.search(
        "logs",
        &[
            ("q", "fbhttp AND namespace:shop AND level:error"),
            ("sort", "asc"),
        ],
    );
    assert_eq!(hits["total"], 3, "{hits}");
    assert_eq!(hits["hits"][0]["message"], "fbhttp line 0 ERROR boom");
    assert_eq!(
        hits["hits"][0]["timestamp"],
        "2026-11-25T10:15:00.500000001Z"
    );
    assert_eq!(hits["hits"][0]["stream"], "stdout");

    let (status, letters) = json_of(server.get("/api/v1/logs/dead-letters?limit=2"));
    assert_eq!(status, StatusCode::OK, "{letters}");
    assert_eq!(letters["total"], 40, "{letters}");
    let newest = &letters["dead_letters"];
    assert_eq!(newest.as_array().unwrap().len(), 2);
    assert_eq!(newest[0]["line"], 43);
    assert_eq!(newest[0]["raw"], "{not json 39");
    assert!(newest[0]["error"]
        .as_str()
        .unwrap()
        .starts_with("invalid JSON"));
    assert!(newest[0]["time"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        server.metric("trawl_indexer_records_dead_lettered_total{stream=\"logs\"}"),
        Some(40.0)
    );
    let (status, _) = json_of(server.get("/api/v1/nosuch/dead-letters"));
    assert_eq!(status, StatusCode::NOT_FOUND);

    // The command-line client lists the same letters.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_trawl"))
        .args(["dead-letters", "logs", "-n", "1", "--url", &server.url])
        .env_remove("TRAWL_URL")
        .env_remove("TRAWL_TOKEN")
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(stdout.contains("line 43  invalid JSON"), "{stdout}");
    assert!(stdout.contains("  {not json 39\n"), "{stdout}");
}
