//! `GET /api/v1/rules` (every rule with its state, last evaluation, duration and error) and
//! `GET /api/v1/alerts` (pending and firing alerts).

use std::sync::Arc;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use trawl_config::{Rule, RuleKind};

use crate::engine::Inner;
use crate::state::{Phase, RuleState};

pub(crate) fn routes(inner: Arc<Inner>) -> Router {
    Router::new()
        .route("/api/v1/rules", get(rules))
        .route("/api/v1/alerts", get(alerts))
        .with_state(inner)
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn rule_json(rule: &Rule, state: Option<&RuleState>) -> Value {
    let phases: Vec<Phase> = state
        .map(|s| s.alerts.values().map(|a| a.phase).collect())
        .unwrap_or_default();
    let overall = if phases.contains(&Phase::Firing) {
        "firing"
    } else if phases.contains(&Phase::Pending) {
        "pending"
    } else {
        "inactive"
    };
    let mut out = json!({
        "name": rule.name,
        "stream": rule.stream,
        "query": rule.query,
        "group_by": rule.group_by,
        "labels": rule.labels,
        "state": overall,
        "alerts": phases.iter().filter(|p| **p != Phase::Resolved).count(),
        "last_evaluation": state.and_then(|s| s.last_evaluation).map(|t| t.to_rfc3339()),
        "evaluation_ms": state.map(|s| s.last_duration_ms),
        "error": state.and_then(|s| s.error.clone()),
        "health": match state {
            None | Some(RuleState { last_evaluation: None, .. }) => "unknown",
            Some(RuleState { error: Some(_), .. }) => "error",
            Some(_) => "ok",
        },
    });
    match &rule.kind {
        RuleKind::Threshold {
            window,
            condition,
            hold,
        } => {
            out["kind"] = json!("threshold");
            out["window_secs"] = json!(window.as_secs_f64());
            out["for_secs"] = json!(hold.as_secs_f64());
            out["threshold"] = json!(condition.threshold);
        }
        RuleKind::Match { keep_firing_for } => {
            out["kind"] = json!("match");
            out["keep_firing_for_secs"] = json!(keep_firing_for.as_secs_f64());
            out["ignore_users"] = json!(rule.ignore_users);
            out["ignore_groups"] = json!(rule.ignore_groups);
            out["ignore_namespaces"] = json!(rule.ignore_namespaces);
        }
    }
    out
}

async fn rules(State(inner): State<Arc<Inner>>) -> Json<Value> {
    let loaded = lock(&inner.loaded);
    let store = lock(&inner.store);
    let groups: Vec<Value> = loaded
        .groups
        .iter()
        .map(|group| {
            json!({
                "name": group.name,
                "source": group.source,
                "interval_secs": group.interval.as_secs_f64(),
                "rules": group
                    .rules
                    .iter()
                    .map(|rule| rule_json(rule, store.rules.get(&rule.name)))
                    .collect::<Vec<_>>(),
            })
        })
        .collect();
    Json(json!({
        "groups": groups,
        "reload_error": loaded.error,
        "leader": inner.leader.is_leader(),
    }))
}

async fn alerts(State(inner): State<Arc<Inner>>) -> Json<Value> {
    let store = lock(&inner.store);
    let alerts: Vec<Value> = store
        .rules
        .iter()
        .flat_map(|(rule, state)| {
            state
                .alerts
                .values()
                .filter(|a| a.phase != Phase::Resolved)
                .map(move |a| {
                    json!({
                        "rule": rule,
                        "state": a.phase,
                        "labels": a.labels,
                        "annotations": a.annotations,
                        "active_since": a.active_since.to_rfc3339(),
                        "fired_at": a.fired_at.map(|t| t.to_rfc3339()),
                        "value": a.value,
                        "count": a.count,
                        "generator_url": a.generator_url,
                    })
                })
        })
        .collect();
    Json(json!({ "alerts": alerts, "leader": inner.leader.is_leader() }))
}
