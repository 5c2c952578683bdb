//! Live tail, exports and the command-line client against a real server: a tail client
//! connected before an ingest receives exactly the matching records; exports in every format
//! over HTTP hold exactly the matching records; `trawl search` and `trawl export` print what
//! the API answers and say what to do when no server is there.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use reqwest::blocking::Client;
use reqwest::StatusCode;
use serde_json::Value;

use crate::support::gen::{self, level};
use crate::support::Server;

/// How long the tail test waits for the records it expects (the contract is about 1 s).
const TAIL_TIMEOUT: Duration = Duration::from_secs(30);

/// After the expected records, how long the tail must stay quiet (nothing extra arrives).
const QUIET: Duration = Duration::from_millis(1500);

/// What the tail reader thread sees.
#[derive(Debug)]
pub(crate) enum TailEvent {
    Record(Value),
    Error(String),
}

/// Opens `GET /api/v1/logs/tail` with `params` and returns once the response headers are in
/// (the subscription is in place); a thread forwards every event.
pub(crate) fn open_tail(server: &Server, params: &[(&str, &str)]) -> mpsc::Receiver<TailEvent> {
    let client = Client::builder().timeout(None).build().unwrap();
    let response = client
        .get(server.at("/api/v1/logs/tail"))
        .query(params)
        .send()
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut event = String::new();
        for line in BufReader::new(response).lines() {
            let Ok(line) = line else { return };
            if let Some(name) = line.strip_prefix("event: ") {
                event = name.to_string();
            } else if let Some(data) = line.strip_prefix("data: ") {
                let item = if event == "error" {
                    TailEvent::Error(data.to_string())
                } else {
                    TailEvent::Record(serde_json::from_str(data).unwrap())
                };
                if tx.send(item).is_err() {
                    return;
                }
            } else if line.is_empty() {
                event.clear();
            }
        }
    });
    rx
}

/// A client connected before an ingest receives exactly the matching records: none of those
/// ingested before it connected, none that do not match, each matching one once.
#[test]
fn tail_receives_exactly_the_matching_records() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(
        &tmp.path().join("data"),
        "[indexer]\ncommit_interval_ms = 200\n",
    );
    // Before the client connects: these match the query but must not be sent.
    server.ingest_zstd("logs", &gen::lines(0..30, "tailbefore"));

    let events = open_tail(
        &server,
        &[
            ("q", "level:error AND namespace:payments"),
            ("fields", "offset,message"),
        ],
    );
    for b in 0..3u64 {
        server.ingest_zstd(
            "logs",
            &gen::lines(1000 + b * 200..1200 + b * 200, "tailafter"),
        );
    }
    let expected: BTreeSet<u64> = (1000..1600u64)
        .filter(|&i| level(i) == "error" && gen::namespace(i) == "payments")
        .map(|i| i * 100)
        .collect();
    assert_eq!(expected.len(), 50);

    let deadline = Instant::now() + TAIL_TIMEOUT;
    let mut got: Vec<u64> = Vec::new();
    while got.len() < expected.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        match events.recv_timeout(left) {
            Ok(TailEvent::Record(record)) => {
                assert!(
                    record["message"].as_str().unwrap().contains("tailafter"),
                    "{record}"
                );
                assert_eq!(record.as_object().unwrap().len(), 2, "{record}");
                got.push(record["offset"].as_u64().unwrap());
            }
            Ok(TailEvent::Error(data)) => panic!("tail error event: {data}"),
            Err(_) => panic!(
                "received {} of {} records within {TAIL_TIMEOUT:?}",
                got.len(),
                expected.len()
            ),
        }
    }
    match events.recv_timeout(QUIET) {
        Err(mpsc::RecvTimeoutError::Timeout) => {}
        other => panic!("more than the matching records arrived: {other:?}"),
    }
    let unique: BTreeSet<u64> = got.iter().copied().collect();
    assert_eq!(unique.len(), got.len(), "a record was sent twice");
    assert_eq!(unique, expected);
}

fn export(server: &Server, params: &[(&str, &str)]) -> (String, Vec<u8>) {
    let response = Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap()
        .get(server.at("/api/v1/logs/export"))
        .query(params)
        .send()
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{params:?}");
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_string();
    (content_type, response.bytes().unwrap().to_vec())
}

/// Exports over HTTP in every format: exact counts, the hit order when sorted, typed
/// binaries; the CLI's search and export print the same records.
#[test]
fn exports_and_cli_over_http() {
    const N: u64 = 3000;
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(
        &tmp.path().join("data"),
        "[indexer]\ncommit_interval_ms = 200\n",
    );
    for b in 0..3 {
        server.ingest_zstd("logs", &gen::lines(b * 1000..(b + 1) * 1000, "exportmk"));
    }
    server.wait_total("*", N);
    let errors = (0..N).filter(|&i| level(i) == "error").count();

    let (content_type, body) = export(&server, &[("q", "level:error"), ("format", "ndjson")]);
    assert_eq!(content_type, "application/x-ndjson");
    let lines: Vec<Value> = std::str::from_utf8(&body)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), errors);
    assert!(lines.iter().all(|r| r["level"] == "error"));

    let (content_type, body) = export(
        &server,
        &[
            ("format", "csv"),
            ("fields", "offset,level"),
            ("sort", "asc"),
        ],
    );
    assert_eq!(content_type, "text/csv; charset=utf-8");
    let text = String::from_utf8(body).unwrap();
    let mut rows = text.lines();
    assert_eq!(rows.next(), Some("offset,level"));
    let rows: Vec<&str> = rows.collect();
    assert_eq!(rows.len() as u64, N);
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(*row, format!("{},{}", i * 100, level(i as u64)));
    }

    let (content_type, body) = export(&server, &[("format", "arrow"), ("q", "level:warn")]);
    assert_eq!(content_type, "application/vnd.apache.arrow.stream");
    // An IPC stream starts with a continuation marker and ends with an empty one.
    assert_eq!(&body[..4], &[0xff, 0xff, 0xff, 0xff]);
    assert_eq!(
        &body[body.len() - 8..],
        &[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]
    );
    let (content_type, body) = export(&server, &[("format", "parquet")]);
    assert_eq!(content_type, "application/vnd.apache.parquet");
    assert_eq!(
        (&body[..4], &body[body.len() - 4..]),
        (&b"PAR1"[..], &b"PAR1"[..])
    );

    // The CLI.
    let cli = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_trawl"))
            .args(args)
            .env_remove("TRAWL_URL")
            .env_remove("TRAWL_TOKEN")
            .output()
            .unwrap();
        (
            output.status.success(),
            String::from_utf8(output.stdout).unwrap(),
            String::from_utf8(output.stderr).unwrap(),
        )
    };
    let (ok, stdout, stderr) = cli(&[
        "search",
        "level:error",
        "--url",
        &server.url,
        "--limit",
        "5",
        "--output",
        "ndjson",
        "--fields",
        "offset,level",
    ]);
    assert!(ok, "{stderr}");
    let offsets: Vec<u64> = stdout
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["offset"]
                .as_u64()
                .unwrap()
        })
        .collect();
    let newest: Vec<u64> = (0..N)
        .rev()
        .filter(|&i| level(i) == "error")
        .take(5)
        .map(|i| i * 100)
        .collect();
    assert_eq!(offsets, newest);

    let (ok, stdout, stderr) = cli(&[
        "search",
        "level:error",
        "--url",
        &server.url,
        "--limit",
        "2",
    ]);
    assert!(ok, "{stderr}");
    assert!(stdout.starts_with("timestamp"), "{stdout}");
    assert_eq!(stdout.lines().count(), 3, "{stdout}");
    assert!(
        stderr.starts_with(&format!("2 of {errors} hits in ")),
        "{stderr}"
    );

    let out = tmp.path().join("out.csv");
    let (ok, _, stderr) = cli(&[
        "export",
        "level:error",
        "--url",
        &server.url,
        "--format",
        "csv",
        "--fields",
        "offset",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(ok, "{stderr}");
    let text = std::fs::read_to_string(&out).unwrap();
    assert_eq!(text.lines().count(), errors + 1);
    assert!(!tmp.path().join("out.csv.part").exists());

    let (ok, _, stderr) = cli(&["search", "level:(", "--url", &server.url]);
    assert!(!ok);
    assert!(
        stderr.starts_with("error: invalid_query: invalid query: syntax error"),
        "{stderr}"
    );

    drop(server);
    let (ok, _, stderr) = cli(&["search", "--url", "http://127.0.0.1:9"]);
    assert!(!ok);
    assert!(
        stderr.contains("is trawl running at http://127.0.0.1:9? start it with `trawl standalone` or pass --url"),
        "{stderr}"
    );
}
