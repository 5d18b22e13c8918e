//! `test-rules`: promtool's rule unit-test format, evaluated on a [`MemStore`] with the real
//! [`Engine`] and [`RuleManager`].
//!
//! A test file names `rule_files` (relative to itself), an `evaluation_interval` (1m) and
//! `tests`; each test group loads `input_series` (series notation, see [`series`]) spaced
//! `interval` apart from `start_timestamp` (0), then evaluates every rule group at every
//! `evaluation_interval` step up to the largest `eval_time`, as promtool does. After the
//! evaluation at `ts`, each `alert_rule_test` whose `eval_time` falls in
//! `[ts, ts + evaluation_interval)` compares the firing alerts of that name (labels and
//! annotations) with `exp_alerts`; any rule evaluation error ends the group. Afterwards each
//! `promql_expr_test` runs its `expr` at `eval_time` and compares the samples, exactly or
//! (with `fuzzy_compare`) within one unit in the last place.
//!
//! Like promtool's defaults, the `@` modifier and negative offsets are rejected unless
//! enabled in [`TestOptions`]. Not supported: native-histogram input and expectations
//! (the group fails and says so), `group_eval_order` (groups run in file order), and
//! `--ignore-unknown-fields`.

pub mod series;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use fedwatch_model::selfmetrics::Registry;
use fedwatch_model::{Labels, Sample, TimeSeries};
use fedwatch_promql::{Engine, Value};
use fedwatch_tsdb::{Appender, MemStore};
use serde::Deserialize;

use crate::alerting::AlertState;
use crate::error::Error;
use crate::manager::{RuleManager, RuleManagerOptions};
use fedwatch_config::parse_duration;

/// Switches promtool takes on the command line.
#[derive(Clone, Debug, Default)]
pub struct TestOptions {
    /// Run only test groups whose `name` matches one of these regexes (`--run`); empty = all.
    pub run: Vec<String>,
    /// Allow `@` in rules and test expressions (`--enable-feature=promql-at-modifier`).
    pub enable_at_modifier: bool,
    /// Allow `offset -5m` (`--enable-feature=promql-negative-offset`).
    pub enable_negative_offset: bool,
}

/// The outcome of every file.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TestReport {
    pub files: Vec<FileReport>,
}

/// One test file: empty `failures` means it passed.
#[derive(Clone, Debug, PartialEq)]
pub struct FileReport {
    pub file: PathBuf,
    pub failures: Vec<String>,
}

impl TestReport {
    /// Whether every file passed (promtool's exit code 0).
    pub fn passed(&self) -> bool {
        self.files.iter().all(|f| f.failures.is_empty())
    }

    /// promtool-like text: `Unit Testing:  FILE` then `  SUCCESS` or `  FAILED:` and reasons.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for f in &self.files {
            out.push_str(&format!("Unit Testing:  {}\n", f.file.display()));
            if f.failures.is_empty() {
                out.push_str("  SUCCESS\n\n");
            } else {
                out.push_str("  FAILED:\n");
                for e in &f.failures {
                    out.push_str(&format!("{e}\n"));
                }
                out.push('\n');
            }
        }
        out
    }
}

/// Runs promtool-format rule unit tests in `files` with default options.
pub fn run_rule_tests(files: &[impl AsRef<Path>]) -> Result<TestReport, Error> {
    run_rule_tests_with(files, &TestOptions::default())
}

/// Runs promtool-format rule unit tests in `files`.
pub fn run_rule_tests_with(files: &[impl AsRef<Path>], opts: &TestOptions) -> Result<TestReport, Error> {
    let mut run = Vec::new();
    for r in &opts.run {
        run.push(regex::Regex::new(r).map_err(|e| Error::Pattern {
            pattern: r.clone(),
            reason: e.to_string(),
        })?);
    }
    let files = files
        .iter()
        .map(|f| FileReport {
            file: f.as_ref().to_path_buf(),
            failures: run_file(f.as_ref(), opts, &run),
        })
        .collect();
    Ok(TestReport { files })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    rule_files: Vec<String>,
    evaluation_interval: Option<String>,
    #[serde(default)]
    group_eval_order: Vec<String>,
    #[serde(default)]
    fuzzy_compare: bool,
    #[serde(default)]
    tests: Vec<RawGroup>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawGroup {
    name: Option<String>,
    interval: Option<String>,
    #[serde(default)]
    input_series: Vec<RawSeries>,
    start_timestamp: Option<String>,
    #[serde(default)]
    external_labels: BTreeMap<String, String>,
    external_url: Option<String>,
    #[serde(default)]
    alert_rule_test: Vec<RawAlertTest>,
    #[serde(default)]
    promql_expr_test: Vec<RawExprTest>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSeries {
    series: String,
    /// Text, not a YAML number: `0x10` is "0 ten times", not sixteen.
    values: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAlertTest {
    #[serde(default)]
    eval_time: String,
    alertname: String,
    #[serde(default)]
    exp_alerts: Vec<RawExpAlert>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawExpAlert {
    #[serde(default)]
    exp_labels: BTreeMap<String, String>,
    #[serde(default)]
    exp_annotations: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExprTest {
    expr: String,
    #[serde(default)]
    eval_time: String,
    #[serde(default)]
    exp_samples: Vec<RawExpSample>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExpSample {
    #[serde(default)]
    labels: Option<String>,
    value: Option<String>,
    histogram: Option<String>,
}

fn run_file(path: &Path, opts: &TestOptions, run: &[regex::Regex]) -> Vec<String> {
    let src = match std::fs::read_to_string(path) {
        Ok(s) => s,
        Err(e) => return vec![format!("  cannot read {}: {e}", path.display())],
    };
    let raw: RawFile = match crate::yaml::from_first_document(path, &src) {
        Ok((Some(r), _)) => r,
        Ok((None, _)) => return vec![format!("  {}: empty test file", path.display())],
        Err(e) => return vec![format!("  {e}")],
    };
    let eval_interval = match raw.evaluation_interval.as_deref().map(parse_duration).transpose() {
        Ok(d) => d.unwrap_or(Duration::from_secs(60)),
        Err(e) => return vec![format!("  evaluation_interval: {e}")],
    };
    let base = path.parent().unwrap_or(Path::new("."));
    let patterns: Vec<String> = raw
        .rule_files
        .iter()
        .map(|f| {
            if Path::new(f).is_absolute() {
                f.clone()
            } else {
                base.join(f).to_string_lossy().into_owned()
            }
        })
        .collect();
    // Rule files must load before any test runs (promtool fails the file otherwise).
    let files = match crate::rulefile::expand_patterns(&patterns) {
        Ok(f) => f,
        Err(e) => return vec![format!("  {e}")],
    };
    for f in &files {
        match crate::rulefile::load_file(f) {
            Ok(rf) => {
                for g in &rf.groups {
                    for r in &g.rules {
                        if let Err(e) = check_features(&r.expr, opts) {
                            return vec![format!("  {}: group {:?}: {e}", f.display(), g.name)];
                        }
                    }
                }
            }
            Err(e) => return vec![format!("  {e}")],
        }
    }
    let _ = &raw.group_eval_order;
    let ctx = FileCtx {
        patterns,
        eval_interval,
        fuzzy: raw.fuzzy_compare,
        opts,
    };
    let mut failures = Vec::new();
    for (i, g) in raw.tests.into_iter().enumerate() {
        let name = g.name.clone().unwrap_or_default();
        if !run.is_empty() && !run.iter().any(|r| r.is_match(&name)) {
            continue;
        }
        let errs = ctx.run_group(g);
        if !errs.is_empty() {
            let title = if name.is_empty() {
                format!("test group {i}")
            } else {
                format!("{name:?}")
            };
            failures.push(format!("    {title}:"));
            failures.extend(errs);
        }
    }
    failures
}

struct FileCtx<'a> {
    patterns: Vec<String>,
    eval_interval: Duration,
    fuzzy: bool,
    opts: &'a TestOptions,
}

impl FileCtx<'_> {
    fn run_group(&self, g: RawGroup) -> Vec<String> {
        let mut errs = Vec::new();
        let interval = match g.interval.as_deref().map(parse_duration).transpose() {
            Ok(d) => d.unwrap_or(self.eval_interval),
            Err(e) => return vec![format!("    interval: {e}")],
        };
        let mint = match start_timestamp(g.start_timestamp.as_deref()) {
            Ok(t) => t,
            Err(e) => return vec![format!("    start_timestamp: {e}")],
        };
        let store = Arc::new(MemStore::new());
        let step = interval.as_millis() as i64;
        for s in &g.input_series {
            let values = s.values.clone();
            let parsed = series::parse_series(&s.series).and_then(|labels| Ok((labels, series::expand_values(&values)?)));
            let (labels, values) = match parsed {
                Ok(p) => p,
                Err(e) => return vec![format!("    input_series {:?} {:?}: {e}", s.series, values)],
            };
            let samples: Vec<Sample> = values
                .into_iter()
                .enumerate()
                .filter_map(|(i, v)| {
                    v.map(|v| Sample {
                        t: mint + i as i64 * step,
                        v,
                    })
                })
                .collect();
            if samples.is_empty() {
                continue;
            }
            if let Err(e) = store.append(&[TimeSeries { labels, samples }]) {
                return vec![format!("    input_series {:?}: {e}", s.series)];
            }
        }

        let external_labels = Labels::from_pairs(g.external_labels.iter().map(|(k, v)| (k.clone(), v.clone())));
        let engine = Engine::new(store.clone());
        let manager = RuleManager::new(
            RuleManagerOptions {
                evaluation_interval: self.eval_interval,
                external_labels,
                external_url: g.external_url.clone().unwrap_or_default(),
                restore_for_state: false,
                ..RuleManagerOptions::default()
            },
            engine.clone(),
            Some(store.clone()),
            None,
            Registry::new(),
        );
        if let Err(e) = manager.reload(&self.patterns) {
            return vec![format!("    {e}")];
        }

        let mut alert_tests: Vec<(i64, &RawAlertTest)> = Vec::new();
        for t in &g.alert_rule_test {
            match eval_time(&t.eval_time) {
                Ok(d) => alert_tests.push((d, t)),
                Err(e) => errs.push(format!("    alertname: {}, eval_time: {e}", t.alertname)),
            }
        }
        let mut expr_tests: Vec<(i64, &RawExprTest)> = Vec::new();
        for t in &g.promql_expr_test {
            match eval_time(&t.eval_time) {
                Ok(d) => expr_tests.push((d, t)),
                Err(e) => errs.push(format!("    expr: {:?}, eval_time: {e}", t.expr)),
            }
        }
        if !errs.is_empty() {
            return errs;
        }
        alert_tests.sort_by_key(|(d, _)| *d);
        let max_eval = alert_tests
            .iter()
            .map(|x| x.0)
            .chain(expr_tests.iter().map(|x| x.0))
            .max()
            .unwrap_or(0);
        let eval_step = (self.eval_interval.as_millis() as i64).max(1);

        let mut next_alert = 0;
        let mut ts = mint;
        while ts <= mint + max_eval {
            manager.eval_all_at(ts);
            let eval_errs: Vec<String> = manager
                .rule_groups()
                .into_iter()
                .flat_map(|grp| grp.rules)
                .filter(|r| !r.last_error.is_empty())
                .map(|r| format!("    rule: {}, time: {}, err: {}", r.name(), fmt_ms(ts - mint), r.last_error))
                .collect();
            if !eval_errs.is_empty() {
                errs.extend(eval_errs);
                return errs;
            }
            while next_alert < alert_tests.len() && alert_tests[next_alert].0 < ts - mint + eval_step {
                let (at, t) = alert_tests[next_alert];
                next_alert += 1;
                if at < ts - mint {
                    continue;
                }
                let mut got: Vec<(Labels, Labels)> = manager
                    .active_alerts()
                    .into_iter()
                    .filter(|a| a.rule == t.alertname && a.state == AlertState::Firing)
                    .map(|a| (a.labels, map_labels(&a.annotations)))
                    .collect();
                let mut exp: Vec<(Labels, Labels)> = t
                    .exp_alerts
                    .iter()
                    .map(|a| {
                        let mut l = a.exp_labels.clone();
                        l.insert("alertname".into(), t.alertname.clone());
                        (map_labels(&l), map_labels(&a.exp_annotations))
                    })
                    .collect();
                got.sort();
                exp.sort();
                if got != exp {
                    errs.push(format!(
                        "    alertname: {}, time: {}, \n        exp:{}, \n        got:{}",
                        t.alertname,
                        fmt_ms(at),
                        show_alerts(&exp),
                        show_alerts(&got)
                    ));
                }
            }
            ts += eval_step;
        }

        for (at, t) in expr_tests {
            if let Err(e) = check_features(&t.expr, self.opts) {
                errs.push(format!("    expr: {:?}, time: {}, err: {e}", t.expr, fmt_ms(at)));
                continue;
            }
            let got = match engine.instant_query(&t.expr, mint + at) {
                Ok(Value::Vector(v)) => v.into_iter().map(|s| (s.labels, s.sample.v)).collect::<Vec<_>>(),
                Ok(Value::Scalar(s)) => vec![(Labels::default(), s.v)],
                Ok(Value::String { .. }) => {
                    errs.push(format!(
                        "    expr: {:?}, time: {}, err: string results are not supported",
                        t.expr,
                        fmt_ms(at)
                    ));
                    continue;
                }
                Err(e) => {
                    errs.push(format!("    expr: {:?}, time: {}, err: {e}", t.expr, fmt_ms(at)));
                    continue;
                }
            };
            let mut exp = Vec::new();
            let mut bad = None;
            for s in &t.exp_samples {
                if s.histogram.is_some() {
                    bad = Some("native histogram expectations are not supported".to_string());
                    break;
                }
                let labels = match s.labels.as_deref().map(str::trim).filter(|l| !l.is_empty()) {
                    None => Labels::default(),
                    Some(l) => match series::parse_series(l) {
                        Ok(l) => l,
                        Err(e) => {
                            bad = Some(format!("labels {l:?}: {e}"));
                            break;
                        }
                    },
                };
                let value = match s.value.as_deref().map(series::parse_number).transpose() {
                    Ok(v) => v.unwrap_or(0.0),
                    Err(e) => {
                        bad = Some(e);
                        break;
                    }
                };
                exp.push((labels, value));
            }
            if let Some(e) = bad {
                errs.push(format!("    expr: {:?}, time: {}, err: {e}", t.expr, fmt_ms(at)));
                continue;
            }
            let mut got = got;
            got.sort_by(|a, b| a.0.cmp(&b.0));
            exp.sort_by(|a, b| a.0.cmp(&b.0));
            let same = got.len() == exp.len() && got.iter().zip(&exp).all(|(g, e)| g.0 == e.0 && same_value(g.1, e.1, self.fuzzy));
            if !same {
                errs.push(format!(
                    "    expr: {:?}, time: {},\n        exp: {}\n        got: {}",
                    t.expr,
                    fmt_ms(at),
                    show_samples(&exp),
                    show_samples(&got)
                ));
            }
        }
        errs
    }
}

/// Exact, NaN equal to NaN; fuzzy allows one unit in the last place.
fn same_value(a: f64, b: f64, fuzzy: bool) -> bool {
    if a.is_nan() || b.is_nan() {
        return a.is_nan() && b.is_nan();
    }
    if a == b {
        return true;
    }
    fuzzy && a.is_sign_positive() == b.is_sign_positive() && a.to_bits().abs_diff(b.to_bits()) <= 1
}

/// `@` and negative offsets unless enabled, as promtool's engine options default.
fn check_features(expr: &str, opts: &TestOptions) -> Result<(), String> {
    use promql_parser::parser::{Expr, Offset};
    struct V<'a>(&'a TestOptions);
    impl promql_parser::util::ExprVisitor for V<'_> {
        type Error = String;
        fn pre_visit(&mut self, e: &Expr) -> Result<bool, String> {
            let (at, offset) = match e {
                Expr::VectorSelector(vs) => (vs.at.is_some(), &vs.offset),
                Expr::MatrixSelector(ms) => (ms.vs.at.is_some(), &ms.vs.offset),
                Expr::Subquery(sq) => (sq.at.is_some(), &sq.offset),
                _ => return Ok(true),
            };
            if at && !self.0.enable_at_modifier {
                return Err("@ modifier is disabled, use --enable-feature=promql-at-modifier to enable it".into());
            }
            if matches!(offset, Some(Offset::Neg(_))) && !self.0.enable_negative_offset {
                return Err("negative offset is disabled, use --enable-feature=promql-negative-offset to enable it".into());
            }
            Ok(true)
        }
    }
    let parsed = Engine::parse(expr).map_err(|e| e.to_string())?;
    promql_parser::util::walk_expr(&mut V(opts), &parsed).map(|_| ())
}

fn start_timestamp(v: Option<&str>) -> Result<i64, String> {
    let Some(s) = v.map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(0);
    };
    if let Ok(secs) = s.parse::<f64>() {
        return Ok((secs * 1000.0) as i64);
    }
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.timestamp_millis())
        .map_err(|e| format!("{s:?}: {e}: expected RFC 3339 or Unix seconds"))
}

/// `eval_time`: a Prometheus duration, or a bare number of seconds; empty is 0.
fn eval_time(s: &str) -> Result<i64, String> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(0);
    }
    if let Ok(n) = s.parse::<f64>() {
        return Ok((n * 1000.0) as i64);
    }
    parse_duration(s).map(|d| d.as_millis() as i64).map_err(|e| e.to_string())
}

fn map_labels(m: &BTreeMap<String, String>) -> Labels {
    Labels::from_pairs(m.iter().map(|(k, v)| (k.clone(), v.clone())))
}

fn fmt_ms(ms: i64) -> String {
    fedwatch_config::format_duration(Duration::from_millis(ms.max(0) as u64))
}

fn show_alerts(a: &[(Labels, Labels)]) -> String {
    let parts: Vec<String> = a
        .iter()
        .map(|(l, an)| format!("\n        0:\n          Labels:{l}\n          Annotations:{an}"))
        .collect();
    if parts.is_empty() { "[]".into() } else { parts.concat() }
}

fn show_samples(s: &[(Labels, f64)]) -> String {
    let parts: Vec<String> = s.iter().map(|(l, v)| format!("{l} {v}")).collect();
    format!("[{}]", parts.join(", "))
}

#[cfg(test)]
mod tests;
