//! Loki push: `POST /loki/api/v1/push`, as Promtail, Grafana Alloy and the Loki clients send it:
//! JSON (`{"streams": [{"stream": {labels}, "values": [["<unix ns>", "line", {metadata}]]}]}`,
//! optionally gzip-compressed) or protobuf `logproto.PushRequest` compressed with snappy (block
//! format, `Content-Type: application/x-protobuf`, the labels in Prometheus syntax
//! `{app="web", namespace="shop"}`). Entries go to the `logs` stream:
//!
//! | record field | labels |
//! |---|---|
//! | `namespace` | `namespace`, `k8s_namespace_name`, `kubernetes_namespace`, `namespace_name` |
//! | `pod` | `pod`, `k8s_pod_name`, `kubernetes_pod_name`, `pod_name` |
//! | `pod_uid` | `pod_uid`, `k8s_pod_uid`, `kubernetes_pod_uid` |
//! | `container` | `container`, `k8s_container_name`, `kubernetes_container_name`, `container_name` |
//! | `node` | `node`, `node_name`, `k8s_node_name`, `kubernetes_node_name` |
//! | `cluster` | `cluster`, `k8s_cluster_name` |
//! | `image` | `image`, `container_image` |
//! | `stream` | `stream` |
//! | `file` | `filename` |
//! | `level` | `level`, `detected_level`, `severity`, `lvl` (else detected from the line) |
//!
//! The table is `trawl_model::shippers::LOKI_LABEL_ALIASES` and `LOKI_LEVEL_LABELS`. Other labels
//! go to `labels`, structured metadata to `attributes`, the line to `message`.
//! Success is 204 as in Loki; a body that does not decode, or holds an entry that cannot be
//! indexed, is 400 with a plain-text reason and nothing of it is ingested.

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use prost::Message;
use serde::Deserialize;
use serde_json::{Map, Value};
use trawl_model::{Level, LogRecord, Timestamp};

use crate::http::{ingest_error, receive, IngestState};
use crate::{Push, Surface};
use trawl_model::{level, shippers};
use trawl_model::{ApiError, ErrorCode};

/// The Loki push route.
pub(crate) fn routes(state: IngestState) -> Router {
    Router::new()
        .route("/loki/api/v1/push", post(push))
        .with_state(state)
}

/// `logproto.PushRequest`.
#[derive(Clone, PartialEq, Message)]
pub struct PushRequest {
    #[prost(message, repeated, tag = "1")]
    pub streams: Vec<StreamAdapter>,
}

/// `logproto.StreamAdapter`: the labels in Prometheus syntax and the entries.
#[derive(Clone, PartialEq, Message)]
pub struct StreamAdapter {
    #[prost(string, tag = "1")]
    pub labels: String,
    #[prost(message, repeated, tag = "2")]
    pub entries: Vec<EntryAdapter>,
    #[prost(uint64, tag = "3")]
    pub hash: u64,
}

/// `logproto.EntryAdapter`.
#[derive(Clone, PartialEq, Message)]
pub struct EntryAdapter {
    #[prost(message, optional, tag = "1")]
    pub timestamp: Option<prost_types::Timestamp>,
    #[prost(string, tag = "2")]
    pub line: String,
    #[prost(message, repeated, tag = "3")]
    pub structured_metadata: Vec<LabelPairAdapter>,
}

/// `logproto.LabelPairAdapter`.
#[derive(Clone, PartialEq, Message)]
pub struct LabelPairAdapter {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

async fn push(State(state): State<IngestState>, headers: HeaderMap, body: Body) -> Response {
    let received = match receive(&state, &headers, body, || Ok(())).await {
        Ok(received) => received,
        Err(err) => return text_error(&err),
    };
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim()
                .to_ascii_lowercase()
                .starts_with("application/json")
        });
    let limit = state.indexer.settings().max_decompressed_bytes;
    let lines = if json {
        parse_json(&received.body)
    } else {
        parse_protobuf(&received.body, limit)
    };
    let lines = match lines {
        Ok(lines) => lines,
        Err(PushError::TooLarge(message)) => {
            return text_error(&ApiError::new(ErrorCode::PayloadTooLarge, message))
        }
        Err(PushError::Invalid(message)) => return text_error(&ApiError::bad_request(message)),
    };
    if lines.is_empty() {
        return StatusCode::NO_CONTENT.into_response();
    }
    let push = Push::of_request(Surface::Loki, &received.body);
    match state
        .indexer
        .ingest_push(trawl_model::LOGS_STREAM, lines, push)
        .await
    {
        Ok(outcome) if outcome.rejected == 0 => StatusCode::NO_CONTENT.into_response(),
        Ok(outcome) => {
            let first = outcome.errors.first().map_or("", |e| e.message.as_str());
            text_error(&ApiError::bad_request(format!(
                "{} of {} entries were refused: {first}",
                outcome.rejected,
                outcome.rejected + outcome.accepted
            )))
        }
        Err(err) => text_error(&ingest_error(err)),
    }
}

/// Loki answers errors in plain text.
fn text_error(err: &ApiError) -> Response {
    let mut response = (
        err.http_status(),
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        )],
        format!("{}\n", err.message()),
    )
        .into_response();
    err.set_retry_after(response.headers_mut());
    response
}

/// Why a push body is refused.
#[derive(Debug, PartialEq)]
pub(crate) enum PushError {
    /// The body does not decode, or an entry is unusable: 400.
    Invalid(String),
    /// The body decompresses past the limit: 413.
    TooLarge(String),
}

#[derive(Deserialize)]
struct JsonPush {
    streams: Vec<JsonStream>,
}

#[derive(Deserialize)]
struct JsonStream {
    #[serde(default)]
    stream: Map<String, Value>,
    #[serde(default)]
    values: Vec<Vec<Value>>,
}

/// The NDJSON lines of the `logs` stream a JSON push holds.
pub(crate) fn parse_json(body: &[u8]) -> Result<Vec<u8>, PushError> {
    let push: JsonPush = serde_json::from_slice(body)
        .map_err(|e| PushError::Invalid(format!("the body is not a Loki JSON push: {e}")))?;
    let mut out = Vec::new();
    for (s, stream) in push.streams.into_iter().enumerate() {
        let labels: Vec<(String, String)> = stream
            .stream
            .into_iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k, s)),
                other => Err(PushError::Invalid(format!(
                    "streams[{s}]: label `{k}` must be a string, not {other}"
                ))),
            })
            .collect::<Result<_, _>>()?;
        for (e, value) in stream.values.into_iter().enumerate() {
            let at = || format!("streams[{s}].values[{e}]");
            let mut items = value.into_iter();
            let (Some(Value::String(ts)), Some(Value::String(line))) = (items.next(), items.next())
            else {
                return Err(PushError::Invalid(format!(
                    "{}: expected [\"<unix epoch in nanoseconds>\", \"<log line>\"]",
                    at()
                )));
            };
            let nanos: i64 = ts.trim().parse().map_err(|_| {
                PushError::Invalid(format!(
                    "{}: timestamp {ts:?} is not nanoseconds since the epoch",
                    at()
                ))
            })?;
            let metadata = match items.next() {
                None | Some(Value::Null) => Map::new(),
                Some(Value::Object(map)) => map,
                Some(_) => {
                    return Err(PushError::Invalid(format!(
                        "{}: structured metadata must be an object",
                        at()
                    )))
                }
            };
            push_line(&mut out, &labels, Timestamp(nanos), line, metadata)?;
        }
    }
    Ok(out)
}

/// The NDJSON lines of the `logs` stream a snappy-compressed protobuf push holds.
pub(crate) fn parse_protobuf(body: &[u8], limit: usize) -> Result<Vec<u8>, PushError> {
    let len = snap::raw::decompress_len(body).map_err(|e| {
        PushError::Invalid(format!("the body is not snappy-compressed protobuf: {e}"))
    })?;
    if len > limit {
        return Err(PushError::TooLarge(format!(
            "body decompresses to {len} bytes, more than the limit of {limit}"
        )));
    }
    let raw = snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|e| {
            PushError::Invalid(format!("the body is not snappy-compressed protobuf: {e}"))
        })?;
    let push = PushRequest::decode(raw.as_slice())
        .map_err(|e| PushError::Invalid(format!("the body is not a Loki PushRequest: {e}")))?;
    let mut out = Vec::new();
    for (s, stream) in push.streams.into_iter().enumerate() {
        let labels = parse_labels(&stream.labels)
            .map_err(|e| PushError::Invalid(format!("streams[{s}]: labels: {e}")))?;
        for (e, entry) in stream.entries.into_iter().enumerate() {
            let ts = entry.timestamp.unwrap_or_default();
            let nanos = ts
                .seconds
                .checked_mul(1_000_000_000)
                .and_then(|n| n.checked_add(i64::from(ts.nanos)))
                .ok_or_else(|| {
                    PushError::Invalid(format!(
                        "streams[{s}].entries[{e}]: timestamp is out of range"
                    ))
                })?;
            let metadata = entry
                .structured_metadata
                .into_iter()
                .map(|p| (p.name, Value::String(p.value)))
                .collect();
            push_line(&mut out, &labels, Timestamp(nanos), entry.line, metadata)?;
        }
    }
    Ok(out)
}

/// Appends one entry as a `logs` record line.
fn push_line(
    out: &mut Vec<u8>,
    labels: &[(String, String)],
    timestamp: Timestamp,
    line: String,
    metadata: Map<String, Value>,
) -> Result<(), PushError> {
    let rec = record(labels, timestamp, line, metadata);
    let encoded = serde_json::to_vec(&rec)
        .map_err(|e| PushError::Invalid(format!("entry could not be encoded: {e}")))?;
    out.extend_from_slice(&encoded);
    out.push(b'\n');
    Ok(())
}

/// One entry as a `logs` record (see the module docs for the labels).
pub(crate) fn record(
    labels: &[(String, String)],
    timestamp: Timestamp,
    line: String,
    metadata: Map<String, Value>,
) -> LogRecord {
    let mut rec = LogRecord {
        timestamp: Some(timestamp),
        ..LogRecord::default()
    };
    for (name, value) in labels {
        if rec.level.is_none() && shippers::LOKI_LEVEL_LABELS.contains(&name.as_str()) {
            if let Some(level) = Level::normalise(value) {
                rec.level = Some(level);
                continue;
            }
        }
        let slot = shippers::loki_label_field(name).and_then(|field| rec.text_field_mut(field));
        match slot {
            Some(field) if field.is_empty() => *field = value.clone(),
            _ => {
                rec.labels
                    .insert(name.clone(), Value::String(value.clone()));
            }
        }
    }
    if rec.level.is_none() {
        rec.level = level::detect(&line);
    }
    rec.message = line;
    rec.attributes = metadata;
    rec
}

/// Parses labels in Prometheus syntax: `{name="value", ...}`, values with the escapes `\\`,
/// `\"` and `\n`; `{}` is no labels. The error says where the text stops making sense.
pub fn parse_labels(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut chars = text.trim().char_indices().peekable();
    let mut labels = Vec::new();
    let skip_ws = |chars: &mut std::iter::Peekable<std::str::CharIndices>| {
        while chars.peek().is_some_and(|(_, c)| c.is_whitespace()) {
            chars.next();
        }
    };
    match chars.next() {
        Some((_, '{')) => {}
        _ => return Err(format!("expected `{{` at the start of {text:?}")),
    }
    loop {
        skip_ws(&mut chars);
        match chars.peek() {
            Some((_, '}')) => {
                chars.next();
                break;
            }
            None => return Err("unterminated label set: missing `}`".into()),
            _ => {}
        }
        let mut name = String::new();
        while let Some(&(_, c)) = chars.peek() {
            if c.is_ascii_alphanumeric() || c == '_' {
                name.push(c);
                chars.next();
            } else {
                break;
            }
        }
        let at = chars.peek().map_or(text.len(), |(i, _)| *i);
        if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(format!("expected a label name at position {at}"));
        }
        skip_ws(&mut chars);
        if chars.next().map(|(_, c)| c) != Some('=') {
            return Err(format!("expected `=` after label `{name}`"));
        }
        skip_ws(&mut chars);
        if chars.next().map(|(_, c)| c) != Some('"') {
            return Err(format!("expected a quoted value for label `{name}`"));
        }
        let mut value = String::new();
        loop {
            match chars.next() {
                None => return Err(format!("unterminated value of label `{name}`")),
                Some((_, '"')) => break,
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, 't')) => value.push('\t'),
                    Some((_, c @ ('\\' | '"'))) => value.push(c),
                    Some((_, c)) => {
                        value.push('\\');
                        value.push(c);
                    }
                    None => return Err(format!("unterminated value of label `{name}`")),
                },
                Some((_, c)) => value.push(c),
            }
        }
        labels.push((name, value));
        skip_ws(&mut chars);
        match chars.next() {
            Some((_, ',')) => continue,
            Some((_, '}')) => break,
            _ => {
                return Err(format!(
                    "expected `,` or `}}` after label `{}`",
                    labels.len()
                ))
            }
        }
    }
    skip_ws(&mut chars);
    if let Some((i, _)) = chars.next() {
        return Err(format!("unexpected text after `}}` at position {i}"));
    }
    Ok(labels)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn values(lines: &[u8]) -> Vec<Value> {
        lines
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect()
    }

    #[test]
    fn labels_in_prometheus_syntax() {
        let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        };
        assert_eq!(parse_labels("{}").unwrap(), pairs(&[]));
        assert_eq!(
            parse_labels(r#"{app="web", namespace = "shop",}"#).unwrap(),
            pairs(&[("app", "web"), ("namespace", "shop")])
        );
        assert_eq!(
            parse_labels(r#"{msg="say \"hi\"\nback\\slash, {}"}"#).unwrap(),
            pairs(&[("msg", "say \"hi\"\nback\\slash, {}")])
        );
        for (bad, expected) in [
            ("app=\"web\"", "expected `{`"),
            ("{app=\"web\"", "expected `,` or `}`"),
            ("{app=web}", "expected a quoted value"),
            ("{=\"x\"}", "expected a label name"),
            ("{app\"x\"}", "expected `=`"),
            ("{app=\"x}", "unterminated value"),
            ("{a=\"x\"} b", "unexpected text"),
        ] {
            let err = parse_labels(bad).unwrap_err();
            assert!(err.contains(expected), "{bad}: {err}");
        }
    }

    #[test]
    fn json_push_maps_labels() {
        let body = br#"{"streams":[{"stream":{"k8s_namespace_name":"shop","pod":"web-1","container":"app","node_name":"node-a","level":"warning","job":"shop/web","stream":"stderr"},
            "values":[["1795601700000000001","slow request"],["1795601700000000002","ERROR boom",{"trace_id":"abc"}]]}]}"#;
        let got = values(&parse_json(body).unwrap());
        assert_eq!(
            got,
            vec![
                json!({"timestamp": "2026-11-25T10:15:00.000000001Z", "node": "node-a",
                    "namespace": "shop", "pod": "web-1", "container": "app",
                    "labels": {"job": "shop/web"}, "stream": "stderr", "level": "warn",
                    "message": "slow request"}),
                json!({"timestamp": "2026-11-25T10:15:00.000000002Z", "node": "node-a",
                    "namespace": "shop", "pod": "web-1", "container": "app",
                    "labels": {"job": "shop/web"}, "stream": "stderr", "level": "warn",
                    "message": "ERROR boom", "attributes": {"trace_id": "abc"}}),
            ]
        );
    }

    #[test]
    fn level_detected_from_the_line_and_bad_level_label_kept() {
        let labels = vec![("level".to_string(), "chatty".to_string())];
        let rec = record(&labels, Timestamp(1), "ERROR boom".into(), Map::new());
        assert_eq!(rec.level, Some(Level::Error));
        assert_eq!(Value::Object(rec.labels), json!({"level": "chatty"}));
    }

    #[test]
    fn bad_json_pushes() {
        for (body, expected) in [
            (&b"{"[..], "not a Loki JSON push"),
            (
                br#"{"streams":[{"stream":{},"values":[["x","l"]]}]}"#,
                "is not nanoseconds",
            ),
            (
                br#"{"streams":[{"stream":{},"values":[[1,"l"]]}]}"#,
                "expected [\"",
            ),
            (
                br#"{"streams":[{"stream":{"a":1},"values":[]}]}"#,
                "label `a` must be a string",
            ),
        ] {
            match parse_json(body) {
                Err(PushError::Invalid(message)) => {
                    assert!(message.contains(expected), "{message}")
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn snappy_protobuf_push() {
        let push = PushRequest {
            streams: vec![StreamAdapter {
                labels: r#"{namespace="shop", pod="web-1", app="web"}"#.into(),
                entries: vec![EntryAdapter {
                    timestamp: Some(prost_types::Timestamp {
                        seconds: 1_795_601_700,
                        nanos: 5,
                    }),
                    line: "hello".into(),
                    structured_metadata: vec![LabelPairAdapter {
                        name: "trace_id".into(),
                        value: "t1".into(),
                    }],
                }],
                hash: 0,
            }],
        };
        let body = snap::raw::Encoder::new()
            .compress_vec(&push.encode_to_vec())
            .unwrap();
        let got = values(&parse_protobuf(&body, 1 << 20).unwrap());
        assert_eq!(
            got,
            vec![
                json!({"timestamp": "2026-11-25T10:15:00.000000005Z", "namespace": "shop",
                "pod": "web-1", "labels": {"app": "web"}, "message": "hello",
                "attributes": {"trace_id": "t1"}})
            ]
        );
        assert!(matches!(
            parse_protobuf(&body, 10),
            Err(PushError::TooLarge(_))
        ));
        assert!(matches!(
            parse_protobuf(b"plain text", 1 << 20),
            Err(PushError::Invalid(_))
        ));
    }
}
