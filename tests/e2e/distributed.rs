//! Distributed search: a searcher root over two indexers.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use crate::support::{gen, Server};

#[test]
fn searcher_merges_two_indexers_exactly_and_reports_partial_answers() {
    let dir = tempfile::tempdir().unwrap();
    let a = Server::start_role("indexer", &dir.path().join("a"), "");
    let b = Server::start_role("indexer", &dir.path().join("b"), "");
    // Interleaved records: even numbers on one indexer, odd on the other.
    let (even, odd): (Vec<u64>, Vec<u64>) = (0..400).partition(|i| i % 2 == 0);
    let lines =
        |ids: &[u64]| -> Vec<String> { ids.iter().map(|&i| gen::line(i, "dist")).collect() };
    assert_eq!(a.ingest_zstd("logs", &lines(&even))["accepted"], 200);
    assert_eq!(b.ingest_zstd("logs", &lines(&odd))["accepted"], 200);
    a.wait_total("*", 200);
    b.wait_total("*", 200);

    let config = format!("[query]\nindexers = [\"{}\", \"{}\"]\n", a.url, b.url);
    let root = Server::start_role("searcher", &dir.path().join("root"), &config);

    // Totals add up; the top hits interleave both indexers in timestamp order.
    let answer = root.search("logs", &[("q", "*"), ("limit", "10"), ("sort", "asc")]);
    assert_eq!(answer["total"], 400);
    let stamps: Vec<String> = answer["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["timestamp"].as_str().unwrap().to_string())
        .collect();
    let expected: Vec<String> = (0..10).map(gen::ts).collect();
    assert_eq!(stamps, expected);
    let timeouts = (0..400).filter(|&i| gen::has_timeout(i)).count();
    assert_eq!(root.total("timeout", &[]), timeouts as u64);

    // Paging with the merged cursor visits every record exactly once.
    let mut seen = std::collections::BTreeSet::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut params = vec![("q", "*"), ("limit", "64")];
        if let Some(c) = &cursor {
            params.push(("search_after", c.as_str()));
        }
        let page = root.search("logs", &params);
        let hits = page["hits"].as_array().unwrap();
        if hits.is_empty() {
            break;
        }
        for h in hits {
            assert!(seen.insert(h["timestamp"].as_str().unwrap().to_string()));
        }
        cursor = page["cursor"].as_str().map(str::to_string);
    }
    assert_eq!(seen.len(), 400);

    // Aggregations merge exactly: a terms count per namespace.
    let client = reqwest::blocking::Client::new();
    let body = json!({"q": "*", "limit": 0, "aggs": {"ns": {"terms": {"field": "namespace"}}}});
    let merged: Value = client
        .post(root.at("/api/v1/logs/search"))
        .json(&body)
        .send()
        .unwrap()
        .json()
        .unwrap();
    let mut buckets: Vec<(String, u64)> = merged["aggregations"]["ns"]["buckets"]
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
    buckets.sort();
    let mut expected: std::collections::BTreeMap<String, u64> = Default::default();
    for i in 0..400 {
        *expected.entry(gen::namespace(i).to_string()).or_default() += 1;
    }
    assert_eq!(buckets, expected.into_iter().collect::<Vec<_>>());

    // A bad query is refused by the leaves and passed on as such.
    let (status, error) = root.search_raw("logs", &[("q", "a:(")]);
    assert_eq!(status.as_u16(), 400);
    assert_eq!(error["error"]["code"], "invalid_query");

    // One indexer down: the answer covers the other and says it is partial.
    b.kill9();
    let partial = root.search("logs", &[("q", "*"), ("limit", "0")]);
    assert_eq!(partial["total"], 200);
    assert_eq!(partial["partial"], true);
    assert_eq!(partial["failed_indexers"].as_array().unwrap().len(), 1);
    let streams = root.get("/api/v1/streams");
    assert_eq!(streams.status().as_u16(), 200);
}

/// Through a searcher, a tail receives the new matching records of every indexer, each once,
/// and an export is one file holding every indexer's records, whatever the format.
#[test]
fn searcher_tails_and_exports_through_every_indexer() {
    use crate::export_tail::{open_tail, TailEvent};
    use std::time::{Duration, Instant};

    let dir = tempfile::tempdir().unwrap();
    let a = Server::start_role("indexer", &dir.path().join("a"), "");
    let b = Server::start_role("indexer", &dir.path().join("b"), "");
    let config = format!("[query]\nindexers = [\"{}\", \"{}\"]\n", a.url, b.url);
    let root = Server::start_role("searcher", &dir.path().join("root"), &config);

    // Tail: subscribed through the root before anything is ingested.
    let events = open_tail(&root, &[("q", "fanin")]);
    let (even, odd): (Vec<u64>, Vec<u64>) = (0..60).partition(|i| i % 2 == 0);
    let lines = |ids: &[u64], word: &str| -> Vec<String> {
        ids.iter().map(|&i| gen::line(i, word)).collect()
    };
    assert_eq!(
        a.ingest_zstd("logs", &lines(&even, "fanin"))["accepted"],
        30
    );
    assert_eq!(b.ingest_zstd("logs", &lines(&odd, "fanin"))["accepted"], 30);
    assert_eq!(
        a.ingest_zstd("logs", &lines(&[100, 102], "other"))["accepted"],
        2
    );
    let mut seen = std::collections::BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen.len() < 60 {
        let left = deadline.saturating_duration_since(Instant::now());
        match events.recv_timeout(left) {
            Ok(TailEvent::Record(record)) => {
                let message = record["message"].as_str().unwrap().to_string();
                assert!(message.contains("fanin"), "{message}");
                assert!(seen.insert(record["timestamp"].as_str().unwrap().to_string()));
            }
            Ok(TailEvent::Error(data)) => panic!("tail error event: {data}"),
            Err(e) => panic!("tail got {} of 60 records: {e}", seen.len()),
        }
    }
    let expected: std::collections::BTreeSet<String> = (0..60).map(gen::ts).collect();
    assert_eq!(seen, expected);

    // Export: both indexers' parts, as one NDJSON and one CSV file; `limit` spans the parts.
    a.wait_total("*", 32);
    b.wait_total("*", 30);
    let client = reqwest::blocking::Client::new();
    let export = |params: &[(&str, &str)]| -> (reqwest::StatusCode, String) {
        let response = client
            .get(root.at("/api/v1/logs/export"))
            .query(params)
            .send()
            .unwrap();
        let status = response.status();
        (status, response.text().unwrap())
    };
    let (status, ndjson) = export(&[("q", "fanin"), ("format", "ndjson")]);
    assert_eq!(status, 200);
    let mut stamps: Vec<String> = ndjson
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["timestamp"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    stamps.sort();
    assert_eq!(stamps, expected.iter().cloned().collect::<Vec<_>>());
    let (status, csv) = export(&[
        ("q", "*"),
        ("format", "csv"),
        ("fields", "timestamp,namespace"),
    ]);
    assert_eq!(status, 200);
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows[0], "timestamp,namespace");
    assert_eq!(
        rows.len(),
        1 + 62,
        "one header, every record of both indexers"
    );
    let (_, limited) = export(&[("q", "*"), ("format", "ndjson"), ("limit", "45")]);
    assert_eq!(limited.lines().count(), 45);
    let (status, parquet) = export(&[("q", "*"), ("format", "parquet")]);
    assert_eq!(status, 200);
    assert!(parquet.starts_with("PAR1") && parquet.ends_with("PAR1"));

    // What the root cannot merge is refused with advice; a bad query is the indexers' 400.
    let (status, body) = export(&[("q", "*"), ("sort", "asc")]);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("sorted exports"), "{body}");
    let (status, _) = export(&[("q", "level:(")]);
    assert_eq!(status, 400);
}

/// The split deployment with the trust boundaries of production: the indexers serve HTTPS
/// with a certificate of a private CA (the searcher trusts it through
/// `query.indexer_ca_path`) and know none of the callers' tokens, only the searcher's own
/// (`query.indexer_token`). A namespace-scoped token at the searcher still sees only its
/// namespace in search, stream statistics, export and tail, because the searcher sends the
/// caller's resolved scope with every request it fans out.
#[test]
fn searcher_keeps_a_callers_scope_over_https_indexers_with_their_own_tokens() {
    use std::io::{BufRead, BufReader};
    use std::time::Duration;

    use crate::auth::{audit_lines, log_lines, token_hash, write, Pki, ADMIN, INGEST, READ_A};

    const SEARCHER: &str = "searcher-token-0123456789abcdef";
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new("trawl test indexer CA");
    let (cert, key) = pki.issue(
        &["localhost", "127.0.0.1"],
        rcgen::ExtendedKeyUsagePurpose::ServerAuth,
    );
    let ca_path = write(dir.path(), "indexer-ca.pem", &pki.ca_pem);
    let indexer_config = format!(
        r#"
[indexer]
commit_interval_ms = 100

[auth.tls]
cert_path = "{cert}"
key_path = "{key}"

[[auth.tokens]]
name = "collector"
hash = "{ingest}"
role = "ingest"

[[auth.tokens]]
name = "searcher"
hash = "{searcher}"
role = "read"
"#,
        cert = write(dir.path(), "indexer.pem", &cert),
        key = write(dir.path(), "indexer-key.pem", &key),
        ingest = token_hash(INGEST),
        searcher = token_hash(SEARCHER),
    );
    let trusting = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .add_root_certificate(reqwest::Certificate::from_pem(pki.ca_pem.as_bytes()).unwrap())
        .build()
        .unwrap();
    let indexer = |name: &str| {
        Server::start_with_client(
            "indexer",
            &dir.path().join(name),
            &format!("{indexer_config}\n[collector]\nenabled = false\n"),
            "127.0.0.1:0",
            trusting.clone(),
        )
    };
    let a = indexer("a");
    let b = indexer("b");
    assert!(a.url.starts_with("https://"), "{}", a.url);
    let send_to = |server: &Server, stream: &str, token: &str, lines: &[String]| {
        let resp = trusting
            .post(server.at(&format!("/api/v1/{stream}/ingest")))
            .bearer_auth(token)
            .body(crate::support::ndjson(lines))
            .send()
            .unwrap();
        assert_eq!(resp.status(), 200);
    };
    let send =
        |server: &Server, token: &str, lines: &[String]| send_to(server, "logs", token, lines);
    let total = |server: &Server, token: &str, params: &[(&str, &str)]| -> (u16, Value) {
        let resp = trusting
            .get(server.at("/api/v1/logs/search"))
            .bearer_auth(token)
            .query(params)
            .send()
            .unwrap();
        (resp.status().as_u16(), resp.json().unwrap_or(Value::Null))
    };
    // 30 records of namespaces a, b, c: even ones on indexer a, odd ones on b.
    let lines = log_lines();
    let half = |parity: usize| -> Vec<String> {
        lines
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 2 == parity)
            .map(|(_, l)| l.clone())
            .collect()
    };
    send(&a, INGEST, &half(0));
    send(&b, INGEST, &half(1));
    // Audit events of namespaces a and b and a cluster-scoped one, spread over both.
    let audit = audit_lines();
    send_to(&a, "audit", INGEST, &audit[..3]);
    send_to(&b, "audit", INGEST, &audit[3..]);
    for server in [&a, &b] {
        crate::support::wait_until(
            "the indexer's records are searchable",
            crate::support::SEARCHABLE_TIMEOUT,
            || total(server, SEARCHER, &[("limit", "0")]).1["total"] == 15,
        );
    }
    // The indexers do not know the callers' tokens.
    assert_eq!(total(&a, READ_A, &[]).0, 401);
    assert_eq!(total(&b, ADMIN, &[]).0, 401);

    let searcher_config = format!(
        r#"
[query]
indexers = ["{a}", "{b}"]
indexer_token = "{SEARCHER}"
indexer_ca_path = "{ca_path}"

[[auth.tokens]]
name = "team-a"
hash = "{read_a}"
role = "read"
namespaces = ["a"]

[[auth.tokens]]
name = "ops"
hash = "{admin}"
role = "admin"
"#,
        a = a.url,
        b = b.url,
        read_a = token_hash(READ_A),
        admin = token_hash(ADMIN),
    );
    let root = Server::start_role("searcher", &dir.path().join("root"), &searcher_config);
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let get = |token: &str, path: &str, params: &[(&str, &str)]| {
        client
            .get(root.at(path))
            .bearer_auth(token)
            .query(params)
            .send()
            .unwrap()
    };
    let json = |resp: reqwest::blocking::Response| -> Value {
        assert_eq!(resp.status(), 200);
        resp.json().unwrap()
    };

    // Search: the admin sees all 30, the `a` token the 10 `a` records, whatever it asks.
    let all = json(get(ADMIN, "/api/v1/logs/search", &[("limit", "0")]));
    assert_eq!(all["total"], 30, "{all}");
    assert_eq!(all.get("partial"), None, "{all}");
    let scoped = json(get(
        READ_A,
        "/api/v1/logs/search",
        &[("q", "namespace:b OR namespace:a"), ("limit", "100")],
    ));
    assert_eq!(scoped["total"], 10, "{scoped}");
    let namespaces: Vec<&str> = scoped["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["namespace"].as_str().unwrap())
        .collect();
    assert_eq!(namespaces, vec!["a"; 10]);

    // The Elasticsearch API of the searcher, scoped alike: its hits, its aggregations, `_count`
    // and `_cat/indices`.
    let es = |token: &str, path: &str, body: Value| -> Value {
        let resp = client
            .post(root.at(&format!("/api/v1/_elastic/{path}")))
            .bearer_auth(token)
            .json(&body)
            .send()
            .unwrap();
        json(resp)
    };
    let body = json!({
        "size": 100,
        "query": {"bool": {"should": [{"term": {"namespace": "a"}}, {"term": {"namespace": "b"}}]}},
        "aggs": {"ns": {"terms": {"field": "namespace"}}}
    });
    let all = es(ADMIN, "logs/_search", body.clone());
    assert_eq!(all["hits"]["total"]["value"], 20, "{all}");
    assert_eq!(all["_shards"]["failed"], 0, "{all}");
    let scoped = es(READ_A, "logs/_search", body);
    assert_eq!(scoped["hits"]["total"]["value"], 10, "{scoped}");
    let namespaces: BTreeSet<&str> = scoped["hits"]["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["_source"]["namespace"].as_str().unwrap())
        .collect();
    assert_eq!(namespaces, BTreeSet::from(["a"]));
    assert_eq!(
        scoped["aggregations"]["ns"]["buckets"],
        json!([{"key": "a", "doc_count": 10}])
    );
    assert_eq!(es(READ_A, "logs/_count", json!({}))["count"], 10);
    // Every stream: the `a` logs and the three `a` audit events.
    assert_eq!(es(READ_A, "_count", json!({}))["count"], 13);
    let cat = client
        .get(root.at("/api/v1/_elastic/_cat/indices/logs?format=json&h=docs.count"))
        .bearer_auth(READ_A)
        .send()
        .unwrap();
    assert_eq!(json(cat), json!([{"docs.count": "10"}]));

    // Stream statistics, summed over the indexers, scoped by each.
    let docs = |token: &str| -> Value {
        let body = json(get(token, "/api/v1/streams", &[]));
        assert_eq!(body.get("partial"), None, "{body}");
        body["streams"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == "logs")
            .unwrap()["docs"]
            .clone()
    };
    assert_eq!(docs(ADMIN), 30);
    assert_eq!(docs(READ_A), 10);

    // Reports: each indexer's groups, scoped by each; the `a` token sees alice's `a` events.
    let users = |token: &str| -> Vec<(String, u64)> {
        let body = json(get(
            token,
            "/api/v1/audit/reports/top-users",
            &[("start", "2026-11-25T00:00:00Z")],
        ));
        assert_eq!(body.get("partial"), None, "{body}");
        body["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["user"].as_str().unwrap().to_string(),
                    r["count"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    crate::support::wait_for(
        "the audit events counted through the searcher",
        crate::support::SEARCHABLE_TIMEOUT,
        vec![
            ("alice".to_string(), 3),
            ("bob".to_string(), 2),
            ("carol".to_string(), 1),
        ],
        || users(ADMIN),
    );
    assert_eq!(users(READ_A), vec![("alice".to_string(), 3)]);

    // Export: the `a` records of both indexers, and nothing else.
    let text = get(
        READ_A,
        "/api/v1/logs/export",
        &[
            ("q", "*"),
            ("format", "ndjson"),
            ("fields", "namespace,message"),
        ],
    );
    assert_eq!(text.status(), 200);
    let mut exported: Vec<String> = text
        .text()
        .unwrap()
        .lines()
        .map(|l| {
            let record: Value = serde_json::from_str(l).unwrap();
            assert_eq!(record["namespace"], "a", "{record}");
            record["message"].as_str().unwrap().to_string()
        })
        .collect();
    exported.sort();
    let mut expected: Vec<String> = (0..30)
        .filter(|i| i % 3 == 0)
        .map(|i| format!("record {i} of namespace a"))
        .collect();
    expected.sort();
    assert_eq!(exported, expected);

    // Tail: on each indexer a `b` record then an `a` one; the `a` token gets the two `a`
    // records (each indexer's events arrive in order, so its `b` record was passed over).
    let tail = get(
        READ_A,
        "/api/v1/logs/tail",
        &[("q", "*"), ("fields", "message")],
    );
    assert_eq!(tail.status(), 200);
    let live = |i: usize, ns: &str| {
        json!({
            "timestamp": format!("2026-11-25T11:00:{i:02}.000000000Z"),
            "namespace": ns, "level": "info", "message": format!("live {i} {ns}"),
        })
        .to_string()
    };
    send(&a, INGEST, &[live(0, "b"), live(1, "a")]);
    send(&b, INGEST, &[live(2, "b"), live(3, "a")]);
    let mut received = Vec::new();
    for line in BufReader::new(tail).lines() {
        let line = line.unwrap();
        if let Some(data) = line.strip_prefix("data:") {
            let record: Value = serde_json::from_str(data.trim()).unwrap();
            received.push(record["message"].as_str().unwrap().to_string());
            if received.len() == 2 {
                break;
            }
        }
    }
    received.sort();
    assert_eq!(received, ["live 1 a", "live 3 a"]);

    // Without the CA, the same searcher reaches no indexer: the option is what makes it work.
    let untrusting = searcher_config.replace(&format!("indexer_ca_path = \"{ca_path}\""), "");
    let blind = Server::start_role("searcher", &dir.path().join("blind"), &untrusting);
    let resp = client
        .get(blind.at("/api/v1/logs/search"))
        .bearer_auth(ADMIN)
        .send()
        .unwrap();
    assert_eq!(resp.status(), 503);
}

/// Every audit report through a searcher over two indexers is the report of one indexer
/// holding every event: the same rows, in the same order, with the same drill-down queries.
/// With one indexer down, the answer covers the other and says it is partial.
#[test]
fn searcher_reports_are_the_reports_over_every_indexer() {
    let dir = tempfile::tempdir().unwrap();
    let a = Server::start_role("indexer", &dir.path().join("a"), "");
    let b = Server::start_role("indexer", &dir.path().join("b"), "");
    let whole = Server::start_role("indexer", &dir.path().join("whole"), "");
    let mut events: Vec<Value> = (0..420).map(generated_audit_event).collect();
    events.extend(fixture_audit_events());
    // A request's stages (same `auditID`) go to the same indexer, as one API server's would.
    let (even, odd): (Vec<Value>, Vec<Value>) = events.iter().cloned().partition(|e| {
        let id = e["auditID"].as_str().unwrap_or_default();
        id.bytes().map(u64::from).sum::<u64>() % 2 == 0
    });
    assert!(even.len() > 150 && odd.len() > 150);
    ingest_audit(&a, &even);
    ingest_audit(&b, &odd);
    ingest_audit(&whole, &events);
    let range = AUDIT_RANGE;
    let audit_total = |server: &Server| -> u64 {
        let mut params = vec![("q", "*"), ("limit", "0")];
        params.extend(range);
        server.search("audit", &params)["total"].as_u64().unwrap()
    };
    crate::support::wait_until(
        "both indexers hold what the whole one holds",
        std::time::Duration::from_secs(30),
        || {
            let total = audit_total(&whole);
            total > 400 && audit_total(&a) + audit_total(&b) == total
        },
    );

    let config = format!("[query]\nindexers = [\"{}\", \"{}\"]\n", a.url, b.url);
    let root = Server::start_role("searcher", &dir.path().join("root"), &config);
    let report = |server: &Server, name: &str, extra: &[(&str, &str)]| -> Value {
        let mut params: Vec<(&str, &str)> = AUDIT_RANGE.to_vec();
        params.extend_from_slice(extra);
        audit_report(server, name, &params)
    };
    let variants: [&[(&str, &str)]; 3] = [
        &[("limit", "1000")],
        &[("limit", "3")],
        &[
            ("q", "namespace:shop OR namespace:payments"),
            ("group_by", "cluster"),
        ],
    ];
    let mut rows_compared = 0;
    for name in AUDIT_REPORTS {
        for extra in variants {
            let expected = report(&whole, name, extra);
            let merged = report(&root, name, extra);
            assert_eq!(merged["rows"], expected["rows"], "{name} {extra:?}");
            assert_eq!(merged.get("partial"), None, "{name} {extra:?}");
            rows_compared += expected["rows"].as_array().unwrap().len();
        }
    }
    let bursts: &[(&str, &str)] = &[("min", "2"), ("min_resources", "2"), ("window", "1h")];
    let expected = report(&whole, "forbidden-bursts", bursts);
    assert!(!expected["rows"].as_array().unwrap().is_empty());
    assert_eq!(
        report(&root, "forbidden-bursts", bursts)["rows"],
        expected["rows"]
    );
    // Not a comparison of empty answers: the reports people read first have rows, and the
    // counts of top-users add up to the requests the whole indexer holds.
    for name in [
        "top-users",
        "secret-access",
        "exec-attach",
        "deletions",
        "forbidden",
    ] {
        let rows = report(&whole, name, &[("limit", "1000")])["rows"].clone();
        assert!(!rows.as_array().unwrap().is_empty(), "{name} has no rows");
    }
    assert!(rows_compared > 300, "{rows_compared} rows compared");
    let top = report(&root, "top-users", &[("limit", "1000")]);
    let counted: u64 = top["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["count"].as_u64().unwrap())
        .sum();
    let mut complete = vec![
        ("q", "stage:ResponseComplete OR stage:Panic"),
        ("limit", "0"),
    ];
    complete.extend(range);
    assert_eq!(
        counted,
        whole.search("audit", &complete)["total"].as_u64().unwrap()
    );

    // A bad `q` is refused by the searcher itself, as by an indexer.
    let resp = reqwest::blocking::Client::new()
        .get(root.at("/api/v1/audit/reports/top-users"))
        .query(&[("q", "a:(")])
        .send()
        .unwrap();
    let (status, body) = crate::support::json_of(resp);
    assert_eq!(status.as_u16(), 400);
    assert_eq!(body["error"]["code"], "invalid_query");

    // One indexer down: the other's rows, partial.
    b.kill9();
    let partial = report(&root, "top-users", &[("limit", "1000")]);
    assert_eq!(partial["partial"], true);
    assert_eq!(partial["failed_indexers"].as_array().unwrap().len(), 1);
    assert_eq!(
        partial["rows"],
        report(&a, "top-users", &[("limit", "1000")])["rows"]
    );
    a.kill9();
    let resp = reqwest::blocking::Client::new()
        .get(root.at("/api/v1/audit/reports/top-users"))
        .send()
        .unwrap();
    let (status, body) = crate::support::json_of(resp);
    assert_eq!(status.as_u16(), 503, "{body}");
    assert_eq!(body["error"]["code"], "unavailable");
}

/// The time range every audit report of these tests covers.
pub(crate) const AUDIT_RANGE: [(&str, &str); 2] = [
    ("start", "2015-01-01T00:00:00Z"),
    ("end", "2027-01-01T00:00:00Z"),
];

/// Every report of the `audit` stream.
pub(crate) const AUDIT_REPORTS: [&str; 16] = [
    "top-users",
    "top-resources",
    "top-source-ips",
    "top-user-agents",
    "forbidden",
    "forbidden-bursts",
    "secret-access",
    "token-requests",
    "exec-attach",
    "deletions",
    "privileged-pods",
    "anonymous",
    "rbac-changes",
    "impersonation",
    "timeline",
    "latency",
];

/// `GET /api/v1/audit/reports/{name}` with `params`, asserted to answer 200.
pub(crate) fn audit_report(server: &Server, name: &str, params: &[(&str, &str)]) -> Value {
    let resp = reqwest::blocking::Client::new()
        .get(server.at(&format!("/api/v1/audit/reports/{name}")))
        .query(params)
        .send()
        .unwrap();
    let (status, body) = crate::support::json_of(resp);
    assert_eq!(status.as_u16(), 200, "{name} {params:?}: {body}");
    body
}

/// Ingests Kubernetes audit events into the `audit` stream of an indexer (as NDJSON, what
/// the collector's webhook forwards).
pub(crate) fn ingest_audit(server: &Server, events: &[Value]) {
    let lines: Vec<String> = events.iter().map(Value::to_string).collect();
    let answer = server.ingest_plain("audit", &lines);
    assert_eq!(answer["accepted"], lines.len(), "{answer}");
}

/// The real audit events of `tests/fixtures/audit` (exec, attach, privileged pods, RBAC,
/// secrets, an anonymous request, a namespace deleted).
fn fixture_audit_events() -> Vec<Value> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/audit");
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    names.sort();
    let mut events = Vec::new();
    for path in names {
        for line in std::fs::read_to_string(&path).unwrap().lines() {
            if line.trim().is_empty() {
                continue;
            }
            let value: Value = serde_json::from_str(line).unwrap();
            match value["items"].as_array() {
                Some(items) => events.extend(items.iter().cloned()),
                None => events.push(value),
            }
        }
    }
    assert!(events.len() >= 10);
    events
}

/// A generated audit event, one of a mix of people, controllers, nodes and anonymous callers
/// reading, writing, deleting, exec'ing and being denied, over an hour.
pub(crate) fn generated_audit_event(i: u64) -> Value {
    let users = [
        "alice",
        "bob",
        "carol",
        "system:serviceaccount:kube-system:deployment-controller",
        "system:node:node-1",
        "system:anonymous",
    ];
    let verbs = [
        "get", "list", "watch", "create", "update", "patch", "delete",
    ];
    let resources = [
        ("pods", ""),
        ("secrets", ""),
        ("configmaps", ""),
        ("deployments", "apps"),
        ("roles", "rbac.authorization.k8s.io"),
        ("serviceaccounts", ""),
    ];
    let namespaces = ["shop", "payments", "kube-system"];
    let codes = [200, 200, 200, 201, 403, 404, 409, 500];
    let user = users[(i % 6) as usize];
    let verb = verbs[(i / 3 % 7) as usize];
    let (resource, group) = resources[(i / 5 % 6) as usize];
    let namespace = namespaces[(i / 7 % 3) as usize];
    let code = codes[(i / 2 % 8) as usize];
    let (subresource, stage) = if resource == "pods" && i.is_multiple_of(4) {
        ("exec", "ResponseStarted")
    } else if resource == "serviceaccounts" && verb == "create" {
        ("token", "ResponseComplete")
    } else {
        ("", "ResponseComplete")
    };
    let groups = if user.starts_with("system:node:") {
        json!(["system:nodes", "system:authenticated"])
    } else if user == "system:anonymous" {
        json!(["system:unauthenticated"])
    } else {
        json!(["system:authenticated"])
    };
    let second = i * 7;
    let received = format!(
        "2026-11-25T10:{:02}:{:02}.{:06}Z",
        second / 60 % 60,
        second % 60,
        i
    );
    let done = format!(
        "2026-11-25T10:{:02}:{:02}.{:06}Z",
        second / 60 % 60,
        second % 60,
        i + 1000 * (i % 97)
    );
    let mut object = json!({
        "resource": resource, "namespace": namespace, "name": format!("obj-{}", i % 9),
        "apiVersion": "v1",
    });
    if !group.is_empty() {
        object["apiGroup"] = json!(group);
    }
    if !subresource.is_empty() {
        object["subresource"] = json!(subresource);
    }
    let agent = [
        "kubectl/v1.31.0",
        "kube-controller-manager/v1.31.0",
        "curl/8.5.0",
    ][(i % 3) as usize];
    let mut event = json!({
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata",
        "auditID": format!("gen-{i}"), "stage": stage, "verb": verb,
        "requestURI": format!("/api/v1/namespaces/{namespace}/{resource}/obj-{}", i % 9),
        "user": {"username": user, "groups": groups},
        "sourceIPs": [format!("10.0.{}.{}", i % 3, i % 5)],
        "userAgent": agent,
        "objectRef": object,
        "responseStatus": {"code": code},
        "requestReceivedTimestamp": received,
        "stageTimestamp": done,
    });
    if code == 403 {
        event["annotations"] = json!({"authorization.k8s.io/decision": "forbid",
            "authorization.k8s.io/reason": "RBAC: access denied"});
    }
    if i.is_multiple_of(13) {
        event["impersonatedUser"] = json!({"username": "dave", "groups": ["system:authenticated"]});
    }
    event
}
