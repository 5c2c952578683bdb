//! `collect`: CRI files → `trawl collector` → `trawl indexer`, with 10 and with 1,000 files:
//! throughput per core, the collector's CPU and peak resident memory.

use std::time::{Duration, Instant};

use crate::client::{client, search_total};
use crate::corpus::{cri::write_pods_dir, logs::LogGenerator};
use crate::proc::{cores, TrawlChild};
use crate::scenarios::{bench_tmp, Ctx, Indexer};
use crate::{report, Error, Result};

const S: &str = "collect";

/// How long the indexer's total may stay still before the run is declared stuck.
const STALL: Duration = Duration::from_secs(20);

/// Runs the scenario: 500 MB of CRI files per file count (20 MB with `--quick`).
pub fn run(ctx: &Ctx) -> Result<()> {
    let bytes = ctx.bytes_or(20, 500);
    for files in [10usize, 1000] {
        if let Err(e) = run_one(ctx, files, bytes) {
            report::unavailable(S, &format!("files_{files}"), &e.to_string());
        }
    }
    Ok(())
}

fn run_one(ctx: &Ctx, files: usize, bytes: u64) -> Result<()> {
    let prefix = format!("files_{files}");
    let work = tempfile::Builder::new()
        .prefix("trawl-bench-cri-")
        .tempdir_in(bench_tmp())
        .map_err(Error::Io)?;
    let pods = work.path().join("pods");
    let mut gen = LogGenerator::new(ctx.seed ^ files as u64, "bench", files, 2000.0);
    let stats = write_pods_dir(&mut gen, &pods, bytes, ctx.seed)?;
    report::metric(S, &format!("{prefix}_files"), stats.files as f64, "files");
    report::metric(S, &format!("{prefix}_raw"), stats.bytes as f64 / 1e6, "MB");
    report::metric(
        S,
        &format!("{prefix}_records"),
        stats.records as f64,
        "records",
    );

    let indexer = Indexer::start(ctx, &[])?;
    let http = client()?;
    let config = work.path().join("collector.toml");
    let toml = format!(
        "cluster = \"bench\"\ndata_dir = {:?}\nlisten = \"127.0.0.1:0\"\n\n[collector]\npods_dir = {:?}\nindexer_url = {:?}\nnode_name = \"bench-node\"\n",
        work.path().join("collector-data").to_string_lossy(),
        pods.to_string_lossy(),
        indexer.url()
    );
    std::fs::write(&config, toml).map_err(|e| Error::path(&config, e))?;
    let config_arg = config.to_string_lossy().into_owned();
    let indexer_cpu0 = indexer.child.cpu_secs()?;
    let start = Instant::now();
    let mut collector = TrawlChild::start(
        &ctx.bin,
        &["collector", "--config", &config_arg],
        &[],
        Duration::from_secs(30),
    )?;
    let cpu0 = collector.cpu_secs()?;
    let expected = stats.records as u64;
    let mut last = (0u64, Instant::now());
    loop {
        let total = search_total(&http, indexer.url(), "logs", "*")?;
        if total >= expected {
            break;
        }
        if !collector.is_running() {
            return Err(Error::Child(format!(
                "collector exited after shipping {total} of {expected} records; stderr: {}",
                collector.stderr_tail()
            )));
        }
        if total != last.0 {
            last = (total, Instant::now());
        } else if last.1.elapsed() > STALL {
            return Err(Error::Timeout(format!(
                "collector shipped {total} of {expected} records and nothing more for {}s; stderr: {}",
                STALL.as_secs(),
                collector.stderr_tail()
            )));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let wall = start.elapsed().as_secs_f64();
    let cpu = collector.cpu_secs()? - cpu0;
    let mem = collector.memory()?;
    let indexer_cpu = indexer.child.cpu_secs()? - indexer_cpu0;
    let mb = stats.bytes as f64 / 1e6;
    report::metric(S, &format!("{prefix}_mb_s"), mb / wall, "MB/s");
    report::metric(
        S,
        &format!("{prefix}_mb_s_per_core"),
        mb / wall / cores() as f64,
        "MB/s/core",
    );
    report::metric(
        S,
        &format!("{prefix}_collector_mb_per_cpu_s"),
        mb / cpu.max(1e-9),
        "MB/cpu-s",
    );
    report::metric(S, &format!("{prefix}_collector_cpu"), cpu, "s");
    report::metric(S, &format!("{prefix}_indexer_cpu"), indexer_cpu, "s");
    report::metric(
        S,
        &format!("{prefix}_collector_peak_rss"),
        mem.hwm_kib as f64 / 1024.0,
        "MiB",
    );
    drop(collector);
    drop(indexer);
    Ok(())
}
