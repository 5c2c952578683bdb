//! Two clusters in one Trawl: records of `prod` and `test` (stamped `cluster` by their
//! collectors or agents) searched, aggregated and reported apart (`group_by=cluster`), and a
//! read token scoped to one cluster that sees that cluster only, in search, aggregations,
//! reports and statistics.

use reqwest::blocking::Client;
use serde_json::{json, Value};

use crate::auth::token_hash;
use crate::support::{json_of, wait_until, Server, SEARCHABLE_TIMEOUT};

const INGEST: &str = "clusters-ingest-token-0123456789";
const ADMIN: &str = "clusters-admin-token-0123456789";
const TEST_ONLY: &str = "clusters-test-token-0123456789";

fn get(server: &Server, token: &str, path: &str) -> Value {
    let (status, body) = json_of(
        Client::new()
            .get(server.at(path))
            .bearer_auth(token)
            .send()
            .unwrap(),
    );
    assert_eq!(status, reqwest::StatusCode::OK, "{path}: {body}");
    body
}

fn post(server: &Server, token: &str, path: &str, body: String) -> Value {
    let (status, answer) = json_of(
        Client::new()
            .post(server.at(path))
            .bearer_auth(token)
            .body(body)
            .send()
            .unwrap(),
    );
    assert_eq!(status, reqwest::StatusCode::OK, "{path}: {answer}");
    answer
}

#[test]
fn two_clusters_are_searched_and_reported_apart_and_a_token_sees_its_cluster_only() {
    let tmp = tempfile::tempdir().unwrap();
    let config = format!(
        "[indexer]\ncommit_interval_ms = 200\n\
         [[auth.tokens]]\nname = \"agents\"\nhash = \"{}\"\nrole = \"ingest\"\n\n\
         [[auth.tokens]]\nname = \"ops\"\nhash = \"{}\"\nrole = \"admin\"\n\n\
         [[auth.tokens]]\nname = \"test-team\"\nhash = \"{}\"\nrole = \"read\"\nclusters = [\"test\"]\n",
        token_hash(INGEST),
        token_hash(ADMIN),
        token_hash(TEST_ONLY)
    );
    let server = Server::start(&tmp.path().join("data"), &config);
    // 30 lines of prod and 12 of test; audit events of both (alice in prod, bob in test).
    let logs: Vec<String> = (0..42)
        .map(|i| {
            let cluster = if i < 30 { "prod" } else { "test" };
            json!({"timestamp": format!("2026-11-25T10:00:{:02}Z", i), "cluster": cluster,
                "namespace": "shop", "pod": format!("web-{}", i % 3), "message": format!("line {i}")})
            .to_string()
        })
        .collect();
    post(&server, INGEST, "/api/v1/logs/ingest", logs.join("\n"));
    let audit: Vec<String> = (0..9)
        .map(|i| {
            let (cluster, user) = if i < 5 {
                ("prod", "alice")
            } else {
                ("test", "bob")
            };
            json!({"timestamp": format!("2026-11-25T10:01:{:02}Z", i), "audit_id": format!("a-{i}"),
                "stage": "ResponseComplete", "verb": "get", "user": user, "resource": "pods",
                "namespace": "shop", "status_code": 200, "cluster": cluster})
            .to_string()
        })
        .collect();
    post(&server, INGEST, "/api/v1/audit/ingest", audit.join("\n"));
    let range = "start=2026-11-25T09:00:00Z&end=2026-11-25T11:00:00Z";
    wait_until("every record searchable", SEARCHABLE_TIMEOUT, || {
        get(
            &server,
            ADMIN,
            &format!("/api/v1/logs/search?q=*&limit=0&{range}"),
        )["total"]
            == 42
            && get(
                &server,
                ADMIN,
                &format!("/api/v1/audit/search?q=*&limit=0&{range}"),
            )["total"]
                == 9
    });

    // Apart, for the admin: `cluster` as a query, a facet and a report filter.
    let prod = get(
        &server,
        ADMIN,
        &format!("/api/v1/logs/search?q=cluster:prod&limit=0&{range}"),
    );
    assert_eq!(prod["total"], 30);
    let aggs = json!({"q": "*", "start": "2026-11-25T09:00:00Z", "end": "2026-11-25T11:00:00Z",
        "limit": 0, "aggs": {"clusters": {"terms": {"field": "cluster"}}}});
    let facet = post(&server, ADMIN, "/api/v1/logs/search", aggs.to_string());
    let buckets: Vec<(String, u64)> = facet["aggregations"]["clusters"]["buckets"]
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
        buckets,
        [("prod".to_string(), 30), ("test".to_string(), 12)]
    );
    let report = get(
        &server,
        ADMIN,
        &format!("/api/v1/audit/reports/top-users?q=cluster:test&{range}"),
    );
    let users: Vec<(&str, u64)> = report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["user"].as_str().unwrap(), r["count"].as_u64().unwrap()))
        .collect();
    assert_eq!(users, [("bob", 4)]);
    // Reports grouped by cluster too: a row per user and cluster, each row's query exact.
    let report = get(
        &server,
        ADMIN,
        &format!("/api/v1/audit/reports/top-users?group_by=cluster&{range}"),
    );
    let rows = report["rows"].as_array().unwrap();
    let by_cluster: Vec<(&str, &str, u64)> = rows
        .iter()
        .map(|r| {
            let text = |k: &str| r[k].as_str().unwrap();
            (text("cluster"), text("user"), r["count"].as_u64().unwrap())
        })
        .collect();
    assert_eq!(by_cluster, [("prod", "alice", 5), ("test", "bob", 4)]);
    for row in rows {
        let q = row["query"].as_str().unwrap();
        let url = format!("/api/v1/audit/search?limit=0&{range}");
        let found = Client::new()
            .get(server.at(&url))
            .query(&[("q", q)])
            .bearer_auth(ADMIN)
            .send()
            .unwrap();
        assert_eq!(json_of(found).1["total"], row["count"], "{q}");
    }
    let (status, refused) = json_of(
        Client::new()
            .get(server.at("/api/v1/audit/reports/top-users?group_by=node"))
            .bearer_auth(ADMIN)
            .send()
            .unwrap(),
    );
    assert_eq!(status, reqwest::StatusCode::BAD_REQUEST);
    assert_eq!(
        refused["error"]["message"],
        "`group_by` takes `cluster` only, not \"node\""
    );

    // The test team's token: its cluster only, whatever the query says.
    let all = get(
        &server,
        TEST_ONLY,
        &format!("/api/v1/logs/search?q=*&limit=100&{range}"),
    );
    assert_eq!(all["total"], 12);
    assert!(all["hits"]
        .as_array()
        .unwrap()
        .iter()
        .all(|h| h["cluster"] == "test"));
    let asked_for_prod = get(
        &server,
        TEST_ONLY,
        &format!("/api/v1/logs/search?q=cluster:prod&limit=0&{range}"),
    );
    assert_eq!(asked_for_prod["total"], 0);
    let facet = post(&server, TEST_ONLY, "/api/v1/logs/search", aggs.to_string());
    assert_eq!(
        facet["aggregations"]["clusters"]["buckets"],
        json!([{"key": "test", "doc_count": 12}])
    );
    let report = get(
        &server,
        TEST_ONLY,
        &format!("/api/v1/audit/reports/top-users?{range}"),
    );
    assert_eq!(report["rows"].as_array().unwrap().len(), 1);
    assert_eq!(report["rows"][0]["user"], "bob");
    let streams = get(&server, TEST_ONLY, "/api/v1/streams");
    let logs_docs = streams["streams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "logs")
        .unwrap()["docs"]
        .clone();
    assert_eq!(logs_docs, 12);
    server.stop();
}
