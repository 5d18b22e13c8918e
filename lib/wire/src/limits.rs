//! What a receiving tier accepts: per-request and per-series limits, label-name validity,
//! and an ingestion budget in samples per second.
//!
//! - Request limits (series, samples) refuse the whole request with 400: the sender must
//!   split its batches, and storing part of an oversize request would make the outcome
//!   depend on series order.
//! - Series limits (label count, name length, value length, name validity) refuse only the
//!   offending series: the rest is stored and the 400 names the refused ones, as for other
//!   invalid labels (see `receiver.rs`).
//! - The budget is a token bucket: `samples_per_second` refill, `burst` capacity. A request
//!   is admitted when the bucket holds its samples (or is full, so a request larger than the
//!   burst is not refused forever) and may take the bucket below zero; otherwise 429 with
//!   `Retry-After` saying when the bucket will hold enough.
//!
//! Every limit is 0 = unlimited, as in Prometheus's scrape config.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use fedwatch_model::{Labels, METRIC_NAME, TimeSeries};

use crate::clock::Clock;
use crate::codec::{InvalidSeries, LabelProblem, render_pairs};

/// Labels for an error message, bounded in size however large the label set.
fn render_labels(labels: &Labels) -> String {
    let size: usize = labels.iter().map(|l| l.name.len() + l.value.len()).sum();
    if size <= 1024 {
        return labels.to_string();
    }
    render_pairs(
        labels
            .iter()
            .map(|l| (l.name.as_str(), l.value.as_str()))
            .collect::<Vec<_>>()
            .into_iter(),
    )
}

/// Limits on what one request and one series may carry (0 = unlimited).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IngestLimits {
    /// Series in one request.
    pub max_series_per_request: usize,
    /// Samples in one request.
    pub max_samples_per_request: usize,
    /// Labels of one series, `__name__` included.
    pub max_labels_per_series: usize,
    /// Bytes in a label name.
    pub max_label_name_length: usize,
    /// Bytes in a label value.
    pub max_label_value_length: usize,
    /// Refuse label names outside `[a-zA-Z_][a-zA-Z0-9_]*` and metric names outside
    /// `[a-zA-Z_:][a-zA-Z0-9_:]*` (on by default).
    pub validate_names: bool,
}

impl Default for IngestLimits {
    fn default() -> Self {
        Self {
            max_series_per_request: 0,
            max_samples_per_request: 0,
            max_labels_per_series: 0,
            max_label_name_length: 0,
            max_label_value_length: 0,
            validate_names: true,
        }
    }
}

/// A request over a request-wide limit.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RequestLimitError {
    #[error("request has {count} series, more than max_series_per_request={limit} (first series {first}); send smaller batches")]
    TooManySeries { count: usize, limit: usize, first: String },
    #[error("request has {count} samples, more than max_samples_per_request={limit} (first series {first}); send smaller batches")]
    TooManySamples { count: usize, limit: usize, first: String },
}

/// True when `name` is a legacy Prometheus label name: `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn is_valid_label_name(name: &str) -> bool {
    let mut b = name.bytes();
    matches!(b.next(), Some(c) if c == b'_' || c.is_ascii_alphabetic()) && b.all(|c| c == b'_' || c.is_ascii_alphanumeric())
}

/// True when `name` is a legacy Prometheus metric name: `[a-zA-Z_:][a-zA-Z0-9_:]*`.
pub fn is_valid_metric_name(name: &str) -> bool {
    let mut b = name.bytes();
    matches!(b.next(), Some(c) if c == b'_' || c == b':' || c.is_ascii_alphabetic())
        && b.all(|c| c == b'_' || c == b':' || c.is_ascii_alphanumeric())
}

impl IngestLimits {
    /// Checks the request-wide limits.
    pub fn check_request(&self, series: &[TimeSeries], invalid: usize) -> Result<(), RequestLimitError> {
        let first = || series.first().map(|s| render_labels(&s.labels)).unwrap_or_else(|| "none".into());
        let count = series.len() + invalid;
        if self.max_series_per_request > 0 && count > self.max_series_per_request {
            return Err(RequestLimitError::TooManySeries {
                count,
                limit: self.max_series_per_request,
                first: first(),
            });
        }
        let samples: usize = series.iter().map(|s| s.samples.len()).sum();
        if self.max_samples_per_request > 0 && samples > self.max_samples_per_request {
            return Err(RequestLimitError::TooManySamples {
                count: samples,
                limit: self.max_samples_per_request,
                first: first(),
            });
        }
        Ok(())
    }

    /// What is wrong with one series' labels under these limits, if anything.
    pub fn check_series(&self, labels: &Labels) -> Option<LabelProblem> {
        if self.max_labels_per_series > 0 && labels.len() > self.max_labels_per_series {
            return Some(LabelProblem::TooManyLabels {
                count: labels.len(),
                limit: self.max_labels_per_series,
            });
        }
        for l in labels.iter() {
            if self.max_label_name_length > 0 && l.name.len() > self.max_label_name_length {
                return Some(LabelProblem::NameTooLong {
                    name: l.name.clone(),
                    limit: self.max_label_name_length,
                });
            }
            if self.max_label_value_length > 0 && l.value.len() > self.max_label_value_length {
                return Some(LabelProblem::ValueTooLong {
                    name: l.name.clone(),
                    length: l.value.len(),
                    limit: self.max_label_value_length,
                });
            }
            if self.validate_names {
                if !is_valid_label_name(&l.name) {
                    return Some(LabelProblem::InvalidLabelName(l.name.clone()));
                }
                if l.name == METRIC_NAME && !is_valid_metric_name(&l.value) {
                    return Some(LabelProblem::InvalidMetricName(l.value.clone()));
                }
            }
        }
        None
    }

    /// Splits `series` into those within the per-series limits and the refused ones.
    pub fn split_series(&self, series: Vec<TimeSeries>) -> (Vec<TimeSeries>, Vec<InvalidSeries>) {
        let mut ok = Vec::with_capacity(series.len());
        let mut bad = Vec::new();
        for (index, ts) in series.into_iter().enumerate() {
            match self.check_series(&ts.labels) {
                None => ok.push(ts),
                Some(problem) => bad.push(InvalidSeries {
                    index,
                    labels: render_labels(&ts.labels),
                    problem,
                    samples: ts.samples.len(),
                }),
            }
        }
        (ok, bad)
    }
}

/// An ingestion budget: a token bucket of samples shared by every request of a tier.
#[derive(Clone)]
pub struct IngestBudget {
    samples_per_second: f64,
    burst: f64,
    clock: Clock,
    state: Arc<Mutex<Bucket>>,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at_ms: i64,
}

impl std::fmt::Debug for IngestBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IngestBudget")
            .field("samples_per_second", &self.samples_per_second)
            .field("burst", &self.burst)
            .finish()
    }
}

/// A request the budget cannot take now.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error(
    "ingestion budget of {rate} samples/s (burst {burst}) exceeded: request of {samples} samples refused, retry after {}s",
    retry_after.as_secs()
)]
pub struct OverBudget {
    pub samples: u64,
    pub rate: f64,
    pub burst: f64,
    /// When the bucket will hold enough, rounded up to whole seconds (at least 1).
    pub retry_after: Duration,
}

impl IngestBudget {
    /// A full bucket of `burst` samples refilled at `samples_per_second` (both > 0).
    pub fn new(samples_per_second: f64, burst: f64, clock: Clock) -> Result<Self, String> {
        if !(samples_per_second > 0.0 && samples_per_second.is_finite()) {
            return Err(format!(
                "ingestion budget: samples_per_second must be a positive number, got {samples_per_second}"
            ));
        }
        if !(burst >= 1.0 && burst.is_finite()) {
            return Err(format!("ingestion budget: burst must be at least 1 sample, got {burst}"));
        }
        let now = clock();
        Ok(Self {
            samples_per_second,
            burst,
            clock,
            state: Arc::new(Mutex::new(Bucket { tokens: burst, at_ms: now })),
        })
    }

    /// Takes `samples` from the bucket, or says when to come back.
    pub fn take(&self, samples: u64) -> Result<(), OverBudget> {
        let now = (self.clock)();
        let mut b = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let elapsed = (now - b.at_ms).max(0) as f64 / 1000.0;
        b.tokens = (b.tokens + elapsed * self.samples_per_second).min(self.burst);
        b.at_ms = b.at_ms.max(now);
        let need = (samples as f64).min(self.burst);
        if b.tokens >= need {
            b.tokens -= samples as f64;
            return Ok(());
        }
        let wait = (need - b.tokens) / self.samples_per_second;
        Err(OverBudget {
            samples,
            rate: self.samples_per_second,
            burst: self.burst,
            retry_after: Duration::from_secs((wait.ceil() as u64).max(1)),
        })
    }
}

#[cfg(test)]
mod tests {
    use fedwatch_model::Sample;

    use super::*;
    use crate::clock::ManualClock;

    #[test]
    fn names() {
        let cases: &[(&str, bool, bool)] = &[
            // (name, valid label name, valid metric name)
            ("up", true, true),
            ("_x9", true, true),
            ("job:rate5m", false, true),
            (":x", false, true),
            ("9x", false, false),
            ("a-b", false, false),
            ("a.b", false, false),
            ("", false, false),
            ("é", false, false),
        ];
        for &(n, label, metric) in cases {
            assert_eq!(is_valid_label_name(n), label, "label name {n:?}");
            assert_eq!(is_valid_metric_name(n), metric, "metric name {n:?}");
        }
    }

    #[test]
    fn series_limits_table() {
        let limits = IngestLimits {
            max_labels_per_series: 3,
            max_label_name_length: 8,
            max_label_value_length: 4,
            ..IngestLimits::default()
        };
        /// (label pairs, the problem or None)
        type Case<'a> = (&'a [(&'a str, &'a str)], Option<&'a str>);
        let cases: &[Case] = &[
            (&[("__name__", "up"), ("job", "a")], None),
            (
                &[("__name__", "up"), ("a", "1"), ("b", "2"), ("c", "3")],
                Some("4 labels, more than the limit of 3"),
            ),
            (
                &[("__name__", "up"), ("abcdefghi", "1")],
                Some("label name \"abcdefghi\" is longer than the limit of 8"),
            ),
            (
                &[("__name__", "up"), ("job", "abcde")],
                Some("value of label \"job\" is 5 bytes, more than the limit of 4"),
            ),
            (
                &[("__name__", "up"), ("a-b", "1")],
                Some("invalid label name \"a-b\", expected [a-zA-Z_][a-zA-Z0-9_]*"),
            ),
            (
                &[("__name__", "a.b")],
                Some("invalid metric name \"a.b\", expected [a-zA-Z_:][a-zA-Z0-9_:]*"),
            ),
            (&[("__name__", "a:b")], None),
        ];
        for (pairs, want) in cases {
            let labels = Labels::from_pairs(pairs.iter().copied());
            let got = limits.check_series(&labels).map(|p| p.to_string());
            assert_eq!(got.as_deref(), *want, "{labels}");
        }
    }

    #[test]
    fn request_limits() {
        let ts = |n: usize| TimeSeries {
            labels: Labels::from_pairs([("__name__", "x")]),
            samples: vec![Sample { t: 0, v: 0.0 }; n],
        };
        let l = IngestLimits {
            max_series_per_request: 2,
            max_samples_per_request: 5,
            ..IngestLimits::default()
        };
        assert_eq!(l.check_request(&[ts(2), ts(3)], 0), Ok(()));
        let e = l.check_request(&[ts(1), ts(1)], 1).unwrap_err();
        assert!(
            e.to_string()
                .contains("3 series, more than max_series_per_request=2 (first series x{})"),
            "{e}"
        );
        let e = l.check_request(&[ts(3), ts(3)], 0).unwrap_err();
        assert!(e.to_string().contains("6 samples, more than max_samples_per_request=5"), "{e}");
    }

    #[test]
    fn budget_refills_and_says_when() {
        let clock = ManualClock::new(0);
        let b = IngestBudget::new(100.0, 200.0, clock.clock()).unwrap();
        // (advance ms, samples, expected retry-after seconds or None for admitted)
        let steps: &[(i64, u64, Option<u64>)] = &[
            (0, 150, None),       // 200 → 50
            (0, 100, Some(1)),    // needs 50 more: 0.5 s → 1
            (500, 100, None),     // 100 → 0
            (0, 1000, Some(2)),   // larger than the burst: waits for a full bucket, 2 s
            (2000, 1000, None),   // full: admitted, bucket at -800
            (1000, 100, Some(8)), // -700: needs 800 → 8 s
        ];
        for (i, &(adv, n, want)) in steps.iter().enumerate() {
            clock.advance(adv);
            let got = b.take(n).err().map(|e| e.retry_after.as_secs());
            assert_eq!(got, want, "step {i}");
        }
        assert!(IngestBudget::new(0.0, 1.0, clock.clock()).is_err());
        assert!(IngestBudget::new(1.0, 0.5, clock.clock()).is_err());
    }
}
