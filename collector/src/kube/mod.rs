//! Kubernetes metadata from the API server: one watch of the pods of this node and one of the
//! namespaces feed an in-memory cache, from which every container record gets its pod's
//! `labels`, its container's `image` and `container_id`, and `attributes` for the owner
//! (`k8s.owner.kind`, `k8s.owner.name`, `k8s.deployment.name` or `k8s.cronjob.name`), chosen
//! annotations (`k8s.pod.annotations.<key>`) and, when asked, namespace labels
//! (`k8s.namespace.labels.<key>`).
//!
//! ```text
//! API server ──watch pods (spec.nodeName=<node>)──▶ MetaCache ◀── reader thread: lookups by pod
//!            ──watch namespaces (metadata only)───▶           uid, refreshed when it changes
//! ```
//!
//! With `collector.kubernetes.events`, one collector of the cluster also collects its
//! Kubernetes Events ([`events`]).
//!
//! Nothing waits on the API: lookups are in memory, a pod not in the cache yet leaves its
//! records with what the path says, and a failing watch is retried with backoff. A deleted pod
//! (or one missing after a relist) stays for `metadata_grace_secs`, so its last lines are still
//! enriched.

mod cache;
pub mod events;
mod pod;
mod watch;

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use trawl_config::{CollectorConfig, KubernetesConfig, LabelSelector};

use crate::error::{Error, Result};

pub use cache::{Enrichment, MetaCache};
pub use pod::{
    ContainerMeta, PodMeta, ANNOTATION_PREFIX, CRONJOB_NAME, DEPLOYMENT_NAME,
    NAMESPACE_LABEL_PREFIX, OWNER_KIND, OWNER_NAME,
};
pub use watch::{run, WatchSettings};

/// `include_pod_labels` / `exclude_pod_labels`, compiled.
#[derive(Debug, Clone, PartialEq)]
pub struct PodFilter {
    include: Vec<LabelSelector>,
    exclude: Vec<LabelSelector>,
}

impl PodFilter {
    /// The filter of `cc`; `None` when neither list has a selector. Errors name the selector
    /// that does not parse.
    pub fn from_config(cc: &CollectorConfig) -> Result<Option<PodFilter>> {
        if cc.include_pod_labels.is_empty() && cc.exclude_pod_labels.is_empty() {
            return Ok(None);
        }
        let parse = |list: &[String], key: &str| -> Result<Vec<LabelSelector>> {
            list.iter()
                .enumerate()
                .map(|(i, s)| {
                    LabelSelector::parse(s)
                        .map_err(|e| Error::Config(format!("collector.{key}.{i}: {e}")))
                })
                .collect()
        };
        Ok(Some(PodFilter {
            include: parse(&cc.include_pod_labels, "include_pod_labels")?,
            exclude: parse(&cc.exclude_pod_labels, "exclude_pod_labels")?,
        }))
    }

    /// Whether `pod` is collected: it matches one include selector (or there are none) and no
    /// exclude selector.
    pub fn admits(&self, pod: &PodMeta) -> bool {
        let get = |k: &str| pod.label(k);
        (self.include.is_empty() || self.include.iter().any(|s| s.matches(get)))
            && !self.exclude.iter().any(|s| s.matches(get))
    }
}

/// What the reader thread is given: the cache, the label filter, and how long a new file waits
/// for its pod's labels when there is a filter.
#[derive(Debug, Clone)]
pub struct Metadata {
    pub cache: Arc<MetaCache>,
    pub filter: Option<PodFilter>,
    pub wait: Duration,
}

/// A client for the API server of `cfg`: its kubeconfig file when set, else the in-cluster
/// service account (`KUBERNETES_SERVICE_HOST`, the mounted token and CA).
pub async fn client(cfg: &KubernetesConfig) -> Result<kube::Client> {
    let config = match &cfg.kubeconfig {
        Some(path) => {
            let kubeconfig = kube::config::Kubeconfig::read_from(path)
                .map_err(|e| Error::Kubernetes(format!("kubeconfig {}: {e}", path.display())))?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
                .await
                .map_err(|e| Error::Kubernetes(format!("kubeconfig {}: {e}", path.display())))?
        }
        None => kube::Config::incluster()
            .map_err(|e| Error::Kubernetes(format!("in-cluster configuration: {e}")))?,
    };
    kube::Client::try_from(config).map_err(|e| Error::Kubernetes(format!("client: {e}")))
}
