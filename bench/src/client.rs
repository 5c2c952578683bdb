//! The HTTP side of the harness: concurrent ingest of pre-compressed batches, searches, and
//! waits until a stream holds a number of documents.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use reqwest::blocking::Client;
use serde_json::Value;

use crate::corpus::WireBatch;
use crate::{Error, Result};

/// A blocking client with timeouts generous enough for a loaded 2-core machine.
pub fn client() -> Result<Client> {
    Ok(Client::builder()
        .timeout(Duration::from_secs(600))
        .pool_max_idle_per_host(16)
        .build()?)
}

/// What an ingest run achieved.
#[derive(Debug, Clone, Copy, Default)]
pub struct IngestTotals {
    pub accepted: u64,
    pub rejected: u64,
    pub raw_bytes: u64,
    pub wire_bytes: u64,
    pub batches: u64,
    /// Answers 429/503 that were retried.
    pub retries: u64,
}

/// Posts every batch from `batches` to `POST {url}/api/v1/{stream}/ingest` with
/// `Content-Encoding: zstd`, `concurrency` requests at a time, retrying 429 and 503 after a
/// pause. Returns when the channel is closed and drained. Errors: any other status, or a
/// transport error; the first rejected line's message is reported on stderr once.
pub fn ingest(
    client: &Client,
    url: &str,
    stream: &str,
    batches: Receiver<WireBatch>,
    concurrency: usize,
) -> Result<IngestTotals> {
    let endpoint = format!("{url}/api/v1/{stream}/ingest");
    let rx = Mutex::new(batches);
    let counters: [AtomicU64; 6] = Default::default();
    let reported = std::sync::Once::new();
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..concurrency.max(1))
            .map(|_| {
                s.spawn(|| -> Result<()> {
                    loop {
                        let next = match rx.lock() {
                            Ok(rx) => rx.recv(),
                            Err(_) => return Err(Error::Child("ingest queue poisoned".into())),
                        };
                        let Ok(batch) = next else { return Ok(()) };
                        let answer = post_batch(client, &endpoint, &batch, &counters[5])?;
                        let accepted = answer.get("accepted").and_then(Value::as_u64).unwrap_or(0);
                        let rejected = answer.get("rejected").and_then(Value::as_u64).unwrap_or(0);
                        if rejected > 0 {
                            reported.call_once(|| {
                                eprintln!(
                                    "warning: {stream} ingest rejected lines, first: {}",
                                    answer
                                        .get("errors")
                                        .map(Value::to_string)
                                        .unwrap_or_default()
                                );
                            });
                        }
                        counters[0].fetch_add(accepted, Ordering::Relaxed);
                        counters[1].fetch_add(rejected, Ordering::Relaxed);
                        counters[2].fetch_add(batch.raw_bytes as u64, Ordering::Relaxed);
                        counters[3].fetch_add(batch.body.len() as u64, Ordering::Relaxed);
                        counters[4].fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        let mut result = Ok(());
        for w in workers {
            match w.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    if result.is_ok() {
                        result = Err(e);
                    }
                }
                Err(_) => result = Err(Error::Child("ingest worker panicked".into())),
            }
        }
        result
    })?;
    Ok(IngestTotals {
        accepted: counters[0].load(Ordering::Relaxed),
        rejected: counters[1].load(Ordering::Relaxed),
        raw_bytes: counters[2].load(Ordering::Relaxed),
        wire_bytes: counters[3].load(Ordering::Relaxed),
        batches: counters[4].load(Ordering::Relaxed),
        retries: counters[5].load(Ordering::Relaxed),
    })
}

/// Posts one batch, retrying 429/503; the parsed ingest answer.
pub fn post_batch(
    client: &Client,
    endpoint: &str,
    batch: &WireBatch,
    retries: &AtomicU64,
) -> Result<Value> {
    loop {
        let response = client
            .post(endpoint)
            .header("content-type", "application/x-ndjson")
            .header("content-encoding", "zstd")
            .body(batch.body.clone())
            .send()?;
        let status = response.status().as_u16();
        if status == 429 || status == 503 {
            retries.fetch_add(1, Ordering::Relaxed);
            let wait = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
                .map_or(Duration::from_millis(200), |s| {
                    Duration::from_secs(s.min(5))
                });
            std::thread::sleep(wait);
            continue;
        }
        let body = response.text()?;
        if status != 200 {
            return Err(Error::Status {
                what: endpoint.to_string(),
                status,
                body: body.chars().take(500).collect(),
            });
        }
        return serde_json::from_str(&body).map_err(|e| Error::Protocol {
            what: endpoint.to_string(),
            detail: format!("{e}: {}", body.chars().take(200).collect::<String>()),
        });
    }
}

/// GETs `url` and parses JSON; `Ok(None)` on 404 (an endpoint not built yet).
pub fn get_json(client: &Client, url: &str) -> Result<Option<Value>> {
    answer_json(url, client.get(url).send()?)
}

/// POSTs `body` as JSON to `url` and parses the JSON answer; `Ok(None)` on 404.
pub fn post_json(client: &Client, url: &str, body: &Value) -> Result<Option<Value>> {
    let request = client
        .post(url)
        .header("Content-Type", "application/json")
        .body(body.to_string());
    answer_json(url, request.send()?)
}

/// The JSON of a 200 answer, `None` for a 404, an error for any other status.
fn answer_json(url: &str, response: reqwest::blocking::Response) -> Result<Option<Value>> {
    let status = response.status().as_u16();
    let body = response.text()?;
    if status == 404 {
        return Ok(None);
    }
    if status != 200 {
        return Err(Error::Status {
            what: url.to_string(),
            status,
            body: body.chars().take(500).collect(),
        });
    }
    serde_json::from_str(&body)
        .map(Some)
        .map_err(|e| Error::Protocol {
            what: url.to_string(),
            detail: format!("{e}: {}", body.chars().take(200).collect::<String>()),
        })
}

/// Percent-encodes a query-string value.
pub fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len() * 2);
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `total` of `GET {url}/api/v1/{stream}/search?q=..&limit=0`.
pub fn search_total(client: &Client, url: &str, stream: &str, q: &str) -> Result<u64> {
    let u = format!("{url}/api/v1/{stream}/search?limit=0&q={}", encode(q));
    let value = get_json(client, &u)?.ok_or_else(|| Error::Status {
        what: u.clone(),
        status: 404,
        body: String::new(),
    })?;
    value
        .get("total")
        .and_then(Value::as_u64)
        .ok_or_else(|| Error::Protocol {
            what: u,
            detail: "no `total`".into(),
        })
}

/// Polls the stream's total (every `every`) until it reaches `expected`; the time it took. Errors
/// when `timeout` passes, or when the total stops moving for `stall` (saying where it stuck).
pub fn wait_total(
    client: &Client,
    url: &str,
    stream: &str,
    expected: u64,
    every: Duration,
    stall: Duration,
) -> Result<Duration> {
    let start = Instant::now();
    let mut last = (u64::MAX, Instant::now());
    loop {
        let total = search_total(client, url, stream, "*")?;
        if total >= expected {
            return Ok(start.elapsed());
        }
        if total != last.0 {
            last = (total, Instant::now());
        } else if last.1.elapsed() > stall {
            return Err(Error::Timeout(format!(
                "{stream} stuck at {total} of {expected} documents for {:?}",
                stall
            )));
        }
        std::thread::sleep(every);
    }
}

/// Index bytes and docs of a stream from `GET /api/v1/streams`.
pub fn stream_stats(client: &Client, url: &str, stream: &str) -> Result<(u64, u64)> {
    let u = format!("{url}/api/v1/streams");
    let value = get_json(client, &u)?.ok_or_else(|| Error::Status {
        what: u.clone(),
        status: 404,
        body: String::new(),
    })?;
    let streams = value
        .get("streams")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let s = streams
        .iter()
        .find(|s| s.get("name").and_then(Value::as_str) == Some(stream))
        .ok_or_else(|| Error::Protocol {
            what: u.clone(),
            detail: format!("no stream `{stream}`"),
        })?;
    let field = |k: &str| s.get(k).and_then(Value::as_u64).unwrap_or(0);
    Ok((field("bytes"), field("docs")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding() {
        assert_eq!(encode("a b:\"c\"*"), "a%20b%3A%22c%22%2A");
        assert_eq!(encode("now-15m"), "now-15m");
    }
}
