//! The read contract's error type.

use std::path::PathBuf;

/// What can go wrong reading a stream.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The stream is neither built in nor declared in the configuration.
    #[error("unknown stream `{0}`")]
    UnknownStream(String),
    /// A request that cannot be served as sent.
    #[error("{0}")]
    InvalidArgument(String),
    /// A file of a split or hot index could not be read (the path names it).
    #[error("{}: {source}", path.display())]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Disk I/O failed.
    #[error("storage error: {0}")]
    Io(#[from] std::io::Error),
    /// tantivy failed.
    #[error("index error: {0}")]
    Tantivy(#[from] tantivy::TantivyError),
}

/// Result with the read contract's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
