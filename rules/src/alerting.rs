//! Alerting rules and their state machine, following Prometheus:
//!
//! - a series returned by the expression starts an alert in `pending` (`active_at` = eval
//!   time); once it has been active for `for` it turns `firing` (`for: 0` fires at once);
//! - when the series is no longer returned, a pending alert is dropped and a firing one is
//!   resolved (`resolved_at`) and kept for [`RESOLVED_RETENTION_MS`] so the resolution is
//!   re-sent; with `keep_firing_for` a firing alert stays firing that long after it stops
//!   matching;
//! - alert labels = series labels minus `__name__`, plus the (templated) rule labels, plus
//!   `alertname`; annotations are templated (see [`crate::template`] for what is supported);
//! - every evaluation yields `ALERTS{alertname, alertstate, ...} 1` and
//!   `ALERTS_FOR_STATE{...} <activeAt seconds>` for pending and firing alerts; after a
//!   restart the rule manager calls [`AlertingRule::restore_for_state`] once, after the
//!   first evaluation, and those series are withheld until then.
//!
//! Times are milliseconds since the epoch and always passed in, so tests choose the clock.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use fedwatch_model::{Labels, Sample, TimeSeries};
use fedwatch_promql::{Engine, QueryError, QueryValue, Value};

use crate::template::{self, TemplateData};

/// How long a resolved alert is kept (and re-sent) after it resolves.
pub const RESOLVED_RETENTION_MS: i64 = 15 * 60 * 1000;

/// An alert's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AlertState {
    Inactive,
    Pending,
    Firing,
}

impl AlertState {
    /// The name Prometheus uses in `ALERTS{alertstate}` and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Inactive => "inactive",
            AlertState::Pending => "pending",
            AlertState::Firing => "firing",
        }
    }
}

/// One alert of a rule.
#[derive(Clone, Debug, PartialEq)]
pub struct Alert {
    pub state: AlertState,
    pub labels: Labels,
    pub annotations: BTreeMap<String, String>,
    /// The expression's value at the last evaluation that returned the series.
    pub value: f64,
    pub active_at: i64,
    pub fired_at: Option<i64>,
    pub resolved_at: Option<i64>,
    pub last_sent_at: Option<i64>,
    /// Until when the last notification said the alert is valid (its `endsAt`).
    pub valid_until: i64,
    pub keep_firing_since: Option<i64>,
}

impl Alert {
    fn needs_sending(&self, t: i64, resend_delay_ms: i64) -> bool {
        if self.state == AlertState::Pending {
            return false;
        }
        let Some(last) = self.last_sent_at else { return true };
        if self.resolved_at.is_some_and(|r| r > last) {
            return true;
        }
        last + resend_delay_ms < t
    }
}

/// An alerting rule with its active alerts.
#[derive(Clone, Debug)]
pub struct AlertingRule {
    name: String,
    expr: String,
    hold_ms: i64,
    keep_firing_for_ms: i64,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    external_labels: Labels,
    external_url: String,
    /// Keyed by the fingerprint of the alert's labels.
    active: HashMap<u64, Alert>,
    /// False between a restart and [`AlertingRule::restore_for_state`]: no `ALERTS` or
    /// `ALERTS_FOR_STATE` samples are written, so the fresh `activeAt` of the first
    /// evaluation cannot shadow the one stored before the restart.
    restored: bool,
}

impl AlertingRule {
    /// A rule named `name` alerting on `expr` after `hold` (`for`).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        name: impl Into<String>,
        expr: impl Into<String>,
        hold: Duration,
        keep_firing_for: Duration,
        labels: BTreeMap<String, String>,
        annotations: BTreeMap<String, String>,
        external_labels: Labels,
        external_url: impl Into<String>,
    ) -> Self {
        AlertingRule {
            name: name.into(),
            expr: expr.into(),
            hold_ms: hold.as_millis() as i64,
            keep_firing_for_ms: keep_firing_for.as_millis() as i64,
            labels,
            annotations,
            external_labels,
            external_url: external_url.into(),
            active: HashMap::new(),
            restored: true,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn expr(&self) -> &str {
        &self.expr
    }

    /// `for`, in milliseconds.
    pub fn hold_ms(&self) -> i64 {
        self.hold_ms
    }

    pub fn labels(&self) -> &BTreeMap<String, String> {
        &self.labels
    }

    /// `keep_firing_for`, in milliseconds.
    pub fn keep_firing_for_ms(&self) -> i64 {
        self.keep_firing_for_ms
    }

    pub fn annotations(&self) -> &BTreeMap<String, String> {
        &self.annotations
    }

    /// Takes over the alerts of the same rule from before a reload.
    pub fn take_state_from(&mut self, old: &mut AlertingRule) {
        self.active = std::mem::take(&mut old.active);
    }

    /// Evaluates at `t` (querying at `t - query_offset_ms`) and returns the `ALERTS` series.
    /// `limit` > 0 fails the evaluation (and clears the alerts) when more alerts result.
    pub fn eval(&mut self, engine: &Engine, t: i64, query_offset_ms: i64, limit: usize) -> Result<Vec<TimeSeries>, QueryError> {
        let result = match engine.instant_query(&self.expr, t - query_offset_ms)? {
            Value::Vector(v) => v.into_iter().map(|s| (s.labels, s.sample.v)).collect::<Vec<_>>(),
            Value::Scalar(s) => vec![(Labels::default(), s.v)],
            Value::String { .. } => return Err(QueryError::Execution("alerting rule expression returned a string".into())),
        };
        let mut seen: HashMap<u64, (Labels, BTreeMap<String, String>, f64)> = HashMap::new();
        // `query` in a template runs at the evaluation time, as in Prometheus.
        let query = |q: &str| template_query(engine, q, t);
        for (series, value) in result {
            // Templates see the result's labels as returned, `__name__` included.
            let data = TemplateData {
                labels: &series,
                value,
                external_labels: &self.external_labels,
                external_url: &self.external_url,
            };
            let expand = |text: &str| template::expand_alert(&self.name, text, &data, t, Some(&query));
            let mut b = series.without_metric_name().builder();
            for (k, v) in &self.labels {
                b.set(k.clone(), expand(v));
            }
            b.set("alertname", self.name.clone());
            let labels = b.build();
            let annotations = self.annotations.iter().map(|(k, v)| (k.clone(), expand(v))).collect();
            let fp = labels.fingerprint();
            if seen.insert(fp, (labels, annotations, value)).is_some() {
                return Err(QueryError::Execution(
                    "vector contains metrics with the same labelset after applying alert labels".into(),
                ));
            }
        }

        for (fp, (labels, annotations, value)) in seen.iter() {
            match self.active.get_mut(fp) {
                Some(a) if a.state != AlertState::Inactive => {
                    a.value = *value;
                    a.annotations = annotations.clone();
                }
                _ => {
                    self.active.insert(
                        *fp,
                        Alert {
                            state: AlertState::Pending,
                            labels: labels.clone(),
                            annotations: annotations.clone(),
                            value: *value,
                            active_at: t,
                            fired_at: None,
                            resolved_at: None,
                            last_sent_at: None,
                            valid_until: 0,
                            keep_firing_since: None,
                        },
                    );
                }
            }
        }

        let mut alerts_series = Vec::new();
        let keep_firing_for = self.keep_firing_for_ms;
        let hold = self.hold_ms;
        let restored = self.restored;
        let mut active_count = 0usize;
        self.active.retain(|fp, a| {
            if !seen.contains_key(fp) {
                let mut keep_firing = false;
                if a.state == AlertState::Firing && keep_firing_for > 0 {
                    let since = *a.keep_firing_since.get_or_insert(t);
                    keep_firing = t - since < keep_firing_for;
                }
                if !keep_firing {
                    if a.state == AlertState::Pending || a.resolved_at.is_some_and(|r| t - r > RESOLVED_RETENTION_MS) {
                        return false;
                    }
                    if a.state != AlertState::Inactive {
                        a.state = AlertState::Inactive;
                        a.resolved_at = Some(t);
                    }
                    return true;
                }
            } else if a.state != AlertState::Inactive {
                a.keep_firing_since = None;
            }
            if a.state == AlertState::Pending && t - a.active_at >= hold {
                a.state = AlertState::Firing;
                a.fired_at = Some(t);
            }
            active_count += 1;
            if restored {
                alerts_series.push(alerts_sample(a, t));
                alerts_series.push(for_state_sample(a, t));
            }
            true
        });

        if limit > 0 && active_count > limit {
            self.active.clear();
            return Err(QueryError::Execution(format!(
                "exceeded limit of {limit} with {active_count} alerts"
            )));
        }
        alerts_series.sort_by(|a, b| a.labels.cmp(&b.labels));
        Ok(alerts_series)
    }

    /// Marks the rule as waiting for [`AlertingRule::restore_for_state`] (set at startup).
    pub fn set_restored(&mut self, restored: bool) {
        self.restored = restored;
    }

    /// Prometheus's restore of `for` state after a restart, at `ts` (after the first
    /// evaluation): for each active alert, the last `ALERTS_FOR_STATE` sample within
    /// `outage_tolerance` gives the old `activeAt` and when the old process went down. An
    /// alert that was firing keeps its old `activeAt` (it fires again at the next
    /// evaluation); one that would fire within `grace` is pushed to fire `grace` after `ts`;
    /// otherwise the downtime is added to `activeAt`, so time spent down never counts as
    /// pending. Rules whose `for` is shorter than `grace` are not restored.
    pub fn restore_for_state(&mut self, engine: &Engine, ts: i64, outage_tolerance: Duration, grace: Duration) {
        self.restored = true;
        let grace_ms = grace.as_millis() as i64;
        if self.hold_ms < grace_ms || self.active.is_empty() {
            return;
        }
        let name = self.name.replace('\\', "\\\\").replace('"', "\\\"");
        let query = format!(
            "{ALERTS_FOR_STATE}{{alertname=\"{name}\"}}[{}]",
            fedwatch_config::format_duration(outage_tolerance)
        );
        // The range ends 1ms before `ts`, as Prometheus's querier does.
        let series = match engine.query(&query, ts - 1) {
            Ok(QueryValue::Matrix(m)) => m,
            Ok(_) => return,
            Err(e) => {
                tracing::warn!(alertname = %self.name, error = %e, "cannot read ALERTS_FOR_STATE to restore 'for' state");
                return;
            }
        };
        let last: HashMap<Labels, (i64, f64)> = series
            .into_iter()
            .filter_map(|s| {
                let last = s.samples.last()?;
                Some((s.labels.without_metric_name(), (last.t, last.v)))
            })
            .collect();
        for a in self.active.values_mut() {
            let Some(&(t, v)) = last.get(&a.labels) else { continue };
            if fedwatch_model::is_stale_nan(v) {
                continue;
            }
            let down_at = t.div_euclid(1000) * 1000;
            let old_active_at = v as i64 * 1000;
            let remaining = self.hold_ms - (down_at - old_active_at);
            a.active_at = if remaining <= 0 {
                old_active_at
            } else if remaining < grace_ms {
                ts + grace_ms - self.hold_ms
            } else {
                old_active_at + (ts - down_at)
            };
        }
    }

    /// Pending, firing and recently resolved alerts.
    pub fn alerts(&self) -> impl Iterator<Item = &Alert> {
        self.active.values()
    }

    /// Alerts due for (re)sending at `t`: firing ones every `resend_delay`, resolved ones when
    /// they resolve (and again every `resend_delay` while retained). Marks them sent and sets
    /// `valid_until` = t + 4 × max(resend_delay, interval), which becomes `endsAt` so an
    /// alert that is no longer re-sent resolves by itself.
    pub fn alerts_to_send(&mut self, t: i64, resend_delay: Duration, interval: Duration) -> Vec<Alert> {
        let resend_ms = resend_delay.as_millis() as i64;
        let delta = resend_ms.max(interval.as_millis() as i64);
        let mut out = Vec::new();
        for a in self.active.values_mut() {
            if a.needs_sending(t, resend_ms) {
                a.last_sent_at = Some(t);
                a.valid_until = t + 4 * delta;
                out.push(a.clone());
            }
        }
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        out
    }
}

/// A template's `query`: Prometheus's `EngineQueryFunc`, a scalar as a one-sample vector.
fn template_query(engine: &Engine, q: &str, t: i64) -> Result<Vec<template::QuerySample>, String> {
    let sample = |labels: &Labels, value: f64| template::QuerySample {
        labels: labels.iter().map(|l| (l.name.clone(), l.value.clone())).collect(),
        value,
    };
    match engine.instant_query(q, t).map_err(|e| e.to_string())? {
        Value::Vector(v) => Ok(v.iter().map(|s| sample(&s.labels, s.sample.v)).collect()),
        Value::Scalar(s) => Ok(vec![sample(&Labels::default(), s.v)]),
        Value::String { .. } => Err("rule result is not a vector or scalar".into()),
    }
}

/// `ALERTS_FOR_STATE{<alert labels>}` = `activeAt` in whole seconds, read back by
/// [`AlertingRule::restore_for_state`].
fn for_state_sample(a: &Alert, t: i64) -> TimeSeries {
    let mut b = a.labels.builder();
    b.set(fedwatch_model::METRIC_NAME, ALERTS_FOR_STATE);
    TimeSeries {
        labels: b.build(),
        samples: vec![Sample {
            t,
            v: a.active_at.div_euclid(1000) as f64,
        }],
    }
}

/// The series that keeps each active alert's `activeAt` across restarts.
pub const ALERTS_FOR_STATE: &str = "ALERTS_FOR_STATE";

fn alerts_sample(a: &Alert, t: i64) -> TimeSeries {
    let mut b = a.labels.builder();
    b.set(fedwatch_model::METRIC_NAME, "ALERTS");
    b.set("alertstate", a.state.as_str());
    TimeSeries {
        labels: b.build(),
        samples: vec![Sample { t, v: 1.0 }],
    }
}

#[cfg(test)]
mod tests;
