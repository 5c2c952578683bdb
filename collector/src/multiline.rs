//! Joins multi-line entries (stack traces) into one record, per stream.
//!
//! A record whose message matches `first_line_pattern` starts a new entry; a record that does
//! not is appended (after a `\n`) to the open entry of its stream (`\tat ...`, `Caused by:`).
//! An entry is closed by the next first line of its stream, after `max_lines` lines, when the
//! next line would make it longer than `max_bytes`, or when no line has followed for `timeout`
//! ([`MultilineJoiner::poll`]). Split and malformed records are never joined: they close the
//! entry of their stream and pass through.
//!
//! Offsets: an entry spans `[first.start, last.end)`; ends stay strictly increasing (an entry
//! closed after a record of the other stream went out gets that end + 1, as in
//! [`crate::parse::Assembler`]), and [`MultilineJoiner::pending_start`] must be included in the
//! runtime's resume offset like the assembler's. Entries closed by a first line, `max_lines` or
//! `max_bytes` are the same after a restart; entries closed by the timeout depend on timing, so
//! after a restart a record may be grouped differently and part of it delivered twice.

use std::mem;
use std::time::{Duration, Instant};

use regex::Regex;

use crate::parse::{Assembled, ParseError};

#[derive(Debug)]
struct Group {
    rec: Assembled,
    lines: usize,
    updated: Instant,
}

/// Joins records of one container's streams; see the module docs.
#[derive(Debug)]
pub struct MultilineJoiner {
    first_line: Regex,
    max_lines: usize,
    max_bytes: usize,
    timeout: Duration,
    open: [Option<Group>; 2],
    last_end: Option<u64>,
}

impl MultilineJoiner {
    /// A joiner for entries whose first line matches `first_line_pattern`. `max_lines` below 1
    /// is taken as 1 (no joining); `max_bytes` bounds the joined message (use
    /// `max_line_bytes`).
    pub fn new(
        first_line_pattern: &str,
        max_lines: usize,
        timeout: Duration,
        max_bytes: usize,
    ) -> Result<Self, ParseError> {
        let first_line = Regex::new(first_line_pattern).map_err(|e| ParseError::Pattern {
            name: "multiline".to_string(),
            source: Box::new(e),
        })?;
        Ok(MultilineJoiner {
            first_line,
            max_lines: max_lines.max(1),
            max_bytes,
            timeout,
            open: [None, None],
            last_end: None,
        })
    }

    /// A joiner for a `[[collector.multiline]]` rule.
    pub fn from_rule(
        rule: &trawl_config::MultilineRule,
        max_bytes: usize,
    ) -> Result<Self, ParseError> {
        MultilineJoiner::new(
            &rule.first_line_pattern,
            rule.max_lines,
            Duration::from_millis(rule.timeout_ms),
            max_bytes,
        )
    }

    /// Feeds one record (in the order the assembler emitted them); returns the entries it
    /// closed, oldest first.
    pub fn push(&mut self, rec: Assembled, now: Instant) -> Vec<Assembled> {
        let mut out = Vec::new();
        let idx = rec.stream.index();
        if rec.split || rec.malformed {
            self.close(idx, &mut out);
            out.push(self.sealed(rec));
            return out;
        }
        if let Some(group) = self.open[idx].as_mut() {
            let fits = group.rec.message.len() + 1 + rec.message.len() <= self.max_bytes;
            if fits && !self.first_line.is_match(&rec.message) {
                group.rec.message.push('\n');
                group.rec.message.push_str(&rec.message);
                group.rec.end = rec.end;
                group.lines += 1;
                group.updated = now;
                if group.lines >= self.max_lines {
                    self.close(idx, &mut out);
                }
                return out;
            }
            self.close(idx, &mut out);
        }
        self.open[idx] = Some(Group {
            rec,
            lines: 1,
            updated: now,
        });
        if self.max_lines == 1 {
            self.close(idx, &mut out);
        }
        out
    }

    /// Closes the entries to which no line has been added for `timeout`.
    pub fn poll(&mut self, now: Instant) -> Vec<Assembled> {
        let mut out = Vec::new();
        for idx in self.by_start() {
            let expired = self.open[idx]
                .as_ref()
                .is_some_and(|g| now.saturating_duration_since(g.updated) >= self.timeout);
            if expired {
                self.close(idx, &mut out);
            }
        }
        out
    }

    /// Closes every open entry (end of a file).
    pub fn flush(&mut self) -> Vec<Assembled> {
        let mut out = Vec::new();
        for idx in self.by_start() {
            self.close(idx, &mut out);
        }
        out
    }

    /// When [`MultilineJoiner::poll`] next has something to close.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.open
            .iter()
            .flatten()
            .map(|g| g.updated + self.timeout)
            .min()
    }

    /// Offset where the oldest open entry starts: checkpoints must never be past it.
    pub fn pending_start(&self) -> Option<u64> {
        self.open.iter().flatten().map(|g| g.rec.start).min()
    }

    /// Stream indexes of the open entries, oldest first.
    fn by_start(&self) -> Vec<usize> {
        let mut idx: Vec<usize> = (0..2).filter(|&i| self.open[i].is_some()).collect();
        idx.sort_by_key(|&i| self.open[i].as_ref().map(|g| g.rec.start));
        idx
    }

    fn close(&mut self, idx: usize, out: &mut Vec<Assembled>) {
        if let Some(group) = mem::take(&mut self.open[idx]) {
            out.push(self.sealed(group.rec));
        }
    }

    fn sealed(&mut self, mut rec: Assembled) -> Assembled {
        if let Some(last) = self.last_end {
            if rec.end <= last {
                rec.end = last.saturating_add(1);
            }
        }
        self.last_end = Some(rec.end);
        rec
    }
}

#[cfg(test)]
mod tests {
    use trawl_model::Timestamp;

    use super::*;
    use crate::parse::StdStream;

    fn rec(stream: StdStream, message: &str, start: u64, end: u64) -> Assembled {
        Assembled {
            timestamp: Timestamp(start as i64),
            stream,
            message: message.to_string(),
            start,
            end,
            split: false,
            malformed: false,
        }
    }

    fn joiner(max_lines: usize) -> MultilineJoiner {
        MultilineJoiner::new(
            r"^\d{4}-\d{2}-\d{2}",
            max_lines,
            Duration::from_secs(1),
            1024,
        )
        .unwrap()
    }

    const TRACE: [&str; 6] = [
        "2026-11-25 10:15:00,123 ERROR [main] c.e.App - request failed",
        "java.lang.IllegalStateException: boom",
        "\tat com.example.App.handle(App.java:42)",
        "\tat com.example.App.main(App.java:10)",
        "Caused by: java.io.IOException: reset",
        "\t... 2 more",
    ];

    #[test]
    fn java_stack_trace_is_one_record() {
        let t0 = Instant::now();
        let mut j = joiner(500);
        let mut out = Vec::new();
        for (i, line) in TRACE.iter().enumerate() {
            let i = i as u64;
            out.extend(j.push(rec(StdStream::Stdout, line, i * 100, i * 100 + 100), t0));
        }
        assert!(out.is_empty());
        assert_eq!(j.pending_start(), Some(0));
        out.extend(j.push(
            rec(
                StdStream::Stdout,
                "2026-11-25 10:15:01,000 INFO next",
                600,
                700,
            ),
            t0,
        ));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].message, TRACE.join("\n"));
        assert_eq!((out[0].start, out[0].end), (0, 600));
        assert_eq!(out[0].timestamp, Timestamp(0));
        assert_eq!(j.pending_start(), Some(600));
        let rest = j.flush();
        assert_eq!(rest[0].message, "2026-11-25 10:15:01,000 INFO next");
        assert_eq!(j.pending_start(), None);
    }

    #[test]
    fn streams_are_joined_separately_and_ends_increase() {
        let t0 = Instant::now();
        let mut j = joiner(500);
        assert!(j
            .push(rec(StdStream::Stdout, "2026-11-25 a", 0, 10), t0)
            .is_empty());
        assert!(j
            .push(rec(StdStream::Stderr, "2026-11-25 b", 10, 20), t0)
            .is_empty());
        assert!(j
            .push(rec(StdStream::Stdout, "\tat x", 20, 30), t0)
            .is_empty());
        let out = j.push(rec(StdStream::Stderr, "2026-11-25 c", 30, 40), t0);
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].message.as_str(), out[0].end), ("2026-11-25 b", 20));
        assert_eq!(j.pending_start(), Some(0));
        let out = j.flush();
        assert_eq!(out[0].message, "2026-11-25 a\n\tat x");
        assert_eq!((out[0].start, out[0].end), (0, 30));
        assert_eq!((out[1].start, out[1].end), (30, 40));
    }

    #[test]
    fn timeout_closes_entries() {
        let t0 = Instant::now();
        let mut j = joiner(500);
        j.push(rec(StdStream::Stdout, "2026-11-25 a", 0, 10), t0);
        j.push(
            rec(StdStream::Stdout, "\tat x", 10, 20),
            t0 + Duration::from_millis(500),
        );
        assert_eq!(j.next_deadline(), Some(t0 + Duration::from_millis(1500)));
        assert!(j.poll(t0 + Duration::from_millis(1499)).is_empty());
        let out = j.poll(t0 + Duration::from_millis(1500));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].message, "2026-11-25 a\n\tat x");
        assert_eq!(j.next_deadline(), None);
        // A continuation line with nothing open starts its own entry.
        j.push(rec(StdStream::Stdout, "\tat y", 20, 30), t0);
        assert_eq!(j.flush()[0].message, "\tat y");
    }

    #[test]
    fn max_lines_and_max_bytes_close_entries() {
        let t0 = Instant::now();
        let mut j = joiner(3);
        assert!(j
            .push(rec(StdStream::Stdout, "2026-11-25 a", 0, 10), t0)
            .is_empty());
        assert!(j.push(rec(StdStream::Stdout, "b", 10, 20), t0).is_empty());
        let out = j.push(rec(StdStream::Stdout, "c", 20, 30), t0);
        assert_eq!(out[0].message, "2026-11-25 a\nb\nc");
        assert_eq!(j.pending_start(), None);

        let mut j = MultilineJoiner::new("^S", 100, Duration::from_secs(1), 8).unwrap();
        j.push(rec(StdStream::Stdout, "S1234", 0, 10), t0);
        let out = j.push(rec(StdStream::Stdout, "xyz", 10, 20), t0);
        assert_eq!(out[0].message, "S1234");
        assert_eq!(j.flush()[0].message, "xyz");
    }

    #[test]
    fn split_and_malformed_pass_through() {
        let t0 = Instant::now();
        let mut j = joiner(500);
        j.push(rec(StdStream::Stdout, "2026-11-25 a", 0, 10), t0);
        let mut bad = rec(StdStream::Stdout, "\tat garbage", 10, 20);
        bad.malformed = true;
        let out = j.push(bad, t0);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].message, "2026-11-25 a");
        assert!(out[1].malformed);
    }

    /// The lines of fluent-bit's `dockermode_firstline_detection.log` sample, once assembled.
    #[test]
    fn first_line_detection_like_the_fluent_bit_sample() {
        let t0 = Instant::now();
        let mut j = joiner(500);
        let lines = [
            "Single log",
            "Second log",
            "Third log",
            "2020-03-24 Multiple lines: ",
            "first bullet point",
            "second bullet point",
            "third bullet point",
            "fourth bullet point",
            "2020-03-24 Single line",
        ];
        let mut out = Vec::new();
        for (i, line) in lines.iter().enumerate() {
            let i = i as u64;
            out.extend(j.push(rec(StdStream::Stdout, line, i * 10, i * 10 + 10), t0));
        }
        out.extend(j.flush());
        let got: Vec<&str> = out.iter().map(|r| r.message.as_str()).collect();
        assert_eq!(
            got,
            [
                "Single log\nSecond log\nThird log",
                "2020-03-24 Multiple lines: \nfirst bullet point\nsecond bullet point\n\
                 third bullet point\nfourth bullet point",
                "2020-03-24 Single line",
            ]
        );
        assert_eq!((out[1].start, out[1].end), (30, 80));
    }

    #[test]
    fn invalid_pattern_is_an_error() {
        let err = MultilineJoiner::new("(", 10, Duration::from_secs(1), 10).unwrap_err();
        assert!(err.to_string().contains("multiline"), "{err}");
    }
}
