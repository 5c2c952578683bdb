//! The groups of a whole pass, merged across targets on integers: every keyword value is
//! interned once per pass, groups are keyed by those ids, and a group is given its names
//! ([`Group`]) only when a report shows it. A report over a day of exec sessions has hundreds of
//! thousands of one-event groups of which it shows a hundred: choosing those hundred on integer
//! keys, and naming only them, is what keeps such a report cheap.

use std::sync::Arc;

use super::{
    ExtraValue, FxMap, Interner, Merger, RawExtra, RawKey, RawTally, TargetGroups, MAX_KEYS,
};
use crate::error::Result;
use crate::reports::engine::{Group, Key, KeyValue, RankOf};

/// The groups of a pass over every target: keys as ids of the pass's interners (a missing
/// keyword is the id of ""), integers as they are, the missing-integer mask in the last slot.
pub(crate) struct GroupSet {
    keys: Vec<Key>,
    key_names: Vec<Interner>,
    extra_names: Vec<Interner>,
    groups: Vec<(RawKey, RawTally)>,
}

/// How [`GroupSet::top`] ranks groups before their count: by one key's value (`None`: every
/// group alike).
pub(crate) type Priority<'a> = Option<(usize, &'a RankOf)>;

impl GroupSet {
    /// Merges the targets' groups: each target's names are interned into the pass's (once per
    /// distinct name and target), its groups re-keyed and added. More than `cap` groups is an
    /// error (`too_many`).
    pub(super) fn merge(
        keys: &[Key],
        extra_count: usize,
        targets: Vec<Arc<TargetGroups>>,
        cap: usize,
        too_many: impl Fn() -> crate::error::Error,
    ) -> Result<GroupSet> {
        let mut set = GroupSet {
            keys: keys.to_vec(),
            key_names: keys.iter().map(|_| Interner::default()).collect(),
            extra_names: (0..extra_count).map(|_| Interner::default()).collect(),
            groups: Vec::new(),
        };
        let mut merger = Merger::default();
        let single = targets.len() == 1;
        for target in targets {
            // One target whose names hold no "" keeps its groups apart: they need no index.
            let distinct = single
                && keys.iter().enumerate().all(|(slot, key)| {
                    !matches!(key, Key::Str(_)) || !target.key_names[slot].contains(b"")
                });
            // Per keyword key (and `Terms` extra): the target's id → the pass's id.
            let key_ids: Vec<Option<Vec<u64>>> = keys
                .iter()
                .enumerate()
                .map(|(slot, key)| match key {
                    Key::Str(_) => Some(set.key_names[slot].ids_of_names(&target.key_names[slot])),
                    Key::Int(_) | Key::Window(_) => None,
                })
                .collect();
            let extra_ids: Vec<Vec<u64>> = (0..extra_count)
                .map(|slot| set.extra_names[slot].ids_of_names(&target.extra_names[slot]))
                .collect();
            let empty_ids: Vec<u64> = keys
                .iter()
                .enumerate()
                .map(|(slot, key)| match key {
                    Key::Str(_) => set.key_names[slot].id(b""),
                    _ => 0,
                })
                .collect();
            let rekey = |mut key: RawKey| {
                for (slot, ids) in key_ids.iter().enumerate() {
                    if let Some(ids) = ids {
                        if key[MAX_KEYS] & (1 << slot) != 0 {
                            // A missing keyword is the empty string, as the rows show it.
                            key[MAX_KEYS] &= !(1 << slot);
                            key[slot] = empty_ids[slot];
                        } else {
                            key[slot] = ids.get(key[slot] as usize).copied().unwrap_or(u64::MAX);
                        }
                    }
                }
                key
            };
            let retally = |tally: &mut RawTally| {
                for (extra, ids) in tally.extras.iter_mut().zip(&extra_ids) {
                    if let RawExtra::Terms(counts) = extra {
                        let mut global =
                            FxMap::with_capacity_and_hasher(counts.len(), Default::default());
                        for (id, n) in counts.drain() {
                            let id = ids.get(id as usize).copied().unwrap_or(u64::MAX);
                            *global.entry(id).or_default() += n;
                        }
                        *counts = global;
                    }
                }
            };
            let mut part = match Arc::try_unwrap(target) {
                Ok(owned) => owned.groups,
                Err(shared) => shared.groups.clone(),
            };
            for (key, tally) in &mut part {
                *key = rekey(*key);
                retally(tally);
            }
            merger.add(part, distinct);
            if merger.groups.len() > cap {
                return Err(too_many());
            }
        }
        set.groups = merger.groups;
        Ok(set)
    }

    /// The pass's names per key and per extra, and its groups keyed by their ids: what a leaf
    /// sends a searcher ([`super::WireGroups`]).
    #[allow(clippy::type_complexity)]
    pub(super) fn into_parts(self) -> (Vec<Interner>, Vec<Interner>, Vec<(RawKey, RawTally)>) {
        (self.key_names, self.extra_names, self.groups)
    }

    /// Every group, named.
    pub fn all(&self) -> Vec<Group> {
        (0..self.groups.len()).map(|at| self.group(at)).collect()
    }

    /// The `limit` groups that come first by `priority` (smaller first), then the largest
    /// count, then the key values in key order, named; in no particular order. The same choice
    /// as sorting every named group that way and keeping the first `limit`, made on integers:
    /// a level of the order at a time, each deciding only between the groups the levels before
    /// left tied at the cut.
    pub fn top(&self, limit: usize, priority: Priority<'_>) -> Vec<Group> {
        if self.groups.len() <= limit {
            return self.all();
        }
        let mut chosen: Vec<usize> = Vec::with_capacity(limit);
        let mut tied: Vec<usize> = (0..self.groups.len()).collect();
        let mut need = limit;
        let priority_of = self.priority_table(priority);
        for level in 0..=self.keys.len() {
            if need == 0 {
                break;
            }
            let mut ranked: Vec<(u128, usize)> = match level {
                0 => tied
                    .iter()
                    .map(|&at| {
                        let (key, tally) = &self.groups[at];
                        let p = priority_of.as_ref().map_or(0, |f| f(key));
                        (
                            (u128::from(p) << 64) | u128::from(u64::MAX - tally.count),
                            at,
                        )
                    })
                    .collect(),
                _ => self.ranks(level - 1, &tied),
            };
            if ranked.len() <= need {
                chosen.extend(ranked.iter().map(|(_, at)| *at));
                need = 0;
                break;
            }
            ranked.select_nth_unstable_by_key(need - 1, |(rank, _)| *rank);
            let cut = ranked[need - 1].0;
            tied.clear();
            for (rank, at) in ranked {
                if rank < cut {
                    chosen.push(at);
                } else if rank == cut {
                    tied.push(at);
                }
            }
            need = limit - chosen.len();
            if tied.len() <= need {
                chosen.append(&mut tied);
                need = 0;
            }
        }
        // Distinct groups differ in some key, so the last level leaves no tie; should one be
        // left all the same, the first of the tied fill the limit.
        chosen.extend(tied.into_iter().take(need));
        chosen.into_iter().map(|at| self.group(at)).collect()
    }

    /// The priority of a raw key, when there is one: a keyword key's is computed once per
    /// distinct value.
    #[allow(clippy::type_complexity)]
    fn priority_table<'s>(
        &'s self,
        priority: Priority<'s>,
    ) -> Option<Box<dyn Fn(&RawKey) -> u8 + 's>> {
        let (slot, f) = priority?;
        match self.keys.get(slot)? {
            Key::Str(_) => {
                let table: Vec<u8> = self.key_names[slot]
                    .names
                    .iter()
                    .map(|name| f(&KeyValue::Str(name.clone())))
                    .collect();
                let fallback = f(&KeyValue::Str(Arc::from("")));
                Some(Box::new(move |key: &RawKey| {
                    table.get(key[slot] as usize).copied().unwrap_or(fallback)
                }))
            }
            Key::Int(_) | Key::Window(_) => Some(Box::new(move |key: &RawKey| {
                f(&KeyValue::Int(int_value(key, slot)))
            })),
        }
    }

    /// The rank of each of `at`'s groups by the value of key `slot`, in [`KeyValue`] order.
    fn ranks(&self, slot: usize, at: &[usize]) -> Vec<(u128, usize)> {
        match self.keys[slot] {
            Key::Str(_) => {
                let names = &self.key_names[slot];
                let mut ids: Vec<u64> = at.iter().map(|&g| self.groups[g].0[slot]).collect();
                ids.sort_unstable();
                ids.dedup();
                ids.sort_by(|a, b| names.text(*a).cmp(names.text(*b)));
                let rank: FxMap<u64, u128> = ids
                    .iter()
                    .enumerate()
                    .map(|(r, id)| (*id, r as u128))
                    .collect();
                at.iter()
                    .map(|&g| (rank.get(&self.groups[g].0[slot]).copied().unwrap_or(0), g))
                    .collect()
            }
            Key::Int(_) | Key::Window(_) => at
                .iter()
                .map(|&g| {
                    // `None` before every value; values in signed order.
                    let rank = match int_value(&self.groups[g].0, slot) {
                        None => 0,
                        Some(v) => (1u128 << 64) | u128::from((v as u64) ^ (1 << 63)),
                    };
                    (rank, g)
                })
                .collect(),
        }
    }

    /// The group at `at`, named.
    fn group(&self, at: usize) -> Group {
        let (key, tally) = &self.groups[at];
        let values = self
            .keys
            .iter()
            .enumerate()
            .map(|(slot, k)| {
                let value = match k {
                    Key::Str(_) => KeyValue::Str(self.key_names[slot].name(key[slot])),
                    Key::Int(_) | Key::Window(_) => KeyValue::Int(int_value(key, slot)),
                };
                (*k, value)
            })
            .collect();
        let extras = tally
            .extras
            .iter()
            .enumerate()
            .map(|(slot, extra)| match extra {
                RawExtra::Terms(counts) => {
                    let mut terms =
                        FxMap::with_capacity_and_hasher(counts.len(), Default::default());
                    for (id, count) in counts {
                        *terms.entry(self.extra_names[slot].name(*id)).or_default() += count;
                    }
                    ExtraValue::Terms(terms)
                }
                RawExtra::Any(any) => ExtraValue::Any(*any),
                RawExtra::Sketch(sketch) => ExtraValue::Sketch(sketch.clone()),
                RawExtra::Max(max) => ExtraValue::Max(*max),
            })
            .collect();
        Group {
            values,
            count: tally.count,
            first: (tally.first != i64::MAX).then_some(tally.first),
            last: (tally.last != i64::MIN).then_some(tally.last),
            extras,
        }
    }
}

/// An integer key's value in a raw key (`None` when the mask says it is missing).
fn int_value(key: &RawKey, slot: usize) -> Option<i64> {
    (key[MAX_KEYS] & (1 << slot) == 0).then_some(key[slot] as i64)
}
