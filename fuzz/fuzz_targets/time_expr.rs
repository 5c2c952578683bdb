//! cargo-fuzz target `time_expr`: the check is in `../checks/time_expr.rs`, which says what it
//! feeds and asserts (its seed corpus also runs in `cargo test`).

#![no_main]

#[path = "../checks/time_expr.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::run(data));
