//! `bool` with Elasticsearch's semantics (`filter` as `must`, `minimum_should_match`, a query
//! of `must_not` clauses only), and the wrapper that keeps `must_not` phrase scorers safe.

use serde_json::Value;
use tantivy::query::{
    AllQuery, BooleanQuery, EmptyQuery, EnableScoring, Explanation, Occur, Query, Scorer, Weight,
};
use tantivy::{DocId, DocSet, Score, SegmentReader};

use super::{field_obj, scalar_text, Translator};
use crate::elastic::error::{EsError, EsResult};

impl Translator<'_> {
    pub(super) fn bool_query(&self, body: &Value) -> EsResult<Box<dyn Query>> {
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
}

/// A `BooleanQuery` with Elasticsearch's semantics: every `must`, no `must_not`, and at least
/// `msm` of the `should` clauses. A query with only `must_not` clauses matches everything
/// else.
pub(super) fn boolean(
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
pub(super) fn minimum_should_match(spec: &Value, count: usize) -> EsResult<usize> {
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
