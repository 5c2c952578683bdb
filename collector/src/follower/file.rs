//! One followed file: identity, read position, partial line, parser state and records held back.
//!
//! Offsets (see [`crate::parse`] and [`crate::batch`]): `read_pos` is the next byte to read;
//! `carry` holds the bytes of an unfinished line just before it; `cursor` is the envelope offset
//! of the next record (the `end` of the previous one); records whose `end` is at most
//! `discard_upto` were delivered before a restart or rewind and are dropped when rebuilt.

use std::collections::VecDeque;
use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{debug, warn};

use crate::batch::BatchBuilder;
use crate::identity::{read_full_at, Fingerprint, PodFile};
use crate::jsonw::FileParts;
use crate::kube::Enrichment;
use crate::metrics::Metrics;
use crate::multiline::MultilineJoiner;
use crate::parse::{detect_format, parse_line, Assembled, Assembler, LogFormat};
use crate::ratelimit::RateLimiter;
use crate::records::{audit_record, write_log_record, Stamp};
use crate::redact::Redactor;

/// Bytes read from a file at once.
pub const CHUNK: usize = 64 * 1024;
/// Records a drained file keeps room for (a chunk can build hundreds; the room is released).
pub const HELD_KEEP: usize = 16;
/// Capacity a file's partial-line buffer may keep beyond twice its content.
pub const CARRY_KEEP: usize = 4 * 1024;
/// Physical audit lines may be this long before they are cut (RequestResponse events of large
/// objects are big); container lines are bounded by twice `max_line_bytes` plus room for the
/// CRI or docker framing.
pub const AUDIT_MAX_LINE: usize = 8 * 1024 * 1024;

/// What a file holds.
#[derive(Debug, Clone)]
pub enum Kind {
    /// A container log file, with what its path says.
    Container(Arc<PodFile>),
    /// A Kubernetes audit log file (or a rotated sibling).
    Audit,
    /// A segment of the webhook spool.
    Spool,
}

/// A record built and not yet handed to a batch.
#[derive(Debug)]
pub struct Built {
    /// Offset of its first line (bounds the resume offset).
    pub start: u64,
    /// Its end (see [`crate::parse::Assembled::end`]).
    pub end: u64,
    /// Its JSON.
    pub json: Vec<u8>,
}

/// Parser state of a container log file.
#[derive(Debug)]
struct LogParser {
    format: Option<LogFormat>,
    assembler: Assembler,
    multiline: Option<MultilineJoiner>,
}

/// What line processing needs from the reader.
pub struct LineCtx<'a> {
    pub stamp: &'a Stamp,
    pub redactor: Option<&'a Redactor>,
    pub metrics: &'a Metrics,
    pub max_line_bytes: usize,
    pub now: Instant,
}

/// One source: a file identity and where reading it stands.
#[derive(Debug)]
pub struct FollowedFile {
    pub id: String,
    pub kind: Kind,
    pub fp: Fingerprint,
    pub path: PathBuf,
    pub path_str: String,
    /// The file its writer still appends to (not rotated away, not deleted).
    pub live: bool,
    /// Open while tailed; `None` once released (read to its end) or detached (its inode was
    /// truncated or rewritten; waiting for a copy with the same fingerprint).
    pub file: Option<File>,
    /// (device, inode) of the file last attached.
    pub inode: (u64, u64),
    /// Size at release, for a released file (a rotated file that grows again is reopened).
    pub released_size: Option<u64>,
    pub read_pos: u64,
    carry: Vec<u8>,
    pub discard_upto: u64,
    pub cursor: u64,
    parser: Option<LogParser>,
    multiline_rule: Option<Arc<trawl_config::MultilineRule>>,
    pub held: VecDeque<Built>,
    front_counted: bool,
    /// Reading waits until then (rate limit).
    pub blocked_until: Option<Instant>,
    /// Last time bytes were read (a rotated file idle for a while is released).
    pub last_activity: Instant,
    /// When it was detached.
    pub detached_at: Option<Instant>,
    /// Kubernetes metadata of a container file's pod, when known.
    pub meta: Option<Arc<Enrichment>>,
    /// The cache version `meta` was built from (0: never looked up).
    pub meta_version: u64,
    /// What every record of this file holds, written once, and the `meta_version` it was
    /// written with.
    parts: Option<(u64, FileParts)>,
    /// The records of the line being processed (emptied after each line).
    assembled: Vec<Assembled>,
}

impl FollowedFile {
    /// A new source read from `resume`, dropping rebuilt records ending at or before `acked`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: String,
        kind: Kind,
        fp: Fingerprint,
        path: PathBuf,
        live: bool,
        file: File,
        inode: (u64, u64),
        resume: u64,
        acked: u64,
        multiline_rule: Option<Arc<trawl_config::MultilineRule>>,
        max_line_bytes: usize,
    ) -> FollowedFile {
        let mut entry = FollowedFile {
            id,
            kind,
            fp,
            path_str: path.to_string_lossy().into_owned(),
            path,
            live,
            file: Some(file),
            inode,
            released_size: None,
            read_pos: resume,
            carry: Vec::new(),
            discard_upto: acked,
            cursor: acked,
            parser: None,
            multiline_rule,
            held: VecDeque::new(),
            front_counted: false,
            blocked_until: None,
            last_activity: Instant::now(),
            detached_at: None,
            meta: None,
            meta_version: 0,
            parts: None,
            assembled: Vec::new(),
        };
        entry.reset_parser(max_line_bytes);
        entry
    }

    fn reset_parser(&mut self, max_line_bytes: usize) {
        self.parser = match self.kind {
            Kind::Container(_) => {
                let multiline = self.multiline_rule.as_ref().and_then(|rule| {
                    MultilineJoiner::from_rule(rule, max_line_bytes)
                        .inspect_err(
                            |e| warn!(file = %self.path_str, error = %e, "multiline rule ignored"),
                        )
                        .ok()
                });
                Some(LogParser {
                    format: None,
                    assembler: Assembler::new(max_line_bytes),
                    multiline,
                })
            }
            Kind::Audit | Kind::Spool => None,
        };
    }

    /// The line boundary a re-read must start from so that no record after the ones already
    /// handed to a batch is lost: the earliest of the unread bytes, the pending fragments and
    /// multi-line entries, and the records held back.
    pub fn resume_point(&self) -> u64 {
        let mut resume = self.read_pos - self.carry.len() as u64;
        if let Some(p) = &self.parser {
            if let Some(s) = p.assembler.pending_start() {
                resume = resume.min(s);
            }
            if let Some(s) = p
                .multiline
                .as_ref()
                .and_then(MultilineJoiner::pending_start)
            {
                resume = resume.min(s);
            }
        }
        if let Some(b) = self.held.front() {
            resume = resume.min(b.start);
        }
        resume
    }

    /// Forgets everything not yet handed to a batch and re-reads from `resume`, dropping
    /// records that end at or before `mark`; the next record's envelope offset is `mark`.
    pub fn reset_to(&mut self, resume: u64, mark: u64, max_line_bytes: usize) {
        self.read_pos = resume;
        self.carry = Vec::new();
        self.discard_upto = mark;
        self.cursor = mark;
        self.held.clear();
        self.front_counted = false;
        self.blocked_until = None;
        self.reset_parser(max_line_bytes);
    }

    /// Detaches the file (truncated or rewritten under us): the identity keeps its place, to
    /// continue from a copy with the same fingerprint if one turns up.
    pub fn detach(&mut self, max_line_bytes: usize) {
        let resume = self.resume_point();
        let mark = self.cursor;
        self.reset_to(resume, mark, max_line_bytes);
        self.file = None;
        self.released_size = None;
        self.detached_at = Some(Instant::now());
    }

    fn max_physical_line(&self, max_line_bytes: usize) -> usize {
        match self.kind {
            Kind::Container(_) => max_line_bytes.saturating_mul(2).saturating_add(4096),
            Kind::Audit | Kind::Spool => AUDIT_MAX_LINE.max(max_line_bytes),
        }
    }

    /// Reads up to `max_chunks` chunks between `read_pos` and `size`, turning complete lines
    /// into held records. `scratch` is the reader's shared read buffer. Returns bytes read.
    pub fn read_available(
        &mut self,
        size: u64,
        max_chunks: usize,
        scratch: &mut Vec<u8>,
        ctx: &LineCtx<'_>,
    ) -> std::io::Result<u64> {
        let mut total = 0u64;
        for _ in 0..max_chunks {
            if self.read_pos >= size {
                break;
            }
            let Some(file) = self.file.as_ref() else {
                break;
            };
            let want = (size - self.read_pos).min(CHUNK as u64) as usize;
            scratch.clear();
            scratch.extend_from_slice(&self.carry);
            let carried = scratch.len();
            scratch.resize(carried + want, 0);
            let n = read_full_at(file, &mut scratch[carried..], self.read_pos)?;
            scratch.truncate(carried + n);
            if n == 0 {
                break;
            }
            self.read_pos += n as u64;
            total += n as u64;
            self.last_activity = ctx.now;
            let base = self.read_pos - scratch.len() as u64;
            let mut line_start = 0usize;
            while let Some(i) = scratch[line_start..].iter().position(|&b| b == b'\n') {
                let start = base + line_start as u64;
                let end = start + i as u64 + 1;
                self.process_line(start, &scratch[line_start..line_start + i], end, ctx);
                line_start += i + 1;
            }
            let rest = &scratch[line_start..];
            if rest.len() > self.max_physical_line(ctx.max_line_bytes) {
                // A line this long without '\n' is cut here, so that memory stays bounded.
                let start = base + line_start as u64;
                warn!(file = %self.path_str, offset = start, "line without end longer than the limit, cut");
                let end = start + rest.len() as u64;
                let rest = rest.to_vec();
                self.process_line(start, &rest, end, ctx);
                self.carry.clear();
            } else {
                self.carry.clear();
                self.carry.extend_from_slice(rest);
            }
            // A file keeps no more than its partial line (and a little room): after a long
            // line the buffer goes back down, so a thousand idle files hold kilobytes, not the
            // size of the longest line each ever had.
            if self.carry.capacity() > CARRY_KEEP.max(2 * self.carry.len()) {
                self.carry.shrink_to(self.carry.len().max(CARRY_KEEP / 4));
            }
            if !self.held.is_empty() {
                // Held back by a rate limit: read no further until they leave.
                break;
            }
        }
        Ok(total)
    }

    /// The file will not grow again (rotated and drained, or deleted): an unterminated last
    /// line becomes a record, pending fragments and multi-line entries are emitted.
    pub fn finish(&mut self, ctx: &LineCtx<'_>) {
        if !self.carry.is_empty() {
            let carry = std::mem::take(&mut self.carry);
            let start = self.read_pos - carry.len() as u64;
            self.process_line(start, &carry, self.read_pos, ctx);
        }
        let mut out = Vec::new();
        if let Some(p) = self.parser.as_mut() {
            for a in p.assembler.flush_all() {
                match p.multiline.as_mut() {
                    Some(m) => out.extend(m.push(a, ctx.now)),
                    None => out.push(a),
                }
            }
            if let Some(m) = p.multiline.as_mut() {
                out.extend(m.flush());
            }
        }
        for a in out {
            self.emit(a, ctx);
        }
    }

    /// Closes multi-line entries that waited past their timeout.
    pub fn poll_timeouts(&mut self, ctx: &LineCtx<'_>) {
        let out = match self.parser.as_mut().and_then(|p| p.multiline.as_mut()) {
            Some(m) if m.next_deadline().is_some_and(|d| d <= ctx.now) => m.poll(ctx.now),
            _ => return,
        };
        for a in out {
            self.emit(a, ctx);
        }
    }

    /// One physical line `[start, end)` (`line` without its `'\n'`).
    fn process_line(&mut self, start: u64, line: &[u8], end: u64, ctx: &LineCtx<'_>) {
        match &self.kind {
            Kind::Container(_) => self.process_log_line(start, line, end, ctx),
            Kind::Audit | Kind::Spool => {
                if line.iter().all(u8::is_ascii_whitespace) || end <= self.discard_upto {
                    return;
                }
                match audit_record(ctx.stamp, line) {
                    Ok(json) => self.held.push_back(Built { start, end, json }),
                    Err(e) => {
                        ctx.metrics.parse_failures.inc();
                        warn!(file = %self.path_str, offset = start, error = %e, "audit line skipped");
                    }
                }
            }
        }
    }

    fn process_log_line(&mut self, start: u64, line: &[u8], end: u64, ctx: &LineCtx<'_>) {
        let Some(p) = self.parser.as_mut() else {
            return;
        };
        if p.format.is_none() {
            p.format = detect_format(line);
        }
        // The records of a line go through a buffer kept per file (no allocation per line).
        let mut assembled = std::mem::take(&mut self.assembled);
        match p.format.map(|f| parse_line(f, line)) {
            Some(Ok(frag)) => p.assembler.push_into(frag, start, end, &mut assembled),
            other => {
                ctx.metrics.parse_failures.inc();
                if let Some(Err(e)) = other {
                    debug!(file = %self.path_str, offset = start, error = %e, "malformed line kept raw");
                }
                assembled.extend(p.assembler.push_malformed(line, start, end));
            }
        };
        if let Some(m) = p.multiline.as_mut() {
            let mut out = Vec::with_capacity(assembled.len());
            for a in assembled.drain(..) {
                out.extend(m.push(a, ctx.now));
            }
            for a in out {
                self.emit(a, ctx);
            }
        } else {
            for a in assembled.drain(..) {
                self.emit(a, ctx);
            }
        }
        self.assembled = assembled;
    }

    fn emit(&mut self, a: Assembled, ctx: &LineCtx<'_>) {
        if a.end <= self.discard_upto {
            return;
        }
        let Kind::Container(pod) = &self.kind else {
            return;
        };
        let parts = match &mut self.parts {
            Some((version, parts)) if *version == self.meta_version => parts,
            slot => {
                let parts = FileParts::new(ctx.stamp, pod, self.meta.as_deref(), &self.path_str);
                &mut slot.insert((self.meta_version, parts)).1
            }
        };
        let mut json = Vec::new();
        write_log_record(&mut json, parts, &a, ctx.redactor);
        self.held.push_back(Built {
            start: a.start,
            end: a.end,
            json,
        });
    }

    /// Hands held records to `builder`, as far as `limiter` allows. Returns whether all left.
    pub fn drain_held(
        &mut self,
        mut limiter: Option<&mut RateLimiter>,
        builder: &mut BatchBuilder,
        metrics: &Metrics,
        now: Instant,
    ) -> bool {
        while let Some(front) = self.held.front() {
            if let Some(l) = limiter.as_deref_mut() {
                if !l.try_take(1, now) {
                    if !self.front_counted {
                        metrics.rate_limited_records.inc();
                        self.front_counted = true;
                    }
                    let wait = l.wait_time(1, now).max(Duration::from_millis(1));
                    self.blocked_until = Some(now + wait);
                    return false;
                }
            }
            self.front_counted = false;
            builder.push(
                &self.id,
                &self.path_str,
                self.cursor,
                front.end,
                &front.json,
            );
            self.cursor = front.end;
            metrics.records_read.inc();
            self.held.pop_front();
        }
        self.blocked_until = None;
        // One chunk's records passed through here; a thousand files each keeping room for
        // hundreds of them would hold megabytes for nothing.
        if self.held.capacity() > HELD_KEEP {
            self.held = VecDeque::new();
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::fingerprint_file;

    fn pod() -> Kind {
        Kind::Container(Arc::new(PodFile {
            namespace: "ns".into(),
            pod: "p".into(),
            pod_uid: "u".into(),
            container: "c".into(),
            restart: 0,
            rotated: false,
        }))
    }

    fn entry(path: &std::path::Path, resume: u64, acked: u64) -> FollowedFile {
        let file = File::open(path).unwrap();
        let fp = fingerprint_file(&file).unwrap().unwrap();
        FollowedFile::new(
            "id".into(),
            pod(),
            fp,
            path.to_path_buf(),
            false,
            file,
            (0, 0),
            resume,
            acked,
            None,
            1024,
        )
    }

    fn messages(e: &FollowedFile) -> Vec<String> {
        e.held
            .iter()
            .map(|b| {
                let r: trawl_model::LogRecord = serde_json::from_slice(&b.json).unwrap();
                r.message
            })
            .collect()
    }

    const LINES: &str = "2026-11-25T10:15:00.1Z stdout F one\n\
                         2026-11-25T10:15:00.2Z stdout P tw\n\
                         2026-11-25T10:15:00.3Z stdout F o\n\
                         2026-11-25T10:15:00.4Z stdout P thr";

    #[test]
    fn partial_groups_bound_the_resume_offset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        std::fs::write(&path, LINES).unwrap();
        let mut e = entry(&path, 0, 0);
        let metrics = Metrics::default();
        let stamp = Stamp::default();
        let ctx = LineCtx {
            stamp: &stamp,
            redactor: None,
            metrics: &metrics,
            max_line_bytes: 1024,
            now: Instant::now(),
        };
        let size = LINES.len() as u64;
        let mut scratch = Vec::new();
        assert_eq!(e.read_available(size, 4, &mut scratch, &ctx).unwrap(), size);
        assert_eq!(messages(&e), vec!["one", "two"]);
        // The last line has no '\n': it is held as a partial line, the resume offset is its
        // start.
        let last = LINES.rfind("2026").unwrap() as u64;
        assert_eq!(e.resume_point(), 0);
        let mut b = BatchBuilder::new("logs");
        assert!(e.drain_held(None, &mut b, &metrics, ctx.now));
        assert_eq!(e.resume_point(), last);
        assert_eq!(e.cursor, last);
        // At the end of a rotated file, the partial line becomes a record.
        e.finish(&ctx);
        assert_eq!(messages(&e), vec!["thr"]);
        assert!(e.drain_held(None, &mut b, &metrics, ctx.now));
        assert_eq!(e.resume_point(), size);
        let batch = b.seal(&|_| None).unwrap();
        assert_eq!(batch.sources[0].offsets, vec![0, 36, last]);
        assert_eq!(batch.sources[0].end, size);
    }

    #[test]
    fn records_delivered_before_are_discarded_on_reread() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        std::fs::write(&path, LINES).unwrap();
        // Acknowledged up to the end of "two" (resume at its line start would also be valid).
        let two_end = LINES.find("F o\n").unwrap() as u64 + 4;
        let mut e = entry(&path, 0, two_end);
        let metrics = Metrics::default();
        let stamp = Stamp::default();
        let ctx = LineCtx {
            stamp: &stamp,
            redactor: None,
            metrics: &metrics,
            max_line_bytes: 1024,
            now: Instant::now(),
        };
        let mut scratch = Vec::new();
        e.read_available(LINES.len() as u64, 4, &mut scratch, &ctx)
            .unwrap();
        assert!(messages(&e).is_empty());
        e.finish(&ctx);
        assert_eq!(messages(&e), vec!["thr"]);
        let mut b = BatchBuilder::new("logs");
        e.drain_held(None, &mut b, &metrics, ctx.now);
        let batch = b.seal(&|_| None).unwrap();
        assert_eq!(batch.sources[0].start, two_end);
    }

    #[test]
    fn rate_limit_holds_records_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        std::fs::write(&path, LINES).unwrap();
        let mut e = entry(&path, 0, 0);
        let metrics = Metrics::default();
        let stamp = Stamp::default();
        let now = Instant::now();
        let ctx = LineCtx {
            stamp: &stamp,
            redactor: None,
            metrics: &metrics,
            max_line_bytes: 1024,
            now,
        };
        let mut scratch = Vec::new();
        e.read_available(LINES.len() as u64, 4, &mut scratch, &ctx)
            .unwrap();
        let mut limiter = RateLimiter::new(1, 1);
        let mut b = BatchBuilder::new("logs");
        assert!(!e.drain_held(Some(&mut limiter), &mut b, &metrics, now));
        assert_eq!(e.held.len(), 1);
        assert_eq!(metrics.rate_limited_records.get(), 1);
        assert!(e.blocked_until.is_some());
        let later = now + Duration::from_secs(1);
        assert!(e.drain_held(Some(&mut limiter), &mut b, &metrics, later));
        assert_eq!(b.seal(&|_| None).unwrap().record_count(), 2);
    }

    /// The reader's records (direct JSON writer, parts kept per file, buffers reused) are the
    /// records of the simple path: parse, assemble, build a `LogRecord` and serialise it with
    /// serde, line by line. CRI with partial lines on both streams, docker json-file lines
    /// with a partial one, JSON messages with escapes and unicode, a malformed line.
    #[test]
    fn records_match_the_serde_path_through_the_reader() {
        use crate::parse::{parse_line, Assembler};
        let cri = concat!(
            r#"2026-11-25T10:15:00.000000001Z stdout F {"level":"warn","msg":"café \"q\"","n":1}"#,
            "\n",
            r#"2026-11-25T10:15:00.000000002Z stderr P ERROR part one "quoted" "#,
            "\n",
            "2026-11-25T10:15:00.000000003Z stdout F plain ünïcödé 日本 \t tab \u{1}\n",
            "2026-11-25T10:15:00.000000004Z stderr F and part two\n",
            "not a cri line at all\n",
            r#"2026-11-25T10:15:00.000000005Z stdout F {"b":2,"a":{"level":"x"},"b":3}"#,
            "\n",
        );
        let docker = concat!(
            r#"{"log":"hello \"world\"\n","stream":"stdout","time":"2026-11-25T10:15:00.000000001Z"}"#,
            "\n",
            r#"{"log":"{\"level\":\"error\",","stream":"stderr","time":"2026-11-25T10:15:00.000000002Z"}"#,
            "\n",
            r#"{"log":"\"e\":\"\\u263a \u00e9\"}\n","stream":"stderr","time":"2026-11-25T10:15:00.000000003Z"}"#,
            "\n",
            r#"{"log":"WARN last\n","stream":"stdout","time":"2026-11-25T10:15:00.000000004Z"}"#,
            "\n",
        );
        let stamp = Stamp {
            cluster: "c".into(),
            node: "n".into(),
        };
        for text in [cri, docker] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("0.log");
            std::fs::write(&path, text).unwrap();
            let mut e = entry(&path, 0, 0);
            let metrics = Metrics::default();
            let ctx = LineCtx {
                stamp: &stamp,
                redactor: None,
                metrics: &metrics,
                max_line_bytes: 1024,
                now: Instant::now(),
            };
            let mut scratch = Vec::new();
            e.read_available(text.len() as u64, 4, &mut scratch, &ctx)
                .unwrap();
            let got: Vec<serde_json::Value> = e
                .held
                .iter()
                .map(|b| serde_json::from_slice(&b.json).unwrap())
                .collect();

            let Kind::Container(pf) = pod() else {
                unreachable!()
            };
            let mut asm = Assembler::new(1024);
            let mut format = None;
            let mut want = Vec::new();
            let mut start = 0u64;
            for line in text.split_inclusive('\n') {
                let end = start + line.len() as u64;
                let raw = line.trim_end_matches('\n').as_bytes();
                format = format.or_else(|| crate::parse::detect_format(raw));
                let records = match format.map(|f| parse_line(f, raw)) {
                    Some(Ok(frag)) => asm.push(frag, start, end),
                    _ => asm.push_malformed(raw, start, end),
                };
                for a in records {
                    let json =
                        crate::records::log_record_serde(&stamp, &pf, None, &e.path_str, &a, None);
                    want.push(serde_json::from_slice::<serde_json::Value>(&json).unwrap());
                }
                start = end;
            }
            // A malformed line's time is the time of parsing when no line came before it:
            // compare it apart.
            assert_eq!(got.len(), want.len(), "{text}");
            for (g, w) in got.iter().zip(&want) {
                assert_eq!(g["message"], w["message"]);
                if w["attributes"].get("trawl.malformed").is_none() {
                    assert_eq!(g, w);
                }
            }
        }
    }

    /// Regression: a file kept the capacity of its longest partial line (up to 256 KiB) forever.
    #[test]
    fn partial_line_buffer_shrinks_after_a_long_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let first = "2026-11-25T10:15:00.000000001Z stdout F first\n";
        let long = format!(
            "2026-11-25T10:15:00.000000002Z stdout F {}",
            "y".repeat(300_000)
        );
        std::fs::write(&path, format!("{first}{long}")).unwrap();
        let file = File::open(&path).unwrap();
        let fp = fingerprint_file(&file).unwrap().unwrap();
        let mut e = FollowedFile::new(
            "id".into(),
            pod(),
            fp,
            path.clone(),
            true,
            file,
            (0, 0),
            0,
            0,
            None,
            1 << 20,
        );
        let metrics = Metrics::default();
        let stamp = Stamp::default();
        let ctx = LineCtx {
            stamp: &stamp,
            redactor: None,
            metrics: &metrics,
            max_line_bytes: 1 << 20,
            now: Instant::now(),
        };
        let mut scratch = Vec::new();
        let mut b = BatchBuilder::new("logs");
        let size = std::fs::metadata(&path).unwrap().len();
        while e.read_pos < size {
            e.read_available(size, 16, &mut scratch, &ctx).unwrap();
            e.drain_held(None, &mut b, &metrics, ctx.now);
        }
        // The long line is still partial: all of it is carried.
        assert_eq!(e.carry.len(), long.len());
        // It ends, and a short partial line follows.
        let tail = "\n2026-11-25T10:15:00.000000003Z stdout F par";
        std::fs::write(&path, format!("{first}{long}{tail}")).unwrap();
        let size = std::fs::metadata(&path).unwrap().len();
        e.read_available(size, 16, &mut scratch, &ctx).unwrap();
        assert_eq!(e.carry, &tail.as_bytes()[1..]);
        assert!(e.carry.capacity() <= CARRY_KEEP, "{}", e.carry.capacity());
        assert_eq!(e.held.len(), 1);
        assert_eq!(b.seal(&|_| None).unwrap().record_count(), 1);
    }

    /// Regression: every file kept room for the records of its largest chunk once drained
    /// (17 MB over 1,000 files).
    #[test]
    fn drained_files_release_the_room_of_their_records() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let lines: String = (0..500)
            .map(|i| format!("2026-11-25T10:15:00.{i:09}Z stdout F line {i}\n"))
            .collect();
        std::fs::write(&path, &lines).unwrap();
        let mut e = entry(&path, 0, 0);
        let metrics = Metrics::default();
        let stamp = Stamp::default();
        let ctx = LineCtx {
            stamp: &stamp,
            redactor: None,
            metrics: &metrics,
            max_line_bytes: 1024,
            now: Instant::now(),
        };
        let mut scratch = Vec::new();
        e.read_available(lines.len() as u64, 4, &mut scratch, &ctx)
            .unwrap();
        assert_eq!(e.held.len(), 500);
        let mut b = BatchBuilder::new("logs");
        assert!(e.drain_held(None, &mut b, &metrics, ctx.now));
        assert!(e.held.capacity() <= HELD_KEEP, "{}", e.held.capacity());
        assert_eq!(b.seal(&|_| None).unwrap().record_count(), 500);
    }
}
