//! The Elasticsearch query DSL translated into tantivy queries over one stream's schema:
//! `query_string`, `match`, `match_phrase`, `match_phrase_prefix`, `term`, `terms`, `prefix`,
//! `wildcard`, `regexp`, `range`, `exists`, `match_all`, `match_none`, `constant_score`,
//! `dis_max` and `bool` with `minimum_should_match`.
//!
//! Leaves that need the field's analysis (phrases, JSON object paths, typed values) are built
//! by tantivy's own query parser from a one-leaf AST, never from text, so no escaping can go
//! wrong; `bool` is assembled from tantivy `BooleanQuery`s. A field the stream does not have
//! matches nothing, as in Elasticsearch. A construct Trawl does not implement is a 400
//! `parsing_exception` naming it.

use std::ops::Bound;

use serde_json::{Map, Value};
use tantivy::query::{
    AllQuery, BooleanQuery, EmptyQuery, EnableScoring, ExistsQuery, Explanation, Occur, Query,
    QueryParser, QueryParserError, RangeQuery, RegexQuery, Scorer, TermQuery, Weight,
};
use tantivy::query_grammar::{
    Delimiter, UserInputAst, UserInputBound, UserInputLeaf, UserInputLiteral,
};
use tantivy::schema::{Field, FieldType, IndexRecordOption, Schema};
use tantivy::tokenizer::TokenStream;
use tantivy::{DateTime, DocId, DocSet, Score, SegmentReader, Term};
use trawl_index::StreamSnapshot;
use trawl_model::Timestamp;

use super::datemath::{parse_date, parse_time_zone, DatePeriod};
use super::error::{EsError, EsResult};
use crate::search::TIMESTAMP_FIELD;

/// The name a client's field name stands for in `stream`: `@timestamp` is `timestamp`, a
/// `.keyword` sub-field is the field itself (our keyword fields are already exact), and on
/// `logs` the shippers' names are ours, by the alias table ingest uses
/// ([`trawl_model::shippers::LOG_ALIASES`]: `kubernetes.pod_name`, `container.image.name`,
/// `log`, ...). Names the schema has are kept as given.
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
    base.to_string()
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

    fn bool_query(&self, body: &Value) -> EsResult<Box<dyn Query>> {
        let object = field_obj(body, "bool")?;
        let mut must = Vec::new();
        let mut should = Vec::new();
        let mut must_not = Vec::new();
        let mut msm_spec = None;
        for (key, value) in object {
            match key.as_str() {
                "must" | "filter" => must.extend(self.clauses(value)?),
                "should" => should.extend(self.clauses(value)?),
                "must_not" => must_not.extend(self.clauses(value)?),
                "minimum_should_match" => msm_spec = Some(value),
                "boost" | "_name" | "adjust_pure_negative" => {}
                other => {
                    return Err(EsError::parsing(format!(
                        "[bool] query does not support [{other}]"
                    )))
                }
            }
        }
        // Elasticsearch: without must/filter clauses, at least one should clause must match.
        let default = usize::from(must.is_empty() && !should.is_empty());
        let msm = match msm_spec {
            None => default,
            Some(spec) => minimum_should_match(spec, should.len())?,
        };
        Ok(boolean(must, should, must_not, msm))
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
    fn resolve(&self, name: &str) -> Option<Resolved> {
        let schema = &self.snapshot.schema;
        let full = canonical_field(schema, &self.snapshot.stream, name);
        let (field, path) = schema.find_field(&full)?;
        Some(Resolved {
            field,
            json: !path.is_empty()
                || matches!(
                    schema.get_field_entry(field).field_type(),
                    FieldType::JsonObject(_)
                ),
            full,
        })
    }

    fn field_type(&self, field: Field) -> &FieldType {
        self.snapshot.schema.get_field_entry(field).field_type()
    }

    /// Exact value: a keyword as is, a number, a boolean, a date (its whole period).
    fn term(&self, name: &str, value: &Value) -> EsResult<Box<dyn Query>> {
        let Some(resolved) = self.resolve(name) else {
            return Ok(Box::new(EmptyQuery));
        };
        if resolved.json {
            return self.parsed_literal(
                &resolved.full,
                &scalar_text(value)?,
                Delimiter::DoubleQuotes,
                0,
                false,
            );
        }
        let field = resolved.field;
        let bad = |what: &str| {
            EsError::parsing(format!(
                "failed to parse [{}] as {what} for field [{name}]",
                scalar_text(value).unwrap_or_else(|_| value.to_string())
            ))
        };
        let term = match self.field_type(field) {
            FieldType::Str(_) => Term::from_field_text(field, &scalar_text(value)?),
            FieldType::U64(_) => Term::from_field_u64(
                field,
                scalar_text(value)?
                    .parse()
                    .map_err(|_| bad("an unsigned integer"))?,
            ),
            FieldType::I64(_) => Term::from_field_i64(
                field,
                scalar_text(value)?.parse().map_err(|_| bad("an integer"))?,
            ),
            FieldType::F64(_) => Term::from_field_f64(
                field,
                scalar_text(value)?.parse().map_err(|_| bad("a number"))?,
            ),
            FieldType::Bool(_) => Term::from_field_bool(
                field,
                scalar_text(value)?.parse().map_err(|_| bad("a boolean"))?,
            ),
            FieldType::Date(_) => {
                let period = parse_date(value, None, self.now, utc())?;
                return Ok(date_range(
                    field,
                    Bound::Included(period.start),
                    Bound::Excluded(period.next),
                ));
            }
            other => {
                return Err(EsError::unsupported(format!(
                    "[term] query on a field of type {:?}",
                    other.value_type()
                )))
            }
        };
        Ok(Box::new(TermQuery::new(term, IndexRecordOption::Basic)))
    }

    fn terms(&self, body: &Value) -> EsResult<Box<dyn Query>> {
        let object = field_obj(body, "terms")?;
        let mut fields = object
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "boost" | "_name"));
        let (field, values) = fields
            .next()
            .ok_or_else(|| EsError::parsing("[terms] requires a field"))?;
        if fields.next().is_some() {
            return Err(EsError::parsing("[terms] accepts one field only"));
        }
        let values = values.as_array().ok_or_else(|| {
            EsError::unsupported("[terms] lookup (an object instead of an array of values)")
        })?;
        let clauses = values
            .iter()
            .map(|v| self.term(field, v))
            .collect::<EsResult<Vec<_>>>()?;
        Ok(boolean(Vec::new(), clauses, Vec::new(), 1))
    }

    /// Analysed match: the text's tokens, all required (`operator: and`) or any (`or`, the
    /// default, with `minimum_should_match`). On a field that is not analysed, an exact term.
    fn match_query(
        &self,
        name: &str,
        value: &Value,
        options: &Map<String, Value>,
    ) -> EsResult<Box<dyn Query>> {
        let Some(resolved) = self.resolve(name) else {
            return Ok(Box::new(EmptyQuery));
        };
        let Some(tokenizer_name) = self.text_tokenizer(&resolved) else {
            return self.term(name, value);
        };
        if resolved.json {
            return self.parsed_literal(
                &resolved.full,
                &scalar_text(value)?,
                Delimiter::DoubleQuotes,
                0,
                false,
            );
        }
        let mut tokenizer = self
            .snapshot
            .tokenizers
            .get(&tokenizer_name)
            .ok_or_else(|| {
                EsError::illegal_argument(format!("unknown tokenizer `{tokenizer_name}`"))
            })?;
        let text = scalar_text(value)?;
        let mut stream = tokenizer.token_stream(&text);
        let mut terms: Vec<Box<dyn Query>> = Vec::new();
        while stream.advance() {
            let term = Term::from_field_text(resolved.field, &stream.token().text);
            terms.push(Box::new(TermQuery::new(term, IndexRecordOption::Basic)));
        }
        if terms.is_empty() {
            return Ok(
                match options.get("zero_terms_query").and_then(Value::as_str) {
                    Some("all") => Box::new(AllQuery),
                    _ => Box::new(EmptyQuery),
                },
            );
        }
        let and = match options.get("operator").and_then(Value::as_str) {
            None => false,
            Some(op) if op.eq_ignore_ascii_case("or") => false,
            Some(op) if op.eq_ignore_ascii_case("and") => true,
            Some(other) => {
                return Err(EsError::parsing(format!(
                    "[match] unknown operator [{other}]"
                )))
            }
        };
        if and {
            return Ok(boolean(terms, Vec::new(), Vec::new(), 0));
        }
        let msm = match options.get("minimum_should_match") {
            Some(spec) => minimum_should_match(spec, terms.len())?.max(1),
            None => 1,
        };
        Ok(boolean(Vec::new(), terms, Vec::new(), msm))
    }

    /// A phrase (with `slop`), or a phrase whose last word is a prefix.
    fn phrase(
        &self,
        name: &str,
        value: &Value,
        options: &Map<String, Value>,
        prefix: bool,
    ) -> EsResult<Box<dyn Query>> {
        let Some(resolved) = self.resolve(name) else {
            return Ok(Box::new(EmptyQuery));
        };
        if self.text_tokenizer(&resolved).is_none() && !resolved.json && !prefix {
            return self.term(name, value);
        }
        let slop = match options.get("slop") {
            None => 0,
            Some(v) => v
                .as_u64()
                .and_then(|s| u32::try_from(s).ok())
                .ok_or_else(|| {
                    EsError::parsing(format!("[slop] must be a non-negative integer, not {v}"))
                })?,
        };
        self.parsed_literal(
            &resolved.full,
            &scalar_text(value)?,
            Delimiter::DoubleQuotes,
            slop,
            prefix,
        )
    }

    /// `prefix`, `wildcard` and `regexp` on a keyword or text field (matched against its terms).
    fn regex(&self, name: &str, pattern: &str, kind: &str) -> EsResult<Box<dyn Query>> {
        let Some(resolved) = self.resolve(name) else {
            return Ok(Box::new(EmptyQuery));
        };
        if resolved.json || !matches!(self.field_type(resolved.field), FieldType::Str(_)) {
            return Err(EsError::unsupported(format!(
                "[{kind}] query on field [{name}] (only on keyword and text fields)"
            )));
        }
        let query = RegexQuery::from_pattern(pattern, resolved.field)
            .map_err(|err| EsError::parsing(format!("[{kind}] invalid pattern: {err}")))?;
        Ok(Box::new(query))
    }

    fn range(&self, body: &Value) -> EsResult<Box<dyn Query>> {
        let (name, spec) = one_field(body, "range")?;
        let spec = spec
            .as_object()
            .ok_or_else(|| EsError::parsing("[range] bounds must be an object"))?;
        let bounds = RangeSpec::parse(spec)?;
        let Some(resolved) = self.resolve(name) else {
            return Ok(Box::new(EmptyQuery));
        };
        if !resolved.json {
            if let FieldType::Date(_) = self.field_type(resolved.field) {
                let (lower, upper) = bounds.date_bounds(self.now)?;
                return Ok(date_range(resolved.field, lower, upper));
            }
        }
        let bound = |b: &Option<(Value, bool)>| -> EsResult<UserInputBound> {
            Ok(match b {
                None => UserInputBound::Unbounded,
                Some((v, true)) => UserInputBound::Inclusive(scalar_text(v)?),
                Some((v, false)) => UserInputBound::Exclusive(scalar_text(v)?),
            })
        };
        let ast = UserInputAst::Leaf(Box::new(UserInputLeaf::Range {
            field: Some(resolved.full.clone()),
            lower: bound(&bounds.lower)?,
            upper: bound(&bounds.upper)?,
        }));
        self.build_ast(ast)
    }

    fn exists(&self, name: &str) -> EsResult<Box<dyn Query>> {
        let Some(resolved) = self.resolve(name) else {
            return Ok(Box::new(EmptyQuery));
        };
        let entry = self.snapshot.schema.get_field_entry(resolved.field);
        if entry.is_fast() {
            return Ok(Box::new(ExistsQuery::new(resolved.full, true)));
        }
        if resolved.json || !matches!(entry.field_type(), FieldType::Str(_)) {
            return Err(EsError::unsupported(format!(
                "[exists] query on field [{name}] (not a fast field)"
            )));
        }
        // A text field: a document has it when it has any term in it.
        let query = RegexQuery::from_pattern(".*", resolved.field)
            .map_err(|err| EsError::parsing(format!("[exists] {err}")))?;
        Ok(Box::new(query))
    }

    /// `query_string`: the text in tantivy's query grammar (Lucene-like), with field names
    /// mapped as everywhere else (`@timestamp`, `.keyword`, shipper aliases, `_exists_:f`).
    fn query_string(&self, body: &Value) -> EsResult<Box<dyn Query>> {
        let object = field_obj(body, "query_string")?;
        let text = object
            .get("query")
            .and_then(Value::as_str)
            .ok_or_else(|| EsError::parsing("[query_string] requires a string [query]"))?;
        let mut default_fields = Vec::new();
        let mut conjunction = true;
        for (key, value) in object {
            match key.as_str() {
                "query"
                | "analyze_wildcard"
                | "lenient"
                | "boost"
                | "_name"
                | "allow_leading_wildcard"
                | "auto_generate_synonyms_phrase_query"
                | "escape"
                | "max_determinized_states" => {}
                "default_field" => {
                    let name = value.as_str().ok_or_else(|| {
                        EsError::parsing("[query_string] [default_field] must be a string")
                    })?;
                    default_fields.push(name.to_string());
                }
                "fields" => {
                    let names = value.as_array().ok_or_else(|| {
                        EsError::parsing("[query_string] [fields] must be an array")
                    })?;
                    for name in names {
                        let name = name.as_str().ok_or_else(|| {
                            EsError::parsing("[query_string] [fields] must hold strings")
                        })?;
                        // `field^2` boosts do not change which documents match.
                        default_fields.push(name.split('^').next().unwrap_or(name).to_string());
                    }
                }
                "default_operator" => {
                    match value.as_str().map(str::to_ascii_lowercase).as_deref() {
                        Some("and") => conjunction = true,
                        Some("or") => conjunction = false,
                        _ => {
                            return Err(EsError::parsing(format!(
                                "[query_string] unknown default_operator {value}"
                            )))
                        }
                    }
                }
                "time_zone" => {
                    if let Some(zone) = value.as_str() {
                        if parse_time_zone(zone)? != utc() {
                            return Err(EsError::unsupported(
                                "[query_string] [time_zone] other than UTC",
                            ));
                        }
                    }
                }
                "fuzziness"
                | "fuzzy_max_expansions"
                | "fuzzy_prefix_length"
                | "phrase_slop"
                | "quote_field_suffix"
                | "analyzer"
                | "quote_analyzer"
                | "rewrite"
                | "minimum_should_match"
                | "type"
                | "tie_breaker" => {
                    return Err(EsError::unsupported(format!(
                        "[query_string] option [{key}]"
                    )))
                }
                other => {
                    return Err(EsError::parsing(format!(
                        "[query_string] does not support [{other}]"
                    )))
                }
            }
        }
        let trimmed = text.trim();
        if trimmed.is_empty() || trimmed == "*" {
            return Ok(Box::new(AllQuery));
        }
        let ast = tantivy::query_grammar::parse_query(text).map_err(|_| {
            let (_, errors) = tantivy::query_grammar::parse_query_lenient(text);
            match errors.first() {
                Some(first) => EsError::parsing(format!(
                    "[query_string] failed to parse [{text}]: syntax error at position {}: {}",
                    first.pos, first.message
                )),
                None => EsError::parsing(format!("[query_string] failed to parse [{text}]")),
            }
        })?;
        let ast = self.rename_fields(ast);
        let defaults: Vec<Field> =
            if default_fields.is_empty() || default_fields.iter().any(|f| f == "*") {
                self.snapshot.default_fields.clone()
            } else {
                default_fields
                    .iter()
                    .filter_map(|name| self.resolve(name))
                    .filter(|r| !r.json)
                    .map(|r| r.field)
                    .collect()
            };
        if defaults.is_empty() && !default_fields.is_empty() {
            return Ok(Box::new(EmptyQuery));
        }
        let mut parser = QueryParser::new(
            self.snapshot.schema.clone(),
            defaults,
            self.snapshot.tokenizers.clone(),
        );
        if conjunction {
            parser.set_conjunction_by_default();
        }
        parser
            .build_query_from_user_input_ast(ast)
            .map_err(|err| parser_error("query_string", err))
    }

    /// Maps the field names in a parsed query string to the stream's (see
    /// [`canonical_field`]); `_exists_:f` becomes an exists leaf.
    fn rename_fields(&self, ast: UserInputAst) -> UserInputAst {
        let rename =
            |name: String| canonical_field(&self.snapshot.schema, &self.snapshot.stream, &name);
        match ast {
            UserInputAst::Clause(items) => UserInputAst::Clause(
                items
                    .into_iter()
                    .map(|(occur, sub)| (occur, self.rename_fields(sub)))
                    .collect(),
            ),
            UserInputAst::Boost(inner, boost) => {
                UserInputAst::Boost(Box::new(self.rename_fields(*inner)), boost)
            }
            UserInputAst::Leaf(leaf) => UserInputAst::Leaf(Box::new(match *leaf {
                UserInputLeaf::Literal(lit) if lit.field_name.as_deref() == Some("_exists_") => {
                    UserInputLeaf::Exists {
                        field: rename(lit.phrase),
                    }
                }
                UserInputLeaf::Literal(mut lit) => {
                    lit.field_name = lit.field_name.map(rename);
                    UserInputLeaf::Literal(lit)
                }
                UserInputLeaf::Range {
                    field,
                    lower,
                    upper,
                } => UserInputLeaf::Range {
                    field: field.map(rename),
                    lower,
                    upper,
                },
                UserInputLeaf::Set { field, elements } => UserInputLeaf::Set {
                    field: field.map(rename),
                    elements,
                },
                UserInputLeaf::Exists { field } => UserInputLeaf::Exists {
                    field: rename(field),
                },
                UserInputLeaf::Regex { field, pattern } => UserInputLeaf::Regex {
                    field: field.map(rename),
                    pattern,
                },
                UserInputLeaf::All => UserInputLeaf::All,
            })),
        }
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

/// The bounds of a `range` query as given: `gt`/`gte`/`lt`/`lte` (or the legacy
/// `from`/`to`/`include_lower`/`include_upper`), `format` and `time_zone`.
pub(crate) struct RangeSpec {
    /// Lower bound and whether it is inclusive.
    pub lower: Option<(Value, bool)>,
    /// Upper bound and whether it is inclusive.
    pub upper: Option<(Value, bool)>,
    pub format: Option<String>,
    pub time_zone: Option<String>,
}

impl RangeSpec {
    pub(crate) fn parse(spec: &Map<String, Value>) -> EsResult<RangeSpec> {
        let mut range = RangeSpec {
            lower: None,
            upper: None,
            format: None,
            time_zone: None,
        };
        let mut include_lower = true;
        let mut include_upper = true;
        let mut from = None;
        let mut to = None;
        for (key, value) in spec {
            let bound = (!value.is_null()).then(|| value.clone());
            match key.as_str() {
                "gte" => range.lower = bound.map(|v| (v, true)),
                "gt" => range.lower = bound.map(|v| (v, false)),
                "lte" => range.upper = bound.map(|v| (v, true)),
                "lt" => range.upper = bound.map(|v| (v, false)),
                "from" => from = bound,
                "to" => to = bound,
                "include_lower" => include_lower = value.as_bool().unwrap_or(true),
                "include_upper" => include_upper = value.as_bool().unwrap_or(true),
                "format" => range.format = value.as_str().map(str::to_string),
                "time_zone" => range.time_zone = value.as_str().map(str::to_string),
                "boost" | "_name" => {}
                "relation" => {
                    if !value
                        .as_str()
                        .is_some_and(|r| r.eq_ignore_ascii_case("intersects"))
                    {
                        return Err(EsError::unsupported(
                            "[range] [relation] other than intersects",
                        ));
                    }
                }
                other => {
                    return Err(EsError::parsing(format!(
                        "[range] query does not support [{other}]"
                    )))
                }
            }
        }
        if let Some(v) = from {
            range.lower = Some((v, include_lower));
        }
        if let Some(v) = to {
            range.upper = Some((v, include_upper));
        }
        Ok(range)
    }

    /// Nanosecond bounds for a date field, with Elasticsearch's rounding: `gte x` is at the
    /// start of `x`'s period, `gt x` and `lte x` after its end, `lt x` before its start.
    pub(crate) fn date_bounds(&self, now: i64) -> EsResult<(Bound<i64>, Bound<i64>)> {
        let zone = match &self.time_zone {
            Some(zone) => parse_time_zone(zone)?,
            None => utc(),
        };
        let period = |v: &Value| -> EsResult<DatePeriod> {
            parse_date(v, self.format.as_deref(), now, zone)
        };
        let lower = match &self.lower {
            None => Bound::Unbounded,
            Some((v, true)) => Bound::Included(period(v)?.start),
            Some((v, false)) => Bound::Included(period(v)?.next),
        };
        let upper = match &self.upper {
            None => Bound::Unbounded,
            Some((v, true)) => Bound::Excluded(period(v)?.next),
            Some((v, false)) => Bound::Excluded(period(v)?.start),
        };
        Ok((lower, upper))
    }
}

/// The time bounds every document matching `query` lies in, from the `range` clauses on the
/// timestamp that all matches must satisfy (the query itself, or `must`/`filter` clauses of
/// `bool`s, recursively). Used to skip splits; the query still applies the ranges exactly.
/// Malformed ranges are ignored here and reported by the translation.
pub(crate) fn time_bounds(
    query: Option<&Value>,
    now: Timestamp,
) -> (Option<Timestamp>, Option<Timestamp>) {
    let mut start: Option<i64> = None;
    let mut end: Option<i64> = None;
    if let Some(query) = query {
        collect_bounds(query, now.0, &mut start, &mut end);
    }
    (start.map(Timestamp), end.map(Timestamp))
}

fn collect_bounds(query: &Value, now: i64, start: &mut Option<i64>, end: &mut Option<i64>) {
    let Some(object) = query.as_object() else {
        return;
    };
    if let Some(range) = object.get("range").and_then(Value::as_object) {
        for (name, spec) in range {
            let base = name.strip_suffix(".keyword").unwrap_or(name);
            if base != TIMESTAMP_FIELD && base != "@timestamp" {
                continue;
            }
            let Some(Ok(spec)) = spec.as_object().map(RangeSpec::parse) else {
                continue;
            };
            let Ok((lower, upper)) = spec.date_bounds(now) else {
                continue;
            };
            if let Bound::Included(s) = lower {
                *start = Some(start.map_or(s, |c| c.max(s)));
            }
            if let Bound::Excluded(e) = upper {
                *end = Some(end.map_or(e, |c| c.min(e)));
            }
        }
    }
    if let Some(b) = object.get("bool").and_then(Value::as_object) {
        for key in ["must", "filter"] {
            match b.get(key) {
                Some(Value::Array(items)) => {
                    for item in items {
                        collect_bounds(item, now, start, end);
                    }
                }
                Some(item @ Value::Object(_)) => collect_bounds(item, now, start, end),
                _ => {}
            }
        }
    }
    if let Some(inner) = object.get("constant_score").and_then(|c| c.get("filter")) {
        collect_bounds(inner, now, start, end);
    }
}

/// A `BooleanQuery` with Elasticsearch's semantics: every `must`, no `must_not`, and at least
/// `msm` of the `should` clauses. A query with only `must_not` clauses matches everything
/// else.
fn boolean(
    must: Vec<Box<dyn Query>>,
    should: Vec<Box<dyn Query>>,
    must_not: Vec<Box<dyn Query>>,
    msm: usize,
) -> Box<dyn Query> {
    if msm > should.len() {
        return Box::new(EmptyQuery);
    }
    let needs_all = must.is_empty() && msm == 0;
    let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
    if needs_all {
        clauses.push((Occur::Must, Box::new(AllQuery)));
    }
    clauses.extend(must.into_iter().map(|q| (Occur::Must, q)));
    if msm > 0 {
        clauses.extend(should.into_iter().map(|q| (Occur::Should, q)));
    }
    clauses.extend(
        must_not
            .into_iter()
            .map(|q| (Occur::MustNot, Box::new(SafeExclusion(q)) as Box<dyn Query>)),
    );
    if clauses.len() == 1 && clauses[0].0 == Occur::Must {
        if let Some((_, only)) = clauses.pop() {
            return only;
        }
    }
    Box::new(BooleanQuery::with_minimum_required_clauses(clauses, msm))
}

/// A `must_not` clause whose scorer tolerates being probed after it ran out of documents.
///
/// tantivy's exclusion probes the excluded scorer with `seek_danger` for every candidate, also
/// once the excluded scorer is exhausted; its phrase scorer asserts (in debug builds) that
/// this never happens. This wrapper answers such probes itself and forwards the rest.
#[derive(Debug)]
struct SafeExclusion(Box<dyn Query>);

impl Clone for SafeExclusion {
    fn clone(&self) -> Self {
        SafeExclusion(self.0.box_clone())
    }
}

impl Query for SafeExclusion {
    fn weight(&self, scoring: EnableScoring<'_>) -> tantivy::Result<Box<dyn Weight>> {
        Ok(Box::new(SafeExclusionWeight(self.0.weight(scoring)?)))
    }
}

struct SafeExclusionWeight(Box<dyn Weight>);

impl Weight for SafeExclusionWeight {
    fn scorer(&self, reader: &SegmentReader, boost: Score) -> tantivy::Result<Box<dyn Scorer>> {
        Ok(Box::new(SafeExclusionScorer(self.0.scorer(reader, boost)?)))
    }

    fn explain(&self, reader: &SegmentReader, doc: DocId) -> tantivy::Result<Explanation> {
        self.0.explain(reader, doc)
    }
}

struct SafeExclusionScorer(Box<dyn Scorer>);

impl DocSet for SafeExclusionScorer {
    fn advance(&mut self) -> DocId {
        self.0.advance()
    }

    fn seek(&mut self, target: DocId) -> DocId {
        let doc = self.0.doc();
        if doc >= target {
            return doc;
        }
        self.0.seek(target)
    }

    fn doc(&self) -> DocId {
        self.0.doc()
    }

    fn size_hint(&self) -> u32 {
        self.0.size_hint()
    }
}

impl Scorer for SafeExclusionScorer {
    fn score(&mut self) -> Score {
        self.0.score()
    }
}

/// Elasticsearch's `minimum_should_match`: an integer, a negative integer (all but n), a
/// percentage (`"75%"`, rounded down) or a negative percentage, out of `count` clauses.
fn minimum_should_match(spec: &Value, count: usize) -> EsResult<usize> {
    let text = scalar_text(spec)?;
    let text = text.trim();
    let bad = || EsError::parsing(format!("[minimum_should_match] cannot parse [{text}]"));
    let count_i = i64::try_from(count).map_err(|_| bad())?;
    let n: i64 = if let Some(pct) = text.strip_suffix('%') {
        let pct: i64 = pct.trim().parse().map_err(|_| bad())?;
        let part = count_i * pct.abs() / 100;
        if pct < 0 {
            count_i - part
        } else {
            part
        }
    } else {
        let n: i64 = text.parse().map_err(|_| bad())?;
        if n < 0 {
            count_i + n
        } else {
            n
        }
    };
    // More than there are clauses can never be met: `count + 1` makes the query match nothing.
    Ok(usize::try_from(n.clamp(0, count_i + 1)).unwrap_or(0))
}

fn date_range(field: Field, lower: Bound<i64>, upper: Bound<i64>) -> Box<dyn Query> {
    let term = |ns: i64| Term::from_field_date(field, DateTime::from_timestamp_nanos(ns));
    let map = |b: Bound<i64>| match b {
        Bound::Included(ns) => Bound::Included(term(ns)),
        Bound::Excluded(ns) => Bound::Excluded(term(ns)),
        Bound::Unbounded => Bound::Unbounded,
    };
    if let (Bound::Included(l), Bound::Excluded(u)) = (lower, upper) {
        if l >= u {
            return Box::new(EmptyQuery);
        }
    }
    Box::new(RangeQuery::new(map(lower), map(upper)))
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

/// Escapes the characters tantivy's regex syntax gives a meaning to.
fn regex_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if "\\.+*?()|[]{}^$#&-~\"<>@".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A `wildcard` pattern (`*` any sequence, `?` one character) as a regex.
fn wildcard_to_regex(pattern: &str) -> String {
    let mut out = String::new();
    let mut escaped = false;
    for c in pattern.chars() {
        if escaped {
            out.push_str(&regex_escape(&c.to_string()));
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            '*' => out.push_str(".*"),
            '?' => out.push('.'),
            other => out.push_str(&regex_escape(&other.to_string())),
        }
    }
    out
}

#[cfg(test)]
#[path = "dsl_tests.rs"]
mod tests;
