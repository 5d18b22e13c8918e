//! The HA pair: two (or more) centrals with the same notification config send each
//! notification once, sharing the notification log and silences over plain HTTP.
//!
//! Alertmanager's cluster design, with HTTP instead of memberlist gossip:
//!
//! - **Position.** Every member is named by its base URL (`--cluster.advertise-address`,
//!   else `--web.external-url`, else the listen address); a member's position is its index
//!   in the sorted list of all names, its own and its `--cluster.peer`s. The list is static:
//!   a dead peer keeps its place, so positions never disagree between members that are up.
//! - **Wait, then dedup.** Before delivering a group's notification a member waits
//!   `position × --cluster.peer-timeout` (Alertmanager's `WaitStage`), then asks the shared
//!   notification log whether the notification is still needed ([`decide`], Alertmanager's
//!   `DedupStage`). With both up, position 0 sends at once and position 1 finds its entry;
//!   with position 0 down, position 1 sends after its wait.
//! - **Claims (Alertmanager issues 4108 and 1718).** Alertmanager writes the log only after
//!   a delivery succeeded, so when position 0's receiver fails and is retried for longer than
//!   the peer timeout, position 1 sends too and the receiver gets one notification per peer.
//!   Here a member that starts a delivery first tells its peers it is doing so (a [`Claim`]
//!   on the log key with what it is about to say, valid until its delivery deadline, one
//!   `group_interval`). A member whose notification a live claim already covers holds back,
//!   keeps its resolved alerts and looks again at its next flush. The claimer replaces the
//!   claim with its log entry on success and withdraws it on failure; if it dies, the claim
//!   runs out and the survivor sends at its first flush after that.
//! - **Replication.** After every delivery the new log entries, and after every silence
//!   change the silence, are pushed to every peer (`POST` [`STATE_PATH`]) in the background;
//!   a peer that is down never delays a notification. Every `--cluster.pushpull-interval`,
//!   and once at start, each member pulls every peer's full state (`GET` [`STATE_PATH`]) and
//!   pushes its own (anti-entropy), so a peer that was down catches up. Merging keeps the
//!   newer of two log entries (by `at`) and of two silences (by `updatedAt`), as
//!   Alertmanager's merge does; merged state is persisted like local state.
//! - **Settling.** Until one exchange round reached every peer (tried every second), or
//!   `--cluster.settle-timeout` passed, the member is `settling` and sends nothing, so a
//!   restarted central first learns what its peer sent meanwhile; then it is `ready`
//!   (`/api/v2/status` shows which). A member whose peer is down thus starts notifying
//!   after the settle timeout, as Alertmanager does.
//!
//! Timing assumptions: the members' clocks agree to well within the peer timeout (log
//! entries and claims carry wall-clock times); the members see a new alert within the peer
//! timeout of each other (they evaluate the same rules on the same data, so the skew is
//! about one evaluation interval plus forwarding lag); a push reaches a live peer within
//! the peer timeout; and `--cluster.pushpull-interval` is shorter than `group_interval`,
//! so a lost push is repaired before it matters. Outside them the pair errs towards a
//! duplicate, never towards silence.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};

use super::nflog::{LogEntry, LogKey, SavedEntry};
use super::silence::Silence;
use super::{Notifier, needs_update, now_ms};

/// Where members exchange state: `GET` answers the full [`WireState`], `POST` merges one.
pub const STATE_PATH: &str = "/api/fedwatch/v1/cluster/state";

/// Alertmanager's default `--cluster.peer-timeout`.
pub const DEFAULT_PEER_TIMEOUT: Duration = Duration::from_secs(15);

/// How this member finds and ranks its peers.
#[derive(Clone, Debug, PartialEq)]
pub struct ClusterConfig {
    /// This member's name: its base URL as the peers list it.
    pub advertise: String,
    /// The other members' base URLs (never this member's own).
    pub peers: Vec<String>,
    /// Wait per position before notifying.
    pub peer_timeout: Duration,
    /// Longest wait for the first state pull before notifying anyway.
    pub settle_timeout: Duration,
    /// How often the full state is exchanged with every peer.
    pub pushpull_interval: Duration,
}

impl ClusterConfig {
    /// A configuration for `advertise` and `peers` (URLs or `host:port`), normalised;
    /// `advertise` among the peers is dropped, so every member can be given the same list.
    pub fn new(advertise: &str, peers: &[String]) -> Result<ClusterConfig, String> {
        let advertise = normalize_url(advertise).map_err(|e| format!("--cluster.advertise-address: {e}"))?;
        let mut out: Vec<String> = Vec::new();
        for p in peers {
            let p = normalize_url(p).map_err(|e| format!("--cluster.peer: {e}"))?;
            if p != advertise && !out.contains(&p) {
                out.push(p);
            }
        }
        Ok(ClusterConfig {
            advertise,
            peers: out,
            peer_timeout: DEFAULT_PEER_TIMEOUT,
            settle_timeout: Duration::from_secs(30),
            pushpull_interval: Duration::from_secs(30),
        })
    }

    /// This member's index among all members' names, sorted.
    pub fn position(&self) -> usize {
        self.peers.iter().filter(|p| **p < self.advertise).count()
    }

    /// How long this member waits before a notification: `position × peer_timeout`.
    pub fn wait(&self) -> Duration {
        self.peer_timeout * self.position() as u32
    }
}

/// `http://host:port` from a URL or `host:port`, without a trailing slash.
pub fn normalize_url(s: &str) -> Result<String, String> {
    let s = s.trim().trim_end_matches('/');
    let with_scheme = if s.contains("://") { s.to_string() } else { format!("http://{s}") };
    let url = reqwest::Url::parse(&with_scheme).map_err(|e| format!("{s:?} is not a URL or host:port: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!("{s:?}: expected http(s)://host:port"));
    }
    Ok(with_scheme)
}

/// A peer's word that it is delivering a notification now.
#[derive(Clone, Debug, PartialEq)]
pub struct Claim {
    /// The claiming member's name.
    pub peer: String,
    /// What it is about to log when the delivery succeeds.
    pub entry: LogEntry,
    /// When the claim lapses if nothing more is heard (the claimer's delivery deadline).
    pub expires_at: i64,
}

/// The claims known to this member, at most one per log key.
#[derive(Default, Debug)]
pub struct Claims {
    by_key: HashMap<LogKey, Claim>,
}

impl Claims {
    /// Records `claim`, replacing an older one for the key; true if taken.
    pub fn claim(&mut self, key: LogKey, claim: Claim, now: i64) -> bool {
        if claim.expires_at <= now {
            return false;
        }
        if self.by_key.get(&key).is_some_and(|c| c.entry.at > claim.entry.at) {
            return false;
        }
        self.by_key.insert(key, claim);
        true
    }

    /// Withdraws `peer`'s claim on `key`, if it still holds it.
    pub fn release(&mut self, key: &LogKey, peer: &str) {
        if self.by_key.get(key).is_some_and(|c| c.peer == peer) {
            self.by_key.remove(key);
        }
    }

    /// A log entry for `key` written at `at` settles every claim made no later.
    pub fn settled(&mut self, key: &LogKey, at: i64) {
        if self.by_key.get(key).is_some_and(|c| c.entry.at <= at) {
            self.by_key.remove(key);
        }
    }

    /// The live claim on `key` at `now`.
    pub fn get(&self, key: &LogKey, now: i64) -> Option<&Claim> {
        self.by_key.get(key).filter(|c| c.expires_at > now)
    }

    /// Forgets lapsed claims.
    pub fn gc(&mut self, now: i64) {
        self.by_key.retain(|_, c| c.expires_at > now);
    }

    /// Every live claim.
    pub fn iter(&self, now: i64) -> impl Iterator<Item = (&LogKey, &Claim)> {
        self.by_key.iter().filter(move |(_, c)| c.expires_at > now)
    }
}

/// What to do with one integration's notification after the wait.
#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    /// Send it, for this reason.
    Send(&'static str),
    /// The shared log says it was sent already: done, as if delivered.
    Deduplicated,
    /// The named peer is delivering it right now: hold back and look again next flush.
    HeldByPeer(String),
}

/// Alertmanager's dedup against the shared log, then the claims of other members.
#[allow(clippy::too_many_arguments)]
pub fn decide(
    entry: Option<&LogEntry>,
    claim: Option<&Claim>,
    me: &str,
    firing: &std::collections::HashSet<u64>,
    resolved: &std::collections::HashSet<u64>,
    repeat_ms: i64,
    send_resolved: bool,
    now: i64,
) -> Decision {
    let Some(reason) = needs_update(entry, firing, resolved, repeat_ms, send_resolved, now) else {
        return Decision::Deduplicated;
    };
    if let Some(c) = claim.filter(|c| c.peer != me && c.expires_at > now)
        && needs_update(Some(&c.entry), firing, resolved, repeat_ms, send_resolved, now).is_none()
    {
        return Decision::HeldByPeer(c.peer.clone());
    }
    Decision::Send(reason)
}

/// A claim as members send it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WireClaim {
    #[serde(flatten)]
    pub entry: SavedEntry,
    pub expires_at: i64,
}

/// A log key as members send it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WireKey {
    pub group_key: String,
    pub receiver: String,
    pub integration: usize,
}

/// What members exchange: all of a member's state (`GET`), or what just changed (`POST`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WireState {
    /// The sender's name.
    pub peer: String,
    #[serde(default)]
    pub nflog: Vec<SavedEntry>,
    #[serde(default)]
    pub silences: Vec<Silence>,
    /// Deliveries the sender has started.
    #[serde(default)]
    pub claims: Vec<WireClaim>,
    /// Claims the sender withdraws (its delivery failed).
    #[serde(default)]
    pub released: Vec<WireKey>,
}

impl WireState {
    /// Whether there is nothing to send.
    pub fn is_empty(&self) -> bool {
        self.nflog.is_empty() && self.silences.is_empty() && self.claims.is_empty() && self.released.is_empty()
    }
}

/// What one merge changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MergeStats {
    pub nflog: usize,
    pub silences: usize,
    pub claims: usize,
}

/// How one peer answered lately.
#[derive(Clone, Debug, Default)]
struct PeerStatus {
    last_ok: Option<i64>,
    last_error: Option<String>,
    /// The name it gave itself, when it differs from how we list it.
    mismatch: Option<String>,
}

/// A member's view of its pair at run time.
pub struct Cluster {
    pub config: ClusterConfig,
    peers: Mutex<HashMap<String, PeerStatus>>,
    settled: AtomicBool,
    started: std::time::Instant,
}

impl Cluster {
    /// A member configured by `config`, settling.
    pub fn new(config: ClusterConfig) -> Cluster {
        Cluster {
            peers: Mutex::new(config.peers.iter().map(|p| (p.clone(), PeerStatus::default())).collect()),
            config,
            settled: AtomicBool::new(false),
            started: std::time::Instant::now(),
        }
    }

    /// Whether notifications may go out: a round reached every peer or the settle timeout passed.
    pub fn ready(&self) -> bool {
        self.settled.load(Ordering::Relaxed) || self.started.elapsed() >= self.config.settle_timeout
    }

    /// `ready` or `settling`, as Alertmanager's status says.
    pub fn status(&self) -> &'static str {
        if self.ready() { "ready" } else { "settling" }
    }

    /// Peers (URL, reachable now) in name order; reachable means the last exchange worked.
    pub fn peer_states(&self) -> Vec<(String, bool)> {
        let peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<(String, bool)> = peers
            .iter()
            .map(|(p, s)| (p.clone(), s.last_error.is_none() && s.last_ok.is_some()))
            .collect();
        out.sort();
        out
    }

    fn record(&self, peer: &str, result: Result<(), String>, notifier: &Notifier, kind: &str) {
        let ok = result.is_ok();
        notifier
            .inner
            .registry
            .counter(
                "fedwatch_notifier_cluster_messages_total",
                "State messages exchanged with HA peers, by peer, kind (push, pull) and result.",
                &[("peer", peer), ("kind", kind), ("result", if ok { "success" } else { "failure" })],
            )
            .inc();
        let mut peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
        let s = peers.entry(peer.to_string()).or_default();
        match result {
            Ok(()) => {
                if s.last_error.is_some() {
                    tracing::info!(peer, "HA peer reachable again");
                }
                s.last_ok = Some(now_ms());
                s.last_error = None;
            }
            Err(e) => {
                if s.last_error.is_none() {
                    tracing::warn!(peer, error = %e, "HA peer unreachable; state will be exchanged when it is back");
                }
                s.last_error = Some(e);
            }
        }
    }

    fn timeout(&self) -> Duration {
        self.config.peer_timeout.clamp(Duration::from_millis(500), Duration::from_secs(10))
    }

    /// Sends `msg` to every peer in the background; failures are left to anti-entropy.
    pub(crate) fn push(&self, notifier: &Notifier, msg: WireState) {
        if msg.is_empty() || self.config.peers.is_empty() {
            return;
        }
        let msg = std::sync::Arc::new(msg);
        for peer in &self.config.peers {
            let (peer, msg, n) = (peer.clone(), msg.clone(), notifier.clone());
            let timeout = self.timeout();
            tokio::spawn(async move {
                let r = post_state(&n.inner.client, &peer, &msg, timeout).await;
                if let Some(c) = &n.inner.cluster {
                    c.record(&peer, r, &n, "push");
                }
            });
        }
    }

    /// One anti-entropy round: pull every peer's state and merge it, push ours; all peers at once.
    pub(crate) async fn sync_round(&self, notifier: &Notifier) {
        let mut tasks = tokio::task::JoinSet::new();
        for peer in self.config.peers.clone() {
            let (n, timeout) = (notifier.clone(), self.timeout());
            tasks.spawn(async move {
                let r = pull_and_push(&n, &peer, timeout).await;
                if let Some(c) = &n.inner.cluster {
                    c.record(&peer, r, &n, "pushpull");
                }
            });
        }
        while tasks.join_next().await.is_some() {}
        let all_answered = self.peer_states().iter().all(|(_, up)| *up);
        if all_answered && !self.settled.swap(true, Ordering::Relaxed) {
            tracing::info!(
                peers = self.config.peers.len(),
                position = self.config.position(),
                "HA cluster settled"
            );
        }
    }

    /// How long until the next exchange: every second while settling, then the push-pull interval.
    pub(crate) fn next_round(&self) -> Duration {
        if self.settled.load(Ordering::Relaxed) {
            self.config.pushpull_interval
        } else {
            self.config.pushpull_interval.min(Duration::from_secs(1))
        }
    }

    fn note_name(&self, peer: &str, calls_itself: &str) {
        let mut peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
        let s = peers.entry(peer.to_string()).or_default();
        if calls_itself != peer && s.mismatch.as_deref() != Some(calls_itself) {
            tracing::warn!(
                peer,
                calls_itself,
                "HA peer advertises another name, so positions may disagree: give each central the --cluster.advertise-address its peers list"
            );
        }
        s.mismatch = (calls_itself != peer).then(|| calls_itself.to_string());
    }
}

/// Pulls `peer`'s full state, merges it, then pushes ours.
async fn pull_and_push(n: &Notifier, peer: &str, timeout: Duration) -> Result<(), String> {
    let client = &n.inner.client;
    let state = get_state(client, peer, timeout).await?;
    if let Some(c) = &n.inner.cluster {
        c.note_name(peer, &state.peer);
    }
    let stats = n.merge_cluster_state(state, now_ms());
    if stats != MergeStats::default() {
        tracing::debug!(peer, ?stats, "merged HA peer state");
    }
    let ours = n.cluster_state(now_ms());
    post_state(client, peer, &ours, timeout).await
}

async fn post_state(client: &reqwest::Client, peer: &str, msg: &WireState, timeout: Duration) -> Result<(), String> {
    let r = client
        .post(format!("{peer}{STATE_PATH}"))
        .timeout(timeout)
        .json(msg)
        .send()
        .await
        .map_err(|e| format!("POST {peer}{STATE_PATH}: {e}"))?;
    if !r.status().is_success() {
        let status = r.status();
        let body = r.text().await.unwrap_or_default();
        return Err(format!(
            "POST {peer}{STATE_PATH}: {status}: {}",
            body.chars().take(200).collect::<String>()
        ));
    }
    Ok(())
}

async fn get_state(client: &reqwest::Client, peer: &str, timeout: Duration) -> Result<WireState, String> {
    let r = client
        .get(format!("{peer}{STATE_PATH}"))
        .timeout(timeout)
        .send()
        .await
        .map_err(|e| format!("GET {peer}{STATE_PATH}: {e}"))?;
    if !r.status().is_success() {
        return Err(format!("GET {peer}{STATE_PATH}: {}", r.status()));
    }
    r.json()
        .await
        .map_err(|e| format!("GET {peer}{STATE_PATH}: not a cluster state: {e}"))
}

/// `GET` and `POST` [`STATE_PATH`] for `notifier`; 404 when clustering is off.
pub fn router(notifier: Notifier) -> Router {
    Router::new()
        .route(STATE_PATH, get(get_handler).post(post_handler))
        .with_state(notifier)
}

fn disabled() -> Response {
    (
        StatusCode::NOT_FOUND,
        axum::Json(serde_json::Value::String(
            "clustering is off on this central (no --cluster.peer)".into(),
        )),
    )
        .into_response()
}

async fn get_handler(State(n): State<Notifier>) -> Response {
    if n.inner.cluster.is_none() {
        return disabled();
    }
    axum::Json(n.cluster_state(now_ms())).into_response()
}

async fn post_handler(State(n): State<Notifier>, body: axum::body::Bytes) -> Response {
    if n.inner.cluster.is_none() {
        return disabled();
    }
    let msg: WireState = match serde_json::from_slice(&body) {
        Ok(m) => m,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                axum::Json(serde_json::Value::String(format!("not a cluster state message: {e}"))),
            )
                .into_response();
        }
    };
    let stats = n.merge_cluster_state(msg, now_ms());
    axum::Json(serde_json::json!({"nflog": stats.nflog, "silences": stats.silences, "claims": stats.claims})).into_response()
}

#[cfg(test)]
mod tests;
