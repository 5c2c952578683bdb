//! The write-ahead log: every accepted batch is appended here and fsynced before it is
//! acknowledged.
//!
//! The log is a directory of segment files named by the log position (LSN) of their first byte,
//! so that a position is a plain byte count over the whole history. An entry is framed as
//! `[len: u32 LE][crc32 of payload: u32 LE][payload]`. A torn final entry (a crash in the middle
//! of a write) fails its length or checksum and is cut off when the log is opened; it is never
//! replayed.
//!
//! A write or fsync that fails while the process lives (the disk full) is cut back at once, so
//! that the next entry follows the last good one; if even the cut fails, appends are refused
//! until it succeeds, so that no entry is ever written behind a partial one.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::settings::FaultPoint;
use crate::{Error, Result};

const HEADER_BYTES: u64 = 8;
/// Entries larger than this are refused; the ingest limits keep batches far below it.
pub const MAX_ENTRY_BYTES: u32 = 1 << 30;
const SEGMENT_SUFFIX: &str = ".wal";

/// One entry read back from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalEntry {
    /// Position of the entry's first byte.
    pub lsn: u64,
    /// Position just past the entry.
    pub end: u64,
    pub payload: Vec<u8>,
}

/// An open log, positioned at its end for appending.
pub struct Wal {
    dir: PathBuf,
    segment_max_bytes: u64,
    /// Start positions of the segments, ascending; the last is being appended to.
    segments: Vec<u64>,
    file: File,
    /// Position just past the last durable byte.
    end: u64,
    /// Set when a failed write could not be cut back: the file holds bytes past `end` that must
    /// go before anything else is appended.
    tail_dirty: bool,
    fault: FaultPoint,
}

impl Wal {
    /// Opens (or creates) the log in `dir`, cuts off a torn tail, and returns every entry at or
    /// past `from` for replay.
    pub fn open(dir: &Path, segment_max_bytes: u64, from: u64) -> Result<(Wal, Vec<WalEntry>)> {
        fs::create_dir_all(dir)?;
        let mut segments = list_segments(dir)?;
        if segments.is_empty() {
            segments.push(from);
            File::create(segment_path(dir, from))?;
            sync_dir(dir)?;
        }
        let mut entries = Vec::new();
        let mut end = segments[0];
        let last = segments.len() - 1;
        for (i, &start) in segments.iter().enumerate() {
            let path = segment_path(dir, start);
            let (seg_entries, valid_len) = read_segment(&path, start, from)?;
            let file_len = fs::metadata(&path)?.len();
            if valid_len < file_len {
                if i != last {
                    return Err(Error::Io(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "write-ahead log segment {} is corrupt at byte {valid_len}",
                            path.display()
                        ),
                    )));
                }
                tracing::warn!(
                    segment = %path.display(),
                    valid_len,
                    file_len,
                    "torn entry at the end of the write-ahead log, cut off"
                );
                let file = OpenOptions::new().write(true).open(&path)?;
                file.set_len(valid_len)?;
                file.sync_all()?;
            }
            entries.extend(seg_entries);
            end = start + valid_len;
        }
        let tail = segment_path(dir, segments[last]);
        let mut file = OpenOptions::new().append(true).open(tail)?;
        file.seek(SeekFrom::End(0))?;
        Ok((
            Wal {
                dir: dir.to_path_buf(),
                segment_max_bytes,
                segments,
                file,
                end,
                tail_dirty: false,
                fault: FaultPoint::default(),
            },
            entries,
        ))
    }

    /// Installs the storage fault hook (tests): an append it fails writes half its bytes first,
    /// as a full disk may, and a sync it fails reports the error.
    pub fn set_fault(&mut self, fault: FaultPoint) {
        self.fault = fault;
    }

    /// Position just past the last appended entry.
    pub fn end(&self) -> u64 {
        self.end
    }

    /// Bytes held on disk by the log.
    pub fn disk_bytes(&self) -> u64 {
        self.end - self.segments[0]
    }

    /// Writes entries without syncing; returns each entry's `(lsn, end)`. Call [`Wal::sync`]
    /// before acknowledging any of them. On error the log is rolled back to its state before the
    /// call, so a failed append leaves no partial entry behind.
    pub fn append(&mut self, payloads: &[&[u8]]) -> Result<Vec<(u64, u64)>> {
        if self.tail_dirty {
            // A former failed write is still on disk: cut it first, or refuse.
            self.cut_to(self.end)?;
        }
        if self.end - self.current_segment() >= self.segment_max_bytes {
            self.roll()?;
        }
        let start = self.end;
        let mut buf = Vec::with_capacity(payloads.iter().map(|p| p.len() + 8).sum());
        let mut positions = Vec::with_capacity(payloads.len());
        let mut pos = start;
        for payload in payloads {
            let len = u32::try_from(payload.len())
                .ok()
                .filter(|&len| len <= MAX_ENTRY_BYTES)
                .ok_or_else(|| Error::InvalidArgument("write-ahead log entry too large".into()))?;
            buf.extend_from_slice(&len.to_le_bytes());
            buf.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
            buf.extend_from_slice(payload);
            let next = pos + HEADER_BYTES + u64::from(len);
            positions.push((pos, next));
            pos = next;
        }
        let written = match self.fault.injected() {
            // A full disk takes part of a write before it refuses the rest.
            Some(err) => self.file.write_all(&buf[..buf.len() / 2]).and(Err(err)),
            None => self.file.write_all(&buf),
        };
        if let Err(err) = written {
            self.rollback(start);
            return Err(err.into());
        }
        self.end = pos;
        Ok(positions)
    }

    /// Makes everything appended so far durable. On error the caller must [`Wal::rollback`] to
    /// the last position it knows durable: what followed it may or may not be on disk.
    pub fn sync(&mut self) -> Result<()> {
        self.fault.check()?;
        self.file.sync_data()?;
        Ok(())
    }

    /// Cuts the log back to `end` after a failed write or sync. If the cut itself fails, the log
    /// remembers it and the next append retries it first (and fails while it cannot).
    pub fn rollback(&mut self, end: u64) {
        if end < self.current_segment() || end > self.end {
            return;
        }
        self.end = end;
        if let Err(err) = self.cut_to(end) {
            tracing::error!(%err, "could not cut back the write-ahead log after a failed write; appends wait until it can");
        }
    }

    /// Truncates the current segment so that the log ends at `end`, and syncs the cut.
    fn cut_to(&mut self, end: u64) -> Result<()> {
        let result = self
            .file
            .set_len(end - self.current_segment())
            .and_then(|()| self.file.sync_data());
        self.tail_dirty = result.is_err();
        Ok(result?)
    }

    fn current_segment(&self) -> u64 {
        self.segments[self.segments.len() - 1]
    }

    fn roll(&mut self) -> Result<()> {
        self.file.sync_data()?;
        let path = segment_path(&self.dir, self.end);
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        sync_dir(&self.dir)?;
        self.file = file;
        self.segments.push(self.end);
        Ok(())
    }

    /// Deletes whole segments that hold nothing at or past `lsn`; the segment being appended to
    /// is never deleted. Returns the number of bytes freed.
    pub fn truncate_before(&mut self, lsn: u64) -> Result<u64> {
        let mut freed = 0;
        while self.segments.len() > 1 && self.segments[1] <= lsn {
            let start = self.segments.remove(0);
            freed += self.segments[0] - start;
            fs::remove_file(segment_path(&self.dir, start))?;
        }
        if freed > 0 {
            sync_dir(&self.dir)?;
        }
        Ok(freed)
    }
}

fn segment_path(dir: &Path, start: u64) -> PathBuf {
    dir.join(format!("{start:020}{SEGMENT_SUFFIX}"))
}

fn list_segments(dir: &Path) -> Result<Vec<u64>> {
    let mut segments = Vec::new();
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(start) = name
            .strip_suffix(SEGMENT_SUFFIX)
            .and_then(|n| n.parse::<u64>().ok())
        {
            segments.push(start);
        }
    }
    segments.sort_unstable();
    Ok(segments)
}

/// Reads a segment; returns the entries at or past `from` and the length of its valid prefix.
fn read_segment(path: &Path, start: u64, from: u64) -> Result<(Vec<WalEntry>, u64)> {
    let mut reader = BufReader::with_capacity(1 << 20, File::open(path)?);
    let mut entries = Vec::new();
    let mut pos = 0u64;
    let mut header = [0u8; HEADER_BYTES as usize];
    loop {
        match read_full(&mut reader, &mut header)? {
            0 => break,
            n if n < header.len() => break,
            _ => {}
        }
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        if len > MAX_ENTRY_BYTES {
            break;
        }
        let lsn = start + pos;
        let end = lsn + HEADER_BYTES + u64::from(len);
        if end <= from {
            // Before the replay point: skip without checking, it was verified when written
            // and is no longer needed.
            if reader.seek_relative(i64::from(len)).is_err() {
                break;
            }
            pos += HEADER_BYTES + u64::from(len);
            continue;
        }
        let mut payload = vec![0u8; len as usize];
        if read_full(&mut reader, &mut payload)? < payload.len() {
            break;
        }
        if crc32fast::hash(&payload) != crc {
            break;
        }
        entries.push(WalEntry { lsn, end, payload });
        pos += HEADER_BYTES + u64::from(len);
    }
    // A skip past the end of the file leaves `pos` beyond it; clamp to what exists.
    let file_len = fs::metadata(path)?.len();
    Ok((entries, pos.min(file_len)))
}

fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Fsyncs a directory so that a created, renamed or deleted entry in it is durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payloads(n: usize) -> Vec<Vec<u8>> {
        (0..n)
            .map(|i| format!("entry number {i}").into_bytes())
            .collect()
    }

    #[test]
    fn append_and_replay() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, entries) = Wal::open(dir.path(), 1 << 20, 0).unwrap();
        assert!(entries.is_empty());
        let data = payloads(10);
        let refs: Vec<&[u8]> = data.iter().map(|p| p.as_slice()).collect();
        let positions = wal.append(&refs).unwrap();
        wal.sync().unwrap();
        drop(wal);
        let (wal, entries) = Wal::open(dir.path(), 1 << 20, 0).unwrap();
        assert_eq!(entries.len(), 10);
        for (i, entry) in entries.iter().enumerate() {
            assert_eq!(entry.payload, data[i]);
            assert_eq!((entry.lsn, entry.end), positions[i]);
        }
        assert_eq!(wal.end(), positions[9].1);
        // Replay from the middle returns only what follows.
        drop(wal);
        let (_, entries) = Wal::open(dir.path(), 1 << 20, positions[6].0).unwrap();
        assert_eq!(entries.len(), 4);
        assert_eq!(entries[0].payload, data[6]);
    }

    #[test]
    fn torn_final_entry_is_dropped_not_replayed() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = Wal::open(dir.path(), 1 << 20, 0).unwrap();
        wal.append(&[b"first", b"second"]).unwrap();
        wal.sync().unwrap();
        let good_end = wal.end();
        drop(wal);
        // A crash in the middle of writing a third entry: its header and half its payload.
        let path = segment_path(dir.path(), 0);
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        let payload = b"third entry that never finished";
        file.write_all(&(payload.len() as u32).to_le_bytes())
            .unwrap();
        file.write_all(&crc32fast::hash(payload).to_le_bytes())
            .unwrap();
        file.write_all(&payload[..10]).unwrap();
        drop(file);

        let (mut wal, entries) = Wal::open(dir.path(), 1 << 20, 0).unwrap();
        let got: Vec<&[u8]> = entries.iter().map(|e| e.payload.as_slice()).collect();
        assert_eq!(got, vec![&b"first"[..], &b"second"[..]]);
        assert_eq!(wal.end(), good_end);
        assert_eq!(fs::metadata(&path).unwrap().len(), good_end);
        // Appending after the cut works and replays cleanly.
        wal.append(&[b"fourth"]).unwrap();
        wal.sync().unwrap();
        drop(wal);
        let (_, entries) = Wal::open(dir.path(), 1 << 20, 0).unwrap();
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[2].payload, b"fourth");
    }

    /// A fault point that fails the calls whose numbers (from 0) `fail` holds.
    fn failing_calls(fail: &'static [usize]) -> FaultPoint {
        let calls = std::sync::atomic::AtomicUsize::new(0);
        FaultPoint::new(Some(std::sync::Arc::new(move || {
            let n = calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            fail.contains(&n)
                .then(|| io::Error::new(io::ErrorKind::StorageFull, "no space left on device"))
        })))
    }

    #[test]
    fn a_write_failing_mid_batch_leaves_no_partial_entry_and_replays_cleanly() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = Wal::open(dir.path(), 1 << 20, 0).unwrap();
        let first = wal.append(&[b"before the disk filled"]).unwrap();
        wal.sync().unwrap();
        let good_end = wal.end();
        // Calls: 0 = the batch's write (fails half-way), 1 = the next write, 2 = its sync.
        wal.set_fault(failing_calls(&[0]));
        let err = wal
            .append(&[b"lost one", b"lost two", b"lost three"])
            .unwrap_err();
        assert!(
            matches!(&err, Error::Io(e) if e.kind() == io::ErrorKind::StorageFull),
            "{err}"
        );
        assert_eq!(wal.end(), good_end);
        let path = segment_path(dir.path(), 0);
        assert_eq!(fs::metadata(&path).unwrap().len(), good_end);
        // Space is back: the next entry follows the last good one.
        let after = wal.append(&[b"after the disk emptied"]).unwrap();
        wal.sync().unwrap();
        assert_eq!(after[0].0, good_end);
        drop(wal);
        let (wal, entries) = Wal::open(dir.path(), 1 << 20, 0).unwrap();
        let got: Vec<(&[u8], u64, u64)> = entries
            .iter()
            .map(|e| (e.payload.as_slice(), e.lsn, e.end))
            .collect();
        assert_eq!(
            got,
            vec![
                (&b"before the disk filled"[..], first[0].0, first[0].1),
                (&b"after the disk emptied"[..], after[0].0, after[0].1),
            ]
        );
        assert_eq!(wal.end(), after[0].1);
    }

    #[test]
    fn a_failed_fsync_is_cut_back_and_the_log_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = Wal::open(dir.path(), 1 << 20, 0).unwrap();
        wal.append(&[b"kept"]).unwrap();
        wal.sync().unwrap();
        let good_end = wal.end();
        // Call 0 = the write (passes), 1 = the fsync (fails).
        wal.set_fault(failing_calls(&[1]));
        wal.append(&[b"written but never durable"]).unwrap();
        assert!(wal.sync().is_err());
        // What the WAL thread does on a failed group: back to the last durable position.
        wal.rollback(good_end);
        assert_eq!(wal.end(), good_end);
        wal.append(&[b"next"]).unwrap();
        wal.sync().unwrap();
        drop(wal);
        let (_, entries) = Wal::open(dir.path(), 1 << 20, 0).unwrap();
        let got: Vec<&[u8]> = entries.iter().map(|e| e.payload.as_slice()).collect();
        assert_eq!(got, vec![&b"kept"[..], &b"next"[..]]);
    }

    #[test]
    fn a_failure_right_after_a_segment_roll_is_cut_back_too() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = Wal::open(dir.path(), 16, 0).unwrap();
        wal.append(&[b"fills the first segment"]).unwrap();
        wal.sync().unwrap();
        let good_end = wal.end();
        wal.set_fault(failing_calls(&[0]));
        assert!(wal.append(&[b"starts a new segment and fails"]).is_err());
        assert_eq!(wal.end(), good_end);
        assert_eq!(
            fs::metadata(segment_path(dir.path(), good_end))
                .unwrap()
                .len(),
            0
        );
        wal.append(&[b"second"]).unwrap();
        wal.sync().unwrap();
        drop(wal);
        let (_, entries) = Wal::open(dir.path(), 16, 0).unwrap();
        let got: Vec<&[u8]> = entries.iter().map(|e| e.payload.as_slice()).collect();
        assert_eq!(got, vec![&b"fills the first segment"[..], &b"second"[..]]);
    }

    #[test]
    fn corrupt_checksum_at_the_tail_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = Wal::open(dir.path(), 1 << 20, 0).unwrap();
        wal.append(&[b"kept", b"flipped"]).unwrap();
        wal.sync().unwrap();
        drop(wal);
        let path = segment_path(dir.path(), 0);
        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        fs::write(&path, bytes).unwrap();
        let (_, entries) = Wal::open(dir.path(), 1 << 20, 0).unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].payload, b"kept");
    }

    #[test]
    fn segments_roll_and_truncate() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = Wal::open(dir.path(), 100, 0).unwrap();
        let data = payloads(50);
        let mut positions = Vec::new();
        for p in &data {
            positions.extend(wal.append(&[p.as_slice()]).unwrap());
            wal.sync().unwrap();
        }
        let segments_before = list_segments(dir.path()).unwrap().len();
        assert!(segments_before > 5, "{segments_before}");
        let cut = positions[30].0;
        let freed = wal.truncate_before(cut).unwrap();
        assert!(freed > 0);
        drop(wal);
        let (_, entries) = Wal::open(dir.path(), 100, cut).unwrap();
        assert_eq!(entries.len(), 20);
        assert_eq!(entries[0].payload, data[30]);
        // Every entry at or past the cut survived truncation.
        let (_, all) = Wal::open(dir.path(), 100, 0).unwrap();
        assert!(all.iter().any(|e| e.lsn == cut));
    }

    #[test]
    fn corruption_in_an_older_segment_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = Wal::open(dir.path(), 10, 0).unwrap();
        for p in payloads(5) {
            wal.append(&[p.as_slice()]).unwrap();
        }
        wal.sync().unwrap();
        drop(wal);
        let first = segment_path(dir.path(), 0);
        let mut bytes = fs::read(&first).unwrap();
        bytes[9] ^= 0xff;
        fs::write(&first, bytes).unwrap();
        assert!(Wal::open(dir.path(), 10, 0).is_err());
    }
}
