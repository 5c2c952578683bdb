//! `[query]`: search limits and the leaves a searcher fans out to.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Largest `limit` a search may ask for, whatever the configuration says (the API contract).
pub const MAX_LIMIT_CEILING: usize = 10_000;

/// `[query]` section. Used by `trawl searcher`, `trawl indexer` (leaf searches) and
/// `trawl standalone`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueryConfig {
    /// `limit` of a search that gives none. Default 100.
    pub default_limit: usize,
    /// Largest `limit` accepted; more is a 400. At most 10000. Default 10000.
    pub max_limit: usize,
    /// Time budget of one query; past it the answer says it is partial instead of hanging.
    /// Default 30000.
    pub timeout_ms: u64,
    /// Base URLs of the indexers a searcher fans queries out to, e.g.
    /// `["http://trawl-indexer-0.trawl-indexer:7400"]`. Empty (the default) searches the local
    /// indexer (standalone).
    pub indexers: Vec<String>,
    /// Bearer token a searcher presents to its indexers (a token of the indexers' `[auth]`,
    /// normally `read` without namespaces). The searcher authenticates its own callers and
    /// sends each caller's namespace scope along, so the indexers need not know the callers'
    /// tokens. Empty (the default): each caller's own `Authorization` is passed on.
    pub indexer_token: String,
    /// PEM file of the CA certificates (one or more) a searcher trusts, besides the system
    /// roots, for `https://` indexers with a private CA. Default: none.
    pub indexer_ca_path: Option<PathBuf>,
    /// Memory one aggregation request may use before it is refused. Default 500000000.
    pub aggregation_memory_bytes: u64,
    /// Most groups an audit report enumerates (every group is counted so that its rows are
    /// exact; past this the report answers 422). Memory stays bounded by
    /// `aggregation_memory_bytes`. Default 1000000.
    pub report_group_limit: u32,
    /// User names (globs, `*` matches any run of characters) counted as the cluster's own
    /// components rather than people, for the audit reports that separate the two.
    /// Default: the control plane, kube-system service accounts and kubelets.
    pub audit_system_users: Vec<String>,
    /// Groups (globs) whose members count as system components in the audit reports.
    /// Default `system:nodes` and `system:serviceaccounts:kube-system`; `system:masters` is
    /// deliberately not in it, since people hold it.
    pub audit_system_groups: Vec<String>,
    /// Index names of the Elasticsearch-compatible API and the streams they are: pattern
    /// (`*` matches any run of characters) → stream. `_bulk` to a matching index writes to the
    /// stream, a search of a matching name or pattern searches it, and its hits come back in
    /// the shape the KubeSphere writers give them (Fluent Bit's names for `logs`,
    /// kube-auditing's for `audit`). Read by the indexer (`_bulk`) and the searcher alike.
    /// Default: KubeSphere's `ks-logstash-log*` → `logs`, `ks-logstash-auditing*` → `audit`,
    /// `ks-logstash-events*` → `events` (a stream that exists only when declared).
    pub elastic_index_patterns: BTreeMap<String, String>,
}

impl Default for QueryConfig {
    fn default() -> Self {
        QueryConfig {
            default_limit: default_default_limit(),
            max_limit: default_max_limit(),
            timeout_ms: default_timeout_ms(),
            indexers: Vec::new(),
            indexer_token: String::new(),
            indexer_ca_path: None,
            aggregation_memory_bytes: default_aggregation_memory_bytes(),
            report_group_limit: default_report_group_limit(),
            audit_system_users: default_audit_system_users(),
            audit_system_groups: default_audit_system_groups(),
            elastic_index_patterns: default_elastic_index_patterns(),
        }
    }
}

fn default_default_limit() -> usize {
    100
}

fn default_max_limit() -> usize {
    MAX_LIMIT_CEILING
}

fn default_timeout_ms() -> u64 {
    30_000
}

fn default_aggregation_memory_bytes() -> u64 {
    // tantivy's own default aggregation memory limit.
    500_000_000
}

fn default_report_group_limit() -> u32 {
    1_000_000
}

fn default_audit_system_users() -> Vec<String> {
    [
        "system:apiserver",
        "system:kube-controller-manager",
        "system:kube-scheduler",
        "system:kube-proxy",
        "system:node:*",
        "system:serviceaccount:kube-system:*",
    ]
    .into_iter()
    .map(String::from)
    .collect()
}

fn default_audit_system_groups() -> Vec<String> {
    ["system:nodes", "system:serviceaccounts:kube-system"]
        .into_iter()
        .map(String::from)
        .collect()
}

fn default_elastic_index_patterns() -> BTreeMap<String, String> {
    trawl_model::elastic::KUBESPHERE_INDEX_PATTERNS
        .iter()
        .map(|(pattern, stream)| (pattern.to_string(), stream.to_string()))
        .collect()
}
