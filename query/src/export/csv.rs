//! The CSV encoder: a header row of column names, then one row per record, RFC 4180 quoting
//! (fields with commas, quotes or line breaks are quoted, quotes doubled), `\n` line ends.
//!
//! Cells: strings as they are, timestamps in RFC 3339 with nine fractional digits, numbers and
//! booleans as JSON writes them, keyword lists and objects as JSON text, an absent value as an
//! empty cell.

use std::io::Write;
use std::sync::Arc;

use serde_json::{Map, Value};
use tantivy::TantivyDocument;

use crate::error::{Error, Result};
use crate::export::arrow::Layout;
use crate::export::Encode;

pub(crate) struct CsvEncoder<W: Write> {
    layout: Arc<Layout>,
    writer: csv::Writer<W>,
}

impl<W: Write> CsvEncoder<W> {
    /// Writes the header row.
    pub(crate) fn new(layout: Arc<Layout>, out: W) -> Result<CsvEncoder<W>> {
        let mut writer = csv::WriterBuilder::new()
            .terminator(csv::Terminator::Any(b'\n'))
            .quote_style(csv::QuoteStyle::Necessary)
            .from_writer(out);
        writer
            .write_record(layout.columns.iter().map(|c| c.name.as_str()))
            .map_err(csv_error)?;
        Ok(CsvEncoder { layout, writer })
    }

    fn row(&mut self, record: &Map<String, Value>) -> Result<()> {
        for column in &self.layout.columns {
            match record.get(&column.name) {
                None | Some(Value::Null) => self.writer.write_field(""),
                Some(Value::String(s)) => self.writer.write_field(s),
                Some(other) => self.writer.write_field(other.to_string()),
            }
            .map_err(csv_error)?;
        }
        self.writer.write_record(None::<&[u8]>).map_err(csv_error)
    }
}

impl<W: Write> Encode for CsvEncoder<W> {
    fn write_docs(&mut self, docs: &[TantivyDocument]) -> Result<()> {
        let layout = Arc::clone(&self.layout);
        let Some(hits) = layout.hits.as_ref() else {
            return Err(Error::Internal("no record format for documents".into()));
        };
        for doc in docs {
            self.row(&hits.to_json(doc))?;
        }
        self.writer.flush().map_err(|e| csv_error(e.into()))
    }

    fn write_rows(&mut self, rows: &[Map<String, Value>]) -> Result<()> {
        for row in rows {
            self.row(row)?;
        }
        self.writer.flush().map_err(|e| csv_error(e.into()))
    }

    fn finish(mut self: Box<Self>) -> Result<()> {
        self.writer.flush().map_err(|e| csv_error(e.into()))
    }
}

fn csv_error(err: csv::Error) -> Error {
    Error::Internal(format!("writing csv: {err}"))
}
