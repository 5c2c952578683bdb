//! A grouping pass between a searcher and its indexers: the pass as the searcher asks for it
//! ([`PassSpec`]: the query text, the keys and extras by field name, the time range) and an
//! indexer's groups as they come back ([`WireGroups`]: its interned names and its groups keyed
//! by their ids, postcard-encoded). The searcher merges them with its own targets' groups in
//! [`super::GroupSet::merge`], on the same integers as a local pass: a report through a
//! searcher is the same report as over one index holding every event.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, OnceLock};

use serde::{Deserialize, Serialize};
use sketches_ddsketch::DDSketch;
use tantivy::schema::Schema;

use super::{Extra, FxMap, Interner, RawExtra, RawKey, RawTally, TargetGroups, MAX_KEYS};
use crate::error::{Error, Result};
use crate::reports::engine::Key;

/// A grouping key by field name ([`Key`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum KeySpec {
    Str(String),
    Int(String),
    Window(i64),
}

/// What a group gathers besides its count, by field name ([`Extra`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum ExtraSpec {
    Terms(String),
    Any(String),
    Sketch(String),
    Max(String),
}

/// One grouping pass of a report, as a searcher asks an indexer for its groups: the documents
/// of `[start, end)` (nanoseconds) matching `query`, grouped by `keys`, with `extras`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PassSpec {
    pub query: String,
    pub keys: Vec<KeySpec>,
    pub extras: Vec<ExtraSpec>,
    pub start: Option<i64>,
    pub end: Option<i64>,
}

impl PassSpec {
    pub(crate) fn new(
        query: &str,
        keys: &[Key],
        extras: &[Extra],
        start: Option<trawl_model::Timestamp>,
        end: Option<trawl_model::Timestamp>,
    ) -> PassSpec {
        PassSpec {
            query: query.to_string(),
            keys: keys
                .iter()
                .map(|key| match *key {
                    Key::Str(field) => KeySpec::Str(field.to_string()),
                    Key::Int(field) => KeySpec::Int(field.to_string()),
                    Key::Window(width) => KeySpec::Window(width),
                })
                .collect(),
            extras: extras
                .iter()
                .map(|extra| match *extra {
                    Extra::Terms(field) => ExtraSpec::Terms(field.to_string()),
                    Extra::Any(field) => ExtraSpec::Any(field.to_string()),
                    Extra::Sketch(field) => ExtraSpec::Sketch(field.to_string()),
                    Extra::Max(field) => ExtraSpec::Max(field.to_string()),
                })
                .collect(),
            start: start.map(|t| t.0),
            end: end.map(|t| t.0),
        }
    }

    /// The pass's keys and extras, each field checked to be a fast field of `schema`. A field
    /// the schema lacks, or does not keep as a column, is an [`Error::InvalidArgument`].
    pub(crate) fn resolve(&self, schema: &Schema) -> Result<(Vec<Key>, Vec<Extra>)> {
        if self.keys.len() > MAX_KEYS {
            return Err(Error::InvalidArgument(format!(
                "a grouping has at most {MAX_KEYS} keys"
            )));
        }
        let field = |name: &str| -> Result<&'static str> {
            let fast = schema
                .get_field(name)
                .map(|field| schema.get_field_entry(field).is_fast())
                .unwrap_or(false);
            if !fast {
                let shown: String = name.chars().take(80).collect();
                return Err(Error::InvalidArgument(format!(
                    "`{shown}` is not a column of the stream"
                )));
            }
            Ok(static_name(name))
        };
        let keys = self
            .keys
            .iter()
            .map(|key| {
                Ok(match key {
                    KeySpec::Str(name) => Key::Str(field(name)?),
                    KeySpec::Int(name) => Key::Int(field(name)?),
                    KeySpec::Window(width) if *width > 0 => Key::Window(*width),
                    KeySpec::Window(_) => {
                        return Err(Error::InvalidArgument("a window must be positive".into()))
                    }
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let extras = self
            .extras
            .iter()
            .map(|extra| {
                Ok(match extra {
                    ExtraSpec::Terms(name) => Extra::Terms(field(name)?),
                    ExtraSpec::Any(name) => Extra::Any(field(name)?),
                    ExtraSpec::Sketch(name) => Extra::Sketch(field(name)?),
                    ExtraSpec::Max(name) => Extra::Max(field(name)?),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok((keys, extras))
    }
}

/// `name` with a static lifetime, as [`Key`] and [`Extra`] hold field names. Each distinct name
/// is allocated once; only fast fields of a report stream's schema get here
/// ([`PassSpec::resolve`]), so the set stays as small as those schemas.
fn static_name(name: &str) -> &'static str {
    static NAMES: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let mut names = crate::remote::lock(NAMES.get_or_init(Default::default));
    if let Some(known) = names.get(name) {
        return known;
    }
    let leaked: &'static str = Box::leak(name.to_string().into_boxed_str());
    names.insert(leaked);
    leaked
}

/// One node's groups of a pass: the keyword values it met per key (and per `Terms` extra),
/// numbered by position, and its groups keyed by those numbers.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct WireGroups {
    key_names: Vec<Vec<String>>,
    extra_names: Vec<Vec<String>>,
    groups: Vec<WireGroup>,
    /// The node's time budget ran out before every segment was read.
    pub timed_out: bool,
}

#[derive(Clone, Serialize, Deserialize)]
struct WireGroup {
    key: RawKey,
    count: u64,
    first: i64,
    last: i64,
    extras: Vec<WireExtra>,
}

#[derive(Clone, Serialize, Deserialize)]
enum WireExtra {
    Terms(Vec<(u64, u64)>),
    Any(bool),
    Sketch(Box<DDSketch>),
    Max(Option<i64>),
}

impl WireGroups {
    /// The groups of a whole pass, as a leaf sends them.
    pub(crate) fn from_set(set: super::GroupSet, timed_out: bool) -> WireGroups {
        let (key_names, extra_names, groups) = set.into_parts();
        let names = |interners: Vec<Interner>| -> Vec<Vec<String>> {
            interners
                .into_iter()
                .map(|i| i.names.iter().map(|name| name.to_string()).collect())
                .collect()
        };
        WireGroups {
            key_names: names(key_names),
            extra_names: names(extra_names),
            groups: groups
                .into_iter()
                .map(|(key, tally)| WireGroup {
                    key,
                    count: tally.count,
                    first: tally.first,
                    last: tally.last,
                    extras: tally
                        .extras
                        .into_iter()
                        .map(|extra| match extra {
                            RawExtra::Terms(counts) => {
                                let mut counts: Vec<(u64, u64)> = counts.into_iter().collect();
                                counts.sort_unstable();
                                WireExtra::Terms(counts)
                            }
                            RawExtra::Any(any) => WireExtra::Any(any),
                            RawExtra::Sketch(sketch) => WireExtra::Sketch(sketch),
                            RawExtra::Max(max) => WireExtra::Max(max),
                        })
                        .collect(),
                })
                .collect(),
            timed_out,
        }
    }

    /// Back into one part of a pass with `keys` and `extras`, checked against them: names for
    /// every key and extra, and each group's extras of the kinds asked for. Ids without a name
    /// are harmless (the merge maps them past every name, as the empty value).
    pub(crate) fn into_target(self, keys: &[Key], extras: &[Extra]) -> Result<TargetGroups> {
        let mismatch = |what: &str| {
            Error::Internal(format!(
                "an indexer's groups do not match the report's pass: {what}"
            ))
        };
        if self.key_names.len() != keys.len() || self.extra_names.len() != extras.len() {
            return Err(mismatch("the number of keys or extras"));
        }
        let interners = |names: Vec<Vec<String>>| -> Vec<Interner> {
            names
                .into_iter()
                .map(|names| {
                    let mut interner = Interner::default();
                    for name in names {
                        let name: Arc<str> = Arc::from(name);
                        interner
                            .ids
                            .entry(name.clone())
                            .or_insert(interner.names.len() as u64);
                        interner.names.push(name);
                    }
                    interner
                })
                .collect()
        };
        let mut groups = Vec::with_capacity(self.groups.len());
        for group in self.groups {
            if group.extras.len() != extras.len() {
                return Err(mismatch("the extras of a group"));
            }
            let extras = group
                .extras
                .into_iter()
                .zip(extras)
                .map(|(value, extra)| match (value, extra) {
                    (WireExtra::Terms(counts), Extra::Terms(_)) => {
                        let mut map: FxMap<u64, u64> =
                            FxMap::with_capacity_and_hasher(counts.len(), Default::default());
                        for (id, n) in counts {
                            *map.entry(id).or_default() += n;
                        }
                        Ok(RawExtra::Terms(map))
                    }
                    (WireExtra::Any(any), Extra::Any(_)) => Ok(RawExtra::Any(any)),
                    (WireExtra::Sketch(sketch), Extra::Sketch(_)) => Ok(RawExtra::Sketch(sketch)),
                    (WireExtra::Max(max), Extra::Max(_)) => Ok(RawExtra::Max(max)),
                    _ => Err(mismatch("the kind of an extra")),
                })
                .collect::<Result<Vec<_>>>()?;
            groups.push((
                group.key,
                RawTally {
                    count: group.count,
                    first: group.first,
                    last: group.last,
                    extras,
                },
            ));
        }
        Ok(TargetGroups {
            key_names: interners(self.key_names),
            extra_names: interners(self.extra_names),
            groups,
        })
    }
}
