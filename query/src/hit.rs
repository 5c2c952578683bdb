//! A stored tantivy document as the flat JSON record a client gets back: the model's field
//! names, timestamps as RFC 3339 with nine fractional digits, keywords as strings (keyword lists
//! as arrays), numbers as numbers, object fields as objects. The undeclared fields of a generic
//! stream (its dynamic JSON field) come back at the top level of the record, as they were sent.

use std::collections::HashSet;

use serde_json::{Map, Number, Value};
use tantivy::schema::{Field, OwnedValue, Schema};
use tantivy::TantivyDocument;
use trawl_index::schema::{is_hidden_field, DYNAMIC_FIELD};
use trawl_model::path::lookup;
use trawl_model::schema::{FieldKind, AUDIT_FIELDS, LOG_FIELDS};
use trawl_model::Timestamp;

use crate::error::{Error, Result};

/// Turns stored documents of one stream into hits, keeping only the projected fields.
#[derive(Debug, Clone)]
pub struct HitFormat {
    /// The fields to output, in schema (record) order, with whether each is a list.
    fields: Vec<(Field, String, bool)>,
    /// A generic stream's dynamic field and how to output it.
    dynamic: Option<Dynamic>,
}

/// How the dynamic field of a generic stream is output.
#[derive(Debug, Clone)]
struct Dynamic {
    field: Field,
    /// The projected paths (`fields=service.version,user`), each output under its own name;
    /// `None`: every dynamic field.
    paths: Option<Vec<String>>,
    /// Output the whole object under [`DYNAMIC_FIELD`] instead of at the top level (exports,
    /// whose columns are fixed before the first document).
    nested: bool,
}

impl HitFormat {
    /// A format for `schema`. `projection` names the fields to return (all but the hidden
    /// `_id` when `None`); a name the schema does not have is an [`Error::InvalidArgument`],
    /// except in a generic stream, where it names a path of the dynamic field. `list_fields`
    /// are always returned as arrays; any other field is a scalar when it holds one value and
    /// an array when it holds several.
    pub fn new(
        schema: &Schema,
        projection: Option<&[String]>,
        list_fields: &HashSet<&str>,
    ) -> Result<HitFormat> {
        let dynamic_field = schema.get_field(DYNAMIC_FIELD).ok();
        let mut dynamic = dynamic_field.map(|field| Dynamic {
            field,
            paths: None,
            nested: false,
        });
        if let (Some(names), Some(dynamic)) = (projection, dynamic.as_mut()) {
            let paths: Vec<String> = names
                .iter()
                .filter(|name| !is_hidden_field(name) && schema.get_field(name).is_err())
                .cloned()
                .collect();
            if names.iter().any(|n| n == DYNAMIC_FIELD) && paths.is_empty() {
                // The whole object was asked for by its own name.
                dynamic.nested = true;
            } else {
                dynamic.paths = Some(paths);
            }
        }
        if let Some(names) = projection {
            let unknown: Vec<&str> = names
                .iter()
                .map(String::as_str)
                .filter(|name| {
                    is_hidden_field(name)
                        || (schema.get_field(name).is_err() && dynamic_field.is_none())
                })
                .collect();
            if !unknown.is_empty() {
                return Err(Error::InvalidArgument(format!(
                    "`fields`: unknown field(s) {}",
                    unknown
                        .iter()
                        .map(|n| format!("`{n}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        }
        let wanted = |name: &str| projection.is_none_or(|names| names.iter().any(|n| n == name));
        let fields = schema
            .fields()
            .filter(|(_, entry)| !is_hidden_field(entry.name()) && entry.name() != DYNAMIC_FIELD)
            .filter(|(_, entry)| entry.is_stored())
            .filter(|(_, entry)| wanted(entry.name()))
            .map(|(field, entry)| {
                let name = entry.name().to_string();
                let list = list_fields.contains(name.as_str());
                (field, name, list)
            })
            .collect();
        Ok(HitFormat { fields, dynamic })
    }

    /// The same format with a generic stream's dynamic fields output as one object under
    /// [`DYNAMIC_FIELD`] (unless paths of it were projected): what the column layout of an
    /// export expects.
    pub fn with_nested_dynamic(mut self) -> HitFormat {
        if let Some(dynamic) = self.dynamic.as_mut() {
            dynamic.nested = dynamic.paths.is_none();
        }
        self
    }

    /// The value of a projected dynamic path in a stored document (for export columns).
    pub(crate) fn dynamic_value(&self, doc: &TantivyDocument, path: &str) -> Option<Value> {
        let dynamic = self.dynamic.as_ref()?;
        let Value::Object(object) = doc
            .get_first(dynamic.field)
            .map(|v| owned_to_json(OwnedValue::from(v)))?
        else {
            return None;
        };
        lookup(&object, path).cloned()
    }

    /// The fields a record holds, in the order of its keys (a `serde_json::Map` sorts them),
    /// with whether each is a list: for writers that write records without building them.
    /// `None` for a generic stream, whose dynamic fields join the record's keys.
    pub(crate) fn sorted_fields(&self) -> Option<Vec<(Field, String, bool)>> {
        if self.dynamic.is_some() {
            return None;
        }
        let mut fields = self.fields.clone();
        fields.sort_by(|a, b| a.1.cmp(&b.1));
        Some(fields)
    }

    /// The flat record of a stored document; fields without a value are omitted.
    pub fn to_json(&self, doc: &TantivyDocument) -> Map<String, Value> {
        let mut out = Map::new();
        for (field, name, list) in &self.fields {
            let mut values: Vec<Value> = doc
                .get_all(*field)
                .map(|v| owned_to_json(OwnedValue::from(v)))
                .collect();
            let value = match values.len() {
                0 => continue,
                1 if !list => values.swap_remove(0),
                _ => Value::Array(values),
            };
            out.insert(name.clone(), value);
        }
        if let Some(dynamic) = &self.dynamic {
            self.add_dynamic(dynamic, doc, &mut out);
        }
        out
    }

    fn add_dynamic(&self, dynamic: &Dynamic, doc: &TantivyDocument, out: &mut Map<String, Value>) {
        let Some(Value::Object(object)) = doc
            .get_first(dynamic.field)
            .map(|v| owned_to_json(OwnedValue::from(v)))
        else {
            return;
        };
        match (&dynamic.paths, dynamic.nested) {
            (None, true) => {
                out.insert(DYNAMIC_FIELD.to_string(), Value::Object(object));
            }
            (None, false) => {
                for (key, value) in object {
                    // A declared field of the same name keeps its place.
                    out.entry(key).or_insert(value);
                }
            }
            (Some(paths), _) => {
                for path in paths {
                    if let Some(value) = lookup(&object, path) {
                        out.insert(path.clone(), value.clone());
                    }
                }
            }
        }
    }
}

/// The fields of a stream returned as arrays even when they hold a single value: the keyword
/// lists of its field table. Streams without a table (operator-declared ones) have none.
pub fn list_fields(stream: &str) -> HashSet<&'static str> {
    let table = match stream {
        trawl_model::LOGS_STREAM => LOG_FIELDS,
        trawl_model::AUDIT_STREAM => AUDIT_FIELDS,
        _ => &[],
    };
    table
        .iter()
        .filter(|def| def.kind == FieldKind::KeywordList)
        .map(|def| def.name())
        .collect()
}

/// JSON of one stored value. Dates become RFC 3339 strings with nanoseconds; bytes (which no
/// built-in stream stores) become lower-case hex.
fn owned_to_json(value: OwnedValue) -> Value {
    match value {
        OwnedValue::Null => Value::Null,
        OwnedValue::Str(s) => Value::String(s),
        OwnedValue::PreTokStr(p) => Value::String(p.text),
        OwnedValue::U64(n) => Value::Number(n.into()),
        OwnedValue::I64(n) => Value::Number(n.into()),
        OwnedValue::F64(f) => Number::from_f64(f).map_or(Value::Null, Value::Number),
        OwnedValue::Bool(b) => Value::Bool(b),
        OwnedValue::Date(d) => Value::String(Timestamp(d.into_timestamp_nanos()).to_rfc3339()),
        OwnedValue::Facet(f) => Value::String(f.to_string()),
        OwnedValue::Bytes(b) | OwnedValue::Custom(b) => Value::String(hex(&b)),
        OwnedValue::IpAddr(ip) => Value::String(
            ip.to_ipv4_mapped()
                .map_or_else(|| ip.to_string(), |v4| v4.to_string()),
        ),
        OwnedValue::Array(items) => Value::Array(items.into_iter().map(owned_to_json).collect()),
        OwnedValue::Object(entries) => Value::Object(
            entries
                .into_iter()
                .map(|(k, v)| (k, owned_to_json(v)))
                .collect(),
        ),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use tantivy::DateTime;
    use trawl_index::schema::build_schema;
    use trawl_model::schema::FieldDef;

    fn doc(schema: &Schema) -> TantivyDocument {
        let f = |name| schema.get_field(name).unwrap();
        let mut doc = TantivyDocument::new();
        doc.add_date(
            f("timestamp"),
            DateTime::from_timestamp_nanos(1_700_000_000_123_456_789),
        );
        doc.add_text(f("namespace"), "payments");
        doc.add_text(f("message"), "connection reset by peer");
        doc.add_u64(f("offset"), 42);
        let mut labels = BTreeMap::new();
        labels.insert(
            "app.kubernetes.io/name".to_string(),
            OwnedValue::Str("web".into()),
        );
        labels.insert("replicas".to_string(), OwnedValue::I64(3));
        doc.add_object(f("labels"), labels);
        doc.add_text(f("_id"), "hidden");
        doc
    }

    #[test]
    fn flat_record() {
        let schema = build_schema(LOG_FIELDS);
        let format = HitFormat::new(&schema, None, &list_fields("logs")).unwrap();
        let json = Value::Object(format.to_json(&doc(&schema)));
        assert_eq!(
            json,
            serde_json::json!({
                "timestamp": "2023-11-14T22:13:20.123456789Z",
                "namespace": "payments",
                "message": "connection reset by peer",
                "offset": 42,
                "labels": {"app.kubernetes.io/name": "web", "replicas": 3}
            })
        );
    }

    #[test]
    fn projection_and_lists() {
        let schema = build_schema(LOG_FIELDS);
        let projection = vec!["namespace".to_string(), "offset".to_string()];
        let lists: HashSet<&str> = ["namespace"].into_iter().collect();
        let format = HitFormat::new(&schema, Some(&projection), &lists).unwrap();
        let json = Value::Object(format.to_json(&doc(&schema)));
        assert_eq!(
            json,
            serde_json::json!({"namespace": ["payments"], "offset": 42})
        );
    }

    #[test]
    fn keyword_lists_of_the_audit_stream() {
        let lists = list_fields("audit");
        let mut names: Vec<&str> = lists.into_iter().collect();
        names.sort_unstable();
        assert_eq!(names, ["impersonated_groups", "source_ips", "user_groups"]);
        assert!(list_fields("logs").is_empty());
        assert!(list_fields("custom").is_empty());
    }

    fn generic_doc(schema: &Schema) -> TantivyDocument {
        let f = |name| schema.get_field(name).unwrap();
        let mut doc = TantivyDocument::new();
        doc.add_date(f("timestamp"), DateTime::from_timestamp_nanos(0));
        doc.add_text(f("service.name"), "api");
        let dynamic: OwnedValue = serde_json::from_value(serde_json::json!(
            {"foo": {"bar": "x"}, "status": 200, "service.name": "shadowed"}
        ))
        .unwrap();
        doc.add_field_value(f(DYNAMIC_FIELD), &dynamic);
        doc
    }

    #[test]
    fn dynamic_fields_come_back_at_the_top_level() {
        // What the indexer builds for `keyword_fields = ["service.name"]`.
        let schema = trawl_index::schema::build_generic_schema(&[
            FieldDef::new("timestamp", FieldKind::Timestamp),
            FieldDef::new("service.name", FieldKind::Keyword),
        ]);
        let doc = generic_doc(&schema);
        let format = HitFormat::new(&schema, None, &HashSet::new()).unwrap();
        assert_eq!(
            Value::Object(format.to_json(&doc)),
            serde_json::json!({"timestamp": "1970-01-01T00:00:00.000000000Z",
                "service.name": "api", "foo": {"bar": "x"}, "status": 200})
        );
        let projection = vec!["foo.bar".to_string(), "service.name".to_string()];
        let format = HitFormat::new(&schema, Some(&projection), &HashSet::new()).unwrap();
        assert_eq!(
            Value::Object(format.to_json(&doc)),
            serde_json::json!({"service.name": "api", "foo.bar": "x"})
        );
        assert_eq!(
            format.dynamic_value(&doc, "foo.bar"),
            Some(serde_json::json!("x"))
        );
        let nested = HitFormat::new(&schema, None, &HashSet::new())
            .unwrap()
            .with_nested_dynamic();
        assert_eq!(
            nested.to_json(&doc)[DYNAMIC_FIELD],
            serde_json::json!({"foo": {"bar": "x"}, "status": 200, "service.name": "shadowed"})
        );
    }

    #[test]
    fn unknown_projected_field_is_refused() {
        let schema = build_schema(LOG_FIELDS);
        let projection = vec!["nope".to_string(), "_id".to_string(), "pod".to_string()];
        let err = HitFormat::new(&schema, Some(&projection), &HashSet::new()).unwrap_err();
        assert_eq!(err.to_string(), "`fields`: unknown field(s) `nope`, `_id`");
    }
}
