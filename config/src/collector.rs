//! `[collector]`: what the node agent tails, how it batches, and where it ships.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// `[collector]` section. Used by `trawl collector` and by `trawl standalone`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CollectorConfig {
    /// Whether `trawl standalone` runs the collector. Ignored by `trawl collector`, which always
    /// runs it. Default `true`.
    pub enabled: bool,
    /// Directory holding the kubelet's container logs (`<ns>_<pod>_<uid>/<container>/<n>.log`).
    /// A directory that does not exist is watched for, not an error. Default `/var/log/pods`.
    pub pods_dir: PathBuf,
    /// Node name stamped on every record. Empty (the default) means: the `NODE_NAME`
    /// environment variable (read when the configuration is loaded), else the host name.
    pub node_name: String,
    /// Base URL of the indexer, e.g. `http://trawl-indexer:7400` (`http` or `https`, with a
    /// host). Empty (the default) means, in standalone, the address the server actually bound;
    /// `trawl collector` refuses to start without it.
    pub indexer_url: String,
    /// Several indexers instead of `indexer_url` (set one or the other): each node ships to one
    /// of them, chosen by rendezvous hashing of its node name (so a cluster's nodes spread over
    /// the indexers, and each node keeps its choice across restarts), and moves on to the next
    /// in its order when the current one has refused or not answered for
    /// `failover_after_secs`. It stays where it moved. The indexers share a PostgreSQL
    /// metastore, in which the new one takes the node's sources over. Default empty.
    pub indexer_urls: Vec<String>,
    /// How long the current indexer of `indexer_urls` may refuse or not answer before the
    /// collector moves to the next one. At least 1. Default 30.
    pub failover_after_secs: u64,
    /// Bearer token sent to the indexer (a token with the `ingest` role). Empty (the default)
    /// sends none.
    pub token: String,
    /// PEM bundle of CA certificates the indexer's certificate is verified against, for an
    /// `https://` indexer URL, in addition to the public roots. Unset (the default): public
    /// roots only.
    pub ca_path: Option<PathBuf>,
    /// Directory for checkpoints and the disk buffer. Unset (the default) means
    /// `<data_dir>/collector`.
    pub data_dir: Option<PathBuf>,
    /// Longest log line kept whole; longer lines are truncated to this many bytes and counted.
    /// Default 1 MiB.
    pub max_line_bytes: usize,
    /// A batch is shipped when its uncompressed NDJSON reaches this size. Default 1 MiB.
    pub batch_max_bytes: usize,
    /// ... or when its oldest line has waited this long. Default 200.
    pub batch_max_wait_ms: u64,
    /// Batches sent to the indexer and not yet acknowledged, at most. Default 2.
    pub max_in_flight: usize,
    /// Size bound of the on-disk buffer that holds batches while the indexer is away. When it is
    /// full, `drop_policy` decides. Default 1 GiB.
    pub buffer_max_bytes: u64,
    /// `trawl collector` answers 503 on `/health/ready` once its oldest batch has been refused
    /// or unanswered for this long (a wrong `indexer_url`, a proxy refusing, the indexer away):
    /// nothing is lost meanwhile, but nothing ships either. At least 1. Default 300.
    pub stuck_ready_after_secs: u64,
    /// Size bound of the dead-letter files (`<collector data dir>/dead-letter/`) that keep, as
    /// JSON lines, the records the indexer will never accept (refused alone as too large, or
    /// rejected by line number); the oldest half is dropped past it. At least 4096.
    /// Default 64 MiB.
    pub dead_letter_max_bytes: u64,
    /// How often the pods directory is rescanned for new and rotated files, in addition to file
    /// system notifications; ten times less often while notifications come for every directory
    /// read. Default 1000.
    pub rescan_interval_ms: u64,
    /// Namespaces to collect (globs, `*` matches any run of characters). Empty (the default)
    /// collects every namespace.
    pub include_namespaces: Vec<String>,
    /// Namespaces never collected (globs); wins over `include_namespaces`. Default empty.
    pub exclude_namespaces: Vec<String>,
    /// Container names to collect (globs). Empty (the default) collects every container.
    pub include_containers: Vec<String>,
    /// Container names never collected (globs); wins over `include_containers`. Default empty.
    pub exclude_containers: Vec<String>,
    /// Collect only pods matching one of these label selectors. A selector is a comma-separated
    /// list of requirements that must all hold: `key=value`, `key!=value`, `key` (present),
    /// `!key` (absent), as in `kubectl get pods -l`. Needs Kubernetes metadata (see
    /// `kubernetes.enabled`); decided once per pod when its first file is found. A file whose
    /// pod is still unknown after `kubernetes.metadata_wait_ms` is collected. Empty (the
    /// default) collects every pod.
    pub include_pod_labels: Vec<String>,
    /// Never collect pods matching one of these label selectors (same syntax); wins over
    /// `include_pod_labels`. Default empty.
    pub exclude_pod_labels: Vec<String>,
    /// Kubernetes audit log files to tail (the API server's `--audit-log-path`). Default empty.
    pub audit_log_paths: Vec<PathBuf>,
    /// Whether to serve the audit webhook (`POST /api/v1/audit/webhook`). Default `true`.
    pub audit_webhook: bool,
    /// Rules joining multi-line entries (stack traces) into one record. The first rule whose
    /// `namespace` and `container` match a container applies. Default none.
    pub multiline: Vec<MultilineRule>,
    /// Redaction rules applied to every message before it leaves the node, in order. Default none.
    pub redact: Vec<RedactRule>,
    /// Per-namespace rate limits; the first rule whose `namespace` matches applies. Lines over
    /// the limit wait (the file is read later); nothing is dropped. Default none.
    pub rate_limits: Vec<RateLimit>,
    /// What to do when the disk buffer is full. Default `block`.
    pub drop_policy: DropPolicy,
    /// Pod metadata from the Kubernetes API (labels, image, annotations).
    pub kubernetes: KubernetesConfig,
    /// The node's journal (kubelet, containerd, the kernel) into the `journal` stream.
    pub journal: JournalConfig,
}

impl Default for CollectorConfig {
    fn default() -> Self {
        CollectorConfig {
            enabled: default_true(),
            pods_dir: default_pods_dir(),
            node_name: String::new(),
            indexer_url: String::new(),
            indexer_urls: Vec::new(),
            failover_after_secs: default_failover_after_secs(),
            token: String::new(),
            ca_path: None,
            data_dir: None,
            max_line_bytes: default_max_line_bytes(),
            batch_max_bytes: default_batch_max_bytes(),
            batch_max_wait_ms: default_batch_max_wait_ms(),
            max_in_flight: default_max_in_flight(),
            buffer_max_bytes: default_buffer_max_bytes(),
            stuck_ready_after_secs: default_stuck_ready_after_secs(),
            dead_letter_max_bytes: default_dead_letter_max_bytes(),
            rescan_interval_ms: default_rescan_interval_ms(),
            include_namespaces: Vec::new(),
            exclude_namespaces: Vec::new(),
            include_containers: Vec::new(),
            exclude_containers: Vec::new(),
            include_pod_labels: Vec::new(),
            exclude_pod_labels: Vec::new(),
            audit_log_paths: Vec::new(),
            audit_webhook: default_true(),
            multiline: Vec::new(),
            redact: Vec::new(),
            rate_limits: Vec::new(),
            drop_policy: DropPolicy::default(),
            kubernetes: KubernetesConfig::default(),
            journal: JournalConfig::default(),
        }
    }
}

/// `[collector.journal]`: the node's journald entries, read through `journalctl -o json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JournalConfig {
    /// Read the journal. Default `false`.
    pub enabled: bool,
    /// The systemd units whose entries are read. Default `kubelet.service` and
    /// `containerd.service`.
    pub units: Vec<String>,
    /// Also the kernel's messages (the OOM killer). Default `true`.
    pub kernel: bool,
    /// The program run as `journalctl` (its `-o json --follow` output is read). Default
    /// `journalctl`; in a container, one that reads the node's journal directory (mounted at
    /// `/var/log/journal`), e.g. `journalctl --directory=/var/log/journal`.
    pub command: Vec<String>,
    /// Entries per request to the indexer at most. Default 1000.
    pub batch_max_entries: usize,
}

impl Default for JournalConfig {
    fn default() -> Self {
        JournalConfig {
            enabled: false,
            units: vec!["kubelet.service".into(), "containerd.service".into()],
            kernel: true,
            command: vec!["journalctl".into()],
            batch_max_entries: 1000,
        }
    }
}

/// One `[[collector.multiline]]` rule: a line matching `first_line_pattern` starts a new entry,
/// and the lines that follow without matching are appended to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MultilineRule {
    /// Namespace glob; unset matches every namespace.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Container name glob. Required.
    pub container: String,
    /// Regex a line matches when it starts a new entry, e.g. `^\d{4}-\d{2}-\d{2}`. Required.
    pub first_line_pattern: String,
    /// An entry is closed after this many lines. Default 500.
    #[serde(default = "default_multiline_max_lines")]
    pub max_lines: usize,
    /// An entry is closed when no line has followed for this long. Default 1000.
    #[serde(default = "default_multiline_timeout_ms")]
    pub timeout_ms: u64,
}

/// One `[[collector.redact]]` rule: every match of `pattern` in a message is replaced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedactRule {
    /// Name used in metrics (`redactions_total{rule=...}`). Required, unique.
    pub name: String,
    /// Regex to replace. Required.
    pub pattern: String,
    /// Replacement text; `$1`-style group references are expanded. Default `[REDACTED]`.
    #[serde(default = "default_replacement")]
    pub replacement: String,
}

/// One `[[collector.rate_limits]]` rule: a token bucket per namespace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Namespace glob. Required.
    pub namespace: String,
    /// Sustained lines per second for each matching namespace. Required, at least 1.
    pub lines_per_sec: u64,
    /// Lines that may be read at once above the sustained rate. 0 (the default) means
    /// `lines_per_sec`.
    #[serde(default)]
    pub burst: u64,
}

impl RateLimit {
    /// The bucket size: `burst`, or `lines_per_sec` when `burst` is 0.
    pub fn effective_burst(&self) -> u64 {
        if self.burst == 0 {
            self.lines_per_sec
        } else {
            self.burst
        }
    }
}

/// What the collector does when its disk buffer is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DropPolicy {
    /// Stop reading files until there is room (files are read later; nothing is lost unless the
    /// kubelet rotates a file away first). The default.
    #[default]
    Block,
    /// Keep reading and drop the newest batches, counting them.
    DropNewest,
}

/// `[collector.kubernetes]`: pod metadata from the API server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KubernetesConfig {
    /// Watch the pods of this node (and the namespaces) through the Kubernetes API to add
    /// `labels`, `image`, `container_id`, the owner and chosen annotations to records. Unset (the
    /// default) means: on when running in a cluster (`KUBERNETES_SERVICE_HOST` is set) or when
    /// `kubeconfig` is set, off otherwise (standalone, demo). Readiness never waits for it, and
    /// records of pods not known yet carry what their path says.
    pub enabled: Option<bool>,
    /// A kubeconfig file to reach the API server with (its current context). Unset (the
    /// default) means the in-cluster service account.
    pub kubeconfig: Option<PathBuf>,
    /// How long metadata of a deleted pod is kept, so its last lines are still enriched.
    /// Default 300.
    pub metadata_grace_secs: u64,
    /// Pod annotations copied into records' `attributes` as `k8s.pod.annotations.<key>` (exact
    /// keys). Default none.
    pub annotations: Vec<String>,
    /// Copy the labels of the pod's namespace into `attributes` as
    /// `k8s.namespace.labels.<key>`. Default `false`.
    pub namespace_labels: bool,
    /// With pod label filters, how long a new file waits for its pod's labels before it is
    /// read anyway (with path metadata only, never dropped). Default 5000.
    pub metadata_wait_ms: u64,
    /// Collect the cluster's Kubernetes Events (core v1, every namespace) into the `events`
    /// stream. One collector of the cluster does it at a time, the one holding the Lease
    /// `events_lease_namespace`/`events_lease_name`; it resumes from the last
    /// resourceVersion it shipped and relists when the API answers 410 Gone. Needs RBAC to
    /// list and watch `events` and to get, create and update `leases`. Default `false`.
    pub events: bool,
    /// The namespace of the Events lease. Default `default`.
    pub events_lease_namespace: String,
    /// The name of the Events lease. Default `trawl-events`.
    pub events_lease_name: String,
    /// How long the lease lasts without renewal before another collector takes it over
    /// (renewed every third of it). Default 15.
    pub events_lease_secs: u64,
    /// Whether the process runs in a cluster (`KUBERNETES_SERVICE_HOST` set and not blank), as
    /// loading found it in the environment map ([`CollectorConfig::resolve_host`]). Not a key.
    #[serde(skip)]
    pub in_cluster: bool,
}

impl Default for KubernetesConfig {
    fn default() -> Self {
        KubernetesConfig {
            enabled: None,
            kubeconfig: None,
            metadata_grace_secs: default_metadata_grace_secs(),
            annotations: Vec::new(),
            namespace_labels: false,
            metadata_wait_ms: default_metadata_wait_ms(),
            events: false,
            events_lease_namespace: "default".to_string(),
            events_lease_name: "trawl-events".to_string(),
            events_lease_secs: 15,
            in_cluster: false,
        }
    }
}

impl KubernetesConfig {
    /// Whether the API server is watched: `enabled` when set; when unset, whether the process
    /// runs in a cluster (`in_cluster`, which loading sets from `KUBERNETES_SERVICE_HOST`) or
    /// `kubeconfig` is set.
    pub fn watch_enabled(&self) -> bool {
        self.enabled
            .unwrap_or(self.in_cluster || self.kubeconfig.is_some())
    }
}

impl CollectorConfig {
    /// Fills in what "unset" means on this host from its variables, so that the collector
    /// library never reads the environment: an empty `node_name` becomes `NODE_NAME` (the
    /// downward API's) when that is set and not blank; `kubernetes.in_cluster` is whether
    /// `KUBERNETES_SERVICE_HOST` is set and not blank. `env` reads a variable (the binary
    /// passes its environment map).
    pub fn resolve_host(&mut self, env: impl Fn(&str) -> Option<String>) {
        let set = |name: &str| {
            env(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        if self.node_name.is_empty() {
            if let Some(node) = set("NODE_NAME") {
                self.node_name = node;
            }
        }
        self.kubernetes.in_cluster = set("KUBERNETES_SERVICE_HOST").is_some();
    }
}

fn default_true() -> bool {
    true
}

fn default_pods_dir() -> PathBuf {
    PathBuf::from("/var/log/pods")
}

fn default_max_line_bytes() -> usize {
    1024 * 1024
}

fn default_batch_max_bytes() -> usize {
    1024 * 1024
}

fn default_batch_max_wait_ms() -> u64 {
    200
}

fn default_max_in_flight() -> usize {
    2
}

fn default_buffer_max_bytes() -> u64 {
    1024 * 1024 * 1024
}

fn default_failover_after_secs() -> u64 {
    30
}

fn default_stuck_ready_after_secs() -> u64 {
    300
}

fn default_dead_letter_max_bytes() -> u64 {
    64 * 1024 * 1024
}

fn default_rescan_interval_ms() -> u64 {
    1000
}

fn default_multiline_max_lines() -> usize {
    500
}

fn default_multiline_timeout_ms() -> u64 {
    1000
}

fn default_replacement() -> String {
    "[REDACTED]".to_string()
}

fn default_metadata_grace_secs() -> u64 {
    300
}

fn default_metadata_wait_ms() -> u64 {
    5000
}
