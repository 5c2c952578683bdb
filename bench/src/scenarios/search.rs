//! `search`: a fixed query set over N `logs` documents, each query timed `runs` times.

use serde_json::Value;

use crate::client::{client, encode, get_json, post_json, stream_stats};
use crate::corpus::{logs::LogGenerator, Civil, CORPUS_START_NS};
use crate::scenarios::{load, loaded_indexer, time_runs, Ctx};
use crate::{report, Error, Result};

const S: &str = "search";

/// Log-time rate of the search corpus, documents per second.
pub(crate) const DOCS_PER_SEC: f64 = 2000.0;

fn rfc3339(ns: i64) -> String {
    let mut out = Vec::new();
    Civil::from_nanos(ns).rfc3339_nanos(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// The query set: (name, query string parameters without the stream).
pub(crate) fn queries(docs: u64) -> Vec<(&'static str, String)> {
    let span_ns = (docs as f64 / DOCS_PER_SEC * 1e9) as i64;
    let mid = CORPUS_START_NS + span_ns / 2;
    let window = format!(
        "&start={}&end={}",
        encode(&rfc3339(mid)),
        encode(&rfc3339(mid + 60_000_000_000))
    );
    vec![
        ("term", "q=timeout&limit=100".to_string()),
        ("term_rare", "q=NullPointerException&limit=100".to_string()),
        (
            "phrase",
            format!("q={}&limit=100", encode("\"connection reset by peer\"")),
        ),
        (
            "fields_and",
            format!(
                "q={}&limit=100",
                encode("namespace:payments AND level:error")
            ),
        ),
        (
            "bool_text_fields",
            format!(
                "q={}&limit=100",
                // `a AND NOT b` matches nothing (a pure-negative clause, see BENCHMARKS.md):
                // the exclusion is written with `-`.
                encode("level:error AND (timeout OR refused) -namespace:\"kube-system\"")
            ),
        ),
        ("time_range_only", format!("q=*&limit=100{window}")),
        ("time_range_term", format!("q=error&limit=100{window}")),
        ("match_all_latest", "q=*&limit=100".to_string()),
        ("match_all_oldest", "q=*&limit=100&sort=asc".to_string()),
        (
            "count_level_error",
            format!("q={}&limit=0", encode("level:error")),
        ),
        ("count_all", "q=*&limit=0".to_string()),
    ]
}

/// The web console's requests (POST bodies) over the newest 15 minutes of the corpus, as the
/// console sends them on opening: the volume histogram by level, the six facets, and both
/// together with the first page of hits (the one request the search view makes).
fn console_requests(docs: u64) -> Vec<(&'static str, Value)> {
    let span_ns = (docs as f64 / DOCS_PER_SEC * 1e9) as i64;
    let end = CORPUS_START_NS + span_ns + 1;
    let start = end - 15 * 60 * 1_000_000_000;
    let histogram = serde_json::json!({"histogram": {
        "date_histogram": {"field": "timestamp", "fixed_interval": "30s", "min_doc_count": 0},
        "aggs": {"level": {"terms": {"field": "level", "size": 20}}}
    }});
    let mut facets = serde_json::Map::new();
    for field in ["namespace", "pod", "container", "node", "level", "cluster"] {
        facets.insert(
            format!("facet_{field}"),
            serde_json::json!({"terms": {"field": field, "size": 10}}),
        );
    }
    let mut both = facets.clone();
    both.extend(histogram.as_object().cloned().unwrap_or_default());
    let body = |limit: u32, aggs: Value| serde_json::json!({"q": "*", "start": rfc3339(start), "end": rfc3339(end), "limit": limit, "aggs": aggs});
    vec![
        ("console_histogram", body(0, histogram)),
        ("console_facets", body(0, Value::Object(facets))),
        ("console_first_page", body(50, Value::Object(both))),
    ]
}

/// Runs the scenario over 10M documents (200k with `--quick`, `--docs` to choose).
pub fn run(ctx: &Ctx) -> Result<()> {
    let docs = ctx.docs_or(200_000, 10_000_000);
    let http = client()?;
    let indexer = loaded_indexer(ctx, S, &http, "logs", docs, |indexer| {
        let gen = LogGenerator::new(ctx.seed, "bench", 800, DOCS_PER_SEC);
        load(ctx, S, &http, indexer, "logs", gen, docs).map(drop)
    })?;
    let (bytes, _) = stream_stats(&http, indexer.url(), "logs")?;
    report::metric(S, "index_bytes", bytes as f64 / 1e6, "MB");
    let runs = ctx.runs();
    for (name, params) in queries(docs) {
        let url = format!("{}/api/v1/logs/search?{params}", indexer.url());
        measure(name, runs, &url, || get_json(&http, &url));
    }
    let url = format!("{}/api/v1/logs/search", indexer.url());
    for (name, body) in console_requests(docs) {
        measure(name, runs, &url, || post_json(&http, &url, &body));
    }
    Ok(())
}

/// Times `runs` answers of `request` and reports their percentiles and the answer's `total`.
fn measure(name: &str, runs: usize, url: &str, mut request: impl FnMut() -> Result<Option<Value>>) {
    let mut total = 0;
    let result = time_runs(runs, || {
        let answer = request()?.ok_or_else(|| Error::Status {
            what: url.to_string(),
            status: 404,
            body: String::new(),
        })?;
        total = answer.get("total").and_then(Value::as_u64).unwrap_or(0);
        Ok(())
    });
    match result {
        Ok(samples) => {
            report::percentiles(S, name, &samples);
            report::metric(S, &format!("{name}_total"), total as f64, "docs");
        }
        Err(e) => report::unavailable(S, name, &e.to_string()),
    }
}
