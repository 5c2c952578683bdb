//! Loading: defaults, then the TOML file, then environment overrides, through figment; and
//! turning figment's errors into one readable line naming each key and its source.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use figment::error::Kind;
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};

use crate::env;
use crate::error::{Error, Result};
use crate::{Config, StreamConfig};

/// The configuration file, read once, as a provider whose metadata names its path.
struct TomlFile {
    path: PathBuf,
    text: String,
}

impl Provider for TomlFile {
    fn metadata(&self) -> Metadata {
        Metadata::from("TOML file", self.path.as_path())
    }

    fn data(&self) -> std::result::Result<Map<Profile, Dict>, figment::Error> {
        use figment::providers::{Format, Toml};
        Toml::string(&self.text).data()
    }
}

/// Defaults, then `file`, then the `TRAWL_*` entries of `env`, then what the collector takes
/// from its host's variables ([`crate::CollectorConfig::resolve_host`]). Does not validate.
pub(crate) fn load(file: Option<&Path>, env: &BTreeMap<String, String>) -> Result<Config> {
    let mut figment = Figment::new();
    if let Some(path) = file {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
            path: path.to_owned(),
            source,
        })?;
        figment = figment.merge(TomlFile {
            path: path.to_owned(),
            text,
        });
    }
    let config_shape = Value::serialize(Config::default()).ok();
    let stream_shape = Value::serialize(StreamConfig::default()).ok();
    for var in env::overrides(env, config_shape.as_ref(), stream_shape.as_ref()) {
        figment = figment.merge(var);
    }
    let mut config = figment.extract::<Config>().map_err(describe)?;
    config.collector.resolve_host(|name| env.get(name).cloned());
    Ok(config)
}

/// A rule file's `text` as a `T`; errors name `source` (the file path, or `pack <name>`) and
/// the key, as for the configuration file.
pub(crate) fn parse_toml<T: serde::de::DeserializeOwned>(source: &str, text: &str) -> Result<T> {
    struct Named<'a>(&'a str, &'a str);
    impl Provider for Named<'_> {
        fn metadata(&self) -> Metadata {
            Metadata::named(format!("rule file {}", self.0))
        }

        fn data(&self) -> std::result::Result<Map<Profile, Dict>, figment::Error> {
            use figment::providers::{Format, Toml};
            Toml::string(self.1).data()
        }
    }
    Figment::new()
        .merge(Named(source, text))
        .extract::<T>()
        .map_err(describe)
}

/// One line for a (possibly chained) figment error.
fn describe(error: figment::Error) -> Error {
    let message = error
        .into_iter()
        .map(|e| describe_one(&e))
        .collect::<Vec<_>>()
        .join("; ");
    Error::Load { message }
}

fn describe_one(error: &figment::Error) -> String {
    let key = error.path.join(".");
    let what = match &error.kind {
        Kind::UnknownField(field, expected) => {
            let mut what = format!("unknown key `{key}`");
            if let Some(near) = suggest(field, expected) {
                what.push_str(&format!(" (did you mean `{near}`?)"));
            }
            what
        }
        Kind::UnknownVariant(variant, expected) => {
            format!(
                "`{key}`: unknown value `{variant}`, expected {}",
                one_of(expected)
            )
        }
        Kind::MissingField(field) => {
            let full = if key.is_empty() {
                field.to_string()
            } else {
                format!("{key}.{field}")
            };
            format!("missing key `{full}`")
        }
        kind if key.is_empty() => one_line(&kind.to_string()),
        kind => format!("`{key}`: {}", one_line(&kind.to_string())),
    };
    match &error.metadata {
        Some(metadata) => format!("{what} in {}", source_name(metadata)),
        None => what,
    }
}

/// `TOML file /etc/trawl/trawl.toml` or `environment variable TRAWL_X`.
fn source_name(metadata: &Metadata) -> String {
    match metadata.source.as_ref().and_then(|s| s.file_path()) {
        Some(path) => format!("{} {}", metadata.name, path.display()),
        None => metadata.name.to_string(),
    }
}

/// Squashes a multi-line message (TOML parse errors draw the offending line and a caret) into
/// one line, keeping the text and dropping the drawing.
fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !is_snippet_line(line))
        .collect::<Vec<_>>()
        .join("; ")
}

/// `|`, `|   ^` or `3 | a = ` lines of a TOML error drawing.
fn is_snippet_line(line: &str) -> bool {
    let after_number = line.trim_start_matches(|c: char| c.is_ascii_digit());
    after_number.trim_start().starts_with('|')
}

/// "`a`", "`a` or `b`", "one of `a`, `b`, `c`".
fn one_of(expected: &[&str]) -> String {
    let quoted: Vec<String> = expected.iter().map(|e| format!("`{e}`")).collect();
    match quoted.as_slice() {
        [] => "nothing".to_string(),
        [one] => one.clone(),
        [a, b] => format!("{a} or {b}"),
        many => format!("one of {}", many.join(", ")),
    }
}

/// The expected key closest to `field`, if it is close enough to be a likely typo. A key that
/// starts the expected one (`replace` for `replacement`) counts as close.
fn suggest(field: &str, expected: &[&'static str]) -> Option<&'static str> {
    let budget = (field.chars().count() / 3).max(1);
    expected
        .iter()
        .map(|candidate| {
            let distance = if field.len() >= 3 && candidate.starts_with(field) {
                1
            } else {
                edit_distance(field, candidate)
            };
            (distance, *candidate)
        })
        .filter(|(distance, _)| *distance <= budget)
        .min()
        .map(|(_, candidate)| candidate)
}

/// Levenshtein distance over chars.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = Vec::with_capacity(b.len() + 1);
        current.push(i + 1);
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            let insertion = current[j] + 1;
            let deletion = previous[j + 1] + 1;
            current.push(substitution.min(insertion).min(deletion));
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_counts_single_edits() {
        assert_eq!(edit_distance("pods_dri", "pods_dir"), 2);
        assert_eq!(edit_distance("pod_dir", "pods_dir"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("same", "same"), 0);
    }

    #[test]
    fn suggest_picks_the_nearest_close_key() {
        assert_eq!(
            suggest("pods_dri", &["pods_dir", "node_name", "token"]),
            Some("pods_dir")
        );
        assert_eq!(suggest("zzzzzz", &["pods_dir", "token"]), None);
        assert_eq!(
            suggest("replace", &["name", "pattern", "replacement"]),
            Some("replacement")
        );
    }

    #[test]
    fn one_of_lists_choices() {
        assert_eq!(one_of(&["a"]), "`a`");
        assert_eq!(one_of(&["a", "b"]), "`a` or `b`");
        assert_eq!(one_of(&["a", "b", "c"]), "one of `a`, `b`, `c`");
    }

    #[test]
    fn one_line_drops_the_drawing() {
        let message = "TOML parse error at line 1, column 5\n  |\n1 | a = \n  |     ^\n\
                       invalid string\nexpected `\"`, `'`\n";
        assert_eq!(
            one_line(message),
            "TOML parse error at line 1, column 5; invalid string; expected `\"`, `'`"
        );
    }
}
