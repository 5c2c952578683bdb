//! The reader thread: one thread owns the table of tailed files, discovers files, reads them
//! with bounded buffers, builds records and seals batches into the disk buffer.
//!
//! One thread for all files (rather than a task per file) keeps memory flat with thousands of
//! files: one shared 64 KiB read buffer, a partial line per file. File reads and batch fsyncs
//! block this thread only, never the async runtime.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::{self, File};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use globset::GlobMatcher;
use tokio::sync::mpsc::UnboundedSender;
use tracing::{debug, error, info, warn};
use trawl_config::{DropPolicy, MultilineRule, RateLimit};

use crate::batch::{Batch, BatchBuilder};
use crate::checkpoint::{unix_now, Position};
use crate::discovery::{scan_audit, scan_pods, scan_spool, DirWatcher, Filters, Found, FsEvent};
use crate::identity::{
    audit_source_id, container_source_id, fingerprint_file, spool_source_id, still_matches, PodFile,
};
use crate::kube::Metadata;
use crate::ratelimit::RateLimiter;
use crate::records::Stamp;
use crate::redact::Redactor;
use crate::shared::{lock, ReaderMsg, Shared, ShipMsg};
use crate::tail::{Entry, Kind, LineCtx};

/// Chunks read from one file before moving to the next (fairness between files).
const CHUNKS_PER_TURN: usize = 4;
/// A rotated file idle this long at its end is released (its writer has moved on).
const RELEASE_GRACE: Duration = Duration::from_secs(1);
/// A detached identity (its file truncated) waits this long for a copy to turn up.
const DETACHED_TTL: Duration = Duration::from_secs(600);
/// Longest sleep when idle.
const IDLE_TICK: Duration = Duration::from_millis(250);
/// Shortest interval between two event-triggered scans.
const SCAN_DEBOUNCE: Duration = Duration::from_millis(50);

/// What the reader is told to do.
pub struct ReaderConfig {
    pub stamp: Stamp,
    pub pods_dir: PathBuf,
    pub audit_paths: Vec<PathBuf>,
    pub spool_dir: PathBuf,
    pub filters: Filters,
    pub max_line_bytes: usize,
    pub batch_max_bytes: usize,
    pub batch_max_wait: Duration,
    pub rescan_interval: Duration,
    /// Multiline rules with their namespace and container matchers.
    pub multiline: Vec<(Option<GlobMatcher>, GlobMatcher, Arc<MultilineRule>)>,
    pub redactor: Option<Redactor>,
    pub rate_limits: Vec<(GlobMatcher, RateLimit)>,
    pub drop_policy: DropPolicy,
    /// Kubernetes metadata, when watched.
    pub kube: Option<Metadata>,
}

/// The reader's state; see the module docs.
pub struct Reader {
    cfg: ReaderConfig,
    shared: Arc<Shared>,
    rx: Receiver<ReaderMsg>,
    ship: UnboundedSender<ShipMsg>,
    entries: HashMap<String, Entry>,
    by_inode: HashMap<(u64, u64), String>,
    /// Files whose first line is not complete yet.
    pending: HashMap<PathBuf, Found>,
    /// Positions of sources in batches still in the buffer at start-up.
    hints: HashMap<String, Position>,
    limiters: HashMap<String, RateLimiter>,
    logs: BatchBuilder,
    audit: BatchBuilder,
    /// Sealed batches the buffer could not take yet (disk error); reading waits for them.
    unsaved: VecDeque<Batch>,
    scratch: Vec<u8>,
    watcher: DirWatcher,
    last_scan: Option<Instant>,
    scan_due: bool,
    busy: bool,
    blocked_since: Option<Instant>,
    /// The metadata cache generation the entries' enrichments were refreshed at.
    meta_generation: u64,
    /// An entry was added since the last refresh of enrichments.
    meta_dirty: bool,
    /// Pod label filter decisions, by pod uid: made once per pod, when its first file is found.
    pod_decisions: HashMap<String, bool>,
    /// Files waiting for their pod's labels, since when.
    label_wait: HashMap<PathBuf, Instant>,
}

impl Reader {
    /// A reader; `hints` are the positions of sources in batches left in the buffer.
    pub fn new(
        cfg: ReaderConfig,
        shared: Arc<Shared>,
        rx: Receiver<ReaderMsg>,
        tx: std::sync::mpsc::Sender<ReaderMsg>,
        ship: UnboundedSender<ShipMsg>,
        hints: HashMap<String, Position>,
    ) -> Reader {
        let mut wanted = vec![(cfg.pods_dir.clone(), true), (cfg.spool_dir.clone(), false)];
        for p in &cfg.audit_paths {
            if let Some(dir) = p.parent() {
                wanted.push((dir.to_path_buf(), false));
            }
        }
        let watcher = DirWatcher::new(wanted, tx, ReaderMsg::Fs);
        Reader {
            cfg,
            shared,
            rx,
            ship,
            entries: HashMap::new(),
            by_inode: HashMap::new(),
            pending: HashMap::new(),
            hints,
            limiters: HashMap::new(),
            logs: BatchBuilder::new(trawl_model::LOGS_STREAM),
            audit: BatchBuilder::new(trawl_model::AUDIT_STREAM),
            unsaved: VecDeque::new(),
            scratch: Vec::with_capacity(crate::tail::CHUNK),
            watcher,
            last_scan: None,
            scan_due: true,
            busy: false,
            blocked_since: None,
            meta_generation: 0,
            meta_dirty: false,
            pod_decisions: HashMap::new(),
            label_wait: HashMap::new(),
        }
    }

    /// Runs until told to stop (or until every sender is gone).
    pub fn run(mut self) {
        loop {
            let timeout = self.next_timeout();
            let first = match self.rx.recv_timeout(timeout) {
                Ok(msg) => Some(msg),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => return,
            };
            let mut msgs: Vec<ReaderMsg> = first.into_iter().collect();
            msgs.extend(self.rx.try_iter());
            for msg in msgs {
                match msg {
                    ReaderMsg::Fs(FsEvent::Structure) => self.scan_due = true,
                    ReaderMsg::Fs(FsEvent::Data) | ReaderMsg::Wake => {}
                    ReaderMsg::Rewind {
                        source,
                        mark,
                        reply,
                    } => {
                        let _ = reply.send(self.rewind(&source, mark));
                    }
                    ReaderMsg::Stop { seal } => {
                        if seal {
                            self.seal(true);
                        }
                        return;
                    }
                }
            }
            let now = Instant::now();
            let periodic = self
                .last_scan
                .is_none_or(|t| now.duration_since(t) >= self.cfg.rescan_interval);
            let debounced = self
                .last_scan
                .is_none_or(|t| now.duration_since(t) >= SCAN_DEBOUNCE);
            if periodic || (self.scan_due && debounced) {
                self.scan();
            } else if !self.pending.is_empty() {
                self.check_pending();
            }
            self.read_all();
            self.seal(false);
        }
    }

    fn next_timeout(&self) -> Duration {
        if self.busy {
            return Duration::ZERO;
        }
        let now = Instant::now();
        let mut t = IDLE_TICK.min(self.cfg.rescan_interval);
        for b in [&self.logs, &self.audit] {
            if let Some(opened) = b.opened() {
                t = t.min((opened + self.cfg.batch_max_wait).saturating_duration_since(now));
            }
        }
        if self.scan_due {
            t = t.min(SCAN_DEBOUNCE);
        }
        if !self.pending.is_empty() || !self.unsaved.is_empty() {
            t = t.min(Duration::from_millis(50));
        }
        for e in self.entries.values() {
            if let Some(b) = e.blocked_until {
                t = t.min(b.saturating_duration_since(now));
            }
        }
        t
    }

    // ---- discovery -------------------------------------------------------------------------

    fn scan(&mut self) {
        self.last_scan = Some(Instant::now());
        self.scan_due = false;
        self.watcher.refresh();
        let mut found = Vec::new();
        scan_pods(&self.cfg.pods_dir, &self.cfg.filters, &mut found);
        for p in &self.cfg.audit_paths {
            scan_audit(p, &mut found);
        }
        scan_spool(&self.cfg.spool_dir, &mut found);
        let mut seen = HashSet::new();
        let mut seen_paths = HashSet::new();
        let mut seen_pods = HashSet::new();
        for (path, f) in found {
            seen_paths.insert(path.clone());
            if let Found::Container(pf) = &f {
                if !seen_pods.contains(&pf.pod_uid) {
                    seen_pods.insert(pf.pod_uid.clone());
                }
            }
            self.consider(path, f, &mut seen);
        }
        self.pending.retain(|p, _| seen_paths.contains(p));
        self.label_wait.retain(|p, _| seen_paths.contains(p));
        self.pod_decisions.retain(|uid, _| seen_pods.contains(uid));
        for e in self.entries.values_mut() {
            if e.file.is_some() && !seen.contains(&e.inode) {
                e.live = false;
            }
        }
        self.forget_gone(&seen);
        self.gc_spool();
        self.update_lag();
    }

    fn check_pending(&mut self) {
        let pending: Vec<_> = self.pending.drain().collect();
        let mut seen = HashSet::new();
        for (path, f) in pending {
            self.consider(path, f, &mut seen);
        }
    }

    /// Looks at one file found by a scan: a known inode (renamed, grown again), a new file, a
    /// copy carrying the identity of a detached source.
    fn consider(&mut self, path: PathBuf, found: Found, seen: &mut HashSet<(u64, u64)>) {
        let Ok(md) = fs::metadata(&path) else { return };
        if !md.is_file() {
            return;
        }
        let key = (md.dev(), md.ino());
        seen.insert(key);
        let live = match &found {
            Found::Container(pf) => !pf.rotated,
            Found::Audit { live } | Found::Spool { live, .. } => *live,
        };
        if let Some(e) = self
            .by_inode
            .get(&key)
            .and_then(|id| self.entries.get_mut(id))
        {
            if e.file.is_some() {
                if e.path != path {
                    debug!(from = %e.path_str, to = %path.display(), "file renamed");
                    self.shared.metrics.clear_lag(&e.path_str);
                    e.path_str = path.to_string_lossy().into_owned();
                    e.path = path;
                }
                e.live = live;
                return;
            }
            if e.released_size.is_some_and(|size| md.len() <= size) {
                e.live = live;
                return;
            }
        }
        if let Found::Container(pf) = &found {
            if !self.admitted_by_labels(&path, &found, pf) {
                return;
            }
        }
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) => {
                debug!(file = %path.display(), error = %e, "cannot open");
                return;
            }
        };
        let fp = match fingerprint_file(&file) {
            Ok(Some(fp)) => fp,
            Ok(None) => {
                self.pending.insert(path, found);
                return;
            }
            Err(e) => {
                debug!(file = %path.display(), error = %e, "cannot read");
                return;
            }
        };
        self.pending.remove(&path);
        let node = &self.cfg.stamp.node;
        let (id, kind) = match &found {
            Found::Container(pf) => (
                container_source_id(node, &pf.pod_uid, &pf.container, &fp),
                Kind::Container(Arc::new(pf.clone())),
            ),
            Found::Audit { .. } => (audit_source_id(node, &fp), Kind::Audit),
            Found::Spool { segment, .. } => (spool_source_id(node, segment), Kind::Spool),
        };
        if let Some(e) = self.entries.get(&id) {
            if let Some(attached) = &e.file {
                // A copy of a file still attached (copytruncate copies, then truncates): it
                // takes over once the original no longer holds the identity's first line.
                if still_matches(attached, &e.fp).unwrap_or(true) {
                    return;
                }
                self.detach(&id);
            }
        }
        let metrics = &self.shared.metrics;
        if let Some(e) = self.entries.get_mut(&id) {
            if e.inode != key && self.by_inode.get(&e.inode) == Some(&id) {
                self.by_inode.remove(&e.inode);
            }
            info!(file = %path.display(), source = %id, offset = e.read_pos, "file attached to its identity");
            e.file = Some(file);
            e.inode = key;
            e.path_str = path.to_string_lossy().into_owned();
            e.path = path;
            e.live = live;
            e.released_size = None;
            e.detached_at = None;
            e.last_activity = Instant::now();
            self.by_inode.insert(key, id);
            metrics.files_tailed.inc();
            self.meta_dirty = true;
            return;
        }
        let checkpoint = lock(&self.shared.checkpoints).get(&id);
        let hint = self.hints.remove(&id);
        let mut pos = match (checkpoint, hint) {
            (Some(a), Some(b)) => {
                if b.acked >= a.acked {
                    b
                } else {
                    a
                }
            }
            (a, b) => a.or(b).unwrap_or_default(),
        };
        if pos.resume > md.len() {
            warn!(file = %path.display(), source = %id, checkpoint = pos.resume, size = md.len(),
                "file shorter than its checkpoint, reading it from the start");
            pos = Position::default();
        }
        let rule = match &kind {
            Kind::Container(pf) => self.multiline_rule(&pf.namespace, &pf.container),
            _ => None,
        };
        debug!(file = %path.display(), source = %id, offset = pos.resume, "tailing");
        let entry = Entry::new(
            id.clone(),
            kind,
            fp,
            path,
            live,
            file,
            key,
            pos.resume,
            pos.acked,
            rule,
            self.cfg.max_line_bytes,
        );
        self.entries.insert(id.clone(), entry);
        self.by_inode.insert(key, id);
        metrics.files_tailed.inc();
        self.meta_dirty = true;
    }

    /// Whether a new file of pod `pf` may be read now under the pod label filters. A pod is
    /// decided once, when its first file is found: admitted or excluded by its labels; a pod
    /// whose labels are not known yet has its files wait (in `pending`) up to the configured
    /// wait, then admitted with path metadata only, so that no line is lost to a slow API.
    fn admitted_by_labels(&mut self, path: &Path, found: &Found, pf: &PodFile) -> bool {
        let Some(kube) = &self.cfg.kube else {
            return true;
        };
        let Some(filter) = &kube.filter else {
            return true;
        };
        if let Some(&decided) = self.pod_decisions.get(&pf.pod_uid) {
            return decided;
        }
        let now = Instant::now();
        let decided = match kube.cache.pod(&pf.pod_uid) {
            Some(pod) => {
                let admitted = filter.admits(&pod);
                if !admitted {
                    info!(namespace = %pf.namespace, pod = %pf.pod, "pod not collected: excluded by its labels");
                    self.shared.metrics.pods_excluded_by_labels.inc();
                }
                admitted
            }
            None => {
                let since = *self.label_wait.entry(path.to_path_buf()).or_insert(now);
                if now.duration_since(since) < kube.wait {
                    self.pending.insert(path.to_path_buf(), found.clone());
                    return false;
                }
                warn!(file = %path.display(), waited_ms = kube.wait.as_millis() as u64,
                    "labels of the pod still unknown; its files are collected with path metadata");
                true
            }
        };
        self.label_wait.remove(path);
        self.pod_decisions.insert(pf.pod_uid.clone(), decided);
        decided
    }

    /// Refreshes the Kubernetes metadata of container entries when the cache changed (or
    /// entries were added): a hash lookup per entry, a rebuild only for pods that changed.
    fn refresh_metadata(&mut self) {
        let Some(kube) = &self.cfg.kube else {
            return;
        };
        let generation = kube.cache.generation();
        if generation == self.meta_generation && !self.meta_dirty {
            return;
        }
        self.meta_generation = generation;
        self.meta_dirty = false;
        for e in self.entries.values_mut() {
            let Kind::Container(pf) = &e.kind else {
                continue;
            };
            match kube.cache.pod_versioned(&pf.pod_uid) {
                Some((pod, version)) if version != e.meta_version => {
                    e.meta = Some(Arc::new(kube.cache.enrich(&pod, &pf.container, pf.restart)));
                    e.meta_version = version;
                }
                Some(_) => {}
                None => {
                    e.meta = None;
                    e.meta_version = 0;
                }
            }
        }
    }

    fn multiline_rule(&self, ns: &str, container: &str) -> Option<Arc<MultilineRule>> {
        self.cfg
            .multiline
            .iter()
            .find(|(n, c, _)| n.as_ref().is_none_or(|n| n.is_match(ns)) && c.is_match(container))
            .map(|(_, _, r)| r.clone())
    }

    /// Forgets released files no longer on disk and detached identities nobody claimed.
    fn forget_gone(&mut self, seen: &HashSet<(u64, u64)>) {
        let now = Instant::now();
        let mut gone = Vec::new();
        for (id, e) in &self.entries {
            let released_and_gone = e.released_size.is_some() && !seen.contains(&e.inode);
            let detached_long = e.file.is_none()
                && e.detached_at
                    .is_some_and(|t| now.duration_since(t) >= DETACHED_TTL);
            if released_and_gone || detached_long {
                gone.push(id.clone());
            }
        }
        for id in gone {
            if let Some(e) = self.entries.remove(&id) {
                if self.by_inode.get(&e.inode) == Some(&id) {
                    self.by_inode.remove(&e.inode);
                }
                if e.detached_at.is_some() {
                    warn!(source = %id, file = %e.path_str, "truncated file never reappeared; its unread tail is lost");
                }
            }
        }
    }

    /// Deletes webhook spool segments that are released and wholly acknowledged.
    fn gc_spool(&mut self) {
        let checkpoints = lock(&self.shared.checkpoints);
        let mut done = Vec::new();
        for (id, e) in &self.entries {
            if let (Kind::Spool, Some(size)) = (&e.kind, e.released_size) {
                if !e.live && checkpoints.get(id).is_some_and(|p| p.acked >= size) {
                    done.push(id.clone());
                }
            }
        }
        drop(checkpoints);
        for id in done {
            if let Some(e) = self.entries.remove(&id) {
                self.by_inode.remove(&e.inode);
                match fs::remove_file(&e.path) {
                    Ok(()) => debug!(file = %e.path_str, "spool segment delivered, removed"),
                    Err(err) => {
                        warn!(file = %e.path_str, error = %err, "cannot remove spool segment")
                    }
                }
            }
        }
    }

    fn update_lag(&mut self) {
        let now = unix_now();
        let mut checkpoints = lock(&self.shared.checkpoints);
        for (id, e) in &self.entries {
            checkpoints.touch(id, now);
            if let Some(f) = &e.file {
                let size = f.metadata().map(|m| m.len()).unwrap_or(0);
                let acked = checkpoints.get(id).map_or(0, |p| p.acked);
                self.shared
                    .metrics
                    .set_lag(&e.path_str, size.saturating_sub(acked));
            }
        }
        let removed = checkpoints.gc(now);
        if removed > 0 {
            info!(removed, "checkpoints of files gone for long forgotten");
        }
    }

    // ---- reading ---------------------------------------------------------------------------

    fn read_all(&mut self) {
        self.read_all_at(Instant::now());
    }

    /// One reading turn as of `now` (passed in, so that tests drive the rate limits on a fake
    /// clock).
    fn read_all_at(&mut self, now: Instant) {
        self.refresh_metadata();
        self.busy = false;
        let metrics = self.shared.metrics.clone();
        let room = self.unsaved.is_empty()
            && (self.cfg.drop_policy == DropPolicy::DropNewest
                || lock(&self.shared.buffer).has_room());
        match (room, self.blocked_since) {
            (false, None) => self.blocked_since = Some(now),
            (true, Some(since)) => {
                metrics
                    .backpressure_seconds
                    .inc_by(now.duration_since(since).as_secs_f64());
                self.blocked_since = None;
            }
            _ => {}
        }
        let Reader {
            cfg,
            entries,
            limiters,
            logs,
            audit,
            scratch,
            ..
        } = self;
        let ctx = LineCtx {
            stamp: &cfg.stamp,
            redactor: cfg.redactor.as_ref(),
            metrics: &metrics,
            max_line_bytes: cfg.max_line_bytes,
            now,
        };
        let mut detach = Vec::new();
        let mut release = Vec::new();
        let mut busy = false;
        for (id, e) in entries.iter_mut() {
            if e.file.is_none() {
                continue;
            }
            if e.blocked_until.is_some_and(|t| t > now) {
                continue;
            }
            let builder = match e.kind {
                Kind::Container(_) => &mut *logs,
                Kind::Audit | Kind::Spool => &mut *audit,
            };
            let mut limiter = match &e.kind {
                Kind::Container(pf) => limiter_for(limiters, &cfg.rate_limits, &pf.namespace),
                _ => None,
            };
            if !e.held.is_empty() && !e.drain_held(limiter.as_deref_mut(), builder, &metrics, now) {
                continue;
            }
            let Some(Ok(md)) = e.file.as_ref().map(File::metadata) else {
                continue;
            };
            let size = md.len();
            if size < e.read_pos {
                detach.push(id.clone());
                continue;
            }
            if size > e.read_pos {
                if !room || builder.bytes() >= cfg.batch_max_bytes {
                    busy |= room;
                    continue;
                }
                let Some(file) = e.file.as_ref() else {
                    continue;
                };
                match still_matches(file, &e.fp) {
                    Ok(true) => {}
                    Ok(false) => {
                        detach.push(id.clone());
                        continue;
                    }
                    Err(err) => {
                        debug!(file = %e.path_str, error = %err, "cannot read");
                        continue;
                    }
                }
                match e.read_available(size, CHUNKS_PER_TURN, scratch, &ctx) {
                    Ok(n) => {
                        metrics.bytes_read.inc_by(n);
                    }
                    Err(err) => warn!(file = %e.path_str, error = %err, "read failed"),
                }
                e.drain_held(limiter.as_deref_mut(), builder, &metrics, now);
                busy |= e.read_pos < size && e.held.is_empty();
                continue;
            }
            e.poll_timeouts(&ctx);
            let deleted = md.nlink() == 0;
            let idle = now.duration_since(e.last_activity) >= RELEASE_GRACE;
            if deleted || (!e.live && idle) {
                e.finish(&ctx);
                if e.drain_held(limiter.as_deref_mut(), builder, &metrics, now) {
                    release.push(id.clone());
                }
            } else {
                e.drain_held(limiter, builder, &metrics, now);
            }
        }
        self.busy = busy;
        // The shared read buffer grows with a long partial line; give it back afterwards.
        if self.scratch.capacity() > 2 * crate::tail::CHUNK {
            self.scratch = Vec::with_capacity(crate::tail::CHUNK);
        }
        for id in detach {
            self.detach(&id);
        }
        for id in release {
            self.release(&id);
        }
    }

    fn detach(&mut self, id: &str) {
        let Some(e) = self.entries.get_mut(id) else {
            return;
        };
        info!(file = %e.path_str, source = %id, "file truncated or rewritten; its rest is looked for in a copy");
        self.shared.metrics.clear_lag(&e.path_str);
        if self.by_inode.get(&e.inode).map(String::as_str) == Some(id) {
            self.by_inode.remove(&e.inode);
        }
        e.detach(self.cfg.max_line_bytes);
        self.shared.metrics.files_tailed.dec();
        self.scan_due = true;
    }

    fn release(&mut self, id: &str) {
        let Some(e) = self.entries.get_mut(id) else {
            return;
        };
        debug!(file = %e.path_str, source = %id, "file drained, released");
        e.file = None;
        e.released_size = Some(e.read_pos);
        self.shared.metrics.clear_lag(&e.path_str);
        self.shared.metrics.files_tailed.dec();
    }

    /// Re-reads `source` from the indexer's `mark`; see [`ReaderMsg::Rewind`].
    fn rewind(&mut self, source: &str, mark: u64) -> Option<u64> {
        let e = self.entries.get_mut(source)?;
        if e.file.is_none() {
            let file = File::open(&e.path).ok()?;
            if fingerprint_file(&file).ok()?? != e.fp {
                return None;
            }
            let md = file.metadata().ok()?;
            let key = (md.dev(), md.ino());
            e.file = Some(file);
            e.inode = key;
            e.released_size = None;
            e.detached_at = None;
            e.last_activity = Instant::now();
            self.by_inode.insert(key, source.to_string());
            self.shared.metrics.files_tailed.inc();
        }
        let mut checkpoints = lock(&self.shared.checkpoints);
        let resume = match checkpoints.get(source) {
            Some(p) if p.acked <= mark => p.resume,
            _ => 0,
        };
        checkpoints.rewind(
            source,
            Position {
                resume,
                acked: mark,
            },
        );
        drop(checkpoints);
        warn!(source = %source, mark, resume, "indexer is missing data of this source; re-reading");
        e.reset_to(resume, mark, self.cfg.max_line_bytes);
        self.logs.strip_source(source);
        self.audit.strip_source(source);
        for b in &mut self.unsaved {
            b.strip_source(source);
        }
        self.unsaved.retain(|b| b.record_count() > 0);
        Some(lock(&self.shared.buffer).next_seq())
    }

    // ---- batches ---------------------------------------------------------------------------

    /// Seals the batches that are full or old enough (all non-empty ones with `force`) and
    /// writes them to the buffer.
    fn seal(&mut self, force: bool) {
        let now = Instant::now();
        let Reader {
            cfg,
            entries,
            logs,
            audit,
            unsaved,
            ..
        } = self;
        for b in [logs, audit] {
            let due = b.bytes() >= cfg.batch_max_bytes
                || b.opened()
                    .is_some_and(|t| now.duration_since(t) >= cfg.batch_max_wait);
            if (force || due) && !b.is_empty() {
                let resume = |id: &str| entries.get(id).map(Entry::resume_point);
                if let Some(batch) = b.seal(&resume) {
                    unsaved.push_back(batch);
                }
            }
        }
        self.save();
    }

    fn save(&mut self) {
        while let Some(batch) = self.unsaved.front() {
            let mut buffer = lock(&self.shared.buffer);
            if self.cfg.drop_policy == DropPolicy::DropNewest && !buffer.has_room() {
                drop(buffer);
                let sources: Vec<String> = batch.sources.iter().map(|s| s.id.clone()).collect();
                warn!(
                    records = batch.record_count(),
                    "disk buffer full, batch dropped (drop_policy = drop_newest)"
                );
                self.shared.metrics.batches_dropped.inc();
                let _ = self.ship.send(ShipMsg::GapOk(sources));
                self.unsaved.pop_front();
                continue;
            }
            match buffer.push(batch) {
                Ok(seq) => {
                    self.shared.metrics.buffer_bytes.set(buffer.bytes() as i64);
                    drop(buffer);
                    let _ = self.ship.send(ShipMsg::Batch(seq));
                    self.unsaved.pop_front();
                }
                Err(e) => {
                    error!(error = %e, "cannot write to the disk buffer; reading paused");
                    return;
                }
            }
        }
    }
}

/// The token bucket of namespace `ns`, from the first rule matching it.
fn limiter_for<'a>(
    limiters: &'a mut HashMap<String, RateLimiter>,
    rules: &[(GlobMatcher, RateLimit)],
    ns: &str,
) -> Option<&'a mut RateLimiter> {
    if rules.is_empty() {
        return None;
    }
    if !limiters.contains_key(ns) {
        let (_, rule) = rules.iter().find(|(g, _)| g.is_match(ns))?;
        limiters.insert(ns.to_string(), RateLimiter::from_config(rule));
    }
    limiters.get_mut(ns)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::fake::{PodLog, WriteMode};

    /// The rate a `[[collector.rate_limits]]` rule claims is the rate the reader hands lines
    /// on, measured on a fake clock that jumps to each moment the reader would wake up at: a
    /// burst of 20 at once, then exactly one line every 5 ms (200/s) until all 400 are read,
    /// at 1.9 s; the other namespace's lines all at once.
    #[test]
    fn a_rate_limited_namespace_is_read_at_exactly_its_rate() {
        let root = tempfile::tempdir().unwrap();
        let mut config = crate::tests::fake::config(root.path());
        config.collector.batch_max_bytes = 1 << 30;
        let cc = &config.collector;
        let mut noisy = PodLog::new(&cc.pods_dir, "noisy-batch", "job-0", "uid-n", "worker");
        let mut shop = PodLog::new(&cc.pods_dir, "shop", "web-0", "uid-s", "app");
        let mut seq = 0;
        for n in 0..400 {
            noisy.write(&mut seq, &format!("tick {n:04}"), WriteMode::Whole);
        }
        for n in 0..50 {
            shop.write(&mut seq, &format!("login {n:02}"), WriteMode::Whole);
        }
        let data = root.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        let shared = Arc::new(Shared {
            checkpoints: std::sync::Mutex::new(
                crate::checkpoint::CheckpointStore::load(&data.join("checkpoints.json")).unwrap(),
            ),
            buffer: std::sync::Mutex::new(
                crate::buffer::DiskBuffer::open(&data.join("buffer"), 1 << 30).unwrap(),
            ),
            metrics: crate::Metrics::default(),
            stuck_since: std::sync::Mutex::new(None),
        });
        let (tx, rx) = std::sync::mpsc::channel();
        let (ship, _ship_rx) = tokio::sync::mpsc::unbounded_channel();
        let cfg = ReaderConfig {
            stamp: Stamp::default(),
            pods_dir: cc.pods_dir.clone(),
            audit_paths: Vec::new(),
            spool_dir: data.join("webhook"),
            filters: Filters::new(cc).unwrap(),
            max_line_bytes: cc.max_line_bytes,
            batch_max_bytes: cc.batch_max_bytes,
            batch_max_wait: Duration::from_secs(3600),
            rescan_interval: Duration::from_secs(3600),
            multiline: Vec::new(),
            redactor: None,
            rate_limits: vec![(
                globset::Glob::new("noisy-*").unwrap().compile_matcher(),
                RateLimit {
                    namespace: "noisy-*".into(),
                    lines_per_sec: 200,
                    burst: 20,
                },
            )],
            drop_policy: DropPolicy::Block,
            kube: None,
        };
        let mut reader = Reader::new(cfg, shared, rx, tx, ship, HashMap::new());
        reader.scan();
        assert_eq!(reader.entries.len(), 2);

        let t0 = Instant::now();
        let mut now = t0;
        let (mut noisy_read, mut shop_read) = (0usize, 0usize);
        for step in 0.. {
            assert!(step < 10_000, "the reader never finished");
            reader.read_all_at(now);
            if let Some(batch) = reader.logs.seal(&|_| None) {
                for s in &batch.sources {
                    if s.path.contains("noisy-batch") {
                        noisy_read += s.offsets.len();
                    } else {
                        shop_read += s.offsets.len();
                    }
                }
            }
            let elapsed = now - t0;
            // The bucket's exact promise: the burst, plus the rate times the time elapsed.
            let allowed = 20 + (elapsed.as_nanos() * 200 / 1_000_000_000) as usize;
            if !reader.busy {
                assert_eq!(noisy_read, allowed.min(400), "at {elapsed:?}");
                assert_eq!(shop_read, 50, "the other namespace waits for nothing");
            }
            if noisy_read == 400 {
                break;
            }
            if !reader.busy {
                // Sleep until the reader would wake up: the earliest end of a hold.
                now = reader
                    .entries
                    .values()
                    .filter_map(|e| e.blocked_until)
                    .min()
                    .expect("lines held back wait for a moment");
            }
        }
        let took = now - t0;
        assert_eq!(took, Duration::from_millis(1900));
        // The measured sustained rate, past the burst: exactly the configured one.
        assert_eq!((400 - 20) * 1_000_000_000 / took.as_nanos(), 200);
        assert_eq!(reader.shared.metrics.rate_limited_records.get(), 380);
    }
}
