//! Who may read what: the namespace [`Scope`] of a request, enforced in every query whatever
//! its text says.
//!
//! The server's authentication middleware inserts the scope of the caller's token into the
//! request's extensions; every read route takes it as an extractor ([`Scope`] implements
//! `FromRequestParts`, absent meaning [`Scope::All`]: no authentication configured) and carries
//! it in [`crate::ParsedRequest::scope`] down to [`crate::query_text`], which ANDs
//! [`Scope::filter`] into the query of every search, aggregation, export, tail and report.
//!
//! A searcher sends the scope it resolved for its caller to every indexer it fans out to, in
//! the [`SCOPE_HEADER`] header (JSON, ASCII-only), on every request: search, streams, tail and
//! export alike. The extractor intersects that header with the scope of the indexer's own
//! caller, so a forwarded scope can only narrow what a token sees, whoever sends it: the
//! indexers may authenticate the searcher with a token of their own, unscoped, and the caller's
//! scope still holds.
//!
//! A scope restricted to namespaces matches only documents whose `namespace` field holds one of
//! them: cluster-scoped audit events (empty `namespace`) and streams without a keyword
//! `namespace` field yield nothing. A scope restricted to clusters likewise matches only
//! documents whose `cluster` is one of its clusters (and, with namespaces too, both).

use std::collections::BTreeSet;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::HeaderValue;
use serde::{Deserialize, Serialize};
use tantivy::query::{BooleanQuery, EmptyQuery, Occur, Query, TermSetQuery};
use tantivy::schema::{FieldType, Schema};
use tantivy::Term;

/// The field a namespace restriction filters on.
pub const NAMESPACE_FIELD: &str = "namespace";
/// The field a cluster restriction filters on.
pub const CLUSTER_FIELD: &str = "cluster";

/// Header in which a searcher forwards its caller's resolved scope to the indexers: the
/// scope's JSON (`{"namespaces":["a","b"]}`), non-ASCII characters escaped. Absent means no
/// narrowing.
pub const SCOPE_HEADER: &str = "x-trawl-scope";

/// The records a request may see.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Every record (a token without a namespace or cluster list, or no authentication).
    #[default]
    All,
    /// Only records whose `namespace` is one of these (exact names). An empty set sees nothing.
    Namespaces(BTreeSet<String>),
    /// Only records whose `cluster` is one of `clusters`, and, when `namespaces` is given, whose
    /// `namespace` is one of those too.
    Clusters {
        clusters: BTreeSet<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        namespaces: Option<BTreeSet<String>>,
    },
}

/// The intersection of two optional restrictions (`None`: unrestricted).
fn intersect_sets(
    a: Option<&BTreeSet<String>>,
    b: Option<&BTreeSet<String>>,
) -> Option<BTreeSet<String>> {
    match (a, b) {
        (None, other) | (other, None) => other.cloned(),
        (Some(a), Some(b)) => Some(a.intersection(b).cloned().collect()),
    }
}

/// Documents whose indexed string `field` holds one of `values`; nothing when the schema has
/// no such field or `values` is empty (a restriction never widens to everything).
fn term_set(schema: &Schema, field: &str, values: &BTreeSet<String>) -> Box<dyn Query> {
    let field = schema.get_field(field).ok().filter(|field| {
        matches!(
            schema.get_field_entry(*field).field_type(),
            FieldType::Str(options) if options.get_indexing_options().is_some()
        )
    });
    match field {
        Some(field) if !values.is_empty() => Box::new(TermSetQuery::new(
            values.iter().map(|v| Term::from_field_text(field, v)),
        )),
        _ => Box::new(EmptyQuery),
    }
}

impl Scope {
    /// A scope limited to `namespaces` (exact names). An empty list sees nothing: mapping "no
    /// list" to [`Scope::All`] is the caller's decision.
    pub fn namespaces<I, S>(namespaces: I) -> Scope
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Scope::Namespaces(namespaces.into_iter().map(Into::into).collect())
    }

    /// The scope of optional namespace and cluster lists (`None`: that dimension is open).
    pub fn of(namespaces: Option<BTreeSet<String>>, clusters: Option<BTreeSet<String>>) -> Scope {
        match (namespaces, clusters) {
            (None, None) => Scope::All,
            (Some(namespaces), None) => Scope::Namespaces(namespaces),
            (namespaces, Some(clusters)) => Scope::Clusters {
                clusters,
                namespaces,
            },
        }
    }

    /// The namespaces this scope is limited to, `None` when it is not.
    pub fn namespace_set(&self) -> Option<&BTreeSet<String>> {
        match self {
            Scope::All => None,
            Scope::Namespaces(set) => Some(set),
            Scope::Clusters { namespaces, .. } => namespaces.as_ref(),
        }
    }

    /// The clusters this scope is limited to, `None` when it is not.
    pub fn cluster_set(&self) -> Option<&BTreeSet<String>> {
        match self {
            Scope::Clusters { clusters, .. } => Some(clusters),
            _ => None,
        }
    }

    /// Whether this scope hides anything.
    pub fn is_restricted(&self) -> bool {
        !matches!(self, Scope::All)
    }

    /// Whether a record of `namespace` may be visible (the empty namespace of a cluster-scoped
    /// event only to a scope without a namespace list).
    pub fn allows_namespace(&self, namespace: &str) -> bool {
        self.namespace_set()
            .is_none_or(|set| set.contains(namespace))
    }

    /// What both scopes may see: the scope a leaf applies when a root forwards one and the
    /// caller's token has one too.
    pub fn intersect(&self, other: &Scope) -> Scope {
        Scope::of(
            intersect_sets(self.namespace_set(), other.namespace_set()),
            intersect_sets(self.cluster_set(), other.cluster_set()),
        )
    }

    /// The query a document must also match to be visible, `None` for [`Scope::All`]. For a
    /// restriction on a field the schema lacks (no keyword `namespace` or `cluster`) it is a
    /// query matching nothing, never everything.
    pub fn filter(&self, schema: &Schema) -> Option<Box<dyn Query>> {
        let mut must: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        if let Some(namespaces) = self.namespace_set() {
            must.push((Occur::Must, term_set(schema, NAMESPACE_FIELD, namespaces)));
        }
        if let Some(clusters) = self.cluster_set() {
            must.push((Occur::Must, term_set(schema, CLUSTER_FIELD, clusters)));
        }
        match must.len() {
            0 => None,
            1 => must.pop().map(|(_, query)| query),
            _ => Some(Box::new(BooleanQuery::new(must))),
        }
    }

    /// The [`SCOPE_HEADER`] value that forwards this scope, `None` for [`Scope::All`] (nothing
    /// to narrow). JSON with every non-ASCII character escaped as `\uXXXX`, so that any
    /// namespace name fits a header.
    pub fn header_value(&self) -> Option<HeaderValue> {
        if !self.is_restricted() {
            return None;
        }
        let json = serde_json::to_string(self).ok()?;
        let mut ascii = String::with_capacity(json.len());
        for c in json.chars() {
            if c.is_ascii() && !c.is_ascii_control() {
                ascii.push(c);
            } else {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    ascii.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
        HeaderValue::from_str(&ascii).ok()
    }

    /// Reads a [`SCOPE_HEADER`] value; a value that is not a scope is an error (a 400), never
    /// ignored.
    pub fn from_header(value: &HeaderValue) -> crate::Result<Scope> {
        value
            .to_str()
            .ok()
            .and_then(|text| serde_json::from_str(text).ok())
            .ok_or_else(|| {
                crate::Error::InvalidArgument(format!(
                    "header `{SCOPE_HEADER}` is not a scope such as {{\"namespaces\":[\"a\"]}}"
                ))
            })
    }

    /// `query` restricted to this scope (unchanged for [`Scope::All`]).
    pub fn restrict(&self, schema: &Schema, query: Box<dyn Query>) -> Box<dyn Query> {
        match self.filter(schema) {
            None => query,
            Some(filter) => Box::new(BooleanQuery::new(vec![
                (Occur::Must, query),
                (Occur::Must, filter),
            ])),
        }
    }
}

/// The scope the authentication middleware put in the request's extensions ([`Scope::All`]
/// when there is none: authentication is off), narrowed by a [`SCOPE_HEADER`] a searcher
/// forwarded. A malformed header is a 400.
impl<S: Send + Sync> FromRequestParts<S> for Scope {
    type Rejection = crate::Error;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> std::result::Result<Self, Self::Rejection> {
        let own = parts.extensions.get::<Scope>().cloned().unwrap_or_default();
        match parts.headers.get(SCOPE_HEADER) {
            Some(value) => Ok(own.intersect(&Scope::from_header(value)?)),
            None => Ok(own),
        }
    }
}

#[cfg(test)]
mod tests {
    use tantivy::collector::Count;
    use tantivy::query::AllQuery;
    use tantivy::schema::{NumericOptions, STRING, TEXT};
    use tantivy::{doc, Index};

    use super::*;

    /// An index of one document per namespace (`""` stands for a cluster-scoped event).
    fn index(namespaces: &[&str]) -> Index {
        let mut builder = Schema::builder();
        let ns = builder.add_text_field(NAMESPACE_FIELD, STRING);
        let msg = builder.add_text_field("message", TEXT);
        let index = Index::create_in_ram(builder.build());
        let mut writer = index
            .writer_with_num_threads::<tantivy::TantivyDocument>(1, 15_000_000)
            .unwrap();
        for namespace in namespaces {
            writer
                .add_document(doc!(ns => *namespace, msg => "hello"))
                .unwrap();
        }
        writer.commit().unwrap();
        index
    }

    fn count(index: &Index, scope: &Scope) -> usize {
        let searcher = index.reader().unwrap().searcher();
        let query = scope.restrict(&index.schema(), Box::new(AllQuery));
        searcher.search(query.as_ref(), &Count).unwrap()
    }

    #[test]
    fn restricted_scope_sees_only_its_namespaces() {
        let index = index(&["a", "b", "a", "c", ""]);
        assert_eq!(count(&index, &Scope::All), 5);
        assert_eq!(count(&index, &Scope::namespaces(["a"])), 2);
        assert_eq!(count(&index, &Scope::namespaces(["a", "c"])), 3);
        assert_eq!(count(&index, &Scope::namespaces(["zzz"])), 0);
        assert_eq!(count(&index, &Scope::namespaces(Vec::<String>::new())), 0);
    }

    #[test]
    fn cluster_scoped_records_only_for_unrestricted_scopes() {
        let index = index(&["", ""]);
        assert_eq!(count(&index, &Scope::All), 2);
        assert_eq!(count(&index, &Scope::namespaces(["a"])), 0);
        assert!(Scope::All.allows_namespace(""));
        assert!(!Scope::namespaces(["a"]).allows_namespace(""));
    }

    /// A generic stream without a `namespace` field must hide everything from a restricted
    /// token rather than show everything.
    #[test]
    fn schema_without_namespace_field_yields_nothing() {
        let mut builder = Schema::builder();
        let msg = builder.add_text_field("message", TEXT);
        let index = Index::create_in_ram(builder.build());
        let mut writer = index
            .writer_with_num_threads::<tantivy::TantivyDocument>(1, 15_000_000)
            .unwrap();
        writer.add_document(doc!(msg => "hello")).unwrap();
        writer.commit().unwrap();
        assert_eq!(count(&index, &Scope::All), 1);
        assert_eq!(count(&index, &Scope::namespaces(["a"])), 0);

        // A numeric `namespace` cannot be matched against names either.
        let mut builder = Schema::builder();
        let ns = builder.add_u64_field(NAMESPACE_FIELD, NumericOptions::default().set_indexed());
        let index = Index::create_in_ram(builder.build());
        let mut writer = index
            .writer_with_num_threads::<tantivy::TantivyDocument>(1, 15_000_000)
            .unwrap();
        writer.add_document(doc!(ns => 1u64)).unwrap();
        writer.commit().unwrap();
        assert_eq!(count(&index, &Scope::namespaces(["1"])), 0);
    }

    #[test]
    fn intersection() {
        let ab = Scope::namespaces(["a", "b"]);
        let bc = Scope::namespaces(["b", "c"]);
        assert_eq!(ab.intersect(&bc), Scope::namespaces(["b"]));
        assert_eq!(Scope::All.intersect(&bc), bc);
        assert_eq!(ab.intersect(&Scope::All), ab);
        assert_eq!(Scope::All.intersect(&Scope::All), Scope::All);
        assert_eq!(
            Scope::namespaces(["a"]).intersect(&Scope::namespaces(["c"])),
            Scope::namespaces(Vec::<String>::new())
        );
    }

    #[test]
    fn wire_form() {
        assert_eq!(serde_json::to_string(&Scope::All).unwrap(), r#""all""#);
        let scope = Scope::namespaces(["b", "a"]);
        let text = serde_json::to_string(&scope).unwrap();
        assert_eq!(text, r#"{"namespaces":["a","b"]}"#);
        assert_eq!(serde_json::from_str::<Scope>(&text).unwrap(), scope);
    }

    #[test]
    fn header_round_trip_and_ascii() {
        assert_eq!(Scope::All.header_value(), None);
        let scope = Scope::namespaces(["team-a", "équipe", "\u{1F600}"]);
        let value = scope.header_value().unwrap();
        assert!(value.to_str().unwrap().is_ascii());
        assert_eq!(Scope::from_header(&value).unwrap(), scope);
        let bad = HeaderValue::from_static("all of them");
        assert!(matches!(
            Scope::from_header(&bad),
            Err(crate::Error::InvalidArgument(_))
        ));
    }

    #[tokio::test]
    async fn forwarded_header_only_narrows() {
        let mut request = axum::http::Request::new(());
        request.headers_mut().insert(
            SCOPE_HEADER,
            Scope::namespaces(["a", "b"]).header_value().unwrap(),
        );
        let (mut parts, ()) = request.into_parts();
        assert_eq!(
            Scope::from_request_parts(&mut parts, &()).await.unwrap(),
            Scope::namespaces(["a", "b"])
        );
        parts.extensions.insert(Scope::namespaces(["b", "c"]));
        assert_eq!(
            Scope::from_request_parts(&mut parts, &()).await.unwrap(),
            Scope::namespaces(["b"])
        );
        parts
            .headers
            .insert(SCOPE_HEADER, HeaderValue::from_static("{"));
        assert!(Scope::from_request_parts(&mut parts, &()).await.is_err());
    }

    #[tokio::test]
    async fn extractor_defaults_to_all() {
        let (mut parts, ()) = axum::http::Request::new(()).into_parts();
        assert_eq!(
            Scope::from_request_parts(&mut parts, &()).await.unwrap(),
            Scope::All
        );
        parts.extensions.insert(Scope::namespaces(["a"]));
        assert_eq!(
            Scope::from_request_parts(&mut parts, &()).await.unwrap(),
            Scope::namespaces(["a"])
        );
    }

    /// One document per (cluster, namespace) pair.
    fn two_clusters() -> Index {
        let mut builder = Schema::builder();
        let cluster = builder.add_text_field(CLUSTER_FIELD, STRING);
        let ns = builder.add_text_field(NAMESPACE_FIELD, STRING);
        let index = Index::create_in_ram(builder.build());
        let mut writer = index
            .writer_with_num_threads::<tantivy::TantivyDocument>(1, 15_000_000)
            .unwrap();
        for (c, n) in [("prod", "a"), ("prod", "b"), ("test", "a"), ("test", "")] {
            writer.add_document(doc!(cluster => c, ns => n)).unwrap();
        }
        writer.commit().unwrap();
        index
    }

    #[test]
    fn cluster_scopes_see_their_clusters_and_narrow_with_namespaces() {
        let clusters = two_clusters();
        let set = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
        let test = Scope::of(None, Some(set(&["test"])));
        assert_eq!(
            count(&clusters, &test),
            2,
            "cluster-scoped records of test too"
        );
        let test_a = Scope::of(Some(set(&["a"])), Some(set(&["test"])));
        assert_eq!(count(&clusters, &test_a), 1);
        assert_eq!(count(&clusters, &Scope::of(None, Some(set(&[])))), 0);
        // A cluster token narrowed by a namespace scope forwarded by a searcher, and back.
        assert_eq!(test.intersect(&Scope::namespaces(["a"])), test_a);
        assert_eq!(Scope::namespaces(["a"]).intersect(&test), test_a);
        assert_eq!(
            test.intersect(&Scope::of(None, Some(set(&["prod"])))),
            Scope::of(None, Some(set(&[])))
        );
        // The header round trip.
        let header = test_a.header_value().unwrap();
        assert_eq!(Scope::from_header(&header).unwrap(), test_a);
        // A schema without `cluster` shows nothing to a cluster scope.
        assert_eq!(count(&index(&["a"]), &test), 0);
    }
}
