//! One rule over one window: the exceptions resolved into exact clauses, the events grouped by
//! the rule's fields with their count and value, and for a group its exact query and samples.
//!
//! The query of a group is the rule's query, its exceptions and the group's values as clauses
//! joined under the parser's AND-by-default, so that run over the same window it finds exactly
//! the events counted. Globs in the exception lists are resolved against the values present in
//! the window (one terms aggregation per field), so they too become exact clauses.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};
use trawl_config::{Aggregate, Rule, RuleKind};
use trawl_model::Timestamp;

use crate::source::{Search, Searcher};

/// Most distinct values of a field an exception glob is matched against in one window.
const MAX_GLOB_VALUES: usize = 10_000;

/// Longest sample line kept (characters); longer ones are cut and end with `…`.
const MAX_SAMPLE_CHARS: usize = 1_000;

/// One group of matching events in a window.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// The group's values, by field (empty for a rule without `group_by`).
    pub group: Vec<(String, Value)>,
    /// Matching events in the window.
    pub count: u64,
    /// The condition's aggregate (the count for match rules and `count` conditions).
    pub value: f64,
    /// The query that finds exactly this group's events in the window.
    pub query: String,
}

/// The query of `rule` with its exceptions, for `[start, end)`; `None` when its `users` list
/// leaves no one (nothing can match).
pub async fn rule_query(
    rule: &Rule,
    searcher: &dyn Searcher,
    start: Timestamp,
    end: Timestamp,
) -> Result<Option<String>, String> {
    let mut clauses = vec![format!("({})", rule.query)];
    if !rule.users.is_empty() {
        let values = resolve(rule, searcher, "user", &rule.users, start, end).await?;
        if values.is_empty() {
            return Ok(None);
        }
        let alternatives: Vec<String> = values.iter().map(|v| eq("user", v)).collect();
        clauses.push(format!("({})", alternatives.join(" OR ")));
    }
    for (field, globs) in [
        ("user", &rule.ignore_users),
        ("user_groups", &rule.ignore_groups),
        ("namespace", &rule.ignore_namespaces),
    ] {
        for value in resolve(rule, searcher, field, globs, start, end).await? {
            clauses.push(format!("-{}", eq(field, &value)));
        }
    }
    Ok(Some(clauses.join(" ")))
}

/// The values of `field` that `globs` name: literals as they are, globs matched against the
/// values present among the rule's events of the window.
async fn resolve(
    rule: &Rule,
    searcher: &dyn Searcher,
    field: &str,
    globs: &[String],
    start: Timestamp,
    end: Timestamp,
) -> Result<Vec<String>, String> {
    let mut values: Vec<String> = globs.iter().filter(|g| !g.contains('*')).cloned().collect();
    let patterns: Vec<globset::GlobMatcher> = globs
        .iter()
        .filter(|g| g.contains('*'))
        .map(|g| {
            globset::GlobBuilder::new(g)
                .literal_separator(false)
                .build()
                .map(|g| g.compile_matcher())
                .map_err(|err| format!("glob `{g}`: {err}"))
        })
        .collect::<Result<_, _>>()?;
    if patterns.is_empty() {
        return Ok(values);
    }
    let found = searcher
        .search(Search {
            stream: rule.stream.clone(),
            query: rule.query.clone(),
            start,
            end,
            limit: 0,
            aggs: Some(json!({"v": {"terms": {"field": field, "size": MAX_GLOB_VALUES}}})),
        })
        .await?;
    let buckets = found
        .aggregations
        .as_ref()
        .and_then(|a| a["v"]["buckets"].as_array())
        .cloned()
        .unwrap_or_default();
    if buckets.len() >= MAX_GLOB_VALUES {
        tracing::warn!(
            rule = %rule.name,
            field,
            "more distinct values than exception globs are matched against; some may count"
        );
    }
    for bucket in buckets {
        if let Some(key) = bucket["key"].as_str() {
            if patterns.iter().any(|p| p.is_match(key)) && !values.iter().any(|v| v == key) {
                values.push(key.to_string());
            }
        }
    }
    Ok(values)
}

/// The groups of `rule`'s events in `[start, end)` (`query` from [`rule_query`]), the ones
/// with most events first, at most `max_groups`.
pub async fn groups(
    rule: &Rule,
    searcher: &dyn Searcher,
    query: &str,
    start: Timestamp,
    end: Timestamp,
    max_groups: usize,
) -> Result<Vec<Finding>, String> {
    let value_agg = match &rule.kind {
        RuleKind::Threshold { condition, .. } => value_aggregation(&condition.aggregate),
        RuleKind::Match { .. } => None,
    };
    let mut aggs = value_agg.clone().map(|agg| json!({ "value": agg }));
    for field in rule.group_by.iter().rev() {
        let mut level = json!({"terms": {"field": field, "size": max_groups, "missing": ""}});
        if let Some(inner) = aggs {
            level["aggs"] = inner;
        }
        aggs = Some(json!({ "group": level }));
    }
    let found = searcher
        .search(Search {
            stream: rule.stream.clone(),
            query: query.to_string(),
            start,
            end,
            limit: 0,
            aggs,
        })
        .await?;
    if found.timed_out {
        return Err("the search ran out of time (query.timeout_ms): no partial evaluation".into());
    }
    let mut findings = Vec::new();
    if rule.group_by.is_empty() {
        if found.total > 0 || value_agg.is_none() {
            let value = match &value_agg {
                Some(_) => found
                    .aggregations
                    .as_ref()
                    .and_then(|a| metric(&a["value"])),
                None => Some(found.total as f64),
            };
            if let Some(value) = value {
                findings.push(Finding {
                    group: Vec::new(),
                    count: found.total,
                    value,
                    query: query.to_string(),
                });
            }
        }
    } else if let Some(aggregations) = &found.aggregations {
        flatten(
            &aggregations["group"],
            &rule.group_by,
            &mut Vec::new(),
            value_agg.is_some(),
            query,
            &mut findings,
        );
    }
    findings.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.query.cmp(&b.query)));
    findings.truncate(max_groups);
    Ok(findings)
}

fn flatten(
    agg: &Value,
    fields: &[String],
    path: &mut Vec<(String, Value)>,
    has_value: bool,
    query: &str,
    out: &mut Vec<Finding>,
) {
    let Some((field, rest)) = fields.split_first() else {
        return;
    };
    for bucket in agg["buckets"].as_array().into_iter().flatten() {
        let count = bucket["doc_count"].as_u64().unwrap_or(0);
        if count == 0 {
            continue;
        }
        path.push((field.clone(), bucket["key"].clone()));
        if rest.is_empty() {
            let value = if has_value {
                metric(&bucket["value"])
            } else {
                Some(count as f64)
            };
            if let Some(value) = value {
                out.push(Finding {
                    group: path.clone(),
                    count,
                    value,
                    query: group_query(query, path),
                });
            }
        } else {
            flatten(&bucket["group"], rest, path, has_value, query, out);
        }
        path.pop();
    }
}

/// The aggregation computing `aggregate`; `None` for the count (the search's own total).
fn value_aggregation(aggregate: &Aggregate) -> Option<Value> {
    Some(match aggregate {
        Aggregate::Count => return None,
        Aggregate::Avg(f) => json!({"avg": {"field": f}}),
        Aggregate::Sum(f) => json!({"sum": {"field": f}}),
        Aggregate::Min(f) => json!({"min": {"field": f}}),
        Aggregate::Max(f) => json!({"max": {"field": f}}),
        Aggregate::Percentile(q, f) => json!({"percentiles": {"field": f, "percents": [q]}}),
    })
}

/// A metric aggregation's number: `value`, or the one entry of a percentiles' `values`
/// (object or list). `None` when the group had no value for the field.
fn metric(result: &Value) -> Option<f64> {
    if let Some(v) = result.get("value") {
        return v.as_f64();
    }
    match result.get("values")? {
        Value::Object(map) => map.values().next().and_then(Value::as_f64),
        Value::Array(list) => list.first().and_then(|e| e["value"].as_f64()),
        _ => None,
    }
}

/// `query` narrowed to one group's values.
pub fn group_query(query: &str, group: &[(String, Value)]) -> String {
    let mut clauses = vec![query.to_string()];
    for (field, value) in group {
        clauses.push(match value {
            Value::String(s) => eq(field, s),
            Value::Number(n) => format!("{field}:{n}"),
            Value::Bool(b) => format!("{field}:{b}"),
            _ => format!("-{field}:*"),
        });
    }
    clauses.join(" ")
}

/// `field` equal to `value`; the empty value is the field's absence (an empty string is never
/// indexed).
fn eq(field: &str, value: &str) -> String {
    if value.is_empty() {
        return format!("-{field}:*");
    }
    let mut out = format!("{field}:\"");
    for c in value.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Up to `n` of the newest events of `query` in `[start, end)`, one line each.
pub async fn samples(
    searcher: &dyn Searcher,
    stream: &str,
    query: &str,
    start: Timestamp,
    end: Timestamp,
    n: usize,
) -> Result<Vec<String>, String> {
    if n == 0 {
        return Ok(Vec::new());
    }
    let found = searcher
        .search(Search {
            stream: stream.to_string(),
            query: query.to_string(),
            start,
            end,
            limit: n,
            aggs: None,
        })
        .await?;
    Ok(found.hits.iter().map(sample_line).collect())
}

/// An event as one line: a log's time, namespace/pod and message; an audit event's time and
/// who did what to which object with what status; anything else as compact JSON.
pub fn sample_line(hit: &Map<String, Value>) -> String {
    let text = |key: &str| match hit.get(key) {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    let mut parts: Vec<String> = text("timestamp").into_iter().collect();
    let line = if let Some(message) = text("message") {
        if let (Some(ns), Some(pod)) = (text("namespace"), text("pod")) {
            parts.push(format!("{ns}/{pod}"));
        }
        parts.push(message);
        parts.join(" ")
    } else if hit.contains_key("verb") || hit.contains_key("audit_id") {
        for key in [
            "user",
            "verb",
            "resource",
            "subresource",
            "namespace",
            "name",
            "status_code",
            "source_ip",
            "exec_command",
        ] {
            if let Some(value) = text(key) {
                parts.push(format!("{key}={value}"));
            }
        }
        parts.join(" ")
    } else {
        Value::Object(hit.clone()).to_string()
    };
    if line.chars().count() > MAX_SAMPLE_CHARS {
        let mut cut: String = line.chars().take(MAX_SAMPLE_CHARS).collect();
        cut.push('…');
        cut
    } else {
        line
    }
}

/// The labels of a group: the field names made label names, the values as text; a field the
/// events lack (the empty value) is no label, as in Prometheus.
pub fn group_labels(group: &[(String, Value)]) -> BTreeMap<String, String> {
    group
        .iter()
        .filter(|(_, value)| !matches!(value, Value::String(s) if s.is_empty()))
        .map(|(field, value)| {
            let text = match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (trawl_config::label_name(field), text)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::source::{Found, SearchFuture};

    /// Answers with canned results and records every search.
    struct Fake {
        answer: Box<dyn Fn(&Search) -> Found + Send + Sync>,
        seen: Mutex<Vec<Search>>,
    }

    impl Searcher for Fake {
        fn search(&self, search: Search) -> SearchFuture {
            let found = (self.answer)(&search);
            self.seen.lock().unwrap().push(search);
            Box::pin(async move { Ok(found) })
        }
    }

    fn rule(text: &str) -> Rule {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.toml");
        std::fs::write(&path, text).unwrap();
        let config = trawl_config::AlertingConfig {
            rule_files: vec![path],
            ..Default::default()
        };
        trawl_config::load_rules(&config).unwrap()[0].rules[0].clone()
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn exception_globs_become_exact_clauses_of_the_values_present() {
        let rule = rule(
            "[[groups]]\nname = \"g\"\n[[groups.rules]]\nname = \"R\"\nkind = \"match\"\n\
             stream = \"audit\"\nquery = \"verb:get\"\nignore_users = [\"bot\", \"ci-*\"]\n\
             ignore_namespaces = [\"kube-system\"]\n",
        );
        let fake = Fake {
            answer: Box::new(|_| Found {
                aggregations: Some(json!({"v": {"buckets": [
                    {"key": "alice", "doc_count": 3},
                    {"key": "ci-runner", "doc_count": 2},
                    {"key": "ci-deploy", "doc_count": 1},
                ]}})),
                ..Found::default()
            }),
            seen: Mutex::default(),
        };
        let query = block_on(rule_query(&rule, &fake, Timestamp(0), Timestamp(10)))
            .unwrap()
            .unwrap();
        assert_eq!(
            query,
            r#"(verb:get) -user:"bot" -user:"ci-runner" -user:"ci-deploy" -namespace:"kube-system""#
        );
        let seen = fake.seen.lock().unwrap();
        assert_eq!(
            seen.len(),
            1,
            "one terms search, for the one field with a glob"
        );
        assert_eq!(seen[0].query, "verb:get");
        assert_eq!((seen[0].start, seen[0].end), (Timestamp(0), Timestamp(10)));
    }

    #[test]
    fn nested_groups_flatten_with_their_values_most_events_first() {
        let rule = rule(
            "[[groups]]\nname = \"g\"\n[[groups.rules]]\nname = \"R\"\nkind = \"threshold\"\n\
             query = \"*\"\nwindow = \"1m\"\ngroup_by = [\"namespace\", \"pod\"]\n\
             condition = \"p99(latency_ms) > 1\"\n",
        );
        let fake = Fake {
            answer: Box::new(|_| Found {
                total: 6,
                aggregations: Some(json!({"group": {"buckets": [
                    {"key": "web", "doc_count": 5, "group": {"buckets": [
                        {"key": "a", "doc_count": 4, "value": {"values": {"99.0": 7.0}}},
                        {"key": "", "doc_count": 1, "value": {"values": {"99.0": 2.0}}},
                    ]}},
                    {"key": "db", "doc_count": 1, "group": {"buckets": [
                        {"key": "b", "doc_count": 1, "value": {"values": {"99.0": null}}},
                    ]}},
                ]}})),
                ..Found::default()
            }),
            seen: Mutex::default(),
        };
        let found = block_on(groups(&rule, &fake, "(*)", Timestamp(0), Timestamp(1), 10)).unwrap();
        let summary: Vec<(String, u64, f64)> = found
            .iter()
            .map(|f| (f.query.clone(), f.count, f.value))
            .collect();
        assert_eq!(
            summary,
            vec![
                (r#"(*) namespace:"web" pod:"a""#.to_string(), 4, 7.0),
                (r#"(*) namespace:"web" -pod:*"#.to_string(), 1, 2.0),
            ],
            "a group without a value for the field has no value to compare"
        );
        let seen = fake.seen.lock().unwrap();
        assert_eq!(
            seen[0].aggs,
            Some(json!({"group": {
                "terms": {"field": "namespace", "size": 10, "missing": ""},
                "aggs": {"group": {
                    "terms": {"field": "pod", "size": 10, "missing": ""},
                    "aggs": {"value": {"percentiles": {"field": "latency_ms", "percents": [99.0]}}}
                }}
            }}))
        );
    }

    #[test]
    fn group_queries_are_exact_clauses() {
        let group = vec![
            ("user".to_string(), json!("bob \"b\"")),
            ("namespace".to_string(), json!("")),
            ("status_code".to_string(), json!(403)),
        ];
        assert_eq!(
            group_query("(verb:get)", &group),
            r#"(verb:get) user:"bob \"b\"" -namespace:* status_code:403"#
        );
        assert_eq!(
            group_labels(&group),
            BTreeMap::from([
                ("status_code".to_string(), "403".to_string()),
                ("user".to_string(), "bob \"b\"".to_string()),
            ])
        );
    }

    #[test]
    fn metrics_read_values_and_percentiles() {
        assert_eq!(metric(&json!({"value": 2.5})), Some(2.5));
        assert_eq!(metric(&json!({"value": null})), None);
        assert_eq!(metric(&json!({"values": {"99.0": 7.0}})), Some(7.0));
        assert_eq!(
            metric(&json!({"values": [{"key": 99.0, "value": 8.0}]})),
            Some(8.0)
        );
    }

    #[test]
    fn sample_lines() {
        let log = json!({"timestamp": "2026-01-01T00:00:00Z", "namespace": "web", "pod": "p", "message": "boom"});
        assert_eq!(
            sample_line(log.as_object().unwrap()),
            "2026-01-01T00:00:00Z web/p boom"
        );
        let audit = json!({"timestamp": "t", "audit_id": "a", "user": "bob", "verb": "create", "resource": "pods", "subresource": "exec", "namespace": "ns", "name": "p", "status_code": 101});
        assert_eq!(
            sample_line(audit.as_object().unwrap()),
            "t user=bob verb=create resource=pods subresource=exec namespace=ns name=p status_code=101"
        );
        let long = json!({"message": "x".repeat(2000)});
        assert_eq!(
            sample_line(long.as_object().unwrap()).chars().count(),
            MAX_SAMPLE_CHARS + 1
        );
    }
}
