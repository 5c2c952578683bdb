//! The docker json-file format: `{"log":"text\n","stream":"stdout","time":"2019-...Z"}`.
//!
//! Docker splits long lines into 16 KiB pieces; a piece whose `log` does not end in `\n` is
//! partial and is joined with the next piece of the same stream by the
//! [`Assembler`](super::Assembler). The trailing `\n` is not part of the message.
//!
//! A fast path reads the field order docker writes and borrows the message when the only escape
//! in it is the trailing `\n`; anything else (escapes, other field orders, `attrs`) goes
//! through serde_json, which allocates the unescaped message.

use std::borrow::Cow;

use serde::Deserialize;
use trawl_model::Timestamp;

use super::cri::parse_timestamp;
use super::{Fragment, ParseError, StdStream};

/// Parses one json-file line, given without its trailing `\n`.
///
/// `log` is required. A missing `stream` means stdout; a missing `time` means the time of
/// parsing (some hand-written fixtures omit both; docker always writes them).
pub(crate) fn parse(line: &[u8]) -> Result<Fragment<'_>, ParseError> {
    if let Some(frag) = parse_fast(line) {
        return Ok(frag);
    }
    parse_slow(line)
}

#[derive(Deserialize)]
struct DockerLine<'a> {
    #[serde(borrow)]
    log: Cow<'a, str>,
    #[serde(default, borrow)]
    stream: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    time: Option<Cow<'a, str>>,
}

fn parse_slow(line: &[u8]) -> Result<Fragment<'_>, ParseError> {
    let parsed: DockerLine<'_> = serde_json::from_slice(line)?;
    let stream = match parsed.stream.as_deref() {
        None | Some("stdout") => StdStream::Stdout,
        Some("stderr") => StdStream::Stderr,
        Some(_) => return Err(ParseError::Docker("stream is neither stdout nor stderr")),
    };
    let timestamp = match parsed.time.as_deref() {
        Some(text) => parse_timestamp(text.as_bytes())?,
        None => Timestamp::now(),
    };
    let partial = !parsed.log.ends_with('\n');
    let message = match parsed.log {
        Cow::Borrowed(text) => Cow::Borrowed(text.strip_suffix('\n').unwrap_or(text).as_bytes()),
        Cow::Owned(text) => {
            let mut bytes = text.into_bytes();
            if !partial {
                bytes.pop();
            }
            Cow::Owned(bytes)
        }
    };
    Ok(Fragment {
        timestamp,
        stream,
        partial,
        message,
    })
}

/// `{"log":"<raw>","stream":"<stdout|stderr>","time":"<ts>"}` where `<raw>` holds no
/// backslash except a final `\n`. `None` sends the line to serde_json.
fn parse_fast(line: &[u8]) -> Option<Fragment<'_>> {
    let rest = line.strip_prefix(b"{\"log\":\"")?;
    let mut i = 0;
    let mut backslashes = 0usize;
    let mut last_backslash = 0usize;
    loop {
        match *rest.get(i)? {
            b'"' => break,
            b'\\' => {
                backslashes += 1;
                last_backslash = i;
                i += 2;
            }
            _ => i += 1,
        }
    }
    let raw = &rest[..i];
    let (message, partial) = match backslashes {
        0 => (raw, true),
        1 if last_backslash + 2 == raw.len() && raw[last_backslash + 1] == b'n' => {
            (&raw[..last_backslash], false)
        }
        _ => return None,
    };
    let rest = rest[i..].strip_prefix(b"\",\"stream\":\"")?;
    let (stream, rest) = if let Some(rest) = rest.strip_prefix(b"stdout") {
        (StdStream::Stdout, rest)
    } else {
        (StdStream::Stderr, rest.strip_prefix(b"stderr")?)
    };
    let rest = rest.strip_prefix(b"\",\"time\":\"")?;
    let time = rest.strip_suffix(b"\"}")?;
    let timestamp = parse_timestamp(time).ok()?;
    Some(Fragment {
        timestamp,
        stream,
        partial,
        message: Cow::Borrowed(message),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIME: &str = "2019-03-25T10:15:00.123456789Z";

    fn ts() -> Timestamp {
        Timestamp::parse_rfc3339(TIME).unwrap()
    }

    #[test]
    fn full_line_is_borrowed() {
        let line = format!(r#"{{"log":"hello world\n","stream":"stderr","time":"{TIME}"}}"#);
        let frag = parse(line.as_bytes()).unwrap();
        assert_eq!(&*frag.message, b"hello world");
        assert!(matches!(frag.message, Cow::Borrowed(_)));
        assert!(!frag.partial);
        assert_eq!(frag.stream, StdStream::Stderr);
        assert_eq!(frag.timestamp, ts());
    }

    #[test]
    fn partial_line_has_no_newline() {
        let line = format!(r#"{{"log":"2020-03-24 Single ","stream":"stdout","time":"{TIME}"}}"#);
        let frag = parse(line.as_bytes()).unwrap();
        assert_eq!(&*frag.message, b"2020-03-24 Single ");
        assert!(frag.partial);
        assert_eq!(frag.stream, StdStream::Stdout);
    }

    #[test]
    fn escapes_go_through_serde() {
        let line = format!(
            r#"{{"log":"tab\there \"quoted\" \u003cb\u003e \\ end\n","stream":"stdout","time":"{TIME}"}}"#
        );
        let frag = parse(line.as_bytes()).unwrap();
        assert_eq!(&*frag.message, "tab\there \"quoted\" <b> \\ end".as_bytes());
        assert!(!frag.partial);
        assert_eq!(frag.timestamp, ts());
        // An escaped backslash followed by `n` is not a newline.
        let line = format!(r#"{{"log":"a\\n","stream":"stdout","time":"{TIME}"}}"#);
        let frag = parse(line.as_bytes()).unwrap();
        assert_eq!(&*frag.message, b"a\\n");
        assert!(frag.partial);
    }

    #[test]
    fn other_field_orders_and_attrs() {
        let line =
            format!(r#"{{"time":"{TIME}","attrs":{{"tag":"x"}},"stream":"stderr","log":"msg\n"}}"#);
        let frag = parse(line.as_bytes()).unwrap();
        assert_eq!(&*frag.message, b"msg");
        assert_eq!(frag.stream, StdStream::Stderr);
        assert_eq!(frag.timestamp, ts());
    }

    #[test]
    fn fixture_lines_without_stream_or_time() {
        let frag = parse(br#"{"log":"Single log\n"}"#).unwrap();
        assert_eq!(&*frag.message, b"Single log");
        assert_eq!(frag.stream, StdStream::Stdout);
        assert!(!frag.partial);
        let frag = parse(br#"{"log":"li"}"#).unwrap();
        assert_eq!(&*frag.message, b"li");
        assert!(frag.partial);
    }

    #[test]
    fn empty_log_is_a_partial_of_nothing_and_newline_alone_is_empty() {
        let frag =
            parse(br#"{"log":"\n","stream":"stdout","time":"2019-03-25T10:15:00Z"}"#).unwrap();
        assert_eq!(&*frag.message, b"");
        assert!(!frag.partial);
    }

    #[test]
    fn malformed_lines() {
        for line in [
            &b""[..],
            b"{",
            b"not json",
            br#"{"stream":"stdout"}"#,
            br#"{"log":42}"#,
            br#"{"log":"x\n","stream":"stdin"}"#,
            br#"{"log":"x\n","time":"yesterday"}"#,
            br#"{"log":"x\n","stream":"stdout","time":"2019-03-25T10:15:00Z""#,
        ] {
            assert!(parse(line).is_err(), "{:?}", String::from_utf8_lossy(line));
        }
    }
}
