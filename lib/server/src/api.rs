//! Routes, the shared state and the helpers every handler uses.
//!
//! Handlers live by topic: `query` (PromQL evaluation), `series` (label and series lookups),
//! `status` (build, runtime, TSDB, targets, rules). Every API answer goes through
//! [`respond`] so the envelope (`status`, `data`, `warnings`, `infos`) is built in one place.

mod query;
mod series;
mod status;
mod tree;

pub(crate) use series::selector_matchers;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use fedwatch_model::Labels;
use fedwatch_model::selfmetrics::Registry;
use fedwatch_promql::Engine;
use fedwatch_tsdb::Querier;

use crate::ApiError;
use crate::json::push_str;
use crate::params::Params;
use crate::sources::{ConfigStatus, HeadInfoSource, ReloadHook, RulesSource, TargetsSource};

/// Prometheus's default `--query.timeout`, used when a request gives no `timeout`.
pub const DEFAULT_QUERY_TIMEOUT: Duration = Duration::from_secs(120);

/// What `/api/v1/status/buildinfo` reports.
#[derive(Clone, Debug)]
pub struct BuildInfo {
    pub version: String,
    pub revision: String,
}

/// Everything the handlers need; cheap to clone. Build with [`ApiState::new`] and the
/// `with_*` setters; everything a setter sets has a default that serves Prometheus's shapes.
#[derive(Clone)]
pub struct ApiState {
    pub tier: &'static str,
    pub engine: Engine,
    pub querier: Arc<dyn Querier>,
    pub registry: Registry,
    pub ready: Arc<AtomicBool>,
    pub build: BuildInfo,
    pub(crate) query_timeout: Duration,
    pub(crate) retention: String,
    pub(crate) external_labels: Labels,
    pub(crate) flags: Arc<BTreeMap<String, String>>,
    pub(crate) config: ConfigStatus,
    pub(crate) start_ms: i64,
    pub(crate) targets: Option<Arc<dyn TargetsSource>>,
    pub(crate) rules: Option<Arc<dyn RulesSource>>,
    pub(crate) head: Option<Arc<dyn HeadInfoSource>>,
    pub(crate) reload: Option<ReloadHook>,
}

impl ApiState {
    /// State with defaults: 2m query timeout, no external labels, no flags, empty config,
    /// no targets or rules, no reload hook, started now.
    pub fn new(
        tier: &'static str,
        engine: Engine,
        querier: Arc<dyn Querier>,
        registry: Registry,
        ready: Arc<AtomicBool>,
        build: BuildInfo,
    ) -> Self {
        ApiState {
            tier,
            engine,
            querier,
            registry,
            ready,
            build,
            query_timeout: DEFAULT_QUERY_TIMEOUT,
            retention: String::new(),
            external_labels: Labels::default(),
            flags: Arc::new(BTreeMap::new()),
            config: ConfigStatus::default(),
            start_ms: now_ms(),
            targets: None,
            rules: None,
            head: None,
            reload: None,
        }
    }

    /// Sets the timeout of queries that give no `timeout` parameter (`--query.timeout`).
    pub fn with_query_timeout(mut self, timeout: Duration) -> Self {
        self.query_timeout = timeout;
        self
    }

    /// Sets the retention `runtimeinfo` reports, e.g. `15d`.
    pub fn with_retention(mut self, retention: impl Into<String>) -> Self {
        self.retention = retention.into();
        self
    }

    /// Sets the tier's external labels, which `/federate` adds to series that lack them.
    pub fn with_external_labels(mut self, labels: Labels) -> Self {
        self.external_labels = labels;
        self
    }

    /// Sets the command-line flags `/api/v1/status/flags` lists.
    pub fn with_flags(mut self, flags: BTreeMap<String, String>) -> Self {
        self.flags = Arc::new(flags);
        self
    }

    /// Shares the configuration status the tier updates on every (re)load.
    pub fn with_config(mut self, config: ConfigStatus) -> Self {
        self.config = config;
        self
    }

    /// Sets the process start time `runtimeinfo` reports (ms since the epoch).
    pub fn with_start_time(mut self, start_ms: i64) -> Self {
        self.start_ms = start_ms;
        self
    }

    /// Serves `/api/v1/targets` from `source`.
    pub fn with_targets(mut self, source: Arc<dyn TargetsSource>) -> Self {
        self.targets = Some(source);
        self
    }

    /// Serves `/api/v1/rules` and `/api/v1/alerts` from `source`.
    pub fn with_rules(mut self, source: Arc<dyn RulesSource>) -> Self {
        self.rules = Some(source);
        self
    }

    /// Takes chunk counts and the time range of `/api/v1/status/tsdb` from `source`.
    pub fn with_head_info(mut self, source: Arc<dyn HeadInfoSource>) -> Self {
        self.head = Some(source);
        self
    }

    /// Lets `POST /-/reload` call `hook`.
    pub fn with_reload(mut self, hook: ReloadHook) -> Self {
        self.reload = Some(hook);
        self
    }
}

/// The API, `/federate`, `/metrics` and the health and reload routes.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/api/v1/query", get(query::query).post(query::query))
        .route("/api/v1/query_range", get(query::query_range).post(query::query_range))
        .route("/api/v1/query_exemplars", get(query::query_exemplars).post(query::query_exemplars))
        .route("/api/v1/format_query", get(query::format_query).post(query::format_query))
        .route("/api/v1/parse_query", get(query::parse_query_tree).post(query::parse_query_tree))
        .route("/api/v1/labels", get(series::labels).post(series::labels))
        .route("/api/v1/label/{name}/values", get(series::label_values))
        .route("/api/v1/series", get(series::series).post(series::series))
        .route("/api/v1/metadata", get(series::metadata))
        .route("/api/v1/targets", get(status::targets))
        .route("/api/v1/rules", get(status::rules))
        .route("/api/v1/alerts", get(status::alerts))
        .route("/api/v1/status/buildinfo", get(status::buildinfo))
        .route("/api/v1/status/runtimeinfo", get(status::runtimeinfo))
        .route("/api/v1/status/flags", get(status::flags))
        .route("/api/v1/status/config", get(status::config))
        .route("/api/v1/status/tsdb", get(status::tsdb))
        .route("/federate", get(crate::federate::federate))
        .route("/metrics", get(metrics))
        .route("/-/healthy", get(healthy).head(healthy))
        .route("/-/ready", get(ready).head(ready))
        .route("/-/reload", post(reload).put(reload))
        .fallback(not_found)
        .with_state(state)
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Parameters of a request: the URL query plus a form-encoded body, as Go's `FormValue`.
pub(crate) fn params(query: Option<String>, headers: &HeaderMap, body: &Bytes) -> Params {
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    Params::from_request(query.as_deref(), is_form.then_some(body.as_ref()))
}

/// Prometheus lists at most this many warnings (and infos), then says how many it left out.
const MAX_ANNOTATIONS: usize = 10;

/// A success envelope around `data` (already JSON), with `warnings`/`infos` when non-empty.
pub(crate) fn respond(data: &str, warnings: &[String], infos: &[String]) -> Response {
    let mut body = format!(r#"{{"status":"success","data":{data}"#);
    push_annotations(&mut body, "warnings", warnings, "warning");
    push_annotations(&mut body, "infos", infos, "info");
    body.push('}');
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn push_annotations(body: &mut String, key: &str, items: &[String], kind: &str) {
    if items.is_empty() {
        return;
    }
    body.push_str(&format!(r#","{key}":["#));
    for (i, w) in items.iter().take(MAX_ANNOTATIONS).enumerate() {
        if i > 0 {
            body.push(',');
        }
        push_str(body, w);
    }
    if items.len() > MAX_ANNOTATIONS {
        body.push(',');
        push_str(body, &format!("{} more {kind} annotations omitted", items.len() - MAX_ANNOTATIONS));
    }
    body.push(']');
}

/// A success envelope without annotations.
pub(crate) fn success(data: &str) -> Response {
    respond(data, &[], &[])
}

/// Unknown API paths get a JSON error a client can read; other paths a plain 404.
async fn not_found(method: Method, uri: Uri) -> Response {
    if uri.path().starts_with("/api/v1/") {
        ApiError::NotFound(format!("unknown API endpoint {method} {}", uri.path())).into_response()
    } else {
        (StatusCode::NOT_FOUND, "404 page not found\n").into_response()
    }
}

async fn metrics(State(st): State<ApiState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        st.registry.render(),
    )
        .into_response()
}

async fn healthy(State(st): State<ApiState>) -> Response {
    (StatusCode::OK, format!("Fedwatch {} is Healthy.\n", st.tier)).into_response()
}

async fn ready(State(st): State<ApiState>) -> Response {
    if st.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, format!("Fedwatch {} is Ready.\n", st.tier)).into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable\n").into_response()
    }
}

/// `/-/reload`: runs the tier's reload hook off the async threads (it reads files).
async fn reload(State(st): State<ApiState>) -> Response {
    let Some(hook) = st.reload.clone() else {
        // Prometheus's answer when `--web.enable-lifecycle` is off.
        return (StatusCode::FORBIDDEN, "Lifecycle API is not enabled.\n").into_response();
    };
    match tokio::task::spawn_blocking(move || hook()).await {
        Ok(Ok(())) => StatusCode::OK.into_response(),
        Ok(Err(e)) => (StatusCode::INTERNAL_SERVER_ERROR, format!("failed to reload config: {e}\n")).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("failed to reload config: {e}\n")).into_response(),
    }
}
