//! A pod's story: `GET /api/v1/pods/{namespace}/{pod}/story` answers "why did this pod die?"
//! in one request, with what the three sources say over the same time range: the pod's
//! container logs, its Kubernetes Events, and the journal of the nodes it ran on (the nodes
//! its logs and its kubelet's Events name). Each part is an ordinary search, whose query the
//! answer gives, and the entries of all three come back in one list ordered by time. On a
//! searcher each part is the fanned-out search (`crate::distributed`), and a part that is
//! partial makes the story say so.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use trawl_index::StreamSource;
use trawl_model::{Timestamp, EVENTS_STREAM, JOURNAL_STREAM, LOGS_STREAM};

use crate::access::Scope;
use crate::error::{Error, Result};
use crate::reports::filter_quote as quote;
use crate::request::{QueryLimits, SearchRequest, SortOrder};
use crate::search::{search, SearchResponse};

/// Extra time given past the budget before the client gets a 504.
const TIMEOUT_GRACE: Duration = Duration::from_secs(2);
/// The most nodes whose journal is searched (a pod runs on one; a StatefulSet's pod moved).
const MAX_NODES: usize = 10;

/// The query string of a story request.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoryParams {
    /// Inclusive lower bound (default `now-1h`).
    pub start: Option<String>,
    /// Exclusive upper bound (default `now`).
    pub end: Option<String>,
    /// Newest entries of each source at most (default and maximum from the `[query]` limits).
    pub limit: Option<usize>,
}

type AppState<S> = crate::state::AppState<S, ()>;

/// `GET /api/v1/pods/{namespace}/{pod}/story`.
pub fn routes<S: StreamSource>(source: Arc<S>, limits: QueryLimits) -> Router {
    let state = AppState {
        source,
        limits,
        extra: (),
    };
    Router::new()
        .route("/api/v1/pods/{namespace}/{pod}/story", get(get_story::<S>))
        .with_state(state)
}

async fn get_story<S: StreamSource>(
    State(state): State<AppState<S>>,
    scope: Scope,
    Path((namespace, pod)): Path<(String, String)>,
    params: std::result::Result<Query<StoryParams>, QueryRejection>,
) -> Response {
    let params = match params {
        Ok(Query(params)) => params,
        Err(rejection) => return Error::from(rejection).into_response(),
    };
    let budget = state.limits.timeout;
    let task = tokio::task::spawn_blocking(move || {
        let search =
            |stream: &str, request: SearchRequest| local_search(&state, stream, request, &scope);
        story(&search, &namespace, &pod, params, &scope)
    });
    let answer = match tokio::time::timeout(budget + TIMEOUT_GRACE, task).await {
        Err(_) => Err(Error::Timeout(
            u64::try_from(budget.as_millis()).unwrap_or(u64::MAX),
        )),
        Ok(Err(join)) => Err(Error::Internal(format!("story task failed: {join}"))),
        Ok(Ok(answer)) => answer,
    };
    match answer {
        Ok(answer) => Json(answer).into_response(),
        Err(err) => err.into_response(),
    }
}

/// Searches one source of a story: its answer as the search API gives it, or `None` when the
/// server has no such stream. On a searcher, the fanned-out search.
pub(crate) type PartSearch<'a> = dyn Fn(&str, SearchRequest) -> Result<Option<Value>> + 'a;

/// One source's part: its query, and its search's answer (total, newest hits, the `node`
/// values among its matches).
struct Part {
    query: String,
    answer: Option<Value>,
}

/// This server's search of `stream`, as `scope` may see it.
fn local_search<S: StreamSource>(
    state: &AppState<S>,
    stream: &str,
    request: SearchRequest,
    scope: &Scope,
) -> Result<Option<Value>> {
    let mut parsed = request.parse(Timestamp::now(), &state.limits)?;
    parsed.scope = scope.clone();
    let snapshot = match state.source.snapshot(stream, parsed.start, parsed.end) {
        Ok(snapshot) => snapshot,
        Err(trawl_index::Error::UnknownStream(_)) => return Ok(None),
        Err(err) => return Err(err.into()),
    };
    let answer: SearchResponse = search(&snapshot, &parsed, &state.limits)?;
    serde_json::to_value(answer)
        .map(Some)
        .map_err(|err| Error::Internal(format!("a story part: {err}")))
}

/// Searches `stream` for `query` over the request's range: the newest `limit` hits and the
/// nodes of every match.
fn part(
    search: &PartSearch<'_>,
    stream: &str,
    query: String,
    params: &StoryParams,
) -> Result<Part> {
    let request = SearchRequest {
        q: Some(query.clone()),
        start: Some(params.start.clone().unwrap_or_else(|| "now-1h".into())),
        end: params.end.clone(),
        limit: params.limit,
        sort: Some(SortOrder::Desc),
        aggs: Some(json!({"nodes": {"terms": {"field": "node", "size": MAX_NODES}}})),
        ..SearchRequest::default()
    };
    Ok(Part {
        query,
        answer: search(stream, request)?,
    })
}

/// The `node` buckets of a part's answer.
fn nodes(part: &Part) -> Vec<String> {
    let Some(answer) = part.answer.as_ref() else {
        return Vec::new();
    };
    answer["aggregations"]["nodes"]["buckets"]
        .as_array()
        .map(|buckets| {
            buckets
                .iter()
                .filter_map(|b| b["key"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The story of `pod` in `namespace`, its parts searched with `search` (the scope applies to
/// the parts already; it decides here whether the journal is read). A part whose answer says
/// it is partial makes the story partial.
pub(crate) fn story(
    search: &PartSearch<'_>,
    namespace: &str,
    pod: &str,
    params: StoryParams,
    scope: &Scope,
) -> Result<Value> {
    if namespace.is_empty() || pod.is_empty() {
        return Err(Error::InvalidArgument(
            "the namespace and the pod must not be empty".into(),
        ));
    }
    let (ns, name) = (quote(namespace), quote(pod));
    let logs = part(
        search,
        LOGS_STREAM,
        format!("namespace:{ns} AND pod:{name}"),
        &params,
    )?;
    let events = part(
        search,
        EVENTS_STREAM,
        format!("namespace:{ns} AND kind:Pod AND name:{name}"),
        &params,
    )?;
    let node_set: BTreeSet<String> = nodes(&logs).into_iter().chain(nodes(&events)).collect();
    let node_list: Vec<String> = node_set.into_iter().take(MAX_NODES).collect();
    // The nodes' journal holds no namespace: a namespace-scoped caller does not read it (a
    // cluster-scoped one does, within its clusters).
    let journal = if node_list.is_empty() || scope.namespace_set().is_some() {
        None
    } else {
        let any: Vec<String> = node_list
            .iter()
            .map(|n| format!("node:{}", quote(n)))
            .collect();
        Some(part(
            search,
            JOURNAL_STREAM,
            format!("({})", any.join(" OR ")),
            &params,
        )?)
    };
    let mut entries: Vec<Map<String, Value>> = Vec::new();
    let mut sources = Map::new();
    let mut timed_out = false;
    let mut partial = false;
    for (stream, part) in [
        (LOGS_STREAM, Some(logs)),
        (EVENTS_STREAM, Some(events)),
        (JOURNAL_STREAM, journal),
    ] {
        let Some(part) = part else {
            continue;
        };
        let total = part
            .answer
            .as_ref()
            .and_then(|a| a["total"].as_u64())
            .unwrap_or(0);
        sources.insert(
            stream.to_string(),
            json!({"query": part.query, "total": total}),
        );
        if let Some(answer) = part.answer {
            timed_out |= answer["timed_out"] == true;
            partial |= answer["partial"] == true;
            if let Value::Array(hits) = &answer["hits"] {
                for hit in hits {
                    if let Value::Object(hit) = hit {
                        let mut hit = hit.clone();
                        hit.insert("stream".into(), json!(stream));
                        entries.push(hit);
                    }
                }
            }
        }
    }
    // Oldest first: the story as it happened. Timestamps are RFC 3339 with nine digits, in
    // UTC: their text orders as their time does.
    entries.sort_by(|a, b| {
        let t = |m: &Map<String, Value>| {
            m.get("timestamp")
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        t(a).cmp(&t(b))
    });
    let mut answer = json!({
        "namespace": namespace,
        "pod": pod,
        "nodes": node_list,
        "sources": sources,
        "entries": entries,
    });
    if timed_out {
        answer["timed_out"] = json!(true);
    }
    if partial {
        answer["partial"] = json!(true);
    }
    Ok(answer)
}
