//! Terminal output of the client: aligned tables, one-line records, colours only when the
//! output is a terminal and `NO_COLOR` is not set.

use std::io::{IsTerminal, Write};

use anstyle::{AnsiColor, Style};
use serde_json::{Map, Value};

/// Whether to colour what goes to stdout.
pub fn colours_on_stdout() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Styles of the parts of the output; all plain when colours are off.
#[derive(Debug, Clone, Copy)]
pub struct Palette {
    colour: bool,
}

impl Palette {
    pub fn new(colour: bool) -> Palette {
        Palette { colour }
    }

    /// `text` in `style` (as is when colours are off).
    pub fn paint(&self, style: Style, text: &str) -> String {
        if self.colour {
            format!("{style}{text}{style:#}")
        } else {
            text.to_string()
        }
    }

    pub fn header(&self, text: &str) -> String {
        self.paint(Style::new().bold(), text)
    }

    pub fn dim(&self, text: &str) -> String {
        self.paint(Style::new().dimmed(), text)
    }

    /// A log level in its usual colour.
    pub fn level(&self, text: &str) -> String {
        let colour = match text {
            "fatal" | "error" => Some(AnsiColor::Red),
            "warn" => Some(AnsiColor::Yellow),
            "info" => Some(AnsiColor::Green),
            "debug" | "trace" => Some(AnsiColor::Blue),
            _ => None,
        };
        match colour {
            Some(c) => self.paint(c.on_default().bold(), text),
            None => text.to_string(),
        }
    }

    /// A cell of `column` styled by what it holds.
    fn cell(&self, column: &str, text: &str) -> String {
        match column {
            "level" => self.level(text),
            "timestamp" | "first_seen" | "last_seen" => self.dim(text),
            "status_code" if text.starts_with('4') || text.starts_with('5') => {
                self.paint(AnsiColor::Red.on_default(), text)
            }
            _ => text.to_string(),
        }
    }
}

/// A value as table text: strings as they are, anything else as JSON; line breaks shown as
/// `\n` so that a record stays on one line.
pub fn cell_text(value: Option<&Value>) -> String {
    let text = match value {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    text.replace('\r', "\\r").replace('\n', "\\n")
}

/// Widest a column other than the last one gets; longer cells are cut with `…`.
const MAX_CELL_CHARS: usize = 48;

/// Writes `rows` as an aligned table of `columns`, a header row first. The last column is not
/// padded or cut (it is usually the message).
pub fn write_table(
    out: &mut dyn Write,
    palette: Palette,
    columns: &[String],
    rows: &[Map<String, Value>],
) -> std::io::Result<()> {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            columns
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let text = cell_text(row.get(c));
                    if i + 1 < columns.len() {
                        cut(&text, MAX_CELL_CHARS)
                    } else {
                        text
                    }
                })
                .collect()
        })
        .collect();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            cells
                .iter()
                .map(|r| r[i].chars().count())
                .chain([c.chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |texts: Vec<String>, raw: &[String]| -> String {
        let mut line = String::new();
        for (i, (text, raw)) in texts.iter().zip(raw).enumerate() {
            line.push_str(text);
            if i + 1 < texts.len() {
                let pad = widths[i].saturating_sub(raw.chars().count()) + 2;
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        line
    };
    let header: Vec<String> = columns.iter().map(|c| palette.header(c)).collect();
    writeln!(out, "{}", line(header, columns))?;
    for row in &cells {
        let styled: Vec<String> = columns
            .iter()
            .zip(row)
            .map(|(c, text)| palette.cell(c, text))
            .collect();
        writeln!(out, "{}", line(styled, row))?;
    }
    Ok(())
}

fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(max - 1).collect();
    cut.push('…');
    cut
}

/// The columns a table of `stream` hits shows by default: the fields an operator scans first,
/// those that any hit has, then (for streams without a preset) every field of the hits.
pub fn default_columns(stream: &str, hits: &[Map<String, Value>]) -> Vec<String> {
    let preset: &[&str] = match stream {
        "logs" => &["timestamp", "namespace", "pod", "level", "message"],
        "audit" => &[
            "timestamp",
            "user",
            "verb",
            "resource",
            "namespace",
            "name",
            "status_code",
            "request_uri",
        ],
        "events" => &[
            "timestamp",
            "type",
            "reason",
            "namespace",
            "kind",
            "name",
            "count",
            "message",
        ],
        _ => &[],
    };
    let present = |name: &str| hits.iter().any(|h| h.contains_key(name));
    if !preset.is_empty() {
        let chosen: Vec<String> = preset
            .iter()
            .filter(|c| present(c))
            .map(|c| c.to_string())
            .collect();
        if !chosen.is_empty() {
            return chosen;
        }
    }
    let mut columns: Vec<String> = Vec::new();
    if present("timestamp") {
        columns.push("timestamp".to_string());
    }
    for hit in hits {
        for key in hit.keys() {
            if !columns.contains(key) {
                columns.push(key.clone());
            }
        }
    }
    columns
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn map(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    #[test]
    fn plain_table() {
        let rows = vec![
            map(json!({"pod": "web-1", "level": "error", "message": "a\nb"})),
            map(json!({"pod": "api", "offset": 3, "message": "ok"})),
        ];
        let columns: Vec<String> = ["pod", "level", "message"].map(String::from).to_vec();
        let mut out = Vec::new();
        write_table(&mut out, Palette::new(false), &columns, &rows).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "pod    level  message\nweb-1  error  a\\nb\napi           ok\n"
        );
    }

    #[test]
    fn colours_do_not_break_alignment() {
        let rows = vec![map(json!({"level": "error", "message": "x"}))];
        let columns: Vec<String> = ["level", "message"].map(String::from).to_vec();
        let mut out = Vec::new();
        write_table(&mut out, Palette::new(true), &columns, &rows).unwrap();
        let text = String::from_utf8(out).unwrap();
        let second = text.lines().nth(1).unwrap();
        assert!(second.starts_with("\u{1b}["), "{second:?}");
        assert!(second.ends_with("  x"), "{second:?}");
    }

    #[test]
    fn long_cells_are_cut_but_not_the_last() {
        let long = "x".repeat(60);
        let rows = vec![map(json!({"a": long.clone(), "b": long.clone()}))];
        let columns: Vec<String> = ["a", "b"].map(String::from).to_vec();
        let mut out = Vec::new();
        write_table(&mut out, Palette::new(false), &columns, &rows).unwrap();
        let text = String::from_utf8(out).unwrap();
        let row = text.lines().nth(1).unwrap();
        assert_eq!(row, format!("{}…  {long}", "x".repeat(47)));
    }

    #[test]
    fn columns_by_stream() {
        let hits = vec![map(
            json!({"timestamp": "t", "pod": "p", "message": "m", "offset": 1}),
        )];
        assert_eq!(
            default_columns("logs", &hits),
            ["timestamp", "pod", "message"]
        );
        assert_eq!(
            default_columns("custom", &hits),
            ["timestamp", "message", "offset", "pod"]
        );
        assert!(default_columns("logs", &[]).is_empty());
    }
}
