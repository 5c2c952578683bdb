//! The catalog of streams created on first write (`indexer.auto_create_streams`): their
//! definitions, so that they are opened again after a restart with the schema they were created
//! with. One JSON file beside the metastore, replaced by atomic rename.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use trawl_config::StreamConfig;

use crate::wal::sync_dir;
use crate::Result;

/// Version of the catalog format.
pub const CATALOG_VERSION: u32 = 1;

/// The catalog's content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogState {
    pub version: u32,
    /// Auto-created streams by name, with the definition they were created with.
    pub streams: BTreeMap<String, StreamConfig>,
}

impl Default for CatalogState {
    fn default() -> Self {
        CatalogState {
            version: CATALOG_VERSION,
            streams: BTreeMap::new(),
        }
    }
}

/// The catalog file.
pub struct Catalog {
    path: PathBuf,
}

impl Catalog {
    pub fn new(dir: &Path) -> Catalog {
        Catalog {
            path: dir.join("streams.json"),
        }
    }

    /// Loads the catalog; a missing file is an empty catalog, a corrupt or newer one an error.
    pub fn load(&self) -> Result<CatalogState> {
        let bytes = match fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                return Ok(CatalogState::default())
            }
            Err(err) => return Err(err.into()),
        };
        let state: CatalogState = serde_json::from_slice(&bytes).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("stream catalog {} is unreadable: {e}", self.path.display()),
            )
        })?;
        if state.version != CATALOG_VERSION {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "stream catalog version {} is not supported (expected {CATALOG_VERSION})",
                    state.version
                ),
            )
            .into());
        }
        Ok(state)
    }

    /// Replaces the catalog durably: temporary file, fsync, rename, fsync of the directory.
    pub fn store(&self, state: &CatalogState) -> Result<()> {
        let tmp = self.path.with_extension("json.tmp");
        let bytes = serde_json::to_vec_pretty(state).map_err(std::io::Error::other)?;
        {
            let mut file = fs::File::create(&tmp)?;
            file.write_all(&bytes)?;
            file.sync_all()?;
        }
        fs::rename(&tmp, &self.path)?;
        if let Some(dir) = self.path.parent() {
            sync_dir(dir)?;
        }
        Ok(())
    }

    /// Adds one stream's definition durably.
    pub fn add(&self, name: &str, config: &StreamConfig) -> Result<()> {
        let mut state = self.load()?;
        state.streams.insert(name.to_string(), config.clone());
        self.store(&state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_and_load() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = Catalog::new(dir.path());
        assert_eq!(catalog.load().unwrap(), CatalogState::default());
        let config = StreamConfig {
            timestamp_field: "@timestamp".into(),
            ..StreamConfig::default()
        };
        catalog.add("web", &config).unwrap();
        catalog.add("api", &StreamConfig::default()).unwrap();
        let state = catalog.load().unwrap();
        assert_eq!(state.streams.len(), 2);
        assert_eq!(state.streams["web"], config);
        fs::write(
            dir.path().join("streams.json"),
            b"{\"version\":9,\"streams\":{}}",
        )
        .unwrap();
        assert!(catalog.load().is_err());
    }
}
