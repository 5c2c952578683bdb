//! Crashes between a merge's or retention's metastore write and the removal of the splits it
//! replaced, while a search pins them: the disk is copied at the crash point (what a kill -9
//! there leaves), and an indexer opened on the copy holds every record exactly once and none of
//! the replaced splits.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::disk_full_tests::{records, runtime, settings};
use crate::metastore::Metastore;
use crate::settings::{CRASH_AFTER_MERGE_PUBLISH, CRASH_AFTER_RETENTION_PUBLISH};
use crate::tests::logs_stats;
use crate::{Indexer, IndexerSettings, Metrics};

/// Copies a directory tree, as a crash at this moment would leave it. The indexer's own threads
/// (commits, the WAL) go on meanwhile: an entry removed between the listing and the copy is
/// left out, as it would be by a crash just after its removal.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    let gone = |err: &std::io::Error| err.kind() == std::io::ErrorKind::NotFound;
    let entries = match std::fs::read_dir(from) {
        Ok(entries) => entries,
        Err(err) if gone(&err) => return,
        Err(err) => panic!("listing {}: {err}", from.display()),
    };
    for entry in entries {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        let is_dir = match entry.file_type() {
            Ok(kind) => kind.is_dir(),
            Err(err) if gone(&err) => continue,
            Err(err) => panic!("reading {}: {err}", entry.path().display()),
        };
        if is_dir {
            copy_tree(&entry.path(), &target);
        } else if let Err(err) = std::fs::copy(entry.path(), &target) {
            assert!(gone(&err), "copying {}: {err}", entry.path().display());
        }
    }
}

/// Settings whose crash hook copies `data` to `image` at crash point `point`, once.
fn crashing_at(
    data: &Path,
    image: &Path,
    point: &'static str,
) -> (IndexerSettings, Arc<Mutex<u32>>) {
    let mut s = settings(data, None);
    let crashes = Arc::new(Mutex::new(0));
    let (data, image, count) = (data.to_path_buf(), image.to_path_buf(), crashes.clone());
    s.crash_hook = Some(Arc::new(move |at: &str| {
        let mut count = count.lock().unwrap();
        if at == point && *count == 0 {
            copy_tree(&data, &image);
            *count += 1;
        }
    }));
    (s, crashes)
}

/// Ingests records `range` of `logs` at `timestamp` (RFC 3339) and seals them into a split.
fn sealed_split(indexer: &Indexer, range: std::ops::Range<u64>, timestamp: &str) {
    let body: String = range
        .clone()
        .map(|n| format!("{{\"timestamp\":\"{timestamp}\",\"message\":\"record {n}\"}}\n"))
        .collect();
    let outcome = runtime()
        .block_on(indexer.ingest("logs", body.into_bytes(), false))
        .unwrap();
    assert_eq!(outcome.accepted, range.count());
    indexer.seal_all();
}

fn split_dir(data: &Path, id: &str) -> PathBuf {
    data.join("indexer/streams/logs/splits").join(id)
}

fn retired_ids(data: &Path) -> Vec<String> {
    let state = Metastore::new(&data.join("indexer")).load().unwrap();
    state.retired.into_iter().map(|r| r.id).collect()
}

fn split_ids(indexer: &Indexer) -> Vec<String> {
    let mut ids: Vec<String> = indexer
        .snapshot("logs", None, None)
        .unwrap()
        .targets
        .iter()
        .filter(|t| t.min_timestamp.is_some())
        .map(|t| t.id.clone())
        .collect();
    ids.sort();
    ids
}

/// Checks the disk a crash left in `image` (the `retired` splits recorded and still there), then
/// opens an indexer on it: it holds exactly the records `expected` in one split, and the retired
/// splits are gone with their record.
fn restart_after_crash(image: &Path, retired: &[String], expected: std::ops::Range<u64>) {
    let mut recorded = retired_ids(image);
    recorded.sort();
    assert_eq!(recorded, retired);
    for id in retired {
        assert!(
            split_dir(image, id).exists(),
            "{id} is on disk at the crash"
        );
    }
    let restarted = Indexer::open(settings(image, None), Arc::new(Metrics::default())).unwrap();
    assert_eq!(records(&restarted), expected.collect::<Vec<_>>());
    assert_eq!(logs_stats(&restarted).splits, 1);
    for id in retired {
        assert!(!split_dir(image, id).exists(), "{id} is removed at start");
    }
    assert!(retired_ids(image).is_empty());
    restarted.shutdown();
}

#[test]
fn a_crash_right_after_a_merge_is_published_neither_adopts_nor_keeps_its_inputs() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, image) = (tmp.path().join("data"), tmp.path().join("image"));
    let (mut s, crashes) = crashing_at(&data, &image, CRASH_AFTER_MERGE_PUBLISH);
    s.merge_min_splits = 3;
    let indexer = Indexer::open(s, Arc::new(Metrics::default())).unwrap();
    for batch in 0..4 {
        sealed_split(
            &indexer,
            batch * 25..(batch + 1) * 25,
            "2026-11-25T10:00:00Z",
        );
    }
    let inputs = split_ids(&indexer);
    assert_eq!(inputs.len(), 4);
    // A search holds the inputs through the merge.
    let pin = indexer.snapshot("logs", None, None).unwrap();
    indexer.run_upkeep_once().unwrap();
    assert_eq!(
        *crashes.lock().unwrap(),
        1,
        "the merge reached its crash point"
    );
    assert_eq!(logs_stats(&indexer).splits, 1);
    assert_eq!(records(&indexer), (0..100).collect::<Vec<_>>());

    // What the crash left: the merge published, its inputs retired with their files still there.
    restart_after_crash(&image, &inputs, 0..100);
    let again = Indexer::open(settings(&image, None), Arc::new(Metrics::default())).unwrap();
    assert_eq!(records(&again), (0..100).collect::<Vec<_>>());
    again.shutdown();

    // The process that did not crash: the pinned inputs go when the search lets go, and their
    // record at the next sweep.
    for id in &inputs {
        assert!(split_dir(&data, id).exists(), "{id} is pinned");
    }
    assert_eq!(retired_ids(&data).len(), 4);
    drop(pin);
    for id in &inputs {
        assert!(
            !split_dir(&data, id).exists(),
            "{id} is removed with its last pin"
        );
    }
    indexer.run_upkeep_once().unwrap();
    assert!(retired_ids(&data).is_empty());
    indexer.shutdown();
}

#[test]
fn a_crash_right_after_retention_is_published_does_not_bring_the_splits_back() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, image) = (tmp.path().join("data"), tmp.path().join("image"));
    let (mut s, crashes) = crashing_at(&data, &image, CRASH_AFTER_RETENTION_PUBLISH);
    s.merge_min_splits = 1000;
    s.streams.insert(
        "logs".into(),
        crate::settings::StreamOverrides {
            retention_max_age: Some(Duration::from_secs(86_400)),
            ..Default::default()
        },
    );
    let indexer = Indexer::open(s.clone(), Arc::new(Metrics::default())).unwrap();
    sealed_split(&indexer, 0..10, "2020-01-01T00:00:00Z");
    sealed_split(&indexer, 10..20, "2020-01-02T00:00:00Z");
    let old = split_ids(&indexer);
    let now = trawl_model::Timestamp::now().to_rfc3339();
    sealed_split(&indexer, 20..30, &now);
    let pin = indexer.snapshot("logs", None, None).unwrap();
    indexer.run_upkeep_once().unwrap();
    assert_eq!(
        *crashes.lock().unwrap(),
        1,
        "retention reached its crash point"
    );
    assert_eq!(records(&indexer), (20..30).collect::<Vec<_>>());

    // Restarted without retention: nothing but the record keeps the old splits out.
    restart_after_crash(&image, &old, 20..30);

    drop(pin);
    indexer.run_upkeep_once().unwrap();
    assert!(retired_ids(&data).is_empty());
    for id in &old {
        assert!(!split_dir(&data, id).exists());
    }
    indexer.shutdown();
}
