//! Distributed search: a searcher root over two indexers.

use serde_json::{json, Value};

use crate::support::{gen, Server};

#[test]
fn searcher_merges_two_indexers_exactly_and_reports_partial_answers() {
    let dir = tempfile::tempdir().unwrap();
    let a = Server::start_role("indexer", &dir.path().join("a"), "");
    let b = Server::start_role("indexer", &dir.path().join("b"), "");
    // Interleaved records: even numbers on one indexer, odd on the other.
    let (even, odd): (Vec<u64>, Vec<u64>) = (0..400).partition(|i| i % 2 == 0);
    let lines =
        |ids: &[u64]| -> Vec<String> { ids.iter().map(|&i| gen::line(i, "dist")).collect() };
    assert_eq!(a.ingest_zstd("logs", &lines(&even))["accepted"], 200);
    assert_eq!(b.ingest_zstd("logs", &lines(&odd))["accepted"], 200);
    a.wait_total("*", 200);
    b.wait_total("*", 200);

    let config = format!("[query]\nindexers = [\"{}\", \"{}\"]\n", a.url, b.url);
    let root = Server::start_role("searcher", &dir.path().join("root"), &config);

    // Totals add up; the top hits interleave both indexers in timestamp order.
    let answer = root.search("logs", &[("q", "*"), ("limit", "10"), ("sort", "asc")]);
    assert_eq!(answer["total"], 400);
    let stamps: Vec<String> = answer["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["timestamp"].as_str().unwrap().to_string())
        .collect();
    let expected: Vec<String> = (0..10).map(gen::ts).collect();
    assert_eq!(stamps, expected);
    let timeouts = (0..400).filter(|&i| gen::has_timeout(i)).count();
    assert_eq!(root.total("timeout", &[]), timeouts as u64);

    // Paging with the merged cursor visits every record exactly once.
    let mut seen = std::collections::BTreeSet::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut params = vec![("q", "*"), ("limit", "64")];
        if let Some(c) = &cursor {
            params.push(("search_after", c.as_str()));
        }
        let page = root.search("logs", &params);
        let hits = page["hits"].as_array().unwrap();
        if hits.is_empty() {
            break;
        }
        for h in hits {
            assert!(seen.insert(h["timestamp"].as_str().unwrap().to_string()));
        }
        cursor = page["cursor"].as_str().map(str::to_string);
    }
    assert_eq!(seen.len(), 400);

    // Aggregations merge exactly: a terms count per namespace.
    let client = reqwest::blocking::Client::new();
    let body = json!({"q": "*", "limit": 0, "aggs": {"ns": {"terms": {"field": "namespace"}}}});
    let merged: Value = client
        .post(root.at("/api/v1/logs/search"))
        .json(&body)
        .send()
        .unwrap()
        .json()
        .unwrap();
    let mut buckets: Vec<(String, u64)> = merged["aggregations"]["ns"]["buckets"]
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
    buckets.sort();
    let mut expected: std::collections::BTreeMap<String, u64> = Default::default();
    for i in 0..400 {
        *expected.entry(gen::namespace(i).to_string()).or_default() += 1;
    }
    assert_eq!(buckets, expected.into_iter().collect::<Vec<_>>());

    // A bad query is refused by the leaves and passed on as such.
    let (status, error) = root.search_raw("logs", &[("q", "a:(")]);
    assert_eq!(status.as_u16(), 400);
    assert_eq!(error["error"]["code"], "invalid_query");

    // One indexer down: the answer covers the other and says it is partial.
    b.kill9();
    let partial = root.search("logs", &[("q", "*"), ("limit", "0")]);
    assert_eq!(partial["total"], 200);
    assert_eq!(partial["partial"], true);
    assert_eq!(partial["failed_indexers"].as_array().unwrap().len(), 1);
    let streams = root.get("/api/v1/streams");
    assert_eq!(streams.status().as_u16(), 200);
}

/// Through a searcher, a tail receives the new matching records of every indexer, each once,
/// and an export is one file holding every indexer's records, whatever the format.
#[test]
fn searcher_tails_and_exports_through_every_indexer() {
    use crate::export_tail::{open_tail, TailEvent};
    use std::time::{Duration, Instant};

    let dir = tempfile::tempdir().unwrap();
    let a = Server::start_role("indexer", &dir.path().join("a"), "");
    let b = Server::start_role("indexer", &dir.path().join("b"), "");
    let config = format!("[query]\nindexers = [\"{}\", \"{}\"]\n", a.url, b.url);
    let root = Server::start_role("searcher", &dir.path().join("root"), &config);

    // Tail: subscribed through the root before anything is ingested.
    let events = open_tail(&root, &[("q", "fanin")]);
    let (even, odd): (Vec<u64>, Vec<u64>) = (0..60).partition(|i| i % 2 == 0);
    let lines = |ids: &[u64], word: &str| -> Vec<String> {
        ids.iter().map(|&i| gen::line(i, word)).collect()
    };
    assert_eq!(
        a.ingest_zstd("logs", &lines(&even, "fanin"))["accepted"],
        30
    );
    assert_eq!(b.ingest_zstd("logs", &lines(&odd, "fanin"))["accepted"], 30);
    assert_eq!(
        a.ingest_zstd("logs", &lines(&[100, 102], "other"))["accepted"],
        2
    );
    let mut seen = std::collections::BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen.len() < 60 {
        let left = deadline.saturating_duration_since(Instant::now());
        match events.recv_timeout(left) {
            Ok(TailEvent::Record(record)) => {
                let message = record["message"].as_str().unwrap().to_string();
                assert!(message.contains("fanin"), "{message}");
                assert!(seen.insert(record["timestamp"].as_str().unwrap().to_string()));
            }
            Ok(TailEvent::Error(data)) => panic!("tail error event: {data}"),
            Err(e) => panic!("tail got {} of 60 records: {e}", seen.len()),
        }
    }
    let expected: std::collections::BTreeSet<String> = (0..60).map(gen::ts).collect();
    assert_eq!(seen, expected);

    // Export: both indexers' parts, as one NDJSON and one CSV file; `limit` spans the parts.
    a.wait_total("*", 32);
    b.wait_total("*", 30);
    let client = reqwest::blocking::Client::new();
    let export = |params: &[(&str, &str)]| -> (reqwest::StatusCode, String) {
        let response = client
            .get(root.at("/api/v1/logs/export"))
            .query(params)
            .send()
            .unwrap();
        let status = response.status();
        (status, response.text().unwrap())
    };
    let (status, ndjson) = export(&[("q", "fanin"), ("format", "ndjson")]);
    assert_eq!(status, 200);
    let mut stamps: Vec<String> = ndjson
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["timestamp"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    stamps.sort();
    assert_eq!(stamps, expected.iter().cloned().collect::<Vec<_>>());
    let (status, csv) = export(&[
        ("q", "*"),
        ("format", "csv"),
        ("fields", "timestamp,namespace"),
    ]);
    assert_eq!(status, 200);
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows[0], "timestamp,namespace");
    assert_eq!(
        rows.len(),
        1 + 62,
        "one header, every record of both indexers"
    );
    let (_, limited) = export(&[("q", "*"), ("format", "ndjson"), ("limit", "45")]);
    assert_eq!(limited.lines().count(), 45);
    let (status, parquet) = export(&[("q", "*"), ("format", "parquet")]);
    assert_eq!(status, 200);
    assert!(parquet.starts_with("PAR1") && parquet.ends_with("PAR1"));

    // What the root cannot merge is refused with advice; a bad query is the indexers' 400.
    let (status, body) = export(&[("q", "*"), ("sort", "asc")]);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("sorted exports"), "{body}");
    let (status, _) = export(&[("q", "level:(")]);
    assert_eq!(status, 400);
}
