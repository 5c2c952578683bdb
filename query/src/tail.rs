//! Live tail: `GET /api/v1/{stream}/tail?q=...` as Server-Sent Events, one event per new
//! matching record (its flat JSON on one `data:` line), fed from the ingest path.
//!
//! The [`StreamSource`] (the indexer) broadcasts each durable batch ([`TailBatch`]) to
//! subscribers; a subscriber indexes the batch into a small in-RAM index with the stream's
//! schema and tokenizers and runs its query over it with [`crate::search`], so that a tail
//! matches exactly what a search would (phrases, ranges, JSON fields), whatever the records'
//! timestamps. Records of a batch
//! are sent in timestamp order. Keep-alive comments go out every [`KEEP_ALIVE`]. A client that
//! falls more than the broadcast's capacity behind gets a final `event: error` with
//! `{"error": {"code": "lagged", ...}}` and is disconnected; the stream also ends when the
//! server shuts down.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use serde_json::{Map, Value};
use tantivy::indexer::NoMergePolicy;
use tantivy::schema::Value as _;
use tantivy::{Index, IndexWriter, ReloadPolicy, TantivyDocument};
use tokio::sync::{broadcast, mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use trawl_index::{SearchTarget, StreamSnapshot, StreamSource, TailBatch, TargetKind};
use trawl_model::Timestamp;

use crate::access::Scope;
use crate::error::{Error, Result};
use crate::hit::{list_fields, HitFormat};
use crate::request::{FieldList, ParsedRequest, QueryLimits, SearchRequest, SortOrder};
use crate::search::{search, TIMESTAMP_FIELD};

/// Interval of SSE keep-alive comments: under the idle timeout of common proxies (60 s).
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// Events that may wait between a subscriber's matcher and its socket. When full, the matcher
/// waits, and the subscriber falls behind on the broadcast, whose own bound decides when it
/// is cut off; this queue only smooths a burst of matches from one batch.
const EVENT_QUEUE: usize = 1024;

/// How long the final `lagged` event may wait for room before the connection is just closed.
const FINAL_EVENT_WAIT: Duration = Duration::from_secs(5);

/// Indexing memory of the per-batch in-RAM index: tantivy's minimum for one thread. A batch
/// larger than this is split into several segments, which the search handles.
const RAM_INDEX_BYTES: usize = 15_000_000;

/// The query string of a tail: `q` (absent means `*`) and `fields` (the projection of each
/// record). Unknown parameters are refused.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TailRequest {
    pub q: Option<String>,
    pub fields: Option<FieldList>,
}

/// Matches the documents of tail batches against one subscriber's query.
pub struct TailMatcher {
    snapshot: StreamSnapshot,
    request: ParsedRequest,
    limits: QueryLimits,
    /// Set when the query is `*`: records are formatted without indexing.
    match_all: Option<HitFormat>,
}

impl TailMatcher {
    /// A matcher of `request` over the stream of `snapshot` (its targets are ignored). A query
    /// that does not parse, or an unknown projected field, is an error (400).
    pub fn new(
        snapshot: StreamSnapshot,
        request: TailRequest,
        limits: &QueryLimits,
    ) -> Result<TailMatcher> {
        let mut request = SearchRequest {
            q: request.q,
            fields: request.fields,
            ..SearchRequest::default()
        }
        .parse(Timestamp::now(), limits)?;
        request.sort = SortOrder::Asc;
        // Parse now, so that a bad query is answered 400 rather than found per batch.
        crate::export::build_query(&snapshot, &request.query, None, None, &Scope::All)?;
        let format = HitFormat::new(
            &snapshot.schema,
            request.fields.as_deref(),
            &list_fields(&snapshot.stream),
        )?;
        let match_all = (request.query.trim() == "*").then_some(format);
        Ok(TailMatcher {
            snapshot: StreamSnapshot {
                targets: Vec::new(),
                ..snapshot
            },
            request,
            limits: limits.clone(),
            match_all,
        })
    }

    /// This matcher limited to the records `scope` may see (a restricted scope always runs the
    /// query, never the match-all shortcut).
    pub fn with_scope(mut self, scope: Scope) -> TailMatcher {
        if scope.is_restricted() {
            self.match_all = None;
        }
        self.request.scope = scope;
        self
    }

    /// The flat records of the documents of `docs` that match, in timestamp order (ties in
    /// batch order). Blocking: indexes the batch in RAM.
    pub fn matching(&self, docs: &[TantivyDocument]) -> Result<Vec<Map<String, Value>>> {
        if docs.is_empty() {
            return Ok(Vec::new());
        }
        if let Some(format) = &self.match_all {
            let mut records: Vec<(i64, Map<String, Value>)> = docs
                .iter()
                .map(|doc| (timestamp(&self.snapshot, doc), format.to_json(doc)))
                .collect();
            records.sort_by_key(|(ts, _)| *ts);
            return Ok(records.into_iter().map(|(_, r)| r).collect());
        }
        let searcher = self
            .ram_index(docs)
            .map_err(|err| Error::Internal(format!("indexing a tail batch in memory: {err}")))?;
        let snapshot = StreamSnapshot {
            targets: vec![SearchTarget::new(
                TargetKind::Hot,
                "tail",
                searcher,
                None,
                None,
                None,
            )],
            ..self.snapshot.clone()
        };
        let mut request = self.request.clone();
        request.limit = docs.len();
        Ok(search(&snapshot, &request, &self.limits)?.hits)
    }

    fn ram_index(&self, docs: &[TantivyDocument]) -> tantivy::Result<tantivy::Searcher> {
        let mut index = Index::create_in_ram(self.snapshot.schema.clone());
        index.set_tokenizers(self.snapshot.tokenizers.clone());
        let mut writer: IndexWriter = index.writer_with_num_threads(1, RAM_INDEX_BYTES)?;
        writer.set_merge_policy(Box::new(NoMergePolicy));
        for doc in docs {
            writer.add_document(doc.clone())?;
        }
        writer.commit()?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        Ok(reader.searcher())
    }
}

fn timestamp(snapshot: &StreamSnapshot, doc: &TantivyDocument) -> i64 {
    snapshot
        .schema
        .get_field(TIMESTAMP_FIELD)
        .ok()
        .and_then(|field| doc.get_first(field))
        .and_then(|v| v.as_datetime())
        .map_or(i64::MIN, |d| d.into_timestamp_nanos())
}

/// The tail route's state; `extra` turns `true` on shutdown.
type AppState<S> = crate::state::AppState<S, watch::Receiver<bool>>;

/// The tail route, `GET /api/v1/{stream}/tail?q=...&fields=...`. Every open tail ends when
/// `shutdown` becomes true (send it before waiting for connections to drain, or graceful
/// shutdown waits forever); a dropped sender means "never". Do not put a timeout layer on it.
/// The subscription is in place when the response headers are sent: a record made durable
/// after that is delivered.
pub fn routes<S: StreamSource>(
    source: Arc<S>,
    limits: QueryLimits,
    shutdown: watch::Receiver<bool>,
) -> Router {
    Router::new()
        .route("/api/v1/{stream}/tail", get(get_tail::<S>))
        .with_state(AppState {
            source,
            limits,
            extra: shutdown,
        })
}

async fn get_tail<S: StreamSource>(
    State(state): State<AppState<S>>,
    scope: Scope,
    Path(stream): Path<String>,
    query: std::result::Result<Query<TailRequest>, QueryRejection>,
) -> Response {
    let request = match query {
        Ok(Query(request)) => request,
        Err(rejection) => return Error::from(rejection).into_response(),
    };
    match open(state, stream, request, scope).await {
        Ok(response) => response,
        Err(err) => err.into_response(),
    }
}

async fn open<S: StreamSource>(
    state: AppState<S>,
    stream: String,
    request: TailRequest,
    scope: Scope,
) -> Result<Response> {
    if trawl_model::validate_stream_name(&stream).is_err() {
        return Err(Error::UnknownStream(stream.chars().take(80).collect()));
    }
    let source = Arc::clone(&state.source);
    let limits = state.limits.clone();
    let (matcher, batches) = tokio::task::spawn_blocking(move || -> Result<_> {
        let snapshot = source.schema_snapshot(&stream)?;
        let matcher = TailMatcher::new(snapshot, request, &limits)?.with_scope(scope);
        let batches = source.subscribe(&stream)?;
        Ok((matcher, batches))
    })
    .await
    .map_err(|join| Error::Internal(format!("tail task failed: {join}")))??;

    let (tx, rx) = mpsc::channel(EVENT_QUEUE);
    tokio::spawn(pump(Arc::new(matcher), batches, tx, state.extra.clone()));
    let sse = Sse::new(ReceiverStream::new(rx)).keep_alive(KeepAlive::new().interval(KEEP_ALIVE));
    Ok(sse.into_response())
}

/// Moves matching records from the broadcast to the client until the client leaves, the
/// server shuts down, or the client lags (then with a final error event).
async fn pump(
    matcher: Arc<TailMatcher>,
    mut batches: broadcast::Receiver<Arc<TailBatch>>,
    tx: mpsc::Sender<std::result::Result<Event, Infallible>>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let received = tokio::select! {
            _ = tx.closed() => return,
            _ = shutting_down(&mut shutdown) => return,
            received = batches.recv() => received,
        };
        let batch = match received {
            Ok(batch) => batch,
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                tracing::info!(missed, "tail client lagged, disconnecting it");
                let message = format!(
                    "the client fell {missed} batches behind and was disconnected; \
                     narrow the query or read faster"
                );
                let _ = tokio::time::timeout(
                    FINAL_EVENT_WAIT,
                    tx.send(Ok(error_event("lagged", &message))),
                )
                .await;
                return;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        let matcher = Arc::clone(&matcher);
        let matched = tokio::task::spawn_blocking(move || matcher.matching(&batch.docs)).await;
        let records = match matched {
            Ok(Ok(records)) => records,
            Ok(Err(err)) => {
                tracing::error!(error = %err, "tail matching failed");
                let _ = tx
                    .send(Ok(error_event(err.code().as_str(), &err.public_message())))
                    .await;
                return;
            }
            Err(join) => {
                tracing::error!(error = %join, "tail matching task failed");
                return;
            }
        };
        for record in records {
            let data = Value::Object(record).to_string();
            if tx.send(Ok(Event::default().data(data))).await.is_err() {
                return;
            }
        }
    }
}

/// An `event: error` with the JSON error body the API uses elsewhere.
fn error_event(code: &str, message: &str) -> Event {
    let body = serde_json::json!({"error": {"code": code, "message": message}});
    Event::default().event("error").data(body.to_string())
}

/// Resolves once `shutdown` holds true; never if its sender is gone without sending it.
async fn shutting_down(shutdown: &mut watch::Receiver<bool>) {
    loop {
        if *shutdown.borrow_and_update() {
            return;
        }
        if shutdown.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;
    use tantivy::schema::OwnedValue;
    use tantivy::DateTime;

    use super::*;
    use crate::testutil::{snapshot, Fixture};

    fn doc(
        snapshot: &StreamSnapshot,
        ts: i64,
        level: &str,
        message: &str,
        app: &str,
    ) -> TantivyDocument {
        let f = |name: &str| snapshot.schema.get_field(name).unwrap();
        let mut doc = TantivyDocument::new();
        doc.add_date(f("timestamp"), DateTime::from_timestamp_nanos(ts));
        doc.add_text(f("level"), level);
        doc.add_text(f("message"), message);
        let mut labels = BTreeMap::new();
        labels.insert("app".to_string(), OwnedValue::Str(app.to_string()));
        doc.add_object(f("labels"), labels);
        doc
    }

    fn matcher(q: &str, fields: &str) -> TailMatcher {
        let request = TailRequest {
            q: Some(q.to_string()),
            fields: Some(FieldList::Joined(fields.to_string())),
        };
        TailMatcher::new(snapshot(), request, &QueryLimits::default()).unwrap()
    }

    fn batch() -> Vec<TantivyDocument> {
        let s = snapshot();
        vec![
            doc(&s, 30, "error", "connection reset by peer", "web"),
            doc(&s, 10, "info", "request served", "web"),
            doc(&s, 20, "error", "reset the connection", "api"),
            doc(&s, 5, "error", "disk full", "web"),
        ]
    }

    #[test]
    fn matches_like_a_search_in_timestamp_order() {
        let m = matcher("level:error AND labels.app:web", "message");
        assert_eq!(
            Value::Array(
                m.matching(&batch())
                    .unwrap()
                    .into_iter()
                    .map(Value::Object)
                    .collect()
            ),
            json!([{"message": "disk full"}, {"message": "connection reset by peer"}])
        );
        let m = matcher("\"connection reset\"", "message,level");
        assert_eq!(
            Value::Array(
                m.matching(&batch())
                    .unwrap()
                    .into_iter()
                    .map(Value::Object)
                    .collect()
            ),
            json!([{"message": "connection reset by peer", "level": "error"}])
        );
    }

    #[test]
    fn match_all_keeps_every_record_in_timestamp_order() {
        let m = matcher("*", "timestamp");
        let records: Vec<Value> = m
            .matching(&batch())
            .unwrap()
            .into_iter()
            .map(Value::Object)
            .collect();
        assert_eq!(
            records,
            vec![
                json!({"timestamp": "1970-01-01T00:00:00.000000005Z"}),
                json!({"timestamp": "1970-01-01T00:00:00.000000010Z"}),
                json!({"timestamp": "1970-01-01T00:00:00.000000020Z"}),
                json!({"timestamp": "1970-01-01T00:00:00.000000030Z"}),
            ]
        );
        assert!(m.matching(&[]).unwrap().is_empty());
    }

    #[test]
    fn bad_queries_and_fields_are_refused() {
        let request = TailRequest {
            q: Some("level:(error".to_string()),
            fields: None,
        };
        let err = TailMatcher::new(snapshot(), request, &QueryLimits::default())
            .err()
            .unwrap();
        assert_eq!(err.code().as_str(), "invalid_query");
        let request = TailRequest {
            q: None,
            fields: Some(FieldList::Joined("nope".to_string())),
        };
        let err = TailMatcher::new(snapshot(), request, &QueryLimits::default())
            .err()
            .unwrap();
        assert_eq!(err.to_string(), "`fields`: unknown field(s) `nope`");
    }

    async fn open_tail(
        uri: &str,
        capacity: usize,
    ) -> (
        axum::http::StatusCode,
        axum::body::BodyDataStream,
        broadcast::Sender<Arc<TailBatch>>,
        watch::Sender<bool>,
    ) {
        use tower::ServiceExt;
        let (tx, _) = broadcast::channel(capacity);
        let (stop, stop_rx) = watch::channel(false);
        let app = routes(
            Arc::new(Fixture::with_tail(snapshot(), tx.clone())),
            QueryLimits::default(),
            stop_rx,
        );
        let request = axum::http::Request::get(uri)
            .body(axum::body::Body::empty())
            .unwrap();
        let response = app.oneshot(request).await.unwrap();
        (
            response.status(),
            response.into_body().into_data_stream(),
            tx,
            stop,
        )
    }

    /// Reads the body until it holds `events` events (blank-line terminated) or ends.
    async fn read_events(body: &mut axum::body::BodyDataStream, events: usize) -> String {
        use futures::StreamExt;
        let mut text = String::new();
        let read = async {
            while text.matches("\n\n").count() < events {
                match body.next().await {
                    Some(chunk) => text.push_str(std::str::from_utf8(&chunk.unwrap()).unwrap()),
                    None => break,
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(20), read)
            .await
            .expect("events in time");
        text
    }

    /// A subscriber connected before a batch gets exactly its matching records; one that
    /// falls behind the broadcast gets a final `lagged` error and the stream ends.
    #[tokio::test]
    async fn sse_records_then_lagged() {
        let (status, mut body, tx, _stop) = open_tail(
            "/api/v1/logs/tail?q=level:error%20AND%20labels.app:web&fields=message",
            2,
        )
        .await;
        assert_eq!(status, axum::http::StatusCode::OK);
        assert!(tx.send(Arc::new(TailBatch { docs: batch() })).is_ok());
        assert_eq!(
            read_events(&mut body, 2).await,
            "data: {\"message\":\"disk full\"}\n\ndata: {\"message\":\"connection reset by peer\"}\n\n"
        );
        // Five batches while the subscriber cannot run (single-threaded test runtime): it
        // misses three of them.
        for _ in 0..5 {
            assert!(tx.send(Arc::new(TailBatch { docs: batch() })).is_ok());
        }
        let text = read_events(&mut body, 10).await;
        assert_eq!(
            text,
            "event: error\ndata: {\"error\":{\"code\":\"lagged\",\"message\":\"the client fell 3 \
             batches behind and was disconnected; narrow the query or read faster\"}}\n\n"
        );
    }

    #[tokio::test]
    async fn sse_ends_at_shutdown() {
        let (_, mut body, _tx, stop) = open_tail("/api/v1/logs/tail", 4).await;
        stop.send(true).unwrap();
        assert_eq!(read_events(&mut body, 1).await, "");
    }

    #[tokio::test]
    async fn tail_errors_are_json() {
        for (uri, status) in [
            ("/api/v1/nope/tail", 404),
            ("/api/v1/logs/tail?q=level:(x", 400),
            ("/api/v1/logs/tail?limit=3", 400),
        ] {
            let (got, mut body, _, _) = open_tail(uri, 4).await;
            assert_eq!(got.as_u16(), status, "{uri}");
            let text = read_events(&mut body, 1).await;
            assert!(text.starts_with("{\"error\":{\"code\":"), "{uri}: {text}");
        }
    }
}
