//! HTTP routes of the search API: `GET|POST /api/v1/{stream}/search`, over any
//! [`StreamSource`] (the local indexer's hot indexes and splits).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use tracing::Instrument;
use trawl_index::StreamSource;
use trawl_model::Timestamp;

use crate::access::Scope;
use crate::error::{Error, Result};
use crate::request::{json_or_default, QueryLimits, SearchRequest};
use crate::search::{search, SearchResponse};

/// What the routes report about each search, for metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchObservation {
    /// The stream searched, as given in the path.
    pub stream: String,
    /// Time from request to response.
    pub elapsed: Duration,
    /// The HTTP status answered.
    pub status: u16,
    /// Whether the answer was partial because the time budget ran out.
    pub timed_out: bool,
}

/// A hook called once per search with its [`SearchObservation`] (e.g. a latency histogram).
pub type SearchObserver = Arc<dyn Fn(&SearchObservation) + Send + Sync>;

/// Extra time given to a search task past its budget before the client gets a 504: the
/// budget is checked between segments, so one large segment may overrun it a little.
const TIMEOUT_GRACE: Duration = Duration::from_secs(2);

/// The search routes' state; `extra` is the observer of each search.
type AppState<S> = crate::state::AppState<S, Option<SearchObserver>>;

/// The search routes: `GET /api/v1/{stream}/search` (parameters in the query string) and
/// `POST /api/v1/{stream}/search` (a JSON body, which may add `aggs`).
pub fn routes<S: StreamSource>(source: Arc<S>, limits: QueryLimits) -> Router {
    build(source, limits, None)
}

/// [`routes`] with a hook called after every search.
pub fn routes_with_observer<S: StreamSource>(
    source: Arc<S>,
    limits: QueryLimits,
    observer: SearchObserver,
) -> Router {
    build(source, limits, Some(observer))
}

fn build<S: StreamSource>(
    source: Arc<S>,
    limits: QueryLimits,
    observer: Option<SearchObserver>,
) -> Router {
    let state = AppState {
        source,
        limits,
        extra: observer,
    };
    Router::new()
        .route(
            "/api/v1/{stream}/search",
            get(get_search::<S>).post(post_search::<S>),
        )
        .route(
            crate::distributed::LEAF_SEARCH_PATH,
            axum::routing::post(leaf_search::<S>),
        )
        .with_state(state)
}

async fn get_search<S: StreamSource>(
    State(state): State<AppState<S>>,
    scope: Scope,
    Path(stream): Path<String>,
    query: std::result::Result<Query<SearchRequest>, QueryRejection>,
) -> Response {
    let request = match query {
        Ok(Query(request)) if request.aggs.is_some() => Err(Error::InvalidArgument(
            "`aggs` is accepted in the body of a POST search only".to_string(),
        )),
        Ok(Query(request)) => Ok(request),
        Err(rejection) => Err(Error::from(rejection)),
    };
    respond(state, stream, request, scope).await
}

async fn post_search<S: StreamSource>(
    State(state): State<AppState<S>>,
    scope: Scope,
    Path(stream): Path<String>,
    body: std::result::Result<Bytes, BytesRejection>,
) -> Response {
    let request = json_or_default::<SearchRequest>(body);
    respond(state, stream, request, scope).await
}

async fn respond<S: StreamSource>(
    state: AppState<S>,
    stream: String,
    request: Result<SearchRequest>,
    scope: Scope,
) -> Response {
    let started = Instant::now();
    let span = tracing::debug_span!("search", stream = %stream);
    let result = match request {
        Ok(request) => {
            execute(&state, stream.clone(), request, scope)
                .instrument(span)
                .await
        }
        Err(err) => Err(err),
    };
    let (status, timed_out, response) = match result {
        Ok(answer) => {
            let timed_out = answer.timed_out;
            (200, timed_out, Json(answer).into_response())
        }
        Err(err) => (
            err.code().http_status().as_u16(),
            false,
            err.into_response(),
        ),
    };
    if let Some(observer) = &state.extra {
        observer(&SearchObservation {
            stream,
            elapsed: started.elapsed(),
            status,
            timed_out,
        });
    }
    response
}

async fn execute<S: StreamSource>(
    state: &AppState<S>,
    stream: String,
    request: SearchRequest,
    scope: Scope,
) -> Result<SearchResponse> {
    if trawl_model::validate_stream_name(&stream).is_err() {
        // A name that cannot be a stream is not one.
        return Err(Error::UnknownStream(stream.chars().take(80).collect()));
    }
    let mut parsed = request.parse(Timestamp::now(), &state.limits)?;
    parsed.scope = scope;
    let budget = parsed.timeout;
    let source = Arc::clone(&state.source);
    let limits = state.limits.clone();
    let task = tokio::task::spawn_blocking(move || {
        let snapshot = source.snapshot(&stream, parsed.start, parsed.end)?;
        search(&snapshot, &parsed, &limits)
    });
    match tokio::time::timeout(budget + TIMEOUT_GRACE, task).await {
        Err(_) => Err(Error::Timeout(
            u64::try_from(budget.as_millis()).unwrap_or(u64::MAX),
        )),
        Ok(Err(join)) => Err(Error::Internal(format!("search task failed: {join}"))),
        Ok(Ok(answer)) => answer,
    }
}

/// A leaf search for a root searcher: the search body in, a postcard-encoded
/// [`crate::LeafResponse`] out (errors as usual JSON). The body may carry the root caller's
/// restriction as `"scope"` ([`crate::distributed::LEAF_SCOPE_KEY`]); the leaf applies it
/// intersected with the scope of its own caller's token, so a forwarded scope can only narrow.
async fn leaf_search<S: StreamSource>(
    State(state): State<AppState<S>>,
    scope: Scope,
    Path(stream): Path<String>,
    body: Bytes,
) -> Response {
    let result = async {
        if trawl_model::validate_stream_name(&stream).is_err() {
            return Err(Error::UnknownStream(stream.chars().take(80).collect()));
        }
        // The splits the root searched itself (from the shared tier) are left out here.
        let (body, forwarded, excluded) = crate::distributed::leaf_body(&body)?;
        let request: SearchRequest = serde_json::from_value(body)
            .map_err(|err| Error::InvalidArgument(format!("request body: {err}")))?;
        let mut parsed = request.parse(Timestamp::now(), &state.limits)?;
        parsed.scope = scope.intersect(&forwarded);
        let source = Arc::clone(&state.source);
        let limits = state.limits.clone();
        let leaf = tokio::task::spawn_blocking(move || {
            let mut snapshot = source.snapshot(&stream, parsed.start, parsed.end)?;
            crate::remote::leave_out(&mut snapshot, &excluded);
            crate::search::search_leaf(&snapshot, &parsed, &limits)
        })
        .await
        .map_err(|join| Error::Internal(format!("leaf search task failed: {join}")))??;
        postcard::to_stdvec(&leaf)
            .map_err(|err| Error::Internal(format!("encoding a leaf answer: {err}")))
    }
    .await;
    crate::distributed::leaf_answer(result)
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use axum::body::{to_bytes, Body};
    use axum::http::{Request, StatusCode};
    use serde_json::{json, Value};
    use tower::ServiceExt;

    use super::*;
    use crate::testutil::{snapshot, Fixture};

    fn app() -> Router {
        routes(Arc::new(Fixture::new(snapshot())), QueryLimits::default())
    }

    async fn call(app: Router, request: Request<Body>) -> (StatusCode, Value) {
        let response = app.oneshot(request).await.unwrap();
        let status = response.status();
        let body = to_bytes(response.into_body(), 1 << 20).await.unwrap();
        (status, serde_json::from_slice(&body).unwrap())
    }

    async fn get(uri: &str) -> (StatusCode, Value) {
        call(app(), Request::get(uri).body(Body::empty()).unwrap()).await
    }

    async fn post(uri: &str, body: Value) -> (StatusCode, Value) {
        let request = Request::post(uri)
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
        call(app(), request).await
    }

    #[tokio::test]
    async fn get_search() {
        let (status, body) =
            get("/api/v1/logs/search?q=level:error&limit=2&sort=asc&fields=pod,level").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["total"], json!(5));
        assert_eq!(
            body["hits"],
            json!([{"pod": "p0", "level": "error"}, {"pod": "p4", "level": "error"}])
        );
        assert!(body["took_ms"].is_u64());
        assert!(body["cursor"].is_string());
        let cursor = body["cursor"].as_str().unwrap();
        let (status, body) = get(&format!(
            "/api/v1/logs/search?q=level:error&limit=2&sort=asc&fields=pod&search_after={cursor}"
        ))
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["hits"], json!([{"pod": "p3"}, {"pod": "p7"}]));
    }

    #[tokio::test]
    async fn get_search_with_nanosecond_bounds() {
        let (status, body) = get(
            "/api/v1/logs/search?start=2023-11-14T22:14:00.000000001Z&end=2023-11-14T22:14:00.000000002Z&fields=pod&sort=asc",
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["total"], json!(2));
        assert_eq!(body["hits"], json!([{"pod": "p1"}, {"pod": "p4"}]));
    }

    #[tokio::test]
    async fn bad_query_is_400_with_error_body() {
        let (status, body) = get("/api/v1/logs/search?q=level:(error").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["error"]["code"], json!("invalid_query"));
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.starts_with("invalid query: syntax error at position"),
            "{message}"
        );
        assert_eq!(body.as_object().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn parameter_errors() {
        let (status, body) = get("/api/v1/logs/search?limit=10001").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(
            body,
            json!({"error": {"code": "invalid_argument", "message": "`limit` 10001 exceeds the maximum of 10000"}})
        );
        let (status, body) = get("/api/v1/logs/search?limt=5").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown field `limt`"));
        let (status, _) = get("/api/v1/logs/search?sort=up").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let (status, body) = post("/api/v1/logs/search", json!({"qq": "x"})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["error"]["code"], json!("invalid_argument"));
    }

    #[tokio::test]
    async fn a_body_past_the_limit_is_413_payload_too_large() {
        // Past axum's default body limit of 2 MiB: the envelope, not axum's plain text.
        let body = json!({"q": "x".repeat(3 << 20)});
        let (status, body) = post("/api/v1/logs/search", body).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(
            body,
            json!({"error": {"code": "payload_too_large", "message": "request body: Failed to buffer the request body: length limit exceeded"}})
        );
    }

    #[tokio::test]
    async fn unknown_stream_is_404() {
        for uri in ["/api/v1/nope/search", "/api/v1/Bad..Name/search"] {
            let (status, body) = get(uri).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{uri}");
            assert_eq!(body["error"]["code"], json!("unknown_stream"));
        }
    }

    #[tokio::test]
    async fn post_search_with_aggs() {
        let (status, body) = post(
            "/api/v1/logs/search",
            json!({
                "q": "* -level:debug",
                "limit": 0,
                "aggs": {"ns": {"terms": {"field": "namespace"}}}
            }),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["total"], json!(10));
        assert_eq!(body["hits"], json!([]));
        assert!(body.get("cursor").is_none());
        let buckets: Vec<(String, u64)> = body["aggregations"]["ns"]["buckets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| {
                (
                    b["key"].as_str().unwrap().to_string(),
                    b["doc_count"].as_u64().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            buckets,
            vec![
                ("payments".to_string(), 6),
                ("shop".to_string(), 3),
                ("kube-system".to_string(), 1)
            ]
        );
    }

    #[tokio::test]
    async fn aggs_in_a_get_are_refused() {
        let (status, body) = get("/api/v1/logs/search?aggs=x").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(
            body["error"]["message"],
            json!("`aggs` is accepted in the body of a POST search only")
        );
    }

    #[tokio::test]
    async fn observer_sees_every_search() {
        let seen: Arc<Mutex<Vec<(String, u16)>>> = Arc::default();
        let sink = Arc::clone(&seen);
        let app = routes_with_observer(
            Arc::new(Fixture::new(snapshot())),
            QueryLimits::default(),
            Arc::new(move |o: &SearchObservation| {
                sink.lock().unwrap().push((o.stream.clone(), o.status));
            }),
        );
        let request = Request::get("/api/v1/logs/search")
            .body(Body::empty())
            .unwrap();
        let (status, _) = call(app.clone(), request).await;
        assert_eq!(status, StatusCode::OK);
        let request = Request::get("/api/v1/nope/search")
            .body(Body::empty())
            .unwrap();
        let (status, _) = call(app, request).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(
            *seen.lock().unwrap(),
            vec![("logs".to_string(), 200), ("nope".to_string(), 404)]
        );
    }
}
