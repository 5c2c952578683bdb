//! The PostgreSQL metastore (`[metastore] uri = "postgres://..."`): what every indexer and
//! searcher of a cluster agrees on.
//!
//! - **Splits** go `staged` (recorded before their object is uploaded) → `published` (visible
//!   to searchers) → `marked` (replaced by a merge or dropped by retention; the janitor
//!   deletes the object and the row after a grace period). A staged row that is never
//!   published is an upload that failed or an indexer that died: the janitor collects it.
//! - **One transaction per publish**: new splits, the splits they replace, and the source marks
//!   they carry change together, so a reader never sees half a merge and a crash never
//!   doubles or drops a record.
//! - **Ownership**: each source (a node's collector) is owned by one indexer at a time. Taking a
//!   source over bumps its token; a publish presents the tokens it was given and is refused
//!   ([`Error::Fenced`]) if any has moved on, so a replaced indexer cannot publish stale marks.
//! - **Leases**: upkeep (merges, retention, the janitor) runs once per cluster, under a lease
//!   row that its holder renews and that expires if the holder goes away.
//! - **Migrations**: numbered, applied in order in one transaction under an advisory lock
//!   (several processes may start at once); a database of a newer schema is refused.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio_postgres::{AsyncMessage, Client, NoTls};

use crate::metrics::StorageMetrics;
use crate::seen::{
    committed_of, snapshot_of, Committed, PgSnapshot, COMMIT_COLUMNS, SNAPSHOT_COLUMNS,
};
use crate::{Error, Result};

/// The schema's migrations, version 1 first. Never edit a released one: add the next.
const MIGRATIONS: &[&str] = &[
    // 1: the first release.
    r#"
    CREATE TABLE trawl_splits (
        stream TEXT NOT NULL,
        split_id TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('staged', 'published', 'marked')),
        object_key TEXT NOT NULL,
        min_timestamp BIGINT NOT NULL,
        max_timestamp BIGINT NOT NULL,
        docs BIGINT NOT NULL,
        bytes BIGINT NOT NULL,
        created_at BIGINT NOT NULL,
        merge_level INT NOT NULL,
        indexer TEXT NOT NULL,
        parents TEXT[] NOT NULL DEFAULT '{}',
        meta JSONB NOT NULL,
        updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        PRIMARY KEY (stream, split_id)
    );
    CREATE INDEX trawl_splits_state ON trawl_splits (state, updated_at);
    CREATE TABLE trawl_marks (
        source TEXT PRIMARY KEY,
        end_offset BIGINT NOT NULL,
        updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
    );
    CREATE TABLE trawl_source_owners (
        source TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        token BIGINT NOT NULL,
        updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
    );
    CREATE TABLE trawl_leases (
        name TEXT PRIMARY KEY,
        holder TEXT NOT NULL,
        expires_at TIMESTAMPTZ NOT NULL
    );
    "#,
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i32 = MIGRATIONS.len() as i32;

/// Key of the advisory lock migrations run under ("trawl" in ASCII).
const MIGRATION_LOCK: i64 = 0x0074_7261_776c;

/// Channel a publish notifies, with the stream's name as payload.
pub const NOTIFY_CHANNEL: &str = "trawl_splits";

/// Channel a takeover of a source notifies, with the previous owner's name as payload: that
/// indexer holds unpublished copies of what the new owner reads again.
pub const TAKEOVER_CHANNEL: &str = "trawl_takeovers";

/// Where a split is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SplitState {
    Staged,
    Published,
    Marked,
}

impl SplitState {
    pub fn as_str(self) -> &'static str {
        match self {
            SplitState::Staged => "staged",
            SplitState::Published => "published",
            SplitState::Marked => "marked",
        }
    }

    fn parse(s: &str) -> Result<SplitState> {
        match s {
            "staged" => Ok(SplitState::Staged),
            "published" => Ok(SplitState::Published),
            "marked" => Ok(SplitState::Marked),
            other => Err(Error::Conflict(format!("unknown split state `{other}`"))),
        }
    }
}

/// A split's row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitRecord {
    pub stream: String,
    pub split_id: String,
    pub state: SplitState,
    /// Key of its object in `[storage]`.
    pub object_key: String,
    pub min_timestamp: i64,
    pub max_timestamp: i64,
    pub docs: u64,
    pub bytes: u64,
    pub created_at: i64,
    pub merge_level: u32,
    /// The indexer that wrote it.
    pub indexer: String,
    /// The splits a merge made it from (empty for a sealed hot index).
    pub parents: Vec<String>,
    /// The writer's description of the split (its split meta).
    pub meta: serde_json::Value,
}

/// A stream's published splits as one statement read them, with that statement's snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct PublishedListing {
    pub records: Vec<SplitRecord>,
    /// Which publishes the list saw.
    pub seen: PgSnapshot,
}

/// One atomic publish.
#[derive(Debug, Clone, Default)]
pub struct Publish {
    pub stream: String,
    /// The indexer publishing.
    pub indexer: String,
    /// Staged splits of this indexer that become published.
    pub splits: Vec<String>,
    /// Published splits that become marked for deletion (a merge's inputs, retention).
    pub replaced: Vec<String>,
    /// Source marks the new splits bring the index to (only ever moved forward).
    pub marks: BTreeMap<String, u64>,
    /// The ownership tokens of the sources whose marks move: each must still be current.
    pub fence: BTreeMap<String, i64>,
}

/// What [`PgMetastore::acquire_source`] answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ownership {
    pub token: i64,
    /// The owner before, if another indexer held the source.
    pub previous_owner: Option<String>,
    /// The source's mark as published (what the published splits hold of it), if any: where
    /// a new owner resumes the source.
    pub published_mark: Option<u64>,
}

/// The metastore client: one connection, re-established after a failure.
pub struct PgMetastore {
    uri: String,
    client: tokio::sync::Mutex<Option<Client>>,
    metrics: Arc<StorageMetrics>,
}

impl std::fmt::Debug for PgMetastore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgMetastore").finish_non_exhaustive()
    }
}

/// The connection settings of `uri`; a URI without a password takes libpq's standard
/// `PGPASSWORD` from the environment (a Kubernetes Secret, kept out of the configuration file).
fn config_of(uri: &str) -> Result<tokio_postgres::Config> {
    let mut config: tokio_postgres::Config = uri.parse()?;
    if config.get_password().is_none() {
        if let Ok(password) = std::env::var("PGPASSWORD") {
            config.password(password);
        }
    }
    Ok(config)
}

async fn connect(uri: &str) -> Result<Client> {
    let (client, connection) = config_of(uri)?.connect(NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %e, "metastore connection ended");
        }
    });
    Ok(client)
}

/// What [`watch_published`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishedChange {
    /// The published splits of this stream changed (a publish, a merge, retention).
    Stream(String),
    /// Listening (again): any stream may have changed while it was not.
    Listening,
    /// The connection is lost: changes go unseen until [`PublishedChange::Listening`].
    Lost,
}

/// Listens, on a connection of its own, for the notifications every change of the published
/// splits sends ([`NOTIFY_CHANNEL`], in the changing transaction, so they arrive once it has
/// committed), and calls `on_change` for each; reconnects after a lost connection, every
/// `retry` until it succeeds. Runs until the task is aborted.
pub fn watch_published(
    uri: &str,
    retry: Duration,
    on_change: impl Fn(PublishedChange) + Send + Sync + 'static,
) -> tokio::task::JoinHandle<()> {
    watch(uri, NOTIFY_CHANNEL, retry, on_change)
}

/// [`watch_published`] for [`TAKEOVER_CHANNEL`]: `Stream` carries the name of the indexer
/// that lost a source.
pub fn watch_takeovers(
    uri: &str,
    retry: Duration,
    on_change: impl Fn(PublishedChange) + Send + Sync + 'static,
) -> tokio::task::JoinHandle<()> {
    watch(uri, TAKEOVER_CHANNEL, retry, on_change)
}

fn watch(
    uri: &str,
    channel: &'static str,
    retry: Duration,
    on_change: impl Fn(PublishedChange) + Send + Sync + 'static,
) -> tokio::task::JoinHandle<()> {
    let uri = uri.to_string();
    tokio::spawn(async move {
        loop {
            if let Err(err) = listen_once(&uri, channel, &on_change).await {
                tracing::debug!(%err, channel, "metastore notifications: not listening");
            }
            on_change(PublishedChange::Lost);
            tokio::time::sleep(retry).await;
        }
    })
}

/// One connection's worth of [`watch`]: returns when it ends.
async fn listen_once(uri: &str, channel: &str, on_change: &impl Fn(PublishedChange)) -> Result<()> {
    let (client, mut connection) = config_of(uri)?.connect(NoTls).await?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(n)) => {
                    if tx.send(n.payload().to_string()).is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(err) => {
                    tracing::debug!(%err, "metastore notification connection ended");
                    break;
                }
            }
        }
    });
    let listening = client.batch_execute(&format!("LISTEN {channel}")).await;
    if let Err(err) = listening {
        driver.abort();
        return Err(err.into());
    }
    on_change(PublishedChange::Listening);
    while let Some(stream) = rx.recv().await {
        on_change(PublishedChange::Stream(stream));
    }
    drop(client);
    Ok(())
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn record(row: &tokio_postgres::Row) -> Result<SplitRecord> {
    Ok(SplitRecord {
        stream: row.try_get("stream")?,
        split_id: row.try_get("split_id")?,
        state: SplitState::parse(row.try_get("state")?)?,
        object_key: row.try_get("object_key")?,
        min_timestamp: row.try_get("min_timestamp")?,
        max_timestamp: row.try_get("max_timestamp")?,
        docs: row.try_get::<_, i64>("docs")?.max(0) as u64,
        bytes: row.try_get::<_, i64>("bytes")?.max(0) as u64,
        created_at: row.try_get("created_at")?,
        merge_level: row.try_get::<_, i32>("merge_level")?.max(0) as u32,
        indexer: row.try_get("indexer")?,
        parents: row.try_get("parents")?,
        meta: row.try_get("meta")?,
    })
}

const SPLIT_COLUMNS: &str = "stream, split_id, state, object_key, min_timestamp, max_timestamp, \
     docs, bytes, created_at, merge_level, indexer, parents, meta";

impl PgMetastore {
    /// Connects to `uri` and brings the schema to [`SCHEMA_VERSION`]. A database whose schema
    /// is newer than this build is an error (roll the newer build back first).
    pub async fn connect(uri: &str, metrics: Arc<StorageMetrics>) -> Result<PgMetastore> {
        let mut client = connect(uri).await?;
        migrate(&mut client).await?;
        Ok(PgMetastore {
            uri: uri.to_string(),
            client: tokio::sync::Mutex::new(Some(client)),
            metrics,
        })
    }

    /// A client of `uri` that connects on its first call, and migrates nothing: for readers
    /// (searchers), which must start while PostgreSQL is away and leave the schema to the
    /// indexers. Calls fail until the server answers and the schema exists.
    pub fn lazy(uri: &str, metrics: Arc<StorageMetrics>) -> PgMetastore {
        PgMetastore {
            uri: uri.to_string(),
            client: tokio::sync::Mutex::new(None),
            metrics,
        }
    }

    /// Runs `op` on the connection (connecting first if the last one broke), counting its
    /// latency; a connection found closed after an error is dropped, to be made anew.
    async fn run<T>(&self, op: impl for<'c> AsyncFnOnce(&'c mut Client) -> Result<T>) -> Result<T> {
        let started = Instant::now();
        let mut guard = self.client.lock().await;
        if guard.as_ref().is_none_or(|c| c.is_closed()) {
            *guard = None;
            match connect(&self.uri).await {
                Ok(client) => *guard = Some(client),
                Err(e) => {
                    StorageMetrics::add(&self.metrics.metastore_errors, 1);
                    return Err(e);
                }
            }
        }
        let Some(client) = guard.as_mut() else {
            return Err(Error::Conflict("no metastore connection".into()));
        };
        let result = op(client).await;
        if result.is_err() {
            StorageMetrics::add(&self.metrics.metastore_errors, 1);
            if client.is_closed() {
                *guard = None;
            }
        }
        StorageMetrics::add(&self.metrics.metastore_calls, 1);
        StorageMetrics::add(
            &self.metrics.metastore_micros,
            started.elapsed().as_micros() as u64,
        );
        result
    }

    /// The schema version of the database.
    pub async fn schema_version(&self) -> Result<i32> {
        self.run(async |c| {
            let row = c
                .query_one("SELECT max(version) FROM trawl_schema_migrations", &[])
                .await?;
            Ok(row.try_get::<_, Option<i32>>(0)?.unwrap_or(0))
        })
        .await
    }

    /// Records a split as staged, before its object is uploaded. Staging the same split again
    /// (a retried upload) is not an error; staging over a published one is a conflict.
    pub async fn stage(&self, split: &SplitRecord) -> Result<()> {
        self.run(async |c| {
            let n = c
                .execute(
                    "INSERT INTO trawl_splits (stream, split_id, state, object_key, \
                     min_timestamp, max_timestamp, docs, bytes, created_at, merge_level, \
                     indexer, parents, meta) \
                     VALUES ($1, $2, 'staged', $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
                     ON CONFLICT (stream, split_id) DO UPDATE SET updated_at = now() \
                     WHERE trawl_splits.state = 'staged'",
                    &[
                        &split.stream,
                        &split.split_id,
                        &split.object_key,
                        &split.min_timestamp,
                        &split.max_timestamp,
                        &to_i64(split.docs),
                        &to_i64(split.bytes),
                        &split.created_at,
                        &(split.merge_level as i32),
                        &split.indexer,
                        &split.parents,
                        &split.meta,
                    ],
                )
                .await?;
            if n == 1 {
                Ok(())
            } else {
                Err(Error::Conflict(format!(
                    "split {}/{} is already past staged",
                    split.stream, split.split_id
                )))
            }
        })
        .await
    }

    /// Publishes in one transaction: `splits` staged → published, `replaced` published →
    /// marked, `marks` moved forward, every `fence` token checked. Idempotent: publishing
    /// again what was published (a retry after a lost answer) succeeds and changes nothing.
    /// Errors: [`Error::Fenced`] if a source has another owner now; [`Error::Conflict`] if a
    /// split is not where it should be (nothing is changed then).
    ///
    /// Returns the transaction that committed it: a listing whose snapshot
    /// [`sees`](PgSnapshot::sees) it saw this publish (a retry answers its own, later one).
    pub async fn publish(&self, publish: &Publish) -> Result<Committed> {
        self.run(async |c| {
            let tx = c.transaction().await?;
            for (source, presented) in &publish.fence {
                let row = tx
                    .query_opt(
                        "SELECT owner, token FROM trawl_source_owners WHERE source = $1 \
                         FOR UPDATE",
                        &[source],
                    )
                    .await?;
                let (owner, token): (String, i64) = match &row {
                    Some(row) => (row.try_get(0)?, row.try_get(1)?),
                    None => (String::new(), 0),
                };
                if token != *presented || owner != publish.indexer {
                    return Err(Error::Fenced {
                        source_id: source.clone(),
                        owner,
                        token,
                        presented: *presented,
                    });
                }
            }
            let published = tx
                .execute(
                    "UPDATE trawl_splits SET state = 'published', updated_at = now() \
                     WHERE stream = $1 AND split_id = ANY($2) AND indexer = $3 \
                     AND state IN ('staged', 'published')",
                    &[&publish.stream, &publish.splits, &publish.indexer],
                )
                .await?;
            if published as usize != publish.splits.len() {
                return Err(Error::Conflict(format!(
                    "{} of {} splits of {} to publish are not staged by {}",
                    publish.splits.len() - published as usize,
                    publish.splits.len(),
                    publish.stream,
                    publish.indexer
                )));
            }
            let marked = tx
                .execute(
                    "UPDATE trawl_splits SET state = 'marked', updated_at = now() \
                     WHERE stream = $1 AND split_id = ANY($2) AND state = 'published'",
                    &[&publish.stream, &publish.replaced],
                )
                .await?;
            if marked as usize != publish.replaced.len() {
                // A retry of a publish that went through finds them marked already: fine
                // only if every one of them is.
                let already = tx
                    .query_one(
                        "SELECT count(*) FROM trawl_splits WHERE stream = $1 \
                         AND split_id = ANY($2) AND state = 'marked'",
                        &[&publish.stream, &publish.replaced],
                    )
                    .await?
                    .try_get::<_, i64>(0)?;
                if already as usize != publish.replaced.len() {
                    return Err(Error::Conflict(format!(
                        "{} of the {} splits of {} to replace are not published",
                        publish.replaced.len() - already as usize,
                        publish.replaced.len(),
                        publish.stream
                    )));
                }
            }
            for (source, end) in &publish.marks {
                tx.execute(
                    "INSERT INTO trawl_marks (source, end_offset) VALUES ($1, $2) \
                     ON CONFLICT (source) DO UPDATE SET \
                     end_offset = GREATEST(trawl_marks.end_offset, EXCLUDED.end_offset), \
                     updated_at = now()",
                    &[source, &to_i64(*end)],
                )
                .await?;
            }
            tx.execute(
                "SELECT pg_notify($1, $2)",
                &[&NOTIFY_CHANNEL, &publish.stream],
            )
            .await?;
            let row = tx
                .query_one(&format!("SELECT {COMMIT_COLUMNS}"), &[])
                .await?;
            let committed = committed_of(&row)?;
            tx.commit().await?;
            Ok(committed)
        })
        .await
    }

    /// The splits of `stream` (every stream if `None`) in `states`, oldest first.
    pub async fn splits(
        &self,
        stream: Option<&str>,
        states: &[SplitState],
    ) -> Result<Vec<SplitRecord>> {
        let states: Vec<&str> = states.iter().map(|s| s.as_str()).collect();
        self.run(async |c| {
            let rows = c
                .query(
                    &format!(
                        "SELECT {SPLIT_COLUMNS} FROM trawl_splits \
                         WHERE ($1::TEXT IS NULL OR stream = $1) AND state = ANY($2) \
                         ORDER BY stream, created_at, split_id"
                    ),
                    &[&stream, &states],
                )
                .await?;
            rows.iter().map(record).collect()
        })
        .await
    }

    /// Every split of `indexer` in `states`: stream, id and state only (what a publisher
    /// compares its own data directory with).
    pub async fn states_of(
        &self,
        indexer: &str,
        states: &[SplitState],
    ) -> Result<Vec<(String, String, SplitState)>> {
        let states: Vec<&str> = states.iter().map(|s| s.as_str()).collect();
        self.run(async |c| {
            let rows = c
                .query(
                    "SELECT stream, split_id, state FROM trawl_splits \
                     WHERE indexer = $1 AND state = ANY($2)",
                    &[&indexer, &states],
                )
                .await?;
            rows.iter()
                .map(|r| {
                    Ok((
                        r.try_get(0)?,
                        r.try_get(1)?,
                        SplitState::parse(r.try_get(2)?)?,
                    ))
                })
                .collect()
        })
        .await
    }

    /// The published splits of `stream` that may hold documents in `[start, end)` (nanoseconds;
    /// `None` is unbounded), without their `meta`: what a searcher searches. Their `parents`
    /// are every ancestor still recorded (a merge's inputs, their inputs, and so on, marked
    /// rows the janitor has not removed yet): what a searcher leaves out of the indexers'
    /// leaf searches besides the splits themselves, for an indexer back from a while away may
    /// still hold a copy of any of them until its first round.
    pub async fn published_in(
        &self,
        stream: &str,
        start: Option<i64>,
        end: Option<i64>,
    ) -> Result<Vec<SplitRecord>> {
        Ok(self.published_listing(stream, start, end).await?.records)
    }

    /// [`PgMetastore::published_in`], with the snapshot the list was read under: which
    /// publishes it saw (see [`crate::seen`]).
    pub async fn published_listing(
        &self,
        stream: &str,
        start: Option<i64>,
        end: Option<i64>,
    ) -> Result<PublishedListing> {
        self.run(async |c| {
            let rows = c
                .query(
                    &format!(
                        "WITH RECURSIVE listed AS ( \
                       SELECT stream, split_id, state, object_key, min_timestamp, \
                       max_timestamp, docs, bytes, created_at, merge_level, indexer, parents \
                       FROM trawl_splits WHERE stream = $1 AND state = 'published' \
                       AND ($2::BIGINT IS NULL OR max_timestamp >= $2) \
                       AND ($3::BIGINT IS NULL OR min_timestamp < $3)), \
                     lineage(root, ancestor) AS ( \
                       SELECT l.split_id, p FROM listed l, unnest(l.parents) AS p \
                       UNION \
                       SELECT lineage.root, q FROM lineage \
                       JOIN trawl_splits s ON s.stream = $1 AND s.split_id = lineage.ancestor, \
                       unnest(s.parents) AS q) \
                     SELECT l.stream, l.split_id, l.state, l.object_key, l.min_timestamp, \
                     l.max_timestamp, l.docs, l.bytes, l.created_at, l.merge_level, l.indexer, \
                     COALESCE((SELECT array_agg(ancestor ORDER BY ancestor) FROM lineage \
                       WHERE root = l.split_id), '{{}}'::TEXT[]) AS parents, \
                     'null'::JSONB AS meta, one.seen, one.system, one.timeline \
                     FROM (SELECT {SNAPSHOT_COLUMNS}) AS one \
                     LEFT JOIN listed l ON true \
                     ORDER BY l.created_at, l.split_id"
                    ),
                    &[&stream, &start, &end],
                )
                .await?;
            // One row at least (the join's): the snapshot and its origin, read once, even of an
            // empty list.
            let Some(first) = rows.first() else {
                return Err(Error::Snapshot("no listing row".into()));
            };
            let seen = snapshot_of(first)?;
            let records = rows
                .iter()
                .filter(|row| matches!(row.try_get::<_, Option<String>>("split_id"), Ok(Some(_))))
                .map(record)
                .collect::<Result<Vec<_>>>()?;
            Ok(PublishedListing { records, seen })
        })
        .await
    }

    /// The snapshot a statement reads under now: which transactions have ended (see
    /// [`crate::seen`]).
    pub async fn current_snapshot(&self) -> Result<PgSnapshot> {
        self.run(async |c| {
            let row = c
                .query_one(&format!("SELECT {SNAPSHOT_COLUMNS}"), &[])
                .await?;
            snapshot_of(&row)
        })
        .await
    }

    /// The published splits of `stream`: what a searcher searches.
    pub async fn published(&self, stream: &str) -> Result<Vec<SplitRecord>> {
        self.splits(Some(stream), &[SplitState::Published]).await
    }

    /// The streams with a split in any state.
    pub async fn streams(&self) -> Result<Vec<String>> {
        self.run(async |c| {
            let rows = c
                .query(
                    "SELECT DISTINCT stream FROM trawl_splits ORDER BY stream",
                    &[],
                )
                .await?;
            rows.iter()
                .map(|r| Ok(r.try_get::<_, String>(0)?))
                .collect()
        })
        .await
    }

    /// The marks of every source.
    pub async fn marks(&self) -> Result<BTreeMap<String, u64>> {
        self.run(async |c| {
            let rows = c
                .query("SELECT source, end_offset FROM trawl_marks", &[])
                .await?;
            rows.iter()
                .map(|r| Ok((r.try_get(0)?, r.try_get::<_, i64>(1)?.max(0) as u64)))
                .collect()
        })
        .await
    }

    /// Makes `owner` the owner of `source` and returns its token: unchanged if it owned the
    /// source already, the old token plus one if another indexer did (fencing that one out).
    pub async fn acquire_source(&self, source: &str, owner: &str) -> Result<Ownership> {
        self.run(async |c| {
            let tx = c.transaction().await?;
            let row = tx
                .query_opt(
                    "SELECT owner, token FROM trawl_source_owners WHERE source = $1 FOR UPDATE",
                    &[&source],
                )
                .await?;
            let ownership = match row {
                None => {
                    tx.execute(
                        "INSERT INTO trawl_source_owners (source, owner, token) \
                         VALUES ($1, $2, 1) ON CONFLICT (source) DO NOTHING",
                        &[&source, &owner],
                    )
                    .await?;
                    Ownership {
                        token: 1,
                        previous_owner: None,
                        published_mark: None,
                    }
                }
                Some(row) => {
                    let (was, token): (String, i64) = (row.try_get(0)?, row.try_get(1)?);
                    if was == owner {
                        Ownership {
                            token,
                            previous_owner: None,
                            published_mark: None,
                        }
                    } else {
                        tx.execute(
                            "UPDATE trawl_source_owners SET owner = $2, token = token + 1, \
                             updated_at = now() WHERE source = $1",
                            &[&source, &owner],
                        )
                        .await?;
                        // Delivered on commit: the old owner reconciles at once.
                        tx.execute("SELECT pg_notify($1, $2)", &[&TAKEOVER_CHANNEL, &was])
                            .await?;
                        Ownership {
                            token: token + 1,
                            previous_owner: Some(was),
                            published_mark: None,
                        }
                    }
                }
            };
            let mut ownership = ownership;
            // Read under the owner row's lock: a publish of the source's marks takes the same
            // lock (its fence check), so the mark cannot move between this read and the commit.
            ownership.published_mark = tx
                .query_opt(
                    "SELECT end_offset FROM trawl_marks WHERE source = $1",
                    &[&source],
                )
                .await?
                .map(|row| row.try_get::<_, i64>(0))
                .transpose()?
                .map(|end| end.max(0) as u64);
            tx.commit().await?;
            Ok(ownership)
        })
        .await
    }

    /// The owners and tokens of those of `sources` that have one.
    pub async fn owners(&self, sources: &[String]) -> Result<BTreeMap<String, (String, i64)>> {
        self.run(async |c| {
            let rows = c
                .query(
                    "SELECT source, owner, token FROM trawl_source_owners \
                     WHERE source = ANY($1)",
                    &[&sources],
                )
                .await?;
            rows.iter()
                .map(|r| Ok((r.try_get(0)?, (r.try_get(1)?, r.try_get(2)?))))
                .collect()
        })
        .await
    }

    /// Takes or renews the lease `name` for `ttl` if it is free, expired or already
    /// `holder`'s. Returns whether `holder` holds it now.
    pub async fn try_lease(&self, name: &str, holder: &str, ttl: Duration) -> Result<bool> {
        let secs = ttl.as_secs_f64();
        self.run(async |c| {
            let row = c
                .query_opt(
                    "INSERT INTO trawl_leases (name, holder, expires_at) \
                     VALUES ($1, $2, now() + make_interval(secs => $3)) \
                     ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, \
                     expires_at = EXCLUDED.expires_at \
                     WHERE trawl_leases.holder = EXCLUDED.holder \
                     OR trawl_leases.expires_at <= now() \
                     RETURNING holder",
                    &[&name, &holder, &secs],
                )
                .await?;
            Ok(row.is_some())
        })
        .await
    }

    /// The metastore's counters.
    pub fn metrics(&self) -> &Arc<StorageMetrics> {
        &self.metrics
    }

    /// Marks, in one transaction, the published splits of `stream` that retention drops: every
    /// one wholly older than `cutoff` (nanoseconds), then the oldest while the published ones
    /// hold more than `max_bytes`. Returns the ids marked, oldest first. Whichever indexer
    /// wrote them: run by the one holding the retention lease, this covers splits whose
    /// indexer is gone.
    pub async fn apply_retention(
        &self,
        stream: &str,
        cutoff: Option<i64>,
        max_bytes: Option<u64>,
    ) -> Result<Vec<String>> {
        self.run(async |c| {
            let tx = c.transaction().await?;
            let rows = tx
                .query(
                    "SELECT split_id, max_timestamp, bytes FROM trawl_splits \
                     WHERE stream = $1 AND state = 'published' \
                     ORDER BY max_timestamp, split_id FOR UPDATE",
                    &[&stream],
                )
                .await?;
            let mut splits = Vec::with_capacity(rows.len());
            for row in &rows {
                let id: String = row.try_get(0)?;
                let max_ts: i64 = row.try_get(1)?;
                let bytes: i64 = row.try_get(2)?;
                splits.push((id, max_ts, bytes.max(0) as u64));
            }
            let mut doomed: Vec<String> = Vec::new();
            let mut kept_bytes: u64 = 0;
            let mut kept = Vec::new();
            for (id, max_ts, bytes) in splits {
                if cutoff.is_some_and(|cutoff| max_ts < cutoff) {
                    doomed.push(id);
                } else {
                    kept_bytes += bytes;
                    kept.push((id, bytes));
                }
            }
            if let Some(max_bytes) = max_bytes {
                for (id, bytes) in kept {
                    if kept_bytes <= max_bytes {
                        break;
                    }
                    kept_bytes -= bytes;
                    doomed.push(id);
                }
            }
            if !doomed.is_empty() {
                tx.execute(
                    "UPDATE trawl_splits SET state = 'marked', updated_at = now() \
                     WHERE stream = $1 AND split_id = ANY($2) AND state = 'published'",
                    &[&stream, &doomed],
                )
                .await?;
                tx.execute("SELECT pg_notify($1, $2)", &[&NOTIFY_CHANNEL, &stream])
                    .await?;
            }
            tx.commit().await?;
            Ok(doomed)
        })
        .await
    }

    /// Gives the lease up if `holder` holds it.
    pub async fn release_lease(&self, name: &str, holder: &str) -> Result<()> {
        self.run(async |c| {
            c.execute(
                "DELETE FROM trawl_leases WHERE name = $1 AND holder = $2",
                &[&name, &holder],
            )
            .await?;
            Ok(())
        })
        .await
    }

    /// Splits the janitor may remove: staged for longer than `grace` (never published) and
    /// marked for longer than `grace`.
    pub async fn expired(&self, grace: Duration) -> Result<Vec<SplitRecord>> {
        let secs = grace.as_secs_f64();
        self.run(async |c| {
            let rows = c
                .query(
                    &format!(
                        "SELECT {SPLIT_COLUMNS} FROM trawl_splits \
                         WHERE state IN ('staged', 'marked') \
                         AND updated_at <= now() - make_interval(secs => $1) \
                         ORDER BY updated_at"
                    ),
                    &[&secs],
                )
                .await?;
            rows.iter().map(record).collect()
        })
        .await
    }

    /// Takes the staged splits `ids` of `stream` that the janitor found past `grace` out of
    /// their publishers' reach before their objects are deleted: each one that is still staged
    /// and still past `grace` now is marked, in one statement. A publish of a split so taken is
    /// refused and staging it again waits until its row is gone, so an object is never deleted
    /// under a split that is (or becomes) published; a split staged again meanwhile (a retried
    /// upload refreshes its row) or published meanwhile is left alone. Returns the ids taken.
    pub async fn retire_staged(
        &self,
        stream: &str,
        ids: &[String],
        grace: Duration,
    ) -> Result<Vec<String>> {
        let secs = grace.as_secs_f64();
        self.run(async |c| {
            let rows = c
                .query(
                    "UPDATE trawl_splits SET state = 'marked', updated_at = now() \
                     WHERE stream = $1 AND split_id = ANY($2) AND state = 'staged' \
                     AND updated_at <= now() - make_interval(secs => $3) \
                     RETURNING split_id",
                    &[&stream, &ids, &secs],
                )
                .await?;
            rows.iter()
                .map(|row| Ok(row.try_get::<_, String>(0)?))
                .collect()
        })
        .await
    }

    /// Deletes the rows of marked splits whose objects are gone (a staged split is taken with
    /// [`PgMetastore::retire_staged`] first; a published one is never deleted this way).
    pub async fn delete_splits(&self, stream: &str, ids: &[String]) -> Result<u64> {
        self.run(async |c| {
            Ok(c.execute(
                "DELETE FROM trawl_splits WHERE stream = $1 AND split_id = ANY($2) \
                 AND state = 'marked'",
                &[&stream, &ids],
            )
            .await?)
        })
        .await
    }
}

/// Applies the migrations the database lacks, in one transaction under an advisory lock.
async fn migrate(client: &mut Client) -> Result<()> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS trawl_schema_migrations (\
         version INT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
    )
    .await?;
    let current: i32 = tx
        .query_one(
            "SELECT coalesce(max(version), 0) FROM trawl_schema_migrations",
            &[],
        )
        .await?
        .try_get(0)?;
    if current > SCHEMA_VERSION {
        return Err(Error::Config(format!(
            "the metastore's schema is version {current}; this build knows up to \
             {SCHEMA_VERSION}"
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let version = i as i32 + 1;
        tx.batch_execute(sql).await?;
        tx.execute(
            "INSERT INTO trawl_schema_migrations (version) VALUES ($1)",
            &[&version],
        )
        .await?;
        tracing::info!(version, "metastore schema migrated");
    }
    tx.commit().await?;
    Ok(())
}
