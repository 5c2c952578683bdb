//! The bench harness's error type.

use std::path::{Path, PathBuf};

/// What can go wrong while generating a corpus or running a scenario.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O error without a path (pipes, compression).
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// An I/O error on a file or directory.
    #[error("{path}: {source}")]
    Path {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The `trawl` binary is not where it was looked for.
    #[error("the trawl binary was not found at {tried}; build it with `cargo build --release -p trawl` (or set TRAWL_BIN)")]
    MissingBinary { tried: String },
    /// A child process failed to start or died.
    #[error("child process: {0}")]
    Child(String),
    /// An HTTP request failed below the status line.
    #[error("http: {0}")]
    Http(#[from] reqwest::Error),
    /// The server answered with an unexpected status.
    #[error("{what} answered {status}: {body}")]
    Status {
        what: String,
        status: u16,
        body: String,
    },
    /// The server answered something that is not what the API promises.
    #[error("unexpected answer from {what}: {detail}")]
    Protocol { what: String, detail: String },
    /// A wait ran out of time.
    #[error("timed out: {0}")]
    Timeout(String),
    /// Raw tantivy failed.
    #[error("tantivy: {0}")]
    Tantivy(#[from] tantivy::TantivyError),
    /// A bad argument combination.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

impl Error {
    /// An I/O error on `path`.
    pub fn path(path: &Path, source: std::io::Error) -> Error {
        Error::Path {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// The harness's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
