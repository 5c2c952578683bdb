//! The compatibility routes through the router (no socket): the error shapes each protocol's
//! clients expect, and auto-creation being off by default.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use prost::Message;
use serde_json::{json, Value};
use tower::ServiceExt;

use crate::compat::otlp::RpcStatus;
use crate::{Indexer, IndexerSettings, Metrics};

fn indexer(dir: &std::path::Path) -> Indexer {
    let mut config = trawl_config::Config {
        data_dir: dir.to_path_buf(),
        ..Default::default()
    };
    config.indexer.commit_interval_ms = 50;
    config.indexer.janitor_interval_secs = 3600;
    let mut settings = IndexerSettings::from_config(&config);
    settings.writer_memory_bytes = 15_000_000;
    Indexer::open(settings, Arc::new(Metrics::default())).unwrap()
}

struct Answer {
    status: StatusCode,
    content_type: String,
    product: Option<String>,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

async fn send(indexer: &Indexer, path: &str, content_type: &str, body: &[u8]) -> Answer {
    let request = Request::post(path)
        .header("content-type", content_type)
        .body(Body::from(body.to_vec()))
        .unwrap();
    let response = crate::http::routes(indexer.clone())
        .oneshot(request)
        .await
        .unwrap();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    };
    let (status, content_type, product) = (
        response.status(),
        header("content-type").unwrap_or_default(),
        header("x-elastic-product"),
    );
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap()
        .to_vec();
    Answer {
        status,
        content_type,
        product,
        body,
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn elasticsearch_errors_have_its_shape_and_product_header() {
    let dir = tempfile::tempdir().unwrap();
    let indexer = indexer(dir.path());
    runtime().block_on(async {
        let bulk = "/api/v1/_elastic/_bulk";
        let answer = send(&indexer, bulk, "application/x-ndjson", b"{\"upsert\":{}}\n{}\n").await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST);
        assert_eq!(answer.product.as_deref(), Some("Elasticsearch"));
        let reason = "Malformed action/metadata line [1], expected one of [create, delete, \
                      index, update] but found [upsert]";
        assert_eq!(
            answer.json(),
            json!({"error": {"root_cause": [{"type": "illegal_argument_exception", "reason": reason}],
                "type": "illegal_argument_exception", "reason": reason}, "status": 400})
        );

        let answer = send(&indexer, bulk, "text/plain", b"{}").await;
        assert_eq!(answer.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert_eq!(answer.product.as_deref(), Some("Elasticsearch"));
        assert_eq!(answer.json()["error"]["type"], "media_type_header_exception");

        // Auto-creation is off by default: an unknown index is a 404 item, and stays unknown.
        let body = b"{\"index\":{\"_index\":\"web\"}}\n{\"a\":1}\n";
        let answer = send(&indexer, bulk, "application/json", body).await;
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(answer.json()["errors"], true);
        assert_eq!(answer.json()["items"][0]["index"]["status"], 404);
        assert!(!indexer.has_stream("web"));
        let answer = send(&indexer, "/api/v1/web/ingest", "application/x-ndjson", b"{}").await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND);
    });
    indexer.shutdown();
}

#[test]
fn otlp_errors_are_rpc_statuses_in_the_request_encoding() {
    let dir = tempfile::tempdir().unwrap();
    let indexer = indexer(dir.path());
    runtime().block_on(async {
        let answer = send(&indexer, "/v1/logs", "text/plain", b"hello").await;
        assert_eq!(answer.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert_eq!(answer.content_type, "application/json");
        assert_eq!(answer.json()["code"], 3);

        let answer = send(
            &indexer,
            "/v1/logs",
            "application/x-protobuf",
            b"\xff\xff\xff",
        )
        .await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST);
        assert_eq!(answer.content_type, "application/x-protobuf");
        let status = RpcStatus::decode(answer.body.as_slice()).unwrap();
        assert_eq!(status.code, 3);
        assert!(
            status.message.starts_with("the body is not an OTLP"),
            "{}",
            status.message
        );

        let answer = send(&indexer, "/v1/logs", "application/json", b"{}").await;
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(answer.json(), json!({}));
    });
    indexer.shutdown();
}

#[test]
fn loki_errors_are_plain_text_and_success_is_204() {
    let dir = tempfile::tempdir().unwrap();
    let indexer = indexer(dir.path());
    runtime().block_on(async {
        let path = "/loki/api/v1/push";
        let answer = send(&indexer, path, "application/json", b"{\"streams\":5}").await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST);
        assert!(answer.content_type.starts_with("text/plain"));
        let text = String::from_utf8(answer.body).unwrap();
        assert!(
            text.starts_with("the body is not a Loki JSON push"),
            "{text}"
        );

        let body = br#"{"streams":[{"stream":{"pod":"p"},"values":[["1","x"]]}]}"#;
        let answer = send(&indexer, path, "application/json", body).await;
        assert_eq!(answer.status, StatusCode::NO_CONTENT);
        assert!(answer.body.is_empty());
    });
    indexer.shutdown();
}
