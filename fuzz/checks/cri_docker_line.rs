//! The collector's container log parser: every physical line of the input goes through format
//! detection, the CRI and docker json-file parsers, the assembler that joins partial lines and
//! splits long ones (with a small `max_line_bytes` taken from the first byte), and the
//! level/attribute enrichment of each assembled record.
//!
//! Checked: nothing panics; as the assembler's offset contract says, every record starts at a
//! line boundary it was fed, before its end, and the ends strictly increase.
//!
//! Shared by the cargo-fuzz target `fuzz_targets/cri_docker_line.rs` and the replay of its seed
//! corpus in `cargo test` (tests/e2e/fuzz_seeds.rs).

use trawl_collector::parse::{detect_format, enrich, parse_line, Assembler, LogFormat};

/// Runs one input; panics on what the target checks.
pub fn run(data: &[u8]) {
    let Some((&knob, body)) = data.split_first() else {
        return;
    };
    let max_line_bytes = usize::from(knob) + 1;
    let format = body
        .split(|&b| b == b'\n')
        .find_map(detect_format)
        .unwrap_or(if knob & 1 == 0 {
            LogFormat::Cri
        } else {
            LogFormat::Docker
        });
    let mut assembler = Assembler::new(max_line_bytes);
    let mut records = Vec::new();
    let mut boundaries = vec![0u64];
    let mut start = 0u64;
    // Complete lines only, as the tailer feeds them: an unterminated tail waits for more.
    for line in body.split_inclusive(|&b| b == b'\n') {
        let Some(line) = line.strip_suffix(b"\n") else {
            break;
        };
        let end = start + line.len() as u64 + 1;
        // Both parsers see every line, whatever the file's format.
        let _ = parse_line(LogFormat::Cri, line);
        let _ = parse_line(LogFormat::Docker, line);
        match parse_line(format, line) {
            Ok(fragment) => records.extend(assembler.push(fragment, start, end)),
            Err(_) => records.extend(assembler.push_malformed(line, start, end)),
        }
        start = end;
        boundaries.push(start);
    }
    records.extend(assembler.flush_all());
    let mut last_end = 0u64;
    for record in &records {
        assert!(
            record.start < record.end && record.end > last_end,
            "{record:?} after end {last_end}"
        );
        assert!(
            boundaries.binary_search(&record.start).is_ok(),
            "{record:?}"
        );
        last_end = record.end;
        let _ = enrich(&record.message);
    }
}
