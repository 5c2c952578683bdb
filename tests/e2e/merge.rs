//! Merges: many small commits and splits are merged in the background while searches run, and
//! no search ever sees a record twice, misses one it saw before, or sees one not yet sent.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crate::support::gen::{self, ts};
use crate::support::{wait_until, Server};

const BATCHES: u64 = 40;
const BATCH_SIZE: u64 = 100;
const TOTAL: u64 = BATCHES * BATCH_SIZE;

const TINY_SPLITS: &str = "[indexer]
commit_interval_ms = 100
split_max_docs = 200
split_max_age_secs = 1
merge_min_splits = 2
janitor_interval_secs = 1
";

const MERGES: &str = "trawl_indexer_merges_total{stream=\"logs\"}";
const SEALED: &str = "trawl_indexer_splits_sealed_total{stream=\"logs\"}";

fn marker(b: u64) -> String {
    format!("mergeb{b}")
}

/// Sets the flag when dropped, so that the searcher thread stops even if the main thread of
/// the test panics (a scope waits for its threads).
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[test]
fn merges_under_concurrent_searches_keep_totals_exact_and_unique() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("data"), TINY_SPLITS);
    // Records sent so far, counted before each request goes out: a record may be searchable
    // before its acknowledgement reaches this process, never before it was sent.
    let sent = AtomicU64::new(0);
    let stop = AtomicBool::new(false);

    let searches = std::thread::scope(|scope| {
        let searcher = scope.spawn(|| {
            let mut last = 0;
            let mut searches = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let total = server.total("*", &[]);
                let sent_now = sent.load(Ordering::SeqCst);
                assert!(
                    total <= sent_now,
                    "a search counted {total} records, only {sent_now} were sent"
                );
                assert!(
                    total >= last,
                    "the total went down from {last} to {total} (a merge hid records)"
                );
                last = total;
                searches += 1;
            }
            searches
        });
        let _stop = StopOnDrop(&stop);

        for b in 0..BATCHES {
            let lines = gen::lines(b * BATCH_SIZE..(b + 1) * BATCH_SIZE, &marker(b));
            sent.fetch_add(BATCH_SIZE, Ordering::SeqCst);
            let answer = server.ingest_zstd("logs", &lines);
            assert_eq!(answer["accepted"], BATCH_SIZE, "batch {b}: {answer}");
            // One commit per batch at least: many small commits, and a split every two.
            server.wait_total(&marker(b), BATCH_SIZE);
        }
        server.wait_total("*", TOTAL);

        // Merges happened: the counter moved, and fewer splits are published than were sealed.
        let mut seen = (0.0, 0.0, 0);
        wait_until(
            "merges reduce the logs stream's splits",
            Duration::from_secs(30),
            || {
                let merges = server.metric(MERGES).unwrap_or(0.0);
                let sealed = server.metric(SEALED).unwrap_or(0.0);
                let splits = server.logs_stream()["splits"].as_u64().unwrap();
                seen = (merges, sealed, splits);
                merges > 0.0 && (splits as f64) < sealed
            },
        );
        let (merges, sealed, splits) = seen;
        assert!(
            sealed >= 2.0,
            "only {sealed} splits sealed: the test's commits were not small"
        );
        eprintln!("merge test: {sealed} sealed, {merges} merges, {splits} splits left");

        // Searches keep running through one more janitor round of merges.
        let merges_before = merges;
        wait_until(
            "another janitor round or the last merge",
            Duration::from_secs(10),
            || {
                server.metric(MERGES).unwrap_or(0.0) > merges_before
                    || server.logs_stream()["splits"].as_u64() == Some(1)
            },
        );
        drop(_stop);
        match searcher.join() {
            Ok(searches) => searches,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    });
    assert!(searches >= 10, "only {searches} concurrent searches ran");

    assert_eq!(server.total("*", &[]), TOTAL);
    assert_eq!(server.logs_stream()["docs"], TOTAL);
    for b in 0..BATCHES {
        assert_eq!(server.total(&marker(b), &[]), BATCH_SIZE, "batch {b}");
    }
    // Every record exactly once: the timestamps of all hits are exactly the generated ones.
    let answer = server.search(
        "logs",
        &[("q", "*"), ("limit", "10000"), ("fields", "timestamp")],
    );
    let hits = answer["hits"].as_array().unwrap();
    assert_eq!(hits.len() as u64, TOTAL);
    let got: BTreeSet<&str> = hits
        .iter()
        .map(|h| h["timestamp"].as_str().unwrap())
        .collect();
    let expected: Vec<String> = (0..TOTAL).map(ts).collect();
    let expected: BTreeSet<&str> = expected.iter().map(String::as_str).collect();
    assert_eq!(got.len() as u64, TOTAL, "duplicate hits");
    assert_eq!(got, expected);
}
