//! Ingest: a decoded body validated line by line, what the source marks say is there dropped,
//! the resend window claimed, the refused lines dead-lettered, and the batch queued for the WAL
//! writer, whose answer comes once it is durable.
//!
//! Every answer comes from the WAL writer, in queue order, also when the batch writes nothing
//! (all of it dropped by the marks) or is refused for a gap: the marks it was judged by may be
//! pending ones, reserved by batches still queued, and those may yet fail (a full disk) or
//! never be written (a kill). An answer given before them would tell the sender that the
//! indexer holds lines it then does not: the sender moves on, and the indexer's mark, which
//! did not move, lets the next batch through without seeing the hole.

use std::borrow::Cow;

use super::*;

/// How many refused lines an ingest answer lists (the count covers them all; the dead-letter
/// store keeps every one): with messages of at most [`MAX_ERROR_CHARS`], the answer stays
/// under the 4 KB an agent's `http` output reads.
const MAX_REPORTED_ERRORS: usize = 10;
/// The longest error message an ingest answer carries, in characters.
const MAX_ERROR_CHARS: usize = 200;

pub(super) struct WalRequest {
    pub(super) stream: Arc<Stream>,
    pub(super) payload: Vec<u8>,
    pub(super) docs: Vec<Prepared>,
    pub(super) advance: Vec<(String, u64)>,
    pub(super) records: u64,
    pub(super) bytes: u64,
    /// The push batch's fingerprint, settled in the resend window once durable.
    pub(super) fingerprint: Option<u128>,
    /// Ids claimed by the batch, released if it is not written.
    pub(super) claimed_ids: Vec<String>,
    pub(super) reply: WalReply,
}

/// Where the answer of a queued request comes from (see [`WalReply`]).
type WalAnswer = tokio::sync::oneshot::Receiver<std::result::Result<u64, String>>;

/// What preparing an ingest came to.
enum Queued {
    /// The same batch is being written by another request: wait for it, then look again.
    Wait(tokio::sync::watch::Receiver<bool>),
    /// The batch is queued (or needs no write, and waits behind what is queued): the WAL's
    /// answer and the outcome.
    Reply(WalAnswer, IngestOutcome),
    /// A source starts past its mark: refused with these marks once what is queued before is
    /// durable (the marks may be pending ones of those batches), or with their storage error.
    Gap(WalAnswer, BTreeMap<String, u64>),
}

/// The valid lines of a batch: index among its lines, the record, its document.
type Valid<'a> = Vec<(usize, Cow<'a, [u8]>, Prepared)>;

impl Indexer {
    /// The newest `limit` lines ingest refused in `stream`, newest first, and how many the
    /// dead-letter store holds.
    pub async fn dead_letters(
        &self,
        stream: &str,
        limit: usize,
    ) -> Result<(Vec<DeadLetter>, usize)> {
        self.stream(stream)?;
        let this = self.clone();
        let stream = stream.to_string();
        tokio::task::spawn_blocking(move || this.inner.dead_letters.list(&stream, limit))
            .await
            .map_err(|_| Error::InvalidArgument("the indexer is shutting down".into()))?
            .map_err(Error::from)
    }

    /// Ingests a decoded body and waits until it is durable. The outcome lists the first 10
    /// refused lines; every refused line goes to the dead-letter store.
    pub async fn ingest(
        &self,
        stream: &str,
        body: Vec<u8>,
        delivery: bool,
    ) -> std::result::Result<IngestOutcome, IngestError> {
        self.ingest_reporting(stream, body, delivery, MAX_REPORTED_ERRORS, Push::default())
            .await
    }

    /// [`Indexer::ingest`] of a push batch (no delivery envelope): a batch made durable within
    /// the dedup window before is answered as then (`resent` set) and not written again.
    pub async fn ingest_push(
        &self,
        stream: &str,
        body: Vec<u8>,
        push: Push,
    ) -> std::result::Result<IngestOutcome, IngestError> {
        self.ingest_reporting(stream, body, false, MAX_REPORTED_ERRORS, push)
            .await
    }

    /// [`Indexer::ingest_push`] listing every refused line (for the ingest routes that answer
    /// per record, such as `_bulk`).
    pub async fn ingest_every_error(
        &self,
        stream: &str,
        body: Vec<u8>,
        push: Push,
    ) -> std::result::Result<IngestOutcome, IngestError> {
        self.ingest_reporting(stream, body, false, usize::MAX, push)
            .await
    }

    async fn ingest_reporting(
        &self,
        stream: &str,
        body: Vec<u8>,
        delivery: bool,
        max_errors: usize,
        push: Push,
    ) -> std::result::Result<IngestOutcome, IngestError> {
        if self.inner.stopping.load(Ordering::SeqCst) {
            return Err(IngestError::ShuttingDown);
        }
        if !self.has_stream(stream) && self.inner.settings.auto_create_streams {
            match self.ensure_stream(stream, &StreamConfig::default()).await {
                Ok(()) => {}
                Err(Error::UnknownStream(s) | Error::InvalidArgument(s)) => {
                    return Err(IngestError::UnknownStream(s))
                }
                Err(err) => return Err(IngestError::Storage(err.to_string())),
            }
        }
        // In a shared metastore the envelope is read here, to claim its sources first, and
        // handed on; otherwise it is read off the runtime with the rest of the batch.
        let envelope = match (delivery, self.inner.ownership.get()) {
            (true, Some(_)) => {
                let first = ndjson_lines(&body).next().map(|(_, line)| line);
                let envelope = parse_envelope(first)?;
                self.claim_sources(&envelope).await?;
                Some(envelope)
            }
            _ => None,
        };
        let job = Arc::new((stream.to_string(), body, push, envelope));
        loop {
            let this = self.clone();
            let job = job.clone();
            let queued = tokio::task::spawn_blocking(move || {
                let (stream, body, push, envelope) = &*job;
                this.prepare_and_queue(stream, body, delivery, envelope.as_ref(), max_errors, push)
            })
            .await
            .map_err(|_| IngestError::ShuttingDown)??;
            match queued {
                // Another request writes the same batch: once it is settled, look again (it is
                // then known, or forgotten and this request writes it).
                Queued::Wait(mut done) => {
                    let _ = done.wait_for(|durable| *durable).await;
                }
                Queued::Reply(rx, outcome) => {
                    return match rx.await {
                        Ok(Ok(_lsn)) => Ok(outcome),
                        Ok(Err(message)) => Err(IngestError::Storage(message)),
                        Err(_) => Err(IngestError::ShuttingDown),
                    }
                }
                Queued::Gap(rx, marks) => {
                    return match rx.await {
                        Ok(Ok(_)) => Err(IngestError::Gap(marks)),
                        Ok(Err(message)) => Err(IngestError::Storage(message)),
                        Err(_) => Err(IngestError::ShuttingDown),
                    }
                }
            }
        }
    }

    /// In a shared metastore, makes this indexer the owner of the batch's sources, and sets
    /// the mark of each source it resumes (see [`crate::ownership`]).
    async fn claim_sources(&self, envelope: &Envelope) -> std::result::Result<(), IngestError> {
        let Some(ownership) = self.inner.ownership.get() else {
            return Ok(());
        };
        let ids: Vec<String> = envelope.sources.iter().map(|s| s.id.clone()).collect();
        let purge = async |sources: Vec<String>| {
            self.purge_sources_off_runtime(sources)
                .await
                .map(|_| ())
                .map_err(|err| err.to_string())
        };
        let claimed = ownership
            .claim(&ids, |id| lock(&self.inner.marks).knows(id), purge)
            .await
            .map_err(|err| match err {
                crate::ownership::ClaimError::Metastore(err) => {
                    IngestError::Metastore(err.to_string())
                }
                crate::ownership::ClaimError::Purge(message) => IngestError::Storage(message),
            })?;
        if !claimed.resume.is_empty() {
            let now = Timestamp::now().nanos();
            let mut marks = lock(&self.inner.marks);
            for (id, end) in &claimed.resume {
                marks.resume(id, *end, now);
            }
        }
        if claimed.taken_over > 0 {
            self.inner
                .metrics
                .sources_taken_over
                .inc_by(claimed.taken_over as u64);
        }
        Ok(())
    }

    /// Prepares a body and queues it for the WAL writer (on a blocking thread): limits and
    /// envelope, the resend window, the marks' plan, the lines checked ([`Self::check_lines`]),
    /// the ids claimed ([`Self::claim_ids`]), the batch assembled ([`assemble`]) and queued.
    /// A batch that writes nothing, or is refused for a gap, queues a barrier instead: its
    /// answer, too, waits for the batches queued before it ([`Self::queue_barrier`]).
    /// It stays one function past 100 lines because the marks' lock it takes for the plan must
    /// be held until the batch is queued (the WAL order of a source's batches is the order of
    /// their marks), and each early return must drop it and the resend claim in that order.
    fn prepare_and_queue(
        &self,
        stream_name: &str,
        body: &[u8],
        delivery: bool,
        given: Option<&Envelope>,
        max_errors: usize,
        push: &Push,
    ) -> std::result::Result<Queued, IngestError> {
        let entry = self
            .stream(stream_name)
            .map_err(|_| IngestError::UnknownStream(stream_name.chars().take(64).collect()))?;
        let stream = entry.stream.clone();
        if stream.storage_failing() {
            return Err(IngestError::Storage(
                "the hot index cannot be committed or sealed".into(),
            ));
        }
        let received_at = Timestamp::now().nanos();
        let mut lines = ndjson_lines(body);
        let parsed;
        let envelope = if delivery {
            let first = lines.next().map(|(_, line)| line);
            match given {
                Some(envelope) => Some(envelope),
                None => {
                    parsed = parse_envelope(first)?;
                    Some(&parsed)
                }
            }
        } else {
            None
        };
        let lines: Vec<(usize, &[u8])> = lines.collect();
        let max_records = self.inner.settings.max_records_per_batch;
        if lines.len() > max_records {
            return Err(IngestError::TooManyRecords(format!(
                "batch holds {} records, more than the limit of {max_records}",
                lines.len()
            )));
        }
        if let Some(env) = &envelope {
            env.validate(lines.len())
                .map_err(IngestError::BadEnvelope)?;
        }
        let mut claim = ResendClaim {
            inner: self.inner.clone(),
            stream: stream_name.to_string(),
            fingerprint: None,
            ids: Vec::new(),
        };
        let mut known = None;
        if let (Some(surface), false) = (push.surface, delivery) {
            let fp = dedup::fingerprint(surface, stream_name, body, push.origin, &push.ids);
            match lock(&self.inner.resent).begin(fp, received_at) {
                Lookup::Pending(done) => return Ok(Queued::Wait(done)),
                Lookup::Known(conflicts) => known = Some(conflicts),
                Lookup::New => claim.fingerprint = Some(fp),
            }
        }

        let mut outcome = IngestOutcome::default();
        // Collector batches are records already; everything else is mapped onto them.
        let map_options = (!delivery).then(|| self.inner.settings.map_options(stream_name));
        let mut marks = lock(&self.inner.marks);
        let keep = match &envelope {
            None => None,
            Some(env) => match marks.plan(&env.sources) {
                // Answered behind the batches queued before: the marks may be theirs.
                Plan::Gap { marks: at } => {
                    return Ok(Queued::Gap(self.queue_barrier(&marks)?, at));
                }
                Plan::Take {
                    keep,
                    advance,
                    dropped,
                } => {
                    outcome.deduplicated = dropped;
                    Some((keep, advance))
                }
            },
        };
        // Validation runs under the marks lock only for delivery batches, whose order per source
        // matters; it is cheap next to the fsync that follows.
        let keep_line = |i: usize| keep.as_ref().is_none_or(|(keep, _)| keep[i]);
        let (valid, refused) = self.check_lines(
            &stream,
            &lines,
            keep_line,
            map_options,
            received_at,
            max_errors,
            &mut outcome,
        );
        let conflicts: Vec<u32> = match &known {
            Some(conflicts) => conflicts.to_vec(),
            None if !push.ids.is_empty() => {
                let valid_lines: HashSet<usize> = valid.iter().map(|(i, _, _)| *i).collect();
                self.claim_ids(&stream, &push.ids, &valid_lines, received_at, &mut claim)
            }
            None => Vec::new(),
        };
        outcome.conflicts = conflicts.iter().map(|&c| c as usize).collect();
        let mut valid = valid;
        let sources = match &envelope {
            Some(env) => attribute_sources(&stream, env, &mut valid),
            None => Vec::new(),
        };
        let (records, docs, record_ids, bytes) = assemble(&stream, valid, &conflicts, &push.ids);
        outcome.accepted = docs.len();
        if known.is_some() {
            // Sent before and durable since: answered again, written once.
            outcome.resent = true;
            self.inner
                .metrics
                .resent(stream_name, outcome.accepted as u64);
            let (reply, rx) = tokio::sync::oneshot::channel();
            let _ = reply.send(Ok(0));
            return Ok(Queued::Reply(rx, outcome));
        }
        let advance = keep.map(|(_, advance)| advance).unwrap_or_default();
        if outcome.rejected > 0 {
            self.inner
                .metrics
                .rejected(stream_name, outcome.rejected as u64);
        }
        if outcome.deduplicated > 0 {
            self.inner
                .metrics
                .deduplicated(stream_name, outcome.deduplicated as u64);
        }
        if docs.is_empty() && advance.is_empty() {
            // Nothing to write, but the records the marks dropped may be held only by a batch
            // still queued for the WAL (the same batch sent again while its first copy waits,
            // as a collector does with its buffer after a restart): answered once that is
            // durable, and refused if it fails, never before.
            let rx = self.queue_barrier(&marks)?;
            drop(marks);
            self.dead_letter(stream_name, &refused);
            return Ok(Queued::Reply(rx, outcome));
        }
        let (reply, rx) = tokio::sync::oneshot::channel();
        let batch = Batch {
            stream: stream_name.to_string(),
            received_at,
            marks: advance.clone(),
            records,
            fingerprint: claim.fingerprint,
            conflicts,
            ids: record_ids,
            sources,
        };
        let request = WalRequest {
            stream,
            payload: batch.encode(),
            docs,
            advance: advance.clone(),
            records: outcome.accepted as u64,
            bytes,
            fingerprint: claim.fingerprint,
            claimed_ids: std::mem::take(&mut claim.ids),
            reply,
        };
        let wal_tx = lock(&self.inner.wal_tx);
        let Some(tx) = wal_tx.as_ref() else {
            return Err(IngestError::ShuttingDown);
        };
        // Queued while the marks are locked, so the WAL order of a source's batches is the
        // order in which their marks were reserved.
        tx.send(WalMsg::Append(request))
            .map_err(|_| IngestError::ShuttingDown)?;
        marks.reserve(&advance);
        // The WAL thread settles (or forgets) the fingerprint from here on.
        claim.fingerprint = None;
        drop((marks, wal_tx));
        self.dead_letter(stream_name, &refused);
        Ok(Queued::Reply(rx, outcome))
    }

    /// Queues a [`WalMsg::Barrier`] and returns where its answer comes from. `_marks` is the
    /// marks' lock, held: the barrier is then queued behind every batch whose pending marks the
    /// caller may have judged by, and before a failure of theirs aborts those marks (which
    /// fails what is queued behind it, the barrier included).
    fn queue_barrier(
        &self,
        _marks: &std::sync::MutexGuard<'_, Marks>,
    ) -> std::result::Result<WalAnswer, IngestError> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        let wal_tx = lock(&self.inner.wal_tx);
        let tx = wal_tx.as_ref().ok_or(IngestError::ShuttingDown)?;
        tx.send(WalMsg::Barrier(reply))
            .map_err(|_| IngestError::ShuttingDown)?;
        Ok(rx)
    }

    /// Validates the lines `keep` selects (by index): within `max_line_bytes`, mapped onto
    /// records when `map_options` is given, prepared as documents. The valid ones with their
    /// index, and the refused ones as dead letters, counted in `outcome` (the first
    /// `max_errors` listed).
    #[allow(clippy::too_many_arguments)]
    fn check_lines<'a>(
        &self,
        stream: &Stream,
        lines: &[(usize, &'a [u8])],
        keep: impl Fn(usize) -> bool,
        map_options: Option<trawl_model::shippers::MapOptions>,
        received_at: i64,
        max_errors: usize,
        outcome: &mut IngestOutcome,
    ) -> (Valid<'a>, Vec<DeadLetter>) {
        let max_line = self.inner.settings.max_line_bytes;
        let mut valid = Vec::with_capacity(lines.len());
        let mut refused = Vec::new();
        for (i, (line_no, line)) in lines.iter().enumerate() {
            if !keep(i) {
                continue;
            }
            let prepared = if line.len() > max_line {
                Err(format!(
                    "record of {} bytes exceeds max_line_bytes ({max_line})",
                    line.len()
                ))
            } else {
                let record = match map_options {
                    Some(options) => normalise_line(stream.spec.kind, line, options),
                    None => Ok(Normalised::as_it_came(line)),
                };
                record.and_then(|record| {
                    let doc = match record.log {
                        Some(log) => stream.builder.prepare_log(log, received_at)?,
                        None => stream.builder.prepare(&record.bytes, received_at)?,
                    };
                    Ok((record.bytes, doc))
                })
            };
            match prepared {
                Ok((record, doc)) => valid.push((i, record, doc)),
                Err(message) => {
                    outcome.rejected += 1;
                    if outcome.errors.len() < max_errors {
                        outcome.errors.push(LineError {
                            line: *line_no,
                            message: message.chars().take(MAX_ERROR_CHARS).collect(),
                        });
                    }
                    refused.push(DeadLetter::new(*line_no, message, line));
                }
            }
        }
        (valid, refused)
    }

    /// Claims the document ids of the valid lines in the resend window: the lines whose id is
    /// written already (in the index or by a batch in flight) are the conflicts, answered and
    /// not written; the ids claimed are kept in `claim`, released if the batch is not written.
    fn claim_ids(
        &self,
        stream: &Stream,
        ids: &[(usize, String)],
        valid_lines: &HashSet<usize>,
        received_at: i64,
        claim: &mut ResendClaim,
    ) -> Vec<u32> {
        let ids: Vec<(usize, String)> = ids
            .iter()
            .filter(|(line, _)| valid_lines.contains(line))
            .cloned()
            .collect();
        let exists = id_lookup(stream);
        let mut window = lock(&self.inner.resent);
        let conflicts = window.claim_ids(&claim.stream, &ids, exists, received_at);
        if let Some(fp) = claim.fingerprint {
            window.set_conflicts(fp, &conflicts);
        }
        claim.ids = ids
            .into_iter()
            .filter(|(line, _)| !conflicts.contains(&(*line as u32)))
            .map(|(_, id)| id)
            .collect();
        conflicts
    }

    /// Keeps refused lines in the dead-letter store, counted; a store that cannot be written
    /// is logged with the count of the letters lost (the answer still names the first ones).
    fn dead_letter(&self, stream: &str, refused: &[DeadLetter]) {
        if refused.is_empty() {
            return;
        }
        self.inner
            .metrics
            .dead_lettered(stream, refused.len() as u64);
        if let Err(err) = self.inner.dead_letters.record(stream, refused) {
            tracing::error!(stream, lines = refused.len(), %err, "refused lines could not be dead-lettered");
        }
    }
}

/// The records and documents of the valid lines not in `conflicts`, each document given its
/// id (`ids`: by line, in line order), with the ids by record and the bytes of the records.
#[allow(clippy::type_complexity)]
fn assemble(
    stream: &Stream,
    valid: Valid<'_>,
    conflicts: &[u32],
    ids: &[(usize, String)],
) -> (Vec<Vec<u8>>, Vec<Prepared>, Vec<(u32, String)>, u64) {
    let id_field = stream.schema.get_field(crate::schema::ID_FIELD).ok();
    let mut ids_by_line = ids.iter().peekable();
    let mut records = Vec::with_capacity(valid.len());
    let mut docs = Vec::with_capacity(valid.len());
    let mut record_ids = Vec::new();
    let mut bytes = 0u64;
    for (i, line, mut doc) in valid {
        if conflicts.contains(&(i as u32)) {
            continue;
        }
        while let Some((id_line, id)) = ids_by_line.peek() {
            if *id_line > i {
                break;
            }
            if *id_line == i {
                if let Some(field) = id_field {
                    doc.doc.add_text(field, id);
                }
                record_ids.push((records.len() as u32, id.clone()));
            }
            ids_by_line.next();
        }
        bytes += line.len() as u64;
        records.push(line.into_owned());
        docs.push(doc);
    }
    (records, docs, record_ids, bytes)
}

/// The envelope of a delivery batch, from its first line.
fn parse_envelope(first: Option<&[u8]>) -> std::result::Result<Envelope, IngestError> {
    let first = first.ok_or_else(|| IngestError::BadEnvelope("empty delivery batch".into()))?;
    serde_json::from_slice::<Envelope>(first)
        .map_err(|e| IngestError::BadEnvelope(format!("delivery envelope: {e}")))
}

/// Gives each valid line of a delivery batch its source (the envelope's sources declare their
/// records in order) in the hidden source field; returns the sources of the valid lines in
/// runs, as the WAL entry keeps them.
fn attribute_sources(
    stream: &Stream,
    envelope: &Envelope,
    valid: &mut Valid<'_>,
) -> Vec<(String, u32)> {
    let field = stream.schema.get_field(crate::schema::SOURCE_FIELD).ok();
    // The first line index of each source's records, ascending.
    let mut starts = Vec::with_capacity(envelope.sources.len());
    let mut at = 0usize;
    for source in &envelope.sources {
        starts.push(at);
        at += source.offsets.len();
    }
    let mut runs: Vec<(String, u32)> = Vec::new();
    for (i, _, doc) in valid.iter_mut() {
        let k = starts
            .partition_point(|&start| start <= *i)
            .saturating_sub(1);
        let Some(source) = envelope.sources.get(k) else {
            continue;
        };
        if let Some(field) = field {
            doc.doc.add_text(field, &source.id);
        }
        match runs.last_mut() {
            Some((id, n)) if *id == source.id => *n += 1,
            _ => runs.push((source.id.clone(), 1)),
        }
    }
    runs
}

/// A push batch's hold on the resend window while it is prepared: dropped before the batch is
/// queued (refused, nothing to write, an error), it forgets the pending fingerprint and the
/// claimed ids, so that a resend is written rather than waiting for nothing.
struct ResendClaim {
    inner: Arc<Inner>,
    stream: String,
    fingerprint: Option<u128>,
    ids: Vec<String>,
}

impl Drop for ResendClaim {
    fn drop(&mut self) {
        if self.fingerprint.is_none() && self.ids.is_empty() {
            return;
        }
        let mut window = lock(&self.inner.resent);
        if let Some(fp) = self.fingerprint {
            window.forget(fp);
        }
        window.release_ids(&self.stream, &self.ids);
    }
}

/// Whether a document id is in a stream's index (committed hot index or a split).
fn id_lookup(stream: &Stream) -> impl Fn(&str) -> bool {
    let snapshot = stream.snapshot(None, None);
    let field = stream.schema.get_field(crate::schema::ID_FIELD).ok();
    move |id: &str| {
        let Some(field) = field else { return false };
        let term = tantivy::Term::from_field_text(field, id);
        snapshot
            .targets
            .iter()
            .any(|t| t.searcher.doc_freq(&term).is_ok_and(|n| n > 0))
    }
}

/// The resend window's span in nanoseconds.
pub(super) fn window_nanos(settings: &IndexerSettings) -> i64 {
    i64::try_from(settings.batch_dedup_window.as_nanos()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests;
