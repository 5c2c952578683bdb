//! The HTTP routes of the Elasticsearch-compatible API, and the response conventions every
//! Elasticsearch client relies on: the `X-Elastic-Product: Elasticsearch` header on every
//! answer, [`trawl_model::elastic::COMPAT_JSON`] when the client asked for it (otherwise
//! `application/json`), and the major version a client expects: `GET /` reports 8.x, or the
//! major of an older go-elasticsearch client (KubeSphere's ks-apiserver detects the version
//! with its v6 client and accepts 5, 6 and 7), and `hits.total` is a number for clients older
//! than 7 (or with `rest_total_hits_as_int=true`), an object otherwise.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Map, Value};
use tantivy::schema::Schema;
use trawl_index::StreamSource;
use trawl_model::Timestamp;

use futures::future::BoxFuture;

use super::body::SearchBody;
use super::error::{EsError, EsResult};
use super::mapping::{
    cat_rows, cat_text, field_caps, mapping, resolve_indices, resolve_names, uuid_of, Chosen,
};
use super::part::{
    answer, search_part, Answering, LeafRequest, LEAF_ELASTIC_SCHEMAS_PATH,
    LEAF_ELASTIC_SEARCH_PATH,
};
use super::IndexInfo;
use crate::access::Scope;
use crate::error::Error;
use crate::request::QueryLimits;
use crate::state::AppState;

/// Where the API is mounted.
const BASE: &str = "/api/v1/_elastic";

/// The Elasticsearch version announced: 8.x, what current clients and Grafana expect.
const VERSION: &str = "8.11.0";

/// The version announced to a go-elasticsearch client of an older major, by major.
const OLDER_VERSIONS: &[(u8, &str, &str)] = &[
    (5, "5.6.16", "6.6.1"),
    (6, "6.8.23", "7.7.3"),
    (7, "7.17.0", "8.11.1"),
];

/// Extra time given to a search past its budget before the client gets an error (the budget
/// is checked between segments).
const TIMEOUT_GRACE: Duration = Duration::from_secs(2);

/// The index name patterns of the routes' state: pattern → stream.
type Patterns = Arc<BTreeMap<String, String>>;

/// What answers the API's requests: one node's streams ([`AppState`] over a
/// [`StreamSource`]), or a searcher's indexers and shared tier
/// ([`crate::fanin_elastic::RootElastic`]). The routes, the request parsing and the answers'
/// shapes are the same for both.
pub(crate) trait Backend: Clone + Send + Sync + 'static {
    /// Index name patterns → streams.
    fn patterns(&self) -> &BTreeMap<String, String>;
    /// One `_search` over the streams `call.index` names, answered in Elasticsearch's shape.
    fn search(&self, call: SearchCall) -> BoxFuture<'static, EsResult<Value>>;
    /// Every stream with the documents and bytes `scope` may see, in name order.
    fn indices(
        &self,
        scope: Scope,
        headers: HeaderMap,
    ) -> BoxFuture<'static, EsResult<Vec<IndexInfo>>>;
    /// The schemas of `streams`, which exist.
    fn schemas(
        &self,
        streams: Vec<String>,
        headers: HeaderMap,
    ) -> BoxFuture<'static, EsResult<Vec<(String, Schema)>>>;
}

/// One `_search` as a handler received it.
pub(crate) struct SearchCall {
    pub index: String,
    pub body: Value,
    pub params: BTreeMap<String, String>,
    pub scope: Scope,
    pub headers: HeaderMap,
    pub answering: Answering,
}

impl<S: StreamSource> Backend for AppState<S, Patterns> {
    fn patterns(&self) -> &BTreeMap<String, String> {
        &self.extra
    }

    fn search(&self, call: SearchCall) -> BoxFuture<'static, EsResult<Value>> {
        let state = self.clone();
        Box::pin(async move { run_search(&state, call).await })
    }

    fn indices(
        &self,
        scope: Scope,
        _headers: HeaderMap,
    ) -> BoxFuture<'static, EsResult<Vec<IndexInfo>>> {
        let source = Arc::clone(&self.source);
        Box::pin(blocking(move || {
            let infos = super::indices(source.as_ref());
            if !scope.is_restricted() {
                return Ok(infos);
            }
            infos
                .into_iter()
                .map(|mut info| {
                    let snapshot = source
                        .snapshot(&info.name, None, None)
                        .map_err(|e| EsError::from(Error::from(e)))?;
                    let visible = crate::stats::visible_counts(&snapshot, &scope)?;
                    info.bytes = crate::stats::proportional(info.bytes, visible.docs, info.docs);
                    info.docs = visible.docs;
                    Ok(info)
                })
                .collect()
        }))
    }

    fn schemas(
        &self,
        streams: Vec<String>,
        _headers: HeaderMap,
    ) -> BoxFuture<'static, EsResult<Vec<(String, Schema)>>> {
        let source = Arc::clone(&self.source);
        Box::pin(blocking(move || {
            streams
                .into_iter()
                .map(|s| {
                    let snapshot = source
                        .schema_snapshot(&s)
                        .map_err(|e| EsError::from(Error::from(e)))?;
                    Ok((s, snapshot.schema))
                })
                .collect()
        }))
    }
}

/// What the Elasticsearch API takes from the configuration besides the query limits.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ElasticSettings {
    /// Index name patterns → streams (`query.elastic_index_patterns`).
    pub index_patterns: BTreeMap<String, String>,
}

impl ElasticSettings {
    /// The settings of the `[query]` section.
    pub fn from_config(config: &trawl_config::QueryConfig) -> ElasticSettings {
        ElasticSettings {
            index_patterns: config.elastic_index_patterns.clone(),
        }
    }
}

/// The major version of the client, when it says: go-elasticsearch's `User-Agent`
/// (`go-elasticsearch/6.8.2 (...)`), or `compatible-with=N` in `Accept`.
fn client_major(headers: &HeaderMap) -> Option<u8> {
    let text = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(agent) = text(header::USER_AGENT) {
        if let Some(rest) = agent.strip_prefix("go-elasticsearch/") {
            return rest.split('.').next().and_then(|m| m.parse().ok());
        }
    }
    let accept = text(header::ACCEPT)?;
    let (_, rest) = accept.split_once("compatible-with=")?;
    rest.trim()
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// Whether `hits.total` is a plain number for this request: clients before 7 know no other
/// form, and 7's `rest_total_hits_as_int=true` asks for it.
fn total_as_int(headers: &HeaderMap, params: &BTreeMap<String, String>) -> bool {
    client_major(headers).is_some_and(|major| major < 7)
        || params
            .get("rest_total_hits_as_int")
            .is_some_and(|v| v.is_empty() || v == "true")
}

/// The routes under `/api/v1/_elastic`: cluster info (`GET|HEAD /`), `_cluster/health`,
/// `[/{index}]/_search` (GET|POST), `[/{index}]/_msearch` (NDJSON), `[/{index}]/_count`,
/// `[/{index}]/_mapping`, `[/{index}]/_field_caps`, `_cat/indices[/{index}]`, and
/// `GET|HEAD /{index}`. `{index}` is a stream name, a comma list, a `*` pattern or `_all`.
/// Bad input answers 4xx in Elasticsearch's error shape; nothing here panics on input.
///
/// Index names matching a pattern of `settings.index_patterns` are that pattern's stream; their
/// hits come back in the KubeSphere writers' shape ([`trawl_model::shippers::kubesphere_source`]).
pub fn routes<S: StreamSource>(
    source: Arc<S>,
    limits: QueryLimits,
    settings: ElasticSettings,
) -> Router {
    let state = AppState {
        source,
        limits,
        extra: Arc::new(settings.index_patterns),
    };
    router_of(state.clone()).merge(
        Router::new()
            .route(
                LEAF_ELASTIC_SEARCH_PATH,
                axum::routing::post(leaf_search::<S>),
            )
            .route(
                LEAF_ELASTIC_SCHEMAS_PATH,
                axum::routing::post(leaf_schemas::<S>),
            )
            .with_state(state),
    )
}

/// The API's routes over `backend`.
pub(crate) fn router_of<B: Backend>(backend: B) -> Router {
    let path = |p: &str| format!("{BASE}{p}");
    Router::new()
        .route(BASE, get(info))
        .route(&path("/"), get(info))
        .route(&path("/_cluster/health"), get(health::<B>))
        .route(&path("/_cluster/health/{index}"), get(health::<B>))
        .route(
            &path("/_search"),
            get(search_all::<B>).post(search_all::<B>),
        )
        .route(
            &path("/_search/scroll"),
            get(scroll).post(scroll).delete(scroll),
        )
        .route(
            &path("/{index}/_search"),
            get(search::<B>).post(search::<B>),
        )
        .route(
            &path("/_msearch"),
            get(msearch_all::<B>).post(msearch_all::<B>),
        )
        .route(
            &path("/{index}/_msearch"),
            get(msearch::<B>).post(msearch::<B>),
        )
        .route(&path("/_count"), get(count_all::<B>).post(count_all::<B>))
        .route(&path("/{index}/_count"), get(count::<B>).post(count::<B>))
        .route(&path("/_mapping"), get(mapping_all::<B>))
        .route(&path("/{index}/_mapping"), get(mapping_of::<B>))
        .route(
            &path("/_field_caps"),
            get(field_caps_all::<B>).post(field_caps_all::<B>),
        )
        .route(
            &path("/{index}/_field_caps"),
            get(field_caps_of::<B>).post(field_caps_of::<B>),
        )
        .route(&path("/_cat/indices"), get(cat_all::<B>))
        .route(&path("/_cat/indices/{index}"), get(cat_of::<B>))
        .route(&path("/{index}"), get(index_info::<B>))
        .with_state(backend)
        .layer(axum::middleware::from_fn(elastic_headers))
}

/// Adds `X-Elastic-Product` to every answer and answers in the compatibility content type when
/// the request used it (in `Accept` or `Content-Type`).
async fn elastic_headers(request: Request, next: Next) -> Response {
    let compat = [header::ACCEPT, header::CONTENT_TYPE].iter().any(|h| {
        request
            .headers()
            .get(h)
            .and_then(|v| v.to_str().ok())
            .is_some_and(trawl_model::elastic::asks_compat)
    });
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        "x-elastic-product",
        HeaderValue::from_static("Elasticsearch"),
    );
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if compat && is_json {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(trawl_model::elastic::COMPAT_JSON),
        );
    }
    response
}

/// The URL's parameters; a malformed query string is a 400.
fn params_of(uri: &Uri) -> EsResult<BTreeMap<String, String>> {
    axum::extract::Query::<BTreeMap<String, String>>::try_from_uri(uri)
        .map(|q| q.0)
        .map_err(|err| EsError::illegal_argument(format!("query string: {}", err.body_text())))
}

/// A JSON body; empty is `null`.
fn json_body(body: &Bytes) -> EsResult<Value> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    serde_json::from_slice(body)
        .map_err(|err| EsError::parsing(format!("request body is not valid JSON: {err}")))
}

fn respond(result: EsResult<Value>) -> Response {
    match result {
        Ok(value) => Json(value).into_response(),
        Err(err) => err.into_response(),
    }
}

/// Scrolling is not implemented: 400 naming it (KubeSphere's log export scrolls).
async fn scroll() -> Response {
    EsError::unsupported("[scroll] (page with search_after instead)").into_response()
}

/// `GET /`: the cluster's name and version, the version a client of an older major expects.
async fn info(headers: HeaderMap) -> Response {
    let (number, lucene) = client_major(&headers)
        .and_then(|major| OLDER_VERSIONS.iter().find(|(m, _, _)| *m == major))
        .map_or((VERSION, "9.8.0"), |(_, number, lucene)| (*number, *lucene));
    Json(json!({
        "name": "trawl",
        "cluster_name": "trawl",
        "cluster_uuid": uuid_of("trawl-cluster"),
        "version": {
            "number": number,
            "build_flavor": "default",
            "build_type": "trawl",
            "build_hash": "trawl",
            "build_date": "2023-11-04T10:04:57.184859352Z",
            "build_snapshot": false,
            "lucene_version": lucene,
            "minimum_wire_compatibility_version": "7.17.0",
            "minimum_index_compatibility_version": "7.0.0",
            "trawl_version": env!("CARGO_PKG_VERSION"),
        },
        "tagline": "You Know, for Search"
    }))
    .into_response()
}

async fn health<B: Backend>(
    State(state): State<B>,
    headers: HeaderMap,
    index: Option<Path<String>>,
) -> Response {
    let result = async {
        let indices = state.indices(Scope::All, headers).await?;
        let names: Vec<String> = indices.iter().map(|i| i.name.clone()).collect();
        let chosen = match &index {
            Some(Path(expr)) => resolve_names(expr, &names, state.patterns())?,
            None => names,
        };
        let shards = chosen.len();
        Ok(json!({
            "cluster_name": "trawl",
            "status": "green",
            "timed_out": false,
            "number_of_nodes": 1,
            "number_of_data_nodes": 1,
            "active_primary_shards": shards,
            "active_shards": shards,
            "relocating_shards": 0,
            "initializing_shards": 0,
            "unassigned_shards": 0,
            "delayed_unassigned_shards": 0,
            "number_of_pending_tasks": 0,
            "number_of_in_flight_fetch": 0,
            "task_max_waiting_in_queue_millis": 0,
            "active_shards_percent_as_number": 100.0
        }))
    }
    .await;
    respond(result)
}

/// Runs blocking work (index metadata, searches) off the async runtime.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> EsResult<T> + Send + 'static,
) -> EsResult<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|join| EsError::from(Error::Internal(format!("task failed: {join}"))))?
}

/// The streams an index expression names (see [`resolve_indices`]).
async fn streams_of<B: Backend>(
    state: &B,
    expression: &str,
    ignore_unavailable: bool,
    headers: &HeaderMap,
) -> EsResult<Vec<Chosen>> {
    let indices = state.indices(Scope::All, headers.clone()).await?;
    let names: Vec<String> = indices.into_iter().map(|i| i.name).collect();
    resolve_indices(expression, &names, state.patterns(), ignore_unavailable)
}

impl Answering {
    fn of(headers: &HeaderMap, params: &BTreeMap<String, String>) -> Answering {
        Answering {
            total_as_int: total_as_int(headers, params),
            ignore_unavailable: params
                .get("ignore_unavailable")
                .is_some_and(|v| v.is_empty() || v == "true"),
        }
    }
}

async fn search_all<B: Backend>(
    state: State<B>,
    scope: Scope,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    search(state, scope, Path("_all".to_string()), uri, headers, body).await
}

async fn search<B: Backend>(
    State(state): State<B>,
    scope: Scope,
    Path(index): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let result = async {
        let params = params_of(&uri)?;
        let body = json_body(&body)?;
        let answering = Answering::of(&headers, &params);
        state
            .search(SearchCall {
                index,
                body,
                params,
                scope,
                headers,
                answering,
            })
            .await
    }
    .await;
    respond(result)
}

async fn count_all<B: Backend>(
    state: State<B>,
    scope: Scope,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    count(state, scope, Path("_all".to_string()), uri, headers, body).await
}

/// `_count`: `{"count": n, "_shards": {...}}` for an optional `query`.
async fn count<B: Backend>(
    State(state): State<B>,
    scope: Scope,
    Path(index): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let result = async {
        let mut params = params_of(&uri)?;
        let answering = Answering {
            total_as_int: false,
            ..Answering::of(&headers, &params)
        };
        params.retain(|k, _| matches!(k.as_str(), "q" | "df" | "default_operator"));
        let body = json_body(&body)?;
        let mut search_body = Map::new();
        if let Some(object) = body.as_object() {
            for (key, value) in object {
                if key != "query" {
                    return Err(EsError::parsing(format!(
                        "request does not support [{key}]"
                    )));
                }
                search_body.insert(key.clone(), value.clone());
            }
        } else if !body.is_null() {
            return Err(EsError::parsing("the count body must be an object"));
        }
        search_body.insert("size".into(), json!(0));
        search_body.insert("track_total_hits".into(), json!(true));
        let search_body = Value::Object(search_body);
        let answer = state
            .search(SearchCall {
                index,
                body: search_body,
                params,
                scope,
                headers,
                answering,
            })
            .await?;
        Ok(json!({
            "count": answer["hits"]["total"]["value"],
            "_shards": answer["_shards"],
        }))
    }
    .await;
    respond(result)
}

async fn msearch_all<B: Backend>(
    state: State<B>,
    scope: Scope,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    msearch_inner(state, scope, None, uri, headers, body).await
}

async fn msearch<B: Backend>(
    state: State<B>,
    scope: Scope,
    Path(index): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    msearch_inner(state, scope, Some(index), uri, headers, body).await
}

/// `_msearch`: NDJSON header/body pairs; each search answers on its own, an error in one is
/// that item's `error` (with its `status`), never the whole request's.
async fn msearch_inner<B: Backend>(
    State(state): State<B>,
    scope: Scope,
    index: Option<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let started = Instant::now();
    let result = async {
        let params = params_of(&uri)?;
        let answering = Answering::of(&headers, &params);
        let text = std::str::from_utf8(&body)
            .map_err(|_| EsError::parsing("the _msearch body is not UTF-8"))?;
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        if lines.is_empty() {
            return Err(EsError::illegal_argument("no requests added"));
        }
        if !lines.len().is_multiple_of(2) {
            return Err(EsError::illegal_argument(
                "the _msearch body must hold header and body lines in pairs",
            ));
        }
        let mut searches = Vec::new();
        for pair in lines.chunks(2) {
            let item = parse_msearch_item(pair[0], pair[1], index.as_deref());
            searches.push(item);
        }
        // URL parameters of _msearch are defaults of every search; only a few apply.
        let item_params: BTreeMap<String, String> = params
            .into_iter()
            .filter(|(k, _)| matches!(k.as_str(), "track_total_hits"))
            .collect();
        let futures = searches.into_iter().map(|item| {
            let state = state.clone();
            let item_params = item_params.clone();
            let scope = scope.clone();
            let headers = headers.clone();
            async move {
                match item {
                    Ok((index, body)) => {
                        let call = SearchCall {
                            index,
                            body,
                            params: item_params,
                            scope,
                            headers,
                            answering,
                        };
                        match state.search(call).await {
                            Ok(mut answer) => {
                                answer["status"] = json!(200);
                                answer
                            }
                            Err(err) => err.body(),
                        }
                    }
                    Err(err) => err.body(),
                }
            }
        });
        let responses = futures::future::join_all(futures).await;
        Ok(json!({"took": millis(started), "responses": responses}))
    }
    .await;
    respond(result)
}

fn parse_msearch_item(
    header: &str,
    body: &str,
    default_index: Option<&str>,
) -> EsResult<(String, Value)> {
    let header: Value = serde_json::from_str(header)
        .map_err(|err| EsError::parsing(format!("_msearch header is not valid JSON: {err}")))?;
    let body: Value = serde_json::from_str(body)
        .map_err(|err| EsError::parsing(format!("_msearch body is not valid JSON: {err}")))?;
    let index = match header.get("index") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| i.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| EsError::parsing("_msearch header [index] must hold strings"))?
            .join(","),
        Some(other) => {
            return Err(EsError::parsing(format!(
                "_msearch header [index] malformed: {other}"
            )))
        }
        None => default_index.unwrap_or("_all").to_string(),
    };
    Ok((index, body))
}

fn millis(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// One `_search` of one node over the streams `call.index` names: the node is the only part.
async fn run_search<S: StreamSource>(
    state: &AppState<S, Patterns>,
    call: SearchCall,
) -> EsResult<Value> {
    let started = Instant::now();
    let chosen = streams_of(
        state,
        &call.index,
        call.answering.ignore_unavailable,
        &call.headers,
    )
    .await?;
    let parsed = SearchBody::parse(&call.body, &call.params, &state.limits)?;
    let now = Timestamp::now();
    let budget = parsed
        .timeout
        .map_or(state.limits.timeout, |t| t.min(state.limits.timeout));
    let source = Arc::clone(&state.source);
    let limits = state.limits.clone();
    let answering = call.answering;
    let scope = call.scope;
    let task = tokio::task::spawn_blocking(move || -> EsResult<Value> {
        let part = node_part(
            source.as_ref(),
            Vec::new(),
            &chosen,
            &parsed,
            (now, started + budget),
            &scope,
            &limits,
            &crate::remote::Excluded::default(),
        )?;
        let streams: Vec<String> = chosen.into_iter().map(|c| c.stream).collect();
        answer(
            vec![part],
            &streams,
            &[],
            &parsed,
            answering,
            started,
            &limits,
        )
    });
    within_budget(budget, task).await
}

/// This node's part of a search: `chosen` over `source`'s snapshots at `now` until
/// `deadline`, the `excluded` splits left out (a searcher searched them itself). Blocking.
#[allow(clippy::too_many_arguments)]
fn node_part<S: StreamSource>(
    source: &S,
    names: Vec<String>,
    chosen: &[Chosen],
    parsed: &SearchBody,
    (now, deadline): (Timestamp, Instant),
    scope: &Scope,
    limits: &QueryLimits,
    excluded: &crate::remote::Excluded,
) -> EsResult<super::part::EsPart> {
    let (start, end) = super::part::bounds(parsed, now);
    let snapshots = |stream: &str| {
        let mut snapshot = source
            .snapshot(stream, start, end)
            .map_err(|e| EsError::from(Error::from(e)))?;
        crate::remote::leave_out(&mut snapshot, excluded);
        Ok(Some(snapshot))
    };
    search_part(
        &snapshots, names, chosen, parsed, now, deadline, scope, limits,
    )
}

/// A search task's answer, or a timeout once the budget and its grace have passed.
pub(crate) async fn within_budget(
    budget: Duration,
    task: tokio::task::JoinHandle<EsResult<Value>>,
) -> EsResult<Value> {
    match tokio::time::timeout(budget + TIMEOUT_GRACE, task).await {
        Err(_) => Err(EsError::from(Error::Timeout(
            u64::try_from(budget.as_millis()).unwrap_or(u64::MAX),
        ))),
        Ok(Err(join)) => Err(EsError::from(Error::Internal(format!(
            "search task failed: {join}"
        )))),
        Ok(Ok(answer)) => answer,
    }
}

/// `POST /api/v1/_leaf/elastic/search`: this node's part of a searcher's search, in postcard
/// ([`super::part::EsPart`]); refusals in Elasticsearch's error shape. The forwarded scope can
/// only narrow this caller's; index names this node lacks are skipped (another part may hold
/// them: the searcher decides over every part's names).
async fn leaf_search<S: StreamSource>(
    State(state): State<AppState<S, Patterns>>,
    scope: Scope,
    body: Bytes,
) -> Response {
    let started = Instant::now();
    let result = async {
        let request: LeafRequest = serde_json::from_slice(&body)
            .map_err(|err| EsError::parsing(format!("leaf request body: {err}")))?;
        let source = Arc::clone(&state.source);
        let names: Vec<String> = blocking(move || Ok(super::indices(source.as_ref())))
            .await?
            .into_iter()
            .map(|i| i.name)
            .collect();
        let chosen = resolve_indices(&request.index, &names, &state.extra, true)?;
        let parsed = SearchBody::parse(&request.body, &request.params, &state.limits)?;
        let scope = match &request.scope {
            Some(forwarded) => scope.intersect(forwarded),
            None => scope,
        };
        let excluded = request.excluded;
        let budget = parsed
            .timeout
            .map_or(state.limits.timeout, |t| t.min(state.limits.timeout));
        let source = Arc::clone(&state.source);
        let limits = state.limits.clone();
        let now = Timestamp(request.now);
        let task = tokio::task::spawn_blocking(move || {
            let part = node_part(
                source.as_ref(),
                names,
                &chosen,
                &parsed,
                (now, started + budget),
                &scope,
                &limits,
                &excluded,
            )?;
            postcard::to_stdvec(&part).map_err(|err| {
                EsError::from(Error::Internal(format!("encoding a leaf answer: {err}")))
            })
        });
        task.await
            .map_err(|join| EsError::from(Error::Internal(format!("leaf task failed: {join}"))))?
    }
    .await;
    match result {
        Ok(bytes) => ([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response(),
        Err(err) => err.into_response(),
    }
}

async fn mapping_all<B: Backend>(state: State<B>, headers: HeaderMap) -> Response {
    mapping_of(state, Path("_all".to_string()), headers).await
}

/// `POST /api/v1/_leaf/elastic/schemas` with `{"streams": [names]}`: the schema of each named
/// stream this node holds, by name (those it lacks are left out).
async fn leaf_schemas<S: StreamSource>(
    State(state): State<AppState<S, Patterns>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    #[derive(serde::Deserialize)]
    struct Asked {
        streams: Vec<String>,
    }
    let result = async {
        let asked: Asked = serde_json::from_slice(&body)
            .map_err(|err| EsError::parsing(format!("leaf request body: {err}")))?;
        let held: HashSet<String> = state
            .indices(Scope::All, headers.clone())
            .await?
            .into_iter()
            .map(|i| i.name)
            .collect();
        let streams = asked
            .streams
            .into_iter()
            .filter(|s| held.contains(s))
            .collect();
        let mut schemas = Map::new();
        for (stream, schema) in state.schemas(streams, headers).await? {
            let schema = serde_json::to_value(&schema).map_err(|err| {
                EsError::from(Error::Internal(format!("encoding a schema: {err}")))
            })?;
            schemas.insert(stream, schema);
        }
        Ok(Value::Object(schemas))
    }
    .await;
    respond(result)
}

/// Schemas of the streams an expression names.
async fn schemas_of<B: Backend>(
    state: &B,
    index: &str,
    headers: &HeaderMap,
) -> EsResult<Vec<(String, Schema)>> {
    let streams: Vec<String> = streams_of(state, index, false, headers)
        .await?
        .into_iter()
        .map(|c| c.stream)
        .collect();
    state.schemas(streams, headers.clone()).await
}

async fn mapping_of<B: Backend>(
    State(state): State<B>,
    Path(index): Path<String>,
    headers: HeaderMap,
) -> Response {
    respond(
        schemas_of(&state, &index, &headers)
            .await
            .map(|s| mapping(&s)),
    )
}

async fn field_caps_all<B: Backend>(
    state: State<B>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let index = params_of(&uri)
        .ok()
        .and_then(|p| p.get("index").cloned())
        .unwrap_or_else(|| "_all".to_string());
    field_caps_of(state, Path(index), uri, headers, body).await
}

/// `_field_caps`: `fields` from the URL (comma list of patterns) or the body.
async fn field_caps_of<B: Backend>(
    State(state): State<B>,
    Path(index): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let result = async {
        let params = params_of(&uri)?;
        let body = json_body(&body)?;
        let mut fields: Vec<String> = params
            .get("fields")
            .map(|f| f.split(',').map(|s| s.trim().to_string()).collect())
            .unwrap_or_default();
        match body.get("fields") {
            Some(Value::Array(list)) => {
                fields.extend(list.iter().filter_map(Value::as_str).map(str::to_string))
            }
            Some(Value::String(list)) => {
                fields.extend(list.split(',').map(|s| s.trim().to_string()))
            }
            _ => {}
        }
        let schemas = schemas_of(&state, &index, &headers).await?;
        let mut caps = field_caps(&schemas, &fields);
        // `types=keyword,date_nanos` keeps only fields of those types.
        if let Some(types) = params.get("types") {
            let types: Vec<&str> = types.split(',').map(str::trim).collect();
            if let Some(Value::Object(all)) = caps.get_mut("fields") {
                all.retain(|_, by_type| {
                    by_type
                        .as_object()
                        .is_some_and(|t| t.keys().any(|k| types.contains(&k.as_str())))
                });
            }
        }
        Ok(caps)
    }
    .await;
    respond(result)
}

async fn cat_all<B: Backend>(
    state: State<B>,
    scope: Scope,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    cat_of(state, scope, Path("_all".to_string()), uri, headers).await
}

/// `_cat/indices`: a text table (`v` for a header, `h` for columns) or `format=json`. A
/// namespace-scoped caller sees the documents of its namespaces only, and the bytes in
/// proportion (as `GET /api/v1/streams` reports them, see [`crate::stats`]).
async fn cat_of<B: Backend>(
    State(state): State<B>,
    scope: Scope,
    Path(index): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let result: EsResult<Response> = async {
        let params = params_of(&uri)?;
        let indices = state.indices(scope, headers).await?;
        let names: Vec<String> = indices.iter().map(|i| i.name.clone()).collect();
        let chosen = resolve_names(&index, &names, state.patterns())?;
        let infos: Vec<_> = indices
            .into_iter()
            .filter(|i| chosen.contains(&i.name))
            .collect();
        let rows = cat_rows(&infos, params.get("bytes").is_some_and(|b| b == "b"));
        let columns: Option<Vec<String>> = params
            .get("h")
            .map(|h| h.split(',').map(|c| c.trim().to_string()).collect());
        if params.get("format").is_some_and(|f| f == "json") {
            let rows: Vec<Value> = rows
                .into_iter()
                .map(|row| match &columns {
                    Some(cols) => {
                        Value::Object(row.into_iter().filter(|(k, _)| cols.contains(k)).collect())
                    }
                    None => Value::Object(row),
                })
                .collect();
            return Ok(Json(Value::Array(rows)).into_response());
        }
        let header = params.get("v").is_some_and(|v| v != "false");
        let text = cat_text(&rows, columns.as_deref(), header)?;
        Ok(([(header::CONTENT_TYPE, "text/plain; charset=UTF-8")], text).into_response())
    }
    .await;
    match result {
        Ok(response) => response,
        Err(err) => err.into_response(),
    }
}

/// `GET|HEAD /{index}`: the index's aliases, mappings and settings (`indices.exists` and
/// `indices.get` of the clients); 404 when it does not exist.
async fn index_info<B: Backend>(
    State(state): State<B>,
    Path(index): Path<String>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    let result = schemas_of(&state, &index, &headers).await.map(|schemas| {
        let mappings = mapping(&schemas);
        let mut out = Map::new();
        for (name, _) in &schemas {
            out.insert(
                name.clone(),
                json!({
                    "aliases": {},
                    "mappings": mappings[name]["mappings"],
                    "settings": {"index": {
                        "number_of_shards": "1",
                        "number_of_replicas": "0",
                        "uuid": uuid_of(name),
                        "provided_name": name,
                    }},
                }),
            );
        }
        Value::Object(out)
    });
    match (result, method) {
        (Err(err), Method::HEAD) => err.status.into_response(),
        (Ok(_), Method::HEAD) => StatusCode::OK.into_response(),
        (result, _) => respond(result),
    }
}
