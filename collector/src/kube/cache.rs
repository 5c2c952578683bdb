//! The in-memory cache the watches fill and the reader thread reads: pods by uid, namespace
//! labels, deletion times for the grace period, and the bookkeeping of relists.
//!
//! Every lookup is a hash-map read under a read lock held for microseconds; nothing here waits
//! on the API server.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use super::pod::{PodMeta, NAMESPACE_LABEL_PREFIX};

/// What a record of one container file gets from the cache.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Enrichment {
    /// The pod's labels (record `labels`).
    pub labels: Map<String, Value>,
    /// The container's image (record `image`).
    pub image: String,
    /// The id of the container instance that wrote the file (record `container_id`).
    pub container_id: String,
    /// Owner, chosen annotations, namespace labels (into record `attributes`).
    pub attributes: Vec<(String, Value)>,
}

#[derive(Debug)]
struct Cached {
    meta: Arc<PodMeta>,
    /// The cache generation at which `meta` last changed.
    version: u64,
}

#[derive(Debug, Default)]
struct State {
    pods: HashMap<String, Cached>,
    /// Alias uid (a static pod's hash) → the mirror pod's uid.
    aliases: HashMap<String, String>,
    /// Pods deleted (or missing after a relist), evicted once the grace period has passed.
    deleted: HashMap<String, Instant>,
    /// Uids seen since the current pod relist started.
    relist: Option<HashSet<String>>,
    namespaces: HashMap<String, Arc<Map<String, Value>>>,
    namespaces_deleted: HashMap<String, Instant>,
    namespace_relist: Option<HashSet<String>>,
    /// The generation at which namespace labels last changed (only with `namespace_labels`).
    namespace_version: u64,
}

/// Pod and namespace metadata of this node; see the module docs.
#[derive(Debug)]
pub struct MetaCache {
    state: RwLock<State>,
    generation: AtomicU64,
    pods_synced: AtomicBool,
    grace: Duration,
    namespace_labels: bool,
}

impl MetaCache {
    /// An empty cache keeping deleted pods for `grace`; with `namespace_labels`, enrichments
    /// carry the labels of the pod's namespace.
    pub fn new(grace: Duration, namespace_labels: bool) -> MetaCache {
        MetaCache {
            state: RwLock::new(State::default()),
            generation: AtomicU64::new(1),
            pods_synced: AtomicBool::new(false),
            grace,
            namespace_labels,
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    fn bump(&self) -> u64 {
        self.generation.fetch_add(1, Ordering::AcqRel) + 1
    }

    /// Changes whenever what some lookup answers may have changed (the reader refreshes its
    /// files' enrichments then).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Whether the first list of pods has completed (every pod of the node is known).
    pub fn pods_synced(&self) -> bool {
        self.pods_synced.load(Ordering::Acquire)
    }

    /// Pods held, deleted ones in their grace period included.
    pub fn pods_cached(&self) -> usize {
        self.read().pods.len()
    }

    /// A pod was added or modified (or listed). An identical pod changes nothing.
    pub fn apply_pod(&self, meta: PodMeta) {
        let mut st = self.write();
        if let Some(set) = st.relist.as_mut() {
            set.insert(meta.uid.clone());
        }
        st.deleted.remove(&meta.uid);
        if st.pods.get(&meta.uid).is_some_and(|c| *c.meta == meta) {
            return;
        }
        for alias in &meta.aliases {
            st.aliases.insert(alias.clone(), meta.uid.clone());
        }
        let version = self.bump();
        st.pods.insert(
            meta.uid.clone(),
            Cached {
                meta: Arc::new(meta),
                version,
            },
        );
    }

    /// A pod was deleted at `now`: its last state is applied and kept for the grace period.
    pub fn delete_pod(&self, meta: PodMeta, now: Instant) {
        let uid = meta.uid.clone();
        self.apply_pod(meta);
        self.write().deleted.insert(uid, now);
    }

    /// A relist of pods starts (the watch restarted): pods not listed again by
    /// [`MetaCache::pods_relisted`] are treated as deleted.
    pub fn pods_relist_started(&self) {
        self.write().relist = Some(HashSet::new());
    }

    /// The relist is complete at `now`: pods it did not return are deleted (grace applies).
    pub fn pods_relisted(&self, now: Instant) {
        let mut st = self.write();
        let Some(seen) = st.relist.take() else {
            return;
        };
        let missing: Vec<String> = st
            .pods
            .keys()
            .filter(|uid| !seen.contains(*uid) && !st.deleted.contains_key(*uid))
            .cloned()
            .collect();
        for uid in missing {
            st.deleted.insert(uid, now);
        }
        drop(st);
        self.pods_synced.store(true, Ordering::Release);
        self.bump();
    }

    /// A namespace was added, modified or listed, with these labels.
    pub fn apply_namespace(&self, name: &str, labels: Map<String, Value>) {
        let mut st = self.write();
        if let Some(set) = st.namespace_relist.as_mut() {
            set.insert(name.to_string());
        }
        st.namespaces_deleted.remove(name);
        if st.namespaces.get(name).is_some_and(|l| **l == labels) {
            return;
        }
        st.namespaces.insert(name.to_string(), Arc::new(labels));
        if self.namespace_labels {
            st.namespace_version = self.bump();
        }
    }

    /// A namespace was deleted at `now` (its labels stay for the grace period).
    pub fn delete_namespace(&self, name: &str, now: Instant) {
        self.write()
            .namespaces_deleted
            .insert(name.to_string(), now);
    }

    /// A relist of namespaces starts.
    pub fn namespaces_relist_started(&self) {
        self.write().namespace_relist = Some(HashSet::new());
    }

    /// The namespace relist is complete at `now`.
    pub fn namespaces_relisted(&self, now: Instant) {
        let mut st = self.write();
        let Some(seen) = st.namespace_relist.take() else {
            return;
        };
        let missing: Vec<String> = st
            .namespaces
            .keys()
            .filter(|n| !seen.contains(*n) && !st.namespaces_deleted.contains_key(*n))
            .cloned()
            .collect();
        for n in missing {
            st.namespaces_deleted.insert(n, now);
        }
    }

    /// Whether pod `uid` was deleted (or missing from a relist) and is in its grace period.
    pub fn is_deleted(&self, uid: &str) -> bool {
        self.read().deleted.contains_key(uid)
    }

    /// Whether namespace `name` is known (listed and not deleted past its grace period).
    pub fn namespace_exists(&self, name: &str) -> bool {
        self.read().namespaces.contains_key(name)
    }

    /// Evicts pods and namespaces deleted at least the grace period before `now`; returns the
    /// number of pods evicted.
    pub fn evict_expired(&self, now: Instant) -> usize {
        let grace = self.grace;
        let expired = |t: &Instant| now.saturating_duration_since(*t) >= grace;
        let mut st = self.write();
        let gone: Vec<String> = st
            .deleted
            .iter()
            .filter(|(_, t)| expired(t))
            .map(|(uid, _)| uid.clone())
            .collect();
        for uid in &gone {
            st.deleted.remove(uid);
            if let Some(c) = st.pods.remove(uid) {
                for alias in &c.meta.aliases {
                    if st.aliases.get(alias) == Some(uid) {
                        st.aliases.remove(alias);
                    }
                }
            }
        }
        let gone_ns: Vec<String> = st
            .namespaces_deleted
            .iter()
            .filter(|(_, t)| expired(t))
            .map(|(n, _)| n.clone())
            .collect();
        for n in &gone_ns {
            st.namespaces_deleted.remove(n);
            st.namespaces.remove(n);
        }
        if self.namespace_labels && !gone_ns.is_empty() {
            st.namespace_version = self.bump();
        } else if !gone.is_empty() {
            self.bump();
        }
        gone.len()
    }

    /// The pod whose log directory carries `uid` (its own uid, or a static pod's hash).
    pub fn pod(&self, uid: &str) -> Option<Arc<PodMeta>> {
        self.pod_versioned(uid).map(|(m, _)| m)
    }

    /// [`MetaCache::pod`] with the generation at which its enrichment last changed (the pod,
    /// or with `namespace_labels` the namespaces' labels).
    pub fn pod_versioned(&self, uid: &str) -> Option<(Arc<PodMeta>, u64)> {
        let st = self.read();
        let c = st
            .pods
            .get(uid)
            .or_else(|| st.aliases.get(uid).and_then(|u| st.pods.get(u)))?;
        Some((c.meta.clone(), c.version.max(st.namespace_version)))
    }

    /// What records of container `container` of pod `uid`, file `<restart>.log`, get; `None`
    /// when the pod is not known (not listed yet, or evicted).
    pub fn enrichment(&self, uid: &str, container: &str, restart: u32) -> Option<Enrichment> {
        let pod = self.pod(uid)?;
        Some(self.enrich(&pod, container, restart))
    }

    /// [`MetaCache::enrichment`] for a pod already looked up.
    pub fn enrich(&self, pod: &PodMeta, container: &str, restart: u32) -> Enrichment {
        let c = pod.container(container);
        let mut attributes = pod.attributes.clone();
        if self.namespace_labels {
            if let Some(labels) = self.read().namespaces.get(&pod.namespace) {
                for (k, v) in labels.iter() {
                    attributes.push((format!("{NAMESPACE_LABEL_PREFIX}{k}"), v.clone()));
                }
            }
        }
        Enrichment {
            labels: pod.labels.clone(),
            image: c.map(|c| c.image.clone()).unwrap_or_default(),
            container_id: c
                .map(|c| c.id_for_restart(restart).to_string())
                .unwrap_or_default(),
            attributes,
        }
    }
}
