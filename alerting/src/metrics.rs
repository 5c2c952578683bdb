//! Prometheus metrics of alerting, per rule: `trawl_alerting_rule_evaluations_total`,
//! `..._rule_evaluation_failures_total`, `..._rule_evaluation_duration_seconds`,
//! `..._notifications_sent_total` (by rule and receiver kind), and per receiver
//! `..._delivery_failures_total`; `..._webhook_dropped_total`, `..._reloads_total` by result;
//! `trawl_alerting_leader`, 1 while this process runs alerting for the cluster.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

type Labels = Vec<(String, String)>;

fn rule(name: &str) -> Labels {
    vec![("rule".to_string(), name.to_string())]
}

fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// Alerting's metrics.
#[derive(Debug)]
pub struct Metrics {
    evaluations: Family<Labels, Counter>,
    failures: Family<Labels, Counter>,
    duration: Family<Labels, Histogram, fn() -> Histogram>,
    notifications: Family<Labels, Counter>,
    delivery_failures: Family<Labels, Counter>,
    /// Webhook changes dropped because a receiver's queue was full.
    pub webhook_dropped: Counter,
    reloads: Family<Labels, Counter>,
    /// 1 while this process is the one evaluating rules (see [`crate::Leadership`]).
    pub leader: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            evaluations: Family::default(),
            failures: Family::default(),
            duration: Family::new_with_constructor(duration_histogram),
            notifications: Family::default(),
            delivery_failures: Family::default(),
            webhook_dropped: Counter::default(),
            reloads: Family::default(),
            leader: Gauge::default(),
        }
    }
}

impl Metrics {
    /// Registers every metric under `trawl_alerting`.
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("trawl_alerting");
        r.register(
            "leader",
            "1 while this process evaluates the rules and sends the alerts of the cluster",
            self.leader.clone(),
        );
        r.register(
            "rule_evaluations",
            "Evaluations of a rule",
            self.evaluations.clone(),
        );
        r.register(
            "rule_evaluation_failures",
            "Evaluations of a rule that failed (bad query, search error, time budget)",
            self.failures.clone(),
        );
        r.register(
            "rule_evaluation_duration_seconds",
            "Time to evaluate a rule",
            self.duration.clone(),
        );
        r.register(
            "notifications_sent",
            "Alerts of a rule delivered, by receiver kind (alertmanager, webhook)",
            self.notifications.clone(),
        );
        r.register(
            "delivery_failures",
            "Failed delivery attempts, by receiver URL (each is retried)",
            self.delivery_failures.clone(),
        );
        r.register(
            "webhook_dropped",
            "Alert changes dropped because a webhook's queue was full",
            self.webhook_dropped.clone(),
        );
        r.register(
            "reloads",
            "Rule reloads, by result (ok, error)",
            self.reloads.clone(),
        );
    }

    pub fn evaluated(&self, name: &str, seconds: f64, ok: bool) {
        self.evaluations.get_or_create(&rule(name)).inc();
        self.duration.get_or_create(&rule(name)).observe(seconds);
        if !ok {
            self.failures.get_or_create(&rule(name)).inc();
        }
    }

    pub fn sent(&self, name: &str, receiver: &str) {
        let mut labels = rule(name);
        labels.push(("receiver".to_string(), receiver.to_string()));
        self.notifications.get_or_create(&labels).inc();
    }

    pub fn delivery_failed(&self, url: &str) {
        self.delivery_failures
            .get_or_create(&vec![("url".to_string(), url.to_string())])
            .inc();
    }

    pub fn reloaded(&self, ok: bool) {
        let result = if ok { "ok" } else { "error" };
        self.reloads
            .get_or_create(&vec![("result".to_string(), result.to_string())])
            .inc();
    }
}
