//! Stored documents read in place, for the columns an export takes from the doc store.
//!
//! Decoding a stored document through tantivy ([`super::stored::StoredRow`]) allocates every
//! value of every stored field (a `String` per keyword, a tree per object) and frees them again
//! once the block is built: in an export of every column that was half of the time. A
//! [`RawBlock`] keeps each document's bytes (a slice of the decompressed doc-store block, no
//! copy), walks tantivy's binary document format once to note where the values of the wanted
//! fields are, skips the others, and the column builders then borrow strings from the block and
//! write objects as JSON text straight from their binary form ([`RawJson`]).
//!
//! The format (tantivy 0.27, doc store version 2): a document is a VInt count of field values,
//! then per value the field id (`u32`, little endian) and a value: a type code byte, then text,
//! facets and bytes as a VInt length and the bytes; `u64`, `i64`, `f64` (order-preserving
//! `u64`) and dates as 8 bytes; `bool` as one; IP addresses as 16; arrays as a VInt count and
//! the values; objects as a VInt count of keys and values (twice the entries), alternating.
//!
//! Dates are read as version 2 writes them, in nanoseconds: every tantivy since 0.22, and
//! Trawl has used 0.27 from its first commit (a store of version 1 counts microseconds; a
//! tantivy upgrade that changed the format would fail this module's tests, which compare with
//! tantivy's own decoding). Whatever this reader does not write itself — a date inside an
//! object of an Arrow column, a facet, bytes or an IP address inside an object, a value of an
//! unexpected type for a text column — is left to tantivy: the cell is taken from the document
//! decoded as [`super::stored::StoredRow`] decodes it, so the output is always the one
//! tantivy's own decoding gives (`reader_tests` and this module's tests compare them).

use std::collections::HashMap;

use serde_json::ser::{CharEscape, CompactFormatter, Formatter};
use tantivy::directory::OwnedBytes;
use tantivy::schema::Field;
use tantivy::store::StoreReader;
use tantivy::{DocId, TantivyDocument};
use trawl_model::Timestamp;

use crate::error::{Error, Result};
use crate::export::stored::StoredRow;

/// tantivy's type codes of stored values (`schema::document::type_codes`, crate-private).
pub(crate) mod code {
    pub const TEXT: u8 = 0;
    pub const U64: u8 = 1;
    pub const I64: u8 = 2;
    pub const FACET: u8 = 3;
    pub const BYTES: u8 = 4;
    pub const DATE: u8 = 5;
    pub const F64: u8 = 6;
    pub const BOOL: u8 = 9;
    pub const IP: u8 = 10;
    pub const NULL: u8 = 11;
    pub const ARRAY: u8 = 12;
    pub const OBJECT: u8 = 13;
}

/// Nesting deeper than this is left to tantivy (a corrupt count cannot recurse without end).
const MAX_DEPTH: usize = 64;

/// A reader over the bytes of one stored value or document.
struct Cursor<'a> {
    bytes: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn u8(&mut self) -> Option<u8> {
        let (&first, rest) = self.bytes.split_first()?;
        self.bytes = rest;
        Some(first)
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.bytes.len() {
            return None;
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Some(head)
    }

    fn fixed<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N).and_then(|b| b.try_into().ok())
    }

    fn u64(&mut self) -> Option<u64> {
        self.fixed::<8>().map(u64::from_le_bytes)
    }

    /// tantivy's VInt: seven bits a byte, least significant first, the last byte's high bit
    /// set.
    fn vint(&mut self) -> Option<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.u8()?;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 != 0 {
                return Some(value);
            }
        }
        None
    }

    fn len(&mut self) -> Option<usize> {
        self.vint().and_then(|n| usize::try_from(n).ok())
    }

    fn str(&mut self) -> Option<&'a str> {
        let n = self.len()?;
        std::str::from_utf8(self.take(n)?).ok()
    }

    /// Skips one value (type code included); `None` on a type this reader does not know or
    /// bytes that end early.
    fn skip_value(&mut self, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        match self.u8()? {
            code::TEXT | code::FACET | code::BYTES => {
                let n = self.len()?;
                self.take(n)?;
            }
            code::U64 | code::I64 | code::F64 | code::DATE => {
                self.take(8)?;
            }
            code::BOOL => {
                self.take(1)?;
            }
            code::IP => {
                self.take(16)?;
            }
            code::NULL => {}
            code::ARRAY | code::OBJECT => {
                for _ in 0..self.vint()? {
                    self.skip_value(depth + 1)?;
                }
            }
            _ => return None,
        }
        Some(())
    }
}

/// One stored value of a wanted field: where its bytes are in its document.
#[derive(Clone, Copy)]
struct Entry {
    field: Field,
    start: u32,
    end: u32,
}

/// The stored documents of a block of rows, read in place for the wanted fields. The rows
/// may come from several doc stores (a sorted export merges segments): each row names its
/// store by position in the list the fallbacks are given.
pub(crate) struct RawBlock {
    docs: Vec<OwnedBytes>,
    /// The wanted fields' values, row after row.
    entries: Vec<Entry>,
    /// Where each row's entries start in `entries` (one more than the rows).
    starts: Vec<usize>,
    /// Rows whose bytes this reader could not walk: every cell of theirs comes from tantivy.
    unread: Vec<bool>,
    /// Rows decoded by tantivy, on first need, by row.
    decoded: HashMap<usize, StoredRow>,
    /// Each row's document: (its store's position, doc id).
    ids: Vec<(u32, DocId)>,
}

impl RawBlock {
    /// An empty block with room for `rows` rows of `fields` wanted fields.
    pub(crate) fn with_capacity(rows: usize, fields: usize) -> RawBlock {
        let mut starts = Vec::with_capacity(rows + 1);
        starts.push(0);
        RawBlock {
            docs: Vec::with_capacity(rows),
            entries: Vec::with_capacity(rows * fields),
            starts,
            unread: Vec::with_capacity(rows),
            decoded: HashMap::new(),
            ids: Vec::with_capacity(rows),
        }
    }

    /// Reads the documents `ids` of `store` (store position 0), noting the values of `wanted`.
    pub(crate) fn read(store: &StoreReader, ids: &[DocId], wanted: &[Field]) -> Result<RawBlock> {
        let mut block = RawBlock::with_capacity(ids.len(), wanted.len());
        for &id in ids {
            block.push(
                store.get_document_bytes(id).map_err(internal)?,
                0,
                id,
                wanted,
            );
        }
        Ok(block)
    }

    /// Adds a row: document `id` of the store at position `store`, whose stored bytes are
    /// `bytes`, noting the values of `wanted`.
    pub(crate) fn push(&mut self, bytes: OwnedBytes, store: u32, id: DocId, wanted: &[Field]) {
        let before = self.entries.len();
        let read = scan(&bytes, wanted, &mut self.entries).is_some();
        if !read {
            self.entries.truncate(before);
        }
        self.unread.push(!read);
        self.starts.push(self.entries.len());
        self.docs.push(bytes);
        self.ids.push((store, id));
    }

    /// `row`'s store among `stores`, and its doc id.
    fn source<'s>(
        &self,
        stores: &[&'s StoreReader],
        row: usize,
    ) -> Result<(&'s StoreReader, DocId)> {
        let (store, id) = *self
            .ids
            .get(row)
            .ok_or_else(|| Error::Internal("a row past its block".into()))?;
        let store = usize::try_from(store)
            .ok()
            .and_then(|i| stores.get(i))
            .ok_or_else(|| Error::Internal("a row of an unknown doc store".into()))?;
        Ok((store, id))
    }

    pub(crate) fn rows(&self) -> usize {
        self.docs.len()
    }

    /// Whether `row`'s cells must come from [`Self::decoded`].
    pub(crate) fn unread(&self, row: usize) -> bool {
        self.unread.get(row).copied().unwrap_or(true)
    }

    /// The values of `field` in `row`, in stored order (each its type code and bytes).
    pub(crate) fn values(&self, row: usize, field: Field) -> impl Iterator<Item = &[u8]> + '_ {
        let range = match (self.starts.get(row), self.starts.get(row + 1)) {
            (Some(&a), Some(&b)) => a..b,
            _ => 0..0,
        };
        let doc = self.docs.get(row);
        self.entries
            .get(range)
            .unwrap_or_default()
            .iter()
            .filter(move |e| e.field == field)
            .filter_map(move |e| doc?.as_slice().get(e.start as usize..e.end as usize))
    }

    /// The bytes of every value of `field` noted in the block, as stored.
    pub(crate) fn bytes_of(&self, field: Field) -> usize {
        self.entries
            .iter()
            .filter(|e| e.field == field)
            .map(|e| (e.end - e.start) as usize)
            .sum()
    }

    /// The first value of `field` in `row`.
    pub(crate) fn first(&self, row: usize, field: Field) -> Option<&[u8]> {
        self.values(row, field).next()
    }

    /// `row` decoded by tantivy as a `TantivyDocument` (for a hit record).
    pub(crate) fn document(&self, stores: &[&StoreReader], row: usize) -> Result<TantivyDocument> {
        let (store, id) = self.source(stores, row)?;
        store.get::<TantivyDocument>(id).map_err(internal)
    }

    /// `row` decoded by tantivy (once per block).
    pub(crate) fn decoded(&mut self, stores: &[&StoreReader], row: usize) -> Result<&StoredRow> {
        if !self.decoded.contains_key(&row) {
            let (store, id) = self.source(stores, row)?;
            let doc = store.get::<StoredRow>(id).map_err(internal)?;
            self.decoded.insert(row, doc);
        }
        self.decoded
            .get(&row)
            .ok_or_else(|| Error::Internal("a decoded row went missing".into()))
    }
}

/// Walks a document, pushing the values of `wanted`; `None` when its bytes are not what this
/// reader knows.
fn scan(doc: &[u8], wanted: &[Field], out: &mut Vec<Entry>) -> Option<()> {
    let mut cursor = Cursor { bytes: doc };
    let count = cursor.vint()?;
    for _ in 0..count {
        let field = Field::from_field_id(u32::from_le_bytes(cursor.fixed::<4>()?));
        let start = doc.len() - cursor.bytes.len();
        cursor.skip_value(0)?;
        if wanted.contains(&field) {
            let end = doc.len() - cursor.bytes.len();
            out.push(Entry {
                field,
                start: u32::try_from(start).ok()?,
                end: u32::try_from(end).ok()?,
            });
        }
    }
    Some(())
}

/// A value's type code.
pub(crate) fn type_code(value: &[u8]) -> Option<u8> {
    value.first().copied()
}

/// A text value's string.
pub(crate) fn as_str(value: &[u8]) -> Option<&str> {
    match value.split_first() {
        Some((&code::TEXT, rest)) => Cursor { bytes: rest }.str(),
        _ => None,
    }
}

/// The bytes of a bytes value.
pub(crate) fn as_bytes(value: &[u8]) -> Option<&[u8]> {
    match value.split_first() {
        Some((&code::BYTES, rest)) => {
            let mut cursor = Cursor { bytes: rest };
            let n = cursor.len()?;
            cursor.take(n)
        }
        _ => None,
    }
}

/// The 8 bytes of a `u64`, `i64` or `f64` value of type `want`.
fn eight(value: &[u8], want: u8) -> Option<u64> {
    match value.split_first() {
        Some((&code, rest)) if code == want => Cursor { bytes: rest }.u64(),
        _ => None,
    }
}

pub(crate) fn as_u64(value: &[u8]) -> Option<u64> {
    eight(value, code::U64)
}

pub(crate) fn as_i64(value: &[u8]) -> Option<i64> {
    eight(value, code::I64).map(|v| i64::from_le_bytes(v.to_le_bytes()))
}

pub(crate) fn as_f64(value: &[u8]) -> Option<f64> {
    eight(value, code::F64).map(tantivy::u64_to_f64)
}

/// A date value's nanoseconds since the epoch (doc store version 2, see [`write_json`]).
pub(crate) fn as_date_nanos(value: &[u8]) -> Option<i64> {
    eight(value, code::DATE).map(|v| i64::from_le_bytes(v.to_le_bytes()))
}

pub(crate) fn as_bool(value: &[u8]) -> Option<bool> {
    match value {
        [code::BOOL, 0, ..] => Some(false),
        [code::BOOL, 1, ..] => Some(true),
        _ => None,
    }
}

/// How a stored value becomes JSON text.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Style {
    /// As serde_json writes tantivy's `OwnedValue` (an Arrow or Parquet JSON column): objects'
    /// keys in stored order; a date is left to tantivy.
    Stored,
    /// As a hit record (`crate::hit`) writes it: objects become `serde_json::Map`s, so their
    /// keys come sorted, the last of duplicate keys winning; dates are RFC 3339 strings with
    /// nanoseconds.
    Hit,
}

/// Writes a stored value as JSON text in `style`: null, text, numbers, booleans, arrays,
/// objects and (for hits) dates, compact. `None` for any other value inside (the caller takes
/// the cell from tantivy's decoding instead). Strings are copied as bytes, escaped as
/// serde_json escapes them; the caller checks the whole text is UTF-8 once, instead of each
/// string on its own.
pub(crate) fn write_json(value: &[u8], style: Style, out: &mut Vec<u8>) -> Option<()> {
    write_json_at(&mut Cursor { bytes: value }, style, 0, out)
}

fn write_json_at(
    cursor: &mut Cursor<'_>,
    style: Style,
    depth: usize,
    out: &mut Vec<u8>,
) -> Option<()> {
    let mut f = CompactFormatter;
    if depth > MAX_DEPTH {
        return None;
    }
    match cursor.u8()? {
        code::NULL => f.write_null(out).ok()?,
        code::TEXT => {
            let n = cursor.len()?;
            write_json_str(cursor.take(n)?, out);
        }
        code::U64 => f.write_u64(out, cursor.u64()?).ok()?,
        code::I64 => f
            .write_i64(out, i64::from_le_bytes(cursor.u64()?.to_le_bytes()))
            .ok()?,
        code::F64 => {
            let v = tantivy::u64_to_f64(cursor.u64()?);
            match v.is_finite() {
                true => f.write_f64(out, v).ok()?,
                false => f.write_null(out).ok()?,
            }
        }
        code::BOOL => match cursor.u8()? {
            0 => f.write_bool(out, false).ok()?,
            1 => f.write_bool(out, true).ok()?,
            _ => return None,
        },
        // Doc store version 2 (every tantivy since 0.22; Trawl has always used 0.27): nanoseconds.
        code::DATE if style == Style::Hit => {
            let nanos = i64::from_le_bytes(cursor.u64()?.to_le_bytes());
            let text = Timestamp(nanos).to_rfc3339();
            write_json_str(text.as_bytes(), out);
        }
        code::ARRAY => {
            out.push(b'[');
            for i in 0..cursor.vint()? {
                if i > 0 {
                    out.push(b',');
                }
                write_json_at(cursor, style, depth + 1, out)?;
            }
            out.push(b']');
        }
        code::OBJECT => {
            let n = cursor.vint()?;
            if n % 2 != 0 {
                return None;
            }
            match style {
                Style::Stored => {
                    out.push(b'{');
                    for i in 0..n / 2 {
                        if i > 0 {
                            out.push(b',');
                        }
                        write_json_str(key(cursor)?, out);
                        out.push(b':');
                        write_json_at(cursor, style, depth + 1, out)?;
                    }
                    out.push(b'}');
                }
                Style::Hit => write_sorted_object(cursor, n / 2, depth, out)?,
            }
        }
        _ => return None,
    }
    Some(())
}

/// Values of one field as a JSON array, in the hit style (a list field, or several values).
pub(crate) fn write_array<'a>(
    values: impl Iterator<Item = &'a [u8]>,
    out: &mut Vec<u8>,
) -> Option<()> {
    out.push(b'[');
    for (i, value) in values.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_json(value, Style::Hit, out)?;
    }
    out.push(b']');
    Some(())
}

/// An object's key.
fn key<'a>(cursor: &mut Cursor<'a>) -> Option<&'a [u8]> {
    if cursor.u8()? != code::TEXT {
        return None;
    }
    let n = cursor.len()?;
    cursor.take(n)
}

/// An object of `entries` entries as a `serde_json::Map` (a `BTreeMap`) writes it: keys in
/// byte order, the last value of a repeated key.
fn write_sorted_object(
    cursor: &mut Cursor<'_>,
    entries: u64,
    depth: usize,
    out: &mut Vec<u8>,
) -> Option<()> {
    let mut pairs: Vec<(&[u8], &[u8])> = Vec::new();
    for _ in 0..entries {
        let key = key(cursor)?;
        let start = cursor.bytes;
        cursor.skip_value(depth + 1)?;
        pairs.push((key, start.get(..start.len() - cursor.bytes.len())?));
    }
    // Stable: repeated keys stay in stored order, and the last one is written.
    pairs.sort_by(|a, b| a.0.cmp(b.0));
    out.push(b'{');
    let mut first = true;
    for (i, &(key, value)) in pairs.iter().enumerate() {
        if pairs.get(i + 1).is_some_and(|next| next.0 == key) {
            continue;
        }
        if !first {
            out.push(b',');
        }
        first = false;
        write_json_str(key, out);
        out.push(b':');
        write_json_at(&mut Cursor { bytes: value }, Style::Hit, depth + 1, out)?;
    }
    out.push(b'}');
    Some(())
}

/// A JSON string of `bytes`, escaped as serde_json escapes: `"`, `\\` and the control
/// characters below 0x20, nothing else.
pub(crate) fn write_json_str(bytes: &[u8], out: &mut Vec<u8>) {
    out.push(b'"');
    let mut run = 0;
    for (i, &byte) in bytes.iter().enumerate() {
        let escape = match byte {
            b'"' => CharEscape::Quote,
            b'\\' => CharEscape::ReverseSolidus,
            0x08 => CharEscape::Backspace,
            b'\t' => CharEscape::Tab,
            b'\n' => CharEscape::LineFeed,
            0x0c => CharEscape::FormFeed,
            b'\r' => CharEscape::CarriageReturn,
            0..0x20 => CharEscape::AsciiControl(byte),
            _ => continue,
        };
        out.extend_from_slice(bytes.get(run..i).unwrap_or_default());
        // Writing into a Vec cannot fail.
        let _ = CompactFormatter.write_char_escape(out, escape);
        run = i + 1;
    }
    out.extend_from_slice(bytes.get(run..).unwrap_or_default());
    out.push(b'"');
}

fn internal(err: impl std::fmt::Display) -> Error {
    Error::Internal(format!("exporting a segment: {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::net::Ipv6Addr;

    use tantivy::schema::{OwnedValue, Schema, Value, STORED, STRING, TEXT};
    use tantivy::{DateTime, Index, IndexWriter, TantivyDocument};

    /// A document with every kind of value, in a real doc store.
    fn store_of(docs: Vec<TantivyDocument>, schema: Schema) -> (Index, StoreReader) {
        let index = Index::create_in_ram(schema);
        let mut writer: IndexWriter = index.writer_with_num_threads(1, 20_000_000).unwrap();
        for doc in docs {
            writer.add_document(doc).unwrap();
        }
        writer.commit().unwrap();
        let reader = index.reader().unwrap();
        let searcher = reader.searcher();
        let store = searcher.segment_reader(0).get_store_reader(2).unwrap();
        (index, store)
    }

    fn object(entries: Vec<(&str, OwnedValue)>) -> OwnedValue {
        OwnedValue::Object(entries.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    #[test]
    fn values_read_in_place_equal_tantivys_decoding() {
        let mut builder = Schema::builder();
        let message = builder.add_text_field("message", TEXT | STORED);
        let tags = builder.add_text_field("tags", STRING | STORED);
        let labels = builder.add_json_field("labels", STORED);
        let n = builder.add_u64_field("n", STORED);
        let i = builder.add_i64_field("i", STORED);
        let x = builder.add_f64_field("x", STORED);
        let b = builder.add_bool_field("b", STORED);
        let when = builder.add_date_field("when", STORED);
        let blob = builder.add_bytes_field("blob", STORED);
        let ip = builder.add_ip_addr_field("ip", STORED);
        let schema = builder.build();
        let nested = object(vec![
            ("s", OwnedValue::Str("é\"\\\n日本".into())),
            ("u", OwnedValue::U64(u64::MAX)),
            ("neg", OwnedValue::I64(-42)),
            ("f", OwnedValue::F64(-0.5)),
            ("t", OwnedValue::Bool(true)),
            ("null", OwnedValue::Null),
            ("dup", OwnedValue::U64(1)),
            ("dup", OwnedValue::U64(2)),
            (
                "list",
                OwnedValue::Array(vec![
                    OwnedValue::Str("a".into()),
                    object(vec![("deep", OwnedValue::Array(vec![]))]),
                ]),
            ),
            ("empty", object(vec![])),
        ]);
        let with_date = object(vec![(
            "at",
            OwnedValue::Date(DateTime::from_timestamp_nanos(1_700_000_000_123_456_789)),
        )]);
        let mut docs = Vec::new();
        for k in 0..5u64 {
            let mut doc = TantivyDocument::new();
            doc.add_date(when, DateTime::from_timestamp_nanos(k as i64 * 1_000));
            if k != 1 {
                doc.add_text(message, format!("line {k} ü"));
            }
            doc.add_text(tags, "first");
            doc.add_text(tags, "");
            doc.add_text(tags, "third");
            let value = match k {
                0 => nested.clone(),
                1 => with_date.clone(),
                _ => object(vec![("k", OwnedValue::U64(k))]),
            };
            doc.add_field_value(labels, &value);
            doc.add_u64(n, k);
            doc.add_i64(i, -(k as i64));
            doc.add_f64(x, k as f64 / 3.0);
            doc.add_bool(b, k % 2 == 0);
            doc.add_bytes(blob, &[k as u8, 0, 255][..]);
            doc.add_ip_addr(ip, Ipv6Addr::from(u128::from(k) << 64));
            docs.push(doc);
        }
        let (_index, store) = store_of(docs, schema);
        let ids = [0u32, 1, 2, 3, 4];
        let wanted = [message, tags, labels, n, i, x, b, when, blob];
        let mut block = RawBlock::read(&store, &ids, &wanted).unwrap();
        assert_eq!(block.rows(), 5);
        for (row, &id) in ids.iter().enumerate() {
            assert!(!block.unread(row), "row {row}");
            let doc = store.get::<StoredRow>(id).unwrap();
            let text = |f| block.first(row, f).and_then(as_str).map(str::to_owned);
            assert_eq!(
                text(message),
                doc.first(message)
                    .and_then(|v| v.as_str())
                    .map(str::to_owned)
            );
            let raw_tags: Vec<&str> = block.values(row, tags).filter_map(as_str).collect();
            let tantivy_tags: Vec<&str> = doc.all(tags).filter_map(|v| v.as_str()).collect();
            assert_eq!(raw_tags, tantivy_tags);
            assert_eq!(raw_tags, ["first", "", "third"]);
            assert_eq!(
                block.first(row, n).and_then(as_u64),
                doc.first(n).and_then(|v| v.as_u64())
            );
            assert_eq!(
                block.first(row, i).and_then(as_i64),
                doc.first(i).and_then(|v| v.as_i64())
            );
            assert_eq!(
                block.first(row, x).and_then(as_f64),
                doc.first(x).and_then(|v| v.as_f64())
            );
            assert_eq!(
                block.first(row, b).and_then(as_bool),
                doc.first(b).and_then(|v| v.as_bool())
            );
            assert_eq!(
                block.first(row, blob).and_then(as_bytes),
                doc.first(blob).and_then(|v| v.as_bytes())
            );
            assert_eq!(block.first(row, when).and_then(type_code), Some(code::DATE));
            assert_eq!(
                block.first(row, when).and_then(as_date_nanos),
                doc.first(when)
                    .and_then(|v| v.as_datetime())
                    .map(|d| d.into_timestamp_nanos())
            );
            // A field not wanted is skipped, not noted.
            assert_eq!(block.first(row, ip), None);
            let raw = block.first(row, labels).unwrap();
            let expected = serde_json::to_string(doc.first(labels).unwrap()).unwrap();
            let mut json = Vec::new();
            match write_json(raw, Style::Stored, &mut json) {
                Some(()) => assert_eq!(String::from_utf8(json).unwrap(), expected, "row {row}"),
                // Only the object holding a date is left to tantivy.
                None => assert_eq!(row, 1),
            }
        }
        let mut json = Vec::new();
        write_json(block.first(0, labels).unwrap(), Style::Stored, &mut json).unwrap();
        let first: BTreeMap<String, serde_json::Value> = serde_json::from_slice(&json).unwrap();
        assert_eq!(first["u"], serde_json::json!(u64::MAX));
        assert_eq!(first["dup"], serde_json::json!(2));
        let decoded = block.decoded(&[&store], 1).unwrap();
        assert!(decoded.first(labels).is_some());
    }

    #[test]
    fn strings_and_numbers_are_written_as_serde_json_writes_them() {
        let mut every: String = (0u8..0x80).map(char::from).collect();
        every.push_str("é日本\u{10ffff}/");
        let values = [
            OwnedValue::Str(every),
            OwnedValue::Str(String::new()),
            OwnedValue::F64(f64::NAN),
            OwnedValue::F64(f64::NEG_INFINITY),
            OwnedValue::F64(1e300),
            OwnedValue::F64(-0.0),
            OwnedValue::I64(i64::MIN),
            OwnedValue::U64(0),
            OwnedValue::Bool(false),
            OwnedValue::Array(vec![OwnedValue::Null, OwnedValue::Array(vec![])]),
        ];
        let mut builder = Schema::builder();
        let field = builder.add_json_field("o", STORED);
        let schema = builder.build();
        let entries = values
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("k\"{i}\n"), v.clone()))
            .collect::<Vec<_>>();
        let mut doc = TantivyDocument::new();
        doc.add_field_value(field, &OwnedValue::Object(entries));
        let (_index, store) = store_of(vec![doc], schema);
        let block = RawBlock::read(&store, &[0], &[field]).unwrap();
        let decoded = store.get::<StoredRow>(0).unwrap();
        let mut json = Vec::new();
        write_json(block.first(0, field).unwrap(), Style::Stored, &mut json).unwrap();
        let expected = serde_json::to_string(decoded.first(field).unwrap()).unwrap();
        assert_eq!(String::from_utf8(json).unwrap(), expected);
    }

    /// NDJSON lines and CSV rows written in place are the bytes of the records built by
    /// `HitFormat`: keys
    /// sorted, repeated object keys, dates, several values of one field, lists, and rows left
    /// to tantivy (an IP address, a facet inside nothing it writes).
    #[test]
    fn hit_records_written_in_place_equal_the_built_ones() {
        let mut builder = Schema::builder();
        let message = builder.add_text_field("message", TEXT | STORED);
        let tags = builder.add_text_field("tags", STRING | STORED);
        let user = builder.add_text_field("user", STRING | STORED);
        let labels = builder.add_json_field("labels", STORED);
        let when = builder.add_date_field("timestamp", STORED);
        let x = builder.add_f64_field("x", STORED);
        let ip = builder.add_ip_addr_field("addr", STORED);
        let schema = builder.build();
        let mut docs = Vec::new();
        for k in 0..6u64 {
            let mut doc = TantivyDocument::new();
            doc.add_date(
                when,
                DateTime::from_timestamp_nanos(1_700_000_000_000_000_007 + k as i64),
            );
            doc.add_text(message, format!("line \"{k}\"\t\u{1} ü"));
            if k != 2 {
                doc.add_text(tags, "b");
            }
            if k % 2 == 0 {
                doc.add_text(tags, "a");
            }
            doc.add_text(user, "alice");
            if k == 3 {
                // Two values of a field that is not a list: an array.
                doc.add_text(user, "bob");
            }
            doc.add_f64(x, if k == 4 { f64::NAN } else { k as f64 * 0.1 });
            let object = object(vec![
                ("zeta", OwnedValue::U64(k)),
                (
                    "alpha",
                    object(vec![("y", OwnedValue::Null), ("b", OwnedValue::Bool(true))]),
                ),
                ("alpha", OwnedValue::Str("the last one wins".into())),
                (
                    "Beta",
                    OwnedValue::Array(vec![OwnedValue::I64(-1), object(vec![])]),
                ),
                (
                    "at",
                    OwnedValue::Date(DateTime::from_timestamp_nanos(1_600_000_000_000_000_001)),
                ),
            ]);
            doc.add_field_value(labels, &object);
            if k == 5 {
                doc.add_ip_addr(ip, Ipv6Addr::from(0xffff_0a00_0001u128));
            }
            docs.push(doc);
        }
        let (_index, store) = store_of(docs, schema.clone());
        let lists = std::collections::HashSet::from(["tags"]);
        let hits = crate::hit::HitFormat::new(&schema, None, &lists).unwrap();
        let fields = hits.sorted_fields().unwrap();
        let wanted: Vec<Field> = fields.iter().map(|f| f.0).collect();
        let ids: Vec<u32> = (0..6).collect();
        let block = RawBlock::read(&store, &ids, &wanted).unwrap();
        let mut raw = Vec::new();
        crate::export::ndjson::encode_raw(&hits, &fields, &block, &[&store], &mut raw).unwrap();
        let decoded: Vec<TantivyDocument> = ids.iter().map(|&id| store.get(id).unwrap()).collect();
        let mut built = Vec::new();
        let layout = crate::export::arrow::Layout::for_stream(&schema, None, &lists).unwrap();
        crate::export::ndjson::encode_docs(&layout, &decoded, &mut built).unwrap();
        assert_eq!(
            String::from_utf8(raw).unwrap(),
            String::from_utf8(built).unwrap()
        );
        // CSV: the same cells as the rows of the built records.
        let mut raw = Vec::new();
        crate::export::csv::encode_raw(&layout, &hits, &fields, &block, &[&store], &mut raw)
            .unwrap();
        let mut built = Vec::new();
        crate::export::csv::encode_docs(&layout, &decoded, &mut built).unwrap();
        assert_eq!(
            String::from_utf8(raw).unwrap(),
            String::from_utf8(built).unwrap()
        );
        // Every row but the one with an IP address is written in place.
        let mut json = Vec::new();
        for row in 0..6 {
            json.clear();
            let written = write_record_for_test(&fields, &block, row, &mut json);
            assert_eq!(written, row != 5, "row {row}");
        }
    }

    fn write_record_for_test(
        fields: &[(Field, String, bool)],
        block: &RawBlock,
        row: usize,
        out: &mut Vec<u8>,
    ) -> bool {
        fields.iter().all(|(field, _, _)| {
            block
                .values(row, *field)
                .all(|v| write_json(v, Style::Hit, out).is_some())
        })
    }

    #[test]
    fn bytes_it_does_not_know_leave_the_row_to_tantivy() {
        let field = Field::from_field_id(3);
        let mut entries = Vec::new();
        // One value, a type code 7 (tantivy's extended types, pre-tokenised text).
        let doc = [0x81, 3, 0, 0, 0, 7, 0, 0x80];
        assert!(scan(&doc, &[field], &mut entries).is_none());
        // Ends inside a string.
        let doc = [0x81, 3, 0, 0, 0, code::TEXT, 0x85, b'a'];
        assert!(scan(&doc, &[field], &mut entries).is_none());
        // Well formed: one string "ab".
        let doc = [0x81, 3, 0, 0, 0, code::TEXT, 0x82, b'a', b'b'];
        entries.clear();
        assert!(scan(&doc, &[field], &mut entries).is_some());
        assert_eq!(entries.len(), 1);
        assert_eq!(
            as_str(&doc[entries[0].start as usize..entries[0].end as usize]),
            Some("ab")
        );
        // Nesting past the bound.
        let mut deep = vec![0x81, 3, 0, 0, 0];
        deep.extend(std::iter::repeat_n([code::ARRAY, 0x81], 100).flatten());
        deep.push(code::NULL);
        assert!(scan(&deep, &[field], &mut entries).is_none());
    }
}
