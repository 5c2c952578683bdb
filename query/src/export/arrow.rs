//! Typed columns of an export and the Arrow IPC stream encoder.
//!
//! Column types, from the stream's tantivy schema:
//!
//! | field | Arrow type |
//! |---|---|
//! | date (`timestamp`, `stage_timestamp`) | `Timestamp(Nanosecond, "UTC")` |
//! | keyword and text (`namespace`, `pod`, `level`, `message`, `verb`, `user`, ...) | `Utf8` |
//! | keyword list (`user_groups`, `impersonated_groups`, `source_ips`) | `List<Utf8>` |
//! | `u64` (`offset`) / `i64` (`status_code`, `latency_ms`) / `f64` | `UInt64` / `Int64` / `Float64` |
//! | bool (`privileged`, `host_pid`, ...) | `Boolean` |
//! | object (`labels`, `attributes`, `annotations`, `request_object`, ...) | `Utf8` holding the object as JSON text |
//!
//! Every column is nullable (a record without the field). A scalar field that holds several
//! values (possible only in operator-declared streams) exports its first value. The
//! undeclared fields of a generic stream are one `_dynamic` column of JSON text, or, when
//! named in `fields`, a column of JSON text each (a string as itself).
//!
//! Rows of an aggregation export have no schema: each column's type is inferred from its
//! values (all integers: `Int64`; numbers: `Float64`; booleans: `Boolean`; strings: `Utf8`;
//! anything else: `Utf8` holding JSON text).

use std::collections::HashSet;
use std::io::Write;
use std::sync::Arc;

use arrow_array::builder::{
    ArrayBuilder, BinaryBuilder, BooleanBuilder, Float64Builder, Int64Builder, ListBuilder,
    StringBuilder, TimestampNanosecondBuilder, UInt64Builder,
};
use arrow_array::{ArrayRef, RecordBatch, RecordBatchOptions};
use arrow_ipc::writer::StreamWriter;
use arrow_schema::TimeUnit;
use arrow_schema::{ArrowError, DataType, Field as ArrowField, Schema as ArrowSchema, SchemaRef};
use serde_json::{Map, Value as Json};
use tantivy::schema::{Field, FieldType, OwnedValue, Schema, Value};
use tantivy::TantivyDocument;
use trawl_index::schema::{is_hidden_field, DYNAMIC_FIELD};

use crate::error::{Error, Result};
use crate::export::raw::{self, RawBlock};
use crate::export::stored::StoredRow;
use crate::export::{Block, Encode};
use crate::hit::HitFormat;

/// The type of one exported column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ColumnType {
    Timestamp,
    Utf8,
    Utf8List,
    UInt64,
    Int64,
    Float64,
    Boolean,
    /// Any value, as JSON text in a `Utf8` column.
    Json,
    Binary,
}

impl ColumnType {
    fn data_type(self) -> DataType {
        match self {
            ColumnType::Timestamp => DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
            ColumnType::Utf8 | ColumnType::Json => DataType::Utf8,
            ColumnType::Utf8List => {
                DataType::List(Arc::new(ArrowField::new("item", DataType::Utf8, true)))
            }
            ColumnType::UInt64 => DataType::UInt64,
            ColumnType::Int64 => DataType::Int64,
            ColumnType::Float64 => DataType::Float64,
            ColumnType::Boolean => DataType::Boolean,
            ColumnType::Binary => DataType::Binary,
        }
    }
}

/// One exported column: its name, type and (for documents) the tantivy field it comes from.
#[derive(Debug, Clone)]
pub(crate) struct Column {
    pub name: String,
    pub ty: ColumnType,
    field: Option<Field>,
    /// A path of a generic stream's dynamic field, for a column named after it.
    path: Option<String>,
}

impl Column {
    /// The tantivy field the column comes from; `None` for a dynamic path or a table column.
    pub(crate) fn field(&self) -> Option<Field> {
        self.field
    }

    /// A dynamic path of a generic stream, read from the stored object.
    pub(crate) fn is_dynamic_path(&self) -> bool {
        self.path.is_some()
    }
}

/// The columns of an export, their Arrow schema, and how a stored document becomes a flat
/// JSON record (for the text formats).
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    pub columns: Vec<Column>,
    pub schema: SchemaRef,
    /// Present for document exports.
    pub hits: Option<HitFormat>,
}

impl Layout {
    /// The columns of a stream's documents: `projection`'s fields in its order (duplicates
    /// dropped), or every stored field but `_id` in schema order. An unknown field is an
    /// [`Error::InvalidArgument`] naming it. `list_fields` become `List<Utf8>` columns.
    pub(crate) fn for_stream(
        schema: &Schema,
        projection: Option<&[String]>,
        list_fields: &HashSet<&str>,
    ) -> Result<Layout> {
        let hits = HitFormat::new(schema, projection, list_fields)?.with_nested_dynamic();
        let generic = schema.get_field(DYNAMIC_FIELD).is_ok();
        let exported = |name: &str| {
            !is_hidden_field(name)
                && match schema.get_field(name) {
                    Ok(f) => schema.get_field_entry(f).is_stored(),
                    Err(_) => generic,
                }
        };
        let names: Vec<String> = match projection {
            Some(names) => {
                let mut seen = HashSet::new();
                names
                    .iter()
                    .filter(|n| exported(n) && seen.insert(n.as_str()))
                    .cloned()
                    .collect()
            }
            None => schema
                .fields()
                .map(|(_, entry)| entry.name().to_string())
                .filter(|n| exported(n))
                .collect(),
        };
        let mut columns = Vec::with_capacity(names.len());
        for name in names {
            let Ok(field) = schema.get_field(&name) else {
                columns.push(Column {
                    path: Some(name.clone()),
                    name,
                    ty: ColumnType::Json,
                    field: None,
                });
                continue;
            };
            let ty = match schema.get_field_entry(field).field_type() {
                FieldType::Date(_) => ColumnType::Timestamp,
                FieldType::Str(_) if list_fields.contains(name.as_str()) => ColumnType::Utf8List,
                FieldType::Str(_) | FieldType::Facet(_) | FieldType::IpAddr(_) => ColumnType::Utf8,
                FieldType::U64(_) => ColumnType::UInt64,
                FieldType::I64(_) => ColumnType::Int64,
                FieldType::F64(_) => ColumnType::Float64,
                FieldType::Bool(_) => ColumnType::Boolean,
                FieldType::JsonObject(_) => ColumnType::Json,
                FieldType::Bytes(_) => ColumnType::Binary,
                // Kinds no stream declares: their JSON form.
                _ => ColumnType::Json,
            };
            columns.push(Column {
                name,
                ty,
                field: Some(field),
                path: None,
            });
        }
        Ok(Layout::from_columns(columns, Some(hits)))
    }

    /// The columns of flat rows (an aggregation table), in the order given, each typed by its
    /// values (see the module docs).
    pub(crate) fn for_rows(names: &[String], rows: &[Map<String, Json>]) -> Layout {
        let columns = names
            .iter()
            .map(|name| {
                let values = rows
                    .iter()
                    .filter_map(|r| r.get(name))
                    .filter(|v| !v.is_null());
                Column {
                    name: name.clone(),
                    ty: infer_type(values),
                    field: None,
                    path: None,
                }
            })
            .collect();
        Layout::from_columns(columns, None)
    }

    fn from_columns(columns: Vec<Column>, hits: Option<HitFormat>) -> Layout {
        let fields: Vec<ArrowField> = columns
            .iter()
            .map(|c| ArrowField::new(&c.name, c.ty.data_type(), true))
            .collect();
        Layout {
            columns,
            schema: Arc::new(ArrowSchema::new(fields)),
            hits,
        }
    }

    /// A record batch of stored documents.
    pub(crate) fn batch_of_docs(&self, docs: &[TantivyDocument]) -> Result<RecordBatch> {
        let arrays = self
            .columns
            .iter()
            .map(|column| {
                let mut builder = ColumnBuilder::new(column.ty, docs.len());
                if let Some(field) = column.field {
                    for doc in docs {
                        builder.append_doc(doc, field);
                    }
                } else if let (Some(path), Some(hits)) = (&column.path, &self.hits) {
                    for doc in docs {
                        builder.append_json(hits.dynamic_value(doc, path).as_ref());
                    }
                }
                builder.finish()
            })
            .collect();
        self.batch(arrays, docs.len())
    }

    /// A record batch of flat rows.
    pub(crate) fn batch_of_rows(&self, rows: &[Map<String, Json>]) -> Result<RecordBatch> {
        let arrays = self
            .columns
            .iter()
            .map(|column| {
                let mut builder = ColumnBuilder::new(column.ty, rows.len());
                for row in rows {
                    builder.append_json(row.get(&column.name));
                }
                builder.finish()
            })
            .collect();
        self.batch(arrays, rows.len())
    }

    pub(crate) fn batch(&self, arrays: Vec<ArrayRef>, rows: usize) -> Result<RecordBatch> {
        let options = RecordBatchOptions::new().with_row_count(Some(rows));
        RecordBatch::try_new_with_options(Arc::clone(&self.schema), arrays, &options)
            .map_err(|e| Error::Internal(format!("building a record batch: {e}")))
    }
}

/// The narrowest column type holding every value (nulls excluded).
fn infer_type<'a>(values: impl Iterator<Item = &'a Json> + Clone) -> ColumnType {
    let mut values = values.peekable();
    if values.peek().is_none() {
        return ColumnType::Utf8;
    }
    let all = |pred: fn(&Json) -> bool| values.clone().all(pred);
    if all(Json::is_boolean) {
        ColumnType::Boolean
    } else if all(Json::is_i64) {
        ColumnType::Int64
    } else if all(Json::is_u64) {
        ColumnType::UInt64
    } else if all(Json::is_number) {
        ColumnType::Float64
    } else if all(Json::is_string) {
        ColumnType::Utf8
    } else {
        ColumnType::Json
    }
}

/// An Arrow array under construction.
pub(crate) enum ColumnBuilder {
    Timestamp(TimestampNanosecondBuilder),
    Utf8(StringBuilder),
    Utf8List(ListBuilder<StringBuilder>),
    UInt64(UInt64Builder),
    Int64(Int64Builder),
    Float64(Float64Builder),
    Boolean(BooleanBuilder),
    /// JSON text.
    Json(StringBuilder),
    Binary(BinaryBuilder),
}

impl ColumnBuilder {
    pub(crate) fn new(ty: ColumnType, rows: usize) -> ColumnBuilder {
        ColumnBuilder::with_capacity(ty, rows, rows * 16)
    }

    /// A builder with room for `rows` values and, in a string or binary column, `bytes` of
    /// them.
    pub(crate) fn with_capacity(ty: ColumnType, rows: usize, bytes: usize) -> ColumnBuilder {
        match ty {
            ColumnType::Timestamp => ColumnBuilder::Timestamp(
                TimestampNanosecondBuilder::with_capacity(rows).with_timezone("UTC"),
            ),
            ColumnType::Utf8 => ColumnBuilder::Utf8(StringBuilder::with_capacity(rows, bytes)),
            ColumnType::Utf8List => ColumnBuilder::Utf8List(ListBuilder::new(StringBuilder::new())),
            ColumnType::UInt64 => ColumnBuilder::UInt64(UInt64Builder::with_capacity(rows)),
            ColumnType::Int64 => ColumnBuilder::Int64(Int64Builder::with_capacity(rows)),
            ColumnType::Float64 => ColumnBuilder::Float64(Float64Builder::with_capacity(rows)),
            ColumnType::Boolean => ColumnBuilder::Boolean(BooleanBuilder::with_capacity(rows)),
            ColumnType::Json => ColumnBuilder::Json(StringBuilder::with_capacity(rows, bytes)),
            ColumnType::Binary => ColumnBuilder::Binary(BinaryBuilder::with_capacity(rows, bytes)),
        }
    }

    /// Appends the document's value of `field` (its first, or all for a list), null when it
    /// has none or one of another type.
    fn append_doc(&mut self, doc: &TantivyDocument, field: Field) {
        let first = doc.get_first(field);
        match self {
            ColumnBuilder::Timestamp(b) => b.append_option(
                first
                    .and_then(|v| v.as_datetime())
                    .map(|d| d.into_timestamp_nanos()),
            ),
            ColumnBuilder::Utf8(b) => match first {
                Some(v) => match v.as_str() {
                    Some(s) => b.append_value(s),
                    None => match OwnedValue::from(v) {
                        OwnedValue::Null => b.append_null(),
                        OwnedValue::Str(s) => b.append_value(s),
                        // Facets and IP addresses: their JSON string form.
                        other => match serde_json::to_value(&other) {
                            Ok(Json::String(s)) => b.append_value(s),
                            Ok(json) => b.append_value(json.to_string()),
                            Err(_) => b.append_null(),
                        },
                    },
                },
                None => b.append_null(),
            },
            ColumnBuilder::Utf8List(b) => {
                let mut any = false;
                for value in doc.get_all(field) {
                    if let Some(s) = value.as_str() {
                        b.values().append_value(s);
                        any = true;
                    }
                }
                b.append(any);
            }
            ColumnBuilder::UInt64(b) => b.append_option(first.and_then(|v| v.as_u64())),
            ColumnBuilder::Int64(b) => b.append_option(first.and_then(|v| v.as_i64())),
            ColumnBuilder::Float64(b) => b.append_option(first.and_then(|v| v.as_f64())),
            ColumnBuilder::Boolean(b) => b.append_option(first.and_then(|v| v.as_bool())),
            ColumnBuilder::Json(b) => match first.map(OwnedValue::from) {
                Some(OwnedValue::Null) | None => b.append_null(),
                Some(value) => match serde_json::to_string(&value) {
                    Ok(text) => b.append_value(text),
                    Err(_) => b.append_null(),
                },
            },
            ColumnBuilder::Binary(b) => b.append_option(first.and_then(|v| v.as_bytes())),
        }
    }

    /// Appends a stored document's value of `field` exactly as [`Self::append_doc`] appends
    /// the same document's (`json` is a reused buffer for object columns).
    pub(crate) fn append_stored(&mut self, row: &StoredRow, field: Field, json: &mut Vec<u8>) {
        let first = row.first(field);
        match self {
            ColumnBuilder::Timestamp(b) => b.append_option(
                first
                    .and_then(|v| v.as_datetime())
                    .map(|d| d.into_timestamp_nanos()),
            ),
            ColumnBuilder::Utf8(b) => match first {
                None | Some(OwnedValue::Null) => b.append_null(),
                Some(OwnedValue::Str(s)) => b.append_value(s),
                // Facets and IP addresses: their JSON string form.
                Some(other) => match serde_json::to_value(other) {
                    Ok(Json::String(s)) => b.append_value(s),
                    Ok(json) => b.append_value(json.to_string()),
                    Err(_) => b.append_null(),
                },
            },
            ColumnBuilder::Utf8List(b) => {
                let mut any = false;
                for value in row.all(field) {
                    if let Some(s) = value.as_str() {
                        b.values().append_value(s);
                        any = true;
                    }
                }
                b.append(any);
            }
            ColumnBuilder::UInt64(b) => b.append_option(first.and_then(|v| v.as_u64())),
            ColumnBuilder::Int64(b) => b.append_option(first.and_then(|v| v.as_i64())),
            ColumnBuilder::Float64(b) => b.append_option(first.and_then(|v| v.as_f64())),
            ColumnBuilder::Boolean(b) => b.append_option(first.and_then(|v| v.as_bool())),
            ColumnBuilder::Json(b) => match first {
                Some(OwnedValue::Null) | None => b.append_null(),
                Some(value) => {
                    json.clear();
                    match serde_json::to_writer(&mut *json, value) {
                        Ok(()) => b.append_option(std::str::from_utf8(json).ok()),
                        Err(_) => b.append_null(),
                    }
                }
            },
            ColumnBuilder::Binary(b) => b.append_option(first.and_then(|v| v.as_bytes())),
        }
    }

    /// Appends `row`'s value of `field` read in place, as [`Self::append_stored`] appends it
    /// from the decoded document; false (nothing appended) when the cell must come from the
    /// decoded document (see [`raw`]).
    pub(crate) fn append_raw(
        &mut self,
        block: &RawBlock,
        row: usize,
        field: Field,
        json: &mut Vec<u8>,
    ) -> bool {
        let first = block.first(row, field);
        match self {
            ColumnBuilder::Timestamp(b) => b.append_option(first.and_then(raw::as_date_nanos)),
            ColumnBuilder::Utf8(b) => match first {
                None => b.append_null(),
                Some(v) if raw::type_code(v) == Some(raw::code::NULL) => b.append_null(),
                Some(v) => match raw::as_str(v) {
                    Some(s) => b.append_value(s),
                    None => return false,
                },
            },
            ColumnBuilder::Utf8List(b) => {
                let mut any = false;
                for s in block.values(row, field).filter_map(raw::as_str) {
                    b.values().append_value(s);
                    any = true;
                }
                b.append(any);
            }
            ColumnBuilder::UInt64(b) => b.append_option(first.and_then(raw::as_u64)),
            ColumnBuilder::Int64(b) => b.append_option(first.and_then(raw::as_i64)),
            ColumnBuilder::Float64(b) => b.append_option(first.and_then(raw::as_f64)),
            ColumnBuilder::Boolean(b) => b.append_option(first.and_then(raw::as_bool)),
            ColumnBuilder::Json(b) => match first {
                None => b.append_null(),
                Some(v) if raw::type_code(v) == Some(raw::code::NULL) => b.append_null(),
                Some(v) => {
                    json.clear();
                    if raw::write_json(v, raw::Style::Stored, json).is_none() {
                        return false;
                    }
                    match std::str::from_utf8(json) {
                        Ok(text) => b.append_value(text),
                        Err(_) => return false,
                    }
                }
            },
            ColumnBuilder::Binary(b) => b.append_option(first.and_then(raw::as_bytes)),
        }
        true
    }

    /// Appends a null.
    pub(crate) fn append_null(&mut self) {
        match self {
            ColumnBuilder::Timestamp(b) => b.append_null(),
            ColumnBuilder::Utf8(b) | ColumnBuilder::Json(b) => b.append_null(),
            ColumnBuilder::Utf8List(b) => b.append(false),
            ColumnBuilder::UInt64(b) => b.append_null(),
            ColumnBuilder::Int64(b) => b.append_null(),
            ColumnBuilder::Float64(b) => b.append_null(),
            ColumnBuilder::Boolean(b) => b.append_null(),
            ColumnBuilder::Binary(b) => b.append_null(),
        }
    }

    /// Appends a string to a `Utf8` column (a null to any other).
    pub(crate) fn append_str(&mut self, value: &str) {
        match self {
            ColumnBuilder::Utf8(b) | ColumnBuilder::Json(b) => b.append_value(value),
            other => other.append_null(),
        }
    }

    /// Appends a list of strings to a `List<Utf8>` column, null when it is empty (a null to
    /// any other column).
    pub(crate) fn append_list(&mut self, values: &[&str]) {
        match self {
            ColumnBuilder::Utf8List(b) => {
                for value in values {
                    b.values().append_value(value);
                }
                b.append(!values.is_empty());
            }
            other => other.append_null(),
        }
    }

    /// Appends timestamps in nanoseconds (nulls to a column of another type).
    pub(crate) fn append_timestamps(&mut self, values: impl Iterator<Item = Option<i64>>) {
        match self {
            ColumnBuilder::Timestamp(b) => values.for_each(|v| b.append_option(v)),
            other => values.for_each(|_| other.append_null()),
        }
    }

    /// Appends `u64`s (nulls to a column of another type).
    pub(crate) fn append_u64s(&mut self, values: Vec<Option<u64>>) {
        match self {
            ColumnBuilder::UInt64(b) => values.into_iter().for_each(|v| b.append_option(v)),
            other => values.iter().for_each(|_| other.append_null()),
        }
    }

    /// Appends `i64`s (nulls to a column of another type).
    pub(crate) fn append_i64s(&mut self, values: Vec<Option<i64>>) {
        match self {
            ColumnBuilder::Int64(b) => values.into_iter().for_each(|v| b.append_option(v)),
            other => values.iter().for_each(|_| other.append_null()),
        }
    }

    /// Appends `f64`s (nulls to a column of another type).
    pub(crate) fn append_f64s(&mut self, values: Vec<Option<f64>>) {
        match self {
            ColumnBuilder::Float64(b) => values.into_iter().for_each(|v| b.append_option(v)),
            other => values.iter().for_each(|_| other.append_null()),
        }
    }

    /// Appends booleans (nulls to a column of another type).
    pub(crate) fn append_bools(&mut self, values: Vec<Option<bool>>) {
        match self {
            ColumnBuilder::Boolean(b) => values.into_iter().for_each(|v| b.append_option(v)),
            other => values.iter().for_each(|_| other.append_null()),
        }
    }

    /// Appends a JSON value; null when absent or not of the column's type.
    fn append_json(&mut self, value: Option<&Json>) {
        let value = value.filter(|v| !v.is_null());
        match self {
            ColumnBuilder::Timestamp(b) => b.append_option(value.and_then(Json::as_i64)),
            ColumnBuilder::Utf8(b) => b.append_option(value.and_then(Json::as_str)),
            ColumnBuilder::Utf8List(b) => {
                let items = value.and_then(Json::as_array);
                if let Some(items) = items {
                    for item in items {
                        b.values().append_option(item.as_str());
                    }
                }
                b.append(items.is_some());
            }
            ColumnBuilder::UInt64(b) => b.append_option(value.and_then(Json::as_u64)),
            ColumnBuilder::Int64(b) => b.append_option(value.and_then(Json::as_i64)),
            ColumnBuilder::Float64(b) => b.append_option(value.and_then(Json::as_f64)),
            ColumnBuilder::Boolean(b) => b.append_option(value.and_then(Json::as_bool)),
            ColumnBuilder::Json(b) => match value {
                Some(Json::String(s)) => b.append_value(s),
                Some(other) => b.append_value(other.to_string()),
                None => b.append_null(),
            },
            ColumnBuilder::Binary(b) => {
                b.append_option(value.and_then(Json::as_str).map(str::as_bytes))
            }
        }
    }

    pub(crate) fn finish(self) -> ArrayRef {
        match self {
            ColumnBuilder::Timestamp(mut b) => Arc::new(b.finish()),
            ColumnBuilder::Utf8(mut b) | ColumnBuilder::Json(mut b) => Arc::new(b.finish()),
            ColumnBuilder::Utf8List(mut b) => Arc::new(b.finish()),
            ColumnBuilder::UInt64(mut b) => Arc::new(b.finish()),
            ColumnBuilder::Int64(mut b) => Arc::new(b.finish()),
            ColumnBuilder::Float64(mut b) => Arc::new(b.finish()),
            ColumnBuilder::Boolean(mut b) => Arc::new(b.finish()),
            ColumnBuilder::Binary(mut b) => ArrayBuilder::finish(&mut b),
        }
    }
}

/// Writes an Arrow IPC stream (schema message, one record batch per block, end-of-stream
/// marker), flushing the output after every batch so that it leaves as soon as it is built.
pub(crate) struct ArrowEncoder<W: Write> {
    layout: Arc<Layout>,
    writer: StreamWriter<W>,
}

impl<W: Write> ArrowEncoder<W> {
    /// Writes the schema message.
    pub(crate) fn new(layout: Arc<Layout>, out: W) -> Result<ArrowEncoder<W>> {
        let writer = StreamWriter::try_new(out, &layout.schema).map_err(arrow_error)?;
        Ok(ArrowEncoder { layout, writer })
    }

    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.writer.write(batch).map_err(arrow_error)?;
        self.writer.flush().map_err(arrow_error)
    }
}

impl<W: Write> Encode for ArrowEncoder<W> {
    fn write_docs(&mut self, docs: &[TantivyDocument]) -> Result<()> {
        let batch = self.layout.batch_of_docs(docs)?;
        self.write(&batch)
    }

    fn write_rows(&mut self, rows: &[Map<String, Json>]) -> Result<()> {
        let batch = self.layout.batch_of_rows(rows)?;
        self.write(&batch)
    }

    fn write_block(&mut self, block: Block) -> Result<()> {
        match block {
            Block::Batch(batch) => self.write(&batch),
            Block::Text(..) => Err(Error::Internal("text for arrow".into())),
        }
    }

    fn finish(mut self: Box<Self>) -> Result<()> {
        self.writer.finish().map_err(arrow_error)?;
        self.writer.flush().map_err(arrow_error)
    }
}

fn arrow_error(err: ArrowError) -> Error {
    Error::Internal(format!("writing the arrow stream: {err}"))
}
