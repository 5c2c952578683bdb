//! Analytics exports: every record a query matches (or an aggregation result as a table),
//! streamed as an Arrow IPC stream, Parquet, CSV or NDJSON.
//!
//! ```text
//! GET|POST /api/v1/{stream}/export
//!   ExportRequest --parse--> ExportPlan --prepare(snapshot)--> Export (pinned targets, query,
//!   columns) --write_to(ChunkWriter)--> blocking thread:
//!     unsorted: parallel.rs blocks of 8k doc ids --> workers: columns.rs (fast fields, doc
//!               store only for the other columns) | the lines of csv.rs / ndjson.rs
//!               --> written in block order
//!     sorted:   walk.rs blocks of 8k stored documents, merged across segments in time order
//!   --> arrow.rs | parquet.rs | csv.rs | ndjson.rs --> bounded channel --> chunked HTTP body
//! ```
//!
//! The doc store is read in place (raw.rs): each document's stored bytes walked once for the
//! fields wanted, strings and objects written from them, without decoding the document;
//! whatever that reader does not write comes from tantivy's decoding of the document
//! (stored.rs). The simple reader (tests) decodes every document.
//!
//! Memory stays flat whatever the size of the export: documents are read a block at a time,
//! at most a few blocks per worker are in flight, each is encoded and sent in order, and the
//! channel to the socket is bounded, so a slow client slows the export down instead of growing
//! a buffer. Both readers give the same output: the same blocks of the same rows, the same
//! values (see the tests). A client that goes
//! away closes the channel, which stops the export at its next block. Exports have no time
//! budget (they may run for minutes) and are mounted outside any request timeout.

mod arrow;
mod columns;
mod csv;
mod ndjson;
mod parallel;
mod parquet;
mod raw;
mod stored;
mod table;
mod walk;

#[cfg(test)]
mod reader_tests;
#[cfg(test)]
mod tests;

use std::io::{self, Write};
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use serde_json::{Map, Value};
use tantivy::schema::Field;
use tantivy::store::StoreReader;
use tantivy::TantivyDocument;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use trawl_index::{SearchTarget, StreamSnapshot, StreamSource};
use trawl_model::Timestamp;

use crate::access::Scope;
use crate::error::{Error, Result};
use crate::hit::list_fields;
use crate::request::{
    json_or_default, FieldList, ParsedRequest, QueryLimits, SearchRequest, SortOrder,
};
use crate::search::search;
use crate::state::AppState;

pub(crate) use crate::query_text::build_query;
pub(crate) use parquet::properties as parquet_properties;
pub use parquet::{ROW_GROUP_BYTES, ROW_GROUP_ROWS};
pub use walk::BLOCK_ROWS;

use raw::RawBlock;

pub(crate) use parallel::Block;

/// How an export reads the documents it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reader {
    /// One thread, stored documents block by block ([`walk`]): sorted exports, and the
    /// reference the other readers are checked against (only the tests ask for it unsorted).
    #[cfg_attr(not(test), allow(dead_code))]
    Simple,
    /// The bounded pipeline of [`parallel`] over `workers` threads (unsorted exports), with the
    /// columnar reader (`fast`: fast fields from the columnar store) for Arrow and Parquet.
    Pipeline { workers: usize, fast: bool },
}

/// The output format of an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    /// Arrow IPC stream format, typed columns, a record batch per 8k rows.
    Arrow,
    /// Parquet, zstd, row groups of at most 64k rows.
    Parquet,
    /// CSV with a header row, RFC 4180 quoting.
    Csv,
    /// One flat JSON record per line (the default).
    #[default]
    Ndjson,
}

impl ExportFormat {
    /// The `Content-Type` of the response.
    pub fn content_type(self) -> &'static str {
        match self {
            ExportFormat::Arrow => "application/vnd.apache.arrow.stream",
            ExportFormat::Parquet => "application/vnd.apache.parquet",
            ExportFormat::Csv => "text/csv; charset=utf-8",
            ExportFormat::Ndjson => "application/x-ndjson",
        }
    }

    /// The usual file extension, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            ExportFormat::Arrow => "arrow",
            ExportFormat::Parquet => "parquet",
            ExportFormat::Csv => "csv",
            ExportFormat::Ndjson => "ndjson",
        }
    }
}

/// An export request: the query string of `GET /api/v1/{stream}/export` or the JSON body of
/// `POST` (the search body plus `format`). Unknown parameters are refused.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportRequest {
    /// Query in the tantivy grammar; absent or empty means `*`.
    pub q: Option<String>,
    /// Inclusive lower time bound: RFC 3339 or `now[+-]N<unit>`.
    pub start: Option<String>,
    /// Exclusive upper time bound.
    pub end: Option<String>,
    /// Columns to export, in this order; every stored field when absent.
    pub fields: Option<FieldList>,
    /// `asc` or `desc` by timestamp (the order of search hits); absent: unsorted, in split
    /// order, which is the fastest.
    pub sort: Option<SortOrder>,
    /// `arrow`, `parquet`, `csv` or `ndjson` (the default).
    pub format: Option<ExportFormat>,
    /// At most this many records; all when absent (no upper bound, unlike search).
    pub limit: Option<u64>,
    /// Elasticsearch aggregations (POST only): the export is then their result as a table, a
    /// row per bucket, nested buckets flattened into columns.
    #[serde(alias = "aggregations")]
    pub aggs: Option<Value>,
}

/// A validated export request.
#[derive(Debug, Clone)]
pub struct ExportPlan {
    /// Query, time bounds, projection and aggregations (its `limit` and `sort` are unused).
    pub request: ParsedRequest,
    /// `None`: unsorted.
    pub sort: Option<SortOrder>,
    pub format: ExportFormat,
    pub limit: Option<u64>,
}

impl ExportRequest {
    /// Validates the request like a search request (times relative to `now`, the query's
    /// syntax is checked later, against the stream's schema). Errors are 400-class and name the
    /// parameter.
    pub fn parse(self, now: Timestamp, limits: &QueryLimits) -> Result<ExportPlan> {
        let search = SearchRequest {
            q: self.q,
            start: self.start,
            end: self.end,
            limit: Some(0),
            sort: None,
            fields: self.fields,
            search_after: None,
            aggs: self.aggs,
            timeout_ms: None,
        };
        Ok(ExportPlan {
            request: search.parse(now, limits)?,
            sort: self.sort,
            format: self.format.unwrap_or_default(),
            limit: self.limit,
        })
    }
}

/// An export ready to run: its targets pinned, its query built, its columns known.
pub struct Export {
    layout: Arc<arrow::Layout>,
    source: Rows,
}

enum Rows {
    /// The matching documents of these targets (in id order).
    Docs {
        targets: Vec<SearchTarget>,
        query: Box<dyn tantivy::query::Query>,
        sort: Option<SortOrder>,
        limit: Option<u64>,
    },
    /// A flattened aggregation result.
    Table(Vec<Map<String, Value>>),
}

impl Export {
    /// Prepares `plan` over `snapshot`: parses the query, checks the projected fields, and for
    /// an aggregation export runs the aggregations (under the search time budget). Errors are
    /// those of [`crate::search`]. Blocking: call it from a blocking thread.
    pub fn prepare(
        snapshot: StreamSnapshot,
        plan: &ExportPlan,
        limits: &QueryLimits,
    ) -> Result<Export> {
        let req = &plan.request;
        if req.aggs.is_some() {
            let answer = search(&snapshot, req, limits)?;
            if answer.timed_out {
                return Err(Error::Timeout(
                    u64::try_from(req.timeout.as_millis()).unwrap_or(u64::MAX),
                ));
            }
            let table = table::flatten(&answer.aggregations.unwrap_or(Value::Null));
            return Ok(Export {
                layout: Arc::new(arrow::Layout::for_rows(&table.columns, &table.rows)),
                source: Rows::Table(table.rows),
            });
        }
        let query =
            crate::query_text::build_query(&snapshot, &req.query, req.start, req.end, &req.scope)?;
        let layout = arrow::Layout::for_stream(
            &snapshot.schema,
            req.fields.as_deref(),
            &list_fields(&snapshot.stream),
        )?;
        let mut targets: Vec<SearchTarget> = snapshot
            .targets
            .into_iter()
            .filter(|t| t.overlaps(req.start, req.end))
            .collect();
        targets.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(Export {
            layout: Arc::new(layout),
            source: Rows::Docs {
                targets,
                query,
                sort: plan.sort,
                limit: plan.limit,
            },
        })
    }

    /// The exported column names, in order.
    pub fn columns(&self) -> Vec<String> {
        self.layout.columns.iter().map(|c| c.name.clone()).collect()
    }

    /// Encodes the export as `format` into `out`, a block at a time; stops early (still
    /// `Ok`, with a truncated output) as soon as `cancelled` says so. Returns the number of rows
    /// written. Blocking and CPU-heavy: call it from a blocking thread.
    pub fn write_to<'w, W: Write + Send + 'w>(
        &self,
        format: ExportFormat,
        out: W,
        cancelled: &dyn Fn() -> bool,
    ) -> Result<u64> {
        let reader = Reader::Pipeline {
            workers: parallel::workers(),
            fast: true,
        };
        self.write_with(format, out, cancelled, reader)
    }

    /// [`Self::write_to`] with the reader chosen. A sorted export walks the merge of every
    /// segment on this thread: the pipeline reader reads its documents in place, the simple
    /// one decodes them.
    pub(crate) fn write_with<'w, W: Write + Send + 'w>(
        &self,
        format: ExportFormat,
        out: W,
        cancelled: &dyn Fn() -> bool,
        reader: Reader,
    ) -> Result<u64> {
        let layout = Arc::clone(&self.layout);
        let mut encoder: Box<dyn Encode + 'w> = match format {
            ExportFormat::Arrow => Box::new(arrow::ArrowEncoder::new(layout, out)?),
            ExportFormat::Parquet => Box::new(parquet::ParquetEncoder::new(layout, out)?),
            ExportFormat::Csv => Box::new(csv::CsvEncoder::new(layout, out)?),
            ExportFormat::Ndjson => Box::new(ndjson::NdjsonEncoder::new(layout, out)),
        };
        let rows = match &self.source {
            Rows::Table(rows) => {
                for block in rows.chunks(BLOCK_ROWS) {
                    if cancelled() {
                        return Ok(0);
                    }
                    encoder.write_rows(block)?;
                }
                rows.len() as u64
            }
            Rows::Docs {
                targets,
                query,
                sort,
                limit,
            } => {
                let targets: Vec<&SearchTarget> = targets.iter().collect();
                let options = walk::WalkOptions {
                    limit: *limit,
                    cancelled,
                };
                match (sort, reader) {
                    (None, Reader::Pipeline { workers, fast }) => {
                        let shape = parallel::Shape {
                            format,
                            layout: &self.layout,
                            fast,
                        };
                        let mut write = |block: Block| encoder.write_block(block);
                        parallel::export_unsorted(
                            &targets,
                            query.as_ref(),
                            shape,
                            workers,
                            &options,
                            &mut write,
                        )?
                    }
                    (None, Reader::Simple) => {
                        let mut emit = |docs: &[TantivyDocument]| encoder.write_docs(docs);
                        walk::walk_unsorted(&targets, query.as_ref(), &options, &mut emit)?
                    }
                    (Some(order), Reader::Pipeline { fast: true, .. }) => {
                        match RawPlan::new(&self.layout, format) {
                            Some(plan) => {
                                let mut emit = |block: &mut RawBlock, stores: &[&StoreReader]| {
                                    let block = plan.encode(format, &self.layout, block, stores)?;
                                    encoder.write_block(block)
                                };
                                walk::walk_sorted_raw(
                                    &targets,
                                    query.as_ref(),
                                    *order,
                                    &options,
                                    &plan.wanted,
                                    &mut emit,
                                )?
                            }
                            None => {
                                let mut emit = |docs: &[TantivyDocument]| encoder.write_docs(docs);
                                walk::walk_sorted(
                                    &targets,
                                    query.as_ref(),
                                    *order,
                                    &options,
                                    &mut emit,
                                )?
                            }
                        }
                    }
                    (Some(order), _) => {
                        let mut emit = |docs: &[TantivyDocument]| encoder.write_docs(docs);
                        walk::walk_sorted(&targets, query.as_ref(), *order, &options, &mut emit)?
                    }
                }
            }
        };
        if cancelled() {
            return Ok(rows);
        }
        encoder.finish()?;
        Ok(rows)
    }
}

/// How a block of documents read in place ([`RawBlock`]) becomes output: the fields to note,
/// and for the text formats the record's fields in key order. Serves the unsorted pipeline's
/// text formats and every sorted export.
pub(crate) struct RawPlan {
    pub(crate) wanted: Vec<Field>,
    /// `Some` for NDJSON and CSV.
    fields: Option<Vec<(Field, String, bool)>>,
}

impl RawPlan {
    /// The plan for `format` over `layout`; `None` when the documents must be decoded (a
    /// generic stream's records, a column that is a dynamic path, an aggregation table).
    pub(crate) fn new(layout: &arrow::Layout, format: ExportFormat) -> Option<RawPlan> {
        let hits = layout.hits.as_ref()?;
        match format {
            ExportFormat::Ndjson | ExportFormat::Csv => {
                let fields = hits.sorted_fields()?;
                let wanted = fields.iter().map(|(field, _, _)| *field).collect();
                Some(RawPlan {
                    wanted,
                    fields: Some(fields),
                })
            }
            ExportFormat::Arrow | ExportFormat::Parquet => {
                let wanted = layout
                    .columns
                    .iter()
                    .map(|c| c.field())
                    .collect::<Option<Vec<Field>>>()?;
                Some(RawPlan {
                    wanted,
                    fields: None,
                })
            }
        }
    }

    /// `block` encoded as `format` (the one the plan was made for); record batches take every
    /// column from the doc store.
    pub(crate) fn encode(
        &self,
        format: ExportFormat,
        layout: &arrow::Layout,
        block: &mut RawBlock,
        stores: &[&StoreReader],
    ) -> Result<Block> {
        let rows = block.rows();
        let (Some(fields), Some(hits)) = (&self.fields, &layout.hits) else {
            return Ok(Block::Batch(columns::stored_batch(layout, block, stores)?));
        };
        let mut out = Vec::new();
        match format {
            ExportFormat::Csv => csv::encode_raw(layout, hits, fields, block, stores, &mut out)?,
            _ => ndjson::encode_raw(hits, fields, block, stores, &mut out)?,
        }
        Ok(Block::Text(out, rows))
    }
}

/// An output format's encoder. Each call writes what it was given through to the output (no
/// block is held back), except Parquet, which holds the current row group.
pub(crate) trait Encode {
    /// Encodes a block of stored documents.
    fn write_docs(&mut self, docs: &[TantivyDocument]) -> Result<()>;
    /// Encodes a block of flat rows (an aggregation table).
    fn write_rows(&mut self, rows: &[Map<String, Value>]) -> Result<()>;
    /// Writes a block the pipeline's workers encoded for this format.
    fn write_block(&mut self, block: Block) -> Result<()>;
    /// Writes what ends the output (the Arrow end-of-stream marker, the Parquet footer) and
    /// flushes it.
    fn finish(self: Box<Self>) -> Result<()>;
}

/// Bytes per chunk of the HTTP body: big enough that per-chunk overhead does not matter,
/// small enough to leave the process steadily.
const CHUNK_BYTES: usize = 256 * 1024;

/// Chunks that may wait between the export thread and the socket. Four let the encoder run
/// ahead of the socket by about a megabyte (smoothing the burst of a Parquet row group) while
/// memory stays bounded whatever the export's size; more would only buffer, since the socket
/// sets the pace.
pub(crate) const CHANNEL_CHUNKS: usize = 4;

/// A `Write` that sends what it is given to the HTTP body in chunks of [`CHUNK_BYTES`], and
/// blocks while the channel is full. Fails with `BrokenPipe` once the body is dropped (the
/// client went away). Must be used from a blocking thread, not from async code.
pub(crate) struct ChunkWriter {
    tx: mpsc::Sender<io::Result<Bytes>>,
    buf: Vec<u8>,
}

impl ChunkWriter {
    pub(crate) fn new(tx: mpsc::Sender<io::Result<Bytes>>) -> ChunkWriter {
        ChunkWriter {
            tx,
            buf: Vec::with_capacity(CHUNK_BYTES),
        }
    }

    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK_BYTES));
        self.tx
            .blocking_send(Ok(Bytes::from(chunk)))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))
    }
}

impl Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK_BYTES {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

/// The export routes: `GET /api/v1/{stream}/export` (parameters in the query string) and
/// `POST /api/v1/{stream}/export` (the search body plus `format`; `?format=` in the query
/// string overrides the body's). Do not put a timeout layer on them: an export lasts as long
/// as it takes. Errors found before the first byte (bad query, unknown stream, bad
/// aggregation) are answered as JSON errors with their status; a failure later aborts the
/// chunked body, so that the client sees a truncated transfer, never a short but complete one.
pub fn routes<S: StreamSource>(source: Arc<S>, limits: QueryLimits) -> Router {
    Router::new()
        .route(
            "/api/v1/{stream}/export",
            get(get_export::<S>).post(post_export::<S>),
        )
        .with_state(AppState {
            source,
            limits,
            extra: (),
        })
}

/// `?format=` of a POST export.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FormatParam {
    format: Option<ExportFormat>,
}

async fn get_export<S: StreamSource>(
    State(state): State<AppState<S>>,
    scope: Scope,
    Path(stream): Path<String>,
    query: std::result::Result<Query<ExportRequest>, QueryRejection>,
) -> Response {
    let request = match query {
        Ok(Query(request)) if request.aggs.is_some() => Err(Error::InvalidArgument(
            "`aggs` is accepted in the body of a POST export only".to_string(),
        )),
        Ok(Query(request)) => Ok(request),
        Err(rejection) => Err(Error::from(rejection)),
    };
    respond(
        state,
        stream,
        request,
        scope,
        crate::remote::Excluded::default(),
    )
    .await
}

async fn post_export<S: StreamSource>(
    State(state): State<AppState<S>>,
    scope: Scope,
    Path(stream): Path<String>,
    param: std::result::Result<Query<FormatParam>, QueryRejection>,
    body: std::result::Result<Bytes, BytesRejection>,
) -> Response {
    let mut excluded = crate::remote::Excluded::default();
    let request = param.map_err(Error::from).and_then(|Query(param)| {
        let mut body = json_or_default::<Value>(body)?;
        // The splits a searcher exports itself from the shared tier: left out here.
        excluded = crate::remote::take_excluded(&mut body)?;
        let mut request: ExportRequest = if body.is_null() {
            ExportRequest::default()
        } else {
            serde_json::from_value(body)
                .map_err(|err| Error::InvalidArgument(format!("request body: {err}")))?
        };
        if param.format.is_some() {
            request.format = param.format;
        }
        Ok(request)
    });
    respond(state, stream, request, scope, excluded).await
}

async fn respond<S: StreamSource>(
    state: AppState<S>,
    stream: String,
    request: Result<ExportRequest>,
    scope: Scope,
    excluded: crate::remote::Excluded,
) -> Response {
    match start(state, stream, request, scope, excluded).await {
        Ok(response) => response,
        Err(err) => err.into_response(),
    }
}

async fn start<S: StreamSource>(
    state: AppState<S>,
    stream: String,
    request: Result<ExportRequest>,
    scope: Scope,
    excluded: crate::remote::Excluded,
) -> Result<Response> {
    if trawl_model::validate_stream_name(&stream).is_err() {
        return Err(Error::UnknownStream(stream.chars().take(80).collect()));
    }
    let mut plan = request?.parse(Timestamp::now(), &state.limits)?;
    plan.request.scope = scope;
    let format = plan.format;
    let source = Arc::clone(&state.source);
    let limits = state.limits.clone();
    let name = stream.clone();
    let export = tokio::task::spawn_blocking(move || {
        let mut snapshot = source.snapshot(&name, plan.request.start, plan.request.end)?;
        crate::remote::leave_out(&mut snapshot, &excluded);
        Export::prepare(snapshot, &plan, &limits)
    })
    .await
    .map_err(|join| Error::Internal(format!("export task failed: {join}")))??;

    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(CHANNEL_CHUNKS);
    let span = tracing::debug_span!("export", stream = %stream, ?format);
    tokio::task::spawn_blocking(move || {
        let _entered = span.enter();
        let out = ChunkWriter::new(tx.clone());
        let cancelled = || tx.is_closed();
        match export.write_to(format, out, &cancelled) {
            Ok(rows) if tx.is_closed() => tracing::debug!(rows, "client went away, export stopped"),
            Ok(rows) => tracing::debug!(rows, "export done"),
            Err(_) if tx.is_closed() => tracing::debug!("client went away, export stopped"),
            Err(err) => {
                tracing::error!(error = %err, "export failed");
                // An error item aborts the chunked body: the client sees a broken transfer.
                let _ = tx.blocking_send(Err(io::Error::other(err.to_string())));
            }
        }
    });

    Ok(attachment(&stream, format, rx))
}

/// The streamed body of an export: the chunks `rx` yields, as a `<stream>.<extension>`
/// attachment of the format's content type.
pub(crate) fn attachment(
    stream: &str,
    format: ExportFormat,
    rx: tokio::sync::mpsc::Receiver<io::Result<Bytes>>,
) -> Response {
    let disposition = format!("attachment; filename=\"{stream}.{}\"", format.extension());
    let mut response = Response::new(Body::from_stream(ReceiverStream::new(rx)));
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    response
}
