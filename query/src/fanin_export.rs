//! Exports through a searcher: `GET|POST /api/v1/{stream}/export` on the stateless root asks
//! every indexer for its part of the export and streams the parts one after the other as one
//! file of the requested format.
//!
//! ```text
//! client --> root: validate, resolve times once --> each indexer: export (arrow | csv | ndjson)
//!   --> blocking thread: read part 1, part 2, ... --> re-encode (arrow, parquet) or copy (csv
//!   without its repeated header, ndjson) --> bounded channel --> chunked HTTP body
//! ```
//!
//! Arrow and Parquet are re-encoded from the indexers' Arrow IPC streams batch by batch, CSV
//! and NDJSON are copied record by record, so the root holds one batch at a time whatever the
//! export's size. The time bounds are resolved at the root (`now-1h` means the same instant on
//! every indexer), `limit` is applied across the parts, and the caller's resolved scope is
//! sent with each part's request ([`crate::fanin::Caller`]), so that each indexer scopes its
//! part as it would a direct export. Every indexer
//! must answer: a part that cannot be opened is a 503 naming the indexer before the first
//! byte, and a part that breaks later aborts the chunked body, so that an export is complete
//! or visibly truncated, never silently partial. Sorted exports and aggregation exports are
//! refused here with a 400 that says what to do instead.

use std::io::{self, Read, Write};

use arrow_array::RecordBatch;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio::sync::mpsc;
use trawl_model::Timestamp;

use crate::access::Scope;
use crate::error::{Error, Result};
use crate::export::{ChunkWriter, ExportFormat, ExportRequest, CHANNEL_CHUNKS};
use crate::fanin::{Caller, FanIn};
use crate::request::{json_or_default, FieldList, QueryLimits};

/// State of the root's export routes.
#[derive(Clone)]
pub(crate) struct RootExport {
    pub fanin: FanIn,
    pub limits: QueryLimits,
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
    let request = query
        .map(|Query(r)| r)
        .map_err(|r| Error::InvalidArgument(format!("query string: {}", r.body_text())));
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
    let request = param
        .map_err(|r| Error::InvalidArgument(format!("query string: {}", r.body_text())))
        .and_then(|Query(param)| {
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

/// The query string each indexer is asked with: times resolved, the part's format.
fn part_query(request: &ExportRequest, now: Timestamp, limits: &QueryLimits) -> Result<String> {
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
    let format = match plan.format {
        ExportFormat::Arrow | ExportFormat::Parquet => "arrow",
        ExportFormat::Csv => "csv",
        ExportFormat::Ndjson => "ndjson",
    };
    let mut url = reqwest::Url::parse("http://root/")
        .map_err(|e| Error::Internal(format!("building a part's query: {e}")))?;
    let mut pairs = url.query_pairs_mut();
    pairs.append_pair("q", &plan.request.query);
    pairs.append_pair("format", format);
    if let Some(start) = plan.request.start {
        pairs.append_pair("start", &start.to_rfc3339());
    }
    if let Some(end) = plan.request.end {
        pairs.append_pair("end", &end.to_rfc3339());
    }
    if let Some(fields) = &request.fields {
        let joined = match fields {
            FieldList::Joined(text) => text.clone(),
            FieldList::List(list) => list.join(","),
        };
        pairs.append_pair("fields", &joined);
    }
    if let Some(limit) = plan.limit {
        pairs.append_pair("limit", &limit.to_string());
    }
    drop(pairs);
    Ok(url.query().unwrap_or_default().to_string())
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
    if indexers.is_empty() {
        return Err(Error::Internal(
            "no indexers are configured (`query.indexers`)".into(),
        ));
    }
    let query = part_query(&request, Timestamp::now(), &state.limits)?;
    let format = request.format.unwrap_or_default();
    let limit = request.limit;

    // Every part is opened before answering, so that a refusal (bad query, unknown stream, no
    // permission) or an unreachable indexer is answered with its status, not as a broken file.
    let opens = indexers.iter().map(|base| {
        let req = caller.apply(
            state
                .fanin
                .client
                .get(format!("{base}/api/v1/{stream}/export?{query}")),
        );
        async move { (base.clone(), req.send().await) }
    });
    let mut parts = Vec::new();
    for (base, opened) in futures::future::join_all(opens).await {
        match opened {
            Ok(r) if r.status().is_success() => parts.push(r),
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
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let out = ChunkWriter::new(tx.clone());
        let reads: Vec<PartRead> = parts
            .into_iter()
            .map(|response| PartRead {
                handle: handle.clone(),
                response,
                pending: Bytes::new(),
            })
            .collect();
        match merge_parts(format, reads, limit, out) {
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

fn unavailable(indexer: &str, reason: &str) -> Response {
    trawl_model::ApiError::new(
        trawl_model::ErrorCode::Unavailable,
        format!("indexer {indexer} cannot export its part ({reason}); an export through the searcher needs every indexer"),
    )
    .into_response()
}

/// A part's body as a blocking reader (for the Arrow IPC and CSV readers). Must be used from a
/// blocking thread: it waits on the runtime for each chunk.
struct PartRead {
    handle: tokio::runtime::Handle,
    response: reqwest::Response,
    pending: Bytes,
}

impl Read for PartRead {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pending.is_empty() {
            match self.handle.block_on(self.response.chunk()) {
                Ok(Some(chunk)) => self.pending = chunk,
                Ok(None) => return Ok(0),
                Err(err) => {
                    return Err(io::Error::other(format!("an indexer's part broke: {err}")))
                }
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
    fn sorted_and_aggregation_exports_are_refused_with_advice() {
        let limits = QueryLimits::default();
        let sorted = ExportRequest {
            sort: Some(crate::request::SortOrder::Asc),
            ..ExportRequest::default()
        };
        let err = part_query(&sorted, Timestamp(0), &limits).unwrap_err();
        assert!(err.to_string().contains("sorted exports"), "{err}");
        let relative = ExportRequest {
            q: Some("level:error".into()),
            start: Some("now-1h".into()),
            format: Some(ExportFormat::Parquet),
            limit: Some(5),
            ..ExportRequest::default()
        };
        let now = Timestamp(3_600_000_000_000 * 2);
        let q = part_query(&relative, now, &limits).unwrap();
        assert_eq!(
            q,
            "q=level%3Aerror&format=arrow&start=1970-01-01T01%3A00%3A00.000000000Z&limit=5"
        );
    }
}
