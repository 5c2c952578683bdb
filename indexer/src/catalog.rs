//! The catalog of streams created on first write (`indexer.auto_create_streams`): their
//! definitions, so that they are opened again after a restart with the schema they were created
//! with. One JSON file beside the metastore, replaced by atomic rename.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use trawl_config::StreamConfig;

use crate::json_file;
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
        json_file::load(&self.path, "stream catalog", CATALOG_VERSION, &[])
    }

    /// Replaces the state durably (see [`json_file::replace`]).
    pub fn store(&self, state: &CatalogState) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(state).map_err(std::io::Error::other)?;
        json_file::replace(&self.path, &bytes)
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
        std::fs::write(
            dir.path().join("streams.json"),
            b"{\"version\":9,\"streams\":{}}",
        )
        .unwrap();
        assert!(catalog.load().is_err());
    }
}
