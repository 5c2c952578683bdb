//! The collector with Kubernetes metadata from the fake API server (reached through a
//! kubeconfig file, as configured by an operator): records reaching the indexer carry the
//! metadata, and pod label filters decide which files are read.

use std::path::Path;

use serde_json::{json, Value};

use super::fake::*;
use super::fake_api::*;

fn write(pods: &Path, dir: &str, container: &str, file: &str, lines: &[&str]) {
    let dir = pods.join(dir).join(container);
    std::fs::create_dir_all(&dir).unwrap();
    let text: String = lines
        .iter()
        .enumerate()
        .map(|(i, m)| cri(i as u64 + 1, 'F', m))
        .collect();
    std::fs::write(dir.join(file), text).unwrap();
}

fn records(index: &Shared) -> Vec<Value> {
    index
        .lock()
        .unwrap()
        .records
        .get("logs")
        .cloned()
        .unwrap_or_default()
}

fn by_message<'a>(records: &'a [Value], message: &str) -> &'a Value {
    let found: Vec<_> = records.iter().filter(|r| r["message"] == message).collect();
    assert_eq!(found.len(), 1, "{message}: {records:?}");
    found[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_carry_pod_metadata_and_label_filters_choose_pods() {
    let root = tempfile::tempdir().unwrap();
    let api = FakeApi::start().await;
    let (index, addr) = start_indexer().await;
    let mut cfg = config(root.path());
    cfg.collector.include_pod_labels = vec!["app".into(), "component".into()];
    cfg.collector.exclude_pod_labels = vec!["trawl.io/collect=false".into()];
    let k = &mut cfg.collector.kubernetes;
    k.kubeconfig = Some(api.kubeconfig(root.path()));
    k.annotations = vec!["trawl.io/team".into()];
    k.metadata_wait_ms = 1500;
    let pods = cfg.collector.pods_dir.clone();

    let web = format!("shop_web-7c9f8d6b5d-x2x7k_{WEB_UID}");
    write(&pods, &web, "app", "0.log", &["before the OOM kill"]);
    write(
        &pods,
        &web,
        "app",
        "1.log",
        &[r#"{"level":"warn","msg":"restarted"}"#, "serving on :8080"],
    );
    let apiserver = format!("kube-system_kube-apiserver-node-1_{APISERVER_HASH}");
    write(
        &pods,
        &apiserver,
        "kube-apiserver",
        "0.log",
        &["I1125 10:15:00.000000 1 serving"],
    );
    // Excluded: db-0 by `trawl.io/collect=false`, node-exporter by matching no include.
    write(
        &pods,
        &format!("shop_db-0_{DB_UID}"),
        "postgres",
        "0.log",
        &["db line"],
    );
    let exporter = format!("monitoring_node-exporter-4xk9p_{EXPORTER_UID}");
    write(
        &pods,
        &exporter,
        "node-exporter",
        "0.log",
        &["exporter line"],
    );
    // Not known to the API: read after metadata_wait_ms, with path metadata only.
    write(
        &pods,
        "default_stray_uid-stray",
        "main",
        "0.log",
        &["stray line"],
    );

    let handle = start(&cfg, addr).await;
    let metrics = handle.metrics().clone();
    wait_for("5 records and 2 pods excluded", || {
        records(&index).len() == 5 && metrics.pods_excluded_by_labels.get() == 2
    })
    .await;
    assert_eq!(metrics.kube_pods_cached.get(), 4);
    handle.shutdown().await;

    let got = records(&index);
    assert_eq!(got.len(), 5, "{got:?}");
    let web_labels = json!({
        "app": "web",
        "app.kubernetes.io/name": "web",
        "pod-template-hash": "7c9f8d6b5d",
        "tier": "frontend"
    });
    let web_attributes = json!({
        "k8s.owner.kind": "ReplicaSet",
        "k8s.owner.name": "web-7c9f8d6b5d",
        "k8s.deployment.name": "web",
        "k8s.pod.annotations.trawl.io/team": "storefront"
    });

    let old = by_message(&got, "before the OOM kill");
    assert_eq!(old["labels"], web_labels);
    assert_eq!(old["attributes"], web_attributes);
    assert_eq!(old["image"], "registry.example.com/shop/web:1.4.2");
    assert_eq!(
        old["container_id"],
        "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90"
    );
    assert_eq!(old["namespace"], "shop");
    assert_eq!(old["pod"], "web-7c9f8d6b5d-x2x7k");
    assert_eq!(old["node"], "node-1");

    let restarted = by_message(&got, r#"{"level":"warn","msg":"restarted"}"#);
    assert_eq!(
        restarted["container_id"],
        "f0e1d2c3b4a5968778695a4b3c2d1e0ff0e1d2c3b4a5968778695a4b3c2d1e0f"
    );
    let mut expected = web_attributes.clone();
    expected["level"] = json!("warn");
    expected["msg"] = json!("restarted");
    assert_eq!(restarted["attributes"], expected);
    assert_eq!(restarted["level"], "warn");
    assert_eq!(by_message(&got, "serving on :8080")["labels"], web_labels);

    let static_pod = by_message(&got, "I1125 10:15:00.000000 1 serving");
    assert_eq!(
        static_pod["labels"],
        json!({"component": "kube-apiserver", "tier": "control-plane"})
    );
    assert_eq!(
        static_pod["image"],
        "registry.k8s.io/kube-apiserver:v1.33.1"
    );
    assert_eq!(
        static_pod["attributes"],
        json!({"k8s.owner.kind": "Node", "k8s.owner.name": "node-1"})
    );

    let stray = by_message(&got, "stray line");
    assert_eq!(stray["namespace"], "default");
    assert_eq!(stray["pod"], "stray");
    assert_eq!(stray["container"], "main");
    for field in ["labels", "image", "container_id", "attributes"] {
        assert!(stray.get(field).is_none(), "{field}: {stray}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_filters_files_are_read_at_once_and_enriched_when_the_pod_is_known() {
    let root = tempfile::tempdir().unwrap();
    let api = FakeApi::start().await;
    let (index, addr) = start_indexer().await;
    let mut cfg = config(root.path());
    cfg.collector.kubernetes.kubeconfig = Some(api.kubeconfig(root.path()));
    let pods = cfg.collector.pods_dir.clone();
    let handle = start(&cfg, addr).await;
    let metrics = handle.metrics().clone();
    wait_for("the pods listed", || metrics.kube_pods_cached.get() == 4).await;
    write(
        &pods,
        &format!("shop_db-0_{DB_UID}"),
        "postgres",
        "0.log",
        &["db line"],
    );
    write(
        &pods,
        "default_stray_uid-stray",
        "main",
        "0.log",
        &["stray line"],
    );
    wait_for("2 records", || records(&index).len() == 2).await;
    handle.shutdown().await;
    let got = records(&index);
    let db = by_message(&got, "db line");
    assert_eq!(db["image"], "docker.io/library/postgres:17.2");
    assert_eq!(db["labels"]["trawl.io/collect"], "false");
    assert_eq!(
        db["attributes"],
        json!({"k8s.owner.kind": "StatefulSet", "k8s.owner.name": "db"})
    );
    assert!(by_message(&got, "stray line").get("labels").is_none());
    assert_eq!(metrics.pods_excluded_by_labels.get(), 0);
}
