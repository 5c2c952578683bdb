//! The schedule: every group of rules is evaluated every `interval`, one rule after another;
//! rule files are re-read when they change and on SIGHUP (a reload that fails keeps the rules
//! that were running); after each group the state file is written and the receivers are told.
//!
//! Alerting runs once per cluster: [`Leadership`] is asked before every round. A single
//! process is always the leader ([`Always`]); searchers sharing a PostgreSQL metastore hold a
//! lease there (the `trawl` binary's `alerting` module), and a process that loses it stops
//! evaluating and sending at its next round.

use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus_client::registry::Registry;
use trawl_config::{AlertingConfig, Rule, RuleGroup, RuleKind, TemplatePart};
use trawl_model::Timestamp;

use crate::eval;
use crate::metrics::Metrics;
use crate::notify::{Delivery, Outbox, Outgoing};
use crate::source::Searcher;
use crate::state::{group_key, Active, Alert, Changes, Phase, Policy, RuleState, Store};

/// How often the schedule looks for due groups.
const TICK: Duration = Duration::from_millis(250);

/// Longest span a match rule reads in one round (after a long stop it catches up no further
/// back than this).
const MAX_CATCH_UP: Duration = Duration::from_secs(3_600);

/// Whether this process may evaluate rules and send alerts now.
pub trait Leadership: Send + Sync + 'static {
    /// `true` while this process holds the right to run alerting for the cluster.
    fn is_leader(&self) -> bool;
}

/// Always the leader: `trawl standalone`, and any single process that runs alerting.
pub struct Always;

impl Leadership for Always {
    fn is_leader(&self) -> bool {
        true
    }
}

/// What the engine runs with.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The `[alerting]` section.
    pub config: AlertingConfig,
    /// Where the state file lives (`<data_dir>/alerting`).
    pub state_dir: PathBuf,
    /// Base of each alert's `generatorURL` (`alerting.external_url`, else `http://<listen>`).
    pub external_url: String,
}

pub(crate) struct Loaded {
    pub groups: Vec<RuleGroup>,
    pub error: Option<String>,
    fingerprint: u64,
}

pub(crate) struct Inner {
    pub settings: Settings,
    searcher: Arc<dyn Searcher>,
    pub leader: Arc<dyn Leadership>,
    metrics: Arc<Metrics>,
    outbox: Outbox,
    pub loaded: Mutex<Loaded>,
    pub store: Mutex<Store>,
}

/// A running alerting engine.
#[derive(Clone)]
pub struct Engine {
    pub(crate) inner: Arc<Inner>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A hash of the rule files' bytes (a file that cannot be read hashes its error), to see that
/// one changed.
fn fingerprint(config: &AlertingConfig) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    for path in &config.rule_files {
        match std::fs::read(path) {
            Ok(bytes) => bytes.hash(&mut hasher),
            Err(err) => err.kind().to_string().hash(&mut hasher),
        }
    }
    hasher.finish()
}

impl Engine {
    /// Loads the rules (an error names file, rule and key), opens the state, starts the
    /// delivery tasks and the schedule, and registers the metrics.
    pub fn start(
        settings: Settings,
        searcher: Arc<dyn Searcher>,
        leader: Arc<dyn Leadership>,
        registry: &mut Registry,
    ) -> crate::Result<Engine> {
        let groups = trawl_config::load_rules(&settings.config)?;
        let store = Store::open(&settings.state_dir).map_err(|source| crate::Error::State {
            path: settings.state_dir.join("state.json"),
            source,
        })?;
        let metrics = Arc::new(Metrics::default());
        metrics.register(registry);
        let config = &settings.config;
        let outbox = Outbox::start(
            Delivery {
                alertmanagers: config.alertmanagers.clone(),
                webhooks: config.webhooks.clone(),
                resend: Duration::from_secs(config.resend_interval_secs.max(1)),
                timeout: Duration::from_millis(config.delivery_timeout_ms.max(1)),
                max_backoff: Duration::from_millis(config.max_retry_backoff_ms.max(1)),
            },
            Arc::clone(&metrics),
        )?;
        let loaded = Loaded {
            groups,
            error: None,
            fingerprint: fingerprint(config),
        };
        let inner = Arc::new(Inner {
            settings,
            searcher,
            leader,
            metrics,
            outbox,
            loaded: Mutex::new(loaded),
            store: Mutex::new(store),
        });
        tokio::spawn(run(Arc::clone(&inner)));
        Ok(Engine { inner })
    }

    /// `GET /api/v1/rules` and `GET /api/v1/alerts`.
    pub fn routes(&self) -> axum::Router {
        crate::http::routes(Arc::clone(&self.inner))
    }
}

async fn run(inner: Arc<Inner>) {
    #[cfg(unix)]
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    let mut check =
        tokio::time::interval(Duration::from_millis(inner.settings.config.reload_check_ms));
    let mut tick = tokio::time::interval(TICK);
    let mut due: HashMap<String, Instant> = HashMap::new();
    // What was firing before a restart is sent again at once (Alertmanager deduplicates), by
    // the leader only; a process that becomes the leader later sends its set at its first
    // round (it differs from the empty one sent so far).
    let mut published = Vec::new();
    if inner.leader.is_leader() {
        publish(&inner);
        published = current_set(&inner);
    }
    loop {
        #[cfg(unix)]
        let hup = async {
            match hangup.as_mut() {
                Some(signal) => {
                    signal.recv().await;
                }
                None => std::future::pending().await,
            }
        };
        #[cfg(not(unix))]
        let hup = std::future::pending::<()>();
        tokio::select! {
            _ = tick.tick() => {}
            _ = check.tick() => {
                let changed = fingerprint(&inner.settings.config) != lock(&inner.loaded).fingerprint;
                if changed {
                    reload(&inner, "a rule file changed");
                }
            }
            _ = hup => reload(&inner, "SIGHUP"),
        }
        let leader = inner.leader.is_leader();
        inner.metrics.leader.set(i64::from(leader));
        if !leader {
            // Another process runs alerting now: stop resending what this one knew.
            if !published.is_empty() {
                inner.outbox.publish(Vec::new());
                published.clear();
            }
            continue;
        }
        let groups = lock(&inner.loaded).groups.clone();
        due.retain(|name, _| groups.iter().any(|g| &g.name == name));
        for group in &groups {
            if due.get(&group.name).is_some_and(|at| Instant::now() < *at) {
                continue;
            }
            due.insert(group.name.clone(), Instant::now() + group.interval);
            let changes = evaluate_group(&inner, group).await;
            forget_removed_rules(&inner, &groups);
            save(&inner).await;
            inner.outbox.changed(changes);
            let set = current_set(&inner);
            if set != published {
                publish(&inner);
                published = set;
            }
        }
    }
}

/// The (rule, labels, phase) of every alert that is sent, to see that the set changed.
fn current_set(inner: &Inner) -> Vec<(String, String, Phase)> {
    let store = lock(&inner.store);
    store
        .rules
        .iter()
        .flat_map(|(rule, state)| {
            state
                .alerts
                .iter()
                .filter(|(_, a)| a.phase != Phase::Pending)
                .map(move |(key, a)| (rule.clone(), key.clone(), a.phase))
        })
        .collect()
}

fn publish(inner: &Inner) {
    let outgoing: Vec<Outgoing> = {
        let store = lock(&inner.store);
        store
            .rules
            .iter()
            .flat_map(|(rule, state)| {
                state
                    .alerts
                    .values()
                    .filter(|a| a.phase != Phase::Pending)
                    .map(move |a| Outgoing {
                        rule: rule.clone(),
                        alert: a.clone(),
                    })
            })
            .collect()
    };
    inner.outbox.publish(outgoing);
}

fn reload(inner: &Inner, why: &str) {
    let config = &inner.settings.config;
    let fingerprint = fingerprint(config);
    match trawl_config::load_rules(config) {
        Ok(groups) => {
            let rules: usize = groups.iter().map(|g| g.rules.len()).sum();
            tracing::info!(why, groups = groups.len(), rules, "alerting rules reloaded");
            *lock(&inner.loaded) = Loaded {
                groups,
                error: None,
                fingerprint,
            };
            inner.metrics.reloaded(true);
        }
        Err(err) => {
            tracing::error!(why, error = %err, "alerting rules not reloaded: the previous rules keep running");
            let mut loaded = lock(&inner.loaded);
            loaded.error = Some(err.to_string());
            loaded.fingerprint = fingerprint;
            inner.metrics.reloaded(false);
        }
    }
}

/// Resolves the alerts of rules no longer loaded, and forgets such rules once nothing of
/// theirs is left to send.
fn forget_removed_rules(inner: &Inner, groups: &[RuleGroup]) {
    let now = Timestamp::now();
    let keep = Duration::from_secs(inner.settings.config.keep_resolved_secs);
    let mut store = lock(&inner.store);
    store.rules.retain(|name, state| {
        if groups
            .iter()
            .any(|g| g.rules.iter().any(|r| &r.name == name))
        {
            return true;
        }
        state.resolve_all(now, keep);
        !state.alerts.is_empty()
    });
}

async fn save(inner: &Arc<Inner>) {
    let inner = Arc::clone(inner);
    let result = tokio::task::spawn_blocking(move || lock(&inner.store).save()).await;
    match result {
        Ok(Ok(())) => {}
        Ok(Err(err)) => tracing::error!(error = %err, "alerting state not saved"),
        Err(err) => tracing::error!(error = %err, "alerting state not saved"),
    }
}

async fn evaluate_group(inner: &Inner, group: &RuleGroup) -> Vec<Outgoing> {
    let keep = Duration::from_secs(inner.settings.config.keep_resolved_secs);
    let mut changed = Vec::new();
    for rule in &group.rules {
        let started = Instant::now();
        let now = Timestamp::now();
        let previous = lock(&inner.store)
            .rules
            .get(&rule.name)
            .cloned()
            .unwrap_or_default();
        let result = evaluate_rule(inner, group, rule, &previous, now).await;
        let seconds = started.elapsed().as_secs_f64();
        inner.metrics.evaluated(&rule.name, seconds, result.is_ok());
        let mut store = lock(&inner.store);
        let state = store.rules.entry(rule.name.clone()).or_default();
        state.last_evaluation = Some(now);
        state.last_duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        match result {
            Ok((active, until)) => {
                let policy = match &rule.kind {
                    RuleKind::Threshold { hold, .. } => Policy::Threshold { hold: *hold },
                    RuleKind::Match { keep_firing_for } => Policy::Match {
                        keep_firing_for: *keep_firing_for,
                    },
                };
                let Changes { fired, resolved } = state.apply(active, policy, now, keep);
                for key in fired.iter().chain(&resolved) {
                    if let Some(alert) = state.alerts.get(key) {
                        changed.push(Outgoing {
                            rule: rule.name.clone(),
                            alert: alert.clone(),
                        });
                    }
                }
                if until.is_some() {
                    state.evaluated_until = until;
                }
                state.error = None;
            }
            Err(error) => {
                tracing::warn!(rule = %rule.name, %error, "alerting rule evaluation failed");
                state.error = Some(error);
            }
        }
    }
    changed
}

/// The active groups of one evaluation at `now`, and for match rules the end of the window
/// read.
async fn evaluate_rule(
    inner: &Inner,
    group: &RuleGroup,
    rule: &Rule,
    previous: &RuleState,
    now: Timestamp,
) -> Result<(Vec<Active>, Option<Timestamp>), String> {
    let config = &inner.settings.config;
    let searcher = inner.searcher.as_ref();
    let Some((start, end, until)) = rule_window(rule, group, previous, now, config.match_lag_ms)
    else {
        return Ok((Vec::new(), None));
    };
    let Some(query) = eval::rule_query(rule, searcher, start, end).await? else {
        return Ok((Vec::new(), until));
    };
    let findings = eval::groups(
        rule,
        searcher,
        &query,
        start,
        end,
        config.max_alerts_per_rule,
    )
    .await?;
    let samples_wanted = rule.samples.unwrap_or(config.samples);
    let mut active = Vec::new();
    for finding in findings {
        if let RuleKind::Threshold { condition, .. } = &rule.kind {
            if !condition.op.holds(finding.value, condition.threshold) {
                continue;
            }
        }
        let mut labels: BTreeMap<String, String> = rule.labels.clone();
        labels.insert("alertname".to_string(), rule.name.clone());
        labels.extend(eval::group_labels(&finding.group));
        let key = group_key(&labels);
        let before = previous
            .alerts
            .get(&key)
            .filter(|a| a.phase != Phase::Resolved);
        // The events of an alert are those since it became active.
        let query_start = before
            .and_then(|a| a.annotations.get("start"))
            .and_then(|s| Timestamp::parse_rfc3339(s).ok())
            .unwrap_or(start);
        let fresh = match &rule.kind {
            RuleKind::Match { .. } => true,
            RuleKind::Threshold { .. } => before.is_none_or(|a| a.phase == Phase::Pending),
        };
        let samples = if fresh {
            eval::samples(
                searcher,
                &rule.stream,
                &finding.query,
                start,
                end,
                samples_wanted,
            )
            .await?
            .join("\n")
        } else {
            before
                .and_then(|a| a.annotations.get("samples"))
                .cloned()
                .unwrap_or_default()
        };
        let mut annotations: BTreeMap<String, String> = rule
            .annotations
            .iter()
            .map(|(name, text)| (name.clone(), render(text, &labels, &finding)))
            .collect();
        annotations.insert("samples".into(), samples);
        annotations.insert("query".into(), finding.query.clone());
        annotations.insert("stream".into(), rule.stream.clone());
        annotations.insert("start".into(), query_start.to_rfc3339());
        annotations.insert("end".into(), end.to_rfc3339());
        let generator_url = search_url(
            &inner.settings.external_url,
            &rule.stream,
            &finding.query,
            query_start,
            end,
        );
        active.push(Active {
            key,
            alert: Alert {
                labels,
                annotations,
                phase: Phase::Pending,
                active_since: now,
                fired_at: None,
                resolved_at: None,
                last_active: now,
                value: finding.value,
                count: finding.count,
                generator_url,
            },
        });
    }
    Ok((active, until))
}

/// The time range one evaluation of `rule` reads at `now`, and for a match rule the end it
/// reads up to (where the next evaluation starts). A threshold rule reads its window; a match
/// rule reads from where it stopped (at most [`MAX_CATCH_UP`] or one interval back) up to
/// `now` less the lag that lets late events land. `None`: a match rule has nothing new yet.
fn rule_window(
    rule: &Rule,
    group: &RuleGroup,
    previous: &RuleState,
    now: Timestamp,
    match_lag_ms: u64,
) -> Option<(Timestamp, Timestamp, Option<Timestamp>)> {
    let nanos = |d: Duration| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
    match &rule.kind {
        RuleKind::Threshold { window, .. } => Some((Timestamp(now.0 - nanos(*window)), now, None)),
        RuleKind::Match { .. } => {
            let end = Timestamp(now.0 - nanos(Duration::from_millis(match_lag_ms)));
            let earliest = Timestamp(end.0 - nanos(MAX_CATCH_UP.max(group.interval)));
            let start = previous
                .evaluated_until
                .unwrap_or(Timestamp(end.0 - nanos(group.interval)))
                .max(earliest);
            (start < end).then_some((start, end, Some(end)))
        }
    }
}

fn render(text: &str, labels: &BTreeMap<String, String>, finding: &eval::Finding) -> String {
    // Templates were validated when the rules loaded; one that fails here is shown as written.
    let Ok(parts) = trawl_config::parse_template(text) else {
        return text.to_string();
    };
    parts
        .into_iter()
        .map(|part| match part {
            TemplatePart::Text(text) => text,
            TemplatePart::Label(name) => labels.get(&name).cloned().unwrap_or_default(),
            TemplatePart::Value => format_value(finding.value),
            TemplatePart::Count => finding.count.to_string(),
            TemplatePart::Query => finding.query.clone(),
        })
        .collect()
}

fn format_value(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else {
        format!("{value:.3}")
    }
}

/// The search that finds an alert's events: `GET /api/v1/{stream}/search` with its query and
/// window.
pub fn search_url(
    base: &str,
    stream: &str,
    query: &str,
    start: Timestamp,
    end: Timestamp,
) -> String {
    let path = format!("{}/api/v1/{stream}/search", base.trim_end_matches('/'));
    let params = [
        ("q", query.to_string()),
        ("start", start.to_rfc3339()),
        ("end", end.to_rfc3339()),
    ];
    match reqwest::Url::parse_with_params(&path, &params) {
        Ok(url) => url.to_string(),
        Err(_) => path,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_urls_encode_the_query() {
        assert_eq!(
            search_url(
                "http://trawl:7400/",
                "audit",
                r#"(verb:get) user:"bob""#,
                Timestamp(0),
                Timestamp(1_000_000_000)
            ),
            "http://trawl:7400/api/v1/audit/search?q=%28verb%3Aget%29+user%3A%22bob%22\
             &start=1970-01-01T00%3A00%3A00.000000000Z&end=1970-01-01T00%3A00%3A01.000000000Z"
        );
    }

    #[test]
    fn values_render_plainly() {
        assert_eq!(format_value(12.0), "12");
        assert_eq!(format_value(0.12345), "0.123");
    }
}
