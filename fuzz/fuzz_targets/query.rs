//! cargo-fuzz target `query`: the check is in `../checks/query.rs`, which says what it
//! feeds and asserts (its seed corpus also runs in `cargo test`).

#![no_main]

#[path = "../checks/query.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::run(data));
