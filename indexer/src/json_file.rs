//! Small versioned JSON state files (the metastore, the stream catalog): read whole, migrated
//! from older versions, replaced durably.

use std::fs;
use std::io::Write;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::wal::sync_dir;
use crate::Result;

/// A migration of a state file's JSON from one version to the next: it receives the document of
/// version `n` and returns it as version `n + 1` (the `version` key is set by [`load`]).
pub(crate) type Migration = fn(Value) -> std::result::Result<Value, String>;

/// Reads the state at `path`: a missing file is `T::default()`; a corrupt one, or one of a
/// version newer than `expected`, an error naming `what`. A file of an older version is brought
/// to `expected` through `migrations`, where `migrations[i]` turns version `i + 1` into `i + 2`
/// (so `migrations.len()` must be `expected - 1`); the migrated state is not written back here,
/// the caller's next store does.
pub(crate) fn load<T: DeserializeOwned + Default>(
    path: &Path,
    what: &str,
    expected: u32,
    migrations: &[Migration],
) -> Result<T> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(T::default()),
        Err(err) => return Err(err.into()),
    };
    let invalid = |message: String| -> crate::Error {
        std::io::Error::new(std::io::ErrorKind::InvalidData, message).into()
    };
    let mut doc: Value = serde_json::from_slice(&bytes)
        .map_err(|e| invalid(format!("{what} {} is unreadable: {e}", path.display())))?;
    let found = doc
        .get("version")
        .and_then(Value::as_u64)
        .and_then(|v| u32::try_from(v).ok())
        .ok_or_else(|| invalid(format!("{what} {} has no version", path.display())))?;
    let supported = expected.saturating_sub(migrations.len() as u32).max(1);
    if found > expected || found < supported {
        return Err(invalid(format!(
            "{what} version {found} is not supported (expected {supported} to {expected})"
        )));
    }
    for version in found..expected {
        let migrate = migrations[(version - supported) as usize];
        doc = migrate(doc).map_err(|e| {
            invalid(format!(
                "{what} {}: migration from version {version} failed: {e}",
                path.display()
            ))
        })?;
        if let Some(object) = doc.as_object_mut() {
            object.insert("version".into(), Value::from(version + 1));
        }
        tracing::info!(file = %path.display(), from = version, to = version + 1, "migrated {what}");
    }
    serde_json::from_value(doc)
        .map_err(|e| invalid(format!("{what} {} is unreadable: {e}", path.display())))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, PartialEq, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct State {
        version: u32,
        a: u32,
        #[serde(default)]
        b: u32,
        #[serde(default)]
        c: u32,
    }

    fn add_b(mut doc: Value) -> std::result::Result<Value, String> {
        doc.as_object_mut()
            .ok_or("not an object")?
            .insert("b".into(), 2.into());
        Ok(doc)
    }

    fn add_c(mut doc: Value) -> std::result::Result<Value, String> {
        doc.as_object_mut()
            .ok_or("not an object")?
            .insert("c".into(), 3.into());
        Ok(doc)
    }

    fn load_text(text: &str) -> Result<State> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        fs::write(&path, text).unwrap();
        load(&path, "state", 3, &[add_b, add_c])
    }

    #[test]
    fn older_versions_are_migrated_step_by_step() {
        let want = |b, c| State {
            version: 3,
            a: 1,
            b,
            c,
        };
        assert_eq!(load_text(r#"{"version":1,"a":1}"#).unwrap(), want(2, 3));
        assert_eq!(
            load_text(r#"{"version":2,"a":1,"b":7}"#).unwrap(),
            want(7, 3)
        );
        assert_eq!(
            load_text(r#"{"version":3,"a":1,"b":7,"c":8}"#).unwrap(),
            want(7, 8)
        );
    }

    #[test]
    fn newer_unversioned_and_corrupt_files_are_errors() {
        for text in [
            r#"{"version":4,"a":1}"#,
            r#"{"version":0,"a":1}"#,
            r#"{"a":1}"#,
            "{",
        ] {
            let err = load_text(text).unwrap_err().to_string();
            assert!(err.contains("state"), "{text}: {err}");
        }
        let dir = tempfile::tempdir().unwrap();
        let missing: State =
            load(&dir.path().join("none.json"), "state", 3, &[add_b, add_c]).unwrap();
        assert_eq!(missing, State::default());
    }
}
