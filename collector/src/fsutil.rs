//! Crash-safe file writes.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::Path;

use crate::error::{Error, Result};

/// Replaces `path` with `bytes` atomically: write a temporary sibling, fsync it, rename it over
/// `path`, fsync the directory. After a crash the file holds either the old or the new bytes.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(|e| Error::io(&tmp, e))?;
    file.write_all(bytes).map_err(|e| Error::io(&tmp, e))?;
    file.sync_all().map_err(|e| Error::io(&tmp, e))?;
    drop(file);
    fs::rename(&tmp, path).map_err(|e| Error::io(path, e))?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// The string at `key` of the JSON object saved at `path` (a resume position: a Kubernetes
/// resourceVersion, a journal cursor); `None` when the file is absent, unreadable or holds no
/// non-empty string there, so that the caller starts from the beginning.
pub fn read_position(path: &Path, key: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(&fs::read(path).ok()?).ok()?;
    value[key]
        .as_str()
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

/// Saves `{key: value}` at `path` atomically ([`write_atomic`]).
pub fn save_position(path: &Path, key: &str, value: &str) -> Result<()> {
    let body = serde_json::json!({ key: value }).to_string();
    write_atomic(path, body.as_bytes())
}

/// Fsyncs a directory so that the creations, renames and removals in it are durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(dir, e))
}

/// Creates `dir` and its parents.
pub fn ensure_dir(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert!(!path.with_extension("tmp").exists());
    }
}
