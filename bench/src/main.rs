//! `trawl-bench`: parses arguments and runs a scenario or writes a corpus.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use trawl_bench::corpus::{self, audit::AuditGenerator, logs::LogGenerator, LineSource};
use trawl_bench::scenarios::{self, Ctx};
use trawl_bench::{proc, report, Error, Result};

#[derive(Parser)]
#[command(
    name = "trawl-bench",
    about = "Trawl benchmarks: each scenario prints one line per metric"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// NDJSON over HTTP into a fresh indexer until searchable, beside raw tantivy.
    Index(Common),
    /// Ingest→searchable p50/p99 under a steady rate.
    Latency(Common),
    /// A fixed query set over N documents: p50/p99.
    Search(Common),
    /// The search query set with splits in a real S3 server and PostgreSQL: local, warm cache,
    /// cold cache; upload beside indexing; the audit reports on the indexer and through the
    /// searcher.
    Tier(Common),
    /// Every audit report over N audit events: p50/p99.
    Audit(Common),
    /// Arrow and Parquet export: rows/s and memory growth.
    Export(Common),
    /// CRI files → collector → indexer, with 10 and 1,000 files; optionally beside an older
    /// collector and Fluent Bit on the same files.
    Collect(Collect),
    /// Every scenario in turn (use with --quick).
    All(Common),
    /// Writes a corpus: flat `logs` NDJSON, raw audit Event NDJSON, or CRI files.
    Generate(Generate),
    /// Where the bytes of the indexes under a directory go, by component and field.
    Space(Space),
}

#[derive(Args)]
struct Space {
    /// A data directory, a stream's directory or one index.
    dir: PathBuf,
    /// The raw NDJSON size in MB, to print fractions of it.
    #[arg(long)]
    raw_mb: Option<f64>,
    /// How many (component, field) pairs to list.
    #[arg(long, default_value_t = 20)]
    top: usize,
}

#[derive(Args, Clone)]
struct Common {
    /// Small data and fewer runs (the whole suite in about three minutes).
    #[arg(long)]
    quick: bool,
    /// Corpus size in MB (index, collect) or rate in MB/s (latency).
    #[arg(long)]
    size_mb: Option<u64>,
    /// Documents for search, audit and export.
    #[arg(long)]
    docs: Option<u64>,
    /// Timed runs per query or report.
    #[arg(long)]
    runs: Option<usize>,
    /// Corpus seed.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Concurrent ingest requests.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Environment for the indexer child, KEY=VALUE (repeatable), e.g.
    /// TRAWL_INDEXER__COMMIT_INTERVAL_MS=5000.
    #[arg(long = "indexer-env", value_parser = parse_env)]
    indexer_env: Vec<(String, String)>,
    /// audit, search: keep the loaded data in this directory and, when it already holds a
    /// load of the same size and seed, time the queries on it without loading again (to
    /// compare two builds on the same data).
    #[arg(long)]
    keep_data: Option<PathBuf>,
    /// index: the documents loaded (logs: Kubernetes container logs; loghub: lines in the
    /// styles of the loghub samples).
    #[arg(long, value_enum, default_value_t = CorpusArg::Logs)]
    corpus: CorpusArg,
}

#[derive(Clone, Copy, ValueEnum)]
enum CorpusArg {
    Logs,
    Loghub,
}

#[derive(Args)]
struct Collect {
    #[command(flatten)]
    common: Common,
    /// File counts to run, comma-separated (default 10,1000).
    #[arg(long, value_delimiter = ',')]
    files: Vec<usize>,
    /// An older `trawl` binary whose collector also runs on the same files (the "before" side).
    #[arg(long)]
    baseline_collector: Option<PathBuf>,
    /// A `fluent-bit` binary that also runs on the same files (tail input, CRI parser, SQLite
    /// offsets, `es` output to the indexer's `_bulk`).
    #[arg(long)]
    fluent_bit: Option<PathBuf>,
}

fn parse_env(text: &str) -> std::result::Result<(String, String), String> {
    match text.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("expected KEY=VALUE, got {text:?}")),
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum Kind {
    Logs,
    /// Lines in the styles of the loghub samples.
    Loghub,
    Audit,
    Cri,
}

#[derive(Args)]
struct Generate {
    /// What to write.
    #[arg(long, value_enum)]
    kind: Kind,
    /// Output file (NDJSON; `-` for stdout) or directory (cri).
    #[arg(long)]
    out: PathBuf,
    /// Size in MB.
    #[arg(long, default_value_t = 10)]
    size_mb: u64,
    /// Pods (one file each for cri).
    #[arg(long, default_value_t = 100)]
    pods: usize,
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Generate(g) => generate(&g),
        Command::Space(s) => trawl_bench::space::measure(&s.dir).map(|usage| {
            let raw = s.raw_mb.map(|mb| (mb * 1e6) as u64);
            trawl_bench::space::print("space", &usage, raw, s.top);
        }),
        Command::Index(c) => with_ctx(&c, scenarios::index::run),
        Command::Latency(c) => with_ctx(&c, scenarios::latency::run),
        Command::Search(c) => with_ctx(&c, scenarios::search::run),
        Command::Tier(c) => with_ctx(&c, scenarios::tier::run),
        Command::Audit(c) => with_ctx(&c, scenarios::audit::run),
        Command::Export(c) => with_ctx(&c, scenarios::export::run),
        Command::Collect(c) => {
            let opts = scenarios::collect::Options {
                files: c.files,
                baseline: c.baseline_collector,
                fluent_bit: c.fluent_bit,
            };
            with_ctx(&c.common, |ctx| scenarios::collect::run_with(ctx, &opts))
        }
        Command::All(c) => with_ctx(&c, all),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn with_ctx(c: &Common, f: impl FnOnce(&Ctx) -> Result<()>) -> Result<()> {
    let ctx = Ctx {
        quick: c.quick,
        size_mb: c.size_mb,
        docs: c.docs,
        runs: c.runs,
        seed: c.seed,
        concurrency: c.concurrency.max(1),
        bin: proc::trawl_binary()?,
        indexer_env: c.indexer_env.clone(),
        keep_data: c.keep_data.clone(),
        corpus: match c.corpus {
            CorpusArg::Logs => scenarios::CorpusKind::Logs,
            CorpusArg::Loghub => scenarios::CorpusKind::Loghub,
        },
    };
    for (k, v) in &ctx.indexer_env {
        report::info("bench", "indexer_env", &format!("{k}={v}"));
    }
    // Other work on the machine skews every figure: say how busy it was.
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    report::info("bench", "loadavg_at_start", load.trim());
    let result = f(&ctx);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    report::info("bench", "loadavg_at_end", load.trim());
    result
}

type Scenario = fn(&Ctx) -> Result<()>;

/// Runs every scenario; one that fails is reported and the others still run.
fn all(ctx: &Ctx) -> Result<()> {
    let list: [(&str, Scenario); 6] = [
        ("index", scenarios::index::run),
        ("latency", scenarios::latency::run),
        ("search", scenarios::search::run),
        ("audit", scenarios::audit::run),
        ("export", scenarios::export::run),
        ("collect", scenarios::collect::run),
    ];
    let start = std::time::Instant::now();
    let mut failed = Vec::new();
    for (name, run) in list {
        let t = std::time::Instant::now();
        if let Err(e) = run(ctx) {
            println!("{name} error {e}");
            failed.push(name);
        }
        report::metric(name, "scenario_wall", t.elapsed().as_secs_f64(), "s");
        let _ = std::io::stdout().flush();
    }
    report::metric("all", "wall", start.elapsed().as_secs_f64(), "s");
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Error::Child(format!(
            "scenarios failed: {}",
            failed.join(", ")
        )))
    }
}

fn generate(g: &Generate) -> Result<()> {
    let bytes = g.size_mb * 1_000_000;
    match g.kind {
        Kind::Cri => {
            let mut gen = LogGenerator::new(g.seed, "bench", g.pods, 2000.0);
            let stats = corpus::cri::write_pods_dir(&mut gen, &g.out, bytes, g.seed, g.pods)?;
            eprintln!(
                "wrote {} files, {} bytes, {} records ({} split into partial lines)",
                stats.files, stats.bytes, stats.records, stats.partial_lines
            );
            Ok(())
        }
        Kind::Logs => write_ndjson(
            LogGenerator::new(g.seed, "bench", g.pods, 2000.0),
            &g.out,
            bytes,
        ),
        Kind::Audit => write_ndjson(AuditGenerator::new(g.seed, 500.0), &g.out, bytes),
        Kind::Loghub => write_ndjson(corpus::loghub::LoghubGenerator::new(g.seed), &g.out, bytes),
    }
}

fn write_ndjson<S: LineSource>(mut source: S, out: &std::path::Path, bytes: u64) -> Result<()> {
    let mut sink: Box<dyn std::io::Write> = if out.as_os_str() == "-" {
        Box::new(std::io::stdout().lock())
    } else {
        Box::new(std::fs::File::create(out).map_err(|e| Error::path(out, e))?)
    };
    let mut written = 0u64;
    let mut buf = Vec::with_capacity(1 << 20);
    while written < bytes {
        buf.clear();
        while buf.len() < (1 << 20) && written + (buf.len() as u64) < bytes {
            source.next_line(&mut buf);
        }
        sink.write_all(&buf).map_err(|e| Error::path(out, e))?;
        written += buf.len() as u64;
    }
    sink.flush().map_err(|e| Error::path(out, e))
}
