//! What a search sees of a stream: a consistent set of searchers over its splits and hot index,
//! pinned so that a merge or retention cannot delete a split while a search reads it.

use std::any::Any;
use std::path::PathBuf;
use std::sync::Arc;

use tantivy::schema::{Field, Schema};
use tantivy::tokenizer::TokenizerManager;
use tantivy::Searcher;
use trawl_model::Timestamp;

/// What a [`SearchTarget`] is. Decide on this, never on the target's id: a hot index has an id
/// of its own (a ULID) like any split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetKind {
    /// A growing index (a stream's hot index, or a live tail's in-RAM batch): its content
    /// changes with every commit, so nothing computed over it may be cached.
    Hot,
    /// A sealed split: immutable until merged away or retired.
    Split,
}

/// One searchable unit: a sealed split or the hot index.
#[derive(Clone)]
pub struct SearchTarget {
    /// The id of the split or hot index, unique within the stream; for messages and ordering.
    pub id: String,
    /// Hot index or sealed split.
    pub kind: TargetKind,
    /// A searcher opened on the split's tantivy index.
    pub searcher: Searcher,
    /// Smallest timestamp in the target (inclusive), if it holds any document.
    pub min_timestamp: Option<Timestamp>,
    /// Largest timestamp in the target (inclusive), if it holds any document.
    pub max_timestamp: Option<Timestamp>,
    /// The directory of the target's files, for readers that bypass the searcher's mmap (a
    /// large export, see [`SearchTarget::store_reader`]). The files may have moved since (a
    /// sealed hot index is renamed into a split): readers fall back to the searcher when they
    /// are not found.
    pub(crate) dir: Option<PathBuf>,
    /// The splits a merge made this one from (empty for a hot index or a sealed one): a root
    /// that searched those itself leaves this one out (see the query crate's `remote`).
    pub parents: Arc<[String]>,
    /// With a shared tier: where and when this indexer's split was published, when known (a
    /// root whose list of published splits saw it leaves this copy out; see the query crate's
    /// `remote`). `None` for anything not published by this data directory.
    pub published: Option<Committed>,
    /// Keeps the split's files alive while the target is in use.
    _pin: Option<Arc<dyn Any + Send + Sync>>,
}

/// The commit of a split's publish in the shared tier's PostgreSQL metastore (see the storage
/// crate's `seen`, which reads it and tells whether a snapshot saw it): the transaction id, and
/// the cluster (`system_identifier`) and timeline it was given out on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Committed {
    pub system: u64,
    pub timeline: u32,
    pub xid: u64,
}

impl SearchTarget {
    /// A target of `kind` over a searcher; `pin` is dropped with the last clone of the target.
    pub fn new(
        kind: TargetKind,
        id: impl Into<String>,
        searcher: Searcher,
        min_timestamp: Option<Timestamp>,
        max_timestamp: Option<Timestamp>,
        pin: Option<Arc<dyn Any + Send + Sync>>,
    ) -> SearchTarget {
        SearchTarget {
            id: id.into(),
            kind,
            searcher,
            min_timestamp,
            max_timestamp,
            dir: None,
            parents: Arc::new([]),
            published: None,
            _pin: pin,
        }
    }

    /// Whether this is a hot index (see [`TargetKind::Hot`]).
    pub fn is_hot(&self) -> bool {
        self.kind == TargetKind::Hot
    }

    /// The target with the directory of its files.
    pub fn with_dir(mut self, dir: PathBuf) -> SearchTarget {
        self.dir = Some(dir);
        self
    }

    /// The target with the splits a merge made it from.
    pub fn with_parents(mut self, parents: &[String]) -> SearchTarget {
        self.parents = parents.into();
        self
    }

    /// Whether the target may hold documents in `[start, end)`.
    pub fn overlaps(&self, start: Option<Timestamp>, end: Option<Timestamp>) -> bool {
        let (Some(min), Some(max)) = (self.min_timestamp, self.max_timestamp) else {
            // Unknown bounds: an empty or still-growing target, it must be searched.
            return self.searcher.num_docs() > 0;
        };
        start.is_none_or(|s| max >= s) && end.is_none_or(|e| min < e)
    }
}

/// A stream's schema and the targets a search must visit, already pruned by time.
#[derive(Clone)]
pub struct StreamSnapshot {
    /// The stream's name.
    pub stream: String,
    /// The stream's tantivy schema.
    pub schema: Schema,
    /// The fields a query term without a field name searches.
    pub default_fields: Vec<Field>,
    /// Tokenizers for query parsing (the same the index was built with).
    pub tokenizers: TokenizerManager,
    /// The targets overlapping the requested time range.
    pub targets: Vec<SearchTarget>,
}
