//! The seeded corpus generator: container logs (`logs`), audit events (`audit`), and CRI log
//! files laid out like `/var/log/pods`. The same seed always yields the same bytes.

pub mod audit;
pub mod cri;
pub mod loghub;
pub mod logs;
pub mod zipf;

use std::io::Write as _;

use rand::Rng;

/// 2026-11-25T00:00:00Z in nanoseconds since the epoch: the first timestamp of every corpus,
/// fixed so that runs are comparable.
pub const CORPUS_START_NS: i64 = 1_795_564_800 * 1_000_000_000;

/// One NDJSON request body, before compression.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    /// NDJSON, each line ending with `\n`.
    pub ndjson: Vec<u8>,
    /// Number of lines (documents).
    pub docs: usize,
}

/// A batch compressed for the wire (`Content-Encoding: zstd`).
#[derive(Debug, Clone)]
pub struct WireBatch {
    /// The zstd frame.
    pub body: Vec<u8>,
    /// Size before compression.
    pub raw_bytes: usize,
    pub docs: usize,
}

impl Batch {
    /// Compresses the batch with zstd at `level` (1 is what a collector would use).
    pub fn compress(&self, level: i32) -> crate::Result<WireBatch> {
        let body = zstd::bulk::compress(&self.ndjson, level).map_err(crate::Error::Io)?;
        Ok(WireBatch {
            body,
            raw_bytes: self.ndjson.len(),
            docs: self.docs,
        })
    }
}

/// Anything that appends NDJSON lines, one document per call.
pub trait LineSource {
    /// Appends one document and its `\n` to `out`.
    fn next_line(&mut self, out: &mut Vec<u8>);
}

/// Cuts batches of about `batch_bytes` from `source` until `total_bytes` have been produced (the
/// last batch may be short; a line is never split).
pub fn batches<S: LineSource>(source: &mut S, total_bytes: u64, batch_bytes: usize) -> Vec<Batch> {
    let mut out = Vec::new();
    let mut produced = 0u64;
    while produced < total_bytes {
        let batch = next_batch(source, batch_bytes);
        produced += batch.ndjson.len() as u64;
        out.push(batch);
    }
    out
}

/// One batch of about `batch_bytes` (at least one line).
pub fn next_batch<S: LineSource>(source: &mut S, batch_bytes: usize) -> Batch {
    next_batch_limited(source, batch_bytes, usize::MAX)
}

/// One batch of about `batch_bytes` and at most `max_docs` lines (at least one line).
pub fn next_batch_limited<S: LineSource>(
    source: &mut S,
    batch_bytes: usize,
    max_docs: usize,
) -> Batch {
    let mut batch = Batch {
        ndjson: Vec::with_capacity(batch_bytes + 4096),
        docs: 0,
    };
    while (batch.ndjson.len() < batch_bytes && batch.docs < max_docs) || batch.docs == 0 {
        source.next_line(&mut batch.ndjson);
        batch.docs += 1;
    }
    batch
}

/// Appends `s` as a JSON string literal (quoted and escaped).
pub fn push_json_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        if escape.is_empty() {
            let _ = write!(out, "\\u{b:04x}");
        } else {
            out.extend_from_slice(escape);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// A calendar date and time of day, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Civil {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    pub nanos: u32,
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

impl Civil {
    /// Splits nanoseconds since the epoch (Howard Hinnant's `civil_from_days`).
    pub fn from_nanos(ns: i64) -> Civil {
        let secs = ns.div_euclid(1_000_000_000);
        let nanos = ns.rem_euclid(1_000_000_000) as u32;
        let days = secs.div_euclid(86_400);
        let tod = secs.rem_euclid(86_400) as u32;
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let year = yoe + era * 400 + i64::from(month <= 2);
        Civil {
            year,
            month,
            day,
            hour: tod / 3600,
            minute: tod / 60 % 60,
            second: tod % 60,
            nanos,
        }
    }

    /// `2026-11-25T10:15:00.123456789Z`
    pub fn rfc3339_nanos(&self, out: &mut Vec<u8>) {
        let _ = write!(
            out,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:09}Z",
            self.year, self.month, self.day, self.hour, self.minute, self.second, self.nanos
        );
    }

    /// `2026-11-25T10:15:00.123456Z` (the API server's precision).
    pub fn rfc3339_micros(&self, out: &mut Vec<u8>) {
        let _ = write!(
            out,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
            self.year,
            self.month,
            self.day,
            self.hour,
            self.minute,
            self.second,
            self.nanos / 1000
        );
    }

    /// klog's header time: `1125 10:15:00.123456` (month, day, time with microseconds).
    pub fn klog(&self, out: &mut String) {
        use std::fmt::Write as _;
        let _ = write!(
            out,
            "{:02}{:02} {:02}:{:02}:{:02}.{:06}",
            self.month,
            self.day,
            self.hour,
            self.minute,
            self.second,
            self.nanos / 1000
        );
    }

    /// Logback's default: `2026-11-25 10:15:00.123`.
    pub fn java(&self, out: &mut String) {
        use std::fmt::Write as _;
        let _ = write!(
            out,
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:03}",
            self.year,
            self.month,
            self.day,
            self.hour,
            self.minute,
            self.second,
            self.nanos / 1_000_000
        );
    }

    /// nginx `$time_local` in UTC: `25/Nov/2026:10:15:00 +0000`.
    pub fn nginx_access(&self, out: &mut String) {
        use std::fmt::Write as _;
        let month = MONTHS[(self.month as usize).clamp(1, 12) - 1];
        let _ = write!(
            out,
            "{:02}/{}/{:04}:{:02}:{:02}:{:02} +0000",
            self.day, month, self.year, self.hour, self.minute, self.second
        );
    }

    /// nginx error log time: `2026/11/25 10:15:00`.
    pub fn nginx_error(&self, out: &mut String) {
        use std::fmt::Write as _;
        let _ = write!(
            out,
            "{:04}/{:02}/{:02} {:02}:{:02}:{:02}",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        );
    }
}

/// A random lower-case hex string of `len` digits.
pub fn hex<R: Rng + ?Sized>(rng: &mut R, len: usize) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    (0..len)
        .map(|_| DIGITS[rng.random_range(0..16)] as char)
        .collect()
}

/// A random UUID (version 4 layout).
pub fn uuid<R: Rng + ?Sized>(rng: &mut R) -> String {
    let a: u128 = rng.random();
    let a = (a & !(0xf << 76) | (0x4 << 76)) & !(0x3 << 62) | (0x2 << 62);
    let h = format!("{a:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// A random lower-case alphanumeric suffix like kube's pod-name suffixes (`x2k4q`).
pub fn kube_suffix<R: Rng + ?Sized>(rng: &mut R, len: usize) -> String {
    // Kubernetes' own alphabet: no vowels, no 0/1/3 look-alikes.
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..len)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    fn civil_formats() {
        let c = Civil::from_nanos(CORPUS_START_NS + 36_900_123_456_789);
        let mut s = Vec::new();
        c.rfc3339_nanos(&mut s);
        assert_eq!(
            String::from_utf8(s).unwrap(),
            "2026-11-25T10:15:00.123456789Z"
        );
        let mut k = String::new();
        c.klog(&mut k);
        assert_eq!(k, "1125 10:15:00.123456");
        let mut n = String::new();
        c.nginx_access(&mut n);
        assert_eq!(n, "25/Nov/2026:10:15:00 +0000");
        let leap = Civil::from_nanos(951_782_400 * 1_000_000_000);
        assert_eq!((leap.year, leap.month, leap.day), (2000, 2, 29));
    }

    #[test]
    fn json_strings_are_escaped() {
        let mut out = Vec::new();
        push_json_str(&mut out, "a\"b\\c\nd\te\u{1}é");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\"a\\\"b\\\\c\\nd\\te\\u0001é\""
        );
    }

    #[test]
    fn uuid_layout() {
        let mut rng = StdRng::seed_from_u64(3);
        let id = uuid(&mut rng);
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"), "{id}");
    }

    struct Counter(usize);
    impl LineSource for Counter {
        fn next_line(&mut self, out: &mut Vec<u8>) {
            self.0 += 1;
            out.extend_from_slice(b"0123456789\n");
        }
    }

    #[test]
    fn batches_cover_the_total() {
        let mut c = Counter(0);
        // Lines of 11 bytes: a 30-byte batch takes 3 (33 bytes); 100 bytes need 4 batches.
        let b = batches(&mut c, 100, 30);
        assert_eq!(b.len(), 4);
        assert!(b.iter().all(|b| b.docs == 3 && b.ndjson.len() == 33));
        assert_eq!(b.iter().map(|b| b.docs).sum::<usize>(), c.0);
    }
}
