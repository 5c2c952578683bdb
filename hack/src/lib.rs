//! Feature unification for the role builds (the technique of cargo-hakari's "workspace-hack",
//! kept to the crates that differ).
//!
//! Cargo compiles a dependency once per set of features. `cargo test --workspace` builds every
//! crate; CI then builds `trawl` twice more with fewer roles (`--no-default-features --features
//! searcher`, `--features collector`), where about twenty shared crates (serde_json, mio,
//! tower, reqwest, ...) get fewer features, because the crates that turned the others on are not
//! in those builds. Each such crate, and everything above it, was compiled again: most of the
//! dependency tree, several minutes of a cold CI run. This crate, a dependency of `trawl` only
//! under the `searcher` and `collector` features, asks for those crates with the full build's
//! features, so the role builds reuse what the tests compiled. It adds no crate that is not
//! already in each build, and nothing in it is used.
//!
//! When a dependency is updated the list may drift (a role build is then slower, never
//! wrong). To check it, compare the units of the builds (the `trawl` binary is the only one
//! expected to differ):
//!
//! ```text
//! RUSTC_BOOTSTRAP=1 cargo test --workspace --no-run -Z unstable-options --unit-graph > full.json
//! RUSTC_BOOTSTRAP=1 cargo build -p trawl --no-default-features --features searcher \
//!     -Z unstable-options --unit-graph > searcher.json
//! python3 .ci/unit-drift.py full.json searcher.json
//! ```
