//! The shared tier with real servers: a `trawl indexer` process publishing its splits to a
//! real S3-protocol server (`s3s-fs`) and a real PostgreSQL metastore, checked with
//! `trawl storage splits` and `trawl storage check`.
//!
//! - every sealed split is uploaded once and published with its exact document count;
//! - the S3 server stopped for 30 s while ingest goes on: ingest is acknowledged and searchable, uploads
//!   fail and are retried, and once the server is back everything is published;
//! - PostgreSQL away while a split waits to be published, and the indexer restarted meanwhile
//!   (it starts and serves): published once, when PostgreSQL is back;
//! - a merge publishes its output and marks its inputs in one step; the janitor removes the
//!   marked objects and rows; a restart uploads nothing again;
//! - the indexer aborted between an upload and its publish: the split is published at the
//!   restart, once;
//! - the indexer's volume deleted: what was published stays published (nothing is marked
//!   for the splits the new volume does not have), and the janitor collects the staged object
//!   whose split was lost with the volume; the cluster's merger merges the lost volume's
//!   splits;
//! - two indexers and two searchers on the same tier: every answer exact from either searcher,
//!   warm searches fetch nothing, a searcher's cache deleted while it serves, a cluster merge
//!   of both indexers' splits while searches run (the merger keeps the output, the other
//!   drops its copies), and an indexer's volume lost while it is down (its sealed records stay
//!   searchable, and exports through either searcher hold every record once);
//! - an indexer killed while it holds records unpublished (in its hot index and in a split the
//!   S3 server was away for) comes back with its volume after its collector moved on: it
//!   removes those records, which the new owner read again, and every line is there once;
//! - an indexer cut off from its collector (a proxy answering 502) while it runs: told by the
//!   metastore that the other indexer took its sources over, it drops the unpublished copies
//!   from its hot index;
//!   then the other is killed, the sources come back to the first, and the other, back with
//!   its volume, drops its own unpublished copies.
//! - an indexer keeps local copies of what it published up to `local_splits_max_bytes`, the
//!   oldest dropped first, none with 0, a crash between the two records of a drop marks
//!   nothing; a searcher still answers for every record, and still does after the cluster's
//!   merger was aborted between its merge's publish and keeping the output.

#[path = "../../storage/tests/support/servers.rs"]
pub(crate) mod servers;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use reqwest::blocking::Client;
use serde_json::{json, Value};

use crate::collector::{
    assert_each_line_once, collector_config, pod_files_named, write_lines, PodFile,
};
use crate::fault_proxy::{FaultProxy, Mode};
use crate::support::gen;
use crate::support::{crash_at, free_port, wait_for, wait_until, Server};
use servers::{Postgres, S3Server};

const BATCH: u64 = 100;
const SEALED: &str = "trawl_indexer_splits_sealed_total{stream=\"logs\"}";
const UPLOAD_ERRORS: &str = "trawl_storage_upload_errors_total";
const UPLOADS: &str = "trawl_storage_uploads_total";

/// The indexer's configuration: one split per batch of `BATCH`, merges from `merge_min`
/// splits, the publisher every 200 ms and a janitor that removes at once.
pub(crate) fn config(pg: &Postgres, s3: &S3Server, merge_min: u32) -> String {
    format!(
        "[indexer]\nid = \"indexer-a\"\ncommit_interval_ms = 100\nsplit_max_docs = {BATCH}\n\
         split_max_age_secs = 3600\nmerge_min_splits = {merge_min}\njanitor_interval_secs = 1\n\
         [storage]\nuri = \"s3://{bucket}/cluster-a\"\n\
         [storage.s3]\nendpoint = \"{endpoint}\"\nregion = \"us-east-1\"\n\
         access_key_id = \"{key}\"\nsecret_access_key = \"{secret}\"\n\
         [metastore]\nuri = \"{uri}\"\npoll_interval_ms = 200\ngrace_secs = 0\n",
        bucket = servers::S3_BUCKET,
        endpoint = s3.endpoint(),
        key = servers::S3_ACCESS_KEY,
        secret = servers::S3_SECRET_KEY,
        uri = pg.uri(),
    )
}

/// [`config`]'s `template` for the indexer `id`, merging from `merge_min` splits.
fn indexer_config(template: &str, id: &str, merge_min: u32) -> String {
    template
        .replace("id = \"indexer-a\"", &format!("id = \"{id}\""))
        .replace(
            "merge_min_splits = 1000",
            &format!("merge_min_splits = {merge_min}"),
        )
}

/// A searcher `id` on the tier of [`config`]'s `template`, over `indexers`.
fn searcher_config(template: &str, id: &str, indexers: &[&str]) -> String {
    format!(
        "{}\n[query]\nindexers = {indexers:?}\n",
        indexer_config(template, id, 1000).replace("[indexer]\nid", "[indexer]\n# searcher\nid"),
    )
}

/// `trawl storage <args> -c <config>`: exit code and standard output.
fn storage_cmd(config_path: &Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_trawl"))
        .arg("storage")
        .args(args)
        .arg("-c")
        .arg(config_path)
        .env("TRAWL_LOG", "warn")
        .output()
        .expect("trawl storage");
    assert!(
        out.status.code().is_some(),
        "trawl storage {args:?} died: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// The rows `trawl storage splits --state <state>` prints.
fn splits(config_path: &Path, state: &str) -> Vec<Value> {
    let (code, out) = storage_cmd(config_path, &["splits", "--state", state]);
    assert_eq!(code, 0, "trawl storage splits: {out}");
    out.lines()
        .map(|l| serde_json::from_str(l).expect("an NDJSON row"))
        .collect()
}

fn docs(rows: &[Value]) -> u64 {
    rows.iter().map(|r| r["docs"].as_u64().unwrap()).sum()
}

/// `trawl storage check`: its report, asserted to say ok.
fn check_ok(config_path: &Path) -> Value {
    let (code, out) = storage_cmd(config_path, &["check"]);
    let report: Value = serde_json::from_str(&out).expect("a JSON report");
    assert_eq!((code, report["ok"].as_bool()), (0, Some(true)), "{report}");
    report
}

/// Ingests batch `b` (records `b*BATCH..(b+1)*BATCH`) and waits until it is sealed
/// (`sealed` splits in all since the process started).
fn ingest_batch(server: &Server, b: u64, sealed: u64) {
    let lines = gen::lines(b * BATCH..(b + 1) * BATCH, &format!("tier{b}"));
    let answer = server.ingest_zstd("logs", &lines);
    assert_eq!(answer["accepted"], BATCH, "batch {b}: {answer}");
    wait_until(
        &format!("batch {b} is sealed"),
        Duration::from_secs(30),
        || server.metric(SEALED) == Some(sealed as f64),
    );
}

fn wait_published(config_path: &Path, what: &str, docs_total: u64, count: usize) -> Vec<Value> {
    let mut last = Vec::new();
    wait_until(what, Duration::from_secs(60), || {
        last = splits(config_path, "published");
        docs(&last) == docs_total && last.len() == count
    });
    last
}

/// Starts the indexer with the crash point after an upload armed, ingests batch `b` and waits
/// for the abort there; disarms it.
fn crash_after_upload(data: &Path, faults: &Path, config: &str, b: u64) {
    crash_at(
        "indexer",
        data,
        faults,
        "crash_after_upload",
        config,
        |server| {
            let lines = gen::lines(b * BATCH..(b + 1) * BATCH, &format!("tier{b}"));
            assert_eq!(server.ingest_zstd("logs", &lines)["accepted"], BATCH);
        },
    );
}

#[test]
fn splits_are_published_to_s3_and_postgres_through_outages_merges_crashes_and_a_lost_volume() {
    if !servers::postgres_available() || !servers::s3_available() {
        return;
    }
    let mut pg = Postgres::start();
    let mut s3 = S3Server::start();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let config_path = tmp.path().join("storage.toml");
    std::fs::write(&config_path, config(&pg, &s3, 1000)).unwrap();

    // Four sealed splits: four objects, four published rows, 400 documents.
    let server = Server::start_role("indexer", &data, &config(&pg, &s3, 1000));
    for b in 0..4 {
        ingest_batch(&server, b, b + 1);
    }
    let published = wait_published(&config_path, "4 splits published", 400, 4);
    assert!(published
        .iter()
        .all(|r| r["indexer"] == "indexer-a" && r["stream"] == "logs"));
    let report = check_ok(&config_path);
    assert_eq!(report["objects"], 4);
    let objects = s3
        .root()
        .join(servers::S3_BUCKET)
        .join("cluster-a/splits/logs");
    let files: BTreeSet<String> = std::fs::read_dir(&objects)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let ids: BTreeSet<String> = published
        .iter()
        .map(|r| format!("{}.split", r["split_id"].as_str().unwrap()))
        .collect();
    assert_eq!(
        files, ids,
        "one object per published split, named by its id"
    );

    // The S3 server away for 30 s (longer than one upload's own retries, 30 s at most): ingest
    // goes on and is searchable; uploads fail and are retried by the next rounds.
    let outage = std::time::Instant::now();
    s3.stop();
    ingest_batch(&server, 4, 5);
    ingest_batch(&server, 5, 6);
    server.wait_total("*", 600);
    wait_until("an upload failed", Duration::from_secs(120), || {
        server.metric(UPLOAD_ERRORS).unwrap_or(0.0) >= 1.0
    });
    // The outage is the scenario, not a wait for an outcome: it lasts 30 s whatever happens.
    std::thread::sleep(Duration::from_secs(30).saturating_sub(outage.elapsed()));
    assert_eq!(docs(&splits(&config_path, "published")), 400);
    server.wait_total("*", 600);
    s3.start_again();
    wait_published(&config_path, "6 splits published after the outage", 600, 6);
    check_ok(&config_path);

    // PostgreSQL restarted while a split waits to be published: published once it is back.
    pg.stop();
    ingest_batch(&server, 6, 7);
    wait_until("a metastore call failed", Duration::from_secs(60), || {
        server.metric("trawl_metastore_errors_total").unwrap_or(0.0) >= 1.0
    });
    // An indexer (re)started while PostgreSQL is away starts, serves and takes ingest.
    server.stop();
    let server = Server::start_role("indexer", &data, &config(&pg, &s3, 1000));
    server.wait_total("*", 700);
    wait_until("the metastore found away", Duration::from_secs(60), || {
        server.metric("trawl_metastore_errors_total").unwrap_or(0.0) >= 1.0
    });
    pg.start_again();
    wait_published(&config_path, "7 splits published after the restart", 700, 7);
    check_ok(&config_path);
    server.stop();

    // Merges on: one output published, its seven inputs marked in the same step, then removed
    // by the janitor (grace 0). The restart uploads only the merge's output.
    let server = Server::start_role("indexer", &data, &config(&pg, &s3, 2));
    let merged = wait_published(&config_path, "the merge published", 700, 1);
    assert_eq!(merged[0]["merge_level"], 1);
    let parents: BTreeSet<String> = merged[0]["parents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_string())
        .collect();
    assert_eq!(parents.len(), 7);
    wait_until(
        "the janitor removed the inputs",
        Duration::from_secs(60),
        || splits(&config_path, "marked").is_empty(),
    );
    let report = check_ok(&config_path);
    assert_eq!(report["objects"], 1);
    assert_eq!(report["rows"]["published"], 1);
    assert_eq!(server.metric(UPLOADS), Some(1.0), "nothing uploaded twice");
    server.wait_total("*", 700);
    server.stop();

    // Aborted between the upload of a new split and its publish: staged, then published by
    // the restart, once.
    let faults = tmp.path().join("faults");
    let indexer_config = config(&pg, &s3, 1000);
    crash_after_upload(&data, &faults, &indexer_config, 7);
    let staged = splits(&config_path, "staged");
    assert_eq!((staged.len(), docs(&staged)), (1, BATCH));
    let server = Server::start_role("indexer", &data, &config(&pg, &s3, 1000));
    wait_published(&config_path, "the staged split published", 800, 2);
    assert!(splits(&config_path, "staged").is_empty());
    server.wait_total("*", 800);
    check_ok(&config_path);

    // Once more to the crash point, then the volume is lost: the new, empty data directory
    // leaves what was published alone, and the janitor collects the orphaned staged object.
    server.stop();
    crash_after_upload(&data, &faults, &indexer_config, 8);
    assert_eq!(splits(&config_path, "staged").len(), 1);
    std::fs::remove_dir_all(&data).unwrap();
    let server = Server::start_role("indexer", &data, &config(&pg, &s3, 1000));
    wait_until(
        "the janitor collected the staged object",
        Duration::from_secs(60),
        || splits(&config_path, "staged").is_empty(),
    );
    let published = splits(&config_path, "published");
    assert_eq!(
        (published.len(), docs(&published)),
        (2, 800),
        "nothing was unpublished"
    );
    let report = check_ok(&config_path);
    assert_eq!(report["objects"], 2);
    // The fresh indexer holds nothing of it: the shared tier does.
    server.wait_total("*", 0);
    server.stop();

    // Merges on: the cluster's merger merges the lost volume's two splits too, and keeps the
    // output as its own split.
    let server = Server::start_role("indexer", &data, &config(&pg, &s3, 2));
    let merged = wait_published(&config_path, "the lost volume's splits merged", 800, 1);
    assert_eq!(merged[0]["merge_level"], 2);
    assert_eq!(merged[0]["parents"].as_array().unwrap().len(), 2);
    server.wait_total("*", 800);
    server.stop();
}

/// Ingests `lines` records `range` with `marker` and waits until `sealed` splits were sealed by
/// the process (`None`: the batch stays in the hot index).
fn ingest_range(server: &Server, range: std::ops::Range<u64>, marker: &str, sealed: Option<u64>) {
    let n = range.end - range.start;
    let answer = server.ingest_zstd("logs", &gen::lines(range, marker));
    assert_eq!(answer["accepted"], n, "{marker}: {answer}");
    if let Some(sealed) = sealed {
        wait_until(&format!("{marker} sealed"), Duration::from_secs(30), || {
            server.metric(SEALED) == Some(sealed as f64)
        });
    }
}

/// Every record of the logs stream through `searcher`: (total, distinct timestamps, whether
/// the answer says it is partial).
fn search_all(searcher: &Server) -> (u64, usize, bool) {
    let answer = searcher.search(
        "logs",
        &[("q", "*"), ("limit", "10000"), ("fields", "timestamp")],
    );
    let hits = answer["hits"].as_array().unwrap();
    let distinct: BTreeSet<&str> = hits
        .iter()
        .map(|h| h["timestamp"].as_str().unwrap())
        .collect();
    assert_eq!(
        hits.len(),
        distinct.len(),
        "duplicate hits among {} (total {}, partial {})",
        hits.len(),
        answer["total"],
        answer["partial"]
    );
    let found = (
        answer["total"].as_u64().unwrap(),
        distinct.len(),
        answer["partial"].as_bool().unwrap_or(false),
    );
    // The Elasticsearch API of the same searcher finds the same, a missing part counted as a
    // failed shard.
    let (status, answer) = crate::support::json_of(
        Client::new()
            .post(searcher.at("/api/v1/_elastic/logs/_search"))
            .json(&json!({
                "size": 10000, "_source": ["timestamp"], "sort": [{"@timestamp": "asc"}]
            }))
            .send()
            .unwrap(),
    );
    assert_eq!(status.as_u16(), 200, "{answer}");
    let hits = answer["hits"]["hits"].as_array().unwrap();
    let stamps: Vec<&str> = hits
        .iter()
        .map(|h| h["_source"]["timestamp"].as_str().unwrap())
        .collect();
    assert!(
        stamps.windows(2).all(|w| w[0] < w[1]),
        "order or duplicates: {answer}"
    );
    let es = (
        answer["hits"]["total"]["value"].as_u64().unwrap(),
        stamps.len(),
        answer["_shards"]["failed"].as_u64().unwrap() > 0,
    );
    assert_eq!(es, found, "the Elasticsearch API: {}", answer["_shards"]);
    found
}

/// Exports every record of the logs stream through `searcher` as NDJSON, CSV and Arrow, and
/// returns how many there are, once each checked to be the same set in all three formats with
/// no record twice.
fn export_all(searcher: &Server) -> usize {
    let client = Client::new();
    let get = |format: &str| {
        let response = client
            .get(searcher.at("/api/v1/logs/export"))
            .query(&[
                ("q", "*"),
                ("format", format),
                ("fields", "timestamp,message"),
            ])
            .send()
            .unwrap();
        let status = response.status();
        let body = response.bytes().unwrap();
        assert_eq!(status, 200, "{format}: {}", String::from_utf8_lossy(&body));
        body
    };
    let ndjson = get("ndjson");
    let mut from_ndjson: Vec<String> = std::str::from_utf8(&ndjson)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["message"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    from_ndjson.sort();
    let distinct: BTreeSet<&String> = from_ndjson.iter().collect();
    assert_eq!(distinct.len(), from_ndjson.len(), "a record exported twice");

    let csv = get("csv");
    let csv = std::str::from_utf8(&csv).unwrap();
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("timestamp,message"));
    assert_eq!(lines.count(), from_ndjson.len(), "csv rows");

    let arrow = get("arrow");
    let reader =
        arrow_ipc::reader::StreamReader::try_new(std::io::Cursor::new(arrow), None).unwrap();
    let mut from_arrow = Vec::new();
    for batch in reader {
        let batch = batch.unwrap();
        let messages = batch
            .column_by_name("message")
            .unwrap()
            .as_any()
            .downcast_ref::<arrow_array::StringArray>()
            .unwrap();
        from_arrow.extend(messages.iter().map(|m| m.unwrap().to_string()));
    }
    from_arrow.sort();
    assert_eq!(from_arrow, from_ndjson, "arrow and ndjson exports differ");
    from_ndjson.len()
}

/// `GET /api/v1/streams` through `searcher`: the logs stream's documents, and the whole answer.
fn stream_docs(searcher: &Server, token: Option<&str>) -> (u64, Value) {
    let mut request = Client::new().get(searcher.at("/api/v1/streams"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let answer: Value = request.send().unwrap().json().unwrap();
    let docs = answer["streams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "logs")
        .map(|s| s["docs"].as_u64().unwrap())
        .unwrap_or_else(|| panic!("no logs stream in {answer}"));
    (docs, answer)
}

#[test]
fn two_searchers_answer_exactly_over_two_indexers_a_merge_and_a_lost_indexer_volume() {
    if !servers::postgres_available() || !servers::s3_available() {
        return;
    }
    let mut pg = Postgres::start();
    let mut s3 = S3Server::start();
    let tmp = tempfile::tempdir().unwrap();
    let template = config(&pg, &s3, 1000);
    let shared = |id: &str, merge_min: u32| indexer_config(&template, id, merge_min);
    let config_path = tmp.path().join("storage.toml");
    std::fs::write(&config_path, shared("cli", 1000)).unwrap();
    for dir in ["a", "b", "s1", "s2", "s3", "s4", "s5", "s6"] {
        std::fs::create_dir_all(tmp.path().join(dir)).unwrap();
    }
    let data_a = tmp.path().join("a/data");
    let data_b = tmp.path().join("b/data");
    let a = Server::start_role("indexer", &data_a, &shared("indexer-a", 1000));
    let b = Server::start_role("indexer", &data_b, &shared("indexer-b", 1000));
    // Three sealed splits on each, and 50 records in a's hot index.
    for i in 0..3 {
        ingest_range(
            &a,
            i * BATCH..(i + 1) * BATCH,
            &format!("a{i}"),
            Some(i + 1),
        );
        ingest_range(
            &b,
            (3 + i) * BATCH..(4 + i) * BATCH,
            &format!("b{i}"),
            Some(i + 1),
        );
    }
    ingest_range(&a, 600..650, "ahot", None);
    a.wait_total("*", 350);
    wait_published(&config_path, "six splits published", 600, 6);

    let (url_a, url_b) = (a.url.clone(), b.url.clone());
    let searcher_config = |n: &str| searcher_config(&template, n, &[&url_a, &url_b]);
    let s1 = Server::start_role(
        "searcher",
        &tmp.path().join("s1/data"),
        &searcher_config("s1"),
    );
    let s2 = Server::start_role(
        "searcher",
        &tmp.path().join("s2/data"),
        &searcher_config("s2"),
    );
    for s in [&s1, &s2] {
        assert_eq!(search_all(s), (650, 650, false));
        assert_eq!(
            s.total("ahot", &[]),
            50,
            "the hot records come from the indexer"
        );
        assert_eq!(s.total("b1", &[]), 100);
        // A time range across both indexers' splits: records 150..450.
        let range = [("start", gen::ts(150)), ("end", gen::ts(450))];
        let range: Vec<(&str, &str)> = range.iter().map(|(k, v)| (*k, v.as_str())).collect();
        assert_eq!(s.total("*", &range), 300);
        // An export holds every record once: the published ones from the shared tier, the
        // rest from the indexers.
        assert_eq!(export_all(s), 650);
        // The statistics count the published splits once, from the shared tier, and each
        // indexer's rest (a's 50 hot records).
        let (docs, answer) = stream_docs(s, None);
        assert_eq!(docs, 650, "{answer}");
        assert_eq!(
            answer["shared_tier"],
            json!({"ok": true, "docs": 600}),
            "{answer}"
        );
        assert_eq!(answer["indexers"][0]["docs"], 50, "{answer}");
        assert_eq!(answer["indexers"][1]["docs"], 0, "{answer}");
        assert_eq!(answer["partial"], Value::Null, "{answer}");
    }
    // Each searcher opened every published split by range (its tail: one request), searched
    // it so, and then fetched it whole into its cache, once, in the background.
    for s in [&s1, &s2] {
        wait_until(
            "the splits read by range cached",
            Duration::from_secs(60),
            || s.metric("trawl_storage_cache_fills_pending") == Some(0.0),
        );
        assert_eq!(s.metric("trawl_storage_ranged_opens_total"), Some(6.0));
        assert_eq!(
            s.metric("trawl_storage_ranged_open_requests_total"),
            Some(6.0)
        );
        assert_eq!(s.metric("trawl_storage_downloads_total"), Some(6.0));
    }
    // A searcher whose first act is an export of more records than
    // `export_whole_min_records`: it counts the matches over the splits opened by range (their
    // tails and postings), then downloads them whole and exports from its cache rather than a
    // request per doc-store block. Every record once, in every format.
    let s5 = Server::start_role(
        "searcher",
        &tmp.path().join("s5/data"),
        &searcher_config("s5").replacen(
            "[storage]\n",
            "[storage]\nexport_whole_min_records = 100\n",
            1,
        ),
    );
    assert_eq!(export_all(&s5), 650);
    assert_eq!(s5.metric("trawl_storage_ranged_opens_total"), Some(6.0));
    assert_eq!(s5.metric("trawl_storage_downloads_total"), Some(6.0));
    drop(s5);
    // A searcher whose first act is an export of fewer records than that: it exports from
    // the splits opened by range; every record once, in every format.
    let s6 = Server::start_role(
        "searcher",
        &tmp.path().join("s6/data"),
        &searcher_config("s6"),
    );
    assert_eq!(export_all(&s6), 650);
    assert_eq!(s6.metric("trawl_storage_ranged_opens_total"), Some(6.0));
    assert!(s6.metric("trawl_storage_range_reads_total").unwrap_or(0.0) > 0.0);
    drop(s6);
    assert_eq!(search_all(&s1), (650, 650, false));
    assert_eq!(
        s1.metric("trawl_storage_downloads_total"),
        Some(6.0),
        "warm: no download"
    );
    assert_eq!(
        s1.metric("trawl_storage_ranged_opens_total"),
        Some(6.0),
        "warm: reopened from the cache"
    );
    assert_eq!(s1.metric("trawl_storage_cache_hits_total"), Some(6.0));
    // The published list is kept between searches once the searcher listens for changes.
    let hits = "trawl_storage_published_list_hits_total";
    let misses = "trawl_storage_published_list_misses_total";
    wait_until(
        "s1 keeps the published list",
        Duration::from_secs(30),
        || {
            assert_eq!(search_all(&s1), (650, 650, false));
            s1.metric(hits).unwrap_or(0.0) > 0.0
        },
    );
    let misses_before_merge = s1.metric(misses).unwrap_or(0.0);
    // s2's cache deleted while it serves: its open splits answer on, and it fetches again
    // what it opens anew.
    std::fs::remove_dir_all(tmp.path().join("s2/data/cache")).unwrap();
    assert_eq!(search_all(&s2), (650, 650, false));

    // A namespace-scoped token at a searcher: its own search of the shared tier (600 of the
    // records) and the indexers' part (a's hot records) both keep to the namespace, whatever
    // the query asks.
    let ns = gen::namespace(0);
    let other = gen::namespace(1);
    let expected = (0..650u64).filter(|i| gen::namespace(*i) == ns).count() as u64;
    let scoped = Server::start_role(
        "searcher",
        &tmp.path().join("s4/data"),
        &format!(
            r#"{}
[[auth.tokens]]
name = "team"
hash = "{}"
role = "read"
namespaces = ["{ns}"]
"#,
            searcher_config("s4"),
            crate::auth::token_hash(crate::auth::READ_A)
        ),
    );
    let scoped_total = |q: &str| -> Value {
        Client::new()
            .get(format!("{}/api/v1/logs/search", scoped.url))
            .query(&[("q", q), ("limit", "0")])
            .bearer_auth(crate::auth::READ_A)
            .send()
            .unwrap()
            .json()
            .unwrap()
    };
    let answer = scoped_total("*");
    assert_eq!(answer["total"], expected, "{answer}");
    // Not partial: the shared tier answered its part (the indexers leave those splits out).
    assert_eq!(answer["partial"], Value::Null, "{answer}");
    let answer = scoped_total(&format!("namespace:{other}"));
    assert_eq!(answer["total"], 0, "{answer}");
    let exported = Client::new()
        .get(format!("{}/api/v1/logs/export", scoped.url))
        .query(&[("q", "*"), ("format", "ndjson")])
        .bearer_auth(crate::auth::READ_A)
        .send()
        .unwrap()
        .text()
        .unwrap();
    let namespaces: Vec<String> = exported
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["namespace"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(namespaces.len() as u64, expected);
    assert!(namespaces.iter().all(|n| *n == ns), "{namespaces:?}");
    let (docs, answer) = stream_docs(&scoped, Some(crate::auth::READ_A));
    assert_eq!(docs, expected, "{answer}");
    drop(scoped);

    // Both restarted with merges on: the one that takes the cluster's merge lease merges the
    // six published splits of both into one and keeps it as its own local split; the other
    // drops its copies of its three. Every answer during and after is exact.
    let (a_url, b_url) = (a.url.clone(), b.url.clone());
    a.stop();
    b.stop();
    let restart = |data: &Path, id: &str, url: &str| {
        Server::start_listening(
            "indexer",
            data,
            &format!("{}\n\n[collector]\nenabled = false\n", shared(id, 2)),
            url.trim_start_matches("http://"),
        )
    };
    let a = restart(&data_a, "indexer-a", &a_url);
    let b = restart(&data_b, "indexer-b", &b_url);
    let mut merged = Vec::new();
    wait_until(
        "the cluster's merge published",
        Duration::from_secs(60),
        || {
            for s in [&s1, &s2] {
                assert_eq!(search_all(s), (650, 650, false), "exact while merging");
            }
            merged = splits(&config_path, "published");
            merged.len() == 1
        },
    );
    assert_eq!(
        (&merged[0]["merge_level"], &merged[0]["docs"]),
        (&json!(1), &json!(600))
    );
    assert_eq!(merged[0]["parents"].as_array().unwrap().len(), 6);
    let (merger, other, merger_data, other_data) = if merged[0]["indexer"] == "indexer-a" {
        (&a, &b, &data_a, &data_b)
    } else {
        (&b, &a, &data_b, &data_a)
    };
    wait_until(
        "the other dropped its merged copies",
        Duration::from_secs(60),
        || local_split_ids(other_data).is_empty(),
    );
    let output = BTreeSet::from([merged[0]["split_id"].as_str().unwrap().to_string()]);
    wait_until(
        "the merger keeps the merge's output",
        Duration::from_secs(30),
        || local_split_ids(merger_data) == output,
    );
    assert_eq!(other.metric(LOCAL_DROPPED), Some(3.0));
    assert_eq!(
        (
            merger.metric("trawl_storage_cluster_merges_total"),
            merger.metric("trawl_storage_cluster_merge_inputs_total"),
            other.metric("trawl_storage_cluster_merges_total"),
        ),
        (Some(1.0), Some(6.0), Some(0.0))
    );
    // a keeps its 50 hot records; the merger holds the 600 merged ones.
    assert_eq!(a.total("*", &[]) + b.total("*", &[]), 650);
    // The merge's publish was notified: s1 read the list again.
    wait_until(
        "s1 sees the merge notified",
        Duration::from_secs(30),
        || {
            assert_eq!(search_all(&s1), (650, 650, false));
            s1.metric(misses).unwrap_or(0.0) > misses_before_merge
        },
    );

    // PostgreSQL away: the searchers answer from the indexers alone (each holds its own
    // splits) and say the answer is partial; exact and whole again once it is back.
    pg.stop();
    for s in [&s1, &s2] {
        // Its kept list is dropped once it sees the connection lost.
        wait_until(
            "the searcher stops listening",
            Duration::from_secs(30),
            || s.metric("trawl_storage_published_list_listening") == Some(0.0),
        );
        let answer = s.search("logs", &[("q", "*"), ("limit", "0")]);
        assert_eq!(answer["total"], 650, "{answer}");
        assert_eq!(answer["partial"], true, "{answer}");
        assert_eq!(
            answer["failed_indexers"][0]["indexer"], "shared tier",
            "{answer}"
        );
        // The statistics are the indexers' own (each holds its splits), said to be partial.
        let (docs, answer) = stream_docs(s, None);
        assert_eq!(docs, 650, "{answer}");
        assert_eq!(answer["partial"], true, "{answer}");
        assert_eq!(answer["shared_tier"]["ok"], false, "{answer}");
        // An export cannot say it is partial: it is refused.
        let response = Client::new()
            .get(s.at("/api/v1/logs/export"))
            .query(&[("q", "*")])
            .send()
            .unwrap();
        assert_eq!(response.status(), 503);
        let error: Value = response.json().unwrap();
        assert_eq!(error["error"]["code"], "unavailable", "{error}");
    }
    pg.start_again();
    for s in [&s1, &s2] {
        assert_eq!(search_all(s), (650, 650, false));
    }
    assert_eq!(export_all(&s1), 650);

    // Object storage away for a searcher that has opened nothing yet: the published splits
    // are listed but cannot be fetched, so the indexers are asked again for everything they
    // hold; the answer is exact and says the shared tier failed.
    s3.stop();
    let s3_searcher = Server::start_role(
        "searcher",
        &tmp.path().join("s3/data"),
        &searcher_config("s3"),
    );
    let answer = s3_searcher.search("logs", &[("q", "*"), ("limit", "0")]);
    assert_eq!(answer["total"], 650, "{answer}");
    assert_eq!(answer["partial"], true, "{answer}");
    assert_eq!(
        answer["failed_indexers"][0]["indexer"], "shared tier",
        "{answer}"
    );
    // So does its Elasticsearch API: every record from the indexers' own copies, the shared
    // tier a failed shard.
    let (status, answer) = crate::support::json_of(
        Client::new()
            .post(s3_searcher.at("/api/v1/_elastic/logs/_search"))
            .json(&json!({"size": 0}))
            .send()
            .unwrap(),
    );
    assert_eq!(status.as_u16(), 200, "{answer}");
    assert_eq!(answer["hits"]["total"]["value"], 650, "{answer}");
    assert_eq!(answer["_shards"]["failed"], 1, "{answer}");
    assert_eq!(
        answer["_shards"]["failures"][0]["node"], "shared tier",
        "{answer}"
    );
    s3.start_again();
    assert_eq!(search_all(&s3_searcher), (650, 650, false));
    drop(s3_searcher);

    // a's volume lost while it is down: its sealed records stay searchable from the shared
    // tier (the answer says a did not answer); its hot records are gone with the volume.
    let a_url = a.url.clone();
    a.kill9();
    std::fs::remove_dir_all(&data_a).unwrap();
    for s in [&s1, &s2] {
        assert_eq!(search_all(s), (600, 600, true));
    }
    let a = Server::start_listening(
        "indexer",
        &data_a,
        &format!(
            "{}\n\n[collector]\nenabled = false\n",
            shared("indexer-a", 1000)
        ),
        a_url.trim_start_matches("http://"),
    );
    for s in [&s1, &s2] {
        assert_eq!(search_all(s), (600, 600, false));
        assert_eq!(s.total("a2", &[]), 100);
        // The lost volume's sealed records are exported from the shared tier.
        assert_eq!(export_all(s), 600);
        let (docs, answer) = stream_docs(s, None);
        assert_eq!(docs, 600, "{answer}");
    }
    drop((a, b));
}

/// An indexer away while the cluster merged its published splits twice, the middle merge's
/// row removed by the janitor: no list names its splits any more, not even as ancestors. Back
/// with its volume and cut off from PostgreSQL (so no publisher round drops its copies), it
/// answers for those copies; the searchers leave them out because their lists saw the
/// copies' publishes, so every answer counts each record once. Back in touch with
/// PostgreSQL, it drops those copies.
#[test]
fn an_indexer_back_after_its_splits_were_merged_twice_adds_nothing_twice() {
    if !servers::postgres_available() || !servers::s3_available() {
        return;
    }
    let pg = Postgres::start();
    let s3 = S3Server::start();
    let tmp = tempfile::tempdir().unwrap();
    let template = config(&pg, &s3, 1000);
    let shared = |id: &str, merge_min: u32| indexer_config(&template, id, merge_min);
    let config_path = tmp.path().join("storage.toml");
    std::fs::write(&config_path, shared("cli", 1000)).unwrap();
    for dir in ["a", "b", "s"] {
        std::fs::create_dir_all(tmp.path().join(dir)).unwrap();
    }
    let (data_a, data_b) = (tmp.path().join("a/data"), tmp.path().join("b/data"));
    let a = Server::start_role("indexer", &data_a, &shared("indexer-a", 1000));
    for i in 0..3 {
        ingest_range(
            &a,
            i * BATCH..(i + 1) * BATCH,
            &format!("a{i}"),
            Some(i + 1),
        );
    }
    let a_splits: BTreeSet<String> = wait_published(&config_path, "a's splits", 300, 3)
        .iter()
        .map(|r| r["split_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(local_split_ids(&data_a), a_splits);
    let a_url = a.url.clone();
    a.stop();

    // b merges a's three splits into one, then that merge with a split of its own; the
    // janitor (no grace) removes every marked row at once.
    let b = Server::start_role("indexer", &data_b, &shared("indexer-b", 2));
    wait_published(&config_path, "a's splits merged", 300, 1);
    ingest_range(&b, 300..400, "b0", Some(1));
    let mut last = Vec::new();
    wait_until(
        "merged again, the marked rows removed",
        Duration::from_secs(60),
        || {
            last = splits(&config_path, "published");
            docs(&last) == 400 && last.len() == 1 && splits(&config_path, "marked").is_empty()
        },
    );
    let parents: BTreeSet<String> = last[0]["parents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_string())
        .collect();
    assert_eq!(parents.len(), 2);
    assert!(parents.is_disjoint(&a_splits), "{parents:?}");

    // a back with its volume, its metastore unreachable: it still holds and serves its copies.
    let cut_off = shared("indexer-a", 1000).replace(
        &pg.uri(),
        &format!("postgres://trawl@127.0.0.1:{}/trawl", free_port()),
    );
    let a = Server::start_listening(
        "indexer",
        &data_a,
        &format!("{cut_off}\n\n[collector]\nenabled = false\n"),
        a_url.trim_start_matches("http://"),
    );
    assert_eq!(a.total("*", &[]), 300);
    let searcher = Server::start_role(
        "searcher",
        &tmp.path().join("s/data"),
        &searcher_config(&template, "s", &[&a.url, &b.url]),
    );
    assert_eq!(search_all(&searcher), (400, 400, false));
    assert_eq!(searcher.total("a1", &[]), 100);
    assert_eq!(export_all(&searcher), 400);
    let (total, answer) = stream_docs(&searcher, None);
    assert_eq!(total, 400, "{answer}");

    // a reaches PostgreSQL again: its first round finds its splits' rows gone, seen published
    // before, and drops the copies as it would marked ones.
    a.stop();
    let a = Server::start_listening(
        "indexer",
        &data_a,
        &format!(
            "{}\n\n[collector]\nenabled = false\n",
            shared("indexer-a", 1000)
        ),
        a_url.trim_start_matches("http://"),
    );
    wait_until("a dropped its copies", Duration::from_secs(60), || {
        local_split_ids(&data_a).is_empty()
    });
    assert_eq!(a.metric(LOCAL_DROPPED), Some(3.0));
    assert_eq!(a.total("*", &[]), 0);
    assert_eq!(search_all(&searcher), (400, 400, false));
    drop((a, b, searcher));
}

/// Writes `rounds` rounds of `lines` lines to each of `pods`, a tenth of a second apart, and
/// waits until `indexer` holds every line written.
fn write_rounds(pods: &mut [PodFile], rounds: usize, lines: usize, indexer: &Server) {
    for _ in 0..rounds {
        for pod in pods.iter_mut() {
            write_lines(pod, lines);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let written: u64 = pods.iter().map(|p| p.written as u64).sum();
    wait_until("every line on the indexer", Duration::from_secs(60), || {
        indexer.total("*", &[]) == written
    });
}

/// A node whose collector, with `indexer_urls = urls`, ships to `urls[first]` first.
fn node_preferring(urls: &[String], first: usize, prefix: &str) -> String {
    (0..)
        .map(|i| format!("{prefix}-{i}"))
        .find(|n| trawl_collector::indexer_order(n, urls)[0] == urls[first])
        .unwrap()
}

/// Two indexers, `indexer-a` and `indexer-b`, on one PostgreSQL and one S3 server: their data
/// directories, addresses and configurations, and those of the collectors and searchers over
/// them.
struct TwoIndexers {
    tmp: tempfile::TempDir,
    template: String,
    /// The configuration `trawl storage` is run with.
    config_path: std::path::PathBuf,
    listen: [String; 2],
    urls: Vec<String>,
    data: [std::path::PathBuf; 2],
}

impl TwoIndexers {
    fn new(pg: &Postgres, s3: &S3Server) -> TwoIndexers {
        let tmp = tempfile::tempdir().unwrap();
        let listen = [0, 1].map(|_| format!("127.0.0.1:{}", free_port()));
        let two = TwoIndexers {
            template: config(pg, s3, 1000),
            config_path: tmp.path().join("storage.toml"),
            urls: listen.iter().map(|l| format!("http://{l}")).collect(),
            data: ["a", "b"].map(|d| tmp.path().join(d).join("data")),
            listen,
            tmp,
        };
        std::fs::write(&two.config_path, two.shared("cli")).unwrap();
        two
    }

    fn dir(&self, name: &str) -> std::path::PathBuf {
        let dir = self.tmp.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// The shared tier's configuration under indexer id `id`.
    fn shared(&self, id: &str) -> String {
        self.template
            .replace("id = \"indexer-a\"", &format!("id = \"{id}\""))
    }

    fn indexer_config(&self, id: &str) -> String {
        format!("{}\n[collector]\nenabled = false\n", self.shared(id))
    }

    /// Starts indexer `i` (0 is a, 1 is b) with `config` on its address and data directory.
    fn start_with(&self, i: usize, config: &str) -> Server {
        self.dir(["a", "b"][i]);
        Server::start_listening("indexer", &self.data[i], config, &self.listen[i])
    }

    fn start(&self, i: usize) -> Server {
        self.start_with(i, &self.indexer_config(["indexer-a", "indexer-b"][i]))
    }

    /// A collector of `node` over `pods` with both indexers, failing over after a second.
    fn collector(&self, node: &str, pods: &Path, data: &Path) -> Server {
        self.collector_to(node, pods, data, &self.urls)
    }

    /// The same with the indexers at `urls` (a proxy in front of one, say).
    fn collector_to(&self, node: &str, pods: &Path, data: &Path, urls: &[String]) -> Server {
        let mut config = collector_config(pods, data, "")
            .replace("indexer_url = \"\"\n", "")
            .replace("node_name = \"node-1\"", &format!("node_name = \"{node}\""));
        config.push_str(&format!(
            "indexer_urls = [\"{}\", \"{}\"]\nfailover_after_secs = 1\n",
            urls[0], urls[1]
        ));
        Server::start_with_config("collector", data, &config)
    }

    /// A searcher over the shared tier and both indexers, in directory `name`.
    fn searcher(&self, name: &str) -> Server {
        let config = format!(
            "{}\n[query]\nindexers = [\"{}\", \"{}\"]\n",
            self.shared("s")
                .replace("[indexer]\nid", "[indexer]\n# searcher\nid"),
            self.urls[0],
            self.urls[1]
        );
        Server::start_role("searcher", &self.dir(name).join("data"), &config)
    }

    /// Waits until every split `server` (indexer `id`) has sealed is published; how many it
    /// sealed. Both are read again at each look: a seal may land between them.
    fn wait_sealed_published(&self, server: &Server, id: &str) -> f64 {
        let mut sealed = 0.0;
        wait_until(
            &format!("{id}'s sealed splits published"),
            Duration::from_secs(60),
            || {
                sealed = server.metric(SEALED).unwrap_or(0.0);
                splits(&self.config_path, "published")
                    .iter()
                    .filter(|r| r["indexer"] == id)
                    .count() as f64
                    == sealed
            },
        );
        sealed
    }

    /// The documents of the splits `indexer` has published.
    fn published_docs(&self, indexer: &str) -> u64 {
        splits(&self.config_path, "published")
            .iter()
            .filter(|r| r["indexer"] == indexer)
            .map(|r| r["docs"].as_u64().unwrap())
            .sum()
    }
}

#[test]
fn collectors_of_an_indexer_lost_with_its_volume_move_to_the_other_without_a_duplicate() {
    if !servers::postgres_available() || !servers::s3_available() {
        return;
    }
    let pg = Postgres::start();
    let s3 = S3Server::start();
    let two = TwoIndexers::new(&pg, &s3);
    let config_path = two.config_path.clone();
    let data_a = two.data[0].clone();
    let a = two.start(0);
    let b = two.start(1);

    // Two nodes: one ships to a first, the other to b; each fails over after a second.
    let node_a = node_preferring(&two.urls, 0, "node");
    let node_b = node_preferring(&two.urls, 1, "node");
    let mut pods_a = pod_files_named(&two.dir("node-a").join("pods"), "apod", 3);
    let mut pods_b = pod_files_named(&two.dir("node-b").join("pods"), "bpod", 3);
    let ca = two.collector(
        &node_a,
        &two.dir("node-a").join("pods"),
        &two.dir("node-a").join("collector"),
    );
    let cb = two.collector(
        &node_b,
        &two.dir("node-b").join("pods"),
        &two.dir("node-b").join("collector"),
    );
    let s1 = two.searcher("s1");
    let s2 = two.searcher("s2");
    let written = |pods: &[PodFile]| pods.iter().map(|p| p.written as u64).sum::<u64>();

    // 1,200 lines a node, in rounds: each indexer seals splits of 100 and publishes them.
    for _ in 0..6 {
        for pod in pods_a.iter_mut().chain(pods_b.iter_mut()) {
            write_lines(pod, 70);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let expected = written(&pods_a) + written(&pods_b);
    wait_until("every line searchable", Duration::from_secs(60), || {
        s1.total("*", &[]) == expected
    });
    assert_eq!(
        a.total("*", &[]),
        written(&pods_a),
        "node a's lines are on a"
    );
    assert_eq!(
        b.total("*", &[]),
        written(&pods_b),
        "node b's lines are on b"
    );
    // Everything a sealed is published; the rest of node a's lines wait in a's hot index.
    let sealed_a = two.wait_sealed_published(&a, "indexer-a");
    assert!(sealed_a >= 3.0, "{sealed_a} splits sealed by a");
    for pod in pods_a.iter_mut() {
        write_lines(pod, 10);
    }
    let expected = written(&pods_a) + written(&pods_b);
    wait_until("a's hot lines searchable", Duration::from_secs(60), || {
        s1.total("*", &[]) == expected
    });

    // a is lost with its volume. Node a's collector moves to b, which takes its three
    // sources over at the marks a's published splits carry: the collector reads the files
    // again from there, and b indexes what a held but never published, once.
    a.kill9();
    std::fs::remove_dir_all(&data_a).unwrap();
    for pod in pods_a.iter_mut().chain(pods_b.iter_mut()) {
        write_lines(pod, 50);
    }
    let expected = written(&pods_a) + written(&pods_b);
    for s in [&s1, &s2] {
        wait_until(
            "every line searchable again",
            Duration::from_secs(90),
            || s.total("*", &[]) == expected,
        );
    }
    assert_eq!(ca.metric("trawl_collector_failovers_total"), Some(1.0));
    assert_eq!(cb.metric("trawl_collector_failovers_total"), Some(0.0));
    assert_eq!(
        b.metric("trawl_indexer_sources_taken_over_total"),
        Some(3.0)
    );
    for s in [&s1, &s2] {
        let answer = s.search("logs", &[("q", "*"), ("limit", "0")]);
        assert_eq!(answer["total"], expected, "{answer}");
        assert_eq!(answer["partial"], true, "a does not answer: {answer}");
        assert_each_line_once(s, &pods_a);
        assert_each_line_once(s, &pods_b);
    }

    // a comes back with an empty volume: node a's collector stays with b; both answer whole.
    let a = two.start(0);
    for pod in pods_a.iter_mut().chain(pods_b.iter_mut()) {
        write_lines(pod, 20);
    }
    let expected = written(&pods_a) + written(&pods_b);
    for s in [&s1, &s2] {
        wait_until("the last lines searchable", Duration::from_secs(60), || {
            s.total("*", &[]) == expected
        });
        let answer = s.search("logs", &[("q", "*"), ("limit", "0")]);
        assert!(!answer["partial"].as_bool().unwrap_or(false), "{answer}");
        assert_each_line_once(s, &pods_a);
        assert_each_line_once(s, &pods_b);
    }
    assert_eq!(a.total("*", &[]), 0, "a took nothing new");
    assert_eq!(ca.metric("trawl_collector_failovers_total"), Some(1.0));

    // A second process configured as indexer-a while a runs: it publishes nothing.
    let published_docs = |indexer: &str| two.published_docs(indexer);
    let before = published_docs("indexer-a");
    // a itself was refused for a few seconds at its restart: its killed predecessor held the
    // id's lease until it expired. It holds it now.
    const REFUSED: &str = "trawl_storage_duplicate_id_refusals_total";
    wait_until("a holds its id", Duration::from_secs(30), || {
        a.metric("trawl_storage_id_lease_held") == Some(1.0)
    });
    let a_refused = a.metric(REFUSED);
    let twin = Server::start_role(
        "indexer",
        &two.dir("twin").join("data"),
        &two.shared("indexer-a"),
    );
    wait_until("the twin refused", Duration::from_secs(30), || {
        twin.metric(REFUSED).unwrap_or(0.0) >= 1.0
    });
    ingest_range(&twin, 0..BATCH, "twin", Some(1));
    let refused = twin.metric(REFUSED).unwrap_or(0.0);
    wait_until(
        "a round after the seal refused",
        Duration::from_secs(30),
        || twin.metric(REFUSED).unwrap_or(0.0) > refused,
    );
    assert_eq!(
        published_docs("indexer-a"),
        before,
        "the twin published nothing"
    );
    assert_eq!(twin.metric("trawl_storage_id_lease_held"), Some(0.0));
    assert_eq!(a.metric(REFUSED), a_refused, "a publishes on");
    drop(twin);

    // Retention once for the cluster: with a day's retention on both indexers (the lines are
    // days old), whichever holds the lease marks every published split, the lost volume's
    // too (no indexer holds a copy of those); each indexer drops its own copies.
    let retained = |id: &str| {
        format!(
            "{}
[streams.logs]
retention_max_age_secs = 86400
",
            two.indexer_config(id)
        )
    };
    a.stop();
    b.stop();
    let a = two.start_with(0, &retained("indexer-a"));
    let b = two.start_with(1, &retained("indexer-b"));
    wait_until("every split marked", Duration::from_secs(60), || {
        splits(&config_path, "published").is_empty()
    });
    // What is left is what the indexers hold unsealed (retention drops splits): nothing comes
    // from the shared tier any more, the lost volume's splits included.
    let hot = a.total("*", &[]) + b.total("*", &[]);
    assert!(hot < expected, "{hot} of {expected} left");
    for s in [&s1, &s2] {
        let answer = s.search("logs", &[("q", "*"), ("limit", "0")]);
        assert_eq!(answer["total"], hot, "{answer}");
    }
    let marked = a
        .metric("trawl_storage_retention_marked_total")
        .unwrap_or(0.0)
        + b.metric("trawl_storage_retention_marked_total")
            .unwrap_or(0.0);
    assert!(marked >= 1.0, "{marked}");
    drop((a, b, ca, cb, s1, s2));
}

#[test]
fn an_indexer_back_with_its_volume_drops_what_the_new_owner_of_its_sources_read_again() {
    if !servers::postgres_available() || !servers::s3_available() {
        return;
    }
    let pg = Postgres::start();
    let mut s3 = S3Server::start();
    let two = TwoIndexers::new(&pg, &s3);
    let a = two.start(0);
    let b = two.start(1);
    let node = node_preferring(&two.urls, 0, "node");
    let pods_dir = two.dir("node").join("pods");
    let mut pods = pod_files_named(&pods_dir, "pod", 3);
    let collector = two.collector(&node, &pods_dir, &two.dir("node").join("collector"));
    let s1 = two.searcher("s1");
    let written = |pods: &[PodFile]| pods.iter().map(|p| p.written as u64).sum::<u64>();
    let published_docs = |indexer: &str| two.published_docs(indexer);

    // 630 lines: a seals splits of 100 and publishes them.
    write_rounds(&mut pods, 3, 70, &a);
    let sealed = two.wait_sealed_published(&a, "indexer-a");
    // The S3 server away: a seals a split it cannot upload, then holds more in its hot index.
    s3.stop();
    for pod in pods.iter_mut() {
        write_lines(pod, 40);
    }
    wait_until(
        "a seals a split it cannot upload",
        Duration::from_secs(60),
        || {
            a.metric(SEALED).unwrap_or(0.0) > sealed
                && a.metric(UPLOAD_ERRORS).unwrap_or(0.0) >= 1.0
        },
    );
    for pod in pods.iter_mut() {
        write_lines(pod, 10);
    }
    let before_kill = written(&pods);
    wait_until("every line on a", Duration::from_secs(60), || {
        a.total("*", &[]) == before_kill
    });
    let published_a = published_docs("indexer-a");
    let held = before_kill - published_a;
    assert!(held >= 150, "a holds {held} lines unpublished");

    // a is killed with its volume kept; the S3 server comes back. The collector moves to b,
    // which resumes the three sources at the marks a published and reads the rest again.
    a.kill9();
    s3.start_again();
    for pod in pods.iter_mut() {
        write_lines(pod, 50);
    }
    let expected = written(&pods);
    wait_until(
        "every line searchable from b",
        Duration::from_secs(90),
        || s1.total("*", &[]) == expected,
    );
    assert_eq!(
        b.metric("trawl_indexer_sources_taken_over_total"),
        Some(3.0)
    );
    assert_eq!(
        collector.metric("trawl_collector_failovers_total"),
        Some(1.0)
    );

    // a comes back with its volume: its WAL replays and its unpublished split is there, all
    // of it records of the three sources b read again. a removes them before publishing.
    let a = two.start(0);
    const PURGED: &str = "trawl_indexer_records_purged_total{stream=\"logs\"}";
    wait_for(
        "a removed what b read again",
        Duration::from_secs(60),
        Some(held as f64),
        || a.metric(PURGED),
    );
    // a was down when b took its sources over: no notice reached it; its first round found
    // them.
    assert_eq!(a.metric("trawl_storage_takeover_notices_total"), Some(0.0));
    assert_eq!(a.total("*", &[]), published_a, "a keeps what it published");
    assert_eq!(
        published_docs("indexer-a"),
        published_a,
        "a published nothing more"
    );
    for pod in pods.iter_mut() {
        write_lines(pod, 20);
    }
    let expected = written(&pods);
    wait_until("the last lines searchable", Duration::from_secs(60), || {
        s1.total("*", &[]) == expected
    });
    let answer = s1.search("logs", &[("q", "*"), ("limit", "0")]);
    assert_eq!(answer["total"], expected, "{answer}");
    assert!(!answer["partial"].as_bool().unwrap_or(false), "{answer}");
    assert_each_line_once(&s1, &pods);
    // Between them, the two indexers hold every line once: a what it published before it
    // went, b the rest.
    assert_eq!(a.total("*", &[]) + b.total("*", &[]), expected);
    assert!(published_docs("indexer-a") + published_docs("indexer-b") <= expected);
    drop((a, b, collector, s1));
}

#[test]
fn an_indexer_cut_off_from_its_collector_drops_what_the_new_owner_read_again() {
    if !servers::postgres_available() || !servers::s3_available() {
        return;
    }
    let pg = Postgres::start();
    let s3 = S3Server::start();
    let two = TwoIndexers::new(&pg, &s3);
    let a = two.start(0);
    let b = two.start(1);
    // The node reaches a through a proxy, which the test cuts: a runs on, unreachable.
    let proxy = FaultProxy::start(&two.urls[0], Mode::Forward);
    let urls = [proxy.url.clone(), two.urls[1].clone()];
    let node = node_preferring(&urls, 0, "node");
    let pods_dir = two.dir("node").join("pods");
    let mut pods = pod_files_named(&pods_dir, "pod", 3);
    let collector = two.collector_to(&node, &pods_dir, &two.dir("node").join("collector"), &urls);
    let s1 = two.searcher("s1");
    let written = |pods: &[PodFile]| pods.iter().map(|p| p.written as u64).sum::<u64>();

    write_rounds(&mut pods, 3, 70, &a);
    two.wait_sealed_published(&a, "indexer-a");
    // More lines: a holds them in its hot index, unpublished.
    for pod in pods.iter_mut() {
        write_lines(pod, 10);
    }
    let on_a = written(&pods);
    wait_until("the last lines on a", Duration::from_secs(60), || {
        a.total("*", &[]) == on_a
    });
    // A split sealed meanwhile (the lines filled one) is published before the takeover, and
    // so is not what a holds unpublished.
    two.wait_sealed_published(&a, "indexer-a");
    let published_a = two.published_docs("indexer-a");
    let held = on_a - published_a;
    assert!(held >= 30, "a holds {held} lines unpublished");

    // Cut off: the collector moves to b, which reads again from a's published marks. a, still
    // running, finds its three sources owned by b and drops what it held of them.
    proxy.set(Mode::Refuse(502));
    for pod in pods.iter_mut() {
        write_lines(pod, 50);
    }
    let expected = written(&pods);
    const PURGED: &str = "trawl_indexer_records_purged_total{stream=\"logs\"}";
    wait_for(
        "a removed what b read again",
        Duration::from_secs(60),
        Some(held as f64),
        || a.metric(PURGED),
    );
    // Told by the metastore, once per source b took over.
    wait_for(
        "a noticed the takeovers",
        Duration::from_secs(30),
        Some(3.0),
        || a.metric("trawl_storage_takeover_notices_total"),
    );
    wait_until(
        "every line searchable once",
        Duration::from_secs(60),
        || s1.total("*", &[]) == expected,
    );
    let answer = s1.search("logs", &[("q", "*"), ("limit", "0")]);
    assert_eq!(answer["total"], expected, "{answer}");
    assert!(!answer["partial"].as_bool().unwrap_or(false), "{answer}");
    assert_each_line_once(&s1, &pods);
    assert_eq!(a.total("*", &[]), published_a, "a keeps what it published");
    assert_eq!(a.total("*", &[]) + b.total("*", &[]), expected);
    assert_eq!(
        b.metric("trawl_indexer_sources_taken_over_total"),
        Some(3.0)
    );
    assert_eq!(
        collector.metric("trawl_collector_failovers_total"),
        Some(1.0)
    );

    // And back: the proxy forwards again and b is killed, its volume kept. The collector goes
    // on round its list to a, which takes the sources back at b's published marks (removing
    // first what it still held of them: nothing, it was removed). b, back with its volume,
    // drops what it held of them unpublished.
    for pod in pods.iter_mut() {
        write_lines(pod, 10);
    }
    let on_b = written(&pods) - published_a;
    wait_until("the last lines on b", Duration::from_secs(60), || {
        b.total("*", &[]) == on_b
    });
    two.wait_sealed_published(&b, "indexer-b");
    let held_b = on_b - two.published_docs("indexer-b");
    assert!(held_b > 0, "b holds nothing unpublished");
    proxy.set(Mode::Forward);
    b.kill9();
    for pod in pods.iter_mut() {
        write_lines(pod, 30);
    }
    let expected = written(&pods);
    wait_until(
        "every line searchable from a",
        Duration::from_secs(90),
        || s1.total("*", &[]) == expected,
    );
    assert_eq!(
        collector.metric("trawl_collector_failovers_total"),
        Some(2.0)
    );
    assert_eq!(
        a.metric("trawl_indexer_sources_taken_over_total"),
        Some(3.0)
    );
    assert_eq!(
        a.metric(PURGED),
        Some(held as f64),
        "a had nothing more to drop"
    );
    let b = two.start(1);
    wait_until(
        "b removed what a read again",
        Duration::from_secs(60),
        || b.metric(PURGED) == Some(held_b as f64),
    );
    let answer = s1.search("logs", &[("q", "*"), ("limit", "0")]);
    assert_eq!(answer["total"], expected, "{answer}");
    assert!(!answer["partial"].as_bool().unwrap_or(false), "{answer}");
    assert_each_line_once(&s1, &pods);
    assert_eq!(a.total("*", &[]) + b.total("*", &[]), expected);
    drop((a, b, collector, s1, proxy));
}

/// Reports through a searcher read the shared tier: every pass groups the published audit
/// splits at the searcher and the hot events at the indexer, so each report is the report of
/// one indexer holding the same events; after the indexer's volume is lost, its sealed events
/// are still in every report.
#[test]
fn reports_through_a_searcher_read_the_shared_tier_and_keep_a_lost_volumes_sealed_events() {
    use crate::distributed::{
        audit_report, generated_audit_event, ingest_audit, AUDIT_RANGE, AUDIT_REPORTS,
    };
    if !servers::postgres_available() || !servers::s3_available() {
        return;
    }
    let pg = Postgres::start();
    let s3 = S3Server::start();
    let tmp = tempfile::tempdir().unwrap();
    let indexer_config = config(&pg, &s3, 1000);
    let config_path = tmp.path().join("storage.toml");
    std::fs::write(&config_path, indexer_config.replace("indexer-a", "cli")).unwrap();
    let data = tmp.path().join("a");
    let a = Server::start_role("indexer", &data, &indexer_config);
    // 300 events sealed into published splits (100 a split), then 60 kept hot.
    let events: Vec<Value> = (0..360).map(generated_audit_event).collect();
    for chunk in events[..300].chunks(BATCH as usize) {
        ingest_audit(&a, chunk);
    }
    let audit_docs = |rows: &[Value]| -> u64 {
        docs(
            &rows
                .iter()
                .filter(|r| r["stream"] == "audit")
                .cloned()
                .collect::<Vec<_>>(),
        )
    };
    wait_until(
        "300 audit events published",
        Duration::from_secs(60),
        || audit_docs(&splits(&config_path, "published")) == 300,
    );
    ingest_audit(&a, &events[300..]);
    // References without a shared tier: one indexer with every event, one with the sealed.
    let every = Server::start_role("indexer", &tmp.path().join("every"), "");
    ingest_audit(&every, &events);
    let sealed = Server::start_role("indexer", &tmp.path().join("sealed"), "");
    ingest_audit(&sealed, &events[..300]);
    let total = |server: &Server| -> u64 {
        let mut params = vec![("q", "*"), ("limit", "0")];
        params.extend(AUDIT_RANGE);
        server.search("audit", &params)["total"].as_u64().unwrap()
    };
    for (server, n) in [(&a, 360), (&every, 360), (&sealed, 300)] {
        wait_for(
            "audit events searchable",
            Duration::from_secs(30),
            n,
            || total(server),
        );
    }
    let searcher_config = format!(
        "{}\n[query]\nindexers = [\"{}\"]\n",
        indexer_config.replace("[indexer]\nid = \"indexer-a\"", "[indexer]\nid = \"s1\""),
        a.url
    );
    let s = Server::start_role("searcher", &tmp.path().join("s"), &searcher_config);
    let compare = |reference: &Server, what: &str| {
        let mut rows = 0;
        for name in AUDIT_REPORTS {
            let mut params: Vec<(&str, &str)> = AUDIT_RANGE.to_vec();
            params.push(("limit", "1000"));
            let expected = audit_report(reference, name, &params);
            let answer = audit_report(&s, name, &params);
            assert_eq!(answer["rows"], expected["rows"], "{what}: {name}");
            assert_eq!(answer.get("partial"), None, "{what}: {name}: {answer}");
            rows += expected["rows"].as_array().unwrap().len();
        }
        assert!(rows > 100, "{what}: {rows} rows compared");
    };
    compare(&every, "the published splits and the hot events");
    // The two states differ: the hot events come from the indexer alone.
    let mut params: Vec<(&str, &str)> = AUDIT_RANGE.to_vec();
    params.push(("limit", "1000"));
    let counted = |server: &Server| -> u64 {
        audit_report(server, "top-users", &params)["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["count"].as_u64().unwrap())
            .sum()
    };
    let (with_hot, sealed_only) = (counted(&every), counted(&sealed));
    assert!(
        with_hot > sealed_only && sealed_only > 200,
        "{with_hot} {sealed_only}"
    );
    assert_eq!(counted(&s), with_hot);

    // The indexer's volume lost: its hot events with it, its sealed ones in the shared tier.
    let listen = a.url.trim_start_matches("http://").to_string();
    a.stop();
    std::fs::remove_dir_all(&data).unwrap();
    let _a = Server::start_listening("indexer", &data, &indexer_config, &listen);
    compare(&sealed, "the published splits after the volume was lost");
    drop(pg);
    drop(s3);
}

/// The split directories an indexer's data directory holds for the logs stream.
fn local_split_ids(data: &Path) -> BTreeSet<String> {
    let dir = data.join("indexer/streams/logs/splits");
    match std::fs::read_dir(&dir) {
        Ok(entries) => entries
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => BTreeSet::new(),
        Err(err) => panic!("{}: {err}", dir.display()),
    }
}

const LOCAL_DROPPED: &str = "trawl_indexer_local_copies_dropped_total{stream=\"logs\"}";

/// `[storage] local_splits_max_bytes`: `trawl indexer` keeps local copies of the splits it
/// published up to the bound, the oldest dropped first, and none with 0; what it dropped is
/// still published, unmarked, and searchers read it from the shared tier. Aborted between the
/// publisher's record of a drop and the indexer's, the restart finds the split published and
/// drops it: nothing is marked, nothing uploaded twice.
#[test]
fn an_indexer_keeps_local_copies_of_published_splits_up_to_its_bound() {
    if !servers::postgres_available() || !servers::s3_available() {
        return;
    }
    let pg = Postgres::start();
    let s3 = S3Server::start();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let template = config(&pg, &s3, 1000);
    let bounded = |max_bytes: u64| {
        template.replace(
            "[storage]\n",
            &format!("[storage]\nlocal_splits_max_bytes = {max_bytes}\n"),
        )
    };
    let config_path = tmp.path().join("storage.toml");
    std::fs::write(&config_path, &template).unwrap();

    // Three published splits, all kept under the default bound.
    let server = Server::start_role("indexer", &data, &template);
    for b in 0..3 {
        ingest_batch(&server, b, b + 1);
    }
    let mut published = wait_published(&config_path, "3 splits published", 300, 3);
    assert_eq!(local_split_ids(&data).len(), 3);
    server.stop();

    // A bound of the two newest splits' bytes: the oldest copy goes, the two newest stay.
    published.sort_by_key(|r| r["max_timestamp"].as_i64().unwrap());
    let id = |r: &Value| r["split_id"].as_str().unwrap().to_string();
    let newest_two: u64 = published[1..]
        .iter()
        .map(|r| r["bytes"].as_u64().unwrap())
        .sum();
    let server = Server::start_role("indexer", &data, &bounded(newest_two));
    wait_until("the oldest copy dropped", Duration::from_secs(60), || {
        server.metric(LOCAL_DROPPED) == Some(1.0)
    });
    assert_eq!(
        local_split_ids(&data),
        published[1..].iter().map(id).collect::<BTreeSet<_>>()
    );
    assert_eq!(splits(&config_path, "published").len(), 3);
    assert!(splits(&config_path, "marked").is_empty());
    // The indexer's own API answers for its copies and the hot index.
    server.wait_total("*", 200);
    server.stop();

    // Bound 0, aborted between the publisher's record of the drop and the indexer's: the
    // restart adopts the splits as published and drops them.
    crash_at(
        "indexer",
        &data,
        &tmp.path().join("faults"),
        "crash_before_local_drop",
        &bounded(0),
        |_| {},
    );
    assert_eq!(local_split_ids(&data).len(), 2, "nothing dropped yet");
    let server = Server::start_role("indexer", &data, &bounded(0));
    wait_until("both copies dropped", Duration::from_secs(60), || {
        server.metric(LOCAL_DROPPED) == Some(2.0)
    });
    assert!(local_split_ids(&data).is_empty());
    let rows = splits(&config_path, "published");
    assert_eq!((rows.len(), docs(&rows)), (3, 300));
    assert!(splits(&config_path, "marked").is_empty());
    assert_eq!(server.metric(UPLOADS), Some(0.0), "nothing uploaded again");

    // New records: sealed, published, dropped; 50 more stay in the hot index.
    ingest_batch(&server, 3, 1);
    wait_published(&config_path, "the fourth split published", 400, 4);
    wait_until("the fourth copy dropped", Duration::from_secs(60), || {
        server.metric(LOCAL_DROPPED) == Some(3.0)
    });
    ingest_range(&server, 400..450, "hot", None);
    server.wait_total("*", 50);
    assert!(local_split_ids(&data).is_empty());

    // A searcher answers for every record: the shared tier's 400, the indexer's 50.
    std::fs::create_dir_all(tmp.path().join("searcher")).unwrap();
    let searcher_indexer = server.url.clone();
    let searcher = Server::start_role(
        "searcher",
        &tmp.path().join("searcher/data"),
        &format!(
            "{}\n[query]\nindexers = [\"{}\"]\n",
            template.replace("id = \"indexer-a\"", "id = \"searcher\""),
            server.url
        ),
    );
    assert_eq!(search_all(&searcher), (450, 450, false));
    assert_eq!(export_all(&searcher), 450);
    let (counted, answer) = stream_docs(&searcher, None);
    assert_eq!(counted, 450, "{answer}");
    let report = check_ok(&config_path);
    assert_eq!(report["objects"], 4);
    server.stop();

    // The cluster's merger (this indexer, merges on) aborted right after its merge of the four
    // published splits is published, before it keeps the output: the restart holds no copy of
    // it, removes what the merge left half-written, and every record is there once.
    let merging = template.replace("merge_min_splits = 1000", "merge_min_splits = 2");
    crash_at(
        "indexer",
        &data,
        &tmp.path().join("faults"),
        "crash_after_cluster_merge_publish",
        &merging,
        |_| {},
    );
    let rows = splits(&config_path, "published");
    assert_eq!(
        (rows.len(), docs(&rows), &rows[0]["merge_level"]),
        (1, 400, &json!(1))
    );
    let server = Server::start_listening(
        "indexer",
        &data,
        &format!("{template}\n\n[collector]\nenabled = false\n"),
        searcher_indexer.trim_start_matches("http://"),
    );
    wait_until(
        "the half-written merge removed",
        Duration::from_secs(60),
        || !data.join("indexer/cluster-merge").exists(),
    );
    assert!(local_split_ids(&data).is_empty());
    server.wait_total("*", 50);
    assert_eq!(search_all(&searcher), (450, 450, false));
    assert_eq!(export_all(&searcher), 450);
    wait_until(
        "the janitor removed the inputs",
        Duration::from_secs(60),
        || splits(&config_path, "marked").is_empty(),
    );
    assert_eq!(check_ok(&config_path)["objects"], 1);
    searcher.stop();
    server.stop();
}
