//! Analysed leaves: `match`, `match_phrase`, `match_phrase_prefix` and `query_string` (its
//! field names mapped as everywhere else).

use serde_json::{Map, Value};
use tantivy::query::{AllQuery, EmptyQuery, Query, QueryParser, TermQuery};
use tantivy::query_grammar::{Delimiter, UserInputAst, UserInputLeaf};
use tantivy::schema::{Field, FieldType, IndexRecordOption};
use tantivy::Term;

use super::compound::{boolean, minimum_should_match};
use super::term::regex_escape;
use super::{canonical_field, field_obj, parser_error, scalar_text, utc, Translator};
use crate::elastic::datemath::parse_time_zone;
use crate::elastic::error::{EsError, EsResult};

impl Translator<'_> {
    /// Analysed match: the text's tokens, all required (`operator: and`) or any (`or`, the
    /// default, with `minimum_should_match`). On a field that is not analysed, an exact term.
    pub(super) fn match_query(
        &self,
        name: &str,
        value: &Value,
        options: &Map<String, Value>,
    ) -> EsResult<Box<dyn Query>> {
        let Some(resolved) = self.resolve(name)? else {
            return Ok(Box::new(EmptyQuery));
        };
        if self.text_tokenizer(&resolved).is_none() {
            return self.term(name, value);
        }
        if resolved.json {
            return self.parsed_literal(
                &resolved.full,
                &scalar_text(value)?,
                Delimiter::DoubleQuotes,
                0,
                false,
            );
        }
        let terms: Vec<Box<dyn Query>> = self
            .tokens(&resolved, &scalar_text(value)?)?
            .iter()
            .map(|token| {
                let term = Term::from_field_text(resolved.field, token);
                Box::new(TermQuery::new(term, IndexRecordOption::Basic)) as Box<dyn Query>
            })
            .collect();
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

    /// A phrase (with `slop`), or a phrase whose last word is a prefix. As in Elasticsearch, a
    /// `match_phrase_prefix` of one term (one word of text, any value of a keyword) is a prefix
    /// query on it, and one of no term matches nothing.
    pub(super) fn phrase(
        &self,
        name: &str,
        value: &Value,
        options: &Map<String, Value>,
        prefix: bool,
    ) -> EsResult<Box<dyn Query>> {
        let Some(resolved) = self.resolve(name)? else {
            return Ok(Box::new(EmptyQuery));
        };
        if self.text_tokenizer(&resolved).is_none() && !resolved.json && !prefix {
            let text = matches!(self.field_type(resolved.field), FieldType::Str(_));
            if text
                && self.snapshot.stream == trawl_model::EVENTS_STREAM
                && !name.ends_with(".keyword")
            {
                // Elasticsearch maps an Event's strings as text beside a `.keyword`: a phrase on
                // the text ignores case (ks-apiserver's events client relies on it for `type`,
                // `reason` and `involvedObject.kind`), one on `.keyword` does not.
                let pattern = format!("(?i){}", regex_escape(&scalar_text(value)?));
                return self.regex(name, &pattern, "match_phrase");
            }
            return self.term(name, value);
        }
        if prefix && !resolved.json {
            let tokens = self.tokens(&resolved, &scalar_text(value)?)?;
            match tokens.as_slice() {
                [] => return Ok(Box::new(EmptyQuery)),
                [only] => return self.regex(name, &format!("{}.*", regex_escape(only)), "prefix"),
                _ => {}
            }
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
    /// `query_string`: the text in tantivy's query grammar (Lucene-like), with field names
    /// mapped as everywhere else (`@timestamp`, `.keyword`, shipper aliases, `_exists_:f`).
    pub(super) fn query_string(&self, body: &Value) -> EsResult<Box<dyn Query>> {
        let object = field_obj(body, "query_string")?;
        let text = object
            .get("query")
            .and_then(Value::as_str)
            .ok_or_else(|| EsError::parsing("[query_string] requires a string [query]"))?;
        let (default_fields, conjunction) = query_string_options(object)?;
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
                    .filter_map(|name| self.resolve(name).ok().flatten())
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
    pub(super) fn rename_fields(&self, ast: UserInputAst) -> UserInputAst {
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
}

/// The options of a `query_string` beside its text: the default fields (`default_field`,
/// `fields`, boosts dropped: they do not change which documents match) and whether terms are
/// joined by AND (`default_operator`, AND by default). Options that only tune scoring are
/// accepted; those that would change the matches are refused by name.
fn query_string_options(object: &Map<String, Value>) -> EsResult<(Vec<String>, bool)> {
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
                let names = value
                    .as_array()
                    .ok_or_else(|| EsError::parsing("[query_string] [fields] must be an array"))?;
                for name in names {
                    let name = name.as_str().ok_or_else(|| {
                        EsError::parsing("[query_string] [fields] must hold strings")
                    })?;
                    // `field^2` boosts do not change which documents match.
                    default_fields.push(name.split('^').next().unwrap_or(name).to_string());
                }
            }
            "default_operator" => match value.as_str().map(str::to_ascii_lowercase).as_deref() {
                Some("and") => conjunction = true,
                Some("or") => conjunction = false,
                _ => {
                    return Err(EsError::parsing(format!(
                        "[query_string] unknown default_operator {value}"
                    )))
                }
            },
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
    Ok((default_fields, conjunction))
}
