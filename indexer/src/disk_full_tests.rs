//! The indexer with a full disk: WAL writes, hot-index commits and split seals that fail are
//! refused as storage errors (507 at the HTTP layer), lose nothing acknowledged, index nothing
//! twice, and work again by themselves once there is room.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::settings::enospc_file_hook;
use crate::tests::logs_stats;
use crate::{Indexer, IndexerSettings, IngestError, IngestOutcome, Metrics, ENOSPC_FILE};

/// A storage fault the test turns on and off: off, failing, or letting `n` more writes through
/// and then failing.
#[derive(Clone, Default)]
struct Switch(Arc<Mutex<Option<usize>>>);

impl Switch {
    fn off(&self) {
        *self.0.lock().unwrap() = None;
    }

    fn fail_after(&self, passes: usize) {
        *self.0.lock().unwrap() = Some(passes);
    }

    fn hook(&self) -> crate::StorageFault {
        let state = self.0.clone();
        Arc::new(move || {
            let mut state = state.lock().unwrap();
            match *state {
                None => None,
                Some(0) => Some(std::io::Error::new(
                    std::io::ErrorKind::StorageFull,
                    "no space left on device",
                )),
                Some(n) => {
                    *state = Some(n - 1);
                    None
                }
            }
        })
    }
}

/// Settings whose commits happen only when a test flushes (the interval is an hour), so that
/// every commit and its outcome is the test's doing.
pub(crate) fn settings(
    dir: &std::path::Path,
    fault: Option<crate::StorageFault>,
) -> IndexerSettings {
    let mut config = trawl_config::Config {
        data_dir: dir.to_path_buf(),
        ..Default::default()
    };
    config.indexer.commit_interval_ms = 3_600_000;
    config.indexer.janitor_interval_secs = 3600;
    let mut s = IndexerSettings::from_config(&config);
    s.writer_memory_bytes = 15_000_000;
    s.storage_fault = fault;
    s
}

pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A delivery batch of source `a`: one record per offset in `offsets`, each 10 bytes long.
pub(crate) fn delivery(offsets: std::ops::Range<u64>) -> Vec<u8> {
    let starts: Vec<u64> = offsets.clone().map(|o| o * 10).collect();
    let env = serde_json::json!({"sources": [{
        "id": "a", "start": offsets.start * 10, "end": offsets.end * 10, "offsets": starts,
    }]});
    let mut body = env.to_string().into_bytes();
    for o in offsets {
        body.push(b'\n');
        body.extend_from_slice(format!(r#"{{"message":"record {o}","file":"f"}}"#).as_bytes());
    }
    body
}

fn ingest(
    rt: &tokio::runtime::Runtime,
    indexer: &Indexer,
    body: Vec<u8>,
    delivery: bool,
) -> Result<IngestOutcome, IngestError> {
    rt.block_on(indexer.ingest("logs", body, delivery))
}

/// Searchable documents of `logs`, without committing first.
fn searchable(indexer: &Indexer) -> u64 {
    indexer
        .snapshot("logs", None, None)
        .unwrap()
        .targets
        .iter()
        .map(|t| t.searcher.num_docs())
        .sum()
}

/// The record numbers searchable in `logs`, sorted, duplicates kept.
pub(crate) fn records(indexer: &Indexer) -> Vec<u64> {
    let snapshot = indexer.snapshot("logs", None, None).unwrap();
    let field = snapshot.schema.get_field("message").unwrap();
    let mut out = Vec::new();
    for target in &snapshot.targets {
        let searcher = &target.searcher;
        for segment in searcher.segment_readers() {
            let store = segment.get_store_reader(1).unwrap();
            for doc_id in segment.doc_ids_alive() {
                let doc: tantivy::TantivyDocument = store.get(doc_id).unwrap();
                let message = tantivy::schema::Value::as_str(&doc.get_first(field).unwrap())
                    .unwrap()
                    .to_string();
                out.push(message.strip_prefix("record ").unwrap().parse().unwrap());
            }
        }
    }
    out.sort_unstable();
    out
}

fn storage_error(result: Result<IngestOutcome, IngestError>) -> String {
    match result {
        Err(IngestError::Storage(message)) => message,
        other => panic!("expected a storage error, got {other:?}"),
    }
}

#[test]
fn wal_enospc_mid_batch_refuses_keeps_what_was_acknowledged_and_replays_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let faults = tempfile::tempdir().unwrap();
    let flag = faults.path().join(ENOSPC_FILE);
    let rt = runtime();
    let hook = enospc_file_hook(faults.path().to_path_buf());
    let indexer = Indexer::open(
        settings(dir.path(), Some(hook.clone())),
        Arc::new(Metrics::default()),
    )
    .unwrap();
    let first = ingest(&rt, &indexer, delivery(0..5), true).unwrap();
    assert_eq!(first.accepted, 5);
    indexer.flush();

    std::fs::write(&flag, b"").unwrap();
    // The WAL write fails half-way through the entry: refused, nothing of it kept.
    let message = storage_error(ingest(&rt, &indexer, delivery(5..9), true));
    assert!(message.contains("no space left on device"), "{message}");
    storage_error(ingest(
        &rt,
        &indexer,
        br#"{"message":"plain"}"#.to_vec(),
        false,
    ));
    indexer.flush();
    assert_eq!(records(&indexer), (0..5).collect::<Vec<_>>());
    assert!(indexer.is_ready());

    // Room again: the same batch is taken (its mark did not move), then the next one.
    std::fs::remove_file(&flag).unwrap();
    let resent = ingest(&rt, &indexer, delivery(5..9), true).unwrap();
    assert_eq!((resent.accepted, resent.deduplicated), (4, 0));
    let next = ingest(&rt, &indexer, delivery(9..12), true).unwrap();
    assert_eq!(next.accepted, 3);
    indexer.flush();
    assert_eq!(records(&indexer), (0..12).collect::<Vec<_>>());
    indexer.shutdown();
    drop(indexer);

    let indexer = Indexer::open(
        settings(dir.path(), Some(hook)),
        Arc::new(Metrics::default()),
    )
    .unwrap();
    assert_eq!(records(&indexer), (0..12).collect::<Vec<_>>());
    let again = ingest(&rt, &indexer, delivery(0..12), true).unwrap();
    assert_eq!((again.accepted, again.deduplicated), (0, 12));
    indexer.shutdown();
}

#[test]
fn a_failed_hot_index_commit_is_redone_from_what_was_kept_and_ingest_waits_meanwhile() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let switch = Switch::default();
    let indexer = Indexer::open(
        settings(dir.path(), Some(switch.hook())),
        Arc::new(Metrics::default()),
    )
    .unwrap();
    // Acknowledged (in the WAL), not yet committed.
    assert_eq!(
        ingest(&rt, &indexer, delivery(0..6), true)
            .unwrap()
            .accepted,
        6
    );
    switch.fail_after(0);
    indexer.flush();
    assert_eq!(searchable(&indexer), 0, "the commit failed");
    // While the hot index cannot be committed, ingest is refused even where the WAL could
    // take it.
    switch.off();
    storage_error(ingest(&rt, &indexer, delivery(6..8), true));

    // The next attempt (a flush here, the retry timer otherwise) redoes the commit.
    indexer.flush();
    assert_eq!(records(&indexer), (0..6).collect::<Vec<_>>());
    assert_eq!(
        ingest(&rt, &indexer, delivery(6..8), true)
            .unwrap()
            .accepted,
        2
    );
    indexer.flush();
    assert_eq!(records(&indexer), (0..8).collect::<Vec<_>>());
    indexer.shutdown();
    drop(indexer);

    let indexer = Indexer::open(settings(dir.path(), None), Arc::new(Metrics::default())).unwrap();
    assert_eq!(records(&indexer), (0..8).collect::<Vec<_>>());
    indexer.shutdown();
}

#[test]
fn the_retry_timer_commits_by_itself_once_the_disk_has_room() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let switch = Switch::default();
    let indexer = Indexer::open(
        settings(dir.path(), Some(switch.hook())),
        Arc::new(Metrics::default()),
    )
    .unwrap();
    ingest(&rt, &indexer, delivery(0..3), true).unwrap();
    switch.fail_after(0);
    indexer.flush();
    switch.off();
    // No flush: the indexing thread's own retry (100 ms after the failure) commits.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while searchable(&indexer) < 3 {
        assert!(std::time::Instant::now() < deadline, "no retry within 20 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(records(&indexer), vec![0, 1, 2]);
    indexer.shutdown();
}

#[test]
fn a_seal_failing_at_the_metastore_puts_the_hot_index_back_and_a_later_seal_works() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let switch = Switch::default();
    let indexer = Indexer::open(
        settings(dir.path(), Some(switch.hook())),
        Arc::new(Metrics::default()),
    )
    .unwrap();
    ingest(&rt, &indexer, delivery(0..4), true).unwrap();
    indexer.flush();
    // Writes of the seal: its start passes, the metastore record fails (after the hot index
    // was moved into the splits).
    switch.fail_after(1);
    indexer.seal_all();
    assert_eq!(logs_stats(&indexer).splits, 0);
    assert_eq!(records(&indexer), vec![0, 1, 2, 3]);
    switch.off();
    storage_error(ingest(&rt, &indexer, delivery(4..6), true));

    indexer.seal_all();
    assert_eq!(logs_stats(&indexer).splits, 1);
    assert_eq!(records(&indexer), vec![0, 1, 2, 3]);
    ingest(&rt, &indexer, delivery(4..6), true).unwrap();
    indexer.flush();
    assert_eq!(records(&indexer), (0..6).collect::<Vec<_>>());
    indexer.shutdown();
    drop(indexer);

    let indexer = Indexer::open(settings(dir.path(), None), Arc::new(Metrics::default())).unwrap();
    assert_eq!(records(&indexer), (0..6).collect::<Vec<_>>());
    assert_eq!(logs_stats(&indexer).splits, 1);
    indexer.shutdown();
}
