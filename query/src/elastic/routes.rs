//! The HTTP routes of the Elasticsearch-compatible API, and the response conventions every
//! Elasticsearch client relies on: the `X-Elastic-Product: Elasticsearch` header on every
//! answer, [`trawl_model::elastic::COMPAT_JSON`] when the client asked for it (otherwise
//! `application/json`), and the major version a client expects: `GET /` reports 8.x, or the
//! major of an older go-elasticsearch client (KubeSphere's ks-apiserver detects the version
//! with its v6 client and accepts 5, 6 and 7), and `hits.total` is a number for clients older
//! than 7 (or with `rest_total_hits_as_int=true`), an object otherwise.

use std::collections::BTreeMap;
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

use super::body::{
    fix_agg_results, rewrite_aggs, AggFixes, FieldRequest, SearchBody, TrackTotalHits,
};
use super::dsl::{canonical_field, time_bounds, Translator};
use super::error::{EsError, EsResult};
use super::exec::{execute, resolve_sort, ExecOptions, Hit, StreamPlan};
use super::mapping::{
    cat_rows, cat_text, field_caps, mapping, resolve_indices, resolve_names, uuid_of, Chosen,
};
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
    let path = |p: &str| format!("{BASE}{p}");
    Router::new()
        .route(BASE, get(info))
        .route(&path("/"), get(info))
        .route(&path("/_cluster/health"), get(health::<S>))
        .route(&path("/_cluster/health/{index}"), get(health::<S>))
        .route(
            &path("/_search"),
            get(search_all::<S>).post(search_all::<S>),
        )
        .route(
            &path("/_search/scroll"),
            get(scroll).post(scroll).delete(scroll),
        )
        .route(
            &path("/{index}/_search"),
            get(search::<S>).post(search::<S>),
        )
        .route(
            &path("/_msearch"),
            get(msearch_all::<S>).post(msearch_all::<S>),
        )
        .route(
            &path("/{index}/_msearch"),
            get(msearch::<S>).post(msearch::<S>),
        )
        .route(&path("/_count"), get(count_all::<S>).post(count_all::<S>))
        .route(&path("/{index}/_count"), get(count::<S>).post(count::<S>))
        .route(&path("/_mapping"), get(mapping_all::<S>))
        .route(&path("/{index}/_mapping"), get(mapping_of::<S>))
        .route(
            &path("/_field_caps"),
            get(field_caps_all::<S>).post(field_caps_all::<S>),
        )
        .route(
            &path("/{index}/_field_caps"),
            get(field_caps_of::<S>).post(field_caps_of::<S>),
        )
        .route(&path("/_cat/indices"), get(cat_all::<S>))
        .route(&path("/_cat/indices/{index}"), get(cat_of::<S>))
        .route(&path("/{index}"), get(index_info::<S>))
        .with_state(state)
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

async fn health<S: StreamSource>(
    State(state): State<AppState<S, Patterns>>,
    index: Option<Path<String>>,
) -> Response {
    let result = async {
        let source = Arc::clone(&state.source);
        let indices = blocking(move || Ok(super::indices(source.as_ref()))).await?;
        let names: Vec<String> = indices.iter().map(|i| i.name.clone()).collect();
        let chosen = match &index {
            Some(Path(expr)) => resolve_names(expr, &names, &state.extra)?,
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
async fn streams_of<S: StreamSource>(
    state: &AppState<S, Patterns>,
    expression: &str,
    ignore_unavailable: bool,
) -> EsResult<Vec<Chosen>> {
    let source = Arc::clone(&state.source);
    let indices = blocking(move || Ok(super::indices(source.as_ref()))).await?;
    let names: Vec<String> = indices.into_iter().map(|i| i.name).collect();
    resolve_indices(expression, &names, &state.extra, ignore_unavailable)
}

/// How one search answers beyond its body: `hits.total` as a number or an object, and whether
/// index names that are no stream are skipped (`ignore_unavailable`).
#[derive(Debug, Clone, Copy)]
struct Answering {
    total_as_int: bool,
    ignore_unavailable: bool,
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

async fn search_all<S: StreamSource>(
    state: State<AppState<S, Patterns>>,
    scope: Scope,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    search(state, scope, Path("_all".to_string()), uri, headers, body).await
}

async fn search<S: StreamSource>(
    State(state): State<AppState<S, Patterns>>,
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
        run_search(&state, &index, &body, &params, &scope, answering).await
    }
    .await;
    respond(result)
}

async fn count_all<S: StreamSource>(
    state: State<AppState<S, Patterns>>,
    scope: Scope,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    count(state, scope, Path("_all".to_string()), uri, headers, body).await
}

/// `_count`: `{"count": n, "_shards": {...}}` for an optional `query`.
async fn count<S: StreamSource>(
    State(state): State<AppState<S, Patterns>>,
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
        let answer = run_search(&state, &index, &search_body, &params, &scope, answering).await?;
        Ok(json!({
            "count": answer["hits"]["total"]["value"],
            "_shards": answer["_shards"],
        }))
    }
    .await;
    respond(result)
}

async fn msearch_all<S: StreamSource>(
    state: State<AppState<S, Patterns>>,
    scope: Scope,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    msearch_inner(state, scope, None, uri, headers, body).await
}

async fn msearch<S: StreamSource>(
    state: State<AppState<S, Patterns>>,
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
async fn msearch_inner<S: StreamSource>(
    State(state): State<AppState<S, Patterns>>,
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
            async move {
                match item {
                    Ok((index, body)) => {
                        match run_search(&state, &index, &body, &item_params, &scope, answering)
                            .await
                        {
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

/// One `_search` over the streams `index` names, answered in Elasticsearch's shape.
async fn run_search<S: StreamSource>(
    state: &AppState<S, Patterns>,
    index: &str,
    body: &Value,
    params: &BTreeMap<String, String>,
    scope: &Scope,
    answering: Answering,
) -> EsResult<Value> {
    let started = Instant::now();
    let chosen = streams_of(state, index, answering.ignore_unavailable).await?;
    let streams: Vec<String> = chosen.iter().map(|c| c.stream.clone()).collect();
    let routed: Vec<String> = chosen
        .into_iter()
        .filter(|c| c.routed)
        .map(|c| c.stream)
        .collect();
    let scope = scope.clone();
    let parsed = SearchBody::parse(body, params, &state.limits)?;
    let now = Timestamp::now();
    let (start, end) = time_bounds(parsed.query.as_ref(), now);
    let budget = parsed
        .timeout
        .map_or(state.limits.timeout, |t| t.min(state.limits.timeout));
    let source = Arc::clone(&state.source);
    let limits = state.limits.clone();
    let task = tokio::task::spawn_blocking(move || -> EsResult<Value> {
        let (plans, fixes) = plan_streams(&*source, &streams, (start, end), now, &parsed, &scope)?;
        let options = ExecOptions {
            window: parsed.from + parsed.size,
            search_after: parsed.search_after.clone(),
            deadline: started + budget,
            start,
            end,
        };
        let outcome = execute(&plans, &options, &limits)?;
        let schemas: Vec<(String, Schema)> = plans
            .iter()
            .map(|p| (p.snapshot.stream.clone(), p.snapshot.schema.clone()))
            .collect();
        let hits: Vec<Value> = outcome
            .hits
            .into_iter()
            .skip(parsed.from)
            .map(|hit| {
                let shaped = routed.contains(&hit.stream);
                render_hit(hit, &parsed, &schemas, shaped)
            })
            .collect();
        let mut hits_object = Map::new();
        if let Some(total) = hits_total(&parsed.track_total_hits, outcome.total, answering) {
            hits_object.insert("total".into(), total);
        }
        hits_object.insert("max_score".into(), Value::Null);
        hits_object.insert("hits".into(), Value::Array(hits));
        let mut answer = json!({
            "took": millis(started),
            "timed_out": outcome.timed_out,
            "_shards": {"total": outcome.shards, "successful": outcome.shards, "skipped": 0, "failed": 0},
            "hits": hits_object,
        });
        if let Some(mut aggregations) = outcome.aggregations {
            if let Some(fixes) = &fixes {
                fix_agg_results(&mut aggregations, fixes);
            }
            answer["aggregations"] = aggregations;
        } else if parsed.aggs.is_some() {
            // No stream to aggregate over (a pattern that matched nothing).
            answer["aggregations"] = json!({});
        }
        Ok(answer)
    });
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

/// One plan a stream: its snapshot over the time bounds, the query translated and restricted
/// to the caller's namespaces, the sort keys and the aggregations rewritten for its schema.
/// Also the fixes the aggregations' results need (the first stream's: every stream of one
/// search is asked the same aggregations).
fn plan_streams<S: StreamSource>(
    source: &S,
    streams: &[String],
    (start, end): (Option<Timestamp>, Option<Timestamp>),
    now: Timestamp,
    parsed: &SearchBody,
    scope: &Scope,
) -> EsResult<(Vec<StreamPlan>, Option<AggFixes>)> {
    let mut plans = Vec::with_capacity(streams.len());
    let mut fixes = None;
    for stream in streams {
        let snapshot = source
            .snapshot(stream, start, end)
            .map_err(|e| EsError::from(Error::from(e)))?;
        let translator = Translator::new(&snapshot, now);
        // The caller's namespaces, whatever the request's query says.
        let query = scope.restrict(
            &snapshot.schema,
            translator.translate(parsed.query.as_ref())?.query,
        );
        let keys = resolve_sort(&parsed.sort, &snapshot)?;
        let aggs = match &parsed.aggs {
            Some(aggs) => {
                let (rewritten, agg_fixes) = rewrite_aggs(aggs, &snapshot.schema, stream, now.0)?;
                fixes.get_or_insert(agg_fixes);
                Some(crate::aggs::parse_aggs(rewritten).map_err(|err| match err {
                    Error::InvalidAggregation(m) => EsError::parsing(format!("[aggs] {m}")),
                    other => EsError::from(other),
                })?)
            }
            None => None,
        };
        plans.push(StreamPlan {
            snapshot,
            query,
            keys,
            aggs,
        });
    }
    Ok((plans, fixes))
}

/// `hits.total` as the request asked (`track_total_hits`): none, a bare number for the clients
/// that expect one (go-elasticsearch before 7, see [`Answering`]), or `{value, relation}` with
/// `gte` once a limit is passed.
fn hits_total(track: &TrackTotalHits, total: u64, answering: Answering) -> Option<Value> {
    match track {
        TrackTotalHits::Off => None,
        _ if answering.total_as_int => Some(json!(total)),
        TrackTotalHits::UpTo(limit) if total > *limit => {
            Some(json!({"value": limit, "relation": "gte"}))
        }
        TrackTotalHits::Exact | TrackTotalHits::UpTo(_) => {
            Some(json!({"value": total, "relation": "eq"}))
        }
    }
}

/// A hit in Elasticsearch's shape: `_source` filtered, `fields` for `docvalue_fields` and
/// `fields` under the names requested, `sort` when the client sorted. `shaped`: the stream was
/// named through an index pattern, and `_source` has the KubeSphere writers' names.
fn render_hit(hit: Hit, parsed: &SearchBody, schemas: &[(String, Schema)], shaped: bool) -> Value {
    let schema = schemas
        .iter()
        .find(|(name, _)| *name == hit.stream)
        .map(|(_, s)| s);
    let mut out = Map::new();
    out.insert("_index".into(), Value::String(hit.stream.clone()));
    out.insert("_id".into(), Value::String(hit.id));
    out.insert("_score".into(), Value::Null);
    if let Some(schema) = schema {
        if parsed.source.enabled {
            let source: Map<String, Value> = if shaped {
                trawl_model::shippers::kubesphere_source(&hit.stream, &hit.record)
                    .into_iter()
                    .filter(|(name, _)| parsed.source.keeps_as_written(name))
                    .collect()
            } else {
                hit.record
                    .iter()
                    .filter(|(name, _)| parsed.source.keeps(name, schema, &hit.stream))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            };
            out.insert("_source".into(), Value::Object(source));
        }
        let fields = requested_fields(&hit.record, &parsed.fields, schema, &hit.stream);
        if !fields.is_empty() {
            out.insert("fields".into(), Value::Object(fields));
        }
    }
    if parsed.explicit_sort {
        out.insert("sort".into(), Value::Array(hit.sort));
    }
    Value::Object(out)
}

/// `fields` / `docvalue_fields` of one hit: each requested name (patterns allowed) with its
/// values as an array; dates formatted as asked (`epoch_millis`, `epoch_second`, RFC 3339).
fn requested_fields(
    record: &Map<String, Value>,
    requests: &[FieldRequest],
    schema: &Schema,
    stream: &str,
) -> Map<String, Value> {
    let mut out = Map::new();
    for request in requests {
        let matches: Vec<(String, &Value)> = if request.name.contains('*') {
            record
                .iter()
                .filter(|(k, _)| super::body::glob_match(&request.name, k))
                .map(|(k, v)| (k.clone(), v))
                .collect()
        } else {
            let name = canonical_field(schema, stream, &request.name);
            record
                .get(&name)
                .map(|v| vec![(request.name.clone(), v)])
                .unwrap_or_default()
        };
        for (name, value) in matches {
            let values: Vec<Value> = match value {
                Value::Array(items) => items.clone(),
                other => vec![other.clone()],
            };
            let values = values
                .into_iter()
                .map(|v| format_value(v, request.format.as_deref()))
                .collect();
            out.insert(name, Value::Array(values));
        }
    }
    out
}

/// A date string in an epoch format when one is asked for; anything else unchanged.
fn format_value(value: Value, format: Option<&str>) -> Value {
    let Some(format @ ("epoch_millis" | "epoch_second")) = format else {
        return value;
    };
    let Some(nanos) = value
        .as_str()
        .and_then(|s| Timestamp::parse_rfc3339(s).ok())
        .map(|t| t.0)
    else {
        return value;
    };
    if format == "epoch_millis" {
        Value::from(nanos.div_euclid(1_000_000))
    } else {
        Value::from(nanos.div_euclid(1_000_000_000))
    }
}

async fn mapping_all<S: StreamSource>(state: State<AppState<S, Patterns>>) -> Response {
    mapping_of(state, Path("_all".to_string())).await
}

/// Schemas of the streams an expression names.
async fn schemas_of<S: StreamSource>(
    state: &AppState<S, Patterns>,
    index: &str,
) -> EsResult<Vec<(String, Schema)>> {
    let streams: Vec<String> = streams_of(state, index, false)
        .await?
        .into_iter()
        .map(|c| c.stream)
        .collect();
    let source = Arc::clone(&state.source);
    blocking(move || {
        streams
            .into_iter()
            .map(|s| {
                let snapshot = source
                    .schema_snapshot(&s)
                    .map_err(|e| EsError::from(Error::from(e)))?;
                Ok((s, snapshot.schema))
            })
            .collect()
    })
    .await
}

async fn mapping_of<S: StreamSource>(
    State(state): State<AppState<S, Patterns>>,
    Path(index): Path<String>,
) -> Response {
    respond(schemas_of(&state, &index).await.map(|s| mapping(&s)))
}

async fn field_caps_all<S: StreamSource>(
    state: State<AppState<S, Patterns>>,
    uri: Uri,
    body: Bytes,
) -> Response {
    let index = params_of(&uri)
        .ok()
        .and_then(|p| p.get("index").cloned())
        .unwrap_or_else(|| "_all".to_string());
    field_caps_of(state, Path(index), uri, body).await
}

/// `_field_caps`: `fields` from the URL (comma list of patterns) or the body.
async fn field_caps_of<S: StreamSource>(
    State(state): State<AppState<S, Patterns>>,
    Path(index): Path<String>,
    uri: Uri,
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
        let schemas = schemas_of(&state, &index).await?;
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

async fn cat_all<S: StreamSource>(
    state: State<AppState<S, Patterns>>,
    scope: Scope,
    uri: Uri,
) -> Response {
    cat_of(state, scope, Path("_all".to_string()), uri).await
}

/// `_cat/indices`: a text table (`v` for a header, `h` for columns) or `format=json`. A
/// namespace-scoped caller sees the documents of its namespaces only, and the bytes in
/// proportion (as `GET /api/v1/streams` reports them, see [`crate::stats`]).
async fn cat_of<S: StreamSource>(
    State(state): State<AppState<S, Patterns>>,
    scope: Scope,
    Path(index): Path<String>,
    uri: Uri,
) -> Response {
    let result: EsResult<Response> = async {
        let params = params_of(&uri)?;
        let source = Arc::clone(&state.source);
        let indices = blocking(move || Ok(super::indices(source.as_ref()))).await?;
        let names: Vec<String> = indices.iter().map(|i| i.name.clone()).collect();
        let chosen = resolve_names(&index, &names, &state.extra)?;
        let infos: Vec<_> = indices
            .into_iter()
            .filter(|i| chosen.contains(&i.name))
            .collect();
        let infos = if scope.is_restricted() {
            let source = Arc::clone(&state.source);
            blocking(move || {
                infos
                    .into_iter()
                    .map(|mut info| {
                        let snapshot = source
                            .snapshot(&info.name, None, None)
                            .map_err(|e| EsError::from(Error::from(e)))?;
                        let visible = crate::stats::visible_counts(&snapshot, &scope)?;
                        info.bytes =
                            crate::stats::proportional(info.bytes, visible.docs, info.docs);
                        info.docs = visible.docs;
                        Ok(info)
                    })
                    .collect::<EsResult<Vec<_>>>()
            })
            .await?
        } else {
            infos
        };
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
async fn index_info<S: StreamSource>(
    State(state): State<AppState<S, Patterns>>,
    Path(index): Path<String>,
    method: Method,
    _headers: HeaderMap,
) -> Response {
    let result = schemas_of(&state, &index).await.map(|schemas| {
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
