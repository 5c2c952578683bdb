//! `[alerting]`: where rules come from (rule files and ready packs), where alerts go
//! (Alertmanagers, webhooks), and the knobs of evaluation and delivery.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// `[alerting]` section. Alerting is on when at least one rule file or pack is listed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertingConfig {
    /// TOML rule files (see the README's "Alerting" section). Each is re-read when it changes
    /// and on SIGHUP. Default: none.
    pub rule_files: Vec<PathBuf>,
    /// Ready rule packs to enable, by name; `kubernetes-audit` is the only one. Default: none.
    pub packs: Vec<String>,
    /// Base URLs of Alertmanagers (`http://alertmanager:9093`); alerts are posted to
    /// `<url>/api/v2/alerts`, to every one listed. Default: none.
    pub alertmanagers: Vec<String>,
    /// URLs that receive a plain JSON body of the alerts that changed (fired or resolved).
    /// Default: none.
    pub webhooks: Vec<String>,
    /// The base URL of this server as people reach it, for each alert's `generatorURL` (a link
    /// to the search that finds the alert's events). Default: `http://<listen>`.
    pub external_url: String,
    /// Sample lines carried in each alert's `samples` annotation. Default 5, at most 100.
    pub samples: usize,
    /// Most alerts (groups) one rule raises per evaluation; the groups with the most events
    /// win. Bounds the cost of a rule whose `group_by` explodes. Default 100.
    pub max_alerts_per_rule: usize,
    /// Match rules read events up to this long before now, so that events still being
    /// shipped and committed when a round runs are read by the next round. An event that
    /// becomes searchable later than this after its timestamp is not alerted on. Default 10000.
    pub match_lag_ms: u64,
    /// Firing alerts are sent again this often, so that a restarted Alertmanager knows them.
    /// Default 60.
    pub resend_interval_secs: u64,
    /// Resolved alerts are kept, and sent again, this long, so that a resolve is not lost to an
    /// Alertmanager that was away. Default 900.
    pub keep_resolved_secs: u64,
    /// Time budget of one delivery attempt. Default 10000.
    pub delivery_timeout_ms: u64,
    /// Longest wait between delivery retries (the wait starts at 500 ms and doubles).
    /// Default 30000.
    pub max_retry_backoff_ms: u64,
    /// How often rule files are checked for changes. Default 2000.
    pub reload_check_ms: u64,
    /// Time between two evaluations of a pack's rules. Default 30.
    pub pack_interval_secs: u64,
    /// Term of the `alerting` lease that searchers on a PostgreSQL metastore take turns with
    /// (renewed, or tried, every third of it). Default 15.
    pub lease_secs: u64,
    /// `[alerting.tune.<rule>]`: changes to a rule without editing it (pack rules above all):
    /// turn it off, add exceptions, add labels.
    pub tune: BTreeMap<String, RuleTuning>,
}

/// `[alerting.tune.<rule>]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuleTuning {
    /// `false` turns the rule off. Default `true`.
    pub enabled: Option<bool>,
    /// Users whose events never count for this rule (`*` globs), added to the rule's own.
    pub ignore_users: Vec<String>,
    /// Groups whose members' events never count (`*` globs), added to the rule's own.
    pub ignore_groups: Vec<String>,
    /// Namespaces whose events never count (`*` globs), added to the rule's own.
    pub ignore_namespaces: Vec<String>,
    /// Labels added to (or replacing) the rule's.
    pub labels: BTreeMap<String, String>,
}

impl Default for AlertingConfig {
    fn default() -> Self {
        AlertingConfig {
            rule_files: Vec::new(),
            packs: Vec::new(),
            alertmanagers: Vec::new(),
            webhooks: Vec::new(),
            external_url: String::new(),
            samples: 5,
            max_alerts_per_rule: 100,
            match_lag_ms: 10_000,
            resend_interval_secs: 60,
            keep_resolved_secs: 900,
            delivery_timeout_ms: 10_000,
            max_retry_backoff_ms: 30_000,
            reload_check_ms: 2_000,
            pack_interval_secs: 30,
            lease_secs: 15,
            tune: BTreeMap::new(),
        }
    }
}

impl AlertingConfig {
    /// Whether any rule can exist: a rule file or a pack is listed.
    pub fn is_enabled(&self) -> bool {
        !self.rule_files.is_empty() || !self.packs.is_empty()
    }
}

/// Largest `alerting.samples`.
pub const MAX_SAMPLES: usize = 100;
