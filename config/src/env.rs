//! Environment overrides as a figment provider: `TRAWL_<KEY>` for a top-level key,
//! `TRAWL_<SECTION>__<KEY>` (and deeper, `__` per level) inside a section.
//!
//! Each variable is its own provider, so an error about a value names the variable it came from.
//! Values are parsed with figment's grammar for environment values (numbers, booleans, `"quoted"`
//! strings, `[a,b]` arrays, `{k=v}` tables; anything else is a string). figment's own parser
//! sits behind a feature that pulls in more crates, so a small copy of the grammar lives here.
//! One difference: a key whose default is a string keeps the raw text, so
//! `TRAWL_CLUSTER=2024` is the string `"2024"` rather than a type error.

use std::collections::BTreeMap;

use figment::value::{Dict, Map, Value};
use figment::{Metadata, Profile, Provider};

/// Prefix of every configuration override.
pub const ENV_PREFIX: &str = "TRAWL_";

/// Variables with the prefix that are not configuration keys: the command-line client's server
/// URL and token, the log filter, the config file path, and the indexer's storage fault hook for
/// tests (`TRAWL_TEST_FAULT_DIR`). They are skipped, not errors.
pub const IGNORED_ENV_VARS: [&str; 5] = [
    "TRAWL_URL",
    "TRAWL_TOKEN",
    "TRAWL_LOG",
    "TRAWL_CONFIG",
    "TRAWL_TEST_FAULT_DIR",
];

/// Separator between nesting levels in a variable name.
const LEVEL_SEPARATOR: &str = "__";

/// One `TRAWL_...` variable as a provider.
pub(crate) struct EnvVar {
    name: String,
    raw: String,
    /// Lower-cased key path; `None` when the name is malformed (an empty level).
    path: Option<Vec<String>>,
    /// The default at this key is a string, so the raw text is taken as it is.
    string_leaf: bool,
}

/// The override providers in `env`, in name order. `config_shape` and `stream_shape` are the
/// serialized defaults of `Config` and `StreamConfig`, used to tell string keys apart.
pub(crate) fn overrides(
    env: &BTreeMap<String, String>,
    config_shape: Option<&Value>,
    stream_shape: Option<&Value>,
) -> Vec<EnvVar> {
    env.iter()
        .filter(|(name, _)| name.starts_with(ENV_PREFIX))
        .filter(|(name, _)| !IGNORED_ENV_VARS.contains(&name.as_str()))
        .map(|(name, raw)| {
            let path = key_path(name);
            let string_leaf = path
                .as_deref()
                .and_then(|path| shape_at(path, config_shape, stream_shape))
                .is_some_and(|value| matches!(value, Value::String(..)));
            EnvVar {
                name: name.clone(),
                raw: raw.clone(),
                path,
                string_leaf,
            }
        })
        .collect()
}

/// `TRAWL_STREAMS__LOGS__RETENTION_MAX_AGE_SECS` -> `["streams", "logs", "retention_max_age_secs"]`;
/// `None` if a level is empty.
fn key_path(name: &str) -> Option<Vec<String>> {
    let rest = name.strip_prefix(ENV_PREFIX)?;
    let path: Vec<String> = rest
        .split(LEVEL_SEPARATOR)
        .map(|level| level.to_ascii_lowercase())
        .collect();
    if path.iter().any(String::is_empty) {
        None
    } else {
        Some(path)
    }
}

/// The default value at `path`; under `streams.<name>` the default stream's.
fn shape_at<'a>(
    path: &[String],
    config_shape: Option<&'a Value>,
    stream_shape: Option<&'a Value>,
) -> Option<&'a Value> {
    match path {
        [streams, _name, rest @ ..] if streams == "streams" => descend(stream_shape?, rest),
        _ => descend(config_shape?, path),
    }
}

fn descend<'a>(mut value: &'a Value, path: &[String]) -> Option<&'a Value> {
    for level in path {
        match value {
            Value::Dict(_, dict) => value = dict.get(level)?,
            _ => return None,
        }
    }
    Some(value)
}

impl EnvVar {
    fn value(&self) -> Value {
        let parsed = parse_value(&self.raw);
        if self.string_leaf && !matches!(parsed, Value::String(..)) {
            Value::from(self.raw.clone())
        } else {
            parsed
        }
    }
}

impl Provider for EnvVar {
    fn metadata(&self) -> Metadata {
        Metadata::named(format!("environment variable {}", self.name))
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let Some(path) = &self.path else {
            return Err(figment::Error::from(format!(
                "malformed override name, expected {ENV_PREFIX}<KEY> or {ENV_PREFIX}<SECTION>__<KEY>"
            )));
        };
        let mut value = self.value();
        for level in path.iter().skip(1).rev() {
            let mut dict = Dict::new();
            dict.insert(level.clone(), value);
            value = Value::from(dict);
        }
        let mut top = Dict::new();
        // `key_path` never returns an empty path: splitting yields at least one level.
        if let Some(first) = path.first() {
            top.insert(first.clone(), value);
        }
        let mut map = Map::new();
        map.insert(Profile::Default, top);
        Ok(map)
    }
}

/// Parses an environment value; text that is not a well-formed value is a string, so this never
/// fails.
fn parse_value(raw: &str) -> Value {
    let mut parser = ValueParser {
        chars: raw.chars().collect(),
        at: 0,
    };
    match parser.value() {
        Some(value) if parser.at == parser.chars.len() => value,
        _ => Value::from(raw.to_string()),
    }
}

/// Recursive descent over figment's grammar; `None` means "not well-formed".
struct ValueParser {
    chars: Vec<char>,
    at: usize,
}

impl ValueParser {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.at).copied()
    }

    fn skip_whitespace(&mut self) {
        while self.peek().is_some_and(|c| c.is_ascii_whitespace()) {
            self.at += 1;
        }
    }

    fn eat(&mut self, expected: char) -> Option<()> {
        (self.peek() == Some(expected)).then(|| self.at += 1)
    }

    fn eat_word(&mut self, word: &str) -> bool {
        let end = self.at + word.chars().count();
        let matches = self
            .chars
            .get(self.at..end)
            .is_some_and(|slice| slice.iter().copied().eq(word.chars()));
        if matches {
            self.at = end;
        }
        matches
    }

    fn value(&mut self) -> Option<Value> {
        self.skip_whitespace();
        let value = if self.eat_word("true") {
            Value::from(true)
        } else if self.eat_word("false") {
            Value::from(false)
        } else {
            match self.peek() {
                Some('{') => Value::from(self.dict()?),
                Some('[') => Value::from(self.array()?),
                Some('"') => Value::from(self.quoted()?),
                _ => self.bare(),
            }
        };
        self.skip_whitespace();
        Some(value)
    }

    fn array(&mut self) -> Option<Vec<Value>> {
        self.eat('[')?;
        let mut items = Vec::new();
        self.skip_whitespace();
        if self.eat(']').is_some() {
            return Some(items);
        }
        loop {
            items.push(self.value()?);
            match self.peek()? {
                ',' => self.at += 1,
                ']' => {
                    self.at += 1;
                    return Some(items);
                }
                _ => return None,
            }
        }
    }

    fn dict(&mut self) -> Option<Dict> {
        self.eat('{')?;
        let mut dict = Dict::new();
        self.skip_whitespace();
        if self.eat('}').is_some() {
            return Some(dict);
        }
        loop {
            self.skip_whitespace();
            let key = self.key()?;
            self.skip_whitespace();
            self.eat('=')?;
            let value = self.value()?;
            dict.insert(key, value);
            match self.peek()? {
                ',' => self.at += 1,
                '}' => {
                    self.at += 1;
                    return Some(dict);
                }
                _ => return None,
            }
        }
    }

    fn key(&mut self) -> Option<String> {
        if self.peek() == Some('"') {
            return self.quoted();
        }
        let start = self.at;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            self.at += 1;
        }
        (self.at > start).then(|| self.chars[start..self.at].iter().collect())
    }

    fn quoted(&mut self) -> Option<String> {
        self.eat('"')?;
        let mut out = String::new();
        loop {
            match self.peek()? {
                '"' => {
                    self.at += 1;
                    return Some(out);
                }
                '\\' => {
                    self.at += 1;
                    out.push(match self.peek()? {
                        '"' => '"',
                        '\\' => '\\',
                        '/' => '/',
                        'n' => '\n',
                        't' => '\t',
                        'r' => '\r',
                        _ => return None,
                    });
                    self.at += 1;
                }
                c => {
                    out.push(c);
                    self.at += 1;
                }
            }
        }
    }

    /// Everything up to a separator, trimmed: a float if it has a `.` and parses, else an
    /// integer, else a string.
    fn bare(&mut self) -> Value {
        let start = self.at;
        while self
            .peek()
            .is_some_and(|c| !matches!(c, ',' | '{' | '}' | '[' | ']'))
        {
            self.at += 1;
        }
        let text: String = self.chars[start..self.at].iter().collect();
        let text = text.trim();
        if text.contains('.') {
            if let Ok(float) = text.parse::<f64>() {
                return Value::from(float);
            }
        }
        if let Ok(int) = text.parse::<u64>() {
            Value::from(int)
        } else if let Ok(int) = text.parse::<i64>() {
            Value::from(int)
        } else {
            Value::from(text.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_path_splits_levels_and_lowercases() {
        assert_eq!(
            key_path("TRAWL_DATA_DIR"),
            Some(vec!["data_dir".to_string()])
        );
        assert_eq!(
            key_path("TRAWL_STREAMS__LOGS__RETENTION_MAX_AGE_SECS"),
            Some(vec![
                "streams".to_string(),
                "logs".to_string(),
                "retention_max_age_secs".to_string()
            ])
        );
        assert_eq!(key_path("TRAWL_"), None);
        assert_eq!(key_path("TRAWL_COLLECTOR__"), None);
        assert_eq!(key_path("TRAWL_A____B"), None);
    }

    #[test]
    fn values_follow_figments_env_grammar() {
        assert_eq!(parse_value("true"), Value::from(true));
        assert_eq!(parse_value(" false "), Value::from(false));
        assert_eq!(parse_value("3600"), Value::from(3600u64));
        assert_eq!(parse_value("-2"), Value::from(-2i64));
        assert_eq!(parse_value("1.5"), Value::from(1.5f64));
        assert_eq!(parse_value("/var/log/pods"), Value::from("/var/log/pods"));
        assert_eq!(parse_value("0.0.0.0:7400"), Value::from("0.0.0.0:7400"));
        assert_eq!(parse_value("\"42\""), Value::from("42"));
        assert_eq!(
            parse_value("[a, b ,3]"),
            Value::from(vec![Value::from("a"), Value::from("b"), Value::from(3u64)])
        );
        assert_eq!(parse_value("[]"), Value::from(Vec::<Value>::new()));
        let mut dict = Dict::new();
        dict.insert("name".to_string(), Value::from("x"));
        dict.insert("lines_per_sec".to_string(), Value::from(5u64));
        assert_eq!(parse_value("{name=x, lines_per_sec=5}"), Value::from(dict));
        // Not well-formed: the whole text is a string.
        assert_eq!(parse_value("[a,b"), Value::from("[a,b"));
        assert_eq!(parse_value("trueish"), Value::from("trueish"));
        assert_eq!(parse_value("a,b"), Value::from("a,b"));
    }

    #[test]
    fn ignored_and_foreign_variables_are_skipped() {
        let env: BTreeMap<String, String> = [
            ("TRAWL_URL", "http://x"),
            ("TRAWL_TOKEN", "t"),
            ("TRAWL_LOG", "debug"),
            ("TRAWL_CONFIG", "/etc/trawl.toml"),
            ("HOME", "/root"),
            ("trawl_cluster", "lowercase is not ours"),
            ("TRAWL_CLUSTER", "prod"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let names: Vec<String> = overrides(&env, None, None)
            .into_iter()
            .map(|var| var.name)
            .collect();
        assert_eq!(names, vec!["TRAWL_CLUSTER".to_string()]);
    }
}
