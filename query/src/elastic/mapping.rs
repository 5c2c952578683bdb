//! What Elasticsearch clients learn about indices: `_mapping` (Elasticsearch field types from
//! a stream's tantivy schema), `_field_caps`, `_cat/indices`, and index patterns (`logs`,
//! `log*`, `logs,audit`, `_all`) resolved against the stream names.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};
use tantivy::schema::{FieldType, Schema};
use trawl_index::schema::{is_hidden_field, RAW_TOKENIZER};

use super::body::glob_match;
use super::error::{EsError, EsResult};
use super::IndexInfo;
use crate::search::TIMESTAMP_FIELD;
use trawl_model::elastic;

/// A stream an index expression names, and whether it was named through an index pattern of
/// `query.elastic_index_patterns` (its hits then come back in the KubeSphere writers' shape).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Chosen {
    pub stream: String,
    pub routed: bool,
}

/// The streams an index expression names, in order, without duplicates. `_all`, `*` and an
/// empty expression name every stream; `a,b` is a list; `log*` a pattern; `-x` removes. A name
/// or pattern matching a pattern of `patterns` (`ks-logstash-log-2024.01.31`,
/// `ks-logstash-log*`) names that pattern's stream. A plain name that is not a stream (nor
/// routed to one that exists) is a 404 `index_not_found_exception`, unless
/// `ignore_unavailable`; a pattern that matches nothing names nothing (Elasticsearch's
/// `allow_no_indices`).
pub(crate) fn resolve_indices(
    expression: &str,
    streams: &[String],
    patterns: &BTreeMap<String, String>,
    ignore_unavailable: bool,
) -> EsResult<Vec<Chosen>> {
    let mut chosen: Vec<Chosen> = Vec::new();
    let add = |chosen: &mut Vec<Chosen>, stream: &str, routed: bool| {
        if !chosen.iter().any(|c| c.stream == stream) {
            chosen.push(Chosen {
                stream: stream.to_string(),
                routed,
            });
        }
    };
    let exists = |stream: &str| streams.iter().any(|s| s == stream);
    for part in expression
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        if let Some(excluded) = part.strip_prefix('-') {
            let routed = elastic::routed_by_pattern(patterns, excluded);
            chosen.retain(|c| {
                !glob_match(excluded, &c.stream) && !routed.contains(&c.stream.as_str())
            });
            continue;
        }
        if part == "_all" || part.contains('*') {
            let pattern = if part == "_all" { "*" } else { part };
            for stream in streams {
                if glob_match(pattern, stream) {
                    add(&mut chosen, stream, false);
                }
            }
            if part != "_all" {
                for stream in elastic::routed_by_pattern(patterns, part) {
                    if exists(stream) {
                        add(&mut chosen, stream, true);
                    }
                }
            }
            continue;
        }
        if exists(part) {
            add(&mut chosen, part, false);
            continue;
        }
        match elastic::route_index(patterns, part) {
            Some(stream) if exists(stream) => add(&mut chosen, stream, true),
            _ if ignore_unavailable => {}
            _ => return Err(EsError::index_not_found(part)),
        }
    }
    if expression.trim().is_empty() {
        chosen = streams
            .iter()
            .map(|s| Chosen {
                stream: s.clone(),
                routed: false,
            })
            .collect();
    }
    Ok(chosen)
}

/// The names of [`resolve_indices`]'s streams.
pub(crate) fn resolve_names(
    expression: &str,
    streams: &[String],
    patterns: &BTreeMap<String, String>,
) -> EsResult<Vec<String>> {
    Ok(resolve_indices(expression, streams, patterns, false)?
        .into_iter()
        .map(|c| c.stream)
        .collect())
}

/// The Elasticsearch type of each field of `schema`, in schema order, with whether it is
/// aggregatable (a fast field). `@timestamp` is listed as a second name of the timestamp, so
/// that tools expecting it (Grafana's default time field) find it.
pub(crate) fn field_types(schema: &Schema) -> Vec<(String, &'static str, bool)> {
    let mut out = Vec::new();
    for (_, entry) in schema.fields() {
        if is_hidden_field(entry.name()) {
            continue;
        }
        let kind = match entry.field_type() {
            FieldType::Str(options) => match options.get_indexing_options() {
                Some(indexing) if indexing.tokenizer() != RAW_TOKENIZER => "text",
                _ => "keyword",
            },
            FieldType::Date(_) => "date_nanos",
            FieldType::U64(_) | FieldType::I64(_) => "long",
            FieldType::F64(_) => "double",
            FieldType::Bool(_) => "boolean",
            FieldType::JsonObject(_) => "flattened",
            FieldType::IpAddr(_) => "ip",
            FieldType::Bytes(_) => "binary",
            FieldType::Facet(_) => "keyword",
            _ => continue,
        };
        out.push((entry.name().to_string(), kind, entry.is_fast()));
        if entry.name() == TIMESTAMP_FIELD && schema.get_field("@timestamp").is_err() {
            out.push(("@timestamp".to_string(), kind, entry.is_fast()));
        }
    }
    out
}

/// `GET /{index}/_mapping`: `{"<stream>": {"mappings": {"properties": {...}}}}`.
pub(crate) fn mapping(streams: &[(String, Schema)]) -> Value {
    let mut out = Map::new();
    for (name, schema) in streams {
        let properties: Map<String, Value> = field_types(schema)
            .into_iter()
            .map(|(field, kind, _)| (field, json!({"type": kind})))
            .collect();
        out.insert(
            name.clone(),
            json!({"mappings": {"dynamic": "false", "properties": properties}}),
        );
    }
    Value::Object(out)
}

/// `_field_caps` over `streams` for the field patterns `fields` (`*` by default).
pub(crate) fn field_caps(streams: &[(String, Schema)], fields: &[String]) -> Value {
    let wanted = |name: &str| fields.is_empty() || fields.iter().any(|p| glob_match(p, name));
    let mut caps: Map<String, Value> = Map::new();
    for (_, schema) in streams {
        for (field, kind, fast) in field_types(schema) {
            if !wanted(&field) {
                continue;
            }
            let entry = caps
                .entry(field)
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(types) = entry {
                types.entry(kind.to_string()).or_insert_with(|| {
                    json!({
                        "type": kind,
                        "metadata_field": false,
                        "searchable": true,
                        "aggregatable": fast,
                    })
                });
            }
        }
    }
    let indices: Vec<&str> = streams.iter().map(|(n, _)| n.as_str()).collect();
    json!({"indices": indices, "fields": caps})
}

/// The columns of `_cat/indices`, in Elasticsearch's order.
const CAT_COLUMNS: &[&str] = &[
    "health",
    "status",
    "index",
    "uuid",
    "pri",
    "rep",
    "docs.count",
    "docs.deleted",
    "store.size",
    "pri.store.size",
    "dataset.size",
];

/// `_cat/indices` rows (every value a string, as Elasticsearch answers with `format=json`).
/// `bytes=b` gives sizes in bytes; otherwise they are human-readable (`1.2mb`).
pub(crate) fn cat_rows(indices: &[IndexInfo], bytes_raw: bool) -> Vec<Map<String, Value>> {
    indices
        .iter()
        .map(|info| {
            let size = if bytes_raw {
                info.bytes.to_string()
            } else {
                human_bytes(info.bytes)
            };
            let values = [
                "green".to_string(),
                "open".to_string(),
                info.name.clone(),
                uuid_of(&info.name),
                "1".to_string(),
                "0".to_string(),
                info.docs.to_string(),
                "0".to_string(),
                size.clone(),
                size.clone(),
                size,
            ];
            CAT_COLUMNS
                .iter()
                .zip(values)
                .map(|(c, v)| (c.to_string(), Value::String(v)))
                .collect()
        })
        .collect()
}

/// The text table of `_cat/indices`: the chosen columns (`h=`; all by default), a header line
/// with `v`, columns padded to their widest value.
pub(crate) fn cat_text(
    rows: &[Map<String, Value>],
    columns: Option<&[String]>,
    header: bool,
) -> EsResult<String> {
    let columns: Vec<String> = match columns {
        Some(cols) => {
            for c in cols {
                if !CAT_COLUMNS.contains(&c.as_str()) {
                    return Err(EsError::illegal_argument(format!(
                        "[_cat/indices] unknown column [{c}]"
                    )));
                }
            }
            cols.to_vec()
        }
        None => CAT_COLUMNS.iter().map(|c| c.to_string()).collect(),
    };
    let cell = |row: &Map<String, Value>, c: &str| {
        row.get(c)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let mut table: Vec<Vec<String>> = Vec::new();
    if header {
        table.push(columns.clone());
    }
    for row in rows {
        table.push(columns.iter().map(|c| cell(row, c)).collect());
    }
    let widths: Vec<usize> = (0..columns.len())
        .map(|i| table.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in table {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(v, w)| format!("{v:<w$}"))
            .collect();
        out.push_str(line.join(" ").trim_end());
        out.push('\n');
    }
    Ok(out)
}

/// A stable pseudo-uuid for a stream (Elasticsearch clients show but never use it).
pub(crate) fn uuid_of(name: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("trawl-{hash:016x}")
}

fn human_bytes(bytes: u64) -> String {
    const UNITS: &[&str] = &["b", "kb", "mb", "gb", "tb", "pb"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes}b")
    } else {
        format!("{value:.1}{}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use trawl_index::schema::build_schema;
    use trawl_model::schema::{AUDIT_FIELDS, LOG_FIELDS};

    use super::*;

    fn streams() -> Vec<String> {
        vec!["audit".into(), "logs".into(), "logs-app".into()]
    }

    fn names(expression: &str) -> EsResult<Vec<String>> {
        resolve_names(expression, &streams(), &BTreeMap::new())
    }

    #[test]
    fn index_expressions() {
        assert_eq!(names("logs").unwrap(), vec!["logs"]);
        assert_eq!(names("logs*").unwrap(), vec!["logs", "logs-app"]);
        assert_eq!(names("_all").unwrap(), streams());
        assert_eq!(names("*,-logs-app").unwrap(), vec!["audit", "logs"]);
        assert_eq!(names("audit,logs,audit").unwrap(), vec!["audit", "logs"]);
        assert!(names("nothing*").unwrap().is_empty());
        let err = names("logs,nope").unwrap_err();
        assert_eq!(err.status.as_u16(), 404);
        assert_eq!(err.reason, "no such index [nope]");
    }

    #[test]
    fn index_patterns_route_to_streams() {
        let patterns: BTreeMap<String, String> = elastic::KUBESPHERE_INDEX_PATTERNS
            .iter()
            .map(|(p, s)| (p.to_string(), s.to_string()))
            .collect();
        let resolve = |expression: &str, ignore: bool| {
            resolve_indices(expression, &streams(), &patterns, ignore)
        };
        let routed = |stream: &str| Chosen {
            stream: stream.into(),
            routed: true,
        };
        assert_eq!(
            resolve("ks-logstash-log*", false).unwrap(),
            vec![routed("logs")]
        );
        assert_eq!(
            resolve(
                "ks-logstash-log-2024.01.30,ks-logstash-log-2024.01.31",
                false
            )
            .unwrap(),
            vec![routed("logs")]
        );
        assert_eq!(
            resolve("ks-logstash-auditing-2024.01.31", false).unwrap(),
            vec![routed("audit")]
        );
        // The events stream does not exist here: a pattern names nothing, a daily name is a
        // 404 unless the client ignores unavailable indices.
        assert!(resolve("ks-logstash-events*", false).unwrap().is_empty());
        assert!(resolve("ks-logstash-events-2024.01.31", true)
            .unwrap()
            .is_empty());
        let err = resolve("ks-logstash-events-2024.01.31", false).unwrap_err();
        assert_eq!(err.reason, "no such index [ks-logstash-events-2024.01.31]");
        assert_eq!(
            resolve("logs", false).unwrap(),
            vec![Chosen {
                stream: "logs".into(),
                routed: false
            }]
        );
    }

    #[test]
    fn mapping_types() {
        let schema = build_schema(LOG_FIELDS);
        let m = mapping(&[("logs".to_string(), schema)]);
        let props = &m["logs"]["mappings"]["properties"];
        assert_eq!(props["timestamp"]["type"], json!("date_nanos"));
        assert_eq!(props["@timestamp"]["type"], json!("date_nanos"));
        assert_eq!(props["namespace"]["type"], json!("keyword"));
        assert_eq!(props["message"]["type"], json!("text"));
        assert_eq!(props["labels"]["type"], json!("flattened"));
        assert_eq!(props["offset"]["type"], json!("long"));
        assert!(props.get("_id").is_none());
        let audit = build_schema(AUDIT_FIELDS);
        let caps = field_caps(
            &[("audit".to_string(), audit)],
            &["priv*".to_string(), "status_code".to_string()],
        );
        assert_eq!(
            caps,
            json!({"indices": ["audit"], "fields": {
                "status_code": {"long": {"type": "long", "metadata_field": false, "searchable": true, "aggregatable": true}},
                "privileged": {"boolean": {"type": "boolean", "metadata_field": false, "searchable": true, "aggregatable": true}}
            }})
        );
    }

    #[test]
    fn cat_indices() {
        let infos = vec![
            IndexInfo {
                name: "logs".into(),
                docs: 12,
                bytes: 2048,
            },
            IndexInfo {
                name: "audit".into(),
                docs: 0,
                bytes: 0,
            },
        ];
        let rows = cat_rows(&infos, false);
        assert_eq!(rows[0]["docs.count"], json!("12"));
        assert_eq!(rows[0]["store.size"], json!("2.0kb"));
        let text = cat_text(
            &rows,
            Some(&["index".to_string(), "docs.count".to_string()]),
            true,
        )
        .unwrap();
        assert_eq!(text, "index docs.count\nlogs  12\naudit 0\n");
        assert!(cat_text(&rows, Some(&["nope".to_string()]), false).is_err());
    }
}
