//! The grouped results of sealed splits, kept for repeated reports.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use trawl_index::{SearchTarget, TargetKind};

use super::{Extra, RawExtra, TargetGroups};
use crate::reports::engine::Key;

/// The grouped result of one sealed split for one report pass, kept so that a dashboard
/// refreshing a report recomputes only the hot index. Keyed by the split's segments (ids and
/// live counts: the very content), the query text, keys, extras and scope, and the time bounds
/// when they cut the split. Least recently used entries go first past the capacity.
pub(crate) struct GroupCache {
    capacity: usize,
    inner: Mutex<CacheInner>,
}

#[derive(Default)]
struct CacheInner {
    entries: HashMap<String, (Arc<TargetGroups>, usize, u64)>,
    used: usize,
    clock: u64,
}

/// What the cache may hold, estimated (128 MiB).
const CACHE_BYTES: usize = 128 << 20;

impl GroupCache {
    pub(super) fn global() -> &'static GroupCache {
        static CACHE: OnceLock<GroupCache> = OnceLock::new();
        CACHE.get_or_init(|| GroupCache {
            capacity: CACHE_BYTES,
            inner: Mutex::new(CacheInner::default()),
        })
    }

    /// The key of a split's pass; `None` for the hot index (it changes every commit) and for
    /// a target without known bounds.
    pub(super) fn key(target: &SearchTarget, pass: &PassKey<'_>) -> Option<String> {
        if target.kind == TargetKind::Hot {
            return None;
        }
        let (min, max) = (target.min_timestamp?, target.max_timestamp?);
        let covered = pass.start.is_none_or(|s| min >= s) && pass.end.is_none_or(|e| max < e);
        let bounds = if covered {
            "full".to_string()
        } else {
            format!("{:?}..{:?}", pass.start.map(|t| t.0), pass.end.map(|t| t.0))
        };
        Some(format!(
            "{}|{}|{:?}|{:?}|{}|{}|{}",
            target.id,
            crate::leaf_cache::content_key(target),
            pass.keys,
            pass.extras,
            pass.query,
            pass.scope,
            bounds
        ))
    }

    pub(super) fn get(&self, key: &str) -> Option<Arc<TargetGroups>> {
        let mut inner = self.inner.lock().ok()?;
        inner.clock += 1;
        let clock = inner.clock;
        let entry = inner.entries.get_mut(key)?;
        entry.2 = clock;
        Some(entry.0.clone())
    }

    pub(super) fn put(&self, key: String, groups: Arc<TargetGroups>) {
        let size = estimate(&groups) + key.len();
        if size > self.capacity / 4 {
            return;
        }
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        inner.clock += 1;
        let clock = inner.clock;
        if let Some((_, old, _)) = inner.entries.insert(key, (groups, size, clock)) {
            inner.used -= old;
        }
        inner.used += size;
        while inner.used > self.capacity {
            let Some(oldest) = inner
                .entries
                .iter()
                .min_by_key(|(_, (_, _, used))| *used)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            if let Some((_, size, _)) = inner.entries.remove(&oldest) {
                inner.used -= size;
            }
        }
    }
}

/// Roughly the bytes a target's groups hold: the groups, their extras and the names.
fn estimate(groups: &TargetGroups) -> usize {
    let names: usize = groups
        .key_names
        .iter()
        .chain(&groups.extra_names)
        .flat_map(|interner| &interner.names)
        .map(|name| name.len() + 48)
        .sum();
    let tallies: usize = groups
        .groups
        .iter()
        .map(|(_, tally)| {
            let extras: usize = tally
                .extras
                .iter()
                .map(|e| match e {
                    RawExtra::Terms(terms) => terms.len() * 32,
                    RawExtra::Any(_) => 1,
                    RawExtra::Sketch(_) => 2048,
                    RawExtra::Max(_) => 16,
                })
                .sum();
            std::mem::size_of::<(super::RawKey, super::RawTally)>()
                + 24 * tally.extras.len()
                + extras
        })
        .sum();
    names + tallies
}

/// What identifies a grouping pass apart from the target.
pub(crate) struct PassKey<'a> {
    pub query: &'a str,
    pub keys: &'a [Key],
    pub extras: &'a [Extra],
    pub scope: String,
    pub start: Option<trawl_model::Timestamp>,
    pub end: Option<trawl_model::Timestamp>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: the hot index was told apart by `target.id == "hot"`, but its id is a ULID
    /// like any split's. The kind decides: a hot target is never cached, even with time bounds,
    /// and a split is, whatever its id.
    #[test]
    fn a_hot_target_is_never_cached_and_a_split_is() {
        let (split, hot, named_hot) = crate::testutil::split_and_lookalikes();
        let pass = PassKey {
            query: "*",
            keys: &[],
            extras: &[],
            scope: String::new(),
            start: None,
            end: None,
        };
        assert_eq!(GroupCache::key(&hot, &pass), None);
        assert!(GroupCache::key(&named_hot, &pass).is_some_and(|k| k.starts_with("hot|")));
        assert!(GroupCache::key(&split, &pass).is_some());
    }
}
