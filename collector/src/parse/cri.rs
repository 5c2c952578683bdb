//! The CRI log format (containerd, CRI-O): `<RFC3339Nano> <stdout|stderr> <P|F>[:tags] <message>`.
//!
//! Parsing borrows the message from the line: no allocation per line.

use std::borrow::Cow;

use trawl_model::Timestamp;

use super::{Fragment, ParseError, StdStream};

/// Parses one CRI line, given without its trailing `\n`.
///
/// The message is every byte after the single space that follows the tag, exactly as written
/// (spaces, a trailing `\r` and invalid UTF-8 included). A line that ends right after the tag
/// (`... stdout F`) has an empty message, as does `... stdout F ` . The tag must start with `P`
/// (partial) or `F` (full); anything after that first letter (`F:x`, future tags) is ignored.
pub(crate) fn parse(line: &[u8]) -> Result<Fragment<'_>, ParseError> {
    let ts_end = find_space(line, 0).ok_or(ParseError::Cri("no space after the timestamp"))?;
    let timestamp = parse_timestamp(&line[..ts_end])?;
    let stream_start = ts_end + 1;
    let stream_end =
        find_space(line, stream_start).ok_or(ParseError::Cri("no space after the stream"))?;
    let stream = match &line[stream_start..stream_end] {
        b"stdout" => StdStream::Stdout,
        b"stderr" => StdStream::Stderr,
        _ => return Err(ParseError::Cri("stream is neither stdout nor stderr")),
    };
    let tag_start = stream_end + 1;
    let (tag_end, message) = match find_space(line, tag_start) {
        Some(end) => (end, &line[end + 1..]),
        None => (line.len(), &line[line.len()..]),
    };
    let partial = match line[tag_start..tag_end].first() {
        Some(b'P') => true,
        Some(b'F') => false,
        _ => return Err(ParseError::Cri("tag is neither P nor F")),
    };
    Ok(Fragment {
        timestamp,
        stream,
        partial,
        message: Cow::Borrowed(message),
    })
}

fn find_space(line: &[u8], from: usize) -> Option<usize> {
    line.get(from..)?
        .iter()
        .position(|&b| b == b' ')
        .map(|i| i + from)
}

/// Parses an RFC 3339 timestamp as written by container runtimes
/// (`2026-11-25T10:15:00.123456789Z`, fraction of 0 to 9 digits, `Z` or `±HH:MM`) without
/// allocating; other spellings RFC 3339 allows (leap seconds, more than nine fractional digits,
/// a space or lower-case `t` as separator) go through chrono.
pub(crate) fn parse_timestamp(text: &[u8]) -> Result<Timestamp, ParseError> {
    if let Some(ts) = parse_timestamp_fast(text) {
        return Ok(ts);
    }
    let text = std::str::from_utf8(text).map_err(|_| ParseError::Timestamp)?;
    Timestamp::parse_rfc3339(text).map_err(|_| ParseError::Timestamp)
}

fn digits(text: &[u8], at: usize, n: usize) -> Option<u32> {
    let mut value = 0u32;
    for &b in text.get(at..at + n)? {
        if !b.is_ascii_digit() {
            return None;
        }
        value = value * 10 + u32::from(b - b'0');
    }
    Some(value)
}

fn parse_timestamp_fast(t: &[u8]) -> Option<Timestamp> {
    if t.len() < 20 || t[4] != b'-' || t[7] != b'-' || t[10] != b'T' || t[13] != b':' {
        return None;
    }
    if t[16] != b':' {
        return None;
    }
    let year = digits(t, 0, 4)?;
    let month = digits(t, 5, 2)?;
    let day = digits(t, 8, 2)?;
    let hour = digits(t, 11, 2)?;
    let minute = digits(t, 14, 2)?;
    let second = digits(t, 17, 2)?;
    if !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let mut at = 19;
    let mut nanos = 0u32;
    if t[at] == b'.' {
        at += 1;
        let frac_start = at;
        while at < t.len() && t[at].is_ascii_digit() {
            at += 1;
        }
        let n = at - frac_start;
        if n == 0 || n > 9 {
            return None;
        }
        nanos = digits(t, frac_start, n)? * 10u32.pow(9 - n as u32);
    }
    let offset_secs: i64 = match t.get(at..)? {
        b"Z" => 0,
        [sign @ (b'+' | b'-'), rest @ ..] if rest.len() == 5 && rest[2] == b':' => {
            let oh = i64::from(digits(rest, 0, 2)?);
            let om = i64::from(digits(rest, 3, 2)?);
            if oh > 23 || om > 59 {
                return None;
            }
            let secs = oh * 3600 + om * 60;
            if *sign == b'-' {
                -secs
            } else {
                secs
            }
        }
        _ => return None,
    };
    let days = days_from_civil(i64::from(year), month, day);
    let secs = days * 86_400 + i64::from(hour) * 3600 + i64::from(minute) * 60 + i64::from(second)
        - offset_secs;
    secs.checked_mul(1_000_000_000)?
        .checked_add(i64::from(nanos))
        .map(Timestamp)
}

fn is_leap(year: u32) -> bool {
    year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400))
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from((month + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(text: &str) -> Timestamp {
        Timestamp::parse_rfc3339(text).unwrap()
    }

    #[test]
    fn full_line() {
        let frag = parse(b"2026-11-25T10:15:00.123456789Z stdout F hello world").unwrap();
        assert_eq!(frag.timestamp, ts("2026-11-25T10:15:00.123456789Z"));
        assert_eq!(frag.stream, StdStream::Stdout);
        assert!(!frag.partial);
        assert_eq!(&*frag.message, b"hello world");
        assert!(matches!(frag.message, Cow::Borrowed(_)));
    }

    #[test]
    fn message_bytes_are_kept_exactly() {
        let frag = parse(b"2026-11-25T10:15:00Z stderr P   two  spaces \r").unwrap();
        assert_eq!(frag.stream, StdStream::Stderr);
        assert!(frag.partial);
        assert_eq!(&*frag.message, b"  two  spaces \r");
    }

    #[test]
    fn empty_messages() {
        for line in [
            &b"2026-11-25T10:15:00Z stdout F "[..],
            b"2026-11-25T10:15:00Z stdout F",
        ] {
            let frag = parse(line).unwrap();
            assert!(!frag.partial);
            assert_eq!(&*frag.message, b"");
        }
    }

    #[test]
    fn future_tags_are_tolerated() {
        let frag = parse(b"2026-11-25T10:15:00Z stdout F:x msg").unwrap();
        assert!(!frag.partial);
        assert_eq!(&*frag.message, b"msg");
        let frag = parse(b"2026-11-25T10:15:00Z stdout P:y:z msg").unwrap();
        assert!(frag.partial);
    }

    #[test]
    fn malformed_lines() {
        let cases: [(&[u8], &str); 7] = [
            (b"", "no space after the timestamp"),
            (b"hello world", "invalid timestamp"),
            (b"2026-11-25T10:15:00Z", "no space after the timestamp"),
            (b"2026-11-25T10:15:00Z stdout", "no space after the stream"),
            (b"2026-11-25T10:15:00Z stdin F x", "stream is neither"),
            (b"2026-11-25T10:15:00Z stdout X x", "tag is neither"),
            (b"2026-11-25T10:15:00Z stdout  x", "tag is neither"),
        ];
        for (line, want) in cases {
            let err = parse(line).unwrap_err().to_string();
            assert!(err.contains(want), "{line:?}: {err}");
        }
    }

    #[test]
    fn timestamps_match_chrono() {
        for text in [
            "2026-11-25T10:15:00Z",
            "2026-11-25T10:15:00.1Z",
            "2026-11-25T10:15:00.000000001Z",
            "2026-11-25T10:15:00.123456789+01:00",
            "2026-11-25T10:15:00.5-09:30",
            "2024-02-29T23:59:59.999999999Z",
            "1970-01-01T00:00:00Z",
            "1969-12-31T23:59:59.5Z",
            "2000-03-01T00:00:00Z",
            "1700-03-01T12:00:00Z",
            "2262-04-11T23:47:16.854775807Z",
        ] {
            assert_eq!(
                parse_timestamp_fast(text.as_bytes()),
                Some(ts(text)),
                "{text}"
            );
        }
    }

    #[test]
    fn timestamp_fallback_and_errors() {
        // Leap second and ten fractional digits are not on the fast path but still parse.
        assert!(parse_timestamp_fast(b"2026-11-25T10:15:00.1234567891Z").is_none());
        assert_eq!(
            parse_timestamp(b"2026-11-25T10:15:00.1234567891Z").unwrap(),
            ts("2026-11-25T10:15:00.123456789Z")
        );
        assert_eq!(
            parse_timestamp(b"2026-11-25t10:15:00z").unwrap(),
            ts("2026-11-25T10:15:00Z")
        );
        for bad in [
            &b"2026-02-30T10:15:00Z"[..],
            b"2026-13-01T10:15:00Z",
            b"2026-11-25T24:00:00Z",
            b"2026-11-25T10:15:00",
            b"2026-11-25T10:15:00.Z",
            b"2300-01-01T00:00:00Z",
            b"\xff\xfe",
        ] {
            assert!(parse_timestamp(bad).is_err(), "{bad:?}");
        }
    }
}
