//! Starting and stopping the collector: [`Collector::start`] and [`CollectorHandle`].

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use globset::Glob;
use prometheus_client::registry::Registry;
use tokio::sync::watch;
use tracing::{error, info, warn};
use trawl_config::{CollectorConfig, RateLimit};

use crate::buffer::DiskBuffer;
use crate::checkpoint::{CheckpointStore, Position};
use crate::deadletter::DeadLetters;
use crate::discovery::Filters;
use crate::error::{Error, Result};
use crate::follower::{Follower, FollowerConfig, MultilineMatch};
use crate::kube::{MetaCache, Metadata, PodFilter, WatchSettings};
use crate::metrics::Metrics;
use crate::records::Stamp;
use crate::redact::Redactor;
use crate::shared::{lock, FollowerMsg, Shared};
use crate::ship::{ShipConfig, Shipper, StreamIngest};
use crate::webhook::WebhookState;

/// How long a graceful shutdown keeps shipping what is buffered.
const DRAIN_ON_SHUTDOWN: Duration = Duration::from_secs(5);

/// The node agent; see [`Collector::start`].
pub struct Collector;

/// A running collector. Dropping it stops the collector abruptly (like a crash: nothing is
/// lost, what was not acknowledged is read again after a restart); prefer
/// [`CollectorHandle::shutdown`].
pub struct CollectorHandle {
    follower_tx: std::sync::mpsc::Sender<FollowerMsg>,
    follower: Option<JoinHandle<()>>,
    shipper: Option<tokio::task::JoinHandle<()>>,
    stop: watch::Sender<bool>,
    webhook: Option<Arc<WebhookState>>,
    shared: Arc<Shared>,
    registry: Arc<Mutex<Registry>>,
    node: String,
    readiness: Readiness,
    /// Dropped (or set) to stop the Kubernetes watches.
    _kube_stop: watch::Sender<bool>,
}

/// Whether the collector ships: not ready once every delivery has been refused or unanswered
/// for `collector.stuck_ready_after_secs`. Cheap to clone and to ask.
#[derive(Clone)]
pub struct Readiness {
    shared: Arc<Shared>,
    stuck_limit: Duration,
}

impl Readiness {
    /// `false` while the shipper has been stuck for at least the configured time.
    pub fn is_ready(&self) -> bool {
        lock(&self.shared.stuck_since).is_none_or(|since| since.elapsed() < self.stuck_limit)
    }
}

/// This node's name: the configured one (which loading took from `NODE_NAME` when unset, see
/// `CollectorConfig::resolve_host`), else the host name.
fn node_name(configured: &str) -> String {
    if !configured.is_empty() {
        return configured.to_string();
    }
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".to_string())
}

/// Connects to the API server (retrying with backoff while that fails) and runs the watches
/// until `stop`. Never returns an error: without the API, records carry path metadata.
/// The API client of `cfg`, retried with backoff (each failure counted in `errors` and logged
/// with `why`); `None` once `stop` says so.
async fn api_client(
    cfg: &trawl_config::KubernetesConfig,
    errors: &prometheus_client::metrics::counter::Counter,
    why: &str,
    mut stop: watch::Receiver<bool>,
) -> Option<kube::Client> {
    let mut failures = 0u32;
    loop {
        match crate::kube::client(cfg).await {
            Ok(client) => return Some(client),
            Err(e) => {
                errors.inc();
                let delay = crate::backoff::next_delay(failures, None);
                failures = failures.saturating_add(1);
                warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "{why}");
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    _ = stop.changed() => return None,
                }
            }
        }
    }
}

async fn watch_kubernetes(
    cfg: trawl_config::KubernetesConfig,
    settings: WatchSettings,
    cache: Arc<MetaCache>,
    metrics: Metrics,
    stop: watch::Receiver<bool>,
) {
    let errors = metrics.kube_watch_errors.clone();
    let why = "no Kubernetes API client; records carry path metadata meanwhile";
    let Some(client) = api_client(&cfg, &errors, why, stop.clone()).await else {
        return;
    };
    info!(node = %settings.node, "watching this node's pods on the Kubernetes API");
    crate::kube::run(client, settings, cache, metrics, stop).await;
}

fn glob(pattern: &str, key: &str) -> Result<globset::GlobMatcher> {
    Glob::new(pattern)
        .map(|g| g.compile_matcher())
        .map_err(|e| Error::Config(format!("{key}: {e}")))
}

/// What the follower of `config` is told to do (without Kubernetes metadata, added once the
/// watch starts); an error names a redaction rule, glob or pattern that does not compile.
fn follower_config(
    config: &trawl_config::Config,
    node: &str,
    spool_dir: &Path,
) -> Result<FollowerConfig> {
    let cc = &config.collector;
    let stamp = Stamp {
        cluster: config.cluster.clone(),
        node: node.to_string(),
    };
    let redactor = if cc.redact.is_empty() {
        None
    } else {
        Some(Redactor::from_config(&cc.redact).map_err(|e| Error::Config(e.to_string()))?)
    };
    Ok(FollowerConfig {
        stamp,
        pods_dir: cc.pods_dir.clone(),
        audit_paths: cc.audit_log_paths.clone(),
        spool_dir: spool_dir.to_path_buf(),
        filters: Filters::new(cc)?,
        max_line_bytes: cc.max_line_bytes.max(1),
        batch_max_bytes: cc.batch_max_bytes.max(1),
        batch_max_wait: Duration::from_millis(cc.batch_max_wait_ms),
        rescan_interval: Duration::from_millis(cc.rescan_interval_ms.max(10)),
        multiline: multiline_rules(cc)?,
        redactor,
        rate_limits: rate_limit_rules(cc)?,
        drop_policy: cc.drop_policy,
        kube: None,
    })
}

/// Positions of the sources in batches left in the buffer, from where the follower resumes
/// them (they are resent first).
fn buffered_positions(buffer: &DiskBuffer, queued: &[u64]) -> HashMap<String, Position> {
    let mut hints = HashMap::new();
    for &seq in queued {
        match buffer.read_sources(seq) {
            Ok((_, sources)) => {
                for s in sources {
                    hints.insert(
                        s.id,
                        Position {
                            resume: s.resume,
                            acked: s.end,
                        },
                    );
                }
            }
            Err(e) => warn!(seq, error = %e, "buffered batch unreadable"),
        }
    }
    hints
}

/// `collector.multiline` with its namespace and container globs compiled; a rule that does not
/// compile is an error naming it.
fn multiline_rules(cc: &CollectorConfig) -> Result<Vec<MultilineMatch>> {
    let mut multiline = Vec::new();
    for (i, rule) in cc.multiline.iter().enumerate() {
        let ns = match &rule.namespace {
            Some(n) => Some(glob(n, &format!("collector.multiline.{i}.namespace"))?),
            None => None,
        };
        let c = glob(
            &rule.container,
            &format!("collector.multiline.{i}.container"),
        )?;
        crate::multiline::MultilineJoiner::from_rule(rule, cc.max_line_bytes)
            .map_err(|e| Error::Config(format!("collector.multiline.{i}: {e}")))?;
        multiline.push((ns, c, Arc::new(rule.clone())));
    }
    Ok(multiline)
}

/// `collector.rate_limits` with their namespace globs compiled.
fn rate_limit_rules(cc: &CollectorConfig) -> Result<Vec<(globset::GlobMatcher, RateLimit)>> {
    let mut rate_limits = Vec::new();
    for (i, rule) in cc.rate_limits.iter().enumerate() {
        let g = glob(
            &rule.namespace,
            &format!("collector.rate_limits.{i}.namespace"),
        )?;
        rate_limits.push((g, rule.clone()));
    }
    Ok(rate_limits)
}

/// Starts watching this node's pods when Kubernetes metadata is on, until `stop`; the metadata
/// the follower enriches records with, `None` when off (pod label filters are then ignored,
/// with a warning).
fn start_kubernetes(
    cc: &CollectorConfig,
    node: &str,
    metrics: &Metrics,
    stop: watch::Receiver<bool>,
) -> Result<Option<Metadata>> {
    if !cc.kubernetes.watch_enabled() {
        if !cc.include_pod_labels.is_empty() || !cc.exclude_pod_labels.is_empty() {
            warn!("pod label filters need Kubernetes metadata, which is off outside a cluster (set collector.kubernetes.enabled or kubeconfig); they are ignored");
        }
        return Ok(None);
    }
    let metadata = Metadata {
        cache: Arc::new(MetaCache::new(
            Duration::from_secs(cc.kubernetes.metadata_grace_secs),
            cc.kubernetes.namespace_labels,
        )),
        filter: PodFilter::from_config(cc)?,
        wait: Duration::from_millis(cc.kubernetes.metadata_wait_ms),
    };
    let settings = WatchSettings {
        node: node.to_string(),
        annotations: cc.kubernetes.annotations.clone().into(),
    };
    tokio::spawn(watch_kubernetes(
        cc.kubernetes.clone(),
        settings,
        metadata.cache.clone(),
        metrics.clone(),
        stop,
    ));
    Ok(Some(metadata))
}

/// Starts reading the node's journal (`collector.journal`) into the indexer's `journal`
/// stream ([`crate::journal`]).
fn start_journal(
    config: &trawl_config::Config,
    node: &str,
    indexers: &[String],
    data_dir: &Path,
    metrics: &Metrics,
    stop: watch::Receiver<bool>,
) -> Result<()> {
    let cc = &config.collector;
    let settings = crate::journal::JournalSettings {
        command: cc.journal.command.clone(),
        units: cc.journal.units.clone(),
        kernel: cc.journal.kernel,
        batch_max_entries: cc.journal.batch_max_entries,
        state_path: data_dir.join("journal.json"),
        ingest: stream_ingest(config, indexers, "journal", metrics)?,
        node: node.to_string(),
        cluster: config.cluster.clone(),
    };
    tokio::spawn(crate::journal::run(settings, metrics.clone(), stop));
    Ok(())
}

/// Where the collector's own documents of `stream` go: this node's order of the indexers, with
/// the log shipper's token, CAs and failover.
fn stream_ingest(
    config: &trawl_config::Config,
    indexers: &[String],
    stream: &str,
    metrics: &Metrics,
) -> Result<StreamIngest> {
    let cc = &config.collector;
    StreamIngest::new(
        indexers,
        stream,
        &cc.token,
        cc.ca_path.as_deref(),
        Duration::from_secs(cc.failover_after_secs),
        metrics.failovers.clone(),
    )
}

/// Starts collecting the cluster's Kubernetes Events (`collector.kubernetes.events`) into the
/// indexer's `events` stream, while this collector holds the Events lease
/// ([`crate::kube::events`]). The API client is retried with backoff like the pods' watch.
fn start_events(
    config: &trawl_config::Config,
    node: &str,
    indexers: &[String],
    data_dir: &Path,
    metrics: &Metrics,
    stop: watch::Receiver<bool>,
) -> Result<()> {
    let cc = &config.collector;
    let settings = crate::kube::events::EventsSettings {
        identity: node.to_string(),
        lease_namespace: cc.kubernetes.events_lease_namespace.clone(),
        lease_name: cc.kubernetes.events_lease_name.clone(),
        lease: Duration::from_secs(cc.kubernetes.events_lease_secs.max(1)),
        state_path: data_dir.join("events.json"),
        ingest: stream_ingest(config, indexers, "events", metrics)?,
        cluster: config.cluster.clone(),
    };
    let kube_config = cc.kubernetes.clone();
    let metrics = metrics.clone();
    tokio::spawn(async move {
        let errors = metrics.events_errors.clone();
        let why = "no Kubernetes API client for the Events";
        if let Some(client) = api_client(&kube_config, &errors, why, stop.clone()).await {
            crate::kube::events::run(client, settings, metrics, stop).await;
        }
    });
    Ok(())
}

/// The caller's shutdown signal starts the same graceful stop as `CollectorHandle::shutdown`.
async fn forward_shutdown(
    mut signal: watch::Receiver<bool>,
    follower: std::sync::mpsc::Sender<FollowerMsg>,
    stop: watch::Sender<bool>,
) {
    loop {
        if *signal.borrow() {
            let _ = follower.send(FollowerMsg::Stop { seal: true });
            let _ = stop.send(true);
            return;
        }
        if signal.changed().await.is_err() {
            return;
        }
    }
}

impl Collector {
    /// Starts the collector of `config` shipping to `indexer_url` (the binary passes
    /// `collector.indexer_url`, or in standalone the address its server bound). It stops when
    /// `shutdown` turns `true` (sealing what it read and shipping for a few seconds more), or
    /// by [`CollectorHandle::shutdown`].
    ///
    /// Must be called within a tokio runtime. Errors: the collector's data directory cannot be
    /// used, a checkpoint file is corrupt, a glob or pattern does not compile.
    pub async fn start(
        config: &trawl_config::Config,
        indexer_url: String,
        shutdown: watch::Receiver<bool>,
    ) -> Result<CollectorHandle> {
        let cc = &config.collector;
        let node = node_name(&cc.node_name);
        // With several indexers, this node's order of them; the first takes its batches.
        let mut indexers = if cc.indexer_urls.is_empty() {
            vec![indexer_url]
        } else {
            crate::ship::indexer_order(&node, &cc.indexer_urls)
        };
        // Events and journal entries go the same way, with their own failover.
        let all_indexers = indexers.clone();
        let indexer_url = indexers.remove(0);
        if !indexers.is_empty() {
            info!(indexer = %indexer_url, then = ?indexers, "shipping to this node's first indexer");
        }
        let data_dir = config.collector_data_dir();
        crate::fsutil::ensure_dir(&data_dir)?;
        let checkpoints = CheckpointStore::load(&data_dir.join("checkpoints.json"))?;
        let buffer = DiskBuffer::open(&data_dir.join("buffer"), cc.buffer_max_bytes)?;
        let queued = buffer.seqs();
        let hints = buffered_positions(&buffer, &queued);
        if !queued.is_empty() {
            info!(
                batches = queued.len(),
                bytes = buffer.bytes(),
                "resending buffered batches first"
            );
        }
        let metrics = Metrics::default();
        metrics.buffer_bytes.set(buffer.bytes() as i64);
        let shared = Arc::new(Shared {
            checkpoints: Mutex::new(checkpoints),
            buffer: Mutex::new(buffer),
            metrics: metrics.clone(),
            stuck_since: Mutex::new(None),
        });

        let spool_dir = data_dir.join("webhook");
        let follower_cfg = follower_config(config, &node, &spool_dir)?;
        let mut follower_cfg = follower_cfg;
        let (kube_stop, kube_stop_rx) = watch::channel(false);
        if cc.kubernetes.events {
            start_events(
                config,
                &node,
                &all_indexers,
                &data_dir,
                &metrics,
                kube_stop_rx.clone(),
            )?;
        }
        if cc.journal.enabled {
            start_journal(
                config,
                &node,
                &all_indexers,
                &data_dir,
                &metrics,
                kube_stop_rx.clone(),
            )?;
        }
        follower_cfg.kube = start_kubernetes(cc, &node, &metrics, kube_stop_rx)?;

        let (follower_tx, follower_rx) = std::sync::mpsc::channel();
        let (ship_tx, ship_rx) = tokio::sync::mpsc::unbounded_channel();
        let webhook = if cc.audit_webhook {
            Some(Arc::new(WebhookState::new(
                &spool_dir,
                config.cluster.clone(),
                metrics.clone(),
                follower_tx.clone(),
            )?))
        } else {
            std::fs::create_dir_all(&spool_dir).map_err(|e| Error::io(&spool_dir, e))?;
            None
        };
        let shipper = Shipper::new(
            ShipConfig {
                indexer_url,
                failover_urls: indexers,
                failover_after: std::time::Duration::from_secs(cc.failover_after_secs),
                token: cc.token.clone(),
                ca_path: cc.ca_path.clone(),
                max_in_flight: cc.max_in_flight,
                dead_letters: DeadLetters::new(
                    &data_dir.join("dead-letter"),
                    cc.dead_letter_max_bytes,
                ),
            },
            shared.clone(),
            ship_rx,
            follower_tx.clone(),
            queued,
        )?;
        let follower = Follower::new(
            follower_cfg,
            shared.clone(),
            follower_rx,
            follower_tx.clone(),
            ship_tx,
            hints,
        );
        let follower = std::thread::Builder::new()
            .name("trawl-follower".to_string())
            .spawn(move || follower.run())
            .map_err(|e| Error::Start(format!("follower thread: {e}")))?;
        let (stop, stop_rx) = watch::channel(false);
        let shipper = tokio::spawn(shipper.run(stop_rx, DRAIN_ON_SHUTDOWN));

        tokio::spawn(forward_shutdown(
            shutdown,
            follower_tx.clone(),
            stop.clone(),
        ));

        let mut registry = Registry::default();
        metrics.register(&mut registry);
        let shared_for_ready = shared.clone();
        info!(node = %node, pods_dir = %cc.pods_dir.display(), "collector started");
        Ok(CollectorHandle {
            follower_tx,
            follower: Some(follower),
            shipper: Some(shipper),
            stop,
            webhook,
            shared,
            registry: Arc::new(Mutex::new(registry)),
            node,
            readiness: Readiness {
                shared: shared_for_ready,
                stuck_limit: Duration::from_secs(cc.stuck_ready_after_secs),
            },
            _kube_stop: kube_stop,
        })
    }
}

impl CollectorHandle {
    /// `POST /api/v1/audit/webhook`, to merge into the server (empty when
    /// `collector.audit_webhook` is off).
    pub fn webhook_router(&self) -> Router {
        match &self.webhook {
            Some(state) => crate::webhook::router(state.clone()),
            None => Router::new(),
        }
    }

    /// The collector's readiness (see [`Readiness`]), for the server's `/health/ready`.
    pub fn readiness(&self) -> Readiness {
        self.readiness.clone()
    }

    /// The webhook plus `/health/live`, `/health/ready` and `/metrics`: the whole server of
    /// `trawl collector`. Ready as soon as the collector runs (never waits for Kubernetes),
    /// until its deliveries have been refused for `collector.stuck_ready_after_secs`.
    pub fn router(&self) -> Router {
        let registry = self.registry.clone();
        let metrics = get(move || {
            let registry = registry.clone();
            async move {
                let mut out = String::new();
                match prometheus_client::encoding::text::encode(&mut out, &lock(&registry)) {
                    Ok(()) => (
                        StatusCode::OK,
                        [(
                            axum::http::header::CONTENT_TYPE,
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )],
                        out,
                    )
                        .into_response(),
                    Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
                }
            }
        });
        self.webhook_router()
            .route("/health/live", get(|| async { "ok" }))
            .route(
                "/health/ready",
                get({
                    let readiness = self.readiness();
                    move || async move {
                        if readiness.is_ready() {
                            (StatusCode::OK, "ok")
                        } else {
                            (
                                StatusCode::SERVICE_UNAVAILABLE,
                                "deliveries to the indexer refused",
                            )
                        }
                    }
                }),
            )
            .route("/metrics", metrics)
    }

    /// Registers the collector's metrics into the binary's registry.
    pub fn register_metrics(&self, registry: &mut Registry) {
        self.shared.metrics.register(registry);
    }

    /// Appends the collector's metrics in the Prometheus text format (without the final
    /// `# EOF`, so that it can be concatenated with other registries' output).
    pub fn encode_metrics(&self, out: &mut String) -> std::fmt::Result {
        prometheus_client::encoding::text::encode_registry(out, &lock(&self.registry))
    }

    /// The metrics handles (for tests and the benchmark harness).
    pub fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }

    /// The node name stamped on records.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Stops gracefully: seals what was read into the disk buffer, ships for a few seconds
    /// more, persists the checkpoints.
    pub async fn shutdown(mut self) {
        let _ = self.follower_tx.send(FollowerMsg::Stop { seal: true });
        if let Some(follower) = self.follower.take() {
            let _ = tokio::task::spawn_blocking(move || follower.join()).await;
        }
        let _ = self.stop.send(true);
        if let Some(shipper) = self.shipper.take() {
            let _ = shipper.await;
        }
        let shared = self.shared.clone();
        let persisted =
            tokio::task::spawn_blocking(move || lock(&shared.checkpoints).persist()).await;
        if let Ok(Err(e)) = persisted {
            error!(error = %e, "cannot persist checkpoints at shutdown");
        }
        info!("collector stopped");
    }

    /// Stops at once, as a crash would: nothing more is sealed, shipped or persisted. The
    /// follower thread is joined, so a new collector may start on the same data directory.
    pub async fn kill(mut self) {
        let _ = self.follower_tx.send(FollowerMsg::Stop { seal: false });
        if let Some(shipper) = self.shipper.take() {
            shipper.abort();
            let _ = shipper.await;
        }
        if let Some(follower) = self.follower.take() {
            let _ = tokio::task::spawn_blocking(move || follower.join()).await;
        }
    }
}

impl Drop for CollectorHandle {
    fn drop(&mut self) {
        if self.follower.is_some() || self.shipper.is_some() {
            let _ = self.follower_tx.send(FollowerMsg::Stop { seal: false });
            if let Some(shipper) = self.shipper.take() {
                shipper.abort();
            }
        }
    }
}
