//! Fault injection through real `trawl collector` and `trawl indexer` processes: 200,000 CRI
//! lines in many pod directories while a seeded driver SIGKILLs either process at random
//! moments, rotates files by rename and by copytruncate, fills the indexer's disk for a while
//! (the `TRAWL_TEST_FAULT_DIR` hook: 507 with `Retry-After`), and has the proxy between the two
//! refuse every batch for a while (404, then 413 for every batch as the collector builds it).
//! The indexer also aborts once right after the metastore publishes a merge (the
//! `crash_after_merge_publish` hook), before the merge's inputs are removed.
//! At the end the set of (file, line number) written equals the set exported back, each once.
//!
//! The seed is printed; `FAULT_SEED=<n>` replays a run's schedule.

use std::collections::HashMap;
use std::fs::{self, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use reqwest::blocking::Client;
use reqwest::StatusCode;

use crate::fault_proxy::{FaultProxy, Mode};
use crate::support::{free_port, wait_until, Server};

/// Pod directories written at once.
const PODS: usize = 16;
/// Lines per pod: 16 × 12,500 = 200,000.
const LINES_PER_POD: usize = 12_500;
/// Writing rounds; the driver acts between them. Divides `LINES_PER_POD`.
const ROUNDS: usize = 50;
/// SIGKILLs in a run, split between the two processes.
const KILLS: usize = 12;
/// Rounds the disk stays full.
const DISK_FULL_ROUNDS: usize = 4;
/// Rounds the proxy answers 404 to every batch, then rounds it answers 413 to every body over
/// [`PROXY_MAX_BODY`].
const REFUSED_ROUNDS: usize = 2;
/// The proxy's body limit in its 413 rounds: below every whole batch of the collector (512 KiB
/// of NDJSON, tens of KiB compressed), above any single record.
const PROXY_MAX_BODY: usize = 6 * 1024;
/// How long the whole pipeline may take to catch up once the writing stops.
const CATCH_UP: Duration = Duration::from_secs(180);

/// The indexer's configuration: commits and seals often enough that kills land in every phase
/// (WAL append, commit, seal, merge) of a short run.
const INDEXER_CONFIG: &str = "[indexer]\ncommit_interval_ms = 300\nsplit_max_docs = 40000\nsplit_max_age_secs = 20\nmerge_min_splits = 3\njanitor_interval_secs = 5\n[collector]\nenabled = false\n";

/// One pod's log: `<pods>/<ns>_<pod>_<uid>/app/0.log` and its rotated files.
struct PodLog {
    name: String,
    dir: PathBuf,
    written: usize,
    rotations: usize,
}

impl PodLog {
    fn live(&self) -> PathBuf {
        self.dir.join("0.log")
    }

    /// The text of line `n`: the pod and the line number, which the check parses back.
    fn text(&self, n: usize) -> String {
        format!("{} line {n} of the fault run", self.name)
    }

    /// Appends `count` CRI lines; every 4th is written as two partial fragments.
    fn write(&mut self, count: usize) {
        let mut out = String::with_capacity(count * 90);
        for _ in 0..count {
            let n = self.written;
            let ts = format!("2026-11-25T11:{:02}:{:02}.{:09}Z", (n / 60) % 60, n % 60, n);
            let text = self.text(n);
            if n.is_multiple_of(4) {
                let (a, b) = text.split_at(text.len() / 2);
                out.push_str(&format!("{ts} stdout P {a}\n{ts} stdout F {b}\n"));
            } else {
                out.push_str(&format!("{ts} stderr F {text}\n"));
            }
            self.written += 1;
        }
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.live())
            .unwrap()
            .write_all(out.as_bytes())
            .unwrap();
    }

    /// Rotates by rename (the kubelet's way) or by copytruncate (logrotate's).
    fn rotate(&mut self, by_rename: bool) {
        self.rotations += 1;
        let rotated = self
            .dir
            .join(format!("0.log.20261125-11{:04}", self.rotations));
        if by_rename {
            fs::rename(self.live(), &rotated).unwrap();
        } else {
            fs::copy(self.live(), &rotated).unwrap();
            OpenOptions::new()
                .write(true)
                .open(self.live())
                .unwrap()
                .set_len(0)
                .unwrap();
        }
    }
}

fn pods(pods_dir: &Path, count: usize) -> Vec<PodLog> {
    (0..count)
        .map(|i| {
            let name = format!("fpod{i}");
            let dir = pods_dir
                .join(format!("ns{}_{name}_uid-f{i}", i % 4))
                .join("app");
            fs::create_dir_all(&dir).unwrap();
            PodLog {
                name,
                dir,
                written: 0,
                rotations: 0,
            }
        })
        .collect()
}

fn collector_config(pods_dir: &Path, data_dir: &Path, indexer: &str) -> String {
    format!(
        "[collector]\npods_dir = \"{}\"\ndata_dir = \"{}\"\nindexer_url = \"{indexer}\"\nnode_name = \"node-f\"\nbatch_max_wait_ms = 100\nbatch_max_bytes = 524288\nmax_in_flight = 4\nrescan_interval_ms = 200\naudit_webhook = false\n",
        pods_dir.display(),
        data_dir.display()
    )
}

/// A real indexer and collector, the proxy between them, and what it takes to restart them.
struct Cluster {
    indexer: Option<Server>,
    collector: Option<Server>,
    proxy: FaultProxy,
    indexer_dir: PathBuf,
    collector_dir: PathBuf,
    collector_config: String,
    listen: String,
    fault_dir: PathBuf,
    /// Times the indexer aborted at the merge-publish crash point.
    merge_crashes: usize,
}

impl Cluster {
    fn start(root: &Path) -> Cluster {
        let pods_dir = root.join("pods");
        fs::create_dir_all(&pods_dir).unwrap();
        let fault_dir = root.join("faults");
        fs::create_dir_all(&fault_dir).unwrap();
        let listen = format!("127.0.0.1:{}", free_port());
        let collector_dir = root.join("collector");
        let proxy = FaultProxy::start(&format!("http://{listen}"), Mode::Forward);
        let mut cluster = Cluster {
            indexer: None,
            collector: None,
            indexer_dir: root.join("indexer"),
            collector_config: collector_config(&pods_dir, &collector_dir, &proxy.url),
            proxy,
            collector_dir,
            listen,
            fault_dir,
            merge_crashes: 0,
        };
        cluster.start_indexer();
        cluster.start_collector();
        cluster
    }

    fn start_indexer(&mut self) {
        let client = Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .unwrap();
        self.indexer = Some(Server::start_with_env(
            "indexer",
            &self.indexer_dir,
            INDEXER_CONFIG,
            &self.listen,
            client,
            &[("TRAWL_TEST_FAULT_DIR", self.fault_dir.as_os_str())],
        ));
    }

    fn start_collector(&mut self) {
        self.collector = Some(Server::start_with_config(
            "collector",
            &self.collector_dir,
            &self.collector_config,
        ));
    }

    fn indexer(&self) -> &Server {
        self.indexer.as_ref().unwrap()
    }

    fn collector(&self) -> &Server {
        self.collector.as_ref().unwrap()
    }

    fn set_disk_full(&self, full: bool) {
        let flag = self.fault_dir.join("enospc");
        if full {
            fs::write(flag, b"").unwrap();
        } else {
            fs::remove_file(flag).unwrap();
        }
    }

    /// Arms (or disarms) the crash point right after a merge is published.
    fn arm_merge_crash(&self, armed: bool) {
        let flag = self
            .fault_dir
            .join(trawl_indexer::CRASH_AFTER_MERGE_PUBLISH);
        if armed {
            fs::write(flag, b"").unwrap();
        } else if flag.exists() {
            fs::remove_file(flag).unwrap();
        }
    }

    /// When the indexer aborted at the merge-publish crash point: reaps it (SIGABRT), disarms
    /// the point and starts the indexer again on the same data.
    fn revive_after_merge_crash(&mut self) {
        if !self.indexer.as_mut().unwrap().has_exited() {
            return;
        }
        let status = self.indexer.take().unwrap().wait_exit(Duration::ZERO);
        assert_eq!(
            status.signal(),
            Some(6),
            "the indexer died otherwise: {status}"
        );
        self.arm_merge_crash(false);
        self.merge_crashes += 1;
        self.start_indexer();
    }

    /// Every `logs` record the indexer holds; a request that fails because the indexer has just
    /// aborted at the crash point is asked again of the restarted indexer.
    fn indexed(&mut self) -> u64 {
        let client = Client::new();
        loop {
            self.revive_after_merge_crash();
            let url = self.indexer().at("/api/v1/logs/search?q=*&limit=0");
            match client
                .get(url)
                .send()
                .and_then(|r| r.json::<serde_json::Value>())
            {
                Ok(body) => return body["total"].as_u64().expect("a total"),
                Err(err) => {
                    wait_until(
                        "the indexer that did not answer has aborted at the crash point",
                        Duration::from_secs(10),
                        || self.indexer.as_mut().unwrap().has_exited(),
                    );
                    eprintln!("search failed while the indexer aborted: {err}");
                }
            }
        }
    }

    /// The collector's count of batches it had to send again.
    fn collector_retries(&self) -> f64 {
        self.collector()
            .metric("trawl_collector_batches_retried_total")
            .unwrap_or(0.0)
    }
}

/// A direct ingest while the disk is full: 507 with `Retry-After` and the JSON error, and the
/// record is not taken.
fn assert_direct_ingest_refused(indexer: &Server) {
    let resp = Client::new()
        .post(indexer.at("/api/v1/logs/ingest"))
        .header("content-type", "application/x-ndjson")
        .body("{\"message\":\"direct ingest while the disk is full\"}\n")
        .send()
        .unwrap();
    assert_eq!(resp.status(), StatusCode::INSUFFICIENT_STORAGE);
    let retry_after: u64 = resp
        .headers()
        .get("retry-after")
        .expect("a 507 carries Retry-After")
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "Retry-After {retry_after}");
    let body: serde_json::Value = resp.json().unwrap();
    assert_eq!(body["error"]["code"], "insufficient_storage", "{body}");
}

/// What the export held, compared with what was written.
#[derive(Debug, Default)]
struct Tally {
    written: usize,
    indexed: usize,
    missing: usize,
    duplicated: usize,
    foreign: usize,
}

/// Exports every `logs` record as NDJSON (streamed) and compares its (pod, line number) set with
/// what was written.
fn tally(indexer: &Server, pods: &[PodLog]) -> Tally {
    let resp = Client::builder()
        .timeout(Duration::from_secs(300))
        .build()
        .unwrap()
        .get(indexer.at("/api/v1/logs/export"))
        .query(&[("format", "ndjson"), ("fields", "message,pod")])
        .send()
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let index: HashMap<&str, usize> = pods
        .iter()
        .enumerate()
        .map(|(i, p)| (p.name.as_str(), i))
        .collect();
    let mut seen: Vec<Vec<u8>> = pods.iter().map(|p| vec![0u8; p.written]).collect();
    let mut tally = Tally {
        written: pods.iter().map(|p| p.written).sum(),
        ..Tally::default()
    };
    for line in BufReader::new(resp).lines() {
        let line = line.unwrap();
        if line.is_empty() {
            continue;
        }
        tally.indexed += 1;
        let record: serde_json::Value = serde_json::from_str(&line).unwrap();
        let message = record["message"].as_str().unwrap_or_default();
        let parsed = message
            .strip_suffix(" of the fault run")
            .and_then(|m| m.split_once(" line "))
            .and_then(|(pod, n)| Some((*index.get(pod)?, n.parse::<usize>().ok()?)))
            .filter(|&(pod, n)| n < pods[pod].written && record["pod"] == pods[pod].name);
        match parsed {
            Some((pod, n)) => {
                let count = &mut seen[pod][n];
                *count = count.saturating_add(1);
                if *count == 2 {
                    tally.duplicated += 1;
                }
            }
            None => {
                tally.foreign += 1;
                if tally.foreign <= 5 {
                    eprintln!("record that was never written: {line}");
                }
            }
        }
    }
    for (pod, counts) in seen.iter().enumerate() {
        // Missing lines as ranges (a lost file or batch is one range), for the investigation
        // of a failed run.
        let mut from: Option<usize> = None;
        for (n, &count) in counts.iter().chain([&1]).enumerate() {
            match (count == 0, from) {
                (true, None) => from = Some(n),
                (false, Some(start)) => {
                    tally.missing += n - start;
                    eprintln!(
                        "missing: {} lines {start}..{n} ({} lines)",
                        pods[pod].name,
                        n - start
                    );
                    from = None;
                }
                _ => {}
            }
        }
    }
    tally
}

/// Writes a line to the test's stderr whether or not the harness captures output (it captures
/// only the print macros), so that CI logs show the counts of a passing run.
fn report(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// What the driver does after a round's writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kill {
    Collector,
    Indexer,
}

#[test]
fn two_hundred_thousand_lines_exactly_once_through_kills_rotations_and_a_full_disk() {
    let seed: u64 = std::env::var("FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::rng().random());
    report(&format!(
        "fault run seed {seed} (FAULT_SEED={seed} replays this schedule)"
    ));
    let mut rng = StdRng::seed_from_u64(seed);
    let began = Instant::now();

    let dir = tempfile::tempdir().unwrap();
    let mut pods = pods(&dir.path().join("pods"), PODS);
    let mut cluster = Cluster::start(dir.path());
    // The first merge the indexer publishes aborts it before the inputs are removed.
    cluster.arm_merge_crash(true);

    // The schedule: KILLS rounds with a kill (at least a third of each process), one window of
    // DISK_FULL_ROUNDS rounds with a full disk.
    let mut rounds: Vec<usize> = (1..ROUNDS - 1).collect();
    rounds.shuffle(&mut rng);
    let mut kills: Vec<Option<Kill>> = vec![None; ROUNDS];
    for (k, &round) in rounds.iter().take(KILLS).enumerate() {
        kills[round] = Some(match k % 3 {
            0 => Kill::Collector,
            1 => Kill::Indexer,
            _ if rng.random_bool(0.5) => Kill::Collector,
            _ => Kill::Indexer,
        });
    }
    let full_from = rng.random_range(2..ROUNDS - DISK_FULL_ROUNDS - 2);
    let full = full_from..full_from + DISK_FULL_ROUNDS;
    // One window, apart from the full disk's, in which the proxy refuses every batch: 404
    // (a wrong URL), then 413 (a proxy's body limit).
    let refused = loop {
        let from = rng.random_range(2..ROUNDS - 2 * REFUSED_ROUNDS - 2);
        let window = from..from + 2 * REFUSED_ROUNDS;
        if window.end + 1 < full.start || full.end + 1 < window.start {
            break window;
        }
    };
    let too_large_from = refused.start + REFUSED_ROUNDS;
    const _: () = assert!(LINES_PER_POD.is_multiple_of(ROUNDS));
    let per_round = LINES_PER_POD / ROUNDS;
    let (mut collector_kills, mut indexer_kills, mut renames, mut copytruncates) = (0, 0, 0, 0);
    let mut retries_seen = false;
    let (mut not_found_seen, mut too_large_seen) = (false, false);

    for (round, kill) in kills.iter().enumerate() {
        cluster.revive_after_merge_crash();
        if round == refused.start {
            cluster.proxy.set(Mode::Refuse(404));
        }
        if round == too_large_from {
            cluster.proxy.set(Mode::MaxBody(PROXY_MAX_BODY));
        }
        if round == refused.end {
            cluster.proxy.set(Mode::Forward);
        }
        if round == full.start {
            // The window's direct ingests must reach a live indexer: no abort meanwhile.
            cluster.arm_merge_crash(false);
            cluster.revive_after_merge_crash();
            cluster.set_disk_full(true);
            assert_direct_ingest_refused(cluster.indexer());
        }
        for pod in pods.iter_mut() {
            pod.write(per_round);
            if rng.random_bool(0.12) {
                let by_rename = rng.random_bool(0.5);
                pod.rotate(by_rename);
                if by_rename {
                    renames += 1;
                } else {
                    copytruncates += 1;
                }
            }
        }
        if full.contains(&round) && !retries_seen {
            // The collector meets the full disk: its batches are refused and retried, not lost.
            let before = cluster.collector_retries();
            wait_until(
                "the collector retries batches refused for a full disk",
                Duration::from_secs(60),
                || cluster.collector_retries() > before,
            );
            retries_seen = true;
        }
        if round + 1 == full.end {
            assert_direct_ingest_refused(cluster.indexer());
            cluster.set_disk_full(false);
            cluster.arm_merge_crash(cluster.merge_crashes == 0);
        }
        // The collector meets each refusal (it is not over before the collector sent anything).
        if round + 1 == too_large_from {
            wait_until(
                "the collector's batches are refused with 404",
                Duration::from_secs(60),
                || cluster.proxy.refused() > 0,
            );
            not_found_seen = true;
        }
        if round + 1 == refused.end {
            wait_until(
                "the collector's batches are refused with 413",
                Duration::from_secs(60),
                || cluster.proxy.too_large() > 0,
            );
            too_large_seen = true;
        }
        if let Some(kill) = *kill {
            // A random moment within the pipeline's work on what was just written.
            std::thread::sleep(Duration::from_millis(rng.random_range(0..400)));
            match kill {
                Kill::Collector => {
                    cluster.collector.take().unwrap().kill9();
                    collector_kills += 1;
                    cluster.start_collector();
                }
                Kill::Indexer => {
                    cluster.revive_after_merge_crash();
                    cluster.indexer.take().unwrap().kill9();
                    indexer_kills += 1;
                    // Sometimes away for a while: the collector buffers meanwhile.
                    std::thread::sleep(Duration::from_millis(rng.random_range(0..1000)));
                    cluster.start_indexer();
                }
            }
        }
    }
    assert!(retries_seen && not_found_seen && too_large_seen);
    let written: usize = pods.iter().map(|p| p.written).sum();
    assert_eq!(written, PODS * LINES_PER_POD);
    let wrote_at = began.elapsed();

    let deadline = Instant::now() + CATCH_UP;
    loop {
        let indexed = cluster.indexed();
        if indexed >= written as u64 && cluster.merge_crashes == 1 {
            break;
        }
        if Instant::now() >= deadline {
            // Say what is missing rather than only that time ran out, and keep the run's
            // files (pods, both data directories, every process's log) for the investigation.
            let tally = tally(cluster.indexer(), &pods);
            let kept = dir.keep();
            panic!(
                "seed {seed}: {indexed} of {written} lines indexed after {CATCH_UP:?}, \
                 {} merge-publish aborts; collector retries {}; {tally:?}; files kept in {}",
                cluster.merge_crashes,
                cluster.collector_retries(),
                kept.display()
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let caught_up_at = began.elapsed();
    // The collector stops cleanly; whatever it still had in flight must not add a duplicate.
    cluster.collector.take().unwrap().stop();
    let tally = tally(cluster.indexer(), &pods);
    report(&format!(
        "fault run: written {}, indexed {}, missing {}, duplicated {}, never written {} \
         ({collector_kills} collector and {indexer_kills} indexer SIGKILLs, {renames} rename and \
         {copytruncates} copytruncate rotations, disk full in rounds {full:?}, every batch \
         refused in rounds {refused:?} ({} answered 404, {} answered 413), {} abort right after a \
         merge was published; wrote in {:.1}s, \
         indexed all by {:.1}s, checked by {:.1}s)",
        tally.written,
        tally.indexed,
        tally.missing,
        tally.duplicated,
        tally.foreign,
        cluster.proxy.refused(),
        cluster.proxy.too_large(),
        cluster.merge_crashes,
        wrote_at.as_secs_f64(),
        caught_up_at.as_secs_f64(),
        began.elapsed().as_secs_f64(),
    ));
    assert!(collector_kills + indexer_kills >= 10);
    assert!(collector_kills >= 4 && indexer_kills >= 4);
    assert_eq!(
        (tally.missing, tally.duplicated, tally.foreign),
        (0, 0, 0),
        "seed {seed}: {tally:?}"
    );
    assert_eq!(tally.indexed, written, "seed {seed}");
    assert_eq!(cluster.indexer().total("*", &[]), written as u64);
}

#[test]
fn lines_written_while_the_disk_is_full_are_indexed_once_after_it_clears() {
    let dir = tempfile::tempdir().unwrap();
    let mut pods = pods(&dir.path().join("pods"), 3);
    let cluster = Cluster::start(dir.path());

    for pod in pods.iter_mut() {
        pod.write(500);
    }
    cluster.indexer().wait_total("*", 1500);

    cluster.set_disk_full(true);
    assert_direct_ingest_refused(cluster.indexer());
    let retries = cluster.collector_retries();
    for pod in pods.iter_mut() {
        pod.write(700);
    }
    pods[0].rotate(true);
    pods[1].rotate(false);
    for pod in pods.iter_mut() {
        pod.write(300);
    }
    wait_until(
        "the collector's batches are refused and retried",
        Duration::from_secs(60),
        || cluster.collector_retries() > retries,
    );
    // Nothing of the refused batches was taken, so nothing was acknowledged.
    assert_eq!(cluster.indexer().total("*", &[]), 1500);
    assert_eq!(
        cluster.indexer().get("/health/ready").status().as_u16(),
        200,
        "a full disk does not make the indexer unready"
    );
    assert_direct_ingest_refused(cluster.indexer());

    // Room again: both resume by themselves.
    cluster.set_disk_full(false);
    wait_until("every line is indexed", Duration::from_secs(90), || {
        cluster.indexer().total("*", &[]) >= 4500
    });
    let tally = tally(cluster.indexer(), &pods);
    report(&format!("disk full: {tally:?}"));
    assert_eq!(
        (
            tally.written,
            tally.indexed,
            tally.missing,
            tally.duplicated,
            tally.foreign
        ),
        (4500, 4500, 0, 0, 0)
    );
}
