//! Source ownership in a shared PostgreSQL metastore: each source (a collector's file) is
//! indexed by one indexer at a time.
//!
//! - **Claim on first sight.** The first delivery batch of a source this process does not own
//!   yet acquires it in the metastore ([`PgMetastore::acquire_source`]). Taking it from another
//!   indexer bumps its token, which fences that indexer out: a publish of the source's marks
//!   with the old token is refused.
//! - **Resume at the published mark.** When the source comes from another indexer (a
//!   collector that failed over), or this indexer has no mark for it (its volume was lost),
//!   its local mark is set to the mark its published splits carry. A batch starting past it is
//!   then a gap: the collector reads the file again from there, so what the old owner
//!   acknowledged but never published is delivered again, once.
//! - **Publish with tokens.** The publisher presents the token of every source whose marks it
//!   publishes ([`Ownership::fence_for`]). A source another indexer owns now is not published
//!   at all: what this indexer holds of it unpublished, the new owner read again from the
//!   published mark, so the publisher removes it first (`Indexer::purge_sources`, by the
//!   source every delivered record carries). So does an indexer that comes back with its
//!   volume after its collectors moved on, before its first publish.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use trawl_storage::PgMetastore;

use crate::stream::lock;

/// The sources this indexer owns, with their tokens.
pub struct Ownership {
    metastore: Arc<PgMetastore>,
    /// This indexer's name in the metastore.
    me: String,
    owned: Mutex<HashMap<String, i64>>,
    /// Sources owned by another indexer whose unpublished records this one removed
    /// ([`Ownership::purged`]), until claimed again.
    gone: Mutex<std::collections::HashSet<String>>,
    /// Sources taken from another indexer whose purge failed: purged at the next claim.
    unpurged: Mutex<std::collections::HashSet<String>>,
    /// One claim at a time: two batches of a new source must not both seed its mark.
    claiming: tokio::sync::Mutex<()>,
}

/// Why a claim failed.
#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    #[error("{0}")]
    Metastore(trawl_storage::Error),
    #[error("removing the stale copies of a source taken over: {0}")]
    Purge(String),
}

/// What a claim found: sources whose local mark must be set before the batch is planned.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Claimed {
    /// `(source, published mark)`: resume the source there.
    pub resume: Vec<(String, u64)>,
    /// Sources taken over from another indexer.
    pub taken_over: usize,
}

impl Ownership {
    pub fn new(metastore: Arc<PgMetastore>, me: String) -> Ownership {
        Ownership {
            metastore,
            me,
            owned: Mutex::new(HashMap::new()),
            gone: Mutex::default(),
            unpurged: Mutex::default(),
            claiming: tokio::sync::Mutex::new(()),
        }
    }

    /// This indexer's name.
    pub fn indexer_id(&self) -> &str {
        &self.me
    }

    /// Acquires the sources of `ids` not owned yet. `has_mark` tells whether the local marks
    /// know a source. A source taken from another indexer is owned only once `purge` has
    /// removed what this indexer still held of it unpublished (copies from before the other
    /// took it, which it read again): the batch that claims it, and any after it, are indexed
    /// after that. Errors when the metastore cannot be reached or the purge fails (the batch
    /// is refused and resent later).
    pub async fn claim(
        &self,
        ids: &[String],
        has_mark: impl Fn(&str) -> bool,
        purge: impl AsyncFnOnce(Vec<String>) -> Result<(), String>,
    ) -> Result<Claimed, ClaimError> {
        let mut claimed = Claimed::default();
        if ids.iter().all(|id| lock(&self.owned).contains_key(id)) {
            return Ok(claimed);
        }
        let _one = self.claiming.lock().await;
        let mut to_purge = Vec::new();
        for id in ids {
            if lock(&self.owned).contains_key(id) {
                continue;
            }
            let got = self
                .metastore
                .acquire_source(id, &self.me)
                .await
                .map_err(ClaimError::Metastore)?;
            let from_other = got.previous_owner.is_some();
            if from_other {
                claimed.taken_over += 1;
                tracing::info!(
                    source = %id,
                    from = got.previous_owner.as_deref().unwrap_or(""),
                    token = got.token,
                    resume_at = got.published_mark.unwrap_or(0),
                    "took a source over from another indexer"
                );
            }
            if from_other || !has_mark(id) {
                if let Some(mark) = got.published_mark {
                    claimed.resume.push((id.clone(), mark));
                } else if from_other {
                    // The old owner published nothing of it: everything is to be read again.
                    claimed.resume.push((id.clone(), 0));
                }
            }
            if from_other || lock(&self.unpurged).contains(id) {
                to_purge.push((id.clone(), got.token));
            } else {
                lock(&self.owned).insert(id.clone(), got.token);
            }
        }
        if !to_purge.is_empty() {
            let ids: Vec<String> = to_purge.iter().map(|(id, _)| id.clone()).collect();
            lock(&self.unpurged).extend(ids.iter().cloned());
            purge(ids).await.map_err(ClaimError::Purge)?;
            for (id, token) in to_purge {
                lock(&self.unpurged).remove(&id);
                lock(&self.gone).remove(&id);
                lock(&self.owned).insert(id, token);
            }
        }
        Ok(claimed)
    }

    /// Holds off claims until dropped: a purge of sources this indexer does not own runs under
    /// it, so that no batch of one of them, claimed back meanwhile, is indexed and then
    /// removed.
    pub async fn hold_claims(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.claiming.lock().await
    }

    /// Records that what this indexer held of `sources` (owned by others) was removed: they are
    /// not reported by [`Ownership::taken_by_others`] again until claimed back.
    pub fn purged(&self, sources: &[String]) {
        lock(&self.gone).extend(sources.iter().cloned());
    }

    /// The tokens to present for publishing `marks`, and the marks that may be published:
    /// those of sources this indexer owns. A source owned by another indexer is left out: the
    /// publisher removes its records before publishing (the new owner read them again).
    pub async fn fence_for(
        &self,
        marks: &BTreeMap<String, u64>,
    ) -> trawl_storage::Result<(BTreeMap<String, u64>, BTreeMap<String, i64>)> {
        let unknown: Vec<String> = {
            let owned = lock(&self.owned);
            marks
                .keys()
                .filter(|s| !owned.contains_key(*s))
                .cloned()
                .collect()
        };
        if !unknown.is_empty() {
            // Sources of records replayed from the WAL, not seen by this process yet.
            let owners = self.metastore.owners(&unknown).await?;
            for source in &unknown {
                match owners.get(source) {
                    Some((owner, token)) if *owner == self.me => {
                        lock(&self.owned).insert(source.clone(), *token);
                    }
                    // Another indexer's now.
                    Some(_) => {}
                    // Never owned in the metastore: this indexer's to take.
                    None => {
                        let got = self.metastore.acquire_source(source, &self.me).await?;
                        lock(&self.owned).insert(source.clone(), got.token);
                    }
                }
            }
        }
        let owned = lock(&self.owned);
        let mut publish = BTreeMap::new();
        let mut fence = BTreeMap::new();
        for (source, end) in marks {
            match owned.get(source) {
                Some(token) => {
                    publish.insert(source.clone(), *end);
                    fence.insert(source.clone(), *token);
                }
                None => {
                    tracing::warn!(source = %source, "records of a source another indexer owns now: removed before publishing")
                }
            }
        }
        Ok((publish, fence))
    }

    /// Whether this process owns `source` (claimed or seen at a publish).
    pub fn owns(&self, source: &str) -> bool {
        lock(&self.owned).contains_key(source)
    }

    /// Of `sources`, those the metastore says another indexer owns now, except those already
    /// purged ([`Ownership::purged`]): what this indexer holds of them unpublished is to be
    /// removed ([`Indexer::purge_sources`]), under [`Ownership::hold_claims`]. They are
    /// forgotten as owned, including by an indexer that was only cut off from its collectors
    /// and still believes it owns them.
    ///
    /// [`Indexer::purge_sources`]: crate::Indexer::purge_sources
    pub async fn taken_by_others(&self, sources: &[String]) -> trawl_storage::Result<Vec<String>> {
        let asked: Vec<String> = {
            let gone = lock(&self.gone);
            sources
                .iter()
                .filter(|s| !gone.contains(*s))
                .cloned()
                .collect()
        };
        if asked.is_empty() {
            return Ok(Vec::new());
        }
        let owners = self.metastore.owners(&asked).await?;
        let taken: Vec<String> = asked
            .into_iter()
            .filter(|s| owners.get(s).is_some_and(|(owner, _)| *owner != self.me))
            .collect();
        for source in &taken {
            self.lost(source);
        }
        Ok(taken)
    }

    /// Forgets a source whose publish was fenced: another indexer took it over.
    pub fn lost(&self, source: &str) {
        lock(&self.owned).remove(source);
    }
}
