//! The tantivy schema of a stream, built from the model's field table.

use tantivy::schema::{
    DateOptions, DateTimePrecision, Field, IndexRecordOption, JsonObjectOptions, NumericOptions,
    Schema, TextFieldIndexing, TextOptions, FAST, INDEXED, STORED, STRING,
};
use trawl_model::schema::{FieldDef, FieldKind};

/// Name of the tokenizer used for keyword fields and JSON string values.
pub const RAW_TOKENIZER: &str = "raw";
/// Name of the tokenizer used for full text (`message`): tantivy's default (split on
/// non-alphanumerics, lower-cased, no stemming).
pub const TEXT_TOKENIZER: &str = "default";

/// A hidden keyword field holding a record's identity where the stream has one (the audit
/// stream's `<audit_id>/<stage>`), so that a second copy replaces the first in the hot index.
pub const ID_FIELD: &str = "_id";

/// A hidden keyword field naming the source (a collector's file) a delivered record was read
/// from: indexed, neither stored nor fast. It lets an indexer remove what it holds unpublished
/// of a source another indexer has taken over (see `trawl_indexer::ownership`).
pub const SOURCE_FIELD: &str = "_src";

/// Whether a field is one of the hidden bookkeeping fields ([`ID_FIELD`], [`SOURCE_FIELD`]),
/// never shown as a record field.
pub fn is_hidden_field(name: &str) -> bool {
    name == ID_FIELD || name == SOURCE_FIELD
}

/// Adds the hidden fields every stream has, after its own.
fn add_hidden_fields(builder: &mut tantivy::schema::SchemaBuilder) {
    builder.add_text_field(ID_FIELD, STRING);
    builder.add_text_field(
        SOURCE_FIELD,
        TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(RAW_TOKENIZER)
                .set_index_option(IndexRecordOption::Basic)
                .set_fieldnorms(false),
        ),
    );
}

/// The JSON field of a generic (operator-declared) stream holding every field of a document
/// that is not declared: stored, `expand_dots`, strings raw-tokenised and fast, so that
/// `service.version:1.2` works once the query layer has rewritten the field name into it.
pub const DYNAMIC_FIELD: &str = "_dynamic";

/// The hidden full-text field of a generic stream: every string value of a document, tokenised
/// like `message`, not stored. It is what a term without a field name searches when the stream
/// declares no `default_fields`.
pub const TEXT_FIELD: &str = "_text";

/// Builds the tantivy schema for a table of fields. Every field is stored, so that a hit can be
/// returned as its flat record; keyword and numeric fields are fast for sorting and aggregations.
pub fn build_schema(fields: &[FieldDef]) -> Schema {
    let mut builder = Schema::builder();
    for def in fields {
        add_field(&mut builder, def);
    }
    add_hidden_fields(&mut builder);
    builder.build()
}

/// The schema of a generic stream: its declared fields (the timestamp, keyword and numeric
/// fields), then [`DYNAMIC_FIELD`], [`TEXT_FIELD`] and the hidden id.
pub fn build_generic_schema(fields: &[FieldDef]) -> Schema {
    let mut builder = Schema::builder();
    for def in fields {
        add_field(&mut builder, def);
    }
    add_field(&mut builder, &FieldDef::new(DYNAMIC_FIELD, FieldKind::Json));
    builder.add_text_field(
        TEXT_FIELD,
        TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(TEXT_TOKENIZER)
                .set_index_option(IndexRecordOption::WithFreqsAndPositions)
                .set_fieldnorms(false),
        ),
    );
    add_hidden_fields(&mut builder);
    builder.build()
}

fn add_field(builder: &mut tantivy::schema::SchemaBuilder, def: &FieldDef) -> Field {
    let name = def.name();
    match def.kind {
        FieldKind::Timestamp => builder.add_date_field(
            name,
            DateOptions::default()
                .set_indexed()
                .set_fast()
                .set_stored()
                .set_precision(DateTimePrecision::Nanoseconds),
        ),
        FieldKind::Keyword | FieldKind::KeywordList => builder.add_text_field(
            name,
            TextOptions::default()
                .set_indexing_options(
                    TextFieldIndexing::default()
                        .set_tokenizer(RAW_TOKENIZER)
                        .set_index_option(IndexRecordOption::Basic)
                        .set_fieldnorms(false),
                )
                .set_fast(RAW_TOKENIZER)
                .set_stored(),
        ),
        FieldKind::Text => builder.add_text_field(
            name,
            TextOptions::default()
                .set_indexing_options(
                    TextFieldIndexing::default()
                        .set_tokenizer(TEXT_TOKENIZER)
                        .set_index_option(IndexRecordOption::WithFreqsAndPositions)
                        .set_fieldnorms(false),
                )
                .set_stored(),
        ),
        FieldKind::I64 => builder.add_i64_field(name, numeric()),
        FieldKind::U64 => builder.add_u64_field(name, numeric()),
        FieldKind::F64 => builder.add_f64_field(name, numeric()),
        FieldKind::Bool => builder.add_bool_field(name, INDEXED | FAST | STORED),
        FieldKind::Json => builder.add_json_field(
            name,
            JsonObjectOptions::default()
                .set_stored()
                .set_indexing_options(
                    TextFieldIndexing::default()
                        .set_tokenizer(RAW_TOKENIZER)
                        .set_index_option(IndexRecordOption::Basic)
                        .set_fieldnorms(false),
                )
                .set_fast(RAW_TOKENIZER)
                .set_expand_dots_enabled(),
        ),
        FieldKind::JsonText => builder.add_json_field(
            name,
            JsonObjectOptions::default()
                .set_stored()
                .set_indexing_options(
                    TextFieldIndexing::default()
                        .set_tokenizer(TEXT_TOKENIZER)
                        .set_index_option(IndexRecordOption::WithFreqsAndPositions)
                        .set_fieldnorms(false),
                )
                .set_expand_dots_enabled(),
        ),
    }
}

fn numeric() -> NumericOptions {
    NumericOptions::default()
        .set_indexed()
        .set_fast()
        .set_stored()
}

#[cfg(test)]
mod tests {
    use super::*;
    use trawl_model::schema::LOG_FIELDS;

    #[test]
    fn logs_schema_has_every_field() {
        let schema = build_schema(LOG_FIELDS);
        for def in LOG_FIELDS {
            let field = schema.get_field(def.name()).unwrap();
            assert!(schema.get_field_entry(field).is_stored(), "{}", def.name);
        }
        let ts = schema.get_field_entry(schema.get_field("timestamp").unwrap());
        assert!(ts.is_fast());
    }
}
