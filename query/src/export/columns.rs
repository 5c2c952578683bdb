//! The columnar reader of an export: one segment's columns of a block of documents, read from
//! the columnar store where the field is a fast field of the kind the column holds, and from
//! the doc store (one decode per document, no intermediate JSON) only for the other columns.
//!
//! | column | read from |
//! |---|---|
//! | timestamp, `u64` / `i64` / `f64` / bool fields | the fast field's column (its first value) |
//! | keyword, keyword list (raw-tokenised fast `str` fields) | the term ordinals: those not seen before in the segment, sorted, looked up in one pass over the column's dictionary and kept (dictionaries of up to 64k terms) |
//! | text (`message`), objects, anything else | the doc store, read in place ([`super::raw`]: strings borrowed from the decompressed block, objects written as JSON from their stored bytes) |
//!
//! A fast field holds exactly what the doc store holds for these kinds: the raw tokenizer
//! records the string as it is, values keep their order within a document, and dates are
//! stored at the field's own (nanosecond) precision. Which source a column uses is decided per
//! segment from that segment's own schema, so a segment written before a field became fast is
//! read from its doc store. The output equals [`super::arrow::Layout::batch_of_docs`] over the
//! same documents (checked by the tests).

use arrow_array::RecordBatch;
use tantivy::columnar::{Column, StrColumn};
use tantivy::schema::{Field, FieldType, Schema};
use tantivy::store::StoreReader;
use tantivy::{DateTime, DocId, SegmentReader};
use trawl_index::schema::RAW_TOKENIZER;

use crate::error::{Error, Result};
use crate::export::arrow::{Column as LayoutColumn, ColumnBuilder, ColumnType, Layout};
use crate::export::raw::RawBlock;

/// Where one column of one segment comes from.
enum Source {
    Date(Option<Column<DateTime>>),
    U64(Option<Column<u64>>),
    I64(Option<Column<i64>>),
    F64(Option<Column<f64>>),
    Bool(Option<Column<bool>>),
    /// A keyword: its first value.
    Str(Option<Terms>),
    /// A keyword list: every value, in order.
    StrList(Option<Terms>),
    /// The doc store.
    Stored,
}

/// The columns of one segment, opened for a layout.
pub(crate) struct SegmentColumns {
    sources: Vec<Source>,
    /// Open when some column is read from the doc store.
    store: Option<StoreReader>,
    /// The fields of the columns read from the doc store.
    stored_fields: Vec<Field>,
}

impl SegmentColumns {
    /// Opens the columns of `layout` over `reader`. `open_store` opens the segment's doc store
    /// (it is called only when some column needs it). `fast` false reads every column from the
    /// doc store (the simple path, for comparison).
    pub(crate) fn open(
        layout: &Layout,
        reader: &SegmentReader,
        open_store: impl FnOnce() -> Result<StoreReader>,
        fast: bool,
    ) -> Result<SegmentColumns> {
        let schema = reader.schema();
        let mut sources = Vec::with_capacity(layout.columns.len());
        for column in &layout.columns {
            let source = match fast {
                true => fast_source(schema, reader, column)?,
                false => None,
            };
            sources.push(source.unwrap_or(Source::Stored));
        }
        let mut stored_fields = Vec::new();
        for (column, source) in layout.columns.iter().zip(&sources) {
            if let (Source::Stored, Some(field)) = (source, column.field()) {
                if !stored_fields.contains(&field) {
                    stored_fields.push(field);
                }
            }
        }
        let store = match sources.iter().any(|s| matches!(s, Source::Stored)) {
            true => Some(open_store()?),
            false => None,
        };
        Ok(SegmentColumns {
            sources,
            store,
            stored_fields,
        })
    }

    /// Whether this segment reads the doc store at all.
    #[cfg(test)]
    pub(crate) fn reads_store(&self) -> bool {
        self.store.is_some()
    }

    /// The record batch of `docs` (ids of this segment, in the order wanted).
    pub(crate) fn batch(&mut self, layout: &Layout, docs: &[DocId]) -> Result<RecordBatch> {
        let mut stored = match &self.store {
            Some(store) => Some((store, RawBlock::read(store, docs, &self.stored_fields)?)),
            None => None,
        };
        let mut arrays = Vec::with_capacity(layout.columns.len());
        let mut scratch = Scratch::default();
        for (column, source) in layout.columns.iter().zip(&mut self.sources) {
            let mut builder = match (&*source, &stored, column.field()) {
                // Room for the block's bytes of the field, and a quarter more for JSON text.
                (Source::Stored, Some((_, block)), Some(field)) => {
                    let bytes = block.bytes_of(field);
                    ColumnBuilder::with_capacity(column.ty, docs.len(), bytes + bytes / 4)
                }
                _ => ColumnBuilder::new(column.ty, docs.len()),
            };
            let stored = stored.as_mut().map(|(store, block)| (*store, block));
            fill(&mut builder, column, source, docs, stored, &mut scratch)?;
            arrays.push(builder.finish());
        }
        layout.batch(arrays, docs.len())
    }
}

/// The fast-field source of `column` in a segment of `schema`; `None` when it must be read
/// from the doc store.
fn fast_source(
    schema: &Schema,
    reader: &SegmentReader,
    column: &LayoutColumn,
) -> Result<Option<Source>> {
    let Some(field) = column.field() else {
        return Ok(None);
    };
    // The segment's own schema, by name: the same field, fast there too.
    match schema.get_field(&column.name) {
        Ok(same) if same == field => {}
        _ => return Ok(None),
    }
    let entry = schema.get_field_entry(field);
    if !entry.is_fast() {
        return Ok(None);
    }
    let fast = reader.fast_fields();
    let name = column.name.as_str();
    let source = match (entry.field_type(), column.ty) {
        (FieldType::Date(_), ColumnType::Timestamp) => {
            Source::Date(fast.column_opt(name).map_err(internal)?)
        }
        (FieldType::U64(_), ColumnType::UInt64) => {
            Source::U64(fast.column_opt(name).map_err(internal)?)
        }
        (FieldType::I64(_), ColumnType::Int64) => {
            Source::I64(fast.column_opt(name).map_err(internal)?)
        }
        (FieldType::F64(_), ColumnType::Float64) => {
            Source::F64(fast.column_opt(name).map_err(internal)?)
        }
        (FieldType::Bool(_), ColumnType::Boolean) => {
            Source::Bool(fast.column_opt(name).map_err(internal)?)
        }
        (FieldType::Str(options), ColumnType::Utf8 | ColumnType::Utf8List)
            if options.get_fast_field_tokenizer_name() == Some(RAW_TOKENIZER) =>
        {
            let str_column = fast.str(name).map_err(internal)?.map(Terms::new);
            match column.ty {
                ColumnType::Utf8List => Source::StrList(str_column),
                _ => Source::Str(str_column),
            }
        }
        _ => return Ok(None),
    };
    Ok(Some(source))
}

/// Buffers reused from column to column of a block.
#[derive(Default)]
struct Scratch {
    ords: Vec<u64>,
    /// Values per document of a keyword list.
    counts: Vec<usize>,
    /// The block's ordinals to look up, sorted.
    unique: Vec<u64>,
}

fn fill(
    builder: &mut ColumnBuilder,
    column: &LayoutColumn,
    source: &mut Source,
    docs: &[DocId],
    stored: Option<(&StoreReader, &mut RawBlock)>,
    scratch: &mut Scratch,
) -> Result<()> {
    match source {
        Source::Date(c) => {
            let values = firsts(c.as_ref(), docs);
            builder.append_timestamps(values.iter().map(|v| v.map(|d| d.into_timestamp_nanos())));
        }
        Source::U64(c) => builder.append_u64s(firsts(c.as_ref(), docs)),
        Source::I64(c) => builder.append_i64s(firsts(c.as_ref(), docs)),
        Source::F64(c) => builder.append_f64s(firsts(c.as_ref(), docs)),
        Source::Bool(c) => builder.append_bools(firsts(c.as_ref(), docs)),
        Source::Str(c) => match c {
            None => docs.iter().for_each(|_| builder.append_null()),
            Some(c) => {
                scratch.ords.clear();
                scratch.counts.clear();
                for first in firsts(Some(c.column.ords()), docs) {
                    scratch.counts.push(usize::from(first.is_some()));
                    scratch.ords.extend(first);
                }
                append_terms(builder, c, scratch, false)?;
            }
        },
        Source::StrList(c) => match c {
            None => docs.iter().for_each(|_| builder.append_null()),
            Some(c) => {
                scratch.ords.clear();
                scratch.counts.clear();
                for &doc in docs {
                    let before = scratch.ords.len();
                    scratch.ords.extend(c.column.term_ords(doc));
                    scratch.counts.push(scratch.ords.len() - before);
                }
                append_terms(builder, c, scratch, true)?;
            }
        },
        Source::Stored => {
            let Some(field) = column.field() else {
                return Err(Error::Internal(format!(
                    "column `{}` has no field to read",
                    column.name
                )));
            };
            let Some((store, block)) = stored else {
                return Err(Error::Internal(
                    "a stored column without its doc store".into(),
                ));
            };
            fill_stored(builder, field, block, &[store], &mut Vec::new())?;
        }
    }
    Ok(())
}

/// Appends every row of `block`'s value of `field`: read in place, or from tantivy's decoding
/// of the row where [`ColumnBuilder::append_raw`] leaves it (`json`: a reused buffer).
fn fill_stored(
    builder: &mut ColumnBuilder,
    field: Field,
    block: &mut RawBlock,
    stores: &[&StoreReader],
    json: &mut Vec<u8>,
) -> Result<()> {
    for row in 0..block.rows() {
        if block.unread(row) || !builder.append_raw(block, row, field, json) {
            builder.append_stored(block.decoded(stores, row)?, field, json);
        }
    }
    Ok(())
}

/// The record batch of a block of stored documents read in place, every column from the doc
/// store: a sorted export's rows come from many segments, so no one segment's columns apply.
/// The same batch as [`Layout::batch_of_docs`] over the decoded documents.
pub(crate) fn stored_batch(
    layout: &Layout,
    block: &mut RawBlock,
    stores: &[&StoreReader],
) -> Result<RecordBatch> {
    let rows = block.rows();
    let mut arrays = Vec::with_capacity(layout.columns.len());
    let mut json = Vec::new();
    for column in &layout.columns {
        let Some(field) = column.field() else {
            return Err(Error::Internal(format!(
                "column `{}` has no field to read",
                column.name
            )));
        };
        let bytes = block.bytes_of(field);
        let mut builder = ColumnBuilder::with_capacity(column.ty, rows, bytes + bytes / 4);
        fill_stored(&mut builder, field, block, stores, &mut json)?;
        arrays.push(builder.finish());
    }
    layout.batch(arrays, rows)
}

/// The first value of each document in `column` (all `None` without the column).
fn firsts<T>(column: Option<&Column<T>>, docs: &[DocId]) -> Vec<Option<T>>
where
    T: PartialOrd + Copy + std::fmt::Debug + Send + Sync + 'static,
{
    let mut out = vec![None; docs.len()];
    if let Some(column) = column {
        column.first_vals(docs, &mut out);
    }
    out
}

/// Dictionaries of at most this many terms are kept, by ordinal, as their terms are looked
/// up (a few megabytes at most); larger ones are looked up again for each block.
const KEEP_TERMS: usize = 1 << 16;

/// A keyword column and the terms of its ordinals looked up so far.
struct Terms {
    column: StrColumn,
    /// Where each ordinal's term is in `text` (`Span::MISSING`: not looked up yet). Empty
    /// when the dictionary is too large to keep.
    spans: Vec<Span>,
    text: String,
    /// Whether the dictionary is kept (else `spans` follow the block's sorted ordinals).
    keep: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
struct Span {
    start: u32,
    end: u32,
}

impl Span {
    const MISSING: Span = Span {
        start: u32::MAX,
        end: u32::MAX,
    };
}

impl Terms {
    fn new(column: StrColumn) -> Terms {
        let keep = column.num_terms() <= KEEP_TERMS;
        let spans = match keep {
            true => vec![Span::MISSING; column.num_terms()],
            false => Vec::new(),
        };
        Terms {
            column,
            spans,
            text: String::new(),
            keep,
        }
    }

    /// Makes sure every ordinal of `ords` can be read with [`Self::term`]: looks up, in one
    /// ordered pass over the dictionary, those not looked up yet.
    fn look_up(&mut self, ords: &[u64], scratch: &mut Vec<u64>) -> Result<()> {
        let keep = self.keep;
        scratch.clear();
        match keep {
            true => scratch.extend(ords.iter().copied().filter(|&ord| {
                usize::try_from(ord)
                    .ok()
                    .and_then(|i| self.spans.get(i))
                    .is_none_or(|span| *span == Span::MISSING)
            })),
            false => scratch.extend_from_slice(ords),
        }
        if scratch.is_empty() {
            return Ok(());
        }
        scratch.sort_unstable();
        scratch.dedup();
        if !keep {
            self.text.clear();
            self.spans.clear();
        }
        let mut found = Vec::with_capacity(scratch.len());
        let mut bad = false;
        let text = &mut self.text;
        let complete = self
            .column
            .dictionary()
            .sorted_ords_to_term_cb(scratch, |term| match std::str::from_utf8(term) {
                Ok(term) => {
                    let start = text.len();
                    text.push_str(term);
                    found.push((start, text.len()));
                }
                Err(_) => bad = true,
            })
            .map_err(internal)?;
        if !complete || bad || found.len() != scratch.len() {
            return Err(Error::Internal(
                "a keyword column's dictionary does not hold its ordinals as text".into(),
            ));
        }
        let span = |(start, end): (usize, usize)| -> Result<Span> {
            match (u32::try_from(start), u32::try_from(end)) {
                (Ok(start), Ok(end)) => Ok(Span { start, end }),
                _ => Err(Error::Internal("a keyword block of over 4 GiB".into())),
            }
        };
        if keep {
            for (&ord, &range) in scratch.iter().zip(&found) {
                let slot = usize::try_from(ord)
                    .ok()
                    .and_then(|i| self.spans.get_mut(i))
                    .ok_or_else(|| Error::Internal("a term ordinal past the dictionary".into()))?;
                *slot = span(range)?;
            }
        } else {
            // Spans of this block only, in the order of `scratch` (sorted ordinals).
            self.spans = found.into_iter().map(span).collect::<Result<_>>()?;
        }
        Ok(())
    }

    /// The term of `ord`, once looked up (`sorted`: the block's sorted ordinals, for a
    /// dictionary that is not kept).
    fn term(&self, ord: u64, sorted: &[u64]) -> Result<&str> {
        let index = match self.keep {
            true => usize::try_from(ord).ok(),
            false => sorted.binary_search(&ord).ok(),
        };
        let span = index
            .and_then(|i| self.spans.get(i))
            .filter(|span| **span != Span::MISSING)
            .ok_or_else(|| Error::Internal("a term ordinal not looked up".into()))?;
        self.text
            .get(span.start as usize..span.end as usize)
            .ok_or_else(|| Error::Internal("a term past the looked-up text".into()))
    }
}

/// Appends the terms of `scratch.ords` (grouped per document by `scratch.counts`), a
/// document without a value as null.
fn append_terms(
    builder: &mut ColumnBuilder,
    terms: &mut Terms,
    scratch: &mut Scratch,
    list: bool,
) -> Result<()> {
    terms.look_up(&scratch.ords, &mut scratch.unique)?;
    let mut ords = scratch.ords.iter();
    let mut values = Vec::new();
    for &count in &scratch.counts {
        if list {
            values.clear();
            for &ord in ords.by_ref().take(count) {
                values.push(terms.term(ord, &scratch.unique)?);
            }
            builder.append_list(&values);
        } else {
            match ords.by_ref().take(count).next() {
                Some(&ord) => builder.append_str(terms.term(ord, &scratch.unique)?),
                None => builder.append_null(),
            }
        }
    }
    Ok(())
}

fn internal(err: impl std::fmt::Display) -> Error {
    Error::Internal(format!("exporting a segment: {err}"))
}
