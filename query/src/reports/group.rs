//! Typed grouping, what every report rests on: one pass over the matching live documents of
//! every target (targets in parallel), reading the keys' fast columns as term ordinals and
//! integers, counting each combination with its first and last time and a few typed extras;
//! then naming the ordinals once per segment and merging segments and targets by value.
//!
//! It replaces a generic `multi_terms` aggregation whose per-bucket sub-aggregation
//! collectors, memory churn and JSON results took seconds over 10M events.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::time::Instant;

use rustc_hash::FxHasher;
use sketches_ddsketch::{Config, DDSketch};
use tantivy::columnar::{Column, StrColumn};
use tantivy::query::{Query, Weight};
use tantivy::{DateTime, SegmentReader};
use trawl_indexer::SearchTarget;

use super::engine::{max_opt, min_opt, Key, KeyValue};
use crate::error::{Error, Result};
use crate::search::{for_each_live_block, for_each_target, internal, weight_on, TIMESTAMP_FIELD};

type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// The most keys a grouping has.
pub(crate) const MAX_KEYS: usize = 8;

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
}

/// What an [`Extra`] gathered over a group.
#[derive(Clone)]
pub(crate) enum ExtraValue {
    Terms(HashMap<String, u64>),
    Any(bool),
    Sketch(Box<DDSketch>),
}

impl ExtraValue {
    fn merge(&mut self, other: ExtraValue) -> Result<()> {
        match (self, other) {
            (ExtraValue::Terms(into), ExtraValue::Terms(from)) => {
                for (term, count) in from {
                    *into.entry(term).or_default() += count;
                }
            }
            (ExtraValue::Any(into), ExtraValue::Any(from)) => *into |= from,
            (ExtraValue::Sketch(into), ExtraValue::Sketch(from)) => into
                .merge(&from)
                .map_err(|err| Error::Internal(format!("merging sketches: {err}")))?,
            _ => return Err(Error::Internal("mismatched report extras".to_string())),
        }
        Ok(())
    }
}

/// A group's figures, its key values aside.
#[derive(Clone)]
pub(crate) struct Tally {
    pub count: u64,
    pub first: Option<i64>,
    pub last: Option<i64>,
    pub extras: Vec<ExtraValue>,
}

impl Tally {
    fn merge(&mut self, other: Tally) -> Result<()> {
        self.count += other.count;
        self.first = min_opt(self.first, other.first);
        self.last = max_opt(self.last, other.last);
        for (into, from) in self.extras.iter_mut().zip(other.extras) {
            into.merge(from)?;
        }
        Ok(())
    }
}

/// Groups by key values, merged across segments and targets.
pub(crate) type Grouped = HashMap<Vec<KeyValue>, Tally>;

/// The outcome of a grouping pass.
pub(crate) struct GroupPass {
    pub groups: Grouped,
    /// The time budget ran out before every segment was read.
    pub timed_out: bool,
}

/// Groups the documents `query` matches on `targets` by `keys`, gathering `extras`; refuses
/// ([`Error::TooExpensive`]) more than `cap` groups.
pub(crate) fn group(
    targets: &[&SearchTarget],
    query: &dyn Query,
    keys: &[Key],
    extras: &[Extra],
    cap: usize,
    parallelism: usize,
    deadline: Instant,
) -> Result<GroupPass> {
    if keys.len() > MAX_KEYS {
        return Err(Error::Internal(format!(
            "a report groups by at most {MAX_KEYS} keys"
        )));
    }
    let parts = for_each_target(targets, parallelism, |target| {
        group_target(target, query, keys, extras, cap, deadline)
    })?;
    let mut timed_out = false;
    let mut groups = Grouped::new();
    for part in parts {
        timed_out |= part.timed_out;
        merge_into(&mut groups, part.groups, cap)?;
    }
    Ok(GroupPass { groups, timed_out })
}

fn too_many(cap: usize) -> Error {
    Error::TooExpensive(format!(
        "the report has more than {cap} groups: narrow the time range or add a `q` filter"
    ))
}

fn merge_into(into: &mut Grouped, from: Grouped, cap: usize) -> Result<()> {
    if into.is_empty() {
        *into = from;
        return Ok(());
    }
    for (key, tally) in from {
        match into.get_mut(&key) {
            Some(existing) => existing.merge(tally)?,
            None => {
                into.insert(key, tally);
            }
        }
    }
    if into.len() > cap {
        return Err(too_many(cap));
    }
    Ok(())
}

fn group_target(
    target: &SearchTarget,
    query: &dyn Query,
    keys: &[Key],
    extras: &[Extra],
    cap: usize,
    deadline: Instant,
) -> Result<GroupPass> {
    let mut pass = GroupPass {
        groups: Grouped::new(),
        timed_out: false,
    };
    let weight = weight_on(query, target)?;
    for reader in target.searcher.segment_readers() {
        if Instant::now() >= deadline {
            pass.timed_out = true;
            break;
        }
        let segment = Segment::open(reader, keys, extras).map_err(|e| internal(&target.id, e))?;
        let raw = segment
            .collect(weight.as_ref(), reader, cap)
            .map_err(|e| internal(&target.id, e))?;
        let Some(raw) = raw else {
            return Err(too_many(cap));
        };
        let named = segment.name(raw).map_err(|e| internal(&target.id, e))?;
        merge_into(&mut pass.groups, named, cap)?;
    }
    Ok(pass)
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
}

/// A group of one segment: keys still as ordinals.
struct RawTally {
    count: u64,
    first: i64,
    last: i64,
    extras: Vec<RawExtra>,
}

enum RawExtra {
    Terms(FxMap<u64, u64>),
    Any(bool),
    Sketch(Box<DDSketch>),
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
    ) -> tantivy::Result<Option<FxMap<RawKey, RawTally>>> {
        let mut groups: FxMap<RawKey, RawTally> = FxMap::default();
        let mut overflow = false;
        let mut times: Vec<Option<DateTime>> = Vec::new();
        let mut ords: Vec<Option<u64>> = Vec::new();
        let mut ints: Vec<Option<i64>> = Vec::new();
        let mut raw: Vec<RawKey> = Vec::new();
        for_each_live_block(weight, reader, |docs| {
            if overflow {
                return;
            }
            let n = docs.len();
            times.clear();
            times.resize(n, None);
            if let Some(column) = &self.timestamp {
                column.first_vals(docs, &mut times);
            }
            raw.clear();
            raw.resize(n, [0; MAX_KEYS + 1]);
            for (slot, key) in self.keys.iter().enumerate() {
                let missing = 1u64 << slot;
                match key {
                    KeyColumn::Str(column) => {
                        ords.clear();
                        ords.resize(n, None);
                        if let Some(column) = column {
                            column.ords().first_vals(docs, &mut ords);
                        }
                        for (key, ord) in raw.iter_mut().zip(&ords) {
                            match ord {
                                Some(ord) => key[slot] = *ord,
                                None => key[MAX_KEYS] |= missing,
                            }
                        }
                    }
                    KeyColumn::Int(column) => {
                        ints.clear();
                        ints.resize(n, None);
                        if let Some(column) = column {
                            column.first_vals(docs, &mut ints);
                        }
                        for (key, value) in raw.iter_mut().zip(&ints) {
                            match value {
                                Some(value) => key[slot] = *value as u64,
                                None => key[MAX_KEYS] |= missing,
                            }
                        }
                    }
                    KeyColumn::Window(width) => {
                        for (key, time) in raw.iter_mut().zip(&times) {
                            match time {
                                Some(time) => {
                                    let nanos = time.into_timestamp_nanos();
                                    key[slot] = (nanos - nanos.rem_euclid(*width)) as u64;
                                }
                                None => key[MAX_KEYS] |= missing,
                            }
                        }
                    }
                }
            }
            for ((&doc, key), time) in docs.iter().zip(&raw).zip(&times) {
                let tally = match groups.get_mut(key) {
                    Some(tally) => tally,
                    None => {
                        if groups.len() >= cap {
                            overflow = true;
                            return;
                        }
                        groups.entry(*key).or_insert_with(|| self.new_tally())
                    }
                };
                tally.count += 1;
                if let Some(time) = time {
                    let nanos = time.into_timestamp_nanos();
                    tally.first = tally.first.min(nanos);
                    tally.last = tally.last.max(nanos);
                }
                for (extra, column) in tally.extras.iter_mut().zip(&self.extras) {
                    match (extra, column) {
                        (RawExtra::Terms(counts), ExtraColumn::Terms(Some(column))) => {
                            if let Some(ord) = column.ords().first(doc) {
                                *counts.entry(ord).or_default() += 1;
                            }
                        }
                        (RawExtra::Any(any), ExtraColumn::Any(Some(column))) => {
                            *any |= column.values_for_doc(doc).any(|v| v);
                        }
                        (RawExtra::Sketch(sketch), ExtraColumn::Sketch(Some(column))) => {
                            if let Some(value) = column.first(doc) {
                                sketch.add(value as f64);
                            }
                        }
                        _ => {}
                    }
                }
            }
        })?;
        Ok((!overflow).then_some(groups))
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
                })
                .collect(),
        }
    }

    /// Names the raw keys: term ordinals become their text (each looked up once).
    fn name(&self, raw: FxMap<RawKey, RawTally>) -> std::io::Result<Grouped> {
        let mut names: Vec<FxMap<u64, String>> = vec![FxMap::default(); self.keys.len()];
        let mut extra_names: Vec<FxMap<u64, String>> = vec![FxMap::default(); self.extras.len()];
        let mut grouped = Grouped::with_capacity(raw.len());
        for (key, tally) in raw {
            let mut values = Vec::with_capacity(self.keys.len());
            for (slot, column) in self.keys.iter().enumerate() {
                let present = key[MAX_KEYS] & (1 << slot) == 0;
                values.push(match column {
                    KeyColumn::Str(column) => KeyValue::Str(match (present, column) {
                        (true, Some(column)) => lookup(column, key[slot], &mut names[slot])?,
                        _ => String::new(),
                    }),
                    KeyColumn::Int(_) | KeyColumn::Window(_) => {
                        KeyValue::Int(present.then_some(key[slot] as i64))
                    }
                });
            }
            let mut extras = Vec::with_capacity(tally.extras.len());
            for (slot, extra) in tally.extras.into_iter().enumerate() {
                extras.push(match extra {
                    RawExtra::Terms(counts) => {
                        let mut named = HashMap::with_capacity(counts.len());
                        if let ExtraColumn::Terms(Some(column)) = &self.extras[slot] {
                            for (ord, count) in counts {
                                let term = lookup(column, ord, &mut extra_names[slot])?;
                                *named.entry(term).or_default() += count;
                            }
                        }
                        ExtraValue::Terms(named)
                    }
                    RawExtra::Any(any) => ExtraValue::Any(any),
                    RawExtra::Sketch(sketch) => ExtraValue::Sketch(sketch),
                });
            }
            let tally = Tally {
                count: tally.count,
                first: (tally.first != i64::MAX).then_some(tally.first),
                last: (tally.last != i64::MIN).then_some(tally.last),
                extras,
            };
            // Distinct ordinals are distinct names within a segment.
            grouped.insert(values, tally);
        }
        Ok(grouped)
    }
}

/// The text of a term ordinal, from the cache or the column's dictionary.
fn lookup(column: &StrColumn, ord: u64, cache: &mut FxMap<u64, String>) -> std::io::Result<String> {
    if let Some(name) = cache.get(&ord) {
        return Ok(name.clone());
    }
    let mut name = String::new();
    column.ord_to_str(ord, &mut name)?;
    cache.insert(ord, name.clone());
    Ok(name)
}
