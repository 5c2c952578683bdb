//! What Elasticsearch clients learn about indices: `_mapping` (Elasticsearch field types from
//! a stream's tantivy schema), `_field_caps`, `_cat/indices`, and index patterns (`logs`,
//! `log*`, `logs,audit`, `_all`) resolved against the stream names.

use serde_json::{json, Map, Value};
use tantivy::schema::{FieldType, Schema};
use trawl_index::schema::{ID_FIELD, RAW_TOKENIZER};

use super::body::glob_match;
use super::error::{EsError, EsResult};
use super::IndexInfo;
use crate::search::TIMESTAMP_FIELD;

/// The streams an index expression names, in order, without duplicates. `_all`, `*` and an
/// empty expression name every stream; `a,b` is a list; `log*` a pattern; `-x` removes. A plain
/// name that is not a stream is a 404 `index_not_found_exception`; a pattern that matches
/// nothing names nothing (Elasticsearch's `allow_no_indices`).
pub(crate) fn resolve_indices(expression: &str, streams: &[String]) -> EsResult<Vec<String>> {
    let mut chosen: Vec<String> = Vec::new();
    for part in expression
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        if let Some(excluded) = part.strip_prefix('-') {
            chosen.retain(|s| !glob_match(excluded, s));
            continue;
        }
        if part == "_all" || part.contains('*') {
            let pattern = if part == "_all" { "*" } else { part };
            for stream in streams {
                if glob_match(pattern, stream) && !chosen.contains(stream) {
                    chosen.push(stream.clone());
                }
            }
            continue;
        }
        if !streams.iter().any(|s| s == part) {
            return Err(EsError::index_not_found(part));
        }
        if !chosen.iter().any(|s| s == part) {
            chosen.push(part.to_string());
        }
    }
    if expression.trim().is_empty() {
        chosen = streams.to_vec();
    }
    Ok(chosen)
}

/// The Elasticsearch type of each field of `schema`, in schema order, with whether it is
/// aggregatable (a fast field). `@timestamp` is listed as a second name of the timestamp, so
/// that tools expecting it (Grafana's default time field) find it.
pub(crate) fn field_types(schema: &Schema) -> Vec<(String, &'static str, bool)> {
    let mut out = Vec::new();
    for (_, entry) in schema.fields() {
        if entry.name() == ID_FIELD {
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

    #[test]
    fn index_expressions() {
        assert_eq!(resolve_indices("logs", &streams()).unwrap(), vec!["logs"]);
        assert_eq!(
            resolve_indices("logs*", &streams()).unwrap(),
            vec!["logs", "logs-app"]
        );
        assert_eq!(resolve_indices("_all", &streams()).unwrap(), streams());
        assert_eq!(
            resolve_indices("*,-logs-app", &streams()).unwrap(),
            vec!["audit", "logs"]
        );
        assert_eq!(
            resolve_indices("audit,logs,audit", &streams()).unwrap(),
            vec!["audit", "logs"]
        );
        assert!(resolve_indices("nothing*", &streams()).unwrap().is_empty());
        let err = resolve_indices("logs,nope", &streams()).unwrap_err();
        assert_eq!(err.status.as_u16(), 404);
        assert_eq!(err.reason, "no such index [nope]");
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
