//! Redaction of secrets from messages before they leave the node.
//!
//! Nothing is redacted unless configured: [`Redactor::common_rules`] offers a starting set
//! (bearer tokens, `password=...`, AWS access key ids, PEM private key blocks) for operators to
//! opt into. A [`regex::RegexSet`] decides in one pass which rules match, so a message with no
//! secret costs one scan and no allocation.

use std::borrow::Cow;

use regex::{Captures, Regex, RegexSet, Replacer};

use crate::parse::ParseError;

#[derive(Debug)]
struct Rule {
    name: String,
    regex: Regex,
    replacement: String,
}

/// Applies redaction rules in order; see the module docs.
#[derive(Debug)]
pub struct Redactor {
    rules: Vec<Rule>,
    set: RegexSet,
}

/// Appends the replacement (with `$1`-style groups expanded) and counts the matches.
struct Counting<'r> {
    replacement: &'r str,
    count: u64,
}

impl Replacer for Counting<'_> {
    fn replace_append(&mut self, caps: &Captures<'_>, dst: &mut String) {
        self.count += 1;
        caps.expand(self.replacement, dst);
    }
}

impl Redactor {
    /// Compiles `(name, pattern, replacement)` rules; `$1`-style group references in the
    /// replacement are expanded. An invalid pattern is an error naming its rule.
    pub fn new<N, P, R>(rules: &[(N, P, R)]) -> Result<Redactor, ParseError>
    where
        N: AsRef<str>,
        P: AsRef<str>,
        R: AsRef<str>,
    {
        let rules = rules
            .iter()
            .map(|(name, pattern, replacement)| {
                let regex = Regex::new(pattern.as_ref()).map_err(|e| ParseError::Pattern {
                    name: name.as_ref().to_string(),
                    source: Box::new(e),
                })?;
                Ok(Rule {
                    name: name.as_ref().to_string(),
                    regex,
                    replacement: replacement.as_ref().to_string(),
                })
            })
            .collect::<Result<Vec<_>, ParseError>>()?;
        let set = RegexSet::new(rules.iter().map(|r| r.regex.as_str())).map_err(|e| {
            ParseError::Pattern {
                name: "redact".to_string(),
                source: Box::new(e),
            }
        })?;
        Ok(Redactor { rules, set })
    }

    /// The rules of `[[collector.redact]]`.
    pub fn from_config(rules: &[trawl_config::RedactRule]) -> Result<Redactor, ParseError> {
        let rules: Vec<(&str, &str, &str)> = rules
            .iter()
            .map(|r| (r.name.as_str(), r.pattern.as_str(), r.replacement.as_str()))
            .collect();
        Redactor::new(&rules)
    }

    /// A suggested set of `(name, pattern, replacement)` rules, applied only when configured:
    /// `bearer_token` (`Authorization: Bearer <token>` keeps the scheme), `password`
    /// (`password=`, `passwd:`, `pwd=` keep the key), `aws_access_key_id` (`AKIA`/`ASIA` + 16)
    /// and `private_key` (PEM `-----BEGIN ... PRIVATE KEY-----` blocks, whole).
    pub fn common_rules() -> Vec<(&'static str, &'static str, &'static str)> {
        vec![
            (
                "bearer_token",
                r"(?i)\b(bearer\s+)[A-Za-z0-9\-._~+/]+=*",
                "${1}[REDACTED]",
            ),
            (
                "password",
                r#"(?i)\b((?:password|passwd|pwd)"?\s*[=:]\s*"?)[^\s"&,;]+"#,
                "${1}[REDACTED]",
            ),
            (
                "aws_access_key_id",
                r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",
                "[REDACTED]",
            ),
            (
                "private_key",
                r"(?s)-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----",
                "[REDACTED]",
            ),
        ]
    }

    /// Rule names, in order (for `redactions_total{rule=...}`).
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.rules.iter().map(|r| r.name.as_str())
    }

    /// Whether there is no rule.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The message with every match of every rule replaced, rules applied in order; borrowed
    /// when nothing matched.
    pub fn redact<'a>(&self, msg: &'a str) -> Cow<'a, str> {
        self.redact_counting(msg, &mut [])
    }

    /// Like [`Redactor::redact`], adding to `counts[i]` the number of replacements made by
    /// rule `i` (rules beyond `counts.len()` are applied but not counted).
    pub fn redact_counting<'a>(&self, msg: &'a str, counts: &mut [u64]) -> Cow<'a, str> {
        if self.rules.is_empty() {
            return Cow::Borrowed(msg);
        }
        let matched = self.set.matches(msg);
        if !matched.matched_any() {
            return Cow::Borrowed(msg);
        }
        let mut out = Cow::Borrowed(msg);
        for i in matched.iter() {
            let rule = &self.rules[i];
            let mut replacer = Counting {
                replacement: &rule.replacement,
                count: 0,
            };
            // An earlier rule's replacement may have removed this rule's match: the count is
            // of replacements made, not of set matches.
            let replaced = rule.regex.replace_all(&out, replacer.by_ref());
            if let Cow::Owned(text) = replaced {
                out = Cow::Owned(text);
            }
            if let Some(count) = counts.get_mut(i) {
                *count += replacer.count;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn common() -> Redactor {
        Redactor::new(&Redactor::common_rules()).unwrap()
    }

    #[test]
    fn no_rules_no_change() {
        let r = Redactor::new::<&str, &str, &str>(&[]).unwrap();
        assert!(r.is_empty());
        assert!(matches!(r.redact("password=hunter2"), Cow::Borrowed(_)));
    }

    #[test]
    fn clean_messages_are_borrowed() {
        assert!(matches!(
            common().redact("GET /health 200 in 3ms"),
            Cow::Borrowed("GET /health 200 in 3ms")
        ));
    }

    #[test]
    fn common_rules() {
        let r = common();
        let cases = [
            (
                "Authorization: Bearer eyJhbGciOi.J9x-y_z== done",
                "Authorization: Bearer [REDACTED] done",
            ),
            ("login user=bob password=hunter2 ok", "login user=bob password=[REDACTED] ok"),
            (r#"{"passwd": "s3cr3t", "x": 1}"#, r#"{"passwd": "[REDACTED]", "x": 1}"#),
            ("url?user=a&pwd=abc&next=1", "url?user=a&pwd=[REDACTED]&next=1"),
            ("key AKIAIOSFODNN7EXAMPLE used", "key [REDACTED] used"),
            ("not a key AKIAshort", "not a key AKIAshort"),
            (
                "cert -----BEGIN RSA PRIVATE KEY-----\nMIIEow\nabc\n-----END RSA PRIVATE KEY----- end",
                "cert [REDACTED] end",
            ),
            (
                "-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----",
                "-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(r.redact(input), want, "{input:?}");
        }
    }

    #[test]
    fn counts_and_group_references() {
        let r = Redactor::new(&[
            ("email", r"([a-z]+)@example\.com", "$1@[REDACTED]"),
            ("digits", r"\d{4,}", "####"),
        ])
        .unwrap();
        let mut counts = [0u64; 2];
        let out = r.redact_counting("a@example.com b@example.com 12345 12", &mut counts);
        assert_eq!(out, "a@[REDACTED] b@[REDACTED] #### 12");
        assert_eq!(counts, [2, 1]);
        assert_eq!(r.names().collect::<Vec<_>>(), ["email", "digits"]);
    }

    #[test]
    fn invalid_pattern_names_the_rule() {
        let err = Redactor::new(&[("broken", "(unclosed", "x")]).unwrap_err();
        assert!(err.to_string().contains("`broken`"), "{err}");
    }
}
