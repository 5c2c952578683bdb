//! The routes over the twelve-record fixture of `testutil`, called without a socket: exact
//! answers in Elasticsearch's shape, headers, and errors.

use std::sync::Arc;

use axum::body::{to_bytes, Body};
use axum::http::{Request, StatusCode};
use axum::Router;
use serde_json::{json, Value};
use tower::ServiceExt;

use crate::request::QueryLimits;
use crate::testutil::{snapshot, Fixture, MIN, T0};

fn app() -> Router {
    super::routes(
        Arc::new(Fixture::new(snapshot())),
        QueryLimits::default(),
        super::ElasticSettings::default(),
    )
}

fn ms(minutes: i64) -> i64 {
    (T0 + minutes * MIN) / 1_000_000
}

struct Answer {
    status: StatusCode,
    content_type: String,
    product: String,
    text: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("{e}: {}", self.text))
    }
}

async fn call(request: Request<Body>) -> Answer {
    let response = app().oneshot(request).await.unwrap();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    };
    let (status, content_type, product) = (
        response.status(),
        header("content-type"),
        header("x-elastic-product"),
    );
    let body = to_bytes(response.into_body(), 1 << 22).await.unwrap();
    Answer {
        status,
        content_type,
        product,
        text: String::from_utf8(body.to_vec()).unwrap(),
    }
}

async fn get(uri: &str) -> Answer {
    call(Request::get(uri).body(Body::empty()).unwrap()).await
}

async fn post(uri: &str, body: Value) -> Answer {
    let request = Request::post(uri)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    call(request).await
}

async fn search(body: Value) -> Value {
    let answer = post("/api/v1/_elastic/logs/_search", body).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    answer.json()
}

fn pods_of(answer: &Value) -> Vec<String> {
    answer["hits"]["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["_source"]["pod"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn cluster_info_and_product_header() {
    let answer = get("/api/v1/_elastic").await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.product, "Elasticsearch");
    assert_eq!(answer.content_type, "application/json");
    let body = answer.json();
    assert_eq!(body["version"]["number"], json!("8.11.0"));
    assert_eq!(body["version"]["build_flavor"], json!("default"));
    assert_eq!(body["cluster_name"], json!("trawl"));
    assert_eq!(body["tagline"], json!("You Know, for Search"));
    let answer = call(
        Request::head("/api/v1/_elastic/")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.product, "Elasticsearch");
    assert_eq!(answer.text, "");
    // The compatibility media type is answered in kind.
    let request = Request::get("/api/v1/_elastic")
        .header(
            "accept",
            "application/vnd.elasticsearch+json; compatible-with=8",
        )
        .body(Body::empty())
        .unwrap();
    let answer = call(request).await;
    assert_eq!(
        answer.content_type,
        "application/vnd.elasticsearch+json; compatible-with=8"
    );
    let health = get("/api/v1/_elastic/_cluster/health").await.json();
    assert_eq!(health["status"], json!("green"));
}

#[tokio::test]
async fn search_with_filter_source_and_explicit_sort() {
    let body = search(json!({
        "size": 3,
        "query": {"bool": {
            "filter": [
                {"range": {"@timestamp": {"gte": ms(1), "lte": ms(4), "format": "epoch_millis"}}},
                {"query_string": {"query": "connection OR timeout", "analyze_wildcard": true}}
            ]
        }},
        "sort": [{"@timestamp": {"order": "asc", "unmapped_type": "boolean"}}, {"offset": "desc"}],
        "_source": ["pod", "level"]
    }))
    .await;
    assert_eq!(body["timed_out"], json!(false));
    assert_eq!(body["_shards"]["failed"], json!(0));
    assert_eq!(body["hits"]["total"], json!({"value": 6, "relation": "eq"}));
    assert_eq!(body["hits"]["max_score"], Value::Null);
    let hits = body["hits"]["hits"].as_array().unwrap();
    let shown: Vec<Value> = hits
        .iter()
        .map(|h| json!([h["_index"], h["_source"], h["sort"], h["_score"]]))
        .collect();
    assert_eq!(
        shown,
        vec![
            json!(["logs", {"level": "error", "pod": "p4"}, [T0 + MIN + 1, 25], null]),
            json!(["logs", {"level": "warn", "pod": "p5"}, [T0 + 2 * MIN, 12], null]),
            json!(["logs", {"level": "info", "pod": "p6"}, [T0 + 3 * MIN, 30], null]),
        ]
    );
    assert!(hits.iter().all(|h| h["_id"].is_string()));
}

#[tokio::test]
async fn default_order_is_newest_first() {
    let body =
        search(json!({"size": 2, "_source": {"includes": ["p*"], "excludes": ["pod_uid"]}})).await;
    assert_eq!(pods_of(&body), ["p11", "p10"]);
    assert!(body["hits"]["hits"][0].get("sort").is_none());
    assert_eq!(body["hits"]["hits"][0]["_source"], json!({"pod": "p11"}));
    let body = search(json!({"size": 1, "_source": false})).await;
    assert!(body["hits"]["hits"][0].get("_source").is_none());
}

#[tokio::test]
async fn paging_with_from_and_search_after() {
    let page = |extra: Value| {
        let mut body = json!({"size": 4, "sort": [{"offset": "asc"}], "_source": ["pod"]});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    let first = search(page(json!({}))).await;
    assert_eq!(pods_of(&first), ["p10", "p0", "p8", "p1"]);
    let last_sort = first["hits"]["hits"][3]["sort"].clone();
    assert_eq!(last_sort, json!([10]));
    let second = search(page(json!({"search_after": last_sort}))).await;
    assert_eq!(pods_of(&second), ["p5", "p2", "p7", "p3"]);
    assert_eq!(second["hits"]["total"]["value"], json!(12));
    let from = search(page(json!({"from": 4}))).await;
    assert_eq!(pods_of(&from), ["p5", "p2", "p7", "p3"]);
    // `_doc` makes any order continuable, even with ties in the timestamp.
    let mut seen = Vec::new();
    let mut after: Option<Value> = None;
    loop {
        let mut body = json!({"size": 5, "sort": [{"@timestamp": "desc"}, {"_doc": "desc"}], "_source": ["pod"]});
        if let Some(a) = &after {
            body["search_after"] = a.clone();
        }
        let answer = search(body).await;
        let hits = answer["hits"]["hits"].as_array().unwrap().clone();
        if hits.is_empty() {
            break;
        }
        seen.extend(pods_of(&answer));
        after = Some(hits.last().unwrap()["sort"].clone());
    }
    assert_eq!(
        seen,
        ["p11", "p10", "p9", "p7", "p8", "p6", "p3", "p5", "p2", "p4", "p1", "p0"]
    );
    // Keyword sorts: by string, missing last.
    let body =
        search(json!({"size": 3, "sort": ["namespace", {"pod": "desc"}], "_source": ["pod"]}))
            .await;
    assert_eq!(pods_of(&body), ["p11", "p8", "p7"]);
    assert_eq!(
        body["hits"]["hits"][0]["sort"],
        json!(["kube-system", "p11"])
    );
}

#[tokio::test]
async fn grafana_date_histogram_with_terms() {
    let body = search(json!({
        "size": 0,
        "query": {"bool": {"filter": [
            {"range": {"@timestamp": {"gte": ms(0), "lte": ms(7), "format": "epoch_millis"}}},
            {"query_string": {"analyze_wildcard": true, "query": "*"}}
        ]}},
        "aggs": {"2": {
            "date_histogram": {"field": "@timestamp", "fixed_interval": "1m", "min_doc_count": 0,
                "extended_bounds": {"min": ms(0), "max": ms(7)}, "format": "epoch_millis"},
            "aggs": {"3": {"terms": {"field": "level.keyword", "size": 1, "order": {"_count": "desc"}}}}
        }, "levels": {"terms": {"field": "level", "size": 2}}}
    }))
    .await;
    assert_eq!(body["hits"]["total"]["value"], json!(12));
    assert_eq!(body["hits"]["hits"], json!([]));
    let buckets = body["aggregations"]["2"]["buckets"].as_array().unwrap();
    let shown: Vec<(i64, String, u64)> = buckets
        .iter()
        .map(|b| {
            (
                b["key"].as_i64().unwrap(),
                b["key_as_string"].as_str().unwrap().to_string(),
                b["doc_count"].as_u64().unwrap(),
            )
        })
        .collect();
    let expected: Vec<(i64, String, u64)> = [1, 3, 1, 3, 1, 2, 1, 0]
        .iter()
        .enumerate()
        .map(|(i, n)| (ms(i as i64), ms(i as i64).to_string(), *n))
        .collect();
    assert_eq!(shown, expected);
    // Ties in count are broken by key, as in Elasticsearch.
    assert_eq!(
        buckets[1]["3"]["buckets"],
        json!([{"key": "debug", "doc_count": 1}])
    );
    let levels: Vec<(String, u64)> = body["aggregations"]["levels"]["buckets"]
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
    assert_eq!(levels, [("error".to_string(), 5), ("info".to_string(), 3)]);
}

#[tokio::test]
async fn more_aggregations() {
    let body = search(json!({
        "size": 0,
        "aggs": {
            "offsets": {"stats": {"field": "offset"}},
            "pct": {"percentiles": {"field": "offset", "percents": ["50"]}},
            "pods": {"cardinality": {"field": "pod"}},
            "h": {"histogram": {"field": "offset", "interval": "50"}},
            "r": {"range": {"field": "offset", "ranges": [{"to": 10}, {"from": 10}]}}
        }
    }))
    .await;
    let aggs = &body["aggregations"];
    assert_eq!(aggs["offsets"]["count"], json!(12));
    assert_eq!(aggs["offsets"]["min"], json!(3.0));
    assert_eq!(aggs["offsets"]["max"], json!(100.0));
    assert_eq!(aggs["offsets"]["sum"], json!(286.0));
    // An integer, as Elasticsearch answers (clients decode it into an integer type).
    assert_eq!(aggs["pods"]["value"], json!(12));
    let h: Vec<(f64, u64)> = aggs["h"]["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| (b["key"].as_f64().unwrap(), b["doc_count"].as_u64().unwrap()))
        .collect();
    assert_eq!(h, [(0.0, 11), (50.0, 0), (100.0, 1)]);
    let r: Vec<u64> = aggs["r"]["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["doc_count"].as_u64().unwrap())
        .collect();
    assert_eq!(r, [3, 9]);
    assert!(aggs["pct"]["values"].is_object());
}

#[tokio::test]
async fn fields_and_total_hits_options() {
    let body = search(json!({
        "size": 1,
        "query": {"term": {"pod": "p0"}},
        "docvalue_fields": [{"field": "@timestamp", "format": "epoch_millis"}, "kubernetes.namespace_name"],
        "track_total_hits": false
    }))
    .await;
    assert!(body["hits"].get("total").is_none());
    assert_eq!(
        body["hits"]["hits"][0]["fields"],
        json!({"@timestamp": [ms(0)], "kubernetes.namespace_name": ["payments"]})
    );
    let body = search(json!({"size": 0, "track_total_hits": 3})).await;
    assert_eq!(
        body["hits"]["total"],
        json!({"value": 3, "relation": "gte"})
    );
    // URI search.
    let answer = get("/api/v1/_elastic/logs/_search?q=level:fatal&_source=pod").await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(pods_of(&answer.json()), ["p11"]);
}

#[tokio::test]
async fn count() {
    let answer = post(
        "/api/v1/_elastic/logs/_count",
        json!({"query": {"term": {"namespace": "shop"}}}),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let body = answer.json();
    assert_eq!(body["count"], json!(4));
    assert_eq!(body["_shards"]["failed"], json!(0));
    assert_eq!(
        get("/api/v1/_elastic/logs/_count?q=level:error")
            .await
            .json()["count"],
        json!(5)
    );
    assert_eq!(
        get("/api/v1/_elastic/_count").await.json()["count"],
        json!(12)
    );
    let answer = post("/api/v1/_elastic/logs/_count", json!({"size": 3})).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn msearch_answers_each_item() {
    let ndjson = [
        json!({"index": "logs", "ignore_unavailable": true}),
        json!({"size": 0, "query": {"term": {"level": "error"}}}),
        json!({"index": "nope"}),
        json!({}),
        json!({}),
        json!({"query": {"fuzzy": {"message": "x"}}}),
        json!({"index": ["logs"]}),
        json!({"size": 1, "_source": ["pod"]}),
    ]
    .iter()
    .map(|v| format!("{v}\n"))
    .collect::<String>();
    let request = Request::post("/api/v1/_elastic/_msearch?max_concurrent_shard_requests=5")
        .header("content-type", "application/x-ndjson")
        .body(Body::from(ndjson))
        .unwrap();
    let answer = call(request).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let body = answer.json();
    let responses = body["responses"].as_array().unwrap();
    assert_eq!(responses.len(), 4);
    assert_eq!(responses[0]["status"], json!(200));
    assert_eq!(responses[0]["hits"]["total"]["value"], json!(5));
    assert_eq!(responses[1]["status"], json!(404));
    assert_eq!(
        responses[1]["error"]["type"],
        json!("index_not_found_exception")
    );
    assert_eq!(responses[2]["status"], json!(400));
    assert_eq!(
        responses[2]["error"]["reason"],
        json!("[fuzzy] query is not supported by trawl")
    );
    assert_eq!(pods_of(&responses[3]), ["p11"]);
    // The compatibility NDJSON type is accepted and answered as compatibility JSON.
    let request = Request::post("/api/v1/_elastic/logs/_msearch")
        .header(
            "content-type",
            "application/vnd.elasticsearch+x-ndjson; compatible-with=8",
        )
        .body(Body::from("{}\n{\"size\":0}\n"))
        .unwrap();
    let answer = call(request).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(
        answer.content_type,
        "application/vnd.elasticsearch+json; compatible-with=8"
    );
    assert_eq!(
        answer.json()["responses"][0]["hits"]["total"]["value"],
        json!(12)
    );
    let request = Request::post("/api/v1/_elastic/_msearch")
        .body(Body::from("{}\n"))
        .unwrap();
    assert_eq!(call(request).await.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn mapping_field_caps_and_cat() {
    let body = get("/api/v1/_elastic/logs/_mapping").await.json();
    let props = &body["logs"]["mappings"]["properties"];
    assert_eq!(props["@timestamp"], json!({"type": "date_nanos"}));
    assert_eq!(props["message"], json!({"type": "text"}));
    assert_eq!(props["level"], json!({"type": "keyword"}));
    assert_eq!(get("/api/v1/_elastic/_mapping").await.json(), body);
    let body = get("/api/v1/_elastic/log*/_field_caps?fields=level,@timestamp")
        .await
        .json();
    assert_eq!(
        body,
        json!({"indices": ["logs"], "fields": {
            "level": {"keyword": {"type": "keyword", "metadata_field": false, "searchable": true, "aggregatable": true}},
            "@timestamp": {"date_nanos": {"type": "date_nanos", "metadata_field": false, "searchable": true, "aggregatable": true}}
        }})
    );
    let answer = get("/api/v1/_elastic/_cat/indices?v&h=health,index,docs.count").await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.content_type, "text/plain; charset=UTF-8");
    assert_eq!(answer.text, "health index docs.count\ngreen  logs  12\n");
    let body = get("/api/v1/_elastic/_cat/indices?format=json&bytes=b")
        .await
        .json();
    assert_eq!(body[0]["index"], json!("logs"));
    assert_eq!(body[0]["store.size"], json!("4096"));
    let answer = call(
        Request::head("/api/v1/_elastic/logs")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    let answer = call(
        Request::head("/api/v1/_elastic/nope")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn errors_in_elasticsearch_shape() {
    let answer = post("/api/v1/_elastic/nope/_search", json!({})).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert_eq!(answer.product, "Elasticsearch");
    assert_eq!(
        answer.json(),
        json!({"error": {
            "root_cause": [{"type": "index_not_found_exception", "reason": "no such index [nope]",
                "index": "nope", "resource.type": "index_or_alias", "resource.id": "nope"}],
            "type": "index_not_found_exception", "reason": "no such index [nope]",
            "index": "nope", "resource.type": "index_or_alias", "resource.id": "nope"
        }, "status": 404})
    );
    let answer = post(
        "/api/v1/_elastic/logs/_search",
        json!({"query": {"fuzzy": {"message": "x"}}}),
    )
    .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        answer.json(),
        json!({"error": {
            "root_cause": [{"type": "parsing_exception", "reason": "[fuzzy] query is not supported by trawl"}],
            "type": "parsing_exception", "reason": "[fuzzy] query is not supported by trawl"
        }, "status": 400})
    );
    let cases = [
        (json!({"sort": ["message"]}), "[sort] on field [message] (a text field; sort on a keyword, number or date) is not supported by trawl"),
        (json!({"sort": ["nope"]}), "No mapping found for [nope] in order to sort on"),
        (json!({"aggs": {"x": {"geo_bounds": {"field": "x"}}}}), "[geo_bounds] aggregation is not supported by trawl"),
        (json!({"sort": [{"pod": "asc"}], "search_after": ["p1"]}), "[search_after] with a keyword sort key (sort by a timestamp, number or _doc) is not supported by trawl"),
        (json!({"size": 10001}), "Result window is too large, from + size must be less than or equal to: [10000] but was [10001]"),
    ];
    for (body, reason) in cases {
        let answer = post("/api/v1/_elastic/logs/_search", body.clone()).await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{body}: {}",
            answer.text
        );
        let json = answer.json();
        if !reason.is_empty() {
            assert_eq!(json["error"]["reason"], json!(reason), "{body}");
        }
        assert_eq!(json["status"], json!(400));
    }
    let request = Request::post("/api/v1/_elastic/logs/_search")
        .header("content-type", "application/json")
        .body(Body::from("{not json"))
        .unwrap();
    let answer = call(request).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.json()["error"]["type"], json!("parsing_exception"));
}
