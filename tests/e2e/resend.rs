//! Resent batches never double: every push surface (`_bulk`, the NDJSON ingest API, OTLP, Loki
//! push) answers a batch sent again — after the client dropped the answer, after `"errors":
//! true`, across a SIGKILL and a seal — as the first time and writes it once; `_id` semantics
//! of `_bulk` (`create` of a known id is a 409 item); lean `_bulk` answers and `filter_path`;
//! and WAL replay that loses no acknowledged record when a stream's configuration changed or
//! the stream was removed.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use reqwest::blocking::Client;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::{gen, json_of, ndjson, wait_until, Server, START_TIMEOUT};

/// Records per batch in the resend tests (the 5,000).
const RECORDS: u64 = 5_000;

/// One push surface: where a batch goes and how its body is typed.
struct Surface {
    name: &'static str,
    path: &'static str,
    content_type: &'static str,
    /// The query that finds exactly this surface's records in `logs`.
    query: &'static str,
}

const BULK: Surface = Surface {
    name: "bulk",
    path: "/api/v1/_elastic/_bulk",
    content_type: "application/x-ndjson",
    query: "namespace:viabulk",
};
const INGEST: Surface = Surface {
    name: "ingest",
    path: "/api/v1/logs/ingest",
    content_type: "application/x-ndjson",
    query: "namespace:viaingest",
};
const OTLP: Surface = Surface {
    name: "otlp",
    path: "/v1/logs",
    content_type: "application/x-protobuf",
    query: "namespace:viaotlp",
};
const LOKI: Surface = Surface {
    name: "loki",
    path: "/loki/api/v1/push",
    content_type: "application/json",
    query: "namespace:vialoki",
};

/// A batch of `RECORDS` records for `surface`, in its wire format.
fn batch(surface: &Surface) -> Vec<u8> {
    match surface.name {
        "bulk" => {
            let mut body = Vec::new();
            for i in 0..RECORDS {
                body.extend_from_slice(b"{\"create\":{\"_index\":\"logs\"}}\n");
                let doc = json!({"@timestamp": gen::ts(i), "log": format!("bulk record {i}"),
                    "kubernetes": {"namespace_name": "viabulk", "pod_name": "p"}});
                body.extend_from_slice(doc.to_string().as_bytes());
                body.push(b'\n');
            }
            body
        }
        "ingest" => {
            let lines: Vec<String> = (0..RECORDS)
                .map(|i| {
                    json!({"timestamp": gen::ts(i), "namespace": "viaingest",
                        "message": format!("ingest record {i}")})
                    .to_string()
                })
                .collect();
            ndjson(&lines)
        }
        "otlp" => {
            let kv = |key: &str, value: &str| KeyValue {
                key: key.into(),
                value: Some(AnyValue {
                    value: Some(any_value::Value::StringValue(value.into())),
                }),
                ..Default::default()
            };
            // No observed time and no time on one record: the server fills them in at receipt,
            // so the NDJSON it derives differs between sends; the batch must still be known.
            let records = (0..RECORDS)
                .map(|i| LogRecord {
                    time_unix_nano: if i == 0 { 0 } else { gen::nanos(i) as u64 },
                    severity_number: 9,
                    body: Some(AnyValue {
                        value: Some(any_value::Value::StringValue(format!("otlp record {i}"))),
                    }),
                    ..Default::default()
                })
                .collect();
            ExportLogsServiceRequest {
                resource_logs: vec![ResourceLogs {
                    resource: Some(Resource {
                        attributes: vec![kv("k8s.namespace.name", "viaotlp")],
                        ..Default::default()
                    }),
                    scope_logs: vec![ScopeLogs {
                        log_records: records,
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
            }
            .encode_to_vec()
        }
        "loki" => {
            let values: Vec<Value> = (0..RECORDS)
                .map(|i| json!([gen::nanos(i).to_string(), format!("loki record {i}")]))
                .collect();
            json!({"streams": [{"stream": {"namespace": "vialoki", "pod": "p"}, "values": values}]})
                .to_string()
                .into_bytes()
        }
        other => unreachable!("no surface {other}"),
    }
}

/// Sends `body` over a raw connection and reads only the status line of the answer before
/// closing: the client an agent is when its answer buffer overflows or it times out.
fn send_and_drop(server: &Server, surface: &Surface, body: &[u8]) -> String {
    let addr = server.url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {}\r\nContent-Length: {}\r\n\r\n",
        surface.path,
        surface.content_type,
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut status = String::new();
    BufReader::new(&stream).read_line(&mut status).unwrap();
    status.trim().to_string()
}

/// Sends `body` and reads the whole answer: status and body text.
fn send(client: &Client, server: &Server, surface: &Surface, body: &[u8]) -> (StatusCode, String) {
    let resp = client
        .post(server.at(surface.path))
        .header("content-type", surface.content_type)
        .body(body.to_vec())
        .send()
        .unwrap();
    (resp.status(), resp.text().unwrap())
}

/// What a surface answers a batch of good records.
fn assert_success(surface: &Surface, status: StatusCode, text: &str) {
    match surface.name {
        "bulk" => {
            assert_eq!(status, StatusCode::OK, "{text}");
            let answer: Value = serde_json::from_str(text).unwrap();
            assert_eq!(answer["errors"], false);
            assert_eq!(answer["items"].as_array().unwrap().len(), RECORDS as usize);
        }
        "ingest" => {
            assert_eq!(status, StatusCode::OK, "{text}");
            let answer: Value = serde_json::from_str(text).unwrap();
            assert_eq!(answer["accepted"], RECORDS, "{answer}");
            assert_eq!(answer["rejected"], 0, "{answer}");
        }
        "otlp" => assert_eq!(status, StatusCode::OK, "{text}"),
        "loki" => assert_eq!(status, StatusCode::NO_CONTENT, "{text}"),
        other => unreachable!("no surface {other}"),
    }
}

fn logs_total(server: &Server, q: &str) -> u64 {
    server.total(q, &[])
}

/// A counter of the indexer for the `logs` stream (0 when not yet exposed).
fn counter(server: &Server, name: &str) -> f64 {
    server
        .metric(&format!("trawl_indexer_{name}_total{{stream=\"logs\"}}"))
        .unwrap_or(0.0)
}

const CONFIG: &str = "[indexer]\ncommit_interval_ms = 100\n";

/// Sends every surface's batch again to a restarted server: each is answered as a success, none
/// is indexed again (no record ingested, every batch counted as resent), and each surface still
/// holds exactly [`RECORDS`] documents.
fn assert_resends_add_nothing(
    client: &Client,
    server: &Server,
    surfaces: &[Surface],
    bodies: &[Vec<u8>],
) {
    for (surface, body) in surfaces.iter().zip(bodies) {
        let (status, text) = send(client, server, surface, body);
        assert_success(surface, status, &text);
    }
    assert_eq!(counter(server, "records_ingested"), 0.0);
    assert_eq!(counter(server, "batches_resent"), surfaces.len() as f64);
    for surface in surfaces {
        assert_eq!(
            logs_total(server, surface.query),
            RECORDS,
            "{}",
            surface.name
        );
    }
}

#[test]
fn every_surface_answers_a_resent_batch_without_indexing_it_again() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("data"), CONFIG);
    let client = Client::new();
    for (n, surface) in [BULK, INGEST, OTLP, LOKI].iter().enumerate() {
        let body = batch(surface);
        let status = send_and_drop(&server, surface, &body);
        assert!(
            status.starts_with("HTTP/1.1 200") || status.starts_with("HTTP/1.1 204"),
            "{}: {status}",
            surface.name
        );
        let (status, text) = send(&client, &server, surface, &body);
        assert_success(surface, status, &text);
        server.wait_total(surface.query, RECORDS);
        let n = n as f64 + 1.0;
        assert_eq!(counter(&server, "records_ingested"), n * RECORDS as f64);
        assert_eq!(counter(&server, "batches_resent"), n, "{}", surface.name);
        assert_eq!(counter(&server, "records_resent"), n * RECORDS as f64);
    }
    // Committed: nothing more came of the resends.
    for surface in [BULK, INGEST, OTLP, LOKI] {
        assert_eq!(
            logs_total(&server, surface.query),
            RECORDS,
            "{}",
            surface.name
        );
    }
}

#[test]
fn a_resend_after_sigkill_and_seal_is_still_recognised() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    // Small splits: every batch is sealed, and the WAL that carried it truncated, before the
    // kill; the window must come back from the saved file.
    let config = "[indexer]\ncommit_interval_ms = 100\nsplit_max_docs = 1000\n";
    let server = Server::start(&data, config);
    let client = Client::new();
    let surfaces = [BULK, INGEST, OTLP, LOKI];
    let bodies: Vec<Vec<u8>> = surfaces.iter().map(batch).collect();
    for (surface, body) in surfaces.iter().zip(&bodies) {
        let (status, text) = send(&client, &server, surface, body);
        assert_success(surface, status, &text);
    }
    let saved = data.join("indexer").join("resent.json");
    wait_until(
        "the four batches are in the saved window",
        Duration::from_secs(30),
        || {
            std::fs::read(&saved)
                .ok()
                .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
                .is_some_and(|v| v["batches"].as_array().map(Vec::len) == Some(4))
        },
    );
    server.kill9();

    let server = Server::start(&data, config);
    assert_resends_add_nothing(&client, &server, &surfaces, &bodies);
}

#[test]
fn a_resend_after_sigkill_before_any_seal_is_recognised_from_the_wal() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let server = Server::start(&data, CONFIG);
    let client = Client::new();
    let surfaces = [BULK, INGEST, OTLP, LOKI];
    let bodies: Vec<Vec<u8>> = surfaces.iter().map(batch).collect();
    for (surface, body) in surfaces.iter().zip(&bodies) {
        let status = send_and_drop(&server, surface, body);
        assert!(status.contains(" 20"), "{}: {status}", surface.name);
    }
    server.kill9();

    let server = Server::start(&data, CONFIG);
    assert_resends_add_nothing(&client, &server, &surfaces, &bodies);
}

/// `_bulk` answers as `(status, body)`.
fn bulk(client: &Client, server: &Server, query: &str, body: &str) -> (StatusCode, Value) {
    json_of(
        client
            .post(server.at(&format!("/api/v1/_elastic/_bulk{query}")))
            .header("content-type", "application/x-ndjson")
            .body(body.to_string())
            .send()
            .unwrap(),
    )
}

#[test]
fn a_bulk_with_one_malformed_item_sent_three_times_holds_999_documents() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("data"), CONFIG);
    let client = Client::new();
    let mut body = String::new();
    for i in 0..1000u64 {
        body.push_str("{\"index\":{\"_index\":\"logs\"}}\n");
        if i == 500 {
            body.push_str("{\"log\": \"broken\", \n");
        } else {
            let doc = json!({"@timestamp": gen::ts(i), "log": format!("partial {i}"),
                "kubernetes": {"namespace_name": "partial"}});
            body.push_str(&format!("{doc}\n"));
        }
    }
    let mut first_error = None;
    for send in 0..3 {
        let (status, answer) = bulk(&client, &server, "", &body);
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(answer["errors"], true);
        let items = answer["items"].as_array().unwrap();
        assert_eq!(items.len(), 1000);
        let failed: Vec<(usize, &Value)> = items
            .iter()
            .enumerate()
            .filter(|(_, item)| item["index"]["status"] != 201)
            .collect();
        assert_eq!(failed.len(), 1, "send {send}: {failed:?}");
        assert_eq!(failed[0].0, 500);
        let error = failed[0].1["index"]["error"].clone();
        assert_eq!(failed[0].1["index"]["status"], 400);
        assert_eq!(error["type"], "document_parsing_exception");
        match &first_error {
            None => first_error = Some(error),
            Some(first) => assert_eq!(&error, first, "send {send}"),
        }
    }
    server.wait_total("namespace:partial", 999);
    assert_eq!(counter(&server, "records_ingested"), 999.0);
    assert_eq!(counter(&server, "batches_resent"), 2.0);
}

#[test]
fn create_with_a_written_id_is_a_409_item_even_after_seal_and_sigkill() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let config = "[indexer]\ncommit_interval_ms = 100\nsplit_max_age_secs = 1\n";
    let server = Server::start(&data, config);
    let client = Client::new();
    let doc = |n: u32| {
        json!({"@timestamp": gen::ts(n as u64), "log": format!("copy {n}"),
            "kubernetes": {"namespace_name": "ids"}})
    };
    // The same id twice in one request: the second is a conflict.
    let first = format!(
        "{{\"create\":{{\"_index\":\"logs\",\"_id\":\"a\"}}}}\n{}\n\
         {{\"create\":{{\"_index\":\"logs\",\"_id\":\"a\"}}}}\n{}\n",
        doc(1),
        doc(2)
    );
    let (status, answer) = bulk(&client, &server, "", &first);
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["errors"], true);
    assert_eq!(
        answer["items"][0],
        json!({"create": {"_index": "logs", "status": 201}})
    );
    assert_eq!(answer["items"][1]["create"]["status"], 409, "{answer}");
    assert_eq!(
        answer["items"][1]["create"]["error"]["type"],
        "version_conflict_engine_exception"
    );
    // Another request, another document, the same id: 409 for `create`, `noop` for `index`.
    let second = format!(
        "{{\"create\":{{\"_index\":\"logs\",\"_id\":\"a\"}}}}\n{}\n\
         {{\"index\":{{\"_index\":\"logs\",\"_id\":\"a\"}}}}\n{}\n",
        doc(3),
        doc(4)
    );
    let (_, answer) = bulk(&client, &server, "", &second);
    assert_eq!(answer["items"][0]["create"]["status"], 409, "{answer}");
    assert_eq!(
        answer["items"][1],
        json!({"index": {"_index": "logs", "_id": "a", "result": "noop", "status": 200}})
    );
    server.wait_total("namespace:ids", 1);
    wait_until("the document is sealed", Duration::from_secs(30), || {
        server.logs_stream()["splits"].as_u64() == Some(1)
    });
    server.kill9();

    let server = Server::start(&data, config);
    let third = format!(
        "{{\"create\":{{\"_index\":\"logs\",\"_id\":\"a\"}}}}\n{}\n",
        doc(5)
    );
    let (_, answer) = bulk(&client, &server, "?refresh=true", &third);
    assert_eq!(answer["items"][0]["create"]["status"], 409, "{answer}");
    assert_eq!(logs_total(&server, "namespace:ids"), 1);
    let hits = server.search("logs", &[("q", "namespace:ids")]);
    assert_eq!(hits["hits"][0]["message"], "copy 1");
}

#[test]
fn bulk_answers_are_lean_and_filter_path_trims_them() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("data"), CONFIG);
    let client = Client::new();
    // Fluent Bit's default chunk: 2 MB, about 7,500 records; its answer buffer: 512 KiB.
    let mut body = String::new();
    for i in 0..7_500u64 {
        body.push_str("{\"create\":{\"_index\":\"logs\"}}\n");
        let doc = json!({"@timestamp": gen::ts(i),
            "log": format!("{i} {}", "x".repeat(200)),
            "kubernetes": {"namespace_name": "lean", "pod_name": "fluent-bit-abcde",
                "container_name": "app", "host": "node-1"}});
        body.push_str(&format!("{doc}\n"));
    }
    assert!(body.len() > 2_000_000, "a 2 MB chunk: {}", body.len());
    let resp = client
        .post(server.at("/api/v1/_elastic/_bulk"))
        .header("content-type", "application/x-ndjson")
        .body(body.clone())
        .send()
        .unwrap();
    let text = resp.text().unwrap();
    println!("answer to 7,500 records: {} bytes", text.len());
    assert!(text.len() < 400_000, "answer of {} bytes", text.len());
    let answer: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        answer["items"][0],
        json!({"create": {"_index": "logs", "status": 201}})
    );

    let bad = "{\"create\":{\"_index\":\"logs\"}}\n{\"log\":\"ok\"}\n\
               {\"create\":{\"_index\":\"nope\"}}\n{\"log\":\"x\"}\n";
    let (status, answer) = bulk(
        &client,
        &server,
        "?filter_path=errors,items.*.error,items.*.status",
        bad,
    );
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        answer,
        json!({"errors": true, "items": [
            {"create": {"status": 201}},
            {"create": {"status": 404, "error": {"type": "index_not_found_exception",
                "reason": "no such index [nope]", "index": "nope"}}},
        ]})
    );
    let (_, answer) = bulk(&client, &server, "?filter_path=errors", bad);
    assert_eq!(answer, json!({"errors": true}));
}

/// Runs `trawl standalone` on `data` with `config` and expects it to refuse to start: returns
/// its log.
fn refused_start(data: &Path, config: &str) -> String {
    let dir = data.parent().unwrap();
    let config_path = dir.join("refused.toml");
    let log_path = dir.join("refused.log");
    std::fs::write(&config_path, config).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_trawl"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("TRAWL_") {
            command.env_remove(key);
        }
    }
    let mut child = command
        .arg("standalone")
        .arg("--listen")
        .arg("127.0.0.1:0")
        .arg("--data-dir")
        .arg(data)
        .arg("--config")
        .arg(&config_path)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + START_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the server started although it should have refused");
        }
        std::thread::sleep(Duration::from_millis(25));
    };
    assert!(!status.success());
    std::fs::read_to_string(&log_path).unwrap()
}

#[test]
fn replay_keeps_records_that_no_longer_fit_and_refuses_to_drop_a_removed_stream() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    // No commit before the kill: every record comes back from the WAL.
    let before = "[indexer]\ncommit_interval_ms = 600000\n\n[streams.web]\n\
                  timestamp_field = \"ts\"\ntimestamp_format = \"rfc3339\"\n\n\
                  [streams.gone]\ntimestamp_field = \"ts\"\n";
    let server = Server::start(&data, before);
    let lines: Vec<String> = (0..100u64)
        .map(|i| {
            json!({"ts": gen::ts(i), "latency_ms": format!("{i}ms"), "path": "/a"}).to_string()
        })
        .collect();
    let answer = server.ingest_plain("web", &lines);
    assert_eq!(answer["accepted"], 100);
    let other = server.ingest_plain("gone", &[json!({"ts": gen::ts(1)}).to_string()]);
    assert_eq!(other["accepted"], 1);
    server.kill9();

    // `web` changed: its time is now unix_ms and latency_ms a number; `gone` removed.
    let changed = "[indexer]\ncommit_interval_ms = 100\n\n[streams.web]\n\
                   timestamp_field = \"ts\"\ntimestamp_format = \"unix_ms\"\n\
                   numeric_fields = [\"latency_ms\"]\n";
    let log = refused_start(&data, &format!("{changed}\n[collector]\nenabled = false\n"));
    assert!(log.contains("stream(s) gone,"), "{log}");
    assert!(
        log.contains("indexer.drop_unconfigured_streams = [\"gone\"]"),
        "{log}"
    );

    let dropping = changed.replace(
        "commit_interval_ms = 100\n",
        "commit_interval_ms = 100\ndrop_unconfigured_streams = [\"gone\"]\n",
    );
    let server = Server::start(&data, &dropping);
    let found = server.search("web", &[("q", "*"), ("limit", "0")]);
    assert_eq!(found["total"], 100, "{found}");
    assert_eq!(
        server.metric("trawl_indexer_replay_unfit_records_total{stream=\"web\"}"),
        Some(100.0)
    );
    assert_eq!(
        server.metric("trawl_indexer_replay_dropped_records_total{stream=\"gone\"}"),
        Some(1.0)
    );
}
