//! Exports through a searcher: `GET|POST /api/v1/{stream}/export` on the stateless root asks
//! every indexer for its part of the export and streams the parts one after the other as one
//! file of the requested format.
//!
//! ```text
//! client --> root: validate, resolve times once
//!   --> with a shared tier: list its published splits, export them here (own part, first)
//!   --> each indexer: POST export (arrow | csv | ndjson), those splits left out
//!   --> blocking thread: read part 1, part 2, ... --> re-encode (arrow, parquet) or copy (csv
//!   without its repeated header, ndjson) --> bounded channel --> chunked HTTP body
//! ```
//!
//! With a shared tier (`[storage]` and a PostgreSQL `[metastore]`), the root exports the
//! published splits of the range itself, opened through its split cache as its searches open
//! them, and tells the indexers what it covers ([`Excluded`]), which leave those out and any
//! merge of them: each record comes once, and what only the shared tier holds (the
//! sealed splits of an indexer whose volume was lost) is exported. The root's own part is
//! encoded on a blocking thread into a bounded pipe while the merge reads it.
//!
//! Arrow and Parquet are re-encoded from the parts' Arrow IPC streams batch by batch, CSV
//! and NDJSON are copied record by record, so the root holds one batch at a time whatever the
//! export's size. The time bounds are resolved at the root (`now-1h` means the same instant on
//! every indexer), `limit` is applied across the parts, and the caller's resolved scope is
//! sent with each part's request ([`crate::fanin::Caller`]), so that each indexer scopes its
//! part as it would a direct export (the root's own part keeps to the same scope). Every
//! indexer, and the shared tier when there is one, must answer: a part that cannot be opened
//! is a 503 before the first byte, and a part that breaks later aborts the chunked body, so
//! that an export is complete or visibly truncated, never silently partial. Sorted exports and
//! aggregation exports are refused here with a 400 that says what to do instead.

use std::io::{self, Read, Write};
use std::sync::Arc;

use arrow_array::RecordBatch;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use trawl_model::Timestamp;

use crate::access::Scope;
use crate::error::{Error, Result};
use crate::export::{ChunkWriter, Export, ExportFormat, ExportPlan, ExportRequest, CHANNEL_CHUNKS};
use crate::fanin::{Caller, FanIn};
use crate::remote::{Excluded, RemoteSplits};
use crate::request::{json_or_default, FieldList, QueryLimits};

/// State of the root's export routes.
#[derive(Clone)]
pub(crate) struct RootExport {
    pub fanin: FanIn,
    pub limits: QueryLimits,
    /// The shared tier's published splits, exported by the root itself.
    pub remote: Option<Arc<RemoteSplits>>,
}

/// `?format=` of a POST export.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FormatParam {
    format: Option<ExportFormat>,
}

pub(crate) async fn get_export(
    State(state): State<RootExport>,
    scope: Scope,
    Path(stream): Path<String>,
    headers: HeaderMap,
    query: std::result::Result<Query<ExportRequest>, QueryRejection>,
) -> Response {
    let request = query.map(|Query(r)| r).map_err(Error::from);
    let caller = Caller::new(&state.fanin, scope, &headers);
    respond(state, stream, caller, request).await
}

pub(crate) async fn post_export(
    State(state): State<RootExport>,
    scope: Scope,
    Path(stream): Path<String>,
    headers: HeaderMap,
    param: std::result::Result<Query<FormatParam>, QueryRejection>,
    body: std::result::Result<Bytes, BytesRejection>,
) -> Response {
    let request = param.map_err(Error::from).and_then(|Query(param)| {
        let mut request = json_or_default::<ExportRequest>(body)?;
        if param.format.is_some() {
            request.format = param.format;
        }
        Ok(request)
    });
    let caller = Caller::new(&state.fanin, scope, &headers);
    respond(state, stream, caller, request).await
}

async fn respond(
    state: RootExport,
    stream: String,
    caller: Caller,
    request: Result<ExportRequest>,
) -> Response {
    match start(state, stream, caller, request).await {
        Ok(response) => response,
        Err(err) => err.into_response(),
    }
}

/// The format each part is read in: Arrow IPC for Arrow and Parquet (re-encoded at the root).
fn part_format(format: ExportFormat) -> ExportFormat {
    match format {
        ExportFormat::Arrow | ExportFormat::Parquet => ExportFormat::Arrow,
        other => other,
    }
}

/// The validated plan and the body each indexer is asked with (`POST`): times resolved, the
/// part's format. Aggregation and sorted exports are refused.
fn part_body(
    request: &ExportRequest,
    now: Timestamp,
    limits: &QueryLimits,
) -> Result<(ExportPlan, Value)> {
    if request.aggs.is_some() {
        return Err(Error::InvalidArgument(
            "aggregation exports are not merged by the searcher: run the aggregation with \
             POST /api/v1/{stream}/search here, or export it from an indexer"
                .into(),
        ));
    }
    if request.sort.is_some() {
        return Err(Error::InvalidArgument(
            "sorted exports are not merged by the searcher: leave `sort` out (records come \
             in split order) and sort the file, or export sorted from each indexer"
                .into(),
        ));
    }
    let plan = request.clone().parse(now, limits)?;
    let mut body = json!({
        "q": plan.request.query,
        "format": match part_format(plan.format) {
            ExportFormat::Csv => "csv",
            ExportFormat::Ndjson => "ndjson",
            ExportFormat::Arrow | ExportFormat::Parquet => "arrow",
        },
    });
    if let Some(start) = plan.request.start {
        body["start"] = json!(start.to_rfc3339());
    }
    if let Some(end) = plan.request.end {
        body["end"] = json!(end.to_rfc3339());
    }
    match &request.fields {
        Some(FieldList::Joined(text)) => body["fields"] = json!(text),
        Some(FieldList::List(list)) => body["fields"] = json!(list),
        None => {}
    }
    if let Some(limit) = plan.limit {
        body["limit"] = json!(limit);
    }
    Ok((plan, body))
}

async fn start(
    state: RootExport,
    stream: String,
    caller: Caller,
    request: Result<ExportRequest>,
) -> Result<Response> {
    if trawl_model::validate_stream_name(&stream).is_err() {
        return Err(Error::UnknownStream(stream.chars().take(80).collect()));
    }
    let request = request?;
    let indexers = &state.fanin.indexers;
    if indexers.is_empty() && state.remote.is_none() {
        return Err(Error::Internal(
            "no indexers are configured (`query.indexers`)".into(),
        ));
    }
    let (mut plan, mut body) = part_body(&request, Timestamp::now(), &state.limits)?;
    let format = plan.format;
    let limit = plan.limit;

    // The shared tier's published splits of the range are the root's own part, first; the
    // indexers leave them out (and any merge of them). An export must be whole, so a shared
    // tier that cannot be read fails it, as an indexer that cannot export does.
    let mut own: Option<Export> = None;
    if let Some(remote) = &state.remote {
        let (start, end) = (plan.request.start, plan.request.end);
        let (listed, opened) = match remote.open_published(&stream, start, end).await {
            Ok(part) => part,
            Err(err) => return Ok(shared_tier_unavailable(&err)),
        };
        Excluded::of([&listed]).add_to(&mut body);
        let listed = listed.records;
        plan.request.scope = caller.scope().clone();
        let opened = match opened {
            Some((snapshot, true)) => {
                match whole_if_large(remote, &stream, &listed, snapshot, &plan, &state.limits).await
                {
                    Ok(snapshot) => Some(snapshot),
                    Err(err) => return Ok(shared_tier_unavailable(&err)),
                }
            }
            Some((snapshot, false)) => Some(snapshot),
            None => None,
        };
        if let Some(snapshot) = opened {
            let limits = state.limits.clone();
            let part_plan = ExportPlan {
                format: part_format(format),
                ..plan.clone()
            };
            own = Some(
                tokio::task::spawn_blocking(move || Export::prepare(snapshot, &part_plan, &limits))
                    .await
                    .map_err(|join| Error::Internal(format!("export task failed: {join}")))??,
            );
        }
    }

    // Every part is opened before answering, so that a refusal (bad query, unknown stream, no
    // permission) or an unreachable indexer is answered with its status, not as a broken file.
    let opens = indexers.iter().map(|base| {
        let req = caller.apply(
            state
                .fanin
                .client
                .post(format!("{base}/api/v1/{stream}/export"))
                .json(&body),
        );
        async move { (base.clone(), req.send().await) }
    });
    let mut parts: Vec<Box<dyn Read + Send>> = Vec::new();
    let handle = tokio::runtime::Handle::current();
    if let Some(export) = own {
        parts.push(Box::new(own_part(
            export,
            part_format(format),
            state.remote.clone(),
        )));
    }
    for (base, opened) in futures::future::join_all(opens).await {
        match opened {
            Ok(r) if r.status().is_success() => parts.push(Box::new(PartRead {
                source: PartSource::Indexer(handle.clone(), r),
                pending: Bytes::new(),
            })),
            Ok(r) if r.status().is_client_error() => {
                let status =
                    StatusCode::from_u16(r.status().as_u16()).unwrap_or(StatusCode::BAD_REQUEST);
                let body = r.bytes().await.unwrap_or_default();
                return Ok(
                    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
                );
            }
            Ok(r) => {
                return Ok(unavailable(&base, &format!("answered {}", r.status())));
            }
            Err(err) => return Ok(unavailable(&base, &err.to_string())),
        }
    }

    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(CHANNEL_CHUNKS);
    tokio::task::spawn_blocking(move || {
        let out = ChunkWriter::new(tx.clone());
        match merge_parts(format, parts, limit, out) {
            Ok(rows) => tracing::debug!(rows, "root export done"),
            Err(_) if tx.is_closed() => tracing::debug!("client went away, root export stopped"),
            Err(err) => {
                tracing::error!(error = %err, "root export failed");
                let _ = tx.blocking_send(Err(io::Error::other(err.to_string())));
            }
        }
    });

    Ok(crate::export::attachment(&stream, format, rx))
}

/// The root's own part (the shared tier's splits), encoded as `format` on a blocking thread
/// while the merge reads it, through a bounded channel of chunks ([`ChunkWriter`], as an
/// export's HTTP body is written): memory stays flat whatever its size. The part stops when
/// the merge no longer reads (the client went away, or `limit` was reached), and a failure
/// reaches the merge as a read error, which aborts the export.
/// `snapshot`, whose splits were opened (some by range), reopened whole from the cache when
/// the export matches more records in them than `[storage] export_whole_min_records` (counted
/// over their postings, which by range costs a few requests a split; the export's `limit`
/// bounds the count). By range, every doc-store block an export touches is a request of its
/// own: a cold export of 117,171 records read 263 MB in 5,304 requests, at 1,000 records a
/// second. A whole split is one download, which the cache keeps.
async fn whole_if_large(
    remote: &Arc<RemoteSplits>,
    stream: &str,
    listed: &[trawl_storage::pg::SplitRecord],
    snapshot: trawl_index::StreamSnapshot,
    plan: &ExportPlan,
    limits: &QueryLimits,
) -> crate::Result<trawl_index::StreamSnapshot> {
    let mut count = plan.request.clone();
    count.limit = 0;
    count.aggs = None;
    let mut counting = limits.clone();
    counting.parallelism = remote.range_read_concurrency();
    let (snapshot, counted) = tokio::task::spawn_blocking(move || {
        let counted = crate::search::search_leaf(&snapshot, &count, &counting).map(|l| l.total);
        (snapshot, counted)
    })
    .await
    .map_err(|join| Error::Internal(format!("export task failed: {join}")))?;
    let matched = counted?;
    let records = plan.limit.map_or(matched, |limit| matched.min(limit));
    if records <= remote.export_whole_min_records() {
        return Ok(snapshot);
    }
    let (start, end) = (plan.request.start, plan.request.end);
    Ok(remote
        .snapshot_whole(stream, listed, start, end)
        .await?
        .unwrap_or(snapshot))
}

fn own_part(export: Export, format: ExportFormat, remote: Option<Arc<RemoteSplits>>) -> PartRead {
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(CHANNEL_CHUNKS);
    tokio::task::spawn_blocking(move || {
        let out = ChunkWriter::new(tx.clone());
        if let Err(err) = export.write_to(format, out, &|| tx.is_closed()) {
            let _ = tx.blocking_send(Err(io::Error::other(format!(
                "the shared tier's part: {err}"
            ))));
        }
        // What was read by range is fetched whole for the next searches and exports.
        if let Some(remote) = remote {
            remote.fill_cache();
        }
    });
    PartRead {
        source: PartSource::Own(rx),
        pending: Bytes::new(),
    }
}

fn shared_tier_unavailable(err: &Error) -> Response {
    tracing::warn!(%err, "the shared tier cannot be read for an export");
    trawl_model::ApiError::new(
        trawl_model::ErrorCode::Unavailable,
        "the shared tier (PostgreSQL and object storage) cannot be read; an export through the \
         searcher needs it",
    )
    .into_response()
}

fn unavailable(indexer: &str, reason: &str) -> Response {
    trawl_model::ApiError::new(
        trawl_model::ErrorCode::Unavailable,
        format!("indexer {indexer} cannot export its part ({reason}); an export through the searcher needs every indexer"),
    )
    .into_response()
}

/// Where a part's chunks come from.
enum PartSource {
    /// An indexer's answer, read on the runtime through `handle`.
    Indexer(tokio::runtime::Handle, reqwest::Response),
    /// The root's own part ([`own_part`]); the channel closed without an error is its end.
    Own(mpsc::Receiver<io::Result<Bytes>>),
}

/// A part as a blocking reader (for the Arrow IPC and CSV readers). Must be used from a
/// blocking thread: it waits for each chunk.
struct PartRead {
    source: PartSource,
    pending: Bytes,
}

impl PartRead {
    /// The next chunk of the part; `None` at its end.
    fn next_chunk(&mut self) -> io::Result<Option<Bytes>> {
        match &mut self.source {
            PartSource::Indexer(handle, response) => handle
                .block_on(response.chunk())
                .map_err(|err| io::Error::other(format!("an indexer's part broke: {err}"))),
            PartSource::Own(rx) => rx.blocking_recv().transpose(),
        }
    }
}

impl Read for PartRead {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pending.is_empty() {
            match self.next_chunk()? {
                Some(chunk) => self.pending = chunk,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.pending.len());
        buf[..n].copy_from_slice(&self.pending[..n]);
        let _ = self.pending.split_to(n);
        Ok(n)
    }
}

/// Writes the parts one after the other as one `format` output; at most `limit` records.
/// Returns the number of records written.
fn merge_parts<R: Read, W: Write + Send>(
    format: ExportFormat,
    parts: Vec<R>,
    limit: Option<u64>,
    out: W,
) -> Result<u64> {
    let mut left = limit.unwrap_or(u64::MAX);
    match format {
        ExportFormat::Ndjson => {
            let mut out = out;
            let mut written = 0u64;
            for part in parts {
                let mut reader = io::BufReader::new(part);
                let mut line = Vec::new();
                while left > 0 {
                    line.clear();
                    if io::BufRead::read_until(&mut reader, b'\n', &mut line).map_err(io_error)?
                        == 0
                    {
                        break;
                    }
                    out.write_all(&line).map_err(io_error)?;
                    left -= 1;
                    written += 1;
                }
            }
            out.flush().map_err(io_error)?;
            Ok(written)
        }
        ExportFormat::Csv => {
            let mut writer = csv::Writer::from_writer(out);
            let mut header_written = false;
            let mut written = 0u64;
            for part in parts {
                let mut reader = csv::ReaderBuilder::new()
                    .has_headers(true)
                    .flexible(false)
                    .from_reader(part);
                let headers = reader.byte_headers().map_err(csv_error)?.clone();
                if !header_written {
                    writer.write_byte_record(&headers).map_err(csv_error)?;
                    header_written = true;
                }
                let mut record = csv::ByteRecord::new();
                while left > 0 && reader.read_byte_record(&mut record).map_err(csv_error)? {
                    writer.write_byte_record(&record).map_err(csv_error)?;
                    left -= 1;
                    written += 1;
                }
            }
            writer.flush().map_err(io_error)?;
            Ok(written)
        }
        ExportFormat::Arrow | ExportFormat::Parquet => {
            let mut sink: Option<BatchSink<W>> = None;
            let mut out = Some(out);
            let mut written = 0u64;
            for part in parts {
                let reader = arrow_ipc::reader::StreamReader::try_new(part, None)
                    .map_err(|e| Error::Internal(format!("reading an indexer's part: {e}")))?;
                let schema = reader.schema();
                if sink.is_none() {
                    let Some(out) = out.take() else {
                        return Err(Error::Internal("export output already taken".into()));
                    };
                    sink = Some(BatchSink::new(format, schema.clone(), out)?);
                }
                let Some(sink) = sink.as_mut() else {
                    return Err(Error::Internal("export output missing".into()));
                };
                if sink.schema().fields() != schema.fields() {
                    return Err(Error::Internal(
                        "the indexers export different columns for this stream (mixed versions?)"
                            .into(),
                    ));
                }
                for batch in reader {
                    if left == 0 {
                        break;
                    }
                    let batch = batch
                        .map_err(|e| Error::Internal(format!("reading an indexer's part: {e}")))?;
                    let rows = (batch.num_rows() as u64).min(left);
                    let batch = if rows < batch.num_rows() as u64 {
                        batch.slice(0, rows as usize)
                    } else {
                        batch
                    };
                    sink.write(&batch)?;
                    left -= rows;
                    written += rows;
                }
            }
            match sink {
                Some(sink) => sink.finish()?,
                None => return Err(Error::Internal("no indexer part to export".into())),
            }
            Ok(written)
        }
    }
}

/// Re-encodes record batches as Arrow IPC or Parquet.
struct BatchSink<W: Write + Send> {
    schema: arrow_schema::SchemaRef,
    writer: SinkWriter<W>,
}

enum SinkWriter<W: Write + Send> {
    Arrow(arrow_ipc::writer::StreamWriter<W>),
    Parquet(parquet::arrow::ArrowWriter<W>),
}

impl<W: Write + Send> BatchSink<W> {
    fn new(format: ExportFormat, schema: arrow_schema::SchemaRef, out: W) -> Result<Self> {
        let writer = match format {
            ExportFormat::Parquet => SinkWriter::Parquet(
                parquet::arrow::ArrowWriter::try_new(
                    out,
                    schema.clone(),
                    Some(crate::export::parquet_properties()),
                )
                .map_err(|e| Error::Internal(format!("writing parquet: {e}")))?,
            ),
            _ => SinkWriter::Arrow(
                arrow_ipc::writer::StreamWriter::try_new(out, &schema)
                    .map_err(|e| Error::Internal(format!("writing arrow: {e}")))?,
            ),
        };
        Ok(BatchSink { schema, writer })
    }

    fn schema(&self) -> &arrow_schema::SchemaRef {
        &self.schema
    }

    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        match &mut self.writer {
            SinkWriter::Arrow(w) => w
                .write(batch)
                .map_err(|e| Error::Internal(format!("writing arrow: {e}"))),
            SinkWriter::Parquet(w) => {
                w.write(batch)
                    .map_err(|e| Error::Internal(format!("writing parquet: {e}")))?;
                if w.in_progress_size() >= crate::export::ROW_GROUP_BYTES {
                    w.flush()
                        .map_err(|e| Error::Internal(format!("writing parquet: {e}")))?;
                }
                Ok(())
            }
        }
    }

    fn finish(self) -> Result<()> {
        match self.writer {
            SinkWriter::Arrow(mut w) => w
                .finish()
                .map_err(|e| Error::Internal(format!("writing arrow: {e}"))),
            SinkWriter::Parquet(w) => w
                .close()
                .map(|_| ())
                .map_err(|e| Error::Internal(format!("writing parquet: {e}"))),
        }
    }
}

fn io_error(err: io::Error) -> Error {
    Error::Internal(format!("export: {err}"))
}

fn csv_error(err: csv::Error) -> Error {
    Error::Internal(format!("export (csv): {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn ndjson_parts_are_concatenated_up_to_the_limit() {
        let parts = vec![&b"{\"a\":1}\n{\"a\":2}\n"[..], &b"{\"a\":3}\n"[..]];
        let mut out = Vec::new();
        let rows = merge_parts(ExportFormat::Ndjson, parts.clone(), None, &mut out).unwrap();
        assert_eq!(rows, 3);
        assert_eq!(out, b"{\"a\":1}\n{\"a\":2}\n{\"a\":3}\n");
        let mut out = Vec::new();
        let rows = merge_parts(ExportFormat::Ndjson, parts, Some(2), &mut out).unwrap();
        assert_eq!(rows, 2);
        assert_eq!(out, b"{\"a\":1}\n{\"a\":2}\n");
    }

    #[test]
    fn csv_parts_keep_one_header_and_quoted_newlines() {
        let parts = vec![
            &b"timestamp,message\n1,\"two\nlines\"\n"[..],
            &b"timestamp,message\n2,plain\n"[..],
        ];
        let mut out = Vec::new();
        let rows = merge_parts(ExportFormat::Csv, parts, None, &mut out).unwrap();
        assert_eq!(rows, 2);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "timestamp,message\n1,\"two\nlines\"\n2,plain\n"
        );
    }

    fn ipc(values: &[i64]) -> Vec<u8> {
        let schema = Arc::new(arrow_schema::Schema::new(vec![arrow_schema::Field::new(
            "n",
            arrow_schema::DataType::Int64,
            true,
        )]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(arrow_array::Int64Array::from(values.to_vec()))],
        )
        .unwrap();
        let mut buf = Vec::new();
        let mut w = arrow_ipc::writer::StreamWriter::try_new(&mut buf, &schema).unwrap();
        w.write(&batch).unwrap();
        w.finish().unwrap();
        drop(w);
        buf
    }

    #[test]
    fn arrow_parts_become_one_stream_cut_at_the_limit() {
        let (a, b) = (ipc(&[1, 2, 3]), ipc(&[4, 5]));
        let mut out = Vec::new();
        let rows =
            merge_parts(ExportFormat::Arrow, vec![&a[..], &b[..]], Some(4), &mut out).unwrap();
        assert_eq!(rows, 4);
        let reader = arrow_ipc::reader::StreamReader::try_new(&out[..], None).unwrap();
        let mut values = Vec::new();
        for batch in reader {
            let batch = batch.unwrap();
            let col = batch
                .column(0)
                .as_any()
                .downcast_ref::<arrow_array::Int64Array>()
                .unwrap();
            values.extend(col.values().iter().copied());
        }
        assert_eq!(values, vec![1, 2, 3, 4]);
    }

    #[test]
    fn the_own_part_channel_carries_every_byte_and_ends_or_fails_as_its_writer_did() {
        let own = |rx| PartRead {
            source: PartSource::Own(rx),
            pending: Bytes::new(),
        };
        let (tx, rx) = mpsc::channel(2);
        let writer = std::thread::spawn(move || {
            let mut out = ChunkWriter::new(tx);
            for i in 0..100_000u32 {
                out.write_all(format!("{i}\n").as_bytes()).unwrap();
            }
            out.flush().unwrap();
        });
        let mut read = String::new();
        own(rx).read_to_string(&mut read).unwrap();
        writer.join().unwrap();
        let expected: String = (0..100_000u32).map(|i| format!("{i}\n")).collect();
        assert_eq!(read, expected);

        // A failure after some bytes reaches the reader as an error, not as an end.
        let (tx, rx) = mpsc::channel(4);
        tx.blocking_send(Ok(Bytes::from_static(b"half"))).unwrap();
        tx.blocking_send(Err(io::Error::other("broken"))).unwrap();
        drop(tx);
        let mut buf = Vec::new();
        let err = own(rx).read_to_end(&mut buf).unwrap_err();
        assert_eq!(buf, b"half");
        assert_eq!(err.to_string(), "broken");

        // A reader gone stops the writer.
        let (tx, rx) = mpsc::channel(1);
        drop(rx);
        let mut out = ChunkWriter::new(tx);
        out.write_all(b"x").unwrap();
        assert_eq!(out.flush().unwrap_err().kind(), io::ErrorKind::BrokenPipe);
    }

    #[test]
    fn sorted_and_aggregation_exports_are_refused_with_advice() {
        let limits = QueryLimits::default();
        let sorted = ExportRequest {
            sort: Some(crate::request::SortOrder::Asc),
            ..ExportRequest::default()
        };
        let err = part_body(&sorted, Timestamp(0), &limits).unwrap_err();
        assert!(err.to_string().contains("sorted exports"), "{err}");
        let relative = ExportRequest {
            q: Some("level:error".into()),
            start: Some("now-1h".into()),
            format: Some(ExportFormat::Parquet),
            limit: Some(5),
            ..ExportRequest::default()
        };
        let now = Timestamp(3_600_000_000_000 * 2);
        let (plan, body) = part_body(&relative, now, &limits).unwrap();
        assert_eq!(plan.format, ExportFormat::Parquet);
        assert_eq!(
            body,
            json!({
                "q": "level:error",
                "format": "arrow",
                "start": "1970-01-01T01:00:00.000000000Z",
                "limit": 5,
            })
        );
        // Each indexer parses it as a direct export.
        let parsed: ExportRequest = serde_json::from_value(body).unwrap();
        assert_eq!(parsed.format, Some(ExportFormat::Arrow));
        assert_eq!(
            parsed.start.as_deref(),
            Some("1970-01-01T01:00:00.000000000Z")
        );
    }
}
