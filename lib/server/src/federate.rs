//! `/federate`: the latest sample of every series matching any `match[]`, in the text
//! exposition format, so another Prometheus (or tier) can scrape this one.
//!
//! Semantics follow Prometheus's `web/federate.go`: a sample counts if it lies within the
//! lookback window ending now and is not a staleness marker; series are grouped by metric
//! name under `# TYPE <name> untyped`; external labels are appended to series that lack
//! them, and `instance=""` when neither the series nor the external labels have one, so a
//! scraper with `honor_labels` does not stamp its own target on federated series; every
//! line carries its sample's timestamp. Without `match[]` the answer is empty, as there.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use axum::extract::{RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use fedwatch_model::{Labels, METRIC_NAME, is_stale_nan};
use fedwatch_promql::DEFAULT_LOOKBACK_MS;
use fedwatch_tsdb::SelectHints;

use crate::api::{ApiState, now_ms};
use crate::json::format_go_float;
use crate::params::Params;

const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

pub(crate) async fn federate(State(st): State<ApiState>, RawQuery(q): RawQuery) -> Response {
    let p = Params::from_request(q.as_deref(), None);
    let mut sets = Vec::new();
    for s in p.all("match[]") {
        match crate::api::selector_matchers(s) {
            Ok(m) => sets.push(m),
            Err(e) => return (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
        }
    }
    let now = now_ms();
    let hints = SelectHints {
        start: now - DEFAULT_LOOKBACK_MS,
        end: now,
        ..Default::default()
    };
    let querier = st.querier.clone();
    let latest = tokio::task::spawn_blocking(move || {
        // Keyed by labels so a series matched by several selectors appears once.
        let mut latest: BTreeMap<Labels, (i64, f64)> = BTreeMap::new();
        for set in &sets {
            for s in querier.select(set, hints)? {
                if let Some(last) = s.samples.iter().rev().find(|x| x.t <= hints.end)
                    && !is_stale_nan(last.v)
                {
                    latest.insert(s.labels, (last.t, last.v));
                }
            }
        }
        Ok::<_, fedwatch_tsdb::SelectError>(latest)
    })
    .await;
    let latest = match latest {
        Ok(Ok(l)) => l,
        Ok(Err(e)) => return (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, format!("federation failed: {e}\n")).into_response(),
    };
    let body = render(latest.into_iter().collect(), &st.external_labels);
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], body).into_response()
}

/// Renders `(labels, (t, v))` in the text format, grouped by metric name.
pub(crate) fn render(mut series: Vec<(Labels, (i64, f64))>, external: &Labels) -> String {
    // Stable: series of one name keep their label order.
    series.sort_by(|a, b| a.0.metric_name().cmp(&b.0.metric_name()));
    let mut external: BTreeMap<&str, &str> = external.iter().map(|l| (l.name.as_str(), l.value.as_str())).collect();
    external.entry("instance").or_insert("");
    let mut out = String::new();
    let mut last_name: Option<&str> = None;
    for (labels, (t, v)) in &series {
        let Some(name) = labels.metric_name() else { continue };
        if last_name != Some(name) {
            let _ = writeln!(out, "# TYPE {name} untyped");
            last_name = Some(name);
        }
        out.push_str(name);
        let mut pairs: Vec<(&str, &str)> = labels
            .iter()
            .filter(|l| l.name != METRIC_NAME && !l.value.is_empty())
            .map(|l| (l.name.as_str(), l.value.as_str()))
            .collect();
        for (n, v) in &external {
            if labels.get(n).is_none_or(str::is_empty) {
                pairs.push((n, v));
            }
        }
        if !pairs.is_empty() {
            out.push('{');
            for (i, (n, v)) in pairs.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let _ = write!(out, "{n}=\"{}\"", escape_value(v));
            }
            out.push('}');
        }
        let _ = writeln!(out, " {} {t}", format_go_float(*v, 'g'));
    }
    out
}

fn escape_value(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_families_with_external_labels() {
        let series = vec![
            (
                Labels::from_pairs([("__name__", "up"), ("instance", "a"), ("job", "x")]),
                (1_000, 1.0),
            ),
            (
                Labels::from_pairs([("__name__", "a_total"), ("path", "q\"\\\n")]),
                (2_000, 1234567.0),
            ),
            (
                Labels::from_pairs([("__name__", "up"), ("instance", "b"), ("job", "y"), ("tier", "own")]),
                (1_500, f64::INFINITY),
            ),
        ];
        let ext = Labels::from_pairs([("tier", "edge"), ("dc", "fra")]);
        let want = "# TYPE a_total untyped\n\
                    a_total{path=\"q\\\"\\\\\\n\",dc=\"fra\",instance=\"\",tier=\"edge\"} 1.234567e+06 2000\n\
                    # TYPE up untyped\n\
                    up{instance=\"a\",job=\"x\",dc=\"fra\",tier=\"edge\"} 1 1000\n\
                    up{instance=\"b\",job=\"y\",tier=\"own\",dc=\"fra\"} +Inf 1500\n";
        assert_eq!(render(series, &ext), want);
    }
}
