//! Which files the follower follows: scans of the pods directory, the audit logs and the
//! webhook spool; new files admitted (identity, checkpoint, pod label filters); metadata
//! refreshed; files gone forgotten.

use super::*;
use crate::identity::Fingerprint;

impl Follower {
    pub(super) fn scan(&mut self) {
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

    pub(super) fn check_pending(&mut self) {
        let pending: Vec<_> = self.pending.drain().collect();
        let mut seen = HashSet::new();
        for (path, f) in pending {
            self.consider(path, f, &mut seen);
        }
    }

    /// Looks at one file found by a scan: a known inode (renamed, grown again), a new file, a
    /// copy carrying the identity of a detached source.
    pub(super) fn consider(&mut self, path: PathBuf, found: Found, seen: &mut HashSet<(u64, u64)>) {
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
        if self.known_inode(key, &path, live, md.len()) {
            return;
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
        if self.entries.contains_key(&id) {
            self.attach(&id, file, key, path, live);
        } else {
            self.follow_new(id, kind, fp, path, live, file, key, md.len());
        }
    }

    /// A file whose inode is followed already: a rename is noted, `live` updated. `true` when
    /// that is all there is to do (the file is attached, or released and not grown since).
    fn known_inode(&mut self, key: (u64, u64), path: &Path, live: bool, size: u64) -> bool {
        let Some(e) = self
            .by_inode
            .get(&key)
            .and_then(|id| self.entries.get_mut(id))
        else {
            return false;
        };
        if e.file.is_some() {
            if e.path != path {
                debug!(from = %e.path_str, to = %path.display(), "file renamed");
                self.shared.metrics.clear_lag(&e.path_str);
                e.path_str = path.to_string_lossy().into_owned();
                e.path = path.to_path_buf();
            }
            e.live = live;
            return true;
        }
        if e.released_size.is_some_and(|released| size <= released) {
            e.live = live;
            return true;
        }
        false
    }

    /// A file with the identity `id` of a followed file: attached to it (its reading goes on
    /// where the identity's stopped), unless the identity's own file still holds it.
    fn attach(&mut self, id: &str, file: File, key: (u64, u64), path: PathBuf, live: bool) {
        if let Some(e) = self.entries.get(id) {
            if let Some(attached) = &e.file {
                // A copy of a file still attached (copytruncate copies, then truncates): it
                // takes over once the original no longer holds the identity's first line.
                if still_matches(attached, &e.fp).unwrap_or(true) {
                    return;
                }
                self.detach(id);
            }
        }
        let Some(e) = self.entries.get_mut(id) else {
            return;
        };
        if e.inode != key && self.by_inode.get(&e.inode).map(String::as_str) == Some(id) {
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
        self.by_inode.insert(key, id.to_string());
        self.shared.metrics.files_tailed.inc();
        self.meta_dirty = true;
    }

    /// Starts following a file of a new identity from its checkpoint (or the position of a
    /// batch still buffered, whichever was acknowledged further), from its start when it is
    /// shorter than that.
    #[allow(clippy::too_many_arguments)]
    fn follow_new(
        &mut self,
        id: String,
        kind: Kind,
        fp: Fingerprint,
        path: PathBuf,
        live: bool,
        file: File,
        key: (u64, u64),
        size: u64,
    ) {
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
        if pos.resume > size {
            warn!(file = %path.display(), source = %id, checkpoint = pos.resume, size,
                "file shorter than its checkpoint, reading it from the start");
            pos = Position::default();
        }
        let rule = match &kind {
            Kind::Container(pf) => self.multiline_rule(&pf.namespace, &pf.container),
            _ => None,
        };
        debug!(file = %path.display(), source = %id, offset = pos.resume, "tailing");
        let entry = FollowedFile::new(
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
        self.shared.metrics.files_tailed.inc();
        self.meta_dirty = true;
    }

    /// Whether a new file of pod `pf` may be read now under the pod label filters. A pod is
    /// decided once, when its first file is found: admitted or excluded by its labels; a pod
    /// whose labels are not known yet has its files wait (in `pending`) up to the configured
    /// wait, then admitted with path metadata only, so that no line is lost to a slow API.
    pub(super) fn admitted_by_labels(&mut self, path: &Path, found: &Found, pf: &PodFile) -> bool {
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
    pub(super) fn refresh_metadata(&mut self) {
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

    pub(super) fn multiline_rule(&self, ns: &str, container: &str) -> Option<Arc<MultilineRule>> {
        self.cfg
            .multiline
            .iter()
            .find(|(n, c, _)| n.as_ref().is_none_or(|n| n.is_match(ns)) && c.is_match(container))
            .map(|(_, _, r)| r.clone())
    }

    /// Forgets released files no longer on disk and detached identities nobody claimed.
    pub(super) fn forget_gone(&mut self, seen: &HashSet<(u64, u64)>) {
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
    pub(super) fn gc_spool(&mut self) {
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
}
