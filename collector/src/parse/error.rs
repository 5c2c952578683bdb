//! The error type of the parsing layer: malformed lines and invalid patterns.

/// What went wrong while parsing a log line or compiling a configured pattern.
///
/// Line errors are cheap to build (no allocation for CRI), since a file full of garbage yields
/// one per line; the caller turns the line into a malformed record with
/// [`Assembler::push_malformed`](crate::parse::Assembler::push_malformed) and counts it.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// A CRI line without the `<time> <stdout|stderr> <P|F> <message>` shape; says which part
    /// is wrong.
    #[error("malformed cri line: {0}")]
    Cri(&'static str),
    /// A docker json-file line that is JSON but lacks a required field or has a field of the
    /// wrong kind; says which.
    #[error("malformed docker json line: {0}")]
    Docker(&'static str),
    /// A docker json-file line that is not valid JSON.
    #[error("malformed docker json line: {0}")]
    DockerJson(#[from] serde_json::Error),
    /// A timestamp that is not RFC 3339, or outside the years 1677 to 2262.
    #[error("invalid timestamp")]
    Timestamp,
    /// A configured regular expression (multiline or redaction rule) that does not compile.
    #[error("invalid pattern in rule `{name}`: {source}")]
    Pattern {
        /// The rule's name (the redaction rule name, or `multiline`).
        name: String,
        /// What the regex compiler said.
        #[source]
        source: Box<regex::Error>,
    },
}
