//! Alerting rule files: their TOML shape, the ready packs, and loading them into validated
//! [`RuleGroup`]s with errors that name the file, the group, the rule and the key.
//!
//! ```toml
//! [[groups]]
//! name = "payments"
//! interval = "30s"
//!
//! [[groups.rules]]
//! name = "PaymentsErrors"
//! kind = "threshold"
//! stream = "logs"
//! query = "namespace:payments AND level:error"
//! window = "5m"
//! group_by = ["pod"]
//! condition = "count > 100"
//! for = "2m"
//! labels = { severity = "page" }
//! annotations = { summary = "{{ $labels.pod }}: {{ $value }} errors in 5m" }
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::Deserialize;

use crate::error::{Error, Problem, Result};
use crate::AlertingConfig;

/// The ready packs: name and rule file text (documented in the README's "Alerting" section).
pub const PACKS: [(&str, &str); 1] = [(
    "kubernetes-audit",
    include_str!("../packs/kubernetes-audit.toml"),
)];

/// How the source of a pack's groups starts ([`RuleGroup::source`]).
const PACK_SOURCE_PREFIX: &str = "pack ";

/// Most `group_by` fields of one rule.
const MAX_GROUP_BY: usize = 8;

/// A group of rules evaluated together, every `interval`.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleGroup {
    /// The group's name, unique across files.
    pub name: String,
    /// Where it was read: the file path, or `pack <name>`.
    pub source: String,
    /// Time between two evaluations.
    pub interval: Duration,
    /// Its rules, in file order (disabled ones left out).
    pub rules: Vec<Rule>,
}

/// One validated rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// The rule's name: the `alertname` label of its alerts; unique across files and packs.
    pub name: String,
    /// Threshold or match, with what only that kind has.
    pub kind: RuleKind,
    /// The stream searched.
    pub stream: String,
    /// The condition, in the query grammar.
    pub query: String,
    /// Fields whose values split the events into groups, one alert per group.
    pub group_by: Vec<String>,
    /// Labels of every alert of the rule (`alertname` and the group's values are added).
    pub labels: BTreeMap<String, String>,
    /// Annotation templates: `{{ $labels.<name> }}`, `{{ $value }}`, `{{ $count }}`,
    /// `{{ $query }}`.
    pub annotations: BTreeMap<String, String>,
    /// Sample lines per alert; `None` takes `alerting.samples`.
    pub samples: Option<usize>,
    /// Only these users' events count (`*` globs); empty: everyone's.
    pub users: Vec<String>,
    /// Users whose events never count (`*` globs).
    pub ignore_users: Vec<String>,
    /// Groups whose members' events never count (`*` globs).
    pub ignore_groups: Vec<String>,
    /// Namespaces whose events never count (`*` globs).
    pub ignore_namespaces: Vec<String>,
}

/// What differs between the two kinds of rules.
#[derive(Debug, Clone, PartialEq)]
pub enum RuleKind {
    /// An aggregate over a sliding window compared with a threshold.
    Threshold {
        /// The window `[now - window, now)` searched at each evaluation.
        window: Duration,
        /// What must hold for a group to be active.
        condition: Condition,
        /// How long the condition must hold before the alert fires (pending meanwhile).
        hold: Duration,
    },
    /// Every new matching event fires (or refreshes) the alert of its group.
    Match {
        /// How long an alert stays firing after the last matching event of its group.
        keep_firing_for: Duration,
    },
}

/// `<aggregate> <op> <number>`, e.g. `count > 100` or `p99(latency_ms) >= 500`.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    /// What is computed per group.
    pub aggregate: Aggregate,
    /// How it is compared.
    pub op: Comparison,
    /// With what.
    pub threshold: f64,
}

/// An aggregate of a group's events.
#[derive(Debug, Clone, PartialEq)]
pub enum Aggregate {
    /// The number of matching events.
    Count,
    /// `avg(field)`.
    Avg(String),
    /// `sum(field)`.
    Sum(String),
    /// `min(field)`.
    Min(String),
    /// `max(field)`.
    Max(String),
    /// `pNN(field)`: the NN-th percentile (`p99`, `p99.9`).
    Percentile(f64, String),
}

/// A comparison of [`Condition`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    Gt,
    Ge,
    Lt,
    Le,
    Eq,
    Ne,
}

impl Comparison {
    /// Whether `value <op> threshold` holds.
    pub fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            Comparison::Gt => value > threshold,
            Comparison::Ge => value >= threshold,
            Comparison::Lt => value < threshold,
            Comparison::Le => value <= threshold,
            Comparison::Eq => value == threshold,
            Comparison::Ne => value != threshold,
        }
    }
}

impl std::str::FromStr for Condition {
    type Err = String;

    fn from_str(text: &str) -> std::result::Result<Condition, String> {
        let text = text.trim();
        let at = text
            .find(['>', '<', '=', '!'])
            .ok_or("expected `<aggregate> <op> <number>`, e.g. `count > 100`")?;
        let (left, rest) = text.split_at(at);
        let (op, right) = [
            (">=", Comparison::Ge),
            ("<=", Comparison::Le),
            ("==", Comparison::Eq),
            ("!=", Comparison::Ne),
            (">", Comparison::Gt),
            ("<", Comparison::Lt),
        ]
        .into_iter()
        .find_map(|(token, op)| rest.strip_prefix(token).map(|right| (op, right)))
        .ok_or("unknown comparison, expected one of >, >=, <, <=, ==, !=")?;
        let threshold: f64 = right
            .trim()
            .parse()
            .map_err(|_| format!("`{}` is not a number", right.trim()))?;
        Ok(Condition {
            aggregate: left.trim().parse()?,
            op,
            threshold,
        })
    }
}

impl std::str::FromStr for Aggregate {
    type Err = String;

    fn from_str(text: &str) -> std::result::Result<Aggregate, String> {
        if text == "count" {
            return Ok(Aggregate::Count);
        }
        let usage = "expected `count`, `avg(field)`, `sum(field)`, `min(field)`, `max(field)` \
                     or `pNN(field)`";
        let (function, field) = text
            .strip_suffix(')')
            .and_then(|t| t.split_once('('))
            .ok_or_else(|| format!("`{text}`: {usage}"))?;
        let field = field.trim();
        if field.is_empty() || field.contains(char::is_whitespace) {
            return Err(format!(
                "`{text}`: expected one field name in the parentheses"
            ));
        }
        let field = field.to_string();
        Ok(match function.trim() {
            "avg" => Aggregate::Avg(field),
            "sum" => Aggregate::Sum(field),
            "min" => Aggregate::Min(field),
            "max" => Aggregate::Max(field),
            p => match p.strip_prefix('p').map(str::parse::<f64>) {
                Some(Ok(q)) if q > 0.0 && q < 100.0 => Aggregate::Percentile(q, field),
                _ => return Err(format!("`{text}`: {usage}")),
            },
        })
    }
}

/// `500ms`, `30s`, `5m`, `1h`, `1d`: a whole number and a unit.
pub fn parse_duration(text: &str) -> std::result::Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("`{text}` has no unit (ms, s, m, h or d)"))?;
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration like 30s or 5m"))?;
    let millis = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => {
            return Err(format!(
                "`{text}`: unknown unit `{unit}` (ms, s, m, h or d)"
            ))
        }
    };
    n.checked_mul(millis)
        .map(Duration::from_millis)
        .ok_or_else(|| format!("`{text}` is too long"))
}

/// One piece of an annotation template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplatePart {
    /// Text as written.
    Text(String),
    /// `{{ $labels.<name> }}`.
    Label(String),
    /// `{{ $value }}`: the aggregate (the count for match rules).
    Value,
    /// `{{ $count }}`: the number of matching events.
    Count,
    /// `{{ $query }}`: the query that finds the alert's events.
    Query,
}

/// Parses an annotation template; an unknown `{{ ... }}` is an error naming it.
pub fn parse_template(text: &str) -> std::result::Result<Vec<TemplatePart>, String> {
    let mut parts = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        if open > 0 {
            parts.push(TemplatePart::Text(rest[..open].to_string()));
        }
        let after = &rest[open + 2..];
        let close = after.find("}}").ok_or("`{{` without its closing `}}`")?;
        let inner = after[..close].trim();
        parts.push(match inner {
            "$value" => TemplatePart::Value,
            "$count" => TemplatePart::Count,
            "$query" => TemplatePart::Query,
            other => match other.strip_prefix("$labels.") {
                Some(name) if !name.is_empty() => TemplatePart::Label(name.to_string()),
                _ => {
                    return Err(format!(
                        "unknown `{{{{ {other} }}}}`: expected $labels.<name>, $value, $count \
                         or $query"
                    ))
                }
            },
        });
        rest = &after[close + 2..];
    }
    if !rest.is_empty() {
        parts.push(TemplatePart::Text(rest.to_string()));
    }
    Ok(parts)
}

/// The label an event field's value is given: the field name with every character that a
/// Prometheus label name cannot hold made `_` (`labels.app` -> `labels_app`).
pub fn label_name(field: &str) -> String {
    let mut name: String = field
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        name.insert(0, '_');
    }
    name
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSpec {
    #[serde(default)]
    groups: Vec<GroupSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupSpec {
    name: String,
    #[serde(default = "default_interval")]
    interval: String,
    #[serde(default)]
    rules: Vec<RuleSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleSpec {
    name: String,
    kind: KindSpec,
    #[serde(default = "default_stream")]
    stream: String,
    query: String,
    window: Option<String>,
    #[serde(default)]
    group_by: Vec<String>,
    condition: Option<String>,
    #[serde(rename = "for")]
    hold: Option<String>,
    keep_firing_for: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    samples: Option<usize>,
    #[serde(default)]
    users: Vec<String>,
    #[serde(default)]
    ignore_users: Vec<String>,
    #[serde(default)]
    ignore_groups: Vec<String>,
    #[serde(default)]
    ignore_namespaces: Vec<String>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum KindSpec {
    Threshold,
    Match,
}

fn default_interval() -> String {
    "1m".to_string()
}

fn default_stream() -> String {
    "logs".to_string()
}

/// Reads the rule files and packs of `config`, validates every rule, and applies
/// `[alerting.tune]`. Errors: [`Error::Read`] for a file that cannot be read,
/// [`Error::Load`] for TOML that does not parse or has an unknown key (naming the file and
/// key), [`Error::Invalid`] listing every broken rule as `<file>: groups.<group>.rules.<rule>.<key>`.
pub fn load_rules(config: &AlertingConfig) -> Result<Vec<RuleGroup>> {
    let mut sources = Vec::new();
    for path in &config.rule_files {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
            path: path.clone(),
            source,
        })?;
        sources.push((path.display().to_string(), text));
    }
    for name in &config.packs {
        let Some((_, text)) = PACKS.iter().find(|(pack, _)| pack == name) else {
            return Err(Error::Invalid {
                problems: vec![unknown_pack(0, name)],
            });
        };
        sources.push((PACK_SOURCE_PREFIX.to_string() + name, text.to_string()));
    }
    let mut problems = Vec::new();
    let mut groups = Vec::new();
    // Every rule's name, disabled ones included, for `tune`.
    let mut all_names = BTreeSet::new();
    for (source, text) in sources {
        let spec: FileSpec = crate::load::parse_toml(&source, &text)?;
        for group in spec.groups {
            all_names.extend(group.rules.iter().map(|r| r.name.clone()));
            groups.push(validate_group(&source, group, config, &mut problems));
        }
    }
    let mut group_names = BTreeSet::new();
    let mut rule_names = BTreeSet::new();
    for group in &groups {
        if !group_names.insert(group.name.clone()) {
            problems.push(Problem {
                key: format!("{}: groups.{}", group.source, group.name),
                message: "another group has this name".into(),
            });
        }
        for rule in &group.rules {
            if !rule_names.insert(rule.name.clone()) {
                problems.push(Problem {
                    key: format!(
                        "{}: groups.{}.rules.{}",
                        group.source, group.name, rule.name
                    ),
                    message: "another rule has this name".into(),
                });
            }
        }
    }
    for name in config.tune.keys() {
        if !all_names.contains(name) {
            problems.push(Problem {
                key: format!("alerting.tune.{name}"),
                message: "no rule file or enabled pack has a rule of this name".into(),
            });
        }
    }
    if problems.is_empty() {
        Ok(groups)
    } else {
        Err(Error::Invalid { problems })
    }
}

pub(crate) fn unknown_pack(index: usize, name: &str) -> Problem {
    let known: Vec<&str> = PACKS.iter().map(|(name, _)| *name).collect();
    Problem {
        key: format!("alerting.packs.{index}"),
        message: format!("unknown pack `{name}` (known: {})", known.join(", ")),
    }
}

fn validate_group(
    source: &str,
    spec: GroupSpec,
    config: &AlertingConfig,
    problems: &mut Vec<Problem>,
) -> RuleGroup {
    let at = format!("{source}: groups.{}", spec.name);
    let mut problem = |key: String, message: String| problems.push(Problem { key, message });
    if !valid_name(&spec.name) {
        problem(
            at.clone(),
            "a group name is letters, digits, `_` and `-`".into(),
        );
    }
    let interval = match parse_duration(&spec.interval) {
        _ if source.starts_with(PACK_SOURCE_PREFIX) => {
            Duration::from_secs(config.pack_interval_secs.max(1))
        }
        Ok(d) if d >= Duration::from_secs(1) => d,
        Ok(_) => {
            problem(format!("{at}.interval"), "must be at least 1s".into());
            Duration::from_secs(60)
        }
        Err(message) => {
            problem(format!("{at}.interval"), message);
            Duration::from_secs(60)
        }
    };
    let mut rules = Vec::new();
    for rule in spec.rules {
        let key = format!("{at}.rules.{}", rule.name);
        let tuning = config.tune.get(&rule.name).cloned().unwrap_or_default();
        if let Some(rule) = validate_rule(&key, rule, &mut problem) {
            if tuning.enabled != Some(false) {
                rules.push(tune(rule, tuning));
            }
        }
    }
    RuleGroup {
        name: spec.name,
        source: source.to_string(),
        interval,
        rules,
    }
}

fn tune(mut rule: Rule, tuning: crate::RuleTuning) -> Rule {
    rule.ignore_users.extend(tuning.ignore_users);
    rule.ignore_groups.extend(tuning.ignore_groups);
    rule.ignore_namespaces.extend(tuning.ignore_namespaces);
    rule.labels.extend(tuning.labels);
    rule
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn validate_rule(
    at: &str,
    spec: RuleSpec,
    problem: &mut impl FnMut(String, String),
) -> Option<Rule> {
    let before = std::cell::Cell::new(0usize);
    let mut report = |key: &str, message: String| {
        before.set(before.get() + 1);
        problem(format!("{at}.{key}"), message);
    };
    validate_fields(&spec, &mut report);
    let kind = validate_kind(&spec, &mut report);
    if before.get() > 0 {
        return None;
    }
    Some(Rule {
        name: spec.name,
        kind: kind?,
        stream: spec.stream,
        query: spec.query.trim().to_string(),
        group_by: spec.group_by,
        labels: spec.labels,
        annotations: spec.annotations,
        samples: spec.samples,
        users: spec.users,
        ignore_users: spec.ignore_users,
        ignore_groups: spec.ignore_groups,
        ignore_namespaces: spec.ignore_namespaces,
    })
}

/// Checks what every rule has: its name, stream, query, grouping, samples, labels and
/// annotation templates.
fn validate_fields(spec: &RuleSpec, report: &mut impl FnMut(&str, String)) {
    if !valid_name(&spec.name) {
        report("name", "a rule name is letters, digits, `_` and `-`".into());
    }
    if trawl_model::validate_stream_name(&spec.stream).is_err() {
        report("stream", format!("`{}` is not a stream name", spec.stream));
    }
    if spec.query.trim().is_empty() {
        report(
            "query",
            "must not be empty (`*` matches every event)".into(),
        );
    }
    if spec.group_by.len() > MAX_GROUP_BY {
        report("group_by", format!("at most {MAX_GROUP_BY} fields"));
    }
    for (i, field) in spec.group_by.iter().enumerate() {
        if field.trim().is_empty() || field.contains(char::is_whitespace) {
            report(&format!("group_by.{i}"), "not a field name".into());
        }
    }
    if spec
        .samples
        .is_some_and(|n| n > crate::alerting::MAX_SAMPLES)
    {
        report(
            "samples",
            format!("at most {}", crate::alerting::MAX_SAMPLES),
        );
    }
    for (key, value) in &spec.labels {
        if label_name(key) != *key || key.starts_with("__") {
            report(
                &format!("labels.{key}"),
                "a label name is letters, digits and `_`, not starting with a digit or `__`".into(),
            );
        }
        if key == "alertname" {
            report(
                &format!("labels.{key}"),
                format!("`alertname` is the rule's name (`{}`)", value),
            );
        }
    }
    for (key, text) in &spec.annotations {
        if let Err(message) = parse_template(text) {
            report(&format!("annotations.{key}"), message);
        }
    }
}

/// Checks what a rule's kind asks for (a threshold's window, condition and `for`; a match
/// rule's `keep_firing_for`) and refuses what belongs to the other kind. `None` when the
/// kind cannot be built.
fn validate_kind(spec: &RuleSpec, report: &mut impl FnMut(&str, String)) -> Option<RuleKind> {
    let duration = |key: &str, text: &Option<String>, default: Duration| match text {
        None => Ok(default),
        Some(text) => parse_duration(text).map_err(|message| (key.to_string(), message)),
    };
    match spec.kind {
        KindSpec::Threshold => {
            let window = duration("window", &spec.window, Duration::ZERO).unwrap_or_else(
                |(key, message)| {
                    report(&key, message);
                    Duration::from_secs(60)
                },
            );
            let hold =
                duration("for", &spec.hold, Duration::ZERO).unwrap_or_else(|(key, message)| {
                    report(&key, message);
                    Duration::ZERO
                });
            if spec.keep_firing_for.is_some() {
                report(
                    "keep_firing_for",
                    "only match rules have it; a threshold alert resolves when its condition \
                     stops holding"
                        .into(),
                );
            }
            if spec.window.is_none() {
                report(
                    "window",
                    "a threshold rule needs a window, e.g. \"5m\"".into(),
                );
            } else if window < Duration::from_secs(1) {
                report("window", "must be at least 1s".into());
            }
            let condition = match spec.condition.as_deref().map(str::parse::<Condition>) {
                Some(Ok(condition)) => Some(condition),
                Some(Err(message)) => {
                    report("condition", message);
                    None
                }
                None => {
                    report(
                        "condition",
                        "a threshold rule needs a condition, e.g. \"count > 100\"".into(),
                    );
                    None
                }
            };
            condition.map(|condition| RuleKind::Threshold {
                window,
                condition,
                hold,
            })
        }
        KindSpec::Match => {
            for (key, given) in [
                ("window", spec.window.is_some()),
                ("condition", spec.condition.is_some()),
                ("for", spec.hold.is_some()),
            ] {
                if given {
                    report(
                        key,
                        "only threshold rules have it; a match rule fires on each new \
                         matching event"
                            .into(),
                    );
                }
            }
            let keep_firing_for = duration(
                "keep_firing_for",
                &spec.keep_firing_for,
                Duration::from_secs(300),
            )
            .unwrap_or_else(|(key, message)| {
                report(&key, message);
                Duration::ZERO
            });
            Some(RuleKind::Match { keep_firing_for })
        }
    }
}

/// Loads the rules of `config` when its `[alerting]` lists any; used by `trawl config check`.
pub(crate) fn check(config: &crate::Config) -> Result<()> {
    if config.alerting.is_enabled() {
        load_rules(&config.alerting)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RuleTuning;

    fn write(text: &str) -> (tempfile::TempDir, AlertingConfig) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rules.toml");
        std::fs::write(&path, text).unwrap();
        let config = AlertingConfig {
            rule_files: vec![path],
            ..AlertingConfig::default()
        };
        (dir, config)
    }

    #[test]
    fn conditions_and_durations_parse() {
        let c: Condition = "count > 100".parse().unwrap();
        assert_eq!(
            c,
            Condition {
                aggregate: Aggregate::Count,
                op: Comparison::Gt,
                threshold: 100.0
            }
        );
        let c: Condition = "p99.9(latency_ms)>=500.5".parse().unwrap();
        assert_eq!(
            c.aggregate,
            Aggregate::Percentile(99.9, "latency_ms".into())
        );
        assert_eq!(c.op, Comparison::Ge);
        assert_eq!(c.threshold, 500.5);
        assert_eq!(
            "avg(x) != 1".parse::<Condition>().unwrap().aggregate,
            Aggregate::Avg("x".into())
        );
        assert!("count >".parse::<Condition>().is_err());
        assert!("p100(x) > 1".parse::<Condition>().is_err());
        assert!("median(x) > 1".parse::<Condition>().is_err());
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("5y").is_err());
    }

    #[test]
    fn templates_name_what_they_do_not_know() {
        assert_eq!(
            parse_template("{{ $labels.pod }}: {{$value}}").unwrap(),
            vec![
                TemplatePart::Label("pod".into()),
                TemplatePart::Text(": ".into()),
                TemplatePart::Value
            ]
        );
        assert_eq!(
            parse_template("{{ .Labels }}").unwrap_err(),
            "unknown `{{ .Labels }}`: expected $labels.<name>, $value, $count or $query"
        );
        assert!(parse_template("{{ $value").is_err());
    }

    #[test]
    fn a_rule_file_loads() {
        let (_dir, config) = write(
            r#"
[[groups]]
name = "web"
interval = "15s"
[[groups.rules]]
name = "Errors"
kind = "threshold"
query = "level:error"
window = "5m"
group_by = ["namespace"]
condition = "count > 10"
for = "1m"
labels = { severity = "page" }
[[groups.rules]]
name = "Panics"
kind = "match"
query = "panic"
"#,
        );
        let groups = load_rules(&config).unwrap();
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[0].interval, Duration::from_secs(15));
        let rule = &groups[0].rules[0];
        assert_eq!(rule.stream, "logs");
        assert_eq!(
            rule.kind,
            RuleKind::Threshold {
                window: Duration::from_secs(300),
                condition: "count > 10".parse().unwrap(),
                hold: Duration::from_secs(60)
            }
        );
        assert_eq!(
            groups[0].rules[1].kind,
            RuleKind::Match {
                keep_firing_for: Duration::from_secs(300)
            }
        );
    }

    #[test]
    fn errors_name_the_file_group_rule_and_key() {
        let (dir, config) = write(
            r#"
[[groups]]
name = "web"
[[groups.rules]]
name = "Errors"
kind = "threshold"
query = "level:error"
window = "5x"
condition = "count >> 10"
[[groups.rules]]
name = "Panics"
kind = "match"
query = "panic"
for = "1m"
annotations = { summary = "{{ $nope }}" }
"#,
        );
        let file = dir.path().join("rules.toml").display().to_string();
        let Error::Invalid { problems } = load_rules(&config).unwrap_err() else {
            panic!("expected Invalid");
        };
        let keys: Vec<String> = problems.iter().map(|p| p.key.clone()).collect();
        assert_eq!(
            keys,
            vec![
                format!("{file}: groups.web.rules.Errors.window"),
                format!("{file}: groups.web.rules.Errors.condition"),
                format!("{file}: groups.web.rules.Panics.annotations.summary"),
                format!("{file}: groups.web.rules.Panics.for"),
            ]
        );
        let (_dir, config) = write("[[groups]]\nname = \"x\"\n[[groups.rules]]\nname = \"a\"\nkind = \"match\"\nquery = \"x\"\nwindoww = \"1m\"\n");
        let message = load_rules(&config).unwrap_err().to_string();
        assert!(
            message.contains("unknown key `groups.0.rules.0.windoww`"),
            "{message}"
        );
        assert!(message.contains("rules.toml"), "{message}");
    }

    #[test]
    fn the_pack_loads_and_is_tuned_by_name() {
        let mut config = AlertingConfig {
            packs: vec!["kubernetes-audit".into()],
            ..AlertingConfig::default()
        };
        let groups = load_rules(&config).unwrap();
        let names: Vec<&str> = groups[0].rules.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "K8sExecIntoPod",
                "K8sSecretReadByPerson",
                "K8sClusterAdminBinding",
                "K8sPrivilegedOrHostPathPod",
                "K8sAnonymousAllowed",
                "K8sForbiddenBurst",
                "K8sNamespaceDeleted"
            ]
        );
        assert_eq!(groups[0].interval, Duration::from_secs(30));
        config.tune.insert(
            "K8sExecIntoPod".into(),
            RuleTuning {
                ignore_users: vec!["ci-bot".into()],
                ..RuleTuning::default()
            },
        );
        config.tune.insert(
            "K8sNamespaceDeleted".into(),
            RuleTuning {
                enabled: Some(false),
                ..RuleTuning::default()
            },
        );
        let groups = load_rules(&config).unwrap();
        assert_eq!(groups[0].rules[0].ignore_users, vec!["ci-bot".to_string()]);
        assert_eq!(groups[0].rules.len(), 6);
        config.tune.insert("Nope".into(), RuleTuning::default());
        let message = load_rules(&config).unwrap_err().to_string();
        assert_eq!(
            message,
            "invalid configuration: `alerting.tune.Nope`: no rule file or enabled pack has a rule of this name"
        );
    }
}
