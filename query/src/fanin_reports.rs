//! Reports through a searcher: `GET /api/v1/audit/reports/{name}` (and the `events` stream's)
//! on the stateless root answer as the same report over one index holding every event.
//!
//! ```text
//! client --> searcher: parse the report, resolve its time range once
//!   --> with a shared tier: list its published splits of the range and open them (its own part)
//!   --> run the report; each grouping pass groups the own part while every indexer is asked
//!       for its groups of the same pass (POST /api/v1/{stream}/_leaf/groups, the listed
//!       splits left out), and merges them all on interned ids before the report reads them
//!   --> rows, as a report on one node makes them
//! ```
//!
//! A report's rows are exact only over every group of a pass (top-N, bursts, percentiles), so
//! the indexers send their whole groups, not rows. An indexer that fails makes the answer
//! `"partial": true` with `failed_indexers`, as a search, and is not asked again for the later
//! passes of the same report (each call may last until the report's deadline, so one indexer
//! that hangs costs the report that wait once, not once per pass); a client error of an
//! indexer (a pass it refuses as too expensive) is passed on; when no indexer answers and there
//! is no shared tier part, the answer is a 503.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use trawl_index::StreamSnapshot;
use trawl_model::{ApiError, ErrorCode, Timestamp, AUDIT_STREAM, EVENTS_STREAM};

use crate::access::Scope;
use crate::error::{Error, Result};
use crate::fanin::{leaf_call, Caller, FanIn, Leaf};
use crate::remote::{lock, Excluded, RemoteSplits};
use crate::reports::{
    request_of, run_report_with, LeafAnswer, LeafRequest, PassSpec, RemoteGroups, ReportParams,
    ReportSettings, WireGroups, LEAF_GROUPS_PATH,
};
use crate::request::QueryLimits;

/// What the searcher's report routes need.
#[derive(Clone)]
pub(crate) struct RootReports {
    pub fanin: FanIn,
    pub limits: QueryLimits,
    pub remote: Option<Arc<RemoteSplits>>,
    pub settings: Arc<ReportSettings>,
}

pub(crate) async fn get_audit_report(
    State(state): State<RootReports>,
    scope: Scope,
    headers: HeaderMap,
    Path(name): Path<String>,
    params: std::result::Result<Query<ReportParams>, QueryRejection>,
) -> Response {
    report(state, AUDIT_STREAM, scope, headers, name, params).await
}

pub(crate) async fn get_events_report(
    State(state): State<RootReports>,
    scope: Scope,
    headers: HeaderMap,
    Path(name): Path<String>,
    params: std::result::Result<Query<ReportParams>, QueryRejection>,
) -> Response {
    report(state, EVENTS_STREAM, scope, headers, name, params).await
}

async fn report(
    state: RootReports,
    stream: &'static str,
    scope: Scope,
    headers: HeaderMap,
    name: String,
    params: std::result::Result<Query<ReportParams>, QueryRejection>,
) -> Response {
    let mut request = match request_of(stream, &name, params, &state.limits) {
        Ok(request) => request,
        Err(refused) => return *refused,
    };
    if state.fanin.indexers.is_empty() && state.remote.is_none() {
        return Error::Internal("no indexers are configured (`query.indexers`)".into())
            .into_response();
    }
    let caller = Caller::new(&state.fanin, scope, &headers);
    request.scope = caller.scope().clone();
    let budget = state.limits.timeout;
    let mut failed = Vec::new();
    // The shared tier's published splits of the range: this searcher's own part.
    let (own, excluded, ranged) = match &state.remote {
        Some(remote) => {
            match crate::remote::within(
                budget,
                own_part(remote, stream, request.start, request.end),
            )
            .await
            {
                Ok(part) => part,
                Err(err) => {
                    // The indexers are asked for everything they hold, their own copies of the
                    // published splits among it.
                    tracing::warn!(%err, "the shared tier could not be read; asking the indexers alone");
                    failed.push(json!({"indexer": "shared tier", "reason": err.to_string()}));
                    (None, Excluded::default(), false)
                }
            }
        }
        None => (None, Excluded::default(), false),
    };
    let has_own = own.is_some();
    let snapshot = own.unwrap_or_else(|| schema_snapshot(stream));
    let mut limits = state.limits.clone();
    if let (true, Some(remote)) = (ranged, &state.remote) {
        limits.parallelism = remote.range_read_concurrency();
    }
    let indexers = IndexerGroups {
        handle: tokio::runtime::Handle::current(),
        fanin: state.fanin.clone(),
        caller,
        stream,
        excluded,
        deadline: Instant::now() + budget + Duration::from_secs(2),
        failed: Mutex::new(BTreeMap::new()),
        answered: AtomicBool::new(false),
        refused: Mutex::new(None),
    };
    let settings = state.settings.clone();
    let task = tokio::task::spawn_blocking(move || {
        let answer = run_report_with(&snapshot, &request, &settings, &limits, Some(&indexers));
        (answer, indexers)
    });
    let outcome = tokio::time::timeout(budget + Duration::from_secs(4), task).await;
    if let Some(remote) = &state.remote {
        // What this report read by range is fetched whole for the next ones.
        remote.fill_cache();
    }
    let (answer, indexers) = match outcome {
        Err(_) => {
            return Error::Timeout(u64::try_from(budget.as_millis()).unwrap_or(u64::MAX))
                .into_response()
        }
        Ok(Err(join)) => {
            return Error::Internal(format!("report task failed: {join}")).into_response()
        }
        Ok(Ok(done)) => done,
    };
    if let Some((status, body)) = lock(&indexers.refused).take() {
        return (
            status,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response();
    }
    let answer = match answer {
        Ok(answer) => answer,
        Err(err) => return err.into_response(),
    };
    let lost = std::mem::take(&mut *lock(&indexers.failed));
    for (base, reason) in &lost {
        failed.push(json!({"indexer": base, "reason": reason}));
    }
    if !has_own && !indexers.answered.load(Ordering::Relaxed) && !lost.is_empty() {
        return ApiError::new(ErrorCode::Unavailable, "no indexer answered")
            .with_extra("failed_indexers", Value::Array(failed))
            .into_response();
    }
    let mut value = serde_json::to_value(&answer).unwrap_or(Value::Null);
    if !failed.is_empty() {
        if let Some(object) = value.as_object_mut() {
            object.insert("partial".into(), Value::Bool(true));
            object.insert("failed_indexers".into(), Value::Array(failed));
        }
    }
    Json(value).into_response()
}

/// The published splits of `stream` in `[start, end)`, opened (`None` when there are none),
/// with what the indexers leave out for it and whether some are read by range.
async fn own_part(
    remote: &Arc<RemoteSplits>,
    stream: &str,
    start: Option<Timestamp>,
    end: Option<Timestamp>,
) -> Result<(Option<StreamSnapshot>, Excluded, bool)> {
    let (listed, opened) = remote.open_published(stream, start, end).await?;
    let excluded = Excluded::of([&listed]);
    Ok(match opened {
        Some((snapshot, ranged)) => (Some(snapshot), excluded, ranged),
        None => (None, excluded, false),
    })
}

/// A report stream's schema with no targets: what a searcher without an own part parses the
/// report's queries with.
fn schema_snapshot(stream: &str) -> StreamSnapshot {
    use trawl_model::schema::{
        AUDIT_DEFAULT_FIELDS, AUDIT_FIELDS, EVENT_DEFAULT_FIELDS, EVENT_FIELDS,
    };
    let (fields, defaults) = if stream == EVENTS_STREAM {
        (EVENT_FIELDS, EVENT_DEFAULT_FIELDS)
    } else {
        (AUDIT_FIELDS, AUDIT_DEFAULT_FIELDS)
    };
    let schema = trawl_index::schema::build_schema(fields);
    StreamSnapshot {
        stream: stream.to_string(),
        default_fields: defaults
            .iter()
            .filter_map(|name| schema.get_field(name).ok())
            .collect(),
        schema,
        tokenizers: tantivy::tokenizer::TokenizerManager::default(),
        targets: Vec::new(),
    }
}

/// The indexers as the other parts of a report's passes. Called from the report's blocking
/// thread: each call waits on the runtime for every indexer's answer.
struct IndexerGroups {
    handle: tokio::runtime::Handle,
    fanin: FanIn,
    caller: Caller,
    stream: &'static str,
    /// What the searcher reads itself.
    excluded: Excluded,
    /// When every call must have answered.
    deadline: Instant,
    /// Indexers that failed a call, with the reason; they are not asked again.
    failed: Mutex<BTreeMap<String, String>>,
    /// Some indexer answered some call.
    answered: AtomicBool,
    /// The first client error of an indexer, passed on as the answer.
    refused: Mutex<Option<(StatusCode, Bytes)>>,
}

impl IndexerGroups {
    /// The answer to `request` of every indexer that has not failed yet; those that fail now
    /// are noted and left out of this call and the later ones. A client error ends the report
    /// (it is passed on), except an unknown stream: an indexer without the stream holds none
    /// of its events.
    fn ask(&self, request: &LeafRequest) -> Result<Vec<LeafAnswer>> {
        let mut body = serde_json::to_value(request)
            .map_err(|err| Error::Internal(format!("encoding a report leaf request: {err}")))?;
        if self.caller.scope().is_restricted() {
            body[crate::distributed::LEAF_SCOPE_KEY] =
                serde_json::to_value(self.caller.scope()).unwrap_or(Value::Null);
        }
        self.excluded.add_to(&mut body);
        let path = LEAF_GROUPS_PATH.replace("{stream}", self.stream);
        let asked: Vec<&String> = {
            let failed = lock(&self.failed);
            self.fanin
                .indexers
                .iter()
                .filter(|base| !failed.contains_key(*base))
                .collect()
        };
        let left = self
            .deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1));
        let calls = asked.into_iter().map(|base| {
            let request = self.caller.apply(
                self.fanin
                    .client
                    .post(format!("{base}{path}"))
                    .json(&body)
                    .timeout(left),
            );
            async move { (base.clone(), leaf_call::<LeafAnswer>(request).await) }
        });
        let outcomes = self.handle.block_on(futures::future::join_all(calls));
        let mut answers = Vec::with_capacity(outcomes.len());
        for (base, outcome) in outcomes {
            match outcome {
                Leaf::Answer(answer) => {
                    self.answered.store(true, Ordering::Relaxed);
                    answers.push(answer);
                }
                Leaf::Refused(StatusCode::NOT_FOUND, body) if unknown_stream(&body) => {
                    self.answered.store(true, Ordering::Relaxed);
                }
                Leaf::Refused(StatusCode::NOT_FOUND, _) => {
                    // An indexer of an older release, without the route: its events are
                    // missing, as those of an indexer that is down.
                    let reason = "does not serve report leaves (update indexers before searchers)";
                    tracing::warn!(indexer = %base, reason, "report leaf failed");
                    lock(&self.failed).insert(base, reason.to_string());
                }
                Leaf::Refused(status, body) => {
                    lock(&self.refused).get_or_insert((status, body));
                    return Err(Error::InvalidArgument(format!("{base} refused the report")));
                }
                Leaf::Failed(reason) => {
                    tracing::warn!(indexer = %base, %reason, "report leaf failed");
                    lock(&self.failed).insert(base, reason);
                }
            }
        }
        Ok(answers)
    }
}

impl RemoteGroups for IndexerGroups {
    fn groups(&self, pass: &PassSpec) -> Result<Vec<WireGroups>> {
        self.ask(&LeafRequest::Pass(pass.clone()))?
            .into_iter()
            .map(|answer| match answer {
                LeafAnswer::Groups(groups) => Ok(groups),
                LeafAnswer::Terms(_) => Err(Error::Internal(
                    "an indexer answered a pass with terms".into(),
                )),
            })
            .collect()
    }

    fn terms(
        &self,
        field: &str,
        globs: &[String],
        start: Option<Timestamp>,
        end: Option<Timestamp>,
    ) -> Result<Vec<String>> {
        let request = LeafRequest::Terms {
            field: field.to_string(),
            globs: globs.to_vec(),
            start: start.map(|t| t.0),
            end: end.map(|t| t.0),
        };
        let mut found = Vec::new();
        for answer in self.ask(&request)? {
            match answer {
                LeafAnswer::Terms(terms) => found.extend(terms),
                LeafAnswer::Groups(_) => {
                    return Err(Error::Internal(
                        "an indexer answered terms with groups".into(),
                    ))
                }
            }
        }
        Ok(found)
    }
}

/// Whether an error body is the envelope of an unknown stream.
fn unknown_stream(body: &[u8]) -> bool {
    serde_json::from_slice::<Value>(body)
        .is_ok_and(|value| value["error"]["code"] == ErrorCode::UnknownStream.as_str())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    /// An indexer that accepts connections and never answers: the first call waits until the
    /// report's deadline and notes it failed; the next call does not ask it again.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_indexer_that_hangs_is_waited_for_once_per_report() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let accepted = Arc::new(AtomicUsize::new(0));
        let counted = accepted.clone();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                held.push(socket);
            }
        });
        let fanin = FanIn {
            indexers: Arc::new(vec![url.clone()]),
            client: reqwest::Client::new(),
            credentials: None,
        };
        let indexers = IndexerGroups {
            handle: tokio::runtime::Handle::current(),
            caller: Caller::new(&fanin, Scope::All, &HeaderMap::new()),
            fanin,
            stream: AUDIT_STREAM,
            excluded: Excluded::default(),
            deadline: Instant::now() + Duration::from_millis(300),
            failed: Mutex::new(BTreeMap::new()),
            answered: AtomicBool::new(false),
            refused: Mutex::new(None),
        };
        let indexers = tokio::task::spawn_blocking(move || {
            let globs = ["system:*".to_string()];
            assert_eq!(
                indexers.terms("user_groups", &globs, None, None).unwrap(),
                Vec::<String>::new()
            );
            assert_eq!(
                indexers.terms("user_groups", &globs, None, None).unwrap(),
                Vec::<String>::new()
            );
            indexers
        })
        .await
        .unwrap();
        assert_eq!(accepted.load(Ordering::SeqCst), 1, "asked once");
        let failed = lock(&indexers.failed).clone();
        assert_eq!(failed.keys().collect::<Vec<_>>(), vec![&url]);
        assert!(!indexers.answered.load(Ordering::SeqCst));
    }
}
