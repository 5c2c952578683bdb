//! Severity detection, the one implementation every surface uses (the collector on each line
//! it tails, the indexer on what other systems' agents send): the fields of a JSON log line, and
//! the severity, from JSON fields or from the usual textual shapes.
//!
//! It runs on every line, so the text path allocates nothing and looks only at the start of the
//! message: a level word deep inside a message body is not the line's level.
//!
//! Text rules, first match wins:
//!
//! 1. klog header at the start: `E1125 10:15:00.123456 ...` (`I`, `W`, `E`, `F` + `MMDD`).
//! 2. Go's `panic: ` or `fatal error: ` at the start: fatal.
//! 3. `level=`, `lvl=`, `severity=`, `loglevel=`, `log.level=` (key and value case-insensitive,
//!    value optionally quoted) within the first 128 bytes.
//! 4. Within the first 64 bytes, the first of: a bracketed level, any case (`[error]`,
//!    `[WARN]`, apache's `[core:error]`); a bare UPPER-CASE level word as a whole token (`ERROR`,
//!    `WARN`, `WARNING`, `INFO`, `DEBUG`, `TRACE`, `FATAL`, `CRITICAL`, `SEVERE`, `PANIC`,
//!    zerolog's `INF`/`WRN`/`ERR`/`DBG`/`TRC`/`FTL`, ...), which covers logback
//!    (`2026-11-25 10:15:00,123 WARN ...`) and Python (`WARNING:root:...`).
//! 5. A level word in any case at the very start followed by `:` (`error: ...`, `Warning: ...`).
//!
//! A lower-case or capitalised level word elsewhere (`no errors here`, `Error handling done`)
//! is not a level: those are sentences, not severities.

use serde_json::{Map, Value};

use crate::Level;

pub mod cases;

/// What [`enrich`] found in a message.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Enrichment {
    /// The normalised severity, if one was found.
    pub level: Option<Level>,
    /// The fields of a JSON object message; empty for text.
    pub attributes: Map<String, Value>,
}

/// JSON fields holding the level, in order of preference. `log.level` is also looked up as
/// `{"log": {"level": ...}}`.
pub const JSON_LEVEL_KEYS: [&str; 7] = [
    "level",
    "lvl",
    "severity",
    "loglevel",
    "log.level",
    "@l",
    "levelname",
];

/// Finds attributes and level in a message. A message whose first non-space byte is `{` and
/// that parses as a JSON object gives its fields as attributes and its level from the fields
/// `level`, `lvl`, `severity`, `loglevel`, `log.level`, `@l`, `levelname` (strings, or numbers:
/// bunyan/pino 10 to 60, syslog 0 to 7); other messages (and JSON that does not parse) go
/// through the text rules of the module docs. Never fails.
pub fn enrich(message: &str) -> Enrichment {
    let first = message.bytes().find(|b| !b.is_ascii_whitespace());
    if first == Some(b'{') {
        if let Ok(attributes) = serde_json::from_str::<Map<String, Value>>(message) {
            return Enrichment {
                level: json_level(&attributes),
                attributes,
            };
        }
    }
    Enrichment {
        level: text_level(message),
        attributes: Map::new(),
    }
}

/// The level of a message: from its fields when it is a JSON object, else by the text rules.
pub fn detect(message: &str) -> Option<Level> {
    enrich(message).level
}

/// The level named by the fields of a JSON object (`level`, `lvl`, `severity`, `loglevel`,
/// `log.level` flat or nested, `@l`, `levelname`), if any.
pub fn json_level(map: &Map<String, Value>) -> Option<Level> {
    JSON_LEVEL_KEYS
        .iter()
        .filter_map(|key| map.get(*key))
        .chain(
            map.get("log")
                .and_then(Value::as_object)
                .and_then(|log| log.get("level")),
        )
        .find_map(value_level)
}

/// A level from a JSON value: a level word in any spelling, or a bunyan/pino (10 to 60) or
/// syslog (0 to 7) number; `None` for anything else.
pub fn value_level(value: &Value) -> Option<Level> {
    match value {
        Value::String(text) => Level::normalise(text).or_else(|| word_level(text.as_bytes())),
        Value::Number(n) => n.as_u64().and_then(numeric_level),
        _ => None,
    }
}

/// Bunyan/pino levels (10 to 60) and syslog severities (0 to 7).
fn numeric_level(n: u64) -> Option<Level> {
    Some(match n {
        10 | 8 => Level::Trace,
        20 | 7 => Level::Debug,
        30 | 5 | 6 => Level::Info,
        40 | 4 => Level::Warn,
        50 | 3 => Level::Error,
        60 | 0..=2 => Level::Fatal,
        _ => return None,
    })
}

/// A level word in any case, without allocating.
fn word_level(word: &[u8]) -> Option<Level> {
    const WORDS: [(&str, Level); 30] = [
        ("trace", Level::Trace),
        ("trc", Level::Trace),
        ("verbose", Level::Trace),
        ("finest", Level::Trace),
        ("finer", Level::Trace),
        ("debug", Level::Debug),
        ("dbg", Level::Debug),
        ("fine", Level::Debug),
        ("info", Level::Info),
        ("inf", Level::Info),
        ("information", Level::Info),
        ("informational", Level::Info),
        ("notice", Level::Info),
        ("warn", Level::Warn),
        ("warning", Level::Warn),
        ("wrn", Level::Warn),
        ("error", Level::Error),
        ("err", Level::Error),
        ("eror", Level::Error),
        ("severe", Level::Error),
        ("fatal", Level::Fatal),
        ("ftl", Level::Fatal),
        ("crit", Level::Fatal),
        ("critical", Level::Fatal),
        ("panic", Level::Fatal),
        ("pnc", Level::Fatal),
        ("dpanic", Level::Fatal),
        ("alert", Level::Fatal),
        ("emerg", Level::Fatal),
        ("emergency", Level::Fatal),
    ];
    if word.len() < 3 || word.len() > 13 {
        return None;
    }
    WORDS
        .iter()
        .find(|(w, _)| w.as_bytes().eq_ignore_ascii_case(word))
        .map(|&(_, level)| level)
}

/// Bare upper-case words taken as levels when they stand alone near the start.
fn upper_word_level(word: &[u8]) -> Option<Level> {
    Some(match word {
        b"TRACE" | b"TRC" => Level::Trace,
        b"DEBUG" | b"DBG" => Level::Debug,
        b"INFO" | b"INF" | b"NOTICE" => Level::Info,
        b"WARN" | b"WARNING" | b"WRN" => Level::Warn,
        b"ERROR" | b"ERR" | b"SEVERE" => Level::Error,
        b"FATAL" | b"FTL" | b"CRITICAL" | b"CRIT" | b"PANIC" | b"EMERG" => Level::Fatal,
        _ => return None,
    })
}

const TOKEN_WINDOW: usize = 64;
const KEY_VALUE_WINDOW: usize = 128;

fn is_left_boundary(b: u8) -> bool {
    b.is_ascii_whitespace() || b"[(<|\"':,;={".contains(&b)
}

fn is_right_boundary(b: u8) -> bool {
    b.is_ascii_whitespace() || b"])>|\"':,;!}".contains(&b)
}

/// The level of a plain-text message, by the rules of the module docs.
pub fn text_level(message: &str) -> Option<Level> {
    let b = message.as_bytes();
    klog_level(b)
        .or_else(|| go_fatal(b))
        .or_else(|| key_value_level(&b[..b.len().min(KEY_VALUE_WINDOW)]))
        .or_else(|| token_level(b))
        .or_else(|| leading_word_level(b))
}

fn klog_level(b: &[u8]) -> Option<Level> {
    let level = match b.first()? {
        b'I' => Level::Info,
        b'W' => Level::Warn,
        b'E' => Level::Error,
        b'F' => Level::Fatal,
        _ => return None,
    };
    let shape = b.get(1..14)?;
    let digit = |i: usize| shape[i].is_ascii_digit();
    let ok = (0..4).all(digit)
        && shape[4] == b' '
        && digit(5)
        && digit(6)
        && shape[7] == b':'
        && digit(8)
        && digit(9)
        && shape[10] == b':'
        && digit(11)
        && digit(12);
    ok.then_some(level)
}

fn go_fatal(b: &[u8]) -> Option<Level> {
    (b.starts_with(b"panic: ") || b.starts_with(b"fatal error: ")).then_some(Level::Fatal)
}

fn key_value_level(w: &[u8]) -> Option<Level> {
    const KEYS: [&[u8]; 5] = [b"level", b"lvl", b"severity", b"loglevel", b"log.level"];
    let mut from = 0;
    while let Some(eq) = w[from..].iter().position(|&b| b == b'=').map(|i| i + from) {
        from = eq + 1;
        let key_start = w[..eq]
            .iter()
            .rposition(|&b| !(b.is_ascii_alphanumeric() || b == b'.' || b == b'_'))
            .map_or(0, |i| i + 1);
        if key_start > 0 && !matches!(w[key_start - 1], b' ' | b'\t' | b',' | b'"') {
            continue;
        }
        let key = &w[key_start..eq];
        if !KEYS.iter().any(|k| k.eq_ignore_ascii_case(key)) {
            continue;
        }
        let mut value = &w[eq + 1..];
        if let [b'"' | b'\'', rest @ ..] = value {
            value = rest;
        }
        let len = value
            .iter()
            .position(|b| !b.is_ascii_alphanumeric())
            .unwrap_or(value.len());
        let value = &value[..len];
        let level = if !value.is_empty() && value.iter().all(u8::is_ascii_digit) {
            std::str::from_utf8(value)
                .ok()
                .and_then(|v| v.parse().ok())
                .and_then(numeric_level)
        } else {
            word_level(value)
        };
        if level.is_some() {
            return level;
        }
    }
    None
}

fn token_level(b: &[u8]) -> Option<Level> {
    let w = &b[..b.len().min(TOKEN_WINDOW)];
    let mut i = 0;
    while i < w.len() {
        let c = w[i];
        if c == b'[' {
            if let Some(close) = w[i + 1..].iter().position(|&x| x == b']') {
                let inner = &w[i + 1..i + 1 + close];
                let word = inner.rsplit(|&x| x == b':').next().unwrap_or(inner);
                if word.iter().all(u8::is_ascii_alphabetic) {
                    if let Some(level) = word_level(word) {
                        return Some(level);
                    }
                }
            }
            i += 1;
        } else if c.is_ascii_uppercase() && (i == 0 || is_left_boundary(w[i - 1])) {
            let mut j = i;
            while j < b.len() && b[j].is_ascii_uppercase() {
                j += 1;
            }
            if j == b.len() || is_right_boundary(b[j]) {
                if let Some(level) = upper_word_level(&b[i..j]) {
                    return Some(level);
                }
            }
            i = j;
        } else {
            i += 1;
        }
    }
    None
}

fn leading_word_level(b: &[u8]) -> Option<Level> {
    let len = b.iter().position(|c| !c.is_ascii_alphabetic())?;
    (b[len] == b':').then(|| word_level(&b[..len])).flatten()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::cases::{is_json_object, CASES};
    use super::*;

    #[test]
    fn the_table_of_cases() {
        for (text, want) in CASES {
            let e = enrich(text);
            assert_eq!(e.level, *want, "{text:?}");
            assert_eq!(detect(text), *want, "{text:?}");
            if is_json_object(text) {
                assert!(!e.attributes.is_empty(), "{text}");
            } else {
                assert_eq!(text_level(text), *want, "{text:?}");
                assert!(e.attributes.is_empty(), "{text}");
            }
        }
    }

    #[test]
    fn json_attributes() {
        let e = enrich(r#"{"level":"warn","msg":"slow","ms":1200}"#);
        assert_eq!(e.level, Some(Level::Warn));
        assert_eq!(
            Value::Object(e.attributes),
            json!({"level":"warn","msg":"slow","ms":1200})
        );
    }
}
