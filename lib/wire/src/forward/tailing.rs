//! The WAL-tailing forwarder: sends what the local store logged, from a checkpointed
//! position, so an upstream outage or a restart delays data and never loses it.
//!
//! Design notes:
//! - **Source**: a [`WalTailer`] on the store's log. Only samples the store accepted are in
//!   the log, so samples it refused (out of order, duplicates, over a limit) are never sent
//!   upstream. Ingest acknowledges a sender once the log has the data and never waits for an
//!   upstream: a slow or dead upstream costs log space, not ingest.
//! - **Position file**: `<state dir>/<host_port>-<fnv64 of the URL>/position`, one line
//!   `v1 <segment> <offset>`, written to `position.tmp`, fsynced, renamed over the old one and
//!   the directory fsynced, after the upstream acknowledged everything before that position. A restart resumes there, so the
//!   upstream may see the last unacknowledged window twice (it ignores identical samples)
//!   and never misses one. No file: the forwarder starts at the end of the log (it was just
//!   configured; what came before went elsewhere or nowhere). An unreadable file: it starts
//!   at the oldest segment still on disk (resending is harmless, skipping is not) and says so.
//! - **Hold**: the forwarder holds the segment of its acknowledged position in the store
//!   (see `fedwatch_tsdb::wal::hold`), so checkpoints keep what it has not sent, up to
//!   `max_backlog` of age. Past that the store deletes the segments; the samples lost are
//!   counted in `fedwatch_forward_dropped_total{reason="backlog_exceeded"}` and logged.
//! - **Windows and shards**: the sender reads up to `max_samples_per_send × shards` samples
//!   (a window), applies external labels, `write_relabel_configs` and downsampling in log
//!   order, splits the series over `shards` by a hash of the labels that go upstream (one
//!   series, one shard, in order), and sends the shards in parallel, each in requests of at
//!   most `max_samples_per_send`. The position advances only when every shard of the window
//!   was acknowledged (or refused with a status retrying cannot fix), so windows are strictly
//!   ordered and per-series order holds across them.
//! - **Batching**: when caught up with the log and the window is smaller than one request,
//!   the sender waits up to `batch_send_deadline` for more, polling the log every
//!   `poll_interval`.
//! - **Catch-up after an outage**: oldest first, in log order. Upstream stores refuse a
//!   sample older than the newest they hold for its series, so live samples of a series
//!   cannot overtake its backlog; interleaving a "live" stream would make the upstream drop
//!   the backlog as out of order. What keeps live data from starving instead: (1) each
//!   upstream has its own position, so one upstream's backlog never delays another; (2) a
//!   backlog is sent in full windows back to back (no batch deadline, all shards busy), so
//!   it drains at the upstream's ingest speed and the lag shrinks from the first window on;
//!   (3) the upstream's ingestion budget (429 + `Retry-After`, which is honoured) bounds
//!   what a catching-up sender takes from live senders at the same upstream; (4) the
//!   backlog is bounded by `max_backlog`. The lag gauge shows the catch-up progress.
//! - **Retries**: as for [`super::Forwarder`]: connection errors, timeouts, 5xx and 429
//!   are retried forever with exponential backoff (or `Retry-After`); other statuses drop
//!   the request's samples, counted in `fedwatch_forward_samples_failed_total`.
//! - **Downsampling** state lives in memory: after a restart the first samples of each
//!   series go out as first samples (see `downsample.rs`), and samples the downsampler held
//!   back when the process died (at most one bucket per series) are not sent. Shutdown
//!   releases and sends what it holds.
//! - **Metrics** (label `url`): `fedwatch_forward_samples_{sent,failed,retried}_total`,
//!   `fedwatch_forward_dropped_total{reason}` (`write_relabel`, `backlog_exceeded`,
//!   `unknown_series`), `fedwatch_forward_pending_samples` (samples read and not yet
//!   acknowledged, plus the unread log bytes divided by the bytes per sample seen so far),
//!   `fedwatch_forward_lag_seconds`.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use fedwatch_model::selfmetrics::Registry;
use fedwatch_model::{Labels, Sample, TimeSeries};
use fedwatch_tsdb::Db;
use fedwatch_tsdb::postings::SeriesRef;
use fedwatch_tsdb::wal::{WalHold, WalPosition, WalTailer, list_segments, segment_path};
use tokio::sync::watch;
use tokio::time::Instant;

use super::{
    Endpoint, ForwarderConfig, ForwarderError, Metrics, Negotiated, Prepared, RateLimitedLog, SendLogs, post_until_done,
    with_external_labels,
};

/// Where a WAL-tailing forwarder keeps its state and how far it may fall behind.
#[derive(Clone, Debug)]
pub struct WalForwarderOptions {
    /// The directory holding one position directory per upstream (e.g. `<storage>/forward`).
    pub state_dir: PathBuf,
    /// Log segments older than this are deleted even when not yet sent (None: never).
    pub max_backlog: Option<Duration>,
    /// How often the log is checked for new records when caught up.
    pub poll_interval: Duration,
}

impl WalForwarderOptions {
    /// State under `state_dir`, a 6 h backlog and a 100 ms poll.
    pub fn new(state_dir: impl Into<PathBuf>) -> Self {
        Self {
            state_dir: state_dir.into(),
            max_backlog: Some(Duration::from_secs(6 * 3600)),
            poll_interval: Duration::from_millis(100),
        }
    }
}

/// The directory under `state_dir` that holds the position for upstream `url`.
pub fn position_dir(state_dir: &Path, url: &str) -> PathBuf {
    // FNV-1a: stable across releases, unlike std's hasher.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in url.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let host: String = reqwest::Url::parse(url)
        .ok()
        .map(|u| format!("{}_{}", u.host_str().unwrap_or("upstream"), u.port_or_known_default().unwrap_or(0)))
        .unwrap_or_else(|| "upstream".into())
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || ".-_".contains(c) { c } else { '_' })
        .collect();
    state_dir.join(format!("{host}-{h:016x}"))
}

/// A remote_write sender that follows the local store's log; see the module notes.
pub struct WalForwarder {
    shared: Arc<Tail>,
    stop: watch::Sender<bool>,
    task: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

struct Tail {
    cfg: ForwarderConfig,
    opts: WalForwarderOptions,
    display_url: String,
    url: reqwest::Url,
    client: reqwest::Client,
    protocol: Negotiated,
    downsampler: Option<std::sync::Mutex<crate::downsample::Downsampler>>,
    metrics: Metrics,
    db: Arc<Db>,
    wal_dir: PathBuf,
    hold: WalHold,
    position_file: PathBuf,
    /// Acknowledged position.
    acked: std::sync::Mutex<WalPosition>,
    /// Set by shutdown: send partial windows at once.
    flushing: AtomicBool,
    /// Samples the store's hold lost that were already counted.
    lost_counted: AtomicU64,
    /// Each shard's rate-limited log lines, kept across windows so a refusing upstream is
    /// logged once per `LOG_EVERY`, not once per window; the last slot is shutdown's.
    logs: Vec<std::sync::Mutex<SendLogs>>,
}

impl WalForwarder {
    /// Checks `config`, opens the position and starts following `db`'s log on the current runtime.
    pub fn spawn(
        config: ForwarderConfig,
        db: Arc<Db>,
        opts: WalForwarderOptions,
        registry: &Registry,
    ) -> Result<WalForwarder, ForwarderError> {
        let p = Prepared::new(&config)?;
        let handle = tokio::runtime::Handle::try_current().map_err(|_| ForwarderError::NoRuntime {
            url: p.display_url.clone(),
        })?;
        let invalid = |field, reason: String| ForwarderError::InvalidConfig {
            url: p.display_url.clone(),
            field,
            reason,
        };
        if opts.poll_interval.is_zero() {
            return Err(invalid("poll_interval", "must be more than 0".into()));
        }
        let dir = position_dir(&opts.state_dir, &config.url);
        std::fs::create_dir_all(&dir).map_err(|e| invalid("state directory", format!("{}: {e}", dir.display())))?;
        let position_file = dir.join("position");
        let wal_dir = db.wal_dir();
        let start = match read_position(&position_file) {
            Ok(Some(p)) => p,
            Ok(None) => db.wal_end(),
            Err(why) => {
                let oldest = list_segments(&wal_dir).ok().and_then(|s| s.first().copied()).unwrap_or(0);
                tracing::warn!(file = %position_file.display(), "forward position unreadable ({why}); resending from the oldest WAL segment {oldest}");
                WalPosition::segment_start(oldest)
            }
        };
        // Hold before opening the reader, so no checkpoint deletes what it is about to read.
        let hold = db.hold_wal(&p.display_url, start.segment, opts.max_backlog);
        let tailer = WalTailer::open(&wal_dir, start).map_err(|e| invalid("WAL", e.to_string()))?;
        let metrics = Metrics::new(registry, &p.display_url);
        let skipped = tailer.stats().skipped_segments;
        if skipped > 0 {
            tracing::error!(url = %p.display_url, from = %start, segments = skipped, "forward position is behind the WAL's checkpoint: those segments are gone for this upstream");
        }
        tracing::info!(url = %p.display_url, from = %tailer.position(), "forwarding from the WAL");
        let (stop, stop_rx) = watch::channel(false);
        let config_shards = config.shards.max(1);
        let shared = Arc::new(Tail {
            acked: std::sync::Mutex::new(tailer.position()),
            protocol: Negotiated::new(config.protocol),
            cfg: config,
            opts,
            display_url: p.display_url,
            url: p.url,
            client: p.client,
            downsampler: p.downsampler,
            metrics,
            db,
            wal_dir,
            hold,
            position_file,
            flushing: AtomicBool::new(false),
            lost_counted: AtomicU64::new(0),
            logs: (0..=config_shards).map(|_| std::sync::Mutex::new(SendLogs::default())).collect(),
        });
        let task = handle.spawn(run(shared.clone(), tailer, stop_rx));
        Ok(WalForwarder {
            shared,
            stop,
            task: std::sync::Mutex::new(Some(task)),
        })
    }

    /// The upstream URL as shown in metrics (password hidden).
    pub fn url(&self) -> &str {
        &self.shared.display_url
    }

    /// The position up to which the upstream acknowledged everything.
    pub fn acknowledged(&self) -> WalPosition {
        *self.shared.acked.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until everything logged before this call was acknowledged, for at most `deadline`.
    pub async fn flush(&self, deadline: Duration) -> Result<(), super::FlushError> {
        let target = self.shared.db.wal_end();
        let until = Instant::now() + deadline;
        self.shared.flushing.store(true, Ordering::SeqCst);
        let result = loop {
            if self.acknowledged() >= target {
                break Ok(());
            }
            if Instant::now() >= until {
                break Err(super::FlushError {
                    url: self.shared.display_url.clone(),
                    pending: self.shared.metrics.pending.get() as usize,
                    deadline,
                });
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        self.shared.flushing.store(false, Ordering::SeqCst);
        result
    }

    /// Flushes until `deadline`, sends what the downsampler holds, then stops. Nothing is
    /// lost if the deadline passes: the next start resumes at the acknowledged position.
    pub async fn shutdown(&self, deadline: Duration) -> Result<(), super::FlushError> {
        let started = Instant::now();
        let flushed = self.flush(deadline).await;
        let _ = self.stop.send(true);
        let task = self.task.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(task) = task {
            let _ = task.await;
        }
        if let Some(ds) = &self.shared.downsampler {
            let held = ds.lock().unwrap_or_else(|e| e.into_inner()).flush();
            if !held.is_empty() {
                let left = deadline.saturating_sub(started.elapsed());
                let (stop_tx, stop_rx) = watch::channel(false);
                let s = self.shared.clone();
                let last = s.logs.len() - 1;
                let send = tokio::spawn(async move { send_shard(&s, last, held, stop_rx).await });
                if tokio::time::timeout(left, send).await.is_err() {
                    let _ = stop_tx.send(true);
                    tracing::warn!(url = %self.shared.display_url, "samples held by the downsampler were not sent before the shutdown deadline");
                }
            }
        }
        flushed
    }
}

impl Drop for WalForwarder {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// Reads a position file: `Ok(None)` when there is none.
fn read_position(path: &Path) -> Result<Option<WalPosition>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    let mut parts = text.split_whitespace();
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("v1"), Some(seg), Some(off), None) => match (seg.parse(), off.parse()) {
            (Ok(segment), Ok(offset)) => Ok(Some(WalPosition { segment, offset })),
            _ => Err(format!("{text:?} does not hold two numbers")),
        },
        _ => Err(format!("{text:?} is not `v1 <segment> <offset>`")),
    }
}

/// Replaces the position file atomically and durably: write and fsync `position.tmp`,
/// rename it over `position`, fsync the directory so the rename itself survives a crash.
fn write_position(path: &Path, pos: WalPosition) -> std::io::Result<()> {
    use std::io::Write as _;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(format!("v1 {} {}\n", pos.segment, pos.offset).as_bytes())?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Log bytes from `from` to `to`, counting whole segments in between.
fn backlog_bytes(dir: &Path, from: WalPosition, to: WalPosition) -> u64 {
    if from >= to {
        return 0;
    }
    if from.segment == to.segment {
        return to.offset - from.offset;
    }
    let size = |i| std::fs::metadata(segment_path(dir, i)).map(|m| m.len()).unwrap_or(0);
    let mut total = size(from.segment).saturating_sub(from.offset) + to.offset;
    for i in from.segment + 1..to.segment {
        total += size(i);
    }
    total
}

async fn run(s: Arc<Tail>, mut tailer: WalTailer, mut stop: watch::Receiver<bool>) {
    let cfg = &s.cfg;
    let target = cfg.max_samples_per_send.saturating_mul(cfg.shards);
    let mut window: Vec<(SeriesRef, Labels, Sample)> = Vec::new();
    let mut due: Option<Instant> = None;
    let mut read_log = RateLimitedLog::new();
    loop {
        if *stop.borrow() {
            return;
        }
        let (caught_up, position, stats) = {
            let caught_up = if window.len() < target {
                match tailer.read(target - window.len(), &mut window) {
                    Ok(c) => c,
                    Err(e) => {
                        if let Some(suppressed) = read_log.should_log() {
                            tracing::error!(url = %s.display_url, suppressed, "reading the WAL failed, will retry: {e}");
                        }
                        true
                    }
                }
            } else {
                false
            };
            (caught_up, tailer.position(), tailer.stats())
        };
        s.metrics
            .dropped_unknown_series
            .add(stats.unknown_series_samples.saturating_sub(s.metrics.dropped_unknown_series.get()));
        let lost = s.hold.lost_samples();
        let counted = s.lost_counted.swap(lost, Ordering::Relaxed);
        s.metrics.dropped_backlog.add(lost.saturating_sub(counted));
        let unread = backlog_bytes(&s.wal_dir, position, s.db.wal_end());
        // Bytes per sample seen so far turn the unread bytes into an estimate in samples.
        let per_sample = if stats.samples > 0 {
            stats.bytes as f64 / stats.samples as f64
        } else {
            16.0
        };
        s.metrics.pending.set(window.len() as f64 + unread as f64 / per_sample.max(1.0));

        if window.is_empty() {
            due = None;
            s.metrics.lag.set(0.0);
            // Nothing to send, but the position may have moved past series records.
            commit(&s, position);
            tokio::select! {
                _ = tokio::time::sleep(s.opts.poll_interval) => {}
                _ = stop.changed() => {}
            }
            continue;
        }
        let flushing = s.flushing.load(Ordering::SeqCst);
        if caught_up && window.len() < cfg.max_samples_per_send && !flushing {
            let d = *due.get_or_insert_with(|| Instant::now() + cfg.batch_send_deadline);
            let now = Instant::now();
            if now < d {
                tokio::select! {
                    _ = tokio::time::sleep((d - now).min(s.opts.poll_interval)) => {}
                    _ = stop.changed() => {}
                }
                continue;
            }
        }
        due = None;
        let newest = window.iter().map(|(_, _, x)| x.t).max().unwrap_or(0);
        let batch = std::mem::take(&mut window);
        if !deliver(&s, batch, stop.clone()).await {
            return;
        }
        commit(&s, position);
        let lag = (now_ms() - newest) as f64 / 1000.0;
        s.metrics.lag.set(if caught_up { 0.0 } else { lag.max(0.0) });
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Records `pos` as acknowledged: position file, hold, and the in-memory copy.
fn commit(s: &Tail, pos: WalPosition) {
    let mut acked = s.acked.lock().unwrap_or_else(|e| e.into_inner());
    if *acked == pos {
        return;
    }
    if let Err(e) = write_position(&s.position_file, pos) {
        // The data went upstream; a stale file only means resending it after a restart.
        tracing::warn!(url = %s.display_url, file = %s.position_file.display(), "writing the forward position failed: {e}");
    }
    s.hold.set(pos.segment);
    *acked = pos;
}

/// Transforms a window and sends it over the shards; false when stopped before it was done.
async fn deliver(s: &Arc<Tail>, window: Vec<(SeriesRef, Labels, Sample)>, stop: watch::Receiver<bool>) -> bool {
    // Group by ref in first-seen order; a ref's samples stay in log order.
    let mut index: HashMap<SeriesRef, usize> = HashMap::new();
    let mut series: Vec<TimeSeries> = Vec::new();
    for (r, labels, sample) in window {
        let i = *index.entry(r).or_insert_with(|| {
            series.push(TimeSeries {
                labels,
                samples: Vec::new(),
            });
            series.len() - 1
        });
        series[i].samples.push(sample);
    }
    let (mut relabel_series, mut relabel_samples) = (0u64, 0u64);
    let mut out = Vec::with_capacity(series.len());
    for ts in series {
        let labels = with_external_labels(&ts.labels, &s.cfg.external_labels);
        match fedwatch_config::relabel::process(&labels, &s.cfg.write_relabel) {
            Some(labels) => out.push(TimeSeries {
                labels,
                samples: ts.samples,
            }),
            None => {
                relabel_series += 1;
                relabel_samples += ts.samples.len() as u64;
            }
        }
    }
    if relabel_series > 0 {
        s.metrics.relabel_dropped_series.add(relabel_series);
        s.metrics.dropped_relabel.add(relabel_samples);
    }
    if let Some(ds) = &s.downsampler {
        let mut ds = ds.lock().unwrap_or_else(|e| e.into_inner());
        let before = ds.discarded;
        out = ds.process(out);
        s.metrics.downsampled_away.add(ds.discarded - before);
    }
    let shards = s.cfg.shards.max(1);
    let mut parts: Vec<Vec<TimeSeries>> = (0..shards).map(|_| Vec::new()).collect();
    for ts in out {
        let mut h = std::hash::DefaultHasher::new();
        ts.labels.hash(&mut h);
        parts[(h.finish() % shards as u64) as usize].push(ts);
    }
    let mut set = tokio::task::JoinSet::new();
    for (shard, part) in parts.into_iter().enumerate().filter(|(_, p)| !p.is_empty()) {
        let (s, stop) = (s.clone(), stop.clone());
        set.spawn(async move { send_shard(&s, shard, part, stop).await });
    }
    let mut all = true;
    while let Some(done) = set.join_next().await {
        all &= done.unwrap_or(false);
    }
    all
}

/// Sends one shard's series in requests of at most `max_samples_per_send`, retrying each
/// until it is delivered or refused for good; false when stopped first.
async fn send_shard(s: &Tail, shard: usize, series: Vec<TimeSeries>, mut stop: watch::Receiver<bool>) -> bool {
    let slot = &s.logs[shard.min(s.logs.len() - 1)];
    let mut logs = std::mem::take(&mut *slot.lock().unwrap_or_else(|e| e.into_inner()));
    let to = Endpoint {
        client: &s.client,
        url: &s.url,
        display_url: &s.display_url,
        cfg: &s.cfg,
        metrics: &s.metrics,
        protocol: &s.protocol,
    };
    let mut done = true;
    for request in split(series, s.cfg.max_samples_per_send) {
        if !post_until_done(&to, &request, &mut logs, &mut stop).await {
            done = false;
            break;
        }
    }
    *slot.lock().unwrap_or_else(|e| e.into_inner()) = logs;
    done
}

/// Cuts series into requests of at most `max` samples, splitting long series in order.
fn split(series: Vec<TimeSeries>, max: usize) -> Vec<Vec<TimeSeries>> {
    let mut out = Vec::new();
    let mut cur: Vec<TimeSeries> = Vec::new();
    let mut room = max;
    for ts in series {
        let mut samples = &ts.samples[..];
        while !samples.is_empty() {
            let take = samples.len().min(room);
            cur.push(TimeSeries {
                labels: ts.labels.clone(),
                samples: samples[..take].to_vec(),
            });
            samples = &samples[take..];
            room -= take;
            if room == 0 {
                out.push(std::mem::take(&mut cur));
                room = max;
            }
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn position_files_round_trip_and_bad_ones_are_errors() {
        let dir = std::env::temp_dir().join(format!("fedwatch-fwd-pos-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let p = dir.join("position");
        assert_eq!(read_position(&p), Ok(None));
        let pos = WalPosition { segment: 7, offset: 1234 };
        write_position(&p, pos).expect("write");
        assert_eq!(read_position(&p), Ok(Some(pos)));
        for bad in ["", "v2 1 2", "v1 x 2", "v1 1 2 3"] {
            std::fs::write(&p, bad).expect("write");
            assert!(read_position(&p).is_err(), "{bad:?}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn position_dirs_differ_per_url_and_are_safe_names() {
        let root = Path::new("/s/forward");
        let a = position_dir(root, "http://central-a:9090/api/v1/write");
        let b = position_dir(root, "http://central-b:9090/api/v1/write");
        assert_ne!(a, b);
        let name = a.file_name().and_then(|n| n.to_str()).unwrap_or("");
        assert!(name.starts_with("central-a_9090-"), "{name}");
        assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)), "{name}");
    }

    #[test]
    fn split_keeps_order_and_bounds_requests() {
        let ts = |n: &str, k: i64| TimeSeries {
            labels: Labels::from_pairs([("__name__", n)]),
            samples: (0..k).map(|t| Sample { t, v: 0.0 }).collect(),
        };
        let got = split(vec![ts("a", 3), ts("b", 2)], 2);
        let shape: Vec<Vec<(String, usize)>> = got
            .iter()
            .map(|r| r.iter().map(|t| (t.labels.to_string(), t.samples.len())).collect())
            .collect();
        assert_eq!(
            shape,
            vec![
                vec![("a{}".to_string(), 2)],
                vec![("a{}".to_string(), 1), ("b{}".to_string(), 1)],
                vec![("b{}".to_string(), 1)]
            ]
        );
    }
}
