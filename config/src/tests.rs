//! Loading, precedence, error messages and validation, end to end through `Config::load`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use figment::value::Value;

use crate::*;

const EXAMPLE: &str = include_str!("../example.toml");

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Writes `text` to `trawl.toml` in a fresh directory; keep the directory alive while used.
fn file(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trawl.toml");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

fn load_text(text: &str, vars: &[(&str, &str)]) -> Result<Config> {
    let (_dir, path) = file(text);
    Config::load(Some(&path), &env(vars))
}

fn load_message(text: &str, vars: &[(&str, &str)]) -> (String, PathBuf) {
    let (_dir, path) = file(text);
    let error = Config::load(Some(&path), &env(vars)).unwrap_err();
    assert!(matches!(error, Error::Load { .. }), "{error:?}");
    (error.to_string(), path)
}

/// The keys of the problems in an `Error::Invalid`.
fn problem_keys(result: Result<Config>) -> Vec<String> {
    match result {
        Err(Error::Invalid { problems }) => problems.into_iter().map(|p| p.key).collect(),
        other => panic!("expected Error::Invalid, got {other:?}"),
    }
}

#[test]
fn defaults_are_the_documented_ones() {
    let config = Config::default();
    assert_eq!(config.cluster, "");
    assert_eq!(config.data_dir, PathBuf::from("./trawl-data"));
    assert_eq!(config.listen, "127.0.0.1:7400");
    assert!(config.streams.is_empty());

    let c = &config.collector;
    assert!(c.enabled);
    assert_eq!(c.pods_dir, PathBuf::from("/var/log/pods"));
    assert_eq!(c.node_name, "");
    assert_eq!(c.indexer_url, "");
    assert_eq!(c.token, "");
    assert_eq!(c.data_dir, None);
    assert_eq!(c.max_line_bytes, 1 << 20);
    assert_eq!(c.batch_max_bytes, 1 << 20);
    assert_eq!(c.batch_max_wait_ms, 200);
    assert_eq!(c.max_in_flight, 2);
    assert_eq!(c.buffer_max_bytes, 1 << 30);
    assert_eq!(c.rescan_interval_ms, 1000);
    assert_eq!(c.stuck_ready_after_secs, 300);
    assert!(c.indexer_urls.is_empty());
    assert_eq!(c.failover_after_secs, 30);
    assert_eq!(c.dead_letter_max_bytes, 64 << 20);
    assert!(c.include_namespaces.is_empty() && c.exclude_namespaces.is_empty());
    assert!(c.include_containers.is_empty() && c.exclude_containers.is_empty());
    assert!(c.include_pod_labels.is_empty() && c.exclude_pod_labels.is_empty());
    assert!(c.audit_log_paths.is_empty());
    assert!(c.audit_webhook);
    assert!(c.multiline.is_empty() && c.redact.is_empty() && c.rate_limits.is_empty());
    assert_eq!(c.drop_policy, DropPolicy::Block);
    assert_eq!(
        c.kubernetes,
        KubernetesConfig {
            enabled: None,
            kubeconfig: None,
            metadata_grace_secs: 300,
            annotations: vec![],
            namespace_labels: false,
            metadata_wait_ms: 5000,
            events: false,
            events_lease_namespace: "default".into(),
            events_lease_name: "trawl-events".into(),
            events_lease_secs: 15,
            in_cluster: false,
        }
    );
    assert!(!c.journal.enabled && c.journal.kernel);
    assert_eq!(c.journal.units, ["kubelet.service", "containerd.service"]);
    assert_eq!(c.journal.command, ["journalctl"]);
    assert_eq!(c.journal.batch_max_entries, 1000);

    let x = &config.indexer;
    assert_eq!(x.commit_interval_ms, 1000);
    assert_eq!(x.split_max_docs, 5_000_000);
    assert_eq!(x.split_max_age_secs, 600);
    assert_eq!(x.writer_memory_bytes, 128 << 20);
    assert_eq!(x.max_body_bytes, 32 << 20);
    assert_eq!(x.max_decompressed_bytes, 128 << 20);
    assert_eq!(x.max_line_bytes, 4 << 20);
    assert_eq!(x.max_records_per_batch, 100_000);
    assert_eq!(x.max_concurrent_ingest, 4);
    assert_eq!(x.ingest_wait_ms, 5000);
    assert_eq!(x.merge_min_splits, 8);
    assert_eq!(x.merge_max_docs, 20_000_000);
    assert_eq!(x.merge_bucket_secs, 86_400);
    assert_eq!(x.janitor_interval_secs, 60);
    assert_eq!(x.source_mark_ttl_secs, 604_800);
    assert_eq!(x.audit_dedup_window, 1_000_000);
    assert!(!x.auto_create_streams);
    assert_eq!(x.batch_dedup_window_secs, 3600);
    assert!(x.drop_unconfigured_streams.is_empty());

    let q = &config.query;
    assert_eq!(q.default_limit, 100);
    assert_eq!(q.max_limit, 10_000);
    assert_eq!(q.timeout_ms, 30_000);
    assert!(q.indexers.is_empty());
    assert_eq!(q.aggregation_memory_bytes, 500_000_000);
    assert!(q
        .audit_system_users
        .contains(&"system:kube-scheduler".to_string()));
    assert_eq!(
        q.audit_system_groups,
        vec!["system:nodes", "system:serviceaccounts:kube-system"]
    );

    let s = StreamConfig::default();
    assert_eq!(s.retention_max_age_secs, None);
    assert_eq!(s.retention_max_bytes, None);
    assert_eq!(s.commit_interval_ms, None);
    assert_eq!(s.timestamp_field, "timestamp");
    assert_eq!(s.timestamp_format, TimestampFormat::Rfc3339);

    assert!(!config.auth.enabled());
    assert_eq!(config.auth.tls, None);
    config.validate().unwrap();
}

#[test]
fn nothing_to_load_gives_the_defaults() {
    assert_eq!(
        Config::load(None, &BTreeMap::new()).unwrap(),
        Config::default()
    );
}

#[test]
fn file_then_env_then_flags() {
    let (_dir, path) = file(
        r#"
        cluster = "from-file"
        data_dir = "/file/data"
        listen = "127.0.0.1:9000"
        [collector]
        pods_dir = "/file/pods"
        batch_max_wait_ms = 50
        "#,
    );
    let vars = env(&[
        ("TRAWL_DATA_DIR", "/env/data"),
        ("TRAWL_LISTEN", "0.0.0.0:9001"),
        ("TRAWL_COLLECTOR__PODS_DIR", "/env/pods"),
    ]);
    let mut config = Config::load(Some(&path), &vars).unwrap();
    // The file wins over defaults where the environment is silent.
    assert_eq!(config.cluster, "from-file");
    assert_eq!(config.collector.batch_max_wait_ms, 50);
    assert_eq!(config.collector.max_in_flight, 2);
    // The environment wins over the file.
    assert_eq!(config.data_dir, PathBuf::from("/env/data"));
    assert_eq!(config.listen, "0.0.0.0:9001");
    assert_eq!(config.collector.pods_dir, PathBuf::from("/env/pods"));
    // Flags win over the environment; `None` leaves a key alone.
    config
        .apply_flags(Some(PathBuf::from("/flag/data")), None)
        .unwrap();
    assert_eq!(config.data_dir, PathBuf::from("/flag/data"));
    assert_eq!(config.listen, "0.0.0.0:9001");
    config
        .apply_flags(None, Some("127.0.0.1:0".to_string()))
        .unwrap();
    assert_eq!(config.listen, "127.0.0.1:0");
    assert_eq!(config.data_dir, PathBuf::from("/flag/data"));
}

#[test]
fn bad_listen_flag_is_invalid() {
    let mut config = Config::default();
    let error = config
        .apply_flags(None, Some("localhost".to_string()))
        .unwrap_err();
    assert!(error.to_string().contains("`listen`"), "{error}");
}

#[test]
fn unknown_key_in_file_names_key_and_file() {
    let (message, path) = load_message("[collector]\npods_dri = \"/x\"\n", &[]);
    assert_eq!(
        message,
        format!(
            "unknown key `collector.pods_dri` (did you mean `pods_dir`?) in TOML file {}",
            path.display()
        )
    );
}

#[test]
fn unknown_top_level_key_in_file() {
    let (message, path) = load_message("datadir = \"/x\"\n", &[]);
    assert_eq!(
        message,
        format!(
            "unknown key `datadir` (did you mean `data_dir`?) in TOML file {}",
            path.display()
        )
    );
}

#[test]
fn unknown_key_deep_in_file() {
    let (message, path) = load_message(
        "[[collector.redact]]\nname = \"a\"\npattern = \"x\"\nreplace = \"y\"\n",
        &[],
    );
    assert_eq!(
        message,
        format!(
            "unknown key `collector.redact.0.replace` (did you mean `replacement`?) in TOML file {}",
            path.display()
        )
    );
    let (message, _) = load_message("[streams.logs]\nretention_days = 3\n", &[]);
    assert!(
        message.starts_with("unknown key `streams.logs.retention_days` in TOML file"),
        "{message}"
    );
}

#[test]
fn unknown_key_in_env_names_the_variable() {
    let error = Config::load(None, &env(&[("TRAWL_COLLECTOR__PODS_DRI", "/x")])).unwrap_err();
    assert_eq!(
        error.to_string(),
        "unknown key `collector.pods_dri` (did you mean `pods_dir`?) \
         in environment variable TRAWL_COLLECTOR__PODS_DRI"
    );
    let error = Config::load(None, &env(&[("TRAWL_NOPE", "1")])).unwrap_err();
    assert_eq!(
        error.to_string(),
        "unknown key `nope` in environment variable TRAWL_NOPE"
    );
}

#[test]
fn malformed_env_name_is_an_error_naming_it() {
    let error = Config::load(None, &env(&[("TRAWL_COLLECTOR__", "x")])).unwrap_err();
    assert_eq!(
        error.to_string(),
        "malformed override name, expected TRAWL_<KEY> or TRAWL_<SECTION>__<KEY> \
         in environment variable TRAWL_COLLECTOR__"
    );
}

#[test]
fn wrong_type_names_key_and_source() {
    let error =
        Config::load(None, &env(&[("TRAWL_INDEXER__COMMIT_INTERVAL_MS", "soon")])).unwrap_err();
    assert_eq!(
        error.to_string(),
        "`indexer.commit_interval_ms`: invalid type: found string \"soon\", expected u64 \
         in environment variable TRAWL_INDEXER__COMMIT_INTERVAL_MS"
    );
    let (message, path) = load_message("[collector]\ndrop_policy = \"drop_oldest\"\n", &[]);
    assert_eq!(
        message,
        format!(
            "`collector.drop_policy`: unknown value `drop_oldest`, expected \
             `block` or `drop_newest` in TOML file {}",
            path.display()
        )
    );
}

#[test]
fn missing_required_key_names_it() {
    let (message, path) = load_message("[[collector.redact]]\nname = \"a\"\n", &[]);
    assert_eq!(
        message,
        format!(
            "missing key `collector.redact.0.pattern` in TOML file {}",
            path.display()
        )
    );
}

#[test]
fn several_load_errors_are_one_line() {
    let error = Config::load(None, &env(&[("TRAWL_A", "1"), ("TRAWL_B", "2")])).unwrap_err();
    let message = error.to_string();
    assert!(!message.contains('\n'), "{message}");
    assert!(message.contains("TRAWL_A"), "{message}");
}

#[test]
fn toml_syntax_error_is_one_line_naming_the_file() {
    let (message, path) = load_message("[collector\npods_dir = 1\n", &[]);
    assert!(!message.contains('\n'), "{message}");
    assert!(
        message.starts_with("TOML parse error at line 1"),
        "{message}"
    );
    assert!(
        message.ends_with(&format!("in TOML file {}", path.display())),
        "{message}"
    );
}

#[test]
fn missing_file_is_a_read_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("absent.toml");
    let error = Config::load(Some(&path), &BTreeMap::new()).unwrap_err();
    assert!(matches!(error, Error::Read { .. }), "{error:?}");
    assert!(
        error
            .to_string()
            .starts_with(&format!("cannot read config file {}: ", path.display())),
        "{error}"
    );
}

#[test]
fn client_and_log_variables_are_ignored() {
    let vars = env(&[
        ("TRAWL_URL", "http://trawl:7400"),
        ("TRAWL_TOKEN", "secret"),
        ("TRAWL_LOG", "debug"),
        ("TRAWL_CONFIG", "/etc/trawl/trawl.toml"),
        ("PATH", "/usr/bin"),
    ]);
    assert_eq!(Config::load(None, &vars).unwrap(), Config::default());
}

#[test]
fn env_values_are_typed_like_the_key() {
    let config = Config::load(
        None,
        &env(&[
            ("TRAWL_CLUSTER", "2024"),
            ("TRAWL_COLLECTOR__TOKEN", "12345"),
            ("TRAWL_COLLECTOR__ENABLED", "false"),
            ("TRAWL_COLLECTOR__MAX_IN_FLIGHT", "8"),
            ("TRAWL_COLLECTOR__DATA_DIR", "/var/lib/trawl"),
            ("TRAWL_COLLECTOR__KUBERNETES__ENABLED", "true"),
            ("TRAWL_COLLECTOR__INCLUDE_POD_LABELS", "[app=web, tier=db]"),
            ("TRAWL_COLLECTOR__DROP_POLICY", "drop_newest"),
            ("TRAWL_QUERY__INDEXERS", "[http://a:7400,http://b:7400]"),
            (
                "TRAWL_COLLECTOR__RATE_LIMITS",
                "[{namespace=noisy, lines_per_sec=10}]",
            ),
        ]),
    )
    .unwrap();
    assert_eq!(config.cluster, "2024");
    assert_eq!(config.collector.token, "12345");
    assert!(!config.collector.enabled);
    assert_eq!(config.collector.max_in_flight, 8);
    assert_eq!(
        config.collector.data_dir,
        Some(PathBuf::from("/var/lib/trawl"))
    );
    assert_eq!(config.collector.kubernetes.enabled, Some(true));
    assert_eq!(
        config.collector.include_pod_labels,
        vec!["app=web", "tier=db"]
    );
    assert_eq!(config.collector.drop_policy, DropPolicy::DropNewest);
    assert_eq!(
        config.query.indexers,
        vec!["http://a:7400", "http://b:7400"]
    );
    assert_eq!(
        config.collector.rate_limits,
        vec![RateLimit {
            namespace: "noisy".to_string(),
            lines_per_sec: 10,
            burst: 0,
        }]
    );
    assert_eq!(config.collector.rate_limits[0].effective_burst(), 10);
}

#[test]
fn nested_stream_override_via_env_merges_with_the_file() {
    let config = load_text(
        "[streams.logs]\ncommit_interval_ms = 500\n\n[streams.app-events]\ntimestamp_format = \"unix_ms\"\n",
        &[
            ("TRAWL_STREAMS__LOGS__RETENTION_MAX_AGE_SECS", "3600"),
            ("TRAWL_STREAMS__AUDIT__RETENTION_MAX_BYTES", "1000000"),
            ("TRAWL_STREAMS__APP-EVENTS__TIMESTAMP_FIELD", "ts"),
        ],
    )
    .unwrap();
    let logs = config.stream("logs");
    assert_eq!(logs.retention_max_age_secs, Some(3600));
    assert_eq!(logs.commit_interval_ms, Some(500));
    assert_eq!(config.stream("audit").retention_max_bytes, Some(1_000_000));
    let app = config.stream("app-events");
    assert_eq!(app.timestamp_field, "ts");
    assert_eq!(app.timestamp_format, TimestampFormat::UnixMs);
    assert_eq!(config.effective_commit_interval_ms("logs"), 500);
    assert_eq!(config.effective_commit_interval_ms("audit"), 1000);
    assert_eq!(config.effective_commit_interval_ms("undeclared"), 1000);
    assert_eq!(config.stream("undeclared"), StreamConfig::default());
}

#[test]
fn collector_data_dir_defaults_under_data_dir() {
    let mut config = Config::default();
    assert_eq!(
        config.collector_data_dir(),
        PathBuf::from("./trawl-data/collector")
    );
    config.collector.data_dir = Some(PathBuf::from("/state"));
    assert_eq!(config.collector_data_dir(), PathBuf::from("/state"));
}

#[test]
fn bad_listen_is_invalid() {
    let result = load_text("listen = \"localhost:7400\"\n", &[]);
    assert_eq!(problem_keys(result), vec!["listen"]);
    let result = Config::load(None, &env(&[("TRAWL_LISTEN", "127.0.0.1")]));
    let error = result.unwrap_err();
    assert_eq!(
        error.to_string(),
        "invalid configuration: `listen`: `127.0.0.1` is not an ip:port address \
         (invalid socket address syntax)"
    );
}

#[test]
fn bad_regexes_are_invalid() {
    let result = load_text(
        r#"
        [[collector.multiline]]
        container = "*"
        first_line_pattern = "^(unclosed"

        [[collector.redact]]
        name = "ok"
        pattern = "secret=\\S+"

        [[collector.redact]]
        name = "bad"
        pattern = "[z-a]"

        [[collector.redact]]
        name = "empty-match"
        pattern = "x*"
        "#,
        &[],
    );
    assert_eq!(
        problem_keys(result),
        vec![
            "collector.multiline.0.first_line_pattern",
            "collector.redact.1.pattern",
            "collector.redact.2.pattern",
        ]
    );
}

#[test]
fn regex_error_message_is_one_line() {
    let error = load_text(
        "[[collector.redact]]\nname = \"bad\"\npattern = \"(a\"\n",
        &[],
    )
    .unwrap_err();
    let message = error.to_string();
    assert!(!message.contains('\n'), "{message}");
    assert_eq!(
        message,
        "invalid configuration: `collector.redact.0.pattern`: invalid regex `(a`: unclosed group"
    );
}

#[test]
fn every_broken_rule_is_reported_with_its_key() {
    let result = load_text(
        r#"
        [collector]
        indexer_url = "trawl-indexer:7400"
        batch_max_wait_ms = 0
        buffer_max_bytes = 10
        include_pod_labels = ["app=we b"]
        include_namespaces = [""]
        kubernetes = { enabled = false }

        [[collector.rate_limits]]
        namespace = "x"
        lines_per_sec = 0

        [indexer]
        commit_interval_ms = 0
        writer_memory_bytes = 1000
        merge_min_splits = 1

        [query]
        max_limit = 20000
        default_limit = 0
        indexers = ["http://ok:7400", "ftp://no"]

        [streams.Bad]
        [streams.logs]
        keyword_fields = ["x"]
        retention_max_age_secs = 0
        [streams.events]
        keyword_fields = ["a"]
        numeric_fields = ["a"]
        timestamp_field = ""

        [[auth.tokens]]
        name = "t1"
        hash = "sha256:ABC"
        role = "read"

        [[auth.tokens]]
        name = "t1"
        hash = "sha256:0000000000000000000000000000000000000000000000000000000000000000"
        role = "admin"
        "#,
        &[],
    );
    assert_eq!(
        problem_keys(result),
        vec![
            "collector.indexer_url",
            "collector.batch_max_wait_ms",
            "collector.buffer_max_bytes",
            "collector.include_namespaces.0",
            "collector.include_pod_labels.0",
            "collector.include_pod_labels",
            "collector.rate_limits.0.lines_per_sec",
            "indexer.commit_interval_ms",
            "indexer.writer_memory_bytes",
            "indexer.merge_min_splits",
            "query.max_limit",
            "query.default_limit",
            "query.indexers.1",
            "streams.Bad",
            "streams.events.timestamp_field",
            "streams.events.numeric_fields",
            "streams.logs.retention_max_age_secs",
            "streams.logs.keyword_fields",
            "auth.tokens.0.hash",
            "auth.tokens.1.name",
        ]
    );
}

#[test]
fn a_full_valid_file_loads() {
    let hash = format!("sha256:{}", "ab".repeat(32));
    let config = load_text(
        &format!(
            r#"
            cluster = "prod-eu"
            [collector]
            include_pod_labels = ["app=web"]
            [collector.kubernetes]
            enabled = true
            annotations = ["trawl.io/team"]
            [[collector.multiline]]
            namespace = "payments"
            container = "*"
            first_line_pattern = '^\d{{4}}-'
            [[auth.tokens]]
            name = "collector"
            hash = "{hash}"
            role = "ingest"
            [[auth.tokens]]
            name = "alice"
            hash = "sha256:{alice}"
            role = "read"
            namespaces = ["payments"]
            [auth.tls]
            cert_path = "/tls/tls.crt"
            key_path = "/tls/tls.key"
            "#,
            alice = "cd".repeat(32)
        ),
        &[],
    )
    .unwrap();
    assert_eq!(config.cluster, "prod-eu");
    assert_eq!(
        config.collector.multiline,
        vec![MultilineRule {
            namespace: Some("payments".to_string()),
            container: "*".to_string(),
            first_line_pattern: r"^\d{4}-".to_string(),
            max_lines: 500,
            timeout_ms: 1000,
        }]
    );
    assert!(config.auth.enabled());
    assert_eq!(config.auth.tokens[0].role, Role::Ingest);
    assert_eq!(config.auth.tokens[1].namespaces, vec!["payments"]);
    assert_eq!(
        config.auth.tls,
        Some(TlsConfig {
            cert_path: PathBuf::from("/tls/tls.crt"),
            key_path: PathBuf::from("/tls/tls.key"),
            client_ca_path: None,
        })
    );
}

#[test]
fn roles_allow_their_own_work_and_admin_everything() {
    assert!(Role::Ingest.allows(Role::Ingest));
    assert!(!Role::Ingest.allows(Role::Read));
    assert!(!Role::Read.allows(Role::Ingest));
    assert!(!Role::Read.allows(Role::Admin));
    assert!(Role::Admin.allows(Role::Ingest));
    assert!(Role::Admin.allows(Role::Read));
}

#[test]
fn check_file_loads_and_validates() {
    let (_dir, path) = file("listen = \"127.0.0.1:0\"\n");
    assert_eq!(
        check_file(&path, &BTreeMap::new(), None).unwrap().listen,
        "127.0.0.1:0"
    );
    let (_dir, path) = file("[query]\nmax_limit = 0\n");
    assert_eq!(
        problem_keys(check_file(&path, &BTreeMap::new(), None)),
        vec!["query.max_limit", "query.default_limit"]
    );
}

/// A configuration that cannot work for the role it starts is refused, naming the key, with
/// every other problem in the same answer; the other roles take it.
#[test]
fn roles_refuse_what_cannot_work_for_them() {
    let empty = Config::default();
    let keys = |result: Result<()>| match result {
        Err(Error::Invalid { problems }) => problems.into_iter().map(|p| p.key).collect(),
        Ok(()) => Vec::<String>::new(),
        Err(other) => panic!("{other:?}"),
    };
    assert_eq!(
        keys(empty.validate_for(ServerRole::Collector)),
        vec!["collector.indexer_url"]
    );
    assert_eq!(
        keys(empty.validate_for(ServerRole::Searcher)),
        vec!["query.indexers"]
    );
    assert!(empty.validate_for(ServerRole::Standalone).is_ok());
    assert!(empty.validate_for(ServerRole::Indexer).is_ok());

    let mut ok = Config::default();
    ok.collector.indexer_url = "http://trawl-indexer:7400".into();
    ok.query.indexers = vec!["https://trawl-indexer-0.trawl-indexer:7400".into()];
    assert!(ok.validate_for(ServerRole::Collector).is_ok());
    assert!(ok.validate_for(ServerRole::Searcher).is_ok());

    // Several indexers instead of one; not both, each a URL, a failover after a second or more.
    let mut several = Config::default();
    several.collector.indexer_urls = vec!["http://i-0:7400".into(), "http://i-1:7400".into()];
    assert!(several.validate_for(ServerRole::Collector).is_ok());
    several.collector.indexer_url = "http://i-0:7400".into();
    several.collector.indexer_urls.push("i-2:7400".into());
    several.collector.failover_after_secs = 0;
    assert_eq!(
        keys(several.validate_for(ServerRole::Collector)),
        vec![
            "collector.indexer_urls",
            "collector.indexer_urls.2",
            "collector.failover_after_secs"
        ]
    );

    let (_dir, path) = file("[collector]\nmax_in_flight = 0\n");
    let message = check_file(&path, &BTreeMap::new(), Some(ServerRole::Collector))
        .unwrap_err()
        .to_string();
    assert!(message.contains("`collector.max_in_flight`"), "{message}");
    assert!(
        message.contains("`collector.indexer_url`: `trawl collector` needs the indexer"),
        "{message}"
    );
    assert_eq!("collector".parse(), Ok(ServerRole::Collector));
    assert!("collecter".parse::<ServerRole>().is_err());
}

#[test]
fn indexer_urls_whose_host_does_not_parse_are_refused() {
    for (url, why) in [
        ("http://:7400", "empty host"),
        ("http://trawl-indexer:74000", "invalid port number"),
        ("tcp://trawl-indexer:7400", "scheme `tcp`"),
        ("trawl-indexer:7400", "scheme `trawl-indexer`"),
    ] {
        let message = load_text("", &[("TRAWL_COLLECTOR__INDEXER_URL", url)])
            .unwrap_err()
            .to_string();
        assert_eq!(
            message,
            format!(
                "invalid configuration: `collector.indexer_url`: `{url}` is not an http:// or \
                 https:// URL with a host: {why}"
            )
        );
    }
}

#[test]
fn stuck_and_dead_letter_keys_are_validated_and_overridable() {
    let config = load_text(
        "[collector]\nstuck_ready_after_secs = 30\n",
        &[("TRAWL_COLLECTOR__DEAD_LETTER_MAX_BYTES", "1048576")],
    )
    .unwrap();
    assert_eq!(config.collector.stuck_ready_after_secs, 30);
    assert_eq!(config.collector.dead_letter_max_bytes, 1 << 20);
    assert_eq!(
        problem_keys(load_text(
            "[collector]\nstuck_ready_after_secs = 0\ndead_letter_max_bytes = 100\n",
            &[]
        )),
        vec![
            "collector.stuck_ready_after_secs",
            "collector.dead_letter_max_bytes"
        ]
    );
}

fn example_path() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/example.toml"))
}

#[test]
fn example_toml_loads_as_the_defaults() {
    let config = check_file(example_path(), &BTreeMap::new(), None).unwrap();
    assert_eq!(config, Config::default());
}

/// Uncommenting every `# ` line (the defaults) must load and change nothing but declaring
/// `streams.logs`, so the documented defaults are the real ones.
#[test]
fn example_toml_defaults_are_the_real_defaults() {
    let uncommented: String = EXAMPLE
        .lines()
        .map(|line| line.strip_prefix("# ").unwrap_or(line))
        .collect::<Vec<_>>()
        .join("\n");
    let config = load_text(&uncommented, &[]).unwrap();
    let mut expected = Config::default();
    expected
        .streams
        .insert("logs".to_string(), StreamConfig::default());
    assert_eq!(config, expected);
}

fn collect_keys(value: &Value, into: &mut Vec<String>) {
    if let Value::Dict(_, dict) = value {
        for (key, child) in dict {
            into.push(key.clone());
            collect_keys(child, into);
        }
    }
}

#[test]
fn example_toml_documents_every_key() {
    let mut keys = Vec::new();
    for value in [
        Value::serialize(Config::default()),
        Value::serialize(StreamConfig::default()),
        Value::serialize(MultilineRule {
            namespace: None,
            container: String::new(),
            first_line_pattern: String::new(),
            max_lines: 1,
            timeout_ms: 1,
        }),
        Value::serialize(RedactRule {
            name: String::new(),
            pattern: String::new(),
            replacement: String::new(),
        }),
        Value::serialize(RateLimit {
            namespace: String::new(),
            lines_per_sec: 1,
            burst: 1,
        }),
        Value::serialize(TokenConfig {
            name: String::new(),
            hash: String::new(),
            role: Role::Read,
            namespaces: vec![],
            clusters: vec![],
        }),
        Value::serialize(TlsConfig {
            cert_path: PathBuf::new(),
            key_path: PathBuf::new(),
            client_ca_path: None,
        }),
        Value::serialize(crate::RuleTuning {
            enabled: Some(true),
            ..crate::RuleTuning::default()
        }),
    ] {
        collect_keys(&value.unwrap(), &mut keys);
    }
    let sections = [
        "collector",
        "kubernetes",
        "journal",
        "indexer",
        "query",
        "streams",
        "auth",
        "multiline",
        "redact",
        "rate_limits",
        "tokens",
        "tls",
        "alerting",
        "tune",
        "storage",
        "s3",
        "metastore",
    ];
    // The entries of a table-valued key (`query.elastic_index_patterns`) are data, not keys.
    let table_entries = QueryConfig::default().elastic_index_patterns;
    let missing: Vec<&String> = keys
        .iter()
        .filter(|key| !sections.contains(&key.as_str()))
        .filter(|key| !table_entries.contains_key(key.as_str()))
        .filter(|key| {
            !EXAMPLE.contains(&format!("# {key} = ")) && !EXAMPLE.contains(&format!("## {key} = "))
        })
        .collect();
    assert!(missing.is_empty(), "undocumented keys: {missing:?}");
    for section in [
        "# [collector]",
        "# [collector.kubernetes]",
        "# [collector.journal]",
        "# [indexer]",
        "# [query]",
        "# [streams.logs]",
        "# [auth]",
        "## [[collector.multiline]]",
        "## [[collector.redact]]",
        "## [[collector.rate_limits]]",
        "## [[auth.tokens]]",
        "## [auth.tls]",
        "# [alerting]",
        "## [alerting.tune.K8sExecIntoPod]",
    ] {
        assert!(EXAMPLE.contains(section), "{section} not in example.toml");
    }
}

#[test]
fn kubernetes_metadata_is_on_in_a_cluster_unless_configured() {
    let in_cluster =
        |name: &str| (name == "KUBERNETES_SERVICE_HOST").then(|| "10.0.0.1".to_string());
    let outside = |_: &str| None;
    let blank = |_: &str| Some(" ".to_string());
    let watched = |kubernetes: KubernetesConfig, env: &dyn Fn(&str) -> Option<String>| {
        let mut collector = CollectorConfig {
            kubernetes,
            ..CollectorConfig::default()
        };
        collector.resolve_host(env);
        collector.kubernetes.watch_enabled()
    };
    let k = KubernetesConfig::default;
    assert!(watched(k(), &in_cluster));
    assert!(!watched(k(), &outside));
    assert!(!watched(k(), &blank));
    let with_kubeconfig = || KubernetesConfig {
        kubeconfig: Some(PathBuf::from("/etc/kubeconfig")),
        ..KubernetesConfig::default()
    };
    assert!(watched(with_kubeconfig(), &outside));
    assert!(with_kubeconfig().watch_enabled());
    let off = KubernetesConfig {
        enabled: Some(false),
        ..KubernetesConfig::default()
    };
    assert!(!watched(off, &in_cluster));
    let on = KubernetesConfig {
        enabled: Some(true),
        ..KubernetesConfig::default()
    };
    assert!(watched(on, &outside));
}

#[test]
fn node_name_comes_from_node_name_when_not_configured() {
    let env: BTreeMap<String, String> = [("NODE_NAME".to_string(), " node-7 ".to_string())].into();
    let config = Config::load(None, &env).unwrap();
    assert_eq!(config.collector.node_name, "node-7");
    let mut collector = CollectorConfig {
        node_name: "configured".to_string(),
        ..CollectorConfig::default()
    };
    collector.resolve_host(|name| env.get(name).cloned());
    assert_eq!(collector.node_name, "configured");
    let mut collector = CollectorConfig::default();
    collector.resolve_host(|_| Some("  ".to_string()));
    assert_eq!(collector.node_name, "");
}

#[test]
fn pod_label_selectors_are_validated() {
    let config = load_text(
        r#"
        [collector]
        include_pod_labels = ["app=web,tier!=debug", "team"]
        exclude_pod_labels = ["!trawl.io/collect"]
        [collector.kubernetes]
        kubeconfig = "/etc/trawl/kubeconfig"
        namespace_labels = true
        metadata_wait_ms = 100
        "#,
        &[],
    )
    .unwrap();
    assert_eq!(
        config.collector.kubernetes.kubeconfig,
        Some(PathBuf::from("/etc/trawl/kubeconfig"))
    );
    assert!(config.collector.kubernetes.namespace_labels);
    assert_eq!(config.collector.kubernetes.metadata_wait_ms, 100);
    let error = load_text(
        "[collector]\nexclude_pod_labels = [\"app=web\", \"=x\"]\n[collector.kubernetes]\nkubeconfig = \"\"\n",
        &[],
    )
    .unwrap_err();
    assert_eq!(
        error.to_string(),
        "invalid configuration: `collector.exclude_pod_labels.1`: `=x`: `` is not a label key; \
         `collector.kubernetes.kubeconfig`: must not be empty (leave it unset for the in-cluster \
         service account)"
    );
}

#[test]
fn storage_and_metastore_go_together_and_are_checked() {
    let config = load_text(
        "[storage]\nuri = \"s3://logs/prod\"\n[storage.s3]\nendpoint = \"http://minio:9000\"\n\
         [metastore]\nuri = \"postgres://trawl@db:5432/trawl\"\n",
        &[],
    )
    .unwrap();
    assert!(config.storage.is_remote() && config.metastore.is_postgres());
    assert_eq!(config.storage.s3.endpoint, "http://minio:9000");
    // The environment overrides as for every key.
    let config = load_text(
        "",
        &[
            ("TRAWL_STORAGE__URI", "file:///srv/splits"),
            ("TRAWL_METASTORE__URI", "postgresql://db/trawl"),
        ],
    )
    .unwrap();
    assert_eq!(config.storage.uri, "file:///srv/splits");
    let keys = |text: &str| problem_keys(load_text(text, &[]));
    assert_eq!(
        keys("[storage]\nuri = \"gs://bucket\"\n[metastore]\nuri = \"postgres://db\"\n"),
        ["storage.uri"]
    );
    assert_eq!(
        keys("[storage]\nuri = \"file://relative\"\n[metastore]\nuri = \"postgres://db\"\n"),
        ["storage.uri"]
    );
    assert_eq!(keys("[storage]\nuri = \"s3://b\"\n"), ["metastore.uri"]);
    assert_eq!(
        keys("[metastore]\nuri = \"postgres://db\"\n"),
        ["metastore.uri"]
    );
    assert_eq!(
        keys("[metastore]\nuri = \"mysql://db\"\n"),
        ["metastore.uri"]
    );
    assert_eq!(
        keys("[storage]\nuri = \"s3://b\"\ncache_max_bytes = 0\n[storage.s3]\nendpoint = \"minio:9000\"\n[metastore]\nuri = \"postgres://db\"\n"),
        ["storage.s3.endpoint", "storage.cache_max_bytes"]
    );
    assert_eq!(
        keys("[storage]\nrange_read_concurrency = 0\n"),
        ["storage.range_read_concurrency"]
    );
    assert_eq!(
        keys("[storage]\nrange_read_concurrency = 257\n"),
        ["storage.range_read_concurrency"]
    );
    assert_eq!(
        load_text("[storage]\nrange_read_concurrency = 32\n", &[])
            .unwrap()
            .storage
            .range_read_concurrency,
        32
    );
    let storage = load_text("[storage]\nexport_whole_min_records = 0\n", &[])
        .unwrap()
        .storage;
    assert_eq!(storage.export_whole_min_records, 0);
    assert_eq!(
        crate::StorageConfig::default().export_whole_min_records,
        2_000
    );
    let config = load_text("data_dir = \"/d\"\n", &[]).unwrap();
    assert_eq!(config.cache_dir(), PathBuf::from("/d/cache"));
    let config = load_text("[storage]\ncache_dir = \"/c\"\n", &[]).unwrap();
    assert_eq!(config.cache_dir(), PathBuf::from("/c"));
    let storage = load_text("[storage]\nlocal_splits_max_bytes = 0\n", &[])
        .unwrap()
        .storage;
    assert_eq!(storage.local_splits_max_bytes, 0);
    assert_eq!(
        crate::StorageConfig::default().local_splits_max_bytes,
        4_000_000_000
    );
}
