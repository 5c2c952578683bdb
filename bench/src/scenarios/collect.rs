//! `collect`: CRI files → a log shipper → `trawl indexer`, with 10 and with 1,000 files (or the
//! counts of `--files`): throughput per core, the shipper's CPU and peak resident memory.
//!
//! The shipper is `trawl collector`, and on the same generated files in the same run, when
//! asked, an older `trawl` binary's collector (`--baseline-collector`, the "before" side of a
//! change) and Fluent Bit (`--fluent-bit`: its `tail` input with the `cri` multiline parser
//! and a SQLite offsets database, its `es` output to the indexer's `_bulk`). Each shipper gets a
//! fresh indexer; a run counts only when the indexer ends with exactly the number of records
//! written (not one more: a duplicate is an error too).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::blocking::Client;

use crate::client::{client, search_total};
use crate::corpus::{cri::write_pods_dir, logs::LogGenerator};
use crate::proc::{cores, cpu_secs_of, memory_of, Memory, TrawlChild};
use crate::scenarios::{bench_tmp, Ctx, Indexer};
use crate::{report, Error, Result};

const S: &str = "collect";

/// The pods whose lines every file count shares (see [`write_pods_dir`]).
const CONTENT_PODS: usize = 1_000;

/// How long the indexer's total may stay still before the run is declared stuck.
const STALL: Duration = Duration::from_secs(20);

/// How long the total must stay at the expected count, once reached, for the run to count
/// (a shipper that resends would push it past).
const SETTLE: Duration = Duration::from_secs(2);

/// What `collect` runs beyond the default: which file counts, and which other shippers beside
/// `trawl collector`.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// File counts (pods, one file each); 10 and 1,000 when empty.
    pub files: Vec<usize>,
    /// An older `trawl` binary whose collector runs on the same files (the "before" side).
    pub baseline: Option<PathBuf>,
    /// A `fluent-bit` binary run on the same files.
    pub fluent_bit: Option<PathBuf>,
}

/// Runs the scenario: 500 MB of CRI files per file count (20 MB with `--quick`).
pub fn run(ctx: &Ctx) -> Result<()> {
    run_with(ctx, &Options::default())
}

/// Runs the scenario with `opts`.
pub fn run_with(ctx: &Ctx, opts: &Options) -> Result<()> {
    let bytes = ctx.bytes_or(20, 500);
    let counts = if opts.files.is_empty() {
        vec![10, 1000]
    } else {
        opts.files.clone()
    };
    if let Some(fb) = &opts.fluent_bit {
        report::info(S, "fluent_bit", &fluent_bit_version(fb));
    }
    for files in counts {
        if let Err(e) = run_files(ctx, opts, files, bytes) {
            report::unavailable(S, &format!("files_{files}"), &e.to_string());
        }
    }
    Ok(())
}

/// One shipper's figures on one set of files.
struct Shipped {
    wall: f64,
    cpu: f64,
    mem: Memory,
    indexer_cpu: f64,
}

/// A shipper to run over the files.
enum Shipper<'a> {
    /// `trawl collector` of this binary.
    Trawl(&'a Path),
    /// `fluent-bit`.
    FluentBit(&'a Path),
}

fn run_files(ctx: &Ctx, opts: &Options, files: usize, bytes: u64) -> Result<()> {
    let prefix = format!("files_{files}");
    let work = tempfile::Builder::new()
        .prefix("trawl-bench-cri-")
        .tempdir_in(bench_tmp())
        .map_err(Error::Io)?;
    let pods = work.path().join("pods");
    // The same lines for every count up to `CONTENT_PODS` files, spread over `files` of them:
    // the counts differ in files only, not in the lines' lengths or kinds.
    let mut gen = LogGenerator::new(ctx.seed, "bench", files.max(CONTENT_PODS), 2000.0);
    let stats = write_pods_dir(&mut gen, &pods, bytes, ctx.seed, files)?;
    report::metric(S, &format!("{prefix}_files"), stats.files as f64, "files");
    report::metric(S, &format!("{prefix}_raw"), stats.bytes as f64 / 1e6, "MB");
    report::metric(
        S,
        &format!("{prefix}_records"),
        stats.records as f64,
        "records",
    );
    let mb = stats.bytes as f64 / 1e6;
    let expected = stats.records as u64;

    let mut shippers = vec![("collector", Shipper::Trawl(&ctx.bin))];
    if let Some(bin) = &opts.baseline {
        shippers.push(("baseline", Shipper::Trawl(bin)));
    }
    if let Some(bin) = &opts.fluent_bit {
        shippers.push(("fluent_bit", Shipper::FluentBit(bin)));
    }
    let mut results: Vec<(&str, f64)> = Vec::new();
    for (name, shipper) in shippers {
        // A directory of its own per shipper (checkpoints, buffer, offsets database).
        let state = work.path().join(format!("state-{name}"));
        std::fs::create_dir_all(&state).map_err(|e| Error::path(&state, e))?;
        let shipped = match ship(ctx, &shipper, &pods, &state, expected) {
            Ok(s) => s,
            Err(e) => {
                report::unavailable(S, &format!("{prefix}_{name}"), &e.to_string());
                continue;
            }
        };
        let per_cpu = mb / shipped.cpu.max(1e-9);
        if name == "collector" {
            report::metric(S, &format!("{prefix}_mb_s"), mb / shipped.wall, "MB/s");
            report::metric(
                S,
                &format!("{prefix}_mb_s_per_core"),
                mb / shipped.wall / cores() as f64,
                "MB/s/core",
            );
        }
        report::metric(
            S,
            &format!("{prefix}_{name}_mb_per_cpu_s"),
            per_cpu,
            "MB/cpu-s",
        );
        report::metric(S, &format!("{prefix}_{name}_cpu"), shipped.cpu, "s");
        report::metric(
            S,
            &format!("{prefix}_{name}_indexer_cpu"),
            shipped.indexer_cpu,
            "s",
        );
        report::metric(
            S,
            &format!("{prefix}_{name}_peak_rss"),
            shipped.mem.hwm_kib as f64 / 1024.0,
            "MiB",
        );
        results.push((name, per_cpu));
    }
    if let Some(&(_, ours)) = results.iter().find(|(n, _)| *n == "collector") {
        for &(name, theirs) in results.iter().filter(|(n, _)| *n != "collector") {
            report::compare(
                S,
                &format!("{prefix}_collector_mb_per_cpu_s"),
                ours,
                "MB/cpu-s",
                name,
                theirs,
            );
        }
    }
    Ok(())
}

/// A running shipper: a `trawl` child or a plain one.
enum Running {
    Trawl(TrawlChild),
    Plain { child: Child, log: PathBuf },
}

impl Running {
    fn pid(&self) -> u32 {
        match self {
            Running::Trawl(c) => c.pid(),
            Running::Plain { child, .. } => child.id(),
        }
    }

    fn cpu_secs(&self) -> Result<f64> {
        cpu_secs_of(&format!("/proc/{}/stat", self.pid()))
    }

    fn memory(&self) -> Result<Memory> {
        memory_of(&format!("/proc/{}/status", self.pid()))
    }

    fn is_running(&mut self) -> bool {
        match self {
            Running::Trawl(c) => c.is_running(),
            Running::Plain { child, .. } => matches!(child.try_wait(), Ok(None)),
        }
    }

    fn stderr_tail(&self) -> String {
        match self {
            Running::Trawl(c) => c.stderr_tail(),
            Running::Plain { log, .. } => {
                let text = std::fs::read_to_string(log).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                lines[lines.len().saturating_sub(20)..].join(" | ")
            }
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Running::Plain { child, .. } = self {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs `shipper` over `pods` into a fresh indexer until it holds `expected` records, and
/// checks that it still holds exactly that many a little later.
fn ship(
    ctx: &Ctx,
    shipper: &Shipper<'_>,
    pods: &Path,
    state: &Path,
    expected: u64,
) -> Result<Shipped> {
    let indexer = Indexer::start(ctx, &[])?;
    let http = client()?;
    let indexer_cpu0 = indexer.child.cpu_secs()?;
    let start = Instant::now();
    let mut running = match shipper {
        Shipper::Trawl(bin) => {
            let config = state.join("collector.toml");
            let toml = format!(
                "cluster = \"bench\"\ndata_dir = {:?}\nlisten = \"127.0.0.1:0\"\n\n[collector]\npods_dir = {:?}\nindexer_url = {:?}\nnode_name = \"bench-node\"\n",
                state.join("data").to_string_lossy(),
                pods.to_string_lossy(),
                indexer.url()
            );
            std::fs::write(&config, toml).map_err(|e| Error::path(&config, e))?;
            let config_arg = config.to_string_lossy().into_owned();
            Running::Trawl(TrawlChild::start(
                bin,
                &["collector", "--config", &config_arg],
                &[],
                Duration::from_secs(30),
            )?)
        }
        Shipper::FluentBit(bin) => start_fluent_bit(bin, pods, state, indexer.url())?,
    };
    let cpu0 = match &running {
        // The collector's start-up (before it listens) is left out, as before.
        Running::Trawl(_) => running.cpu_secs()?,
        Running::Plain { .. } => 0.0,
    };
    let total = wait_for(&http, indexer.url(), &mut running, expected)?;
    let wall = start.elapsed().as_secs_f64();
    let cpu = running.cpu_secs()? - cpu0;
    let mem = running.memory()?;
    let indexer_cpu = indexer.child.cpu_secs()? - indexer_cpu0;
    std::thread::sleep(SETTLE);
    let later = search_total(&http, indexer.url(), "logs", "*")?;
    if total != expected || later != expected {
        return Err(Error::Child(format!(
            "the indexer holds {later} records ({total} when first reached), {expected} were written"
        )));
    }
    drop(running);
    drop(indexer);
    Ok(Shipped {
        wall,
        cpu,
        mem,
        indexer_cpu,
    })
}

/// Waits until the indexer's `logs` total reaches `expected`; returns the total then.
fn wait_for(http: &Client, url: &str, running: &mut Running, expected: u64) -> Result<u64> {
    let mut last = (0u64, Instant::now());
    loop {
        let total = search_total(http, url, "logs", "*")?;
        if total >= expected {
            return Ok(total);
        }
        if !running.is_running() {
            return Err(Error::Child(format!(
                "the shipper exited after shipping {total} of {expected} records; stderr: {}",
                running.stderr_tail()
            )));
        }
        if total != last.0 {
            last = (total, Instant::now());
        } else if last.1.elapsed() > STALL {
            return Err(Error::Timeout(format!(
                "the shipper shipped {total} of {expected} records and nothing more for {}s; stderr: {}",
                STALL.as_secs(),
                running.stderr_tail()
            )));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The Fluent Bit configuration for `pods` shipping to `indexer_url`: the `tail` input as the
/// Fluent Bit Helm chart sets it up for Kubernetes (CRI multiline parser, a 5 MB memory buffer
/// limit, an offsets database), reading the files from their start, and the `es` output to the
/// indexer's Elasticsearch `_bulk` (index `logs`, no type name, retried without limit so that
/// nothing is dropped).
pub fn fluent_bit_config(pods: &Path, db: &Path, indexer_url: &str) -> Result<String> {
    let hostport = indexer_url
        .strip_prefix("http://")
        .ok_or_else(|| Error::Child(format!("indexer url {indexer_url} is not http://")))?;
    let (host, port) = hostport
        .rsplit_once(':')
        .ok_or_else(|| Error::Child(format!("indexer url {indexer_url} has no port")))?;
    Ok(format!(
        "[SERVICE]
    Flush        1
    Log_Level    warn
    HTTP_Server  Off

[INPUT]
    Name              tail
    Path              {pods}/*/*/*.log
    Tag               kube.*
    multiline.parser  cri
    DB                {db}
    Read_from_Head    On
    Mem_Buf_Limit     5MB
    Buffer_Chunk_Size 64k
    Buffer_Max_Size   1M
    Skip_Long_Lines   Off

[OUTPUT]
    Name               es
    Match              *
    Host               {host}
    Port               {port}
    Path               /api/v1/_elastic
    Index              logs
    Suppress_Type_Name On
    Buffer_Size        False
    Retry_Limit        False
",
        pods = pods.display(),
        db = db.display(),
    ))
}

fn start_fluent_bit(bin: &Path, pods: &Path, state: &Path, indexer_url: &str) -> Result<Running> {
    let config = state.join("fluent-bit.conf");
    let text = fluent_bit_config(pods, &state.join("offsets.db"), indexer_url)?;
    std::fs::write(&config, text).map_err(|e| Error::path(&config, e))?;
    let log = state.join("fluent-bit.log");
    let out = std::fs::File::create(&log).map_err(|e| Error::path(&log, e))?;
    let err = out.try_clone().map_err(Error::Io)?;
    let child = Command::new(bin)
        .arg("-c")
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| Error::Child(format!("starting {}: {e}", bin.display())))?;
    Ok(Running::Plain { child, log })
}

/// `fluent-bit --version`, first line.
fn fluent_bit_version(bin: &Path) -> String {
    Command::new(bin)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.lines().next().map(str::to_string))
        .unwrap_or_else(|| format!("{} (no version)", bin.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fluent_bit_config_points_at_the_indexer() {
        let text = fluent_bit_config(
            Path::new("/tmp/p"),
            Path::new("/tmp/s/offsets.db"),
            "http://127.0.0.1:4321",
        )
        .unwrap();
        assert!(text.contains("    Path              /tmp/p/*/*/*.log\n"));
        assert!(text.contains("    DB                /tmp/s/offsets.db\n"));
        assert!(text.contains("    Host               127.0.0.1\n"));
        assert!(text.contains("    Port               4321\n"));
        assert!(text.contains("    multiline.parser  cri\n"));
        assert!(fluent_bit_config(Path::new("/p"), Path::new("/d"), "127.0.0.1:1").is_err());
    }
}
