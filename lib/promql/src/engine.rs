//! The evaluator: every node is evaluated for all steps of the query at once.
//!
//! Values are series-major: a [`Series`] holds one optional value per step, so labels are
//! computed once per series rather than once per step, and a selector asks the store once
//! for the whole range. Range vectors ([`Windowed`]) keep the raw samples and the reference
//! time of every step; range functions slide the left-open window `(ref - range, ref]` over
//! them. `__name__` removal is delayed as in Prometheus 3: nodes that would drop the name set
//! `drop_name`, and the name goes when the result leaves the engine.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Instant, UNIX_EPOCH};

use fedwatch_model::{Labels, MatchOp, Matcher, Sample, is_stale_nan};
use fedwatch_tsdb::{Bucket, Querier, SelectHints};
use promql_parser::label::MatchOp as ParsedOp;
use promql_parser::parser::{AtModifier, Expr, MatrixSelector, Offset, VectorSelector};

use crate::{Annotations, InstantSample, QueryError, QueryValue, RangeSeries};

/// Default subquery resolution when the subquery gives no step, as Prometheus's test engine.
const DEFAULT_SUBQUERY_STEP_MS: i64 = 60_000;

/// A series' labels and, per step, the timestamp of its current sample.
pub(crate) type SeriesTimes = (Labels, Vec<Option<i64>>);

/// One output series with a value slot per step.
#[derive(Clone, Debug)]
pub(crate) struct Series {
    pub labels: Labels,
    pub drop_name: bool,
    pub values: Vec<Option<f64>>,
}

/// One input series of a range vector: its raw (non-stale) samples.
#[derive(Clone, Debug)]
pub(crate) struct RawSeries {
    pub labels: Labels,
    pub drop_name: bool,
    pub samples: Vec<Sample>,
}

/// A range vector: raw series plus, per step, the right end of the window.
#[derive(Clone, Debug)]
pub(crate) struct Windowed {
    pub series: Vec<RawSeries>,
    pub range: i64,
    pub refs: Vec<i64>,
}

impl Windowed {
    /// The samples of `s` inside `(refs[step] - range, refs[step]]`.
    pub fn window<'s>(&self, s: &'s RawSeries, step: usize) -> &'s [Sample] {
        let r = self.refs[step];
        let lo = s.samples.partition_point(|p| p.t <= r - self.range);
        let hi = s.samples.partition_point(|p| p.t <= r);
        &s.samples[lo..hi.max(lo)]
    }
}

/// A range vector read from a downsampled level: per series its buckets (ending at multiples
/// of the level's resolution, which also divides `range` and every ref), so the window
/// `(ref - range, ref]` is exactly the buckets ending in it.
#[derive(Clone, Debug)]
pub(crate) struct BucketWindowed {
    pub series: Vec<(Labels, Vec<Bucket>)>,
    pub range: i64,
    pub refs: Vec<i64>,
}

/// An intermediate value.
pub(crate) enum Val {
    Scalar(Vec<f64>),
    Vector(Vec<Series>),
    Matrix(Windowed),
    String(String),
}

impl Val {
    pub fn type_name(&self) -> &'static str {
        match self {
            Val::Scalar(_) => "scalar",
            Val::Vector(_) => "instant vector",
            Val::Matrix(_) => "range vector",
            Val::String(_) => "string",
        }
    }
}

pub(crate) fn exec(msg: impl Into<String>) -> QueryError {
    QueryError::Execution(msg.into())
}

/// What stops a query: the sample cap, its deadline and the caller's cancel flag.
#[derive(Clone)]
pub(crate) struct Limits {
    pub max_samples: usize,
    pub deadline: Option<Instant>,
    pub cancel: Option<Arc<AtomicBool>>,
}

/// Evaluates expressions over the steps `start, start + interval, … ≤ end`.
pub(crate) struct Evaluator<'a> {
    querier: &'a dyn Querier,
    /// Annotations so far: (is a warning, text), in the order they arose.
    annotations: RefCell<Vec<(bool, String)>>,
    pub lookback: i64,
    limits: Limits,
    pub start: i64,
    pub end: i64,
    pub interval: i64,
    /// The top-level query's start and end, which `@ start()` / `@ end()` refer to.
    pub query_start: i64,
    pub query_end: i64,
    pub steps: Vec<i64>,
}

impl<'a> Evaluator<'a> {
    pub fn new(querier: &'a dyn Querier, lookback: i64, limits: Limits, start: i64, end: i64, interval: i64) -> Self {
        let mut ev = Evaluator {
            querier,
            annotations: RefCell::new(Vec::new()),
            lookback,
            limits,
            start,
            end,
            interval,
            query_start: start,
            query_end: end,
            steps: Vec::new(),
        };
        ev.steps = ev.make_steps();
        ev
    }

    fn make_steps(&self) -> Vec<i64> {
        let mut steps = Vec::new();
        let mut t = self.start;
        while t <= self.end {
            steps.push(t);
            t += self.interval;
        }
        steps
    }

    fn child(&self, start: i64, end: i64, interval: i64) -> Evaluator<'a> {
        let mut ev = Evaluator {
            querier: self.querier,
            annotations: RefCell::new(Vec::new()),
            lookback: self.lookback,
            limits: self.limits.clone(),
            start,
            end,
            interval,
            query_start: self.query_start,
            query_end: self.query_end,
            steps: Vec::new(),
        };
        ev.steps = ev.make_steps();
        ev
    }

    pub fn n(&self) -> usize {
        self.steps.len()
    }

    /// Evaluates `expr` as an instant query at the single step.
    pub fn instant(&self, expr: &Expr) -> Result<QueryValue, QueryError> {
        let t = self.start;
        Ok(match self.eval(expr)? {
            Val::Scalar(v) => QueryValue::Scalar(Sample { t, v: v[0] }),
            Val::String(s) => QueryValue::String { t, value: s },
            Val::Vector(series) => {
                let series = finish(series)?;
                QueryValue::Vector(
                    series
                        .into_iter()
                        .filter_map(|s| {
                            s.values[0].map(|v| InstantSample {
                                labels: s.labels,
                                sample: Sample { t, v },
                            })
                        })
                        .collect(),
                )
            }
            Val::Matrix(w) => {
                let mut out: Vec<RangeSeries> = Vec::new();
                for s in &w.series {
                    let samples = w.window(s, 0).to_vec();
                    if samples.is_empty() {
                        continue;
                    }
                    let labels = if s.drop_name {
                        s.labels.without_metric_name()
                    } else {
                        s.labels.clone()
                    };
                    out.push(RangeSeries { labels, samples });
                }
                check_unique(out.iter().map(|s| &s.labels))?;
                QueryValue::Matrix(out)
            }
        })
    }

    /// Evaluates `expr` as a range query: one series per label set, sorted by labels.
    pub fn range(&self, expr: &Expr) -> Result<Vec<RangeSeries>, QueryError> {
        let series = match self.eval(expr)? {
            Val::Scalar(v) => vec![Series {
                labels: Labels::default(),
                drop_name: false,
                values: v.into_iter().map(Some).collect(),
            }],
            Val::Vector(s) => finish(s)?,
            other => {
                return Err(exec(format!(
                    "invalid expression type \"{}\" for range query, must be Scalar or instant Vector",
                    other.type_name()
                )));
            }
        };
        let mut out: Vec<RangeSeries> = series
            .into_iter()
            .filter_map(|s| {
                let samples: Vec<Sample> = s
                    .values
                    .iter()
                    .zip(&self.steps)
                    .filter_map(|(v, &t)| v.map(|v| Sample { t, v }))
                    .collect();
                (!samples.is_empty()).then_some(RangeSeries { labels: s.labels, samples })
            })
            .collect();
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        Ok(out)
    }

    /// Records a `PromQL warning`.
    pub fn warn(&self, text: impl std::fmt::Display) {
        self.annotations.borrow_mut().push((true, format!("PromQL warning: {text}")));
    }

    /// Records a `PromQL info`.
    pub fn info(&self, text: impl std::fmt::Display) {
        self.annotations.borrow_mut().push((false, format!("PromQL info: {text}")));
    }

    /// The annotations recorded, each once.
    pub fn take_annotations(&self) -> Annotations {
        let mut out = Annotations::default();
        let mut seen = std::collections::HashSet::new();
        for (warning, text) in self.annotations.take() {
            if seen.insert(text.clone()) {
                if warning { out.warnings.push(text) } else { out.infos.push(text) }
            }
        }
        out
    }

    /// Fails once the query is past its deadline or its caller cancelled it.
    pub fn check_limits(&self) -> Result<(), QueryError> {
        if self.limits.cancel.as_ref().is_some_and(|c| c.load(Ordering::Relaxed)) {
            return Err(exec("query was canceled in expression evaluation"));
        }
        if self.limits.deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(exec("query timed out in expression evaluation"));
        }
        Ok(())
    }

    /// Fails if `series` series with a slot per step would exceed the sample cap, before
    /// anything that large is allocated.
    pub fn check_points(&self, series: usize) -> Result<(), QueryError> {
        if series.saturating_mul(self.n()) > self.limits.max_samples {
            return Err(exec("query processing would load too many samples into memory in query execution"));
        }
        Ok(())
    }

    pub fn eval(&self, expr: &Expr) -> Result<Val, QueryError> {
        self.check_limits()?;
        let n = self.n();
        match expr {
            Expr::NumberLiteral(l) => Ok(Val::Scalar(vec![l.val; n])),
            Expr::StringLiteral(s) => Ok(Val::String(s.val.clone())),
            Expr::Paren(p) => self.eval(&p.expr),
            Expr::Unary(u) => match self.eval(&u.expr)? {
                Val::Scalar(v) => Ok(Val::Scalar(v.into_iter().map(|x| -x).collect())),
                Val::Vector(mut series) => {
                    for s in &mut series {
                        s.drop_name = true;
                        for v in s.values.iter_mut().flatten() {
                            *v = -*v;
                        }
                    }
                    Ok(Val::Vector(series))
                }
                other => Err(exec(format!("unary minus on a {}", other.type_name()))),
            },
            Expr::VectorSelector(vs) => Ok(Val::Vector(self.vector_selector(vs, false)?)),
            Expr::MatrixSelector(ms) => {
                let range = crate::duration_ms(ms.range);
                let refs = self.refs(&ms.vs.at, &ms.vs.offset);
                let (lo, hi) = min_max(&refs);
                let raw = self.select(&ms.vs, lo - range + 1, hi, range)?;
                let series = raw
                    .into_iter()
                    .map(|ts| RawSeries {
                        labels: ts.labels,
                        drop_name: false,
                        samples: ts.samples.into_iter().filter(|s| !is_stale_nan(s.v)).collect(),
                    })
                    .collect();
                Ok(Val::Matrix(Windowed { series, range, refs }))
            }
            Expr::Subquery(sq) => {
                let range = crate::duration_ms(sq.range);
                let refs = self.refs(&sq.at, &sq.offset);
                let (lo, hi) = min_max(&refs);
                let step = sq.step.map(crate::duration_ms).unwrap_or(DEFAULT_SUBQUERY_STEP_MS);
                if step <= 0 {
                    return Err(exec("zero or negative subquery step"));
                }
                let mut start = step * ((lo - range) / step);
                if start <= lo - range {
                    start += step;
                }
                let child = self.child(start, hi, step);
                let inner = child.eval(&sq.expr);
                self.annotations.borrow_mut().extend(child.annotations.take());
                let series = match inner? {
                    Val::Scalar(v) => vec![RawSeries {
                        labels: Labels::default(),
                        drop_name: false,
                        samples: v.into_iter().zip(&child.steps).map(|(v, &t)| Sample { t, v }).collect(),
                    }],
                    Val::Vector(series) => series
                        .into_iter()
                        .map(|s| RawSeries {
                            labels: s.labels,
                            drop_name: s.drop_name,
                            samples: s
                                .values
                                .iter()
                                .zip(&child.steps)
                                .filter_map(|(v, &t)| v.map(|v| Sample { t, v }))
                                .collect(),
                        })
                        .collect(),
                    other => return Err(exec(format!("subquery of a {}", other.type_name()))),
                };
                Ok(Val::Matrix(Windowed { series, range, refs }))
            }
            Expr::Call(call) => crate::functions::call(self, call),
            Expr::Aggregate(agg) => crate::aggregations::aggregate(self, agg),
            Expr::Binary(b) => crate::binary::binary(self, b),
            Expr::Extension(_) => Err(QueryError::Unsupported(expr.to_string())),
        }
    }

    /// The time each step reads at, after `@` and `offset`.
    pub fn refs(&self, at: &Option<AtModifier>, offset: &Option<Offset>) -> Vec<i64> {
        let off = match offset {
            Some(Offset::Pos(d)) => crate::duration_ms(*d),
            Some(Offset::Neg(d)) => -crate::duration_ms(*d),
            None => 0,
        };
        self.refs_ms(at, off)
    }

    /// The time each step reads at, after `@` and an offset in milliseconds.
    pub fn refs_ms(&self, at: &Option<AtModifier>, off: i64) -> Vec<i64> {
        let fixed = match at {
            Some(AtModifier::At(t)) => Some(system_time_ms(*t)),
            Some(AtModifier::Start) => Some(self.query_start),
            Some(AtModifier::End) => Some(self.query_end),
            None => None,
        };
        self.steps.iter().map(|&t| fixed.unwrap_or(t) - off).collect()
    }

    /// Per series matching `matchers`, the timestamp of the sample current at each ref time.
    pub fn latest_timestamps(&self, matchers: &[Matcher], refs: &[i64]) -> Result<Vec<SeriesTimes>, QueryError> {
        let (lo, hi) = min_max(refs);
        let raw = self.select_sets(vec![matchers.to_vec()], self.hints(lo - self.lookback + 1, hi, 0))?;
        Ok(raw
            .into_iter()
            .map(|ts| {
                let times = refs
                    .iter()
                    .map(|&r| {
                        let idx = ts.samples.partition_point(|s| s.t <= r);
                        let s = ts.samples.get(idx.checked_sub(1)?)?;
                        (s.t > r - self.lookback && !is_stale_nan(s.v)).then_some(s.t)
                    })
                    .collect();
                (ts.labels, times)
            })
            .collect())
    }

    /// An instant vector selector; with `timestamps` each value is its sample's time in seconds.
    pub fn vector_selector(&self, vs: &VectorSelector, timestamps: bool) -> Result<Vec<Series>, QueryError> {
        let refs = self.refs(&vs.at, &vs.offset);
        let (lo, hi) = min_max(&refs);
        let raw = self.select(vs, lo - self.lookback + 1, hi, 0)?;
        self.check_points(raw.len())?;
        let mut out = Vec::with_capacity(raw.len());
        for (i, ts) in raw.into_iter().enumerate() {
            if i % 1024 == 1023 {
                self.check_limits()?;
            }
            let mut any = false;
            // Steps (and so reference times) only move forward: walk the samples once.
            let mut idx = 0;
            let values: Vec<Option<f64>> = refs
                .iter()
                .map(|&r| {
                    if idx > 0 && ts.samples[idx - 1].t > r {
                        idx = ts.samples.partition_point(|s| s.t <= r);
                    }
                    while idx < ts.samples.len() && ts.samples[idx].t <= r {
                        idx += 1;
                    }
                    let s = ts.samples.get(idx.checked_sub(1)?)?;
                    if s.t <= r - self.lookback || is_stale_nan(s.v) {
                        return None;
                    }
                    any = true;
                    Some(if timestamps { s.t as f64 / 1000.0 } else { s.v })
                })
                .collect();
            if any {
                out.push(Series {
                    labels: ts.labels,
                    drop_name: false,
                    values,
                });
            }
        }
        Ok(out)
    }

    fn select(&self, vs: &VectorSelector, start: i64, end: i64, range: i64) -> Result<Vec<fedwatch_model::TimeSeries>, QueryError> {
        self.select_sets(matcher_sets(vs)?, self.hints(start, end, range))
    }

    fn hints(&self, start: i64, end: i64, range: i64) -> SelectHints {
        SelectHints {
            start,
            end,
            step: if self.steps.len() > 1 { self.interval } else { 0 },
            range,
            func: None,
        }
    }

    /// The matrix selector `ms` wrapped by range function `func` as buckets of a downsampled
    /// level, when the store has one that answers every window exactly; `None`: read raw samples.
    pub fn select_downsampled(&self, ms: &MatrixSelector, func: &'static str) -> Result<Option<BucketWindowed>, QueryError> {
        let range = crate::duration_ms(ms.range);
        let refs = self.refs(&ms.vs.at, &ms.vs.offset);
        let (lo, hi) = min_max(&refs);
        // Refs are `hi - k × step` (steps minus a fixed offset, or all one `@` time).
        let step = if lo == hi { 0 } else { refs[1] - refs[0] };
        let hints = SelectHints {
            start: lo - range + 1,
            end: hi,
            step,
            range,
            func: Some(func),
        };
        let sets = matcher_sets(&ms.vs)?;
        let several = sets.len() > 1;
        let mut resolution = None;
        let mut out: Vec<(Labels, Vec<Bucket>)> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for matchers in sets {
            let Some(found) = self.querier.select_downsampled(&matchers, hints).map_err(|e| exec(e.to_string()))? else {
                return Ok(None);
            };
            // Each matcher set must come from the same level, or the raw path answers.
            if resolution.is_some_and(|r| r != found.resolution) {
                return Ok(None);
            }
            resolution = Some(found.resolution);
            for s in found.series {
                if !several || seen.insert(s.labels.clone()) {
                    out.push((s.labels, s.buckets));
                }
            }
        }
        if resolution.is_none() {
            return Ok(None);
        }
        let total: usize = out.iter().map(|(_, b)| b.len()).sum();
        if total > self.limits.max_samples {
            return Err(exec("query processing would load too many samples into memory in query execution"));
        }
        if !out.is_sorted_by(|a, b| a.0 <= b.0) {
            out.sort_by(|a, b| a.0.cmp(&b.0));
        }
        Ok(Some(BucketWindowed { series: out, range, refs }))
    }
}

/// The selector's matcher sets: one, or one per `or` group.
fn matcher_sets(vs: &VectorSelector) -> Result<Vec<Vec<Matcher>>, QueryError> {
    let mut sets = Vec::new();
    if vs.matchers.or_matchers.is_empty() {
        sets.push(convert_matchers(vs.name.as_deref(), &vs.matchers.matchers)?);
    } else {
        for group in &vs.matchers.or_matchers {
            sets.push(convert_matchers(vs.name.as_deref(), group)?);
        }
    }
    Ok(sets)
}

impl Evaluator<'_> {
    /// Series matching any of the matcher sets, once each, sorted by labels.
    fn select_sets(&self, sets: Vec<Vec<Matcher>>, hints: SelectHints) -> Result<Vec<fedwatch_model::TimeSeries>, QueryError> {
        let several = sets.len() > 1;
        let mut out = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for matchers in sets {
            for ts in self.querier.select(&matchers, hints).map_err(|e| exec(e.to_string()))? {
                // `{a="1" or b="2"}` may select a series twice; one matcher set cannot.
                if !several || seen.insert(ts.labels.clone()) {
                    out.push(ts);
                }
            }
        }
        let total: usize = out.iter().map(|ts| ts.samples.len()).sum();
        if total > self.limits.max_samples {
            return Err(exec("query processing would load too many samples into memory in query execution"));
        }
        // Input order decides e.g. which series `limitk` keeps, so it is Prometheus's: by labels.
        if !out.is_sorted_by(|a, b| a.labels <= b.labels) {
            out.sort_by(|a, b| a.labels.cmp(&b.labels));
        }
        Ok(out)
    }
}

fn convert_matchers(name: Option<&str>, ms: &[promql_parser::label::Matcher]) -> Result<Vec<Matcher>, QueryError> {
    let mut out = Vec::with_capacity(ms.len() + 1);
    if let Some(name) = name {
        out.push(Matcher::equal(fedwatch_model::METRIC_NAME, name));
    }
    for m in ms {
        let op = match &m.op {
            ParsedOp::Equal => MatchOp::Equal,
            ParsedOp::NotEqual => MatchOp::NotEqual,
            ParsedOp::Re(_) => MatchOp::RegexMatch,
            ParsedOp::NotRe(_) => MatchOp::RegexNoMatch,
        };
        out.push(Matcher::new(op, m.name.clone(), m.value.clone()).map_err(|e| QueryError::Parse(e.to_string()))?);
    }
    Ok(out)
}

pub(crate) fn min_max(v: &[i64]) -> (i64, i64) {
    let lo = v.iter().copied().min().unwrap_or(0);
    let hi = v.iter().copied().max().unwrap_or(0);
    (lo, hi)
}

pub(crate) fn system_time_ms(at: std::time::SystemTime) -> i64 {
    match at.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_millis() as i64,
        Err(e) => -(e.duration().as_millis() as i64),
    }
}

/// The labels without the metric's identity (`__name__`, `__type__`, `__unit__`), which
/// Prometheus removes together when an operation changes what a series measures.
pub(crate) fn without_metadata(l: &Labels) -> Labels {
    let mut b = l.builder();
    b.del(fedwatch_model::METRIC_NAME).del("__type__").del("__unit__");
    b.build()
}

/// Drops names that were marked for removal and merges series that now share labels;
/// two values for one label set at one step are Prometheus's duplicate-labelset error.
pub(crate) fn finish(series: Vec<Series>) -> Result<Vec<Series>, QueryError> {
    let mut out: Vec<Series> = Vec::with_capacity(series.len());
    let mut index: HashMap<Labels, usize> = HashMap::with_capacity(series.len());
    for mut s in series {
        if s.drop_name {
            s.labels = without_metadata(&s.labels);
            s.drop_name = false;
        }
        if s.values.iter().all(Option::is_none) {
            continue;
        }
        match index.get(&s.labels) {
            Some(&i) => {
                let dst = &mut out[i];
                for (d, v) in dst.values.iter_mut().zip(s.values) {
                    if let Some(v) = v {
                        if d.is_some() {
                            return Err(exec("vector cannot contain metrics with the same labelset"));
                        }
                        *d = Some(v);
                    }
                }
            }
            None => {
                index.insert(s.labels.clone(), out.len());
                out.push(s);
            }
        }
    }
    Ok(out)
}

fn check_unique<'l>(labels: impl Iterator<Item = &'l Labels>) -> Result<(), QueryError> {
    let mut seen = std::collections::HashSet::new();
    for l in labels {
        if !seen.insert(l) {
            return Err(exec("vector cannot contain metrics with the same labelset"));
        }
    }
    Ok(())
}
