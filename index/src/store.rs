//! The store reader: a segment's doc store read from the target's files with positioned reads
//! instead of through the searcher's mmap.
//!
//! Every page of an mmap'd file that an export touches stays mapped into the process, so the
//! resident set of a server exporting fifty million rows would grow by the size of the doc
//! store (the kernel can reclaim those pages, but the figure operators watch and the cgroup
//! both count them). Read with `pread` into a buffer, a block costs its own bytes only while it
//! is decoded, and the page cache keeps what is worth keeping.

use std::fs::File;
use std::io;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use tantivy::directory::footer::Footer;
use tantivy::directory::{FileHandle, FileSlice, OwnedBytes};
use tantivy::store::StoreReader;
use tantivy::{HasLen, SegmentReader};

use crate::{Error, Result, SearchTarget};

impl SearchTarget {
    /// Opens the doc store of `segment`, one of this target's segments, with its own cache of
    /// `cache_blocks` decompressed blocks: from its file with positioned reads when the target
    /// says where its files are, else — or when the file has moved since, a hot index sealed
    /// meanwhile — through the searcher's own mmap. A store file that cannot be read is
    /// [`Error::File`] naming it.
    pub fn store_reader(
        &self,
        segment: &SegmentReader,
        cache_blocks: usize,
    ) -> Result<StoreReader> {
        if let Some(dir) = &self.dir {
            let path = dir.join(format!("{}.store", segment.segment_id().uuid_string()));
            match open(&path).and_then(|file| StoreReader::open(file, cache_blocks)) {
                Ok(store) => return Ok(store),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(source) => return Err(Error::File { path, source }),
            }
        }
        Ok(segment.get_store_reader(cache_blocks)?)
    }
}

/// A file read with positioned reads.
#[derive(Debug)]
struct PreadFile {
    file: File,
    len: usize,
}

impl HasLen for PreadFile {
    fn len(&self) -> usize {
        self.len
    }
}

impl FileHandle for PreadFile {
    fn read_bytes(&self, range: Range<usize>) -> io::Result<OwnedBytes> {
        if range.start > range.end || range.end > self.len {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("read of {range:?} past a file of {} bytes", self.len),
            ));
        }
        let mut buffer = vec![0; range.len()];
        self.file.read_exact_at(&mut buffer, range.start as u64)?;
        Ok(OwnedBytes::new(buffer))
    }
}

/// Opens `path`, a file tantivy's managed directory wrote, as a [`FileSlice`] read with
/// positioned reads, without its footer (as the directory itself hands files out).
fn open(path: &Path) -> io::Result<FileSlice> {
    let file = File::open(path)?;
    let len = usize::try_from(file.metadata()?.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "file too large"))?;
    let whole = FileSlice::new(Arc::new(PreadFile { file, len }));
    let (footer, body) = Footer::extract_footer(whole)?;
    footer
        .is_compatible()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{e:?}")))?;
    Ok(body)
}
