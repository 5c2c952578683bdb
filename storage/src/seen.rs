//! Which publishes a read of the metastore saw: the PostgreSQL snapshot of the statement that
//! listed a stream's published splits (`pg_current_snapshot()`), against the transaction id a
//! publish committed under (`pg_current_xact_id()`).
//!
//! A searcher lists the published splits and searches them itself; an indexer answers for the
//! rest. An indexer's copy of a split whose publish the searcher's list saw is covered by that
//! list, whatever happened to the split since: it is listed, or a merge listed replaced it, or
//! retention dropped it. Leaving such copies out needs no ids, so it holds where the list no
//! longer names a split (a merge of merges whose middle rows the janitor removed while the
//! indexer was away).
//!
//! Transaction ids mean something only on the timeline of the cluster that gave them out: a
//! point-in-time recovery or a promoted replica starts a new timeline and may give out again
//! ids the old one had (its last commits lost), and a restore from a dump is another cluster
//! altogether. So a commit carries where it happened (`system_identifier` and the timeline
//! of the current WAL file), and a snapshot sees only commits of its own cluster and
//! timeline: any other is left to the ids alone, never taken as seen.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result};

/// SQL of the two columns `system` and `timeline` that say where a statement runs (see
/// [`Committed`]). A standby (a metastore URI pointed at a replica) names no timeline, 0: its
/// snapshots see nothing, and searchers fall back to the ids.
macro_rules! origin_columns {
    () => {
        "(SELECT system_identifier FROM pg_control_system())::TEXT AS system, \
         CASE WHEN pg_is_in_recovery() THEN '00000000' \
         ELSE substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8) END AS timeline"
    };
}

/// SQL of the columns [`snapshot_of`] reads: the statement's snapshot and where it was taken.
pub(crate) const SNAPSHOT_COLUMNS: &str =
    concat!("pg_current_snapshot()::TEXT AS seen, ", origin_columns!());

/// SQL of the columns [`committed_of`] reads, in the publishing transaction: its id and where
/// it was given out.
pub(crate) const COMMIT_COLUMNS: &str =
    concat!("pg_current_xact_id()::TEXT AS xid, ", origin_columns!());

/// The snapshot of a row with [`SNAPSHOT_COLUMNS`].
pub(crate) fn snapshot_of(row: &tokio_postgres::Row) -> Result<PgSnapshot> {
    let (system, timeline) = origin(row)?;
    PgSnapshot::on(system, timeline, &row.try_get::<_, String>("seen")?)
}

/// The commit of a row with [`COMMIT_COLUMNS`].
pub(crate) fn committed_of(row: &tokio_postgres::Row) -> Result<Committed> {
    let xid: String = row.try_get("xid")?;
    let xid = xid
        .parse::<u64>()
        .map_err(|_| Error::Snapshot(format!("transaction id {xid}")))?;
    let (system, timeline) = origin(row)?;
    Ok(Committed {
        system,
        timeline,
        xid,
    })
}

/// The cluster and timeline of a row with the origin columns.
fn origin(row: &tokio_postgres::Row) -> Result<(u64, u32)> {
    let system: String = row.try_get("system")?;
    let timeline: String = row.try_get("timeline")?;
    // `system_identifier` is a BIGINT: its bits are the identifier.
    let system = system
        .parse::<i64>()
        .map_err(|_| Error::Snapshot(format!("system identifier {system}")))?;
    let timeline = u32::from_str_radix(&timeline, 16)
        .map_err(|_| Error::Snapshot(format!("timeline {timeline}")))?;
    Ok((system as u64, timeline))
}

/// A publish's commit (the index crate's, as a split's search target carries it).
pub use trawl_index::Committed;

/// A PostgreSQL snapshot, with the cluster and timeline it was taken on. Its text form is
/// `system/timeline/xmin:xmax:xip,...`, the last part PostgreSQL's own (`pg_snapshot`): every
/// transaction below `xmin` had ended, none from `xmax` on had, and those between had unless
/// listed in `xip`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgSnapshot {
    system: u64,
    timeline: u32,
    xmin: u64,
    xmax: u64,
    /// In progress when the snapshot was taken, ascending.
    xip: Vec<u64>,
}

impl PgSnapshot {
    /// The snapshot of PostgreSQL's text form `pg` taken on `system` and `timeline`.
    fn on(system: u64, timeline: u32, pg: &str) -> Result<PgSnapshot> {
        format!("{system}/{timeline}/{pg}").parse()
    }

    /// Whether the snapshot saw `commit`'s transaction ended: for a publish known to have
    /// committed, whether a read under the snapshot saw what it published. PostgreSQL's
    /// `pg_visible_in_snapshot`, for a commit of the same cluster and timeline only.
    pub fn sees(&self, commit: &Committed) -> bool {
        let xid = commit.xid;
        self.timeline != 0
            && commit.system == self.system
            && commit.timeline == self.timeline
            && (xid < self.xmin || (xid < self.xmax && self.xip.binary_search(&xid).is_err()))
    }
}

impl FromStr for PgSnapshot {
    type Err = Error;

    fn from_str(text: &str) -> Result<PgSnapshot> {
        let invalid = || Error::Snapshot(text.chars().take(64).collect());
        let mut origin = text.splitn(3, '/');
        let system = origin.next().and_then(|s| s.parse::<u64>().ok());
        let timeline = origin.next().and_then(|t| t.parse::<u32>().ok());
        let (Some(system), Some(timeline), Some(pg)) = (system, timeline, origin.next()) else {
            return Err(invalid());
        };
        let mut parts = pg.splitn(3, ':');
        let number = |part: Option<&str>| -> Result<u64> {
            part.and_then(|p| p.parse().ok()).ok_or_else(invalid)
        };
        let xmin = number(parts.next())?;
        let xmax = number(parts.next())?;
        let mut xip = match parts.next() {
            Some("") => Vec::new(),
            Some(list) => list
                .split(',')
                .map(|x| x.parse().map_err(|_| invalid()))
                .collect::<Result<Vec<u64>>>()?,
            None => return Err(invalid()),
        };
        if xmin > xmax || xip.iter().any(|x| *x < xmin || *x >= xmax) {
            return Err(invalid());
        }
        xip.sort_unstable();
        Ok(PgSnapshot {
            system,
            timeline,
            xmin,
            xmax,
            xip,
        })
    }
}

impl fmt::Display for PgSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}/{}:{}:",
            self.system, self.timeline, self.xmin, self.xmax
        )?;
        for (i, x) in self.xip.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{x}")?;
        }
        Ok(())
    }
}

impl Serialize for PgSnapshot {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PgSnapshot {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commit(xid: u64) -> Committed {
        Committed {
            system: 7,
            timeline: 1,
            xid,
        }
    }

    #[test]
    fn a_snapshot_sees_what_ended_before_it() {
        let snapshot: PgSnapshot = "7/1/100:110:107,103".parse().unwrap();
        assert_eq!(snapshot.to_string(), "7/1/100:110:103,107");
        let seen: Vec<u64> = (95..115).filter(|x| snapshot.sees(&commit(*x))).collect();
        assert_eq!(
            seen,
            [95, 96, 97, 98, 99, 100, 101, 102, 104, 105, 106, 108, 109]
        );
        let idle = PgSnapshot::on(7, 1, "740:740:").unwrap();
        assert_eq!(idle.to_string(), "7/1/740:740:");
        assert!(idle.sees(&commit(739)));
        assert!(!idle.sees(&commit(740)));
    }

    /// A commit of another cluster (a restore from a dump) or of another timeline (a
    /// point-in-time recovery, a promoted replica) is never seen, whatever its id.
    #[test]
    fn a_snapshot_sees_commits_of_its_own_cluster_and_timeline_only() {
        let snapshot: PgSnapshot = "7/2/100:110:".parse().unwrap();
        let old = Committed {
            system: 7,
            timeline: 1,
            xid: 5,
        };
        assert!(!snapshot.sees(&old));
        let elsewhere = Committed {
            system: 8,
            timeline: 2,
            xid: 5,
        };
        assert!(!snapshot.sees(&elsewhere));
        assert!(snapshot.sees(&Committed { timeline: 2, ..old }));
        // Read on a standby: no timeline, nothing seen.
        let standby: PgSnapshot = "7/0/100:110:".parse().unwrap();
        assert!(!standby.sees(&Committed { timeline: 0, ..old }));
    }

    #[test]
    fn what_is_not_a_snapshot_is_an_error() {
        for text in [
            "",
            "100:110:",
            "7/100:110:",
            "x/1/100:110:",
            "7/x/100:110:",
            "7/1/100",
            "7/1/100:110",
            "7/1/x:110:",
            "7/1/100:110:abc",
            "7/1/100:110:103,",
            "7/1/110:100:",
            "7/1/100:110:99",
            "7/1/100:110:110",
            "7/1/-1:110:",
        ] {
            assert!(text.parse::<PgSnapshot>().is_err(), "{text:?}");
        }
    }

    #[test]
    fn a_snapshot_travels_as_its_text() {
        let snapshot: PgSnapshot = "7/1/5:9:6".parse().unwrap();
        let json = serde_json::to_string(&snapshot).unwrap();
        assert_eq!(json, r#""7/1/5:9:6""#);
        assert_eq!(serde_json::from_str::<PgSnapshot>(&json).unwrap(), snapshot);
        assert!(serde_json::from_str::<PgSnapshot>(r#""7/1/9:5:""#).is_err());
    }
}
