//! Which publishes a read of the metastore saw: the PostgreSQL snapshot of the statement that
//! listed a stream's published splits (`pg_current_snapshot()`), against the transaction id a
//! publish committed under (`pg_current_xact_id()`).
//!
//! A searcher lists the published splits and searches them itself; an indexer answers for the
//! rest. An indexer's copy of a split whose publish the searcher's list saw is covered by that
//! list, whatever happened to the split since: it is listed, or a merge listed replaced it, or
//! retention dropped it. Leaving such copies out needs no ids, so it holds where the list no
//! longer names a split (a merge of merges whose middle rows the janitor removed while the
//! indexer was away). Transaction ids never repeat within a database (64 bits with their
//! epoch); a publish recorded against another database looks newer than any snapshot there
//! and is left to the ids alone.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result};

/// A PostgreSQL snapshot in its text form `xmin:xmax:xip,...` (see PostgreSQL's
/// `pg_snapshot`): every transaction below `xmin` had ended, none from `xmax` on had, and those
/// between had unless listed in `xip`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgSnapshot {
    xmin: u64,
    xmax: u64,
    /// In progress when the snapshot was taken, ascending.
    xip: Vec<u64>,
}

impl PgSnapshot {
    /// Whether the snapshot saw transaction `xid` ended: for a publish known to have
    /// committed, whether a read under the snapshot saw what it published. PostgreSQL's
    /// `pg_visible_in_snapshot`.
    pub fn sees(&self, xid: u64) -> bool {
        xid < self.xmin || (xid < self.xmax && self.xip.binary_search(&xid).is_err())
    }
}

impl FromStr for PgSnapshot {
    type Err = Error;

    fn from_str(text: &str) -> Result<PgSnapshot> {
        let invalid = || Error::Snapshot(text.chars().take(64).collect());
        let mut parts = text.splitn(3, ':');
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
        Ok(PgSnapshot { xmin, xmax, xip })
    }
}

impl fmt::Display for PgSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:", self.xmin, self.xmax)?;
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

    #[test]
    fn a_snapshot_sees_what_ended_before_it() {
        let snapshot: PgSnapshot = "100:110:107,103".parse().unwrap();
        assert_eq!(snapshot.to_string(), "100:110:103,107");
        let seen: Vec<u64> = (95..115).filter(|x| snapshot.sees(*x)).collect();
        assert_eq!(
            seen,
            [95, 96, 97, 98, 99, 100, 101, 102, 104, 105, 106, 108, 109]
        );
        let idle: PgSnapshot = "740:740:".parse().unwrap();
        assert_eq!(idle.to_string(), "740:740:");
        assert!(idle.sees(739));
        assert!(!idle.sees(740));
    }

    #[test]
    fn what_is_not_a_snapshot_is_an_error() {
        for text in [
            "",
            "100",
            "100:110",
            "x:110:",
            "100:110:abc",
            "100:110:103,",
            "110:100:",
            "100:110:99",
            "100:110:110",
            "-1:110:",
        ] {
            assert!(text.parse::<PgSnapshot>().is_err(), "{text:?}");
        }
    }

    #[test]
    fn a_snapshot_travels_as_its_text() {
        let snapshot: PgSnapshot = "5:9:6".parse().unwrap();
        let json = serde_json::to_string(&snapshot).unwrap();
        assert_eq!(json, r#""5:9:6""#);
        assert_eq!(serde_json::from_str::<PgSnapshot>(&json).unwrap(), snapshot);
        assert!(serde_json::from_str::<PgSnapshot>(r#""9:5:""#).is_err());
    }
}
