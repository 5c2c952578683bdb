//! A report's passes at an indexer, for a searcher: `POST /api/v1/{stream}/_leaf/groups`
//! answers one grouping pass of a report over the indexer's snapshot (its groups, keyed as
//! [`WireGroups`]), or the values of `user_groups` matching some globs (what `secret-access`
//! leaves out). The body is JSON: `{"pass": {...}}` or `{"terms": {...}}`, with the root
//! caller's `scope` and the `exclude_splits` the searcher reads itself, as a leaf search's; the
//! answer is postcard-encoded [`LeafAnswer`], errors the usual JSON envelope.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use trawl_index::{SearchTarget, StreamSnapshot, StreamSource};
use trawl_model::{Timestamp, AUDIT_STREAM, EVENTS_STREAM};

use super::group::{self, PassKey, PassSpec, WireGroups};
use super::sensitive::matching_terms;
use super::AppState;
use crate::access::Scope;
use crate::error::{Error, Result};
use crate::request::QueryLimits;

/// Path of the report leaf every indexer serves.
pub const LEAF_GROUPS_PATH: &str = "/api/v1/{stream}/_leaf/groups";

/// The one keyword field whose values a searcher may ask for ([`LeafRequest::Terms`]): the
/// system groups of `secret-access`.
const TERMS_FIELD: &str = "user_groups";

/// What a searcher asks an indexer for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum LeafRequest {
    /// One grouping pass.
    Pass(PassSpec),
    /// The values of `field` matching one of `globs` in `[start, end)` (nanoseconds).
    Terms {
        field: String,
        globs: Vec<String>,
        start: Option<i64>,
        end: Option<i64>,
    },
}

/// An indexer's answer to a [`LeafRequest`].
#[derive(Clone, Serialize, Deserialize)]
pub(crate) enum LeafAnswer {
    Groups(WireGroups),
    Terms(Vec<String>),
}

/// Answers `request` over `snapshot` as `scope` may see it. Blocking and CPU-heavy.
pub(crate) fn answer(
    snapshot: &StreamSnapshot,
    request: &LeafRequest,
    scope: &Scope,
    limits: &QueryLimits,
) -> Result<LeafAnswer> {
    match request {
        LeafRequest::Pass(spec) => {
            let (keys, extras) = spec.resolve(&snapshot.schema)?;
            let (start, end) = (spec.start.map(Timestamp), spec.end.map(Timestamp));
            let query = crate::query_text::build_query(snapshot, &spec.query, start, end, scope)?;
            let pass = PassKey {
                query: &spec.query,
                keys: &keys,
                extras: &extras,
                scope: serde_json::to_string(scope).unwrap_or_default(),
                start,
                end,
            };
            let targets: Vec<&SearchTarget> = snapshot
                .targets
                .iter()
                .filter(|t| t.overlaps(start, end))
                .collect();
            // The searcher's cap, so that a leaf refuses no pass the searcher would answer.
            let cap = limits
                .report_group_limit
                .max(limits.aggregation_bucket_limit) as usize;
            let outcome = group::group(
                &targets,
                query.as_ref(),
                &pass,
                || Ok(Vec::new()),
                cap,
                limits.parallelism,
                Instant::now() + limits.timeout,
            )?;
            Ok(LeafAnswer::Groups(WireGroups::from_set(
                outcome.groups,
                outcome.timed_out,
            )))
        }
        LeafRequest::Terms {
            field,
            globs,
            start,
            end,
        } => {
            if field != TERMS_FIELD {
                return Err(Error::InvalidArgument(format!(
                    "only the values of `{TERMS_FIELD}` can be listed"
                )));
            }
            let found = matching_terms(
                snapshot,
                field,
                globs,
                start.map(Timestamp),
                end.map(Timestamp),
            )?;
            Ok(LeafAnswer::Terms(found.into_iter().collect()))
        }
    }
}

/// The time range a request reads, for the snapshot.
fn range(request: &LeafRequest) -> (Option<Timestamp>, Option<Timestamp>) {
    match request {
        LeafRequest::Pass(spec) => (spec.start.map(Timestamp), spec.end.map(Timestamp)),
        LeafRequest::Terms { start, end, .. } => (start.map(Timestamp), end.map(Timestamp)),
    }
}

/// `POST /api/v1/{stream}/_leaf/groups`. The forwarded scope can only narrow the caller's
/// own, as for a leaf search.
pub(super) async fn route<S: StreamSource>(
    State(state): State<AppState<S>>,
    scope: Scope,
    Path(stream): Path<String>,
    body: Bytes,
) -> Response {
    let result = async {
        if stream != AUDIT_STREAM && stream != EVENTS_STREAM {
            return Err(Error::UnknownStream(stream.chars().take(80).collect()));
        }
        let (body, forwarded, excluded) = crate::distributed::leaf_body(&body)?;
        let request: LeafRequest = serde_json::from_value(body)
            .map_err(|err| Error::InvalidArgument(format!("request body: {err}")))?;
        let scope = scope.intersect(&forwarded);
        let source = Arc::clone(&state.source);
        let limits = state.limits.clone();
        let answer = tokio::task::spawn_blocking(move || {
            let (start, end) = range(&request);
            let mut snapshot = source.snapshot(&stream, start, end)?;
            crate::remote::leave_out(&mut snapshot, &excluded);
            answer(&snapshot, &request, &scope, &limits)
        })
        .await
        .map_err(|join| Error::Internal(format!("report leaf task failed: {join}")))??;
        postcard::to_stdvec(&answer)
            .map_err(|err| Error::Internal(format!("encoding a report leaf answer: {err}")))
    }
    .await;
    crate::distributed::leaf_answer(result)
}
