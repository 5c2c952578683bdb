//! File identity: fingerprints, source ids and what a log file's path says about its container.
//!
//! A file is identified by a fingerprint of its first complete line (bytes including the
//! `'\n'`), so that the identity is the same before and after a rename and differs after a
//! truncation or a recreation. Lines longer than [`FINGERPRINT_MAX`] are fingerprinted on their
//! first [`FINGERPRINT_MAX`] bytes, which never change either.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// Bytes looked at, at most, to find a file's first line.
pub const FINGERPRINT_MAX: usize = 16 * 1024;

/// The fingerprint of a file and how many bytes it covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint {
    /// 64-bit FNV-1a hash of the covered bytes.
    pub hash: u64,
    /// Bytes from offset 0 the hash covers (the first line with its `'\n'`, or
    /// [`FINGERPRINT_MAX`]).
    pub len: usize,
}

impl Fingerprint {
    /// The 16 lower-case hex digits used in source ids.
    pub fn hex(&self) -> String {
        format!("{:016x}", self.hash)
    }
}

/// 64-bit FNV-1a: tiny, stable across versions and platforms (unlike `std`'s hasher).
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Fingerprints the start of a file: `None` while its first line is incomplete (shorter than
/// [`FINGERPRINT_MAX`] and without `'\n'`), since the identity must not change as it grows.
pub fn fingerprint_prefix(prefix: &[u8]) -> Option<Fingerprint> {
    match prefix.iter().position(|&b| b == b'\n') {
        Some(i) if i < FINGERPRINT_MAX => Some(Fingerprint {
            hash: fnv1a(&prefix[..=i]),
            len: i + 1,
        }),
        _ if prefix.len() >= FINGERPRINT_MAX => Some(Fingerprint {
            hash: fnv1a(&prefix[..FINGERPRINT_MAX]),
            len: FINGERPRINT_MAX,
        }),
        _ => None,
    }
}

/// Reads the start of `file` and fingerprints it (see [`fingerprint_prefix`]).
pub fn fingerprint_file(file: &File) -> io::Result<Option<Fingerprint>> {
    let mut buf = vec![0u8; FINGERPRINT_MAX];
    let n = read_full_at(file, &mut buf, 0)?;
    Ok(fingerprint_prefix(&buf[..n]))
}

/// Checks that `file` still starts with the bytes `fp` was taken from: `false` after a
/// truncation or a rewrite (copytruncate).
pub fn still_matches(file: &File, fp: &Fingerprint) -> io::Result<bool> {
    let mut buf = vec![0u8; fp.len];
    let n = read_full_at(file, &mut buf, 0)?;
    Ok(n == fp.len && fnv1a(&buf) == fp.hash)
}

/// `pread` until `buf` is full or the end of the file; returns the bytes read.
pub fn read_full_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// What the kubelet's path `<pods_dir>/<namespace>_<pod>_<uid>/<container>/<restart>.log[.<ts>]`
/// says about a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodFile {
    pub namespace: String,
    pub pod: String,
    pub pod_uid: String,
    pub container: String,
    /// The restart count (`0` for `0.log`).
    pub restart: u32,
    /// `false` for `<restart>.log` (the file the runtime writes), `true` for a rotated sibling.
    pub rotated: bool,
}

impl PodFile {
    /// Parses the last three components of a path. `None` for anything else, including
    /// compressed (`.gz`) and temporary (`.tmp`) rotated files, which are never read.
    pub fn from_path(path: &Path) -> Option<PodFile> {
        let mut parts = path.iter().rev();
        let file = parts.next()?.to_str()?;
        let container = parts.next()?.to_str()?;
        let pod_dir = parts.next()?.to_str()?;
        let (restart, rotated) = parse_log_name(file)?;
        let (namespace, pod, pod_uid) = parse_pod_dir(pod_dir)?;
        if container.is_empty() {
            return None;
        }
        Some(PodFile {
            namespace: namespace.to_string(),
            pod: pod.to_string(),
            pod_uid: pod_uid.to_string(),
            container: container.to_string(),
            restart,
            rotated,
        })
    }
}

/// `<namespace>_<pod>_<uid>`: Kubernetes names and uids hold no `_`, so there are exactly two.
pub fn parse_pod_dir(name: &str) -> Option<(&str, &str, &str)> {
    let mut it = name.split('_');
    let (ns, pod, uid) = (it.next()?, it.next()?, it.next()?);
    if it.next().is_some() || ns.is_empty() || pod.is_empty() || uid.is_empty() {
        return None;
    }
    Some((ns, pod, uid))
}

/// `<n>.log` → `(n, false)`; `<n>.log.<suffix>` → `(n, true)` unless the suffix ends with
/// `.gz` or `.tmp`.
pub fn parse_log_name(name: &str) -> Option<(u32, bool)> {
    let (num, rest) = name.split_once(".log")?;
    let restart: u32 = num.parse().ok()?;
    if rest.is_empty() {
        return Some((restart, false));
    }
    let suffix = rest.strip_prefix('.')?;
    if suffix.is_empty() || suffix.ends_with(".gz") || suffix.ends_with(".tmp") {
        return None;
    }
    Some((restart, true))
}

/// Whether `name` is a rotated sibling of the audit log `base` (e.g. `audit.log`): the API
/// server's `audit-2026-11-25T10-15-00.000.log`, or `audit.log.1` / `audit.log.<ts>` from
/// logrotate. Compressed and temporary files are not.
pub fn is_audit_sibling(base: &str, name: &str) -> bool {
    if name == base || name.ends_with(".gz") || name.ends_with(".tmp") {
        return false;
    }
    if let Some(rest) = name.strip_prefix(base) {
        if rest.starts_with('.') && rest.len() > 1 {
            return true;
        }
    }
    let (stem, ext) = match base.rsplit_once('.') {
        Some((stem, ext)) => (stem, Some(ext)),
        None => (base, None),
    };
    let Some(rest) = name.strip_prefix(stem).and_then(|r| r.strip_prefix('-')) else {
        return false;
    };
    match ext {
        Some(ext) => rest.len() > ext.len() + 1 && rest.ends_with(&format!(".{ext}")),
        None => !rest.is_empty(),
    }
}

/// `<node>/<pod_uid>/<container>/<fingerprint>`.
pub fn container_source_id(node: &str, pod_uid: &str, container: &str, fp: &Fingerprint) -> String {
    format!("{node}/{pod_uid}/{container}/{}", fp.hex())
}

/// `<node>/audit/<fingerprint>`.
pub fn audit_source_id(node: &str, fp: &Fingerprint) -> String {
    format!("{node}/audit/{}", fp.hex())
}

/// `<node>/webhook/<segment>`: spool segments have unique names, so no fingerprint is needed.
pub fn spool_source_id(node: &str, segment: &str) -> String {
    format!("{node}/webhook/{segment}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn fingerprints_wait_for_the_first_line() {
        assert_eq!(fingerprint_prefix(b"partial"), None);
        let fp = fingerprint_prefix(b"first\nsecond").unwrap();
        assert_eq!(fp.len, 6);
        assert_eq!(fp.hash, fnv1a(b"first\n"));
        assert_eq!(fingerprint_prefix(b"first\nother"), Some(fp));
        let long = vec![b'x'; FINGERPRINT_MAX + 10];
        assert_eq!(fingerprint_prefix(&long).unwrap().len, FINGERPRINT_MAX);
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fp.hex().len(), 16);
    }

    #[test]
    fn pod_paths() {
        let p = PathBuf::from("/var/log/pods/shop_web-1_0a1b-2c/nginx/3.log");
        assert_eq!(
            PodFile::from_path(&p),
            Some(PodFile {
                namespace: "shop".into(),
                pod: "web-1".into(),
                pod_uid: "0a1b-2c".into(),
                container: "nginx".into(),
                restart: 3,
                rotated: false,
            })
        );
        let r = PodFile::from_path(Path::new("/p/ns_pod_uid/c/0.log.20261125-101500")).unwrap();
        assert!(r.rotated);
        for bad in [
            "/p/ns_pod_uid/c/0.log.20261125-101500.gz",
            "/p/ns_pod_uid/c/0.log.x.tmp",
            "/p/ns_pod/c/0.log",
            "/p/ns_pod_uid_x/c/0.log",
            "/p/ns_pod_uid/c/a.log",
            "/p/ns_pod_uid/c/0.txt",
            "/p/ns_pod_uid/c/0.log.",
        ] {
            assert_eq!(PodFile::from_path(Path::new(bad)), None, "{bad}");
        }
    }

    #[test]
    fn audit_siblings() {
        assert!(is_audit_sibling(
            "audit.log",
            "audit-2026-11-25T10-15-00.000.log"
        ));
        assert!(is_audit_sibling("audit.log", "audit.log.1"));
        assert!(!is_audit_sibling("audit.log", "audit.log"));
        assert!(!is_audit_sibling(
            "audit.log",
            "audit-2026-11-25T10-15-00.000.log.gz"
        ));
        assert!(!is_audit_sibling("audit.log", "audit.log.1.gz"));
        assert!(!is_audit_sibling("audit.log", "other.log"));
        assert!(!is_audit_sibling("audit.log", "audit-.log"));
        assert!(is_audit_sibling("audit", "audit-1"));
    }

    #[test]
    fn source_ids() {
        let fp = Fingerprint { hash: 0xab, len: 3 };
        assert_eq!(
            container_source_id("n1", "uid", "c", &fp),
            "n1/uid/c/00000000000000ab"
        );
        assert_eq!(audit_source_id("n1", &fp), "n1/audit/00000000000000ab");
        assert_eq!(spool_source_id("n1", "0001"), "n1/webhook/0001");
    }
}
