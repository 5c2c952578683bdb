//! Each DSL construct against the twelve-record fixture of `testutil`, asserting the exact set
//! of matching pods; and the error of each refused construct.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::*;
use crate::elastic::exec::{execute, resolve_sort, ExecOptions, StreamPlan};
use crate::request::QueryLimits;
use crate::testutil::{snapshot, MIN, T0};

/// Milliseconds of the fixture's first record plus `minutes`.
fn ms(minutes: i64) -> i64 {
    (T0 + minutes * MIN) / 1_000_000
}

/// The pods (by number, ascending) matching `query`.
fn pods(query: Value) -> Vec<usize> {
    try_pods(query).unwrap_or_else(|err| panic!("{err}"))
}

fn try_pods(query: Value) -> EsResult<Vec<usize>> {
    let snapshot = snapshot();
    let now = Timestamp::now();
    let translated = Translator::new(&snapshot, now).translate(Some(&query))?;
    let keys = resolve_sort(&[], &snapshot)?;
    let plan = StreamPlan {
        snapshot,
        query: translated.query,
        keys,
        aggs: None,
    };
    let options = ExecOptions {
        window: 100,
        search_after: None,
        deadline: Instant::now() + Duration::from_secs(60),
        start: None,
        end: None,
    };
    let outcome = execute(&[plan], &options, &QueryLimits::default())?;
    let mut pods: Vec<usize> = outcome
        .hits
        .iter()
        .map(|h| h.record["pod"].as_str().unwrap()[1..].parse().unwrap())
        .collect();
    pods.sort_unstable();
    assert_eq!(outcome.total, pods.len() as u64);
    Ok(pods)
}

fn refused(query: Value) -> EsError {
    match try_pods(query.clone()) {
        Ok(pods) => panic!("{query} was accepted: {pods:?}"),
        Err(err) => err,
    }
}

#[test]
fn match_all_and_match_none() {
    assert_eq!(pods(json!({"match_all": {}})), (0..12).collect::<Vec<_>>());
    assert_eq!(pods(json!({})), (0..12).collect::<Vec<_>>());
    assert_eq!(pods(json!({"match_none": {}})), Vec::<usize>::new());
}

#[test]
fn query_string() {
    assert_eq!(
        pods(json!({"query_string": {"query": "timeout"}})),
        [0, 4, 9]
    );
    assert_eq!(
        pods(json!({"query_string": {"query": "*", "analyze_wildcard": true}})).len(),
        12
    );
    assert_eq!(
        pods(json!({"query_string": {"query": "level:error AND namespace:payments"}})),
        [0, 3, 7]
    );
    // AND is the default operator, OR on request.
    assert_eq!(
        pods(json!({"query_string": {"query": "timeout served"}})),
        Vec::<usize>::new()
    );
    assert_eq!(
        pods(json!({"query_string": {"query": "timeout served", "default_operator": "OR"}})),
        [0, 1, 4, 9]
    );
    assert_eq!(
        pods(json!({"query_string": {"query": "shop", "default_field": "namespace"}})),
        [2, 4, 6, 9]
    );
    // Field names of the shippers, `.keyword` and `_exists_` are understood.
    assert_eq!(
        pods(
            json!({"query_string": {"query": "kubernetes.namespace_name:shop AND level.keyword:error"}})
        ),
        [4, 9]
    );
    // Filebeat's ECS names map back like on ingest (regression: `container.image.name` was
    // accepted on ingest only).
    assert_eq!(
        pods(json!({"query_string": {"query": "kubernetes.namespace:shop AND log.level:error"}})),
        [4, 9]
    );
    let schema = snapshot().schema.clone();
    for (theirs, ours) in [
        ("container.image.name", "image"),
        ("kubernetes.container_image", "image"),
        ("kubernetes.pod.uid", "pod_uid"),
        ("log", "message"),
        ("kubernetes.labels.app", "labels.app"),
        ("namespace", "namespace"),
    ] {
        assert_eq!(canonical_field(&schema, "logs", theirs), ours, "{theirs}");
    }
    assert_eq!(
        pods(json!({"query_string": {"query": "_exists_:labels -level:debug"}})),
        [0, 1, 3, 4, 5, 6, 7, 9, 11]
    );
    assert_eq!(
        pods(json!({"query_string": {"query": "offset:[10 TO 20}"}})),
        [1, 2, 5, 7]
    );
}

#[test]
fn match_query() {
    assert_eq!(
        pods(json!({"match": {"message": "reset peer"}})),
        [3, 5, 6, 7, 8]
    );
    assert_eq!(
        pods(json!({"match": {"message": {"query": "reset peer", "operator": "and"}}})),
        [3]
    );
    assert_eq!(
        pods(
            json!({"match": {"message": {"query": "timeout error budget", "minimum_should_match": "2"}}})
        ),
        [0, 4, 9]
    );
    // The text is analysed like the field: case and punctuation do not matter.
    assert_eq!(pods(json!({"match": {"log": "TIMEOUT!"}})), [0, 4, 9]);
    // On a keyword field, the whole value is one term.
    assert_eq!(pods(json!({"match": {"namespace": "kube-system"}})), [11]);
    assert_eq!(
        pods(json!({"match": {"message": "..."}})),
        Vec::<usize>::new()
    );
    assert_eq!(
        pods(json!({"match": {"message": {"query": "...", "zero_terms_query": "all"}}})).len(),
        12
    );
}

#[test]
fn match_phrase() {
    assert_eq!(
        pods(json!({"match_phrase": {"message": "connection reset"}})),
        [3, 7, 8]
    );
    assert_eq!(
        pods(json!({"match_phrase": {"message": {"query": "connection reset", "slop": 1}}})),
        [3, 5, 7, 8]
    );
    assert_eq!(
        pods(json!({"match_phrase_prefix": {"message": "connection re"}})),
        [3, 7, 8]
    );
    assert_eq!(pods(json!({"match_phrase": {"level": "fatal"}})), [11]);
}

#[test]
fn term_and_terms() {
    assert_eq!(pods(json!({"term": {"level": "error"}})), [0, 3, 4, 7, 9]);
    assert_eq!(
        pods(json!({"term": {"level.keyword": {"value": "error"}}})),
        [0, 3, 4, 7, 9]
    );
    assert_eq!(pods(json!({"term": {"offset": 5}})), [0]);
    assert_eq!(pods(json!({"term": {"offset": "100"}})), [11]);
    assert_eq!(
        pods(json!({"term": {"labels.app.kubernetes.io/name": "api"}})),
        [2, 4, 6, 11]
    );
    assert_eq!(
        pods(json!({"term": {"kubernetes.labels.app.kubernetes.io/name": "worker"}})),
        [8]
    );
    // A term is not analysed: the stored tokens are lower case.
    assert_eq!(
        pods(json!({"term": {"message": "Timeout"}})),
        Vec::<usize>::new()
    );
    assert_eq!(pods(json!({"term": {"message": "timeout"}})), [0, 4, 9]);
    assert_eq!(
        pods(json!({"terms": {"namespace": ["shop", "kube-system"]}})),
        [2, 4, 6, 9, 11]
    );
    assert_eq!(pods(json!({"terms": {"offset": [3, 40, 7]}})), [9, 10]);
    // A field the stream does not have matches nothing, as in Elasticsearch.
    assert_eq!(
        pods(json!({"term": {"no_such_field": "x"}})),
        Vec::<usize>::new()
    );
}

#[test]
fn prefix_wildcard_regexp() {
    assert_eq!(pods(json!({"prefix": {"pod": "p1"}})), [1, 10, 11]);
    assert_eq!(
        pods(json!({"wildcard": {"pod": {"value": "p?"}}})).len(),
        10
    );
    assert_eq!(pods(json!({"wildcard": {"namespace": "*-system"}})), [11]);
    assert_eq!(pods(json!({"regexp": {"pod": "p[23]"}})), [2, 3]);
}

#[test]
fn range_on_numbers() {
    assert_eq!(
        pods(json!({"range": {"offset": {"gte": 10, "lt": 20}}})),
        [1, 2, 5, 7]
    );
    assert_eq!(
        pods(json!({"range": {"offset": {"gt": 10, "lte": "20"}}})),
        [2, 3, 5, 7]
    );
    assert_eq!(
        pods(json!({"range": {"offset": {"from": 30, "to": null, "include_lower": false}}})),
        [9, 11]
    );
}

#[test]
fn range_on_time() {
    // Grafana's form: epoch milliseconds, `lte` includes the whole last millisecond.
    assert_eq!(
        pods(
            json!({"range": {"@timestamp": {"gte": ms(3), "lte": ms(5) - 1, "format": "epoch_millis"}}})
        ),
        [3, 6, 7, 8]
    );
    assert_eq!(
        pods(
            json!({"range": {"timestamp": {"gte": ms(1), "lte": ms(1), "format": "epoch_millis"}}})
        ),
        [1, 2, 4]
    );
    // An ISO date without fractions rounds up for `lte` and `gt`, not for `gte` and `lt`.
    assert_eq!(
        pods(json!({"range": {"timestamp": {"lte": "2023-11-14T22:14:00Z"}}})),
        [0, 1, 2, 4]
    );
    assert_eq!(
        pods(json!({"range": {"timestamp": {"lt": "2023-11-14T22:14:00Z"}}})),
        [0]
    );
    assert_eq!(
        pods(json!({"range": {"timestamp": {"gt": "2023-11-14T22:14:00Z"}}})),
        [3, 5, 6, 7, 8, 9, 10, 11]
    );
    assert_eq!(
        pods(json!({"range": {"timestamp": {"gte": "2023-11-14T22:14:00.000000002Z"}}})),
        [2, 3, 5, 6, 7, 8, 9, 10, 11]
    );
    // Date math with `||` anchors and rounding.
    assert_eq!(
        pods(
            json!({"range": {"@timestamp": {"gte": "2023-11-14T22:14:30Z||/m", "lt": "2023-11-14T22:15:00Z||+1m"}}})
        ),
        [1, 2, 4, 5]
    );
    assert_eq!(
        pods(json!({"range": {"timestamp": {"lt": "now"}}})).len(),
        12
    );
    assert_eq!(
        pods(json!({"range": {"timestamp": {"gte": "now-15m/m"}}})),
        Vec::<usize>::new()
    );
    // With a time zone, a zoneless date is local time.
    assert_eq!(
        pods(
            json!({"range": {"timestamp": {"gte": "2023-11-14T23:18:00", "time_zone": "+01:00"}}})
        ),
        [9, 10, 11]
    );
}

#[test]
fn exists() {
    assert_eq!(
        pods(json!({"exists": {"field": "labels"}})),
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 11]
    );
    assert_eq!(
        pods(json!({"exists": {"field": "labels.app.kubernetes.io/name"}})),
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 11]
    );
    assert_eq!(pods(json!({"exists": {"field": "message"}})).len(), 12);
    assert_eq!(
        pods(json!({"exists": {"field": "container"}})),
        Vec::<usize>::new()
    );
    assert_eq!(
        pods(json!({"exists": {"field": "nope"}})),
        Vec::<usize>::new()
    );
}

#[test]
fn bool_clauses() {
    assert_eq!(
        pods(
            json!({"bool": {"must": {"term": {"level": "error"}}, "must_not": [{"term": {"namespace": "payments"}}]}})
        ),
        [4, 9]
    );
    // Only must_not: everything else.
    assert_eq!(
        pods(json!({"bool": {"must_not": {"term": {"level": "error"}}}})),
        [1, 2, 5, 6, 8, 10, 11]
    );
    // Only should: at least one.
    assert_eq!(
        pods(
            json!({"bool": {"should": [{"term": {"namespace": "shop"}}, {"term": {"level": "fatal"}}]}})
        ),
        [2, 4, 6, 9, 11]
    );
    // With a filter, should clauses are optional unless minimum_should_match says otherwise.
    assert_eq!(
        pods(
            json!({"bool": {"filter": [{"term": {"namespace": "shop"}}], "should": [{"term": {"level": "error"}}]}})
        ),
        [2, 4, 6, 9]
    );
    assert_eq!(
        pods(
            json!({"bool": {"filter": [{"term": {"namespace": "shop"}}], "should": [{"term": {"level": "error"}}], "minimum_should_match": 1}})
        ),
        [4, 9]
    );
    let three = json!([
        {"term": {"level": "error"}},
        {"term": {"namespace": "payments"}},
        {"match": {"message": "connection"}}
    ]);
    for msm in [json!(2), json!("2"), json!("-1"), json!("67%")] {
        assert_eq!(
            pods(json!({"bool": {"should": three.clone(), "minimum_should_match": msm}})),
            [0, 3, 5, 7, 8],
            "{msm}"
        );
    }
    assert_eq!(
        pods(json!({"bool": {"should": three.clone(), "minimum_should_match": "100%"}})),
        [3, 7]
    );
    assert_eq!(
        pods(json!({"bool": {"should": three, "minimum_should_match": 4}})),
        Vec::<usize>::new()
    );
    // Nested bools, and the `a AND NOT b` shape that the text grammar gets wrong.
    assert_eq!(
        pods(json!({"bool": {
            "filter": [{"range": {"@timestamp": {"gte": ms(3), "format": "epoch_millis"}}}],
            "must": [{"bool": {"should": [{"term": {"level": "error"}}, {"term": {"level": "info"}}]}}],
            "must_not": [{"match_phrase": {"message": "connection reset"}}]
        }})),
        [6, 9, 10]
    );
    assert_eq!(
        pods(json!({"constant_score": {"filter": {"term": {"level": "warn"}}}})),
        [5]
    );
    assert_eq!(
        pods(
            json!({"dis_max": {"queries": [{"term": {"level": "warn"}}, {"term": {"level": "fatal"}}]}})
        ),
        [5, 11]
    );
}

#[test]
fn time_bounds_come_from_conjunctive_ranges() {
    let now = Timestamp::now();
    let query = json!({"bool": {
        "filter": [{"range": {"@timestamp": {"gte": ms(1), "lte": ms(3), "format": "epoch_millis"}}}],
        "must": {"bool": {"filter": {"range": {"timestamp": {"lt": ms(2), "format": "epoch_millis"}}}}},
        "should": [{"range": {"timestamp": {"gte": ms(5), "format": "epoch_millis"}}}]
    }});
    let (start, end) = time_bounds(Some(&query), now);
    assert_eq!(start, Some(Timestamp(T0 + MIN)));
    assert_eq!(end, Some(Timestamp(T0 + 2 * MIN)));
    // Ranges under should or must_not bound nothing.
    let query = json!({"bool": {"must_not": {"range": {"timestamp": {"gte": ms(1)}}}}});
    assert_eq!(time_bounds(Some(&query), now), (None, None));
    assert_eq!(time_bounds(None, now), (None, None));
}

#[test]
fn unsupported_constructs_are_named() {
    let cases = [
        (json!({"fuzzy": {"message": "tmeout"}}), "[fuzzy] query is not supported by trawl"),
        (json!({"script": {"script": "true"}}), "[script] query is not supported by trawl"),
        (
            json!({"geo_distance": {"distance": "1km", "loc": [0, 0]}}),
            "[geo_distance] query is not supported by trawl",
        ),
        (
            json!({"match": {"message": {"query": "x", "fuzziness": "AUTO"}}}),
            "[match] option [fuzziness] is not supported by trawl",
        ),
        (
            json!({"ids": {"values": ["1"]}}),
            "[ids] query (documents have no stable _id in trawl) is not supported by trawl",
        ),
        (
            json!({"bool": {"must": [{"nested": {"path": "x", "query": {}}}]}}),
            "[nested] query is not supported by trawl",
        ),
        (
            json!({"terms": {"pod": {"index": "x", "id": "1", "path": "p"}}}),
            "[terms] lookup (an object instead of an array of values) is not supported by trawl",
        ),
        (
            json!({"range": {"timestamp": {"gte": "now-1d", "relation": "within"}}}),
            "[range] [relation] other than intersects is not supported by trawl",
        ),
        (
            json!({"prefix": {"offset": "1"}}),
            "[prefix] query on field [offset] (only on keyword and text fields) is not supported by trawl",
        ),
    ];
    for (query, reason) in cases {
        let err = refused(query.clone());
        assert_eq!(err.kind, "parsing_exception", "{query}");
        assert_eq!(err.status.as_u16(), 400, "{query}");
        assert_eq!(err.reason, reason, "{query}");
    }
}

#[test]
fn malformed_queries_are_400() {
    let cases = [
        json!({"term": {"level": "error"}, "match_all": {}}),
        json!({"query_string": {"query": "level:(error"}}),
        json!({"term": {"offset": "five"}}),
        json!({"range": {"timestamp": {"gte": "yesterday"}}}),
        json!({"bool": {"must": 3}}),
        json!({"bool": {"minimum_should_match": "lots", "should": {"match_all": {}}}}),
        json!({"match": {"message": {"query": "x", "operator": "xor"}}}),
        json!("level:error"),
        json!({"regexp": {"pod": "p[2"}}),
    ];
    for query in cases {
        let err = refused(query.clone());
        assert_eq!(err.status.as_u16(), 400, "{query}: {err}");
        assert_eq!(err.kind, "parsing_exception", "{query}: {err}");
    }
    let err = refused(json!({"query_string": {"query": "level:(error"}}));
    assert!(
        err.reason
            .starts_with("[query_string] failed to parse [level:(error]: syntax error at position"),
        "{}",
        err.reason
    );
}
