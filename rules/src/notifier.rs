//! The in-process Alertmanager: takes alerts from the rule manager, routes them through the
//! route tree of an unchanged `alertmanager.yml`, groups them and delivers notifications.
//!
//! Grouping follows Alertmanager's dispatcher: an alert joins one aggregation group per
//! matching route, keyed `<route key>:<group labels>`. A new group waits `group_wait`
//! before its first notification (at once if the alert started longer ago than that), then
//! is flushed every `group_interval`. A flush notifies an integration when a firing alert
//! is new to it, when all its alerts resolved, when an alert resolved and `send_resolved` is
//! on, or when `repeat_interval` passed since the last successful notification (the
//! notification log, kept per group and integration in memory). Resolved alerts leave the
//! group after a successful notification; empty groups go away.
//!
//! Muting happens at flush, as in Alertmanager's pipeline: alerts inhibited by a firing
//! alert ([`inhibit`]) or matched by an active silence ([`silence`]) are left out of the
//! notification and of the notification log; a group whose alerts are all muted sends
//! nothing. The HTTP API v2 ([`api`]) shows each alert's state (`active`/`suppressed`,
//! `silencedBy`, `inhibitedBy`) computed the same way at request time.
//!
//! With a state directory ([`Notifier::with_state_dir`]) silences, the notification log
//! ([`nflog`]) and the alerts held are saved (see [`persist`]) and restored on start: a
//! restart repeats no notification, and an alert that resolved while the central was down
//! (its `endsAt` passed without a refresh) still gets its resolved notification
//! (Alertmanager issues 627 and 2370).
//!
//! Deliveries run as their own tokio tasks, so a slow or failing receiver never blocks
//! other groups; a group is not flushed again while its previous delivery is in flight.
//! Time is milliseconds since the epoch and passed into [`Notifier::receive`] and
//! [`Notifier::flush_due`], so tests drive the clock; [`Notifier::run`] uses the wall clock.
//!
//! With peers ([`Notifier::with_cluster`]) two centrals with the same config form an HA
//! pair that sends each notification once, sharing the notification log and silences over
//! HTTP; see [`cluster`] for the design and its timing assumptions.
//!
//! Integrations (webhook, email, SMS, DingTalk) share one shape, see [`integration`]; the
//! [`alertmanager`] module is the other way out, an [`AlertSender`] that forwards to external
//! Alertmanagers as Prometheus does.
//!
//! Routes with `mute_time_intervals`/`active_time_intervals` ([`timeinterval`]) are muted
//! at flush the same way, for the whole group, and the API lists the intervals in `mutedBy`.
//!
//! Not yet: templated webhook URLs and payloads, receivers other
//! than those above (accepted in the config and reported as warnings).

pub mod alertmanager;
pub mod api;
pub mod cluster;
pub mod config;
pub mod dingtalk;
pub mod email;
pub mod inhibit;
pub mod integration;
pub mod nflog;
pub mod persist;
pub mod route;
pub mod silence;
pub mod sms;
pub mod timeinterval;
pub mod webhook;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fedwatch_model::Labels;
use fedwatch_model::selfmetrics::Registry;
use tokio::task::JoinHandle;

use crate::error::Error;
use cluster::{Claim, Cluster, ClusterConfig, Decision, MergeStats, WireClaim, WireKey, WireState};
use config::AlertmanagerConfig;
use integration::{DeliveryCounters, Integration, Notification, SendContext};
use nflog::{LogEntry, LogKey, NotificationLog, SavedEntry};
use persist::SavedAlert;
use route::Route;
use silence::{Silence, SilenceError, Silences};
use webhook::{Backoff, NotifyAlert};

/// An alert as Prometheus posts it to Alertmanager (`postableAlert`). Times in ms; 0 = unset.
#[derive(Clone, Debug, PartialEq)]
pub struct PostableAlert {
    pub labels: Labels,
    pub annotations: BTreeMap<String, String>,
    pub starts_at: i64,
    pub ends_at: i64,
    pub generator_url: String,
}

/// Where the rule manager sends alerts: the in-process [`Notifier`], or later a remote
/// Alertmanager client.
pub trait AlertSender: Send + Sync {
    /// Hands over alerts at `now_ms`; must not block on delivery.
    fn send(&self, alerts: Vec<PostableAlert>, now_ms: i64);
}

/// The notifier; cheap to clone (shared state).
#[derive(Clone)]
pub struct Notifier {
    inner: Arc<Inner>,
}

struct Inner {
    state: Mutex<State>,
    client: reqwest::Client,
    registry: Registry,
    external_url: String,
    backoff: Backoff,
    wake: tokio::sync::Notify,
    /// Where silences, the notification log and alerts are saved; none in tests by default.
    state_dir: Option<PathBuf>,
    /// When this notifier started (`uptime` of `/api/v2/status`).
    started_at: i64,
    /// The HA peers, if any.
    cluster: Option<Cluster>,
}

struct State {
    config: Arc<AlertmanagerConfig>,
    groups: HashMap<String, Group>,
    nflog: NotificationLog,
    silences: Silences,
    /// Alerts changed since they were last saved.
    alerts_dirty: bool,
    /// Deliveries HA members have started and not yet logged (ours included).
    claims: cluster::Claims,
}

#[derive(Clone, Debug)]
struct StoredAlert {
    labels: Labels,
    annotations: BTreeMap<String, String>,
    starts_at: i64,
    ends_at: i64,
    generator_url: String,
    updated_at: i64,
    /// Bumped on every update, so a delivery only removes resolved alerts it saw unchanged.
    version: u64,
}

impl StoredAlert {
    fn resolved(&self, now: i64) -> bool {
        self.ends_at != 0 && self.ends_at <= now
    }
}

struct Group {
    route: Route,
    labels: Labels,
    alerts: BTreeMap<u64, StoredAlert>,
    next_flush: i64,
    has_flushed: bool,
    in_flight: bool,
}

/// One integration's part of a flush.
struct Delivery {
    log_key: LogKey,
    integration: Integration,
    notification: Notification,
    firing: HashSet<u64>,
    resolved: HashSet<u64>,
    /// Nothing to send (e.g. only resolved alerts and `send_resolved: false`); log only.
    empty: bool,
    /// The route's `repeat_interval`, for the dedup check after an HA wait.
    repeat_ms: i64,
}

impl Notifier {
    /// A notifier for `config`; `external_url` goes into payloads, counters into `registry`.
    pub fn new(config: AlertmanagerConfig, external_url: impl Into<String>, registry: Registry) -> Self {
        for w in &config.warnings {
            tracing::warn!(config = %config.path.display(), "{w}");
        }
        Notifier {
            inner: Arc::new(Inner {
                state: Mutex::new(State {
                    config: Arc::new(config),
                    groups: HashMap::new(),
                    nflog: NotificationLog::default(),
                    silences: Silences::new(),
                    alerts_dirty: false,
                    claims: cluster::Claims::default(),
                }),
                client: fedwatch_config::http::client(),
                registry,
                external_url: external_url.into(),
                backoff: Backoff::default(),
                wake: tokio::sync::Notify::new(),
                state_dir: None,
                started_at: now_ms(),
                cluster: None,
            }),
        }
    }

    /// Keeps silences, the notification log and alerts in `dir` (created if missing),
    /// restoring what an earlier run saved there as of `now_ms`. Call before sharing the notifier.
    pub fn with_state_dir(mut self, dir: &Path, now_ms: i64) -> Result<Self, Error> {
        std::fs::create_dir_all(dir).map_err(|e| Error::NotifierState {
            dir: dir.to_path_buf(),
            reason: format!("cannot create: {e}"),
        })?;
        let silences = persist::load_or_set_aside(&dir.join(persist::SILENCES), Silences::load);
        let nflog = persist::load_or_set_aside(&dir.join(persist::NFLOG), NotificationLog::load);
        let alerts = persist::load_or_set_aside(&dir.join(persist::ALERTS), persist::load_alerts);
        {
            let mut state = self.lock();
            state.silences = silences;
            state.nflog = nflog;
            for a in alerts {
                let stored = StoredAlert {
                    labels: a.label_set(),
                    annotations: a.annotations,
                    starts_at: a.starts_at,
                    ends_at: a.ends_at,
                    generator_url: a.generator_url,
                    updated_at: a.updated_at,
                    version: 0,
                };
                insert_alert(&mut state, stored, now_ms);
            }
            tracing::info!(
                dir = %dir.display(),
                silences = state.silences.iter().count(),
                notification_log = state.nflog.len(),
                alerts = state.groups.values().map(|g| g.alerts.len()).sum::<usize>(),
                "notifier state restored"
            );
        }
        match Arc::get_mut(&mut self.inner) {
            Some(inner) => inner.state_dir = Some(dir.to_path_buf()),
            None => {
                return Err(Error::NotifierState {
                    dir: dir.to_path_buf(),
                    reason: "the notifier is already shared; set the state directory first".into(),
                });
            }
        }
        Ok(self)
    }

    /// Loads the Alertmanager configuration at `path` and builds a notifier for it.
    pub fn from_file(path: &Path, external_url: impl Into<String>, registry: Registry) -> Result<Self, Error> {
        Ok(Self::new(config::load_file(path)?, external_url, registry))
    }

    /// Joins the HA pair `config` describes. Call before sharing the notifier.
    pub fn with_cluster(mut self, config: ClusterConfig) -> Result<Self, Error> {
        match Arc::get_mut(&mut self.inner) {
            Some(inner) => {
                tracing::info!(me = %config.advertise, peers = ?config.peers, position = config.position(), wait = ?config.wait(), "notifier HA cluster");
                inner.cluster = Some(Cluster::new(config));
                Ok(self)
            }
            None => Err(Error::NotifierState {
                dir: PathBuf::new(),
                reason: "the notifier is already shared; join the cluster first".into(),
            }),
        }
    }

    /// The HA cluster, if this notifier is in one.
    pub fn cluster(&self) -> Option<&Cluster> {
        self.inner.cluster.as_ref()
    }

    /// Changes the retry backoff (tests use short ones). Call before sharing the notifier.
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.backoff = backoff;
        }
        self
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The configuration in use.
    pub fn config(&self) -> Arc<AlertmanagerConfig> {
        self.lock().config.clone()
    }

    /// Re-reads the configuration; on error the old one stays. Alerts are re-routed and
    /// groups whose key survives keep their notification log.
    pub fn reload(&self, path: &Path, now_ms: i64) -> Result<(), Error> {
        let config = config::load_file(path)?;
        for w in &config.warnings {
            tracing::warn!(config = %path.display(), "{w}");
        }
        let mut state = self.lock();
        let old = std::mem::take(&mut state.groups);
        state.config = Arc::new(config);
        let mut alerts: HashMap<u64, StoredAlert> = HashMap::new();
        let mut flushed = HashMap::new();
        for (key, g) in old {
            for (fp, a) in g.alerts {
                alerts.insert(fp, a);
            }
            flushed.insert((key, g.route.receiver.clone()), (g.has_flushed, g.next_flush));
        }
        for a in alerts.into_values() {
            insert_alert(&mut state, a, now_ms);
        }
        // The notification log is keyed by group and receiver, so surviving groups keep it;
        // they also keep their schedule instead of waiting group_wait again.
        for (key, g) in state.groups.iter_mut() {
            if let Some((has_flushed, next)) = flushed.remove(&(key.clone(), g.route.receiver.clone())) {
                g.has_flushed = has_flushed;
                if has_flushed {
                    g.next_flush = next;
                }
            }
        }
        drop(state);
        self.inner.wake.notify_one();
        Ok(())
    }

    /// Takes alerts in at `now_ms` (as `POST /api/v2/alerts` would).
    pub fn receive(&self, alerts: Vec<PostableAlert>, now_ms: i64) {
        let config = self.config();
        let resolve_timeout = config.resolve_timeout.as_millis() as i64;
        self.inner
            .registry
            .counter("fedwatch_notifier_alerts_received_total", "Alerts received by the notifier.", &[])
            .add(alerts.len() as u64);
        let mut state = self.lock();
        for a in alerts {
            let stored = StoredAlert {
                ends_at: if a.ends_at == 0 { now_ms + resolve_timeout } else { a.ends_at },
                starts_at: if a.starts_at == 0 { now_ms } else { a.starts_at },
                labels: a.labels,
                annotations: a.annotations,
                generator_url: a.generator_url,
                updated_at: now_ms,
                version: 0,
            };
            insert_alert(&mut state, stored, now_ms);
        }
        state.alerts_dirty = true;
        drop(state);
        self.inner.wake.notify_one();
    }

    /// Group keys with their alert fingerprints, for tests and status pages.
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        let state = self.lock();
        let mut out: Vec<_> = state
            .groups
            .iter()
            .map(|(k, g)| (k.clone(), g.alerts.keys().map(|fp| format!("{fp:016x}")).collect()))
            .collect();
        out.sort();
        out
    }

    /// The earliest time a group is due, if any.
    pub fn next_flush(&self) -> Option<i64> {
        self.lock().groups.values().filter(|g| !g.in_flight).map(|g| g.next_flush).min()
    }

    /// Flushes every group due at `now_ms`; each delivery runs in its own task, returned so a
    /// caller (a test) can await it.
    pub fn flush_due(&self, now_ms: i64) -> Vec<JoinHandle<()>> {
        let mut handles = Vec::new();
        let mut guard = self.lock();
        let state = &mut *guard;
        let config = state.config.clone();
        let firing = firing_alerts(&state.groups, now_ms, !config.inhibit_rules.is_empty());
        let firing_refs: Vec<(u64, &Labels)> = firing.iter().map(|(fp, l)| (*fp, l)).collect();
        let mut empty = Vec::new();
        let mut changed = false;
        for (key, g) in state.groups.iter_mut() {
            if g.in_flight || g.next_flush > now_ms {
                continue;
            }
            g.next_flush = now_ms + g.route.group_interval.as_millis() as i64;
            g.has_flushed = true;
            if g.alerts.is_empty() {
                empty.push(key.clone());
                continue;
            }
            let Some(receiver) = config.receiver(&g.route.receiver) else {
                continue;
            };
            // A route muted by its time intervals stops here, as Alertmanager's
            // TimeMuteStage/TimeActiveStage do: nothing sent, nothing logged, and resolved
            // alerts are done with as after a delivery.
            let time_muted = !config.muted_by(&g.route, now_ms).is_empty();
            let resolved_versions: Vec<(u64, u64)> = g
                .alerts
                .iter()
                .filter(|(_, a)| a.resolved(now_ms))
                .map(|(fp, a)| (*fp, a.version))
                .collect();
            // Muted alerts are neither notified nor logged, as Alertmanager's mute stages drop them.
            let all: Vec<(u64, &StoredAlert, bool)> = g
                .alerts
                .iter()
                .filter(|(_, a)| {
                    state.silences.silenced_by(&a.labels, now_ms).is_empty()
                        && inhibit::inhibited_by(&config.inhibit_rules, &a.labels, &firing_refs).is_empty()
                })
                .map(|(fp, a)| (*fp, a, a.resolved(now_ms)))
                .collect();
            if all.is_empty() || time_muted {
                // Nothing to say; resolved alerts are done with, as after a delivery.
                for (fp, _) in resolved_versions {
                    g.alerts.remove(&fp);
                    changed = true;
                }
                if g.alerts.is_empty() {
                    empty.push(key.clone());
                }
                continue;
            }
            let firing: HashSet<u64> = all.iter().filter(|x| !x.2).map(|x| x.0).collect();
            let resolved: HashSet<u64> = all.iter().filter(|x| x.2).map(|x| x.0).collect();
            let mut deliveries = Vec::new();
            for (index, integration) in receiver.integrations.iter().enumerate() {
                let log_key = LogKey {
                    group_key: key.clone(),
                    receiver: receiver.name.clone(),
                    integration: index,
                };
                let entry = state.nflog.get(&log_key);
                let repeat = g.route.repeat_interval.as_millis() as i64;
                let send_resolved = integration.send_resolved();
                let Some(reason) = needs_update(entry, &firing, &resolved, repeat, send_resolved, now_ms) else {
                    continue;
                };
                let batch: Vec<NotifyAlert> = all
                    .iter()
                    .filter(|(_, _, r)| send_resolved || !r)
                    .map(|(_, a, r)| NotifyAlert {
                        labels: a.labels.clone(),
                        annotations: a.annotations.clone(),
                        starts_at: a.starts_at,
                        ends_at: a.ends_at,
                        generator_url: a.generator_url.clone(),
                        resolved: *r,
                    })
                    .collect();
                deliveries.push(Delivery {
                    repeat_ms: repeat,
                    log_key,
                    integration: integration.clone(),
                    empty: batch.is_empty(),
                    notification: Notification {
                        receiver: receiver.name.clone(),
                        group_key: key.clone(),
                        group_labels: g.labels.clone(),
                        route_labels: g.route.labels.clone(),
                        external_url: self.inner.external_url.clone(),
                        reason: reason.to_string(),
                        alerts: batch,
                    },
                    firing: firing.clone(),
                    resolved: resolved.clone(),
                });
            }
            g.in_flight = true;
            let this = self.clone();
            let (key, receiver_name) = (key.clone(), receiver.name.clone());
            let deadline = tokio::time::Instant::now() + g.route.group_interval;
            handles.push(tokio::spawn(async move {
                this.deliver(key, receiver_name, deliveries, resolved_versions, deadline, now_ms)
                    .await;
            }));
        }
        if changed || !empty.is_empty() {
            state.alerts_dirty = true;
        }
        for key in empty {
            state.groups.remove(&key);
        }
        handles
    }

    async fn deliver(
        &self,
        key: String,
        receiver: String,
        deliveries: Vec<Delivery>,
        resolved_versions: Vec<(u64, u64)>,
        deadline: tokio::time::Instant,
        now_ms: i64,
    ) {
        // In an HA pair: wait for our position, then dedup against the shared log and claims.
        let (deliveries, mut all_ok, log_at) = match &self.inner.cluster {
            Some(c) => self.cluster_gate(c, deliveries, deadline, now_ms).await,
            None => (deliveries, true, now_ms),
        };
        // Integrations of one flush run side by side: a retrying one never delays the others.
        let tasks: Vec<_> = deliveries
            .into_iter()
            .map(|d| {
                let (this, key, receiver) = (self.clone(), key.clone(), receiver.clone());
                tokio::spawn(async move {
                    let ok = d.empty || this.deliver_one(&key, &receiver, &d, deadline).await;
                    (ok, d.log_key, d.firing, d.resolved)
                })
            })
            .collect();
        let mut done = Vec::new();
        let mut failed = Vec::new();
        for t in tasks {
            match t.await {
                Ok((true, log_key, firing, resolved)) => done.push((log_key, firing, resolved)),
                Ok((false, log_key, ..)) => {
                    failed.push(log_key);
                    all_ok = false;
                }
                Err(e) => {
                    tracing::error!(receiver = %receiver, group = %key, error = %e, "notification task failed");
                    all_ok = false;
                }
            }
        }
        let mut state = self.lock();
        let logged = !done.is_empty();
        let mut pushed = Vec::new();
        for (log_key, firing, resolved) in done {
            let entry = LogEntry {
                firing,
                resolved,
                at: log_at,
            };
            if self.inner.cluster.is_some() {
                state.claims.settled(&log_key, log_at);
                pushed.push(SavedEntry::new(&log_key, &entry));
            }
            state.nflog.log(log_key, entry);
        }
        if let Some(c) = &self.inner.cluster {
            for k in &failed {
                state.claims.release(k, &c.config.advertise);
            }
        }
        if let Some(g) = state.groups.get_mut(&key) {
            g.in_flight = false;
            if all_ok {
                for (fp, version) in resolved_versions {
                    if g.alerts.get(&fp).is_some_and(|a| a.version == version) {
                        g.alerts.remove(&fp);
                    }
                }
            }
            if g.alerts.is_empty() {
                state.groups.remove(&key);
            }
        }
        state.alerts_dirty = true;
        if logged {
            // Saved before anything else is sent, so a restart right after cannot repeat it.
            self.save_nflog(&state);
        }
        drop(state);
        if let Some(c) = &self.inner.cluster {
            let released = failed
                .into_iter()
                .map(|k| WireKey {
                    group_key: k.group_key,
                    receiver: k.receiver,
                    integration: k.integration,
                })
                .collect();
            c.push(
                self,
                WireState {
                    peer: c.config.advertise.clone(),
                    nflog: pushed,
                    released,
                    ..WireState::default()
                },
            );
        }
        self.inner.wake.notify_one();
    }

    /// Waits this member's turn, then keeps the deliveries the shared log and the peers'
    /// claims still call for, claiming them; returns them, whether nothing was held back
    /// for a peer, and the time to log them under.
    async fn cluster_gate(
        &self,
        c: &Cluster,
        deliveries: Vec<Delivery>,
        deadline: tokio::time::Instant,
        now_ms: i64,
    ) -> (Vec<Delivery>, bool, i64) {
        let wait = c.config.wait();
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        let now = now_ms + wait.as_millis() as i64;
        let expires_at = now + deadline.saturating_duration_since(tokio::time::Instant::now()).as_millis() as i64;
        let me = &c.config.advertise;
        let mut keep = Vec::new();
        let mut claims = Vec::new();
        let mut all_ok = true;
        let mut state = self.lock();
        for d in deliveries {
            let decision = cluster::decide(
                state.nflog.get(&d.log_key),
                state.claims.get(&d.log_key, now),
                me,
                &d.firing,
                &d.resolved,
                d.repeat_ms,
                d.integration.send_resolved(),
                now,
            );
            let outcome = match decision {
                Decision::Send(_) => {
                    let entry = LogEntry {
                        firing: d.firing.clone(),
                        resolved: d.resolved.clone(),
                        at: now,
                    };
                    claims.push(WireClaim {
                        entry: SavedEntry::new(&d.log_key, &entry),
                        expires_at,
                    });
                    let claim = Claim {
                        peer: me.clone(),
                        entry,
                        expires_at,
                    };
                    state.claims.claim(d.log_key.clone(), claim, now);
                    keep.push(d);
                    continue;
                }
                Decision::Deduplicated => "deduplicated",
                Decision::HeldByPeer(peer) => {
                    tracing::debug!(group = %d.log_key.group_key, receiver = %d.log_key.receiver, peer = %peer, "HA peer is delivering this notification; holding back");
                    all_ok = false;
                    "held_by_peer"
                }
            };
            self.inner
                .registry
                .counter(
                    "fedwatch_notifier_cluster_skipped_total",
                    "Notifications an HA member did not send: deduplicated (a peer sent it) or held_by_peer (a peer is sending it).",
                    &[("receiver", &d.log_key.receiver), ("reason", outcome)],
                )
                .inc();
        }
        drop(state);
        c.push(
            self,
            WireState {
                peer: me.clone(),
                claims,
                ..WireState::default()
            },
        );
        (keep, all_ok, now)
    }

    /// This member's full state as peers pull it: the log, the silences and its own claims.
    pub fn cluster_state(&self, now_ms: i64) -> WireState {
        let me = self.inner.cluster.as_ref().map(|c| c.config.advertise.clone()).unwrap_or_default();
        let state = self.lock();
        WireState {
            nflog: state.nflog.saved_entries(),
            silences: state.silences.iter().cloned().collect(),
            claims: state
                .claims
                .iter(now_ms)
                .filter(|(_, c)| c.peer == me)
                .map(|(k, c)| WireClaim {
                    entry: SavedEntry::new(k, &c.entry),
                    expires_at: c.expires_at,
                })
                .collect(),
            released: Vec::new(),
            peer: me,
        }
    }

    /// Merges a peer's state at `now_ms` (newer log entries and silences win) and saves what changed.
    pub fn merge_cluster_state(&self, msg: WireState, now_ms: i64) -> MergeStats {
        let me = self.inner.cluster.as_ref().map(|c| c.config.advertise.as_str()).unwrap_or("");
        let source = format!("HA peer {}", msg.peer);
        let mut stats = MergeStats::default();
        let mut state = self.lock();
        for e in msg.nflog {
            match e.parse(&source) {
                Ok((key, entry)) => {
                    let at = entry.at;
                    if state.nflog.merge(key.clone(), entry, now_ms) {
                        stats.nflog += 1;
                    }
                    state.claims.settled(&key, at);
                }
                Err(e) => tracing::warn!("{e}; entry ignored"),
            }
        }
        for s in msg.silences {
            let id = s.id.clone();
            match state.silences.merge(s, now_ms) {
                Ok(true) => stats.silences += 1,
                Ok(false) => {}
                Err(e) => tracing::warn!(silence = %id, "{source}: {e}; silence ignored"),
            }
        }
        if msg.peer != me {
            for c in msg.claims {
                match c.entry.parse(&source) {
                    Ok((key, entry)) => {
                        let claim = Claim {
                            peer: msg.peer.clone(),
                            entry,
                            expires_at: c.expires_at,
                        };
                        if state.claims.claim(key, claim, now_ms) {
                            stats.claims += 1;
                        }
                    }
                    Err(e) => tracing::warn!("{e}; claim ignored"),
                }
            }
            for k in msg.released {
                let key = LogKey {
                    group_key: k.group_key,
                    receiver: k.receiver,
                    integration: k.integration,
                };
                state.claims.release(&key, &msg.peer);
            }
        }
        if stats.nflog > 0 {
            self.save_nflog(&state);
        }
        if stats.silences > 0 {
            self.save_silences(&state);
        }
        drop(state);
        if stats.silences > 0 {
            // A new silence may mute a group due now.
            self.inner.wake.notify_one();
        }
        stats
    }

    /// Sends one integration's notification, counting and logging; true when delivered.
    async fn deliver_one(&self, key: &str, receiver: &str, d: &Delivery, deadline: tokio::time::Instant) -> bool {
        let kind = d.integration.kind();
        let counters = DeliveryCounters::start(&self.inner.registry, receiver, kind);
        let ctx = SendContext {
            client: &self.inner.client,
            backoff: self.inner.backoff,
            deadline,
        };
        let mut on_attempt = |ok: bool| counters.attempt(ok);
        match d.integration.notify(&d.notification, &ctx, &mut on_attempt).await {
            Ok(()) => true,
            Err(e) => {
                counters.undelivered();
                tracing::error!(receiver = %receiver, group = %key, integration = kind, error = %e, "notification failed");
                false
            }
        }
    }

    /// The silences, in id order.
    pub fn silences(&self) -> Vec<Silence> {
        self.lock().silences.iter().cloned().collect()
    }

    /// The silence `id`.
    pub fn silence(&self, id: &str) -> Option<Silence> {
        self.lock().silences.get(id).cloned()
    }

    /// Creates or updates a silence at `now_ms` (Alertmanager's rules, see [`silence`]) and
    /// saves the set; returns the id it is stored under.
    pub fn set_silence(&self, s: Silence, now_ms: i64) -> Result<String, SilenceError> {
        let old_id = s.id.clone();
        let mut state = self.lock();
        let id = state.silences.set(s, now_ms)?;
        self.save_silences(&state);
        // An update that could not be made in place expired the old silence: both travel.
        let changed: Vec<Silence> = [old_id.as_str(), id.as_str()]
            .iter()
            .filter(|i| !i.is_empty())
            .filter_map(|i| state.silences.get(i).cloned())
            .collect();
        drop(state);
        self.push_silences(changed);
        Ok(id)
    }

    /// Expires the silence `id` at `now_ms` and saves the set.
    pub fn expire_silence(&self, id: &str, now_ms: i64) -> Result<(), SilenceError> {
        let mut state = self.lock();
        state.silences.expire(id, now_ms)?;
        self.save_silences(&state);
        let changed: Vec<Silence> = state.silences.get(id).cloned().into_iter().collect();
        drop(state);
        self.push_silences(changed);
        Ok(())
    }

    fn push_silences(&self, silences: Vec<Silence>) {
        if let Some(c) = &self.inner.cluster {
            let msg = WireState {
                peer: c.config.advertise.clone(),
                silences,
                ..WireState::default()
            };
            c.push(self, msg);
        }
    }

    /// The alerts held that have not resolved at `now_ms`, by fingerprint, with their
    /// receivers and what mutes them.
    pub fn alerts(&self, now_ms: i64) -> Vec<AlertView> {
        let state = self.lock();
        let firing = firing_alerts(&state.groups, now_ms, true);
        let refs: Vec<(u64, &Labels)> = firing.iter().map(|(fp, l)| (*fp, l)).collect();
        let mut seen = HashSet::new();
        let mut out: Vec<AlertView> = Vec::new();
        for g in state.groups.values() {
            for (fp, a) in &g.alerts {
                if a.resolved(now_ms) || !seen.insert(*fp) {
                    continue;
                }
                out.push(view(&state, *fp, a, &refs, now_ms, None));
            }
        }
        out.sort_by_key(|a| a.fingerprint);
        out
    }

    /// The aggregation groups with their unresolved alerts, as `/api/v2/alerts/groups` lists them.
    pub fn alert_groups(&self, now_ms: i64) -> Vec<GroupView> {
        let state = self.lock();
        let firing = firing_alerts(&state.groups, now_ms, true);
        let refs: Vec<(u64, &Labels)> = firing.iter().map(|(fp, l)| (*fp, l)).collect();
        let mut out: Vec<GroupView> = state
            .groups
            .iter()
            .map(|(key, g)| GroupView {
                key: key.clone(),
                labels: g.labels.clone(),
                route_labels: g.route.labels.clone(),
                receiver: g.route.receiver.clone(),
                alerts: g
                    .alerts
                    .iter()
                    .filter(|(_, a)| !a.resolved(now_ms))
                    .map(|(fp, a)| view(&state, *fp, a, &refs, now_ms, Some(&g.route)))
                    .collect(),
            })
            .filter(|g| !g.alerts.is_empty())
            .collect();
        out.sort_by(|a, b| (&a.key, &a.receiver).cmp(&(&b.key, &b.receiver)));
        out
    }

    /// When this notifier was created (ms since the epoch).
    pub fn started_at(&self) -> i64 {
        self.inner.started_at
    }

    fn save_silences(&self, state: &State) {
        if let Some(dir) = &self.inner.state_dir
            && let Err(e) = state.silences.save(&dir.join(persist::SILENCES))
        {
            tracing::error!(dir = %dir.display(), error = %e, "cannot save silences");
        }
    }

    fn save_nflog(&self, state: &State) {
        if let Some(dir) = &self.inner.state_dir
            && let Err(e) = state.nflog.save(&dir.join(persist::NFLOG))
        {
            tracing::error!(dir = %dir.display(), error = %e, "cannot save the notification log");
        }
    }

    /// Saves the alerts held if they changed since the last save, and forgets expired
    /// silences and old log entries at `now_ms`. The flush loop calls it at least once a second.
    pub fn persist(&self, now_ms: i64) {
        let Some(dir) = &self.inner.state_dir else {
            return;
        };
        let mut state = self.lock();
        if state.silences.gc(now_ms) {
            self.save_silences(&state);
        }
        if state.nflog.gc(now_ms) {
            self.save_nflog(&state);
        }
        if !std::mem::take(&mut state.alerts_dirty) {
            return;
        }
        let mut seen = HashSet::new();
        let mut alerts = Vec::new();
        for g in state.groups.values() {
            for (fp, a) in &g.alerts {
                if seen.insert(*fp) {
                    alerts.push(SavedAlert {
                        labels: a.labels.iter().map(|l| (l.name.clone(), l.value.clone())).collect(),
                        annotations: a.annotations.clone(),
                        starts_at: a.starts_at,
                        ends_at: a.ends_at,
                        updated_at: a.updated_at,
                        generator_url: a.generator_url.clone(),
                    });
                }
            }
        }
        drop(state);
        if let Err(e) = persist::save_alerts(&dir.join(persist::ALERTS), alerts) {
            tracing::error!(dir = %dir.display(), error = %e, "cannot save alerts");
        }
    }

    /// Runs the flush loop on the wall clock, and the HA state exchange when in a cluster,
    /// until the task is aborted.
    pub async fn run(self) {
        tokio::join!(self.clone().flush_loop(), self.cluster_loop());
    }

    /// Exchanges full state with every peer: every second until settled, then every `pushpull_interval`.
    async fn cluster_loop(self) {
        let Some(c) = &self.inner.cluster else {
            return;
        };
        loop {
            c.sync_round(&self).await;
            tokio::time::sleep(c.next_round()).await;
        }
    }

    async fn flush_loop(self) {
        loop {
            let now = now_ms();
            // An HA member that has not settled yet first learns what its peers sent.
            let ready = self.inner.cluster.as_ref().is_none_or(|c| c.ready());
            if ready {
                drop(self.flush_due(now));
            }
            self.lock().claims.gc(now);
            self.persist(now);
            let soonest = if ready { 10 } else { 100 };
            let wait = self.next_flush().map(|t| (t - now).clamp(soonest, 1000)).unwrap_or(1000);
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(wait as u64)) => {}
                _ = self.inner.wake.notified() => {}
            }
        }
    }
}

impl AlertSender for Notifier {
    fn send(&self, alerts: Vec<PostableAlert>, now_ms: i64) {
        self.receive(alerts, now_ms);
    }
}

/// An alert as the API shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct AlertView {
    pub fingerprint: u64,
    pub labels: Labels,
    pub annotations: BTreeMap<String, String>,
    pub starts_at: i64,
    pub ends_at: i64,
    pub updated_at: i64,
    pub generator_url: String,
    /// Receivers the route tree sends it to, in route order.
    pub receivers: Vec<String>,
    /// Ids of the active silences that match it.
    pub silenced_by: Vec<String>,
    /// Fingerprints of the firing alerts that inhibit it.
    pub inhibited_by: Vec<u64>,
    /// Names of the time intervals muting its route(s) now.
    pub muted_by: Vec<String>,
}

impl AlertView {
    /// `suppressed` when silenced or inhibited, else `active`.
    pub fn state(&self) -> &'static str {
        if self.silenced_by.is_empty() && self.inhibited_by.is_empty() {
            "active"
        } else {
            "suppressed"
        }
    }
}

/// One aggregation group as the API shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupView {
    pub key: String,
    pub labels: Labels,
    pub route_labels: BTreeMap<String, String>,
    pub receiver: String,
    pub alerts: Vec<AlertView>,
}

/// `route` is the group's route in a group view; for the plain alert list, every route the
/// alert matches contributes its muting intervals.
fn view(state: &State, fp: u64, a: &StoredAlert, firing: &[(u64, &Labels)], now: i64, route: Option<&Route>) -> AlertView {
    let mut receivers: Vec<String> = Vec::new();
    let mut muted_by: Vec<String> = Vec::new();
    let matching = state.config.route.matching(&a.labels);
    for r in &matching {
        if !receivers.contains(&r.receiver) {
            receivers.push(r.receiver.clone());
        }
    }
    for r in route.map(|r| vec![r]).unwrap_or(matching) {
        muted_by.extend(state.config.muted_by(r, now));
    }
    muted_by.sort();
    muted_by.dedup();
    AlertView {
        fingerprint: fp,
        labels: a.labels.clone(),
        annotations: a.annotations.clone(),
        starts_at: a.starts_at,
        ends_at: a.ends_at,
        updated_at: a.updated_at,
        generator_url: a.generator_url.clone(),
        receivers,
        silenced_by: state.silences.silenced_by(&a.labels, now),
        inhibited_by: inhibit::inhibited_by(&state.config.inhibit_rules, &a.labels, firing),
        muted_by,
    }
}

/// The distinct alerts firing at `now` (fingerprint, labels); empty unless `wanted`, to
/// spare the work when no inhibit rule needs it.
fn firing_alerts(groups: &HashMap<String, Group>, now: i64, wanted: bool) -> Vec<(u64, Labels)> {
    if !wanted {
        return Vec::new();
    }
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for g in groups.values() {
        for (fp, a) in &g.alerts {
            if !a.resolved(now) && seen.insert(*fp) {
                out.push((*fp, a.labels.clone()));
            }
        }
    }
    out
}

fn insert_alert(state: &mut State, mut alert: StoredAlert, now: i64) {
    let fp = webhook::fingerprint(&alert.labels);
    let routes: Vec<Route> = state.config.route.matching(&alert.labels).into_iter().cloned().collect();
    for route in routes {
        let group_labels = route.group_labels(&alert.labels);
        let key = format!("{}:{}", route.key, group_key_labels(&group_labels));
        let group = state.groups.entry(key).or_insert_with(|| Group {
            next_flush: now + route.group_wait.as_millis() as i64,
            route: route.clone(),
            labels: group_labels,
            alerts: BTreeMap::new(),
            has_flushed: false,
            in_flight: false,
        });
        if let Some(old) = group.alerts.get(&fp) {
            // Overlapping updates of one alert keep the earliest start, as Alertmanager merges.
            if !old.resolved(now) || old.ends_at > alert.starts_at {
                alert.starts_at = alert.starts_at.min(old.starts_at);
            }
            alert.version = old.version + 1;
        }
        if !group.has_flushed && alert.starts_at + (route.group_wait.as_millis() as i64) < now {
            group.next_flush = group.next_flush.min(now);
        }
        group.alerts.insert(fp, alert.clone());
    }
}

/// `{a="b", c="d"}` as Go's `model.LabelSet.String()` prints it.
fn group_key_labels(labels: &Labels) -> String {
    let parts: Vec<String> = labels.iter().map(|l| format!("{}={}", l.name, route::go_quote(&l.value))).collect();
    format!("{{{}}}", parts.join(", "))
}

/// Alertmanager's dedup rule; `Some(reason)` when the integration must be notified.
fn needs_update(
    entry: Option<&LogEntry>,
    firing: &HashSet<u64>,
    resolved: &HashSet<u64>,
    repeat_ms: i64,
    send_resolved: bool,
    now: i64,
) -> Option<&'static str> {
    let Some(entry) = entry else {
        return (!firing.is_empty()).then_some("first notification");
    };
    if !firing.is_subset(&entry.firing) {
        return Some("new alerts added");
    }
    if firing.is_empty() {
        // Alerts that fired and resolved between two notifications are never announced.
        return (!entry.firing.is_empty()).then_some("all alerts resolved");
    }
    if send_resolved && !resolved.is_subset(&entry.resolved) {
        return Some("some alerts resolved");
    }
    (entry.at + repeat_ms <= now).then_some("repeat interval elapsed")
}

/// Wall-clock milliseconds since the epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests;
