//! Field names of generic streams: a document's undeclared fields live in one JSON field
//! ([`DYNAMIC_FIELD`]), and a query names them as if they were top-level fields
//! (`service.version:1.2`, `status:[400 TO 499]`, `user.id:*`). Before the query is built, every
//! field name the schema does not know is rewritten into a path of that JSON field; names the
//! schema knows (the timestamp, declared keyword and numeric fields) are left alone. Streams
//! without a dynamic field (`logs`, `audit`) are parsed as they always were, so that an unknown
//! field there still says so.

use tantivy::query::{Query, QueryParser, QueryParserError};
use tantivy::query_grammar::{UserInputAst, UserInputLeaf};
use tantivy::schema::Schema;
use trawl_index::schema::DYNAMIC_FIELD;

/// Parses `text` with `parser`, first rewriting field names unknown to `schema` into
/// [`DYNAMIC_FIELD`] paths when the schema has one. Errors are the parser's own.
pub(crate) fn parse_query(
    parser: &QueryParser,
    schema: &Schema,
    text: &str,
) -> Result<Box<dyn Query>, QueryParserError> {
    if schema.get_field(DYNAMIC_FIELD).is_err() {
        return parser.parse_query(text);
    }
    let ast = tantivy::query_grammar::parse_query(text)
        .map_err(|_| QueryParserError::SyntaxError(text.to_string()))?;
    parser.build_query_from_user_input_ast(rewrite(ast, schema))
}

/// The AST with every unknown field name `x` turned into `_dynamic.x`.
fn rewrite(ast: UserInputAst, schema: &Schema) -> UserInputAst {
    match ast {
        UserInputAst::Clause(clauses) => UserInputAst::Clause(
            clauses
                .into_iter()
                .map(|(occur, sub)| (occur, rewrite(sub, schema)))
                .collect(),
        ),
        UserInputAst::Boost(sub, boost) => {
            UserInputAst::Boost(Box::new(rewrite(*sub, schema)), boost)
        }
        UserInputAst::Leaf(leaf) => UserInputAst::Leaf(Box::new(rewrite_leaf(*leaf, schema))),
    }
}

fn rewrite_leaf(leaf: UserInputLeaf, schema: &Schema) -> UserInputLeaf {
    let fix = |field: Option<String>| field.map(|name| dynamic_name(name, schema));
    match leaf {
        UserInputLeaf::Literal(mut literal) => {
            literal.field_name = fix(literal.field_name);
            UserInputLeaf::Literal(literal)
        }
        UserInputLeaf::Range {
            field,
            lower,
            upper,
        } => UserInputLeaf::Range {
            field: fix(field),
            lower,
            upper,
        },
        UserInputLeaf::Set { field, elements } => UserInputLeaf::Set {
            field: fix(field),
            elements,
        },
        UserInputLeaf::Exists { field } => UserInputLeaf::Exists {
            field: dynamic_name(field, schema),
        },
        UserInputLeaf::Regex { field, pattern } => UserInputLeaf::Regex {
            field: fix(field),
            pattern,
        },
        UserInputLeaf::All => UserInputLeaf::All,
    }
}

/// `name` itself when the schema resolves it (a field, or a path into an object field), else
/// the same path inside the dynamic field.
fn dynamic_name(name: String, schema: &Schema) -> String {
    if schema.find_field(&name).is_some() {
        name
    } else {
        format!("{DYNAMIC_FIELD}.{name}")
    }
}

#[cfg(test)]
mod tests {
    use tantivy::collector::Count;
    use tantivy::schema::OwnedValue;
    use tantivy::{Index, TantivyDocument};
    use trawl_index::schema::build_generic_schema;
    use trawl_model::schema::{FieldDef, FieldKind};

    use super::*;

    /// A generic stream's index with three documents.
    fn index() -> (Index, Schema) {
        // What the indexer builds for `keyword_fields = ["service.name"]`,
        // `numeric_fields = ["latency"]`.
        let schema = build_generic_schema(&[
            FieldDef::new("timestamp", FieldKind::Timestamp),
            FieldDef::new("service.name", FieldKind::Keyword),
            FieldDef::new("latency", FieldKind::F64),
        ]);
        let index = Index::create_in_ram(schema.clone());
        let mut writer = index.writer_with_num_threads(1, 15_000_000).unwrap();
        let f = |name| schema.get_field(name).unwrap();
        let docs = [
            (
                "api",
                5.0,
                r#"{"foo": {"bar": "x"}, "status": 200, "user": "ann"}"#,
            ),
            ("api", 50.0, r#"{"foo": {"bar": "y"}, "status": 503}"#),
            (
                "web",
                500.0,
                r#"{"foo.bar": "x", "status": 404, "user": "bob"}"#,
            ),
        ];
        for (service, latency, dynamic) in docs {
            let mut doc = TantivyDocument::new();
            doc.add_text(f("service.name"), service);
            doc.add_f64(f("latency"), latency);
            let value: serde_json::Value = serde_json::from_str(dynamic).unwrap();
            let object: OwnedValue = serde_json::from_value(value).unwrap();
            doc.add_field_value(f(DYNAMIC_FIELD), &object);
            writer.add_document(doc).unwrap();
        }
        writer.commit().unwrap();
        (index, schema)
    }

    fn count(index: &Index, schema: &Schema, text: &str) -> usize {
        let mut parser = QueryParser::for_index(index, vec![]);
        parser.set_conjunction_by_default();
        let query = parse_query(&parser, schema, text).unwrap();
        index
            .reader()
            .unwrap()
            .searcher()
            .search(&query, &Count)
            .unwrap()
    }

    #[test]
    fn unknown_fields_search_the_dynamic_field() {
        let (index, schema) = index();
        let cases = [
            ("foo.bar:x", 2),
            ("foo.bar:y", 1),
            ("status:503", 1),
            ("status:[400 TO 599]", 2),
            ("user:*", 2),
            ("service.name:api AND foo.bar:x", 1),
            ("service.name:web", 1),
            ("latency:[10 TO 1000]", 2),
            ("foo.bar:IN [x y]", 3),
            ("-user:ann AND foo.bar:x", 1),
            ("nothing.here:x", 0),
        ];
        for (text, expected) in cases {
            assert_eq!(count(&index, &schema, text), expected, "{text}");
        }
    }

    #[test]
    fn streams_without_a_dynamic_field_are_parsed_as_before() {
        let schema = trawl_index::schema::build_schema(trawl_model::schema::LOG_FIELDS);
        let index = Index::create_in_ram(schema.clone());
        let parser = QueryParser::for_index(&index, vec![]);
        let err = parse_query(&parser, &schema, "colour:red").err().unwrap();
        assert!(matches!(err, QueryParserError::FieldDoesNotExist(f) if f == "colour"));
    }
}
