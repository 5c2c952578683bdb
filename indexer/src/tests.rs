//! Tests of the indexer as a whole: delivery marks across restarts, sealing, merges, audit
//! deduplication.

use std::sync::Arc;
use std::time::Duration;

use trawl_model::codec::ndjson_lines;

use crate::{Indexer, IndexerSettings, IngestError, IngestOutcome, Metrics, StreamStats};

fn settings(dir: &std::path::Path) -> IndexerSettings {
    let mut config = trawl_config::Config {
        data_dir: dir.to_path_buf(),
        ..Default::default()
    };
    config.indexer.commit_interval_ms = 50;
    config.indexer.janitor_interval_secs = 3600;
    let mut s = IndexerSettings::from_config(&config);
    s.writer_memory_bytes = 15_000_000;
    s
}

/// The `logs` stream's statistics.
pub(crate) fn logs_stats(indexer: &Indexer) -> StreamStats {
    indexer
        .stream_stats()
        .into_iter()
        .find(|s| s.name == "logs")
        .expect("the logs stream is built in")
}

pub(crate) fn open(dir: &std::path::Path) -> Indexer {
    Indexer::open(settings(dir), Arc::new(Metrics::default())).unwrap()
}

pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn delivery(source: &str, offsets: &[u64], end: u64, marker: &str) -> Vec<u8> {
    let env = serde_json::json!({"sources": [{"id": source, "start": offsets[0], "end": end, "offsets": offsets}]});
    let mut body = env.to_string().into_bytes();
    for o in offsets {
        body.push(b'\n');
        body.extend_from_slice(
            format!(r#"{{"message":"{marker} at {o}","offset":{o},"file":"f"}}"#).as_bytes(),
        );
    }
    body
}

pub(crate) fn docs(indexer: &Indexer, stream: &str) -> u64 {
    indexer.flush();
    indexer
        .snapshot(stream, None, None)
        .unwrap()
        .targets
        .iter()
        .map(|t| t.searcher.num_docs())
        .sum()
}

fn ingest(
    rt: &tokio::runtime::Runtime,
    indexer: &Indexer,
    stream: &str,
    body: Vec<u8>,
    delivery: bool,
) -> Result<IngestOutcome, IngestError> {
    rt.block_on(indexer.ingest(stream, body, delivery))
}

#[test]
fn delivery_marks_drop_resends_refuse_gaps_and_survive_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let indexer = open(dir.path());
    let first = ingest(
        &rt,
        &indexer,
        "logs",
        delivery("a", &[0, 10, 20], 30, "x"),
        true,
    )
    .unwrap();
    assert_eq!((first.accepted, first.deduplicated), (3, 0));
    let resend = ingest(
        &rt,
        &indexer,
        "logs",
        delivery("a", &[0, 10, 20], 30, "x"),
        true,
    )
    .unwrap();
    assert_eq!((resend.accepted, resend.deduplicated), (0, 3));
    let overlap = ingest(
        &rt,
        &indexer,
        "logs",
        delivery("a", &[10, 20, 30, 40], 50, "x"),
        true,
    )
    .unwrap();
    assert_eq!((overlap.accepted, overlap.deduplicated), (2, 2));
    match ingest(&rt, &indexer, "logs", delivery("a", &[60], 70, "x"), true) {
        Err(IngestError::Gap(marks)) => assert_eq!(marks.get("a"), Some(&50)),
        other => panic!("expected a gap, got {other:?}"),
    }
    assert_eq!(docs(&indexer, "logs"), 5);
    indexer.shutdown();
    drop(indexer);

    // Marks come back from the WAL after a restart.
    let indexer = open(dir.path());
    assert_eq!(docs(&indexer, "logs"), 5);
    let again = ingest(
        &rt,
        &indexer,
        "logs",
        delivery("a", &[0, 10, 20, 30, 40], 50, "x"),
        true,
    )
    .unwrap();
    assert_eq!((again.accepted, again.deduplicated), (0, 5));
    // Sealing truncates the WAL and snapshots the marks into the metastore.
    indexer.seal_all();
    let wait = std::time::Instant::now();
    while indexer.metrics().wal_bytes.get() > 0 && wait.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(10));
    }
    indexer.shutdown();
    drop(indexer);

    let indexer = open(dir.path());
    assert_eq!(docs(&indexer, "logs"), 5);
    let again = ingest(
        &rt,
        &indexer,
        "logs",
        delivery("a", &[40, 50], 60, "y"),
        true,
    )
    .unwrap();
    assert_eq!((again.accepted, again.deduplicated), (1, 1));
    assert_eq!(docs(&indexer, "logs"), 6);
    indexer.shutdown();
}

#[test]
fn splits_merge_without_losing_or_duplicating() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let mut s = settings(dir.path());
    s.merge_min_splits = 3;
    let indexer = Indexer::open(s, Arc::new(Metrics::default())).unwrap();
    for batch in 0..6 {
        let body: String = (0..50)
            .map(|i| format!("{{\"message\":\"batch{batch} line {i}\"}}\n"))
            .collect();
        let outcome = ingest(&rt, &indexer, "logs", body.into_bytes(), false).unwrap();
        assert_eq!(outcome.accepted, 50);
        indexer.seal_all();
    }
    assert_eq!(logs_stats(&indexer).splits, 6);
    indexer.run_upkeep_once().unwrap();
    let stats = logs_stats(&indexer);
    assert_eq!(stats.splits, 1);
    assert_eq!(stats.docs, 300);
    assert_eq!(docs(&indexer, "logs"), 300);
    indexer.shutdown();
    drop(indexer);
    let indexer = open(dir.path());
    assert_eq!(docs(&indexer, "logs"), 300);
    indexer.shutdown();
}

#[test]
fn splits_of_other_doc_store_settings_merge_apart() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let ingest_sealed = |indexer: &Indexer, tag: &str, batches: usize| {
        for batch in 0..batches {
            let body: String = (0..20)
                .map(|i| format!("{{\"message\":\"{tag} batch{batch} line {i}\"}}\n"))
                .collect();
            let outcome = ingest(&rt, indexer, "logs", body.into_bytes(), false).unwrap();
            assert_eq!(outcome.accepted, 20);
            indexer.seal_all();
        }
    };
    let mut s = settings(dir.path());
    s.merge_min_splits = 3;
    s.writer.docstore_block_bytes = 64 * 1024;
    let indexer = Indexer::open(s.clone(), Arc::new(Metrics::default())).unwrap();
    ingest_sealed(&indexer, "old", 3);
    indexer.shutdown();
    drop(indexer);

    // Reopened with a new doc-store setting. The hot index it finds was created the old way,
    // so the first of four more splits is old too; the three after it are new.
    s.writer.docstore_block_bytes = 256 * 1024;
    let indexer = Indexer::open(s, Arc::new(Metrics::default())).unwrap();
    ingest_sealed(&indexer, "new", 4);
    assert_eq!(logs_stats(&indexer).splits, 7);
    // Each setting's splits merge into one (tantivy refuses to merge across settings).
    indexer.run_upkeep_once().unwrap();
    assert_eq!(logs_stats(&indexer).splits, 2);
    assert_eq!(logs_stats(&indexer).docs, 140);
    assert_eq!(docs(&indexer, "logs"), 140);
    indexer.shutdown();
}

#[test]
fn audit_event_ingested_twice_is_one_document() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let indexer = open(dir.path());
    let event = r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"6f1b","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/shop/secrets/db","verb":"get","user":{"username":"alice"},"sourceIPs":["10.0.0.1"],"objectRef":{"resource":"secrets","namespace":"shop","name":"db","apiVersion":"v1"},"responseStatus":{"code":200},"requestReceivedTimestamp":"2026-11-25T10:15:00.000000Z","stageTimestamp":"2026-11-25T10:15:00.004000Z"}"#;
    let body = format!("{event}\n{event}\n");
    let outcome = ingest(&rt, &indexer, "audit", body.clone().into_bytes(), false).unwrap();
    assert_eq!(outcome.accepted, 2);
    ingest(&rt, &indexer, "audit", body.into_bytes(), false).unwrap();
    assert_eq!(docs(&indexer, "audit"), 1);
    indexer.shutdown();
}

#[test]
fn ndjson_line_numbers_in_errors() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let indexer = open(dir.path());
    let outcome = ingest(
        &rt,
        &indexer,
        "logs",
        b"{\"message\":\"ok\"}\n\n{oops\n{\"message\":\"ok\"}\n".to_vec(),
        false,
    )
    .unwrap();
    assert_eq!((outcome.accepted, outcome.rejected), (2, 1));
    assert_eq!(outcome.errors[0].line, 3);
    assert_eq!(ndjson_lines(b"a\n").count(), 1);
    indexer.shutdown();
}

#[test]
fn retention_deletes_splits_by_age_and_by_size() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let mut s = settings(dir.path());
    s.merge_min_splits = 1000;
    let day = Duration::from_secs(86_400);
    s.streams.insert(
        "logs".into(),
        crate::settings::StreamOverrides {
            retention_max_age: Some(day),
            ..Default::default()
        },
    );
    let indexer = Indexer::open(s.clone(), Arc::new(Metrics::default())).unwrap();
    let now = trawl_model::Timestamp::now().nanos();
    let day_ns = 86_400_000_000_000i64;
    // Three splits: two days old, one hour old, now.
    for (i, age) in [2 * day_ns, day_ns / 24, 0].into_iter().enumerate() {
        let ts = trawl_model::Timestamp(now - age).to_rfc3339();
        let body: String = (0..10)
            .map(|n| format!("{{\"timestamp\":\"{ts}\",\"message\":\"split{i} {n}\"}}\n"))
            .collect();
        ingest(&rt, &indexer, "logs", body.into_bytes(), false).unwrap();
        indexer.seal_all();
    }
    assert_eq!(logs_stats(&indexer).splits, 3);
    indexer.run_upkeep_once().unwrap();
    assert_eq!(
        (logs_stats(&indexer).splits, logs_stats(&indexer).docs),
        (2, 20)
    );
    assert_eq!(docs(&indexer, "logs"), 20);
    indexer.shutdown();
    drop(indexer);

    // By size: a budget that holds one split keeps the newest.
    let one_split = {
        let ix = Indexer::open(s.clone(), Arc::new(Metrics::default())).unwrap();
        // The larger of the two splits (the stream's bytes count its hot index too).
        let bytes = ix
            .local_splits()
            .iter()
            .flat_map(|(_, _, splits)| splits.iter().map(|h| h.meta.bytes))
            .max()
            .unwrap();
        ix.shutdown();
        bytes
    };
    s.streams.insert(
        "logs".into(),
        crate::settings::StreamOverrides {
            retention_max_bytes: Some(one_split + one_split / 2),
            ..Default::default()
        },
    );
    let indexer = Indexer::open(s, Arc::new(Metrics::default())).unwrap();
    indexer.run_upkeep_once().unwrap();
    assert_eq!(logs_stats(&indexer).splits, 1);
    let snapshot = indexer.snapshot("logs", None, None).unwrap();
    let newest = snapshot.targets[0].max_timestamp.unwrap().nanos();
    assert!(newest >= now, "the newest split is kept");
    indexer.shutdown();
}

/// The source marks of a local split: what a publish carries to the shared metastore.
fn split_marks(indexer: &Indexer) -> Vec<std::collections::BTreeMap<String, u64>> {
    indexer
        .local_splits()
        .into_iter()
        .filter(|(stream, _, _)| stream == "logs")
        .flat_map(|(_, _, splits)| splits.into_iter().map(|s| s.meta.marks.clone()))
        .collect()
}

#[test]
fn splits_carry_the_marks_of_their_records_through_restarts_and_merges() {
    use std::collections::BTreeMap;
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    // On one machine (no `[storage] uri`) splits carry no marks.
    let alone = tempfile::tempdir().unwrap();
    let indexer = open(alone.path());
    assert!(!indexer.settings().split_marks);
    ingest(&rt, &indexer, "logs", delivery("a", &[0], 20, "x"), true).unwrap();
    indexer.seal_all();
    assert_eq!(split_marks(&indexer), [BTreeMap::new()]);
    indexer.shutdown();
    drop(indexer);

    let mut s = settings(dir.path());
    s.merge_min_splits = 2;
    s.split_marks = true;
    let indexer = Indexer::open(s.clone(), Arc::new(Metrics::default())).unwrap();
    ingest(
        &rt,
        &indexer,
        "logs",
        delivery("a", &[0, 10], 20, "x"),
        true,
    )
    .unwrap();
    ingest(&rt, &indexer, "logs", delivery("b", &[0], 5, "x"), true).unwrap();
    // A push batch has no marks.
    ingest(
        &rt,
        &indexer,
        "logs",
        b"{\"message\":\"push\"}".to_vec(),
        false,
    )
    .unwrap();
    indexer.seal_all();
    assert_eq!(
        split_marks(&indexer),
        [BTreeMap::from([("a".into(), 20), ("b".into(), 5)])]
    );
    // The hot index's marks survive a restart (its commit payload), not only its records.
    ingest(
        &rt,
        &indexer,
        "logs",
        delivery("a", &[20, 30], 40, "y"),
        true,
    )
    .unwrap();
    assert_eq!(docs(&indexer, "logs"), 6);
    indexer.shutdown();
    drop(indexer);
    let indexer = Indexer::open(s.clone(), Arc::new(Metrics::default())).unwrap();
    ingest(&rt, &indexer, "logs", delivery("c", &[0], 7, "y"), true).unwrap();
    indexer.seal_all();
    let mut sealed = split_marks(&indexer);
    sealed.sort();
    assert_eq!(
        sealed,
        [
            BTreeMap::from([("a".into(), 20), ("b".into(), 5)]),
            BTreeMap::from([("a".into(), 40), ("c".into(), 7)]),
        ]
    );
    // With a shared tier, unpublished splits do not merge (they may still have to lose the
    // records of a source taken over); published ones do.
    indexer.run_upkeep_once().unwrap();
    assert_eq!(split_marks(&indexer).len(), 2);
    indexer.set_published("logs", split_ids(&indexer).into_iter().map(|id| (id, None)));
    // A merge carries the largest of its inputs'.
    indexer.run_upkeep_once().unwrap();
    assert_eq!(
        split_marks(&indexer),
        [BTreeMap::from([
            ("a".into(), 40),
            ("b".into(), 5),
            ("c".into(), 7)
        ])]
    );
    assert_eq!(docs(&indexer, "logs"), 7);
    indexer.shutdown();
}

fn split_ids(indexer: &Indexer) -> Vec<String> {
    indexer
        .local_splits()
        .into_iter()
        .filter(|(stream, _, _)| stream == "logs")
        .flat_map(|(_, _, splits)| splits.into_iter().map(|s| s.meta.id.clone()))
        .collect()
}

/// A delivery batch of several sources: `(id, offsets, end)` each, records marked `marker`.
fn delivery_of(sources: &[(&str, &[u64], u64)], marker: &str) -> Vec<u8> {
    let env: Vec<serde_json::Value> = sources
        .iter()
        .map(|(id, offsets, end)| {
            serde_json::json!({"id": id, "start": offsets[0], "end": end, "offsets": offsets})
        })
        .collect();
    let mut body = serde_json::json!({ "sources": env })
        .to_string()
        .into_bytes();
    for (id, offsets, _) in sources {
        for o in offsets.iter() {
            body.push(b'\n');
            body.extend_from_slice(
                format!(r#"{{"message":"{marker} {id} at {o}","file":"f"}}"#).as_bytes(),
            );
        }
    }
    body
}

fn purged_records(metrics: &Metrics) -> u64 {
    let logs = crate::metrics::StreamLabel {
        stream: "logs".into(),
    };
    metrics.records_purged.get_or_create(&logs).get()
}

/// How many documents of the logs stream hold `word` in their message.
fn with_word(indexer: &Indexer, word: &str) -> u64 {
    use tantivy::collector::Count;
    use tantivy::query::TermQuery;
    use tantivy::schema::IndexRecordOption;
    indexer.flush();
    let snapshot = indexer.snapshot("logs", None, None).unwrap();
    let field = snapshot.schema.get_field("message").unwrap();
    let query = TermQuery::new(
        tantivy::Term::from_field_text(field, word),
        IndexRecordOption::Basic,
    );
    snapshot
        .targets
        .iter()
        .map(|t| t.searcher.search(&query, &Count).unwrap() as u64)
        .sum()
}

#[test]
fn records_of_sources_taken_over_leave_the_hot_index_unpublished_splits_and_the_wal() {
    use std::collections::BTreeMap;
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let mut s = settings(dir.path());
    s.split_marks = true;
    let metrics = Arc::new(Metrics::default());
    let indexer = Indexer::open(s.clone(), metrics.clone()).unwrap();
    let take = |body: Vec<u8>| ingest(&rt, &indexer, "logs", body, true).unwrap();
    // A published split: a 0..3, b 0..2.
    take(delivery_of(&[("a", &[0, 1, 2], 3), ("b", &[0, 1], 2)], "p"));
    indexer.seal_all();
    let published = split_ids(&indexer);
    let commit = trawl_storage::seen::Committed {
        system: 7,
        timeline: 1,
        xid: 4242,
    };
    indexer.set_published(
        "logs",
        published.iter().map(|id| (id.clone(), Some(commit))),
    );
    // An unpublished split: a 3..5, b 2..5; and the hot index: b 5..7, a 5..6.
    take(delivery_of(&[("a", &[3, 4], 5), ("b", &[2, 3, 4], 5)], "u"));
    indexer.seal_all();
    take(delivery_of(&[("b", &[5, 6], 7), ("a", &[5], 6)], "h"));
    // The published split's targets carry the transaction it was published in (a root
    // whose list saw it leaves the copy out); the others none.
    indexer.flush();
    let mut xids: Vec<(trawl_index::TargetKind, bool, Option<u64>)> = indexer
        .snapshot("logs", None, None)
        .unwrap()
        .targets
        .iter()
        .map(|t| (t.kind, t.id == published[0], t.published.map(|p| p.xid)))
        .collect();
    xids.sort_by_key(|x| (x.0 == trawl_index::TargetKind::Hot, !x.1));
    assert_eq!(
        xids,
        [
            (trawl_index::TargetKind::Split, true, Some(4242)),
            (trawl_index::TargetKind::Split, false, None),
            (trawl_index::TargetKind::Hot, false, None),
        ]
    );
    // A push batch has no source: never purged.
    ingest(
        &rt,
        &indexer,
        "logs",
        b"{\"message\":\"push b\"}".to_vec(),
        false,
    )
    .unwrap();
    assert_eq!(docs(&indexer, "logs"), 14);
    assert_eq!(with_word(&indexer, "b"), 8);

    let purged = indexer.purge_sources(&["b".to_string()]).unwrap();
    assert_eq!(
        purged,
        crate::Purged {
            records: 5,
            splits: 1
        }
    );
    assert_eq!(docs(&indexer, "logs"), 9);
    // b's published records and the push record stay; a's are all there.
    assert_eq!(with_word(&indexer, "b"), 3);
    assert_eq!(with_word(&indexer, "a"), 6);
    let mut marks = split_marks(&indexer);
    marks.sort();
    assert_eq!(
        marks,
        [
            BTreeMap::from([("a".into(), 3), ("b".into(), 2)]),
            BTreeMap::from([("a".into(), 5)]),
        ]
    );
    assert!(
        split_ids(&indexer).contains(&published[0]),
        "published split untouched"
    );
    assert_eq!(purged_records(&metrics), 5);
    // Again: nothing more goes.
    assert_eq!(
        indexer.purge_sources(&["b".to_string()]).unwrap(),
        crate::Purged::default()
    );
    // Records of b after the purge (b came back to this indexer) are b's again.
    take(delivery_of(&[("b", &[7], 8), ("a", &[6], 7)], "n"));
    assert_eq!(docs(&indexer, "logs"), 11);
    indexer.shutdown();
    drop(indexer);

    // The hot index lost (unreadable): the WAL is replayed from the last seal, without b's
    // records from before the purge and with those after it.
    let hot = dir.path().join("indexer/streams/logs/hot");
    for entry in std::fs::read_dir(&hot).unwrap() {
        std::fs::write(entry.unwrap().path().join("meta.json"), b"not json").unwrap();
    }
    let metrics = Arc::new(Metrics::default());
    let indexer = Indexer::open(s, metrics.clone()).unwrap();
    assert_eq!(docs(&indexer, "logs"), 11);
    assert_eq!(with_word(&indexer, "n"), 2);
    assert_eq!(with_word(&indexer, "b"), 4);
    assert_eq!(
        with_word(&indexer, "h"),
        1,
        "a's record of the purged batch"
    );
    assert_eq!(
        purged_records(&metrics),
        2,
        "b's two records dropped at the replay"
    );
    // The replayed hot index carries b's mark from after the purge only.
    indexer.seal_all();
    let mut marks = split_marks(&indexer);
    marks.sort();
    assert_eq!(
        marks,
        [
            BTreeMap::from([("a".into(), 3), ("b".into(), 2)]),
            BTreeMap::from([("a".into(), 5)]),
            BTreeMap::from([("a".into(), 7), ("b".into(), 8)]),
        ]
    );
    indexer.shutdown();
}

#[test]
fn a_hot_index_of_another_schema_is_rebuilt_from_the_wal() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let indexer = open(dir.path());
    let body: Vec<u8> = (0..5)
        .flat_map(|i| format!("{{\"message\":\"line {i}\"}}\n").into_bytes())
        .collect();
    ingest(&rt, &indexer, "logs", body, false).unwrap();
    assert_eq!(docs(&indexer, "logs"), 5);
    indexer.shutdown();
    drop(indexer);

    // The hot index replaced by one written with another schema (as by an older version,
    // before a hidden field was added), empty.
    let hot = dir.path().join("indexer/streams/logs/hot");
    for entry in std::fs::read_dir(&hot).unwrap() {
        std::fs::remove_dir_all(entry.unwrap().path()).unwrap();
    }
    let mut builder = tantivy::schema::Schema::builder();
    builder.add_text_field("message", tantivy::schema::TEXT);
    let old = hot.join("01aaaaaaaaaaaaaaaaaaaaaaaa");
    std::fs::create_dir_all(&old).unwrap();
    tantivy::Index::create_in_dir(&old, builder.build()).unwrap();

    let indexer = open(dir.path());
    assert_eq!(
        docs(&indexer, "logs"),
        5,
        "replayed into a hot index of the stream's schema"
    );
    assert!(!old.exists(), "the other schema's hot index is gone");
    let body = b"{\"message\":\"after\"}\n".to_vec();
    ingest(&rt, &indexer, "logs", body, false).unwrap();
    assert_eq!(docs(&indexer, "logs"), 6);
    indexer.shutdown();
}
