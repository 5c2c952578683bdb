//! Typed grouping, what every report rests on: one pass over the matching live documents of
//! every segment (segments in parallel), reading the keys' fast columns as term ordinals and
//! integers, counting each combination with its first and last time and a few typed extras
//! (keys of small ranges through a direct table: `dense.rs`); then interning the ordinals per
//! target and again per pass, so that segments and targets merge on integers (`set.rs`), and
//! naming only the groups a report shows.
//!
//! It replaces a generic `multi_terms` aggregation whose per-bucket sub-aggregation
//! collectors, memory churn and JSON results took seconds over 10M events.

mod cache;
mod dense;
mod read;
mod set;
mod wire;

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use rustc_hash::FxHasher;
use sketches_ddsketch::{Config, DDSketch};
use tantivy::columnar::{Column, StrColumn};
use tantivy::query::{Query, Weight};
use tantivy::{DateTime, DocId, SegmentReader};
use trawl_index::SearchTarget;

use cache::GroupCache;
pub(crate) use cache::PassKey;
use read::{first_vals, BlockReader, Dense, RowScratch};
pub(crate) use set::GroupSet;
pub(crate) use wire::{PassSpec, WireGroups};

use super::engine::{max_opt, Key};
use crate::error::{Error, Result};
use crate::search::{for_each_live_batch, internal, parallel_visit, weight_on, TIMESTAMP_FIELD};

type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// The most keys a grouping has.
pub(crate) const MAX_KEYS: usize = 8;

/// Documents read per call of the grouping loops (tantivy hands out 64 at a time).
const GROUP_BATCH: usize = 1024;

/// A document's keys as read from the columns: term ordinals, integers, window starts; the
/// last slot is the bitmask of the keys the document lacks.
type RawKey = [u64; MAX_KEYS + 1];

/// What a group gathers besides its count and times.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Extra {
    /// How many of the group's documents hold each value of a keyword field (documents
    /// without it are not counted).
    Terms(&'static str),
    /// Whether any of the group's documents has `true` in a bool field.
    Any(&'static str),
    /// A sketch of an integer field's values, for percentiles (relative error 1 %, as
    /// tantivy's and Elasticsearch's `percentiles`).
    Sketch(&'static str),
    /// The largest value of an integer field (`None` when no document has it).
    Max(&'static str),
}

/// What an [`Extra`] gathered over a group.
#[derive(Clone)]
pub(crate) enum ExtraValue {
    Terms(FxMap<Arc<str>, u64>),
    Any(bool),
    Sketch(Box<DDSketch>),
    Max(Option<i64>),
}

/// The outcome of a grouping pass.
pub(crate) struct GroupPass {
    pub groups: GroupSet,
    /// The time budget ran out before every segment was read.
    pub timed_out: bool,
}

/// Groups the documents `query` matches on `targets` by the pass's keys, gathering its extras,
/// and merges in the groups of the pass's `others` parts (what indexers answered a searcher,
/// called once this node's segments are grouped);
/// refuses ([`Error::TooExpensive`]) more than `cap` groups.
pub(crate) fn group(
    targets: &[&SearchTarget],
    query: &dyn Query,
    pass: &PassKey<'_>,
    others: impl FnOnce() -> Result<Vec<TargetGroups>>,
    cap: usize,
    parallelism: usize,
    deadline: Instant,
) -> Result<GroupPass> {
    let (keys, extras) = (pass.keys, pass.extras);
    if keys.len() > MAX_KEYS {
        return Err(Error::Internal(format!(
            "a report groups by at most {MAX_KEYS} keys"
        )));
    }
    let weights = targets
        .iter()
        .map(|target| weight_on(query, target))
        .collect::<Result<Vec<_>>>()?;
    let cache = GroupCache::global();
    let cache_keys: Vec<Option<String>> = targets
        .iter()
        .map(|target| GroupCache::key(target, pass))
        .collect();
    let mut cached: Vec<Option<Arc<TargetGroups>>> = cache_keys
        .iter()
        .map(|key| key.as_deref().and_then(|key| cache.get(key)))
        .collect();
    // Every segment of every target is a unit of work, the largest first, so that both
    // cores stay busy to the end whatever the sizes of the targets.
    let units: Vec<(usize, usize)> = targets
        .iter()
        .enumerate()
        .filter(|(t, _)| cached[*t].is_none())
        .flat_map(|(t, target)| (0..target.searcher.segment_readers().len()).map(move |s| (t, s)))
        .collect();
    let reader = |&(t, s): &(usize, usize)| &targets[t].searcher.segment_readers()[s];
    let mut visit: Vec<usize> = (0..units.len()).collect();
    visit.sort_by_key(|&u| std::cmp::Reverse(reader(&units[u]).max_doc()));
    let timed_out = AtomicBool::new(false);
    let parts = parallel_visit::<_, _, crate::error::Error>(&units, &visit, parallelism, |unit| {
        if Instant::now() >= deadline {
            timed_out.store(true, Ordering::Relaxed);
            return Ok(None);
        }
        let target = targets[unit.0];
        let fail = |e: tantivy::TantivyError| internal(&target.id, e);
        let segment = Segment::open(reader(unit), keys, extras).map_err(fail)?;
        let raw = segment
            .collect(weights[unit.0].as_ref(), reader(unit), cap)
            .map_err(fail)?
            .ok_or_else(|| too_many(cap))?;
        Ok(Some((segment, raw)))
    })?;
    // Per target, its segments' groups merge on interned ids; targets on the pass's ids.
    let mut per_target: Vec<Vec<SegmentGroups>> = targets.iter().map(|_| Vec::new()).collect();
    let mut complete = vec![true; targets.len()];
    for (unit, part) in units.iter().zip(parts) {
        match part {
            Some(part) => per_target[unit.0].push(part),
            None => complete[unit.0] = false,
        }
    }
    let mut merged = Vec::with_capacity(targets.len());
    for (t, (target, parts)) in targets.iter().zip(per_target).enumerate() {
        let groups = match cached[t].take() {
            Some(groups) => groups,
            None => {
                let groups = Arc::new(
                    merge_target(parts, keys, extras, cap)
                        .map_err(|e| internal(&target.id, e))??,
                );
                if let (Some(key), true) = (cache_keys[t].clone(), complete[t]) {
                    cache.put(key, groups.clone());
                }
                groups
            }
        };
        merged.push(groups);
    }
    merged.extend(others()?.into_iter().map(Arc::new));
    Ok(GroupPass {
        groups: GroupSet::merge(keys, extras.len(), merged, cap, || too_many(cap))?,
        timed_out: timed_out.load(Ordering::Relaxed),
    })
}

fn too_many(cap: usize) -> Error {
    Error::TooExpensive(format!(
        "the report has more than {cap} groups: narrow the time range or add a `q` filter"
    ))
}

/// Groups with distinct keys, built by adding parts: the first part is taken as it is, and
/// the index of keys is built only once a second part has to be merged into it.
#[derive(Default)]
struct Merger {
    groups: Vec<(RawKey, RawTally)>,
    index: FxMap<RawKey, u32>,
    indexed: bool,
}

impl Merger {
    /// Adds `part`, whose keys are distinct when `distinct` says so.
    fn add(&mut self, part: Vec<(RawKey, RawTally)>, distinct: bool) {
        if self.groups.is_empty() && distinct {
            self.groups = part;
            return;
        }
        if !self.indexed {
            self.index = self
                .groups
                .iter()
                .enumerate()
                .map(|(at, (key, _))| (*key, at as u32))
                .collect();
            self.indexed = true;
        }
        for (key, tally) in part {
            match self.index.entry(key) {
                Entry::Occupied(entry) => self.groups[*entry.get() as usize].1.merge(tally),
                Entry::Vacant(entry) => {
                    entry.insert(self.groups.len() as u32);
                    self.groups.push((key, tally));
                }
            }
        }
    }
}

/// A segment's columns and its groups, keys as the segment's ordinals.
type SegmentGroups = (Segment, Vec<(RawKey, RawTally)>);

/// One target's groups: keys and `Terms` extras as ids of the target's own interners (a
/// keyword's ordinals differ from segment to segment, its interned ids do not). What the cache
/// keeps of a split.
#[derive(Default)]
pub(crate) struct TargetGroups {
    key_names: Vec<Interner>,
    extra_names: Vec<Interner>,
    /// Distinct keys.
    groups: Vec<(RawKey, RawTally)>,
}

/// Merges one target's segments. Within the target, keyword values are interned: each
/// segment's term ordinals are mapped (one sorted pass over its dictionaries) onto the target's
/// ids, so that segments merge on integer keys and each value is named once.
fn merge_target(
    parts: Vec<SegmentGroups>,
    keys: &[Key],
    extras: &[Extra],
    cap: usize,
) -> std::io::Result<Result<TargetGroups>> {
    let mut key_names: Vec<Interner> = keys.iter().map(|_| Interner::default()).collect();
    let mut extra_names: Vec<Interner> = extras.iter().map(|_| Interner::default()).collect();
    let mut merger = Merger::default();
    for (segment, mut raw) in parts {
        segment.globalize(&mut raw, &mut key_names, &mut extra_names)?;
        merger.add(raw, true);
        if merger.groups.len() > cap {
            return Ok(Err(too_many(cap)));
        }
    }
    Ok(Ok(TargetGroups {
        key_names,
        extra_names,
        groups: merger.groups,
    }))
}

/// The keyword values of one target, numbered in the order first met.
#[derive(Default)]
struct Interner {
    ids: FxMap<Arc<str>, u64>,
    names: Vec<Arc<str>>,
}

impl Interner {
    fn id(&mut self, name: &[u8]) -> u64 {
        let name = String::from_utf8_lossy(name);
        if let Some(&id) = self.ids.get(name.as_ref()) {
            return id;
        }
        let id = self.names.len() as u64;
        let name: Arc<str> = Arc::from(name.as_ref());
        self.names.push(name.clone());
        self.ids.insert(name, id);
        id
    }

    fn name(&self, id: u64) -> Arc<str> {
        self.names
            .get(id as usize)
            .cloned()
            .unwrap_or_else(|| Arc::from(""))
    }

    fn text(&self, id: u64) -> &str {
        self.names.get(id as usize).map_or("", |name| name)
    }

    fn contains(&self, name: &[u8]) -> bool {
        std::str::from_utf8(name).is_ok_and(|name| self.ids.contains_key(name))
    }

    /// This interner's ids of `other`'s names, indexed by `other`'s ids.
    fn ids_of_names(&mut self, other: &Interner) -> Vec<u64> {
        other
            .names
            .iter()
            .map(|name| match self.ids.get(name.as_ref()) {
                Some(&id) => id,
                None => {
                    let id = self.names.len() as u64;
                    self.names.push(name.clone());
                    self.ids.insert(name.clone(), id);
                    id
                }
            })
            .collect()
    }

    /// The ids of a segment's `ords` (sorted, distinct) of `column`, in the same order.
    fn ids_of(&mut self, column: &StrColumn, ords: &[u64]) -> std::io::Result<Vec<u64>> {
        let mut ids = Vec::with_capacity(ords.len());
        column
            .dictionary()
            .sorted_ords_to_term_cb(ords, |term| ids.push(self.id(term)))?;
        Ok(ids)
    }
}

/// A key's column in one segment (`None`: no document of the segment has the field).
enum KeyColumn {
    Str(Option<StrColumn>),
    Int(Option<Column<i64>>),
    /// The start of the fixed window (nanoseconds) the document's time falls in.
    Window(i64),
}

enum ExtraColumn {
    Terms(Option<StrColumn>),
    Any(Option<Column<bool>>),
    Sketch(Option<Column<i64>>),
    Max(Option<Column<i64>>),
}

/// A group of one segment (keys as ordinals), of a target (as the target's ids) or of the pass.
#[derive(Clone)]
struct RawTally {
    count: u64,
    first: i64,
    last: i64,
    extras: Vec<RawExtra>,
}

#[derive(Clone)]
enum RawExtra {
    Terms(FxMap<u64, u64>),
    Any(bool),
    Sketch(Box<DDSketch>),
    Max(Option<i64>),
}

impl RawTally {
    fn merge(&mut self, other: RawTally) {
        self.count += other.count;
        self.first = self.first.min(other.first);
        self.last = self.last.max(other.last);
        for (into, from) in self.extras.iter_mut().zip(other.extras) {
            match (into, from) {
                (RawExtra::Terms(into), RawExtra::Terms(from)) => {
                    for (id, count) in from {
                        *into.entry(id).or_default() += count;
                    }
                }
                (RawExtra::Any(into), RawExtra::Any(from)) => *into |= from,
                (RawExtra::Sketch(into), RawExtra::Sketch(from)) => {
                    // Both are made with `Config::defaults()`: merging cannot fail.
                    let _ = into.merge(&from);
                }
                (RawExtra::Max(into), RawExtra::Max(from)) => *into = max_opt(*into, from),
                _ => {}
            }
        }
    }
}

/// The columns one segment is grouped with.
struct Segment {
    keys: Vec<KeyColumn>,
    extras: Vec<ExtraColumn>,
    timestamp: Option<Column<DateTime>>,
}

impl Segment {
    fn open(reader: &SegmentReader, keys: &[Key], extras: &[Extra]) -> tantivy::Result<Segment> {
        let fast = reader.fast_fields();
        let keys = keys
            .iter()
            .map(|key| {
                Ok(match *key {
                    Key::Str(field) => KeyColumn::Str(fast.str(field)?),
                    Key::Int(field) => KeyColumn::Int(fast.column_opt::<i64>(field)?),
                    Key::Window(width) => KeyColumn::Window(width.max(1)),
                })
            })
            .collect::<tantivy::Result<Vec<_>>>()?;
        let extras = extras
            .iter()
            .map(|extra| {
                Ok(match *extra {
                    Extra::Terms(field) => ExtraColumn::Terms(fast.str(field)?),
                    Extra::Any(field) => ExtraColumn::Any(fast.column_opt::<bool>(field)?),
                    Extra::Sketch(field) => ExtraColumn::Sketch(fast.column_opt::<i64>(field)?),
                    Extra::Max(field) => ExtraColumn::Max(fast.column_opt::<i64>(field)?),
                })
            })
            .collect::<tantivy::Result<Vec<_>>>()?;
        Ok(Segment {
            keys,
            extras,
            timestamp: fast.column_opt::<DateTime>(TIMESTAMP_FIELD)?,
        })
    }

    /// Counts the segment's matching live documents per raw key; `None` past `cap` groups.
    fn collect(
        &self,
        weight: &dyn Weight,
        reader: &SegmentReader,
        cap: usize,
    ) -> tantivy::Result<Option<Vec<(RawKey, RawTally)>>> {
        if let Some(dense) = Dense::new(self, reader.max_doc()) {
            return self.collect_dense(weight, reader, dense, cap);
        }
        // The map of the hot loop is keyed by as few words as there are keys (and the mask):
        // hashing and comparing 72 bytes per document was a tenth of a report's time.
        match self.keys.len() {
            0 => self.collect_n::<1>(weight, reader, cap),
            1 => self.collect_n::<2>(weight, reader, cap),
            2 => self.collect_n::<3>(weight, reader, cap),
            3 => self.collect_n::<4>(weight, reader, cap),
            4 => self.collect_n::<5>(weight, reader, cap),
            5 => self.collect_n::<6>(weight, reader, cap),
            6 => self.collect_n::<7>(weight, reader, cap),
            7 => self.collect_n::<8>(weight, reader, cap),
            _ => self.collect_n::<9>(weight, reader, cap),
        }
    }

    /// [`Segment::collect`] with keys of `N - 1` slots and the missing-key mask in slot
    /// `N - 1`.
    ///
    /// About 100 lines on purpose: it is the hot loop of every grouped report, and the
    /// per-block closure shares its scratch buffers, column readers and group index with the
    /// code around it, which a split would pass as a dozen arguments.
    fn collect_n<const N: usize>(
        &self,
        weight: &dyn Weight,
        reader: &SegmentReader,
        cap: usize,
    ) -> tantivy::Result<Option<Vec<(RawKey, RawTally)>>> {
        let mask = N - 1;
        let mut index: FxMap<[u64; N], u32> = FxMap::default();
        let mut tallies: Vec<([u64; N], RawTally)> = Vec::new();
        let mut overflow = false;
        let mut times: Vec<Option<DateTime>> = Vec::new();
        let mut ords: Vec<Option<u64>> = Vec::new();
        let mut ints: Vec<Option<i64>> = Vec::new();
        let mut rows = RowScratch::default();
        let mut raw: Vec<[u64; N]> = Vec::new();
        let (mut str_readers, mut int_readers) = self.key_readers();
        for_each_live_batch(weight, reader, GROUP_BATCH, |docs| {
            if overflow {
                return;
            }
            let n = docs.len();
            times.clear();
            times.resize(n, None);
            if let Some(column) = &self.timestamp {
                first_vals(column, docs, &mut times, &mut rows);
            }
            raw.clear();
            raw.resize(n, [0; N]);
            for (slot, key) in self.keys.iter().enumerate().take(mask) {
                match key {
                    KeyColumn::Str(_) => {
                        ords.clear();
                        ords.resize(n, None);
                        if let Some(reader) = &mut str_readers[slot] {
                            reader.read(docs, &mut ords, &mut rows);
                        }
                        fill_slot(&mut raw, &ords, slot, |ord| ord);
                    }
                    KeyColumn::Int(_) => {
                        ints.clear();
                        ints.resize(n, None);
                        if let Some(reader) = &mut int_readers[slot] {
                            reader.read(docs, &mut ints, &mut rows);
                        }
                        fill_slot(&mut raw, &ints, slot, |value| value as u64);
                    }
                    KeyColumn::Window(width) => fill_slot(&mut raw, &times, slot, |time| {
                        window_start(time.into_timestamp_nanos(), *width) as u64
                    }),
                }
            }
            for ((&doc, key), time) in docs.iter().zip(&raw).zip(&times) {
                let found = index.entry(*key).or_insert(u32::MAX);
                if *found == u32::MAX {
                    if tallies.len() >= cap {
                        overflow = true;
                        return;
                    }
                    *found = tallies.len() as u32;
                    tallies.push((*key, self.new_tally()));
                }
                let tally = &mut tallies[*found as usize].1;
                tally.count += 1;
                if let Some(time) = time {
                    let nanos = time.into_timestamp_nanos();
                    tally.first = tally.first.min(nanos);
                    tally.last = tally.last.max(nanos);
                }
                add_extras(tally, &self.extras, doc, true);
            }
        })?;
        if overflow {
            return Ok(None);
        }
        // Widened to the common key shape, the mask in its last slot.
        Ok(Some(
            tallies
                .into_iter()
                .map(|(key, tally)| {
                    let mut raw: RawKey = [0; MAX_KEYS + 1];
                    raw[..mask].copy_from_slice(&key[..mask]);
                    raw[MAX_KEYS] = key[mask];
                    (raw, tally)
                })
                .collect(),
        ))
    }

    /// Per key: the block reader of a keyword's ordinals, and of an integer column.
    #[allow(clippy::type_complexity)]
    fn key_readers(
        &self,
    ) -> (
        Vec<Option<BlockReader<'_, u64>>>,
        Vec<Option<BlockReader<'_, i64>>>,
    ) {
        let strs = self
            .keys
            .iter()
            .map(|key| match key {
                KeyColumn::Str(Some(column)) => Some(BlockReader::new(column.ords())),
                _ => None,
            })
            .collect();
        let ints = self
            .keys
            .iter()
            .map(|key| match key {
                KeyColumn::Int(Some(column)) => Some(BlockReader::new(column)),
                _ => None,
            })
            .collect();
        (strs, ints)
    }

    fn new_tally(&self) -> RawTally {
        RawTally {
            count: 0,
            first: i64::MAX,
            last: i64::MIN,
            extras: self
                .extras
                .iter()
                .map(|extra| match extra {
                    ExtraColumn::Terms(_) => RawExtra::Terms(FxMap::default()),
                    ExtraColumn::Any(_) => RawExtra::Any(false),
                    ExtraColumn::Sketch(_) => {
                        RawExtra::Sketch(Box::new(DDSketch::new(Config::defaults())))
                    }
                    ExtraColumn::Max(_) => RawExtra::Max(None),
                })
                .collect(),
        }
    }

    /// Maps the segment's term ordinals (keys and `Terms` extras) onto the target's interned
    /// ids, in place. Distinct ordinals have distinct names within a segment, so no two groups
    /// collide.
    fn globalize(
        &self,
        raw: &mut [(RawKey, RawTally)],
        key_names: &mut [Interner],
        extra_names: &mut [Interner],
    ) -> std::io::Result<()> {
        // Per keyword key: the segment ordinal → target id table.
        let mut key_ids: Vec<Option<OrdTable>> = Vec::with_capacity(self.keys.len());
        for (slot, column) in self.keys.iter().enumerate() {
            key_ids.push(match column {
                KeyColumn::Str(Some(column)) => {
                    let present = raw.iter().filter(|(k, _)| k[MAX_KEYS] & (1 << slot) == 0);
                    let ords = sorted_distinct(present.map(|(k, _)| k[slot]));
                    let ids = key_names[slot].ids_of(column, &ords)?;
                    Some(OrdTable::new(column.num_terms() as u64, ords, ids))
                }
                _ => None,
            });
        }
        let mut extra_ids: Vec<Option<OrdTable>> = Vec::with_capacity(self.extras.len());
        for (slot, column) in self.extras.iter().enumerate() {
            extra_ids.push(match column {
                ExtraColumn::Terms(Some(column)) => {
                    let ords =
                        sorted_distinct(raw.iter().flat_map(|(_, t)| match &t.extras[slot] {
                            RawExtra::Terms(counts) => counts.keys().copied().collect::<Vec<_>>(),
                            _ => Vec::new(),
                        }));
                    let ids = extra_names[slot].ids_of(column, &ords)?;
                    Some(OrdTable::new(column.num_terms() as u64, ords, ids))
                }
                _ => None,
            });
        }
        for (key, tally) in raw.iter_mut() {
            for (slot, ids) in key_ids.iter().enumerate() {
                if let Some(ids) = ids {
                    if key[MAX_KEYS] & (1 << slot) == 0 {
                        key[slot] = ids.get(key[slot]);
                    }
                }
            }
            for (extra, ids) in tally.extras.iter_mut().zip(&extra_ids) {
                if let (RawExtra::Terms(counts), Some(ids)) = (extra, ids) {
                    *counts = counts.drain().map(|(ord, n)| (ids.get(ord), n)).collect();
                }
            }
        }
        Ok(())
    }
}

/// A segment's term ordinal → a target's interned id, for the ordinals a pass met: a table
/// indexed by ordinal when the dictionary is not much larger than them, else a search.
enum OrdTable {
    Direct(Vec<u64>),
    Sorted(Vec<u64>, Vec<u64>),
}

impl OrdTable {
    fn new(num_terms: u64, ords: Vec<u64>, ids: Vec<u64>) -> OrdTable {
        if num_terms <= (ords.len() as u64).saturating_mul(8).max(1 << 16) {
            let mut direct = vec![u64::MAX; num_terms as usize];
            for (ord, id) in ords.into_iter().zip(ids) {
                if let Some(slot) = direct.get_mut(ord as usize) {
                    *slot = id;
                }
            }
            OrdTable::Direct(direct)
        } else {
            OrdTable::Sorted(ords, ids)
        }
    }

    fn get(&self, ord: u64) -> u64 {
        match self {
            OrdTable::Direct(ids) => ids.get(ord as usize).copied().unwrap_or(u64::MAX),
            OrdTable::Sorted(ords, ids) => ords
                .binary_search(&ord)
                .ok()
                .and_then(|at| ids.get(at).copied())
                .unwrap_or(u64::MAX),
        }
    }
}

/// Writes each document's value of key `slot` (`code` of it) into its raw key, or marks the key
/// missing in the mask (the last slot).
fn fill_slot<const N: usize, T: Copy>(
    raw: &mut [[u64; N]],
    values: &[Option<T>],
    slot: usize,
    code: impl Fn(T) -> u64,
) {
    for (key, value) in raw.iter_mut().zip(values) {
        match value {
            Some(value) => key[slot] = code(*value),
            None => key[N - 1] |= 1 << slot,
        }
    }
}

/// The start of the window of `width` nanoseconds (aligned on the epoch) `nanos` falls in.
pub(crate) fn window_start(nanos: i64, width: i64) -> i64 {
    nanos - nanos.rem_euclid(width)
}

fn sorted_distinct(values: impl Iterator<Item = u64>) -> Vec<u64> {
    let mut values: Vec<u64> = values.collect();
    values.sort_unstable();
    values.dedup();
    values
}

/// Adds one document's extra columns (top terms, any-true flags, distinct-count sketches) to
/// its group's tally.
/// Sketches only when `sketches` says so (the dense loop counts their values itself).
#[inline]
fn add_extras(tally: &mut RawTally, extras: &[ExtraColumn], doc: DocId, sketches: bool) {
    for (extra, column) in tally.extras.iter_mut().zip(extras) {
        match (extra, column) {
            (RawExtra::Terms(counts), ExtraColumn::Terms(Some(column))) => {
                if let Some(ord) = column.ords().first(doc) {
                    *counts.entry(ord).or_default() += 1;
                }
            }
            (RawExtra::Any(any), ExtraColumn::Any(Some(column))) => {
                *any |= column.values_for_doc(doc).any(|v| v);
            }
            (RawExtra::Sketch(sketch), ExtraColumn::Sketch(Some(column))) if sketches => {
                if let Some(value) = column.first(doc) {
                    sketch.add(value as f64);
                }
            }
            (RawExtra::Max(max), ExtraColumn::Max(Some(column))) => {
                *max = max_opt(*max, column.values_for_doc(doc).max());
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests;
