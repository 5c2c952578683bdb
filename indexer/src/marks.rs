//! Source marks: per source, the end of the contiguous prefix of its bytes the index holds.
//!
//! A batch from the collector names, per source, the byte range its records cover and where
//! each record starts. A range wholly below the mark was delivered before and is dropped; a range
//! starting past the mark is a gap and the batch is refused, so that the collector resends from
//! the mark. Marks move in two steps: `pending` when a batch is queued for the WAL (so that the
//! next batch of the same source may follow it at once), `durable` once it is fsynced. A pending
//! mark is a promise only: an ingest answer judged by one (records dropped below it, a gap
//! reported at it) waits until the batches queued before it are durable (`indexer::ingest`).

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;

use crate::metastore::MarkState;

/// One source's part of a batch, as the delivery envelope declares it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceRange {
    pub id: String,
    pub start: u64,
    pub end: u64,
    /// Where each of the source's records starts, ascending.
    pub offsets: Vec<u64>,
    /// The collector knows it skipped data (a drop policy, a vanished file): accept the gap.
    #[serde(default)]
    pub gap_ok: bool,
}

/// The envelope: the first line of a delivery batch.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    pub sources: Vec<SourceRange>,
}

impl Envelope {
    /// Checks the envelope against the number of records that follow it.
    pub fn validate(&self, records: usize) -> Result<(), String> {
        let declared: usize = self.sources.iter().map(|s| s.offsets.len()).sum();
        if declared != records {
            return Err(format!(
                "delivery envelope declares {declared} records but the batch holds {records}"
            ));
        }
        for s in &self.sources {
            if s.id.is_empty() || s.id.len() > 512 {
                return Err("a source id must have 1 to 512 characters".into());
            }
            let ordered = s.offsets.windows(2).all(|w| w[0] < w[1]);
            let inside = s.offsets.first().is_none_or(|&first| {
                first >= s.start && s.offsets.last().is_some_and(|&l| l < s.end)
            });
            if s.start > s.end || !ordered || !inside {
                return Err(format!(
                    "source `{}`: offsets must ascend within [start, end)",
                    s.id
                ));
            }
        }
        Ok(())
    }
}

/// What to do with a batch, per the marks.
#[derive(Debug, PartialEq, Eq)]
pub enum Plan {
    /// Index the records whose flag is true; advance these marks.
    Take {
        keep: Vec<bool>,
        advance: Vec<(String, u64)>,
        dropped: usize,
    },
    /// A source starts past its mark: refuse the batch; the marks of every source in it.
    Gap { marks: BTreeMap<String, u64> },
}

/// The marks table.
#[derive(Debug, Default)]
pub struct Marks {
    pub durable: HashMap<String, MarkState>,
    pending: HashMap<String, u64>,
}

impl Marks {
    pub fn from_snapshot(snapshot: &BTreeMap<String, MarkState>) -> Marks {
        Marks {
            durable: snapshot.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            pending: HashMap::new(),
        }
    }

    fn current(&self, id: &str) -> Option<u64> {
        self.pending
            .get(id)
            .copied()
            .or_else(|| self.durable.get(id).map(|m| m.end))
    }

    /// Decides what of a batch to take. A source the table does not know starts wherever the
    /// batch says (its mark may have been garbage-collected while it was idle).
    pub fn plan(&self, sources: &[SourceRange]) -> Plan {
        let mut keep = Vec::new();
        let mut advance = Vec::new();
        let mut dropped = 0;
        let mut gap = false;
        for s in sources {
            let mark = self.current(&s.id);
            if let Some(mark) = mark {
                if s.start > mark && !s.gap_ok {
                    gap = true;
                }
            }
            let floor = mark.unwrap_or(0);
            for &offset in &s.offsets {
                let fresh = offset >= floor;
                dropped += usize::from(!fresh);
                keep.push(fresh);
            }
            if s.end > floor || mark.is_none() {
                advance.push((s.id.clone(), s.end.max(floor)));
            }
        }
        if gap {
            let marks = sources
                .iter()
                .map(|s| (s.id.clone(), self.current(&s.id).unwrap_or(0)))
                .collect();
            return Plan::Gap { marks };
        }
        Plan::Take {
            keep,
            advance,
            dropped,
        }
    }

    /// Records marks of a batch queued for the WAL.
    pub fn reserve(&mut self, advance: &[(String, u64)]) {
        for (id, end) in advance {
            self.pending.insert(id.clone(), *end);
        }
    }

    /// Records marks of a batch made durable.
    pub fn commit(&mut self, advance: &[(String, u64)], now: i64) {
        for (id, end) in advance {
            let entry = self.durable.entry(id.clone()).or_insert(MarkState {
                end: 0,
                updated_at: now,
            });
            entry.end = entry.end.max(*end);
            entry.updated_at = now;
            if self.pending.get(id).is_some_and(|p| *p <= entry.end) {
                self.pending.remove(id);
            }
        }
    }

    /// Sets a source's mark to `end`, up or down: where a source taken over from another
    /// indexer resumes (the mark its published splits carry).
    pub fn resume(&mut self, id: &str, end: u64, now: i64) {
        self.pending.remove(id);
        self.durable.insert(
            id.to_string(),
            MarkState {
                end,
                updated_at: now,
            },
        );
    }

    /// Whether the table knows `id`.
    pub fn knows(&self, id: &str) -> bool {
        self.current(id).is_some()
    }

    /// Forgets every pending mark after a WAL failure: what was queued was not made durable.
    pub fn abort_pending(&mut self) {
        self.pending.clear();
    }

    /// Drops marks idle since before `cutoff`.
    pub fn gc(&mut self, cutoff: i64) -> usize {
        let before = self.durable.len();
        let pending = &self.pending;
        self.durable
            .retain(|id, m| m.updated_at >= cutoff || pending.contains_key(id));
        before - self.durable.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(id: &str, start: u64, end: u64, offsets: &[u64]) -> SourceRange {
        SourceRange {
            id: id.into(),
            start,
            end,
            offsets: offsets.to_vec(),
            gap_ok: false,
        }
    }

    #[test]
    fn new_source_is_taken_whole() {
        let marks = Marks::default();
        let plan = marks.plan(&[range("a", 0, 30, &[0, 10, 20])]);
        assert_eq!(
            plan,
            Plan::Take {
                keep: vec![true, true, true],
                advance: vec![("a".into(), 30)],
                dropped: 0
            }
        );
    }

    #[test]
    fn overlap_below_the_mark_is_dropped() {
        let mut marks = Marks::default();
        marks.commit(&[("a".into(), 20)], 1);
        let plan = marks.plan(&[range("a", 0, 40, &[0, 10, 20, 30])]);
        assert_eq!(
            plan,
            Plan::Take {
                keep: vec![false, false, true, true],
                advance: vec![("a".into(), 40)],
                dropped: 2
            }
        );
        // A resend wholly below the mark advances nothing.
        let plan = marks.plan(&[range("a", 0, 20, &[0, 10])]);
        assert_eq!(
            plan,
            Plan::Take {
                keep: vec![false, false],
                advance: vec![],
                dropped: 2
            }
        );
    }

    #[test]
    fn gap_is_refused_with_marks() {
        let mut marks = Marks::default();
        marks.commit(&[("a".into(), 20)], 1);
        let plan = marks.plan(&[range("b", 0, 5, &[0]), range("a", 30, 40, &[30])]);
        let Plan::Gap { marks: m } = plan else {
            panic!("expected a gap")
        };
        assert_eq!(m.get("a"), Some(&20));
        assert_eq!(m.get("b"), Some(&0));
        let mut knowing = range("a", 30, 40, &[30]);
        knowing.gap_ok = true;
        assert!(matches!(marks.plan(&[knowing]), Plan::Take { .. }));
    }

    #[test]
    fn pending_marks_chain_batches_and_abort_rolls_back() {
        let mut marks = Marks::default();
        marks.commit(&[("a".into(), 10)], 1);
        marks.reserve(&[("a".into(), 20)]);
        assert!(matches!(
            marks.plan(&[range("a", 20, 30, &[20])]),
            Plan::Take { .. }
        ));
        marks.abort_pending();
        assert!(matches!(
            marks.plan(&[range("a", 20, 30, &[20])]),
            Plan::Gap { .. }
        ));
    }

    #[test]
    fn envelope_validation() {
        let env = Envelope {
            sources: vec![range("a", 0, 30, &[0, 10, 20])],
        };
        assert!(env.validate(3).is_ok());
        assert!(env.validate(2).is_err());
        let bad = Envelope {
            sources: vec![range("a", 0, 30, &[10, 0])],
        };
        assert!(bad.validate(2).is_err());
        let outside = Envelope {
            sources: vec![range("a", 5, 30, &[0])],
        };
        assert!(outside.validate(1).is_err());
    }

    #[test]
    fn gc_drops_idle_marks() {
        let mut marks = Marks::default();
        marks.commit(&[("old".into(), 1)], 10);
        marks.commit(&[("new".into(), 1)], 100);
        assert_eq!(marks.gc(50), 1);
        assert!(marks.durable.contains_key("new"));
    }
}
