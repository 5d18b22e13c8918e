//! Starting and stopping one tier: config → store → forwarders → ingest (scrape and/or
//! receive) → API → rules, then waiting for a signal.
//!
//! Ingest (scrapes, remote_write, recording rules) appends to the store only; a sender is
//! acknowledged once the store's WAL has the batch. Each `remote_write` upstream has a
//! [`WalForwarder`] that tails that WAL from its own position (kept under
//! `<storage.path>/forward/`), so a slow or dead upstream never fails ingest and never
//! delays another upstream. Forwarders start before ingest, so a fresh one (no position yet)
//! starting at the end of the log misses nothing.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use fedwatch_config::Config;
use fedwatch_config::discovery::Discovery;
use fedwatch_model::Labels;
use fedwatch_model::selfmetrics::Registry;
use fedwatch_promql::Engine;
use fedwatch_rules::notifier::alertmanager::{self, AlertmanagerSender, FanOut};
use fedwatch_rules::notifier::cluster::ClusterConfig;
use fedwatch_rules::{AlertSender, Notifier, RuleManager, RuleManagerOptions};
use fedwatch_scrape::ScrapeManager;
use fedwatch_server::sources::ConfigStatus;
use fedwatch_server::{ApiState, BuildInfo};
use fedwatch_tsdb::{Appender, Db, DbOptions, Querier};
use fedwatch_wire::forward::{WalForwarder, WalForwarderOptions};
use fedwatch_wire::{ForwarderConfig, HaConfig, HaTracker, IngestBudget, IngestLimits, ReceiverState, WireProtocol, system_clock};
use tokio::net::TcpListener;

use crate::reload::{Reloader, reload_on_sighup};
use crate::sources::ScrapeTargets;
use crate::{Flags, Tier};

/// How long shutdown waits for forwarders to send what they hold.
const SHUTDOWN_FLUSH: Duration = Duration::from_secs(5);

/// A started tier: its address and what shutdown needs.
pub struct RunningTier {
    pub tier: Tier,
    pub local_addr: std::net::SocketAddr,
    forwarders: Vec<WalForwarder>,
    scraping: Arc<Scraping>,
    alerting: Option<Arc<Alerting>>,
    store: Arc<Db>,
    server: tokio::task::JoinHandle<()>,
    background: Vec<tokio::task::JoinHandle<()>>,
}

impl RunningTier {
    /// Stops taking requests and flushes forwarders within a deadline.
    pub async fn shutdown(self) {
        self.server.abort();
        if let Some(a) = &self.alerting {
            a.rules.stop();
        }
        self.scraping.manager.stop().await;
        for task in &self.background {
            task.abort();
        }
        for f in &self.forwarders {
            if let Err(e) = f.shutdown(SHUTDOWN_FLUSH).await {
                tracing::warn!("{e}");
            }
        }
        if let Err(e) = self.store.sync() {
            tracing::error!("syncing the store at shutdown: {e}");
        }
    }
}

pub(crate) async fn run(tier: Tier, flags: Flags) -> Result<(), String> {
    let running = start(tier, &flags).await?;
    tracing::info!(tier = tier.name(), address = %running.local_addr, "ready");
    wait_for_signal().await;
    tracing::info!("shutting down");
    running.shutdown().await;
    Ok(())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        // Without signal handlers the process still stops on the default SIGTERM action.
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

fn external_labels(cfg: &Config) -> Labels {
    Labels::from_pairs(cfg.global.external_labels.iter().map(|(k, v)| (k.as_str(), v.as_str())))
}

/// Loads the configuration and the text it was parsed from (for `/api/v1/status/config`).
pub(crate) fn load_config(path: &Path) -> Result<(Config, String), String> {
    fedwatch_config::load_with_text(path).map_err(|e| e.to_string())
}

/// Opens the local store (replaying its WAL) under `--storage.path`.
fn open_store(tier: Tier, flags: &Flags) -> Result<Arc<Db>, String> {
    let options = DbOptions {
        retention: Some(flags.retention_time.0),
        retention_size: flags.retention_size,
        // Long-range dashboards query the upper tiers; an edge keeps raw data only.
        downsample: flags.downsample.unwrap_or(!matches!(tier, Tier::Edge)),
        ..DbOptions::default()
    };
    let started = std::time::Instant::now();
    let db = Db::open(&flags.storage_path, options).map_err(|e| format!("storage path {}: {e}", flags.storage_path.display()))?;
    tracing::info!(path = %flags.storage_path.display(), elapsed = ?started.elapsed(), "store opened");
    Ok(Arc::new(db))
}

/// Starts a tier from its flags and returns once it serves requests.
pub async fn start(tier: Tier, flags: &Flags) -> Result<RunningTier, String> {
    let (cfg, config_text) = load_config(&flags.config_file)?;
    for field in cfg.unsupported_fields() {
        tracing::warn!("{}: {field} is accepted but not acted on yet", flags.config_file.display());
    }

    let registry = Registry::new();
    registry
        .gauge(
            "fedwatch_build_info",
            "A metric with a constant '1' value labeled by version and tier.",
            &[("version", env!("CARGO_PKG_VERSION")), ("tier", tier.name())],
        )
        .set(1.0);
    let store = open_store(tier, flags)?;

    let ext = external_labels(&cfg);
    let mut forwarders = Vec::new();
    for rw in &cfg.remote_write {
        let mut fc = ForwarderConfig::new(rw.url.clone());
        fc.external_labels = ext.clone();
        fc.timeout = rw.remote_timeout.0;
        fc.min_backoff = rw.queue_config.min_backoff.0;
        fc.max_backoff = rw.queue_config.max_backoff.0;
        fc.batch_send_deadline = rw.queue_config.batch_send_deadline.0;
        fc.max_samples_per_send = rw.queue_config.max_samples_per_send as usize;
        fc.write_relabel = rw.write_relabel_configs.clone();
        fc.protocol = WireProtocol::from_message(&rw.protobuf_message)?;
        fc.resolution = flags.forward_resolution.iter().find(|(url, _)| *url == rw.url).map(|(_, d)| *d);
        let mut opts = WalForwarderOptions::new(flags.storage_path.join("forward"));
        opts.max_backlog = Some(flags.forward_max_backlog.0).filter(|d| !d.is_zero());
        forwarders.push(WalForwarder::spawn(fc, store.clone(), opts, &registry).map_err(|e| e.to_string())?);
    }
    let ingest: Arc<dyn Appender> = store.clone();
    let querier: Arc<dyn Querier> = store.clone();
    let engine = Engine::new(querier.clone());
    let mut background = Vec::new();

    let scraping = Arc::new(start_scrape(&cfg, &flags.config_file, ingest.clone(), &registry)?);

    let alerting = match tier.runs_rules() {
        true => Some(Arc::new(start_rules(
            &cfg,
            flags,
            engine.clone(),
            ingest.clone(),
            &registry,
            &mut background,
        )?)),
        false => None,
    };

    let ready = Arc::new(AtomicBool::new(false));
    let build = BuildInfo {
        version: env!("CARGO_PKG_VERSION").into(),
        revision: option_env!("FEDWATCH_REVISION").unwrap_or("").into(),
    };
    let mut api_state = ApiState::new(tier.name(), engine, querier, registry.clone(), ready.clone(), build)
        .with_retention(fedwatch_config::format_duration(flags.retention_time.0))
        .with_external_labels(ext.clone())
        .with_flags(flags.as_map());
    let config_status = ConfigStatus::loaded(config_text, now_ms());
    let reloader = Arc::new(Reloader {
        config_file: flags.config_file.clone(),
        notify_config_file: flags.notify_config_file.clone(),
        scraping: scraping.clone(),
        alerting: alerting.clone(),
        status: config_status.clone(),
    });
    api_state = api_state
        .with_config(config_status)
        .with_targets(Arc::new(ScrapeTargets(scraping.manager.clone())))
        .with_reload({
            let reloader = reloader.clone();
            Arc::new(move || reloader.reload())
        });
    background.push(tokio::spawn(reload_on_sighup(reloader)));
    if let Some(a) = &alerting {
        api_state = api_state.with_rules(Arc::new(a.rules.clone()));
    }
    let api = fedwatch_server::router(api_state);
    let mut app: Router = api;
    if tier.receives() {
        app = app.merge(fedwatch_wire::write_router(receiver_state(flags, ingest.clone(), &registry)?));
    }
    // The notifier's Alertmanager API v2 (silences, alerts, status) for amtool and Grafana.
    if let Some(n) = alerting.as_ref().and_then(|a| a.notifier.clone()) {
        app = app.merge(fedwatch_rules::notifier::api::router(n));
    }
    let listener = TcpListener::bind(flags.listen_address)
        .await
        .map_err(|e| format!("listen on {}: {e}", flags.listen_address))?;
    let local_addr = listener.local_addr().map_err(|e| e.to_string())?;
    let server = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!("HTTP server stopped: {e}");
        }
    });
    {
        let (store, registry) = (store.clone(), registry.clone());
        background.push(tokio::spawn(async move {
            loop {
                store.export_metrics(&registry);
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        }));
    }
    ready.store(true, Ordering::Relaxed);
    Ok(RunningTier {
        tier,
        local_addr,
        forwarders,
        scraping,
        alerting,
        store,
        server,
        background,
    })
}

/// The remote_write receiver with the limits, budget and HA dedupe the flags ask for.
fn receiver_state(flags: &Flags, ingest: Arc<dyn Appender>, registry: &Registry) -> Result<ReceiverState, String> {
    let mut state = ReceiverState::new(ingest, registry.clone());
    state.limits = IngestLimits {
        max_series_per_request: flags.max_series_per_request,
        max_samples_per_request: flags.max_samples_per_request,
        max_labels_per_series: flags.max_labels_per_series,
        max_label_name_length: flags.max_label_name_length,
        max_label_value_length: flags.max_label_value_length,
        ..IngestLimits::default()
    };
    if flags.ingestion_rate > 0.0 {
        let burst = flags.ingestion_burst.unwrap_or(flags.ingestion_rate);
        state.budget =
            Some(IngestBudget::new(flags.ingestion_rate, burst, system_clock()).map_err(|e| format!("--receiver.ingestion-rate: {e}"))?);
    }
    if flags.ha_enable {
        let cfg = HaConfig {
            replica_label: flags.ha_replica_label.clone(),
            cluster_label: flags.ha_cluster_label.clone(),
            failover_timeout: flags.ha_failover_timeout.0,
        };
        state.ha = Some(HaTracker::new(cfg, system_clock()));
    }
    Ok(state)
}

/// Service discovery and the scrape loops it feeds; kept together so a reload can swap both.
pub(crate) struct Scraping {
    discovery: std::sync::Mutex<Discovery>,
    pub(crate) manager: Arc<ScrapeManager>,
}

impl Scraping {
    /// Points the scrape loops at a started discovery for `cfg`.
    pub(crate) fn apply(&self, cfg: &Config, discovery: Discovery) {
        self.manager.apply(cfg, &discovery.receivers());
        // Dropping the previous discovery stops its file polling.
        *self.discovery.lock().unwrap_or_else(|e| e.into_inner()) = discovery;
    }
}

/// Starts service discovery and a scrape loop per target of every scrape config.
fn start_scrape(cfg: &Config, config_file: &Path, ingest: Arc<dyn Appender>, registry: &Registry) -> Result<Scraping, String> {
    let discovery = Discovery::start(cfg).map_err(|e| format!("{}: {e}", config_file.display()))?;
    let manager = Arc::new(ScrapeManager::new(ingest, registry.clone()));
    manager.apply(cfg, &discovery.receivers());
    Ok(Scraping {
        discovery: std::sync::Mutex::new(discovery),
        manager,
    })
}

/// The central's rule evaluation and its notifier.
pub(crate) struct Alerting {
    pub(crate) rules: RuleManager,
    pub(crate) notifier: Option<Notifier>,
}

/// Loads rule files and the notification config, and starts evaluating.
fn start_rules(
    cfg: &Config,
    flags: &Flags,
    engine: Engine,
    ingest: Arc<dyn Appender>,
    registry: &Registry,
    background: &mut Vec<tokio::task::JoinHandle<()>>,
) -> Result<Alerting, String> {
    let external_url = flags
        .external_url
        .clone()
        .unwrap_or_else(|| default_external_url(flags.listen_address));
    let notifier = match &flags.notify_config_file {
        Some(path) => {
            // Silences, the notification log and held alerts survive restarts under the store.
            let mut notifier = Notifier::from_file(path, external_url.clone(), registry.clone())
                .and_then(|n| n.with_state_dir(&flags.storage_path.join("notifier"), now_ms()))
                .map_err(|e| e.to_string())?;
            // An HA pair: peers send each notification once, sharing silences and the log.
            if !flags.cluster_peers.is_empty() {
                let advertise = flags.cluster_advertise_address.clone().unwrap_or_else(|| external_url.clone());
                let mut cc = ClusterConfig::new(&advertise, &flags.cluster_peers)?;
                cc.peer_timeout = flags.cluster_peer_timeout.0;
                cc.settle_timeout = flags.cluster_settle_timeout.0;
                cc.pushpull_interval = flags.cluster_pushpull_interval.0;
                notifier = notifier.with_cluster(cc).map_err(|e| e.to_string())?;
            }
            background.push(tokio::spawn(notifier.clone().run()));
            Some(notifier)
        }
        None => {
            if !flags.cluster_peers.is_empty() {
                tracing::warn!("--cluster.peer has no effect without --notify.config.file (the pair shares the notifier)");
            }
            None
        }
    };
    let mut senders: Vec<Arc<dyn AlertSender>> = notifier.iter().map(|n| Arc::new(n.clone()) as Arc<dyn AlertSender>).collect();
    // Alerts also go to the Alertmanagers of the Prometheus `alerting` section, as Prometheus sends them.
    let (targets, warnings) =
        alertmanager::targets(&cfg.alerting).map_err(|e| format!("{}: alerting: {e}", flags.config_file.display()))?;
    for w in warnings {
        tracing::warn!("{}: alerting: {w}", flags.config_file.display());
    }
    if !targets.is_empty() {
        senders.push(Arc::new(AlertmanagerSender::new(targets, registry.clone())));
    }
    let sender: Option<Arc<dyn AlertSender>> = match senders.len() {
        0 => None,
        1 => senders.pop(),
        _ => Some(Arc::new(FanOut(senders))),
    };
    let opts = RuleManagerOptions {
        evaluation_interval: cfg.global.evaluation_interval.0,
        external_labels: external_labels(cfg),
        external_url,
        ..RuleManagerOptions::default()
    };
    let rules = RuleManager::new(opts, engine, Some(ingest), sender, registry.clone());
    let alerting = Alerting { rules, notifier };
    alerting.load_rules(cfg)?;
    alerting.rules.start();
    Ok(alerting)
}

impl Alerting {
    /// Loads the configuration's `rule_files`; on error the old rules keep running.
    pub(crate) fn load_rules(&self, cfg: &Config) -> Result<(), String> {
        let patterns: Vec<String> = cfg
            .rule_files
            .iter()
            .map(|f| cfg.resolve_path(f).to_string_lossy().into_owned())
            .collect();
        for warning in self.rules.reload(&patterns).map_err(|e| e.to_string())? {
            tracing::warn!("{warning}");
        }
        Ok(())
    }
}

/// `http://<host>:<port>` as Prometheus derives it when `--web.external-url` is not given.
fn default_external_url(listen: std::net::SocketAddr) -> String {
    let host = if listen.ip().is_unspecified() {
        std::env::var("HOSTNAME")
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".into())
    } else {
        listen.ip().to_string()
    };
    format!("http://{host}:{}", listen.port())
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
