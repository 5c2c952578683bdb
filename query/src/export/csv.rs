//! The CSV encoder: a header row of column names, then one row per record, RFC 4180 quoting
//! (fields with commas, quotes or line breaks are quoted, quotes doubled), `\n` line ends.
//!
//! Cells: strings as they are, timestamps in RFC 3339 with nine fractional digits, numbers and
//! booleans as JSON writes them, keyword lists and objects as JSON text, an absent value as an
//! empty cell.
//!
//! Each block is encoded on its own into a buffer (by the export's workers, or here) and then
//! written out: the quoting of a cell does not depend on what came before it.

use std::io::Write;
use std::sync::Arc;

use serde_json::{Map, Value};
use tantivy::TantivyDocument;

use crate::error::{Error, Result};
use crate::export::arrow::Layout;
use crate::export::{Block, Encode};

pub(crate) struct CsvEncoder<W: Write> {
    layout: Arc<Layout>,
    out: W,
    buf: Vec<u8>,
}

impl<W: Write> CsvEncoder<W> {
    /// Writes the header row.
    pub(crate) fn new(layout: Arc<Layout>, out: W) -> Result<CsvEncoder<W>> {
        let mut encoder = CsvEncoder {
            layout,
            out,
            buf: Vec::new(),
        };
        let mut writer = builder().from_writer(&mut encoder.buf);
        writer
            .write_record(encoder.layout.columns.iter().map(|c| c.name.as_str()))
            .map_err(csv_error)?;
        writer.flush().map_err(|e| csv_error(e.into()))?;
        drop(writer);
        // The header leaves with the first block, as it did when the writer buffered it.
        Ok(encoder)
    }

    /// Writes what is buffered and `bytes`, and flushes.
    fn send(&mut self, bytes: &[u8]) -> Result<()> {
        let header = std::mem::take(&mut self.buf);
        self.out
            .write_all(&header)
            .and_then(|()| self.out.write_all(bytes))
            .and_then(|()| self.out.flush())
            .map_err(|e| csv_error(e.into()))
    }
}

/// The rows of `docs`, appended to `out`: what [`CsvEncoder`] writes for them after its
/// header.
pub(crate) fn encode_docs(
    layout: &Layout,
    docs: &[TantivyDocument],
    out: &mut Vec<u8>,
) -> Result<()> {
    let Some(hits) = layout.hits.as_ref() else {
        return Err(Error::Internal("no record format for documents".into()));
    };
    let mut writer = builder().from_writer(out);
    for doc in docs {
        write_row(&mut writer, layout, &hits.to_json(doc))?;
    }
    writer.flush().map_err(|e| csv_error(e.into()))
}

/// The rows of flat records (an aggregation table), appended to `out`.
fn encode_rows(layout: &Layout, rows: &[Map<String, Value>], out: &mut Vec<u8>) -> Result<()> {
    let mut writer = builder().from_writer(out);
    for row in rows {
        write_row(&mut writer, layout, row)?;
    }
    writer.flush().map_err(|e| csv_error(e.into()))
}

/// The writer settings of every CSV export.
fn builder() -> csv::WriterBuilder {
    let mut builder = csv::WriterBuilder::new();
    builder
        .terminator(csv::Terminator::Any(b'\n'))
        .quote_style(csv::QuoteStyle::Necessary);
    builder
}

fn write_row<W: Write>(
    writer: &mut csv::Writer<W>,
    layout: &Layout,
    record: &Map<String, Value>,
) -> Result<()> {
    for column in &layout.columns {
        match record.get(&column.name) {
            None | Some(Value::Null) => writer.write_field(""),
            Some(Value::String(s)) => writer.write_field(s),
            Some(other) => writer.write_field(other.to_string()),
        }
        .map_err(csv_error)?;
    }
    writer.write_record(None::<&[u8]>).map_err(csv_error)
}

impl<W: Write> Encode for CsvEncoder<W> {
    fn write_docs(&mut self, docs: &[TantivyDocument]) -> Result<()> {
        let mut bytes = Vec::new();
        encode_docs(&self.layout, docs, &mut bytes)?;
        self.send(&bytes)
    }

    fn write_rows(&mut self, rows: &[Map<String, Value>]) -> Result<()> {
        let mut bytes = Vec::new();
        encode_rows(&self.layout, rows, &mut bytes)?;
        self.send(&bytes)
    }

    fn write_block(&mut self, block: Block) -> Result<()> {
        match block {
            Block::Text(bytes, _) => self.send(&bytes),
            Block::Batch(_) => Err(Error::Internal("a record batch for csv".into())),
        }
    }

    fn finish(mut self: Box<Self>) -> Result<()> {
        self.send(&[])
    }
}

fn csv_error(err: csv::Error) -> Error {
    Error::Internal(format!("writing csv: {err}"))
}
