//! The baseline: tantivy alone indexing the same `logs` NDJSON with the same schema, in this
//! process, with tantivy's default index settings and writer threads, one commit at the end.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};
use tantivy::schema::{Field, Schema};
use tantivy::{DateTime, Index, TantivyDocument};
use trawl_model::schema::{FieldDef, FieldKind};
use trawl_model::Timestamp;

use crate::corpus::Batch;
use crate::proc::{dir_size, self_cpu_secs};
use crate::Result;

/// What the raw run measured.
#[derive(Debug, Clone, Copy)]
pub struct RawReport {
    pub docs: u64,
    pub raw_bytes: u64,
    pub wall: Duration,
    /// CPU seconds of this process during the run.
    pub cpu_secs: f64,
    /// Index directory size after the commit.
    pub index_bytes: u64,
    /// Lines that did not convert (should be 0).
    pub skipped: u64,
}

/// Indexes `batches` into a new index in `dir` with `fields`' schema and a writer of
/// `memory_bytes` (tantivy's default thread count), committing once at the end.
pub fn index(
    batches: &[Batch],
    fields: &[FieldDef],
    dir: &Path,
    memory_bytes: usize,
) -> Result<RawReport> {
    let schema = trawl_indexer::schema::build_schema(fields);
    let index = Index::create_in_dir(dir, schema.clone())?;
    let lookup: Vec<(FieldDef, Field)> = fields
        .iter()
        .filter_map(|def| schema.get_field(def.name()).ok().map(|f| (def.clone(), f)))
        .collect();
    let cpu0 = self_cpu_secs()?;
    let start = Instant::now();
    let mut writer: tantivy::IndexWriter = index.writer(memory_bytes)?;
    let (mut docs, mut raw_bytes, mut skipped) = (0u64, 0u64, 0u64);
    for batch in batches {
        raw_bytes += batch.ndjson.len() as u64;
        for line in batch
            .ndjson
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
        {
            match to_document(line, &lookup, &schema) {
                Some(doc) => {
                    writer.add_document(doc)?;
                    docs += 1;
                }
                None => skipped += 1,
            }
        }
    }
    writer.commit()?;
    writer.wait_merging_threads()?;
    let wall = start.elapsed();
    let cpu_secs = self_cpu_secs()? - cpu0;
    Ok(RawReport {
        docs,
        raw_bytes,
        wall,
        cpu_secs,
        index_bytes: dir_size(dir),
        skipped,
    })
}

/// One flat JSON record as a document, by field kind; `None` for a line that is not a JSON
/// object. Unknown keys are ignored (the corpus has none).
fn to_document(
    line: &[u8],
    fields: &[(FieldDef, Field)],
    _schema: &Schema,
) -> Option<TantivyDocument> {
    let map: Map<String, Value> = serde_json::from_slice(line).ok()?;
    let mut doc = TantivyDocument::new();
    for (key, value) in map {
        let Some((def, field)) = fields.iter().find(|(d, _)| d.name == key) else {
            continue;
        };
        match (def.kind, value) {
            (FieldKind::Timestamp, Value::String(s)) => {
                let ts = Timestamp::parse_rfc3339(&s).ok()?;
                doc.add_date(*field, DateTime::from_timestamp_nanos(ts.nanos()));
            }
            (FieldKind::Keyword | FieldKind::KeywordList | FieldKind::Text, Value::String(s)) => {
                doc.add_text(*field, s);
            }
            (FieldKind::U64, Value::Number(n)) => doc.add_u64(*field, n.as_u64()?),
            (FieldKind::I64, Value::Number(n)) => doc.add_i64(*field, n.as_i64()?),
            (FieldKind::F64, Value::Number(n)) => doc.add_f64(*field, n.as_f64()?),
            (FieldKind::Bool, Value::Bool(b)) => doc.add_bool(*field, b),
            _ => {}
        }
    }
    Some(doc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::corpus::{batches, logs::LogGenerator};

    #[test]
    fn indexes_every_generated_record() {
        let mut gen = LogGenerator::new(1, "bench", 50, 1000.0);
        let b = batches(&mut gen, 300_000, 100_000);
        let docs: usize = b.iter().map(|b| b.docs).sum();
        let dir = tempfile::tempdir().unwrap();
        let report = index(&b, trawl_model::schema::LOG_FIELDS, dir.path(), 15_000_000).unwrap();
        assert_eq!(report.docs, docs as u64);
        assert_eq!(report.skipped, 0);
        assert!(report.index_bytes > 0);
    }
}
