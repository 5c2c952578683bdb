//! Elasticsearch date values in range queries: `epoch_millis`, `epoch_second`,
//! `strict_date_optional_time` (ISO 8601, date parts optional), and date math (`now-15m/m`,
//! `2023-11-14||+1d/d`), with Elasticsearch's rounding rules for the four range operators.

use chrono::{DateTime, Datelike, Duration, FixedOffset, NaiveDate, NaiveDateTime, TimeZone};
use serde_json::Value;

use super::error::{EsError, EsResult};

const NANOS_PER_MILLI: i64 = 1_000_000;
const NANOS_PER_SEC: i64 = 1_000_000_000;

/// A date as a range bound sees it: the period `[start, next)` it denotes. An exact instant
/// denotes one nanosecond (`next = start + 1`); `epoch_millis` one millisecond; a date without
/// its time of day, or a value rounded with `/d`, a whole period. `gte` uses `start`, `gt` and
/// `lte` use `next` (Elasticsearch "rounds up" for those), `lt` uses `start`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DatePeriod {
    /// First nanosecond of the period (UTC, since the epoch).
    pub start: i64,
    /// First nanosecond after the period.
    pub next: i64,
}

/// A fixed UTC offset from a `time_zone` parameter: `UTC`, `Z`, `GMT`, `Etc/UTC`, `+01:00`,
/// `-0530`. Named zones with daylight saving are refused (400), never guessed.
pub(crate) fn parse_time_zone(text: &str) -> EsResult<FixedOffset> {
    let trimmed = text.trim();
    if matches!(
        trimmed,
        "UTC" | "Z" | "z" | "GMT" | "Etc/UTC" | "Etc/GMT" | "utc" | "+00:00" | "-00:00"
    ) {
        return Ok(utc());
    }
    parse_offset(trimmed).ok_or_else(|| {
        EsError::illegal_argument(format!(
            "time_zone [{trimmed}]: only UTC and fixed offsets like +01:00 are supported by trawl"
        ))
    })
}

fn utc() -> FixedOffset {
    FixedOffset::east_opt(0).unwrap_or_else(|| unreachable!("zero is a valid offset"))
}

/// `+HH:MM`, `+HHMM` or `+HH`.
fn parse_offset(text: &str) -> Option<FixedOffset> {
    let (sign, rest) = match text.as_bytes().first()? {
        b'+' => (1, &text[1..]),
        b'-' => (-1, &text[1..]),
        _ => return None,
    };
    let digits: String = rest.chars().filter(|c| *c != ':').collect();
    if !digits.chars().all(|c| c.is_ascii_digit()) || !matches!(digits.len(), 2 | 4) {
        return None;
    }
    let hours: i32 = digits[..2].parse().ok()?;
    let minutes: i32 = if digits.len() == 4 {
        digits[2..].parse().ok()?
    } else {
        0
    };
    if hours > 18 || minutes > 59 {
        return None;
    }
    FixedOffset::east_opt(sign * (hours * 3600 + minutes * 60))
}

/// Parses a range bound `value` of a date field. `format` is the query's `format` (alternatives
/// separated by `||`); without one, Elasticsearch's default applies:
/// `strict_date_optional_time||epoch_millis`. `now` is the request's clock in nanoseconds.
/// Anything unparsable is a 400 naming the value.
pub(crate) fn parse_date(
    value: &Value,
    format: Option<&str>,
    now: i64,
    zone: FixedOffset,
) -> EsResult<DatePeriod> {
    let formats: Vec<&str> = format
        .map(|f| f.split("||").map(str::trim).collect())
        .unwrap_or_else(|| vec!["strict_date_optional_time", "epoch_millis"]);
    let text = match value {
        Value::String(s) => s.trim().to_string(),
        Value::Number(n) => n.to_string(),
        other => {
            return Err(EsError::parsing(format!(
                "a date must be a string or a number, not {other}"
            )))
        }
    };
    let bad = || {
        EsError::parsing(format!(
            "failed to parse date field [{text}] with format [{}]",
            formats.join("||")
        ))
    };
    let (anchor, math) = if let Some(rest) = text.strip_prefix("now") {
        (
            DatePeriod {
                start: now,
                next: now + 1,
            },
            rest,
        )
    } else {
        let (anchor_text, math) = match text.split_once("||") {
            Some((a, m)) => (a, m),
            None => (text.as_str(), ""),
        };
        let anchor = formats
            .iter()
            .find_map(|f| parse_anchor(anchor_text, f, zone))
            .ok_or_else(bad)?;
        (anchor, math)
    };
    apply_math(anchor, math, zone).ok_or_else(bad)
}

/// One anchor in one format, or `None` when it is not in that format.
fn parse_anchor(text: &str, format: &str, zone: FixedOffset) -> Option<DatePeriod> {
    match format {
        "epoch_millis" => parse_epoch(text, NANOS_PER_MILLI),
        "epoch_second" => parse_epoch(text, NANOS_PER_SEC),
        "strict_date_optional_time"
        | "date_optional_time"
        | "strict_date_optional_time_nanos"
        | "strict_date_time"
        | "date_time"
        | "strict_date_time_no_millis"
        | "date_time_no_millis"
        | "strict_date"
        | "date"
        | "iso8601" => parse_iso(text, zone),
        _ => None,
    }
}

/// An integer or decimal count of `unit` nanoseconds since the epoch.
fn parse_epoch(text: &str, unit: i64) -> Option<DatePeriod> {
    if text.is_empty() {
        return None;
    }
    let (int_part, frac_part) = match text.split_once('.') {
        Some((i, f)) => (i, f),
        None => (text, ""),
    };
    let negative = int_part.starts_with('-');
    let digits = int_part.trim_start_matches('-');
    if digits.is_empty()
        || !digits.bytes().all(|b| b.is_ascii_digit())
        || !frac_part.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let whole: i64 = digits.parse().ok()?;
    let mut nanos = whole.checked_mul(unit)?;
    let mut frac_nanos = 0i64;
    let mut scale = unit;
    for digit in frac_part.bytes().take(18) {
        scale /= 10;
        frac_nanos += i64::from(digit - b'0') * scale;
    }
    nanos = nanos.checked_add(frac_nanos)?;
    if negative {
        nanos = -nanos;
    }
    let granularity = if frac_part.is_empty() {
        unit
    } else {
        scale.max(1)
    };
    Some(DatePeriod {
        start: nanos,
        next: nanos.checked_add(granularity)?,
    })
}

/// ISO 8601 with optional parts: `2023`, `2023-11`, `2023-11-14`, `2023-11-14T22`,
/// `2023-11-14T22:13`, `2023-11-14T22:13:05`, `...05.123456789`, each with an optional zone
/// (`Z`, `+01:00`); `zone` applies when the text has none. Missing date parts are the first
/// month or day; the period spans the finest missing time part (Elasticsearch fills them with
/// their maximum when rounding up).
fn parse_iso(text: &str, zone: FixedOffset) -> Option<DatePeriod> {
    let (date_part, time_part) = match text.split_once(['T', ' ']) {
        Some((d, t)) => (d, Some(t)),
        None => (text, None),
    };
    let mut date_fields = date_part.split('-');
    let year: i32 = parse_digits(date_fields.next()?, 4)?;
    let month: u32 = date_fields.next().map_or(Some(1), |m| parse_digits(m, 2))?;
    let day: u32 = date_fields.next().map_or(Some(1), |d| parse_digits(d, 2))?;
    if date_fields.next().is_some() {
        return None;
    }
    let date = NaiveDate::from_ymd_opt(year, month, day)?;
    let mut offset = zone;
    let (mut hour, mut minute, mut second, mut nanos) = (0u32, 0u32, 0u32, 0u32);
    // The finest part given: 0 date, 1 hour, 2 minute, 3 second, 4 fraction.
    let mut given = 0;
    let mut granularity = NANOS_PER_SEC * 86_400;
    if let Some(time) = time_part {
        let (clock, zone_text) = split_zone(time);
        if let Some(z) = zone_text {
            offset = if z == "Z" || z == "z" {
                utc()
            } else {
                parse_offset(z)?
            };
        }
        let (hms, fraction) = match clock.split_once(['.', ',']) {
            Some((h, f)) => (h, Some(f)),
            None => (clock, None),
        };
        let mut parts = hms.split(':');
        hour = parse_digits(parts.next()?, 2)?;
        given = 1;
        granularity = NANOS_PER_SEC * 3600;
        if let Some(m) = parts.next() {
            minute = parse_digits(m, 2)?;
            given = 2;
            granularity = NANOS_PER_SEC * 60;
        }
        if let Some(s) = parts.next() {
            second = parse_digits(s, 2)?;
            given = 3;
            granularity = NANOS_PER_SEC;
        }
        if parts.next().is_some() {
            return None;
        }
        if let Some(f) = fraction {
            if given < 3 || f.is_empty() || f.len() > 9 || !f.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            nanos = f.parse::<u32>().ok()? * 10u32.pow(9 - f.len() as u32);
            granularity = 1;
        }
    }
    let _ = given;
    let naive = date.and_hms_nano_opt(hour, minute, second, nanos)?;
    let local = offset.from_local_datetime(&naive).single()?;
    // Outside the nanosecond range (1677 to 2262) a bound clamps to its end, as Elasticsearch
    // clamps bounds on `date_nanos` fields: Go's zero time `0001-01-01T00:00:00Z`, which
    // KubeSphere sends as "since forever", is the beginning of time.
    let start = local
        .timestamp_nanos_opt()
        .unwrap_or(if local.timestamp() < 0 {
            i64::MIN
        } else {
            i64::MAX
        });
    Some(DatePeriod {
        start,
        next: start.saturating_add(granularity),
    })
}

/// Splits a trailing zone (`Z`, `+01:00`, `-0500`) off a time of day.
fn split_zone(time: &str) -> (&str, Option<&str>) {
    if let Some(clock) = time.strip_suffix(['Z', 'z']) {
        return (clock, Some("Z"));
    }
    match time.rfind(['+', '-']) {
        Some(pos) => (&time[..pos], Some(&time[pos..])),
        None => (time, None),
    }
}

fn parse_digits<T: std::str::FromStr>(text: &str, len: usize) -> Option<T> {
    if text.len() != len || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Applies `+1d`, `-15m`, `/h` operations in order; rounding makes the value denote the whole
/// period it was rounded to. Anything else (an unknown operator or unit, a non-ASCII character
/// anywhere) is `None`: the text is walked by character, never sliced at a byte offset.
fn apply_math(mut period: DatePeriod, math: &str, zone: FixedOffset) -> Option<DatePeriod> {
    let mut chars = math.chars().peekable();
    while let Some(op) = chars.next() {
        match op {
            '/' => {
                let unit = ascii_unit(chars.next()?)?;
                let start = round_down(period.start, unit, zone)?;
                period = DatePeriod {
                    start,
                    next: add_units(start, 1, unit, zone)?,
                };
            }
            '+' | '-' => {
                let mut amount: Option<i64> = None;
                while let Some(digit) = chars.peek().and_then(|c| c.to_digit(10)) {
                    chars.next();
                    amount = Some(
                        amount
                            .unwrap_or(0)
                            .checked_mul(10)?
                            .checked_add(i64::from(digit))?,
                    );
                }
                let amount = amount.unwrap_or(1);
                let unit = ascii_unit(chars.next()?)?;
                let amount = if op == '-' { -amount } else { amount };
                period = DatePeriod {
                    start: add_units(period.start, amount, unit, zone)?,
                    next: add_units(period.next, amount, unit, zone)?,
                };
            }
            _ => return None,
        }
    }
    Some(period)
}

/// A date-math unit character as the byte [`add_units`] and [`round_down`] match on.
fn ascii_unit(unit: char) -> Option<u8> {
    u8::try_from(unit).ok().filter(u8::is_ascii_alphabetic)
}

fn to_local(nanos: i64, zone: FixedOffset) -> DateTime<FixedOffset> {
    DateTime::from_timestamp_nanos(nanos).with_timezone(&zone)
}

fn from_local(naive: NaiveDateTime, zone: FixedOffset) -> Option<i64> {
    zone.from_local_datetime(&naive)
        .single()?
        .timestamp_nanos_opt()
}

/// `nanos` plus `amount` date-math units (`y M w d h H m s`).
fn add_units(nanos: i64, amount: i64, unit: u8, zone: FixedOffset) -> Option<i64> {
    let fixed = |per: i64| nanos.checked_add(amount.checked_mul(per)?);
    match unit {
        b's' => fixed(NANOS_PER_SEC),
        b'm' => fixed(60 * NANOS_PER_SEC),
        b'h' | b'H' => fixed(3600 * NANOS_PER_SEC),
        b'd' => fixed(86_400 * NANOS_PER_SEC),
        b'w' => fixed(7 * 86_400 * NANOS_PER_SEC),
        b'M' | b'y' => {
            let months = if unit == b'y' {
                amount.checked_mul(12)?
            } else {
                amount
            };
            let local = to_local(nanos, zone).naive_local();
            let shifted = if months >= 0 {
                local.checked_add_months(chrono::Months::new(u32::try_from(months).ok()?))?
            } else {
                local.checked_sub_months(chrono::Months::new(
                    u32::try_from(months.checked_neg()?).ok()?,
                ))?
            };
            from_local(shifted, zone)
        }
        _ => None,
    }
}

/// The start of the `unit` period holding `nanos` (weeks start on Monday).
fn round_down(nanos: i64, unit: u8, zone: FixedOffset) -> Option<i64> {
    let local = to_local(nanos, zone).naive_local();
    let date = local.date();
    let midnight = |d: NaiveDate| d.and_hms_opt(0, 0, 0);
    let naive = match unit {
        b's' => local.date().and_hms_opt(
            chrono::Timelike::hour(&local),
            chrono::Timelike::minute(&local),
            chrono::Timelike::second(&local),
        )?,
        b'm' => local.date().and_hms_opt(
            chrono::Timelike::hour(&local),
            chrono::Timelike::minute(&local),
            0,
        )?,
        b'h' | b'H' => local
            .date()
            .and_hms_opt(chrono::Timelike::hour(&local), 0, 0)?,
        b'd' => midnight(date)?,
        b'w' => midnight(date - Duration::days(i64::from(date.weekday().num_days_from_monday())))?,
        b'M' => midnight(NaiveDate::from_ymd_opt(date.year(), date.month(), 1)?)?,
        b'y' => midnight(NaiveDate::from_ymd_opt(date.year(), 1, 1)?)?,
        _ => return None,
    };
    from_local(naive, zone)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// 2023-11-14T22:13:20.5Z.
    const NOW: i64 = 1_700_000_000_500_000_000;

    fn ts(text: &str) -> i64 {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .timestamp_nanos_opt()
            .unwrap()
    }

    fn parse(value: Value, format: Option<&str>) -> DatePeriod {
        parse_date(&value, format, NOW, utc()).unwrap()
    }

    fn period(start: &str, next: &str) -> DatePeriod {
        DatePeriod {
            start: ts(start),
            next: ts(next),
        }
    }

    #[test]
    fn epoch_millis_denotes_one_millisecond() {
        let p = parse(json!(1_699_999_980_000i64), Some("epoch_millis"));
        assert_eq!(p.start, 1_699_999_980_000_000_000);
        assert_eq!(p.next, 1_699_999_980_001_000_000);
        // A string of digits, and the default format, read the same.
        assert_eq!(parse(json!("1699999980000"), None), p);
        let p = parse(json!("1699999980"), Some("epoch_second"));
        assert_eq!(p.start, 1_699_999_980_000_000_000);
        assert_eq!(p.next, 1_699_999_981_000_000_000);
    }

    #[test]
    fn dates_outside_the_nanosecond_range_clamp() {
        let at = |text: &str| parse_date(&json!(text), None, 0, utc()).unwrap();
        assert_eq!(at("0001-01-01T00:00:00Z").start, i64::MIN);
        assert_eq!(at("9999-12-31T23:59:59Z").start, i64::MAX);
        assert_eq!(at("9999-12-31T23:59:59Z").next, i64::MAX);
    }

    #[test]
    fn iso_dates_with_missing_parts() {
        assert_eq!(
            parse(json!("2023-11-14"), None),
            period("2023-11-14T00:00:00Z", "2023-11-15T00:00:00Z")
        );
        assert_eq!(
            parse(json!("2023-11-14T22:13"), None),
            period("2023-11-14T22:13:00Z", "2023-11-14T22:14:00Z")
        );
        assert_eq!(
            parse(json!("2023-11-14T22:13:05Z"), None),
            period("2023-11-14T22:13:05Z", "2023-11-14T22:13:06Z")
        );
        assert_eq!(
            parse(json!("2023-11-14T23:13:05.000000007+01:00"), None),
            period(
                "2023-11-14T22:13:05.000000007Z",
                "2023-11-14T22:13:05.000000008Z"
            )
        );
        // Elasticsearch fills a missing day with the first, not the last.
        assert_eq!(
            parse(json!("2023-11"), Some("strict_date_optional_time")),
            period("2023-11-01T00:00:00Z", "2023-11-02T00:00:00Z")
        );
    }

    #[test]
    fn date_math_and_rounding() {
        assert_eq!(parse(json!("now"), None).start, NOW);
        assert_eq!(
            parse(json!("now-15m"), None).start,
            NOW - 15 * 60 * NANOS_PER_SEC
        );
        assert_eq!(
            parse(json!("now-15m/m"), None),
            period("2023-11-14T21:58:00Z", "2023-11-14T21:59:00Z")
        );
        assert_eq!(
            parse(json!("now/d"), None),
            period("2023-11-14T00:00:00Z", "2023-11-15T00:00:00Z")
        );
        assert_eq!(
            parse(json!("now/w"), None),
            period("2023-11-13T00:00:00Z", "2023-11-20T00:00:00Z")
        );
        assert_eq!(
            parse(json!("2023-01-31||+1M/d"), None),
            period("2023-02-28T00:00:00Z", "2023-03-01T00:00:00Z")
        );
        assert_eq!(
            parse(json!("now-1y/y"), None),
            period("2022-01-01T00:00:00Z", "2023-01-01T00:00:00Z")
        );
        assert_eq!(
            parse(json!("1699999980000||+1h"), Some("epoch_millis")).start,
            ts("2023-11-14T23:13:00Z")
        );
    }

    #[test]
    fn time_zone_applies_to_zoneless_dates_and_rounding() {
        let zone = parse_time_zone("+01:00").unwrap();
        let p = parse_date(&json!("2023-11-14T10:00:00"), None, NOW, zone).unwrap();
        assert_eq!(p.start, ts("2023-11-14T09:00:00Z"));
        let p = parse_date(&json!("now/d"), None, NOW, zone).unwrap();
        assert_eq!(p.start, ts("2023-11-13T23:00:00Z"));
        assert!(parse_time_zone("Europe/Paris").is_err());
    }

    proptest::proptest! {
        /// Any text, as a value, in a format, after `now` or an anchor's `||`, is a period or
        /// a parsing error, never a panic.
        #[test]
        fn any_text_is_ok_or_err(text in "\\PC*", format in "\\PC{0,12}") {
            for value in [
                json!(text.clone()),
                json!(format!("now{text}")),
                json!(format!("now+1{text}")),
                json!(format!("2023-11-14||{text}")),
                json!(format!("2023-11-14T{text}")),
            ] {
                let _ = parse_date(&value, None, NOW, utc());
                let _ = parse_date(&value, Some(&format), NOW, utc());
                let _ = parse_date(&value, Some("epoch_millis||epoch_second"), NOW, utc());
            }
            let _ = parse_time_zone(&text);
        }
    }

    #[test]
    fn garbage_is_a_parsing_error() {
        for (value, format) in [
            (json!("yesterday"), None),
            (json!("2023-13-01"), None),
            (json!("now-5x"), None),
            (json!("now+"), None),
            (json!("2023-11-14"), Some("epoch_millis")),
            (json!(true), None),
            (json!("99999999999999999999"), Some("epoch_millis")),
            // Regressions: these panicked on a character boundary (a 500 instead of a 400).
            (json!("now+1é"), None),
            (json!("now/é"), None),
            (json!("nowé"), None),
            (json!("2023-11-14||+1é"), None),
            (json!("2023-11-14||é"), None),
            (json!("now+99999999999999999999d"), None),
            (json!("+é"), None),
            (json!("2023-11-14Té"), None),
        ] {
            let err = parse_date(&value, format, NOW, utc()).unwrap_err();
            assert_eq!(err.kind, "parsing_exception", "{value}");
        }
    }
}
