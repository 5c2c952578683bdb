//! A fixture for tests: twelve log records spread over three in-RAM splits (`a` and `b` with
//! two segments each), with timestamp ties across splits and within a segment; and
//! [`Fixture`], the [`StreamSource`] the route tests serve a snapshot through.

use std::collections::BTreeMap;
use std::sync::Arc;

use tantivy::indexer::NoMergePolicy;
use tantivy::schema::OwnedValue;
use tantivy::{DateTime, Index, IndexWriter, TantivyDocument};
use tokio::sync::broadcast;
use trawl_index::schema::build_schema;
use trawl_index::{SearchTarget, StreamSnapshot, StreamSource, StreamStats, TailBatch, TargetKind};
use trawl_model::schema::LOG_FIELDS;
use trawl_model::Timestamp;

/// 2023-11-14T22:13:00Z, a whole minute.
pub const T0: i64 = 1_699_999_980_000_000_000;
/// One minute in nanoseconds.
pub const MIN: i64 = 60_000_000_000;

/// One record of the fixture; its `pod` is `p<index>`.
pub struct Rec {
    /// The split's id, `2` appended for its second segment (`a2`).
    pub split: &'static str,
    pub ts: i64,
    pub namespace: &'static str,
    pub level: &'static str,
    pub message: &'static str,
    pub app: Option<&'static str>,
    pub offset: u64,
}

const fn rec(
    split: &'static str,
    ts: i64,
    namespace: &'static str,
    level: &'static str,
    message: &'static str,
    app: Option<&'static str>,
    offset: u64,
) -> Rec {
    Rec {
        split,
        ts,
        namespace,
        level,
        message,
        app,
        offset,
    }
}

/// The records, indexed by their `pod` number.
#[rustfmt::skip]
pub const RECORDS: &[Rec] = &[
    rec("a",  T0,               "payments",    "error", "error timeout talking to db",      Some("web"),    5),
    rec("a",  T0 + MIN + 1,     "payments",    "info",  "request served",                   Some("web"),    10),
    rec("a",  T0 + MIN + 2,     "shop",        "debug", "cache miss",                       Some("api"),    15),
    rec("a2", T0 + 3 * MIN,     "payments",    "error", "connection reset by peer",         Some("web"),    20),
    rec("b",  T0 + MIN + 1,     "shop",        "error", "timeout waiting for error budget", Some("api"),    25),
    rec("b",  T0 + 2 * MIN,     "payments",    "warn",  "connection was reset",             Some("web"),    12),
    rec("b",  T0 + 3 * MIN,     "shop",        "info",  "reset connection pool",            Some("api"),    30),
    rec("b2", T0 + 4 * MIN,     "payments",    "error", "upstream connection reset",        Some("web"),    18),
    rec("c",  T0 + 3 * MIN,     "payments",    "debug", "debug connection reset trace",     Some("worker"), 8),
    rec("c",  T0 + 5 * MIN,     "shop",        "error", "Error: Timeout",                   Some("web"),    40),
    rec("c",  T0 + 5 * MIN,     "payments",    "info",  "done",                             None,           3),
    rec("c",  T0 + 6 * MIN,     "kube-system", "fatal", "panic: error",                     Some("api"),    100),
];

/// The pods of the records in ascending hit order (timestamp, split, segment, doc).
pub const ASC_ORDER: &[usize] = &[0, 1, 4, 2, 5, 3, 6, 8, 7, 9, 10, 11];

fn document(index: &Index, i: usize, r: &Rec) -> TantivyDocument {
    let schema = index.schema();
    let f = |name: &str| schema.get_field(name).unwrap();
    let mut doc = TantivyDocument::new();
    doc.add_date(f("timestamp"), DateTime::from_timestamp_nanos(r.ts));
    doc.add_text(f("cluster"), "test");
    doc.add_text(f("namespace"), r.namespace);
    doc.add_text(f("pod"), format!("p{i}"));
    doc.add_text(f("level"), r.level);
    doc.add_text(f("message"), r.message);
    if let Some(app) = r.app {
        let mut labels = BTreeMap::new();
        labels.insert(
            "app.kubernetes.io/name".to_string(),
            OwnedValue::Str(app.to_string()),
        );
        doc.add_object(f("labels"), labels);
    }
    doc.add_u64(f("offset"), r.offset);
    doc
}

/// An in-RAM split holding the records `select` picks, the late ones in a second segment.
fn split(id: &str, select: impl Fn(&Rec) -> bool) -> SearchTarget {
    let chosen: Vec<(usize, &Rec)> = RECORDS
        .iter()
        .enumerate()
        .filter(|(_, r)| select(r))
        .collect();
    split_of(id, &chosen)
}

/// An in-RAM split of `records` (pod number, record); those whose split id ends in `2` go
/// into a second segment.
fn split_of(id: &str, records: &[(usize, &Rec)]) -> SearchTarget {
    let index = Index::create_in_ram(build_schema(LOG_FIELDS));
    let mut writer: IndexWriter = index.writer_with_num_threads(1, 15_000_000).unwrap();
    writer.set_merge_policy(Box::new(NoMergePolicy));
    for late in [false, true] {
        for (i, r) in records
            .iter()
            .filter(|(_, r)| r.split.ends_with('2') == late)
        {
            writer.add_document(document(&index, *i, r)).unwrap();
        }
        writer.commit().unwrap();
    }
    let searcher = index.reader().unwrap().searcher();
    let min = records.iter().map(|(_, r)| r.ts).min().map(Timestamp);
    let max = records.iter().map(|(_, r)| r.ts).max().map(Timestamp);
    SearchTarget::new(TargetKind::Split, id, searcher, min, max, None)
}

/// Three splits of two segments each, five records per segment, all at the same instant
/// except pods 0 and 29 (one nanosecond before and after): every order is decided by the
/// tie-break alone.
pub fn tied_snapshot() -> StreamSnapshot {
    let recs: Vec<Rec> = (0..30)
        .map(|i| {
            let split = ["x", "x2", "y", "y2", "z", "z2"][i / 5];
            let ts = T0 + i64::from(i == 29) - i64::from(i == 0);
            rec(split, ts, "payments", "info", "tied", None, i as u64)
        })
        .collect();
    let targets = ["z", "x", "y"]
        .into_iter()
        .map(|id| {
            let chosen: Vec<(usize, &Rec)> = recs
                .iter()
                .enumerate()
                .filter(|(_, r)| r.split.starts_with(id))
                .collect();
            split_of(id, &chosen)
        })
        .collect();
    snapshot_of(targets)
}

/// A snapshot of the logs stream over `targets`.
pub fn snapshot_of(targets: Vec<SearchTarget>) -> StreamSnapshot {
    let schema = build_schema(LOG_FIELDS);
    let message = schema.get_field("message").unwrap();
    StreamSnapshot {
        stream: "logs".to_string(),
        schema,
        default_fields: vec![message],
        tokenizers: tantivy::tokenizer::TokenizerManager::default(),
        targets,
    }
}

/// The three-split snapshot, targets deliberately out of id order.
pub fn snapshot() -> StreamSnapshot {
    snapshot_of(vec![
        split("c", |r| r.split.starts_with('c')),
        split("a", |r| r.split.starts_with('a')),
        split("b", |r| r.split.starts_with('b')),
    ])
}

/// A split of [`snapshot`] and two targets over its data and time bounds that a cache must
/// tell apart by kind, not by id: the hot index (its id a ULID, as the indexer's) and a split
/// whose id is "hot".
pub fn split_and_lookalikes() -> (SearchTarget, SearchTarget, SearchTarget) {
    let split = snapshot().targets[0].clone();
    assert_eq!(split.kind, TargetKind::Split);
    let like = |kind, id: &str| {
        let (min, max) = (split.min_timestamp, split.max_timestamp);
        SearchTarget::new(kind, id, split.searcher.clone(), min, max, None)
    };
    let hot = like(TargetKind::Hot, "01KBNZ3V8Q6W2J5N4R7T9X1Y0C");
    let named_hot = like(TargetKind::Split, "hot");
    (split, hot, named_hot)
}

/// Every record in one split of one segment: the reference answer for merges.
pub fn single_split_snapshot() -> StreamSnapshot {
    let index = Index::create_in_ram(build_schema(LOG_FIELDS));
    let mut writer: IndexWriter = index.writer_with_num_threads(1, 15_000_000).unwrap();
    for (i, r) in RECORDS.iter().enumerate() {
        writer.add_document(document(&index, i, r)).unwrap();
    }
    writer.commit().unwrap();
    let searcher = index.reader().unwrap().searcher();
    let min = RECORDS.iter().map(|r| r.ts).min().map(Timestamp);
    let max = RECORDS.iter().map(|r| r.ts).max().map(Timestamp);
    snapshot_of(vec![SearchTarget::new(
        TargetKind::Split,
        "all",
        searcher,
        min,
        max,
        None,
    )])
}

/// A [`StreamSource`] over one snapshot, answering for its stream (`snapshot.stream`) only:
/// the snapshot as it is whatever the time range, live tail from [`Fixture::tail`], and
/// statistics counting the snapshot's documents, with [`FIXTURE_BYTES`] bytes.
pub struct Fixture {
    pub snapshot: StreamSnapshot,
    /// What subscribers of the stream receive.
    pub tail: broadcast::Sender<Arc<TailBatch>>,
}

/// The index bytes the fixture reports for its stream.
pub const FIXTURE_BYTES: u64 = 4096;

impl Fixture {
    pub fn new(snapshot: StreamSnapshot) -> Fixture {
        Fixture::with_tail(snapshot, broadcast::channel(16).0)
    }

    /// A fixture whose subscribers receive what is sent on `tail`.
    pub fn with_tail(snapshot: StreamSnapshot, tail: broadcast::Sender<Arc<TailBatch>>) -> Fixture {
        Fixture { snapshot, tail }
    }

    fn known(&self, stream: &str) -> trawl_index::Result<()> {
        if stream == self.snapshot.stream {
            Ok(())
        } else {
            Err(trawl_index::Error::UnknownStream(stream.to_string()))
        }
    }
}

impl StreamSource for Fixture {
    fn snapshot(
        &self,
        stream: &str,
        _start: Option<Timestamp>,
        _end: Option<Timestamp>,
    ) -> trawl_index::Result<StreamSnapshot> {
        self.known(stream)?;
        Ok(self.snapshot.clone())
    }

    fn subscribe(&self, stream: &str) -> trawl_index::Result<broadcast::Receiver<Arc<TailBatch>>> {
        self.known(stream)?;
        Ok(self.tail.subscribe())
    }

    fn stream_stats(&self) -> Vec<StreamStats> {
        let targets = &self.snapshot.targets;
        vec![StreamStats {
            name: self.snapshot.stream.clone(),
            docs: targets.iter().map(|t| t.searcher.num_docs()).sum(),
            bytes: FIXTURE_BYTES,
            splits: targets.iter().filter(|t| !t.is_hot()).count(),
            min_timestamp: None,
            max_timestamp: None,
        }]
    }
}
