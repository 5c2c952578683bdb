//! Joins fragments into records, bounds their size, and gives each record the byte range of the
//! file it came from.
//!
//! # Joining
//!
//! Partial fragments (CRI `P`, docker `log` without `\n`) are joined per stream: stdout and
//! stderr write into the same file and their partial lines may interleave, so each stream has
//! its own pending record. A record is complete at the first non-partial fragment of its
//! stream.
//!
//! # Long records
//!
//! A record longer than `max_line_bytes` is never dropped: it is emitted in chunks of at most
//! `max_line_bytes` bytes, each flagged `split`, whose concatenation is the record. The pending
//! buffer of a stream never holds more than `max_line_bytes` bytes. Chunks are cut:
//!
//! - at a line boundary when the pending part and the next fragment do not fit together (the
//!   pending part is emitted alone and the fragment starts a new pending part), so that the cut
//!   is a place a restart can resume from;
//! - inside one fragment only when that fragment alone is longer than `max_line_bytes`, on a
//!   UTF-8 character boundary (the bound applies to the raw bytes; `U+FFFD` replacement of
//!   invalid bytes may lengthen the text). A fragment cut by the runtime in the middle of a
//!   character and then cut again here at the line boundary yields a `U+FFFD` on each side.
//!
//! # Offsets and checkpoints
//!
//! Every record carries `[start, end)`:
//!
//! - `start` is the offset of the first line of the record (the record's `offset` field),
//!   always a line boundary. Every part of a split record has the same `start`, and
//!   [`Assembler::pending_start`] stays there until the record's last part is out.
//! - `end` is strictly greater than the `end` of every record this assembler emitted before, so
//!   that "end ≤ acknowledged end" means "already delivered". It is the end of the record's
//!   last line, except: a chunk cut at a line boundary ends at the next line's start + 1; the
//!   pieces of one over-long line (all but the last) end at that line's start + 1 + the bytes
//!   of the line emitted so far; and an end that would not be larger than the previous one
//!   (interleaved streams at [`Assembler::flush`], degenerate offsets) becomes previous + 1.
//!   Such ends lie inside a line; the rule below never resumes from them.
//!
//! The runtime's contract, which the `restart_from_checkpoint_*` proptest checks against a
//! model of crashes:
//!
//! - resume offset = min(the position read so far, [`Assembler::pending_start`], the `start`
//!   of every emitted record not yet acknowledged). It is always a line boundary;
//! - persist with it `acked_end`, the `end` of the last acknowledged record. After a restart,
//!   read from the resume offset with a new assembler and discard records whose
//!   `end <= acked_end`.
//!
//! Why this neither loses nor duplicates text: every record with a part not yet acknowledged
//! starts at or after the resume offset, so it is rebuilt whole, with the same parts, text,
//! offsets, timestamp and flags (a malformed line, which has no time of its own, may get another
//! one). A record that began before the resume offset was acknowledged
//! entirely; the lines of it read again end, at the latest, at its last line, so whatever they
//! form ends at or before its `end` and is discarded. The price: a record that never ends (a
//! program writing partial lines forever) holds the checkpoint at its first line.

use std::mem;

use trawl_model::Timestamp;

use super::{Fragment, StdStream};

/// A complete record (or a chunk of an over-long one), ready for enrichment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assembled {
    /// Time of the record's first fragment; for a malformed line, the time of the last
    /// well-formed fragment seen (the time of parsing if there was none).
    pub timestamp: Timestamp,
    /// Stdout for malformed lines, whose stream is unknown.
    pub stream: StdStream,
    /// The joined message, lossy UTF-8 (see the module docs of [`crate::parse`]).
    pub message: String,
    /// Offset of the record's first line; see the module docs.
    pub start: u64,
    /// Strictly increasing across records; see the module docs.
    pub end: u64,
    /// Part of a record longer than `max_line_bytes`.
    pub split: bool,
    /// A line that did not parse, kept as raw text.
    pub malformed: bool,
}

/// A record in progress on one stream.
#[derive(Debug)]
struct Open {
    /// Bytes not emitted yet; at most `max` of them.
    buf: Vec<u8>,
    /// Offset of the record's first line: the `start` of every part of it.
    start: u64,
    /// End of the record's last line so far.
    last_end: u64,
    /// Time of the record's first fragment.
    timestamp: Timestamp,
    /// Parts of the record were already emitted.
    split: bool,
}

/// Joins fragments into records; see the module docs for long records and offsets.
#[derive(Debug)]
pub struct Assembler {
    max: usize,
    /// The record in progress on each stream, indexed by [`StdStream::index`].
    open: [Option<Open>; 2],
    last_end: Option<u64>,
    last_timestamp: Option<Timestamp>,
}

impl Assembler {
    /// `max_line_bytes` below 4 is raised to 4, so that any character fits in a chunk.
    pub fn new(max_line_bytes: usize) -> Self {
        Assembler {
            max: max_line_bytes.max(4),
            open: [None, None],
            last_end: None,
            last_timestamp: None,
        }
    }

    /// Feeds one physical line occupying bytes `[start, end)` of the file (`end` includes the
    /// `'\n'`). Returns 0, 1 or more complete records (more than one when a record exceeds
    /// `max_line_bytes` and is split). Lines must be fed in file order.
    pub fn push(&mut self, frag: Fragment<'_>, start: u64, end: u64) -> Vec<Assembled> {
        let mut out = Vec::new();
        self.push_into(frag, start, end, &mut out);
        out
    }

    /// [`Assembler::push`], appending the records to `out` (a buffer the caller reuses).
    pub fn push_into(
        &mut self,
        frag: Fragment<'_>,
        start: u64,
        end: u64,
        out: &mut Vec<Assembled>,
    ) {
        let stream = frag.stream;
        let idx = stream.index();
        self.last_timestamp = Some(frag.timestamp);
        let msg: &[u8] = &frag.message;
        let mut open = self.open[idx].take().unwrap_or(Open {
            buf: Vec::new(),
            start,
            last_end: end,
            timestamp: frag.timestamp,
            split: false,
        });
        open.last_end = end;

        // The bytes held and this line do not fit together: emit the held bytes alone, so that
        // the cut falls on a line boundary.
        if !open.buf.is_empty() && open.buf.len() + msg.len() > self.max {
            let buf = mem::take(&mut open.buf);
            let cut_end = self.seal(start.saturating_add(1));
            out.push(record(
                buf,
                stream,
                open.start,
                cut_end,
                open.timestamp,
                true,
                false,
            ));
            open.split = true;
        }

        if open.buf.is_empty() {
            let emitted = out.len();
            let rest = self.emit_pieces(msg, stream, &open, start, false, out);
            open.split |= out.len() > emitted;
            if frag.partial {
                open.buf = rest.to_vec();
                self.open[idx] = Some(open);
            } else {
                let end = self.seal(end);
                out.push(Assembled {
                    timestamp: open.timestamp,
                    stream,
                    message: String::from_utf8_lossy(rest).into_owned(),
                    start: open.start,
                    end,
                    split: open.split,
                    malformed: false,
                });
            }
            return;
        }

        let needed = open.buf.len() + msg.len();
        if needed > open.buf.capacity() {
            let want = needed.max(open.buf.capacity() * 2).min(self.max);
            open.buf.reserve_exact(want - open.buf.len());
        }
        open.buf.extend_from_slice(msg);
        if frag.partial {
            self.open[idx] = Some(open);
        } else {
            let end = self.seal(end);
            out.push(record(
                open.buf,
                stream,
                open.start,
                end,
                open.timestamp,
                open.split,
                false,
            ));
        }
    }

    /// Records the malformed physical line `[start, end)` as its own record (raw text, lossy
    /// UTF-8, `malformed` set, stream stdout), split like any record if it is over-long.
    /// Records in progress are left alone.
    pub fn push_malformed(&mut self, raw: &[u8], start: u64, end: u64) -> Vec<Assembled> {
        let mut out = Vec::new();
        let line = Open {
            buf: Vec::new(),
            start,
            last_end: end,
            timestamp: self.last_timestamp.unwrap_or_else(Timestamp::now),
            split: false,
        };
        let stream = StdStream::Stdout;
        let rest = self.emit_pieces(raw, stream, &line, start, true, &mut out);
        let end = self.seal(end);
        out.push(Assembled {
            timestamp: line.timestamp,
            stream,
            message: String::from_utf8_lossy(rest).into_owned(),
            start,
            end,
            split: !out.is_empty(),
            malformed: true,
        });
        out
    }

    /// Offset of the first line of the oldest record in progress (some of whose parts may
    /// already have been emitted), if any: checkpoints must never be past it.
    pub fn pending_start(&self) -> Option<u64> {
        self.open.iter().flatten().map(|o| o.start).min()
    }

    /// Emits the oldest record in progress as it is (at EOF of a rotated file that will not
    /// grow again). There may be one per stream: call until `None`, or use
    /// [`Assembler::flush_all`]. A record whose parts were all emitted already is closed
    /// without emitting anything more.
    pub fn flush(&mut self) -> Option<Assembled> {
        loop {
            let idx = (0..2)
                .filter(|&i| self.open[i].is_some())
                .min_by_key(|&i| self.open[i].as_ref().map(|o| o.start))?;
            let open = self.open[idx].take()?;
            if open.split && open.buf.is_empty() {
                continue;
            }
            let stream = if idx == 0 {
                StdStream::Stdout
            } else {
                StdStream::Stderr
            };
            let end = self.seal(open.last_end);
            return Some(record(
                open.buf,
                stream,
                open.start,
                end,
                open.timestamp,
                open.split,
                false,
            ));
        }
    }

    /// Emits every record in progress, oldest first.
    pub fn flush_all(&mut self) -> Vec<Assembled> {
        std::iter::from_fn(|| self.flush()).collect()
    }

    /// Bytes held for records in progress (at most `max_line_bytes` per stream).
    pub fn pending_bytes(&self) -> usize {
        self.open.iter().flatten().map(|o| o.buf.len()).sum()
    }

    /// Emits `max`-sized pieces of the message of the line starting at `line_start`, as parts
    /// of `rec`, leaving at most `max` bytes, which it returns.
    fn emit_pieces<'m>(
        &mut self,
        msg: &'m [u8],
        stream: StdStream,
        rec: &Open,
        line_start: u64,
        malformed: bool,
        out: &mut Vec<Assembled>,
    ) -> &'m [u8] {
        let mut rest = msg;
        let mut consumed = 0u64;
        while rest.len() > self.max {
            let cut = char_cut(rest, self.max);
            consumed += cut as u64;
            let end = self.seal(line_start.saturating_add(1).saturating_add(consumed));
            out.push(Assembled {
                timestamp: rec.timestamp,
                stream,
                message: String::from_utf8_lossy(&rest[..cut]).into_owned(),
                start: rec.start,
                end,
                split: true,
                malformed,
            });
            rest = &rest[cut..];
        }
        rest
    }

    /// The end to give the next record: `natural`, or one past the previous end if that is not
    /// larger.
    fn seal(&mut self, natural: u64) -> u64 {
        let end = match self.last_end {
            Some(last) if natural <= last => last.saturating_add(1),
            _ => natural,
        };
        self.last_end = Some(end);
        end
    }
}

fn record(
    buf: Vec<u8>,
    stream: StdStream,
    start: u64,
    end: u64,
    timestamp: Timestamp,
    split: bool,
    malformed: bool,
) -> Assembled {
    let message = match String::from_utf8(buf) {
        Ok(text) => text,
        Err(err) => String::from_utf8_lossy(err.as_bytes()).into_owned(),
    };
    Assembled {
        timestamp,
        stream,
        message,
        start,
        end,
        split,
        malformed,
    }
}

/// Where to cut `bytes` (longer than `max`, `max >= 4`) so that the first part holds at most
/// `max` bytes and ends on a character boundary; at `max` when the bytes are not valid UTF-8
/// there.
fn char_cut(bytes: &[u8], max: usize) -> usize {
    (max - 3..=max)
        .rev()
        .find(|&cut| bytes[cut] & 0xC0 != 0x80)
        .unwrap_or(max)
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use proptest::prelude::*;

    use super::*;
    use crate::parse::{parse_line, LogFormat};

    const T0: Timestamp = Timestamp(1_764_065_700_000_000_000);

    fn frag(stream: StdStream, partial: bool, msg: &[u8]) -> Fragment<'_> {
        Fragment {
            timestamp: T0,
            stream,
            partial,
            message: Cow::Borrowed(msg),
        }
    }

    /// Feeds whole lines of a file (each ending in `\n`) as the runtime would.
    fn feed(asm: &mut Assembler, format: LogFormat, file: &[u8]) -> Vec<Assembled> {
        let mut out = Vec::new();
        let mut pos = 0usize;
        while let Some(nl) = file[pos..].iter().position(|&b| b == b'\n') {
            let line = &file[pos..pos + nl];
            let (start, end) = (pos as u64, (pos + nl + 1) as u64);
            match parse_line(format, line) {
                Ok(f) => out.extend(asm.push(f, start, end)),
                Err(_) => out.extend(asm.push_malformed(line, start, end)),
            }
            pos += nl + 1;
        }
        out
    }

    fn messages(records: &[Assembled]) -> Vec<&str> {
        records.iter().map(|r| r.message.as_str()).collect()
    }

    #[test]
    fn full_line_is_one_record() {
        let mut asm = Assembler::new(1024);
        let file = b"2026-11-25T10:15:00Z stdout F hello\n";
        let out = feed(&mut asm, LogFormat::Cri, file);
        assert_eq!(
            out,
            vec![Assembled {
                timestamp: Timestamp::parse_rfc3339("2026-11-25T10:15:00Z").unwrap(),
                stream: StdStream::Stdout,
                message: "hello".into(),
                start: 0,
                end: file.len() as u64,
                split: false,
                malformed: false,
            }]
        );
        assert_eq!(asm.pending_start(), None);
    }

    #[test]
    fn partials_are_joined() {
        let mut asm = Assembler::new(1024);
        let file = b"2026-11-25T10:15:00.1Z stdout P one \n\
                     2026-11-25T10:15:00.2Z stdout P two \n\
                     2026-11-25T10:15:00.3Z stdout F three\n\
                     2026-11-25T10:15:00.4Z stdout F \n";
        let out = feed(&mut asm, LogFormat::Cri, file);
        let ends = line_ends(file);
        assert_eq!(messages(&out), vec!["one two three", ""]);
        assert_eq!((out[0].start, out[0].end), (0, ends[2]));
        assert_eq!(
            out[0].timestamp,
            Timestamp::parse_rfc3339("2026-11-25T10:15:00.1Z").unwrap()
        );
        assert_eq!((out[1].start, out[1].end), (ends[2], ends[3]));
        assert!(!out[0].split);
    }

    #[test]
    fn streams_join_separately() {
        let mut asm = Assembler::new(1024);
        assert!(asm
            .push(frag(StdStream::Stdout, true, b"out-a "), 0, 10)
            .is_empty());
        let err = asm.push(frag(StdStream::Stderr, false, b"err"), 10, 20);
        assert_eq!(messages(&err), vec!["err"]);
        assert_eq!((err[0].start, err[0].end), (10, 20));
        assert_eq!(asm.pending_start(), Some(0));
        let out = asm.push(frag(StdStream::Stdout, false, b"out-b"), 20, 30);
        assert_eq!(messages(&out), vec!["out-a out-b"]);
        assert_eq!((out[0].start, out[0].end), (0, 30));
        assert_eq!(asm.pending_start(), None);
    }

    #[test]
    fn partial_at_eof_stays_pending_until_flush() {
        let mut asm = Assembler::new(1024);
        let file = b"2026-11-25T10:15:00Z stdout P no newline yet\n";
        assert!(feed(&mut asm, LogFormat::Cri, file).is_empty());
        assert_eq!(asm.pending_start(), Some(0));
        assert_eq!(asm.pending_bytes(), 14);
        let rec = asm.flush().unwrap();
        assert_eq!(rec.message, "no newline yet");
        assert_eq!((rec.start, rec.end), (0, file.len() as u64));
        assert_eq!(asm.flush(), None);
        assert_eq!(asm.pending_start(), None);
    }

    #[test]
    fn flush_emits_both_streams_with_increasing_ends() {
        let mut asm = Assembler::new(1024);
        asm.push(frag(StdStream::Stdout, true, b"a"), 0, 10);
        asm.push(frag(StdStream::Stderr, true, b"b"), 10, 20);
        let out = asm.push(frag(StdStream::Stdout, false, b"c"), 20, 30);
        assert_eq!((out[0].start, out[0].end), (0, 30));
        asm.push(frag(StdStream::Stdout, true, b"d"), 30, 40);
        let out = asm.flush_all();
        assert_eq!(messages(&out), vec!["b", "d"]);
        // stderr's own last line ended at 20, but 30 was already handed out.
        assert_eq!((out[0].start, out[0].end), (10, 31));
        assert_eq!((out[1].start, out[1].end), (30, 40));
    }

    #[test]
    fn invalid_utf8_is_replaced_not_dropped() {
        let mut asm = Assembler::new(1024);
        let out = asm.push(frag(StdStream::Stdout, false, b"caf\xc3 ok \xff"), 0, 10);
        assert_eq!(out[0].message, "caf\u{fffd} ok \u{fffd}");
        // A character cut between two partial fragments is put back together.
        asm.push(frag(StdStream::Stdout, true, b"caf\xc3"), 10, 20);
        let out = asm.push(frag(StdStream::Stdout, false, b"\xa9!"), 20, 30);
        assert_eq!(out[0].message, "café!");
    }

    #[test]
    fn five_mib_record_in_one_line_is_split_in_five() {
        let max = 1024 * 1024;
        let text: String = (0..5 * max)
            .map(|i| char::from(b'a' + (i % 26) as u8))
            .collect();
        let mut asm = Assembler::new(max);
        let line_end = text.len() as u64 + 40;
        let out = asm.push(frag(StdStream::Stdout, false, text.as_bytes()), 0, line_end);
        assert_eq!(out.len(), 5);
        assert!(out
            .iter()
            .all(|r| r.split && r.message.len() == max && r.start == 0));
        assert_eq!(out.concat_messages(), text);
        assert_eq!(out.last().unwrap().end, line_end);
        assert!(out.windows(2).all(|w| w[0].end < w[1].end));
        assert_eq!(asm.pending_bytes(), 0);
    }

    #[test]
    fn five_mib_record_in_16k_fragments_is_split_in_five_on_line_boundaries() {
        let max = 1024 * 1024;
        let piece = 16 * 1024;
        let text: Vec<u8> = (0..5 * max).map(|i| b'a' + (i % 26) as u8).collect();
        let mut asm = Assembler::new(max);
        let mut out = Vec::new();
        let n = text.len() / piece;
        let line_len = piece as u64 + 40;
        for (i, chunk) in text.chunks(piece).enumerate() {
            let start = i as u64 * line_len;
            out.extend(asm.push(
                frag(StdStream::Stdout, i + 1 < n, chunk),
                start,
                start + line_len,
            ));
            assert!(asm.pending_bytes() <= max);
        }
        assert_eq!(out.len(), 5);
        assert!(out.iter().all(|r| r.split && r.message.len() == max));
        assert_eq!(out.concat_messages().as_bytes(), &text[..]);
        // Every chunk starts at the record's first line; a cut chunk ends just inside the next
        // line, and the record holds the checkpoint back until its last chunk.
        assert!(out.iter().all(|r| r.start == 0));
        assert_eq!(out[0].end, 64 * line_len + 1);
        assert_eq!(out[4].end, n as u64 * line_len);
    }

    #[test]
    fn line_boundary_cut_keeps_the_rest_pending() {
        let mut asm = Assembler::new(10);
        assert!(asm
            .push(frag(StdStream::Stdout, true, b"aaaaaa"), 0, 10)
            .is_empty());
        let out = asm.push(frag(StdStream::Stdout, true, b"bbbbbb"), 10, 20);
        assert_eq!(messages(&out), vec!["aaaaaa"]);
        assert_eq!((out[0].start, out[0].end, out[0].split), (0, 11, true));
        assert_eq!(asm.pending_start(), Some(0));
        let out = asm.push(frag(StdStream::Stdout, false, b"c"), 20, 30);
        assert_eq!(messages(&out), vec!["bbbbbbc"]);
        assert_eq!((out[0].start, out[0].end, out[0].split), (0, 30, true));
        assert_eq!(asm.pending_start(), None);
        // The next record is whole again.
        let out = asm.push(frag(StdStream::Stdout, false, b"d"), 30, 40);
        assert!(!out[0].split);
    }

    #[test]
    fn docker_split_lines_like_the_fluent_bit_samples() {
        let file = br#"{"log":"2020-03-24 Multiple lines: \n","stream":"stdout","time":"2020-03-24T10:00:00.000000001Z"}
{"log":"third ","stream":"stdout","time":"2020-03-24T10:00:00.000000002Z"}
{"log":"bullet ","stream":"stderr","time":"2020-03-24T10:00:00.000000003Z"}
{"log":"bullet ","stream":"stdout","time":"2020-03-24T10:00:00.000000004Z"}
{"log":"point\n","stream":"stdout","time":"2020-03-24T10:00:00.000000005Z"}
{"log":"point\n","stream":"stderr","time":"2020-03-24T10:00:00.000000006Z"}
{"log":"2020-03-24 Single "}
{"log":"li"}
{"log":"ne\n"}
not json at all
"#;
        let mut asm = Assembler::new(1024);
        let out = feed(&mut asm, LogFormat::Docker, file);
        assert_eq!(
            messages(&out),
            vec![
                "2020-03-24 Multiple lines: ",
                "third bullet point",
                "bullet point",
                "2020-03-24 Single line",
                "not json at all",
            ]
        );
        assert_eq!(out[1].stream, StdStream::Stdout);
        assert_eq!(
            out[1].timestamp,
            Timestamp::parse_rfc3339("2020-03-24T10:00:00.000000002Z").unwrap()
        );
        assert_eq!(out[2].stream, StdStream::Stderr);
        assert!(out[4].malformed && !out[3].malformed);
        assert_eq!(out[4].end, file.len() as u64);
        assert!(out.windows(2).all(|w| w[0].end < w[1].end));
    }

    #[test]
    fn malformed_lines_flush_nothing() {
        let mut asm = Assembler::new(8);
        asm.push(frag(StdStream::Stdout, true, b"pend"), 0, 10);
        let out = asm.push_malformed(b"garbage \xff line", 10, 30);
        assert_eq!(messages(&out), vec!["garbage ", "\u{fffd} line"]);
        assert!(out.iter().all(|r| r.malformed && r.split && r.start == 10));
        assert_eq!(out[0].timestamp, T0);
        assert_eq!(out[1].end, 30);
        assert_eq!(asm.pending_start(), Some(0));
        let out = asm.push(frag(StdStream::Stdout, false, b"ing"), 30, 40);
        assert_eq!(messages(&out), vec!["pending"]);
        assert!(!out[0].split);
    }

    #[test]
    fn char_cut_respects_boundaries() {
        assert_eq!(char_cut("aaaé".as_bytes(), 4), 3);
        assert_eq!(char_cut("a😀b".as_bytes(), 4), 1);
        assert_eq!(char_cut("abcdef".as_bytes(), 4), 4);
        assert_eq!(char_cut(b"\x80\x80\x80\x80\x80\x80", 4), 4);
    }

    trait Concat {
        fn concat_messages(&self) -> String;
    }

    impl Concat for Vec<Assembled> {
        fn concat_messages(&self) -> String {
            self.iter().map(|r| r.message.as_str()).collect()
        }
    }

    /// A random log file: (stream, partial, message) per line, as CRI lines; a message
    /// starting with `!` makes a malformed line of that text alone.
    fn lines() -> impl Strategy<Value = Vec<(bool, bool, String)>> {
        prop::collection::vec((any::<bool>(), any::<bool>(), "!?[a-zé😀 ]{0,24}"), 0..40)
    }

    fn cri_file(lines: &[(bool, bool, String)]) -> Vec<u8> {
        let mut file = Vec::new();
        for (stderr, partial, msg) in lines {
            let stream = if *stderr { "stderr" } else { "stdout" };
            let tag = if *partial { "P" } else { "F" };
            let line = if msg.starts_with('!') {
                format!("{msg}\n")
            } else {
                format!("2026-11-25T10:15:00Z {stream} {tag} {msg}\n")
            };
            file.extend_from_slice(line.as_bytes());
        }
        file
    }

    /// Line ends (offsets after each `\n`) of a file.
    fn line_ends(file: &[u8]) -> Vec<u64> {
        file.iter()
            .enumerate()
            .filter(|(_, &b)| b == b'\n')
            .map(|(i, _)| i as u64 + 1)
            .collect()
    }

    proptest! {
        #[test]
        fn random_partials_reassemble_exactly(
            text in prop::collection::vec(any::<u8>(), 0..300),
            cuts in prop::collection::vec(0usize..300, 0..10),
        ) {
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(text.len())).collect();
            cuts.push(0);
            cuts.push(text.len());
            cuts.sort_unstable();
            let mut asm = Assembler::new(1024);
            let mut out = Vec::new();
            for (i, w) in cuts.windows(2).enumerate() {
                let last = i + 2 == cuts.len();
                let start = i as u64 * 1000;
                out.extend(asm.push(
                    frag(StdStream::Stdout, !last, &text[w[0]..w[1]]),
                    start,
                    start + 1000,
                ));
            }
            prop_assert_eq!(out.len(), 1);
            prop_assert_eq!(&out[0].message, &String::from_utf8_lossy(&text).into_owned());
            prop_assert_eq!(out[0].start, 0);
            prop_assert!(!out[0].split);
        }

        #[test]
        fn split_records_concatenate_to_the_original(
            lines in lines(),
            max in 4usize..40,
        ) {
            let file = cri_file(&lines);
            let mut asm = Assembler::new(max);
            let mut out = feed(&mut asm, LogFormat::Cri, &file);
            prop_assert!(asm.pending_bytes() <= 2 * max);
            out.extend(asm.flush_all());
            prop_assert!(out.windows(2).all(|w| w[0].end < w[1].end));
            for stderr in [false, true] {
                let stream = if stderr { StdStream::Stderr } else { StdStream::Stdout };
                let want: String = lines
                    .iter()
                    .filter(|l| l.0 == stderr && !l.2.starts_with('!'))
                    .map(|l| l.2.as_str())
                    .collect();
                let got: String = out
                    .iter()
                    .filter(|r| r.stream == stream && !r.malformed)
                    .map(|r| r.message.as_str())
                    .collect();
                prop_assert_eq!(got, want);
                prop_assert!(out.iter().all(|r| r.message.len() <= max));
            }
        }

        /// Simulates a crash: records up to `acked` were acknowledged, the checkpoint was taken
        /// after reading line `read`; a restart following the module's contract delivers exactly
        /// the records that were not acknowledged, identical in every field.
        #[test]
        fn restart_from_checkpoint_neither_loses_nor_duplicates(
            lines in lines(),
            max in 4usize..40,
            acked_frac in 0.0f64..=1.0,
            read_frac in 0.0f64..=1.0,
        ) {
            let file = cri_file(&lines);
            let ends = line_ends(&file);
            // First run, remembering after which line each record came out.
            let mut asm = Assembler::new(max);
            let mut records: Vec<(usize, Assembled)> = Vec::new();
            let mut pending_after = Vec::new();
            let mut start = 0u64;
            for (i, &end) in ends.iter().enumerate() {
                let line = &file[start as usize..end as usize - 1];
                let out = match parse_line(LogFormat::Cri, line) {
                    Ok(f) => asm.push(f, start, end),
                    Err(_) => asm.push_malformed(line, start, end),
                };
                records.extend(out.into_iter().map(|r| (i, r)));
                pending_after.push(asm.pending_start());
                start = end;
            }
            let acked = ((records.len() as f64) * acked_frac) as usize;
            // The checkpoint is taken after reading line `read`, at or after the line that
            // produced the last acknowledged record.
            let min_read = if acked == 0 { 0 } else { records[acked - 1].0 };
            if ends.is_empty() {
                return Ok(());
            }
            let read = min_read + ((ends.len() - 1 - min_read) as f64 * read_frac) as usize;
            let mut resume = ends[read];
            if let Some(p) = pending_after[read] {
                resume = resume.min(p);
            }
            for (line, rec) in &records[acked..] {
                if *line <= read {
                    resume = resume.min(rec.start);
                }
            }
            let acked_end = if acked == 0 { None } else { Some(records[acked - 1].1.end) };
            prop_assert!(resume == 0 || ends.contains(&resume), "resume {} not a line boundary", resume);

            // Second run from the resume offset.
            let mut asm = Assembler::new(max);
            let mut again = Vec::new();
            let mut start = resume;
            for &end in ends.iter().filter(|&&e| e > resume) {
                let line = &file[start as usize..end as usize - 1];
                again.extend(match parse_line(LogFormat::Cri, line) {
                    Ok(f) => asm.push(f, start, end),
                    Err(_) => asm.push_malformed(line, start, end),
                });
                start = end;
            }
            // A malformed line has no time of its own: it takes the last one seen, which a
            // restart may not have seen.
            let timeless = |mut r: Assembled| {
                if r.malformed {
                    r.timestamp = Timestamp(0);
                }
                r
            };
            let delivered: Vec<Assembled> = again
                .into_iter()
                .filter(|r| acked_end.is_none_or(|a| r.end > a))
                .map(timeless)
                .collect();
            let want: Vec<Assembled> =
                records[acked..].iter().map(|(_, r)| timeless(r.clone())).collect();
            prop_assert_eq!(delivered, want);
        }
    }
}
