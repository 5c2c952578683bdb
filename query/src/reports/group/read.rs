//! Reading a segment's key columns a block of documents at a time, and the direct-indexed
//! group table used when the keys' ranges are small.

use tantivy::columnar::{Column, ColumnIndex};
use tantivy::{DateTime, DocId};

use super::{window_start, KeyColumn, Segment};

/// The most slots of a dense group table (4 bytes each).
const DENSE_SLOTS: u64 = 1 << 20;

/// A direct-indexed group table, when every key has a small known range in the segment (a
/// keyword's dictionary, an integer's or a window's span): a document's group is found by
/// arithmetic on its key instead of hashing it.
pub(super) struct Dense {
    /// Per key: values it can take, the last meaning absent.
    pub(super) radix: Vec<u64>,
    /// Per key: the smallest value, and the step between values.
    pub(super) base: Vec<u64>,
    pub(super) step: Vec<u64>,
    /// Combined code → index into the tallies (`u32::MAX`: none yet).
    pub(super) slots: Vec<u32>,
}

impl Dense {
    pub(super) fn new(segment: &Segment, max_doc: u32) -> Option<Dense> {
        let (mut radix, mut base, mut step) = (Vec::new(), Vec::new(), Vec::new());
        for key in &segment.keys {
            let (r, b, s) = match key {
                KeyColumn::Str(None) | KeyColumn::Int(None) => (1, 0, 1),
                KeyColumn::Str(Some(column)) => (column.num_terms() as u64 + 1, 0, 1),
                KeyColumn::Int(Some(column)) => {
                    let (min, max) = (column.min_value(), column.max_value());
                    let span = max.checked_sub(min)?.checked_add(2)?;
                    (u64::try_from(span).ok()?, min as u64, 1)
                }
                KeyColumn::Window(width) => {
                    let column = segment.timestamp.as_ref()?;
                    let start = |t: DateTime| window_start(t.into_timestamp_nanos(), *width);
                    let (min, max) = (start(column.min_value()), start(column.max_value()));
                    let windows = max.checked_sub(min)? / width + 2;
                    (u64::try_from(windows).ok()?, min as u64, *width as u64)
                }
            };
            radix.push(r);
            base.push(b);
            step.push(s);
        }
        let size = radix.iter().try_fold(1u64, |acc, r| acc.checked_mul(*r))?;
        // Worth it while the table is small next to the segment: filling it costs a quarter
        // of a pass over the segment at most.
        let limit = DENSE_SLOTS.min((u64::from(max_doc) / 4).max(1 << 10));
        if size > limit {
            return None;
        }
        Some(Dense {
            radix,
            base,
            step,
            slots: vec![u32::MAX; size as usize],
        })
    }
}

/// Reads a column's first values a block of ascending documents at a time. A sparse optional
/// column (at most one document in 16 has a value) is walked with a cursor over its
/// documents; others are read with [`first_vals`].
pub(super) struct BlockReader<'a, T> {
    column: &'a Column<T>,
    /// The documents with a value (the row of the i-th is i), and the cursor.
    sparse: Option<(Vec<DocId>, usize)>,
}

impl<'a, T> BlockReader<'a, T>
where
    T: PartialOrd + Copy + std::fmt::Debug + Send + Sync + 'static,
{
    pub(super) fn new(column: &'a Column<T>) -> BlockReader<'a, T> {
        let sparse = match &column.index {
            ColumnIndex::Optional(index) if index.num_non_nulls() * 16 <= index.num_docs() => {
                Some((index.iter_non_null_docs().collect(), 0))
            }
            _ => None,
        };
        BlockReader { column, sparse }
    }

    pub(super) fn read(&mut self, docs: &[DocId], out: &mut [Option<T>], rows: &mut RowScratch) {
        let Some((with_value, at)) = &mut self.sparse else {
            return first_vals(self.column, docs, out, rows);
        };
        for (doc, slot) in docs.iter().zip(out.iter_mut()) {
            while *at < with_value.len() && with_value[*at] < *doc {
                *at += 1;
            }
            *slot = match with_value.get(*at) {
                Some(d) if d == doc => Some(self.column.values.get_val(*at as u32)),
                _ => None,
            };
        }
    }
}

/// Buffers of [`first_vals`].
#[derive(Default)]
pub(super) struct RowScratch {
    docs: Vec<DocId>,
    rows: Vec<u32>,
}

/// The first value of each of `docs` (ascending) in `column`, into `out`. For an optional
/// column the documents are ranked a block at a time (tantivy's `Column::first_vals` ranks
/// each alone, which was a third of a report's time on sparse columns such as
/// `impersonated_user`).
pub(super) fn first_vals<T>(
    column: &Column<T>,
    docs: &[DocId],
    out: &mut [Option<T>],
    rows: &mut RowScratch,
) where
    T: PartialOrd + Copy + std::fmt::Debug + Send + Sync + 'static,
{
    match &column.index {
        ColumnIndex::Optional(_) => {
            rows.docs.clear();
            rows.rows.clear();
            column.row_ids_for_docs(docs, &mut rows.docs, &mut rows.rows);
            let mut found = rows.docs.iter().zip(&rows.rows).peekable();
            for (doc, slot) in docs.iter().zip(out.iter_mut()) {
                *slot = match found.peek() {
                    Some((d, row)) if **d == *doc => {
                        let value = column.values.get_val(**row);
                        found.next();
                        Some(value)
                    }
                    _ => None,
                };
            }
        }
        _ => column.first_vals(docs, out),
    }
}
