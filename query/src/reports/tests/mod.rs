//! Every report over a generated corpus with known answers: realistic audit traffic (controllers
//! watching, people reading, applying, deleting and exec'ing, denials with reasons, secret reads
//! by people and by system components, impersonation, anonymous probes, a cluster-admin
//! binding, privileged pods, panics, RequestReceived/ResponseComplete pairs, non-resource URLs)
//! spread over three targets. Each report's rows are compared exactly with counts computed here
//! by plain filtering of the generated events, and each row's `query` is run through the
//! search path over the same `[start, end)` and must find exactly the row's `count`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::body::{to_bytes, Body};
use axum::http::{Request, StatusCode};
use serde_json::{json, Map, Value};
use tower::ServiceExt;
use trawl_index::StreamSnapshot;
use trawl_model::{AuditEvent, Timestamp};

use crate::reports::filter::{glob_match, quote};
use crate::reports::traffic::auto_interval;
use crate::reports::*;
use crate::request::ParsedRequest;
use crate::search::search;
use corpus::{corpus, snapshot, ALICE, BOB, END, KCM, MIN, ODD, SEC, START, T0};

pub(super) mod corpus;
mod distributed;

struct Fixture {
    events: Vec<AuditEvent>,
    snapshot: StreamSnapshot,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: std::sync::OnceLock<Fixture> = std::sync::OnceLock::new();
    FIXTURE.get_or_init(|| {
        let events = corpus();
        let snapshot = snapshot(&events);
        Fixture {
            events: events.into_iter().map(|(_, ev)| ev).collect(),
            snapshot,
        }
    })
}

fn limits() -> QueryLimits {
    QueryLimits {
        parallelism: 2,
        ..QueryLimits::default()
    }
}

fn request(report: Report) -> ReportRequest {
    ReportRequest {
        start: Some(Timestamp(START)),
        end: Some(Timestamp(END)),
        limit: 10_000,
        ..ReportRequest::new(report, &limits())
    }
}

fn run_with(req: &ReportRequest, settings: &ReportSettings) -> Vec<Map<String, Value>> {
    let answer = run_report(&fixture().snapshot, req, settings, &limits()).unwrap();
    assert_eq!(answer.report, req.report.name());
    assert!(!answer.timed_out);
    check_queries(req, &answer.rows);
    answer.rows
}

fn run(req: &ReportRequest) -> Vec<Map<String, Value>> {
    run_with(req, &ReportSettings::default())
}

/// Every row's `query`, searched over the report's `[start, end)`, finds exactly `count`.
fn check_queries(req: &ReportRequest, rows: &[Map<String, Value>]) {
    for row in rows {
        let query = row["query"].as_str().unwrap();
        let mut search_req = ParsedRequest::new(query, &limits());
        search_req.start = req.start;
        search_req.end = req.end;
        search_req.limit = 0;
        let total = search(&fixture().snapshot, &search_req, &limits())
            .unwrap_or_else(|err| panic!("`{query}`: {err}"))
            .total;
        assert_eq!(Some(total), row["count"].as_u64(), "{}", query);
    }
}

// ---------------------------------------------------------------------------------------------
// The expected answers, by plain filtering.

fn in_range(ev: &AuditEvent) -> bool {
    (START..END).contains(&ev.timestamp.0)
}

fn complete(ev: &AuditEvent) -> bool {
    in_range(ev) && (ev.stage == "ResponseComplete" || ev.stage == "Panic")
}

fn denied(ev: &AuditEvent) -> bool {
    complete(ev) && (matches!(ev.status_code, Some(401 | 403)) || ev.decision == "forbid")
}

type Columns = Vec<(&'static str, Value)>;

fn user_columns(ev: &AuditEvent) -> Columns {
    let mut columns = vec![("user", json!(ev.user))];
    if !ev.impersonated_user.is_empty() {
        columns.push(("impersonated_user", json!(ev.impersonated_user)));
    }
    columns
}

fn with(mut columns: Columns, more: Columns) -> Columns {
    columns.extend(more);
    columns
}

fn rfc(ns: i64) -> Value {
    json!(Timestamp(ns).to_rfc3339())
}

/// Rows grouping the events `keep` selects by their `columns`, with `count`, `first_seen`,
/// `last_seen` and whatever `extra` computes over a group's events.
fn expect(
    keep: impl Fn(&AuditEvent) -> bool,
    columns: impl Fn(&AuditEvent) -> Columns,
    extra: impl Fn(&[&AuditEvent]) -> Columns,
) -> Vec<Value> {
    let mut groups: BTreeMap<String, (Columns, Vec<&AuditEvent>)> = BTreeMap::new();
    for ev in fixture().events.iter().filter(|e| keep(e)) {
        let cols = columns(ev);
        let key = serde_json::to_string(&cols).unwrap();
        groups
            .entry(key)
            .or_insert_with(|| (cols, Vec::new()))
            .1
            .push(ev);
    }
    let rows = groups
        .into_values()
        .map(|(cols, evs)| {
            let mut row = Map::new();
            for (name, value) in cols.into_iter().chain(extra(&evs)) {
                row.insert(name.to_string(), value);
            }
            row.insert("count".into(), json!(evs.len()));
            row.insert(
                "first_seen".into(),
                rfc(evs.iter().map(|e| e.timestamp.0).min().unwrap()),
            );
            row.insert(
                "last_seen".into(),
                rfc(evs.iter().map(|e| e.timestamp.0).max().unwrap()),
            );
            Value::Object(row)
        })
        .collect();
    sorted(rows)
}

fn none(_: &[&AuditEvent]) -> Columns {
    Vec::new()
}

fn sorted(mut rows: Vec<Value>) -> Vec<Value> {
    rows.sort_by_key(|r| r.to_string());
    rows
}

/// The rows without their `query` (checked against the search path on its own), sorted.
fn comparable(rows: &[Map<String, Value>]) -> Vec<Value> {
    sorted(
        rows.iter()
            .map(|r| {
                let mut r = r.clone();
                r.remove("query");
                Value::Object(r)
            })
            .collect(),
    )
}

/// Counts do not increase down the rows of equal priority.
fn assert_by_count(rows: &[Map<String, Value>], priority: impl Fn(&Map<String, Value>) -> u8) {
    for pair in rows.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        assert!(priority(a) <= priority(b), "{a:?} before {b:?}");
        if priority(a) == priority(b) {
            assert!(
                a["count"].as_u64() >= b["count"].as_u64(),
                "{a:?} before {b:?}"
            );
        }
    }
}

fn check(report: Report, expected: Vec<Value>) -> Vec<Map<String, Value>> {
    let rows = run(&request(report));
    assert!(
        !expected.is_empty(),
        "{}: the corpus must exercise it",
        report.name()
    );
    assert_eq!(comparable(&rows), expected, "{}", report.name());
    rows
}

// ---------------------------------------------------------------------------------------------
// The reports.

#[test]
fn corpus_has_what_the_reports_need() {
    let events = &fixture().events;
    assert!(events.len() > 1_500, "{}", events.len());
    let received = events
        .iter()
        .filter(|e| e.stage == "RequestReceived")
        .count();
    let started = events
        .iter()
        .filter(|e| e.stage == "ResponseStarted")
        .count();
    let panics = events.iter().filter(|e| e.stage == "Panic").count();
    assert!(received > 100 && started > 50 && panics == 3);
    assert!(events
        .iter()
        .any(|e| e.exec_command == "sh -c cat /etc/passwd"));
    assert!(events
        .iter()
        .any(|e| e.role_ref == "ClusterRole/cluster-admin"));
    assert!(events
        .iter()
        .any(|e| e.privileged && e.host_pid && e.host_path));
    assert!(!events
        .iter()
        .any(|e| e.subresource == "status" && e.host_network));
    assert!(events
        .iter()
        .any(|e| e.resource.is_empty() && e.request_path == "/openapi/v2"));
}

#[test]
fn top_users_count_each_request_once() {
    let expected = expect(complete, user_columns, |evs| {
        let errors = evs
            .iter()
            .filter(|e| e.status_code.is_some_and(|c| c >= 400))
            .count();
        vec![("errors", json!(errors))]
    });
    let rows = check(Report::TopUsers, expected);
    assert_by_count(&rows, |_| 0);
    // RequestReceived, ResponseStarted and out-of-range events are not counted.
    let total: u64 = rows.iter().map(|r| r["count"].as_u64().unwrap()).sum();
    let all_in_range = fixture().events.iter().filter(|e| in_range(e)).count() as u64;
    assert_eq!(
        total,
        fixture().events.iter().filter(|e| complete(e)).count() as u64
    );
    assert!(total < all_in_range);
    // The authentication failures have no user: an empty key whose query finds them.
    let nobody = rows.iter().find(|r| r["user"] == "").unwrap();
    assert_eq!(nobody["count"], json!(3));
    assert_eq!(nobody["errors"], json!(3));
    assert!(nobody["query"].as_str().unwrap().contains("-user:*"));
    // A user name with quotes and a backslash is escaped in its query.
    let odd = rows.iter().find(|r| r["user"] == ODD.user).unwrap();
    assert!(odd["query"]
        .as_str()
        .unwrap()
        .contains(r#"user:"o'brien \"ops\" \\ team""#));
    // Impersonated requests are a row of their own.
    let dave = rows
        .iter()
        .find(|r| r.get("impersonated_user") == Some(&json!("dave@example.com")))
        .unwrap();
    assert_eq!(dave["user"], json!("kubernetes-admin"));
    assert_eq!(dave["count"], json!(5));
    assert_eq!(dave["errors"], json!(1));
}

#[test]
fn top_resources_sources_and_agents() {
    let expected = expect(
        complete,
        |e| vec![("resource", json!(e.resource)), ("verb", json!(e.verb))],
        none,
    );
    assert_by_count(&check(Report::TopResources, expected), |_| 0);
    let expected = expect(complete, |e| vec![("source_ip", json!(e.source_ip))], none);
    check(Report::TopSourceIps, expected);
    let expected = expect(
        complete,
        |e| vec![("user_agent", json!(e.user_agent))],
        none,
    );
    check(Report::TopUserAgents, expected);
}

#[test]
fn forbidden() {
    let expected = expect(
        denied,
        |e| {
            with(
                user_columns(e),
                vec![("resource", json!(e.resource)), ("verb", json!(e.verb))],
            )
        },
        none,
    );
    check(Report::Forbidden, expected);
}

fn expected_bursts(window: i64, min: usize, min_resources: usize) -> Vec<Value> {
    let mut windows: BTreeMap<String, (Columns, i64, Vec<&AuditEvent>)> = BTreeMap::new();
    for ev in fixture().events.iter().filter(|e| denied(e)) {
        let start = ev.timestamp.0.div_euclid(window) * window;
        let cols = user_columns(ev);
        let key = format!("{}{start}", serde_json::to_string(&cols).unwrap());
        windows
            .entry(key)
            .or_insert_with(|| (cols, start, Vec::new()))
            .2
            .push(ev);
    }
    let rows = windows
        .into_values()
        .filter_map(|(cols, start, evs)| {
            let resources: BTreeSet<&str> = evs
                .iter()
                .map(|e| e.resource.as_str())
                .filter(|r| !r.is_empty())
                .collect();
            if evs.len() < min || resources.len() < min_resources {
                return None;
            }
            let mut row = Map::new();
            for (name, value) in cols {
                row.insert(name.to_string(), value);
            }
            row.insert("window_start".into(), rfc(start));
            row.insert("distinct_resources".into(), json!(resources.len()));
            row.insert("count".into(), json!(evs.len()));
            row.insert(
                "first_seen".into(),
                rfc(evs.iter().map(|e| e.timestamp.0).min().unwrap()),
            );
            row.insert(
                "last_seen".into(),
                rfc(evs.iter().map(|e| e.timestamp.0).max().unwrap()),
            );
            Some(Value::Object(row))
        })
        .collect();
    sorted(rows)
}

#[test]
fn forbidden_bursts() {
    let expected = expected_bursts(5 * MIN, 5, 3);
    assert_eq!(expected.len(), 1, "{expected:?}");
    assert_eq!(expected[0]["user"], json!("carol@example.com"));
    let rows = check(Report::ForbiddenBursts, expected);
    assert!(rows[0]["query"]
        .as_str()
        .unwrap()
        .contains("timestamp:[2026-01-10T10:30:00.000000000Z TO 2026-01-10T10:35:00.000000000Z}"));

    // The straddling burst shows in ten-minute windows with lower thresholds.
    let mut req = request(Report::ForbiddenBursts);
    req.burst_window = 10 * MIN;
    req.burst_min = 3;
    req.burst_min_resources = 2;
    let expected = expected_bursts(10 * MIN, 3, 2);
    assert!(expected.len() >= 2, "{expected:?}");
    assert_eq!(comparable(&run(&req)), expected);
}

/// System components by the default settings' rule, evaluated here by plain glob matching.
fn is_system(ev: &AuditEvent, settings: &ReportSettings) -> bool {
    settings
        .system_users
        .iter()
        .any(|g| glob_match(g, &ev.user))
        || ev
            .user_groups
            .iter()
            .any(|group| settings.system_groups.iter().any(|g| glob_match(g, group)))
}

fn expected_secret_access(settings: &ReportSettings) -> Vec<Value> {
    expect(
        |e| {
            complete(e)
                && e.resource == "secrets"
                && matches!(e.verb.as_str(), "get" | "list" | "watch")
                && !is_system(e, settings)
        },
        |e| {
            let allowed = e.status_code.is_some_and(|c| c < 400);
            with(
                user_columns(e),
                vec![
                    ("namespace", json!(e.namespace)),
                    ("outcome", json!(if allowed { "allowed" } else { "failed" })),
                ],
            )
        },
        none,
    )
}

#[test]
fn secret_access_leaves_system_components_out() {
    let settings = ReportSettings::default();
    let expected = expected_secret_access(&settings);
    let rows = check(Report::SecretAccess, expected);
    let users: BTreeSet<&str> = rows.iter().map(|r| r["user"].as_str().unwrap()).collect();
    assert!(users.contains("system:serviceaccount:monitoring:prometheus"));
    assert!(users.contains(ODD.user));
    assert!(!users
        .iter()
        .any(|u| u.starts_with("system:node:") || *u == KCM.user));
    assert!(rows
        .iter()
        .any(|r| r["outcome"] == "failed" && r["user"] == BOB.user));

    // Nodes excluded by a group glob only: the group names are looked up in the index.
    let settings = ReportSettings {
        system_users: vec!["system:kube-*".to_string()],
        system_groups: vec![
            "system:node*".to_string(),
            "system:serviceaccounts:kube-*".to_string(),
        ],
    };
    let expected = expected_secret_access(&settings);
    let rows = run_with(&request(Report::SecretAccess), &settings);
    assert_eq!(comparable(&rows), expected);
    assert!(rows[0]["query"]
        .as_str()
        .unwrap()
        .contains(r#"-user_groups:"system:nodes""#));
}

#[test]
fn token_requests() {
    let expected = expect(
        |e| {
            complete(e)
                && e.resource == "serviceaccounts"
                && e.subresource == "token"
                && e.verb == "create"
        },
        |e| {
            with(
                user_columns(e),
                vec![("namespace", json!(e.namespace)), ("name", json!(e.name))],
            )
        },
        none,
    );
    check(Report::TokenRequests, expected);
}

#[test]
fn exec_attach_counts_sessions_once() {
    let expected = expect(
        |e| {
            in_range(e)
                && e.resource == "pods"
                && ((e.stage == "ResponseStarted"
                    && matches!(e.subresource.as_str(), "exec" | "attach" | "portforward"))
                    || (complete(e) && e.subresource == "ephemeralcontainers"))
        },
        |e| {
            with(
                user_columns(e),
                vec![
                    ("namespace", json!(e.namespace)),
                    ("name", json!(e.name)),
                    ("subresource", json!(e.subresource)),
                    ("exec_container", json!(e.exec_container)),
                    ("exec_command", json!(e.exec_command)),
                ],
            )
        },
        none,
    );
    let rows = check(Report::ExecAttach, expected);
    let exec = rows
        .iter()
        .find(|r| r["subresource"] == "exec" && r["user"] == ALICE.user);
    let exec = exec.unwrap();
    assert_eq!(exec["count"], json!(2));
    assert_eq!(exec["exec_command"], json!("sh -c cat /etc/passwd"));
    assert_eq!(exec["exec_container"], json!("app"));
}

#[test]
fn deletions_with_names() {
    let expected = expect(
        |e| complete(e) && matches!(e.verb.as_str(), "delete" | "deletecollection"),
        |e| {
            with(
                vec![
                    ("resource", json!(e.resource)),
                    ("namespace", json!(e.namespace)),
                ],
                user_columns(e),
            )
        },
        |evs| {
            let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
            for e in evs.iter().filter(|e| !e.name.is_empty()) {
                *counts.entry(e.name.as_str()).or_default() += 1;
            }
            let mut names: Vec<(usize, &str)> = counts.into_iter().map(|(n, c)| (c, n)).collect();
            names.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
            let names: Vec<&str> = names.into_iter().take(10).map(|(_, n)| n).collect();
            vec![("names", json!(names))]
        },
    );
    let rows = check(Report::Deletions, expected);
    let pods = rows.iter().find(|r| r["resource"] == "pods").unwrap();
    assert_eq!(pods["count"], json!(14));
    let names = pods["names"].as_array().unwrap();
    assert_eq!(names.len(), 10);
    assert_eq!(names[0], json!("web-03"));
}

#[test]
fn privileged_pods_with_their_flags() {
    let flags = [
        "privileged",
        "host_pid",
        "host_network",
        "host_ipc",
        "host_path",
    ];
    let flag = |e: &AuditEvent, f: &str| match f {
        "privileged" => e.privileged,
        "host_pid" => e.host_pid,
        "host_network" => e.host_network,
        "host_ipc" => e.host_ipc,
        _ => e.host_path,
    };
    let expected = expect(
        |e| {
            complete(e)
                && matches!(e.verb.as_str(), "create" | "update" | "patch")
                && flags.iter().any(|f| flag(e, f))
        },
        |e| {
            with(
                user_columns(e),
                vec![
                    ("resource", json!(e.resource)),
                    ("namespace", json!(e.namespace)),
                    ("name", json!(e.name)),
                ],
            )
        },
        |evs| {
            let seen: Vec<&str> = flags
                .iter()
                .copied()
                .filter(|f| evs.iter().any(|e| flag(e, f)))
                .collect();
            vec![("flags", json!(seen))]
        },
    );
    let rows = check(Report::PrivilegedPods, expected);
    let debug = rows.iter().find(|r| r["name"] == "debug-node").unwrap();
    assert_eq!(
        debug["flags"],
        json!(["privileged", "host_pid", "host_network", "host_path"])
    );
    assert_eq!(debug["count"], json!(2));
}

#[test]
fn anonymous_allowed_first() {
    let expected = expect(
        |e| {
            complete(e)
                && (e.user == "system:anonymous"
                    || e.user_groups.iter().any(|g| g == "system:unauthenticated"))
        },
        |e| {
            with(
                user_columns(e),
                vec![
                    ("verb", json!(e.verb)),
                    ("request_path", json!(e.request_path)),
                    ("status_code", json!(e.status_code)),
                ],
            )
        },
        none,
    );
    let rows = check(Report::Anonymous, expected);
    let allowed =
        |r: &Map<String, Value>| u8::from(r["status_code"].as_i64().is_none_or(|c| c >= 400));
    assert_by_count(&rows, allowed);
    assert_eq!(allowed(&rows[0]), 0);
    assert_eq!(allowed(rows.last().unwrap()), 1);
    // A panic before any status: a missing integer key, its own row and query.
    let panicked = rows.iter().find(|r| r["status_code"].is_null()).unwrap();
    assert_eq!(panicked["request_path"], json!("/version"));
    assert!(panicked["query"]
        .as_str()
        .unwrap()
        .ends_with("-status_code:*"));
}

#[test]
fn rbac_changes_flag_cluster_admin() {
    let expected = expect(
        |e| {
            complete(e)
                && matches!(
                    e.resource.as_str(),
                    "roles" | "rolebindings" | "clusterroles" | "clusterrolebindings"
                )
                && matches!(e.verb.as_str(), "create" | "update" | "patch" | "delete")
        },
        |e| {
            with(
                user_columns(e),
                vec![
                    ("verb", json!(e.verb)),
                    ("resource", json!(e.resource)),
                    ("namespace", json!(e.namespace)),
                    ("name", json!(e.name)),
                    ("role_ref", json!(e.role_ref)),
                    (
                        "cluster_admin",
                        json!(e.role_ref == "ClusterRole/cluster-admin"),
                    ),
                ],
            )
        },
        none,
    );
    let rows = check(Report::RbacChanges, expected);
    // Both cluster-admin bindings (alice's, and bob's denied attempt) come first.
    assert_eq!(rows[0]["cluster_admin"], json!(true));
    assert_eq!(rows[1]["cluster_admin"], json!(true));
    assert!(rows[2..].iter().all(|r| r["cluster_admin"] == json!(false)));
}

#[test]
fn impersonation() {
    let expected = expect(
        |e| complete(e) && !e.impersonated_user.is_empty(),
        |e| {
            with(
                user_columns(e),
                vec![("verb", json!(e.verb)), ("resource", json!(e.resource))],
            )
        },
        none,
    );
    check(Report::Impersonation, expected);
}

fn expected_timeline(keep: impl Fn(&AuditEvent) -> bool, interval: i64) -> Vec<Value> {
    let first = START.div_euclid(interval);
    let last = (END - 1).div_euclid(interval);
    (first..=last)
        .map(|k| {
            let from = k * interval;
            let evs: Vec<&AuditEvent> = fixture()
                .events
                .iter()
                .filter(|e| keep(e) && (from..from + interval).contains(&e.timestamp.0))
                .collect();
            let class = |c: &str| evs.iter().filter(|e| e.status_class == c).count();
            let time = |t: Option<i64>| t.map_or(Value::Null, rfc);
            json!({
                "interval_start": rfc(from),
                "count": evs.len(),
                "2xx": class("2xx"), "3xx": class("3xx"), "4xx": class("4xx"), "5xx": class("5xx"),
                "first_seen": time(evs.iter().map(|e| e.timestamp.0).min()),
                "last_seen": time(evs.iter().map(|e| e.timestamp.0).max()),
            })
        })
        .collect()
}

#[test]
fn timeline_covers_the_range_in_order() {
    // 110 minutes in about 60 intervals: five minutes each.
    let rows = run(&request(Report::Timeline));
    assert_eq!(rows.len(), 22);
    assert_eq!(without_query(&rows), expected_timeline(complete, 5 * MIN));

    // The first interval starts before `start`; `limit` keeps the oldest.
    let mut req = request(Report::Timeline);
    req.interval = Some(15 * MIN);
    req.limit = 3;
    let rows = run(&req);
    assert_eq!(rows.len(), 3);
    assert_eq!(
        rows[0]["interval_start"],
        json!("2026-01-10T10:00:00.000000000Z")
    );
    assert_eq!(
        without_query(&rows),
        expected_timeline(complete, 15 * MIN)[..3]
    );

    // Sparse events: empty intervals are rows too, with a count of 0 and no times.
    let mut req = request(Report::Timeline);
    req.interval = Some(10 * MIN);
    req.q = Some(format!("user:{}", quote(ODD.user)));
    let rows = run(&req);
    let expected = expected_timeline(|e| complete(e) && e.user == ODD.user, 10 * MIN);
    assert_eq!(without_query(&rows), expected);
    let empty = rows.iter().find(|r| r["count"] == json!(0)).unwrap();
    assert_eq!(empty["first_seen"], Value::Null);
}

fn without_query(rows: &[Map<String, Value>]) -> Vec<Value> {
    rows.iter()
        .map(|r| {
            let mut r = r.clone();
            r.remove("query");
            Value::Object(r)
        })
        .collect()
}

/// The exact value of quantile `q` lies between the sorted values around rank `q * (n - 1)`;
/// the estimate must be within 2% of that range.
fn assert_near_quantile(estimate: f64, sorted: &[i64], q: f64) {
    let rank = q * (sorted.len() - 1) as f64;
    let lo = sorted[rank.floor() as usize] as f64;
    let hi = sorted[rank.ceil() as usize] as f64;
    assert!(
        estimate >= lo * 0.98 - 0.5 && estimate <= hi * 1.02 + 0.5,
        "{estimate} not near [{lo}, {hi}] of {sorted:?}"
    );
}

#[test]
fn latency_percentiles() {
    let expected = expect(
        complete,
        |e| vec![("verb", json!(e.verb)), ("resource", json!(e.resource))],
        none,
    );
    let rows = run(&request(Report::Latency));
    let without_percentiles: Vec<Map<String, Value>> = rows
        .iter()
        .map(|r| {
            let mut r = r.clone();
            for p in ["p50", "p90", "p99"] {
                r.remove(p);
            }
            r
        })
        .collect();
    assert_eq!(comparable(&without_percentiles), expected);
    for row in &rows {
        let mut latencies: Vec<i64> = fixture()
            .events
            .iter()
            .filter(|e| complete(e) && e.verb == row["verb"] && e.resource == row["resource"])
            .filter_map(|e| e.latency_ms)
            .collect();
        latencies.sort_unstable();
        for (name, q) in [("p50", 0.5), ("p90", 0.9), ("p99", 0.99)] {
            assert_near_quantile(row[name].as_f64().unwrap(), &latencies, q);
        }
    }
}

#[test]
fn q_narrows_every_row_and_its_query() {
    let mut req = request(Report::TopUsers);
    req.q = Some("namespace:shop".to_string());
    let rows = run(&req);
    let expected = expect(
        |e| complete(e) && e.namespace == "shop",
        user_columns,
        |evs| {
            let errors = evs
                .iter()
                .filter(|e| e.status_code.is_some_and(|c| c >= 400))
                .count();
            vec![("errors", json!(errors))]
        },
    );
    assert_eq!(comparable(&rows), expected);
    assert!(rows
        .iter()
        .all(|r| r["query"].as_str().unwrap().contains("(namespace:shop)")));

    let mut req = request(Report::Timeline);
    req.q = Some("verb:watch".to_string());
    let rows = run(&req);
    assert!(
        rows.iter()
            .map(|r| r["count"].as_u64().unwrap())
            .sum::<u64>()
            > 0
    );
}

#[test]
fn limit_keeps_the_first_rows() {
    let all = run(&request(Report::TopResources));
    let mut req = request(Report::TopResources);
    req.limit = 3;
    assert_eq!(run(&req), all[..3].to_vec());
    req.limit = 0;
    assert!(run(&req).is_empty());
}

#[test]
fn a_bad_q_is_an_invalid_query() {
    let mut req = request(Report::Forbidden);
    req.q = Some("user:(".to_string());
    let err = run_report(
        &fixture().snapshot,
        &req,
        &ReportSettings::default(),
        &limits(),
    )
    .unwrap_err();
    assert!(matches!(err, Error::InvalidQuery(_)), "{err}");
}

#[test]
fn too_many_groups_is_too_expensive() {
    let req = request(Report::TopUserAgents);
    let run = |limits: &QueryLimits| {
        run_report(
            &fixture().snapshot,
            &req,
            &ReportSettings::default(),
            limits,
        )
    };
    let small = QueryLimits {
        aggregation_bucket_limit: 5,
        report_group_limit: 5,
        ..limits()
    };
    let err = run(&small).unwrap_err();
    assert!(matches!(err, Error::TooExpensive(_)), "{err}");
    assert!(err.to_string().contains("more than 5 groups"), "{err}");
    // Reports have their own group limit: a search's bucket limit does not cut them short.
    let searches_small = QueryLimits {
        aggregation_bucket_limit: 5,
        ..limits()
    };
    let answer = run(&searches_small).unwrap();
    assert_eq!(answer.rows, run(&limits()).unwrap().rows);
    assert!(answer.rows.len() > 5, "{} rows", answer.rows.len());
}

// ---------------------------------------------------------------------------------------------
// Parameters.

fn now() -> Timestamp {
    Timestamp(T0)
}

#[test]
fn parameters_are_validated() {
    let parse = |report, params| ReportRequest::parse(report, params, now(), &limits());
    let req = parse(Report::TopUsers, ReportParams::default()).unwrap();
    assert_eq!(req.limit, 100);
    assert_eq!((req.start, req.end, req.q.clone()), (None, None, None));
    let req = parse(
        Report::ForbiddenBursts,
        ReportParams {
            start: Some("now-1h".into()),
            q: Some(" * ".into()),
            min: Some(10),
            window: Some("2m".into()),
            ..ReportParams::default()
        },
    )
    .unwrap();
    assert_eq!(req.start, Some(Timestamp(T0 - 60 * MIN)));
    assert_eq!(req.q, None);
    assert_eq!(
        (req.burst_min, req.burst_min_resources, req.burst_window),
        (10, 3, 2 * MIN)
    );
    let req = parse(
        Report::Timeline,
        ReportParams {
            interval: Some("1d".into()),
            ..ReportParams::default()
        },
    )
    .unwrap();
    assert_eq!(req.interval, Some(86_400 * SEC));

    let refused = [
        (Report::TopUsers, ReportParams { limit: Some(10_001), ..Default::default() }, "`limit` 10001 exceeds the maximum of 10000"),
        (Report::TopUsers, ReportParams { window: Some("5m".into()), ..Default::default() }, "`window` applies to the `forbidden-bursts` report only"),
        (Report::Latency, ReportParams { interval: Some("5m".into()), ..Default::default() }, "`interval` applies to the `timeline` report only"),
        (Report::ForbiddenBursts, ReportParams { window: Some("5x".into()), ..Default::default() }, "`window`: `5x` is not a duration such as `30s`, `5m`, `1h` or `1d`"),
        (Report::Timeline, ReportParams { interval: Some("0s".into()), ..Default::default() }, "`interval` must be between 1s and 366d"),
        (Report::Timeline, ReportParams { interval: Some("400d".into()), ..Default::default() }, "`interval` must be between 1s and 366d"),
        (Report::Timeline, ReportParams { start: Some("now".into()), end: Some("now-1m".into()), ..Default::default() }, "`start` (2026-01-10T10:00:00.000000000Z) is after `end` (2026-01-10T09:59:00.000000000Z)"),
    ];
    for (report, params, message) in refused {
        let err = parse(report, params).unwrap_err();
        assert!(matches!(err, Error::InvalidArgument(_)));
        assert_eq!(err.to_string(), message);
    }
    assert!(parse(
        Report::TopUsers,
        ReportParams {
            start: Some("yesterday".into()),
            ..Default::default()
        }
    )
    .is_err());
}

#[test]
fn automatic_intervals() {
    assert_eq!(auto_interval(None, Some(T0)), 3_600 * SEC);
    assert_eq!(auto_interval(Some(T0), Some(T0 + 60 * MIN)), 60 * SEC);
    assert_eq!(auto_interval(Some(T0), Some(T0 + 61 * MIN)), 300 * SEC);
    assert_eq!(
        auto_interval(Some(T0), Some(T0 + 24 * 60 * MIN)),
        1_800 * SEC
    );
    assert_eq!(auto_interval(Some(T0), Some(T0)), SEC);
    assert_eq!(
        auto_interval(Some(T0), Some(T0 + 365 * 86_400 * SEC)),
        7 * 86_400 * SEC
    );
    assert_eq!(
        auto_interval(Some(T0), Some(T0 + 3_650 * 86_400 * SEC)),
        61 * 86_400 * SEC
    );
}

#[test]
fn report_names_round_trip() {
    for report in Report::ALL {
        assert_eq!(Report::from_name(report.name()), Some(report));
    }
    assert_eq!(Report::from_name("top_users"), None);
}

// ---------------------------------------------------------------------------------------------
// The route.

async fn get(uri: &str) -> (StatusCode, Value) {
    let app = routes(
        Arc::new(crate::testutil::Fixture::new(fixture().snapshot.clone())),
        ReportSettings::default(),
        limits(),
    );
    let response = app
        .oneshot(Request::get(uri).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let body = to_bytes(response.into_body(), 1 << 22).await.unwrap();
    (status, serde_json::from_slice(&body).unwrap())
}

#[tokio::test]
async fn route_answers_rows() {
    let (status, body) = get(
        "/api/v1/audit/reports/token-requests?start=2026-01-10T10:05:00Z&end=2026-01-10T11:55:00Z&limit=2",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["report"], json!("token-requests"));
    assert!(body["took_ms"].is_u64());
    assert!(body.get("timed_out").is_none());
    let rows = body["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["count"], json!(3));
    assert_eq!(rows[0]["namespace"], json!("shop"));
    assert_eq!(rows[0]["name"], json!("default"));
}

#[tokio::test]
async fn route_errors() {
    let (status, body) = get("/api/v1/audit/reports/top-hackers").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], json!("unknown_report"));
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with(
            "unknown report `top-hackers`; the reports are: top-users, top-resources,"
        ),
        "{message}"
    );
    assert!(message.ends_with("timeline, latency"), "{message}");

    let (status, body) = get("/api/v1/audit/reports/top-users?window=5m").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], json!("invalid_argument"));
    let (status, body) = get("/api/v1/audit/reports/top-users?limt=5").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("unknown field `limt`"));
    let (status, body) = get("/api/v1/audit/reports/forbidden?q=user:(").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], json!("invalid_query"));
}
