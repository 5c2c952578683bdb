//! A split as one immutable object: the files of a sealed tantivy index laid end to end, a
//! footer that lists each file's byte range (and the split's own description), and a fixed
//! trailer that says where the footer starts.
//!
//! ```text
//! [file 0]...[file n-1][hotcache][footer: JSON][footer length: u64 LE][version: u32 LE]["TRWLSPLT"]
//! ```
//!
//! A reader fetches the object and serves tantivy its files as slices of it
//! ([`BundleDirectory`]): no file is copied out. tantivy's own per-file footers (checksums,
//! format version) are kept inside each file, so an index opened from a bundle is checked
//! exactly as one opened from its directory.
//!
//! The **hotcache** (version 2; Quickwit's idea) is a copy of the byte ranges tantivy reads to
//! open the index and its segments, the term dictionaries of its fields and its doc stores'
//! skip indexes, recorded when the bundle is written. It lies just before the footer, so a
//! reader that fetches the object's tail by range gets the footer and the hotcache at once and
//! opens the split without any other request ([`crate::ranged::RangedDirectory`]); a search
//! then reads by range only the postings, columns and doc-store blocks it touches. Ranges
//! larger than [`HOT_SLICE_MAX`] are left out (read on demand), and the hotcache is bounded by
//! [`HOTCACHE_MAX`]. Version 1 bundles (no hotcache) are still read.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use tantivy::directory::error::OpenReadError;
use tantivy::directory::{Directory, FileHandle, FileSlice, MmapDirectory};
use tantivy::{HasLen, Index, ReloadPolicy};

use crate::{Error, Result};

/// Version of the bundle layout (trailer and footer); bumped on any incompatible change.
pub const BUNDLE_VERSION: u32 = 2;
/// A range read while opening that is longer than this is not copied into the hotcache.
pub const HOT_SLICE_MAX: u64 = 1 << 20;
/// The hotcache's bound: the shortest ranges first until it is full.
pub const HOTCACHE_MAX: u64 = 8 << 20;
/// The last eight bytes of every bundle.
pub const BUNDLE_MAGIC: &[u8; 8] = b"TRWLSPLT";
/// Bytes of the trailer: footer length, version, magic.
pub const TRAILER_LEN: usize = 8 + 4 + 8;

/// Files of a split directory that are not part of the index: tantivy's lock files.
const SKIPPED: &[&str] = &[".tantivy-meta.lock", ".tantivy-writer.lock"];

/// The footer: where each file is, and what the split is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleFooter {
    pub version: u32,
    /// The files in the order they are laid out.
    pub files: Vec<BundleFile>,
    /// The split's description as its writer recorded it (the indexer's split meta).
    pub meta: serde_json::Value,
    /// The hotcache's slices, by file (version 2; empty in version 1).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hotcache: Vec<HotSlice>,
}

/// One slice of the hotcache: bytes `start..end` of `file`, copied at `at` in the bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HotSlice {
    pub file: String,
    pub start: u64,
    pub end: u64,
    pub at: u64,
}

/// One file of a bundle: its name and its byte range in the object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleFile {
    pub name: String,
    pub start: u64,
    pub end: u64,
}

impl BundleFooter {
    /// The byte range of the footer and trailer together: what a reader of the footer alone
    /// fetches, given the bundle's total length and the footer length from the trailer.
    pub fn tail_range(total: u64, footer_len: u64) -> Option<Range<u64>> {
        let tail = footer_len.checked_add(TRAILER_LEN as u64)?;
        Some(total.checked_sub(tail)?..total)
    }

    /// Where the hotcache starts in the bundle (`footer_start` when there is none).
    pub fn hotcache_start(&self, footer_start: u64) -> u64 {
        self.hotcache
            .iter()
            .map(|h| h.at)
            .min()
            .unwrap_or(footer_start)
    }

    /// Checks that every file and hotcache slice lies within the `footer_start` data bytes,
    /// and every slice within its file.
    pub fn check(&self, footer_start: u64) -> Result<()> {
        let mut lens = HashMap::with_capacity(self.files.len());
        for file in &self.files {
            if file.start > file.end || file.end > footer_start {
                return Err(Error::Format(format!(
                    "file {} at {}..{} outside the bundle's {footer_start} data bytes",
                    file.name, file.start, file.end
                )));
            }
            lens.insert(file.name.as_str(), file.end - file.start);
        }
        for hot in &self.hotcache {
            let fits = lens
                .get(hot.file.as_str())
                .is_some_and(|len| hot.start <= hot.end && hot.end <= *len)
                && hot
                    .at
                    .checked_add(hot.end - hot.start)
                    .is_some_and(|end| end <= footer_start);
            if !fits {
                return Err(Error::Format(format!(
                    "hotcache slice {}..{} of {} at {} outside its file or the bundle",
                    hot.start, hot.end, hot.file, hot.at
                )));
            }
        }
        Ok(())
    }
}

/// Writes the regular files of `dir` (a sealed split; tantivy's lock files skipped) as one
/// bundle at `out`, with `meta` in its footer, and syncs it. Returns the bundle's length.
pub fn write_bundle(dir: &Path, meta: &serde_json::Value, out: &Path) -> Result<u64> {
    let io_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io { path, source }
    };
    let mut names = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.file_type().map_err(io_err(dir))?.is_file() && !SKIPPED.contains(&name.as_str()) {
            names.push(name);
        }
    }
    names.sort();
    let file = File::create(out).map_err(io_err(out))?;
    let mut writer = BufWriter::with_capacity(1 << 20, file);
    let mut files = Vec::with_capacity(names.len());
    let mut offset = 0u64;
    for name in names {
        let path = dir.join(&name);
        let mut input = File::open(&path).map_err(io_err(&path))?;
        let copied = io::copy(&mut input, &mut writer).map_err(io_err(&path))?;
        files.push(BundleFile {
            name,
            start: offset,
            end: offset + copied,
        });
        offset += copied;
    }
    let mut hotcache = Vec::new();
    for (name, ranges) in hot_ranges(dir)? {
        let path = dir.join(&name);
        let mut input = File::open(&path).map_err(io_err(&path))?;
        for range in ranges {
            input
                .seek(SeekFrom::Start(range.start))
                .map_err(io_err(&path))?;
            let len = range.end - range.start;
            let copied =
                io::copy(&mut (&mut input).take(len), &mut writer).map_err(io_err(&path))?;
            if copied != len {
                return Err(Error::Format(format!(
                    "{name} shorter than the range {range:?} read from it"
                )));
            }
            hotcache.push(HotSlice {
                file: name.clone(),
                start: range.start,
                end: range.end,
                at: offset,
            });
            offset += len;
        }
    }
    let footer = BundleFooter {
        version: BUNDLE_VERSION,
        files,
        meta: meta.clone(),
        hotcache,
    };
    let footer_bytes = serde_json::to_vec(&footer).map_err(|e| Error::Format(e.to_string()))?;
    writer.write_all(&footer_bytes).map_err(io_err(out))?;
    writer
        .write_all(&(footer_bytes.len() as u64).to_le_bytes())
        .map_err(io_err(out))?;
    writer
        .write_all(&BUNDLE_VERSION.to_le_bytes())
        .map_err(io_err(out))?;
    writer.write_all(BUNDLE_MAGIC).map_err(io_err(out))?;
    let file = writer.into_inner().map_err(|e| Error::Io {
        path: out.to_path_buf(),
        source: e.into_error(),
    })?;
    file.sync_all().map_err(io_err(out))?;
    Ok(offset + footer_bytes.len() as u64 + TRAILER_LEN as u64)
}

/// Reads a trailer (the last [`TRAILER_LEN`] bytes of a bundle): the footer's length. A
/// trailer without the magic, or of a newer version, is [`Error::Format`].
pub fn parse_trailer(trailer: &[u8]) -> Result<u64> {
    let Some(trailer) = trailer.get(trailer.len().saturating_sub(TRAILER_LEN)..) else {
        return Err(Error::Format("bundle shorter than its trailer".into()));
    };
    if trailer.len() != TRAILER_LEN || &trailer[12..20] != BUNDLE_MAGIC {
        return Err(Error::Format(
            "not a split bundle (no trailer magic)".into(),
        ));
    }
    let mut len = [0u8; 8];
    len.copy_from_slice(&trailer[0..8]);
    let mut version = [0u8; 4];
    version.copy_from_slice(&trailer[8..12]);
    let version = u32::from_le_bytes(version);
    if version == 0 || version > BUNDLE_VERSION {
        return Err(Error::Format(format!(
            "split bundle version {version}; this build reads up to {BUNDLE_VERSION}"
        )));
    }
    Ok(u64::from_le_bytes(len))
}

/// Parses the footer from the tail of a bundle (at least the footer and the trailer).
pub fn parse_footer(tail: &[u8]) -> Result<BundleFooter> {
    let footer_len = usize::try_from(parse_trailer(tail)?)
        .map_err(|_| Error::Format("footer length out of range".into()))?;
    let end = tail.len() - TRAILER_LEN;
    let start = end
        .checked_sub(footer_len)
        .ok_or_else(|| Error::Format("the footer is longer than the bundle".into()))?;
    let footer: BundleFooter = serde_json::from_slice(&tail[start..end])
        .map_err(|e| Error::Format(format!("split bundle footer: {e}")))?;
    if footer.version == 0 || footer.version > BUNDLE_VERSION {
        return Err(Error::Format(format!(
            "split bundle footer version {}",
            footer.version
        )));
    }
    Ok(footer)
}

/// The methods every read-only directory of this crate shares: nothing is written, deleted
/// or watched, and every lock is granted (nothing writes, so it guards nothing).
macro_rules! read_only_methods {
    () => {
        fn delete(
            &self,
            path: &std::path::Path,
        ) -> std::result::Result<(), tantivy::directory::error::DeleteError> {
            Err(tantivy::directory::error::DeleteError::IoError {
                io_error: std::sync::Arc::new($crate::bundle::read_only(path)),
                filepath: path.to_path_buf(),
            })
        }

        fn open_write(
            &self,
            path: &std::path::Path,
        ) -> std::result::Result<
            tantivy::directory::WritePtr,
            tantivy::directory::error::OpenWriteError,
        > {
            Err(tantivy::directory::error::OpenWriteError::IoError {
                io_error: std::sync::Arc::new($crate::bundle::read_only(path)),
                filepath: path.to_path_buf(),
            })
        }

        fn atomic_write(&self, path: &std::path::Path, _data: &[u8]) -> std::io::Result<()> {
            Err($crate::bundle::read_only(path))
        }

        fn sync_directory(&self) -> std::io::Result<()> {
            Ok(())
        }

        fn acquire_lock(
            &self,
            _lock: &tantivy::directory::Lock,
        ) -> std::result::Result<
            tantivy::directory::DirectoryLock,
            tantivy::directory::error::LockError,
        > {
            Ok(tantivy::directory::DirectoryLock::from(Box::new(())))
        }

        fn watch(
            &self,
            _callback: tantivy::directory::WatchCallback,
        ) -> tantivy::Result<tantivy::directory::WatchHandle> {
            Ok(tantivy::directory::WatchHandle::empty())
        }
    };
}
pub(crate) use read_only_methods;

/// A read-only tantivy directory over one bundle: each file is a slice of the bundle's bytes.
#[derive(Clone)]
pub struct BundleDirectory {
    files: Arc<HashMap<PathBuf, FileSlice>>,
    footer: Arc<BundleFooter>,
}

impl std::fmt::Debug for BundleDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BundleDirectory")
            .field("files", &self.footer.files.len())
            .finish()
    }
}

impl BundleDirectory {
    /// Opens the bundle file at `path`, memory-mapped (by tantivy's own mmap directory).
    pub fn open(path: &Path) -> Result<BundleDirectory> {
        let parent = path.parent().unwrap_or(Path::new("."));
        let name = path
            .file_name()
            .ok_or_else(|| Error::Format(format!("{} is not a file", path.display())))?;
        let mmap = MmapDirectory::open(parent).map_err(|e| Error::Io {
            path: parent.to_path_buf(),
            source: io::Error::other(e.to_string()),
        })?;
        let whole = mmap.open_read(Path::new(name)).map_err(|e| Error::Io {
            path: path.to_path_buf(),
            source: match e {
                OpenReadError::FileDoesNotExist(_) => io::ErrorKind::NotFound.into(),
                other => io::Error::other(other.to_string()),
            },
        })?;
        BundleDirectory::from_slice(whole)
    }

    /// A directory over a bundle's bytes.
    pub fn from_slice(whole: FileSlice) -> Result<BundleDirectory> {
        let total = whole.len() as u64;
        let read = |range: Range<u64>| -> Result<Vec<u8>> {
            let range = range.start as usize..range.end as usize;
            Ok(whole
                .read_bytes_slice(range)
                .map_err(|e| Error::Format(format!("reading the bundle: {e}")))?
                .as_slice()
                .to_vec())
        };
        if total < TRAILER_LEN as u64 {
            return Err(Error::Format("bundle shorter than its trailer".into()));
        }
        let footer_len = parse_trailer(&read(total - TRAILER_LEN as u64..total)?)?;
        let tail = BundleFooter::tail_range(total, footer_len)
            .ok_or_else(|| Error::Format("the footer is longer than the bundle".into()))?;
        let footer_start = tail.start;
        let footer = parse_footer(&read(tail)?)?;
        footer.check(footer_start)?;
        let mut files = HashMap::with_capacity(footer.files.len());
        for file in &footer.files {
            files.insert(
                PathBuf::from(&file.name),
                whole.slice(file.start as usize..file.end as usize),
            );
        }
        Ok(BundleDirectory {
            files: Arc::new(files),
            footer: Arc::new(footer),
        })
    }

    /// The bundle's footer.
    pub fn footer(&self) -> &BundleFooter {
        &self.footer
    }

    fn slice(&self, path: &Path) -> std::result::Result<&FileSlice, OpenReadError> {
        self.files
            .get(path)
            .ok_or_else(|| OpenReadError::FileDoesNotExist(path.to_path_buf()))
    }
}

pub(crate) fn read_only(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::PermissionDenied,
        format!("{}: a split bundle is read-only", path.display()),
    )
}

impl Directory for BundleDirectory {
    fn get_file_handle(
        &self,
        path: &Path,
    ) -> std::result::Result<Arc<dyn FileHandle>, OpenReadError> {
        Ok(Arc::new(self.slice(path)?.clone()))
    }

    fn open_read(&self, path: &Path) -> std::result::Result<FileSlice, OpenReadError> {
        Ok(self.slice(path)?.clone())
    }

    fn exists(&self, path: &Path) -> std::result::Result<bool, OpenReadError> {
        Ok(self.files.contains_key(path))
    }

    fn atomic_read(&self, path: &Path) -> std::result::Result<Vec<u8>, OpenReadError> {
        let bytes = self
            .slice(path)?
            .read_bytes()
            .map_err(|io_error| OpenReadError::IoError {
                io_error: Arc::new(io_error),
                filepath: path.to_path_buf(),
            })?;
        Ok(bytes.as_slice().to_vec())
    }

    read_only_methods!();
}

/// The byte ranges of the split in `dir` that tantivy reads to open it: the index and its
/// segments, every indexed field's term dictionary, every doc store's skip index; by file,
/// merged, in order. Ranges over [`HOT_SLICE_MAX`] are left out; past [`HOTCACHE_MAX`], the
/// longest are.
fn hot_ranges(dir: &Path) -> Result<BTreeMap<String, Vec<Range<u64>>>> {
    let unreadable =
        |e: tantivy::TantivyError| Error::Format(format!("recording the hotcache: {e}"));
    let mmap = MmapDirectory::open(dir).map_err(|e| Error::Io {
        path: dir.to_path_buf(),
        source: io::Error::other(e.to_string()),
    })?;
    let recording = Recording {
        inner: mmap,
        reads: Arc::default(),
    };
    {
        let index = Index::open(recording.clone()).map_err(unreadable)?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(unreadable)?;
        let searcher = reader.searcher();
        let schema = index.schema();
        for segment in searcher.segment_readers() {
            for (field, entry) in schema.fields() {
                if entry.is_indexed() {
                    segment.inverted_index(field).map_err(unreadable)?;
                }
            }
            segment
                .get_store_reader(0)
                .map_err(|e| Error::Format(format!("recording the hotcache: {e}")))?;
        }
    }
    let reads = std::mem::take(&mut *recording.reads.lock().unwrap_or_else(|p| p.into_inner()));
    let mut by_file: BTreeMap<String, Vec<Range<u64>>> = BTreeMap::new();
    for (path, range) in reads {
        if range.start < range.end {
            by_file
                .entry(path.to_string_lossy().into_owned())
                .or_default()
                .push(range);
        }
    }
    let mut slices = Vec::new();
    for (file, mut ranges) in by_file {
        ranges.sort_by_key(|r| (r.start, r.end));
        let mut merged: Vec<Range<u64>> = Vec::with_capacity(ranges.len());
        for range in ranges {
            match merged.last_mut() {
                Some(last) if range.start <= last.end => last.end = last.end.max(range.end),
                _ => merged.push(range),
            }
        }
        slices.extend(merged.into_iter().map(|r| (file.clone(), r)));
    }
    slices.retain(|(_, r)| r.end - r.start <= HOT_SLICE_MAX);
    slices.sort_by_key(|(_, r)| r.end - r.start);
    let mut total = 0;
    let mut kept: BTreeMap<String, Vec<Range<u64>>> = BTreeMap::new();
    for (file, range) in slices {
        total += range.end - range.start;
        if total > HOTCACHE_MAX {
            break;
        }
        kept.entry(file).or_default().push(range);
    }
    for ranges in kept.values_mut() {
        ranges.sort_by_key(|r| r.start);
    }
    Ok(kept)
}

type Reads = Arc<Mutex<Vec<(PathBuf, Range<u64>)>>>;

/// A directory that records every byte range read through it (to write the hotcache).
#[derive(Clone, Debug)]
struct Recording {
    inner: MmapDirectory,
    reads: Reads,
}

#[derive(Debug)]
struct RecordingHandle {
    path: PathBuf,
    inner: Arc<dyn FileHandle>,
    reads: Reads,
}

impl HasLen for RecordingHandle {
    fn len(&self) -> usize {
        self.inner.len()
    }
}

impl FileHandle for RecordingHandle {
    fn read_bytes(&self, range: Range<usize>) -> io::Result<tantivy::directory::OwnedBytes> {
        self.reads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((self.path.clone(), range.start as u64..range.end as u64));
        self.inner.read_bytes(range)
    }
}

impl Directory for Recording {
    fn get_file_handle(
        &self,
        path: &Path,
    ) -> std::result::Result<Arc<dyn FileHandle>, OpenReadError> {
        Ok(Arc::new(RecordingHandle {
            path: path.to_path_buf(),
            inner: self.inner.get_file_handle(path)?,
            reads: self.reads.clone(),
        }))
    }

    fn exists(&self, path: &Path) -> std::result::Result<bool, OpenReadError> {
        self.inner.exists(path)
    }

    fn atomic_read(&self, path: &Path) -> std::result::Result<Vec<u8>, OpenReadError> {
        let bytes = self.inner.atomic_read(path)?;
        self.reads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((path.to_path_buf(), 0..bytes.len() as u64));
        Ok(bytes)
    }

    read_only_methods!();
}

/// Reads the footer of a bundle file on disk (the trailer, then the footer).
pub fn read_footer_from_file(path: &Path) -> Result<BundleFooter> {
    let io_err = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = File::open(path).map_err(io_err)?;
    let total = file.metadata().map_err(io_err)?.len();
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(io_err)?;
    if (bytes.len() as u64) != total {
        return Err(Error::Format("bundle changed while read".into()));
    }
    parse_footer(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tantivy::collector::Count;
    use tantivy::query::QueryParser;
    use tantivy::schema::{Schema, STORED, TEXT};
    use tantivy::{doc, Index, TantivyDocument};

    /// A small sealed index in `dir`: 3 documents in 2 segments.
    fn small_index(dir: &Path) -> Schema {
        let mut builder = Schema::builder();
        let body = builder.add_text_field("body", TEXT | STORED);
        let schema = builder.build();
        let index = Index::create_in_dir(dir, schema.clone()).unwrap();
        let mut writer = index.writer_with_num_threads(1, 15_000_000).unwrap();
        writer
            .add_document(doc!(body => "connection reset by peer"))
            .unwrap();
        writer
            .add_document(doc!(body => "connection refused"))
            .unwrap();
        writer.commit().unwrap();
        writer.add_document(doc!(body => "all good")).unwrap();
        writer.commit().unwrap();
        writer.wait_merging_threads().unwrap();
        schema
    }

    #[test]
    fn a_bundle_opens_as_the_index_it_was_written_from() {
        let tmp = tempfile::tempdir().unwrap();
        let split = tmp.path().join("split");
        fs::create_dir(&split).unwrap();
        let schema = small_index(&split);
        let out = tmp.path().join("s.split");
        let meta = serde_json::json!({"id": "s", "docs": 3});
        let len = write_bundle(&split, &meta, &out).unwrap();
        assert_eq!(len, fs::metadata(&out).unwrap().len());

        let dir = BundleDirectory::open(&out).unwrap();
        assert_eq!(dir.footer().meta, meta);
        assert!(dir.footer().files.iter().any(|f| f.name == "meta.json"));
        assert!(!dir.footer().files.iter().any(|f| f.name.ends_with(".lock")));
        let index = Index::open(dir.clone()).unwrap();
        let reader = index.reader().unwrap();
        let searcher = reader.searcher();
        assert_eq!(searcher.num_docs(), 3);
        let body = schema.get_field("body").unwrap();
        let query = QueryParser::for_index(&index, vec![body])
            .parse_query("\"connection reset\"")
            .unwrap();
        let top = searcher
            .search(&query, &tantivy::collector::DocSetCollector)
            .unwrap();
        assert_eq!(top.len(), 1);
        let address = top.into_iter().next().unwrap();
        let doc: TantivyDocument = searcher.doc(address).unwrap();
        assert_eq!(
            doc.get_first(body)
                .and_then(|v| tantivy::schema::Value::as_str(&v)),
            Some("connection reset by peer")
        );
        let query = QueryParser::for_index(&index, vec![body])
            .parse_query("connection")
            .unwrap();
        assert_eq!(searcher.search(&query, &Count).unwrap(), 2);
        // Read-only: nothing can be written through it.
        assert!(dir.atomic_write(Path::new("x"), b"y").is_err());
        assert!(dir.open_write(Path::new("x")).is_err());
    }

    #[test]
    fn damaged_and_foreign_bundles_are_format_errors() {
        let tmp = tempfile::tempdir().unwrap();
        let split = tmp.path().join("split");
        fs::create_dir(&split).unwrap();
        small_index(&split);
        let out = tmp.path().join("s.split");
        write_bundle(&split, &serde_json::json!({}), &out).unwrap();
        let good = fs::read(&out).unwrap();

        let open = |bytes: Vec<u8>| BundleDirectory::from_slice(FileSlice::from(bytes));
        assert!(open(good.clone()).is_ok());
        // Truncated: the trailer is gone.
        let err = open(good[..good.len() - 3].to_vec()).unwrap_err();
        assert!(
            matches!(err, Error::Format(ref m) if m.contains("magic")),
            "{err}"
        );
        // A newer version.
        let mut newer = good.clone();
        let at = newer.len() - 12;
        newer[at..at + 4].copy_from_slice(&(BUNDLE_VERSION + 1).to_le_bytes());
        let err = open(newer).unwrap_err();
        assert!(
            matches!(err, Error::Format(ref m) if m.contains(&format!("version {}", BUNDLE_VERSION + 1))),
            "{err}"
        );
        // A footer length past the start.
        let mut long = good.clone();
        let at = long.len() - TRAILER_LEN;
        long[at..at + 8].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(open(long), Err(Error::Format(_))));
        // Not a bundle at all.
        assert!(matches!(open(b"short".to_vec()), Err(Error::Format(_))));
        assert!(matches!(open(vec![0; 100]), Err(Error::Format(_))));
    }
}
