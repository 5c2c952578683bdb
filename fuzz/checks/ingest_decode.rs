//! The ingest decoder: a body with a `Content-Encoding` (identity, zstd or gzip, chosen by the
//! first byte) decoded under a decompressed-size limit, split into NDJSON lines, each line
//! validated as a record of the `logs`, `audit`, `events` and `journal` streams as ingest does.
//!
//! Checked: nothing panics; a decoded body never exceeds the limit; zstd and gzip round trips
//! of the input give it back.
//!
//! Shared by the cargo-fuzz target `fuzz_targets/ingest_decode.rs` and the replay of its seed
//! corpus in `cargo test` (tests/e2e/fuzz_seeds.rs).

use std::io::Write;

use trawl_model::codec::{decode_body, ndjson_lines, zstd_compress, Encoding};

/// Limit on the decompressed size: small, so that bombs are cheap to find.
const LIMIT: usize = 256 * 1024;

/// Runs one input; panics on what the target checks.
pub fn run(data: &[u8]) {
    let Some((&knob, body)) = data.split_first() else {
        return;
    };
    let encoding = match knob % 3 {
        0 => Encoding::Identity,
        1 => Encoding::Zstd,
        _ => Encoding::Gzip,
    };
    let limit = if knob & 0x80 != 0 { 64 } else { LIMIT };
    if let Ok(decoded) = decode_body(body, encoding, limit) {
        assert!(decoded.len() <= limit);
        for (number, line) in ndjson_lines(&decoded) {
            assert!(number >= 1 && !line.contains(&b'\n'));
        }
        let _ = trawl_indexer::fuzz_prepare_lines("logs", &decoded);
        let _ = trawl_indexer::fuzz_prepare_lines("audit", &decoded);
        let _ = trawl_indexer::fuzz_prepare_lines("events", &decoded);
        let _ = trawl_indexer::fuzz_prepare_lines("journal", &decoded);
    }

    // What the collector compresses, the indexer decodes back exactly.
    if body.len() <= LIMIT {
        let z = zstd_compress(body, 1);
        assert_eq!(decode_body(&z, Encoding::Zstd, LIMIT).unwrap(), body);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(body).unwrap();
        let gz = gz.finish().unwrap();
        assert_eq!(decode_body(&gz, Encoding::Gzip, LIMIT).unwrap(), body);
    }
}
