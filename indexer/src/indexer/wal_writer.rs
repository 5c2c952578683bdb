//! The WAL writer thread: appends queued batches with one fsync per group, hands the documents
//! to the indexing threads in log order, acknowledges, and truncates the log once sealed.
//! Ingest answers that write nothing themselves but rest on batches queued before them come
//! through here too ([`WalMsg::Barrier`]), so that no answer overtakes a write it depends on.

use super::*;

/// At most this many queued appends share one fsync.
const GROUP_COMMIT_MAX: usize = 256;

/// Where the WAL thread answers a request: the position of its entry once durable (0 for a
/// barrier), or why it was not written.
pub(super) type WalReply = tokio::sync::oneshot::Sender<std::result::Result<u64, String>>;

pub(super) enum WalMsg {
    Append(WalRequest),
    /// Answered once every append queued before it is durable, or with the error of the write
    /// that failed if one of them fails. For an ingest answer that writes nothing but rests on
    /// source marks reserved by batches still queued (see `Indexer::prepare_and_queue`); sent
    /// with the marks locked, so that a failure that aborts those marks fails it too.
    Barrier(WalReply),
    /// Cut the WAL before what every stream still needs; snapshot the marks first.
    Truncate,
}

/// The WAL thread: appends queued batches, one fsync per group, then hands the documents to the
/// indexing threads in log order and acknowledges.
pub(super) fn run_wal(inner: Arc<Inner>, mut wal: Wal, rx: Receiver<WalMsg>) {
    while let Ok(first) = rx.recv() {
        let mut group = Vec::new();
        let mut barriers = Vec::new();
        let mut truncate = false;
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            match msg {
                WalMsg::Append(req) => group.push(req),
                WalMsg::Barrier(reply) => barriers.push(reply),
                WalMsg::Truncate => truncate = true,
            }
            if group.len() < GROUP_COMMIT_MAX {
                next = rx.try_recv().ok();
            }
        }
        let written = if group.is_empty() {
            Ok(())
        } else {
            write_group(&inner, &mut wal, group, &rx)
        };
        // Every append queued before these barriers was in this group or an earlier one (each
        // answered already; a failed one failed the barriers queued behind it, see
        // `write_group`): the group's outcome is theirs.
        for reply in barriers {
            let _ = reply.send(written.clone().map(|()| 0));
        }
        if truncate {
            if let Err(err) = truncate_wal(&inner, &mut wal) {
                tracing::error!(%err, "write-ahead log truncation failed");
            }
        }
    }
    let _ = wal.sync();
}

/// Appends and syncs a group, then hands it on and acknowledges it; on failure refuses it and
/// everything queued behind it, and returns the error they were refused with.
fn write_group(
    inner: &Inner,
    wal: &mut Wal,
    group: Vec<WalRequest>,
    rx: &Receiver<WalMsg>,
) -> std::result::Result<(), String> {
    let start = wal.end();
    let payloads: Vec<&[u8]> = group.iter().map(|r| r.payload.as_slice()).collect();
    let result = wal.append(&payloads).and_then(|p| wal.sync().map(|_| p));
    match result {
        Ok(positions) => {
            inner.metrics.wal_fsyncs.inc();
            inner.metrics.wal_bytes.set(wal.disk_bytes() as i64);
            {
                let mut marks = lock(&inner.marks);
                let now = Timestamp::now().nanos();
                for req in &group {
                    marks.commit(&req.advance, now);
                }
            }
            {
                let mut resent = lock(&inner.resent);
                for fp in group.iter().filter_map(|req| req.fingerprint) {
                    resent.settle(fp);
                }
            }
            for (req, (lsn, end)) in group.into_iter().zip(positions) {
                inner
                    .metrics
                    .ingested(&req.stream.spec.name, req.records, req.bytes);
                // Handed to the indexing thread before the acknowledgement, so that a flush
                // requested after it covers these records.
                if !req.docs.is_empty() {
                    lock(&req.stream.unsealed).push_back(lsn);
                    let entry = read(&inner.streams).get(&req.stream.spec.name).cloned();
                    if let Some(entry) = entry {
                        if entry.tail.receiver_count() > 0 {
                            let docs = req.docs.iter().map(|p| p.doc.clone()).collect();
                            let _ = entry.tail.send(Arc::new(TailBatch { docs }));
                        }
                        let op = IndexOp::Add {
                            lsn,
                            lsn_end: end,
                            docs: req.docs,
                            marks: req.advance,
                        };
                        if entry.tx.send(op).is_err() {
                            tracing::error!(stream = %req.stream.spec.name, "indexing thread is gone");
                        }
                    }
                }
                let _ = req.reply.send(Ok(lsn));
            }
            Ok(())
        }
        Err(err) => {
            wal.rollback(start);
            let message = format!("write-ahead log write failed: {err}");
            tracing::error!(%err, "write-ahead log write failed, refusing the batches queued");
            // Everything queued behind the failed group reserved marks that chain on it, or
            // (a barrier) is an answer judged by such marks: fail it too, under the marks lock
            // so that nothing new chains meanwhile.
            let mut marks = lock(&inner.marks);
            let mut failed = group;
            let mut barriers = Vec::new();
            while let Ok(msg) = rx.try_recv() {
                match msg {
                    WalMsg::Append(req) => failed.push(req),
                    WalMsg::Barrier(reply) => barriers.push(reply),
                    // Dropped as before: the next seal asks for a truncation again.
                    WalMsg::Truncate => {}
                }
            }
            marks.abort_pending();
            drop(marks);
            {
                let mut resent = lock(&inner.resent);
                for req in &failed {
                    if let Some(fp) = req.fingerprint {
                        resent.forget(fp);
                    }
                    resent.release_ids(&req.stream.spec.name, &req.claimed_ids);
                }
            }
            for req in failed {
                let _ = req.reply.send(Err(message.clone()));
            }
            for reply in barriers {
                let _ = reply.send(Err(message.clone()));
            }
            Err(message)
        }
    }
}

/// Snapshots the marks into the metastore, then deletes WAL segments no stream needs.
fn truncate_wal(inner: &Inner, wal: &mut Wal) -> Result<()> {
    let needed = stream_list(inner)
        .iter()
        .filter_map(|(_, e)| lock(&e.stream.unsealed).front().copied())
        .min()
        .unwrap_or(wal.end());
    // Before the entries that carried them may go: the window of resent batches.
    lock(&inner.resent).save()?;
    {
        let marks = lock(&inner.marks);
        let mut guard = lock(&inner.metastore);
        let (store, state) = &mut *guard;
        let mut next = state.clone();
        next.marks = marks.durable.iter().map(|(k, v)| (k.clone(), *v)).collect();
        next.marks_lsn = wal.end();
        // No entry before `needed` is replayed into an index again.
        next.purged.retain(|_, before| *before > needed);
        store.store(&next)?;
        *state = next;
    }
    let freed = wal.truncate_before(needed)?;
    inner.metrics.wal_bytes.set(wal.disk_bytes() as i64);
    if freed > 0 {
        tracing::debug!(freed, "write-ahead log truncated");
    }
    Ok(())
}
