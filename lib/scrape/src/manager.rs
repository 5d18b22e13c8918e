//! The manager and its pools: one pool task per scrape config, owning that job's loops.
//!
//! A pool reacts to three things: new target groups on its discovery channel (start loops
//! for new targets, stop removed ones with stale markers), a reconfiguration from
//! [`ScrapeManager::apply`] (a changed scrape config restarts every loop, handing each
//! surviving target's last series to its new loop so nothing is marked stale spuriously),
//! and a stop. When the discovery channel closes the pool keeps its current targets.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use fedwatch_config::discovery::{TargetGroup, static_groups};
use fedwatch_config::targets::targets_from_group;
use fedwatch_config::{Config, ScrapeConfig};
use fedwatch_model::Labels;
use fedwatch_model::selfmetrics::Registry;
use fedwatch_tsdb::Appender;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::ScrapeTarget;
use crate::cache::Tracked;
use crate::metrics::ScrapeMetrics;
use crate::scrape_loop::{LoopContext, ScrapeLoop, Stop, write_removed};

/// Whether the last scrape of a target worked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetStatus {
    /// Not scraped yet.
    Unknown,
    Up,
    Down,
}

/// A target's state for status pages (`/api/v1/targets`).
#[derive(Clone, Debug)]
pub struct TargetHealth {
    pub job: String,
    pub target: ScrapeTarget,
    pub status: TargetStatus,
    /// Milliseconds since the epoch of the last scrape; 0 before the first.
    pub last_scrape_ms: i64,
    pub last_duration: Duration,
    pub last_error: Option<String>,
}

type HealthMap = Arc<Mutex<BTreeMap<u64, Arc<Mutex<TargetHealth>>>>>;

enum PoolUpdate {
    Reconfigure {
        ctx: LoopContext,
        groups: watch::Receiver<Vec<TargetGroup>>,
    },
    Stop {
        removed: bool,
        done: oneshot::Sender<()>,
    },
}

struct Pool {
    updates: mpsc::UnboundedSender<PoolUpdate>,
    task: JoinHandle<()>,
    health: HealthMap,
}

/// Runs the scrape loops of every scrape config and keeps them in line with discovery.
pub struct ScrapeManager {
    appender: Arc<dyn Appender>,
    metrics: ScrapeMetrics,
    pools: Mutex<BTreeMap<String, Pool>>,
}

impl ScrapeManager {
    /// A manager appending to `appender` and counting into `registry`; starts nothing yet.
    pub fn new(appender: Arc<dyn Appender>, registry: Registry) -> Self {
        ScrapeManager {
            appender,
            metrics: ScrapeMetrics::new(registry),
            pools: Mutex::new(BTreeMap::new()),
        }
    }

    /// Makes the running pools match `config`, taking each job's target groups from
    /// `groups` (as from `Discovery::receivers`); a job missing there scrapes its
    /// `static_configs` only. Jobs no longer configured stop and mark their series stale;
    /// changed jobs restart their loops; unchanged ones only switch to the new channel.
    /// Must be called inside a tokio runtime.
    pub fn apply(&self, config: &Config, groups: &BTreeMap<String, watch::Receiver<Vec<TargetGroup>>>) {
        let seed = Labels::from_pairs(config.global.external_labels.iter().map(|(k, v)| (k.as_str(), v.as_str()))).fingerprint();
        let mut pools = self.pools.lock().unwrap_or_else(|e| e.into_inner());
        let wanted: HashSet<&str> = config.scrape_configs.iter().map(|s| s.job_name.as_str()).collect();
        let gone: Vec<String> = pools.keys().filter(|j| !wanted.contains(j.as_str())).cloned().collect();
        for job in gone {
            if let Some(pool) = pools.remove(&job) {
                let (done, _) = oneshot::channel();
                let _ = pool.updates.send(PoolUpdate::Stop { removed: true, done });
                self.metrics.targets(&job).set(0.0);
            }
        }
        for sc in &config.scrape_configs {
            let rx = match groups.get(&sc.job_name) {
                Some(rx) => rx.clone(),
                None => watch::channel(static_groups(sc)).1,
            };
            let ctx = self.context(config, sc, seed);
            match pools.get(&sc.job_name) {
                Some(pool) if !pool.task.is_finished() => {
                    let _ = pool.updates.send(PoolUpdate::Reconfigure { ctx, groups: rx });
                }
                _ => {
                    let (tx, updates) = mpsc::unbounded_channel();
                    let health: HealthMap = Arc::default();
                    let task = tokio::spawn(run_pool(ctx, rx, updates, health.clone()));
                    pools.insert(sc.job_name.clone(), Pool { updates: tx, task, health });
                }
            }
        }
    }

    /// Stops every loop without stale markers (process shutdown) and waits for them.
    pub async fn stop(&self) {
        let pools: Vec<(String, Pool)> = std::mem::take(&mut *self.pools.lock().unwrap_or_else(|e| e.into_inner()))
            .into_iter()
            .collect();
        for (_, pool) in pools {
            let (done, wait) = oneshot::channel();
            if pool.updates.send(PoolUpdate::Stop { removed: false, done }).is_ok() {
                let _ = wait.await;
            }
            let _ = pool.task.await;
        }
    }

    /// Every active target with its last scrape's outcome, by job then target.
    pub fn targets(&self) -> Vec<TargetHealth> {
        let pools = self.pools.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::new();
        for pool in pools.values() {
            let health = pool.health.lock().unwrap_or_else(|e| e.into_inner());
            out.extend(health.values().map(|h| h.lock().unwrap_or_else(|e| e.into_inner()).clone()));
        }
        out
    }

    fn context(&self, config: &Config, sc: &ScrapeConfig, seed: u64) -> LoopContext {
        let redirect = if sc.follow_redirects {
            reqwest::redirect::Policy::limited(10)
        } else {
            reqwest::redirect::Policy::none()
        };
        // A tls_config that cannot be used (unreadable file, bad PEM) fails every scrape of
        // the job with the reason, like an unreadable credentials file.
        // No proxy from the environment: Prometheus 2.42 scrapes directly unless `proxy_url`
        // says otherwise (and the per-request proxy lookup was ~1 % of the edge's CPU).
        let client = fedwatch_config::http::client_builder_for(sc.tls_config.as_ref(), &config.base_dir).and_then(|b| {
            b.redirect(redirect)
                .no_proxy()
                .build()
                .map_err(|e| format!("building the HTTP client: {e}"))
        });
        let (client, setup) = match client {
            Ok(c) => (c, authorization_header(config, sc)),
            Err(e) => (fedwatch_config::http::client(), Err(e)),
        };
        LoopContext {
            cfg: Arc::new(sc.clone()),
            client,
            authorization: setup,
            appender: self.appender.clone(),
            metrics: self.metrics.clone(),
            offset_seed: seed,
            forced_error: Arc::default(),
        }
    }
}

/// The `Authorization` header a scrape config asks for; files are read now, and an
/// unreadable one makes every scrape of the job fail with the reason.
fn authorization_header(config: &Config, sc: &ScrapeConfig) -> Result<Option<String>, String> {
    let read = |f: &str| {
        std::fs::read_to_string(config.resolve_path(f))
            .map(|s| s.trim().to_string())
            .map_err(|e| format!("reading {f:?}: {e}"))
    };
    if let Some(a) = &sc.authorization {
        let kind = a.kind.clone().unwrap_or_else(|| "Bearer".into());
        let cred = match (&a.credentials, &a.credentials_file) {
            (Some(c), _) => c.clone(),
            (None, Some(f)) => read(f)?,
            (None, None) => return Ok(None),
        };
        return Ok(Some(format!("{kind} {cred}")));
    }
    if let Some(t) = &sc.bearer_token {
        return Ok(Some(format!("Bearer {t}")));
    }
    if let Some(f) = &sc.bearer_token_file {
        return Ok(Some(format!("Bearer {}", read(f)?)));
    }
    if let Some(b) = &sc.basic_auth {
        let password = match (&b.password, &b.password_file) {
            (Some(p), _) => p.clone(),
            (None, Some(f)) => read(f)?,
            (None, None) => String::new(),
        };
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{}:{password}", b.username));
        return Ok(Some(format!("Basic {token}")));
    }
    Ok(None)
}

struct RunningLoop {
    target: ScrapeTarget,
    stop: oneshot::Sender<Stop>,
    task: JoinHandle<()>,
}

async fn run_pool(
    mut ctx: LoopContext,
    mut groups: watch::Receiver<Vec<TargetGroup>>,
    mut updates: mpsc::UnboundedReceiver<PoolUpdate>,
    health: HealthMap,
) {
    let mut loops: HashMap<u64, RunningLoop> = HashMap::new();
    let mut groups_open = true;
    let mut carried = HashMap::new();
    let current = groups.borrow_and_update().clone();
    reconcile(&ctx, &current, &mut loops, &mut carried, &health);
    loop {
        tokio::select! {
            update = updates.recv() => match update {
                None => {
                    stop_all(&mut loops, false).await;
                    return;
                }
                Some(PoolUpdate::Stop { removed, done }) => {
                    stop_all(&mut loops, removed).await;
                    health.lock().unwrap_or_else(|e| e.into_inner()).clear();
                    let _ = done.send(());
                    return;
                }
                Some(PoolUpdate::Reconfigure { ctx: mut new_ctx, groups: new_groups }) => {
                    // Loops that survive the reconfiguration keep watching the same flag.
                    new_ctx.forced_error = ctx.forced_error.clone();
                    let changed = *new_ctx.cfg != *ctx.cfg || new_ctx.authorization != ctx.authorization || new_ctx.offset_seed != ctx.offset_seed;
                    ctx = new_ctx;
                    groups = new_groups;
                    groups_open = true;
                    if changed {
                        carried = hand_over(&mut loops).await;
                    }
                    let current = groups.borrow_and_update().clone();
                    reconcile(&ctx, &current, &mut loops, &mut carried, &health);
                }
            },
            changed = groups.changed(), if groups_open => {
                if changed.is_err() {
                    // Discovery stopped: keep scraping what we have until reconfigured.
                    groups_open = false;
                    continue;
                }
                let current = groups.borrow_and_update().clone();
                reconcile(&ctx, &current, &mut loops, &mut carried, &health);
            }
        }
    }
}

/// Stops every loop, collecting each target's last series for its successor.
async fn hand_over(loops: &mut HashMap<u64, RunningLoop>) -> HashMap<u64, (ScrapeTarget, Vec<Tracked>)> {
    let mut out = HashMap::new();
    for (hash, l) in loops.drain() {
        let (tx, rx) = oneshot::channel();
        let series = if l.stop.send(Stop::Handover(tx)).is_ok() {
            rx.await.unwrap_or_default()
        } else {
            Vec::new()
        };
        let _ = l.task.await;
        out.insert(hash, (l.target, series));
    }
    out
}

async fn stop_all(loops: &mut HashMap<u64, RunningLoop>, removed: bool) {
    for (_, l) in loops.drain() {
        let _ = l.stop.send(if removed { Stop::Removed } else { Stop::Shutdown });
        let _ = l.task.await;
    }
}

/// Starts loops for new targets and stops those no longer discovered.
fn reconcile(
    ctx: &LoopContext,
    groups: &[TargetGroup],
    loops: &mut HashMap<u64, RunningLoop>,
    carried: &mut HashMap<u64, (ScrapeTarget, Vec<Tracked>)>,
    health: &HealthMap,
) {
    let job = &ctx.cfg.job_name;
    let mut desired: HashMap<u64, ScrapeTarget> = HashMap::new();
    for g in groups {
        let (targets, errors) = targets_from_group(&ctx.cfg, g);
        for e in errors {
            tracing::warn!(job = %job, error = %e, "dropping target");
        }
        for t in targets {
            desired.entry(t.hash()).or_insert(t);
        }
    }
    let limit = ctx.cfg.target_limit;
    let forced = (limit > 0 && desired.len() as u64 > limit)
        .then(|| format!("target_limit exceeded (number of targets: {}, limit: {limit})", desired.len()));
    if let Some(e) = &forced {
        tracing::warn!(job = %job, error = %e, "every scrape of the job fails until targets are within the limit");
    }
    *ctx.forced_error.lock().unwrap_or_else(|e| e.into_inner()) = forced;
    let mut health_map = health.lock().unwrap_or_else(|e| e.into_inner());
    let removed: Vec<u64> = loops.keys().filter(|h| !desired.contains_key(h)).copied().collect();
    for h in removed {
        if let Some(l) = loops.remove(&h) {
            // The loop writes the stale markers itself and exits; no need to wait here.
            let _ = l.stop.send(Stop::Removed);
        }
    }
    // Also covers loops handed over by a reconfiguration, which are no longer in `loops`.
    health_map.retain(|h, _| desired.contains_key(h));
    for (h, target) in desired {
        if loops.contains_key(&h) {
            continue;
        }
        let series = carried.remove(&h).map(|(_, s)| s).unwrap_or_default();
        let th = Arc::new(Mutex::new(TargetHealth {
            job: job.clone(),
            target: target.clone(),
            status: crate::TargetStatus::Unknown,
            last_scrape_ms: 0,
            last_duration: Duration::ZERO,
            last_error: None,
        }));
        health_map.insert(h, th.clone());
        let (stop, stop_rx) = oneshot::channel();
        let task = tokio::spawn(ScrapeLoop::new(ctx.clone(), target.clone(), th, series).run(stop_rx));
        loops.insert(h, RunningLoop { target, stop, task });
    }
    // Targets that existed before a reconfiguration but not after it.
    for (_, (target, series)) in carried.drain() {
        write_removed(ctx, &target, series);
    }
    ctx.metrics.targets(job).set(loops.len() as f64);
}
