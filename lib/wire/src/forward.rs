//! The forwarder: takes series as an [`Appender`], queues them, and pushes them upstream
//! with remote_write 1.0 or 2.0 ([`WireProtocol`], Prometheus's `protobuf_message`).
//!
//! Design notes:
//! - **External labels** are added on the way in, Prometheus's way: a label is added only
//!   if the series does not already have that name (the series' own value wins).
//! - **write_relabel_configs** run after the external labels are added, as in Prometheus's
//!   `QueueManager.StoreSeries` (so rules can match on or drop external labels). Series they
//!   drop are counted in `fedwatch_forward_dropped_total{reason="write_relabel"}` (samples)
//!   and `fedwatch_forward_relabel_dropped_series_total` (series, once per batch).
//! - **Downsampling** (`resolution`, optional) runs last, on the labels as they go upstream;
//!   see `downsample.rs`. Samples it holds back are not in the queue: a full queue is
//!   checked before the downsampler sees a batch, so a refused batch leaves its state as it
//!   was, and [`Forwarder::shutdown`] releases what it holds before the final flush.
//! - **Queue**: an in-memory FIFO bounded in samples, behind the crate-private
//!   `ForwardQueue` trait (peek / ack). The WAL-backed queue of a later issue implements the
//!   same trait and replaces `MemQueue` in [`Forwarder::spawn`]; nothing else changes.
//! - **Full queue**: `append` refuses the whole batch at once with
//!   `AppendError::Storage("forward queue full ...")` and counts the samples in
//!   `fedwatch_forward_dropped_total{reason="queue_full"}`. It does not block: `append` is
//!   synchronous and is called from async handlers, where blocking stalls a runtime worker;
//!   an error instead travels back to whoever sent us the data (a receiver answers 500, so
//!   a remote_write sender keeps the data and retries), which is the back-pressure we want.
//! - **Sending**: one task, so per-series (indeed global) order is kept. It sends when
//!   `max_samples_per_send` samples are pending, or `batch_send_deadline` after it first
//!   saw data waiting. A batch leaves the queue only when the upstream answered 2xx, or
//!   answered a status that retrying cannot fix.
//! - **Retries**: connection errors, timeouts, 5xx and 429 are retried without limit (as
//!   Prometheus does: an upstream outage delays data, it does not drop it) with exponential
//!   backoff from `min_backoff` to `max_backoff`. On 429 and 503 a `Retry-After` header (in
//!   seconds or an HTTP date) replaces the backoff, capped at [`MAX_RETRY_AFTER`]. Other
//!   statuses (4xx, and 3xx since redirects are not followed) drop the batch, count it in
//!   `fedwatch_forward_samples_failed_total` and log at most every [`LOG_EVERY`].
//! - **Protocol**: 1.0 (`prometheus.WriteRequest`, version header `0.1.0`) by default; 2.0
//!   (`io.prometheus.write.v2.Request` with a symbols table, `Content-Type:
//!   application/x-protobuf;proto=io.prometheus.write.v2.Request`, version `2.0.0`) when
//!   configured. A 2.0 request answered 415 is sent again at once as 1.0 (the spec lets a
//!   sender retry a 415 with another content type), and the upstream stays on 1.0 until the
//!   process restarts. A 2xx answer to a 2.0 request carrying samples but no
//!   `X-Prometheus-Remote-Write-Samples-Written` header is treated the same way: 2.0
//!   receivers must send that header, and a 1.x receiver (Prometheus before 2.54) decodes a
//!   2.0 body as an empty 1.0 request and answers 204 having written nothing, so the batch
//!   is resent as 1.0 rather than lost.
//! - **Written counts** (2.0 only): on 2xx, a `*-Samples-Written` header lower than what was
//!   sent counts the difference in `fedwatch_forward_samples_not_written_total`; on a
//!   refusal (4xx), the header's count is counted as sent and the rest as failed, and a
//!   missing header counts as 0 written. 1.0 answers are all-or-nothing.
//! - **Error bodies** are logged as the upstream wrote them (the spec forbids interpreting
//!   them), cut at [`ERROR_BODY_LOGGED`] bytes; at most [`ERROR_BODY_READ`] bytes are read.
//! - **Shutdown**: [`Forwarder::flush`] sends everything queued without waiting for full
//!   batches; [`Forwarder::shutdown`] flushes until a deadline, then stops the task and
//!   counts what is left as `dropped_total{reason="shutdown"}`.

mod queue;
mod tailing;

pub use tailing::{WalForwarder, WalForwarderOptions, position_dir};

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use fedwatch_model::selfmetrics::{Counter, Gauge, Registry};
use std::sync::Mutex;

use fedwatch_config::RelabelConfig;
use fedwatch_model::{Labels, TimeSeries};
use fedwatch_tsdb::{AppendError, AppendStats, Appender};
use reqwest::StatusCode;
use reqwest::header::{self, HeaderMap, HeaderValue};
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use self::queue::{ForwardQueue, MemQueue};
use crate::codec::encode_write_request;
use crate::downsample::Downsampler;
use crate::receiver::SAMPLES_WRITTEN;
use crate::v2::{V2_PROTO_MESSAGE, encode_v2_request};

/// The longest `Retry-After` we honour; longer answers are treated as this.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(600);
/// At most one log line per kind of send failure in this interval.
pub const LOG_EVERY: Duration = Duration::from_secs(10);

/// How much of an error answer's body is logged.
pub const ERROR_BODY_LOGGED: usize = 4096;
/// How much of an error answer's body is read; the rest is not downloaded.
pub const ERROR_BODY_READ: usize = 64 * 1024;

/// The remote_write message sent upstream (Prometheus's `protobuf_message`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WireProtocol {
    /// `prometheus.WriteRequest`, remote_write 1.0.
    #[default]
    V1,
    /// `io.prometheus.write.v2.Request`, remote_write 2.0.
    V2,
}

impl WireProtocol {
    /// The `protobuf_message` name of 1.0.
    pub const V1_MESSAGE: &'static str = "prometheus.WriteRequest";

    /// Parses a `protobuf_message` value.
    pub fn from_message(name: &str) -> Result<WireProtocol, String> {
        match name {
            "" | Self::V1_MESSAGE => Ok(WireProtocol::V1),
            V2_PROTO_MESSAGE => Ok(WireProtocol::V2),
            other => Err(format!(
                "protobuf_message {other:?} is not supported; expected {:?} or {V2_PROTO_MESSAGE:?}",
                Self::V1_MESSAGE
            )),
        }
    }

    /// The `protobuf_message` name.
    pub fn message(self) -> &'static str {
        match self {
            WireProtocol::V1 => Self::V1_MESSAGE,
            WireProtocol::V2 => V2_PROTO_MESSAGE,
        }
    }

    /// The request's `Content-Type`.
    pub fn content_type(self) -> &'static str {
        match self {
            WireProtocol::V1 => "application/x-protobuf",
            WireProtocol::V2 => "application/x-protobuf;proto=io.prometheus.write.v2.Request",
        }
    }

    /// The `X-Prometheus-Remote-Write-Version` header.
    pub fn version(self) -> &'static str {
        match self {
            WireProtocol::V1 => "0.1.0",
            WireProtocol::V2 => "2.0.0",
        }
    }

    /// The snappy-compressed body for `series`.
    pub fn encode(self, series: &[TimeSeries]) -> Vec<u8> {
        match self {
            WireProtocol::V1 => encode_write_request(series),
            WireProtocol::V2 => encode_v2_request(series),
        }
    }
}

/// The protocol an upstream is sent now: the configured one until a 2.0 upstream turns out
/// to speak only 1.0.
struct Negotiated(AtomicU8);

impl Negotiated {
    fn new(p: WireProtocol) -> Self {
        Negotiated(AtomicU8::new(p as u8))
    }

    fn get(&self) -> WireProtocol {
        if self.0.load(Ordering::Relaxed) == WireProtocol::V2 as u8 {
            WireProtocol::V2
        } else {
            WireProtocol::V1
        }
    }

    /// Switches to 1.0; true for the caller that switched it.
    fn fall_back(&self) -> bool {
        self.0.swap(WireProtocol::V1 as u8, Ordering::Relaxed) == WireProtocol::V2 as u8
    }
}

/// Where and how to forward; the defaults are Prometheus's `queue_config` defaults.
#[derive(Clone, Debug)]
pub struct ForwarderConfig {
    /// The upstream remote_write endpoint, e.g. `http://cascade:9090/api/v1/write`.
    pub url: String,
    /// Labels added to every series that lacks them (the tier's `external_labels`).
    pub external_labels: Labels,
    /// The most samples in one request (2000).
    pub max_samples_per_send: usize,
    /// How long a partial batch may wait before it is sent (5 s).
    pub batch_send_deadline: Duration,
    /// The first retry delay (30 ms).
    pub min_backoff: Duration,
    /// The longest retry delay (5 s).
    pub max_backoff: Duration,
    /// The most samples held in the queue (100 000).
    pub capacity: usize,
    /// The time limit of one HTTP request (30 s).
    pub timeout: Duration,
    /// `write_relabel_configs`, applied after the external labels (none).
    pub write_relabel: Vec<RelabelConfig>,
    /// Downsample to this resolution before sending (`forward.resolution`); None sends raw.
    pub resolution: Option<Duration>,
    /// Parallel senders of a WAL-tailing forwarder; a series always goes through the same one (4).
    pub shards: usize,
    /// The message sent (1.0); see the module notes for the fall-back from 2.0.
    pub protocol: WireProtocol,
}

impl ForwarderConfig {
    /// A configuration for `url` with every other field at its default.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            external_labels: Labels::default(),
            max_samples_per_send: 2000,
            batch_send_deadline: Duration::from_secs(5),
            min_backoff: Duration::from_millis(30),
            max_backoff: Duration::from_secs(5),
            capacity: 100_000,
            timeout: Duration::from_secs(30),
            write_relabel: Vec::new(),
            resolution: None,
            shards: 4,
            protocol: WireProtocol::V1,
        }
    }
}

/// Why a forwarder could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ForwarderError {
    #[error("forwarder url {url:?}: {reason}; expected an absolute http:// or https:// URL")]
    InvalidUrl { url: String, reason: String },
    #[error("forwarder {url}: {field} {reason}")]
    InvalidConfig { url: String, field: &'static str, reason: String },
    #[error("forwarder {url}: building the HTTP client failed: {reason}")]
    Client { url: String, reason: String },
    #[error("forwarder {url}: spawn must be called inside a tokio runtime")]
    NoRuntime { url: String },
}

/// A flush or shutdown ended with samples still queued.
#[derive(Debug, thiserror::Error)]
#[error("forwarder {url}: {pending} samples still queued when the {deadline:?} deadline passed")]
pub struct FlushError {
    pub url: String,
    pub pending: usize,
    pub deadline: Duration,
}

/// A remote_write client with a queue; cheap to clone, every clone feeds the same queue.
/// The sender task stops when the last clone is dropped (queued samples are then counted
/// as dropped); call [`Forwarder::shutdown`] first to send them.
#[derive(Clone)]
pub struct Forwarder {
    shared: Arc<Shared>,
    _stop_on_drop: Arc<StopOnDrop>,
}

/// Stops the sender task when the last [`Forwarder`] handle goes; the task itself holds
/// only `Shared`, so it cannot keep itself alive.
struct StopOnDrop(Arc<Shared>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        let s = &self.0;
        if !s.stopped.swap(true, Ordering::SeqCst) {
            let pending = s.queue.pending_samples();
            s.metrics.dropped_shutdown.add(pending as u64);
            if pending > 0 {
                tracing::warn!(url = %s.display_url, pending, "forwarder dropped with samples still queued");
            }
        }
        let _ = s.stop.send(true);
    }
}

struct Shared {
    cfg: ForwarderConfig,
    /// The URL with any password removed, for metric labels and logs.
    display_url: String,
    url: reqwest::Url,
    client: reqwest::Client,
    queue: Box<dyn ForwardQueue>,
    protocol: Negotiated,
    downsampler: Option<Mutex<Downsampler>>,
    /// Wakes the sender when data arrives or a flush is asked for.
    wake: Notify,
    /// Woken after every ack, for flush.
    progress: Notify,
    flushers: AtomicUsize,
    stopped: AtomicBool,
    stop: watch::Sender<bool>,
    metrics: Metrics,
}

struct Metrics {
    sent: Counter,
    failed: Counter,
    retried: Counter,
    not_written: Counter,
    fallbacks: Counter,
    dropped_queue_full: Counter,
    dropped_shutdown: Counter,
    dropped_relabel: Counter,
    relabel_dropped_series: Counter,
    downsampled_away: Counter,
    dropped_backlog: Counter,
    dropped_unknown_series: Counter,
    pending: Gauge,
    lag: Gauge,
}

impl Metrics {
    fn new(r: &Registry, url: &str) -> Self {
        let dropped = |reason| {
            r.counter(
                "fedwatch_forward_dropped_total",
                "Samples dropped before they could be sent, by reason.",
                &[("url", url), ("reason", reason)],
            )
        };
        Self {
            sent: r.counter(
                "fedwatch_forward_samples_sent_total",
                "Samples acknowledged by the upstream.",
                &[("url", url)],
            ),
            failed: r.counter(
                "fedwatch_forward_samples_failed_total",
                "Samples given up because the upstream refused them with a non-retryable status.",
                &[("url", url)],
            ),
            retried: r.counter(
                "fedwatch_forward_samples_retried_total",
                "Samples in requests that failed with a retryable error and were sent again.",
                &[("url", url)],
            ),
            not_written: r.counter(
                "fedwatch_forward_samples_not_written_total",
                "Samples in requests the upstream accepted (2xx) while its X-Prometheus-Remote-Write-Samples-Written header said they were not written.",
                &[("url", url)],
            ),
            fallbacks: r.counter(
                "fedwatch_forward_protocol_fallbacks_total",
                "Times a remote_write 2.0 upstream was switched to 1.0 because it answered 415 or did not report written samples.",
                &[("url", url)],
            ),
            dropped_queue_full: dropped("queue_full"),
            dropped_shutdown: dropped("shutdown"),
            dropped_relabel: dropped("write_relabel"),
            dropped_backlog: dropped("backlog_exceeded"),
            dropped_unknown_series: dropped("unknown_series"),
            relabel_dropped_series: r.counter(
                "fedwatch_forward_relabel_dropped_series_total",
                "Series dropped by write_relabel_configs, counted once per batch they were in.",
                &[("url", url)],
            ),
            downsampled_away: r.counter(
                "fedwatch_forward_downsampled_away_samples_total",
                "Samples left out by downsampling to the forward resolution.",
                &[("url", url)],
            ),
            pending: r.gauge(
                "fedwatch_forward_pending_samples",
                "Samples queued and not yet acknowledged.",
                &[("url", url)],
            ),
            lag: r.gauge(
                "fedwatch_forward_lag_seconds",
                "How far behind now the newest sample the upstream acknowledged is, while samples wait; 0 when caught up.",
                &[("url", url)],
            ),
        }
    }
}

impl Forwarder {
    /// Validates `config`, registers the metrics and spawns the sender task on the current
    /// tokio runtime.
    pub fn spawn(config: ForwarderConfig, registry: &Registry) -> Result<Forwarder, ForwarderError> {
        let p = Prepared::new(&config)?;
        if config.capacity == 0 {
            return Err(ForwarderError::InvalidConfig {
                url: p.display_url,
                field: "capacity",
                reason: "must be at least 1".into(),
            });
        }
        let handle = tokio::runtime::Handle::try_current().map_err(|_| ForwarderError::NoRuntime {
            url: p.display_url.clone(),
        })?;
        let (stop, stop_rx) = watch::channel(false);
        let shared = Arc::new(Shared {
            queue: Box::new(MemQueue::new(config.capacity)),
            protocol: Negotiated::new(config.protocol),
            downsampler: p.downsampler,
            metrics: Metrics::new(registry, &p.display_url),
            display_url: p.display_url,
            url: p.url,
            client: p.client,
            cfg: config,
            wake: Notify::new(),
            progress: Notify::new(),
            flushers: AtomicUsize::new(0),
            stopped: AtomicBool::new(false),
            stop,
        });
        handle.spawn(run_sender(shared.clone(), stop_rx));
        Ok(Forwarder {
            _stop_on_drop: Arc::new(StopOnDrop(shared.clone())),
            shared,
        })
    }

    /// Samples queued and not yet acknowledged by the upstream.
    pub fn pending_samples(&self) -> usize {
        self.shared.queue.pending_samples()
    }

    /// The upstream URL as shown in metrics (password hidden).
    pub fn url(&self) -> &str {
        &self.shared.display_url
    }

    /// Sends everything queued now, without waiting for full batches; waits at most `deadline`.
    pub async fn flush(&self, deadline: Duration) -> Result<(), FlushError> {
        let s = &self.shared;
        s.flushers.fetch_add(1, Ordering::SeqCst);
        s.wake.notify_one();
        let until = Instant::now() + deadline;
        let result = loop {
            let progressed = s.progress.notified();
            let pending = s.queue.pending_samples();
            if pending == 0 {
                break Ok(());
            }
            if s.stopped.load(Ordering::SeqCst) {
                break Err(FlushError {
                    url: s.display_url.clone(),
                    pending,
                    deadline,
                });
            }
            tokio::select! {
                _ = progressed => {}
                _ = tokio::time::sleep_until(until) => {
                    break Err(FlushError { url: s.display_url.clone(), pending: s.queue.pending_samples(), deadline });
                }
            }
        };
        s.flushers.fetch_sub(1, Ordering::SeqCst);
        result
    }

    /// Flushes until `deadline`, then stops the sender; what is still queued is counted as
    /// dropped. Later appends are refused.
    pub async fn shutdown(&self, deadline: Duration) -> Result<(), FlushError> {
        let s = &self.shared;
        if let Some(ds) = &s.downsampler {
            let held = ds.lock().unwrap_or_else(|e| e.into_inner()).flush();
            let n: usize = held.iter().map(|ts| ts.samples.len()).sum();
            if let Err(full) = s.queue.push(held) {
                s.metrics.dropped_shutdown.add(n as u64);
                tracing::warn!(url = %s.display_url, held = n, pending = full.pending, "forward queue full at shutdown: samples held by the downsampler dropped");
            }
        }
        let flushed = self.flush(deadline).await;
        let already = s.stopped.swap(true, Ordering::SeqCst);
        let _ = s.stop.send(true);
        if let (Err(e), false) = (&flushed, already) {
            s.metrics.dropped_shutdown.add(e.pending as u64);
            tracing::warn!(url = %s.display_url, pending = e.pending, "forwarder stopped with samples still queued");
        }
        flushed
    }
}

impl Appender for Forwarder {
    fn append(&self, batch: &[TimeSeries]) -> Result<AppendStats, AppendError> {
        let s = &self.shared;
        if s.stopped.load(Ordering::SeqCst) {
            return Err(AppendError::Storage(format!("forwarder to {} is shut down", s.display_url)));
        }
        let external = &s.cfg.external_labels;
        let mut series = Vec::with_capacity(batch.len());
        let (mut relabel_series, mut relabel_samples) = (0u64, 0u64);
        for ts in batch.iter().filter(|ts| !ts.samples.is_empty()) {
            let labels = with_external_labels(&ts.labels, external);
            let labels = match fedwatch_config::relabel::process(&labels, &s.cfg.write_relabel) {
                Some(l) => l,
                None => {
                    relabel_series += 1;
                    relabel_samples += ts.samples.len() as u64;
                    continue;
                }
            };
            series.push(TimeSeries {
                labels,
                samples: ts.samples.clone(),
            });
        }
        if relabel_series > 0 {
            s.metrics.relabel_dropped_series.add(relabel_series);
            s.metrics.dropped_relabel.add(relabel_samples);
        }
        if let Some(ds) = &s.downsampler {
            let n_in: usize = series.iter().map(|ts| ts.samples.len()).sum();
            let pending = s.queue.pending_samples();
            // Refuse before the downsampler's state moves on, so a retried batch is not
            // mistaken for duplicates (see the module notes).
            if pending + n_in > s.cfg.capacity {
                s.metrics.dropped_queue_full.add(n_in as u64);
                return Err(AppendError::Storage(format!(
                    "forward queue full: {pending} of {} samples pending for {}, batch of {n_in} refused",
                    s.cfg.capacity, s.display_url
                )));
            }
            let mut ds = ds.lock().unwrap_or_else(|e| e.into_inner());
            let before = ds.discarded;
            series = ds.process(series);
            s.metrics.downsampled_away.add(ds.discarded - before);
        }
        let n: usize = series.iter().map(|ts| ts.samples.len()).sum();
        match s.queue.push(series) {
            Ok(()) => {
                s.metrics.pending.set(s.queue.pending_samples() as f64);
                s.wake.notify_one();
                Ok(AppendStats {
                    samples_appended: n as u64,
                    ..AppendStats::default()
                })
            }
            Err(full) => {
                s.metrics.dropped_queue_full.add(n as u64);
                Err(AppendError::Storage(format!(
                    "forward queue full: {} of {} samples pending for {}, batch of {n} refused",
                    full.pending, full.capacity, s.display_url
                )))
            }
        }
    }
}

/// What both forwarders build from a [`ForwarderConfig`]: the checked URL and the HTTP client.
struct Prepared {
    url: reqwest::Url,
    display_url: String,
    client: reqwest::Client,
    downsampler: Option<Mutex<Downsampler>>,
}

impl Prepared {
    fn new(config: &ForwarderConfig) -> Result<Prepared, ForwarderError> {
        let url = reqwest::Url::parse(&config.url).map_err(|e| ForwarderError::InvalidUrl {
            url: config.url.clone(),
            reason: e.to_string(),
        })?;
        if url.scheme() != "http" && url.scheme() != "https" {
            return Err(ForwarderError::InvalidUrl {
                url: config.url.clone(),
                reason: format!("scheme {:?}", url.scheme()),
            });
        }
        let mut shown = url.clone();
        if shown.password().is_some() {
            let _ = shown.set_password(Some("<secret>"));
        }
        let display_url = shown.to_string();
        let invalid = |field, reason: &str| ForwarderError::InvalidConfig {
            url: display_url.clone(),
            field,
            reason: reason.into(),
        };
        if config.shards == 0 {
            return Err(invalid("shards", "must be at least 1"));
        }
        if config.max_samples_per_send == 0 {
            return Err(invalid("max_samples_per_send", "must be at least 1"));
        }
        if config.min_backoff > config.max_backoff {
            return Err(invalid("min_backoff", "must not exceed max_backoff"));
        }
        if config.min_backoff.is_zero() {
            return Err(invalid("min_backoff", "must be more than 0"));
        }
        let downsampler = match config.resolution {
            Some(r) => Some(Mutex::new(Downsampler::new(r).map_err(|e| invalid("resolution", &e))?)),
            None => None,
        };
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("snappy"));
        let client = fedwatch_config::http::client_builder()
            .user_agent(concat!("fedwatch/", env!("CARGO_PKG_VERSION")))
            .default_headers(headers)
            .timeout(config.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| ForwarderError::Client {
                url: display_url.clone(),
                reason: e.to_string(),
            })?;

        Ok(Prepared {
            url,
            display_url,
            client,
            downsampler,
        })
    }
}

/// `labels` plus each external label whose name `labels` does not already have.
pub fn with_external_labels(labels: &Labels, external: &Labels) -> Labels {
    if external.is_empty() {
        return labels.clone();
    }
    let mut b = labels.builder();
    for l in external.iter() {
        if labels.get(&l.name).is_none() {
            b.set(l.name.clone(), l.value.clone());
        }
    }
    b.build()
}

/// What one HTTP attempt came to.
enum Attempt {
    /// 2xx; `written` is the `*-Samples-Written` header of a 2.0 answer, when present.
    Delivered {
        written: Option<u64>,
    },
    Retry {
        after: Option<Duration>,
        why: String,
    },
    /// Refused for good; `written` as for `Delivered`.
    GiveUp {
        why: String,
        written: Option<u64>,
    },
    /// The upstream does not take 2.0: 415, or a 2xx without the written header.
    NotV2 {
        why: String,
    },
}

/// Logs one line per [`LOG_EVERY`] at most, saying how many were held back.
#[derive(Default)]
struct RateLimitedLog {
    last: Option<Instant>,
    suppressed: u64,
}

impl RateLimitedLog {
    fn new() -> Self {
        Self { last: None, suppressed: 0 }
    }

    fn should_log(&mut self) -> Option<u64> {
        let now = Instant::now();
        match self.last {
            Some(t) if now.duration_since(t) < LOG_EVERY => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

/// Where one request goes and what counts it; both forwarders send through [`post_until_done`].
struct Endpoint<'a> {
    client: &'a reqwest::Client,
    url: &'a reqwest::Url,
    display_url: &'a str,
    cfg: &'a ForwarderConfig,
    metrics: &'a Metrics,
    protocol: &'a Negotiated,
}

/// A sender's rate-limited log lines: batches refused for good, and retries.
#[derive(Default)]
struct SendLogs {
    give_up: RateLimitedLog,
    retry: RateLimitedLog,
}

/// Posts `series` as one request until it is delivered or refused for good, backing off
/// exponentially (or as long as a 429/503's `Retry-After` asks); false when `stop` fired
/// first, with the request not delivered.
async fn post_until_done(to: &Endpoint<'_>, series: &[TimeSeries], logs: &mut SendLogs, stop: &mut watch::Receiver<bool>) -> bool {
    let n: usize = series.iter().map(|ts| ts.samples.len()).sum();
    let mut backoff = to.cfg.min_backoff;
    // Encoded once per protocol: retries resend the same bytes.
    let mut encoded: Option<(WireProtocol, Bytes)> = None;
    loop {
        let protocol = to.protocol.get();
        let body = match &encoded {
            Some((p, body)) if *p == protocol => body.clone(),
            _ => {
                let body = Bytes::from(protocol.encode(series));
                encoded = Some((protocol, body.clone()));
                body
            }
        };
        match send_once(to.client, to.url, body, protocol, n).await {
            Attempt::Delivered { written } => {
                let w = written.map_or(n, |w| (w as usize).min(n));
                to.metrics.sent.add(w as u64);
                if w < n {
                    to.metrics.not_written.add((n - w) as u64);
                    if let Some(suppressed) = logs.give_up.should_log() {
                        tracing::warn!(url = %to.display_url, samples = n, written = w, suppressed, "upstream accepted a batch but wrote only part of it");
                    }
                }
                return true;
            }
            Attempt::GiveUp { why, written } => {
                let w = written.map_or(0, |w| (w as usize).min(n));
                to.metrics.sent.add(w as u64);
                to.metrics.failed.add((n - w) as u64);
                if let Some(suppressed) = logs.give_up.should_log() {
                    tracing::warn!(url = %to.display_url, samples = n, written = w, suppressed, "upstream refused a batch, dropping it: {why}");
                }
                return true;
            }
            Attempt::NotV2 { why } => {
                if to.protocol.fall_back() {
                    to.metrics.fallbacks.inc();
                    tracing::warn!(url = %to.display_url, "upstream does not take remote_write 2.0 ({why}); sending 1.0 to it from now on");
                }
            }
            Attempt::Retry { after, why } => {
                if let Some(suppressed) = logs.retry.should_log() {
                    tracing::warn!(url = %to.display_url, samples = n, suppressed, "sending failed, will retry: {why}");
                }
                let wait = after.map(|a| a.min(MAX_RETRY_AFTER)).unwrap_or(backoff);
                backoff = next_backoff(backoff, to.cfg.max_backoff);
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = stop.wait_for(|v| *v) => return false,
                }
                to.metrics.retried.add(n as u64);
            }
        }
    }
}

/// The delay after `current`: doubled, at most `max`.
pub fn next_backoff(current: Duration, max: Duration) -> Duration {
    current.saturating_mul(2).min(max)
}

async fn run_sender(s: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let max = s.cfg.max_samples_per_send;
    let mut batch_due: Option<Instant> = None;
    let mut logs = SendLogs::default();
    loop {
        if *stop.borrow() {
            return;
        }
        let woken = s.wake.notified();
        let pending = s.queue.pending_samples();
        let flushing = s.flushers.load(Ordering::SeqCst) > 0;
        if pending == 0 {
            batch_due = None;
            tokio::select! {
                _ = woken => {}
                _ = stop.changed() => {}
            }
            continue;
        }
        if pending < max && !flushing {
            let due = *batch_due.get_or_insert_with(|| Instant::now() + s.cfg.batch_send_deadline);
            if Instant::now() < due {
                tokio::select! {
                    _ = woken => {}
                    _ = tokio::time::sleep_until(due) => {}
                    _ = stop.changed() => {}
                }
                continue;
            }
        }
        batch_due = None;

        let batch = s.queue.peek(max);
        let n: usize = batch.iter().map(|ts| ts.samples.len()).sum();
        let to = Endpoint {
            client: &s.client,
            url: &s.url,
            display_url: &s.display_url,
            cfg: &s.cfg,
            metrics: &s.metrics,
            protocol: &s.protocol,
        };
        if !post_until_done(&to, &batch, &mut logs, &mut stop).await {
            // Stopping abandons the batch; it is still queued and counted as dropped.
            return;
        }
        s.queue.ack(n);
        s.metrics.pending.set(s.queue.pending_samples() as f64);
        s.progress.notify_waiters();
    }
}

async fn send_once(client: &reqwest::Client, url: &reqwest::Url, body: Bytes, protocol: WireProtocol, samples: usize) -> Attempt {
    let request = client
        .post(url.clone())
        .header(header::CONTENT_TYPE, protocol.content_type())
        .header("X-Prometheus-Remote-Write-Version", protocol.version())
        .body(body);
    let mut resp = match request.send().await {
        Ok(r) => r,
        Err(e) => {
            return Attempt::Retry {
                after: None,
                why: error_chain(&e),
            };
        }
    };
    let status = resp.status();
    let written = match protocol {
        WireProtocol::V2 => resp
            .headers()
            .get(SAMPLES_WRITTEN)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok()),
        WireProtocol::V1 => None,
    };
    if status.is_success() {
        if protocol == WireProtocol::V2 && written.is_none() && samples > 0 {
            return Attempt::NotV2 {
                why: format!("{status} without an {SAMPLES_WRITTEN} header"),
            };
        }
        // The body of a success is not read: the spec says to ignore it.
        return Attempt::Delivered { written };
    }
    let retry_after = match status {
        StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => resp
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after),
        _ => None,
    };
    let retryable = status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS;
    let text = error_body(&mut resp).await;
    let why = format!("{status}: {text}");
    if status == StatusCode::UNSUPPORTED_MEDIA_TYPE && protocol == WireProtocol::V2 {
        Attempt::NotV2 { why }
    } else if retryable {
        Attempt::Retry { after: retry_after, why }
    } else {
        Attempt::GiveUp { why, written }
    }
}

/// An error answer's body as the upstream wrote it, cut at [`ERROR_BODY_LOGGED`] bytes; at
/// most [`ERROR_BODY_READ`] bytes are downloaded.
async fn error_body(resp: &mut reqwest::Response) -> String {
    let mut raw: Vec<u8> = Vec::new();
    let mut complete = false;
    while raw.len() < ERROR_BODY_READ {
        match resp.chunk().await {
            Ok(Some(chunk)) => raw.extend_from_slice(&chunk),
            Ok(None) => {
                complete = true;
                break;
            }
            Err(e) => {
                raw.extend_from_slice(format!(" (reading the body failed: {})", error_chain(&e)).as_bytes());
                complete = true;
                break;
            }
        }
    }
    let text = String::from_utf8_lossy(&raw);
    let text = text.trim_end();
    if text.len() <= ERROR_BODY_LOGGED {
        return text.to_string();
    }
    let mut end = ERROR_BODY_LOGGED;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let total = if complete {
        format!("{}", raw.len())
    } else {
        format!("more than {}", raw.len())
    };
    format!("{}... (cut at {end} of {total} bytes)", &text[..end])
}

/// `Retry-After` as delay-seconds or an HTTP date (RFC 9110 §10.2.3).
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO))
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
