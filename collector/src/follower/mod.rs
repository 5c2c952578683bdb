//! The follower: one thread owns the table of followed files, discovers files, reads them
//! with bounded buffers, builds records and seals batches into the disk buffer.
//!
//! One thread for all files (rather than a task per file) keeps memory flat with thousands of
//! files: one shared 64 KiB read buffer, a partial line per file. File reads and batch fsyncs
//! block this thread only, never the async runtime.
//!
//! ```text
//! mod.rs       the thread: its state, its loop and messages, sealing and saving batches
//! discover.rs  which files to follow: scans, new files, pod label filters, metadata, forgetting
//! read.rs      reading the followed files in turns, rate limits, lag
//! file.rs      one followed file: identity, position, partial line, parser state
//! ```

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
use crate::shared::{lock, FollowerMsg, Shared, ShipMsg};

mod discover;
mod file;
mod read;

pub(crate) use file::{FollowedFile, Kind, LineCtx};

/// Chunks read from one file before moving to the next (fairness between files).
const CHUNKS_PER_TURN: usize = 4;
/// A rotated file idle this long at its end is released (its writer has moved on).
const RELEASE_GRACE: Duration = Duration::from_secs(1);
/// A detached identity (its file truncated) waits this long for a copy to turn up.
const DETACHED_TTL: Duration = Duration::from_secs(600);
/// Longest sleep when idle: how often the open files are looked at for new data without a
/// notification saying so.
const IDLE_TICK: Duration = Duration::from_millis(250);
/// The same while file-system notifications come for every directory read: they announce new
/// data, and the look is a safety net.
const NOTIFIED_IDLE_TICK: Duration = Duration::from_secs(2);
/// While notifications come, the directories are rescanned this many times less often than
/// `rescan_interval` (they announce new and removed files; the rescan is a safety net). At a
/// thousand files, a rescan a second cost about 5 % of a core on an idle node.
const NOTIFIED_RESCAN_FACTOR: u32 = 10;
/// Shortest interval between two event-triggered scans.
const SCAN_DEBOUNCE: Duration = Duration::from_millis(50);

/// A multiline rule with its namespace matcher (any namespace when `None`) and container
/// matcher.
pub type MultilineMatch = (Option<GlobMatcher>, GlobMatcher, Arc<MultilineRule>);

/// What the follower is told to do.
pub struct FollowerConfig {
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
    pub multiline: Vec<MultilineMatch>,
    pub redactor: Option<Redactor>,
    pub rate_limits: Vec<(GlobMatcher, RateLimit)>,
    pub drop_policy: DropPolicy,
    /// Kubernetes metadata, when watched.
    pub kube: Option<Metadata>,
}

/// The follower's state; see the module docs.
pub struct Follower {
    cfg: FollowerConfig,
    shared: Arc<Shared>,
    rx: Receiver<FollowerMsg>,
    ship: UnboundedSender<ShipMsg>,
    entries: HashMap<String, FollowedFile>,
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
    /// Where in `entries`' (stable while unchanged) order the next reading turn starts: where
    /// the last one found its batch full.
    read_cursor: usize,
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

impl Follower {
    /// A follower; `hints` are the positions of sources in batches left in the buffer.
    pub fn new(
        cfg: FollowerConfig,
        shared: Arc<Shared>,
        rx: Receiver<FollowerMsg>,
        tx: std::sync::mpsc::Sender<FollowerMsg>,
        ship: UnboundedSender<ShipMsg>,
        hints: HashMap<String, Position>,
    ) -> Follower {
        let mut wanted = vec![(cfg.pods_dir.clone(), true), (cfg.spool_dir.clone(), false)];
        for p in &cfg.audit_paths {
            if let Some(dir) = p.parent() {
                wanted.push((dir.to_path_buf(), false));
            }
        }
        let watcher = DirWatcher::new(wanted, tx, FollowerMsg::Fs);
        Follower {
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
            scratch: Vec::with_capacity(file::CHUNK),
            read_cursor: 0,
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
            let mut msgs: Vec<FollowerMsg> = first.into_iter().collect();
            msgs.extend(self.rx.try_iter());
            for msg in msgs {
                match msg {
                    FollowerMsg::Fs(FsEvent::Structure) => self.scan_due = true,
                    FollowerMsg::Fs(FsEvent::Data) | FollowerMsg::Wake => {}
                    FollowerMsg::Rewind {
                        source,
                        mark,
                        reply,
                    } => {
                        let _ = reply.send(self.rewind(&source, mark));
                    }
                    FollowerMsg::Stop { seal } => {
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
                .is_none_or(|t| now.duration_since(t) >= self.rescan_every());
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

    /// How often the directories are rescanned: `rescan_interval`, or less often while
    /// notifications come for them.
    fn rescan_every(&self) -> Duration {
        if self.watcher.active() {
            self.cfg.rescan_interval * NOTIFIED_RESCAN_FACTOR
        } else {
            self.cfg.rescan_interval
        }
    }

    fn next_timeout(&self) -> Duration {
        if self.busy {
            return Duration::ZERO;
        }
        let now = Instant::now();
        let idle = if self.watcher.active() {
            NOTIFIED_IDLE_TICK
        } else {
            IDLE_TICK
        };
        let next_scan = self.last_scan.map_or(Duration::ZERO, |at| {
            (at + self.rescan_every()).saturating_duration_since(now)
        });
        let mut t = idle.min(next_scan);
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

    /// Re-reads `source` from the indexer's `mark`; see [`FollowerMsg::Rewind`].
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
        let Follower {
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
                let resume = |id: &str| entries.get(id).map(FollowedFile::resume_point);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::fake::{PodLog, WriteMode};
    use std::collections::{BTreeMap, BTreeSet};

    /// The rate a `[[collector.rate_limits]]` rule claims is the rate the reader hands lines
    /// on, measured on a fake clock that jumps to each moment the reader would wake up at: a
    /// burst of 20 at once, then exactly one line every 5 ms (200/s) until all 400 are read,
    /// at 1.9 s; the other namespace's lines all at once.
    /// A follower of `cc`'s pods directory with its data under `root/data`, batches never old
    /// enough to seal on their own, no rescans.
    fn follower(
        root: &std::path::Path,
        cc: &trawl_config::CollectorConfig,
        rate_limits: Vec<(GlobMatcher, RateLimit)>,
    ) -> Follower {
        let data = root.join("data");
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
        let cfg = FollowerConfig {
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
            rate_limits,
            drop_policy: DropPolicy::Block,
            kube: None,
        };
        Follower::new(cfg, shared, rx, tx, ship, HashMap::new())
    }

    /// Many files and small batches: each reading turn starts where the last one found its
    /// batch full and goes round, so that turns do not look again at the files drained before;
    /// every line of every file is still read exactly once, in order, and the files take turns.
    #[test]
    fn turns_go_round_the_files_and_every_line_is_read_once_in_order() {
        let root = tempfile::tempdir().unwrap();
        let mut config = crate::tests::fake::config(root.path());
        config.collector.batch_max_bytes = 2_000;
        let cc = &config.collector;
        let mut seq = 0;
        for p in 0..40 {
            let mut log = PodLog::new(
                &cc.pods_dir,
                "shop",
                &format!("web-{p}"),
                &format!("uid-{p}"),
                "app",
            );
            for n in 0..(20 + p) {
                log.write(
                    &mut seq,
                    &format!("pod {p:02} line {n:03}"),
                    WriteMode::Whole,
                );
            }
        }
        let mut reader = follower(root.path(), cc, Vec::new());
        reader.scan();
        assert_eq!(reader.entries.len(), 40);
        let mut read: BTreeMap<String, Vec<u64>> = BTreeMap::new();
        let mut cursors = BTreeSet::new();
        let mut turns = 0;
        loop {
            turns += 1;
            assert!(turns < 10_000, "the reader never finished");
            reader.read_all_at(Instant::now());
            cursors.insert(reader.read_cursor);
            if let Some(batch) = reader.logs.seal(&|_| None) {
                for s in &batch.sources {
                    read.entry(s.path.clone()).or_default().extend(&s.offsets);
                }
            }
            if !reader.busy && reader.logs.is_empty() {
                break;
            }
        }
        assert_eq!(read.len(), 40);
        for (path, offsets) in &read {
            let p: usize = path
                .split("web-")
                .nth(1)
                .and_then(|rest| rest.split('_').next())
                .and_then(|n| n.parse().ok())
                .unwrap();
            assert_eq!(offsets.len(), 20 + p, "{path}: every line once");
            assert!(offsets.windows(2).all(|w| w[0] < w[1]), "{path}: in order");
        }
        assert!(
            cursors.len() > 10,
            "turns start at many places, not always at the first file: {cursors:?}"
        );
    }

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
        let mut reader = follower(
            root.path(),
            cc,
            vec![(
                globset::Glob::new("noisy-*").unwrap().compile_matcher(),
                RateLimit {
                    namespace: "noisy-*".into(),
                    lines_per_sec: 200,
                    burst: 20,
                },
            )],
        );
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
