//! The top-level [`Config`]: its keys, loading and the helpers every role uses.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::{
    AlertingConfig, AuthConfig, CollectorConfig, IndexerConfig, MetastoreConfig, QueryConfig,
    StorageConfig, StreamConfig,
};

/// The whole configuration. Top-level keys, then one section per concern.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Cluster name stamped on every record (`cluster` field). Default empty.
    pub cluster: String,
    /// Directory of the indexer's WAL, hot index, splits and metastore, and by default of the
    /// collector's checkpoints and buffer. Flag `--data-dir`. Default `./trawl-data`.
    pub data_dir: PathBuf,
    /// Address the HTTP server binds (`ip:port`; port 0 picks a free one). Flag `--listen`.
    /// Default `127.0.0.1:7400`.
    pub listen: String,
    /// `[collector]`: tailing, batching, shipping.
    pub collector: CollectorConfig,
    /// `[indexer]`: ingest limits, commits, splits, merges.
    pub indexer: IndexerConfig,
    /// `[query]`: search limits and fan-out.
    pub query: QueryConfig,
    /// `[streams.<name>]`: per-stream retention and, for declared streams, schema. `logs` and
    /// `audit` always exist; any other name declares a stream.
    pub streams: BTreeMap<String, StreamConfig>,
    /// `[auth]`: tokens and TLS.
    pub auth: AuthConfig,
    /// `[alerting]`: rule files and packs, Alertmanagers and webhooks.
    pub alerting: AlertingConfig,
    /// `[storage]`: object storage for sealed splits and the local split cache.
    pub storage: StorageConfig,
    /// `[metastore]`: `file` or PostgreSQL.
    pub metastore: MetastoreConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            cluster: String::new(),
            data_dir: default_data_dir(),
            listen: default_listen(),
            collector: CollectorConfig::default(),
            indexer: IndexerConfig::default(),
            query: QueryConfig::default(),
            streams: BTreeMap::new(),
            auth: AuthConfig::default(),
            alerting: AlertingConfig::default(),
            storage: StorageConfig::default(),
            metastore: MetastoreConfig::default(),
        }
    }
}

impl Config {
    /// Defaults, then the TOML `file` (if given), then the `TRAWL_*` overrides in `env`, then
    /// [`Config::validate`].
    ///
    /// `env` is the process environment as a map (the binary passes
    /// `std::env::vars().collect()`); this crate never reads the environment itself. Names
    /// without the `TRAWL_` prefix and those in [`crate::IGNORED_ENV_VARS`] are skipped.
    ///
    /// Errors: [`Error::Read`](crate::Error::Read) if the file cannot be read;
    /// [`Error::Load`](crate::Error::Load) on a TOML syntax error, an unknown key or a value
    /// of the wrong type, naming the key and the file path or variable it came from;
    /// [`Error::Invalid`](crate::Error::Invalid) if a value breaks a rule.
    pub fn load(file: Option<&Path>, env: &BTreeMap<String, String>) -> Result<Config> {
        let config = crate::load::load(file, env)?;
        config.validate()?;
        Ok(config)
    }

    /// Applies the command-line flags, which win over the file and the environment, and
    /// validates the result (a bad `--listen` is an [`Error::Invalid`](crate::Error::Invalid)
    /// naming `listen`). `None` leaves a key as it is.
    pub fn apply_flags(&mut self, data_dir: Option<PathBuf>, listen: Option<String>) -> Result<()> {
        if let Some(data_dir) = data_dir {
            self.data_dir = data_dir;
        }
        if let Some(listen) = listen {
            self.listen = listen;
        }
        self.validate()
    }

    /// Directory of the local split cache: `[storage] cache_dir`, else `<data_dir>/cache`.
    pub fn cache_dir(&self) -> PathBuf {
        self.storage
            .cache_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("cache"))
    }

    /// Checks every rule a loaded configuration must follow and reports all that are broken,
    /// each with its key. Pure: it touches no file and no network.
    pub fn validate(&self) -> Result<()> {
        crate::validate::validate(self, None)
    }

    /// [`Config::validate`] plus what `role` needs to work at all, all problems reported
    /// together: `trawl collector` needs `collector.indexer_url`, `trawl searcher` needs
    /// `query.indexers`. `trawl standalone` and `trawl indexer` need nothing more (standalone
    /// ships to the port it bound).
    pub fn validate_for(&self, role: ServerRole) -> Result<()> {
        crate::validate::validate(self, Some(role))
    }

    /// The configuration of stream `name`: its `[streams.<name>]` section, or the defaults.
    pub fn stream(&self, name: &str) -> StreamConfig {
        self.streams.get(name).cloned().unwrap_or_default()
    }

    /// Commit interval of stream `name`: its own `commit_interval_ms`, else the indexer's.
    pub fn effective_commit_interval_ms(&self, name: &str) -> u64 {
        self.streams
            .get(name)
            .and_then(|stream| stream.commit_interval_ms)
            .unwrap_or(self.indexer.commit_interval_ms)
    }

    /// Directory of the collector's checkpoints and disk buffer: `collector.data_dir`, else
    /// `<data_dir>/collector`.
    pub fn collector_data_dir(&self) -> PathBuf {
        self.collector
            .data_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("collector"))
    }
}

/// Loads and validates the configuration file `path` with the overrides in `env`, for
/// `trawl config check`: the same as [`Config::load`] with a file, then, with a `role`, the
/// checks of [`Config::validate_for`] (what that role's start would refuse), then the alerting
/// rule files and packs ([`crate::load_rules`]).
pub fn check_file(
    path: &Path,
    env: &BTreeMap<String, String>,
    role: Option<ServerRole>,
) -> Result<Config> {
    let config = crate::load::load(Some(path), env)?;
    crate::validate::validate(&config, role)?;
    crate::rules::check(&config)?;
    Ok(config)
}

/// The process a configuration is for: what `trawl <role>` starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerRole {
    /// `trawl standalone`: every role in one process.
    Standalone,
    /// `trawl indexer`.
    Indexer,
    /// `trawl searcher`.
    Searcher,
    /// `trawl collector`.
    Collector,
}

impl std::str::FromStr for ServerRole {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s {
            "standalone" => Ok(ServerRole::Standalone),
            "indexer" => Ok(ServerRole::Indexer),
            "searcher" => Ok(ServerRole::Searcher),
            "collector" => Ok(ServerRole::Collector),
            other => Err(format!(
                "unknown role `{other}` (standalone, indexer, searcher or collector)"
            )),
        }
    }
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("./trawl-data")
}

fn default_listen() -> String {
    "127.0.0.1:7400".to_string()
}
