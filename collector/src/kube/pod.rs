//! What the collector keeps of a pod: the few fields it attaches to records, taken from the
//! full `Pod` object once (the object itself, with its managed fields and status, is dropped).

use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use serde_json::{Map, Value};

/// Pod label set by the Deployment controller on its ReplicaSets' pods; the ReplicaSet is named
/// `<deployment>-<hash>`.
const POD_TEMPLATE_HASH: &str = "pod-template-hash";
/// Annotations of a mirror pod naming the uid the kubelet uses for the static pod (and so for
/// its log directory).
const MIRROR_ANNOTATIONS: [&str; 2] = ["kubernetes.io/config.mirror", "kubernetes.io/config.hash"];

/// Attribute: kind of the pod's controlling owner (`ReplicaSet`, `StatefulSet`, `Job`, ...).
pub const OWNER_KIND: &str = "k8s.owner.kind";
/// Attribute: name of the pod's controlling owner.
pub const OWNER_NAME: &str = "k8s.owner.name";
/// Attribute: the Deployment of a pod owned by a ReplicaSet (the ReplicaSet's name without its
/// `-<pod-template-hash>` suffix, as Vector and the OpenTelemetry collector derive it).
pub const DEPLOYMENT_NAME: &str = "k8s.deployment.name";
/// Attribute: the CronJob of a pod owned by a Job named `<cronjob>-<scheduled minute>`.
pub const CRONJOB_NAME: &str = "k8s.cronjob.name";
/// Prefix of the attributes holding chosen pod annotations (`k8s.pod.annotations.<key>`).
pub const ANNOTATION_PREFIX: &str = "k8s.pod.annotations.";
/// Prefix of the attributes holding namespace labels (`k8s.namespace.labels.<key>`).
pub const NAMESPACE_LABEL_PREFIX: &str = "k8s.namespace.labels.";

/// One container of a pod (regular, init or ephemeral).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerMeta {
    /// The container's name (the directory under the pod's log directory).
    pub name: String,
    /// The image as the pod spec names it (else as the status reports it).
    pub image: String,
    /// Restart count of the current instance: its log file is `<restart_count>.log`.
    pub restart_count: u32,
    /// Id of the current instance, without the `<runtime>://` scheme; empty when not started.
    pub container_id: String,
    /// Id of the previous instance (`<restart_count - 1>.log`), when the status still says.
    pub last_container_id: String,
}

/// The metadata of one pod attached to its records.
#[derive(Debug, Clone, PartialEq)]
pub struct PodMeta {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    /// Other uids the kubelet may use for this pod's log directory (a static pod's hash, seen
    /// on its mirror pod).
    pub aliases: Vec<String>,
    /// The pod's labels, as record `labels`.
    pub labels: Map<String, Value>,
    /// Owner and chosen annotations, as record `attributes` (namespace labels are added at
    /// lookup).
    pub attributes: Vec<(String, Value)>,
    pub containers: Vec<ContainerMeta>,
}

/// `containerd://abc` → `abc` (the id as `crictl ps` prints it).
fn strip_scheme(id: &str) -> &str {
    id.split_once("://").map_or(id, |(_, rest)| rest)
}

/// The characters of Kubernetes' `SafeEncodeString` (used in generated name suffixes).
fn is_safe_encoded(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c))
}

/// The Deployment owning ReplicaSet `rs`: the name without the `-<hash>` suffix, the hash taken
/// from the pod's `pod-template-hash` label, else recognised by its alphabet.
pub fn deployment_of(rs: &str, template_hash: Option<&str>) -> Option<String> {
    let (base, suffix) = rs.rsplit_once('-')?;
    let matches = match template_hash {
        Some(hash) => suffix == hash,
        None => suffix.len() >= 5 && is_safe_encoded(suffix),
    };
    (matches && !base.is_empty()).then(|| base.to_string())
}

/// The CronJob owning Job `job`: the name without its `-<minutes since the epoch>` suffix.
pub fn cronjob_of(job: &str) -> Option<String> {
    let (base, suffix) = job.rsplit_once('-')?;
    (suffix.len() >= 8 && suffix.bytes().all(|b| b.is_ascii_digit()) && !base.is_empty())
        .then(|| base.to_string())
}

impl PodMeta {
    /// What is kept of `pod`, copying the annotations named in `annotations`. `None` for an
    /// object without a uid, name or namespace (the API never sends one).
    pub fn from_pod(pod: &Pod, annotations: &[String]) -> Option<PodMeta> {
        let md = &pod.metadata;
        let uid = md.uid.clone().filter(|u| !u.is_empty())?;
        let name = md.name.clone()?;
        let namespace = md.namespace.clone()?;
        let pod_labels = md.labels.as_ref();
        let labels: Map<String, Value> = pod_labels
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        let mut attributes = Vec::new();
        let owners = md.owner_references.as_deref().unwrap_or_default();
        let owner = owners
            .iter()
            .find(|o| o.controller == Some(true))
            .or_else(|| owners.first());
        if let Some(o) = owner {
            attributes.push((OWNER_KIND.to_string(), Value::String(o.kind.clone())));
            attributes.push((OWNER_NAME.to_string(), Value::String(o.name.clone())));
            let hash = pod_labels
                .and_then(|l| l.get(POD_TEMPLATE_HASH))
                .map(String::as_str);
            let derived = match o.kind.as_str() {
                "ReplicaSet" => deployment_of(&o.name, hash).map(|d| (DEPLOYMENT_NAME, d)),
                "Job" => cronjob_of(&o.name).map(|c| (CRONJOB_NAME, c)),
                _ => None,
            };
            if let Some((key, value)) = derived {
                attributes.push((key.to_string(), Value::String(value)));
            }
        }
        let pod_annotations = md.annotations.as_ref();
        for key in annotations {
            if let Some(v) = pod_annotations.and_then(|a| a.get(key)) {
                attributes.push((
                    format!("{ANNOTATION_PREFIX}{key}"),
                    Value::String(v.clone()),
                ));
            }
        }
        let aliases = MIRROR_ANNOTATIONS
            .iter()
            .filter_map(|k| pod_annotations.and_then(|a| a.get(*k)))
            .filter(|a| **a != uid && !a.is_empty())
            .cloned()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();

        let mut containers = Vec::new();
        if let Some(spec) = &pod.spec {
            let regular = spec.containers.iter();
            let init = spec.init_containers.iter().flatten();
            for c in regular.chain(init) {
                containers.push(ContainerMeta {
                    name: c.name.clone(),
                    image: c.image.clone().unwrap_or_default(),
                    restart_count: 0,
                    container_id: String::new(),
                    last_container_id: String::new(),
                });
            }
            for c in spec.ephemeral_containers.iter().flatten() {
                containers.push(ContainerMeta {
                    name: c.name.clone(),
                    image: c.image.clone().unwrap_or_default(),
                    restart_count: 0,
                    container_id: String::new(),
                    last_container_id: String::new(),
                });
            }
        }
        if let Some(status) = &pod.status {
            let statuses = [
                &status.container_statuses,
                &status.init_container_statuses,
                &status.ephemeral_container_statuses,
            ];
            for s in statuses.into_iter().flatten().flatten() {
                apply_status(&mut containers, s);
            }
        }
        Some(PodMeta {
            namespace,
            name,
            uid,
            aliases,
            labels,
            attributes,
            containers,
        })
    }

    /// The container named `name`.
    pub fn container(&self, name: &str) -> Option<&ContainerMeta> {
        self.containers.iter().find(|c| c.name == name)
    }

    /// The value of label `key`.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.get(key).and_then(Value::as_str)
    }
}

fn apply_status(containers: &mut Vec<ContainerMeta>, s: &ContainerStatus) {
    let i = match containers.iter().position(|c| c.name == s.name) {
        Some(i) => i,
        None => {
            containers.push(ContainerMeta {
                name: s.name.clone(),
                image: String::new(),
                restart_count: 0,
                container_id: String::new(),
                last_container_id: String::new(),
            });
            containers.len() - 1
        }
    };
    let c = &mut containers[i];
    if c.image.is_empty() {
        c.image = s.image.clone();
    }
    c.restart_count = u32::try_from(s.restart_count).unwrap_or(0);
    c.container_id = s
        .container_id
        .as_deref()
        .map(strip_scheme)
        .unwrap_or_default()
        .to_string();
    c.last_container_id = s
        .last_state
        .as_ref()
        .and_then(|st| st.terminated.as_ref())
        .and_then(|t| t.container_id.as_deref())
        .map(strip_scheme)
        .unwrap_or_default()
        .to_string();
}

impl ContainerMeta {
    /// The id of the instance that wrote `<restart>.log`, when known.
    pub fn id_for_restart(&self, restart: u32) -> &str {
        if restart == self.restart_count {
            &self.container_id
        } else if restart.checked_add(1) == Some(self.restart_count) {
            &self.last_container_id
        } else {
            ""
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployment_from_replicaset_name() {
        assert_eq!(
            deployment_of("web-7c9f8d6b5d", Some("7c9f8d6b5d")).as_deref(),
            Some("web")
        );
        assert_eq!(
            deployment_of("my-web-app-5d8f7", None).as_deref(),
            Some("my-web-app")
        );
        assert_eq!(deployment_of("web-abc", Some("zzz")), None);
        assert_eq!(deployment_of("standalone-rs", None), None);
        assert_eq!(deployment_of("nodash", None), None);
    }

    #[test]
    fn cronjob_from_job_name() {
        assert_eq!(cronjob_of("backup-29401920").as_deref(), Some("backup"));
        assert_eq!(cronjob_of("migrate-1"), None);
        assert_eq!(cronjob_of("plain"), None);
    }

    #[test]
    fn container_id_follows_the_restart_count() {
        let c = ContainerMeta {
            name: "app".into(),
            image: "x".into(),
            restart_count: 2,
            container_id: "new".into(),
            last_container_id: "old".into(),
        };
        assert_eq!(c.id_for_restart(2), "new");
        assert_eq!(c.id_for_restart(1), "old");
        assert_eq!(c.id_for_restart(0), "");
        assert_eq!(c.id_for_restart(u32::MAX), "");
        assert_eq!(strip_scheme("containerd://abc"), "abc");
        assert_eq!(strip_scheme("abc"), "abc");
    }
}
