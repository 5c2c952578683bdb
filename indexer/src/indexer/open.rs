//! Opening the indexer: its streams (built in, declared, created on first write earlier),
//! the splits on disk against the metastore, the hot indexes, and the replay of the WAL; and
//! streams created on first write while running.

use super::ingest::window_nanos;
use super::upkeep::run_upkeep;
use super::wal_writer::run_wal;
use super::*;

/// How many batches queue for one stream's indexing thread before the WAL writer waits: enough
/// to ride out a commit, small enough that memory stays bounded (a batch is at most a few MiB).
const INDEX_QUEUE_BATCHES: usize = 16;

impl Indexer {
    /// Opens the indexer's data directory, recovers splits and hot indexes, replays the WAL and
    /// starts the indexing, WAL and upkeep threads. Returns once what the WAL held is
    /// searchable.
    pub fn open(settings: IndexerSettings, metrics: Arc<Metrics>) -> Result<Indexer> {
        let root = settings.data_dir.join("indexer");
        fs::create_dir_all(&root)?;
        let metastore = Metastore::new(&root);
        let mut state = metastore.load()?;
        let catalog = Catalog::new(&root);
        let specs = stream_specs(&settings, &catalog)?;

        // Retired splits first: nothing pins them now, and none may be adopted as an orphan.
        let gone = retire::remove_unpinned(&root, &state.retired, |_| false);
        retire::forget(&mut state, &gone);
        adopt_orphans(&root, &specs, &mut state)?;
        metastore.store(&state)?;

        let mut streams = BTreeMap::new();
        let mut threads = Vec::new();
        let mut replay_from: HashMap<String, u64> = HashMap::new();
        let (sealed_tx, sealed_rx) = mpsc::channel::<()>();
        let inner_slot: Arc<Mutex<Option<std::sync::Weak<Inner>>>> = Arc::new(Mutex::new(None));
        for spec in specs {
            let name = spec.name.clone();
            let on_sealed = on_sealed_callback(inner_slot.clone(), sealed_tx.clone());
            let opened = open_stream(spec, &root, &state, &settings, &metrics, on_sealed)?;
            replay_from.insert(name.clone(), opened.replay_from);
            threads.push(opened.thread);
            streams.insert(name, opened.entry);
        }

        let Replayed { wal, marks, resent } =
            replay_wal(&root, &settings, &state, &streams, &replay_from, &metrics)?;
        metrics.wal_bytes.set(wal.disk_bytes() as i64);

        let (wal_tx, wal_rx) = mpsc::channel();
        let dead_letters =
            DeadLetters::new(&root.join("dead-letters"), settings.dead_letter_max_bytes);
        let inner = Arc::new(Inner {
            settings,
            streams: RwLock::new(streams),
            creating: Mutex::new(()),
            catalog,
            root,
            sealed_tx: Mutex::new(Some(sealed_tx)),
            inner_slot: inner_slot.clone(),
            metastore: Mutex::new((metastore, state)),
            pins: Pins::default(),
            marks: Mutex::new(marks),
            ownership: std::sync::OnceLock::new(),
            published: Mutex::new(HashMap::new()),
            replacing: Mutex::new(()),
            cluster_merges: AtomicBool::new(false),
            resent: Mutex::new(resent),
            wal_tx: Mutex::new(Some(wal_tx)),
            metrics,
            dead_letters,
            ready: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            threads: Mutex::new(threads),
        });
        *lock(&inner_slot) = Some(Arc::downgrade(&inner));
        let wal_inner = inner.clone();
        let wal_thread = std::thread::Builder::new()
            .name("wal".into())
            .spawn(move || run_wal(wal_inner, wal, wal_rx))?;
        let upkeep = Arc::downgrade(&inner);
        let upkeep_thread = std::thread::Builder::new()
            .name("upkeep".into())
            .spawn(move || run_upkeep(upkeep, sealed_rx))?;
        lock(&inner.threads).extend([wal_thread, upkeep_thread]);

        let indexer = Indexer { inner };
        indexer.flush();
        indexer.inner.ready.store(true, Ordering::SeqCst);
        Ok(indexer)
    }

    /// Makes sure a stream exists: an existing one is left as it is; an unknown one is created
    /// as a generic stream defined by `template` when `auto_create_streams` is on, its
    /// definition recorded durably before this returns (so that it is opened again after a
    /// restart). Unknown with auto-creation off: [`Error::UnknownStream`]; a name that is not a
    /// valid stream name: [`Error::InvalidArgument`].
    pub async fn ensure_stream(&self, name: &str, template: &StreamConfig) -> Result<()> {
        if self.has_stream(name) {
            return Ok(());
        }
        if !self.inner.settings.auto_create_streams {
            return Err(Error::UnknownStream(name.chars().take(64).collect()));
        }
        trawl_model::validate_stream_name(name)
            .map_err(|e| Error::InvalidArgument(e.to_string()))?;
        let this = self.clone();
        let name = name.to_string();
        let template = template.clone();
        tokio::task::spawn_blocking(move || this.create_stream(&name, &template))
            .await
            .map_err(|_| Error::InvalidArgument("stream creation was cancelled".into()))?
    }

    /// Creates a generic stream on first write (blocking: directories, catalog fsync, thread).
    fn create_stream(&self, name: &str, template: &StreamConfig) -> Result<()> {
        let inner = &self.inner;
        let _creating = lock(&inner.creating);
        if self.has_stream(name) {
            return Ok(());
        }
        if inner.stopping.load(Ordering::SeqCst) {
            return Err(Error::InvalidArgument(
                "the indexer is shutting down".into(),
            ));
        }
        let spec = StreamSpec::generic(name, template)?;
        inner.catalog.add(name, template)?;
        let sealed_tx = lock(&inner.sealed_tx)
            .clone()
            .ok_or_else(|| Error::InvalidArgument("the indexer is shutting down".into()))?;
        let on_sealed = on_sealed_callback(inner.inner_slot.clone(), sealed_tx);
        let opened = {
            let guard = lock(&inner.metastore);
            open_stream(
                spec,
                &inner.root,
                &guard.1,
                &inner.settings,
                &inner.metrics,
                on_sealed,
            )?
        };
        lock(&inner.threads).push(opened.thread);
        inner
            .streams
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(name.to_string(), opened.entry);
        tracing::info!(stream = name, "created a stream on first write");
        Ok(())
    }
}

/// The streams to open: the built-in ones, those declared in the configuration, and those
/// created on first write earlier (a declaration in the configuration wins over the catalog).
///
/// The built-in `events` and `journal` streams give way to a generic stream of the same name
/// declared in the configuration or created on first write before they were built in: its
/// splits were written with that stream's schema, which stays theirs.
fn stream_specs(settings: &IndexerSettings, catalog: &Catalog) -> Result<Vec<StreamSpec>> {
    let mut specs = vec![StreamSpec::logs(), StreamSpec::audit()];
    let builtin = |name: &str| trawl_config::BUILTIN_STREAMS.contains(&name);
    for (name, config) in &settings.declared_streams {
        if !builtin(name) {
            specs.push(StreamSpec::generic(name, config)?);
        }
    }
    for (name, config) in catalog.load()?.streams {
        if !builtin(&name) && !settings.declared_streams.contains_key(&name) {
            specs.push(StreamSpec::generic(&name, &config)?);
        }
    }
    for builtin in [StreamSpec::events(), StreamSpec::journal()] {
        if specs.iter().any(|s| s.name == builtin.name) {
            tracing::warn!(
                stream = %builtin.name,
                "a generic stream of this name is declared or was created on first write: it \
                 keeps its own fields, and the built-in mapping does not apply to it"
            );
        } else {
            specs.push(builtin);
        }
    }
    Ok(specs)
}

/// A stream opened with its indexing thread running.
struct OpenedStream {
    entry: Arc<StreamEntry>,
    thread: JoinHandle<()>,
    /// Where the WAL replay must start for this stream.
    replay_from: u64,
}

/// What replaying the WAL hands to the running indexer.
struct Replayed {
    wal: Wal,
    marks: Marks,
    resent: Window,
}

/// Replays the WAL: every entry past the point a stream's durable state covers (its sealed
/// splits and its hot index's commit) goes back to that stream's indexing thread, and the
/// source marks and the resend window are rebuilt from the entries that carried them. Unsealed
/// records of a stream that is no longer configured stop the opening, unless
/// `indexer.drop_unconfigured_streams` names it: then they are counted and dropped.
fn replay_wal(
    root: &Path,
    settings: &IndexerSettings,
    state: &MetastoreState,
    streams: &BTreeMap<String, Arc<StreamEntry>>,
    replay_from: &HashMap<String, u64>,
    metrics: &Metrics,
) -> Result<Replayed> {
    let from = replay_from
        .values()
        .copied()
        .chain([state.marks_lsn])
        .min()
        .unwrap_or(0);
    let (mut wal, entries) = Wal::open(&root.join("wal"), settings.wal_segment_bytes, from)?;
    wal.set_fault(settings.fault_point());
    let mut marks = Marks::from_snapshot(&state.marks);
    let now = Timestamp::now().nanos();
    let mut resent = Window::load(root, window_nanos(settings), now);
    let mut replayed = 0usize;
    let mut batches = Vec::new();
    let mut unconfigured = BTreeSet::new();
    for entry in entries {
        let batch = Batch::decode(&entry.payload)?;
        if !streams.contains_key(&batch.stream)
            && entry.lsn >= state.sealed_lsn.get(&batch.stream).copied().unwrap_or(0)
            && !batch.records.is_empty()
        {
            unconfigured.insert(batch.stream.clone());
        }
        batches.push((entry, batch));
    }
    crate::replay::check_unconfigured(&unconfigured, &settings.drop_unconfigured_streams)?;
    for (entry, batch) in batches {
        if entry.lsn >= state.marks_lsn {
            marks.commit(&batch.marks, Timestamp::now().nanos());
        }
        if let Some(fp) = batch.fingerprint {
            resent.restore(fp, batch.received_at, batch.conflicts.clone(), now);
        }
        let Some(target) = streams.get(&batch.stream) else {
            if unconfigured.contains(&batch.stream) {
                tracing::warn!(
                    stream = %batch.stream,
                    records = batch.records.len(),
                    "unsealed records of an unconfigured stream dropped \
                     (indexer.drop_unconfigured_streams)"
                );
                metrics
                    .replay_dropped_records
                    .get_or_create(&crate::metrics::StreamLabel {
                        stream: batch.stream.clone(),
                    })
                    .inc_by(batch.records.len() as u64);
            }
            continue;
        };
        if entry.lsn < replay_from.get(&batch.stream).copied().unwrap_or(0) {
            continue;
        }
        // Records of sources another indexer took over, removed before this start.
        let (batch, purged) = batch.without_sources(|source| {
            state
                .purged
                .get(source)
                .is_some_and(|&before| entry.lsn < before)
        });
        if purged > 0 {
            metrics.purged(&batch.stream, purged as u64);
        }
        let docs: Vec<Prepared> = crate::replay::batch_docs(&target.stream, &batch, metrics);
        replayed += docs.len();
        lock(&target.stream.unsealed).push_back(entry.lsn);
        let op = IndexOp::Add {
            lsn: entry.lsn,
            lsn_end: entry.end,
            docs,
            marks: batch.marks,
        };
        if target.tx.send(op).is_err() {
            return Err(Error::InvalidArgument("indexing thread died".into()));
        }
    }
    if replayed > 0 {
        tracing::info!(records = replayed, "replayed the write-ahead log");
    }
    Ok(Replayed { wal, marks, resent })
}

/// Opens a stream's splits and hot index and starts its indexing thread.
fn open_stream(
    spec: StreamSpec,
    root: &Path,
    state: &MetastoreState,
    settings: &IndexerSettings,
    metrics: &Arc<Metrics>,
    on_sealed: OnSealed,
) -> Result<OpenedStream> {
    let name = spec.name.clone();
    let dir = stream_dir(root, &name);
    let handles = open_splits(&dir, state, &name)?;
    let (stream, index, payload) = Stream::open(spec, &dir, handles, &settings.writer)?;
    let stream = Arc::new(stream);
    if let Some(first) = payload.first_lsn {
        lock(&stream.unsealed).push_back(first);
    }
    let sealed = state.sealed_lsn.get(&name).copied().unwrap_or(0);
    let (tx, rx) = mpsc::sync_channel(INDEX_QUEUE_BATCHES);
    let thread_stream = stream.clone();
    let thread_settings = settings.stream_settings(&name);
    let thread_metrics = metrics.clone();
    let thread = std::thread::Builder::new()
        .name(format!("index-{name}"))
        .spawn(move || {
            run_indexing(
                thread_stream,
                index,
                thread_settings,
                rx,
                thread_metrics,
                on_sealed,
            )
        })?;
    metrics.set_splits(&name, stream.splits().len());
    let (tail, _) = tokio::sync::broadcast::channel(TAIL_QUEUE_BATCHES);
    Ok(OpenedStream {
        entry: Arc::new(StreamEntry { stream, tx, tail }),
        thread,
        replay_from: sealed.max(payload.lsn),
    })
}

/// Splits present on disk but missing from the metastore are those a crash caught between
/// sealing and recording: adopt them. Orphaned merge outputs duplicate recorded splits: delete.
fn adopt_orphans(root: &Path, specs: &[StreamSpec], state: &mut MetastoreState) -> Result<()> {
    for spec in specs {
        let dir = stream_dir(root, &spec.name).join("splits");
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let id = entry.file_name().to_string_lossy().into_owned();
            if state.splits.iter().any(|s| s.id == id) || state.retired.iter().any(|r| r.id == id) {
                continue;
            }
            match split::read_meta(&path) {
                Some(meta) if meta.merge_level == 0 => {
                    tracing::warn!(split = %id, "adopting a sealed split missing from the metastore");
                    state.splits.push(meta);
                }
                _ => {
                    tracing::warn!(split = %id, "deleting an unrecorded split");
                    let _ = fs::remove_dir_all(&path);
                }
            }
        }
    }
    Ok(())
}

fn open_splits(dir: &Path, state: &MetastoreState, stream: &str) -> Result<Vec<Arc<SplitHandle>>> {
    let mut handles = Vec::new();
    for meta in state.splits.iter().filter(|s| s.stream == stream) {
        let path = dir.join("splits").join(&meta.id);
        match SplitHandle::open(&path, meta.clone()) {
            Ok(handle) => handles.push(Arc::new(handle)),
            Err(err) => {
                tracing::error!(split = %meta.id, %err, "a recorded split cannot be opened");
                return Err(err);
            }
        }
    }
    Ok(handles)
}

fn on_sealed_callback(
    slot: Arc<Mutex<Option<std::sync::Weak<Inner>>>>,
    sealed_tx: Sender<()>,
) -> OnSealed {
    Arc::new(move |stream: &str, meta: &SplitMeta, lsn: u64| {
        let inner = lock(&slot)
            .as_ref()
            .and_then(|w| w.upgrade())
            .ok_or_else(|| Error::InvalidArgument("indexer is gone".into()))?;
        {
            let mut guard = lock(&inner.metastore);
            let (store, state) = &mut *guard;
            let mut next = state.clone();
            next.splits.push(meta.clone());
            next.sealed_lsn.insert(stream.to_string(), lsn);
            store.store(&next)?;
            *state = next;
        }
        let _ = sealed_tx.send(());
        Ok(())
    })
}
