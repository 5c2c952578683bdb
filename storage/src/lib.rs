//! Beyond one machine: sealed splits as single immutable objects in object storage (through
//! `object_store`: `file://` or any S3-compatible `s3://`), a bounded local cache they are
//! opened through, and the PostgreSQL metastore that records them.
//!
//! ```text
//! bundle.rs  the split object: tantivy's files end to end, a versioned footer, a trailer;
//!            BundleDirectory serves them to tantivy as slices of one mmap
//! object.rs  ObjectStorage: `[storage] uri` to an object_store, uploads, ranged reads
//! ranged.rs  RangedDirectory: a split opened from its object's tail (footer and hotcache in
//!            one request) and read by range, never fetched whole
//! cache.rs   SplitCache: least recently used out past `cache_max_bytes`, crash-safe
//!            downloads, one fetch per split however many readers ask
//! pg.rs      PgMetastore: versioned schema migrations, splits staged → published → marked,
//!            source marks and ownership tokens, leases; every publish one transaction
//! seen.rs    PgSnapshot: which publishes a listing of the published splits saw
//! ```

pub mod bundle;
pub mod cache;
mod error;
pub mod metrics;
pub mod object;
pub mod pg;
pub mod ranged;
pub mod seen;

pub use bundle::{write_bundle, BundleDirectory, BundleFooter};
pub use cache::SplitCache;
pub use error::{Error, Result};
pub use metrics::StorageMetrics;
pub use object::ObjectStorage;
pub use pg::PgMetastore;
pub use ranged::RangedDirectory;
pub use seen::PgSnapshot;
