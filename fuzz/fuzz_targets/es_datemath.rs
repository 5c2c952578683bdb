//! cargo-fuzz target `es_datemath`: the check is in `../checks/es_datemath.rs`, which says what it
//! feeds and asserts (its seed corpus also runs in `cargo test`).

#![no_main]

#[path = "../checks/es_datemath.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::run(data));
