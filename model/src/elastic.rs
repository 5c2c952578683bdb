//! The conventions of Trawl's Elasticsearch-compatible API that both halves of it share (the
//! indexer's `_bulk`, the query side's searches): the error body, the compatible content type,
//! index patterns (`*` globs) and the table that routes index names to streams.

use std::collections::BTreeMap;

use serde_json::{json, Value};

/// The content type of Elasticsearch's compatibility mode, answered to a client that sent it.
pub const COMPAT_JSON: &str = "application/vnd.elasticsearch+json; compatible-with=8";

/// Whether a client's `Accept` or `Content-Type` value asks for the compatibility mode (the
/// official clients send `application/vnd.elasticsearch+json; compatible-with=8`).
pub fn asks_compat(header_value: &str) -> bool {
    header_value.contains("vnd.elasticsearch")
}

/// Elasticsearch's error body: `{"error": {"root_cause": [{"type", "reason", ...}], "type",
/// "reason", ...}, "status": n}`; with `index`, the cause names it as Elasticsearch does for
/// `index_not_found_exception`.
pub fn error_body(status: u16, kind: &str, reason: &str, index: Option<&str>) -> Value {
    let mut cause = json!({"type": kind, "reason": reason});
    if let Some(index) = index {
        cause["index"] = json!(index);
        cause["resource.type"] = json!("index_or_alias");
        cause["resource.id"] = json!(index);
    }
    let mut error = cause.clone();
    error["root_cause"] = json!([cause]);
    json!({"error": error, "status": status})
}

/// `*` matches any run of characters; everything else is literal.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let mut rest = text;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            match rest.strip_prefix(part) {
                Some(r) => rest = r,
                None => return false,
            }
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            match rest.find(part) {
                Some(pos) => rest = &rest[pos + part.len()..],
                None => return false,
            }
        }
    }
    true
}

/// KubeSphere's index prefixes (its Fluent Bit writes `<prefix>-<yyyy.MM.dd>`) and the streams
/// they are: the default of `[query] elastic_index_patterns`.
pub const KUBESPHERE_INDEX_PATTERNS: &[(&str, &str)] = &[
    ("ks-logstash-log*", crate::LOGS_STREAM),
    ("ks-logstash-auditing*", crate::AUDIT_STREAM),
    ("ks-logstash-events*", "events"),
];

/// The stream a concrete index name is routed to by `patterns` (pattern → stream): the stream
/// of the first pattern, in name order, that matches the name; `None` when none does (the
/// name is then a stream name itself).
pub fn route_index<'a>(patterns: &'a BTreeMap<String, String>, index: &str) -> Option<&'a str> {
    patterns
        .iter()
        .find(|(pattern, _)| glob_match(pattern, index))
        .map(|(_, stream)| stream.as_str())
}

/// The streams an index *pattern* of a search (`ks-logstash-log*`) reaches through `patterns`:
/// those of every table pattern it matches, or that matches it (`ks-logstash-log-2024*`).
pub fn routed_by_pattern<'a>(
    patterns: &'a BTreeMap<String, String>,
    expression: &str,
) -> Vec<&'a str> {
    patterns
        .iter()
        .filter(|(pattern, _)| glob_match(expression, pattern) || glob_match(pattern, expression))
        .map(|(_, stream)| stream.as_str())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> BTreeMap<String, String> {
        KUBESPHERE_INDEX_PATTERNS
            .iter()
            .map(|(p, s)| (p.to_string(), s.to_string()))
            .collect()
    }

    #[test]
    fn daily_names_and_patterns_route_to_streams() {
        let t = table();
        assert_eq!(route_index(&t, "ks-logstash-log-2024.01.31"), Some("logs"));
        assert_eq!(
            route_index(&t, "ks-logstash-auditing-2024.01.31"),
            Some("audit")
        );
        assert_eq!(
            route_index(&t, "ks-logstash-events-2024.01.31"),
            Some("events")
        );
        assert_eq!(route_index(&t, "logs"), None);
        assert_eq!(routed_by_pattern(&t, "ks-logstash-log*"), vec!["logs"]);
        assert_eq!(
            routed_by_pattern(&t, "ks-logstash-log-2024.01*"),
            vec!["logs"]
        );
        assert_eq!(routed_by_pattern(&t, "ks-*").len(), 3);
        assert!(routed_by_pattern(&t, "other*").is_empty());
    }

    #[test]
    fn error_body_shape() {
        assert_eq!(
            error_body(
                404,
                "index_not_found_exception",
                "no such index [x]",
                Some("x")
            ),
            json!({"error": {
                "root_cause": [{"type": "index_not_found_exception", "reason": "no such index [x]",
                    "index": "x", "resource.type": "index_or_alias", "resource.id": "x"}],
                "type": "index_not_found_exception", "reason": "no such index [x]",
                "index": "x", "resource.type": "index_or_alias", "resource.id": "x"
            }, "status": 404})
        );
        assert!(asks_compat(COMPAT_JSON));
        assert!(asks_compat(
            "application/vnd.elasticsearch+x-ndjson;compatible-with=8"
        ));
        assert!(!asks_compat("application/json"));
    }

    #[test]
    fn globs() {
        assert!(glob_match("*", "x"));
        assert!(glob_match("lev*", "level"));
        assert!(glob_match("*el", "level"));
        assert!(glob_match("l*v*l", "level"));
        assert!(!glob_match("lev", "level"));
        assert!(!glob_match("a*b", "ba"));
    }
}
