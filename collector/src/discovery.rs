//! Finding the files to tail: container logs under `pods_dir`, audit logs and their rotated
//! siblings, webhook spool segments; include/exclude filters; file-system notifications.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::mpsc::Sender;

use globset::{Glob, GlobSet, GlobSetBuilder};
use notify::{EventKind, RecursiveMode, Watcher};
use tracing::debug;

use crate::error::{Error, Result};
use crate::identity::{is_audit_sibling, PodFile};

/// A file found by a scan.
#[derive(Debug, Clone)]
pub enum Found {
    /// A container log file (live or rotated).
    Container(PodFile),
    /// An audit log; `live` when it is the configured path itself.
    Audit { live: bool },
    /// A webhook spool segment named `segment`; `live` for the newest.
    Spool { segment: String, live: bool },
}

/// Namespace and container filters (globs; exclusion wins).
#[derive(Debug, Clone)]
pub struct Filters {
    include_ns: Option<GlobSet>,
    exclude_ns: GlobSet,
    include_containers: Option<GlobSet>,
    exclude_containers: GlobSet,
}

fn globset(patterns: &[String], key: &str) -> Result<GlobSet> {
    let mut b = GlobSetBuilder::new();
    for p in patterns {
        b.add(Glob::new(p).map_err(|e| Error::Config(format!("collector.{key}: {e}")))?);
    }
    b.build()
        .map_err(|e| Error::Config(format!("collector.{key}: {e}")))
}

impl Filters {
    /// Compiles the `include_*` / `exclude_*` globs of the configuration.
    pub fn new(cfg: &trawl_config::CollectorConfig) -> Result<Filters> {
        let opt = |v: &[String], key| -> Result<Option<GlobSet>> {
            if v.is_empty() {
                Ok(None)
            } else {
                globset(v, key).map(Some)
            }
        };
        Ok(Filters {
            include_ns: opt(&cfg.include_namespaces, "include_namespaces")?,
            exclude_ns: globset(&cfg.exclude_namespaces, "exclude_namespaces")?,
            include_containers: opt(&cfg.include_containers, "include_containers")?,
            exclude_containers: globset(&cfg.exclude_containers, "exclude_containers")?,
        })
    }

    /// Whether the container `container` of namespace `ns` is collected.
    pub fn accepts(&self, ns: &str, container: &str) -> bool {
        self.include_ns.as_ref().is_none_or(|g| g.is_match(ns))
            && !self.exclude_ns.is_match(ns)
            && self
                .include_containers
                .as_ref()
                .is_none_or(|g| g.is_match(container))
            && !self.exclude_containers.is_match(container)
    }
}

fn dir_entries(dir: &Path) -> impl Iterator<Item = fs::DirEntry> {
    fs::read_dir(dir).into_iter().flatten().flatten()
}

/// Every container log file under `pods_dir` that the filters accept. A missing directory
/// yields nothing.
pub fn scan_pods(pods_dir: &Path, filters: &Filters, out: &mut Vec<(PathBuf, Found)>) {
    for pod_dir in dir_entries(pods_dir) {
        let pod_name = pod_dir.file_name();
        let Some((ns, _, _)) = pod_name.to_str().and_then(crate::identity::parse_pod_dir) else {
            continue;
        };
        if !filters.include_ns.as_ref().is_none_or(|g| g.is_match(ns))
            || filters.exclude_ns.is_match(ns)
        {
            continue;
        }
        for container_dir in dir_entries(&pod_dir.path()) {
            let cname = container_dir.file_name();
            let Some(cname) = cname.to_str() else {
                continue;
            };
            if !filters.accepts(ns, cname) {
                continue;
            }
            for file in dir_entries(&container_dir.path()) {
                let path = file.path();
                if let Some(pf) = PodFile::from_path(&path) {
                    out.push((path, Found::Container(pf)));
                }
            }
        }
    }
}

/// The audit log `path` (if it exists) and its rotated siblings.
pub fn scan_audit(path: &Path, out: &mut Vec<(PathBuf, Found)>) {
    let (Some(dir), Some(base)) = (path.parent(), path.file_name().and_then(|n| n.to_str())) else {
        return;
    };
    for entry in dir_entries(dir) {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name == base {
            out.push((entry.path(), Found::Audit { live: true }));
        } else if is_audit_sibling(base, name) {
            out.push((entry.path(), Found::Audit { live: false }));
        }
    }
}

/// The segments of the webhook spool; the newest is live.
pub fn scan_spool(dir: &Path, out: &mut Vec<(PathBuf, Found)>) {
    let mut segments: Vec<(String, PathBuf)> = dir_entries(dir)
        .filter_map(|e| {
            let name = e.file_name().to_str()?.to_string();
            let segment = name.strip_suffix(".jsonl")?.to_string();
            Some((segment, e.path()))
        })
        .collect();
    segments.sort();
    let newest = segments.last().map(|(s, _)| s.clone());
    for (segment, path) in segments {
        let live = Some(&segment) == newest.as_ref();
        out.push((path, Found::Spool { segment, live }));
    }
}

/// A message from the file-system watcher to the follower.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsEvent {
    /// Files were created, renamed or removed: rescan.
    Structure,
    /// Data was written: read.
    Data,
}

/// Watches the directories the collector reads, turning notifications into [`FsEvent`]s.
/// Directories that do not exist yet are retried by [`DirWatcher::refresh`] (called on every
/// periodic scan), so a pods directory created later is picked up.
pub struct DirWatcher {
    watcher: Option<notify::RecommendedWatcher>,
    wanted: Vec<(PathBuf, RecursiveMode)>,
    watching: Vec<bool>,
    active: bool,
}

impl DirWatcher {
    /// A watcher for `wanted` (directory, recursive?), sending into `tx` through `wrap`.
    pub fn new<M: Send + 'static>(
        wanted: Vec<(PathBuf, bool)>,
        tx: Sender<M>,
        wrap: fn(FsEvent) -> M,
    ) -> DirWatcher {
        let watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            if let Ok(event) = res {
                let kind = match event.kind {
                    // The kernel's queue overflowed: events were lost, look at everything.
                    _ if event.need_rescan() => FsEvent::Structure,
                    EventKind::Create(_) | EventKind::Remove(_) => FsEvent::Structure,
                    EventKind::Modify(notify::event::ModifyKind::Name(_)) => FsEvent::Structure,
                    EventKind::Access(_) => return,
                    _ => FsEvent::Data,
                };
                let _ = tx.send(wrap(kind));
            }
        })
        .inspect_err(|e| debug!(error = %e, "no file-system notifications, polling only"))
        .ok();
        let wanted: Vec<_> = wanted
            .into_iter()
            .map(|(p, r)| {
                let mode = if r {
                    RecursiveMode::Recursive
                } else {
                    RecursiveMode::NonRecursive
                };
                (p, mode)
            })
            .collect();
        let watching = vec![false; wanted.len()];
        let mut w = DirWatcher {
            watcher,
            wanted,
            watching,
            active: false,
        };
        w.refresh();
        w
    }

    /// Whether notifications come for every wanted directory that exists (as of the last
    /// [`DirWatcher::refresh`]): then new files, and new data in the files, are announced, and
    /// polling is only a safety net.
    pub fn active(&self) -> bool {
        self.active
    }

    /// Starts watching the directories that now exist and were not watched yet.
    pub fn refresh(&mut self) {
        let Some(watcher) = self.watcher.as_mut() else {
            return;
        };
        let mut active = true;
        for (i, (dir, mode)) in self.wanted.iter().enumerate() {
            if !self.watching[i] && dir.is_dir() {
                self.watching[i] = watcher.watch(dir, *mode).is_ok();
                active &= self.watching[i];
            }
        }
        self.active = active;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> trawl_config::CollectorConfig {
        trawl_config::CollectorConfig {
            include_namespaces: vec!["shop*".into(), "kube-system".into()],
            exclude_namespaces: vec!["shop-test".into()],
            exclude_containers: vec!["istio-*".into()],
            ..Default::default()
        }
    }

    #[test]
    fn filters() {
        let f = Filters::new(&cfg()).unwrap();
        assert!(f.accepts("shop", "web"));
        assert!(f.accepts("shop-prod", "web"));
        assert!(!f.accepts("shop-test", "web"));
        assert!(!f.accepts("shop", "istio-proxy"));
        assert!(!f.accepts("default", "web"));
        let all = Filters::new(&Default::default()).unwrap();
        assert!(all.accepts("anything", "any"));
        let bad = trawl_config::CollectorConfig {
            include_namespaces: vec!["[".into()],
            ..Default::default()
        };
        assert!(matches!(Filters::new(&bad), Err(Error::Config(_))));
    }

    #[test]
    fn scans_pods_audit_and_spool() {
        let dir = tempfile::tempdir().unwrap();
        let pods = dir.path().join("pods");
        for p in [
            "shop_web_u1/app/0.log",
            "shop_web_u1/app/0.log.20261125-101500",
            "shop_web_u1/app/0.log.20261125-101400.gz",
            "shop_web_u1/istio-proxy/0.log",
            "default_x_u2/app/0.log",
            "junk/app/0.log",
        ] {
            let path = pods.join(p);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(&path, b"x\n").unwrap();
        }
        let mut out = Vec::new();
        scan_pods(&pods, &Filters::new(&cfg()).unwrap(), &mut out);
        let mut names: Vec<_> = out
            .iter()
            .map(|(p, _)| p.strip_prefix(&pods).unwrap().display().to_string())
            .collect();
        names.sort();
        assert_eq!(
            names,
            vec![
                "shop_web_u1/app/0.log",
                "shop_web_u1/app/0.log.20261125-101500"
            ]
        );
        let mut none = Vec::new();
        scan_pods(
            &dir.path().join("missing"),
            &Filters::new(&cfg()).unwrap(),
            &mut none,
        );
        assert!(none.is_empty());

        let audit = dir.path().join("audit");
        fs::create_dir_all(&audit).unwrap();
        for n in [
            "audit.log",
            "audit-2026-11-25T10-15-00.000.log",
            "audit-1.log.gz",
            "x.log",
        ] {
            fs::write(audit.join(n), b"").unwrap();
        }
        let mut out = Vec::new();
        scan_audit(&audit.join("audit.log"), &mut out);
        out.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(out.len(), 2);
        assert!(matches!(out[1].1, Found::Audit { live: true }));
        assert!(matches!(out[0].1, Found::Audit { live: false }));

        let spool = dir.path().join("spool");
        fs::create_dir_all(&spool).unwrap();
        fs::write(spool.join("001.jsonl"), b"").unwrap();
        fs::write(spool.join("002.jsonl"), b"").unwrap();
        let mut out = Vec::new();
        scan_spool(&spool, &mut out);
        assert!(matches!(&out[0].1, Found::Spool { live: false, segment } if segment == "001"));
        assert!(matches!(&out[1].1, Found::Spool { live: true, .. }));
    }
}
