//! Crashes between a merge's (or retention's) metastore write and the removal of the splits it
//! replaced: the real binary aborts at the fault hook's crash point, and at the next start every
//! record is searchable exactly once, the replaced split directories are gone, and retention's
//! victims do not come back. (Before the fix, a restart adopted the merge's inputs again and
//! every record of them was counted twice.)

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::support::gen::{self, ts};
use crate::support::{crash_at, wait_until, Server};

const BATCHES: u64 = 8;
const BATCH_SIZE: u64 = 100;
const TOTAL: u64 = BATCHES * BATCH_SIZE;

const SEALED: &str = "trawl_indexer_splits_sealed_total{stream=\"logs\"}";

/// The indexer's settings: one split per batch (a batch is one WAL entry, sealed at the commit
/// that holds it whole), merges from `merge_min_splits` splits, the janitor every
/// `janitor_interval_secs`, then `extra`.
fn config(merge_min_splits: u32, janitor_interval_secs: u32, extra: &str) -> String {
    format!(
        "[indexer]\ncommit_interval_ms = 100\nsplit_max_docs = 100\nsplit_max_age_secs = 3600\n\
         merge_min_splits = {merge_min_splits}\njanitor_interval_secs = {janitor_interval_secs}\n{extra}"
    )
}

/// No merges.
fn no_merges() -> String {
    config(1000, 1, "")
}

/// The first janitor round comes 3 s after the indexer opened, so that the harness has seen the
/// server ready before the crash point aborts it.
const CRASH_ROUND_SECS: u32 = 3;

fn splits_dir(data: &Path) -> PathBuf {
    data.join("indexer/streams/logs/splits")
}

/// The split directories on disk.
fn split_dirs(data: &Path) -> BTreeSet<String> {
    std::fs::read_dir(splits_dir(data))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

fn metastore(data: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(data.join("indexer/metastore.json")).unwrap()).unwrap()
}

/// The ids of a metastore list (`splits` or `retired`).
fn ids(metastore: &Value, list: &str) -> BTreeSet<String> {
    metastore[list]
        .as_array()
        .unwrap_or_else(|| panic!("no {list} in {metastore}"))
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect()
}

/// Ingests `TOTAL` records in `BATCHES` sealed splits, then kills the server; returns the split
/// directories.
fn ingest_sealed_splits(data: &Path) -> BTreeSet<String> {
    let server = Server::start(data, &no_merges());
    for b in 0..BATCHES {
        let lines = gen::lines(b * BATCH_SIZE..(b + 1) * BATCH_SIZE, &format!("crashb{b}"));
        let answer = server.ingest_zstd("logs", &lines);
        assert_eq!(answer["accepted"], BATCH_SIZE, "batch {b}: {answer}");
        wait_until(
            &format!("batch {b} is sealed"),
            Duration::from_secs(30),
            || server.metric(SEALED) == Some((b + 1) as f64),
        );
    }
    server.wait_total("*", TOTAL);
    assert_eq!(server.logs_stream()["splits"], BATCHES);
    server.kill9();
    let dirs = split_dirs(data);
    assert_eq!(dirs.len() as u64, BATCHES);
    dirs
}

/// Every record of `range` is searchable exactly once, and no other.
fn assert_exactly(server: &Server, range: std::ops::Range<u64>) {
    let expected: BTreeSet<String> = range.clone().map(ts).collect();
    assert_eq!(server.total("*", &[]), expected.len() as u64);
    let answer = server.search(
        "logs",
        &[("q", "*"), ("limit", "10000"), ("fields", "timestamp")],
    );
    let hits = answer["hits"].as_array().unwrap();
    let got: BTreeSet<String> = hits
        .iter()
        .map(|h| h["timestamp"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(hits.len(), got.len(), "duplicate hits");
    assert_eq!(got, expected);
}

#[test]
fn kill_after_a_merge_is_published_keeps_every_record_once_and_removes_its_inputs() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let inputs = ingest_sealed_splits(&data);

    let merges = config(2, CRASH_ROUND_SECS, "");
    crash_at(
        "standalone",
        &data,
        &tmp.path().join("faults"),
        "crash_after_merge_publish",
        &merges,
        |_| {},
    );
    // The crash came between the metastore write and the removal: the merge's output is
    // published, its inputs are recorded as retired and still on disk.
    let crashed = metastore(&data);
    let retired = ids(&crashed, "retired");
    let published = ids(&crashed, "splits");
    assert!(retired.len() >= 2, "a merge retired {retired:?}");
    assert!(retired.is_subset(&inputs));
    assert!(
        published.iter().any(|id| !inputs.contains(id)),
        "a merge output is published"
    );
    assert!(
        retired.is_subset(&split_dirs(&data)),
        "the inputs are on disk at the crash"
    );

    let server = Server::start(&data, &no_merges());
    assert_exactly(&server, 0..TOTAL);
    assert_eq!(server.logs_stream()["docs"], TOTAL);
    let on_disk = split_dirs(&data);
    assert!(
        retired.is_disjoint(&on_disk),
        "replaced splits still on disk: {:?}",
        retired.intersection(&on_disk).collect::<Vec<_>>()
    );
    let restarted = metastore(&data);
    assert_eq!(ids(&restarted, "retired"), BTreeSet::new());
    assert_eq!(ids(&restarted, "splits"), on_disk);
    assert_eq!(ids(&restarted, "splits"), published);
    server.kill9();

    // A second restart is the same: nothing adopted late.
    let server = Server::start(&data, &no_merges());
    assert_exactly(&server, 0..TOTAL);
}

#[test]
fn kill_after_retention_is_published_does_not_bring_the_splits_back() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let inputs = ingest_sealed_splits(&data);

    // A day of retention, which every record (of 2026-11-25) is past.
    let retention = config(
        1000,
        CRASH_ROUND_SECS,
        "\n[streams.logs]\nretention_max_age_secs = 86400\n",
    );
    crash_at(
        "standalone",
        &data,
        &tmp.path().join("faults"),
        "crash_after_retention_publish",
        &retention,
        |_| {},
    );
    let crashed = metastore(&data);
    assert_eq!(ids(&crashed, "retired"), inputs);
    assert_eq!(ids(&crashed, "splits"), BTreeSet::new());
    assert_eq!(
        split_dirs(&data),
        inputs,
        "the splits are on disk at the crash"
    );

    // Restarted without retention: nothing but the record keeps them out.
    let server = Server::start(&data, &no_merges());
    assert_exactly(&server, 0..0);
    assert_eq!(server.logs_stream()["splits"], 0);
    assert_eq!(split_dirs(&data), BTreeSet::new());
    assert_eq!(ids(&metastore(&data), "retired"), BTreeSet::new());
}
