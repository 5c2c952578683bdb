//! `tier`: the search query set over N `logs` documents whose splits are in a real
//! S3-protocol server (`s3s-fs`) and a real PostgreSQL metastore, three ways in one run:
//! the indexer over its local splits (`local`), a searcher whose cache is warm (`warm`), and
//! the first search of a searcher with an empty cache (`cold`, once per query: each query is
//! asked of a fresh searcher, which opens the splits by range and reads only what the search
//! touches; its requests and bytes are reported). Also what uploading costs beside indexing: the load's rate, and
//! how long after the load the last split was published. Then every audit report over N/5
//! audit events in the same tier, on the indexer (`local`) and through the warm searcher
//! (`searcher`: the published splits grouped there, the indexer asked for the rest), each run
//! with a distinct no-op `q` so that no cached groups answer, and the rows of both compared.
//! Then an export of every column of a tenth of the logs from the indexer, through the warm
//! searcher and through a cold one (doc-store blocks read by range). Last, searches of the
//! Elasticsearch-compatible API in the shapes KubeSphere and Grafana send, on the indexer and
//! through the warm searcher, their answers compared.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::client::{client, get_json, post_json};
use crate::corpus::audit::AuditGenerator;
use crate::corpus::logs::LogGenerator;
use crate::proc::TrawlChild;
use crate::scenarios::search::{queries, DOCS_PER_SEC};
use crate::scenarios::{load, time_runs, Ctx, Indexer};
use crate::{report, Error, Result};

#[path = "../../../storage/tests/support/servers.rs"]
#[allow(dead_code, clippy::all)]
mod servers;

const S: &str = "tier";

/// The value of `series` on a `/metrics` page.
fn metric(http: &reqwest::blocking::Client, url: &str, series: &str) -> f64 {
    http.get(format!("{url}/metrics"))
        .send()
        .and_then(|r| r.text())
        .ok()
        .and_then(|text| {
            text.lines().find_map(|line| {
                line.strip_prefix(series)
                    .and_then(|rest| rest.strip_prefix(' '))
                    .and_then(|v| v.trim().parse().ok())
            })
        })
        .unwrap_or(0.0)
}

/// The documents of the published splits.
fn published_docs(ctx: &Ctx, envs: &[(String, String)]) -> Result<u64> {
    Ok(published_rows(ctx, envs)?
        .iter()
        .filter_map(|row| row["docs"].as_u64())
        .sum())
}

/// The ids of the published splits (of `stream` only, if given), sorted.
fn published_ids(
    ctx: &Ctx,
    envs: &[(String, String)],
    stream: Option<&str>,
) -> Result<Vec<String>> {
    let mut ids: Vec<String> = published_rows(ctx, envs)?
        .iter()
        .filter(|row| stream.is_none_or(|s| row["stream"] == s))
        .filter_map(|row| row["split_id"].as_str().map(str::to_string))
        .collect();
    ids.sort();
    Ok(ids)
}

/// Waits until the cluster's merges of the load are done: for [`SETTLED_FOR`] the published
/// splits have stayed the same and the indexer (the merge lease holder, being alone) has been
/// idle, under [`IDLE_CPU_PER_SEC`] a second (a merge under way publishes nothing for as long
/// as it takes). Then no merge published while the searches are timed sends the warm searcher
/// back to object storage for its output.
fn merges_settled(ctx: &Ctx, envs: &[(String, String)], indexer: &Indexer) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(1800);
    let mut seen = published_ids(ctx, envs, None)?;
    let mut cpu = indexer.child.cpu_secs()?;
    let mut since = Instant::now();
    while since.elapsed() < SETTLED_FOR {
        if Instant::now() > deadline {
            return Err(Error::Child(
                "the cluster's merges still running after 1,800 s".into(),
            ));
        }
        let tick = Instant::now();
        std::thread::sleep(Duration::from_secs(1));
        let (ids, now_cpu) = (published_ids(ctx, envs, None)?, indexer.child.cpu_secs()?);
        let busy = (now_cpu - cpu) / tick.elapsed().as_secs_f64() > IDLE_CPU_PER_SEC;
        if ids != seen || busy {
            since = Instant::now();
        }
        (seen, cpu) = (ids, now_cpu);
    }
    Ok(())
}

/// How long [`merges_settled`] wants the tier quiet: three of the merge planner's rounds at
/// the bench's `poll_interval_ms` (500).
const SETTLED_FOR: Duration = Duration::from_secs(15);

/// The indexer's CPU seconds per second under which it counts as idle (its publisher and
/// lease rounds take a few hundredths).
const IDLE_CPU_PER_SEC: f64 = 0.2;

/// The rows of the published splits (`trawl storage splits --state published`).
fn published_rows(ctx: &Ctx, envs: &[(String, String)]) -> Result<Vec<Value>> {
    let out = std::process::Command::new(&ctx.bin)
        .args(["storage", "splits", "--state", "published"])
        .envs(envs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("TRAWL_LOG", "warn")
        // The bench's own setting, not a key of trawl's configuration.
        .env_remove("TRAWL_BIN")
        .output()
        .map_err(Error::Io)?;
    if !out.status.success() {
        return Err(Error::Child(format!(
            "trawl storage splits: {}",
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .collect())
}

/// Starts a searcher over the indexer and the shared tier, with its cache in `dir`.
fn searcher(ctx: &Ctx, config: &Path, dir: &Path) -> Result<TrawlChild> {
    let data = dir.to_string_lossy().into_owned();
    let config = config.to_string_lossy().into_owned();
    TrawlChild::start(
        &ctx.bin,
        &[
            "searcher",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            &data,
            "--config",
            &config,
        ],
        &[],
        Duration::from_secs(60),
    )
}

/// Loads `docs / 5` audit events into the indexer, waits until they are published, then times
/// every audit report on the indexer and through the searcher at `searcher`, checking that both
/// answer the same rows.
fn reports(
    ctx: &Ctx,
    http: &reqwest::blocking::Client,
    indexer: &Indexer,
    searcher: &str,
    envs: &[(String, String)],
    log_docs: u64,
) -> Result<()> {
    let events = (log_docs / 5).max(1_000);
    let gen = AuditGenerator::new(ctx.seed, 500.0);
    let totals = load(ctx, "tier_audit", http, indexer, "audit", gen, events)?;
    let deadline = Instant::now() + Duration::from_secs(900);
    while published_docs(ctx, envs)? != log_docs + totals.accepted {
        if Instant::now() > deadline {
            return Err(Error::Child(
                "audit splits not published within 900 s".into(),
            ));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    merges_settled(ctx, envs, indexer)?;
    // Each report once through the searcher, and its splits fetched into the cache.
    for name in crate::scenarios::audit::REPORTS {
        get_json(http, &format!("{searcher}/api/v1/audit/reports/{name}"))?;
    }
    let deadline = Instant::now() + Duration::from_secs(900);
    while metric(http, searcher, "trawl_storage_cache_fills_pending") > 0.0 {
        if Instant::now() > deadline {
            return Err(Error::Child(
                "the audit splits not cached within 900 s".into(),
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    for name in crate::scenarios::audit::REPORTS {
        let mut run = 0usize;
        both_sides(
            ctx,
            indexer,
            searcher,
            &format!("report_{name}"),
            ("same_rows", "the searcher's rows differ from the indexer's"),
            |base| {
                let url = format!("{base}/api/v1/audit/reports/{name}");
                run += 1;
                let q = format!("NOT user:\"bench-nobody-{run}\"");
                let answer = http.get(&url).query(&[("q", q.as_str())]).send()?;
                let answer: Value = serde_json::from_str(&answer.error_for_status()?.text()?)
                    .map_err(|e| Error::Protocol {
                        what: url.clone(),
                        detail: e.to_string(),
                    })?;
                // The rows without their queries (which hold the run's `q`).
                let mut shown = answer["rows"].clone();
                if let Some(list) = shown.as_array_mut() {
                    for row in list {
                        if let Some(row) = row.as_object_mut() {
                            row.remove("query");
                        }
                    }
                }
                Ok(shown)
            },
        );
    }
    Ok(())
}

/// Times `ask` (an answer from the server at a base URL) [`Ctx::runs`] times on the indexer
/// (`{name}_local`) and then through the searcher (`{name}_searcher`), and reports
/// `{name}_{same}` as unavailable, saying `differ`, when the two sides' last answers differ.
fn both_sides(
    ctx: &Ctx,
    indexer: &Indexer,
    searcher: &str,
    name: &str,
    (same, differ): (&str, &str),
    mut ask: impl FnMut(&str) -> Result<Value>,
) {
    let mut answers: Vec<Option<Value>> = vec![None, None];
    for (at, (side, base)) in [("local", indexer.url()), ("searcher", searcher)]
        .into_iter()
        .enumerate()
    {
        let timed = time_runs(ctx.runs(), || {
            answers[at] = Some(ask(base)?);
            Ok(())
        });
        match timed {
            Ok(samples) => report::percentiles(S, &format!("{name}_{side}"), &samples),
            Err(e) => report::unavailable(S, &format!("{name}_{side}"), &e.to_string()),
        }
    }
    if answers[0] != answers[1] {
        report::unavailable(S, &format!("{name}_{same}"), differ);
    }
}

/// Elasticsearch-API searches as KubeSphere's ks-apiserver and Grafana send them: a page of
/// the newest matching lines, a histogram, terms with a cardinality, a count.
fn elastic_searches() -> Vec<(&'static str, &'static str, Value)> {
    let matching =
        serde_json::json!({"bool": {"filter": [{"match_phrase": {"message": "error"}}]}});
    vec![
        (
            "es_page",
            "_search",
            serde_json::json!({"query": matching, "sort": [{"@timestamp": "desc"}], "size": 10}),
        ),
        (
            "es_histogram",
            "_search",
            serde_json::json!({"query": matching, "size": 0, "aggs": {"h": {"date_histogram":
                {"field": "@timestamp", "fixed_interval": "15m"}}}}),
        ),
        (
            "es_terms_cardinality",
            "_search",
            serde_json::json!({"size": 0, "aggs": {"ns": {"terms": {"field": "namespace"}},
                "pods": {"cardinality": {"field": "pod"}}}}),
        ),
        (
            "es_count",
            "_count",
            serde_json::json!({"query": {"match": {"message": "timeout"}}}),
        ),
    ]
}

/// Times [`elastic_searches`] on the indexer (`local`) and through the searcher at
/// `searcher`, and checks both answer the same (without `took`, `_shards` and the hits'
/// `_id`s, positions in splits).
fn elastic(
    ctx: &Ctx,
    http: &reqwest::blocking::Client,
    indexer: &Indexer,
    searcher: &str,
) -> Result<()> {
    for (name, endpoint, body) in elastic_searches() {
        both_sides(
            ctx,
            indexer,
            searcher,
            name,
            (
                "same_answer",
                "the searcher's answer differs from the indexer's",
            ),
            |base| {
                let url = format!("{base}/api/v1/_elastic/logs/{endpoint}");
                let mut answer = post_json(http, &url, &body)?.unwrap_or_default();
                if let Some(object) = answer.as_object_mut() {
                    object.remove("took");
                    object.remove("_shards");
                }
                if let Some(hits) = answer["hits"]["hits"].as_array_mut() {
                    for hit in hits {
                        if let Some(hit) = hit.as_object_mut() {
                            hit.remove("_id");
                        }
                    }
                }
                Ok(answer)
            },
        );
    }
    Ok(())
}

/// The export every side makes: every column of the `level:error` records (a tenth of the
/// corpus), as NDJSON.
const EXPORT: &str = "q=level%3Aerror&format=ndjson";

/// Exports [`EXPORT`] from the indexer (`local`), through the warm searcher (`warm`) and
/// through a fresh searcher with an empty cache (`cold`: its splits opened and their doc-store
/// blocks read by range); reports rows per second and, for the cold one, what it read from
/// object storage. The three must hold the same number of records.
fn exports(
    ctx: &Ctx,
    http: &reqwest::blocking::Client,
    indexer: &Indexer,
    warm: &str,
    config: &Path,
    work: &Path,
) -> Result<()> {
    let export = |base: &str| -> Result<(usize, Duration)> {
        let url = format!("{base}/api/v1/logs/export?{EXPORT}");
        let t = Instant::now();
        let body = http.get(&url).send()?.error_for_status()?.bytes()?;
        let elapsed = t.elapsed();
        Ok((body.iter().filter(|b| **b == b'\n').count(), elapsed))
    };
    let mut rows = Vec::new();
    for (side, base) in [("local", indexer.url()), ("warm", warm)] {
        // Once untimed, then the best of three (an export is long enough to time alone).
        let (n, _) = export(base)?;
        let best = (0..3)
            .map(|_| export(base).map(|(_, d)| d))
            .collect::<Result<Vec<_>>>()?
            .into_iter()
            .min()
            .unwrap_or_default();
        report::metric(
            S,
            &format!("export_{side}"),
            n as f64 / best.as_secs_f64(),
            "rows/s",
        );
        rows.push(n);
    }
    let cold = searcher(ctx, config, &work.join("export-cold"))?;
    let (n, elapsed) = export(&cold.url)?;
    report::metric(S, "export_cold", n as f64 / elapsed.as_secs_f64(), "rows/s");
    report::metric(
        S,
        "export_cold_requests",
        metric(http, &cold.url, "trawl_storage_ranged_open_requests_total")
            + metric(http, &cold.url, "trawl_storage_range_reads_total"),
        "requests",
    );
    report::metric(
        S,
        "export_cold_read",
        metric(http, &cold.url, "trawl_storage_range_read_bytes_total") / 1e6,
        "MB",
    );
    rows.push(n);
    report::metric(S, "export_rows", n as f64, "rows");
    if rows.iter().any(|r| *r != rows[0]) {
        report::unavailable(S, "export_same_rows", &format!("rows per side: {rows:?}"));
    }
    Ok(())
}

/// With `BENCH_TIER_HOLD` set to a path, writes the indexer's and the warm searcher's URLs
/// there once the cache is warm and waits until the file is removed: the tier stays up for a
/// profiler or a hand-run client, then the timed runs go on.
fn hold(indexer: &Indexer, warm: &TrawlChild) -> Result<()> {
    let Some(path) = std::env::var_os("BENCH_TIER_HOLD") else {
        return Ok(());
    };
    let path = std::path::PathBuf::from(path);
    std::fs::write(
        &path,
        format!("indexer={}\nsearcher={}\n", indexer.url(), warm.url),
    )
    .map_err(Error::Io)?;
    eprintln!("tier: holding until {} is removed", path.display());
    while path.exists() {
        std::thread::sleep(Duration::from_millis(500));
    }
    Ok(())
}

pub fn run(ctx: &Ctx) -> Result<()> {
    if !servers::postgres_available() || !servers::s3_available() {
        return Err(Error::Child("PostgreSQL or s3s-fs missing".into()));
    }
    let docs = ctx.docs_or(200_000, 10_000_000);
    let http = client()?;
    let pg = servers::Postgres::start();
    let s3 = servers::S3Server::start();
    let shared = format!(
        "[storage]\nuri = \"s3://{}/bench\"\n[storage.s3]\nendpoint = \"{}\"\nregion = \"us-east-1\"\n\
         access_key_id = \"{}\"\nsecret_access_key = \"{}\"\n[metastore]\nuri = \"{}\"\n\
         poll_interval_ms = 500\n",
        servers::S3_BUCKET,
        s3.endpoint(),
        servers::S3_ACCESS_KEY,
        servers::S3_SECRET_KEY,
        pg.uri()
    );
    let envs: Vec<(String, String)> = [
        (
            "TRAWL_STORAGE__URI",
            format!("s3://{}/bench", servers::S3_BUCKET),
        ),
        ("TRAWL_STORAGE__S3__ENDPOINT", s3.endpoint()),
        ("TRAWL_STORAGE__S3__REGION", "us-east-1".into()),
        (
            "TRAWL_STORAGE__S3__ACCESS_KEY_ID",
            servers::S3_ACCESS_KEY.into(),
        ),
        (
            "TRAWL_STORAGE__S3__SECRET_ACCESS_KEY",
            servers::S3_SECRET_KEY.into(),
        ),
        ("TRAWL_METASTORE__URI", pg.uri()),
        ("TRAWL_METASTORE__POLL_INTERVAL_MS", "500".into()),
        ("TRAWL_INDEXER__ID", "bench".into()),
        // Everything sealed (and so published) soon after the load.
        ("TRAWL_INDEXER__SPLIT_MAX_AGE_SECS", "10".into()),
        // The indexer's own API is the local side of each comparison: it keeps a copy of
        // every split it published.
        (
            "TRAWL_STORAGE__LOCAL_SPLITS_MAX_BYTES",
            "1000000000000000".into(),
        ),
        ("TRAWL_COLLECTOR__ENABLED", "false".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let indexer = Indexer::start(ctx, &envs)?;
    let loaded = Instant::now();
    let gen = LogGenerator::new(ctx.seed, "bench", 800, DOCS_PER_SEC);
    load(ctx, S, &http, &indexer, "logs", gen, docs)?;
    let load_secs = loaded.elapsed().as_secs_f64();
    // Published: the metastore's published splits hold every document.
    let deadline = Instant::now() + Duration::from_secs(900);
    while published_docs(ctx, &envs)? != docs {
        if Instant::now() > deadline {
            return Err(Error::Child("splits not published within 900 s".into()));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let published_after = loaded.elapsed().as_secs_f64() - load_secs;
    let upload_mb = metric(&http, indexer.url(), "trawl_storage_upload_bytes_total") / 1e6;
    report::metric(S, "uploaded", upload_mb, "MB");
    report::metric(S, "published_after_load", published_after, "s");
    merges_settled(ctx, &envs, &indexer)?;
    report::metric(
        S,
        "merges_settled_after_load",
        loaded.elapsed().as_secs_f64() - load_secs,
        "s",
    );
    report::metric(
        S,
        "upload_rate_over_load_and_publish",
        upload_mb / (load_secs + published_after),
        "MB/s",
    );

    let work = tempfile::Builder::new()
        .prefix("trawl-bench-tier-")
        .tempdir_in(crate::scenarios::bench_tmp())
        .map_err(Error::Io)?;
    let config = work.path().join("searcher.toml");
    std::fs::write(
        &config,
        format!("{shared}[query]\nindexers = [\"{}\"]\n", indexer.url()),
    )
    .map_err(Error::Io)?;
    let config_cores = work.path().join("searcher-cores.toml");
    std::fs::write(
        &config_cores,
        format!(
            "{}[query]\nindexers = [\"{}\"]\n",
            shared.replacen(
                "[storage]\n",
                &format!(
                    "[storage]\nrange_read_concurrency = {}\n",
                    crate::proc::cores()
                ),
                1
            ),
            indexer.url()
        ),
    )
    .map_err(Error::Io)?;
    let runs = ctx.runs();
    let queries = queries(docs);
    let warm = searcher(ctx, &config, &work.path().join("warm"))?;
    // Warm: every query once (the splits are opened by range and then fetched whole in the
    // background), and the cache filled, before anything is timed.
    for (_, params) in &queries {
        get_json(&http, &format!("{}/api/v1/logs/search?{params}", warm.url))?;
    }
    let deadline = Instant::now() + Duration::from_secs(900);
    while metric(&http, &warm.url, "trawl_storage_cache_fills_pending") > 0.0 {
        if Instant::now() > deadline {
            return Err(Error::Child(
                "the warm cache not filled within 900 s".into(),
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    hold(&indexer, &warm)?;
    let timed_splits = published_ids(ctx, &envs, Some("logs"))?;
    for (name, params) in &queries {
        for (side, url) in [("local", indexer.url()), ("warm", warm.url.as_str())] {
            let url = format!("{url}/api/v1/logs/search?{params}");
            let mut total = 0;
            match time_runs(runs, || {
                let answer: Value = get_json(&http, &url)?.unwrap_or_default();
                total = answer["total"].as_u64().unwrap_or(0);
                Ok(())
            }) {
                Ok(samples) => {
                    report::percentiles(S, &format!("{name}_{side}"), &samples);
                    report::metric(S, &format!("{name}_{side}_total"), total as f64, "docs");
                }
                Err(e) => report::unavailable(S, &format!("{name}_{side}"), &e.to_string()),
            }
        }
    }
    reports(ctx, &http, &indexer, &warm.url, &envs, docs)?;
    exports(ctx, &http, &indexer, &warm.url, &config, work.path())?;
    elastic(ctx, &http, &indexer, &warm.url)?;
    // The logs' splits must be those the warm searcher was warmed on until here.
    if published_ids(ctx, &envs, Some("logs"))? != timed_splits {
        report::unavailable(
            S,
            "published_unchanged_while_timed",
            "a merge published new logs splits while the warm searcher was timed",
        );
    }
    // The cluster's merges the indexer ran meanwhile (it holds the lease, being alone), and
    // the published splits the searches saw at the end.
    for (name, series) in [
        ("cluster_merges", "trawl_storage_cluster_merges_total"),
        (
            "cluster_merge_inputs",
            "trawl_storage_cluster_merge_inputs_total",
        ),
    ] {
        report::metric(S, name, metric(&http, indexer.url(), series), "splits");
    }
    let downloads = metric(&http, &warm.url, "trawl_storage_downloads_total");
    report::metric(S, "warm_searcher_downloads", downloads, "splits");
    report::metric(
        S,
        "warm_searcher_ranged_opens",
        metric(&http, &warm.url, "trawl_storage_ranged_opens_total"),
        "splits",
    );
    drop(warm);
    let (mut opens, mut open_requests) = (0.0, 0.0);
    // Cold: a fresh searcher, empty cache, for each query's first answer (reported as
    // `{name}{suffix}` in ms); the searcher is returned for its metrics.
    let first_answer = |config: &Path, dir: &str, name: &str, params: &str| {
        let cold = searcher(ctx, config, &work.path().join(dir))?;
        let t = Instant::now();
        get_json(&http, &format!("{}/api/v1/logs/search?{params}", cold.url))?;
        report::metric(S, name, t.elapsed().as_secs_f64() * 1e3, "ms");
        Ok::<_, Error>(cold)
    };
    for (i, (name, params)) in queries.iter().enumerate() {
        let cold = first_answer(
            &config,
            &format!("cold{i}"),
            &format!("{name}_cold"),
            params,
        )?;
        // What the search read: the splits' tails, then ranges past their hotcaches (the
        // background download into the cache that follows is not counted).
        let split_opens = metric(&http, &cold.url, "trawl_storage_ranged_opens_total");
        let requests = metric(&http, &cold.url, "trawl_storage_ranged_open_requests_total");
        let reads = metric(&http, &cold.url, "trawl_storage_range_reads_total");
        let read_mb = metric(&http, &cold.url, "trawl_storage_range_read_bytes_total") / 1e6;
        report::metric(S, &format!("{name}_cold_splits"), split_opens, "splits");
        report::metric(
            S,
            &format!("{name}_cold_requests"),
            requests + reads,
            "requests",
        );
        report::metric(S, &format!("{name}_cold_read"), read_mb, "MB");
        opens += split_opens;
        open_requests += requests;
        drop(cold);
        // The same, searching only as many splits at once as there are cores (what a
        // search does over cached splits): what `range_read_concurrency` buys.
        drop(first_answer(
            &config_cores,
            &format!("cores{i}"),
            &format!("{name}_cold_concurrency_cores"),
            params,
        )?);
        for dir in [format!("cold{i}"), format!("cores{i}")] {
            let _ = std::fs::remove_dir_all(work.path().join(dir));
        }
    }
    report::metric(
        S,
        "requests_per_split_opened",
        open_requests / opens.max(1.0),
        "requests",
    );
    Ok(())
}
