//! The Elasticsearch query DSL translated into tantivy queries over one stream's schema.
//!
//! ```text
//! mod.rs       field names as clients write them, the translator, its dispatch and helpers
//! compound.rs  bool (with minimum_should_match), dis_max, the must_not wrapper
//! term.rs      term, terms, prefix, wildcard, regexp, exists
//! text.rs      match, match_phrase, match_phrase_prefix, query_string
//! range.rs     range, and the time bounds used to skip splits
//! ```
//!
//! Leaves that need the field's analysis (phrases, JSON object paths, typed values) are built
//! by tantivy's own query parser from a one-leaf AST, never from text, so no escaping can go
//! wrong; `bool` is assembled from tantivy `BooleanQuery`s. A field the stream does not have
//! matches nothing, as in Elasticsearch. A construct Trawl does not implement is a 400
//! `parsing_exception` naming it.

mod compound;
mod range;
mod term;
mod text;

use serde_json::{Map, Value};
use tantivy::query::{AllQuery, EmptyQuery, Query, QueryParser, QueryParserError};
use tantivy::query_grammar::{Delimiter, UserInputAst, UserInputLeaf, UserInputLiteral};
use tantivy::schema::{Field, FieldType, Schema};
use tantivy::tokenizer::TokenStream;
use trawl_index::StreamSnapshot;
use trawl_model::Timestamp;

use super::error::{EsError, EsResult};
use crate::search::TIMESTAMP_FIELD;
use compound::boolean;
use term::{regex_escape, wildcard_to_regex};

pub(crate) use range::time_bounds;

/// The name a client's field name stands for in `stream`: `@timestamp` is `timestamp`, a
/// `.keyword` sub-field is the field itself (our keyword fields are already exact), and on
/// `logs` the shippers' names are ours, by the alias table ingest uses
/// ([`trawl_model::shippers::LOG_ALIASES`]: `kubernetes.pod_name`, `container.image.name`,
/// `log`, ...), on `audit` kube-auditing's ([`trawl_model::shippers::KUBE_AUDITING_ALIASES`]),
/// on `events` those of both `Event` versions ([`trawl_model::shippers::EVENT_ALIASES`]:
/// `involvedObject.name`, `lastTimestamp`, ...). Names the schema has are kept as given.
pub(crate) fn canonical_field(schema: &Schema, stream: &str, name: &str) -> String {
    let known = match schema.find_field(name) {
        Some((_, "")) => true,
        // A path only means something inside an object field (`labels.app`), not `level.keyword`.
        Some((field, _)) => matches!(
            schema.get_field_entry(field).field_type(),
            FieldType::JsonObject(_)
        ),
        None => false,
    };
    if known {
        return name.to_string();
    }
    let base = name.strip_suffix(".keyword").unwrap_or(name);
    if base == "@timestamp" {
        return TIMESTAMP_FIELD.to_string();
    }
    if stream == trawl_model::LOGS_STREAM {
        if let Some(ours) = trawl_model::shippers::log_field(base) {
            return ours;
        }
    }
    if stream == trawl_model::AUDIT_STREAM {
        if let Some(ours) = trawl_model::shippers::audit_field(base) {
            return ours.to_string();
        }
    }
    if stream == trawl_model::EVENTS_STREAM {
        if let Some(ours) = trawl_model::shippers::event_field(base) {
            return ours.to_string();
        }
    }
    base.to_string()
}

/// Refuses a field of KubeSphere's audit events that the `audit` stream does not keep
/// (`Workspace`, `ResponseStatus.status`, ...): a query on it could only match nothing, which
/// would look like an answer.
fn check_kept(schema: &Schema, stream: &str, name: &str) -> EsResult<()> {
    let base = name.strip_suffix(".keyword").unwrap_or(name);
    if stream == trawl_model::AUDIT_STREAM
        && schema.find_field(base).is_none()
        && trawl_model::shippers::KUBE_AUDITING_NOT_KEPT.contains(&base)
    {
        return Err(EsError::unsupported(format!(
            "field [{name}] (trawl's audit stream does not keep it)"
        )));
    }
    Ok(())
}

/// A query translated for one stream, with the time bounds its conjunctive `range` clauses on
/// the timestamp put on every match (used to skip splits, never instead of the query).
pub(crate) struct Translated {
    pub query: Box<dyn Query>,
}

/// Translates the DSL for one stream's snapshot. `now` (nanoseconds) anchors date math.
pub(crate) struct Translator<'a> {
    snapshot: &'a StreamSnapshot,
    now: i64,
}

impl<'a> Translator<'a> {
    /// A translator over `snapshot`'s schema, tokenizers and default fields.
    pub(crate) fn new(snapshot: &'a StreamSnapshot, now: Timestamp) -> Translator<'a> {
        Translator {
            snapshot,
            now: now.0,
        }
    }

    /// The tantivy query of an optional `query` object; absent is `match_all`.
    pub(crate) fn translate(&self, query: Option<&Value>) -> EsResult<Translated> {
        let query = match query {
            None | Some(Value::Null) => Box::new(AllQuery),
            Some(value) => self.query(value)?,
        };
        Ok(Translated { query })
    }

    /// One query object: `{"<kind>": {...}}`.
    fn query(&self, value: &Value) -> EsResult<Box<dyn Query>> {
        let object = value
            .as_object()
            .ok_or_else(|| EsError::parsing(format!("a query must be an object, not {value}")))?;
        if object.is_empty() {
            return Ok(Box::new(AllQuery));
        }
        if object.len() > 1 {
            let keys: Vec<&str> = object.keys().map(String::as_str).collect();
            return Err(EsError::parsing(format!(
                "a query object must have exactly one key, found [{}]",
                keys.join(", ")
            )));
        }
        let (kind, body) = object
            .iter()
            .next()
            .ok_or_else(|| EsError::parsing("empty query object"))?;
        match kind.as_str() {
            "match_all" => Ok(Box::new(AllQuery)),
            "match_none" => Ok(Box::new(EmptyQuery)),
            "bool" => self.bool_query(body),
            "constant_score" => {
                let filter = field_obj(body, "constant_score")?
                    .get("filter")
                    .ok_or_else(|| EsError::parsing("[constant_score] requires a [filter]"))?;
                self.query(filter)
            }
            "dis_max" => {
                let queries = field_obj(body, "dis_max")?
                    .get("queries")
                    .ok_or_else(|| EsError::parsing("[dis_max] requires [queries]"))?;
                let clauses = self.clauses(queries)?;
                Ok(boolean(Vec::new(), clauses, Vec::new(), 1))
            }
            "query_string" => self.query_string(body),
            "term" => self.single_field(kind, body, "value", |t, f, v, _| t.term(f, v)),
            "terms" => self.terms(body),
            "match" => self.single_field(kind, body, "query", |t, f, v, o| t.match_query(f, v, o)),
            "match_phrase" => {
                self.single_field(kind, body, "query", |t, f, v, o| t.phrase(f, v, o, false))
            }
            "match_phrase_prefix" => {
                self.single_field(kind, body, "query", |t, f, v, o| t.phrase(f, v, o, true))
            }
            "prefix" => self.single_field(kind, body, "value", |t, f, v, _| {
                t.regex(
                    f,
                    &format!("{}.*", regex_escape(&scalar_text(v)?)),
                    "prefix",
                )
            }),
            "wildcard" => self.single_field(kind, body, "value", |t, f, v, _| {
                t.regex(f, &wildcard_to_regex(&scalar_text(v)?), "wildcard")
            }),
            "regexp" => self.single_field(kind, body, "value", |t, f, v, _| {
                t.regex(f, &scalar_text(v)?, "regexp")
            }),
            "range" => self.range(body),
            "exists" => {
                let field = field_obj(body, "exists")?
                    .get("field")
                    .and_then(Value::as_str)
                    .ok_or_else(|| EsError::parsing("[exists] requires a string [field]"))?;
                self.exists(field)
            }
            "ids" => Err(EsError::unsupported(
                "[ids] query (documents have no stable _id in trawl)",
            )),
            other => Err(EsError::unsupported(format!("[{other}] query"))),
        }
    }

    /// A clause list: one query object or an array of them.
    fn clauses(&self, value: &Value) -> EsResult<Vec<Box<dyn Query>>> {
        match value {
            Value::Array(items) => items.iter().map(|q| self.query(q)).collect(),
            Value::Object(_) => Ok(vec![self.query(value)?]),
            other => Err(EsError::parsing(format!(
                "a bool clause must be an object or an array, not {other}"
            ))),
        }
    }

    /// `{"<field>": value}` or `{"<field>": {"<value_key>": value, ...options}}`, then `build`.
    fn single_field(
        &self,
        kind: &str,
        body: &Value,
        value_key: &str,
        build: impl Fn(&Self, &str, &Value, &Map<String, Value>) -> EsResult<Box<dyn Query>>,
    ) -> EsResult<Box<dyn Query>> {
        let (field, spec) = one_field(body, kind)?;
        let empty = Map::new();
        let (value, options) = match spec {
            Value::Object(options) => {
                let value = options
                    .get(value_key)
                    .ok_or_else(|| EsError::parsing(format!("[{kind}] requires [{value_key}]")))?;
                (value, options)
            }
            value => (value, &empty),
        };
        for key in options.keys() {
            match key.as_str() {
                "fuzziness" | "fuzzy_transpositions" | "max_expansions" | "prefix_length"
                    if kind == "match" =>
                {
                    return Err(EsError::unsupported(format!("[{kind}] option [{key}]")))
                }
                "case_insensitive" if options[key] == Value::Bool(true) => {
                    return Err(EsError::unsupported(format!(
                        "[{kind}] option [case_insensitive]"
                    )))
                }
                _ => {}
            }
        }
        build(self, field, value, options)
    }

    /// Resolves a client's field name: the schema field, the path inside it (object fields),
    /// and the full name to give the query parser; `None` when the stream has no such field.
    /// A KubeSphere audit field the stream does not keep is a 400.
    fn resolve(&self, name: &str) -> EsResult<Option<Resolved>> {
        let schema = &self.snapshot.schema;
        check_kept(schema, &self.snapshot.stream, name)?;
        let full = canonical_field(schema, &self.snapshot.stream, name);
        let Some((field, path)) = schema.find_field(&full) else {
            return Ok(None);
        };
        Ok(Some(Resolved {
            field,
            json: !path.is_empty()
                || matches!(
                    schema.get_field_entry(field).field_type(),
                    FieldType::JsonObject(_)
                ),
            full,
        }))
    }

    /// The terms `text` is indexed as in an analysed field (its tokenizer's output); the text
    /// itself, whole, in a keyword field.
    fn tokens(&self, resolved: &Resolved, text: &str) -> EsResult<Vec<String>> {
        let Some(tokenizer_name) = self.text_tokenizer(resolved) else {
            return Ok(vec![text.to_string()]);
        };
        let mut tokenizer = self
            .snapshot
            .tokenizers
            .get(&tokenizer_name)
            .ok_or_else(|| {
                EsError::illegal_argument(format!("unknown tokenizer `{tokenizer_name}`"))
            })?;
        let mut stream = tokenizer.token_stream(text);
        let mut tokens = Vec::new();
        while stream.advance() {
            tokens.push(stream.token().text.clone());
        }
        Ok(tokens)
    }

    fn field_type(&self, field: Field) -> &FieldType {
        self.snapshot.schema.get_field_entry(field).field_type()
    }

    /// The tokenizer of an analysed text field (or object field), `None` for keywords
    /// (`raw`), numbers, dates and booleans.
    fn text_tokenizer(&self, resolved: &Resolved) -> Option<String> {
        let options = match self.field_type(resolved.field) {
            FieldType::Str(options) => options.get_indexing_options()?,
            FieldType::JsonObject(options) => options.get_text_indexing_options()?,
            _ => return None,
        };
        let name = options.tokenizer();
        (name != trawl_index::schema::RAW_TOKENIZER).then(|| name.to_string())
    }

    /// One literal leaf built by tantivy's parser (it knows object paths, types and analysis).
    fn parsed_literal(
        &self,
        field: &str,
        phrase: &str,
        delimiter: Delimiter,
        slop: u32,
        prefix: bool,
    ) -> EsResult<Box<dyn Query>> {
        self.build_ast(UserInputAst::Leaf(Box::new(UserInputLeaf::Literal(
            UserInputLiteral {
                field_name: Some(field.to_string()),
                phrase: phrase.to_string(),
                delimiter,
                slop,
                prefix,
            },
        ))))
    }

    fn build_ast(&self, ast: UserInputAst) -> EsResult<Box<dyn Query>> {
        let parser = QueryParser::new(
            self.snapshot.schema.clone(),
            self.snapshot.default_fields.clone(),
            self.snapshot.tokenizers.clone(),
        );
        parser
            .build_query_from_user_input_ast(ast)
            .map_err(|err| parser_error("query", err))
    }
}

struct Resolved {
    field: Field,
    /// Whether the name points into an object (JSON) field.
    json: bool,
    /// The canonical full name (`labels.app`).
    full: String,
}

fn utc() -> chrono::FixedOffset {
    chrono::FixedOffset::east_opt(0).unwrap_or_else(|| unreachable!("zero is a valid offset"))
}

fn parser_error(kind: &str, err: QueryParserError) -> EsError {
    match err {
        QueryParserError::FieldDoesNotExist(field) => {
            EsError::parsing(format!("[{kind}] field [{field}] does not exist"))
        }
        other => EsError::parsing(format!("[{kind}] {other}")),
    }
}

fn field_obj<'v>(body: &'v Value, kind: &str) -> EsResult<&'v Map<String, Value>> {
    body.as_object()
        .ok_or_else(|| EsError::parsing(format!("[{kind}] query malformed, expected an object")))
}

/// The one `{field: spec}` pair of a leaf query (ignoring `boost` and `_name`).
fn one_field<'v>(body: &'v Value, kind: &str) -> EsResult<(&'v str, &'v Value)> {
    let object = field_obj(body, kind)?;
    let mut fields = object
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "boost" | "_name"));
    let (field, spec) = fields
        .next()
        .ok_or_else(|| EsError::parsing(format!("[{kind}] query requires a field")))?;
    if fields.next().is_some() {
        return Err(EsError::parsing(format!(
            "[{kind}] query doesn't support multiple fields"
        )));
    }
    Ok((field.as_str(), spec))
}

/// A scalar query value as text (strings as is, numbers and booleans printed).
fn scalar_text(value: &Value) -> EsResult<String> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        other => Err(EsError::parsing(format!(
            "a query value must be a string, number or boolean, not {other}"
        ))),
    }
}

#[cfg(test)]
mod tests;
