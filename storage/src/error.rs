use std::path::PathBuf;

/// What can go wrong reaching object storage, the cache or the metastore.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A bundle, footer or cache file that is not what it should be.
    #[error("split bundle: {0}")]
    Format(String),
    /// A bad `[storage]` or `[metastore]` setting.
    #[error("{0}")]
    Config(String),
    #[error("object storage: {0}")]
    Object(#[from] object_store::Error),
    #[error("metastore: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    /// A publish presented an ownership token that is no longer the source's: another indexer
    /// owns the source now.
    #[error("source {source_id} is owned by {owner} (token {token}); this publish presented token {presented}")]
    Fenced {
        source_id: String,
        owner: String,
        token: i64,
        presented: i64,
    },
    /// A publish found splits not in the state it expected (already published by another
    /// indexer, or taken away by a merge or retention).
    #[error("metastore conflict: {0}")]
    Conflict(String),
    /// Text that is not a PostgreSQL snapshot (`xmin:xmax:xip,...`).
    #[error("not a metastore snapshot: `{0}`")]
    Snapshot(String),
    #[error("tantivy: {0}")]
    Tantivy(#[from] tantivy::TantivyError),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
