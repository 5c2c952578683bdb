//! WAL replay of one batch, without losing a record: a record that no longer validates (its
//! stream's `timestamp_format` or `numeric_fields` changed since it was acknowledged) is still
//! indexed, its raw text in the stream's full-text field and in its JSON field beside a marker
//! saying why (`_trawl_replay_error`); and a stream no longer configured while the log holds its
//! unsealed records stops the start, unless the operator named it in
//! `indexer.drop_unconfigured_streams`.

use std::collections::BTreeSet;

use tantivy::schema::{FieldType, OwnedValue};
use tantivy::{DateTime, TantivyDocument};

use crate::doc::Prepared;
use crate::entry::Batch;
use crate::metrics::Metrics;
use crate::schema::{DYNAMIC_FIELD, ID_FIELD, SOURCE_FIELD, TEXT_FIELD};
use crate::stream::Stream;
use crate::{Error, Result};

/// The key, in the JSON field of a record replayed in its raw form, that says why it no longer
/// fits its stream.
pub const REPLAY_ERROR_KEY: &str = "_trawl_replay_error";
/// The key holding the raw record beside [`REPLAY_ERROR_KEY`].
pub const REPLAY_RAW_KEY: &str = "_trawl_raw";

/// Where a record that no longer validates goes, by kind of stream: the first JSON field and the
/// first text field of these that the schema has.
const JSON_FIELDS: [&str; 3] = [DYNAMIC_FIELD, "attributes", "annotations"];
const TEXT_FIELDS: [&str; 3] = [TEXT_FIELD, "message", "status_message"];

/// The documents of a replayed batch: every record, the ones that no longer validate in their
/// raw form (counted in `trawl_indexer_replay_unfit_records` and logged); the client's ids put
/// back on their documents.
pub(crate) fn batch_docs(stream: &Stream, batch: &Batch, metrics: &Metrics) -> Vec<Prepared> {
    let id_field = stream.schema.get_field(ID_FIELD).ok();
    let source_field = stream.schema.get_field(SOURCE_FIELD).ok();
    let mut sources = batch.record_sources();
    let mut ids = batch.ids.iter().peekable();
    let mut unfit = 0u64;
    let mut first_reason = None;
    let mut docs = Vec::with_capacity(batch.records.len());
    for (i, line) in batch.records.iter().enumerate() {
        let source = sources.next().flatten();
        let mut prepared = match stream.builder.prepare(line, batch.received_at) {
            Ok(prepared) => prepared,
            Err(reason) => {
                unfit += 1;
                let doc = raw_doc(stream, line, &reason, batch.received_at);
                first_reason.get_or_insert(reason);
                match doc {
                    Some(doc) => doc,
                    None => continue,
                }
            }
        };
        while let Some((record, id)) = ids.peek() {
            if *record as usize > i {
                break;
            }
            if *record as usize == i {
                if let Some(field) = id_field {
                    prepared.doc.add_text(field, id);
                }
            }
            ids.next();
        }
        if let (Some(field), Some(source)) = (source_field, source) {
            prepared.doc.add_text(field, source);
        }
        docs.push(prepared);
    }
    if unfit > 0 {
        metrics.replay_unfit(&stream.spec.name, unfit);
        tracing::error!(
            stream = %stream.spec.name,
            records = unfit,
            reason = %first_reason.unwrap_or_default(),
            "acknowledged records no longer fit their stream (its configuration changed): \
             indexed raw, marked with {REPLAY_ERROR_KEY}"
        );
    }
    docs
}

/// A record that no longer validates as a document: the receive time, the raw text searchable
/// in full text, and a JSON object with the reason and the raw text. `None` only if the schema
/// has neither a JSON nor a text field (no stream of Trawl is such).
fn raw_doc(stream: &Stream, line: &[u8], reason: &str, received_at: i64) -> Option<Prepared> {
    let schema = &stream.schema;
    let raw = String::from_utf8_lossy(line).into_owned();
    let json = JSON_FIELDS.iter().find_map(|name| {
        let field = schema.get_field(name).ok()?;
        matches!(
            schema.get_field_entry(field).field_type(),
            FieldType::JsonObject(_)
        )
        .then_some(field)
    });
    let text = TEXT_FIELDS.iter().find_map(|name| {
        let field = schema.get_field(name).ok()?;
        matches!(
            schema.get_field_entry(field).field_type(),
            FieldType::Str(_)
        )
        .then_some(field)
    });
    if json.is_none() && text.is_none() {
        return None;
    }
    let mut doc = TantivyDocument::new();
    if let Some(field) = json {
        let object = vec![
            (
                REPLAY_ERROR_KEY.to_string(),
                OwnedValue::Str(reason.to_string()),
            ),
            (REPLAY_RAW_KEY.to_string(), OwnedValue::Str(raw.clone())),
        ];
        doc.add_field_value(field, &OwnedValue::Object(object));
    }
    if let Some(field) = text {
        doc.add_text(field, &raw);
    }
    if let Ok(field) = schema.get_field("timestamp") {
        doc.add_date(field, DateTime::from_timestamp_nanos(received_at));
    }
    Some(Prepared {
        doc,
        timestamp: received_at,
        id: None,
    })
}

/// Refuses to start when the WAL holds unsealed records of streams no longer configured, unless
/// each is named in `indexer.drop_unconfigured_streams`. `unconfigured` are those streams.
pub(crate) fn check_unconfigured(
    unconfigured: &BTreeSet<String>,
    allowed_to_drop: &[String],
) -> Result<()> {
    let refused: Vec<&str> = unconfigured
        .iter()
        .filter(|s| !allowed_to_drop.contains(s))
        .map(String::as_str)
        .collect();
    if refused.is_empty() {
        return Ok(());
    }
    let names = refused.join(", ");
    let list = refused
        .iter()
        .map(|s| format!("\"{s}\""))
        .collect::<Vec<_>>()
        .join(", ");
    Err(Error::InvalidArgument(format!(
        "the write-ahead log holds unsealed records of stream(s) {names}, which the \
         configuration no longer declares: declare them again under [streams.<name>], or drop \
         their unsealed records explicitly with indexer.drop_unconfigured_streams = [{list}] \
         (TRAWL_INDEXER__DROP_UNCONFIGURED_STREAMS='[{}]')",
        refused.join(",")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unconfigured_streams_stop_the_start_unless_dropped() {
        let streams: BTreeSet<String> = ["gone".to_string(), "old".to_string()].into();
        let err = check_unconfigured(&streams, &["old".into()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("stream(s) gone,"), "{err}");
        assert!(
            err.contains("indexer.drop_unconfigured_streams = [\"gone\"]"),
            "{err}"
        );
        assert!(check_unconfigured(&streams, &["old".into(), "gone".into()]).is_ok());
        assert!(check_unconfigured(&BTreeSet::new(), &[]).is_ok());
    }
}
