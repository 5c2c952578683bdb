//! Reports as a searcher runs them: its own part merged with the other parts' groups, each
//! part answered by the report leaf and carried over the wire (postcard, as between
//! processes). Every report, with and without `q`, `limit`, `group_by=cluster` and system
//! group globs, must give exactly the rows of one snapshot holding every target, whichever
//! targets the searcher holds itself.

use std::collections::HashSet;

use super::*;
use crate::access::Scope;
use crate::reports::group::PassSpec;
use crate::reports::{LeafAnswer, LeafRequest, RemoteGroups, WireGroups};

/// Other parts answered in this process, through the leaf and the wire encoding.
struct Parts {
    parts: Vec<StreamSnapshot>,
    scope: Scope,
}

impl Parts {
    fn ask(&self, request: &LeafRequest) -> Vec<LeafAnswer> {
        // The request travels as JSON, the answer as postcard: both ways as over HTTP.
        let request: LeafRequest =
            serde_json::from_value(serde_json::to_value(request).unwrap()).unwrap();
        self.parts
            .iter()
            .map(|part| {
                let answer =
                    crate::reports::leaf::answer(part, &request, &self.scope, &limits()).unwrap();
                postcard::from_bytes(&postcard::to_stdvec(&answer).unwrap()).unwrap()
            })
            .collect()
    }
}

impl RemoteGroups for Parts {
    fn groups(&self, pass: &PassSpec) -> crate::error::Result<Vec<WireGroups>> {
        Ok(self
            .ask(&LeafRequest::Pass(pass.clone()))
            .into_iter()
            .map(|answer| match answer {
                LeafAnswer::Groups(groups) => groups,
                LeafAnswer::Terms(_) => panic!("terms for a pass"),
            })
            .collect())
    }

    fn terms(
        &self,
        field: &str,
        globs: &[String],
        start: Option<Timestamp>,
        end: Option<Timestamp>,
    ) -> crate::error::Result<Vec<String>> {
        let request = LeafRequest::Terms {
            field: field.to_string(),
            globs: globs.to_vec(),
            start: start.map(|t| t.0),
            end: end.map(|t| t.0),
        };
        Ok(self
            .ask(&request)
            .into_iter()
            .flat_map(|answer| match answer {
                LeafAnswer::Terms(terms) => terms,
                LeafAnswer::Groups(_) => panic!("groups for terms"),
            })
            .collect())
    }
}

/// The fixture's snapshot with only the targets named.
fn part(ids: &[&str]) -> StreamSnapshot {
    let mut snapshot = fixture().snapshot.clone();
    let keep: HashSet<&str> = ids.iter().copied().collect();
    snapshot.targets.retain(|t| keep.contains(t.id.as_str()));
    snapshot
}

type Rows = Vec<Map<String, Value>>;

/// The report's rows over every target, and as a searcher holding `own` gets them with the
/// other targets each a part of its own.
fn both(req: &ReportRequest, settings: &ReportSettings, own: &[&str]) -> (Rows, Rows) {
    let whole = run_report(&fixture().snapshot, req, settings, &limits()).unwrap();
    let others: Vec<StreamSnapshot> = ["split-a", "split-b", "hot"]
        .into_iter()
        .filter(|id| !own.contains(id))
        .map(|id| part(&[id]))
        .collect();
    assert_eq!(others.len(), 3 - own.len());
    let remote = Parts {
        parts: others,
        scope: req.scope.clone(),
    };
    let merged = run_report_with(&part(own), req, settings, &limits(), Some(&remote)).unwrap();
    assert!(!merged.timed_out);
    (whole.rows, merged.rows)
}

fn requests() -> Vec<(String, ReportRequest)> {
    let mut all = Vec::new();
    for report in Report::ALL {
        if report.stream() != trawl_model::AUDIT_STREAM {
            continue;
        }
        all.push((report.name().to_string(), request(report)));
        // Few rows: the top-N choice over merged groups, with ties.
        all.push((
            format!("{} limit=3", report.name()),
            ReportRequest {
                limit: 3,
                ..request(report)
            },
        ));
        all.push((
            format!("{} by cluster, q", report.name()),
            ReportRequest {
                by_cluster: true,
                q: Some("-namespace:kube-system".to_string()),
                ..request(report)
            },
        ));
    }
    all.push((
        "forbidden-bursts min=2 window=1m".to_string(),
        ReportRequest {
            burst_min: 2,
            burst_min_resources: 2,
            burst_window: 60 * SEC,
            ..request(Report::ForbiddenBursts)
        },
    ));
    all.push((
        "timeline 10m".to_string(),
        ReportRequest {
            interval: Some(10 * MIN),
            ..request(Report::Timeline)
        },
    ));
    all
}

#[test]
fn every_report_through_a_searcher_is_the_report_over_every_part() {
    let globs = ReportSettings {
        system_users: vec!["system:kube-*".to_string()],
        system_groups: vec![
            "system:node*".to_string(),
            "system:serviceaccounts:kube-*".to_string(),
        ],
    };
    let mut compared = 0;
    for settings in [ReportSettings::default(), globs] {
        for (name, req) in requests() {
            // The searcher holds one target, none, or two.
            for own in [&["split-a"][..], &[], &["split-b", "hot"]] {
                let (whole, merged) = both(&req, &settings, own);
                assert_eq!(merged, whole, "{name} with own part {own:?}");
                compared += 1;
            }
        }
    }
    // Every audit report, three ways each, plus two, under two settings, from three parts.
    assert_eq!(compared, 2 * (16 * 3 + 2) * 3);
}

#[test]
fn a_report_of_a_scoped_caller_through_a_searcher_sees_its_namespace_only() {
    let req = ReportRequest {
        scope: Scope::namespaces(["shop"]),
        ..request(Report::TopResources)
    };
    let (whole, merged) = both(&req, &ReportSettings::default(), &["hot"]);
    assert_eq!(merged, whole);
    let total: u64 = whole.iter().map(|r| r["count"].as_u64().unwrap()).sum();
    let expected = fixture()
        .events
        .iter()
        .filter(|e| in_range(e) && complete(e) && e.namespace == "shop")
        .count() as u64;
    assert_eq!(total, expected);
    assert!(total > 0);
}

#[test]
fn groups_that_do_not_match_the_pass_are_refused() {
    let spec = PassSpec::new(
        "*",
        &[crate::reports::engine::Key::Str("user")],
        &[],
        Some(Timestamp(START)),
        Some(Timestamp(END)),
    );
    let answer = crate::reports::leaf::answer(
        &fixture().snapshot,
        &LeafRequest::Pass(spec.clone()),
        &Scope::All,
        &limits(),
    )
    .unwrap();
    let LeafAnswer::Groups(groups) = answer else {
        panic!("a pass answers groups");
    };
    // Two keys asked, one named: an indexer of another pass.
    let two = [
        crate::reports::engine::Key::Str("user"),
        crate::reports::engine::Key::Str("verb"),
    ];
    let err = groups.clone().into_target(&two, &[]).err().unwrap();
    assert!(err.to_string().contains("do not match"), "{err}");
    let err = groups
        .into_target(
            &[crate::reports::engine::Key::Str("user")],
            &[crate::reports::group::Extra::Any("privileged")],
        )
        .err()
        .unwrap();
    assert!(err.to_string().contains("do not match"), "{err}");

    // A field that is not a column, and terms of another field, are bad requests.
    let bad = PassSpec::new(
        "*",
        &[crate::reports::engine::Key::Str("status_message")],
        &[],
        None,
        None,
    );
    let err = crate::reports::leaf::answer(
        &fixture().snapshot,
        &LeafRequest::Pass(bad),
        &Scope::All,
        &limits(),
    )
    .err()
    .unwrap();
    assert!(
        matches!(err, crate::error::Error::InvalidArgument(_)),
        "{err}"
    );
    let err = crate::reports::leaf::answer(
        &fixture().snapshot,
        &LeafRequest::Terms {
            field: "user".into(),
            globs: vec!["*".into()],
            start: None,
            end: None,
        },
        &Scope::All,
        &limits(),
    )
    .err()
    .unwrap();
    assert!(
        matches!(err, crate::error::Error::InvalidArgument(_)),
        "{err}"
    );
}
