//! PromQL evaluation: `/api/v1/query`, `/api/v1/query_range`, `/api/v1/format_query` and
//! `/api/v1/query_exemplars`.
//!
//! A query runs on the blocking pool. When the client goes away hyper drops the handler
//! future; a [`CancelOnDrop`] guard held by that future then sets the engine's cancel flag,
//! so the evaluation stops at its next limit check instead of running to the end.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use fedwatch_model::{Labels, Sample};
use fedwatch_promql::{Annotations, Engine, QueryOptions, QueryValue};

use super::{ApiState, now_ms, params, respond, success};
use crate::ApiError;
use crate::json::{push_labels, push_point, push_str};
use crate::params::Params;

/// Prometheus refuses range queries with more points than this per series.
const MAX_POINTS_PER_SERIES: i64 = 11_000;

/// Prometheus's warning when `limit` cut a result short.
pub(crate) const TRUNCATED: &str = "results truncated due to limit";

/// Sets the flag when dropped: the handler future holds it for as long as the client waits.
pub(crate) struct CancelOnDrop(pub(crate) Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// The per-query options from the `timeout` parameter (or the server's default).
fn query_options(st: &ApiState, p: &Params) -> Result<(QueryOptions, CancelOnDrop), ApiError> {
    let timeout = match p.duration("timeout")? {
        Some(ms) => Duration::from_millis(ms.max(0) as u64),
        None => st.query_timeout,
    };
    let cancel = Arc::new(AtomicBool::new(false));
    let opts = QueryOptions {
        timeout: Some(timeout),
        cancel: Some(cancel.clone()),
    };
    Ok((opts, CancelOnDrop(cancel)))
}

fn parse_query(p: &Params) -> Result<fedwatch_promql::Expr, ApiError> {
    Ok(Engine::parse(p.get("query").unwrap_or(""))?)
}

/// Runs `f` on the blocking pool, cancelling it if this future is dropped first.
async fn run<T: Send + 'static>(
    guard: CancelOnDrop,
    f: impl FnOnce() -> Result<T, fedwatch_promql::QueryError> + Send + 'static,
) -> Result<T, ApiError> {
    let out = tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::Internal(format!("query task failed: {e}")))?;
    // The query finished: the guard's flag no longer matters.
    drop(guard);
    Ok(out?)
}

pub(super) async fn query(
    State(st): State<ApiState>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let p = params(q, &headers, &body);
    let limit = p.limit()?;
    let t = p.time_or("time", now_ms())?;
    let (opts, guard) = query_options(&st, &p)?;
    let expr = parse_query(&p)?;
    let engine = st.engine.clone();
    let (value, notes) = run(guard, move || engine.query_with(&expr, t, &opts)).await?;
    let mut warnings = notes.warnings;
    let mut out = String::new();
    match value {
        QueryValue::Vector(mut v) => {
            if truncate(&mut v, limit) {
                warnings.push(TRUNCATED.into());
            }
            out.push_str(r#"{"resultType":"vector","result":["#);
            for (i, s) in v.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(r#"{"metric":"#);
                push_labels(&mut out, &s.labels);
                out.push_str(r#","value":"#);
                push_point(&mut out, s.sample.t, s.sample.v);
                out.push('}');
            }
            out.push_str("]}");
        }
        QueryValue::Scalar(s) => {
            out.push_str(r#"{"resultType":"scalar","result":"#);
            push_point(&mut out, s.t, s.v);
            out.push('}');
        }
        QueryValue::Matrix(m) => {
            let mut series: Vec<(Labels, Vec<Sample>)> = m.into_iter().map(|s| (s.labels, s.samples)).collect();
            if truncate(&mut series, limit) {
                warnings.push(TRUNCATED.into());
            }
            push_matrix(&mut out, &series);
        }
        QueryValue::String { t, value } => {
            out.push_str(r#"{"resultType":"string","result":["#);
            out.push_str(&(t as f64 / 1000.0).to_string());
            out.push(',');
            push_str(&mut out, &value);
            out.push_str("]}");
        }
    }
    Ok(respond(&out, &warnings, &notes.infos))
}

/// Keeps the first `limit` items; true when something was cut.
pub(crate) fn truncate<T>(items: &mut Vec<T>, limit: Option<usize>) -> bool {
    match limit {
        Some(n) if items.len() > n => {
            items.truncate(n);
            true
        }
        _ => false,
    }
}

pub(super) async fn query_range(
    State(st): State<ApiState>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let p = params(q, &headers, &body);
    // The checks run in Prometheus's order, so the first bad parameter is the one named.
    let limit = p.limit()?;
    let start = p.required_time("start")?;
    let end = p.required_time("end")?;
    if end < start {
        return Err(ApiError::BadData(
            "invalid parameter \"end\": end timestamp must not be before start time".into(),
        ));
    }
    let step = p
        .duration("step")?
        .ok_or_else(|| ApiError::BadData("invalid parameter \"step\": cannot parse \"\" to a valid duration".into()))?;
    if step <= 0 {
        return Err(ApiError::BadData(
            "invalid parameter \"step\": zero or negative query resolution step widths are not accepted. Try a positive integer".into(),
        ));
    }
    if (end - start) / step > MAX_POINTS_PER_SERIES {
        return Err(ApiError::BadData(
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)".into(),
        ));
    }
    let (opts, guard) = query_options(&st, &p)?;
    let expr = parse_query(&p)?;
    let engine = st.engine.clone();
    // The engine evaluates all steps at once, selecting each series' data a single time.
    let (matrix, notes): (_, Annotations) = run(guard, move || engine.range_query_with(&expr, start, end, step, &opts))
        .await
        .map_err(|e| match e {
            // Prometheus refuses a string or range-vector expression before evaluating it.
            ApiError::Execution(m) if m.starts_with("invalid expression type") => {
                ApiError::BadData(format!("invalid parameter \"query\": {m}"))
            }
            other => other,
        })?;
    let mut matrix: Vec<(Labels, Vec<Sample>)> = matrix.into_iter().map(|s| (s.labels, s.samples)).collect();
    let mut warnings = notes.warnings;
    if truncate(&mut matrix, limit) {
        warnings.push(TRUNCATED.into());
    }
    let mut out = String::new();
    push_matrix(&mut out, &matrix);
    Ok(respond(&out, &warnings, &notes.infos))
}

/// Renders a matrix result as Prometheus does.
fn push_matrix(out: &mut String, matrix: &[(Labels, Vec<Sample>)]) {
    out.push_str(r#"{"resultType":"matrix","result":["#);
    for (i, (labels, samples)) in matrix.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(r#"{"metric":"#);
        push_labels(out, labels);
        out.push_str(r#","values":["#);
        for (j, s) in samples.iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            push_point(out, s.t, s.v);
        }
        out.push_str("]}");
    }
    out.push_str("]}");
}

/// `/api/v1/format_query`: the query as Prometheus's prettifier lays it out.
pub(super) async fn format_query(RawQuery(q): RawQuery, headers: HeaderMap, body: Bytes) -> Result<Response, ApiError> {
    let p = params(q, &headers, &body);
    let expr = parse_query(&p)?;
    let mut out = String::new();
    push_str(&mut out, &expr.prettify());
    Ok(success(&out))
}

/// `/api/v1/parse_query`: the query's syntax tree as JSON (see `tree.rs`).
pub(super) async fn parse_query_tree(RawQuery(q): RawQuery, headers: HeaderMap, body: Bytes) -> Result<Response, ApiError> {
    let p = params(q, &headers, &body);
    let expr = parse_query(&p)?;
    Ok(success(&super::tree::translate(&expr).to_string()))
}

/// `/api/v1/query_exemplars`: parameters are checked as Prometheus does; the store keeps no
/// exemplars, so the answer is always an empty list.
pub(super) async fn query_exemplars(RawQuery(q): RawQuery, headers: HeaderMap, body: Bytes) -> Result<Response, ApiError> {
    let p = params(q, &headers, &body);
    let start = p.time_or("start", i64::MIN)?;
    let end = p.time_or("end", i64::MAX)?;
    if end < start {
        return Err(ApiError::BadData("end timestamp must not be before start timestamp".into()));
    }
    // Prometheus reports a bad query here without the `invalid parameter` prefix.
    Engine::parse(p.get("query").unwrap_or("")).map_err(|e| ApiError::BadData(e.to_string()))?;
    Ok(success("[]"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropping_the_guard_cancels() {
        let flag = Arc::new(AtomicBool::new(false));
        let guard = CancelOnDrop(flag.clone());
        assert!(!flag.load(Ordering::Relaxed));
        drop(guard);
        assert!(flag.load(Ordering::Relaxed));
    }

    #[test]
    fn truncation_reports_a_cut() {
        let cases: [(usize, Option<usize>, usize, bool); 4] = [
            (5, None, 5, false),
            (5, Some(5), 5, false),
            (5, Some(6), 5, false),
            (5, Some(2), 2, true),
        ];
        for (len, limit, want_len, want_cut) in cases {
            let mut v = vec![0; len];
            assert_eq!(truncate(&mut v, limit), want_cut, "{len} {limit:?}");
            assert_eq!(v.len(), want_len);
        }
    }
}
