//! Bad input at the API: each bad request gets its exact status and a JSON error (or a
//! per-line rejection), nothing of a refused body is ingested, and the server stays up.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::{gen, ndjson, zstd_body, zstd_bytes, Server};

const LIMITS: &str = "[indexer]
commit_interval_ms = 100
max_body_bytes = 65536
max_decompressed_bytes = 1048576
";

/// Asserts a JSON error body `{"error": {"code": <code>, "message": <non-empty>}}`.
fn assert_error(body: &Value, code: &str) {
    assert_eq!(body["error"]["code"], code, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(!message.is_empty(), "error without a message: {body}");
}

/// Asserts a JSON error body with some code and a message.
fn assert_some_error(body: &Value) {
    let code = body["error"]["code"].as_str().unwrap_or_default();
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        !code.is_empty() && !message.is_empty(),
        "not a JSON error: {body}"
    );
}

#[test]
fn bad_requests_get_exact_errors_and_good_lines_stay_searchable() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("data"), LIMITS);

    // (a) A malformed JSON line among good ones: rejected alone, by its 1-based line number.
    let mut lines = gen::lines(0..5, "goodjson");
    lines[2] = r#"{"timestamp":"2026-11-25T10:00:00Z","message":"half"#.to_string();
    let answer = server.ingest_plain("logs", &lines);
    assert_eq!(answer["accepted"], 4, "{answer}");
    assert_eq!(answer["rejected"], 1, "{answer}");
    let errors = answer["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{answer}");
    assert_eq!(errors[0]["line"], 3, "{answer}");
    assert!(!errors[0]["message"].as_str().unwrap().is_empty());

    // An unknown top-level field is kept in `attributes`; a line without a message is the bad
    // one, named in the message.
    let mut lines = gen::lines(5..8, "goodfield");
    lines[1] = r#"{"message":"x goodfield","colour":"red"}"#.to_string();
    lines.push(r#"{"colour":"blue"}"#.to_string());
    let answer = server.ingest_plain("logs", &lines);
    assert_eq!(answer["accepted"], 3, "{answer}");
    assert_eq!(answer["rejected"], 1, "{answer}");
    assert_eq!(answer["errors"][0]["line"], 4, "{answer}");
    let message = answer["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("no message"), "{answer}");

    // (b) A line that is not UTF-8, compressed with zstd like a collector's batch.
    let mut body = ndjson(&gen::lines(8..9, "goodutf"));
    body.extend_from_slice(b"{\"message\":\"bad \xff\xfe bytes goodutf\"}\n");
    body.extend_from_slice(&ndjson(&gen::lines(9..10, "goodutf")));
    let (status, answer) = server.ingest_raw("logs", zstd_bytes(&body), Some("zstd"));
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["accepted"], 2, "{answer}");
    assert_eq!(answer["rejected"], 1, "{answer}");
    assert_eq!(answer["errors"][0]["line"], 2, "{answer}");

    // (c) An unknown stream: 404 on ingest and on search.
    let (status, answer) = server.ingest_raw("nosuch", ndjson(&gen::lines(0..1, "nostream")), None);
    assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");
    assert_error(&answer, "unknown_stream");
    let (status, answer) = server.search_raw("nosuch", &[("q", "*")]);
    assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");
    assert_error(&answer, "unknown_stream");

    // (d) A body over max_body_bytes: 413, received as an answer (a connection reset would
    // have failed `send` in the harness).
    let big = ndjson(&gen::lines(100..900, "oversized"));
    assert!(big.len() > 65_536 * 2, "{} bytes", big.len());
    let (status, answer) = server.ingest_raw("logs", big, None);
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{answer}");
    assert_error(&answer, "payload_too_large");

    // (e) A small zstd body that decompresses past max_decompressed_bytes: 413.
    let line = gen::line(1_000, "zstdbomb");
    let bomb: Vec<String> = std::iter::repeat_n(line, 8_000).collect();
    let bomb = zstd_body(&bomb);
    assert!(
        bomb.len() < 65_536,
        "the bomb is {} bytes compressed",
        bomb.len()
    );
    let (status, answer) = server.ingest_raw("logs", bomb, Some("zstd"));
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{answer}");
    assert_error(&answer, "payload_too_large");

    // (f) A truncated zstd body: 400, and none of its lines ingested (checked below).
    let whole = zstd_body(&gen::lines(2_000..2_100, "truncated"));
    let cut = whole[..whole.len() * 2 / 3].to_vec();
    let (status, answer) = server.ingest_raw("logs", cut, Some("zstd"));
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_some_error(&answer);

    // (g) An unsupported Content-Encoding: 415.
    let (status, answer) = server.ingest_raw(
        "logs",
        ndjson(&gen::lines(3_000..3_010, "brotli")),
        Some("br"),
    );
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{answer}");
    assert_some_error(&answer);

    // (h) An unparsable query: 400 with a JSON error.
    let (status, answer) = server.search_raw("logs", &[("q", "a:(")]);
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_some_error(&answer);

    // A sentinel batch after all the refused ones: once it is searchable, anything refused
    // above would be too, had it been ingested.
    let answer = server.ingest_zstd("logs", &gen::lines(4_000..4_200, "sentinel"));
    assert_eq!(answer["accepted"], 200, "{answer}");
    server.wait_total("sentinel", 200);

    // (i) Still up, good lines searchable, nothing of the refused bodies or lines.
    let live = server.get("/health/live");
    assert_eq!(live.status(), StatusCode::OK);
    assert_eq!(server.total("goodjson", &[]), 4);
    assert_eq!(server.total("goodfield", &[]), 3);
    assert_eq!(server.total("attributes.colour:red", &[]), 1);
    assert_eq!(server.total("goodutf", &[]), 2);
    for refused in [
        "oversized",
        "zstdbomb",
        "truncated",
        "brotli",
        "nostream",
        "half",
    ] {
        assert_eq!(server.total(refused, &[]), 0, "{refused}");
    }
    assert_eq!(server.total("*", &[]), 4 + 3 + 2 + 200);
    let answer = server.search("logs", &[("q", "goodjson"), ("sort", "asc")]);
    let ids: Vec<Value> = answer["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["attributes"]["seq"].clone())
        .collect();
    assert_eq!(ids, vec![json!(0), json!(1), json!(3), json!(4)]);
}

/// The per-request ingest limits: records per batch (413), line size (the line refused, the
/// rest of its batch kept) and concurrent ingest requests (429 with `Retry-After`), each with
/// its JSON error, and the server taking good batches again right after.
#[test]
fn ingest_limits_answer_their_status_and_error() {
    use std::io::{Read, Write};

    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        &dir.path().join("data"),
        "[indexer]
commit_interval_ms = 100
max_records_per_batch = 50
max_line_bytes = 2048
max_concurrent_ingest = 1
ingest_wait_ms = 100
",
    );

    // Records per batch: 51 records are refused whole, 50 are taken.
    let (status, answer) = server.ingest_raw("logs", ndjson(&gen::lines(0..51, "toomany")), None);
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{answer}");
    assert_eq!(
        answer["error"],
        json!({"code": "payload_too_large",
               "message": "batch holds 51 records, more than the limit of 50"}),
    );
    let answer = server.ingest_plain("logs", &gen::lines(100..150, "fifty"));
    assert_eq!(answer["accepted"], 50, "{answer}");

    // Line size: the long line is refused by number, its neighbours are kept.
    let mut lines = gen::lines(200..203, "longline");
    let long = json!({"timestamp": "2026-11-25T10:00:00Z", "message": "x".repeat(4000)});
    lines[1] = long.to_string();
    let long_len = lines[1].len();
    let answer = server.ingest_plain("logs", &lines);
    assert_eq!(answer["accepted"], 2, "{answer}");
    assert_eq!(answer["rejected"], 1, "{answer}");
    assert_eq!(
        answer["errors"],
        json!([{"line": 2, "message": format!("record of {long_len} bytes exceeds max_line_bytes (2048)")}]),
    );

    // Concurrent requests: a request whose body is still arriving holds the one slot, so
    // another one is refused with 429 and Retry-After once its wait for a slot runs out.
    let body = ndjson(&gen::lines(300..301, "slowbody"));
    let addr = server.url.trim_start_matches("http://").to_string();
    let mut slow = std::net::TcpStream::connect(&addr).unwrap();
    write!(
        slow,
        "POST /api/v1/logs/ingest HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/x-ndjson\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    slow.write_all(&body[..10]).unwrap();
    slow.flush().unwrap();
    let client = reqwest::blocking::Client::new();
    let mut refused = None;
    crate::support::wait_until(
        "a second ingest request is refused for want of a slot",
        std::time::Duration::from_secs(30),
        || {
            let resp = client
                .post(server.at("/api/v1/logs/ingest"))
                .body(ndjson(&gen::lines(400..401, "probe")))
                .send()
                .unwrap();
            if resp.status() != StatusCode::TOO_MANY_REQUESTS {
                // Sent before the slow request took its slot: an ordinary answer.
                assert_eq!(resp.status(), StatusCode::OK);
                return false;
            }
            let retry_after = resp.headers().get("retry-after").cloned();
            refused = Some((retry_after, resp.json::<Value>().unwrap()));
            true
        },
    );
    let (retry_after, answer) = refused.unwrap();
    assert_eq!(retry_after.unwrap().to_str().unwrap(), "1");
    assert_eq!(
        answer["error"],
        json!({"code": "too_many_requests", "message": "ingest is at capacity, retry later"}),
    );
    // The slow request finishes and is accepted; the slot is free again.
    slow.write_all(&body[10..]).unwrap();
    let mut response = String::new();
    slow.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let answer = server.ingest_plain("logs", &gen::lines(500..510, "after"));
    assert_eq!(answer["accepted"], 10, "{answer}");

    server.wait_total("after", 10);
    assert_eq!(server.total("toomany", &[]), 0);
    assert_eq!(server.total("fifty", &[]), 50);
    assert_eq!(server.total("longline", &[]), 2);
    assert_eq!(server.total("slowbody", &[]), 1);
}

/// Regression: a non-ASCII character in a relative time (`start=now-é`) or in Elasticsearch
/// date math (`"gte": "now+1é"`) panicked on a character boundary and was answered 500 by the
/// panic layer; each is a 400 with its API's JSON error, and the server stays up.
#[test]
fn non_ascii_time_input_is_a_400_not_a_panic() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("data"), LIMITS);
    let client = reqwest::blocking::Client::new();

    for (name, value) in [
        ("start", "now-é"),
        ("end", "now+1é"),
        ("start", "now-1\u{1F600}"),
    ] {
        let (status, body) = server.search_raw("logs", &[("q", "*"), (name, value)]);
        assert_eq!(status, StatusCode::BAD_REQUEST, "{name}={value}: {body}");
        assert_error(&body, "invalid_argument");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(name), "{message}");
    }
    let resp = client
        .get(server.at("/api/v1/logs/export"))
        .query(&[("start", "now-é"), ("format", "ndjson")])
        .send()
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_error(&resp.json::<Value>().unwrap(), "invalid_argument");

    for bound in ["now+1é", "now/é", "2026-11-25||+1é"] {
        let body = json!({"query": {"range": {"timestamp": {"gte": bound}}}});
        let resp = client
            .post(server.at("/api/v1/_elastic/logs/_search"))
            .json(&body)
            .send()
            .unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{bound}");
        let answer: Value = resp.json().unwrap();
        assert_eq!(answer["status"], 400, "{answer}");
        assert_eq!(answer["error"]["type"], "parsing_exception", "{answer}");
        assert!(
            answer["error"]["reason"].as_str().unwrap().contains(bound),
            "{answer}"
        );
    }

    // Still serving.
    let answer = server.ingest_plain("logs", &gen::lines(0..3, "afterbadtime"));
    assert_eq!(answer["accepted"], 3, "{answer}");
    server.wait_total("afterbadtime", 3);
}
