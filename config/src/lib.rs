//! Typed configuration for every Trawl role: one TOML file, then `TRAWL_*` environment
//! overrides (from a map the caller passes in), then command-line flags; validated with errors
//! that name the key and where it came from.
//!
//! ```text
//! Config::load(file, &env)  -> defaults < file < env, validated
//! config.apply_flags(..)    -> flags win, validated again
//! ```
//!
//! `example.toml` at the crate root documents every key with its default.

mod alerting;
mod auth;
mod collector;
mod config;
mod env;
mod error;
mod indexer;
mod load;
mod query;
mod rules;
mod selector;
mod storage;
mod stream;
mod validate;

#[cfg(test)]
mod tests;

pub use alerting::{AlertingConfig, RuleTuning, MAX_SAMPLES};
pub use auth::{AuthConfig, Role, TlsConfig, TokenConfig};
pub use collector::{
    CollectorConfig, DropPolicy, JournalConfig, KubernetesConfig, MultilineRule, RateLimit,
    RedactRule,
};
pub use config::{check_file, Config, ServerRole};
pub use env::{ENV_PREFIX, IGNORED_ENV_VARS};
pub use error::{Error, Problem, Result};
pub use indexer::IndexerConfig;
pub use query::{QueryConfig, MAX_LIMIT_CEILING};
pub use rules::{
    label_name, load_rules, parse_duration, parse_template, Aggregate, Comparison, Condition, Rule,
    RuleGroup, RuleKind, TemplatePart, PACKS,
};
pub use selector::{LabelSelector, Requirement};
pub use storage::{MetastoreConfig, S3Config, StorageConfig};
pub use stream::{StreamConfig, TimestampFormat, BUILTIN_STREAMS};
