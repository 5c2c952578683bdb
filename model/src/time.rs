//! Timestamps (nanoseconds since the Unix epoch, UTC) and the time grammar of the HTTP API.
//!
//! The grammar: an RFC 3339 date-time (`2026-11-25T10:15:00.123456789Z`, any offset), or `now`,
//! optionally followed by `+N<unit>` or `-N<unit>` with unit one of `s`, `m`, `h`, `d`, `w`.

use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{Error, Result};

/// A point in time with nanosecond precision: nanoseconds since 1970-01-01T00:00:00Z. The range
/// an `i64` covers (1677 to 2262) is the range Trawl accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// The current time.
    pub fn now() -> Timestamp {
        Timestamp(Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX))
    }

    /// Nanoseconds since the epoch.
    pub fn nanos(self) -> i64 {
        self.0
    }

    /// Parses an RFC 3339 date-time with any offset; fails outside 1677..2262.
    pub fn parse_rfc3339(text: &str) -> Result<Timestamp> {
        let parsed = DateTime::parse_from_rfc3339(text.trim())
            .map_err(|_| Error::InvalidTime(truncate(text)))?;
        parsed
            .with_timezone(&Utc)
            .timestamp_nanos_opt()
            .map(Timestamp)
            .ok_or_else(|| Error::InvalidTime(truncate(text)))
    }

    /// Parses the API's time grammar, with `now` standing for the given instant.
    pub fn parse_expr(text: &str, now: Timestamp) -> Result<Timestamp> {
        let text = text.trim();
        let Some(rest) = text.strip_prefix("now") else {
            return Timestamp::parse_rfc3339(text);
        };
        if rest.is_empty() {
            return Ok(now);
        }
        let invalid = || Error::InvalidTime(truncate(text));
        let (sign, rest) = if let Some(rest) = rest.strip_prefix('+') {
            (1i64, rest)
        } else if let Some(rest) = rest.strip_prefix('-') {
            (-1i64, rest)
        } else {
            return Err(invalid());
        };
        // The unit is the last character, whatever its width: splitting at a byte offset
        // inside a multi-byte character would panic (`now-é`).
        let unit_at = rest
            .char_indices()
            .next_back()
            .map(|(at, _)| at)
            .ok_or_else(invalid)?;
        let (amount, unit) = rest.split_at(unit_at);
        // Digits only: `i64::from_str` would also take a sign (`now--5m`, `now-+5m`).
        if amount.is_empty() || !amount.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid());
        }
        let amount: i64 = amount.parse().map_err(|_| invalid())?;
        let unit_nanos: i64 = match unit {
            "s" => 1_000_000_000,
            "m" => 60 * 1_000_000_000,
            "h" => 3_600 * 1_000_000_000,
            "d" => 86_400 * 1_000_000_000,
            "w" => 7 * 86_400 * 1_000_000_000,
            _ => return Err(invalid()),
        };
        amount
            .checked_mul(unit_nanos)
            .and_then(|delta| now.0.checked_add(sign * delta))
            .map(Timestamp)
            .ok_or_else(invalid)
    }

    /// RFC 3339 in UTC with all nine fractional digits: `2026-11-25T10:15:00.123456789Z`.
    pub fn to_rfc3339(self) -> String {
        DateTime::from_timestamp_nanos(self.0).to_rfc3339_opts(SecondsFormat::Nanos, true)
    }
}

fn truncate(text: &str) -> String {
    text.chars().take(64).collect()
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_rfc3339())
    }
}

/// Accepts an RFC 3339 string or an integer of nanoseconds since the epoch.
impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Timestamp;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an RFC 3339 timestamp or nanoseconds since the epoch")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> std::result::Result<Timestamp, E> {
                Timestamp::parse_rfc3339(v).map_err(E::custom)
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> std::result::Result<Timestamp, E> {
                Ok(Timestamp(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> std::result::Result<Timestamp, E> {
                i64::try_from(v)
                    .map(Timestamp)
                    .map_err(|_| E::custom("timestamp out of range"))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Timestamp = Timestamp(1_764_065_700_000_000_000); // 2025-11-25T10:15:00Z

    #[test]
    fn rfc3339_round_trip_keeps_nanoseconds() {
        let ts = Timestamp::parse_rfc3339("2026-11-25T10:15:00.123456789Z").unwrap();
        assert_eq!(ts.to_rfc3339(), "2026-11-25T10:15:00.123456789Z");
        let offset = Timestamp::parse_rfc3339("2026-11-25T11:15:00.000000001+01:00").unwrap();
        assert_eq!(offset.to_rfc3339(), "2026-11-25T10:15:00.000000001Z");
    }

    #[test]
    fn relative_expressions() {
        let min = 60_000_000_000;
        assert_eq!(Timestamp::parse_expr("now", NOW).unwrap(), NOW);
        assert_eq!(
            Timestamp::parse_expr("now-15m", NOW).unwrap(),
            Timestamp(NOW.0 - 15 * min)
        );
        assert_eq!(
            Timestamp::parse_expr("now+1h", NOW).unwrap(),
            Timestamp(NOW.0 + 60 * min)
        );
        assert_eq!(
            Timestamp::parse_expr("now-2w", NOW).unwrap(),
            Timestamp(NOW.0 - 2 * 7 * 24 * 60 * min)
        );
        assert_eq!(
            Timestamp::parse_expr("now-30s", NOW).unwrap(),
            Timestamp(NOW.0 - 30_000_000_000)
        );
        assert_eq!(
            Timestamp::parse_expr("now-1d", NOW).unwrap(),
            Timestamp(NOW.0 - 24 * 60 * min)
        );
    }

    #[test]
    fn invalid_expressions_are_errors() {
        for bad in [
            "",
            "yesterday",
            "now-",
            "now-15",
            "now-15y",
            "now*2",
            "now-m",
            "now-1.5h",
            "2026-13-01T00:00:00Z",
            "now-99999999999w",
            "now-é",
            "now+1é",
            "now-1\u{1F600}",
            "now\u{e9}",
            "now--5m",
            "now-+5m",
            "now- 5m",
        ] {
            assert!(Timestamp::parse_expr(bad, NOW).is_err(), "{bad:?} accepted");
        }
    }

    proptest::proptest! {
        /// Any text at all, `now`-prefixed or not, is a time or an error, never a panic.
        #[test]
        fn any_text_is_ok_or_err(text in "\\PC*", suffix in "\\PC{0,4}") {
            let _ = Timestamp::parse_expr(&text, NOW);
            let _ = Timestamp::parse_expr(&format!("now{text}"), NOW);
            let _ = Timestamp::parse_expr(&format!("now-1{suffix}"), NOW);
            let _ = Timestamp::parse_rfc3339(&text);
        }

        /// Well-formed offsets always parse to `now` moved by exactly that much.
        #[test]
        fn offsets_parse_exactly(amount in 0i64..10_000, unit_index in 0usize..5, minus: bool) {
            let (unit, nanos) = [("s", 1_000_000_000i64), ("m", 60_000_000_000), ("h", 3_600_000_000_000),
                ("d", 86_400_000_000_000), ("w", 604_800_000_000_000)][unit_index];
            let sign = if minus { "-" } else { "+" };
            let parsed = Timestamp::parse_expr(&format!("now{sign}{amount}{unit}"), NOW).unwrap();
            let delta = if minus { -amount * nanos } else { amount * nanos };
            proptest::prop_assert_eq!(parsed, Timestamp(NOW.0 + delta));
        }
    }

    #[test]
    fn deserializes_strings_and_integers() {
        let ts: Timestamp = serde_json::from_str("\"1970-01-01T00:00:01Z\"").unwrap();
        assert_eq!(ts, Timestamp(1_000_000_000));
        let ts: Timestamp = serde_json::from_str("42").unwrap();
        assert_eq!(ts, Timestamp(42));
        assert!(serde_json::from_str::<Timestamp>("\"soon\"").is_err());
    }
}
