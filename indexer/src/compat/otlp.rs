//! OTLP/HTTP logs: `POST /v1/logs` with an `ExportLogsServiceRequest` in protobuf
//! (`application/x-protobuf`) or in the OTLP JSON mapping (`application/json`), optionally
//! gzip-compressed. Records go to the `logs` stream:
//!
//! | record field | from |
//! |---|---|
//! | `namespace`, `pod`, `pod_uid`, `container`, `node`, `cluster` | resource attributes `k8s.namespace.name`, `k8s.pod.name`, `k8s.pod.uid`, `k8s.container.name`, `k8s.node.name`, `k8s.cluster.name` |
//! | `container_id`, `image` | `container.id`, `container.image.name` (`:` `container.image.tag`) |
//! | `labels` | resource attributes `k8s.pod.labels.<name>` |
//! | `timestamp` | `time_unix_nano`, else `observed_time_unix_nano`, else the time of receipt |
//! | `message` | the body: a string as is, any other value as JSON text |
//! | `level` | `severity_number` (1-4 trace ... 21-24 fatal), else `severity_text`, else detected from the body |
//! | `stream`, `file` | log attributes `log.iostream`, `log.file.path` |
//! | `attributes` | the other resource attributes (`service.name`, ...), then the log attributes, `trace_id` and `span_id` (lower-case hex), `event_name` |
//!
//! The resource attributes' table is `trawl_model::shippers::OTLP_RESOURCE_FIELDS`.
//!
//! The answer is an `ExportLogsServiceResponse` in the request's encoding, with
//! `partial_success` (`rejected_log_records`, `error_message`) when some records were refused.
//! A body that does not decode is 400 with a `google.rpc.Status`; another content type is 415.

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue};
use prost::Message;
use serde_json::{json, Map, Number, Value};
use trawl_model::{Level, LogRecord, Timestamp};

use crate::http::{ingest_error, receive, IngestState};
use crate::{Push, Surface};
use trawl_model::{level, shippers};
use trawl_model::{ApiError, ErrorCode};

/// The OTLP/HTTP logs route.
pub(crate) fn routes(state: IngestState) -> Router {
    Router::new()
        .route("/v1/logs", post(export))
        .with_state(state)
}

/// The two encodings of OTLP/HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wire {
    Protobuf,
    Json,
}

impl Wire {
    fn from_headers(headers: &HeaderMap) -> Option<Wire> {
        let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
        let mime = value.split(';').next()?.trim().to_ascii_lowercase();
        match mime.as_str() {
            "application/x-protobuf" | "application/protobuf" => Some(Wire::Protobuf),
            "application/json" => Some(Wire::Json),
            _ => None,
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Wire::Protobuf => "application/x-protobuf",
            Wire::Json => "application/json",
        }
    }
}

async fn export(State(state): State<IngestState>, headers: HeaderMap, body: Body) -> Response {
    let wire = Wire::from_headers(&headers);
    let admit = || match wire {
        Some(_) => Ok(()),
        None => Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "OTLP/HTTP takes application/x-protobuf or application/json",
        )),
    };
    let received = match receive(&state, &headers, body, admit).await {
        Ok(received) => received,
        Err(err) => return status_response(&err, wire.unwrap_or(Wire::Json)),
    };
    let Some(wire) = wire else {
        return status_response(
            &ApiError::new(ErrorCode::UnsupportedMediaType, "unsupported content type"),
            Wire::Json,
        );
    };
    let request = match decode(wire, &received.body) {
        Ok(request) => request,
        Err(message) => return status_response(&ApiError::bad_request(message), wire),
    };
    let push = Push::of_request(Surface::Otlp, &received.body);
    let converted = records(request, Timestamp::now());
    let mut rejected = converted.rejected;
    let mut first_error = converted.first_error;
    if !converted.lines.is_empty() {
        match state
            .indexer
            .ingest_push(trawl_model::LOGS_STREAM, converted.lines, push)
            .await
        {
            Ok(outcome) => {
                rejected += outcome.rejected;
                if first_error.is_none() {
                    first_error = outcome.errors.into_iter().next().map(|e| e.message);
                }
            }
            Err(err) => return status_response(&ingest_error(err), wire),
        }
    }
    drop(received);
    let partial_success = (rejected > 0).then(|| ExportLogsPartialSuccess {
        rejected_log_records: rejected as i64,
        error_message: first_error.unwrap_or_default(),
    });
    let response = ExportLogsServiceResponse { partial_success };
    let body = match wire {
        Wire::Protobuf => response.encode_to_vec(),
        Wire::Json => response_json(&response).to_string().into_bytes(),
    };
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(wire.content_type()),
        )],
        body,
    )
        .into_response()
}

/// Decodes a request body; the error says why it does not decode.
pub(crate) fn decode(wire: Wire, body: &[u8]) -> Result<ExportLogsServiceRequest, String> {
    match wire {
        Wire::Protobuf => ExportLogsServiceRequest::decode(body)
            .map_err(|e| format!("the body is not an OTLP ExportLogsServiceRequest: {e}")),
        Wire::Json => serde_json::from_slice(body)
            .map_err(|e| format!("the body is not OTLP/JSON ExportLogsServiceRequest: {e}")),
    }
}

/// The JSON mapping of a response: `{}` or `{"partialSuccess": {"rejectedLogRecords": "n",
/// "errorMessage": "..."}}` (int64 as a string, as the protobuf JSON mapping writes it).
fn response_json(response: &ExportLogsServiceResponse) -> Value {
    match &response.partial_success {
        None => json!({}),
        Some(p) => json!({"partialSuccess": {
            "rejectedLogRecords": p.rejected_log_records.to_string(),
            "errorMessage": p.error_message,
        }}),
    }
}

/// `google.rpc.Status`, what OTLP/HTTP answers on failure.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct RpcStatus {
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
}

/// An error as a `google.rpc.Status` in the request's encoding, with the indexer's HTTP status
/// and `Retry-After` (429 and 503 are retried by OTLP exporters).
fn status_response(err: &ApiError, wire: Wire) -> Response {
    // gRPC codes: INVALID_ARGUMENT, RESOURCE_EXHAUSTED, UNAVAILABLE, INTERNAL.
    let code = match err.code() {
        ErrorCode::BadRequest
        | ErrorCode::UnsupportedMediaType
        | ErrorCode::NotFound
        | ErrorCode::UnknownStream => 3,
        ErrorCode::TooManyRequests | ErrorCode::PayloadTooLarge => 8,
        ErrorCode::Unavailable | ErrorCode::InsufficientStorage => 14,
        _ => 13,
    };
    let status = RpcStatus {
        code,
        message: err.message().to_string(),
    };
    let body = match wire {
        Wire::Protobuf => status.encode_to_vec(),
        Wire::Json => json!({"code": status.code, "message": status.message})
            .to_string()
            .into_bytes(),
    };
    let mut response = (
        err.http_status(),
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(wire.content_type()),
        )],
        body,
    )
        .into_response();
    err.set_retry_after(response.headers_mut());
    response
}

/// The records of a request as NDJSON lines of the `logs` stream, and those refused here.
#[derive(Debug, Default)]
pub(crate) struct Converted {
    pub lines: Vec<u8>,
    pub count: usize,
    pub rejected: usize,
    pub first_error: Option<String>,
}

/// Maps a request's log records onto `logs` records (see the module docs); `now` stands in
/// for a record without any time. A record whose time does not fit (past 2262) is refused.
pub(crate) fn records(request: ExportLogsServiceRequest, now: Timestamp) -> Converted {
    let mut out = Converted::default();
    for resource_logs in request.resource_logs {
        let mut base = LogRecord::default();
        let mut resource_attrs = Map::new();
        let mut image_tag = None;
        for kv in resource_logs
            .resource
            .map(|r| r.attributes)
            .unwrap_or_default()
        {
            let value = any_to_json(kv.value.as_ref());
            let text = || match &value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let key = kv.key.as_str();
            if let Some(slot) =
                shippers::otlp_resource_field(key).and_then(|field| base.text_field_mut(field))
            {
                *slot = text();
            } else if key == shippers::OTLP_IMAGE_TAG {
                image_tag = Some(text());
            } else if let Some(label) = key.strip_prefix(shippers::OTLP_POD_LABEL_PREFIX) {
                base.labels.insert(label.to_string(), value);
            } else {
                resource_attrs.insert(key.to_string(), value);
            }
        }
        if let Some(tag) = image_tag {
            if base.image.is_empty() {
                resource_attrs.insert(shippers::OTLP_IMAGE_TAG.into(), Value::String(tag));
            } else if !tag.is_empty() {
                base.image = format!("{}:{tag}", base.image);
            }
        }
        for scope_logs in resource_logs.scope_logs {
            let scope = scope_logs.scope.map(|s| s.name).unwrap_or_default();
            for log in scope_logs.log_records {
                match record(&base, &resource_attrs, &scope, log, now) {
                    Ok(rec) => match serde_json::to_vec(&rec) {
                        Ok(line) => {
                            out.lines.extend_from_slice(&line);
                            out.lines.push(b'\n');
                            out.count += 1;
                        }
                        Err(err) => out.reject(format!("record could not be encoded: {err}")),
                    },
                    Err(message) => out.reject(message),
                }
            }
        }
    }
    out
}

impl Converted {
    fn reject(&mut self, message: String) {
        self.rejected += 1;
        self.first_error.get_or_insert(message);
    }
}

fn record(
    base: &LogRecord,
    resource_attrs: &Map<String, Value>,
    scope: &str,
    log: opentelemetry_proto::tonic::logs::v1::LogRecord,
    now: Timestamp,
) -> Result<LogRecord, String> {
    let mut rec = base.clone();
    let nanos = [log.time_unix_nano, log.observed_time_unix_nano]
        .into_iter()
        .find(|&t| t != 0);
    rec.timestamp = Some(match nanos {
        None => now,
        Some(t) => Timestamp(
            i64::try_from(t).map_err(|_| format!("time_unix_nano {t} is past the year 2262"))?,
        ),
    });
    rec.message = match log.body.as_ref().and_then(|b| b.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(_) => any_to_json(log.body.as_ref()).to_string(),
        None => String::new(),
    };
    rec.level = severity_level(log.severity_number)
        .or_else(|| Level::normalise(&log.severity_text))
        .or_else(|| level::detect(&rec.message));
    let mut attributes = resource_attrs.clone();
    if !scope.is_empty() {
        attributes.insert("otel.scope.name".into(), Value::String(scope.to_string()));
    }
    for kv in log.attributes {
        let (key, value) = (kv.key, any_to_json(kv.value.as_ref()));
        match (key.as_str(), &value) {
            ("log.iostream", Value::String(s)) if rec.stream.is_empty() => rec.stream = s.clone(),
            ("log.file.path", Value::String(s)) if rec.file.is_empty() => rec.file = s.clone(),
            _ => {
                attributes.insert(key, value);
            }
        }
    }
    if !log.trace_id.is_empty() {
        attributes.insert("trace_id".into(), Value::String(hex(&log.trace_id)));
    }
    if !log.span_id.is_empty() {
        attributes.insert("span_id".into(), Value::String(hex(&log.span_id)));
    }
    if !log.event_name.is_empty() {
        attributes.insert("event_name".into(), Value::String(log.event_name));
    }
    if rec.level.is_none() && !log.severity_text.is_empty() {
        attributes.insert("severity_text".into(), Value::String(log.severity_text));
    }
    rec.attributes = attributes;
    Ok(rec)
}

/// OTLP severity numbers: 1-4 trace, 5-8 debug, 9-12 info, 13-16 warn, 17-20 error, 21-24
/// fatal; 0 (unspecified) and anything else is no level.
fn severity_level(n: i32) -> Option<Level> {
    Some(match n {
        1..=4 => Level::Trace,
        5..=8 => Level::Debug,
        9..=12 => Level::Info,
        13..=16 => Level::Warn,
        17..=20 => Level::Error,
        21..=24 => Level::Fatal,
        _ => return None,
    })
}

/// An `AnyValue` as JSON: kvlists as objects, arrays as arrays, bytes as lower-case hex.
fn any_to_json(value: Option<&AnyValue>) -> Value {
    match value.and_then(|v| v.value.as_ref()) {
        None => Value::Null,
        Some(any_value::Value::StringValue(s)) => Value::String(s.clone()),
        Some(any_value::Value::BoolValue(b)) => Value::Bool(*b),
        Some(any_value::Value::IntValue(i)) => Value::Number((*i).into()),
        Some(any_value::Value::DoubleValue(f)) => {
            Number::from_f64(*f).map_or(Value::Null, Value::Number)
        }
        Some(any_value::Value::ArrayValue(a)) => {
            Value::Array(a.values.iter().map(|v| any_to_json(Some(v))).collect())
        }
        Some(any_value::Value::KvlistValue(kv)) => Value::Object(
            kv.values
                .iter()
                .map(|kv| (kv.key.clone(), any_to_json(kv.value.as_ref())))
                .collect(),
        ),
        Some(any_value::Value::BytesValue(b)) => Value::String(hex(b)),
        // An index into a profiles dictionary: meaningless in a logs request.
        Some(any_value::Value::StringValueStrindex(_)) => Value::Null,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{InstrumentationScope, KeyValue, KeyValueList};
    use opentelemetry_proto::tonic::logs::v1::{LogRecord as OtlpRecord, ResourceLogs, ScopeLogs};
    use opentelemetry_proto::tonic::resource::v1::Resource;

    fn kv(key: &str, value: any_value::Value) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(value) }),
            ..Default::default()
        }
    }

    fn s(text: &str) -> any_value::Value {
        any_value::Value::StringValue(text.into())
    }

    fn request(logs: Vec<OtlpRecord>) -> ExportLogsServiceRequest {
        ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: Some(Resource {
                    attributes: vec![
                        kv("k8s.namespace.name", s("shop")),
                        kv("k8s.pod.name", s("web-1")),
                        kv("k8s.pod.uid", s("uid-1")),
                        kv("k8s.container.name", s("app")),
                        kv("k8s.node.name", s("node-a")),
                        kv("k8s.pod.labels.app", s("web")),
                        kv("container.image.name", s("shop/web")),
                        kv("container.image.tag", s("1.2")),
                        kv("service.name", s("checkout")),
                    ],
                    ..Default::default()
                }),
                scope_logs: vec![ScopeLogs {
                    scope: Some(InstrumentationScope {
                        name: "app.logger".into(),
                        ..Default::default()
                    }),
                    log_records: logs,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    fn lines(converted: &Converted) -> Vec<Value> {
        converted
            .lines
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect()
    }

    #[test]
    fn resource_and_record_map_onto_logs_fields() {
        let log = OtlpRecord {
            time_unix_nano: 1_795_601_700_000_000_001,
            severity_number: 17,
            severity_text: "ERROR".into(),
            body: Some(AnyValue {
                value: Some(s("payment failed")),
            }),
            attributes: vec![
                kv("order.id", any_value::Value::IntValue(42)),
                kv("log.iostream", s("stderr")),
            ],
            trace_id: vec![0xab; 16],
            span_id: vec![0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08],
            ..Default::default()
        };
        let converted = records(request(vec![log]), Timestamp(5));
        assert_eq!(converted.rejected, 0);
        assert_eq!(
            lines(&converted),
            vec![json!({
                "timestamp": "2026-11-25T10:15:00.000000001Z",
                "node": "node-a",
                "namespace": "shop",
                "pod": "web-1",
                "pod_uid": "uid-1",
                "container": "app",
                "image": "shop/web:1.2",
                "labels": {"app": "web"},
                "stream": "stderr",
                "level": "error",
                "message": "payment failed",
                "attributes": {
                    "service.name": "checkout",
                    "otel.scope.name": "app.logger",
                    "order.id": 42,
                    "trace_id": "abababababababababababababababab",
                    "span_id": "0102030405060708"
                }
            })]
        );
    }

    #[test]
    fn body_kinds_times_and_levels() {
        let kvlist = any_value::Value::KvlistValue(KeyValueList {
            values: vec![
                kv("event", s("login")),
                kv("ok", any_value::Value::BoolValue(true)),
            ],
        });
        let logs = vec![
            OtlpRecord {
                observed_time_unix_nano: 7,
                severity_text: "warning".into(),
                body: Some(AnyValue {
                    value: Some(kvlist),
                }),
                ..Default::default()
            },
            OtlpRecord {
                body: Some(AnyValue {
                    value: Some(s("level=debug msg=x")),
                }),
                ..Default::default()
            },
            OtlpRecord {
                time_unix_nano: u64::MAX,
                ..Default::default()
            },
        ];
        let converted = records(request(logs), Timestamp(99));
        assert_eq!(converted.count, 2);
        assert_eq!(converted.rejected, 1);
        assert_eq!(
            converted.first_error.as_deref(),
            Some("time_unix_nano 18446744073709551615 is past the year 2262")
        );
        let got = lines(&converted);
        assert_eq!(got[0]["timestamp"], "1970-01-01T00:00:00.000000007Z");
        assert_eq!(got[0]["message"], r#"{"event":"login","ok":true}"#);
        assert_eq!(got[0]["level"], "warn");
        assert_eq!(got[1]["timestamp"], "1970-01-01T00:00:00.000000099Z");
        assert_eq!(got[1]["level"], "debug");
    }

    #[test]
    fn json_mapping_decodes() {
        // The OTLP/JSON example of opentelemetry-proto (camelCase, hex ids, int64 as strings).
        let body = br#"{"resourceLogs":[{"resource":{"attributes":[
            {"key":"k8s.namespace.name","value":{"stringValue":"shop"}},
            {"key":"k8s.pod.name","value":{"stringValue":"web-1"}}]},
          "scopeLogs":[{"scope":{"name":"my.library","version":"1.0.0"},
            "logRecords":[{"timeUnixNano":"1544712660300000000",
              "observedTimeUnixNano":"1544712660300000000","severityNumber":10,
              "severityText":"Information","traceId":"5b8efff798038103d269b633813fc60c",
              "spanId":"eee19b7ec3c1b174","body":{"stringValue":"Example log record"},
              "attributes":[{"key":"int.attribute","value":{"intValue":"10"}},
                {"key":"double.attribute","value":{"doubleValue":637.704}},
                {"key":"array.attribute","value":{"arrayValue":{"values":[{"stringValue":"many"},{"stringValue":"values"}]}}}]}]}]}]}"#;
        let request = decode(Wire::Json, body).unwrap();
        let converted = records(request, Timestamp(0));
        let got = lines(&converted);
        assert_eq!(
            got,
            vec![json!({
                "timestamp": "2018-12-13T14:51:00.300000000Z",
                "namespace": "shop",
                "pod": "web-1",
                "level": "info",
                "message": "Example log record",
                "attributes": {
                    "otel.scope.name": "my.library",
                    "int.attribute": 10,
                    "double.attribute": 637.704,
                    "array.attribute": ["many", "values"],
                    "trace_id": "5b8efff798038103d269b633813fc60c",
                    "span_id": "eee19b7ec3c1b174"
                }
            })]
        );
        assert!(decode(Wire::Json, b"{\"resourceLogs\":7}").is_err());
        assert!(decode(Wire::Protobuf, b"\xff\xff\xff").is_err());
        let encoded = request_bytes();
        assert_eq!(
            decode(Wire::Protobuf, &encoded)
                .unwrap()
                .resource_logs
                .len(),
            1
        );
    }

    fn request_bytes() -> Vec<u8> {
        request(vec![OtlpRecord::default()]).encode_to_vec()
    }

    #[test]
    fn responses() {
        let partial = ExportLogsServiceResponse {
            partial_success: Some(ExportLogsPartialSuccess {
                rejected_log_records: 2,
                error_message: "bad".into(),
            }),
        };
        assert_eq!(
            response_json(&partial),
            json!({"partialSuccess": {"rejectedLogRecords": "2", "errorMessage": "bad"}})
        );
        assert_eq!(
            response_json(&ExportLogsServiceResponse::default()),
            json!({})
        );
        let status = RpcStatus {
            code: 3,
            message: "x".into(),
        };
        assert_eq!(
            RpcStatus::decode(&status.encode_to_vec()[..]).unwrap(),
            status
        );
    }
}
