//! The indexer's error type.

/// What can go wrong in the indexer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The stream is neither built in nor declared in the configuration.
    #[error("unknown stream `{0}`")]
    UnknownStream(String),
    /// A request that cannot be served as sent.
    #[error("{0}")]
    InvalidArgument(String),
    /// Disk I/O failed (WAL, splits, metastore).
    #[error("storage error: {0}")]
    Io(#[from] std::io::Error),
    /// tantivy failed.
    #[error("index error: {0}")]
    Tantivy(#[from] tantivy::TantivyError),
}

/// Result with the indexer's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
