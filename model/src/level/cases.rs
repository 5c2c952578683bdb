//! The one table of level-detection cases. Every path that detects levels runs it in its
//! tests: the model's [`super::enrich`], the collector's records of tailed lines, and the
//! indexer's mapping of other agents' documents (`message` without a level field), so that they
//! cannot drift apart. A message whose first non-space byte is `{` and that parses is a JSON
//! log line (its fields become attributes); anything else goes through the text rules.

use crate::Level::{self, *};

/// `(message, the level detected in it)`.
pub const CASES: &[(&str, Option<Level>)] = &[
    ("ERROR something broke", Some(Error)),
    ("WARN disk at 91%", Some(Warn)),
    (
        "2026-11-25 10:15:00,123 WARN  [main] c.e.App - slow",
        Some(Warn),
    ),
    (
        "10:15:00.123 [http-nio-8080-exec-1] INFO  c.e.Web - GET /",
        Some(Info),
    ),
    (
        "2026-11-25 10:15:00.123  INFO 1 --- [main] o.s.b.App : Started",
        Some(Info),
    ),
    ("WARNING:root:low memory", Some(Warn)),
    ("CRITICAL:app.db:connection lost", Some(Fatal)),
    (
        "2026/11/25 10:15:00 [error] 7#7: *1 open() failed",
        Some(Error),
    ),
    (
        "[Mon Nov 25 10:15:00 2026] [core:error] [pid 1] AH00124",
        Some(Error),
    ),
    ("[warn] deprecated option", Some(Warn)),
    (
        "time=\"2026-11-25T10:15:00Z\" level=warning msg=\"slow\"",
        Some(Warn),
    ),
    (
        "ts=2026-11-25T10:15:00Z caller=main.go:12 level=DEBUG msg=x",
        Some(Debug),
    ),
    ("lvl=info msg=started", Some(Info)),
    ("severity=Error component=x", Some(Error)),
    ("level=\"fatal\" msg=bye", Some(Fatal)),
    ("level=30 msg=bunyan-ish", Some(Info)),
    (
        "E1125 10:15:00.123456    1 reflector.go:138] watch failed",
        Some(Error),
    ),
    (
        "I1125 10:15:00.123456    1 main.go:42] starting",
        Some(Info),
    ),
    ("W1125 10:15:00.123456    1 main.go:42] slow", Some(Warn)),
    ("F1125 10:15:00.123456    1 main.go:42] dying", Some(Fatal)),
    ("panic: runtime error: index out of range", Some(Fatal)),
    ("fatal error: all goroutines are asleep", Some(Fatal)),
    ("10:15:00 INF listening port=8080", Some(Info)),
    ("npm ERR! code E404", Some(Error)),
    ("error: could not open file", Some(Error)),
    ("Warning: something odd", Some(Warn)),
    ("TRACE entering fn", Some(Trace)),
    ("INFO request failed with ERROR", Some(Info)),
    ("ts=1 level=debug msg=hi", Some(Debug)),
    ("ts=1 lvl=\"warn\" msg=hi", Some(Warn)),
    ("[core:error] [pid 1] AH00001", Some(Error)),
    ("ünïcödé ERROR ünïcödé", Some(Error)),
    ("no errors here, Error handling done", None),
    ("GET /healthz 200", None),
    // Negatives.
    ("no errors here", None),
    ("Error handling done", None),
    ("connection reset by peer", None),
    ("GET /ERROR HTTP/1.1 404", None),
    ("ERROR_CODE=5 returned", None),
    ("INFORMATIONAL is not a token here", None),
    ("E1125 is an id", None),
    ("msg=\"done\" deep.level=warn", None),
    (
        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx ERROR late",
        None,
    ),
    ("", None),
    ("[main] started", None),
    ("   at com.example.Foo.bar(Foo.java:42)", None),
    // JSON log lines: the level from their fields.
    (r#"{"severity":"ERROR"}"#, Some(Error)),
    (r#"{"lvl":"dbug","level":"info"}"#, Some(Info)),
    (r#"{"loglevel":"Warning"}"#, Some(Warn)),
    (r#"{"log.level":"info"}"#, Some(Info)),
    (r#"{"log":{"level":"debug"}}"#, Some(Debug)),
    (r#"{"@l":"Warning","@mt":"x"}"#, Some(Warn)),
    (r#"{"@l":"Verbose"}"#, Some(Trace)),
    (r#"{"levelname":"CRITICAL"}"#, Some(Fatal)),
    (r#"{"level":30}"#, Some(Info)),
    (r#"{"level":50}"#, Some(Error)),
    (r#"{"level":60}"#, Some(Fatal)),
    (r#"{"level":35}"#, None),
    (r#"  {"msg":"ERROR in body"}"#, None),
    (r#"{"status":"error"}"#, None),
    (r#"{"level":{"nested":true}}"#, None),
    // Not JSON after all: the text rules.
    ("{oops ERROR not json", Some(Error)),
    (r#"["ERROR"]"#, Some(Error)),
];

/// Whether `message` is a JSON log line (an object), as [`super::enrich`] decides.
pub fn is_json_object(message: &str) -> bool {
    message.trim_start().starts_with('{')
        && serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(message).is_ok()
}
