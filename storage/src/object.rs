//! `[storage] uri` as an object store: `file:///path` (object_store's local file system) or
//! `s3://bucket/prefix` (any S3-compatible store), behind one code path.

use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{BackoffConfig, ObjectStore, RetryConfig, WriteMultipart};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use trawl_config::StorageConfig;

use crate::metrics::StorageMetrics;
use crate::{Error, Result};

/// Size of the parts of an upload (S3 wants at least 5 MiB but for the last).
const PART_BYTES: usize = 8 << 20;
/// Parts of one upload in flight at once.
const PART_CONCURRENCY: usize = 4;

/// How object_store retries one request: a few times within 30 s. Uploads that still fail
/// are retried by their caller (the indexer's uploader keeps the split until it is
/// published), so a store away for minutes delays publishing and loses nothing.
fn retry() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig::default(),
        max_retries: 5,
        retry_timeout: std::time::Duration::from_secs(30),
    }
}

/// One object listed: its key (relative to the storage's prefix) and size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub key: String,
    pub size: u64,
}

/// The object storage of `[storage]`: keys are relative to the URI's prefix.
#[derive(Clone)]
pub struct ObjectStorage {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    uri: String,
    metrics: Arc<StorageMetrics>,
}

impl std::fmt::Debug for ObjectStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectStorage")
            .field("uri", &self.uri)
            .finish()
    }
}

impl ObjectStorage {
    /// The store `config.uri` names. S3 settings left empty come from the `AWS_*` environment.
    /// A URI of another scheme, or a `file://` directory that cannot be created, is an error.
    pub fn open(config: &StorageConfig, metrics: Arc<StorageMetrics>) -> Result<ObjectStorage> {
        let uri = config.uri.trim();
        let (scheme, rest) = uri
            .split_once("://")
            .ok_or_else(|| Error::Config(format!("storage.uri `{uri}` has no scheme")))?;
        let (store, prefix): (Arc<dyn ObjectStore>, String) = match scheme {
            "file" => {
                let path = Path::new(rest);
                std::fs::create_dir_all(path).map_err(|source| Error::Io {
                    path: path.to_path_buf(),
                    source,
                })?;
                (
                    Arc::new(LocalFileSystem::new_with_prefix(path)?),
                    String::new(),
                )
            }
            "s3" => {
                let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                if bucket.is_empty() {
                    return Err(Error::Config(format!(
                        "storage.uri `{uri}` names no bucket"
                    )));
                }
                let s3 = &config.s3;
                let mut builder = AmazonS3Builder::from_env()
                    .with_bucket_name(bucket)
                    .with_retry(retry())
                    .with_virtual_hosted_style_request(!s3.path_style);
                if !s3.endpoint.is_empty() {
                    builder = builder
                        .with_endpoint(&s3.endpoint)
                        .with_allow_http(s3.endpoint.starts_with("http://"));
                } else if let Ok(endpoint) = std::env::var("AWS_ENDPOINT_URL") {
                    builder = builder.with_allow_http(endpoint.starts_with("http://"));
                }
                if !s3.region.is_empty() {
                    builder = builder.with_region(&s3.region);
                } else if std::env::var_os("AWS_REGION").is_none()
                    && std::env::var_os("AWS_DEFAULT_REGION").is_none()
                {
                    builder = builder.with_region("us-east-1");
                }
                if !s3.access_key_id.is_empty() {
                    builder = builder
                        .with_access_key_id(&s3.access_key_id)
                        .with_secret_access_key(&s3.secret_access_key);
                }
                (
                    Arc::new(builder.build()?),
                    prefix.trim_matches('/').to_string(),
                )
            }
            other => {
                return Err(Error::Config(format!(
                    "storage.uri scheme `{other}`: only file:// and s3:// are supported"
                )))
            }
        };
        Ok(ObjectStorage {
            store,
            prefix,
            uri: uri.to_string(),
            metrics,
        })
    }

    /// A storage over any object store (tests: object_store's in-memory store).
    pub fn from_store(store: Arc<dyn ObjectStore>, metrics: Arc<StorageMetrics>) -> ObjectStorage {
        ObjectStorage {
            store,
            prefix: String::new(),
            uri: "memory://".into(),
            metrics,
        }
    }

    /// The configured URI.
    pub fn uri(&self) -> &str {
        &self.uri
    }

    pub fn metrics(&self) -> &Arc<StorageMetrics> {
        &self.metrics
    }

    /// The key of a split's object.
    pub fn split_key(stream: &str, split_id: &str) -> String {
        format!("splits/{stream}/{split_id}.split")
    }

    fn path(&self, key: &str) -> ObjectPath {
        if self.prefix.is_empty() {
            ObjectPath::from(key)
        } else {
            ObjectPath::from(format!("{}/{key}", self.prefix))
        }
    }

    fn request(&self) {
        StorageMetrics::add(&self.metrics.requests, 1);
    }

    /// Uploads the file at `path` as `key` (in parts of 8 MiB, four in flight). The object
    /// appears whole or not at all. Returns its size.
    pub async fn upload_file(&self, key: &str, path: &Path) -> Result<u64> {
        let result = self.upload_inner(key, path).await;
        match &result {
            Ok(bytes) => {
                StorageMetrics::add(&self.metrics.uploads, 1);
                StorageMetrics::add(&self.metrics.upload_bytes, *bytes);
            }
            Err(_) => StorageMetrics::add(&self.metrics.upload_errors, 1),
        }
        result
    }

    async fn upload_inner(&self, key: &str, path: &Path) -> Result<u64> {
        let io_err = |source| Error::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut file = tokio::fs::File::open(path).await.map_err(io_err)?;
        let len = file.metadata().await.map_err(io_err)?.len();
        if len as usize <= PART_BYTES {
            let mut bytes = Vec::with_capacity(len as usize);
            file.read_to_end(&mut bytes).await.map_err(io_err)?;
            self.request();
            self.store.put(&self.path(key), bytes.into()).await?;
            return Ok(len);
        }
        self.request();
        let upload = self.store.put_multipart(&self.path(key)).await?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_BYTES);
        let mut buffer = vec![0u8; PART_BYTES];
        let mut sent = 0u64;
        loop {
            let n = match file.read(&mut buffer).await {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) => {
                    let _ = writer.abort().await;
                    return Err(io_err(e));
                }
            };
            if let Err(e) = writer.wait_for_capacity(PART_CONCURRENCY).await {
                return Err(e.into());
            }
            self.request();
            writer.write(&buffer[..n]);
            sent += n as u64;
        }
        writer.finish().await?;
        Ok(sent)
    }

    /// The whole object `key`, written to `dest` (created or truncated) and synced. Returns
    /// its size.
    pub async fn download_to(&self, key: &str, dest: &Path) -> Result<u64> {
        let io_err = |source| Error::Io {
            path: dest.to_path_buf(),
            source,
        };
        self.request();
        let got = self.store.get(&self.path(key)).await?;
        let mut stream = got.into_stream();
        let mut file = tokio::fs::File::create(dest).await.map_err(io_err)?;
        let mut bytes = 0u64;
        while let Some(chunk) = stream.try_next().await? {
            file.write_all(&chunk).await.map_err(io_err)?;
            bytes += chunk.len() as u64;
        }
        file.sync_all().await.map_err(io_err)?;
        StorageMetrics::add(&self.metrics.downloads, 1);
        StorageMetrics::add(&self.metrics.download_bytes, bytes);
        Ok(bytes)
    }

    /// Bytes `range` of the object `key`.
    pub async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes> {
        self.request();
        Ok(self.store.get_range(&self.path(key), range).await?)
    }

    /// The last `n` bytes of the object `key` (all of it if it is shorter), and its size: one
    /// request, a suffix range.
    pub async fn get_suffix(&self, key: &str, n: u64) -> Result<(Bytes, u64)> {
        self.request();
        let options = object_store::GetOptions {
            range: Some(object_store::GetRange::Suffix(n)),
            ..Default::default()
        };
        let got = self.store.get_opts(&self.path(key), options).await?;
        let size = got.meta.size;
        Ok((got.bytes().await?, size))
    }

    /// The size of the object `key`, or `None` if there is none.
    pub async fn size(&self, key: &str) -> Result<Option<u64>> {
        self.request();
        match self.store.head(&self.path(key)).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes the object `key`; one that is already gone is not an error.
    pub async fn delete(&self, key: &str) -> Result<()> {
        self.request();
        match self.store.delete(&self.path(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Every object under `dir` (a key prefix such as `splits/`), keys relative to the
    /// storage's prefix.
    pub async fn list(&self, dir: &str) -> Result<Vec<Listed>> {
        self.request();
        let root = self.path(dir.trim_end_matches('/'));
        let strip = if self.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", self.prefix)
        };
        let mut out = Vec::new();
        let mut stream = self.store.list(Some(&root));
        while let Some(meta) = stream.try_next().await? {
            let key = meta.location.as_ref();
            out.push(Listed {
                key: key.strip_prefix(&strip).unwrap_or(key).to_string(),
                size: meta.size,
            });
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;

    #[tokio::test]
    async fn upload_download_list_delete_in_parts_and_whole() {
        let tmp = tempfile::tempdir().unwrap();
        let config = StorageConfig {
            uri: format!("file://{}", tmp.path().join("objects").display()),
            ..StorageConfig::default()
        };
        let metrics = Arc::new(StorageMetrics::default());
        for storage in [
            ObjectStorage::open(&config, metrics.clone()).unwrap(),
            ObjectStorage::from_store(Arc::new(InMemory::new()), metrics.clone()),
        ] {
            // One small object, one of three parts.
            let small = tmp.path().join("small");
            std::fs::write(&small, b"hello").unwrap();
            let big = tmp.path().join("big");
            let big_bytes: Vec<u8> = (0..(PART_BYTES * 2 + 12345))
                .map(|i| (i % 251) as u8)
                .collect();
            std::fs::write(&big, &big_bytes).unwrap();
            assert_eq!(
                storage
                    .upload_file("splits/logs/a.split", &small)
                    .await
                    .unwrap(),
                5
            );
            assert_eq!(
                storage
                    .upload_file("splits/logs/b.split", &big)
                    .await
                    .unwrap(),
                big_bytes.len() as u64
            );
            let listed = storage.list("splits/").await.unwrap();
            assert_eq!(
                listed,
                vec![
                    Listed {
                        key: "splits/logs/a.split".into(),
                        size: 5
                    },
                    Listed {
                        key: "splits/logs/b.split".into(),
                        size: big_bytes.len() as u64
                    },
                ]
            );
            let back = tmp.path().join("back");
            storage
                .download_to("splits/logs/b.split", &back)
                .await
                .unwrap();
            assert_eq!(std::fs::read(&back).unwrap(), big_bytes);
            assert_eq!(
                storage
                    .get_range("splits/logs/b.split", 10..20)
                    .await
                    .unwrap()
                    .as_ref(),
                &big_bytes[10..20]
            );
            assert_eq!(storage.size("splits/logs/a.split").await.unwrap(), Some(5));
            storage.delete("splits/logs/a.split").await.unwrap();
            storage.delete("splits/logs/a.split").await.unwrap();
            assert_eq!(storage.size("splits/logs/a.split").await.unwrap(), None);
            assert!(storage
                .download_to("splits/logs/a.split", &back)
                .await
                .is_err());
        }
        assert_eq!(StorageMetrics::get(&metrics.uploads), 4);
    }

    #[test]
    fn bad_uris_are_refused_with_the_key() {
        let metrics = Arc::new(StorageMetrics::default());
        for uri in ["gs://bucket", "s3://", "nothing"] {
            let config = StorageConfig {
                uri: uri.into(),
                ..StorageConfig::default()
            };
            let err = ObjectStorage::open(&config, metrics.clone()).unwrap_err();
            assert!(err.to_string().contains("storage.uri"), "{uri}: {err}");
        }
    }
}
