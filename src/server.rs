//! Composes the roles into one HTTP server: routes, health, metrics, graceful shutdown.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use prometheus_client::registry::Registry;
use trawl_config::Config;
use trawl_model::{ApiError, ErrorCode};

/// Which roles run in this process.
pub struct Roles {
    /// Alerting runs here when `[alerting]` lists rules (standalone and searcher; see
    /// src/alerting.rs for why not in an indexer).
    #[cfg_attr(not(feature = "query"), allow(dead_code))]
    pub alerting: bool,
    #[cfg_attr(not(feature = "indexer"), allow(dead_code))]
    pub indexer: bool,
    pub searcher: bool,
    #[cfg_attr(not(feature = "collector"), allow(dead_code))]
    pub collector: bool,
    pub demo: bool,
    /// This process answers every read from its own splits (standalone), so with a shared
    /// tier it keeps a local copy of every split it publishes; `trawl indexer` keeps
    /// `[storage] local_splits_max_bytes` of them (searchers read the rest).
    #[cfg_attr(not(feature = "indexer"), allow(dead_code))]
    pub keeps_split_copies: bool,
}

impl Roles {
    #[allow(dead_code)]
    pub fn standalone(demo: bool) -> Roles {
        Roles {
            alerting: true,
            indexer: true,
            searcher: false,
            collector: true,
            demo,
            keeps_split_copies: true,
        }
    }

    #[allow(dead_code)]
    pub fn indexer() -> Roles {
        Roles {
            alerting: false,
            indexer: true,
            searcher: false,
            collector: false,
            demo: false,
            keeps_split_copies: false,
        }
    }

    #[allow(dead_code)]
    pub fn collector() -> Roles {
        Roles {
            alerting: false,
            indexer: false,
            searcher: false,
            collector: true,
            demo: false,
            keeps_split_copies: false,
        }
    }

    #[allow(dead_code)]
    pub fn searcher() -> Roles {
        Roles {
            alerting: true,
            indexer: false,
            searcher: true,
            collector: false,
            demo: false,
            keeps_split_copies: false,
        }
    }
}

/// Test hook: while this file exists in `TRAWL_TEST_FAULT_DIR`, the indexer role waits before
/// opening its data directory, so that a test sees the port answer while the roles start.
#[cfg(feature = "indexer")]
const HOLD_START_FILE: &str = "hold_start";

type Ready = Arc<dyn Fn() -> bool + Send + Sync>;

#[derive(Clone)]
struct Shared {
    registry: Arc<Mutex<Registry>>,
    ready: Ready,
}

/// Runs the roles until SIGTERM or Ctrl-C, then shuts down cleanly: the listener stops, the
/// indexer drains its WAL queue and commits.
///
/// Longer than most functions here on purpose: it is the start-up and shut-down sequence read
/// in order (port, indexer, query routes, collector, demo, alerting, outer routes; then the
/// collector stops before the listener, the indexer last), each role's own start a function of
/// its own, and the `cfg` of each build beside the step it removes.
// The searcher-only build has no role that changes `config`, `registry` or `ready`.
#[cfg_attr(
    not(any(feature = "collector", feature = "indexer")),
    allow(unused_mut)
)]
pub async fn run(mut config: Config, roles: Roles) -> anyhow::Result<()> {
    #[cfg(all(feature = "collector", feature = "indexer"))]
    if roles.demo {
        // The demo's pods write under the data directory, and the collector tails them there.
        config.collector.pods_dir = crate::demo::pods_dir(&config);
        config.collector.enabled = true;
    }
    // Certificates and token hashes are checked before the port is taken.
    let tls = config
        .auth
        .tls
        .as_ref()
        .map(crate::tls::server_config)
        .transpose()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let mut authenticator = crate::auth::Authenticator::from_config(&config.auth)?;
    let listener = tokio::net::TcpListener::bind(&config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let addr = listener.local_addr()?;
    // The port answers at once: 503 until every role is up (the indexer replays its WAL
    // first), so that probes and clients see "not ready" instead of a connection that hangs.
    let (front, mut server, stop) = serve_front(listener, tls);
    let mut registry = Registry::default();
    let mut router = Router::new();
    let mut ready: Ready = Arc::new(|| true);

    #[cfg(feature = "indexer")]
    let indexer = if roles.indexer {
        let (indexer, routes) = start_indexer(&config, &roles, &mut registry).await?;
        router = router.merge(routes);
        let probe = indexer.clone();
        ready = Arc::new(move || probe.is_ready());
        Some(indexer)
    } else {
        None
    };
    // A searcher over the shared tier searches the published splits itself (and so do its
    // alerting rules).
    #[cfg(feature = "query")]
    let remote = {
        let remote = if roles.searcher && config.storage.is_remote() {
            let metrics = Arc::new(trawl_storage::StorageMetrics::default());
            registry.register_collector(Box::new(StorageMetricsCollector(metrics.clone())));
            let remote = trawl_query::remote::RemoteSplits::connect(&config, metrics)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            tracing::info!(storage = %config.storage.uri, "searching the shared tier's published splits");
            Some(Arc::new(remote))
        } else {
            None
        };
        router = router.merge(query_routes(&config, &roles, remote.clone())?);
        remote
    };
    #[cfg(feature = "collector")]
    let collector = if roles.collector && config.collector.enabled {
        let url = collector_target(&mut config, &mut authenticator, scheme, addr);
        let (_tx, rx) = tokio::sync::watch::channel(false);
        let handle = trawl_collector::Collector::start(&config, url, rx)
            .await
            .context("starting the collector")?;
        handle.register_metrics(&mut registry);
        if !roles.indexer {
            // `trawl collector`: unready once its deliveries have been refused for long.
            let readiness = handle.readiness();
            ready = Arc::new(move || readiness.is_ready());
        }
        router = router.merge(handle.webhook_router().with_state(()));
        Some((handle, _tx))
    } else {
        None
    };
    #[cfg(not(feature = "collector"))]
    let collector: Option<()> = None;
    if roles.demo {
        #[cfg(all(feature = "collector", feature = "indexer"))]
        crate::demo::start(&config, addr).context("starting the demo cluster")?;
    }
    let _ = &roles.searcher;
    #[cfg(feature = "query")]
    let mut alerting_lease = None;
    #[cfg(feature = "query")]
    if roles.alerting && config.alerting.is_enabled() {
        #[cfg(feature = "indexer")]
        let local = indexer
            .clone()
            .map(|indexer| crate::alerting::local(Arc::new(indexer), &config));
        #[cfg(not(feature = "indexer"))]
        let local = None;
        let (routes, lease) = crate::alerting::start(
            &config,
            local,
            remote,
            format!("{scheme}://{addr}"),
            &mut registry,
        )?;
        router = router.merge(routes.with_state(()));
        alerting_lease = lease;
    }

    let router = outer_routes(
        router,
        Shared {
            registry: Arc::new(Mutex::new(registry)),
            ready,
        },
        authenticator,
    );
    front.install(router);
    // The one line a script or test reads to find the port actually bound, printed once every
    // role is up (the port already answered 503 meanwhile).
    println!("trawl listening on {scheme}://{addr}");
    tracing::info!(%addr, scheme, "listening");
    tokio::select! {
        _ = shutdown_signal() => {}
        served = &mut server => {
            served??;
            anyhow::bail!("the HTTP server stopped on its own");
        }
    }
    // Another searcher takes alerting over at its next try, not after the lease's term.
    #[cfg(feature = "query")]
    if let Some(lease) = alerting_lease {
        lease.release().await;
    }
    // The collector stops first, while the indexer still takes its last batches.
    #[cfg(feature = "collector")]
    if let Some((handle, _tx)) = collector {
        handle.shutdown().await;
    }
    #[cfg(not(feature = "collector"))]
    let _ = collector;
    let _ = stop.send(());
    server.await??;

    #[cfg(feature = "indexer")]
    if let Some(indexer) = indexer {
        tokio::task::spawn_blocking(move || indexer.shutdown()).await?;
    }
    tracing::info!("stopped");
    Ok(())
}

/// The query roles' routes: the fan-out root of `trawl searcher`, and the web console wherever
/// queries are answered (standalone, indexer, searcher).
#[cfg(feature = "query")]
fn query_routes(
    config: &Config,
    roles: &Roles,
    remote: Option<Arc<trawl_query::remote::RemoteSplits>>,
) -> anyhow::Result<Router<Shared>> {
    let mut router = Router::new();
    if roles.searcher {
        let mut settings = trawl_query::distributed::RootSettings::from_config(&config.query)?;
        settings.remote = remote;
        router = router.merge(
            trawl_query::distributed::root_routes(
                settings,
                trawl_query::QueryLimits::from_config(&config.query),
            )?
            .with_state(()),
        );
    }
    if roles.indexer || roles.searcher {
        router = router.merge(crate::console::routes().with_state(()));
    }
    Ok(router)
}

/// Serves the listener at once with a [`Front`] that answers 503 until the roles' router is
/// installed. Returns the front, the server's task, and the sender that stops it gracefully.
fn serve_front(
    listener: tokio::net::TcpListener,
    tls: Option<axum_server::tls_rustls::RustlsConfig>,
) -> (
    Front,
    tokio::task::JoinHandle<anyhow::Result<()>>,
    tokio::sync::oneshot::Sender<()>,
) {
    let front = Front::default();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let stopped = async move {
        let _ = stopped.await;
    };
    let app = front.router();
    let server = match tls {
        Some(tls) => tokio::spawn(crate::tls::serve(listener, app, tls, stopped)),
        None => tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(stopped)
                .await
                .context("serving HTTP")
        }),
    };
    (front, server, stop)
}

/// Where the collector ships. In standalone (no `collector.indexer_url`) it is this very
/// server at the port actually bound: over TLS it trusts the server's own certificate unless a
/// CA is configured, and with authentication on it gets a token of its own unless one is set.
#[cfg(feature = "collector")]
fn collector_target(
    config: &mut Config,
    authenticator: &mut Option<Arc<crate::auth::Authenticator>>,
    scheme: &str,
    addr: std::net::SocketAddr,
) -> String {
    if !config.collector.indexer_url.is_empty() {
        return config.collector.indexer_url.clone();
    }
    if let Some(first) = config.collector.indexer_urls.first() {
        // The collector orders `indexer_urls` itself (see `Collector::start`).
        return first.clone();
    }
    if let Some(tls) = &config.auth.tls {
        if config.collector.ca_path.is_none() {
            config.collector.ca_path = Some(tls.cert_path.clone());
        }
    }
    if let Some(auth) = authenticator.as_mut() {
        if config.collector.token.is_empty() {
            config.collector.token = Arc::make_mut(auth).add_internal_ingest_token();
        }
    }
    format!("{scheme}://{addr}")
}

/// The roles' routes with what every process serves (`/health/live`, `/health/ready`,
/// `/metrics`), behind authentication when it is on (the collector's webhook included) and a
/// layer that turns a handler's panic into a 500.
fn outer_routes(
    router: Router<Shared>,
    shared: Shared,
    authenticator: Option<Arc<crate::auth::Authenticator>>,
) -> Router {
    let router = router
        .route(
            "/health/live",
            get(|| async { axum::Json(serde_json::json!({"status": "live"})) }),
        )
        .route("/health/ready", get(ready_handler))
        .route("/metrics", get(metrics_handler))
        .with_state(shared);
    let router = match authenticator {
        Some(auth) => router.layer(axum::middleware::from_fn_with_state(
            auth,
            crate::auth::middleware,
        )),
        None => router,
    };
    router.layer(tower_http::catch_panic::CatchPanicLayer::new())
}

#[cfg(feature = "indexer")]
async fn start_indexer(
    config: &Config,
    roles: &Roles,
    registry: &mut Registry,
) -> anyhow::Result<(trawl_indexer::Indexer, Router<Shared>)> {
    let metrics = Arc::new(trawl_indexer::Metrics::default());
    metrics.register(registry);
    // Test hooks (disk full on demand, a start-up held open), read here so that the library
    // never reads the process environment; unset in production.
    let fault_dir =
        std::env::var_os(trawl_indexer::TEST_FAULT_DIR_ENV).map(std::path::PathBuf::from);
    if let Some(hold) = fault_dir.as_ref().map(|dir| dir.join(HOLD_START_FILE)) {
        while hold.exists() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let settings =
        trawl_indexer::IndexerSettings::from_config(config).with_test_fault_dir(fault_dir);
    let indexer =
        tokio::task::spawn_blocking(move || trawl_indexer::Indexer::open(settings, metrics))
            .await?
            .context("opening the indexer")?;
    if config.storage.is_remote() {
        let keep_local_bytes =
            (!roles.keeps_split_copies).then_some(config.storage.local_splits_max_bytes);
        start_publisher(config, &indexer, keep_local_bytes, registry).await?;
    }
    let mut routes: Router = trawl_indexer::http::routes(indexer.clone());
    // `GET /api/v1/streams`: scoped to the caller's namespaces where the query role can count
    // them, the indexer's plain totals otherwise.
    #[cfg(feature = "query")]
    {
        routes = routes.merge(query::routes(indexer.clone(), config, registry));
    }
    #[cfg(not(feature = "query"))]
    {
        routes = routes.merge(trawl_indexer::http::streams_routes(indexer.clone()));
    }
    Ok((indexer, routes.with_state(())))
}

/// `[storage] uri` and a PostgreSQL `[metastore]`: the publisher uploads this indexer's sealed
/// and merged splits and publishes them in the shared metastore, until shutdown.
#[cfg(feature = "indexer")]
async fn start_publisher(
    config: &Config,
    indexer: &trawl_indexer::Indexer,
    keep_local_bytes: Option<u64>,
    registry: &mut Registry,
) -> anyhow::Result<()> {
    let metrics = Arc::new(trawl_storage::StorageMetrics::default());
    registry.register_collector(Box::new(StorageMetricsCollector(metrics.clone())));
    let storage = trawl_storage::ObjectStorage::open(&config.storage, metrics.clone())
        .context("opening [storage]")?;
    let indexer_id = indexer_id(config);
    tracing::info!(storage = storage.uri(), indexer = %indexer_id, "publishing splits to the shared tier");
    let interval = Duration::from_millis(config.metastore.poll_interval_ms);
    let grace = Duration::from_secs(config.metastore.grace_secs);
    let uri = config.metastore.uri.clone();
    // Delivery batches claim their sources in the metastore (exactly once across indexers);
    // its own connection, so that a slow publish never holds an ingest answer.
    indexer.set_ownership(Arc::new(trawl_indexer::ownership::Ownership::new(
        Arc::new(trawl_storage::PgMetastore::lazy(&uri, metrics.clone())),
        indexer_id.clone(),
    )));
    let root = indexer.root().to_path_buf();
    // What this data directory published, known before PostgreSQL answers (see
    // `tell_recorded`); a round reads it again.
    if let Err(err) = trawl_indexer::publish::tell_recorded(&root, indexer) {
        tracing::warn!(%err, "cannot read publisher.json; the publisher's rounds retry");
    }
    // `trawl indexer` leaves merges to the cluster's merger, which it runs while it holds the
    // `merges` lease; its inputs are downloaded through the split cache.
    let merger = match keep_local_bytes {
        Some(_) => {
            let cache = trawl_storage::SplitCache::open(
                &config.cache_dir(),
                config.storage.cache_max_bytes,
                storage.clone(),
            )
            .context("opening the split cache")?;
            indexer.set_cluster_merges();
            Some(trawl_indexer::cluster_merge::ClusterMerger {
                cache: Arc::new(cache),
                work_dir: root.join("cluster-merge"),
            })
        }
        None => None,
    };
    let indexer = indexer.clone();
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop.send(true);
    });
    // Ingest does not wait for the metastore: an indexer starts and takes batches while
    // PostgreSQL is away, and publishes once it can connect.
    tokio::spawn(async move {
        let mut failures = 0u32;
        let metastore = loop {
            match trawl_storage::PgMetastore::connect(&uri, metrics.clone()).await {
                Ok(metastore) => break metastore,
                Err(err) => {
                    metrics
                        .metastore_errors
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    failures = failures.saturating_add(1);
                    let wait = interval * failures.min(15);
                    tracing::warn!(%err, retry_in_ms = wait.as_millis() as u64, "cannot reach the [metastore]; splits are published once it answers");
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = stopped.changed() => return,
                    }
                }
            }
        };
        let mut publisher = trawl_indexer::publish::Publisher::new(
            storage,
            Arc::new(metastore),
            indexer_id,
            &root,
            grace,
        );
        publisher.keep_local_bytes = keep_local_bytes;
        publisher.merger = merger;
        // A takeover of one of this indexer's sources is reconciled at once (and, after the
        // notices connection was lost, anything missed meanwhile).
        let takeover = publisher.takeover.clone();
        let me = publisher.indexer_id.clone();
        let notices = metrics.clone();
        let watcher = trawl_storage::pg::watch_takeovers(&uri, interval * 5, move |change| {
            use trawl_storage::pg::PublishedChange;
            match change {
                PublishedChange::Stream(loser) if loser == me => {
                    trawl_storage::StorageMetrics::inc(&notices.takeover_notices, 1);
                    takeover.noticed();
                }
                PublishedChange::Listening => takeover.noticed(),
                _ => {}
            }
        });
        trawl_indexer::publish::run(publisher, indexer, interval, stopped).await;
        watcher.abort();
    });
    Ok(())
}

/// This indexer's name in the shared metastore: `[indexer] id`, else the host name (a pod's
/// name in a StatefulSet, stable across restarts).
#[cfg(feature = "indexer")]
fn indexer_id(config: &Config) -> String {
    let configured = config.indexer.id.trim();
    if !configured.is_empty() {
        return configured.to_string();
    }
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "indexer".into())
}

/// `trawl_storage_*`: uploads, downloads, requests, the split cache and the metastore, read at
/// each scrape.
#[cfg(any(feature = "indexer", feature = "query"))]
#[derive(Debug)]
struct StorageMetricsCollector(Arc<trawl_storage::StorageMetrics>);

#[cfg(any(feature = "indexer", feature = "query"))]
impl prometheus_client::collector::Collector for StorageMetricsCollector {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::DescriptorEncoder,
    ) -> Result<(), std::fmt::Error> {
        use prometheus_client::encoding::EncodeMetric;
        use prometheus_client::metrics::counter::ConstCounter;
        use prometheus_client::metrics::gauge::ConstGauge;
        use trawl_storage::StorageMetrics as M;
        let m = &self.0;
        for (name, help, value) in [
            (
                "trawl_storage_uploads",
                "Split objects uploaded",
                M::get(&m.uploads),
            ),
            (
                "trawl_storage_upload_bytes",
                "Bytes of split objects uploaded",
                M::get(&m.upload_bytes),
            ),
            (
                "trawl_storage_upload_errors",
                "Uploads that failed (retried later)",
                M::get(&m.upload_errors),
            ),
            (
                "trawl_storage_downloads",
                "Split objects downloaded into the cache",
                M::get(&m.downloads),
            ),
            (
                "trawl_storage_download_bytes",
                "Bytes downloaded into the cache",
                M::get(&m.download_bytes),
            ),
            (
                "trawl_storage_requests",
                "Requests made to object storage",
                M::get(&m.requests),
            ),
            (
                "trawl_storage_ranged_opens",
                "Splits opened from their object's tail (footer and hotcache) without fetching them whole",
                M::get(&m.ranged_opens),
            ),
            (
                "trawl_storage_ranged_open_requests",
                "Requests made to open splits by range (1 to 3 each)",
                M::get(&m.ranged_open_requests),
            ),
            (
                "trawl_storage_range_reads",
                "Ranged reads of splits opened by range, past their hotcache",
                M::get(&m.range_reads),
            ),
            (
                "trawl_storage_range_read_bytes",
                "Bytes of those ranged reads",
                M::get(&m.range_read_bytes),
            ),
            (
                "trawl_storage_published_list_hits",
                "Searches whose list of published splits was kept (no change notified since)",
                M::get(&m.published_list_hits),
            ),
            (
                "trawl_storage_published_list_misses",
                "Searches that read the list of published splits from the metastore",
                M::get(&m.published_list_misses),
            ),
            (
                "trawl_storage_cache_hits",
                "Split opens answered by the local cache",
                M::get(&m.cache_hits),
            ),
            (
                "trawl_storage_cache_misses",
                "Split opens that fetched the object",
                M::get(&m.cache_misses),
            ),
            (
                "trawl_storage_cache_evictions",
                "Splits removed from the cache",
                M::get(&m.cache_evictions),
            ),
            (
                "trawl_storage_retention_marked",
                "Published splits marked for deletion by the cluster's retention",
                M::get(&m.retention_marked),
            ),
            (
                "trawl_storage_cluster_merges",
                "Merges of published splits by the cluster's merger (the holder of its lease)",
                M::get(&m.cluster_merges),
            ),
            (
                "trawl_storage_takeover_notices",
                "Notices from the metastore that another indexer took a source of this one over",
                M::get(&m.takeover_notices),
            ),
            (
                "trawl_storage_cluster_merge_inputs",
                "Published splits the cluster's merges replaced",
                M::get(&m.cluster_merge_inputs),
            ),
            (
                "trawl_storage_duplicate_id_refusals",
                "Publisher rounds refused: another live process publishes as this indexer id",
                M::get(&m.duplicate_id_refusals),
            ),
            (
                "trawl_metastore_calls",
                "Calls to the shared metastore",
                M::get(&m.metastore_calls),
            ),
            (
                "trawl_metastore_errors",
                "Metastore calls that failed",
                M::get(&m.metastore_errors),
            ),
        ] {
            let counter = ConstCounter::new(value);
            let metric = encoder.encode_descriptor(name, help, None, counter.metric_type())?;
            counter.encode(metric)?;
        }
        let seconds = ConstCounter::new(M::get(&m.metastore_micros) as f64 / 1e6);
        let metric = encoder.encode_descriptor(
            "trawl_metastore_call_seconds",
            "Time spent in metastore calls (with trawl_metastore_calls, the mean latency)",
            None,
            seconds.metric_type(),
        )?;
        seconds.encode(metric)?;
        for (name, help, value) in [
            (
                "trawl_storage_cache_bytes",
                "Bytes in the split cache now",
                M::get(&m.cache_bytes),
            ),
            (
                "trawl_storage_cache_fills_pending",
                "Splits opened by range waiting for, or in, their download into the cache",
                M::get(&m.cache_fills_pending),
            ),
            (
                "trawl_storage_published_list_listening",
                "1 while this searcher listens for changes of the published splits (and keeps its lists)",
                M::get(&m.published_list_listening),
            ),
            (
                "trawl_storage_id_lease_held",
                "1 while this indexer holds the lease on its indexer id (and so publishes)",
                M::get(&m.id_lease_held),
            ),
        ] {
            let gauge = ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX));
            let metric = encoder.encode_descriptor(name, help, None, gauge.metric_type())?;
            gauge.encode(metric)?;
        }
        Ok(())
    }
}

#[cfg(all(feature = "indexer", feature = "query"))]
mod query {
    use std::sync::Arc;

    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
    use prometheus_client::registry::Registry;
    use trawl_indexer::Indexer;
    use trawl_query::{QueryLimits, SearchObservation};

    pub fn routes(
        indexer: Indexer,
        config: &trawl_config::Config,
        registry: &mut Registry,
    ) -> axum::Router {
        let searches = Counter::<u64>::default();
        let latency = Histogram::new(exponential_buckets(0.001, 2.0, 16));
        let r = registry.sub_registry_with_prefix("trawl_query");
        r.register("searches", "Searches answered", searches.clone());
        r.register(
            "search_duration_seconds",
            "Time to answer a search",
            latency.clone(),
        );
        registry.register_collector(Box::new(LeafCacheMetrics));
        let observer = Arc::new(move |o: &SearchObservation| {
            searches.inc();
            latency.observe(o.elapsed.as_secs_f64());
        });
        let limits = QueryLimits::from_config(&config.query);
        // Open tails never end by themselves: they must stop when shutdown starts, or the
        // graceful shutdown would wait for them forever.
        let (stop_tails, tails_stopped) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            super::shutdown_signal().await;
            let _ = stop_tails.send(true);
        });
        // The indexer is the read contract's source of every route (`trawl_index::StreamSource`).
        let source = Arc::new(indexer);
        trawl_query::routes_with_observer(source.clone(), limits.clone(), observer)
            .merge(trawl_query::export::routes(source.clone(), limits.clone()))
            .merge(trawl_query::reports::routes(
                source.clone(),
                trawl_query::reports::ReportSettings::from_config(&config.query),
                limits.clone(),
            ))
            .merge(trawl_query::story::routes(source.clone(), limits.clone()))
            .merge(trawl_query::elastic::routes(
                source.clone(),
                limits.clone(),
                trawl_query::elastic::ElasticSettings::from_config(&config.query),
            ))
            .merge(trawl_query::stats::routes(source.clone()))
            .merge(trawl_query::tail::routes(source, limits, tails_stopped))
    }

    /// `trawl_query_leaf_cache_{hits,misses}_total`: lookups of the per-split aggregation
    /// cache, read at each scrape.
    #[derive(Debug)]
    struct LeafCacheMetrics;

    impl prometheus_client::collector::Collector for LeafCacheMetrics {
        fn encode(
            &self,
            mut encoder: prometheus_client::encoding::DescriptorEncoder,
        ) -> Result<(), std::fmt::Error> {
            use prometheus_client::encoding::EncodeMetric;
            use prometheus_client::metrics::counter::ConstCounter;
            let counters = trawl_query::leaf_cache_counters();
            for (name, help, value) in [
                (
                    "trawl_query_leaf_cache_hits",
                    "Split aggregation results answered from the cache",
                    counters.hits,
                ),
                (
                    "trawl_query_leaf_cache_misses",
                    "Split aggregation lookups that found nothing cached",
                    counters.misses,
                ),
            ] {
                let counter = ConstCounter::new(value);
                let metric = encoder.encode_descriptor(name, help, None, counter.metric_type())?;
                counter.encode(metric)?;
            }
            Ok(())
        }
    }
}

/// The router every connection reaches: the roles' router once it is installed, and until then
/// a 503 for everything but liveness.
#[derive(Clone, Default)]
struct Front(Arc<std::sync::OnceLock<Router>>);

impl Front {
    fn install(&self, router: Router) {
        let _ = self.0.set(router);
    }

    fn router(&self) -> Router {
        let front = self.clone();
        Router::new().fallback_service(tower::service_fn(move |request: axum::extract::Request| {
            let front = front.clone();
            async move {
                use tower::ServiceExt;
                let response = match front.0.get() {
                    Some(router) => match router.clone().oneshot(request).await {
                        Ok(response) => response,
                        Err(never) => match never {},
                    },
                    None if request.uri().path() == "/health/live" => {
                        axum::Json(serde_json::json!({"status": "live"})).into_response()
                    }
                    None => ApiError::new(
                        ErrorCode::Unavailable,
                        "starting: the write-ahead log is being replayed",
                    )
                    .into_response(),
                };
                Ok::<_, std::convert::Infallible>(response)
            }
        }))
    }
}

async fn ready_handler(
    axum::extract::State(shared): axum::extract::State<Shared>,
) -> impl IntoResponse {
    if (shared.ready)() {
        axum::Json(serde_json::json!({"status": "ready"})).into_response()
    } else {
        ApiError::new(
            ErrorCode::Unavailable,
            "not ready: replaying the write-ahead log (indexer), or deliveries refused for collector.stuck_ready_after_secs (collector)",
        )
        .into_response()
    }
}

async fn metrics_handler(
    axum::extract::State(shared): axum::extract::State<Shared>,
) -> impl IntoResponse {
    let mut text = String::new();
    let registry = shared.registry.lock().unwrap_or_else(|p| p.into_inner());
    if prometheus_client::encoding::text::encode(&mut text, &registry).is_err() {
        return (StatusCode::INTERNAL_SERVER_ERROR, String::new()).into_response();
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
    let _ = Duration::from_secs(0);
}
