//! Status endpoints: build, runtime, flags, config, TSDB cardinality, targets, rules, alerts.
//!
//! These answers are small, so they are built with `serde_json` values; times are rendered
//! as Go renders a `time.Time` (RFC 3339, UTC) and durations as Prometheus prints them.

use std::collections::{BTreeMap, HashMap};

use axum::extract::{RawQuery, State};
use axum::response::Response;
use fedwatch_config::format_duration;
use fedwatch_model::{Labels, METRIC_NAME};
use serde_json::{Map, Value, json};

use super::{ApiState, now_ms, success};
use crate::ApiError;
use crate::json::format_go_float;
use crate::params::Params;
use crate::sources::{AlertInfo, AlertStateInfo, RuleGroupInfo, RuleInfo, RuleKind, TargetInfo};

/// A JSON `data` value in the success envelope.
fn data(v: Value) -> Response {
    success(&v.to_string())
}

/// Milliseconds since the epoch as Go marshals a `time.Time`; 0 is Go's zero time.
fn go_time(ms: i64) -> String {
    if ms == 0 {
        return "0001-01-01T00:00:00Z".into();
    }
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
        .unwrap_or_else(|| "0001-01-01T00:00:00Z".into())
}

fn labels_json(l: &Labels) -> Value {
    Value::Object(l.iter().map(|l| (l.name.clone(), Value::String(l.value.clone()))).collect())
}

fn map_json(m: &BTreeMap<String, String>) -> Value {
    Value::Object(m.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect())
}

pub(super) async fn buildinfo(State(st): State<ApiState>) -> Response {
    // No `features` field: Grafana takes a buildinfo with one for Mimir.
    data(json!({
        "version": st.build.version,
        "revision": st.build.revision,
        "branch": "",
        "buildUser": "",
        "buildDate": "",
        "goVersion": "",
    }))
}

/// Threads of this process from `/proc` (the nearest thing to Go's goroutine count).
fn thread_count() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Threads:").and_then(|n| n.trim().parse().ok()))
        })
        .unwrap_or(0)
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

pub(super) async fn runtimeinfo(State(st): State<ApiState>) -> Response {
    let (success, last_ms) = st.config.outcome();
    let cwd = std::env::current_dir().map(|p| p.display().to_string()).unwrap_or_default();
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    data(json!({
        "startTime": go_time(st.start_ms),
        "CWD": cwd,
        "hostname": hostname(),
        "serverTime": go_time(now_ms()),
        "reloadConfigSuccess": success,
        "lastConfigTime": go_time(last_ms),
        "corruptionCount": 0,
        "goroutineCount": thread_count(),
        "GOMAXPROCS": cpus,
        // Go's "no limit"; there is no garbage collector to tune.
        "GOMEMLIMIT": i64::MAX,
        "GOGC": "",
        "GODEBUG": "",
        "storageRetention": st.retention,
    }))
}

pub(super) async fn flags(State(st): State<ApiState>) -> Response {
    data(map_json(&st.flags))
}

pub(super) async fn config(State(st): State<ApiState>) -> Response {
    data(json!({ "yaml": st.config.yaml() }))
}

/// Prometheus caps the `limit` of `/api/v1/status/tsdb` here.
const MAX_TSDB_LIMIT: usize = 10_000;

/// The `limit` largest counts, largest first, ties by name.
fn top(counts: HashMap<String, u64>, limit: usize) -> Value {
    let mut v: Vec<(String, u64)> = counts.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v.truncate(limit);
    Value::Array(v.into_iter().map(|(name, value)| json!({"name": name, "value": value})).collect())
}

/// `/api/v1/status/tsdb`: cardinality computed from every series' labels, as Prometheus
/// computes it from the head's postings.
pub(super) async fn tsdb(State(st): State<ApiState>, RawQuery(q): RawQuery) -> Result<Response, ApiError> {
    let p = Params::from_request(q.as_deref(), None);
    let limit = match p.get("limit") {
        None => 10,
        Some(s) => match s.parse::<i64>() {
            Ok(n) if n >= 1 && n as usize <= MAX_TSDB_LIMIT => n as usize,
            Ok(n) if n >= 1 => return Err(ApiError::BadData(format!("limit must not exceed {MAX_TSDB_LIMIT}"))),
            _ => return Err(ApiError::BadData("limit must be a positive number".into())),
        },
    };
    let querier = st.querier.clone();
    let all = tokio::task::spawn_blocking(move || querier.series(&[]))
        .await
        .map_err(|e| ApiError::Internal(format!("tsdb status task failed: {e}")))??;
    // Series per label pair; the other lists derive from it.
    let mut pairs: HashMap<(String, String), u64> = HashMap::new();
    for l in &all {
        for l in l.iter() {
            *pairs.entry((l.name.clone(), l.value.clone())).or_default() += 1;
        }
    }
    let mut by_metric = HashMap::new();
    let mut values_by_name: HashMap<String, u64> = HashMap::new();
    let mut bytes_by_name: HashMap<String, u64> = HashMap::new();
    let mut by_pair = HashMap::new();
    for ((name, value), n) in &pairs {
        if name == METRIC_NAME {
            by_metric.insert(value.clone(), *n);
        }
        *values_by_name.entry(name.clone()).or_default() += 1;
        *bytes_by_name.entry(name.clone()).or_default() += value.len() as u64 * n;
        by_pair.insert(format!("{name}={value}"), *n);
    }
    let head = st.head.as_ref().map(|h| h.head_info()).unwrap_or_default();
    Ok(data(json!({
        "headStats": {
            "numSeries": all.len(),
            "numLabelPairs": pairs.len(),
            "chunkCount": head.chunk_count,
            "minTime": head.min_time,
            "maxTime": head.max_time,
        },
        "seriesCountByMetricName": top(by_metric, limit),
        "labelValueCountByLabelName": top(values_by_name, limit),
        "memoryInBytesByLabelName": top(bytes_by_name, limit),
        "seriesCountByLabelValuePair": top(by_pair, limit),
    })))
}

fn target_json(t: &TargetInfo) -> Value {
    json!({
        "discoveredLabels": labels_json(&t.discovered_labels),
        "labels": labels_json(&t.labels),
        "scrapePool": t.scrape_pool,
        "scrapeUrl": t.scrape_url,
        "globalUrl": t.scrape_url,
        "lastError": t.last_error,
        "lastScrape": go_time(t.last_scrape_ms),
        "lastScrapeDuration": t.last_scrape_duration.as_secs_f64(),
        "health": t.health.as_str(),
        "scrapeInterval": format_duration(t.scrape_interval),
        "scrapeTimeout": format_duration(t.scrape_timeout),
    })
}

/// `/api/v1/targets` with its `state` and `scrapePool` filters; dropped targets are not kept.
pub(super) async fn targets(State(st): State<ApiState>, RawQuery(q): RawQuery) -> Response {
    let p = Params::from_request(q.as_deref(), None);
    let pool = p.get("scrapePool");
    let state = p.get("state").unwrap_or("").to_lowercase();
    let show_active = matches!(state.as_str(), "" | "any" | "active");
    let show_dropped = matches!(state.as_str(), "" | "any" | "dropped");
    let mut active = Vec::new();
    if show_active && let Some(src) = &st.targets {
        let mut ts = src.targets();
        // Prometheus lists pools in name order, targets in discovery order within a pool.
        ts.sort_by(|a, b| a.scrape_pool.cmp(&b.scrape_pool));
        active = ts
            .iter()
            .filter(|t| pool.is_none_or(|p| p == t.scrape_pool))
            .map(target_json)
            .collect();
    }
    let mut out = Map::new();
    out.insert("activeTargets".into(), Value::Array(active));
    out.insert("droppedTargets".into(), json!([]));
    if show_dropped {
        out.insert("droppedTargetCounts".into(), json!({}));
    }
    data(Value::Object(out))
}

fn alert_json(a: &AlertInfo) -> Value {
    let mut v = json!({
        "labels": labels_json(&a.labels),
        "annotations": map_json(&a.annotations),
        "state": a.state.as_str(),
        "activeAt": go_time(a.active_at),
        "value": format_go_float(a.value, 'e'),
    });
    if let Some(t) = a.keep_firing_since {
        v["keepFiringSince"] = Value::String(go_time(t));
    }
    v
}

pub(super) async fn alerts(State(st): State<ApiState>) -> Response {
    let alerts: Vec<Value> = st
        .rules
        .as_ref()
        .map(|r| r.alerts().iter().map(alert_json).collect())
        .unwrap_or_default();
    data(json!({ "alerts": alerts }))
}

fn rule_json(r: &RuleInfo) -> Value {
    let health = match (r.last_evaluation_ms, r.last_error.is_empty()) {
        (0, true) => "unknown",
        (_, true) => "ok",
        _ => "err",
    };
    let mut v = match &r.kind {
        RuleKind::Alerting(a) => {
            // A rule is as far along as its furthest alert.
            let state = a
                .alerts
                .iter()
                .map(|a| a.state)
                .fold(AlertStateInfo::Inactive, |acc, s| match (acc, s) {
                    (AlertStateInfo::Firing, _) | (_, AlertStateInfo::Firing) => AlertStateInfo::Firing,
                    (AlertStateInfo::Pending, _) | (_, AlertStateInfo::Pending) => AlertStateInfo::Pending,
                    _ => AlertStateInfo::Inactive,
                });
            json!({
                "state": state.as_str(),
                "name": a.name,
                "query": a.query,
                "duration": a.duration.as_secs_f64(),
                "keepFiringFor": a.keep_firing_for.as_secs_f64(),
                "labels": labels_json(&a.labels),
                "annotations": map_json(&a.annotations),
                "alerts": a.alerts.iter().map(alert_json).collect::<Vec<_>>(),
                "type": "alerting",
            })
        }
        RuleKind::Recording(rr) => json!({
            "name": rr.name,
            "query": rr.query,
            "labels": labels_json(&rr.labels),
            "type": "recording",
        }),
    };
    v["health"] = Value::String(health.into());
    if !r.last_error.is_empty() {
        v["lastError"] = Value::String(r.last_error.clone());
    }
    v["evaluationTime"] = json!(r.evaluation_time.as_secs_f64());
    v["lastEvaluation"] = Value::String(go_time(r.last_evaluation_ms));
    v
}

/// `/api/v1/rules` with the `type`, `rule_name[]`, `rule_group[]` and `file[]` filters.
pub(super) async fn rules(State(st): State<ApiState>, RawQuery(q): RawQuery) -> Result<Response, ApiError> {
    let p = Params::from_request(q.as_deref(), None);
    let (want_alerting, want_recording) = match p.get("type").map(str::to_lowercase).as_deref() {
        None => (true, true),
        Some("alert") => (true, false),
        Some("record") => (false, true),
        Some(other) => {
            return Err(ApiError::BadData(format!(
                "invalid parameter \"type\": not supported value {other:?}"
            )));
        }
    };
    let names = p.all("rule_name[]");
    let group_names = p.all("rule_group[]");
    let files = p.all("file[]");
    let groups: Vec<RuleGroupInfo> = st.rules.as_ref().map(|r| r.groups()).unwrap_or_default();
    let mut out = Vec::new();
    for g in groups {
        if (!group_names.is_empty() && !group_names.contains(&g.name)) || (!files.is_empty() && !files.contains(&g.file)) {
            continue;
        }
        let rules: Vec<Value> = g
            .rules
            .iter()
            .filter(|r| match r.kind {
                RuleKind::Alerting(_) => want_alerting,
                RuleKind::Recording(_) => want_recording,
            })
            .filter(|r| names.is_empty() || names.iter().any(|n| n == r.name()))
            .map(rule_json)
            .collect();
        // Filtering by rule leaves out groups that no longer hold any.
        if rules.is_empty() && !(names.is_empty() && want_alerting && want_recording) {
            continue;
        }
        out.push(json!({
            "name": g.name,
            "file": g.file,
            "rules": rules,
            "interval": g.interval.as_secs_f64(),
            "limit": g.limit,
            "evaluationTime": g.evaluation_time.as_secs_f64(),
            "lastEvaluation": go_time(g.last_evaluation_ms),
        }));
    }
    Ok(data(json!({ "groups": out })))
}
