//! A cache of per-split aggregation results, for the repeated aggregation-only requests of
//! reports and dashboards.
//!
//! A split never changes once sealed, so the count and the aggregation intermediate result of
//! one request over one split stay true until the split is merged away. Quickwit's split cache
//! and Elasticsearch's shard request cache rest on the same fact. An entry is keyed by the
//! split id (with its segments' ids) and everything that decides the result over that split:
//! the query text, the caller's scope, the aggregations (canonical JSON), and the time bounds —
//! or `full` when the split lies wholly inside them, so that `start=now-24h` asked again a
//! minute later still hits for every split but the edges. The hot index ([`TargetKind::Hot`])
//! is never cached. Partial results (the time budget ran out) are never stored.
//!
//! Every lookup counts as a hit or a miss ([`LeafCache::counters`], exported as
//! `trawl_query_leaf_cache_{hits,misses}_total`), and each entry counts its own hits.
//!
//! Values are kept postcard-encoded, so their size is known exactly; the cache holds at most
//! [`CAPACITY_BYTES`] and evicts the least recently used entries beyond it. Entries of a split
//! that was merged away are never asked for again and age out.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use serde_json::Value;
use tantivy::aggregation::intermediate_agg_result::IntermediateAggregationResults;
use trawl_index::{SearchTarget, TargetKind};

use crate::request::ParsedRequest;

/// Most bytes (keys and encoded values) the process keeps cached.
pub const CAPACITY_BYTES: usize = 256 * 1024 * 1024;

/// An entry larger than this is not cached (it would evict too much for one request).
const MAX_ENTRY_BYTES: usize = CAPACITY_BYTES / 8;

/// What a cached request yielded over one split.
pub(crate) struct Cached {
    pub count: u64,
    pub aggs: IntermediateAggregationResults,
}

struct Entry {
    count: u64,
    encoded: Vec<u8>,
    last_used: u64,
    /// Times this entry answered a request.
    hits: u64,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<String, Entry>,
    used: usize,
    clock: u64,
    /// Lookups answered from the cache, and lookups that found nothing.
    hits: u64,
    misses: u64,
}

/// What the cache has answered: lookups found and not found, over the process's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CacheCounters {
    pub hits: u64,
    pub misses: u64,
}

/// A bounded LRU map from request-over-split keys to results.
pub(crate) struct LeafCache {
    capacity: usize,
    inner: Mutex<Inner>,
}

impl LeafCache {
    pub(crate) fn new(capacity: usize) -> LeafCache {
        LeafCache {
            capacity,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// The process-wide cache.
    pub(crate) fn global() -> &'static LeafCache {
        static CACHE: OnceLock<LeafCache> = OnceLock::new();
        CACHE.get_or_init(|| LeafCache::new(CAPACITY_BYTES))
    }

    /// The cache key of `req` over `target`, or `None` when the result must not be cached: the
    /// hot index, or a request that returns hits or has no aggregations.
    pub(crate) fn key(target: &SearchTarget, req: &ParsedRequest) -> Option<String> {
        if target.kind == TargetKind::Hot || req.limit != 0 {
            return None;
        }
        let aggs = serde_json::to_value(req.aggs.as_ref()?).ok()?;
        let covered = match (target.min_timestamp, target.max_timestamp) {
            (Some(min), Some(max)) => {
                req.start.is_none_or(|s| min >= s) && req.end.is_none_or(|e| max < e)
            }
            _ => return None,
        };
        let bounds = if covered {
            "full".to_string()
        } else {
            format!("{:?}..{:?}", req.start.map(|t| t.0), req.end.map(|t| t.0))
        };
        let scope = serde_json::to_string(&req.scope).ok()?;
        Some(format!(
            "{}\u{1}{}\u{1}{}\u{1}{}\u{1}{}\u{1}{}",
            target.id,
            content_key(target),
            req.query,
            scope,
            bounds,
            canonical(&aggs)
        ))
    }

    /// The cached result of `key`, if any.
    pub(crate) fn get(&self, key: &str) -> Option<Cached> {
        let mut inner = self.inner.lock().ok()?;
        inner.clock += 1;
        let clock = inner.clock;
        let found = inner.entries.get_mut(key).and_then(|entry| {
            entry.last_used = clock;
            let aggs = postcard::from_bytes(&entry.encoded).ok()?;
            entry.hits += 1;
            Some(Cached {
                count: entry.count,
                aggs,
            })
        });
        match found {
            Some(_) => inner.hits += 1,
            None => inner.misses += 1,
        }
        found
    }

    /// How often the entry of `key` answered a request; `None` when there is no such entry.
    #[cfg(test)]
    pub(crate) fn hits_of(&self, key: &str) -> Option<u64> {
        let inner = self.inner.lock().ok()?;
        inner.entries.get(key).map(|e| e.hits)
    }

    /// The hits and misses of every lookup so far.
    pub fn counters(&self) -> CacheCounters {
        self.inner
            .lock()
            .map(|i| CacheCounters {
                hits: i.hits,
                misses: i.misses,
            })
            .unwrap_or_default()
    }

    /// Stores a complete result of `key`, evicting the least recently used entries beyond the
    /// capacity.
    pub(crate) fn put(&self, key: String, count: u64, aggs: &IntermediateAggregationResults) {
        let Ok(encoded) = postcard::to_stdvec(aggs) else {
            return;
        };
        let size = key.len() + encoded.len();
        if size > MAX_ENTRY_BYTES.min(self.capacity) {
            return;
        }
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        inner.clock += 1;
        let clock = inner.clock;
        if let Some(old) = inner.entries.remove(&key) {
            inner.used -= key.len() + old.encoded.len();
        }
        while inner.used + size > self.capacity {
            let Some(oldest) = inner
                .entries
                .iter()
                .min_by_key(|(_, e)| e.last_used)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            if let Some(old) = inner.entries.remove(&oldest) {
                inner.used -= oldest.len() + old.encoded.len();
            }
        }
        inner.used += size;
        inner.entries.insert(
            key,
            Entry {
                count,
                encoded,
                last_used: clock,
                hits: 0,
            },
        );
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.inner.lock().map(|i| i.entries.len()).unwrap_or(0)
    }
}

/// JSON text with object keys sorted at every depth, so that equal aggregations give equal
/// keys whatever order their maps iterate in.
fn canonical(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let body: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{}:{}", Value::String(k.clone()), canonical(&map[k])))
                .collect();
            format!("{{{}}}", body.join(","))
        }
        Value::Array(items) => {
            let body: Vec<String> = items.iter().map(canonical).collect();
            format!("[{}]", body.join(","))
        }
        other => other.to_string(),
    }
}

/// The target's segments' ids and live counts: they pin a cache key to this very content,
/// even where two targets share an id (tests build several indexes under the same name).
pub(crate) fn content_key(target: &SearchTarget) -> String {
    let segments: Vec<String> = target
        .searcher
        .segment_readers()
        .iter()
        .map(|r| format!("{}/{}", r.segment_id().uuid_string(), r.num_docs()))
        .collect();
    segments.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Regression: the hot index was told apart by `target.id == "hot"`, but its id is a ULID
    /// like any split's. The kind decides: a hot target is never cached, even with time bounds,
    /// and a split is, whatever its id.
    #[test]
    fn a_hot_target_is_never_cached_and_a_split_is() {
        let (split, hot, named_hot) = crate::testutil::split_and_lookalikes();
        let mut req = ParsedRequest::new("*", &crate::QueryLimits::default());
        req.limit = 0;
        req.aggs = Some(crate::parse_aggs(json!({"l": {"terms": {"field": "level"}}})).unwrap());
        assert_eq!(LeafCache::key(&hot, &req), None);
        assert!(LeafCache::key(&named_hot, &req).is_some_and(|k| k.starts_with("hot\u{1}")));
        assert!(LeafCache::key(&split, &req).is_some());
    }

    #[test]
    fn canonical_json_ignores_key_order() {
        let a = json!({"b": {"y": 1, "x": [ {"q": 1, "p": 2} ]}, "a": "s"});
        let b = json!({"a": "s", "b": {"x": [ {"p": 2, "q": 1} ], "y": 1}});
        assert_eq!(canonical(&a), canonical(&b));
        assert_ne!(canonical(&a), canonical(&json!({"a": "t"})));
    }

    #[test]
    fn least_recently_used_entries_go_first() {
        let aggs = IntermediateAggregationResults::default();
        let one = postcard::to_stdvec(&aggs).unwrap().len();
        // Room for exactly two entries with 1-byte keys.
        let cache = LeafCache::new(2 * (1 + one));
        cache.put("a".into(), 1, &aggs);
        cache.put("b".into(), 2, &aggs);
        assert_eq!(cache.hits_of("a"), Some(0));
        assert_eq!(cache.get("a").map(|c| c.count), Some(1));
        assert_eq!(cache.hits_of("a"), Some(1));
        assert!(cache.get("zzz").is_none());
        assert_eq!(cache.counters(), CacheCounters { hits: 1, misses: 1 });
        cache.put("c".into(), 3, &aggs);
        assert_eq!(cache.len(), 2);
        assert!(cache.get("b").is_none(), "b was the least recently used");
        assert_eq!(cache.get("a").map(|c| c.count), Some(1));
        assert_eq!(cache.get("c").map(|c| c.count), Some(3));
        // Replacing a key keeps the accounting right.
        cache.put("c".into(), 4, &aggs);
        assert_eq!(cache.get("c").map(|c| c.count), Some(4));
        assert_eq!(cache.len(), 2);
    }
}
