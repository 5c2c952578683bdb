//! `export`: rows per second and the indexer's memory growth while it streams all `logs`
//! documents as Arrow IPC (every column, then only the fast-field columns), Parquet, NDJSON
//! and CSV, then sorted newest first as NDJSON and Arrow.

use std::io::Read;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::client::client;
use crate::corpus::logs::LogGenerator;
use crate::scenarios::{load, loaded_indexer, Ctx};
use crate::{report, Error, Result};

const S: &str = "export";

/// The columns of `logs` that are fast fields (everything but `message`, `labels` and
/// `attributes`): an export of only these never reads the doc store.
const FAST_COLUMNS: &str =
    "timestamp,cluster,node,namespace,pod,pod_uid,container,container_id,image,stream,level,file,offset";

/// The exports measured: (metric prefix, query string).
const EXPORTS: &[(&str, &str)] = &[
    ("arrow", "format=arrow"),
    ("arrow_fast", "format=arrow&fields=FAST"),
    ("parquet", "format=parquet"),
    ("ndjson", "format=ndjson"),
    ("csv", "format=csv"),
    // Sorted: one thread merging every segment's matches in time order.
    ("ndjson_sorted", "format=ndjson&sort=desc"),
    ("arrow_sorted", "format=arrow&sort=desc"),
];

/// Runs the scenario over 5M rows (200k with `--quick`, `--docs` to choose). One function
/// past 100 lines: the measurement is a script (load, one export a format, report) whose steps
/// share the timings they print.
pub fn run(ctx: &Ctx) -> Result<()> {
    let docs = ctx.docs_or(200_000, 5_000_000);
    let http = client()?;
    let indexer = loaded_indexer(ctx, S, &http, "logs", docs, |indexer| {
        let gen = LogGenerator::new(ctx.seed, "bench", 800, 2000.0);
        load(ctx, S, &http, indexer, "logs", gen, docs).map(|_| ())
    })?;
    // The load ends with the indexer still committing, sealing and merging, which maps index
    // files into its resident set; the export's own growth is measured once that work is done.
    let settle = Instant::now();
    let mut cpu = indexer.child.cpu_secs()?;
    loop {
        std::thread::sleep(Duration::from_secs(2));
        let now = indexer.child.cpu_secs()?;
        let idle = now - cpu < 0.1;
        cpu = now;
        if idle || settle.elapsed() > Duration::from_secs(300) {
            break;
        }
    }
    report::metric(S, "settle", settle.elapsed().as_secs_f64(), "s");
    for &(format, params) in EXPORTS {
        let params = params.replace("FAST", FAST_COLUMNS);
        let url = format!("{}/api/v1/logs/export?{params}", indexer.url());
        let before = indexer.child.memory()?;
        let peak = AtomicU64::new(before.rss_kib);
        let status_kib = |key: &str| -> Option<u64> {
            std::fs::read_to_string(format!("/proc/{}/status", indexer.child.pid()))
                .ok()?
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse::<u64>().ok())
        };
        // Anonymous memory (heap) apart from file-backed pages: reading the doc store through
        // mmap maps the split files' pages into the process, which VmRSS counts although the
        // kernel reclaims them at will.
        let anon_before = status_kib("RssAnon:").unwrap_or(0);
        let anon_peak = AtomicU64::new(anon_before);
        let done = AtomicBool::new(false);
        let pid = indexer.child.pid();
        let outcome = std::thread::scope(|s| {
            s.spawn(|| {
                // RSS sampled every 20 ms: VmHWM would include the indexing peak.
                let path = format!("/proc/{pid}/status");
                while !done.load(Ordering::Relaxed) {
                    if let Ok(text) = std::fs::read_to_string(&path) {
                        let field = |key: &str| {
                            text.lines()
                                .find_map(|l| l.strip_prefix(key))
                                .and_then(|v| v.split_whitespace().next())
                                .and_then(|v| v.parse::<u64>().ok())
                        };
                        if let Some(kib) = field("VmRSS:") {
                            peak.fetch_max(kib, Ordering::Relaxed);
                        }
                        if let Some(kib) = field("RssAnon:") {
                            anon_peak.fetch_max(kib, Ordering::Relaxed);
                        }
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            });
            let result = fetch(&http, &url);
            done.store(true, Ordering::Relaxed);
            result
        });
        match outcome {
            Ok(None) => report::unavailable(S, format, "404"),
            Err(e) => report::unavailable(S, format, &e.to_string()),
            Ok(Some((bytes, first_byte, wall))) => {
                let peak = peak.load(Ordering::Relaxed);
                report::metric(
                    S,
                    &format!("{format}_rows_s"),
                    docs as f64 / wall.as_secs_f64(),
                    "rows/s",
                );
                report::metric(
                    S,
                    &format!("{format}_mb_s"),
                    bytes as f64 / 1e6 / wall.as_secs_f64(),
                    "MB/s",
                );
                report::metric(S, &format!("{format}_bytes"), bytes as f64 / 1e6, "MB");
                report::metric(
                    S,
                    &format!("{format}_first_byte"),
                    report::ms(first_byte),
                    "ms",
                );
                report::metric(
                    S,
                    &format!("{format}_rss_before"),
                    before.rss_kib as f64 / 1024.0,
                    "MiB",
                );
                report::metric(
                    S,
                    &format!("{format}_rss_peak"),
                    peak as f64 / 1024.0,
                    "MiB",
                );
                report::metric(
                    S,
                    &format!("{format}_rss_growth"),
                    peak.saturating_sub(before.rss_kib) as f64 / 1024.0,
                    "MiB",
                );
                report::metric(
                    S,
                    &format!("{format}_anon_rss_growth"),
                    anon_peak
                        .load(Ordering::Relaxed)
                        .saturating_sub(anon_before) as f64
                        / 1024.0,
                    "MiB",
                );
            }
        }
    }
    Ok(())
}

/// Streams the export body to nowhere: (bytes, time to first byte, total time); `None` on 404.
fn fetch(http: &reqwest::blocking::Client, url: &str) -> Result<Option<(u64, Duration, Duration)>> {
    let start = Instant::now();
    let mut response = http.get(url).send()?;
    let status = response.status().as_u16();
    if status == 404 {
        return Ok(None);
    }
    if status != 200 {
        let body = response.text().unwrap_or_default();
        return Err(Error::Status {
            what: url.to_string(),
            status,
            body: body.chars().take(300).collect(),
        });
    }
    let mut buf = vec![0u8; 256 * 1024];
    let mut bytes = 0u64;
    let mut first = None;
    loop {
        let n = response.read(&mut buf).map_err(Error::Io)?;
        if n == 0 {
            break;
        }
        first.get_or_insert_with(|| start.elapsed());
        bytes += n as u64;
    }
    Ok(Some((bytes, first.unwrap_or_default(), start.elapsed())))
}
