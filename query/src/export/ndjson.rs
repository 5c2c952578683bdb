//! The NDJSON encoder: one flat record (the same JSON a search hit is) per line.

use std::io::Write;
use std::sync::Arc;

use serde_json::{Map, Value};
use tantivy::schema::Field;
use tantivy::store::StoreReader;
use tantivy::TantivyDocument;

use crate::error::{Error, Result};
use crate::export::arrow::Layout;
use crate::export::raw::{self, RawBlock, Style};
use crate::export::{Block, Encode};
use crate::hit::HitFormat;

pub(crate) struct NdjsonEncoder<W: Write> {
    layout: Arc<Layout>,
    out: W,
}

impl<W: Write> NdjsonEncoder<W> {
    pub(crate) fn new(layout: Arc<Layout>, out: W) -> NdjsonEncoder<W> {
        NdjsonEncoder { layout, out }
    }

    fn line(&mut self, record: &Map<String, Value>) -> Result<()> {
        serde_json::to_writer(&mut self.out, record).map_err(|e| io_error(e.into()))?;
        self.out.write_all(b"\n").map_err(io_error)
    }
}

/// The lines of `docs`, appended to `out`: what [`NdjsonEncoder`] writes for them.
pub(crate) fn encode_docs(
    layout: &Layout,
    docs: &[TantivyDocument],
    out: &mut Vec<u8>,
) -> Result<()> {
    let Some(hits) = layout.hits.as_ref() else {
        return Err(Error::Internal("no record format for documents".into()));
    };
    for doc in docs {
        serde_json::to_writer(&mut *out, &hits.to_json(doc)).map_err(|e| io_error(e.into()))?;
        out.push(b'\n');
    }
    Ok(())
}

/// The lines of the documents of `block` (read in place for `fields`, a plain stream's
/// [`HitFormat::sorted_fields`]): the bytes [`encode_docs`] writes for them, without building
/// each record as a map. A row whose values [`raw`] does not write is decoded by tantivy and
/// written as [`encode_docs`] writes it.
pub(crate) fn encode_raw(
    hits: &HitFormat,
    fields: &[(Field, String, bool)],
    block: &RawBlock,
    stores: &[&StoreReader],
    out: &mut Vec<u8>,
) -> Result<()> {
    for row in 0..block.rows() {
        let start = out.len();
        if !block.unread(row)
            && write_record(fields, block, row, out).is_some()
            && out
                .get(start..)
                .is_some_and(|line| std::str::from_utf8(line).is_ok())
        {
            out.push(b'\n');
            continue;
        }
        out.truncate(start);
        let doc = block.document(stores, row)?;
        serde_json::to_writer(&mut *out, &hits.to_json(&doc)).map_err(|e| io_error(e.into()))?;
        out.push(b'\n');
    }
    Ok(())
}

/// One record: each field with a value, in key order; a list field, or a field with several
/// values, as an array.
fn write_record(
    fields: &[(Field, String, bool)],
    block: &RawBlock,
    row: usize,
    out: &mut Vec<u8>,
) -> Option<()> {
    out.push(b'{');
    let mut first = true;
    for (field, name, list) in fields {
        let mut values = block.values(row, *field);
        let Some(value) = values.next() else {
            continue;
        };
        let second = values.next();
        if !first {
            out.push(b',');
        }
        first = false;
        raw::write_json_str(name.as_bytes(), out);
        out.push(b':');
        match (second, list) {
            (None, false) => raw::write_json(value, Style::Hit, out)?,
            (second, _) => {
                raw::write_array(std::iter::once(value).chain(second).chain(values), out)?
            }
        }
    }
    out.push(b'}');
    Some(())
}

impl<W: Write> Encode for NdjsonEncoder<W> {
    fn write_docs(&mut self, docs: &[TantivyDocument]) -> Result<()> {
        let layout = Arc::clone(&self.layout);
        let Some(hits) = layout.hits.as_ref() else {
            return Err(Error::Internal("no record format for documents".into()));
        };
        for doc in docs {
            self.line(&hits.to_json(doc))?;
        }
        self.out.flush().map_err(io_error)
    }

    fn write_block(&mut self, block: Block) -> Result<()> {
        match block {
            Block::Text(bytes, _) => {
                self.out.write_all(&bytes).map_err(io_error)?;
                self.out.flush().map_err(io_error)
            }
            Block::Batch(_) => Err(Error::Internal("a record batch for ndjson".into())),
        }
    }

    fn write_rows(&mut self, rows: &[Map<String, Value>]) -> Result<()> {
        for row in rows {
            self.line(row)?;
        }
        self.out.flush().map_err(io_error)
    }

    fn finish(mut self: Box<Self>) -> Result<()> {
        self.out.flush().map_err(io_error)
    }
}

fn io_error(err: std::io::Error) -> Error {
    Error::Internal(format!("writing ndjson: {err}"))
}
