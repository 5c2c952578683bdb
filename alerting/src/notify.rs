//! Delivery: Alertmanager's v2 API (`POST <url>/api/v2/alerts`, the whole set of firing and
//! recently resolved alerts, sent on every change and again every `resend_interval_secs`) and
//! plain JSON webhooks (the alerts that fired or resolved). One task per receiver, retrying
//! with exponential backoff; the engine only hands over the latest set (a watch channel) or a
//! change (a bounded queue), so a receiver that is away never holds evaluation up.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::{mpsc, watch};
use trawl_model::Timestamp;

use crate::metrics::Metrics;
use crate::state::{Alert, Phase};

/// Changes waiting for one webhook: a round that changed something adds one entry, so this is
/// that many rounds of backlog behind a failing receiver. When full, the new change is dropped,
/// counted (`trawl_alerting_webhook_dropped_total`) and logged; the Alertmanager path keeps the
/// whole set and loses nothing.
const WEBHOOK_QUEUE: usize = 1_024;

/// First wait after a failed delivery; it doubles up to `max_retry_backoff_ms`.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);

/// One alert to deliver, with its rule for the metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    /// The rule's name.
    pub rule: String,
    /// The alert as it is now.
    pub alert: Alert,
}

impl Outgoing {
    /// The Alertmanager v2 shape; a firing alert ends `valid_for` from `now` unless sent again
    /// (so that Alertmanager resolves it by itself if Trawl is gone for good).
    pub fn to_json(&self, now: Timestamp, valid_for: Duration) -> Value {
        let a = &self.alert;
        let starts = a.fired_at.unwrap_or(a.active_since);
        let ends = match (a.phase, a.resolved_at) {
            (Phase::Resolved, Some(at)) => at,
            _ => Timestamp(
                now.0
                    .saturating_add(i64::try_from(valid_for.as_nanos()).unwrap_or(i64::MAX)),
            ),
        };
        json!({
            "labels": a.labels,
            "annotations": a.annotations,
            "startsAt": starts.to_rfc3339(),
            "endsAt": ends.to_rfc3339(),
            "generatorURL": a.generator_url,
        })
    }
}

/// The wait before retry number `attempt` (0 for the first retry): doubling from 500 ms, at
/// most `max`.
pub fn backoff(attempt: u32, max: Duration) -> Duration {
    FIRST_BACKOFF
        .saturating_mul(2u32.saturating_pow(attempt.min(20)))
        .min(max)
}

/// Delivery settings.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub alertmanagers: Vec<String>,
    pub webhooks: Vec<String>,
    pub resend: Duration,
    pub timeout: Duration,
    pub max_backoff: Duration,
}

/// The engine's side of delivery.
pub struct Outbox {
    current: watch::Sender<Arc<Vec<Outgoing>>>,
    webhooks: Vec<(String, mpsc::Sender<Arc<Vec<Outgoing>>>)>,
    metrics: Arc<Metrics>,
}

impl Outbox {
    /// Starts one task per receiver.
    pub fn start(delivery: Delivery, metrics: Arc<Metrics>) -> crate::Result<Outbox> {
        let client = reqwest::Client::builder()
            .timeout(delivery.timeout)
            .build()
            .map_err(|err| crate::Error::Client(err.to_string()))?;
        let (current, _) = watch::channel(Arc::new(Vec::new()));
        for url in &delivery.alertmanagers {
            let endpoint = format!("{}/api/v2/alerts", url.trim_end_matches('/'));
            tokio::spawn(alertmanager(
                endpoint,
                client.clone(),
                current.subscribe(),
                delivery.clone(),
                Arc::clone(&metrics),
            ));
        }
        let mut webhooks = Vec::new();
        for url in &delivery.webhooks {
            let (tx, rx) = mpsc::channel(WEBHOOK_QUEUE);
            tokio::spawn(webhook(
                url.clone(),
                client.clone(),
                rx,
                delivery.clone(),
                Arc::clone(&metrics),
            ));
            webhooks.push((url.clone(), tx));
        }
        Ok(Outbox {
            current,
            webhooks,
            metrics,
        })
    }

    /// Hands the current set of firing and recently resolved alerts to the Alertmanagers.
    pub fn publish(&self, alerts: Vec<Outgoing>) {
        self.current.send_replace(Arc::new(alerts));
    }

    /// Hands the alerts that fired or resolved to the webhooks.
    pub fn changed(&self, alerts: Vec<Outgoing>) {
        if alerts.is_empty() {
            return;
        }
        let alerts = Arc::new(alerts);
        for (url, tx) in &self.webhooks {
            if tx.try_send(Arc::clone(&alerts)).is_err() {
                self.metrics.webhook_dropped.inc_by(alerts.len() as u64);
                tracing::error!(
                    webhook = %url,
                    alerts = alerts.len(),
                    "webhook queue full (the receiver has been failing for long): changes dropped"
                );
            }
        }
    }
}

async fn post(client: &reqwest::Client, url: &str, body: &Value) -> Result<(), String> {
    let response = client
        .post(url)
        .json(body)
        .send()
        .await
        .map_err(|err| err.to_string())?;
    if response.status().is_success() {
        Ok(())
    } else {
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        Err(format!(
            "{status}: {}",
            text.chars().take(200).collect::<String>()
        ))
    }
}

async fn alertmanager(
    url: String,
    client: reqwest::Client,
    mut rx: watch::Receiver<Arc<Vec<Outgoing>>>,
    delivery: Delivery,
    metrics: Arc<Metrics>,
) {
    let valid_for = delivery.resend * 4;
    loop {
        let mut attempt = 0;
        loop {
            let batch = rx.borrow_and_update().clone();
            if batch.is_empty() {
                break;
            }
            let now = Timestamp::now();
            let body = Value::Array(batch.iter().map(|o| o.to_json(now, valid_for)).collect());
            match post(&client, &url, &body).await {
                Ok(()) => {
                    for outgoing in batch.iter() {
                        metrics.sent(&outgoing.rule, "alertmanager");
                    }
                    break;
                }
                Err(reason) => {
                    metrics.delivery_failed(&url);
                    let wait = backoff(attempt, delivery.max_backoff);
                    attempt += 1;
                    tracing::warn!(alertmanager = %url, %reason, retry_in_ms = wait.as_millis() as u64, "alert delivery failed");
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        changed = rx.changed() => if changed.is_err() { return },
                    }
                }
            }
        }
        tokio::select! {
            changed = rx.changed() => if changed.is_err() { return },
            _ = tokio::time::sleep(delivery.resend) => {}
        }
    }
}

async fn webhook(
    url: String,
    client: reqwest::Client,
    mut rx: mpsc::Receiver<Arc<Vec<Outgoing>>>,
    delivery: Delivery,
    metrics: Arc<Metrics>,
) {
    while let Some(batch) = rx.recv().await {
        let now = Timestamp::now();
        let alerts: Vec<Value> = batch
            .iter()
            .map(|o| {
                let mut v = o.to_json(now, delivery.resend * 4);
                let status = if o.alert.phase == Phase::Resolved {
                    "resolved"
                } else {
                    "firing"
                };
                v["status"] = json!(status);
                v
            })
            .collect();
        let body = json!({"version": "1", "source": "trawl", "alerts": alerts});
        let mut attempt = 0;
        loop {
            match post(&client, &url, &body).await {
                Ok(()) => {
                    for outgoing in batch.iter() {
                        metrics.sent(&outgoing.rule, "webhook");
                    }
                    break;
                }
                Err(reason) => {
                    metrics.delivery_failed(&url);
                    let wait = backoff(attempt, delivery.max_backoff);
                    attempt += 1;
                    tracing::warn!(webhook = %url, %reason, retry_in_ms = wait.as_millis() as u64, "alert delivery failed");
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn backoff_doubles_up_to_the_maximum() {
        let max = Duration::from_secs(30);
        let waits: Vec<u64> = (0..8).map(|a| backoff(a, max).as_millis() as u64).collect();
        assert_eq!(
            waits,
            vec![500, 1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000]
        );
        assert_eq!(backoff(u32::MAX, max), max);
    }

    #[test]
    fn alertmanager_shape() {
        let alert = Alert {
            labels: BTreeMap::from([("alertname".to_string(), "R".to_string())]),
            annotations: BTreeMap::from([("samples".to_string(), "a\nb".to_string())]),
            phase: Phase::Firing,
            active_since: Timestamp(1_000_000_000),
            fired_at: Some(Timestamp(2_000_000_000)),
            resolved_at: None,
            last_active: Timestamp(2_000_000_000),
            value: 1.0,
            count: 1,
            generator_url: "http://x/api/v1/logs/search?q=a".into(),
        };
        let mut outgoing = Outgoing {
            rule: "R".into(),
            alert,
        };
        let v = outgoing.to_json(Timestamp(10_000_000_000), Duration::from_secs(60));
        assert_eq!(
            v,
            json!({
                "labels": {"alertname": "R"},
                "annotations": {"samples": "a\nb"},
                "startsAt": "1970-01-01T00:00:02.000000000Z",
                "endsAt": "1970-01-01T00:01:10.000000000Z",
                "generatorURL": "http://x/api/v1/logs/search?q=a",
            })
        );
        outgoing.alert.phase = Phase::Resolved;
        outgoing.alert.resolved_at = Some(Timestamp(5_000_000_000));
        let v = outgoing.to_json(Timestamp(10_000_000_000), Duration::from_secs(60));
        assert_eq!(v["endsAt"], json!("1970-01-01T00:00:05.000000000Z"));
    }
}
