//! The event parsers: one line of an audit log or an ingest body (a Kubernetes
//! audit.k8s.io Event or a flat audit document), a webhook `EventList` body, and one line of
//! the `events` stream (a Kubernetes Event of either version, a watch event, a flat document).
//!
//! Checked: nothing panics; a parsed event has its identity and its dedup key; a Kubernetes
//! Event's flat document reads back as the same event.
//!
//! Shared by the cargo-fuzz target `fuzz_targets/audit_event.rs` and the replay of its seed
//! corpus in `cargo test` (tests/e2e/fuzz_seeds.rs).

use trawl_model::audit::{parse_audit_line, parse_event_list};
use trawl_model::events::parse_event_line;

/// Runs one input; panics on what the target checks.
pub fn run(data: &[u8]) {
    if let Ok(event) = parse_audit_line(data) {
        let _ = event.dedup_key();
        let _ = serde_json::to_string(&event);
    }
    if let Ok(events) = parse_event_list(data) {
        for event in events.into_iter().flatten() {
            let _ = event.dedup_key();
        }
    }
    if let Ok(event) = parse_event_line(data) {
        let _ = event.dedup_key();
        let flat = serde_json::to_vec(&event).expect("an event encodes");
        let again = parse_event_line(&flat).expect("a flat event reads back");
        assert_eq!(again, event);
    }
}
