//! The rule manager: loads `rule_files` (globs), evaluates each group on its own interval
//! at aligned timestamps, appends recording-rule output and `ALERTS` through the
//! `Appender`, and sends alerts to an [`AlertSender`].
//!
//! Scheduling follows Prometheus: a group with interval `i` evaluates at times `t` with
//! `t mod i` equal to a per-group offset derived from a hash of its file and name, so
//! groups spread out and every evaluation timestamp is stable across restarts. Rules run in
//! file order; missed ticks are skipped, not replayed. Series a rule produced at the last
//! evaluation but not this one get a staleness marker.
//!
//! After each evaluation of an alerting rule, alerts due are sent: firing ones every
//! `resend_delay`, resolved ones when they resolve; `endsAt` of a firing alert is
//! now + 4 × max(resend_delay, interval), so an alert nobody re-sends resolves by itself.
//! External labels are added to sent alerts (not to `ALERTS`), as Prometheus does.
//!
//! `for` state survives restarts: the groups of the first load write no `ALERTS` /
//! `ALERTS_FOR_STATE` until, right after their first evaluation, each alerting rule reads
//! back `ALERTS_FOR_STATE` (see [`AlertingRule::restore_for_state`]).
//!
//! [`RuleManager::reload`] parses every file first and changes nothing when one is bad.
//! Alerting rules keep their alerts across a reload when a rule with the same name and
//! labels exists in the group with the same file and name (Prometheus's rule identity).

mod api;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fedwatch_model::selfmetrics::Registry;
use fedwatch_model::{Labels, Sample, TimeSeries, stale_nan};
use fedwatch_promql::{Engine, QueryError, Value};
use fedwatch_tsdb::Appender;
use tokio::task::JoinHandle;

use crate::alerting::{AlertState, AlertingRule};
use crate::error::Error;
use crate::notifier::{AlertSender, PostableAlert, now_ms};
use crate::rulefile::{self, GroupSpec, RuleKind, RuleSpec};

/// Settings from the server configuration.
#[derive(Clone, Debug)]
pub struct RuleManagerOptions {
    /// `global.evaluation_interval`, used by groups without `interval`.
    pub evaluation_interval: Duration,
    /// How often a firing alert is re-sent (`--rules.alert.resend-delay`, 1m).
    pub resend_delay: Duration,
    pub external_labels: Labels,
    /// Base of `generatorURL` and `$externalURL`.
    pub external_url: String,
    /// `--rules.alert.for-outage-tolerance` (1h): how old `ALERTS_FOR_STATE` may be to restore.
    pub outage_tolerance: Duration,
    /// `--rules.alert.for-grace-period` (10m): minimum time a restored alert waits to fire.
    pub for_grace_period: Duration,
    /// Restore `for` state on the first load (off for `test-rules`, as in promtool).
    pub restore_for_state: bool,
}

impl Default for RuleManagerOptions {
    fn default() -> Self {
        RuleManagerOptions {
            evaluation_interval: Duration::from_secs(60),
            resend_delay: Duration::from_secs(60),
            external_labels: Labels::default(),
            external_url: String::new(),
            outage_tolerance: Duration::from_secs(3600),
            for_grace_period: Duration::from_secs(600),
            restore_for_state: true,
        }
    }
}

/// A pending or firing alert, as `/api/v1/alerts` lists it.
#[derive(Clone, Debug, PartialEq)]
pub struct ActiveAlert {
    pub labels: Labels,
    pub annotations: BTreeMap<String, String>,
    pub state: AlertState,
    /// When the alert became pending, ms since the epoch.
    pub active_at: i64,
    pub value: f64,
    pub keep_firing_since: Option<i64>,
    pub rule: String,
    pub group: String,
    pub file: PathBuf,
}

enum Rule {
    Alerting(AlertingRule),
    Recording {
        name: String,
        expr: String,
        labels: BTreeMap<String, String>,
    },
}

/// The outcome of a rule's last evaluation.
#[derive(Clone, Debug, Default)]
struct RuleStatus {
    last_error: Option<String>,
    /// 0 = never evaluated.
    last_eval_ms: i64,
    eval_seconds: f64,
}

struct Group {
    /// Restore `for` state after the next evaluation (groups of the first load only).
    should_restore: bool,
    /// Parallel to `rules`.
    status: Vec<RuleStatus>,
    last_eval_ms: i64,
    eval_seconds: f64,
    file: PathBuf,
    name: String,
    interval: Duration,
    query_offset: Duration,
    limit: usize,
    rules: Vec<Rule>,
    /// Series each rule (by index) produced at the last evaluation.
    previous_series: HashMap<Labels, usize>,
}

/// Evaluates rule groups; cheap to clone.
#[derive(Clone)]
pub struct RuleManager {
    inner: Arc<Inner>,
}

struct Inner {
    opts: RuleManagerOptions,
    engine: Engine,
    appender: Option<Arc<dyn Appender>>,
    sender: Option<Arc<dyn AlertSender>>,
    registry: Registry,
    groups: Mutex<Vec<Arc<Mutex<Group>>>>,
    /// Set by the first successful load; later loads do not restore `for` state.
    loaded_once: std::sync::atomic::AtomicBool,
    tasks: Mutex<Option<Vec<JoinHandle<()>>>>,
}

impl RuleManager {
    /// A manager with no rules yet; call [`RuleManager::reload`] to load `rule_files`.
    pub fn new(
        opts: RuleManagerOptions,
        engine: Engine,
        appender: Option<Arc<dyn Appender>>,
        sender: Option<Arc<dyn AlertSender>>,
        registry: Registry,
    ) -> Self {
        RuleManager {
            inner: Arc::new(Inner {
                opts,
                engine,
                appender,
                sender,
                registry,
                groups: Mutex::new(Vec::new()),
                loaded_once: std::sync::atomic::AtomicBool::new(false),
                tasks: Mutex::new(None),
            }),
        }
    }

    /// Loads the files `patterns` match (globs, as `rule_files`) and swaps them in, keeping
    /// alert state of unchanged rules; any bad file rejects the whole reload. Returns
    /// warnings. When running, groups are rescheduled.
    pub fn reload(&self, patterns: &[String]) -> Result<Vec<String>, Error> {
        let mut files = Vec::new();
        for path in rulefile::expand_patterns(patterns)? {
            files.push(rulefile::load_file(&path)?);
        }
        let warnings: Vec<String> = files.iter().flat_map(|f| f.warnings.clone()).collect();
        for w in &warnings {
            tracing::warn!("{w}");
        }
        let opts = &self.inner.opts;
        let mut new_groups: Vec<Group> = files
            .iter()
            .flat_map(|f| f.groups.iter().map(move |g| self.build_group(&f.path, g, opts)))
            .collect();

        // Prometheus restores `for` state for the groups of the first load after startup.
        if !self.inner.loaded_once.swap(true, std::sync::atomic::Ordering::SeqCst) && self.inner.opts.restore_for_state {
            for g in new_groups.iter_mut() {
                g.should_restore = true;
                for r in g.rules.iter_mut() {
                    if let Rule::Alerting(ar) = r {
                        ar.set_restored(false);
                    }
                }
            }
        }
        let old_groups = std::mem::take(&mut *self.inner.groups.lock().unwrap_or_else(|e| e.into_inner()));
        let mut old_by_key: HashMap<(PathBuf, String), Arc<Mutex<Group>>> = HashMap::new();
        for g in old_groups {
            let key = {
                let g = g.lock().unwrap_or_else(|e| e.into_inner());
                (g.file.clone(), g.name.clone())
            };
            old_by_key.insert(key, g);
        }
        for new in new_groups.iter_mut() {
            if let Some(old) = old_by_key.remove(&(new.file.clone(), new.name.clone())) {
                let mut old = old.lock().unwrap_or_else(|e| e.into_inner());
                new.previous_series = std::mem::take(&mut old.previous_series);
                for rule in new.rules.iter_mut() {
                    let Rule::Alerting(ar) = rule else { continue };
                    let same = old.rules.iter_mut().find_map(|r| match r {
                        Rule::Alerting(o) if o.name() == ar.name() && o.labels() == ar.labels() => Some(o),
                        _ => None,
                    });
                    if let Some(o) = same {
                        ar.take_state_from(o);
                    }
                }
            }
        }
        // Groups that went away: their series end now.
        let now = now_ms();
        for (_, old) in old_by_key {
            let old = old.lock().unwrap_or_else(|e| e.into_inner());
            self.append_stale(old.previous_series.keys(), now);
        }
        let groups: Vec<_> = new_groups.into_iter().map(|g| Arc::new(Mutex::new(g))).collect();
        *self.inner.groups.lock().unwrap_or_else(|e| e.into_inner()) = groups;
        let running = self.inner.tasks.lock().unwrap_or_else(|e| e.into_inner()).is_some();
        if running {
            self.start();
        }
        Ok(warnings)
    }

    fn build_group(&self, file: &std::path::Path, spec: &GroupSpec, opts: &RuleManagerOptions) -> Group {
        let rules = spec.rules.iter().map(|r| self.build_rule(r, opts)).collect();
        Group {
            file: file.to_path_buf(),
            name: spec.name.clone(),
            interval: spec.interval.unwrap_or(opts.evaluation_interval),
            query_offset: spec.query_offset.unwrap_or(Duration::ZERO),
            limit: spec.limit,
            should_restore: false,
            status: vec![RuleStatus::default(); spec.rules.len()],
            last_eval_ms: 0,
            eval_seconds: 0.0,
            rules,
            previous_series: HashMap::new(),
        }
    }

    fn build_rule(&self, r: &RuleSpec, opts: &RuleManagerOptions) -> Rule {
        match &r.kind {
            RuleKind::Alert(name) => Rule::Alerting(AlertingRule::new(
                name.clone(),
                r.expr.clone(),
                r.for_,
                r.keep_firing_for,
                r.labels.clone(),
                r.annotations.clone(),
                opts.external_labels.clone(),
                opts.external_url.clone(),
            )),
            RuleKind::Record(name) => Rule::Recording {
                name: name.clone(),
                expr: r.expr.clone(),
                labels: r.labels.clone(),
            },
        }
    }

    /// Starts (or restarts) one tokio task per group on the current runtime.
    pub fn start(&self) {
        let mut tasks = self.inner.tasks.lock().unwrap_or_else(|e| e.into_inner());
        for t in tasks.take().into_iter().flatten() {
            t.abort();
        }
        let groups = self.inner.groups.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let handles = groups
            .into_iter()
            .map(|g| {
                let this = self.clone();
                tokio::spawn(async move { this.run_group(g).await })
            })
            .collect();
        *tasks = Some(handles);
    }

    /// Stops evaluating; loaded rules and alert state stay.
    pub fn stop(&self) {
        let mut tasks = self.inner.tasks.lock().unwrap_or_else(|e| e.into_inner());
        for t in tasks.take().into_iter().flatten() {
            t.abort();
        }
    }

    async fn run_group(self, group: Arc<Mutex<Group>>) {
        let (interval, offset) = {
            let g = group.lock().unwrap_or_else(|e| e.into_inner());
            let interval = (g.interval.as_millis() as i64).max(1);
            (interval, group_offset(&g, interval))
        };
        loop {
            let now = now_ms();
            let next = next_eval(now, interval, offset);
            tokio::time::sleep(Duration::from_millis((next - now).max(0) as u64)).await;
            let this = self.clone();
            let g = group.clone();
            let _ = tokio::task::spawn_blocking(move || {
                let mut g = g.lock().unwrap_or_else(|e| e.into_inner());
                this.eval_group(&mut g, next);
            })
            .await;
        }
    }

    /// Evaluates every group once at `t_ms`, as its scheduled run would; for tests and
    /// `test-rules`.
    pub fn eval_all_at(&self, t_ms: i64) {
        let groups = self.inner.groups.lock().unwrap_or_else(|e| e.into_inner()).clone();
        for g in groups {
            let mut g = g.lock().unwrap_or_else(|e| e.into_inner());
            self.eval_group(&mut g, t_ms);
        }
    }

    fn eval_group(&self, g: &mut Group, t: i64) {
        let inner = &self.inner;
        let group_label = [("rule_group", g.name.as_str())];
        let offset = g.query_offset.as_millis() as i64;
        let mut current: HashMap<Labels, usize> = HashMap::new();
        let mut succeeded: HashSet<usize> = HashSet::new();
        let mut to_send = Vec::new();
        let group_started = std::time::Instant::now();
        for (i, rule) in g.rules.iter_mut().enumerate() {
            let started = std::time::Instant::now();
            inner
                .registry
                .counter("fedwatch_rule_evaluations_total", "Rule evaluations.", &group_label)
                .inc();
            let result = match rule {
                Rule::Alerting(ar) => {
                    let r = ar.eval(&inner.engine, t, offset, g.limit);
                    for a in ar.alerts_to_send(t, inner.opts.resend_delay, g.interval) {
                        to_send.push(self.postable(ar.expr(), &a));
                    }
                    r
                }
                Rule::Recording { name, expr, labels } => record(&inner.engine, name, expr, labels, t, offset, g.limit),
            };
            if let Some(st) = g.status.get_mut(i) {
                st.last_eval_ms = t;
                st.eval_seconds = started.elapsed().as_secs_f64();
                st.last_error = result.as_ref().err().map(|e| e.to_string());
            }
            match result {
                Ok(series) => {
                    // Appended at once, so later rules of the group see this rule's output at
                    // the same timestamp (Prometheus commits per rule; the alert-generator
                    // spec requires it).
                    if let Some(app) = &inner.appender
                        && !series.is_empty()
                        && let Err(e) = app.append(&series)
                    {
                        tracing::warn!(group = %g.name, error = %e, "appending rule results failed");
                    }
                    let produced: HashSet<&Labels> = series.iter().map(|s| &s.labels).collect();
                    // This rule's series that ended get their staleness marker now too, so a
                    // later rule reading them (e.g. `ALERTS`) sees them end in this evaluation.
                    let ended: Vec<&Labels> = g
                        .previous_series
                        .iter()
                        .filter(|(l, r)| **r == i && !produced.contains(l))
                        .map(|(l, _)| l)
                        .collect();
                    self.append_stale(ended.into_iter(), t);
                    current.extend(series.into_iter().map(|s| (s.labels, i)));
                    succeeded.insert(i);
                }
                Err(e) => {
                    inner
                        .registry
                        .counter(
                            "fedwatch_rule_evaluation_failures_total",
                            "Rule evaluations that failed.",
                            &group_label,
                        )
                        .inc();
                    tracing::warn!(group = %g.name, file = %g.file.display(), error = %e, "rule evaluation failed");
                }
            }
        }
        g.last_eval_ms = t;
        g.eval_seconds = group_started.elapsed().as_secs_f64();
        if g.should_restore {
            // After the first evaluation, as Prometheus does, so recording rules have run.
            g.should_restore = false;
            for rule in g.rules.iter_mut() {
                if let Rule::Alerting(ar) = rule {
                    ar.restore_for_state(&inner.engine, t, inner.opts.outage_tolerance, inner.opts.for_grace_period);
                }
            }
        }
        // Series of rules that failed this time (or moved in a reload) end here.
        let gone: Vec<Labels> = g
            .previous_series
            .iter()
            .filter(|(l, r)| !current.contains_key(*l) && !succeeded.contains(*r))
            .map(|(l, _)| l.clone())
            .collect();
        self.append_stale(gone.iter(), t);
        g.previous_series = current;
        inner
            .registry
            .gauge(
                "fedwatch_rule_group_last_evaluation_timestamp_seconds",
                "When the group was last evaluated.",
                &group_label,
            )
            .set(t as f64 / 1000.0);
        if !to_send.is_empty()
            && let Some(sender) = &inner.sender
        {
            sender.send(to_send, t);
        }
    }

    fn append_stale<'a>(&self, series: impl Iterator<Item = &'a Labels>, t: i64) {
        let Some(app) = &self.inner.appender else { return };
        let batch: Vec<TimeSeries> = series
            .map(|l| TimeSeries {
                labels: l.clone(),
                samples: vec![Sample { t, v: stale_nan() }],
            })
            .collect();
        if !batch.is_empty()
            && let Err(e) = app.append(&batch)
        {
            tracing::warn!(error = %e, "appending staleness markers failed");
        }
    }

    fn postable(&self, expr: &str, a: &crate::alerting::Alert) -> PostableAlert {
        let mut b = a.labels.builder();
        for l in self.inner.opts.external_labels.iter() {
            if a.labels.get(&l.name).is_none() {
                b.set(l.name.clone(), l.value.clone());
            }
        }
        PostableAlert {
            labels: b.build(),
            annotations: a.annotations.clone(),
            starts_at: a.fired_at.unwrap_or(a.active_at),
            ends_at: a.resolved_at.unwrap_or(a.valid_until),
            generator_url: generator_url(&self.inner.opts.external_url, expr),
        }
    }

    /// Pending and firing alerts of every group, for `/api/v1/alerts`.
    pub fn active_alerts(&self) -> Vec<ActiveAlert> {
        let groups = self.inner.groups.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let mut out = Vec::new();
        for g in groups {
            let g = g.lock().unwrap_or_else(|e| e.into_inner());
            for r in &g.rules {
                let Rule::Alerting(ar) = r else { continue };
                for a in ar.alerts().filter(|a| a.state != AlertState::Inactive) {
                    out.push(ActiveAlert {
                        labels: a.labels.clone(),
                        annotations: a.annotations.clone(),
                        state: a.state,
                        active_at: a.active_at,
                        value: a.value,
                        keep_firing_since: a.keep_firing_since,
                        rule: ar.name().to_string(),
                        group: g.name.clone(),
                        file: g.file.clone(),
                    });
                }
            }
        }
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        out
    }
}

fn record(
    engine: &Engine,
    name: &str,
    expr: &str,
    labels: &BTreeMap<String, String>,
    t: i64,
    offset: i64,
    limit: usize,
) -> Result<Vec<TimeSeries>, QueryError> {
    let samples = match engine.instant_query(expr, t - offset)? {
        Value::Vector(v) => v.into_iter().map(|s| (s.labels, s.sample.v)).collect(),
        Value::Scalar(s) => vec![(Labels::default(), s.v)],
        Value::String { .. } => return Err(QueryError::Execution("recording rule expression returned a string".into())),
    };
    let mut out: Vec<TimeSeries> = Vec::with_capacity(samples.len());
    let mut seen = HashSet::new();
    for (series, v) in samples {
        let mut b = series.builder();
        b.set(fedwatch_model::METRIC_NAME, name);
        for (k, val) in labels {
            b.set(k.clone(), val.clone());
        }
        let l = b.build();
        if !seen.insert(l.clone()) {
            return Err(QueryError::Execution(
                "vector contains metrics with the same labelset after applying rule labels".into(),
            ));
        }
        out.push(TimeSeries {
            labels: l,
            samples: vec![Sample { t, v }],
        });
    }
    if limit > 0 && out.len() > limit {
        return Err(QueryError::Execution(format!(
            "exceeded limit of {limit} with {} series",
            out.len()
        )));
    }
    Ok(out)
}

/// The phase of a group inside its interval, stable for the same file and name.
fn group_offset(g: &Group, interval_ms: i64) -> i64 {
    let key = format!("{};{}", g.file.display(), g.name);
    (xxhash_fingerprint(&key) % interval_ms as u64) as i64
}

fn xxhash_fingerprint(s: &str) -> u64 {
    Labels::from_pairs([("k", s)]).fingerprint()
}

/// The first evaluation time after `now` with `t mod interval == offset`.
fn next_eval(now: i64, interval: i64, offset: i64) -> i64 {
    now - (now - offset).rem_euclid(interval) + interval
}

/// `<external URL>/graph?g0.expr=<expr>&g0.tab=1`, as Prometheus links an alert to its query.
pub fn generator_url(external_url: &str, expr: &str) -> String {
    let mut q = String::with_capacity(expr.len() * 3);
    for b in expr.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => q.push(b as char),
            b' ' => q.push('+'),
            other => q.push_str(&format!("%{other:02X}")),
        }
    }
    format!("{}/graph?g0.expr={q}&g0.tab=1", external_url.trim_end_matches('/'))
}

#[cfg(test)]
mod tests;
