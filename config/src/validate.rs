//! Rules a loaded configuration must follow; every broken rule is reported with its key.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;

use crate::error::{Error, Problem, Result};
use crate::query::MAX_LIMIT_CEILING;
use crate::stream::BUILTIN_STREAMS;
use crate::{
    AlertingConfig, AuthConfig, CollectorConfig, Config, IndexerConfig, MetastoreConfig,
    QueryConfig, ServerRole, StorageConfig, StreamConfig, MAX_SAMPLES,
};

/// tantivy refuses an index writer with less memory than this per indexing thread.
const MIN_WRITER_MEMORY_BYTES: usize = 15_000_000;

/// Checks `config`; see [`Config::validate`] and, with a role, [`Config::validate_for`].
pub(crate) fn validate(config: &Config, role: Option<ServerRole>) -> Result<()> {
    let mut problems = Problems::default();
    if is_empty_path(&config.data_dir) {
        problems.add("data_dir", "must not be empty");
    }
    if let Err(error) = config.listen.parse::<SocketAddr>() {
        problems.add(
            "listen",
            format!("`{}` is not an ip:port address ({error})", config.listen),
        );
    }
    collector(&mut problems, &config.collector);
    indexer(&mut problems, &config.indexer);
    query(&mut problems, &config.query);
    for (name, stream_config) in &config.streams {
        stream(&mut problems, name, stream_config);
    }
    auth(&mut problems, &config.auth);
    alerting(&mut problems, &config.alerting);
    storage(&mut problems, &config.storage, &config.metastore);
    if let Some(role) = role {
        for_role(&mut problems, config, role);
    }
    problems.into_result()
}

/// What a role needs that the others do not: a configuration that passes [`validate`] but
/// cannot work for this role (it would start and ship or search nowhere).
fn for_role(problems: &mut Problems, config: &Config, role: ServerRole) {
    match role {
        ServerRole::Collector
            if config.collector.indexer_url.trim().is_empty()
                && config.collector.indexer_urls.is_empty() =>
        {
            problems.add(
                "collector.indexer_url",
                "`trawl collector` needs the indexer to ship to, e.g. \
                 `http://trawl-indexer:7400` (TRAWL_COLLECTOR__INDEXER_URL), \
                 or several in `collector.indexer_urls`",
            )
        }
        ServerRole::Searcher if config.query.indexers.is_empty() => problems.add(
            "query.indexers",
            "`trawl searcher` needs at least one indexer to fan out to, e.g. \
             [\"http://trawl-indexer-0.trawl-indexer:7400\"]",
        ),
        _ => {}
    }
}

#[derive(Default)]
struct Problems(Vec<Problem>);

impl Problems {
    fn add(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem {
            key: key.into(),
            message: message.into(),
        });
    }

    fn at_least(&mut self, key: impl Into<String>, value: u64, min: u64) {
        if value < min {
            self.add(key, format!("must be at least {min}, got {value}"));
        }
    }

    fn non_empty_entries(&mut self, key: &str, entries: &[String]) {
        for (i, entry) in entries.iter().enumerate() {
            if entry.trim().is_empty() {
                self.add(format!("{key}.{i}"), "must not be empty");
            }
        }
    }

    fn regex(&mut self, key: impl Into<String>, pattern: &str) -> Option<regex::Regex> {
        match regex::Regex::new(pattern) {
            Ok(regex) => Some(regex),
            Err(error) => {
                self.add(
                    key,
                    format!("invalid regex `{pattern}`: {}", regex_reason(&error)),
                );
                None
            }
        }
    }

    /// An `http://` or `https://` base URL whose host (and port, if any) parse.
    fn url(&mut self, key: impl Into<String>, url: &str) {
        if let Err(why) = check_base_url(url) {
            self.add(
                key,
                format!("`{url}` is not an http:// or https:// URL with a host: {why}"),
            );
        }
    }

    fn into_result(self) -> Result<()> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(Error::Invalid { problems: self.0 })
        }
    }
}

/// Why `url` cannot be a server's base URL, if it cannot: a scheme other than `http` or
/// `https`, no host, a host or port that does not parse, a query or fragment.
fn check_base_url(url: &str) -> std::result::Result<(), String> {
    if url.trim() != url || url.contains(char::is_whitespace) {
        return Err("it contains white space".into());
    }
    let parsed = url::Url::parse(url).map_err(|e| e.to_string())?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!("scheme `{}`", parsed.scheme()));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err("no host".into());
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err("a base URL has no query or fragment".into());
    }
    Ok(())
}

fn to_u64(value: usize) -> u64 {
    u64::try_from(value).unwrap_or(u64::MAX)
}

fn is_empty_path(path: &Path) -> bool {
    path.as_os_str().is_empty()
}

/// The reason of a regex error in one line: syntax errors draw the pattern with a caret over
/// several lines and end with `error: <reason>`.
fn regex_reason(error: &regex::Error) -> String {
    let message = error.to_string();
    match message
        .lines()
        .rev()
        .find_map(|line| line.trim().strip_prefix("error: "))
    {
        Some(reason) => reason.to_string(),
        None => message.split_whitespace().collect::<Vec<_>>().join(" "),
    }
}

fn collector(problems: &mut Problems, c: &CollectorConfig) {
    if is_empty_path(&c.pods_dir) {
        problems.add("collector.pods_dir", "must not be empty");
    }
    if !c.indexer_url.is_empty() {
        problems.url("collector.indexer_url", &c.indexer_url);
        if !c.indexer_urls.is_empty() {
            problems.add(
                "collector.indexer_urls",
                "set `indexer_url` or `indexer_urls`, not both",
            );
        }
    }
    for (i, url) in c.indexer_urls.iter().enumerate() {
        problems.url(format!("collector.indexer_urls.{i}"), url);
    }
    if c.ca_path.as_deref().is_some_and(is_empty_path) {
        problems.add(
            "collector.ca_path",
            "must not be empty (leave it unset to trust the public roots only)",
        );
    }
    if c.data_dir.as_deref().is_some_and(is_empty_path) {
        problems.add(
            "collector.data_dir",
            "must not be empty (leave it unset for <data_dir>/collector)",
        );
    }
    problems.at_least("collector.max_line_bytes", to_u64(c.max_line_bytes), 1);
    problems.at_least("collector.batch_max_bytes", to_u64(c.batch_max_bytes), 1);
    problems.at_least("collector.batch_max_wait_ms", c.batch_max_wait_ms, 1);
    problems.at_least("collector.max_in_flight", to_u64(c.max_in_flight), 1);
    if c.journal.enabled {
        if c.journal
            .command
            .first()
            .is_none_or(|p| p.trim().is_empty())
        {
            problems.add(
                "collector.journal.command",
                "must name the journalctl program to run",
            );
        }
        if c.journal.units.is_empty() && !c.journal.kernel {
            problems.add(
                "collector.journal.units",
                "names no unit and collector.journal.kernel is off: nothing would be read",
            );
        }
        problems.at_least(
            "collector.journal.batch_max_entries",
            to_u64(c.journal.batch_max_entries),
            1,
        );
    }
    problems.at_least(
        "collector.kubernetes.events_lease_secs",
        c.kubernetes.events_lease_secs,
        3,
    );
    for (key, value) in [
        (
            "events_lease_namespace",
            &c.kubernetes.events_lease_namespace,
        ),
        ("events_lease_name", &c.kubernetes.events_lease_name),
    ] {
        if c.kubernetes.events && value.trim().is_empty() {
            problems.add(
                format!("collector.kubernetes.{key}"),
                "must not be empty when collector.kubernetes.events is on",
            );
        }
    }
    if c.buffer_max_bytes < to_u64(c.batch_max_bytes) {
        problems.add(
            "collector.buffer_max_bytes",
            format!(
                "must hold at least one batch (collector.batch_max_bytes = {}), got {}",
                c.batch_max_bytes, c.buffer_max_bytes
            ),
        );
    }
    problems.at_least("collector.rescan_interval_ms", c.rescan_interval_ms, 1);
    problems.at_least("collector.failover_after_secs", c.failover_after_secs, 1);
    problems.at_least(
        "collector.stuck_ready_after_secs",
        c.stuck_ready_after_secs,
        1,
    );
    problems.at_least(
        "collector.dead_letter_max_bytes",
        c.dead_letter_max_bytes,
        4096,
    );
    problems.non_empty_entries("collector.include_namespaces", &c.include_namespaces);
    problems.non_empty_entries("collector.exclude_namespaces", &c.exclude_namespaces);
    problems.non_empty_entries("collector.include_containers", &c.include_containers);
    problems.non_empty_entries("collector.exclude_containers", &c.exclude_containers);
    for (key, labels) in [
        ("collector.include_pod_labels", &c.include_pod_labels),
        ("collector.exclude_pod_labels", &c.exclude_pod_labels),
    ] {
        for (i, selector) in labels.iter().enumerate() {
            if let Err(message) = crate::LabelSelector::parse(selector) {
                problems.add(format!("{key}.{i}"), message);
            }
        }
        if !labels.is_empty() && c.kubernetes.enabled == Some(false) {
            problems.add(
                key,
                "pod labels come from the Kubernetes API: collector.kubernetes.enabled must not be false",
            );
        }
    }
    for (i, path) in c.audit_log_paths.iter().enumerate() {
        if is_empty_path(path) {
            problems.add(
                format!("collector.audit_log_paths.{i}"),
                "must not be empty",
            );
        }
    }
    collector_line_rules(problems, c);
    problems.non_empty_entries(
        "collector.kubernetes.annotations",
        &c.kubernetes.annotations,
    );
    if c.kubernetes
        .kubeconfig
        .as_deref()
        .is_some_and(is_empty_path)
    {
        problems.add(
            "collector.kubernetes.kubeconfig",
            "must not be empty (leave it unset for the in-cluster service account)",
        );
    }
}

/// The collector's per-line rules: multiline joins, redactions (unique names, a pattern that
/// cannot match the empty string) and per-namespace rate limits.
fn collector_line_rules(problems: &mut Problems, c: &CollectorConfig) {
    for (i, rule) in c.multiline.iter().enumerate() {
        let key = format!("collector.multiline.{i}");
        if rule
            .namespace
            .as_deref()
            .is_some_and(|ns| ns.trim().is_empty())
        {
            problems.add(
                format!("{key}.namespace"),
                "must not be empty (leave it unset for every namespace)",
            );
        }
        if rule.container.trim().is_empty() {
            problems.add(format!("{key}.container"), "must not be empty");
        }
        problems.regex(
            format!("{key}.first_line_pattern"),
            &rule.first_line_pattern,
        );
        problems.at_least(format!("{key}.max_lines"), to_u64(rule.max_lines), 1);
        problems.at_least(format!("{key}.timeout_ms"), rule.timeout_ms, 1);
    }
    let mut redact_names = BTreeSet::new();
    for (i, rule) in c.redact.iter().enumerate() {
        let key = format!("collector.redact.{i}");
        if rule.name.trim().is_empty() {
            problems.add(format!("{key}.name"), "must not be empty");
        } else if !redact_names.insert(rule.name.as_str()) {
            problems.add(
                format!("{key}.name"),
                format!("`{}` is used by an earlier rule", rule.name),
            );
        }
        if let Some(regex) = problems.regex(format!("{key}.pattern"), &rule.pattern) {
            if regex.is_match("") {
                problems.add(
                    format!("{key}.pattern"),
                    "matches the empty string, so it would rewrite every message",
                );
            }
        }
    }
    for (i, limit) in c.rate_limits.iter().enumerate() {
        let key = format!("collector.rate_limits.{i}");
        if limit.namespace.trim().is_empty() {
            problems.add(format!("{key}.namespace"), "must not be empty");
        }
        problems.at_least(format!("{key}.lines_per_sec"), limit.lines_per_sec, 1);
    }
}

fn indexer(problems: &mut Problems, x: &IndexerConfig) {
    problems.at_least("indexer.commit_interval_ms", x.commit_interval_ms, 1);
    problems.at_least("indexer.split_max_docs", x.split_max_docs, 1);
    problems.at_least("indexer.split_max_age_secs", x.split_max_age_secs, 1);
    problems.at_least(
        "indexer.writer_memory_bytes",
        to_u64(x.writer_memory_bytes),
        to_u64(MIN_WRITER_MEMORY_BYTES),
    );
    problems.at_least(
        "indexer.docstore_block_bytes",
        to_u64(x.docstore_block_bytes),
        4096,
    );
    if x.docstore_block_bytes > 16 << 20 {
        problems.add(
            "indexer.docstore_block_bytes",
            "must be at most 16777216 (16 MiB): every hit decompresses a whole block",
        );
    }
    if !(1..=22).contains(&x.docstore_zstd_level) {
        problems.add("indexer.docstore_zstd_level", "must be between 1 and 22");
    }
    problems.at_least("indexer.max_body_bytes", to_u64(x.max_body_bytes), 1);
    problems.at_least(
        "indexer.max_decompressed_bytes",
        to_u64(x.max_decompressed_bytes),
        1,
    );
    problems.at_least("indexer.max_line_bytes", to_u64(x.max_line_bytes), 1);
    problems.at_least(
        "indexer.dead_letter_max_bytes",
        x.dead_letter_max_bytes,
        4096,
    );
    problems.at_least(
        "indexer.max_records_per_batch",
        to_u64(x.max_records_per_batch),
        1,
    );
    problems.at_least(
        "indexer.max_concurrent_ingest",
        to_u64(x.max_concurrent_ingest),
        1,
    );
    problems.at_least("indexer.merge_min_splits", to_u64(x.merge_min_splits), 2);
    problems.at_least("indexer.merge_max_docs", x.merge_max_docs, 1);
    problems.at_least("indexer.merge_bucket_secs", x.merge_bucket_secs, 1);
    problems.at_least("indexer.janitor_interval_secs", x.janitor_interval_secs, 1);
    problems.at_least("indexer.source_mark_ttl_secs", x.source_mark_ttl_secs, 1);
    problems.at_least(
        "indexer.audit_dedup_window",
        to_u64(x.audit_dedup_window),
        1,
    );
    problems.at_least(
        "indexer.batch_dedup_window_secs",
        x.batch_dedup_window_secs,
        60,
    );
    problems.non_empty_entries(
        "indexer.drop_unconfigured_streams",
        &x.drop_unconfigured_streams,
    );
}

fn query(problems: &mut Problems, q: &QueryConfig) {
    if q.max_limit == 0 || q.max_limit > MAX_LIMIT_CEILING {
        problems.add(
            "query.max_limit",
            format!(
                "must be between 1 and {MAX_LIMIT_CEILING}, got {}",
                q.max_limit
            ),
        );
    }
    if q.default_limit == 0 || q.default_limit > q.max_limit {
        problems.add(
            "query.default_limit",
            format!(
                "must be between 1 and query.max_limit ({}), got {}",
                q.max_limit, q.default_limit
            ),
        );
    }
    problems.at_least("query.timeout_ms", q.timeout_ms, 1);
    for (i, url) in q.indexers.iter().enumerate() {
        problems.url(format!("query.indexers.{i}"), url);
    }
    problems.at_least(
        "query.aggregation_memory_bytes",
        q.aggregation_memory_bytes,
        1,
    );
    problems.non_empty_entries("query.audit_system_users", &q.audit_system_users);
    problems.non_empty_entries("query.audit_system_groups", &q.audit_system_groups);
    for (pattern, stream) in &q.elastic_index_patterns {
        let key = format!("query.elastic_index_patterns.{pattern}");
        if pattern.trim().is_empty() || pattern.contains(',') {
            problems.add(key.clone(), "a pattern must be non-empty and hold no comma");
        }
        if let Err(error) = trawl_model::validate_stream_name(stream) {
            problems.add(key, error.to_string());
        }
    }
}

fn storage(problems: &mut Problems, s: &StorageConfig, m: &MetastoreConfig) {
    let uri = s.uri.trim();
    if !uri.is_empty() {
        match uri.split_once("://") {
            Some(("s3", rest)) if !rest.split('/').next().unwrap_or("").is_empty() => {}
            Some(("file", rest)) if rest.starts_with('/') => {}
            _ => problems.add(
                "storage.uri",
                format!("`{uri}` is neither `s3://bucket[/prefix]` nor `file:///absolute/path`"),
            ),
        }
    }
    if !s.s3.endpoint.is_empty() {
        problems.url("storage.s3.endpoint", &s.s3.endpoint);
    }
    if s.cache_max_bytes == 0 {
        problems.add("storage.cache_max_bytes", "must be at least 1");
    }
    if !(1..=256).contains(&s.range_read_concurrency) {
        problems.add("storage.range_read_concurrency", "must be 1 to 256");
    }
    let meta = m.uri.trim();
    if meta != "file" && !m.is_postgres() {
        problems.add(
            "metastore.uri",
            format!("`{meta}` is neither `file` nor `postgres://...`"),
        );
    }
    if m.is_postgres() != s.is_remote() {
        problems.add(
            "metastore.uri",
            "object storage (`storage.uri`) and a PostgreSQL metastore go together: set both or neither",
        );
    }
    if m.poll_interval_ms == 0 {
        problems.add("metastore.poll_interval_ms", "must be at least 1");
    }
}

fn alerting(problems: &mut Problems, a: &AlertingConfig) {
    for (i, url) in a.alertmanagers.iter().enumerate() {
        problems.url(format!("alerting.alertmanagers.{i}"), url);
    }
    for (i, url) in a.webhooks.iter().enumerate() {
        problems.url(format!("alerting.webhooks.{i}"), url);
    }
    if !a.external_url.is_empty() {
        problems.url("alerting.external_url", &a.external_url);
    }
    for (i, name) in a.packs.iter().enumerate() {
        if !crate::PACKS.iter().any(|(pack, _)| pack == name) {
            problems.0.push(crate::rules::unknown_pack(i, name));
        }
    }
    for (i, path) in a.rule_files.iter().enumerate() {
        if is_empty_path(path) {
            problems.add(format!("alerting.rule_files.{i}"), "must not be empty");
        }
    }
    if a.samples > MAX_SAMPLES {
        problems.add(
            "alerting.samples",
            format!("must be at most {MAX_SAMPLES}, got {}", a.samples),
        );
    }
    problems.at_least(
        "alerting.max_alerts_per_rule",
        a.max_alerts_per_rule as u64,
        1,
    );
    problems.at_least("alerting.resend_interval_secs", a.resend_interval_secs, 1);
    problems.at_least("alerting.delivery_timeout_ms", a.delivery_timeout_ms, 1);
    problems.at_least("alerting.max_retry_backoff_ms", a.max_retry_backoff_ms, 1);
    problems.at_least("alerting.reload_check_ms", a.reload_check_ms, 10);
    problems.at_least("alerting.pack_interval_secs", a.pack_interval_secs, 1);
    problems.at_least("alerting.lease_secs", a.lease_secs, 3);
}

fn stream(problems: &mut Problems, name: &str, s: &StreamConfig) {
    let key = format!("streams.{name}");
    if let Err(error) = trawl_model::validate_stream_name(name) {
        problems.add(key.clone(), error.to_string());
    }
    if let Some(secs) = s.retention_max_age_secs {
        problems.at_least(format!("{key}.retention_max_age_secs"), secs, 1);
    }
    if let Some(bytes) = s.retention_max_bytes {
        problems.at_least(format!("{key}.retention_max_bytes"), bytes, 1);
    }
    if let Some(ms) = s.commit_interval_ms {
        problems.at_least(format!("{key}.commit_interval_ms"), ms, 1);
    }
    if BUILTIN_STREAMS.contains(&name) {
        let defaults = StreamConfig::default();
        let fixed = [
            (
                "timestamp_field",
                s.timestamp_field != defaults.timestamp_field,
            ),
            (
                "timestamp_format",
                s.timestamp_format != defaults.timestamp_format,
            ),
            ("keyword_fields", !s.keyword_fields.is_empty()),
            ("numeric_fields", !s.numeric_fields.is_empty()),
            ("default_fields", !s.default_fields.is_empty()),
        ];
        for (field, changed) in fixed {
            if changed {
                problems.add(
                    format!("{key}.{field}"),
                    "the schema of a built-in stream is fixed; only retention, \
                     commit_interval_ms and unwrap_agent_json may be set",
                );
            }
        }
        return;
    }
    if s.timestamp_field.trim().is_empty() {
        problems.add(format!("{key}.timestamp_field"), "must not be empty");
    }
    problems.non_empty_entries(&format!("{key}.keyword_fields"), &s.keyword_fields);
    problems.non_empty_entries(&format!("{key}.numeric_fields"), &s.numeric_fields);
    problems.non_empty_entries(&format!("{key}.default_fields"), &s.default_fields);
    for field in &s.keyword_fields {
        if s.numeric_fields.contains(field) {
            problems.add(
                format!("{key}.numeric_fields"),
                format!("`{field}` is also in keyword_fields; a field has one type"),
            );
        }
    }
}

fn auth(problems: &mut Problems, a: &AuthConfig) {
    let mut names = BTreeSet::new();
    let mut hashes = BTreeSet::new();
    for (i, token) in a.tokens.iter().enumerate() {
        let key = format!("auth.tokens.{i}");
        if token.name.trim().is_empty() {
            problems.add(format!("{key}.name"), "must not be empty");
        } else if !names.insert(token.name.as_str()) {
            problems.add(
                format!("{key}.name"),
                format!("`{}` is used by an earlier token", token.name),
            );
        }
        if !is_sha256_hash(&token.hash) {
            problems.add(
                format!("{key}.hash"),
                "must be `sha256:<salt hex>:<64 hex digits>` as printed by `trawl token hash`, \
                 or `sha256:<64 hex digits>` (printf %s \"$TOKEN\" | sha256sum)",
            );
        } else if !hashes.insert(token.hash.as_str()) {
            problems.add(format!("{key}.hash"), "is the hash of an earlier token");
        }
        problems.non_empty_entries(&format!("{key}.namespaces"), &token.namespaces);
    }
    if let Some(tls) = &a.tls {
        if is_empty_path(&tls.cert_path) {
            problems.add("auth.tls.cert_path", "must not be empty");
        }
        if is_empty_path(&tls.key_path) {
            problems.add("auth.tls.key_path", "must not be empty");
        }
        if tls.client_ca_path.as_deref().is_some_and(is_empty_path) {
            problems.add(
                "auth.tls.client_ca_path",
                "must not be empty (leave it unset to not ask for client certificates)",
            );
        }
    }
}

/// `sha256:` + 64 lowercase hex digits (SHA-256 of the token), or `sha256:` + salt (an even,
/// non-zero number of lowercase hex digits) + `:` + 64 lowercase hex digits (SHA-256 of salt and
/// token), as `trawl token hash` prints.
fn is_sha256_hash(hash: &str) -> bool {
    let is_hex = |text: &str| {
        text.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    let Some(rest) = hash.strip_prefix("sha256:") else {
        return false;
    };
    let digest = match rest.split_once(':') {
        Some((salt, digest)) => {
            if salt.is_empty() || !salt.len().is_multiple_of(2) || !is_hex(salt) {
                return false;
            }
            digest
        }
        None => rest,
    };
    digest.len() == 64 && is_hex(digest)
}

#[cfg(test)]
mod tests {
    use super::{check_base_url, is_sha256_hash};

    #[test]
    fn base_urls() {
        for good in [
            "http://trawl-indexer:7400",
            "https://indexer.example.com",
            "http://127.0.0.1:7400/",
            "http://[::1]:7400",
            "https://indexer/prefix",
        ] {
            assert_eq!(check_base_url(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "trawl-indexer:7400",
            "ftp://indexer",
            "http://",
            "http://:7400",
            "http://indexer:99999",
            "http://indexer:port",
            "http://[::1",
            "http://in dexer:7400",
            " http://indexer",
            "http://indexer/?a=b",
        ] {
            assert!(check_base_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn token_hash_formats() {
        let digest = "ab".repeat(32);
        assert!(is_sha256_hash(&format!("sha256:{digest}")));
        assert!(is_sha256_hash(&format!("sha256:0f1e:{digest}")));
        for bad in [
            String::new(),
            digest.clone(),
            format!("sha256:{}", "AB".repeat(32)),
            format!("sha256:{}", &digest[1..]),
            format!("sha256::{digest}"),
            format!("sha256:abc:{digest}"),
            format!("sha256:zz:{digest}"),
            format!("sha256:00:{digest}:00"),
            format!("md5:{digest}"),
        ] {
            assert!(!is_sha256_hash(&bad), "{bad}");
        }
    }
}
