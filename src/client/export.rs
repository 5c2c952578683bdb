//! `trawl export`: streams an export (`/api/v1/{stream}/export`) into a file or stdout, with
//! a progress line on a terminal. A file is written as `<file>.part` and renamed once the
//! export is complete, so that an interrupted export never looks finished.

use std::fs::File;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use serde_json::Value;

use super::{ConnectArgs, Connection, TimeArgs};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    Arrow,
    Parquet,
    Csv,
    Ndjson,
}

impl ExportFormat {
    fn name(self) -> &'static str {
        match self {
            ExportFormat::Arrow => "arrow",
            ExportFormat::Parquet => "parquet",
            ExportFormat::Csv => "csv",
            ExportFormat::Ndjson => "ndjson",
        }
    }

    fn is_binary(self) -> bool {
        matches!(self, ExportFormat::Arrow | ExportFormat::Parquet)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportSort {
    Asc,
    Desc,
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// Query in the tantivy grammar.
    #[arg(default_value = "*")]
    pub query: String,
    /// Stream to export.
    #[arg(long, short = 's', default_value = "logs")]
    pub stream: String,
    #[arg(long, short = 'f', value_enum, default_value_t = ExportFormat::Ndjson)]
    pub format: ExportFormat,
    /// Output file; stdout when absent or `-`.
    #[arg(long, short = 'o')]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub time: TimeArgs,
    /// Columns to export, comma-separated, in this order.
    #[arg(long)]
    pub fields: Option<String>,
    /// Order by timestamp (slower); unsorted by default.
    #[arg(long, value_enum)]
    pub sort: Option<ExportSort>,
    /// At most this many records.
    #[arg(long, short = 'n')]
    pub limit: Option<u64>,
    /// Export an aggregation result as a table instead of records: Elasticsearch aggregation
    /// syntax, e.g. '{"ns": {"terms": {"field": "namespace"}}}'.
    #[arg(long)]
    pub aggs: Option<String>,
    /// No progress line, even on a terminal.
    #[arg(long)]
    pub quiet: bool,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

pub async fn run(args: ExportArgs) -> anyhow::Result<ExitCode> {
    let to_file = args.output.as_ref().filter(|p| p.as_os_str() != "-");
    if to_file.is_none() && args.format.is_binary() && std::io::stdout().is_terminal() {
        bail!(
            "{} is binary and stdout is a terminal: pass -o FILE (or redirect stdout)",
            args.format.name()
        );
    }
    let conn = Connection::new(&args.connect, None)?;
    let path = format!("/api/v1/{}/export", args.stream);
    let time = args.time.params()?;
    let request = match &args.aggs {
        Some(aggs) => {
            let aggs: Value = serde_json::from_str(aggs)
                .context("--aggs is not JSON (Elasticsearch aggregation syntax)")?;
            let mut body = serde_json::json!({"q": args.query, "aggs": aggs});
            for (name, value) in &time {
                body[*name] = Value::String(value.clone());
            }
            conn.post(&path)
                .query(&[("format", args.format.name())])
                .json(&body)
        }
        None => {
            let mut params: Vec<(&str, String)> = vec![
                ("q", args.query.clone()),
                ("format", args.format.name().to_string()),
            ];
            params.extend(time);
            if let Some(fields) = &args.fields {
                params.push(("fields", fields.clone()));
            }
            if let Some(sort) = args.sort {
                params.push((
                    "sort",
                    if sort == ExportSort::Asc {
                        "asc"
                    } else {
                        "desc"
                    }
                    .into(),
                ));
            }
            if let Some(limit) = args.limit {
                params.push(("limit", limit.to_string()));
            }
            conn.get(&path).query(&params)
        }
    };
    let mut response = conn.send(request).await?;

    let (mut sink, part): (Box<dyn Write>, Option<PathBuf>) = match to_file {
        Some(target) => {
            let part = part_path(target);
            let file =
                File::create(&part).with_context(|| format!("creating {}", part.display()))?;
            (Box::new(std::io::BufWriter::new(file)), Some(part))
        }
        None => (Box::new(std::io::stdout().lock()), None),
    };
    let mut progress = Progress::new(!args.quiet && std::io::stderr().is_terminal());
    let outcome: anyhow::Result<()> = async {
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    sink.write_all(&chunk).context("writing the export")?;
                    progress.add(chunk.len() as u64);
                }
                Ok(None) => break,
                Err(err) => {
                    return Err(anyhow::anyhow!(
                        "the export broke off after {} ({err}); the output is incomplete",
                        human_bytes(progress.bytes)
                    ))
                }
            }
        }
        sink.flush().context("writing the export")?;
        Ok(())
    }
    .await;
    drop(sink);
    progress.finish();
    match (outcome, part, to_file) {
        (Ok(()), Some(part), Some(target)) => {
            std::fs::rename(&part, target)
                .with_context(|| format!("renaming {} to {}", part.display(), target.display()))?;
            if !args.quiet {
                eprintln!(
                    "wrote {} to {} in {:.1} s",
                    human_bytes(progress.bytes),
                    target.display(),
                    progress.started.elapsed().as_secs_f64()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        (Ok(()), _, _) => Ok(ExitCode::SUCCESS),
        (Err(err), part, _) => {
            if let Some(part) = part {
                let _ = std::fs::remove_file(part);
            }
            Err(err)
        }
    }
}

/// `out.parquet` → `out.parquet.part`.
fn part_path(target: &Path) -> PathBuf {
    let mut name = target.as_os_str().to_owned();
    name.push(".part");
    PathBuf::from(name)
}

/// A one-line progress display on stderr: bytes received and rate, redrawn at most ten times
/// a second.
struct Progress {
    enabled: bool,
    bytes: u64,
    started: Instant,
    drawn: Option<Instant>,
}

const REDRAW: Duration = Duration::from_millis(100);

impl Progress {
    fn new(enabled: bool) -> Progress {
        Progress {
            enabled,
            bytes: 0,
            started: Instant::now(),
            drawn: None,
        }
    }

    fn add(&mut self, bytes: u64) {
        self.bytes += bytes;
        if self.enabled && self.drawn.is_none_or(|t| t.elapsed() >= REDRAW) {
            self.draw();
        }
    }

    fn draw(&mut self) {
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        let rate = (self.bytes as f64 / secs) as u64;
        let spinner = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];
        let frame = spinner[(self.started.elapsed().as_millis() / 100 % 10) as usize];
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\r\x1b[2K{frame} {} received  {}/s  {:.0} s",
            human_bytes(self.bytes),
            human_bytes(rate),
            secs
        );
        let _ = err.flush();
        self.drawn = Some(Instant::now());
    }

    fn finish(&mut self) {
        if self.enabled && self.drawn.is_some() {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K");
            let _ = err.flush();
        }
    }
}

/// `1536` → `1.5 KiB`.
fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(5 * 1024 * 1024 * 1024), "5.0 GiB");
    }

    #[test]
    fn part_files() {
        assert_eq!(
            part_path(Path::new("/tmp/out.parquet")),
            PathBuf::from("/tmp/out.parquet.part")
        );
    }
}
