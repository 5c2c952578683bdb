//! cargo-fuzz target `cri_docker_line`: the check is in `../checks/cri_docker_line.rs`, which says what it
//! feeds and asserts (its seed corpus also runs in `cargo test`).

#![no_main]

#[path = "../checks/cri_docker_line.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::run(data));
