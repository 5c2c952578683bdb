//! cargo-fuzz target `audit_event`: the check is in `../checks/audit_event.rs`, which says what it
//! feeds and asserts (its seed corpus also runs in `cargo test`).

#![no_main]

#[path = "../checks/audit_event.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::run(data));
