//! Elasticsearch's response filtering, `filter_path`: a comma-separated list of dotted paths
//! whose segments may hold `*` wildcards (`items.*.error`), `**` standing for any number of
//! levels; arrays are transparent (a path goes through every element). What no path reaches is
//! left out, and objects left empty go too. Exclusions (`-path`) are not supported: such a path
//! is ignored.

use serde_json::{Map, Value};

/// Keeps the parts of `value` that one of `paths` reaches (`{}` when none does).
pub fn apply(value: Value, paths: &str) -> Value {
    let patterns: Vec<Vec<&str>> = paths
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty() && !p.starts_with('-'))
        .map(|p| p.split('.').collect())
        .collect();
    if patterns.is_empty() {
        return value;
    }
    let refs: Vec<&[&str]> = patterns.iter().map(Vec::as_slice).collect();
    filter(value, &refs).unwrap_or_else(|| Value::Object(Map::new()))
}

/// The part of `value` the remaining `patterns` reach; `None` when nothing.
fn filter(value: Value, patterns: &[&[&str]]) -> Option<Value> {
    match value {
        Value::Object(map) => {
            let mut out = Map::new();
            for (key, child) in map {
                let mut whole = false;
                let mut rest: Vec<&[&str]> = Vec::new();
                for pattern in patterns {
                    step(pattern, &key, &mut whole, &mut rest);
                }
                if whole {
                    out.insert(key, child);
                } else if !rest.is_empty() {
                    if let Some(kept) = filter(child, &rest) {
                        out.insert(key, kept);
                    }
                }
            }
            (!out.is_empty()).then_some(Value::Object(out))
        }
        Value::Array(items) => {
            let kept: Vec<Value> = items
                .into_iter()
                .filter_map(|item| filter(item, patterns))
                .collect();
            (!kept.is_empty()).then_some(Value::Array(kept))
        }
        // A leaf reached before its path ended: the path goes on into nothing.
        _ => None,
    }
}

/// What `pattern` asks of the child under `key`: all of it (`whole`), or the rest of the
/// pattern (pushed to `rest`).
fn step<'a>(pattern: &'a [&'a str], key: &str, whole: &mut bool, rest: &mut Vec<&'a [&'a str]>) {
    let Some((first, tail)) = pattern.split_first() else {
        return;
    };
    if *first == "**" {
        // `**` stands for no level (the tail applies to this key) or for this level (the
        // whole pattern applies again below).
        step(tail, key, whole, rest);
        if tail.is_empty() {
            *whole = true;
        } else {
            rest.push(pattern);
        }
        return;
    }
    if glob(first, key) {
        if tail.is_empty() {
            *whole = true;
        } else {
            rest.push(tail);
        }
    }
}

/// Whether `key` matches `pattern`, where `*` stands for any run of characters.
fn glob(pattern: &str, key: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == key;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !key.starts_with(first) || key.len() < first.len() + last.len() || !key.ends_with(last) {
        return false;
    }
    let mut middle = &key[first.len()..key.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match middle.find(part) {
            Some(at) => middle = &middle[at + part.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn answer() -> Value {
        json!({
            "took": 3,
            "errors": true,
            "items": [
                {"create": {"_index": "logs", "status": 201}},
                {"create": {"_index": "logs", "_id": "x", "status": 400,
                    "error": {"type": "document_parsing_exception", "reason": "bad"}}},
            ]
        })
    }

    #[test]
    fn fluent_bit_and_vector_paths() {
        assert_eq!(
            apply(answer(), "errors,items.*.error,items.*.status"),
            json!({"errors": true, "items": [
                {"create": {"status": 201}},
                {"create": {"status": 400,
                    "error": {"type": "document_parsing_exception", "reason": "bad"}}},
            ]})
        );
        assert_eq!(
            apply(answer(), "items.*.error"),
            json!({"items": [{"create": {
                "error": {"type": "document_parsing_exception", "reason": "bad"}}}]})
        );
        assert_eq!(apply(answer(), "took"), json!({"took": 3}));
    }

    #[test]
    fn wildcards_double_stars_and_nothing_matching() {
        assert_eq!(
            apply(answer(), "**.reason"),
            json!({"items": [{"create": {"error": {"reason": "bad"}}}]})
        );
        assert_eq!(
            apply(answer(), "items.cr*e._i*"),
            json!({"items": [{"create": {"_index": "logs"}}, {"create": {"_index": "logs", "_id": "x"}}]})
        );
        assert_eq!(apply(answer(), "nothing.here"), json!({}));
        assert_eq!(apply(answer(), "took.deeper"), json!({}));
        assert_eq!(
            apply(answer(), " , -took"),
            answer(),
            "no inclusion: unfiltered"
        );
    }

    #[test]
    fn glob_matches_runs() {
        assert!(glob("*", ""));
        assert!(glob("a*c", "abbc"));
        assert!(glob("*b*", "abc"));
        assert!(!glob("a*c", "ab"));
        assert!(!glob("a*a", "a"));
        assert!(glob("abc", "abc"));
    }
}
