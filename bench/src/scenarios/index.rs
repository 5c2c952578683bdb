//! `index`: NDJSON over HTTP into a fresh indexer until all of it is searchable, beside raw
//! tantivy indexing the very same documents with the same schema in this process.

use std::sync::mpsc::sync_channel;
use std::time::{Duration, Instant};

use crate::client::{client, ingest, search_total, stream_stats, wait_total};
use crate::corpus::{batches, loghub::LoghubGenerator, logs::LogGenerator, WireBatch};
use crate::proc::{cores, dir_size};
use crate::scenarios::{bench_tmp, CorpusKind, Ctx, Indexer, BATCH_BYTES, ZSTD_LEVEL};
use crate::{raw, report, Error, Result};

const S: &str = "index";

/// The indexer's default `writer_memory_bytes`, given to raw tantivy too.
const WRITER_MEMORY: usize = 134_217_728;

/// Runs the scenario: 1 GB by default, 50 MB with `--quick`, `--size-mb` to choose. One
/// function past 100 lines: the measurement is a script (corpus, Trawl, raw tantivy, report)
/// whose steps share the timings they print.
pub fn run(ctx: &Ctx) -> Result<()> {
    let target = ctx.bytes_or(50, 1000);
    let cores = cores() as f64;
    report::info(S, "cores", &format!("{cores}"));

    let t = Instant::now();
    let (plain, phrase_query) = match ctx.corpus {
        CorpusKind::Logs => {
            let mut gen = LogGenerator::new(ctx.seed, "bench", 800, 2000.0);
            (
                batches(&mut gen, target, BATCH_BYTES),
                "\"connection reset by peer\"",
            )
        }
        CorpusKind::Loghub => {
            let mut gen = LoghubGenerator::new(ctx.seed);
            (
                batches(&mut gen, target, BATCH_BYTES),
                "\"instruction cache parity error\"",
            )
        }
    };
    report::info(S, "corpus", &format!("{:?}", ctx.corpus));
    let wire: Vec<WireBatch> = plain
        .iter()
        .map(|b| b.compress(ZSTD_LEVEL))
        .collect::<Result<_>>()?;
    let docs: u64 = plain.iter().map(|b| b.docs as u64).sum();
    let raw_bytes: u64 = plain.iter().map(|b| b.ndjson.len() as u64).sum();
    let wire_bytes: u64 = wire.iter().map(|b| b.body.len() as u64).sum();
    report::metric(S, "corpus_docs", docs as f64, "docs");
    report::metric(S, "corpus_raw", raw_bytes as f64 / 1e6, "MB");
    report::metric(S, "corpus_avg_doc", raw_bytes as f64 / docs as f64, "bytes");
    report::metric(
        S,
        "corpus_zstd_ratio",
        wire_bytes as f64 / raw_bytes as f64,
        "x",
    );
    report::metric(S, "corpus_generate", t.elapsed().as_secs_f64(), "s");

    // Ours: the real binary over HTTP.
    let ours = {
        let indexer = Indexer::start(ctx, &[])?;
        let http = client()?;
        let url = indexer.url().to_string();
        let cpu0 = indexer.child.cpu_secs()?;
        let anon = crate::proc::AnonPeak::start(indexer.child.pid());
        let (tx, rx) = sync_channel(wire.len().max(1));
        for b in wire {
            let _ = tx.send(b);
        }
        drop(tx);
        let start = Instant::now();
        let totals = ingest(&http, &url, "logs", rx, ctx.concurrency)?;
        let acked = start.elapsed();
        let cpu_acked = indexer.child.cpu_secs()?;
        if totals.accepted != docs {
            return Err(Error::Protocol {
                what: "ingest".into(),
                detail: format!(
                    "accepted {} of {docs} ({} rejected)",
                    totals.accepted, totals.rejected
                ),
            });
        }
        wait_total(
            &http,
            &url,
            "logs",
            docs,
            Duration::from_millis(100),
            Duration::from_secs(120),
        )?;
        let searchable = start.elapsed();
        let cpu = indexer.child.cpu_secs()? - cpu0;
        let mem = indexer.child.memory()?;
        let (index_bytes, _) = stream_stats(&http, &url, "logs")?;
        let data_bytes = dir_size(&indexer.data);
        // Sanity: phrase search works on what was indexed.
        let phrase = search_total(&http, &url, "logs", phrase_query)?;
        report::metric(S, "ours_acked", acked.as_secs_f64(), "s");
        report::metric(S, "ours_searchable", searchable.as_secs_f64(), "s");
        report::metric(
            S,
            "ours_last_commit_share",
            (searchable - acked).as_secs_f64() / searchable.as_secs_f64(),
            "x",
        );
        report::metric(
            S,
            "ours_acked_rate",
            raw_bytes as f64 / 1e6 / acked.as_secs_f64(),
            "MB/s",
        );
        report::metric(S, "ours_cpu_until_acked", cpu_acked - cpu0, "s");
        report::metric(S, "ours_cpu", cpu, "s");
        report::metric(
            S,
            "ours_cores_used",
            cpu / searchable.as_secs_f64(),
            "cores",
        );
        report::metric(S, "ours_peak_rss", mem.hwm_kib as f64 / 1024.0, "MiB");
        report::metric(
            S,
            "ours_peak_anon_rss",
            anon.peak_kib() as f64 / 1024.0,
            "MiB",
        );
        drop(anon);
        report::metric(S, "ours_data_dir", data_bytes as f64 / 1e6, "MB");
        report::metric(S, "ours_phrase_hits", phrase as f64, "docs");
        // Where the bytes go (measured on the live data directory: it only reads).
        match crate::space::measure(&indexer.data) {
            Ok(usage) => crate::space::print(S, &usage, Some(raw_bytes), 12),
            Err(e) => report::unavailable(S, "space", &e.to_string()),
        }
        if totals.retries > 0 {
            report::metric(S, "ours_retries", totals.retries as f64, "requests");
        }
        (searchable, cpu, index_bytes)
    };

    // Raw tantivy: same documents, same schema, same writer memory, one commit.
    let raw = {
        let dir = tempfile::Builder::new()
            .prefix("trawl-bench-raw-")
            .tempdir_in(bench_tmp())
            .map_err(Error::Io)?;
        raw::index(
            &plain,
            trawl_model::schema::LOG_FIELDS,
            dir.path(),
            WRITER_MEMORY,
        )?
    };
    if raw.docs != docs {
        return Err(Error::Protocol {
            what: "raw tantivy".into(),
            detail: format!("indexed {} of {docs}", raw.docs),
        });
    }
    report::metric(S, "raw_wall", raw.wall.as_secs_f64(), "s");
    report::metric(S, "raw_cpu", raw.cpu_secs, "s");

    let (wall, cpu, index_bytes) = ours;
    let mb = raw_bytes as f64 / 1e6;
    let ours_mbs = mb / wall.as_secs_f64();
    let raw_mbs = mb / raw.wall.as_secs_f64();
    report::compare(S, "mb_s", ours_mbs, "MB/s", "raw_tantivy", raw_mbs);
    report::compare(
        S,
        "mb_s_per_core",
        ours_mbs / cores,
        "MB/s/core",
        "raw_tantivy",
        raw_mbs / cores,
    );
    report::compare(
        S,
        "docs_s_per_core",
        docs as f64 / wall.as_secs_f64() / cores,
        "docs/s/core",
        "raw_tantivy",
        docs as f64 / raw.wall.as_secs_f64() / cores,
    );
    report::compare(
        S,
        "mb_per_cpu_s",
        mb / cpu,
        "MB/cpu-s",
        "raw_tantivy",
        mb / raw.cpu_secs,
    );
    report::compare(
        S,
        "index_bytes_ratio",
        index_bytes as f64 / raw_bytes as f64,
        "x_raw_ndjson",
        "raw_tantivy",
        raw.index_bytes as f64 / raw_bytes as f64,
    );
    Ok(())
}
