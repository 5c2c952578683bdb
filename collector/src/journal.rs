//! The node's journal into the indexer's `journal` stream, exactly once.
//!
//! ```text
//! journalctl -o json --follow --no-pager [--after-cursor=<saved>] <unit and kernel matches>
//!   ──entries (stdout, one JSON object a line)──▶ batches (node and cluster stamped)
//!   ──POST /api/v1/journal/ingest──▶ 2xx ──▶ the last entry's cursor saved in <data>/journal.json
//! ```
//!
//! A batch is retried with backoff until the indexer acknowledges it; meanwhile nothing more is
//! read, so journalctl waits on its pipe and no entry is skipped. The cursor moves only past
//! acknowledged entries: after a crash the entries since it are read and sent again, and the
//! index keeps one document per cursor, so none is lost or doubled. When journalctl exits it
//! is started again, after the saved cursor.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::metrics::Metrics;
use crate::ship::StreamIngest;

/// How long read entries wait for more before they are sent.
const FLUSH_AFTER: Duration = Duration::from_millis(500);

/// What the journal reader needs.
#[derive(Debug, Clone)]
pub struct JournalSettings {
    /// The program and its first arguments (`["journalctl"]`).
    pub command: Vec<String>,
    /// The systemd units read.
    pub units: Vec<String>,
    /// Also the kernel's messages.
    pub kernel: bool,
    pub batch_max_entries: usize,
    /// Where the last acknowledged cursor is kept.
    pub state_path: PathBuf,
    /// The indexer's `journal` stream.
    pub ingest: StreamIngest,
    /// Stamped on every entry as `node` and `cluster`.
    pub node: String,
    pub cluster: String,
}

/// The arguments after the program: JSON output, following, the saved cursor, and the matches
/// (units ORed with each other, the kernel's transport ORed with them by `+`).
pub fn arguments(s: &JournalSettings, after: Option<&str>) -> Vec<String> {
    let mut args: Vec<String> = s.command.iter().skip(1).cloned().collect();
    args.extend(["-o", "json", "--follow", "--no-pager"].map(String::from));
    if let Some(cursor) = after {
        args.push(format!("--after-cursor={cursor}"));
    }
    let units: Vec<String> = s
        .units
        .iter()
        .map(|u| format!("_SYSTEMD_UNIT={u}"))
        .collect();
    args.extend(units.iter().cloned());
    if s.kernel {
        if !units.is_empty() {
            args.push("+".into());
        }
        args.push("_TRANSPORT=kernel".into());
    }
    args
}

/// Where the saved cursor is kept in the state file.
const CURSOR_KEY: &str = "cursor";

fn load_cursor(s: &JournalSettings) -> Option<String> {
    crate::fsutil::read_position(&s.state_path, CURSOR_KEY)
}

/// Runs journalctl and ships what it prints until `stop` turns `true`; a journalctl that ends
/// or cannot start is started again with backoff.
pub async fn run(settings: JournalSettings, metrics: Metrics, mut stop: watch::Receiver<bool>) {
    let mut failures = 0u32;
    loop {
        let outcome = tokio::select! {
            outcome = follow(&settings, &metrics) => outcome,
            _ = stop.changed() => return,
        };
        if let Err(err) = outcome {
            metrics.journal_errors.inc();
            warn!(error = %err, "reading the journal failed");
            failures = failures.saturating_add(1);
        }
        let delay = crate::backoff::next_delay(failures, None);
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            _ = stop.changed() => return,
        }
    }
}

/// One run of journalctl: reads, batches and ships until its output ends.
async fn follow(s: &JournalSettings, metrics: &Metrics) -> Result<(), String> {
    let program = s
        .command
        .first()
        .ok_or_else(|| "collector.journal.command is empty".to_string())?;
    let after = load_cursor(s);
    let mut child = Command::new(program)
        .args(arguments(s, after.as_deref()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("starting {program}: {e}"))?;
    info!(program = %program, after = after.as_deref().unwrap_or("the start"), "reading the journal");
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| "journalctl has no output".to_string())?;
    let mut lines = BufReader::new(stdout).lines();
    let mut batch: Vec<Value> = Vec::new();
    loop {
        let next = if batch.is_empty() {
            lines.next_line().await.map(Some)
        } else {
            match tokio::time::timeout(FLUSH_AFTER, lines.next_line()).await {
                Ok(next) => next.map(Some),
                Err(_) => Ok(None),
            }
        };
        match next.map_err(|e| format!("reading journalctl: {e}"))? {
            // Nothing more for a while: ship what came.
            None => ship_until_acked(s, metrics, &mut batch).await,
            Some(Some(line)) => {
                match serde_json::from_str::<Value>(&line) {
                    Ok(entry @ Value::Object(_)) => batch.push(entry),
                    // Not an entry (journalctl's own notices): counted, not shipped.
                    _ => {
                        metrics.journal_errors.inc();
                    }
                }
                if batch.len() >= s.batch_max_entries.max(1) {
                    ship_until_acked(s, metrics, &mut batch).await;
                }
            }
            // The output ended: ship the rest, and let the caller start journalctl again.
            Some(None) => {
                ship_until_acked(s, metrics, &mut batch).await;
                let status = child.wait().await.map_err(|e| e.to_string())?;
                return Err(format!("journalctl ended ({status})"));
            }
        }
    }
}

/// Ships `batch` until the indexer acknowledges it, then saves the last entry's cursor.
async fn ship_until_acked(s: &JournalSettings, metrics: &Metrics, batch: &mut Vec<Value>) {
    if batch.is_empty() {
        return;
    }
    let mut failures = 0u32;
    loop {
        let stamp = [("node", s.node.as_str()), ("cluster", s.cluster.as_str())];
        match s.ingest.post(batch, &stamp).await {
            Ok(_) => break,
            Err(err) => {
                metrics.journal_errors.inc();
                let delay = crate::backoff::next_delay(failures, None);
                failures = failures.saturating_add(1);
                warn!(error = %err, retry_in_ms = delay.as_millis() as u64, "shipping journal entries failed; retrying");
                tokio::time::sleep(delay).await;
            }
        }
    }
    metrics.journal_entries.inc_by(batch.len() as u64);
    let cursor = batch
        .iter()
        .rev()
        .find_map(|e| e["__CURSOR"].as_str().map(str::to_string));
    if let Some(cursor) = cursor {
        if let Err(err) = crate::fsutil::save_position(&s.state_path, CURSOR_KEY, &cursor) {
            // The entries are in the index: a restart sends them again, and they are one
            // document each by their cursor.
            warn!(error = %err, "cannot save the journal cursor");
        }
    }
    batch.clear();
}
