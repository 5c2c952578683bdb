//! The NDJSON encoder: one flat record (the same JSON a search hit is) per line.

use std::io::Write;
use std::sync::Arc;

use serde_json::{Map, Value};
use tantivy::TantivyDocument;

use crate::error::{Error, Result};
use crate::export::arrow::Layout;
use crate::export::{Block, Encode};

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
