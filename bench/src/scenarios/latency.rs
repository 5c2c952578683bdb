//! `latency`: ingest at a steady rate and measure, per batch, the time from sending it to the
//! first search that finds its marker.

use std::sync::atomic::AtomicU64;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::client::{client, post_batch, search_total};
use crate::corpus::{logs::LogGenerator, Batch};
use crate::scenarios::{Ctx, Indexer, ZSTD_LEVEL};
use crate::{report, Error, Result};

const S: &str = "latency";

/// Batches sent per second: small batches, so that the rate is steady.
const BATCHES_PER_SEC: u64 = 10;

/// Runs the scenario: 5 MB/s for 60 s, or 1 MB/s for 10 s with `--quick` (`--size-mb` sets the
/// rate in MB/s).
pub fn run(ctx: &Ctx) -> Result<()> {
    let rate = ctx.bytes_or(1, 5);
    let secs: u64 = if ctx.quick { 10 } else { 60 };
    let count = (secs * BATCHES_PER_SEC) as usize;
    let batch_bytes = (rate / BATCHES_PER_SEC) as usize;
    let run_tag: u32 = (ctx.seed as u32).wrapping_mul(2_654_435_761) % 1_000_000;

    // Pre-built: every batch's first record carries a unique marker token.
    let mut gen = LogGenerator::new(ctx.seed ^ 0x1a7e, "bench", 400, 2000.0);
    let mut wire = Vec::with_capacity(count);
    let mut markers = Vec::with_capacity(count);
    for i in 0..count {
        let marker = format!("zqmark{run_tag}x{i}");
        let mut batch = Batch::default();
        let mut entry = gen.next_entry();
        entry.message.push_str(" benchmark=");
        entry.message.push_str(&marker);
        gen.write_record(&entry, &mut batch.ndjson);
        batch.docs = 1;
        while batch.ndjson.len() < batch_bytes {
            let entry = gen.next_entry();
            gen.write_record(&entry, &mut batch.ndjson);
            batch.docs += 1;
        }
        wire.push(batch.compress(ZSTD_LEVEL)?);
        markers.push(marker);
    }

    let indexer = Indexer::start(ctx, &[])?;
    let url = indexer.url().to_string();
    let sent: Mutex<Vec<Option<Instant>>> = Mutex::new(vec![None; count]);
    let retries = AtomicU64::new(0);
    let http = client()?;
    let endpoint = format!("{url}/api/v1/logs/ingest");
    let start = Instant::now();
    let interval = Duration::from_nanos(1_000_000_000 / BATCHES_PER_SEC);
    let (latencies, send_result) = std::thread::scope(|s| {
        let sender = s.spawn(|| -> Result<Duration> {
            for (i, batch) in wire.iter().enumerate() {
                let due = start + interval * i as u32;
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                if let Ok(mut sent) = sent.lock() {
                    sent[i] = Some(Instant::now());
                }
                post_batch(&http, &endpoint, batch, &retries)?;
            }
            Ok(start.elapsed())
        });
        // The poller looks for the oldest marker not yet seen: batches become searchable in
        // the order they were acknowledged, which is the order they were sent.
        let mut latencies = Vec::with_capacity(count);
        let mut next = 0;
        let deadline = Duration::from_secs(secs + 60);
        while next < count && start.elapsed() < deadline {
            let sent_at = sent.lock().ok().and_then(|s| s[next]);
            let Some(sent_at) = sent_at else {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            };
            match search_total(&http, &url, "logs", &markers[next]) {
                Ok(n) if n > 0 => {
                    latencies.push(sent_at.elapsed());
                    next += 1;
                }
                Ok(_) => std::thread::sleep(Duration::from_millis(10)),
                Err(e) => return (latencies, Err(e)),
            }
        }
        let sent = sender
            .join()
            .unwrap_or_else(|_| Err(Error::Child("sender panicked".into())));
        (latencies, sent)
    });
    let send_wall = send_result?;
    let total_bytes: usize = wire.iter().map(|b| b.raw_bytes).sum();
    report::metric(S, "target_rate", rate as f64 / 1e6, "MB/s");
    report::metric(
        S,
        "achieved_rate",
        total_bytes as f64 / 1e6 / send_wall.as_secs_f64(),
        "MB/s",
    );
    report::metric(S, "batches", latencies.len() as f64, "found");
    if latencies.len() < count {
        report::metric(
            S,
            "batches_not_found",
            (count - latencies.len()) as f64,
            "batches",
        );
    }
    report::percentiles(S, "ingest_to_searchable", &latencies);
    if let Some(max) = latencies.iter().max() {
        report::metric(S, "ingest_to_searchable_max", report::ms(*max), "ms");
    }
    Ok(())
}
