//! An Elasticsearch-shaped aggregation result flattened into a table: a row per leaf bucket,
//! the keys of the enclosing buckets repeated in each row.
//!
//! - A bucket aggregation `name` gives the column `name` (the bucket's `key_as_string` when it
//!   has one, e.g. a date histogram's RFC 3339 time, else its `key`) and `name.doc_count`;
//!   other scalar bucket fields (`from`, `to`) become `name.<field>`.
//! - A metric aggregation gives `name` for a single `value`, else a column per statistic
//!   (`name.min`, `name.avg`, `name.values.99.0`): nested objects are flattened with dots,
//!   arrays are kept as JSON.
//! - Sibling bucket aggregations produce their rows one after the other; metrics beside them
//!   are repeated in each.
//! - Without any bucket aggregation the table has one row.

use serde_json::{Map, Value};

/// A flattened aggregation result.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Table {
    /// Every column, in the order first met: enclosing bucket keys before nested ones.
    pub columns: Vec<String>,
    pub rows: Vec<Map<String, Value>>,
}

impl Table {
    fn set(&mut self, row: &mut Map<String, Value>, column: String, value: Value) {
        if !self.columns.contains(&column) {
            self.columns.push(column.clone());
        }
        row.insert(column, value);
    }
}

/// The table of `aggregations` (the `aggregations` object of a search answer).
pub(crate) fn flatten(aggregations: &Value) -> Table {
    let mut table = Table::default();
    if let Value::Object(aggs) = aggregations {
        expand(Map::new(), aggs, &mut table);
    }
    table
}

/// Adds to `table` the rows of the aggregations `aggs`, each starting with `row`'s columns.
fn expand(mut row: Map<String, Value>, aggs: &Map<String, Value>, table: &mut Table) {
    let mut bucket_aggs = Vec::new();
    for (name, result) in aggs {
        match result.get("buckets") {
            Some(buckets) => bucket_aggs.push((name, buckets)),
            None => metric_columns(name, result, &mut row, table),
        }
    }
    if bucket_aggs.is_empty() {
        table.rows.push(row);
        return;
    }
    for (name, buckets) in bucket_aggs {
        let buckets: Vec<(Option<&String>, &Value)> = match buckets {
            Value::Array(list) => list.iter().map(|b| (None, b)).collect(),
            // `keyed` responses: the key is the map key.
            Value::Object(map) => map.iter().map(|(k, b)| (Some(k), b)).collect(),
            _ => Vec::new(),
        };
        for (keyed, bucket) in buckets {
            let Value::Object(bucket) = bucket else {
                continue;
            };
            let mut bucket_row = row.clone();
            let key = bucket
                .get("key_as_string")
                .or_else(|| bucket.get("key"))
                .cloned()
                .or_else(|| keyed.map(|k| Value::String(k.clone())))
                .unwrap_or(Value::Null);
            table.set(&mut bucket_row, name.clone(), key);
            let mut sub_aggs = Map::new();
            for (field, value) in bucket {
                match field.as_str() {
                    "key" | "key_as_string" => {}
                    _ if value.is_object() => {
                        sub_aggs.insert(field.clone(), value.clone());
                    }
                    _ => {
                        table.set(&mut bucket_row, format!("{name}.{field}"), value.clone());
                    }
                }
            }
            expand(bucket_row, &sub_aggs, table);
        }
    }
}

/// The columns of a metric aggregation's result.
fn metric_columns(name: &str, result: &Value, row: &mut Map<String, Value>, table: &mut Table) {
    match result {
        Value::Object(fields) if fields.len() == 1 && fields.contains_key("value") => {
            table.set(row, name.to_string(), fields["value"].clone());
        }
        Value::Object(fields) => {
            for (field, value) in fields {
                metric_columns(&format!("{name}.{field}"), value, row, table);
            }
        }
        other => table.set(row, name.to_string(), other.clone()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn rows(value: Value) -> Vec<Value> {
        flatten(&value)
            .rows
            .into_iter()
            .map(Value::Object)
            .collect()
    }

    #[test]
    fn nested_terms_with_metrics() {
        let aggs = json!({
            "ns": {
                "doc_count_error_upper_bound": 0,
                "sum_other_doc_count": 0,
                "buckets": [
                    {"key": "payments", "doc_count": 3,
                     "level": {"buckets": [{"key": "error", "doc_count": 2, "off": {"value": 7.0}},
                                           {"key": "info", "doc_count": 1, "off": {"value": 1.0}}]}},
                    {"key": "shop", "doc_count": 1,
                     "level": {"buckets": [{"key": "warn", "doc_count": 1, "off": {"value": null}}]}}
                ]
            },
            "total_offset": {"value": 42.0}
        });
        assert_eq!(
            rows(aggs),
            vec![
                json!({"total_offset": 42.0, "ns": "payments", "ns.doc_count": 3,
                       "level": "error", "level.doc_count": 2, "off": 7.0}),
                json!({"total_offset": 42.0, "ns": "payments", "ns.doc_count": 3,
                       "level": "info", "level.doc_count": 1, "off": 1.0}),
                json!({"total_offset": 42.0, "ns": "shop", "ns.doc_count": 1,
                       "level": "warn", "level.doc_count": 1, "off": null}),
            ]
        );
    }

    #[test]
    fn columns_in_nesting_order() {
        let aggs = json!({"z": {"buckets": [{"key": "a", "doc_count": 1,
                                            "b": {"buckets": [{"key": "x", "doc_count": 1}]}}]}});
        assert_eq!(
            flatten(&aggs).columns,
            ["z", "z.doc_count", "b", "b.doc_count"]
        );
    }

    #[test]
    fn histogram_keys_stats_and_percentiles() {
        let aggs = json!({
            "per_minute": {"buckets": [
                {"key": 1.7e12, "key_as_string": "2023-11-14T22:13:20Z", "doc_count": 2,
                 "s": {"count": 2, "min": 1.0, "max": 3.0, "avg": 2.0, "sum": 4.0},
                 "p": {"values": {"50.0": 2.0}}}
            ]},
        });
        assert_eq!(
            rows(aggs),
            vec![json!({
                "per_minute": "2023-11-14T22:13:20Z", "per_minute.doc_count": 2,
                "s.count": 2, "s.min": 1.0, "s.max": 3.0, "s.avg": 2.0, "s.sum": 4.0,
                "p.values.50.0": 2.0
            })]
        );
    }

    #[test]
    fn keyed_ranges_and_metrics_only() {
        let aggs = json!({"r": {"buckets": {"low": {"to": 10.0, "doc_count": 4}}}});
        assert_eq!(
            rows(aggs),
            vec![json!({"r": "low", "r.to": 10.0, "r.doc_count": 4})]
        );
        assert_eq!(rows(json!({"n": {"value": 3.0}})), vec![json!({"n": 3.0})]);
        assert!(rows(json!({"t": {"buckets": []}})).is_empty());
    }
}
