//! Severity of a message sent by another system's agent, found the way the collector finds it:
//! from the fields of a JSON message, else from the usual textual shapes near its start.
//!
//! Text rules, first match wins: a klog header (`E1125 10:15:00.123456 ...`); Go's `panic: ` or
//! `fatal error: ` at the start; `level=`, `lvl=`, `severity=` (any case, value optionally
//! quoted) within the first 128 bytes; a bracketed level (`[error]`, `[WARN]`) or a bare
//! upper-case level word (`ERROR`, `WARNING`, ...) as a whole token within the first 64 bytes; a
//! level word in any case at the very start followed by `:` (`error: ...`). A lower-case level
//! word inside a sentence (`no errors here`) is not a level.

use serde_json::{Map, Value};
use trawl_model::Level;

/// JSON fields holding the level, in order of preference (`log.level` also nested).
const JSON_LEVEL_KEYS: [&str; 7] = [
    "level",
    "lvl",
    "severity",
    "loglevel",
    "log.level",
    "@l",
    "levelname",
];

/// The level of a message: from its fields when it is a JSON object, else by the text rules.
pub fn detect(message: &str) -> Option<Level> {
    if message.trim_start().starts_with('{') {
        if let Ok(fields) = serde_json::from_str::<Map<String, Value>>(message) {
            return json_level(&fields);
        }
    }
    text_level(message)
}

/// The level named by the fields of a JSON object, if any.
pub fn json_level(fields: &Map<String, Value>) -> Option<Level> {
    JSON_LEVEL_KEYS
        .iter()
        .filter_map(|key| fields.get(*key))
        .chain(
            fields
                .get("log")
                .and_then(Value::as_object)
                .and_then(|log| log.get("level")),
        )
        .find_map(value_level)
}

/// A level from a JSON value: a level word in any spelling, or a bunyan/pino (10 to 60) or
/// syslog (0 to 7) number.
pub fn value_level(value: &Value) -> Option<Level> {
    match value {
        Value::String(text) => Level::normalise(text),
        Value::Number(n) => n.as_u64().and_then(|n| match n {
            10 | 8 => Some(Level::Trace),
            20 | 7 => Some(Level::Debug),
            30 | 5 | 6 => Some(Level::Info),
            40 | 4 => Some(Level::Warn),
            50 | 3 => Some(Level::Error),
            60 | 0..=2 => Some(Level::Fatal),
            _ => None,
        }),
        _ => None,
    }
}

/// The level of a plain-text message, by the rules of the module docs.
pub fn text_level(message: &str) -> Option<Level> {
    let b = message.as_bytes();
    klog_level(b)
        .or_else(|| go_fatal(b))
        .or_else(|| key_value_level(&message[..floor_char_boundary(message, 128)]))
        .or_else(|| token_level(&message[..floor_char_boundary(message, 64)]))
        .or_else(|| leading_word_level(message))
}

fn floor_char_boundary(text: &str, max: usize) -> usize {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    end
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
    let digits = |r: std::ops::Range<usize>| shape[r].iter().all(u8::is_ascii_digit);
    let ok = digits(0..4)
        && shape[4] == b' '
        && digits(5..7)
        && shape[7] == b':'
        && digits(8..10)
        && shape[10] == b':'
        && digits(11..13);
    ok.then_some(level)
}

fn go_fatal(b: &[u8]) -> Option<Level> {
    (b.starts_with(b"panic: ") || b.starts_with(b"fatal error: ")).then_some(Level::Fatal)
}

fn key_value_level(window: &str) -> Option<Level> {
    let lower = window.to_ascii_lowercase();
    for key in ["level=", "lvl=", "severity=", "loglevel="] {
        let mut from = 0;
        while let Some(pos) = lower[from..].find(key) {
            let at = from + pos;
            from = at + key.len();
            let boundary = at == 0
                || lower.as_bytes()[at - 1].is_ascii_whitespace()
                || b".{,\"".contains(&lower.as_bytes()[at - 1]);
            if !boundary {
                continue;
            }
            let value = lower[from..].trim_start_matches(['"', '\'']);
            let word: String = value
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect();
            if let Some(level) = Level::normalise(&word) {
                return Some(level);
            }
        }
    }
    None
}

fn token_level(window: &str) -> Option<Level> {
    let is_sep = |c: char| c.is_ascii_whitespace() || "[]()<>|\"':,;={}".contains(c);
    // Bracketed levels, any case.
    let mut rest = window;
    while let Some(open) = rest.find('[') {
        let after = &rest[open + 1..];
        let Some(close) = after.find(']') else { break };
        let inner = &after[..close];
        let word = inner.rsplit(':').next().unwrap_or(inner);
        if let Some(level) = word_level(word) {
            return Some(level);
        }
        rest = &after[close..];
    }
    window
        .split(is_sep)
        .filter(|w| !w.is_empty())
        .find_map(|w| {
            let upper = w.bytes().all(|b| b.is_ascii_uppercase());
            upper.then(|| word_level(w)).flatten()
        })
}

fn leading_word_level(message: &str) -> Option<Level> {
    let (word, rest) = message.split_once(':')?;
    (!rest.is_empty() && word.len() <= 13)
        .then(|| word_level(word))
        .flatten()
}

/// A level word in any case (`Level::normalise` without its one-letter and numeric forms).
fn word_level(word: &str) -> Option<Level> {
    if word.len() < 3 || word.len() > 13 || !word.bytes().all(|b| b.is_ascii_alphabetic()) {
        return None;
    }
    Level::normalise(word).or_else(|| {
        Some(match word.to_ascii_lowercase().as_str() {
            "verbose" => Level::Trace,
            "ftl" | "pnc" => Level::Fatal,
            _ => return None,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_of_json_and_text() {
        let cases: &[(&str, Option<Level>)] = &[
            (r#"{"level":"WARNING","msg":"x"}"#, Some(Level::Warn)),
            (r#"{"log":{"level":"error"}}"#, Some(Level::Error)),
            (r#"{"level":50}"#, Some(Level::Error)),
            (r#"{"msg":"no level"}"#, None),
            (
                "E1125 10:15:00.123456       1 main.go:1] boom",
                Some(Level::Error),
            ),
            ("panic: runtime error", Some(Level::Fatal)),
            ("ts=1 level=debug msg=hi", Some(Level::Debug)),
            ("ts=1 lvl=\"warn\" msg=hi", Some(Level::Warn)),
            ("2026-11-25 10:15:00,123 WARN  [main] x", Some(Level::Warn)),
            ("[core:error] [pid 1] AH00001", Some(Level::Error)),
            ("WARNING:root:careful", Some(Level::Warn)),
            ("error: cannot open", Some(Level::Error)),
            ("no errors here, Error handling done", None),
            ("GET /healthz 200", None),
            ("ünïcödé ERROR ünïcödé", Some(Level::Error)),
        ];
        for (message, expected) in cases {
            assert_eq!(detect(message), *expected, "{message}");
        }
    }
}
