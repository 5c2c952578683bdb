//! Elasticsearch date values of `range` queries: `trawl_query::elastic::parse_date_bound` on
//! any UTF-8 input, read as `value`, or `format\nvalue`, or `format\ntime_zone\nvalue`; the
//! value is also tried after `now`, after an anchor's `||`, and as a JSON value (a number).
//!
//! Checked: nothing panics; a parsed bound denotes a non-empty period (`start < next`), except
//! a date past the nanosecond range (after 2262), which clamps to the end of time as an empty
//! period there (`start == next == i64::MAX`: `gte` it matches nothing, `lt` it everything).
//!
//! Shared by the cargo-fuzz target `fuzz_targets/es_datemath.rs` and the replay of its seed
//! corpus in `cargo test` (tests/e2e/fuzz_seeds.rs).

use serde_json::Value;
use trawl_query::elastic::parse_date_bound;

/// 2026-11-25T10:00:00Z.
const NOW: i64 = 1_795_600_800_000_000_000;

fn check(value: &Value, format: Option<&str>, zone: Option<&str>) {
    if let Ok((start, next)) = parse_date_bound(value, format, zone, NOW) {
        assert!(
            start < next || (start == i64::MAX && next == i64::MAX),
            "{value} {format:?} {zone:?}: {start} >= {next}"
        );
    }
}

/// Runs one input; panics on what the target checks.
pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let parts: Vec<&str> = text.splitn(3, '\n').collect();
    let (format, zone, value) = match parts.as_slice() {
        [value] => (None, None, *value),
        [format, value] => (Some(*format), None, *value),
        [format, zone, value] => (Some(*format), Some(*zone), *value),
        _ => return,
    };
    for candidate in [
        value.to_string(),
        format!("now{value}"),
        format!("2023-11-14||{value}"),
    ] {
        check(&Value::String(candidate), format, zone);
    }
    if let Ok(json) = serde_json::from_str::<Value>(value) {
        check(&json, format, zone);
    }
}
