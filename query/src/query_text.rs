//! The tantivy query of an export: the user's query text bounded by the request's time range,
//! built exactly as a search builds it (same parser settings, same error messages).

use std::ops::Bound;

use tantivy::query::{
    AllQuery, BooleanQuery, EnableScoring, Occur, Query, QueryParser, QueryParserError, RangeQuery,
    Weight,
};
use tantivy::{DateTime, Searcher, TantivyError, Term};
use trawl_index::StreamSnapshot;
use trawl_model::Timestamp;

use crate::access::Scope;
use crate::dynamic;
use crate::error::{Error, Result};
use crate::search::TIMESTAMP_FIELD;

/// Parses `text` (the tantivy grammar, AND by default, over the stream's default fields; `*`
/// matches everything), adds the time bounds `[start, end)` on the timestamp fast field, and
/// restricts it to what `scope` may see (whatever the text says: `namespace:other` or `*`
/// finds nothing outside the scope). A query that does not parse is an
/// [`Error::InvalidQuery`] saying where it failed.
pub(crate) fn build_query(
    snapshot: &StreamSnapshot,
    text: &str,
    start: Option<Timestamp>,
    end: Option<Timestamp>,
    scope: &Scope,
) -> Result<Box<dyn Query>> {
    let query = build_unscoped(snapshot, text, start, end)?;
    Ok(scope.restrict(&snapshot.schema, query))
}

/// [`build_query`] without the scope.
fn build_unscoped(
    snapshot: &StreamSnapshot,
    text: &str,
    start: Option<Timestamp>,
    end: Option<Timestamp>,
) -> Result<Box<dyn Query>> {
    let match_all = text.trim().is_empty() || text.trim() == "*";
    let user_query: Box<dyn Query> = if match_all {
        Box::new(AllQuery)
    } else {
        parse_user_query(snapshot, text)?
    };
    if start.is_none() && end.is_none() {
        return Ok(user_query);
    }
    let field = snapshot.schema.get_field(TIMESTAMP_FIELD).map_err(|_| {
        Error::Internal(format!(
            "stream `{}` has no `{TIMESTAMP_FIELD}` field",
            snapshot.stream
        ))
    })?;
    let term = |ts: Timestamp| Term::from_field_date(field, DateTime::from_timestamp_nanos(ts.0));
    let lower = start.map_or(Bound::Unbounded, |s| Bound::Included(term(s)));
    let upper = end.map_or(Bound::Unbounded, |e| Bound::Excluded(term(e)));
    let range: Box<dyn Query> = Box::new(RangeQuery::new(lower, upper));
    if match_all {
        return Ok(range);
    }
    Ok(Box::new(BooleanQuery::new(vec![
        (Occur::Must, user_query),
        (Occur::Must, range),
    ])))
}

fn parse_user_query(snapshot: &StreamSnapshot, text: &str) -> Result<Box<dyn Query>> {
    // tantivy 0.27 panics (an assert, not a parse error) on a JSON field path holding NUL, its
    // path terminator: `attributes.a\0b:x`. No field name or word has one. Found by fuzzing.
    if text.contains('\0') {
        return Err(Error::InvalidQuery(
            "the query holds a NUL character".to_string(),
        ));
    }
    check_json_ranges(&snapshot.schema, text)?;
    let mut parser = QueryParser::new(
        snapshot.schema.clone(),
        snapshot.default_fields.clone(),
        snapshot.tokenizers.clone(),
    );
    parser.set_conjunction_by_default();
    // A query that only excludes (`NOT level:debug`) subtracts from everything, as in
    // Lucene's query_string, rather than being refused.
    let parsed = match dynamic::parse_query(&parser, &snapshot.schema, text) {
        Err(QueryParserError::AllButQueryForbidden) => {
            dynamic::parse_query(&parser, &snapshot.schema, &format!("* ({text})"))
        }
        other => other,
    };
    let query = parsed.map_err(|err| match err {
        QueryParserError::SyntaxError(_) => {
            // The strict parser only says that it failed; the lenient one says where.
            let (_, errors) = tantivy::query_grammar::parse_query_lenient(text);
            match errors.first() {
                Some(first) => Error::InvalidQuery(format!(
                    "syntax error at position {}: {}",
                    first.pos, first.message
                )),
                None => Error::InvalidQuery(format!("syntax error in `{text}`")),
            }
        }
        other => Error::InvalidQuery(other.to_string()),
    })?;
    Ok(complete_negations(query))
}

/// The type tantivy infers for a range bound on a JSON field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BoundType {
    Date,
    Integer,
    Unsigned,
    Decimal,
    Bool,
    Text,
}

impl BoundType {
    /// As tantivy types a bound on a JSON path: an RFC 3339 date, else a number (normalised:
    /// a whole decimal is an integer), else a bool, else text.
    fn of(text: &str) -> BoundType {
        if chrono::DateTime::parse_from_rfc3339(text).is_ok() {
            return BoundType::Date;
        }
        if text.parse::<i64>().is_ok() {
            return BoundType::Integer;
        }
        if text.parse::<u64>().is_ok() {
            return BoundType::Unsigned;
        }
        if let Ok(value) = text.parse::<f64>() {
            return match value.fract() == 0.0 {
                true if value >= i64::MIN as f64 && value <= i64::MAX as f64 => BoundType::Integer,
                true if value >= 0.0 && value <= u64::MAX as f64 => BoundType::Unsigned,
                _ => BoundType::Decimal,
            };
        }
        if text.parse::<bool>().is_ok() {
            return BoundType::Bool;
        }
        BoundType::Text
    }

    fn name(self) -> &'static str {
        match self {
            BoundType::Date => "a date",
            BoundType::Integer => "an integer",
            BoundType::Unsigned => "an integer past 2^63",
            BoundType::Decimal => "a decimal",
            BoundType::Bool => "a bool",
            BoundType::Text => "text",
        }
    }
}

/// Refuses a range on a JSON path (`attributes.status:[400 TO 4xx]`, `[1 TO 1.5]`) whose two
/// bounds have different types: tantivy 0.27 types each bound on its own and then panics
/// reading one as the other's type. Ranges on typed fields are checked by the parser itself.
/// Found by fuzzing.
fn check_json_ranges(schema: &tantivy::schema::Schema, text: &str) -> Result<()> {
    use tantivy::query_grammar::{UserInputAst, UserInputBound, UserInputLeaf};

    fn walk(schema: &tantivy::schema::Schema, ast: &UserInputAst) -> Result<()> {
        match ast {
            UserInputAst::Clause(clauses) => clauses.iter().try_for_each(|(_, c)| walk(schema, c)),
            UserInputAst::Boost(inner, _) => walk(schema, inner),
            UserInputAst::Leaf(leaf) => {
                let UserInputLeaf::Range {
                    field: Some(field),
                    lower,
                    upper,
                } = leaf.as_ref()
                else {
                    return Ok(());
                };
                let typed = schema
                    .get_field(field)
                    .is_ok_and(|f| !schema.get_field_entry(f).field_type().is_json());
                let bounded = |b: &UserInputBound| {
                    (!matches!(b, UserInputBound::Unbounded) && b.term_str() != "*")
                        .then(|| b.term_str().to_string())
                };
                let (Some(lower), Some(upper)) = (bounded(lower), bounded(upper)) else {
                    return Ok(());
                };
                let (lt, ut) = (BoundType::of(&lower), BoundType::of(&upper));
                if typed || lt == ut {
                    return Ok(());
                }
                Err(Error::InvalidQuery(format!(
                    "range on `{field}`: the bounds must have one type, but `{lower}` is {} and \
                     `{upper}` is {}",
                    lt.name(),
                    ut.name()
                )))
            }
        }
    }
    match tantivy::query_grammar::parse_query(text) {
        Ok(ast) => walk(schema, &ast),
        // The parser proper reports the syntax error.
        Err(_) => Ok(()),
    }
}

/// Gives every purely negative boolean clause something to subtract from. The grammar reads
/// `a AND NOT b` as `(+a +(-b))`, and tantivy's `(-b)` alone matches nothing, so the whole
/// query would match nothing; users (and Lucene's query_string) mean `+a -b`. A boolean
/// query whose clauses all exclude is completed with a match-all clause, at every depth.
fn complete_negations(query: Box<dyn Query>) -> Box<dyn Query> {
    let Some(boolean) = query.downcast_ref::<BooleanQuery>() else {
        return query;
    };
    let mut clauses: Vec<(Occur, Box<dyn Query>)> = boolean
        .clauses()
        .iter()
        .map(|(occur, sub)| (*occur, complete_negations(sub.box_clone())))
        .collect();
    if !clauses.is_empty() && clauses.iter().all(|(occur, _)| *occur == Occur::MustNot) {
        clauses.push((Occur::Must, Box::new(AllQuery)));
    }
    Box::new(BooleanQuery::new(clauses))
}

/// The query's weight on one target, scoring disabled. A query that does not fit the schema
/// is an [`Error::InvalidQuery`].
pub(crate) fn weight(
    query: &dyn Query,
    searcher: &Searcher,
    target: &str,
) -> Result<Box<dyn Weight>> {
    query
        .weight(EnableScoring::disabled_from_searcher(searcher))
        .map_err(|err| match err {
            TantivyError::InvalidArgument(message) | TantivyError::SchemaError(message) => {
                Error::InvalidQuery(message)
            }
            TantivyError::FieldNotFound(field) => {
                Error::InvalidQuery(format!("field `{field}` does not exist"))
            }
            other => Error::Internal(format!("searching target `{target}`: {other}")),
        })
}
