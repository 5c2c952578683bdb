//! The indexer's error type: the read contract's ([`trawl_index::Error`]), so that what the
//! indexer says about a stream reaches query unchanged. Writing adds no kind of its own: a WAL,
//! metastore or split write that fails is `Io`, a rejected request `InvalidArgument`.

pub use trawl_index::{Error, Result};
