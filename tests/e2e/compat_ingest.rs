//! Ingest from other systems' agents against the real binary: Elasticsearch `_bulk` with the
//! document shapes of Fluent Bit, Vector and Filebeat (per-item statuses, mapped fields), a
//! generic stream declared in config (dynamic and declared fields searchable, exact totals,
//! exported), a stream auto-created by `_bulk` that survives a restart, OTLP/HTTP in protobuf
//! and JSON, and Loki push in JSON and snappy protobuf.

use std::io::Write;

use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use reqwest::blocking::Client;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::{json_of, wait_until, Server, SEARCHABLE_TIMEOUT};

const CONFIG: &str = r#"
[indexer]
commit_interval_ms = 100

[streams.web]
timestamp_field = "ts"
timestamp_format = "unix_ms"
keyword_fields = ["service.name"]
numeric_fields = ["latency_ms"]
"#;

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

/// Waits until `q` on `stream` totals exactly `expected`; returns the last answer (hits
/// included, oldest first).
fn wait_search(server: &Server, stream: &str, q: &str, expected: u64) -> Value {
    let mut last = Value::Null;
    wait_until(
        &format!("`{q}` on {stream} totals {expected}"),
        SEARCHABLE_TIMEOUT,
        || {
            last = server.search(stream, &[("q", q), ("sort", "asc")]);
            last["total"] == expected
        },
    );
    last
}

fn total(server: &Server, stream: &str, q: &str) -> u64 {
    server.search(stream, &[("q", q), ("limit", "0")])["total"]
        .as_u64()
        .unwrap()
}

fn bulk(client: &Client, url: &str, body: Vec<u8>, gzip_it: bool) -> (StatusCode, Value, bool) {
    let mut req = client
        .post(url)
        .header(
            "content-type",
            "application/vnd.elasticsearch+x-ndjson; compatible-with=8",
        )
        .header(
            "accept",
            "application/vnd.elasticsearch+json; compatible-with=8",
        );
    req = if gzip_it {
        req.header("content-encoding", "gzip").body(gzip(&body))
    } else {
        req.body(body)
    };
    let resp = req.send().unwrap();
    let product = resp
        .headers()
        .get("x-elastic-product")
        .is_some_and(|v| v == "Elasticsearch");
    let (status, body) = json_of(resp);
    (status, body, product)
}

#[test]
fn bulk_maps_agent_shapes_reports_every_item_and_fills_a_declared_stream() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("data"), CONFIG);
    let client = Client::new();

    let lines = [
        // 1. Fluent Bit.
        json!({"index": {"_index": "logs", "_id": "fb-1"}}),
        json!({"@timestamp": "2026-11-25T10:15:00.100Z", "log": "ERROR db down\n", "stream": "stderr",
            "kubernetes": {"namespace_name": "shop", "pod_name": "web-1", "pod_id": "uid-1",
                "container_name": "app", "container_image": "shop/web:1.2", "host": "node-a",
                "labels": {"app": "web"}, "annotations": {"team": "core"}}}),
        // 2. Vector.
        json!({"create": {"_index": "logs"}}),
        json!({"timestamp": "2026-11-25T10:15:00.200Z", "message": "{\"level\":\"warn\",\"msg\":\"slow\"}",
            "stream": "stdout", "kubernetes": {"pod_namespace": "shop", "pod_name": "web-2",
                "container_name": "app", "pod_node_name": "node-b", "pod_labels": {"app": "web"}}}),
        // 3. Filebeat.
        json!({"index": {"_index": "logs"}}),
        json!({"@timestamp": "2026-11-25T10:15:00.300Z", "message": "started",
            "log": {"level": "info", "offset": 12},
            "kubernetes": {"namespace": "pay", "pod": {"name": "api-1", "uid": "uid-3"},
                "container": {"name": "srv"}, "node": {"name": "node-c"}},
            "container": {"image": {"name": "pay/api:3"}}, "agent": {"type": "filebeat"}}),
        // 4. A document without a message (the one thing that refuses a `logs` document).
        json!({"index": {"_index": "logs"}}),
        json!({"@timestamp": "2026-11-25T10:15:00.400Z", "stream": "stdout"}),
        // 5. delete: refused by name.
        json!({"delete": {"_index": "logs", "_id": "fb-1"}}),
        // 6. An unknown index.
        json!({"index": {"_index": "nope"}}),
        json!({"message": "lost"}),
        // 8. update: refused, its document line consumed.
        json!({"update": {"_index": "logs", "_id": "fb-1"}}),
        json!({"doc": {"message": "changed"}}),
        // 9. A declared generic stream in the same request.
        json!({"index": {"_index": "web", "_id": "w-0"}}),
        json!({"ts": 1_795_601_700_000i64, "service": {"name": "api"}, "http": {"status": 500},
            "latency_ms": 20, "user": "ann"}),
    ];
    let mut body: Vec<u8> = Vec::new();
    for line in &lines {
        body.extend_from_slice(line.to_string().as_bytes());
        body.push(b'\n');
    }
    // 7. A document line that is not JSON (added by hand after item 6).
    let body = String::from_utf8(body).unwrap().replace(
        "{\"message\":\"lost\"}\n",
        "{\"message\":\"lost\"}\n{\"index\":{\"_index\":\"logs\"}}\n{\"message\": \n",
    );
    let url = server.at("/api/v1/_elastic/_bulk?refresh=wait_for");
    let (status, answer, product) = bulk(&client, &url, body.into_bytes(), false);
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert!(product, "X-Elastic-Product missing");
    assert_eq!(answer["errors"], true);
    let items = answer["items"].as_array().unwrap();
    let summary: Vec<(String, u64, String)> = items
        .iter()
        .map(|item| {
            let (action, inner) = item.as_object().unwrap().iter().next().unwrap();
            (
                action.clone(),
                inner["status"].as_u64().unwrap(),
                inner["error"]["type"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let expected: Vec<(String, u64, String)> = [
        ("index", 201, ""),
        ("create", 201, ""),
        ("index", 201, ""),
        ("index", 400, "document_parsing_exception"),
        ("delete", 400, "illegal_argument_exception"),
        ("index", 404, "index_not_found_exception"),
        ("index", 400, "document_parsing_exception"),
        ("update", 400, "illegal_argument_exception"),
        ("index", 201, ""),
    ]
    .iter()
    .map(|(a, s, t)| (a.to_string(), *s, t.to_string()))
    .collect();
    assert_eq!(summary, expected);
    // A success is lean (what agents read: the status); a failure is whole.
    assert_eq!(
        items[0],
        json!({"index": {"_index": "logs", "status": 201}})
    );
    assert_eq!(items[5]["index"]["error"]["reason"], "no such index [nope]");
    assert!(items[4]["delete"]["error"]["reason"]
        .as_str()
        .unwrap()
        .contains("[delete]"));

    // Exactly the good documents, with their fields mapped (refresh=wait_for: no waiting).
    let found = server.search("logs", &[("q", "*"), ("sort", "asc")]);
    assert_eq!(found["total"], 3, "{found}");
    let hits = found["hits"].as_array().unwrap();
    let pick = |h: &Value| {
        json!({"timestamp": h["timestamp"], "namespace": h["namespace"], "pod": h["pod"],
            "container": h["container"], "node": h["node"], "image": h["image"],
            "level": h["level"], "message": h["message"], "stream": h["stream"],
            "labels": h["labels"]})
    };
    assert_eq!(
        hits.iter().map(pick).collect::<Vec<_>>(),
        vec![
            json!({"timestamp": "2026-11-25T10:15:00.100000000Z", "namespace": "shop",
                "pod": "web-1", "container": "app", "node": "node-a", "image": "shop/web:1.2",
                "level": "error", "message": "ERROR db down", "stream": "stderr",
                "labels": {"app": "web"}}),
            json!({"timestamp": "2026-11-25T10:15:00.200000000Z", "namespace": "shop",
                "pod": "web-2", "container": "app", "node": "node-b", "image": null,
                "level": "warn", "message": "{\"level\":\"warn\",\"msg\":\"slow\"}",
                "stream": "stdout", "labels": {"app": "web"}}),
            json!({"timestamp": "2026-11-25T10:15:00.300000000Z", "namespace": "pay",
                "pod": "api-1", "container": "srv", "node": "node-c", "image": "pay/api:3",
                "level": "info", "message": "started", "stream": null, "labels": null}),
        ]
    );
    assert_eq!(
        hits[0]["attributes"]["kubernetes"]["annotations"]["team"],
        "core"
    );
    assert_eq!(hits[2]["offset"], 12);
    assert_eq!(total(&server, "logs", "namespace:shop AND level:warn"), 1);
    assert_eq!(total(&server, "logs", "labels.app:web"), 2);

    // The declared stream, through the path's index and gzip, then searched by declared and
    // dynamic fields.
    let mut body = String::new();
    for i in 1..6i64 {
        body.push_str("{\"create\":{}}\n");
        let doc = json!({"ts": 1_795_601_700_000i64 + i, "service": {"name": if i % 2 == 0 { "api" } else { "web" }},
            "http": {"status": if i < 3 { 500 } else { 200 }}, "latency_ms": 10 * i,
            "user": format!("user-{i}"), "msg": "request served"});
        body.push_str(&doc.to_string());
        body.push('\n');
    }
    let url = server.at("/api/v1/_elastic/web/_bulk");
    let (status, answer, product) = bulk(&client, &url, body.into_bytes(), true);
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert!(product);
    assert_eq!(answer["errors"], false, "{answer}");
    assert_eq!(answer["items"].as_array().unwrap().len(), 5);

    let all = wait_search(&server, "web", "*", 6);
    assert_eq!(
        all["hits"][0],
        json!({"timestamp": "2026-11-25T10:15:00.000000000Z", "service.name": "api",
            "latency_ms": 20.0, "http": {"status": 500}, "user": "ann"})
    );
    let cases = [
        ("http.status:500", 3),
        ("service.name:api", 3),
        ("service.name:api AND http.status:500", 2),
        ("latency_ms:[15 TO 40]", 4),
        ("user:user-4", 1),
        ("served", 5),
        ("ann", 1),
        ("nothing.here:x", 0),
    ];
    for (q, expected) in cases {
        assert_eq!(total(&server, "web", q), expected, "{q}");
    }
    let projected = server.search(
        "web",
        &[("q", "user:ann"), ("fields", "http.status,service.name")],
    );
    assert_eq!(
        projected["hits"],
        json!([{"service.name": "api", "http.status": 500}])
    );

    // Exported: the dynamic fields as one JSON column.
    let resp = client
        .get(server.at("/api/v1/web/export"))
        .query(&[("q", "http.status:500"), ("format", "csv"), ("sort", "asc")])
        .send()
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let csv = resp.text().unwrap();
    let mut rows = csv.lines();
    assert_eq!(
        rows.next(),
        Some("timestamp,service.name,latency_ms,_dynamic")
    );
    assert_eq!(
        rows.next(),
        Some(
            r#"2026-11-25T10:15:00.000000000Z,api,20.0,"{""http"":{""status"":500},""user"":""ann""}""#
        )
    );
    assert_eq!(rows.count(), 2);
}

#[test]
fn bulk_auto_creates_a_stream_that_survives_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let config = "[indexer]\ncommit_interval_ms = 100\nauto_create_streams = true\n";
    let server = Server::start(&data, config);
    let client = Client::new();
    let body = "{\"index\":{\"_index\":\"fresh\"}}\n{\"@timestamp\":\"2026-11-25T10:00:00Z\",\"app\":{\"name\":\"a\"}}\n\
                {\"index\":{\"_index\":\"Bad..Name\"}}\n{\"x\":1}\n";
    let (status, answer, _) = bulk(
        &client,
        &server.at("/api/v1/_elastic/_bulk"),
        body.as_bytes().to_vec(),
        false,
    );
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["items"][0]["index"]["status"], 201, "{answer}");
    assert_eq!(answer["items"][1]["index"]["status"], 400, "{answer}");
    assert_eq!(
        answer["items"][1]["index"]["error"]["type"],
        "invalid_index_name_exception"
    );
    wait_search(&server, "fresh", "app.name:a", 1);
    server.kill9();

    let server = Server::start(&data, config);
    let found = wait_search(&server, "fresh", "app.name:a", 1);
    assert_eq!(
        found["hits"][0],
        json!({"timestamp": "2026-11-25T10:00:00.000000000Z", "app": {"name": "a"}})
    );
    let streams = json_of(server.get("/api/v1/streams")).1;
    let names: Vec<&str> = streams["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["audit", "events", "fresh", "journal", "logs"]);
}

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

fn otlp_request(pod: &str, records: Vec<LogRecord>) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![
                    kv("k8s.namespace.name", "otel"),
                    kv("k8s.pod.name", pod),
                    kv("k8s.pod.uid", "uid-9"),
                    kv("k8s.container.name", "app"),
                    kv("k8s.node.name", "node-z"),
                    kv("service.name", "checkout"),
                ],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                log_records: records,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn otlp_record(nanos: u64, severity: i32, body: &str) -> LogRecord {
    LogRecord {
        time_unix_nano: nanos,
        severity_number: severity,
        body: Some(AnyValue {
            value: Some(any_value::Value::StringValue(body.into())),
        }),
        trace_id: vec![0x5b; 16],
        span_id: vec![0xee; 8],
        ..Default::default()
    }
}

#[test]
fn otlp_protobuf_and_json_land_in_logs_with_kubernetes_fields() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(
        &tmp.path().join("data"),
        "[indexer]\ncommit_interval_ms = 100\n",
    );
    let client = Client::new();

    // Protobuf, gzip-compressed.
    let request = otlp_request(
        "proto-1",
        vec![
            otlp_record(1_795_601_700_000_000_001, 17, "payment failed"),
            otlp_record(1_795_601_700_000_000_002, 9, "payment ok"),
        ],
    );
    let resp = client
        .post(server.at("/v1/logs"))
        .header("content-type", "application/x-protobuf")
        .header("content-encoding", "gzip")
        .body(gzip(&request.encode_to_vec()))
        .send()
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "application/x-protobuf");
    let answer = ExportLogsServiceResponse::decode(resp.bytes().unwrap()).unwrap();
    assert_eq!(answer.partial_success, None);

    // JSON, one record past the year 2262: a partial success.
    let json_body = json!({"resourceLogs": [{"resource": {"attributes": [
            {"key": "k8s.namespace.name", "value": {"stringValue": "otel"}},
            {"key": "k8s.pod.name", "value": {"stringValue": "json-1"}}]},
        "scopeLogs": [{"logRecords": [
            {"timeUnixNano": "1795601700000000003", "severityText": "WARN",
             "body": {"stringValue": "disk almost full"},
             "traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174",
             "attributes": [{"key": "disk", "value": {"stringValue": "/dev/sda"}}]},
            {"timeUnixNano": "18446744073709551615", "body": {"stringValue": "far future"}}]}]}]});
    let resp = client
        .post(server.at("/v1/logs"))
        .header("content-type", "application/json")
        .body(json_body.to_string())
        .send()
        .unwrap();
    let (status, answer) = json_of(resp);
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        answer["partialSuccess"]["rejectedLogRecords"], "1",
        "{answer}"
    );
    assert!(answer["partialSuccess"]["errorMessage"]
        .as_str()
        .unwrap()
        .contains("2262"));

    // Refusals: another content type, an undecodable body.
    let resp = client
        .post(server.at("/v1/logs"))
        .header("content-type", "text/plain")
        .body("hello")
        .send()
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let resp = client
        .post(server.at("/v1/logs"))
        .header("content-type", "application/json")
        .body("{\"resourceLogs\": 5}")
        .send()
        .unwrap();
    let (status, answer) = json_of(resp);
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer["code"], 3, "{answer}");

    let found = wait_search(&server, "logs", "namespace:otel", 3);
    let hits = found["hits"].as_array().unwrap();
    assert_eq!(
        hits[0],
        json!({"timestamp": "2026-11-25T10:15:00.000000001Z", "node": "node-z",
            "namespace": "otel", "pod": "proto-1", "pod_uid": "uid-9", "container": "app",
            "level": "error", "message": "payment failed",
            "attributes": {"service.name": "checkout",
                "trace_id": "5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b", "span_id": "eeeeeeeeeeeeeeee"}})
    );
    assert_eq!(hits[1]["level"], "info");
    assert_eq!(
        hits[2],
        json!({"timestamp": "2026-11-25T10:15:00.000000003Z", "namespace": "otel",
            "pod": "json-1", "level": "warn", "message": "disk almost full",
            "attributes": {"disk": "/dev/sda", "trace_id": "5b8efff798038103d269b633813fc60c",
                "span_id": "eee19b7ec3c1b174"}})
    );
    assert_eq!(
        total(
            &server,
            "logs",
            "attributes.trace_id:5b8efff798038103d269b633813fc60c"
        ),
        1
    );
}

#[test]
fn loki_push_in_json_and_snappy_protobuf() {
    use trawl_indexer::compat::loki::{EntryAdapter, PushRequest, StreamAdapter};

    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(
        &tmp.path().join("data"),
        "[indexer]\ncommit_interval_ms = 100\n",
    );
    let client = Client::new();

    let json_push = json!({"streams": [{
        "stream": {"k8s_namespace_name": "loki", "pod": "json-1", "container": "app",
            "level": "error", "job": "loki/app"},
        "values": [["1795601700000000001", "first"], ["1795601700000000002", "second", {"trace_id": "t2"}]]}]});
    let resp = client
        .post(server.at("/loki/api/v1/push"))
        .header("content-type", "application/json")
        .body(json_push.to_string())
        .send()
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);

    let push = PushRequest {
        streams: vec![StreamAdapter {
            labels: r#"{namespace="loki", pod="proto-1", node_name="node-l", app="say \"hi\""}"#
                .into(),
            entries: vec![EntryAdapter {
                timestamp: Some(prost_types::Timestamp {
                    seconds: 1_795_601_700,
                    nanos: 3,
                }),
                line: "level=warn msg=third".into(),
                structured_metadata: vec![],
            }],
            hash: 0,
        }],
    };
    let body = snap::raw::Encoder::new()
        .compress_vec(&push.encode_to_vec())
        .unwrap();
    let resp = client
        .post(server.at("/loki/api/v1/push"))
        .header("content-type", "application/x-protobuf")
        .body(body)
        .send()
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);

    for (content_type, body) in [
        (
            "application/json",
            b"{\"streams\": [{\"values\": [[\"x\", \"y\"]]}]}".to_vec(),
        ),
        ("application/x-protobuf", b"not snappy".to_vec()),
    ] {
        let resp = client
            .post(server.at("/loki/api/v1/push"))
            .header("content-type", content_type)
            .body(body)
            .send()
            .unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        assert!(!resp.text().unwrap().trim().is_empty());
    }

    let found = wait_search(&server, "logs", "namespace:loki", 3);
    assert_eq!(
        found["hits"],
        json!([
            {"timestamp": "2026-11-25T10:15:00.000000001Z", "namespace": "loki", "pod": "json-1",
                "container": "app", "labels": {"job": "loki/app"}, "level": "error",
                "message": "first"},
            {"timestamp": "2026-11-25T10:15:00.000000002Z", "namespace": "loki", "pod": "json-1",
                "container": "app", "labels": {"job": "loki/app"}, "level": "error",
                "message": "second", "attributes": {"trace_id": "t2"}},
            {"timestamp": "2026-11-25T10:15:00.000000003Z", "node": "node-l", "namespace": "loki",
                "pod": "proto-1", "labels": {"app": "say \"hi\""}, "level": "warn",
                "message": "level=warn msg=third"},
        ])
    );
}
