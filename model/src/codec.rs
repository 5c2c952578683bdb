//! The wire codec: request bodies (identity, zstd or gzip, with a limit on the decompressed
//! size) and NDJSON framing.

use std::io::Read;

use crate::{Error, Result};

/// The encodings an ingest body may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Identity,
    Zstd,
    Gzip,
}

impl Encoding {
    /// Reads a `Content-Encoding` header value; absent or `identity` is [`Encoding::Identity`].
    pub fn from_header(value: Option<&str>) -> Result<Encoding> {
        match value.map(|v| v.trim().to_ascii_lowercase()).as_deref() {
            None | Some("") | Some("identity") => Ok(Encoding::Identity),
            Some("zstd") => Ok(Encoding::Zstd),
            Some("gzip") | Some("x-gzip") => Ok(Encoding::Gzip),
            Some(other) => Err(Error::UnsupportedEncoding(other.chars().take(32).collect())),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Encoding::Identity => "identity",
            Encoding::Zstd => "zstd",
            Encoding::Gzip => "gzip",
        }
    }
}

/// Decodes a body, refusing it whole if it decompresses past `limit` bytes or is truncated or
/// corrupt: a body is either decoded entirely or not at all.
pub fn decode_body(body: &[u8], encoding: Encoding, limit: usize) -> Result<Vec<u8>> {
    match encoding {
        Encoding::Identity => {
            if body.len() > limit {
                return Err(Error::TooLarge { limit });
            }
            Ok(body.to_vec())
        }
        Encoding::Zstd => {
            let decoder =
                zstd::stream::read::Decoder::new(body).map_err(|e| corrupt(encoding, e))?;
            read_limited(decoder, encoding, limit)
        }
        Encoding::Gzip => read_limited(flate2::read::MultiGzDecoder::new(body), encoding, limit),
    }
}

fn corrupt(encoding: Encoding, err: std::io::Error) -> Error {
    Error::Corrupt {
        encoding: encoding.name().to_string(),
        message: err.to_string(),
    }
}

fn read_limited(reader: impl Read, encoding: Encoding, limit: usize) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    // One byte more than the limit tells "exactly at the limit" from "past it".
    reader
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| corrupt(encoding, e))?;
    if out.len() > limit {
        return Err(Error::TooLarge { limit });
    }
    Ok(out)
}

/// Compresses a body with zstd (what the collector sends).
pub fn zstd_compress(body: &[u8], level: i32) -> Vec<u8> {
    // Compressing into a Vec cannot fail for I/O reasons.
    zstd::bulk::compress(body, level).unwrap_or_default()
}

/// Splits an NDJSON body into its non-blank lines, numbered from 1 as a text editor would,
/// without their `\n` or `\r\n` terminators.
pub fn ndjson_lines(body: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    body.split(|&b| b == b'\n')
        .enumerate()
        .map(|(i, line)| (i + 1, line.strip_suffix(b"\r").unwrap_or(line)))
        .filter(|(_, line)| !line.iter().all(|b| b.is_ascii_whitespace()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn zstd_and_gzip_round_trip() {
        let body = b"{\"message\":\"a\"}\n{\"message\":\"b\"}\n".repeat(100);
        let z = zstd_compress(&body, 3);
        assert_eq!(decode_body(&z, Encoding::Zstd, 1 << 20).unwrap(), body);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&body).unwrap();
        let gz = gz.finish().unwrap();
        assert_eq!(decode_body(&gz, Encoding::Gzip, 1 << 20).unwrap(), body);
    }

    #[test]
    fn decompression_bomb_is_too_large() {
        let body = vec![b'a'; 10 << 20];
        let z = zstd_compress(&body, 3);
        assert!(z.len() < 10_000);
        assert!(matches!(
            decode_body(&z, Encoding::Zstd, 1 << 20),
            Err(Error::TooLarge { limit }) if limit == 1 << 20
        ));
        assert_eq!(
            decode_body(&z, Encoding::Zstd, 10 << 20).unwrap().len(),
            10 << 20
        );
    }

    #[test]
    fn truncated_bodies_are_corrupt() {
        let body = b"{\"message\":\"hello\"}\n".repeat(1000);
        let z = zstd_compress(&body, 3);
        assert!(matches!(
            decode_body(&z[..z.len() / 2], Encoding::Zstd, 1 << 20),
            Err(Error::Corrupt { .. })
        ));
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&body).unwrap();
        let gz = gz.finish().unwrap();
        assert!(matches!(
            decode_body(&gz[..gz.len() - 4], Encoding::Gzip, 1 << 20),
            Err(Error::Corrupt { .. })
        ));
        assert!(matches!(
            decode_body(b"not zstd at all", Encoding::Zstd, 1 << 20),
            Err(Error::Corrupt { .. })
        ));
    }

    #[test]
    fn encodings_from_header() {
        assert_eq!(Encoding::from_header(None).unwrap(), Encoding::Identity);
        assert_eq!(Encoding::from_header(Some("ZSTD")).unwrap(), Encoding::Zstd);
        assert!(matches!(
            Encoding::from_header(Some("br")),
            Err(Error::UnsupportedEncoding(e)) if e == "br"
        ));
    }

    #[test]
    fn ndjson_lines_are_numbered_and_blank_ones_skipped() {
        let lines: Vec<_> = ndjson_lines(b"a\r\n\n  \nb\nc").collect();
        assert_eq!(lines, vec![(1, &b"a"[..]), (4, &b"b"[..]), (5, &b"c"[..])]);
    }
}
