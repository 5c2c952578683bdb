//! What went wrong with pods, from the `events` stream: `pod-failures`.

use serde_json::{json, Map, Value};

use super::engine::{fold, render, Ctx, Key, Order, Row};
use super::filter::{any_of, eq};
use super::group::{Extra, ExtraValue};
use crate::error::Result;

type Rows = Result<Vec<Map<String, Value>>>;

/// The reasons of Kubernetes Events that say a pod failed, and what each means:
/// - `BackOff`: the kubelet backs off restarting a crashing container (CrashLoopBackOff) or
///   pulling an image;
/// - `Failed`: a container or an image pull failed (`ErrImagePull`, `CreateContainerError`);
/// - `ErrImagePull`, `ImagePullBackOff`, `InspectFailed`, `ErrImageNeverPull`: image errors as
///   some runtimes and versions name them;
/// - `OOMKilling`, `OOMKilled`: the kernel's OOM killer (node-problem-detector and some
///   kubelets report it as an event);
/// - `FailedScheduling`: no node fits the pod;
/// - `Evicted`, `Preempted`: the pod was pushed off its node;
/// - `FailedMount`, `FailedAttachVolume`, `FailedCreatePodSandBox`: it could not start;
/// - `Unhealthy`: a liveness, readiness or startup probe failed.
pub(crate) const POD_FAILURE_REASONS: [&str; 15] = [
    "BackOff",
    "Failed",
    "ErrImagePull",
    "ImagePullBackOff",
    "InspectFailed",
    "ErrImageNeverPull",
    "OOMKilling",
    "OOMKilled",
    "FailedScheduling",
    "Evicted",
    "Preempted",
    "FailedMount",
    "FailedAttachVolume",
    "FailedCreatePodSandBox",
    "Unhealthy",
];

/// Failures per namespace, pod and reason: `count` (the Event updates seen, one per time the
/// reporter counted it again), `occurrences` (what the reporters counted: the sum over the
/// row's Event objects of the largest `count` seen of each), the `nodes` that reported them
/// and the first and last time seen. A pod's Event objects are identified by `event_uid`; one
/// object updated a hundred times counts its occurrences once, at its last count.
pub(super) fn pod_failures(ctx: &Ctx) -> Rows {
    let filter = ctx.filter(&[eq("kind", "Pod"), any_of("reason", &POD_FAILURE_REASONS)]);
    let keys = [
        Key::Str("namespace"),
        Key::Str("name"),
        Key::Str("reason"),
        Key::Str("event_uid"),
    ];
    let groups = ctx.groups(&filter, &keys, &[Extra::Max("count"), Extra::Terms("node")])?;
    // One group per Event object; rows per pod and reason add the objects up.
    let rows: Vec<Row> = groups
        .iter()
        .map(|g| {
            let occurrences = match g.extras.first() {
                Some(ExtraValue::Max(Some(n))) => u64::try_from(*n).unwrap_or(0).max(1),
                _ => 1,
            };
            Row::of(g)
                .key(g, "namespace")
                .key(g, "name")
                .key(g, "reason")
                .sum("occurrences", occurrences)
        })
        .collect();
    let mut nodes: std::collections::HashMap<(String, String, String), Vec<String>> =
        std::collections::HashMap::new();
    for g in &groups {
        if let Some(ExtraValue::Terms(terms)) = g.extras.get(1) {
            let entry = nodes
                .entry((
                    g.str("namespace").to_string(),
                    g.str("name").to_string(),
                    g.str("reason").to_string(),
                ))
                .or_default();
            entry.extend(terms.keys().map(|n| n.to_string()));
        }
    }
    let rows = fold(rows)
        .into_iter()
        .map(|row| {
            let text = |i: usize| row.tie.get(i).cloned().unwrap_or_default();
            let mut found = nodes
                .get(&(text(0), text(1), text(2)))
                .cloned()
                .unwrap_or_default();
            found.sort_unstable();
            found.dedup();
            let mut row = row.column("nodes", json!(found));
            // The regarding object is a pod: its `name` is the pod's.
            for (column, _) in &mut row.columns {
                if *column == "name" {
                    *column = "pod";
                }
            }
            row
        })
        .collect();
    Ok(render(&filter, rows, Order::ByCount, ctx.request.limit))
}
