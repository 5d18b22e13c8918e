//! Label and series lookups: `/api/v1/labels`, `/api/v1/label/{name}/values`,
//! `/api/v1/series`, `/api/v1/metadata`.
//!
//! Without `start`/`end` the index answers directly. With either, only series with a sample
//! in the window count, which the `Querier` seam can only tell by selecting the window; the
//! samples are dropped at once (a dedicated index call would avoid decoding them).

use std::collections::BTreeSet;

use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use fedwatch_model::{Labels, MatchOp, Matcher};
use fedwatch_promql::Engine;
use fedwatch_tsdb::SelectHints;

use super::query::{TRUNCATED, truncate};
use super::{ApiState, params, respond, success};
use crate::ApiError;
use crate::json::{push_labels, push_str_array};
use crate::params::Params;

/// The time window of a lookup, when the request restricts it.
fn window(p: &Params) -> Result<Option<SelectHints>, ApiError> {
    if p.get("start").is_none() && p.get("end").is_none() {
        return Ok(None);
    }
    let start = p.time_or("start", i64::MIN)?;
    let end = p.time_or("end", i64::MAX)?;
    Ok(Some(SelectHints {
        start,
        end,
        ..Default::default()
    }))
}

const EMPTY_MATCHERS: &str = "match[] must contain at least one non-empty matcher";

/// Parses every `match[]` selector into matcher lists (series must match any one list).
fn match_sets(p: &Params) -> Result<Vec<Vec<Matcher>>, String> {
    let sets = p
        .all("match[]")
        .iter()
        .map(|s| selector_matchers(s))
        .collect::<Result<Vec<_>, _>>()?;
    // A selector that matches the empty string everywhere would select every series.
    for set in &sets {
        if !set.iter().any(|m| !m.matches("")) {
            return Err(EMPTY_MATCHERS.into());
        }
    }
    Ok(sets)
}

pub(crate) fn selector_matchers(s: &str) -> Result<Vec<Matcher>, String> {
    use promql_parser::label::MatchOp as P;
    let expr = Engine::parse(s).map_err(|e| match e.to_string() {
        // promql-parser refuses such a selector while parsing; Prometheus parses it and
        // then refuses it for `match[]` with this message.
        m if m.contains("must contain at least one non-empty matcher") => EMPTY_MATCHERS.to_string(),
        m => m,
    })?;
    let promql_parser::parser::Expr::VectorSelector(vs) = expr else {
        return Err(format!("1:1: parse error: expected vector selector, got {s:?}"));
    };
    let mut out = Vec::new();
    if let Some(name) = vs.name {
        out.push(Matcher::equal(fedwatch_model::METRIC_NAME, name));
    }
    for m in vs.matchers.matchers {
        let op = match m.op {
            P::Equal => MatchOp::Equal,
            P::NotEqual => MatchOp::NotEqual,
            P::Re(_) => MatchOp::RegexMatch,
            P::NotRe(_) => MatchOp::RegexNoMatch,
        };
        out.push(Matcher::new(op, m.name, m.value).map_err(|e| e.to_string())?);
    }
    Ok(out)
}

/// Label sets matching any of `sets` (every series when `sets` is empty), sorted, restricted
/// to series with samples in `window` when given.
fn matching_series(st: &ApiState, sets: &[Vec<Matcher>], window: Option<SelectHints>) -> Result<Vec<Labels>, ApiError> {
    let all_series;
    let sets = if sets.is_empty() {
        // Selecting needs a matcher; every series has a name.
        all_series = [vec![
            Matcher::new(MatchOp::RegexMatch, fedwatch_model::METRIC_NAME, ".+").map_err(|e| ApiError::Internal(e.to_string()))?,
        ]];
        &all_series[..]
    } else {
        sets
    };
    let mut found = BTreeSet::new();
    for set in sets {
        match window {
            None => found.extend(st.querier.series(set)?),
            Some(hints) => found.extend(st.querier.select(set, hints)?.into_iter().map(|s| s.labels)),
        }
    }
    Ok(found.into_iter().collect())
}

pub(super) async fn labels(
    State(st): State<ApiState>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let p = params(q, &headers, &body);
    let limit = p.limit()?;
    let window = window(&p)?;
    let sets = match_sets(&p).map_err(ApiError::BadData)?;
    let mut names: Vec<String> = if sets.is_empty() && window.is_none() {
        st.querier.label_names(&[])?
    } else {
        let set: BTreeSet<String> = matching_series(&st, &sets, window)?
            .iter()
            .flat_map(|l| l.iter().map(|l| l.name.clone()).collect::<Vec<_>>())
            .collect();
        set.into_iter().collect()
    };
    let warnings = truncated(&mut names, limit);
    let mut out = String::new();
    push_str_array(&mut out, names.iter().map(String::as_str));
    Ok(respond(&out, &warnings, &[]))
}

fn truncated<T>(items: &mut Vec<T>, limit: Option<usize>) -> Vec<String> {
    if truncate(items, limit) {
        vec![TRUNCATED.to_string()]
    } else {
        Vec::new()
    }
}

/// Undoes Prometheus's `U__` escaping of label names in URLs (`U__a_2e_b` is `a.b`, `__` is `_`).
fn unescape_name(name: &str) -> Option<String> {
    let Some(rest) = name.strip_prefix("U__") else {
        return Some(name.to_string());
    };
    let mut out = String::new();
    let mut chars = rest.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '_' {
            out.push(c);
            continue;
        }
        if chars.peek() == Some(&'_') {
            chars.next();
            out.push('_');
            continue;
        }
        let hex: String = chars.by_ref().take_while(|&c| c != '_').collect();
        out.push(u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32)?);
    }
    Some(out)
}

pub(super) async fn label_values(
    State(st): State<ApiState>,
    name: Result<Path<String>, PathRejection>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    // Prometheus 3 accepts any non-empty UTF-8 label name; a name that is not valid UTF-8
    // after percent-decoding fails extraction and is reported the same way.
    let raw = name
        .map(|Path(n)| n)
        .map_err(|_| ApiError::BadData("invalid label name: (not valid UTF-8)".into()))?;
    let name = match unescape_name(&raw) {
        // Prometheus keeps the raw name when the escaping does not decode.
        Some(n) if !n.is_empty() => n,
        _ if !raw.is_empty() => raw,
        _ => return Err(ApiError::BadData(format!("invalid label name: {raw:?}"))),
    };
    let p = Params::from_request(q.as_deref(), None);
    let limit = p.limit()?;
    let window = window(&p)?;
    let sets = match_sets(&p).map_err(ApiError::BadData)?;
    let mut values: Vec<String> = if sets.is_empty() && window.is_none() {
        st.querier.label_values(&name, &[])?
    } else {
        let set: BTreeSet<String> = matching_series(&st, &sets, window)?
            .iter()
            .filter_map(|l| l.get(&name).map(str::to_string))
            .collect();
        set.into_iter().collect()
    };
    let warnings = truncated(&mut values, limit);
    let mut out = String::new();
    push_str_array(&mut out, values.iter().map(String::as_str));
    Ok(respond(&out, &warnings, &[]))
}

pub(super) async fn series(
    State(st): State<ApiState>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let p = params(q, &headers, &body);
    if p.all("match[]").is_empty() {
        return Err(ApiError::BadData("no match[] parameter provided".into()));
    }
    let limit = p.limit()?;
    let window = window(&p)?;
    let sets = match_sets(&p).map_err(|e| ApiError::BadData(format!("invalid parameter \"match[]\": {e}")))?;
    let mut found = matching_series(&st, &sets, window)?;
    let warnings = truncated(&mut found, limit);
    let mut out = String::from("[");
    for (i, l) in found.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_labels(&mut out, l);
    }
    out.push(']');
    Ok(respond(&out, &warnings, &[]))
}

/// `/api/v1/metadata`: the store keeps no HELP/TYPE metadata (remote write's metadata is not
/// stored), so the answer is always empty; `limit` and `limit_per_metric` are still checked.
pub(super) async fn metadata(RawQuery(q): RawQuery) -> Result<Response, ApiError> {
    let p = Params::from_request(q.as_deref(), None);
    for (key, msg) in [
        ("limit", "limit must be a number"),
        ("limit_per_metric", "limit_per_metric must be a number"),
    ] {
        if p.get(key).is_some_and(|s| s.parse::<i64>().is_err()) {
            return Err(ApiError::BadData(msg.into()));
        }
    }
    Ok(success("{}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaped_label_names() {
        let cases = [
            ("job", Some("job")),
            ("U__a_2e_b", Some("a.b")),
            ("U__a__b", Some("a_b")),
            ("U__x_1f600_", Some("x\u{1f600}")),
            ("U__bad_zz_", None),
        ];
        for (input, want) in cases {
            assert_eq!(unescape_name(input).as_deref(), want, "{input}");
        }
    }
}
