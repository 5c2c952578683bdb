//! Live tail through a searcher: `GET /api/v1/{stream}/tail` on the stateless root subscribes
//! to the same tail on every indexer and interleaves their events into one Server-Sent Events
//! stream.
//!
//! Each indexer matches the query itself (the filtering happens next to the data); the root
//! only forwards `data:` lines, so a record appears once, from the indexer that made it
//! durable. An indexer that is down or goes away is retried with capped exponential backoff
//! while the others keep flowing, and the client is told once with an `event: warning`. When
//! an indexer cuts the subscriber off (`lagged`), the client gets that final event and the
//! stream ends, as with a local tail. The client's query string is passed on unchanged, with
//! the caller's resolved scope ([`Caller`]), so the indexers validate and scope the request
//! exactly as they would a direct one (a bad query is answered with the first indexer's 400).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::access::{Scope, SCOPE_HEADER};
use crate::error::Error;
use crate::tail::KEEP_ALIVE;

/// Events that may wait between the indexers' streams and the client's socket.
const EVENT_QUEUE: usize = 1024;

/// Backoff between reconnections to an indexer whose tail ended or failed.
const RETRY_MIN: Duration = Duration::from_millis(250);
const RETRY_MAX: Duration = Duration::from_secs(10);

/// Longest SSE line accepted from an indexer (a record's JSON); longer is a broken stream.
const MAX_LINE_BYTES: usize = 64 * 1024 * 1024;

/// What a searcher needs to ask its indexers: their base URLs, an HTTP client, and the
/// searcher's own credentials for them, if it has any.
#[derive(Clone)]
pub struct FanIn {
    pub indexers: Arc<Vec<String>>,
    pub client: reqwest::Client,
    /// `Authorization` the searcher presents to the indexers (`query.indexer_token`); `None`
    /// passes each caller's own header on.
    pub credentials: Option<HeaderValue>,
}

/// Who asked the searcher, as the indexers are told: the scope the searcher resolved for the
/// caller (sent in [`SCOPE_HEADER`], so it holds whatever token the indexers see) and the
/// credentials to present (the searcher's own when configured, else the caller's).
pub(crate) struct Caller {
    scope: Scope,
    authorization: Option<HeaderValue>,
}

impl Caller {
    pub(crate) fn new(fanin: &FanIn, scope: Scope, headers: &HeaderMap) -> Caller {
        Caller {
            scope,
            authorization: fanin
                .credentials
                .clone()
                .or_else(|| headers.get(header::AUTHORIZATION).cloned()),
        }
    }

    /// The caller's scope, as resolved at the searcher.
    pub(crate) fn scope(&self) -> &Scope {
        &self.scope
    }

    /// `request` with the credentials and the scope header.
    pub(crate) fn apply(&self, mut request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        if let Some(value) = &self.authorization {
            request = request.header(header::AUTHORIZATION, value.clone());
        }
        if let Some(value) = self.scope.header_value() {
            request = request.header(SCOPE_HEADER, value);
        }
        request
    }
}

/// What an indexer answered a leaf call (a part of a search, a report's pass).
pub(crate) enum Leaf<T> {
    /// The part, decoded from postcard.
    Answer(T),
    /// A client error (a bad query, an unknown stream): the same for every indexer, passed on.
    Refused(StatusCode, Bytes),
    /// Unreachable, timed out, a server error or an undecodable answer.
    Failed(String),
}

/// Sends a leaf call and decodes its postcard answer.
pub(crate) async fn leaf_call<T: serde::de::DeserializeOwned>(
    request: reqwest::RequestBuilder,
) -> Leaf<T> {
    let response = match request.send().await {
        Ok(response) => response,
        Err(err) => return Leaf::Failed(err.to_string()),
    };
    let status = response.status();
    let body = match response.bytes().await {
        Ok(body) => body,
        Err(err) => return Leaf::Failed(err.to_string()),
    };
    if status.is_client_error() {
        let status = StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::BAD_REQUEST);
        return Leaf::Refused(status, body);
    }
    if !status.is_success() {
        return Leaf::Failed(format!("answered {status}"));
    }
    match postcard::from_bytes::<T>(&body) {
        Ok(answer) => Leaf::Answer(answer),
        Err(err) => Leaf::Failed(format!("undecodable answer: {err}")),
    }
}

/// One SSE event read from an indexer.
#[derive(Debug, PartialEq, Eq)]
struct UpstreamEvent {
    /// `event:` name; empty for a plain data event.
    name: String,
    data: String,
}

/// Incremental parser of an SSE byte stream into events (comments and ids are skipped).
#[derive(Default)]
struct SseParser {
    line: Vec<u8>,
    name: String,
    data: Vec<String>,
}

impl SseParser {
    /// Feeds bytes; returns the events they complete. `Err` when a line is absurdly long.
    fn feed(&mut self, bytes: &[u8]) -> Result<Vec<UpstreamEvent>, String> {
        let mut events = Vec::new();
        for &b in bytes {
            if b != b'\n' {
                self.line.push(b);
                if self.line.len() > MAX_LINE_BYTES {
                    return Err("an indexer sent an over-long event line".into());
                }
                continue;
            }
            let mut line = std::mem::take(&mut self.line);
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            if line.is_empty() {
                if !self.data.is_empty() || !self.name.is_empty() {
                    events.push(UpstreamEvent {
                        name: std::mem::take(&mut self.name),
                        data: std::mem::take(&mut self.data).join("\n"),
                    });
                }
                continue;
            }
            let text = String::from_utf8_lossy(&line);
            if text.starts_with(':') {
                continue;
            }
            let (field, value) = match text.split_once(':') {
                Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
                None => (text.as_ref(), ""),
            };
            match field {
                "data" => self.data.push(value.to_string()),
                "event" => self.name = value.to_string(),
                _ => {}
            }
        }
        Ok(events)
    }
}

/// `GET /api/v1/{stream}/tail` of the searcher role.
pub(crate) async fn tail(
    State(fanin): State<FanIn>,
    scope: Scope,
    Path(stream): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    if fanin.indexers.is_empty() {
        return Error::Internal("no indexers are configured (`query.indexers`)".into())
            .into_response();
    }
    let query = query.map(|q| format!("?{q}")).unwrap_or_default();
    let caller = Arc::new(Caller::new(&fanin, scope, &headers));
    let url = |base: &str| format!("{base}/api/v1/{stream}/tail{query}");

    // Open every indexer's tail first, so that a refused request (bad query, unknown stream,
    // no permission) is answered as such rather than as an empty stream.
    let opens = fanin.indexers.iter().map(|base| {
        let request = caller.apply(fanin.client.get(url(base)));
        async move { request.send().await }
    });
    let opened = futures::future::join_all(opens).await;
    let mut first: Vec<Option<reqwest::Response>> = Vec::new();
    let mut reachable = 0;
    for response in opened {
        match response {
            Ok(r) if r.status().is_client_error() => {
                let status =
                    StatusCode::from_u16(r.status().as_u16()).unwrap_or(StatusCode::BAD_REQUEST);
                let body = r.bytes().await.unwrap_or_default();
                return (status, [(header::CONTENT_TYPE, "application/json")], body)
                    .into_response();
            }
            Ok(r) if r.status().is_success() => {
                reachable += 1;
                first.push(Some(r));
            }
            Ok(_) | Err(_) => first.push(None),
        }
    }
    if reachable == 0 {
        return trawl_model::ApiError::new(
            trawl_model::ErrorCode::Unavailable,
            "no indexer accepted the tail",
        )
        .into_response();
    }

    let (tx, rx) = mpsc::channel::<Event>(EVENT_QUEUE);
    for (base, response) in fanin.indexers.iter().zip(first) {
        let tx = tx.clone();
        let client = fanin.client.clone();
        let url = url(base);
        let caller = Arc::clone(&caller);
        let base = base.clone();
        tokio::spawn(async move {
            follow(client, base, url, caller, response, tx).await;
        });
    }
    drop(tx);
    let events = ReceiverStream::new(rx).map(Ok::<Event, Infallible>);
    Sse::new(events)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response()
}

/// Forwards one indexer's events until the client goes away (the channel closes) or the
/// indexer ends the subscription with an error event; reconnects when its stream breaks.
async fn follow(
    client: reqwest::Client,
    base: String,
    url: String,
    caller: Arc<Caller>,
    mut response: Option<reqwest::Response>,
    tx: mpsc::Sender<Event>,
) {
    let mut backoff = RETRY_MIN;
    let mut warned = false;
    loop {
        let current = match response.take() {
            Some(r) => Some(r),
            None => caller
                .apply(client.get(&url))
                .send()
                .await
                .ok()
                .filter(|r| r.status().is_success()),
        };
        match current {
            Some(r) => {
                backoff = RETRY_MIN;
                warned = false;
                let mut parser = SseParser::default();
                let mut body = r.bytes_stream();
                while let Some(chunk) = body.next().await {
                    let Ok(chunk) = chunk else { break };
                    let Ok(events) = parser.feed(&chunk) else {
                        break;
                    };
                    for ev in events {
                        let final_event = ev.name == "error";
                        let mut out = Event::default().data(ev.data);
                        if !ev.name.is_empty() {
                            out = out.event(ev.name);
                        }
                        if tx.send(out).await.is_err() {
                            return;
                        }
                        if final_event {
                            return;
                        }
                    }
                }
            }
            None => {
                if !warned {
                    warned = true;
                    let message = serde_json::json!({
                        "warning": {"code": "indexer_unavailable", "indexer": base,
                                    "message": "this indexer's records are missing until it is back"}
                    });
                    let event = Event::default().event("warning").data(message.to_string());
                    if tx.send(event).await.is_err() {
                        return;
                    }
                }
            }
        }
        if tx.is_closed() {
            return;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(RETRY_MAX);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_parser_splits_events_across_chunks() {
        let mut p = SseParser::default();
        assert_eq!(p.feed(b": keep-alive\n\ndata: {\"a\"").unwrap(), vec![]);
        let events = p.feed(b":1}\n\nevent: error\r\ndata: x\n\n").unwrap();
        assert_eq!(
            events,
            vec![
                UpstreamEvent {
                    name: String::new(),
                    data: "{\"a\":1}".into()
                },
                UpstreamEvent {
                    name: "error".into(),
                    data: "x".into()
                },
            ]
        );
    }

    #[test]
    fn sse_parser_joins_multi_line_data() {
        let mut p = SseParser::default();
        let events = p.feed(b"data: a\ndata: b\n\n").unwrap();
        assert_eq!(events[0].data, "a\nb");
    }
}
