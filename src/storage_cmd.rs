//! `trawl storage splits` and `trawl storage check`: the shared tier (`[storage]` and a
//! PostgreSQL `[metastore]`) seen from the command line.

use std::collections::BTreeSet;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use serde_json::json;
use trawl_config::Config;
use trawl_storage::pg::SplitState;
use trawl_storage::{ObjectStorage, PgMetastore, StorageMetrics};

const ALL_STATES: &[SplitState] = &[
    SplitState::Staged,
    SplitState::Published,
    SplitState::Marked,
];

async fn open(config: &Config) -> anyhow::Result<(ObjectStorage, PgMetastore)> {
    anyhow::ensure!(
        config.storage.is_remote() && config.metastore.is_postgres(),
        "no shared tier configured: set [storage] uri and a postgres:// [metastore] uri"
    );
    let metrics = Arc::new(StorageMetrics::default());
    let storage =
        ObjectStorage::open(&config.storage, metrics.clone()).context("opening [storage]")?;
    let metastore = PgMetastore::connect(&config.metastore.uri, metrics)
        .await
        .context("connecting to the [metastore]")?;
    Ok((storage, metastore))
}

/// Prints the splits of the metastore as NDJSON, one row each, oldest first.
pub async fn splits(
    config: &Config,
    stream: Option<&str>,
    state: Option<SplitState>,
) -> anyhow::Result<ExitCode> {
    let (_, metastore) = open(config).await?;
    let states = state
        .map(|s| vec![s])
        .unwrap_or_else(|| ALL_STATES.to_vec());
    for split in metastore.splits(stream, &states).await? {
        println!("{}", serde_json::to_string(&split)?);
    }
    Ok(ExitCode::SUCCESS)
}

/// Compares object storage with the metastore and prints one JSON report: objects without a
/// row, published or marked rows without an object (staged rows without one are uploads in
/// flight or failed, the janitor's). Exits 1 when something is missing or left over.
pub async fn check(config: &Config) -> anyhow::Result<ExitCode> {
    let (storage, metastore) = open(config).await?;
    let rows = metastore.splits(None, ALL_STATES).await?;
    let objects: BTreeSet<String> = storage
        .list("splits/")
        .await?
        .into_iter()
        .map(|o| o.key)
        .collect();
    let keys: BTreeSet<&str> = rows.iter().map(|r| r.object_key.as_str()).collect();
    let without_row: Vec<&String> = objects
        .iter()
        .filter(|o| !keys.contains(o.as_str()))
        .collect();
    let mut without_object = Vec::new();
    let mut staged_without_object = Vec::new();
    for row in &rows {
        if !objects.contains(&row.object_key) {
            if row.state == SplitState::Staged {
                staged_without_object.push(&row.object_key);
            } else {
                without_object.push(&row.object_key);
            }
        }
    }
    let count = |state| rows.iter().filter(|r| r.state == state).count();
    let ok = without_row.is_empty() && without_object.is_empty();
    println!(
        "{}",
        serde_json::to_string_pretty(&json!({
            "ok": ok,
            "objects": objects.len(),
            "rows": {
                "staged": count(SplitState::Staged),
                "published": count(SplitState::Published),
                "marked": count(SplitState::Marked),
            },
            "objects_without_row": without_row,
            "rows_without_object": without_object,
            "staged_without_object": staged_without_object,
        }))?
    );
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
