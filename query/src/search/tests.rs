use std::time::Duration;

use serde_json::json;

use super::*;
use crate::aggs::parse_aggs;
use crate::testutil::{
    single_split_snapshot, snapshot, tied_snapshot, ASC_ORDER, MIN, RECORDS, T0,
};
use trawl_model::Timestamp;

fn limits() -> QueryLimits {
    QueryLimits {
        parallelism: 2,
        ..QueryLimits::default()
    }
}

fn req(q: &str) -> ParsedRequest {
    ParsedRequest::new(q, &limits())
}

fn run(r: &ParsedRequest) -> SearchResponse {
    search(&snapshot(), r, &limits()).unwrap()
}

fn total(q: &str) -> u64 {
    run(&req(q)).total
}

/// The `pod` numbers of the hits, in order.
fn pods(resp: &SearchResponse) -> Vec<usize> {
    resp.hits
        .iter()
        .map(|h| h["pod"].as_str().unwrap()[1..].parse().unwrap())
        .collect()
}

#[test]
fn totals_of_queries() {
    assert_eq!(total("*"), 12);
    assert_eq!(total("error timeout"), 3);
    assert_eq!(total("namespace:payments AND level:error"), 3);
    assert_eq!(total("\"connection reset\""), 3);
    assert_eq!(total("* -level:debug"), 10);
    assert_eq!(total("labels.app.kubernetes.io/name:web"), 6);
    assert_eq!(total("offset:[10 TO 20]"), 5);
    assert_eq!(total("level:error OR level:fatal"), 6);
    assert_eq!(total("namespace:nope"), 0);
}

/// `NOT` inside a conjunction subtracts, as in Lucene's query_string: the grammar's
/// `(+a +(-b))` must not collapse to nothing.
#[test]
fn and_not_subtracts_at_any_depth() {
    let errors = total("level:error");
    let payments_errors = total("namespace:payments AND level:error");
    assert!(errors > payments_errors && payments_errors > 0);
    assert_eq!(
        total("level:error AND NOT namespace:payments"),
        errors - payments_errors
    );
    assert_eq!(
        total("level:error -namespace:payments"),
        errors - payments_errors
    );
    assert_eq!(
        total("(level:error AND NOT namespace:payments) OR namespace:nope"),
        errors - payments_errors
    );
    assert_eq!(total("NOT level:debug"), total("* -level:debug"));
    assert_eq!(total("level:error AND NOT level:error"), 0);
}

#[test]
fn phrase_hits_are_the_right_documents() {
    let mut r = req("\"connection reset\"");
    r.sort = SortOrder::Asc;
    assert_eq!(pods(&run(&r)), vec![3, 8, 7]);
}

#[test]
fn time_bounds_are_exact_to_the_nanosecond() {
    let count = |start: i64, end: i64| {
        let mut r = req("*");
        r.start = Some(Timestamp(start));
        r.end = Some(Timestamp(end));
        run(&r).total
    };
    let m1 = T0 + MIN;
    // p1 and p4 at m1+1, p2 at m1+2.
    assert_eq!(count(m1 + 1, m1 + 2), 2);
    assert_eq!(count(m1 + 2, m1 + 3), 1);
    assert_eq!(count(m1 + 1, m1 + 3), 3);
    assert_eq!(count(m1, m1 + 1), 0);
    assert_eq!(count(m1 + 2, m1 + 2), 0);
    assert_eq!(count(m1 + 3, T0 + 2 * MIN), 0);
    assert_eq!(count(T0, T0 + 2 * MIN + 1), 5);

    let mut r = req("level:error");
    r.start = Some(Timestamp(m1 + 1));
    r.end = Some(Timestamp(T0 + 3 * MIN + 1));
    r.sort = SortOrder::Asc;
    let resp = run(&r);
    assert_eq!(resp.total, 2);
    assert_eq!(pods(&resp), vec![4, 3]);

    let mut r = req("*");
    r.start = Some(Timestamp(T0 + 6 * MIN));
    assert_eq!(run(&r).total, 1);
    let mut r = req("*");
    r.end = Some(Timestamp(T0 + 1));
    assert_eq!(pods(&run(&r)), vec![0]);
}

#[test]
fn sort_across_targets() {
    let mut r = req("*");
    r.sort = SortOrder::Asc;
    assert_eq!(pods(&run(&r)), ASC_ORDER);
    r.sort = SortOrder::Desc;
    let desc: Vec<usize> = ASC_ORDER.iter().rev().copied().collect();
    assert_eq!(pods(&run(&r)), desc);
    r.limit = 4;
    assert_eq!(pods(&run(&r)), desc[..4]);
    r.sort = SortOrder::Asc;
    assert_eq!(pods(&run(&r)), ASC_ORDER[..4]);
}

#[test]
fn sequential_and_parallel_agree() {
    let mut r = req("* -level:debug");
    r.sort = SortOrder::Asc;
    for parallelism in [1, 2, 3, 8] {
        let l = QueryLimits {
            parallelism,
            ..limits()
        };
        let resp = search(&snapshot(), &r, &l).unwrap();
        assert_eq!(resp.total, 10);
        assert_eq!(pods(&resp), vec![0, 1, 4, 5, 3, 6, 7, 9, 10, 11]);
    }
}

#[test]
fn hits_are_flat_records() {
    let mut r = req("pod:p3");
    r.limit = 1;
    let resp = run(&r);
    assert_eq!(
        Value::Object(resp.hits[0].clone()),
        json!({
            "timestamp": "2023-11-14T22:16:00.000000000Z",
            "cluster": "test",
            "namespace": "payments",
            "pod": "p3",
            "level": "error",
            "message": "connection reset by peer",
            "labels": {"app.kubernetes.io/name": "web"},
            "offset": 20
        })
    );
}

#[test]
fn limit_zero_answers_only_the_total() {
    let mut r = req("level:error");
    r.limit = 0;
    let resp = run(&r);
    assert_eq!(resp.total, 5);
    assert!(resp.hits.is_empty());
    assert_eq!(resp.cursor, None);
    assert_eq!(resp.aggregations, None);
    let body = serde_json::to_value(&resp).unwrap();
    let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["hits", "took_ms", "total"]);
}

#[test]
fn fields_projection() {
    let mut r = req("level:fatal");
    r.fields = Some(vec!["pod".into(), "level".into(), "labels".into()]);
    let resp = run(&r);
    assert_eq!(
        Value::Object(resp.hits[0].clone()),
        json!({"pod": "p11", "level": "fatal", "labels": {"app.kubernetes.io/name": "api"}})
    );
    let mut r = req("*");
    r.fields = Some(vec!["offset".into()]);
    r.limit = 1;
    r.sort = SortOrder::Asc;
    assert_eq!(Value::Object(run(&r).hits[0].clone()), json!({"offset": 5}));
    r.fields = Some(vec!["nope".into()]);
    let err = search(&snapshot(), &r, &limits()).unwrap_err();
    assert_eq!(err.to_string(), "`fields`: unknown field(s) `nope`");
}

/// Pages through the query with `limit` 3 and returns the pods in page order.
fn page_through(q: &str, sort: SortOrder) -> Vec<usize> {
    let mut r = req(q);
    r.limit = 3;
    r.sort = sort;
    let mut seen = Vec::new();
    for _ in 0..10 {
        let resp = run(&r);
        assert_eq!(resp.total, total(q), "total ignores the cursor");
        seen.extend(pods(&resp));
        match resp.cursor {
            Some(cursor) => r.search_after = Some(Cursor::decode(&cursor).unwrap()),
            None => return seen,
        }
        if resp.hits.len() < 3 {
            // A short page is the last; the cursor still leads to an empty page.
            let last = run(&r);
            assert!(last.hits.is_empty());
            assert_eq!(last.cursor, None);
            return seen;
        }
    }
    panic!("paging did not end");
}

#[test]
fn search_after_visits_every_document_once() {
    assert_eq!(page_through("*", SortOrder::Asc), ASC_ORDER);
    let desc: Vec<usize> = ASC_ORDER.iter().rev().copied().collect();
    assert_eq!(page_through("*", SortOrder::Desc), desc);
    assert_eq!(
        page_through("namespace:payments", SortOrder::Desc),
        vec![10, 7, 8, 3, 5, 1, 0]
    );
}

#[test]
fn paging_through_ties_across_segments_and_splits() {
    let snap = tied_snapshot();
    let list = |sort: SortOrder, limit: usize, after: Option<String>| {
        let mut r = req("*");
        r.sort = sort;
        r.limit = limit;
        r.search_after = after.map(|c| Cursor::decode(&c).unwrap());
        search(&snap, &r, &limits()).unwrap()
    };
    let asc = pods(&list(SortOrder::Asc, 100, None));
    let desc = pods(&list(SortOrder::Desc, 100, None));
    assert_eq!(asc.len(), 30);
    assert_eq!(asc.first(), Some(&0));
    assert_eq!(asc.last(), Some(&29));
    let mut sorted = asc.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..30).collect::<Vec<_>>());
    assert_eq!(desc, asc.iter().rev().copied().collect::<Vec<_>>());
    for (sort, full) in [(SortOrder::Asc, &asc), (SortOrder::Desc, &desc)] {
        for limit in 1..=4 {
            let mut paged = Vec::new();
            let mut after = None;
            loop {
                let page = list(sort, limit, after);
                assert_eq!(page.total, 30);
                paged.extend(pods(&page));
                match page.cursor {
                    Some(cursor) => after = Some(cursor),
                    None => break,
                }
            }
            assert_eq!(&paged, full, "{sort:?} limit {limit}");
        }
    }
}

#[test]
fn search_after_inside_a_tie() {
    // p3 (split a), p6 (b) and p8 (c) share a timestamp: a cursor on p6 continues with p8
    // ascending and with p3 descending.
    let mut r = req("*");
    r.limit = 1;
    r.sort = SortOrder::Asc;
    r.search_after = Some(Cursor::decode(&cursor_of(6)).unwrap());
    assert_eq!(pods(&run(&r)), vec![8]);
    r.sort = SortOrder::Desc;
    assert_eq!(pods(&run(&r)), vec![3]);
}

/// The cursor a search returns when its last hit is `pod`.
fn cursor_of(pod: usize) -> String {
    let mut r = req(&format!("pod:p{pod}"));
    r.limit = 1;
    run(&r).cursor.unwrap()
}

/// Regression (fuzz target `query`): a NUL inside a JSON field path made tantivy's query parser
/// panic instead of answering 400.
#[test]
fn a_nul_in_a_json_field_path_is_an_invalid_query_not_a_panic() {
    for q in [
        "attributes.st\0\0els.app:api",
        "\"connection reset\" labels.a\0:x",
        "message:a\0b",
    ] {
        let err = search(&snapshot(), &req(q), &limits()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid query: the query holds a NUL character"
        );
    }
}

/// Regression (fuzz target `query`): a range on a JSON path whose bounds tantivy types
/// differently (`[499 TO 59=]`, `[1 TO 1.5]`) panicked in tantivy instead of answering 400.
#[test]
fn a_json_range_with_bounds_of_two_types_is_an_invalid_query_not_a_panic() {
    for (q, message) in [
        (
            "attributes.status:[499 TO 59=]",
            "range on `attributes.status`: the bounds must have one type, but `499` is an \
             integer and `59=` is text",
        ),
        (
            "labels.x:[1 TO 1.5}",
            "range on `labels.x`: the bounds must have one type, but `1` is an integer and \
             `1.5` is a decimal",
        ),
    ] {
        let err = search(&snapshot(), &req(q), &limits()).unwrap_err();
        assert_eq!(err.to_string(), format!("invalid query: {message}"));
    }
    // Bounds of one type, or one bound open, are fine.
    for q in [
        "attributes.status:[400 TO 499]",
        "attributes.status:[1.0 TO 2]",
        "attributes.status:[* TO 1.5]",
        "attributes.status:>=1.5",
        "offset:[1 TO 20]",
    ] {
        search(&snapshot(), &req(q), &limits()).unwrap();
    }
}

#[test]
fn bad_query_is_invalid_query() {
    let err = search(&snapshot(), &req("level:(error"), &limits()).unwrap_err();
    assert!(matches!(err, Error::InvalidQuery(_)), "{err}");
    assert!(err.to_string().contains("at position"), "{err}");
    let err = search(&snapshot(), &req("nosuchfield:x"), &limits()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid query: Field does not exist: 'nosuchfield'"
    );
}

#[test]
fn targets_outside_the_bounds_are_skipped() {
    // Only split c holds documents from minute 5 on.
    let mut r = req("*");
    r.start = Some(Timestamp(T0 + 5 * MIN));
    r.limit = 1;
    let resp = run(&r);
    assert_eq!(resp.total, 3);
    assert_eq!(
        Cursor::decode(resp.cursor.as_deref().unwrap())
            .unwrap()
            .target,
        "c"
    );
}

#[test]
fn spent_budget_answers_partially() {
    let mut r = req("*");
    r.timeout = Duration::ZERO;
    let resp = run(&r);
    assert!(resp.timed_out);
    assert_eq!(resp.total, 0);
    assert_eq!(resp.cursor, None);
    let body = serde_json::to_value(&resp).unwrap();
    assert_eq!(body["timed_out"], json!(true));
    assert!(serde_json::to_value(run(&req("*")))
        .unwrap()
        .get("timed_out")
        .is_none());
}

fn with_aggs(q: &str, aggs: Value) -> ParsedRequest {
    let mut r = req(q);
    r.limit = 0;
    r.aggs = Some(parse_aggs(aggs).unwrap());
    r
}

fn aggs_of(snapshot: &StreamSnapshot, r: &ParsedRequest) -> Value {
    search(snapshot, r, &limits())
        .unwrap()
        .aggregations
        .unwrap()
}

/// A repeated aggregation is answered from the per-split cache with the same result, and a
/// request differing in query, bounds or aggregation is not confused with it.
#[test]
fn repeated_aggregations_agree_with_the_first_answer() {
    use crate::leaf_cache::LeafCache;
    let levels = json!({"levels": {"terms": {"field": "level"}}});
    let snap = snapshot();
    // The entries of this very snapshot (keys name its segments), so that other tests using
    // the process-wide cache at the same time do not count here.
    let hits = |r: &ParsedRequest| -> Vec<Option<u64>> {
        snap.targets
            .iter()
            .map(|t| LeafCache::global().hits_of(&LeafCache::key(t, r).unwrap()))
            .collect()
    };
    let request = with_aggs("*", levels.clone());
    assert_eq!(hits(&request), vec![None; 3], "nothing cached before");
    let first = aggs_of(&snap, &request);
    assert_eq!(
        hits(&request),
        vec![Some(0); 3],
        "each split stored, none hit"
    );
    let again = aggs_of(&snap, &with_aggs("*", levels.clone()));
    assert_eq!(first, again);
    assert_eq!(
        hits(&request),
        vec![Some(1); 3],
        "the repeat hit every split"
    );
    let other_query = with_aggs("namespace:payments", levels.clone());
    let payments = aggs_of(&snap, &other_query);
    assert_ne!(first, payments);
    assert_eq!(
        hits(&other_query),
        vec![Some(0); 3],
        "another query, its own entries"
    );
    assert_eq!(hits(&request), vec![Some(1); 3]);
    let errors_only = aggs_of(&snap, &with_aggs("level:error", levels.clone()));
    assert_eq!(
        errors_only["levels"]["buckets"].as_array().unwrap().len(),
        1
    );
    let mut bounded = with_aggs("*", levels);
    bounded.start = Some(Timestamp(T0 + MIN + 1));
    bounded.end = Some(Timestamp(T0 + MIN + 3));
    let total: u64 = aggs_of(&snap, &bounded)["levels"]["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["doc_count"].as_u64().unwrap())
        .sum();
    assert_eq!(total, 3);
}

#[test]
fn terms_with_nested_date_histogram() {
    let r = with_aggs(
        "*",
        json!({"levels": {
            "terms": {"field": "level"},
            "aggs": {"per_minute": {"date_histogram": {"field": "timestamp", "fixed_interval": "1m"}}}
        }}),
    );
    let aggs = aggs_of(&snapshot(), &r);
    let buckets = aggs["levels"]["buckets"].as_array().unwrap();
    let counts: Vec<(&str, u64)> = buckets
        .iter()
        .map(|b| (b["key"].as_str().unwrap(), b["doc_count"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        counts,
        vec![
            ("error", 5),
            ("info", 3),
            ("debug", 2),
            ("fatal", 1),
            ("warn", 1)
        ]
    );
    let error_minutes: Vec<(String, u64)> = buckets[0]["per_minute"]["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["key_as_string"].as_str().unwrap().to_string(),
                b["doc_count"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        error_minutes,
        vec![
            ("2023-11-14T22:13:00Z".to_string(), 1),
            ("2023-11-14T22:14:00Z".to_string(), 1),
            ("2023-11-14T22:15:00Z".to_string(), 0),
            ("2023-11-14T22:16:00Z".to_string(), 1),
            ("2023-11-14T22:17:00Z".to_string(), 1),
            ("2023-11-14T22:18:00Z".to_string(), 1),
        ]
    );
    assert_eq!(aggs, aggs_of(&single_split_snapshot(), &r));
}

#[test]
fn metrics_merged_across_targets() {
    let r = with_aggs(
        "*",
        json!({
            "offsets": {"stats": {"field": "offset"}},
            "namespaces": {"cardinality": {"field": "namespace"}},
            "offset_pct": {"percentiles": {"field": "offset", "percents": [50, 99]}}
        }),
    );
    let aggs = aggs_of(&snapshot(), &r);
    let sum: u64 = RECORDS.iter().map(|r| r.offset).sum();
    assert_eq!(sum, 286);
    assert_eq!(aggs["offsets"]["count"], json!(12));
    assert_eq!(aggs["offsets"]["sum"], json!(286.0));
    assert_eq!(aggs["offsets"]["min"], json!(3.0));
    assert_eq!(aggs["offsets"]["max"], json!(100.0));
    assert_eq!(aggs["namespaces"]["value"], json!(3.0));
    let p50 = aggs["offset_pct"]["values"]["50.0"].as_f64().unwrap();
    assert!((14.5..=18.5).contains(&p50), "p50 {p50}");
    assert_eq!(aggs, aggs_of(&single_split_snapshot(), &r));
}

#[test]
fn aggregations_follow_query_and_bounds_not_the_cursor() {
    let mut r = with_aggs(
        "namespace:payments",
        json!({"levels": {"terms": {"field": "level"}}}),
    );
    r.end = Some(Timestamp(T0 + 4 * MIN));
    r.limit = 2;
    r.search_after = Some(Cursor::decode(&cursor_of(3)).unwrap());
    let resp = run(&r);
    assert_eq!(resp.total, 5);
    assert_eq!(pods(&resp), vec![5, 1]);
    let counts: Vec<(String, u64)> = resp.aggregations.unwrap()["levels"]["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["key"].as_str().unwrap().to_string(),
                b["doc_count"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        counts,
        vec![
            ("error".to_string(), 2),
            ("debug".to_string(), 1),
            ("info".to_string(), 1),
            ("warn".to_string(), 1)
        ]
    );
}

#[test]
fn aggregation_limits_are_too_expensive() {
    let r = with_aggs(
        "*",
        json!({"pods": {"terms": {"field": "pod", "size": 100}}}),
    );
    let tight = QueryLimits {
        aggregation_bucket_limit: 5,
        ..limits()
    };
    let err = search(&snapshot(), &r, &tight).unwrap_err();
    assert!(matches!(err, Error::TooExpensive(_)), "{err}");
    let tiny = QueryLimits {
        aggregation_memory_bytes: 100,
        ..limits()
    };
    let err = search(&snapshot(), &r, &tiny).unwrap_err();
    assert!(matches!(err, Error::TooExpensive(_)), "{err}");
    assert_eq!(err.code(), crate::ErrorCode::TooExpensive);
}

#[test]
fn aggregation_on_a_text_field_is_invalid() {
    let r = with_aggs("*", json!({"m": {"stats": {"field": "message"}}}));
    let err = search(&snapshot(), &r, &limits()).unwrap_err();
    assert!(matches!(err, Error::InvalidAggregation(_)), "{err}");
}

#[test]
fn no_targets_still_answer_empty_aggregations() {
    let mut empty = snapshot();
    empty.targets.clear();
    let r = with_aggs(
        "*",
        json!({"levels": {"terms": {"field": "level"}}, "offsets": {"stats": {"field": "offset"}}}),
    );
    let resp = search(&empty, &r, &limits()).unwrap();
    assert_eq!(resp.total, 0);
    let aggs = resp.aggregations.unwrap();
    assert_eq!(aggs["levels"]["buckets"], json!([]));
    assert_eq!(aggs["offsets"]["count"], json!(0));
}

/// Segments that cannot hold the best hits are only counted (the bound from segments visited
/// first): every limit, order and parallelism still answers the exact prefix and total.
#[test]
fn pruned_segments_change_neither_hits_nor_totals() {
    let reference = single_split_snapshot();
    for sort in [SortOrder::Asc, SortOrder::Desc] {
        for q in ["*", "* -level:debug", "namespace:payments"] {
            let mut all = req(q);
            all.sort = sort;
            let full = search(&reference, &all, &limits()).unwrap();
            for limit in 1..=12 {
                for parallelism in [1, 2] {
                    let l = QueryLimits {
                        parallelism,
                        ..limits()
                    };
                    let mut r = req(q);
                    r.sort = sort;
                    r.limit = limit;
                    let resp = search(&snapshot(), &r, &l).unwrap();
                    assert_eq!(resp.total, full.total, "{q} {sort:?} {limit}");
                    let expected = &pods(&full)[..limit.min(full.hits.len())];
                    assert_eq!(pods(&resp), expected, "{q} {sort:?} {limit} {parallelism}");
                }
            }
        }
    }
}

/// A distributed search's merge writes out the same answer whichever way its leaves' records
/// came: kept as built by the root's own leaf, or as text from an indexer (postcard, as on the
/// wire); and it is the answer of one search over every target.
#[test]
fn merged_leaves_answer_as_one_search_whatever_form_their_records_came_in() {
    let full = snapshot();
    let (mine, theirs): (Vec<_>, Vec<_>) = full.targets.iter().cloned().partition(|t| t.id == "b");
    for (q, sort) in [
        ("*", SortOrder::Desc),
        ("*", SortOrder::Asc),
        ("level:error", SortOrder::Desc),
    ] {
        let mut r = req(q);
        r.sort = sort;
        r.limit = 7;
        let own = search_leaf(&crate::testutil::snapshot_of(mine.clone()), &r, &limits()).unwrap();
        assert!(own
            .hits
            .iter()
            .all(|h| matches!(h.record, LeafRecord::Parsed(_))));
        let remote =
            search_leaf(&crate::testutil::snapshot_of(theirs.clone()), &r, &limits()).unwrap();
        let remote: LeafResponse =
            postcard::from_bytes(&postcard::to_stdvec(&remote).unwrap()).unwrap();
        assert!(remote
            .hits
            .iter()
            .all(|h| matches!(h.record, LeafRecord::Text(_))));
        let merged = merge_leaves(
            vec![own, remote],
            &r,
            &limits(),
            tantivy::tokenizer::TokenizerManager::default(),
        )
        .unwrap();
        let one = search(&full, &r, &limits()).unwrap();
        assert_eq!(merged.total, one.total, "{q}");
        assert_eq!(merged.cursor, one.cursor, "{q}");
        assert_eq!(
            serde_json::to_string(&merged.hits).unwrap(),
            serde_json::to_string(&one.hits).unwrap(),
            "{q} {sort:?}"
        );
        // Both forms were among the hits written out.
        assert!(merged
            .hits
            .iter()
            .any(|h| matches!(h, MergedHit::Parsed(_))));
        assert!(merged.hits.iter().any(|h| matches!(h, MergedHit::Raw(_))));
        // As values too (a story's parts are read so).
        assert_eq!(
            serde_json::to_value(&merged.hits).unwrap(),
            serde_json::to_value(&one.hits).unwrap()
        );
    }
}

/// A leaf record that is not a JSON object is refused, not written out.
#[test]
fn a_malformed_leaf_record_is_an_error() {
    for text in ["{\"a\":", "[1]", "not json"] {
        let leaf = LeafResponse {
            total: 1,
            hits: vec![LeafHit {
                timestamp: T0,
                target: "x".into(),
                segment: 0,
                doc: 0,
                record: LeafRecord::Text(text.into()),
            }],
            aggregations: None,
            timed_out: false,
        };
        let err = merge_leaves(
            vec![leaf],
            &req("*"),
            &limits(),
            tantivy::tokenizer::TokenizerManager::default(),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("malformed record"),
            "{text}: {err}"
        );
    }
}
