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
use tantivy::schema::Field;
use tantivy::store::StoreReader;
use tantivy::TantivyDocument;
use trawl_model::Timestamp;

use crate::error::{Error, Result};
use crate::export::arrow::Layout;
use crate::export::raw::{self, RawBlock, Style};
use crate::export::{Block, Encode};
use crate::hit::HitFormat;

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

/// The rows of the documents of `block` (read in place for `fields`, a plain stream's
/// [`HitFormat::sorted_fields`]): the bytes [`encode_docs`] writes for them, without building
/// each record as a map. A row holding a value [`raw`] does not write is decoded by tantivy
/// and written as [`encode_docs`] writes it.
pub(crate) fn encode_raw(
    layout: &Layout,
    hits: &HitFormat,
    fields: &[(Field, String, bool)],
    block: &RawBlock,
    stores: &[&StoreReader],
    out: &mut Vec<u8>,
) -> Result<()> {
    // Each column's field and whether it is a list; `None`: no value in any record.
    let columns: Vec<Option<(Field, bool)>> = layout
        .columns
        .iter()
        .map(|c| {
            let field = c.field()?;
            fields
                .iter()
                .find(|(f, _, _)| *f == field)
                .map(|(f, _, list)| (*f, *list))
        })
        .collect();
    let mut writer = builder().from_writer(out);
    let mut cells = Vec::new();
    let mut ends = Vec::with_capacity(columns.len());
    for row in 0..block.rows() {
        let read = !block.unread(row) && row_cells(&columns, block, row, &mut cells, &mut ends);
        if !read {
            let doc = block.document(stores, row)?;
            write_row(&mut writer, layout, &hits.to_json(&doc))?;
            continue;
        }
        let mut start = 0;
        for &end in &ends {
            writer
                .write_field(cells.get(start..end).unwrap_or_default())
                .map_err(csv_error)?;
            start = end;
        }
        writer.write_record(None::<&[u8]>).map_err(csv_error)?;
    }
    writer.flush().map_err(|e| csv_error(e.into()))
}

/// The cells of one row into `cells` (each ending at its `ends`), as [`write_row`] writes the
/// row's record: a string as it is, null or nothing as an empty cell, anything else as JSON
/// text. False when a value is not one [`raw`] writes, or not UTF-8.
fn row_cells(
    columns: &[Option<(Field, bool)>],
    block: &RawBlock,
    row: usize,
    cells: &mut Vec<u8>,
    ends: &mut Vec<usize>,
) -> bool {
    cells.clear();
    ends.clear();
    for column in columns {
        let start = cells.len();
        if let Some((field, list)) = *column {
            let mut values = block.values(row, field);
            if let Some(value) = values.next() {
                let second = values.next();
                let written = match (second, list) {
                    (None, false) => match raw::as_str(value) {
                        // A string cell holds the text itself (checked as UTF-8 already).
                        Some(text) => {
                            cells.extend_from_slice(text.as_bytes());
                            ends.push(cells.len());
                            continue;
                        }
                        None if raw::type_code(value) == Some(raw::code::NULL) => Some(()),
                        // A date cell is its RFC 3339 text.
                        None if raw::type_code(value) == Some(raw::code::DATE) => {
                            raw::as_date_nanos(value).map(|nanos| {
                                cells.extend_from_slice(Timestamp(nanos).to_rfc3339().as_bytes())
                            })
                        }
                        // A value whose JSON is null (a NaN) is an empty cell, as a null is.
                        None => raw::write_json(value, Style::Hit, cells).map(|()| {
                            if cells.get(start..) == Some(b"null".as_slice()) {
                                cells.truncate(start);
                            }
                        }),
                    },
                    (second, _) => {
                        raw::write_array(std::iter::once(value).chain(second).chain(values), cells)
                    }
                };
                let utf8 = cells
                    .get(start..)
                    .is_some_and(|cell| std::str::from_utf8(cell).is_ok());
                if written.is_none() || !utf8 {
                    return false;
                }
            }
        }
        ends.push(cells.len());
    }
    true
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
