//! Distributed search: a searcher root over two indexers.

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

    use crate::auth::{log_lines, token_hash, write, Pki, ADMIN, INGEST, READ_A};

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
    let send = |server: &Server, token: &str, lines: &[String]| {
        let resp = trusting
            .post(server.at("/api/v1/logs/ingest"))
            .bearer_auth(token)
            .body(crate::support::ndjson(lines))
            .send()
            .unwrap();
        assert_eq!(resp.status(), 200);
    };
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
