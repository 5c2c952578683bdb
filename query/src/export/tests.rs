//! Exports checked against search: the same query in all four formats over the three-split
//! fixture, read back with the Arrow and Parquet readers, sorted exports in the exact order of
//! search hits, aggregation tables, cancellation, Parquet row-group sizes, and the routes.

use std::io::Cursor as IoCursor;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use ::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use arrow_array::cast::AsArray;
use arrow_array::types::{Int64Type, TimestampNanosecondType, UInt64Type};
use arrow_array::{Array, RecordBatch};
use arrow_schema::{DataType, TimeUnit};
use axum::body::{to_bytes, Body};
use axum::http::{Request, StatusCode};
use serde_json::{json, Map, Value};
use tantivy::{DateTime, Index, IndexWriter, TantivyDocument};
use tower::ServiceExt;
use trawl_index::schema::build_schema;
use trawl_index::{SearchTarget, StreamSnapshot, TargetKind};
use trawl_model::schema::LOG_FIELDS;
use trawl_model::Timestamp;

use super::*;
use crate::testutil::{snapshot, Fixture, ASC_ORDER, RECORDS};

fn limits() -> QueryLimits {
    QueryLimits::default()
}

fn plan(request: ExportRequest) -> ExportPlan {
    request.parse(Timestamp::now(), &limits()).unwrap()
}

fn export_bytes_of(snapshot: StreamSnapshot, request: ExportRequest) -> (Vec<u8>, u64) {
    let plan = plan(request);
    let export = Export::prepare(snapshot, &plan, &limits()).unwrap();
    let mut out = Vec::new();
    let rows = export.write_to(plan.format, &mut out, &|| false).unwrap();
    (out, rows)
}

fn export_bytes(request: ExportRequest) -> (Vec<u8>, u64) {
    export_bytes_of(snapshot(), request)
}

fn request(q: &str, format: ExportFormat) -> ExportRequest {
    ExportRequest {
        q: Some(q.to_string()),
        format: Some(format),
        ..Default::default()
    }
}

/// Every hit of `q` as search returns it, ascending.
fn search_hits(q: &str) -> Vec<Map<String, Value>> {
    let req = SearchRequest {
        q: Some(q.to_string()),
        limit: Some(1000),
        sort: Some(SortOrder::Asc),
        ..Default::default()
    }
    .parse(Timestamp::now(), &limits())
    .unwrap();
    search(&snapshot(), &req, &limits()).unwrap().hits
}

fn by_pod(mut records: Vec<Map<String, Value>>) -> Vec<Map<String, Value>> {
    records.sort_by(|a, b| a["pod"].as_str().cmp(&b["pod"].as_str()));
    records
}

/// The rows of Arrow record batches as the flat JSON records search returns: timestamps in
/// RFC 3339, JSON columns parsed, nulls omitted.
fn records_of(batches: &[RecordBatch]) -> Vec<Map<String, Value>> {
    let mut out = Vec::new();
    for batch in batches {
        let schema = batch.schema();
        for row in 0..batch.num_rows() {
            let mut record = Map::new();
            for (i, field) in schema.fields().iter().enumerate() {
                let column = batch.column(i);
                if column.is_null(row) {
                    continue;
                }
                let value = match field.data_type() {
                    DataType::Timestamp(TimeUnit::Nanosecond, Some(tz)) if tz.as_ref() == "UTC" => {
                        let nanos = column.as_primitive::<TimestampNanosecondType>().value(row);
                        Value::String(Timestamp(nanos).to_rfc3339())
                    }
                    DataType::Utf8 => {
                        let text = column.as_string::<i32>().value(row);
                        match field.name().as_str() {
                            "labels" | "attributes" => serde_json::from_str(text).unwrap(),
                            _ => Value::String(text.to_string()),
                        }
                    }
                    DataType::UInt64 => json!(column.as_primitive::<UInt64Type>().value(row)),
                    DataType::Int64 => json!(column.as_primitive::<Int64Type>().value(row)),
                    other => panic!("unexpected column type {other}"),
                };
                record.insert(field.name().clone(), value);
            }
            out.push(record);
        }
    }
    out
}

fn read_arrow(bytes: &[u8]) -> Vec<RecordBatch> {
    arrow_ipc::reader::StreamReader::try_new(IoCursor::new(bytes.to_vec()), None)
        .unwrap()
        .map(|b| b.unwrap())
        .collect()
}

fn read_parquet(bytes: &[u8]) -> (Vec<RecordBatch>, Vec<i64>) {
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes.to_vec())).unwrap();
    let groups = builder
        .metadata()
        .row_groups()
        .iter()
        .map(|g| g.num_rows())
        .collect();
    let batches = builder.build().unwrap().map(|b| b.unwrap()).collect();
    (batches, groups)
}

fn read_ndjson(bytes: &[u8]) -> Vec<Map<String, Value>> {
    std::str::from_utf8(bytes)
        .unwrap()
        .lines()
        .map(|line| match serde_json::from_str(line).unwrap() {
            Value::Object(map) => map,
            other => panic!("not an object: {other}"),
        })
        .collect()
}

fn read_csv(bytes: &[u8]) -> (Vec<String>, Vec<Vec<String>>) {
    let mut reader = ::csv::Reader::from_reader(bytes);
    let header = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_string)
        .collect();
    let rows = reader
        .records()
        .map(|r| r.unwrap().iter().map(str::to_string).collect())
        .collect();
    (header, rows)
}

/// The same query in all four formats: exactly the search hits, every value equal.
#[test]
fn all_formats_match_search() {
    for q in [
        "level:error",
        "*",
        "connection AND labels.app.kubernetes.io/name:web",
    ] {
        let expected = by_pod(search_hits(q));
        assert!(!expected.is_empty(), "{q}");
        let n = expected.len() as u64;

        let (bytes, rows) = export_bytes(request(q, ExportFormat::Arrow));
        assert_eq!(rows, n, "{q}");
        let batches = read_arrow(&bytes);
        assert_eq!(by_pod(records_of(&batches)), expected, "arrow {q}");

        let (bytes, rows) = export_bytes(request(q, ExportFormat::Parquet));
        assert_eq!(rows, n, "{q}");
        assert_eq!(&bytes[..4], b"PAR1");
        let (batches, groups) = read_parquet(&bytes);
        assert_eq!(groups, vec![n as i64], "{q}");
        assert_eq!(by_pod(records_of(&batches)), expected, "parquet {q}");

        let (bytes, rows) = export_bytes(request(q, ExportFormat::Ndjson));
        assert_eq!(rows, n, "{q}");
        assert_eq!(by_pod(read_ndjson(&bytes)), expected, "ndjson {q}");

        let (bytes, rows) = export_bytes(request(q, ExportFormat::Csv));
        assert_eq!(rows, n, "{q}");
        let (header, csv_rows) = read_csv(&bytes);
        let names: Vec<&str> = LOG_FIELDS.iter().map(|f| f.name()).collect();
        assert_eq!(header, names);
        let mut csv_records: Vec<Map<String, Value>> = csv_rows
            .into_iter()
            .map(|row| {
                header
                    .iter()
                    .zip(row)
                    .filter(|(_, cell)| !cell.is_empty())
                    .map(|(name, cell)| (name.clone(), Value::String(cell)))
                    .collect()
            })
            .collect();
        csv_records = by_pod(csv_records);
        let as_text: Vec<Map<String, Value>> = expected
            .iter()
            .map(|hit| {
                hit.iter()
                    .map(|(k, v)| {
                        let text = match v {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        };
                        (k.clone(), Value::String(text))
                    })
                    .collect()
            })
            .collect();
        assert_eq!(csv_records, as_text, "csv {q}");
    }
}

#[test]
fn arrow_column_types() {
    let (bytes, _) = export_bytes(request("*", ExportFormat::Arrow));
    let batches = read_arrow(&bytes);
    let schema = batches[0].schema();
    let ty = |name: &str| schema.field_with_name(name).unwrap().data_type().clone();
    assert_eq!(
        ty("timestamp"),
        DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into()))
    );
    assert_eq!(ty("namespace"), DataType::Utf8);
    assert_eq!(ty("message"), DataType::Utf8);
    assert_eq!(ty("labels"), DataType::Utf8);
    assert_eq!(ty("offset"), DataType::UInt64);
    assert!(schema.field_with_name("_id").is_err());
}

#[test]
fn keyword_lists_are_lists() {
    let schema = build_schema(trawl_model::schema::AUDIT_FIELDS);
    let layout = arrow::Layout::for_stream(
        &schema,
        Some(&["user_groups".to_string(), "status_code".to_string()]),
        &list_fields("audit"),
    )
    .unwrap();
    let mut doc = TantivyDocument::new();
    doc.add_text(schema.get_field("user_groups").unwrap(), "system:masters");
    doc.add_text(schema.get_field("user_groups").unwrap(), "dev");
    doc.add_i64(schema.get_field("status_code").unwrap(), 403);
    let batch = layout
        .batch_of_docs(&[doc, TantivyDocument::new()])
        .unwrap();
    let groups = batch.column(0).as_list::<i32>();
    let first = groups.value(0);
    let first = first.as_string::<i32>();
    assert_eq!((first.value(0), first.value(1)), ("system:masters", "dev"));
    assert!(groups.is_null(1));
    let codes = batch.column(1).as_primitive::<Int64Type>();
    assert_eq!(codes.value(0), 403);
    assert!(codes.is_null(1));
}

fn pods_of(bytes: &[u8]) -> Vec<usize> {
    read_ndjson(bytes)
        .iter()
        .map(|r| r["pod"].as_str().unwrap()[1..].parse().unwrap())
        .collect()
}

/// `sort=asc|desc` gives exactly the order of search hits, ties included.
#[test]
fn sorted_exports_follow_the_hit_order() {
    let mut req = ExportRequest {
        fields: Some(FieldList::Joined("pod".into())),
        sort: Some(SortOrder::Asc),
        ..Default::default()
    };
    let (bytes, _) = export_bytes(req.clone());
    assert_eq!(pods_of(&bytes), ASC_ORDER);
    req.sort = Some(SortOrder::Desc);
    let (bytes, _) = export_bytes(req.clone());
    let desc: Vec<usize> = ASC_ORDER.iter().rev().copied().collect();
    assert_eq!(pods_of(&bytes), desc);

    // The same as a search's own order, with a query and time bounds.
    let search_req = SearchRequest {
        q: Some("* -level:debug".into()),
        start: Some("2023-11-14T22:14:00.000000001Z".into()),
        sort: Some(SortOrder::Desc),
        limit: Some(100),
        fields: Some(FieldList::Joined("pod".into())),
        ..Default::default()
    };
    let parsed = search_req
        .clone()
        .parse(Timestamp::now(), &limits())
        .unwrap();
    let hits = search(&snapshot(), &parsed, &limits()).unwrap().hits;
    let (bytes, rows) = export_bytes(ExportRequest {
        q: search_req.q,
        start: search_req.start,
        sort: Some(SortOrder::Desc),
        fields: search_req.fields,
        ..Default::default()
    });
    assert_eq!(rows, hits.len() as u64);
    assert_eq!(read_ndjson(&bytes), hits);

    // A limit takes the first records of the order.
    req.sort = Some(SortOrder::Asc);
    req.limit = Some(5);
    let (bytes, rows) = export_bytes(req);
    assert_eq!(rows, 5);
    assert_eq!(pods_of(&bytes), ASC_ORDER[..5]);
}

#[test]
fn unsorted_export_goes_split_by_split_in_doc_order() {
    let (bytes, rows) = export_bytes(ExportRequest {
        fields: Some(FieldList::Joined("pod".into())),
        ..Default::default()
    });
    assert_eq!(rows, 12);
    // Splits a, b, c in id order; in each, segment by segment in doc order.
    assert_eq!(pods_of(&bytes), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
}

/// Projected columns come in the requested order, in every format.
#[test]
fn projection_order() {
    let mut req = request("level:fatal", ExportFormat::Csv);
    req.fields = Some(FieldList::Joined("offset,pod,timestamp".into()));
    let (bytes, _) = export_bytes(req.clone());
    assert_eq!(
        std::str::from_utf8(&bytes).unwrap(),
        "offset,pod,timestamp\n100,p11,2023-11-14T22:19:00.000000000Z\n"
    );
    req.format = Some(ExportFormat::Arrow);
    let (bytes, _) = export_bytes(req);
    let batches = read_arrow(&bytes);
    let names: Vec<String> = batches[0]
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(names, ["offset", "pod", "timestamp"]);
}

#[test]
fn csv_quoting_is_rfc4180() {
    let index = Index::create_in_ram(build_schema(LOG_FIELDS));
    let schema = index.schema();
    let mut writer: IndexWriter = index.writer_with_num_threads(1, 15_000_000).unwrap();
    let mut doc = TantivyDocument::new();
    doc.add_text(schema.get_field("pod").unwrap(), "a,b");
    doc.add_text(
        schema.get_field("message").unwrap(),
        "said \"hi\"\nthen left",
    );
    writer.add_document(doc).unwrap();
    writer.commit().unwrap();
    let target = SearchTarget::new(
        TargetKind::Split,
        "t",
        index.reader().unwrap().searcher(),
        None,
        None,
        None,
    );
    let snap = StreamSnapshot {
        targets: vec![target],
        ..snapshot()
    };
    let mut req = request("*", ExportFormat::Csv);
    req.fields = Some(FieldList::Joined("pod,message,level".into()));
    let (bytes, _) = export_bytes_of(snap, req);
    assert_eq!(
        std::str::from_utf8(&bytes).unwrap(),
        "pod,message,level\n\"a,b\",\"said \"\"hi\"\"\nthen left\",\n"
    );
}

fn agg_request(format: ExportFormat) -> ExportRequest {
    ExportRequest {
        q: Some("* -level:debug".into()),
        format: Some(format),
        aggs: Some(json!({
            "ns": {
                "terms": {"field": "namespace", "order": {"_key": "asc"}},
                "aggs": {
                    "level": {"terms": {"field": "level", "order": {"_key": "asc"}}},
                    "max_offset": {"max": {"field": "offset"}}
                }
            }
        })),
        ..Default::default()
    }
}

/// The expected (namespace, level) counts of the aggregation fixture query.
fn expected_agg_rows() -> Vec<(String, i64, String, i64)> {
    let kept: Vec<_> = RECORDS.iter().filter(|r| r.level != "debug").collect();
    let mut pairs: Vec<(&str, &str)> = kept.iter().map(|r| (r.namespace, r.level)).collect();
    pairs.sort_unstable();
    pairs.dedup();
    pairs
        .into_iter()
        .map(|(ns, level)| {
            let ns_count = kept.iter().filter(|r| r.namespace == ns).count() as i64;
            let count = kept
                .iter()
                .filter(|r| r.namespace == ns && r.level == level)
                .count() as i64;
            (ns.to_string(), ns_count, level.to_string(), count)
        })
        .collect()
}

#[test]
fn aggregation_export_is_a_row_per_bucket() {
    let expected = expected_agg_rows();
    assert_eq!(expected.len(), 6);

    let (bytes, rows) = export_bytes(agg_request(ExportFormat::Ndjson));
    assert_eq!(rows, expected.len() as u64);
    let records = read_ndjson(&bytes);
    let got: Vec<(String, i64, String, i64)> = records
        .iter()
        .map(|r| {
            (
                r["ns"].as_str().unwrap().to_string(),
                r["ns.doc_count"].as_i64().unwrap(),
                r["level"].as_str().unwrap().to_string(),
                r["level.doc_count"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(got, expected);
    assert_eq!(records[0]["max_offset"], json!(100.0));
    assert_eq!(records[1]["max_offset"], json!(20.0));

    let (bytes, _) = export_bytes(agg_request(ExportFormat::Csv));
    let (header, csv_rows) = read_csv(&bytes);
    assert_eq!(
        header,
        [
            "ns",
            "ns.doc_count",
            "max_offset",
            "level",
            "level.doc_count"
        ]
    );
    assert_eq!(csv_rows[0], ["kube-system", "1", "100.0", "fatal", "1"]);

    let (bytes, _) = export_bytes(agg_request(ExportFormat::Parquet));
    let (batches, _) = read_parquet(&bytes);
    let batch = &batches[0];
    assert_eq!(batch.num_rows(), expected.len());
    assert_eq!(batch.schema().field(1).data_type(), &DataType::Int64);
    assert_eq!(batch.schema().field(2).data_type(), &DataType::Float64);
    let levels = batch.column(3).as_string::<i32>();
    let counts = batch.column(4).as_primitive::<Int64Type>();
    for (i, (_, _, level, count)) in expected.iter().enumerate() {
        assert_eq!((levels.value(i), counts.value(i)), (level.as_str(), *count));
    }
}

/// A snapshot of one split holding `n` minimal records, `pod` = `q<i>`, one second apart.
fn big_snapshot(n: usize) -> StreamSnapshot {
    let index = Index::create_in_ram(build_schema(LOG_FIELDS));
    let schema = index.schema();
    let (ts, pod) = (
        schema.get_field("timestamp").unwrap(),
        schema.get_field("pod").unwrap(),
    );
    let mut writer: IndexWriter = index.writer_with_num_threads(1, 50_000_000).unwrap();
    for i in 0..n {
        let mut doc = TantivyDocument::new();
        doc.add_date(ts, DateTime::from_timestamp_nanos(i as i64 * 1_000_000_000));
        doc.add_text(pod, format!("q{i}"));
        writer.add_document(doc).unwrap();
    }
    writer.commit().unwrap();
    let target = SearchTarget::new(
        TargetKind::Split,
        "big",
        index.reader().unwrap().searcher(),
        None,
        None,
        None,
    );
    StreamSnapshot {
        targets: vec![target],
        ..snapshot()
    }
}

/// Parquet row groups stay at 64k rows instead of the library's million.
#[test]
fn parquet_row_groups_are_bounded() {
    let n = ROW_GROUP_ROWS + 1000;
    let mut req = request("*", ExportFormat::Parquet);
    req.fields = Some(FieldList::Joined("timestamp".into()));
    req.sort = Some(SortOrder::Asc);
    let (bytes, rows) = export_bytes_of(big_snapshot(n), req);
    assert_eq!(rows, n as u64);
    let (batches, groups) = read_parquet(&bytes);
    assert_eq!(groups, vec![ROW_GROUP_ROWS as i64, 1000]);
    let last = batches.last().unwrap();
    let ts = last.column(0).as_primitive::<TimestampNanosecondType>();
    assert_eq!(ts.value(ts.len() - 1), (n as i64 - 1) * 1_000_000_000);
}

/// A write that records that bytes went out.
struct Flagging<'a>(Vec<u8>, &'a AtomicBool);

impl std::io::Write for Flagging<'_> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(data);
        self.1.store(true, Ordering::SeqCst);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A cancelled export stops at the next block, sorted or not.
#[test]
fn cancellation_stops_at_the_next_block() {
    let snap = big_snapshot(3 * BLOCK_ROWS);
    for sort in [None, Some(SortOrder::Desc)] {
        let mut req = request("*", ExportFormat::Ndjson);
        req.sort = sort;
        req.fields = Some(FieldList::Joined("pod".into()));
        let plan = plan(req);
        let export = Export::prepare(snap.clone(), &plan, &limits()).unwrap();
        let wrote = AtomicBool::new(false);
        let mut out = Flagging(Vec::new(), &wrote);
        let rows = export
            .write_to(plan.format, &mut out, &|| wrote.load(Ordering::SeqCst))
            .unwrap();
        assert_eq!(rows, BLOCK_ROWS as u64, "{sort:?}");
        assert_eq!(read_ndjson(&out.0).len(), BLOCK_ROWS, "{sort:?}");
    }
}

async fn call(request: Request<Body>) -> (StatusCode, String, Vec<u8>) {
    let app = routes(Arc::new(Fixture::new(snapshot())), limits());
    let response = app.oneshot(request).await.unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body = to_bytes(response.into_body(), 1 << 24).await.unwrap();
    (status, content_type, body.to_vec())
}

#[tokio::test]
async fn get_export_route() {
    let (status, content_type, body) = call(
        Request::get("/api/v1/logs/export?q=level:error&format=arrow&sort=asc&fields=pod")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type, "application/vnd.apache.arrow.stream");
    let pods: Vec<Value> = records_of(&read_arrow(&body))
        .into_iter()
        .map(|r| r["pod"].clone())
        .collect();
    assert_eq!(
        pods,
        [
            json!("p0"),
            json!("p4"),
            json!("p3"),
            json!("p7"),
            json!("p9")
        ]
    );

    let (status, content_type, body) = call(
        Request::get("/api/v1/logs/export")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type, "application/x-ndjson");
    assert_eq!(read_ndjson(&body).len(), 12);
}

#[tokio::test]
async fn post_export_route_with_aggs() {
    let body = agg_request(ExportFormat::Arrow);
    let body = json!({"q": body.q, "aggs": body.aggs, "format": "arrow"});
    let (status, content_type, bytes) = call(
        Request::post("/api/v1/logs/export?format=csv")
            .body(Body::from(body.to_string()))
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type, "text/csv; charset=utf-8");
    let (_, rows) = read_csv(&bytes);
    assert_eq!(rows.len(), expected_agg_rows().len());
}

#[tokio::test]
async fn export_errors_are_json() {
    let cases = [
        ("/api/v1/logs/export?q=level:(error", 400, "invalid_query"),
        ("/api/v1/logs/export?format=xml", 400, "invalid_argument"),
        ("/api/v1/logs/export?fields=nope", 400, "invalid_argument"),
        ("/api/v1/logs/export?aggs=x", 400, "invalid_argument"),
        ("/api/v1/nope/export", 404, "unknown_stream"),
    ];
    for (uri, status, code) in cases {
        let (got, content_type, body) = call(Request::get(uri).body(Body::empty()).unwrap()).await;
        assert_eq!(got.as_u16(), status, "{uri}");
        assert_eq!(content_type, "application/json", "{uri}");
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"]["code"], json!(code), "{uri}: {body}");
    }
    let (status, _, body) = call(
        Request::post("/api/v1/logs/export")
            .body(Body::from(r#"{"aggs": {"x": {"nope": {}}}}"#))
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["error"]["code"], json!("invalid_aggregation"));
}

/// A split's doc store is read from its file with positioned reads (not through the mmap):
/// the export is the same, sorted and unsorted, as through the searcher's own store reader.
#[test]
fn a_split_export_reads_its_store_file_and_matches_the_searcher() {
    let dir = tempfile::tempdir().unwrap();
    let index = Index::create_in_dir(dir.path(), build_schema(LOG_FIELDS)).unwrap();
    let schema = index.schema();
    let (ts, pod, message) = (
        schema.get_field("timestamp").unwrap(),
        schema.get_field("pod").unwrap(),
        schema.get_field("message").unwrap(),
    );
    let mut writer: IndexWriter = index.writer_with_num_threads(1, 15_000_000).unwrap();
    // Two segments, enough documents for several doc-store blocks each.
    for round in 0..2 {
        for i in 0..3_000 {
            let mut doc = TantivyDocument::new();
            let n = round * 3_000 + i;
            doc.add_date(
                ts,
                DateTime::from_timestamp_nanos((n * 7 % 6_000) * 1_000_000),
            );
            doc.add_text(pod, format!("p{n}"));
            doc.add_text(
                message,
                format!("line {n} {}", "x".repeat(n as usize % 200)),
            );
            writer.add_document(doc).unwrap();
        }
        writer.commit().unwrap();
    }
    let searcher = index.reader().unwrap().searcher();
    assert_eq!(searcher.segment_readers().len(), 2);
    let snapshot_with = |with_dir: bool| {
        let target = SearchTarget::new(
            TargetKind::Split,
            "split",
            searcher.clone(),
            None,
            None,
            None,
        );
        let target = match with_dir {
            true => target.with_dir(dir.path().to_path_buf()),
            false => target,
        };
        StreamSnapshot {
            targets: vec![target],
            ..snapshot()
        }
    };
    for sort in [None, Some(SortOrder::Desc)] {
        let mut req = request("*", ExportFormat::Ndjson);
        req.sort = sort;
        let (through_file, rows) = export_bytes_of(snapshot_with(true), req.clone());
        assert_eq!(rows, 6_000);
        let (through_searcher, _) = export_bytes_of(snapshot_with(false), req);
        assert_eq!(through_file, through_searcher);
        let records = read_ndjson(&through_file);
        assert_eq!(records.len(), 6_000);
        assert!(records[42]["message"]
            .as_str()
            .unwrap()
            .starts_with("line "));
    }
    // A store file that moved away (a hot index sealed meanwhile) is read through the
    // searcher instead; a damaged one is an error naming it.
    let store = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "store"))
        .unwrap();
    let moved = dir.path().join("moved");
    std::fs::rename(&store, &moved).unwrap();
    let req = request("*", ExportFormat::Ndjson);
    let (bytes, rows) = export_bytes_of(snapshot_with(true), req.clone());
    assert_eq!(rows, 6_000);
    assert_eq!(bytes, export_bytes_of(snapshot_with(false), req).0);
    std::fs::write(&store, b"not a doc store").unwrap();
    let plan = plan(request("*", ExportFormat::Ndjson));
    let export = Export::prepare(snapshot_with(true), &plan, &limits()).unwrap();
    let err = export
        .write_to(plan.format, Vec::new(), &|| false)
        .unwrap_err();
    assert!(err.to_string().contains(".store"), "{err}");
}
