//! `[storage]` and `[metastore]`: where sealed splits and their records live beyond one
//! machine. The defaults keep everything under `data_dir` (what `trawl standalone` uses).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// `[storage]` section: the object storage sealed splits are uploaded to, and the local cache
/// searchers and indexers open them through.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// `file:///path` or `s3://bucket/prefix`. Empty (the default): splits stay in
    /// `<data_dir>/indexer` on local disk, as `trawl standalone` keeps them.
    pub uri: String,
    /// Directory of the local split cache: searchers open published splits through it, and
    /// the indexer running the cluster's merges downloads their inputs into it. Default
    /// `<data_dir>/cache`.
    pub cache_dir: Option<PathBuf>,
    /// Bytes the cache may hold before the least recently used splits are removed (splits in
    /// use are kept). Default 10000000000 (10 GB).
    pub cache_max_bytes: u64,
    /// Splits a searcher searches at once while some are read by range (not yet in its
    /// cache): such a search waits on object storage more than on the cores. Default 8.
    pub range_read_concurrency: usize,
    /// Records past which a searcher's export downloads the published splits it exports
    /// whole into its cache first, instead of reading their doc-store blocks by range (a
    /// request a block). 0: whenever it matches a record. Default 2000.
    pub export_whole_min_records: u64,
    /// Bytes of the splits it published that `trawl indexer` keeps a local copy of as well
    /// (its own API searches them). Past this, the oldest copies (by
    /// their newest record) are dropped: the shared tier keeps those splits and searchers read
    /// them there. So an indexer's volume holds its write-ahead log, its hot index, what it has
    /// not published yet and this much. 0: every copy is dropped once published.
    /// `trawl standalone` answers every read from its own copies and keeps them all.
    /// Default 4000000000 (4 GB).
    pub local_splits_max_bytes: u64,
    /// `[storage.s3]`: endpoint, region, addressing and credentials of an `s3://` URI.
    pub s3: S3Config,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            uri: String::new(),
            cache_dir: None,
            cache_max_bytes: 10_000_000_000,
            range_read_concurrency: 8,
            export_whole_min_records: 2_000,
            local_splits_max_bytes: 4_000_000_000,
            s3: S3Config::default(),
        }
    }
}

impl StorageConfig {
    /// Whether splits go to object storage (a `[storage] uri` is set).
    pub fn is_remote(&self) -> bool {
        !self.uri.trim().is_empty()
    }
}

/// `[storage.s3]`. Every key left empty is taken from the standard `AWS_*` environment
/// (`AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
/// `AWS_SESSION_TOKEN`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct S3Config {
    /// Endpoint of an S3-compatible store, e.g. `http://minio.storage:9000`. Default: AWS.
    pub endpoint: String,
    /// Region. Default `us-east-1`.
    pub region: String,
    /// Path-style requests (`endpoint/bucket/key`), as most S3-compatible stores want.
    /// Default true.
    pub path_style: bool,
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl Default for S3Config {
    fn default() -> Self {
        S3Config {
            endpoint: String::new(),
            region: String::new(),
            path_style: true,
            access_key_id: String::new(),
            secret_access_key: String::new(),
        }
    }
}

/// `[metastore]` section: where the records of splits, source marks and ownership live.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetastoreConfig {
    /// `file` (the default: a versioned JSON file under `data_dir`) or
    /// `postgres://user:password@host:port/database`.
    pub uri: String,
    /// How often an indexer publishes its new splits, and a searcher reads the list of
    /// published ones, milliseconds. Default 2000.
    pub poll_interval_ms: u64,
    /// How long a staged object that was never published, or a split marked for deletion, is
    /// kept before the janitor removes it, seconds. Default 600.
    pub grace_secs: u64,
}

impl Default for MetastoreConfig {
    fn default() -> Self {
        MetastoreConfig {
            uri: "file".into(),
            poll_interval_ms: 2000,
            grace_secs: 600,
        }
    }
}

impl MetastoreConfig {
    /// Whether the metastore is PostgreSQL.
    pub fn is_postgres(&self) -> bool {
        let uri = self.uri.trim();
        uri.starts_with("postgres://") || uri.starts_with("postgresql://")
    }
}
