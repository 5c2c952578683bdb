//! Changes worth reviewing: `deletions`, `privileged-pods`, `rbac-changes`.

use serde_json::{json, Map, Value};

use super::engine::{render, Ctx, Key, KeyValue, Order, Row, USER_KEYS};
use super::filter::{any_of, either, COMPLETE};
use super::group::{Extra, ExtraValue};
use crate::error::Result;

type Rows = Result<Vec<Map<String, Value>>>;

/// How many deleted names a `deletions` row lists.
const NAMES_PER_ROW: usize = 10;

/// Deletions per resource, namespace and user, with `names`: up to 10 of the names deleted
/// most often (ties by name); a `deletecollection` has no name.
pub(super) fn deletions(ctx: &Ctx) -> Rows {
    let filter = ctx.filter(&[
        COMPLETE.to_string(),
        any_of("verb", &["delete", "deletecollection"]),
    ]);
    let keys = [
        Key::Str("resource"),
        Key::Str("namespace"),
        USER_KEYS[0],
        USER_KEYS[1],
    ];
    let groups = ctx.top_groups(&filter, &keys, &[Extra::Terms("name")], None)?;
    let rows = groups
        .iter()
        .map(|g| {
            let mut names: Vec<(u64, &str)> = match g.extras.first() {
                Some(ExtraValue::Terms(counts)) => counts
                    .iter()
                    .map(|(name, count)| (*count, name.as_ref()))
                    .collect(),
                _ => Vec::new(),
            };
            names.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
            let names: Vec<&str> = names
                .into_iter()
                .take(NAMES_PER_ROW)
                .map(|(_, name)| name)
                .collect();
            Row::of(g)
                .key(g, "resource")
                .key(g, "namespace")
                .user(g)
                .column("names", json!(names))
        })
        .collect();
    Ok(render(&filter, rows, Order::ByCount, ctx.request.limit))
}

/// The pod-spec flags derived at ingest, in the order `flags` lists them.
const FLAGS: [&str; 5] = [
    "privileged",
    "host_pid",
    "host_network",
    "host_ipc",
    "host_path",
];

/// Creates, updates and patches whose pod spec asks for a host-level privilege, per user and
/// object (`resource`, `namespace`, `name`: a pod, or a workload with a pod template), with
/// `flags`, every flag seen in the row's events. One row per object rather than per flag, so
/// that an object asking for several privileges is one line; the flags are counted by
/// `value_count` sub-aggregations (a flag is indexed only when true).
pub(super) fn privileged_pods(ctx: &Ctx) -> Rows {
    let any_flag: Vec<String> = FLAGS.iter().map(|f| format!("{f}:true")).collect();
    let filter = ctx.filter(&[
        COMPLETE.to_string(),
        any_of("verb", &["create", "update", "patch"]),
        either(&any_flag),
    ]);
    let keys = [
        USER_KEYS[0],
        USER_KEYS[1],
        Key::Str("resource"),
        Key::Str("namespace"),
        Key::Str("name"),
    ];
    let extras: Vec<Extra> = FLAGS.iter().map(|f| Extra::Any(f)).collect();
    let groups = ctx.top_groups(&filter, &keys, &extras, None)?;
    let rows = groups
        .iter()
        .map(|g| {
            let flags: Vec<&str> = FLAGS
                .into_iter()
                .zip(&g.extras)
                .filter(|(_, any)| matches!(any, ExtraValue::Any(true)))
                .map(|(flag, _)| flag)
                .collect();
            Row::of(g)
                .user(g)
                .key(g, "resource")
                .key(g, "namespace")
                .key(g, "name")
                .column("flags", json!(flags))
        })
        .collect();
    Ok(render(&filter, rows, Order::ByCount, ctx.request.limit))
}

/// The role whose bindings are flagged.
const CLUSTER_ADMIN: &str = "ClusterRole/cluster-admin";

/// Bindings to [`CLUSTER_ADMIN`] first, by their `role_ref`.
fn admin_first(role_ref: &KeyValue) -> u8 {
    u8::from(!matches!(role_ref, KeyValue::Str(role) if role.as_ref() == CLUSTER_ADMIN))
}

/// Writes to roles and bindings per user, verb, resource, namespace, name and `role_ref`, with
/// `cluster_admin` when the binding grants `ClusterRole/cluster-admin`; those rows come first.
pub(super) fn rbac_changes(ctx: &Ctx) -> Rows {
    let filter = ctx.filter(&[
        COMPLETE.to_string(),
        any_of(
            "resource",
            &[
                "roles",
                "rolebindings",
                "clusterroles",
                "clusterrolebindings",
            ],
        ),
        any_of("verb", &["create", "update", "patch", "delete"]),
    ]);
    let fields = ["verb", "resource", "namespace", "name", "role_ref"];
    let mut keys = USER_KEYS.to_vec();
    keys.extend(fields.iter().map(|f| Key::Str(f)));
    let groups = ctx.top_groups(&filter, &keys, &[], Some(("role_ref", &admin_first)))?;
    let rows = groups
        .iter()
        .map(|g| {
            let admin = g.str("role_ref") == CLUSTER_ADMIN;
            let mut row = fields
                .iter()
                .fold(Row::of(g).user(g), |row, f| row.key(g, f))
                .column("cluster_admin", json!(admin));
            row.priority = admin_first(&KeyValue::Str(g.str("role_ref").into()));
            row
        })
        .collect();
    Ok(render(&filter, rows, Order::ByCount, ctx.request.limit))
}
