//! Pod label selectors of `collector.include_pod_labels` / `exclude_pod_labels`: the
//! equality-based subset of Kubernetes label selectors (`kubectl get pods -l ...`).
//!
//! One selector is a comma-separated list of requirements, all of which must hold:
//!
//! | requirement   | holds when                                        |
//! |---------------|---------------------------------------------------|
//! | `key=value`   | the label `key` is present with value `value`     |
//! | `key==value`  | the same                                          |
//! | `key!=value`  | the label `key` is absent or has another value    |
//! | `key`         | the label `key` is present (any value)            |
//! | `!key`        | the label `key` is absent                         |
//!
//! Keys are `[prefix/]name` (letters, digits, `-`, `_`, `.`, one `/`); values are letters,
//! digits, `-`, `_`, `.`, and may be empty. Set-based forms (`in`, `notin`) are not supported.

use std::fmt;

/// One requirement of a [`LabelSelector`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    /// `key=value`: present with this value.
    Equals(String, String),
    /// `key!=value`: absent, or another value.
    NotEquals(String, String),
    /// `key`: present.
    Exists(String),
    /// `!key`: absent.
    DoesNotExist(String),
}

/// A parsed selector: every requirement must hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
}

fn valid_key(key: &str) -> bool {
    let mut parts = key.splitn(2, '/');
    let first = parts.next().unwrap_or_default();
    let (prefix, name) = match parts.next() {
        Some(name) => (Some(first), name),
        None => (None, first),
    };
    let name_ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    let prefix_ok = prefix.is_none_or(|p| {
        !p.is_empty()
            && p.len() <= 253
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.'))
    });
    name_ok && prefix_ok
}

fn valid_value(value: &str) -> bool {
    value.len() <= 63
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

impl LabelSelector {
    /// Parses `text` (see the module docs). Errors say which requirement is wrong and why.
    pub fn parse(text: &str) -> Result<LabelSelector, String> {
        let mut requirements = Vec::new();
        for raw in text.split(',') {
            let part = raw.trim();
            if part.is_empty() {
                return Err(format!("`{text}` has an empty requirement"));
            }
            let (key, requirement) = if let Some((k, v)) = part.split_once("!=") {
                let (k, v) = (k.trim(), v.trim());
                (k, Some((v, Requirement::NotEquals(k.into(), v.into()))))
            } else if let Some((k, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
                let (k, v) = (k.trim(), v.trim());
                (k, Some((v, Requirement::Equals(k.into(), v.into()))))
            } else if let Some(k) = part.strip_prefix('!') {
                let k = k.trim();
                (k, Some(("", Requirement::DoesNotExist(k.into()))))
            } else {
                (part, None)
            };
            if !valid_key(key) {
                return Err(format!("`{part}`: `{key}` is not a label key"));
            }
            let requirement = match requirement {
                Some((value, r)) => {
                    if !valid_value(value) {
                        return Err(format!("`{part}`: `{value}` is not a label value"));
                    }
                    r
                }
                None => Requirement::Exists(key.into()),
            };
            requirements.push(requirement);
        }
        Ok(LabelSelector { requirements })
    }

    /// Whether labels, given by `get` (the value of a label key, `None` when absent), satisfy
    /// every requirement.
    pub fn matches<'a>(&self, get: impl Fn(&str) -> Option<&'a str>) -> bool {
        self.requirements.iter().all(|r| match r {
            Requirement::Equals(k, v) => get(k) == Some(v.as_str()),
            Requirement::NotEquals(k, v) => get(k) != Some(v.as_str()),
            Requirement::Exists(k) => get(k).is_some(),
            Requirement::DoesNotExist(k) => get(k).is_none(),
        })
    }

    /// The requirements, in the order written.
    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }
}

impl fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            match r {
                Requirement::Equals(k, v) => write!(f, "{k}={v}")?,
                Requirement::NotEquals(k, v) => write!(f, "{k}!={v}")?,
                Requirement::Exists(k) => write!(f, "{k}")?,
                Requirement::DoesNotExist(k) => write!(f, "!{k}")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn matches(selector: &str, l: &BTreeMap<String, String>) -> bool {
        LabelSelector::parse(selector)
            .unwrap()
            .matches(|k| l.get(k).map(String::as_str))
    }

    #[test]
    fn every_requirement_form() {
        let l = labels(&[("app", "web"), ("app.kubernetes.io/tier", "front")]);
        assert!(matches("app=web", &l));
        assert!(matches(" app == web ", &l));
        assert!(!matches("app=db", &l));
        assert!(matches("app!=db", &l));
        assert!(!matches("app!=web", &l));
        assert!(matches("missing!=x", &l));
        assert!(matches("app.kubernetes.io/tier", &l));
        assert!(!matches("missing", &l));
        assert!(matches("!missing", &l));
        assert!(!matches("!app", &l));
        assert!(matches("app=web,app.kubernetes.io/tier=front", &l));
        assert!(!matches("app=web,app.kubernetes.io/tier=back", &l));
        assert!(matches("app=web,!debug", &l));
        assert!(!matches("empty=", &l));
        assert!(matches("empty=", &labels(&[("empty", "")])));
    }

    #[test]
    fn round_trips_through_display() {
        let s = LabelSelector::parse("a=1, b!=2 ,c,!d, e==3").unwrap();
        assert_eq!(s.to_string(), "a=1,b!=2,c,!d,e=3");
        assert_eq!(s.requirements().len(), 5);
    }

    #[test]
    fn malformed_selectors_say_why() {
        for (text, error) in [
            ("", "`` has an empty requirement"),
            ("a=1,", "`a=1,` has an empty requirement"),
            ("=web", "`=web`: `` is not a label key"),
            ("app=we b", "`app=we b`: `we b` is not a label value"),
            ("a b", "`a b`: `a b` is not a label key"),
            ("/name", "`/name`: `/name` is not a label key"),
            ("!", "`!`: `` is not a label key"),
            (
                "app in (a,b)",
                "`app in (a`: `app in (a` is not a label key",
            ),
        ] {
            assert_eq!(LabelSelector::parse(text).unwrap_err(), error, "{text}");
        }
    }
}
