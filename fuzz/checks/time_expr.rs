//! The time grammar of the HTTP API (`start`, `end`: RFC 3339, `now`, `now-15m`):
//! `trawl_model::Timestamp::parse_expr` and `parse_rfc3339` on any UTF-8 text, and the same
//! text after `now`, `now-` and `now+1`.
//!
//! Checked: nothing panics; a parsed relative time is `now` moved by a whole number of units.
//!
//! Shared by the cargo-fuzz target `fuzz_targets/time_expr.rs` and the replay of its seed
//! corpus in `cargo test` (tests/e2e/fuzz_seeds.rs).

use trawl_model::Timestamp;

/// 2026-11-25T10:00:00Z.
const NOW: Timestamp = Timestamp(1_795_600_800_000_000_000);

/// Runs one input; panics on what the target checks.
pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = Timestamp::parse_rfc3339(text);
    for candidate in [
        text.to_string(),
        format!("now{text}"),
        format!("now-{text}"),
        format!("now+1{text}"),
    ] {
        if let Ok(parsed) = Timestamp::parse_expr(&candidate, NOW) {
            if candidate.trim().starts_with("now") {
                // Every unit is a whole number of seconds.
                assert_eq!((parsed.0 - NOW.0) % 1_000_000_000, 0, "{candidate:?}");
            }
        }
    }
}
