//! Writing a container log record's JSON directly, without building a [`trawl_model::LogRecord`]
//! and its `serde_json::Map`s for every line.
//!
//! The output is what `serde_json::to_vec(&LogRecord)` gives for the same record, byte for byte
//! (same fields, order, escapes and timestamp form), except for `attributes` when the message is
//! a JSON object: there the message's own object is written as it is (its keys in their order,
//! its whitespace) instead of the re-serialised, key-sorted `Map`, followed by the attributes
//! the collector adds. A reader parsing the record gets the same map: the same keys and values,
//! a key written twice keeping its last value as `serde_json::Map` does, and the collector's
//! attributes written after the message's so that they win as they did when inserted. A
//! message object holding a line break (joined by a multi-line rule) is re-serialised as before,
//! so that a record stays on one NDJSON line.
//!
//! What is the same for every line of one file (cluster, node, pod, container, image, labels,
//! the file name, the pod's attributes) is written once per file, in [`FileParts`].

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use trawl_model::level::{json_level, text_level, JSON_LEVEL_KEYS};
use trawl_model::{Level, Timestamp};

use crate::identity::PodFile;
use crate::kube::Enrichment;
use crate::records::Stamp;

/// The parts of a container record that are the same for every line of one file.
#[derive(Debug, Clone, Default)]
pub struct FileParts {
    /// `,"cluster":..` through `"labels":{..}` (each field only when not empty), ending before
    /// `,"stream"`.
    head: Vec<u8>,
    /// The pod's attributes (Kubernetes metadata) as `"key":value` pairs joined by `,`.
    meta_attributes: Vec<u8>,
    /// `,"file":".."` (empty for an empty path).
    file: Vec<u8>,
}

impl FileParts {
    /// The parts for a file of `pod` at `path`, with the pod's metadata when known.
    pub fn new(stamp: &Stamp, pod: &PodFile, meta: Option<&Enrichment>, path: &str) -> FileParts {
        let mut head = Vec::with_capacity(256);
        let texts: [(&str, &str); 8] = [
            ("cluster", &stamp.cluster),
            ("node", &stamp.node),
            ("namespace", &pod.namespace),
            ("pod", &pod.pod),
            ("pod_uid", &pod.pod_uid),
            ("container", &pod.container),
            ("container_id", meta.map_or("", |m| m.container_id.as_str())),
            ("image", meta.map_or("", |m| m.image.as_str())),
        ];
        for (key, value) in texts {
            if !value.is_empty() {
                head.push(b',');
                write_str(&mut head, key);
                head.push(b':');
                write_str(&mut head, value);
            }
        }
        let mut meta_attributes = Vec::new();
        if let Some(m) = meta {
            if !m.labels.is_empty() {
                head.extend_from_slice(b",\"labels\":");
                write_value(&mut head, &m.labels);
            }
            for (key, value) in &m.attributes {
                if !meta_attributes.is_empty() {
                    meta_attributes.push(b',');
                }
                write_str(&mut meta_attributes, key);
                meta_attributes.push(b':');
                write_value(&mut meta_attributes, value);
            }
        }
        let mut file = Vec::new();
        if !path.is_empty() {
            file.extend_from_slice(b",\"file\":");
            write_str(&mut file, path);
        }
        FileParts {
            head,
            meta_attributes,
            file,
        }
    }
}

/// One record to write.
#[derive(Debug, Clone, Copy)]
pub struct Line<'a> {
    pub timestamp: Timestamp,
    pub stream: &'a str,
    /// The message, already redacted.
    pub message: &'a str,
    pub split: bool,
    pub malformed: bool,
    pub offset: u64,
}

/// Appends the JSON of `line` (no `'\n'`) to `out`.
pub fn write_record(out: &mut Vec<u8>, parts: &FileParts, line: &Line<'_>) {
    let message = line.message;
    let scan = scan_message(message);
    let level = match &scan {
        Some(s) => s.level,
        None => text_level(message),
    };
    out.reserve(parts.head.len() + parts.file.len() + 2 * message.len() + 128);
    out.extend_from_slice(b"{\"timestamp\":\"");
    write_rfc3339_nanos(out, line.timestamp);
    out.push(b'"');
    out.extend_from_slice(&parts.head);
    if !line.stream.is_empty() {
        out.extend_from_slice(b",\"stream\":");
        write_str(out, line.stream);
    }
    if let Some(level) = level {
        out.extend_from_slice(b",\"level\":\"");
        out.extend_from_slice(level.as_str().as_bytes());
        out.push(b'"');
    }
    out.extend_from_slice(b",\"message\":");
    write_str(out, message);
    write_attributes(out, parts, line, message, scan.as_ref());
    out.extend_from_slice(&parts.file);
    out.extend_from_slice(b",\"offset\":");
    write_u64(out, line.offset);
    out.push(b'}');
}

/// `,"attributes":{..}`, or nothing when there are none.
fn write_attributes(
    out: &mut Vec<u8>,
    parts: &FileParts,
    line: &Line<'_>,
    message: &str,
    scan: Option<&Scan>,
) {
    let mut extra: [&[u8]; 3] = [b"", b"", b""];
    let mut n = 0;
    if line.split {
        extra[n] = SPLIT_PAIR;
        n += 1;
    }
    if line.malformed {
        extra[n] = MALFORMED_PAIR;
        n += 1;
    }
    if !parts.meta_attributes.is_empty() {
        extra[n] = &parts.meta_attributes;
        n += 1;
    }
    let extra = &extra[..n];
    let (mut any, body) = match scan {
        // The message's object without its closing brace (and trailing whitespace).
        Some(s) if s.entries > 0 && s.raw_ok => (true, Some(message.trim_end_matches([' ', '\t']))),
        Some(s) if s.entries > 0 => {
            // Re-serialised as before: the map the message parses to.
            let map: Map<String, Value> = serde_json::from_str(message).unwrap_or_default();
            out.extend_from_slice(b",\"attributes\":{");
            let mut first = true;
            for (k, v) in &map {
                if !first {
                    out.push(b',');
                }
                first = false;
                write_str(out, k);
                out.push(b':');
                write_value(out, v);
            }
            for e in extra {
                out.push(b',');
                out.extend_from_slice(e);
            }
            out.push(b'}');
            return;
        }
        _ => (false, None),
    };
    if body.is_none() && extra.is_empty() {
        return;
    }
    out.extend_from_slice(b",\"attributes\":");
    match body {
        Some(object) => {
            // `object` ends with '}' (it parsed as an object); leave it off to append.
            out.extend_from_slice(&object.as_bytes()[..object.len() - 1]);
        }
        None => out.push(b'{'),
    }
    for e in extra {
        if any {
            out.push(b',');
        }
        any = true;
        out.extend_from_slice(e);
    }
    out.push(b'}');
}

/// `"<SPLIT_ATTRIBUTE>":true`.
const SPLIT_PAIR: &[u8] = b"\"trawl.split\":true";
/// `"<MALFORMED_ATTRIBUTE>":true`.
const MALFORMED_PAIR: &[u8] = b"\"trawl.malformed\":true";

/// The key [`json_level`] reads a nested `log.level` from; the flat keys are the model's
/// [`JSON_LEVEL_KEYS`].
const NESTED_LEVEL_KEY: &str = "log";

/// What a message that is a JSON object holds, as far as the record needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct Scan {
    /// Its entries (keys written twice counted twice).
    pub entries: usize,
    /// Its level, as [`trawl_model::level::enrich`] finds it.
    pub level: Option<Level>,
    /// The object can be written as it is: it holds no line break.
    pub raw_ok: bool,
}

/// `Some` when `message` is a JSON object (what [`trawl_model::level::enrich`] takes for one:
/// first non-space byte `{`, and it parses), without building its map: only the values of the
/// keys the level is read from are kept.
pub fn scan_message(message: &str) -> Option<Scan> {
    let first = message.bytes().find(|b| !b.is_ascii_whitespace());
    if first != Some(b'{') {
        return None;
    }
    let mut de = serde_json::Deserializer::from_str(message);
    let (entries, levels) = de.deserialize_map(ObjectVisitor).ok()?;
    de.end().ok()?;
    Some(Scan {
        entries,
        level: json_level(&levels),
        raw_ok: !message.bytes().any(|b| b == b'\n' || b == b'\r'),
    })
}

/// Visits the message's object: counts entries, keeps the level keys' values (the last one of
/// a key written twice, as a map would), and checks everything else without keeping it.
struct ObjectVisitor;

impl<'de> Visitor<'de> for ObjectVisitor {
    type Value = (usize, Map<String, Value>);

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut entries = 0;
        let mut levels = Map::new();
        while let Some(key) = map.next_key::<KeyName>()? {
            entries += 1;
            match key.0 {
                Some(name) => {
                    let value: Value = map.next_value()?;
                    levels.insert(name.to_string(), value);
                }
                None => map.next_value_seed(Checked)?,
            }
        }
        Ok((entries, levels))
    }
}

/// A key: its name when it is one the level is read from (`log` for `log.level` nested).
struct KeyName(Option<&'static str>);

impl<'de> serde::Deserialize<'de> for KeyName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = KeyName;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<KeyName, E> {
                let flat = JSON_LEVEL_KEYS.iter().find(|k| **k == key).copied();
                Ok(KeyName(
                    flat.or((key == NESTED_LEVEL_KEY).then_some(NESTED_LEVEL_KEY)),
                ))
            }
        }
        // As `String` keys are read, so that what fails for a map fails here.
        d.deserialize_string(V)
    }
}

/// A value checked as `serde_json::Value` would be read (numbers in range, strings without
/// lone surrogates, the nesting limit) and dropped.
#[derive(Clone, Copy)]
struct Checked;

impl<'de> DeserializeSeed<'de> for Checked {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::Deserialize<'de> for Checked {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(Checked)?;
        Ok(Checked)
    }
}

impl<'de> Visitor<'de> for Checked {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_none<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element::<Checked>()?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_key::<KeyChecked>()?.is_some() {
            map.next_value::<Checked>()?;
        }
        Ok(())
    }
}

/// A key of a nested object, read as a `String` key is.
struct KeyChecked;

impl<'de> serde::Deserialize<'de> for KeyChecked {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_string(Checked)?;
        Ok(KeyChecked)
    }
}

/// Appends `value` as JSON, as serde_json writes it.
fn write_value<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    // Writing a `Value` into a `Vec` cannot fail (its keys are strings).
    let _ = serde_json::to_writer(&mut *out, value);
}

/// Appends `s` as a JSON string, escaped exactly as serde_json escapes it.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        // Eight bytes at a time while none needs escaping.
        while i + 8 <= bytes.len() {
            let mut word = [0u8; 8];
            word.copy_from_slice(&bytes[i..i + 8]);
            if needs_escape(u64::from_le_bytes(word)) {
                break;
            }
            i += 8;
        }
        if i >= bytes.len() {
            break;
        }
        let b = bytes[i];
        let esc = ESCAPE[b as usize];
        if esc == 0 {
            i += 1;
            continue;
        }
        out.extend_from_slice(&bytes[start..i]);
        match esc {
            b'u' => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(&[
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[(b >> 4) as usize],
                    HEX[(b & 0xf) as usize],
                ]);
            }
            c => out.extend_from_slice(&[b'\\', c]),
        }
        i += 1;
        start = i;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// Whether any of the eight bytes is below 0x20, a `"` or a `\`.
#[inline]
fn needs_escape(w: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let has_zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    let below_space = w.wrapping_sub(ONES * 0x20) & !w & HIGH;
    let quote = has_zero(w ^ (ONES * u64::from(b'"')));
    let backslash = has_zero(w ^ (ONES * u64::from(b'\\')));
    (below_space | quote | backslash) != 0
}

/// serde_json's escape table: 0 for a byte written as it is, else the letter after `\`
/// (`u` for `\u00XX`).
const ESCAPE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = b'u';
        i += 1;
    }
    t[0x08] = b'b';
    t[0x09] = b't';
    t[0x0a] = b'n';
    t[0x0c] = b'f';
    t[0x0d] = b'r';
    t[b'"' as usize] = b'"';
    t[b'\\' as usize] = b'\\';
    t
};

/// Appends `ts` as [`Timestamp::to_rfc3339`] writes it (UTC, nine fractional digits, `Z`).
pub fn write_rfc3339_nanos(out: &mut Vec<u8>, ts: Timestamp) {
    let secs = ts.0.div_euclid(1_000_000_000);
    let nanos = ts.0.rem_euclid(1_000_000_000) as u32;
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400) as u32;
    let (year, month, day) = civil_from_days(days);
    if !(0..=9999).contains(&year) {
        out.extend_from_slice(ts.to_rfc3339().as_bytes());
        return;
    }
    let mut buf = *b"0000-00-00T00:00:00.000000000Z";
    put(&mut buf[0..4], year as u32);
    put(&mut buf[5..7], month);
    put(&mut buf[8..10], day);
    put(&mut buf[11..13], sod / 3600);
    put(&mut buf[14..16], sod / 60 % 60);
    put(&mut buf[17..19], sod % 60);
    put(&mut buf[20..29], nanos);
    out.extend_from_slice(&buf);
}

/// Writes `v`'s last `out.len()` decimal digits into `out`, zero-padded.
fn put(out: &mut [u8], mut v: u32) {
    for slot in out.iter_mut().rev() {
        *slot = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

/// (year, month, day) of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Appends `v` in decimal.
fn write_u64(out: &mut Vec<u8>, mut v: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::{Assembled, StdStream};
    use crate::records::{log_record, log_record_serde};
    use crate::redact::Redactor;
    use proptest::prelude::*;

    fn pod() -> PodFile {
        PodFile {
            namespace: "shop".into(),
            pod: "web-1".into(),
            pod_uid: "u1".into(),
            container: "app".into(),
            restart: 0,
            rotated: false,
        }
    }

    fn meta() -> Enrichment {
        let mut labels = Map::new();
        labels.insert("app".into(), Value::String("web".into()));
        labels.insert("tier\"x".into(), Value::String("front\nend".into()));
        Enrichment {
            labels,
            image: "reg/web:1.2".into(),
            container_id: "containerd://abc".into(),
            attributes: vec![
                ("k8s.owner".into(), Value::String("ReplicaSet/web-7".into())),
                ("level".into(), Value::String("from-meta".into())),
                ("n".into(), serde_json::json!({"a": [1, 2.5, null, true]})),
            ],
        }
    }

    fn stamp() -> Stamp {
        Stamp {
            cluster: "prod".into(),
            node: "n1".into(),
        }
    }

    fn assembled(message: &str, split: bool, malformed: bool) -> Assembled {
        Assembled {
            timestamp: Timestamp(1_764_065_700_123_456_789),
            stream: StdStream::Stderr,
            message: message.to_string(),
            start: 42,
            end: 100,
            split,
            malformed,
        }
    }

    /// Messages of every shape a line may have: text, JSON objects (levels, nesting, keys
    /// written twice, escapes, unicode, numbers), things that look like JSON and are not.
    const MESSAGES: &[&str] = &[
        "",
        "plain text",
        "ERROR something broke",
        "  leading and trailing spaces  ",
        "tab\there \"quoted\" back\\slash \u{1} \u{1f} \u{7f} é ü 日本 😀",
        "{}",
        "  {}  ",
        r#"{"level":"warn","msg":"hi"}"#,
        r#"{"msg":"hi","level":"warn","level":"error"}"#,
        r#"{"lvl":30,"severity":"debug"}"#,
        r#"{"log":{"level":"fatal"},"x":1}"#,
        r#"{"log.level":"ERROR","log":{"level":"info"}}"#,
        r#"{"level":50}"#,
        r#"{"level":{"nested":true}}"#,
        r#"  {"level" : "info" , "a" : [1, 2, {"b": null}]}	 "#,
        r#"{"big":12345678901234567890123,"neg":-1,"f":1.5e3,"e":1E-7}"#,
        r#"{"s":"esc \" \\ \/ \b \f \n \r \t \u0001 \u00e9 \ud83d\ude00"}"#,
        r#"{"trawl.split":false,"k8s.owner":"mine"}"#,
        r#"{"a":1}{"b":2}"#,
        r#"{"a":1"#,
        r#"{"lone":"\ud800"}"#,
        r#"{"huge":1e400}"#,
        "{\"a\":1}\u{c}",
        "\u{c}{\"a\":1}",
        "{\"pretty\":\n  \"multi-line\",\r\n \"level\": \"warn\"\n}",
        "{not json",
        "[1,2,3]",
        r#"{"level":"INFO","msg":"unicode ключ","ключ":"значение"}"#,
    ];

    fn deep(n: usize) -> String {
        format!("{{\"a\":{}1{}}}", "[".repeat(n), "]".repeat(n))
    }

    /// Both paths parse to the same record; where the message is not a JSON object with
    /// fields, they are the same bytes.
    fn check(
        message: &str,
        split: bool,
        malformed: bool,
        meta: Option<&Enrichment>,
        r: Option<&Redactor>,
    ) {
        let a = assembled(message, split, malformed);
        let new = log_record(&stamp(), &pod(), meta, "/var/log/pods/x/app/0.log", &a, r);
        let old = log_record_serde(&stamp(), &pod(), meta, "/var/log/pods/x/app/0.log", &a, r);
        assert!(!new.contains(&b'\n'), "{}", String::from_utf8_lossy(&new));
        let new_value: Value = serde_json::from_slice(&new)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&new)));
        let old_value: Value = serde_json::from_slice(&old).unwrap();
        assert_eq!(new_value, old_value, "{message:?}");
        let record: trawl_model::LogRecord = serde_json::from_slice(&new).unwrap();
        assert_eq!(record, serde_json::from_slice(&old).unwrap());
        // Where the attributes are not the message's object, only their order may differ
        // (the serde path sorts them): with one at most, the bytes are the same.
        let is_object = scan_message(message).is_some_and(|s| s.entries > 0);
        let attributes = old_value
            .get("attributes")
            .and_then(Value::as_object)
            .map_or(0, Map::len);
        if !is_object && attributes <= 1 {
            assert_eq!(
                String::from_utf8_lossy(&new),
                String::from_utf8_lossy(&old),
                "{message:?}"
            );
        }
    }

    #[test]
    fn records_match_the_serde_path() {
        let m = meta();
        let redactor = Redactor::new(&[("pw", r#"hunter2"#, "[RE\"DACTED]")]).unwrap();
        let mut messages: Vec<String> = MESSAGES.iter().map(|m| m.to_string()).collect();
        messages.push(deep(120));
        messages.push(deep(200));
        messages.push(r#"{"level":"warn","pw":"hunter2"}"#.into());
        for message in &messages {
            for split in [false, true] {
                for malformed in [false, true] {
                    for meta in [None, Some(&m)] {
                        for r in [None, Some(&redactor)] {
                            check(message, split, malformed, meta, r);
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn levels_follow_the_models_table() {
        for (message, want) in trawl_model::level::cases::CASES {
            check(message, false, false, None, None);
            let json = log_record(
                &stamp(),
                &pod(),
                None,
                "f",
                &assembled(message, false, false),
                None,
            );
            let rec: trawl_model::LogRecord = serde_json::from_slice(&json).unwrap();
            assert_eq!(rec.level, *want, "{message:?}");
        }
    }

    /// A JSON line is written with its own object; a pretty-printed one (joined by a
    /// multi-line rule) is re-serialised, so that the record stays on one line.
    #[test]
    fn json_objects_are_written_as_they_are_unless_they_span_lines() {
        let json = log_record(
            &stamp(),
            &pod(),
            None,
            "f",
            &assembled(r#"{"b":1, "a":2}"#, true, false),
            None,
        );
        let text = String::from_utf8(json).unwrap();
        assert!(
            text.contains(r#""attributes":{"b":1, "a":2,"trawl.split":true}"#),
            "{text}"
        );
        let json = log_record(
            &stamp(),
            &pod(),
            None,
            "f",
            &assembled("{\"b\":1,\n\"a\":2}", false, false),
            None,
        );
        let text = String::from_utf8(json).unwrap();
        assert!(text.contains(r#""attributes":{"a":2,"b":1}"#), "{text}");
    }

    #[test]
    fn scan_agrees_with_enrich() {
        let mut messages: Vec<String> = MESSAGES.iter().map(|m| m.to_string()).collect();
        messages.push(deep(126));
        messages.push(deep(127));
        messages.push(deep(128));
        for message in &messages {
            let full = trawl_model::level::enrich(message);
            let parses = message
                .trim_start_matches(|c: char| c.is_ascii_whitespace())
                .starts_with('{')
                && serde_json::from_str::<Map<String, Value>>(message).is_ok();
            let scan = scan_message(message);
            assert_eq!(scan.is_some(), parses, "{message:?}");
            if let Some(s) = scan {
                assert_eq!(s.level, full.level, "{message:?}");
                assert_eq!(s.entries == 0, full.attributes.is_empty(), "{message:?}");
            }
        }
    }

    #[test]
    fn flag_pairs_name_the_attributes() {
        use crate::records::{MALFORMED_ATTRIBUTE, SPLIT_ATTRIBUTE};
        assert_eq!(SPLIT_PAIR, format!("\"{SPLIT_ATTRIBUTE}\":true").as_bytes());
        assert_eq!(
            MALFORMED_PAIR,
            format!("\"{MALFORMED_ATTRIBUTE}\":true").as_bytes()
        );
    }

    /// Every key of the list gives the model's level; keys beside them give none.
    #[test]
    fn level_keys_are_the_models() {
        for key in &JSON_LEVEL_KEYS {
            let map: Map<String, Value> = [(key.to_string(), Value::from("error"))]
                .into_iter()
                .collect();
            assert_eq!(json_level(&map), Some(Level::Error), "{key}");
        }
        let nested = serde_json::json!({"log": {"level": "warn"}});
        assert_eq!(json_level(nested.as_object().unwrap()), Some(Level::Warn));
        for key in ["msg", "message", "Level", "lvl2", "log_level", "status"] {
            let map: Map<String, Value> = [(key.to_string(), Value::from("error"))]
                .into_iter()
                .collect();
            assert_eq!(json_level(&map), None, "{key}");
        }
    }

    #[test]
    fn strings_are_escaped_as_serde_json_does() {
        let mut all = String::new();
        for c in (0u32..0x300).filter_map(char::from_u32) {
            all.push(c);
            let one = c.to_string();
            let mut out = Vec::new();
            write_str(&mut out, &one);
            assert_eq!(out, serde_json::to_vec(&one).unwrap(), "{c:?}");
        }
        for s in [
            all.as_str(),
            "",
            "abcdefgh",
            "abcdefg\"",
            "\"abcdefgh\\",
            "日本語テキスト😀\u{0}",
        ] {
            let mut out = Vec::new();
            write_str(&mut out, s);
            assert_eq!(out, serde_json::to_vec(s).unwrap(), "{s:?}");
        }
    }

    #[test]
    fn timestamps_are_written_as_the_model_does() {
        for ns in [
            0,
            1,
            -1,
            999_999_999,
            1_764_065_700_123_456_789,
            i64::MAX,
            i64::MIN,
            951_782_400_000_000_000, // 2000-02-29
        ] {
            let mut out = Vec::new();
            write_rfc3339_nanos(&mut out, Timestamp(ns));
            assert_eq!(
                String::from_utf8(out).unwrap(),
                Timestamp(ns).to_rfc3339(),
                "{ns}"
            );
        }
    }

    proptest! {
        #[test]
        fn any_string_is_escaped_as_serde_json_does(s in any::<String>()) {
            let mut out = Vec::new();
            write_str(&mut out, &s);
            prop_assert_eq!(out, serde_json::to_vec(&s).unwrap());
        }

        #[test]
        fn any_timestamp_is_written_as_the_model_does(ns in any::<i64>()) {
            let mut out = Vec::new();
            write_rfc3339_nanos(&mut out, Timestamp(ns));
            prop_assert_eq!(String::from_utf8(out).unwrap(), Timestamp(ns).to_rfc3339());
        }

        #[test]
        fn any_message_gives_the_record_of_the_serde_path(
            message in "[ -~\t\u{1}é😀]{0,80}",
            split in any::<bool>(),
            malformed in any::<bool>(),
        ) {
            check(&message, split, malformed, None, None);
        }

        #[test]
        fn any_json_line_gives_the_record_of_the_serde_path(
            pairs in proptest::collection::vec(
                ("(level|lvl|severity|msg|log|a|trawl.split)", "[ -~é]{0,12}", 0u8..4),
                0..6,
            ),
        ) {
            let fields: Vec<String> = pairs
                .iter()
                .map(|(k, v, kind)| {
                    let value = match kind {
                        0 => serde_json::to_string(v).unwrap(),
                        1 => v.len().to_string(),
                        2 => format!("{{\"level\":{}}}", serde_json::to_string(v).unwrap()),
                        _ => "[true,null,-2.5]".to_string(),
                    };
                    format!("{}:{value}", serde_json::to_string(k).unwrap())
                })
                .collect();
            let message = format!("{{{}}}", fields.join(","));
            check(&message, false, false, None, None);
            check(&message, true, false, Some(&meta()), None);
        }
    }
}
