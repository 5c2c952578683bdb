//! The collector's error type.

use std::path::PathBuf;

/// A result with the collector's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// What can stop the collector from starting or from persisting its state.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or directory of the collector's own state (checkpoints, disk buffer, webhook
    /// spool) could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory concerned.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// A state file exists but does not hold what the collector wrote (a corrupt checkpoint
    /// file or buffered batch).
    #[error("corrupt state file {}: {message}", path.display())]
    Corrupt {
        /// The file concerned.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// A configured value the collector cannot use (a glob or pattern that does not compile,
    /// an indexer URL that does not parse).
    #[error("invalid collector configuration: {0}")]
    Config(String),
    /// The collector's background work could not be started (thread spawn, HTTP client).
    #[error("cannot start the collector: {0}")]
    Start(String),
    /// The Kubernetes API cannot be reached with the configuration given (no in-cluster
    /// service account, an unreadable kubeconfig). The collector runs on without metadata.
    #[error("kubernetes: {0}")]
    Kubernetes(String),
}

impl Error {
    /// An [`Error::Io`] about `path`.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
