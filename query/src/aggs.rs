//! Elasticsearch-syntax aggregations computed per target as tantivy intermediate results,
//! merged across targets and finalised once, under a memory and bucket budget shared by the
//! whole request.

use tantivy::aggregation::agg_req::Aggregations;
use tantivy::aggregation::intermediate_agg_result::IntermediateAggregationResults;
use tantivy::aggregation::{
    AggContextParams, AggregationError, AggregationLimitsGuard, AggregationSegmentCollector,
};
use tantivy::tokenizer::TokenizerManager;
use tantivy::{SegmentOrdinal, SegmentReader, TantivyError};

use crate::error::{Error, Result};
use crate::request::QueryLimits;

/// Parses the `aggs` of a request body (Elasticsearch aggregation syntax: `terms`,
/// `date_histogram`, `histogram`, `range`, `stats`, `extended_stats`, `percentiles`,
/// `cardinality`, `avg`, `min`, `max`, `sum`, `value_count`, `top_hits`, `filter`, ... with
/// nested `aggs`). Anything tantivy does not understand is an [`Error::InvalidAggregation`].
pub fn parse_aggs(value: serde_json::Value) -> Result<Aggregations> {
    if !value.is_object() {
        return Err(Error::InvalidAggregation(
            "`aggs` must be an object of named aggregations".to_string(),
        ));
    }
    check_date_intervals(&value)?;
    serde_json::from_value(value).map_err(|err| Error::InvalidAggregation(err.to_string()))
}

/// Refuses a `date_histogram` `fixed_interval` or `offset` whose length overflows
/// nanoseconds: tantivy multiplies the number by its unit unchecked (a panic in a debug build,
/// a wrapped interval in a release one), so the bound is checked here first.
fn check_date_intervals(value: &serde_json::Value) -> Result<()> {
    let serde_json::Value::Object(map) = value else {
        if let serde_json::Value::Array(items) = value {
            return items.iter().try_for_each(check_date_intervals);
        }
        return Ok(());
    };
    if let Some(histogram) = map.get("date_histogram") {
        for key in ["fixed_interval", "interval", "offset"] {
            if let Some(text) = histogram.get(key).and_then(serde_json::Value::as_str) {
                if !interval_fits(text) {
                    return Err(Error::InvalidAggregation(format!(
                        "date_histogram `{key}` `{}` is out of range",
                        text.chars().take(64).collect::<String>()
                    )));
                }
            }
        }
    }
    map.values().try_for_each(check_date_intervals)
}

/// Whether tantivy's reading of an interval (`[+-]<digits><unit>`) stays within `i64`
/// nanoseconds; text it would refuse anyway (no digits, an unknown unit) passes.
fn interval_fits(text: &str) -> bool {
    let unsigned = text.strip_prefix(['+', '-']).unwrap_or(text);
    let digits = unsigned.bytes().take_while(u8::is_ascii_digit).count();
    let Ok(number) = unsigned[..digits].parse::<i64>() else {
        return true;
    };
    let unit_ms: i64 = match &unsigned[digits..] {
        "ms" | "milliseconds" => 1,
        "s" | "seconds" => 1_000,
        "m" | "minutes" => 60_000,
        "h" | "hours" => 3_600_000,
        "d" | "days" => 86_400_000,
        _ => return true,
    };
    number
        .checked_mul(unit_ms)
        .and_then(|ms| ms.checked_mul(1_000_000))
        .is_some()
}

/// One aggregation request being executed: the request and the limits shared by every segment
/// of every target it visits.
pub(crate) struct AggRun {
    aggs: Aggregations,
    context: AggContextParams,
}

impl AggRun {
    /// Prepares `aggs` under `limits`; `tokenizers` serve `filter` aggregations' query strings.
    pub(crate) fn new(
        aggs: &Aggregations,
        limits: &QueryLimits,
        tokenizers: TokenizerManager,
    ) -> AggRun {
        let guard = AggregationLimitsGuard::new(
            Some(limits.aggregation_memory_bytes),
            Some(limits.aggregation_bucket_limit),
        );
        AggRun {
            aggs: aggs.clone(),
            context: AggContextParams::new(guard, tokenizers),
        }
    }

    /// A collector for one segment; fails when the request does not fit the segment's schema
    /// (a field that is not fast, a metric on a text field).
    pub(crate) fn segment_collector(
        &self,
        ord: SegmentOrdinal,
        reader: &SegmentReader,
    ) -> Result<AggregationSegmentCollector> {
        AggregationSegmentCollector::from_agg_req_and_reader(&self.aggs, reader, ord, &self.context)
            .map_err(map_agg_error)
    }

    /// Merges per-segment (or per-target) intermediate results into one.
    pub(crate) fn merge(
        parts: impl IntoIterator<Item = IntermediateAggregationResults>,
    ) -> Result<IntermediateAggregationResults> {
        let mut merged: Option<IntermediateAggregationResults> = None;
        for part in parts {
            match merged.as_mut() {
                None => merged = Some(part),
                Some(acc) => acc.merge_fruits(part).map_err(map_agg_error)?,
            }
        }
        Ok(merged.unwrap_or_default())
    }

    /// The final Elasticsearch-shaped JSON of merged intermediate results. The bucket limit is
    /// checked here, on what would be returned.
    pub(crate) fn finish(
        &self,
        merged: IntermediateAggregationResults,
    ) -> Result<serde_json::Value> {
        let results = merged
            .into_final_result(self.aggs.clone(), self.context.limits.clone())
            .map_err(map_agg_error)?;
        serde_json::to_value(results)
            .map_err(|err| Error::Internal(format!("serialising aggregations: {err}")))
    }
}

/// Maps a tantivy error raised while aggregating: over the limits is
/// [`Error::TooExpensive`], a request that does not fit the schema is
/// [`Error::InvalidAggregation`], anything else internal.
pub(crate) fn map_agg_error(err: TantivyError) -> Error {
    match err {
        TantivyError::AggregationError(agg) => match agg {
            AggregationError::MemoryExceeded { limit, current } => Error::TooExpensive(format!(
                "aggregations need more than the {} bytes allowed (reached {}): narrow the \
                 time range or the query, or lower `size`",
                limit.get_bytes(),
                current.get_bytes()
            )),
            AggregationError::BucketLimitExceeded { limit, current } => {
                Error::TooExpensive(format!(
                    "aggregations would return {current} buckets, more than the {limit} allowed"
                ))
            }
            AggregationError::InvalidRequest(message) => Error::InvalidAggregation(message),
            AggregationError::DateHistogramParseError(parse) => {
                Error::InvalidAggregation(parse.to_string())
            }
            AggregationError::InternalError(message) => Error::Internal(message),
        },
        TantivyError::FieldNotFound(field) => {
            Error::InvalidAggregation(format!("field `{field}` does not exist"))
        }
        TantivyError::InvalidArgument(message) | TantivyError::SchemaError(message) => {
            Error::InvalidAggregation(message)
        }
        other => Error::Internal(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: a huge `fixed_interval` overflowed inside tantivy (a panic, answered 500).
    #[test]
    fn overflowing_date_intervals_are_refused() {
        for (key, text) in [
            ("fixed_interval", "9223372036854775807d"),
            ("fixed_interval", "106751992d"),
            ("offset", "-9223372036854775807ms"),
        ] {
            let mut histogram = serde_json::json!({"field": "timestamp", "fixed_interval": "1d"});
            histogram[key] = serde_json::json!(text);
            let aggs = serde_json::json!({"outer": {"terms": {"field": "level"},
                "aggs": {"t": {"date_histogram": histogram}}}});
            let err = parse_aggs(aggs).unwrap_err();
            assert!(
                matches!(&err, Error::InvalidAggregation(m) if m.contains("out of range")),
                "{key}={text}: {err:?}"
            );
        }
        let fine = serde_json::json!({"t": {"date_histogram": {"field": "timestamp",
            "fixed_interval": "106751d", "offset": "-1h"}}});
        assert!(parse_aggs(fine).is_ok());
    }

    #[test]
    fn parses_elasticsearch_syntax() {
        let aggs = parse_aggs(serde_json::json!({
            "by_level": {
                "terms": {"field": "level", "size": 5},
                "aggs": {"per_minute": {"date_histogram": {"field": "timestamp", "fixed_interval": "1m"}}}
            },
            "offsets": {"stats": {"field": "offset"}}
        }))
        .unwrap();
        assert_eq!(aggs.len(), 2);
        assert_eq!(aggs["by_level"].sub_aggregation.len(), 1);
    }

    #[test]
    fn refuses_what_tantivy_does_not_know() {
        let err =
            parse_aggs(serde_json::json!({"x": {"no_such_agg": {"field": "level"}}})).unwrap_err();
        assert!(matches!(err, Error::InvalidAggregation(_)), "{err}");
        let err = parse_aggs(serde_json::json!(["terms"])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid aggregation: `aggs` must be an object of named aggregations"
        );
    }

    #[test]
    fn limit_errors_are_too_expensive() {
        let err = map_agg_error(TantivyError::AggregationError(
            AggregationError::BucketLimitExceeded {
                limit: 10,
                current: 11,
            },
        ));
        assert_eq!(
            err.to_string(),
            "query too expensive: aggregations would return 11 buckets, more than the 10 allowed"
        );
    }
}
