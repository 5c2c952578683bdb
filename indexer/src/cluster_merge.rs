//! Merges once per cluster: with a shared tier, `trawl indexer` merges nothing on its own
//! volume. The indexer holding the `merges` lease in PostgreSQL merges the published splits of
//! every indexer (a lost volume's too) by the same policy as a local merge
//! (`merge_min_splits` splits of one `merge_bucket_secs` bucket, at most `merge_max_docs`):
//!
//! ```text
//! published rows of a bucket ── download each (the split cache) ── tantivy merge ── bundle
//!   ── stage the output ── upload ── publish: output published, inputs marked (one transaction)
//! ```
//!
//! The inputs' owners find their splits marked at their next publisher round and drop their
//! local copies without publishing anything (`Publisher::round`); until then a searcher leaves
//! those copies out of its leaf searches, for it sends the merge inputs of the splits it
//! covers with them. A merge whose inputs changed meanwhile (retention marked one, another
//! merger got there first) fails its publish: its staged output is the janitor's. The output
//! carries no source marks to publish: its inputs published them already.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tantivy::directory::{Directory, MmapDirectory};
use tantivy::Index;
use trawl_storage::cache::CachedSplit;
use trawl_storage::pg::{Publish, SplitRecord, SplitState};
use trawl_storage::{ObjectStorage, SplitCache};

use crate::publish::{PublishError, Publisher};
use crate::split::{self, SplitMeta, SPLIT_FORMAT_VERSION};
use crate::Indexer;

/// Lease of the cluster's merges, one holder per cluster.
const MERGES_LEASE: &str = "merges";

/// Runs the cluster's merges every ten `interval`s until `stop` turns true (beside the
/// publisher's rounds: a long merge holds no upload back); gives the lease up when it stops.
pub async fn run(
    publisher: Arc<Publisher>,
    indexer: Indexer,
    interval: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let Some(merger) = &publisher.merger else {
        return;
    };
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval * 10) => {}
            _ = stop.changed() => {}
        }
        if *stop.borrow() {
            if let Err(err) = publisher
                .metastore
                .release_lease(MERGES_LEASE, &publisher.indexer_id)
                .await
            {
                tracing::warn!(%err, "could not give the merges lease up");
            }
            return;
        }
        if let Err(err) = publisher
            .cluster_merges(&indexer, merger, interval * 30)
            .await
        {
            tracing::warn!(%err, "cluster merge round failed");
        }
    }
}

type Result<T, E = PublishError> = std::result::Result<T, E>;

/// What the cluster's merger works with: the split cache it downloads inputs through, and a
/// directory for the outputs being written (emptied at each round).
pub struct ClusterMerger {
    pub cache: Arc<SplitCache>,
    pub work_dir: PathBuf,
}

/// An input opened from the cache (kept from eviction while it lives).
struct Input {
    record: SplitRecord,
    cached: CachedSplit,
    index: Index,
}

impl Publisher {
    /// The cluster's merges, if this indexer holds their lease: every stream's published
    /// splits grouped by time bucket, each group of at least `merge_min_splits` merged into
    /// one split published in place of its inputs. Returns how many merges were published.
    pub async fn cluster_merges(
        &self,
        indexer: &Indexer,
        merger: &ClusterMerger,
        lease: Duration,
    ) -> Result<usize> {
        if !self
            .metastore
            .try_lease(MERGES_LEASE, &self.indexer_id, lease)
            .await?
        {
            return Ok(0);
        }
        // What a merge killed midway left behind.
        if merger.work_dir.exists() {
            std::fs::remove_dir_all(&merger.work_dir)?;
        }
        let settings = indexer.settings();
        let bucket_nanos = i64::try_from(settings.merge_bucket.as_nanos())
            .unwrap_or(i64::MAX)
            .max(1);
        let mut merged = 0;
        // Every stream with published splits, those this indexer never wrote to included (a
        // lost volume's).
        for stream in self.metastore.streams().await? {
            let mut buckets: BTreeMap<i64, Vec<SplitRecord>> = BTreeMap::new();
            for record in self.metastore.published(&stream).await? {
                if record.docs < settings.merge_max_docs {
                    buckets
                        .entry(record.min_timestamp.div_euclid(bucket_nanos))
                        .or_default()
                        .push(record);
                }
            }
            for (_, mut group) in buckets {
                if group.len() < settings.merge_min_splits {
                    continue;
                }
                // Renewed before each merge, so that a long round keeps it; lost, stop.
                if !self
                    .metastore
                    .try_lease(MERGES_LEASE, &self.indexer_id, lease)
                    .await?
                {
                    return Ok(merged);
                }
                group.sort_by(|a, b| (a.docs, &a.split_id).cmp(&(b.docs, &b.split_id)));
                let mut total = 0u64;
                group.retain(|r| {
                    total += r.docs;
                    total <= settings.merge_max_docs
                });
                if group.len() < 2 {
                    continue;
                }
                merged += self.merge_bucket(indexer, merger, &stream, group).await?;
            }
        }
        Ok(merged)
    }

    /// Downloads the splits of one bucket and merges those of the same index settings and
    /// schema (tantivy merges those only), each such set of at least `merge_min_splits` into
    /// one published split. Returns how many were published.
    async fn merge_bucket(
        &self,
        indexer: &Indexer,
        merger: &ClusterMerger,
        stream: &str,
        group: Vec<SplitRecord>,
    ) -> Result<usize> {
        let mut inputs = Vec::with_capacity(group.len());
        for record in group {
            let cached = merger.cache.open_split(&record.object_key).await?;
            let directory: Box<dyn Directory> = Box::new(cached.directory.clone());
            let index = tokio::task::spawn_blocking(move || Index::open(directory))
                .await
                .map_err(std::io::Error::other)?
                .map_err(crate::Error::from)?;
            inputs.push(Input {
                record,
                cached,
                index,
            });
        }
        let mut sets: BTreeMap<(String, String), Vec<Input>> = BTreeMap::new();
        for input in inputs {
            let key = (
                serde_json::to_string(input.index.settings()).unwrap_or_default(),
                serde_json::to_string(&input.index.schema()).unwrap_or_default(),
            );
            sets.entry(key).or_default().push(input);
        }
        let mut published = 0;
        for (_, set) in sets {
            if set.len() < 2 {
                continue;
            }
            match self.merge_and_publish(indexer, merger, stream, set).await {
                Ok(()) => published += 1,
                // Its inputs changed since they were listed: the next round lists them again.
                Err(PublishError::Storage(trawl_storage::Error::Conflict(reason))) => {
                    tracing::info!(stream, %reason, "a cluster merge was overtaken; its output is left to the janitor");
                }
                Err(err) => return Err(err),
            }
        }
        Ok(published)
    }

    /// Merges `inputs` into a new split under the work directory, uploads it staged, and
    /// publishes it with its inputs marked, in one transaction; then keeps it as a local split
    /// in place of this indexer's own copies of its inputs.
    async fn merge_and_publish(
        &self,
        indexer: &Indexer,
        merger: &ClusterMerger,
        stream: &str,
        inputs: Vec<Input>,
    ) -> Result<()> {
        let id = ulid::Ulid::new().to_string().to_lowercase();
        let dir = merger.work_dir.join(&id);
        let result = self
            .merge_and_publish_in(indexer, &dir, &id, stream, &inputs)
            .await;
        let _ = std::fs::remove_dir_all(&dir);
        // Published, the inputs are read no more; failed, the next round lists them again.
        if result.is_ok() {
            let keys: Vec<String> = inputs.iter().map(|i| i.record.object_key.clone()).collect();
            drop(inputs);
            for key in keys {
                merger.cache.remove(&key);
            }
        }
        result
    }

    async fn merge_and_publish_in(
        &self,
        indexer: &Indexer,
        dir: &Path,
        id: &str,
        stream: &str,
        inputs: &[Input],
    ) -> Result<()> {
        let (record, meta) = self.merge_into(dir, id, stream, inputs).await?;
        let publish = Publish {
            stream: stream.to_string(),
            indexer: self.indexer_id.clone(),
            splits: vec![id.to_string()],
            replaced: inputs.iter().map(|i| i.record.split_id.clone()).collect(),
            marks: BTreeMap::new(),
            fence: BTreeMap::new(),
        };
        let xid = self.metastore.publish(&publish).await?;
        indexer
            .settings()
            .crash_point(crate::settings::CRASH_AFTER_CLUSTER_MERGE_PUBLISH);
        let metrics = self.metastore.metrics();
        trawl_storage::StorageMetrics::inc(&metrics.cluster_merges, 1);
        trawl_storage::StorageMetrics::inc(
            &metrics.cluster_merge_inputs,
            publish.replaced.len() as u64,
        );
        tracing::info!(
            stream,
            split = %record.split_id,
            inputs = publish.replaced.len(),
            docs = record.docs,
            "merged published splits for the cluster"
        );
        // Kept here in place of this indexer's own inputs, so that its own API still holds
        // their records; a failure leaves the output in the shared tier only. Not while a
        // publisher round runs: it would find a split it did not list.
        let _round = self.rounds.lock().await;
        let adopting = indexer.clone();
        let out = dir.to_path_buf();
        let adopted = tokio::task::spawn_blocking(move || adopting.adopt_merge(&out, meta)).await;
        match adopted {
            Ok(Ok(replaced)) => self.record_adopted(indexer, stream, id, xid, &replaced)?,
            Ok(Err(err)) => {
                tracing::warn!(stream, split = %id, %err, "a cluster merge's output is not kept locally")
            }
            Err(err) => {
                tracing::warn!(stream, split = %id, %err, "a cluster merge's output is not kept locally")
            }
        }
        Ok(())
    }

    /// Writes the merge of `inputs` into `dir`, then stages and uploads it. Returns its row.
    async fn merge_into(
        &self,
        dir: &Path,
        id: &str,
        stream: &str,
        inputs: &[Input],
    ) -> Result<(SplitRecord, SplitMeta)> {
        std::fs::create_dir_all(dir)?;
        let indexes: Vec<Index> = inputs.iter().map(|i| i.index.clone()).collect();
        let out = dir.to_path_buf();
        let (min_timestamp, max_timestamp, docs) =
            tokio::task::spawn_blocking(move || -> crate::Result<(i64, i64, u64)> {
                let directory = MmapDirectory::open(&out).map_err(|e| {
                    crate::Error::InvalidArgument(format!("cannot open a merge's output: {e}"))
                })?;
                let merged = tantivy::indexer::merge_indices(&indexes, directory)?;
                let reader = merged.reader()?;
                let (min, max) = split::time_range(&reader).unwrap_or((0, 0));
                Ok((min, max, reader.searcher().num_docs()))
            })
            .await
            .map_err(std::io::Error::other)??;
        let mut marks = BTreeMap::new();
        for input in inputs {
            if let Some(Ok(carried)) = input
                .record
                .meta
                .get("marks")
                .map(|m| serde_json::from_value::<BTreeMap<String, u64>>(m.clone()))
            {
                split::merge_marks(&mut marks, &carried);
            }
        }
        let meta = SplitMeta {
            version: SPLIT_FORMAT_VERSION,
            id: id.to_string(),
            stream: stream.to_string(),
            min_timestamp,
            max_timestamp,
            docs,
            bytes: split::dir_bytes(dir),
            created_at: trawl_model::Timestamp::now().nanos(),
            merge_level: inputs
                .iter()
                .map(|i| i.record.merge_level)
                .max()
                .unwrap_or(0)
                + 1,
            parents: inputs.iter().map(|i| i.record.split_id.clone()).collect(),
            marks,
        };
        split::write_meta(dir, &meta)?;
        // The newest input's default fields: the stream's current ones.
        let default_fields = inputs
            .iter()
            .max_by_key(|i| i.record.created_at)
            .map(|i| i.cached.directory.footer().meta["default_fields"].clone())
            .unwrap_or(serde_json::Value::Null);
        let record = SplitRecord {
            stream: stream.to_string(),
            split_id: id.to_string(),
            state: SplitState::Staged,
            object_key: ObjectStorage::split_key(stream, id),
            min_timestamp,
            max_timestamp,
            docs,
            bytes: meta.bytes,
            created_at: meta.created_at,
            merge_level: meta.merge_level,
            indexer: self.indexer_id.clone(),
            parents: meta.parents.clone(),
            meta: serde_json::to_value(&meta).unwrap_or_default(),
        };
        self.metastore.stage(&record).await?;
        let footer = serde_json::json!({
            "split": &meta,
            "indexer": &self.indexer_id,
            "default_fields": default_fields,
        });
        self.upload_dir(dir, id, footer, &record.object_key).await?;
        Ok((record, meta))
    }
}
