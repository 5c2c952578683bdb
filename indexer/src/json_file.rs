//! Small versioned JSON state files (the metastore, the stream catalog): read whole, replaced
//! durably.

use std::fs;
use std::io::Write;
use std::path::Path;

use serde::de::DeserializeOwned;

use crate::wal::sync_dir;
use crate::Result;

/// Reads the state at `path`: a missing file is `T::default()`, a corrupt one or one whose
/// `version` is not `expected` an error naming `what`.
pub(crate) fn load<T: DeserializeOwned + Default>(
    path: &Path,
    what: &str,
    expected: u32,
    version: impl Fn(&T) -> u32,
) -> Result<T> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(T::default()),
        Err(err) => return Err(err.into()),
    };
    let state: T = serde_json::from_slice(&bytes).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{what} {} is unreadable: {e}", path.display()),
        )
    })?;
    let found = version(&state);
    if found != expected {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{what} version {found} is not supported (expected {expected})"),
        )
        .into());
    }
    Ok(state)
}

/// Replaces the file at `path` with `bytes` durably: a temporary file, fsync, rename, fsync of
/// the directory.
pub(crate) fn replace(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("json.tmp");
    {
        let mut file = fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        sync_dir(dir)?;
    }
    Ok(())
}
