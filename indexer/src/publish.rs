//! The publisher (`[storage] uri` and a PostgreSQL `[metastore]`): every sealed or merged split
//! of this indexer is uploaded once as one object and published in the shared metastore; what
//! a merge replaced or retention dropped is marked there for deletion — a stream's new splits
//! and the splits they replace in one transaction, so a reader never sees half a merge.
//!
//! ```text
//! local metastore (this indexer's splits)      shared tier
//!   new split  ── stage row ── bundle ── upload ──┐
//!   merged away / retired ────────────────────────┴─ publish (one transaction)
//!   publisher.json: the splits of this data directory that are published, and the
//!                   PostgreSQL transaction each was published in
//! ```
//!
//! The local split directories stay the indexer's own (its leaf searches read them as before)
//! up to `keep_local_bytes` of published ones: past it the oldest are dropped
//! (`indexer::local_copies`); the shared tier is what survives the loss of the indexer's
//! volume. `publisher.json` tells a
//! split this data directory published and then dropped (mark it) from one another data
//! directory published (a volume lost and started afresh: leave it published).
//!
//! A janitor, under a lease so that one indexer of the cluster runs it, deletes the objects and
//! rows of splits staged but never published, and of splits marked, once `grace` has passed.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use trawl_storage::pg::{Publish, SplitRecord, SplitState};
use trawl_storage::seen::Committed;
use trawl_storage::{write_bundle, ObjectStorage, PgMetastore};

use crate::json_file;
use crate::split::SplitHandle;
use crate::Indexer;

/// Version of `publisher.json`.
const PUBLISHER_STATE_VERSION: u32 = 1;

/// Lease of the janitor, one holder per cluster.
const JANITOR_LEASE: &str = "janitor";

/// Lease of the cluster's retention, one holder per cluster.
const RETENTION_LEASE: &str = "retention";

/// Rounds between two checks of this indexer's sources against their owners.
const RECONCILE_EVERY: u32 = 5;

/// Prefix of the lease each publishing process holds on its indexer id, so that two live
/// processes never publish as the same indexer.
const ID_LEASE_PREFIX: &str = "indexer-id:";

/// What this data directory has published, per stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PublisherState {
    version: u32,
    published: BTreeMap<String, BTreeSet<String>>,
    /// Published splits whose local copies are being dropped (see `indexer::local_copies`):
    /// published, never new, never gone; the next round finishes their drop.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    dropping: BTreeMap<String, BTreeSet<String>>,
    /// The PostgreSQL transaction each split of `published` and `dropping` was published in,
    /// per stream (see `trawl_storage::seen`: a searcher whose list saw it leaves this
    /// indexer's copy out). Splits adopted from the metastore, or published before this was
    /// recorded, have none: searchers leave those out by id only.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    xids: BTreeMap<String, BTreeMap<String, Committed>>,
}

impl PublisherState {
    /// Tells the indexer which splits of each stream are published: those recorded so and
    /// those whose copies are being dropped.
    fn tell(&self, indexer: &Indexer) {
        let streams: BTreeSet<&String> =
            self.published.keys().chain(self.dropping.keys()).collect();
        for stream in streams {
            let xids = self.xids.get(stream);
            let ids = self
                .published
                .get(stream)
                .into_iter()
                .chain(self.dropping.get(stream))
                .flatten()
                .map(|id| (id.clone(), xids.and_then(|x| x.get(id)).copied()));
            indexer.set_published(stream, ids);
        }
    }

    /// Forgets the transactions of splits neither published nor being dropped any more.
    fn prune_xids(&mut self) {
        let (published, dropping) = (&self.published, &self.dropping);
        self.xids.retain(|stream, xids| {
            xids.retain(|id, _| {
                published.get(stream).is_some_and(|p| p.contains(id))
                    || dropping.get(stream).is_some_and(|d| d.contains(id))
            });
            !xids.is_empty()
        });
    }
}

impl Default for PublisherState {
    fn default() -> Self {
        PublisherState {
            version: PUBLISHER_STATE_VERSION,
            published: BTreeMap::new(),
            dropping: BTreeMap::new(),
            xids: BTreeMap::new(),
        }
    }
}

/// The shared tier an indexer publishes to.
pub struct Publisher {
    pub storage: ObjectStorage,
    pub metastore: Arc<PgMetastore>,
    /// This indexer's name in the metastore (its pod name in a cluster).
    pub indexer_id: String,
    /// Where bundles are written before their upload.
    pub upload_dir: PathBuf,
    /// `publisher.json`.
    pub state_path: PathBuf,
    /// How long staged and marked splits are kept before the janitor removes them.
    pub grace: Duration,
    /// This process, as the holder of its indexer id's lease.
    instance: String,
    /// How long the id lease lasts without renewal (a crashed process's id is free after it).
    pub id_lease: Duration,
    /// Rounds since the sources were last checked against their owners (see
    /// [`Publisher::reconcile`]); `None` before the first check.
    since_reconcile: std::sync::Mutex<Option<u32>>,
    /// Bytes of published splits whose local copies are kept (`[storage]
    /// local_splits_max_bytes`); `None`: every copy is kept (`trawl standalone`).
    pub keep_local_bytes: Option<u64>,
    /// The cluster's merger this indexer runs when it holds the `merges` lease; `None`: it
    /// merges its own splits locally (`trawl standalone`).
    pub merger: Option<crate::cluster_merge::ClusterMerger>,
    /// Held by a round from start to end, and by the cluster's merger while it swaps its
    /// output in locally: `publisher.json` and the local splits change under one at a time.
    pub(crate) rounds: tokio::sync::Mutex<()>,
    /// Set when the metastore says another indexer took a source of this one over: the next
    /// round reconciles at once instead of at its turn, and comes at once.
    pub takeover: Arc<Takeover>,
}

/// A takeover of one of this indexer's sources, noticed (see [`Publisher::takeover`]).
#[derive(Default)]
pub struct Takeover {
    pending: std::sync::atomic::AtomicBool,
    wake: tokio::sync::Notify,
}

impl Takeover {
    /// Another indexer took a source over (or notices may have been missed): reconcile now.
    pub fn noticed(&self) {
        self.pending
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.wake.notify_one();
    }
}

/// What one round did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RoundOutcome {
    pub uploaded: usize,
    pub published: usize,
    pub replaced: usize,
    /// Published splits whose local copies were dropped.
    pub dropped_local: usize,
}

/// Tells `indexer` which of its splits `publisher.json` under `dir` records as published (and
/// in which transactions), before the publisher can reach the metastore: an indexer that
/// starts while PostgreSQL is away still merges only those, and searchers still leave out its
/// copies of what their lists saw. Errors: an unreadable `publisher.json`.
pub fn tell_recorded(dir: &Path, indexer: &Indexer) -> Result<()> {
    let state: PublisherState = json_file::load(
        &dir.join("publisher.json"),
        "publisher state",
        PUBLISHER_STATE_VERSION,
        &[],
    )?;
    state.tell(indexer);
    Ok(())
}

impl Publisher {
    /// The publisher of `indexer_id`, keeping its files under `dir` (the indexer's directory).
    pub fn new(
        storage: ObjectStorage,
        metastore: Arc<PgMetastore>,
        indexer_id: String,
        dir: &Path,
        grace: Duration,
    ) -> Publisher {
        Publisher {
            storage,
            metastore,
            upload_dir: dir.join("upload"),
            state_path: dir.join("publisher.json"),
            grace,
            instance: format!(
                "{indexer_id}/{}/{}",
                std::process::id(),
                trawl_model::Timestamp::now().nanos()
            ),
            indexer_id,
            id_lease: Duration::from_secs(30),
            since_reconcile: std::sync::Mutex::new(None),
            keep_local_bytes: None,
            merger: None,
            rounds: tokio::sync::Mutex::new(()),
            takeover: Arc::new(Takeover::default()),
        }
    }

    /// Takes or renews this process's lease on its indexer id. Another live process holding it
    /// (two indexers configured with the same `[indexer] id`, or the same host name) makes
    /// every round fail until it is gone: their splits and marks would mix.
    async fn hold_id(&self) -> Result<()> {
        let lease = format!("{ID_LEASE_PREFIX}{}", self.indexer_id);
        let metrics = self.metastore.metrics();
        let held = self
            .metastore
            .try_lease(&lease, &self.instance, self.id_lease)
            .await?;
        metrics
            .id_lease_held
            .store(u64::from(held), std::sync::atomic::Ordering::Relaxed);
        if held {
            return Ok(());
        }
        trawl_storage::StorageMetrics::inc(&metrics.duplicate_id_refusals, 1);
        Err(PublishError::DuplicateId(self.indexer_id.clone()))
    }

    /// Gives the id lease up at shutdown, so that the next process of this indexer publishes
    /// at once.
    pub async fn release_id(&self) {
        let lease = format!("{ID_LEASE_PREFIX}{}", self.indexer_id);
        if let Err(err) = self.metastore.release_lease(&lease, &self.instance).await {
            tracing::warn!(%err, "could not release the indexer id's lease");
        }
    }

    /// The cluster's retention, if this indexer holds its lease: marks the published splits of
    /// every stream with retention that it drops, whichever indexer wrote them (those of a lost
    /// volume too). Each indexer still drops its own copies by the same rule. Returns how many
    /// were marked.
    pub async fn cluster_retention(&self, indexer: &Indexer, lease: Duration) -> Result<usize> {
        if !self
            .metastore
            .try_lease(RETENTION_LEASE, &self.indexer_id, lease)
            .await?
        {
            return Ok(0);
        }
        let now = trawl_model::Timestamp::now().nanos();
        let mut marked = 0;
        for stream in indexer.stream_names() {
            let settings = indexer.settings().stream_settings(&stream);
            if settings.retention_max_age.is_none() && settings.retention_max_bytes.is_none() {
                continue;
            }
            let cutoff = settings
                .retention_max_age
                .map(|age| now.saturating_sub(i64::try_from(age.as_nanos()).unwrap_or(i64::MAX)));
            let doomed = self
                .metastore
                .apply_retention(&stream, cutoff, settings.retention_max_bytes)
                .await?;
            if !doomed.is_empty() {
                tracing::info!(
                    stream,
                    splits = doomed.len(),
                    "cluster retention marked splits"
                );
            }
            marked += doomed.len();
        }
        trawl_storage::StorageMetrics::inc(
            &self.metastore.metrics().retention_marked,
            marked as u64,
        );
        Ok(marked)
    }

    fn load_state(&self) -> Result<PublisherState> {
        Ok(json_file::load(
            &self.state_path,
            "publisher state",
            PUBLISHER_STATE_VERSION,
            &[],
        )?)
    }

    fn store_state(&self, state: &PublisherState) -> Result<()> {
        let bytes = serde_json::to_vec(state).map_err(std::io::Error::other)?;
        Ok(json_file::replace(&self.state_path, &bytes)?)
    }

    /// Uploads and publishes what changed since the last round, stream by stream. A stream
    /// whose upload or publish fails is left for the next round (nothing it did is visible
    /// until its publish).
    pub async fn round(&self, indexer: &Indexer) -> Result<RoundOutcome> {
        let _round = self.rounds.lock().await;
        let mut state = self.load_state()?;
        state.tell(indexer);
        // Drops a stopped process left recorded but not carried out.
        for (stream, ids) in state.dropping.clone() {
            let ids: Vec<String> = ids.into_iter().collect();
            self.forget_local(indexer, &mut state, &stream, &ids)?;
        }
        // Before the id's lease: removing local copies needs no lease, and a process that
        // restarts waits a while for the lease of its killed predecessor.
        let noticed = self
            .takeover
            .pending
            .swap(false, std::sync::atomic::Ordering::SeqCst);
        let due = noticed || {
            let mut since = crate::stream::lock(&self.since_reconcile);
            match since.as_mut() {
                Some(n) if *n + 1 < RECONCILE_EVERY => {
                    *n += 1;
                    false
                }
                _ => true,
            }
        };
        if due {
            if let Err(err) = self.reconcile(indexer).await {
                // A notice is not lost to a failed check: the next round checks again.
                if noticed {
                    self.takeover
                        .pending
                        .store(true, std::sync::atomic::Ordering::SeqCst);
                }
                return Err(err);
            }
            *crate::stream::lock(&self.since_reconcile) = Some(0);
        }
        self.hold_id().await?;
        let mine: HashMap<(String, String), SplitState> = self
            .metastore
            .states_of(
                &self.indexer_id,
                &[
                    SplitState::Staged,
                    SplitState::Published,
                    SplitState::Marked,
                ],
            )
            .await?
            .into_iter()
            .map(|(stream, id, state)| ((stream, id), state))
            .collect();
        let local_splits = indexer.local_splits();
        // Splits the metastore has published for this indexer that `publisher.json` does not
        // list: a round cut short before it wrote the file. They are published, never new:
        // adopted first, so that no purge takes them for unpublished records. (A split the
        // metastore marked without `publisher.json` listing it was staged and never published:
        // the janitor took it back, and it is staged again.)
        let mut adopted = false;
        for (stream, _, splits) in &local_splits {
            for split in splits {
                let key = (stream.clone(), split.meta.id.clone());
                if mine.get(&key) == Some(&SplitState::Published)
                    && !state
                        .dropping
                        .get(stream)
                        .is_some_and(|d| d.contains(&split.meta.id))
                    && state
                        .published
                        .entry(stream.clone())
                        .or_default()
                        .insert(split.meta.id.clone())
                {
                    adopted = true;
                }
            }
        }
        if adopted {
            self.store_state(&state)?;
            state.tell(indexer);
        }
        // Splits of this data directory marked by another's publish (the cluster's merger
        // merged them, the cluster's retention dropped them): their copies go, and nothing is
        // published for them.
        let marked: Vec<(String, Vec<String>)> = state
            .published
            .iter()
            .map(|(stream, ids)| {
                let ids = ids
                    .iter()
                    .filter(|id| {
                        mine.get(&(stream.clone(), (*id).clone())) == Some(&SplitState::Marked)
                    })
                    .cloned()
                    .collect::<Vec<_>>();
                (stream.clone(), ids)
            })
            .filter(|(_, ids)| !ids.is_empty())
            .collect();
        let vanished = self.vanished(&state, &mine).await?;
        let mut local_splits = local_splits;
        for (stream, ids) in marked.iter().chain(&vanished) {
            self.forget_local(indexer, &mut state, stream, ids)?;
        }
        if !marked.is_empty() || !vanished.is_empty() {
            local_splits = indexer.local_splits();
        }
        let mut outcome = RoundOutcome::default();
        let mut first_error = None;
        for (stream, default_fields, splits) in local_splits {
            let before = state.published.get(&stream).cloned().unwrap_or_default();
            let dropping = state.dropping.get(&stream).cloned().unwrap_or_default();
            let local: BTreeSet<String> = splits
                .iter()
                .map(|s| s.meta.id.clone())
                .filter(|id| !dropping.contains(id))
                .collect();
            let new: Vec<&Arc<SplitHandle>> = splits
                .iter()
                .filter(|s| !before.contains(&s.meta.id) && !dropping.contains(&s.meta.id))
                .collect();
            let gone: Vec<String> = before.difference(&local).cloned().collect();
            if new.is_empty() && gone.is_empty() {
                continue;
            }
            match self
                .publish_stream(indexer, &stream, &default_fields, &new, &gone, &mine)
                .await
            {
                // Records of sources taken over were removed: the next round publishes.
                Ok(None) => {}
                Ok(Some((uploaded, xid))) => {
                    outcome.uploaded += uploaded;
                    outcome.published += new.len();
                    outcome.replaced += gone.len();
                    state.published.insert(stream.clone(), local);
                    let xids = state.xids.entry(stream.clone()).or_default();
                    xids.extend(new.iter().map(|s| (s.meta.id.clone(), xid)));
                    state.prune_xids();
                    self.store_state(&state)?;
                    state.tell(indexer);
                }
                Err(err) => {
                    tracing::warn!(stream, %err, "publishing splits failed; retrying next round");
                    first_error.get_or_insert(err);
                }
            }
        }
        if let Some(max_bytes) = self.keep_local_bytes {
            outcome.dropped_local = self.drop_local_copies(indexer, &mut state, max_bytes)?;
        }
        match first_error {
            Some(err) => Err(err),
            None => Ok(outcome),
        }
    }

    /// Splits of this data directory published and since removed from the metastore
    /// altogether (marked by another's merge or the cluster's retention, then collected by the
    /// janitor while this indexer was away): their copies go as marked ones do. A split counts
    /// only when the metastore has seen its publish: a row missing from another database (the
    /// metastore replaced) leaves its copy alone, as does a split without a recorded
    /// transaction.
    async fn vanished(
        &self,
        state: &PublisherState,
        mine: &HashMap<(String, String), SplitState>,
    ) -> Result<Vec<(String, Vec<String>)>> {
        let candidates: Vec<(String, Vec<(String, Committed)>)> = state
            .published
            .iter()
            .map(|(stream, ids)| {
                let xids = state.xids.get(stream);
                let ids = ids
                    .iter()
                    .filter(|id| !mine.contains_key(&(stream.clone(), (*id).clone())))
                    .filter_map(|id| Some((id.clone(), *xids?.get(id)?)))
                    .collect::<Vec<_>>();
                (stream.clone(), ids)
            })
            .filter(|(_, ids)| !ids.is_empty())
            .collect();
        if candidates.is_empty() {
            return Ok(Vec::new());
        }
        let now = self.metastore.current_snapshot().await?;
        Ok(candidates
            .into_iter()
            .map(|(stream, ids)| {
                let seen = ids
                    .into_iter()
                    .filter(|(_, xid)| now.sees(xid))
                    .map(|(id, _)| id)
                    .collect::<Vec<_>>();
                (stream, seen)
            })
            .filter(|(_, ids)| !ids.is_empty())
            .collect())
    }

    /// Drops the local copies of this data directory's published splits past `max_bytes`,
    /// oldest first by their newest record (see `indexer::local_copies`). Returns how many.
    fn drop_local_copies(
        &self,
        indexer: &Indexer,
        state: &mut PublisherState,
        max_bytes: u64,
    ) -> Result<usize> {
        let mut kept: Vec<(i64, String, String, u64)> = Vec::new();
        for (stream, _, splits) in indexer.local_splits() {
            let Some(published) = state.published.get(&stream) else {
                continue;
            };
            kept.extend(
                splits
                    .iter()
                    .filter(|s| published.contains(&s.meta.id))
                    .map(|s| {
                        let m = &s.meta;
                        (m.max_timestamp, stream.clone(), m.id.clone(), m.bytes)
                    }),
            );
        }
        let mut total: u64 = kept.iter().map(|k| k.3).sum();
        if total <= max_bytes {
            return Ok(0);
        }
        kept.sort();
        let mut doomed: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (_, stream, id, bytes) in kept {
            if total <= max_bytes {
                break;
            }
            total -= bytes;
            doomed.entry(stream).or_default().push(id);
        }
        let mut dropped = 0;
        for (stream, ids) in doomed {
            dropped += self.forget_local(indexer, state, &stream, &ids)?;
        }
        Ok(dropped)
    }

    /// Records in `publisher.json` that the cluster merge output `id`, published, is a local
    /// split of `stream` now, in place of the local copies `replaced`.
    /// `xid`: the transaction the merge was published in.
    pub(crate) fn record_adopted(
        &self,
        indexer: &Indexer,
        stream: &str,
        id: &str,
        xid: Committed,
        replaced: &[String],
    ) -> Result<()> {
        let mut state = self.load_state()?;
        let published = state.published.entry(stream.to_string()).or_default();
        published.retain(|p| !replaced.contains(p));
        published.insert(id.to_string());
        let xids = state.xids.entry(stream.to_string()).or_default();
        xids.insert(id.to_string(), xid);
        state.prune_xids();
        self.store_state(&state)?;
        state.tell(indexer);
        Ok(())
    }

    /// Drops the local copies of the published splits `ids` of `stream`: recorded in
    /// `publisher.json` as being dropped first (see `indexer::local_copies`), and cleared from
    /// there once done. Returns how many were dropped.
    fn forget_local(
        &self,
        indexer: &Indexer,
        state: &mut PublisherState,
        stream: &str,
        ids: &[String],
    ) -> Result<usize> {
        let gone = indexer.drop_local_copies(stream, ids, |ids: &[String]| -> Result<()> {
            if let Some(published) = state.published.get_mut(stream) {
                published.retain(|id| !ids.contains(id));
            }
            state
                .dropping
                .entry(stream.to_string())
                .or_default()
                .extend(ids.iter().cloned());
            self.store_state(state)
        })?;
        // Done (or nothing left to drop: a merge replaced them meanwhile).
        let mut cleared = false;
        if let Some(dropping) = state.dropping.get_mut(stream) {
            let before = dropping.len();
            dropping.retain(|id| !ids.contains(id));
            cleared = dropping.len() != before;
            if dropping.is_empty() {
                state.dropping.remove(stream);
            }
        }
        if cleared {
            state.prune_xids();
            self.store_state(state)?;
        }
        Ok(gone.len())
    }

    /// Finds the sources this indexer has marks for that another indexer owns now (its
    /// collectors failed over while it was away, or while it was cut off from them), and
    /// removes what it holds of them unpublished: the new owner read those records again. At
    /// the first round (the WAL replayed such records), at once when the metastore notifies a
    /// takeover of one of its sources ([`Takeover`]), and every [`RECONCILE_EVERY`] besides
    /// (a notice missed while not listening): an indexer cut off but running holds them in its
    /// hot index until it seals.
    async fn reconcile(&self, indexer: &Indexer) -> Result<()> {
        let Some(ownership) = indexer.ownership() else {
            return Ok(());
        };
        let lost = ownership.taken_by_others(&indexer.mark_sources()).await?;
        purge(indexer, lost).await
    }

    /// Stages and uploads the `new` splits of `stream` that are not published yet, then
    /// publishes them with the `gone` ones replaced, in one transaction. Returns how many were
    /// uploaded and the transaction's id, or `None` when the splits held records of sources
    /// another indexer owns now: those were removed, and the next round publishes what is
    /// left.
    async fn publish_stream(
        &self,
        indexer: &Indexer,
        stream: &str,
        default_fields: &[String],
        new: &[&Arc<SplitHandle>],
        gone: &[String],
        mine: &HashMap<(String, String), SplitState>,
    ) -> Result<Option<(usize, Committed)>> {
        // The source marks the new splits carry, with the tokens that prove this indexer
        // still owns those sources; the records of those it does not own any more go first.
        let mut carried = BTreeMap::new();
        for split in new {
            crate::split::merge_marks(&mut carried, &split.meta.marks);
        }
        let (marks, fence) = match indexer.ownership() {
            Some(ownership) if !carried.is_empty() => ownership.fence_for(&carried).await?,
            _ => (BTreeMap::new(), BTreeMap::new()),
        };
        if indexer.ownership().is_some() {
            let lost: Vec<String> = carried
                .keys()
                .filter(|s| !marks.contains_key(*s))
                .cloned()
                .collect();
            if !lost.is_empty() {
                purge(indexer, lost).await?;
                return Ok(None);
            }
        }
        let mut uploaded = 0;
        for split in new {
            let key = (stream.to_string(), split.meta.id.clone());
            if mine.get(&key) == Some(&SplitState::Published) {
                // Published by a round whose state file write was cut short.
                continue;
            }
            let record = self.record(split);
            self.metastore.stage(&record).await?;
            self.upload(split, default_fields, &record.object_key)
                .await?;
            uploaded += 1;
            indexer
                .settings()
                .crash_point(crate::settings::CRASH_AFTER_UPLOAD);
        }
        let publish = Publish {
            stream: stream.to_string(),
            indexer: self.indexer_id.clone(),
            splits: new.iter().map(|s| s.meta.id.clone()).collect(),
            replaced: gone.to_vec(),
            marks,
            fence,
        };
        let xid = match self.metastore.publish(&publish).await {
            Ok(xid) => xid,
            Err(err) => {
                if let (trawl_storage::Error::Fenced { source_id, .. }, Some(ownership)) =
                    (&err, indexer.ownership())
                {
                    // Taken over meanwhile: the next round removes its records, then publishes.
                    ownership.lost(source_id);
                }
                return Err(err.into());
            }
        };
        tracing::info!(
            stream,
            published = publish.splits.len(),
            replaced = publish.replaced.len(),
            "splits published to the shared tier"
        );
        Ok(Some((uploaded, xid)))
    }

    fn record(&self, split: &SplitHandle) -> SplitRecord {
        let meta = &split.meta;
        SplitRecord {
            stream: meta.stream.clone(),
            split_id: meta.id.clone(),
            state: SplitState::Staged,
            object_key: ObjectStorage::split_key(&meta.stream, &meta.id),
            min_timestamp: meta.min_timestamp,
            max_timestamp: meta.max_timestamp,
            docs: meta.docs,
            bytes: meta.bytes,
            created_at: meta.created_at,
            merge_level: meta.merge_level,
            indexer: self.indexer_id.clone(),
            parents: meta.parents.clone(),
            meta: serde_json::to_value(meta).unwrap_or_default(),
        }
    }

    /// Bundles the split's directory into `upload/` and uploads it.
    async fn upload(
        &self,
        split: &SplitHandle,
        default_fields: &[String],
        key: &str,
    ) -> Result<()> {
        let meta = serde_json::json!({
            "split": &split.meta,
            "indexer": &self.indexer_id,
            "default_fields": default_fields,
        });
        self.upload_dir(&split.dir, &split.meta.id, meta, key).await
    }

    /// Bundles the split directory `dir` (split `id`, described by `meta` in the footer) into
    /// `upload/` and uploads it as `key`.
    pub(crate) async fn upload_dir(
        &self,
        dir: &Path,
        id: &str,
        meta: serde_json::Value,
        key: &str,
    ) -> Result<()> {
        std::fs::create_dir_all(&self.upload_dir)?;
        let bundle = self.upload_dir.join(format!("{id}.split"));
        let dir = dir.to_path_buf();
        let out = bundle.clone();
        tokio::task::spawn_blocking(move || write_bundle(&dir, &meta, &out))
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))??;
        let result = self.storage.upload_file(key, &bundle).await;
        let _ = std::fs::remove_file(&bundle);
        result?;
        Ok(())
    }

    /// The janitor, if this indexer holds its lease: deletes the objects, then the rows, of
    /// splits staged and never published or marked for deletion, older than `grace`. Returns
    /// how many it removed.
    pub async fn janitor(&self, lease: Duration) -> Result<usize> {
        if !self
            .metastore
            .try_lease(JANITOR_LEASE, &self.indexer_id, lease)
            .await?
        {
            return Ok(0);
        }
        let expired = self.metastore.expired(self.grace).await?;
        let mut by_stream: BTreeMap<&str, Vec<&SplitRecord>> = BTreeMap::new();
        for split in &expired {
            by_stream.entry(&split.stream).or_default().push(split);
        }
        let mut removed = 0;
        for (stream, splits) in by_stream {
            // Staged splits are taken out of their publishers' reach first: one published (or
            // staged again by a retried upload) since they were listed keeps its object.
            let staged: Vec<String> = splits
                .iter()
                .filter(|s| s.state == SplitState::Staged)
                .map(|s| s.split_id.clone())
                .collect();
            let taken = if staged.is_empty() {
                Vec::new()
            } else {
                self.metastore
                    .retire_staged(stream, &staged, self.grace)
                    .await?
            };
            let mut ids = Vec::new();
            for split in splits {
                if split.state == SplitState::Staged && !taken.contains(&split.split_id) {
                    continue;
                }
                self.storage.delete(&split.object_key).await?;
                ids.push(split.split_id.clone());
            }
            removed += self.metastore.delete_splits(stream, &ids).await? as usize;
        }
        if removed > 0 {
            tracing::info!(removed, "janitor removed unpublished and marked splits");
        }
        Ok(removed)
    }
}

/// Why a publisher round failed.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(transparent)]
    Storage(#[from] trawl_storage::Error),
    #[error(transparent)]
    Local(#[from] crate::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("another live process publishes as indexer `{0}`: give each indexer its own `[indexer] id` (or host name); this one publishes nothing until that one is gone")]
    DuplicateId(String),
}

type Result<T, E = PublishError> = std::result::Result<T, E>;

/// Removes what `indexer` holds unpublished of `sources` (owned by other indexers), with
/// claims held off; those claimed back meanwhile are left alone.
async fn purge(indexer: &Indexer, sources: Vec<String>) -> Result<()> {
    let Some(ownership) = indexer.ownership() else {
        return Ok(());
    };
    if sources.is_empty() {
        return Ok(());
    }
    let _claims = ownership.hold_claims().await;
    let sources: Vec<String> = sources.into_iter().filter(|s| !ownership.owns(s)).collect();
    indexer.purge_sources_off_runtime(sources.clone()).await?;
    ownership.purged(&sources);
    Ok(())
}

/// Runs the publisher until `stop` turns true: a round every `interval` (and the janitor and
/// the cluster's retention every tenth), retrying what failed at the next; with a merger, the
/// cluster's merges every ten intervals beside it (a long merge holds no upload back). The id
/// lease lasts ten rounds (at least 5 s): a process killed outright frees its id after that.
pub async fn run(
    mut publisher: Publisher,
    indexer: Indexer,
    interval: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    publisher.id_lease = (interval * 10).max(Duration::from_secs(5));
    let publisher = Arc::new(publisher);
    if publisher.merger.is_some() {
        tokio::spawn(crate::cluster_merge::run(
            publisher.clone(),
            indexer.clone(),
            interval,
            stop.clone(),
        ));
    }
    let mut rounds = 0u64;
    loop {
        if let Err(err) = publisher.round(&indexer).await {
            tracing::warn!(%err, "publisher round failed");
        }
        if rounds.is_multiple_of(10) {
            if let Err(err) = publisher.janitor(interval * 30).await {
                tracing::warn!(%err, "janitor round failed");
            }
            if let Err(err) = publisher.cluster_retention(&indexer, interval * 30).await {
                tracing::warn!(%err, "cluster retention round failed");
            }
        }
        rounds += 1;
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = publisher.takeover.wake.notified() => {}
            _ = stop.changed() => {}
        }
        if *stop.borrow() {
            publisher.release_id().await;
            return;
        }
    }
}
