//! The seed corpus of every cargo-fuzz target (fuzz/corpus/<target>/) run through the
//! target's check (fuzz/checks/<target>.rs) as ordinary tests: a seed that panics fails
//! `cargo test` on a machine without cargo-fuzz. Not end to end: it lives in this binary to
//! share its link. The timed fuzzing stays in .ci/fuzz-smoke.sh.

use std::path::Path;

#[path = "../../fuzz/checks/audit_event.rs"]
mod audit_event;
#[path = "../../fuzz/checks/cri_docker_line.rs"]
mod cri_docker_line;
#[path = "../../fuzz/checks/es_datemath.rs"]
mod es_datemath;
#[path = "../../fuzz/checks/ingest_decode.rs"]
mod ingest_decode;
#[path = "../../fuzz/checks/query.rs"]
mod query;
#[path = "../../fuzz/checks/time_expr.rs"]
mod time_expr;

/// Runs every seed of `target` through `check`; asserts there are seeds, so that a renamed
/// corpus directory cannot pass empty.
fn replay(target: &str, check: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut seeds: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    seeds.sort();
    assert!(!seeds.is_empty(), "no seeds in {}", dir.display());
    for seed in seeds {
        let data = std::fs::read(&seed).unwrap();
        let outcome = std::panic::catch_unwind(|| check(&data));
        assert!(outcome.is_ok(), "seed {} fails {target}", seed.display());
    }
}

#[test]
fn audit_event_seeds() {
    replay("audit_event", audit_event::run);
}

#[test]
fn cri_docker_line_seeds() {
    replay("cri_docker_line", cri_docker_line::run);
}

#[test]
fn es_datemath_seeds() {
    replay("es_datemath", es_datemath::run);
}

#[test]
fn ingest_decode_seeds() {
    replay("ingest_decode", ingest_decode::run);
}

#[test]
fn query_seeds() {
    replay("query", query::run);
}

#[test]
fn time_expr_seeds() {
    replay("time_expr", time_expr::run);
}
