//! The metastore against a real PostgreSQL server, object storage and the split cache against
//! a real S3-protocol server (see `support/servers.rs`).

#[path = "support/servers.rs"]
mod servers;

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use servers::{Postgres, S3Server};
use tantivy::collector::Count;
use tantivy::query::AllQuery;
use tantivy::schema::{Schema, TEXT};
use tantivy::{doc, Index};
use trawl_config::{S3Config, StorageConfig};
use trawl_storage::pg::{
    watch_published, Publish, PublishedChange, SplitRecord, SplitState, SCHEMA_VERSION,
};
use trawl_storage::seen::Committed;
use trawl_storage::{
    write_bundle, Error, ObjectStorage, PgMetastore, RangedDirectory, SplitCache, StorageMetrics,
};

fn split(id: &str, indexer: &str, parents: &[&str]) -> SplitRecord {
    SplitRecord {
        stream: "logs".into(),
        split_id: id.into(),
        state: SplitState::Staged,
        object_key: ObjectStorage::split_key("logs", id),
        min_timestamp: 1,
        max_timestamp: 2,
        docs: 10,
        bytes: 1000,
        created_at: 5,
        merge_level: u32::from(!parents.is_empty()),
        indexer: indexer.into(),
        parents: parents.iter().map(|p| p.to_string()).collect(),
        meta: serde_json::json!({ "id": id }),
    }
}

fn ids(splits: &[SplitRecord]) -> Vec<&str> {
    splits.iter().map(|s| s.split_id.as_str()).collect()
}

fn publish(
    indexer: &str,
    splits: &[&str],
    replaced: &[&str],
    marks: &[(&str, u64)],
    fence: &[(&str, i64)],
) -> Publish {
    Publish {
        stream: "logs".into(),
        indexer: indexer.into(),
        splits: splits.iter().map(|s| s.to_string()).collect(),
        replaced: replaced.iter().map(|s| s.to_string()).collect(),
        marks: marks.iter().map(|(s, e)| (s.to_string(), *e)).collect(),
        fence: fence.iter().map(|(s, t)| (s.to_string(), *t)).collect(),
    }
}

/// A PostgreSQL server of its own and a metastore on it; `None` where PostgreSQL is missing
/// and its tests are skipped.
async fn metastore() -> Option<(Postgres, PgMetastore)> {
    if !servers::postgres_available() {
        return None;
    }
    let pg = Postgres::start();
    let m = PgMetastore::connect(&pg.uri(), Arc::new(StorageMetrics::default()))
        .await
        .unwrap();
    Some((pg, m))
}

/// Retention over the whole cluster's published splits, whichever indexer wrote them: by age
/// (wholly older than the cutoff), then the oldest while over the byte bound; staged and
/// marked splits are not counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_retention_marks_by_age_then_by_size_over_every_indexers_splits() {
    let Some((_pg, m)) = metastore().await else {
        return;
    };
    // Five splits, max_timestamp 10, 20, ..., 50, of 1,000 bytes each, from two indexers (one
    // of which is gone), and one staged split that retention must not touch.
    for (i, indexer) in ["a", "gone", "a", "gone", "a"].iter().enumerate() {
        let id = format!("s{}", i + 1);
        let mut record = split(&id, indexer, &[]);
        record.min_timestamp = (i as i64 + 1) * 10 - 5;
        record.max_timestamp = (i as i64 + 1) * 10;
        m.stage(&record).await.unwrap();
        m.publish(&publish(indexer, &[&id], &[], &[], &[]))
            .await
            .unwrap();
    }
    m.stage(&split("staged", "a", &[])).await.unwrap();
    // Nothing to do: nothing wholly before 10, 5,000 bytes allowed.
    assert!(m
        .apply_retention("logs", Some(10), Some(5000))
        .await
        .unwrap()
        .is_empty());
    // Age: s1 and s2 end before 25.
    assert_eq!(
        m.apply_retention("logs", Some(25), None).await.unwrap(),
        ["s1", "s2"]
    );
    // Size: 3,000 bytes left, 1,500 allowed: the oldest two go.
    assert_eq!(
        m.apply_retention("logs", None, Some(1500)).await.unwrap(),
        ["s3", "s4"]
    );
    assert_eq!(ids(&m.published("logs").await.unwrap()), ["s5"]);
    assert_eq!(
        ids(&m.splits(Some("logs"), &[SplitState::Marked]).await.unwrap()),
        ["s1", "s2", "s3", "s4"]
    );
    assert_eq!(
        ids(&m.splits(Some("logs"), &[SplitState::Staged]).await.unwrap()),
        ["staged"]
    );
    // Another stream is untouched.
    assert!(m
        .apply_retention("audit", Some(i64::MAX), Some(0))
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metastore_publishes_atomically_fences_stale_owners_and_leases_upkeep() {
    if !servers::postgres_available() {
        return;
    }
    let pg = Postgres::start();
    let metrics = Arc::new(StorageMetrics::default());
    // Four processes starting at once: the migrations run once.
    let starts: Vec<_> = (0..4)
        .map(|_| {
            let uri = pg.uri();
            let metrics = metrics.clone();
            tokio::spawn(async move { PgMetastore::connect(&uri, metrics).await })
        })
        .collect();
    for s in starts {
        s.await.unwrap().unwrap();
    }
    let a = PgMetastore::connect(&pg.uri(), metrics.clone())
        .await
        .unwrap();
    let b = PgMetastore::connect(&pg.uri(), metrics.clone())
        .await
        .unwrap();
    assert_eq!(a.schema_version().await.unwrap(), SCHEMA_VERSION);

    // Indexer a owns node-1, stages two splits and publishes them with their marks.
    let owned = a.acquire_source("node-1", "a").await.unwrap();
    assert_eq!(
        (owned.token, owned.previous_owner, owned.published_mark),
        (1, None, None)
    );
    assert_eq!(a.acquire_source("node-1", "a").await.unwrap().token, 1);
    a.stage(&split("s1", "a", &[])).await.unwrap();
    a.stage(&split("s2", "a", &[])).await.unwrap();
    // Staging again (a retried upload) is fine.
    a.stage(&split("s2", "a", &[])).await.unwrap();
    assert!(
        a.published("logs").await.unwrap().is_empty(),
        "staged is not visible"
    );
    let first = publish(
        "a",
        &["s1", "s2"],
        &[],
        &[("node-1", 100)],
        &[("node-1", 1)],
    );
    a.publish(&first).await.unwrap();
    assert_eq!(ids(&b.published("logs").await.unwrap()), ["s1", "s2"]);
    // By time range (the splits hold 1..=2): what a searcher asks for.
    assert_eq!(
        ids(&b.published_in("logs", Some(2), Some(3)).await.unwrap()),
        ["s1", "s2"]
    );
    assert_eq!(
        ids(&b.published_in("logs", None, None).await.unwrap()),
        ["s1", "s2"]
    );
    assert!(b
        .published_in("logs", Some(3), None)
        .await
        .unwrap()
        .is_empty());
    assert!(b
        .published_in("logs", None, Some(1))
        .await
        .unwrap()
        .is_empty());
    assert!(b
        .published_in("audit", None, None)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        b.marks().await.unwrap(),
        BTreeMap::from([("node-1".into(), 100)])
    );
    // The same publish again (its answer was lost): nothing changes.
    a.publish(&first).await.unwrap();
    assert_eq!(ids(&b.published("logs").await.unwrap()), ["s1", "s2"]);
    // Staging over a published split is a conflict.
    assert!(matches!(
        a.stage(&split("s1", "a", &[])).await,
        Err(Error::Conflict(_))
    ));

    // b takes node-1 over: a's token is stale, its publish refused whole.
    let taken = b.acquire_source("node-1", "b").await.unwrap();
    assert_eq!(
        (
            taken.token,
            taken.previous_owner.as_deref(),
            taken.published_mark
        ),
        (2, Some("a"), Some(100)),
        "the new owner resumes where a's published splits end"
    );
    assert_eq!(
        b.owners(&["node-1".into(), "node-9".into()]).await.unwrap(),
        BTreeMap::from([("node-1".into(), ("b".into(), 2))])
    );
    a.stage(&split("s3", "a", &[])).await.unwrap();
    let stale = publish("a", &["s3"], &[], &[("node-1", 200)], &[("node-1", 1)]);
    match a.publish(&stale).await {
        Err(Error::Fenced {
            source_id,
            owner,
            token,
            presented,
        }) => {
            assert_eq!(
                (source_id.as_str(), owner.as_str(), token, presented),
                ("node-1", "b", 2, 1)
            );
        }
        other => panic!("expected Fenced, got {other:?}"),
    }
    assert_eq!(b.marks().await.unwrap()["node-1"], 100);
    assert_eq!(
        ids(&b.splits(Some("logs"), &[SplitState::Staged]).await.unwrap()),
        ["s3"]
    );

    // b merges s1 and s2 into m1: one transaction.
    b.stage(&split("m1", "b", &["s1", "s2"])).await.unwrap();
    let merge = publish("b", &["m1"], &["s1", "s2"], &[], &[]);
    b.publish(&merge).await.unwrap();
    let published = a.published("logs").await.unwrap();
    assert_eq!(ids(&published), ["m1"]);
    assert_eq!(published[0].parents, ["s1", "s2"]);
    assert_eq!(published[0].meta, serde_json::json!({ "id": "m1" }));
    assert_eq!(
        ids(&a.splits(Some("logs"), &[SplitState::Marked]).await.unwrap()),
        ["s1", "s2"]
    );
    b.publish(&merge).await.unwrap();
    // Replacing a split that is not published changes nothing, not even the new split.
    b.stage(&split("m2", "b", &["s3"])).await.unwrap();
    let bad = publish("b", &["m2"], &["s3"], &[], &[]);
    assert!(matches!(b.publish(&bad).await, Err(Error::Conflict(_))));
    assert_eq!(
        ids(&a.splits(Some("logs"), &[SplitState::Staged]).await.unwrap()),
        ["m2", "s3"],
        "ordered by creation time, then id"
    );
    // Publishing another indexer's staged split is a conflict too.
    assert!(matches!(
        a.publish(&publish("a", &["m2"], &[], &[], &[])).await,
        Err(Error::Conflict(_))
    ));

    // The janitor's view: staged and marked rows past the grace period.
    let expired = a.expired(Duration::ZERO).await.unwrap();
    let mut expired_ids = ids(&expired);
    expired_ids.sort();
    assert_eq!(expired_ids, ["m2", "s1", "s2", "s3"]);
    assert!(a
        .expired(Duration::from_secs(3600))
        .await
        .unwrap()
        .is_empty());
    let all: Vec<String> = ["m1", "m2", "s1", "s2", "s3"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    // Staged rows are taken before their objects go: only those still staged and expired.
    assert!(a
        .retire_staged("logs", &all, Duration::from_secs(3600))
        .await
        .unwrap()
        .is_empty());
    let mut taken = a.retire_staged("logs", &all, Duration::ZERO).await.unwrap();
    taken.sort();
    assert_eq!(taken, ["m2", "s3"], "m1 is published, s1 and s2 marked");
    // A split so taken is never published, nor staged again while its row is there.
    assert!(matches!(
        b.publish(&publish("b", &["m2"], &[], &[], &[])).await,
        Err(Error::Conflict(_))
    ));
    assert!(matches!(
        b.stage(&split("m2", "b", &["s3"])).await,
        Err(Error::Conflict(_))
    ));
    assert_eq!(
        a.delete_splits("logs", &all).await.unwrap(),
        4,
        "m1 is published"
    );
    assert_eq!(
        ids(&a
            .splits(
                None,
                &[
                    SplitState::Staged,
                    SplitState::Published,
                    SplitState::Marked
                ]
            )
            .await
            .unwrap()),
        ["m1"]
    );
    assert_eq!(a.streams().await.unwrap(), ["logs"]);
    let all = [
        SplitState::Staged,
        SplitState::Published,
        SplitState::Marked,
    ];
    assert_eq!(
        b.states_of("b", &all).await.unwrap(),
        [("logs".to_string(), "m1".to_string(), SplitState::Published)]
    );
    assert!(a.states_of("a", &all).await.unwrap().is_empty());

    // Leases: one holder at a time; an expired one is taken over.
    let hour = Duration::from_secs(3600);
    assert!(a.try_lease("upkeep", "a", hour).await.unwrap());
    assert!(!b.try_lease("upkeep", "b", hour).await.unwrap());
    assert!(
        a.try_lease("upkeep", "a", Duration::ZERO).await.unwrap(),
        "renewed"
    );
    assert!(
        b.try_lease("upkeep", "b", hour).await.unwrap(),
        "expired, taken over"
    );
    assert!(!a.try_lease("upkeep", "a", hour).await.unwrap());
    b.release_lease("upkeep", "b").await.unwrap();
    assert!(a.try_lease("upkeep", "a", hour).await.unwrap());
    assert!(metrics.metastore_calls.load(Ordering::Relaxed) > 20);
}

/// The published list a searcher reads names every recorded ancestor of each split: a merge
/// of a merge leaves out of the indexers' leaf searches the first merge's inputs too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_published_list_names_every_ancestor_of_a_merge_of_merges() {
    let Some((_pg, m)) = metastore().await else {
        return;
    };
    for id in ["x1", "x2", "x3"] {
        m.stage(&split(id, "a", &[])).await.unwrap();
    }
    m.publish(&publish("a", &["x1", "x2", "x3"], &[], &[], &[]))
        .await
        .unwrap();
    m.stage(&split("y1", "b", &["x1", "x2"])).await.unwrap();
    m.publish(&publish("b", &["y1"], &["x1", "x2"], &[], &[]))
        .await
        .unwrap();
    m.stage(&split("z1", "b", &["y1", "x3"])).await.unwrap();
    m.publish(&publish("b", &["z1"], &["y1", "x3"], &[], &[]))
        .await
        .unwrap();
    let listed = m.published_in("logs", None, None).await.unwrap();
    assert_eq!(ids(&listed), ["z1"]);
    assert_eq!(listed[0].parents, ["x1", "x2", "x3", "y1"]);
    assert_eq!(listed[0].meta, serde_json::Value::Null);
    // A sealed split has none; the full rows keep the direct parents only.
    m.stage(&split("s9", "a", &[])).await.unwrap();
    m.publish(&publish("a", &["s9"], &[], &[], &[]))
        .await
        .unwrap();
    let listed = m.published_in("logs", None, None).await.unwrap();
    assert_eq!(ids(&listed), ["s9", "z1"]);
    assert!(listed[0].parents.is_empty());
    let rows = m.published("logs").await.unwrap();
    assert_eq!(rows[1].parents, ["y1", "x3"]);
    // Once the janitor removed the marked rows, only what is recorded is named.
    m.delete_splits("logs", &["y1".to_string()]).await.unwrap();
    let listed = m.published_in("logs", None, None).await.unwrap();
    assert_eq!(listed[1].parents, ["x3", "y1"]);
}

/// A listing's snapshot sees every publish that committed before the listing was read, and
/// none after; it still sees a publish whose split the listing no longer names (a merge of
/// merges whose middle row the janitor removed), which is what lets an indexer that was away
/// leave its stale copy out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_sees_the_publishes_committed_before_it_and_none_after() {
    let Some((pg, m)) = metastore().await else {
        return;
    };
    let empty = m.published_listing("logs", None, None).await.unwrap();
    assert!(empty.records.is_empty());
    for id in ["x1", "x2"] {
        m.stage(&split(id, "a", &[])).await.unwrap();
    }
    let x1 = m
        .publish(&publish("a", &["x1"], &[], &[], &[]))
        .await
        .unwrap();
    assert!(!empty.seen.sees(&x1), "published after the empty listing");
    let first = m.published_listing("logs", None, None).await.unwrap();
    assert_eq!(ids(&first.records), ["x1"]);
    assert!(first.seen.sees(&x1));
    // A transaction still open when a listing is read: not seen by it, seen once committed.
    let (client, conn) = tokio_postgres::connect(&pg.uri(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client.batch_execute("BEGIN").await.unwrap();
    let open: String = client
        .query_one("SELECT pg_current_xact_id()::TEXT", &[])
        .await
        .unwrap()
        .get(0);
    let open = Committed {
        xid: open.parse().unwrap(),
        ..x1
    };
    let x2 = m
        .publish(&publish("a", &["x2"], &[], &[], &[]))
        .await
        .unwrap();
    assert!(x2.xid > x1.xid);
    let during = m.published_listing("logs", None, None).await.unwrap();
    assert!(during.seen.sees(&x2), "committed after the open one began");
    assert!(!during.seen.sees(&open), "{:?} sees {open:?}", during.seen);
    client.batch_execute("COMMIT").await.unwrap();
    assert!(m
        .published_listing("logs", None, None)
        .await
        .unwrap()
        .seen
        .sees(&open));
    // A retry of a publish that went through answers its own, later transaction.
    let again = m
        .publish(&publish("a", &["x2"], &[], &[], &[]))
        .await
        .unwrap();
    assert!(again.xid > x2.xid && !during.seen.sees(&again));
    // Merged twice, the middle merge's row removed: the list names x2 no more, and still
    // saw its publish.
    m.stage(&split("y1", "b", &["x1", "x2"])).await.unwrap();
    let y1 = m
        .publish(&publish("b", &["y1"], &["x1", "x2"], &[], &[]))
        .await
        .unwrap();
    m.stage(&split("z1", "b", &["y1"])).await.unwrap();
    m.publish(&publish("b", &["z1"], &["y1"], &[], &[]))
        .await
        .unwrap();
    m.delete_splits("logs", &["y1".to_string()]).await.unwrap();
    let last = m
        .published_listing("logs", Some(0), Some(10))
        .await
        .unwrap();
    assert_eq!(ids(&last.records), ["z1"]);
    assert_eq!(last.records[0].parents, ["y1"]);
    assert!(last.seen.sees(&x2) && last.seen.sees(&y1));
    assert!(!first.seen.sees(&y1));
    // Another stream's empty list is read with a snapshot too.
    let audit = m.published_listing("audit", None, None).await.unwrap();
    assert!(audit.records.is_empty() && audit.seen.sees(&y1));
    // Another cluster (a metastore restored from a dump) never sees these commits, even once
    // its own ids have passed theirs.
    let other_pg = Postgres::start();
    let other = PgMetastore::connect(&other_pg.uri(), Arc::new(StorageMetrics::default()))
        .await
        .unwrap();
    let mut n = 0;
    loop {
        n += 1;
        other
            .stage(&split(&format!("o{n}"), "a", &[]))
            .await
            .unwrap();
        let o = other
            .publish(&publish("a", &[&format!("o{n}")], &[], &[], &[]))
            .await
            .unwrap();
        if o.xid > y1.xid {
            assert_ne!(o.system, y1.system);
            break;
        }
    }
    let elsewhere = other.published_listing("logs", None, None).await.unwrap();
    assert_eq!(elsewhere.records.len(), n);
    assert!(!elsewhere.seen.sees(&x1) && !elsewhere.seen.sees(&y1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metastore_reconnects_after_postgres_restarts() {
    if !servers::postgres_available() {
        return;
    }
    let mut pg = Postgres::start();
    let metrics = Arc::new(StorageMetrics::default());
    let store = PgMetastore::connect(&pg.uri(), metrics.clone())
        .await
        .unwrap();
    store.stage(&split("s1", "a", &[])).await.unwrap();
    pg.stop();
    let publish_s1 = publish("a", &["s1"], &[], &[("n", 5)], &[]);
    assert!(matches!(
        store.publish(&publish_s1).await,
        Err(Error::Postgres(_))
    ));
    assert!(metrics.metastore_errors.load(Ordering::Relaxed) >= 1);
    // Nothing was published by the failed call; after the restart the retry goes through.
    pg.start_again();
    store.publish(&publish_s1).await.unwrap();
    assert_eq!(ids(&store.published("logs").await.unwrap()), ["s1"]);
    assert_eq!(store.marks().await.unwrap()["n"], 5);
    // A newer schema than this build knows is refused.
    {
        let (client, conn) = tokio_postgres::connect(&pg.uri(), tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        client
            .execute(
                "INSERT INTO trawl_schema_migrations (version) VALUES ($1)",
                &[&(SCHEMA_VERSION + 1)],
            )
            .await
            .unwrap();
    }
    let err = PgMetastore::connect(&pg.uri(), metrics).await.unwrap_err();
    assert!(err.to_string().contains("schema is version 2"), "{err}");
}

/// Every change of the published splits is notified once committed (a publish, a retention
/// mark; not a staging), and a watcher says when it stops and starts listening again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_of_the_published_splits_are_notified_through_restarts() {
    if !servers::postgres_available() {
        return;
    }
    let mut pg = Postgres::start();
    let store = PgMetastore::connect(&pg.uri(), Arc::new(StorageMetrics::default()))
        .await
        .unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let watcher = watch_published(&pg.uri(), Duration::from_millis(100), move |change| {
        let _ = tx.send(change);
    });
    let mut next = async || {
        tokio::time::timeout(Duration::from_secs(30), rx.recv())
            .await
            .expect("a notification within 30 s")
            .expect("the watcher runs")
    };
    assert_eq!(next().await, PublishedChange::Listening);
    store.stage(&split("s1", "a", &[])).await.unwrap();
    store.stage(&split("s2", "a", &[])).await.unwrap();
    store
        .publish(&publish("a", &["s1", "s2"], &[], &[], &[]))
        .await
        .unwrap();
    assert_eq!(next().await, PublishedChange::Stream("logs".into()));
    // Retention that drops nothing notifies nothing; one that drops s1 and s2 does.
    assert!(store
        .apply_retention("logs", Some(0), None)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        store
            .apply_retention("logs", Some(i64::MAX), None)
            .await
            .unwrap()
            .len(),
        2
    );
    assert_eq!(next().await, PublishedChange::Stream("logs".into()));
    pg.stop();
    assert_eq!(next().await, PublishedChange::Lost);
    pg.start_again();
    // Tried again every 100 ms until the server answers: lost again at each failure, then
    // listening.
    loop {
        match next().await {
            PublishedChange::Lost => continue,
            change => {
                assert_eq!(change, PublishedChange::Listening);
                break;
            }
        }
    }
    store.stage(&split("s3", "a", &[])).await.unwrap();
    store
        .publish(&publish("a", &["s3"], &[], &[], &[]))
        .await
        .unwrap();
    assert_eq!(next().await, PublishedChange::Stream("logs".into()));
    watcher.abort();
}

fn s3_config(s3: &S3Server, prefix: &str) -> StorageConfig {
    StorageConfig {
        uri: format!("s3://{}/{prefix}", servers::S3_BUCKET),
        s3: S3Config {
            endpoint: s3.endpoint(),
            region: "us-east-1".into(),
            path_style: true,
            access_key_id: servers::S3_ACCESS_KEY.into(),
            secret_access_key: servers::S3_SECRET_KEY.into(),
        },
        ..StorageConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn splits_go_through_a_real_s3_server_and_open_cold_in_one_request() {
    if !servers::s3_available() {
        return;
    }
    let mut s3 = S3Server::start();
    let tmp = tempfile::tempdir().unwrap();
    let metrics = Arc::new(StorageMetrics::default());
    let storage = ObjectStorage::open(&s3_config(&s3, "cluster-a"), metrics.clone()).unwrap();

    // A split of 20,000 documents, bundled (several parts: a multipart upload).
    let dir = tmp.path().join("split");
    std::fs::create_dir(&dir).unwrap();
    let mut builder = Schema::builder();
    let body = builder.add_text_field("body", TEXT | tantivy::schema::STORED);
    let index = Index::create_in_dir(&dir, builder.build()).unwrap();
    let mut writer = index.writer_with_num_threads(1, 50_000_000).unwrap();
    for i in 0..20_000u64 {
        // Incompressible enough that the doc store is several MiB.
        writer
            .add_document(doc!(body => format!("line {i} {:x} {:x}", i.wrapping_mul(0x9e3779b97f4a7c15), i.wrapping_mul(0xc2b2ae3d27d4eb4f))))
            .unwrap();
    }
    writer.commit().unwrap();
    drop(writer);
    let bundle = tmp.path().join("s1.split");
    let size = write_bundle(&dir, &serde_json::json!({ "id": "s1" }), &bundle).unwrap();
    let key = ObjectStorage::split_key("logs", "s1");
    assert_eq!(storage.upload_file(&key, &bundle).await.unwrap(), size);
    // It is a file in the server's directory, under the prefix.
    let on_server = s3
        .root()
        .join(servers::S3_BUCKET)
        .join("cluster-a")
        .join(&key);
    assert_eq!(
        std::fs::read(&on_server).unwrap(),
        std::fs::read(&bundle).unwrap()
    );
    let listed = storage.list("splits/").await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].key.as_str(), listed[0].size),
        (key.as_str(), size)
    );

    // A cold open through the cache: one request.
    let cache = SplitCache::open(&tmp.path().join("cache"), 1 << 40, storage.clone()).unwrap();
    let before = metrics.requests.load(Ordering::Relaxed);
    let split = cache.open_split(&key).await.unwrap();
    assert_eq!(metrics.requests.load(Ordering::Relaxed) - before, 1);
    let opened = Index::open(split.directory.clone()).unwrap();
    let searcher = opened.reader().unwrap().searcher();
    assert_eq!(searcher.search(&AllQuery, &Count).unwrap(), 20_000);
    // Warm: no request at all.
    let before = metrics.requests.load(Ordering::Relaxed);
    drop(cache.open_split(&key).await.unwrap());
    assert_eq!(metrics.requests.load(Ordering::Relaxed), before);

    // Opened by range instead: its tail in one request (the split's files are a size it has
    // at least), then a term looked up and its document read by range, never the whole.
    let files: u64 = split
        .directory
        .footer()
        .files
        .iter()
        .map(|f| f.end - f.start)
        .sum();
    let before = metrics.requests.load(Ordering::Relaxed);
    let ranged = RangedDirectory::open(&storage, &key, Some(files))
        .await
        .unwrap();
    assert_eq!(metrics.requests.load(Ordering::Relaxed) - before, 1);
    let (count, line) = tokio::task::spawn_blocking(move || {
        let index = Index::open(ranged).unwrap();
        let searcher = index.reader().unwrap().searcher();
        let body = index.schema().get_field("body").unwrap();
        let query = tantivy::query::QueryParser::for_index(&index, vec![body])
            .parse_query("\"line 12345\"")
            .unwrap();
        let top = searcher
            .search(
                &query,
                &tantivy::collector::TopDocs::with_limit(1).order_by_score(),
            )
            .unwrap();
        let doc: tantivy::TantivyDocument = searcher.doc(top[0].1).unwrap();
        let line = tantivy::schema::Value::as_str(&doc.get_first(body).unwrap())
            .unwrap()
            .to_string();
        (searcher.search(&AllQuery, &Count).unwrap(), line)
    })
    .await
    .unwrap();
    assert_eq!(count, 20_000);
    assert!(line.starts_with("line 12345 "), "{line}");
    assert!(metrics.range_read_bytes.load(Ordering::Relaxed) < size / 10);
    assert_eq!(
        metrics.downloads.load(Ordering::Relaxed),
        1,
        "the cache's one"
    );

    // The server away: a clear error, nothing half-written; back: the upload goes through.
    s3.stop();
    let key2 = ObjectStorage::split_key("logs", "s2");
    let err = storage.upload_file(&key2, &bundle).await.unwrap_err();
    assert!(matches!(err, Error::Object(_)), "{err}");
    assert!(metrics.upload_errors.load(Ordering::Relaxed) >= 1);
    s3.start_again();
    assert_eq!(storage.size(&key2).await.unwrap(), None);
    storage.upload_file(&key2, &bundle).await.unwrap();
    assert_eq!(storage.size(&key2).await.unwrap(), Some(size));
    storage.delete(&key2).await.unwrap();
    assert_eq!(storage.size(&key2).await.unwrap(), None);

    // Wrong credentials are refused by the server.
    let mut wrong = s3_config(&s3, "cluster-a");
    wrong.s3.secret_access_key = "nope".into();
    let wrong = ObjectStorage::open(&wrong, metrics.clone()).unwrap();
    assert!(wrong.size(&key).await.is_err());
}
