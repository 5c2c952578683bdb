//! The pipeline and the columnar reader against the simple reader: for every format, the same
//! bytes over the same snapshot, whatever the number of workers and whether fast fields are
//! read — over several splits and segments, blocks spanning segments of more than one block,
//! deleted documents, missing and multi-valued fields, keyword lists with duplicates and empty
//! strings, unicode and CSV-hostile text, objects, query filters, time bounds, limits,
//! projections and a namespace-scoped caller.

use std::collections::{BTreeMap, BTreeSet};

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type};
use arrow_array::Array;
use tantivy::indexer::NoMergePolicy;
use tantivy::schema::OwnedValue;
use tantivy::{DateTime, Index, IndexWriter, TantivyDocument, Term};
use trawl_index::schema::{build_generic_schema, build_schema};
use trawl_index::{SearchTarget, StreamSnapshot, TargetKind};
use trawl_model::schema::{FieldDef, FieldKind, AUDIT_FIELDS};
use trawl_model::Timestamp;

use super::*;
use crate::testutil::{self, T0};

const FORMATS: [ExportFormat; 4] = [
    ExportFormat::Arrow,
    ExportFormat::Parquet,
    ExportFormat::Csv,
    ExportFormat::Ndjson,
];

const READERS: [Reader; 4] = [
    Reader::Pipeline {
        workers: 1,
        fast: true,
    },
    Reader::Pipeline {
        workers: 2,
        fast: true,
    },
    Reader::Pipeline {
        workers: 3,
        fast: false,
    },
    Reader::Pipeline {
        workers: 4,
        fast: true,
    },
];

fn limits() -> QueryLimits {
    QueryLimits::default()
}

fn write(export: &Export, format: ExportFormat, reader: Reader) -> (Vec<u8>, u64) {
    let mut out = Vec::new();
    let rows = export
        .write_with(format, &mut out, &|| false, reader)
        .unwrap();
    (out, rows)
}

/// Every reader gives the simple reader's bytes for `request` in every format; returns the
/// number of rows.
fn assert_same(snapshot: &StreamSnapshot, request: &ExportRequest, scope: &Scope) -> u64 {
    let mut rows = None;
    for format in FORMATS {
        let mut request = request.clone();
        request.format = Some(format);
        let mut plan = request.clone().parse(Timestamp::now(), &limits()).unwrap();
        plan.request.scope = scope.clone();
        let export = Export::prepare(snapshot.clone(), &plan, &limits()).unwrap();
        let (expected, n) = write(&export, format, Reader::Simple);
        for reader in READERS {
            let (got, m) = write(&export, format, reader);
            assert_eq!(m, n, "{format:?} {reader:?} {request:?}");
            assert!(
                got == expected,
                "{format:?} {reader:?} {request:?}: {} bytes against {}",
                got.len(),
                expected.len()
            );
        }
        assert_eq!(*rows.get_or_insert(n), n, "{format:?} {request:?}");
    }
    rows.unwrap_or(0)
}

fn f(schema: &tantivy::schema::Schema, name: &str) -> tantivy::schema::Field {
    schema.get_field(name).unwrap()
}

/// Audit document `i`: every kind of value, some missing, some repeated.
fn audit_doc(schema: &tantivy::schema::Schema, i: u64) -> TantivyDocument {
    let mut doc = TantivyDocument::new();
    let n = i as i64;
    if i % 97 != 5 {
        doc.add_date(
            f(schema, "timestamp"),
            DateTime::from_timestamp_nanos(T0 + n * 1_000_003),
        );
    }
    if i.is_multiple_of(3) {
        doc.add_date(
            f(schema, "stage_timestamp"),
            DateTime::from_timestamp_nanos(T0 + n * 1_000_003 + 17),
        );
    }
    doc.add_i64(f(schema, "latency_ms"), (n % 11) - 5);
    doc.add_text(
        f(schema, "verb"),
        ["get", "list", "delete", "patch"][i as usize % 4],
    );
    let user = match i % 9 {
        0 => "del".to_string(),
        1 => format!("usér-ü-日本-{}", i % 7),
        2 => String::new(),
        _ => format!("system:serviceaccount:ns{}:sa{}", i % 5, i % 13),
    };
    doc.add_text(f(schema, "user"), &user);
    let groups = f(schema, "user_groups");
    match i % 6 {
        0 => {}
        1 => doc.add_text(groups, "system:authenticated"),
        2 => {
            for g in ["b", "a", "b", "system:masters"] {
                doc.add_text(groups, g);
            }
        }
        3 => {
            doc.add_text(groups, "");
            doc.add_text(groups, "ünï");
        }
        _ => doc.add_text(groups, format!("team-{}", i % 40)),
    }
    if i % 4 != 3 {
        doc.add_text(f(schema, "namespace"), format!("ns{}", i % 5));
    }
    if i % 50 == 7 {
        // A scalar field holding two values: its first is exported.
        doc.add_text(f(schema, "namespace"), "second");
        doc.add_i64(f(schema, "status_code"), 999);
    }
    doc.add_i64(
        f(schema, "status_code"),
        [200, 403, 404, 500][i as usize % 4],
    );
    if !i.is_multiple_of(5) {
        doc.add_text(
            f(schema, "status_message"),
            format!("timeout, \"quoted\"\nline two {i} — ünicode"),
        );
    }
    if i.is_multiple_of(2) {
        doc.add_bool(f(schema, "privileged"), i.is_multiple_of(4));
    }
    if i % 7 == 1 {
        let mut object = BTreeMap::new();
        object.insert(
            "authorization.k8s.io/decision".to_string(),
            OwnedValue::Str("forbid".into()),
        );
        object.insert("n".to_string(), OwnedValue::I64(-n));
        object.insert("ratio".to_string(), OwnedValue::F64(0.5 + n as f64));
        object.insert("ok".to_string(), OwnedValue::Bool(i.is_multiple_of(2)));
        object.insert(
            "list".to_string(),
            OwnedValue::Array(vec![OwnedValue::Str("x\"y".into()), OwnedValue::U64(i)]),
        );
        object.insert(
            "nested".to_string(),
            OwnedValue::Object(vec![("k".to_string(), OwnedValue::Str("日本".into()))]),
        );
        doc.add_object(f(schema, "annotations"), object);
    }
    doc
}

/// An audit split: `segments` of documents (ids from each range), those with `user:del`
/// deleted afterwards when `delete` is set.
fn audit_split(id: &str, segments: &[std::ops::Range<u64>], delete: bool) -> SearchTarget {
    let index = Index::create_in_ram(build_schema(AUDIT_FIELDS));
    let schema = index.schema();
    let mut writer: IndexWriter = index.writer_with_num_threads(1, 30_000_000).unwrap();
    writer.set_merge_policy(Box::new(NoMergePolicy));
    for range in segments {
        for i in range.clone() {
            writer.add_document(audit_doc(&schema, i)).unwrap();
        }
        writer.commit().unwrap();
    }
    if delete {
        writer.delete_term(Term::from_field_text(f(&schema, "user"), "del"));
        writer.commit().unwrap();
    }
    let searcher = index.reader().unwrap().searcher();
    SearchTarget::new(TargetKind::Split, id, searcher, None, None, None)
}

/// Three audit splits, out of id order: `s1` with a segment of more than two blocks and a
/// small one, `s2` with deletions, `s3` empty.
fn audit_snapshot() -> StreamSnapshot {
    let schema = build_schema(AUDIT_FIELDS);
    let default_fields = ["request_uri", "user", "name"]
        .iter()
        .map(|n| f(&schema, n))
        .collect();
    StreamSnapshot {
        stream: "audit".to_string(),
        schema,
        default_fields,
        tokenizers: tantivy::tokenizer::TokenizerManager::default(),
        targets: vec![
            audit_split("s3", &[], false),
            audit_split("s2", &[20_000..23_000, 23_000..23_500], true),
            audit_split(
                "s1",
                &[0..(2 * BLOCK_ROWS as u64 + 100), 17_000..17_500],
                false,
            ),
        ],
    }
}

fn req(q: &str) -> ExportRequest {
    ExportRequest {
        q: Some(q.to_string()),
        ..Default::default()
    }
}

#[test]
fn every_reader_gives_the_simple_readers_bytes() {
    let snap = audit_snapshot();
    let all = assert_same(&snap, &req("*"), &Scope::All);
    // Deleted documents are left out: a ninth of s2's.
    assert_eq!(all, 2 * BLOCK_ROWS as u64 + 100 + 500 + 3_500 - 389);

    let cases = [
        req("verb:get"),
        req("status_code:[400 TO 499] AND NOT user_groups:b"),
        req("status_message:timeout"),
        ExportRequest {
            start: Some("2023-11-14T22:13:00.005Z".into()),
            end: Some("2023-11-14T22:13:00.017Z".into()),
            ..req("*")
        },
        ExportRequest {
            limit: Some(BLOCK_ROWS as u64 + 17),
            ..req("*")
        },
        ExportRequest {
            limit: Some(3),
            ..req("verb:list")
        },
        // Fast fields only.
        ExportRequest {
            fields: Some(FieldList::Joined(
                "user_groups,timestamp,user,latency_ms,privileged,namespace,status_code".into(),
            )),
            ..req("*")
        },
        // Fast fields and stored ones mixed, in an order of their own.
        ExportRequest {
            fields: Some(FieldList::Joined(
                "annotations,status_message,user,stage_timestamp".into(),
            )),
            ..req("verb:delete OR verb:patch")
        },
        req("user:nobody"),
    ];
    for request in &cases {
        assert_same(&snap, request, &Scope::All);
    }
    // Sorted: the merge of every segment, both ways, with a limit across blocks.
    for sort in [SortOrder::Asc, SortOrder::Desc] {
        let sorted = ExportRequest {
            sort: Some(sort),
            ..req("*")
        };
        assert_eq!(assert_same(&snap, &sorted, &Scope::All), all);
        for request in &cases {
            let sorted = ExportRequest {
                sort: Some(sort),
                ..request.clone()
            };
            assert_same(&snap, &sorted, &Scope::All);
        }
    }
    let counts: Vec<u64> = cases[..3]
        .iter()
        .map(|r| assert_same(&snap, r, &Scope::All))
        .collect();
    assert!(counts.iter().all(|&n| n > 0), "{counts:?}");
}

#[test]
fn a_scoped_caller_sees_only_its_namespaces_on_every_reader() {
    let snap = audit_snapshot();
    let scope = Scope::Namespaces(BTreeSet::from(["ns1".to_string(), "second".to_string()]));
    let scoped = assert_same(&snap, &req("*"), &scope);
    let everything = assert_same(&snap, &req("*"), &Scope::All);
    assert!(
        scoped > 0 && scoped < everything,
        "{scoped} of {everything}"
    );
    // And the rows are exactly those of the namespace query.
    let unscoped = assert_same(
        &snap,
        &req("namespace:ns1 OR namespace:second"),
        &Scope::All,
    );
    assert_eq!(scoped, unscoped);
    let request = ExportRequest {
        format: Some(ExportFormat::Arrow),
        fields: Some(FieldList::Joined("namespace".into())),
        ..req("*")
    };
    let mut plan = request.parse(Timestamp::now(), &limits()).unwrap();
    plan.request.scope = scope;
    let export = Export::prepare(snap, &plan, &limits()).unwrap();
    let (bytes, _) = write(&export, ExportFormat::Arrow, READERS[1]);
    let reader =
        arrow_ipc::reader::StreamReader::try_new(std::io::Cursor::new(bytes), None).unwrap();
    let mut seen = BTreeSet::new();
    for batch in reader {
        let batch = batch.unwrap();
        let column = batch.column(0).as_string::<i32>();
        seen.extend(column.iter().map(|v| v.unwrap_or("<null>").to_string()));
    }
    // A document is in scope when any of its values is; its first value is exported.
    let expected = BTreeSet::from(["ns1", "ns2", "second"].map(String::from));
    assert_eq!(seen, expected);
}

#[test]
fn the_logs_fixture_is_the_same_on_every_reader() {
    let snap = testutil::snapshot();
    for q in [
        "*",
        "level:error",
        "connection AND labels.app.kubernetes.io/name:web",
    ] {
        let n = assert_same(&snap, &req(q), &Scope::All);
        assert!(n > 0, "{q}");
        let sorted = ExportRequest {
            sort: Some(SortOrder::Desc),
            ..req(q)
        };
        assert_eq!(assert_same(&snap, &sorted, &Scope::All), n, "{q}");
    }
    let fast_only = ExportRequest {
        fields: Some(FieldList::Joined("pod,offset,timestamp,namespace".into())),
        ..req("*")
    };
    assert_eq!(assert_same(&snap, &fast_only, &Scope::All), 12);
}

/// A generic stream: a float field, the dynamic object as a column, and dynamic paths as
/// columns (read from the stored object by every reader).
#[test]
fn a_generic_stream_is_the_same_on_every_reader() {
    let defs = [
        FieldDef::new("timestamp", FieldKind::Timestamp),
        FieldDef::new("ratio", FieldKind::F64),
        FieldDef::new("service", FieldKind::Keyword),
    ];
    let schema = build_generic_schema(&defs);
    let index = Index::create_in_ram(schema.clone());
    let mut writer: IndexWriter = index.writer_with_num_threads(1, 15_000_000).unwrap();
    for i in 0..300u32 {
        let mut doc = TantivyDocument::new();
        doc.add_date(
            f(&schema, "timestamp"),
            DateTime::from_timestamp_nanos(T0 + i64::from(i)),
        );
        if i % 3 != 0 {
            doc.add_f64(f(&schema, "ratio"), f64::from(i) / 7.0 - 3.0);
        }
        doc.add_text(f(&schema, "service"), format!("svc-{}", i % 4));
        let mut dynamic = BTreeMap::new();
        dynamic.insert(
            "version".to_string(),
            OwnedValue::Str(format!("1.{}", i % 5)),
        );
        if i.is_multiple_of(2) {
            dynamic.insert("user".to_string(), OwnedValue::U64(u64::from(i)));
        }
        doc.add_object(f(&schema, "_dynamic"), dynamic);
        writer.add_document(doc).unwrap();
    }
    writer.commit().unwrap();
    let target = SearchTarget::new(
        TargetKind::Split,
        "g",
        index.reader().unwrap().searcher(),
        None,
        None,
        None,
    );
    let snap = StreamSnapshot {
        stream: "gen".to_string(),
        schema,
        default_fields: Vec::new(),
        tokenizers: tantivy::tokenizer::TokenizerManager::default(),
        targets: vec![target],
    };
    assert_eq!(assert_same(&snap, &req("*"), &Scope::All), 300);
    let paths = ExportRequest {
        fields: Some(FieldList::Joined("ratio,version,service".into())),
        ..req("*")
    };
    assert_eq!(assert_same(&snap, &paths, &Scope::All), 300);
    let fast = ExportRequest {
        fields: Some(FieldList::Joined("ratio,timestamp".into())),
        format: Some(ExportFormat::Arrow),
        ..req("*")
    };
    assert_eq!(assert_same(&snap, &fast, &Scope::All), 300);
    // The float column holds the values themselves, nulls where absent.
    let plan = fast.parse(Timestamp::now(), &limits()).unwrap();
    let export = Export::prepare(snap, &plan, &limits()).unwrap();
    let (bytes, _) = write(&export, ExportFormat::Arrow, READERS[1]);
    let batch = arrow_ipc::reader::StreamReader::try_new(std::io::Cursor::new(bytes), None)
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    let ratio = batch.column(0).as_primitive::<Float64Type>();
    assert!(ratio.is_null(0));
    assert_eq!(ratio.value(7), 7.0 / 7.0 - 3.0);
}

/// Fast-field columns do not open the doc store; a stored-only column does.
#[test]
fn fast_columns_leave_the_doc_store_alone() {
    let snap = audit_snapshot();
    let target = &snap.targets[2];
    let segment = &target.searcher.segment_readers()[0];
    let layout = |fields: &[&str]| {
        let names: Vec<String> = fields.iter().map(|s| s.to_string()).collect();
        arrow::Layout::for_stream(&snap.schema, Some(&names), &list_fields("audit")).unwrap()
    };
    let no_store = || -> Result<tantivy::store::StoreReader> {
        Err(Error::Internal("the doc store was opened".into()))
    };
    let fast = layout(&[
        "timestamp",
        "user",
        "user_groups",
        "latency_ms",
        "privileged",
    ]);
    let mut columns = columns::SegmentColumns::open(&fast, segment, no_store, true).unwrap();
    assert!(!columns.reads_store());
    let docs: Vec<u32> = (0..100).collect();
    let batch = columns.batch(&fast, &docs).unwrap();
    assert_eq!(batch.num_rows(), 100);
    let latency = batch.column(3).as_primitive::<Int64Type>();
    assert_eq!(latency.value(12), 12 % 11 - 5);
    let groups = batch.column(2).as_list::<i32>();
    let third = groups.value(2);
    let third: Vec<&str> = third.as_string::<i32>().iter().flatten().collect();
    assert_eq!(third, ["b", "a", "b", "system:masters"]);
    assert!(groups.is_null(0));

    let mixed = layout(&["user", "status_message"]);
    assert!(columns::SegmentColumns::open(&mixed, segment, no_store, true).is_err());
    let open_store = || store_reader_of(target, segment);
    let columns = columns::SegmentColumns::open(&mixed, segment, open_store, true).unwrap();
    assert!(columns.reads_store());
}

fn store_reader_of(
    target: &SearchTarget,
    segment: &tantivy::SegmentReader,
) -> Result<tantivy::store::StoreReader> {
    walk::store_reader(segment, target)
}

/// A sorted export cut into windows of time (as one of more than a million matches is) gives
/// the bytes of the same export sorted at once, on the simple reader and the pipeline, both
/// ways, with limits that end inside a window and windows smaller than a block; documents
/// without a time included.
#[test]
fn sorted_exports_in_windows_give_the_bytes_of_one_sort() {
    let snap = audit_snapshot();
    let requests = [
        req("*"),
        ExportRequest {
            limit: Some(BLOCK_ROWS as u64 + 17),
            ..req("*")
        },
        ExportRequest {
            limit: Some(5),
            ..req("verb:delete OR verb:patch")
        },
    ];
    for sort in [SortOrder::Asc, SortOrder::Desc] {
        for request in &requests {
            // Arrow's record batches show whether blocks carry over windows; NDJSON, each row.
            for format in [ExportFormat::Arrow, ExportFormat::Ndjson] {
                let mut request = ExportRequest {
                    sort: Some(sort),
                    ..request.clone()
                };
                request.format = Some(format);
                let plan = request.clone().parse(Timestamp::now(), &limits()).unwrap();
                let export = Export::prepare(snap.clone(), &plan, &limits()).unwrap();
                let readers = [Reader::Simple, READERS[0]];
                let at_once: Vec<(Vec<u8>, u64)> =
                    readers.iter().map(|r| write(&export, format, *r)).collect();
                assert!(at_once[0].1 > 0, "{request:?}");
                // About 10 and 3 windows of the 20,000 documents, each less than a block.
                for window in [2_000, 7_000] {
                    walk::WINDOW_ROWS_FOR_TESTS.with(|w| w.set(Some(window)));
                    for (reader, expected) in readers.iter().zip(&at_once) {
                        walk::WINDOWS_FOR_TESTS.with(|w| w.set(0));
                        let got = write(&export, format, *reader);
                        let windows = walk::WINDOWS_FOR_TESTS.with(std::cell::Cell::get);
                        // The walk ran here, cut into windows (a limit may end it in the first).
                        assert!(
                            windows > 1 || request.limit.is_some(),
                            "{window} {reader:?} {request:?}: {windows}"
                        );
                        assert_eq!(got.1, expected.1, "{window} {reader:?} {request:?}");
                        assert!(
                            got.0 == expected.0,
                            "{window} {reader:?} {request:?}: {} bytes against {}",
                            got.0.len(),
                            expected.0.len()
                        );
                    }
                    walk::WINDOW_ROWS_FOR_TESTS.with(|w| w.set(None));
                }
            }
        }
    }
}
