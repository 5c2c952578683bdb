//! The search request and query parser: the input is either a POST search body (JSON: `q`,
//! `start`, `end`, `limit`, `sort`, `fields`, `search_after`, `aggs`) or, when it does not
//! start with `{`, the query text alone. A request that parses is run against a small in-memory
//! `logs` index, so that the built query is executed as well.
//!
//! Checked: nothing panics or hangs; a bad request is an error, not a crash.
//!
//! Shared by the cargo-fuzz target `fuzz_targets/query.rs` and the replay of its seed
//! corpus in `cargo test` (tests/e2e/fuzz_seeds.rs).

use std::sync::OnceLock;
use std::time::Duration;

use tantivy::schema::Schema;
use tantivy::{Index, TantivyDocument};
use trawl_indexer::{SearchTarget, StreamSnapshot, StreamSpec, TargetKind};
use trawl_model::Timestamp;
use trawl_query::{search, QueryLimits, SearchRequest};

/// Records of the index every request is run against.
const RECORDS: [&str; 4] = [
    r#"{"timestamp": "2026-11-25T10:00:00.000000001Z", "namespace": "payments", "pod": "api-1", "level": "error", "message": "connection reset by peer", "labels": {"app": "api"}, "attributes": {"status": 502, "path": "/pay"}, "offset": 10}"#,
    r#"{"timestamp": "2026-11-25T10:00:01Z", "namespace": "auth", "pod": "login-0", "level": "info", "message": "user alice logged in", "labels": {"app.kubernetes.io/name": "login"}, "offset": 20}"#,
    r#"{"timestamp": "2026-11-25T10:00:02Z", "namespace": "search", "level": "warn", "message": "upstream timeout after 30s", "attributes": {"latency_ms": 30000.5}, "offset": 30}"#,
    r#"{"timestamp": "1999-01-01T00:00:00Z", "namespace": "payments", "message": "old", "offset": 40}"#,
];

fn snapshot() -> &'static StreamSnapshot {
    static SNAPSHOT: OnceLock<StreamSnapshot> = OnceLock::new();
    SNAPSHOT.get_or_init(|| {
        let spec = StreamSpec::logs();
        let schema: Schema = spec.schema();
        let index = Index::create_in_ram(schema.clone());
        let mut writer = index.writer_with_num_threads(1, 15_000_000).unwrap();
        for record in RECORDS {
            if let Ok(doc) = TantivyDocument::parse_json(&schema, record) {
                writer.add_document(doc).unwrap();
            }
        }
        writer.commit().unwrap();
        let searcher = index.reader().unwrap().searcher();
        let default_fields = spec
            .default_fields
            .iter()
            .filter_map(|name| schema.get_field(name).ok())
            .collect();
        StreamSnapshot {
            stream: spec.name.clone(),
            schema,
            default_fields,
            tokenizers: index.tokenizers().clone(),
            targets: vec![SearchTarget::new(
                TargetKind::Split,
                "fuzz",
                searcher,
                None,
                None,
                None,
            )],
        }
    })
}

/// Runs one input; panics on what the target checks.
pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let request = if text.starts_with('{') {
        match serde_json::from_str::<SearchRequest>(text) {
            Ok(request) => request,
            Err(_) => return,
        }
    } else {
        SearchRequest {
            q: Some(text.to_string()),
            ..SearchRequest::default()
        }
    };
    let limits = QueryLimits {
        timeout: Duration::from_secs(5),
        parallelism: 1,
        ..QueryLimits::default()
    };
    let now = Timestamp(1_795_600_800_000_000_000);
    if let Ok(parsed) = request.parse(now, &limits) {
        let _ = search(snapshot(), &parsed, &limits);
    }
}
