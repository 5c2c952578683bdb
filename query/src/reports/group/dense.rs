//! The hot loop of a segment whose keys all have small ranges ([`Dense`]): each document's
//! group is a number computed a key column at a time over a block of documents (a mixed-radix
//! code: each key's offset in its range, the last value of the range for a missing key), looked
//! up in a direct table. The groups' counts and times are kept in an array of their own, and the
//! raw keys are rebuilt from the codes once per group at the end.

use sketches_ddsketch::{Config, DDSketch};
use tantivy::query::Weight;
use tantivy::{DateTime, SegmentReader};

use super::read::{first_vals, BlockReader, Dense, RowScratch};
use super::{
    add_extras, window_start, ExtraColumn, FxMap, KeyColumn, RawExtra, RawKey, RawTally, Segment,
    GROUP_BATCH, MAX_KEYS,
};
use crate::search::for_each_live_batch;

/// A group's count and first and last times, side by side: the three are updated together.
#[derive(Clone, Copy)]
struct Stats {
    count: u64,
    first: i64,
    last: i64,
}

impl Default for Stats {
    fn default() -> Stats {
        Stats {
            count: 0,
            first: i64::MAX,
            last: i64::MIN,
        }
    }
}

/// What the loop gathers for a sketch extra: each value's count (a sketch is made of them at
/// the end, with `add_with_count`: the same sketch as adding the values one by one, without a
/// logarithm per document).
type Values = FxMap<i64, u64>;

impl Segment {
    /// [`Segment::collect`] over a [`Dense`] table; `None` past `cap` groups.
    pub(super) fn collect_dense(
        &self,
        weight: &dyn Weight,
        reader: &SegmentReader,
        mut dense: Dense,
        cap: usize,
    ) -> tantivy::Result<Option<Vec<(RawKey, RawTally)>>> {
        let mut codes_of: Vec<u64> = Vec::new();
        let mut stats: Vec<Stats> = Vec::new();
        let mut groups: Vec<u32> = Vec::new();
        let mut extras: Vec<RawTally> = Vec::new();
        // Per group and sketch extra (in the order of the extras that are sketches).
        let mut values: Vec<Vec<Values>> = Vec::new();
        let sketch_columns: Vec<(usize, &tantivy::columnar::Column<i64>)> = self
            .extras
            .iter()
            .enumerate()
            .filter_map(|(at, extra)| match extra {
                ExtraColumn::Sketch(Some(column)) => Some((at, column)),
                _ => None,
            })
            .collect();
        // Extras other than sketches are added per document as the general loop does.
        let other_extras = self
            .extras
            .iter()
            .any(|e| !matches!(e, ExtraColumn::Sketch(_)));
        let mut sketch_readers: Vec<BlockReader<i64>> = sketch_columns
            .iter()
            .map(|(_, column)| BlockReader::new(column))
            .collect();
        let mut sketch_values: Vec<Vec<Option<i64>>> =
            sketch_columns.iter().map(|_| Vec::new()).collect();
        let (mut str_readers, mut int_readers) = self.key_readers();
        let mut overflow = false;
        let mut times: Vec<Option<DateTime>> = Vec::new();
        let mut ords: Vec<Option<u64>> = Vec::new();
        let mut ints: Vec<Option<i64>> = Vec::new();
        let mut codes: Vec<u64> = Vec::new();
        let mut rows = RowScratch::default();
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
            codes.clear();
            codes.resize(n, 0);
            for (slot, key) in self.keys.iter().enumerate() {
                let radix = dense.radix[slot];
                let absent = radix - 1;
                let (base, step) = (dense.base[slot], dense.step[slot]);
                match key {
                    KeyColumn::Str(Some(_)) => {
                        ords.clear();
                        ords.resize(n, None);
                        if let Some(reader) = &mut str_readers[slot] {
                            reader.read(docs, &mut ords, &mut rows);
                        }
                        for (code, ord) in codes.iter_mut().zip(&ords) {
                            *code = *code * radix + ord.map_or(absent, |o| o.min(absent));
                        }
                    }
                    KeyColumn::Int(Some(_)) => {
                        ints.clear();
                        ints.resize(n, None);
                        if let Some(reader) = &mut int_readers[slot] {
                            reader.read(docs, &mut ints, &mut rows);
                        }
                        for (code, value) in codes.iter_mut().zip(&ints) {
                            let digit =
                                value.map_or(absent, |v| (v as u64).wrapping_sub(base).min(absent));
                            *code = *code * radix + digit;
                        }
                    }
                    KeyColumn::Window(width) => {
                        for (code, time) in codes.iter_mut().zip(&times) {
                            let digit = time.map_or(absent, |t| {
                                let start = window_start(t.into_timestamp_nanos(), *width);
                                ((start as u64).wrapping_sub(base) / step).min(absent)
                            });
                            *code = *code * radix + digit;
                        }
                    }
                    // No document of the segment has the key: radix 1, every code unchanged.
                    KeyColumn::Str(None) | KeyColumn::Int(None) => {}
                }
            }
            for ((reader, out), _) in sketch_readers
                .iter_mut()
                .zip(sketch_values.iter_mut())
                .zip(&sketch_columns)
            {
                out.clear();
                out.resize(n, None);
                reader.read(docs, out, &mut rows);
            }
            // The block's groups first (a new one gets its slots), then the tallies: two short
            // loops whose loads and stores do not wait on each other as one long loop's did.
            groups.clear();
            for &code in &codes {
                let slot = &mut dense.slots[code as usize];
                if *slot == u32::MAX {
                    if stats.len() >= cap {
                        overflow = true;
                        return;
                    }
                    *slot = stats.len() as u32;
                    codes_of.push(code);
                    stats.push(Stats::default());
                    if other_extras {
                        extras.push(self.new_tally());
                    }
                    if !sketch_columns.is_empty() {
                        values.push(sketch_columns.iter().map(|_| Values::default()).collect());
                    }
                }
                groups.push(*slot);
            }
            for (&group, time) in groups.iter().zip(&times) {
                let stats = &mut stats[group as usize];
                stats.count += 1;
                if let Some(time) = time {
                    let nanos = time.into_timestamp_nanos();
                    stats.first = stats.first.min(nanos);
                    stats.last = stats.last.max(nanos);
                }
            }
            if other_extras {
                for (&doc, &group) in docs.iter().zip(&groups) {
                    add_extras(&mut extras[group as usize], &self.extras, doc, false);
                }
            }
            if !sketch_columns.is_empty() {
                for (i, &group) in groups.iter().enumerate() {
                    for (gathered, read) in values[group as usize].iter_mut().zip(&sketch_values) {
                        if let Some(value) = read[i] {
                            *gathered.entry(value).or_default() += 1;
                        }
                    }
                }
            }
        })?;
        if overflow {
            return Ok(None);
        }
        let mut out = Vec::with_capacity(stats.len());
        for (group, code) in codes_of.into_iter().enumerate() {
            let mut tally = if other_extras {
                std::mem::replace(&mut extras[group], self.new_tally())
            } else {
                self.new_tally()
            };
            tally.count = stats[group].count;
            tally.first = stats[group].first;
            tally.last = stats[group].last;
            if let Some(gathered) = values.get_mut(group) {
                for ((at, _), counted) in sketch_columns.iter().zip(gathered.drain(..)) {
                    tally.extras[*at] = RawExtra::Sketch(Box::new(sketch_of(counted)));
                }
            }
            out.push((self.raw_key(&dense, code), tally));
        }
        Ok(Some(out))
    }

    /// The raw key (ordinals, integers, window starts, the missing-key mask) of a dense code.
    fn raw_key(&self, dense: &Dense, mut code: u64) -> RawKey {
        let mut key: RawKey = [0; MAX_KEYS + 1];
        for slot in (0..self.keys.len()).rev() {
            let radix = dense.radix[slot];
            let digit = code % radix;
            code /= radix;
            if digit == radix - 1 {
                key[MAX_KEYS] |= 1 << slot;
                continue;
            }
            key[slot] = match self.keys[slot] {
                KeyColumn::Str(_) => digit,
                KeyColumn::Int(_) => dense.base[slot].wrapping_add(digit),
                KeyColumn::Window(_) => dense.base[slot].wrapping_add(digit * dense.step[slot]),
            };
        }
        key
    }
}

/// The sketch of counted values, as tantivy's percentiles configure it.
fn sketch_of(values: Values) -> DDSketch {
    let mut sketch = DDSketch::new(Config::defaults());
    let mut values: Vec<(i64, u64)> = values.into_iter().collect();
    // In value order, so that the sketch does not depend on the map's order.
    values.sort_unstable();
    for (value, count) in values {
        sketch.add_with_count(value as f64, count);
    }
    sketch
}
