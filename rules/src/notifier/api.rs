//! Alertmanager's HTTP API v2 on the central, enough for `amtool`, Grafana's Alertmanager
//! data source and Prometheus to use it: `GET /api/v2/status`, `GET /api/v2/receivers`,
//! `GET|POST /api/v2/alerts`, `GET /api/v2/alerts/groups`, `GET|POST /api/v2/silences`,
//! `GET|DELETE /api/v2/silence/{id}`, plus the HA pair's state exchange
//! ([`super::cluster::STATE_PATH`]). Shapes follow `api/v2/openapi.yaml`; errors are a JSON
//! string with status 400 (bad input) or 404 (unknown silence), as Alertmanager answers.
//!
//! Times are written as Alertmanager's `strfmt.DateTime` writes them (RFC 3339, UTC,
//! milliseconds) and read as any RFC 3339 time. Alerts posted here are treated like
//! Alertmanager's `POST /api/v2/alerts`: a missing `startsAt` is now (or `endsAt` when only
//! that is given), a missing `endsAt` is now + `resolve_timeout`; every valid alert is taken
//! even when others in the batch are rejected.

use std::collections::BTreeMap;

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, Datelike, SecondsFormat, Utc};
use fedwatch_model::{Labels, Matcher};
use serde::Deserialize;
use serde_json::{Value, json};

use super::silence::{Silence, SilenceError, SilenceMatcher, SilenceState};
use super::{AlertView, Notifier, PostableAlert, now_ms};

/// The routes above, serving `notifier`.
pub fn router(notifier: Notifier) -> Router {
    Router::new()
        .route("/api/v2/status", get(status))
        .route("/api/v2/receivers", get(receivers))
        .route("/api/v2/alerts", get(get_alerts).post(post_alerts))
        .route("/api/v2/alerts/groups", get(get_groups))
        .route("/api/v2/silences", get(get_silences).post(post_silence))
        .route("/api/v2/silence/{id}", get(get_silence).delete(delete_silence))
        .with_state(notifier.clone())
        .merge(super::cluster::router(notifier))
}

/// An API error: the status and a message sent as a JSON string.
#[derive(Debug)]
pub enum ApiError {
    BadRequest(String),
    NotFound(String),
    Internal(String),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, msg) = match self {
            ApiError::BadRequest(m) => (StatusCode::BAD_REQUEST, m),
            ApiError::NotFound(m) => (StatusCode::NOT_FOUND, m),
            ApiError::Internal(m) => (StatusCode::INTERNAL_SERVER_ERROR, m),
        };
        (status, axum::Json(Value::String(msg))).into_response()
    }
}

type ApiResult = Result<Response, ApiError>;

fn ok(v: Value) -> ApiResult {
    Ok(axum::Json(v).into_response())
}

/// Alertmanager's `strfmt.DateTime` text for `ms` (0: Go's zero time).
pub fn api_time(ms: i64) -> String {
    if ms == 0 {
        return "0001-01-01T00:00:00.000Z".into();
    }
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
        .unwrap_or_else(|| "0001-01-01T00:00:00.000Z".into())
}

/// Parses an RFC 3339 time into ms; Go's zero time (year 1) is 0, "unset".
pub fn parse_api_time(field: &str, s: &str) -> Result<i64, ApiError> {
    let t = DateTime::parse_from_rfc3339(s)
        .map_err(|e| ApiError::BadRequest(format!("{field} in body must be of type date-time: {s:?} ({e})")))?;
    if t.year() <= 1 {
        return Ok(0);
    }
    Ok(t.timestamp_millis())
}

/// Query parameters as (name, value) pairs, percent- and `+`-decoded, repeats kept.
fn query_pairs(raw: Option<&str>) -> Vec<(String, String)> {
    raw.unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b[i], hex) {
            (b'+', _) => out.push(b' '),
            (b'%', Some(v)) => {
                out.push(v);
                i += 2;
            }
            (c, _) => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The parameters the list endpoints share.
struct ListParams {
    flags: BTreeMap<&'static str, bool>,
    filter: Vec<Matcher>,
    receiver: Option<regex::Regex>,
}

impl ListParams {
    fn parse(raw: Option<&str>, flags: &[&'static str]) -> Result<ListParams, ApiError> {
        let mut out = ListParams {
            flags: flags.iter().map(|f| (*f, true)).collect(),
            filter: Vec::new(),
            receiver: None,
        };
        for (k, v) in query_pairs(raw) {
            if let Some(flag) = flags.iter().find(|f| **f == k) {
                let b = match v.as_str() {
                    "true" | "1" => true,
                    "false" | "0" => false,
                    _ => return Err(ApiError::BadRequest(format!("{k} in query must be of type boolean: {v:?}"))),
                };
                out.flags.insert(flag, b);
            } else if k == "filter" {
                let ms = super::route::parse_matchers(&v).map_err(|e| ApiError::BadRequest(format!("filter: {e}")))?;
                out.filter.extend(ms);
            } else if k == "receiver" && !v.is_empty() {
                let re = regex::Regex::new(&format!("^(?:{v})$"))
                    .map_err(|e| ApiError::BadRequest(format!("failed to parse receiver param: {e}")))?;
                out.receiver = Some(re);
            }
        }
        Ok(out)
    }

    fn flag(&self, name: &str) -> bool {
        self.flags.get(name).copied().unwrap_or(true)
    }

    /// Alertmanager's `alertFilter`: receivers, label matchers, then state flags.
    fn keeps(&self, a: &AlertView) -> bool {
        if let Some(re) = &self.receiver
            && !a.receivers.iter().any(|r| re.is_match(r))
        {
            return false;
        }
        if !self.filter.iter().all(|m| m.matches_labels(&a.labels)) {
            return false;
        }
        if !self.flag("active") && a.state() == "active" {
            return false;
        }
        if !self.flag("silenced") && !a.silenced_by.is_empty() {
            return false;
        }
        if !self.flag("inhibited") && !a.inhibited_by.is_empty() {
            return false;
        }
        true
    }
}

fn labels_json(l: &Labels) -> Value {
    Value::Object(l.iter().map(|l| (l.name.clone(), Value::String(l.value.clone()))).collect())
}

fn alert_json(a: &AlertView) -> Value {
    json!({
        "annotations": a.annotations,
        "endsAt": api_time(a.ends_at),
        "fingerprint": format!("{:016x}", a.fingerprint),
        "receivers": a.receivers.iter().map(|r| json!({"name": r})).collect::<Vec<_>>(),
        "startsAt": api_time(a.starts_at),
        "status": {
            "inhibitedBy": a.inhibited_by.iter().map(|fp| format!("{fp:016x}")).collect::<Vec<_>>(),
            "mutedBy": a.muted_by,
            "silencedBy": a.silenced_by,
            "state": a.state(),
        },
        "updatedAt": api_time(a.updated_at),
        "generatorURL": a.generator_url,
        "labels": labels_json(&a.labels),
    })
}

fn silence_json(s: &Silence, now: i64) -> Value {
    json!({
        "id": s.id,
        "status": {"state": s.state(now).as_str()},
        "updatedAt": api_time(s.updated_at),
        "matchers": s.matchers,
        "startsAt": api_time(s.starts_at),
        "endsAt": api_time(s.ends_at),
        "createdBy": s.created_by,
        "comment": s.comment,
        "annotations": s.annotations,
    })
}

async fn status(State(n): State<Notifier>) -> ApiResult {
    let config = n.config();
    ok(json!({
        "cluster": cluster_json(&n),
        "versionInfo": {
            "version": env!("CARGO_PKG_VERSION"),
            "revision": option_env!("FEDWATCH_REVISION").unwrap_or(""),
            "branch": "",
            "buildUser": "",
            "buildDate": "",
            "goVersion": "",
        },
        "config": {"original": config.original},
        "uptime": api_time(n.started_at()),
    }))
}

/// Alertmanager's `clusterStatus`: this member and the peers that answered last time.
fn cluster_json(n: &Notifier) -> Value {
    let Some(c) = n.cluster() else {
        return json!({"status": "disabled", "peers": []});
    };
    let address = |url: &str| url.split_once("://").map(|(_, a)| a.to_string()).unwrap_or_else(|| url.to_string());
    let me = &c.config.advertise;
    let mut peers = vec![json!({"name": me, "address": address(me)})];
    for (p, up) in c.peer_states() {
        if up {
            peers.push(json!({"name": p, "address": address(&p)}));
        }
    }
    json!({"name": me, "status": c.status(), "peers": peers})
}

async fn receivers(State(n): State<Notifier>) -> ApiResult {
    let config = n.config();
    ok(Value::Array(config.receivers.iter().map(|r| json!({"name": r.name})).collect()))
}

async fn get_alerts(State(n): State<Notifier>, RawQuery(q): RawQuery) -> ApiResult {
    let p = ListParams::parse(q.as_deref(), &["active", "silenced", "inhibited", "unprocessed"])?;
    let alerts: Vec<Value> = n.alerts(now_ms()).iter().filter(|a| p.keeps(a)).map(alert_json).collect();
    ok(Value::Array(alerts))
}

async fn get_groups(State(n): State<Notifier>, RawQuery(q): RawQuery) -> ApiResult {
    let p = ListParams::parse(q.as_deref(), &["active", "silenced", "inhibited", "muted"])?;
    let mut out = Vec::new();
    for g in n.alert_groups(now_ms()) {
        if p.receiver.as_ref().is_some_and(|re| !re.is_match(&g.receiver)) {
            continue;
        }
        let alerts: Vec<&AlertView> = g.alerts.iter().filter(|a| p.keeps(a)).collect();
        if alerts.is_empty() {
            continue;
        }
        if !p.flag("muted") && alerts.iter().all(|a| a.state() == "suppressed" || !a.muted_by.is_empty()) {
            continue;
        }
        out.push(json!({
            "alerts": alerts.iter().map(|a| alert_json(a)).collect::<Vec<_>>(),
            "labels": labels_json(&g.labels),
            "receiver": {"name": g.receiver},
            "routeLabels": g.route_labels,
        }));
    }
    ok(Value::Array(out))
}

#[derive(Deserialize)]
struct RawPostableAlert {
    labels: Option<BTreeMap<String, String>>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    #[serde(rename = "startsAt")]
    starts_at: Option<String>,
    #[serde(rename = "endsAt")]
    ends_at: Option<String>,
    #[serde(rename = "generatorURL", default)]
    generator_url: String,
}

async fn post_alerts(State(n): State<Notifier>, body: String) -> ApiResult {
    let raw: Vec<RawPostableAlert> = serde_json::from_str(&body).map_err(|e| ApiError::BadRequest(format!("parsing alerts body: {e}")))?;
    let now = now_ms();
    let mut valid = Vec::new();
    let mut errors = Vec::new();
    for (i, a) in raw.into_iter().enumerate() {
        match postable(a, now) {
            Ok(p) => valid.push(p),
            Err(e) => errors.push(format!("alert {i}: {e}")),
        }
    }
    n.receive(valid, now);
    if !errors.is_empty() {
        return Err(ApiError::BadRequest(errors.join("; ")));
    }
    Ok(StatusCode::OK.into_response())
}

/// Applies Alertmanager's defaults and `Alert.Validate` to one posted alert.
fn postable(a: RawPostableAlert, now: i64) -> Result<PostableAlert, String> {
    let time = |f: &str, v: &Option<String>| -> Result<i64, String> {
        match v {
            None => Ok(0),
            Some(s) => parse_api_time(f, s).map_err(|e| match e {
                ApiError::BadRequest(m) | ApiError::NotFound(m) | ApiError::Internal(m) => m,
            }),
        }
    };
    let mut starts = time("startsAt", &a.starts_at)?;
    let ends = time("endsAt", &a.ends_at)?;
    if starts == 0 {
        starts = if ends == 0 { now } else { ends };
    }
    if ends != 0 && ends < starts {
        return Err("start time must be before end time".into());
    }
    // Alertmanager drops labels with empty values before validating.
    let labels: Vec<(String, String)> = a.labels.unwrap_or_default().into_iter().filter(|(_, v)| !v.is_empty()).collect();
    if labels.is_empty() {
        return Err("at least one label pair required".into());
    }
    for (k, _) in &labels {
        let ok = k.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !ok {
            return Err(format!("invalid label set: invalid name {k:?}"));
        }
    }
    Ok(PostableAlert {
        labels: Labels::from_pairs(labels.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
        annotations: a.annotations,
        starts_at: starts,
        // 0 makes the notifier use now + resolve_timeout.
        ends_at: ends,
        generator_url: a.generator_url,
    })
}

async fn get_silences(State(n): State<Notifier>, RawQuery(q): RawQuery) -> ApiResult {
    let p = ListParams::parse(q.as_deref(), &["active", "pending", "expired"])?;
    let now = now_ms();
    let mut silences: Vec<Silence> = n
        .silences()
        .into_iter()
        .filter(|s| p.flag(s.state(now).as_str()))
        .filter(|s| silence_matches_filter(s, &p.filter))
        .collect();
    sort_silences(&mut silences, now);
    ok(Value::Array(silences.iter().map(|s| silence_json(s, now)).collect()))
}

/// Alertmanager's `silenceMatchesFilterLabels`: the filter runs over the labels the
/// silence's equality matchers spell out.
fn silence_matches_filter(s: &Silence, filter: &[Matcher]) -> bool {
    let set = Labels::from_pairs(
        s.matchers
            .iter()
            .filter(|m| !m.is_regex && m.is_equal)
            .map(|m| (m.name.as_str(), m.value.as_str())),
    );
    filter.iter().all(|m| m.matches_labels(&set))
}

/// Active first (ending soonest first), then pending (starting soonest first), then
/// expired (most recently ended first), as Alertmanager's `SortSilences`.
pub fn sort_silences(silences: &mut [Silence], now: i64) {
    silences.sort_by(|a, b| {
        let (sa, sb) = (a.state(now), b.state(now));
        sa.cmp(&sb).then_with(|| match sa {
            SilenceState::Active => a.ends_at.cmp(&b.ends_at),
            SilenceState::Pending => a.starts_at.cmp(&b.starts_at),
            SilenceState::Expired => b.ends_at.cmp(&a.ends_at),
        })
    });
}

#[derive(Deserialize)]
struct RawPostableSilence {
    #[serde(default)]
    id: Option<String>,
    matchers: Option<Vec<SilenceMatcher>>,
    #[serde(rename = "startsAt")]
    starts_at: Option<String>,
    #[serde(rename = "endsAt")]
    ends_at: Option<String>,
    #[serde(rename = "createdBy")]
    created_by: Option<String>,
    comment: Option<String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

async fn post_silence(State(n): State<Notifier>, body: String) -> ApiResult {
    let now = now_ms();
    let s = postable_silence(&body, now)?;
    match n.set_silence(s, now) {
        Ok(id) => ok(json!({"silenceID": id})),
        Err(e @ SilenceError::NotFound(_)) => Err(ApiError::NotFound(e.to_string())),
        Err(e) => Err(ApiError::BadRequest(e.to_string())),
    }
}

/// Reads a `postableSilence` with the checks of Alertmanager's `postSilencesHandler`.
fn postable_silence(body: &str, now: i64) -> Result<Silence, ApiError> {
    let bad = |m: String| ApiError::BadRequest(m);
    let raw: RawPostableSilence = serde_json::from_str(body).map_err(|e| bad(format!("parsing silence body: {e}")))?;
    let matchers = raw
        .matchers
        .filter(|m| !m.is_empty())
        .ok_or_else(|| bad("matchers in body is required".into()))?;
    let starts = raw.starts_at.ok_or_else(|| bad("startsAt in body is required".into()))?;
    let ends = raw.ends_at.ok_or_else(|| bad("endsAt in body is required".into()))?;
    let created_by = raw
        .created_by
        .filter(|s| !s.is_empty())
        .ok_or_else(|| bad("createdBy in body is required".into()))?;
    let comment = raw
        .comment
        .filter(|s| !s.is_empty())
        .ok_or_else(|| bad("comment in body is required".into()))?;
    let starts_at = parse_api_time("startsAt", &starts)?;
    let ends_at = parse_api_time("endsAt", &ends)?;
    if starts_at >= ends_at {
        return Err(bad("Failed to create silence: start time must be before end time".into()));
    }
    if ends_at < now {
        return Err(bad("Failed to create silence: end time can't be in the past".into()));
    }
    Ok(Silence {
        id: raw.id.unwrap_or_default(),
        matchers,
        starts_at,
        ends_at,
        updated_at: now,
        created_by,
        comment,
        annotations: raw.annotations,
    })
}

async fn get_silence(State(n): State<Notifier>, Path(id): Path<String>) -> ApiResult {
    match n.silence(&id) {
        Some(s) => ok(silence_json(&s, now_ms())),
        None => Err(ApiError::NotFound(format!("silence {id} not found"))),
    }
}

async fn delete_silence(State(n): State<Notifier>, Path(id): Path<String>) -> ApiResult {
    match n.expire_silence(&id, now_ms()) {
        Ok(()) => Ok(StatusCode::OK.into_response()),
        Err(e @ SilenceError::NotFound(_)) => Err(ApiError::NotFound(e.to_string())),
        Err(e) => Err(ApiError::Internal(e.to_string())),
    }
}

#[cfg(test)]
mod tests;
