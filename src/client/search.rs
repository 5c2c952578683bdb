//! `trawl search`: runs a query and prints the hits as a table, the JSON answer, or NDJSON.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, ValueEnum};
use serde_json::{Map, Value};

use super::output::{colours_on_stdout, default_columns, write_table, Palette};
use super::{ConnectArgs, Connection, TimeArgs};

/// How hits are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SearchOutput {
    /// An aligned table of the main fields (colours on a terminal).
    Table,
    /// The server's JSON answer, as is.
    Json,
    /// One hit per line.
    Ndjson,
}

#[derive(Args, Debug)]
pub struct SearchArgs {
    /// Query in the tantivy grammar, e.g. 'error AND namespace:payments'.
    #[arg(default_value = "*")]
    pub query: String,
    /// Stream to search.
    #[arg(long, short = 's', default_value = "logs")]
    pub stream: String,
    #[command(flatten)]
    pub time: TimeArgs,
    /// Largest number of hits (at most 10000).
    #[arg(long, short = 'n', default_value_t = 100)]
    pub limit: usize,
    /// Oldest first instead of newest first.
    #[arg(long)]
    pub asc: bool,
    /// Fields to show, comma-separated (table columns, in this order).
    #[arg(long)]
    pub fields: Option<String>,
    #[arg(long, short = 'o', value_enum, default_value_t = SearchOutput::Table)]
    pub output: SearchOutput,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

/// Time budget of a search request (the server has its own, usually shorter).
const SEARCH_TIMEOUT: Duration = Duration::from_secs(120);

pub async fn run(args: SearchArgs) -> anyhow::Result<ExitCode> {
    let conn = Connection::new(&args.connect, Some(SEARCH_TIMEOUT))?;
    let mut params: Vec<(&str, String)> = vec![
        ("q", args.query.clone()),
        ("limit", args.limit.to_string()),
        ("sort", if args.asc { "asc" } else { "desc" }.to_string()),
    ];
    params.extend(args.time.params()?);
    if let Some(fields) = &args.fields {
        params.push(("fields", fields.clone()));
    }
    let path = format!("/api/v1/{}/search", args.stream);
    let answer = conn.json(conn.get(&path).query(&params)).await?;
    let mut out = std::io::stdout().lock();
    let hits: Vec<Map<String, Value>> = answer
        .get("hits")
        .and_then(Value::as_array)
        .map(|hits| hits.iter().filter_map(|h| h.as_object().cloned()).collect())
        .unwrap_or_default();
    match args.output {
        SearchOutput::Json => {
            serde_json::to_writer_pretty(&mut out, &answer)?;
            writeln!(out)?;
        }
        SearchOutput::Ndjson => {
            for hit in &hits {
                serde_json::to_writer(&mut out, hit)?;
                writeln!(out)?;
            }
        }
        SearchOutput::Table => {
            let columns = match &args.fields {
                Some(fields) => fields
                    .split(',')
                    .map(|f| f.trim().to_string())
                    .filter(|f| !f.is_empty())
                    .collect(),
                None => default_columns(&args.stream, &hits),
            };
            if !hits.is_empty() {
                write_table(&mut out, Palette::new(colours_on_stdout()), &columns, &hits)?;
            }
            let total = answer.get("total").and_then(Value::as_u64).unwrap_or(0);
            let took = answer.get("took_ms").and_then(Value::as_u64).unwrap_or(0);
            let partial = if answer.get("timed_out") == Some(&Value::Bool(true)) {
                " (partial: the query ran out of time)"
            } else {
                ""
            };
            eprintln!("{} of {total} hits in {took} ms{partial}", hits.len());
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
