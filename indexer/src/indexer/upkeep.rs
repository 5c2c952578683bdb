//! The upkeep thread: after each seal it has the WAL truncated; periodically it merges small
//! splits of a time bucket, applies retention, and removes retired splits nothing pins.

use super::*;

/// The upkeep thread: after each seal, truncates the WAL; periodically merges and applies
/// retention.
pub(super) fn run_upkeep(inner: std::sync::Weak<Inner>, sealed: Receiver<()>) {
    let interval = match inner.upgrade() {
        Some(i) => i.settings.janitor_interval,
        None => return,
    };
    let mut next_round = std::time::Instant::now() + interval;
    loop {
        let wait = next_round.saturating_duration_since(std::time::Instant::now());
        let got = sealed.recv_timeout(wait);
        let Some(inner) = inner.upgrade() else { return };
        if inner.stopping.load(Ordering::SeqCst) {
            return;
        }
        match got {
            Ok(()) => {
                if let Some(tx) = lock(&inner.wal_tx).as_ref() {
                    let _ = tx.send(WalMsg::Truncate);
                }
                continue;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => std::thread::sleep(wait),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        if std::time::Instant::now() >= next_round {
            if let Err(err) = upkeep_round(&inner) {
                tracing::error!(%err, "split upkeep failed");
            }
            next_round = std::time::Instant::now() + interval;
        }
    }
}

pub(super) fn upkeep_round(inner: &Inner) -> Result<()> {
    sweep_retired(inner)?;
    let now = Timestamp::now().nanos();
    for (name, entry) in stream_list(inner) {
        let _replacing = lock(&inner.replacing);
        apply_retention(inner, &name, &entry.stream, now)?;
        if !inner.cluster_merges.load(Ordering::SeqCst) {
            merge_stream(inner, &name, &entry.stream)?;
        }
        inner.metrics.set_splits(&name, entry.stream.splits().len());
    }
    let ttl = inner.settings.source_mark_ttl.as_nanos() as i64;
    let dropped = lock(&inner.marks).gc(now.saturating_sub(ttl));
    if dropped > 0 {
        tracing::info!(dropped, "forgot the marks of long-idle sources");
    }
    Ok(())
}

/// Removes splits from the metastore and records them as retired, with the splits that replace
/// them, in one durable write; then from the searchable set. `crash_point` names the moment in
/// between for fault tests.
pub(super) fn drop_splits(
    inner: &Inner,
    stream: &Stream,
    ids: &[String],
    add: Vec<Arc<SplitHandle>>,
    crash_point: &str,
) -> Result<()> {
    // Known as pinned before they are recorded as retired, so that no sweep removes the files
    // of a split that is still searchable or held by a search.
    let held: Vec<Arc<SplitHandle>> = stream
        .splits()
        .into_iter()
        .filter(|s| ids.contains(&s.meta.id))
        .collect();
    inner.pins.add(&held);
    drop(held);
    {
        let mut guard = lock(&inner.metastore);
        let (store, state) = &mut *guard;
        let mut next = state.clone();
        next.splits.retain(|s| !ids.contains(&s.id));
        next.splits.extend(add.iter().map(|h| h.meta.clone()));
        next.retired.extend(ids.iter().map(|id| RetiredSplit {
            stream: stream.spec.name.clone(),
            id: id.clone(),
        }));
        store.store(&next)?;
        *state = next;
    }
    inner.settings.crash_point(crash_point);
    stream.replace_splits(ids, add);
    // Those no search holds are gone now; the others go when their last search ends, and their
    // record is cleared at a later sweep.
    if let Err(err) = sweep_retired(inner) {
        tracing::warn!(stream = %stream.spec.name, %err, "could not clear the record of retired splits");
    }
    Ok(())
}

/// Removes the files of retired splits that nothing pins any more, then clears their record.
fn sweep_retired(inner: &Inner) -> Result<()> {
    let retired = lock(&inner.metastore).1.retired.clone();
    if retired.is_empty() {
        return Ok(());
    }
    let gone = retire::remove_unpinned(&inner.root, &retired, |id| inner.pins.pinned(id));
    if gone.is_empty() {
        return Ok(());
    }
    let mut guard = lock(&inner.metastore);
    let (store, state) = &mut *guard;
    let mut next = state.clone();
    if retire::forget(&mut next, &gone) {
        store.store(&next)?;
        *state = next;
    }
    Ok(())
}

fn apply_retention(inner: &Inner, name: &str, stream: &Stream, now: i64) -> Result<()> {
    let settings = inner.settings.stream_settings(name);
    let mut splits = stream.splits();
    let mut doomed: Vec<String> = Vec::new();
    if let Some(age) = settings.retention_max_age {
        let cutoff = now.saturating_sub(age.as_nanos() as i64);
        doomed.extend(
            splits
                .iter()
                .filter(|s| s.meta.max_timestamp < cutoff)
                .map(|s| s.meta.id.clone()),
        );
    }
    if let Some(max_bytes) = settings.retention_max_bytes {
        splits.retain(|s| !doomed.contains(&s.meta.id));
        splits.sort_by_key(|s| s.meta.max_timestamp);
        let mut total: u64 = splits.iter().map(|s| s.meta.bytes).sum();
        for s in &splits {
            if total <= max_bytes {
                break;
            }
            total -= s.meta.bytes;
            doomed.push(s.meta.id.clone());
        }
    }
    if doomed.is_empty() {
        return Ok(());
    }
    drop_splits(
        inner,
        stream,
        &doomed,
        Vec::new(),
        CRASH_AFTER_RETENTION_PUBLISH,
    )?;
    inner
        .metrics
        .splits_deleted_by_retention
        .get_or_create(&crate::metrics::StreamLabel {
            stream: name.to_string(),
        })
        .inc_by(doomed.len() as u64);
    tracing::info!(
        stream = name,
        splits = doomed.len(),
        "retention deleted splits"
    );
    Ok(())
}

/// Merges small splits of one time bucket into one, when a bucket holds enough of them.
fn merge_stream(inner: &Inner, name: &str, stream: &Stream) -> Result<()> {
    let s = &inner.settings;
    let bucket_nanos = s.merge_bucket.as_nanos().max(1) as i64;
    // Splits merge within a time bucket, and only with splits of the same index settings and
    // schema (tantivy merges those only): a change of doc-store settings starts new groups.
    // Splits of another schema (written before the stream's fields changed) merge among
    // themselves too.
    // With a shared tier, only published splits merge: what an indexer holds unpublished may
    // still have to lose the records of a source taken over by another indexer (see
    // `Indexer::purge_sources`), which a merge with published records would make impossible.
    let published = s.split_marks.then(|| {
        lock(&inner.published)
            .get(name)
            .cloned()
            .unwrap_or_default()
    });
    let mut buckets: BTreeMap<(i64, String, String), Vec<Arc<SplitHandle>>> = BTreeMap::new();
    for split in stream.splits() {
        if published
            .as_ref()
            .is_some_and(|published| !published.contains_key(&split.meta.id))
        {
            continue;
        }
        if split.meta.docs < s.merge_max_docs {
            let settings = serde_json::to_string(split.index.settings()).unwrap_or_default();
            let schema = serde_json::to_string(&split.index.schema()).unwrap_or_default();
            buckets
                .entry((
                    split.meta.min_timestamp.div_euclid(bucket_nanos),
                    settings,
                    schema,
                ))
                .or_default()
                .push(split);
        }
    }
    for (_, mut group) in buckets {
        if group.len() < s.merge_min_splits {
            continue;
        }
        group.sort_by_key(|h| h.meta.docs);
        let mut total = 0u64;
        group.retain(|h| {
            total += h.meta.docs;
            total <= s.merge_max_docs
        });
        if group.len() < 2 {
            continue;
        }
        merge_group(inner, name, stream, &group)?;
    }
    Ok(())
}

/// Writes a new split with `write` (a merge of some kind into the directory it is given), records
/// it with this merge level and these marks in place of the splits `old`, durably, and swaps it
/// in for them. Returns its id. A failed write leaves nothing behind.
pub(super) fn replace_by_output(
    inner: &Inner,
    stream: &Stream,
    old: &[String],
    merge_level: u32,
    marks: BTreeMap<String, u64>,
    crash_point: &str,
    write: impl FnOnce(tantivy::directory::MmapDirectory) -> tantivy::Result<tantivy::Index>,
) -> Result<String> {
    let id = ulid::Ulid::new().to_string().to_lowercase();
    let dir = stream.splits_dir().join(&id);
    fs::create_dir_all(&dir)?;
    let written = tantivy::directory::MmapDirectory::open(&dir)
        .map_err(|e| Error::InvalidArgument(format!("cannot open the output of a merge: {e}")))
        .and_then(|directory| write(directory).map_err(Error::from));
    let written = match written {
        Ok(index) => index,
        Err(err) => {
            let _ = fs::remove_dir_all(&dir);
            return Err(err);
        }
    };
    let reader = written.reader()?;
    let (min_ts, max_ts) = split::time_range(&reader).unwrap_or((0, 0));
    let meta = SplitMeta {
        version: SPLIT_FORMAT_VERSION,
        id: id.clone(),
        stream: stream.spec.name.clone(),
        min_timestamp: min_ts,
        max_timestamp: max_ts,
        docs: reader.searcher().num_docs(),
        bytes: split::dir_bytes(&dir),
        created_at: Timestamp::now().nanos(),
        merge_level,
        parents: old.to_vec(),
        marks,
    };
    split::write_meta(&dir, &meta)?;
    crate::wal::sync_dir(&stream.splits_dir())?;
    let handle = Arc::new(SplitHandle::open(&dir, meta)?);
    drop_splits(inner, stream, old, vec![handle], crash_point)?;
    Ok(id)
}

fn merge_group(
    inner: &Inner,
    name: &str,
    stream: &Stream,
    group: &[Arc<SplitHandle>],
) -> Result<()> {
    let indexes: Vec<tantivy::Index> = group.iter().map(|h| h.index.clone()).collect();
    let old: Vec<String> = group.iter().map(|h| h.meta.id.clone()).collect();
    let mut marks = BTreeMap::new();
    for h in group {
        split::merge_marks(&mut marks, &h.meta.marks);
    }
    let level = group.iter().map(|h| h.meta.merge_level).max().unwrap_or(0) + 1;
    let id = replace_by_output(
        inner,
        stream,
        &old,
        level,
        marks,
        CRASH_AFTER_MERGE_PUBLISH,
        |directory| tantivy::indexer::merge_indices(&indexes, directory),
    )?;
    inner
        .metrics
        .merges
        .get_or_create(&crate::metrics::StreamLabel {
            stream: name.to_string(),
        })
        .inc();
    tracing::info!(stream = name, split = %id, inputs = old.len(), "merged splits");
    Ok(())
}
