//! The root of a distributed search: a stateless searcher fans a search out to every indexer
//! (each answers a leaf search over its own hot index and splits), merges the hits in the global
//! order and the aggregation intermediate results exactly, and answers the client. An indexer
//! that fails or does not answer in time makes the answer partial, and the answer says so.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use trawl_model::{ApiError, ErrorCode, Timestamp};

use crate::access::Scope;
use crate::error::Error;
use crate::fanin::{leaf_call, Caller, FanIn, Leaf};
use crate::request::{json_or_default, QueryLimits, SearchRequest, SortOrder};
use crate::search::{merge_leaves, LeafResponse, MergedHit, SearchResponse};

/// Path of the leaf search every indexer serves.
pub const LEAF_SEARCH_PATH: &str = "/api/v1/{stream}/_leaf/search";

/// Key of the leaf search body holding the root caller's [`Scope`] (absent: [`Scope::All`]).
/// The root also sends it in [`crate::access::SCOPE_HEADER`], as on every request it fans out;
/// the leaf applies both, intersected with its own caller's scope.
pub const LEAF_SCOPE_KEY: &str = "scope";

/// A leaf request's JSON body with what the root adds taken out: the root caller's scope
/// ([`LEAF_SCOPE_KEY`]; [`Scope::All`] when absent) and the splits the root read itself
/// ([`crate::remote::EXCLUDE_SPLITS_KEY`]).
pub(crate) fn leaf_body(bytes: &[u8]) -> crate::Result<(Value, Scope, crate::remote::Excluded)> {
    let mut body: Value = serde_json::from_slice(bytes)
        .map_err(|err| Error::InvalidArgument(format!("request body: {err}")))?;
    let forwarded = match body.as_object_mut().and_then(|o| o.remove(LEAF_SCOPE_KEY)) {
        Some(value) => serde_json::from_value::<Scope>(value)
            .map_err(|err| Error::InvalidArgument(format!("request body: `scope`: {err}")))?,
        None => Scope::All,
    };
    let excluded = crate::remote::take_excluded(&mut body)?;
    Ok((body, forwarded, excluded))
}

/// A leaf's answer: its postcard encoding, or the error in the API's envelope.
pub(crate) fn leaf_answer(encoded: crate::Result<Vec<u8>>) -> Response {
    match encoded {
        Ok(bytes) => (
            [(axum::http::header::CONTENT_TYPE, "application/octet-stream")],
            bytes,
        )
            .into_response(),
        Err(err) => err.into_response(),
    }
}

/// How a searcher reaches its indexers (`[query]` `indexers`, `indexer_token`,
/// `indexer_ca_path`).
#[derive(Debug, Clone, Default)]
pub struct RootSettings {
    /// Base URLs of the indexers.
    pub indexers: Vec<String>,
    /// Bearer token the searcher presents to the indexers; `None` passes each caller's own
    /// `Authorization` on (then the indexers must know the callers' tokens).
    pub indexer_token: Option<String>,
    /// PEM certificates (one or more) trusted, besides the system roots, for `https://`
    /// indexers.
    pub indexer_ca_pem: Option<Vec<u8>>,
    /// The shared tier's published splits, searched by the root itself (`[storage]` and a
    /// PostgreSQL `[metastore]`); the indexers are then asked only for the rest.
    pub remote: Option<Arc<crate::remote::RemoteSplits>>,
    /// Who counts as a system component in the reports (`query.audit_system_*`).
    pub reports: crate::reports::ReportSettings,
    /// Index name patterns of the Elasticsearch-compatible API
    /// (`query.elastic_index_patterns`; the indexers must have the same).
    pub elastic: crate::elastic::ElasticSettings,
}

impl std::fmt::Debug for crate::remote::RemoteSplits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RemoteSplits")
    }
}

impl RootSettings {
    /// The settings of `[query]`; reads `indexer_ca_path`. A file that cannot be read or holds
    /// no PEM certificate is an error naming the key.
    pub fn from_config(config: &trawl_config::QueryConfig) -> crate::Result<RootSettings> {
        let indexer_ca_pem = config
            .indexer_ca_path
            .as_ref()
            .map(|path| {
                std::fs::read(path).map_err(|err| {
                    Error::InvalidArgument(format!(
                        "query.indexer_ca_path `{}`: {err}",
                        path.display()
                    ))
                })
            })
            .transpose()?;
        Ok(RootSettings {
            indexers: config.indexers.clone(),
            indexer_token: Some(config.indexer_token.trim().to_string()).filter(|t| !t.is_empty()),
            indexer_ca_pem,
            remote: None,
            reports: crate::reports::ReportSettings::from_config(config),
            elastic: crate::elastic::ElasticSettings::from_config(config),
        })
    }

    /// The HTTP client of the fan-out: rustls with the system roots, plus the configured CA.
    fn client(&self) -> crate::Result<reqwest::Client> {
        let mut builder = reqwest::Client::builder();
        if let Some(pem) = &self.indexer_ca_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem).map_err(|err| {
                Error::InvalidArgument(format!("query.indexer_ca_path: not PEM: {err}"))
            })?;
            if certs.is_empty() {
                return Err(Error::InvalidArgument(
                    "query.indexer_ca_path holds no PEM certificate".into(),
                ));
            }
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        builder
            .build()
            .map_err(|err| Error::Internal(format!("building the indexers' HTTP client: {err}")))
    }
}

#[derive(Clone)]
struct RootState {
    fanin: FanIn,
    limits: QueryLimits,
    remote: Option<Arc<crate::remote::RemoteSplits>>,
}

/// The routes of the searcher role: `GET|POST /api/v1/{stream}/search`,
/// `GET /api/v1/streams`, `GET /api/v1/{stream}/tail`, `GET|POST /api/v1/{stream}/export`, the
/// reports, a pod's story and the Elasticsearch-compatible API, answered by fanning out to the indexers of `settings`. Every request to an indexer carries
/// the caller's resolved scope. Errors: an unusable `indexer_ca_path` or token.
pub fn root_routes(settings: RootSettings, limits: QueryLimits) -> crate::Result<Router> {
    let credentials = settings
        .indexer_token
        .as_ref()
        .map(|token| {
            HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
                Error::InvalidArgument(
                    "query.indexer_token holds characters a header cannot".into(),
                )
            })
        })
        .transpose()?;
    let fanin = FanIn {
        indexers: Arc::new(
            settings
                .indexers
                .iter()
                .map(|u| u.trim_end_matches('/').to_string())
                .collect(),
        ),
        client: settings.client()?,
        credentials,
    };
    let state = RootState {
        fanin: fanin.clone(),
        limits,
        remote: settings.remote.clone(),
    };
    let export = crate::fanin_export::RootExport {
        fanin: fanin.clone(),
        limits: state.limits.clone(),
        remote: settings.remote.clone(),
    };
    let elastic = crate::fanin_elastic::RootElastic {
        fanin: fanin.clone(),
        limits: state.limits.clone(),
        remote: settings.remote.clone(),
        patterns: Arc::new(settings.elastic.index_patterns.clone()),
    };
    let reports = crate::fanin_reports::RootReports {
        fanin: fanin.clone(),
        limits: state.limits.clone(),
        remote: settings.remote.clone(),
        settings: Arc::new(settings.reports.clone()),
    };
    Ok(Router::new()
        .route("/api/v1/{stream}/search", get(get_search).post(post_search))
        .route("/api/v1/streams", get(streams))
        .route("/api/v1/pods/{namespace}/{pod}/story", get(story))
        .with_state(state)
        .merge(
            Router::new()
                .route("/api/v1/{stream}/tail", get(crate::fanin::tail))
                .with_state(fanin),
        )
        .merge(
            Router::new()
                .route(
                    "/api/v1/{stream}/export",
                    get(crate::fanin_export::get_export).post(crate::fanin_export::post_export),
                )
                .with_state(export),
        )
        .merge(
            Router::new()
                .route(
                    "/api/v1/audit/reports/{name}",
                    get(crate::fanin_reports::get_audit_report),
                )
                .route(
                    "/api/v1/events/reports/{name}",
                    get(crate::fanin_reports::get_events_report),
                )
                .with_state(reports),
        )
        .merge(crate::elastic::router_of(elastic))
        .merge(
            Router::new()
                .route(
                    "/api/v1/_elastic/_bulk",
                    axum::routing::post(crate::fanin_elastic::no_bulk)
                        .put(crate::fanin_elastic::no_bulk),
                )
                .route(
                    "/api/v1/_elastic/{index}/_bulk",
                    axum::routing::post(crate::fanin_elastic::no_bulk)
                        .put(crate::fanin_elastic::no_bulk),
                ),
        ))
}

async fn get_search(
    State(state): State<RootState>,
    scope: Scope,
    headers: HeaderMap,
    Path(stream): Path<String>,
    query: std::result::Result<Query<SearchRequest>, QueryRejection>,
) -> Response {
    match query {
        Ok(Query(request)) if request.aggs.is_some() => Error::InvalidArgument(
            "`aggs` is accepted in the body of a POST search only".to_string(),
        )
        .into_response(),
        Ok(Query(request)) => {
            let caller = Caller::new(&state.fanin, scope, &headers);
            fan_out(&state, &stream, request, &caller).await
        }
        Err(rejection) => Error::from(rejection).into_response(),
    }
}

async fn post_search(
    State(state): State<RootState>,
    scope: Scope,
    headers: HeaderMap,
    Path(stream): Path<String>,
    body: std::result::Result<Bytes, BytesRejection>,
) -> Response {
    match json_or_default::<SearchRequest>(body) {
        Ok(request) => {
            let caller = Caller::new(&state.fanin, scope, &headers);
            fan_out(&state, &stream, request, &caller).await
        }
        Err(err) => err.into_response(),
    }
}

/// `GET /api/v1/pods/{namespace}/{pod}/story` of the searcher: the story of one server, each
/// of its parts (the pod's logs, its Events, its nodes' journal) a fanned-out search.
async fn story(
    State(state): State<RootState>,
    scope: Scope,
    headers: HeaderMap,
    Path((namespace, pod)): Path<(String, String)>,
    params: std::result::Result<Query<crate::story::StoryParams>, QueryRejection>,
) -> Response {
    let params = match params {
        Ok(Query(params)) => params,
        Err(rejection) => return Error::from(rejection).into_response(),
    };
    let caller = Caller::new(&state.fanin, scope.clone(), &headers);
    let handle = tokio::runtime::Handle::current();
    let budget = state.limits.timeout;
    let task = tokio::task::spawn_blocking(move || {
        // The first part refused (a bad parameter, no indexer answering) is the answer.
        let refused: std::sync::Mutex<Option<Response>> = std::sync::Mutex::new(None);
        let search = |stream: &str, request: SearchRequest| match handle
            .block_on(fan_out_value(&state, stream, request, &caller))
        {
            Ok(answer) => Ok(Some(answer)),
            Err(response) => {
                let mut slot = crate::remote::lock(&refused);
                slot.get_or_insert(*response);
                Err(Error::Internal(format!(
                    "the story's {stream} part was refused"
                )))
            }
        };
        let answer = crate::story::story(&search, &namespace, &pod, params, &scope);
        let refused = refused.into_inner().unwrap_or_else(|p| p.into_inner());
        match (answer, refused) {
            (_, Some(response)) => response,
            (Ok(answer), None) => Json(answer).into_response(),
            (Err(err), None) => err.into_response(),
        }
    });
    match tokio::time::timeout(budget + Duration::from_secs(4), task).await {
        Err(_) => {
            Error::Timeout(u64::try_from(budget.as_millis()).unwrap_or(u64::MAX)).into_response()
        }
        Ok(Err(join)) => Error::Internal(format!("story task failed: {join}")).into_response(),
        Ok(Ok(response)) => response,
    }
}

async fn fan_out(
    state: &RootState,
    stream: &str,
    request: SearchRequest,
    caller: &Caller,
) -> Response {
    match fan_out_answer(state, stream, request, caller).await {
        Ok(answer) => Json(answer).into_response(),
        Err(refused) => *refused,
    }
}

/// A fanned-out search's answer: the leaves merged, and what failed.
#[derive(serde::Serialize)]
struct FannedOut {
    #[serde(flatten)]
    merged: SearchResponse<MergedHit>,
    /// Some leaf did not answer (nor the shared tier): what it holds is missing.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    partial: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    failed_indexers: Vec<Value>,
}

/// A search fanned out, its answer as JSON; `Err` holds the answer refusing it.
async fn fan_out_value(
    state: &RootState,
    stream: &str,
    request: SearchRequest,
    caller: &Caller,
) -> std::result::Result<Value, Box<Response>> {
    let answer = fan_out_answer(state, stream, request, caller).await?;
    serde_json::to_value(&answer)
        .map_err(|e| Box::new(Error::Internal(format!("answer: {e}")).into_response()))
}

/// A search fanned out; `Err` holds the answer refusing it.
async fn fan_out_answer(
    state: &RootState,
    stream: &str,
    request: SearchRequest,
    caller: &Caller,
) -> std::result::Result<FannedOut, Box<Response>> {
    let started = Instant::now();
    let aggs = request.aggs.clone();
    let parsed = match request.parse(Timestamp::now(), &state.limits) {
        Ok(parsed) => parsed,
        Err(err) => return Err(Box::new(err.into_response())),
    };
    if state.fanin.indexers.is_empty() && state.remote.is_none() {
        return Err(Box::new(
            Error::Internal("no indexers are configured (`query.indexers`)".into()).into_response(),
        ));
    }
    // The shared tier's published splits of the range, listed first: their ids go to the
    // indexers, and they are searched here while the indexers search. When the metastore
    // cannot be read, the indexers answer alone (each holds its own splits) and the answer says
    // it is partial: what only the shared tier holds (a lost volume's splits) is missing.
    let mut failed = Vec::new();
    let listed = match &state.remote {
        Some(remote) => match crate::remote::within(
            parsed.timeout,
            remote.published(stream, parsed.start, parsed.end),
        )
        .await
        {
            Ok(listed) => Some((remote.clone(), listed)),
            Err(err) => {
                tracing::warn!(%err, "the shared tier could not be listed; asking the indexers alone");
                failed.push(json!({"indexer": "shared tier", "reason": err.to_string()}));
                None
            }
        },
        None => None,
    };
    // Times resolved once here, so that every leaf searches the same range.
    let mut body = json!({
        "q": parsed.query,
        "start": parsed.start.map(|t| t.to_rfc3339()),
        "end": parsed.end.map(|t| t.to_rfc3339()),
        "limit": parsed.limit,
        "sort": match parsed.sort { SortOrder::Asc => "asc", SortOrder::Desc => "desc" },
        "fields": parsed.fields,
        "search_after": parsed.search_after.as_ref().map(|c| c.encode()),
        "aggs": aggs,
        "timeout_ms": u64::try_from(parsed.timeout.as_millis()).unwrap_or(u64::MAX),
    });
    if caller.scope().is_restricted() {
        body[LEAF_SCOPE_KEY] = serde_json::to_value(caller.scope()).unwrap_or(Value::Null);
    }
    let mut leaves = Vec::new();
    if let Some((_, listed)) = &listed {
        crate::remote::Excluded::of([listed]).add_to(&mut body);
    }
    let deadline = parsed.timeout + Duration::from_secs(2);
    let indexer_leaves = |body: &Value| {
        let calls = state.fanin.indexers.iter().map(|base| {
            let url = format!("{base}{}", LEAF_SEARCH_PATH.replace("{stream}", stream));
            let request = caller.apply(state.fanin.client.post(url).json(body).timeout(deadline));
            async move { (base.clone(), leaf_call::<LeafResponse>(request).await) }
        });
        futures::future::join_all(calls)
    };
    let remote_search = async {
        let (remote, listed) = listed.as_ref()?;
        Some(
            crate::remote::within(
                parsed.timeout,
                remote_leaf(
                    remote,
                    stream,
                    &listed.records,
                    &parsed,
                    caller,
                    &state.limits,
                ),
            )
            .await,
        )
    };
    let (remote, mut outcomes) = tokio::join!(remote_search, indexer_leaves(&body));
    match remote {
        Some(Ok(leaf)) => leaves.push(leaf),
        Some(Err(err)) => {
            // The indexers left the listed splits out: ask them again for everything they
            // hold (their own copies of those splits among it).
            tracing::warn!(%err, "the shared tier could not be searched; asking the indexers alone");
            failed.push(json!({"indexer": "shared tier", "reason": err.to_string()}));
            crate::remote::Excluded::remove_from(&mut body);
            outcomes = indexer_leaves(&body).await;
        }
        None => {}
    }
    for (base, outcome) in outcomes {
        match outcome {
            Leaf::Answer(leaf) => leaves.push(leaf),
            Leaf::Refused(status, body) => {
                return Err(Box::new(
                    (
                        status,
                        [(axum::http::header::CONTENT_TYPE, "application/json")],
                        body,
                    )
                        .into_response(),
                ))
            }
            Leaf::Failed(reason) => {
                tracing::warn!(indexer = %base, %reason, "leaf search failed");
                failed.push(json!({"indexer": base, "reason": reason}));
            }
        }
    }
    if leaves.is_empty() {
        return Err(Box::new(
            ApiError::new(ErrorCode::Unavailable, "no indexer answered")
                .with_extra("failed_indexers", Value::Array(failed))
                .into_response(),
        ));
    }
    let limits = state.limits.clone();
    let merged = tokio::task::spawn_blocking(move || {
        merge_leaves(
            leaves,
            &parsed,
            &limits,
            tantivy::tokenizer::TokenizerManager::default(),
        )
    })
    .await;
    let mut merged = match merged {
        Ok(Ok(response)) => response,
        Ok(Err(err)) => return Err(Box::new(err.into_response())),
        Err(join) => {
            return Err(Box::new(
                Error::Internal(format!("merge failed: {join}")).into_response(),
            ))
        }
    };
    merged.took_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let partial = !failed.is_empty();
    if partial {
        // A partial answer cannot be continued: the next page would not follow this one.
        merged.cursor = None;
    }
    Ok(FannedOut {
        merged,
        partial,
        failed_indexers: failed,
    })
}

/// The root's own leaf over `records`, the published splits of `stream` it listed. Object
/// storage that cannot be read fails it.
async fn remote_leaf(
    remote: &Arc<crate::remote::RemoteSplits>,
    stream: &str,
    records: &[trawl_storage::pg::SplitRecord],
    parsed: &crate::request::ParsedRequest,
    caller: &Caller,
    limits: &QueryLimits,
) -> crate::Result<LeafResponse> {
    let snapshot = remote
        .snapshot(stream, records, parsed.start, parsed.end)
        .await?;
    let Some((snapshot, ranged)) = snapshot else {
        return Ok(LeafResponse::default());
    };
    let mut parsed = parsed.clone();
    parsed.scope = caller.scope().clone();
    let mut limits = limits.clone();
    if ranged {
        // Splits read by range wait on object storage for each read: as many of them in
        // flight at once as configured, whatever the cores.
        limits.parallelism = remote.range_read_concurrency();
    }
    let answer = tokio::task::spawn_blocking(move || {
        crate::search::search_leaf(&snapshot, &parsed, &limits)
    })
    .await
    .map_err(|join| Error::Internal(format!("leaf search task failed: {join}")))?;
    // What this search read by range is fetched whole for the next ones.
    remote.fill_cache();
    answer
}

/// Sums the indexers' stream statistics (each scoped by the indexer to the caller's scope).
/// With a shared tier, its published splits are counted here (from the metastore's rows, or
/// by counting what a restricted caller may see in them) and each indexer counts the rest
/// ([`crate::stats::LEAF_STREAMS_PATH`], those splits left out), as a search does; when the
/// shared tier cannot be read, the indexers' own figures are summed and the answer is
/// partial.
async fn streams(State(state): State<RootState>, scope: Scope, headers: HeaderMap) -> Response {
    let caller = Caller::new(&state.fanin, scope, &headers);
    Json(statistics(&state.fanin, &state.limits, state.remote.as_ref(), &caller).await)
        .into_response()
}

/// The body of the searcher's `GET /api/v1/streams`: `streams` (name, docs, bytes, splits,
/// bounds) summed over the shared tier and the indexers, `indexers`, `shared_tier`, and
/// `partial` when a part could not be read.
pub(crate) async fn statistics(
    fanin: &FanIn,
    limits: &QueryLimits,
    remote: Option<&Arc<crate::remote::RemoteSplits>>,
    caller: &Caller,
) -> Value {
    // `None`: no shared tier; `Some(None)`: it could not be read.
    let shared = match remote {
        Some(remote) => Some(
            match crate::remote::within(limits.timeout, shared_streams(remote, caller.scope()))
                .await
            {
                Ok(listed) => Some(listed),
                Err(err) => {
                    tracing::warn!(%err, "the shared tier's statistics could not be read; summing the indexers' own");
                    None
                }
            },
        ),
        None => None,
    };
    let calls = fanin.indexers.iter().map(|base| {
        let request = match shared.as_ref().and_then(Option::as_ref) {
            Some((_, excluded)) => {
                let mut body = json!({});
                excluded.add_to(&mut body);
                fanin
                    .client
                    .post(format!("{base}{}", crate::stats::LEAF_STREAMS_PATH))
                    .json(&body)
            }
            None => fanin.client.get(format!("{base}/api/v1/streams")),
        };
        let request = caller.apply(request.timeout(limits.timeout));
        async move {
            let response = request.send().await.ok()?;
            if !response.status().is_success() {
                return None;
            }
            response.json::<Value>().await.ok()
        }
    });
    let answers = futures::future::join_all(calls).await;
    let mut merged: std::collections::BTreeMap<String, Value> = Default::default();
    let mut failed = 0;
    let mut add = |s: &Value| {
        let Some(name) = s["name"].as_str() else {
            return;
        };
        let entry = merged.entry(name.to_string()).or_insert_with(|| {
            json!({"name": name, "docs": 0, "bytes": 0, "splits": 0, "min_timestamp": null, "max_timestamp": null})
        });
        for key in ["docs", "bytes", "splits"] {
            let sum = entry[key].as_u64().unwrap_or(0) + s[key].as_u64().unwrap_or(0);
            entry[key] = json!(sum);
        }
        merge_bound(entry, s, "min_timestamp", |a, b| a < b);
        merge_bound(entry, s, "max_timestamp", |a, b| a > b);
    };
    let shared_tier = shared.as_ref().map(|listed| match listed {
        Some((entries, _)) => {
            for s in entries {
                add(s);
            }
            let docs: u64 = entries.iter().filter_map(|s| s["docs"].as_u64()).sum();
            json!({"ok": true, "docs": docs})
        }
        None => json!({"ok": false}),
    });
    // Which indexers answered, for the console's overview of a split deployment.
    let mut indexers = Vec::with_capacity(answers.len());
    for (base, answer) in fanin.indexers.iter().zip(answers) {
        let Some(streams) = answer.as_ref().and_then(|a| a["streams"].as_array()) else {
            failed += 1;
            indexers.push(json!({"url": base, "ok": false}));
            continue;
        };
        let docs: u64 = streams.iter().filter_map(|s| s["docs"].as_u64()).sum();
        indexers.push(json!({"url": base, "ok": true, "docs": docs}));
        for s in streams {
            add(s);
        }
    }
    let mut body =
        json!({"streams": merged.into_values().collect::<Vec<_>>(), "indexers": indexers});
    let shared_failed = matches!(shared, Some(None));
    if let Some(shared_tier) = shared_tier {
        body["shared_tier"] = shared_tier;
    }
    if failed > 0 || shared_failed {
        body["partial"] = Value::Bool(true);
    }
    body
}

/// The statistics of the shared tier's published splits per stream, as `scope` may see them,
/// and what the indexers must leave out for not counting them again.
async fn shared_streams(
    remote: &Arc<crate::remote::RemoteSplits>,
    scope: &Scope,
) -> crate::Result<(Vec<Value>, crate::remote::Excluded)> {
    let mut entries = Vec::new();
    let mut excluded = crate::remote::Excluded::default();
    for name in remote.streams().await? {
        let listed = remote.published(&name, None, None).await?;
        excluded.add(&listed);
        let records = listed.records;
        if records.is_empty() {
            continue;
        }
        let docs: u64 = records.iter().map(|r| r.docs).sum();
        let bytes: u64 = records.iter().map(|r| r.bytes).sum();
        if !scope.is_restricted() {
            let min = records.iter().map(|r| r.min_timestamp).min();
            let max = records.iter().map(|r| r.max_timestamp).max();
            entries.push(json!({
                "name": name,
                "docs": docs,
                "bytes": bytes,
                "splits": records.len(),
                "min_timestamp": min.map(|t| Timestamp(t).to_rfc3339()),
                "max_timestamp": max.map(|t| Timestamp(t).to_rfc3339()),
            }));
            continue;
        }
        let Some((snapshot, _)) = remote.snapshot(&name, &records, None, None).await? else {
            continue;
        };
        let scope = scope.clone();
        let visible =
            tokio::task::spawn_blocking(move || crate::stats::visible_counts(&snapshot, &scope))
                .await
                .map_err(|join| {
                    Error::Internal(format!("counting the shared tier failed: {join}"))
                })??;
        // Counting reads little of each split: nothing is fetched whole for it.
        entries.push(json!({
            "name": name,
            "docs": visible.docs,
            "bytes": crate::stats::proportional(bytes, visible.docs, docs),
            "splits": visible.splits,
            "min_timestamp": visible.min_timestamp.map(Timestamp::to_rfc3339),
            "max_timestamp": visible.max_timestamp.map(Timestamp::to_rfc3339),
        }));
    }
    Ok((entries, excluded))
}

fn merge_bound(entry: &mut Value, other: &Value, key: &str, better: fn(i64, i64) -> bool) {
    let parse = |v: &Value| v.as_str().and_then(|t| Timestamp::parse_rfc3339(t).ok());
    match (parse(&entry[key]), parse(&other[key])) {
        (None, Some(_)) => entry[key] = other[key].clone(),
        (Some(a), Some(b)) if better(b.0, a.0) => entry[key] = other[key].clone(),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_merge_by_instant() {
        let mut entry = json!({"min_timestamp": "2026-11-25T10:00:00.000000000Z"});
        merge_bound(
            &mut entry,
            &json!({"min_timestamp": "2026-11-25T09:00:00.000000000Z"}),
            "min_timestamp",
            |a, b| a < b,
        );
        assert_eq!(entry["min_timestamp"], "2026-11-25T09:00:00.000000000Z");
        merge_bound(
            &mut entry,
            &json!({"min_timestamp": null}),
            "min_timestamp",
            |a, b| a < b,
        );
        assert_eq!(entry["min_timestamp"], "2026-11-25T09:00:00.000000000Z");
    }
}
