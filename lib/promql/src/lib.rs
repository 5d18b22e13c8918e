//! PromQL over the [`Querier`] seam.
//!
//! Queries are parsed with `promql-parser` and evaluated by our own engine with Prometheus
//! 3.x semantics: left-open range selection `(t - range, t]`, a left-open 5m lookback that
//! stale markers end early, fully anchored `(?s)` regexes, delayed `__name__` removal and a
//! 1m default subquery step. Every expression is evaluated for all steps of a query at once
//! ("series-major"): a selector selects its data once for the whole range and every node
//! produces one value slot per step, so a range query shares work across steps and an
//! instant query is simply a range query with one step.
//!
//! Entry points: [`Engine::instant_query`] gives rules a [`Value`]; [`Engine::query`] and
//! [`Engine::range_query`] serve `/api/v1/query` and `/api/v1/query_range` ([`QueryValue`]
//! adds the range vector an instant query may return); [`Engine::query_with`] and
//! [`Engine::range_query_with`] take a parsed expression and [`QueryOptions`] (timeout,
//! cancellation) and also return the query's [`Annotations`]. Limits: a sample cap
//! (series × steps and samples selected) and a timeout, failing with Prometheus's messages.
//! Native histograms are not evaluated (the store holds floats only).

mod aggregations;
mod binary;
mod downsampled;
mod engine;
mod functions;
mod info;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use fedwatch_model::{Labels, Sample};
use fedwatch_tsdb::Querier;
pub use promql_parser::parser::Expr;

/// How far back an instant selector looks for the latest sample.
pub const DEFAULT_LOOKBACK_MS: i64 = 5 * 60 * 1000;

/// The default cap on samples a query may hold at once, as Prometheus's `--query.max-samples`.
pub const DEFAULT_MAX_SAMPLES: usize = 50_000_000;

/// One series' value at the evaluation time.
#[derive(Clone, Debug, PartialEq)]
pub struct InstantSample {
    pub labels: Labels,
    pub sample: Sample,
}

/// One series with its points, as range queries and range-vector results return them.
#[derive(Clone, Debug, PartialEq)]
pub struct RangeSeries {
    pub labels: Labels,
    pub samples: Vec<Sample>,
}

/// The result of an instant query that rules can use.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Vector(Vec<InstantSample>),
    Scalar(Sample),
    String { t: i64, value: String },
}

/// Any result of an instant query, including a range vector (`foo[5m]`), for the HTTP API.
#[derive(Clone, Debug, PartialEq)]
pub enum QueryValue {
    Vector(Vec<InstantSample>),
    Scalar(Sample),
    String { t: i64, value: String },
    Matrix(Vec<RangeSeries>),
}

/// Why a query failed, mapped by the HTTP layer to Prometheus's `errorType`.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The query does not parse (`bad_data`).
    #[error("{0}")]
    Parse(String),
    /// The query parses but uses something this engine does not evaluate (`bad_data`).
    #[error("unsupported expression: {0}")]
    Unsupported(String),
    /// Evaluation failed (`execution`).
    #[error("{0}")]
    Execution(String),
}

/// Prometheus's default `--query.timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

/// Per-query limits: a timeout and a flag the caller sets when its client went away.
#[derive(Clone, Debug, Default)]
pub struct QueryOptions {
    /// Overrides the engine's timeout for this query.
    pub timeout: Option<Duration>,
    /// Set to true to stop the query ("query was canceled" error).
    pub cancel: Option<Arc<AtomicBool>>,
}

/// Warnings and infos a query produced, as Prometheus's API lists them (`PromQL warning: …`),
/// but without the `(line:col)` position suffix: the parser does not keep positions.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Annotations {
    pub warnings: Vec<String>,
    pub infos: Vec<String>,
}

/// Evaluates queries against a store.
#[derive(Clone)]
pub struct Engine {
    querier: Arc<dyn Querier>,
    lookback_ms: i64,
    max_samples: usize,
    timeout: Duration,
}

impl Engine {
    /// An engine with Prometheus's defaults (5m lookback, 50M samples).
    pub fn new(querier: Arc<dyn Querier>) -> Self {
        Engine {
            querier,
            lookback_ms: DEFAULT_LOOKBACK_MS,
            max_samples: DEFAULT_MAX_SAMPLES,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Sets how long a query may run before it fails with "query timed out".
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the lookback delta for instant selectors.
    pub fn with_lookback(mut self, lookback_ms: i64) -> Self {
        self.lookback_ms = lookback_ms;
        self
    }

    /// Sets the cap on samples a query may hold (Prometheus's `--query.max-samples`).
    pub fn with_max_samples(mut self, max_samples: usize) -> Self {
        self.max_samples = max_samples;
        self
    }

    /// Checks that `query` parses, without evaluating it.
    pub fn parse(query: &str) -> Result<Expr, QueryError> {
        promql_parser::parser::parse(query).map_err(|e| QueryError::Parse(prometheus_wording(&e)))
    }

    /// Evaluates `query` at `t` (milliseconds since the epoch); range vectors are an error.
    pub fn instant_query(&self, query: &str, t: i64) -> Result<Value, QueryError> {
        match self.query(query, t)? {
            QueryValue::Vector(v) => Ok(Value::Vector(v)),
            QueryValue::Scalar(s) => Ok(Value::Scalar(s)),
            QueryValue::String { t, value } => Ok(Value::String { t, value }),
            QueryValue::Matrix(_) => Err(QueryError::Execution(
                "expression returned a range vector; an instant vector or scalar is needed".into(),
            )),
        }
    }

    /// Evaluates `query` at `t` like the `/api/v1/query` endpoint, range vectors included.
    pub fn query(&self, query: &str, t: i64) -> Result<QueryValue, QueryError> {
        Ok(self.query_with(&Self::parse(query)?, t, &QueryOptions::default())?.0)
    }

    /// Evaluates `query` at every `step` from `start` to `end` (ms) like `/api/v1/query_range`.
    pub fn range_query(&self, query: &str, start: i64, end: i64, step: i64) -> Result<Vec<RangeSeries>, QueryError> {
        Ok(self
            .range_query_with(&Self::parse(query)?, start, end, step, &QueryOptions::default())?
            .0)
    }

    /// Evaluates a parsed expression at `t` with per-query limits, returning its annotations.
    pub fn query_with(&self, expr: &Expr, t: i64, opts: &QueryOptions) -> Result<(QueryValue, Annotations), QueryError> {
        let ev = self.evaluator(t, t, 1, opts);
        let v = ev.instant(expr)?;
        Ok((v, ev.take_annotations()))
    }

    /// Evaluates a parsed expression over a range with per-query limits, returning its annotations.
    pub fn range_query_with(
        &self,
        expr: &Expr,
        start: i64,
        end: i64,
        step: i64,
        opts: &QueryOptions,
    ) -> Result<(Vec<RangeSeries>, Annotations), QueryError> {
        if step <= 0 {
            return Err(QueryError::Execution(
                "zero or negative query resolution step widths are not accepted. Try a positive integer".into(),
            ));
        }
        let ev = self.evaluator(start, end, step, opts);
        let v = ev.range(expr)?;
        Ok((v, ev.take_annotations()))
    }

    fn evaluator(&self, start: i64, end: i64, step: i64, opts: &QueryOptions) -> engine::Evaluator<'_> {
        let limits = engine::Limits {
            max_samples: self.max_samples,
            deadline: Instant::now().checked_add(opts.timeout.unwrap_or(self.timeout)),
            cancel: opts.cancel.clone(),
        };
        engine::Evaluator::new(self.querier.as_ref(), self.lookback_ms, limits, start, end, step)
    }
}

/// Durations as milliseconds, for callers that hold a parsed [`Duration`].
pub fn duration_ms(d: Duration) -> i64 {
    d.as_millis() as i64
}

/// promql-parser names value types by their internal names (`vector`, `matrix`) and quotes
/// function names with `'`; Prometheus's messages say `instant vector`, `range vector` and
/// `"rate"`. Grafana shows these messages to users, so they read as Prometheus's do.
fn prometheus_wording(msg: &str) -> String {
    let Some(rest) = msg.strip_prefix("expected type ") else {
        return msg.to_string();
    };
    let documented = |t: &str| {
        match t {
            "vector" => "instant vector",
            "matrix" => "range vector",
            other => other,
        }
        .to_string()
    };
    let Some((want, rest)) = rest.split_once(" in ") else {
        return msg.to_string();
    };
    let Some((context, got)) = rest.rsplit_once(", got ") else {
        return msg.to_string();
    };
    let context = match context.strip_prefix("call to function '").and_then(|c| c.strip_suffix('\'')) {
        Some(name) => format!("call to function {name:?}"),
        None => context.to_string(),
    };
    format!("expected type {} in {context}, got {}", documented(want), documented(got))
}

#[cfg(test)]
mod tests {
    use super::*;
    use fedwatch_model::{TimeSeries, stale_nan};
    use fedwatch_tsdb::{Appender, MemStore};

    #[test]
    fn type_errors_use_prometheus_wording() {
        for (query, want) in [
            (
                "rate(x)",
                "expected type range vector in call to function \"rate\", got instant vector",
            ),
            (
                "abs(x[5m])",
                "expected type instant vector in call to function \"abs\", got range vector",
            ),
            ("sum(x) by (a) + 1", ""),
        ] {
            match Engine::parse(query) {
                Err(QueryError::Parse(m)) => assert_eq!(m, want, "{query}"),
                Ok(_) => assert!(want.is_empty(), "{query} should fail with {want}"),
                Err(e) => panic!("{query}: {e}"),
            }
        }
    }

    fn engine() -> Engine {
        let store = Arc::new(MemStore::new());
        let mk = |job: &str, inst: &str, pts: &[(i64, f64)]| TimeSeries {
            labels: Labels::from_pairs([("__name__", "up"), ("job", job), ("instance", inst)]),
            samples: pts.iter().map(|&(t, v)| Sample { t, v }).collect(),
        };
        store
            .append(&[
                mk("node", "a", &[(0, 1.0), (60_000, 0.0)]),
                mk("node", "b", &[(0, 1.0), (60_000, 1.0)]),
                mk("etcd", "c", &[(0, 1.0), (30_000, stale_nan())]),
            ])
            .unwrap();
        Engine::new(store)
    }

    fn vector(v: Value) -> Vec<(String, f64)> {
        match v {
            Value::Vector(v) => v.into_iter().map(|s| (s.labels.to_string(), s.sample.v)).collect(),
            other => panic!("expected a vector, got {other:?}"),
        }
    }

    #[test]
    fn selectors_with_each_matcher_kind_lookback_and_staleness() {
        let e = engine();
        assert_eq!(vector(e.instant_query(r#"up{job="node"}"#, 60_000).unwrap()).len(), 2);
        assert_eq!(vector(e.instant_query(r#"up{job!="node"}"#, 10_000).unwrap()).len(), 1);
        assert_eq!(
            vector(e.instant_query(r#"up{job!="node"}"#, 40_000).unwrap()).len(),
            0,
            "stale marker ends the series"
        );
        assert_eq!(vector(e.instant_query(r#"up{instance=~"a|b"}"#, 60_000).unwrap()).len(), 2);
        assert_eq!(vector(e.instant_query(r#"up{instance!~"a"}"#, 10_000).unwrap()).len(), 2);
        // Prometheus 3 looks back over the left-open range (t - 5m, t].
        assert_eq!(vector(e.instant_query("up", 59_999 + DEFAULT_LOOKBACK_MS).unwrap()).len(), 2);
        assert_eq!(vector(e.instant_query("up", 60_000 + DEFAULT_LOOKBACK_MS).unwrap()).len(), 0);
        assert_eq!(vector(e.instant_query("up offset 1m", 60_000).unwrap()).len(), 3);
    }

    #[test]
    fn comparison_filters_and_bool_returns_zero_one() {
        let e = engine();
        let got = vector(e.instant_query("up == 0", 60_000).unwrap());
        assert_eq!(got, vec![(r#"up{instance="a", job="node"}"#.to_string(), 0.0)]);
        let got = vector(e.instant_query("up{job='node'} > bool 0", 60_000).unwrap());
        assert_eq!(got.iter().map(|g| g.1).collect::<Vec<_>>(), vec![0.0, 1.0]);
        assert!(got[0].0.starts_with('{'), "bool drops the metric name");
        assert!(matches!(e.instant_query("1 + 2", 0).unwrap(), Value::Scalar(Sample { v: 3.0, .. })));
    }

    #[test]
    fn range_query_matches_stepped_instant_queries() {
        let e = engine();
        let range = e.range_query("sum by (job) (up)", 0, 120_000, 30_000).unwrap();
        for s in &range {
            for p in &s.samples {
                let Value::Vector(v) = e.instant_query("sum by (job) (up)", p.t).unwrap() else {
                    panic!("vector expected")
                };
                assert!(v.iter().any(|i| i.labels == s.labels && i.sample.v == p.v), "{s:?} at {}", p.t);
            }
        }
        assert_eq!(range.len(), 2);
    }

    #[test]
    fn timeout_and_cancellation_stop_a_query() {
        let e = engine();
        let opts = QueryOptions {
            timeout: Some(Duration::ZERO),
            cancel: None,
        };
        let expr = Engine::parse("sum(up)").unwrap();
        let err = e.range_query_with(&expr, 0, 60_000, 1_000, &opts).unwrap_err();
        assert_eq!(err.to_string(), "query timed out in expression evaluation");
        let cancel = Arc::new(AtomicBool::new(true));
        let opts = QueryOptions {
            timeout: None,
            cancel: Some(cancel),
        };
        let err = e.query_with(&Engine::parse("up").unwrap(), 0, &opts).unwrap_err();
        assert_eq!(err.to_string(), "query was canceled in expression evaluation");
    }

    #[test]
    fn sample_cap_stops_oversized_range_queries() {
        let e = engine().with_max_samples(100);
        let err = e.range_query("up", 0, 60_000, 1_000).unwrap_err();
        assert_eq!(
            err.to_string(),
            "query processing would load too many samples into memory in query execution"
        );
        assert!(e.range_query("up", 0, 60_000, 10_000).is_ok(), "3 series x 7 steps fit");
    }

    #[test]
    fn annotations_like_prometheus() {
        let e = engine();
        let (_, a) = e
            .query_with(&Engine::parse("rate(up[5m])").unwrap(), 60_000, &QueryOptions::default())
            .unwrap();
        assert_eq!(
            a.infos,
            vec![r#"PromQL info: metric might not be a counter, name does not end in _total/_sum/_count/_bucket: "up""#]
        );
        let (_, a) = e
            .range_query_with(&Engine::parse("sort(up)").unwrap(), 0, 60_000, 30_000, &QueryOptions::default())
            .unwrap();
        assert_eq!(
            a.warnings,
            vec!["PromQL warning: sort is ineffective for range queries since results are always ordered by labels"]
        );
    }

    #[test]
    fn errors_distinguish_parse_from_execution() {
        let e = engine();
        assert!(matches!(e.instant_query("up{", 0), Err(QueryError::Parse(_))));
        assert!(matches!(e.instant_query("up[5m]", 0), Err(QueryError::Execution(_))));
        assert!(matches!(e.query("up[5m]", 60_000), Ok(QueryValue::Matrix(_))));
    }
}
