//! `GET /api/v1/streams` where the data is (an indexer, standalone): each stream's documents,
//! index bytes, splits and time range. A namespace-scoped caller sees only what its namespaces
//! hold: documents are counted with the scope's namespace filter, the time range is that of the
//! visible documents, `splits` counts the splits holding any of them, and `bytes` is the
//! stream's bytes in proportion to the visible documents (an estimate: a split's bytes are not
//! kept per namespace). `_cat/indices` reports the same ([`visible_counts`]).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::Column;
use tantivy::{DateTime, DocId, Score, SegmentOrdinal, SegmentReader};
use trawl_index::{StreamSnapshot, StreamSource, StreamStats};
use trawl_model::Timestamp;

use crate::access::Scope;
use crate::error::{Error, Result};
use crate::search::TIMESTAMP_FIELD;

/// `GET /api/v1/streams` over `source` (the whole-stream figures, and snapshots to count a
/// scope's share of them), scoped to the caller.
pub fn routes<S: StreamSource>(source: Arc<S>) -> Router {
    Router::new()
        .route("/api/v1/streams", get(streams::<S>))
        .route(LEAF_STREAMS_PATH, post(leaf_streams::<S>))
        .with_state(source)
}

/// What a searcher over the shared tier asks each indexer for: the statistics of what the
/// indexer holds besides the splits the searcher counted itself.
pub const LEAF_STREAMS_PATH: &str = "/api/v1/_leaf/streams";

/// `POST /api/v1/_leaf/streams` with `{"exclude_splits": [ids]}`: each stream's statistics
/// over the hot index and the splits not excluded (nor made by a merge of an excluded one),
/// scoped to the caller. Documents, splits and the time range are counted over those
/// targets; `bytes` is the stream's bytes in proportion to their documents (an estimate).
async fn leaf_streams<S: StreamSource>(
    State(source): State<Arc<S>>,
    scope: Scope,
    body: Bytes,
) -> Response {
    let excluded = match serde_json::from_slice::<Value>(&body)
        .map_err(|err| Error::InvalidArgument(format!("request body: {err}")))
        .and_then(|mut body| crate::remote::take_excluded(&mut body))
    {
        Ok(excluded) => excluded,
        Err(err) => return err.into_response(),
    };
    stream_stats(source, scope, excluded).await
}

async fn streams<S: StreamSource>(State(source): State<Arc<S>>, scope: Scope) -> Response {
    stream_stats(source, scope, crate::remote::Excluded::default()).await
}

/// Each stream's statistics as `scope` may see them, over the targets that are not
/// `excluded` ([`crate::remote::excluded`]).
async fn stream_stats<S: StreamSource>(
    source: Arc<S>,
    scope: Scope,
    excluded: crate::remote::Excluded,
) -> Response {
    let stats = tokio::task::spawn_blocking(move || {
        let stats = source.stream_stats();
        if !scope.is_restricted() && excluded.is_empty() {
            return Ok(stats);
        }
        stats
            .into_iter()
            .map(|s| scoped_stats(source.as_ref(), s, &scope, &excluded))
            .collect::<Result<Vec<_>>>()
    })
    .await
    .map_err(|join| Error::Internal(format!("stream statistics task failed: {join}")))
    .and_then(|r| r);
    match stats {
        Ok(stats) => Json(json!({ "streams": stats })).into_response(),
        Err(err) => err.into_response(),
    }
}

/// `stats` as `scope` may see them, without the `excluded` splits.
fn scoped_stats<S: StreamSource + ?Sized>(
    source: &S,
    stats: StreamStats,
    scope: &Scope,
    excluded: &crate::remote::Excluded,
) -> Result<StreamStats> {
    let mut snapshot = source.snapshot(&stats.name, None, None)?;
    crate::remote::leave_out(&mut snapshot, excluded);
    let visible = visible_counts(&snapshot, scope)?;
    Ok(StreamStats {
        bytes: proportional(stats.bytes, visible.docs, stats.docs),
        docs: visible.docs,
        splits: visible.splits,
        min_timestamp: visible.min_timestamp.map(Timestamp::to_rfc3339),
        max_timestamp: visible.max_timestamp.map(Timestamp::to_rfc3339),
        name: stats.name,
    })
}

/// What a scope sees of a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Visible {
    /// Documents matching the scope.
    pub docs: u64,
    /// Splits (not the hot index) holding at least one of them.
    pub splits: usize,
    pub min_timestamp: Option<Timestamp>,
    pub max_timestamp: Option<Timestamp>,
}

/// Counts the documents of `snapshot` that `scope` may see, over every target.
pub(crate) fn visible_counts(snapshot: &StreamSnapshot, scope: &Scope) -> Result<Visible> {
    let query = scope.restrict(&snapshot.schema, Box::new(tantivy::query::AllQuery));
    let mut visible = Visible::default();
    for target in &snapshot.targets {
        let part = target
            .searcher
            .search(query.as_ref(), &VisibleCollector)
            .map_err(|err| Error::Internal(format!("counting {}: {err}", target.id)))?;
        visible.docs += part.docs;
        if part.docs > 0 && !target.is_hot() {
            visible.splits += 1;
        }
        visible.min_timestamp = extreme(visible.min_timestamp, part.min_timestamp, true);
        visible.max_timestamp = extreme(visible.max_timestamp, part.max_timestamp, false);
    }
    Ok(visible)
}

/// `bytes` × `part` / `whole`, rounded down; 0 for an empty whole.
pub(crate) fn proportional(bytes: u64, part: u64, whole: u64) -> u64 {
    if whole == 0 {
        return 0;
    }
    let scaled = u128::from(bytes) * u128::from(part.min(whole)) / u128::from(whole);
    u64::try_from(scaled).unwrap_or(u64::MAX)
}

/// The smaller (`smallest`) or larger of two optional instants.
fn extreme(a: Option<Timestamp>, b: Option<Timestamp>, smallest: bool) -> Option<Timestamp> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if smallest { a.min(b) } else { a.max(b) }),
        (a, b) => a.or(b),
    }
}

/// Counts matching documents and the range of their timestamps.
struct VisibleCollector;

struct VisibleSegment {
    column: Option<Column<DateTime>>,
    visible: Visible,
}

impl Collector for VisibleCollector {
    type Fruit = Visible;
    type Child = VisibleSegment;

    fn for_segment(
        &self,
        _ord: SegmentOrdinal,
        reader: &SegmentReader,
    ) -> tantivy::Result<VisibleSegment> {
        Ok(VisibleSegment {
            column: reader
                .fast_fields()
                .column_opt::<DateTime>(TIMESTAMP_FIELD)?,
            visible: Visible::default(),
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<Visible>) -> tantivy::Result<Visible> {
        let mut merged = Visible::default();
        for fruit in fruits {
            merged.docs += fruit.docs;
            merged.min_timestamp = extreme(merged.min_timestamp, fruit.min_timestamp, true);
            merged.max_timestamp = extreme(merged.max_timestamp, fruit.max_timestamp, false);
        }
        Ok(merged)
    }
}

impl SegmentCollector for VisibleSegment {
    type Fruit = Visible;

    fn collect(&mut self, doc: DocId, _score: Score) {
        self.visible.docs += 1;
        if let Some(column) = &self.column {
            for value in column.values_for_doc(doc) {
                let ts = Some(Timestamp(value.into_timestamp_nanos()));
                self.visible.min_timestamp = extreme(self.visible.min_timestamp, ts, true);
                self.visible.max_timestamp = extreme(self.visible.max_timestamp, ts, false);
            }
        }
    }

    fn harvest(self) -> Visible {
        self.visible
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remote::Excluded;
    use crate::testutil::{snapshot, MIN, T0};

    #[test]
    fn leaves_out_the_splits_a_searcher_counted_and_the_merges_of_them() {
        let fixture = crate::testutil::Fixture::new(snapshot());
        let stats = fixture.stream_stats().remove(0);
        let whole =
            scoped_stats(&fixture, stats.clone(), &Scope::All, &Excluded::default()).unwrap();
        assert_eq!((whole.docs, whole.splits, whole.bytes), (12, 3, 4096));
        // Split "c" counted by the searcher: the rest is split "a" and split "b".
        let excluded = Excluded {
            ids: ["c".to_string()].into(),
            ..Excluded::default()
        };
        let rest = scoped_stats(&fixture, stats.clone(), &Scope::All, &excluded).unwrap();
        let c = visible_counts(
            &crate::testutil::snapshot_of(vec![snapshot().targets[0].clone()]),
            &Scope::All,
        )
        .unwrap();
        assert_eq!(snapshot().targets[0].id, "c");
        assert_eq!(rest.docs, 12 - c.docs);
        assert_eq!(rest.splits, 2);
        assert_eq!(rest.bytes, proportional(4096, 12 - c.docs, 12));
        // Everything counted by the searcher: nothing left, no time range.
        let all = Excluded {
            ids: ["a", "b", "c"].map(String::from).into(),
            ..Excluded::default()
        };
        let none = scoped_stats(&fixture, stats, &Scope::namespaces(["payments"]), &all).unwrap();
        assert_eq!((none.docs, none.splits, none.bytes), (0, 0, 0));
        assert_eq!(none.min_timestamp, None);
    }

    #[test]
    fn counts_only_the_scope() {
        let snapshot = snapshot();
        let all = visible_counts(&snapshot, &Scope::All).unwrap();
        assert_eq!(
            all,
            Visible {
                docs: 12,
                splits: 3,
                min_timestamp: Some(Timestamp(T0)),
                max_timestamp: Some(Timestamp(T0 + 6 * MIN)),
            }
        );
        let kube = visible_counts(&snapshot, &Scope::namespaces(["kube-system"])).unwrap();
        assert_eq!(
            kube,
            Visible {
                docs: 1,
                splits: 1,
                min_timestamp: Some(Timestamp(T0 + 6 * MIN)),
                max_timestamp: Some(Timestamp(T0 + 6 * MIN)),
            }
        );
        let payments = visible_counts(&snapshot, &Scope::namespaces(["payments"])).unwrap();
        assert_eq!(payments.docs, 7);
        assert_eq!(payments.splits, 3);
        assert_eq!(payments.min_timestamp, Some(Timestamp(T0)));
        assert_eq!(payments.max_timestamp, Some(Timestamp(T0 + 5 * MIN)));
        let none = visible_counts(&snapshot, &Scope::namespaces(["nope"])).unwrap();
        assert_eq!(none, Visible::default());
    }

    #[test]
    fn proportional_bytes() {
        assert_eq!(proportional(1000, 1, 4), 250);
        assert_eq!(proportional(1000, 0, 4), 0);
        assert_eq!(proportional(1000, 4, 4), 1000);
        assert_eq!(proportional(1000, 9, 4), 1000);
        assert_eq!(proportional(1000, 0, 0), 0);
        assert_eq!(proportional(u64::MAX, 3, 3), u64::MAX);
    }
}
