//! `trawl dead-letters <stream>`: the lines ingest refused (`GET /api/v1/{stream}/dead-letters`),
//! newest first: when, the line number in its request, why, and the raw line.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use serde_json::Value;

use super::{ConnectArgs, Connection};

#[derive(Args, Debug)]
pub struct DeadLettersArgs {
    /// Stream name, e.g. logs.
    pub stream: String,
    /// Largest number of letters (newest first).
    #[arg(long, short = 'n', default_value_t = 20)]
    pub limit: usize,
    /// Print the server's JSON answer instead of one block per letter.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

const TIMEOUT: Duration = Duration::from_secs(60);

pub async fn run(args: DeadLettersArgs) -> anyhow::Result<ExitCode> {
    let conn = Connection::new(&args.connect, Some(TIMEOUT))?;
    let path = format!("/api/v1/{}/dead-letters", args.stream);
    let answer = conn
        .json(conn.get(&path).query(&[("limit", args.limit.to_string())]))
        .await?;
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &answer)?;
        writeln!(out)?;
        return Ok(ExitCode::SUCCESS);
    }
    let letters = answer
        .get("dead_letters")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for letter in &letters {
        let text = |key: &str| letter.get(key).and_then(Value::as_str).unwrap_or_default();
        let line = letter.get("line").and_then(Value::as_u64).unwrap_or(0);
        writeln!(out, "{}  line {line}  {}", text("time"), text("error"))?;
        writeln!(out, "  {}", text("raw"))?;
    }
    out.flush()?;
    let total = answer.get("total").and_then(Value::as_u64).unwrap_or(0);
    eprintln!(
        "{} of {total} dead letters of stream {}",
        letters.len(),
        args.stream
    );
    Ok(ExitCode::SUCCESS)
}
