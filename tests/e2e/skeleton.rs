//! The walking skeleton: zstd ingest, exact totals under time bounds, sort/limit/fields,
//! durability of acknowledged records across SIGKILL and SIGTERM, and the demo cluster a
//! newcomer runs first.

use serde_json::Value;

use crate::support::gen::{self, nanos, rfc3339, ts};
use crate::support::{wait_until, Server, SEARCHABLE_TIMEOUT};

const BATCHES: u64 = 10;
const BATCH_SIZE: u64 = 1_000;
const TOTAL: u64 = BATCHES * BATCH_SIZE;

/// The marker word carried by every record of batch `b` (one token for the default tokenizer).
fn marker(b: u64) -> String {
    format!("skelb{b}")
}

/// How many generated records in `range` satisfy `pred`.
fn count(range: std::ops::Range<u64>, pred: impl Fn(u64) -> bool) -> u64 {
    range.filter(|&i| pred(i)).count() as u64
}

/// Ingests 10,000 records in 10 zstd batches, checks exact totals of three time-bounded
/// queries, the nanosecond-exact bounds, sort/limit/fields; then SIGKILLs the server right
/// after an acknowledged ingest and finds every acknowledged record exactly once after restart.
#[test]
fn zstd_ingest_exact_totals_and_sigkill_after_ack_loses_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let server = Server::start(&data, "[indexer]\ncommit_interval_ms = 200\n");

    for b in 0..BATCHES {
        let range = b * BATCH_SIZE..(b + 1) * BATCH_SIZE;
        let answer = server.ingest_zstd("logs", &gen::lines(range, &marker(b)));
        assert_eq!(answer["accepted"], BATCH_SIZE, "batch {b}: {answer}");
        assert_eq!(answer["rejected"], 0, "batch {b}: {answer}");
        assert_eq!(
            answer["errors"],
            serde_json::json!([]),
            "batch {b}: {answer}"
        );
    }
    server.wait_total("*", TOTAL);

    check_time_bounded_totals(&server);
    check_nanosecond_bounds(&server);
    check_sort_limit_fields(&server);

    // One more batch; the SIGKILL comes right after its acknowledgement, before any commit
    // interval can have passed for sure, so only the WAL can bring it back.
    let last = BATCHES;
    let last_range = TOTAL..TOTAL + 500;
    let last_lines = gen::lines(last_range.clone(), &marker(last));
    let answer = server.ingest_zstd("logs", &last_lines);
    assert_eq!(answer["accepted"], 500, "{answer}");
    server.kill9();

    let server = Server::start(&data, "[indexer]\ncommit_interval_ms = 200\n");
    // Ready means the replayed records are searchable: no waiting here.
    assert_eq!(server.total("*", &[]), TOTAL + 500);
    for b in 0..BATCHES {
        assert_eq!(server.total(&marker(b), &[]), BATCH_SIZE, "batch {b}");
    }
    assert_eq!(server.total(&marker(last), &[]), 500);

    // The replayed record comes back exactly as it was sent, as a flat hit.
    let first = server.search(
        "logs",
        &[
            ("q", marker(last).as_str()),
            ("sort", "asc"),
            ("limit", "1"),
        ],
    );
    let sent: Value = serde_json::from_str(&last_lines[0]).unwrap();
    assert_eq!(first["hits"][0], sent);
}

/// Three different queries with time bounds, each against the count the generator implies.
fn check_time_bounded_totals(server: &Server) {
    // Keyword fields, both bounds.
    let expected = count(1_000..7_000, |i| {
        gen::namespace(i) == "payments" && gen::level(i) == "error"
    });
    assert_eq!(expected, 500);
    let got = server.total(
        "namespace:payments AND level:error",
        &[("start", ts(1_000).as_str()), ("end", ts(7_000).as_str())],
    );
    assert_eq!(
        got, expected,
        "namespace:payments AND level:error in [1000, 7000)"
    );

    // A phrase, start only; records with "reset connection" must not match.
    let expected = count(2_500..TOTAL, gen::has_connection_reset);
    assert_eq!(expected, 1_500);
    let got = server.total("\"connection reset\"", &[("start", ts(2_500).as_str())]);
    assert_eq!(got, expected, "\"connection reset\" from 2500");
    let both_words = count(2_500..TOTAL, |i| {
        gen::has_connection_reset(i) || gen::has_reset_connection(i)
    });
    assert_eq!(
        server.total("connection AND reset", &[("start", ts(2_500).as_str())]),
        both_words
    );

    // A word, end only.
    let expected = count(0..4_321, gen::has_timeout);
    assert_eq!(expected, 618);
    let got = server.total("timeout", &[("end", ts(4_321).as_str())]);
    assert_eq!(got, expected, "timeout before 4321");
}

/// `start` is inclusive and `end` exclusive, exact to the nanosecond.
fn check_nanosecond_bounds(server: &Server) {
    let at = |n: i64| rfc3339(n);
    let cases: [(i64, i64, u64); 6] = [
        (nanos(100), nanos(200), 100),
        (nanos(100) + 1, nanos(200), 99),
        (nanos(100), nanos(200) + 1, 101),
        (nanos(100) - 1, nanos(200) - 1, 100),
        (nanos(100), nanos(100) + 1, 1),
        (nanos(100), nanos(100), 0),
    ];
    for (start, end, expected) in cases {
        let (start, end) = (at(start), at(end));
        let got = server.total("*", &[("start", start.as_str()), ("end", end.as_str())]);
        assert_eq!(got, expected, "[{start}, {end})");
    }
}

/// `sort` asc and desc (the default), `limit`, and `fields` projection on one query.
fn check_sort_limit_fields(server: &Server) {
    let matching: Vec<u64> = (1_000..2_000).filter(|&i| gen::has_timeout(i)).collect();
    let (start, end) = (ts(1_000), ts(2_000));
    let base = [
        ("q", "timeout"),
        ("start", start.as_str()),
        ("end", end.as_str()),
        ("limit", "5"),
        ("fields", "timestamp,message"),
    ];
    let expect = |ids: &[u64]| -> Vec<Value> {
        ids.iter()
            .map(|&i| serde_json::json!({"timestamp": ts(i), "message": gen::message(i, "skelb1")}))
            .collect()
    };

    let mut asc = base.to_vec();
    asc.push(("sort", "asc"));
    let answer = server.search("logs", &asc);
    assert_eq!(answer["total"], matching.len() as u64);
    assert_eq!(answer["hits"], Value::Array(expect(&matching[..5])), "asc");

    let mut desc = base.to_vec();
    desc.push(("sort", "desc"));
    let answer = server.search("logs", &desc);
    let newest: Vec<u64> = matching.iter().rev().take(5).copied().collect();
    assert_eq!(answer["total"], matching.len() as u64);
    assert_eq!(answer["hits"], Value::Array(expect(&newest)), "desc");

    let default = server.search("logs", &base);
    assert_eq!(default["hits"], answer["hits"], "default sort is desc");
}

/// SIGTERM right after an acknowledgement: the server exits cleanly and, restarted, has every
/// acknowledged record exactly once.
#[test]
fn sigterm_right_after_ack_shuts_down_cleanly_losing_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let config = "[indexer]\ncommit_interval_ms = 3000\n";
    let server = Server::start(&data, config);
    let answer = server.ingest_zstd("logs", &gen::lines(0..300, "termb0"));
    assert_eq!(answer["accepted"], 300, "{answer}");
    server.stop();

    let server = Server::start(&data, config);
    assert_eq!(server.total("termb0", &[]), 300);
    let answer = server.ingest_plain("logs", &gen::lines(300..400, "termb1"));
    assert_eq!(answer["accepted"], 100, "{answer}");
    wait_until("termb1 is searchable", SEARCHABLE_TIMEOUT, || {
        server.total("termb1", &[]) == 100
    });
    assert_eq!(server.total("*", &[]), 400);
}

/// The port answers while the roles start (the indexer replays its WAL first): 503 with the
/// error envelope on readiness and on the API, 200 on liveness; once they are up, 200.
#[test]
fn answers_503_until_every_role_is_up() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let faults = tmp.path().join("faults");
    std::fs::create_dir_all(&faults).unwrap();
    let hold = faults.join("hold_start");
    std::fs::write(&hold, b"").unwrap();
    let listen = format!("127.0.0.1:{}", crate::support::free_port());
    let mut server = Server::spawn_with_env(
        "standalone",
        &data,
        "[collector]\nenabled = false\n",
        &listen,
        reqwest::blocking::Client::new(),
        &[("TRAWL_TEST_FAULT_DIR", faults.as_os_str())],
        false,
    );
    wait_until("the port is bound", SEARCHABLE_TIMEOUT, || {
        reqwest::blocking::get(server.at("/health/live")).is_ok()
    });
    for path in ["/health/ready", "/api/v1/logs/search?q=*"] {
        let (status, body) = crate::support::json_of(server.get(path));
        assert_eq!(status, reqwest::StatusCode::SERVICE_UNAVAILABLE, "{path}");
        assert_eq!(body["error"]["code"], "unavailable", "{path}: {body}");
    }
    let (status, body) = crate::support::json_of(server.get("/health/live"));
    assert_eq!(
        (status.as_u16(), body["status"].as_str()),
        (200, Some("live"))
    );

    std::fs::remove_file(&hold).unwrap();
    server.wait_ready();
    let (status, body) = server.search_raw("logs", &[("q", "*")]);
    assert_eq!((status.as_u16(), body["total"].as_u64()), (200, Some(0)));
}

/// `trawl standalone --demo` (the README's first command): its pods' logs come through the
/// real collector, its audit events through the webhook, its Kubernetes Events through the
/// `events` ingest endpoint; each stream holds at least the hour of history written at start.
#[test]
fn the_demo_cluster_fills_logs_audit_and_events() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let server = Server::start_with_config("standalone --demo", &data, "");
    let total = |stream: &str, q: &str| -> u64 {
        let body = server.search(stream, &[("q", q), ("start", "now-2h"), ("limit", "0")]);
        body["total"].as_u64().unwrap()
    };
    wait_until(
        "the demo's history in every stream",
        SEARCHABLE_TIMEOUT,
        || total("logs", "*") > 0 && total("audit", "*") >= 200 && total("events", "*") >= 60,
    );
    // What the demo's pods and nodes go through, as the Kubernetes fields say it.
    assert!(total("events", "type:Warning AND reason:BackOff AND kind:Pod") > 0);
    let node = server.search("events", &[("q", "kind:Node"), ("limit", "1")]);
    assert_eq!(node["hits"][0]["name"], "node-2");
    assert!(node["hits"][0].get("namespace").is_none(), "{node}");
    assert!(total("logs", "namespace:shop") > 0);
    assert!(total("audit", "subresource:exec") > 0);
    let hit = server.search("events", &[("q", "reason:BackOff"), ("limit", "1")]);
    let hit: &Value = &hit["hits"][0];
    assert_eq!(hit["namespace"], "payments");
    assert_eq!(hit["field_path"], "spec.containers{checkout}");
    assert_eq!(hit["node"], "node-2");
    server.stop();
}
