//! Reading the followed files in turns (a few chunks each, for fairness), within the rate
//! limits of their namespaces, and the lag metric.

use super::*;

impl Follower {
    pub(super) fn update_lag(&mut self) {
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

    pub(super) fn read_all(&mut self) {
        self.read_all_at(Instant::now());
    }

    /// Whether this turn may read: nothing is waiting to be saved and the disk buffer has room
    /// (or the policy drops the newest lines instead). The time spent without room is counted
    /// as backpressure once room is back.
    fn has_room(&mut self, now: Instant) -> bool {
        let room = self.unsaved.is_empty()
            && (self.cfg.drop_policy == DropPolicy::DropNewest
                || lock(&self.shared.buffer).has_room());
        match (room, self.blocked_since) {
            (false, None) => self.blocked_since = Some(now),
            (true, Some(since)) => {
                self.shared
                    .metrics
                    .backpressure_seconds
                    .inc_by(now.duration_since(since).as_secs_f64());
                self.blocked_since = None;
            }
            _ => {}
        }
        room
    }

    /// One reading turn as of `now` (passed in, so that tests drive the rate limits on a fake
    /// clock).
    pub(super) fn read_all_at(&mut self, now: Instant) {
        self.refresh_metadata();
        self.busy = false;
        let metrics = self.shared.metrics.clone();
        let room = self.has_room(now);
        let Follower {
            cfg,
            entries,
            limiters,
            logs,
            audit,
            scratch,
            read_cursor,
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
        // Where a full batch stopped this turn: the next turn starts there (see
        // `read_cursor`).
        let mut stopped_at: Option<usize> = None;
        let mut visit = |position: usize, id: &String, e: &mut FollowedFile| {
            if e.file.is_none() {
                return;
            }
            if e.blocked_until.is_some_and(|t| t > now) {
                return;
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
                return;
            }
            if room && builder.bytes() >= cfg.batch_max_bytes {
                // The batch is full: it is sealed after this turn and the next turn comes at
                // once, from this file on. Looking at the other files now would cost a `stat`
                // each, for every batch (a thousand per batch with a thousand files).
                busy = true;
                stopped_at.get_or_insert(position);
                return;
            }
            let Some(Ok(md)) = e.file.as_ref().map(File::metadata) else {
                return;
            };
            let size = md.len();
            if size < e.read_pos {
                detach.push(id.clone());
                return;
            }
            if size > e.read_pos {
                if !room || builder.bytes() >= cfg.batch_max_bytes {
                    busy |= room;
                    if room {
                        stopped_at.get_or_insert(position);
                    }
                    return;
                }
                let Some(file) = e.file.as_ref() else {
                    return;
                };
                match still_matches(file, &e.fp) {
                    Ok(true) => {}
                    Ok(false) => {
                        detach.push(id.clone());
                        return;
                    }
                    Err(err) => {
                        debug!(file = %e.path_str, error = %err, "cannot read");
                        return;
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
                return;
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
        };
        // Round robin: from where the last full batch stopped, around to just before it. A
        // turn that started at the first file again would `stat` every file drained before
        // the ones with data, once per batch.
        let start = if *read_cursor < entries.len() {
            *read_cursor
        } else {
            0
        };
        for (position, (id, e)) in entries.iter_mut().enumerate().skip(start) {
            visit(position, id, e);
        }
        for (position, (id, e)) in entries.iter_mut().enumerate().take(start) {
            visit(position, id, e);
        }
        *read_cursor = stopped_at.unwrap_or(0);
        self.busy = busy;
        // The shared read buffer grows with a long partial line; give it back afterwards.
        if self.scratch.capacity() > 2 * file::CHUNK {
            self.scratch = Vec::with_capacity(file::CHUNK);
        }
        for id in detach {
            self.detach(&id);
        }
        for id in release {
            self.release(&id);
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
