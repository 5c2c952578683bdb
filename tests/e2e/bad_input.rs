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

    // An unknown top-level field is a bad line too, named in the message.
    let mut lines = gen::lines(5..8, "goodfield");
    lines[1] = r#"{"message":"x goodfield","colour":"red"}"#.to_string();
    let answer = server.ingest_plain("logs", &lines);
    assert_eq!(answer["accepted"], 2, "{answer}");
    assert_eq!(answer["rejected"], 1, "{answer}");
    assert_eq!(answer["errors"][0]["line"], 2, "{answer}");
    let message = answer["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("colour"), "{answer}");

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
    assert_some_error(&answer);

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
    assert_some_error(&answer);

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
    assert_eq!(server.total("goodfield", &[]), 2);
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
    assert_eq!(server.total("*", &[]), 4 + 2 + 2 + 200);
    let answer = server.search("logs", &[("q", "goodjson"), ("sort", "asc")]);
    let ids: Vec<Value> = answer["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["attributes"]["seq"].clone())
        .collect();
    assert_eq!(ids, vec![json!(0), json!(1), json!(3), json!(4)]);
}
