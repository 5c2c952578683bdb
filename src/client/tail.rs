//! `trawl tail`: follows new matching records (`GET /api/v1/{stream}/tail`, Server-Sent
//! Events) and prints each as it arrives.

use std::io::Write;
use std::process::ExitCode;

use anyhow::bail;
use clap::{Args, ValueEnum};
use serde_json::{Map, Value};

use super::output::{cell_text, colours_on_stdout, Palette};
use super::{error_detail, ConnectArgs, Connection};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TailOutput {
    /// One readable line per record (colours on a terminal).
    Text,
    /// Each record's JSON on one line.
    Ndjson,
}

#[derive(Args, Debug)]
pub struct TailArgs {
    /// Query in the tantivy grammar, e.g. 'level:error'.
    #[arg(default_value = "*")]
    pub query: String,
    /// Stream to follow.
    #[arg(long, short = 's', default_value = "logs")]
    pub stream: String,
    /// Fields to receive, comma-separated.
    #[arg(long)]
    pub fields: Option<String>,
    #[arg(long, short = 'o', value_enum, default_value_t = TailOutput::Text)]
    pub output: TailOutput,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

pub async fn run(args: TailArgs) -> anyhow::Result<ExitCode> {
    let conn = Connection::new(&args.connect, None)?;
    let mut params = vec![("q", args.query.clone())];
    if let Some(fields) = &args.fields {
        params.push(("fields", fields.clone()));
    }
    let path = format!("/api/v1/{}/tail", args.stream);
    let request = conn
        .get(&path)
        .query(&params)
        .header("accept", "text/event-stream");
    let mut response = conn.send(request).await?;
    let palette = Palette::new(colours_on_stdout());
    let mut parser = SseParser::default();
    loop {
        let chunk = match response.chunk().await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break,
            Err(err) => return Err(conn.transport_error(&err)),
        };
        for event in parser.push(&chunk) {
            if event.name == "error" {
                let detail = error_detail(&event.data).unwrap_or(event.data);
                bail!("the server ended the tail: {detail}");
            }
            let Ok(Value::Object(record)) = serde_json::from_str::<Value>(&event.data) else {
                continue;
            };
            let mut out = std::io::stdout().lock();
            match args.output {
                TailOutput::Ndjson => writeln!(out, "{}", Value::Object(record))?,
                TailOutput::Text => writeln!(out, "{}", text_line(&record, palette))?,
            }
            out.flush()?;
        }
    }
    eprintln!("the server closed the tail");
    Ok(ExitCode::SUCCESS)
}

/// `timestamp namespace/pod level message` for log records; for other records the timestamp
/// then `key=value` pairs.
fn text_line(record: &Map<String, Value>, palette: Palette) -> String {
    let get = |k: &str| cell_text(record.get(k));
    let mut line = palette.dim(&get("timestamp"));
    if record.contains_key("message") {
        let source = match (record.get("namespace"), record.get("pod")) {
            (Some(_), Some(_)) => format!("{}/{}", get("namespace"), get("pod")),
            (None, Some(_)) => get("pod"),
            _ => String::new(),
        };
        for part in [source, palette.level(&get("level")), get("message")] {
            if !part.is_empty() {
                line.push(' ');
                line.push_str(&part);
            }
        }
        return line;
    }
    for (key, value) in record {
        if key != "timestamp" {
            line.push_str(&format!(" {key}={}", cell_text(Some(value))));
        }
    }
    line
}

/// One Server-Sent Event.
#[derive(Debug, Default, PartialEq)]
struct SseEvent {
    /// `message` unless the event named itself.
    name: String,
    data: String,
}

/// Incremental Server-Sent Events parser: feed it bytes as they arrive, get complete events.
#[derive(Debug, Default)]
struct SseParser {
    pending: Vec<u8>,
    name: Option<String>,
    data: Vec<String>,
}

impl SseParser {
    fn push(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        self.pending.extend_from_slice(bytes);
        let mut events = Vec::new();
        while let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
            let raw: Vec<u8> = self.pending.drain(..=end).collect();
            let line = String::from_utf8_lossy(&raw);
            let line = line.trim_end_matches(['\n', '\r']);
            if line.is_empty() {
                if !self.data.is_empty() {
                    events.push(SseEvent {
                        name: self.name.take().unwrap_or_else(|| "message".to_string()),
                        data: self.data.join("\n"),
                    });
                }
                self.name = None;
                self.data.clear();
                continue;
            }
            if line.starts_with(':') {
                continue; // keep-alive comment
            }
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "data" => self.data.push(value.to_string()),
                "event" => self.name = Some(value.to_string()),
                _ => {}
            }
        }
        events
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn sse_events_split_anywhere() {
        let stream =
            b": keep-alive\n\ndata: {\"a\":1}\n\nevent: error\r\ndata: {\"error\":{}}\r\n\r\n";
        for split in 0..stream.len() {
            let mut parser = SseParser::default();
            let mut events = parser.push(&stream[..split]);
            events.extend(parser.push(&stream[split..]));
            assert_eq!(
                events,
                vec![
                    SseEvent {
                        name: "message".into(),
                        data: "{\"a\":1}".into()
                    },
                    SseEvent {
                        name: "error".into(),
                        data: "{\"error\":{}}".into()
                    },
                ],
                "split at {split}"
            );
        }
    }

    #[test]
    fn text_lines() {
        let record = json!({"timestamp": "t", "namespace": "ns", "pod": "p", "level": "error",
                            "message": "boom"});
        let line = text_line(record.as_object().unwrap(), Palette::new(false));
        assert_eq!(line, "t ns/p error boom");
        let record = json!({"timestamp": "t", "user": "u", "verb": "get"});
        let line = text_line(record.as_object().unwrap(), Palette::new(false));
        assert_eq!(line, "t user=u verb=get");
    }
}
