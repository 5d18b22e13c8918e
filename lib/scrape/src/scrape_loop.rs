//! One target's loop: wait for its phase, then every interval fetch, parse, label, check
//! limits, append samples with stale markers for vanished series, and append the report.
//! Failures never end the loop; they report `up 0` and are logged at most once a minute.
//!
//! Lines are labeled through the loop's [`ScrapeCache`]: only lines not seen before build
//! labels; known ones append by the store's series ref (see `cache.rs`). The report series
//! keep their refs too.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fedwatch_config::ScrapeConfig;
use fedwatch_model::textparse::{Entry, Format, Parser, Series};
use fedwatch_model::{Labels, METRIC_NAME, stale_nan};
use fedwatch_tsdb::Appender;
use tokio::sync::oneshot;

use crate::cache::{Origin, Pending, ScrapeCache, Stored, Tracked, append_pending};
use crate::labels::{LabelLimits, exposed_labels, sample_labels};
use crate::manager::{TargetHealth, TargetStatus};
use crate::metrics::ScrapeMetrics;
use crate::{ACCEPT_HEADER, ScrapeTarget};

/// The report series every scrape appends, in Prometheus's order.
const REPORT_NAMES: [&str; 5] = [
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling",
    "scrape_series_added",
];

/// How often at most a failing target's reason is logged.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// How a loop is asked to end.
pub(crate) enum Stop {
    /// The target left discovery: mark its series and report series stale.
    Removed,
    /// The process is stopping: leave the data as it is.
    Shutdown,
    /// A reload replaces this loop: hand the last series to the successor, no markers.
    Handover(oneshot::Sender<Vec<Tracked>>),
}

/// Settings a pool passes to each of its loops.
#[derive(Clone)]
pub(crate) struct LoopContext {
    pub cfg: Arc<ScrapeConfig>,
    pub client: reqwest::Client,
    /// `Authorization` header value, if configured, or why it could not be built.
    pub authorization: Result<Option<String>, String>,
    pub appender: Arc<dyn Appender>,
    pub metrics: ScrapeMetrics,
    pub offset_seed: u64,
    /// Set by the pool when the job has more targets than `target_limit`: every scrape
    /// then fails with this reason, as in Prometheus. Shared by all loops of a pool.
    pub forced_error: Arc<Mutex<Option<String>>>,
}

/// Why a scrape failed: a short reason for the failure counter and the message.
struct Failure {
    reason: &'static str,
    message: String,
    /// Samples parsed before the failure (reported as `scrape_samples_scraped`).
    scraped: usize,
}

impl Failure {
    fn new(reason: &'static str, message: impl Into<String>) -> Self {
        Failure {
            reason,
            message: message.into(),
            scraped: 0,
        }
    }
}

pub(crate) struct ScrapeLoop {
    ctx: LoopContext,
    target: ScrapeTarget,
    url: String,
    /// `url` parsed once (international host names cost on every parse); `None` leaves the
    /// error to the request, which reports it as before.
    parsed_url: Option<reqwest::Url>,
    health: Arc<Mutex<TargetHealth>>,
    /// Lines seen, their stored series and what the last successful scrape had.
    cache: ScrapeCache,
    /// The report series, in [`REPORT_NAMES`] order.
    report: Vec<Stored>,
    /// Timestamp of the last append, so markers never land on or before it.
    last_ts: i64,
    last_warn: Option<Instant>,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The delay until this target's next phase: `(hash ^ seed) mod interval` after an
/// interval boundary, so a target keeps its slot across restarts (as Prometheus does).
pub(crate) fn start_offset(hash: u64, seed: u64, interval: Duration, now: SystemTime) -> Duration {
    let iv = interval.as_nanos().max(1) as u64;
    let now_ns = now.duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
    let base = iv - now_ns % iv;
    let mut next = base + (hash ^ seed) % iv;
    if next > iv {
        next -= iv;
    }
    Duration::from_nanos(next)
}

impl ScrapeLoop {
    pub(crate) fn new(ctx: LoopContext, target: ScrapeTarget, health: Arc<Mutex<TargetHealth>>, carried: Vec<Tracked>) -> Self {
        let url = target.url();
        let report = REPORT_NAMES
            .iter()
            .map(|n| Stored::Labels(Box::new(report_labels(&target, n))))
            .collect();
        ScrapeLoop {
            ctx,
            target,
            parsed_url: reqwest::Url::parse(&url).ok(),
            url,
            health,
            cache: ScrapeCache::new(carried),
            report,
            last_ts: 0,
            last_warn: None,
        }
    }

    /// Runs until `stop` fires (or its sender is dropped, treated as shutdown).
    pub(crate) async fn run(mut self, mut stop: oneshot::Receiver<Stop>) {
        let offset = start_offset(self.target.hash(), self.ctx.offset_seed, self.target.interval, SystemTime::now());
        let start = tokio::time::Instant::now() + offset;
        let mut ticker = tokio::time::interval_at(start, self.target.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                biased;
                how = &mut stop => {
                    self.finish(how.unwrap_or(Stop::Shutdown));
                    return;
                }
                _ = ticker.tick() => {
                    // A stop during a scrape cancels it: nothing is half-appended because
                    // appends happen after the last await point.
                    tokio::select! {
                        biased;
                        how = &mut stop => {
                            self.finish(how.unwrap_or(Stop::Shutdown));
                            return;
                        }
                        _ = self.scrape_once() => {}
                    }
                }
            }
        }
    }

    fn finish(&mut self, how: Stop) {
        match how {
            Stop::Shutdown => {}
            Stop::Handover(tx) => {
                let _ = tx.send(self.cache.take_tracked());
            }
            Stop::Removed => {
                let ts = now_ms().max(self.last_ts + 1);
                let mut series: Vec<Stored> = self.cache.take_tracked().into_iter().map(|t| t.stored).collect();
                series.append(&mut self.report);
                write_stale(&self.ctx, &self.target, series, ts);
            }
        }
    }

    async fn scrape_once(&mut self) {
        let job = self.ctx.cfg.job_name.clone();
        self.ctx.metrics.scrapes(&job).inc();
        let started = Instant::now();
        let ts = now_ms().max(self.last_ts + 1);
        let body = self.fetch().await;
        let result = body.and_then(|(body, content_type)| self.process(&body, &content_type, ts));
        let duration = started.elapsed();

        let (up, scraped, post_relabel, added) = match result {
            Ok(ok) => {
                self.set_health(ts, duration, None);
                (1.0, ok.scraped, ok.post_relabel, ok.added)
            }
            Err(f) => {
                self.ctx.metrics.failures(&job, f.reason).inc();
                // A failed scrape ends every series the target had, as in Prometheus.
                let gone = self.cache.fail();
                if !gone.is_empty()
                    && let Err(e) = append_markers(&self.ctx, gone, ts)
                {
                    tracing::warn!(job = %job, target = %self.url, error = %e, "appending stale markers failed");
                }
                let now = Instant::now();
                if self.last_warn.is_none_or(|t| now.duration_since(t) >= WARN_EVERY) {
                    self.last_warn = Some(now);
                    tracing::warn!(job = %job, target = %self.url, reason = f.reason, error = %f.message, "scrape failed");
                }
                self.set_health(ts, duration, Some(f.message));
                (0.0, f.scraped as f64, 0.0, 0.0)
            }
        };
        let values = [up, duration.as_secs_f64(), scraped, post_relabel, added];
        let mut report: Vec<Pending> = self
            .report
            .iter()
            .zip(values)
            .enumerate()
            .map(|(i, (stored, v))| Pending {
                stored: stored.clone(),
                t: ts,
                v,
                origin: Origin::Line { line: i, slot: 0 },
                skip: false,
            })
            .collect();
        let target = &self.target;
        let rebuilt = append_pending(&*self.ctx.appender, &mut report, |o| match o {
            Origin::Line { line, .. } => Some(report_labels(target, REPORT_NAMES[line])),
            Origin::Marker => None,
        });
        match rebuilt {
            Ok(_) => {
                for (slot, p) in self.report.iter_mut().zip(report) {
                    *slot = p.stored;
                }
            }
            Err(e) => tracing::warn!(job = %job, target = %self.url, error = %e, "appending the scrape report failed"),
        }
        self.last_ts = ts;
    }

    fn set_health(&self, ts: i64, duration: Duration, error: Option<String>) {
        let mut h = self.health.lock().unwrap_or_else(|e| e.into_inner());
        h.status = if error.is_none() { TargetStatus::Up } else { TargetStatus::Down };
        h.last_scrape_ms = ts;
        h.last_duration = duration;
        h.last_error = error;
    }

    /// GETs the target; the body and its Content-Type, or why not.
    async fn fetch(&self) -> Result<(bytes::Bytes, String), Failure> {
        if let Some(e) = self.ctx.forced_error.lock().unwrap_or_else(|e| e.into_inner()).clone() {
            return Err(Failure::new("target_limit", e));
        }
        let timeout = self.target.timeout;
        let client = &self.ctx.client;
        let req = match &self.parsed_url {
            Some(url) => client.get(url.clone()),
            None => client.get(&self.url),
        };
        let mut req = req
            .header("Accept", ACCEPT_HEADER)
            .header("X-Prometheus-Scrape-Timeout-Seconds", format_seconds(timeout))
            .timeout(timeout);
        match &self.ctx.authorization {
            Ok(Some(auth)) => req = req.header("Authorization", auth),
            Ok(None) => {}
            Err(e) => return Err(Failure::new("config", e.clone())),
        }
        let classify = |e: reqwest::Error, what: &'static str| {
            if e.is_timeout() {
                Failure::new(
                    "timeout",
                    format!("{what} {}: context deadline exceeded after {:?}", self.url, timeout),
                )
            } else if e.is_connect() {
                Failure::new("connect", format!("{what} {}: {}", self.url, error_chain(&e)))
            } else {
                Failure::new("read", format!("{what} {}: {}", self.url, error_chain(&e)))
            }
        };
        let resp = req.send().await.map_err(|e| classify(e, "GET"))?;
        let status = resp.status();
        if !status.is_success() {
            return Err(Failure::new("http_status", format!("server returned HTTP status {status}")));
        }
        let content_type = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let body = resp.bytes().await.map_err(|e| classify(e, "reading body of"))?;
        Ok((body, content_type))
    }

    /// Parses, labels and appends one body; the counts for the report.
    fn process(&mut self, body: &[u8], content_type: &str, ts: i64) -> Result<Processed, Failure> {
        // Prometheus 2.42 parses anything that is not OpenMetrics as the text format.
        let format = Format::from_content_type(content_type).unwrap_or(Format::Text);
        // The whole body parses before anything is labeled or appended: a parse error fails
        // the scrape with nothing stored.
        let mut parser = Parser::new(body, format);
        let mut lines: Vec<Series<'_>> = Vec::with_capacity(self.cache_hint());
        while let Some(entry) = parser.next_entry().map_err(|e| Failure::new("parse", e.message))? {
            if let Entry::Series(s) = entry {
                lines.push(s);
            }
        }
        let cfg = self.ctx.cfg.clone();
        let limits = LabelLimits {
            labels: cfg.label_limit,
            name_length: cfg.label_name_length_limit,
            value_length: cfg.label_value_length_limit,
        };
        let final_labels = |s: &Series<'_>| -> Result<Option<Labels>, String> {
            let exposed = exposed_labels(s)?;
            Ok(sample_labels(
                &exposed,
                &self.target.labels,
                cfg.honor_labels,
                &cfg.metric_relabel_configs,
            ))
        };
        let scraped = lines.len();
        self.cache.expect(scraped);
        let mut slots = Vec::with_capacity(lines.len());
        // Parse errors (a repeated label name) win over label limits wherever they are, as
        // when the whole body was labeled first; the first line over a limit names the error.
        let mut limit_error = None;
        for s in &lines {
            let key = self.cache.key(s.raw());
            if let Some(slot) = self.cache.get(key) {
                slots.push(slot);
                continue;
            }
            let labels = final_labels(s).map_err(|m| Failure::new("parse", m))?;
            if limit_error.is_some() {
                continue;
            }
            if let Some(l) = &labels
                && let Err(m) = limits.check(l)
            {
                limit_error = Some(m);
                continue;
            }
            slots.push(self.cache.insert(key, labels));
        }
        if let Some(m) = limit_error {
            return Err(Failure {
                scraped,
                ..Failure::new("label_limit", m)
            });
        }
        let post_relabel = slots.iter().filter(|&&slot| !self.cache.dropped(slot)).count();
        if cfg.sample_limit > 0 && post_relabel as u64 > cfg.sample_limit {
            return Err(Failure {
                scraped,
                ..Failure::new(
                    "sample_limit",
                    format!("sample limit exceeded ({post_relabel} > {})", cfg.sample_limit),
                )
            });
        }

        self.cache.begin();
        let mut pending = Vec::with_capacity(post_relabel + 8);
        for (line, (s, &slot)) in lines.iter().zip(&slots).enumerate() {
            let Some(stored) = self.cache.stored(slot) else { continue };
            // Series with their own timestamps are not tracked for staleness (as in Prometheus).
            let t = match s.timestamp_ms {
                Some(t) if cfg.honor_timestamps => t,
                _ => ts,
            };
            pending.push(Pending {
                stored: stored.clone(),
                t,
                v: s.value,
                origin: Origin::Line { line, slot },
                skip: false,
            });
            self.cache.see(slot, !(cfg.honor_timestamps && s.timestamp_ms.is_some()));
        }
        let added = self.cache.added(&slots);
        pending.extend(self.cache.gone().into_iter().map(|stored| marker(stored, ts)));
        let appended = append_pending(&*self.ctx.appender, &mut pending, |o| match o {
            Origin::Line { line, .. } => lines.get(line).and_then(|s| final_labels(s).ok().flatten()),
            Origin::Marker => None,
        })
        .map_err(|e| Failure::new("append", format!("appending samples: {e}")))?;
        for p in pending {
            if let Origin::Line { slot, .. } = p.origin {
                self.cache.set_stored(slot, p.stored);
            }
        }
        self.cache.commit();
        self.ctx.metrics.samples().add(appended.stats.samples_appended);
        self.ctx.metrics.markers_lost().add(appended.markers_lost);
        Ok(Processed {
            scraped: scraped as f64,
            post_relabel: post_relabel as f64,
            added: added as f64,
        })
    }

    /// Lines expected in the next body (the last one's count), to size buffers once.
    fn cache_hint(&self) -> usize {
        self.cache.len() + 16
    }
}

struct Processed {
    scraped: f64,
    post_relabel: f64,
    added: f64,
}

fn report_labels(target: &ScrapeTarget, name: &str) -> Labels {
    let mut b = target.labels.builder();
    b.set(METRIC_NAME, name);
    b.build()
}

/// Marks a removed target's last series and its report series stale now.
pub(crate) fn write_removed(ctx: &LoopContext, target: &ScrapeTarget, series: Vec<Tracked>) {
    let mut series: Vec<Stored> = series.into_iter().map(|t| t.stored).collect();
    series.extend(REPORT_NAMES.iter().map(|n| Stored::Labels(Box::new(report_labels(target, n)))));
    write_stale(ctx, target, series, now_ms());
}

fn write_stale(ctx: &LoopContext, target: &ScrapeTarget, series: Vec<Stored>, ts: i64) {
    if let Err(e) = append_markers(ctx, series, ts) {
        tracing::warn!(job = %ctx.cfg.job_name, target = %target.url(), error = %e, "appending stale markers for a removed target failed");
    }
}

/// Appends a stale marker for each series; those whose series the store no longer has are
/// skipped and counted.
fn append_markers(ctx: &LoopContext, series: Vec<Stored>, ts: i64) -> Result<(), fedwatch_tsdb::AppendError> {
    let mut pending: Vec<Pending> = series.into_iter().map(|s| marker(s, ts)).collect();
    let appended = append_pending(&*ctx.appender, &mut pending, |_| None)?;
    ctx.metrics.markers_lost().add(appended.markers_lost);
    Ok(())
}

fn marker(stored: Stored, ts: i64) -> Pending {
    Pending {
        stored,
        t: ts,
        v: stale_nan(),
        origin: Origin::Marker,
        skip: false,
    }
}

/// Seconds as Go's `FormatFloat(s, 'f', -1, 64)` prints them (`10`, `0.5`).
fn format_seconds(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{}", s as u64)
    } else {
        format!("{s}")
    }
}

/// The error and its causes, joined, since reqwest's top-level message hides the cause.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cur = c.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_are_stable_phases_inside_the_interval() {
        let iv = Duration::from_secs(10);
        let t0 = UNIX_EPOCH + Duration::from_secs(1_000_000);
        for hash in [0u64, 1, 7_777_777_777, u64::MAX] {
            let a = start_offset(hash, 42, iv, t0);
            let b = start_offset(hash, 42, iv, t0 + Duration::from_millis(3_300));
            assert!(a <= iv && b <= iv, "{a:?} {b:?}");
            // Both schedules land on the same phase of the interval.
            let phase = |t: SystemTime, off: Duration| (t + off).duration_since(UNIX_EPOCH).unwrap().as_nanos() % iv.as_nanos();
            assert_eq!(phase(t0, a), phase(t0 + Duration::from_millis(3_300), b), "hash {hash}");
        }
    }

    #[test]
    fn timeout_header_format() {
        assert_eq!(format_seconds(Duration::from_secs(10)), "10");
        assert_eq!(format_seconds(Duration::from_millis(500)), "0.5");
    }
}
