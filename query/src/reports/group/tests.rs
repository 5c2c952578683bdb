//! The typed grouping against a plain reference on the same input: the documents a query
//! finds through tantivy's own collector, each document's values read one at a time from its
//! columns, grouped in a `BTreeMap` by named values. Three targets (two splits of several
//! segments and a hot index) with deleted documents, sparse and optional columns, empty
//! keywords beside missing ones, one-event groups, time ranges cut at a document's time, scopes
//! and `group_by=cluster`; every pass is run twice, so that the second answers sealed splits
//! from the cache.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use sketches_ddsketch::{Config, DDSketch};
use tantivy::collector::DocSetCollector;
use tantivy::indexer::NoMergePolicy;
use tantivy::{DateTime, Index, IndexWriter, TantivyDocument, Term};
use trawl_index::schema::build_schema;
use trawl_index::{SearchTarget, StreamSnapshot, TargetKind};
use trawl_model::schema::{AUDIT_DEFAULT_FIELDS, AUDIT_FIELDS};
use trawl_model::Timestamp;

use super::{window_start, Extra, ExtraValue};
use crate::access::Scope;
use crate::reports::engine::{top, Ctx, Group, Key, KeyValue, RankOf};
use crate::reports::filter::join;
use crate::reports::tests::corpus::Rng;
use crate::reports::{Report, ReportRequest, ReportSettings};
use crate::request::QueryLimits;
use crate::search::TIMESTAMP_FIELD;

const T0: i64 = 1_768_039_200_000_000_000;
const SEC: i64 = 1_000_000_000;

/// The documents' times, for the tests to cut ranges at.
struct Fixture {
    snapshot: StreamSnapshot,
    times: Vec<i64>,
}

/// A document of seeded values; some fields absent, some empty.
fn document(schema: &tantivy::schema::Schema, rng: &mut Rng, i: usize, ts: i64) -> TantivyDocument {
    let field = |name: &str| schema.get_field(name).unwrap();
    let mut doc = TantivyDocument::new();
    doc.add_date(field(TIMESTAMP_FIELD), DateTime::from_timestamp_nanos(ts));
    doc.add_text(field("audit_id"), format!("id-{i}"));
    let stage = [
        "ResponseComplete",
        "ResponseComplete",
        "ResponseComplete",
        "RequestReceived",
    ][rng.below(4) as usize];
    doc.add_text(
        field("stage"),
        if i.is_multiple_of(97) { "Panic" } else { stage },
    );
    let users = [
        "alice",
        "bob",
        "carol",
        "system:kube-controller-manager",
        "zed",
    ];
    doc.add_text(field("user"), users[rng.below(users.len() as u64) as usize]);
    if rng.below(20) == 0 {
        doc.add_text(
            field("impersonated_user"),
            ["mallory", "trent"][rng.below(2) as usize],
        );
    }
    match rng.below(10) {
        0 => {}                                    // cluster-scoped: no namespace
        1 => doc.add_text(field("namespace"), ""), // present but empty
        n => doc.add_text(field("namespace"), format!("ns-{}", n % 4)),
    }
    if rng.below(10) < 7 {
        // Mostly one event per name.
        doc.add_text(field("name"), format!("pod-{}", rng.below(100_000)));
    }
    if stage != "RequestReceived" {
        let code = [200, 201, 304, 403, 404, 500][rng.below(6) as usize];
        doc.add_i64(field("status_code"), code);
        doc.add_text(field("status_class"), format!("{}xx", code / 100));
        if rng.below(5) > 0 {
            doc.add_i64(
                field("latency_ms"),
                (rng.below(3_000) * rng.below(4)) as i64,
            );
        }
    }
    if rng.below(8) == 0 {
        doc.add_bool(field("privileged"), rng.below(2) == 0);
    }
    doc.add_text(field("cluster"), ["east", "west"][rng.below(2) as usize]);
    doc
}

fn fixture() -> &'static Fixture {
    static FIXTURE: std::sync::OnceLock<Fixture> = std::sync::OnceLock::new();
    FIXTURE.get_or_init(|| {
        let schema = build_schema(AUDIT_FIELDS);
        let mut rng = Rng(7);
        let mut times = Vec::new();
        let mut targets = Vec::new();
        let mut i = 0usize;
        // (id, kind, segments, documents per segment); split-c's segment is read in several
        // batches of the grouping loops, the last one short.
        let layout = [
            ("split-a", TargetKind::Split, 3, 700),
            ("split-b", TargetKind::Split, 2, 900),
            (
                "split-c",
                TargetKind::Split,
                1,
                2 * super::GROUP_BATCH + 300,
            ),
            ("hot", TargetKind::Hot, 1, 500),
        ];
        for (id, kind, segments, per_segment) in layout {
            let index = Index::create_in_ram(schema.clone());
            let mut writer: IndexWriter = index.writer_with_num_threads(1, 15_000_000).unwrap();
            writer.set_merge_policy(Box::new(NoMergePolicy));
            let (mut min, mut max) = (i64::MAX, i64::MIN);
            for _ in 0..segments {
                for _ in 0..per_segment {
                    // Times out of document order, with ties.
                    let ts = T0 + (rng.below(3_600) as i64) * SEC + (i % 3) as i64;
                    times.push(ts);
                    (min, max) = (min.min(ts), max.max(ts));
                    writer
                        .add_document(document(&schema, &mut rng, i, ts))
                        .unwrap();
                    i += 1;
                }
                writer.commit().unwrap();
            }
            // Delete every seventh document of the target (the splits' and the hot index's).
            let audit_id = schema.get_field("audit_id").unwrap();
            for d in (i - segments * per_segment..i).step_by(7) {
                writer.delete_term(Term::from_field_text(audit_id, &format!("id-{d}")));
            }
            writer.commit().unwrap();
            let searcher = index.reader().unwrap().searcher();
            assert!(searcher.segment_readers().iter().all(|r| r.has_deletes()));
            targets.push(SearchTarget::new(
                kind,
                id,
                searcher,
                Some(Timestamp(min)),
                Some(Timestamp(max)),
                None,
            ));
        }
        times.sort_unstable();
        Fixture {
            snapshot: StreamSnapshot {
                stream: "audit".to_string(),
                default_fields: AUDIT_DEFAULT_FIELDS
                    .iter()
                    .map(|f| schema.get_field(f).unwrap())
                    .collect(),
                schema,
                tokenizers: tantivy::tokenizer::TokenizerManager::default(),
                targets,
            },
            times,
        }
    })
}

/// A group's figures in a comparable form: sketches by their count and percentiles.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Figures {
    count: u64,
    first: Option<i64>,
    last: Option<i64>,
    extras: Vec<String>,
}

fn extra_text(extra: &ExtraValue) -> String {
    match extra {
        ExtraValue::Terms(terms) => {
            let sorted: BTreeMap<&str, u64> = terms.iter().map(|(k, v)| (k.as_ref(), *v)).collect();
            format!("{sorted:?}")
        }
        ExtraValue::Any(any) => format!("any {any}"),
        ExtraValue::Sketch(sketch) => {
            let q = |p: f64| sketch.quantile(p).ok().flatten().map(f64::to_bits);
            format!(
                "sketch {} {:?} {:?} {:?}",
                sketch.count(),
                q(0.5),
                q(0.9),
                q(0.99)
            )
        }
        ExtraValue::Max(max) => format!("max {max:?}"),
    }
}

type Named = BTreeMap<Vec<KeyValue>, Figures>;

fn named(groups: &[Group]) -> Named {
    let mut out = Named::new();
    for g in groups {
        let values: Vec<KeyValue> = g.values.iter().map(|(_, v)| v.clone()).collect();
        let figures = Figures {
            count: g.count,
            first: g.first,
            last: g.last,
            extras: g.extras.iter().map(extra_text).collect(),
        };
        assert!(
            out.insert(values, figures).is_none(),
            "two groups of the same values"
        );
    }
    out
}

/// The plain grouping: tantivy's collector finds the documents, each value is read alone.
fn reference(ctx: &Ctx, text: &str, keys: &[Key], extras: &[Extra]) -> Vec<Group> {
    let request = ctx.request;
    let snapshot = ctx.snapshot;
    let keys: Vec<Key> = if request.by_cluster {
        std::iter::once(Key::Str("cluster"))
            .chain(keys.iter().copied())
            .collect()
    } else {
        keys.to_vec()
    };
    let query =
        crate::query_text::build_query(snapshot, text, request.start, request.end, &request.scope)
            .unwrap();
    let mut groups: BTreeMap<Vec<KeyValue>, Group> = BTreeMap::new();
    for target in snapshot
        .targets
        .iter()
        .filter(|t| t.overlaps(request.start, request.end))
    {
        let docs = target
            .searcher
            .search(query.as_ref(), &DocSetCollector)
            .unwrap();
        for address in docs {
            let reader = target.searcher.segment_reader(address.segment_ord);
            let doc = address.doc_id;
            let fast = reader.fast_fields();
            let text_of = |field: &str| -> Option<String> {
                let column = fast.str(field).unwrap()?;
                let ord = column.ords().first(doc)?;
                let mut text = String::new();
                column.ord_to_str(ord, &mut text).unwrap();
                Some(text)
            };
            let int_of = |field: &str| {
                fast.column_opt::<i64>(field)
                    .unwrap()
                    .and_then(|c| c.first(doc))
            };
            let time = fast
                .column_opt::<DateTime>(TIMESTAMP_FIELD)
                .unwrap()
                .and_then(|c| c.first(doc))
                .map(|t| t.into_timestamp_nanos());
            let values: Vec<KeyValue> = keys
                .iter()
                .map(|key| match *key {
                    Key::Str(field) => KeyValue::Str(Arc::from(text_of(field).unwrap_or_default())),
                    Key::Int(field) => KeyValue::Int(int_of(field)),
                    Key::Window(width) => KeyValue::Int(time.map(|t| window_start(t, width))),
                })
                .collect();
            let group = groups.entry(values.clone()).or_insert_with(|| Group {
                values: keys.iter().copied().zip(values).collect(),
                count: 0,
                first: None,
                last: None,
                extras: extras
                    .iter()
                    .map(|extra| match extra {
                        Extra::Terms(_) => ExtraValue::Terms(Default::default()),
                        Extra::Any(_) => ExtraValue::Any(false),
                        Extra::Sketch(_) => {
                            ExtraValue::Sketch(Box::new(DDSketch::new(Config::defaults())))
                        }
                        Extra::Max(_) => ExtraValue::Max(None),
                    })
                    .collect(),
            });
            group.count += 1;
            if let Some(t) = time {
                group.first = Some(group.first.map_or(t, |f| f.min(t)));
                group.last = Some(group.last.map_or(t, |l| l.max(t)));
            }
            for (value, extra) in group.extras.iter_mut().zip(extras) {
                match (value, extra) {
                    (ExtraValue::Terms(terms), Extra::Terms(field)) => {
                        if let Some(text) = text_of(field) {
                            *terms.entry(Arc::from(text)).or_default() += 1;
                        }
                    }
                    (ExtraValue::Any(any), Extra::Any(field)) => {
                        if let Some(column) = fast.column_opt::<bool>(field).unwrap() {
                            *any |= column.values_for_doc(doc).any(|v| v);
                        }
                    }
                    (ExtraValue::Sketch(sketch), Extra::Sketch(field)) => {
                        if let Some(v) = int_of(field) {
                            sketch.add(v as f64);
                        }
                    }
                    (ExtraValue::Max(max), Extra::Max(field)) => {
                        if let Some(v) = int_of(field) {
                            *max = Some(max.map_or(v, |m| m.max(v)));
                        }
                    }
                    _ => unreachable!("extras in order"),
                }
            }
        }
    }
    groups.into_values().collect()
}

fn limits() -> QueryLimits {
    QueryLimits {
        parallelism: 2,
        ..QueryLimits::default()
    }
}

struct Case {
    request: ReportRequest,
    base: &'static str,
    keys: Vec<Key>,
    extras: Vec<Extra>,
}

fn case(base: &'static str, keys: &[Key], extras: &[Extra]) -> Case {
    Case {
        request: ReportRequest {
            limit: 10,
            ..ReportRequest::new(Report::TopUsers, &limits())
        },
        base,
        keys: keys.to_vec(),
        extras: extras.to_vec(),
    }
}

const COMPLETE: &str = r#"(stage:"ResponseComplete" OR stage:"Panic")"#;

/// Every group, and the first `limit` by each priority, the same as the reference's, twice.
fn check(case: &Case) -> usize {
    let settings = ReportSettings::default();
    let ctx = Ctx::new(&fixture().snapshot, &case.request, &settings, &limits());
    let filter = ctx.filter(&[case.base.to_string()]);
    let expected = reference(&ctx, &join(&filter), &case.keys, &case.extras);
    let by_status = |v: &KeyValue| u8::from(!matches!(v, KeyValue::Int(Some(c)) if *c < 400));
    let by_user = |v: &KeyValue| u8::from(!matches!(v, KeyValue::Str(u) if u.as_ref() == "zed"));
    for _ in 0..2 {
        let groups = ctx.groups(&filter, &case.keys, &case.extras).unwrap();
        assert_eq!(named(&groups), named(&expected));
        type Prio<'a> = Option<(&'static str, &'a RankOf)>;
        let priorities: [Prio<'_>; 3] = [
            None,
            Some(("status_code", &by_status)),
            Some(("user", &by_user)),
        ];
        for priority in priorities {
            let chosen = ctx
                .top_groups(&filter, &case.keys, &case.extras, priority)
                .unwrap();
            let field_value = |g: &Group, field: &str| {
                g.values
                    .iter()
                    .find(|(k, _)| k.field() == field)
                    .map(|(_, v)| v.clone())
            };
            let rank = |g: &Group| match priority {
                Some((field, f)) => field_value(g, field).map_or(0, |v| f(&v)),
                None => 0,
            };
            let wanted = top(expected.clone(), case.request.limit, rank);
            assert_eq!(named(&chosen), named(&wanted));
        }
    }
    expected.len()
}

#[test]
fn the_same_groups_as_the_reference_by_users_and_status() {
    let groups = check(&case(
        COMPLETE,
        &[
            Key::Str("user"),
            Key::Str("impersonated_user"),
            Key::Str("status_class"),
        ],
        &[],
    ));
    assert!(groups > 10);
}

#[test]
fn one_event_groups_with_every_extra() {
    let groups = check(&case(
        COMPLETE,
        &[Key::Str("namespace"), Key::Str("user"), Key::Str("name")],
        &[
            Extra::Terms("name"),
            Extra::Any("privileged"),
            Extra::Sketch("latency_ms"),
            Extra::Max("status_code"),
        ],
    ));
    assert!(groups > 1_000, "{groups}");
}

/// Keys of small ranges: the direct-indexed table, with every extra.
#[test]
fn dense_groups_with_every_extra() {
    let mut c = case(
        COMPLETE,
        &[Key::Str("user"), Key::Str("impersonated_user")],
        &[
            Extra::Sketch("latency_ms"),
            Extra::Terms("namespace"),
            Extra::Any("privileged"),
            Extra::Max("latency_ms"),
        ],
    );
    assert!(check(&c) > 5);
    c.request.by_cluster = true;
    c.request.limit = 4;
    check(&c);
}

#[test]
fn integers_windows_and_extras_without_a_filter() {
    check(&case(
        "*",
        &[
            Key::Window(300 * SEC),
            Key::Int("status_code"),
            Key::Str("status_class"),
        ],
        &[Extra::Sketch("latency_ms"), Extra::Terms("user")],
    ));
}

#[test]
fn time_ranges_cut_at_a_document() {
    let times = &fixture().times;
    // Bounds on documents' own times: the start's are in, the end's out.
    for (from, to) in [
        (0, times.len() - 1),
        (times.len() / 3, 2 * times.len() / 3),
        (5, 60),
    ] {
        let mut c = case(
            "*",
            &[Key::Str("user"), Key::Window(60 * SEC), Key::Str("name")],
            &[Extra::Max("latency_ms")],
        );
        c.request.start = Some(Timestamp(times[from]));
        c.request.end = Some(Timestamp(times[to]));
        check(&c);
    }
}

#[test]
fn scopes_clusters_and_q() {
    let mut c = case(
        COMPLETE,
        &[
            Key::Str("user"),
            Key::Int("status_code"),
            Key::Str("namespace"),
        ],
        &[Extra::Terms("name")],
    );
    c.request.scope = Scope::namespaces(["ns-1", "ns-2"]);
    c.request.by_cluster = true;
    c.request.q = Some(r#"NOT user:"nobody""#.to_string());
    check(&c);
    let mut c = case(COMPLETE, &[Key::Str("namespace"), Key::Str("name")], &[]);
    c.request.q = Some("status_code:403 OR status_code:500".to_string());
    c.request.limit = 100;
    check(&c);
}

#[test]
fn limits_at_every_size() {
    for limit in [0, 1, 3, 50, 100_000] {
        let mut c = case(
            "*",
            &[
                Key::Str("user"),
                Key::Str("impersonated_user"),
                Key::Str("name"),
                Key::Int("latency_ms"),
            ],
            &[],
        );
        c.request.limit = limit;
        check(&c);
    }
}

#[test]
fn missing_and_empty_keywords_are_one_group() {
    let c = case("*", &[Key::Str("namespace")], &[]);
    check(&c);
    let settings = ReportSettings::default();
    let ctx = Ctx::new(&fixture().snapshot, &c.request, &settings, &limits());
    let groups = ctx.groups(&["*".to_string()], &c.keys, &[]).unwrap();
    let names: BTreeSet<&str> = groups.iter().map(|g| g.str("namespace")).collect();
    assert_eq!(names, BTreeSet::from(["", "ns-0", "ns-1", "ns-2", "ns-3"]));
}
