//! `trawl reports <name>`: a ready report (`GET /api/v1/audit/reports/{name}`, or
//! `/api/v1/events/reports/pod-failures`) as a table or JSON.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, ValueEnum};
use serde_json::{Map, Value};

use super::output::{colours_on_stdout, write_table, Palette};
use super::{ConnectArgs, Connection, TimeArgs};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportOutput {
    /// An aligned table, group keys first, then count, first and last seen, and the query
    /// that finds the row's events.
    Table,
    /// The server's JSON answer.
    Json,
}

#[derive(Args, Debug)]
pub struct ReportsArgs {
    /// Report name, e.g. top-users or pod-failures.
    pub name: String,
    #[command(flatten)]
    pub time: TimeArgs,
    /// Only events matching this query.
    #[arg(long, short = 'q')]
    pub query: Option<String>,
    /// Largest number of rows.
    #[arg(long, short = 'n')]
    pub limit: Option<usize>,
    #[arg(long, short = 'o', value_enum, default_value_t = ReportOutput::Table)]
    pub output: ReportOutput,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

const REPORT_TIMEOUT: Duration = Duration::from_secs(120);

/// The columns every report row ends with.
const TRAILING: [&str; 4] = ["count", "first_seen", "last_seen", "query"];

pub async fn run(args: ReportsArgs) -> anyhow::Result<ExitCode> {
    let conn = Connection::new(&args.connect, Some(REPORT_TIMEOUT))?;
    let mut params = args.time.params()?;
    if let Some(q) = &args.query {
        params.push(("q", q.clone()));
    }
    if let Some(limit) = args.limit {
        params.push(("limit", limit.to_string()));
    }
    // The one report of the `events` stream; the others read `audit`.
    let stream = if args.name == "pod-failures" {
        "events"
    } else {
        "audit"
    };
    let path = format!("/api/v1/{stream}/reports/{}", args.name);
    let answer = conn.json(conn.get(&path).query(&params)).await?;
    let mut out = std::io::stdout().lock();
    if args.output == ReportOutput::Json {
        serde_json::to_writer_pretty(&mut out, &answer)?;
        writeln!(out)?;
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Map<String, Value>> = answer
        .get("rows")
        .and_then(Value::as_array)
        .map(|rows| rows.iter().filter_map(|r| r.as_object().cloned()).collect())
        .unwrap_or_default();
    let columns = report_columns(&rows);
    if !rows.is_empty() {
        write_table(&mut out, Palette::new(colours_on_stdout()), &columns, &rows)?;
    }
    out.flush()?;
    let took = answer.get("took_ms").and_then(Value::as_u64).unwrap_or(0);
    eprintln!("{} rows in {took} ms", rows.len());
    Ok(ExitCode::SUCCESS)
}

/// Group keys (in the order first met), then the trailing columns that are present.
fn report_columns(rows: &[Map<String, Value>]) -> Vec<String> {
    let mut columns: Vec<String> = Vec::new();
    for row in rows {
        for key in row.keys() {
            if !TRAILING.contains(&key.as_str()) && !columns.contains(key) {
                columns.push(key.clone());
            }
        }
    }
    for name in TRAILING {
        if rows.iter().any(|r| r.contains_key(name)) {
            columns.push(name.to_string());
        }
    }
    columns
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn keys_first_then_counts() {
        let rows = vec![
            json!({"query": "user:a", "count": 3, "user": "a", "last_seen": "t",
                               "first_seen": "t", "verb": "get"})
            .as_object()
            .cloned()
            .unwrap(),
        ];
        assert_eq!(
            report_columns(&rows),
            ["user", "verb", "count", "first_seen", "last_seen", "query"]
        );
    }
}
