//! Exact-value and pattern leaves: `term`, `terms`, `prefix`, `wildcard`, `regexp`, `exists`.

use std::ops::Bound;

use serde_json::Value;
use tantivy::query::{EmptyQuery, ExistsQuery, Query, RegexQuery, TermQuery};
use tantivy::query_grammar::Delimiter;
use tantivy::schema::{FieldType, IndexRecordOption};
use tantivy::Term;

use super::compound::boolean;
use super::range::date_range;
use super::{field_obj, scalar_text, utc, Translator};
use crate::elastic::datemath::parse_date;
use crate::elastic::error::{EsError, EsResult};

impl Translator<'_> {
    /// Exact value: a keyword as is, a number, a boolean, a date (its whole period).
    pub(super) fn term(&self, name: &str, value: &Value) -> EsResult<Box<dyn Query>> {
        let Some(resolved) = self.resolve(name)? else {
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

    pub(super) fn terms(&self, body: &Value) -> EsResult<Box<dyn Query>> {
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

    /// `prefix`, `wildcard` and `regexp` on a keyword or text field (matched against its terms).
    pub(super) fn regex(&self, name: &str, pattern: &str, kind: &str) -> EsResult<Box<dyn Query>> {
        let Some(resolved) = self.resolve(name)? else {
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
    pub(super) fn exists(&self, name: &str) -> EsResult<Box<dyn Query>> {
        let Some(resolved) = self.resolve(name)? else {
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
}

/// Escapes the characters tantivy's regex syntax gives a meaning to.
pub(super) fn regex_escape(text: &str) -> String {
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
pub(super) fn wildcard_to_regex(pattern: &str) -> String {
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
