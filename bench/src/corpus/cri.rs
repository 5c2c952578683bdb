//! CRI log files laid out like the kubelet's `/var/log/pods`:
//! `<dir>/<namespace>_<pod>_<uid>/<container>/0.log`, lines `<RFC3339Nano> <stream> <P|F> <text>`.
//! A multi-line entry (a stack trace) becomes one line per text line, as the runtime writes it;
//! a few long lines are split into a partial (`P`) and a final (`F`) part.

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::logs::{LogGenerator, Pod};
use super::Civil;

/// What [`write_pods_dir`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CriStats {
    /// Log files written.
    pub files: usize,
    /// Bytes written, all files.
    pub bytes: u64,
    /// Records a collector should ship: one per `F` line (partial lines joined).
    pub records: usize,
    /// Lines split into a `P` and an `F` part.
    pub partial_lines: usize,
}

/// Per-file buffer flushed at this size, so that 1,000 files need no 1,000 open descriptors.
const FLUSH_BYTES: usize = 256 * 1024;

/// Writes about `total_bytes` of CRI lines from `gen` into `dir`, in `files` files (at least
/// one, at most one per pod of `gen`): the lines of the generator's pod `q` go to file
/// `q % files`, laid out as the pod `q % files`'s. So a generator with as many pods as the
/// largest count writes the same lines, in the same order per pod, whatever the count: only
/// how they are spread over files changes. Pods are chosen Zipf-wise by the generator.
/// Errors: any I/O error, with the path.
pub fn write_pods_dir(
    gen: &mut LogGenerator,
    dir: &Path,
    total_bytes: u64,
    seed: u64,
    files: usize,
) -> crate::Result<CriStats> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0xc21);
    let files = files.clamp(1, gen.pods().len().max(1));
    let paths: Vec<PathBuf> = gen
        .pods()
        .iter()
        .take(files)
        .map(|pod| log_path(dir, pod))
        .collect();
    for path in &paths {
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(|e| crate::Error::path(parent, e))?;
            // An empty file per pod, so that every pod is a file even if it stays quiet.
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| crate::Error::path(path, e))?;
        }
    }
    let mut stats = CriStats {
        files: paths.len(),
        ..CriStats::default()
    };
    let mut buffers: BTreeMap<usize, Vec<u8>> = BTreeMap::new();
    let mut ts = Vec::with_capacity(40);
    while stats.bytes < total_bytes {
        let entry = gen.next_entry();
        let file = entry.pod % files;
        let buf = buffers.entry(file).or_default();
        let mut ns = entry.timestamp_ns;
        for line in entry.message.split('\n') {
            ts.clear();
            Civil::from_nanos(ns).rfc3339_nanos(&mut ts);
            let before = buf.len();
            if line.len() > 300 && rng.random_bool(0.05) {
                let mut cut = line.len() / 2;
                while !line.is_char_boundary(cut) {
                    cut -= 1;
                }
                for (tag, part) in [("P", &line[..cut]), ("F", &line[cut..])] {
                    buf.extend_from_slice(&ts);
                    buf.push(b' ');
                    buf.extend_from_slice(entry.stream.as_bytes());
                    buf.push(b' ');
                    buf.extend_from_slice(tag.as_bytes());
                    buf.push(b' ');
                    buf.extend_from_slice(part.as_bytes());
                    buf.push(b'\n');
                }
                stats.partial_lines += 1;
            } else {
                buf.extend_from_slice(&ts);
                buf.push(b' ');
                buf.extend_from_slice(entry.stream.as_bytes());
                buf.extend_from_slice(b" F ");
                buf.extend_from_slice(line.as_bytes());
                buf.push(b'\n');
            }
            stats.records += 1;
            stats.bytes += (buf.len() - before) as u64;
            ns += 1_000;
        }
        if buf.len() >= FLUSH_BYTES {
            append(&paths[file], buf)?;
            buf.clear();
        }
    }
    for (file, buf) in buffers {
        if !buf.is_empty() {
            append(&paths[file], &buf)?;
        }
    }
    Ok(stats)
}

/// Where the kubelet writes the log of `pod`'s container under `dir`.
fn log_path(dir: &Path, pod: &Pod) -> PathBuf {
    dir.join(format!("{}_{}_{}", pod.namespace, pod.name, pod.uid))
        .join(&pod.container)
        .join("0.log")
}

fn append(path: &Path, bytes: &[u8]) -> crate::Result<()> {
    let mut file = OpenOptions::new()
        .append(true)
        .open(path)
        .map_err(|e| crate::Error::path(path, e))?;
    file.write_all(bytes)
        .map_err(|e| crate::Error::path(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_and_line_format() {
        let dir = tempfile::tempdir().unwrap();
        let mut gen = LogGenerator::new(5, "bench", 10, 1000.0);
        let stats = write_pods_dir(&mut gen, dir.path(), 200_000, 5, 10).unwrap();
        assert_eq!(stats.files, 10);
        let mut total = 0u64;
        let mut finals = 0usize;
        for pod in gen.pods() {
            let text = fs::read_to_string(log_path(dir.path(), pod)).unwrap();
            total += text.len() as u64;
            for line in text.lines() {
                let mut parts = line.splitn(4, ' ');
                let ts = parts.next().unwrap();
                assert!(trawl_model::Timestamp::parse_rfc3339(ts).is_ok(), "{line}");
                assert!(matches!(parts.next(), Some("stdout" | "stderr")), "{line}");
                let tag = parts.next().unwrap();
                assert!(tag == "P" || tag == "F", "{line}");
                finals += usize::from(tag == "F");
            }
        }
        assert_eq!(total, stats.bytes);
        assert_eq!(finals, stats.records);
        assert!(stats.bytes >= 200_000);
    }

    /// Ten files and forty hold the same lines.
    #[test]
    fn the_same_lines_whatever_the_number_of_files() {
        let lines = |files: usize| {
            let dir = tempfile::tempdir().unwrap();
            let mut gen = LogGenerator::new(9, "bench", 40, 1000.0);
            let stats = write_pods_dir(&mut gen, dir.path(), 150_000, 9, files).unwrap();
            assert_eq!(stats.files, files);
            let mut all: Vec<String> = Vec::new();
            for pod in gen.pods().iter().take(files) {
                all.extend(
                    fs::read_to_string(log_path(dir.path(), pod))
                        .unwrap()
                        .lines()
                        .map(str::to_string),
                );
            }
            all.sort();
            (stats.bytes, stats.records, all)
        };
        let (ten, forty) = (lines(10), lines(40));
        assert!(ten.2.len() > 100, "{}", ten.2.len());
        assert_eq!(ten, forty);
    }
}
