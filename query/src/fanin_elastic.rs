//! The Elasticsearch-compatible API of a searcher (`/api/v1/_elastic`), answered as one node
//! holding every document would answer it: a search is run in parts, each indexer answering
//! its part (`POST /api/v1/_leaf/elastic/search`) while the searcher searches the shared
//! tier's published splits itself, and the parts merge into one answer
//! ([`crate::elastic`]'s `part` module). Index expressions are resolved over the streams of
//! every part. Metadata (`_cat/indices`, `_mapping`, `_field_caps`, `/{index}`) comes from
//! the searcher's stream statistics and from the indexers' schemas.
//!
//! An indexer that fails or does not answer in time leaves its part out: the answer counts it
//! in `_shards.failed` and names it in `_shards.failures`, as Elasticsearch does for a shard.
//! A refusal (a bad query, a sort on an unmapped field) is passed on as the indexer wrote it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use futures::future::BoxFuture;
use serde_json::{json, Value};
use tantivy::schema::Schema;
use trawl_index::StreamSnapshot;
use trawl_model::Timestamp;
use trawl_storage::pg::SplitRecord;

use crate::access::Scope;
use crate::elastic::part::{answer, bounds, search_part, EsPart, FailedPart, LeafRequest};
use crate::elastic::{
    resolve_indices, Backend, Chosen, EsError, EsResult, IndexInfo, SearchBody, SearchCall,
    LEAF_ELASTIC_SCHEMAS_PATH, LEAF_ELASTIC_SEARCH_PATH,
};
use crate::error::Error;
use crate::fanin::{leaf_call, Caller, FanIn, Leaf};
use crate::remote::{Excluded, RemoteSplits};
use crate::request::QueryLimits;

/// Extra time an indexer is given past the search's budget before it counts as failed.
const LEAF_GRACE: Duration = Duration::from_secs(2);

/// The searcher's Elasticsearch backend.
#[derive(Clone)]
pub(crate) struct RootElastic {
    pub fanin: FanIn,
    pub limits: QueryLimits,
    pub remote: Option<Arc<RemoteSplits>>,
    pub patterns: Arc<BTreeMap<String, String>>,
}

/// `_bulk` sent to a searcher: refused in Elasticsearch's shape, saying where writes go (a
/// shipper pointed at the searcher by mistake logs why its batches fail).
pub(crate) async fn no_bulk() -> axum::response::Response {
    use axum::response::IntoResponse;
    let refusal = EsError::illegal_argument(
        "a searcher takes no writes: send _bulk to an indexer (one of `query.indexers`)",
    );
    (
        [("x-elastic-product", "Elasticsearch")],
        refusal.into_response(),
    )
        .into_response()
}

/// The shared tier's share of one search: every stream it holds, and the published splits of
/// the streams the expression names.
struct SharedListing {
    names: Vec<String>,
    chosen: Vec<Chosen>,
    records: Vec<(String, Vec<SplitRecord>)>,
    /// What the indexers leave out for it.
    excluded: Excluded,
}

impl Backend for RootElastic {
    fn patterns(&self) -> &BTreeMap<String, String> {
        &self.patterns
    }

    fn search(&self, call: SearchCall) -> BoxFuture<'static, EsResult<Value>> {
        let this = self.clone();
        Box::pin(async move { this.run_search(call).await })
    }

    fn indices(
        &self,
        scope: Scope,
        headers: HeaderMap,
    ) -> BoxFuture<'static, EsResult<Vec<IndexInfo>>> {
        let this = self.clone();
        Box::pin(async move {
            let caller = Caller::new(&this.fanin, scope, &headers);
            let body = crate::distributed::statistics(
                &this.fanin,
                &this.limits,
                this.remote.as_ref(),
                &caller,
            )
            .await;
            let mut infos: Vec<IndexInfo> = body["streams"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .filter_map(|s| {
                    Some(IndexInfo {
                        name: s["name"].as_str()?.to_string(),
                        docs: s["docs"].as_u64().unwrap_or(0),
                        bytes: s["bytes"].as_u64().unwrap_or(0),
                    })
                })
                .collect();
            infos.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(infos)
        })
    }

    fn schemas(
        &self,
        streams: Vec<String>,
        headers: HeaderMap,
    ) -> BoxFuture<'static, EsResult<Vec<(String, Schema)>>> {
        let this = self.clone();
        Box::pin(async move { this.schemas_of(streams, headers).await })
    }
}

impl RootElastic {
    async fn run_search(&self, call: SearchCall) -> EsResult<Value> {
        let started = Instant::now();
        let parsed = SearchBody::parse(&call.body, &call.params, &self.limits)?;
        if self.fanin.indexers.is_empty() && self.remote.is_none() {
            return Err(EsError::from(Error::Internal(
                "no indexers are configured (`query.indexers`)".into(),
            )));
        }
        let now = Timestamp::now();
        let (start, end) = bounds(&parsed, now);
        let budget = parsed
            .timeout
            .map_or(self.limits.timeout, |t| t.min(self.limits.timeout));
        let caller = Caller::new(&self.fanin, call.scope.clone(), &call.headers);
        let mut failed = Vec::new();
        // The shared tier's splits are listed first: their ids go to the indexers, and they
        // are searched here while the indexers search. When the metastore cannot be read, the
        // indexers answer alone (each holds its own splits) and a failure says what is missing.
        let listed = match &self.remote {
            Some(remote) => match crate::remote::within(
                budget,
                self.list_shared(remote, &call.index, start, end),
            )
            .await
            {
                Ok(listed) => Some((remote.clone(), listed)),
                Err(err) => {
                    tracing::warn!(%err, "the shared tier could not be listed; asking the indexers alone");
                    failed.push(shared_failure(err.to_string()));
                    None
                }
            },
            None => None,
        };
        let mut request = LeafRequest {
            index: call.index.clone(),
            body: call.body.clone(),
            params: call.params.clone(),
            now: now.0,
            scope: Some(caller.scope().clone()).filter(Scope::is_restricted),
            excluded: listed
                .as_ref()
                .map(|(_, l)| l.excluded.clone())
                .unwrap_or_default(),
        };
        let own = async {
            let (remote, listed) = listed.as_ref()?;
            Some(
                crate::remote::within(
                    budget,
                    self.own_part(remote, listed, &parsed, now, started + budget, &caller),
                )
                .await,
            )
        };
        let (own, mut outcomes) = tokio::join!(own, self.leaves(&request, &caller, budget));
        let mut parts = Vec::new();
        let unread = match own {
            Some(Ok(Ok(part))) => {
                parts.push(part);
                None
            }
            // A refusal of the request itself (a sort on a text field): the same for every
            // part.
            Some(Ok(Err(err))) if err.status.is_client_error() => return Err(err),
            Some(Ok(Err(err))) => Some(err.reason),
            Some(Err(err)) => Some(err.to_string()),
            None => None,
        };
        if let Some(reason) = unread {
            // The indexers left the listed splits out: ask them again for everything they
            // hold (their own copies of those splits among it).
            tracing::warn!(%reason, "the shared tier could not be searched; asking the indexers alone");
            failed.push(shared_failure(reason));
            request.excluded = Excluded::default();
            outcomes = self.leaves(&request, &caller, budget).await;
        }
        for (base, outcome) in outcomes {
            match outcome {
                Leaf::Answer(part) => parts.push(part),
                // An indexer of an older release has no such route (its 404 is no error body).
                Leaf::Refused(StatusCode::NOT_FOUND, body)
                    if serde_json::from_slice::<Value>(&body).is_err() =>
                {
                    let reason = "the indexer has no Elasticsearch leaf route: update indexers \
                                  before searchers";
                    tracing::warn!(indexer = %base, reason);
                    failed.push(FailedPart {
                        node: base,
                        reason: reason.into(),
                    });
                }
                Leaf::Refused(status, body) => return Err(EsError::from_answer(status, &body)),
                Leaf::Failed(reason) => {
                    tracing::warn!(indexer = %base, %reason, "elasticsearch leaf search failed");
                    failed.push(FailedPart { node: base, reason });
                }
            }
        }
        if parts.is_empty() {
            let reasons: Vec<String> = failed
                .iter()
                .map(|f| format!("{}: {}", f.node, f.reason))
                .collect();
            return Err(EsError {
                status: StatusCode::SERVICE_UNAVAILABLE,
                kind: "search_phase_execution_exception",
                reason: format!(
                    "all shards failed: no indexer answered ({})",
                    reasons.join("; ")
                ),
                index: None,
            });
        }
        // The expression names what it names over every part's streams, as on one node: a
        // name no part holds is a 404 unless `ignore_unavailable`.
        let names: BTreeSet<&str> = parts
            .iter()
            .flat_map(|p| p.names.iter().map(String::as_str))
            .collect();
        let names: Vec<String> = names.into_iter().map(str::to_string).collect();
        let streams: Vec<String> = resolve_indices(
            &call.index,
            &names,
            &self.patterns,
            call.answering.ignore_unavailable,
        )?
        .into_iter()
        .map(|c| c.stream)
        .collect();
        let limits = self.limits.clone();
        let answering = call.answering;
        let task = tokio::task::spawn_blocking(move || {
            answer(
                parts, &streams, &failed, &parsed, answering, started, &limits,
            )
        });
        crate::elastic::within_budget(budget, task).await
    }

    /// The shared tier's streams, and the published splits of those `index` names in the
    /// range.
    async fn list_shared(
        &self,
        remote: &RemoteSplits,
        index: &str,
        start: Option<Timestamp>,
        end: Option<Timestamp>,
    ) -> crate::Result<SharedListing> {
        let names = remote.streams().await?;
        let chosen = resolve_indices(index, &names, &self.patterns, true)
            .map_err(|err| Error::InvalidArgument(err.reason))?;
        let mut records = Vec::with_capacity(chosen.len());
        let mut excluded = Excluded::default();
        for c in &chosen {
            let listed = remote.published(&c.stream, start, end).await?;
            excluded.add(&listed);
            if !listed.records.is_empty() {
                records.push((c.stream.clone(), listed.records));
            }
        }
        Ok(SharedListing {
            names,
            chosen,
            records,
            excluded,
        })
    }

    /// The searcher's own part: the listed splits, opened through the cache.
    async fn own_part(
        &self,
        remote: &Arc<RemoteSplits>,
        listed: &SharedListing,
        parsed: &SearchBody,
        now: Timestamp,
        deadline: Instant,
        caller: &Caller,
    ) -> crate::Result<EsResult<EsPart>> {
        let (start, end) = bounds(parsed, now);
        let mut snapshots: HashMap<String, StreamSnapshot> = HashMap::new();
        let mut ranged = false;
        for (stream, records) in &listed.records {
            if let Some((snapshot, by_range)) = remote.snapshot(stream, records, start, end).await?
            {
                ranged |= by_range;
                snapshots.insert(stream.clone(), snapshot);
            }
        }
        let mut limits = self.limits.clone();
        if ranged {
            // Splits read by range wait on object storage for each read: as many of them in
            // flight at once as configured, whatever the cores.
            limits.parallelism = remote.range_read_concurrency();
        }
        let names = listed.names.clone();
        let chosen = listed.chosen.clone();
        let parsed = parsed.clone();
        let scope = caller.scope().clone();
        let part = tokio::task::spawn_blocking(move || {
            let snapshots = Mutex::new(snapshots);
            let take = |stream: &str| Ok(crate::remote::lock(&snapshots).remove(stream));
            search_part(
                &take, names, &chosen, &parsed, now, deadline, &scope, &limits,
            )
        })
        .await
        .map_err(|join| Error::Internal(format!("shared-tier search task failed: {join}")))?;
        // What this search read by range is fetched whole for the next ones.
        remote.fill_cache();
        Ok(part)
    }

    /// Every indexer's part of `request`, in the order of the indexers.
    async fn leaves(
        &self,
        request: &LeafRequest,
        caller: &Caller,
        budget: Duration,
    ) -> Vec<(String, Leaf<EsPart>)> {
        let calls = self.fanin.indexers.iter().map(|base| {
            let url = format!("{base}{LEAF_ELASTIC_SEARCH_PATH}");
            let builder = caller.apply(
                self.fanin
                    .client
                    .post(url)
                    .json(request)
                    .timeout(budget + LEAF_GRACE),
            );
            async move { (base.clone(), leaf_call(builder).await) }
        });
        futures::future::join_all(calls).await
    }

    /// The schemas of `streams`: each from the first indexer that holds it, else from the
    /// shared tier's newest split of it.
    async fn schemas_of(
        &self,
        streams: Vec<String>,
        headers: HeaderMap,
    ) -> EsResult<Vec<(String, Schema)>> {
        let caller = Caller::new(&self.fanin, Scope::All, &headers);
        let body = json!({ "streams": streams });
        let calls = self.fanin.indexers.iter().map(|base| {
            let url = format!("{base}{LEAF_ELASTIC_SCHEMAS_PATH}");
            let builder = caller.apply(
                self.fanin
                    .client
                    .post(url)
                    .json(&body)
                    .timeout(self.limits.timeout),
            );
            async move {
                let response = builder.send().await.ok()?;
                if !response.status().is_success() {
                    return None;
                }
                response.json::<BTreeMap<String, Schema>>().await.ok()
            }
        });
        let mut found: BTreeMap<String, Schema> = BTreeMap::new();
        for answer in futures::future::join_all(calls).await.into_iter().flatten() {
            for (name, schema) in answer {
                found.entry(name).or_insert(schema);
            }
        }
        if let Some(remote) = &self.remote {
            let missing: Vec<&String> =
                streams.iter().filter(|s| !found.contains_key(*s)).collect();
            for stream in missing {
                if let Some(schema) = shared_schema(remote, stream, self.limits.timeout).await {
                    found.insert(stream.clone(), schema);
                }
            }
        }
        streams
            .into_iter()
            .map(|stream| match found.remove(&stream) {
                Some(schema) => Ok((stream, schema)),
                None => Err(EsError::index_not_found(&stream)),
            })
            .collect()
    }
}

/// The schema of the newest published split of `stream`, if it can be read in time.
async fn shared_schema(remote: &RemoteSplits, stream: &str, budget: Duration) -> Option<Schema> {
    let read = async {
        let records = remote.published(stream, None, None).await?.records;
        let Some(newest) = records.iter().max_by_key(|r| r.max_timestamp) else {
            return Ok(None);
        };
        let opened = remote
            .snapshot(stream, std::slice::from_ref(newest), None, None)
            .await?;
        Ok::<_, Error>(opened.map(|(snapshot, _)| snapshot.schema))
    };
    match crate::remote::within(budget, read).await {
        Ok(schema) => schema,
        Err(err) => {
            tracing::warn!(%err, stream, "the shared tier's schema could not be read");
            None
        }
    }
}

/// The shared tier as a failed shard, and why.
fn shared_failure(reason: String) -> FailedPart {
    FailedPart {
        node: "shared tier".into(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    //! A searcher over two indexers served on loopback, each holding part of the fixture's
    //! splits, against one node holding them all: every answer must be the same.

    use std::collections::HashSet;

    use axum::body::{to_bytes, Body};
    use axum::http::Request;
    use axum::Router;
    use tower::ServiceExt;

    use super::*;
    use crate::distributed::{root_routes, RootSettings};
    use crate::testutil::{snapshot, Fixture, MIN, T0};

    fn part(ids: &[&str]) -> Arc<Fixture> {
        let mut snapshot = snapshot();
        let keep: HashSet<&str> = ids.iter().copied().collect();
        snapshot.targets.retain(|t| keep.contains(t.id.as_str()));
        Arc::new(Fixture::new(snapshot))
    }

    fn node(source: Arc<Fixture>) -> Router {
        crate::elastic::routes(
            source.clone(),
            QueryLimits::default(),
            crate::elastic::ElasticSettings::default(),
        )
        .merge(crate::stats::routes(source))
    }

    async fn serve(router: Router) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await });
        url
    }

    /// A searcher over the indexers at `urls`.
    fn searcher(urls: Vec<String>) -> Router {
        let settings = RootSettings {
            indexers: urls,
            ..RootSettings::default()
        };
        root_routes(settings, QueryLimits::default()).unwrap()
    }

    async fn call(app: &Router, method: &str, uri: &str, body: &str) -> (StatusCode, Value) {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = to_bytes(response.into_body(), 1 << 22).await.unwrap();
        let text = String::from_utf8(bytes.to_vec()).unwrap();
        let value = serde_json::from_str(&text).unwrap_or_else(|_| Value::String(text.clone()));
        (status, value)
    }

    /// An answer without what differs between runs (`took`).
    fn steady(mut value: Value) -> Value {
        if let Some(object) = value.as_object_mut() {
            object.remove("took");
            if let Some(Value::Array(items)) = object.get_mut("responses") {
                for item in items {
                    if let Some(o) = item.as_object_mut() {
                        o.remove("took");
                    }
                }
            }
        }
        value
    }

    fn ms(minutes: i64) -> i64 {
        (T0 + minutes * MIN) / 1_000_000
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_searcher_answers_as_one_node_holding_every_split() {
        let one = serve(node(part(&["a"]))).await;
        let two = serve(node(part(&["b", "c"]))).await;
        let root = searcher(vec![one, two]);
        let reference = node(Arc::new(Fixture::new(snapshot())));
        let by_time_then_offset = json!([{"@timestamp": "desc"}, {"offset": "asc"}]);
        let searches: Vec<(&str, &str, Value)> = vec![
            ("POST", "/api/v1/_elastic/logs/_search", json!({})),
            ("POST", "/api/v1/_elastic/logs/_search", json!({"size": 20, "sort": by_time_then_offset})),
            (
                "POST",
                "/api/v1/_elastic/logs/_search",
                json!({"query": {"match": {"message": "error"}}, "size": 3, "sort": by_time_then_offset}),
            ),
            (
                "POST",
                "/api/v1/_elastic/_all/_search",
                json!({"from": 2, "size": 4, "sort": [{"offset": "asc"}], "_source": ["pod", "level"]}),
            ),
            (
                "POST",
                "/api/v1/_elastic/logs/_search",
                json!({"size": 3, "sort": [{"offset": "desc"}], "search_after": [35]}),
            ),
            (
                "POST",
                "/api/v1/_elastic/logs/_search",
                json!({"size": 5, "sort": [{"namespace.keyword": "asc"}, {"offset": "desc"}],
                       "docvalue_fields": [{"field": "@timestamp", "format": "epoch_millis"}]}),
            ),
            (
                "POST",
                "/api/v1/_elastic/logs/_search?track_total_hits=false",
                json!({"size": 1, "sort": [{"offset": "asc"}]}),
            ),
            (
                "POST",
                "/api/v1/_elastic/lo*,-nothing/_search?rest_total_hits_as_int=true",
                json!({
                    "size": 0,
                    "query": {"range": {"@timestamp": {"gte": ms(1), "lt": ms(40), "format": "epoch_millis"}}},
                    "aggs": {
                        "per_minute": {
                            "date_histogram": {"field": "@timestamp", "fixed_interval": "1m", "min_doc_count": 1},
                            "aggs": {"levels": {"terms": {"field": "level.keyword"}}}
                        },
                        "namespaces": {"cardinality": {"field": "namespace"}},
                        "top": {"terms": {"field": "namespace", "size": 2}},
                        "offsets": {"stats": {"field": "offset"}}
                    }
                }),
            ),
            (
                "POST",
                "/api/v1/_elastic/logs/_count",
                json!({"query": {"term": {"level": "error"}}}),
            ),
            (
                "POST",
                "/api/v1/_elastic/_msearch",
                "{\"index\":\"logs\"}\n{\"size\":2,\"sort\":[{\"offset\":\"asc\"}]}\n{\"index\":\"nope\"}\n{}\n{}\n{\"query\":{\"bad\":{}}}\n"
                    .into(),
            ),
            // Refusals: an unknown index, a sort on text, a bad query.
            ("POST", "/api/v1/_elastic/nope/_search", json!({})),
            ("POST", "/api/v1/_elastic/nope/_search?ignore_unavailable=true", json!({"aggs": {"n": {"value_count": {"field": "offset"}}}})),
            ("POST", "/api/v1/_elastic/logs/_search", json!({"sort": [{"message": "asc"}]})),
            ("POST", "/api/v1/_elastic/logs/_search", json!({"query": {"fuzzy": {"message": "x"}}})),
            // Metadata.
            ("GET", "/api/v1/_elastic/_cat/indices?format=json", Value::Null),
            ("GET", "/api/v1/_elastic/logs/_mapping", Value::Null),
            ("GET", "/api/v1/_elastic/logs/_field_caps?fields=*", Value::Null),
            ("GET", "/api/v1/_elastic/logs", Value::Null),
            ("GET", "/api/v1/_elastic/_cluster/health", Value::Null),
        ];
        let mut compared = 0;
        for (method, uri, body) in searches {
            let body = match body {
                Value::String(text) => text,
                Value::Null => String::new(),
                other => other.to_string(),
            };
            let (status, expected) = call(&reference, method, uri, &body).await;
            let (root_status, mut answered) = call(&root, method, uri, &body).await;
            assert_eq!(root_status, status, "{uri} {body}: {answered}");
            if uri.contains("_cat/indices") {
                // Each test indexer reports FIXTURE_BYTES for its part: the searcher sums them.
                let row = &mut answered[0];
                for size in ["store.size", "pri.store.size", "dataset.size"] {
                    assert_eq!(row[size], json!("8.0kb"), "{size}");
                    row[size] = expected[0][size].clone();
                }
            }
            assert_eq!(steady(answered), steady(expected), "{uri} {body}");
            compared += 1;
        }
        assert_eq!(compared, 19);

        // Writes go to the indexers: a searcher says so.
        for uri in ["/api/v1/_elastic/_bulk", "/api/v1/_elastic/logs/_bulk"] {
            let (status, answer) = call(&root, "POST", uri, "{}\n").await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}");
            assert_eq!(answer["error"]["type"], json!("illegal_argument_exception"));
            assert!(
                answer["error"]["reason"]
                    .as_str()
                    .unwrap()
                    .contains("send _bulk to an indexer"),
                "{answer}"
            );
        }

        // Not vacuous: the answers hold the documents of both indexers.
        let (_, answer) = call(
            &root,
            "POST",
            "/api/v1/_elastic/logs/_search",
            &json!({"size": 20, "sort": [{"offset": "asc"}]}).to_string(),
        )
        .await;
        let ids: HashSet<&str> = answer["hits"]["hits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["_id"].as_str().unwrap().split('.').next().unwrap())
            .collect();
        assert_eq!(ids, HashSet::from(["a", "b", "c"]));
        assert_eq!(answer["hits"]["total"]["value"], json!(12));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_indexer_that_fails_is_a_failed_shard_and_none_answering_is_a_503() {
        let one = serve(node(part(&["a"]))).await;
        // A port nothing listens on.
        let gone = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            format!("http://{}", listener.local_addr().unwrap())
        };
        let root = searcher(vec![one, gone.clone()]);
        let (status, answer) = call(
            &root,
            "POST",
            "/api/v1/_elastic/logs/_search",
            &json!({"size": 0}).to_string(),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        let a_docs = part(&["a"]).snapshot.targets[0].searcher.num_docs();
        assert_eq!(answer["hits"]["total"]["value"], json!(a_docs));
        assert_eq!(answer["_shards"]["failed"], json!(1));
        assert_eq!(answer["_shards"]["failures"][0]["node"], json!(gone));

        let root = searcher(vec![gone]);
        let (status, answer) = call(&root, "POST", "/api/v1/_elastic/logs/_search", "{}").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
        assert_eq!(
            answer["error"]["type"],
            json!("search_phase_execution_exception")
        );
    }
}
