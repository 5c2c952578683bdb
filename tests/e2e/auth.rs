//! Authentication, authorization, namespace scopes, TLS and limits over real HTTP against the
//! real binary: tokens hashed by `trawl token hash`, 401/403 with their JSON bodies, a read
//! token limited to namespace `a` seeing exactly the `a` records in search, aggregations,
//! export, tail and reports whatever its query says, HTTPS with a test CA, and the audit
//! webhook accepting a client certificate of the configured CA instead of a token.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use reqwest::blocking::{Client, RequestBuilder};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::{json_of, ndjson, wait_until, Server, SEARCHABLE_TIMEOUT};

pub(crate) const INGEST: &str = "ingest-token-0123456789abcdef";
pub(crate) const READ_A: &str = "read-a-token-0123456789abcdef";
pub(crate) const ADMIN: &str = "admin-token-0123456789abcdef";

/// The hash `trawl token hash` prints for `token` given on standard input.
pub(crate) fn token_hash(token: &str) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_trawl"))
        .args(["token", "hash"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{token}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let hash = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(hash.starts_with("sha256:"), "{hash}");
    hash
}

/// `[[auth.tokens]]` for the three test tokens.
fn tokens_config() -> String {
    format!(
        r#"
[[auth.tokens]]
name = "ingester"
hash = "{}"
role = "ingest"

[[auth.tokens]]
name = "team-a"
hash = "{}"
role = "read"
namespaces = ["a"]

[[auth.tokens]]
name = "ops"
hash = "{}"
role = "admin"
"#,
        token_hash(INGEST),
        token_hash(READ_A),
        token_hash(ADMIN)
    )
}

fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

fn with_token(request: RequestBuilder, token: &str) -> RequestBuilder {
    request.bearer_auth(token)
}

/// 30 log records, 10 in each of namespaces `a`, `b`, `c`.
pub(crate) fn log_lines() -> Vec<String> {
    (0..30)
        .map(|i| {
            let ns = ["a", "b", "c"][i % 3];
            json!({
                "timestamp": format!("2026-11-25T10:00:{:02}.000000001Z", i),
                "namespace": ns,
                "pod": format!("{ns}-pod"),
                "level": "info",
                "message": format!("record {i} of namespace {ns}"),
            })
            .to_string()
        })
        .collect()
}

/// A Kubernetes audit event at `ResponseComplete`; `namespace` `None` is cluster-scoped.
fn audit_event(id: &str, user: &str, namespace: Option<&str>) -> Value {
    let object = match namespace {
        Some(ns) => {
            json!({"resource": "configmaps", "namespace": ns, "name": "cm", "apiVersion": "v1"})
        }
        None => json!({"resource": "nodes", "name": "node-1", "apiVersion": "v1"}),
    };
    let uri = match namespace {
        Some(ns) => format!("/api/v1/namespaces/{ns}/configmaps/cm"),
        None => "/api/v1/nodes/node-1".to_string(),
    };
    json!({
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata",
        "auditID": id, "stage": "ResponseComplete", "verb": "get", "requestURI": uri,
        "user": {"username": user}, "sourceIPs": ["10.0.0.1"], "objectRef": object,
        "responseStatus": {"code": 200},
        "requestReceivedTimestamp": "2026-11-25T10:15:00.000000Z",
        "stageTimestamp": "2026-11-25T10:15:00.002000Z"
    })
}

/// Three events in `a` (alice), two in `b` (bob), one cluster-scoped (carol).
pub(crate) fn audit_lines() -> Vec<String> {
    [
        audit_event("e1", "alice", Some("a")),
        audit_event("e2", "alice", Some("a")),
        audit_event("e3", "alice", Some("a")),
        audit_event("e4", "bob", Some("b")),
        audit_event("e5", "bob", Some("b")),
        audit_event("e6", "carol", None),
    ]
    .iter()
    .map(Value::to_string)
    .collect()
}

fn ingest(server: &Server, token: Option<&str>, stream: &str, lines: &[String]) -> StatusCode {
    let mut request = client()
        .post(server.at(&format!("/api/v1/{stream}/ingest")))
        .body(ndjson(lines));
    if let Some(token) = token {
        request = with_token(request, token);
    }
    request.send().unwrap().status()
}

fn get(server: &Server, token: &str, path: &str, params: &[(&str, &str)]) -> (StatusCode, Value) {
    json_of(
        with_token(client().get(server.at(path)), token)
            .query(params)
            .send()
            .unwrap(),
    )
}

fn post(server: &Server, token: &str, path: &str, body: &Value) -> (StatusCode, Value) {
    json_of(
        with_token(client().post(server.at(path)), token)
            .json(body)
            .send()
            .unwrap(),
    )
}

fn total(server: &Server, token: &str, stream: &str, q: &str) -> u64 {
    let (status, body) = get(
        server,
        token,
        &format!("/api/v1/{stream}/search"),
        &[("q", q), ("limit", "0")],
    );
    assert_eq!(status, StatusCode::OK, "{body}");
    body["total"].as_u64().unwrap()
}

fn namespaces_of(hits: &Value) -> Vec<String> {
    hits.as_array()
        .unwrap()
        .iter()
        .map(|h| h["namespace"].as_str().unwrap_or("").to_string())
        .collect()
}

fn assert_error(status: StatusCode, body: &Value, expected: StatusCode, code: &str) {
    assert_eq!(status, expected, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(body["error"]["message"].is_string(), "{body}");
}

#[test]
fn tokens_roles_and_namespace_scopes() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        &dir.path().join("data"),
        &format!("[indexer]\ncommit_interval_ms = 100\n{}", tokens_config()),
    );

    // No token: 401 with the challenge and the JSON error; the health probes stay open.
    let resp = client()
        .get(server.at("/api/v1/logs/search"))
        .send()
        .unwrap();
    assert_eq!(
        resp.headers()["www-authenticate"].to_str().unwrap(),
        "Bearer realm=\"trawl\""
    );
    let (status, body) = json_of(resp);
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");
    assert_eq!(
        ingest(&server, None, "logs", &log_lines()),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(server.get("/health/live").status(), StatusCode::OK);
    assert_eq!(server.get("/health/ready").status(), StatusCode::OK);
    assert_eq!(server.get("/metrics").status(), StatusCode::UNAUTHORIZED);
    let (status, body) = get(&server, "not-a-token", "/api/v1/logs/search", &[]);
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");
    assert!(!body.to_string().contains("not-a-token"), "{body}");

    // The ingest token ingests but cannot read; the read token cannot ingest or scrape.
    assert_eq!(
        ingest(&server, Some(INGEST), "logs", &log_lines()),
        StatusCode::OK
    );
    assert_eq!(
        ingest(&server, Some(INGEST), "audit", &audit_lines()),
        StatusCode::OK
    );
    let (status, body) = get(&server, INGEST, "/api/v1/logs/search", &[]);
    assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
    assert_eq!(
        ingest(&server, Some(READ_A), "logs", &log_lines()),
        StatusCode::FORBIDDEN
    );
    let resp = with_token(client().get(server.at("/metrics")), READ_A)
        .send()
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let resp = with_token(client().get(server.at("/metrics")), ADMIN)
        .send()
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);

    // The admin sees everything.
    wait_until("every record is searchable", SEARCHABLE_TIMEOUT, || {
        total(&server, ADMIN, "logs", "*") == 30 && total(&server, ADMIN, "audit", "*") == 6
    });

    // Search: the `a` token sees exactly the 10 `a` records, whatever the query names.
    assert_eq!(total(&server, READ_A, "logs", "*"), 10);
    assert_eq!(total(&server, READ_A, "logs", "namespace:b"), 0);
    assert_eq!(
        total(&server, READ_A, "logs", "namespace:a OR namespace:b"),
        10
    );
    assert_eq!(total(&server, READ_A, "logs", "* -namespace:a"), 0);
    let (status, body) = get(
        &server,
        READ_A,
        "/api/v1/logs/search",
        &[("q", "namespace:c OR record"), ("limit", "100")],
    );
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(namespaces_of(&body["hits"]), vec!["a"; 10]);

    // Aggregations count only the `a` records.
    let aggs = json!({"q": "*", "limit": 0, "aggs": {"ns": {"terms": {"field": "namespace"}}}});
    let (status, body) = post(&server, READ_A, "/api/v1/logs/search", &aggs);
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["aggregations"]["ns"]["buckets"],
        json!([{"key": "a", "doc_count": 10}])
    );
    let (_, body) = post(&server, ADMIN, "/api/v1/logs/search", &aggs);
    assert_eq!(
        body["aggregations"]["ns"]["buckets"]
            .as_array()
            .unwrap()
            .len(),
        3
    );

    // Export (GET and POST): exactly the `a` records.
    let resp = with_token(client().get(server.at("/api/v1/logs/export")), READ_A)
        .query(&[("q", "namespace:b OR namespace:a"), ("format", "ndjson")])
        .send()
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let text = resp.text().unwrap();
    let exported: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(namespaces_of(&Value::Array(exported)), vec!["a"; 10]);
    let resp = with_token(client().post(server.at("/api/v1/logs/export")), READ_A)
        .json(&json!({"q": "*", "format": "ndjson", "aggs": {"ns": {"terms": {"field": "namespace"}}}}))
        .send()
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let rows: Vec<Value> = resp
        .text()
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["ns"], "a", "{rows:?}");

    // Audit: by namespace; the cluster-scoped event only for tokens without a list.
    assert_eq!(total(&server, READ_A, "audit", "*"), 3);
    assert_eq!(total(&server, READ_A, "audit", "user:carol OR user:bob"), 0);
    let report = |token: &str| -> Vec<(String, u64)> {
        let (status, body) = get(&server, token, "/api/v1/audit/reports/top-users", &[]);
        assert_eq!(status, StatusCode::OK, "{body}");
        let mut rows: Vec<(String, u64)> = body["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["user"].as_str().unwrap().to_string(),
                    r["count"].as_u64().unwrap(),
                )
            })
            .collect();
        rows.sort();
        rows
    };
    assert_eq!(report(READ_A), vec![("alice".to_string(), 3)]);
    assert_eq!(
        report(ADMIN),
        vec![
            ("alice".to_string(), 3),
            ("bob".to_string(), 2),
            ("carol".to_string(), 1)
        ]
    );
    let (status, body) = get(&server, INGEST, "/api/v1/audit/reports/top-users", &[]);
    assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");

    // Tail: a batch of `a` and `b` records, then an `a` sentinel; the `a` token receives the
    // `a` records only, whatever its query.
    let resp = with_token(client().get(server.at("/api/v1/logs/tail")), READ_A)
        .query(&[
            ("q", "namespace:b OR live"),
            ("fields", "message,namespace"),
        ])
        .send()
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let live = |i: usize, ns: &str| {
        json!({
            "timestamp": format!("2026-11-25T11:00:{i:02}.000000000Z"),
            "namespace": ns, "level": "info", "message": format!("live {i} {ns}"),
        })
        .to_string()
    };
    let batch = vec![live(0, "a"), live(1, "b"), live(2, "a"), live(3, "b")];
    assert_eq!(
        ingest(&server, Some(INGEST), "logs", &batch),
        StatusCode::OK
    );
    assert_eq!(
        ingest(&server, Some(INGEST), "logs", &[live(4, "a")]),
        StatusCode::OK
    );
    let mut received = Vec::new();
    for line in BufReader::new(resp).lines() {
        let line = line.unwrap();
        if let Some(data) = line.strip_prefix("data:") {
            let record: Value = serde_json::from_str(data.trim()).unwrap();
            let message = record["message"].as_str().unwrap().to_string();
            let done = message == "live 4 a";
            received.push(message);
            if done {
                break;
            }
        }
    }
    assert_eq!(received, vec!["live 0 a", "live 2 a", "live 4 a"]);
}

/// A namespace-scoped read token learns nothing of other namespaces anywhere: the stream
/// statistics (`GET /api/v1/streams`, `_cat/indices`: documents, bytes, splits, time range)
/// and every read endpoint of the Elasticsearch API count only its own namespace's records.
#[test]
fn scoped_token_sees_only_its_namespaces_in_stats_and_elastic() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        &dir.path().join("data"),
        &format!("[indexer]\ncommit_interval_ms = 100\n{}", tokens_config()),
    );
    assert_eq!(
        ingest(&server, Some(INGEST), "logs", &log_lines()),
        StatusCode::OK
    );
    assert_eq!(
        ingest(&server, Some(INGEST), "audit", &audit_lines()),
        StatusCode::OK
    );
    wait_until("every record is searchable", SEARCHABLE_TIMEOUT, || {
        total(&server, ADMIN, "logs", "*") == 30 && total(&server, ADMIN, "audit", "*") == 6
    });

    // GET /api/v1/streams: the admin sees the whole streams, the `a` token its share.
    let stream = |token: &str, name: &str| -> Value {
        let (status, body) = get(&server, token, "/api/v1/streams", &[]);
        assert_eq!(status, StatusCode::OK, "{body}");
        body["streams"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no stream {name} in {body}"))
    };
    let all_logs = stream(ADMIN, "logs");
    assert_eq!(all_logs["docs"], 30, "{all_logs}");
    assert_eq!(all_logs["min_timestamp"], "2026-11-25T10:00:00.000000001Z");
    assert_eq!(all_logs["max_timestamp"], "2026-11-25T10:00:29.000000001Z");
    let a_logs = stream(READ_A, "logs");
    assert_eq!(a_logs["docs"], 10, "{a_logs}");
    // Bytes in proportion to the visible records, read between two equal whole-stream
    // readings (a seal or a merge may change the bytes in between).
    let bytes = |token: &str| stream(token, "logs")["bytes"].as_u64().unwrap();
    wait_until("the stream's bytes hold still", SEARCHABLE_TIMEOUT, || {
        let before = bytes(ADMIN);
        let scoped = bytes(READ_A);
        if before > 0 && before == bytes(ADMIN) {
            assert_eq!(scoped, before / 3);
            return true;
        }
        false
    });
    // Namespace `a` holds records 0, 3, ..., 27.
    assert_eq!(a_logs["min_timestamp"], "2026-11-25T10:00:00.000000001Z");
    assert_eq!(a_logs["max_timestamp"], "2026-11-25T10:00:27.000000001Z");
    assert_eq!(stream(ADMIN, "audit")["docs"], 6);
    assert_eq!(stream(READ_A, "audit")["docs"], 3);

    // _cat/indices, JSON and text.
    let cat = |token: &str| -> Vec<(String, String)> {
        let (status, body) = get(
            &server,
            token,
            "/api/v1/_elastic/_cat/indices",
            &[("format", "json"), ("bytes", "b")],
        );
        assert_eq!(status, StatusCode::OK, "{body}");
        let mut rows: Vec<(String, String)> = body
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["index"] == "logs" || r["index"] == "audit")
            .map(|r| {
                (
                    r["index"].as_str().unwrap().to_string(),
                    r["docs.count"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        rows.sort();
        rows
    };
    let rows = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    };
    assert_eq!(cat(ADMIN), rows(&[("audit", "6"), ("logs", "30")]));
    assert_eq!(cat(READ_A), rows(&[("audit", "3"), ("logs", "10")]));
    let text = with_token(
        client().get(server.at("/api/v1/_elastic/_cat/indices/logs")),
        READ_A,
    )
    .query(&[("h", "index,docs.count")])
    .send()
    .unwrap()
    .text()
    .unwrap();
    assert_eq!(text.split_whitespace().collect::<Vec<_>>(), ["logs", "10"]);

    // _search (GET and POST), _count, _msearch: the `a` records only, whatever the query.
    let es = |method: reqwest::Method, path: &str, body: Option<String>| -> Value {
        let mut request = with_token(client().request(method, server.at(path)), READ_A);
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body);
        }
        let (status, body) = json_of(request.send().unwrap());
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        body
    };
    let search_body = json!({"query": {"bool": {"should": [
        {"term": {"namespace": "b"}}, {"match_all": {}}]}},
        "size": 100, "track_total_hits": true,
        "aggs": {"ns": {"terms": {"field": "namespace"}}}})
    .to_string();
    let answer = es(
        reqwest::Method::POST,
        "/api/v1/_elastic/logs/_search",
        Some(search_body),
    );
    assert_eq!(answer["hits"]["total"]["value"], 10, "{answer}");
    let namespaces: Vec<&str> = answer["hits"]["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["_source"]["namespace"].as_str().unwrap())
        .collect();
    assert_eq!(namespaces, vec!["a"; 10]);
    assert_eq!(
        answer["aggregations"]["ns"]["buckets"],
        json!([{"key": "a", "doc_count": 10}])
    );
    // Every stream at once: the 10 logs and 3 audit events of `a`.
    let everything = json!({"size": 100, "track_total_hits": true}).to_string();
    let answer = es(
        reqwest::Method::POST,
        "/api/v1/_elastic/_search",
        Some(everything),
    );
    assert_eq!(answer["hits"]["total"]["value"], 13, "{answer}");
    let hits = answer["hits"]["hits"].as_array().unwrap();
    assert_eq!(hits.len(), 13);
    assert!(
        hits.iter().all(|h| h["_source"]["namespace"] == "a"),
        "{answer}"
    );
    let answer = es(
        reqwest::Method::GET,
        "/api/v1/_elastic/logs/_search?q=namespace:b&track_total_hits=true",
        None,
    );
    assert_eq!(answer["hits"]["total"]["value"], 0, "{answer}");
    let count_body = json!({"query": {"term": {"namespace": "b"}}}).to_string();
    assert_eq!(
        es(
            reqwest::Method::POST,
            "/api/v1/_elastic/logs/_count",
            Some(count_body)
        )["count"],
        0
    );
    assert_eq!(
        es(reqwest::Method::GET, "/api/v1/_elastic/logs/_count", None)["count"],
        10
    );
    assert_eq!(
        es(reqwest::Method::GET, "/api/v1/_elastic/_count", None)["count"],
        13
    );
    let msearch = format!(
        "{}\n{}\n{}\n{}\n",
        json!({"index": "logs"}),
        json!({"query": {"match_all": {}}, "track_total_hits": true, "size": 0}),
        json!({"index": "audit"}),
        json!({"query": {"match_all": {}}, "track_total_hits": true, "size": 0}),
    );
    let answer = with_token(
        client().post(server.at("/api/v1/_elastic/_msearch")),
        READ_A,
    )
    .header("content-type", "application/x-ndjson")
    .body(msearch)
    .send()
    .unwrap();
    let (status, answer) = json_of(answer);
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["responses"][0]["hits"]["total"]["value"], 10);
    assert_eq!(answer["responses"][1]["hits"]["total"]["value"], 3);
    // The schema endpoints answer (they hold no records).
    for path in [
        "/api/v1/_elastic/logs/_mapping",
        "/api/v1/_elastic/logs/_field_caps?fields=namespace",
        "/api/v1/_elastic/logs",
        "/api/v1/_elastic/_cluster/health",
    ] {
        es(reqwest::Method::GET, path, None);
    }
}

#[test]
fn limits_answer_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        &dir.path().join("data"),
        "[indexer]\ncommit_interval_ms = 100\n[query]\nmax_limit = 500\naggregation_memory_bytes = 1000\n",
    );
    // 1,000 distinct pods: a terms aggregation over them needs far more than 1,000 bytes.
    let lines: Vec<String> = (0..1000)
        .map(|i| {
            json!({
                "timestamp": format!("2026-11-25T10:00:00.{i:09}Z"),
                "namespace": "a", "pod": format!("pod-{i}"), "message": "m",
            })
            .to_string()
        })
        .collect();
    server.ingest_plain("logs", &lines);
    server.wait_total("*", 1000);

    let (status, body) = server.search_raw("logs", &[("limit", "501")]);
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"error": {"code": "invalid_argument", "message": "`limit` 501 exceeds the maximum of 500"}})
    );
    let resp = client()
        .get(server.at("/api/v1/audit/reports/top-users"))
        .query(&[("limit", "501")])
        .send()
        .unwrap();
    let (status, body) = json_of(resp);
    assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_argument");

    let resp = client()
        .post(server.at("/api/v1/logs/search"))
        .json(&json!({"limit": 0, "aggs": {"pods": {"terms": {"field": "pod", "size": 1000}}}}))
        .send()
        .unwrap();
    let (status, body) = json_of(resp);
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "too_expensive",
    );
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("1000"), "{message}");
    // The server is still fine.
    assert_eq!(server.total("*", &[]), 1000);
}

/// A CA (or a certificate it signs) for the TLS tests.
pub(crate) struct Pki {
    ca_params: rcgen::CertificateParams,
    ca_key: rcgen::KeyPair,
    pub(crate) ca_pem: String,
}

impl Pki {
    pub(crate) fn new(name: &str) -> Pki {
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        ca_params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let ca_pem = ca_params.self_signed(&ca_key).unwrap().pem();
        Pki {
            ca_params,
            ca_key,
            ca_pem,
        }
    }

    /// A certificate for `names` signed by this CA: (certificate PEM, key PEM).
    pub(crate) fn issue(
        &self,
        names: &[&str],
        usage: rcgen::ExtendedKeyUsagePurpose,
    ) -> (String, String) {
        let mut params =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.extended_key_usages = vec![usage];
        let key = rcgen::KeyPair::generate().unwrap();
        let issuer = rcgen::Issuer::from_params(&self.ca_params, &self.ca_key);
        let cert = params.signed_by(&key, &issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

pub(crate) fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[test]
fn tls_listener_and_webhook_client_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let server_ca = Pki::new("trawl test server CA");
    let client_ca = Pki::new("trawl test client CA");
    let rogue_ca = Pki::new("some other CA");
    let (cert, key) = server_ca.issue(
        &["localhost", "127.0.0.1"],
        rcgen::ExtendedKeyUsagePurpose::ServerAuth,
    );
    let server_ca_path = write(dir.path(), "server-ca.pem", &server_ca.ca_pem);
    let config = format!(
        r#"
[collector]
pods_dir = "{pods}"
node_name = "cp-1"
batch_max_wait_ms = 50
ca_path = "{server_ca_path}"

[indexer]
commit_interval_ms = 100

[auth.tls]
cert_path = "{cert}"
key_path = "{key}"
client_ca_path = "{client_ca}"
{tokens}
"#,
        pods = dir.path().join("no-pods").display(),
        cert = write(dir.path(), "server.pem", &cert),
        key = write(dir.path(), "server-key.pem", &key),
        client_ca = write(dir.path(), "client-ca.pem", &client_ca.ca_pem),
        tokens = tokens_config(),
    );
    let ca = reqwest::Certificate::from_pem(server_ca.ca_pem.as_bytes()).unwrap();
    let trusting = |identity: Option<(String, String)>| {
        let mut builder = Client::builder()
            .timeout(Duration::from_secs(60))
            .add_root_certificate(ca.clone());
        if let Some((cert, key)) = identity {
            builder = builder
                .identity(reqwest::Identity::from_pem(format!("{cert}{key}").as_bytes()).unwrap());
        }
        builder.build().unwrap()
    };
    let server = Server::start_with_client(
        "standalone",
        &dir.path().join("data"),
        &config,
        "127.0.0.1:0",
        trusting(None),
    );
    assert!(
        server.url.starts_with("https://127.0.0.1:"),
        "{}",
        server.url
    );

    // A client trusting the CA connects; plain HTTP and a client not trusting it do not.
    let resp = with_token(trusting(None).get(server.at("/api/v1/logs/search")), ADMIN)
        .send()
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let plain = server.url.replace("https://", "http://");
    let refused = client().get(format!("{plain}/health/live")).send();
    assert!(refused.is_err(), "plain HTTP answered {refused:?}");
    assert!(client().get(server.at("/health/live")).send().is_err());

    // The webhook: a client certificate of the configured CA stands in for a token; one of
    // another CA fails the handshake; no certificate and no token is 401.
    let list = json!({"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": [
        audit_event("w1", "alice", Some("a")),
        audit_event("w2", "bob", None),
    ]});
    let good = client_ca.issue(
        &["kube-apiserver"],
        rcgen::ExtendedKeyUsagePurpose::ClientAuth,
    );
    let rogue = rogue_ca.issue(
        &["kube-apiserver"],
        rcgen::ExtendedKeyUsagePurpose::ClientAuth,
    );
    let resp = trusting(Some(good.clone()))
        .post(server.at("/api/v1/audit/webhook"))
        .json(&list)
        .send()
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let refused = trusting(Some(rogue))
        .post(server.at("/api/v1/audit/webhook"))
        .json(&list)
        .send();
    assert!(
        refused.is_err(),
        "a certificate of another CA passed the handshake: {refused:?}"
    );
    // Where a certificate is required (the webhook, without a token), a client presenting
    // none is refused.
    let (status, body) = json_of(
        trusting(None)
            .post(server.at("/api/v1/audit/webhook"))
            .json(&list)
            .send()
            .unwrap(),
    );
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");
    // The certificate authenticates the webhook only.
    let (status, body) = json_of(
        trusting(Some(good))
            .get(server.at("/api/v1/audit/search"))
            .send()
            .unwrap(),
    );
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");
    // An ingest token is accepted on the webhook too.
    let resp = with_token(
        trusting(None).post(server.at("/api/v1/audit/webhook")),
        INGEST,
    )
    .json(&json!({"kind": "EventList", "items": [audit_event("w3", "carol", Some("b"))]}))
    .send()
    .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);

    // The in-process collector ships the spooled events over TLS with its own token.
    let admin_total = |q: &str| {
        let (status, body) = json_of(
            with_token(trusting(None).get(server.at("/api/v1/audit/search")), ADMIN)
                .query(&[("q", q), ("limit", "0")])
                .send()
                .unwrap(),
        );
        assert_eq!(status, StatusCode::OK, "{body}");
        body["total"].as_u64().unwrap()
    };
    wait_until(
        "the webhook's events are searchable",
        Duration::from_secs(30),
        || admin_total("*") == 3,
    );
    let (status, body) = json_of(
        with_token(
            trusting(None).get(server.at("/api/v1/audit/search")),
            READ_A,
        )
        .query(&[("q", "*"), ("fields", "audit_id")])
        .send()
        .unwrap(),
    );
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["hits"], json!([{"audit_id": "w1"}]));
}
