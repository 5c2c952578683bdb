//! The scenarios, each a function printing its metrics, and what they share: the run context,
//! starting a fresh indexer, and loading a corpus before measuring something else.

pub mod audit;
pub mod collect;
pub mod export;
pub mod index;
pub mod latency;
pub mod search;
pub mod tier;

use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use reqwest::blocking::Client;

use crate::client::{ingest, wait_total, IngestTotals};
use crate::corpus::{next_batch_limited, LineSource, WireBatch};
use crate::proc::TrawlChild;
use crate::{report, Error, Result};

/// Settings shared by every scenario.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// Small data, fewer runs: the whole suite in a few minutes.
    pub quick: bool,
    /// Corpus size for `index`, `latency` (MB/s) and `collect`, overriding the default.
    pub size_mb: Option<u64>,
    /// Document count for `search`, `audit` and `export`, overriding the default.
    pub docs: Option<u64>,
    /// Runs per query or report (after one warm-up).
    pub runs: Option<usize>,
    /// Corpus seed.
    pub seed: u64,
    /// Concurrent ingest requests.
    pub concurrency: usize,
    /// The `trawl` binary.
    pub bin: PathBuf,
    /// Extra environment for every indexer started (`TRAWL_INDEXER__COMMIT_INTERVAL_MS=...`),
    /// for tuning experiments without editing code.
    pub indexer_env: Vec<(String, String)>,
    /// A data directory kept across runs (`--keep-data`), instead of a temporary one.
    pub keep_data: Option<PathBuf>,
    /// The documents of `index` (`--corpus`).
    pub corpus: CorpusKind,
}

/// Which generated documents `index` loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CorpusKind {
    /// Kubernetes container logs (JSON access logs, Java, nginx, klog, CoreDNS).
    #[default]
    Logs,
    /// Lines in the styles of the loghub samples (HDFS, Apache, Spark, OpenSSH, Zookeeper,
    /// BGL): more distinct tokens per byte.
    Loghub,
}

impl Ctx {
    /// Timed runs per query: 50, or 10 with `--quick`, unless `--runs` says otherwise.
    pub fn runs(&self) -> usize {
        self.runs.unwrap_or(if self.quick { 10 } else { 50 }).max(1)
    }

    /// `--docs`, else `quick` or `full`.
    pub fn docs_or(&self, quick: u64, full: u64) -> u64 {
        self.docs.unwrap_or(if self.quick { quick } else { full })
    }

    /// `--size-mb` in bytes, else `quick` or `full` MB.
    pub fn bytes_or(&self, quick_mb: u64, full_mb: u64) -> u64 {
        self.size_mb
            .unwrap_or(if self.quick { quick_mb } else { full_mb })
            * 1_000_000
    }
}

/// Uncompressed size of one ingest request, as a collector sends (1 MiB).
pub const BATCH_BYTES: usize = 1 << 20;

/// zstd level of the request bodies (what a collector would use: fast).
pub const ZSTD_LEVEL: i32 = 1;

/// An indexer on a free port with its own temporary data directory (removed on drop, after
/// the child is killed: field order), or a kept one.
pub struct Indexer {
    pub child: TrawlChild,
    /// The data directory.
    pub data: PathBuf,
    /// The temporary directory, removed when the indexer is dropped.
    _dir: Option<tempfile::TempDir>,
}

impl Indexer {
    /// Starts `trawl indexer --listen 127.0.0.1:0 --data-dir <tmp>` with `envs`.
    pub fn start(ctx: &Ctx, envs: &[(String, String)]) -> Result<Indexer> {
        let dir = tempfile::Builder::new()
            .prefix("trawl-bench-")
            .tempdir_in(bench_tmp())
            .map_err(Error::Io)?;
        let data = dir.path().join("data");
        Indexer::start_in(ctx, envs, &data, Some(dir))
    }

    /// Starts an indexer on `data`, kept after the run.
    pub fn start_kept(ctx: &Ctx, envs: &[(String, String)], data: &Path) -> Result<Indexer> {
        std::fs::create_dir_all(data).map_err(Error::Io)?;
        Indexer::start_in(ctx, envs, data, None)
    }

    fn start_in(
        ctx: &Ctx,
        envs: &[(String, String)],
        data: &Path,
        dir: Option<tempfile::TempDir>,
    ) -> Result<Indexer> {
        let path = data.to_path_buf();
        let data = data.to_string_lossy().into_owned();
        let mut all_envs = ctx.indexer_env.clone();
        all_envs.extend_from_slice(envs);
        let child = TrawlChild::start(
            &ctx.bin,
            &["indexer", "--listen", "127.0.0.1:0", "--data-dir", &data],
            &all_envs,
            Duration::from_secs(60),
        )?;
        Ok(Indexer {
            child,
            data: path,
            _dir: dir,
        })
    }

    pub fn url(&self) -> &str {
        &self.child.url
    }
}

/// An indexer holding `docs` documents of `stream`, loaded by `load`: a fresh one, or with
/// `--keep-data DIR` the load kept in `DIR` by an earlier run of the same corpus (same stream,
/// size and seed), reopened without loading again, so that two builds are timed on the same
/// data.
pub fn loaded_indexer(
    ctx: &Ctx,
    scenario: &str,
    http: &Client,
    stream: &str,
    docs: u64,
    load: impl FnOnce(&Indexer) -> Result<()>,
) -> Result<Indexer> {
    let Some(dir) = &ctx.keep_data else {
        let indexer = Indexer::start(ctx, &[])?;
        load(&indexer)?;
        return Ok(indexer);
    };
    let marker = dir.join("bench-load");
    let wanted = format!("stream={stream} docs={docs} seed={}\n", ctx.seed);
    let loaded = std::fs::read_to_string(&marker).ok();
    match &loaded {
        Some(found) if *found != wanted => {
            return Err(Error::Child(format!(
                "{} holds a load of {}, not of {}: choose another --keep-data",
                dir.display(),
                found.trim(),
                wanted.trim()
            )))
        }
        None if dir
            .read_dir()
            .is_ok_and(|mut entries| entries.next().is_some()) =>
        {
            return Err(Error::Child(format!(
                "{} is not empty and holds no bench load: choose another --keep-data",
                dir.display()
            )))
        }
        _ => {}
    }
    let indexer = Indexer::start_kept(ctx, &[], &dir.join("data"))?;
    if loaded.is_none() {
        load(&indexer)?;
        std::fs::write(&marker, wanted).map_err(Error::Io)?;
    } else {
        report::info(scenario, "kept_data", &dir.display().to_string());
        let took = wait_total(
            http,
            indexer.url(),
            stream,
            docs,
            Duration::from_millis(250),
            Duration::from_secs(300),
        )?;
        report::metric(scenario, "reopen", took.as_secs_f64(), "s");
    }
    Ok(indexer)
}

/// Where temporary data goes: `$TRAWL_BENCH_TMP`, else `/var/tmp` (disk-backed, unlike a tmpfs
/// `/tmp`), else the system temp dir.
pub fn bench_tmp() -> PathBuf {
    if let Some(dir) = std::env::var_os("TRAWL_BENCH_TMP") {
        return PathBuf::from(dir);
    }
    let var_tmp = PathBuf::from("/var/tmp");
    if var_tmp.is_dir() {
        var_tmp
    } else {
        std::env::temp_dir()
    }
}

/// Generates `docs` documents from `source` on a thread, in compressed batches, into a short
/// queue (eight batches: enough to keep the senders busy, small enough to bound memory).
pub fn generated_feed<S: LineSource + Send + 'static>(
    mut source: S,
    docs: u64,
) -> (Receiver<WireBatch>, JoinHandle<Result<()>>) {
    let (tx, rx) = sync_channel(8);
    let handle = std::thread::spawn(move || {
        let mut left = docs;
        while left > 0 {
            let batch = next_batch_limited(
                &mut source,
                BATCH_BYTES,
                left.min(usize::MAX as u64) as usize,
            );
            left -= batch.docs as u64;
            if tx.send(batch.compress(ZSTD_LEVEL)?).is_err() {
                break;
            }
        }
        Ok(())
    });
    (rx, handle)
}

/// Loads `docs` documents of `source` into `stream` and waits until all are searchable;
/// prints the load figures (`<scenario> load_*`), which are not the scenario's measurement.
pub fn load<S: LineSource + Send + 'static>(
    ctx: &Ctx,
    scenario: &str,
    client: &Client,
    indexer: &Indexer,
    stream: &str,
    source: S,
    docs: u64,
) -> Result<IngestTotals> {
    let start = Instant::now();
    let (rx, generator) = generated_feed(source, docs);
    let totals = ingest(client, indexer.url(), stream, rx, ctx.concurrency)?;
    generator
        .join()
        .map_err(|_| Error::Child("generator panicked".into()))??;
    wait_total(
        client,
        indexer.url(),
        stream,
        totals.accepted,
        Duration::from_millis(250),
        Duration::from_secs(120),
    )?;
    let wall = start.elapsed().as_secs_f64();
    report::metric(scenario, "load_docs", totals.accepted as f64, "docs");
    if totals.rejected > 0 {
        report::metric(scenario, "load_rejected", totals.rejected as f64, "docs");
    }
    report::metric(scenario, "load_raw", totals.raw_bytes as f64 / 1e6, "MB");
    report::metric(
        scenario,
        "load_rate",
        totals.raw_bytes as f64 / 1e6 / wall,
        "MB/s",
    );
    Ok(totals)
}

/// Runs `f` once to warm up, then `runs` times, timing each; the first error ends it.
pub fn time_runs<F: FnMut() -> Result<()>>(runs: usize, mut f: F) -> Result<Vec<Duration>> {
    f()?;
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        f()?;
        samples.push(t.elapsed());
    }
    Ok(samples)
}
