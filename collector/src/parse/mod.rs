//! Pure parsing of container log files: CRI and docker json-file lines into fragments,
//! fragments into records ([`Assembler`]), and level/attribute enrichment ([`enrich`]).
//!
//! Nothing here does I/O or keeps time. The runtime reads complete physical lines (without the
//! trailing `\n`), calls [`parse_line`], and feeds the fragment to an [`Assembler`] with the
//! line's byte range; a line that does not parse goes to [`Assembler::push_malformed`].
//!
//! Invalid UTF-8: message bytes are carried as bytes until a record is complete, then decoded
//! with `String::from_utf8_lossy`: each invalid sequence becomes U+FFFD. Nothing is dropped.

mod assemble;
mod cri;
mod docker;
mod error;

use std::borrow::Cow;

use trawl_model::Timestamp;

pub use assemble::{Assembled, Assembler};
pub use error::ParseError;
pub use trawl_model::level::{enrich, Enrichment};

/// The on-disk format of a container log file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LogFormat {
    /// `<RFC3339Nano> <stdout|stderr> <P|F> <message>` (containerd, CRI-O).
    Cri,
    /// Docker's json-file driver: one JSON object per line.
    Docker,
}

/// Which output of the container wrote a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StdStream {
    Stdout,
    Stderr,
}

impl StdStream {
    /// `"stdout"` or `"stderr"`, as stored in the `stream` field.
    pub fn as_str(self) -> &'static str {
        match self {
            StdStream::Stdout => "stdout",
            StdStream::Stderr => "stderr",
        }
    }

    pub(crate) fn index(self) -> usize {
        match self {
            StdStream::Stdout => 0,
            StdStream::Stderr => 1,
        }
    }
}

/// One physical line, parsed: a whole log line (`partial == false`) or a piece of one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fragment<'a> {
    /// The time the runtime wrote the line.
    pub timestamp: Timestamp,
    pub stream: StdStream,
    /// The line continues in the next fragment of the same stream (CRI tag `P`, or a docker
    /// `log` without a trailing `\n`).
    pub partial: bool,
    /// The message bytes exactly as written, without the line terminator. Borrowed from the
    /// line except for docker lines with escapes.
    pub message: Cow<'a, [u8]>,
}

/// Guesses the format from the first complete line of a file: a line starting with `{` that
/// parses as docker json-file is [`LogFormat::Docker`], a line that parses as CRI is
/// [`LogFormat::Cri`]; `None` when neither parses (try the next line).
pub fn detect_format(line: &[u8]) -> Option<LogFormat> {
    if line.first() == Some(&b'{') {
        return docker::parse(line).ok().map(|_| LogFormat::Docker);
    }
    cri::parse(line).ok().map(|_| LogFormat::Cri)
}

/// Parses one physical line, given WITHOUT its trailing `\n`. Does not allocate for CRI, nor
/// for docker lines whose message holds no escape other than the final `\n`.
///
/// Errors say what is malformed; the caller keeps the raw line with
/// [`Assembler::push_malformed`].
pub fn parse_line(format: LogFormat, line: &[u8]) -> Result<Fragment<'_>, ParseError> {
    match format {
        LogFormat::Cri => cri::parse(line),
        LogFormat::Docker => docker::parse(line),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_formats() {
        assert_eq!(
            detect_format(b"2026-11-25T10:15:00.1Z stdout F hi"),
            Some(LogFormat::Cri)
        );
        assert_eq!(
            detect_format(br#"{"log":"hi\n","stream":"stdout","time":"2026-11-25T10:15:00Z"}"#),
            Some(LogFormat::Docker)
        );
        assert_eq!(detect_format(br#"{"log":"hi\n"}"#), Some(LogFormat::Docker));
        assert_eq!(detect_format(b"{not json"), None);
        assert_eq!(detect_format(b"plain text"), None);
        assert_eq!(detect_format(b""), None);
    }

    #[test]
    fn stream_names() {
        assert_eq!(StdStream::Stdout.as_str(), "stdout");
        assert_eq!(StdStream::Stderr.as_str(), "stderr");
    }

    #[test]
    fn parse_line_dispatches() {
        let frag = parse_line(LogFormat::Cri, b"2026-11-25T10:15:00Z stderr F x").unwrap();
        assert_eq!(frag.stream, StdStream::Stderr);
        assert!(parse_line(LogFormat::Docker, b"2026-11-25T10:15:00Z stderr F x").is_err());
    }
}
