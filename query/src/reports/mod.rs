//! Ready reports: `GET /api/v1/audit/reports/{name}` answers the questions security people ask
//! of Kubernetes audit events (who did what, who was denied, who read secrets, exec'd into
//! pods, changed RBAC, ...) as flat rows, and `GET /api/v1/events/reports/pod-failures` what
//! went wrong with pods, from Kubernetes Events.
//!
//! Every report is one typed grouping pass over the fast fields of its stream
//! ([`group`]: targets and segments in parallel, key ordinals merged by value), never reading
//! stored documents. Each row carries its group keys, an exact `count`, `first_seen` and
//! `last_seen` (to the nanosecond), and `query`: a query string that, run over the same
//! `[start, end)`, finds exactly the row's events. A request counts once: only the
//! `ResponseComplete` and `Panic` stages are counted, except by `exec-attach`, which counts the
//! `ResponseStarted` of exec, attach and port-forward sessions. Groups are enumerated
//! exhaustively: a report with more groups than `query.report_group_limit` is refused as too
//! expensive rather than answered approximately.
//!
//! ```text
//! mod.rs       the report names, parameters, settings, dispatch and the route
//! filter.rs    query clauses, quoting, globs
//! group/       the typed grouping pass (keys, count, first and last time, extras) and its cache
//! engine.rs    what reports share over the pass: rows, folding, order, rendering, drill-down
//! activity.rs  top-users, top-resources, top-source-ips, top-user-agents
//! denials.rs   forbidden, forbidden-bursts
//! sensitive.rs secret-access, token-requests, exec-attach, anonymous, impersonation
//! changes.rs   deletions, privileged-pods, rbac-changes
//! traffic.rs   timeline, latency
//! pods.rs      pod-failures (the `events` stream)
//! tests/       a generated corpus with known answers (corpus.rs) and every report against it
//! ```

mod activity;
mod changes;
mod denials;
mod engine;
mod filter;
mod group;
pub(crate) use filter::quote as filter_quote;
mod leaf;
pub(crate) use engine::RemoteGroups;
pub(crate) use group::{PassSpec, WireGroups};
pub use leaf::LEAF_GROUPS_PATH;
pub(crate) use leaf::{LeafAnswer, LeafRequest};
mod pods;
mod sensitive;
mod traffic;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use trawl_config::QueryConfig;
use trawl_index::{StreamSnapshot, StreamSource};
use trawl_model::{Timestamp, AUDIT_STREAM, EVENTS_STREAM};

use crate::access::Scope;
use crate::error::{Error, Result};
use crate::request::QueryLimits;
use engine::Ctx;

/// The ready reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Report {
    /// Requests per `user` (and `impersonated_user`), with `errors` (status ≥ 400).
    TopUsers,
    /// Requests per `resource` and `verb` (non-resource requests have an empty `resource`).
    TopResources,
    /// Requests per `source_ip` (the direct peer).
    TopSourceIps,
    /// Requests per `user_agent`.
    TopUserAgents,
    /// Denied requests (status 401 or 403, or decision `forbid`) per user, resource and verb.
    Forbidden,
    /// Users with at least `min` denials across at least `min_resources` distinct resources
    /// within one `window` (windows are aligned on the epoch): permission enumeration.
    ForbiddenBursts,
    /// `get`, `list` and `watch` of secrets per user, namespace and outcome (`allowed`: status
    /// below 400; `failed`: the rest), system components excluded.
    SecretAccess,
    /// Creations of `serviceaccounts/token` per user, namespace and service account.
    TokenRequests,
    /// `exec`, `attach`, `portforward` (at `ResponseStarted`) and `ephemeralcontainers` (at
    /// completion) of pods, per user, pod, subresource, container and command.
    ExecAttach,
    /// `delete` and `deletecollection` per resource, namespace and user, with up to 10 names.
    Deletions,
    /// Creates, updates and patches of pod specs asking for host-level privileges, per user and
    /// object, with the `flags` seen.
    PrivilegedPods,
    /// Requests of `system:anonymous` or the `system:unauthenticated` group, allowed ones first.
    Anonymous,
    /// Writes to roles, role bindings, cluster roles and cluster role bindings; bindings to
    /// `ClusterRole/cluster-admin` flagged and first.
    RbacChanges,
    /// Requests that impersonated someone.
    Impersonation,
    /// Requests per time interval, split by status class.
    Timeline,
    /// p50, p90 and p99 of `latency_ms` per verb and resource.
    Latency,
    /// Kubernetes Events of pods that failed (crash loops, image pulls, OOM kills, scheduling,
    /// evictions, probes) per namespace, pod and reason: the `events` stream.
    PodFailures,
}

impl Report {
    /// Every report, in the order they are documented.
    pub const ALL: [Report; 17] = [
        Report::TopUsers,
        Report::TopResources,
        Report::TopSourceIps,
        Report::TopUserAgents,
        Report::Forbidden,
        Report::ForbiddenBursts,
        Report::SecretAccess,
        Report::TokenRequests,
        Report::ExecAttach,
        Report::Deletions,
        Report::PrivilegedPods,
        Report::Anonymous,
        Report::RbacChanges,
        Report::Impersonation,
        Report::Timeline,
        Report::Latency,
        Report::PodFailures,
    ];

    /// The report's name in the URL.
    pub fn name(self) -> &'static str {
        match self {
            Report::TopUsers => "top-users",
            Report::TopResources => "top-resources",
            Report::TopSourceIps => "top-source-ips",
            Report::TopUserAgents => "top-user-agents",
            Report::Forbidden => "forbidden",
            Report::ForbiddenBursts => "forbidden-bursts",
            Report::SecretAccess => "secret-access",
            Report::TokenRequests => "token-requests",
            Report::ExecAttach => "exec-attach",
            Report::Deletions => "deletions",
            Report::PrivilegedPods => "privileged-pods",
            Report::Anonymous => "anonymous",
            Report::RbacChanges => "rbac-changes",
            Report::Impersonation => "impersonation",
            Report::Timeline => "timeline",
            Report::Latency => "latency",
            Report::PodFailures => "pod-failures",
        }
    }

    /// The stream the report reads (and the path it is served under).
    pub fn stream(self) -> &'static str {
        match self {
            Report::PodFailures => EVENTS_STREAM,
            _ => AUDIT_STREAM,
        }
    }

    /// The report of that name, if there is one.
    pub fn from_name(name: &str) -> Option<Report> {
        Report::ALL.into_iter().find(|r| r.name() == name)
    }
}

/// Who counts as the cluster's own components rather than people (`secret-access` leaves them
/// out), from `query.audit_system_users` and `query.audit_system_groups`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportSettings {
    /// User-name globs (`*` matches any run of characters).
    pub system_users: Vec<String>,
    /// Group globs: a request by a member of a matching group is a system component's.
    pub system_groups: Vec<String>,
}

impl ReportSettings {
    /// The settings of the `[query]` section.
    pub fn from_config(config: &QueryConfig) -> ReportSettings {
        ReportSettings {
            system_users: config.audit_system_users.clone(),
            system_groups: config.audit_system_groups.clone(),
        }
    }

    /// Whether `user` matches one of the system-user globs.
    pub fn is_system_user(&self, user: &str) -> bool {
        self.system_users
            .iter()
            .any(|glob| filter::glob_match(glob, user))
    }
}

impl Default for ReportSettings {
    fn default() -> Self {
        ReportSettings::from_config(&QueryConfig::default())
    }
}

/// The parameters of a report request, as the query string gives them. Unknown parameters are
/// refused, and so are parameters of another report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportParams {
    /// Inclusive lower time bound: RFC 3339 or `now[+-]N<unit>`.
    pub start: Option<String>,
    /// Exclusive upper time bound.
    pub end: Option<String>,
    /// An extra filter in the query grammar, ANDed with the report's own.
    pub q: Option<String>,
    /// Largest number of rows (default and maximum from the `[query]` limits: 100 and 10,000).
    pub limit: Option<usize>,
    /// `forbidden-bursts`: fewest denials in a window (default 5).
    pub min: Option<u64>,
    /// `forbidden-bursts`: fewest distinct resources in a window (default 3).
    pub min_resources: Option<u64>,
    /// `forbidden-bursts`: the window, `N<unit>` with unit `s`, `m`, `h`, `d` or `w` (default
    /// `5m`).
    pub window: Option<String>,
    /// `timeline`: the interval (default: about 60 intervals over `[start, end)` when both are
    /// given, else `1h`).
    pub interval: Option<String>,
    /// `cluster`: every row per cluster too (with a `cluster` column and clause).
    pub group_by: Option<String>,
}

/// A validated report request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportRequest {
    pub report: Report,
    /// Inclusive lower bound.
    pub start: Option<Timestamp>,
    /// Exclusive upper bound.
    pub end: Option<Timestamp>,
    /// The client's filter; `None` for none (or `*`).
    pub q: Option<String>,
    /// Largest number of rows.
    pub limit: usize,
    /// `forbidden-bursts`: fewest denials in a window.
    pub burst_min: u64,
    /// `forbidden-bursts`: fewest distinct resources in a window.
    pub burst_min_resources: u64,
    /// `forbidden-bursts`: the window in nanoseconds (whole seconds).
    pub burst_window: i64,
    /// `timeline`: the interval in nanoseconds (whole seconds), `None` for automatic.
    pub interval: Option<i64>,
    /// `group_by=cluster`: rows per cluster too.
    pub by_cluster: bool,
    /// The events the caller may see (by `namespace`; cluster-scoped events only for
    /// [`Scope::All`]): every aggregation of the report is restricted to it.
    pub scope: Scope,
}

const NANOS_PER_SECOND: i64 = 1_000_000_000;
/// Longest `window` or `interval` accepted: a year.
const MAX_INTERVAL_SECONDS: i64 = 366 * 86_400;

impl ReportRequest {
    /// A request for `report` with every parameter at its default.
    pub fn new(report: Report, limits: &QueryLimits) -> ReportRequest {
        ReportRequest {
            report,
            start: None,
            end: None,
            q: None,
            limit: limits.default_limit,
            burst_min: 5,
            burst_min_resources: 3,
            burst_window: 5 * 60 * NANOS_PER_SECOND,
            interval: None,
            by_cluster: false,
            scope: Scope::All,
        }
    }

    /// Validates `params` for `report`, `now` standing for `now` in times. Every failure is an
    /// [`Error::InvalidArgument`] naming the parameter.
    pub fn parse(
        report: Report,
        params: ReportParams,
        now: Timestamp,
        limits: &QueryLimits,
    ) -> Result<ReportRequest> {
        let mut request = ReportRequest::new(report, limits);
        let time = |name: &str, text: Option<String>| -> Result<Option<Timestamp>> {
            text.filter(|t| !t.trim().is_empty())
                .map(|t| {
                    Timestamp::parse_expr(&t, now)
                        .map_err(|err| Error::InvalidArgument(format!("`{name}`: {err}")))
                })
                .transpose()
        };
        request.start = time("start", params.start)?;
        request.end = time("end", params.end)?;
        if let (Some(s), Some(e)) = (request.start, request.end) {
            if s > e {
                return Err(Error::InvalidArgument(format!(
                    "`start` ({s}) is after `end` ({e})"
                )));
            }
        }
        request.q = params
            .q
            .map(|q| q.trim().to_string())
            .filter(|q| !q.is_empty() && q != "*");
        if let Some(limit) = params.limit {
            if limit > limits.max_limit {
                return Err(Error::InvalidArgument(format!(
                    "`limit` {limit} exceeds the maximum of {}",
                    limits.max_limit
                )));
            }
            request.limit = limit;
        }
        let only_for = |name: &str, given: bool, owner: Report| {
            if given && report != owner {
                Err(Error::InvalidArgument(format!(
                    "`{name}` applies to the `{}` report only",
                    owner.name()
                )))
            } else {
                Ok(())
            }
        };
        only_for("min", params.min.is_some(), Report::ForbiddenBursts)?;
        only_for(
            "min_resources",
            params.min_resources.is_some(),
            Report::ForbiddenBursts,
        )?;
        only_for("window", params.window.is_some(), Report::ForbiddenBursts)?;
        only_for("interval", params.interval.is_some(), Report::Timeline)?;
        if let Some(min) = params.min {
            request.burst_min = min;
        }
        if let Some(min) = params.min_resources {
            request.burst_min_resources = min;
        }
        if let Some(window) = params.window {
            request.burst_window = parse_interval("window", &window)?;
        }
        request.by_cluster = match params.group_by.as_deref().map(str::trim) {
            None | Some("") => false,
            Some("cluster") => true,
            Some(other) => {
                return Err(Error::InvalidArgument(format!(
                    "`group_by` takes `cluster` only, not {:?}",
                    other.chars().take(40).collect::<String>()
                )))
            }
        };
        request.interval = params
            .interval
            .filter(|i| !i.trim().is_empty() && i.trim() != "auto")
            .map(|i| parse_interval("interval", &i))
            .transpose()?;
        Ok(request)
    }
}

/// `N<unit>` (unit `s`, `m`, `h`, `d`, `w`; N a positive integer) in nanoseconds, at most a
/// year.
fn parse_interval(name: &str, text: &str) -> Result<i64> {
    let text = text.trim();
    let invalid = || {
        Error::InvalidArgument(format!(
            "`{name}`: `{}` is not a duration such as `30s`, `5m`, `1h` or `1d`",
            text.chars().take(32).collect::<String>()
        ))
    };
    let unit_at = text
        .char_indices()
        .last()
        .map(|(at, _)| at)
        .ok_or_else(invalid)?;
    let (amount, unit) = text.split_at(unit_at);
    let amount: i64 = amount.parse().map_err(|_| invalid())?;
    let unit_seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(invalid()),
    };
    let seconds = amount.checked_mul(unit_seconds).ok_or_else(invalid)?;
    if seconds <= 0 || seconds > MAX_INTERVAL_SECONDS {
        return Err(Error::InvalidArgument(format!(
            "`{name}` must be between 1s and 366d"
        )));
    }
    Ok(seconds * NANOS_PER_SECOND)
}

/// The answer to a report request.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReportResponse {
    /// The report's name.
    pub report: String,
    /// Flat rows: group keys, report columns, `count`, `first_seen`, `last_seen`, `query`.
    pub rows: Vec<Map<String, Value>>,
    /// Wall-clock time in milliseconds.
    pub took_ms: u64,
    /// The time budget ran out: the rows cover only part of the events.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub timed_out: bool,
}

/// Runs a report over a snapshot of the `audit` stream. Blocking and CPU-heavy: call it from a
/// blocking thread.
///
/// Errors: [`Error::InvalidQuery`] for a `q` that does not parse, [`Error::TooExpensive`] when
/// a report would have more groups (or buckets) than the aggregation limits allow,
/// [`Error::Internal`] when an index cannot be read.
pub fn run_report(
    snapshot: &StreamSnapshot,
    request: &ReportRequest,
    settings: &ReportSettings,
    limits: &QueryLimits,
) -> Result<ReportResponse> {
    run_report_with(snapshot, request, settings, limits, None)
}

/// [`run_report`] over `snapshot` and, when a searcher runs it, the `remote` parts of every
/// pass (its indexers): each pass's groups are merged before the report reads them, so the
/// rows are those of one index holding every part.
pub(crate) fn run_report_with(
    snapshot: &StreamSnapshot,
    request: &ReportRequest,
    settings: &ReportSettings,
    limits: &QueryLimits,
    remote: Option<&dyn RemoteGroups>,
) -> Result<ReportResponse> {
    let started = Instant::now();
    let mut ctx = Ctx::new(snapshot, request, settings, limits);
    ctx.remote = remote;
    let rows = match request.report {
        Report::TopUsers => activity::top_users(&ctx),
        Report::TopResources => activity::top_resources(&ctx),
        Report::TopSourceIps => activity::top_source_ips(&ctx),
        Report::TopUserAgents => activity::top_user_agents(&ctx),
        Report::Forbidden => denials::forbidden(&ctx),
        Report::ForbiddenBursts => denials::forbidden_bursts(&ctx),
        Report::SecretAccess => sensitive::secret_access(&ctx),
        Report::TokenRequests => sensitive::token_requests(&ctx),
        Report::ExecAttach => sensitive::exec_attach(&ctx),
        Report::Anonymous => sensitive::anonymous(&ctx),
        Report::Impersonation => sensitive::impersonation(&ctx),
        Report::Deletions => changes::deletions(&ctx),
        Report::PrivilegedPods => changes::privileged_pods(&ctx),
        Report::RbacChanges => changes::rbac_changes(&ctx),
        Report::Timeline => traffic::timeline(&ctx),
        Report::Latency => traffic::latency(&ctx),
        Report::PodFailures => pods::pod_failures(&ctx),
    }?;
    Ok(ReportResponse {
        report: request.report.name().to_string(),
        rows,
        took_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        timed_out: ctx.timed_out(),
    })
}

/// Extra time given to a report past its budget before the client gets a 504 (the budget is
/// checked between segments).
const TIMEOUT_GRACE: Duration = Duration::from_secs(2);

/// The report route's state; `extra` is the report settings.
type AppState<S> = crate::state::AppState<S, Arc<ReportSettings>>;

/// The report routes: `GET /api/v1/audit/reports/{name}` (and `/api/v1/events/reports/{name}`
/// for the `events` stream's) with `start`, `end`, `q`, `limit` and the report's own
/// parameters, answering [`ReportResponse`] as JSON. An unknown report is a
/// 404 whose message lists the reports; bad parameters are 400s. Also the report leaf a
/// searcher asks ([`LEAF_GROUPS_PATH`]).
pub fn routes<S: StreamSource>(
    source: Arc<S>,
    settings: ReportSettings,
    limits: QueryLimits,
) -> Router {
    let state = AppState {
        source,
        limits,
        extra: Arc::new(settings),
    };
    Router::new()
        .route("/api/v1/audit/reports/{name}", get(get_audit_report::<S>))
        .route("/api/v1/events/reports/{name}", get(get_events_report::<S>))
        .route(LEAF_GROUPS_PATH, axum::routing::post(leaf::route::<S>))
        .with_state(state)
}

async fn get_audit_report<S: StreamSource>(
    state: State<AppState<S>>,
    scope: Scope,
    Path(name): Path<String>,
    params: std::result::Result<Query<ReportParams>, QueryRejection>,
) -> Response {
    get_report(AUDIT_STREAM, state, scope, name, params).await
}

async fn get_events_report<S: StreamSource>(
    state: State<AppState<S>>,
    scope: Scope,
    Path(name): Path<String>,
    params: std::result::Result<Query<ReportParams>, QueryRejection>,
) -> Response {
    get_report(EVENTS_STREAM, state, scope, name, params).await
}

/// A report of `stream` (a report of another stream is unknown here, as under its own path).
async fn get_report<S: StreamSource>(
    stream: &str,
    State(state): State<AppState<S>>,
    scope: Scope,
    name: String,
    params: std::result::Result<Query<ReportParams>, QueryRejection>,
) -> Response {
    let mut request = match request_of(stream, &name, params, &state.limits) {
        Ok(request) => request,
        Err(refused) => return *refused,
    };
    request.scope = scope;
    match execute(&state, request).await {
        Ok(answer) => Json(answer).into_response(),
        Err(err) => err.into_response(),
    }
}

/// The request for report `name` of `stream` with the client's parameters (times resolved
/// now), or the answer refusing it: a 404 naming the reports for an unknown one, a 400 for bad
/// parameters.
pub(crate) fn request_of(
    stream: &str,
    name: &str,
    params: std::result::Result<Query<ReportParams>, QueryRejection>,
    limits: &QueryLimits,
) -> std::result::Result<ReportRequest, Box<Response>> {
    let Some(report) = Report::from_name(name).filter(|r| r.stream() == stream) else {
        return Err(Box::new(unknown_report(stream, name)));
    };
    let params = match params {
        Ok(Query(params)) => params,
        Err(rejection) => return Err(Box::new(Error::from(rejection).into_response())),
    };
    ReportRequest::parse(report, params, Timestamp::now(), limits)
        .map_err(|err| Box::new(err.into_response()))
}

async fn execute<S: StreamSource>(
    state: &AppState<S>,
    request: ReportRequest,
) -> Result<ReportResponse> {
    let budget = state.limits.timeout;
    let state = state.clone();
    let task = tokio::task::spawn_blocking(move || {
        let snapshot =
            state
                .source
                .snapshot(request.report.stream(), request.start, request.end)?;
        run_report(&snapshot, &request, &state.extra, &state.limits)
    });
    match tokio::time::timeout(budget + TIMEOUT_GRACE, task).await {
        Err(_) => Err(Error::Timeout(
            u64::try_from(budget.as_millis()).unwrap_or(u64::MAX),
        )),
        Ok(Err(join)) => Err(Error::Internal(format!("report task failed: {join}"))),
        Ok(Ok(answer)) => answer,
    }
}

/// 404 in the API's error shape, naming the reports of `stream`.
fn unknown_report(stream: &str, name: &str) -> Response {
    let known: Vec<&str> = Report::ALL
        .iter()
        .filter(|r| r.stream() == stream)
        .map(|r| r.name())
        .collect();
    let shown: String = name.chars().take(80).collect();
    let body = serde_json::json!({
        "error": {
            "code": "unknown_report",
            "message": format!("unknown report `{shown}`; the reports are: {}", known.join(", ")),
        }
    });
    (StatusCode::NOT_FOUND, Json(body)).into_response()
}

#[cfg(test)]
mod tests;
