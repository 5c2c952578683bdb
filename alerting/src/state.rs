//! Alert state per rule and group: pending -> firing -> resolved, the transitions of threshold
//! and match rules, and the state file under `data_dir` (written by atomic rename after every
//! round) that lets a restart go on where it stopped: neither firing again nor forgetting.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use trawl_model::Timestamp;

/// Where an alert is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// The condition holds, not yet for the rule's `for`.
    Pending,
    /// Firing: sent to the receivers.
    Firing,
    /// Was firing, no longer; kept for `keep_resolved_secs` and sent as resolved.
    Resolved,
}

/// One alert: one group of one rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// `alertname`, the rule's labels and the group's values.
    pub labels: BTreeMap<String, String>,
    /// Rendered annotations, samples and query included.
    pub annotations: BTreeMap<String, String>,
    /// Where it is.
    pub phase: Phase,
    /// When the condition started to hold (pending since).
    pub active_since: Timestamp,
    /// When it started firing.
    pub fired_at: Option<Timestamp>,
    /// When it resolved.
    pub resolved_at: Option<Timestamp>,
    /// The last evaluation at which the condition held (match rules: found new events).
    pub last_active: Timestamp,
    /// The aggregate at the last evaluation where the condition held.
    pub value: f64,
    /// Matching events at that evaluation.
    pub count: u64,
    /// The link to the search that finds the alert's events.
    pub generator_url: String,
}

/// A rule's state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RuleState {
    /// Alerts by group key.
    pub alerts: BTreeMap<String, Alert>,
    /// When the rule was last evaluated.
    pub last_evaluation: Option<Timestamp>,
    /// Match rules: the end of the last window read (the next starts there).
    pub evaluated_until: Option<Timestamp>,
    /// How long the last evaluation took.
    pub last_duration_ms: u64,
    /// Why the last evaluation failed; `None` when it succeeded.
    pub error: Option<String>,
}

/// What a round changed, for the webhooks.
#[derive(Debug, Default)]
pub struct Changes {
    /// Group keys that started firing.
    pub fired: Vec<String>,
    /// Group keys that resolved.
    pub resolved: Vec<String>,
}

/// One active group at an evaluation, as the engine hands it to [`RuleState::apply`].
pub struct Active {
    /// The group key ([`group_key`]).
    pub key: String,
    /// The alert it would be if new (labels, annotations, value, count, link).
    pub alert: Alert,
}

/// How alerts of a rule move.
#[derive(Debug, Clone, Copy)]
pub enum Policy {
    /// Threshold rules: firing after `hold`, resolved at the first evaluation where the
    /// condition does not hold.
    Threshold { hold: Duration },
    /// Match rules: firing at once, resolved `keep_firing_for` after the last new event.
    Match { keep_firing_for: Duration },
}

/// The key of a group: its labels, as JSON (stable: the map is ordered).
pub fn group_key(labels: &BTreeMap<String, String>) -> String {
    serde_json::to_string(labels).unwrap_or_default()
}

fn elapsed(since: Timestamp, now: Timestamp) -> Duration {
    Duration::from_nanos(u64::try_from(now.0.saturating_sub(since.0)).unwrap_or(0))
}

impl RuleState {
    /// Moves the alerts by one evaluation at `now` that found `active` groups. Resolved
    /// alerts older than `keep_resolved` are dropped.
    pub fn apply(
        &mut self,
        active: Vec<Active>,
        policy: Policy,
        now: Timestamp,
        keep_resolved: Duration,
    ) -> Changes {
        let mut changes = Changes::default();
        let mut seen = std::collections::BTreeSet::new();
        for Active { key, alert } in active {
            seen.insert(key.clone());
            let entry = self.alerts.get_mut(&key);
            match entry {
                Some(existing) if existing.phase != Phase::Resolved => {
                    existing.value = alert.value;
                    existing.count = alert.count;
                    existing.last_active = now;
                    existing.annotations = alert.annotations;
                    existing.generator_url = alert.generator_url;
                    if existing.phase == Phase::Pending {
                        if let Policy::Threshold { hold } = policy {
                            if elapsed(existing.active_since, now) >= hold {
                                existing.phase = Phase::Firing;
                                existing.fired_at = Some(now);
                                changes.fired.push(key.clone());
                            }
                        }
                    }
                }
                _ => {
                    let fire = match policy {
                        Policy::Threshold { hold } => hold.is_zero(),
                        Policy::Match { .. } => true,
                    };
                    let mut alert = alert;
                    alert.active_since = now;
                    alert.last_active = now;
                    alert.resolved_at = None;
                    alert.phase = if fire { Phase::Firing } else { Phase::Pending };
                    alert.fired_at = fire.then_some(now);
                    if fire {
                        changes.fired.push(key.clone());
                    }
                    self.alerts.insert(key, alert);
                }
            }
        }
        self.alerts.retain(|key, alert| {
            if seen.contains(key) {
                return true;
            }
            match (alert.phase, policy) {
                (Phase::Pending, _) => false,
                (Phase::Firing, Policy::Threshold { .. }) => {
                    alert.phase = Phase::Resolved;
                    alert.resolved_at = Some(now);
                    changes.resolved.push(key.clone());
                    true
                }
                (Phase::Firing, Policy::Match { keep_firing_for }) => {
                    if elapsed(alert.last_active, now) >= keep_firing_for {
                        alert.phase = Phase::Resolved;
                        alert.resolved_at = Some(now);
                        changes.resolved.push(key.clone());
                    }
                    true
                }
                (Phase::Resolved, _) => alert
                    .resolved_at
                    .is_some_and(|at| elapsed(at, now) < keep_resolved),
            }
        });
        changes
    }

    /// Resolves every firing alert (its rule was removed) and drops pending ones.
    pub fn resolve_all(&mut self, now: Timestamp, keep_resolved: Duration) -> Changes {
        self.apply(
            Vec::new(),
            Policy::Threshold {
                hold: Duration::ZERO,
            },
            now,
            keep_resolved,
        )
    }
}

/// Every rule's state, and the file it is kept in.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Store {
    /// Format version of the file.
    pub version: u32,
    /// By rule name.
    pub rules: BTreeMap<String, RuleState>,
    #[serde(skip)]
    path: PathBuf,
}

const STATE_VERSION: u32 = 1;

impl Store {
    /// The store of `dir` (`<data_dir>/alerting`), created when absent. A file that does not
    /// decode is an error (never silently replaced: it holds what is firing).
    pub fn open(dir: &Path) -> std::io::Result<Store> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join("state.json");
        let mut store = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice::<Store>(&bytes)
                .map_err(|err| std::io::Error::new(std::io::ErrorKind::InvalidData, err))?,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Store::default(),
            Err(err) => return Err(err),
        };
        store.version = STATE_VERSION;
        store.path = path;
        Ok(store)
    }

    /// Writes the store: a temporary file, fsync, rename, fsync of the directory.
    pub fn save(&self) -> std::io::Result<()> {
        let bytes = serde_json::to_vec(self)?;
        let tmp = self.path.with_extension("json.tmp");
        {
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(&bytes)?;
            file.sync_all()?;
        }
        std::fs::rename(&tmp, &self.path)?;
        if let Some(dir) = self.path.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(value: f64) -> Alert {
        Alert {
            labels: BTreeMap::from([("alertname".to_string(), "R".to_string())]),
            annotations: BTreeMap::new(),
            phase: Phase::Pending,
            active_since: Timestamp(0),
            fired_at: None,
            resolved_at: None,
            last_active: Timestamp(0),
            value,
            count: 1,
            generator_url: String::new(),
        }
    }

    fn active(key: &str) -> Vec<Active> {
        vec![Active {
            key: key.to_string(),
            alert: alert(5.0),
        }]
    }

    const S: i64 = 1_000_000_000;
    const KEEP: Duration = Duration::from_secs(900);

    #[test]
    fn threshold_pends_for_its_hold_then_fires_once_then_resolves() {
        let policy = Policy::Threshold {
            hold: Duration::from_secs(60),
        };
        let mut state = RuleState::default();
        let c = state.apply(active("a"), policy, Timestamp(0), KEEP);
        assert!(c.fired.is_empty());
        assert_eq!(state.alerts["a"].phase, Phase::Pending);
        let c = state.apply(active("a"), policy, Timestamp(59 * S), KEEP);
        assert!(c.fired.is_empty());
        let c = state.apply(active("a"), policy, Timestamp(60 * S), KEEP);
        assert_eq!(c.fired, vec!["a".to_string()]);
        assert_eq!(state.alerts["a"].fired_at, Some(Timestamp(60 * S)));
        let c = state.apply(active("a"), policy, Timestamp(90 * S), KEEP);
        assert!(c.fired.is_empty());
        let c = state.apply(Vec::new(), policy, Timestamp(120 * S), KEEP);
        assert_eq!(c.resolved, vec!["a".to_string()]);
        assert_eq!(state.alerts["a"].phase, Phase::Resolved);
        assert_eq!(state.alerts["a"].resolved_at, Some(Timestamp(120 * S)));
        state.apply(Vec::new(), policy, Timestamp(120 * S + 900 * S), KEEP);
        assert!(state.alerts.is_empty());
    }

    #[test]
    fn a_pending_alert_that_stops_holding_is_forgotten() {
        let policy = Policy::Threshold {
            hold: Duration::from_secs(60),
        };
        let mut state = RuleState::default();
        state.apply(active("a"), policy, Timestamp(0), KEEP);
        let c = state.apply(Vec::new(), policy, Timestamp(S), KEEP);
        assert!(c.resolved.is_empty());
        assert!(state.alerts.is_empty());
        state.apply(active("a"), policy, Timestamp(2 * S), KEEP);
        assert_eq!(state.alerts["a"].active_since, Timestamp(2 * S));
    }

    #[test]
    fn match_fires_at_once_and_resolves_after_keep_firing_for() {
        let policy = Policy::Match {
            keep_firing_for: Duration::from_secs(300),
        };
        let mut state = RuleState::default();
        let c = state.apply(active("a"), policy, Timestamp(0), KEEP);
        assert_eq!(c.fired, vec!["a".to_string()]);
        let c = state.apply(Vec::new(), policy, Timestamp(299 * S), KEEP);
        assert!(c.resolved.is_empty());
        let c = state.apply(active("a"), policy, Timestamp(200 * S), KEEP);
        assert!(
            c.fired.is_empty(),
            "new events refresh, they do not fire again"
        );
        let c = state.apply(Vec::new(), policy, Timestamp(500 * S), KEEP);
        assert_eq!(c.resolved, vec!["a".to_string()]);
        let c = state.apply(active("a"), policy, Timestamp(600 * S), KEEP);
        assert_eq!(
            c.fired,
            vec!["a".to_string()],
            "a resolved group fires anew"
        );
    }

    #[test]
    fn the_store_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        let mut state = RuleState::default();
        state.apply(
            active("a"),
            Policy::Match {
                keep_firing_for: Duration::from_secs(1),
            },
            Timestamp(7),
            KEEP,
        );
        store.rules.insert("R".into(), state.clone());
        store.save().unwrap();
        let reopened = Store::open(dir.path()).unwrap();
        assert_eq!(reopened.rules["R"], state);
        std::fs::write(dir.path().join("state.json"), b"{not json").unwrap();
        assert!(Store::open(dir.path()).is_err());
    }
}
