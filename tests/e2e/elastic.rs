//! The Elasticsearch-compatible query API over real HTTP: records ingested through
//! `/api/v1/logs/ingest`, then searched with `_search`, `_msearch` and `_count`, described by
//! `_mapping` and `_field_caps`, the cluster info with its product header, and the error of an
//! unsupported construct, all with exact expected answers computed from the generator.

use std::time::Duration;

use reqwest::blocking::Client;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::gen::{self, nanos, ts};
use crate::support::{json_of, Server};

const RECORDS: u64 = 200;

fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

fn post_json(server: &Server, path: &str, body: &Value) -> (StatusCode, Value) {
    let response = client()
        .post(server.at(path))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .unwrap();
    json_of(response)
}

fn search(server: &Server, body: Value) -> Value {
    let (status, answer) = post_json(server, "/api/v1/_elastic/logs/_search", &body);
    assert_eq!(status, StatusCode::OK, "{body} answered {answer}");
    answer
}

fn count_of(range: std::ops::Range<u64>, pred: impl Fn(u64) -> bool) -> u64 {
    range.filter(|&i| pred(i)).count() as u64
}

#[test]
fn elasticsearch_api_answers_exactly_over_http() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(
        &tmp.path().join("data"),
        "[indexer]\ncommit_interval_ms = 200\n",
    );
    let answer = server.ingest_plain("logs", &gen::lines(0..RECORDS, "esmark"));
    assert_eq!(answer["accepted"], json!(RECORDS), "{answer}");
    server.wait_total("*", RECORDS);

    // Cluster info, with the header the official clients insist on.
    let response = server.get("/api/v1/_elastic");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["x-elastic-product"].to_str().unwrap(),
        "Elasticsearch"
    );
    let (_, info) = json_of(response);
    assert_eq!(info["version"]["number"], json!("8.11.0"));
    assert_eq!(info["tagline"], json!("You Know, for Search"));

    // A bool query: nanosecond-exact ISO bounds on @timestamp, a term, oldest first.
    let body = search(
        &server,
        json!({
            "size": 3,
            "query": {"bool": {"filter": [
                {"range": {"@timestamp": {"gte": ts(20), "lt": ts(60)}}},
                {"term": {"namespace": "payments"}}
            ]}},
            "sort": [{"@timestamp": "asc"}],
            "_source": ["pod", "offset"]
        }),
    );
    assert_eq!(
        body["hits"]["total"],
        json!({"value": count_of(20..60, |i| i % 4 == 0), "relation": "eq"})
    );
    let hits: Vec<Value> = body["hits"]["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| json!([h["_index"], h["_source"], h["sort"]]))
        .collect();
    assert_eq!(
        hits,
        vec![
            json!(["logs", {"pod": "payments-2", "offset": 2000}, [nanos(20)]]),
            json!(["logs", {"pod": "payments-0", "offset": 2400}, [nanos(24)]]),
            json!(["logs", {"pod": "payments-1", "offset": 2800}, [nanos(28)]]),
        ]
    );

    // query_string with the tantivy grammar, AND by default.
    let body = search(
        &server,
        json!({"size": 0, "query": {"query_string": {"query": "timeout namespace:payments"}}}),
    );
    assert_eq!(
        body["hits"]["total"]["value"],
        json!(count_of(0..RECORDS, |i| gen::has_timeout(i) && i % 4 == 0))
    );

    // _count with a phrase.
    let (status, body) = post_json(
        &server,
        "/api/v1/_elastic/logs/_count",
        &json!({"query": {"match_phrase": {"message": "connection reset"}}}),
    );
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["count"],
        json!(count_of(0..RECORDS, gen::has_connection_reset))
    );

    // _msearch as Grafana sends it: NDJSON pairs, aggregations, one failing item.
    let start_ms = nanos(0) / 1_000_000;
    let lines = [
        json!({"index": "logs", "ignore_unavailable": true}),
        json!({"size": 0, "query": {"bool": {"filter": [
            {"range": {"@timestamp": {"gte": start_ms, "lte": start_ms + 60_000, "format": "epoch_millis"}}},
            {"query_string": {"query": "*", "analyze_wildcard": true}}
        ]}}, "aggs": {
            "levels": {"terms": {"field": "level.keyword", "size": 10, "order": {"_key": "asc"}}},
            "per10s": {"date_histogram": {"field": "@timestamp", "fixed_interval": "10s", "min_doc_count": 0, "format": "epoch_millis"}}
        }}),
        json!({"index": "nope"}),
        json!({}),
    ];
    let ndjson: String = lines.iter().map(|l| format!("{l}\n")).collect();
    let response = client()
        .post(server.at("/api/v1/_elastic/_msearch"))
        .header("content-type", "application/x-ndjson")
        .body(ndjson)
        .send()
        .unwrap();
    let (status, body) = json_of(response);
    assert_eq!(status, StatusCode::OK, "{body}");
    let first = &body["responses"][0];
    assert_eq!(first["status"], json!(200), "{body}");
    assert_eq!(first["hits"]["total"]["value"], json!(RECORDS));
    let levels: Vec<(String, u64)> = first["aggregations"]["levels"]["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["key"].as_str().unwrap().to_string(),
                b["doc_count"].as_u64().unwrap(),
            )
        })
        .collect();
    let level_count = |l: &str| count_of(0..RECORDS, |i| gen::level(i) == l);
    assert_eq!(
        levels,
        [
            ("error".to_string(), level_count("error")),
            ("info".to_string(), level_count("info")),
            ("warn".to_string(), level_count("warn")),
        ]
    );
    // Records are 0.250000007 s apart from a whole minute: 40 per 10 s bucket.
    let per10s: Vec<(i64, String, u64)> = first["aggregations"]["per10s"]["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["key"].as_i64().unwrap(),
                b["key_as_string"].as_str().unwrap().to_string(),
                b["doc_count"].as_u64().unwrap(),
            )
        })
        .collect();
    let expected: Vec<(i64, String, u64)> = (0..5)
        .map(|k| {
            let key = start_ms + k * 10_000;
            (key, key.to_string(), 40)
        })
        .collect();
    assert_eq!(per10s, expected);
    let second = &body["responses"][1];
    assert_eq!(second["status"], json!(404));
    assert_eq!(second["error"]["type"], json!("index_not_found_exception"));

    // Mapping and field capabilities.
    let (status, body) = json_of(server.get("/api/v1/_elastic/logs/_mapping"));
    assert_eq!(status, StatusCode::OK);
    let props = &body["logs"]["mappings"]["properties"];
    assert_eq!(
        [
            &props["@timestamp"]["type"],
            &props["namespace"]["type"],
            &props["message"]["type"],
            &props["offset"]["type"]
        ],
        [
            &json!("date_nanos"),
            &json!("keyword"),
            &json!("text"),
            &json!("long")
        ]
    );
    let (status, body) =
        json_of(server.get("/api/v1/_elastic/logs/_field_caps?fields=level,message"));
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body["fields"],
        json!({
            "level": {"keyword": {"type": "keyword", "metadata_field": false, "searchable": true, "aggregatable": true}},
            "message": {"text": {"type": "text", "metadata_field": false, "searchable": true, "aggregatable": false}}
        })
    );

    // An unsupported construct: 400 naming it, in Elasticsearch's error shape.
    let (status, body) = post_json(
        &server,
        "/api/v1/_elastic/logs/_search",
        &json!({"query": {"fuzzy": {"message": "timeuot"}}}),
    );
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"error": {
            "root_cause": [{"type": "parsing_exception", "reason": "[fuzzy] query is not supported by trawl"}],
            "type": "parsing_exception",
            "reason": "[fuzzy] query is not supported by trawl"
        }, "status": 400})
    );
}
