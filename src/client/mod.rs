//! The command-line client: `trawl search`, `trawl tail`, `trawl export`, `trawl reports`,
//! `trawl dead-letters`.
//! Each talks HTTP to a running server (`--url`, or `TRAWL_URL`; default
//! `http://127.0.0.1:7400`) with an optional bearer token (`--token`, or `TRAWL_TOKEN`) and,
//! for an `https://` server whose certificate is not signed by a public CA, the PEM bundle of
//! the CA to trust (`--ca-cert`, or `TRAWL_CA_CERT`), and turns failures into messages that
//! say what to do. Needs no server-side feature: it builds
//! with any role set.

pub mod dead_letters;
pub mod export;
pub mod output;
pub mod reports;
pub mod search;
pub mod tail;

use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use clap::Args;
use reqwest::{RequestBuilder, Response, StatusCode};
use serde_json::Value;

/// Where the server is and how to authenticate.
#[derive(Args, Debug, Clone)]
pub struct ConnectArgs {
    /// Base URL of the trawl server.
    #[arg(long, env = "TRAWL_URL", default_value = "http://127.0.0.1:7400")]
    pub url: String,
    /// Bearer token sent as `Authorization: Bearer <token>`.
    #[arg(long, env = "TRAWL_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// PEM file of CA certificates to trust for an `https://` URL, in addition to the public
    /// roots (for a self-signed or private-CA server certificate).
    #[arg(long, env = "TRAWL_CA_CERT")]
    pub ca_cert: Option<std::path::PathBuf>,
}

/// The time range of a query.
#[derive(Args, Debug, Clone, Default)]
pub struct TimeArgs {
    /// Only records newer than this: a duration such as `30s`, `15m`, `24h`, `7d`, `2w`.
    #[arg(long, conflicts_with = "start")]
    pub since: Option<String>,
    /// Inclusive start: RFC 3339 or `now-15m`.
    #[arg(long)]
    pub start: Option<String>,
    /// Exclusive end: RFC 3339 or `now-5m`.
    #[arg(long)]
    pub end: Option<String>,
}

impl TimeArgs {
    /// The `start` and `end` query parameters; `--since 15m` becomes `start=now-15m` (the
    /// server resolves `now`). A malformed `--since` is an error saying the expected form.
    pub fn params(&self) -> anyhow::Result<Vec<(&'static str, String)>> {
        let mut params = Vec::new();
        if let Some(since) = &self.since {
            params.push(("start", format!("now-{}", parse_duration(since)?)));
        }
        if let Some(start) = &self.start {
            params.push(("start", start.clone()));
        }
        if let Some(end) = &self.end {
            params.push(("end", end.clone()));
        }
        Ok(params)
    }
}

/// Checks a duration such as `15m` and returns it trimmed: digits then one unit of s, m, h,
/// d, w.
pub fn parse_duration(text: &str) -> anyhow::Result<String> {
    let text = text.trim();
    let digits = text.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &text[digits.len()..];
    if digits.is_empty()
        || !digits.bytes().all(|b| b.is_ascii_digit())
        || !matches!(unit, "s" | "m" | "h" | "d" | "w")
    {
        bail!("`{text}` is not a duration: write a number and a unit (s, m, h, d, w), e.g. 15m or 24h");
    }
    Ok(text.to_string())
}

/// An HTTP client bound to one server.
pub struct Connection {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl Connection {
    /// A connection to `args.url`. `timeout` bounds whole requests (`None` for streams: tail
    /// and export run as long as they need).
    pub fn new(args: &ConnectArgs, timeout: Option<Duration>) -> anyhow::Result<Connection> {
        let mut builder = reqwest::Client::builder().connect_timeout(Duration::from_secs(10));
        if let Some(timeout) = timeout {
            builder = builder.timeout(timeout);
        }
        if let Some(path) = &args.ca_cert {
            for cert in read_ca_bundle(path)? {
                builder = builder.add_root_certificate(cert);
            }
        }
        Ok(Connection {
            base: args.url.trim_end_matches('/').to_string(),
            token: args.token.clone().filter(|t| !t.is_empty()),
            http: builder.build().context("building the HTTP client")?,
        })
    }

    /// A GET of `path` (starting with `/`).
    pub fn get(&self, path: &str) -> RequestBuilder {
        self.authorize(self.http.get(format!("{}{path}", self.base)))
    }

    /// A POST of `path`.
    pub fn post(&self, path: &str) -> RequestBuilder {
        self.authorize(self.http.post(format!("{}{path}", self.base)))
    }

    fn authorize(&self, request: RequestBuilder) -> RequestBuilder {
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// Sends `request` and returns the response if its status is a success; otherwise an
    /// error that says what to do.
    pub async fn send(&self, request: RequestBuilder) -> anyhow::Result<Response> {
        let response = request
            .send()
            .await
            .map_err(|err| self.transport_error(&err))?;
        if response.status().is_success() {
            return Ok(response);
        }
        Err(status_error(response).await)
    }

    /// Sends `request` and parses the JSON answer.
    pub async fn json(&self, request: RequestBuilder) -> anyhow::Result<Value> {
        let response = self.send(request).await?;
        response.json().await.map_err(|err| {
            anyhow!(
                "the server at {} sent an unreadable answer: {err}",
                self.base
            )
        })
    }

    /// Describes a failure to talk to the server.
    pub fn transport_error(&self, err: &reqwest::Error) -> anyhow::Error {
        if err.is_connect() {
            anyhow!(
                "cannot connect to {url}: is trawl running at {url}? start it with \
                 `trawl standalone` or pass --url (or set TRAWL_URL)",
                url = self.base
            )
        } else if err.is_timeout() {
            anyhow!("{} did not answer in time", self.base)
        } else if err.is_builder() {
            anyhow!("invalid server URL `{}`: {err}", self.base)
        } else {
            anyhow!("talking to {}: {err}", self.base)
        }
    }
}

/// The certificates of a PEM bundle; an error naming the file when it cannot be read or holds
/// none.
pub fn read_ca_bundle(path: &std::path::Path) -> anyhow::Result<Vec<reqwest::Certificate>> {
    let pem =
        std::fs::read(path).with_context(|| format!("reading --ca-cert {}", path.display()))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem)
        .with_context(|| format!("--ca-cert {}: malformed PEM", path.display()))?;
    if certs.is_empty() {
        bail!("--ca-cert {}: no PEM certificate found", path.display());
    }
    Ok(certs)
}

/// The error of a non-success response: `<code>: <message>` from a JSON error body, with a
/// hint for authentication failures.
async fn status_error(response: Response) -> anyhow::Error {
    let status = response.status();
    let path = response.url().path().to_string();
    let body = response.text().await.unwrap_or_default();
    let detail = error_detail(&body);
    match status {
        StatusCode::UNAUTHORIZED => anyhow!(
            "{}: the server wants a valid token: pass --token or set TRAWL_TOKEN",
            detail.unwrap_or_else(|| "unauthorized".to_string())
        ),
        StatusCode::FORBIDDEN => anyhow!(
            "{}: the token is not allowed to do this",
            detail.unwrap_or_else(|| "forbidden".to_string())
        ),
        _ => match detail {
            Some(detail) => anyhow!("{detail}"),
            None if body.trim().is_empty() => anyhow!("the server answered {status} for {path}"),
            None => {
                let shown: String = body.trim().chars().take(200).collect();
                anyhow!("the server answered {status} for {path}: {shown}")
            }
        },
    }
}

/// `<code>: <message>` of a body `{"error": {"code", "message"}}`.
pub fn error_detail(body: &str) -> Option<String> {
    let value: Value = serde_json::from_str(body).ok()?;
    let error = value.get("error")?;
    let code = error.get("code")?.as_str()?;
    let message = error.get("message").and_then(Value::as_str).unwrap_or("");
    Some(format!("{code}: {message}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("15m").unwrap(), "15m");
        assert_eq!(parse_duration(" 24h ").unwrap(), "24h");
        for bad in ["", "m", "15", "15min", "-5m", "1.5h", "5y"] {
            let err = parse_duration(bad).unwrap_err().to_string();
            assert!(err.contains("is not a duration"), "{bad}: {err}");
        }
    }

    #[test]
    fn time_params() {
        let args = TimeArgs {
            since: Some("15m".into()),
            start: None,
            end: Some("now-1m".into()),
        };
        assert_eq!(
            args.params().unwrap(),
            vec![
                ("start", "now-15m".to_string()),
                ("end", "now-1m".to_string())
            ]
        );
    }

    #[test]
    fn error_bodies() {
        assert_eq!(
            error_detail(
                r#"{"error": {"code": "invalid_query", "message": "syntax error at position 3"}}"#
            ),
            Some("invalid_query: syntax error at position 3".to_string())
        );
        assert_eq!(error_detail("<html>"), None);
        assert_eq!(error_detail(r#"{"x": 1}"#), None);
    }
}
