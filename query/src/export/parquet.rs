//! The Parquet encoder: the Arrow columns of [`super::arrow`], zstd-compressed, written to the
//! output row group by row group as the export runs (never the whole file in memory).

use std::io::Write;
use std::sync::Arc;

use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::errors::ParquetError;
use parquet::file::properties::WriterProperties;
use serde_json::{Map, Value};
use tantivy::TantivyDocument;

use crate::error::{Error, Result};
use crate::export::arrow::Layout;
use crate::export::{Block, Encode};

/// Rows per row group. The library's default (a million) would keep a million encoded rows in
/// memory before the first byte leaves; 64k rows is large enough for good compression and
/// column statistics, small enough for readers to stream.
pub const ROW_GROUP_ROWS: usize = 64 * 1024;

/// A row group is also closed once its encoded, not yet written size reaches this, so that
/// wide rows (large messages or request objects) do not grow memory past it.
pub const ROW_GROUP_BYTES: usize = 32 * 1024 * 1024;

/// The writer settings of every Parquet export: zstd, row groups of [`ROW_GROUP_ROWS`].
pub(crate) fn properties() -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .set_max_row_group_size(ROW_GROUP_ROWS)
        .build()
}

/// Writes a Parquet file to `W` incrementally: the header at once, each row group when full,
/// the footer at the end.
pub(crate) struct ParquetEncoder<W: Write + Send> {
    layout: Arc<Layout>,
    writer: ArrowWriter<W>,
}

impl<W: Write + Send> ParquetEncoder<W> {
    pub(crate) fn new(layout: Arc<Layout>, out: W) -> Result<ParquetEncoder<W>> {
        let writer = ArrowWriter::try_new(out, Arc::clone(&layout.schema), Some(properties()))
            .map_err(parquet_error)?;
        Ok(ParquetEncoder { layout, writer })
    }

    fn write(&mut self, batch: &arrow_array::RecordBatch) -> Result<()> {
        self.writer.write(batch).map_err(parquet_error)?;
        if self.writer.in_progress_size() >= ROW_GROUP_BYTES {
            self.writer.flush().map_err(parquet_error)?;
        }
        Ok(())
    }
}

impl<W: Write + Send> Encode for ParquetEncoder<W> {
    fn write_docs(&mut self, docs: &[TantivyDocument]) -> Result<()> {
        let batch = self.layout.batch_of_docs(docs)?;
        self.write(&batch)
    }

    fn write_rows(&mut self, rows: &[Map<String, Value>]) -> Result<()> {
        let batch = self.layout.batch_of_rows(rows)?;
        self.write(&batch)
    }

    fn write_block(&mut self, block: Block) -> Result<()> {
        match block {
            Block::Batch(batch) => self.write(&batch),
            Block::Text(..) => Err(Error::Internal("text for parquet".into())),
        }
    }

    fn finish(mut self: Box<Self>) -> Result<()> {
        // Closes the last row group, writes the footer and flushes the output.
        self.writer.finish().map_err(parquet_error)?;
        Ok(())
    }
}

fn parquet_error(err: ParquetError) -> Error {
    Error::Internal(format!("writing parquet: {err}"))
}
